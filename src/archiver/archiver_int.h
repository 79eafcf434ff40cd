/* archiver_int.h — the archiver daemon's shared state and its locking protocol (internal to src/archiver/). */
#ifndef BACKSTOP_ARCHIVER_INT_H
#define BACKSTOP_ARCHIVER_INT_H

#include "archive_load.h"
#include "basecopy.h"
#include "catalog.h"
#include "codec.h"
#include "config.h"
#include "control.h"
#include "error.h"
#include "ident.h"
#include "lease.h"
#include "manifest.h"
#include "manifest_head.h"
#include "manifest_json.h"
#include "manifest_keys.h"
#include "manifest_store.h"
#include "pack.h"
#include "packcat.h"
#include "pgoutput.h"
#include "pgsql.h"
#include "segment.h"
#include "spill.h"
#include "storage.h"
#include "strbuf.h"

#include <event2/util.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct event;
struct event_base;
struct evhttp_request;

/*
 * The locking protocol, stated once.
 *
 * Threads.  The main thread runs the libevent loop (archiver.c): the replication stream
 * (stream.c), the tick (table checks, seals by age, base-copy results, status), the control
 * API (api.c, checkpoint.c), signals, and the uploader's wake-ups.  The uploader thread
 * (uploader.c, and retention.c between uploads) spools sealed epochs, uploads them, stores
 * manifests and the head.  The base-copy thread (basejob.c) runs one base_job.  The
 * querier (checkpoint.c) runs what a checkpoint asks of PostgreSQL.  The lease keeper
 * (archive/lease.c) renews the lease on its own.
 *
 * What a->lock protects: every field of struct archiver and of its arch_tables that both
 * the main thread and the uploader touch: the table list and the manifests, the positions
 * (received_lsn, flush_lsn, head_written_lsn, head_wanted, ...), the queue (jobs_head,
 * queued_bytes), spool_pending, the metrics, the pending checkpoints, uploader_failed.
 *
 * Who holds it.  The main thread holds it for the whole of every callback (the
 * LOCKED_CALLBACK wrappers and locked_http in archiver.c, locked_repl_readable in
 * stream.c), so code reached from a callback runs locked and may assume nothing moves under
 * it, except at the two spots where it lets go: repl_drain (the uploader asked for the lock
 * in a long burst) and on_repl_readable (the pause between two reads).  Each says why there;
 * after retaking, the uploader may have moved flush_lsn, head_written_lsn, the dirty flags,
 * the queue and the metrics, and the caller re-checks a->repl, fatal and stopping.  The
 * uploader takes the lock with uploader_lock() (which makes the main thread yield) around
 * in-memory steps only, never across storage I/O.
 *
 * Owned by one thread, no lock: the main thread alone uses conn, repl, st_main, evbase and
 * the events, the relcache and the transaction being received (in_txn ...); the querier
 * alone uses qconn, and a checkpoint_req while it is QUERY_RUNNING; the uploader
 * alone uses st and the spool (start-up and shutdown use them while the uploader is not
 * running); the base-copy thread only its base_job (st_base, its own connections; cancel and
 * done are atomics, cancels[] is under the job's cancel_lock) until done is set, after which
 * the main thread joins it and applies its results under the lock (basejob_reap).
 * Single-threaded phases: start-up before the uploader starts, and the end after it is
 * joined.
 */

#define SPOOL_COMPLETE "COMPLETE"
/* Spill files live in this directory of the spool (key prefix "spill/"): not an epoch. */
#define SPILL_DIR "spill"
/* A spilled segment's records are appended to its file in pieces of about this size. */
#define SPILL_WRITE_BUFFER ((size_t) 1024 * 1024)

/*
 * A slot invalidated for another cause than max_slot_wal_keep_size, by name: PostgreSQL 17's
 * invalidation_reason (read through to_jsonb, so that older servers answer NULL) other than
 * wal_removed, e.g. 18's idle_timeout.  wal_status says "lost" for every cause.
 */
