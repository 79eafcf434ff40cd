/* mdelta.c — a table's pack events from the change of its in-memory manifest between two seals (doc/design/format2.md 5 step 4a). */
#include "mdelta.h"
#include "fold.h"
#include "isotime.h"
#include "lsn.h"
#include "manifest_json.h"
#include "pack.h"
#include "strbuf.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Events are gathered with a sort key (the LSN the event stands for) and put in order: the
 * first sight first; then by key, and at equal keys in the order below (what an event needs
 * comes before it: a layout before the base of it, a base before the gap it closes); then the
 * drop (after it the fold takes only "expired"); then the expiry.  LSNs are the keys raised
 * to the running maximum (from lsn_floor), so the list never goes back.
 */
enum
{
	R_TABLE,
	R_NAME,
	R_LAYOUT_REPLACED,
	R_LAYOUT,
	R_BASE,
	R_GAP_CLOSED,
	R_SCHEMA_UNKNOWN_CLOSED,
	R_REBASE_REQUESTED,
	R_GAP,
	R_SCHEMA_UNKNOWN,
	R_PARTITION_CHANGE,
	R_DDL_CAPTURE_FROM,
	R_EXISTED_TO,
	R_SKIPPED,
	R_STATUS,
	R_DROP,
	R_EXPIRED
};

typedef struct pending
{
	int phase;					/* 0 first sight, 1 the rest, 2 drop, 3 expired */
	uint64_t key;
	int rank;
	int seq;					/* the order of gathering, last tie-break */
	const char *kind;
	json_t *members;			/* the members besides kind, lsn, relid */
} pending;

typedef struct gather
{
	pending *v;
	int n;
	int cap;
} gather;

static void
push(gather *g, int rank, uint64_t key, const char *kind, json_t *members)
{
	pending *p;

	if (g->n == g->cap)
	{
		g->cap = g->cap ? g->cap * 2 : 16;
		g->v = xrealloc(g->v, (size_t) g->cap * sizeof(pending));
	}
	p = &g->v[g->n];
	p->phase = rank == R_TABLE ? 0 : rank == R_DROP ? 2 : rank == R_EXPIRED ? 3 : 1;
	p->key = key;
	p->rank = rank;
	p->seq = g->n;
	p->kind = kind;
	p->members = members;
	g->n++;
}

static void
gather_free(gather *g)
{
	for (int i = 0; i < g->n; i++)
		json_decref(g->v[i].members);
	free(g->v);
	memset(g, 0, sizeof(*g));
}

