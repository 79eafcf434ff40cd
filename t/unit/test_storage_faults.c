/* test_storage_faults.c — the storage layer's error paths: the generic functions' refusals, and the encryption layer over a storage that fails (fault_storage.h). */
#include "fault_storage.h"
#include "storage.h"
#include "storage_crypt.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];
static int nsub;
static const uint8_t key_a[CRYPT_KEY_SIZE] = "0123456789abcdef0123456789abcde";
static const uint8_t key_b[CRYPT_KEY_SIZE] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcde";

/* err has code and its message contains msg; prints both when not. */
static bool
failed_with(int rc, const bs_error *err, const char *code, const char *msg)
{
	bool good = rc == BS_ERR && strcmp(err->code, code) == 0 && strstr(err->message, msg) != NULL;

	if (!good)
		printf("#   rc %d, code %s: %s\n", rc, err->code, err->message);
	return good;
}

/* A new, empty local archive under dir: its URL in url. */
static storage *
new_local(char *url, size_t size)
{
	storage *st = NULL;
	bs_error err;

	snprintf(url, size, "file://%s/a%d", dir, ++nsub);
	if (storage_open(url, NULL, &st, &err) != BS_OK)
	{
		printf("Bail out! %s\n", err.message);
		exit(1);
	}
	return st;
}

/* A fault wrapper owning a new local archive (and that archive, unwrapped, in *raw when asked). */
static fault_storage *
new_fault(storage **raw)
{
	char url[128];
	storage *local = new_local(url, sizeof(url));

	bs_error err;

	if (raw && storage_open(url, NULL, raw, &err) != BS_OK)
		exit(1);
	return fault_storage_new(local, true);
}

/* ---------- the generic functions (storage.c) ---------- */

static int
collect(void *ctx, const char *key, uint64_t size, bs_error *err)
{
	(void) size;
	return storage_collect_key(ctx, key, size, err);
}

