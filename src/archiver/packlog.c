/* packlog.c — the archiver's format-3 log: one pack per seal (every touched table's runs and events), catalogs, and the format-3 head (doc/design/format2.md 3.3, 3.4). */
#include "autoconf.h"
#include "archive_load.h"
#include "clock.h"
#include "digest.h"
#include "fold.h"
#include "log.h"
#include "lsn.h"
#include "manifest.h"
#include "manifest_json.h"
#include "mdelta.h"
#include "pack.h"
#include "packcat.h"
#include "segment.h"
#include "storage.h"
#include "storage_crypt.h"
#include "strbuf.h"
#include "config.h"
#include "error.h"
#include "archiver_int.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A catalog is written once this many packs follow the last one (and at start-up): a reader
 * then opens at most this many footers after it. */
#define PACKLOG_CATALOG_PACKS 64

/* Test hook (doc/HACKING.md): exit right after the first pack with runs is put, before the
 * spool is cleaned up and the position confirmed, as a crash there would. */
#define TEST_EXIT_AFTER_PACK "BACKSTOP_TEST_EXIT_AFTER_PACK"

/* The state the log holds of a table loaded from it and not registered yet. */
typedef struct packlog_loaded
{
	uint32_t relid;
	manifest *m;
	uint64_t floor;
} packlog_loaded;

/* A table's share of a pack being built: its state then, and the events that lead there. */
typedef struct pack_table
{
	uint32_t relid;
	manifest *after;			/* without segments */
	mdelta_list events;
	uint64_t floor;				/* the LSN of its last event once the pack is in the log */
	bool has_events;
	bool base_unstored;			/* its newest base reaches the log with this pack */
} pack_table;

/* One spooled segment going into the pack. */
typedef struct pack_input
{
	const char *spool_key;
	uint32_t relid;
	uint64_t first_lsn;
} pack_input;

/* The manifest's state without its segments (what a catalog and the events describe). */
static manifest *
copy_without_segments(const manifest *m, bs_error *err)
{
	manifest tmp = *m;
	manifest *out = NULL;
	char *json;

	tmp.segments = NULL;
	tmp.nsegments = 0;
	json = manifest_to_json(&tmp);
	if (manifest_from_json(json, strlen(json), &out, err) != BS_OK)
		out = NULL;
	free(json);
	return out;
}

static void
remember_loaded(archiver *a, const manifest *m, uint64_t floor)
{
	bs_error err;
	manifest *c;

	error_clear(&err);
	c = copy_without_segments(m, &err);
	if (c == NULL)
	{
		/* It was just read and validated: a copy that does not read back is a defect. */
		log_error("relid %u: %s", m->relid, err.message);
		abort();
	}
	for (int i = 0; i < a->nloaded; i++)
		if (a->loaded[i].relid == m->relid)
		{
			manifest_free(a->loaded[i].m);
			a->loaded[i].m = c;
			a->loaded[i].floor = floor;
			return;
		}
	a->loaded = xrealloc(a->loaded, (size_t) (a->nloaded + 1) * sizeof(packlog_loaded));
	a->loaded[a->nloaded].relid = m->relid;
	a->loaded[a->nloaded].m = c;
	a->loaded[a->nloaded].floor = floor;
	a->nloaded++;
}

/* Registration (tables_add): the state the log holds of it, if it was loaded from it. */
void
packlog_adopt(archiver *a, arch_table *t)
{
	if (!a->format3)
		return;
	for (int i = 0; i < a->nloaded; i++)
		if (a->loaded[i].relid == t->relid)
		{
			t->logged = a->loaded[i].m;
			t->logged_floor = a->loaded[i].floor;
			a->loaded[i] = a->loaded[--a->nloaded];
			return;
		}
}

static bool
log_knows(const archiver *a, uint32_t relid)
{
	for (int i = 0; i < a->nlog_relids; i++)
		if (a->log_relids[i] == relid)
			return true;
	return false;
}

/* relid's state through view v, remembered with its last event's LSN for its registration. */
static int
load_from_view(archiver *a, archive_view *v, uint32_t relid, manifest **m, bool *exists, bs_error *err)
{
	uint64_t floor = 0;

	if (archive_view_table(v, relid, m, &floor, exists, err) != BS_OK)
		return BS_ERR;
	if (*exists)
		remember_loaded(a, *m, floor);
	return BS_OK;
}

