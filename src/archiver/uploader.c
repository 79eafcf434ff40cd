/* uploader.c — the archiver's uploader thread: seal, queue, spool, upload, manifests and head. */
#include "autoconf.h"
#include "clock.h"
#include "codec.h"
#include "control.h"
#include "log.h"
#include "lsn.h"
#include "manifest.h"
#include "object.h"
#include "pgoutput.h"
#include "replmsg.h"
#include "segment.h"
#include "spill.h"
#include "storage.h"
#include "storage_local.h"
#include "strbuf.h"
#include "config.h"
#include "error.h"
#include "archiver_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static bool spool_epoch_of(const char *key, uint64_t *seal_lsn);

/* Start-up (single-threaded): store a manifest now, with its next generation. */
int
uploader_store_manifest_now(archiver *a, manifest *m, bs_error *err)
{
	if (a->format3)
	{
		arch_table *t = tables_find(a, m->relid);

		/* Events of the next pack (start-up writes one before the stream starts). */
		if (t == NULL || t->man != m)
			return error_set(err, ERRCODE_INTERNAL, "relid %u: a manifest stored now must be registered in format 3",
							 m->relid);
		t->dirty = true;
		return BS_OK;
	}
	m->generation = tables_next_generation(a, m);
	if (archiver_fence(a, err) != BS_OK || manifest_store(a->st, m, err) != BS_OK)
		return BS_ERR;
	archive_head_note_table(&a->head, m->relid, m->generation, m->schema, m->name);
	return BS_OK;
}

/*
 * A head written before format 2 records no manifest: record every manifest as it is now
 * (generation 0 for format 1), so that the first head written from here on covers tables
 * this run never touches too (dropped ones, for instance).
 */
int
uploader_record_manifests(archiver *a, bs_error *err)
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

/* ---------- spool and upload ---------- */

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
void
uploader_lock(archiver *a)
{
	__atomic_store_n(&a->uploader_waiting, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&a->lock);
	__atomic_store_n(&a->uploader_waiting, 0, __ATOMIC_RELAXED);
}

