/* recover_plan.c — which base copy and segments rebuild a table at a point, and feeding them to replay. */
#include "recover_plan.h"
#include "clock.h"
#include "audit.h"
#include "isotime.h"
#include "lsn.h"
#include "manifest_head.h"
#include "object.h"
#include "pgsql.h"
#include "quote.h"
#include "segment.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

bool
recover_error_is_integrity(const bs_error *err)
{
	return strcmp(err->code, ERRCODE_DATA_CORRUPTED) == 0 || strcmp(err->code, ERRCODE_NOT_FOUND) == 0;
}

void
recover_plan_free(recover_plan *plan)
{
	if (plan == NULL)
		return;
	if (plan->segfile)
		for (int i = 0; i < plan->m->nsegments; i++)
			spill_close(plan->segfile[i]);
	free(plan->segfile);
	segfetch_free(plan->segfetch);
	free(plan->temp_dir);
	free(plan->segs);
	free(plan);
}

/* Say which archived object failed and how. */
static void
fetch_error_prefix(bs_error *err, const char *key)
{
	if (strcmp(err->code, ERRCODE_NOT_FOUND) == 0)
		error_prefix(err, "archived object %s is missing", key);
	else
		error_prefix(err, "archived object %s failed verification", key);
}

/* An object's raw size must be what the manifest records. */
static int
check_raw_size(const char *key, uint64_t got, uint64_t want, bs_error *err)
{
	if (got != want)
		return error_set(err, ERRCODE_DATA_CORRUPTED,
						 "archived object %s holds %llu raw bytes but the manifest records %llu", key,
						 (unsigned long long) got, (unsigned long long) want);
	return BS_OK;
}

/* Fetch one object, verified against the manifest's checksum of the stored object. */
static int
fetch(storage *st, const char *key, const char *sha256, uint64_t raw_size, strbuf *out, uint64_t *bytes,
	  bs_error *err)
{
	object_info info;

	strbuf_reset(out);
	if (object_get_all(st, key, sha256, out, &info, err) != BS_OK)
	{
		fetch_error_prefix(err, key);
		return BS_ERR;
	}
	if (check_raw_size(key, info.raw_size, raw_size, err) != BS_OK ||
		check_raw_size(key, out->len, raw_size, err) != BS_OK)
		return BS_ERR;
	*bytes += info.stored_size;
	return BS_OK;
}

/* A failed segment read: a segment object is named as fetch names objects; a pack's messages
 * name the pack and the run themselves. */
static void
segment_error_prefix(bs_error *err, const manifest_segment *s)
{
	if (s->source != MANIFEST_SEGMENT_PACK)
		fetch_error_prefix(err, s->key);
}

int
recover_fetch_segment(storage *st, segfetch *sf, uint32_t relid, const manifest_segment *s, strbuf *out,
					  uint64_t *bytes, bs_error *err)
{
	segment_reader rd;
	segment_record rec;
	bool eof = false;
	segfetch *own = sf ? NULL : segfetch_new();
	segfetch_info info;
	int rc;

	rc = segfetch_read_all(sf ? sf : own, st, relid, s, out, &info, err);
	segfetch_free(own);
	if (rc != BS_OK)
	{
		segment_error_prefix(err, s);
		return BS_ERR;
	}
	if (check_raw_size(s->key, info.raw_size, segfetch_raw_size(s), err) != BS_OK ||
		check_raw_size(s->key, out->len, segfetch_raw_size(s), err) != BS_OK)
		return BS_ERR;
	*bytes += info.stored_size;
	/* Count the records now, so a segment that does not match its manifest entry is
	 * refused before anything is written. */
	if (segment_reader_init(&rd, out->data, out->len, err) != BS_OK)
		return error_prefix(err, "segment %s", s->key);
	for (;;)
	{
		if (segment_reader_next(&rd, &rec, &eof, err) != BS_OK)
			return error_prefix(err, "segment %s", s->key);
		if (eof)
			break;
	}
	if (rd.nrecords != s->records)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "segment %s holds %llu records but the manifest records %llu",
						 s->key, (unsigned long long) rd.nrecords, (unsigned long long) s->records);
	return BS_OK;
}

/*
 * A raw segment in a temporary file, read through a read-only mapping whose pages are
 * given back (MADV_DONTNEED) behind the reader: a segment of any size costs about
 * MAP_RELEASE_STEP of resident memory, not its size.
 */
#define MAP_RELEASE_STEP ((size_t) 1024 * 1024)

typedef struct seg_map
{
	uint8_t *base;
	size_t len;
	size_t released;			/* pages before this offset were given back */
} seg_map;

static int
seg_map_open(const spill_file *f, seg_map *mp, bs_error *err)
{
	void *p;

	memset(mp, 0, sizeof(*mp));
	mp->len = (size_t) spill_size(f);
	if (mp->len == 0)
		return BS_OK;
	p = mmap(NULL, mp->len, PROT_READ, MAP_PRIVATE, spill_fd(f), 0);
	if (p == MAP_FAILED)
		return error_set_errno(err, errno, "could not map temporary file \"%s\"", spill_path(f));
	(void) madvise(p, mp->len, MADV_SEQUENTIAL);
	mp->base = p;
	return BS_OK;
}

/* The reader has passed offset pos: give back the whole pages before it. */
static void
seg_map_release(seg_map *mp, size_t pos)
{
	size_t page = (size_t) sysconf(_SC_PAGESIZE);
	size_t upto = pos / page * page;

	if (mp->base == NULL || upto < mp->released + MAP_RELEASE_STEP)
		return;
	(void) madvise(mp->base + mp->released, upto - mp->released, MADV_DONTNEED);
	mp->released = upto;
}

static void
seg_map_close(seg_map *mp)
{
	if (mp->base)
		munmap(mp->base, mp->len);
	memset(mp, 0, sizeof(*mp));
}

/* A segment streamed to its temporary file, with progress as its bytes arrive. */
typedef struct seg_sink
{
	spill_file *f;
	recover_plan *plan;
	const manifest_segment *s;
} seg_sink;

static int
seg_sink_write(void *ctx, const void *data, size_t len, bs_error *err)
{
	seg_sink *k = ctx;

	if (spill_append(k->f, data, len, err) != BS_OK)
		return BS_ERR;
	if (k->plan->fetch_progress)
	{
		/* Stored bytes, in proportion to the raw bytes received (what arrives is decoded). */
		const manifest_segment *s = k->s;
		double share = s->raw_size > 0 ? (double) spill_size(k->f) / (double) s->raw_size : 1.0;

		k->plan->fetching = share >= 1.0 ? s->size : (uint64_t) (share * (double) s->size);
		k->plan->fetch_progress(k->plan->fetch_ctx, k->plan);
	}
	return BS_OK;
}

/*
 * Fetch segment i into a temporary file unless it is there, verified as
 * recover_fetch_segment verifies (checksums and sizes while it is streamed to the file,
 * then every record); bytes counts what was downloaded.  On failure the slot is left empty.
 */
