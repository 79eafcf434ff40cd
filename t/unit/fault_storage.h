/* fault_storage.h — a storage wrapper for unit tests that fails chosen calls of a real storage: the Nth put, get, list or delete with a chosen error, short reads, corrupt bytes. */
#ifndef BACKSTOP_FAULT_STORAGE_H
#define BACKSTOP_FAULT_STORAGE_H

#include <stdlib.h>
#include <string.h>

#include "storage.h"
#include "strbuf.h"

/*
 * Calls of each kind (storage_op: a put is a committed writer, a delete_many one call) are
 * counted in calls[]; the call whose count reaches fail_from[op] (1-based, 0: none) and the
 * fail_count[op] - 1 after it (fail_count 0: all after it) fail with fail_code (default
 * ERRCODE_TRANSIENT) and the message "injected storage failure (OP N)", doing nothing: a
 * refused put makes nothing visible.  Gets (and get_tagged) that pass can be damaged:
 * short_get >= 0 delivers at most that many bytes of each and succeeds, as a broken driver
 * or a truncated object would; corrupt_at >= 0 flips the bits of the byte at that offset of
 * what each get delivers.  Writes to a writer are counted in writes, and from the
 * fail_write_from-th on (0: none) they fail likewise.  Everything else is forwarded to inner.
 */
typedef struct fault_storage
{
	storage		base;
	storage    *inner;
	bool		own_inner;		/* close inner with the wrapper */
	int			calls[STORAGE_NOPS];
	int			fail_from[STORAGE_NOPS];
	int			fail_count[STORAGE_NOPS];
	const char *fail_code;
	int			writes;			/* writer_write calls */
	int			fail_write_from;	/* refuse writer_write calls from this one on (1-based), 0: none */
	int64_t		short_get;
	int64_t		corrupt_at;
} fault_storage;

typedef struct fault_writer
{
	storage_writer base;
	storage_writer *inner;
} fault_writer;

/* Count a call of op; BS_ERR with err filled when it is one to fail. */
static int
fault_check(fault_storage *fs, storage_op op, bs_error *err)
{
	int			n = ++fs->calls[op];

	if (fs->fail_from[op] > 0 && n >= fs->fail_from[op] &&
		(fs->fail_count[op] == 0 || n < fs->fail_from[op] + fs->fail_count[op]))
		return error_set(err, fs->fail_code ? fs->fail_code : ERRCODE_TRANSIENT, "injected storage failure (%s %d)",
						 storage_op_name(op), n);
	return BS_OK;
}

static int
fault_writer_open(storage *st, const char *key, storage_writer **out, bs_error *err)
{
	fault_writer *fw = xcalloc(1, sizeof(*fw));

	if (storage_writer_open(((fault_storage *) st)->inner, key, &fw->inner, err) != BS_OK)
	{
		free(fw);
		return BS_ERR;
	}
	fw->base.st = st;
	*out = &fw->base;
	return BS_OK;
}

static int
fault_writer_write(storage_writer *w, const void *data, size_t len, bs_error *err)
{
	fault_storage *fs = (fault_storage *) w->st;

	if (++fs->writes >= fs->fail_write_from && fs->fail_write_from > 0)
		return error_set(err, fs->fail_code ? fs->fail_code : ERRCODE_TRANSIENT, "injected storage failure (write %d)",
						 fs->writes);
	return storage_writer_write(((fault_writer *) w)->inner, data, len, err);
}

static int
fault_writer_commit(storage_writer *w, bs_error *err)
{
	fault_writer *fw = (fault_writer *) w;
	int			rc;

	if (fault_check((fault_storage *) w->st, STORAGE_OP_PUT, err) != BS_OK)
	{
		storage_writer_abort(fw->inner);
		rc = BS_ERR;
	}
	else
		rc = storage_writer_commit(fw->inner, err);
	free(fw);
	return rc;
}

static void
fault_writer_abort(storage_writer *w)
{
	storage_writer_abort(((fault_writer *) w)->inner);
	free(w);
}

/* What a get passes on: cut at short_get, the byte at corrupt_at flipped. */
typedef struct fault_sink
{
	fault_storage *fs;
	storage_sink sink;
	void	   *ctx;
	uint64_t	pos;
} fault_sink;

static int
fault_sink_cb(void *ctx, const void *data, size_t len, bs_error *err)
{
	fault_sink *s = ctx;
	fault_storage *fs = s->fs;
	uint8_t    *copy;
	int			rc;

	if (fs->short_get >= 0 && s->pos + len > (uint64_t) fs->short_get)
		len = s->pos >= (uint64_t) fs->short_get ? 0 : (size_t) ((uint64_t) fs->short_get - s->pos);
	if (len == 0)
		return BS_OK;
	copy = xmalloc(len);
	memcpy(copy, data, len);
	if (fs->corrupt_at >= 0 && (uint64_t) fs->corrupt_at >= s->pos && (uint64_t) fs->corrupt_at < s->pos + len)
		copy[fs->corrupt_at - (int64_t) s->pos] ^= 0xff;
	s->pos += len;
	rc = s->sink(s->ctx, copy, len, err);
	free(copy);
	return rc;
}

