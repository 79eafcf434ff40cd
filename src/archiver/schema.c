/* schema.c — the archiver's schema changes: Relation messages, captured DDL, table checks of a layout. */
#include "autoconf.h"
#include "catalog.h"
#include "codec.h"
#include "control.h"
#include "ddl.h"
#include "log.h"
#include "lsn.h"
#include "manifest.h"
#include "pgoutput.h"
#include "pgsql.h"
#include "replmsg.h"
#include "storage.h"
#include "strbuf.h"
#include "config.h"
#include "error.h"
#include "archiver_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A column of the new layout that an older one had with another type (ALTER COLUMN ... TYPE):
 * rows from before cannot be converted exactly at recovery; only a new base copy helps. */
bool
schema_layout_retyped(const manifest_layout *cur, int ncols, const manifest_column *cols)
{
	if (cur == NULL)
		return false;
	for (int i = 0; i < ncols; i++)
		for (int k = 0; k < cur->ncols; k++)
			if (strcmp(cols[i].name, cur->columns[k].name) == 0 &&
				(cols[i].type_oid != cur->columns[k].type_oid || cols[i].typmod != cur->columns[k].typmod))
				return true;
	return false;
}

/*
 * Mark the columns of a new layout that the layout in effect before this transaction lacked and
 * whose old rows got values the stream never carried (a volatile default: the table was
 * rewritten, PostgreSQL stored no missing value).  rewritten: a table_rewrite of the table was
 * read in this transaction (capture); otherwise the catalog tells, erring toward marking.
 * Recovery refuses points that would need those values until a newer base copy.
 */
static int
mark_unknown_columns(archiver *a, arch_table *t, bool rewritten, int ncols, manifest_column *cols, bs_error *err)
{
	const manifest_layout *prev = a->txn_final_lsn > 0 ? tables_layout_at(t->man, a->txn_final_lsn - 1) : NULL;
	char l[LSN_BUFLEN];

	if (prev == NULL)
		return BS_OK;			/* no rows before: the first base copy holds them all */
	for (int c = 0; c < ncols; c++)
	{
		bool unknown = rewritten;

		if (manifest_layout_has_column(prev, cols[c].name))
			continue;
		if (!unknown &&
			catalog_column_values_unknown(a->conn, t->relid, cols[c].name, &unknown, err) != BS_OK &&
			(!stream_conn_recovered(a, err) ||
			 catalog_column_values_unknown(a->conn, t->relid, cols[c].name, &unknown, err) != BS_OK))
			return BS_ERR;
		if (!unknown)
			continue;
		cols[c].missing_unknown = true;
		log_info("table %s.%s: column \"%s\" added at %s got a value per existing row (a volatile default) that "
				 "the stream does not carry: recovery points from there are refused until a new base copy",
				 t->man->schema, t->man->name, cols[c].name, lsn_format(a->txn_final_lsn, l));
	}
	return BS_OK;
}

/*
 * A column change at the current transaction needs a new base copy: asked for now (the next
 * table check takes it) and recorded in the manifest, which is stored with its changes before
 * their position is confirmed, so that a restart takes the copy at once instead of forgetting
 * it.  Points from here until that copy are refused by recovery where the rows from before
 * cannot be made exact: a retyped column whose text form changes (replay), a column added with
 * a volatile default (marked missing_unknown, refused by the recovery plan), an uncaptured
 * schema change (a schema gap).  Other points (ADD COLUMN with a constant default: its missing
 * value) recover exactly from the older copy; info shows the window.
 */
static void
request_rebase(archiver *a, arch_table *t)
{
	char l[LSN_BUFLEN];

	t->rebase_wanted = true;
	if (t->man->rebase_requested_at != 0 && t->man->rebase_requested_at <= a->txn_final_lsn)
		return;
	t->man->rebase_requested_at = a->txn_final_lsn;
	t->dirty = true;
	log_info("table %s.%s: a column change at %s needs a new base copy; recovery points from there until it "
			 "is taken are refused", t->man->schema, t->man->name, lsn_format(a->txn_final_lsn, l));
}

/*
 * A base copy taken ahead of the stream with other columns recorded a window up to its LSN
 * (basejob_weak_change_from); a transaction before the copy shows those columns (its layout is
 * the copy's, now in effect from here): the change came before it, so the window ends here.
 */
