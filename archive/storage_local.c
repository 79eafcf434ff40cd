/* storage_local.c — the file:// storage driver: one file per key, written atomically and durably. */
#include "storage_local.h"
#include "digest.h"
#include "fileio.h"
#include "strbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>


#define READ_CHUNK (256 * 1024)
#define FILE_MODE 0640
#define DIR_MODE 0750

typedef struct local_storage
{
	storage		base;
	char	   *root;
} local_storage;

typedef struct local_writer
{
	storage_writer base;
	int			fd;
	char	   *tmp_path;
	char	   *final_path;
	char	   *dir_path;
} local_writer;

static char *
key_path(const local_storage *ls, const char *key)
{
	strbuf sb = STRBUF_INIT;

	strbuf_printf(&sb, "%s/%s", strcmp(ls->root, "/") == 0 ? "" : ls->root, key);
	return strbuf_detach(&sb, NULL);
}

/* The directory that holds the entry path: "/" for an entry of the root. */
static char *
parent_dir(const char *path)
{
	char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');

	if (slash == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	return dir;
}

/* Make an entry that was created, renamed or removed durable: fsync the directory holding it. */
static int
fsync_parent(const char *path, bs_error *err)
{
	char *dir = parent_dir(path);
	int rc = fileio_fsync_dir(dir, err);

	free(dir);
	return rc;
}

int
storage_local_make_dirs(const char *path, bool durable, bs_error *err)
{
	char *p = xstrdup(path);
	int rc = BS_OK;

	for (char *s = p + 1;; s++)
	{
		bool end = (*s == '\0');

		if (*s != '/' && !end)
			continue;
		*s = '\0';
		if (mkdir(p, DIR_MODE) == 0)
		{
			if (durable && (rc = fsync_parent(p, err)) != BS_OK)
				break;
		}
		else if (errno != EEXIST)
		{
			rc = error_set_errno(err, errno, "could not create directory \"%s\"", p);
			break;
		}
		else
		{
			struct stat sb;

			if (stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode))
			{
				rc = error_set(err, ERRCODE_IO, "could not create directory \"%s\": a file is in the way", p);
				break;
			}
		}
		if (end)
			break;
		*s = '/';
	}
	free(p);
	return rc;
}

static int
local_writer_open(storage *st, const char *key, storage_writer **out, bs_error *err)
{
	local_storage *ls = (local_storage *) st;
	local_writer *w;
	strbuf tmp = STRBUF_INIT;

	w = xcalloc(1, sizeof(*w));
	w->base.st = st;
	w->fd = -1;
	w->final_path = key_path(ls, key);
	w->dir_path = parent_dir(w->final_path);
	if (storage_local_make_dirs(w->dir_path, true, err) != BS_OK)
		goto fail;
	/* The temp file sits next to the target so that rename() is atomic. */
	strbuf_printf(&tmp, "%s/%sXXXXXX", strcmp(w->dir_path, "/") == 0 ? "" : w->dir_path,
				  STORAGE_TEMP_MARKER);
	w->tmp_path = strbuf_detach(&tmp, NULL);
	w->fd = mkostemp(w->tmp_path, O_CLOEXEC);
	if (w->fd < 0)
	{
		error_set_errno(err, errno, "could not create temporary file in \"%s\"", w->dir_path);
		goto fail;
	}
	if (fchmod(w->fd, FILE_MODE) != 0)
	{
		error_set_errno(err, errno, "could not set permissions of \"%s\"", w->tmp_path);
		goto fail;
	}
	*out = &w->base;
	return BS_OK;

fail:
	if (w->fd >= 0)
	{
		close(w->fd);
		unlink(w->tmp_path);
	}
	free(w->tmp_path);
	free(w->final_path);
	free(w->dir_path);
	free(w);
	return BS_ERR;
}

static void
local_writer_free(local_writer *w, bool remove_tmp)
{
	if (w->fd >= 0)
		close(w->fd);
	if (remove_tmp && w->tmp_path)
		unlink(w->tmp_path);
	free(w->tmp_path);
	free(w->final_path);
	free(w->dir_path);
	free(w);
}