#define SLOT_OTHER_INVALIDATION \
	"NULLIF(to_jsonb(s) ->> 'invalidation_reason', 'wal_removed')"

/* Retry interval of a lost control connection while checkpoints wait for it. */
#define CONN_RETRY_MS 1000

typedef struct arch_table
{
	uint32_t relid;
	manifest *man;
	bool active;				/* in the archived set (else only known from storage or spool) */
	strbuf open;				/* the open segment: header, then records (empty when none) */
	uint64_t open_records;
	/*
	 * A big open segment is spilled: the file holds its beginning (header included) and
	 * open only what is not written to it yet (less than SPILL_WRITE_BUFFER plus a record).
	 * Offsets in the segment (txn_start) count the file's bytes first, then open's.
	 */
	spill_file *spill;
	uint64_t txn_start;			/* offset in the segment of the current transaction's first record */
	uint64_t txn_records;		/* open_records when the current transaction began */
	segment_summary sum;		/* of the open segment, kept as records arrive (records: open_records) */
	uint64_t change_bytes;		/* change bytes archived since the newest base */
	bool rebase_wanted;
	/* Base copies that gave way to the table's users in a row (basecopy_error_yields), and
	 * the clock_mono_ms before which no new one is started (backoff; 0: none). */
	int base_yields;
	int64_t base_retry_ms;
	uint64_t rewrite_lsn;		/* commit LSN of the transaction in which a table_rewrite was read */
	uint32_t layout_id;			/* layout of the changes being received */
	char *verified_key;			/* newest object re-read and checked by this process */
	bool dirty;					/* manifest changed in memory; the uploader stores it */
	bool base_unstored;			/* a new base is in man, not yet in a stored manifest */
	/*
	 * Found dropped: the server's WAL insert position when the catalog no longer had the
	 * table (0: not found dropped).  The DROP committed before it, so every change of the
	 * table is in the stream before it; the table stays active (its changes are kept) until
	 * everything before it is stored, and only then is it marked dropped (uploader_store_head).
	 */
	uint64_t gone_lsn;
	bool gone_passed;			/* the stream has passed gone_lsn (the seal that stores it is asked for) */
	uint64_t drop_lsn;			/* the DROP's commit LSN read from the stream (0: not read) */
	bool partitioned;			/* a partitioned table (skipped: its partitions are archived) */
	/* The base copy that answered a column change's re-base request (manifest
	 * rebase_requested_at): points below it are refused, so checkpoints wait for the stream to
	 * pass it. */
	uint64_t rebase_done_lsn;
	/* Not in the publication the slot streams (tables_check_publication): no base copy, no
	 * checkpoint, and an archived table's archive ends (an open gap) until it is back. */
	bool unpublished;
	uint64_t pub_seen_lsn;		/* seen published by a check (or a checkpoint) that started after this position */
	/*
	 * Where schema changes are not captured in the stream (weak mode), what bounds a change
	 * made at an unknown commit (manifest schema_unknown): layout_seen is the newest commit
	 * LSN (or base LSN) known to use the current layout; schema_ok_seen the layout_seen of the
	 * last table check that found the catalog as archived, with the catalog's relnatts then
	 * (natts_seen, 0: not known; it grows with every column added, so that a column dropped and
	 * added again under its name is seen); schema_detect_lsn the server's position when a
	 * check found a difference (a base copy closes the window only when taken after it).
	 */
	uint64_t layout_seen;
	uint64_t schema_ok_seen;
	int natts_seen;
	uint64_t schema_detect_lsn;
	/*
	 * A window a table check opened (schema_layout_apply) that the stream may end: the
	 * catalog's columns and relnatts the check saw at schema_detect_lsn, the relnatts known
	 * before it (natts_seen, > 0) and the column names Relation messages have added since.
	 * check_cols NULL (allocated even for no column): only a base copy ends the window.
	 */
	int check_ncols;
	manifest_column *check_cols;
	int check_natts;
	int check_natts_before;
	int check_names_added;
	/*
	 * Format 3 (packlog.c): the table's state as the log holds it (its manifest without
	 * segments; NULL: the log has no event of it yet), and the LSN of its last event there
	 * (the next events start at or above it).  The uploader's, set at registration.
	 */
	manifest *logged;
	uint64_t logged_floor;
} arch_table;

