/* tables.c — the archiver's table registry, and the table checks that poll the catalog and the publication. */
#include "autoconf.h"
#include "clock.h"
#include "audit.h"
#include "catalog.h"
#include "codec.h"
#include "control.h"
#include "log.h"
#include "lsn.h"
#include "manifest.h"
#include "pgoutput.h"
#include "pgsql.h"
#include "quote.h"
#include "replmsg.h"
#include "storage.h"
#include "strbuf.h"
#include "config.h"
#include "error.h"
#include "archiver_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

arch_table *
tables_find(archiver *a, uint32_t relid)
{
	for (int i = 0; i < a->ntables; i++)
		if (a->tables[i]->relid == relid)
			return a->tables[i];
	return NULL;
}

/*
 * Add a layout valid from from_lsn, keeping the list sorted by LSN: a Relation message of a
 * transaction sent again after a restart, or a base copy taken ahead of the stream, can
 * describe a layout older than the newest one.  want_id keeps an id already used by
 * spooled segments (-1: a new id).  Returns the layout's id.
 */
uint32_t
tables_insert_layout(manifest *m, int64_t want_id, uint64_t from_lsn, char replident, int ncols,
					 const manifest_column *cols)
{
	return manifest_insert_layout(m, want_id, from_lsn, replident, ncols, cols)->id;
}

/* The layout in effect for a transaction committing at lsn; before the first, the first. */
const manifest_layout *
tables_layout_at(const manifest *m, uint64_t lsn)
{
	const manifest_layout *found = manifest_layout_at(m, lsn);

	return found ? found : (m->nlayouts ? &m->layouts[0] : NULL);
}

/* Register a table (m is taken over). */
arch_table *
tables_add(archiver *a, manifest *m, bool active)
{
	arch_table *t = xcalloc(1, sizeof(arch_table));

	t->relid = m->relid;
	t->man = m;
	t->active = active;
	t->layout_id = m->nlayouts ? m->layouts[m->nlayouts - 1].id : 0;
	a->tables = xrealloc(a->tables, (size_t) (a->ntables + 1) * sizeof(arch_table *));
	a->tables[a->ntables++] = t;
	packlog_adopt(a, t);
	return t;
}

/*
 * A manifest as loaded (NULL: absent) against head.json's record of it: never archive on top
 * of an older copy put back or of a deleted manifest, which would write the damage over the
 * evidence of it (doc/FORMAT.md, "Generations").
 */
static int
check_generation(archiver *a, uint32_t relid, const manifest *m, bs_error *err)
{
	const archive_head_table *rec = archive_head_find_table(&a->head, relid);

	if (rec == NULL || (m && m->generation >= rec->generation))
		return BS_OK;
	if (m == NULL)
		return error_set(err, ERRCODE_DATA_CORRUPTED,
						 "the manifest of %s.%s (tables/%" PRIu32 "/manifest.json) is missing from %s, but head.json "
						 "records generation %" PRIu64 " of it: it was deleted; refusing to archive on top of the "
						 "damage (restore the manifest, or archive to a new storage location)",
						 rec->schema, rec->name, relid, storage_describe(a->st), rec->generation);
	return error_set(err, ERRCODE_DATA_CORRUPTED,
					 "the manifest of %s.%s (tables/%" PRIu32 "/manifest.json) in %s is generation %" PRIu64
					 ", but head.json records generation %" PRIu64 ": it was replaced by an older copy (rolled back); "
					 "refusing to archive on top of the damage (restore the newer manifest, or archive to a new "
					 "storage location)",
					 m->schema, m->name, relid, storage_describe(a->st), m->generation, rec->generation);
}

/* The generation of a manifest's next store: above what it and head.json have seen. */
uint64_t
tables_next_generation(archiver *a, const manifest *m)
{
	const archive_head_table *rec = archive_head_find_table(&a->head, m->relid);
	uint64_t g = m->generation;

	if (rec && rec->generation > g)
		g = rec->generation;
	return g + 1;
}

/*
 * The newest position the manifest shows using the layout in effect where the stream resumes
 * (archived_to): that layout's start, the newest base's LSN when the base has it and the
 * stream has passed it (a base taken ahead of the stream says nothing of the changes before
 * it), the end of the newest segment's last transaction when that lies after the layout's
 * start (a row change of the table written with those columns: nothing commits between its
 * commit record and that end, so a change of the columns came after it).  Older, a restart
 * widened every window of an uncaptured change back to its segment's first commit.
 */
static uint64_t
layout_seen_at_load(const manifest *m)
{
	const manifest_layout *l = tables_layout_at(m, m->archived_to);
	uint64_t seen;

	if (l == NULL)
		return 0;
	seen = l->from_lsn;
	for (int i = 0; i < m->nbases; i++)
		if (m->bases[i].layout_id == l->id && m->bases[i].lsn <= m->archived_to && m->bases[i].lsn > seen)
			seen = m->bases[i].lsn;
	if (m->nsegments && m->segments[m->nsegments - 1].first_lsn > seen)
		seen = m->segments[m->nsegments - 1].first_lsn;
	if (m->nsegments && m->segments[m->nsegments - 1].last_end_lsn > seen &&
		m->segments[m->nsegments - 1].last_end_lsn <= m->archived_to)
		seen = m->segments[m->nsegments - 1].last_end_lsn;
	return seen;
}

