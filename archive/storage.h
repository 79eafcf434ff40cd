/* storage.h — one driver interface over object stores: a local directory (file://) and S3 (s3://). */
#ifndef BACKSTOP_STORAGE_H
#define BACKSTOP_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "strbuf.h"

typedef struct storage storage;
typedef struct storage_writer storage_writer;

typedef struct storage_stat
{
	uint64_t size;
	int64_t mtime;				/* seconds since the epoch, 0 if unknown */
} storage_stat;

/*
 * What a storage needs besides its URL: plain values, so that the library can be used
 * without the command line's configuration (src/cmd/storage_config.c builds them from it and
 * from the AWS_* environment).  Strings are borrowed: they need to live only as long as
 * the storage_open() call, which copies what it keeps (a new string field goes into
 * option_strings() in storage.c too).  NULL means unset.
 */
typedef struct storage_s3_options
{
	const char *endpoint;		/* http(s)://host[:port][/path]; NULL: AWS's for the region */
	const char *region;			/* NULL: us-east-1 */
	const char *uri_style;		/* "path" or "host"; NULL: path with an endpoint or a dotted bucket */
	const char *access_key_id;	/* required for s3:// */
	const char *secret_access_key;	/* required for s3:// */
	const char *session_token;
	const char *ca_file;		/* NULL: the system's CA bundle */
	bool		verify_tls;
	int64_t		part_size;		/* multipart threshold and part size, bytes (clamped to S3's limits) */
	int64_t		timeout_ms;		/* per request without progress: 1 s to 1 day */
	int			retries;		/* of a transient failure: 0 to 100 */
	int64_t		retry_base_ms;	/* first retry delay; doubles, with jitter */
} storage_s3_options;

/* Encryption at rest (storage_crypt.h): at most one of key_file, passphrase, passphrase_file. */
typedef struct storage_crypt_options
{
	const char *key_file;		/* 32 bytes or 64 hex digits */
	const char *passphrase;
	const char *passphrase_origin;	/* where passphrase came from, for messages */
	const char *passphrase_file;
	const char *old_key_files;	/* comma-separated: keys before a rotation, still read */
	const char *old_passphrase_files;	/* comma-separated, likewise */
} storage_crypt_options;

typedef struct storage_options
{
	storage_s3_options s3;
	storage_crypt_options crypt;
} storage_options;

/* The defaults: nothing set, TLS verified, the option table's S3 timeouts and retries. */
void storage_options_init(storage_options *o);

/* Open a storage by URL (file:///abs/path or s3://bucket[/prefix]).  Keys are relative to
 * the URL.  With options, objects pass through the encryption layer (storage_crypt.h) as
 * options->crypt says (a pass-through without a key); without (the spool, tests: NULL), and
 * with storage_open_raw, they are stored as they are given. */
int storage_open(const char *url, const storage_options *options, storage **out, bs_error *err);
int storage_open_raw(const char *url, const storage_options *options, storage **out, bs_error *err);
/* Another handle on the storage st was opened on, with the same options (a handle is used
 * by one thread at a time: the lease's heartbeat takes its own). */
int storage_reopen(const storage *st, storage **out, bs_error *err);
/* Check the syntax of a storage URL without opening anything (ERRCODE_INVALID_PARAMETER). */
int storage_url_check(const char *url, bs_error *err);
void storage_close(storage *st);
/* The URL with any credentials removed, for messages. */
const char *storage_describe(const storage *st);

/* Streaming put: nothing is visible under key until commit succeeds; a retry of the same
 * key and content is idempotent.  commit and abort free the writer. */
int storage_writer_open(storage *st, const char *key, storage_writer **out, bs_error *err);
int storage_writer_write(storage_writer *w, const void *data, size_t len, bs_error *err);
int storage_writer_commit(storage_writer *w, bs_error *err);
void storage_writer_abort(storage_writer *w);
int storage_put(storage *st, const char *key, const void *data, size_t len, bs_error *err);

/* Streaming get of [offset, offset+length) (length 0: to the end).  The sink may be called
 * many times; a non-BS_OK return from the sink stops the transfer and is returned.
 * A missing key fails with code ERRCODE_NOT_FOUND.  A range is exact or fails: one that
 * reaches past the end of the object (offset beyond it, or fewer than length bytes from
 * offset) fails with ERRCODE_OUT_OF_RANGE, and what a failed get gave the sink is not the
 * range.  The encryption layer refuses ranges of objects sealed whole. */
typedef int (*storage_sink) (void *ctx, const void *data, size_t len, bs_error *err);
int storage_get(storage *st, const char *key, uint64_t offset, uint64_t length,
				storage_sink sink, void *ctx, bs_error *err);
/* A storage_sink appending to the strbuf ctx. */
int storage_sink_strbuf(void *ctx, const void *data, size_t len, bs_error *err);
/* Whole object into a buffer. */
int storage_get_all(storage *st, const char *key, strbuf *out, bs_error *err);

int storage_head(storage *st, const char *key, bool *exists, storage_stat *stat, bs_error *err);

/* Every key under prefix ("" for all), all pages, in lexicographic (byte) order. */
typedef int (*storage_list_cb) (void *ctx, const char *key, uint64_t size, bs_error *err);
int storage_list(storage *st, const char *prefix, storage_list_cb cb, void *ctx, bs_error *err);
/* Likewise, only the keys sorting strictly after start_after (a key, relative like the
 * others; it need not exist): S3's ListObjectsV2 start-after, so that a reader who knows the
 * last key it saw lists only what follows (one request per 1,000 keys).  NULL or "": all. */
int storage_list_after(storage *st, const char *prefix, const char *start_after,
					   storage_list_cb cb, void *ctx, bs_error *err);