/* A sealed epoch handed from the stream to the uploader thread. */
typedef struct seal_part
{
	uint32_t relid;
	char *spool_key;
	strbuf data;				/* raw segment, header included (empty when spilled) */
	spill_file *spill;			/* spilled: the segment is in this file until spool_job adopts it */
	bool spilled;				/* the segment is in a file (spill, then the spool), not in data */
	uint64_t size;				/* raw segment bytes */
	segment_summary sum;
	char *layouts;				/* the table's manifest (for its layouts), JSON */
} seal_part;

typedef struct seal_job
{
	uint64_t seal_lsn;
	bool verify;
	int nparts;
	seal_part *parts;
	uint64_t bytes;
	struct seal_job *next;
} seal_job;

typedef struct checkpoint_req
{
	struct evhttp_request *req;
	uint32_t relid;
	uint64_t target_lsn;
	int64_t started_ms;
	int64_t deadline_ms;
	bool sealed;				/* what it needs was handed to the uploader */
	bool positioned;			/* target_lsn is known (else PostgreSQL is being reconnected to) */
	bool existed;				/* the table was seen in the catalog at or after target_lsn */
	/* What the querier thread is asked (in a->querying), and what it found. */
	int qstate;					/* QUERY_WANTED, QUERY_RUNNING (the querier's), QUERY_DONE */
	bool retry;					/* only the position, for a request that waited for PostgreSQL */
	bool want_position;			/* read "now" (no LSN named) */
	bool check_exists;			/* is the table in the catalog at or after the point */
	bool check_layout;			/* weak mode: the table check of its layout (schema_layout_query) */
	bool check_member;			/* is the table in the publication at or after the point */
	uint64_t layout_seen;		/* schema_layout_check_due's, when it was asked */
	PGresult *layout_res;		/* its result, applied by the loop */
	int layout_rc;
	bs_error layout_err;
	int q_rc;
	uint64_t q_lsn;
	int q_exists;				/* 1: yes, 0: gone, -1: unknown */
	char q_member;				/* catalog_publication_member's state (0: not read) */
	uint64_t q_member_lsn;		/* and the position read before it */
	bs_error q_member_err;
	bool q_conn_ok;				/* the querier's connection is up (a failure is the query's) */
	bs_error q_err;
	struct checkpoint_req *next;
} checkpoint_req;

#define QUERY_WANTED 1
#define QUERY_RUNNING 2
#define QUERY_DONE 3

typedef struct archiver_metrics
{
	uint64_t messages;
	uint64_t bytes_received;
	uint64_t transactions;
	uint64_t changes;
	uint64_t segments_uploaded;
	uint64_t bytes_uploaded;
	uint64_t upload_errors;
	uint64_t reconnects;
	uint64_t base_copies;
	uint64_t base_copy_yields;	/* a table's copy gave way to a lock (basecopy_error_yields) */
	uint64_t spool_bytes;
	uint64_t checkpoints;
	uint64_t spills;
	uint64_t seals;				/* epochs sealed (handed to the uploader) */
	uint64_t manifests_stored;
	uint64_t manifest_bytes;	/* serialized bytes of the manifests stored */
	int64_t started_ms;
	/* For seconds behind: the newest commit received (Unix microseconds, end LSN), and the
	 * newest one known durable (its time once flush_lsn passed its end). */
	int64_t commit_time;
	uint64_t commit_end;
	int64_t durable_commit_time;
	/* WAL the slot holds on the server (bytes, -1: not known yet), read at each table poll. */
	int64_t slot_retained;
	/* The backlog found at start: catch up to catchup_to; 0 once caught up. */
	uint64_t catchup_from;
	uint64_t catchup_to;
	int64_t catchup_started_ms;
	int64_t catchup_logged_ms;
} archiver_metrics;

