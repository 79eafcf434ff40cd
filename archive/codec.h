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
/* True for an id this build can read and write (used to validate stored codec bytes). */
int codec_is_known(int id);

/*
 * Receives decompressed output.  Same shape as storage_sink, so an object reader can pass
 * its caller's sink straight through.  A non-BS_OK return stops decompression and is
 * returned unchanged.
 */
typedef int (*codec_sink) (void *ctx, const void *data, size_t len, bs_error *err);

/* Largest piece of output handed to a codec_sink in one call. */
#define CODEC_SINK_CHUNK ((size_t) 256 * 1024)

typedef struct codec_stream codec_stream;

/*
 * Compressor: feed input, output is appended to out; finish flushes the frame end.
 * level is the zstd level (1..19, 0 = zstd's default of 3) or the lz4 level (0 = the
 * fast default, 3..12 = high compression); it is ignored for none.  Both frames carry
 * the codec's own content checksum.  One call appends at most about the codec's
 * compress bound of that call's input.
 */
int codec_compressor_open(codec_id id, int level, codec_stream **out, bs_error *err);
int codec_compress(codec_stream *cs, const void *in, size_t len, strbuf *out, bs_error *err);
int codec_compress_finish(codec_stream *cs, strbuf *out, bs_error *err);

/*
 * Decompressor: feed compressed input; raw output goes to sink in pieces of at most
 * CODEC_SINK_CHUNK bytes, so memory stays bounded whatever the compression ratio (a
 * "zip bomb" costs time, never memory).  Corrupt input, input after the end of the
 * frame, or a frame needing more than 128 MiB of window fails with
 * ERRCODE_DATA_CORRUPTED, never crashes.  finish fails with ERRCODE_DATA_CORRUPTED when
 * the frame did not end.
 */
int codec_decompressor_open(codec_id id, codec_stream **out, bs_error *err);
int codec_decompress(codec_stream *cs, const void *in, size_t len,
					 codec_sink sink, void *ctx, bs_error *err);
int codec_decompress_finish(codec_stream *cs, bs_error *err);

void codec_stream_free(codec_stream *cs);

#endif
