/* gatedb.c — the gate's catalog look-ups over a libpq session (the callbacks of gate_catalog). */
#include "gatedb.h"
#include "pgsql.h"
#include "quote.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REL_COLUMNS "c.oid, n.nspname, c.relname, c.relkind, c.relpersistence = 't'"

static void
read_rel(const PGresult *res, int row, gate_rel *out)
{
	memset(out, 0, sizeof(*out));
	out->oid = (uint32_t) strtoul(PQgetvalue(res, row, 0), NULL, 10);
	out->nspname = xstrdup(PQgetvalue(res, row, 1));
	out->relname = xstrdup(PQgetvalue(res, row, 2));
	out->relkind = PQgetvalue(res, row, 3)[0];
	out->temp = PQgetvalue(res, row, 4)[0] == 't';
}

/* to_regclass() resolves like the statement would: the session's search_path, its temporary
 * schema first, quoted names as written. */
static int
db_relation(void *arg, const char *schema, const char *name, bool *found, gate_rel *out, bs_error *err)
{
	gatedb *db = arg;
	char *qname = schema ? quote_qualified_name(schema, name) : quote_ident(name);
	const char *params[1] = {qname};
	PGresult *res;
	int rc;

	*found = false;
	rc = pgsql_query_params(db->conn,
							"SELECT " REL_COLUMNS " FROM pg_catalog.pg_class c "
							"JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
							"WHERE c.oid = pg_catalog.to_regclass($1)", 1, params, &res, err);
	free(qname);
	if (rc != BS_OK)
		return BS_ERR;
	if (PQntuples(res) == 1)
	{
		*found = true;
		read_rel(res, 0, out);
	}
	PQclear(res);
	return BS_OK;
}

static int
db_reach(void *arg, gate_reach how, uint32_t oid, const char *name, gate_rel **out, int *n, bs_error *err)
{
	gatedb *db = arg;
	char oidbuf[16];
	const char *params[1];
	const char *sql = NULL;
	PGresult *res;

	snprintf(oidbuf, sizeof(oidbuf), "%u", oid);
	params[0] = name ? name : oidbuf;
	switch (how)
	{
		case GATE_REACH_CHILDREN:
			sql = "WITH RECURSIVE r(oid) AS (SELECT inhrelid FROM pg_catalog.pg_inherits WHERE inhparent = $1::oid "
				"UNION SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN r ON i.inhparent = r.oid) "
				"SELECT " REL_COLUMNS " FROM r JOIN pg_catalog.pg_class c ON c.oid = r.oid "
				"JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace ORDER BY 2, 3";
			break;
		case GATE_REACH_SCHEMA:
			sql = "SELECT " REL_COLUMNS " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
				"WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 3";
			break;
		case GATE_REACH_OWNED:
			sql = "SELECT " REL_COLUMNS " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
				"WHERE c.relowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = $1) AND c.relkind IN ('r', 'p') "
				"AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 2, 3";
			break;
		case GATE_REACH_FK_DELETE:
			/* rows a DELETE removes or rewrites through foreign keys; CASCADE propagates further */
			sql = "WITH RECURSIVE r(oid, cascades) AS (SELECT conrelid, confdeltype = 'c' FROM pg_catalog.pg_constraint "
				"WHERE contype = 'f' AND confrelid = $1::oid AND confdeltype IN ('c', 'n', 'd') "
				"UNION SELECT k.conrelid, k.confdeltype = 'c' FROM pg_catalog.pg_constraint k JOIN r ON k.confrelid = r.oid "
				"WHERE r.cascades AND k.contype = 'f' AND k.confdeltype IN ('c', 'n', 'd')) "
				"SELECT DISTINCT " REL_COLUMNS " FROM r JOIN pg_catalog.pg_class c ON c.oid = r.oid "
				"JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid <> $1::oid ORDER BY 2, 3";
			break;
		case GATE_REACH_REFERENCING:
			sql = "WITH RECURSIVE r(oid) AS (SELECT conrelid FROM pg_catalog.pg_constraint WHERE contype = 'f' AND confrelid = $1::oid "
				"UNION SELECT k.conrelid FROM pg_catalog.pg_constraint k JOIN r ON k.confrelid = r.oid WHERE k.contype = 'f') "
				"SELECT " REL_COLUMNS " FROM r JOIN pg_catalog.pg_class c ON c.oid = r.oid "
				"JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid <> $1::oid ORDER BY 2, 3";
			break;
	}
	*out = NULL;
	*n = 0;
	if (sql == NULL)
		return error_set(err, ERRCODE_INTERNAL, "unknown reach %d", (int) how);
	if (pgsql_query_params(db->conn, sql, 1, params, &res, err) != BS_OK)
		return BS_ERR;
	*n = PQntuples(res);
	*out = xcalloc((size_t) (*n > 0 ? *n : 1), sizeof(gate_rel));
	for (int i = 0; i < *n; i++)
		read_rel(res, i, &(*out)[i]);
	PQclear(res);
	return BS_OK;
}