/*
 * A base-copy job run by the base-copy thread: its own connections and storage handle, and
 * results kept here until the main loop adds them to the live manifests (under the lock).
 * The thread touches nothing else of the archiver.
 */
typedef struct base_job
{
	char *conninfo;
	storage *st;				/* the archiver's st_base: used by this thread only */
	basecopy_options opts;
	int ntargets;
	basecopy_target *targets;
	int cancel;					/* atomic: stop requested (checked between rows) */
	pthread_mutex_t cancel_lock;	/* guards cancels (PQcancel from the main thread) */
	PGcancel *cancels[2];
	int64_t started_ms;
	/* filled by the thread */
	int rc;
	bs_error err;
	uint64_t lsn;
	basecopy_result *results;
	int done;					/* atomic: the thread has finished; join it */
} base_job;

typedef struct archiver
{
	bs_config *cfg;
	storage *st;				/* used by the uploader (and by start-up) */
	storage *st_main;			/* the main loop's own handle: a driver handle is not shared across threads */
	storage *st_base;			/* the base-copy thread's own handle */
	storage *spool;
	PGconn *conn;
	PGconn *repl;
	struct event_base *evbase;
	struct event *repl_ev;
	struct event *tick_ev;
	struct event *sig_evs[3];
	control_endpoint *control;	/* NULL: --listen off */

	arch_table **tables;
	int ntables;
	pgo_relation *relcache;
	int nrelcache;

	/* transaction being received */
	bool in_txn;
	bool txn_skip;
	uint64_t txn_final_lsn;
	int64_t txn_commit_time;
	uint32_t txn_xid;

	uint64_t last_commit_end;	/* end LSN of the last transaction received */
	uint64_t received_lsn;		/* everything before this was received */
	uint64_t flush_lsn;			/* durable in storage: reported to PostgreSQL */
	uint64_t resume_lsn;		/* transactions committing before this are already kept */
	uint64_t head_written_lsn;
	size_t open_bytes;			/* record bytes of the open segments, spilled or not */
	uint64_t spilled_bytes;		/* the part of open_bytes written to spill files */
	uint64_t open_memory_limit;	/* open_bytes - spilled_bytes (in memory) stays below this */
	uint64_t table_checks;		/* table checks completed (a metric: tests wait on it) */
	int		table_check_failures;	/* table checks failed in a row (logged once while the same) */
	char	table_check_error[1024];	/* the last one's message */
	int64_t spool_limit;
	char *spill_dir;			/* SPILL_DIR under the spool's root */
	uint64_t spill_seq;			/* spill file names are unique within a run */
	int64_t open_since_ms;
	int64_t last_status_ms;
	int64_t last_poll_ms;
	int64_t reconnect_ms;
	int64_t reconnect_delay_ms;
	int64_t conn_retry_ms;		/* next attempt to reconnect the control connection (checkpoints wait) */
	bs_error conn_err;			/* why the control connection could not be made again */
	bool spool_pending;
	bool stopping;
	uint64_t end_lsn;			/* --end-lsn: stop once everything committed at or before it is stored */
	int64_t end_received_ms;	/* when that was all received (0: not yet) */
	bool fatal;
	bs_error fatal_err;
	uint64_t gone_next;			/* the lowest gone_lsn the stream has not passed (0: none) */
	/* Schema changes come in the stream (event triggers writing backstop.ddl messages) from
	 * ddl_capture_from on; false: only as pgoutput's Relation messages and catalog polls. */
	bool ddl_capture;
	uint64_t ddl_capture_from;
	bool slot_lost;				/* the slot was invalidated or dropped: stop (what is received is stored) */
	bs_error slot_lost_err;
	codec_id codec;
	int level;					/* base copies */
	int segment_level;			/* change segments */
	int64_t segment_size;		/* segment_size, parsed once (checked at every commit) */
	archive_head head;
	char *pub_as_is;			/* why the publication is used as it is (said once), NULL: made right */
	checkpoint_req *pending;
	/*
	 * What a checkpoint asks of PostgreSQL (the position, the catalog) is asked by the
	 * querier thread on its own connection, never on the loop, so that the stream keeps
	 * being read.  Requests it holds are in querying (under the lock); a done one is taken
	 * back by the loop (checkpoint_queried, woken through notify_pipe).
	 */
	checkpoint_req *querying;
	pthread_t querier;
	bool querier_running;
	bool querier_stop;
	pthread_cond_t query_wake;
	char *query_conninfo;		/* read once: the querier does not read the configuration */
	char *query_pubname;		/* likewise, the publication */
	PGconn *qconn;				/* the querier's alone */
	archiver_metrics metrics;

	/*
	 * The uploader thread writes sealed epochs to the spool, uploads them, stores manifests
	 * and the head, so that the stream keeps being read meanwhile.  lock protects everything
	 * above that both threads touch (tables, manifests, positions, metrics, the queue); the
	 * main thread holds it while it runs a callback, the uploader only around in-memory
	 * steps, never across storage I/O.
	 */
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t uploader;
	bool uploader_running;
	bool uploader_stop;
	int uploader_waiting;		/* atomic: the uploader wants the lock */
	seal_job *jobs_head;
	seal_job *jobs_tail;
	uint64_t queued_bytes;
	uint64_t head_wanted;		/* idle progress: write the head up to here, then confirm it */
	uint64_t idle_lsn;			/* idle progress not yet asked for (throttled) */
	bool retry_now;				/* a checkpoint waits: try storage again without back-off */
	int64_t last_head_request_ms;
	bool uploader_failed;		/* fatal: a sealed epoch could not be spooled */
	bs_error uploader_err;
	int notify_pipe[2];			/* uploader -> main loop: positions moved */
	struct event *notify_ev;
	uint64_t last_sent_flush;

	/* The archive's lease (one writer per archive), held from start-up to the end; the
	 * keeper renews it, archiver_fence() checks it before manifests and segments are written. */
	lease_holding hold;			/* the archive's lease (one writer per archive) */

	/* Retention (--expire-interval): the uploader's next pass (monotonic ms, 0: not scheduled). */
	int64_t expire_next_ms;

	/* At most one base-copy job at a time, run by base_thread (see basejob_start). */
	base_job *bjob;
	int64_t	test_lock_key;		/* basecopy_options.test_lock_key, read once at start */
	int64_t	test_snapshot_lock_key;	/* basecopy_options.test_snapshot_lock_key, likewise */
	int64_t	test_end_lock_key;	/* basecopy_options.test_end_lock_key, likewise */
	int64_t	test_check_lock_key;	/* BACKSTOP_TEST_TABLE_CHECK_LOCK (tables_check_held) */
	int64_t	test_members_lock_key;	/* BACKSTOP_TEST_PUBLICATION_MEMBERS_LOCK (tables_check_publication) */
	int64_t	test_pub_update_lock_key;	/* BACKSTOP_TEST_PUBLICATION_UPDATE_LOCK (sync_publication in tables.c) */
	pthread_t base_thread;

	/*
	 * Format 3 (doc/design/format2.md 3.3, packlog.c): the uploader's (start-up's before it
	 * runs).  The log's tip (sequence number, SHA-256 of its stored bytes, seal LSN), the newest
	 * catalog and the packs written after it, the relids the log held at start, and the
	 * states of tables loaded from it but not registered yet.
	 */
	bool format3;
	uint64_t log_seq;
	char log_sha[65];
	uint64_t log_seal;
	packcat_dir *cat_dir;
	pack_index **cat_packs;
	int ncat_packs;
	archive_view *view;			/* start-up only */
	uint32_t *log_relids;
	int nlog_relids;
	struct packlog_loaded *loaded;
	int nloaded;
	int64_t head_written_ms;	/* when head.json was last written (format 3: every head_interval) */
} archiver;


