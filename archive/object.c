/* object.c — the object pipeline: framing, compression and SHA-256 while streaming, verified reads. */
#include "object.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define OBJECT_MAGIC "BSOBJ001"
#define OBJECT_END_MAGIC "BSEND001"
#define OBJECT_MAGIC_LEN 8
#define SHA256_LEN 32

/* Stored bytes are handed to storage in pieces of at least this size (the last excepted). */
#define OBJECT_WRITE_CHUNK ((size_t) 1024 * 1024)

/* Raw input is compressed in slices of this size so the pending output stays bounded. */
#define OBJECT_INPUT_SLICE ((size_t) 1024 * 1024)

struct object_encoder
{
	codec_id	codec;
	codec_stream *cs;
	EVP_MD_CTX *raw_md;
	EVP_MD_CTX *stored_md;
	uint64_t	raw_size;
	uint64_t	stored_size;
	bool		failed;
};

struct object_decoder
{
	char	   *key;
	bool		have_expected;
	char		expected[65];	/* expected stored SHA-256, lowercase hex */
	storage_sink sink;
	void	   *ctx;
	EVP_MD_CTX *raw_md;
	EVP_MD_CTX *stored_md;
	codec_stream *cs;
	codec_id	codec;
	/* Fixed-size by the format: the header is exactly 16 bytes, the trailer 48. */
	unsigned char header[OBJECT_HEADER_SIZE];
	size_t		header_len;
	unsigned char hold[OBJECT_TRAILER_SIZE];
	size_t		hold_len;
	uint64_t	raw_size;
	uint64_t	stored_size;
	bool		sink_failed;	/* the caller's sink returned an error */
	bool		failed;
};

struct object_writer
{
	storage_writer *sw;
	object_encoder *enc;
	strbuf		buf;
};

static uint64_t
read_be64(const unsigned char *p)
{
	uint64_t	v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static EVP_MD_CTX *
sha256_new(bs_error *err)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
	{
		EVP_MD_CTX_free(md);
		error_set(err, ERRCODE_INTERNAL, "could not initialize SHA-256");
		return NULL;
	}
	return md;
}

static int
sha256_update(EVP_MD_CTX *md, const void *data, size_t len, bs_error *err)
{
	if (len > 0 && EVP_DigestUpdate(md, data, len) != 1)
		return error_set(err, ERRCODE_INTERNAL, "SHA-256 update failed");
	return BS_OK;
}

static int
sha256_final(EVP_MD_CTX *md, unsigned char out[SHA256_LEN], bs_error *err)
{
	unsigned int n = 0;

	if (EVP_DigestFinal_ex(md, out, &n) != 1 || n != SHA256_LEN)
		return error_set(err, ERRCODE_INTERNAL, "SHA-256 finalization failed");
	return BS_OK;
}

/* ---------------------------------------------------------------- encoder */

/* Account for the stored bytes appended to out since start. */
static int
encoder_stored(object_encoder *enc, strbuf *out, size_t start, bs_error *err)
{
	size_t		n = out->len - start;

	enc->stored_size += n;
	return sha256_update(enc->stored_md, out->data + start, n, err);
}

int
object_encoder_open(codec_id codec, int level, strbuf *out, object_encoder **encp, bs_error *err)
{
	object_encoder *enc;
	unsigned char header[OBJECT_HEADER_SIZE] = {0};
	size_t		start = out->len;

	*encp = NULL;
	enc = xcalloc(1, sizeof(*enc));
	enc->codec = codec;
	if (codec_compressor_open(codec, level, &enc->cs, err) != BS_OK ||
		(enc->raw_md = sha256_new(err)) == NULL ||
		(enc->stored_md = sha256_new(err)) == NULL)
	{
		object_encoder_free(enc);
		return BS_ERR;
	}
	memcpy(header, OBJECT_MAGIC, OBJECT_MAGIC_LEN);
	header[OBJECT_MAGIC_LEN] = (unsigned char) codec;
	strbuf_append(out, header, sizeof(header));
	if (encoder_stored(enc, out, start, err) != BS_OK)
	{
		object_encoder_free(enc);
		return BS_ERR;
	}
	*encp = enc;
	return BS_OK;
}

