/* manifest_json.c — the JSON form of manifests and head.json, read strictly: what comes from storage is untrusted. */
#include "manifest_json.h"
#include "isotime.h"
#include "lsn.h"
#include "manifest_keys.h"
#include "strbuf.h"

#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest member path we build ("bases[123].chunks[4567].sha256" and the like). */
#define PATH_BUFLEN 160

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
		if (s->source == MANIFEST_SEGMENT_PACK)
		{
			/* A run of a pack (folded, never stored): the key is the pack's, shared by tables. */
			if (s->key == NULL || !storage_key_valid(s->key))
				return bad(err, p, "is not a storage key");
			path_printf(p, "segments[%d].raw_size", i);
			if (s->raw_size == 0 || s->pack_seq == 0)
				return bad(err, p, "is not a run of a pack");
		}
		else
		{
			if (s->source != MANIFEST_SEGMENT_OBJECT)
				return bad(err, p, "has an unknown source");
			if (check_key(m, s->key, p, err) != BS_OK)
				return BS_ERR;
			path_printf(p, "segments[%d].sha256", i);
			if (!sha256_valid(s->sha256))
				return bad(err, p, "must be 64 lowercase hex digits");
		}
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

/* LSN as "X/Y", time as ISO-8601 UTC (the form of every LSN and time in stored JSON). */
json_t *
manifest_json_lsn_value(uint64_t lsn)
{
	char buf[LSN_BUFLEN];

	return json_string(lsn_format(lsn, buf));
}

json_t *
manifest_json_time_value(int64_t us)
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

/* The JSON object of one element of an array of the manifest; NULL when it cannot be written. */
typedef json_t *(*element_to_json_fn) (const void *item);

/* The JSON array of n elements of size bytes at items, each written by fn; NULL when one fails. */
static json_t *
objects_to_json(const void *items, int n, size_t size, element_to_json_fn fn)
{
	json_t *arr = json_array();

	for (int i = 0; i < n; i++)
	{
		json_t *e = fn((const char *) items + (size_t) i * size);

		if (e == NULL)
		{
			json_decref(arr);
			return NULL;
		}
		json_array_append_new(arr, e);
	}
	return arr;
}

static json_t *
column_to_json(const void *item)
{
	const manifest_column *col = item;
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
	return jc;
}

static json_t *
layout_to_json(const void *item)
{
	const manifest_layout *l = item;
	json_t *o = json_object();
	char ri[2] = {l->replident, '\0'};

	json_object_set_new(o, "id", json_integer(l->id));
	json_object_set_new(o, "from_lsn", manifest_json_lsn_value(l->from_lsn));
	json_object_set_new(o, "replident", json_string(ri));
	json_object_set_new(o, "columns", objects_to_json(l->columns, l->ncols, sizeof(manifest_column), column_to_json));
	return o;
}

static json_t *
chunk_to_json(const void *item)
{
	const manifest_chunk *ch = item;
	json_t *jc = json_object();

	json_object_set_new(jc, "key", json_str_or_null(ch->key));
	json_object_set_new(jc, "sha256", json_string(ch->sha256));
	json_object_set_new(jc, "size", json_u64(ch->size));
	json_object_set_new(jc, "raw_size", json_u64(ch->raw_size));
	json_object_set_new(jc, "rows", json_u64(ch->rows));
	return jc;
}

static json_t *
base_to_json(const void *item)
{
	const manifest_base *b = item;
	json_t *o = json_object();

	json_object_set_new(o, "lsn", manifest_json_lsn_value(b->lsn));
	json_object_set_new(o, "time", manifest_json_time_value(b->time));
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
			json_decref(o);
			return NULL;
		}
		json_object_set_new(o, "definition", def);
	}
	else
		json_object_set_new(o, "definition", json_null());
	json_object_set_new(o, "chunks", objects_to_json(b->chunks, b->nchunks, sizeof(manifest_chunk), chunk_to_json));
	return o;
}