/* Whether schema changes of the table are not captured in the stream at lsn (weak mode). */
bool
tables_ddl_weak_at(const archiver *a, const arch_table *t, uint64_t lsn)
{
	return !a->ddl_capture || t->man->ddl_capture_from == 0 || t->man->ddl_capture_from > lsn;
}

/* Load the table's manifest (or start a new one) and register it. */

int
tables_load(archiver *a, storage *st, uint32_t relid, const char *schema, const char *name, bool active,
			arch_table **out, bs_error *err)
{
	manifest *m = NULL;
	bool exists = false;
	arch_table *t = tables_find(a, relid);

	if (t)
	{
		t->active = t->active || active;
		*out = t;
		return BS_OK;
	}
	if ((a->format3 ? packlog_load(a, relid, &m, &exists, err) : manifest_load(st, relid, &m, &exists, err)) != BS_OK ||
		check_generation(a, relid, exists ? m : NULL, err) != BS_OK)
	{
		manifest_free(m);
		return BS_ERR;
	}
	if (!exists)
		m = manifest_new(relid, schema ? schema : "?", name ? name : "?");
	else if (schema && name && (strcmp(m->schema, schema) != 0 || strcmp(m->name, name) != 0) &&
			 !(a->ddl_capture && m->ddl_capture_from))
	{
		/* Renamed while schema changes were not captured: the name history records it from
		 * the archive's end, the nearest position known (captured, the stream brings it). */
		manifest_add_name(m, m->archived_to, schema, name);
	}
	*out = tables_add(a, m, active);
	schema_note_capture(a, *out);
	/* A re-base a column change asked for before a stop: taken at the first table check. */
	if (m->rebase_requested_at != 0 || manifest_open_schema_gap(m) != NULL)
		(*out)->rebase_wanted = true;
	(*out)->layout_seen = layout_seen_at_load(m);
	return BS_OK;
}

static uint64_t
table_base_bytes(const manifest *m)
{
	uint64_t n = 0;

	if (m->nbases == 0)
		return 0;
	for (int i = 0; i < m->bases[m->nbases - 1].nchunks; i++)
		n += m->bases[m->nbases - 1].chunks[i].raw_size;
	return n;
}

/* A column change asked for a base copy that is not stored, or not yet reached by what is
 * stored: the stored position lies in the window recovery refuses (a checkpoint waits). */
bool
tables_rebase_pending(archiver *a, const arch_table *t)
{
	if (t->man->rebase_requested_at != 0 && t->man->rebase_requested_at < a->flush_lsn)
		return true;
	/* A schema change found by a table check (not captured): refused until a new base copy. */
	if (manifest_open_schema_gap(t->man) != NULL)
		return true;
	return t->rebase_done_lsn != 0 && a->flush_lsn < t->rebase_done_lsn;
}

/* Why a table gets no recovery point: its changes do not reach the archiver (a checkpoint). */
void
tables_unpublished_reason(archiver *a, const arch_table *t, strbuf *sb)
{
	const manifest_gap *g = manifest_open_gap(t->man);
	char l[LSN_BUFLEN];

	strbuf_printf(sb, "table %s.%s is not in publication \"%s\" (which the replication slot streams): its changes "
				  "are not archived", t->man->schema, t->man->name, config_get(a->cfg, CFG_PUBLICATION));
	if (g)
		strbuf_printf(sb, " from %s on, until it is published again and a new base copy is taken",
					  lsn_format(g->from, l));
	strbuf_printf(sb, "; no recovery point can be verified");
}

/* A table that cannot be archived, in the log.  A partitioned table is no loss (its
 * partitions are archived): said, but not as a warning, and not counted as skipped. */
void
tables_report_skipped(const catalog_table *ct)
{
	if (ct->relkind == 'p')
		log_info("table %s.%s: %s", ct->schema, ct->name, ct->finding);
	else
		log_warning("table %s.%s is NOT archived: %s", ct->schema, ct->name, ct->finding);
}

/*
 * Whether relid is gone from the catalog and, if so, the server's WAL insert position now:
 * the statement's snapshot, taken before the position is read, saw the DROP committed, so
 * the DROP's commit record (and every change of the table before it) lies before *pos.
 */
int
tables_gone_position(PGconn *conn, uint32_t relid, bool *gone, uint64_t *pos, bs_error *err)
{
	PGresult *res;
	char oid[16];
	const char *params[1] = {oid};

	snprintf(oid, sizeof(oid), "%u", relid);
	if (pgsql_query_params(conn, "SELECT NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = $1::oid), "
						   "pg_current_wal_insert_lsn()::text", 1, params, &res, err) != BS_OK)
		return BS_ERR;
	*gone = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	if (PQntuples(res) != 1 || lsn_parse(PQgetvalue(res, 0, 1), pos) != BS_OK)
	{
		PQclear(res);
		return error_set(err, ERRCODE_PROTOCOL, "could not read the server's WAL insert position");
	}
	PQclear(res);
	return BS_OK;
}

