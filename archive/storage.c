/* storage.c — storage URL parsing, key validation and dispatch to the file:// and s3:// drivers. */
#include "storage.h"
#include "storage_crypt.h"
#include "storage_local.h"
#include "storage_s3.h"
#include "redact.h"
#include "strbuf.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEY_LEN 1024

static void
count(storage *st, storage_op op, uint64_t bytes)
{
	__atomic_fetch_add(&st->stats.requests[op], 1, __ATOMIC_RELAXED);
	if (bytes)
		__atomic_fetch_add(&st->stats.bytes[op], bytes, __ATOMIC_RELAXED);
}

void
storage_stats_add(const storage *st, storage_stats *sum)
{
	while (st->wrapped)
		st = st->wrapped;
	for (int i = 0; i < STORAGE_NOPS; i++)
	{
		sum->requests[i] += __atomic_load_n(&st->stats.requests[i], __ATOMIC_RELAXED);
		sum->bytes[i] += __atomic_load_n(&st->stats.bytes[i], __ATOMIC_RELAXED);
	}
}

const char *
storage_op_name(storage_op op)
{
	static const char *const names[STORAGE_NOPS] = {
		"put", "get", "head", "list", "delete", "get_tagged", "put_if", "delete_many"
	};

	return (int) op >= 0 && op < STORAGE_NOPS ? names[op] : "unknown";
}

bool
storage_key_valid(const char *key)
{
	size_t len;
	const char *comp;

	if (key == NULL)
		return false;
	len = strlen(key);
	if (len == 0 || len > MAX_KEY_LEN)
		return false;
	for (const unsigned char *p = (const unsigned char *) key; *p; p++)
		if (*p < 0x20 || *p == 0x7f || *p == '\\')
			return false;
	/* Check each '/'-separated component. */
	comp = key;
	for (;;)
	{
		const char *slash = strchr(comp, '/');
		size_t clen = slash ? (size_t) (slash - comp) : strlen(comp);

		if (clen == 0)
			return false;		/* leading, trailing or doubled slash */
		if ((clen == 1 && comp[0] == '.') || (clen == 2 && comp[0] == '.' && comp[1] == '.'))
			return false;
		if (clen >= strlen(STORAGE_TEMP_MARKER) &&
			strncmp(comp, STORAGE_TEMP_MARKER, strlen(STORAGE_TEMP_MARKER)) == 0)
			return false;
		if (slash == NULL)
			break;
		comp = slash + 1;
	}
	return true;
}

/* A list prefix may end in '/' or in a partial component, but must not escape the root. */
static bool
prefix_valid(const char *prefix)
{
	strbuf sb = STRBUF_INIT;
	bool ok;
	size_t len = strlen(prefix);

	if (len == 0)
		return true;
	if (len > MAX_KEY_LEN)
		return false;
	/* "a/b/" is valid when "a/b/x" is a valid key. */
	strbuf_append_str(&sb, prefix);
	if (prefix[len - 1] == '/')
		strbuf_append_char(&sb, 'x');
	ok = storage_key_valid(sb.data);
	strbuf_free(&sb);
	return ok;
}

static bool
bucket_name_valid(const char *b, size_t len)
{
	if (len < 3 || len > 63)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) b[i];

		if (!(islower(c) || isdigit(c) || c == '-' || c == '.'))
			return false;
	}
	return isalnum((unsigned char) b[0]) && isalnum((unsigned char) b[len - 1]);
}

