/* codec.c — streaming compression codecs: zstd, lz4 (frame format) and none. */
#include "codec.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <lz4frame.h>
#include <zstd.h>

/*
 * Largest zstd window a reader accepts (2^27 = 128 MiB, zstd's own default limit): our
 * writers use levels whose windows are far smaller, and a hostile frame must not make
 * the reader allocate more.
 */
#define CODEC_ZSTD_WINDOWLOG_MAX 27

/* Input slice per LZ4F_compressUpdate call, so the output reservation stays modest. */
#define CODEC_LZ4_SLICE ((size_t) 1024 * 1024)

#define CODEC_LZ4_LEVEL_MAX 12

struct codec_stream
{
	codec_id	id;
	bool		compressing;
	bool		ended;			/* decompressing: the frame is complete */
	bool		failed;			/* an error left the stream unusable */
	ZSTD_CCtx  *zc;
	ZSTD_DCtx  *zd;
	LZ4F_cctx  *lc;
	LZ4F_dctx  *ld;
	LZ4F_preferences_t lprefs;
	bool		lz4_begun;		/* lz4 frame header written */
	char	   *outbuf;			/* decompression output, CODEC_SINK_CHUNK bytes */
};

int
codec_parse(const char *name, codec_id *out, bs_error *err)
{
	if (strcmp(name, "none") == 0)
		*out = CODEC_NONE;
	else if (strcmp(name, "zstd") == 0)
		*out = CODEC_ZSTD;
	else if (strcmp(name, "lz4") == 0)
		*out = CODEC_LZ4;
	else
		return error_set(err, ERRCODE_INVALID_PARAMETER,
						 "unknown compression codec \"%s\" (expected none, zstd or lz4)", name);
	return BS_OK;
}

const char *
codec_name(codec_id id)
{
	switch (id)
	{
		case CODEC_NONE:
			return "none";
		case CODEC_ZSTD:
			return "zstd";
		case CODEC_LZ4:
			return "lz4";
	}
	return "unknown";
}

int
codec_is_known(int id)
{
	return id == CODEC_NONE || id == CODEC_ZSTD || id == CODEC_LZ4;
}

/* Make room for at least want bytes after out->len; returns the writable size. */
static size_t
out_room(strbuf *out, size_t want)
{
	strbuf_reserve(out, want);
	return out->cap - out->len - 1;
}

/* Account for n bytes written directly behind out->len, keeping the NUL terminator. */
static void
out_advance(strbuf *out, size_t n)
{
	out->len += n;
	out->data[out->len] = '\0';
}

int
codec_compressor_open(codec_id id, int level, codec_stream **out, bs_error *err)
{
	codec_stream *cs;

	*out = NULL;
	if (!codec_is_known(id))
		return error_set(err, ERRCODE_INVALID_PARAMETER, "unknown compression codec %d", (int) id);
	if (id == CODEC_ZSTD && (level < 0 || level > ZSTD_maxCLevel()))
		return error_set(err, ERRCODE_INVALID_PARAMETER,
						 "zstd compression level %d is out of range (0..%d)", level, ZSTD_maxCLevel());
	if (id == CODEC_LZ4 && (level < 0 || level > CODEC_LZ4_LEVEL_MAX))
		return error_set(err, ERRCODE_INVALID_PARAMETER,
						 "lz4 compression level %d is out of range (0..%d)", level, CODEC_LZ4_LEVEL_MAX);

	cs = xcalloc(1, sizeof(*cs));
	cs->id = id;
	cs->compressing = true;
	if (id == CODEC_ZSTD)
	{
		size_t		r;

		cs->zc = ZSTD_createCCtx();
		if (cs->zc == NULL)
		{
			codec_stream_free(cs);
			return error_set(err, ERRCODE_OUT_OF_MEMORY, "could not create a zstd compression context");
		}
		r = ZSTD_CCtx_setParameter(cs->zc, ZSTD_c_compressionLevel, level);
		if (!ZSTD_isError(r))
			r = ZSTD_CCtx_setParameter(cs->zc, ZSTD_c_checksumFlag, 1);
		if (ZSTD_isError(r))
		{
			codec_stream_free(cs);
			return error_set(err, ERRCODE_INTERNAL, "could not configure zstd: %s", ZSTD_getErrorName(r));
		}
	}
	else if (id == CODEC_LZ4)
	{
		LZ4F_errorCode_t r = LZ4F_createCompressionContext(&cs->lc, LZ4F_VERSION);

		if (LZ4F_isError(r))
		{
			codec_stream_free(cs);
			return error_set(err, ERRCODE_OUT_OF_MEMORY, "could not create an lz4 compression context: %s",
							 LZ4F_getErrorName(r));
		}
		/* Independent 1 MiB blocks: near the 4 MiB ratio, a quarter of the reader memory. */
		cs->lprefs.frameInfo.blockSizeID = LZ4F_max1MB;
		cs->lprefs.frameInfo.blockMode = LZ4F_blockIndependent;
		cs->lprefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
		cs->lprefs.compressionLevel = level;
	}
	*out = cs;
	return BS_OK;
}

