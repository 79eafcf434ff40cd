/* cmd_expire.c — `backstop expire`: retention of base copies and segments under the archive's lease. */
#include "cmd_expire.h"
#include "clock.h"
#include "cli.h"
#include "expire.h"
#include "isotime.h"
#include "jsonout.h"
#include "lease.h"
#include "log.h"
#include "lsn.h"
#include "manifest.h"
#include "manifest_head.h"
#include "manifest_keys.h"
#include "manifest_store.h"
#include "redact.h"
#include "storage.h"
#include "storage_config.h"
#include "strbuf.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Test hook (doc/HACKING.md): exit right after the manifests and the head are stored, before
 * any object is deleted, as a crash there would. */
#define TEST_EXIT_AFTER_STORE "BACKSTOP_TEST_EXPIRE_EXIT_AFTER_STORE"

/* One table directory of the archive and what expiry does to it. */
typedef struct expire_table
{
	uint32_t relid;
	manifest *m;				/* NULL: no manifest */
	bool damaged;				/* left alone (a problem was reported) */
	bool selected;				/* matches --table */
	expire_plan plan;
	storage_keys orphans;
	int first_key;				/* its keys in the listing: [first_key, first_key + nkeys) */
	int nkeys;
} expire_table;

typedef struct expire_run
{
	storage *st;
	bs_config *cfg;
	bool dry_run;
	bool as_json;
	expire_policy policy;
	int64_t orphan_age_s;
	const char *patterns;
	archive_head head;
	bool head_exists;
	storage_keys listing;
	expire_table *tables;
	int ntables;
	int problems;
	json_t *jproblems;
	lease_holding hold;
} expire_run;

static void
problem(expire_run *r, const char *fmt, const char *a, const char *b)
{
	strbuf sb = STRBUF_INIT;
	char *shown;

	strbuf_printf(&sb, fmt, a, b);
	r->problems++;
	if (r->as_json)
		json_array_append_new(r->jproblems, json_string(sb.data));
	shown = xstrdup_printable(sb.data);
	fprintf(stderr, "backstop expire: ERROR: %s\n", shown);
	free(shown);
	strbuf_free(&sb);
}

/* The listing of tables/, grouped by relid directory (a listing is sorted, and "tables/N/"
 * sorts before "tables/NM/", so each directory's keys are contiguous). */
static void
group_listing(expire_run *r)
{
	for (int i = 0; i < r->listing.count; i++)
	{
		uint32_t relid;
		const char *rest;

		if (manifest_key_relid(r->listing.keys[i], &relid, &rest) != BS_OK)
			continue;
		if (r->ntables == 0 || r->tables[r->ntables - 1].relid != relid)
		{
			r->tables = xrealloc(r->tables, (size_t) (r->ntables + 1) * sizeof(expire_table));
			memset(&r->tables[r->ntables], 0, sizeof(expire_table));
			r->tables[r->ntables].relid = relid;
			r->tables[r->ntables].first_key = i;
			r->tables[r->ntables].plan.first_kept = -1;
			r->ntables++;
		}
		r->tables[r->ntables - 1].nkeys = i - r->tables[r->ntables - 1].first_key + 1;
	}
}

/* Load each manifest, check it against head.json, and decide what goes. */
static int
plan_tables(expire_run *r, int64_t now_us, bs_error *err)
{
	for (int i = 0; i < r->ntables; i++)
	{
		expire_table *t = &r->tables[i];
		const archive_head_table *rec = r->head_exists ? archive_head_find_table(&r->head, t->relid) : NULL;
		bool exists = false;
		char rel[16];
		bs_error lerr;

		snprintf(rel, sizeof(rel), "%" PRIu32, t->relid);
		error_clear(&lerr);
		if (manifest_load(r->st, t->relid, &t->m, &exists, &lerr) != BS_OK)
		{
			if (strcmp(lerr.code, ERRCODE_DATA_CORRUPTED) != 0)
			{
				*err = lerr;
				return BS_ERR;
			}
			t->damaged = true;
			problem(r, "table with relid %s left alone: %s", rel, lerr.message);
			continue;
		}
		if (!exists)
		{
			/* head.json records a manifest that is gone: damage, never touched here. */
			if (rec)
			{
				t->damaged = true;
				problem(r, "tables/%s/manifest.json is missing but head.json records it (%s): left alone", rel,
						rec->name);
				continue;
			}
			/* An abandoned first copy: no manifest was ever stored.  Only with no --table. */
			t->selected = r->patterns == NULL;
			if (t->selected && expire_orphans(r->st, NULL, (const char *const *) r->listing.keys + t->first_key,
											  t->nkeys, r->orphan_age_s, now_us / 1000000, &t->orphans, err) != BS_OK)
				return BS_ERR;
			continue;
		}
		if (rec && t->m->generation < rec->generation)
		{
			t->damaged = true;
			problem(r, "the manifest of table with relid %s is older than head.json records (rolled back?): "
					"left alone; %s", rel, "run backstop verify");
			continue;
		}
		t->selected = expire_table_matches(r->patterns, t->m->schema, t->m->name);
		if (!t->selected)
			continue;
		expire_select(t->m, &r->policy, now_us, &t->plan);
		if (expire_orphans(r->st, t->m, (const char *const *) r->listing.keys + t->first_key, t->nkeys,
						   r->orphan_age_s, now_us / 1000000, &t->orphans, err) != BS_OK)
			return BS_ERR;
	}
	return BS_OK;
}

