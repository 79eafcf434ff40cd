/* archiver.c — the continuous archiver daemon: replication stream -> per-table segments in storage. */
#include "autoconf.h"
#include "clock.h"
#include "archiver.h"
#include "audit.h"
#include "basecopy.h"
#include "catalog.h"
#include "codec.h"
#include "control.h"
#include "drillstate.h"
#include "expire.h"
#include "ddl.h"
#include "ident.h"
#include "lease.h"
#include "log.h"
#include "lsn.h"
#include "manifest.h"
#include "manifest_head.h"
#include "manifest_json.h"
#include "manifest_keys.h"
#include "manifest_store.h"
#include "object.h"
#include "pgoutput.h"
#include "pgsql.h"
#include "replmsg.h"
#include "segment.h"
#include "spill.h"
#include "storage.h"
#include "storage_config.h"
#include "storage_crypt.h"
#include "storage_local.h"
#include "strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define SPOOL_COMPLETE "COMPLETE"
/* Spill files live in this directory of the spool (key prefix "spill/"): not an epoch. */
#define SPILL_DIR "spill"
/* A spilled segment's records are appended to its file in pieces of about this size. */
#define SPILL_WRITE_BUFFER ((size_t) 1024 * 1024)

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
	uint64_t rewrite_lsn;		/* commit LSN of the transaction in which a table_rewrite was read */
	uint32_t layout_id;			/* layout of the changes being received */
	char *verified_key;			/* newest object re-read and checked by this process */
	bool dirty;					/* manifest changed in memory; the uploader stores it */
	bool base_unstored;			/* a new base is in man, not yet in a stored manifest */
	/*
	 * Found dropped: the server's WAL insert position when the catalog no longer had the
	 * table (0: not found dropped).  The DROP committed before it, so every change of the
	 * table is in the stream before it; the table stays active (its changes are kept) until
	 * everything before it is stored, and only then is it marked dropped (store_head).
	 */
	uint64_t gone_lsn;
	bool gone_passed;			/* the stream has passed gone_lsn (the seal that stores it is asked for) */
	uint64_t drop_lsn;			/* the DROP's commit LSN read from the stream (0: not read) */
	bool partitioned;			/* a partitioned table (skipped: its partitions are archived) */
	/* The base copy that answered a column change's re-base request (manifest
	 * rebase_requested_at): points below it are refused, so checkpoints wait for the stream to
	 * pass it. */
	uint64_t rebase_done_lsn;
	/* Not in the publication the slot streams (check_publication): no base copy, no
	 * checkpoint, and an archived table's archive ends (an open gap) until it is back. */
	bool unpublished;
	uint64_t pub_seen_lsn;		/* seen published by a check that started after this position */
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
	struct checkpoint_req *next;
} checkpoint_req;

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
	 * keeper renews it, fence() checks it before manifests and segments are written. */
	lease_holding hold;			/* the archive's lease (one writer per archive) */

	/* Retention (--expire-interval): the uploader's next pass (monotonic ms, 0: not scheduled). */
	int64_t expire_next_ms;

	/* At most one base-copy job at a time, run by base_thread (see start_base_job). */
	base_job *bjob;
	int64_t	test_lock_key;		/* basecopy_options.test_lock_key, read once at start */
	int64_t	test_snapshot_lock_key;	/* basecopy_options.test_snapshot_lock_key, likewise */
	int64_t	test_check_lock_key;	/* BACKSTOP_TEST_TABLE_CHECK_LOCK (table_check_held) */
	pthread_t base_thread;
} archiver;

static void
archiver_fail(archiver *a, const bs_error *err)
{
	if (!a->fatal)
	{
		a->fatal = true;
		a->fatal_err = *err;
	}
	event_base_loopbreak(a->evbase);
}

/* ---------- the archive's lease ---------- */

/*
 * Before writing manifests, segments or the head: is the archive's lease still ours?  A
 * lost lease fails with ERRCODE_LOCK_NOT_AVAILABLE, which stops the archiver.  Without
 * conditional writes a takeover can still land between this check and the write that
 * follows it (doc/archiving.md, "One writer per archive").
 */
static int
fence(archiver *a, bs_error *err)
{
	return lease_hold_check(a->st, &a->hold, err);
}

/* Start-up, before anything is written: take the lease and start its heartbeat (renewed
 * every third of lease_timeout, at least 1 s by config_ranges). */
static int
take_lease(archiver *a, bs_error *err)
{
	if (lease_hold(a->st, config_get(a->cfg, "slot"),
				   config_get_duration_ms(a->cfg, "lease_timeout"), config_get_bool(a->cfg, "take_over"),
				   a->head.lease_token, false, &a->hold, err) != BS_OK)
		return BS_ERR;
	/* Written with every head: a deleted lease.json never lets tokens go backwards. */
	a->head.lease_token = a->hold.lease.token;
	return BS_OK;
}

/* The end (single-threaded): stop the heartbeat, and give the lease up if it is still ours. */
static void
release_lease(archiver *a)
{
	lease_let_go(a->st, &a->hold, false);
}

/* ---------- tables ---------- */

static arch_table *
find_table(archiver *a, uint32_t relid)
{
	for (int i = 0; i < a->ntables; i++)
		if (a->tables[i]->relid == relid)
			return a->tables[i];
	return NULL;
}

/*
 * Add a layout valid from from_lsn, keeping the list sorted by LSN: a Relation message of a
 * transaction sent again after a restart, or a base copy taken ahead of the stream, can
 * describe a layout older than the newest one.  want_id keeps an id already used by
 * spooled segments (-1: a new id).  Returns the layout's id.
 */
static uint32_t
insert_layout(manifest *m, int64_t want_id, uint64_t from_lsn, char replident, int ncols,
			  const manifest_column *cols)
{
	return manifest_insert_layout(m, want_id, from_lsn, replident, ncols, cols)->id;
}

/* The layout in effect for a transaction committing at lsn. */
static const manifest_layout *
layout_at(const manifest *m, uint64_t lsn)
{
	const manifest_layout *found = NULL;

	for (int i = 0; i < m->nlayouts; i++)
		if (m->layouts[i].from_lsn <= lsn)
			found = &m->layouts[i];
	return found ? found : (m->nlayouts ? &m->layouts[0] : NULL);
}

static arch_table *
add_table(archiver *a, manifest *m, bool active)
{
	arch_table *t = xcalloc(1, sizeof(arch_table));

	t->relid = m->relid;
	t->man = m;
	t->active = active;
	t->layout_id = m->nlayouts ? m->layouts[m->nlayouts - 1].id : 0;
	a->tables = xrealloc(a->tables, (size_t) (a->ntables + 1) * sizeof(arch_table *));
	a->tables[a->ntables++] = t;
	return t;
}

/*
 * A manifest as loaded (NULL: absent) against head.json's record of it: never archive on top
 * of an older copy put back or of a deleted manifest, which would write the damage over the
 * evidence of it (doc/FORMAT.md, "Generations").
 */
static int
check_generation(archiver *a, uint32_t relid, const manifest *m, bs_error *err)
{
	const archive_head_table *rec = archive_head_find_table(&a->head, relid);

	if (rec == NULL || (m && m->generation >= rec->generation))
		return BS_OK;
	if (m == NULL)
		return error_set(err, ERRCODE_DATA_CORRUPTED,
						 "the manifest of %s.%s (tables/%" PRIu32 "/manifest.json) is missing from %s, but head.json "
						 "records generation %" PRIu64 " of it: it was deleted; refusing to archive on top of the "
						 "damage (restore the manifest, or archive to a new storage location)",
						 rec->schema, rec->name, relid, storage_describe(a->st), rec->generation);
	return error_set(err, ERRCODE_DATA_CORRUPTED,
					 "the manifest of %s.%s (tables/%" PRIu32 "/manifest.json) in %s is generation %" PRIu64
					 ", but head.json records generation %" PRIu64 ": it was replaced by an older copy (rolled back); "
					 "refusing to archive on top of the damage (restore the newer manifest, or archive to a new "
					 "storage location)",
					 m->schema, m->name, relid, storage_describe(a->st), m->generation, rec->generation);
}

/* The generation of a manifest's next store: above what it and head.json have seen. */
static uint64_t
next_generation(archiver *a, const manifest *m)
{
	const archive_head_table *rec = archive_head_find_table(&a->head, m->relid);
	uint64_t g = m->generation;

	if (rec && rec->generation > g)
		g = rec->generation;
	return g + 1;
}

/* Start-up (single-threaded): store a manifest now, with its next generation. */
static int
store_manifest_now(archiver *a, manifest *m, bs_error *err)
{
	m->generation = next_generation(a, m);
	if (fence(a, err) != BS_OK || manifest_store(a->st, m, err) != BS_OK)
		return BS_ERR;
	archive_head_note_table(&a->head, m->relid, m->generation, m->schema, m->name);
	return BS_OK;
}

/*
 * A head written before format 2 records no manifest: record every manifest as it is now
 * (generation 0 for format 1), so that the first head written from here on covers tables
 * this run never touches too (dropped ones, for instance).
 */
static int
record_manifests(archiver *a, bs_error *err)
{
	uint32_t *relids = NULL;
	int n = 0;
	int rc = BS_OK;

	if (manifest_list_relids(a->st, &relids, &n, err) != BS_OK)
		return BS_ERR;
	for (int i = 0; i < n && rc == BS_OK; i++)
	{
		manifest *m = NULL;
		bool exists = false;

		rc = manifest_load(a->st, relids[i], &m, &exists, err);
		if (rc == BS_OK && exists)
			archive_head_note_table(&a->head, m->relid, m->generation, m->schema, m->name);
		manifest_free(m);
	}
	free(relids);
	return rc;
}

/*
 * The newest position the manifest shows using the layout in effect where the stream resumes
 * (archived_to): that layout's start, the newest base's LSN when the base has it and the
 * stream has passed it (a base taken ahead of the stream says nothing of the changes before
 * it), the first commit of the newest segment (its later commits are not in the manifest: a
 * lower bound is what is safe).
 */
static uint64_t
layout_seen_at_load(const manifest *m)
{
	const manifest_layout *l = layout_at(m, m->archived_to);
	uint64_t seen;

	if (l == NULL)
		return 0;
	seen = l->from_lsn;
	for (int i = 0; i < m->nbases; i++)
		if (m->bases[i].layout_id == l->id && m->bases[i].lsn <= m->archived_to && m->bases[i].lsn > seen)
			seen = m->bases[i].lsn;
	if (m->nsegments && m->segments[m->nsegments - 1].first_lsn > seen)
		seen = m->segments[m->nsegments - 1].first_lsn;
	return seen;
}

/* Whether schema changes of the table are not captured in the stream at lsn (weak mode). */
static bool
ddl_weak_at(const archiver *a, const arch_table *t, uint64_t lsn)
{
	return !a->ddl_capture || t->man->ddl_capture_from == 0 || t->man->ddl_capture_from > lsn;
}

/* Load the table's manifest (or start a new one) and register it. */
static void ddl_note_capture(archiver *a, arch_table *t);

static int
load_table(archiver *a, storage *st, uint32_t relid, const char *schema, const char *name, bool active,
		   arch_table **out, bs_error *err)
{
	manifest *m = NULL;
	bool exists = false;
	arch_table *t = find_table(a, relid);

	if (t)
	{
		t->active = t->active || active;
		*out = t;
		return BS_OK;
	}
	if (manifest_load(st, relid, &m, &exists, err) != BS_OK ||
		check_generation(a, relid, exists ? m : NULL, err) != BS_OK)
	{
		manifest_free(m);
		return BS_ERR;
	}
	if (!exists)
		m = manifest_new(relid, schema ? schema : "?", name ? name : "?");
	else if (schema && name && (strcmp(m->schema, schema) != 0 || strcmp(m->name, name) != 0) &&
			 !(a->ddl_capture && m->ddl_capture_from))
	{
		/* Renamed while schema changes were not captured: the name history records it from
		 * the archive's end, the nearest position known (captured, the stream brings it). */
		manifest_add_name(m, m->archived_to, schema, name);
	}
	*out = add_table(a, m, active);
	ddl_note_capture(a, *out);
	/* A re-base a column change asked for before a stop: taken at the first table check. */
	if (m->rebase_requested_at != 0 || manifest_open_schema_gap(m) != NULL)
		(*out)->rebase_wanted = true;
	(*out)->layout_seen = layout_seen_at_load(m);
	return BS_OK;
}

static uint64_t
table_base_bytes(const manifest *m)
{
	uint64_t n = 0;

	if (m->nbases == 0)
		return 0;
	for (int i = 0; i < m->bases[m->nbases - 1].nchunks; i++)
		n += m->bases[m->nbases - 1].chunks[i].raw_size;
	return n;
}

/* ---------- spool and upload ---------- */

static bool spool_epoch_of(const char *key, uint64_t *seal_lsn);

/* Bytes of sealed epochs in the spool (open spill files are counted as open bytes). */
static int
count_spool_bytes(void *ctx, const char *key, uint64_t size, bs_error *err)
{
	uint64_t seal;

	(void) err;
	if (spool_epoch_of(key, &seal))
		*(uint64_t *) ctx += size;
	return BS_OK;
}

/* Lock as the uploader: tell the main loop, which holds the lock while it works, to yield. */
static void
uploader_lock(archiver *a)
{
	__atomic_store_n(&a->uploader_waiting, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&a->lock);
	__atomic_store_n(&a->uploader_waiting, 0, __ATOMIC_RELAXED);
}

/* The part of a job just spooled that has this spool key (NULL: only in the spool). */
static const seal_part *
job_part(const seal_job *jobs, const char *spool_key)
{
	for (const seal_job *j = jobs; j; j = j->next)
		for (int i = 0; i < j->nparts; i++)
			if (strcmp(j->parts[i].spool_key, spool_key) == 0)
				return &j->parts[i];
	return NULL;
}

/* Streaming upload of a spooled segment: summarized and compressed as it is read. */
typedef struct upload_stream
{
	object_writer *w;
	segment_scan scan;
} upload_stream;

static int
upload_stream_write(void *ctx, const void *data, size_t len, bs_error *err)
{
	upload_stream *u = ctx;

	if (segment_scan_feed(&u->scan, data, len, err) != BS_OK)
		return BS_ERR;
	return object_writer_write(u->w, data, len, err);
}

/*
 * Upload one spooled segment (idempotent: a segment the manifest lists is skipped).
 * Runs in the uploader (or at start-up); takes the lock only around in-memory steps.
 * mem: the part just spooled by this run; when its bytes are still in memory (not spilled)
 * they are compressed from there, which spares reading the spool file back.  Otherwise
 * (spilled, or NULL after a restart or a storage outage) the spool file is read in chunks
 * and compressed as it is read, so memory stays bounded whatever the segment's size.
 */
static int
upload_segment(archiver *a, const char *spool_key, const seal_part *mem, uint64_t seal_lsn, bool verify,
			   uint64_t *bytes, bs_error *err)
{
	const char *base = strrchr(spool_key, '/');
	unsigned int relid;
	char first_hex[17], end_hex[17];
	uint64_t first_lsn, end_lsn;
	arch_table *t;
	uint64_t len;
	segment_summary sum;
	manifest_segment seg;
	object_info info;
	char *key = NULL;
	bool listed = false;
	int rc = BS_ERR;

	base = base ? base + 1 : spool_key;
	if (sscanf(base, "%u-%16[0-9A-F]-%16[0-9A-F].seg", &relid, first_hex, end_hex) != 3 ||
		lsn_parse_key(first_hex, &first_lsn) != BS_OK || lsn_parse_key(end_hex, &end_lsn) != BS_OK)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "unexpected file in spool: \"%s\"", spool_key);
	key = manifest_segment_key(relid, first_lsn, end_lsn);
	uploader_lock(a);
	rc = load_table(a, a->st, relid, NULL, NULL, false, &t, err);
	for (int i = 0; rc == BS_OK && i < t->man->nsegments; i++)
		if (strcmp(t->man->segments[i].key, key) == 0)
			listed = true;
	pthread_mutex_unlock(&a->lock);
	if (rc != BS_OK || listed)
	{
		free(key);
		return rc;
	}
	rc = BS_ERR;
	if (mem && !mem->spilled)
	{
		len = mem->data.len;
		sum = mem->sum;
		if (object_put(a->st, key, a->codec, a->segment_level, mem->data.data, mem->data.len, &info, err) != BS_OK)
			goto out;
	}
	else
	{
		upload_stream u;

		segment_scan_init(&u.scan);
		if (object_writer_open(a->st, key, a->codec, a->segment_level, &u.w, err) != BS_OK)
			goto out;
		/* A segment that does not summarize (corrupt spool file) is never committed. */
		if (storage_get(a->spool, spool_key, 0, 0, upload_stream_write, &u, err) != BS_OK ||
			segment_scan_finish(&u.scan, &sum, err) != BS_OK)
		{
			object_writer_abort(u.w);
			goto out;
		}
		if (object_writer_commit(u.w, &info, err) != BS_OK)
			goto out;
		len = u.scan.offset;
	}
	memset(&seg, 0, sizeof(seg));
	seg.records = sum.records;
	seg.first_time = replmsg_pgtime_to_unix(sum.first_time);
	seg.last_time = replmsg_pgtime_to_unix(sum.last_time);
	if (verify && object_verify(a->st, key, info.stored_sha256, NULL, err) != BS_OK)
		goto out;
	seg.key = key;
	seg.first_lsn = first_lsn;
	seg.last_end_lsn = end_lsn;
	memcpy(seg.sha256, info.stored_sha256, sizeof(seg.sha256));
	seg.size = info.stored_size;
	seg.raw_size = info.raw_size;
	uploader_lock(a);
	if (verify)
	{
		free(t->verified_key);
		t->verified_key = xstrdup(key);
	}
	manifest_add_segment(t->man, &seg);
	if (seal_lsn > t->man->archived_to)
		t->man->archived_to = seal_lsn;
	t->change_bytes += len;
	/* Listed in memory; store_head stores the manifest once per batch, before the head. */
	t->dirty = true;
	pthread_mutex_unlock(&a->lock);
	*bytes += len;
	uploader_lock(a);
	a->metrics.segments_uploaded++;
	a->metrics.bytes_uploaded += info.stored_size;
	pthread_mutex_unlock(&a->lock);
	rc = BS_OK;
out:
	free(key);
	return rc;
}

/* Spool keys are "<16 hex digit seal LSN>/<file>": the epoch a key belongs to. */
static bool
spool_epoch_of(const char *key, uint64_t *seal_lsn)
{
	char epoch[17];

	if (strlen(key) < 18 || key[16] != '/')
		return false;
	memcpy(epoch, key, 16);
	epoch[16] = '\0';
	return lsn_parse_key(epoch, seal_lsn) == BS_OK;
}

/* Merge layouts written to the spool with an epoch into the in-memory manifests: a crash
 * may have lost the manifest that first described them. */
static int
merge_spooled_layouts(archiver *a, const char *spool_key, const seal_job *jobs, bs_error *err)
{
	strbuf raw = STRBUF_INIT;
	manifest *sm = NULL;
	arch_table *t;
	int rc = BS_ERR;
	uint64_t seal_lsn;
	unsigned int relid;
	const seal_job *j = jobs;

	/* Still in memory: the epoch was spooled by this run of the uploader. */
	if (spool_epoch_of(spool_key, &seal_lsn) && sscanf(spool_key + 17, "%u.layouts.json", &relid) == 1)
	{
		while (j && j->seal_lsn != seal_lsn)
			j = j->next;
		for (int i = 0; j && i < j->nparts; i++)
			if (j->parts[i].relid == relid && j->parts[i].layouts)
				strbuf_append(&raw, j->parts[i].layouts, strlen(j->parts[i].layouts));
	}
	if (raw.len == 0 && storage_get_all(a->spool, spool_key, &raw, err) != BS_OK)
		return BS_ERR;
	if (manifest_from_json(raw.data, raw.len, &sm, err) != BS_OK)
		goto out;
	uploader_lock(a);
	rc = load_table(a, a->st, sm->relid, sm->schema, sm->name, false, &t, err);
	for (int i = 0; rc == BS_OK && i < sm->nlayouts; i++)
	{
		if (manifest_layout_by_id(t->man, sm->layouts[i].id) == NULL)
		{
			insert_layout(t->man, sm->layouts[i].id, sm->layouts[i].from_lsn, sm->layouts[i].replident,
						  sm->layouts[i].ncols, sm->layouts[i].columns);
			t->dirty = true;
		}
	}
	pthread_mutex_unlock(&a->lock);
out:
	if (sm)
		manifest_free(sm);
	strbuf_free(&raw);
	return rc;
}

/* Store the manifests changed in memory (uploader, or start-up); fenced: the lease was
 * just checked. */
static int
store_dirty_manifests(archiver *a, bool fenced, bs_error *err)
{
	int rc = BS_OK;

	for (int i = 0; rc == BS_OK; i++)
	{
		uint32_t relid = 0;
		char *json = NULL;
		bool found = false;
		bool had_base = false;
		uint64_t generation = 0;

		uploader_lock(a);
		for (; i < a->ntables; i++)
		{
			if (a->tables[i]->dirty)
			{
				found = true;
				relid = a->tables[i]->relid;
				generation = a->tables[i]->man->generation = next_generation(a, a->tables[i]->man);
				json = manifest_serialize(a->tables[i]->man, err);
				a->tables[i]->dirty = false;
				had_base = a->tables[i]->base_unstored;
				a->tables[i]->base_unstored = false;
				break;
			}
		}
		pthread_mutex_unlock(&a->lock);
		if (!found)
			break;
		if (json != NULL && !fenced && fence(a, err) != BS_OK)
		{
			free(json);
			json = NULL;
		}
		fenced = true;
		if (json == NULL || manifest_store_json(a->st, relid, json, err) != BS_OK)
		{
			uploader_lock(a);
			a->tables[i]->dirty = true;
			a->tables[i]->base_unstored = a->tables[i]->base_unstored || had_base;
			pthread_mutex_unlock(&a->lock);
			rc = BS_ERR;
		}
		else
		{
			/* Stored: the next head records it (a retry stores a higher generation). */
			uploader_lock(a);
			archive_head_note_table(&a->head, relid, generation, a->tables[i]->man->schema,
									a->tables[i]->man->name);
			a->metrics.manifests_stored++;
			a->metrics.manifest_bytes += strlen(json);
			pthread_mutex_unlock(&a->lock);
		}
		free(json);
	}
	return rc;
}

/*
 * Mark dropped the tables found dropped whose changes are all in the manifests now (lock
 * held): everything committed before lsn is listed, and each such table's DROP committed
 * before its gone_lsn.  True when a manifest changed.
 */
static bool
finish_drops(archiver *a, uint64_t lsn)
{
	bool changed = false;

	for (int i = 0; i < a->ntables; i++)
	{
		arch_table *t = a->tables[i];
		manifest *m = t->man;
		char l1[LSN_BUFLEN], l2[LSN_BUFLEN];

		if (t->gone_lsn == 0 || !t->active || t->gone_lsn > lsn)
			continue;
		free(m->status);
		m->status = xstrdup("dropped");
		m->dropped_at_lsn = t->gone_lsn;
		if (t->drop_lsn && t->drop_lsn < t->gone_lsn)
			m->drop_lsn = t->drop_lsn;
		/* Every change of the table below gone_lsn is in the segments: there are no others. */
		if (m->archived_to < t->gone_lsn)
			m->archived_to = t->gone_lsn;
		t->active = false;
		t->dirty = true;
		changed = true;
		log_warning("table %s.%s was dropped (after %s, before %s); its archive is kept: "
					"recover --latest gives its last state", m->schema, m->name,
					lsn_format(manifest_dropped_after(m), l1), lsn_format(t->gone_lsn, l2));
	}
	return changed;
}

/* Write head.json at lsn (uploader, or start-up): every manifest is complete up to it. */
static int
store_head(archiver *a, uint64_t lsn, bs_error *err)
{
	char *json;

	uploader_lock(a);
	/* Callers guarantee that everything committed before lsn is listed in the manifests. */
	if (finish_drops(a, lsn) && lsn <= a->head_written_lsn)
	{
		pthread_mutex_unlock(&a->lock);
		return store_dirty_manifests(a, false, err);
	}
	if (lsn <= a->head_written_lsn)
	{
		pthread_mutex_unlock(&a->lock);
		return BS_OK;
	}
	/* Tables re-based ahead of the stream are complete once the stream passes their base. */
	for (int i = 0; i < a->ntables; i++)
	{
		manifest *m = a->tables[i]->man;

		if (a->tables[i]->active && m->nbases > 0 && m->archived_to < m->bases[m->nbases - 1].lsn &&
			m->bases[m->nbases - 1].lsn <= lsn)
		{
			m->archived_to = lsn;
			a->tables[i]->dirty = true;
		}
	}
	pthread_mutex_unlock(&a->lock);
	/* Manifests before the head: the head never claims more than they hold, and records the
	 * generations just stored. */
	if (fence(a, err) != BS_OK || store_dirty_manifests(a, true, err) != BS_OK)
		return BS_ERR;
	uploader_lock(a);
	a->head.flushed_lsn = lsn;
	a->head.time = clock_unix_us();
	json = archive_head_serialize(&a->head, err);
	pthread_mutex_unlock(&a->lock);
	if (json == NULL)
		return BS_ERR;
	if (archive_head_store_json(a->st, json, err) != BS_OK)
	{
		free(json);
		return BS_ERR;
	}
	free(json);
	uploader_lock(a);
	if (lsn > a->head_written_lsn)
		a->head_written_lsn = lsn;
	pthread_mutex_unlock(&a->lock);
	return BS_OK;
}

/* ---------- retention (--expire-interval) ---------- */