static int
pending_cmp(const void *a, const void *b)
{
	const pending *x = a,
			   *y = b;

	if (x->phase != y->phase)
		return x->phase < y->phase ? -1 : 1;
	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static json_t *
str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static bool
str_eq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* An event with one LSN member (or null for 0 when nullable). */
static void
push_lsn(gather *g, int rank, uint64_t key, const char *kind, const char *member, uint64_t v, bool nullable)
{
	json_t *o = json_object();

	json_object_set_new(o, member, nullable && v == 0 ? json_null() : manifest_json_lsn_value(v));
	push(g, rank, key, kind, o);
}

static void
push_window(gather *g, int rank, const char *kind, uint64_t from, uint64_t to)
{
	manifest_gap w = {from, to};

	push(g, rank, from, kind, manifest_gap_to_json_object(&w));
}

static int
refuse(bs_error *err, uint32_t relid, const char *fmt, const char *detail)
{
	return error_set(err, ERRCODE_INTERNAL, "relid %u: after is not reachable from before by events: %s%s", relid,
					 fmt, detail ? detail : "");
}

/* The table's first sight, with its first name. */
static void
first_sight(gather *g, const manifest *a)
{
	json_t *o = json_object();
	bool dropped = strcmp(a->status, "dropped") == 0;

	json_object_set_new(o, "schema", json_string(a->nnames > 0 ? a->names[0].schema : a->schema));
	json_object_set_new(o, "name", json_string(a->nnames > 0 ? a->names[0].name : a->name));
	/* A table seen and dropped in one delta: it was active (or skipped, with its finding). */
	json_object_set_new(o, "status", json_string(dropped ? (a->finding ? "skipped" : "active") : a->status));
	json_object_set_new(o, "finding", str_or_null(a->finding));
	push(g, R_TABLE, 0, "table", o);
}

static void
push_name(gather *g, const char *kind, const manifest_name *n)
{
	json_t *o = json_object();

	json_object_set_new(o, "from_lsn", manifest_json_lsn_value(n->from_lsn));
	json_object_set_new(o, "schema", json_string(n->schema));
	json_object_set_new(o, "name", json_string(n->name));
	push(g, R_NAME, n->from_lsn, kind, o);
}

static bool
name_eq(const manifest_name *x, const manifest_name *y)
{
	return str_eq(x->schema, y->schema) && str_eq(x->name, y->name);
}

/*
 * The names history.  manifest_add_name appends a rename, or replaces the entry at an LSN
 * already listed, or inserts one before the newest: entries are never removed.  A rename
 * after every entry of before is a "name" event (unless it repeats the entry before it, which
 * manifest_add_name would not add); anything else, "name_replaced".
 */
static int
names_delta(gather *g, const manifest *b, const manifest *a, bs_error *err)
{
	manifest_name implicit;
	const manifest_name *bn;
	int nb;
	uint64_t b_last;
	bool pushed = false;
	char msg[256];

	if (a->nnames == 0)
	{
		if (b && (b->nnames > 0 || !str_eq(b->schema, a->schema) || !str_eq(b->name, a->name)))
			return refuse(err, a->relid, b->nnames > 0 ? "names history rewritten: after has none" :
						  "schema and name changed without a names history", NULL);
		return BS_OK;
	}
	/* Before's history; none: the name it starts from at 0/0 (the first sight's for a new table). */
	if (b && b->nnames > 0)
	{
		bn = b->names;
		nb = b->nnames;
	}
	else
	{
		implicit.from_lsn = 0;
		implicit.schema = b ? b->schema : a->names[0].schema;
		implicit.name = b ? b->name : a->names[0].name;
		bn = &implicit;
		nb = 1;
	}
	b_last = bn[nb - 1].from_lsn;
	for (int i = 0, j = 0; i < nb; i++)
	{
		while (j < a->nnames && a->names[j].from_lsn < bn[i].from_lsn)
			j++;
		if (j == a->nnames || a->names[j].from_lsn != bn[i].from_lsn)
		{
			snprintf(msg, sizeof(msg), "names[%d] is not in after (entries are replaced, never removed)", i);
			return refuse(err, a->relid, "names history rewritten: ", msg);
		}
	}
	for (int j = 0; j < a->nnames; j++)
	{
		const manifest_name *x = &a->names[j];
		const manifest_name *was = NULL;

		for (int i = 0; i < nb && was == NULL; i++)
			if (bn[i].from_lsn == x->from_lsn)
				was = &bn[i];
		if (was && name_eq(was, x))
			continue;
		pushed = true;
		if (was == NULL && x->from_lsn > b_last && j > 0 && !name_eq(&a->names[j - 1], x))
			push_name(g, "name", x);
		else
			push_name(g, "name_replaced", x);
	}
	/* A history started with no other change of it (the fold's name_replaced starts it). */
	if (!pushed && bn == &implicit)
		push_name(g, "name_replaced", &a->names[0]);
	return BS_OK;
}

/* New layouts, and before's replaced in place (the fold's layout_replaced says what may change). */
static int
layouts_delta(gather *g, const manifest *b, const manifest *a, bs_error *err)
{
	char msg[128];

	for (int i = 0; b && i < b->nlayouts; i++)
	{
		const manifest_layout *la = manifest_layout_by_id(a, b->layouts[i].id);
		json_t *x,
				   *y;
		bool same;

		snprintf(msg, sizeof(msg), "layout %u", b->layouts[i].id);
		if (la == NULL)
			return refuse(err, a->relid, msg, " is not in after (no event removes a layout; expire removes none)");
		x = manifest_layout_to_json_object(&b->layouts[i]);
		y = manifest_layout_to_json_object(la);
		same = json_equal(x, y);
		json_decref(x);
		if (same)
		{
			json_decref(y);
			continue;
		}
		x = json_object();
		json_object_set_new(x, "layout", y);
		push(g, R_LAYOUT_REPLACED, la->from_lsn, "layout_replaced", x);
	}
	for (int i = 0; i < a->nlayouts; i++)
	{
		json_t *o;

		if (b && manifest_layout_by_id(b, a->layouts[i].id) != NULL)
			continue;
		o = json_object();
		json_object_set_new(o, "layout", manifest_layout_to_json_object(&a->layouts[i]));
		push(g, R_LAYOUT, a->layouts[i].from_lsn, "layout", o);
	}
	return BS_OK;
}

static int
bases_delta(gather *g, const manifest *b, const manifest *a, uint64_t *last_new_base, bs_error *err)
{
	int nb = b ? b->nbases : 0;
	int gone = 0;
	char msg[128];
	char l1[LSN_BUFLEN];

	*last_new_base = 0;
	/* The bases an expiry removed: those below after's expired_before (the fold's expired
	 * event removes them, as expire_apply did). */
	while (gone < nb && b->bases[gone].lsn < a->expired_before)
		gone++;
	for (int i = gone; i < nb; i++)
	{
		json_t *x = manifest_base_to_json_object(&b->bases[i]);
		json_t *y = i - gone < a->nbases ? manifest_base_to_json_object(&a->bases[i - gone]) : NULL;
		bool same = x && y && json_equal(x, y);
		bool moved = false;

		json_decref(x);
		json_decref(y);
		if (same)
			continue;
		for (int j = 0; j < a->nbases; j++)
			moved |= a->bases[j].lsn == b->bases[i].lsn;
		snprintf(msg, sizeof(msg), "bases[%d] (at %s)", i, lsn_format(b->bases[i].lsn, l1));
		if (moved)
			return refuse(err, a->relid, msg, " changed in place or moved");
		return refuse(err, a->relid, msg, " is not in after (only an expiry removes bases: those below "
					  "expired_before)");
	}
	for (int i = nb - gone; i < a->nbases; i++)
	{
		const manifest_layout *l = manifest_layout_by_id(a, a->bases[i].layout_id);
		uint64_t key = a->bases[i].lsn;
		json_t *o = json_object();
		json_t *bo = manifest_base_to_json_object(&a->bases[i]);

		if (bo == NULL)
		{
			json_decref(o);
			snprintf(msg, sizeof(msg), "bases[%d]", i);
			return error_set(err, ERRCODE_INVALID_PARAMETER, "relid %u: %s has a definition that is not a JSON "
							 "object", a->relid, msg);
		}
		/* After the layout it is of, when that one is new too (positions lie otherwise). */
		if (l && (b == NULL || manifest_layout_by_id(b, l->id) == NULL) && l->from_lsn > key)
			key = l->from_lsn;
		json_object_set_new(o, "base", bo);
		push(g, R_BASE, key, "base", o);
		*last_new_base = key;
	}
	return BS_OK;
}

/* The gaps (the fold: no open gap while one is open, none below the previous one's end). */
static int
gaps_delta(gather *g, const manifest *b, const manifest *a, bs_error *err)
{
	int nb = b ? b->ngaps : 0;
	int k = 0;
	char msg[128];

	while (k < nb && k < a->ngaps && b->gaps[k].from == a->gaps[k].from && b->gaps[k].to == a->gaps[k].to)
		k++;
	if (k < nb)
	{
		const manifest_gap *gb = &b->gaps[k];

		snprintf(msg, sizeof(msg), "gaps[%d]", k);
		if (k != nb - 1 || k >= a->ngaps || a->gaps[k].from != gb->from ||
			(gb->to != MANIFEST_GAP_OPEN && a->gaps[k].to <= gb->to))
			return refuse(err, a->relid, msg, " differs, not by its closing or its extension");
		if (gb->to == MANIFEST_GAP_OPEN)
			push_lsn(g, R_GAP_CLOSED, a->gaps[k].to, "gap_closed", "at", a->gaps[k].to, false);
		else
			/* A gap from its end: merged into it, as manifest_add_gap merges what it touches. */
			push_window(g, R_GAP, "gap", gb->to, a->gaps[k].to);
		k++;
	}
	for (; k < a->ngaps; k++)
		push_window(g, R_GAP, "gap", a->gaps[k].from, a->gaps[k].to);
	return BS_OK;
}

/* The schema_unknown windows (merged by the fold with the windows they touch). */
static int
schema_windows_delta(gather *g, const manifest *b, const manifest *a, bs_error *err)
{
	int nb = b ? b->nschema_gaps : 0;
	const manifest_gap *open_b = nb > 0 && b->schema_gaps[nb - 1].to == MANIFEST_GAP_OPEN ? &b->schema_gaps[nb - 1] :
		NULL;
	char msg[128];
	char l1[LSN_BUFLEN];

	/* Every window of before lies in one of after (windows only grow), but the open one may be closed. */
	for (int i = 0; i < nb; i++)
	{
		const manifest_gap *w = &b->schema_gaps[i];
		bool in = false;

		for (int j = 0; j < a->nschema_gaps && !in; j++)
			in = a->schema_gaps[j].from <= w->from &&
				(w == open_b ? a->schema_gaps[j].to > w->from : w->to <= a->schema_gaps[j].to);
		if (!in)
		{
			snprintf(msg, sizeof(msg), "schema_unknown window from %s", lsn_format(w->from, l1));
			return refuse(err, a->relid, msg, " is not within a window of after");
		}
	}
	for (int j = 0; j < a->nschema_gaps; j++)
	{
		const manifest_gap *w = &a->schema_gaps[j];
		bool same = false;

		for (int i = 0; i < nb && !same; i++)
			same = b->schema_gaps[i].from == w->from && b->schema_gaps[i].to == w->to;
		if (same)
			continue;
		if (open_b && w->from <= open_b->from && open_b->from < w->to)
		{
			/* The window before's open one is in: reached into from below, then closed. */
			if (w->from < open_b->from)
				push_window(g, R_SCHEMA_UNKNOWN, "schema_unknown", w->from, open_b->from);
			if (w->to != MANIFEST_GAP_OPEN)
				push_lsn(g, R_SCHEMA_UNKNOWN_CLOSED, w->to, "schema_unknown_closed", "at", w->to, false);
		}
		else
			push_window(g, R_SCHEMA_UNKNOWN, "schema_unknown", w->from, w->to);
	}
	return BS_OK;
}

static int
partition_delta(gather *g, const manifest *b, const manifest *a, bs_error *err)
{
	int nb = b ? b->npartition_changes : 0;
	char msg[128];

	for (int i = 0; i < nb; i++)
		if (i >= a->npartition_changes || a->partition_changes[i] != b->partition_changes[i])
		{
			snprintf(msg, sizeof(msg), "partition_changes[%d]", i);
			return refuse(err, a->relid, msg, " removed or changed (only new ones are events)");
		}
	for (int i = nb; i < a->npartition_changes; i++)
		push_lsn(g, R_PARTITION_CHANGE, a->partition_changes[i], "partition_change", "at", a->partition_changes[i],
				 false);
	return BS_OK;
}

/* Status, finding, drop. */
static int
status_delta(gather *g, const manifest *b, const manifest *a, bs_error *err)
{
	bool a_dropped = strcmp(a->status, "dropped") == 0;
	bool a_skipped = strcmp(a->status, "skipped") == 0;
	char msg[160];

	if (!a_dropped && !a_skipped && strcmp(a->status, "active") != 0)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "relid %u: status \"%.32s\" is none of active, skipped, dropped",
						 a->relid, a->status);
	if (a_skipped && a->finding == NULL)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "relid %u: a skipped table without a finding", a->relid);
	if (b)
	{
		bool b_dropped = strcmp(b->status, "dropped") == 0;

		if (b_dropped && !a_dropped)
		{
			snprintf(msg, sizeof(msg), "status goes back from dropped to %.32s", a->status);
			return refuse(err, a->relid, msg, NULL);
		}
		if (b_dropped)
		{
			if (a->dropped_at_lsn != b->dropped_at_lsn || a->drop_lsn != b->drop_lsn)
				return refuse(err, a->relid, "the drop of a dropped table changed", NULL);
			return BS_OK;
		}
		if (!str_eq(a->finding, b->finding) || (!a_dropped && strcmp(a->status, b->status) != 0))
		{
			/* skipped sets status and finding; status sets either (a base copy makes a skipped
			 * table active again, keeping its finding).  Before a drop, what the finding
			 * became. */
			json_t *o = json_object();

			if (a->finding && (a_skipped || a_dropped))
			{
				json_object_set_new(o, "finding", json_string(a->finding));
				push(g, R_SKIPPED, 0, "skipped", o);
			}
			else
			{
				json_object_set_new(o, "status", json_string("active"));
				json_object_set_new(o, "finding", str_or_null(a->finding));
				push(g, R_STATUS, 0, "status", o);
			}
		}
	}
	if (a_dropped && (b == NULL || strcmp(b->status, "dropped") != 0))
	{
		json_t *o = json_object();

		json_object_set_new(o, "dropped_at_lsn", manifest_json_lsn_value(a->dropped_at_lsn));
		json_object_set_new(o, "drop_lsn", a->drop_lsn ? manifest_json_lsn_value(a->drop_lsn) : json_null());
		push(g, R_DROP, a->dropped_at_lsn, "drop", o);
	}
	else if (!a_dropped && a->drop_lsn != (b ? b->drop_lsn : 0))
		return refuse(err, a->relid, "drop_lsn changed without a drop", NULL);
	return BS_OK;
}