/* The end of a table's recovery window, as recovery computes it. */
static uint64_t
window_hi(const expire_run *r, const manifest *m)
{
	uint64_t hi = m->archived_to;

	if (strcmp(m->status, "dropped") == 0)
		return manifest_dropped_after(m);
	if (r->head_exists && strcmp(m->status, "active") == 0 && r->head.flushed_lsn > hi)
		hi = r->head.flushed_lsn;
	if (m->nbases > 0 && m->bases[m->nbases - 1].lsn > hi)
		hi = m->bases[m->nbases - 1].lsn;
	return hi;
}

static void
report(expire_run *r, json_t *jtables)
{
	for (int i = 0; i < r->ntables; i++)
	{
		expire_table *t = &r->tables[i];
		const expire_plan *p = &t->plan;
		char a[LSN_BUFLEN],
			b[LSN_BUFLEN],
			tm[ISOTIME_BUFLEN];
		char *name;

		if (!t->selected || t->damaged)
			continue;
		if (t->m == NULL && t->orphans.count == 0)
			continue;
		if (r->as_json)
		{
			json_t *o = json_object();
			json_t *keys = json_array();
			json_t *orph = json_array();

			json_object_set_new(o, "relid", json_integer(t->relid));
			json_object_set_new(o, "table", t->m ? json_sprintf("%s.%s", t->m->schema, t->m->name) : json_null());
			json_object_set_new(o, "status", t->m ? json_string(t->m->status) : json_null());
			json_object_set_new(o, "bases_removed", json_integer(p->nbases));
			json_object_set_new(o, "segments_removed", json_integer(p->nsegments));
			json_object_set_new(o, "bytes_removed", json_integer((json_int_t) p->bytes));
			for (int k = 0; k < p->keys.count; k++)
				json_array_append_new(keys, json_string(p->keys.keys[k]));
			for (int k = 0; k < t->orphans.count; k++)
				json_array_append_new(orph, json_string(t->orphans.keys[k]));
			json_object_set_new(o, "objects", keys);
			json_object_set_new(o, "orphans", orph);
			if (t->m && p->first_kept >= 0)
			{
				json_t *w = json_object();

				json_object_set_new(w, "from_lsn", jsonout_lsn(p->keep_from));
				json_object_set_new(w, "from_time", jsonout_time(p->keep_from_time));
				json_object_set_new(w, "to_lsn", jsonout_lsn(window_hi(r, t->m)));
				json_object_set_new(o, "window", w);
			}
			else
				json_object_set_new(o, "window", json_null());
			json_array_append_new(jtables, o);
			continue;
		}
		if (t->m == NULL)
			printf("tables/%" PRIu32 "/ (no manifest): %s %d orphaned object(s)\n", t->relid,
				   r->dry_run ? "would remove" : "removes", t->orphans.count);
		else
		{
			name = xstrdup_printable(t->m->name);
			{
				char *schema = xstrdup_printable(t->m->schema);

				printf("%s.%s (relid %" PRIu32 ", %s): ", schema, name, t->relid, t->m->status);
				free(schema);
			}
			free(name);
			if (p->first_kept < 0)
				printf("no base copy: nothing to expire\n");
			else
			{
				if (p->changes || t->orphans.count)
					printf("%s %d base cop%s, %d segment(s), %d orphan(s), %" PRIu64 " bytes; ",
						   r->dry_run ? "would remove" : "removes", p->nbases, p->nbases == 1 ? "y" : "ies",
						   p->nsegments, t->orphans.count, p->bytes);
				else
					printf("nothing to remove; ");
				printf("window%s: %s (base copy taken %s) to %s\n", p->changes ? " after expiry" : "",
					   lsn_format(p->keep_from, a), isotime_format(p->keep_from_time, tm),
					   lsn_format(window_hi(r, t->m), b));
			}
		}
		if (r->dry_run)
		{
			for (int k = 0; k < p->keys.count; k++)
				printf("  would delete %s\n", p->keys.keys[k]);
			for (int k = 0; k < t->orphans.count; k++)
				printf("  would delete %s (orphan)\n", t->orphans.keys[k]);
		}
	}
}