static json_t *
segment_to_json(const void *item)
{
	const manifest_segment *s = item;
	json_t *o = json_object();

	json_object_set_new(o, "key", json_str_or_null(s->key));
	json_object_set_new(o, "first_lsn", manifest_json_lsn_value(s->first_lsn));
	json_object_set_new(o, "last_end_lsn", manifest_json_lsn_value(s->last_end_lsn));
	json_object_set_new(o, "first_time", manifest_json_time_value(s->first_time));
	json_object_set_new(o, "last_time", manifest_json_time_value(s->last_time));
	json_object_set_new(o, "records", json_u64(s->records));
	if (s->source == MANIFEST_SEGMENT_PACK)
	{
		/* A run of a pack: no sha256 of its own, so manifest_from_json refuses it (a format-2
		 * reader must not take a pack for a segment object); written for comparisons and
		 * messages only. */
		json_object_set_new(o, "pack_seq", json_u64(s->pack_seq));
		json_object_set_new(o, "raw_offset", json_u64(s->raw_offset));
		json_object_set_new(o, "raw_size", json_u64(s->raw_size));
		return o;
	}
	json_object_set_new(o, "sha256", json_string(s->sha256));
	json_object_set_new(o, "size", json_u64(s->size));
	json_object_set_new(o, "raw_size", json_u64(s->raw_size));
	return o;
}

static json_t *
name_to_json(const void *item)
{
	const manifest_name *nm = item;
	json_t *e = json_object();

	json_object_set_new(e, "from_lsn", manifest_json_lsn_value(nm->from_lsn));
	json_object_set_new(e, "schema", json_string(nm->schema));
	json_object_set_new(e, "name", json_string(nm->name));
	return e;
}

static json_t *
gap_to_json(const void *item)
{
	const manifest_gap *gap = item;
	json_t *g = json_object();

	json_object_set_new(g, "from", manifest_json_lsn_value(gap->from));
	json_object_set_new(g, "to", manifest_json_lsn_value(gap->to));
	return g;
}

/* The manifest as a JSON object; table_only: without format, generation, archived_to and
 * segments (a catalog's table entry).  NULL when a base definition is not a JSON object. */
static json_t *
manifest_object(const manifest *m, bool table_only)
{
	json_t *o = json_object();
	json_t *bases;

	if (!table_only)
	{
		json_object_set_new(o, "format", json_integer(MANIFEST_FORMAT));
		json_object_set_new(o, "generation", json_u64(m->generation));
	}
	json_object_set_new(o, "relid", json_integer(m->relid));
	json_object_set_new(o, "schema", json_str_or_null(m->schema));
	json_object_set_new(o, "name", json_str_or_null(m->name));
	json_object_set_new(o, "status", json_str_or_null(m->status));
	if (m->status && strcmp(m->status, "dropped") == 0)
		json_object_set_new(o, "dropped_at_lsn", manifest_json_lsn_value(m->dropped_at_lsn));
	if (m->existed_to)
		json_object_set_new(o, "existed_to", manifest_json_lsn_value(m->existed_to));
	if (m->drop_lsn)
		json_object_set_new(o, "drop_lsn", manifest_json_lsn_value(m->drop_lsn));
	if (m->ddl_capture_from)
		json_object_set_new(o, "ddl_capture_from", manifest_json_lsn_value(m->ddl_capture_from));
	if (m->npartition_changes)
	{
		json_t *pc = json_array();

		for (int i = 0; i < m->npartition_changes; i++)
			json_array_append_new(pc, manifest_json_lsn_value(m->partition_changes[i]));
		json_object_set_new(o, "partition_changes", pc);
	}
	if (m->nnames > 0)
		json_object_set_new(o, "names", objects_to_json(m->names, m->nnames, sizeof(manifest_name), name_to_json));
	if (m->rebase_requested_at)
		json_object_set_new(o, "rebase_requested_at", manifest_json_lsn_value(m->rebase_requested_at));
	json_object_set_new(o, "finding", json_str_or_null(m->finding));
	if (m->expired_before)
	{
		json_object_set_new(o, "expired_before", manifest_json_lsn_value(m->expired_before));
		json_object_set_new(o, "expired_time", manifest_json_time_value(m->expired_time));
	}
	if (!table_only)
		json_object_set_new(o, "archived_to", manifest_json_lsn_value(m->archived_to));

	json_object_set_new(o, "layouts", objects_to_json(m->layouts, m->nlayouts, sizeof(manifest_layout),
													  layout_to_json));
	bases = objects_to_json(m->bases, m->nbases, sizeof(manifest_base), base_to_json);
	if (bases == NULL)
	{
		json_decref(o);
		return NULL;
	}
	json_object_set_new(o, "bases", bases);
	if (!table_only)
		json_object_set_new(o, "segments", objects_to_json(m->segments, m->nsegments, sizeof(manifest_segment),
														   segment_to_json));
	json_object_set_new(o, "gaps", objects_to_json(m->gaps, m->ngaps, sizeof(manifest_gap), gap_to_json));
	if (m->nschema_gaps > 0)
		json_object_set_new(o, "schema_unknown", objects_to_json(m->schema_gaps, m->nschema_gaps,
																 sizeof(manifest_gap), gap_to_json));
	return o;
}

