/* manifest.c — per-table manifests and the archive head: JSON form, strict validation, storage keys. */
#include "manifest.h"
#include "ident.h"
#include "isotime.h"
#include "log.h"
#include "lsn.h"
#include "manifest_keys.h"
#include "pgsql.h"
#include "strbuf.h"

#include <inttypes.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest member path we build ("bases[123].chunks[4567].sha256" and the like). */
#define PATH_BUFLEN 160
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
 * Validation of a manifest held in memory.  manifest_from_json checks types while it
 * converts; everything that is about values lives here, so a writer can never store a
 * manifest that a reader would refuse.
 */

/* Member paths for messages; built from our own member names and indexes only. */
static void __attribute__((format(printf, 2, 3)))
path_printf(char *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p, PATH_BUFLEN, fmt, ap);
	va_end(ap);
}

static bool
sha256_valid(const char *s)
{
	int i;

	for (i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[64] == '\0';
}

static int
bad(bs_error *err, const char *path, const char *what)
{
	return error_set(err, ERRCODE_DATA_CORRUPTED, "member \"%s\" %s", path, what);
}

/* An object key of this table: valid and under tables/<relid>/. */
static int
check_key(const manifest *m, const char *key, const char *path, bs_error *err)
{
	uint32_t relid;

	if (key == NULL)
		return bad(err, path, "is missing");
	if (!storage_key_valid(key) || manifest_key_relid(key, &relid, NULL) != BS_OK || relid != m->relid)
		return bad(err, path, "is not a storage key under this table's directory");
	return BS_OK;
}

static int
check_string_members(json_t *o, const char *path, const char *const *names, bool nullable_last,
					 bs_error *err)
{
	char p[PATH_BUFLEN];

	for (int i = 0; names[i]; i++)
	{
		json_t *v = json_object_get(o, names[i]);

		path_printf(p, "%s.%s", path, names[i]);
		if (v == NULL)
			return bad(err, p, "is missing");
		if (!json_is_string(v) && !(nullable_last && names[i + 1] == NULL && json_is_null(v)))
			return bad(err, p, nullable_last && names[i + 1] == NULL ? "must be a string or null" : "must be a string");
	}
	return BS_OK;
}

/* The shape of a base's "definition" object (see doc/FORMAT.md). */
static int
check_definition(json_t *def, const char *path, bs_error *err)
{
	static const char *const index_members[] = {"name", "def", NULL};
	static const char *const constraint_members[] = {"name", "type", "def", NULL};
	static const char *const column_members[] = {"name", "type", "default", NULL};
	static const char *const arrays[] = {"columns", "indexes", "constraints"};
	char p[PATH_BUFLEN];

	if (!json_is_object(def))
		return bad(err, path, "must be an object");
	for (int a = 0; a < 3; a++)
	{
		json_t *arr = json_object_get(def, arrays[a]);
		size_t i;
		json_t *e;

		path_printf(p, "%s.%s", path, arrays[a]);
		if (!json_is_array(arr))
			return bad(err, p, arr ? "must be an array" : "is missing");
		json_array_foreach(arr, i, e)
		{
			char ep[PATH_BUFLEN];

			path_printf(ep, "%s.%s[%zu]", path, arrays[a], i);
			if (!json_is_object(e))
				return bad(err, ep, "must be an object");
			if (a == 0)
			{
				json_t *nn = json_object_get(e, "not_null");

				if (check_string_members(e, ep, column_members, true, err) != BS_OK)
					return BS_ERR;
				if (!json_is_boolean(nn))
				{
					path_printf(ep, "%s.%s[%zu].not_null", path, arrays[a], i);
					return bad(err, ep, nn ? "must be a boolean" : "is missing");
				}
			}
			else if (check_string_members(e, ep, a == 1 ? index_members : constraint_members,
										  false, err) != BS_OK)
				return BS_ERR;
		}
	}
	return BS_OK;
}

static int
check_definition_text(const char *text, const char *path, bs_error *err)
{
	json_error_t jerr;
	json_t *def = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	int rc;

	if (def == NULL)
		return bad(err, path, "is not valid JSON");
	rc = check_definition(def, path, err);
	json_decref(def);
	return rc;
}

int
manifest_validate(const manifest *m, bs_error *err)
{
	char p[PATH_BUFLEN];

	if (m->relid == 0)
		return bad(err, "relid", "must be a positive OID");
	if (m->schema == NULL || m->schema[0] == '\0')
		return bad(err, "schema", "must be a non-empty string");
	if (m->name == NULL || m->name[0] == '\0')
		return bad(err, "name", "must be a non-empty string");
	if (m->status == NULL || (strcmp(m->status, "active") != 0 && strcmp(m->status, "dropped") != 0 &&
							  strcmp(m->status, "skipped") != 0))
		return bad(err, "status", "must be \"active\", \"dropped\" or \"skipped\"");
	if (m->nlayouts < 0 || m->nbases < 0 || m->nsegments < 0 || m->ngaps < 0 || m->nschema_gaps < 0)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "negative element count");

	for (int i = 0; i < m->nlayouts; i++)
	{
		const manifest_layout *l = &m->layouts[i];

		path_printf(p, "layouts[%d].replident", i);
		if (l->replident != 'd' && l->replident != 'f' && l->replident != 'i' && l->replident != 'n')
			return bad(err, p, "must be one of \"d\", \"f\", \"i\", \"n\"");
		path_printf(p, "layouts[%d].id", i);
		for (int j = 0; j < i; j++)
			if (m->layouts[j].id == l->id)
				return bad(err, p, "duplicates the id of an earlier layout");
		path_printf(p, "layouts[%d].from_lsn", i);
		if (i > 0 && l->from_lsn < m->layouts[i - 1].from_lsn)
			return bad(err, p, "is lower than the previous layout's (layouts must be sorted by LSN)");
		if (l->ncols < 0)
			return bad(err, p, "has a negative column count");
		for (int c = 0; c < l->ncols; c++)
		{
			path_printf(p, "layouts[%d].columns[%d]", i, c);
			if (l->columns[c].name == NULL || l->columns[c].type_name == NULL)
				return bad(err, p, "lacks a name or type");
		}
	}

	/* Expiry keeps the base that serves its first kept point: nothing below expired_before
	 * is recoverable, everything from the oldest base on is. */
	if (m->expired_before && m->nbases > 0 && m->expired_before > m->bases[0].lsn)
		return bad(err, "expired_before", "is above the oldest base copy's LSN");
	for (int i = 0; i < m->nnames; i++)
	{
		const manifest_name *nm = &m->names[i];

		path_printf(p, "names[%d]", i);
		if (nm->schema == NULL || nm->schema[0] == '\0' || nm->name == NULL || nm->name[0] == '\0')
			return bad(err, p, "lacks a schema or name");
		if (i == 0 && nm->from_lsn != 0)
			return bad(err, p, "must start at 0/0");
		if (i > 0 && nm->from_lsn <= m->names[i - 1].from_lsn)
			return bad(err, p, "is not above the previous name's from_lsn (names must be sorted by LSN)");
		if (i == m->nnames - 1 && (strcmp(nm->schema, m->schema) != 0 || strcmp(nm->name, m->name) != 0))
			return bad(err, p, "must be the table's current schema and name");
	}
	if (m->drop_lsn && (strcmp(m->status, "dropped") != 0 || m->drop_lsn >= m->dropped_at_lsn))
		return bad(err, "drop_lsn", "must be below dropped_at_lsn, in a dropped table's manifest");

	for (int i = 0; i < m->nbases; i++)
	{
		const manifest_base *b = &m->bases[i];

		path_printf(p, "bases[%d].lsn", i);
		if (i > 0 && b->lsn <= m->bases[i - 1].lsn)
			return bad(err, p, "is not above the previous base's (bases must be sorted by LSN)");
		path_printf(p, "bases[%d].layout_id", i);
		if (manifest_layout_by_id(m, b->layout_id) == NULL)
			return bad(err, p, "references a layout that does not exist");
		if (b->schema_key)
		{
			path_printf(p, "bases[%d].schema_key", i);
			if (check_key(m, b->schema_key, p, err) != BS_OK)
				return BS_ERR;
		}
		if (b->definition)
		{
			path_printf(p, "bases[%d].definition", i);
			if (check_definition_text(b->definition, p, err) != BS_OK)
				return BS_ERR;
		}
		if (b->nchunks < 0)
			return bad(err, p, "has a negative chunk count");
		for (int c = 0; c < b->nchunks; c++)
		{
			path_printf(p, "bases[%d].chunks[%d].key", i, c);
			if (check_key(m, b->chunks[c].key, p, err) != BS_OK)
				return BS_ERR;
			path_printf(p, "bases[%d].chunks[%d].sha256", i, c);
			if (!sha256_valid(b->chunks[c].sha256))
				return bad(err, p, "must be 64 lowercase hex digits");
		}
	}

	for (int i = 0; i < m->nsegments; i++)
	{
		const manifest_segment *s = &m->segments[i];

		path_printf(p, "segments[%d].key", i);
		if (check_key(m, s->key, p, err) != BS_OK)
			return BS_ERR;
		path_printf(p, "segments[%d].sha256", i);
		if (!sha256_valid(s->sha256))
			return bad(err, p, "must be 64 lowercase hex digits");
		path_printf(p, "segments[%d].last_end_lsn", i);
		if (s->last_end_lsn < s->first_lsn)
			return bad(err, p, "is below first_lsn");
		path_printf(p, "segments[%d].first_lsn", i);
		/* Overlap is legitimate (a replay after a crash, deduplicated by end LSN); disorder is not. */
		if (i > 0 && s->first_lsn < m->segments[i - 1].first_lsn)
			return bad(err, p, "is lower than the previous segment's (segments must be sorted by LSN)");
	}

	for (int i = 0; i < m->ngaps; i++)
	{
		path_printf(p, "gaps[%d].to", i);
		if (m->gaps[i].to <= m->gaps[i].from)
			return bad(err, p, "is not above from");
		path_printf(p, "gaps[%d].from", i);
		if (i > 0 && m->gaps[i].from < m->gaps[i - 1].to)
			return bad(err, p, "is below the previous gap's end (gaps must be sorted and disjoint)");
	}
	for (int i = 0; i < m->nschema_gaps; i++)
	{
		path_printf(p, "schema_unknown[%d].to", i);
		if (m->schema_gaps[i].to <= m->schema_gaps[i].from)
			return bad(err, p, "is not above from");
		path_printf(p, "schema_unknown[%d].from", i);
		if (i > 0 && m->schema_gaps[i].from < m->schema_gaps[i - 1].to)
			return bad(err, p, "is below the previous window's end (windows must be sorted and disjoint)");
	}
	return BS_OK;
}

