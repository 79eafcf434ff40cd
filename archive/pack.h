/* pack.h — packs (.bsp, doc/design/format2.md 3.2): many tables' records in independent frames, with a strictly read index. */
#ifndef BACKSTOP_PACK_H
#define BACKSTOP_PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "error.h"
#include "storage_crypt.h"
#include "strbuf.h"

/*
 * Stored form:
 *   header   "BSPAK003" | level (1) | codec (1) | flags (1: bit 0 = units sealed) | reserved (5)
 *   frames   the raw space (every table's run of records in the segment record format, without
 *            the BSSEG001 magic, by relid) cut every PACK_FRAME_RAW bytes, each frame
 *            compressed on its own (and sealed on its own: crypt_seal_unit)
 *   footer   one JSON object (the index), compressed as one frame (and sealed)
 *   trailer  footer offset (8, big-endian) | footer stored size (4) | "BSPEND03"
 * The footer repeats level, codec and sealing, so a sealed pack's plaintext header is checked
 * against authenticated values.
 */
#define PACK_MAGIC "BSPAK003"
#define PACK_END_MAGIC "BSPEND03"
#define PACK_HEADER_SIZE 16
#define PACK_TRAILER_SIZE 20
#define PACK_FORMAT 3
#define PACK_LEVEL_MAX 4
#define PACK_FLAG_SEALED 0x01
/* Raw bytes per frame the writer cuts at; a reader accepts frames up to PACK_FRAME_RAW_MAX. */
#define PACK_FRAME_RAW ((size_t) 256 * 1024)
#define PACK_FRAME_RAW_MAX ((uint64_t) 4 * 1024 * 1024)
/* Largest footer accepted, stored and raw (about a million runs). */
#define PACK_FOOTER_MAX ((uint64_t) 64 * 1024 * 1024)

/* Keys of an encrypted archive: seal with current (NULL: read only), open with any of keys. */
typedef struct pack_keys
{
	const uint8_t *current;
	const uint8_t (*keys)[CRYPT_KEY_SIZE];
	int nkeys;
} pack_keys;

typedef struct pack_frame
{
	uint64_t offset;			/* stored offset in the pack */
	uint64_t size;				/* stored size */
	uint64_t raw_offset;		/* derived: where its raw bytes start in the raw space */
	uint64_t raw_size;
	char sha256[65];			/* of the stored bytes */
} pack_frame;

typedef struct pack_run
{
	uint32_t relid;
	uint64_t raw_offset;		/* in the raw space */
	uint64_t raw_len;
	uint64_t records;
	uint64_t first_lsn;			/* commit LSN of the first record */
	uint64_t last_end_lsn;		/* end LSN of the last record */
	int64_t first_time;			/* commit times, microseconds since 2000-01-01 UTC */
	int64_t last_time;
} pack_run;

/* A table event (3.2 events[]): kind, lsn and relid checked; the rest kept as compact JSON. */
typedef struct pack_event
{
	char *kind;
	uint32_t relid;				/* 0: the whole archive */
	uint64_t lsn;
	char *json;					/* the whole object */
} pack_event;

/* What the footer says besides frames, runs and events. */
typedef struct pack_meta
{
	uint64_t seq_first;			/* 1 <= seq_first <= seq_last */
	uint64_t seq_last;
	uint64_t seal_lsn;
	int64_t time;
	const char *lease_token;	/* may be NULL */
	const char *prev;			/* hex SHA-256 of the predecessor's stored bytes; NULL for none */
} pack_meta;

/* A pack's index, as read and checked by pack_open. */
typedef struct pack_index
{
	char *key;
	int level;
	codec_id codec;
	bool sealed;
	uint64_t object_size;
	uint64_t footer_offset;
	uint64_t footer_size;
	uint64_t seq_first;
	uint64_t seq_last;
	uint64_t seal_lsn;
	int64_t time;
	char *lease_token;			/* NULL when absent */
	char prev[65];				/* "" when absent */
	uint64_t raw_size;
	pack_frame *frames;
	int nframes;
	pack_run *runs;				/* sorted by relid, tiling the raw space */
	int nruns;
	pack_event *events;
	int nevents;
} pack_index;

