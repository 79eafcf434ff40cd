/* test_codec.c — unit tests for the streaming codecs: round trips, bounded output, corrupt input. */
#include "codec.h"
#include "tap.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t
rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* kind 0: random bytes; 1: COPY-like text; 2: zeros. */
static void
fill(strbuf *sb, size_t n, int kind)
{
	static const char *const words[] = {"alpha", "beta", "gamma", "delta", "\\N", "2026-11-26",
	"16:00:00+00", "customer", "order", "42", "3.14", "true"};

	strbuf_reset(sb);
	strbuf_reserve(sb, n);
	if (kind == 0)
	{
		for (size_t i = 0; i < n; i++)
			sb->data[i] = (char) (rng() >> 24);
		sb->len = n;
	}
	else if (kind == 1)
	{
		while (sb->len < n)
		{
			const char *w = words[rng() % (sizeof(words) / sizeof(words[0]))];
			size_t		wl = strlen(w);

			if (wl > n - sb->len)
				wl = n - sb->len;
			memcpy(sb->data + sb->len, w, wl);
			sb->len += wl;
			if (sb->len < n)
				sb->data[sb->len++] = (rng() % 6 == 0) ? '\n' : '\t';
		}
	}
	else
	{
		memset(sb->data, 0, n);
		sb->len = n;
	}
	sb->data[sb->len] = '\0';
}

typedef struct collect
{
	strbuf		out;
	size_t		max_piece;
	size_t		calls;
	int			fail_after;		/* fail on this call number (1-based), 0 never */
	bool		discard;		/* count only */
	uint64_t	total;
} collect;

static int
collect_sink(void *ctx, const void *data, size_t len, bs_error *err)
{
	collect    *c = ctx;

	c->calls++;
	if (c->fail_after && (int) c->calls >= c->fail_after)
		return error_set(err, ERRCODE_IO, "sink refused");
	if (len > c->max_piece)
		c->max_piece = len;
	c->total += len;
	if (!c->discard)
		strbuf_append(&c->out, data, len);
	return BS_OK;
}

/* Compress in pieces of random size (piece 0 means all at once). */
static int
compress_all(codec_id id, int level, const char *data, size_t len, size_t piece, strbuf *out, bs_error *err)
{
	codec_stream *cs;
	int			rc = BS_OK;

	if (codec_compressor_open(id, level, &cs, err) != BS_OK)
		return BS_ERR;
	for (size_t off = 0; off < len && rc == BS_OK;)
	{
		size_t		n = piece ? 1 + rng() % piece : len;

		if (n > len - off)
			n = len - off;
		rc = codec_compress(cs, data + off, n, out, err);
		off += n;
	}
	if (rc == BS_OK)
		rc = codec_compress_finish(cs, out, err);
	codec_stream_free(cs);
	return rc;
}

static int
decompress_all(codec_id id, const char *data, size_t len, size_t piece, collect *c, bs_error *err)
{
	codec_stream *cs;
	int			rc = BS_OK;

	if (codec_decompressor_open(id, &cs, err) != BS_OK)
		return BS_ERR;
	for (size_t off = 0; off < len && rc == BS_OK;)
	{
		size_t		n = piece ? 1 + rng() % piece : len;

		if (n > len - off)
			n = len - off;
		rc = codec_decompress(cs, data + off, n, collect_sink, c, err);
		off += n;
	}
	if (rc == BS_OK)
		rc = codec_decompress_finish(cs, err);
	codec_stream_free(cs);
	return rc;
}

