/* basecopy.c — consistent base copies of tables: COPY under an exported snapshot into chunked objects. */
#include "basecopy.h"
#include "clock.h"
#include "catalog.h"
#include "lsn.h"
#include "log.h"
#include "manifest_keys.h"
#include "object.h"
#include "pgsql.h"
#include "quote.h"
#include "strbuf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

int
basecopy_read_layout(PGconn *conn, uint32_t relid, char *replident, int *ncols,
					 manifest_column **cols, bs_error *err)
{
	char oid[16];
	const char *params[1] = {oid};
	PGresult *res;
	int n;

	snprintf(oid, sizeof(oid), "%u", relid);
	/* Same columns, order and key flags as pgoutput's Relation message: no dropped or
	 * generated columns; FULL identity flags every column. */
	if (pgsql_query_params(conn,
		"SELECT a.attname, a.atttypid, a.atttypmod, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
		"  CASE c.relreplident WHEN 'f' THEN true "
		"    ELSE EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid "
		"      AND ((c.relreplident = 'd' AND i.indisprimary) OR (c.relreplident = 'i' AND i.indisreplident)) "
		"      AND a.attnum = ANY (i.indkey)) END, "
		"  c.relreplident "
		"FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
		"WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' "
		"ORDER BY a.attnum", 1, params, &res, err) != BS_OK)
		return error_prefix(err, "could not read the columns of table %u", relid);
	n = PQntuples(res);
	if (n == 0)
	{
		PQclear(res);
		return error_set(err, ERRCODE_UNDEFINED_TABLE, "table %u has no columns or does not exist", relid);
	}
	*cols = xcalloc((size_t) n, sizeof(manifest_column));
	for (int i = 0; i < n; i++)
	{
		manifest_column *c = &(*cols)[i];

		c->name = xstrdup(PQgetvalue(res, i, 0));
		c->type_oid = (uint32_t) strtoul(PQgetvalue(res, i, 1), NULL, 10);
		c->typmod = (int32_t) strtol(PQgetvalue(res, i, 2), NULL, 10);
		c->type_name = xstrdup(PQgetvalue(res, i, 3));
		c->not_null = PQgetvalue(res, i, 4)[0] == 't';
		c->key = PQgetvalue(res, i, 5)[0] == 't';
		c->missing = NULL;
	}
	*replident = PQgetvalue(res, 0, 6)[0];
	*ncols = n;
	PQclear(res);
	return BS_OK;
}

/* Upload one chunk and record it in the base. */
static int
finish_chunk(object_writer *w, manifest_base *base, const char *key, uint64_t rows, bs_error *err)
{
	object_info info;
	manifest_chunk *c;

	if (object_writer_commit(w, &info, err) != BS_OK)
		return error_prefix(err, "could not store base copy chunk \"%s\"", key);
	base->chunks = xrealloc(base->chunks, (size_t) (base->nchunks + 1) * sizeof(manifest_chunk));
	c = &base->chunks[base->nchunks++];
	memset(c, 0, sizeof(*c));
	c->key = xstrdup(key);
	memcpy(c->sha256, info.stored_sha256, sizeof(c->sha256));
	c->size = info.stored_size;
	c->raw_size = info.raw_size;
	c->rows = rows;
	return BS_OK;
}

void
basecopy_result_free(basecopy_result *r)
{
	manifest_base_clear(&r->base);
	manifest_columns_free(r->ncols, r->cols);
	memset(r, 0, sizeof(*r));
}

int
basecopy_apply(manifest *m, const basecopy_result *r, bs_error *err)
{
	manifest_base base = r->base;

	/* The stream may have added layouts after the base's LSN meanwhile (a copy taken in the
	 * background): the base's layout goes where it belongs in LSN order. */
	if (manifest_use_layout(m, r->base.lsn, r->replident, r->ncols, r->cols, &base.layout_id, err) != BS_OK)
		return error_prefix(err, "base copy at %X/%X not added", (unsigned) (r->base.lsn >> 32),
							(unsigned) r->base.lsn);
	manifest_add_base(m, &base);
	return BS_OK;
}

int64_t
basecopy_test_lock_key_from_env(const char *name)
{
	const char *v = getenv(name);
	char *end;
	long long key;

	if (v == NULL || *v == '\0')
		return 0;
	errno = 0;
	key = strtoll(v, &end, 10);
	if (errno != 0 || *end != '\0' || key == 0)
	{
		log_warning("%s=\"%s\" ignored: not a non-zero integer", name, v);
		return 0;
	}
	return (int64_t) key;
}

