/* manifest.c — the per-table manifest in memory: layouts, base copies, segments, gaps and names; built, looked up, freed. */
#include "manifest.h"
#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

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

/* The last of n windows when it is still open (to MANIFEST_GAP_OPEN), else NULL. */
static manifest_gap *
open_window(manifest_gap *g, int n)
{
	if (n > 0 && g[n - 1].to == MANIFEST_GAP_OPEN)
		return &g[n - 1];
	return NULL;
}

/* An open window (may be NULL) ends at base_lsn, when base_lsn is past its start. */
static void
close_window(manifest_gap *g, uint64_t base_lsn)
{
	if (g && base_lsn > g->from)
		g->to = base_lsn;
}

manifest_gap *
manifest_open_schema_gap(const manifest *m)
{
	return open_window(m->schema_gaps, m->nschema_gaps);
}

void
manifest_close_open_schema_gap(manifest *m, uint64_t base_lsn)
{
	close_window(manifest_open_schema_gap(m), base_lsn);
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
	return open_window(m->gaps, m->ngaps);
}

void
manifest_close_open_gap(manifest *m, uint64_t base_lsn)
{
	close_window(manifest_open_gap(m), base_lsn);
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

bool
manifest_layout_has_column(const manifest_layout *l, const char *name)
{
	for (int i = 0; i < l->ncols; i++)
		if (str_eq(l->columns[i].name, name))
			return true;
	return false;
}

/* The same names, types and typmods; keys: the same key flags too. */
static bool
columns_alike(int n1, const manifest_column *c1, int n2, const manifest_column *c2, bool keys)
{
	if (n1 != n2)
		return false;
	for (int i = 0; i < n1; i++)
	{
		if (!str_eq(c1[i].name, c2[i].name) || c1[i].type_oid != c2[i].type_oid ||
			c1[i].typmod != c2[i].typmod || (keys && c1[i].key != c2[i].key))
			return false;
	}
	return true;
}

/*
 * Only what shapes the tuples in the stream counts (what pgoutput's Relation message
 * carries): names, types, typmods and key flags.  NOT NULL and missing values come from
 * the catalog and do not change how a record is decoded.
 */
bool
manifest_columns_equal(int n1, const manifest_column *c1, int n2, const manifest_column *c2)
{
	return columns_alike(n1, c1, n2, c2, true);
}

bool
manifest_columns_same_types(int n1, const manifest_column *c1, int n2, const manifest_column *c2)
{
	return columns_alike(n1, c1, n2, c2, false);
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
