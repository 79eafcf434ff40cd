/* pgsql.c — libpq helpers: connections with Backstop's fixed text-format settings, checked queries. */
#include "pgsql.h"
#include "manifest_head.h"
#include "redact.h"
#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

#define BS_STRINGIFY_(x) #x
#define BS_STRINGIFY(x) BS_STRINGIFY_(x)

const char *
pgsql_export_snapshot_option(PGconn *repl)
{
	/* PostgreSQL 14's replication grammar has no option list: "syntax error". */
	return PQserverVersion(repl) >= 150000 ? "(SNAPSHOT 'export')" : "EXPORT_SNAPSHOT";
}

int
pgsql_set_error(bs_error *err, PGconn *conn, const PGresult *res, const char *what)
{
	const char *msg = res ? PQresultErrorMessage(res) : NULL;
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	char *clean;
	size_t n;

	if (msg == NULL || *msg == '\0')
		msg = conn ? PQerrorMessage(conn) : "unknown error";
	clean = redact_text(msg);
	n = strlen(clean);
	while (n > 0 && (clean[n - 1] == '\n' || clean[n - 1] == ' '))
		clean[--n] = '\0';
	error_set(err, state && strlen(state) == 5 ? state : ERRCODE_CONNECTION, "%s: %s", what, clean);
	free(clean);
	return BS_ERR;
}

int
pgsql_connect(const char *conninfo, bool replication, const char *application_name,
			  PGconn **out, bs_error *err)
{
	/* expand_dbname lets the first value be a full conninfo string or URI. */
	const char *keys[5];
	const char *values[5];
	int n = 0;
	PGconn *conn;

	keys[n] = "dbname";
	values[n++] = conninfo ? conninfo : "";
	keys[n] = "options";
	values[n++] = PGSQL_TEXT_FORMAT_OPTIONS;
	keys[n] = "application_name";
	values[n++] = application_name ? application_name : "backstop";
	if (replication)
	{
		keys[n] = "replication";
		values[n++] = "database";
	}
	keys[n] = NULL;
	values[n] = NULL;
	conn = PQconnectdbParams(keys, values, 1);
	if (conn == NULL)
		return error_set(err, ERRCODE_OUT_OF_MEMORY, "could not allocate a PostgreSQL connection");
	if (PQstatus(conn) != CONNECTION_OK)
	{
		pgsql_set_error(err, conn, NULL, "could not connect to PostgreSQL");
		if (strstr(err->message, "password authentication failed") || strstr(err->message, "no password supplied"))
			memcpy(err->code, ERRCODE_AUTH, sizeof(err->code));
		else
			memcpy(err->code, ERRCODE_CONNECTION, sizeof(err->code));
		PQfinish(conn);
		return BS_ERR;
	}
	/*
	 * The startup options are not enough: libpq sends PGTZ, PGDATESTYLE and friends from the
	 * environment as separate startup parameters, which the server applies after them.  Set
	 * each explicitly; a walsender in database mode accepts SQL too, and its output functions
	 * run under these settings.
	 */
	{
		static const char *const settings[] = {
			"SET TimeZone = '" ARCHIVE_TEXT_TIMEZONE "'",
			"SET DateStyle = '" ARCHIVE_TEXT_DATESTYLE "'",
			"SET extra_float_digits = " BS_STRINGIFY(ARCHIVE_TEXT_EXTRA_FLOAT_DIGITS),
			"SET IntervalStyle = '" ARCHIVE_TEXT_INTERVALSTYLE "'",
			"SET bytea_output = '" ARCHIVE_TEXT_BYTEA_OUTPUT "'",
			"SET client_encoding = 'UTF8'",
			NULL
		};

		for (int i = 0; settings[i]; i++)
		{
			if (pgsql_exec(conn, settings[i], err) != BS_OK)
			{
				error_prefix(err, "could not pin the session's text format");
				PQfinish(conn);
				return BS_ERR;
			}
		}
	}
	*out = conn;
	return BS_OK;
}

/* A command's result: OK (and cleared) when it succeeded, with or without rows. */
static int
command_result(PGconn *conn, PGresult *res, bs_error *err)
{
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	int rc = BS_OK;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
	{
		pgsql_set_error(err, conn, res, "query failed");
		rc = BS_ERR;
	}
	PQclear(res);
	return rc;
}

int
pgsql_exec(PGconn *conn, const char *sql, bs_error *err)
{
	return command_result(conn, PQexec(conn, sql), err);
}

int
pgsql_exec_one(PGconn *conn, const char *sql, bs_error *err)
{
	/* The extended protocol: PostgreSQL refuses a second command in the text. */
	return command_result(conn, PQexecParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0), err);
}

int
pgsql_query(PGconn *conn, const char *sql, PGresult **out, bs_error *err)
{
	return pgsql_query_params(conn, sql, 0, NULL, out, err);
}

int
pgsql_query_params(PGconn *conn, const char *sql, int nparams, const char *const *params,
				   PGresult **out, bs_error *err)
{
	/* Always the extended protocol, so one query is one statement. */
	PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);

	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		pgsql_set_error(err, conn, res, "query failed");
		PQclear(res);
		return BS_ERR;
	}
	*out = res;
	return BS_OK;
}

int
pgsql_query_value(PGconn *conn, const char *sql, char **out, bs_error *err)
{
	PGresult *res;

	if (pgsql_query(conn, sql, &res, err) != BS_OK)
		return BS_ERR;
	if (PQntuples(res) < 1 || PQnfields(res) < 1)
	{
		PQclear(res);
		return error_set(err, ERRCODE_PROTOCOL, "query returned no rows: %s", sql);
	}
	*out = PQgetisnull(res, 0, 0) ? NULL : xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return BS_OK;
}