/* A table of the log: through the start-up view, else (a relid the log held at start, not
 * loaded then) through a view opened for it.  A relid the log never held is new. */
int
packlog_load(archiver *a, uint32_t relid, manifest **m, bool *exists, bs_error *err)
{
	archive_view *v = a->view;
	int rc;

	*m = NULL;
	*exists = false;
	if (!log_knows(a, relid))
		return BS_OK;
	if (v == NULL && archive_view_open(a->st, &a->head, &v, err) != BS_OK)
		return BS_ERR;
	rc = load_from_view(a, v, relid, m, exists, err);
	if (v != a->view)
		archive_view_free(v);
	return rc;
}

int
packlog_relids(archiver *a, uint32_t **relids, int *n, bs_error *err)
{
	(void) err;
	*relids = xcalloc((size_t) a->nlog_relids + 1, sizeof(uint32_t));
	if (a->nlog_relids > 0)
		memcpy(*relids, a->log_relids, (size_t) a->nlog_relids * sizeof(uint32_t));
	*n = a->nlog_relids;
	return BS_OK;
}

int
packlog_find_table(archiver *a, const char *qualified_name, manifest **m, bs_error *err)
{
	archive_view *v = a->view;
	uint32_t relid;
	bool exists = false;
	int rc;

	*m = NULL;
	if (v == NULL && archive_view_open(a->st, &a->head, &v, err) != BS_OK)
		return BS_ERR;
	rc = archive_view_find_at(v, qualified_name, UINT64_MAX, m, err);
	if (rc == BS_OK)
	{
		/* Loaded again by relid through the same view: with its last event's LSN. */
		relid = (*m)->relid;
		manifest_free(*m);
		*m = NULL;
		rc = load_from_view(a, v, relid, m, &exists, err);
		if (rc == BS_OK && !exists)
			rc = error_set(err, ERRCODE_DATA_CORRUPTED, "relid %u was found by name in the log, but cannot be "
						   "loaded", relid);
	}
	if (v != a->view)
		archive_view_free(v);
	return rc;
}

/* ---------- catalog ---------- */

/* The catalog at the log's tip: the last one folded forward over packs (the ones after it). */
static int
write_catalog(archiver *a, const pack_index *const *packs, int npacks, bs_error *err)
{
	packcat_dir *dir = NULL;

	if (npacks == 0)
		return BS_OK;
	if (archiver_fence(a, err) != BS_OK ||
		packcat_write(a->cat_dir, packcat_storage_get, a->st, packs, npacks, a->log_sha, packcat_storage_put, a->st,
					  &dir, err) != BS_OK)
		return error_prefix(err, "could not write the catalog at seq %" PRIu64, a->log_seq);
	packcat_dir_free(a->cat_dir);
	a->cat_dir = dir;
	return BS_OK;
}

static void
forget_cat_packs(archiver *a)
{
	for (int i = 0; i < a->ncat_packs; i++)
		pack_index_free(a->cat_packs[i]);
	a->ncat_packs = 0;
}

/* ---------- start-up ---------- */

/*
 * Format 3 at start-up (the lease held, the head read): the log as listed (its tip may lie
 * past the head's), the relids it holds, and a catalog of the packs written after the last
 * one, so that readers and the next start open few footers.
 */
int
packlog_start(archiver *a, bs_error *err)
{
	const pack_index *const *after;
	int nafter = 0;

	if (storage_crypt_active(a->st))
		return error_set(err, ERRCODE_INVALID_PARAMETER, "format-3 archives are not encrypted yet (archive_format "
						 "3 with an encryption key): use archive_format 2");
	if (archive_view_open(a->st, &a->head, &a->view, err) != BS_OK)
		return error_prefix(err, "could not read the archive's log");
	archive_view_relids(a->view, &a->log_relids, &a->nlog_relids);
	a->log_seq = archive_view_tip_seq(a->view);
	a->log_seal = archive_view_tip_seal_lsn(a->view);
	a->log_sha[0] = '\0';
	if (a->log_seq > 0 && archive_view_tip_sha256(a->view, a->log_sha, err) != BS_OK)
		return BS_ERR;
	if (archive_view_dir(a->view) && packcat_load_dir(packcat_storage_get, a->st, archive_view_dir(a->view)->seq,
													  &a->cat_dir, err) != BS_OK)
		return BS_ERR;
	if (a->log_seal > a->flush_lsn)
		a->flush_lsn = a->log_seal;
	if (a->log_seal > a->head.flushed_lsn)
		a->head.flushed_lsn = a->log_seal;
	/* What was written since the last catalog (by an earlier run, whose head may lie behind
	 * the log): a catalog now, from the footers the view opened, and a head that names it. */
	after = archive_view_packs_after(a->view, &nafter);
	if (nafter > 0 && (write_catalog(a, after, nafter, err) != BS_OK || packlog_store_head(a, a->log_seal, err) != BS_OK))
		return BS_ERR;
	return BS_OK;
}

