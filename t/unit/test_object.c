/* test_object.c — unit tests for object framing: encoder/decoder round trips, every corruption and truncation, storage. */
#include "object.h"
#include "tap.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#define KEY "tables/16384/seg/0000000001000000-0000000002000000.bso"

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint64_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Half random bytes, half repetitive text, so every codec has real work. */
static void
fill(strbuf *sb, size_t n)
{
	strbuf_reset(sb);
	strbuf_reserve(sb, n);
	for (size_t i = 0; i < n; i++)
		sb->data[i] = (i / 4096) % 2 ? (char) (rng() >> 32) : "16384\tbob\t\\N\t2026-11-26\n"[i % 24];
	sb->len = n;
	sb->data[n] = '\0';
}

static void
sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int n;

	EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

typedef struct collect
{
	strbuf		out;
	size_t		calls;
	int			fail_at;		/* refuse this call (1-based), 0 never */
} collect;

static int
collect_sink(void *ctx, const void *data, size_t len, bs_error *err)
{
	collect    *c = ctx;

	if (c->fail_at && (int) ++c->calls >= c->fail_at)
		return error_set(err, ERRCODE_DISK_FULL, "no room for the raw bytes");
	strbuf_append(&c->out, data, len);
	return BS_OK;
}

static int
encode(codec_id codec, int level, const char *data, size_t len, size_t piece, strbuf *out,
	   object_info *info, bs_error *err)
{
	object_encoder *enc;
	int			rc = BS_OK;

	if (object_encoder_open(codec, level, out, &enc, err) != BS_OK)
		return BS_ERR;
	for (size_t off = 0; off < len && rc == BS_OK;)
	{
		size_t		n = piece ? 1 + rng() % piece : len - off;

		if (n > len - off)
			n = len - off;
		rc = object_encoder_write(enc, data + off, n, out, err);
		off += n;
	}
	if (rc == BS_OK)
		rc = object_encoder_finish(enc, out, info, err);
	object_encoder_free(enc);
	return rc;
}

/* Decode stored bytes fed in pieces of random size up to piece (0: all at once). */
static int
decode(const char *key, const char *expected, const char *data, size_t len, size_t piece,
	   collect *c, object_info *info, bs_error *err)
{
	object_decoder *dec;
	int			rc = BS_OK;

	if (object_decoder_open(key, expected, collect_sink, c, &dec, err) != BS_OK)
		return BS_ERR;
	for (size_t off = 0; off < len && rc == BS_OK;)
	{
		size_t		n = piece ? 1 + rng() % piece : len - off;

		if (n > len - off)
			n = len - off;
		rc = object_decoder_write(dec, data + off, n, err);
		off += n;
	}
	if (rc == BS_OK)
		rc = object_decoder_finish(dec, info, err);
	object_decoder_free(dec);
	return rc;
}

static uint64_t
get_be64(const char *p)
{
	uint64_t	v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | (unsigned char) p[i];
	return v;
}