static void
test_generic(void)
{
	char url[128];
	storage *st = new_local(url, sizeof(url));
	storage *st2 = NULL;
	bs_error err;
	strbuf out = STRBUF_INIT;
	char *tag = NULL;
	bool exists = true;
	storage_keys keys = {0};
	const char *const bad[] = {"ok", "../no"};
	fault_storage *fs;
	storage_options o;

	ok(failed_with(storage_head(st, "/abs", &exists, NULL, &err), &err, ERRCODE_INVALID_PARAMETER,
				   "invalid storage key \"/abs\"") && !exists, "head: an absolute key refused");
	ok(failed_with(storage_delete(st, "a/../b", &err), &err, ERRCODE_INVALID_PARAMETER, "invalid storage key"),
	   "delete: a .. component refused");
	ok(failed_with(storage_get_tagged(st, "a//b", &out, &tag, &err), &err, ERRCODE_INVALID_PARAMETER,
				   "invalid storage key"), "get_tagged: an empty component refused");
	ok(failed_with(storage_put_if(st, "x/" STORAGE_TEMP_MARKER "1", "x", 1, NULL, &err), &err,
				   ERRCODE_INVALID_PARAMETER, "invalid storage key"), "put_if: the temp marker refused");
	ok(failed_with(storage_get(st, "", 0, 0, storage_sink_strbuf, &out, &err), &err, ERRCODE_INVALID_PARAMETER,
				   "invalid storage key"), "get: an empty key refused");
	ok(failed_with(storage_delete_many(st, bad, 2, &err), &err, ERRCODE_INVALID_PARAMETER, "\"../no\""),
	   "delete_many: one bad key refuses all");
	ok(failed_with(storage_delete_many(st, NULL, 1, &err), &err, ERRCODE_INTERNAL, "bad arguments"),
	   "delete_many: no keys array refused");
	ok(storage_delete_many(st, NULL, 0, &err) == BS_OK, "delete_many of nothing");
	ok(failed_with(storage_list_after(st, "", "a/../b", collect, &keys, &err), &err, ERRCODE_INVALID_PARAMETER,
				   "invalid storage key"), "list_after: a bad start key refused");
	ok(failed_with(storage_list(st, "/x", collect, &keys, &err), &err, ERRCODE_INVALID_PARAMETER,
				   "invalid storage prefix"), "list: a bad prefix refused");
	ok(storage_put(st, "p/a", "1", 1, &err) == BS_OK && storage_put(st, "p/b", "22", 2, &err) == BS_OK &&
	   storage_put(st, "q", "3", 1, &err) == BS_OK, "three objects");
	ok(storage_list_after(st, NULL, "p/a", collect, &keys, &err) == BS_OK && keys.count == 2 &&
	   strcmp(keys.keys[0], "p/b") == 0 && strcmp(keys.keys[1], "q") == 0, "list_after with no prefix: what follows");
	storage_keys_free(&keys);
	ok(storage_list_after(st, "p/", "", collect, &keys, &err) == BS_OK && keys.count == 2, "list_after \"\": all");
	storage_keys_free(&keys);

	ok(!storage_key_valid(NULL), "no key is no valid key");
	{
		char long_prefix[1100];

		memset(long_prefix, 'a', sizeof(long_prefix) - 2);
		long_prefix[sizeof(long_prefix) - 2] = '/';
		long_prefix[sizeof(long_prefix) - 1] = '\0';
		ok(failed_with(storage_list(st, long_prefix, collect, &keys, &err), &err, ERRCODE_INVALID_PARAMETER,
					   "invalid storage prefix"), "a prefix longer than a key: refused");
	}
	ok(failed_with(storage_url_check(NULL, &err), &err, ERRCODE_INVALID_PARAMETER, "no storage URL given") &&
	   failed_with(storage_url_check("", &err), &err, ERRCODE_INVALID_PARAMETER, "no storage URL given"),
	   "url_check: no URL refused");
	ok(failed_with(storage_open(NULL, NULL, &st2, &err), &err, ERRCODE_INVALID_PARAMETER, "no storage URL given") &&
	   st2 == NULL, "open: no URL refused");
	ok(storage_open_raw("ftp://x/y", NULL, &st2, &err) == BS_ERR && st2 == NULL, "open_raw: an unknown scheme refused");
	ok(storage_url_check("s3://bkt/a/b///", &err) == BS_OK &&
	   storage_url_check("s3://bkt/a//b", &err) == BS_ERR, "S3 URLs: trailing slashes dropped, an empty component refused");

	/* storage_open_raw keeps what is needed to open it again, raw. */
	storage_options_init(&o);
	ok(storage_open_raw(url, &o, &st2, &err) == BS_OK, "open_raw");
	if (st2)
	{
		storage *st3 = NULL;

		ok(storage_reopen(st2, &st3, &err) == BS_OK && storage_get_all(st3, "q", &out, &err) == BS_OK &&
		   out.len == 1, "a raw handle reopens and reads");
		storage_close(st3);
		storage_close(st2);
	}

	/* A handle that storage_open did not make cannot be reopened. */
	fs = fault_storage_new(st, false);
	ok(failed_with(storage_reopen(&fs->base, &st2, &err), &err, ERRCODE_INTERNAL, "cannot be opened again") &&
	   st2 == NULL, "reopen of a hand-made wrapper: refused");

	/* A failed get leaves the buffer empty, not holding a part. */
	fs->short_get = 0;
	fs->fail_from[STORAGE_OP_GET] = fs->calls[STORAGE_OP_GET] + 1;
	strbuf_reset(&out);
	strbuf_append_str(&out, "stale");
	ok(failed_with(storage_get_all(&fs->base, "p/b", &out, &err), &err, ERRCODE_TRANSIENT, "injected storage failure (get")
	   && out.len == 0, "get_all: a failed get empties the buffer");
	fault_storage_heal(fs);

	/* A put whose data the storage refuses: aborted, nothing visible. */
	fs->fail_write_from = fs->writes + 1;
	ok(failed_with(storage_put(&fs->base, "r", "data", 4, &err), &err, ERRCODE_TRANSIENT, "injected storage failure (write"),
	   "put: a refused write fails the put");
	fault_storage_heal(fs);
	ok(storage_head(st, "r", &exists, NULL, &err) == BS_OK && !exists, "and nothing was stored");

	/* Counted per handle: the wrapper's own calls, failed ones too; a put is counted at its
	 * commit, so one refused while it streams is not. */
	{
		storage_stats s = {0};

		storage_stats_add(&fs->base, &s);
		ok(s.requests[STORAGE_OP_GET] == 1 && s.requests[STORAGE_OP_PUT] == 0 && s.requests[STORAGE_OP_HEAD] == 0,
		   "the wrapper's requests are counted (get %llu, put %llu)", (unsigned long long) s.requests[STORAGE_OP_GET],
		   (unsigned long long) s.requests[STORAGE_OP_PUT]);
	}
	storage_close(&fs->base);
	storage_close(st);
	strbuf_free(&out);
}

/* ---------- the encryption layer over a failing storage ---------- */

/* Wrap fs with key cur (old: nold keys) creating encryption.json; NULL with err on failure (fs is gone then). */
static storage *
crypt_over(fault_storage *fs, const uint8_t *cur, const uint8_t (*old)[CRYPT_KEY_SIZE], int nold, bs_error *err)
{
	storage *st = NULL;

	if (storage_crypt_wrap_keys(&fs->base, cur, old, nold, true, &st, err) != BS_OK)
		return NULL;
	return st;
}

