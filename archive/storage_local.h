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

/*
 * Remove the directory that holds keys "dir/..." if it is empty, durably (its parent is
 * fsynced); *removed says whether it was.  Absent or not empty is not an error: deleting a
 * key leaves its directory, which the caller removes once it has deleted them all.
 */
int storage_local_remove_dir(storage *st, const char *dir, bool *removed, bs_error *err);

/* mkdir -p path (mode 0750), refusing a file in the way; durable: each directory created is
 * made durable by syncing its parent (not for scratch files such as spill files, which become
 * durable only when adopted). */
int storage_local_make_dirs(const char *path, bool durable, bs_error *err);

/* Call cb (size 0) for each directory directly under the root, in no particular order. */
int storage_local_list_dirs(storage *st, storage_list_cb cb, void *ctx, bs_error *err);

#endif
