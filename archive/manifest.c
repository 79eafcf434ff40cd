/* manifest.c — per-table manifests and the archive head: JSON form, strict validation, storage keys. */
#include "manifest.h"
#include "ident.h"
#include "log.h"
#include "manifest_json.h"
#include "manifest_keys.h"
#include "pgsql.h"
#include "strbuf.h"

#include <inttypes.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Names listed in the "not in the archive" message before "and N more". */
#define MAX_NAMES_LISTED 20

/*
 * Construction and destruction.
 */

static char *
dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

manifest *
manifest_new(uint32_t relid, const char *schema, const char *name)
{
	manifest *m = xcalloc(1, sizeof(manifest));

	m->relid = relid;
	m->schema = xstrdup(schema);
	m->name = xstrdup(name);
	m->status = xstrdup("active");
	return m;
}

void
manifest_columns_free(int n, manifest_column *cols)
{
	for (int i = 0; i < n; i++)
	{
		free(cols[i].name);
		free(cols[i].type_name);
		free(cols[i].missing);
	}
	free(cols);
}

void
manifest_base_clear(manifest_base *b)
{
	for (int i = 0; i < b->nchunks; i++)
		free(b->chunks[i].key);
	free(b->chunks);
	free(b->schema_key);
	free(b->definition);
}

void
manifest_free(manifest *m)
{
	if (m == NULL)
		return;
	for (int i = 0; i < m->nlayouts; i++)
		manifest_columns_free(m->layouts[i].ncols, m->layouts[i].columns);
	free(m->layouts);
	for (int i = 0; i < m->nbases; i++)
		manifest_base_clear(&m->bases[i]);
	free(m->bases);
	for (int i = 0; i < m->nsegments; i++)
		free(m->segments[i].key);
	free(m->segments);
	free(m->gaps);
	free(m->schema_gaps);
	for (int i = 0; i < m->nnames; i++)
	{
		free(m->names[i].schema);
		free(m->names[i].name);
	}
	free(m->names);
	free(m->partition_changes);
	free(m->schema);
	free(m->name);
	free(m->status);
	free(m->finding);
	free(m);
}

static manifest_column *
copy_columns(int n, const manifest_column *src)
{
	manifest_column *cols = xcalloc(n > 0 ? (size_t) n : 1, sizeof(manifest_column));

	for (int i = 0; i < n; i++)
	{
		cols[i] = src[i];
		cols[i].name = dup_or_null(src[i].name);
		cols[i].type_name = dup_or_null(src[i].type_name);
		cols[i].missing = dup_or_null(src[i].missing);
	}
	return cols;
}

manifest_layout *
manifest_add_layout(manifest *m, uint64_t from_lsn, char replident, int ncols,
					const manifest_column *columns)
{
	manifest_layout *l;
	uint32_t id = 0;

	/* Ids only grow, so segments written under an old layout keep their meaning. */
	for (int i = 0; i < m->nlayouts; i++)
		if (m->layouts[i].id >= id)
			id = m->layouts[i].id + 1;
	m->layouts = xrealloc(m->layouts, (size_t) (m->nlayouts + 1) * sizeof(manifest_layout));
	l = &m->layouts[m->nlayouts++];
	l->id = id;
	l->from_lsn = from_lsn;
	l->replident = replident;
	l->ncols = ncols;
	l->columns = copy_columns(ncols, columns);
	return l;
}

manifest_layout *
manifest_insert_layout(manifest *m, int64_t want_id, uint64_t from_lsn, char replident, int ncols,
					   const manifest_column *columns)
{
	manifest_layout *l = manifest_add_layout(m, from_lsn, replident, ncols, columns);
	int i = (int) (l - m->layouts);

	if (want_id >= 0)
		l->id = (uint32_t) want_id;
	while (i > 0 && m->layouts[i - 1].from_lsn > m->layouts[i].from_lsn)
	{
		manifest_layout tmp = m->layouts[i - 1];

		m->layouts[i - 1] = m->layouts[i];
		m->layouts[i] = tmp;
		i--;
	}
	return &m->layouts[i];
}

