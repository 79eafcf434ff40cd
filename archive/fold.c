/* fold.c — the fold (doc/design/format2.md 3.2, 5 step 3): one table's pack events and runs, in sequence order, as the in-memory manifest. */
#include "fold.h"
#include "lsn.h"
#include "manifest_json.h"
#include "replmsg.h"
#include "strbuf.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/*
 * The event kinds and their members besides kind, lsn and relid (format2.md section 5 step 3
 * is their definition).  Members not listed are refused: an event this version does not
 * understand must not be folded as if it said less.
 */
typedef enum fold_kind
{
	FK_TABLE,
	FK_LAYOUT,
	FK_BASE,
	FK_NAME,
	FK_DROP,
	FK_GAP,
	FK_GAP_CLOSED,
	FK_REBASE_REQUESTED,
	FK_EXISTED_TO,
	FK_SKIPPED,
	FK_DDL_CAPTURE_FROM,
	FK_EXPIRED,
	FK_SCHEMA_UNKNOWN,
	FK_SCHEMA_UNKNOWN_CLOSED,
	FK_PARTITION_CHANGE,
	FK_STATUS,
	FK_LAYOUT_REPLACED,
	FK_NAME_REPLACED,
	FK_COUNT
} fold_kind;

static const struct
{
	const char *name;
	const char *members[5];
} kinds[FK_COUNT] = {
	[FK_TABLE] = {"table", {"schema", "name", "status", "finding", NULL}},
	[FK_LAYOUT] = {"layout", {"layout", NULL}},
	[FK_BASE] = {"base", {"base", NULL}},
	[FK_NAME] = {"name", {"from_lsn", "schema", "name", NULL}},
	[FK_DROP] = {"drop", {"dropped_at_lsn", "drop_lsn", NULL}},
	[FK_GAP] = {"gap", {"from", "to", NULL}},
	[FK_GAP_CLOSED] = {"gap_closed", {"at", NULL}},
	[FK_REBASE_REQUESTED] = {"rebase_requested", {"at", NULL}},
	[FK_EXISTED_TO] = {"existed_to", {"existed_to", NULL}},
	[FK_SKIPPED] = {"skipped", {"finding", NULL}},
	[FK_DDL_CAPTURE_FROM] = {"ddl_capture_from", {"from", NULL}},
	[FK_EXPIRED] = {"expired", {"expired_before", "expired_time", NULL}},
	[FK_SCHEMA_UNKNOWN] = {"schema_unknown", {"from", "to", NULL}},
	[FK_SCHEMA_UNKNOWN_CLOSED] = {"schema_unknown_closed", {"at", NULL}},
	[FK_PARTITION_CHANGE] = {"partition_change", {"at", NULL}},
	[FK_STATUS] = {"status", {"status", "finding", NULL}},
	[FK_LAYOUT_REPLACED] = {"layout_replaced", {"layout", NULL}},
	[FK_NAME_REPLACED] = {"name_replaced", {"from_lsn", "schema", "name", NULL}},
};

/* One event, read and type-checked; what it means is apply_event's. */
typedef struct fold_event
{
	fold_kind kind;
	uint64_t lsn;
	char *schema;				/* table, name, name_replaced */
	char *name;
	char *status;				/* table, status */
	char *finding;				/* table, status (may be NULL), skipped */
	manifest_layout layout;		/* layout, layout_replaced */
	manifest_base base;			/* base */
	uint64_t a;					/* name, name_replaced: from_lsn; drop: dropped_at_lsn; gap, schema_unknown: from;
								 * gap_closed, rebase_requested, schema_unknown_closed,
								 * partition_change: at; existed_to; ddl_capture_from: from;
								 * expired: expired_before */
	uint64_t b;					/* drop: drop_lsn (0: null); gap, schema_unknown: to */
	int64_t time;				/* expired: expired_time */
} fold_event;

static void
event_clear(fold_event *e)
{
	free(e->schema);
	free(e->name);
	free(e->status);
	free(e->finding);
	manifest_columns_free(e->layout.ncols, e->layout.columns);
	manifest_base_clear(&e->base);
	memset(e, 0, sizeof(*e));
}

