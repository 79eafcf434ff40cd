/* startup.c — the archiver's start-up: slot, publication, stored tables, spool recovery, first base copies. */
#include "autoconf.h"
#include "archiver.h"
#include "audit.h"
#include "basecopy.h"
#include "catalog.h"
#include "codec.h"
#include "log.h"
#include "lsn.h"
#include "manifest.h"
#include "pgsql.h"
#include "quote.h"
#include "storage.h"
#include "strbuf.h"
#include "config.h"
#include "error.h"
#include "archiver_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Attempts at a first base copy that gives way to a lock, and the first wait (doubled). */
#define FIRST_COPY_ATTEMPTS 6
#define FIRST_COPY_RETRY_MS 1000

/*
 * A table's base copy at the new slot's point.  One that gives way to a session's lock is
 * taken again under the same snapshot a few times (no lock is held meanwhile): every table
 * needs its copy at this point (the gap of an earlier slot ends there), so after that the
 * start fails, saying why.
 */
static int
first_base_copy(archiver *a, const char *snapshot, const basecopy_options *opts, const basecopy_target *target,
				uint64_t lsn, basecopy_result *r, bs_error *err)
{
	int64_t delay = FIRST_COPY_RETRY_MS;

	for (int attempt = 1;; attempt++)
	{
		if (basecopy_table_in_snapshot(a->conn, snapshot, a->st, opts, target, lsn, r, err) == BS_OK)
			return BS_OK;
		/* A table dropped meanwhile fails the start as before: the next one finds it gone. */
		if (!basecopy_error_yields(err) || strcmp(err->code, ERRCODE_UNDEFINED_TABLE) == 0)
			return BS_ERR;
		if (attempt == FIRST_COPY_ATTEMPTS)
			return error_prefix(err, "the first base copy of %s.%s gave way %d times (start again when the session "
								"holding its lock is done)", target->schema, target->name, attempt);
		log_warning("%s (taken again in %lld ms)", err->message, (long long) delay);
		usleep((useconds_t) delay * 1000);
		delay *= 2;
	}
}

/*
 * The archive's format: an existing archive's own (a format-3 head), else archive_format for a
 * new one.  A format-1/2 archive is not converted (yet): asking for format 3 there is refused.
 */
static int
startup_choose_format(archiver *a, bool head_exists, bs_error *err)
{
	bool want3 = strcmp(config_get(a->cfg, CFG_ARCHIVE_FORMAT), "3") == 0;

	a->format3 = head_exists ? a->head.format == ARCHIVE_HEAD_FORMAT_PACKS : want3;
	if (head_exists && want3 && !a->format3)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "the archive at %s is in format %d; archive_format 3 "
						 "applies to a new archive (format-%d archives are not converted yet)",
						 storage_describe(a->st), a->head.format, a->head.format);
	if (!head_exists && want3)
	{
		uint32_t *relids = NULL;
		int n = 0;

		/* Manifests without a head: an archive written before heads existed. */
		if (manifest_list_relids(a->st, &relids, &n, err) != BS_OK)
			return BS_ERR;
		free(relids);
		if (n > 0)
			return error_set(err, ERRCODE_INVALID_PARAMETER, "the archive at %s holds format-1 manifests; "
							 "archive_format 3 applies to a new archive", storage_describe(a->st));
	}
	return BS_OK;
}

