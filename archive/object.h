/* object.h — the object pipeline: compression and SHA-256 while streaming, verified reads. */
#ifndef BACKSTOP_OBJECT_H
#define BACKSTOP_OBJECT_H

#include <stdint.h>

#include "codec.h"
#include "storage.h"

typedef struct object_info
{
	codec_id codec;
	uint64_t raw_size;			/* bytes before compression */
	uint64_t stored_size;		/* bytes in storage, framing included */
	char raw_sha256[65];		/* hex SHA-256 of the raw bytes */
	char stored_sha256[65];		/* hex SHA-256 of the stored bytes (what manifests record) */
} object_info;

/* Framing sizes (doc/FORMAT.md, "Objects"). */
#define OBJECT_HEADER_SIZE 16
#define OBJECT_TRAILER_SIZE 48

/*
 * The framing as pure streams, without storage; object_writer and object_get are built on
 * these.  The encoder appends stored bytes (header, compressed payload, trailer) to out;
 * the caller may drain out between calls.  finish fills info but does not free.
 */
typedef struct object_encoder object_encoder;

int object_encoder_open(codec_id codec, int level, strbuf *out, object_encoder **enc,
						bs_error *err);
int object_encoder_write(object_encoder *enc, const void *data, size_t len, strbuf *out,
						 bs_error *err);
int object_encoder_finish(object_encoder *enc, strbuf *out, object_info *info, bs_error *err);
void object_encoder_free(object_encoder *enc);

/*
 * The decoder takes stored bytes in pieces of any size and hands raw bytes to sink (may be
 * NULL) in bounded pieces; it holds back the last OBJECT_TRAILER_SIZE bytes, since they may
 * be the trailer.  key only names the object in messages.  Verdicts and messages are those
 * of object_get; finish fills info but does not free.
 */
typedef struct object_decoder object_decoder;

int object_decoder_open(const char *key, const char *expected_stored_sha256,
						storage_sink sink, void *ctx, object_decoder **dec, bs_error *err);
int object_decoder_write(object_decoder *dec, const void *data, size_t len, bs_error *err);
int object_decoder_finish(object_decoder *dec, object_info *info, bs_error *err);
void object_decoder_free(object_decoder *dec);

typedef struct object_writer object_writer;

/* Write an object: framing header, compressed payload, trailer (raw size, raw SHA-256).
 * Data is compressed as it arrives and handed to storage in pieces of about 1 MiB, so
 * memory stays bounded.  Nothing is visible until commit; commit fills info and frees the
 * writer, whether it succeeds or not.  After a failed write, call abort. */
int object_writer_open(storage *st, const char *key, codec_id codec, int level,
					   object_writer **out, bs_error *err);
int object_writer_write(object_writer *w, const void *data, size_t len, bs_error *err);
int object_writer_commit(object_writer *w, object_info *info, bs_error *err);
void object_writer_abort(object_writer *w);
int object_put(storage *st, const char *key, codec_id codec, int level,
			   const void *data, size_t len, object_info *info, bs_error *err);

/* Read an object, streaming the decompressed raw bytes to sink.  Fails with
 * ERRCODE_DATA_CORRUPTED (message naming the key and the fault) on a bad header, a
 * truncated object, a trailer mismatch, or when expected_stored_sha256 (may be NULL) differs.
 * The sink sees data before the final verdict: act on it only after BS_OK. */
int object_get(storage *st, const char *key, const char *expected_stored_sha256,
			   storage_sink sink, void *ctx, object_info *info, bs_error *err);
/* As object_get, appending to out; on failure out is restored to its previous length. */
int object_get_all(storage *st, const char *key, const char *expected_stored_sha256,
				   strbuf *out, object_info *info, bs_error *err);
/* Read and check without keeping the data. */
int object_verify(storage *st, const char *key, const char *expected_stored_sha256,
				  object_info *info, bs_error *err);

#endif