static void
test_crypt_setup_faults(void)
{
	fault_storage *fs;
	storage *st;
	storage *raw = NULL;
	bs_error err;
	uint8_t olds[1][CRYPT_KEY_SIZE];

	memcpy(olds[0], key_a, CRYPT_KEY_SIZE);

	fs = new_fault(NULL);
	fault_storage_fail_next(fs, STORAGE_OP_GET_TAGGED, 1);
	st = crypt_over(fs, key_a, NULL, 0, &err);
	ok(st == NULL && failed_with(BS_ERR, &err, ERRCODE_TRANSIENT, "could not read encryption.json: injected"),
	   "encryption.json unreadable: the wrap fails saying what");

	fs = new_fault(NULL);
	fault_storage_fail_next(fs, STORAGE_OP_LIST, 1);
	st = crypt_over(fs, key_a, NULL, 0, &err);
	ok(st == NULL && failed_with(BS_ERR, &err, ERRCODE_TRANSIENT, "could not list the archive: injected"),
	   "the archive cannot be listed: the creation fails");

	fs = new_fault(NULL);
	fault_storage_fail_next(fs, STORAGE_OP_PUT_IF, 1);
	st = crypt_over(fs, key_a, NULL, 0, &err);
	ok(st == NULL && failed_with(BS_ERR, &err, ERRCODE_TRANSIENT, "could not create encryption.json: injected"),
	   "encryption.json cannot be written: the creation fails");

	/* The conditional write "lost", yet nothing is there: said, not taken for success. */
	fs = new_fault(NULL);
	fs->fail_code = ERRCODE_PRECONDITION;
	fault_storage_fail_next(fs, STORAGE_OP_PUT_IF, 1);
	st = crypt_over(fs, key_a, NULL, 0, &err);
	ok(st == NULL && failed_with(BS_ERR, &err, ERRCODE_STORAGE, "encryption.json is missing right after it was written"),
	   "a lost race with nothing written: refused");

	/* A rotation (B current, A old) whose record of B fails. */
	fs = new_fault(&raw);
	st = crypt_over(fs, key_a, NULL, 0, &err);
	ok(st != NULL, "an archive encrypted with A");
	storage_close(st);
	{
		char url[160];
		storage *inner = NULL;

		snprintf(url, sizeof(url), "file://%s/a%d", dir, nsub);
		if (storage_open(url, NULL, &inner, &err) != BS_OK)
			exit(1);
		fs = fault_storage_new(inner, true);
		fault_storage_fail_next(fs, STORAGE_OP_PUT_IF, 1);
		st = crypt_over(fs, key_b, (const uint8_t (*)[CRYPT_KEY_SIZE]) olds, 1, &err);
		ok(st == NULL && failed_with(BS_ERR, &err, ERRCODE_TRANSIENT, "could not update encryption.json: injected"),
		   "rotation: encryption.json cannot be updated");

		if (storage_open(url, NULL, &inner, &err) != BS_OK)
			exit(1);
		fs = fault_storage_new(inner, true);
		fs->fail_code = ERRCODE_PRECONDITION;
		fault_storage_fail_next(fs, STORAGE_OP_PUT_IF, 1);
		st = crypt_over(fs, key_b, (const uint8_t (*)[CRYPT_KEY_SIZE]) olds, 1, &err);
		ok(st == NULL && failed_with(BS_ERR, &err, ERRCODE_PRECONDITION, "it changed meanwhile; start again"),
		   "rotation: another writer changed encryption.json first");
	}
	storage_close(raw);
}