/*
 * JSON output.
 */

/* LSN as "X/Y", time as ISO-8601 UTC. */
static json_t *
json_lsn(uint64_t lsn)
{
	char buf[LSN_BUFLEN];

	return json_string(lsn_format(lsn, buf));
}

static json_t *
json_time(int64_t us)
{
	char buf[ISOTIME_BUFLEN];

	return json_string(isotime_format(us, buf));
}

static json_t *
json_str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *
json_u64(uint64_t v)
{
	/* JSON integers are signed 64-bit in jansson; larger counts cannot occur in practice. */
	return json_integer((json_int_t) (v > (uint64_t) INT64_MAX ? (uint64_t) INT64_MAX : v));
}

static json_t *
layout_to_json(const manifest_layout *l)
{
	json_t *o = json_object();
	json_t *cols = json_array();
	char ri[2] = {l->replident, '\0'};

	json_object_set_new(o, "id", json_integer(l->id));
	json_object_set_new(o, "from_lsn", json_lsn(l->from_lsn));
	json_object_set_new(o, "replident", json_string(ri));
	for (int c = 0; c < l->ncols; c++)
	{
		const manifest_column *col = &l->columns[c];
		json_t *jc = json_object();

		json_object_set_new(jc, "name", json_str_or_null(col->name));
		json_object_set_new(jc, "type_oid", json_integer(col->type_oid));
		json_object_set_new(jc, "typmod", json_integer(col->typmod));
		json_object_set_new(jc, "type", json_str_or_null(col->type_name));
		json_object_set_new(jc, "key", json_boolean(col->key));
		json_object_set_new(jc, "not_null", json_boolean(col->not_null));
		json_object_set_new(jc, "missing", json_str_or_null(col->missing));
		/* Optional, written only when set: older readers and manifests stay as they were. */
		if (col->missing_unknown)
			json_object_set_new(jc, "missing_unknown", json_true());
		json_array_append_new(cols, jc);
	}
	json_object_set_new(o, "columns", cols);
	return o;
}