/*
 * A table found dropped: keep its changes until the stream has passed pos, then mark it
 * dropped (uploader_finish_drops).  Decoding reads the catalog as it was when each change was made,
 * so changes committed before the DROP still arrive after the table is gone.
 */
void
tables_found_gone(archiver *a, arch_table *t, uint64_t pos, const char *when)
{
	char l[LSN_BUFLEN];

	t->gone_lsn = pos;
	t->gone_passed = false;
	t->rebase_wanted = false;
	if (a->gone_next == 0 || pos < a->gone_next)
		a->gone_next = pos;
	log_warning("table %s.%s was dropped%s; its changes committed before the drop are still archived "
				"from the stream (the drop lies before %s), then it is marked dropped",
				t->man->schema, t->man->name, when, lsn_format(pos, l));
}

/*
 * The stream passes a dropped table's position only once WAL after it is decoded, which on
 * an idle server may never happen by itself.  A tiny transaction writing a logical message
 * (pgoutput does not send it) puts WAL there at once; failing (no privilege) only delays.
 */
static void
write_wal_marker(archiver *a)
{
	bs_error err;

	error_clear(&err);
	if (pgsql_exec(a->conn, "BEGIN; SET LOCAL synchronous_commit = local; "
				   "SELECT pg_logical_emit_message(true, 'backstop', ''); COMMIT", &err) != BS_OK)
	{
		log_debug("could not write WAL past a dropped table: %s", err.message);
		pgsql_exec(a->conn, "ROLLBACK", &err);
	}
}

/* The stream has passed a dropped table's gone_lsn: ask for the seal (or the head) that stores
 * everything before it, so that the table is marked dropped without waiting for segment_age.
 * Called at every commit and keepalive: a comparison unless a dropped table waits. */
void
tables_check_gone_passed(archiver *a)
{
	bs_error err;

	if (a->gone_next == 0 || a->received_lsn < a->gone_next || a->in_txn)
		return;
	a->gone_next = 0;
	for (int i = 0; i < a->ntables; i++)
	{
		arch_table *t = a->tables[i];

		if (t->gone_lsn == 0 || t->gone_passed || !t->active)
			continue;
		if (a->received_lsn >= t->gone_lsn)
			t->gone_passed = true;
		else if (a->gone_next == 0 || t->gone_lsn < a->gone_next)
			a->gone_next = t->gone_lsn;
	}
	error_clear(&err);
	if (a->open_bytes > 0)
	{
		if (uploader_seal_epoch(a, false, &err) != BS_OK)
			log_warning("%s", err.message);
	}
	else if (!a->spool_pending && a->jobs_head == NULL)
		uploader_idle_progress(a, a->last_commit_end, true);
}

/* A test hook's wait (doc/HACKING.md): until the test's advisory lock key can be had (shared),
 * released at once, on the archiver's own connection (the event loop waits with it); a failure
 * only ends the wait. */
static void
test_hook_wait(archiver *a, int64_t key)
{
	char sql[160];
	bs_error e;

	error_clear(&e);
	snprintf(sql, sizeof(sql), "SELECT pg_advisory_lock_shared(%lld), pg_advisory_unlock_shared(%lld)",
			 (long long) key, (long long) key);
	(void) pgsql_exec(a->conn, sql, &e);
}

/*
 * Make the publication publish list (catalog_sync_publication).  A table check's update that
 * fails because a table of the list was dropped after the list was read (42P01) reads the list
 * again (*list replaced) and tries once more at once: the next check would succeed, but tables
 * new since the last check would wait for it.
 */
static int
sync_publication(archiver *a, catalog_table_list *list, bool startup, char **as_is, uint32_t **added, int *nadded,
				 bs_error *err)
{
	const char *pubname = config_get(a->cfg, CFG_PUBLICATION);
	/* At start-up there is no stream without it (it waits); later, a session's DDL on a new
	 * table is not waited for long, nor held up: the next check tries again. */
	int64_t lock_timeout_ms = startup ? 0 : config_get_duration_ms(a->cfg, CFG_BASE_LOCK_TIMEOUT);
	catalog_table_list fresh;
	bs_error lerr;

	if (!startup && a->test_pub_update_lock_key != 0)
		test_hook_wait(a, a->test_pub_update_lock_key);
	if (catalog_sync_publication(a->conn, pubname, list, as_is, lock_timeout_ms, added, nadded, err) == BS_OK)
		return BS_OK;
	if (startup || strcmp(err->code, ERRCODE_UNDEFINED_TABLE) != 0)
		return BS_ERR;
	log_info("publication \"%s\": a table to publish was dropped while the publication was updated; reading the "
			 "tables again", pubname);
	error_clear(&lerr);
	if (catalog_list_tables(a->conn, config_get(a->cfg, CFG_TABLES), config_get_bool(a->cfg, CFG_ALL_TABLES),
							&fresh, &lerr) != BS_OK)
	{
		/* Every listed table dropped: nothing to publish (as tables_poll reads it). */
		if (strcmp(lerr.code, ERRCODE_UNDEFINED_TABLE) != 0)
		{
			log_warning("could not read the tables again: %s", lerr.message);
			return BS_ERR;
		}
		memset(&fresh, 0, sizeof(fresh));
	}
	catalog_table_list_free(list);
	*list = fresh;
	if (a->test_pub_update_lock_key != 0)
		test_hook_wait(a, a->test_pub_update_lock_key + 1);
	free(*as_is);
	*as_is = NULL;
	error_clear(err);
	return catalog_sync_publication(a->conn, pubname, list, as_is, lock_timeout_ms, added, nadded, err);
}