char *
manifest_to_json(const manifest *m)
{
	json_t *o = manifest_object(m, false);
	char *text;

	if (o == NULL)
		return NULL;
	/* One segment per line keeps large manifests readable with ordinary tools. */
	text = json_dumps(o, JSON_INDENT(1) | JSON_COMPACT);
	json_decref(o);
	return text;
}

json_t *
manifest_table_to_json_object(const manifest *m)
{
	return manifest_object(m, true);
}

json_t *
manifest_layout_to_json_object(const manifest_layout *l)
{
	return layout_to_json(l);
}

json_t *
manifest_base_to_json_object(const manifest_base *b)
{
	return base_to_json(b);
}

json_t *
manifest_gap_to_json_object(const manifest_gap *g)
{
	return gap_to_json(g);
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

/* Reads one object of an array (at path p) into out, one element of the array being built. */
typedef int (*element_fn) (json_t *e, const char *p, void *out, bs_error *err);

/*
 * Read the array member name of o, whose elements are objects, into a new zeroed array of
 * elements of size bytes, each read by fn; returns it (NULL when the member is no array).
 * *rc says whether all was read; *count counts the elements handed to fn, so that on failure
 * the caller frees what was read with the array.
 */
static void *
j_objects(json_t *o, const char *path, const char *name, size_t size, element_fn fn, int *count,
		  int *rc, bs_error *err)
{
	json_t *arr;
	int n;
	char *items;
	char p[PATH_BUFLEN];

	*count = 0;
	*rc = BS_ERR;
	if (j_array(o, path, name, &arr, &n, err) != BS_OK)
		return NULL;
	items = xcalloc(n > 0 ? (size_t) n : 1, size);
	for (int i = 0; i < n; i++)
	{
		json_t *e;

		*count = i + 1;
		if (j_element(arr, path, name, i, &e, p, err) != BS_OK ||
			fn(e, p, items + (size_t) i * size, err) != BS_OK)
			return items;
	}
	*rc = BS_OK;
	return items;
}

static int
column_from_json(json_t *o, const char *path, void *out, bs_error *err)
{
	manifest_column *c = out;
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
layout_from_json(json_t *o, const char *path, void *out, bs_error *err)
{
	manifest_layout *l = out;
	int64_t id;
	char *ri = NULL;
	int rc;

	if (j_int(o, path, "id", 0, UINT32_MAX, &id, err) != BS_OK ||
		j_lsn(o, path, "from_lsn", true, &l->from_lsn, err) != BS_OK ||
		j_string(o, path, "replident", true, &ri, err) != BS_OK)
		return BS_ERR;
	l->id = (uint32_t) id;
	l->replident = strlen(ri) == 1 ? ri[0] : '?';	/* '?' is refused by manifest_validate */
	free(ri);
	l->columns = j_objects(o, path, "columns", sizeof(manifest_column), column_from_json, &l->ncols,
						   &rc, err);
	return rc;
}

static int
chunk_from_json(json_t *e, const char *p, void *out, bs_error *err)
{
	manifest_chunk *ch = out;

	if (j_string(e, p, "key", true, &ch->key, err) != BS_OK ||
		j_sha(e, p, "sha256", ch->sha256, err) != BS_OK ||
		j_u64(e, p, "size", &ch->size, err) != BS_OK ||
		j_u64(e, p, "raw_size", &ch->raw_size, err) != BS_OK ||
		j_u64(e, p, "rows", &ch->rows, err) != BS_OK)
		return BS_ERR;
	return BS_OK;
}

static int
base_from_json(json_t *o, const char *path, void *out, bs_error *err)
{
	manifest_base *b = out;
	json_t *def;
	int64_t v;
	int rc;
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
	b->chunks = j_objects(o, path, "chunks", sizeof(manifest_chunk), chunk_from_json, &b->nchunks, &rc,
						  err);
	return rc;
}

static int
segment_from_json(json_t *o, const char *path, void *out, bs_error *err)
{
	manifest_segment *s = out;

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

/* A name of the table's name history (0.3). */
static int
name_from_json(json_t *e, const char *p, void *out, bs_error *err)
{
	manifest_name *nm = out;

	if (j_lsn(e, p, "from_lsn", true, &nm->from_lsn, err) != BS_OK ||
		j_string(e, p, "schema", true, &nm->schema, err) != BS_OK ||
		j_string(e, p, "name", true, &nm->name, err) != BS_OK)
		return BS_ERR;
	return BS_OK;
}

/* A gap: a range of LSNs that the archive does not hold (gaps, schema_unknown). */
static int
gap_from_json(json_t *e, const char *p, void *out, bs_error *err)
{
	manifest_gap *g = out;

	if (j_lsn(e, p, "from", true, &g->from, err) != BS_OK ||
		j_lsn(e, p, "to", true, &g->to, err) != BS_OK)
		return BS_ERR;
	return BS_OK;
}

/* The members of a catalog's table entry (manifest_table_to_json_object). */
int
manifest_json_only_members(json_t *o, const char *path, const char *const *names, bs_error *err)
{
	const char *member;
	json_t *v;

	json_object_foreach(o, member, v)
	{
		bool known = false;

		for (int i = 0; !known && names[i]; i++)
			known = strcmp(member, names[i]) == 0;
		if (!known)
			return error_set(err, ERRCODE_DATA_CORRUPTED, "%s%shas an unknown member \"%.64s\"", path,
							 path[0] ? " " : "", member);
	}
	return BS_OK;
}

static const char *const table_members[] = {
	"relid", "schema", "name", "status", "dropped_at_lsn", "existed_to", "drop_lsn", "ddl_capture_from",
	"partition_changes", "names", "rebase_requested_at", "finding", "expired_before", "expired_time", "layouts",
	"bases", "gaps", "schema_unknown", NULL
};

/* table_only: a catalog's table entry (no format, generation, archived_to, segments; unknown
 * members refused), read as format 3 would be (gaps present). */
static int
manifest_from_json_object(json_t *root, manifest *m, bool table_only, bs_error *err)
{
	int64_t v;
	int64_t format = 3;
	json_t *arr;
	int n;
	int rc;
	char p[PATH_BUFLEN];

	if (!json_is_object(root))
		return error_set(err, ERRCODE_DATA_CORRUPTED, "not a JSON object");
	if (table_only)
	{
		if (manifest_json_only_members(root, "", table_members, err) != BS_OK)
			return BS_ERR;
	}
	else if (j_format(root, &format, err) != BS_OK)
		return BS_ERR;
	/* Format 1 has no generation: 0, below any the head can record. */
	if (!table_only && format >= 2 && j_u64(root, "", "generation", &m->generation, err) != BS_OK)
		return BS_ERR;
	if (j_int(root, "", "relid", 1, UINT32_MAX, &v, err) != BS_OK)
		return BS_ERR;
	m->relid = (uint32_t) v;
	if (j_string(root, "", "schema", true, &m->schema, err) != BS_OK ||
		j_string(root, "", "name", true, &m->name, err) != BS_OK ||
		j_string(root, "", "status", true, &m->status, err) != BS_OK ||
		j_string(root, "", "finding", false, &m->finding, err) != BS_OK ||
		(!table_only && j_lsn(root, "", "archived_to", true, &m->archived_to, err) != BS_OK))
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
		m->names = j_objects(root, "", "names", sizeof(manifest_name), name_from_json, &m->nnames, &rc, err);
		if (rc != BS_OK)
			return BS_ERR;
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

	m->layouts = j_objects(root, "", "layouts", sizeof(manifest_layout), layout_from_json, &m->nlayouts,
						   &rc, err);
	if (rc != BS_OK)
		return BS_ERR;
	m->bases = j_objects(root, "", "bases", sizeof(manifest_base), base_from_json, &m->nbases, &rc, err);
	if (rc != BS_OK)
		return BS_ERR;
	if (!table_only)
	{
		m->segments = j_objects(root, "", "segments", sizeof(manifest_segment), segment_from_json,
								&m->nsegments, &rc, err);
		if (rc != BS_OK)
			return BS_ERR;
	}
	if (format >= 2)
	{
		m->gaps = j_objects(root, "", "gaps", sizeof(manifest_gap), gap_from_json, &m->ngaps, &rc, err);
		if (rc != BS_OK)
			return BS_ERR;
	}
	/* Optional: absent in manifests written before it existed (no window then). */
	if (json_object_get(root, "schema_unknown") != NULL)
	{
		m->schema_gaps = j_objects(root, "", "schema_unknown", sizeof(manifest_gap), gap_from_json,
								   &m->nschema_gaps, &rc, err);
		if (rc != BS_OK)
			return BS_ERR;
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
	if (manifest_from_json_object(root, m, false, err) != BS_OK)
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
 * The archive head.
 */

int
archive_head_validate(const archive_head *head, bs_error *err)
{
	const archive_text_format *tf = &head->text_format;

	if (head->system_identifier == NULL)
		return bad(err, "system_identifier", "is missing");
	if (head->database == NULL)
		return bad(err, "database", "is missing");
	if (tf->timezone == NULL || tf->datestyle == NULL || tf->intervalstyle == NULL ||
		tf->bytea_output == NULL)
		return bad(err, "text_format", "is incomplete");
	if (head->format == ARCHIVE_HEAD_FORMAT_PACKS)
	{
		if (head->ntables != 0)
			return bad(err, "tables", "is not a member of a format-3 head");
		if (head->tip_seq == 0 && head->tip_sha256[0] != '\0')
			return bad(err, "tip_sha256", "must be null when tip_seq is 0");
		if (head->tip_seq > 0 && !sha256_valid(head->tip_sha256))
			return bad(err, "tip_sha256", "must be 64 lowercase hex digits");
		if (head->catalog_seq > head->tip_seq)
			return bad(err, "catalog_seq", "is above tip_seq");
	}
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

	json_object_set_new(o, "format", json_integer(head->format == ARCHIVE_HEAD_FORMAT_PACKS ? ARCHIVE_HEAD_FORMAT_PACKS
												  : MANIFEST_FORMAT));
	json_object_set_new(o, "system_identifier", json_str_or_null(head->system_identifier));
	json_object_set_new(o, "database", json_str_or_null(head->database));
	json_object_set_new(o, "flushed_lsn", manifest_json_lsn_value(head->flushed_lsn));
	json_object_set_new(o, "time", manifest_json_time_value(head->time));
	json_object_set_new(tf, "timezone", json_str_or_null(head->text_format.timezone));
	json_object_set_new(tf, "datestyle", json_str_or_null(head->text_format.datestyle));
	json_object_set_new(tf, "extra_float_digits", json_integer(head->text_format.extra_float_digits));
	json_object_set_new(tf, "intervalstyle", json_str_or_null(head->text_format.intervalstyle));
	json_object_set_new(tf, "bytea_output", json_str_or_null(head->text_format.bytea_output));
	json_object_set_new(o, "text_format", tf);
	json_object_set_new(o, "lease_token", json_u64(head->lease_token));
	if (head->format == ARCHIVE_HEAD_FORMAT_PACKS)
	{
		json_object_set_new(o, "tip_seq", json_u64(head->tip_seq));
		json_object_set_new(o, "tip_sha256", head->tip_sha256[0] ? json_string(head->tip_sha256) : json_null());
		json_object_set_new(o, "catalog_seq", json_u64(head->catalog_seq));
	}
	else
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
head_table_from_json(json_t *e, const char *p, void *out, bs_error *err)
{
	archive_head_table *t = out;
	int64_t v;

	if (j_int(e, p, "relid", 1, UINT32_MAX, &v, err) != BS_OK)
		return BS_ERR;
	t->relid = (uint32_t) v;
	if (j_u64(e, p, "generation", &t->generation, err) != BS_OK ||
		j_string(e, p, "schema", true, &t->schema, err) != BS_OK ||
		j_string(e, p, "name", true, &t->name, err) != BS_OK)
		return BS_ERR;
	return BS_OK;
}

static int
head_tables_from_json(json_t *root, archive_head *out, bs_error *err)
{
	int rc;

	if (j_u64(root, "", "lease_token", &out->lease_token, err) != BS_OK)
		return BS_ERR;
	out->tables = j_objects(root, "", "tables", sizeof(archive_head_table), head_table_from_json,
							&out->ntables, &rc, err);
	return rc;
}

/* Format 3 (doc/design/format2.md 3.3): no tables; the tip of the log and the catalog. */
static const char *const head3_members[] = {
	"format", "system_identifier", "database", "flushed_lsn", "time", "text_format", "lease_token", "tip_seq",
	"tip_sha256", "catalog_seq", NULL
};
static const char *const text_format_members[] = {
	"timezone", "datestyle", "extra_float_digits", "intervalstyle", "bytea_output", NULL
};

static int
head3_from_json(json_t *root, archive_head *out, bs_error *err)
{
	json_t *tf;
	json_t *v;

	if (manifest_json_only_members(root, "", head3_members, err) != BS_OK)
		return BS_ERR;
	tf = json_object_get(root, "text_format");
	if (manifest_json_only_members(tf, "text_format", text_format_members, err) != BS_OK)
		return BS_ERR;
	if (j_u64(root, "", "lease_token", &out->lease_token, err) != BS_OK ||
		j_u64(root, "", "tip_seq", &out->tip_seq, err) != BS_OK ||
		j_u64(root, "", "catalog_seq", &out->catalog_seq, err) != BS_OK)
		return BS_ERR;
	/* Present; null exactly when the log is empty (validated). */
	v = json_object_get(root, "tip_sha256");
	if (v == NULL)
		return bad(err, "tip_sha256", "is missing");
	if (!json_is_null(v) && j_sha(root, "", "tip_sha256", out->tip_sha256, err) != BS_OK)
		return BS_ERR;
	return BS_OK;
}

static int
head_from_json(const char *json, size_t len, bool packs, archive_head *out, bs_error *err)
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
	/* Format 3 only where the caller reads it: every other reader refuses it as newer. */
	if (packs && json_is_integer(json_object_get(root, "format")) &&
		json_integer_value(json_object_get(root, "format")) == ARCHIVE_HEAD_FORMAT_PACKS)
		v = ARCHIVE_HEAD_FORMAT_PACKS;
	else if (j_format(root, &v, err) != BS_OK)
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
	if (out->format == ARCHIVE_HEAD_FORMAT_PACKS)
	{
		if (head3_from_json(root, out, err) != BS_OK)
			goto out;
	}
	else if (out->format >= 2 && head_tables_from_json(root, out, err) != BS_OK)
		goto out;
	rc = archive_head_validate(out, err);
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
archive_head_from_json(const char *json, size_t len, archive_head *out, bs_error *err)
{
	return head_from_json(json, len, false, out, err);
}

int
archive_head_from_json_any(const char *json, size_t len, archive_head *out, bs_error *err)
{
	return head_from_json(json, len, true, out, err);
}

/*
 * The shared readers (manifest_json.h), for the pack events of doc/design/format2.md.
 */

int
manifest_json_layout(json_t *o, const char *path, manifest_layout *out, bs_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!json_is_object(o))
		return bad(err, path, "must be an object");
	return layout_from_json(o, path, out, err);
}

int
manifest_json_base(json_t *o, const char *path, manifest_base *out, bs_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!json_is_object(o))
		return bad(err, path, "must be an object");
	return base_from_json(o, path, out, err);
}

int
manifest_json_gap(json_t *o, const char *path, manifest_gap *out, bs_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!json_is_object(o))
		return bad(err, path, "must be an object");
	return gap_from_json(o, path, out, err);
}

int
manifest_json_string(json_t *o, const char *path, const char *name, bool required, char **out, bs_error *err)
{
	return j_string(o, path, name, required, out, err);
}

int
manifest_json_lsn(json_t *o, const char *path, const char *name, bool required, uint64_t *out, bs_error *err)
{
	return j_lsn(o, path, name, required, out, err);
}

int
manifest_json_time(json_t *o, const char *path, const char *name, int64_t *out, bs_error *err)
{
	return j_time(o, path, name, out, err);
}

int
manifest_json_array(json_t *o, const char *path, const char *name, json_t **arr, int *n, bs_error *err)
{
	return j_array(o, path, name, arr, n, err);
}

int
manifest_json_int(json_t *o, const char *path, const char *name, int64_t min, int64_t max, int64_t *out,
				  bs_error *err)
{
	return j_int(o, path, name, min, max, out, err);
}

int
manifest_table_from_json_object(json_t *o, manifest **out, bs_error *err)
{
	manifest *m = xcalloc(1, sizeof(manifest));

	*out = NULL;
	if (manifest_from_json_object(o, m, true, err) != BS_OK)
	{
		manifest_free(m);
		return BS_ERR;
	}
	*out = m;
	return BS_OK;
}
