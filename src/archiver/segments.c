/* segments.c — the archiver's open segments: records appended, patched, spilled to files when memory is short. */
#include "autoconf.h"
#include "clock.h"
#include "codec.h"
#include "log.h"
#include "lsn.h"
#include "pgoutput.h"
#include "replmsg.h"
#include "segment.h"
#include "spill.h"
#include "storage.h"
#include "strbuf.h"
#include "error.h"
#include "archiver_int.h"

#include <inttypes.h>
#include <stdio.h>

/*
 * Remove the spill files left by an earlier run: segments that were never sealed, so never
 * confirmed to PostgreSQL, which sends their transactions again.
 */
int
segments_clean_spill(archiver *a, bs_error *err)
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

/* Bytes of a table's open segment: its spill file, then what is still in memory. */
uint64_t
segments_open_len(const arch_table *t)
{
	return (t->spill ? spill_size(t->spill) : 0) + t->open.len;
}

/*
 * The spool must hold what it holds, what is sealed and queued, and what is open (spilled
 * or still to be spooled at the next seal), within spool_limit.
 */
int
segments_check_spool_room(archiver *a, bs_error *err)
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
int
segments_spill_flush(archiver *a, arch_table *t, bs_error *err)
{
	if (t->open.len == 0)
		return BS_OK;
	if (segments_check_spool_room(a, err) != BS_OK)
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

	if (segments_check_spool_room(a, err) != BS_OK)
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
		if ((big->spill ? segments_spill_flush(a, big, err) : spill_table(a, big, err)) != BS_OK)
			return BS_ERR;
	}
	return BS_OK;
}

int
segments_append_record(archiver *a, arch_table *t, segment_record *r, bs_error *err)
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
	if (t->check_cols != NULL && a->txn_final_lsn > t->schema_detect_lsn)
		schema_gap_end_by_stream(t, a->txn_final_lsn);
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
	if (t->spill && t->open.len >= SPILL_WRITE_BUFFER && segments_spill_flush(a, t, err) != BS_OK)
		return BS_ERR;
	if (__builtin_expect(a->open_bytes - a->spilled_bytes > a->open_memory_limit, 0))
		return relieve_memory(a, err);
	return BS_OK;
}

/* Patch the end LSN into every record of the transaction just committed (in its spill file
 * too), and note it in the segment's summary. */
int
segments_patch_end_lsn(archiver *a, arch_table *t, uint64_t end_lsn, bs_error *err)
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
	t->txn_start = segments_open_len(t);
	t->txn_records = t->open_records;
	return BS_OK;
}
