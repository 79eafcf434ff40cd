/* fileio.h — durable file-system steps shared by the storage driver and the commands' local state. */
#ifndef BACKSTOP_FILEIO_H
#define BACKSTOP_FILEIO_H

#include "error.h"

/* fsync the directory dir, so that an entry created, renamed or removed in it is durable. */
int fileio_fsync_dir(const char *dir, bs_error *err);

#endif