int
startup_setup(archiver *a, bs_error *err)
{
	PGresult *res;
	const char *slot = config_get(a->cfg, CFG_SLOT);
	const char *params[1] = {slot};
	char *wal_level = NULL;
	catalog_table_list list;
	bool slot_exists;
	uint64_t max_seal = 0;
	bool head_exists = false;
	PGconn *repl = NULL;
	char *sysid = NULL, *dbname = NULL;

	if (pgsql_query_value(a->conn, "SHOW wal_level", &wal_level, err) != BS_OK)
		return BS_ERR;
	if (strcmp(wal_level, "logical") != 0)
	{
		error_set(err, ERRCODE_INVALID_PARAMETER,
				  "wal_level is \"%s\": logical replication needs wal_level = logical (and a restart)", wal_level);
		free(wal_level);
		return BS_ERR;
	}
	free(wal_level);

	/* A slot another process streams from (a second archiver on it): refuse before anything is
	 * stored.  START_REPLICATION would refuse it too, but only after base copies were taken. */
	if (pgsql_query_params(a->conn, "SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1 AND active",
						   1, params, &res, err) != BS_OK)
		return BS_ERR;
	if (PQntuples(res) > 0)
	{
		error_set(err, ERRCODE_OBJECT_IN_USE,
				  "replication slot \"%s\" is active for PID %s: another archiver (or pg_recvlogical) is "
				  "streaming from it; stop it, or give this archiver its own --slot", slot,
				  PQgetisnull(res, 0, 0) ? "?" : PQgetvalue(res, 0, 0));
		PQclear(res);
		return BS_ERR;
	}
	PQclear(res);

	/* The archive must belong to this cluster and database. */
	if (pgsql_connect(config_get(a->cfg, CFG_DB), true, "backstop archive", &repl, err) != BS_OK)
		return BS_ERR;
	res = PQexec(repl, "IDENTIFY_SYSTEM");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) < 4)
	{
		pgsql_set_error(err, repl, res, "IDENTIFY_SYSTEM failed (does the role have REPLICATION?)");
		PQclear(res);
		PQfinish(repl);
		return BS_ERR;
	}
	sysid = xstrdup(PQgetvalue(res, 0, 0));
	dbname = xstrdup(PQgetisnull(res, 0, 3) ? "" : PQgetvalue(res, 0, 3));
	PQclear(res);
	if (archive_head_load_any(a->st, &a->head, &head_exists, err) != BS_OK)
		goto fail;
	if (startup_choose_format(a, head_exists, err) != BS_OK)
		goto fail;
	if (head_exists && a->head.system_identifier &&
		(strcmp(a->head.system_identifier, sysid) != 0 || strcmp(a->head.database ? a->head.database : "", dbname) != 0))
	{
		error_set(err, ERRCODE_INVALID_PARAMETER,
				  "storage %s holds the archive of another database (system %s, database \"%s\"), not system %s database \"%s\"",
				  storage_describe(a->st), a->head.system_identifier, a->head.database ? a->head.database : "",
				  sysid, dbname);
		goto fail;
	}
	if (!head_exists)
	{
		archive_head_init(&a->head);
		a->head.system_identifier = xstrdup(sysid);
		a->head.database = xstrdup(dbname);
		if (a->format3)
			a->head.format = ARCHIVE_HEAD_FORMAT_PACKS;
	}
	else if (a->head.format < 2 && uploader_record_manifests(a, err) != BS_OK)
		goto fail;
	a->head_written_lsn = a->head.flushed_lsn;
	if (archiver_take_lease(a, err) != BS_OK)
		goto fail;
	if (a->format3 && packlog_start(a, err) != BS_OK)
		goto fail;
	if (schema_ddl_setup(a, err) != BS_OK)
		goto fail;

	if (catalog_list_tables(a->conn, config_get(a->cfg, CFG_TABLES), config_get_bool(a->cfg, CFG_ALL_TABLES),
							&list, err) != BS_OK)
		goto fail;
	if (tables_check_publication(a, &list, true, err) != BS_OK)
		goto fail_list;
	for (int i = 0; i < list.count; i++)
	{
		arch_table *t;
		catalog_table *ct = &list.tables[i];

		if (tables_load(a, a->st, ct->relid, ct->schema, ct->name, ct->usable, &t, err) != BS_OK)
			goto fail_list;
		/* Out of the publication; or put back into it by tables_check_publication above after it
		 * was taken out while the archiver was stopped (changes in between never streamed): its
		 * archive ends where it was complete, and the first table check takes a new base copy. */
		if (ct->unpublished || tables_put_back(a, t, ct, true))
		{
			if ((ct->unpublished ? tables_set_unpublished(t, ct, tables_unpublished_from(a, t)) : true) &&
				uploader_store_manifest_now(a, t->man, err) != BS_OK)
				goto fail_list;
			if (!a->format3)
				t->dirty = false;	/* stored (format 3: the gap is an event of the first pack) */
			continue;
		}
		if (!ct->usable)
		{
			t->partitioned = ct->relkind == 'p';
			free(t->man->status);
			free(t->man->finding);
			t->man->status = xstrdup("skipped");
			t->man->finding = xstrdup(ct->finding);
			tables_report_skipped(ct);
			if (uploader_store_manifest_now(a, t->man, err) != BS_OK)
				goto fail_list;
		}
	}
	if (tables_find_gone(a, &list, err) != BS_OK)
		goto fail_list;

	if (pgsql_query_params(a->conn,
		"SELECT s.confirmed_flush_lsn::text, s.plugin, s.database, s.wal_status, " SLOT_OTHER_INVALIDATION
		" FROM pg_replication_slots s WHERE s.slot_name = $1",
		1, params, &res, err) != BS_OK)
		goto fail_list;
	slot_exists = PQntuples(res) == 1;
	if (slot_exists)
	{
		if (strcmp(PQgetvalue(res, 0, 1), "pgoutput") != 0 || strcmp(PQgetvalue(res, 0, 2), dbname) != 0)
		{
			error_set(err, ERRCODE_INVALID_PARAMETER, "slot \"%s\" exists but is not a pgoutput slot of database \"%s\"",
					  slot, dbname);
			PQclear(res);
			goto fail_list;
		}
		if (!PQgetisnull(res, 0, 4))
		{
			error_set(err, ERRCODE_SLOT_LOST,
					  "slot \"%s\" was invalidated (invalidation_reason = %s): changes are missing; drop it with "
					  "`backstop archive --drop` and start again for fresh base copies", slot, PQgetvalue(res, 0, 4));
			PQclear(res);
			goto fail_list;
		}
		if (strcmp(PQgetvalue(res, 0, 3), "lost") == 0)
		{
			error_set(err, ERRCODE_SLOT_LOST,
					  "slot \"%s\" was invalidated (wal_status = lost, max_slot_wal_keep_size exceeded): "
					  "changes are missing; drop it with `backstop archive --drop` and start again for fresh base copies", slot);
			PQclear(res);
			goto fail_list;
		}
		if (!PQgetisnull(res, 0, 0))
			lsn_parse(PQgetvalue(res, 0, 0), &a->flush_lsn);
		PQclear(res);
	}
	else
	{
		char *q = quote_ident(slot);
		strbuf sql = STRBUF_INIT;
		uint64_t lsn;
		basecopy_options opts = {a->codec, a->level, (uint64_t) config_get_size(a->cfg, CFG_BASE_CHUNK_SIZE), NULL};
		char *snapshot;

		opts.publication = config_get(a->cfg, CFG_PUBLICATION);
		PQclear(res);
		strbuf_printf(&sql, "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput %s", q,
					  pgsql_export_snapshot_option(repl));
		free(q);
		res = PQexec(repl, sql.data);
		strbuf_free(&sql);
		if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || lsn_parse(PQgetvalue(res, 0, 1), &lsn) != BS_OK)
		{
			pgsql_set_error(err, repl, res, "could not create the replication slot");
			PQclear(res);
			goto fail_list;
		}
		log_info("created slot %s at %s; taking base copies", slot, PQgetvalue(res, 0, 1));
		if (head_exists && a->head.flushed_lsn > 0)
		{
			char l[LSN_BUFLEN];

			/* The old slot's changes after the head are gone: each manifest records the gap below. */
			log_warning("the archive was stored up to %s with an earlier slot: changes committed between "
						"then and %s are NOT in the archive; recorded as a gap, points inside it are refused",
						lsn_format(a->head.flushed_lsn, l), PQgetvalue(res, 0, 1));
		}
		/* The exported snapshot lives while repl stays idle: copy every table under it, each
		 * in its own transaction (basecopy_table_in_snapshot). */
		snapshot = xstrdup(PQgetvalue(res, 0, 2));
		PQclear(res);
		opts.lock_timeout_ms = config_get_duration_ms(a->cfg, CFG_BASE_LOCK_TIMEOUT);
		opts.test_snapshot_lock_key = a->test_snapshot_lock_key;
		for (int i = 0; i < a->ntables; i++)
		{
			arch_table *t = a->tables[i];
			basecopy_target target = {t->relid, t->man->schema, t->man->name};
			basecopy_result r;
			/* What an earlier slot archived: up to here, and nothing of what follows
			 * until this slot's point (doc/FORMAT.md, "gaps"). */
			bool had_base = t->man->nbases > 0;
			uint64_t complete = audit_complete_to(t->man, head_exists ? &a->head : NULL);

			if (!t->active || t->gone_lsn || t->unpublished)
				continue;
			if (first_base_copy(a, snapshot, &opts, &target, lsn, &r, err) != BS_OK)
			{
				free(snapshot);
				goto fail_list;
			}
			basejob_apply(a, &r, lsn);
			basecopy_result_free(&r);
			t->dirty = t->base_unstored = false;	/* stored now */
			/* The new slot starts here: nothing before it will be streamed. */
			if (had_base && complete < lsn)
			{
				char l1[LSN_BUFLEN], l2[LSN_BUFLEN];

				manifest_add_gap(t->man, complete, lsn);
				log_warning("table %s.%s: changes committed from %s to %s were not archived (a new slot starts at %s); "
							"recovery points in between are refused", t->man->schema, t->man->name,
							lsn_format(complete, l1), lsn_format(lsn, l2), l2);
			}
			if (t->man->archived_to < lsn)
				t->man->archived_to = lsn;
			if (uploader_store_manifest_now(a, t->man, err) != BS_OK)
			{
				free(snapshot);
				goto fail_list;
			}
		}
		free(snapshot);
		a->flush_lsn = lsn;
		a->head_written_lsn = 0;
		if (uploader_store_head(a, lsn, err) != BS_OK)
			goto fail_list;
	}
	PQfinish(repl);
	repl = NULL;

	/* Tables without a base copy (new, or an earlier start stopped half-way). */
	{
		arch_table **need = NULL;
		int n = 0;

		for (int i = 0; i < a->ntables; i++)
		{
			if (a->tables[i]->active && a->tables[i]->gone_lsn == 0 && a->tables[i]->man->nbases == 0)
			{
				need = xrealloc(need, (size_t) (n + 1) * sizeof(arch_table *));
				need[n++] = a->tables[i];
			}
		}
		if (n > 0 && basejob_take_now(a, need, n, err) != BS_OK)
		{
			free(need);
			goto fail_list;
		}
		free(need);
	}

	/* Spool first: what was sealed before a stop is uploaded before anything new. */
	if (segments_clean_spill(a, err) != BS_OK || uploader_clean_spool(a, &max_seal, err) != BS_OK)
		goto fail_list;
	a->spool_pending = max_seal > 0;
	if (a->spool_pending && uploader_drain_spool(a, false, NULL, err) != BS_OK)
	{
		log_warning("could not upload the spool yet (will retry): %s", err->message);
		a->metrics.upload_errors++;
	}
	a->resume_lsn = a->flush_lsn;
	if (a->head.flushed_lsn > a->resume_lsn)
		a->resume_lsn = a->head.flushed_lsn;
	if (max_seal > a->resume_lsn)
		a->resume_lsn = max_seal;
	/* Not the tables' archived_to: a base copy taken from a temporary slot may lie ahead of
	 * the stream, and the changes before it are still needed for older points. */
	a->last_commit_end = a->resume_lsn;
	a->received_lsn = a->flush_lsn;
	catalog_table_list_free(&list);
	free(sysid);
	free(dbname);
	packlog_end_startup(a);
	return BS_OK;