static int
fetch_segment(recover_plan *plan, storage *st, int i, uint64_t *bytes, bs_error *err)
{
	const manifest_segment *s = &plan->m->segments[i];
	spill_file *f = NULL;
	seg_sink sink = {NULL, plan, s};
	segfetch_info info;
	seg_map mp;
	segment_reader rd;
	segment_record rec;
	bool eof = false;
	int rc = BS_ERR;

	if (plan->segfile[i] != NULL)
		return BS_OK;
	if (spill_create_temp(plan->temp_dir, "backstop-segment-", &f, err) != BS_OK)
		return error_prefix(err, "segment %s", s->key);
	sink.f = f;
	if (plan->segfetch == NULL)
		plan->segfetch = segfetch_new();
	rc = segfetch_read(plan->segfetch, st, plan->m->relid, s, seg_sink_write, &sink, &info, err);
	plan->fetching = 0;
	if (rc != BS_OK)
	{
		segment_error_prefix(err, s);
		spill_close(f);
		return BS_ERR;
	}
	rc = BS_ERR;
	if (check_raw_size(s->key, info.raw_size, segfetch_raw_size(s), err) != BS_OK ||
		check_raw_size(s->key, spill_size(f), segfetch_raw_size(s), err) != BS_OK)
	{
		spill_close(f);
		return BS_ERR;
	}
	*bytes += info.stored_size;
	if (seg_map_open(f, &mp, err) != BS_OK)
	{
		spill_close(f);
		return BS_ERR;
	}
	if (segment_reader_init(&rd, mp.base ? (const void *) mp.base : "", mp.len, err) != BS_OK)
	{
		error_prefix(err, "segment %s", s->key);
		goto out;
	}
	for (;;)
	{
		if (segment_reader_next(&rd, &rec, &eof, err) != BS_OK)
		{
			error_prefix(err, "segment %s", s->key);
			goto out;
		}
		if (eof)
			break;
		seg_map_release(&mp, rd.pos);
	}
	if (rd.nrecords != s->records)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "segment %s holds %llu records but the manifest records %llu",
				  s->key, (unsigned long long) rd.nrecords, (unsigned long long) s->records);
		goto out;
	}
	rc = BS_OK;
out:
	seg_map_close(&mp);
	if (rc == BS_OK)
		plan->segfile[i] = f;
	else
		spill_close(f);
	return rc;
}

int
recover_plan_fetch(recover_plan *plan, storage *st, recover_fetch_cb progress, void *pctx, bs_error *err)
{
	plan->stage = RECOVER_STAGE_FETCH;
	plan->fetch_progress = progress;
	plan->fetch_ctx = pctx;
	plan->segs_fetched = 0;
	for (int k = 0; k < plan->nsegs; k++)
	{
		if (fetch_segment(plan, st, plan->segs[k], &plan->downloaded, err) != BS_OK)
			return BS_ERR;
		plan->segs_fetched++;
		if (progress)
			progress(pctx, plan);
	}
	return BS_OK;
}

/*
 * Walk the records of segments [from, to) in commit order, skipping those already
 * seen in an earlier segment (by end LSN) and those before min_commit.  visit returns 1 to
 * stop, 0 to continue.
 */
typedef int (*record_visit) (void *ctx, const segment_record *rec, bs_error *err);

static int
walk_records(recover_plan *plan, storage *st, int from, int to, uint64_t min_commit, record_visit visit,
			 void *ctx, bs_error *err)
{
	uint64_t applied_end = 0;

	for (int i = from; i < to; i++)
	{
		const manifest_segment *s = &plan->m->segments[i];
		segment_reader rd;
		segment_record rec;
		bool eof;
		uint64_t seg_end = applied_end;
		uint64_t prev_commit = 0;
		seg_map mp;

		if (s->last_end_lsn <= min_commit)
			continue;
		if (fetch_segment(plan, st, i, &plan->downloaded, err) != BS_OK)
			return BS_ERR;
		if (seg_map_open(plan->segfile[i], &mp, err) != BS_OK)
			return BS_ERR;
		if (segment_reader_init(&rd, mp.base ? (const void *) mp.base : "", mp.len, err) != BS_OK)
		{
			seg_map_close(&mp);
			return error_prefix(err, "segment %s", s->key);
		}
		for (;;)
		{
			int rc;

			/* Records are copied by whoever keeps them: the pages behind may go. */
			seg_map_release(&mp, rd.pos);
			if (segment_reader_next(&rd, &rec, &eof, err) != BS_OK)
			{
				seg_map_close(&mp);
				return error_prefix(err, "segment %s", s->key);
			}
			if (eof)
				break;
			if (rec.commit_lsn < prev_commit)
			{
				char a[LSN_BUFLEN], b[LSN_BUFLEN];

				seg_map_close(&mp);
				return error_set(err, ERRCODE_DATA_CORRUPTED,
								 "segment %s: record %llu at commit LSN %s follows commit LSN %s (not in commit order)",
								 s->key, (unsigned long long) rd.nrecords, lsn_format(rec.commit_lsn, a),
								 lsn_format(prev_commit, b));
			}
			prev_commit = rec.commit_lsn;
			if (rec.end_lsn <= applied_end)
			{
				plan->duplicates++;
				continue;
			}
			if (rec.end_lsn > seg_end)
				seg_end = rec.end_lsn;
			if (rec.commit_lsn < min_commit)
				continue;
			rc = visit(ctx, &rec, err);
			if (rc != 0)
			{
				seg_map_close(&mp);
				return rc < 0 ? BS_ERR : BS_OK;
			}
		}
		seg_map_close(&mp);
		applied_end = seg_end;
	}
	return BS_OK;
}

/* ---------- point resolution ---------- */

typedef struct find_ctx
{
	const recover_point *pt;
	bool found;
	uint64_t commit_lsn;
	int nfound;					/* XID: distinct transactions with that xid */
	uint64_t other_commit;
	uint32_t xid;				/* TIME: the transaction found */
	int64_t time;
} find_ctx;

static int
visit_find_time(void *ctx, const segment_record *rec, bs_error *err)
{
	find_ctx *f = ctx;
	int64_t t = rec->commit_time + RECOVER_PG_EPOCH_UNIX_US;

	(void) err;
	if (f->pt->exclusive ? t >= f->pt->time : t > f->pt->time)
	{
		f->found = true;
		f->commit_lsn = rec->commit_lsn;
		f->xid = rec->xid;
		f->time = t;
		return 1;
	}
	return 0;
}

static int
visit_find_xid(void *ctx, const segment_record *rec, bs_error *err)
{
	find_ctx *f = ctx;

	(void) err;
	if (rec->xid != f->pt->xid)
		return 0;
	if (!f->found)
	{
		f->found = true;
		f->commit_lsn = rec->commit_lsn;
		f->nfound = 1;
	}
	else if (rec->commit_lsn != f->commit_lsn && rec->commit_lsn != f->other_commit)
	{
		/* xids wrap around: the same number may name several transactions. */
		f->other_commit = rec->commit_lsn;
		f->nfound++;
	}
	return 0;
}

/* The table's name as --table takes it back (quoted where needed). */
static const char *
table_name(const manifest *m, char *buf, size_t size)
{
	char *shown = quote_display_name(m->schema, m->name);

	snprintf(buf, size, "%s", shown);
	free(shown);
	return buf;
}