static int
bad(bs_error *err, const char *what)
{
	return error_set(err, ERRCODE_DATA_CORRUPTED, "%s", what);
}

/* Read and type-check one event (kind, lsn and relid were checked by pack_open). */
static int
event_read(const pack_event *pe, fold_event *e, bs_error *err)
{
	json_error_t jerr;
	json_t *o = json_loads(pe->json, JSON_REJECT_DUPLICATES, &jerr);
	const char *member;
	json_t *v;
	int k;
	int rc = BS_ERR;

	memset(e, 0, sizeof(*e));
	e->lsn = pe->lsn;
	if (!json_is_object(o))
	{
		json_decref(o);
		return bad(err, "is not a JSON object");
	}
	for (k = 0; k < FK_COUNT; k++)
		if (strcmp(pe->kind, kinds[k].name) == 0)
			break;
	if (k == FK_COUNT)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "has an unknown kind");
		goto out;
	}
	e->kind = (fold_kind) k;
	json_object_foreach(o, member, v)
	{
		bool known = strcmp(member, "kind") == 0 || strcmp(member, "lsn") == 0 || strcmp(member, "relid") == 0;

		for (int i = 0; !known && kinds[k].members[i]; i++)
			known = strcmp(member, kinds[k].members[i]) == 0;
		if (!known)
		{
			error_set(err, ERRCODE_DATA_CORRUPTED, "has an unknown member \"%.64s\"", member);
			goto out;
		}
	}
	switch (e->kind)
	{
		case FK_STATUS:
			if (manifest_json_string(o, "", "status", true, &e->status, err) != BS_OK ||
				manifest_json_string(o, "", "finding", false, &e->finding, err) != BS_OK)
				goto out;
			if (json_object_get(o, "finding") == NULL)
			{
				error_set(err, ERRCODE_DATA_CORRUPTED, "member \"finding\" is missing (null when none)");
				goto out;
			}
			if (strcmp(e->status, "active") != 0 && strcmp(e->status, "skipped") != 0)
			{
				bad(err, "member \"status\" must be \"active\" or \"skipped\"");
				goto out;
			}
			if (strcmp(e->status, "skipped") == 0 && e->finding == NULL)
			{
				bad(err, "member \"finding\" must be a string for status \"skipped\"");
				goto out;
			}
			break;
		case FK_TABLE:
			if (manifest_json_string(o, "", "schema", true, &e->schema, err) != BS_OK ||
				manifest_json_string(o, "", "name", true, &e->name, err) != BS_OK ||
				manifest_json_string(o, "", "status", true, &e->status, err) != BS_OK ||
				manifest_json_string(o, "", "finding", false, &e->finding, err) != BS_OK)
				goto out;
			if (json_object_get(o, "finding") == NULL)
			{
				error_set(err, ERRCODE_DATA_CORRUPTED, "member \"finding\" is missing (null when none)");
				goto out;
			}
			if (e->schema[0] == '\0' || e->name[0] == '\0')
			{
				bad(err, "has an empty schema or name");
				goto out;
			}
			if (strcmp(e->status, "active") != 0 && strcmp(e->status, "skipped") != 0)
			{
				bad(err, "member \"status\" must be \"active\" or \"skipped\"");
				goto out;
			}
			break;
		case FK_LAYOUT:
		case FK_LAYOUT_REPLACED:
			if (manifest_json_layout(json_object_get(o, "layout"), "layout", &e->layout, err) != BS_OK)
				goto out;
			break;
		case FK_BASE:
			if (manifest_json_base(json_object_get(o, "base"), "base", &e->base, err) != BS_OK)
				goto out;
			break;
		case FK_NAME:
		case FK_NAME_REPLACED:
			if (manifest_json_lsn(o, "", "from_lsn", true, &e->a, err) != BS_OK ||
				manifest_json_string(o, "", "schema", true, &e->schema, err) != BS_OK ||
				manifest_json_string(o, "", "name", true, &e->name, err) != BS_OK)
				goto out;
			if (e->schema[0] == '\0' || e->name[0] == '\0')
			{
				bad(err, "has an empty schema or name");
				goto out;
			}
			if (e->a == 0 && e->kind == FK_NAME)
			{
				bad(err, "member \"from_lsn\" must be above 0/0");
				goto out;
			}
			break;
		case FK_DROP:
			if (manifest_json_lsn(o, "", "dropped_at_lsn", true, &e->a, err) != BS_OK ||
				manifest_json_lsn(o, "", "drop_lsn", false, &e->b, err) != BS_OK)
				goto out;
			if (json_object_get(o, "drop_lsn") == NULL)
			{
				bad(err, "member \"drop_lsn\" is missing (null when unknown)");
				goto out;
			}
			if (e->b && e->b >= e->a)
			{
				bad(err, "member \"drop_lsn\" must be below dropped_at_lsn");
				goto out;
			}
			break;
		case FK_GAP:
		case FK_SCHEMA_UNKNOWN:
			{
				manifest_gap g;

				if (manifest_json_gap(o, "", &g, err) != BS_OK)
					goto out;
				if (g.to <= g.from)
				{
					bad(err, "member \"to\" is not above from");
					goto out;
				}
				e->a = g.from;
				e->b = g.to;
			}
			break;
		case FK_GAP_CLOSED:
		case FK_REBASE_REQUESTED:
		case FK_SCHEMA_UNKNOWN_CLOSED:
		case FK_PARTITION_CHANGE:
			if (manifest_json_lsn(o, "", "at", e->kind != FK_REBASE_REQUESTED, &e->a, err) != BS_OK)
				goto out;
			if (e->kind == FK_PARTITION_CHANGE && e->a == 0)
			{
				bad(err, "member \"at\" must be above 0/0");
				goto out;
			}
			if (json_object_get(o, "at") == NULL)
			{
				bad(err, "member \"at\" is missing (null: the request is met)");
				goto out;
			}
			break;
		case FK_EXISTED_TO:
			if (manifest_json_lsn(o, "", "existed_to", true, &e->a, err) != BS_OK)
				goto out;
			break;
		case FK_SKIPPED:
			if (manifest_json_string(o, "", "finding", true, &e->finding, err) != BS_OK)
				goto out;
			break;
		case FK_DDL_CAPTURE_FROM:
			if (manifest_json_lsn(o, "", "from", true, &e->a, err) != BS_OK)
				goto out;
			break;
		case FK_EXPIRED:
			if (manifest_json_lsn(o, "", "expired_before", true, &e->a, err) != BS_OK ||
				manifest_json_time(o, "", "expired_time", &e->time, err) != BS_OK)
				goto out;
			if (e->a == 0)
			{
				bad(err, "member \"expired_before\" must be above 0/0");
				goto out;
			}
			break;
		case FK_COUNT:
			break;
	}
	rc = BS_OK;