fail_list:
	catalog_table_list_free(&list);
fail:
	if (repl)
		PQfinish(repl);
	free(sysid);
	free(dbname);
	return BS_ERR;
}

int
archiver_drop(const bs_config *cfg, bs_error *err)
{
	PGconn *conn;
	PGresult *res;
	const char *params[1];
	int rc = BS_ERR;

	if (config_get(cfg, CFG_DB) == NULL)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "--db is required");
	if (pgsql_connect(config_get(cfg, CFG_DB), false, "backstop archive --drop", &conn, err) != BS_OK)
		return BS_ERR;
	params[0] = config_get(cfg, CFG_SLOT);
	if (pgsql_query_params(conn,
		"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
		1, params, &res, err) != BS_OK)
		goto out;
	log_info("slot %s: %s", params[0], PQntuples(res) ? "dropped" : "did not exist");
	PQclear(res);
	params[0] = config_get(cfg, CFG_PUBLICATION);
	if (pgsql_query_params(conn, "SELECT 1 FROM pg_publication WHERE pubname = $1 AND NOT pg_has_role(pubowner, 'USAGE')",
						   1, params, &res, err) != BS_OK)
		goto out;
	if (PQntuples(res) > 0)
	{
		/* Made by its owner for this role (doc/archiving.md, "Minimal grants"): theirs to drop. */
		PQclear(res);
		log_info("publication %s belongs to another role: left in place; the archive in storage is kept", params[0]);
		rc = BS_OK;
		goto out;
	}
	PQclear(res);
	{
		char *pub = quote_ident(config_get(cfg, CFG_PUBLICATION));
		strbuf sql = STRBUF_INIT;

		strbuf_printf(&sql, "DROP PUBLICATION IF EXISTS %s", pub);
		rc = pgsql_exec(conn, sql.data, err);
		free(pub);
		strbuf_free(&sql);
		if (rc == BS_OK)
			log_info("publication %s dropped; the archive in storage is kept", config_get(cfg, CFG_PUBLICATION));
	}
out:
	PQfinish(conn);
	return rc;
}
