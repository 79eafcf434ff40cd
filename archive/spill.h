/* spill.h — data kept in a local file instead of memory (the archiver's open segments, recovery's temporary files). */
#ifndef BACKSTOP_SPILL_H
#define BACKSTOP_SPILL_H

#include "error.h"

#include <stddef.h>
#include <stdint.h>

/*
 * A spill file holds a segment exactly as it will be spooled: magic, then records.  The
 * writer buffers records itself and appends them in large pieces; at a commit it patches
 * the transaction's end LSN into the file; after a disconnect it truncates the file back to
 * the transaction's start.  Nothing here is durable: whoever seals the segment makes the
 * file durable under its final name (storage_local_adopt); a spill file found at start-up
 * belongs to a segment that was never sealed and is deleted.
 */
typedef struct spill_file spill_file;

/* Chunk of the read-modify-write passes (spill_patch_end_lsn). */
#define SPILL_PATCH_CHUNK ((size_t) 1024 * 1024)

/* Create dir/name, empty (an old file of that name is truncated); dir is created if needed. */
int spill_create(const char *dir, const char *name, spill_file **out, bs_error *err);
/*
 * Create a temporary file in dir (NULL: $TMPDIR, else /tmp) and unlink it at once: it is
 * gone when it is closed or the process ends, also on an error or a crash.  prefix names
 * it in messages ("<dir>/<prefix>XXXXXX").
 */
int spill_create_temp(const char *dir, const char *prefix, spill_file **out, bs_error *err);
/* The directory spill_create_temp uses for dir (NULL: $TMPDIR, else /tmp). */
const char *spill_temp_dir(const char *dir);
/* Read len bytes at offset (all of them: a short file is ERRCODE_DATA_CORRUPTED).
 * Safe to call from several threads at once (pread). */
int spill_read(const spill_file *f, uint64_t offset, void *data, size_t len, bs_error *err);
/* Append len bytes at the end of the file. */
int spill_append(spill_file *f, const void *data, size_t len, bs_error *err);
/* Cut the file back to size bytes (size <= spill_size). */
int spill_truncate(spill_file *f, uint64_t size, bs_error *err);
/* Write end_lsn into every record of [from, spill_size): from is a record boundary. */
int spill_patch_end_lsn(spill_file *f, uint64_t from, uint64_t end_lsn, bs_error *err);

uint64_t spill_size(const spill_file *f);
const char *spill_path(const spill_file *f);
int spill_fd(const spill_file *f);

/* Close, keeping the file (it was moved under another name); NULL is ignored. */
void spill_close(spill_file *f);
/* Close and delete the file; NULL is ignored. */
void spill_discard(spill_file *f);

/*
 * An array of fixed-size entries in a temporary file (spill_create_temp): an index that
 * outgrew its share of memory.  Entries read as zero bytes until written.  Reads go through
 * a window of SPILL_ARRAY_WINDOW bytes of neighbouring entries (a probe along neighbours, or
 * a pass in order, costs one read per window); writes go straight to the file.  Used from
 * one thread, except spill_array_read_range (no window; safe alongside other readers).
 */
typedef struct spill_array spill_array;

#define SPILL_ARRAY_WINDOW 2048

/* n entries of elsize bytes (1 to SPILL_ARRAY_WINDOW, a divisor of it), all zero. */
int spill_array_create(const char *dir, const char *prefix, size_t elsize, uint64_t n, spill_array **out,
					   bs_error *err);
int spill_array_get(spill_array *a, uint64_t i, void *out, bs_error *err);
int spill_array_put(spill_array *a, uint64_t i, const void *in, bs_error *err);
/* Entries [first, first + n) into out, without the window. */
int spill_array_read_range(const spill_array *a, uint64_t first, uint64_t n, void *out, bs_error *err);
uint64_t spill_array_length(const spill_array *a);
/* NULL is ignored. */
void spill_array_free(spill_array *a);

/*
 * The patch pass on a descriptor: end_lsn into every record of [from, to), read and
 * written back chunk bytes at a time (chunk >= SEGMENT_PATCH_SPAN), so a record may
 * straddle chunks and a record longer than a chunk costs one read and one small write.
 * A record overrunning `to`, or cut before its end LSN, is ERRCODE_DATA_CORRUPTED.
 */
int spill_patch_fd(int fd, const char *name, uint64_t from, uint64_t to, uint64_t end_lsn, size_t chunk,
				   bs_error *err);

#endif