int
object_encoder_write(object_encoder *enc, const void *data, size_t len, strbuf *out, bs_error *err)
{
	size_t		start = out->len;

	if (enc->failed)
		return error_set(err, ERRCODE_INTERNAL, "object encoder used after a failure");
	enc->raw_size += len;
	if (sha256_update(enc->raw_md, data, len, err) != BS_OK ||
		codec_compress(enc->cs, data, len, out, err) != BS_OK ||
		encoder_stored(enc, out, start, err) != BS_OK)
	{
		enc->failed = true;
		return BS_ERR;
	}
	return BS_OK;
}

int
object_encoder_finish(object_encoder *enc, strbuf *out, object_info *info, bs_error *err)
{
	unsigned char raw_sha[SHA256_LEN];
	unsigned char stored_sha[SHA256_LEN];
	size_t		start = out->len;

	if (enc->failed)
		return error_set(err, ERRCODE_INTERNAL, "object encoder used after a failure");
	enc->failed = true;			/* finished: no further use */
	if (codec_compress_finish(enc->cs, out, err) != BS_OK ||
		sha256_final(enc->raw_md, raw_sha, err) != BS_OK)
		return BS_ERR;
	strbuf_append_be64(out, enc->raw_size);
	strbuf_append(out, raw_sha, sizeof(raw_sha));
	strbuf_append(out, OBJECT_END_MAGIC, OBJECT_MAGIC_LEN);
	if (encoder_stored(enc, out, start, err) != BS_OK ||
		sha256_final(enc->stored_md, stored_sha, err) != BS_OK)
		return BS_ERR;
	if (info)
	{
		memset(info, 0, sizeof(*info));
		info->codec = enc->codec;
		info->raw_size = enc->raw_size;
		info->stored_size = enc->stored_size;
		hex_encode(raw_sha, sizeof(raw_sha), info->raw_sha256);
		hex_encode(stored_sha, sizeof(stored_sha), info->stored_sha256);
	}
	return BS_OK;
}

void
object_encoder_free(object_encoder *enc)
{
	if (enc == NULL)
		return;
	codec_stream_free(enc->cs);
	EVP_MD_CTX_free(enc->raw_md);
	EVP_MD_CTX_free(enc->stored_md);
	free(enc);
}

/* ---------------------------------------------------------------- decoder */

static const char *
decoder_key(const object_decoder *dec)
{
	return dec->key ? dec->key : "(unnamed)";
}

static int
corrupt(object_decoder *dec, bs_error *err, const char *what)
{
	dec->failed = true;
	return error_set(err, ERRCODE_DATA_CORRUPTED, "object \"%s\" %s", decoder_key(dec), what);
}

int
object_decoder_open(const char *key, const char *expected_stored_sha256,
					storage_sink sink, void *ctx, object_decoder **decp, bs_error *err)
{
	object_decoder *dec;

	*decp = NULL;
	if (expected_stored_sha256 != NULL)
	{
		size_t		n = strlen(expected_stored_sha256);

		if (n != 2 * SHA256_LEN ||
			strspn(expected_stored_sha256, "0123456789abcdefABCDEF") != n)
			return error_set(err, ERRCODE_INVALID_PARAMETER,
							 "expected SHA-256 of object \"%s\" is not 64 hexadecimal digits",
							 key ? key : "(unnamed)");
	}
	dec = xcalloc(1, sizeof(*dec));
	dec->key = key ? xstrdup(key) : NULL;
	dec->sink = sink;
	dec->ctx = ctx;
	if (expected_stored_sha256 != NULL)
	{
		dec->have_expected = true;
		for (size_t i = 0; i < 2 * SHA256_LEN; i++)
		{
			char		c = expected_stored_sha256[i];

			dec->expected[i] = (c >= 'A' && c <= 'F') ? (char) (c - 'A' + 'a') : c;
		}
		dec->expected[2 * SHA256_LEN] = '\0';
	}
	if ((dec->raw_md = sha256_new(err)) == NULL || (dec->stored_md = sha256_new(err)) == NULL)
	{
		object_decoder_free(dec);
		return BS_ERR;
	}
	*decp = dec;
	return BS_OK;
}