/* archiver.c */
extern void archiver_fail(archiver *a, const bs_error *err);
extern int archiver_fence(archiver *a, bs_error *err);
extern int archiver_take_lease(archiver *a, bs_error *err);

/* startup.c */
extern int startup_setup(archiver *a, bs_error *err);

/* stream.c */
extern int stream_send_status(archiver *a, bool reply_requested, bs_error *err);
extern int stream_reconnect_conn(archiver *a, bs_error *err);
extern bool stream_conn_recovered(archiver *a, bs_error *err);
extern int stream_drop_partial_transaction(archiver *a, bs_error *err);
extern void stream_close(archiver *a);
extern void stream_read_slot_wal(archiver *a, bool at_start);
extern void stream_track_progress(archiver *a);
extern int stream_start(archiver *a, bs_error *err);
extern void stream_schedule_reconnect(archiver *a, const bs_error *err);

/* schema.c */
extern uint64_t schema_newest_base_with_layout(const manifest *m, uint32_t id, uint64_t lsn, uint64_t from);
extern int schema_handle_relation(archiver *a, const pgo_relation *rel, bs_error *err);
extern void schema_note_capture(archiver *a, arch_table *t);
extern int schema_ddl_setup(archiver *a, bs_error *err);
extern int schema_handle_ddl_message(archiver *a, const pgo_logical_message *msg, bs_error *err);
extern int schema_poll_layout(archiver *a, arch_table *t, bs_error *err);
extern bool schema_layout_check_due(archiver *a, arch_table *t, uint64_t *seen);
/* Whether a column of cols has another type in cur (ALTER COLUMN ... TYPE): only a new base copy makes rows from before exact. */
extern bool schema_layout_retyped(const manifest_layout *cur, int ncols, const manifest_column *cols);
extern int schema_layout_query(PGconn *conn, uint32_t relid, PGresult **res, bs_error *err);
extern int schema_layout_apply(archiver *a, arch_table *t, uint64_t seen, PGresult *res, bs_error *err);
extern void schema_poll_rename(archiver *a, arch_table *t, const catalog_table *ct);
extern void schema_gap_end_by_stream(arch_table *t, uint64_t commit_lsn);
extern void schema_check_forget(arch_table *t);