static json_t *
base_to_json(const manifest_base *b)
{
	json_t *o = json_object();
	json_t *chunks = json_array();

	json_object_set_new(o, "lsn", json_lsn(b->lsn));
	json_object_set_new(o, "time", json_time(b->time));
	json_object_set_new(o, "rows", json_u64(b->rows));
	json_object_set_new(o, "layout_id", json_integer(b->layout_id));
	json_object_set_new(o, "schema_key", json_str_or_null(b->schema_key));
	if (b->definition)
	{
		json_error_t jerr;
		json_t *def = json_loads(b->definition, JSON_REJECT_DUPLICATES, &jerr);

		if (!json_is_object(def))
		{
			json_decref(def);
			json_decref(chunks);
			json_decref(o);
			return NULL;
		}
		json_object_set_new(o, "definition", def);
	}
	else
		json_object_set_new(o, "definition", json_null());
	for (int c = 0; c < b->nchunks; c++)
	{
		const manifest_chunk *ch = &b->chunks[c];
		json_t *jc = json_object();

		json_object_set_new(jc, "key", json_str_or_null(ch->key));
		json_object_set_new(jc, "sha256", json_string(ch->sha256));
		json_object_set_new(jc, "size", json_u64(ch->size));
		json_object_set_new(jc, "raw_size", json_u64(ch->raw_size));
		json_object_set_new(jc, "rows", json_u64(ch->rows));
		json_array_append_new(chunks, jc);
	}
	json_object_set_new(o, "chunks", chunks);
	return o;
}

static json_t *
segment_to_json(const manifest_segment *s)
{
	json_t *o = json_object();

	json_object_set_new(o, "key", json_str_or_null(s->key));
	json_object_set_new(o, "first_lsn", json_lsn(s->first_lsn));
	json_object_set_new(o, "last_end_lsn", json_lsn(s->last_end_lsn));
	json_object_set_new(o, "first_time", json_time(s->first_time));
	json_object_set_new(o, "last_time", json_time(s->last_time));
	json_object_set_new(o, "records", json_u64(s->records));
	json_object_set_new(o, "sha256", json_string(s->sha256));
	json_object_set_new(o, "size", json_u64(s->size));
	json_object_set_new(o, "raw_size", json_u64(s->raw_size));
	return o;
}

char *
manifest_to_json(const manifest *m)
{
	json_t *o = json_object();
	json_t *arr;
	char *text;

	json_object_set_new(o, "format", json_integer(MANIFEST_FORMAT));
	json_object_set_new(o, "generation", json_u64(m->generation));
	json_object_set_new(o, "relid", json_integer(m->relid));
	json_object_set_new(o, "schema", json_str_or_null(m->schema));
	json_object_set_new(o, "name", json_str_or_null(m->name));
	json_object_set_new(o, "status", json_str_or_null(m->status));
	if (m->status && strcmp(m->status, "dropped") == 0)
		json_object_set_new(o, "dropped_at_lsn", json_lsn(m->dropped_at_lsn));
	if (m->existed_to)
		json_object_set_new(o, "existed_to", json_lsn(m->existed_to));
	if (m->drop_lsn)
		json_object_set_new(o, "drop_lsn", json_lsn(m->drop_lsn));
	if (m->ddl_capture_from)
		json_object_set_new(o, "ddl_capture_from", json_lsn(m->ddl_capture_from));
	if (m->npartition_changes)
	{
		json_t *pc = json_array();

		for (int i = 0; i < m->npartition_changes; i++)
			json_array_append_new(pc, json_lsn(m->partition_changes[i]));
		json_object_set_new(o, "partition_changes", pc);
	}
	if (m->nnames > 0)
	{
		json_t *names = json_array();

		for (int i = 0; i < m->nnames; i++)
		{
			json_t *e = json_object();

			json_object_set_new(e, "from_lsn", json_lsn(m->names[i].from_lsn));
			json_object_set_new(e, "schema", json_string(m->names[i].schema));
			json_object_set_new(e, "name", json_string(m->names[i].name));
			json_array_append_new(names, e);
		}
		json_object_set_new(o, "names", names);
	}
	if (m->rebase_requested_at)
		json_object_set_new(o, "rebase_requested_at", json_lsn(m->rebase_requested_at));
	json_object_set_new(o, "finding", json_str_or_null(m->finding));
	if (m->expired_before)
	{
		json_object_set_new(o, "expired_before", json_lsn(m->expired_before));
		json_object_set_new(o, "expired_time", json_time(m->expired_time));
	}
	json_object_set_new(o, "archived_to", json_lsn(m->archived_to));

	arr = json_array();
	for (int i = 0; i < m->nlayouts; i++)
		json_array_append_new(arr, layout_to_json(&m->layouts[i]));
	json_object_set_new(o, "layouts", arr);

	arr = json_array();
	json_object_set_new(o, "bases", arr);
	for (int i = 0; i < m->nbases; i++)
	{
		json_t *b = base_to_json(&m->bases[i]);

		if (b == NULL)
		{
			json_decref(o);
			return NULL;
		}
		json_array_append_new(arr, b);
	}

	arr = json_array();
	for (int i = 0; i < m->nsegments; i++)
		json_array_append_new(arr, segment_to_json(&m->segments[i]));
	json_object_set_new(o, "segments", arr);

	arr = json_array();
	for (int i = 0; i < m->ngaps; i++)
	{
		json_t *g = json_object();

		json_object_set_new(g, "from", json_lsn(m->gaps[i].from));
		json_object_set_new(g, "to", json_lsn(m->gaps[i].to));
		json_array_append_new(arr, g);
	}
	json_object_set_new(o, "gaps", arr);
	if (m->nschema_gaps > 0)
	{
		arr = json_array();
		for (int i = 0; i < m->nschema_gaps; i++)
		{
			json_t *g = json_object();

			json_object_set_new(g, "from", json_lsn(m->schema_gaps[i].from));
			json_object_set_new(g, "to", json_lsn(m->schema_gaps[i].to));
			json_array_append_new(arr, g);
		}
		json_object_set_new(o, "schema_unknown", arr);
	}

	/* One segment per line keeps large manifests readable with ordinary tools. */
	text = json_dumps(o, JSON_INDENT(1) | JSON_COMPACT);
	json_decref(o);
	return text;
}