static int
lz4_begin(codec_stream *cs, strbuf *out, bs_error *err)
{
	size_t		r;
	size_t		room;

	if (cs->lz4_begun)
		return BS_OK;
	/* Reserve before taking the pointer: the order arguments are evaluated in is unspecified. */
	room = out_room(out, LZ4F_HEADER_SIZE_MAX);
	r = LZ4F_compressBegin(cs->lc, out->data + out->len, room, &cs->lprefs);
	if (LZ4F_isError(r))
		return error_set(err, ERRCODE_INTERNAL, "lz4 compression failed: %s", LZ4F_getErrorName(r));
	out_advance(out, r);
	cs->lz4_begun = true;
	return BS_OK;
}

int
codec_compress(codec_stream *cs, const void *in, size_t len, strbuf *out, bs_error *err)
{
	if (!cs->compressing || cs->failed)
		return error_set(err, ERRCODE_INTERNAL, "codec_compress called on an unusable stream");

	switch (cs->id)
	{
		case CODEC_NONE:
			strbuf_append(out, in, len);
			return BS_OK;

		case CODEC_ZSTD:
			{
				ZSTD_inBuffer inb = {in, len, 0};

				while (inb.pos < inb.size)
				{
					ZSTD_outBuffer ob;
					size_t		r;

					ob.size = out_room(out, ZSTD_CStreamOutSize());
					ob.dst = out->data + out->len;
					ob.pos = 0;
					r = ZSTD_compressStream2(cs->zc, &ob, &inb, ZSTD_e_continue);
					if (ZSTD_isError(r))
					{
						cs->failed = true;
						return error_set(err, ERRCODE_INTERNAL, "zstd compression failed: %s",
										 ZSTD_getErrorName(r));
					}
					out_advance(out, ob.pos);
				}
				return BS_OK;
			}

		case CODEC_LZ4:
			{
				const char *p = in;

				if (lz4_begin(cs, out, err) != BS_OK)
				{
					cs->failed = true;
					return BS_ERR;
				}
				while (len > 0)
				{
					size_t		n = len < CODEC_LZ4_SLICE ? len : CODEC_LZ4_SLICE;
					size_t		bound = LZ4F_compressBound(n, &cs->lprefs);
					size_t		room = out_room(out, bound);
					size_t		r;

					r = LZ4F_compressUpdate(cs->lc, out->data + out->len, room, p, n, NULL);
					if (LZ4F_isError(r))
					{
						cs->failed = true;
						return error_set(err, ERRCODE_INTERNAL, "lz4 compression failed: %s",
										 LZ4F_getErrorName(r));
					}
					out_advance(out, r);
					p += n;
					len -= n;
				}
				return BS_OK;
			}
	}
	return error_set(err, ERRCODE_INTERNAL, "unknown codec %d", (int) cs->id);
}

int
codec_compress_finish(codec_stream *cs, strbuf *out, bs_error *err)
{
	if (!cs->compressing || cs->failed)
		return error_set(err, ERRCODE_INTERNAL, "codec_compress_finish called on an unusable stream");

	/* Whatever happens below, the frame cannot be continued. */
	cs->failed = true;
	switch (cs->id)
	{
		case CODEC_NONE:
			return BS_OK;

		case CODEC_ZSTD:
			{
				ZSTD_inBuffer inb = {NULL, 0, 0};
				size_t		r;

				do
				{
					ZSTD_outBuffer ob;

					ob.size = out_room(out, ZSTD_CStreamOutSize());
					ob.dst = out->data + out->len;
					ob.pos = 0;
					r = ZSTD_compressStream2(cs->zc, &ob, &inb, ZSTD_e_end);
					if (ZSTD_isError(r))
						return error_set(err, ERRCODE_INTERNAL, "zstd compression failed: %s",
										 ZSTD_getErrorName(r));
					out_advance(out, ob.pos);
				} while (r != 0);
				return BS_OK;
			}

		case CODEC_LZ4:
			{
				size_t		r;
				size_t		room;

				if (lz4_begin(cs, out, err) != BS_OK)
					return BS_ERR;
				room = out_room(out, LZ4F_compressBound(0, &cs->lprefs));
				r = LZ4F_compressEnd(cs->lc, out->data + out->len, room, NULL);
				if (LZ4F_isError(r))
					return error_set(err, ERRCODE_INTERNAL, "lz4 compression failed: %s",
									 LZ4F_getErrorName(r));
				out_advance(out, r);
				return BS_OK;
			}
	}
	return error_set(err, ERRCODE_INTERNAL, "unknown codec %d", (int) cs->id);
}

