/* codec.h — streaming compression codecs: zstd, lz4 (frame format) and none. */
#ifndef BACKSTOP_CODEC_H
#define BACKSTOP_CODEC_H

#include <stddef.h>

#include "error.h"
#include "strbuf.h"

typedef enum codec_id
{
	CODEC_NONE = 0,
	CODEC_ZSTD = 1,
	CODEC_LZ4 = 2
} codec_id;

/* "none", "zstd", "lz4" <-> id; codec_parse returns BS_ERR with a message for other names. */
int codec_parse(const char *name, codec_id *out, bs_error *err);
const char *codec_name(codec_id id);

typedef struct codec_stream codec_stream;

/* Compressor: feed input, output is appended to out; finish flushes the frame end. */
int codec_compressor_open(codec_id id, int level, codec_stream **out, bs_error *err);
int codec_compress(codec_stream *cs, const void *in, size_t len, strbuf *out, bs_error *err);
int codec_compress_finish(codec_stream *cs, strbuf *out, bs_error *err);

/* Decompressor: feed compressed input, raw output appended to out; finish fails with
 * ERRCODE_DATA_CORRUPTED when the frame is incomplete.  Decompression of corrupt input
 * fails with ERRCODE_DATA_CORRUPTED, never crashes. */
int codec_decompressor_open(codec_id id, codec_stream **out, bs_error *err);
int codec_decompress(codec_stream *cs, const void *in, size_t len, strbuf *out, bs_error *err);
int codec_decompress_finish(codec_stream *cs, bs_error *err);

void codec_stream_free(codec_stream *cs);

#endif