static void
schema_gap_end_at(arch_table *t, uint64_t lsn)
{
	manifest *m = t->man;
	char l1[LSN_BUFLEN],
		l2[LSN_BUFLEN];

	for (int i = 0; i < m->nschema_gaps; i++)
	{
		manifest_gap *g = &m->schema_gaps[i];

		if (g->from >= lsn || lsn >= g->to || g->to == MANIFEST_GAP_OPEN)
			continue;
		for (int b = 0; b < m->nbases; b++)
			if (m->bases[b].lsn == g->to && m->bases[b].layout_id == t->layout_id)
			{
				log_info("table %s.%s: the columns of its base copy at %s are in use from %s on: the window of "
						 "their unknown change ends there", m->schema, m->name, lsn_format(g->to, l1),
						 lsn_format(lsn, l2));
				g->to = lsn;
				t->dirty = true;
				return;
			}
	}
}

/* The newest of from and the LSNs of the base copies with layout id at or before lsn: the
 * newest position known to use those columns, as far as the bases show. */
uint64_t
schema_newest_base_with_layout(const manifest *m, uint32_t id, uint64_t lsn, uint64_t from)
{
	for (int b = 0; b < m->nbases; b++)
		if (m->bases[b].layout_id == id && m->bases[b].lsn <= lsn && m->bases[b].lsn > from)
			from = m->bases[b].lsn;
	return from;
}

int
schema_handle_relation(archiver *a, const pgo_relation *rel, bs_error *err)
{
	arch_table *t;
	manifest_column *cols;
	const manifest_layout *cur;
	int i;

	for (i = 0; i < a->nrelcache; i++)
		if (a->relcache[i].relid == rel->relid)
			break;
	if (i == a->nrelcache)
	{
		a->relcache = xrealloc(a->relcache, (size_t) (a->nrelcache + 1) * sizeof(pgo_relation));
		a->nrelcache++;
	}
	else
		pgo_relation_free(&a->relcache[i]);
	pgo_relation_copy(&a->relcache[i], rel);

	t = tables_find(a, rel->relid);
	if (t == NULL || !t->active)
		return BS_OK;
	cols = xcalloc((size_t) rel->ncols, sizeof(manifest_column));
	for (i = 0; i < rel->ncols; i++)
	{
		cols[i].name = xstrdup(rel->columns[i].name);
		cols[i].type_oid = rel->columns[i].type_oid;
		cols[i].typmod = rel->columns[i].typmod;
		cols[i].key = (rel->columns[i].flags & PGO_COLUMN_KEY) != 0;
	}
	cur = tables_layout_at(t->man, a->txn_final_lsn);
	if (cur && cur->replident == rel->replident &&
		manifest_columns_equal(cur->ncols, cur->columns, rel->ncols, cols))
		t->layout_id = cur->id;
	else
	{
		char lsnbuf[LSN_BUFLEN];
		/* No layout yet: the table's first base copy is still to come (it checks for columns
		 * added after it, see basejob_apply). */
		bool added = cur != NULL && rel->ncols > cur->ncols;
		uint32_t id;
		bs_error e2;

		if (catalog_describe_columns(a->conn, rel->relid, rel->ncols, cols, err) != BS_OK &&
			(!stream_conn_recovered(a, err) || catalog_describe_columns(a->conn, rel->relid, rel->ncols, cols, err) != BS_OK))
		{
			manifest_columns_free(rel->ncols, cols);
			return BS_ERR;
		}
		/* Before the layout is added: that may move the layouts, and cur with them. */
		bool retyped = schema_layout_retyped(cur, rel->ncols, cols);
		int names_added = 0;

		if (cur != NULL &&
			mark_unknown_columns(a, t, t->rewrite_lsn == a->txn_final_lsn, rel->ncols, cols, err) != BS_OK)
		{
			manifest_columns_free(rel->ncols, cols);
			return BS_ERR;
		}

		if (cur != NULL)
			for (int c = 0; c < rel->ncols; c++)
				names_added += !manifest_layout_has_column(cur, cols[c].name);
		/*
		 * Not captured in the stream: the change committed somewhere after the newest position
		 * known to use the old layout and at or before this transaction.  Points in between
		 * are refused (recovery cannot tell which layout they had).
		 */
		if (cur != NULL && tables_ddl_weak_at(a, t, a->txn_final_lsn))
		{
			/* A base copy with the old columns at or before this transaction shows them there. */
			uint64_t from = schema_newest_base_with_layout(t->man, cur->id, a->txn_final_lsn, t->layout_seen);
			char s1[LSN_BUFLEN];

			if (from < a->txn_final_lsn)
			{
				manifest_add_schema_gap(t->man, from, a->txn_final_lsn);
				t->dirty = true;
				log_info("table %s.%s: its columns changed at an unknown point between %s and %s (schema changes "
						 "are not captured): recovery points in between are refused", t->man->schema, t->man->name,
						 lsn_format(from, s1), lsn_format(a->txn_final_lsn, lsnbuf));
			}
		}
		/* The columns the table check expects to have been added since it last looked. */
		if (t->natts_seen > 0)
			t->natts_seen += names_added;
		t->check_names_added += names_added;

		/* Valid from this transaction on (the Relation message precedes its first change).
		 * Where a layout cannot be placed without putting ids out of LSN order (a base taken
		 * ahead of the stream), it is inserted in order as before. */
		error_clear(&e2);
		if (manifest_use_layout(t->man, a->txn_final_lsn, rel->replident, rel->ncols, cols, &id, &e2) == BS_OK)
			t->layout_id = id;
		else
			t->layout_id = tables_insert_layout(t->man, -1, a->txn_final_lsn, rel->replident, rel->ncols, cols);
		log_info("table %s.%s: new column layout %u from %s", t->man->schema, t->man->name,
				 t->layout_id, lsn_format(a->txn_final_lsn, lsnbuf));
		if (tables_ddl_weak_at(a, t, a->txn_final_lsn))
			schema_gap_end_at(t, a->txn_final_lsn);
		if (a->txn_final_lsn > t->layout_seen)
			t->layout_seen = a->txn_final_lsn;
		/* Rows that predate an added column may hold a volatile default: a new base makes
		 * points after this change exact without guessing. */
		cur = NULL;
		if (added || retyped)
			request_rebase(a, t);
	}
	manifest_columns_free(rel->ncols, cols);
	return BS_OK;
}