/* segments.c */
extern int segments_clean_spill(archiver *a, bs_error *err);
extern uint64_t segments_open_len(const arch_table *t);
extern int segments_check_spool_room(archiver *a, bs_error *err);
extern int segments_spill_flush(archiver *a, arch_table *t, bs_error *err);
extern int segments_append_record(archiver *a, arch_table *t, segment_record *r, bs_error *err);
extern int segments_patch_end_lsn(archiver *a, arch_table *t, uint64_t end_lsn, bs_error *err);

/* uploader.c */
extern void uploader_notify_main(archiver *a);
extern int uploader_store_manifest_now(archiver *a, manifest *m, bs_error *err);
extern int uploader_record_manifests(archiver *a, bs_error *err);
extern void uploader_lock(archiver *a);
extern int uploader_store_dirty_manifests(archiver *a, bool fenced, bs_error *err);
extern int uploader_store_head(archiver *a, uint64_t lsn, bs_error *err);
extern int uploader_store_head_again(archiver *a, bs_error *err);
extern bool uploader_finish_drops(archiver *a, uint64_t lsn);
extern const seal_part *uploader_job_part(const seal_job *jobs, const char *spool_key);
extern int uploader_drain_spool(archiver *a, bool verify, const seal_job *jobs, bs_error *err);
extern int uploader_clean_spool(archiver *a, uint64_t *max_seal, bs_error *err);
extern void uploader_idle_progress(archiver *a, uint64_t lsn, bool urgent);
extern void uploader_job_free(seal_job *job);
extern int uploader_seal_epoch(archiver *a, bool verify, bs_error *err);
extern void *uploader_main(void *arg);

