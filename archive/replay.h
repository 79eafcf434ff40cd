/* replay.h — table state rebuilt from a base copy and change records (in memory, rows spilled to a file past a limit). */
#ifndef BACKSTOP_REPLAY_H
#define BACKSTOP_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "manifest.h"
#include "segment.h"
#include "strbuf.h"

/*
 * A replay state holds the rows of one table in a hash table keyed by the replica
 * identity: the key columns for identity 'd'/'i' with a key, the whole row otherwise
 * (FULL, NOTHING, or no key).  Rows are kept as compact encoded byte strings and remember
 * the layout they were written in; they are converted by column name (through the chain
 * of layouts) only when compared with a newer layout or written out.
 *
 * Every inconsistency between the archive and the state (a row to update or delete that
 * is not there, an unchanged TOASTed value with no prior image, a tuple whose column count
 * differs from its layout, a duplicate key left at a transaction boundary) is an error
 * with ERRCODE_DATA_CORRUPTED naming the record's LSN and xid: recovery must never
 * silently produce a wrong table.
 */
typedef struct replay_state replay_state;

/* One column value: data is not NUL-terminated; data/len are meaningless when isnull. */
typedef struct replay_value
{
	const char *data;
	uint32_t len;
	bool isnull;
} replay_value;

/* Content checksum: count and the exact sum over rows of hashtextextended(record_out(row), 0)
 * (see pghash.h); PostgreSQL computes the same with RECOVER_CHECKSUM_SQL. */
typedef struct replay_checksum
{
	uint64_t rows;
	__int128 sum;
} replay_checksum;

/* Enough for any __int128 in decimal with sign and NUL. */
#define REPLAY_CHECKSUM_BUFLEN 48

/* A row change as seen while applying records, with full old and new images in the
 * record's layout (the old image comes from the state, even when the WAL carried only
 * the key).  For 'T' both images are NULL and truncated_rows counts what was removed. */
typedef struct replay_change
{
	const segment_record *rec;
	const manifest_layout *layout;
	int ncols;
	const replay_value *old_values;	/* U and D */
	const replay_value *new_values;	/* I and U */
	uint64_t truncated_rows;
} replay_change;

typedef int (*replay_change_cb) (void *ctx, const replay_change *change, bs_error *err);

/* Receives COPY text: batches of complete lines; a non-BS_OK return stops the writer. */
typedef int (*replay_copy_cb) (void *ctx, const char *data, size_t len, bs_error *err);

/*
 * New empty state over the table's layouts, in the manifest's order (by from_lsn); records,
 * bases and targets name them by id (unique, in any order: duplicates are refused).  The
 * layouts are borrowed and must outlive the state.
 */
int replay_new(int nlayouts, const manifest_layout *layouts, replay_state **out, bs_error *err);
void replay_free(replay_state *st);

/*
 * Bound the state's memory: once the rows kept in memory and the index would exceed limit
 * bytes, new and changed rows are written to a temporary file in dir (NULL: $TMPDIR, else
 * /tmp), unlinked at creation, and read back when they are looked up or written out.  The
 * index itself (16 to 32 bytes per row, and 8 to 32 per key a streamed recovery touches)
 * moves to such a file when it would take more than half the limit; it is then read a
 * window at a time (a lookup costs a system call: much slower than in memory).
 * 0: no limit (the default).  The same code runs either way: the results are identical.
 * A failure to read or write these files fails the call (and every later one).  Call
 * before adding rows.
 */
void replay_set_memory_limit(replay_state *st, uint64_t limit, const char *dir);
/* Rows and bytes written to the spill file so far. */
void replay_spill_stats(const replay_state *st, uint64_t *rows, uint64_t *bytes);
/* How many times an index (the rows' or the touched keys') moved to a file so far. */
uint64_t replay_index_spills(const replay_state *st);