/* A point before the window of a table whose older points were expired on purpose: say so,
 * rather than let it read as a hole in the archive. */
static int
expired_error(const manifest *m, const char *what, bs_error *err)
{
	char lo[LSN_BUFLEN],
		t0[ISOTIME_BUFLEN],
		t1[ISOTIME_BUFLEN];

	return error_set(err, ERRCODE_OUT_OF_RANGE,
					 "%s was expired by the archive's retention (backstop expire at %s): the recovery window "
					 "of %s.%s now starts at LSN %s (base copy taken %s)",
					 what, isotime_format(m->expired_time, t1), m->schema, m->name,
					 lsn_format(m->bases[0].lsn, lo), isotime_format(m->bases[0].time, t0));
}

static int
window_error(const recover_plan *plan, const char *what, bs_error *err)
{
	char lo[LSN_BUFLEN],
		hi[LSN_BUFLEN],
		t0[ISOTIME_BUFLEN],
		name[800];

	if (strcmp(plan->m->status, "dropped") == 0)
	{
		char gone[LSN_BUFLEN];

		return error_set(err, ERRCODE_OUT_OF_RANGE,
						 "%s is outside the recovery window of %s: LSN %s (base copy taken %s) to %s; the "
						 "table was dropped after %s and before %s, and the archive does not vouch that it "
						 "still existed later (--latest gives its last state)",
						 what, table_name(plan->m, name, sizeof(name)), lsn_format(plan->window_lo, lo),
						 isotime_format(plan->m->bases[0].time, t0), lsn_format(plan->window_hi, hi),
						 lsn_format(plan->window_hi, hi), lsn_format(plan->m->dropped_at_lsn, gone));
	}
	return error_set(err, ERRCODE_OUT_OF_RANGE,
					 "%s is outside the recovery window of %s: LSN %s (base copy taken %s) to %s",
					 what, table_name(plan->m, name, sizeof(name)), lsn_format(plan->window_lo, lo),
					 isotime_format(plan->m->bases[0].time, t0), lsn_format(plan->window_hi, hi));
}

/*
 * A column added with a per-row value (a volatile default: the table was rewritten, no
 * attmissingval) after the plan's base and still there at the point: the rows that come from
 * before it had values the archive does not hold.  Refused (exit 3, like a retyped column
 * replay cannot convert), naming the base copy from which points are exact again.
 */
static int
check_unknown_columns(const recover_plan *plan, const char *what, bs_error *err)
{
	const manifest *m = plan->m;

	for (int i = 0; i < m->nlayouts; i++)
	{
		const manifest_layout *l = &m->layouts[i];

		if (l->from_lsn < plan->base->lsn || l->from_lsn >= plan->bound)
			continue;
		for (int c = 0; c < l->ncols; c++)
		{
			const manifest_column *col = &l->columns[c];
			const manifest_base *next = NULL;
			bool kept = true;
			char a[LSN_BUFLEN],
				b[LSN_BUFLEN],
				name[800];

			if (!col->missing_unknown)
				continue;
			/* Dropped again before the point: nothing needs its values. */
			for (int k = i + 1; k < m->nlayouts && kept && m->layouts[k].from_lsn < plan->bound; k++)
			{
				bool has = false;

				for (int j = 0; j < m->layouts[k].ncols && !has; j++)
					has = strcmp(m->layouts[k].columns[j].name, col->name) == 0;
				kept = has;
			}
			if (!kept)
				continue;
			for (int k = 0; k < m->nbases && next == NULL; k++)
				if (m->bases[k].lsn > l->from_lsn)
					next = &m->bases[k];
			if (next)
				return error_set(err, ERRCODE_DATA_CORRUPTED,
								 "%s is not recoverable exactly: column \"%s\" of %s was added at LSN %s with a value "
								 "computed for each existing row (a volatile default such as gen_random_uuid() or a "
								 "serial), which the archive does not hold for rows from before it; choose a point "
								 "before %s or at or after the base copy at %s",
								 what, col->name, table_name(m, name, sizeof(name)), lsn_format(l->from_lsn, a), a,
								 lsn_format(next->lsn, b));
			return error_set(err, ERRCODE_DATA_CORRUPTED,
							 "%s is not recoverable exactly: column \"%s\" of %s was added at LSN %s with a value "
							 "computed for each existing row (a volatile default such as gen_random_uuid() or a "
							 "serial), which the archive does not hold for rows from before it, and no base copy has "
							 "been taken since; choose a point before %s, or wait for the new base copy",
							 what, col->name, table_name(m, name, sizeof(name)), lsn_format(l->from_lsn, a), a);
		}
	}
	return BS_OK;
}

