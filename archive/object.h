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

typedef struct object_writer object_writer;

/* Write an object: framing header, compressed payload, trailer (raw size, raw SHA-256).
 * Nothing is visible until commit; commit fills info and frees the writer. */
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
int object_get_all(storage *st, const char *key, const char *expected_stored_sha256,
				   strbuf *out, object_info *info, bs_error *err);
/* Read and check without keeping the data. */
int object_verify(storage *st, const char *key, const char *expected_stored_sha256,
				  object_info *info, bs_error *err);

#endif