static void
round_trips(codec_id id, int level)
{
	static const size_t sizes[] = {0, 1, 100, 65536, 1024 * 1024 + 17, 3 * 1024 * 1024};
	strbuf		raw = STRBUF_INIT;
	strbuf		comp = STRBUF_INIT;
	bs_error	err;

	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++)
		for (int kind = 0; kind < 3; kind++)
		{
			collect		c = {0};
			size_t		cpiece = (s + kind) % 2 ? 0 : 70000;
			size_t		dpiece = (s + kind) % 3 == 0 ? 0 : 1 + (s * 7919) % 100000;
			int			rc;

			fill(&raw, sizes[s], kind);
			strbuf_reset(&comp);
			rc = compress_all(id, level, raw.data, raw.len, cpiece, &comp, &err);
			ok(rc == BS_OK, "%s/%d compress %zu bytes kind %d", codec_name(id), level, sizes[s], kind);
			if (rc != BS_OK)
				printf("# %s\n", err.message);
			rc = decompress_all(id, comp.data, comp.len, dpiece, &c, &err);
			ok(rc == BS_OK && c.out.len == raw.len &&
			   (raw.len == 0 || memcmp(c.out.data, raw.data, raw.len) == 0),
			   "%s/%d round trip %zu bytes kind %d (%zu compressed)", codec_name(id), level,
			   sizes[s], kind, comp.len);
			if (rc != BS_OK)
				printf("# %s\n", err.message);
			ok(c.max_piece <= CODEC_SINK_CHUNK, "sink pieces bounded (max %zu)", c.max_piece);
			if (kind == 2 && sizes[s] >= 65536 && id != CODEC_NONE)
				ok(comp.len < raw.len / 50, "zeros compress well (%zu -> %zu)", raw.len, comp.len);
			strbuf_free(&c.out);
		}
	strbuf_free(&raw);
	strbuf_free(&comp);
}

/*
 * Every single-byte change of a frame must either be detected as corruption or decode to
 * exactly the original (e.g. a larger window size); every truncation must be detected.
 */
static void
corruption(codec_id id)
{
	strbuf		raw = STRBUF_INIT;
	strbuf		comp = STRBUF_INIT;
	bs_error	err;
	int			undetected = 0;
	int			wrong_code = 0;
	int			harmless = 0;
	int			truncation_missed = 0;

	fill(&raw, 20000, 1);
	ok(compress_all(id, id == CODEC_ZSTD ? 3 : 0, raw.data, raw.len, 0, &comp, &err) == BS_OK,
	   "%s: compress corpus", codec_name(id));
	for (size_t i = 0; i < comp.len; i++)
	{
		static const unsigned char masks[] = {0x01, 0x80, 0xff};

		for (size_t m = 0; m < sizeof(masks); m++)
		{
			collect		c = {0};
			int			rc;

			comp.data[i] ^= (char) masks[m];
			rc = decompress_all(id, comp.data, comp.len, (i % 2) ? 4096 : 0, &c, &err);
			comp.data[i] ^= (char) masks[m];
			if (rc == BS_OK)
			{
				if (c.out.len == raw.len && memcmp(c.out.data, raw.data, raw.len) == 0)
					harmless++;
				else
					undetected++;
			}
			else if (strcmp(err.code, ERRCODE_DATA_CORRUPTED) != 0)
			{
				if (wrong_code++ == 0)
					printf("# byte %zu: code %s: %s\n", i, err.code, err.message);
			}
			strbuf_free(&c.out);
		}
	}
	is_int(undetected, 0, "%s: no byte flip of %zu bytes decodes to wrong data (%d harmless)",
		   codec_name(id), comp.len, harmless);
	is_int(wrong_code, 0, "%s: corruption is reported as data corruption", codec_name(id));

	for (size_t cut = 0; cut < comp.len; cut++)
	{
		collect		c = {0};

		c.discard = true;
		if (decompress_all(id, comp.data, cut, cut % 3 ? 0 : 777, &c, &err) == BS_OK ||
			strcmp(err.code, ERRCODE_DATA_CORRUPTED) != 0)
			truncation_missed++;
	}
	is_int(truncation_missed, 0, "%s: every truncation of %zu bytes fails", codec_name(id), comp.len);

	{
		collect		c = {0};
		size_t		n = comp.len;

		strbuf_append(&comp, "JUNK", 4);
		ok(decompress_all(id, comp.data, comp.len, 0, &c, &err) == BS_ERR &&
		   strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 && strstr(err.message, "after the end"),
		   "%s: data after the frame is rejected: %s", codec_name(id), err.message);
		strbuf_free(&c.out);
		comp.len = n;
	}
	{
		collect		c = {0};

		fill(&comp, 100000, 0);
		ok(decompress_all(id, comp.data, comp.len, 0, &c, &err) == BS_ERR &&
		   strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0,
		   "%s: random input is rejected: %s", codec_name(id), err.message);
		strbuf_free(&c.out);
	}
	{
		collect		c = {0};

		ok(decompress_all(id, "", 0, 0, &c, &err) == BS_ERR &&
		   strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 && strstr(err.message, "incomplete"),
		   "%s: empty input is an incomplete frame: %s", codec_name(id), err.message);
	}
	strbuf_free(&raw);
	strbuf_free(&comp);
}