static int
check_file_url(const char *url, bs_error *err)
{
	const char *path = url + strlen("file://");

	/* Only the empty authority is accepted: file:///abs/path. */
	if (path[0] != '/')
		return error_set(err, ERRCODE_INVALID_PARAMETER,
						 "invalid storage URL \"%s\": expected file:///absolute/path", url);
	for (const unsigned char *p = (const unsigned char *) path; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return error_set(err, ERRCODE_INVALID_PARAMETER,
							 "invalid storage URL: the path holds a control character");
	return BS_OK;
}

static int
open_file_url(const char *url, storage **out, bs_error *err)
{
	const char *path = url + strlen("file://");
	char *root;
	size_t len;
	int rc;

	if (check_file_url(url, err) != BS_OK)
		return BS_ERR;
	root = xstrdup(path);
	len = strlen(root);
	while (len > 1 && root[len - 1] == '/')
		root[--len] = '\0';
	rc = storage_local_open(root, out, err);
	free(root);
	return rc;
}

/* Split s3://bucket[/prefix] into the bucket and the prefix ("" or ending in '/'). */
static int
parse_s3_url(const char *url, char **bucket, strbuf *prefix, bs_error *err)
{
	const char *rest = url + strlen("s3://");
	const char *slash = strchr(rest, '/');
	size_t blen = slash ? (size_t) (slash - rest) : strlen(rest);

	*bucket = NULL;
	if (memchr(rest, '@', blen) != NULL)
		return error_set(err, ERRCODE_INVALID_PARAMETER,
						 "invalid storage URL: credentials in s3:// URLs are not supported; "
						 "use s3_access_key_id/s3_secret_access_key or AWS_* variables");
	if (!bucket_name_valid(rest, blen))
		return error_set(err, ERRCODE_INVALID_PARAMETER,
						 "invalid storage URL \"%s\": \"%.*s\" is not a valid bucket name "
						 "(3-63 lowercase letters, digits, dots and hyphens)", url, (int) blen, rest);
	if (slash)
	{
		const char *p = slash;
		size_t plen;

		while (*p == '/')
			p++;
		plen = strlen(p);
		while (plen > 0 && p[plen - 1] == '/')
			plen--;
		if (plen > 0)
		{
			strbuf_append(prefix, p, plen);
			if (!storage_key_valid(prefix->data))
				return error_set(err, ERRCODE_INVALID_PARAMETER,
								 "invalid storage URL \"%s\": bad prefix", url);
			strbuf_append_char(prefix, '/');
		}
	}
	*bucket = xstrndup(rest, blen);
	return BS_OK;
}

static int
open_s3_url(const char *url, const storage_s3_options *options, storage **out, bs_error *err)
{
	char *bucket = NULL;
	strbuf prefix = STRBUF_INIT;
	int rc;

	rc = parse_s3_url(url, &bucket, &prefix, err);
	if (rc == BS_OK)
		rc = storage_s3_open(bucket, prefix.data ? prefix.data : "", options, out, err);
	free(bucket);
	strbuf_free(&prefix);
	return rc;
}

int
storage_url_check(const char *url, bs_error *err)
{
	if (url == NULL || *url == '\0')
		return error_set(err, ERRCODE_INVALID_PARAMETER, "no storage URL given");
	if (strncmp(url, "file://", 7) == 0)
		return check_file_url(url, err);
	if (strncmp(url, "s3://", 5) == 0)
	{
		char *bucket = NULL;
		strbuf prefix = STRBUF_INIT;
		int rc = parse_s3_url(url, &bucket, &prefix, err);

		free(bucket);
		strbuf_free(&prefix);
		return rc;
	}
	{
		char *shown = redact_text(url);
		int rc = error_set(err, ERRCODE_INVALID_PARAMETER,
						   "invalid storage URL \"%s\": expected file:///path or s3://bucket[/prefix]", shown);

		free(shown);
		return rc;
	}
}

void
storage_options_init(storage_options *o)
{
	memset(o, 0, sizeof(*o));
	/* As config.c's option table says for s3_verify_tls, s3_multipart_threshold, s3_timeout,
	 * retries and retry_base_delay. */
	o->s3.verify_tls = true;
	o->s3.part_size = INT64_C(16) * 1024 * 1024;
	o->s3.timeout_ms = 60 * 1000;
	o->s3.retries = 6;
	o->s3.retry_base_ms = 200;
}

/* What storage_reopen needs: the URL and a copy of the options (their strings owned). */
struct storage_reopen_info
{
	char	   *url;
	bool		raw;
	bool		has_options;
	storage_options options;
};

/* The strings of o, so that copying and freeing them cannot miss one. */
#define NSTRINGS 13
static void
option_strings(storage_options *o, const char **out[NSTRINGS])
{
	const char **p[NSTRINGS] = {
		&o->s3.endpoint, &o->s3.region, &o->s3.uri_style, &o->s3.access_key_id, &o->s3.secret_access_key,
		&o->s3.session_token, &o->s3.ca_file, &o->crypt.key_file, &o->crypt.passphrase,
		&o->crypt.passphrase_origin, &o->crypt.passphrase_file, &o->crypt.old_key_files,
		&o->crypt.old_passphrase_files,
	};

	memcpy(out, p, sizeof(p));
}

static struct storage_reopen_info *
reopen_info_new(const char *url, const storage_options *o, bool raw)
{
	struct storage_reopen_info *ri = xcalloc(1, sizeof(*ri));
	const char **str[NSTRINGS];

	ri->url = xstrdup(url);
	ri->raw = raw;
	ri->has_options = o != NULL;
	if (o == NULL)
		return ri;
	ri->options = *o;
	option_strings(&ri->options, str);
	for (int i = 0; i < NSTRINGS; i++)
		*str[i] = *str[i] ? xstrdup(*str[i]) : NULL;
	return ri;
}

static void
reopen_info_free(struct storage_reopen_info *ri)
{
	const char **str[NSTRINGS];

	if (ri == NULL)
		return;
	option_strings(&ri->options, str);
	for (int i = 0; ri->has_options && i < NSTRINGS; i++)
	{
		char	   *v = (char *) *str[i];

		/* Secrets do not outlive the handle in freed memory. */
		if (v)
			memset(v, 0, strlen(v));
		free(v);
	}
	free(ri->url);
	free(ri);
}

static int
open_driver(const char *url, const storage_options *options, storage **out, bs_error *err)
{
	storage_options defaults;
	int rc;

	*out = NULL;
	if (url == NULL || *url == '\0')
		return error_set(err, ERRCODE_INVALID_PARAMETER, "no storage URL given");
	if (options == NULL)
	{
		storage_options_init(&defaults);
		options = &defaults;
	}
	if (strncmp(url, "file://", 7) == 0)
		rc = open_file_url(url, out, err);
	else if (strncmp(url, "s3://", 5) == 0)
		rc = open_s3_url(url, &options->s3, out, err);
	else
		return storage_url_check(url, err);
	if (rc == BS_OK && (*out)->description == NULL)
		(*out)->description = redact_text(url);
	return rc;
}

int
storage_open_raw(const char *url, const storage_options *options, storage **out, bs_error *err)
{
	if (open_driver(url, options, out, err) != BS_OK)
		return BS_ERR;
	(*out)->reopen = reopen_info_new(url, options, true);
	return BS_OK;
}

int
storage_open(const char *url, const storage_options *options, storage **out, bs_error *err)
{
	storage *raw;

	if (open_driver(url, options, &raw, err) != BS_OK)
		return BS_ERR;
	if (options == NULL)
		*out = raw;
	/* Every object of the archive goes through the encryption layer (a pass-through
	 * without a key, that refuses encrypted objects). */
	else if (storage_crypt_wrap(raw, &options->crypt, out, err) != BS_OK)
		return BS_ERR;
	(*out)->reopen = reopen_info_new(url, options, false);
	return BS_OK;
}

int
storage_reopen(const storage *st, storage **out, bs_error *err)
{
	const struct storage_reopen_info *ri = st->reopen;

	*out = NULL;
	if (ri == NULL)
		return error_set(err, ERRCODE_INTERNAL, "storage %s cannot be opened again",
						 st->description ? st->description : "(not opened by storage_open)");
	return (ri->raw ? storage_open_raw : storage_open) (ri->url, ri->has_options ? &ri->options : NULL, out, err);
}

void
storage_close(storage *st)
{
	char *desc;
	struct storage_reopen_info *ri;

	if (st == NULL)
		return;
	desc = st->description;
	ri = st->reopen;
	st->ops->close(st);
	free(desc);
	reopen_info_free(ri);
}

const char *
storage_describe(const storage *st)
{
	return st->description;
}

static int
bad_key(const char *key, bs_error *err)
{
	return error_set(err, ERRCODE_INVALID_PARAMETER, "invalid storage key \"%.200s\"",
					 key ? key : "(null)");
}

int
storage_writer_open(storage *st, const char *key, storage_writer **out, bs_error *err)
{
	*out = NULL;
	if (!storage_key_valid(key))
		return bad_key(key, err);
	if (st->ops->writer_open(st, key, out, err) != BS_OK)
		return BS_ERR;
	(*out)->written = 0;
	return BS_OK;
}

int
storage_writer_write(storage_writer *w, const void *data, size_t len, bs_error *err)
{
	if (len == 0)
		return BS_OK;
	if (w->st->ops->writer_write(w, data, len, err) != BS_OK)
		return BS_ERR;
	w->written += len;
	return BS_OK;
}

int
storage_writer_commit(storage_writer *w, bs_error *err)
{
	/* Counted before: commit frees the writer. */
	count(w->st, STORAGE_OP_PUT, w->written);
	return w->st->ops->writer_commit(w, err);
}

void
storage_writer_abort(storage_writer *w)
{
	if (w)
		w->st->ops->writer_abort(w);
}

int
storage_put(storage *st, const char *key, const void *data, size_t len, bs_error *err)
{
	storage_writer *w;

	if (storage_writer_open(st, key, &w, err) != BS_OK)
		return BS_ERR;
	if (storage_writer_write(w, data, len, err) != BS_OK)
	{
		storage_writer_abort(w);
		return BS_ERR;
	}
	return storage_writer_commit(w, err);
}

/* The bytes a get delivers, counted as they pass to the caller's sink. */
typedef struct counting_sink
{
	storage    *st;
	storage_sink sink;
	void	   *ctx;
} counting_sink;

static int
count_sink(void *ctx, const void *data, size_t len, bs_error *err)
{
	counting_sink *c = ctx;

	__atomic_fetch_add(&c->st->stats.bytes[STORAGE_OP_GET], (uint64_t) len, __ATOMIC_RELAXED);
	return c->sink(c->ctx, data, len, err);
}

int
storage_get(storage *st, const char *key, uint64_t offset, uint64_t length,
			storage_sink sink, void *ctx, bs_error *err)
{
	if (!storage_key_valid(key))
		return bad_key(key, err);
	if (length > 0 && offset > UINT64_MAX - length)
		return error_set(err, ERRCODE_OUT_OF_RANGE, "invalid range for \"%s\"", key);
	{
		counting_sink c = {st, sink, ctx};

		count(st, STORAGE_OP_GET, 0);
		return st->ops->get(st, key, offset, length, count_sink, &c, err);
	}
}

int
storage_sink_strbuf(void *ctx, const void *data, size_t len, bs_error *err)
{
	(void) err;
	strbuf_append((strbuf *) ctx, data, len);
	return BS_OK;
}

int
storage_get_all(storage *st, const char *key, strbuf *out, bs_error *err)
{
	strbuf_reset(out);
	/* Keep the "always NUL-terminated" promise even for an empty object. */
	strbuf_reserve(out, 1);
	out->data[out->len] = '\0';
	if (storage_get(st, key, 0, 0, storage_sink_strbuf, out, err) != BS_OK)
	{
		strbuf_reset(out);
		return BS_ERR;
	}
	return BS_OK;
}

int
storage_head(storage *st, const char *key, bool *exists, storage_stat *stat, bs_error *err)
{
	storage_stat dummy;

	*exists = false;
	if (!storage_key_valid(key))
		return bad_key(key, err);
	if (stat == NULL)
		stat = &dummy;
	memset(stat, 0, sizeof(*stat));
	count(st, STORAGE_OP_HEAD, 0);
	return st->ops->head(st, key, exists, stat, err);
}

int
storage_list(storage *st, const char *prefix, storage_list_cb cb, void *ctx, bs_error *err)
{
	return storage_list_after(st, prefix, NULL, cb, ctx, err);
}

int
storage_list_after(storage *st, const char *prefix, const char *start_after,
				   storage_list_cb cb, void *ctx, bs_error *err)
{
	if (prefix == NULL)
		prefix = "";
	if (!prefix_valid(prefix))
		return error_set(err, ERRCODE_INVALID_PARAMETER, "invalid storage prefix \"%.200s\"", prefix);
	if (start_after != NULL && *start_after == '\0')
		start_after = NULL;
	if (start_after != NULL && !storage_key_valid(start_after))
		return bad_key(start_after, err);
	count(st, STORAGE_OP_LIST, 0);
	return st->ops->list(st, prefix, start_after, cb, ctx, err);
}

int
storage_collect_key(void *ctx, const char *key, uint64_t size, bs_error *err)
{
	storage_keys *k = ctx;

	(void) size;
	(void) err;
	if (k->count == k->cap)
	{
		k->cap = k->cap ? k->cap * 2 : 32;
		k->keys = xrealloc(k->keys, (size_t) k->cap * sizeof(char *));
	}
	k->keys[k->count++] = xstrdup(key);
	return BS_OK;
}

void
storage_keys_free(storage_keys *k)
{
	for (int i = 0; i < k->count; i++)
		free(k->keys[i]);
	free(k->keys);
	memset(k, 0, sizeof(*k));
}

int
storage_delete(storage *st, const char *key, bs_error *err)
{
	if (!storage_key_valid(key))
		return bad_key(key, err);
	count(st, STORAGE_OP_DELETE, 0);
	return st->ops->delete_key(st, key, err);
}

int
storage_delete_many(storage *st, const char *const *keys, int n, bs_error *err)
{
	if (n < 0 || (n > 0 && keys == NULL))
		return error_set(err, ERRCODE_INTERNAL, "storage_delete_many: bad arguments");
	/* All or nothing as far as our checks go: no half-done delete for a bad key. */
	for (int i = 0; i < n; i++)
		if (!storage_key_valid(keys[i]))
			return bad_key(keys[i], err);
	if (n == 0)
		return BS_OK;
	__atomic_fetch_add(&st->stats.requests[STORAGE_OP_DELETE_MANY],
					   (uint64_t) ((n + STORAGE_DELETE_BATCH - 1) / STORAGE_DELETE_BATCH), __ATOMIC_RELAXED);
	return st->ops->delete_many(st, keys, n, err);
}

int
storage_get_tagged(storage *st, const char *key, strbuf *out, char **tag, bs_error *err)
{
	*tag = NULL;
	strbuf_reset(out);
	if (!storage_key_valid(key))
		return bad_key(key, err);
	count(st, STORAGE_OP_GET_TAGGED, 0);
	if (st->ops->get_tagged(st, key, out, tag, err) != BS_OK)
	{
		strbuf_reset(out);
		free(*tag);
		*tag = NULL;
		return BS_ERR;
	}
	__atomic_fetch_add(&st->stats.bytes[STORAGE_OP_GET_TAGGED], (uint64_t) out->len, __ATOMIC_RELAXED);
	/* Keep the "always NUL-terminated" promise even for an empty object. */
	strbuf_reserve(out, 1);
	out->data[out->len] = '\0';
	return BS_OK;
}

int
storage_put_if(storage *st, const char *key, const void *data, size_t len, const char *tag, bs_error *err)
{
	if (!storage_key_valid(key))
		return bad_key(key, err);
	count(st, STORAGE_OP_PUT_IF, len);
	return st->ops->put_if(st, key, data, len, tag, err);
}
