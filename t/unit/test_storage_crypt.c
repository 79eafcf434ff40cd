/* test_storage_crypt.c — unit tests for encryption at rest (the storage_crypt wrapper). */
#include "config.h"
#include "log.h"
#include "storage.h"
#include "storage_config.h"
#include "storage_crypt.h"
#include "tap.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[] = "/tmp/backstop-test-crypt-XXXXXX";

static storage *
open_raw(const char *sub)
{
	char url[512];
	storage *st = NULL;
	bs_error err;

	snprintf(url, sizeof(url), "file://%s/%s", root, sub);
	if (storage_open(url, NULL, &st, &err) != BS_OK)
		printf("# open %s: %s\n", url, err.message);
	return st;
}

static storage *
wrap(const char *sub, const uint8_t *cur, const uint8_t (*old)[CRYPT_KEY_SIZE], int nold, bool create, bs_error *err)
{
	storage *raw = open_raw(sub);
	storage *st = NULL;

	if (raw == NULL || storage_crypt_wrap_keys(raw, cur, old, nold, create, &st, err) != BS_OK)
		return NULL;
	return st;
}

static bool
has(const bs_error *err, const char *code, const char *text)
{
	bool good = strcmp(err->code, code) == 0 && strstr(err->message, text) != NULL;

	if (!good)
		printf("# got [%s] %s\n", err->code, err->message);
	return good;
}

typedef struct listed_size
{
	int			count;
	char		last[64];
	uint64_t	size;
} listed_size;

static int
listed_size_cb(void *ctx, const char *key, uint64_t size, bs_error *err)
{
	listed_size *l = ctx;

	(void) err;
	l->count++;
	snprintf(l->last, sizeof(l->last), "%s", key);
	l->size = size;
	return BS_OK;
}

static int
append_sink(void *ctx, const void *data, size_t len, bs_error *err)
{
	(void) err;
	strbuf_append((strbuf *) ctx, data, len);
	return BS_OK;
}

static int
corrupt_sink(void *ctx, const void *data, size_t len, bs_error *err)
{
	(void) ctx;
	(void) data;
	(void) len;
	return error_set(err, ERRCODE_DATA_CORRUPTED, "consumer: zstd: Data corruption detected");
}

static bool
contains(const strbuf *b, const char *needle)
{
	size_t n = strlen(needle);

	for (size_t i = 0; i + n <= b->len; i++)
		if (memcmp(b->data + i, needle, n) == 0)
			return true;
	return false;
}

static void
write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, mode);

	if (fd < 0 || write(fd, data, len) != (ssize_t) len)
		printf("# could not write %s\n", path);
	fchmod(fd, mode);
	close(fd);
}

