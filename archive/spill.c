/* spill.c — data kept in a local file instead of memory (the archiver's open segments, recovery's temporary files). */
#include "spill.h"
#include "segment.h"
#include "storage_local.h"
#include "strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FILE_MODE 0640

struct spill_file
{
	int fd;
	char *path;
	uint64_t size;				/* bytes written (the file's length) */
	bool temp;					/* already unlinked (spill_create_temp) */
};

int
spill_create(const char *dir, const char *name, spill_file **out, bs_error *err)
{
	spill_file *f;
	strbuf path = STRBUF_INIT;
	int fd;

	*out = NULL;
	/* Not synced: a spill file only becomes durable when it is adopted. */
	if (storage_local_make_dirs(dir, false, err) != BS_OK)
		return BS_ERR;
	strbuf_printf(&path, "%s/%s", dir, name);
	fd = open(path.data, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, FILE_MODE);
	if (fd < 0)
	{
		error_set_errno(err, errno, "could not create spill file \"%s\"", path.data);
		strbuf_free(&path);
		return BS_ERR;
	}
	f = xcalloc(1, sizeof(*f));
	f->fd = fd;
	f->path = strbuf_detach(&path, NULL);
	*out = f;
	return BS_OK;
}

const char *
spill_temp_dir(const char *dir)
{
	const char *t;

	if (dir != NULL && *dir != '\0')
		return dir;
	t = getenv("TMPDIR");
	return t != NULL && *t != '\0' ? t : "/tmp";
}

int
spill_create_temp(const char *dir, const char *prefix, spill_file **out, bs_error *err)
{
	spill_file *f;
	strbuf path = STRBUF_INIT;
	int fd;

	*out = NULL;
	strbuf_printf(&path, "%s/%sXXXXXX", spill_temp_dir(dir), prefix);
	fd = mkostemp(path.data, O_CLOEXEC);
	if (fd < 0)
	{
		error_set_errno(err, errno, "could not create temporary file \"%s\"", path.data);
		strbuf_free(&path);
		return BS_ERR;
	}
	/* Nothing to clean up later, whatever happens to the process. */
	if (unlink(path.data) != 0)
	{
		error_set_errno(err, errno, "could not unlink temporary file \"%s\"", path.data);
		close(fd);
		strbuf_free(&path);
		return BS_ERR;
	}
	f = xcalloc(1, sizeof(*f));
	f->fd = fd;
	f->path = strbuf_detach(&path, NULL);
	f->temp = true;
	*out = f;
	return BS_OK;
}

static int
write_at(int fd, const char *name, const void *data, size_t len, uint64_t offset, bs_error *err)
{
	const char *p = data;

	while (len > 0)
	{
		ssize_t n = pwrite(fd, p, len, (off_t) offset);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			return error_set_errno(err, errno, "could not write spill file \"%s\"", name);
		}
		p += n;
		len -= (size_t) n;
		offset += (uint64_t) n;
	}
	return BS_OK;
}

static int
read_at(int fd, const char *name, void *data, size_t len, uint64_t offset, bs_error *err)
{
	char *p = data;

	while (len > 0)
	{
		ssize_t n = pread(fd, p, len, (off_t) offset);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			return error_set_errno(err, errno, "could not read spill file \"%s\"", name);
		}
		if (n == 0)
			return error_set(err, ERRCODE_DATA_CORRUPTED, "spill file \"%s\" is shorter than expected", name);
		p += n;
		len -= (size_t) n;
		offset += (uint64_t) n;
	}
	return BS_OK;
}

int
spill_read(const spill_file *f, uint64_t offset, void *data, size_t len, bs_error *err)
{
	if (offset > f->size || len > f->size - offset)
		return error_set(err, ERRCODE_INTERNAL, "spill file \"%s\": read of %zu bytes at %llu beyond its %llu bytes",
						 f->path, len, (unsigned long long) offset, (unsigned long long) f->size);
	return read_at(f->fd, f->path, data, len, offset, err);
}

int
spill_append(spill_file *f, const void *data, size_t len, bs_error *err)
{
	if (write_at(f->fd, f->path, data, len, f->size, err) != BS_OK)
	{
		/* Whatever part was written lies beyond size and is overwritten or cut later. */
		return BS_ERR;
	}
	f->size += len;
	return BS_OK;
}

int
spill_truncate(spill_file *f, uint64_t size, bs_error *err)
{
	if (size > f->size)
		return error_set(err, ERRCODE_INTERNAL, "spill file \"%s\": cannot extend %llu bytes to %llu", f->path,
						 (unsigned long long) f->size, (unsigned long long) size);
	while (ftruncate(f->fd, (off_t) size) != 0)
	{
		if (errno != EINTR)
			return error_set_errno(err, errno, "could not truncate spill file \"%s\"", f->path);
	}
	f->size = size;
	return BS_OK;
}