/* The scalars that events set: existed_to, ddl_capture_from, rebase_requested_at. */
static int
scalars_delta(gather *g, const manifest *b, const manifest *a, uint64_t last_new_base, bs_error *err)
{
	uint64_t existed_to = b ? b->existed_to : 0;
	uint64_t ddl = b ? b->ddl_capture_from : 0;
	uint64_t rebase = b ? b->rebase_requested_at : 0;

	if (a->existed_to < existed_to)
		return refuse(err, a->relid, "existed_to goes down", NULL);
	if (a->existed_to > existed_to)
		push_lsn(g, R_EXISTED_TO, a->existed_to, "existed_to", "existed_to", a->existed_to, false);
	if (a->ddl_capture_from != ddl)
		push_lsn(g, R_DDL_CAPTURE_FROM, a->ddl_capture_from, "ddl_capture_from", "from", a->ddl_capture_from, false);
	if (a->rebase_requested_at != rebase)
		/* A request met is met by a base: after the newest new one. */
		push_lsn(g, R_REBASE_REQUESTED, a->rebase_requested_at ? a->rebase_requested_at : last_new_base,
				 "rebase_requested", "at", a->rebase_requested_at, true);
	return BS_OK;
}

/* The expiry: the fold's expired event sets expired_before and expired_time and removes what
 * expire removed below it (bases_delta lets those bases go). */