out:
	json_decref(o);
	if (rc != BS_OK)
		event_clear(e);
	return rc;
}

/* One table's fold so far. */
typedef struct fold_state
{
	uint32_t relid;
	manifest *m;				/* NULL until the table's first sight */
	uint64_t last_lsn;			/* of the table's last event */
} fold_state;

/* status: the table's status (active or skipped) and finding, set together. */
static int
apply_status(manifest *m, const fold_event *e)
{
	bool same_finding = (m->finding == NULL && e->finding == NULL) ||
		(m->finding && e->finding && strcmp(m->finding, e->finding) == 0);

	if (strcmp(m->status, e->status) == 0 && same_finding)
		return BS_ERR;
	free(m->status);
	m->status = xstrdup(e->status);
	free(m->finding);
	m->finding = e->finding ? xstrdup(e->finding) : NULL;
	return BS_OK;
}

/*
 * layout_replaced: the layout of the same id, changed in place where records do not see it (a
 * column's not_null, missing or missing_unknown; from_lsn lowered, not past the layout before
 * it).  Its replident and columns' names, types, typmods and keys stay: runs already decoded
 * by it keep their meaning.
 */
static int
apply_layout_replaced(manifest *m, fold_event *e, bs_error *err)
{
	manifest_layout *l = NULL;
	manifest_column *cols;
	json_t *x,
			   *y;
	bool same;
	int i;
	char l1[LSN_BUFLEN];

	for (i = 0; i < m->nlayouts && l == NULL; i++)
		if (m->layouts[i].id == e->layout.id)
			l = &m->layouts[i];
	if (l == NULL)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "replaces layout %u, which no event defined", e->layout.id);
	i--;
	if (l->replident != e->layout.replident ||
		!manifest_columns_equal(l->ncols, l->columns, e->layout.ncols, e->layout.columns))
		return error_set(err, ERRCODE_DATA_CORRUPTED, "changes how records of layout %u decode (its replident or "
						 "its columns' names, types, typmods or keys)", l->id);
	if (e->layout.from_lsn > l->from_lsn)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "raises layout %u's from_lsn from %s (a layout's start only "
						 "moves earlier)", l->id, lsn_format(l->from_lsn, l1));
	if (i > 0 && e->layout.from_lsn < m->layouts[i - 1].from_lsn)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "moves layout %u's from_lsn below layout %u's, %s (layouts stay "
						 "in from_lsn order)", l->id, m->layouts[i - 1].id,
						 lsn_format(m->layouts[i - 1].from_lsn, l1));
	x = manifest_layout_to_json_object(l);
	y = manifest_layout_to_json_object(&e->layout);
	same = json_equal(x, y);
	json_decref(x);
	json_decref(y);
	if (same)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "changes nothing in layout %u", l->id);
	/* The event's columns become the layout's; the old ones are freed with the event. */
	cols = l->columns;
	l->columns = e->layout.columns;
	e->layout.columns = cols;
	l->from_lsn = e->layout.from_lsn;
	return BS_OK;
}