static void
test_crypt_io_faults(void)
{
	storage *raw = NULL;
	fault_storage *fs = new_fault(&raw);
	storage *st;
	storage_writer *w = NULL;
	bs_error err;
	strbuf out = STRBUF_INIT;
	char *tag = NULL;
	static char big[200000];
	int rc;

	st = crypt_over(fs, key_a, NULL, 0, &err);
	if (!ok(st != NULL, "an encrypted archive over the fault wrapper"))
		return;
	memset(big, 'b', sizeof(big));

	/* The header is written as the writer opens. */
	fs->fail_write_from = fs->writes + 1;
	ok(failed_with(storage_writer_open(st, "w1", &w, &err), &err, ERRCODE_TRANSIENT, "(write") && w == NULL,
	   "the header refused: the writer does not open");
	fs->fail_write_from = fs->writes + 2;
	rc = storage_writer_open(st, "w2", &w, &err);
	ok(rc == BS_OK && failed_with(storage_writer_write(w, big, sizeof(big), &err), &err, ERRCODE_TRANSIENT, "(write"),
	   "the sealed data refused: the write fails");
	if (rc == BS_OK)
		storage_writer_abort(w);
	fault_storage_heal(fs);

	/* The tag is written at commit. */
	ok(storage_writer_open(st, "w3", &w, &err) == BS_OK && storage_writer_write(w, "abc", 3, &err) == BS_OK,
	   "a writer with data");
	fs->fail_write_from = fs->writes + 1;
	ok(failed_with(storage_writer_commit(w, &err), &err, ERRCODE_TRANSIENT, "(write"), "the tag refused: the commit fails");
	fault_storage_heal(fs);
	fault_storage_fail_next(fs, STORAGE_OP_PUT, 1);
	ok(failed_with(storage_put(st, "w4", "abc", 3, &err), &err, ERRCODE_TRANSIENT, "(put"), "the inner commit refused");
	fault_storage_heal(fs);
	{
		bool exists = true;

		ok(storage_head(raw, "w1", &exists, NULL, &err) == BS_OK && !exists &&
		   storage_head(raw, "w3", &exists, NULL, &err) == BS_OK && !exists &&
		   storage_head(raw, "w4", &exists, NULL, &err) == BS_OK && !exists, "none of them stored");
	}

	/* What comes back damaged is refused: a flipped byte, a cut object. */
	ok(storage_put(st, "obj", big, sizeof(big), &err) == BS_OK, "an object stored");
	fs->corrupt_at = 100000;
	ok(failed_with(storage_get_all(st, "obj", &out, &err), &err, ERRCODE_DATA_CORRUPTED, "failed authentication") &&
	   out.len == 0, "a flipped byte: authentication fails, nothing returned");
	fault_storage_heal(fs);
	fs->corrupt_at = 3;
	ok(failed_with(storage_get_all(st, "obj", &out, &err), &err, ERRCODE_DATA_CORRUPTED, "\"obj\""),
	   "a flipped magic byte: refused");
	fault_storage_heal(fs);
	fs->short_get = 40;
	ok(failed_with(storage_get_all(st, "obj", &out, &err), &err, ERRCODE_DATA_CORRUPTED, "truncated"),
	   "a cut object (40 bytes): truncated");
	fs->short_get = sizeof(big);
	ok(failed_with(storage_get_all(st, "obj", &out, &err), &err, ERRCODE_DATA_CORRUPTED, "failed authentication"),
	   "an object cut at a tag's length: authentication fails");
	fault_storage_heal(fs);
	ok(storage_get_all(st, "obj", &out, &err) == BS_OK && out.len == sizeof(big), "undamaged, it reads");

	/* Tagged objects (the lease) likewise. */
	ok(storage_put_if(st, "lease", "{\"a\":1}", 7, NULL, &err) == BS_OK, "a tagged object");
	fs->corrupt_at = 40;
	ok(failed_with(storage_get_tagged(st, "lease", &out, &tag, &err), &err, ERRCODE_DATA_CORRUPTED,
				   "failed authentication") && out.len == 0, "a flipped byte in a tagged object: refused");
	free(tag);
	tag = NULL;
	fault_storage_heal(fs);
	fault_storage_fail_next(fs, STORAGE_OP_GET_TAGGED, 1);
	ok(failed_with(storage_get_tagged(st, "lease", &out, &tag, &err), &err, ERRCODE_TRANSIENT, "(get_tagged"),
	   "get_tagged refused underneath: the error passes");
	fault_storage_heal(fs);
	fault_storage_fail_next(fs, STORAGE_OP_HEAD, 1);
	{
		bool exists;

		ok(failed_with(storage_head(st, "obj", &exists, NULL, &err), &err, ERRCODE_TRANSIENT, "(head"),
		   "head refused underneath: the error passes");
	}
	storage_close(st);
	storage_close(raw);
	strbuf_free(&out);
}

static int
refuse_sink(void *ctx, const void *data, size_t len, bs_error *err)
{
	(void) ctx;
	(void) data;
	(void) len;
	return error_set(err, ERRCODE_CANCELED, "the sink refused");
}