int
manifest_use_layout(manifest *m, uint64_t from_lsn, char replident, int ncols, const manifest_column *columns,
					uint32_t *id, bs_error *err)
{
	const manifest_layout *cur = manifest_layout_at(m, from_lsn);
	manifest_layout *next = NULL;

	if (cur && cur->replident == replident && manifest_columns_equal(cur->ncols, cur->columns, ncols, columns))
	{
		*id = cur->id;
		return BS_OK;
	}
	for (int i = 0; i < m->nlayouts && next == NULL; i++)
		if (m->layouts[i].from_lsn > from_lsn)
			next = &m->layouts[i];
	if (next == NULL)
	{
		*id = manifest_add_layout(m, from_lsn, replident, ncols, columns)->id;
		return BS_OK;
	}
	/* The same layout seen later (by the stream, ahead of a base copy): it was in effect
	 * from here already. */
	if (next->replident == replident && manifest_columns_equal(next->ncols, next->columns, ncols, columns))
	{
		/* Its columns were added here: what the caller knows of their old rows holds for it. */
		for (int c = 0; c < ncols; c++)
			next->columns[c].missing_unknown |= columns[c].missing_unknown;
		next->from_lsn = from_lsn;
		*id = next->id;
		return BS_OK;
	}
	/* A different layout before a later one (a base copy taken ahead of the stream, with a
	 * column change in between): inserted in LSN order with a new id; ids are unique, not
	 * positions, and replay finds layouts by id (doc/FORMAT.md, "Layouts"). */
	(void) err;
	*id = manifest_insert_layout(m, -1, from_lsn, replident, ncols, columns)->id;
	return BS_OK;
}

const manifest_layout *
manifest_layout_at(const manifest *m, uint64_t lsn)
{
	const manifest_layout *found = NULL;

	for (int i = 0; i < m->nlayouts; i++)
		if (m->layouts[i].from_lsn <= lsn)
			found = &m->layouts[i];
	return found;
}

uint64_t
manifest_dropped_after(const manifest *m)
{
	uint64_t lsn = 0;

	/*
	 * The DROP read from the stream: the table existed at every point below the dropping
	 * transaction's commit, and at none from it on.  Changes that transaction made to the table
	 * before dropping it (archived with its commit LSN) are not a state the table ever had.
	 */
	if (m->drop_lsn > 0)
		return m->drop_lsn - 1;
	/*
	 * Otherwise (no DDL capture): the DROP of a table commits after its last change's commit record (it waits for the
	 * lock that change held and then writes WAL of its own), and after the snapshot of each
	 * base copy (which still saw the table).  So the table existed at the point "LSN lsn".
	 */
	for (int i = 0; i < m->nsegments; i++)
		if (m->segments[i].last_end_lsn > lsn)
			lsn = m->segments[i].last_end_lsn;
	if (m->nbases > 0 && m->bases[m->nbases - 1].lsn > lsn)
		lsn = m->bases[m->nbases - 1].lsn;
	/* A recovery point the archiver answered (a gate's, just before a DROP TABLE) stays one. */
	if (m->existed_to > lsn)
		lsn = m->existed_to;
	return lsn;
}

