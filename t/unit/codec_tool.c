/* codec_tool.c — stdin-to-stdout front end to the codecs and object framing, for benchmarks and tests. */
#include "codec.h"
#include "object.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_CHUNK ((size_t) 1024 * 1024)

static void
usage(void)
{
	fprintf(stderr,
			"usage: codec_tool compress CODEC LEVEL      (raw stdin -> codec frame on stdout)\n"
			"       codec_tool decompress CODEC          (codec frame stdin -> raw stdout)\n"
			"       codec_tool encode CODEC LEVEL        (raw stdin -> .bso object on stdout)\n"
			"       codec_tool decode [STORED_SHA256]    (.bso object stdin -> raw stdout, verified)\n"
			"CODEC is none, zstd or lz4.\n");
	exit(2);
}

static int
write_all(int fd, const void *data, size_t len, bs_error *err)
{
	const char *p = data;

	while (len > 0)
	{
		ssize_t		n = write(fd, p, len);

		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			return error_set_errno(err, errno, "could not write to standard output");
		}
		p += n;
		len -= (size_t) n;
	}
	return BS_OK;
}

static int
stdout_sink(void *ctx, const void *data, size_t len, bs_error *err)
{
	(void) ctx;
	return write_all(STDOUT_FILENO, data, len, err);
}

/* Read stdin in chunks; returns bytes read (0 at end), -1 on error. */
static ssize_t
read_chunk(char *buf, bs_error *err)
{
	for (;;)
	{
		ssize_t		n = read(STDIN_FILENO, buf, READ_CHUNK);

		if (n >= 0)
			return n;
		if (errno != EINTR)
		{
			error_set_errno(err, errno, "could not read standard input");
			return -1;
		}
	}
}

static int
parse_level(const char *s, int *level, bs_error *err)
{
	char	   *end;
	long		v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < -1000 || v > 1000)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "invalid level \"%s\"", s);
	*level = (int) v;
	return BS_OK;
}

static int
run_compress(codec_id id, int level, char *buf, bs_error *err)
{
	codec_stream *cs;
	strbuf		out = STRBUF_INIT;
	ssize_t		n;
	int			rc = BS_OK;

	if (codec_compressor_open(id, level, &cs, err) != BS_OK)
		return BS_ERR;
	while (rc == BS_OK && (n = read_chunk(buf, err)) > 0)
	{
		rc = codec_compress(cs, buf, (size_t) n, &out, err);
		if (rc == BS_OK && out.len >= READ_CHUNK)
		{
			rc = write_all(STDOUT_FILENO, out.data, out.len, err);
			strbuf_reset(&out);
		}
	}
	if (rc == BS_OK && n < 0)
		rc = BS_ERR;
	if (rc == BS_OK)
		rc = codec_compress_finish(cs, &out, err);
	if (rc == BS_OK)
		rc = write_all(STDOUT_FILENO, out.data, out.len, err);
	codec_stream_free(cs);
	strbuf_free(&out);
	return rc;
}

static int
run_decompress(codec_id id, char *buf, bs_error *err)
{
	codec_stream *cs;
	ssize_t		n;
	int			rc = BS_OK;

	if (codec_decompressor_open(id, &cs, err) != BS_OK)
		return BS_ERR;
	while (rc == BS_OK && (n = read_chunk(buf, err)) > 0)
		rc = codec_decompress(cs, buf, (size_t) n, stdout_sink, NULL, err);
	if (rc == BS_OK && n < 0)
		rc = BS_ERR;
	if (rc == BS_OK)
		rc = codec_decompress_finish(cs, err);
	codec_stream_free(cs);
	return rc;
}

static int
run_encode(codec_id id, int level, char *buf, bs_error *err)
{
	object_encoder *enc;
	object_info info;
	strbuf		out = STRBUF_INIT;
	ssize_t		n;
	int			rc = BS_OK;

	if (object_encoder_open(id, level, &out, &enc, err) != BS_OK)
		return BS_ERR;
	while (rc == BS_OK && (n = read_chunk(buf, err)) > 0)
	{
		rc = object_encoder_write(enc, buf, (size_t) n, &out, err);
		if (rc == BS_OK && out.len >= READ_CHUNK)
		{
			rc = write_all(STDOUT_FILENO, out.data, out.len, err);
			strbuf_reset(&out);
		}
	}
	if (rc == BS_OK && n < 0)
		rc = BS_ERR;
	if (rc == BS_OK)
		rc = object_encoder_finish(enc, &out, &info, err);
	if (rc == BS_OK)
		rc = write_all(STDOUT_FILENO, out.data, out.len, err);
	if (rc == BS_OK)
		fprintf(stderr, "raw_size=%llu stored_size=%llu stored_sha256=%s\n",
				(unsigned long long) info.raw_size, (unsigned long long) info.stored_size,
				info.stored_sha256);
	object_encoder_free(enc);
	strbuf_free(&out);
	return rc;
}

static int
run_decode(const char *expected, char *buf, bs_error *err)
{
	object_decoder *dec;
	object_info info;
	ssize_t		n;
	int			rc = BS_OK;

	if (object_decoder_open("stdin", expected, stdout_sink, NULL, &dec, err) != BS_OK)
		return BS_ERR;
	while (rc == BS_OK && (n = read_chunk(buf, err)) > 0)
		rc = object_decoder_write(dec, buf, (size_t) n, err);
	if (rc == BS_OK && n < 0)
		rc = BS_ERR;
	if (rc == BS_OK)
		rc = object_decoder_finish(dec, &info, err);
	object_decoder_free(dec);
	return rc;
}

int
main(int argc, char **argv)
{
	bs_error	err;
	codec_id	id = CODEC_NONE;
	int			level = 0;
	char	   *buf;
	int			rc;

	error_clear(&err);
	if (argc < 2)
		usage();
	if ((strcmp(argv[1], "compress") == 0 || strcmp(argv[1], "encode") == 0) && argc == 4)
	{
		if (codec_parse(argv[2], &id, &err) != BS_OK || parse_level(argv[3], &level, &err) != BS_OK)
			goto fail;
	}
	else if (strcmp(argv[1], "decompress") == 0 && argc == 3)
	{
		if (codec_parse(argv[2], &id, &err) != BS_OK)
			goto fail;
	}
	else if (!(strcmp(argv[1], "decode") == 0 && argc <= 3))
		usage();

	buf = xmalloc(READ_CHUNK);
	if (strcmp(argv[1], "compress") == 0)
		rc = run_compress(id, level, buf, &err);
	else if (strcmp(argv[1], "decompress") == 0)
		rc = run_decompress(id, buf, &err);
	else if (strcmp(argv[1], "encode") == 0)
		rc = run_encode(id, level, buf, &err);
	else
		rc = run_decode(argc == 3 ? argv[2] : NULL, buf, &err);
	free(buf);
	if (rc == BS_OK)
		return 0;
fail:
	fprintf(stderr, "codec_tool: %s [%s]\n", err.message, err.code);
	return 1;
}