/*
 * Why the publication does not stream all of a table, by catalog_publication_members' state ('x',
 * 'f', else 'n'), into sb; why_not names the cause of an 'n'.
 */
void
tables_publication_finding(archiver *a, char state, const char *schema, const char *name, const char *why_not,
						   strbuf *sb)
{
	const char *pubname = config_get(a->cfg, CFG_PUBLICATION);
	char *q = quote_qualified_name(schema, name);

	if (state == 'x')
		strbuf_printf(sb, "published by publication \"%s\" with its stored generated columns "
					  "(publish_generated_columns = stored, or a column list naming them): base copies and "
					  "recovery leave generated columns to PostgreSQL, so the stream's rows would not match the "
					  "archive's, and it is not archived (the publication's owner can stop that: ALTER "
					  "PUBLICATION %s SET (publish_generated_columns = none), or a column list without them)",
					  pubname, pubname);
	else if (state == 'f')
		strbuf_printf(sb, "not in publication \"%s\" as a whole: it is published with a row filter or a "
					  "column list, so only part of its changes reach the archiver, and it is not archived "
					  "(the publication's owner can publish all of it: ALTER PUBLICATION %s SET TABLE ...)",
					  pubname, pubname);
	else
		strbuf_printf(sb, "not in publication \"%s\", which the replication slot streams: its changes do not "
					  "reach the archiver, so it is not archived (%s; the publication's owner can add it: "
					  "ALTER PUBLICATION %s ADD TABLE %s, or use a publication FOR ALL TABLES)",
					  pubname, why_not, pubname, q);
	free(q);
}

/*
 * A table the archiver had archived that this check's update of its publication put back
 * (ct->put_back): it was taken out of it since the last check (ALTER PUBLICATION outside the
 * archiver), or, at start-up, while the archiver was stopped, and its changes in between were not
 * streamed.  Its archive ends as for a table that left (tables_set_unpublished: from the last
 * position it was seen published; at start-up, where its archive is complete); published again,
 * the table check takes a new base copy, which closes the gap.  True when the manifest changed.
 */
bool
tables_put_back(archiver *a, arch_table *t, const catalog_table *found, bool startup)
{
	catalog_table ct;
	strbuf sb = STRBUF_INIT;
	bool changed;

	if (t == NULL || found == NULL || !found->put_back || !t->active || t->unpublished || t->gone_lsn != 0 ||
		t->man->nbases == 0 || strcmp(t->man->status, "active") != 0 || manifest_open_gap(t->man) != NULL)
		return false;
	ct = *found;
	if (startup)
		strbuf_printf(&sb, "taken out of publication \"%s\" outside the archiver while it was stopped or after its "
					  "last table check (ALTER PUBLICATION ... DROP TABLE, or SET TABLE without it or with a row "
					  "filter or column list): its changes meanwhile did not (all) reach the archiver; start-up has "
					  "put it back", config_get(a->cfg, CFG_PUBLICATION));
	else
		strbuf_printf(&sb, "taken out of publication \"%s\" outside the archiver since the last table check (ALTER "
					  "PUBLICATION ... DROP TABLE, or SET TABLE without it or with a row filter or column list): "
					  "its changes meanwhile did not (all) reach the archiver; the table check has put it back", config_get(a->cfg, CFG_PUBLICATION));
	ct.finding = sb.data;
	changed = tables_set_unpublished(t, &ct, tables_unpublished_from(a, t));
	strbuf_free(&sb);
	return changed;
}

/*
 * At an orderly stop, before the final seal: the archived tables the publication no longer
 * streams (whole).  One taken out of it since the last table check (ALTER PUBLICATION outside
 * the archiver) was not streamed since, yet the archive is stored up to the stop, past the ALTER;
 * the next start-up could only put it back with a gap from there.  Its archive ends now where it
 * was last seen published (tables_set_unpublished; stored by the final seal).  A read that fails
 * is said, and changes nothing.
 */