void
packlog_end_startup(archiver *a)
{
	archive_view_free(a->view);
	a->view = NULL;
}

void
packlog_free(archiver *a)
{
	packlog_end_startup(a);
	packcat_dir_free(a->cat_dir);
	a->cat_dir = NULL;
	forget_cat_packs(a);
	free(a->cat_packs);
	a->cat_packs = NULL;
	a->ncat_packs = 0;
	free(a->log_relids);
	a->log_relids = NULL;
	a->nlog_relids = 0;
	for (int i = 0; i < a->nloaded; i++)
		manifest_free(a->loaded[i].m);
	free(a->loaded);
	a->loaded = NULL;
	a->nloaded = 0;
	for (int i = 0; i < a->ntables; i++)
	{
		manifest_free(a->tables[i]->logged);
		a->tables[i]->logged = NULL;
	}
}

/* ---------- a pack ---------- */

static int
compare_inputs(const void *x, const void *y)
{
	const pack_input *a = x,
			   *b = y;

	if (a->relid != b->relid)
		return a->relid < b->relid ? -1 : 1;
	if (a->first_lsn != b->first_lsn)
		return a->first_lsn < b->first_lsn ? -1 : 1;
	return 0;
}

/* Events of every table in LSN order (ties: by table, each table's own order kept). */
typedef struct event_ref
{
	uint64_t lsn;
	int table;
	int index;
} event_ref;

static int
compare_events(const void *x, const void *y)
{
	const event_ref *a = x,
			   *b = y;

	if (a->lsn != b->lsn)
		return a->lsn < b->lsn ? -1 : 1;
	if (a->table != b->table)
		return a->table < b->table ? -1 : 1;
	return a->index < b->index ? -1 : a->index > b->index;
}

static void
free_pack_tables(pack_table *pt, int n)
{
	for (int i = 0; i < n; i++)
	{
		manifest_free(pt[i].after);
		mdelta_list_free(&pt[i].events);
	}
	free(pt);
}