/*
 * JSON input: type checks and conversions; the value checks are manifest_validate's.
 */

static void
member_path(char *p, const char *path, const char *name)
{
	if (path[0])
		path_printf(p, "%s.%s", path, name);
	else
		path_printf(p, "%s", name);
}

/* Fetch a member; *v NULL only when optional and absent or null. */
static int
j_get(json_t *o, const char *path, const char *name, bool required, json_t **v, bs_error *err)
{
	char p[PATH_BUFLEN];

	*v = json_object_get(o, name);
	if (*v && json_is_null(*v))
		*v = NULL;
	if (*v == NULL && required)
	{
		member_path(p, path, name);
		return bad(err, p, "is missing");
	}
	return BS_OK;
}

static int
j_string(json_t *o, const char *path, const char *name, bool required, char **out, bs_error *err)
{
	json_t *v;
	char p[PATH_BUFLEN];

	*out = NULL;
	if (j_get(o, path, name, required, &v, err) != BS_OK)
		return BS_ERR;
	if (v == NULL)
		return BS_OK;
	if (!json_is_string(v))
	{
		member_path(p, path, name);
		return bad(err, p, "must be a string");
	}
	*out = xstrdup(json_string_value(v));
	return BS_OK;
}

static int
j_int(json_t *o, const char *path, const char *name, int64_t min, int64_t max, int64_t *out,
	  bs_error *err)
{
	json_t *v;
	char p[PATH_BUFLEN];

	if (j_get(o, path, name, true, &v, err) != BS_OK)
		return BS_ERR;
	member_path(p, path, name);
	if (!json_is_integer(v))
		return bad(err, p, "must be an integer");
	if (json_integer_value(v) < min || json_integer_value(v) > max)
		return bad(err, p, "is out of range");
	*out = json_integer_value(v);
	return BS_OK;
}

static int
j_u64(json_t *o, const char *path, const char *name, uint64_t *out, bs_error *err)
{
	int64_t v;

	if (j_int(o, path, name, 0, INT64_MAX, &v, err) != BS_OK)
		return BS_ERR;
	*out = (uint64_t) v;
	return BS_OK;
}

static int
j_bool(json_t *o, const char *path, const char *name, bool *out, bs_error *err)
{
	json_t *v;
	char p[PATH_BUFLEN];

	if (j_get(o, path, name, true, &v, err) != BS_OK)
		return BS_ERR;
	if (!json_is_boolean(v))
	{
		member_path(p, path, name);
		return bad(err, p, "must be a boolean");
	}
	*out = json_is_true(v);
	return BS_OK;
}

static int
j_lsn(json_t *o, const char *path, const char *name, bool required, uint64_t *out, bs_error *err)
{
	json_t *v;
	char p[PATH_BUFLEN];

	*out = 0;
	if (j_get(o, path, name, required, &v, err) != BS_OK)
		return BS_ERR;
	if (v == NULL)
		return BS_OK;
	member_path(p, path, name);
	if (!json_is_string(v) || lsn_parse(json_string_value(v), out) != BS_OK)
		return bad(err, p, "must be an LSN string (\"X/Y\")");
	return BS_OK;
}

static int
j_time(json_t *o, const char *path, const char *name, int64_t *out, bs_error *err)
{
	json_t *v;
	char p[PATH_BUFLEN];

	if (j_get(o, path, name, true, &v, err) != BS_OK)
		return BS_ERR;
	member_path(p, path, name);
	if (!json_is_string(v) || isotime_parse(json_string_value(v), out) != BS_OK)
		return bad(err, p, "must be an ISO-8601 UTC time (\"2026-11-26T16:00:00.123456Z\")");
	return BS_OK;
}

static int
j_sha(json_t *o, const char *path, const char *name, char out[65], bs_error *err)
{
	json_t *v;
	char p[PATH_BUFLEN];

	if (j_get(o, path, name, true, &v, err) != BS_OK)
		return BS_ERR;
	member_path(p, path, name);
	if (!json_is_string(v) || json_string_length(v) != 64 || !sha256_valid(json_string_value(v)))
		return bad(err, p, "must be 64 lowercase hex digits");
	memcpy(out, json_string_value(v), 65);
	return BS_OK;
}

/* "format": one this version reads (MANIFEST_FORMAT_MIN..MANIFEST_FORMAT). */
static int
j_format(json_t *root, int64_t *v, bs_error *err)
{
	if (j_int(root, "", "format", INT64_MIN, INT64_MAX, v, err) != BS_OK)
		return BS_ERR;
	if (*v > MANIFEST_FORMAT)
		return error_set(err, ERRCODE_DATA_CORRUPTED,
						 "member \"format\" is %" PRId64 ": written by a newer Backstop; this version reads formats %d to %d",
						 *v, MANIFEST_FORMAT_MIN, MANIFEST_FORMAT);
	if (*v < MANIFEST_FORMAT_MIN)
		return error_set(err, ERRCODE_DATA_CORRUPTED,
						 "member \"format\" is %" PRId64 "; this version of Backstop reads formats %d to %d",
						 *v, MANIFEST_FORMAT_MIN, MANIFEST_FORMAT);
	return BS_OK;
}