/* The part of a job just spooled that has this spool key (NULL: only in the spool). */
const seal_part *
uploader_job_part(const seal_job *jobs, const char *spool_key)
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
	rc = tables_load(a, a->st, relid, NULL, NULL, false, &t, err);
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
	/* Listed in memory; uploader_store_head stores the manifest once per batch, before the head. */
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
	rc = tables_load(a, a->st, sm->relid, sm->schema, sm->name, false, &t, err);
	for (int i = 0; rc == BS_OK && i < sm->nlayouts; i++)
	{
		if (manifest_layout_by_id(t->man, sm->layouts[i].id) == NULL)
		{
			tables_insert_layout(t->man, sm->layouts[i].id, sm->layouts[i].from_lsn, sm->layouts[i].replident,
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
int
uploader_store_dirty_manifests(archiver *a, bool fenced, bs_error *err)
{
	int rc = BS_OK;

	if (a->format3)
	{
		uint64_t seal;

		/* An event-only pack: everything before the confirmed position is in the log. */
		uploader_lock(a);
		seal = a->flush_lsn > a->log_seal ? a->flush_lsn : a->log_seal;
		pthread_mutex_unlock(&a->lock);
		return packlog_put_events(a, seal, err);
	}

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
				generation = a->tables[i]->man->generation = tables_next_generation(a, a->tables[i]->man);
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
		if (json != NULL && !fenced && archiver_fence(a, err) != BS_OK)
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
bool
uploader_finish_drops(archiver *a, uint64_t lsn)
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
int
uploader_store_head(archiver *a, uint64_t lsn, bs_error *err)
{
	char *json;

	if (a->format3)
	{
		/* Everything before lsn is in the log: drops recorded, then changes in memory. */
		uploader_lock(a);
		uploader_finish_drops(a, lsn);
		pthread_mutex_unlock(&a->lock);
		if (packlog_put_events(a, lsn, err) != BS_OK)
			return BS_ERR;
		return lsn > a->head_written_lsn ? packlog_store_head(a, lsn, err) : BS_OK;
	}
	uploader_lock(a);
	/* Callers guarantee that everything committed before lsn is listed in the manifests. */
	if (uploader_finish_drops(a, lsn) && lsn <= a->head_written_lsn)
	{
		pthread_mutex_unlock(&a->lock);
		return uploader_store_dirty_manifests(a, false, err);
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
	if (archiver_fence(a, err) != BS_OK || uploader_store_dirty_manifests(a, true, err) != BS_OK)
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

/* Write head.json again at the position already written: it records the generations just
 * stored (uploader). */
int
uploader_store_head_again(archiver *a, bs_error *err)
{
	char *json;
	int rc;

	if (a->format3)
		return a->head_written_lsn == 0 ? BS_OK : packlog_store_head(a, a->head_written_lsn, err);
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
	rc = archiver_fence(a, err) == BS_OK ? archive_head_store_json(a->st, json, err) : BS_ERR;
	free(json);
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
int
uploader_drain_spool(archiver *a, bool verify, const seal_job *jobs, bs_error *err)
{
	storage_keys keys = {0};
	int rc = BS_OK;
	int first = 0;
	char **batch_segs = NULL;	/* format 3: the batch's segments (keys of keys) */
	int nbatch_segs = 0;

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

		/* Segments of another writer's keys may not be overwritten either (format 3: the
		 * pack's put is fenced right before it). */
		rc = a->format3 ? BS_OK : archiver_fence(a, err);

		for (i = first; i < keys.count && rc == BS_OK; i++)
		{
			const char *k = keys.keys[i];
			uint64_t seal_lsn;

			if (!spool_epoch_of(k, &seal_lsn) || strcmp(k + 17, SPOOL_COMPLETE) != 0)
				continue;
			/* Layouts first, then segments.  Format 3: an epoch at or below the log's tip is in
			 * it already (a stop between the pack's put and the spool's cleanup): only forgotten. */
			if (a->format3 && seal_lsn <= a->log_seal)
			{
				char l1[LSN_BUFLEN], l2[LSN_BUFLEN];

				log_info("spool epoch %s is in the archive's log already (its tip is sealed at %s): forgotten",
						 lsn_format(seal_lsn, l1), lsn_format(a->log_seal, l2));
			}
			for (int pass = 0; pass < 2 && rc == BS_OK && !(a->format3 && seal_lsn <= a->log_seal); pass++)
			{
				for (int j = 0; j < keys.count && rc == BS_OK; j++)
				{
					const char *f = keys.keys[j];

					if (strncmp(f, k, 17) != 0 || strcmp(f + 17, SPOOL_COMPLETE) == 0)
						continue;
					if (pass == 0 && strstr(f, ".layouts.json"))
						rc = merge_spooled_layouts(a, f, jobs, err);
					else if (pass == 1 && strstr(f, ".seg"))
						{
						if (!a->format3)
							rc = upload_segment(a, f, uploader_job_part(jobs, f), seal_lsn, verify, &batch_bytes,
												err);
						else
						{
							storage_stat stat;
							bool exists = false;

							/* Format 3: the batch's segments go into one pack, below. */
							rc = storage_head(a->spool, f, &exists, &stat, err);
							batch_bytes += exists ? stat.size : 0;
							batch_segs = xrealloc(batch_segs, (size_t) (nbatch_segs + 1) * sizeof(char *));
							batch_segs[nbatch_segs++] = keys.keys[j];
						}
					}
				}
			}
			if (rc != BS_OK)
				break;
			batch_seal = seal_lsn;
			batch_epochs++;
			/* A format-3 batch is one pack, built in memory. */
			if (batch_epochs >= 256 || batch_bytes >= (a->format3 ? 64 : 256) * 1024 * 1024)
			{
				i++;
				break;
			}
		}
		if (batch_epochs == 0)
			break;
		/* Manifests (stored by uploader_store_head before the head itself), head, then forget.
		 * Format 3: the pack is the data and the index; the head follows every head_interval. */
		if (rc == BS_OK && a->format3)
		{
			rc = packlog_put_batch(a, batch_segs, nbatch_segs, jobs, batch_seal, err);
			if (rc == BS_OK && packlog_head_due(a))
				rc = packlog_store_head(a, batch_seal, err);
		}
		else if (rc == BS_OK)
			rc = uploader_store_head(a, batch_seal, err);
		nbatch_segs = 0;
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
	free(batch_segs);
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

/* Remove epochs that never completed: their transactions were never confirmed. */
int
uploader_clean_spool(archiver *a, uint64_t *max_seal, bs_error *err)
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
void
uploader_idle_progress(archiver *a, uint64_t lsn, bool urgent)
{
	if (lsn > a->idle_lsn)
		a->idle_lsn = lsn;
	if (a->idle_lsn <= a->head_wanted || a->idle_lsn <= a->flush_lsn)
		return;
	if (!urgent && a->pending == NULL &&
		clock_mono_ms() - a->last_head_request_ms < config_get_duration_ms(a->cfg, CFG_STATUS_INTERVAL) / 2)
		return;
	a->head_wanted = a->idle_lsn;
	a->last_head_request_ms = clock_mono_ms();
	pthread_cond_signal(&a->wake);
}

void
uploader_job_free(seal_job *job)
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

		uploader_job_free(jobs);
		jobs = next;
	}
}

/*
 * Seal every open segment into one epoch at the last commit and hand it to the uploader
 * (main thread, lock held).  Nothing is confirmed until the uploader has stored it.
 */
int
uploader_seal_epoch(archiver *a, bool verify, bs_error *err)
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
			uploader_idle_progress(a, a->last_commit_end, verify);
		return BS_OK;
	}
	if (segments_check_spool_room(a, err) != BS_OK)
		return BS_ERR;
	/* Spilled segments go to the uploader as files: write out their tails first, so that
	 * nothing below can fail once segments start moving into the job. */
	for (int i = 0; i < a->ntables; i++)
		if (a->tables[i]->spill && segments_spill_flush(a, a->tables[i], err) != BS_OK)
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
		{
			/* Its layouts (what merge_spooled_layouts reads back), not its segments. */
			manifest m = *t->man;

			m.segments = NULL;
			m.nsegments = 0;
			part->layouts = manifest_to_json(&m);
		}
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

/* Wake the main loop (on_notify): positions moved, or a checkpoint's query is done. */
void
uploader_notify_main(archiver *a)
{
	char c = 1;

	/* A full pipe already carries a wake-up. */
	if (write(a->notify_pipe[1], &c, 1) < 0 && errno != EAGAIN)
		log_warning("could not wake the main loop: %s", strerror(errno));
}

/* The uploader stops for good on err (under the lock): the main loop reads it and exits. */
static void
uploader_give_up(archiver *a, const bs_error *err)
{
	a->uploader_failed = true;
	a->uploader_err = *err;
	uploader_notify_main(a);
}

/* Whether a failure says that another writer holds the archive's lease: stop writing at once. */
static bool
lease_lost(int rc, const bs_error *err)
{
	return rc != BS_OK && strcmp(err->code, ERRCODE_LOCK_NOT_AVAILABLE) == 0;
}

/* The uploader thread: spool, upload, manifests, head; retries with backoff. */
void *
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
		if (may_upload && !a->uploader_stop && retention_due(a))
		{
			a->expire_next_ms = clock_mono_ms() + config_get_duration_ms(a->cfg, CFG_EXPIRE_INTERVAL);
			pthread_mutex_unlock(&a->lock);
			error_clear(&err);
			rc = retention_pass(a, &err);
			uploader_lock(a);
			if (lease_lost(rc, &err))
			{
				uploader_give_up(a, &err);
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
			{
				/* Format 3: a stop leaves the head at the log's end (a hint for readers). */
				if (a->format3 && a->flush_lsn > a->head_written_lsn && !a->uploader_failed)
				{
					uint64_t lsn = a->flush_lsn;
					bs_error herr;

					pthread_mutex_unlock(&a->lock);
					error_clear(&herr);
					if (packlog_store_head(a, lsn, &herr) != BS_OK)
						log_warning("%s", herr.message);
					uploader_lock(a);
				}
				break;
			}
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
			uploader_give_up(a, &err);
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
			rc = uploader_drain_spool(a, verify, jobs, &err);
		free_jobs(jobs);
		if (rc == BS_OK)
			rc = uploader_store_dirty_manifests(a, false, &err);
		/* Idle progress (nothing was pending when it was seen) is confirmed only once the
		 * head says so: the confirmed position never passes head.json. */
		uploader_lock(a);
		head_wanted = a->spool_pending ? 0 : a->head_wanted;
		pthread_mutex_unlock(&a->lock);
		if (rc == BS_OK && head_wanted > 0)
			rc = uploader_store_head(a, head_wanted, &err);

		uploader_lock(a);
		if (rc == BS_OK && head_wanted > a->flush_lsn)
			a->flush_lsn = head_wanted;
		if (lease_lost(rc, &err))
		{
			uploader_give_up(a, &err);
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
		uploader_notify_main(a);
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}