/* Raw bytes out of the codec: count, hash, pass on. */
static int
decoder_raw_sink(void *ctx, const void *data, size_t len, bs_error *err)
{
	object_decoder *dec = ctx;

	dec->raw_size += len;
	if (sha256_update(dec->raw_md, data, len, err) != BS_OK)
		return BS_ERR;
	if (dec->sink != NULL && dec->sink(dec->ctx, data, len, err) != BS_OK)
	{
		dec->sink_failed = true;
		return BS_ERR;
	}
	return BS_OK;
}

static int
decoder_payload(object_decoder *dec, const void *data, size_t len, bs_error *err)
{
	if (len == 0)
		return BS_OK;
	if (codec_decompress(dec->cs, data, len, decoder_raw_sink, dec, err) == BS_OK)
		return BS_OK;
	dec->failed = true;
	/* The caller's own failure is reported as it is, not as corruption. */
	if (!dec->sink_failed && strcmp(err->code, ERRCODE_DATA_CORRUPTED) == 0)
		error_prefix(err, "object \"%s\" is corrupt", decoder_key(dec));
	return BS_ERR;
}

static int
decoder_check_header(object_decoder *dec, bs_error *err)
{
	const unsigned char *h = dec->header;

	if (memcmp(h, OBJECT_MAGIC, OBJECT_MAGIC_LEN) != 0)
		return corrupt(dec, err, "is corrupt: bad header magic (not a Backstop object)");
	if (!codec_is_known(h[OBJECT_MAGIC_LEN]))
	{
		dec->failed = true;
		return error_set(err, ERRCODE_DATA_CORRUPTED, "object \"%s\" has an unknown codec %d",
						 decoder_key(dec), h[OBJECT_MAGIC_LEN]);
	}
	for (size_t i = OBJECT_MAGIC_LEN + 1; i < OBJECT_HEADER_SIZE; i++)
		if (h[i] != 0)
			return corrupt(dec, err, "is corrupt: reserved header bytes are not zero");
	dec->codec = (codec_id) h[OBJECT_MAGIC_LEN];
	if (codec_decompressor_open(dec->codec, &dec->cs, err) != BS_OK)
	{
		dec->failed = true;
		return BS_ERR;
	}
	return BS_OK;
}

int
object_decoder_write(object_decoder *dec, const void *data, size_t len, bs_error *err)
{
	const unsigned char *p = data;

	if (dec->failed)
		return error_set(err, ERRCODE_INTERNAL, "object decoder used after a failure");
	dec->stored_size += len;
	if (sha256_update(dec->stored_md, p, len, err) != BS_OK)
	{
		dec->failed = true;
		return BS_ERR;
	}

	if (dec->header_len < OBJECT_HEADER_SIZE)
	{
		if (!buf_fill(dec->header, OBJECT_HEADER_SIZE, &dec->header_len, &p, &len))
			return BS_OK;
		if (decoder_check_header(dec, err) != BS_OK)
			return BS_ERR;
	}

	/*
	 * Keep the last OBJECT_TRAILER_SIZE bytes seen back from the codec: until the stream
	 * ends we cannot tell payload from trailer.
	 */
	if (len >= OBJECT_TRAILER_SIZE)
	{
		if (decoder_payload(dec, dec->hold, dec->hold_len, err) != BS_OK ||
			decoder_payload(dec, p, len - OBJECT_TRAILER_SIZE, err) != BS_OK)
			return BS_ERR;
		memcpy(dec->hold, p + len - OBJECT_TRAILER_SIZE, OBJECT_TRAILER_SIZE);
		dec->hold_len = OBJECT_TRAILER_SIZE;
	}
	else
	{
		size_t		total = dec->hold_len + len;

		if (total > OBJECT_TRAILER_SIZE)
		{
			size_t		release = total - OBJECT_TRAILER_SIZE;	/* < hold_len as len < 48 */

			if (decoder_payload(dec, dec->hold, release, err) != BS_OK)
				return BS_ERR;
			memmove(dec->hold, dec->hold + release, dec->hold_len - release);
			dec->hold_len -= release;
		}
		memcpy(dec->hold + dec->hold_len, p, len);
		dec->hold_len += len;
	}
	return BS_OK;
}