/*
 * name_replaced: the names history holds schema.name at from_lsn, exactly: the entry listed
 * there replaced, or one inserted in LSN order (what manifest_add_name does besides appending
 * a rename).  A history not started yet starts from the table's name at 0/0, as
 * manifest_add_name starts it.  The current name is the newest entry's.
 */
static int
apply_name_replaced(manifest *m, const fold_event *e, bs_error *err)
{
	bool started = m->nnames > 0;
	int i = 0;

	if (!started)
	{
		m->names = xcalloc(1, sizeof(manifest_name));
		m->names[0].schema = xstrdup(m->schema);
		m->names[0].name = xstrdup(m->name);
		m->nnames = 1;
	}
	while (i < m->nnames && m->names[i].from_lsn < e->a)
		i++;
	if (i < m->nnames && m->names[i].from_lsn == e->a)
	{
		if (started && strcmp(m->names[i].schema, e->schema) == 0 && strcmp(m->names[i].name, e->name) == 0)
			return bad(err, "changes nothing (the names history has that name at from_lsn)");
		free(m->names[i].schema);
		free(m->names[i].name);
	}
	else
	{
		m->names = xrealloc(m->names, (size_t) (m->nnames + 1) * sizeof(manifest_name));
		memmove(&m->names[i + 1], &m->names[i], (size_t) (m->nnames - i) * sizeof(manifest_name));
		m->nnames++;
		m->names[i].from_lsn = e->a;
	}
	m->names[i].schema = xstrdup(e->schema);
	m->names[i].name = xstrdup(e->name);
	free(m->schema);
	free(m->name);
	m->schema = xstrdup(m->names[m->nnames - 1].schema);
	m->name = xstrdup(m->names[m->nnames - 1].name);
	return BS_OK;
}

/*
 * expired: what expire_apply (archive/expire.c) does with its plan.  expired_before is the LSN
 * of the oldest base copy kept (expire keeps from a base, the newest always); the bases below
 * it go, and the segments ending at or below it (a commit below a base is in the base).
 * Layouts stay: expire removes none.
 */