/* A tiny frame expanding to 64 MiB is delivered in bounded pieces. */
static void
bomb(codec_id id)
{
	const size_t big = (size_t) 64 * 1024 * 1024;
	const size_t step = (size_t) 16 * 1024 * 1024;
	char	   *zeros = xcalloc(1, step);
	strbuf		comp = STRBUF_INIT;
	codec_stream *cs;
	collect		c = {0};
	bs_error	err;
	int			rc;

	c.discard = true;
	ok(codec_compressor_open(id, 1, &cs, &err) == BS_OK, "%s: open compressor", codec_name(id));
	for (size_t done = 0; done < big; done += step)
		codec_compress(cs, zeros, step, &comp, &err);
	ok(codec_compress_finish(cs, &comp, &err) == BS_OK, "%s: compress 64 MiB of zeros to %zu bytes",
	   codec_name(id), comp.len);
	codec_stream_free(cs);
	rc = decompress_all(id, comp.data, comp.len, 0, &c, &err);
	ok(rc == BS_OK && c.total == big, "%s: bomb decompresses to %llu bytes", codec_name(id),
	   (unsigned long long) c.total);
	ok(c.max_piece <= CODEC_SINK_CHUNK && c.calls >= big / CODEC_SINK_CHUNK,
	   "%s: in %zu pieces of at most %zu bytes", codec_name(id), c.calls, c.max_piece);
	strbuf_free(&comp);
	free(zeros);
}

static void
sink_failure(codec_id id)
{
	strbuf		raw = STRBUF_INIT;
	strbuf		comp = STRBUF_INIT;
	collect		c = {0};
	bs_error	err;

	fill(&raw, 2 * 1024 * 1024, 1);
	compress_all(id, 1, raw.data, raw.len, 0, &comp, &err);
	c.fail_after = 2;
	ok(decompress_all(id, comp.data, comp.len, 0, &c, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_IO) == 0 && strcmp(err.message, "sink refused") == 0,
	   "%s: a sink error stops decompression and is returned as is", codec_name(id));
	is_int(c.calls, 2, "%s: no sink call after the failure", codec_name(id));
	strbuf_free(&c.out);
	strbuf_free(&raw);
	strbuf_free(&comp);
}