int
object_decoder_finish(object_decoder *dec, object_info *info, bs_error *err)
{
	const unsigned char *t = dec->hold;
	unsigned char raw_sha[SHA256_LEN];
	unsigned char stored_sha[SHA256_LEN];
	char		raw_hex[2 * SHA256_LEN + 1];
	char		stored_hex[2 * SHA256_LEN + 1];
	char		trailer_hex[2 * SHA256_LEN + 1];
	uint64_t	trailer_size;

	if (dec->failed)
		return error_set(err, ERRCODE_INTERNAL, "object decoder used after a failure");
	if (dec->header_len < OBJECT_HEADER_SIZE)
	{
		dec->failed = true;
		return error_set(err, ERRCODE_DATA_CORRUPTED,
						 "object \"%s\" is truncated: %llu bytes, shorter than the object header",
						 decoder_key(dec), (unsigned long long) dec->stored_size);
	}
	if (dec->hold_len < OBJECT_TRAILER_SIZE ||
		memcmp(t + 8 + SHA256_LEN, OBJECT_END_MAGIC, OBJECT_MAGIC_LEN) != 0)
		return corrupt(dec, err, "is truncated: missing trailer");
	if (codec_decompress_finish(dec->cs, err) != BS_OK)
	{
		dec->failed = true;
		return error_prefix(err, "object \"%s\" is corrupt", decoder_key(dec));
	}
	dec->failed = true;			/* finished: no further use */
	if (sha256_final(dec->raw_md, raw_sha, err) != BS_OK ||
		sha256_final(dec->stored_md, stored_sha, err) != BS_OK)
		return BS_ERR;

	trailer_size = read_be64(t);
	if (trailer_size != dec->raw_size)
		return error_set(err, ERRCODE_DATA_CORRUPTED,
						 "object \"%s\" is corrupt: raw size mismatch (expected %llu, decompressed %llu)",
						 decoder_key(dec), (unsigned long long) trailer_size,
						 (unsigned long long) dec->raw_size);
	hex_encode(raw_sha, sizeof(raw_sha), raw_hex);
	hex_encode(t + 8, SHA256_LEN, trailer_hex);
	if (strcmp(raw_hex, trailer_hex) != 0)
		return error_set(err, ERRCODE_DATA_CORRUPTED,
						 "object \"%s\" is corrupt: raw SHA-256 mismatch (expected %s, computed %s)",
						 decoder_key(dec), trailer_hex, raw_hex);
	hex_encode(stored_sha, sizeof(stored_sha), stored_hex);
	if (dec->have_expected && strcmp(dec->expected, stored_hex) != 0)
		return error_set(err, ERRCODE_DATA_CORRUPTED,
						 "object \"%s\" is corrupt: stored SHA-256 mismatch (expected %s, computed %s)",
						 decoder_key(dec), dec->expected, stored_hex);
	if (info)
	{
		memset(info, 0, sizeof(*info));
		info->codec = dec->codec;
		info->raw_size = dec->raw_size;
		info->stored_size = dec->stored_size;
		memcpy(info->raw_sha256, raw_hex, sizeof(raw_hex));
		memcpy(info->stored_sha256, stored_hex, sizeof(stored_hex));
	}
	return BS_OK;
}

void
object_decoder_free(object_decoder *dec)
{
	if (dec == NULL)
		return;
	codec_stream_free(dec->cs);
	EVP_MD_CTX_free(dec->raw_md);
	EVP_MD_CTX_free(dec->stored_md);
	free(dec->key);
	free(dec);
}

/* ---------------------------------------------------------------- storage */

int
object_writer_open(storage *st, const char *key, codec_id codec, int level,
				   object_writer **out, bs_error *err)
{
	object_writer *w = xcalloc(1, sizeof(*w));

	*out = NULL;
	if (object_encoder_open(codec, level, &w->buf, &w->enc, err) != BS_OK)
	{
		strbuf_free(&w->buf);
		free(w);
		return BS_ERR;
	}
	if (storage_writer_open(st, key, &w->sw, err) != BS_OK)
	{
		object_encoder_free(w->enc);
		strbuf_free(&w->buf);
		free(w);
		return BS_ERR;
	}
	*out = w;
	return BS_OK;
}