/*
 * Schema changes from the stream.  The event triggers (ddl.c) write a transactional
 * backstop.ddl message in the transaction of each DDL, so drops, renames and new layouts
 * are attributed to that transaction's commit LSN, not to when a poll noticed them.
 */

/* Record on the table's manifest since when its schema changes are captured (or that they
 * are not, which info and recover report). */
void
schema_note_capture(archiver *a, arch_table *t)
{
	uint64_t want = a->ddl_capture ? (t->man->ddl_capture_from ? t->man->ddl_capture_from : a->ddl_capture_from) : 0;

	if (t->man->ddl_capture_from != want && strcmp(t->man->status, "active") == 0)
	{
		t->man->ddl_capture_from = want;
		t->dirty = true;
	}
}

/* Install (or find) the event triggers per --ddl-capture; the position from which schema
 * changes are captured is read after they are in place. */
int
schema_ddl_setup(archiver *a, bs_error *err)
{
	const char *mode = config_get(a->cfg, CFG_DDL_CAPTURE);
	const char *why = NULL;
	char *pos = NULL;
	bool capturing = false;

	a->ddl_capture = false;
	a->ddl_capture_from = 0;
	if (mode && strcmp(mode, "off") == 0)
		why = "--ddl-capture off";
	else if (ddl_install(a->conn, &capturing, &why, err) != BS_OK)
	{
		if (mode && strcmp(mode, "on") == 0)
			return BS_ERR;
		log_warning("%s", err->message);
		why = "the event triggers could not be created";
		error_clear(err);
	}
	if (!capturing)
	{
		if (mode && strcmp(mode, "on") == 0)
			return error_set(err, ERRCODE_PERMISSION, "--ddl-capture on: schema changes cannot be captured: %s", why);
		log_warning("schema changes are NOT captured in the stream (%s): a schema change after a table's last "
					"row change is not in the archive at its position (see doc/archiving.md)", why);
		return BS_OK;
	}
	if (pgsql_query_value(a->conn, "SELECT pg_current_wal_insert_lsn()::text", &pos, err) != BS_OK)
		return BS_ERR;
	if (lsn_parse(pos, &a->ddl_capture_from) != BS_OK)
	{
		free(pos);
		return error_set(err, ERRCODE_PROTOCOL, "could not read the server's WAL insert position");
	}
	free(pos);
	a->ddl_capture = true;
	log_info("schema changes are captured in the stream (event triggers of schema %s)", DDL_SCHEMA);
	return BS_OK;
}