static int
apply_expired(manifest *m, const fold_event *e, bs_error *err)
{
	int k = 0,
		n = 0;

	if (e->a < m->expired_before)
		return bad(err, "member \"expired_before\" goes below the table's previous one");
	if (m->nbases == 0)
		return bad(err, "expires a table without a base copy (expire keeps from a base)");
	while (k < m->nbases && m->bases[k].lsn < e->a)
		k++;
	if (k == m->nbases || m->bases[k].lsn != e->a)
		return bad(err, "member \"expired_before\" is no base copy's LSN (expire keeps from a base, the newest "
				   "always)");
	for (int i = 0; i < k; i++)
		manifest_base_clear(&m->bases[i]);
	memmove(m->bases, m->bases + k, (size_t) (m->nbases - k) * sizeof(manifest_base));
	m->nbases -= k;
	for (int i = 0; i < m->nsegments; i++)
	{
		if (m->segments[i].last_end_lsn <= e->a)
			free(m->segments[i].key);
		else
			m->segments[n++] = m->segments[i];
	}
	m->nsegments = n;
	m->expired_before = e->a;
	m->expired_time = e->time;
	return BS_OK;
}

/* Apply one event of the table (its LSN order checked by the caller). */
static int
event_apply(fold_state *st, fold_event *e, bs_error *err)
{
	manifest *m = st->m;
	char l1[LSN_BUFLEN];

	if (e->kind == FK_TABLE)
	{
		if (m != NULL)
			return bad(err, "is a second first sight of the table");
		m = st->m = manifest_new(st->relid, e->schema, e->name);
		free(m->status);
		m->status = xstrdup(e->status);
		m->finding = e->finding ? xstrdup(e->finding) : NULL;
		return BS_OK;
	}
	if (m == NULL)
		return bad(err, "comes before the table's first sight");
	/* A dropped table's history is closed; only retention still speaks of it. */
	if (strcmp(m->status, "dropped") == 0 && e->kind != FK_EXPIRED)
		return bad(err, "comes after the table's drop");
	switch (e->kind)
	{
		case FK_LAYOUT:
			if (manifest_layout_by_id(m, e->layout.id) != NULL)
				return error_set(err, ERRCODE_DATA_CORRUPTED, "reuses layout id %u", e->layout.id);
			manifest_insert_layout(m, e->layout.id, e->layout.from_lsn, e->layout.replident, e->layout.ncols,
								   e->layout.columns);
			break;
		case FK_BASE:
			if (m->nbases > 0 && e->base.lsn <= m->bases[m->nbases - 1].lsn)
				return error_set(err, ERRCODE_DATA_CORRUPTED, "has a base at %s, not above the previous base's",
								 lsn_format(e->base.lsn, l1));
			if (manifest_layout_by_id(m, e->base.layout_id) == NULL)
				return error_set(err, ERRCODE_DATA_CORRUPTED, "has a base of layout %u, which no event defined",
								 e->base.layout_id);
			manifest_add_base(m, &e->base);
			break;
		case FK_NAME:
			if (m->nnames > 0 && e->a <= m->names[m->nnames - 1].from_lsn)
				return bad(err, "member \"from_lsn\" is not above the previous name's");
			manifest_add_name(m, e->a, e->schema, e->name);
			break;
		case FK_DROP:
			if (m->existed_to >= e->a)
				return bad(err, "member \"dropped_at_lsn\" is not above the table's existed_to");
			free(m->status);
			m->status = xstrdup("dropped");
			m->dropped_at_lsn = e->a;
			m->drop_lsn = e->b;
			/* As format 2: every change of the table below the drop is in the runs. */
			if (m->archived_to < e->a)
				m->archived_to = e->a;
			break;
		case FK_GAP:
			if (manifest_open_gap(m) != NULL)
				return bad(err, "opens a gap while one is open");
			if (m->ngaps > 0 && e->a < m->gaps[m->ngaps - 1].to)
				return bad(err, "member \"from\" is below the previous gap's end");
			manifest_add_gap(m, e->a, e->b);
			break;
		case FK_GAP_CLOSED:
			{
				manifest_gap *g = manifest_open_gap(m);

				if (g == NULL)
					return bad(err, "closes a gap while none is open");
				if (e->a <= g->from)
					return bad(err, "member \"at\" is not above the open gap's start");
				manifest_close_open_gap(m, e->a);
			}
			break;
		case FK_REBASE_REQUESTED:
			m->rebase_requested_at = e->a;
			break;
		case FK_SCHEMA_UNKNOWN:
			/* Merged with the windows it touches, as format 2 records them (a base copy's
			 * window may reach into an open one); an open one takes no second open one. */
			if (e->b == MANIFEST_GAP_OPEN && manifest_open_schema_gap(m) != NULL)
				return bad(err, "opens a schema_unknown window while one is open");
			manifest_add_schema_gap(m, e->a, e->b);
			break;
		case FK_SCHEMA_UNKNOWN_CLOSED:
			{
				manifest_gap *g = manifest_open_schema_gap(m);

				if (g == NULL)
					return bad(err, "closes a schema_unknown window while none is open");
				if (e->a <= g->from)
					return bad(err, "member \"at\" is not above the open window's start");
				manifest_close_open_schema_gap(m, e->a);
			}
			break;
		case FK_PARTITION_CHANGE:
			if (m->npartition_changes > 0 && e->a <= m->partition_changes[m->npartition_changes - 1])
				return bad(err, "member \"at\" is not above the table's previous partition change");
			manifest_add_partition_change(m, e->a);
			break;
		case FK_EXISTED_TO:
			if (e->a < m->existed_to)
				return bad(err, "member \"existed_to\" goes below the table's previous one");
			m->existed_to = e->a;
			break;
		case FK_SKIPPED:
			free(m->status);
			m->status = xstrdup("skipped");
			free(m->finding);
			m->finding = xstrdup(e->finding);
			break;
		case FK_DDL_CAPTURE_FROM:
			m->ddl_capture_from = e->a;
			break;
		case FK_EXPIRED:
			return apply_expired(m, e, err);
		case FK_STATUS:
			if (apply_status(m, e) != BS_OK)
				return bad(err, "changes neither the table's status nor its finding");
			break;
		case FK_LAYOUT_REPLACED:
			return apply_layout_replaced(m, e, err);
		case FK_NAME_REPLACED:
			return apply_name_replaced(m, e, err);
		case FK_TABLE:
		case FK_COUNT:
			break;
	}
	return BS_OK;
}