static int
writer_flush(object_writer *w, size_t threshold, bs_error *err)
{
	if (w->buf.len == 0 || w->buf.len < threshold)
		return BS_OK;
	if (storage_writer_write(w->sw, w->buf.data, w->buf.len, err) != BS_OK)
		return BS_ERR;
	strbuf_reset(&w->buf);
	return BS_OK;
}

int
object_writer_write(object_writer *w, const void *data, size_t len, bs_error *err)
{
	const char *p = data;

	while (len > 0)
	{
		size_t		n = len < OBJECT_INPUT_SLICE ? len : OBJECT_INPUT_SLICE;

		if (object_encoder_write(w->enc, p, n, &w->buf, err) != BS_OK ||
			writer_flush(w, OBJECT_WRITE_CHUNK, err) != BS_OK)
			return BS_ERR;
		p += n;
		len -= n;
	}
	return BS_OK;
}

int
object_writer_commit(object_writer *w, object_info *info, bs_error *err)
{
	object_info local;
	int			rc;

	if (object_encoder_finish(w->enc, &w->buf, &local, err) != BS_OK ||
		writer_flush(w, 0, err) != BS_OK)
	{
		object_writer_abort(w);
		return BS_ERR;
	}
	/* storage_writer_commit frees its writer whatever the outcome. */
	rc = storage_writer_commit(w->sw, err);
	w->sw = NULL;
	object_encoder_free(w->enc);
	strbuf_free(&w->buf);
	free(w);
	if (rc == BS_OK && info)
		*info = local;
	return rc;
}

void
object_writer_abort(object_writer *w)
{
	if (w == NULL)
		return;
	if (w->sw)
		storage_writer_abort(w->sw);
	object_encoder_free(w->enc);
	strbuf_free(&w->buf);
	free(w);
}

int
object_put(storage *st, const char *key, codec_id codec, int level,
		   const void *data, size_t len, object_info *info, bs_error *err)
{
	object_writer *w;

	if (object_writer_open(st, key, codec, level, &w, err) != BS_OK)
		return BS_ERR;
	if (object_writer_write(w, data, len, err) != BS_OK)
	{
		object_writer_abort(w);
		return BS_ERR;
	}
	return object_writer_commit(w, info, err);
}

static int
decoder_storage_sink(void *ctx, const void *data, size_t len, bs_error *err)
{
	return object_decoder_write(ctx, data, len, err);
}

int
object_get(storage *st, const char *key, const char *expected_stored_sha256,
		   storage_sink sink, void *ctx, object_info *info, bs_error *err)
{
	object_decoder *dec;
	int			rc;

	if (object_decoder_open(key, expected_stored_sha256, sink, ctx, &dec, err) != BS_OK)
		return BS_ERR;
	rc = storage_get(st, key, 0, 0, decoder_storage_sink, dec, err);
	if (rc == BS_OK)
		rc = object_decoder_finish(dec, info, err);
	object_decoder_free(dec);
	return rc;
}

static int
strbuf_sink(void *ctx, const void *data, size_t len, bs_error *err)
{
	(void) err;
	strbuf_append(ctx, data, len);
	return BS_OK;
}

int
object_get_all(storage *st, const char *key, const char *expected_stored_sha256,
			   strbuf *out, object_info *info, bs_error *err)
{
	size_t		start = out->len;

	if (object_get(st, key, expected_stored_sha256, strbuf_sink, out, info, err) != BS_OK)
	{
		if (out->data)
		{
			out->len = start;
			out->data[start] = '\0';
		}
		return BS_ERR;
	}
	return BS_OK;
}

int
object_verify(storage *st, const char *key, const char *expected_stored_sha256,
			  object_info *info, bs_error *err)
{
	return object_get(st, key, expected_stored_sha256, NULL, NULL, info, err);
}