/* Sinks that refuse, headers that are not ours, empty settings. */
static void
test_crypt_edges(void)
{
	char url[128];
	storage *raw = new_local(url, sizeof(url));
	storage *st = NULL;
	storage *enc = NULL;
	storage *off = NULL;
	storage_crypt_options none = {0};
	crypt_header h;
	uint8_t hdr[CRYPT_HEADER_SIZE] = {0};
	bs_error err;
	strbuf out = STRBUF_INIT;
	static char big[100000];

	if (storage_reopen(raw, &st, &err) != BS_OK || storage_crypt_wrap_keys(st, key_a, NULL, 0, true, &enc, &err) != BS_OK)
	{
		ok(0, "an encrypted archive: %s", err.message);
		return;
	}
	ok(storage_put(enc, "obj", big, sizeof(big), &err) == BS_OK, "an encrypted object");
	ok(failed_with(storage_get(enc, "obj", 0, 0, refuse_sink, NULL, &err), &err, ERRCODE_CANCELED, "the sink refused"),
	   "an encrypted get: the sink's refusal returned as it is");
	st = NULL;
	if (storage_reopen(raw, &st, &err) != BS_OK || storage_crypt_wrap(st, &none, &off, &err) != BS_OK)
		exit(1);
	ok(storage_put(raw, "eight", "12345678", 8, &err) == BS_OK && storage_put(raw, "plain", "plain text", 10, &err) == BS_OK,
	   "plaintext objects beside");
	ok(storage_get_all(off, "eight", &out, &err) == BS_OK && out.len == 8, "through the pass-through: exactly 8 bytes");
	ok(failed_with(storage_get(off, "plain", 0, 0, refuse_sink, NULL, &err), &err, ERRCODE_CANCELED, "the sink refused"),
	   "through the pass-through: the sink's refusal returned");

	ok(failed_with(crypt_header_parse(hdr, 31, "k", &h, &err), &err, ERRCODE_DATA_CORRUPTED, "shorter than the encryption header"),
	   "a header of 31 bytes: truncated");
	memcpy(hdr, CRYPT_MAGIC, 8);
	hdr[8] = 2;
	ok(failed_with(crypt_header_parse(hdr, sizeof(hdr), "k", &h, &err), &err, ERRCODE_DATA_CORRUPTED,
				   "unknown encryption algorithm 2"), "an unknown algorithm: refused");
	hdr[0] = 'X';
	ok(failed_with(crypt_header_parse(hdr, sizeof(hdr), "k", &h, &err), &err, ERRCODE_DATA_CORRUPTED, "is not encrypted"),
	   "no magic: not encrypted");

	{
		uint8_t key[CRYPT_KEY_SIZE];
		uint8_t salt[16] = {0};

		ok(failed_with(crypt_derive_key("password", 8, salt, sizeof(salt), 24, 32, 16, key, &err), &err,
					   ERRCODE_DATA_CORRUPTED, "more than 1 GiB of memory"), "scrypt parameters that need 1 TiB: refused");
	}

	/* Empty strings are unset settings. */
	{
		storage_crypt_options o = {0};

		o.key_file = "";
		o.passphrase = "";
		o.passphrase_file = "";
		o.old_key_files = "";
		st = NULL;
		ok(storage_reopen(raw, &st, &err) == BS_OK && storage_crypt_wrap(st, &o, &st, &err) == BS_OK &&
		   !storage_crypt_active(st), "empty settings: no key, a pass-through");
		storage_close(st);
	}
	storage_close(off);
	storage_close(enc);
	storage_close(raw);
	strbuf_free(&out);
}

/* encryption.json changing under a handle: broken before prepare_write, full, unreadable once written. */
static void
test_crypt_config_changes(void)
{
#define KDF "\"kdf\":{\"name\":\"scrypt\",\"salt\":\"000102030405060708090a0b0c0d0e0f\",\"log2_n\":10,\"r\":8,\"p\":1}"
	char url[128];
	storage *raw = new_local(url, sizeof(url));
	storage *st = NULL;
	storage *enc = NULL;
	bs_error err;
	uint8_t olds[1][CRYPT_KEY_SIZE];
	const char *garbage = "not json";
	fault_storage *fs;

	memcpy(olds[0], key_a, CRYPT_KEY_SIZE);
	/* Uninitialised when wrapped; encryption.json broken before the writer prepares. */
	ok(storage_reopen(raw, &st, &err) == BS_OK && storage_crypt_wrap_keys(st, key_a, NULL, 0, false, &enc, &err) == BS_OK,
	   "a key on an empty archive");
	ok(storage_put(raw, CRYPT_CONFIG_KEY, garbage, strlen(garbage), &err) == BS_OK, "a broken encryption.json appears");
	ok(failed_with(storage_crypt_prepare_write(enc, &err), &err, ERRCODE_DATA_CORRUPTED, "not a JSON object"),
	   "prepare_write: the broken encryption.json refused");
	storage_close(enc);
	ok(storage_delete(raw, CRYPT_CONFIG_KEY, &err) == BS_OK, "removed again");

	/* Encrypted with A; a handle with B current and A old, not recording B; then broken. */
	st = NULL;
	ok(storage_reopen(raw, &st, &err) == BS_OK && storage_crypt_wrap_keys(st, key_a, NULL, 0, true, &enc, &err) == BS_OK,
	   "an archive encrypted with A");
	storage_close(enc);
	st = NULL;
	ok(storage_reopen(raw, &st, &err) == BS_OK &&
	   storage_crypt_wrap_keys(st, key_b, (const uint8_t (*)[CRYPT_KEY_SIZE]) olds, 1, false, &enc, &err) == BS_OK,
	   "B current, A old, opened without recording B");
	ok(storage_put(raw, CRYPT_CONFIG_KEY, garbage, strlen(garbage), &err) == BS_OK, "encryption.json broken meanwhile");
	ok(failed_with(storage_crypt_prepare_write(enc, &err), &err, ERRCODE_DATA_CORRUPTED, "not a JSON object"),
	   "prepare_write: reading it again fails");
	storage_close(enc);

	/* 64 key ids already: no room for B. */
	{
		uint8_t id[CRYPT_KEY_ID_SIZE];
		char hex[2 * CRYPT_KEY_ID_SIZE + 1];
		strbuf text = STRBUF_INIT;

		crypt_key_id(key_a, id);
		hex_encode(id, sizeof(id), hex);
		strbuf_printf(&text, "{\"format\":1,\"cipher\":\"aes-256-gcm\"," KDF ",\"key_ids\":[\"%s\"", hex);
		for (int i = 1; i < 64; i++)
			strbuf_printf(&text, ",\"%016x\"", i);
		strbuf_append_str(&text, "]}");
		ok(storage_put(raw, CRYPT_CONFIG_KEY, text.data, text.len, &err) == BS_OK, "encryption.json with 64 key ids");
		st = NULL;
		ok(storage_reopen(raw, &st, &err) == BS_OK &&
		   failed_with(storage_crypt_wrap_keys(st, key_b, (const uint8_t (*)[CRYPT_KEY_SIZE]) olds, 1, true, &enc, &err),
					   &err, ERRCODE_ENCRYPTION_KEY, "already lists 64 keys"), "a 65th key: refused");
		strbuf_free(&text);
	}

	/* encryption.json written, then read back damaged. */
	fs = new_fault(NULL);
	fs->corrupt_at = 0;
	ok(crypt_over(fs, key_a, NULL, 0, &err) == NULL && failed_with(BS_ERR, &err, ERRCODE_DATA_CORRUPTED, "not a JSON object"),
	   "encryption.json read back damaged after its creation: refused");
	storage_close(raw);
#undef KDF
}