static int
local_writer_write(storage_writer *base, const void *data, size_t len, bs_error *err)
{
	local_writer *w = (local_writer *) base;
	const char *p = data;

	while (len > 0)
	{
		ssize_t n = write(w->fd, p, len);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			return error_set_errno(err, errno, "could not write \"%s\"", w->tmp_path);
		}
		p += n;
		len -= (size_t) n;
	}
	return BS_OK;
}

static int
local_writer_commit(storage_writer *base, bs_error *err)
{
	local_writer *w = (local_writer *) base;
	int rc = BS_ERR;

	if (fsync(w->fd) != 0)
	{
		error_set_errno(err, errno, "could not fsync \"%s\"", w->tmp_path);
		goto out;
	}
	if (close(w->fd) != 0)
	{
		w->fd = -1;
		error_set_errno(err, errno, "could not close \"%s\"", w->tmp_path);
		goto out;
	}
	w->fd = -1;
	if (rename(w->tmp_path, w->final_path) != 0)
	{
		error_set_errno(err, errno, "could not rename \"%s\" to \"%s\"", w->tmp_path, w->final_path);
		goto out;
	}
	free(w->tmp_path);
	w->tmp_path = NULL;
	rc = fileio_fsync_dir(w->dir_path, err);
out:
	local_writer_free(w, true);
	return rc;
}

static void
local_writer_abort(storage_writer *base)
{
	local_writer_free((local_writer *) base, true);
}

static int
local_get(storage *st, const char *key, uint64_t offset, uint64_t length,
		  storage_sink sink, void *ctx, bs_error *err)
{
	local_storage *ls = (local_storage *) st;
	char *path = key_path(ls, key);
	int fd;
	struct stat sb;
	char *buf = NULL;
	uint64_t end;
	int rc = BS_ERR;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
	{
		if (errno == ENOENT || errno == ENOTDIR)
			error_set(err, ERRCODE_NOT_FOUND, "object \"%s\" does not exist in %s", key, st->description);
		else
			error_set_errno(err, errno, "could not open \"%s\"", path);
		goto out;
	}
	if (fstat(fd, &sb) != 0)
	{
		error_set_errno(err, errno, "could not stat \"%s\"", path);
		goto out;
	}
	if (!S_ISREG(sb.st_mode))
	{
		error_set(err, ERRCODE_NOT_FOUND, "object \"%s\" does not exist in %s", key, st->description);
		goto out;
	}
	end = length == 0 ? (uint64_t) sb.st_size : offset + length;
	if (offset > (uint64_t) sb.st_size || end > (uint64_t) sb.st_size)
	{
		error_set(err, ERRCODE_OUT_OF_RANGE,
				  "range %llu+%llu is beyond the end of \"%s\" (%llu bytes)",
				  (unsigned long long) offset, (unsigned long long) length, key,
				  (unsigned long long) sb.st_size);
		goto out;
	}
	buf = xmalloc(READ_CHUNK);
	while (offset < end)
	{
		size_t want = end - offset > READ_CHUNK ? READ_CHUNK : (size_t) (end - offset);
		ssize_t n = pread(fd, buf, want, (off_t) offset);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			error_set_errno(err, errno, "could not read \"%s\"", path);
			goto out;
		}
		if (n == 0)
		{
			/* The file shrank under us: never hand out a silently short object. */
			error_set(err, ERRCODE_DATA_CORRUPTED, "unexpected end of file in \"%s\"", path);
			goto out;
		}
		if (sink(ctx, buf, (size_t) n, err) != BS_OK)
			goto out;
		offset += (uint64_t) n;
	}
	rc = BS_OK;
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(path);
	return rc;
}

static int
local_head(storage *st, const char *key, bool *exists, storage_stat *stat_out, bs_error *err)
{
	char *path = key_path((local_storage *) st, key);
	struct stat sb;
	int rc = BS_OK;

	if (stat(path, &sb) != 0)
	{
		if (errno != ENOENT && errno != ENOTDIR)
			rc = error_set_errno(err, errno, "could not stat \"%s\"", path);
	}
	else if (S_ISREG(sb.st_mode))
	{
		*exists = true;
		stat_out->size = (uint64_t) sb.st_size;
		stat_out->mtime = (int64_t) sb.st_mtime;
	}
	free(path);
	return rc;
}