int
recover_plan_build(storage *st, manifest *m, const archive_head *head, const recover_point *pt,
				   const recover_resources *res, recover_plan **out, bs_error *err)
{
	recover_plan *plan;
	uint64_t limit,
				stream_hi;
	audit_report audit;
	char buf[LSN_BUFLEN],
		tbuf[ISOTIME_BUFLEN],
		name[800],
		what[128];

	*out = NULL;
	if (m->nbases == 0)
		return error_set(err, ERRCODE_OUT_OF_RANGE, "table %s has no base copy in the archive: nothing to recover from",
						 table_name(m, name, sizeof(name)));
	/* Evidence of a rolled-back or edited manifest; checked against the range replayed below. */
	if (audit_table(st, m, head, NULL, 0, &audit, err) != BS_OK)
		return BS_ERR;
	plan = xcalloc(1, sizeof(*plan));
	plan->m = m;
	plan->segfile = xcalloc((size_t) m->nsegments + 1, sizeof(spill_file *));
	if (res)
	{
		plan->temp_dir = res->temp_dir ? xstrdup(res->temp_dir) : NULL;
		plan->memory_limit = res->memory_limit;
	}
	plan->window_lo = m->bases[0].lsn;
	plan->window_hi = m->archived_to;
	if (head && strcmp(m->status, "active") == 0 && head->flushed_lsn > plan->window_hi)
		plan->window_hi = head->flushed_lsn;
	/* What the stream has archived: a base copy taken ahead of it adds its own point only. */
	stream_hi = plan->window_hi;
	if (plan->window_hi < m->bases[m->nbases - 1].lsn)
		plan->window_hi = m->bases[m->nbases - 1].lsn;
	/* A dropped table is known to exist only up to its last change (or base): the drop lies
	 * somewhere between that and dropped_at_lsn, so later points are not vouched for. */
	if (strcmp(m->status, "dropped") == 0)
		plan->window_hi = manifest_dropped_after(m);

	switch (pt->kind)
	{
		case RECOVER_POINT_LSN:
			snprintf(what, sizeof(what), "LSN %s", lsn_format(pt->lsn, buf));
			plan->bound = pt->exclusive ? pt->lsn : pt->lsn + 1;
			if (plan->bound < plan->window_lo && m->expired_before)
			{
				expired_error(m, what, err);
				goto fail;
			}
			if (plan->bound < plan->window_lo || pt->lsn > plan->window_hi)
			{
				window_error(plan, what, err);
				goto fail;
			}
			/* Between what the stream has archived and a base copy taken ahead of it, the
			 * changes are not in the archive yet: an older base would miss them. */
			if (pt->lsn > stream_hi && pt->lsn != m->bases[m->nbases - 1].lsn &&
				strcmp(m->status, "dropped") != 0)
			{
				char a[LSN_BUFLEN],
					b[LSN_BUFLEN];

				error_set(err, ERRCODE_OUT_OF_RANGE, "%s is not recoverable yet: the stream has archived changes "
						  "to %s up to LSN %s only, and the base copy at %s was taken ahead of it; recover to a "
						  "point up to %s, or --latest (the base copy's state), or wait for the stream", what,
						  table_name(m, name, sizeof(name)), lsn_format(stream_hi, a),
						  lsn_format(m->bases[m->nbases - 1].lsn, b), a);
				goto fail;
			}
			break;
		case RECOVER_POINT_LATEST:
			snprintf(what, sizeof(what), "the latest point");
			/* A dropped table's latest point is its window's end: changes made by the dropping
			 * transaction itself (archived at its commit) are not a state it had. */
			plan->bound = strcmp(m->status, "dropped") == 0 ? plan->window_hi + 1 : UINT64_MAX;
			break;
		case RECOVER_POINT_TIME:
			{
				find_ctx f = {pt, false, 0, 0, 0, 0, 0};
				int from = 0;
				const manifest_base *start = &m->bases[0];
				int64_t hi_time = m->nsegments ? m->segments[m->nsegments - 1].last_time : m->bases[m->nbases - 1].time;

				if (head && strcmp(m->status, "active") == 0 && head->time > hi_time)
					hi_time = head->time;
				snprintf(what, sizeof(what), "time %s", isotime_format(pt->time, tbuf));
				if (pt->time < m->bases[0].time && m->expired_before)
				{
					expired_error(m, what, err);
					goto fail;
				}
				if (pt->time < m->bases[0].time || pt->time > hi_time)
				{
					char t0[ISOTIME_BUFLEN],
						t1[ISOTIME_BUFLEN];

					error_set(err, ERRCODE_OUT_OF_RANGE,
							  "%s is outside the recovery window of %s: %s to %s", what,
							  table_name(m, name, sizeof(name)), isotime_format(m->bases[0].time, t0),
							  isotime_format(hi_time, t1));
					goto fail;
				}
				/* Start from the newest base taken at or before the time. */
				for (int i = 0; i < m->nbases; i++)
					if (m->bases[i].time <= pt->time)
						start = &m->bases[i];
				while (from < m->nsegments && m->segments[from].last_end_lsn <= start->lsn)
					from++;
				if (walk_records(plan, st, from, m->nsegments, start->lsn, visit_find_time, &f, err) != BS_OK)
					goto fail;
				plan->bound = f.found ? f.commit_lsn : UINT64_MAX;
				if (f.found)
				{
					plan->next_commit_lsn = f.commit_lsn;
					plan->next_xid = f.xid;
					plan->next_commit_time = f.time;
				}
				if (plan->bound < start->lsn)
					plan->bound = start->lsn;
				break;
			}
		case RECOVER_POINT_XID:
			{
				find_ctx f = {pt, false, 0, 0, 0, 0, 0};

				snprintf(what, sizeof(what), "transaction %u", pt->xid);
				if (walk_records(plan, st, 0, m->nsegments, plan->window_lo, visit_find_xid, &f, err) != BS_OK)
					goto fail;
				if (!f.found)
				{
					char lo[LSN_BUFLEN],
						hi[LSN_BUFLEN];

					error_set(err, ERRCODE_UNDEFINED_OBJECT,
							  "transaction %u did not change table %s between LSN %s and %s "
							  "(only transactions that touched the table can be recovery points)%s",
							  pt->xid, table_name(m, name, sizeof(name)), lsn_format(plan->window_lo, lo),
							  lsn_format(plan->window_hi, hi),
							  m->expired_before ? "; points before that were expired by the archive's retention" : "");
					goto fail;
				}
				if (f.nfound > 1)
				{
					char a[LSN_BUFLEN],
						b[LSN_BUFLEN];

					error_set(err, ERRCODE_INVALID_PARAMETER,
							  "transaction id %u is ambiguous (wraparound): it committed at LSN %s and at %s; "
							  "use --to-lsn", pt->xid, lsn_format(f.commit_lsn, a), lsn_format(f.other_commit, b));
					goto fail;
				}
				plan->bound = pt->exclusive ? f.commit_lsn : f.commit_lsn + 1;
				break;
			}
	}

	/* Where schema changes were not captured, a window in which the columns changed at an
	 * unknown commit: the table's state there is not known, whichever base is used. */
	{
		const manifest_gap *g = manifest_schema_gap_at(m, plan->bound);

		if (g)
		{
			char a[LSN_BUFLEN],
				b[LSN_BUFLEN];
			const char *why = "schema changes were not captured in the stream there: DDL capture was off, or the "
				"archiver's role cannot create event triggers";

			if (g->to == MANIFEST_GAP_OPEN)
				error_set(err, ERRCODE_OUT_OF_RANGE,
						  "%s is not recoverable: the schema of %s changed at an unknown point after LSN %s, and "
						  "no base copy has been taken since (%s); choose a point before %s, or wait for the new "
						  "base copy", what, table_name(m, name, sizeof(name)), lsn_format(g->from, a), why, a);
			else
				error_set(err, ERRCODE_OUT_OF_RANGE,
						  "%s is not recoverable: the schema of %s changed at an unknown point between LSN %s and "
						  "LSN %s (%s); choose a point outside it: before %s, or at or after %s",
						  what, table_name(m, name, sizeof(name)), lsn_format(g->from, a), lsn_format(g->to, b),
						  why, a, b);
			goto fail;
		}
	}
	/* The newest base that holds nothing at or after the bound. */
	limit = plan->bound;
	if (pt->base_limit && pt->base_limit < limit)
		limit = pt->base_limit;
	for (int i = 0; i < m->nbases; i++)
		if (m->bases[i].lsn <= limit)
			plan->base = &m->bases[i];
	if (plan->base == NULL)
	{
		window_error(plan, what, err);
		goto fail;
	}
	if (check_unknown_columns(plan, what, err) != BS_OK)
		goto fail;
	for (int i = 0; i < plan->base->nchunks; i++)
		plan->download_bytes += plan->base->chunks[i].size;
	/* Records committed in [base, bound) are replayed: none of them may be missing, by
	 * the archive's own account (a gap) or by evidence of damage. */
	{
		const manifest_gap *g = manifest_gap_in(m, plan->base->lsn, plan->bound);

		if (g && g->to == MANIFEST_GAP_OPEN)
		{
			char a[LSN_BUFLEN];

			error_set(err, ERRCODE_OUT_OF_RANGE,
					  "%s is not recoverable: changes to %s committed from LSN %s on are not archived (the table "
					  "left the archived set there: removed from the publication the slot streams, or from the "
					  "tables to archive); recover to a point before %s",
					  what, table_name(m, name, sizeof(name)), lsn_format(g->from, a), a);
			goto fail;
		}
		if (g)
		{
			char a[LSN_BUFLEN],
				b[LSN_BUFLEN];

			error_set(err, ERRCODE_OUT_OF_RANGE,
					  "%s is not recoverable: changes to %s committed from LSN %s to %s were never archived "
					  "(archiving resumed with a new base copy at %s: from a new replication slot, or after the table was "
					  "out of the archived set); recover to a point before %s, or at or after %s",
					  what, table_name(m, name, sizeof(name)), lsn_format(g->from, a), lsn_format(g->to, b), b, a, b);
			goto fail;
		}
	}
	if (audit_check_range(&audit, m, plan->base->lsn, plan->bound, err) != BS_OK)
		goto fail;
	plan->segs = xcalloc((size_t) m->nsegments + 1, sizeof(int));
	for (int i = 0; i < m->nsegments; i++)
	{
		const manifest_segment *s = &m->segments[i];

		if (s->last_end_lsn > plan->base->lsn && s->first_lsn < plan->bound)
		{
			plan->segs[plan->nsegs++] = i;
			plan->download_bytes += s->size;
		}
		else
		{
			spill_close(plan->segfile[i]);	/* fetched while resolving, not needed */
			plan->segfile[i] = NULL;
		}
	}
	audit_report_free(&audit);
	*out = plan;
	return BS_OK;
fail:
	audit_report_free(&audit);
	recover_plan_free(plan);
	return BS_ERR;
}