void
manifest_add_name(manifest *m, uint64_t from_lsn, const char *schema, const char *name)
{
	int i;

	if (m->nnames == 0)
	{
		if (strcmp(m->schema, schema) == 0 && strcmp(m->name, name) == 0)
			return;
		m->names = xcalloc(1, sizeof(manifest_name));
		m->names[0].schema = xstrdup(m->schema);
		m->names[0].name = xstrdup(m->name);
		m->nnames = 1;
	}
	/* In LSN order; a name at an LSN already listed replaces it (one rename per commit). */
	for (i = m->nnames; i > 0 && m->names[i - 1].from_lsn > from_lsn; i--)
		;
	if (i > 0 && m->names[i - 1].from_lsn == from_lsn)
	{
		free(m->names[i - 1].schema);
		free(m->names[i - 1].name);
		m->names[i - 1].schema = xstrdup(schema);
		m->names[i - 1].name = xstrdup(name);
	}
	else if (i > 0 && strcmp(m->names[i - 1].schema, schema) == 0 && strcmp(m->names[i - 1].name, name) == 0)
		;						/* already the name in effect there */
	else
	{
		m->names = xrealloc(m->names, (size_t) (m->nnames + 1) * sizeof(manifest_name));
		memmove(&m->names[i + 1], &m->names[i], (size_t) (m->nnames - i) * sizeof(manifest_name));
		m->names[i].from_lsn = from_lsn;
		m->names[i].schema = xstrdup(schema);
		m->names[i].name = xstrdup(name);
		m->nnames++;
	}
	free(m->schema);
	free(m->name);
	m->schema = xstrdup(m->names[m->nnames - 1].schema);
	m->name = xstrdup(m->names[m->nnames - 1].name);
}

void
manifest_name_at(const manifest *m, uint64_t lsn, const char **schema, const char **name)
{
	*schema = m->schema;
	*name = m->name;
	for (int i = m->nnames - 1; i >= 0 && lsn != UINT64_MAX; i--)
		if (m->names[i].from_lsn <= lsn)
		{
			*schema = m->names[i].schema;
			*name = m->names[i].name;
			return;
		}
}

bool
manifest_had_name(const manifest *m, const char *schema, const char *name)
{
	if (strcmp(m->schema, schema) == 0 && strcmp(m->name, name) == 0)
		return true;
	for (int i = 0; i < m->nnames; i++)
		if (strcmp(m->names[i].schema, schema) == 0 && strcmp(m->names[i].name, name) == 0)
			return true;
	return false;
}

manifest_base *
manifest_add_base(manifest *m, const manifest_base *base)
{
	manifest_base *b;

	m->bases = xrealloc(m->bases, (size_t) (m->nbases + 1) * sizeof(manifest_base));
	b = &m->bases[m->nbases++];
	*b = *base;
	b->schema_key = dup_or_null(base->schema_key);
	b->definition = dup_or_null(base->definition);
	b->chunks = xcalloc(base->nchunks > 0 ? (size_t) base->nchunks : 1, sizeof(manifest_chunk));
	for (int i = 0; i < base->nchunks; i++)
	{
		b->chunks[i] = base->chunks[i];
		b->chunks[i].key = dup_or_null(base->chunks[i].key);
	}
	return b;
}

manifest_segment *
manifest_add_segment(manifest *m, const manifest_segment *seg)
{
	manifest_segment *s;

	m->segments = xrealloc(m->segments, (size_t) (m->nsegments + 1) * sizeof(manifest_segment));
	s = &m->segments[m->nsegments++];
	*s = *seg;
	s->key = dup_or_null(seg->key);
	return s;
}

/* Add [from, to) to a sorted list of disjoint windows, merging those it touches. */
static void
add_window(manifest_gap **list, int *count, uint64_t from, uint64_t to)
{
	manifest_gap *g = *list;
	int n = *count;
	int i = 0;
	int j;

	if (from >= to)
		return;
	/* The windows it touches (overlapping or adjacent) become one. */
	while (i < n && g[i].to < from)
		i++;
	j = i;
	while (j < n && g[j].from <= to)
	{
		if (g[j].from < from)
			from = g[j].from;
		if (g[j].to > to)
			to = g[j].to;
		j++;
	}
	if (j == i)
	{
		g = xrealloc(g, (size_t) (n + 1) * sizeof(manifest_gap));
		memmove(&g[i + 1], &g[i], (size_t) (n - i) * sizeof(manifest_gap));
		n++;
	}
	else if (j > i + 1)
	{
		memmove(&g[i + 1], &g[j], (size_t) (n - j) * sizeof(manifest_gap));
		n -= j - i - 1;
	}
	g[i].from = from;
	g[i].to = to;
	*list = g;
	*count = n;
}

void
manifest_add_gap(manifest *m, uint64_t from, uint64_t to)
{
	add_window(&m->gaps, &m->ngaps, from, to);
}