/* A DROP read from the stream: checked against the catalog (a message can be written by any
 * role allowed to call pg_logical_emit_message), then the table's window ends exactly there. */
static void
ddl_table_dropped(archiver *a, arch_table *t)
{
	bool gone = false;
	uint64_t pos;
	bs_error err;
	char l[LSN_BUFLEN];

	if (t->drop_lsn == a->txn_final_lsn)
		return;
	if (!t->active || strcmp(t->man->status, "active") != 0)
	{
		/* Marked dropped already (by a poll, before this run read its DROP): refine. */
		if (strcmp(t->man->status, "dropped") == 0 && t->man->drop_lsn == 0 &&
			a->txn_final_lsn < t->man->dropped_at_lsn && a->txn_final_lsn >= manifest_dropped_after(t->man))
		{
			t->drop_lsn = t->man->drop_lsn = a->txn_final_lsn;
			t->dirty = true;
		}
		return;
	}
	/*
	 * The walsender decodes a commit as soon as its WAL is flushed, a moment before the
	 * transaction becomes visible to other sessions: a table dropped there may still be seen
	 * for that moment.  Look again a few times before calling the message false.
	 */
	for (int tries = 0; tries < 40 && !gone; tries++)
	{
		if (tries > 0)
			usleep(50 * 1000);
		error_clear(&err);
		if (tables_gone_position(a->conn, t->relid, &gone, &pos, &err) != BS_OK)
		{
			log_warning("table %s.%s: a DROP read from the stream could not be checked (%s); the table check "
						"will find it", t->man->schema, t->man->name, err.message);
			return;
		}
	}
	if (!gone)
	{
		log_warning("table %s.%s: ignoring a schema change message at %s that says it was dropped: it exists",
					t->man->schema, t->man->name, lsn_format(a->txn_final_lsn, l));
		return;
	}
	t->drop_lsn = a->txn_final_lsn;
	if (t->gone_lsn == 0 || t->gone_lsn > a->txn_final_lsn + 1)
		tables_found_gone(a, t, a->txn_final_lsn + 1, " (its DROP read from the stream)");
}

/*
 * Type names as the archiver's session writes them (catalog_describe_columns, base copies):
 * the event trigger runs with its own search_path, where format_type qualifies more names.
 */
static int
ddl_type_names(PGconn *conn, ddl_table *d, bs_error *err)
{
	for (int i = 0; i < d->ncols; i++)
	{
		char oid[16], typmod[16];
		const char *params[2] = {oid, typmod};
		PGresult *res;

		snprintf(oid, sizeof(oid), "%u", d->columns[i].type_oid);
		snprintf(typmod, sizeof(typmod), "%d", d->columns[i].typmod);
		if (pgsql_query_params(conn, "SELECT format_type($1::oid, $2::int)", 2, params, &res, err) != BS_OK)
			return error_prefix(err, "could not name the type of column \"%s\" of table %u", d->columns[i].name,
								d->relid);
		if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		{
			free(d->columns[i].type_name);
			d->columns[i].type_name = xstrdup(PQgetvalue(res, 0, 0));
		}
		PQclear(res);
	}
	return BS_OK;
}