typedef struct dir_entry
{
	char	   *sort_name;		/* name, with '/' appended for directories */
	bool		is_dir;
	uint64_t	size;
} dir_entry;

static int
entry_cmp(const void *a, const void *b)
{
	return strcmp(((const dir_entry *) a)->sort_name, ((const dir_entry *) b)->sort_name);
}

/*
 * Walk dir (whose keys start with key_prefix, "" or ending in '/') and report keys that
 * start with want and sort after after (when not NULL), in byte order.  Sorting directory
 * names with a trailing '/' makes the depth-first order equal to the lexicographic order of
 * the full keys.
 */
static int
list_dir(const char *dir, strbuf *key_prefix, const char *want, const char *after,
		 storage_list_cb cb, void *ctx, bs_error *err)
{
	DIR *d = opendir(dir);
	dir_entry *ents = NULL;
	size_t n = 0, cap = 0;
	size_t want_len = strlen(want);
	size_t base_len = key_prefix->len;
	int rc = BS_OK;
	struct dirent *de;

	if (d == NULL)
	{
		if (errno == ENOENT || errno == ENOTDIR)
			return BS_OK;
		return error_set_errno(err, errno, "could not open directory \"%s\"", dir);
	}
	for (;;)
	{
		struct stat sb;
		strbuf path = STRBUF_INIT;

		errno = 0;
		de = readdir(d);
		if (de == NULL)
		{
			if (errno != 0)
				rc = error_set_errno(err, errno, "could not read directory \"%s\"", dir);
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
			strncmp(de->d_name, STORAGE_TEMP_MARKER, strlen(STORAGE_TEMP_MARKER)) == 0)
			continue;
		strbuf_printf(&path, "%s/%s", dir, de->d_name);
		if (lstat(path.data, &sb) != 0)
		{
			/* Deleted concurrently: simply not listed. */
			if (errno == ENOENT)
			{
				strbuf_free(&path);
				continue;
			}
			rc = error_set_errno(err, errno, "could not stat \"%s\"", path.data);
			strbuf_free(&path);
			break;
		}
		strbuf_free(&path);
		if (!S_ISREG(sb.st_mode) && !S_ISDIR(sb.st_mode))
			continue;
		if (n == cap)
		{
			cap = cap ? cap * 2 : 64;
			ents = xrealloc(ents, cap * sizeof(*ents));
		}
		{
			strbuf name = STRBUF_INIT;

			strbuf_append_str(&name, de->d_name);
			if (S_ISDIR(sb.st_mode))
				strbuf_append_char(&name, '/');
			ents[n].sort_name = strbuf_detach(&name, NULL);
		}
		ents[n].is_dir = S_ISDIR(sb.st_mode);
		ents[n].size = (uint64_t) sb.st_size;
		n++;
	}
	closedir(d);
	if (rc == BS_OK && n > 1)
		qsort(ents, n, sizeof(*ents), entry_cmp);
	for (size_t i = 0; rc == BS_OK && i < n; i++)
	{
		size_t cmp_len;

		key_prefix->len = base_len;
		key_prefix->data[base_len] = '\0';
		strbuf_append_str(key_prefix, ents[i].sort_name);
		/* Skip subtrees and files that cannot match the wanted prefix. */
		cmp_len = key_prefix->len < want_len ? key_prefix->len : want_len;
		if (strncmp(key_prefix->data, want, cmp_len) != 0)
			continue;
		/*
		 * Skip what sorts at or before after: a file by its key, a directory when every key
		 * in it does (its "d/" sorts before after without being a prefix of it).
		 */
		if (after != NULL &&
			(ents[i].is_dir ? strncmp(key_prefix->data, after, key_prefix->len) < 0
			 : strcmp(key_prefix->data, after) <= 0))
			continue;
		if (ents[i].is_dir)
		{
			strbuf sub = STRBUF_INIT;

			strbuf_printf(&sub, "%s/%.*s", dir, (int) (strlen(ents[i].sort_name) - 1), ents[i].sort_name);
			rc = list_dir(sub.data, key_prefix, want, after, cb, ctx, err);
			strbuf_free(&sub);
		}
		else if (key_prefix->len >= want_len)
			rc = cb(ctx, key_prefix->data, ents[i].size, err);
	}
	key_prefix->len = base_len;
	if (key_prefix->data)
		key_prefix->data[base_len] = '\0';
	for (size_t i = 0; i < n; i++)
		free(ents[i].sort_name);
	free(ents);
	return rc;
}