/*
 * The archiver's own expiry runs on the uploader thread, the one that stores manifests and
 * the head, under the archive's lease: its manifest changes go through the same path as every
 * other (in memory under the lock, stored by store_dirty_manifests), so they never race with
 * the archiver's own writes.  Objects are deleted once the manifests that stop listing them
 * and the head recording their generations are stored.
 */

/* Lock held: is a pass due? */
static bool
expire_due(archiver *a)
{
	int64_t iv = config_get_duration_ms(a->cfg, "expire_interval");

	if (iv <= 0 || (config_get(a->cfg, "keep_window") == NULL && config_get(a->cfg, "keep_bases") == NULL))
		return false;
	if (a->expire_next_ms == 0)
		a->expire_next_ms = clock_mono_ms() + iv;
	return clock_mono_ms() >= a->expire_next_ms;
}

/* Write head.json again at the position already written: it records the generations just
 * stored (uploader). */
static int
store_head_again(archiver *a, bs_error *err)
{
	char *json;
	int rc;

	uploader_lock(a);
	if (a->head_written_lsn == 0)
	{
		pthread_mutex_unlock(&a->lock);
		return BS_OK;			/* no head yet: the first one records them */
	}
	a->head.flushed_lsn = a->head_written_lsn;
	a->head.time = clock_unix_us();
	json = archive_head_serialize(&a->head, err);
	pthread_mutex_unlock(&a->lock);
	if (json == NULL)
		return BS_ERR;
	rc = fence(a, err) == BS_OK ? archive_head_store_json(a->st, json, err) : BS_ERR;
	free(json);
	return rc;
}

/* A relid directory's keys in a sorted listing of tables/: [*from, *to). */
static bool
next_table_dir(const storage_keys *l, int *from, int *to, uint32_t *relid)
{
	const char *rest;

	while (*from < l->count && manifest_key_relid(l->keys[*from], relid, &rest) != BS_OK)
		(*from)++;
	if (*from >= l->count)
		return false;
	*to = *from + 1;
	while (*to < l->count)
	{
		uint32_t r;

		if (manifest_key_relid(l->keys[*to], &r, &rest) != BS_OK || r != *relid)
			break;
		(*to)++;
	}
	return true;
}

static bool
dir_has_manifest(const storage_keys *l, int from, int to)
{
	for (int i = from; i < to; i++)
	{
		uint32_t r;
		const char *rest;

		if (manifest_key_relid(l->keys[i], &r, &rest) == BS_OK && strcmp(rest, "manifest.json") == 0)
			return true;
	}
	return false;
}

static void
append_keys(storage_keys *to, const storage_keys *from)
{
	for (int i = 0; i < from->count; i++)
		storage_collect_key(to, from->keys[i], 0, NULL);
}

/* Orphans of one table directory (uploader, no lock): against a copy of its manifest as it
 * is after this pass, or, without a manifest, the whole directory once old enough. */
static int
expire_dir_orphans(archiver *a, const storage_keys *l, int from, int to, const char *json, bool no_manifest,
				   int64_t age_s, storage_keys *doomed, bs_error *err)
{
	manifest *copy = NULL;
	storage_keys orphans = {0};
	int rc;

	if (json && manifest_from_json(json, strlen(json), &copy, err) != BS_OK)
		return BS_ERR;
	if (copy == NULL && !no_manifest)
		return BS_OK;
	rc = expire_orphans(a->st, copy, (const char *const *) l->keys + from, to - from, age_s,
						clock_unix_us() / 1000000, &orphans, err);
	if (rc == BS_OK)
		append_keys(doomed, &orphans);
	storage_keys_free(&orphans);
	manifest_free(copy);
	return rc;
}

/* One pass of retention over every table of the archive (uploader thread). */
static int
expire_pass(archiver *a, bs_error *err)
{
	storage_keys listing = {0};
	storage_keys doomed = {0};
	expire_policy policy;
	int64_t age_s;
	int64_t now_us = clock_unix_us();
	bool orphans;
	char **copies = NULL;		/* per listing position of a directory: its manifest after expiry */
	int from = 0,
		to;
	uint32_t relid;
	int removed = 0;
	int rc = BS_OK;

	if (storage_list(a->st, ARCHIVE_TABLES_PREFIX, storage_collect_key, &listing, err) != BS_OK)
		return error_prefix(err, "expire: could not list the archive");
	copies = xcalloc((size_t) listing.count + 1, sizeof(char *));
	uploader_lock(a);
	policy.keep_window_us = config_get(a->cfg, "keep_window") ? config_get_duration_ms(a->cfg, "keep_window") * 1000 : 0;
	policy.keep_bases = config_get(a->cfg, "keep_bases") ? config_get_int(a->cfg, "keep_bases") : 0;
	age_s = config_get_duration_ms(a->cfg, "orphan_age") / 1000;
	/* A base copy in progress uploads chunks no manifest lists yet: no orphans meanwhile. */
	orphans = a->bjob == NULL;
	for (from = 0; next_table_dir(&listing, &from, &to, &relid); from = to)
	{
		arch_table *t = find_table(a, relid);
		expire_plan plan;
		bs_error lerr;

		error_clear(&lerr);
		/* Tables this run does not archive (dropped ones) are expired too: load them. */
		if (t == NULL && dir_has_manifest(&listing, from, to) &&
			load_table(a, a->st, relid, NULL, NULL, false, &t, &lerr) != BS_OK)
		{
			log_warning("expire: table with relid %" PRIu32 " left alone: %s", relid, lerr.message);
			continue;
		}
		if (t == NULL)
			continue;
		expire_select(t->man, &policy, now_us, &plan);
		if (plan.changes)
		{
			char l1[LSN_BUFLEN];

			log_info("expire: %s.%s: removing %d base cop%s and %d segment(s); recoverable from %s", t->man->schema,
					 t->man->name, plan.nbases, plan.nbases == 1 ? "y" : "ies", plan.nsegments,
					 lsn_format(plan.keep_from, l1));
			expire_apply(t->man, &plan, now_us);
			t->dirty = true;
			append_keys(&doomed, &plan.keys);
		}
		expire_plan_free(&plan);
		if (orphans)
			copies[from] = manifest_to_json(t->man);
	}
	pthread_mutex_unlock(&a->lock);

	/* The manifests that stop listing them, then the head, then the objects. */
	rc = store_dirty_manifests(a, false, err);
	if (rc == BS_OK)
		rc = store_head_again(a, err);
	for (from = 0; rc == BS_OK && orphans && next_table_dir(&listing, &from, &to, &relid); from = to)
	{
		bool no_manifest;

		uploader_lock(a);
		no_manifest = copies[from] == NULL && find_table(a, relid) == NULL &&
			archive_head_find_table(&a->head, relid) == NULL && !dir_has_manifest(&listing, from, to);
		pthread_mutex_unlock(&a->lock);
		rc = expire_dir_orphans(a, &listing, from, to, copies[from], no_manifest, age_s, &doomed, err);
	}
	for (int i = 0; rc == BS_OK && i < doomed.count; i++)
	{
		if (storage_delete(a->st, doomed.keys[i], err) != BS_OK)
			rc = error_prefix(err, "expire: could not delete \"%s\" (the next pass removes it)", doomed.keys[i]);
		else
			removed++;
	}
	if (removed > 0)
		log_info("expire: %d object(s) removed", removed);
	for (int i = 0; i < listing.count; i++)
		free(copies[i]);
	free(copies);
	storage_keys_free(&listing);
	storage_keys_free(&doomed);
	return rc;
}

/* Remove an epoch's directory once its files are gone.  Only housekeeping: a failure is
 * logged, and the next start removes what is left. */
static void
remove_epoch_dir(archiver *a, uint64_t seal_lsn)
{
	char epoch[LSN_BUFLEN];
	bool removed;
	bs_error err;

	error_clear(&err);
	if (storage_local_remove_dir(a->spool, lsn_format_key(seal_lsn, epoch), &removed, &err) != BS_OK)
		log_warning("spool: %s", err.message);
}

/* Upload every complete spooled epoch in LSN order; flush advances epoch by epoch. */
static int
drain_spool(archiver *a, bool verify, const seal_job *jobs, bs_error *err)
{
	storage_keys keys = {0};
	int rc = BS_OK;
	int first = 0;

	if (storage_list(a->spool, "", storage_collect_key, &keys, err) != BS_OK)
		return BS_ERR;
	/*
	 * Complete epochs in LSN order, in batches: every segment of the batch is uploaded, then
	 * each touched manifest is stored once, then the head, and only then is the batch
	 * forgotten and confirmed.  After an outage the backlog drains in a few requests per
	 * batch instead of several per epoch.
	 */
	while (rc == BS_OK && first < keys.count)
	{
		uint64_t batch_seal = 0;
		uint64_t batch_bytes = 0;
		int batch_epochs = 0;
		int i;

		/* Segments of another writer's keys may not be overwritten either. */
		rc = fence(a, err);

		for (i = first; i < keys.count && rc == BS_OK; i++)
		{
			const char *k = keys.keys[i];
			uint64_t seal_lsn;

			if (!spool_epoch_of(k, &seal_lsn) || strcmp(k + 17, SPOOL_COMPLETE) != 0)
				continue;
			/* Layouts first, then segments. */
			for (int pass = 0; pass < 2 && rc == BS_OK; pass++)
			{
				for (int j = 0; j < keys.count && rc == BS_OK; j++)
				{
					const char *f = keys.keys[j];

					if (strncmp(f, k, 17) != 0 || strcmp(f + 17, SPOOL_COMPLETE) == 0)
						continue;
					if (pass == 0 && strstr(f, ".layouts.json"))
						rc = merge_spooled_layouts(a, f, jobs, err);
					else if (pass == 1 && strstr(f, ".seg"))
						rc = upload_segment(a, f, job_part(jobs, f), seal_lsn, verify, &batch_bytes, err);
				}
			}
			if (rc != BS_OK)
				break;
			batch_seal = seal_lsn;
			batch_epochs++;
			if (batch_epochs >= 256 || batch_bytes >= 256 * 1024 * 1024)
			{
				i++;
				break;
			}
		}
		if (batch_epochs == 0)
			break;
		/* Manifests (stored by store_head before the head itself), head, then forget. */
		if (rc == BS_OK)
			rc = store_head(a, batch_seal, err);
		/* Files first, the COMPLETE markers last: after a crash half-way, what is left of an
		 * epoch is already listed in the manifests and skipped on the next drain. */
		for (int pass = 0; pass < 2; pass++)
		{
			for (int j = 0; rc == BS_OK && j < keys.count; j++)
			{
				uint64_t lsn;

				if (spool_epoch_of(keys.keys[j], &lsn) && lsn <= batch_seal &&
					(strcmp(keys.keys[j] + 17, SPOOL_COMPLETE) == 0) == (pass == 1))
					rc = storage_delete(a->spool, keys.keys[j], err);
			}
		}
		if (rc == BS_OK)
		{
			/* The epochs' directories, now empty (thousands a day otherwise); before the flush
			 * moves, so that a checkpoint answered leaves none behind. */
			for (int j = 0; j < keys.count; j++)
			{
				uint64_t lsn;

				if (spool_epoch_of(keys.keys[j], &lsn) && lsn <= batch_seal &&
					strcmp(keys.keys[j] + 17, SPOOL_COMPLETE) == 0)
					remove_epoch_dir(a, lsn);
			}
			uploader_lock(a);
			if (batch_seal > a->flush_lsn)
				a->flush_lsn = batch_seal;
			pthread_mutex_unlock(&a->lock);
		}
		first = i;
	}
	storage_keys_free(&keys);
	{
		uint64_t spooled = 0;

		storage_list(a->spool, "", count_spool_bytes, &spooled, &(bs_error) {0});
		uploader_lock(a);
		a->metrics.spool_bytes = spooled;
		a->spool_pending = spooled > 0;
		pthread_mutex_unlock(&a->lock);
	}
	return rc;
}

/*
 * Remove the spill files left by an earlier run: segments that were never sealed, so never
 * confirmed to PostgreSQL, which sends their transactions again.
 */
static int
clean_spill(archiver *a, bs_error *err)
{
	storage_keys keys = {0};
	int rc = BS_OK;

	if (storage_list(a->spool, SPILL_DIR "/", storage_collect_key, &keys, err) != BS_OK)
		return BS_ERR;
	for (int i = 0; i < keys.count && rc == BS_OK; i++)
		rc = storage_delete(a->spool, keys.keys[i], err);
	if (rc == BS_OK && keys.count > 0)
		log_info("removed %d spill file%s of segments never sealed (their transactions are sent again)",
				 keys.count, keys.count == 1 ? "" : "s");
	storage_keys_free(&keys);
	return rc;
}

/* Remove epochs that never completed: their transactions were never confirmed. */
static int
clean_spool(archiver *a, uint64_t *max_seal, bs_error *err)
{
	storage_keys keys = {0};
	int rc = BS_OK;
	int ndirs = 0;

	*max_seal = 0;
	if (storage_list(a->spool, "", storage_collect_key, &keys, err) != BS_OK)
		return BS_ERR;
	for (int i = 0; i < keys.count && rc == BS_OK; i++)
	{
		char epoch[LSN_BUFLEN];
		char complete[64];
		bool found = false;
		uint64_t seal;

		if (!spool_epoch_of(keys.keys[i], &seal))
			continue;
		lsn_format_key(seal, epoch);
		snprintf(complete, sizeof(complete), "%s/%s", epoch, SPOOL_COMPLETE);
		for (int j = 0; j < keys.count; j++)
			if (strcmp(keys.keys[j], complete) == 0)
				found = true;
		if (!found)
		{
			log_warning("discarding incomplete spool epoch %s (never confirmed to PostgreSQL)", epoch);
			rc = storage_delete(a->spool, keys.keys[i], err);
		}
		else if (seal > *max_seal)
			*max_seal = seal;
	}
	storage_keys_free(&keys);
	/* Empty epoch directories: of the epochs just discarded, or left by an earlier run. */
	if (rc == BS_OK && storage_local_list_dirs(a->spool, storage_collect_key, &keys, err) != BS_OK)
		rc = BS_ERR;
	for (int i = 0; i < keys.count && rc == BS_OK; i++)
	{
		uint64_t seal;
		bool removed = false;

		if (strlen(keys.keys[i]) == 16 && lsn_parse_key(keys.keys[i], &seal) == BS_OK)
			rc = storage_local_remove_dir(a->spool, keys.keys[i], &removed, err);
		ndirs += removed;
	}
	if (ndirs > 0)
		log_info("removed %d empty spool epoch director%s", ndirs, ndirs == 1 ? "y" : "ies");
	storage_keys_free(&keys);
	return rc;
}

/*
 * Everything before lsn is durable or touched no archived table (seen while nothing was open
 * or pending).  The uploader writes head.json up to it and only then confirms it; requests
 * are throttled to one per half status interval unless a checkpoint waits.
 */
static void
idle_progress(archiver *a, uint64_t lsn, bool urgent)
{
	if (lsn > a->idle_lsn)
		a->idle_lsn = lsn;
	if (a->idle_lsn <= a->head_wanted || a->idle_lsn <= a->flush_lsn)
		return;
	if (!urgent && a->pending == NULL &&
		clock_mono_ms() - a->last_head_request_ms < config_get_duration_ms(a->cfg, "status_interval") / 2)
		return;
	a->head_wanted = a->idle_lsn;
	a->last_head_request_ms = clock_mono_ms();
	pthread_cond_signal(&a->wake);
}

static void
seal_job_free(seal_job *job)
{
	for (int i = 0; i < job->nparts; i++)
	{
		free(job->parts[i].spool_key);
		strbuf_free(&job->parts[i].data);
		/* Never adopted into the spool: not durable, nothing refers to it. */
		spill_discard(job->parts[i].spill);
		free(job->parts[i].layouts);
	}
	free(job->parts);
	free(job);
}

static void
free_jobs(seal_job *jobs)
{
	while (jobs)
	{
		seal_job *next = jobs->next;

		seal_job_free(jobs);
		jobs = next;
	}
}

/* Bytes of a table's open segment: its spill file, then what is still in memory. */
static inline uint64_t
open_len(const arch_table *t)
{
	return (t->spill ? spill_size(t->spill) : 0) + t->open.len;
}

/*
 * The spool must hold what it holds, what is sealed and queued, and what is open (spilled
 * or still to be spooled at the next seal), within spool_limit.
 */
static int
check_spool_room(archiver *a, bs_error *err)
{
	if ((int64_t) (a->metrics.spool_bytes + a->queued_bytes + a->open_bytes) <= a->spool_limit)
		return BS_OK;
	if (a->metrics.spool_bytes + a->queued_bytes == 0)
		return error_set(err, ERRCODE_DISK_FULL,
						 "the open transaction needs more than spool_limit (%lld bytes) in the spool: "
						 "raise spool_limit above the largest transaction (nothing confirmed to PostgreSQL is lost)",
						 (long long) a->spool_limit);
	return error_set(err, ERRCODE_DISK_FULL,
					 "spool would exceed spool_limit (%lld bytes) while storage is unavailable; "
					 "stopping before the disk fills (nothing confirmed to PostgreSQL is lost)",
					 (long long) a->spool_limit);
}

/* Write what a spilled segment holds in memory to its file (main thread, lock held). */
static int
spill_flush(archiver *a, arch_table *t, bs_error *err)
{
	if (t->open.len == 0)
		return BS_OK;
	if (check_spool_room(a, err) != BS_OK)
		return BS_ERR;
	if (spill_append(t->spill, t->open.data, t->open.len, err) != BS_OK)
		return error_prefix(err, "table %s.%s", t->man->schema, t->man->name);
	a->spilled_bytes += t->open.len;
	t->open.len = 0;
	t->open.data[0] = '\0';
	return BS_OK;
}

/* Move a table's open segment (header and records) from memory to a new spill file. */
static int
spill_table(archiver *a, arch_table *t, bs_error *err)
{
	char name[96];
	char lsnbuf[LSN_BUFLEN];
	spill_file *f;

	if (check_spool_room(a, err) != BS_OK)
		return BS_ERR;
	/* Not an epoch's name: the spill directory is not 16 hex digits, nor is ".open" ".seg". */
	snprintf(name, sizeof(name), "%u-%s-%" PRIu64 ".open", t->relid, lsn_format_key(t->sum.first_commit_lsn, lsnbuf),
			 ++a->spill_seq);
	if (spill_create(a->spill_dir, name, &f, err) != BS_OK)
		return error_prefix(err, "could not spill the open segment of table %s.%s", t->man->schema, t->man->name);
	if (spill_append(f, t->open.data, t->open.len, err) != BS_OK)
	{
		spill_discard(f);
		return error_prefix(err, "could not spill the open segment of table %s.%s", t->man->schema, t->man->name);
	}
	log_info("table %s.%s: open segment of %zu bytes spilled to %s (open_memory_limit)", t->man->schema,
			 t->man->name, t->open.len, spill_path(f));
	t->spill = f;
	a->spilled_bytes += t->open.len - SEGMENT_MAGIC_LEN;
	/* The memory goes back now; what comes next is buffered up to SPILL_WRITE_BUFFER. */
	strbuf_free(&t->open);
	a->metrics.spills++;
	return BS_OK;
}

/* Record bytes of a table's open segment that are in memory. */
static inline size_t
open_in_memory(const arch_table *t)
{
	if (t->spill)
		return t->open.len;
	return t->open_records > 0 ? t->open.len - SEGMENT_MAGIC_LEN : 0;
}

/*
 * The open segments in memory exceed open_memory_limit: move the largest out until they
 * fit, to a new spill file, or (already spilled) by writing out its buffer.
 */
static int
relieve_memory(archiver *a, bs_error *err)
{
	while (a->open_bytes - a->spilled_bytes > a->open_memory_limit)
	{
		arch_table *big = NULL;

		for (int i = 0; i < a->ntables; i++)
			if (big == NULL || open_in_memory(a->tables[i]) > open_in_memory(big))
				big = a->tables[i];
		if (big == NULL || open_in_memory(big) == 0)
			break;
		if ((big->spill ? spill_flush(a, big, err) : spill_table(a, big, err)) != BS_OK)
			return BS_ERR;
	}
	return BS_OK;
}

/*
 * Seal every open segment into one epoch at the last commit and hand it to the uploader
 * (main thread, lock held).  Nothing is confirmed until the uploader has stored it.
 */
static int
seal_epoch(archiver *a, bool verify, bs_error *err)
{
	uint64_t seal = a->last_commit_end;
	char sealhex[LSN_BUFLEN];
	char firsthex[LSN_BUFLEN], endhex[LSN_BUFLEN];
	seal_job *job;

	/* Never cut a transaction in two: its records get their end LSN only at its commit, and
	 * a segment holding half of one could never be listed.  The commit (segment_size) or
	 * the age timer seals once it is complete. */
	if (a->in_txn)
		return BS_OK;
	/* After a fatal error (e.g. a spill file that could not be cut back) nothing is sealed. */
	if (a->fatal)
		return BS_OK;
	a->open_since_ms = 0;
	if (a->open_bytes == 0)
	{
		/* Nothing open and nothing waiting: everything received is durable. */
		if (!a->spool_pending && a->jobs_head == NULL && !a->in_txn)
			idle_progress(a, a->last_commit_end, verify);
		return BS_OK;
	}
	if (check_spool_room(a, err) != BS_OK)
		return BS_ERR;
	/* Spilled segments go to the uploader as files: write out their tails first, so that
	 * nothing below can fail once segments start moving into the job. */
	for (int i = 0; i < a->ntables; i++)
		if (a->tables[i]->spill && spill_flush(a, a->tables[i], err) != BS_OK)
			return BS_ERR;
	lsn_format_key(seal, sealhex);
	job = xcalloc(1, sizeof(seal_job));
	job->seal_lsn = seal;
	job->verify = verify;
	job->parts = xcalloc((size_t) a->ntables, sizeof(seal_part));
	for (int i = 0; i < a->ntables; i++)
	{
		arch_table *t = a->tables[i];
		seal_part *part;
		strbuf key = STRBUF_INIT;

		if (t->open_records == 0)
			continue;
		part = &job->parts[job->nparts];
		/* Summary kept as records arrived: first commit LSN and last end LSN name the segment. */
		part->sum = t->sum;
		part->sum.records = t->open_records;
		if (t->spill)
		{
			part->spill = t->spill;
			part->spilled = true;
			part->size = spill_size(t->spill);
			t->spill = NULL;
		}
		else
		{
			/* The open buffer already starts with the header: hand it over as it is. */
			part->data = t->open;
			part->size = t->open.len;
			memset(&t->open, 0, sizeof(t->open));
		}
		strbuf_printf(&key, "%s/%u-%s-%s.seg", sealhex, t->relid,
					  lsn_format_key(part->sum.first_commit_lsn, firsthex),
					  lsn_format_key(part->sum.last_end_lsn, endhex));
		part->relid = t->relid;
		part->spool_key = strbuf_detach(&key, NULL);
		part->layouts = manifest_to_json(t->man);
		job->bytes += part->size;
		job->nparts++;
		t->open_records = 0;
		t->txn_start = 0;
		t->txn_records = 0;
		memset(&t->sum, 0, sizeof(t->sum));
	}
	a->open_bytes = 0;
	a->spilled_bytes = 0;
	a->metrics.seals++;
	a->queued_bytes += job->bytes;
	if (a->jobs_tail)
		a->jobs_tail->next = job;
	else
		a->jobs_head = job;
	a->jobs_tail = job;
	pthread_cond_signal(&a->wake);
	return BS_OK;
}

/*
 * Write one sealed epoch to the spool: segments and layouts, then the COMPLETE marker.  A
 * spilled segment's file is made durable and moved under its spool key, not copied.
 */
static int
spool_job(archiver *a, seal_job *job, bs_error *err)
{
	char sealhex[LSN_BUFLEN];
	char key[128];

	lsn_format_key(job->seal_lsn, sealhex);
	for (int i = 0; i < job->nparts; i++)
	{
		seal_part *part = &job->parts[i];

		if (part->spill)
		{
			if (storage_local_adopt(a->spool, part->spool_key, spill_path(part->spill), spill_fd(part->spill),
									err) != BS_OK)
				return error_prefix(err, "could not spool a sealed segment");
			spill_close(part->spill);
			part->spill = NULL;
		}
		else if (storage_put(a->spool, part->spool_key, part->data.data, part->data.len, err) != BS_OK)
			return error_prefix(err, "could not spool a sealed segment");
		snprintf(key, sizeof(key), "%s/%u.layouts.json", sealhex, part->relid);
		if (part->layouts && storage_put(a->spool, key, part->layouts, strlen(part->layouts), err) != BS_OK)
			return error_prefix(err, "could not spool a sealed segment");
	}
	snprintf(key, sizeof(key), "%s/%s", sealhex, SPOOL_COMPLETE);
	if (storage_put(a->spool, key, "", 0, err) != BS_OK)
		return error_prefix(err, "could not spool a sealed segment");
	return BS_OK;
}

static void
notify_main(archiver *a)
{
	char c = 1;

	/* A full pipe already carries a wake-up. */
	if (write(a->notify_pipe[1], &c, 1) < 0 && errno != EAGAIN)
		log_warning("could not wake the main loop: %s", strerror(errno));
}