/* The layer without a key (a pass-through) and with a key on an archive not yet encrypted. */
static void
test_crypt_states(void)
{
	storage *raw = NULL;
	fault_storage *fs = new_fault(&raw);
	storage *enc;
	storage *off = NULL;
	storage_crypt_options none = {0};
	bs_error err;
	strbuf out = STRBUF_INIT;
	char *tag = NULL;
	int rc;

	/* An encrypted lease read through a pass-through: refused, not returned as plaintext. */
	enc = crypt_over(fault_storage_new(raw, false), key_a, NULL, 0, &err);
	ok(enc && storage_put_if(enc, "lease", "{\"a\":1}", 7, NULL, &err) == BS_OK, "an encrypted tagged object");
	ok(storage_crypt_wrap(&fs->base, &none, &off, &err) == BS_OK, "a pass-through over the same archive");
	rc = storage_get_tagged(off, "lease", &out, &tag, &err);
	ok(failed_with(rc, &err, ERRCODE_ENCRYPTION_KEY, "is encrypted (object \"lease\" is)"),
	   "get_tagged of an encrypted object without the key: refused");
	free(tag);
	tag = NULL;
	ok(storage_put_if(off, "plain-lease", "{}", 2, NULL, &err) == BS_OK, "put_if passes through");
	strbuf_reset(&out);
	ok(storage_get(off, "plain-lease", 1, 0, storage_sink_strbuf, &out, &err) == BS_OK && out.len == 1 &&
	   out.data[0] == '}', "a ranged get passes through");
	fault_storage_fail_next(fs, STORAGE_OP_HEAD, 1);
	ok(failed_with(storage_crypt_prepare_write(off, &err), &err, ERRCODE_TRANSIENT, "could not read encryption.json"),
	   "prepare_write without a key: the check for encryption.json fails");
	ok(storage_crypt_prepare_write(raw, &err) == BS_OK, "prepare_write of a storage that is no wrapper: nothing to do");
	storage_close(off);
	storage_close(enc);

	/* A key, no encryption.json, not created: uninitialised, every write and read refused. */
	{
		storage *st = NULL;
		storage *empty;
		char url[128];
		storage_writer *w = NULL;

		empty = new_local(url, sizeof(url));
		ok(storage_crypt_wrap_keys(empty, key_a, NULL, 0, false, &st, &err) == BS_OK, "a key on an empty archive");
		ok(failed_with(storage_get_tagged(st, "lease", &out, &tag, &err), &err, ERRCODE_ENCRYPTION_KEY, "is not encrypted"),
		   "uninitialised: get_tagged refused");
		ok(failed_with(storage_put_if(st, "lease", "x", 1, NULL, &err), &err, ERRCODE_ENCRYPTION_KEY, "is not encrypted"),
		   "uninitialised: put_if refused");
		ok(failed_with(storage_writer_open(st, "x", &w, &err), &err, ERRCODE_ENCRYPTION_KEY, "is not encrypted"),
		   "uninitialised: a writer refused");
		storage_close(st);
	}

	/* Old keys only: reads, never writes. */
	{
		storage *st = NULL;
		uint8_t olds[1][CRYPT_KEY_SIZE];
		storage *inner = NULL;

		memcpy(olds[0], key_a, CRYPT_KEY_SIZE);
		if (storage_reopen(raw, &inner, &err) != BS_OK)
			exit(1);
		ok(storage_crypt_wrap_keys(inner, NULL, (const uint8_t (*)[CRYPT_KEY_SIZE]) olds, 1, false, &st, &err) == BS_OK,
		   "an old key alone opens");
		ok(failed_with(storage_put_if(st, "lease", "x", 1, NULL, &err), &err, ERRCODE_ENCRYPTION_KEY, "no current"),
		   "old key only: put_if refused");
		ok(failed_with(storage_crypt_prepare_write(st, &err), &err, ERRCODE_ENCRYPTION_KEY, "only old encryption keys"),
		   "old key only: prepare_write refused");
		storage_close(st);
	}
	storage_close(raw);
	strbuf_free(&out);
}

