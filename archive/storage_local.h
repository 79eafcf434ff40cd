/* storage_local.h — the file:// storage driver: one file per key under a root directory. */
#ifndef BACKSTOP_STORAGE_LOCAL_H
#define BACKSTOP_STORAGE_LOCAL_H

#include "storage.h"

/* root is an absolute directory path; it is created on the first put. */
int storage_local_open(const char *root, storage **out, bs_error *err);

/*
 * Adopt a file the caller wrote itself (e.g. the archiver's spill files) as the object
 * under key, durably: fsync the file (through fd when fd >= 0, else opened from path),
 * create the key's directory, rename the file into place, fsync its new and its old
 * directory.  path is an absolute path on the same file system as the storage root, not
 * itself an object (usually a scratch file under the root that no key names); afterwards
 * it is gone.  The caller still closes fd.  Only for file:// storage.
 */
int storage_local_adopt(storage *st, const char *key, const char *path, int fd, bs_error *err);

#endif