/* The keys a listing gave, in its order: ctx of storage_collect_key (a storage_list_cb). */
typedef struct storage_keys
{
	char **keys;
	int count;
	int cap;
} storage_keys;
int storage_collect_key(void *ctx, const char *key, uint64_t size, bs_error *err);
void storage_keys_free(storage_keys *k);

/* Deleting a missing key succeeds (idempotent). */
int storage_delete(storage *st, const char *key, bs_error *err);

/*
 * Delete n keys (n >= 0), missing ones included (as S3 does, a missing key is not an error):
 * S3 DeleteObjects, STORAGE_DELETE_BATCH keys per request; locally each file, then each
 * directory synced once.  Every key is validated before anything is deleted.  On a failure
 * some keys may be deleted and others not; the message names how many failed and the first
 * ones; deleting the same keys again is safe.
 */
#define STORAGE_DELETE_BATCH 1000
int storage_delete_many(storage *st, const char *const *keys, int n, bs_error *err);

/*
 * Small objects read and replaced under a condition (the archive's lease).  get_tagged
 * returns the object and a tag of its version (*tag, freed by the caller): the ETag on S3,
 * the SHA-256 of the content locally.  put_if writes only when the key is absent (tag
 * NULL: If-None-Match: *) or still has that tag (If-Match); otherwise it fails with
 * ERRCODE_PRECONDITION.  The local driver enforces the condition (compare and replace
 * under an flock(2) of the key's directory); S3 does on AWS, but S3-compatible servers may
 * ignore the headers and simply write (s3rver does), so a caller must read back what it
 * wrote to know.
 */
int storage_get_tagged(storage *st, const char *key, strbuf *out, char **tag, bs_error *err);
int storage_put_if(storage *st, const char *key, const void *data, size_t len, const char *tag, bs_error *err);

/*
 * Requests counted per handle, at this interface: one per call (a put is one object
 * written, whatever the number of multipart parts; a list is one call, whatever the number
 * of pages, with or without start_after; a ranged get is a get; a delete_many is one per
 * STORAGE_DELETE_BATCH keys, the DeleteObjects requests it makes; the S3 driver's own
 * retries are not counted).  A wrapper (the encryption layer)
 * reports the requests of the storage it wraps, which are the ones made.  Counters are
 * updated atomically: another thread may read them (the archiver's /metrics).
 */
typedef enum storage_op
{
	STORAGE_OP_PUT,				/* an object written: storage_put or a committed writer */
	STORAGE_OP_GET,
	STORAGE_OP_HEAD,
	STORAGE_OP_LIST,
	STORAGE_OP_DELETE,
	STORAGE_OP_GET_TAGGED,
	STORAGE_OP_PUT_IF,
	STORAGE_OP_DELETE_MANY,		/* one per STORAGE_DELETE_BATCH keys (one S3 DeleteObjects) */
	STORAGE_NOPS
} storage_op;

typedef struct storage_stats
{
	uint64_t requests[STORAGE_NOPS];	/* calls, successful or not */
	uint64_t bytes[STORAGE_NOPS];	/* stored bytes written (put, put_if) or read (get, get_tagged) */
} storage_stats;

/* The counts of st (of the storage it wraps, for a wrapper), added to *sum. */
void storage_stats_add(const storage *st, storage_stats *sum);
/* "put", "get", ...: the op label of the archiver's metrics. */
const char *storage_op_name(storage_op op);

/* A key is valid when it is 1..1024 bytes of printable text, relative ("a/b", not "/a"),
 * without empty, "." or ".." components and without the local driver's temp marker. */
bool storage_key_valid(const char *key);

/*
 * Driver interface, for storage.c and the drivers (storage_local.c, storage_s3.c) only.
 * A driver's handle embeds struct storage as its first member; storage.c validates keys
 * and arguments before dispatching, so drivers may assume valid keys.
 */
typedef struct storage_ops
{
	int			(*writer_open) (storage *st, const char *key, storage_writer **out, bs_error *err);
	int			(*writer_write) (storage_writer *w, const void *data, size_t len, bs_error *err);
	int			(*writer_commit) (storage_writer *w, bs_error *err);
	void		(*writer_abort) (storage_writer *w);
	int			(*get) (storage *st, const char *key, uint64_t offset, uint64_t length,
						storage_sink sink, void *ctx, bs_error *err);
	int			(*head) (storage *st, const char *key, bool *exists, storage_stat *stat, bs_error *err);
	/* start_after: NULL, or a key (not "") the listing starts after. */
	int			(*list) (storage *st, const char *prefix, const char *start_after,
						 storage_list_cb cb, void *ctx, bs_error *err);
	int			(*delete_key) (storage *st, const char *key, bs_error *err);
	/* 1 <= n; keys valid. */
	int			(*delete_many) (storage *st, const char *const *keys, int n, bs_error *err);
	int			(*get_tagged) (storage *st, const char *key, strbuf *out, char **tag, bs_error *err);
	int			(*put_if) (storage *st, const char *key, const void *data, size_t len, const char *tag,
						   bs_error *err);
	void		(*close) (storage *st);
} storage_ops;

struct storage
{
	const storage_ops *ops;
	char	   *description;	/* owned by storage.c, freed by storage_close */
	storage    *wrapped;		/* a wrapper's inner storage, whose counts are reported */
	storage_stats stats;		/* kept by storage.c (atomic updates) */
	struct storage_reopen_info *reopen;	/* set by storage_open on the handle it returns */
};

/* A driver's writer embeds this as its first member. */
struct storage_writer
{
	storage    *st;
	uint64_t	written;		/* bytes given to write (kept by storage.c) */
};

/* Local temp files start with this; keys may not use it in any component. */
#define STORAGE_TEMP_MARKER ".bs-tmp-"

#endif