static void
test_config_keys(void)
{
	static const char *const allowed[] = {NULL};
	static const uint8_t kdf_salt[] = "NaCl";
	static const uint8_t rfc7914[32] = {
		0xfd, 0xba, 0xbe, 0x1c, 0x9d, 0x34, 0x72, 0x00, 0x78, 0x56, 0xe7, 0x19, 0x0d, 0x01, 0xe9, 0xfe,
		0x7c, 0x6a, 0xd7, 0xcb, 0xc8, 0x23, 0x78, 0x30, 0xe7, 0x73, 0x76, 0x63, 0x4b, 0x37, 0x31, 0x62
	};
	uint8_t key[CRYPT_KEY_SIZE];
	bs_config cfg;
	bs_error err;
	char **pos = NULL;
	int npos = 0;
	bool usage;
	char path[600], path2[600], url[600];
	storage *raw = NULL, *st = NULL;
	strbuf buf = STRBUF_INIT;

	/* scrypt against RFC 7914's test vector (N = 1024, r = 8, p = 16). */
	ok(crypt_derive_key("password", 8, kdf_salt, 4, 10, 8, 16, key, &err) == BS_OK &&
	   memcmp(key, rfc7914, 32) == 0, "scrypt matches RFC 7914's test vector");
	ok(crypt_derive_key("password", 8, kdf_salt, 4, 30, 8, 1, key, &err) == BS_ERR,
	   "scrypt parameters beyond the limits are refused");

	setenv("BACKSTOP_CONFIG", "/dev/null", 1);
	if (config_load(&cfg, 0, NULL, allowed, &pos, &npos, &usage, &err) != BS_OK)
	{
		ok(0, "config_load: %s", err.message);
		return;
	}
	free(pos);
	snprintf(url, sizeof(url), "file://%s/cfg", root);

	/* A key file others can read is refused, as control_token_file is. */
	snprintf(path, sizeof(path), "%s/key.hex", root);
	write_file(path, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n", 65, 0644);
	config_set(&cfg, CFG_ENCRYPTION_KEY_FILE, path, SOURCE_FLAG);
	ok(storage_config_open(url, &cfg, &st, &err) == BS_ERR && has(&err, ERRCODE_ENCRYPTION_KEY, "accessible by others"),
	   "a key file readable by others is refused");
	chmod(path, 0600);
	/* Before the archiver's first start there is nothing to decrypt: reads say so. */
	ok(storage_config_open(url, &cfg, &st, &err) == BS_OK, "a hex key file opens");
	ok(st && storage_get_all(st, "head.json", &buf, &err) == BS_ERR &&
	   has(&err, ERRCODE_NOT_FOUND, ""), "a key on an empty location: a missing object is missing");
	ok(st && storage_crypt_prepare_write(st, &err) == BS_OK, "the writer creates encryption.json");
	ok(st && storage_put(st, "x", "hello", 5, &err) == BS_OK && storage_get_all(st, "x", &buf, &err) == BS_OK &&
	   buf.len == 5, "round trip through a configured key file");
	storage_close(st);
	st = NULL;

	/* A malformed key file. */
	snprintf(path2, sizeof(path2), "%s/key.bad", root);
	write_file(path2, "not a key\n", 10, 0600);
	config_set(&cfg, CFG_ENCRYPTION_KEY_FILE, path2, SOURCE_FLAG);
	ok(storage_config_open(url, &cfg, &st, &err) == BS_ERR && has(&err, ERRCODE_ENCRYPTION_KEY, "64 hex digits"),
	   "a malformed key file is refused");

	/* A passphrase on an archive made with a key file: the key check says wrong key. */
	config_set(&cfg, CFG_ENCRYPTION_KEY_FILE, NULL, SOURCE_DEFAULT);
	snprintf(path2, sizeof(path2), "%s/pass", root);
	write_file(path2, "correct horse battery staple\n", 29, 0600);
	config_set(&cfg, CFG_ENCRYPTION_PASSPHRASE_FILE, path2, SOURCE_FLAG);
	ok(storage_config_open(url, &cfg, &st, &err) == BS_ERR && has(&err, ERRCODE_ENCRYPTION_KEY, "wrong encryption key"),
	   "a passphrase that is not the archive's key: wrong key, before any object");
	/* ... and with the key file as an old key, rotation to the passphrase. */
	config_set(&cfg, CFG_ENCRYPTION_OLD_KEY_FILE, path, SOURCE_FLAG);
	ok(storage_config_open(url, &cfg, &st, &err) == BS_OK && storage_crypt_prepare_write(st, &err) == BS_OK,
	   "rotation to a passphrase with the key file as old key");
	ok(st && storage_get_all(st, "x", &buf, &err) == BS_OK && buf.len == 5, "the old object reads");
	ok(st && storage_put(st, "y", "world", 5, &err) == BS_OK, "a new object is written");
	storage_close(st);
	st = NULL;
	config_set(&cfg, CFG_ENCRYPTION_OLD_KEY_FILE, NULL, SOURCE_DEFAULT);
	ok(storage_config_open(url, &cfg, &st, &err) == BS_OK && storage_get_all(st, "y", &buf, &err) == BS_OK &&
	   buf.len == 5, "the passphrase alone reads what it wrote");
	ok(st && storage_get_all(st, "x", &buf, &err) == BS_ERR && has(&err, ERRCODE_ENCRYPTION_KEY, "not configured"),
	   "an object of a key no longer configured names its key id");
	storage_close(st);
	st = NULL;

	/* Rotation away from the passphrase: a new key file, the passphrase as an old key. */
	{
		char path3[600];

		snprintf(path3, sizeof(path3), "%s/key3.hex", root);
		write_file(path3, "3333333333333333333333333333333333333333333333333333333333333333", 64, 0600);
		config_set(&cfg, CFG_ENCRYPTION_PASSPHRASE_FILE, NULL, SOURCE_DEFAULT);
		config_set(&cfg, CFG_ENCRYPTION_KEY_FILE, path3, SOURCE_FLAG);
		ok(storage_config_open(url, &cfg, &st, &err) == BS_ERR && has(&err, ERRCODE_ENCRYPTION_KEY, "wrong encryption key"),
		   "a new key file alone is a wrong key");
		config_set(&cfg, CFG_ENCRYPTION_OLD_PASSPHRASE_FILE, path2, SOURCE_FLAG);
		ok(storage_config_open(url, &cfg, &st, &err) == BS_OK && storage_crypt_prepare_write(st, &err) == BS_OK,
		   "rotation to a key file with the passphrase as old key");
		ok(st && storage_get_all(st, "y", &buf, &err) == BS_OK && buf.len == 5, "the passphrase's object reads");
		ok(st && storage_put(st, "z", "third", 5, &err) == BS_OK, "a new object with the new key file");
		storage_close(st);
		st = NULL;
		config_set(&cfg, CFG_ENCRYPTION_OLD_PASSPHRASE_FILE, NULL, SOURCE_DEFAULT);
		config_set(&cfg, CFG_ENCRYPTION_KEY_FILE, NULL, SOURCE_DEFAULT);
		config_set(&cfg, CFG_ENCRYPTION_PASSPHRASE_FILE, path2, SOURCE_FLAG);
	}

	/* The passphrase is never taken from the command line. */
	config_set(&cfg, CFG_ENCRYPTION_PASSPHRASE_FILE, NULL, SOURCE_DEFAULT);
	config_set(&cfg, CFG_ENCRYPTION_PASSPHRASE, "correct horse battery staple", SOURCE_FLAG);
	ok(storage_config_open(url, &cfg, &st, &err) == BS_ERR && has(&err, ERRCODE_ENCRYPTION_KEY, "refused"),
	   "--encryption-passphrase is refused");
	config_set(&cfg, CFG_ENCRYPTION_PASSPHRASE, "correct horse battery staple", SOURCE_ENV);
	ok(storage_config_open(url, &cfg, &st, &err) == BS_OK && storage_get_all(st, "y", &buf, &err) == BS_OK,
	   "the passphrase from the environment");
	storage_close(st);
	st = NULL;
	config_set(&cfg, CFG_ENCRYPTION_PASSPHRASE, "short", SOURCE_ENV);
	ok(storage_config_open(url, &cfg, &st, &err) == BS_ERR && has(&err, ERRCODE_ENCRYPTION_KEY, "shorter"),
	   "a short passphrase is refused");
	config_set(&cfg, CFG_ENCRYPTION_PASSPHRASE, NULL, SOURCE_DEFAULT);

	/* No key at all on an encrypted archive. */
	ok(storage_config_open(url, &cfg, &st, &err) == BS_OK, "opens without a key");
	ok(st && storage_get_all(st, "y", &buf, &err) == BS_ERR && has(&err, ERRCODE_ENCRYPTION_KEY, "is encrypted"),
	   "reading an encrypted archive without a key says it is encrypted");
	ok(st && storage_crypt_prepare_write(st, &err) == BS_ERR && has(&err, ERRCODE_ENCRYPTION_KEY, "is encrypted"),
	   "the archiver without a key refuses an encrypted archive");
	storage_close(st);
	st = NULL;

	/* A second handle on the same storage, with the same options (the lease's heartbeat). */
	config_set(&cfg, CFG_ENCRYPTION_PASSPHRASE, "correct horse battery staple", SOURCE_ENV);
	ok(storage_config_open(url, &cfg, &st, &err) == BS_OK && storage_reopen(st, &raw, &err) == BS_OK &&
	   storage_get_all(raw, "y", &buf, &err) == BS_OK && storage_crypt_active(raw),
	   "a reopened handle decrypts with the options it was opened with");
	storage_close(raw);
	storage_close(st);
	st = raw = NULL;
	config_set(&cfg, CFG_ENCRYPTION_PASSPHRASE, NULL, SOURCE_DEFAULT);

	/* The options: the configuration first, then the AWS_* environment; the library itself
	 * reads no environment (storage_s3.c has no getenv). */
	{
		storage_options o;

		setenv("AWS_ACCESS_KEY_ID", "env-ak", 1);
		setenv("AWS_SECRET_ACCESS_KEY", "env-sk", 1);
		setenv("AWS_DEFAULT_REGION", "env-region-2", 1);
		unsetenv("AWS_REGION");
		unsetenv("AWS_SESSION_TOKEN");
		setenv("AWS_ENDPOINT_URL", "http://env.example:1", 1);
		setenv("AWS_ENDPOINT_URL_S3", "", 1);
		config_set(&cfg, CFG_S3_ACCESS_KEY_ID, "cfg-ak", SOURCE_FILE);
		config_set(&cfg, CFG_S3_TIMEOUT, "5s", SOURCE_FILE);
		ok(storage_config_options(&cfg, &o, &err) == BS_OK &&
		   strcmp(o.s3.access_key_id, "cfg-ak") == 0 && strcmp(o.s3.secret_access_key, "env-sk") == 0 &&
		   strcmp(o.s3.region, "env-region-2") == 0 && strcmp(o.s3.endpoint, "http://env.example:1") == 0 &&
		   o.s3.session_token == NULL && o.s3.timeout_ms == 5000 && o.s3.retries == 6 &&
		   o.s3.retry_base_ms == 200 && o.s3.verify_tls && o.s3.part_size == 16 * 1024 * 1024,
		   "options: configuration over AWS_* environment, an empty variable unset, table defaults");
		unsetenv("AWS_ACCESS_KEY_ID");
		unsetenv("AWS_SECRET_ACCESS_KEY");
		unsetenv("AWS_DEFAULT_REGION");
		unsetenv("AWS_ENDPOINT_URL");
		unsetenv("AWS_ENDPOINT_URL_S3");
		config_set(&cfg, CFG_S3_ACCESS_KEY_ID, NULL, SOURCE_DEFAULT);
		config_set(&cfg, CFG_S3_TIMEOUT, NULL, SOURCE_DEFAULT);
		ok(storage_config_open("s3://bucket/p", &cfg, &st, &err) == BS_ERR &&
		   has(&err, ERRCODE_INVALID_PARAMETER, "no S3 credentials"), "without credentials, s3:// is refused");
		storage_options_init(&o);
		o.s3.access_key_id = "ak";
		o.s3.secret_access_key = "sk";
		o.s3.uri_style = "sideways";
		ok(storage_open("s3://bucket/p", &o, &st, &err) == BS_ERR && has(&err, ERRCODE_INVALID_PARAMETER, "URI style"),
		   "the library checks the options it is given");
		o.s3.uri_style = NULL;
		o.s3.retries = 101;
		ok(storage_open("s3://bucket/p", &o, &st, &err) == BS_ERR && has(&err, ERRCODE_INVALID_PARAMETER, "retries"),
		   "retries beyond 100 are refused by the library too");
	}
	config_free(&cfg);
	strbuf_free(&buf);
}

int
main(void)
{
	uint8_t ka[CRYPT_KEY_SIZE], kb[CRYPT_KEY_SIZE], kc[CRYPT_KEY_SIZE];
	uint8_t old[1][CRYPT_KEY_SIZE];
	bs_error err;
	storage *st, *raw, *st2;
	strbuf buf = STRBUF_INIT, stored = STRBUF_INIT, big = STRBUF_INIT;
	const char *marker = "MARKER-ROW secret-table-name";
	bool exists;
	storage_stat sst;
	crypt_header h;

	log_configure(LOG_WARNING, 0);
	if (mkdtemp(root) == NULL)
	{
		ok(0, "mkdtemp");
		return done_testing();
	}
	memset(ka, 0xa1, sizeof(ka));
	memset(kb, 0xb2, sizeof(kb));
	memset(kc, 0xc3, sizeof(kc));

	/* Round trip. */
	st = wrap("a", ka, NULL, 0, true, &err);
	if (!ok(st != NULL, "a new archive is encrypted with key A"))
		return done_testing();
	ok(storage_crypt_active(st), "the wrapper is active");
	raw = open_raw("a");
	ok(storage_head(raw, CRYPT_CONFIG_KEY, &exists, NULL, &err) == BS_OK && exists, "encryption.json is written");
	{
		storage_stats s0, s1;

		memset(&s0, 0, sizeof(s0));
		storage_stats_add(st, &s0);
		ok(storage_put(st, "tables/1/manifest.json", marker, strlen(marker), &err) == BS_OK, "put");
		memset(&s1, 0, sizeof(s1));
		storage_stats_add(st, &s1);
		/* The wrapper reports the requests of the storage it wraps: the stored bytes. */
		is_int(s1.requests[STORAGE_OP_PUT] - s0.requests[STORAGE_OP_PUT], 1, "the wrapper counts one put");
		is_int(s1.bytes[STORAGE_OP_PUT] - s0.bytes[STORAGE_OP_PUT], strlen(marker) + CRYPT_OVERHEAD,
			   "of the stored (encrypted) size");
	}
	ok(storage_get_all(st, "tables/1/manifest.json", &buf, &err) == BS_OK && buf.len == strlen(marker) &&
	   memcmp(buf.data, marker, buf.len) == 0, "get returns the plaintext");
	ok(storage_get_all(raw, "tables/1/manifest.json", &stored, &err) == BS_OK &&
	   stored.len == strlen(marker) + CRYPT_OVERHEAD && memcmp(stored.data, CRYPT_MAGIC, 8) == 0 &&
	   !contains(&stored, "MARKER"), "stored bytes: header, ciphertext without the plaintext, tag");
	ok(storage_head(st, "tables/1/manifest.json", &exists, &sst, &err) == BS_OK && exists &&
	   sst.size == strlen(marker), "head reports the content's size");
	ok(storage_put(st, "empty", "", 0, &err) == BS_OK && storage_get_all(st, "empty", &buf, &err) == BS_OK &&
	   buf.len == 0, "an empty object round trips");
	ok(storage_put(st, "again", marker, strlen(marker), &err) == BS_OK &&
	   storage_get_all(raw, "again", &buf, &err) == BS_OK && buf.len == stored.len &&
	   memcmp(buf.data + 20, stored.data + 20, buf.len - 20) != 0, "each object has its own nonce");

	/* Streaming: a large object written in odd pieces, read back through a sink. */
	for (int i = 0; big.len < 3 * 1024 * 1024 + 17; i++)
		strbuf_printf(&big, "row %d of the big object\n", i);
	{
		storage_writer *w;
		size_t off = 0, piece = 1;
		int rc = storage_writer_open(st, "big", &w, &err);

		while (rc == BS_OK && off < big.len)
		{
			size_t n = big.len - off < piece ? big.len - off : piece;

			rc = storage_writer_write(w, big.data + off, n, &err);
			off += n;
			piece = piece * 3 + 7;
		}
		if (rc == BS_OK)
			rc = storage_writer_commit(w, &err);
		ok(rc == BS_OK, "a streamed put");
		strbuf_reset(&buf);
		ok(storage_get(st, "big", 0, 0, append_sink, &buf, &err) == BS_OK && buf.len == big.len &&
		   memcmp(buf.data, big.data, big.len) == 0, "a streamed get returns every byte");
		ok(storage_get(st, "big", 5, 10, append_sink, &buf, &err) == BS_ERR &&
		   has(&err, ERRCODE_INVALID_PARAMETER, "sealed whole"), "ranged reads are refused, saying why: %s", err.message);
		/* A consumer that finds the content corrupt: the tag decides what is reported. */
		ok(storage_get(st, "big", 0, 0, corrupt_sink, NULL, &err) == BS_ERR &&
		   has(&err, ERRCODE_DATA_CORRUPTED, "consumer:"), "an intact object: the consumer's verdict is returned");
		ok(storage_get_all(raw, "big", &buf, &err) == BS_OK, "raw read of the big object");
		buf.data[CRYPT_HEADER_SIZE + 100] ^= 0x40;
		storage_put(raw, "big-tampered", buf.data, buf.len, &err);
		ok(storage_get(st, "big-tampered", 0, 0, corrupt_sink, NULL, &err) == BS_ERR &&
		   has(&err, ERRCODE_DATA_CORRUPTED, "failed authentication"),
		   "a tampered object the consumer found corrupt is reported as tampered");
	}

	/* Tampering: one flipped bit anywhere fails authentication. */
	{
		size_t where[] = {9, 14, 22, 40, stored.len - 1};
		const char *what[] = {"algorithm", "key id", "nonce", "ciphertext", "tag"};

		for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++)
		{
			strbuf t = STRBUF_INIT;

			strbuf_append(&t, stored.data, stored.len);
			t.data[where[i]] ^= 1;
			storage_put(raw, "tampered", t.data, t.len, &err);
			ok(storage_get_all(st, "tampered", &buf, &err) == BS_ERR &&
			   (strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 || strcmp(err.code, ERRCODE_ENCRYPTION_KEY) == 0) &&
			   buf.len == 0, "a flipped bit in the %s is refused: %s", what[i], err.message);
			strbuf_free(&t);
		}
		storage_put(raw, "tampered", stored.data + 0, stored.len - 1, &err);
		ok(storage_get_all(st, "tampered", &buf, &err) == BS_ERR &&
		   has(&err, ERRCODE_DATA_CORRUPTED, "failed authentication"), "a cut tag is refused");
	}
	/* Swapped: the same bytes under another key (name) fail authentication. */
	storage_put(raw, "tables/2/manifest.json", stored.data, stored.len, &err);
	ok(storage_get_all(st, "tables/2/manifest.json", &buf, &err) == BS_ERR &&
	   has(&err, ERRCODE_DATA_CORRUPTED, "failed authentication: wrong key or tampered"),
	   "an object copied to another key is refused");
	/* Truncated and plaintext objects. */
	storage_put(raw, "short", CRYPT_MAGIC "\1", 9, &err);
	ok(storage_get_all(st, "short", &buf, &err) == BS_ERR && has(&err, ERRCODE_DATA_CORRUPTED, "truncated"),
	   "a truncated header is refused");
	storage_put(raw, "short", stored.data, CRYPT_HEADER_SIZE + 10, &err);
	ok(storage_get_all(st, "short", &buf, &err) == BS_ERR && has(&err, ERRCODE_DATA_CORRUPTED, "truncated"),
	   "an object shorter than header and tag is refused");
	storage_put(raw, "plain", "{\"format\": 2, \"long enough\": true}", 35, &err);
	ok(storage_get_all(st, "plain", &buf, &err) == BS_ERR && has(&err, ERRCODE_DATA_CORRUPTED, "is not encrypted"),
	   "a plaintext object in an encrypted archive is refused");
	ok(crypt_header_parse((const uint8_t *) stored.data, stored.len, "k", &h, &err) == BS_OK,
	   "header parses");
	{
		strbuf t = STRBUF_INIT;

		strbuf_append(&t, stored.data, CRYPT_HEADER_SIZE);
		t.data[10] = 1;
		ok(crypt_header_parse((const uint8_t *) t.data, t.len, "k", &h, &err) == BS_ERR &&
		   has(&err, ERRCODE_DATA_CORRUPTED, "reserved"), "reserved header bytes must be zero");
		strbuf_free(&t);
	}

	/* Conditional writes (the lease) are encrypted too. */
	{
		char *tag = NULL;

		ok(storage_put_if(st, "lease.json", "{\"token\":1}", 11, NULL, &err) == BS_OK &&
		   storage_get_tagged(st, "lease.json", &buf, &tag, &err) == BS_OK && buf.len == 11 &&
		   memcmp(buf.data, "{\"token\":1}", 11) == 0, "put_if / get_tagged round trip");
		ok(tag && storage_put_if(st, "lease.json", "{\"token\":2}", 11, tag, &err) == BS_OK,
		   "put_if under the tag read");
		free(tag);
		ok(storage_get_all(raw, "lease.json", &buf, &err) == BS_OK && !contains(&buf, "token"),
		   "the lease is stored encrypted");
	}

	/* Wrong key. */
	ok(wrap("a", kc, NULL, 0, false, &err) == NULL && has(&err, ERRCODE_ENCRYPTION_KEY, "wrong encryption key"),
	   "a wrong key is refused when the archive is opened");

	/* Rotation: B current, A old; then B alone cannot read A's objects. */
	memcpy(old[0], ka, sizeof(ka));
	st2 = wrap("a", kb, (const uint8_t (*)[CRYPT_KEY_SIZE]) old, 1, true, &err);
	ok(st2 != NULL, "B with A as old key opens (and records B)");
	if (st2)
	{
		ok(storage_put(st2, "new", "written with B", 14, &err) == BS_OK, "a new object with B");
		ok(storage_get_all(st2, "tables/1/manifest.json", &buf, &err) == BS_OK && buf.len == strlen(marker),
		   "A's object reads with A as old key");
		ok(storage_get_all(st2, "new", &buf, &err) == BS_OK && buf.len == 14, "B's object reads");
		ok(storage_get_all(raw, "new", &stored, &err) == BS_OK &&
		   crypt_header_parse((const uint8_t *) stored.data, stored.len, "new", &h, &err) == BS_OK,
		   "B's object header");
		{
			uint8_t idb[CRYPT_KEY_ID_SIZE];

			crypt_key_id(kb, idb);
			ok(memcmp(h.key_id, idb, sizeof(idb)) == 0, "the header names B's key id");
		}
		storage_close(st2);
	}
	st2 = wrap("a", kb, NULL, 0, false, &err);
	ok(st2 != NULL, "B alone opens (B is one of the archive's keys now)");
	if (st2)
	{
		ok(storage_get_all(st2, "new", &buf, &err) == BS_OK, "B alone reads B's object");
		ok(storage_get_all(st2, "tables/1/manifest.json", &buf, &err) == BS_ERR &&
		   has(&err, ERRCODE_ENCRYPTION_KEY, "not configured"), "B alone cannot read A's object, and says so");
		storage_close(st2);
	}
	/* Old keys only: read, never write. */
	st2 = wrap("a", NULL, (const uint8_t (*)[CRYPT_KEY_SIZE]) old, 1, false, &err);
	ok(st2 && storage_get_all(st2, "tables/1/manifest.json", &buf, &err) == BS_OK, "an old key alone reads");
	ok(st2 && storage_put(st2, "x", "y", 1, &err) == BS_ERR && has(&err, ERRCODE_ENCRYPTION_KEY, "no current"),
	   "an old key alone does not write");
	storage_close(st2);

	/* Listing reports content sizes. */
	{
		storage_keys k = {0};

		ok(storage_list(st, "tables/", storage_collect_key, &k, &err) == BS_OK && k.count == 2, "list");
		storage_keys_free(&k);
	}
	/* Listing after a key and deleting many pass through to the wrapped storage. */
	{
		listed_size ls = {0};
		const char *doomed[] = {"gone/1", "gone/2", "gone/missing"};
		storage_stats s0, s1;

		ok(storage_put(st, "gone/1", "one", 3, &err) == BS_OK && storage_put(st, "gone/2", "two", 3, &err) == BS_OK &&
		   storage_put(st, "gone/3", "three", 5, &err) == BS_OK, "three objects");
		ok(storage_list_after(st, "gone/", "gone/2", listed_size_cb, &ls, &err) == BS_OK && ls.count == 1 &&
		   strcmp(ls.last, "gone/3") == 0 && ls.size == 5, "a list after a key reports what follows, content sizes");
		memset(&s0, 0, sizeof(s0));
		storage_stats_add(st, &s0);
		ok(storage_delete_many(st, doomed, 3, &err) == BS_OK, "delete_many through the wrapper");
		memset(&s1, 0, sizeof(s1));
		storage_stats_add(st, &s1);
		is_int(s1.requests[STORAGE_OP_DELETE_MANY] - s0.requests[STORAGE_OP_DELETE_MANY], 1, "counted once");
		ok(storage_head(raw, "gone/1", &exists, NULL, &err) == BS_OK && !exists &&
		   storage_head(raw, "gone/3", &exists, NULL, &err) == BS_OK && exists, "the named keys are gone, not the others");
	}

	/* A plaintext archive: refused with a key, never silently mixed. */
	{
		storage *plain = open_raw("p");

		ok(plain && storage_put(plain, "head.json", "{}", 2, &err) == BS_OK, "a plaintext archive");
		storage_close(plain);
	}
	/* Without a key: an encrypted object is refused however it is read, whole or by ranges that
	 * start after the header or end inside it; a plaintext object's ranges pass. */
	st2 = wrap("a", NULL, NULL, 0, false, &err);
	ok(st2 != NULL, "an encrypted archive opens without a key");
	if (st2)
	{
		static const uint64_t ranges[][2] = {{0, 0}, {0, 4}, {0, 100}, {5, 10}, {CRYPT_HEADER_SIZE, 0}, {40, 1}};
		storage *plain = wrap("p", NULL, NULL, 0, false, &err);

		for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
		{
			strbuf_reset(&buf);
			ok(storage_get(st2, "big", ranges[i][0], ranges[i][1], append_sink, &buf, &err) == BS_ERR &&
			   has(&err, ERRCODE_ENCRYPTION_KEY, "is encrypted (object \"big\" is)") && buf.len == 0,
			   "without a key, bytes %d+%d of an encrypted object are refused",
			   (int) ranges[i][0], (int) ranges[i][1]);
		}
		ok(storage_get(st2, "missing", 5, 1, append_sink, &buf, &err) == BS_ERR &&
		   strcmp(err.code, ERRCODE_NOT_FOUND) == 0, "a ranged read of a missing object: not found");
		ok(plain && storage_put(plain, "rows", "0123456789abcdef", 16, &err) == BS_OK, "a plaintext object");
		strbuf_reset(&buf);
		ok(plain && storage_get(plain, "rows", 10, 3, append_sink, &buf, &err) == BS_OK && buf.len == 3 &&
		   memcmp(buf.data, "abc", 3) == 0, "a ranged read of a plaintext object passes");
		strbuf_reset(&buf);
		ok(plain && storage_get(plain, "rows", 0, 2, append_sink, &buf, &err) == BS_OK && buf.len == 2 &&
		   memcmp(buf.data, "01", 2) == 0, "so does one inside its first bytes");
		strbuf_reset(&buf);
		ok(plain && storage_get(plain, "head.json", 1, 0, append_sink, &buf, &err) == BS_OK && buf.len == 1 &&
		   buf.data[0] == '}', "and one of an object shorter than the header");
		ok(plain && storage_get(plain, "rows", 12, 5, append_sink, &buf, &err) == BS_ERR &&
		   strcmp(err.code, ERRCODE_OUT_OF_RANGE) == 0, "a range past the end: out of range");
		storage_close(plain);
		storage_close(st2);
	}
	ok(wrap("p", ka, NULL, 0, true, &err) == NULL && has(&err, ERRCODE_ENCRYPTION_KEY, "not encrypted"),
	   "the writer refuses to encrypt into an existing plaintext archive");
	st2 = wrap("p", ka, NULL, 0, false, &err);
	ok(st2 && storage_get_all(st2, "head.json", &buf, &err) == BS_ERR &&
	   has(&err, ERRCODE_ENCRYPTION_KEY, "is not encrypted"), "a reader with a key refuses a plaintext archive");
	storage_close(st2);

	/* encryption.json deleted: the encrypted objects say what happened. */
	ok(storage_get_all(raw, CRYPT_CONFIG_KEY, &stored, &err) == BS_OK && storage_delete(raw, CRYPT_CONFIG_KEY, &err) == BS_OK,
	   "encryption.json deleted");
	st2 = wrap("a", ka, NULL, 0, false, &err);
	ok(st2 && storage_get_all(st2, "tables/1/manifest.json", &buf, &err) == BS_ERR &&
	   has(&err, ERRCODE_DATA_CORRUPTED, "but no encryption.json"), "a reader names the missing encryption.json");
	ok(st2 && storage_crypt_prepare_write(st2, &err) == BS_ERR && has(&err, ERRCODE_DATA_CORRUPTED, "but no encryption.json"),
	   "so does the writer, and writes nothing");
	storage_close(st2);
	storage_put(raw, CRYPT_CONFIG_KEY, stored.data, stored.len, &err);

	storage_close(st);
	storage_close(raw);
	test_config_keys();
	strbuf_free(&buf);
	strbuf_free(&stored);
	strbuf_free(&big);
	{
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", root);
	}
	return done_testing();
}