/* Whether the inputs (sorted by relid) hold a segment of relid. */
static bool
in_inputs(const pack_input *in, int n, uint32_t relid)
{
	int lo = 0,
		hi = n;

	while (lo < hi)
	{
		int mid = lo + (hi - lo) / 2;

		if (in[mid].relid < relid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && in[lo].relid == relid;
}

/*
 * Under the lock: the tables whose state goes into the pack (changed in memory, or with a run
 * in it: a run needs the table's first sight before it), copied; their dirty flags cleared
 * (set again if the pack does not reach the log).  Drops whose changes are all in the log
 * (before its tip's seal) are recorded first: a table's drop comes after its last run.
 */
static pack_table *
snapshot_tables(archiver *a, const pack_input *in, int nin, uint64_t drops_to, int *n, bs_error *err)
{
	pack_table *pt = NULL;

	*n = 0;
	uploader_lock(a);
	uploader_finish_drops(a, drops_to);
	pt = xcalloc((size_t) a->ntables + 1, sizeof(pack_table));
	for (int i = 0; i < a->ntables; i++)
	{
		arch_table *t = a->tables[i];

		if (!t->dirty && !in_inputs(in, nin, t->relid))
			continue;
		pt[*n].relid = t->relid;
		pt[*n].after = copy_without_segments(t->man, err);
		if (pt[*n].after == NULL)
		{
			pthread_mutex_unlock(&a->lock);
			free_pack_tables(pt, *n);
			*n = 0;
			return NULL;
		}
		t->dirty = false;
		pt[*n].base_unstored = t->base_unstored;
		t->base_unstored = false;
		(*n)++;
	}
	pthread_mutex_unlock(&a->lock);
	return pt;
}

static void
redirty(archiver *a, const pack_table *pt, int n)
{
	uploader_lock(a);
	for (int i = 0; i < n; i++)
	{
		arch_table *t = tables_find(a, pt[i].relid);

		if (t)
		{
			t->dirty = true;
			t->base_unstored = t->base_unstored || pt[i].base_unstored;
		}
	}
	pthread_mutex_unlock(&a->lock);
}

/* The events of each snapshot against the state the log holds (the uploader's alone). */
static int
table_events(archiver *a, pack_table *pt, int n, bs_error *err)
{
	for (int i = 0; i < n; i++)
	{
		arch_table *t;
		const manifest *before;
		uint64_t floor;

		uploader_lock(a);
		t = tables_find(a, pt[i].relid);
		before = t ? t->logged : NULL;
		floor = t ? t->logged_floor : 0;
		pthread_mutex_unlock(&a->lock);
		if (mdelta_events(before, pt[i].after, floor, &pt[i].events, err) != BS_OK)
			return error_prefix(err, "table %s.%s", pt[i].after->schema, pt[i].after->name);
		pt[i].floor = floor;
		for (int k = 0; k < pt[i].events.n; k++)
			if (pt[i].events.events[k].lsn > pt[i].floor)
				pt[i].floor = pt[i].events.events[k].lsn;
		pt[i].has_events = pt[i].events.n > 0;
	}
	return BS_OK;
}

static int
add_events(pack_writer *w, const pack_table *pt, int n, bs_error *err)
{
	event_ref *refs = NULL;
	int nrefs = 0;
	int rc = BS_OK;

	for (int i = 0; i < n; i++)
		nrefs += pt[i].events.n;
	refs = xcalloc((size_t) nrefs + 1, sizeof(event_ref));
	nrefs = 0;
	for (int i = 0; i < n; i++)
		for (int k = 0; k < pt[i].events.n; k++)
		{
			refs[nrefs].lsn = pt[i].events.events[k].lsn;
			refs[nrefs].table = i;
			refs[nrefs].index = k;
			nrefs++;
		}
	qsort(refs, (size_t) nrefs, sizeof(event_ref), compare_events);
	for (int i = 0; i < nrefs && rc == BS_OK; i++)
	{
		const char *json = pt[refs[i].table].events.events[refs[i].index].json;

		rc = pack_writer_add_event(w, json, strlen(json), err);
	}
	free(refs);
	return rc;
}

/* The runs: each table's spooled segments (in sorted by relid, then LSN), without their magic. */
static int
add_runs(archiver *a, pack_writer *w, const pack_input *in, int nin, const seal_job *jobs, strbuf *out, bs_error *err)
{
	strbuf raw = STRBUF_INIT;
	int rc = BS_OK;

	for (int i = 0; i < nin && rc == BS_OK; i++)
	{
		const seal_part *mem = uploader_job_part(jobs, in[i].spool_key);
		const char *data;
		size_t len;

		if (i == 0 || in[i - 1].relid != in[i].relid)
			rc = pack_writer_begin_run(w, in[i].relid, err);
		if (rc != BS_OK)
			break;
		if (mem && !mem->spilled)
		{
			data = mem->data.data;
			len = mem->data.len;
		}
		else
		{
			if (storage_get_all(a->spool, in[i].spool_key, &raw, err) != BS_OK)
			{
				rc = BS_ERR;
				break;
			}
			data = raw.data;
			len = raw.len;
		}
		if (len < SEGMENT_MAGIC_LEN || memcmp(data, SEGMENT_MAGIC, SEGMENT_MAGIC_LEN) != 0)
		{
			rc = error_set(err, ERRCODE_DATA_CORRUPTED, "spooled segment \"%s\" has no segment header",
						   in[i].spool_key);
			break;
		}
		rc = pack_writer_write(w, data + SEGMENT_MAGIC_LEN, len - SEGMENT_MAGIC_LEN, out, err);
		if (rc == BS_OK && (i + 1 == nin || in[i + 1].relid != in[i].relid))
			rc = pack_writer_end_run(w, NULL, err);
		if (rc != BS_OK)
			error_prefix(err, "spooled segment \"%s\"", in[i].spool_key);
	}
	strbuf_free(&raw);
	return rc;
}

/* After the put: each run a segment of its table, each table's logged state moved on. */
static void
apply_pack(archiver *a, const pack_index *idx, pack_table *pt, int npt, uint64_t stored)
{
	uploader_lock(a);
	for (int i = 0; i < idx->nruns; i++)
	{
		const pack_run *r = &idx->runs[i];
		arch_table *t = tables_find(a, r->relid);
		manifest_segment seg;

		if (t == NULL)
			continue;
		fold_run_segment(idx, r, &seg);
		manifest_add_segment(t->man, &seg);
		if (idx->seal_lsn > t->man->archived_to)
			t->man->archived_to = idx->seal_lsn;
		t->change_bytes += r->raw_len;
		a->metrics.segments_uploaded++;
	}
	for (int i = 0; i < npt; i++)
	{
		arch_table *t = tables_find(a, pt[i].relid);

		if (t == NULL)
			continue;
		manifest_free(t->logged);
		t->logged = pt[i].after;
		t->logged_floor = pt[i].floor;
		pt[i].after = NULL;
	}
	a->metrics.bytes_uploaded += stored;
	a->metrics.manifests_stored++;	/* the pack is the seal's index */
	pthread_mutex_unlock(&a->lock);
}

/*
 * One pack at the log's next sequence number: the spooled segments in (seal LSN seal), the
 * events of every table changed since the last pack.  Put once; then the runs are listed in
 * memory and the log's tip moves.  On failure nothing moved (the tables are dirty again); a
 * retry builds the pack again under the same key.
 */
static int
put_pack(archiver *a, pack_input *in, int nin, const seal_job *jobs, uint64_t seal, bs_error *err)
{
	pack_table *pt = NULL;
	int npt = 0;
	pack_writer *w = NULL;
	strbuf out = STRBUF_INIT;
	uint64_t stored = 0;
	uint64_t seq = a->log_seq + 1;
	char *key = archive_log_key(seq);
	char token[32];
	pack_meta meta;
	pack_index *idx = NULL;
	char sha[65];
	int rc = BS_ERR;

	if (seal < a->log_seal)
		seal = a->log_seal;
	pt = snapshot_tables(a, in, nin, a->log_seal, &npt, err);
	if (pt == NULL)
		goto out;
	if (nin == 0 && npt == 0)
	{
		rc = BS_OK;
		goto out;
	}
	if (table_events(a, pt, npt, err) != BS_OK)
		goto fail;
	if (nin == 0)
	{
		bool any = false;

		for (int i = 0; i < npt; i++)
			any = any || pt[i].has_events;
		if (!any)
		{
			rc = BS_OK;			/* changed in memory only where packs do not look (segments) */
			goto out;
		}
	}
	if (pack_writer_open(key, 0, a->codec, a->segment_level, NULL, &out, &w, err) != BS_OK)
		goto fail;
	if (add_runs(a, w, in, nin, jobs, &out, err) != BS_OK || add_events(w, pt, npt, err) != BS_OK)
		goto fail;
	memset(&meta, 0, sizeof(meta));
	meta.seq_first = meta.seq_last = seq;
	meta.seal_lsn = seal;
	meta.time = clock_unix_us();
	snprintf(token, sizeof(token), "%" PRIu64, a->head.lease_token);
	meta.lease_token = token;
	meta.prev = a->log_sha[0] ? a->log_sha : NULL;
	if (pack_writer_finish(w, &meta, &out, &stored, err) != BS_OK)
		goto fail;
	/* Read back as a reader will: a pack the log cannot fold is never put. */
	if (pack_open_buffer(key, out.data, out.len, NULL, &idx, err) != BS_OK)
		goto fail;
	if (archiver_fence(a, err) != BS_OK || storage_put(a->st, key, out.data, out.len, err) != BS_OK)
		goto fail;
	if (nin > 0 && getenv(TEST_EXIT_AFTER_PACK) != NULL)
	{
		log_warning("%s set: exiting after the put of \"%s\"", TEST_EXIT_AFTER_PACK, key);
		fflush(NULL);
		_exit(1);
	}
	digest_sha256_hex(out.data, out.len, sha);
	apply_pack(a, idx, pt, npt, out.len);
	uploader_lock(a);
	a->log_seq = seq;
	memcpy(a->log_sha, sha, sizeof(sha));
	a->log_seal = seal;
	pthread_mutex_unlock(&a->lock);
	a->cat_packs = xrealloc(a->cat_packs, (size_t) (a->ncat_packs + 1) * sizeof(pack_index *));
	a->cat_packs[a->ncat_packs++] = idx;
	idx = NULL;
	rc = BS_OK;
	if (a->ncat_packs >= PACKLOG_CATALOG_PACKS)
	{
		/* The pack is in the log either way: a catalog that failed is tried after the next. */
		bs_error cerr;

		error_clear(&cerr);
		if (write_catalog(a, (const pack_index *const *) a->cat_packs, a->ncat_packs, &cerr) != BS_OK)
			log_warning("%s", cerr.message);
		else
		{
			forget_cat_packs(a);
			if (packlog_store_head(a, a->head_written_lsn, &cerr) != BS_OK)
				log_warning("%s", cerr.message);
		}
	}
	goto out;
fail:
	redirty(a, pt, npt);
out:
	pack_index_free(idx);
	pack_writer_free(w);
	strbuf_free(&out);
	free_pack_tables(pt, npt);
	free(key);
	return rc;
}

/* Spool keys "<epoch>/<relid>-<first>-<end>.seg": the table and its first commit. */
static int
parse_spool_key(const char *key, pack_input *in, bs_error *err)
{
	const char *base = strrchr(key, '/');
	unsigned int relid;
	char first_hex[17],
		end_hex[17];

	base = base ? base + 1 : key;
	if (sscanf(base, "%u-%16[0-9A-F]-%16[0-9A-F].seg", &relid, first_hex, end_hex) != 3 ||
		lsn_parse_key(first_hex, &in->first_lsn) != BS_OK)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "unexpected file in spool: \"%s\"", key);
	in->relid = relid;
	in->spool_key = key;
	return BS_OK;
}

int
packlog_put_batch(archiver *a, char **seg_keys, int nkeys, const seal_job *jobs, uint64_t seal, bs_error *err)
{
	pack_input *in = xcalloc((size_t) nkeys + 1, sizeof(pack_input));
	int rc = BS_OK;

	for (int i = 0; i < nkeys && rc == BS_OK; i++)
		rc = parse_spool_key(seg_keys[i], &in[i], err);
	/* By table, then LSN: the order of the runs, and in_inputs' search. */
	if (rc == BS_OK && nkeys > 0)
		qsort(in, (size_t) nkeys, sizeof(pack_input), compare_inputs);
	if (rc == BS_OK)
		rc = put_pack(a, in, nkeys, jobs, seal, err);
	free(in);
	return rc;
}

/* Tables changed in memory with nothing to seal: an event-only pack at seal (everything
 * committed before it is in the log). */
int
packlog_put_events(archiver *a, uint64_t seal, bs_error *err)
{
	return put_pack(a, NULL, 0, NULL, seal, err);
}

/* ---------- head ---------- */

bool
packlog_head_due(archiver *a)
{
	return clock_mono_ms() - a->head_written_ms >= config_get_duration_ms(a->cfg, CFG_HEAD_INTERVAL);
}

/* head.json (format 3) at lsn: the log's tip and catalog; a hint that bounds readers' listing. */
int
packlog_store_head(archiver *a, uint64_t lsn, bs_error *err)
{
	char *json;
	int rc;

	uploader_lock(a);
	a->head.format = ARCHIVE_HEAD_FORMAT_PACKS;
	if (lsn > a->head.flushed_lsn)
		a->head.flushed_lsn = lsn;
	a->head.time = clock_unix_us();
	a->head.tip_seq = a->log_seq;
	memcpy(a->head.tip_sha256, a->log_sha, sizeof(a->head.tip_sha256));
	a->head.catalog_seq = a->cat_dir ? a->cat_dir->seq : 0;
	json = archive_head_serialize(&a->head, err);
	pthread_mutex_unlock(&a->lock);
	if (json == NULL)
		return BS_ERR;
	rc = archiver_fence(a, err) == BS_OK ? archive_head_store_json(a->st, json, err) : BS_ERR;
	free(json);
	if (rc == BS_OK)
	{
		uploader_lock(a);
		if (lsn > a->head_written_lsn)
			a->head_written_lsn = lsn;
		a->head_written_ms = clock_mono_ms();
		pthread_mutex_unlock(&a->lock);
	}
	return rc;
}