/* ---------- running ---------- */

typedef struct run_ctx
{
	recover_plan *plan;
	replay_state *rs;
	uint64_t report_after;
	replay_change_cb cb;
	void *cbctx;
	bool cb_on;
	recover_progress_cb progress;
	void *pctx;
	uint64_t applied;
} run_ctx;

/* Count a record to be applied and remember the last transaction. */
static void
note_record(recover_plan *plan, const segment_record *rec)
{
	if (rec->end_lsn != plan->last_end_lsn)
	{
		plan->transactions++;
		plan->last_end_lsn = rec->end_lsn;
		plan->last_commit_lsn = rec->commit_lsn;
		plan->last_xid = rec->xid;
		plan->last_commit_time = rec->commit_time + RECOVER_PG_EPOCH_UNIX_US;
	}
	plan->operations++;
}

static int
visit_apply(void *ctx, const segment_record *rec, bs_error *err)
{
	run_ctx *r = ctx;
	recover_plan *plan = r->plan;

	if (rec->commit_lsn >= plan->bound)
		return 1;				/* records are in commit order: everything after is excluded */
	note_record(plan, rec);
	if (r->cb && !r->cb_on && rec->commit_lsn > r->report_after)
	{
		replay_set_change_callback(r->rs, r->cb, r->cbctx);
		r->cb_on = true;
	}
	if (replay_apply(r->rs, rec, err) != BS_OK)
		return -1;
	if (r->progress && (++r->applied & 0xffff) == 0)
		r->progress(r->pctx, plan, r->applied);
	return 0;
}

/* Where a streaming load sends the base rows that no change touches. */
typedef struct stream_sink
{
	replay_copy_cb cb;
	void *ctx;
	replay_checksum *sum;
	uint64_t passed;
} stream_sink;

static int
parse_chunk(replay_state *rs, uint32_t layout, const char *data, size_t len, const char *what,
			stream_sink *sink, bs_error *err)
{
	if (data == NULL)
		data = "";
	if (sink)
		return replay_split_base_copy(rs, layout, data, len, what, sink->cb, sink->ctx, sink->sum,
									  &sink->passed, err);
	return replay_load_base_copy(rs, layout, data, len, what, err);
}

/*
 * Fetching (read, checksum, decompress) runs in a second thread that hands the base chunks'
 * raw bytes over in pieces of about PIECE_SIZE while they are decompressed, so parsing (and,
 * streaming, loading) starts long before a whole chunk is read; then it fetches and counts
 * the segments.  A chunk's verdict (stored and raw SHA-256, sizes) comes with its last
 * piece: the rows of a chunk may be parsed before it, which is safe because nothing parsed
 * is committed before every chunk has passed (in memory: nothing is written before then;
 * streamed: a failure rolls the transaction back).  Only that thread touches the storage
 * until it is joined.  A segment it cannot fetch is left for walk_records, which fetches it
 * again and reports the failure as before.
 */
#define PIECE_SIZE (1024 * 1024)
#define PIECE_QUEUE 16

typedef struct piece
{
	strbuf data;
	bool last;					/* the chunk's last piece: the chunk is verified */
} piece;

typedef struct prefetch
{
	recover_plan *plan;
	storage *st;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	piece q[PIECE_QUEUE];		/* ring: q[head .. head+count) are ready */
	int depth;					/* pieces queued at most (<= PIECE_QUEUE): memory_limit */
	int head;
	int count;
	strbuf cur;					/* the piece being filled (fetch thread only) */
	bool failed;				/* a chunk could not be fetched or verified: err */
	bool stop;
	bs_error err;
	uint64_t downloaded;
} prefetch;

/* Queue the filled piece; false when the parser asked to stop. */
static bool
piece_push(prefetch *pf, bool last)
{
	bool ok;

	pthread_mutex_lock(&pf->mu);
	while (!pf->stop && pf->count == pf->depth)
		pthread_cond_wait(&pf->cv, &pf->mu);
	ok = !pf->stop;
	if (ok)
	{
		piece *p = &pf->q[(pf->head + pf->count) % pf->depth];
		strbuf t = p->data;

		/* Swap buffers: the queued one keeps the data, cur reuses an old allocation. */
		p->data = pf->cur;
		p->last = last;
		pf->cur = t;
		strbuf_reset(&pf->cur);
		pf->count++;
		pthread_cond_broadcast(&pf->cv);
	}
	pthread_mutex_unlock(&pf->mu);
	return ok;
}

static int
piece_sink(void *ctx, const void *data, size_t len, bs_error *err)
{
	prefetch *pf = ctx;

	strbuf_append(&pf->cur, data, len);
	if (pf->cur.len >= PIECE_SIZE && !piece_push(pf, false))
		return error_set(err, ERRCODE_INTERNAL, "stopped: the parser failed");
	return BS_OK;
}

static void *
prefetch_main(void *arg)
{
	prefetch *pf = arg;
	const manifest_base *b = pf->plan->base;

	for (int i = 0; i < b->nchunks; i++)
	{
		const manifest_chunk *c = &b->chunks[i];
		object_info info;
		bs_error e;
		int rc;

		strbuf_reset(&pf->cur);
		rc = object_get(pf->st, c->key, c->sha256, piece_sink, pf, &info, &e);
		if (rc == BS_OK)
			rc = check_raw_size(c->key, info.raw_size, c->raw_size, &e);
		else
			fetch_error_prefix(&e, c->key);
		pthread_mutex_lock(&pf->mu);
		if (rc == BS_OK)
			pf->downloaded += info.stored_size;
		else if (!pf->stop)
		{
			pf->failed = true;
			pf->err = e;
			pthread_cond_broadcast(&pf->cv);
		}
		pthread_mutex_unlock(&pf->mu);
		if (rc != BS_OK || !piece_push(pf, true))
			return NULL;
	}
	for (int k = 0; k < pf->plan->nsegs; k++)
	{
		uint64_t bytes = 0;
		bool stop;
		bs_error e;

		pthread_mutex_lock(&pf->mu);
		stop = pf->stop;
		pthread_mutex_unlock(&pf->mu);
		if (stop)
			break;
		(void) fetch_segment(pf->plan, pf->st, pf->plan->segs[k], &bytes, &e);
		pthread_mutex_lock(&pf->mu);
		pf->downloaded += bytes;
		pthread_mutex_unlock(&pf->mu);
	}
	return NULL;
}