static int
db_column(void *arg, uint32_t reloid, const char *column, gate_column *out, bs_error *err)
{
	gatedb *db = arg;
	char oidbuf[16];
	const char *params[2];
	PGresult *res;

	snprintf(oidbuf, sizeof(oidbuf), "%u", reloid);
	params[0] = oidbuf;
	params[1] = column;
	if (pgsql_query_params(db->conn,
						   "SELECT a.attnotnull, a.attidentity <> '' OR "
						   "coalesce(pg_catalog.pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%', false) "
						   "FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_attrdef d "
						   "ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
						   "WHERE a.attrelid = $1::oid AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped",
						   2, params, &res, err) != BS_OK)
		return BS_ERR;
	memset(out, 0, sizeof(*out));
	if (PQntuples(res) == 1)
	{
		out->exists = true;
		out->notnull = PQgetvalue(res, 0, 0)[0] == 't';
		out->serial = PQgetvalue(res, 0, 1)[0] == 't';
	}
	PQclear(res);
	return BS_OK;
}

#define FUNC_COLUMNS "p.oid, n.nspname, p.proname, p.prokind, p.provolatile, l.lanname, p.prosecdef, " \
	"CASE WHEN l.lanname IN ('sql', 'plpgsql') AND p.prokind IN ('f', 'p') THEN pg_catalog.pg_get_functiondef(p.oid) END"

static void
read_funcs(const PGresult *res, gate_func **out, int *n)
{
	*n = PQntuples(res);
	*out = xcalloc((size_t) (*n > 0 ? *n : 1), sizeof(gate_func));
	for (int i = 0; i < *n; i++)
	{
		gate_func *f = &(*out)[i];

		f->oid = (uint32_t) strtoul(PQgetvalue(res, i, 0), NULL, 10);
		f->nspname = xstrdup(PQgetvalue(res, i, 1));
		f->name = xstrdup(PQgetvalue(res, i, 2));
		f->kind = PQgetvalue(res, i, 3)[0];
		f->volatility = PQgetvalue(res, i, 4)[0];
		f->language = xstrdup(PQgetvalue(res, i, 5));
		f->security_definer = PQgetvalue(res, i, 6)[0] == 't';
		f->definition = PQgetisnull(res, i, 7) ? NULL : xstrdup(PQgetvalue(res, i, 7));
	}
}

/* Every function of that name the call could reach: in the schema named, or anywhere in the
 * session's search_path (all overloads: the gate takes the worst). */
static int
db_functions(void *arg, const char *schema, const char *name, gate_func **out, int *n, bs_error *err)
{
	gatedb *db = arg;
	const char *params[2] = {name, schema};
	PGresult *res;

	*out = NULL;
	*n = 0;
	if (pgsql_query_params(db->conn,
						   "SELECT " FUNC_COLUMNS " FROM pg_catalog.pg_proc p "
						   "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
						   "JOIN pg_catalog.pg_language l ON l.oid = p.prolang "
						   "WHERE p.proname = $1 AND CASE WHEN $2::text IS NULL "
						   "THEN n.nspname = ANY (pg_catalog.current_schemas(true)) ELSE n.nspname = $2 END "
						   "ORDER BY p.oid", 2, params, &res, err) != BS_OK)
		return BS_ERR;
	read_funcs(res, out, n);
	PQclear(res);
	return BS_OK;
}