/*
 * The table as the snapshot shows it must be the table COPY reads.  A DDL that committed
 * after the snapshot was taken and before the lock is not seen by the catalog queries (they
 * read the snapshot) but is by COPY: a rewrite (ALTER COLUMN TYPE, VACUUM FULL) leaves a new
 * file whose rows no older snapshot sees, so COPY returns no rows at all; an added or dropped
 * column changes the rows' fields, and a column dropped and added again (under its name or
 * another, as many columns as before) changes their values.  So the columns the relation
 * cache gives a query (attribute number and name of each) must be the snapshot's.
 * Any difference is refused, and the copy is taken again later.
 */
static int
check_unchanged_since_snapshot(PGconn *conn, uint32_t relid, const char *qname, bs_error *err)
{
	char oid[16];
	const char *params[1] = {oid};
	PGresult *res;
	PGresult *now;
	strbuf sb = STRBUF_INIT;
	bool same;
	int nsnap;
	int rc;

	snprintf(oid, sizeof(oid), "%u", relid);
	/* pg_class and pg_attribute under the snapshot, against the relation cache, current since
	 * the lock. */
	if (pgsql_query_params(conn,
		"SELECT pg_relation_filenode(c.oid) IS DISTINCT FROM c.relfilenode, a.attnum, a.attname "
		"FROM pg_class c LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
		"WHERE c.oid = $1::oid ORDER BY a.attnum", 1, params, &res, err) != BS_OK)
		return error_prefix(err, "base copy of table %u", relid);
	if (PQntuples(res) < 1)
	{
		PQclear(res);
		return error_set(err, ERRCODE_UNDEFINED_TABLE, "base copy of table %u: not in the snapshot's catalog", relid);
	}
	if (PQgetvalue(res, 0, 0)[0] == 't')
	{
		PQclear(res);
		return error_set(err, ERRCODE_OBJECT_IN_USE, "base copy of %s: the table was rewritten (ALTER TABLE) after "
						 "the copy's snapshot was taken, which would show it empty; taken again with a new snapshot",
						 qname);
	}
	nsnap = PQgetisnull(res, 0, 1) ? 0 : PQntuples(res);
	strbuf_printf(&sb, "SELECT * FROM %s LIMIT 0", qname);
	rc = pgsql_query(conn, sb.data, &now, err);
	strbuf_free(&sb);
	if (rc != BS_OK)
	{
		PQclear(res);
		return error_prefix(err, "base copy of table %u", relid);
	}
	same = PQnfields(now) == nsnap;
	/* Not the types: a query reports a domain's base type, and a type change that is not a
	 * rewrite (seen above) leaves the stored values as they were. */
	for (int i = 0; same && i < nsnap; i++)
		same = PQftable(now, i) == relid && PQftablecol(now, i) == atoi(PQgetvalue(res, i, 1)) &&
			strcmp(PQfname(now, i), PQgetvalue(res, i, 2)) == 0;
	PQclear(now);
	PQclear(res);
	if (!same)
		return error_set(err, ERRCODE_OBJECT_IN_USE, "base copy of %s: its columns changed (ALTER TABLE) after the copy's "
						 "snapshot was taken; taken again with a new snapshot", qname);
	return BS_OK;
}

/* The test hook: wait for the test's advisory lock, then let it go at once.  Not under the
 * copy's lock_timeout (the test decides how long): the transaction's is set back after. */
static int
test_lock_wait(PGconn *conn, int64_t key, bs_error *err)
{
	strbuf sb = STRBUF_INIT;
	char *saved = NULL;
	char *lit;
	int rc;

	if (pgsql_query_value(conn, "SELECT current_setting('lock_timeout')", &saved, err) != BS_OK)
		return BS_ERR;
	lit = quote_literal(saved ? saved : "0");
	strbuf_printf(&sb, "SET LOCAL lock_timeout = 0; SELECT pg_advisory_lock_shared(%lld), pg_advisory_unlock_shared(%lld); "
				  "SELECT set_config('lock_timeout', %s, true)", (long long) key, (long long) key, lit);
	rc = pgsql_exec(conn, sb.data, err);
	strbuf_free(&sb);
	free(lit);
	free(saved);
	return rc;
}