/* ddl_command_end: the table's name and columns inside the transaction of the change. */
static int
ddl_table_changed(archiver *a, arch_table *t, ddl_table *d, bs_error *err)
{
	manifest *m = t->man;
	const manifest_layout *cur;
	char l[LSN_BUFLEN];

	if (strcmp(m->schema, d->schema) != 0 || strcmp(m->name, d->name) != 0)
	{
		log_info("table %s.%s (relid %u) is named %s.%s from %s on", m->schema, m->name, t->relid, d->schema,
				 d->name, lsn_format(a->txn_final_lsn, l));
		manifest_add_name(m, a->txn_final_lsn, d->schema, d->name);
		t->dirty = true;
	}
	cur = tables_layout_at(m, a->txn_final_lsn);
	if (cur != NULL && cur->replident == d->replident &&
		manifest_columns_equal(cur->ncols, cur->columns, d->ncols, d->columns))
		return BS_OK;
	{
		uint32_t id;
		bs_error e2;

		/*
		 * No layout yet (cur NULL): the table's first base copy is still to be added.  Its
		 * snapshot may be older than this change (a copy in the background, added after the
		 * stream read this): the layout from here on is recorded, so that the copy's goes
		 * before it.  basejob_apply then judges what the copy's rows lack (and asks for a newer
		 * copy); a copy taken after this change needs nothing more.
		 */
		bool first = cur == NULL;
		bool added = false,
			retyped = false;

		if (ddl_type_names(a->conn, d, err) != BS_OK &&
			(!stream_conn_recovered(a, err) || ddl_type_names(a->conn, d, err) != BS_OK))
			return BS_ERR;
		if (!first)
		{
			/* Before the layout is added: that may move the layouts, and cur with them. */
			added = d->ncols > cur->ncols;
			retyped = schema_layout_retyped(cur, d->ncols, d->columns);
			cur = NULL;
			/* Read in the stream: only a rewrite in this transaction leaves old rows unknown. */
			if (t->rewrite_lsn == a->txn_final_lsn &&
				mark_unknown_columns(a, t, true, d->ncols, d->columns, err) != BS_OK)
				return BS_ERR;
		}
		error_clear(&e2);
		if (manifest_use_layout(m, a->txn_final_lsn, d->replident, d->ncols, d->columns, &id, &e2) != BS_OK)
			id = tables_insert_layout(m, -1, a->txn_final_lsn, d->replident, d->ncols, d->columns);
		t->dirty = true;
		log_info("table %s.%s: new column layout %u from %s (schema change read from the stream%s)", m->schema,
				 m->name, id, lsn_format(a->txn_final_lsn, l), first ? ", before its first base copy was added" : "");
		/* As for a layout from a Relation message: a durable request, taken at once. */
		if (added || retyped)
			request_rebase(a, t);
	}
	return BS_OK;
}

/* Whether the definition of t's newest base names parent as its partitioned parent, or as
 * a partitioned table above that one (multi-level partitioning). */
static bool
newest_base_partition_of(const arch_table *t, uint32_t parent)
{
	const manifest *m = t->man;
	json_t *root,
			   *p,
			   *anc;
	size_t i;
	bool yes;

	if (m->nbases == 0 || m->bases[m->nbases - 1].definition == NULL)
		return false;
	root = json_loads(m->bases[m->nbases - 1].definition, 0, NULL);
	p = root ? json_object_get(root, "partition") : NULL;
	yes = json_is_object(p) && json_integer_value(json_object_get(p, "parent_relid")) == (json_int_t) parent;
	json_array_foreach(json_is_object(p) ? json_object_get(p, "ancestors") : NULL, i, anc)
		yes = yes || json_integer_value(json_object_get(anc, "relid")) == (json_int_t) parent;
	json_decref(root);
	return yes;
}

/* From pg_inherits: pg_partition_tree() would lock every partition, waiting behind a
 * session's DDL on one (the main connection must not wait on the tables' users). */
#define PARTITIONS_BELOW \
	"WITH RECURSIVE tree(relid) AS (SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = $1::oid " \
	"  UNION ALL SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.relid) " \
	"SELECT tree.relid FROM tree JOIN pg_class c ON c.oid = tree.relid AND c.relispartition"

/*
 * ALTER TABLE on a partitioned table (ATTACH or DETACH PARTITION among others) names only the
 * parent: the partitions it had at their base copies and those it has now are re-based, so
 * that each base's definition tells the membership again and recovery of the parent refuses
 * the points in between.
 */