/* An array member; *n its length (bounded by int). */
static int
j_array(json_t *o, const char *path, const char *name, json_t **arr, int *n, bs_error *err)
{
	char p[PATH_BUFLEN];

	if (j_get(o, path, name, true, arr, err) != BS_OK)
		return BS_ERR;
	member_path(p, path, name);
	if (!json_is_array(*arr))
		return bad(err, p, "must be an array");
	if (json_array_size(*arr) > INT_MAX / 2)
		return bad(err, p, "has too many elements");
	*n = (int) json_array_size(*arr);
	return BS_OK;
}

static int
j_element(json_t *arr, const char *path, const char *name, int i, json_t **e, char *ep, bs_error *err)
{
	path_printf(ep, "%s%s%s[%d]", path, path[0] ? "." : "", name, i);
	*e = json_array_get(arr, (size_t) i);
	if (!json_is_object(*e))
		return bad(err, ep, "must be an object");
	return BS_OK;
}

static int
column_from_json(json_t *o, const char *path, manifest_column *c, bs_error *err)
{
	int64_t v;

	if (j_string(o, path, "name", true, &c->name, err) != BS_OK ||
		j_string(o, path, "type", true, &c->type_name, err) != BS_OK ||
		j_string(o, path, "missing", false, &c->missing, err) != BS_OK ||
		j_bool(o, path, "key", &c->key, err) != BS_OK ||
		j_bool(o, path, "not_null", &c->not_null, err) != BS_OK)
		return BS_ERR;
	if (j_int(o, path, "type_oid", 0, UINT32_MAX, &v, err) != BS_OK)
		return BS_ERR;
	c->type_oid = (uint32_t) v;
	if (j_int(o, path, "typmod", INT32_MIN, INT32_MAX, &v, err) != BS_OK)
		return BS_ERR;
	c->typmod = (int32_t) v;
	/* Optional (absent in older manifests: false). */
	c->missing_unknown = false;
	if (json_object_get(o, "missing_unknown") != NULL &&
		j_bool(o, path, "missing_unknown", &c->missing_unknown, err) != BS_OK)
		return BS_ERR;
	return BS_OK;
}

static int
layout_from_json(json_t *o, const char *path, manifest_layout *l, bs_error *err)
{
	int64_t id;
	json_t *cols;
	char *ri = NULL;
	char p[PATH_BUFLEN];

	if (j_int(o, path, "id", 0, UINT32_MAX, &id, err) != BS_OK ||
		j_lsn(o, path, "from_lsn", true, &l->from_lsn, err) != BS_OK ||
		j_string(o, path, "replident", true, &ri, err) != BS_OK)
		return BS_ERR;
	l->id = (uint32_t) id;
	l->replident = strlen(ri) == 1 ? ri[0] : '?';	/* '?' is refused by manifest_validate */
	free(ri);
	if (j_array(o, path, "columns", &cols, &l->ncols, err) != BS_OK)
	{
		l->ncols = 0;
		return BS_ERR;
	}
	l->columns = xcalloc(l->ncols > 0 ? (size_t) l->ncols : 1, sizeof(manifest_column));
	for (int c = 0; c < l->ncols; c++)
	{
		json_t *e;

		if (j_element(cols, path, "columns", c, &e, p, err) != BS_OK ||
			column_from_json(e, p, &l->columns[c], err) != BS_OK)
			return BS_ERR;
	}
	return BS_OK;
}

static int
base_from_json(json_t *o, const char *path, manifest_base *b, bs_error *err)
{
	json_t *chunks;
	json_t *def;
	int64_t v;
	int n;
	char p[PATH_BUFLEN];

	if (j_lsn(o, path, "lsn", true, &b->lsn, err) != BS_OK ||
		j_time(o, path, "time", &b->time, err) != BS_OK ||
		j_u64(o, path, "rows", &b->rows, err) != BS_OK ||
		j_int(o, path, "layout_id", 0, UINT32_MAX, &v, err) != BS_OK ||
		j_string(o, path, "schema_key", false, &b->schema_key, err) != BS_OK ||
		j_get(o, path, "definition", false, &def, err) != BS_OK)
		return BS_ERR;
	b->layout_id = (uint32_t) v;
	if (def)
	{
		member_path(p, path, "definition");
		if (check_definition(def, p, err) != BS_OK)
			return BS_ERR;
		b->definition = json_dumps(def, JSON_COMPACT);
		if (b->definition == NULL)
			return error_set(err, ERRCODE_OUT_OF_MEMORY, "out of memory");
	}
	if (j_array(o, path, "chunks", &chunks, &n, err) != BS_OK)
		return BS_ERR;
	b->chunks = xcalloc(n > 0 ? (size_t) n : 1, sizeof(manifest_chunk));
	for (int c = 0; c < n; c++)
	{
		manifest_chunk *ch = &b->chunks[c];
		json_t *e;

		b->nchunks = c + 1;		/* so that a failure frees what was read */
		if (j_element(chunks, path, "chunks", c, &e, p, err) != BS_OK ||
			j_string(e, p, "key", true, &ch->key, err) != BS_OK ||
			j_sha(e, p, "sha256", ch->sha256, err) != BS_OK ||
			j_u64(e, p, "size", &ch->size, err) != BS_OK ||
			j_u64(e, p, "raw_size", &ch->raw_size, err) != BS_OK ||
			j_u64(e, p, "rows", &ch->rows, err) != BS_OK)
			return BS_ERR;
	}
	return BS_OK;
}

static int
segment_from_json(json_t *o, const char *path, manifest_segment *s, bs_error *err)
{
	if (j_string(o, path, "key", true, &s->key, err) != BS_OK ||
		j_lsn(o, path, "first_lsn", true, &s->first_lsn, err) != BS_OK ||
		j_lsn(o, path, "last_end_lsn", true, &s->last_end_lsn, err) != BS_OK ||
		j_time(o, path, "first_time", &s->first_time, err) != BS_OK ||
		j_time(o, path, "last_time", &s->last_time, err) != BS_OK ||
		j_u64(o, path, "records", &s->records, err) != BS_OK ||
		j_sha(o, path, "sha256", s->sha256, err) != BS_OK ||
		j_u64(o, path, "size", &s->size, err) != BS_OK ||
		j_u64(o, path, "raw_size", &s->raw_size, err) != BS_OK)
		return BS_ERR;
	return BS_OK;
}

