/* recover_plan.h — which base copy and segments rebuild a table at a point, and feeding them to replay. */
#ifndef BACKSTOP_RECOVER_PLAN_H
#define BACKSTOP_RECOVER_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "manifest.h"
#include "manifest_head.h"
#include "replay.h"
#include "segfetch.h"
#include "spill.h"
#include "storage.h"
#include "strbuf.h"

typedef enum recover_point_kind
{
	RECOVER_POINT_LSN,
	RECOVER_POINT_TIME,
	RECOVER_POINT_XID,
	RECOVER_POINT_LATEST
} recover_point_kind;

typedef struct recover_point
{
	recover_point_kind kind;
	uint64_t lsn;				/* LSN: commits at or before it (exclusive: before it) */
	int64_t time;				/* TIME: Unix microseconds */
	uint32_t xid;				/* XID: through this transaction (exclusive: up to it) */
	bool exclusive;
	bool second_precision;		/* TIME: given in whole seconds (see recover_time) */
	char zone[160];				/* TIME: the zone it was read in (recover_time.zone) */
	/* When nonzero the base must hold no commit at or after this LSN (for `changes`,
	 * whose state must be rebuilt before the range starts). */
	uint64_t base_limit;
} recover_point;

typedef struct recover_plan
{
	manifest *m;				/* borrowed */
	const manifest_base *base;
	uint64_t bound;				/* records with commit_lsn < bound are applied */
	uint64_t window_lo;			/* the oldest base's LSN */
	uint64_t window_hi;			/* archived_to (or the head's flushed LSN) */
	int nsegs;
	int *segs;					/* indexes into m->segments, ascending */
	spill_file **segfile;		/* m->nsegments entries; fetched raw segments (verified), in
								 * unlinked temporary files read through a sliding mapping */
	segfetch *segfetch;			/* the packs of pack segments, opened once each */
	char *temp_dir;				/* for them (NULL: $TMPDIR, else /tmp) */
	uint64_t memory_limit;		/* 0: none; else bounds the base chunk pieces in flight */
	uint64_t download_bytes;	/* stored bytes of the base chunks and the segments */
	/* TIME: the first transaction after the point (next_commit_lsn 0: none archived). */
	uint64_t next_commit_lsn;
	uint32_t next_xid;
	int64_t next_commit_time;	/* Unix microseconds */

	/* Filled by recover_plan_run. */
	uint64_t transactions;
	uint64_t operations;		/* row operations (I/U/D) and truncates applied */
	uint64_t duplicates;		/* records skipped as already applied (overlapping segments) */
	uint64_t last_commit_lsn;	/* the last transaction applied (0: the base alone) */
	uint64_t last_end_lsn;
	uint32_t last_xid;
	int64_t last_commit_time;	/* Unix microseconds */
	uint64_t downloaded;		/* stored bytes fetched so far */
	uint64_t fetching;			/* of the segment being fetched: stored bytes so far (estimated
								 * from the raw bytes received) */
	int segs_fetched;			/* of plan->segs, fetched and verified */
	/* Set by recover_plan_fetch: told as segment bytes arrive (also in later fetches). */
	void (*fetch_progress) (void *ctx, const struct recover_plan *plan);
	void *fetch_ctx;
	/* What recover_plan_run or _stream is doing, for progress reports: RECOVER_STAGE_*. */
	int stage;
} recover_plan;

#define RECOVER_STAGE_BASE 0	/* fetching and parsing the base copy (streaming: sending it on) */
#define RECOVER_STAGE_CHANGES 1	/* applying the archived changes */
#define RECOVER_STAGE_WRITE 2	/* streaming: sending the rows the changes touched */
#define RECOVER_STAGE_FETCH 3	/* fetching and verifying the segments (recover_plan_fetch) */

/* Progress reports while objects are fetched and records applied (may be NULL). */
typedef void (*recover_progress_cb) (void *ctx, const recover_plan *plan, uint64_t rows_applied);

/* Microseconds between the Unix epoch and PostgreSQL's (2000-01-01). */
#define RECOVER_PG_EPOCH_UNIX_US INT64_C(946684800000000)

/* Where a recovery may put its temporary files and how much memory it may use. */
typedef struct recover_resources
{
	const char *temp_dir;		/* NULL: $TMPDIR, else /tmp */
	uint64_t memory_limit;		/* bytes; 0: no limit */
} recover_resources;

/*
 * Resolve the point against the manifest (and head, may be NULL), fetching and verifying
 * the segments needed to locate a time or transaction.  Fails with ERRCODE_OUT_OF_RANGE
 * when the point lies outside the recovery window (the message names the window),
 * ERRCODE_UNDEFINED_OBJECT for an xid that never touched the table, ERRCODE_DATA_CORRUPTED
 * / ERRCODE_NOT_FOUND for damaged or missing objects.
 */