/* ---------- encryption.json as storage returns it, and keys from files ---------- */

static void
write_secret(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0 || chmod(path, 0600) != 0)
	{
		printf("Bail out! could not write %s\n", path);
		exit(1);
	}
}

/* Wrapping a new archive holding encryption.json = text with key A fails with DATA_CORRUPTED and msg. */
static void
hostile_config(const char *text, const char *msg)
{
	char url[128];
	storage *raw = new_local(url, sizeof(url));
	storage *st = NULL;
	bs_error err;

	if (storage_put(raw, CRYPT_CONFIG_KEY, text, strlen(text), &err) != BS_OK)
		exit(1);
	ok(failed_with(storage_crypt_wrap_keys(raw, key_a, NULL, 0, false, &st, &err), &err, ERRCODE_DATA_CORRUPTED, msg),
	   "encryption.json %s: refused", text);
}

/* storage_crypt_wrap of a new, empty archive with o: BS_OK or the error's code and message. */
static int
wrap_options(const storage_crypt_options *o, bs_error *err)
{
	char url[128];
	storage *raw = new_local(url, sizeof(url));
	storage *st = NULL;
	int rc = storage_crypt_wrap(raw, o, &st, err);

	storage_close(st);
	return rc;
}

static void
test_crypt_config(void)
{
#define KDF "\"kdf\":{\"name\":\"scrypt\",\"salt\":\"000102030405060708090a0b0c0d0e0f\",\"log2_n\":10,\"r\":8,\"p\":1}"
	char keyfile[128], hexfile[128], badhex[128], nulfile[128], bigfile[128], passfile[128];
	storage_crypt_options o;
	bs_error err;
	char text[4200];

	hostile_config("[1]", "not a JSON object");
	hostile_config("{\"format\":1,\"format\":1}", "not a JSON object");
	hostile_config("{\"format\":2}", "member \"format\" must be 1");
	hostile_config("{\"format\":1,\"cipher\":\"aes-128-cbc\"}", "member \"cipher\"");
	hostile_config("{\"format\":1,\"cipher\":\"aes-256-gcm\",\"kdf\":{\"name\":\"argon2\"}}", "member \"kdf\"");
	hostile_config("{\"format\":1,\"cipher\":\"aes-256-gcm\",\"kdf\":{\"name\":\"scrypt\",\"salt\":\"zz\",\"log2_n\":10,"
				   "\"r\":8,\"p\":1}}", "kdf.salt");
	hostile_config("{\"format\":1,\"cipher\":\"aes-256-gcm\",\"kdf\":{\"name\":\"scrypt\",\"salt\":"
				   "\"000102030405060708090a0b0c0d0e0f\",\"log2_n\":40,\"r\":8,\"p\":1}}", "scrypt parameters out of range");
	hostile_config("{\"format\":1,\"cipher\":\"aes-256-gcm\"," KDF ",\"key_ids\":[]}", "an array of 1 to 64 key ids");
	hostile_config("{\"format\":1,\"cipher\":\"aes-256-gcm\"," KDF ",\"key_ids\":[\"0011\"]}", "not 16 hex digits");
	hostile_config("{\"format\":1,\"cipher\":\"aes-256-gcm\"," KDF ",\"key_ids\":[7]}", "not 16 hex digits");

	snprintf(keyfile, sizeof(keyfile), "%s/raw.key", dir);
	write_secret(keyfile, key_a, CRYPT_KEY_SIZE);
	snprintf(hexfile, sizeof(hexfile), "%s/hex.key", dir);
	write_secret(hexfile, "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff \n", 66);
	snprintf(badhex, sizeof(badhex), "%s/bad.key", dir);
	write_secret(badhex, "0011223344556677889900112233445566778899001122334455667788990g\n", 64);
	snprintf(nulfile, sizeof(nulfile), "%s/nul.pass", dir);
	write_secret(nulfile, "long enough\0passphrase", 22);
	snprintf(bigfile, sizeof(bigfile), "%s/big.pass", dir);
	memset(text, 'p', sizeof(text));
	write_secret(bigfile, text, sizeof(text));
	snprintf(passfile, sizeof(passfile), "%s/good.pass", dir);
	write_secret(passfile, "a good passphrase\n", 18);

	memset(&o, 0, sizeof(o));
	o.key_file = keyfile;
	o.passphrase = "a passphrase too";
	ok(failed_with(wrap_options(&o, &err), &err, ERRCODE_ENCRYPTION_KEY, "set one of"), "a key file and a passphrase: refused");
	memset(&o, 0, sizeof(o));
	o.key_file = hexfile;
	ok(wrap_options(&o, &err) == BS_OK, "a key file of hex digits in both cases, trailing space and newline");
	o.key_file = badhex;
	ok(failed_with(wrap_options(&o, &err), &err, ERRCODE_ENCRYPTION_KEY, "must hold 32 bytes or 64 hex digits"),
	   "a key file with a non-hex digit: refused");
	o.key_file = dir;
	ok(failed_with(wrap_options(&o, &err), &err, ERRCODE_ENCRYPTION_KEY, "is not a regular file"), "a directory as key file: refused");
	o.key_file = "/nonexistent/key";
	ok(failed_with(wrap_options(&o, &err), &err, ERRCODE_ENCRYPTION_KEY, "could not open encryption_key_file"),
	   "a missing key file: refused");
	memset(&o, 0, sizeof(o));
	o.passphrase_file = nulfile;
	ok(failed_with(wrap_options(&o, &err), &err, ERRCODE_ENCRYPTION_KEY, "holds a NUL byte"), "a passphrase with a NUL: refused");
	o.passphrase_file = bigfile;
	ok(failed_with(wrap_options(&o, &err), &err, ERRCODE_ENCRYPTION_KEY, "is larger than 4096 bytes"),
	   "a passphrase file over 4 KiB: refused");
	o.passphrase_file = passfile;
	snprintf(text, sizeof(text), " , %s ,, %s ", keyfile, hexfile);
	o.old_key_files = text;
	ok(wrap_options(&o, &err) == BS_OK, "old key files listed with spaces and empty items");
	o.old_key_files = "/nonexistent/old.key";
	ok(failed_with(wrap_options(&o, &err), &err, ERRCODE_ENCRYPTION_KEY, "could not open encryption_old_key_file"),
	   "a missing old key file: refused");
	o.old_key_files = NULL;
	snprintf(text, sizeof(text), "%s , ,", passfile);
	o.old_passphrase_files = text;
	ok(wrap_options(&o, &err) == BS_OK, "old passphrase files listed with spaces and empty items");
	snprintf(text, sizeof(text), "%s,%s", passfile, nulfile);
	ok(failed_with(wrap_options(&o, &err), &err, ERRCODE_ENCRYPTION_KEY, "encryption_old_passphrase_file"),
	   "a bad old passphrase file: refused, named");
#undef KDF
}

