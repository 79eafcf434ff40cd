/* manifest_store.c — manifests in storage: loaded and checked, stored only when valid, listed, found by name or relid. */
#include "manifest_store.h"
#include "ident.h"
#include "log.h"
#include "manifest_json.h"
#include "manifest_keys.h"
#include "quote.h"
#include "strbuf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Names listed in the "not in the archive" message before "and N more". */
#define MAX_NAMES_LISTED 20

int
manifest_load(storage *st, uint32_t relid, manifest **out, bool *exists, bs_error *err)
{
	char *key = manifest_key(relid);
	strbuf sb = STRBUF_INIT;
	int rc;

	*out = NULL;
	*exists = false;
	if (storage_get_all(st, key, &sb, err) != BS_OK)
	{
		rc = BS_ERR;
		if (strcmp(err->code, ERRCODE_NOT_FOUND) == 0)
		{
			error_clear(err);
			rc = BS_OK;
		}
		else
			error_prefix(err, "could not read \"%s\"", key);
		goto out;
	}
	*exists = true;
	rc = manifest_from_json(sb.data ? sb.data : "", sb.len, out, err);
	if (rc != BS_OK)
		error_prefix(err, "%s", key);
	else if ((*out)->relid != relid)
	{
		/* A manifest copied into another table's directory would send recovery astray. */
		rc = error_set(err, ERRCODE_DATA_CORRUPTED, "%s: invalid manifest: member \"relid\" is %" PRIu32
					   ", not the relid of its directory", key, (*out)->relid);
		manifest_free(*out);
		*out = NULL;
	}
out:
	strbuf_free(&sb);
	free(key);
	return rc;
}

char *
manifest_serialize(const manifest *m, bs_error *err)
{
	char *text;

	/* Never write what manifest_from_json would refuse: recovery would be locked out. */
	if (manifest_validate(m, err) != BS_OK)
	{
		error_prefix(err, "refusing to store an invalid manifest for table %" PRIu32, m->relid);
		return NULL;
	}
	text = manifest_to_json(m);
	if (text == NULL)
		error_set(err, ERRCODE_INTERNAL, "could not serialize the manifest of table %" PRIu32, m->relid);
	return text;
}

int
manifest_store_json(storage *st, uint32_t relid, const char *json, bs_error *err)
{
	char *key = manifest_key(relid);
	int rc = storage_put(st, key, json, strlen(json), err);

	if (rc != BS_OK)
		error_prefix(err, "could not store \"%s\"", key);
	free(key);
	return rc;
}

int
manifest_store(storage *st, const manifest *m, bs_error *err)
{
	char *text = manifest_serialize(m, err);
	int rc;

	if (text == NULL)
		return BS_ERR;
	rc = manifest_store_json(st, m->relid, text, err);
	free(text);
	return rc;
}

typedef struct relid_list
{
	uint32_t *ids;
	int n;
	int cap;
} relid_list;

static int
collect_relid(void *ctx, const char *key, uint64_t size, bs_error *err)
{
	relid_list *l = ctx;
	const char *rest;
	uint32_t relid;

	(void) size;
	(void) err;
	if (manifest_key_relid(key, &relid, &rest) != BS_OK)
	{
		const char *tail = strrchr(key, '/');

		/* Warn once per odd directory: on its manifest, not on every object under it. */
		if (tail && strcmp(tail, "/manifest.json") == 0)
			log_warning("ignoring \"%s\": not a valid table directory", key);
		return BS_OK;
	}
	if (strcmp(rest, "manifest.json") != 0)
		return BS_OK;
	if (l->n == l->cap)
	{
		l->cap = l->cap ? l->cap * 2 : 16;
		l->ids = xrealloc(l->ids, (size_t) l->cap * sizeof(uint32_t));
	}
	l->ids[l->n++] = relid;
	return BS_OK;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *) a;
	uint32_t y = *(const uint32_t *) b;

	return x < y ? -1 : x > y;
}

int
manifest_list_relids(storage *st, uint32_t **relids, int *count, bs_error *err)
{
	relid_list l = {NULL, 0, 0};

	*relids = NULL;
	*count = 0;
	if (storage_list(st, ARCHIVE_TABLES_PREFIX, collect_relid, &l, err) != BS_OK)
	{
		free(l.ids);
		return error_prefix(err, "could not list the tables of the archive");
	}
	/* Keys list lexically ("10" before "9"); callers want numeric order. */
	if (l.n > 1)
		qsort(l.ids, (size_t) l.n, sizeof(uint32_t), cmp_u32);
	*relids = l.ids;
	*count = l.n;
	return BS_OK;
}

int
manifest_find_relid(storage *st, const char *relid_text, manifest **out, bs_error *err)
{
	char *end = NULL;
	unsigned long long v;
	bool exists = false;

	*out = NULL;
	errno = 0;
	v = strtoull(relid_text, &end, 10);
	if (relid_text[0] < '0' || relid_text[0] > '9' || *end != '\0' || errno != 0 || v == 0 || v > UINT32_MAX)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "--relid must be a table OID (1 to 4294967295)");
	if (manifest_load(st, (uint32_t) v, out, &exists, err) != BS_OK)
		return BS_ERR;
	if (!exists)
		return error_set(err, ERRCODE_UNDEFINED_TABLE, "no table with relid %llu is in the archive at %s", v,
						 storage_describe(st));
	return BS_OK;
}