/* Parse every base chunk, fetched by a prefetch thread when one can be started; with a
 * sink, untouched rows go to it (streaming). */
static int
load_base(recover_plan *plan, storage *st, replay_state *rs, recover_progress_cb progress, void *pctx,
		  stream_sink *sink, bs_error *err)
{
	const manifest_base *b = plan->base;
	uint64_t before = plan->downloaded;
	prefetch pf;
	pthread_t th;
	strbuf carry = STRBUF_INIT;	/* an incomplete line from the previous piece */
	int chunk = 0;
	int rc = BS_OK;

	memset(&pf, 0, sizeof(pf));
	pf.plan = plan;
	pf.st = st;
	/* A quarter of the memory limit for pieces in flight, at least two. */
	pf.depth = PIECE_QUEUE;
	if (plan->memory_limit > 0 && plan->memory_limit / 4 / PIECE_SIZE < PIECE_QUEUE)
		pf.depth = plan->memory_limit / 4 / PIECE_SIZE < 2 ? 2 : (int) (plan->memory_limit / 4 / PIECE_SIZE);
	pthread_mutex_init(&pf.mu, NULL);
	pthread_cond_init(&pf.cv, NULL);
	if (pthread_create(&th, NULL, prefetch_main, &pf) != 0)
	{
		/* No thread: fetch and parse in turn. */
		for (int i = 0; rc == BS_OK && i < b->nchunks; i++)
		{
			const manifest_chunk *c = &b->chunks[i];

			if (fetch(st, c->key, c->sha256, c->raw_size, &carry, &plan->downloaded, err) != BS_OK ||
				parse_chunk(rs, b->layout_id, carry.data, carry.len, c->key, sink, err) != BS_OK)
				rc = BS_ERR;
			else if (progress)
				progress(pctx, plan, 0);
		}
		goto out;
	}
	while (chunk < b->nchunks)
	{
		const manifest_chunk *c = &b->chunks[chunk];
		piece *p;
		const char *d;
		size_t n,
			done = 0;

		pthread_mutex_lock(&pf.mu);
		while (pf.count == 0 && !pf.failed)
			pthread_cond_wait(&pf.cv, &pf.mu);
		plan->downloaded = before + pf.downloaded;
		if (pf.count == 0)
		{
			*err = pf.err;
			rc = BS_ERR;
		}
		pthread_mutex_unlock(&pf.mu);
		if (rc != BS_OK)
			break;
		/* Only this thread takes pieces: q[head] stays put while it is parsed.  Pieces come
		 * in order, chunk by chunk. */
		p = &pf.q[pf.head];
		d = p->data.data ? p->data.data : "";
		n = p->data.len;
		if (carry.len > 0)
		{
			/* Complete the line started in the previous piece. */
			const char *nl = memchr(d, '\n', n);

			done = nl ? (size_t) (nl - d) + 1 : n;
			strbuf_append(&carry, d, done);
			if (nl && parse_chunk(rs, b->layout_id, carry.data, carry.len, c->key, sink, err) != BS_OK)
				rc = BS_ERR;
			if (nl)
				strbuf_reset(&carry);
		}
		if (rc == BS_OK && done < n)
		{
			const char *start = d + done;
			const char *lastnl = memrchr(start, '\n', n - done);
			size_t whole = lastnl ? (size_t) (lastnl - start) + 1 : 0;

			if (whole > 0 && parse_chunk(rs, b->layout_id, start, whole, c->key, sink, err) != BS_OK)
				rc = BS_ERR;
			strbuf_append(&carry, start + whole, n - done - whole);
		}
		if (rc == BS_OK && p->last)
		{
			if (carry.len > 0)
				rc = error_set(err, ERRCODE_DATA_CORRUPTED, "%s: the base copy chunk does not end at a line boundary",
							   c->key);
			chunk++;
		}
		if (rc == BS_OK && progress)
			progress(pctx, plan, 0);
		pthread_mutex_lock(&pf.mu);
		pf.head = (pf.head + 1) % pf.depth;
		pf.count--;
		if (rc != BS_OK)
			pf.stop = true;
		pthread_cond_broadcast(&pf.cv);
		pthread_mutex_unlock(&pf.mu);
		if (rc != BS_OK)
			break;
	}
	if (rc != BS_OK)
	{
		pthread_mutex_lock(&pf.mu);
		pf.stop = true;
		pthread_cond_broadcast(&pf.cv);
		pthread_mutex_unlock(&pf.mu);
	}
	pthread_join(th, NULL);
	plan->downloaded = before + pf.downloaded;
out:
	/* Streaming, the touched rows may still be loading: the count needs them all. */
	if (sink)
	{
		bs_error e;

		if (replay_split_finish(rs, &e) != BS_OK && rc == BS_OK)
		{
			*err = e;
			rc = BS_ERR;
		}
	}
	if (rc == BS_OK)
	{
		/* Streaming, the rows sent on count as well as those kept. */
		uint64_t rows = (sink ? sink->passed : 0) + replay_row_count(rs);

		if (rows != b->rows)
			rc = error_set(err, ERRCODE_DATA_CORRUPTED,
						   "the base copy at LSN %s holds %llu rows but the manifest records %llu",
						   lsn_format(b->lsn, (char[LSN_BUFLEN]) {0}), (unsigned long long) rows,
						   (unsigned long long) b->rows);
	}
	strbuf_free(&carry);
	strbuf_free(&pf.cur);
	for (int i = 0; i < PIECE_QUEUE; i++)
		strbuf_free(&pf.q[i].data);
	pthread_cond_destroy(&pf.cv);
	pthread_mutex_destroy(&pf.mu);
	return rc;
}

int
walk_plan(recover_plan *plan, storage *st, record_visit visit, void *ctx, bool count_dups, bs_error *err)
{
	int first = plan->nsegs ? plan->segs[0] : 0;
	int last = plan->nsegs ? plan->segs[plan->nsegs - 1] + 1 : 0;
	uint64_t dups = plan->duplicates;
	int rc = walk_records(plan, st, first, last, plan->base->lsn, visit, ctx, err);

	if (!count_dups)
		plan->duplicates = dups;
	return rc;
}

int
recover_plan_run(recover_plan *plan, storage *st, replay_state *rs, uint64_t report_after,
				 replay_change_cb cb, void *cbctx, recover_progress_cb progress, void *pctx, bs_error *err)
{
	const manifest_base *b = plan->base;
	run_ctx r = {plan, rs, report_after, cb, cbctx, false, progress, pctx, 0};

	plan->stage = RECOVER_STAGE_BASE;
	if (load_base(plan, st, rs, progress, pctx, NULL, err) != BS_OK)
		return BS_ERR;
	plan->stage = RECOVER_STAGE_CHANGES;
	if (progress)
		progress(pctx, plan, 0);
	if (cb && report_after < b->lsn)
	{
		replay_set_change_callback(rs, cb, cbctx);
		r.cb_on = true;
	}
	if (walk_plan(plan, st, visit_apply, &r, true, err) != BS_OK)
		return BS_ERR;
	replay_set_change_callback(rs, NULL, NULL);
	if (replay_check(rs, err) != BS_OK)
		return BS_ERR;
	if (progress)
		progress(pctx, plan, r.applied);
	return BS_OK;
}