static int
ddl_parent_changed(archiver *a, arch_table *parent, bs_error *err)
{
	char oid[16];
	const char *params[1] = {oid};
	PGresult *res = NULL;
	char l[LSN_BUFLEN];

	snprintf(oid, sizeof(oid), "%u", parent->relid);
	/* Its partitions at every level: those of a partition that is itself partitioned too. */
	if (pgsql_query_params(a->conn, PARTITIONS_BELOW, 1, params, &res, err) != BS_OK &&
		(!stream_conn_recovered(a, err) || pgsql_query_params(a->conn, PARTITIONS_BELOW, 1, params, &res, err) != BS_OK))
		return BS_ERR;
	for (int i = 0; i < a->ntables; i++)
	{
		arch_table *t = a->tables[i];
		bool member = newest_base_partition_of(t, parent->relid);

		for (int r = 0; r < PQntuples(res) && !member; r++)
			member = strtoul(PQgetvalue(res, r, 0), NULL, 10) == t->relid;
		if (!member || !t->active || t->partitioned || strcmp(t->man->status, "active") != 0)
			continue;
		log_info("table %s.%s: its partitioned table %s.%s changed at %s (%s)", t->man->schema, t->man->name,
				 parent->man->schema, parent->man->name, lsn_format(a->txn_final_lsn, l), "ALTER TABLE");
		/* Durable with the table's changes: a base before it does not tell the membership after. */
		manifest_add_partition_change(t->man, a->txn_final_lsn);
		t->dirty = true;
		request_rebase(a, t);
	}
	PQclear(res);
	return BS_OK;
}

int
schema_handle_ddl_message(archiver *a, const pgo_logical_message *msg, bs_error *err)
{
	ddl_event ev;
	bs_error perr;
	char l[LSN_BUFLEN];
	int rc = BS_OK;

	error_clear(&perr);
	if (ddl_parse_message((const char *) msg->content, msg->content_len, &ev, &perr) != BS_OK)
	{
		log_warning("ignoring a schema change message in the transaction committed at %s: %s",
					lsn_format(a->txn_final_lsn, l), perr.message);
		return BS_OK;
	}
	for (int i = 0; i < ev.ntables && rc == BS_OK; i++)
	{
		arch_table *t = tables_find(a, ev.tables[i].relid);

		if (t == NULL)
			continue;
		/* A DROP in a transaction kept before a restart still makes the drop exact. */
		if (ev.kind == DDL_EVENT_DROP)
			ddl_table_dropped(a, t);
		else if (ev.kind == DDL_EVENT_END && t->partitioned && !a->txn_skip &&
				 strcmp(ev.tables[i].tag, "ALTER TABLE") == 0)
			rc = ddl_parent_changed(a, t, err);
		else if (a->txn_skip || !t->active || strcmp(t->man->status, "active") != 0)
			continue;
		else if (ev.kind == DDL_EVENT_END)
			rc = ddl_table_changed(a, t, &ev.tables[i], err);
		else
		{
			/* Columns this transaction adds got their values in the rewrite (ddl_table_changed). */
			t->rewrite_lsn = a->txn_final_lsn;
			if (!t->rebase_wanted)
			{
				/* Rewritten (ALTER COLUMN TYPE, say): old values may not convert exactly. */
				log_info("table %s.%s is rewritten at %s (%s): a new base copy is requested", t->man->schema,
						 t->man->name, lsn_format(a->txn_final_lsn, l), ev.tables[i].tag);
				request_rebase(a, t);
			}
		}
	}
	ddl_event_free(&ev);
	return rc;
}

/* Without capture, a rename is seen by the table check: recorded where the stream is now. */
/*
 * Weak mode: a schema change after the table's last row change is not in the stream (no
 * Relation message comes until its next change).  Each table check compares the catalog
 * (columns as pgoutput sends them, and relnatts, which counts dropped columns too) with the
 * newest archived layout; on a difference the table's columns are unknown from the last
 * position known good: the window is recorded durably (open until a base copy taken after
 * now closes it) and the copy is asked for.
 */
int
schema_poll_layout(archiver *a, arch_table *t, bs_error *err)
{
	PGresult *res;
	uint64_t seen;

	if (!schema_layout_check_due(a, t, &seen))
		return BS_OK;
	if (schema_layout_query(a->conn, t->relid, &res, err) != BS_OK)
		return BS_ERR;
	return schema_layout_apply(a, t, seen, res, err);
}