/*
 * The writer: stored bytes are appended to out (the caller may drain it between calls; the
 * writer counts what it appended).  Runs come in increasing relid; a run's records are
 * checked and summarized (segment_scan) as they arrive, so the footer's counts, LSNs and
 * times are the records' own.  key names the pack in messages and, sealed, in each unit's
 * associated data.  keys (may be NULL) with a current key seals every frame and the footer.
 */
typedef struct pack_writer pack_writer;

int pack_writer_open(const char *key, int level, codec_id codec, int codec_level, const pack_keys *keys,
					 strbuf *out, pack_writer **w, bs_error *err);
int pack_writer_begin_run(pack_writer *w, uint32_t relid, bs_error *err);
int pack_writer_write(pack_writer *w, const void *data, size_t len, strbuf *out, bs_error *err);
/* Ends the run: it must hold at least one whole record.  *run (may be NULL) gets its entry. */
int pack_writer_end_run(pack_writer *w, pack_run *run, bs_error *err);
/* begin_run, write, end_run in one call. */
int pack_writer_add_run(pack_writer *w, uint32_t relid, const void *data, size_t len, strbuf *out,
						bs_error *err);
/* One event: a JSON object with "kind" (a known kind), "lsn" ("X/Y") and "relid". */
int pack_writer_add_event(pack_writer *w, const char *json, size_t len, bs_error *err);
/* Last frame, footer, trailer.  *stored_size (may be NULL) is the pack's size. */
int pack_writer_finish(pack_writer *w, const pack_meta *meta, strbuf *out, uint64_t *stored_size,
					   bs_error *err);
void pack_writer_free(pack_writer *w);

/*
 * Ranged reads of the stored pack: put exactly [offset, offset + length) into out (replacing
 * its contents).  A reader never asks for bytes outside the object.
 */
typedef int (*pack_read_fn) (void *ctx, uint64_t offset, uint64_t length, strbuf *out, bs_error *err);

/*
 * Read and check the trailer, header and footer of a pack of object_size bytes (from the
 * listing), strictly: everything is untrusted.  Damage is ERRCODE_DATA_CORRUPTED with a
 * message naming the pack and the fault; a sealed pack without keys, or a plaintext pack with
 * keys, is refused (ERRCODE_ENCRYPTION_KEY, ERRCODE_DATA_CORRUPTED).  keys may be NULL.
 */
int pack_open(const char *key, uint64_t object_size, pack_read_fn read, void *ctx, const pack_keys *keys,
			  pack_index **out, bs_error *err);
/* The same over the stored bytes in memory. */
int pack_open_buffer(const char *key, const void *data, size_t len, const pack_keys *keys, pack_index **out,
					 bs_error *err);
void pack_index_free(pack_index *idx);

/* The run of relid, or NULL when the pack holds none. */
const pack_run *pack_find_run(const pack_index *idx, uint32_t relid);

/*
 * A table's run: reads only the frames the run touches (contiguous ranged reads of at most
 * 8 MiB stored), checks each frame's SHA-256, opens it, decompresses it (its raw size must
 * be the footer's), and hands the run's raw bytes to sink in pieces; finally checks that they
 * are whole records matching the run's entry.  The sink sees data before the verdict.
 * Without a run for relid: ERRCODE_NOT_FOUND.
 */
int pack_read_run(const pack_index *idx, uint32_t relid, pack_read_fn read, void *ctx, const pack_keys *keys,
				  codec_sink sink, void *sink_ctx, bs_error *err);
/* As pack_read_run into out (replaced); on failure out is empty. */
int pack_read_run_all(const pack_index *idx, uint32_t relid, pack_read_fn read, void *ctx,
					  const pack_keys *keys, strbuf *out, bs_error *err);
/* The pack_read_fn over a buffer: ctx is a pack_buffer. */
typedef struct pack_buffer
{
	const uint8_t *data;
	size_t len;
} pack_buffer;
int pack_buffer_read(void *ctx, uint64_t offset, uint64_t length, strbuf *out, bs_error *err);
/* The pack_read_fn over a stored object (storage_get of the range): ctx is a pack_storage.
 * A store that answers with more or fewer bytes than asked is refused (ERRCODE_STORAGE). */
typedef struct pack_storage
{
	storage *st;
	const char *key;
} pack_storage;
int pack_storage_read(void *ctx, uint64_t offset, uint64_t length, strbuf *out, bs_error *err);

#endif