void
tables_check_membership_at_stop(archiver *a)
{
	uint32_t *relids = xcalloc((size_t) a->ntables + 1, sizeof(uint32_t));
	arch_table **which = xcalloc((size_t) a->ntables + 1, sizeof(arch_table *));
	char *state = xcalloc((size_t) a->ntables + 1, 1);
	int n = 0;
	uint64_t seen = 0;
	bs_error err;

	for (int i = 0; i < a->ntables; i++)
	{
		arch_table *t = a->tables[i];

		if (!t->active || t->unpublished || t->gone_lsn != 0 || t->man->nbases == 0 ||
			strcmp(t->man->status, "active") != 0 || manifest_open_gap(t->man) != NULL)
			continue;
		which[n] = t;
		relids[n++] = t->relid;
	}
	error_clear(&err);
	if (n > 0 && PQstatus(a->conn) == CONNECTION_OK &&
		catalog_publication_members(a->conn, config_get(a->cfg, CFG_PUBLICATION), n, relids, state, &seen,
									config_get_duration_ms(a->cfg, CFG_BASE_LOCK_TIMEOUT), &err) != BS_OK)
		log_warning("publication check at the stop: %s", err.message);
	else
		for (int i = 0; i < n; i++)
		{
			arch_table *t = which[i];
			catalog_table ct;
			strbuf sb = STRBUF_INIT;

			if (state[i] == 'p' && seen > t->pub_seen_lsn)
				t->pub_seen_lsn = seen;
			if (state[i] != 'n' && state[i] != 'f' && state[i] != 'x')
				continue;		/* published, or gone (the next start-up finds it dropped) */
			memset(&ct, 0, sizeof(ct));
			ct.relid = t->relid;
			ct.schema = t->man->schema;
			ct.name = t->man->name;
			tables_publication_finding(a, state[i], t->man->schema, t->man->name,
									   "it was taken out of the publication after the archiver last saw it there, "
									   "outside the archiver; found at the stop", &sb);
			ct.finding = sb.data;
			tables_set_unpublished(t, &ct, tables_unpublished_from(a, t));
			strbuf_free(&sb);
		}
	free(relids);
	free(which);
	free(state);
}

/* New or dropped tables, and re-bases that keep recovery time bounded. */
/*
 * Coverage is claimed only for what the stream delivers (doc/archiving.md, "The
 * publication"): the publication is made right where this role may (sync_publication),
 * then every table of the list it does not publish is taken out of it (usable = false,
 * unpublished, with a finding).  Tables it publishes are noted as seen at the check's
 * position (pub_seen_lsn), the start of their archive's end should they leave it.  When a
 * check's update failed because a table was dropped meanwhile, a table new since the last
 * check that it would have added is not archived yet (publish_pending): the next check adds it.
 */
int
tables_check_publication(archiver *a, catalog_table_list *list, bool startup, bs_error *err)
{
	const char *pubname = config_get(a->cfg, CFG_PUBLICATION);
	char *as_is = NULL;
	char *not_updated = NULL;	/* why the update failed, when the next check may succeed */
	uint32_t *relids = NULL;
	uint32_t *added = NULL;
	int nadded = 0;
	char *state = NULL;
	uint64_t seen = 0;

	if (sync_publication(a, list, startup, &as_is, &added, &nadded, err) != BS_OK)
	{
		/* At start-up there is no stream without it; later (a table dropped between the two
		 * reads, or a table's lock not had, say) the next check tries again, and what it
		 * publishes is read below. */
		if (startup)
			return BS_ERR;
		/* A lock not had within --base-lock-timeout (the update's, or from 16 on the listing's,
		 * which the read of the members below then meets too and fails the check) is a reason
		 * of the moment, as a table dropped meanwhile is: new tables wait for the next check. */
		if (strcmp(err->code, ERRCODE_LOCK_NOT_AVAILABLE) == 0)
			log_info("%s", err->message);
		else
			log_warning("%s", err->message);
		if (strcmp(err->code, ERRCODE_UNDEFINED_TABLE) == 0 || strcmp(err->code, ERRCODE_LOCK_NOT_AVAILABLE) == 0)
			not_updated = xstrdup(err->message);
		error_clear(err);
	}
	/* Before the members are read: a table put back is seen published from here on.  At
	 * start-up the tables are not loaded yet: start-up calls tables_put_back once they are. */
	for (int i = 0; i < nadded; i++)
	{
		catalog_table *ct = (catalog_table *) catalog_find(list, added[i]);

		if (ct == NULL)
			continue;
		ct->put_back = true;
		if (!startup)
			tables_put_back(a, tables_find(a, ct->relid), ct, false);
	}
	free(added);
	if (as_is && (a->pub_as_is == NULL || strcmp(as_is, a->pub_as_is) != 0))
		log_info("publication \"%s\" is used as it is (%s): only the tables it publishes are archived", pubname,
				 as_is);
	free(a->pub_as_is);
	a->pub_as_is = as_is;
	relids = xcalloc((size_t) list->count + 1, sizeof(uint32_t));
	state = xcalloc((size_t) list->count + 1, 1);
	for (int i = 0; i < list->count; i++)
		relids[i] = list->tables[i].relid;
	/* The test hook BACKSTOP_TEST_PUBLICATION_MEMBERS_LOCK (doc/HACKING.md). */
	if (!startup && a->test_members_lock_key != 0)
		test_hook_wait(a, a->test_members_lock_key);
	if (catalog_publication_members(a->conn, pubname, list->count, relids, state, &seen,
									startup ? 0 : config_get_duration_ms(a->cfg, CFG_BASE_LOCK_TIMEOUT), err) != BS_OK)
	{
		free(not_updated);
		free(relids);
		free(state);
		return BS_ERR;
	}
	for (int i = 0; i < list->count; i++)
	{
		catalog_table *ct = &list->tables[i];
		strbuf sb = STRBUF_INIT;

		if (state[i] == 'p')
		{
			arch_table *t = tables_find(a, ct->relid);

			/* A checkpoint may have seen it published later (checkpoint_placed). */
			if (t && seen > t->pub_seen_lsn)
				t->pub_seen_lsn = seen;
			continue;
		}
		/* Gone meanwhile: the next check finds it dropped. */
		if ((state[i] != 'n' && state[i] != 'f' && state[i] != 'x') || !ct->usable)
			continue;
		/* New since the last check, and the update that would have added it failed for a
		 * reason of the moment: not refused, not recorded; the next check adds it. */
		if (state[i] == 'n' && not_updated && tables_find(a, ct->relid) == NULL)
		{
			log_warning("table %s.%s is not archived yet: the publication could not be updated (%s); the next "
						"table check tries again", ct->schema, ct->name, not_updated);
			ct->publish_pending = true;
			continue;
		}
		tables_publication_finding(a, state[i], ct->schema, ct->name, as_is ? as_is : "it could not be added", &sb);
		free(ct->finding);
		ct->finding = strbuf_detach(&sb, NULL);
		ct->usable = false;
		ct->unpublished = true;
	}
	free(not_updated);
	free(state);
	free(relids);
	return BS_OK;
}