static int
local_list(storage *st, const char *prefix, const char *start_after,
		   storage_list_cb cb, void *ctx, bs_error *err)
{
	local_storage *ls = (local_storage *) st;
	const char *slash = strrchr(prefix, '/');
	strbuf key_prefix = STRBUF_INIT;
	strbuf dir = STRBUF_INIT;
	int rc;

	/* Start at the deepest directory the prefix names completely. */
	strbuf_append_str(&dir, strcmp(ls->root, "/") == 0 ? "" : ls->root);
	strbuf_reserve(&key_prefix, 1);
	key_prefix.data[0] = '\0';
	if (slash)
	{
		strbuf_append(&key_prefix, prefix, (size_t) (slash - prefix) + 1);
		strbuf_append_char(&dir, '/');
		strbuf_append(&dir, prefix, (size_t) (slash - prefix));
	}
	if (dir.len == 0)
		strbuf_append_char(&dir, '/');
	rc = list_dir(dir.data, &key_prefix, prefix, start_after, cb, ctx, err);
	strbuf_free(&key_prefix);
	strbuf_free(&dir);
	return rc;
}

static int
local_delete(storage *st, const char *key, bs_error *err)
{
	char *path = key_path((local_storage *) st, key);
	int rc = BS_OK;

	if (unlink(path) != 0)
	{
		if (errno != ENOENT && errno != ENOTDIR)
			rc = error_set_errno(err, errno, "could not delete \"%s\"", path);
	}
	else
		rc = fsync_parent(path, err);
	free(path);
	return rc;
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * Unlink every key's file, then sync each directory that lost one once (not once per key):
 * a batch of deletions in one directory costs one fsync.  A key that cannot be deleted does
 * not stop the others; the first failure is reported with the number of failures.
 */
static int
local_delete_many(storage *st, const char *const *keys, int n, bs_error *err)
{
	char **dirs = xcalloc((size_t) n, sizeof(char *));
	int ndirs = 0;
	int failed = 0;
	bs_error first;
	int rc = BS_OK;

	error_clear(&first);
	for (int i = 0; i < n; i++)
	{
		char *path = key_path((local_storage *) st, keys[i]);
		char *slash;

		if (unlink(path) != 0)
		{
			if (errno != ENOENT && errno != ENOTDIR && failed++ == 0)
				error_set_errno(&first, errno, "could not delete \"%s\"", path);
			free(path);
			continue;
		}
		slash = strrchr(path, '/');
		if (slash == path)
			slash[1] = '\0';
		else
			*slash = '\0';
		dirs[ndirs++] = path;
	}
	if (ndirs > 1)
		qsort(dirs, (size_t) ndirs, sizeof(char *), str_cmp);
	for (int i = 0; i < ndirs; i++)
	{
		/* Even after a failure: what was deleted is made durable. */
		if ((i == 0 || strcmp(dirs[i], dirs[i - 1]) != 0) && fileio_fsync_dir(dirs[i], err) != BS_OK && rc == BS_OK)
		{
			rc = BS_ERR;
			first = *err;
		}
	}
	for (int i = 0; i < ndirs; i++)
		free(dirs[i]);
	free(dirs);
	if (failed > 0)
	{
		*err = first;
		if (failed > 1)
			error_prefix(err, "%d of %d keys not deleted", failed, n);
		return BS_ERR;
	}
	if (rc != BS_OK)
		*err = first;
	return rc;
}

/* A local object's version tag: the SHA-256 of its content, in hex. */
static char *
content_tag(const strbuf *data)
{
	char hex[2 * DIGEST_SHA256_LEN + 1];

	digest_sha256_hex(data->data, data->len, hex);
	return xstrdup(hex);
}

static int
local_get_tagged(storage *st, const char *key, strbuf *out, char **tag, bs_error *err)
{
	/* A put replaces the file by rename(2): a read sees one version or the other. */
	if (local_get(st, key, 0, 0, storage_sink_strbuf, out, err) != BS_OK)
		return BS_ERR;
	*tag = content_tag(out);
	return BS_OK;
}

static int
flock_ex(int fd)
{
	int rc;

	while ((rc = flock(fd, LOCK_EX)) != 0 && errno == EINTR)
		;
	return rc;
}

/*
 * Conditional writers of a key hold an exclusive flock(2) on the key's directory: read,
 * compare and replace are then atomic against every other conditional writer of a key of
 * that directory on this file system.  Where a directory cannot be locked (some network
 * file systems), a lock file beside the key stands in (named with the temp marker, so
 * listings never show it).
 */
static int
local_put_if(storage *st, const char *key, const void *data, size_t len, const char *tag, bs_error *err)
{
	char *path = key_path((local_storage *) st, key);
	char *slash = strrchr(path, '/');
	strbuf lock_path = STRBUF_INIT;
	strbuf cur = STRBUF_INIT;
	char *cur_tag = NULL;
	bool exists = true;
	int fd = -1;
	int rc = BS_ERR;

	*slash = '\0';
	if (storage_local_make_dirs(path[0] ? path : "/", true, err) != BS_OK)
		goto out;
	fd = open(path[0] ? path : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
	{
		error_set_errno(err, errno, "could not open directory \"%s\"", path[0] ? path : "/");
		goto out;
	}
	if (flock_ex(fd) != 0)
	{
		if (errno != ENOLCK && errno != EBADF && errno != EINVAL && errno != EOPNOTSUPP)
		{
			error_set_errno(err, errno, "could not lock directory \"%s\"", path[0] ? path : "/");
			goto out;
		}
		close(fd);
		strbuf_printf(&lock_path, "%s/%slock-%s", path, STORAGE_TEMP_MARKER, slash + 1);
		fd = open(lock_path.data, O_RDWR | O_CREAT | O_CLOEXEC, FILE_MODE);
		if (fd < 0)
		{
			error_set_errno(err, errno, "could not open lock file \"%s\"", lock_path.data);
			goto out;
		}
		if (flock_ex(fd) != 0)
		{
			error_set_errno(err, errno, "could not lock \"%s\"", lock_path.data);
			goto out;
		}
	}
	if (local_get(st, key, 0, 0, storage_sink_strbuf, &cur, err) != BS_OK)
	{
		if (strcmp(err->code, ERRCODE_NOT_FOUND) != 0)
			goto out;
		error_clear(err);
		exists = false;
	}
	else
		cur_tag = content_tag(&cur);
	if (tag == NULL && exists)
	{
		error_set(err, ERRCODE_PRECONDITION, "object \"%s\" already exists in %s", key, st->description);
		goto out;
	}
	if (tag != NULL && (!exists || strcmp(cur_tag, tag) != 0))
	{
		error_set(err, ERRCODE_PRECONDITION, "object \"%s\" in %s %s since it was read", key, st->description,
				  exists ? "was replaced" : "was deleted");
		goto out;
	}
	/* The driver's own writer, not storage_put: the request is counted once, as a put_if. */
	{
		storage_writer *w;

		if (local_writer_open(st, key, &w, err) == BS_OK)
		{
			if (len > 0 && local_writer_write(w, data, len, err) != BS_OK)
				local_writer_abort(w);
			else
				rc = local_writer_commit(w, err);
		}
	}
out:
	if (fd >= 0)
		close(fd);				/* releases the lock */
	strbuf_free(&lock_path);
	strbuf_free(&cur);
	free(cur_tag);
	free(path);
	return rc;
}

static void
local_close(storage *st)
{
	local_storage *ls = (local_storage *) st;

	free(ls->root);
	free(ls);
}

static const storage_ops local_ops = {
	.writer_open = local_writer_open,
	.writer_write = local_writer_write,
	.writer_commit = local_writer_commit,
	.writer_abort = local_writer_abort,
	.get = local_get,
	.head = local_head,
	.list = local_list,
	.delete_key = local_delete,
	.delete_many = local_delete_many,
	.get_tagged = local_get_tagged,
	.put_if = local_put_if,
	.close = local_close,
};

int
storage_local_adopt(storage *st, const char *key, const char *path, int fd, bs_error *err)
{
	char *final_path;
	char *dir;
	char *old_dir;
	int own_fd = -1;
	int rc = BS_ERR;

	if (st->ops != &local_ops)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "%s is not a local storage: cannot adopt \"%s\"",
						 st->description ? st->description : "storage", path);
	if (!storage_key_valid(key))
		return error_set(err, ERRCODE_INVALID_PARAMETER, "invalid storage key \"%.200s\"", key);
	if (path[0] != '/')
		return error_set(err, ERRCODE_INVALID_PARAMETER, "cannot adopt \"%s\": not an absolute path", path);
	final_path = key_path((local_storage *) st, key);
	dir = parent_dir(final_path);
	old_dir = parent_dir(path);
	if (fd < 0)
	{
		own_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (own_fd < 0)
		{
			error_set_errno(err, errno, "could not open \"%s\"", path);
			goto out;
		}
		fd = own_fd;
	}
	if (fsync(fd) != 0)
	{
		error_set_errno(err, errno, "could not fsync \"%s\"", path);
		goto out;
	}
	if (storage_local_make_dirs(dir, true, err) != BS_OK)
		goto out;
	if (rename(path, final_path) != 0)
	{
		error_set_errno(err, errno, "could not rename \"%s\" to \"%s\"", path, final_path);
		goto out;
	}
	if (fileio_fsync_dir(dir, err) != BS_OK)
		goto out;
	if (strcmp(old_dir, dir) != 0 && fileio_fsync_dir(old_dir, err) != BS_OK)
		goto out;
	rc = BS_OK;
out:
	if (own_fd >= 0)
		close(own_fd);
	free(final_path);
	free(dir);
	free(old_dir);
	return rc;
}

int
storage_local_remove_dir(storage *st, const char *dir, bool *removed, bs_error *err)
{
	char *path;
	int rc = BS_OK;

	*removed = false;
	if (st->ops != &local_ops)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "%s is not a local storage: cannot remove \"%s\"",
						 st->description ? st->description : "storage", dir);
	if (!storage_key_valid(dir))
		return error_set(err, ERRCODE_INVALID_PARAMETER, "invalid storage key \"%.200s\"", dir);
	path = key_path((local_storage *) st, dir);
	if (rmdir(path) != 0)
	{
		if (errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST && errno != ENOTDIR)
			rc = error_set_errno(err, errno, "could not remove directory \"%s\"", path);
		free(path);
		return rc;
	}
	*removed = true;
	rc = fsync_parent(path, err);
	free(path);
	return rc;
}