/* The uploader thread: spool, upload, manifests, head; retries with backoff. */
static void *
uploader_main(void *arg)
{
	archiver *a = arg;
	int64_t delay_ms = 1000;
	int64_t retry_at = 0;

	uploader_lock(a);
	for (;;)
	{
		seal_job *jobs = a->jobs_head;
		bool verify = false;
		bool dirty = false;
		uint64_t head_wanted = a->head_wanted;
		bs_error err;
		int rc = BS_OK;

		bool may_upload;

		if (a->retry_now)
		{
			a->retry_now = false;
			retry_at = 0;
		}
		may_upload = clock_mono_ms() >= retry_at;

		for (int i = 0; i < a->ntables; i++)
			dirty = dirty || a->tables[i]->dirty;
		/* Retention between uploads (not during a storage back-off); sealed epochs wait
		 * for it in the queue, so that a busy stream does not starve it. */
		if (may_upload && !a->uploader_stop && expire_due(a))
		{
			a->expire_next_ms = clock_mono_ms() + config_get_duration_ms(a->cfg, "expire_interval");
			pthread_mutex_unlock(&a->lock);
			error_clear(&err);
			rc = expire_pass(a, &err);
			uploader_lock(a);
			if (rc != BS_OK && strcmp(err.code, ERRCODE_LOCK_NOT_AVAILABLE) == 0)
			{
				a->uploader_failed = true;
				a->uploader_err = err;
				notify_main(a);
				break;
			}
			if (rc != BS_OK)
				log_warning("%s", err.message);
			continue;
		}
		if (jobs == NULL &&
			!(may_upload && (a->spool_pending || dirty || head_wanted > a->head_written_lsn)))
		{
			struct timespec ts;

			if (a->uploader_stop)
				break;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 200 * 1000000L;
			if (ts.tv_nsec >= 1000000000L)
			{
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&a->wake, &a->lock, &ts);
			continue;
		}
		a->jobs_head = a->jobs_tail = NULL;
		pthread_mutex_unlock(&a->lock);
		error_clear(&err);

		/* A sealed epoch that cannot be made durable locally is fatal: later epochs must
		 * never be confirmed past it. */
		for (seal_job *j = jobs; j; j = j->next)
		{
			if (rc == BS_OK)
				rc = spool_job(a, j, &err);
			verify = verify || j->verify;
		}
		uploader_lock(a);
		for (seal_job *j = jobs; j; j = j->next)
		{
			a->queued_bytes -= j->bytes;
			if (rc == BS_OK)
				a->metrics.spool_bytes += j->bytes;
		}
		if (rc != BS_OK)
		{
			a->uploader_failed = true;
			a->uploader_err = err;
			notify_main(a);
			free_jobs(jobs);
			break;
		}
		if (jobs)
			a->spool_pending = true;
		if (clock_mono_ms() < retry_at)
		{
			free_jobs(jobs);
			continue;			/* spooled; storage is still in its back-off */
		}
		pthread_mutex_unlock(&a->lock);

		/* The spooled epochs are uploaded from memory (the spool files are what survives a
		 * crash); whatever the spool held before is read back from it. */
		if (a->spool_pending)
			rc = drain_spool(a, verify, jobs, &err);
		free_jobs(jobs);
		if (rc == BS_OK)
			rc = store_dirty_manifests(a, false, &err);
		/* Idle progress (nothing was pending when it was seen) is confirmed only once the
		 * head says so: the confirmed position never passes head.json. */
		uploader_lock(a);
		head_wanted = a->spool_pending ? 0 : a->head_wanted;
		pthread_mutex_unlock(&a->lock);
		if (rc == BS_OK && head_wanted > 0)
			rc = store_head(a, head_wanted, &err);

		uploader_lock(a);
		if (rc == BS_OK && head_wanted > a->flush_lsn)
			a->flush_lsn = head_wanted;
		if (rc != BS_OK && strcmp(err.code, ERRCODE_LOCK_NOT_AVAILABLE) == 0)
		{
			/* Another writer holds the archive: stop writing at once. */
			a->uploader_failed = true;
			a->uploader_err = err;
			notify_main(a);
			break;
		}
		if (rc != BS_OK)
		{
			a->metrics.upload_errors++;
			log_warning("storage unavailable, %llu bytes spooled (retrying in %lld ms): %s",
						(unsigned long long) a->metrics.spool_bytes, (long long) delay_ms, err.message);
			retry_at = clock_mono_ms() + delay_ms;
			delay_ms = delay_ms * 2 > 10000 ? 10000 : delay_ms * 2;
		}
		else
		{
			delay_ms = 1000;
			retry_at = 0;
		}
		notify_main(a);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

/* ---------- replication stream ---------- */

static int
send_status(archiver *a, bool reply_requested, bs_error *err)
{
	uint8_t buf[REPLMSG_STATUS_LEN];
	size_t n;

	if (a->repl == NULL)
		return BS_OK;
	n = replmsg_build_status(buf, a->received_lsn, a->flush_lsn, a->flush_lsn, replmsg_now_pgtime(),
							 reply_requested);
	if (PQputCopyData(a->repl, (const char *) buf, (int) n) <= 0 || PQflush(a->repl) < 0)
		return pgsql_set_error(err, a->repl, NULL, "could not send a status update");
	a->last_status_ms = clock_mono_ms();
	a->last_sent_flush = a->flush_lsn;
	return BS_OK;
}

/*
 * The control connection (catalog queries, checkpoints' WAL position).  libpq notices that it
 * was lost (PostgreSQL restarted) only when a query on it fails: callers make it again and
 * retry once rather than fail the first request after a restart.  A new connection, not
 * PQreset, so that the session's pinned text format is set again.
 */
static int
reconnect_conn(archiver *a, bs_error *err)
{
	PGconn *c;

	if (pgsql_connect(config_get(a->cfg, "db"), false, "backstop archive", &c, err) != BS_OK)
		return BS_ERR;
	PQfinish(a->conn);
	a->conn = c;
	log_info("reconnected to PostgreSQL (control connection)");
	return BS_OK;
}

/* After a failed query: true when the connection had been lost and a new one is made, so
 * the query may be tried once more.  When it cannot be made, err says why. */
static bool
conn_recovered(archiver *a, bs_error *err)
{
	if (PQstatus(a->conn) == CONNECTION_OK)
		return false;
	return reconnect_conn(a, err) == BS_OK;
}

/* A column of the new layout that an older one had with another type (ALTER COLUMN ... TYPE):
 * rows from before cannot be converted exactly at recovery; only a new base copy helps. */
static bool
layout_retyped(const manifest_layout *cur, int ncols, const manifest_column *cols)
{
	if (cur == NULL)
		return false;
	for (int i = 0; i < ncols; i++)
		for (int k = 0; k < cur->ncols; k++)
			if (strcmp(cols[i].name, cur->columns[k].name) == 0 &&
				(cols[i].type_oid != cur->columns[k].type_oid || cols[i].typmod != cur->columns[k].typmod))
				return true;
	return false;
}

/*
 * Mark the columns of a new layout that the layout in effect before this transaction lacked and
 * whose old rows got values the stream never carried (a volatile default: the table was
 * rewritten, PostgreSQL stored no missing value).  rewritten: a table_rewrite of the table was
 * read in this transaction (capture); otherwise the catalog tells, erring toward marking.
 * Recovery refuses points that would need those values until a newer base copy.
 */
static int
mark_unknown_columns(archiver *a, arch_table *t, bool rewritten, int ncols, manifest_column *cols, bs_error *err)
{
	const manifest_layout *prev = a->txn_final_lsn > 0 ? layout_at(t->man, a->txn_final_lsn - 1) : NULL;
	char l[LSN_BUFLEN];

	if (prev == NULL)
		return BS_OK;			/* no rows before: the first base copy holds them all */
	for (int c = 0; c < ncols; c++)
	{
		bool had = false;
		bool unknown = rewritten;

		for (int k = 0; k < prev->ncols && !had; k++)
			had = strcmp(cols[c].name, prev->columns[k].name) == 0;
		if (had)
			continue;
		if (!unknown &&
			catalog_column_values_unknown(a->conn, t->relid, cols[c].name, &unknown, err) != BS_OK &&
			(!conn_recovered(a, err) ||
			 catalog_column_values_unknown(a->conn, t->relid, cols[c].name, &unknown, err) != BS_OK))
			return BS_ERR;
		if (!unknown)
			continue;
		cols[c].missing_unknown = true;
		log_info("table %s.%s: column \"%s\" added at %s got a value per existing row (a volatile default) that "
				 "the stream does not carry: recovery points from there are refused until a new base copy",
				 t->man->schema, t->man->name, cols[c].name, lsn_format(a->txn_final_lsn, l));
	}
	return BS_OK;
}

/*
 * A column change at the current transaction needs a new base copy: asked for now (the next
 * table check takes it) and recorded in the manifest, which is stored with its changes before
 * their position is confirmed, so that a restart takes the copy at once instead of forgetting
 * it.  Points from here until that copy are refused by recovery where the rows from before
 * cannot be made exact: a retyped column whose text form changes (replay), a column added with
 * a volatile default (marked missing_unknown, refused by the recovery plan), an uncaptured
 * schema change (a schema gap).  Other points (ADD COLUMN with a constant default: its missing
 * value) recover exactly from the older copy; info shows the window.
 */
static void
request_rebase(archiver *a, arch_table *t)
{
	char l[LSN_BUFLEN];

	t->rebase_wanted = true;
	if (t->man->rebase_requested_at != 0 && t->man->rebase_requested_at <= a->txn_final_lsn)
		return;
	t->man->rebase_requested_at = a->txn_final_lsn;
	t->dirty = true;
	log_info("table %s.%s: a column change at %s needs a new base copy; recovery points from there until it "
			 "is taken are refused", t->man->schema, t->man->name, lsn_format(a->txn_final_lsn, l));
}

/*
 * A base copy taken ahead of the stream with other columns recorded a window up to its LSN
 * (base_weak_change_from); a transaction before the copy shows those columns (its layout is
 * the copy's, now in effect from here): the change came before it, so the window ends here.
 */
static void
schema_gap_end_at(arch_table *t, uint64_t lsn)
{
	manifest *m = t->man;
	char l1[LSN_BUFLEN],
		l2[LSN_BUFLEN];

	for (int i = 0; i < m->nschema_gaps; i++)
	{
		manifest_gap *g = &m->schema_gaps[i];

		if (g->from >= lsn || lsn >= g->to || g->to == MANIFEST_GAP_OPEN)
			continue;
		for (int b = 0; b < m->nbases; b++)
			if (m->bases[b].lsn == g->to && m->bases[b].layout_id == t->layout_id)
			{
				log_info("table %s.%s: the columns of its base copy at %s are in use from %s on: the window of "
						 "their unknown change ends there", m->schema, m->name, lsn_format(g->to, l1),
						 lsn_format(lsn, l2));
				g->to = lsn;
				t->dirty = true;
				return;
			}
	}
}

/* The newest of from and the LSNs of the base copies with layout id at or before lsn: the
 * newest position known to use those columns, as far as the bases show. */
static uint64_t
newest_base_with_layout(const manifest *m, uint32_t id, uint64_t lsn, uint64_t from)
{
	for (int b = 0; b < m->nbases; b++)
		if (m->bases[b].layout_id == id && m->bases[b].lsn <= lsn && m->bases[b].lsn > from)
			from = m->bases[b].lsn;
	return from;
}

static int
handle_relation(archiver *a, const pgo_relation *rel, bs_error *err)
{
	arch_table *t;
	manifest_column *cols;
	const manifest_layout *cur;
	int i;

	for (i = 0; i < a->nrelcache; i++)
		if (a->relcache[i].relid == rel->relid)
			break;
	if (i == a->nrelcache)
	{
		a->relcache = xrealloc(a->relcache, (size_t) (a->nrelcache + 1) * sizeof(pgo_relation));
		a->nrelcache++;
	}
	else
		pgo_relation_free(&a->relcache[i]);
	pgo_relation_copy(&a->relcache[i], rel);

	t = find_table(a, rel->relid);
	if (t == NULL || !t->active)
		return BS_OK;
	cols = xcalloc((size_t) rel->ncols, sizeof(manifest_column));
	for (i = 0; i < rel->ncols; i++)
	{
		cols[i].name = xstrdup(rel->columns[i].name);
		cols[i].type_oid = rel->columns[i].type_oid;
		cols[i].typmod = rel->columns[i].typmod;
		cols[i].key = (rel->columns[i].flags & PGO_COLUMN_KEY) != 0;
	}
	cur = layout_at(t->man, a->txn_final_lsn);
	if (cur && cur->replident == rel->replident &&
		manifest_columns_equal(cur->ncols, cur->columns, rel->ncols, cols))
		t->layout_id = cur->id;
	else
	{
		char lsnbuf[LSN_BUFLEN];
		/* No layout yet: the table's first base copy is still to come (it checks for columns
		 * added after it, see apply_base). */
		bool added = cur != NULL && rel->ncols > cur->ncols;
		uint32_t id;
		bs_error e2;

		if (catalog_describe_columns(a->conn, rel->relid, rel->ncols, cols, err) != BS_OK &&
			(!conn_recovered(a, err) || catalog_describe_columns(a->conn, rel->relid, rel->ncols, cols, err) != BS_OK))
		{
			manifest_columns_free(rel->ncols, cols);
			return BS_ERR;
		}
		/* Before the layout is added: that may move the layouts, and cur with them. */
		bool retyped = layout_retyped(cur, rel->ncols, cols);
		int names_added = 0;

		if (cur != NULL &&
			mark_unknown_columns(a, t, t->rewrite_lsn == a->txn_final_lsn, rel->ncols, cols, err) != BS_OK)
		{
			manifest_columns_free(rel->ncols, cols);
			return BS_ERR;
		}

		if (cur != NULL)
			for (int c = 0; c < rel->ncols; c++)
			{
				bool had = false;

				for (int k = 0; k < cur->ncols && !had; k++)
					had = strcmp(cols[c].name, cur->columns[k].name) == 0;
				names_added += !had;
			}
		/*
		 * Not captured in the stream: the change committed somewhere after the newest position
		 * known to use the old layout and at or before this transaction.  Points in between
		 * are refused (recovery cannot tell which layout they had).
		 */
		if (cur != NULL && ddl_weak_at(a, t, a->txn_final_lsn))
		{
			/* A base copy with the old columns at or before this transaction shows them there. */
			uint64_t from = newest_base_with_layout(t->man, cur->id, a->txn_final_lsn, t->layout_seen);
			char s1[LSN_BUFLEN];

			if (from < a->txn_final_lsn)
			{
				manifest_add_schema_gap(t->man, from, a->txn_final_lsn);
				t->dirty = true;
				log_info("table %s.%s: its columns changed at an unknown point between %s and %s (schema changes "
						 "are not captured): recovery points in between are refused", t->man->schema, t->man->name,
						 lsn_format(from, s1), lsn_format(a->txn_final_lsn, lsnbuf));
			}
		}
		/* The columns the table check expects to have been added since it last looked. */
		if (t->natts_seen > 0)
			t->natts_seen += names_added;

		/* Valid from this transaction on (the Relation message precedes its first change).
		 * Where a layout cannot be placed without putting ids out of LSN order (a base taken
		 * ahead of the stream), it is inserted in order as before. */
		error_clear(&e2);
		if (manifest_use_layout(t->man, a->txn_final_lsn, rel->replident, rel->ncols, cols, &id, &e2) == BS_OK)
			t->layout_id = id;
		else
			t->layout_id = insert_layout(t->man, -1, a->txn_final_lsn, rel->replident, rel->ncols, cols);
		log_info("table %s.%s: new column layout %u from %s", t->man->schema, t->man->name,
				 t->layout_id, lsn_format(a->txn_final_lsn, lsnbuf));
		if (ddl_weak_at(a, t, a->txn_final_lsn))
			schema_gap_end_at(t, a->txn_final_lsn);
		if (a->txn_final_lsn > t->layout_seen)
			t->layout_seen = a->txn_final_lsn;
		/* Rows that predate an added column may hold a volatile default: a new base makes
		 * points after this change exact without guessing. */
		cur = NULL;
		if (added || retyped)
			request_rebase(a, t);
	}
	manifest_columns_free(rel->ncols, cols);
	return BS_OK;
}

static int
append_record(archiver *a, arch_table *t, segment_record *r, bs_error *err)
{
	size_t before;

	if (t->open.len == 0 && t->spill == NULL)
	{
		/* A new open segment: its header first, so that sealing needs no copy.  The
		 * header is not counted in open_bytes (open_bytes == 0: nothing open). */
		segment_write_header(&t->open);
		t->txn_start = t->open.len;
		t->sum.first_commit_lsn = a->txn_final_lsn;
		t->sum.first_time = a->txn_commit_time;
	}
	before = t->open.len;
	r->commit_lsn = a->txn_final_lsn;
	r->end_lsn = 0;				/* patched at Commit */
	r->xid = a->txn_xid;
	r->commit_time = a->txn_commit_time;
	r->layout_id = t->layout_id;
	if (a->txn_final_lsn > t->layout_seen)
		t->layout_seen = a->txn_final_lsn;
	if (segment_write_record(&t->open, r, err) != BS_OK)
	{
		if (t->open_records == 0)
			t->open.len = t->txn_start = 0;
		return error_prefix(err, "table %s.%s", t->man->schema, t->man->name);
	}
	if (t->open_records == 0 || a->open_since_ms == 0)
		a->open_since_ms = a->open_since_ms ? a->open_since_ms : clock_mono_ms();
	t->open_records++;
	a->open_bytes += t->open.len - before;
	a->metrics.changes++;
	/* Memory stays bounded whatever the transaction's size: beyond open_memory_limit the
	 * largest segments go to spill files, which take records in SPILL_WRITE_BUFFER pieces. */
	if (t->spill && t->open.len >= SPILL_WRITE_BUFFER && spill_flush(a, t, err) != BS_OK)
		return BS_ERR;
	if (__builtin_expect(a->open_bytes - a->spilled_bytes > a->open_memory_limit, 0))
		return relieve_memory(a, err);
	return BS_OK;
}

/* Patch the end LSN into every record of the transaction just committed (in its spill file
 * too), and note it in the segment's summary. */
static int
patch_end_lsn(archiver *a, arch_table *t, uint64_t end_lsn, bs_error *err)
{
	uint64_t in_file = t->spill ? spill_size(t->spill) : 0;
	size_t from = 0;

	if (t->txn_start < in_file)
	{
		if (spill_patch_end_lsn(t->spill, t->txn_start, end_lsn, err) != BS_OK)
			return error_prefix(err, "table %s.%s", t->man->schema, t->man->name);
	}
	else
		from = (size_t) (t->txn_start - in_file);
	if (from < t->open.len)
		segment_patch_end_lsn(t->open.data + from, t->open.len - from, end_lsn, NULL);
	t->sum.last_end_lsn = end_lsn;
	t->sum.last_time = a->txn_commit_time;
	t->txn_start = open_len(t);
	t->txn_records = t->open_records;
	return BS_OK;
}

/* Decoded by pgo_decode already; text (not binary) is all segments may hold. */
static bool
tuple_is_text(const pgo_tuple *t)
{
	for (int i = 0; i < t->ncols; i++)
		if (t->values[i].kind == 'b')
			return false;
	return true;
}

static int
handle_change(archiver *a, const pgo_message *m, bs_error *err)
{
	segment_record r;
	arch_table *t;

	memset(&r, 0, sizeof(r));
	r.old_kind = SEGMENT_OLD_NONE;
	switch (m->type)
	{
		case 'I':
			t = find_table(a, m->u.insert.relid);
			if (t == NULL || !t->active)
				return BS_OK;
			r.op = 'I';
			r.tuples_checked = tuple_is_text(&m->u.insert.newtup);
			r.new_tuple = m->u.insert.newtup.raw;
			r.new_len = m->u.insert.newtup.raw_len;
			return append_record(a, t, &r, err);
		case 'U':
			t = find_table(a, m->u.update.relid);
			if (t == NULL || !t->active)
				return BS_OK;
			r.op = 'U';
			if (m->u.update.old_kind)
			{
				r.old_kind = m->u.update.old_kind;
				r.old_tuple = m->u.update.oldtup.raw;
				r.old_len = m->u.update.oldtup.raw_len;
			}
			r.new_tuple = m->u.update.newtup.raw;
			r.new_len = m->u.update.newtup.raw_len;
			r.tuples_checked = tuple_is_text(&m->u.update.newtup) &&
				(!m->u.update.old_kind || tuple_is_text(&m->u.update.oldtup));
			return append_record(a, t, &r, err);
		case 'D':
			t = find_table(a, m->u.delete.relid);
			if (t == NULL || !t->active)
				return BS_OK;
			r.op = 'D';
			r.old_kind = m->u.delete.old_kind;
			r.old_tuple = m->u.delete.oldtup.raw;
			r.old_len = m->u.delete.oldtup.raw_len;
			r.tuples_checked = tuple_is_text(&m->u.delete.oldtup);
			return append_record(a, t, &r, err);
		case 'T':
			for (uint32_t i = 0; i < m->u.truncate.nrels; i++)
			{
				t = find_table(a, m->u.truncate.relids[i]);
				if (t == NULL || !t->active)
					continue;
				memset(&r, 0, sizeof(r));
				r.op = 'T';
				r.old_kind = SEGMENT_OLD_NONE;
				r.truncate_options = m->u.truncate.options;
				if (append_record(a, t, &r, err) != BS_OK)
					return BS_ERR;
			}
			return BS_OK;
	}
	return BS_OK;
}

static void answer_checkpoints(archiver *a, bool force_fail, const char *why);

/* A column change asked for a base copy that is not stored, or not yet reached by what is
 * stored: the stored position lies in the window recovery refuses (a checkpoint waits). */
static bool
rebase_pending(archiver *a, const arch_table *t)
{
	if (t->man->rebase_requested_at != 0 && t->man->rebase_requested_at < a->flush_lsn)
		return true;
	/* A schema change found by a table check (not captured): refused until a new base copy. */
	if (manifest_open_schema_gap(t->man) != NULL)
		return true;
	return t->rebase_done_lsn != 0 && a->flush_lsn < t->rebase_done_lsn;
}

/* Why a table gets no recovery point: its changes do not reach the archiver (a checkpoint). */
static void
unpublished_reason(archiver *a, const arch_table *t, strbuf *sb)
{
	const manifest_gap *g = manifest_open_gap(t->man);
	char l[LSN_BUFLEN];

	strbuf_printf(sb, "table %s.%s is not in publication \"%s\" (which the replication slot streams): its changes "
				  "are not archived", t->man->schema, t->man->name, config_get(a->cfg, "publication"));
	if (g)
		strbuf_printf(sb, " from %s on, until it is published again and a new base copy is taken",
					  lsn_format(g->from, l));
	strbuf_printf(sb, "; no recovery point can be verified");
}
static void check_gone_passed(archiver *a);
static int handle_ddl_message(archiver *a, const pgo_logical_message *msg, bs_error *err);
static void ddl_poll_rename(archiver *a, arch_table *t, const catalog_table *ct);
static int ddl_poll_layout(archiver *a, arch_table *t, bs_error *err);

/* --end-lsn: every transaction committed at or before it has been received; stop (the orderly
 * stop seals and stores what is open). */
static void
end_lsn_reached(archiver *a)
{
	char l[LSN_BUFLEN];

	if (a->end_received_ms)
		return;
	a->end_received_ms = clock_mono_ms();
	log_info("end LSN %s reached: all received after %.3f s; storing it, then stopping",
			 lsn_format(a->end_lsn, l), (double) (a->end_received_ms - a->metrics.started_ms) / 1000.0);
	a->stopping = true;
	event_base_loopbreak(a->evbase);
}

static int
handle_xlogdata(archiver *a, const replmsg_xlogdata *x, bs_error *err)
{
	pgo_message m;
	int rc = BS_OK;

	if (pgo_decode(x->data, x->len, 1, false, &m, err) != BS_OK)
		return error_prefix(err, "could not decode a change at %X/%X",
							(unsigned) (x->data_start >> 32), (unsigned) x->data_start);
	a->metrics.messages++;
	switch (m.type)
	{
		case 'B':
			if (a->end_lsn && m.u.begin.final_lsn > a->end_lsn)
			{
				/* Commits after the end LSN: not ours to keep in this run. */
				end_lsn_reached(a);
				break;
			}
			a->in_txn = true;
			a->txn_final_lsn = m.u.begin.final_lsn;
			a->txn_commit_time = m.u.begin.commit_time;
			a->txn_xid = m.u.begin.xid;
			/* Already kept (spooled or stored) before a restart or reconnect: skip. */
			a->txn_skip = m.u.begin.final_lsn < a->resume_lsn;
			for (int i = 0; i < a->ntables; i++)
			{
				a->tables[i]->txn_start = open_len(a->tables[i]);
				a->tables[i]->txn_records = a->tables[i]->open_records;
			}
			break;
		case 'C':
			if (!a->txn_skip)
			{
				for (int i = 0; i < a->ntables && rc == BS_OK; i++)
					if (a->tables[i]->txn_start < open_len(a->tables[i]))
						rc = patch_end_lsn(a, a->tables[i], m.u.commit.end_lsn, err);
				if (rc != BS_OK)
					break;
				a->metrics.transactions++;
			}
			a->in_txn = false;
			a->txn_skip = false;
			if (m.u.commit.end_lsn > a->last_commit_end)
				a->last_commit_end = m.u.commit.end_lsn;
			a->metrics.commit_time = a->txn_commit_time + INT64_C(946684800000000);	/* PostgreSQL's epoch to Unix */
			a->metrics.commit_end = m.u.commit.end_lsn;
			if (m.u.commit.end_lsn > a->received_lsn)
				a->received_lsn = m.u.commit.end_lsn;
			if (a->last_commit_end > a->resume_lsn)
				a->resume_lsn = a->last_commit_end;
			check_gone_passed(a);
			/* Seal at a transaction boundary when the open segments are big enough. */
			if ((int64_t) a->open_bytes >= a->segment_size)
				rc = seal_epoch(a, false, err);
			if (a->pending)
				answer_checkpoints(a, false, NULL);
			/* Commit records do not overlap: the next one starts at or after this end. */
			if (a->end_lsn && m.u.commit.end_lsn > a->end_lsn)
				end_lsn_reached(a);
			break;
		case 'R':
			rc = handle_relation(a, &m.u.relation, err);
			break;
		case 'I':
		case 'U':
		case 'D':
		case 'T':
			if (!a->txn_skip)
				rc = handle_change(a, &m, err);
			break;
		case 'M':
			/* Only transactional messages of the event triggers: at their transaction's position. */
			if (a->in_txn && (m.u.message.flags & PGO_MESSAGE_TRANSACTIONAL) &&
				strcmp(m.u.message.prefix, DDL_MESSAGE_PREFIX) == 0)
				rc = handle_ddl_message(a, &m.u.message, err);
			break;
		default:
			/* Origin and Type messages carry nothing a table recovery needs. */
			break;
	}
	pgo_message_free(&m);
	return rc;
}

/* A transaction cut off by a disconnect will be sent again in full: forget its records. */
static int
drop_partial_transaction(archiver *a, bs_error *err)
{
	int rc = BS_OK;

	for (int i = 0; i < a->ntables && a->in_txn; i++)
	{
		arch_table *t = a->tables[i];
		uint64_t len = open_len(t);
		uint64_t in_file = t->spill ? spill_size(t->spill) : 0;

		if (t->txn_start >= len)
			continue;
		a->open_bytes -= len - t->txn_start;
		t->open_records = t->txn_records;
		if (t->txn_start >= in_file)
			t->open.len = (size_t) (t->txn_start - in_file);
		else
		{
			/* Cut back below (or removed with the whole file when nothing else is left). */
			a->spilled_bytes -= in_file - t->txn_start;
			t->open.len = 0;
			if (t->open_records > 0 && rc == BS_OK)
			{
				if (spill_truncate(t->spill, t->txn_start, err) != BS_OK)
					rc = error_prefix(err, "table %s.%s", t->man->schema, t->man->name);
				else
					log_info("table %s.%s: spill file cut back to %" PRIu64 " bytes (%" PRIu64
							 " records), the transaction cut off is sent again", t->man->schema, t->man->name,
							 t->txn_start, t->open_records);
			}
		}
		if (t->open_records == 0)
		{
			/* Only the header is left. */
			if (t->spill)
				log_info("table %s.%s: spill file removed, the transaction cut off is sent again",
						 t->man->schema, t->man->name);
			spill_discard(t->spill);
			t->spill = NULL;
			t->open.len = 0;
			t->txn_start = 0;
			memset(&t->sum, 0, sizeof(t->sum));
		}
		if (t->open.data)
			t->open.data[t->open.len] = '\0';
	}
	a->in_txn = false;
	a->txn_skip = false;
	return rc;
}

static void
close_replication(archiver *a)
{
	bs_error err;

	error_clear(&err);
	if (a->repl_ev)
	{
		event_free(a->repl_ev);
		a->repl_ev = NULL;
	}
	if (a->repl)
	{
		PQfinish(a->repl);
		a->repl = NULL;
	}
	if (drop_partial_transaction(a, &err) != BS_OK)
		archiver_fail(a, &err);
	for (int i = 0; i < a->nrelcache; i++)
		pgo_relation_free(&a->relcache[i]);
	a->nrelcache = 0;
}

static void locked_repl_readable(evutil_socket_t fd, short what, void *arg);
static void locked_http(struct evhttp_request *req, void *arg);

/*
 * The WAL the slot holds on the server (for /metrics), and at start the backlog to catch up
 * (logged, then its progress from on_tick).  On the control connection, with the table poll:
 * a failure only leaves the value unknown.
 */
static void
read_slot_wal(archiver *a, bool at_start)
{
	const char *params[1] = {config_get(a->cfg, "slot")};
	PGresult *res = NULL;
	bs_error err;

	error_clear(&err);
	if (a->conn == NULL || PQstatus(a->conn) != CONNECTION_OK ||
		pgsql_query_params(a->conn, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, "
						   "pg_current_wal_lsn(), confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1",
						   1, params, &res, &err) != BS_OK || PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
	{
		a->metrics.slot_retained = -1;
		PQclear(res);
		return;
	}
	a->metrics.slot_retained = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	if (at_start && a->metrics.catchup_to == 0)
	{
		uint64_t now_lsn = 0, from = 0;

		if (lsn_parse(PQgetvalue(res, 0, 1), &now_lsn) == BS_OK && !PQgetisnull(res, 0, 2) &&
			lsn_parse(PQgetvalue(res, 0, 2), &from) == BS_OK)
		{
			log_info("backlog at start: %" PRIu64 " bytes of WAL to catch up (slot confirmed at %s, server at %s); "
					 "the slot holds %" PRId64 " bytes", now_lsn > from ? now_lsn - from : 0, PQgetvalue(res, 0, 2),
					 PQgetvalue(res, 0, 1), a->metrics.slot_retained);
			if (now_lsn > from)
			{
				a->metrics.catchup_from = from;
				a->metrics.catchup_to = now_lsn;
				a->metrics.catchup_started_ms = a->metrics.catchup_logged_ms = clock_mono_ms();
			}
		}
	}
	PQclear(res);
}

/* Seconds behind and catch-up progress, once a tick. */
static void
track_progress(archiver *a)
{
	int64_t now = clock_mono_ms();

	if (a->metrics.commit_end && a->flush_lsn >= a->metrics.commit_end)
		a->metrics.durable_commit_time = a->metrics.commit_time;
	if (a->metrics.catchup_to == 0)
		return;
	if (a->flush_lsn >= a->metrics.catchup_to)
	{
		log_info("caught up with the backlog at start (%" PRIu64 " bytes of WAL) in %.1f s",
				 a->metrics.catchup_to - a->metrics.catchup_from, (double) (now - a->metrics.catchup_started_ms) / 1000.0);
		a->metrics.catchup_to = 0;
	}
	else if (now - a->metrics.catchup_logged_ms >= 10000)
	{
		uint64_t done = a->flush_lsn > a->metrics.catchup_from ? a->flush_lsn - a->metrics.catchup_from : 0;
		uint64_t total = a->metrics.catchup_to - a->metrics.catchup_from;

		log_info("catching up: %" PRIu64 " of %" PRIu64 " bytes of the backlog durable (%.0f%%), received up to %" PRIu64,
				 done, total, total ? 100.0 * (double) done / (double) total : 100.0, a->received_lsn);
		a->metrics.catchup_logged_ms = now;
	}
}

static int
start_replication(archiver *a, bs_error *err)
{
	strbuf sql = STRBUF_INIT;
	char *slot = pgsql_quote_ident(config_get(a->cfg, "slot"));
	char *pubs = pgsql_quote_ident(config_get(a->cfg, "publication"));
	char *publit = pgsql_quote_literal(pubs);
	PGresult *res;
	int rc = BS_ERR;

	if (pgsql_connect(config_get(a->cfg, "db"), true, "backstop archive", &a->repl, err) != BS_OK)
		goto out;
	/* 0/0: resume exactly at the slot's confirmed_flush_lsn, never anywhere else. */
	strbuf_printf(&sql, "START_REPLICATION SLOT %s LOGICAL 0/0 (proto_version '1', publication_names %s%s)",
				  slot, publit, a->ddl_capture ? ", messages 'true'" : "");
	res = PQexec(a->repl, sql.data);
	if (PQresultStatus(res) != PGRES_COPY_BOTH)
	{
		pgsql_set_error(err, a->repl, res, "could not start replication");
		PQclear(res);
		PQfinish(a->repl);
		a->repl = NULL;
		goto out;
	}
	PQclear(res);
	if (PQsetnonblocking(a->repl, 1) != 0)
	{
		pgsql_set_error(err, a->repl, NULL, "could not make the replication connection non-blocking");
		goto out;
	}
	a->repl_ev = event_new(a->evbase, PQsocket(a->repl), EV_READ | EV_PERSIST, locked_repl_readable, a);
	event_add(a->repl_ev, NULL);
	log_info("streaming from slot %s", config_get(a->cfg, "slot"));
	read_slot_wal(a, true);
	rc = BS_OK;
out:
	free(slot);
	free(pubs);
	free(publit);
	strbuf_free(&sql);
	return rc;
}

/*
 * A slot invalidated for another cause than max_slot_wal_keep_size, by name: PostgreSQL 17's
 * invalidation_reason (read through to_jsonb, so that older servers answer NULL) other than
 * wal_removed, e.g. 18's idle_timeout.  wal_status says "lost" for every cause.
 */
#define SLOT_OTHER_INVALIDATION \
	"NULLIF(to_jsonb(s) ->> 'invalidation_reason', 'wal_removed')"

/*
 * Whether the slot can still be read.  An invalidated slot (wal_status = lost, after
 * max_slot_wal_keep_size) or a dropped one has lost changes for good: reconnecting cannot
 * help, so this is an error (ERRCODE_SLOT_LOST).  A failing query (the server is restarting,
 * say) says nothing: BS_OK, and the reconnection is tried as usual.
 */
static int
check_slot(archiver *a, bs_error *err)
{
	const char *slot = config_get(a->cfg, "slot");
	const char *params[1] = {slot};
	PGresult *res;
	bs_error qerr;
	char l[LSN_BUFLEN];
	int rc = BS_OK;

	error_clear(&qerr);
	if (PQstatus(a->conn) != CONNECTION_OK)
		PQreset(a->conn);
	if (pgsql_query_params(a->conn, "SELECT s.wal_status, " SLOT_OTHER_INVALIDATION
						   " FROM pg_replication_slots s WHERE s.slot_name = $1",
						   1, params, &res, &qerr) != BS_OK)
	{
		log_debug("could not check replication slot %s: %s", slot, qerr.message);
		return BS_OK;
	}
	if (PQntuples(res) == 0)
		rc = error_set(err, ERRCODE_SLOT_LOST,
					   "replication slot \"%s\" was dropped while the archiver ran: the changes after %s (the "
					   "last position received) are lost.  Starting again creates a new slot and takes new "
					   "base copies", slot, lsn_format(a->received_lsn, l));
	else if (!PQgetisnull(res, 0, 1))
		rc = error_set(err, ERRCODE_SLOT_LOST,
					   "replication slot \"%s\" was invalidated while the archiver ran (invalidation_reason = "
					   "%s): the changes after %s (the last position received) are lost.  Drop the slot "
					   "(backstop archive --drop) and start again for new base copies",
					   slot, PQgetvalue(res, 0, 1), lsn_format(a->received_lsn, l));
	else if (!PQgetisnull(res, 0, 0) && strcmp(PQgetvalue(res, 0, 0), "lost") == 0)
		rc = error_set(err, ERRCODE_SLOT_LOST,
					   "replication slot \"%s\" was invalidated while the archiver ran (wal_status = lost: "
					   "max_slot_wal_keep_size exceeded): the changes after %s (the last position received) are "
					   "lost.  Drop the slot (backstop archive --drop) and start again for new base copies",
					   slot, lsn_format(a->received_lsn, l));
	PQclear(res);
	return rc;
}

/* The slot is lost: stop as on SIGTERM (what was received is sealed and stored), then fail. */
static void
slot_lost(archiver *a, const bs_error *err)
{
	if (!a->slot_lost)
	{
		a->slot_lost = true;
		a->slot_lost_err = *err;
		log_error("replication slot %s is lost: storing what was received, then stopping",
				  config_get(a->cfg, "slot"));
	}
	a->stopping = true;
	event_base_loopbreak(a->evbase);
}

static void
schedule_reconnect(archiver *a, const bs_error *err)
{
	bs_error serr;

	error_clear(&serr);
	if (check_slot(a, &serr) != BS_OK)
	{
		log_warning("replication connection lost: %s", err->message);
		close_replication(a);
		slot_lost(a, &serr);
		return;
	}
	log_warning("replication connection lost: %s; reconnecting in %lld ms", err->message,
				(long long) a->reconnect_delay_ms);
	close_replication(a);
	a->reconnect_ms = clock_mono_ms() + a->reconnect_delay_ms;
	a->reconnect_delay_ms = a->reconnect_delay_ms * 2 > 30000 ? 30000 : a->reconnect_delay_ms * 2;
	a->metrics.reconnects++;
}

/*
 * Reading the stream.  The walsender sends each pgoutput message as soon as it is decoded, so
 * a reader that goes back to epoll after every read is woken for one message of ~100 bytes at
 * a time and spends most of its CPU in epoll_wait, recv and context switches (and makes the
 * walsender wake it for every message), CPU that the walsender needs on a small machine.
 * After a short read the reader sleeps REPL_PAUSE_US (lock released) and reads again, so
 * that each read finds a batch; it returns to the event loop when a read finds nothing.
 * The pause must stay well below the time the walsender needs to fill the socket's send
 * buffer (a few hundred small messages), or the walsender would block waiting for us.
 */
#define REPL_PAUSE_US 100
#define REPL_BATCH_BYTES ((size_t) 16 * 1024)
/* Return to the event loop after this much, so that timers and HTTP requests run. */
#define REPL_BURST_BYTES ((size_t) 4 * 1024 * 1024)
#define REPL_MAX_PAUSES 50

/* Handle every complete message in libpq's buffer.  false: the connection was dropped or
 * the archiver failed; the caller must return. */
static bool
repl_drain(archiver *a, size_t *got)
{
	bs_error err;

	error_clear(&err);
	for (;;)
	{
		char *buf = NULL;
		int n = PQgetCopyData(a->repl, &buf, 1);
		replmsg msg;

		if (n == 0)
			return true;
		if (n == -1)
		{
			PGresult *res = PQgetResult(a->repl);

			if (res && PQresultStatus(res) == PGRES_COMMAND_OK)
				error_set(&err, ERRCODE_CONNECTION, "the server ended the replication stream (shutdown, or the walsender was stopped)");
			else
				pgsql_set_error(&err, a->repl, res, "replication stream ended");
			PQclear(res);
			schedule_reconnect(a, &err);
			return false;
		}
		if (n < 0)
		{
			pgsql_set_error(&err, a->repl, NULL, "replication connection failed");
			schedule_reconnect(a, &err);
			return false;
		}
		a->metrics.bytes_received += (uint64_t) n;
		*got += (size_t) n;
		/* A long burst must not starve the uploader of the lock. */
		if (__atomic_load_n(&a->uploader_waiting, __ATOMIC_RELAXED))
		{
			pthread_mutex_unlock(&a->lock);
			sched_yield();
			pthread_mutex_lock(&a->lock);
		}
		if (replmsg_parse((const uint8_t *) buf, (size_t) n, &msg, &err) != BS_OK)
		{
			PQfreemem(buf);
			archiver_fail(a, &err);
			return false;
		}
		if (msg.type == 'w')
		{
			if (handle_xlogdata(a, &msg.u.xlogdata, &err) != BS_OK)
			{
				PQfreemem(buf);
				/* Undecodable input, a full spool or a catalog failure: stop rather than
				 * archive something wrong; nothing unconfirmed is lost. */
				archiver_fail(a, &err);
				return false;
			}
		}
		else if (msg.type == 'k')
		{
			if (!a->in_txn && msg.u.keepalive.wal_end > a->received_lsn)
				a->received_lsn = msg.u.keepalive.wal_end;
			/* Every transaction committed before the keepalive's position was sent before
			 * it, and none is in progress: the next seal may claim up to there.  Without
			 * this, a checkpoint whose target a keepalive passed waited for a later seal. */
			if (!a->in_txn && msg.u.keepalive.wal_end > a->last_commit_end)
				a->last_commit_end = msg.u.keepalive.wal_end;
			check_gone_passed(a);
			/* Idle publication: nothing pending means the slot may advance. */
			if (!a->in_txn && a->open_bytes == 0 && !a->spool_pending && a->jobs_head == NULL &&
				msg.u.keepalive.wal_end > a->flush_lsn)
				idle_progress(a, msg.u.keepalive.wal_end, false);
			if (msg.u.keepalive.reply_requested && send_status(a, false, &err) != BS_OK)
			{
				PQfreemem(buf);
				schedule_reconnect(a, &err);
				return false;
			}
			if (a->pending)
				answer_checkpoints(a, false, NULL);
			/* The keepalive carries how far decoding has read: every transaction committed
			 * before that was sent in full before it (pg_recvlogical reasons the same way). */
			if (a->end_lsn && !a->in_txn && msg.u.keepalive.wal_end >= a->end_lsn)
				end_lsn_reached(a);
		}
		PQfreemem(buf);
		if (a->fatal || a->stopping)
			return false;
	}
}

static void
on_repl_readable(evutil_socket_t fd, short what, void *arg)
{
	archiver *a = arg;
	size_t got = 0;
	int pauses = 0;

	(void) fd;
	(void) what;
	for (;;)
	{
		size_t before = got;

		if (PQconsumeInput(a->repl) == 0)
		{
			bs_error err;

			error_clear(&err);
			pgsql_set_error(&err, a->repl, NULL, "replication connection failed");
			schedule_reconnect(a, &err);
			return;
		}
		if (!repl_drain(a, &got))
			return;
		if (got == before || got >= REPL_BURST_BYTES)
			break;
		if (got - before < REPL_BATCH_BYTES)
		{
			struct timespec pause = {0, REPL_PAUSE_US * 1000L};

			if (++pauses > REPL_MAX_PAUSES)
				break;
			pthread_mutex_unlock(&a->lock);
			nanosleep(&pause, NULL);
			pthread_mutex_lock(&a->lock);
			if (a->repl == NULL || a->fatal || a->stopping)
				return;
		}
	}
}

/* ---------- checkpoints, metrics and health over loopback HTTP ---------- */

/* Re-read and check the table's newest stored object (segment, else base chunks). */
static int
verify_newest(archiver *a, arch_table *t, bs_error *err)
{
	const manifest *m = t->man;

	if (m->nsegments > 0)
	{
		const manifest_segment *seg = &m->segments[m->nsegments - 1];

		if (t->verified_key && strcmp(t->verified_key, seg->key) == 0)
			return BS_OK;
		if (object_verify(a->st_main, seg->key, seg->sha256, NULL, err) != BS_OK)
			return BS_ERR;
		free(t->verified_key);
		t->verified_key = xstrdup(seg->key);
	}
	else if (m->nbases > 0)
	{
		const manifest_base *b = &m->bases[m->nbases - 1];

		if (t->verified_key && b->nchunks > 0 && strcmp(t->verified_key, b->chunks[0].key) == 0)
			return BS_OK;
		for (int i = 0; i < b->nchunks; i++)
			if (object_verify(a->st_main, b->chunks[i].key, b->chunks[i].sha256, NULL, err) != BS_OK)
				return BS_ERR;
		if (b->nchunks > 0)
		{
			free(t->verified_key);
			t->verified_key = xstrdup(b->chunks[0].key);
		}
	}
	return BS_OK;
}

/* Answer the checkpoint requests whose target is reached (after sealing and uploading). */
static void
answer_checkpoints(archiver *a, bool force_fail, const char *why)
{
	checkpoint_req **pp = &a->pending;
	bool ready = false;
	bs_error err;

	error_clear(&err);
	/* Seal once per request, when its target has been received; later commits do not
	 * re-seal for it (that would cut an epoch per transaction while storage is slow). */
	for (checkpoint_req *r = a->pending; r; r = r->next)
	{
		if (r->positioned && !r->sealed && a->received_lsn >= r->target_lsn && !a->in_txn)
		{
			ready = true;
			r->sealed = true;
		}
	}
	if (ready && !force_fail)
	{
		/* Hands what is open to the uploader; the reply waits until flush reaches it. */
		if (seal_epoch(a, true, &err) != BS_OK)
		{
			log_warning("checkpoint: %s", err.message);
			force_fail = true;
			why = err.message;
		}
	}
	while (*pp)
	{
		checkpoint_req *r = *pp;
		bool expired = clock_mono_ms() >= r->deadline_ms;
		arch_table *rt = find_table(a, r->relid);
		/* A table whose first base copy is still running (or whose base is not stored yet)
		 * has no recovery point, however far its changes are stored. */
		bool has_base = rt && rt->man->nbases > 0 && !rt->base_unstored && !rebase_pending(a, rt);
		bool reached = r->positioned && r->sealed && a->flush_lsn >= r->target_lsn && has_base;

		if (rt && (rt->unpublished || manifest_open_gap(rt->man) != NULL))
		{
			/* It left the publication while the checkpoint waited. */
			strbuf sb = STRBUF_INIT;

			unpublished_reason(a, rt, &sb);
			control_reply_error(r->req, 409, "Conflict", sb.data);
			strbuf_free(&sb);
			*pp = r->next;
			free(r);
			continue;
		}
		if (force_fail || reached || expired)
		{
			if (force_fail)
				control_reply_error(r->req, 503, "Service Unavailable", why ? why : "archiver stopping");
			else if (!r->positioned)
				control_reply_error(r->req, 503, "Service Unavailable", a->conn_err.message[0] ? a->conn_err.message :
									"no connection to PostgreSQL");
			else if (reached)
			{
				arch_table *t = rt;
				strbuf sb = STRBUF_INIT;
				char l1[LSN_BUFLEN], l2[LSN_BUFLEN];
				const manifest_segment *seg = t && t->man->nsegments ? &t->man->segments[t->man->nsegments - 1] : NULL;
				bs_error verr;

				/* The point is only as good as the objects behind it: re-read and check the
				 * newest one (once), whether this seal wrote it or an earlier one did. */
				error_clear(&verr);
				if (t && verify_newest(a, t, &verr) != BS_OK)
				{
					control_reply_error(r->req, 503, "Service Unavailable", verr.message);
					*pp = r->next;
					free(r);
					continue;
				}
				{
					/* Built by jansson: a table name is data, never JSON syntax. */
					json_t *o = json_object();
					char *text;

					strbuf_printf(&sb, "%s.%s", t ? t->man->schema : "", t ? t->man->name : "");
					json_object_set_new(o, "table", json_stringn(sb.data, sb.len));
					json_object_set_new(o, "relid", json_integer(r->relid));
					json_object_set_new(o, "lsn", json_string(lsn_format(a->flush_lsn, l1)));
					json_object_set_new(o, "requested_lsn", json_string(lsn_format(r->target_lsn, l2)));
					json_object_set_new(o, "segment", seg ? json_string(seg->key) : json_null());
					json_object_set_new(o, "verified", json_true());
					json_object_set_new(o, "elapsed_ms", json_integer((json_int_t) (clock_mono_ms() - r->started_ms)));
					text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
					control_reply_json(r->req, 200, "OK", text ? text : "{}");
					free(text);
					json_decref(o);
				}
				strbuf_free(&sb);
				a->metrics.checkpoints++;
				/* Kept with the manifest: if the table is dropped next, this point stays
				 * recoverable (manifest_dropped_after).  Not a store of its own (no request
				 * per checkpoint): it goes with the table's next manifest store, at the
				 * latest the one that marks it dropped; lost with a crash before that, the
				 * point is refused, never answered wrongly. */
				if (t && r->existed && t->gone_lsn == 0 && r->target_lsn > t->man->existed_to)
					t->man->existed_to = r->target_lsn;
			}
			else
				control_reply_error(r->req, 504, "Gateway Timeout", has_base || a->flush_lsn < r->target_lsn ?
							"timed out waiting for the archive to reach the requested LSN" :
							rt && rt->man->nbases > 0 && rebase_pending(a, rt) ?
							"timed out waiting for the table's new base copy (a column change needs one: "
							"points since it are refused until it is taken)" :
							"timed out waiting for the table's first base copy");
			*pp = r->next;
			free(r);
			continue;
		}
		pp = &r->next;
	}
}

/* Retry interval of a lost control connection while checkpoints wait for it. */
#define CONN_RETRY_MS 1000

/*
 * "Now" for a checkpoint: everything committed before this call must be covered.  The
 * insert position, not pg_current_wal_lsn() (the write position): with synchronous_commit
 * = off a commit can be visible before its record is written out.
 */
static int
read_position(archiver *a, uint64_t *lsn, bs_error *err)
{
	PGresult *res = NULL;
	bool unflushed;

	if (pgsql_query(a->conn, "SELECT pg_current_wal_insert_lsn()::text, "
					"pg_current_wal_flush_lsn() < pg_current_wal_insert_lsn()", &res, err) != BS_OK)
		return BS_ERR;
	if (PQntuples(res) != 1 || lsn_parse(PQgetvalue(res, 0, 0), lsn) != BS_OK)
	{
		PQclear(res);
		return error_set(err, ERRCODE_PROTOCOL, "could not read the current WAL position");
	}
	unflushed = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	PQclear(res);
	/*
	 * The walsender sends only flushed WAL, and with asynchronous commits the WAL writer
	 * may flush the last page up to wal_writer_delay later.  A transaction that writes
	 * WAL (a logical message, which pgoutput does not send without its messages option)
	 * and commits with local synchronous commit flushes everything before it, L
	 * included.  Failing here (a read-only role, say) only makes the wait longer.
	 */
	if (unflushed &&
		pgsql_exec(a->conn, "BEGIN; SET LOCAL synchronous_commit = local; "
				   "SELECT pg_logical_emit_message(true, 'backstop', ''); COMMIT", err) != BS_OK)
	{
		log_debug("checkpoint: could not flush the server's WAL up to %X/%X: %s",
				  (unsigned) (*lsn >> 32), (unsigned) *lsn, err->message);
		pgsql_exec(a->conn, "ROLLBACK", err);
		error_clear(err);
	}
	return BS_OK;
}

/* read_position, on a new connection when the last one was lost (PostgreSQL restarted). */
static int
current_position(archiver *a, uint64_t *lsn, bs_error *err)
{
	if (PQstatus(a->conn) != CONNECTION_OK && reconnect_conn(a, err) != BS_OK)
		return BS_ERR;
	if (read_position(a, lsn, err) == BS_OK)
		return BS_OK;
	if (!conn_recovered(a, err))
		return BS_ERR;
	return read_position(a, lsn, err);
}

/*
 * Is the table in the catalog now, with now at or after lsn?  Then it existed at lsn (a DROP
 * of it commits later), and a recovery point there must stay one after a DROP: the answer
 * records it (manifest existed_to).  The position is read first and the catalog in a later
 * statement, so the catalog's snapshot is not older than the position.  Reading the position
 * also has the server flush its WAL that far (read_position): a point the caller named (the
 * gate's, read inside a transaction that has written WAL but not committed) is otherwise
 * sent only when something else flushes, up to 15 s later.  1: yes; 0: the table is gone;
 * -1: unknown (no connection, or lsn is ahead of the server).
 */
static int
table_exists_at(archiver *a, uint32_t relid, uint64_t lsn)
{
	char oid[16];
	const char *params[1] = {oid};
	uint64_t now_lsn = 0;
	PGresult *res = NULL;
	bs_error err;
	int rc = -1;

	error_clear(&err);
	snprintf(oid, sizeof(oid), "%u", relid);
	if (PQstatus(a->conn) != CONNECTION_OK || read_position(a, &now_lsn, &err) != BS_OK || now_lsn < lsn ||
		pgsql_query_params(a->conn, "SELECT 1 FROM pg_class WHERE oid = $1::oid", 1, params, &res, &err) != BS_OK)
		rc = -1;
	else
		rc = PQntuples(res) > 0 ? 1 : 0;
	PQclear(res);
	return rc;
}

static void
on_checkpoint(struct evhttp_request *req, void *arg)
{
	archiver *a = arg;
	struct evkeyvalq q;
	const char *table, *lsn_s;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *query = evhttp_uri_get_query(uri);
	checkpoint_req *r;
	manifest *found = NULL;
	arch_table *t = NULL;
	bs_error err;
	uint64_t lsn = 0;
	bool positioned;
	int64_t timeout_ms = config_get_duration_ms(a->cfg, "timeout");

	error_clear(&err);
	memset(&q, 0, sizeof(q));
	if (query == NULL || evhttp_parse_query_str(query, &q) != 0 || (table = evhttp_find_header(&q, "table")) == NULL)
	{
		control_reply_error(req, 400, "Bad Request", "usage: POST /checkpoint?table=schema.table[&lsn=X/Y]");
		evhttp_clear_headers(&q);
		return;
	}
	{
		const char *t_s = evhttp_find_header(&q, "timeout_ms");
		int64_t client_ms;

		/* The client says how long it waits; the daemon's own setting is the default. */
		if (t_s && config_parse_int(t_s, &client_ms) == 0 && client_ms > 0 && client_ms <= 3600 * 1000)
			timeout_ms = client_ms;
	}
	lsn_s = evhttp_find_header(&q, "lsn");
	if (lsn_s && lsn_parse(lsn_s, &lsn) != BS_OK)
	{
		control_reply_error(req, 400, "Bad Request", "invalid lsn");
		evhttp_clear_headers(&q);
		return;
	}
	{
		char *schema = NULL, *name = NULL;

		if (ident_split_name(table, &schema, &name, &err) == BS_OK)
		{
			for (int i = 0; i < a->ntables; i++)
				if (a->tables[i]->active && strcmp(a->tables[i]->man->schema, schema) == 0 &&
					strcmp(a->tables[i]->man->name, name) == 0)
					t = a->tables[i];
		}
		free(schema);
		free(name);
	}
	(void) found;
	if (t == NULL)
	{
		strbuf sb = STRBUF_INIT;

		strbuf_printf(&sb, "table \"%s\" is not archived by this daemon", table);
		control_reply_error(req, 404, "Not Found", sb.data);
		strbuf_free(&sb);
		evhttp_clear_headers(&q);
		return;
	}
	if (t->unpublished || manifest_open_gap(t->man) != NULL)
	{
		strbuf sb = STRBUF_INIT;

		unpublished_reason(a, t, &sb);
		control_reply_error(req, 409, "Conflict", sb.data);
		strbuf_free(&sb);
		evhttp_clear_headers(&q);
		return;
	}
	positioned = lsn != 0;
	if (!positioned)
	{
		if (current_position(a, &lsn, &err) == BS_OK)
			positioned = true;
		else if (PQstatus(a->conn) == CONNECTION_OK)
		{
			control_reply_error(req, 503, "Service Unavailable", err.message[0] ? err.message : "could not read the current WAL position");
			evhttp_clear_headers(&q);
			return;
		}
		else
		{
			/* PostgreSQL is not back yet (a restart): the tick tries again until the deadline. */
			log_warning("checkpoint of %s.%s: %s; trying again until its deadline", t->man->schema, t->man->name,
						err.message);
			a->conn_err = err;
			a->conn_retry_ms = clock_mono_ms() + CONN_RETRY_MS;
		}
	}
	evhttp_clear_headers(&q);
	{
		int exists = positioned && t->gone_lsn == 0 ? table_exists_at(a, t->relid, lsn) : -1;

		/* Dropped: no recovery point of a table that is gone (recover --latest has its last state). */
		if (t->gone_lsn != 0 || exists == 0)
		{
			strbuf sb = STRBUF_INIT;

			strbuf_printf(&sb, "table %s.%s was dropped (backstop recover --latest gives its last state)",
						  t->man->schema, t->man->name);
			control_reply_error(req, 410, "Gone", sb.data);
			strbuf_free(&sb);
			return;
		}
		/* Not captured: a schema change before the point and after the table's last row change
		 * is found by a table check only; one now, after the point, so that the point is not
		 * answered before that change's window is recorded (the answer then waits for it). */
		if (positioned)
		{
			bs_error e2;

			error_clear(&e2);
			if (ddl_poll_layout(a, t, &e2) != BS_OK)
				log_warning("checkpoint of %s.%s: table check: %s", t->man->schema, t->man->name, e2.message);
		}
		r = xcalloc(1, sizeof(checkpoint_req));
		r->existed = exists == 1;
	}
	r->req = req;
	r->relid = t->relid;
	r->target_lsn = lsn;
	r->positioned = positioned;
	r->started_ms = clock_mono_ms();
	r->deadline_ms = r->started_ms + (timeout_ms > 0 ? timeout_ms : 30000);
	r->next = a->pending;
	a->pending = r;
	a->retry_now = true;
	pthread_cond_signal(&a->wake);
	/* Ask the server for its position now instead of waiting for a keepalive. */
	if (a->received_lsn < lsn && send_status(a, true, &err) != BS_OK)
		log_warning("%s", err.message);
	/* Stream lost (PostgreSQL restarted): a waiting checkpoint cuts the back-off short. */
	if (a->repl == NULL && !a->stopping && a->reconnect_ms > clock_mono_ms() + CONN_RETRY_MS)
		a->reconnect_ms = clock_mono_ms() + CONN_RETRY_MS;
	answer_checkpoints(a, false, NULL);
}

/* Checkpoints that wait for the control connection to come back: try again (tick). */
static void
position_checkpoints(archiver *a)
{
	uint64_t lsn;
	bool waiting = false;
	bs_error err;

	for (checkpoint_req *r = a->pending; r; r = r->next)
		waiting = waiting || !r->positioned;
	if (!waiting || clock_mono_ms() < a->conn_retry_ms)
		return;
	error_clear(&err);
	if (current_position(a, &lsn, &err) != BS_OK)
	{
		a->conn_err = err;
		a->conn_retry_ms = clock_mono_ms() + CONN_RETRY_MS;
		return;
	}
	for (checkpoint_req *r = a->pending; r; r = r->next)
	{
		if (!r->positioned)
		{
			r->target_lsn = lsn;
			r->positioned = true;
		}
	}
	if (a->received_lsn < lsn && send_status(a, true, &err) != BS_OK)
		log_warning("%s", err.message);
}

/* Requests to the archive's storage (all three handles; not the local spool), and what the
 * seals cost in manifests: the figures of contrib/bench/scale. */
static void
storage_metrics(const archiver *a, strbuf *out)
{
	storage_stats s;

	memset(&s, 0, sizeof(s));
	if (a->st)
		storage_stats_add(a->st, &s);
	if (a->st_main)
		storage_stats_add(a->st_main, &s);
	if (a->st_base)
		storage_stats_add(a->st_base, &s);
	strbuf_printf(out, "# HELP backstop_storage_requests_total Requests to the archive's storage, by operation "
				  "(a put is one object, a list one call of any number of pages).\n"
				  "# TYPE backstop_storage_requests_total counter\n");
	for (int op = 0; op < STORAGE_NOPS; op++)
		strbuf_printf(out, "backstop_storage_requests_total{op=\"%s\"} %" PRIu64 "\n",
					  storage_op_name((storage_op) op), s.requests[op]);
	strbuf_printf(out, "# HELP backstop_storage_bytes_total Bytes written to (put, put_if) or read from (get, "
				  "get_tagged) the archive's storage, as stored.\n"
				  "# TYPE backstop_storage_bytes_total counter\n");
	for (int op = 0; op < STORAGE_NOPS; op++)
		if (op == STORAGE_OP_PUT || op == STORAGE_OP_GET || op == STORAGE_OP_GET_TAGGED || op == STORAGE_OP_PUT_IF)
			strbuf_printf(out, "backstop_storage_bytes_total{op=\"%s\"} %" PRIu64 "\n",
						  storage_op_name((storage_op) op), s.bytes[op]);
	strbuf_printf(out,
		"# HELP backstop_seals_total Epochs sealed (each becomes durable as a whole).\n"
		"# TYPE backstop_seals_total counter\nbackstop_seals_total %" PRIu64 "\n"
		"# HELP backstop_manifests_stored_total Table manifests stored.\n"
		"# TYPE backstop_manifests_stored_total counter\nbackstop_manifests_stored_total %" PRIu64 "\n"
		"# HELP backstop_manifest_bytes_total Bytes of the table manifests stored (before encryption).\n"
		"# TYPE backstop_manifest_bytes_total counter\nbackstop_manifest_bytes_total %" PRIu64 "\n",
		a->metrics.seals, a->metrics.manifests_stored, a->metrics.manifest_bytes);
}

static void
on_metrics(struct evhttp_request *req, void *arg)
{
	archiver *a = arg;
	struct evbuffer *b = evbuffer_new();
	double up = (double) (clock_mono_ms() - a->metrics.started_ms) / 1000.0;

	evbuffer_add_printf(b,
		"# HELP backstop_received_lsn Last WAL position received from the slot.\n"
		"# TYPE backstop_received_lsn gauge\nbackstop_received_lsn %" PRIu64 "\n"
		"# HELP backstop_flushed_lsn Position durable in storage and confirmed to PostgreSQL.\n"
		"# TYPE backstop_flushed_lsn gauge\nbackstop_flushed_lsn %" PRIu64 "\n"
		"# HELP backstop_lag_bytes Received but not yet durable in storage.\n"
		"# TYPE backstop_lag_bytes gauge\nbackstop_lag_bytes %" PRIu64 "\n"
		"# HELP backstop_open_segment_bytes Bytes of open (not yet sealed) change segments.\n"
		"# TYPE backstop_open_segment_bytes gauge\nbackstop_open_segment_bytes %zu\n"
		"# HELP backstop_open_spilled_bytes The part of the open segments kept in spill files.\n"
		"# TYPE backstop_open_spilled_bytes gauge\nbackstop_open_spilled_bytes %" PRIu64 "\n"
		"# HELP backstop_spills_total Open segments spilled to files in the spool directory.\n"
		"# TYPE backstop_spills_total counter\nbackstop_spills_total %" PRIu64 "\n"
		"# HELP backstop_spool_bytes Sealed segments in the spool awaiting upload.\n"
		"# TYPE backstop_spool_bytes gauge\nbackstop_spool_bytes %" PRIu64 "\n"
		"# HELP backstop_messages_total Replication messages received.\n"
		"# TYPE backstop_messages_total counter\nbackstop_messages_total %" PRIu64 "\n"
		"# HELP backstop_received_bytes_total Bytes of replication messages received.\n"
		"# TYPE backstop_received_bytes_total counter\nbackstop_received_bytes_total %" PRIu64 "\n"
		"# HELP backstop_transactions_total Transactions received that touched archived tables.\n"
		"# TYPE backstop_transactions_total counter\nbackstop_transactions_total %" PRIu64 "\n"
		"# HELP backstop_changes_total Row changes (insert, update, delete, truncate) archived.\n"
		"# TYPE backstop_changes_total counter\nbackstop_changes_total %" PRIu64 "\n"
		"# HELP backstop_segments_uploaded_total Change segments stored.\n"
		"# TYPE backstop_segments_uploaded_total counter\nbackstop_segments_uploaded_total %" PRIu64 "\n"
		"# HELP backstop_uploaded_bytes_total Bytes stored (compressed).\n"
		"# TYPE backstop_uploaded_bytes_total counter\nbackstop_uploaded_bytes_total %" PRIu64 "\n"
		"# HELP backstop_upload_errors_total Failed storage writes (each retried).\n"
		"# TYPE backstop_upload_errors_total counter\nbackstop_upload_errors_total %" PRIu64 "\n"
		"# HELP backstop_reconnects_total Reconnections to PostgreSQL.\n"
		"# TYPE backstop_reconnects_total counter\nbackstop_reconnects_total %" PRIu64 "\n"
		"# HELP backstop_base_copies_total Base copies taken.\n"
		"# TYPE backstop_base_copies_total counter\nbackstop_base_copies_total %" PRIu64 "\n"
		"# HELP backstop_base_copy_running 1 while a base copy (new table or re-base) runs in the background.\n"
		"# TYPE backstop_base_copy_running gauge\nbackstop_base_copy_running %d\n"
		"# HELP backstop_base_copy_seconds How long the running base copy has been running (0: none).\n"
		"# TYPE backstop_base_copy_seconds gauge\nbackstop_base_copy_seconds %.1f\n"
		"# HELP backstop_checkpoints_total Recovery points verified for POST /checkpoint.\n"
		"# TYPE backstop_checkpoints_total counter\nbackstop_checkpoints_total %" PRIu64 "\n"
		"# HELP backstop_decode_rate_bytes Average bytes decoded per second since start.\n"
		"# TYPE backstop_decode_rate_bytes gauge\nbackstop_decode_rate_bytes %.0f\n"
		"# HELP backstop_upload_rate_bytes Average bytes uploaded per second since start.\n"
		"# TYPE backstop_upload_rate_bytes gauge\nbackstop_upload_rate_bytes %.0f\n",
		a->received_lsn, a->flush_lsn, a->received_lsn > a->flush_lsn ? a->received_lsn - a->flush_lsn : 0,
		a->open_bytes, a->spilled_bytes, a->metrics.spills, a->metrics.spool_bytes, a->metrics.messages, a->metrics.bytes_received,
		a->metrics.transactions, a->metrics.changes, a->metrics.segments_uploaded,
		a->metrics.bytes_uploaded, a->metrics.upload_errors, a->metrics.reconnects,
		a->metrics.base_copies, a->bjob != NULL,
		a->bjob ? (double) (clock_mono_ms() - a->bjob->started_ms) / 1000.0 : 0.0, a->metrics.checkpoints,
		up > 0 ? (double) a->metrics.bytes_received / up : 0.0,
		up > 0 ? (double) a->metrics.bytes_uploaded / up : 0.0);
	{
		strbuf extra = STRBUF_INIT;
		/* Behind: none when everything received is durable; else the age of the newest
		 * commit known durable (an upper bound: a newer one may be durable already). */
		double behind = a->received_lsn <= a->flush_lsn && a->repl != NULL ? 0.0 :
			(double) (clock_unix_us() - (a->metrics.durable_commit_time ? a->metrics.durable_commit_time :
														   clock_unix_us() - (clock_mono_ms() - a->metrics.started_ms) * 1000)) / 1e6;

		strbuf_printf(&extra,
			"# HELP backstop_build_info Backstop's version (the value is always 1).\n"
			"# TYPE backstop_build_info gauge\nbackstop_build_info{version=\"%s\"} 1\n"
			"# HELP backstop_up_seconds Seconds since the archiver started.\n"
			"# TYPE backstop_up_seconds gauge\nbackstop_up_seconds %.1f\n"
			"# HELP backstop_seconds_behind Age of the newest commit durable in storage; 0 when everything received is durable.\n"
			"# TYPE backstop_seconds_behind gauge\nbackstop_seconds_behind %.1f\n",
			PACKAGE_VERSION, up, behind < 0 ? 0.0 : behind);
		if (a->metrics.slot_retained >= 0)
			strbuf_printf(&extra,
				"# HELP backstop_slot_retained_wal_bytes WAL the replication slot holds on the server (from pg_replication_slots, at each table poll).\n"
				"# TYPE backstop_slot_retained_wal_bytes gauge\nbackstop_slot_retained_wal_bytes %" PRId64 "\n",
				a->metrics.slot_retained);
		storage_metrics(a, &extra);
		/* The last `backstop drill` (it writes DATA_DIR/drill-state.json). */
		drillstate_metrics(config_get(a->cfg, "data_dir"), &extra);
		evbuffer_add(b, extra.data, extra.len);
		strbuf_free(&extra);
	}
	evbuffer_add_printf(b, "# HELP backstop_table_archived_lsn Last LSN archived per table.\n"
						"# TYPE backstop_table_archived_lsn gauge\n");
	for (int i = 0; i < a->ntables; i++)
	{
		arch_table *t = a->tables[i];

		if (!t->active)
			continue;
		strbuf label = STRBUF_INIT;

		/* Prometheus label values escape \\, \" and newline: a name cannot forge a sample. */
		strbuf_printf(&label, "%s.%s", t->man->schema, t->man->name);
		evbuffer_add_printf(b, "backstop_table_archived_lsn{table=\"");
		for (const char *p = label.data; *p; p++)
		{
			if (*p == '\\' || *p == '"')
				evbuffer_add_printf(b, "\\%c", *p);
			else if (*p == '\n')
				evbuffer_add_printf(b, "\\n");
			else
				evbuffer_add(b, p, 1);
		}
		evbuffer_add_printf(b, "\"} %" PRIu64 "\n",
							t->man->archived_to > a->flush_lsn ? t->man->archived_to : a->flush_lsn);
		strbuf_free(&label);
	}
	evbuffer_add_printf(b, "# HELP backstop_tables_skipped Tables that cannot be archived (see backstop info).\n"
						"# TYPE backstop_tables_skipped gauge\n");
	{
		int skipped = 0;

		for (int i = 0; i < a->ntables; i++)
			if (a->tables[i]->man->status && strcmp(a->tables[i]->man->status, "skipped") == 0 &&
				!a->tables[i]->partitioned)
				skipped++;
		evbuffer_add_printf(b, "backstop_tables_skipped %d\n", skipped);
	}
	{
		int unpublished = 0;

		for (int i = 0; i < a->ntables; i++)
			if (a->tables[i]->unpublished)
				unpublished++;
		evbuffer_add_printf(b, "# HELP backstop_tables_unpublished Tables to archive that the publication does not "
							"stream: not archived (see backstop info).\n"
							"# TYPE backstop_tables_unpublished gauge\nbackstop_tables_unpublished %d\n", unpublished);
	}
	evbuffer_add_printf(b, "# HELP backstop_table_checks_total Table checks (catalog and publication) completed.\n"
						"# TYPE backstop_table_checks_total counter\nbackstop_table_checks_total %" PRIu64 "\n",
						a->table_checks);
	if (a->control)
	{
		control_stats cs;

		control_get_stats(a->control, &cs);
		evbuffer_add_printf(b,
			"# HELP backstop_control_connections Open connections to this endpoint.\n"
			"# TYPE backstop_control_connections gauge\nbackstop_control_connections %d\n"
			"# HELP backstop_control_max_connections Most connections at once (listen_max_connections, descriptor limit).\n"
			"# TYPE backstop_control_max_connections gauge\nbackstop_control_max_connections %d\n"
			"# HELP backstop_control_accepted_total Connections accepted by this endpoint.\n"
		"# TYPE backstop_control_accepted_total counter\nbackstop_control_accepted_total %" PRIu64 "\n"
			"# HELP backstop_control_timeouts_total Connections closed idle or without a complete request (listen_timeout).\n"
			"# TYPE backstop_control_timeouts_total counter\nbackstop_control_timeouts_total %" PRIu64 "\n"
			"# HELP backstop_control_unauthorized_total Requests refused for a missing or wrong token.\n"
			"# TYPE backstop_control_unauthorized_total counter\nbackstop_control_unauthorized_total %" PRIu64 "\n"
			"# HELP backstop_control_accept_errors_total Connections this endpoint failed to accept.\n"
		"# TYPE backstop_control_accept_errors_total counter\nbackstop_control_accept_errors_total %" PRIu64 "\n",
			cs.connections, cs.max_connections, cs.accepted, cs.timed_out, cs.unauthorized, cs.accept_errors);
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void
on_health(struct evhttp_request *req, void *arg)
{
	archiver *a = arg;
	char l1[LSN_BUFLEN], l2[LSN_BUFLEN];
	strbuf sb = STRBUF_INIT;
	bool ok = a->repl != NULL && !a->spool_pending;

	strbuf_printf(&sb, "{\"status\":\"%s\",\"streaming\":%s,\"received_lsn\":\"%s\",\"flushed_lsn\":\"%s\","
				  "\"spool_bytes\":%" PRIu64 ",\"upload_errors\":%" PRIu64 "}",
				  ok ? "ok" : "degraded", a->repl ? "true" : "false", lsn_format(a->received_lsn, l1),
				  lsn_format(a->flush_lsn, l2), a->metrics.spool_bytes, a->metrics.upload_errors);
	control_reply_json(req, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", sb.data);
	strbuf_free(&sb);
}

static void
on_http(struct evhttp_request *req, void *arg)
{
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

	if (path && strcmp(path, "/metrics") == 0)
		on_metrics(req, arg);
	else if (path && strcmp(path, "/health") == 0)
		on_health(req, arg);
	else if (path && strcmp(path, "/checkpoint") == 0)
	{
		if (evhttp_request_get_command(req) != EVHTTP_REQ_POST)
			control_reply_error(req, 405, "Method Not Allowed", "use POST");
		else
			on_checkpoint(req, arg);
	}
	else
		control_reply_error(req, 404, "Not Found", "endpoints: /metrics, /health, POST /checkpoint?table=S.T[&lsn=X/Y]");
}

/* ---------- periodic work ---------- */

static void
base_job_free(base_job *j)
{
	if (j == NULL)
		return;
	for (int i = 0; i < j->ntargets; i++)
	{
		free(j->targets[i].schema);
		free(j->targets[i].name);
		if (j->results)
			basecopy_result_free(&j->results[i]);
	}
	free(j->results);
	free(j->targets);
	free(j->conninfo);
	pthread_mutex_destroy(&j->cancel_lock);
	free(j);
}

static base_job *
base_job_new(archiver *a, storage *st, arch_table **list, int n)
{
	base_job *j = xcalloc(1, sizeof(base_job));

	j->conninfo = xstrdup(config_get(a->cfg, "db"));
	j->st = st;
	j->opts.codec = a->codec;
	j->opts.level = a->level;
	j->opts.chunk_size = (uint64_t) config_get_size(a->cfg, "base_chunk_size");
	j->opts.cancel = &j->cancel;
	j->opts.test_lock_key = a->test_lock_key;
	j->opts.publication = config_get(a->cfg, "publication");
	j->opts.test_snapshot_lock_key = a->test_snapshot_lock_key;
	j->ntargets = n;
	j->targets = xcalloc((size_t) n, sizeof(basecopy_target));
	for (int i = 0; i < n; i++)
	{
		j->targets[i].relid = list[i]->relid;
		j->targets[i].schema = xstrdup(list[i]->man->schema);
		j->targets[i].name = xstrdup(list[i]->man->name);
	}
	pthread_mutex_init(&j->cancel_lock, NULL);
	j->started_ms = clock_mono_ms();
	return j;
}

/* Make conn cancellable from the main thread (NULL conn: no longer). */
static void
base_job_track(base_job *j, int slot, PGconn *conn)
{
	pthread_mutex_lock(&j->cancel_lock);
	if (j->cancels[slot])
		PQfreeCancel(j->cancels[slot]);
	j->cancels[slot] = conn ? PQgetCancel(conn) : NULL;
	pthread_mutex_unlock(&j->cancel_lock);
}

/* Run a job: its own connections (a temporary slot on a replication one, the COPYs on a
 * normal one).  Used by the base-copy thread, and directly at start-up. */
static void
base_job_run(base_job *j)
{
	PGconn *conn = NULL;
	PGconn *repl = NULL;

	error_clear(&j->err);
	j->rc = BS_ERR;
	if (pgsql_connect(j->conninfo, false, "backstop basecopy", &conn, &j->err) != BS_OK ||
		pgsql_connect(j->conninfo, true, "backstop basecopy", &repl, &j->err) != BS_OK)
		goto out;
	base_job_track(j, 0, conn);
	base_job_track(j, 1, repl);
	if (__atomic_load_n(&j->cancel, __ATOMIC_RELAXED))
		error_set(&j->err, ERRCODE_CANCELED, "base copy cancelled");
	else
		j->rc = basecopy_with_temporary_slot(repl, conn, j->st, &j->opts, j->targets, j->ntargets,
											 &j->results, &j->lsn, &j->err);
	base_job_track(j, 0, NULL);
	base_job_track(j, 1, NULL);
out:
	if (conn)
		PQfinish(conn);
	if (repl)
		PQfinish(repl);
}

static void *
base_thread_main(void *arg)
{
	base_job *j = arg;

	base_job_run(j);
	__atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * Where schema changes are not captured: a base copy whose columns are not those the archive
 * has in effect at its LSN shows a change that nothing else may have seen (the table check
 * before the copy found the old columns, the copy's snapshot came after the change's commit,
 * and no row change has brought a Relation message since).  The change committed after the
 * newest position known to use the old columns and before the copy: returns that position
 * (from there to the copy, recovery cannot tell the columns), or lsn when there is nothing to
 * record (same columns, capture on, no layout yet, or a window that holds the copy already).
 */
static uint64_t
base_weak_change_from(const archiver *a, const arch_table *t, const basecopy_result *r, uint64_t lsn)
{
	const manifest *m = t->man;
	const manifest_layout *prev = manifest_layout_at(m, lsn);
	uint64_t from;

	if (prev == NULL || !ddl_weak_at(a, t, lsn) ||
		(prev->replident == r->replident && manifest_columns_equal(prev->ncols, prev->columns, r->ncols, r->cols)))
		return lsn;
	/* A window that holds the copy's LSN bounds the change already (the copy lies after it). */
	if (manifest_schema_gap_at(m, lsn) != NULL)
		return lsn;
	/* Known to use the old columns: where they start, a base with them, and (the stream's
	 * layout being those) its newest commit with them; a lower bound is what is safe. */
	from = newest_base_with_layout(m, prev->id, lsn, prev->from_lsn);
	if (t->layout_id == prev->id && t->layout_seen <= lsn && t->layout_seen > from)
		from = t->layout_seen;
	return from;
}

/*
 * Add a copy to its table (lock held, or single-threaded).  The table may have been dropped
 * while it was copied: the copy is then discarded (its chunks stay unreferenced in storage).
 * Returns the table, NULL when discarded.
 */
static arch_table *
apply_base(archiver *a, const basecopy_result *r, uint64_t lsn)
{
	arch_table *t = find_table(a, r->relid);
	const manifest_layout *bl;
	char l[LSN_BUFLEN];
	bs_error err;
	uint64_t weak_from;

	error_clear(&err);
	if (t == NULL || !t->active)
	{
		log_warning("base copy of table %u at %s discarded: the table is no longer archived (dropped meanwhile?)",
					r->relid, lsn_format(lsn, l));
		return NULL;
	}
	if (t->unpublished)
	{
		log_warning("base copy of %s.%s at %s discarded: the table left the publication meanwhile", t->man->schema,
					t->man->name, lsn_format(lsn, l));
		return NULL;
	}
	/* Before the copy's layout is placed: that may move the layouts. */
	weak_from = base_weak_change_from(a, t, r, lsn);
	if (basecopy_apply(t->man, r, &err) != BS_OK)
	{
		log_warning("%s (a new one is taken at a later check)", err.message);
		t->rebase_wanted = true;
		return NULL;
	}
	if (weak_from < lsn)
	{
		char l1[LSN_BUFLEN];

		manifest_add_schema_gap(t->man, weak_from, lsn);
		log_info("table %s.%s: the base copy at %s has other columns than the archive had there (schema changes "
				 "are not captured): they changed at an unknown point between %s and the copy; recovery points in "
				 "between are refused", t->man->schema, t->man->name, lsn_format(lsn, l), lsn_format(weak_from, l1));
	}
	/* Back in the archived set: its archive resumes at this copy. */
	manifest_close_open_gap(t->man, lsn);
	/* A schema change found by a table check: the copy shows the new columns when taken after
	 * the check saw them (every copy of a later run is). */
	if (manifest_open_schema_gap(t->man) != NULL)
	{
		if (t->schema_detect_lsn == 0 || lsn > t->schema_detect_lsn)
		{
			manifest_close_open_schema_gap(t->man, lsn);
			log_info("table %s.%s: the base copy at %s ends the window of an unknown schema change",
					 t->man->schema, t->man->name, lsn_format(lsn, l));
		}
		if (manifest_open_schema_gap(t->man) != NULL)
			t->rebase_wanted = true;
	}
	/* The re-base a column change asked for: done when this copy lies after the change. */
	if (t->man->rebase_requested_at != 0)
	{
		if (lsn > t->man->rebase_requested_at)
		{
			t->man->rebase_requested_at = 0;
			t->rebase_done_lsn = lsn;
		}
		else
			t->rebase_wanted = true;
	}
	if (strcmp(t->man->status ? t->man->status : "", "active") != 0)
	{
		free(t->man->status);
		t->man->status = xstrdup("active");
	}
	/* A first base covers the table up to its LSN.  A re-base may lie ahead of the stream:
	 * archived_to moves when the stream has caught up (store_head). */
	if (t->man->nbases == 1 && t->man->archived_to < lsn)
		t->man->archived_to = lsn;
	/* A column added after the base (the stream ran on during the copy) asks for another,
	 * as handle_relation does for one added before. */
	bl = manifest_layout_by_id(t->man, t->man->bases[t->man->nbases - 1].layout_id);
	for (int i = 0; i < t->man->nlayouts; i++)
		if (t->man->layouts[i].from_lsn > lsn && bl && t->man->layouts[i].ncols > bl->ncols)
			t->rebase_wanted = true;
	/* Stored by the uploader: one writer per manifest keeps the newest version last. */
	t->dirty = true;
	t->base_unstored = true;
	t->change_bytes = 0;
	a->metrics.base_copies++;
	pthread_cond_signal(&a->wake);
	return t;
}

/* The job has finished (thread joined, or run directly): add its copies, or log why not. */
static void
finish_base_job(archiver *a, base_job *j)
{
	if (j->rc != BS_OK && __atomic_load_n(&j->cancel, __ATOMIC_RELAXED))
	{
		/* The tables have no new base yet: the next start takes them (nbases == 0 or the
		 * usual re-base conditions). */
		log_info("base copy cancelled: the archiver is stopping");
		return;
	}
	if (j->rc != BS_OK)
	{
		log_warning("base copy failed (retried at a later check): %s", j->err.message);
		for (int i = 0; i < j->ntargets; i++)
		{
			arch_table *t = find_table(a, j->targets[i].relid);

			if (t && t->active)
				t->rebase_wanted = true;
		}
		return;
	}
	for (int i = 0; i < j->ntargets; i++)
		apply_base(a, &j->results[i], j->lsn);
	log_info("%d base cop%s done in %.1f s", j->ntargets, j->ntargets == 1 ? "y" : "ies",
			 (double) (clock_mono_ms() - j->started_ms) / 1000.0);
}

/*
 * Start copying these tables in the base-copy thread (lock held).  The stream keeps being
 * read meanwhile; the tables are already active, so their changes are kept from now on,
 * and those committed before the copy's point are skipped at recovery.
 */
static void
start_base_job(archiver *a, arch_table **list, int n)
{
	base_job *j = base_job_new(a, a->st_base, list, n);

	/* Cleared now, not when the copy is added: a layout change during the copy asks again. */
	for (int i = 0; i < n; i++)
		list[i]->rebase_wanted = false;
	if (pthread_create(&a->base_thread, NULL, base_thread_main, j) != 0)
	{
		log_warning("could not start the base-copy thread (retried at a later check)");
		for (int i = 0; i < n; i++)
			list[i]->rebase_wanted = true;
		base_job_free(j);
		return;
	}
	a->bjob = j;
}

/* The base-copy thread has been joined: add its copies and forget the job (lock held). */
static void
retire_base_job(archiver *a)
{
	finish_base_job(a, a->bjob);
	base_job_free(a->bjob);
	a->bjob = NULL;
}

/* The base-copy thread has finished: join it and add its copies (lock held). */
static void
reap_base_job(archiver *a)
{
	if (a->bjob == NULL || !__atomic_load_n(&a->bjob->done, __ATOMIC_ACQUIRE))
		return;
	pthread_join(a->base_thread, NULL);
	retire_base_job(a);
}

/*
 * Stopping: cancel the running copy (its COPY or slot creation is interrupted with PQcancel;
 * rows are no longer read) and wait for the thread, without the lock (the uploader may need
 * it meanwhile).  reap_base_job then keeps a copy that completed anyway.
 */
static void
stop_base_job(archiver *a)
{
	if (a->bjob == NULL)
		return;
	__atomic_store_n(&a->bjob->cancel, 1, __ATOMIC_RELAXED);
	log_info("stopping: waiting for the base copy to stop");
	/* Again until it has stopped: a cancel that arrives between two statements is lost,
	 * and the next one may wait on a lock, where no row check can see the flag. */
	while (!__atomic_load_n(&a->bjob->done, __ATOMIC_ACQUIRE))
	{
		pthread_mutex_lock(&a->bjob->cancel_lock);
		for (int i = 0; i < 2; i++)
		{
			char buf[256];

			if (a->bjob->cancels[i])
				PQcancel(a->bjob->cancels[i], buf, sizeof(buf));
		}
		pthread_mutex_unlock(&a->bjob->cancel_lock);
		for (int i = 0; i < 10 && !__atomic_load_n(&a->bjob->done, __ATOMIC_ACQUIRE); i++)
			usleep(50 * 1000);
	}
	pthread_join(a->base_thread, NULL);
	/* Joined: reap_base_job must not join again.  A copy that completed anyway is kept. */
	pthread_mutex_lock(&a->lock);
	retire_base_job(a);
	pthread_mutex_unlock(&a->lock);
}

/* Start-up (no stream yet, single-threaded): copy in this thread. */
static int
take_new_bases_now(archiver *a, arch_table **list, int n, bs_error *err)
{
	base_job *j = base_job_new(a, a->st_main, list, n);

	base_job_run(j);
	if (j->rc != BS_OK)
	{
		*err = j->err;
		base_job_free(j);
		return BS_ERR;
	}
	for (int i = 0; i < n; i++)
	{
		list[i]->rebase_wanted = false;
		apply_base(a, &j->results[i], j->lsn);
	}
	base_job_free(j);
	return BS_OK;
}

/* A table that cannot be archived, in the log.  A partitioned table is no loss (its
 * partitions are archived): said, but not as a warning, and not counted as skipped. */
static void
report_skipped(const catalog_table *ct)
{
	if (ct->relkind == 'p')
		log_info("table %s.%s: %s", ct->schema, ct->name, ct->finding);
	else
		log_warning("table %s.%s is NOT archived: %s", ct->schema, ct->name, ct->finding);
}

/*
 * Whether relid is gone from the catalog and, if so, the server's WAL insert position now:
 * the statement's snapshot, taken before the position is read, saw the DROP committed, so
 * the DROP's commit record (and every change of the table before it) lies before *pos.
 */
static int
table_gone_position(PGconn *conn, uint32_t relid, bool *gone, uint64_t *pos, bs_error *err)
{
	PGresult *res;
	char oid[16];
	const char *params[1] = {oid};

	snprintf(oid, sizeof(oid), "%u", relid);
	if (pgsql_query_params(conn, "SELECT NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = $1::oid), "
						   "pg_current_wal_insert_lsn()::text", 1, params, &res, err) != BS_OK)
		return BS_ERR;
	*gone = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	if (PQntuples(res) != 1 || lsn_parse(PQgetvalue(res, 0, 1), pos) != BS_OK)
	{
		PQclear(res);
		return error_set(err, ERRCODE_PROTOCOL, "could not read the server's WAL insert position");
	}
	PQclear(res);
	return BS_OK;
}

/*
 * A table found dropped: keep its changes until the stream has passed pos, then mark it
 * dropped (finish_drops).  Decoding reads the catalog as it was when each change was made,
 * so changes committed before the DROP still arrive after the table is gone.
 */
static void
table_found_gone(archiver *a, arch_table *t, uint64_t pos, const char *when)
{
	char l[LSN_BUFLEN];

	t->gone_lsn = pos;
	t->gone_passed = false;
	t->rebase_wanted = false;
	if (a->gone_next == 0 || pos < a->gone_next)
		a->gone_next = pos;
	log_warning("table %s.%s was dropped%s; its changes committed before the drop are still archived "
				"from the stream (the drop lies before %s), then it is marked dropped",
				t->man->schema, t->man->name, when, lsn_format(pos, l));
}

/*
 * The stream passes a dropped table's position only once WAL after it is decoded, which on
 * an idle server may never happen by itself.  A tiny transaction writing a logical message
 * (pgoutput does not send it) puts WAL there at once; failing (no privilege) only delays.
 */
static void
write_wal_marker(archiver *a)
{
	bs_error err;

	error_clear(&err);
	if (pgsql_exec(a->conn, "BEGIN; SET LOCAL synchronous_commit = local; "
				   "SELECT pg_logical_emit_message(true, 'backstop', ''); COMMIT", &err) != BS_OK)
	{
		log_debug("could not write WAL past a dropped table: %s", err.message);
		pgsql_exec(a->conn, "ROLLBACK", &err);
	}
}

/* The stream has passed a dropped table's gone_lsn: ask for the seal (or the head) that stores
 * everything before it, so that the table is marked dropped without waiting for segment_age.
 * Called at every commit and keepalive: a comparison unless a dropped table waits. */
static void
check_gone_passed(archiver *a)
{
	bs_error err;

	if (a->gone_next == 0 || a->received_lsn < a->gone_next || a->in_txn)
		return;
	a->gone_next = 0;
	for (int i = 0; i < a->ntables; i++)
	{
		arch_table *t = a->tables[i];

		if (t->gone_lsn == 0 || t->gone_passed || !t->active)
			continue;
		if (a->received_lsn >= t->gone_lsn)
			t->gone_passed = true;
		else if (a->gone_next == 0 || t->gone_lsn < a->gone_next)
			a->gone_next = t->gone_lsn;
	}
	error_clear(&err);
	if (a->open_bytes > 0)
	{
		if (seal_epoch(a, false, &err) != BS_OK)
			log_warning("%s", err.message);
	}
	else if (!a->spool_pending && a->jobs_head == NULL)
		idle_progress(a, a->last_commit_end, true);
}

/* New or dropped tables, and re-bases that keep recovery time bounded. */
/*
 * Coverage is claimed only for what the stream delivers (doc/archiving.md, "The
 * publication"): the publication is made right where this role may (catalog_sync_publication),
 * then every table of the list it does not publish is taken out of it (usable = false,
 * unpublished, with a finding).  Tables it publishes are noted as seen at the check's
 * position (pub_seen_lsn), the start of their archive's end should they leave it.
 */
static int
check_publication(archiver *a, catalog_table_list *list, bool startup, bs_error *err)
{
	const char *pubname = config_get(a->cfg, "publication");
	char *as_is = NULL;
	uint32_t *relids = NULL;
	char *state = NULL;
	uint64_t seen = 0;

	if (catalog_sync_publication(a->conn, pubname, list, &as_is, err) != BS_OK)
	{
		/* At start-up there is no stream without it; later (a table dropped between the two
		 * reads, say) the next check tries again, and what it publishes is read below. */
		if (startup)
			return BS_ERR;
		log_warning("%s", err->message);
		error_clear(err);
	}
	if (as_is && (a->pub_as_is == NULL || strcmp(as_is, a->pub_as_is) != 0))
		log_info("publication \"%s\" is used as it is (%s): only the tables it publishes are archived", pubname,
				 as_is);
	free(a->pub_as_is);
	a->pub_as_is = as_is;
	relids = xcalloc((size_t) list->count + 1, sizeof(uint32_t));
	state = xcalloc((size_t) list->count + 1, 1);
	for (int i = 0; i < list->count; i++)
		relids[i] = list->tables[i].relid;
	if (catalog_publication_members(a->conn, pubname, list->count, relids, state, &seen, err) != BS_OK)
	{
		free(relids);
		free(state);
		return BS_ERR;
	}
	for (int i = 0; i < list->count; i++)
	{
		catalog_table *ct = &list->tables[i];
		strbuf sb = STRBUF_INIT;
		char *q;

		if (state[i] == 'p')
		{
			arch_table *t = find_table(a, ct->relid);

			if (t)
				t->pub_seen_lsn = seen;
			continue;
		}
		/* Gone meanwhile: the next check finds it dropped. */
		if ((state[i] != 'n' && state[i] != 'f') || !ct->usable)
			continue;
		q = pgsql_qualified_name(ct->schema, ct->name);
		if (state[i] == 'f')
			strbuf_printf(&sb, "not in publication \"%s\" as a whole: it is published with a row filter or a "
						  "column list, so only part of its changes reach the archiver, and it is not archived "
						  "(the publication's owner can publish all of it: ALTER PUBLICATION %s SET TABLE ...)",
						  pubname, pubname);
		else
			strbuf_printf(&sb, "not in publication \"%s\", which the replication slot streams: its changes do not "
						  "reach the archiver, so it is not archived (%s; the publication's owner can add it: "
						  "ALTER PUBLICATION %s ADD TABLE %s, or use a publication FOR ALL TABLES)",
						  pubname, as_is ? as_is : "it could not be added", pubname, q);
		free(q);
		free(ct->finding);
		ct->finding = strbuf_detach(&sb, NULL);
		ct->usable = false;
		ct->unpublished = true;
	}
	free(state);
	free(relids);
	return BS_OK;
}

/*
 * The position from which an archived table's changes are not known to be archived.  Seen
 * published by a check that read seen_lsn first, the table left with an ALTER PUBLICATION whose
 * commit record lies at or after seen_lsn: every commit up to seen_lsn is still streamed (and
 * archived: the table stays active), hence seen_lsn + 1.  Not seen by this run: where its
 * archive is complete.
 */
static uint64_t
unpublished_from(archiver *a, const arch_table *t)
{
	if (t->pub_seen_lsn)
		return t->pub_seen_lsn + 1;
	return audit_complete_to(t->man, &a->head);
}

/*
 * A table of the list that the publication does not stream (any more).  One never archived is
 * recorded as skipped, with the finding.  An archived one keeps its manifest and history, and
 * its archive ends at from: an open gap (doc/FORMAT.md, "gaps") that the next base copy, once
 * it is published again, closes; recovery refuses points from there on.  True when the
 * manifest changed.
 */
static bool
table_unpublished(arch_table *t, const catalog_table *ct, uint64_t from)
{
	char l[LSN_BUFLEN];
	bool was = t->unpublished;

	t->unpublished = true;
	if (t->man->nbases == 0 || strcmp(t->man->status, "skipped") == 0)
	{
		if (t->man->status && strcmp(t->man->status, "skipped") == 0 && t->man->finding &&
			strcmp(t->man->finding, ct->finding) == 0)
			return false;
		free(t->man->status);
		free(t->man->finding);
		t->man->status = xstrdup("skipped");
		t->man->finding = xstrdup(ct->finding);
		report_skipped(ct);
		t->dirty = true;
		return true;
	}
	if (manifest_open_gap(t->man) != NULL)
	{
		t->active = true;
		if (!was)
			log_warning("table %s.%s is still not archived (its archive ends at %s): %s", t->man->schema,
						t->man->name, lsn_format(manifest_open_gap(t->man)->from, l), ct->finding);
		return false;
	}
	manifest_add_gap(t->man, from, UINT64_MAX);
	/* What the stream still carries of it (commits before it left) is archived as before. */
	t->active = true;
	t->dirty = true;
	log_warning("table %s.%s left the archived set: %s; its archive ends at %s (recovery points from there on are "
				"refused) until it is published again and a new base copy is taken",
				t->man->schema, t->man->name, ct->finding, lsn_format(from, l));
	return true;
}

/*
 * A table archived by an earlier run that is no longer among the tables to archive (removed
 * from --tables, or out of --all-tables' reach): its archive ends where it was complete, as
 * an open gap, so that no later point is recovered from a history that stopped.  Start-up.
 */
static int
table_left_archive(archiver *a, manifest *m, bs_error *err)
{
	uint64_t from = audit_complete_to(m, &a->head);
	char l[LSN_BUFLEN];

	if (m->nbases == 0 || manifest_open_gap(m) != NULL)
		return BS_OK;
	manifest_add_gap(m, from, UINT64_MAX);
	log_warning("table %s.%s (relid %u) still exists but is no longer among the tables to archive: its archive "
				"ends at %s (recovery points from there on are refused)", m->schema, m->name, m->relid,
				lsn_format(from, l));
	return store_manifest_now(a, m, err);
}

static int
poll_tables(archiver *a, bs_error *err)
{
	catalog_table_list list;
	arch_table **need = NULL;
	int nneed = 0;
	bool found_gone = false;
	int64_t rebase_age_us = config_get_duration_ms(a->cfg, "rebase_age") * 1000;
	int64_t ratio = config_get_int(a->cfg, "rebase_ratio");
	int64_t min_interval_us = config_get_duration_ms(a->cfg, "rebase_min_interval") * 1000;

	if (PQstatus(a->conn) != CONNECTION_OK && reconnect_conn(a, err) != BS_OK)
		return BS_ERR;
	if (catalog_list_tables(a->conn, config_get(a->cfg, "tables"), config_get_bool(a->cfg, "all_tables"),
							&list, err) != BS_OK)
	{
		/* Every listed table dropped is not an error here: they are marked below. */
		if (strcmp(err->code, ERRCODE_UNDEFINED_TABLE) != 0)
			return BS_ERR;
		memset(&list, 0, sizeof(list));
	}
	if (check_publication(a, &list, false, err) != BS_OK)
	{
		catalog_table_list_free(&list);
		return BS_ERR;
	}
	for (int i = 0; i < a->ntables; i++)
	{
		arch_table *t = a->tables[i];

		if (t->active && t->gone_lsn == 0 && catalog_find(&list, t->relid) == NULL &&
			strcmp(t->man->status, "active") == 0)
		{
			bool gone;
			uint64_t pos;

			/* Not marked dropped yet: its changes may still be in the stream (table_found_gone). */
			if (table_gone_position(a->conn, t->relid, &gone, &pos, err) != BS_OK)
			{
				log_warning("table check of %s.%s: %s", t->man->schema, t->man->name, err->message);
				continue;
			}
			if (gone)
			{
				table_found_gone(a, t, pos, "");
				found_gone = true;
			}
		}
	}
	if (found_gone)
		write_wal_marker(a);
	for (int i = 0; i < list.count; i++)
	{
		catalog_table *ct = &list.tables[i];
		arch_table *t = find_table(a, ct->relid);

		if (t && ct->unpublished)
		{
			/* Out of the publication (or never in it): its changes do not arrive.  Its
			 * renames are followed all the same, so that recover refuses it by its name
			 * now with the reason rather than "not in the archive". */
			ddl_poll_rename(a, t, ct);
			table_unpublished(t, ct, unpublished_from(a, t));
			continue;
		}
		if (t && t->unpublished)
		{
			log_info("table %s.%s is in publication \"%s\" again: taking a new base copy", ct->schema, ct->name,
					 config_get(a->cfg, "publication"));
			t->unpublished = false;
			t->active = true;
		}
		if (t && t->active)
		{
			int64_t base_age;

			ddl_poll_rename(a, t, ct);
			if (ddl_poll_layout(a, t, err) != BS_OK)
			{
				log_warning("table check of %s.%s: %s", t->man->schema, t->man->name, err->message);
				error_clear(err);
			}
			base_age = t->man->nbases ? clock_unix_us() - t->man->bases[t->man->nbases - 1].time : 0;

			/* A busy small table outgrows its base in seconds: re-basing it at every check
			 * would stall the stream for nothing, hence the minimum interval. */
			/* nbases == 0: a first base that failed or was discarded is taken again. */
			if (t->rebase_wanted || t->man->nbases == 0 || manifest_open_gap(t->man) != NULL ||
				(t->man->nbases && rebase_age_us > 0 && base_age > rebase_age_us) ||
				(ratio > 0 && base_age >= min_interval_us &&
				 t->change_bytes * 100 > (uint64_t) ratio * (table_base_bytes(t->man) + 1)))
			{
				need = xrealloc(need, (size_t) (nneed + 1) * sizeof(arch_table *));
				need[nneed++] = t;
			}
			continue;
		}
		if (load_table(a, a->st_main, ct->relid, ct->schema, ct->name, ct->usable, &t, err) != BS_OK)
			goto fail;
		if (ct->unpublished)
		{
			table_unpublished(t, ct, unpublished_from(a, t));
			continue;
		}
		if (!ct->usable)
		{
			t->partitioned = ct->relkind == 'p';
			if (t->man->status == NULL || strcmp(t->man->status, "skipped") != 0 ||
				t->man->finding == NULL || strcmp(t->man->finding, ct->finding) != 0)
			{
				free(t->man->status);
				free(t->man->finding);
				t->man->status = xstrdup("skipped");
				t->man->finding = xstrdup(ct->finding);
				report_skipped(ct);
				t->dirty = true;
			}
			continue;
		}
		if (t->man->nbases == 0 || strcmp(t->man->status, "active") != 0 || manifest_open_gap(t->man) != NULL)
		{
			need = xrealloc(need, (size_t) (nneed + 1) * sizeof(arch_table *));
			need[nneed++] = t;
		}
	}
	/* One job at a time: what is needed meanwhile is found again at the next check (so no
	 * table is queued while it is being copied). */
	if (nneed > 0 && a->bjob == NULL)
	{
		log_info("taking %d base cop%s in the background", nneed, nneed == 1 ? "y" : "ies");
		start_base_job(a, need, nneed);
	}
	free(need);
	catalog_table_list_free(&list);
	return BS_OK;
fail:
	free(need);
	catalog_table_list_free(&list);
	return BS_ERR;
}

/*
 * The test hook BACKSTOP_TEST_TABLE_CHECK_LOCK (doc/HACKING.md): while a test holds the advisory
 * lock, table checks are skipped (and say so in the log), so that the test decides what happens
 * between two of them; the rest of the loop (the stream, base copies added) runs on.
 */
static bool
table_check_held(archiver *a)
{
	char sql[128];
	PGresult *res;
	bs_error e;
	bool held;

	if (a->test_check_lock_key == 0)
		return false;
	error_clear(&e);
	snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock_shared(%lld)", (long long) a->test_check_lock_key);
	if (pgsql_query(a->conn, sql, &res, &e) != BS_OK)
		return false;			/* the check itself reports a lost connection */
	held = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "f") == 0;
	PQclear(res);
	if (held)
		log_info("table check skipped: a test holds advisory lock %lld (BACKSTOP_TEST_TABLE_CHECK_LOCK)",
				 (long long) a->test_check_lock_key);
	else
	{
		snprintf(sql, sizeof(sql), "SELECT pg_advisory_unlock_shared(%lld)", (long long) a->test_check_lock_key);
		(void) pgsql_exec(a->conn, sql, &e);
	}
	return held;
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	archiver *a = arg;
	int64_t now = clock_mono_ms();
	bs_error err;

	(void) fd;
	(void) what;
	error_clear(&err);
	if (lease_keeper_lost(a->hold.keeper, &err))
	{
		archiver_fail(a, &err);
		return;
	}
	if (a->repl == NULL && now >= a->reconnect_ms && !a->stopping && !a->slot_lost)
	{
		if (start_replication(a, &err) != BS_OK)
		{
			schedule_reconnect(a, &err);
			/* A checkpoint waits for the stream: no long back-off meanwhile. */
			if (a->pending && a->reconnect_ms > now + CONN_RETRY_MS)
				a->reconnect_ms = now + CONN_RETRY_MS;
		}
		else
		{
			a->reconnect_delay_ms = 1000;
			/* Checkpoints asked while the stream was down: the server's position now. */
			if (a->pending && send_status(a, true, &err) != BS_OK)
				schedule_reconnect(a, &err);
		}
	}
	if (a->open_bytes > 0 && !a->in_txn && a->open_since_ms &&
		now - a->open_since_ms >= config_get_duration_ms(a->cfg, "segment_age"))
	{
		if (seal_epoch(a, false, &err) != BS_OK)
		{
			archiver_fail(a, &err);
			return;
		}
	}
	else if (a->open_bytes == 0 && !a->in_txn && !a->spool_pending && a->jobs_head == NULL)
		idle_progress(a, a->last_commit_end, false);
	else
		idle_progress(a, 0, false);	/* a throttled earlier request, when its time comes */
	if (a->repl && (a->flush_lsn > a->last_sent_flush ||
					now - a->last_status_ms >= config_get_duration_ms(a->cfg, "status_interval")))
	{
		if (send_status(a, false, &err) != BS_OK)
			schedule_reconnect(a, &err);
	}
	reap_base_job(a);
	track_progress(a);
	if (now - a->last_poll_ms >= config_get_duration_ms(a->cfg, "table_poll_interval"))
	{
		a->last_poll_ms = now;
		if (table_check_held(a))
			;					/* skipped: a test holds the check back */
		else if (poll_tables(a, &err) != BS_OK)
			log_warning("table check failed: %s", err.message);
		else
			a->table_checks++;
		read_slot_wal(a, false);
	}
	if (a->pending)
	{
		position_checkpoints(a);
		answer_checkpoints(a, false, NULL);
	}
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	archiver *a = arg;

	(void) what;
	if (sig == SIGHUP)
	{
		bs_config fresh;
		bs_error err;
		char **pos = NULL;
		int npos = 0;
		bool usage = false;
		char *argv[2] = {"--config", a->cfg->config_file};
		log_level level;

		/* Re-read the file; flags and environment of the original start still apply on top
		 * for options that were set that way. */
		error_clear(&err);
		if (a->cfg->config_file == NULL)
		{
			log_info("SIGHUP: no configuration file to reload");
			return;
		}
		if (config_load(&fresh, 2, argv, NULL, &pos, &npos, &usage, &err) != BS_OK)
		{
			log_error("SIGHUP: configuration not reloaded: %s", err.message);
			config_free(&fresh);
			free(pos);
			return;
		}
		for (int i = 0; config_options[i].name; i++)
		{
			const char *name = config_options[i].name;

			if (a->cfg->values[i].source <= SOURCE_FILE && fresh.values[i].source == SOURCE_FILE &&
				(strcmp(name, "segment_size") == 0 || strcmp(name, "segment_age") == 0 ||
				 strcmp(name, "log_level") == 0 || strcmp(name, "rebase_age") == 0 ||
				 strcmp(name, "rebase_ratio") == 0 || strcmp(name, "rebase_min_interval") == 0 ||
				 strcmp(name, "spool_limit") == 0 || strcmp(name, "open_memory_limit") == 0 ||
				 strcmp(name, "status_interval") == 0 || strcmp(name, "table_poll_interval") == 0))
				config_set(a->cfg, name, fresh.values[i].value, SOURCE_FILE);
		}
		a->segment_size = config_get_size(a->cfg, "segment_size");
		a->open_memory_limit = (uint64_t) config_get_size(a->cfg, "open_memory_limit");
		a->spool_limit = config_get_size(a->cfg, "spool_limit");
		if (log_level_parse(config_get(a->cfg, "log_level"), &level) == 0)
			log_configure(level, strcmp(config_get(a->cfg, "log_format"), "json") == 0);
		config_free(&fresh);
		free(pos);
		log_info("SIGHUP: configuration reloaded from %s", a->cfg->config_file);
		return;
	}
	log_info("received %s, finishing", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	a->stopping = true;
	event_base_loopbreak(a->evbase);
}

/* ---------- main-loop callbacks run with the lock held ---------- */

static void
on_notify(evutil_socket_t fd, short what, void *arg)
{
	archiver *a = arg;
	char buf[64];
	bs_error err;

	(void) what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	error_clear(&err);
	if (a->uploader_failed)
	{
		archiver_fail(a, &a->uploader_err);
		return;
	}
	if (a->repl && a->flush_lsn > a->last_sent_flush && send_status(a, false, &err) != BS_OK)
		schedule_reconnect(a, &err);
	if (a->pending)
		answer_checkpoints(a, false, NULL);
}

#define LOCKED_CALLBACK(name, fn) \
	static void name(evutil_socket_t fd, short what, void *arg) \
	{ \
		archiver *a = arg; \
		pthread_mutex_lock(&a->lock); \
		fn(fd, what, arg); \
		pthread_mutex_unlock(&a->lock); \
	}
LOCKED_CALLBACK(locked_repl_readable, on_repl_readable)
LOCKED_CALLBACK(locked_tick, on_tick)
LOCKED_CALLBACK(locked_signal, on_signal)
LOCKED_CALLBACK(locked_notify, on_notify)

static void
locked_http(struct evhttp_request *req, void *arg)
{
	archiver *a = arg;

	pthread_mutex_lock(&a->lock);
	on_http(req, arg);
	pthread_mutex_unlock(&a->lock);
}

/* ---------- start-up ---------- */

/* An archived table missing from the catalog at start-up (m is taken over). */
static int
start_gone_table(archiver *a, manifest *m, bs_error *err)
{
	bool gone;
	uint64_t pos;

	/* Not older than head.json records (a rolled-back manifest refuses the start). */
	if (check_generation(a, m->relid, m, err) != BS_OK)
	{
		manifest_free(m);
		return BS_ERR;
	}
	if (strcmp(m->status, "active") != 0 || find_table(a, m->relid) != NULL)
	{
		manifest_free(m);
		return BS_OK;
	}
	if (table_gone_position(a->conn, m->relid, &gone, &pos, err) != BS_OK)
	{
		manifest_free(m);
		return BS_ERR;
	}
	if (!gone)
	{
		/* Renamed (--tables names the old name) or otherwise out of the archived set. */
		int rc = table_left_archive(a, m, err);

		manifest_free(m);
		return rc;
	}
	table_found_gone(a, add_table(a, m, true), pos, " while the archiver was stopped");
	return BS_OK;
}

/*
 * Archived tables that no longer exist: dropped while the archiver was stopped.  Their
 * changes since the slot's confirmed position are still in the stream and are archived like
 * any others until it passes the drop.  A name in --tables that was never archived is refused
 * (probably a typo).  Every active manifest of a table no longer in the catalog is one (a
 * table dropped and re-created under its name, say); a manifest that cannot be read is
 * reported and left alone.
 */
static int
find_gone_tables(archiver *a, const catalog_table_list *list, bs_error *err)
{
	uint32_t *relids = NULL;
	int n = 0;

	for (int i = 0; i < list->nmissing; i++)
	{
		manifest *m = NULL;

		if (audit_find_table(a->st, &a->head, list->missing[i], &m, err) != BS_OK)
		{
			if (strcmp(err->code, ERRCODE_UNDEFINED_TABLE) == 0)
				return error_set(err, ERRCODE_UNDEFINED_TABLE, "table \"%s\" does not exist and was never archived",
								 list->missing[i]);
			return error_prefix(err, "table \"%s\" does not exist", list->missing[i]);
		}
		if (start_gone_table(a, m, err) != BS_OK)
			return BS_ERR;
	}
	if (manifest_list_relids(a->st, &relids, &n, err) != BS_OK)
		return BS_ERR;
	for (int i = 0; i < n; i++)
	{
		manifest *m = NULL;
		bool exists;
		bs_error lerr;

		if (catalog_find(list, relids[i]) != NULL || find_table(a, relids[i]) != NULL)
			continue;
		error_clear(&lerr);
		if (manifest_load(a->st, relids[i], &m, &exists, &lerr) != BS_OK)
		{
			if (strcmp(lerr.code, ERRCODE_DATA_CORRUPTED) != 0)
			{
				*err = lerr;
				free(relids);
				return BS_ERR;
			}
			log_warning("%s (not a table of the database now; left alone)", lerr.message);
			continue;
		}
		if (exists && start_gone_table(a, m, err) != BS_OK)
		{
			free(relids);
			return BS_ERR;
		}
	}
	free(relids);
	if (a->gone_next != 0)
		write_wal_marker(a);
	return BS_OK;
}

/*
 * Schema changes from the stream.  The event triggers (ddl.c) write a transactional
 * backstop.ddl message in the transaction of each DDL, so drops, renames and new layouts
 * are attributed to that transaction's commit LSN, not to when a poll noticed them.
 */

/* Record on the table's manifest since when its schema changes are captured (or that they
 * are not, which info and recover report). */
static void
ddl_note_capture(archiver *a, arch_table *t)
{
	uint64_t want = a->ddl_capture ? (t->man->ddl_capture_from ? t->man->ddl_capture_from : a->ddl_capture_from) : 0;

	if (t->man->ddl_capture_from != want && strcmp(t->man->status, "active") == 0)
	{
		t->man->ddl_capture_from = want;
		t->dirty = true;
	}
}

/* Install (or find) the event triggers per --ddl-capture; the position from which schema
 * changes are captured is read after they are in place. */
static int
ddl_setup(archiver *a, bs_error *err)
{
	const char *mode = config_get(a->cfg, "ddl_capture");
	const char *why = NULL;
	char *pos = NULL;
	bool capturing = false;

	a->ddl_capture = false;
	a->ddl_capture_from = 0;
	if (mode && strcmp(mode, "off") == 0)
		why = "--ddl-capture off";
	else if (ddl_install(a->conn, &capturing, &why, err) != BS_OK)
	{
		if (mode && strcmp(mode, "on") == 0)
			return BS_ERR;
		log_warning("%s", err->message);
		why = "the event triggers could not be created";
		error_clear(err);
	}
	if (!capturing)
	{
		if (mode && strcmp(mode, "on") == 0)
			return error_set(err, ERRCODE_PERMISSION, "--ddl-capture on: schema changes cannot be captured: %s", why);
		log_warning("schema changes are NOT captured in the stream (%s): a schema change after a table's last "
					"row change is not in the archive at its position (see doc/archiving.md)", why);
		return BS_OK;
	}
	if (pgsql_query_value(a->conn, "SELECT pg_current_wal_insert_lsn()::text", &pos, err) != BS_OK)
		return BS_ERR;
	if (lsn_parse(pos, &a->ddl_capture_from) != BS_OK)
	{
		free(pos);
		return error_set(err, ERRCODE_PROTOCOL, "could not read the server's WAL insert position");
	}
	free(pos);
	a->ddl_capture = true;
	log_info("schema changes are captured in the stream (event triggers of schema %s)", DDL_SCHEMA);
	return BS_OK;
}

/* A DROP read from the stream: checked against the catalog (a message can be written by any
 * role allowed to call pg_logical_emit_message), then the table's window ends exactly there. */
static void
ddl_table_dropped(archiver *a, arch_table *t)
{
	bool gone = false;
	uint64_t pos;
	bs_error err;
	char l[LSN_BUFLEN];

	if (t->drop_lsn == a->txn_final_lsn)
		return;
	if (!t->active || strcmp(t->man->status, "active") != 0)
	{
		/* Marked dropped already (by a poll, before this run read its DROP): refine. */
		if (strcmp(t->man->status, "dropped") == 0 && t->man->drop_lsn == 0 &&
			a->txn_final_lsn < t->man->dropped_at_lsn && a->txn_final_lsn >= manifest_dropped_after(t->man))
		{
			t->drop_lsn = t->man->drop_lsn = a->txn_final_lsn;
			t->dirty = true;
		}
		return;
	}
	/*
	 * The walsender decodes a commit as soon as its WAL is flushed, a moment before the
	 * transaction becomes visible to other sessions: a table dropped there may still be seen
	 * for that moment.  Look again a few times before calling the message false.
	 */
	for (int tries = 0; tries < 40 && !gone; tries++)
	{
		if (tries > 0)
			usleep(50 * 1000);
		error_clear(&err);
		if (table_gone_position(a->conn, t->relid, &gone, &pos, &err) != BS_OK)
		{
			log_warning("table %s.%s: a DROP read from the stream could not be checked (%s); the table check "
						"will find it", t->man->schema, t->man->name, err.message);
			return;
		}
	}
	if (!gone)
	{
		log_warning("table %s.%s: ignoring a schema change message at %s that says it was dropped: it exists",
					t->man->schema, t->man->name, lsn_format(a->txn_final_lsn, l));
		return;
	}
	t->drop_lsn = a->txn_final_lsn;
	if (t->gone_lsn == 0 || t->gone_lsn > a->txn_final_lsn + 1)
		table_found_gone(a, t, a->txn_final_lsn + 1, " (its DROP read from the stream)");
}

/*
 * Type names as the archiver's session writes them (catalog_describe_columns, base copies):
 * the event trigger runs with its own search_path, where format_type qualifies more names.
 */
static int
ddl_type_names(PGconn *conn, ddl_table *d, bs_error *err)
{
	for (int i = 0; i < d->ncols; i++)
	{
		char oid[16], typmod[16];
		const char *params[2] = {oid, typmod};
		PGresult *res;

		snprintf(oid, sizeof(oid), "%u", d->columns[i].type_oid);
		snprintf(typmod, sizeof(typmod), "%d", d->columns[i].typmod);
		if (pgsql_query_params(conn, "SELECT format_type($1::oid, $2::int)", 2, params, &res, err) != BS_OK)
			return error_prefix(err, "could not name the type of column \"%s\" of table %u", d->columns[i].name,
								d->relid);
		if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		{
			free(d->columns[i].type_name);
			d->columns[i].type_name = xstrdup(PQgetvalue(res, 0, 0));
		}
		PQclear(res);
	}
	return BS_OK;
}

/* ddl_command_end: the table's name and columns inside the transaction of the change. */
static int
ddl_table_changed(archiver *a, arch_table *t, ddl_table *d, bs_error *err)
{
	manifest *m = t->man;
	const manifest_layout *cur;
	char l[LSN_BUFLEN];

	if (strcmp(m->schema, d->schema) != 0 || strcmp(m->name, d->name) != 0)
	{
		log_info("table %s.%s (relid %u) is named %s.%s from %s on", m->schema, m->name, t->relid, d->schema,
				 d->name, lsn_format(a->txn_final_lsn, l));
		manifest_add_name(m, a->txn_final_lsn, d->schema, d->name);
		t->dirty = true;
	}
	cur = layout_at(m, a->txn_final_lsn);
	/* No layout yet: the first base copy records one. */
	if (cur == NULL || (cur->replident == d->replident &&
						manifest_columns_equal(cur->ncols, cur->columns, d->ncols, d->columns)))
		return BS_OK;
	{
		uint32_t id;
		bs_error e2;

		bool added,
					retyped;

		if (ddl_type_names(a->conn, d, err) != BS_OK &&
			(!conn_recovered(a, err) || ddl_type_names(a->conn, d, err) != BS_OK))
			return BS_ERR;
		/* Before the layout is added: that may move the layouts, and cur with them. */
		added = d->ncols > cur->ncols;
		retyped = layout_retyped(cur, d->ncols, d->columns);
		cur = NULL;
		/* Read in the stream: only a rewrite in this transaction leaves old rows unknown. */
		if (t->rewrite_lsn == a->txn_final_lsn &&
			mark_unknown_columns(a, t, true, d->ncols, d->columns, err) != BS_OK)
			return BS_ERR;
		error_clear(&e2);
		if (manifest_use_layout(m, a->txn_final_lsn, d->replident, d->ncols, d->columns, &id, &e2) != BS_OK)
			id = insert_layout(m, -1, a->txn_final_lsn, d->replident, d->ncols, d->columns);
		t->dirty = true;
		log_info("table %s.%s: new column layout %u from %s (schema change read from the stream)", m->schema,
				 m->name, id, lsn_format(a->txn_final_lsn, l));
		/* As for a layout from a Relation message: a durable request, taken at once. */
		if (added || retyped)
			request_rebase(a, t);
	}
	return BS_OK;
}

/* Whether the definition of t's newest base names parent as its partitioned parent. */
static bool
newest_base_partition_of(const arch_table *t, uint32_t parent)
{
	const manifest *m = t->man;
	json_t *root,
			   *p;
	bool yes;

	if (m->nbases == 0 || m->bases[m->nbases - 1].definition == NULL)
		return false;
	root = json_loads(m->bases[m->nbases - 1].definition, 0, NULL);
	p = root ? json_object_get(root, "partition") : NULL;
	yes = json_is_object(p) && json_integer_value(json_object_get(p, "parent_relid")) == (json_int_t) parent;
	json_decref(root);
	return yes;
}

/*
 * ALTER TABLE on a partitioned table (ATTACH or DETACH PARTITION among others) names only the
 * parent: the partitions it had at their base copies and those it has now are re-based, so
 * that each base's definition tells the membership again and recovery of the parent refuses
 * the points in between.
 */
static int
ddl_parent_changed(archiver *a, arch_table *parent, bs_error *err)
{
	char oid[16];
	const char *params[1] = {oid};
	PGresult *res = NULL;
	char l[LSN_BUFLEN];

	snprintf(oid, sizeof(oid), "%u", parent->relid);
	if (pgsql_query_params(a->conn, "SELECT inhrelid FROM pg_inherits WHERE inhparent = $1::oid", 1, params, &res,
						   err) != BS_OK &&
		(!conn_recovered(a, err) ||
		 pgsql_query_params(a->conn, "SELECT inhrelid FROM pg_inherits WHERE inhparent = $1::oid", 1, params, &res,
							err) != BS_OK))
		return BS_ERR;
	for (int i = 0; i < a->ntables; i++)
	{
		arch_table *t = a->tables[i];
		bool member = newest_base_partition_of(t, parent->relid);

		for (int r = 0; r < PQntuples(res) && !member; r++)
			member = strtoul(PQgetvalue(res, r, 0), NULL, 10) == t->relid;
		if (!member || !t->active || t->partitioned || strcmp(t->man->status, "active") != 0)
			continue;
		log_info("table %s.%s: its partitioned table %s.%s changed at %s (%s)", t->man->schema, t->man->name,
				 parent->man->schema, parent->man->name, lsn_format(a->txn_final_lsn, l), "ALTER TABLE");
		/* Durable with the table's changes: a base before it does not tell the membership after. */
		manifest_add_partition_change(t->man, a->txn_final_lsn);
		t->dirty = true;
		request_rebase(a, t);
	}
	PQclear(res);
	return BS_OK;
}

static int
handle_ddl_message(archiver *a, const pgo_logical_message *msg, bs_error *err)
{
	ddl_event ev;
	bs_error perr;
	char l[LSN_BUFLEN];
	int rc = BS_OK;

	error_clear(&perr);
	if (ddl_parse_message((const char *) msg->content, msg->content_len, &ev, &perr) != BS_OK)
	{
		log_warning("ignoring a schema change message in the transaction committed at %s: %s",
					lsn_format(a->txn_final_lsn, l), perr.message);
		return BS_OK;
	}
	for (int i = 0; i < ev.ntables && rc == BS_OK; i++)
	{
		arch_table *t = find_table(a, ev.tables[i].relid);

		if (t == NULL)
			continue;
		/* A DROP in a transaction kept before a restart still makes the drop exact. */
		if (ev.kind == DDL_EVENT_DROP)
			ddl_table_dropped(a, t);
		else if (ev.kind == DDL_EVENT_END && t->partitioned && !a->txn_skip &&
				 strcmp(ev.tables[i].tag, "ALTER TABLE") == 0)
			rc = ddl_parent_changed(a, t, err);
		else if (a->txn_skip || !t->active || strcmp(t->man->status, "active") != 0)
			continue;
		else if (ev.kind == DDL_EVENT_END)
			rc = ddl_table_changed(a, t, &ev.tables[i], err);
		else
		{
			/* Columns this transaction adds got their values in the rewrite (ddl_table_changed). */
			t->rewrite_lsn = a->txn_final_lsn;
			if (!t->rebase_wanted)
			{
				/* Rewritten (ALTER COLUMN TYPE, say): old values may not convert exactly. */
				log_info("table %s.%s is rewritten at %s (%s): a new base copy is requested", t->man->schema,
						 t->man->name, lsn_format(a->txn_final_lsn, l), ev.tables[i].tag);
				request_rebase(a, t);
			}
		}
	}
	ddl_event_free(&ev);
	return rc;
}

/* Without capture, a rename is seen by the table check: recorded where the stream is now. */
/*
 * Weak mode: a schema change after the table's last row change is not in the stream (no
 * Relation message comes until its next change).  Each table check compares the catalog
 * (columns as pgoutput sends them, and relnatts, which counts dropped columns too) with the
 * newest archived layout; on a difference the table's columns are unknown from the last
 * position known good: the window is recorded durably (open until a base copy taken after
 * now closes it) and the copy is asked for.
 */
static int
ddl_poll_layout(archiver *a, arch_table *t, bs_error *err)
{
	const manifest_layout *cur;
	PGresult *res;
	char oid[16];
	const char *params[1] = {oid};
	uint64_t seen = t->layout_seen;
	uint64_t pos = 0;
	int natts;
	int n;
	bool same;
	bool natts_only = false;

	if (!ddl_weak_at(a, t, UINT64_MAX) || t->man->nlayouts == 0 || t->gone_lsn != 0 || t->unpublished ||
		strcmp(t->man->status, "active") != 0 || manifest_open_schema_gap(t->man) != NULL)
		return BS_OK;
	cur = layout_at(t->man, UINT64_MAX);
	/* The newest base copy with those columns shows them at its LSN: a difference now came
	 * after it (a stream behind it records its own windows, from layout_seen). */
	if (t->man->nbases && t->man->bases[t->man->nbases - 1].layout_id == cur->id &&
		t->man->bases[t->man->nbases - 1].lsn > seen)
		seen = t->man->bases[t->man->nbases - 1].lsn;
	snprintf(oid, sizeof(oid), "%u", t->relid);
	if (pgsql_query_params(a->conn,
						   "SELECT c.relnatts, a.attname, a.atttypid, a.atttypmod, pg_current_wal_insert_lsn()::text "
						   "FROM pg_class c LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
						   "AND NOT a.attisdropped AND a.attgenerated = '' WHERE c.oid = $1::oid ORDER BY a.attnum",
						   1, params, &res, err) != BS_OK)
		return BS_ERR;
	n = PQntuples(res);
	if (n == 0)
	{
		PQclear(res);			/* dropped meanwhile: the drop handling sees to it */
		return BS_OK;
	}
	natts = atoi(PQgetvalue(res, 0, 0));
	if (lsn_parse(PQgetvalue(res, 0, 4), &pos) != BS_OK)
	{
		PQclear(res);
		return error_set(err, ERRCODE_PROTOCOL, "could not read the server's WAL insert position");
	}
	if (n == 1 && PQgetisnull(res, 0, 1))
		n = 0;					/* no column */
	same = n == cur->ncols;
	for (int i = 0; same && i < n; i++)
		same = strcmp(PQgetvalue(res, i, 1), cur->columns[i].name) == 0 &&
			strtoul(PQgetvalue(res, i, 2), NULL, 10) == cur->columns[i].type_oid &&
			atoi(PQgetvalue(res, i, 3)) == cur->columns[i].typmod;
	PQclear(res);
	/* The same names and types, but a column added since the last check: one was dropped
	 * and added again (its values are not the old ones). */
	if (same && t->natts_seen > 0 && natts != t->natts_seen)
		same = false, natts_only = true;
	if (same)
	{
		t->schema_ok_seen = seen;
		t->natts_seen = natts;
		return BS_OK;
	}
	{
		/* Other columns: the change came after the newest position using the archived ones.
		 * The same columns: the changes since may have been written after the column came
		 * back (they look alike), so the window starts at the last check that found it right. */
		uint64_t from = natts_only && t->schema_ok_seen < seen ? t->schema_ok_seen : seen;
		char l1[LSN_BUFLEN],
			l2[LSN_BUFLEN];

		manifest_add_schema_gap(t->man, from, MANIFEST_GAP_OPEN);
		t->schema_detect_lsn = pos;
		/* Counted again by the first check after the window is closed (a Relation message of
		 * the change may still come, and would count its columns twice). */
		t->natts_seen = 0;
		t->rebase_wanted = true;
		if (t->man->rebase_requested_at == 0)
			t->man->rebase_requested_at = pos;
		t->dirty = true;
		log_info("table %s.%s: its columns in the catalog differ from the archived layout %u (schema changes are "
				 "not captured): they changed at an unknown point after %s; recovery points from there are refused "
				 "until a new base copy (asked for now, at %s)", t->man->schema, t->man->name, cur->id,
				 lsn_format(from, l1), lsn_format(pos, l2));
	}
	return BS_OK;
}

static void
ddl_poll_rename(archiver *a, arch_table *t, const catalog_table *ct)
{
	char l[LSN_BUFLEN];

	if (a->ddl_capture || (strcmp(t->man->schema, ct->schema) == 0 && strcmp(t->man->name, ct->name) == 0))
		return;
	log_info("table %s.%s (relid %u) is named %s.%s now (noticed at %s; schema changes are not captured, so the "
			 "rename is recorded there)", t->man->schema, t->man->name, t->relid, ct->schema, ct->name,
			 lsn_format(a->last_commit_end, l));
	manifest_add_name(t->man, a->last_commit_end, ct->schema, ct->name);
	t->dirty = true;
}

static int
initial_setup(archiver *a, bs_error *err)
{
	PGresult *res;
	const char *slot = config_get(a->cfg, "slot");
	const char *params[1] = {slot};
	char *wal_level = NULL;
	catalog_table_list list;
	bool slot_exists;
	uint64_t max_seal = 0;
	bool head_exists = false;
	PGconn *repl = NULL;
	char *sysid = NULL, *dbname = NULL;

	if (pgsql_query_value(a->conn, "SHOW wal_level", &wal_level, err) != BS_OK)
		return BS_ERR;
	if (strcmp(wal_level, "logical") != 0)
	{
		error_set(err, ERRCODE_INVALID_PARAMETER,
				  "wal_level is \"%s\": logical replication needs wal_level = logical (and a restart)", wal_level);
		free(wal_level);
		return BS_ERR;
	}
	free(wal_level);

	/* A slot another process streams from (a second archiver on it): refuse before anything is
	 * stored.  START_REPLICATION would refuse it too, but only after base copies were taken. */
	if (pgsql_query_params(a->conn, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1 AND active",
						   1, params, &res, err) != BS_OK)
		return BS_ERR;
	if (PQntuples(res) > 0)
	{
		error_set(err, ERRCODE_OBJECT_IN_USE,
				  "replication slot \"%s\" is active for PID %s: another archiver (or pg_recvlogical) is "
				  "streaming from it; stop it, or give this archiver its own --slot", slot,
				  PQgetisnull(res, 0, 0) ? "?" : PQgetvalue(res, 0, 0));
		PQclear(res);
		return BS_ERR;
	}
	PQclear(res);

	/* The archive must belong to this cluster and database. */
	if (pgsql_connect(config_get(a->cfg, "db"), true, "backstop archive", &repl, err) != BS_OK)
		return BS_ERR;
	res = PQexec(repl, "IDENTIFY_SYSTEM");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) < 4)
	{
		pgsql_set_error(err, repl, res, "IDENTIFY_SYSTEM failed (does the role have REPLICATION?)");
		PQclear(res);
		PQfinish(repl);
		return BS_ERR;
	}
	sysid = xstrdup(PQgetvalue(res, 0, 0));
	dbname = xstrdup(PQgetisnull(res, 0, 3) ? "" : PQgetvalue(res, 0, 3));
	PQclear(res);
	if (archive_head_load(a->st, &a->head, &head_exists, err) != BS_OK)
		goto fail;
	if (head_exists && a->head.system_identifier &&
		(strcmp(a->head.system_identifier, sysid) != 0 || strcmp(a->head.database ? a->head.database : "", dbname) != 0))
	{
		error_set(err, ERRCODE_INVALID_PARAMETER,
				  "storage %s holds the archive of another database (system %s, database \"%s\"), not system %s database \"%s\"",
				  storage_describe(a->st), a->head.system_identifier, a->head.database ? a->head.database : "",
				  sysid, dbname);
		goto fail;
	}
	if (!head_exists)
	{
		archive_head_init(&a->head);
		a->head.system_identifier = xstrdup(sysid);
		a->head.database = xstrdup(dbname);
	}
	else if (a->head.format < 2 && record_manifests(a, err) != BS_OK)
		goto fail;
	a->head_written_lsn = a->head.flushed_lsn;
	if (take_lease(a, err) != BS_OK)
		goto fail;
	if (ddl_setup(a, err) != BS_OK)
		goto fail;

	if (catalog_list_tables(a->conn, config_get(a->cfg, "tables"), config_get_bool(a->cfg, "all_tables"),
							&list, err) != BS_OK)
		goto fail;
	if (check_publication(a, &list, true, err) != BS_OK)
		goto fail_list;
	for (int i = 0; i < list.count; i++)
	{
		arch_table *t;
		catalog_table *ct = &list.tables[i];

		if (load_table(a, a->st, ct->relid, ct->schema, ct->name, ct->usable, &t, err) != BS_OK)
			goto fail_list;
		if (ct->unpublished)
		{
			if (table_unpublished(t, ct, unpublished_from(a, t)) && store_manifest_now(a, t->man, err) != BS_OK)
				goto fail_list;
			t->dirty = false;
			continue;
		}
		if (!ct->usable)
		{
			t->partitioned = ct->relkind == 'p';
			free(t->man->status);
			free(t->man->finding);
			t->man->status = xstrdup("skipped");
			t->man->finding = xstrdup(ct->finding);
			report_skipped(ct);
			if (store_manifest_now(a, t->man, err) != BS_OK)
				goto fail_list;
		}
	}
	if (find_gone_tables(a, &list, err) != BS_OK)
		goto fail_list;

	if (pgsql_query_params(a->conn,
		"SELECT s.confirmed_flush_lsn::text, s.plugin, s.database, s.wal_status, " SLOT_OTHER_INVALIDATION
		" FROM pg_replication_slots s WHERE s.slot_name = $1",
		1, params, &res, err) != BS_OK)
		goto fail_list;
	slot_exists = PQntuples(res) == 1;
	if (slot_exists)
	{
		if (strcmp(PQgetvalue(res, 0, 1), "pgoutput") != 0 || strcmp(PQgetvalue(res, 0, 2), dbname) != 0)
		{
			error_set(err, ERRCODE_INVALID_PARAMETER, "slot \"%s\" exists but is not a pgoutput slot of database \"%s\"",
					  slot, dbname);
			PQclear(res);
			goto fail_list;
		}
		if (!PQgetisnull(res, 0, 4))
		{
			error_set(err, ERRCODE_SLOT_LOST,
					  "slot \"%s\" was invalidated (invalidation_reason = %s): changes are missing; drop it with "
					  "`backstop archive --drop` and start again for fresh base copies", slot, PQgetvalue(res, 0, 4));
			PQclear(res);
			goto fail_list;
		}
		if (strcmp(PQgetvalue(res, 0, 3), "lost") == 0)
		{
			error_set(err, ERRCODE_SLOT_LOST,
					  "slot \"%s\" was invalidated (wal_status = lost, max_slot_wal_keep_size exceeded): "
					  "changes are missing; drop it with `backstop archive --drop` and start again for fresh base copies", slot);
			PQclear(res);
			goto fail_list;
		}
		if (!PQgetisnull(res, 0, 0))
			lsn_parse(PQgetvalue(res, 0, 0), &a->flush_lsn);
		PQclear(res);
	}
	else
	{
		char *q = pgsql_quote_ident(slot);
		strbuf sql = STRBUF_INIT;
		uint64_t lsn;
		basecopy_options opts = {a->codec, a->level, (uint64_t) config_get_size(a->cfg, "base_chunk_size"), NULL};

		opts.publication = config_get(a->cfg, "publication");
		PQclear(res);
		strbuf_printf(&sql, "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput %s", q,
					  pgsql_export_snapshot_option(repl));
		free(q);
		res = PQexec(repl, sql.data);
		strbuf_free(&sql);
		if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || lsn_parse(PQgetvalue(res, 0, 1), &lsn) != BS_OK)
		{
			pgsql_set_error(err, repl, res, "could not create the replication slot");
			PQclear(res);
			goto fail_list;
		}
		log_info("created slot %s at %s; taking base copies", slot, PQgetvalue(res, 0, 1));
		if (head_exists && a->head.flushed_lsn > 0)
		{
			char l[LSN_BUFLEN];

			/* The old slot's changes after the head are gone: each manifest records the gap below. */
			log_warning("the archive was stored up to %s with an earlier slot: changes committed between "
						"then and %s are NOT in the archive; recorded as a gap, points inside it are refused",
						lsn_format(a->head.flushed_lsn, l), PQgetvalue(res, 0, 1));
		}
		/* The exported snapshot lives while repl stays idle: copy every table under it. */
		if (basecopy_begin_snapshot(a->conn, PQgetvalue(res, 0, 2), err) != BS_OK)
		{
			PQclear(res);
			goto fail_list;
		}
		PQclear(res);
		for (int i = 0; i < a->ntables; i++)
		{
			arch_table *t = a->tables[i];
			basecopy_target target = {t->relid, t->man->schema, t->man->name};
			basecopy_result r;
			/* What an earlier slot archived: up to here, and nothing of what follows
			 * until this slot's point (doc/FORMAT.md, "gaps"). */
			bool had_base = t->man->nbases > 0;
			uint64_t complete = audit_complete_to(t->man, head_exists ? &a->head : NULL);

			if (!t->active || t->gone_lsn || t->unpublished)
				continue;
			if (basecopy_table(a->conn, a->st, &opts, &target, lsn, &r, err) != BS_OK)
			{
				pgsql_exec(a->conn, "ROLLBACK", &(bs_error) {0});
				goto fail_list;
			}
			apply_base(a, &r, lsn);
			basecopy_result_free(&r);
			t->dirty = t->base_unstored = false;	/* stored now */
			/* The new slot starts here: nothing before it will be streamed. */
			if (had_base && complete < lsn)
			{
				char l1[LSN_BUFLEN], l2[LSN_BUFLEN];

				manifest_add_gap(t->man, complete, lsn);
				log_warning("table %s.%s: changes committed from %s to %s were not archived (a new slot starts at %s); "
							"recovery points in between are refused", t->man->schema, t->man->name,
							lsn_format(complete, l1), lsn_format(lsn, l2), l2);
			}
			if (t->man->archived_to < lsn)
				t->man->archived_to = lsn;
			if (store_manifest_now(a, t->man, err) != BS_OK)
			{
				pgsql_exec(a->conn, "ROLLBACK", &(bs_error) {0});
				goto fail_list;
			}
		}
		if (pgsql_exec(a->conn, "COMMIT", err) != BS_OK)
			goto fail_list;
		a->flush_lsn = lsn;
		a->head_written_lsn = 0;
		if (store_head(a, lsn, err) != BS_OK)
			goto fail_list;
	}
	PQfinish(repl);
	repl = NULL;

	/* Tables without a base copy (new, or an earlier start stopped half-way). */
	{
		arch_table **need = NULL;
		int n = 0;

		for (int i = 0; i < a->ntables; i++)
		{
			if (a->tables[i]->active && a->tables[i]->gone_lsn == 0 && a->tables[i]->man->nbases == 0)
			{
				need = xrealloc(need, (size_t) (n + 1) * sizeof(arch_table *));
				need[n++] = a->tables[i];
			}
		}
		if (n > 0 && take_new_bases_now(a, need, n, err) != BS_OK)
		{
			free(need);
			goto fail_list;
		}
		free(need);
	}

	/* Spool first: what was sealed before a stop is uploaded before anything new. */
	if (clean_spill(a, err) != BS_OK || clean_spool(a, &max_seal, err) != BS_OK)
		goto fail_list;
	a->spool_pending = max_seal > 0;
	if (a->spool_pending && drain_spool(a, false, NULL, err) != BS_OK)
	{
		log_warning("could not upload the spool yet (will retry): %s", err->message);
		a->metrics.upload_errors++;
	}
	a->resume_lsn = a->flush_lsn;
	if (a->head.flushed_lsn > a->resume_lsn)
		a->resume_lsn = a->head.flushed_lsn;
	if (max_seal > a->resume_lsn)
		a->resume_lsn = max_seal;
	/* Not the tables' archived_to: a base copy taken from a temporary slot may lie ahead of
	 * the stream, and the changes before it are still needed for older points. */
	a->last_commit_end = a->resume_lsn;
	a->received_lsn = a->flush_lsn;
	catalog_table_list_free(&list);
	free(sysid);
	free(dbname);
	return BS_OK;

fail_list:
	catalog_table_list_free(&list);
fail:
	if (repl)
		PQfinish(repl);
	free(sysid);
	free(dbname);
	return BS_ERR;
}

static void
archiver_free(archiver *a)
{
	close_replication(a);
	free(a->relcache);
	for (int i = 0; i < a->ntables; i++)
	{
		manifest_free(a->tables[i]->man);
		strbuf_free(&a->tables[i]->open);
		/* Never sealed: not durable (an orderly stop sealed it; a failure left it open). */
		spill_discard(a->tables[i]->spill);
		free(a->tables[i]->verified_key);
		free(a->tables[i]);
	}
	free(a->tables);
	while (a->pending)
	{
		checkpoint_req *r = a->pending;

		a->pending = r->next;
		free(r);
	}
	control_free(a->control);
	for (int i = 0; i < 3; i++)
		if (a->sig_evs[i])
			event_free(a->sig_evs[i]);
	if (a->tick_ev)
		event_free(a->tick_ev);
	if (a->notify_ev)
		event_free(a->notify_ev);
	for (int i = 0; i < 2; i++)
		if (a->notify_pipe[i] >= 0)
			close(a->notify_pipe[i]);
	while (a->jobs_head)
	{
		seal_job *j = a->jobs_head;

		a->jobs_head = j->next;
		seal_job_free(j);
	}
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->wake);
	if (a->evbase)
		event_base_free(a->evbase);
	if (a->conn)
		PQfinish(a->conn);
	if (a->st)
		storage_close(a->st);
	if (a->st_main)
		storage_close(a->st_main);
	if (a->st_base)
		storage_close(a->st_base);
	if (a->spool)
		storage_close(a->spool);
	free(a->spill_dir);
	free(a->pub_as_is);
	archive_head_clear(&a->head);
}

int
archiver_run(bs_config *cfg, bs_error *err)
{
	archiver a;
	strbuf spool_url = STRBUF_INIT;
	struct timeval tick = {0, 200000};
	int sigs[3] = {SIGTERM, SIGINT, SIGHUP};
	sigset_t stop_signals;
	int rc = BS_ERR;

	/* Until the event loop handles them, stop signals wait: a SIGTERM during start-up (a slot
	 * creation waiting for running transactions, say) then stops the archiver in order, with
	 * its lease released, instead of killing it.  Threads started meanwhile inherit the mask,
	 * so the signals always reach this thread.  On a start-up failure they stay blocked: the
	 * process is about to exit with its own code. */
	sigemptyset(&stop_signals);
	for (int i = 0; i < 3; i++)
		sigaddset(&stop_signals, sigs[i]);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	memset(&a, 0, sizeof(a));
	a.cfg = cfg;
	a.test_lock_key = basecopy_test_lock_key_from_env("BACKSTOP_TEST_BASE_COPY_LOCK");
	a.test_snapshot_lock_key = basecopy_test_lock_key_from_env("BACKSTOP_TEST_BASE_COPY_SNAPSHOT_LOCK");
	a.test_check_lock_key = basecopy_test_lock_key_from_env("BACKSTOP_TEST_TABLE_CHECK_LOCK");
	a.metrics.started_ms = clock_mono_ms();
	a.metrics.slot_retained = -1;
	a.reconnect_delay_ms = 1000;
	a.notify_pipe[0] = a.notify_pipe[1] = -1;
	pthread_mutex_init(&a.lock, NULL);
	pthread_cond_init(&a.wake, NULL);
	if (config_get(cfg, "db") == NULL)
	{
		rc = error_set(err, ERRCODE_INVALID_PARAMETER, "--db is required (a role with REPLICATION)");
		goto out;
	}
	if (codec_parse(config_get(cfg, "compression"), &a.codec, err) != BS_OK)
		goto out;
	a.level = (int) config_get_int(cfg, "compression_level");
	a.segment_level = (int) config_get_int(cfg, "segment_compression_level");
	a.segment_size = config_get_size(cfg, "segment_size");
	if (config_get_duration_ms(cfg, "expire_interval") > 0 && config_get(cfg, "keep_window") == NULL &&
		config_get(cfg, "keep_bases") == NULL)
	{
		rc = error_set(err, ERRCODE_INVALID_PARAMETER,
					   "--expire-interval needs a retention policy: --keep-window and/or --keep-bases");
		goto out;
	}
	if (config_get(cfg, "end_lsn") && lsn_parse(config_get(cfg, "end_lsn"), &a.end_lsn) != BS_OK)
	{
		rc = error_set(err, ERRCODE_INVALID_PARAMETER, "--end-lsn: invalid LSN \"%s\" (expected X/X, e.g. 0/16B3748)",
					   config_get(cfg, "end_lsn"));
		goto out;
	}
	a.open_memory_limit = (uint64_t) config_get_size(cfg, "open_memory_limit");
	a.spool_limit = config_get_size(cfg, "spool_limit");
	{
		codec_stream *cs = NULL;

		/* A bad level is a configuration error now, not an upload failing forever later. */
		if (codec_compressor_open(a.codec, a.segment_level, &cs, err) != BS_OK)
		{
			error_prefix(err, "segment_compression_level");
			snprintf(err->code, sizeof(err->code), "%s", ERRCODE_INVALID_PARAMETER);
			goto out;
		}
		codec_stream_free(cs);
	}
	signal(SIGPIPE, SIG_IGN);
	if (pipe2(a.notify_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
	{
		error_set_errno(err, errno, "could not create a pipe");
		goto out;
	}
	if (storage_config_open(config_get(cfg, "storage"), cfg, &a.st, err) != BS_OK ||
		storage_config_open(config_get(cfg, "storage"), cfg, &a.st_main, err) != BS_OK ||
		storage_config_open(config_get(cfg, "storage"), cfg, &a.st_base, err) != BS_OK ||
		storage_crypt_prepare_write(a.st, err) != BS_OK ||
		storage_crypt_prepare_write(a.st_main, err) != BS_OK ||
		storage_crypt_prepare_write(a.st_base, err) != BS_OK)
		goto out;
	strbuf_printf(&spool_url, "file://%s", config_get(cfg, "spool_dir"));
	if (spool_url.data[7] != '/')
	{
		error_set(err, ERRCODE_INVALID_PARAMETER, "spool_dir must be an absolute path: \"%s\"", config_get(cfg, "spool_dir"));
		goto out;
	}
	if (storage_open(spool_url.data, NULL, &a.spool, err) != BS_OK)
		goto out;
	{
		const char *spool_dir = config_get(cfg, "spool_dir");
		size_t len = strlen(spool_dir);
		strbuf dir = STRBUF_INIT;

		/* The spool's root (absolute, checked above) without trailing slashes. */
		while (len > 1 && spool_dir[len - 1] == '/')
			len--;
		strbuf_printf(&dir, "%.*s/%s", (int) len, spool_dir, SPILL_DIR);
		a.spill_dir = strbuf_detach(&dir, NULL);
	}
	if (pgsql_connect(config_get(cfg, "db"), false, "backstop archive", &a.conn, err) != BS_OK)
		goto out;
	a.evbase = event_base_new();
	if (control_open(a.evbase, cfg, locked_http, &a, &a.control, err) != BS_OK)
		goto out;
	log_info("archiving to %s", storage_describe(a.st));
	/* Single-threaded until the uploader starts. */
	if (initial_setup(&a, err) != BS_OK)
		goto out;
	a.last_poll_ms = clock_mono_ms();
	/* Before anything runs in the background: a start that cannot stream (the slot in use by
	 * another process, say) is an error with the server's message, and stores nothing more
	 * (no head is written on the way out). */
	if (start_replication(&a, err) != BS_OK)
		goto out;

	pthread_mutex_lock(&a.lock);
	if (pthread_create(&a.uploader, NULL, uploader_main, &a) != 0)
	{
		pthread_mutex_unlock(&a.lock);
		error_set(err, ERRCODE_INTERNAL, "could not start the uploader thread");
		goto out;
	}
	a.uploader_running = true;
	a.tick_ev = event_new(a.evbase, -1, EV_PERSIST, locked_tick, &a);
	event_add(a.tick_ev, &tick);
	a.notify_ev = event_new(a.evbase, a.notify_pipe[0], EV_READ | EV_PERSIST, locked_notify, &a);
	event_add(a.notify_ev, NULL);
	for (int i = 0; i < 3; i++)
	{
		a.sig_evs[i] = evsignal_new(a.evbase, sigs[i], locked_signal, &a);
		event_add(a.sig_evs[i], NULL);
	}
	pthread_mutex_unlock(&a.lock);
	/* A signal that arrived during start-up is delivered now, to the handlers just added. */
	pthread_sigmask(SIG_UNBLOCK, &stop_signals, NULL);
	while (!a.stopping && !a.fatal)
		event_base_dispatch(a.evbase);
	/* Before the final seal, and before anything is freed. */
	stop_base_job(&a);

	pthread_mutex_lock(&a.lock);
	if (a.fatal)
		*err = a.fatal_err;
	else
	{
		bs_error e2;

		/* Orderly stop: seal what is complete; the uploader stores it before it exits. */
		error_clear(&e2);
		/* Not captured: a schema change since the last table check is found now, so that
		 * the stored archive does not vouch for the old columns after it. */
		for (int i = 0; i < a.ntables && PQstatus(a.conn) == CONNECTION_OK; i++)
			if (a.tables[i]->active && ddl_poll_layout(&a, a.tables[i], &e2) != BS_OK)
			{
				log_warning("table check of %s.%s at the stop: %s", a.tables[i]->man->schema,
							a.tables[i]->man->name, e2.message);
				error_clear(&e2);
			}
		if (drop_partial_transaction(&a, &e2) != BS_OK)
			archiver_fail(&a, &e2);
		else if (seal_epoch(&a, false, &e2) != BS_OK)
			log_warning("%s", e2.message);
		if (a.fatal)
			*err = a.fatal_err;
	}
	pthread_mutex_unlock(&a.lock);

	pthread_mutex_lock(&a.lock);
	a.uploader_stop = true;
	pthread_cond_signal(&a.wake);
	pthread_mutex_unlock(&a.lock);
	pthread_join(a.uploader, NULL);
	a.uploader_running = false;
	/* Single-threaded again. */
	if (!a.fatal && a.uploader_failed)
	{
		a.fatal = true;
		*err = a.uploader_err;
	}
	if (!a.fatal && !a.spool_pending)
	{
		uint64_t target = a.idle_lsn > a.flush_lsn ? a.idle_lsn : a.flush_lsn;
		bs_error e2;

		error_clear(&e2);
		if (target > a.head_written_lsn && store_head(&a, target, &e2) != BS_OK)
			log_warning("%s", e2.message);
		else
			a.flush_lsn = target;
	}
	if (a.spool_pending)
		log_warning("stopping with %llu bytes in the spool (uploaded on the next start)",
					(unsigned long long) a.metrics.spool_bytes);
	answer_checkpoints(&a, true, a.fatal ? err->message : "archiver stopping");
	/* Whatever is durable is confirmed, so a restart does not redo it. */
	{
		bs_error e2;
		char l[LSN_BUFLEN];

		error_clear(&e2);
		if (send_status(&a, false, &e2) != BS_OK)
			log_warning("%s", e2.message);
		else
			log_info("stopped; confirmed %s to PostgreSQL", lsn_format(a.flush_lsn, l));
	}
	if (!a.fatal && a.slot_lost)
	{
		char l[LSN_BUFLEN];

		a.fatal = true;
		*err = a.slot_lost_err;
		log_info("the archive is stored up to %s (the last position durable before the slot was lost)",
				 lsn_format(a.flush_lsn, l));
	}
	if (!a.fatal && a.end_received_ms)
	{
		char l[LSN_BUFLEN], f[LSN_BUFLEN];

		if (a.spool_pending || a.flush_lsn < a.last_commit_end)
		{
			a.fatal = true;
			error_set(err, ERRCODE_STORAGE, "end LSN %s reached, but only %s is durable in storage "
					  "(the rest stays in the spool and is uploaded on the next start)",
					  lsn_format(a.end_lsn, l), lsn_format(a.flush_lsn, f));
		}
		else
			log_info("end LSN %s: everything through %s is durable in storage after %.3f s",
					 lsn_format(a.end_lsn, l), lsn_format(a.flush_lsn, f),
					 (double) (clock_mono_ms() - a.metrics.started_ms) / 1000.0);
	}
	if (!a.fatal)
		rc = BS_OK;
out:
	release_lease(&a);
	archiver_free(&a);
	strbuf_free(&spool_url);
	return rc;
}

int
archiver_drop(const bs_config *cfg, bs_error *err)
{
	PGconn *conn;
	PGresult *res;
	const char *params[1];
	int rc = BS_ERR;

	if (config_get(cfg, "db") == NULL)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "--db is required");
	if (pgsql_connect(config_get(cfg, "db"), false, "backstop archive --drop", &conn, err) != BS_OK)
		return BS_ERR;
	params[0] = config_get(cfg, "slot");
	if (pgsql_query_params(conn,
		"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
		1, params, &res, err) != BS_OK)
		goto out;
	log_info("slot %s: %s", params[0], PQntuples(res) ? "dropped" : "did not exist");
	PQclear(res);
	params[0] = config_get(cfg, "publication");
	if (pgsql_query_params(conn, "SELECT 1 FROM pg_publication WHERE pubname = $1 AND NOT pg_has_role(pubowner, 'USAGE')",
						   1, params, &res, err) != BS_OK)
		goto out;
	if (PQntuples(res) > 0)
	{
		/* Made by its owner for this role (doc/archiving.md, "Minimal grants"): theirs to drop. */
		PQclear(res);
		log_info("publication %s belongs to another role: left in place; the archive in storage is kept", params[0]);
		rc = BS_OK;
		goto out;
	}
	PQclear(res);
	{
		char *pub = pgsql_quote_ident(config_get(cfg, "publication"));
		strbuf sql = STRBUF_INIT;

		strbuf_printf(&sql, "DROP PUBLICATION IF EXISTS %s", pub);
		rc = pgsql_exec(conn, sql.data, err);
		free(pub);
		strbuf_free(&sql);
		if (rc == BS_OK)
			log_info("publication %s dropped; the archive in storage is kept", config_get(cfg, "publication"));
	}
out:
	PQfinish(conn);
	return rc;
}