/*
 * The position from which an archived table's changes are not known to be archived.  Seen
 * published by a check that read seen_lsn first, the table left with an ALTER PUBLICATION whose
 * commit record lies at or after seen_lsn: every commit up to seen_lsn is still streamed (and
 * archived: the table stays active), hence seen_lsn + 1.  Not seen by this run: where its
 * archive is complete.
 */
uint64_t
tables_unpublished_from(archiver *a, const arch_table *t)
{
	if (t->pub_seen_lsn)
		return t->pub_seen_lsn + 1;
	return audit_complete_to(t->man, &a->head);
}

/* Record t as skipped with ct's finding, and say so in the log, unless it already is: true
 * when the manifest changed. */
static bool
mark_skipped(arch_table *t, const catalog_table *ct)
{
	if (t->man->status && strcmp(t->man->status, "skipped") == 0 && t->man->finding &&
		strcmp(t->man->finding, ct->finding) == 0)
		return false;
	free(t->man->status);
	free(t->man->finding);
	t->man->status = xstrdup("skipped");
	t->man->finding = xstrdup(ct->finding);
	tables_report_skipped(ct);
	t->dirty = true;
	return true;
}

/*
 * A table of the list that the publication does not stream (any more).  One never archived is
 * recorded as skipped, with the finding.  An archived one keeps its manifest and history, and
 * its archive ends at from: an open gap (doc/FORMAT.md, "gaps") that the next base copy, once
 * it is published again, closes; recovery refuses points from there on.  True when the
 * manifest changed.
 */
bool
tables_set_unpublished(arch_table *t, const catalog_table *ct, uint64_t from)
{
	char l[LSN_BUFLEN];
	bool was = t->unpublished;

	t->unpublished = true;
	if (t->man->nbases == 0 || strcmp(t->man->status, "skipped") == 0)
		return mark_skipped(t, ct);
	if (manifest_open_gap(t->man) != NULL)
	{
		t->active = true;
		if (!was)
			log_warning("table %s.%s is still not archived (its archive ends at %s): %s", t->man->schema,
						t->man->name, lsn_format(manifest_open_gap(t->man)->from, l), ct->finding);
		return false;
	}
	manifest_add_gap(t->man, from, UINT64_MAX);
	/* What the stream still carries of it (commits before it left) is archived as before. */
	t->active = true;
	t->dirty = true;
	log_warning("table %s.%s left the archived set: %s; its archive ends at %s (recovery points from there on are "
				"refused) until it is published again and a new base copy is taken",
				t->man->schema, t->man->name, ct->finding, lsn_format(from, l));
	return true;
}

/*
 * A table archived by an earlier run that is no longer among the tables to archive (removed
 * from --tables, or out of --all-tables' reach): its archive ends where it was complete, as
 * an open gap, so that no later point is recovered from a history that stopped.  Start-up.
 */
static int
table_left_archive(archiver *a, manifest *m, bs_error *err)
{
	uint64_t from = audit_complete_to(m, &a->head);
	char l[LSN_BUFLEN];

	if (m->nbases == 0 || manifest_open_gap(m) != NULL)
		return BS_OK;
	manifest_add_gap(m, from, UINT64_MAX);
	log_warning("table %s.%s (relid %u) still exists but is no longer among the tables to archive: its archive "
				"ends at %s (recovery points from there on are refused)", m->schema, m->name, m->relid,
				lsn_format(from, l));
	if (a->format3)
	{
		/* The gap is an event of the next pack: the table is known, not archived. */
		tables_add(a, m, false)->dirty = true;
		return BS_OK;
	}
	return uploader_store_manifest_now(a, m, err);
}