static int
manifest_from_json_object(json_t *root, manifest *m, bs_error *err)
{
	int64_t v;
	int64_t format;
	json_t *arr;
	int n;
	char p[PATH_BUFLEN];

	if (!json_is_object(root))
		return error_set(err, ERRCODE_DATA_CORRUPTED, "not a JSON object");
	if (j_format(root, &format, err) != BS_OK)
		return BS_ERR;
	/* Format 1 has no generation: 0, below any the head can record. */
	if (format >= 2 && j_u64(root, "", "generation", &m->generation, err) != BS_OK)
		return BS_ERR;
	if (j_int(root, "", "relid", 1, UINT32_MAX, &v, err) != BS_OK)
		return BS_ERR;
	m->relid = (uint32_t) v;
	if (j_string(root, "", "schema", true, &m->schema, err) != BS_OK ||
		j_string(root, "", "name", true, &m->name, err) != BS_OK ||
		j_string(root, "", "status", true, &m->status, err) != BS_OK ||
		j_string(root, "", "finding", false, &m->finding, err) != BS_OK ||
		j_lsn(root, "", "archived_to", true, &m->archived_to, err) != BS_OK)
		return BS_ERR;
	if (j_lsn(root, "", "dropped_at_lsn", strcmp(m->status, "dropped") == 0,
			  &m->dropped_at_lsn, err) != BS_OK ||
		j_lsn(root, "", "existed_to", false, &m->existed_to, err) != BS_OK ||
		j_lsn(root, "", "drop_lsn", false, &m->drop_lsn, err) != BS_OK ||
		j_lsn(root, "", "ddl_capture_from", false, &m->ddl_capture_from, err) != BS_OK ||
		j_lsn(root, "", "rebase_requested_at", false, &m->rebase_requested_at, err) != BS_OK)
		return BS_ERR;
	/* Optional (newer writers): the name history. */
	if (json_object_get(root, "names") != NULL)
	{
		if (j_array(root, "", "names", &arr, &n, err) != BS_OK)
			return BS_ERR;
		m->names = xcalloc(n > 0 ? (size_t) n : 1, sizeof(manifest_name));
		for (int i = 0; i < n; i++)
		{
			json_t *e;

			m->nnames = i + 1;
			if (j_element(arr, "", "names", i, &e, p, err) != BS_OK ||
				j_lsn(e, p, "from_lsn", true, &m->names[i].from_lsn, err) != BS_OK ||
				j_string(e, p, "schema", true, &m->names[i].schema, err) != BS_OK ||
				j_string(e, p, "name", true, &m->names[i].name, err) != BS_OK)
				return BS_ERR;
		}
	}
	/* Optional (0.3): the partition membership changes, ascending LSNs. */
	if (json_object_get(root, "partition_changes") != NULL)
	{
		if (j_array(root, "", "partition_changes", &arr, &n, err) != BS_OK)
			return BS_ERR;
		m->partition_changes = xcalloc(n > 0 ? (size_t) n : 1, sizeof(uint64_t));
		for (int i = 0; i < n; i++)
		{
			json_t *e = json_array_get(arr, (size_t) i);

			path_printf(p, "partition_changes[%d]", i);
			if (!json_is_string(e) || lsn_parse(json_string_value(e), &m->partition_changes[i]) != BS_OK)
				return bad(err, p, "must be an LSN");
			if (i > 0 && m->partition_changes[i] <= m->partition_changes[i - 1])
				return bad(err, p, "must be above the one before it");
			m->npartition_changes = i + 1;
		}
	}
	/* A checkpoint answered after the drop was seen would vouch for a table that was gone. */
	if (strcmp(m->status, "dropped") == 0 && m->existed_to >= m->dropped_at_lsn)
		return bad(err, "existed_to", "must be below dropped_at_lsn");
	/* Retention: both or neither. */
	if (j_lsn(root, "", "expired_before", false, &m->expired_before, err) != BS_OK)
		return BS_ERR;
	if (m->expired_before && j_time(root, "", "expired_time", &m->expired_time, err) != BS_OK)
		return BS_ERR;

	if (j_array(root, "", "layouts", &arr, &n, err) != BS_OK)
		return BS_ERR;
	m->layouts = xcalloc(n > 0 ? (size_t) n : 1, sizeof(manifest_layout));
	for (int i = 0; i < n; i++)
	{
		json_t *e;

		m->nlayouts = i + 1;
		if (j_element(arr, "", "layouts", i, &e, p, err) != BS_OK ||
			layout_from_json(e, p, &m->layouts[i], err) != BS_OK)
			return BS_ERR;
	}

	if (j_array(root, "", "bases", &arr, &n, err) != BS_OK)
		return BS_ERR;
	m->bases = xcalloc(n > 0 ? (size_t) n : 1, sizeof(manifest_base));
	for (int i = 0; i < n; i++)
	{
		json_t *e;

		m->nbases = i + 1;
		if (j_element(arr, "", "bases", i, &e, p, err) != BS_OK ||
			base_from_json(e, p, &m->bases[i], err) != BS_OK)
			return BS_ERR;
	}

	if (j_array(root, "", "segments", &arr, &n, err) != BS_OK)
		return BS_ERR;
	m->segments = xcalloc(n > 0 ? (size_t) n : 1, sizeof(manifest_segment));
	for (int i = 0; i < n; i++)
	{
		json_t *e;

		m->nsegments = i + 1;
		if (j_element(arr, "", "segments", i, &e, p, err) != BS_OK ||
			segment_from_json(e, p, &m->segments[i], err) != BS_OK)
			return BS_ERR;
	}

	if (format >= 2)
	{
		if (j_array(root, "", "gaps", &arr, &n, err) != BS_OK)
			return BS_ERR;
		m->gaps = xcalloc(n > 0 ? (size_t) n : 1, sizeof(manifest_gap));
		for (int i = 0; i < n; i++)
		{
			json_t *e;

			m->ngaps = i + 1;
			if (j_element(arr, "", "gaps", i, &e, p, err) != BS_OK ||
				j_lsn(e, p, "from", true, &m->gaps[i].from, err) != BS_OK ||
				j_lsn(e, p, "to", true, &m->gaps[i].to, err) != BS_OK)
				return BS_ERR;
		}
	}
	/* Optional: absent in manifests written before it existed (no window then). */
	if (json_object_get(root, "schema_unknown") != NULL)
	{
		if (j_array(root, "", "schema_unknown", &arr, &n, err) != BS_OK)
			return BS_ERR;
		m->schema_gaps = xcalloc(n > 0 ? (size_t) n : 1, sizeof(manifest_gap));
		for (int i = 0; i < n; i++)
		{
			json_t *e;

			m->nschema_gaps = i + 1;
			if (j_element(arr, "", "schema_unknown", i, &e, p, err) != BS_OK ||
				j_lsn(e, p, "from", true, &m->schema_gaps[i].from, err) != BS_OK ||
				j_lsn(e, p, "to", true, &m->schema_gaps[i].to, err) != BS_OK)
				return BS_ERR;
		}
	}
	return manifest_validate(m, err);
}