static void
round_trips(codec_id codec, int level)
{
	static const size_t sizes[] = {0, 1, 47, 48, 49, 5000, 1024 * 1024 + 3, 3 * 1024 * 1024};
	strbuf		raw = STRBUF_INIT;
	strbuf		stored = STRBUF_INIT;
	bs_error	err;

	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
	{
		size_t		n = sizes[s];
		object_info ein;
		object_info din;
		collect		c = {0};
		char		hex[65];
		int			rc;

		fill(&raw, n);
		strbuf_reset(&stored);
		rc = encode(codec, level, raw.data, n, s % 2 ? 100000 : 0, &stored, &ein, &err);
		ok(rc == BS_OK, "%s/%d encode %zu bytes", codec_name(codec), level, n);
		ok(stored.len >= OBJECT_HEADER_SIZE + OBJECT_TRAILER_SIZE &&
		   memcmp(stored.data, "BSOBJ001", 8) == 0 && stored.data[8] == (char) codec &&
		   memcmp(stored.data + 9, "\0\0\0\0\0\0\0", 7) == 0 &&
		   memcmp(stored.data + stored.len - 8, "BSEND001", 8) == 0 &&
		   get_be64(stored.data + stored.len - 48) == n,
		   "%s/%d %zu bytes: layout as documented", codec_name(codec), level, n);
		sha256_hex(raw.data, n, hex);
		ok(ein.raw_size == n && ein.stored_size == stored.len && ein.codec == codec &&
		   strcmp(ein.raw_sha256, hex) == 0, "encoder info: sizes and raw SHA-256");
		{
			char		trailer_hex[65];

			for (int i = 0; i < 32; i++)
				sprintf(trailer_hex + 2 * i, "%02x", (unsigned char) stored.data[stored.len - 40 + i]);
			is_str(trailer_hex, hex, "trailer holds the raw SHA-256");
		}
		sha256_hex(stored.data, stored.len, hex);
		is_str(ein.stored_sha256, hex, "stored SHA-256 covers every stored byte");

		/* 1-byte pieces exercise the header and trailer hold-back at every boundary. */
		rc = decode(KEY, ein.stored_sha256, stored.data, stored.len,
					n < 10000 ? 1 : (s % 2 ? 0 : 65536), &c, &din, &err);
		ok(rc == BS_OK && c.out.len == n && (n == 0 || memcmp(c.out.data, raw.data, n) == 0),
		   "%s/%d %zu bytes decode back", codec_name(codec), level, n);
		if (rc != BS_OK)
			printf("# %s\n", err.message);
		ok(memcmp(&ein, &din, sizeof(ein)) == 0, "decoder info equals encoder info");
		strbuf_free(&c.out);
	}
	strbuf_free(&raw);
	strbuf_free(&stored);
}

static void
expect_fault(const char *what, const strbuf *stored, const char *expected, const char *needle)
{
	collect		c = {0};
	bs_error	err;
	int			rc = decode(KEY, expected, stored->data, stored->len, 0, &c, NULL, &err);

	ok(rc == BS_ERR && strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 &&
	   strstr(err.message, "object \"" KEY "\"") && strstr(err.message, needle),
	   "%s: %s", what, rc == BS_OK ? "(accepted)" : err.message);
	strbuf_free(&c.out);
}