int
storage_local_list_dirs(storage *st, storage_list_cb cb, void *ctx, bs_error *err)
{
	local_storage *ls = (local_storage *) st;
	DIR *d;
	struct dirent *de;
	int rc = BS_OK;

	if (st->ops != &local_ops)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "%s is not a local storage: cannot list its directories",
						 st->description ? st->description : "storage");
	d = opendir(ls->root);
	if (d == NULL)
		return errno == ENOENT ? BS_OK : error_set_errno(err, errno, "could not open directory \"%s\"", ls->root);
	while (rc == BS_OK && (errno = 0, de = readdir(d)) != NULL)
	{
		struct stat sb;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (de->d_type == DT_DIR ||
			(de->d_type == DT_UNKNOWN && fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
			 S_ISDIR(sb.st_mode)))
			rc = cb(ctx, de->d_name, 0, err);
	}
	if (rc == BS_OK && de == NULL && errno != 0)
		rc = error_set_errno(err, errno, "could not read directory \"%s\"", ls->root);
	closedir(d);
	return rc;
}

int
storage_local_open(const char *root, storage **out, bs_error *err)
{
	local_storage *ls;
	struct stat sb;

	if (root[0] != '/')
		return error_set(err, ERRCODE_INVALID_PARAMETER, "storage root \"%s\" is not an absolute path", root);
	/* A missing root is fine (created on the first put); anything but a directory is not. */
	if (stat(root, &sb) == 0 && !S_ISDIR(sb.st_mode))
		return error_set(err, ERRCODE_INVALID_PARAMETER, "storage root \"%s\" is not a directory", root);
	ls = xcalloc(1, sizeof(*ls));
	ls->base.ops = &local_ops;
	ls->root = xstrdup(root);
	*out = &ls->base;
	return BS_OK;
}