/* packlog.c */
extern int packlog_start(archiver *a, bs_error *err);
extern void packlog_end_startup(archiver *a);
extern void packlog_free(archiver *a);
extern int packlog_load(archiver *a, uint32_t relid, manifest **m, bool *exists, bs_error *err);
extern int packlog_relids(archiver *a, uint32_t **relids, int *n, bs_error *err);
extern int packlog_find_table(archiver *a, const char *qualified_name, manifest **m, bs_error *err);
extern void packlog_adopt(archiver *a, arch_table *t);
extern int packlog_put_batch(archiver *a, char **seg_keys, int nkeys, const seal_job *jobs, uint64_t seal,
							 bs_error *err);
extern int packlog_put_events(archiver *a, uint64_t seal, bs_error *err);
extern bool packlog_head_due(archiver *a);
extern int packlog_store_head(archiver *a, uint64_t lsn, bs_error *err);

/* retention.c */
extern bool retention_due(archiver *a);
extern int retention_pass(archiver *a, bs_error *err);

/* basejob.c */
extern arch_table *basejob_apply(archiver *a, const basecopy_result *r, uint64_t lsn);
extern void basejob_start(archiver *a, arch_table **list, int n);
extern void basejob_reap(archiver *a);
extern void basejob_stop(archiver *a);
extern int basejob_take_now(archiver *a, arch_table **list, int n, bs_error *err);

/* tables.c */
extern arch_table *tables_add(archiver *a, manifest *m, bool active);
extern arch_table *tables_find(archiver *a, uint32_t relid);
extern uint32_t tables_insert_layout(manifest *m, int64_t want_id, uint64_t from_lsn, char replident, int ncols,
			  const manifest_column *cols);
extern const manifest_layout *tables_layout_at(const manifest *m, uint64_t lsn);
extern uint64_t tables_next_generation(archiver *a, const manifest *m);
extern bool tables_ddl_weak_at(const archiver *a, const arch_table *t, uint64_t lsn);
extern int tables_load(archiver *a, storage *st, uint32_t relid, const char *schema, const char *name, bool active,
		   arch_table **out, bs_error *err);
extern bool tables_rebase_pending(archiver *a, const arch_table *t);
extern void tables_unpublished_reason(archiver *a, const arch_table *t, strbuf *sb);
extern void tables_publication_finding(archiver *a, char state, const char *schema, const char *name,
			   const char *why_not, strbuf *sb);
extern void tables_report_skipped(const catalog_table *ct);
extern int tables_gone_position(PGconn *conn, uint32_t relid, bool *gone, uint64_t *pos, bs_error *err);
extern void tables_found_gone(archiver *a, arch_table *t, uint64_t pos, const char *when);
extern void tables_check_gone_passed(archiver *a);
extern int tables_check_publication(archiver *a, catalog_table_list *list, bool startup, bs_error *err);
extern uint64_t tables_unpublished_from(archiver *a, const arch_table *t);
extern bool tables_set_unpublished(arch_table *t, const catalog_table *ct, uint64_t from);
extern bool tables_put_back(archiver *a, arch_table *t, const catalog_table *found, bool startup);
extern void tables_check_membership_at_stop(archiver *a);
extern int tables_poll(archiver *a, bs_error *err);
extern bool tables_check_held(archiver *a);
extern int tables_find_gone(archiver *a, const catalog_table_list *list, bs_error *err);

/* checkpoint.c */
extern void checkpoint_answer(archiver *a, bool force_fail, const char *why);
extern void checkpoint_request(struct evhttp_request *req, void *arg);
extern void checkpoint_position(archiver *a);
extern void checkpoint_queried(archiver *a);
extern void checkpoint_stop_querier(archiver *a);

/* api.c */
typedef struct api_route
{
	const char *path;
	int method;					/* enum evhttp_cmd_type the route needs (0: any) */
	control_handler handler;	/* runs on the loop, with the lock held */
} api_route;

/* The route of a request: 0 with *route set, else the HTTP status to answer (404, 405). */
extern int api_route_for(const char *path, int method, const api_route **route);
extern void api_dispatch(struct evhttp_request *req, void *arg);

#endif