/* Is the lease still ours?  Before every manifest and head write. */
static int
fence(expire_run *r, bs_error *err)
{
	return lease_hold_check(r->st, &r->hold, err);
}

static int
take_lease(expire_run *r, bs_error *err)
{
	if (lease_hold(r->st, "(backstop expire)",
				   config_get_duration_ms(r->cfg, CFG_LEASE_TIMEOUT), false, r->head_exists ? r->head.lease_token : 0,
				   true, &r->hold, err) == BS_OK)
		return BS_OK;
	if (strcmp(err->code, ERRCODE_LOCK_NOT_AVAILABLE) == 0)
		error_prefix(err, "an archiver writes to this archive (expiry would race with its manifest "
					 "writes): run expiry inside it with --expire-interval, or stop it first");
	return BS_ERR;
}

static void
release_lease(expire_run *r)
{
	lease_let_go(r->st, &r->hold, true);
}

/*
 * Manifests first (each stops listing what goes), then head.json (recording their
 * generations), and only then the objects: a crash in between leaves unreferenced objects
 * that verify reports and the next run removes, never a manifest naming a missing object.
 */
static int
apply(expire_run *r, int64_t now_us, int *removed, bs_error *err)
{
	bool stored = false;

	*removed = 0;
	for (int i = 0; i < r->ntables; i++)
	{
		expire_table *t = &r->tables[i];
		const archive_head_table *rec;

		if (!t->selected || t->damaged || t->m == NULL || !t->plan.changes)
			continue;
		expire_apply(t->m, &t->plan, now_us);
		rec = r->head_exists ? archive_head_find_table(&r->head, t->relid) : NULL;
		t->m->generation = (rec && rec->generation > t->m->generation ? rec->generation : t->m->generation) + 1;
		if (fence(r, err) != BS_OK || manifest_store(r->st, t->m, err) != BS_OK)
			return BS_ERR;
		stored = true;
		if (r->head_exists)
			archive_head_note_table(&r->head, t->relid, t->m->generation, t->m->schema, t->m->name);
	}
	if (stored && r->head_exists)
	{
		/* Tokens never go backwards: the head carries the token of its last writer. */
		r->head.lease_token = r->hold.lease.token;
		r->head.time = now_us;
		if (fence(r, err) != BS_OK || archive_head_store(r->st, &r->head, err) != BS_OK)
			return BS_ERR;
	}
	if (getenv(TEST_EXIT_AFTER_STORE) != NULL)
	{
		fprintf(stderr, "backstop expire: %s set: exiting after the manifest store\n", TEST_EXIT_AFTER_STORE);
		fflush(NULL);
		_exit(EXIT_FAILURE_RUNTIME);
	}
	for (int i = 0; i < r->ntables; i++)
	{
		expire_table *t = &r->tables[i];
		storage_keys *lists[2] = {&t->plan.keys, &t->orphans};

		if (!t->selected || t->damaged)
			continue;
		if (t->m && !t->plan.changes)
			lists[0] = NULL;
		for (int l = 0; l < 2; l++)
			for (int k = 0; lists[l] && k < lists[l]->count; k++)
			{
				if (storage_delete(r->st, lists[l]->keys[k], err) != BS_OK)
					return error_prefix(err, "could not delete \"%s\" (the next expire removes what is left)",
										lists[l]->keys[k]);
				(*removed)++;
			}
	}
	return BS_OK;
}