/* Named faults, each with the message a user would see. */
static void
faults(void)
{
	strbuf		raw = STRBUF_INIT;
	strbuf		stored = STRBUF_INIT;
	strbuf		copy = STRBUF_INIT;
	object_info info;
	bs_error	err;

	fill(&raw, 30000);
	encode(CODEC_ZSTD, 3, raw.data, raw.len, 0, &stored, &info, &err);

#define MUTATE(stmt) do { strbuf_reset(&copy); strbuf_append(&copy, stored.data, stored.len); stmt; } while (0)
	MUTATE(copy.data[0] = 'X');
	expect_fault("bad header magic", &copy, NULL, "is corrupt: bad header magic");
	MUTATE(copy.data[8] = 7);
	expect_fault("unknown codec", &copy, NULL, "has an unknown codec 7");
	MUTATE(copy.data[12] = 1);
	expect_fault("reserved byte set", &copy, NULL, "reserved header bytes are not zero");
	MUTATE(copy.len = 10);
	expect_fault("shorter than a header", &copy, NULL, "is truncated");
	MUTATE(copy.len = 0);
	expect_fault("empty object", &copy, NULL, "is truncated");
	MUTATE(copy.len -= 1);
	expect_fault("last byte missing", &copy, NULL, "is truncated: missing trailer");
	MUTATE(copy.len -= 48);
	expect_fault("trailer missing", &copy, NULL, "is truncated: missing trailer");
	MUTATE(copy.data[copy.len - 41] ^= 1);
	expect_fault("raw size altered", &copy, NULL, "raw size mismatch (expected");
	MUTATE(copy.data[copy.len - 20] ^= 1);
	expect_fault("raw SHA-256 altered", &copy, NULL, "raw SHA-256 mismatch (expected ");
	MUTATE(copy.data[copy.len / 2] ^= 0x55);
	expect_fault("payload altered", &copy, NULL, "is corrupt");
	MUTATE(strbuf_append(&copy, "x", 1));
	expect_fault("byte appended", &copy, NULL, "is corrupt");
	MUTATE((void) 0);
	expect_fault("another object's stored SHA-256", &copy,
				 "0000000000000000000000000000000000000000000000000000000000000000",
				 "stored SHA-256 mismatch (expected 0000");
	/* An intact zstd frame followed by a second one: payload has data after the frame. */
	{
		strbuf		other = STRBUF_INIT;
		object_info oi;

		encode(CODEC_ZSTD, 1, "abc", 3, 0, &other, &oi, &err);
		MUTATE((void) 0);
		strbuf_reset(&copy);
		strbuf_append(&copy, stored.data, stored.len - OBJECT_TRAILER_SIZE);
		strbuf_append(&copy, other.data + OBJECT_HEADER_SIZE, other.len - OBJECT_HEADER_SIZE);
		expect_fault("two frames in one payload", &copy, NULL, "after the end of the compressed frame");
		strbuf_free(&other);
	}
	/* The none codec has no checksum of its own: the trailer catches the change. */
	strbuf_reset(&stored);
	encode(CODEC_NONE, 0, raw.data, raw.len, 0, &stored, &info, &err);
	MUTATE(copy.data[100] ^= 1);
	expect_fault("none payload altered", &copy, NULL, "raw SHA-256 mismatch");
	MUTATE(copy.len -= 49);
	expect_fault("none truncated", &copy, NULL, "is truncated: missing trailer");
#undef MUTATE

	/* The expected digest is validated and compared case-insensitively. */
	{
		collect		c = {0};
		char		upper[65];

		for (int i = 0; i < 65; i++)
			upper[i] = (char) (info.stored_sha256[i] >= 'a' ? info.stored_sha256[i] - 32 : info.stored_sha256[i]);
		ok(decode(KEY, upper, stored.data, stored.len, 0, &c, NULL, &err) == BS_OK,
		   "upper-case expected digest accepted");
		strbuf_free(&c.out);
		ok(decode(KEY, "abc", stored.data, stored.len, 0, &c, NULL, &err) == BS_ERR &&
		   strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0, "malformed expected digest refused: %s",
		   err.message);
		strbuf_free(&c.out);
	}
	/* The caller's sink error is returned as it is, not dressed up as corruption. */
	{
		collect		c = {0};

		strbuf_reset(&stored);
		fill(&raw, 2 * 1024 * 1024);
		encode(CODEC_LZ4, 0, raw.data, raw.len, 0, &stored, &info, &err);
		c.fail_at = 2;
		ok(decode(KEY, NULL, stored.data, stored.len, 0, &c, NULL, &err) == BS_ERR &&
		   strcmp(err.code, ERRCODE_DISK_FULL) == 0 && strcmp(err.message, "no room for the raw bytes") == 0,
		   "sink failure passed through: %s", err.message);
		strbuf_free(&c.out);
	}
	strbuf_free(&raw);
	strbuf_free(&stored);
	strbuf_free(&copy);
}

/*
 * Every byte flipped and every truncation: with the manifest's digest, all must fail as
 * corruption; without it, a change may only pass if the raw bytes delivered are exact
 * (an unused bit, e.g. zstd's window size), and a truncation never passes.
 */
