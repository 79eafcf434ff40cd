/* storage_local.h — the file:// storage driver: one file per key under a root directory. */
#ifndef BACKSTOP_STORAGE_LOCAL_H
#define BACKSTOP_STORAGE_LOCAL_H

#include "storage.h"

/* root is an absolute directory path; it is created on the first put. */
int storage_local_open(const char *root, storage **out, bs_error *err);

#endif