static int
db_triggers(void *arg, uint32_t reloid, int events, gate_func **out, int *n, bs_error *err)
{
	gatedb *db = arg;
	char oidbuf[16], maskbuf[16], evbuf[16];
	const char *params[3] = {oidbuf, maskbuf, evbuf};
	int mask = 0;
	char *ev = evbuf;
	PGresult *res;

	/* pg_trigger.tgtype bits (TRIGGER_TYPE_INSERT ...) and pg_rewrite.ev_type codes */
	if (events & GATE_EVENT_INSERT)
		mask |= 1 << 2, *ev++ = '3';
	if (events & GATE_EVENT_DELETE)
		mask |= 1 << 3, *ev++ = '4';
	if (events & GATE_EVENT_UPDATE)
		mask |= 1 << 4, *ev++ = '2';
	if (events & GATE_EVENT_TRUNCATE)
		mask |= 1 << 5;
	*ev = '\0';
	snprintf(oidbuf, sizeof(oidbuf), "%u", reloid);
	snprintf(maskbuf, sizeof(maskbuf), "%d", mask);
	*out = NULL;
	*n = 0;
	if (pgsql_query_params(db->conn,
						   "SELECT " FUNC_COLUMNS " FROM pg_catalog.pg_trigger t "
						   "JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid "
						   "JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace "
						   "JOIN pg_catalog.pg_language l ON l.oid = p.prolang "
						   "WHERE t.tgrelid = $1::oid AND NOT t.tgisinternal AND t.tgenabled <> 'D' "
						   "AND (t.tgtype::int & $2::int) <> 0 "
						   "UNION ALL "
						   "SELECT r.oid, n.nspname, r.rulename, 'r', 'v', 'sql', false, pg_catalog.pg_get_ruledef(r.oid) "
						   "FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c ON c.oid = r.ev_class "
						   "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
						   "WHERE r.ev_class = $1::oid AND r.rulename <> '_RETURN' AND r.ev_enabled <> 'D' "
						   "AND strpos($3, r.ev_type::text) > 0 ORDER BY 1",
						   3, params, &res, err) != BS_OK)
		return BS_ERR;
	read_funcs(res, out, n);
	PQclear(res);
	return BS_OK;
}

void
gatedb_init(gatedb *db, PGconn *conn)
{
	memset(db, 0, sizeof(*db));
	db->conn = conn;
	db->catalog.arg = db;
	db->catalog.relation = db_relation;
	db->catalog.reach = db_reach;
	db->catalog.column = db_column;
	db->catalog.functions = db_functions;
	db->catalog.triggers = db_triggers;
}

int
gatedb_connect(const char *conninfo, const char *application_name, PGconn **out, bs_error *err)
{
	const char *keys[] = {"dbname", "fallback_application_name", "client_encoding", NULL};
	const char *values[] = {conninfo ? conninfo : "", application_name, "UTF8", NULL};
	PGconn *conn = PQconnectdbParams(keys, values, 1);

	*out = NULL;
	if (conn == NULL)
		return error_set(err, ERRCODE_OUT_OF_MEMORY, "could not allocate a PostgreSQL connection");
	if (PQstatus(conn) != CONNECTION_OK)
	{
		pgsql_set_error(err, conn, NULL, "could not connect to PostgreSQL");
		memcpy(err->code, ERRCODE_CONNECTION, sizeof(err->code));
		PQfinish(conn);
		return BS_ERR;
	}
	*out = conn;
	return BS_OK;
}

int
gatedb_check_session(PGconn *conn, char **user, char **search_path, bs_error *err)
{
	PGresult *res;
	int rc = BS_OK;

	*user = NULL;
	*search_path = NULL;
	if (pgsql_query(conn, "SELECT current_setting('standard_conforming_strings'), "
					"current_setting('client_encoding'), current_user, "
					"pg_catalog.array_to_string(pg_catalog.current_schemas(true), ',')", &res, err) != BS_OK)
		return BS_ERR;
	if (strcmp(PQgetvalue(res, 0, 0), "on") != 0)
		rc = error_set(err, ERRCODE_INVALID_PARAMETER,
					   "the session has standard_conforming_strings = %s: the gate parses with it on and would "
					   "read other statements than the server", PQgetvalue(res, 0, 0));
	else if (strcmp(PQgetvalue(res, 0, 1), "UTF8") != 0)
		rc = error_set(err, ERRCODE_INVALID_PARAMETER,
					   "the session's client_encoding is %s: the gate parses UTF-8", PQgetvalue(res, 0, 1));
	else
	{
		*user = xstrdup(PQgetvalue(res, 0, 2));
		*search_path = xstrdup(PQgetvalue(res, 0, 3));
	}
	PQclear(res);
	return rc;
}