/*
 * Whether a table check of t's layout is due (weak mode, an active table with a layout and
 * no open window), and from where a difference would have to date (*seen).
 */
bool
schema_layout_check_due(archiver *a, arch_table *t, uint64_t *seen)
{
	const manifest_layout *cur;

	if (!tables_ddl_weak_at(a, t, UINT64_MAX) || t->man->nlayouts == 0 || t->gone_lsn != 0 || t->unpublished ||
		strcmp(t->man->status, "active") != 0 || manifest_open_schema_gap(t->man) != NULL)
		return false;
	cur = tables_layout_at(t->man, UINT64_MAX);
	*seen = t->layout_seen;
	/* The newest base copy with those columns shows them at its LSN: a difference now came
	 * after it (a stream behind it records its own windows, from layout_seen). */
	if (t->man->nbases && t->man->bases[t->man->nbases - 1].layout_id == cur->id &&
		t->man->bases[t->man->nbases - 1].lsn > *seen)
		*seen = t->man->bases[t->man->nbases - 1].lsn;
	return true;
}

/* The table check's query, on any thread's connection: the catalog's columns and the position. */
int
schema_layout_query(PGconn *conn, uint32_t relid, PGresult **res, bs_error *err)
{
	char oid[16];
	const char *params[1] = {oid};

	snprintf(oid, sizeof(oid), "%u", relid);
	return pgsql_query_params(conn,
							  "SELECT c.relnatts, a.attname, a.atttypid, a.atttypmod, pg_current_wal_insert_lsn()::text "
							  "FROM pg_class c LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
							  "AND NOT a.attisdropped AND a.attgenerated = '' WHERE c.oid = $1::oid ORDER BY a.attnum",
							  1, params, res, err);
}

/* A table check's result (res is taken over), against the layout archived now; seen: from
 * schema_layout_check_due when the query was asked.  Not due any more: nothing to do. */
int
schema_layout_apply(archiver *a, arch_table *t, uint64_t seen, PGresult *res, bs_error *err)
{
	const manifest_layout *cur;
	uint64_t now_seen;
	uint64_t pos = 0;
	manifest_column *cols;
	int natts;
	int n;
	bool same;
	bool natts_only = false;

	if (!schema_layout_check_due(a, t, &now_seen))
	{
		PQclear(res);
		return BS_OK;
	}
	cur = tables_layout_at(t->man, UINT64_MAX);
	n = PQntuples(res);
	if (n == 0)
	{
		PQclear(res);			/* dropped meanwhile: the drop handling sees to it */
		return BS_OK;
	}
	natts = atoi(PQgetvalue(res, 0, 0));
	if (lsn_parse(PQgetvalue(res, 0, 4), &pos) != BS_OK)
	{
		PQclear(res);
		return error_set(err, ERRCODE_PROTOCOL, "could not read the server's WAL insert position");
	}
	if (n == 1 && PQgetisnull(res, 0, 1))
		n = 0;					/* no column */
	cols = xcalloc((size_t) (n > 0 ? n : 1), sizeof(manifest_column));
	for (int i = 0; i < n; i++)
	{
		cols[i].name = xstrdup(PQgetvalue(res, i, 1));
		cols[i].type_oid = (uint32_t) strtoul(PQgetvalue(res, i, 2), NULL, 10);
		cols[i].typmod = atoi(PQgetvalue(res, i, 3));
	}
	PQclear(res);
	same = manifest_columns_same_types(n, cols, cur->ncols, cur->columns);
	/* The same names and types, but a column added since the last check: one was dropped
	 * and added again (its values are not the old ones). */
	if (same && t->natts_seen > 0 && natts != t->natts_seen)
		same = false, natts_only = true;
	if (same)
	{
		manifest_columns_free(n, cols);
		t->schema_ok_seen = seen;
		t->natts_seen = natts;
		return BS_OK;
	}
	/*
	 * What the stream must show for this window to end before a base copy (see
	 * schema_gap_end_by_stream).  A column dropped and added again under its name is not
	 * shown by the stream (its Relation message looks the same): a base copy is needed.
	 */
	schema_check_forget(t);
	if (!natts_only && t->natts_seen > 0)
	{
		t->check_ncols = n;
		t->check_cols = cols;
		t->check_natts = natts;
		t->check_natts_before = t->natts_seen;
		t->check_names_added = 0;
	}
	else
		manifest_columns_free(n, cols);
	{
		/* Other columns: the change came after the newest position using the archived ones.
		 * The same columns: the changes since may have been written after the column came
		 * back (they look alike), so the window starts at the last check that found it right. */
		uint64_t from = natts_only && t->schema_ok_seen < seen ? t->schema_ok_seen : seen;
		char l1[LSN_BUFLEN],
			l2[LSN_BUFLEN];

		manifest_add_schema_gap(t->man, from, MANIFEST_GAP_OPEN);
		t->schema_detect_lsn = pos;
		/* Counted again by the first check after the window is closed (a Relation message of
		 * the change may still come, and would count its columns twice). */
		t->natts_seen = 0;
		t->rebase_wanted = true;
		if (t->man->rebase_requested_at == 0)
			t->man->rebase_requested_at = pos;
		t->dirty = true;
		log_info("table %s.%s: its columns in the catalog differ from the archived layout %u (schema changes are "
				 "not captured): they changed at an unknown point after %s; recovery points from there are refused "
				 "until a new base copy (asked for now, at %s)", t->man->schema, t->man->name, cur->id,
				 lsn_format(from, l1), lsn_format(pos, l2));
	}
	return BS_OK;
}