int
cmd_expire(bs_config *cfg, int argc, char **argv)
{
	expire_run r;
	bs_error err;
	json_t *jtables = json_array();
	int64_t now_us = clock_unix_us();
	int exit_code = EXIT_FAILURE_RUNTIME;
	int removed = 0;

	memset(&r, 0, sizeof(r));
	r.cfg = cfg;
	r.dry_run = config_get_bool(cfg, CFG_DRY_RUN);
	r.as_json = config_get_bool(cfg, CFG_JSON);
	r.patterns = config_get(cfg, CFG_TABLE);
	r.policy.keep_window_us = config_get(cfg, CFG_KEEP_WINDOW) ? config_get_duration_ms(cfg, CFG_KEEP_WINDOW) * 1000 : 0;
	r.policy.keep_bases = config_get(cfg, CFG_KEEP_BASES) ? config_get_int(cfg, CFG_KEEP_BASES) : 0;
	r.orphan_age_s = config_get_duration_ms(cfg, CFG_ORPHAN_AGE) / 1000;
	r.jproblems = json_array();
	error_clear(&err);
	if (argc > 0)
	{
		cli_usage_error("expire", "unexpected argument \"%s\"", argv[0]);
		exit_code = EXIT_USAGE;
		goto out;
	}
	if (r.policy.keep_window_us <= 0 && r.policy.keep_bases <= 0)
	{
		fprintf(stderr, "backstop expire: ERROR: no retention policy: give --keep-window and/or --keep-bases\n");
		exit_code = EXIT_USAGE;
		goto out;
	}
	if (storage_config_open(config_get(cfg, CFG_STORAGE), cfg, &r.st, &err) != BS_OK ||
		archive_head_load(r.st, &r.head, &r.head_exists, &err) != BS_OK)
		goto fail;
	/* Never create a lease where there is no archive (a mistyped URL). */
	if (!r.head_exists)
	{
		if (storage_list(r.st, ARCHIVE_TABLES_PREFIX, storage_collect_key, &r.listing, &err) != BS_OK)
			goto fail;
		if (r.listing.count == 0)
		{
			char *where = redact_text(storage_describe(r.st));
			char *shown = xstrdup_printable(where);

			fprintf(stderr, "backstop expire: ERROR: no archive at %s\n", shown);
			free(shown);
			free(where);
			goto out;
		}
		storage_keys_free(&r.listing);
	}
	/* One writer per archive: take the lease, then read what the last writer left. */
	if (!r.dry_run)
	{
		if (take_lease(&r, &err) != BS_OK)
			goto fail;
		archive_head_clear(&r.head);
		if (archive_head_load(r.st, &r.head, &r.head_exists, &err) != BS_OK)
			goto fail;
	}
	if (storage_list(r.st, ARCHIVE_TABLES_PREFIX, storage_collect_key, &r.listing, &err) != BS_OK)
		goto fail;
	group_listing(&r);
	if (plan_tables(&r, now_us, &err) != BS_OK)
		goto fail;
	if (r.dry_run)
		report(&r, jtables);
	else
	{
		if (apply(&r, now_us, &removed, &err) != BS_OK)
			goto fail;
		report(&r, jtables);
	}
	if (r.as_json)
	{
		json_t *o = json_object();

		json_object_set_new(o, "dry_run", json_boolean(r.dry_run));
		json_object_set_new(o, "tables", jtables);
		json_object_set_new(o, "objects_removed", json_integer(removed));
		json_object_set_new(o, "problems", r.jproblems);
		jtables = NULL;
		r.jproblems = NULL;
		jsonout_print(o, JSON_INDENT(2));
		json_decref(o);
	}
	else if (!r.dry_run)
		printf("expired: %d object(s) removed\n", removed);
	exit_code = r.problems ? EXIT_INTEGRITY : EXIT_OK;
	goto out;

fail:
	cli_report_error("expire", &err);
	exit_code = strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 ? EXIT_INTEGRITY : EXIT_FAILURE_RUNTIME;
out:
	release_lease(&r);
	for (int i = 0; i < r.ntables; i++)
	{
		manifest_free(r.tables[i].m);
		expire_plan_free(&r.tables[i].plan);
		storage_keys_free(&r.tables[i].orphans);
	}
	free(r.tables);
	storage_keys_free(&r.listing);
	archive_head_clear(&r.head);
	json_decref(jtables);
	json_decref(r.jproblems);
	if (r.st)
		storage_close(r.st);
	return exit_code;
}