int
manifest_find_table(storage *st, const char *qualified_name, manifest **out, bs_error *err)
{
	return manifest_find_table_at(st, qualified_name, UINT64_MAX, out, err);
}

int
manifest_name_match(const manifest *m, const char *schema, const char *name, uint64_t lsn)
{
	const char *s, *n;

	manifest_name_at(m, lsn, &s, &n);
	/* Before its archive begins the table is not known to have existed: a later table
	 * that took the name must not outrank the one that had it then. */
	if (strcmp(s, schema) == 0 && strcmp(n, name) == 0 &&
		(lsn == UINT64_MAX || m->nbases == 0 || lsn >= m->bases[0].lsn))
		return 2;
	if (strcmp(m->schema, schema) == 0 && strcmp(m->name, name) == 0)
		return 1;
	return manifest_had_name(m, schema, name) ? 0 : -1;
}

int
manifest_find_table_at(storage *st, const char *qualified_name, uint64_t lsn, manifest **out, bs_error *err)
{
	int best_score = -1;
	char *schema;
	char *name;
	uint32_t *relids = NULL;
	int n = 0;
	manifest *best = NULL;
	strbuf names = STRBUF_INIT;
	strbuf unreadable = STRBUF_INIT;
	int listed = 0;
	int nunreadable = 0;
	int rc = BS_ERR;

	*out = NULL;
	if (ident_split_name(qualified_name, &schema, &name, err) != BS_OK)
		return BS_ERR;
	if (manifest_list_relids(st, &relids, &n, err) != BS_OK)
		goto out;
	for (int i = 0; i < n; i++)
	{
		manifest *m;
		bool exists;
		bs_error lerr;

		/*
		 * A damaged manifest (or one being written by the archiver as it is read, on storage
		 * that shows partial objects) of another table must not make every lookup fail: it
		 * is skipped with a warning, and the outcome is refused below only where it might
		 * have been the table looked for.  Storage failures stay errors.
		 */
		error_clear(&lerr);
		if (manifest_load(st, relids[i], &m, &exists, &lerr) != BS_OK)
		{
			char *key;

			if (strcmp(lerr.code, ERRCODE_DATA_CORRUPTED) != 0)
			{
				*err = lerr;
				goto out;
			}
			log_warning("%s (skipped while looking for table %s.%s)", lerr.message, schema, name);
			key = manifest_key(relids[i]);
			if (nunreadable < MAX_NAMES_LISTED)
				strbuf_printf(&unreadable, "%s%s", nunreadable ? ", " : "", key);
			free(key);
			nunreadable++;
			continue;
		}
		if (!exists)
			continue;
		if (manifest_name_match(m, schema, name, lsn) >= 0)
		{
			int score = manifest_name_match(m, schema, name, lsn);

			/* Renamed: the table that had the name at the point.  Dropped and re-created:
			 * the table archived last is the one meant. */
			if (best == NULL || score > best_score ||
				(score == best_score && (m->archived_to > best->archived_to ||
										 (m->archived_to == best->archived_to && m->relid > best->relid))))
			{
				manifest_free(best);
				best = m;
				best_score = score;
				continue;
			}
		}
		else if (listed < MAX_NAMES_LISTED)
		{
			/* As --table takes it back (quoted where needed). */
			char *shown = quote_display_name(m->schema, m->name);

			strbuf_printf(&names, "%s%s", listed ? ", " : "", shown);
			free(shown);
			listed++;
		}
		else
			listed++;
		manifest_free(m);
	}
	if (nunreadable > MAX_NAMES_LISTED)
		strbuf_printf(&unreadable, " and %d more", nunreadable - MAX_NAMES_LISTED);
	if (best == NULL && nunreadable > 0)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED,
				  "table \"%s.%s\" is not among the readable manifests of the archive at %s, and %d "
				  "manifest%s could not be read (%s): one of them may be it (backstop verify shows the damage)",
				  schema, name, storage_describe(st), nunreadable, nunreadable == 1 ? "" : "s", unreadable.data);
		goto out;
	}
	if (best == NULL)
	{
		if (listed > MAX_NAMES_LISTED)
			strbuf_printf(&names, " and %d more", listed - MAX_NAMES_LISTED);
		error_set(err, ERRCODE_UNDEFINED_TABLE, "table \"%s.%s\" is not in the archive at %s (%s%s)",
				  schema, name, storage_describe(st),
				  listed ? "archived tables: " : "the archive holds no tables",
				  listed ? names.data : "");
		goto out;
	}
	/*
	 * Two tables carry one name at a time only while a drop is not yet recorded; the one
	 * still active is the table of that name now.  A dropped (or skipped) match, though, may
	 * have been re-created as a table whose manifest is among the unreadable ones: refuse
	 * rather than guess.
	 */
	if (nunreadable > 0 && strcmp(best->status, "active") != 0)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED,
				  "table \"%s.%s\" is ambiguous: the archive at %s has it %s (relid %u), but %d manifest%s "
				  "could not be read (%s) and may hold a later table of that name (backstop verify shows "
				  "the damage)", schema, name, storage_describe(st), best->status, best->relid, nunreadable,
				  nunreadable == 1 ? "" : "s", unreadable.data);
		goto out;
	}
	*out = best;
	best = NULL;
	rc = BS_OK;
out:
	manifest_free(best);
	strbuf_free(&names);
	strbuf_free(&unreadable);
	free(relids);
	free(schema);
	free(name);
	return rc;
}