static void
exhaustive(codec_id codec)
{
	strbuf		raw = STRBUF_INIT;
	strbuf		stored = STRBUF_INIT;
	object_info info;
	bs_error	err;
	int			missed_expected = 0;
	int			wrong_data = 0;
	int			wrong_code = 0;
	int			harmless = 0;
	int			trunc_missed = 0;

	fill(&raw, 12000);
	encode(codec, codec == CODEC_ZSTD ? 3 : 0, raw.data, raw.len, 0, &stored, &info, &err);
	for (size_t i = 0; i < stored.len; i++)
	{
		unsigned char mask = (unsigned char) (i % 3 == 0 ? 0x80 : i % 3 == 1 ? 0x01 : 0xff);
		collect		c = {0};
		collect		d = {0};

		stored.data[i] ^= (char) mask;
		if (decode(KEY, info.stored_sha256, stored.data, stored.len, i % 2 ? 0 : 333, &c, NULL, &err) == BS_OK)
			missed_expected++;
		else if (strcmp(err.code, ERRCODE_DATA_CORRUPTED) != 0 || strstr(err.message, KEY) == NULL)
		{
			if (wrong_code++ == 0)
				printf("# byte %zu: %s %s\n", i, err.code, err.message);
		}
		if (decode(KEY, NULL, stored.data, stored.len, i % 2 ? 333 : 0, &d, NULL, &err) == BS_OK)
		{
			if (d.out.len == raw.len && memcmp(d.out.data, raw.data, raw.len) == 0)
				harmless++;
			else
				wrong_data++;
		}
		stored.data[i] ^= (char) mask;
		strbuf_free(&c.out);
		strbuf_free(&d.out);
	}
	is_int(missed_expected, 0, "%s: each of %zu altered bytes fails against the stored digest",
		   codec_name(codec), stored.len);
	is_int(wrong_code, 0, "%s: as data corruption naming the key", codec_name(codec));
	is_int(wrong_data, 0, "%s: without the digest no alteration yields wrong data (%d harmless)",
		   codec_name(codec), harmless);
	for (size_t cut = 0; cut < stored.len; cut++)
	{
		collect		c = {0};

		if (decode(KEY, NULL, stored.data, cut, cut % 2 ? 0 : 100, &c, NULL, &err) == BS_OK ||
			strcmp(err.code, ERRCODE_DATA_CORRUPTED) != 0)
			trunc_missed++;
		strbuf_free(&c.out);
	}
	is_int(trunc_missed, 0, "%s: each of %zu truncations fails", codec_name(codec), stored.len);
	strbuf_free(&raw);
	strbuf_free(&stored);
}