int
tables_poll(archiver *a, bs_error *err)
{
	catalog_table_list list;
	arch_table **need = NULL;
	int nneed = 0;
	bool found_gone = false;
	int64_t rebase_age_us = config_get_duration_ms(a->cfg, CFG_REBASE_AGE) * 1000;
	int64_t ratio = config_get_int(a->cfg, CFG_REBASE_RATIO);
	int64_t min_interval_us = config_get_duration_ms(a->cfg, CFG_REBASE_MIN_INTERVAL) * 1000;

	if (PQstatus(a->conn) != CONNECTION_OK && stream_reconnect_conn(a, err) != BS_OK)
		return BS_ERR;
	if (catalog_list_tables(a->conn, config_get(a->cfg, CFG_TABLES), config_get_bool(a->cfg, CFG_ALL_TABLES),
							&list, err) != BS_OK)
	{
		/* Every listed table dropped is not an error here: they are marked below. */
		if (strcmp(err->code, ERRCODE_UNDEFINED_TABLE) != 0)
			return BS_ERR;
		memset(&list, 0, sizeof(list));
	}
	if (tables_check_publication(a, &list, false, err) != BS_OK)
	{
		catalog_table_list_free(&list);
		return BS_ERR;
	}
	for (int i = 0; i < a->ntables; i++)
	{
		arch_table *t = a->tables[i];

		if (t->active && t->gone_lsn == 0 && catalog_find(&list, t->relid) == NULL &&
			strcmp(t->man->status, "active") == 0)
		{
			bool gone;
			uint64_t pos;

			/* Not marked dropped yet: its changes may still be in the stream (tables_found_gone). */
			if (tables_gone_position(a->conn, t->relid, &gone, &pos, err) != BS_OK)
			{
				log_warning("table check of %s.%s: %s", t->man->schema, t->man->name, err->message);
				continue;
			}
			if (gone)
			{
				tables_found_gone(a, t, pos, "");
				found_gone = true;
			}
		}
	}
	if (found_gone)
		write_wal_marker(a);
	for (int i = 0; i < list.count; i++)
	{
		catalog_table *ct = &list.tables[i];
		arch_table *t = tables_find(a, ct->relid);

		if (ct->publish_pending)
			continue;			/* said by tables_check_publication: the next check adds it */
		if (t && ct->unpublished)
		{
			/* Out of the publication (or never in it): its changes do not arrive.  Its
			 * renames are followed all the same, so that recover refuses it by its name
			 * now with the reason rather than "not in the archive". */
			schema_poll_rename(a, t, ct);
			tables_set_unpublished(t, ct, tables_unpublished_from(a, t));
			continue;
		}
		if (t && t->unpublished)
		{
			log_info("table %s.%s is in publication \"%s\" again: taking a new base copy", ct->schema, ct->name,
					 config_get(a->cfg, CFG_PUBLICATION));
			t->unpublished = false;
			t->active = true;
		}
		if (t && t->active)
		{
			int64_t base_age;
			/* A copy gave way to the table's users a moment ago: not again before its backoff. */
			bool backoff = t->base_retry_ms != 0 && clock_mono_ms() < t->base_retry_ms;

			schema_poll_rename(a, t, ct);
			if (schema_poll_layout(a, t, err) != BS_OK)
			{
				log_warning("table check of %s.%s: %s", t->man->schema, t->man->name, err->message);
				error_clear(err);
			}
			base_age = t->man->nbases ? clock_unix_us() - t->man->bases[t->man->nbases - 1].time : 0;

			/* A busy small table outgrows its base in seconds: re-basing it at every check
			 * would stall the stream for nothing, hence the minimum interval. */
			/* nbases == 0: a first base that failed or was discarded is taken again. */
			if (!backoff &&
				(t->rebase_wanted || t->man->nbases == 0 || manifest_open_gap(t->man) != NULL ||
				 (t->man->nbases && rebase_age_us > 0 && base_age > rebase_age_us) ||
				 (ratio > 0 && base_age >= min_interval_us &&
				  t->change_bytes * 100 > (uint64_t) ratio * (table_base_bytes(t->man) + 1))))
			{
				need = xrealloc(need, (size_t) (nneed + 1) * sizeof(arch_table *));
				need[nneed++] = t;
			}
			continue;
		}
		if (tables_load(a, a->st_main, ct->relid, ct->schema, ct->name, ct->usable, &t, err) != BS_OK)
			goto fail;
		if (ct->unpublished)
		{
			tables_set_unpublished(t, ct, tables_unpublished_from(a, t));
			continue;
		}
		if (!ct->usable)
		{
			t->partitioned = ct->relkind == 'p';
			mark_skipped(t, ct);
			continue;
		}
		if (t->man->nbases == 0 || strcmp(t->man->status, "active") != 0 || manifest_open_gap(t->man) != NULL)
		{
			need = xrealloc(need, (size_t) (nneed + 1) * sizeof(arch_table *));
			need[nneed++] = t;
		}
	}
	/* One job at a time: what is needed meanwhile is found again at the next check (so no
	 * table is queued while it is being copied). */
	if (nneed > 0 && a->bjob == NULL)
	{
		log_info("taking %d base cop%s in the background", nneed, nneed == 1 ? "y" : "ies");
		basejob_start(a, need, nneed);
	}
	free(need);
	catalog_table_list_free(&list);
	return BS_OK;
fail:
	free(need);
	catalog_table_list_free(&list);
	return BS_ERR;
}