int
basecopy_table(PGconn *conn, storage *st, const basecopy_options *opts, const basecopy_target *table,
			   uint64_t lsn, basecopy_result *out, bs_error *err)
{
	manifest_column *cols = NULL;
	int ncols = 0;
	char replident;
	manifest_base base;
	uint32_t relid = table->relid;
	char *qname = NULL;
	char *sql = NULL;
	char *key = NULL;
	object_writer *w = NULL;
	PGresult *res;
	uint64_t chunk_raw = 0;
	uint64_t chunk_rows = 0;
	char lsnbuf[LSN_BUFLEN];
	int chunkno = 0;
	int rc = BS_ERR;

	memset(&base, 0, sizeof(base));
	base.lsn = lsn;
	base.time = clock_unix_us();
	memset(out, 0, sizeof(*out));
	qname = quote_qualified_name(table->schema, table->name);
	if (opts->test_snapshot_lock_key != 0 && test_lock_wait(conn, opts->test_snapshot_lock_key, err) != BS_OK)
	{
		free(qname);
		return BS_ERR;
	}
	{
		strbuf sb = STRBUF_INIT;

		char oid[16];
		const char *params[1] = {oid};
		PGresult *pres;

		/* Locked first, as pg_dump does: no DDL between reading the layout and the COPY.  A
		 * partition's parent before it (the definition reads the parent's), in the order
		 * DROP, ATTACH and DETACH PARTITION take them; ONLY, or the parent's lock would take
		 * every other partition's too.  In one statement under the transaction's lock_timeout
		 * (basecopy_begin_snapshot), holding no other table's lock: in a deadlock with a
		 * session, the copy's wait ends first. */
		snprintf(oid, sizeof(oid), "%u", relid);
		if (pgsql_query_params(conn, "SELECT format('%I.%I', n.nspname, p.relname) FROM pg_inherits i "
							   "JOIN pg_class c ON c.oid = i.inhrelid AND c.relispartition "
							   "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace "
							   "WHERE i.inhrelid = $1::oid", 1, params, &pres, err) != BS_OK)
		{
			free(qname);
			return error_prefix(err, "base copy of %s.%s", table->schema, table->name);
		}
		if (PQntuples(pres) == 1)
			strbuf_printf(&sb, "LOCK TABLE ONLY %s, ONLY %s IN ACCESS SHARE MODE", PQgetvalue(pres, 0, 0), qname);
		else
			strbuf_printf(&sb, "LOCK TABLE ONLY %s IN ACCESS SHARE MODE", qname);
		PQclear(pres);
		rc = pgsql_exec(conn, sb.data, err);
		strbuf_free(&sb);
		if (rc != BS_OK)
		{
			free(qname);
			if (strcmp(err->code, "55P03") == 0)
				return error_prefix(err, "base copy of %s.%s: another session holds or waits for a conflicting lock "
									"on the table or its parent (the copy gives way after its lock timeout)",
									table->schema, table->name);
			return error_prefix(err, "base copy of %s.%s", table->schema, table->name);
		}
		rc = BS_ERR;
	}
	if (opts->test_lock_key != 0 && test_lock_wait(conn, opts->test_lock_key, err) != BS_OK)
	{
		free(qname);
		return BS_ERR;
	}
	if (check_unchanged_since_snapshot(conn, relid, qname, err) != BS_OK ||
		basecopy_read_layout(conn, relid, &replident, &ncols, &cols, err) != BS_OK)
	{
		free(qname);
		return BS_ERR;
	}
	if (catalog_table_definition(conn, relid, opts->publication, &base.definition, err) != BS_OK)
		goto out;

	{
		strbuf sb = STRBUF_INIT;

		strbuf_printf(&sb, "COPY %s TO STDOUT", qname);
		sql = strbuf_detach(&sb, NULL);
	}
	res = PQexec(conn, sql);
	if (PQresultStatus(res) != PGRES_COPY_OUT)
	{
		pgsql_set_error(err, conn, res, "base copy failed");
		PQclear(res);
		goto out;
	}
	PQclear(res);
	for (;;)
	{
		char *row = NULL;
		int n = PQgetCopyData(conn, &row, 0);

		if (n == -1)
			break;
		if (n < 0)
		{
			pgsql_set_error(err, conn, NULL, "base copy failed");
			goto out_copy;
		}
		if (w == NULL)
		{
			key = manifest_base_chunk_key(relid, lsn, ++chunkno);
			if (object_writer_open(st, key, opts->codec, opts->level, &w, err) != BS_OK)
			{
				PQfreemem(row);
				goto out_copy;
			}
		}
		if (object_writer_write(w, row, (size_t) n, err) != BS_OK)
		{
			PQfreemem(row);
			goto out_copy;
		}
		PQfreemem(row);
		chunk_raw += (uint64_t) n;
		chunk_rows++;
		base.rows++;
		if (opts->cancel && (base.rows & 4095) == 0 && __atomic_load_n(opts->cancel, __ATOMIC_RELAXED))
		{
			error_set(err, ERRCODE_CANCELED, "base copy of %s.%s cancelled", table->schema, table->name);
			goto out_copy;
		}
		/* Chunks end at row boundaries, so each chunk is valid COPY input on its own. */
		if (chunk_raw >= opts->chunk_size)
		{
			rc = finish_chunk(w, &base, key, chunk_rows, err);
			w = NULL;
			free(key);
			key = NULL;
			if (rc != BS_OK)
				goto out_copy;
			rc = BS_ERR;
			chunk_raw = chunk_rows = 0;
		}
	}
	res = PQgetResult(conn);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		pgsql_set_error(err, conn, res, "base copy failed");
		PQclear(res);
		goto out;
	}
	PQclear(res);
	while ((res = PQgetResult(conn)) != NULL)
		PQclear(res);
	/* An empty table still gets one (empty) chunk: its absence would look like loss. */
	if (w == NULL)
	{
		key = manifest_base_chunk_key(relid, lsn, ++chunkno);
		if (object_writer_open(st, key, opts->codec, opts->level, &w, err) != BS_OK)
			goto out;
	}
	rc = finish_chunk(w, &base, key, chunk_rows, err);
	w = NULL;
	if (rc != BS_OK)
		goto out;
	log_info("base copy of %s.%s at %s: %llu rows in %d chunk(s)", table->schema, table->name,
			 lsn_format(lsn, lsnbuf), (unsigned long long) base.rows, base.nchunks);
	/* Ownership moves to the result. */
	out->relid = relid;
	out->replident = replident;
	out->ncols = ncols;
	out->cols = cols;
	out->base = base;
	free(key);
	free(sql);
	free(qname);
	return BS_OK;