/* prepare_write where there is nothing to do, and a plaintext lease through the pass-through. */
static void
test_crypt_passes(void)
{
	char url[128];
	storage *raw = new_local(url, sizeof(url));
	storage *st = NULL;
	storage *off = NULL;
	storage_crypt_options none = {0};
	bs_error err;
	strbuf out = STRBUF_INIT;
	char *tag = NULL;

	ok(storage_reopen(raw, &st, &err) == BS_OK && storage_crypt_wrap(st, &none, &off, &err) == BS_OK &&
	   storage_crypt_prepare_write(off, &err) == BS_OK, "no key, no encryption.json: ready to write plaintext");
	ok(storage_put_if(off, "lease", "{}", 2, NULL, &err) == BS_OK &&
	   storage_get_tagged(off, "lease", &out, &tag, &err) == BS_OK && out.len == 2, "a plaintext lease reads through");
	free(tag);
	storage_close(off);
	st = NULL;
	ok(storage_reopen(raw, &st, &err) == BS_OK && storage_delete(st, "lease", &err) == BS_OK &&
	   storage_crypt_wrap_keys(st, key_b, NULL, 0, true, &off, &err) == BS_OK && storage_crypt_prepare_write(off, &err) == BS_OK,
	   "a key that is the archive's: ready to write");
	storage_close(off);
	storage_close(raw);
	strbuf_free(&out);
}

int
main(void)
{
	char cmd[128];

	strcpy(dir, "/tmp/backstop-test-faults-XXXXXX");
	if (mkdtemp(dir) == NULL)
	{
		printf("Bail out! mkdtemp\n");
		return 1;
	}
	test_generic();
	test_crypt_setup_faults();
	test_crypt_io_faults();
	test_crypt_states();
	test_crypt_config();
	test_crypt_edges();
	test_crypt_config_changes();
	test_crypt_passes();
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
	return done_testing();
}