static int
pack_damage(bs_error *err, const pack_index *idx, uint32_t relid)
{
	if (idx->seq_last != idx->seq_first)
		return error_prefix(err, "pack \"%s\" (seq %" PRIu64 "-%" PRIu64 "), relid %u", idx->key ? idx->key : "?",
							idx->seq_first, idx->seq_last, relid);
	return error_prefix(err, "pack \"%s\" (seq %" PRIu64 "), relid %u", idx->key ? idx->key : "?",
						idx->seq_first, relid);
}

static int
event_damage(bs_error *err, const pack_index *idx, int i)
{
	char l1[LSN_BUFLEN];

	error_prefix(err, "event %d (\"%s\" at %s)", i, idx->events[i].kind, lsn_format(idx->events[i].lsn, l1));
	return pack_damage(err, idx, idx->events[i].relid);
}

/* The pack-wide rules on events: LSN order, no archive-wide kind yet. */
static int
check_event_order(const pack_index *idx, int i, bs_error *err)
{
	char l1[LSN_BUFLEN];

	if (i > 0 && idx->events[i].lsn < idx->events[i - 1].lsn)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "goes back in LSN order (the event before it is at %s)",
				  lsn_format(idx->events[i - 1].lsn, l1));
		return event_damage(err, idx, i);
	}
	if (idx->events[i].relid == 0)
	{
		bad(err, "is archive-wide: no kind is, in this version");
		return event_damage(err, idx, i);
	}
	return BS_OK;
}