/* ---------- streaming ---------- */

typedef struct touch_ctx
{
	recover_plan *plan;
	replay_state *rs;
	bool streamable;
	uint32_t layout;
} touch_ctx;

static int
visit_touch(void *ctx, const segment_record *rec, bs_error *err)
{
	touch_ctx *t = ctx;

	if (rec->commit_lsn >= t->plan->bound)
		return 1;
	note_record(t->plan, rec);
	t->layout = rec->layout_id;
	if (replay_touch(t->rs, rec, &t->streamable, err) != BS_OK)
		return -1;
	return t->streamable ? 0 : 1;
}

uint32_t
recover_plan_point_layout(const recover_plan *plan, uint32_t current)
{
	uint64_t at = plan->bound > 0 ? plan->bound - 1 : 0;
	const manifest_layout *l,
			   *cur;

	if (at > plan->window_hi)
		at = plan->window_hi;
	l = manifest_layout_at(plan->m, at);
	cur = manifest_layout_by_id(plan->m, current);
	/* Newer means from a later position (ids are not positions, nor in LSN order). */
	return l != NULL && (cur == NULL || l->from_lsn > cur->from_lsn) ? l->id : current;
}

bool
recover_plan_ddl_uncaptured(const recover_plan *plan)
{
	uint64_t at = plan->bound > 0 ? plan->bound - 1 : 0;

	if (at > plan->window_hi)
		at = plan->window_hi;
	return plan->m->ddl_capture_from == 0 || plan->m->ddl_capture_from > at;
}

int
recover_plan_prepare_stream(recover_plan *plan, storage *st, replay_state *rs, bool *streamable,
							uint32_t *target_layout, bs_error *err)
{
	touch_ctx t = {plan, rs, true, plan->base->layout_id};

	*streamable = false;
	if (replay_stream_begin(rs, plan->base->layout_id, err) != BS_OK)
		return BS_ERR;
	/* Fetches and verifies every segment of the plan; duplicates are counted when the
	 * records are applied. */
	if (walk_plan(plan, st, visit_touch, &t, false, err) != BS_OK)
		return BS_ERR;
	if (!t.streamable)
	{
		/* recover_plan_run starts over on a new state. */
		plan->transactions = plan->operations = 0;
		plan->last_end_lsn = plan->last_commit_lsn = 0;
		plan->last_xid = 0;
		plan->last_commit_time = 0;
		return BS_OK;
	}
	/* A schema change after the last record: the base rows are converted, not streamed. */
	if (recover_plan_point_layout(plan, t.layout) != t.layout)
	{
		plan->transactions = plan->operations = 0;
		plan->last_end_lsn = plan->last_commit_lsn = 0;
		plan->last_xid = 0;
		plan->last_commit_time = 0;
		return BS_OK;
	}
	*streamable = true;
	*target_layout = t.layout;
	return BS_OK;
}

typedef struct stream_apply_ctx
{
	recover_plan *plan;
	replay_state *rs;
	recover_progress_cb progress;
	void *pctx;
	uint64_t applied;
} stream_apply_ctx;

static int
visit_stream_apply(void *ctx, const segment_record *rec, bs_error *err)
{
	stream_apply_ctx *a = ctx;

	if (rec->commit_lsn >= a->plan->bound)
		return 1;
	if (replay_apply(a->rs, rec, err) != BS_OK)
		return -1;
	if (a->progress && (++a->applied & 0xffff) == 0)
		a->progress(a->pctx, a->plan, a->applied);
	return 0;
}

int
recover_plan_stream(recover_plan *plan, storage *st, replay_state *rs, uint32_t target_layout,
					replay_copy_cb cb, void *cbctx, replay_checksum *sum, recover_progress_cb progress,
					void *pctx, bs_error *err)
{
	stream_sink sink = {cb, cbctx, sum, 0};
	stream_apply_ctx a = {plan, rs, progress, pctx, 0};
	replay_checksum rest = {0, 0};

	sum->rows = 0;
	sum->sum = 0;
	plan->stage = RECOVER_STAGE_BASE;
	if (load_base(plan, st, rs, progress, pctx, &sink, err) != BS_OK)
		return BS_ERR;
	plan->stage = RECOVER_STAGE_CHANGES;
	if (progress)
		progress(pctx, plan, 0);
	if (walk_plan(plan, st, visit_stream_apply, &a, true, err) != BS_OK)
		return BS_ERR;
	if (replay_check(rs, err) != BS_OK)
		return BS_ERR;
	plan->stage = RECOVER_STAGE_WRITE;
	if (progress)
		progress(pctx, plan, a.applied);
	if (replay_write_copy(rs, target_layout, cb, cbctx, &rest, err) != BS_OK)
		return BS_ERR;
	sum->rows += rest.rows;
	sum->sum += rest.sum;
	return BS_OK;
}

/* ---------- points in time given by the user ---------- */

/* The name of the local time zone: TZ (without a leading ':'), else the zone
 * /etc/localtime links to, else "local". */
static void
local_zone_name(char *buf, size_t size)
{
	const char *tz = getenv("TZ");
	char link[PATH_MAX];
	ssize_t n;

	if (tz && *tz)
	{
		snprintf(buf, size, "%.100s", tz[0] == ':' ? tz + 1 : tz);
		return;
	}
	n = readlink("/etc/localtime", link, sizeof(link) - 1);
	if (n > 0)
	{
		const char *z;

		link[n] = '\0';
		z = strstr(link, "zoneinfo/");
		snprintf(buf, size, "%.100s", z ? z + strlen("zoneinfo/") : link);
		return;
	}
	snprintf(buf, size, "local");
}

/* "+HH:MM" of a UTC offset in seconds. */
static void
format_offset(long off, char *buf, size_t size)
{
	int a = (int) ((off < 0 ? -off : off) % 86400);	/* offsets are within a day */

	if (a % 60)
		snprintf(buf, size, "%c%02d:%02d:%02d", off < 0 ? '-' : '+', a / 3600, (a / 60) % 60, a % 60);
	else
		snprintf(buf, size, "%c%02d:%02d", off < 0 ? '-' : '+', a / 3600, (a / 60) % 60);
}

void
recover_describe_zone(int64_t unix_us, char *buf, size_t size)
{
	char name[128],
		off[32];
	time_t secs = (time_t) (unix_us / 1000000);
	struct tm tm;

	tzset();
	local_zone_name(name, sizeof(name));
	if (localtime_r(&secs, &tm) == NULL)
	{
		snprintf(buf, size, "%s", name);
		return;
	}
	format_offset(tm.tm_gmtoff, off, sizeof(off));
	snprintf(buf, size, "%s (%s, UTC%s)", name, tm.tm_zone ? tm.tm_zone : "?", off);
}