void
manifest_add_schema_gap(manifest *m, uint64_t from, uint64_t to)
{
	add_window(&m->schema_gaps, &m->nschema_gaps, from, to);
}

manifest_gap *
manifest_open_schema_gap(const manifest *m)
{
	if (m->nschema_gaps > 0 && m->schema_gaps[m->nschema_gaps - 1].to == MANIFEST_GAP_OPEN)
		return &m->schema_gaps[m->nschema_gaps - 1];
	return NULL;
}

void
manifest_close_open_schema_gap(manifest *m, uint64_t base_lsn)
{
	manifest_gap *g = manifest_open_schema_gap(m);

	if (g && base_lsn > g->from)
		g->to = base_lsn;
}

const manifest_gap *
manifest_schema_gap_at(const manifest *m, uint64_t bound)
{
	for (int i = 0; i < m->nschema_gaps; i++)
		if (m->schema_gaps[i].from < bound && bound <= m->schema_gaps[i].to)
			return &m->schema_gaps[i];
	return NULL;
}

manifest_gap *
manifest_open_gap(const manifest *m)
{
	if (m->ngaps > 0 && m->gaps[m->ngaps - 1].to == MANIFEST_GAP_OPEN)
		return &m->gaps[m->ngaps - 1];
	return NULL;
}

void
manifest_close_open_gap(manifest *m, uint64_t base_lsn)
{
	manifest_gap *g = manifest_open_gap(m);

	if (g && base_lsn > g->from)
		g->to = base_lsn;
}

const manifest_gap *
manifest_gap_in(const manifest *m, uint64_t from, uint64_t to)
{
	for (int i = 0; i < m->ngaps; i++)
		if (m->gaps[i].from < to && from < m->gaps[i].to)
			return &m->gaps[i];
	return NULL;
}

const manifest_layout *
manifest_layout_by_id(const manifest *m, uint32_t id)
{
	/* Ids equal positions unless layouts were ever pruned: try that first. */
	if (id < (uint32_t) m->nlayouts && m->layouts[id].id == id)
		return &m->layouts[id];
	for (int i = 0; i < m->nlayouts; i++)
		if (m->layouts[i].id == id)
			return &m->layouts[i];
	return NULL;
}

static bool
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/*
 * Only what shapes the tuples in the stream counts (what pgoutput's Relation message
 * carries): names, types, typmods and key flags.  NOT NULL and missing values come from
 * the catalog and do not change how a record is decoded.
 */
bool
manifest_columns_equal(int n1, const manifest_column *c1, int n2, const manifest_column *c2)
{
	if (n1 != n2)
		return false;
	for (int i = 0; i < n1; i++)
	{
		if (!str_eq(c1[i].name, c2[i].name) || c1[i].type_oid != c2[i].type_oid ||
			c1[i].typmod != c2[i].typmod || c1[i].key != c2[i].key)
			return false;
	}
	return true;
}

/*
 * Storage.
 */

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

/* How well a manifest matches a name at lsn: 2 named so there, 1 named so now (a point
 * before the table's archive), 0 named so once, -1 never. */
static int
name_match(const manifest *m, const char *schema, const char *name, uint64_t lsn)
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
		if (name_match(m, schema, name, lsn) >= 0)
		{
			int score = name_match(m, schema, name, lsn);

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
			char *shown = pgsql_display_name(m->schema, m->name);

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

void
manifest_add_partition_change(manifest *m, uint64_t lsn)
{
	int i = m->npartition_changes;

	for (int k = 0; k < m->npartition_changes; k++)
		if (m->partition_changes[k] == lsn)
			return;
	m->partition_changes = xrealloc(m->partition_changes, sizeof(uint64_t) * (size_t) (m->npartition_changes + 1));
	while (i > 0 && m->partition_changes[i - 1] > lsn)
	{
		m->partition_changes[i] = m->partition_changes[i - 1];
		i--;
	}
	m->partition_changes[i] = lsn;
	m->npartition_changes++;
}