int
fold_check_pack(const pack_index *idx, bs_error *err)
{
	for (int i = 0; i < idx->nevents; i++)
	{
		fold_event e;

		if (check_event_order(idx, i, err) != BS_OK)
			return BS_ERR;
		if (event_read(&idx->events[i], &e, err) != BS_OK)
			return event_damage(err, idx, i);
		event_clear(&e);
	}
	return BS_OK;
}

void
fold_run_segment(const pack_index *idx, const pack_run *r, manifest_segment *seg)
{
	memset(seg, 0, sizeof(*seg));
	seg->source = MANIFEST_SEGMENT_PACK;
	seg->key = idx->key;
	seg->pack_seq = idx->seq_first;
	seg->raw_offset = r->raw_offset;
	seg->raw_size = r->raw_len;
	seg->first_lsn = r->first_lsn;
	seg->last_end_lsn = r->last_end_lsn;
	seg->first_time = replmsg_pgtime_to_unix(r->first_time);
	seg->last_time = replmsg_pgtime_to_unix(r->last_time);
	seg->records = r->records;
}

/* The table's run in idx, as a segment: inside the pack's seal range [prev_seal, seal_lsn]. */
static int
fold_run(fold_state *st, const pack_index *idx, uint64_t prev_seal, bool *has_run, bs_error *err)
{
	const pack_run *r = pack_find_run(idx, st->relid);
	manifest_segment seg;
	char l1[LSN_BUFLEN],
		l2[LSN_BUFLEN],
		l3[LSN_BUFLEN],
		l4[LSN_BUFLEN];

	*has_run = r != NULL;
	if (r == NULL)
		return BS_OK;
	if (st->m == NULL)
		bad(err, "has a run but no first sight");
	else if (strcmp(st->m->status, "dropped") == 0)
		bad(err, "has a run after the table's drop");
	else if (r->first_lsn < prev_seal || r->last_end_lsn > idx->seal_lsn)
		error_set(err, ERRCODE_DATA_CORRUPTED, "has a run (%s to %s) outside the pack's seal range (%s to %s)",
				  lsn_format(r->first_lsn, l1), lsn_format(r->last_end_lsn, l2), lsn_format(prev_seal, l3),
				  lsn_format(idx->seal_lsn, l4));
	else
	{
		fold_run_segment(idx, r, &seg);
		manifest_add_segment(st->m, &seg);
		return BS_OK;
	}
	return pack_damage(err, idx, st->relid);
}

/* One pack's share of the fold: the table's events, its run, archived_to. */
static int
fold_pack(fold_state *st, const pack_index *idx, uint64_t prev_seal, bs_error *err)
{
	manifest *m;
	bool has_run;
	char l1[LSN_BUFLEN];

	for (int i = 0; i < idx->nevents; i++)
	{
		const pack_event *pe = &idx->events[i];
		fold_event e;
		int rc;

		if (check_event_order(idx, i, err) != BS_OK)
			return BS_ERR;
		if (pe->relid != st->relid)
			continue;
		if (pe->lsn < st->last_lsn)
		{
			error_set(err, ERRCODE_DATA_CORRUPTED, "goes back in LSN order (the table's previous event is at %s)",
					  lsn_format(st->last_lsn, l1));
			return event_damage(err, idx, i);
		}
		st->last_lsn = pe->lsn;
		if (event_read(pe, &e, err) != BS_OK)
			return event_damage(err, idx, i);
		rc = event_apply(st, &e, err);
		event_clear(&e);
		if (rc != BS_OK)
			return event_damage(err, idx, i);
	}
	if (fold_run(st, idx, prev_seal, &has_run, err) != BS_OK)
		return BS_ERR;
	/* The seal vouches for every change below it of an active table the archive follows:
	 * one with a base (or records in this pack) and no open gap.  A dropped table's ends at
	 * its drop, a skipped table's and one in an open gap where they were. */
	m = st->m;
	if (m && strcmp(m->status, "active") == 0 && manifest_open_gap(m) == NULL && (m->nbases > 0 || has_run) &&
		m->archived_to < idx->seal_lsn)
		m->archived_to = idx->seal_lsn;
	return BS_OK;
}