static int
expiry_delta(gather *g, const manifest *b, const manifest *a, bs_error *err)
{
	uint64_t expired = b ? b->expired_before : 0;
	int64_t expired_time = b ? b->expired_time : 0;

	if (a->expired_before < expired || (a->expired_before == 0 && a->expired_time != expired_time))
		return refuse(err, a->relid, "expired_before goes down", NULL);
	if (a->expired_before != expired || a->expired_time != expired_time)
	{
		json_t *o = json_object();

		json_object_set_new(o, "expired_before", manifest_json_lsn_value(a->expired_before));
		json_object_set_new(o, "expired_time", manifest_json_time_value(a->expired_time));
		push(g, R_EXPIRED, a->expired_before, "expired", o);
	}
	return BS_OK;
}

void
mdelta_list_free(mdelta_list *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->events[i].json);
	free(l->events);
	memset(l, 0, sizeof(*l));
}

/* The events in order, with their LSNs. */
static void
finish(gather *g, uint32_t relid, uint64_t lsn_floor, mdelta_list *out)
{
	uint64_t running = lsn_floor;

	if (g->n > 1)
		qsort(g->v, (size_t) g->n, sizeof(pending), pending_cmp);
	out->events = xcalloc((size_t) (g->n > 0 ? g->n : 1), sizeof(mdelta_event));
	for (int i = 0; i < g->n; i++)
	{
		pending *p = &g->v[i];
		json_t *o = json_object();
		uint64_t key = p->key;

		/* The first sight where the table's first other event is. */
		if (p->rank == R_TABLE && i + 1 < g->n)
			key = g->v[i + 1].key;
		if (key > running)
			running = key;
		json_object_set_new(o, "kind", json_string(p->kind));
		json_object_set_new(o, "lsn", manifest_json_lsn_value(running));
		json_object_set_new(o, "relid", json_integer(relid));
		json_object_update(o, p->members);
		out->events[i].lsn = running;
		out->events[i].json = json_dumps(o, JSON_COMPACT);
		json_decref(o);
	}
	out->n = g->n;
}