int
manifest_from_json(const char *json, size_t len, manifest **out, bs_error *err)
{
	json_error_t jerr;
	json_t *root;
	manifest *m;

	*out = NULL;
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "invalid manifest: JSON error at line %d: %s",
						 jerr.line, jerr.text);
	m = xcalloc(1, sizeof(manifest));
	if (manifest_from_json_object(root, m, err) != BS_OK)
	{
		json_decref(root);
		manifest_free(m);
		return error_prefix(err, "invalid manifest");
	}
	json_decref(root);
	*out = m;
	return BS_OK;
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

/*
 * Archive head.
 */

void
archive_head_init(archive_head *head)
{
	memset(head, 0, sizeof(*head));
	head->format = MANIFEST_FORMAT;
	head->text_format.timezone = xstrdup(ARCHIVE_TEXT_TIMEZONE);
	head->text_format.datestyle = xstrdup(ARCHIVE_TEXT_DATESTYLE);
	head->text_format.extra_float_digits = ARCHIVE_TEXT_EXTRA_FLOAT_DIGITS;
	head->text_format.intervalstyle = xstrdup(ARCHIVE_TEXT_INTERVALSTYLE);
	head->text_format.bytea_output = xstrdup(ARCHIVE_TEXT_BYTEA_OUTPUT);
}

void
archive_head_clear(archive_head *head)
{
	free(head->system_identifier);
	free(head->database);
	free(head->text_format.timezone);
	free(head->text_format.datestyle);
	free(head->text_format.intervalstyle);
	free(head->text_format.bytea_output);
	for (int i = 0; i < head->ntables; i++)
	{
		free(head->tables[i].schema);
		free(head->tables[i].name);
	}
	free(head->tables);
	memset(head, 0, sizeof(*head));
}