int
fold_table(uint32_t relid, const pack_index *const *packs, int npacks, manifest **out, bs_error *err)
{
	return fold_table_from(relid, NULL, packs, npacks, out, NULL, err);
}

int
fold_table_from(uint32_t relid, fold_start *start, const pack_index *const *packs, int npacks, manifest **out,
				uint64_t *last_event_lsn, bs_error *err)
{
	fold_state st;
	uint64_t seq_from = start ? start->seq + 1 : npacks > 0 ? packs[0]->seq_first : 0;
	uint64_t seq_to = npacks > 0 ? packs[npacks - 1]->seq_last : start ? start->seq : 0;
	char l1[LSN_BUFLEN],
		l2[LSN_BUFLEN];

	*out = NULL;
	memset(&st, 0, sizeof(st));
	st.relid = relid;
	if (start)
	{
		st.m = start->m;
		st.last_lsn = start->last_event_lsn;
		start->m = NULL;
	}
	if (relid == 0)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "relid 0 is no table");
		goto out;
	}
	if (st.m && st.m->relid != relid)
	{
		error_set(err, ERRCODE_INVALID_PARAMETER, "relid %u: the fold starts from the state of relid %u", relid,
				  st.m->relid);
		goto out;
	}
	for (int p = 0; p < npacks; p++)
	{
		const pack_index *idx = packs[p];
		uint64_t prev_seal = p > 0 ? packs[p - 1]->seal_lsn : start ? start->seal_lsn : 0;

		if (p > 0 && idx->seq_first != packs[p - 1]->seq_last + 1)
		{
			error_set(err, ERRCODE_DATA_CORRUPTED, "does not follow pack seq %" PRIu64 "-%" PRIu64
					  " (sequence numbers must be contiguous)", packs[p - 1]->seq_first, packs[p - 1]->seq_last);
			goto fail;
		}
		if (p == 0 && start && idx->seq_first != start->seq + 1)
		{
			error_set(err, ERRCODE_DATA_CORRUPTED, "does not follow seq %" PRIu64 ", where the fold starts"
					  " (sequence numbers must be contiguous)", start->seq);
			goto fail;
		}
		/* The chain (3.6): the first pack after the start names the start's pack. */
		if (p == 0 && start && start->sha256 && strcmp(idx->prev, start->sha256) != 0)
		{
			error_set(err, ERRCODE_DATA_CORRUPTED, "names %s as its predecessor's SHA-256, but pack seq %" PRIu64
					  " has %s (the chain is broken)", idx->prev[0] ? idx->prev : "none", start->seq,
					  start->sha256);
			goto fail;
		}
		if (idx->seal_lsn < prev_seal)
		{
			error_set(err, ERRCODE_DATA_CORRUPTED, "has seal LSN %s, below the previous pack's %s",
					  lsn_format(idx->seal_lsn, l1), lsn_format(prev_seal, l2));
			goto fail;
		}
		if (fold_pack(&st, idx, prev_seal, err) != BS_OK)
			goto out;
		continue;
fail:
		pack_damage(err, idx, relid);
		goto out;
	}
	if (st.m == NULL)
		return error_set(err, ERRCODE_NOT_FOUND, "relid %u: no pack of seq %" PRIu64 " to %" PRIu64 " shows the table",
						 relid, seq_from, seq_to);
	if (manifest_validate(st.m, err) != BS_OK)
	{
		error_prefix(err, "relid %u: the fold of packs seq %" PRIu64 " to %" PRIu64 " is not a valid manifest", relid,
					 seq_from, seq_to);
		goto out;
	}
	*out = st.m;
	if (last_event_lsn)
		*last_event_lsn = st.last_lsn;
	return BS_OK;
out:
	manifest_free(st.m);
	return BS_ERR;
}
