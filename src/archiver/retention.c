/* retention.c — the archiver's retention pass (--expire-interval), run by the uploader thread. */
#include "autoconf.h"
#include "clock.h"
#include "codec.h"
#include "control.h"
#include "expire.h"
#include "log.h"
#include "lsn.h"
#include "manifest.h"
#include "storage.h"
#include "strbuf.h"
#include "config.h"
#include "error.h"
#include "archiver_int.h"

#include <pthread.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/*
 * The archiver's own expiry runs on the uploader thread, the one that stores manifests and
 * the head, under the archive's lease: its manifest changes go through the same path as every
 * other (in memory under the lock, stored by uploader_store_dirty_manifests), so they never race with
 * the archiver's own writes.  Objects are deleted once the manifests that stop listing them
 * and the head recording their generations are stored.
 */

/* Lock held: is a pass due? */
bool
retention_due(archiver *a)
{
	int64_t iv = config_get_duration_ms(a->cfg, CFG_EXPIRE_INTERVAL);

	if (iv <= 0 || (config_get(a->cfg, CFG_KEEP_WINDOW) == NULL && config_get(a->cfg, CFG_KEEP_BASES) == NULL))
		return false;
	if (a->format3)
	{
		/* Expiry of packs is not written yet (doc/design/format2.md 3.9): said once, never run. */
		if (a->expire_next_ms == 0)
			log_warning("retention (expire_interval) does not run on a format-3 archive yet: nothing expires");
		a->expire_next_ms = INT64_MAX;
		return false;
	}
	if (a->expire_next_ms == 0)
		a->expire_next_ms = clock_mono_ms() + iv;
	return clock_mono_ms() >= a->expire_next_ms;
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
int
retention_pass(archiver *a, bs_error *err)
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
	policy.keep_window_us = config_get(a->cfg, CFG_KEEP_WINDOW) ? config_get_duration_ms(a->cfg, CFG_KEEP_WINDOW) * 1000 : 0;
	policy.keep_bases = config_get(a->cfg, CFG_KEEP_BASES) ? config_get_int(a->cfg, CFG_KEEP_BASES) : 0;
	age_s = config_get_duration_ms(a->cfg, CFG_ORPHAN_AGE) / 1000;
	/* A base copy in progress uploads chunks no manifest lists yet: no orphans meanwhile. */
	orphans = a->bjob == NULL;
	for (from = 0; next_table_dir(&listing, &from, &to, &relid); from = to)
	{
		arch_table *t = tables_find(a, relid);
		expire_plan plan;
		bs_error lerr;

		error_clear(&lerr);
		/* Tables this run does not archive (dropped ones) are expired too: load them. */
		if (t == NULL && dir_has_manifest(&listing, from, to) &&
			tables_load(a, a->st, relid, NULL, NULL, false, &t, &lerr) != BS_OK)
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
	rc = uploader_store_dirty_manifests(a, false, err);
	if (rc == BS_OK)
		rc = uploader_store_head_again(a, err);
	for (from = 0; rc == BS_OK && orphans && next_table_dir(&listing, &from, &to, &relid); from = to)
	{
		bool no_manifest;

		uploader_lock(a);
		no_manifest = copies[from] == NULL && tables_find(a, relid) == NULL &&
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