static void
through_storage(void)
{
	char		dir[] = "/tmp/backstop-test-object-XXXXXX";
	strbuf		url = STRBUF_INIT;
	strbuf		raw = STRBUF_INIT;
	strbuf		back = STRBUF_INIT;
	strbuf		file = STRBUF_INIT;
	storage    *st = NULL;
	object_writer *w;
	object_info pinfo;
	object_info ginfo;
	bs_error	err;
	char		hex[65];

	if (mkdtemp(dir) == NULL)
	{
		ok(0, "mkdtemp");
		return;
	}
	strbuf_printf(&url, "file://%s", dir);
	if (!ok(storage_open(url.data, NULL, &st, &err) == BS_OK, "open %s", url.data))
	{
		printf("# %s\n", err.message);
		return;
	}

	/* Streamed in many small writes; larger than a storage write chunk when compressed. */
	fill(&raw, 5 * 1024 * 1024 + 11);
	ok(object_writer_open(st, KEY, CODEC_ZSTD, 1, &w, &err) == BS_OK, "writer open");
	{
		int			rc = BS_OK;

		for (size_t off = 0; off < raw.len && rc == BS_OK; off += 10007)
			rc = object_writer_write(w, raw.data + off, raw.len - off < 10007 ? raw.len - off : 10007, &err);
		ok(rc == BS_OK, "10007-byte writes");
	}
	if (!ok(object_writer_commit(w, &pinfo, &err) == BS_OK, "writer commit"))
		printf("# %s\n", err.message);
	ok(pinfo.raw_size == raw.len && pinfo.stored_size > 2 * 1024 * 1024, "put info sizes (%llu stored)",
	   (unsigned long long) pinfo.stored_size);
	ok(storage_get_all(st, KEY, &file, &err) == BS_OK && file.len == pinfo.stored_size,
	   "stored object has the reported size");
	sha256_hex(file.data, file.len, hex);
	is_str(pinfo.stored_sha256, hex, "reported stored SHA-256 is that of the file");

	ok(object_get_all(st, KEY, pinfo.stored_sha256, &back, &ginfo, &err) == BS_OK &&
	   back.len == raw.len && memcmp(back.data, raw.data, raw.len) == 0, "object_get_all round trip");
	ok(memcmp(&pinfo, &ginfo, sizeof(pinfo)) == 0, "get info equals put info");
	ok(object_verify(st, KEY, pinfo.stored_sha256, &ginfo, &err) == BS_OK, "object_verify");

	/* Small objects through object_put, every codec. */
	for (int codec = 0; codec <= 2; codec++)
	{
		object_info pi;

		strbuf_reset(&back);
		ok(object_put(st, "small.bso", codec, 1, "hello", 5, &pi, &err) == BS_OK &&
		   object_get_all(st, "small.bso", pi.stored_sha256, &back, NULL, &err) == BS_OK &&
		   back.len == 5 && memcmp(back.data, "hello", 5) == 0, "%s: put/get of 5 bytes",
		   codec_name(codec));
	}

	/* Damage in storage is found, and get_all leaves the buffer as it was. */
	file.data[file.len / 3] ^= 0x10;
	ok(storage_put(st, KEY, file.data, file.len, &err) == BS_OK, "overwrite with a damaged copy");
	strbuf_reset(&back);
	strbuf_append_str(&back, "prefix");
	ok(object_get_all(st, KEY, NULL, &back, NULL, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 && strstr(err.message, KEY),
	   "damaged object refused: %s", err.message);
	ok(back.len == 6 && strcmp(back.data, "prefix") == 0, "output restored after failure");
	ok(storage_put(st, KEY, file.data, file.len / 2, &err) == BS_OK, "overwrite with half the object");
	ok(object_verify(st, KEY, NULL, NULL, &err) == BS_ERR && strstr(err.message, "is truncated: missing trailer"),
	   "truncated object refused: %s", err.message);
	ok(object_verify(st, "nope.bso", NULL, NULL, &err) == BS_ERR && strcmp(err.code, ERRCODE_NOT_FOUND) == 0,
	   "missing object is not found, not corrupt: %s", err.message);

	/* An aborted writer leaves nothing behind. */
	ok(object_writer_open(st, "aborted.bso", CODEC_LZ4, 0, &w, &err) == BS_OK &&
	   object_writer_write(w, raw.data, raw.len, &err) == BS_OK, "writer for abort");
	object_writer_abort(w);
	{
		bool		exists = true;
		storage_stat sst;

		ok(storage_head(st, "aborted.bso", &exists, &sst, &err) == BS_OK && !exists,
		   "aborted object is not visible");
	}

	storage_delete(st, KEY, &err);
	storage_delete(st, "small.bso", &err);
	storage_close(st);
	{
		strbuf		cmd = STRBUF_INIT;

		strbuf_printf(&cmd, "rm -rf '%s'", dir);
		ok(system(cmd.data) == 0, "scratch directory removed");
		strbuf_free(&cmd);
	}
	strbuf_free(&url);
	strbuf_free(&raw);
	strbuf_free(&back);
	strbuf_free(&file);
}

int
main(void)
{
	strbuf		out = STRBUF_INIT;
	object_encoder *enc;
	bs_error	err;

	ok(object_encoder_open((codec_id) 9, 0, &out, &enc, &err) == BS_ERR && enc == NULL && out.len == 0,
	   "unknown codec refused by the encoder: %s", err.message);
	ok(object_encoder_open(CODEC_ZSTD, 50, &out, &enc, &err) == BS_ERR, "bad level refused: %s", err.message);
	strbuf_free(&out);

	round_trips(CODEC_NONE, 0);
	round_trips(CODEC_ZSTD, 1);
	round_trips(CODEC_ZSTD, 3);
	round_trips(CODEC_LZ4, 0);
	faults();
	exhaustive(CODEC_ZSTD);
	exhaustive(CODEC_LZ4);
	exhaustive(CODEC_NONE);
	through_storage();
	return done_testing();
}