/* The member in which two catalog entries differ first (NULL: none). */
static const char *
first_difference(json_t *x, json_t *y)
{
	const char *k;
	json_t *v;

	json_object_foreach(x, k, v)
		if (!json_equal(v, json_object_get(y, k)))
			return k;
	json_object_foreach(y, k, v)
		if (json_object_get(x, k) == NULL)
			return k;
	return NULL;
}

/* The fold's own word on the events: folded onto a copy of before, they must give after. */
static int
check_by_fold(const manifest *b, const manifest *a, uint64_t lsn_floor, const mdelta_list *l, bs_error *err)
{
	strbuf pack = STRBUF_INIT;
	pack_writer *w = NULL;
	pack_index *idx = NULL;
	manifest *copy = NULL,
			   *got = NULL;
	json_t *x = NULL,
			   *y = NULL;
	fold_start start;
	pack_meta meta;
	const char *diff;
	int rc = BS_ERR;

	memset(&start, 0, sizeof(start));
	memset(&meta, 0, sizeof(meta));
	if (l->n == 0)
	{
		/* Nothing to fold: before must already be after. */
		x = manifest_table_to_json_object(b);
		goto compare;
	}
	if (b)
	{
		json_t *bo = manifest_table_to_json_object(b);

		if (bo == NULL || manifest_table_from_json_object(bo, &copy, err) != BS_OK)
		{
			json_decref(bo);
			if (bo == NULL)
				error_set(err, ERRCODE_INVALID_PARAMETER, "a base definition is not a JSON object");
			error_prefix(err, "relid %u: before is not a valid manifest", b->relid);
			goto out;
		}
		json_decref(bo);
		start.seq = 1;
		start.m = copy;
		start.last_event_lsn = lsn_floor;
	}
	meta.seq_first = meta.seq_last = b ? 2 : 1;
	meta.seal_lsn = l->events[l->n - 1].lsn;
	if (pack_writer_open("mdelta", 0, CODEC_NONE, 0, NULL, &pack, &w, err) != BS_OK)
		goto out;
	for (int i = 0; i < l->n; i++)
		if (pack_writer_add_event(w, l->events[i].json, strlen(l->events[i].json), err) != BS_OK)
			goto out;
	if (pack_writer_finish(w, &meta, &pack, NULL, err) != BS_OK ||
		pack_open_buffer("mdelta", pack.data, pack.len, NULL, &idx, err) != BS_OK)
		goto out;
	if (fold_table_from(a->relid, b ? &start : NULL, (const pack_index *const *) &idx, 1, &got, NULL, err) != BS_OK)
	{
		error_prefix(err, "relid %u: after is not reachable from before by events: the fold refuses them", a->relid);
		memcpy(err->code, ERRCODE_INTERNAL, sizeof(err->code));
		goto out;
	}
	x = manifest_table_to_json_object(got);
compare:
	y = manifest_table_to_json_object(a);
	if (y == NULL)
	{
		error_set(err, ERRCODE_INVALID_PARAMETER, "relid %u: a base definition of after is not a JSON object",
				  a->relid);
		goto out;
	}
	diff = x ? first_difference(x, y) : "bases";
	if (diff)
	{
		refuse(err, a->relid, "the events' fold differs from after in member ", diff);
		goto out;
	}
	rc = BS_OK;
out:
	json_decref(x);
	json_decref(y);
	manifest_free(got);
	manifest_free(start.m);
	pack_index_free(idx);
	pack_writer_free(w);
	strbuf_free(&pack);
	return rc;
}