static int
fault_get(storage *st, const char *key, uint64_t offset, uint64_t length, storage_sink sink, void *ctx, bs_error *err)
{
	fault_storage *fs = (fault_storage *) st;
	fault_sink	s = {fs, sink, ctx, 0};

	if (fault_check(fs, STORAGE_OP_GET, err) != BS_OK)
		return BS_ERR;
	return storage_get(fs->inner, key, offset, length, fault_sink_cb, &s, err);
}

static int
fault_head(storage *st, const char *key, bool *exists, storage_stat *stat, bs_error *err)
{
	if (fault_check((fault_storage *) st, STORAGE_OP_HEAD, err) != BS_OK)
		return BS_ERR;
	return storage_head(((fault_storage *) st)->inner, key, exists, stat, err);
}

static int
fault_list(storage *st, const char *prefix, const char *start_after, storage_list_cb cb, void *ctx,
		   bs_error *err)
{
	if (fault_check((fault_storage *) st, STORAGE_OP_LIST, err) != BS_OK)
		return BS_ERR;
	return storage_list_after(((fault_storage *) st)->inner, prefix, start_after, cb, ctx, err);
}

static int
fault_delete(storage *st, const char *key, bs_error *err)
{
	if (fault_check((fault_storage *) st, STORAGE_OP_DELETE, err) != BS_OK)
		return BS_ERR;
	return storage_delete(((fault_storage *) st)->inner, key, err);
}

static int
fault_delete_many(storage *st, const char *const *keys, int n, bs_error *err)
{
	if (fault_check((fault_storage *) st, STORAGE_OP_DELETE_MANY, err) != BS_OK)
		return BS_ERR;
	return storage_delete_many(((fault_storage *) st)->inner, keys, n, err);
}

static int
fault_get_tagged(storage *st, const char *key, strbuf *out, char **tag, bs_error *err)
{
	fault_storage *fs = (fault_storage *) st;
	strbuf		got = STRBUF_INIT;
	fault_sink	s = {fs, storage_sink_strbuf, out, 0};
	int			rc;

	if (fault_check(fs, STORAGE_OP_GET_TAGGED, err) != BS_OK)
		return BS_ERR;
	rc = storage_get_tagged(fs->inner, key, &got, tag, err);
	if (rc == BS_OK)
		rc = fault_sink_cb(&s, got.data ? got.data : "", got.len, err);
	strbuf_free(&got);
	return rc;
}

static int
fault_put_if(storage *st, const char *key, const void *data, size_t len, const char *tag, bs_error *err)
{
	if (fault_check((fault_storage *) st, STORAGE_OP_PUT_IF, err) != BS_OK)
		return BS_ERR;
	return storage_put_if(((fault_storage *) st)->inner, key, data, len, tag, err);
}

static void
fault_close(storage *st)
{
	fault_storage *fs = (fault_storage *) st;

	if (fs->own_inner)
		storage_close(fs->inner);
	free(fs);
}

static const storage_ops fault_ops = {
	.writer_open = fault_writer_open,
	.writer_write = fault_writer_write,
	.writer_commit = fault_writer_commit,
	.writer_abort = fault_writer_abort,
	.get = fault_get,
	.head = fault_head,
	.list = fault_list,
	.delete_key = fault_delete,
	.delete_many = fault_delete_many,
	.get_tagged = fault_get_tagged,
	.put_if = fault_put_if,
	.close = fault_close,
};

/* A wrapper around inner (closed with it when own_inner), failing nothing until told. */
static inline fault_storage *
fault_storage_new(storage *inner, bool own_inner)
{
	fault_storage *fs = xcalloc(1, sizeof(*fs));

	fs->base.ops = &fault_ops;
	fs->base.description = xstrdup("fault wrapper");
	fs->inner = inner;
	fs->own_inner = own_inner;
	fs->short_get = -1;
	fs->corrupt_at = -1;
	return fs;
}

/* Fail count calls of op (0: all) from the next one on. */
static inline void
fault_storage_fail_next(fault_storage *fs, storage_op op, int count)
{
	fs->fail_from[op] = fs->calls[op] + 1;
	fs->fail_count[op] = count;
}

/* Fail nothing any more, deliver gets whole. */
static inline void
fault_storage_heal(fault_storage *fs)
{
	memset(fs->fail_from, 0, sizeof(fs->fail_from));
	memset(fs->fail_count, 0, sizeof(fs->fail_count));
	fs->fail_write_from = 0;
	fs->short_get = -1;
	fs->corrupt_at = -1;
}

#endif