int
main(void)
{
	codec_id	id;
	bs_error	err;
	codec_stream *cs;

	ok(codec_parse("zstd", &id, &err) == BS_OK && id == CODEC_ZSTD, "zstd parses");
	ok(codec_parse("lz4", &id, &err) == BS_OK && id == CODEC_LZ4, "lz4 parses");
	ok(codec_parse("none", &id, &err) == BS_OK && id == CODEC_NONE, "none parses");
	ok(codec_parse("gzip", &id, &err) == BS_ERR && strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0 &&
	   strstr(err.message, "gzip"), "unknown codec rejected: %s", err.message);
	is_str(codec_name(CODEC_LZ4), "lz4", "codec_name");
	ok(!codec_is_known(7) && codec_is_known(2), "codec_is_known");
	ok(codec_compressor_open(CODEC_ZSTD, 99, &cs, &err) == BS_ERR && cs == NULL,
	   "zstd level 99 rejected: %s", err.message);
	ok(codec_compressor_open(CODEC_LZ4, 13, &cs, &err) == BS_ERR, "lz4 level 13 rejected");
	ok(codec_decompressor_open((codec_id) 7, &cs, &err) == BS_ERR, "unknown codec id rejected");
	ok(codec_compressor_open((codec_id) 7, 0, &cs, &err) == BS_ERR && cs == NULL, "unknown codec id rejected to compress");
	is_str(codec_name((codec_id) 7), "unknown", "codec_name of an unknown id");

	/* A stream used after its end, or the wrong way round, refuses instead of going on. */
	for (int c = 0; c < 3; c++)
	{
		codec_id	ids[] = {CODEC_NONE, CODEC_ZSTD, CODEC_LZ4};
		strbuf		out = STRBUF_INIT;

		if (codec_compressor_open(ids[c], 1, &cs, &err) != BS_OK)
			continue;
		ok(codec_compress_finish(cs, &out, &err) == BS_OK, "%s: an empty frame", codec_name(ids[c]));
		ok(codec_compress_finish(cs, &out, &err) == BS_ERR && strcmp(err.code, ERRCODE_INTERNAL) == 0,
		   "%s: finished twice: refused", codec_name(ids[c]));
		ok(codec_compress(cs, "x", 1, &out, &err) == BS_ERR, "%s: data after the end: refused", codec_name(ids[c]));
		ok(codec_decompress_finish(cs, &err) == BS_ERR && strstr(err.message, "unusable"),
		   "%s: a compressor is not finished as a decompressor", codec_name(ids[c]));
		codec_stream_free(cs);
		strbuf_free(&out);
	}

	round_trips(CODEC_NONE, 0);
	round_trips(CODEC_ZSTD, 1);
	round_trips(CODEC_ZSTD, 3);
	round_trips(CODEC_LZ4, 0);
	round_trips(CODEC_LZ4, 9);

	/* Our zstd frames are plain zstd frames: the one-shot library API reads them. */
	{
		strbuf		raw = STRBUF_INIT;
		strbuf		comp = STRBUF_INIT;
		char	   *back;
		size_t		n;

		fill(&raw, 100000, 1);
		compress_all(CODEC_ZSTD, 3, raw.data, raw.len, 0, &comp, &err);
		back = xmalloc(raw.len);
		n = ZSTD_decompress(back, raw.len, comp.data, comp.len);
		ok(!ZSTD_isError(n) && n == raw.len && memcmp(back, raw.data, n) == 0,
		   "zstd frame readable by ZSTD_decompress");
		free(back);
		strbuf_free(&raw);
		strbuf_free(&comp);
	}

	corruption(CODEC_ZSTD);
	corruption(CODEC_LZ4);
	bomb(CODEC_ZSTD);
	bomb(CODEC_LZ4);
	sink_failure(CODEC_ZSTD);
	sink_failure(CODEC_LZ4);
	sink_failure(CODEC_NONE);

	/* Misuse is reported, not undefined. */
	ok(codec_compressor_open(CODEC_ZSTD, 1, &cs, &err) == BS_OK, "open for misuse checks");
	ok(codec_decompress(cs, "x", 1, collect_sink, NULL, &err) == BS_ERR,
	   "decompress on a compressor is refused");
	{
		strbuf		out = STRBUF_INIT;

		ok(codec_compress_finish(cs, &out, &err) == BS_OK, "finish");
		ok(codec_compress(cs, "x", 1, &out, &err) == BS_ERR, "compress after finish is refused");
		strbuf_free(&out);
	}
	codec_stream_free(cs);

	return done_testing();
}