const archive_head_table *
archive_head_find_table(const archive_head *head, uint32_t relid)
{
	int lo = 0;
	int hi = head->ntables - 1;

	while (lo <= hi)
	{
		int mid = lo + (hi - lo) / 2;

		if (head->tables[mid].relid == relid)
			return &head->tables[mid];
		if (head->tables[mid].relid < relid)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

void
archive_head_note_table(archive_head *head, uint32_t relid, uint64_t generation, const char *schema,
						const char *name)
{
	archive_head_table *t = (archive_head_table *) archive_head_find_table(head, relid);

	if (t == NULL)
	{
		int at = 0;

		while (at < head->ntables && head->tables[at].relid < relid)
			at++;
		head->tables = xrealloc(head->tables, (size_t) (head->ntables + 1) * sizeof(archive_head_table));
		memmove(&head->tables[at + 1], &head->tables[at], (size_t) (head->ntables - at) * sizeof(archive_head_table));
		head->ntables++;
		t = &head->tables[at];
		memset(t, 0, sizeof(*t));
		t->relid = relid;
	}
	/* Generations never go backwards, whatever the caller saw. */
	if (generation > t->generation)
		t->generation = generation;
	if (schema && (t->schema == NULL || strcmp(t->schema, schema) != 0))
	{
		free(t->schema);
		t->schema = xstrdup(schema);
	}
	if (name && (t->name == NULL || strcmp(t->name, name) != 0))
	{
		free(t->name);
		t->name = xstrdup(name);
	}
}

static int
head_validate(const archive_head *head, bs_error *err)
{
	const archive_text_format *tf = &head->text_format;

	if (head->system_identifier == NULL)
		return bad(err, "system_identifier", "is missing");
	if (head->database == NULL)
		return bad(err, "database", "is missing");
	if (tf->timezone == NULL || tf->datestyle == NULL || tf->intervalstyle == NULL ||
		tf->bytea_output == NULL)
		return bad(err, "text_format", "is incomplete");
	for (int i = 0; i < head->ntables; i++)
	{
		char p[PATH_BUFLEN];

		path_printf(p, "tables[%d].relid", i);
		if (head->tables[i].relid == 0)
			return bad(err, p, "must be a positive OID");
		if (i > 0 && head->tables[i].relid <= head->tables[i - 1].relid)
			return bad(err, p, "is not above the previous table's (tables must be sorted by relid)");
		path_printf(p, "tables[%d]", i);
		if (head->tables[i].schema == NULL || head->tables[i].schema[0] == '\0' ||
			head->tables[i].name == NULL || head->tables[i].name[0] == '\0')
			return bad(err, p, "lacks a schema or name");
	}
	return BS_OK;
}

char *
archive_head_to_json(const archive_head *head)
{
	json_t *o = json_object();
	json_t *tf = json_object();
	char *text;

	json_object_set_new(o, "format", json_integer(MANIFEST_FORMAT));
	json_object_set_new(o, "system_identifier", json_str_or_null(head->system_identifier));
	json_object_set_new(o, "database", json_str_or_null(head->database));
	json_object_set_new(o, "flushed_lsn", json_lsn(head->flushed_lsn));
	json_object_set_new(o, "time", json_time(head->time));
	json_object_set_new(tf, "timezone", json_str_or_null(head->text_format.timezone));
	json_object_set_new(tf, "datestyle", json_str_or_null(head->text_format.datestyle));
	json_object_set_new(tf, "extra_float_digits", json_integer(head->text_format.extra_float_digits));
	json_object_set_new(tf, "intervalstyle", json_str_or_null(head->text_format.intervalstyle));
	json_object_set_new(tf, "bytea_output", json_str_or_null(head->text_format.bytea_output));
	json_object_set_new(o, "text_format", tf);
	json_object_set_new(o, "lease_token", json_u64(head->lease_token));
	{
		json_t *arr = json_array();

		for (int i = 0; i < head->ntables; i++)
		{
			const archive_head_table *t = &head->tables[i];
			json_t *jt = json_object();

			json_object_set_new(jt, "relid", json_integer(t->relid));
			json_object_set_new(jt, "generation", json_u64(t->generation));
			json_object_set_new(jt, "schema", json_str_or_null(t->schema));
			json_object_set_new(jt, "name", json_str_or_null(t->name));
			json_array_append_new(arr, jt);
		}
		json_object_set_new(o, "tables", arr);
	}
	text = json_dumps(o, JSON_INDENT(1) | JSON_COMPACT);
	json_decref(o);
	return text;
}

/* Format 2: the lease token and the generation of every table's manifest. */
static int
head_tables_from_json(json_t *root, archive_head *out, bs_error *err)
{
	json_t *arr;
	int n;
	char p[PATH_BUFLEN];

	if (j_u64(root, "", "lease_token", &out->lease_token, err) != BS_OK ||
		j_array(root, "", "tables", &arr, &n, err) != BS_OK)
		return BS_ERR;
	out->tables = xcalloc(n > 0 ? (size_t) n : 1, sizeof(archive_head_table));
	for (int i = 0; i < n; i++)
	{
		archive_head_table *t = &out->tables[i];
		json_t *e;
		int64_t v;

		out->ntables = i + 1;
		if (j_element(arr, "", "tables", i, &e, p, err) != BS_OK ||
			j_int(e, p, "relid", 1, UINT32_MAX, &v, err) != BS_OK)
			return BS_ERR;
		t->relid = (uint32_t) v;
		if (j_u64(e, p, "generation", &t->generation, err) != BS_OK ||
			j_string(e, p, "schema", true, &t->schema, err) != BS_OK ||
			j_string(e, p, "name", true, &t->name, err) != BS_OK)
			return BS_ERR;
	}
	return BS_OK;
}

int
archive_head_from_json(const char *json, size_t len, archive_head *out, bs_error *err)
{
	json_error_t jerr;
	json_t *root;
	json_t *tf;
	int64_t v;
	int rc = BS_ERR;

	memset(out, 0, sizeof(*out));
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "invalid archive head: JSON error at line %d: %s",
						 jerr.line, jerr.text);
	if (!json_is_object(root))
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "not a JSON object");
		goto out;
	}
	if (j_format(root, &v, err) != BS_OK)
		goto out;
	out->format = (int) v;
	if (j_string(root, "", "system_identifier", true, &out->system_identifier, err) != BS_OK ||
		j_string(root, "", "database", true, &out->database, err) != BS_OK ||
		j_lsn(root, "", "flushed_lsn", true, &out->flushed_lsn, err) != BS_OK ||
		j_time(root, "", "time", &out->time, err) != BS_OK ||
		j_get(root, "", "text_format", true, &tf, err) != BS_OK)
		goto out;
	if (!json_is_object(tf))
	{
		bad(err, "text_format", "must be an object");
		goto out;
	}
	if (j_string(tf, "text_format", "timezone", true, &out->text_format.timezone, err) != BS_OK ||
		j_string(tf, "text_format", "datestyle", true, &out->text_format.datestyle, err) != BS_OK ||
		j_int(tf, "text_format", "extra_float_digits", -15, 3, &v, err) != BS_OK ||
		j_string(tf, "text_format", "intervalstyle", true, &out->text_format.intervalstyle, err) != BS_OK ||
		j_string(tf, "text_format", "bytea_output", true, &out->text_format.bytea_output, err) != BS_OK)
		goto out;
	out->text_format.extra_float_digits = (int) v;
	if (out->format >= 2 && head_tables_from_json(root, out, err) != BS_OK)
		goto out;
	rc = head_validate(out, err);
out:
	json_decref(root);
	if (rc != BS_OK)
	{
		archive_head_clear(out);
		error_prefix(err, "invalid archive head");
	}
	return rc;
}

int
archive_head_load(storage *st, archive_head *out, bool *exists, bs_error *err)
{
	strbuf sb = STRBUF_INIT;
	int rc;

	memset(out, 0, sizeof(*out));
	*exists = false;
	if (storage_get_all(st, ARCHIVE_HEAD_KEY, &sb, err) != BS_OK)
	{
		strbuf_free(&sb);
		if (strcmp(err->code, ERRCODE_NOT_FOUND) == 0)
		{
			error_clear(err);
			return BS_OK;
		}
		return error_prefix(err, "could not read \"%s\"", ARCHIVE_HEAD_KEY);
	}
	*exists = true;
	rc = archive_head_from_json(sb.data ? sb.data : "", sb.len, out, err);
	if (rc != BS_OK)
		error_prefix(err, "%s", ARCHIVE_HEAD_KEY);
	strbuf_free(&sb);
	return rc;
}

char *
archive_head_serialize(const archive_head *head, bs_error *err)
{
	char *text;

	if (head_validate(head, err) != BS_OK)
	{
		error_prefix(err, "refusing to store an invalid archive head");
		return NULL;
	}
	text = archive_head_to_json(head);
	if (text == NULL)
		error_set(err, ERRCODE_INTERNAL, "could not serialize the archive head");
	return text;
}

int
archive_head_store_json(storage *st, const char *json, bs_error *err)
{
	if (storage_put(st, ARCHIVE_HEAD_KEY, json, strlen(json), err) != BS_OK)
		return error_prefix(err, "could not store \"%s\"", ARCHIVE_HEAD_KEY);
	return BS_OK;
}

int
archive_head_store(storage *st, const archive_head *head, bs_error *err)
{
	char *text = archive_head_serialize(head, err);
	int rc;

	if (text == NULL)
		return BS_ERR;
	rc = archive_head_store_json(st, text, err);
	free(text);
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