int recover_plan_build(storage *st, manifest *m, const archive_head *head, const recover_point *pt,
					   const recover_resources *res, recover_plan **out, bs_error *err);
void recover_plan_free(recover_plan *plan);

/* The layout the table has at the point: current (the newest the replay saw), or a newer
 * one recorded at a schema change after the last change applied (read from the stream). */
uint32_t recover_plan_point_layout(const recover_plan *plan, uint32_t current);
/* Whether a schema change between the table's last row change and the point may be
 * missing (not captured in the stream there): recovery output says so. */
bool recover_plan_ddl_uncaptured(const recover_plan *plan);

/* Told while segments are fetched (bytes as they arrive: plan->downloaded + plan->fetching). */
typedef void (*recover_fetch_cb) (void *ctx, const recover_plan *plan);

/*
 * Fetch and verify every segment of the plan into its temporary file now (the run and the
 * stream then read them from there), calling progress (may be NULL) as their bytes arrive.
 */
int recover_plan_fetch(recover_plan *plan, storage *st, recover_fetch_cb progress, void *pctx, bs_error *err);

/*
 * Fetch and verify every object of the plan and build the table in rs (created by the
 * caller over m's layouts).  When cb is set it receives the changes of transactions whose
 * commit LSN is greater than report_after.
 */
int recover_plan_run(recover_plan *plan, storage *st, replay_state *rs, uint64_t report_after,
					 replay_change_cb cb, void *cbctx, recover_progress_cb progress, void *pctx,
					 bs_error *err);

/*
 * Streaming recovery (see replay.h): fetch and verify every segment of the plan and register
 * the keys its records touch in rs (a new state).  *streamable tells whether the table can
 * be streamed; when it cannot, free rs and use recover_plan_run on a new state.
 * *target_layout is the layout of the rows written.
 */
int recover_plan_prepare_stream(recover_plan *plan, storage *st, replay_state *rs, bool *streamable,
								uint32_t *target_layout, bs_error *err);

/*
 * Then: fetch and verify the base chunks, sending rows no change touches to cb as COPY text
 * while the chunks are parsed, apply the records to the touched rows, and send those last.
 * sum gets the checksum of every row sent.  A failure can come after rows were sent: the
 * caller must be able to discard them (one transaction).
 */
int recover_plan_stream(recover_plan *plan, storage *st, replay_state *rs, uint32_t target_layout,
						replay_copy_cb cb, void *cbctx, replay_checksum *sum, recover_progress_cb progress,
						void *pctx, bs_error *err);

/* A point in time as the user gave it. */
typedef struct recover_time
{
	int64_t time;				/* Unix microseconds */
	bool second_precision;		/* absolute with whole seconds: the start of that second */
	bool relative;				/* "now", "20 min ago" */
	char zone[160];				/* the zone it was read in, for the output ("UTC", "UTC+02:00",
								 * "America/New_York (EST, UTC-05:00)") */
} recover_time;

/*
 * Parse a point in time: "now", "N unit ago" (s/sec/second, min/minute, h/hour, d/day,
 * w/week, plural too) counted back from now (Unix microseconds), or
 * "YYYY-MM-DD HH:MM:SS[.ffffff]" (or with 'T') then Z, UTC, a numeric offset (+HH, +HHMM,
 * +HH:MM), or nothing: then the time is read in the user's zone (TZ, else the system's),
 * the way psql shows times.  BS_OK or BS_ERR (also for a local time that does not exist).
 */
int recover_parse_time_at(const char *s, int64_t now, recover_time *out);
/* The same, from the current time (clock_unix_us), when only the point matters (Unix microseconds). */
int recover_parse_time(const char *s, int64_t *out);

/* The user's zone at a time, e.g. "America/New_York (EST, UTC-05:00)" (buf of size bytes). */
void recover_describe_zone(int64_t unix_us, char *buf, size_t size);

/* A time in the user's zone with its offset, e.g. "2026-11-26 11:00:00.123456-05:00": what
 * --to-time and --since take back. */
#define RECOVER_TIME_BUFLEN 96
char *recover_format_local_time(int64_t unix_us, char *buf);

/* Fetch one segment of table relid into out (reset first), verified against its manifest
 * entry: checksum (a segment object) or the pack's frame hashes and run (a pack segment: see
 * segfetch.h), raw size, every record well-formed and as many as recorded.  bytes grows by
 * what was downloaded.  sf keeps the packs opened (NULL: a cache for this call only). */
int recover_fetch_segment(storage *st, segfetch *sf, uint32_t relid, const manifest_segment *s, strbuf *out,
						  uint64_t *bytes, bs_error *err);

/* True when a failure means the archive is damaged (exit code 3). */
bool recover_error_is_integrity(const bs_error *err);

#endif