out_copy:
	/* Drain the COPY so the connection stays usable. */
	{
		char *row;

		while (PQgetCopyData(conn, &row, 0) >= 0)
			PQfreemem(row);
		while ((res = PQgetResult(conn)) != NULL)
			PQclear(res);
	}
out:
	if (w)
		object_writer_abort(w);
	free(key);
	free(sql);
	free(qname);
	manifest_base_clear(&base);
	manifest_columns_free(ncols, cols);
	return rc;
}

int
basecopy_begin_snapshot(PGconn *conn, const char *snapshot, int64_t lock_timeout_ms, bs_error *err)
{
	char *lit = quote_literal(snapshot);
	strbuf sql = STRBUF_INIT;
	int rc;

	/* row_security off: a table whose policies hide rows from the role is an error, never a
	 * copy of the rows the role happens to see (pgoutput streams every row regardless). */
	strbuf_printf(&sql, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT %s; "
				  "SET LOCAL row_security = off", lit);
	/* The copy gives way to the table's users: it waits for a lock at most this long (a
	 * waiting request also holds up every later one queued behind it). */
	if (lock_timeout_ms > 0)
		strbuf_printf(&sql, "; " PGSQL_LOCAL_LOCK_TIMEOUT_FMT, (long long) lock_timeout_ms);
	rc = pgsql_exec(conn, sql.data, err);
	if (rc != BS_OK)
		error_prefix(err, "could not import snapshot %s", snapshot);
	free(lit);
	strbuf_free(&sql);
	return rc;
}

bool
basecopy_error_yields(const bs_error *err)
{
	/* lock_not_available (lock_timeout), deadlock_detected, undefined_table (dropped or
	 * renamed meanwhile), and check_unchanged_since_snapshot's object_in_use. */
	return strcmp(err->code, "55P03") == 0 || strcmp(err->code, "40P01") == 0 ||
		strcmp(err->code, ERRCODE_UNDEFINED_TABLE) == 0 || strcmp(err->code, ERRCODE_OBJECT_IN_USE) == 0;
}