char *
recover_format_local_time(int64_t unix_us, char *buf)
{
	time_t secs = (time_t) (unix_us / 1000000);
	long us = (long) (unix_us % 1000000);
	struct tm tm;
	char off[32];

	if (us < 0)
	{
		us += 1000000;
		secs--;
	}
	tzset();
	if (localtime_r(&secs, &tm) == NULL)
		return isotime_format(unix_us, buf);
	format_offset(tm.tm_gmtoff, off, sizeof(off));
	snprintf(buf, RECOVER_TIME_BUFLEN, "%04d-%02d-%02d %02d:%02d:%02d.%06ld%s", tm.tm_year + 1900, tm.tm_mon + 1,
			 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, us, off);
	return buf;
}

int
recover_parse_time(const char *s, int64_t *out)
{
	recover_time t;

	if (recover_parse_time_at(s, clock_unix_us(), &t) != BS_OK)
		return BS_ERR;
	*out = t.time;
	return BS_OK;
}

/* "N unit[s] ago" (units: s, sec, second, min, minute, h, hour, d, day, w, week), "now". */
static int
parse_relative(const char *s, int64_t now, recover_time *out)
{
	static const struct
	{
		const char *name;
		int64_t us;
	} units[] = {
		{"s", INT64_C(1000000)}, {"sec", INT64_C(1000000)}, {"secs", INT64_C(1000000)},
		{"second", INT64_C(1000000)}, {"seconds", INT64_C(1000000)},
		{"m", INT64_C(60000000)}, {"min", INT64_C(60000000)}, {"mins", INT64_C(60000000)},
		{"minute", INT64_C(60000000)}, {"minutes", INT64_C(60000000)},
		{"h", INT64_C(3600000000)}, {"hour", INT64_C(3600000000)}, {"hours", INT64_C(3600000000)},
		{"d", INT64_C(86400000000)}, {"day", INT64_C(86400000000)}, {"days", INT64_C(86400000000)},
		{"w", INT64_C(604800000000)}, {"week", INT64_C(604800000000)}, {"weeks", INT64_C(604800000000)},
	};
	const char *p = s;
	int64_t n = 0;
	size_t ulen;
	const char *u;

	out->relative = true;
	out->second_precision = false;
	if (strcmp(s, "now") == 0)
	{
		out->time = now;
		return BS_OK;
	}
	if (*p < '0' || *p > '9')
		return BS_ERR;
	while (*p >= '0' && *p <= '9')
	{
		n = n * 10 + (*p++ - '0');
		if (n > 100000000)		/* far beyond any archive; keeps the product in range */
			return BS_ERR;
	}
	while (*p == ' ')
		p++;
	u = p;
	while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
		p++;
	ulen = (size_t) (p - u);
	while (*p == ' ')
		p++;
	if (strcmp(p, "ago") != 0 || ulen == 0)
		return BS_ERR;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strlen(units[i].name) == ulen && strncasecmp(units[i].name, u, ulen) == 0)
		{
			out->time = now - n * units[i].us;
			return BS_OK;
		}
	return BS_ERR;
}

int
recover_parse_time_at(const char *s, int64_t now, recover_time *out)
{
	strbuf sb = STRBUF_INIT;
	const char *p = s;
	int64_t offset_us = 0;
	bool zoned = false;
	int rc;

	memset(out, 0, sizeof(*out));
	if (s == NULL)
		return BS_ERR;
	if (parse_relative(s, now, out) == BS_OK)
	{
		recover_describe_zone(out->time, out->zone, sizeof(out->zone));
		return BS_OK;
	}
	out->relative = false;
	/* Date and time: "YYYY-MM-DD HH:MM:SS" or with 'T', then an optional fraction. */
	if (strlen(s) < 19)
		return BS_ERR;
	strbuf_append(&sb, s, 10);
	if (s[10] != ' ' && s[10] != 'T')
	{
		strbuf_free(&sb);
		return BS_ERR;
	}
	strbuf_append_char(&sb, 'T');
	strbuf_append(&sb, s + 11, 8);
	p = s + 19;
	out->second_precision = true;
	if (*p == '.')
	{
		const char *q = p + 1;

		while (*q >= '0' && *q <= '9')
			q++;
		strbuf_append(&sb, p, (size_t) (q - p));
		p = q;
		out->second_precision = false;
	}
	while (*p == ' ')
		p++;
	/* Zone: none (the user's own zone), Z or UTC, or a numeric offset +HH, +HHMM, +HH:MM. */
	if ((*p == 'Z' && p[1] == '\0') || strcmp(p, "UTC") == 0)
	{
		p += strlen(p);
		zoned = true;
		snprintf(out->zone, sizeof(out->zone), "UTC");
	}
	else if (*p == '+' || *p == '-')
	{
		int sign = *p == '-' ? -1 : 1;
		int hh,
			mm = 0;

		if (!(p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9'))
		{
			strbuf_free(&sb);
			return BS_ERR;
		}
		hh = (p[1] - '0') * 10 + (p[2] - '0');
		p += 3;
		if (*p == ':')
			p++;
		if (*p >= '0' && *p <= '9' && p[1] >= '0' && p[1] <= '9')
		{
			mm = (p[0] - '0') * 10 + (p[1] - '0');
			p += 2;
		}
		if (hh > 15 || mm > 59)
		{
			strbuf_free(&sb);
			return BS_ERR;
		}
		offset_us = sign * ((int64_t) hh * 3600 + mm * 60) * 1000000;
		zoned = true;
		{
			char off[32];

			format_offset((long) (offset_us / 1000000), off, sizeof(off));
			snprintf(out->zone, sizeof(out->zone), "UTC%s", off);
		}
	}
	if (*p != '\0')
	{
		strbuf_free(&sb);
		return BS_ERR;
	}
	strbuf_append_char(&sb, 'Z');
	rc = isotime_parse(sb.data, &out->time);	/* checks the fields; as if in UTC */
	strbuf_free(&sb);
	if (rc != BS_OK)
		return BS_ERR;
	if (zoned)
	{
		out->time -= offset_us;
		return BS_OK;
	}
	/* No zone: the wall-clock time in the user's zone (TZ, else the system's), as psql
	 * shows it.  A time the clocks skipped (a DST gap) is refused. */
	{
		int64_t frac = ((out->time % 1000000) + 1000000) % 1000000;
		time_t wall = (time_t) ((out->time - frac) / 1000000);
		time_t t;
		struct tm in,
			back;

		tzset();
		if (gmtime_r(&wall, &in) == NULL)
			return BS_ERR;
		back = in;
		back.tm_isdst = -1;
		t = mktime(&back);
		if (t == (time_t) -1 || back.tm_year != in.tm_year || back.tm_mon != in.tm_mon ||
			back.tm_mday != in.tm_mday || back.tm_hour != in.tm_hour || back.tm_min != in.tm_min ||
			back.tm_sec != in.tm_sec)
			return BS_ERR;
		out->time = (int64_t) t * 1000000 + frac;
		recover_describe_zone(out->time, out->zone, sizeof(out->zone));
	}
	return BS_OK;
}