int
mdelta_events(const manifest *before, const manifest *after, uint64_t lsn_floor, mdelta_list *out, bs_error *err)
{
	gather g;
	uint64_t last_new_base = 0;
	int rc = BS_ERR;

	memset(out, 0, sizeof(*out));
	memset(&g, 0, sizeof(g));
	if (after == NULL || after->status == NULL || after->schema == NULL || after->name == NULL)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "mdelta: no manifest after");
	if (before && before->relid != after->relid)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "mdelta: before is relid %u, after relid %u",
						 before->relid, after->relid);
	if (before && (before->status == NULL || before->schema == NULL || before->name == NULL))
		return error_set(err, ERRCODE_INVALID_PARAMETER, "relid %u: before has no status or name", after->relid);
	if (before == NULL)
		first_sight(&g, after);
	/* A dropped table's history is closed: only its expiry changes (the fold's own check names
	 * any other member that differs). */
	if (before && strcmp(before->status, "dropped") == 0)
	{
		if (status_delta(&g, before, after, err) != BS_OK || expiry_delta(&g, before, after, err) != BS_OK)
			goto out;
	}
	else if (status_delta(&g, before, after, err) != BS_OK || names_delta(&g, before, after, err) != BS_OK ||
		layouts_delta(&g, before, after, err) != BS_OK ||
		bases_delta(&g, before, after, &last_new_base, err) != BS_OK || gaps_delta(&g, before, after, err) != BS_OK ||
		schema_windows_delta(&g, before, after, err) != BS_OK || partition_delta(&g, before, after, err) != BS_OK ||
		scalars_delta(&g, before, after, last_new_base, err) != BS_OK || expiry_delta(&g, before, after, err) != BS_OK)
		goto out;
	finish(&g, after->relid, lsn_floor, out);
	if ((out->n > 0 || before) && check_by_fold(before, after, lsn_floor, out, err) != BS_OK)
	{
		mdelta_list_free(out);
		goto out;
	}
	rc = BS_OK;
out:
	gather_free(&g);
	return rc;
}