int
basecopy_table_in_snapshot(PGconn *conn, const char *snapshot, storage *st, const basecopy_options *opts,
						   const basecopy_target *table, uint64_t lsn, basecopy_result *out, bs_error *err)
{
	memset(out, 0, sizeof(*out));
	if (basecopy_begin_snapshot(conn, snapshot, opts->lock_timeout_ms, err) != BS_OK)
	{
		pgsql_exec(conn, "ROLLBACK", &(bs_error) {0});
		return BS_ERR;
	}
	if (basecopy_table(conn, st, opts, table, lsn, out, err) != BS_OK)
	{
		pgsql_exec(conn, "ROLLBACK", &(bs_error) {0});
		if (strcmp(err->code, "42501") == 0 && strstr(err->message, "row-level security") != NULL)
			error_prefix(err, "base copy of %s.%s: the role of the archiver does not bypass row-level security, so "
						 "it would copy only the rows that the policies of the table show it (ALTER ROLE ... BYPASSRLS)",
						 table->schema, table->name);
		return BS_ERR;
	}
	/* Read-only: the COMMIT only ends the transaction and lets its locks go. */
	if (pgsql_exec(conn, "COMMIT", err) != BS_OK)
	{
		basecopy_result_free(out);
		return error_prefix(err, "base copy of %s.%s", table->schema, table->name);
	}
	return BS_OK;
}

int
basecopy_with_temporary_slot(PGconn *repl, PGconn *conn, storage *st, const basecopy_options *opts,
							 const basecopy_target *tables, int ntables, basecopy_result **results,
							 uint64_t *lsn_out, bs_error *err)
{
	PGresult *res = NULL;
	basecopy_result *out = xcalloc(ntables > 0 ? (size_t) ntables : 1, sizeof(basecopy_result));
	char slot[64];
	strbuf sql = STRBUF_INIT;
	uint64_t lsn;
	int done = 0;
	int rc = BS_ERR;

	/* A temporary slot disappears with its session: the caller closes repl. */
	snprintf(slot, sizeof(slot), "backstop_base_%d_%ld", (int) getpid(), (long) (clock_unix_us() % 1000000000));
	strbuf_printf(&sql, "CREATE_REPLICATION_SLOT %s TEMPORARY LOGICAL pgoutput %s", slot,
				  pgsql_export_snapshot_option(repl));
	res = PQexec(repl, sql.data);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		pgsql_set_error(err, repl, res, "could not create a temporary slot for a base copy");
		goto out;
	}
	if (lsn_parse(PQgetvalue(res, 0, 1), &lsn) != BS_OK)
	{
		error_set(err, ERRCODE_PROTOCOL, "bad consistent point \"%s\"", PQgetvalue(res, 0, 1));
		goto out;
	}
	log_info("base copy point %s: copying %d table(s)", PQgetvalue(res, 0, 1), ntables);
	/* The exported snapshot stays valid while repl is idle: one transaction per table, so
	 * that no table stays locked while another one is copied or waited for. */
	for (done = 0; done < ntables; done++)
	{
		if (opts->cancel && __atomic_load_n(opts->cancel, __ATOMIC_RELAXED))
		{
			error_set(err, ERRCODE_CANCELED, "base copy cancelled");
			goto out;
		}
		if (basecopy_table_in_snapshot(conn, PQgetvalue(res, 0, 2), st, opts, &tables[done], lsn, &out[done],
									   err) == BS_OK)
			continue;
		if (!basecopy_error_yields(err))
			goto out;
		/* Given way: no copy of this table at this point; the others go on. */
		log_warning("base copy of %s.%s yielded (nothing recorded, taken again later): %s", tables[done].schema,
					tables[done].name, err->message);
		error_clear(err);
	}
	if (opts->test_end_lock_key != 0 && test_lock_wait(conn, opts->test_end_lock_key, err) != BS_OK)
		goto out;
	*lsn_out = lsn;
	*results = out;
	out = NULL;
	rc = BS_OK;
out:
	if (out)
	{
		for (int i = 0; i < done; i++)
			basecopy_result_free(&out[i]);
		free(out);
	}
	PQclear(res);
	strbuf_free(&sql);
	return rc;
}