int
spill_patch_fd(int fd, const char *name, uint64_t from, uint64_t to, uint64_t end_lsn, size_t chunk,
			   bs_error *err)
{
	uint8_t *buf;
	uint64_t pos = from;
	int rc = BS_OK;

	if (chunk < SEGMENT_PATCH_SPAN)
		return error_set(err, ERRCODE_INTERNAL, "spill patch chunk of %zu bytes is too small", chunk);
	buf = xmalloc(chunk);
	while (pos < to)
	{
		size_t want = to - pos < chunk ? (size_t) (to - pos) : chunk;
		size_t patched = 0;
		size_t next;

		if ((rc = read_at(fd, name, buf, want, pos, err)) != BS_OK)
			break;
		next = segment_patch_end_lsn(buf, want, end_lsn, &patched);
		if (next == 0)
		{
			/* A whole chunk holds at least one record's patched span: only `to` can cut it. */
			rc = error_set(err, ERRCODE_DATA_CORRUPTED,
						   "spill file \"%s\": record at offset %llu is cut at %llu", name,
						   (unsigned long long) pos, (unsigned long long) to);
			break;
		}
		if (patched > 0 && (rc = write_at(fd, name, buf, patched, pos, err)) != BS_OK)
			break;
		pos += next;
	}
	if (rc == BS_OK && pos != to)
		rc = error_set(err, ERRCODE_DATA_CORRUPTED, "spill file \"%s\": a record overruns offset %llu by %llu bytes",
					   name, (unsigned long long) to, (unsigned long long) (pos - to));
	free(buf);
	return rc;
}

int
spill_patch_end_lsn(spill_file *f, uint64_t from, uint64_t end_lsn, bs_error *err)
{
	return spill_patch_fd(f->fd, f->path, from, f->size, end_lsn, SPILL_PATCH_CHUNK, err);
}

uint64_t
spill_size(const spill_file *f)
{
	return f->size;
}

const char *
spill_path(const spill_file *f)
{
	return f->path;
}

int
spill_fd(const spill_file *f)
{
	return f->fd;
}

void
spill_close(spill_file *f)
{
	if (f == NULL)
		return;
	if (f->fd >= 0)
		close(f->fd);
	free(f->path);
	free(f);
}

void
spill_discard(spill_file *f)
{
	if (f == NULL)
		return;
	if (!f->temp)
		unlink(f->path);
	spill_close(f);
}

/* ---------- arrays of fixed-size entries ---------- */

struct spill_array
{
	spill_file *f;
	size_t elsize;
	uint64_t n;
	uint64_t win_first;			/* the window holds entries [win_first, win_first + win_n) */
	uint64_t win_n;				/* 0: nothing in it */
	uint8_t win[SPILL_ARRAY_WINDOW];
};

int
spill_array_create(const char *dir, const char *prefix, size_t elsize, uint64_t n, spill_array **out,
				   bs_error *err)
{
	spill_array *a;
	spill_file *f;
	uint64_t size;

	*out = NULL;
	if (elsize == 0 || elsize > SPILL_ARRAY_WINDOW || SPILL_ARRAY_WINDOW % elsize != 0 ||
		n > (UINT64_MAX >> 2) / elsize)
		return error_set(err, ERRCODE_INTERNAL, "spill array of %llu entries of %zu bytes", (unsigned long long) n,
						 elsize);
	if (spill_create_temp(dir, prefix, &f, err) != BS_OK)
		return BS_ERR;
	/* Sparse: the file takes disk space only where entries are written. */
	size = n * elsize;
	while (ftruncate(f->fd, (off_t) size) != 0)
	{
		if (errno != EINTR)
		{
			error_set_errno(err, errno, "could not extend temporary file \"%s\" to %llu bytes", f->path,
							(unsigned long long) size);
			spill_close(f);
			return BS_ERR;
		}
	}
	f->size = size;
	a = xcalloc(1, sizeof(*a));
	a->f = f;
	a->elsize = elsize;
	a->n = n;
	*out = a;
	return BS_OK;
}

static int
array_bounds(const spill_array *a, uint64_t first, uint64_t n, bs_error *err)
{
	if (first > a->n || n > a->n - first)
		return error_set(err, ERRCODE_INTERNAL, "spill array \"%s\": entries %llu+%llu beyond its %llu",
						 a->f->path, (unsigned long long) first, (unsigned long long) n, (unsigned long long) a->n);
	return BS_OK;
}

int
spill_array_get(spill_array *a, uint64_t i, void *out, bs_error *err)
{
	if (i < a->win_first || i - a->win_first >= a->win_n)
	{
		uint64_t per = SPILL_ARRAY_WINDOW / a->elsize;
		uint64_t first = i - i % per;
		uint64_t n = a->n - first < per ? a->n - first : per;

		if (array_bounds(a, i, 1, err) != BS_OK)
			return BS_ERR;
		a->win_n = 0;
		if (read_at(a->f->fd, a->f->path, a->win, (size_t) (n * a->elsize), first * a->elsize, err) != BS_OK)
			return BS_ERR;
		a->win_first = first;
		a->win_n = n;
	}
	memcpy(out, a->win + (i - a->win_first) * a->elsize, a->elsize);
	return BS_OK;
}

int
spill_array_put(spill_array *a, uint64_t i, const void *in, bs_error *err)
{
	if (array_bounds(a, i, 1, err) != BS_OK)
		return BS_ERR;
	if (i >= a->win_first && i - a->win_first < a->win_n)
		memcpy(a->win + (i - a->win_first) * a->elsize, in, a->elsize);
	if (write_at(a->f->fd, a->f->path, in, a->elsize, i * a->elsize, err) != BS_OK)
	{
		a->win_n = 0;			/* the file may differ from the window now */
		return BS_ERR;
	}
	return BS_OK;
}

int
spill_array_read_range(const spill_array *a, uint64_t first, uint64_t n, void *out, bs_error *err)
{
	if (array_bounds(a, first, n, err) != BS_OK)
		return BS_ERR;
	return read_at(a->f->fd, a->f->path, out, (size_t) (n * a->elsize), first * a->elsize, err);
}

uint64_t
spill_array_length(const spill_array *a)
{
	return a->n;
}

void
spill_array_free(spill_array *a)
{
	if (a == NULL)
		return;
	spill_close(a->f);
	free(a);
}