/* Forget what a table check saw (its window ended, or only a base copy can end it). */
void
schema_check_forget(arch_table *t)
{
	if (t->check_cols)
		manifest_columns_free(t->check_ncols, t->check_cols);
	t->check_cols = NULL;
	t->check_ncols = 0;
}

/*
 * The first row archived for t that commits after the position of the table check that
 * opened t's window of an unknown schema change (schema_detect_lsn).  Every change the
 * check saw committed before that position, so the stream has read them all by now: its
 * layout at commit_lsn is the table's there.  When that layout has the columns the check
 * saw, and the catalog's relnatts then is the one known before plus the names the stream
 * added since (nothing was dropped and added again under an old name), the change lies in
 * the window's part before commit_lsn: it ends there.  Otherwise only a base copy ends it.
 */
void
schema_gap_end_by_stream(arch_table *t, uint64_t commit_lsn)
{
	manifest *m = t->man;
	manifest_gap *g = manifest_open_schema_gap(m);
	const manifest_layout *lay = manifest_layout_by_id(m, t->layout_id);
	char l1[LSN_BUFLEN],
		l2[LSN_BUFLEN];

	if (g == NULL || lay == NULL || g->from >= commit_lsn)
	{
		schema_check_forget(t);
		return;
	}
	if (t->check_natts == t->check_natts_before + t->check_names_added &&
		manifest_columns_same_types(lay->ncols, lay->columns, t->check_ncols, t->check_cols))
	{
		log_info("table %s.%s: the stream shows the columns its table check found (at %s) from %s on: the "
				 "window of their unknown change ends there", m->schema, m->name, lsn_format(t->schema_detect_lsn, l1),
				 lsn_format(commit_lsn, l2));
		g->to = commit_lsn;
		t->natts_seen = t->check_natts;
		t->dirty = true;
	}
	else
		log_info("table %s.%s: the stream does not show the columns its table check found (at %s): the window of "
				 "their unknown change stays open until a new base copy", m->schema, m->name,
				 lsn_format(t->schema_detect_lsn, l1));
	schema_check_forget(t);
}

void
schema_poll_rename(archiver *a, arch_table *t, const catalog_table *ct)
{
	char l[LSN_BUFLEN];

	if (a->ddl_capture || (strcmp(t->man->schema, ct->schema) == 0 && strcmp(t->man->name, ct->name) == 0))
		return;
	log_info("table %s.%s (relid %u) is named %s.%s now (noticed at %s; schema changes are not captured, so the "
			 "rename is recorded there)", t->man->schema, t->man->name, t->relid, ct->schema, ct->name,
			 lsn_format(a->last_commit_end, l));
	manifest_add_name(t->man, a->last_commit_end, ct->schema, ct->name);
	t->dirty = true;
}