int
codec_decompressor_open(codec_id id, codec_stream **out, bs_error *err)
{
	codec_stream *cs;

	*out = NULL;
	if (!codec_is_known(id))
		return error_set(err, ERRCODE_INVALID_PARAMETER, "unknown compression codec %d", (int) id);
	cs = xcalloc(1, sizeof(*cs));
	cs->id = id;
	if (id == CODEC_ZSTD)
	{
		size_t		r;

		cs->zd = ZSTD_createDCtx();
		if (cs->zd == NULL)
		{
			codec_stream_free(cs);
			return error_set(err, ERRCODE_OUT_OF_MEMORY, "could not create a zstd decompression context");
		}
		r = ZSTD_DCtx_setParameter(cs->zd, ZSTD_d_windowLogMax, CODEC_ZSTD_WINDOWLOG_MAX);
		if (ZSTD_isError(r))
		{
			codec_stream_free(cs);
			return error_set(err, ERRCODE_INTERNAL, "could not configure zstd: %s", ZSTD_getErrorName(r));
		}
	}
	else if (id == CODEC_LZ4)
	{
		LZ4F_errorCode_t r = LZ4F_createDecompressionContext(&cs->ld, LZ4F_VERSION);

		if (LZ4F_isError(r))
		{
			codec_stream_free(cs);
			return error_set(err, ERRCODE_OUT_OF_MEMORY, "could not create an lz4 decompression context: %s",
							 LZ4F_getErrorName(r));
		}
	}
	if (id != CODEC_NONE)
		cs->outbuf = xmalloc(CODEC_SINK_CHUNK);
	*out = cs;
	return BS_OK;
}

static int
trailing_data(codec_stream *cs, bs_error *err)
{
	cs->failed = true;
	return error_set(err, ERRCODE_DATA_CORRUPTED, "%s: data after the end of the compressed frame",
					 codec_name(cs->id));
}

/*
 * Each round either consumes input or emits output (at most CODEC_SINK_CHUNK bytes); a
 * round doing neither is treated as corruption rather than retried, so no input can make
 * this loop spin.  "pending" covers output the library still holds after a full buffer.
 */
int
codec_decompress(codec_stream *cs, const void *in, size_t len,
				 codec_sink sink, void *ctx, bs_error *err)
{
	static const char empty[1];
	const char *p = len ? in : empty;
	bool		pending = false;

	if (cs->compressing || cs->failed)
		return error_set(err, ERRCODE_INTERNAL, "codec_decompress called on an unusable stream");

	if (cs->id == CODEC_NONE)
	{
		while (len > 0)
		{
			size_t		n = len < CODEC_SINK_CHUNK ? len : CODEC_SINK_CHUNK;

			if (sink(ctx, p, n, err) != BS_OK)
			{
				cs->failed = true;
				return BS_ERR;
			}
			p += n;
			len -= n;
		}
		return BS_OK;
	}

	while (len > 0 || pending)
	{
		size_t		consumed;
		size_t		produced;
		size_t		r;

		if (cs->ended)
		{
			if (len > 0)
				return trailing_data(cs, err);
			break;
		}
		if (cs->id == CODEC_ZSTD)
		{
			ZSTD_inBuffer inb = {p, len, 0};
			ZSTD_outBuffer ob = {cs->outbuf, CODEC_SINK_CHUNK, 0};

			r = ZSTD_decompressStream(cs->zd, &ob, &inb);
			if (ZSTD_isError(r))
			{
				cs->failed = true;
				return error_set(err, ERRCODE_DATA_CORRUPTED, "zstd: %s", ZSTD_getErrorName(r));
			}
			consumed = inb.pos;
			produced = ob.pos;
		}
		else
		{
			consumed = len;
			produced = CODEC_SINK_CHUNK;
			r = LZ4F_decompress(cs->ld, cs->outbuf, &produced, p, &consumed, NULL);
			if (LZ4F_isError(r))
			{
				cs->failed = true;
				return error_set(err, ERRCODE_DATA_CORRUPTED, "lz4: %s", LZ4F_getErrorName(r));
			}
		}
		if (consumed == 0 && produced == 0 && len > 0)
		{
			cs->failed = true;
			return error_set(err, ERRCODE_DATA_CORRUPTED, "%s: decompression made no progress",
							 codec_name(cs->id));
		}
		p += consumed;
		len -= consumed;
		if (r == 0)
			cs->ended = true;
		pending = !cs->ended && produced == CODEC_SINK_CHUNK;
		if (produced > 0 && sink(ctx, cs->outbuf, produced, err) != BS_OK)
		{
			cs->failed = true;
			return BS_ERR;
		}
	}
	return BS_OK;
}

int
codec_decompress_finish(codec_stream *cs, bs_error *err)
{
	if (cs->compressing || cs->failed)
		return error_set(err, ERRCODE_INTERNAL, "codec_decompress_finish called on an unusable stream");
	if (cs->id != CODEC_NONE && !cs->ended)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "%s: the compressed frame is incomplete",
						 codec_name(cs->id));
	return BS_OK;
}

void
codec_stream_free(codec_stream *cs)
{
	if (cs == NULL)
		return;
	ZSTD_freeCCtx(cs->zc);
	ZSTD_freeDCtx(cs->zd);
	if (cs->lc)
		LZ4F_freeCompressionContext(cs->lc);
	if (cs->ld)
		LZ4F_freeDecompressionContext(cs->ld);
	free(cs->outbuf);
	free(cs);
}