/*
 * Add the rows of one base copy chunk: COPY TO text format in layout layout_id, complete
 * lines only (a chunk ends with a newline or is empty).  what names the chunk in messages.
 */
int replay_load_base_copy(replay_state *st, uint32_t layout_id, const char *text, size_t len,
						  const char *what, bs_error *err);

/*
 * Streaming recovery, for when every change since the base uses the base's columns and key
 * and there is no TRUNCATE: only the rows that changes touch need the in-memory state.
 *   1. replay_stream_begin with the base's layout, on a new state;
 *   2. replay_touch for every record to be applied (it sets *streamable to false, and
 *      the caller falls back to a full replay on a new state, when a record needs it);
 *   3. replay_split_base_copy for each base chunk: lines whose key (whole row without a key)
 *      no record touches go to cb verbatim as COPY text, in order, and are added to sum and
 *      *passed; the others are loaded into the state (by a second thread, while the
 *      others are sent: nothing else may use the state before step 4);
 *   4. replay_split_finish (the state complete, or the loading thread's failure), then
 *      replay_apply the records, replay_check, then replay_write_copy the state's rows.
 * Key hashes are compared, not keys: a collision only sends a row through the state.
 */
int replay_stream_begin(replay_state *st, uint32_t base_layout, bs_error *err);
int replay_touch(replay_state *st, const segment_record *rec, bool *streamable, bs_error *err);
int replay_split_base_copy(replay_state *st, uint32_t layout_id, const char *text, size_t len, const char *what,
						   replay_copy_cb cb, void *ctx, replay_checksum *sum, uint64_t *passed, bs_error *err);
int replay_split_finish(replay_state *st, bs_error *err);

/* Apply one I/U/D/T record.  The caller decides which records belong (LSN range,
 * deduplication); records must come in commit order. */
int replay_apply(replay_state *st, const segment_record *rec, bs_error *err);

/* Check the state at a transaction boundary (no duplicate keys).  replay_apply checks
 * this itself whenever a new transaction starts; call it once more after the last. */
int replay_check(replay_state *st, bs_error *err);

/* Called for every row change applied from now on (NULL to stop). */
void replay_set_change_callback(replay_state *st, replay_change_cb cb, void *ctx);

uint64_t replay_row_count(const replay_state *st);
/* The newest layout the state has seen (base or records): the table's layout at the point. */
uint32_t replay_current_layout(const replay_state *st);

/*
 * Build what writing rows in target_layout needs (the conversions from older layouts).
 * Afterwards, until the state is changed or freed, replay_write_copy and
 * replay_checksum_compute for that layout only read the state: they may run in two
 * threads at once (a checksum alongside the COPY stream).
 */
int replay_prepare_output(replay_state *st, uint32_t target_layout, bs_error *err);

/*
 * Write every row in target_layout as COPY text lines.  cb receives batches of complete
 * lines (about 1 MiB each); a non-BS_OK return stops.  When sum is not NULL the content
 * checksum of the written rows is computed in the same pass.
 */
int replay_write_copy(replay_state *st, uint32_t target_layout, replay_copy_cb cb, void *ctx,
					  replay_checksum *sum, bs_error *err);
/* Only the checksum, without producing COPY text. */
int replay_checksum_compute(replay_state *st, uint32_t target_layout, replay_checksum *sum,
							bs_error *err);

/* PostgreSQL's record_out text of a row, appended to out. */
void replay_record_text(strbuf *out, int ncols, const replay_value *values);
/* Checksum term of one row's record text: hashtextextended(record_text, 0). */
int64_t replay_row_hash(const char *record_text, size_t len);
/* The sum in decimal (buf of REPLAY_CHECKSUM_BUFLEN); returns buf. */
char *replay_checksum_format(const replay_checksum *sum, char *buf);

/* Append a value in COPY text form (escaped; NULL as \N). */
void replay_copy_escape(strbuf *out, const replay_value *v);

#endif