/*
 * The test hook BACKSTOP_TEST_TABLE_CHECK_LOCK (doc/HACKING.md): while a test holds the advisory
 * lock, table checks are skipped (and say so in the log), so that the test decides what happens
 * between two of them; the rest of the loop (the stream, base copies added) runs on.
 */
bool
tables_check_held(archiver *a)
{
	char sql[128];
	PGresult *res;
	bs_error e;
	bool held;

	if (a->test_check_lock_key == 0)
		return false;
	error_clear(&e);
	snprintf(sql, sizeof(sql), "SELECT pg_try_advisory_lock_shared(%lld)", (long long) a->test_check_lock_key);
	if (pgsql_query(a->conn, sql, &res, &e) != BS_OK)
		return false;			/* the check itself reports a lost connection */
	held = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "f") == 0;
	PQclear(res);
	if (held)
		log_info("table check skipped: a test holds advisory lock %lld (BACKSTOP_TEST_TABLE_CHECK_LOCK)",
				 (long long) a->test_check_lock_key);
	else
	{
		snprintf(sql, sizeof(sql), "SELECT pg_advisory_unlock_shared(%lld)", (long long) a->test_check_lock_key);
		(void) pgsql_exec(a->conn, sql, &e);
	}
	return held;
}

/* ---------- tables missing at start-up ---------- */

/* An archived table missing from the catalog at start-up (m is taken over). */
static int
start_gone_table(archiver *a, manifest *m, bs_error *err)
{
	bool gone;
	uint64_t pos;

	/* Not older than head.json records (a rolled-back manifest refuses the start). */
	if (check_generation(a, m->relid, m, err) != BS_OK)
	{
		manifest_free(m);
		return BS_ERR;
	}
	if (strcmp(m->status, "active") != 0 || tables_find(a, m->relid) != NULL)
	{
		manifest_free(m);
		return BS_OK;
	}
	if (tables_gone_position(a->conn, m->relid, &gone, &pos, err) != BS_OK)
	{
		manifest_free(m);
		return BS_ERR;
	}
	if (!gone)
	{
		/* Renamed (--tables names the old name) or otherwise out of the archived set. */
		int rc = table_left_archive(a, m, err);

		if (!(a->format3 && tables_find(a, m->relid) != NULL && tables_find(a, m->relid)->man == m))
			manifest_free(m);
		return rc;
	}
	tables_found_gone(a, tables_add(a, m, true), pos, " while the archiver was stopped");
	return BS_OK;
}

/*
 * Archived tables that no longer exist: dropped while the archiver was stopped.  Their
 * changes since the slot's confirmed position are still in the stream and are archived like
 * any others until it passes the drop.  A name in --tables that was never archived is refused
 * (probably a typo).  Every active manifest of a table no longer in the catalog is one (a
 * table dropped and re-created under its name, say); a manifest that cannot be read is
 * reported and left alone.
 */
int
tables_find_gone(archiver *a, const catalog_table_list *list, bs_error *err)
{
	uint32_t *relids = NULL;
	int n = 0;

	for (int i = 0; i < list->nmissing; i++)
	{
		manifest *m = NULL;

		if ((a->format3 ? packlog_find_table(a, list->missing[i], &m, err) :
			 audit_find_table(a->st, &a->head, list->missing[i], &m, err)) != BS_OK)
		{
			if (strcmp(err->code, ERRCODE_UNDEFINED_TABLE) == 0)
				return error_set(err, ERRCODE_UNDEFINED_TABLE, "table \"%s\" does not exist and was never archived",
								 list->missing[i]);
			return error_prefix(err, "table \"%s\" does not exist", list->missing[i]);
		}
		if (start_gone_table(a, m, err) != BS_OK)
			return BS_ERR;
	}
	if ((a->format3 ? packlog_relids(a, &relids, &n, err) : manifest_list_relids(a->st, &relids, &n, err)) != BS_OK)
		return BS_ERR;
	for (int i = 0; i < n; i++)
	{
		manifest *m = NULL;
		bool exists;
		bs_error lerr;

		if (catalog_find(list, relids[i]) != NULL || tables_find(a, relids[i]) != NULL)
			continue;
		error_clear(&lerr);
		if ((a->format3 ? packlog_load(a, relids[i], &m, &exists, &lerr) :
			 manifest_load(a->st, relids[i], &m, &exists, &lerr)) != BS_OK)
		{
			if (strcmp(lerr.code, ERRCODE_DATA_CORRUPTED) != 0)
			{
				*err = lerr;
				free(relids);
				return BS_ERR;
			}
			log_warning("%s (not a table of the database now; left alone)", lerr.message);
			continue;
		}
		if (exists && start_gone_table(a, m, err) != BS_OK)
		{
			free(relids);
			return BS_ERR;
		}
	}
	free(relids);
	if (a->gone_next != 0)
		write_wal_marker(a);
	return BS_OK;
}
