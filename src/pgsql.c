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

int
pgsql_exec(PGconn *conn, const char *sql, bs_error *err)
{
	PGresult *res = PQexec(conn, sql);
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
	{
		pgsql_set_error(err, conn, res, "query failed");
		PQclear(res);
		return BS_ERR;
	}
	PQclear(res);
	return BS_OK;
}

int
pgsql_exec_one(PGconn *conn, const char *sql, bs_error *err)
{
	/* The extended protocol: PostgreSQL refuses a second command in the text. */
	PGresult *res = PQexecParams(conn, sql, 0, NULL, NULL, NULL, NULL, 0);
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
	{
		pgsql_set_error(err, conn, res, "query failed");
		PQclear(res);
		return BS_ERR;
	}
	PQclear(res);
	return BS_OK;
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

char *
pgsql_quote_ident(const char *ident)
{
	strbuf sb = STRBUF_INIT;

	strbuf_append_char(&sb, '"');
	for (const char *p = ident; *p; p++)
	{
		if (*p == '"')
			strbuf_append_char(&sb, '"');
		strbuf_append_char(&sb, *p);
	}
	strbuf_append_char(&sb, '"');
	return strbuf_detach(&sb, NULL);
}

char *
pgsql_quote_literal(const char *lit)
{
	strbuf sb = STRBUF_INIT;
	bool backslash = strchr(lit, '\\') != NULL;

	/* E'' form when backslashes are present, so the result is correct whatever
	 * standard_conforming_strings says. */
	if (backslash)
		strbuf_append_char(&sb, 'E');
	strbuf_append_char(&sb, '\'');
	for (const char *p = lit; *p; p++)
	{
		if (*p == '\'' || (*p == '\\' && backslash))
			strbuf_append_char(&sb, *p);
		strbuf_append_char(&sb, *p);
	}
	strbuf_append_char(&sb, '\'');
	return strbuf_detach(&sb, NULL);
}

/* schema.name, each part quoted by quote. */
static char *
qualify(const char *schema, const char *name, char *(*quote)(const char *))
{
	char *s = quote(schema);
	char *n = quote(name);
	strbuf sb = STRBUF_INIT;

	strbuf_printf(&sb, "%s.%s", s, n);
	free(s);
	free(n);
	return strbuf_detach(&sb, NULL);
}

char *
pgsql_qualified_name(const char *schema, const char *name)
{
	return qualify(schema, name, pgsql_quote_ident);
}

static bool
has_control(const char *s)
{
	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return true;
	return false;
}

char *
pgsql_quote_ident_printable(const char *ident)
{
	strbuf sb = STRBUF_INIT;

	if (!has_control(ident))
		return pgsql_quote_ident(ident);
	/* U&"..." with \XXXX escapes: the same identifier to PostgreSQL, one line on a terminal. */
	strbuf_append_str(&sb, "U&\"");
	for (const unsigned char *p = (const unsigned char *) ident; *p; p++)
	{
		if (*p == '"')
			strbuf_append_str(&sb, "\"\"");
		else if (*p == '\\')
			strbuf_append_str(&sb, "\\\\");
		else if (*p < 0x20 || *p == 0x7f)
			strbuf_printf(&sb, "\\%04X", *p);
		else
			strbuf_append_char(&sb, (char) *p);
	}
	strbuf_append_char(&sb, '"');
	return strbuf_detach(&sb, NULL);
}

char *
pgsql_qualified_name_printable(const char *schema, const char *name)
{
	return qualify(schema, name, pgsql_quote_ident_printable);
}

/* A part shown bare when PostgreSQL would read it back unchanged without quotes. */
static void
append_display_ident(strbuf *sb, const char *ident)
{
	bool bare = (*ident >= 'a' && *ident <= 'z') || *ident == '_';
	char *q;

	for (const char *p = ident; bare && *p; p++)
		bare = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '$';
	if (bare)
	{
		strbuf_append_str(sb, ident);
		return;
	}
	q = pgsql_quote_ident_printable(ident);
	strbuf_append_str(sb, q);
	free(q);
}

char *
pgsql_display_name(const char *schema, const char *name)
{
	strbuf sb = STRBUF_INIT;

	append_display_ident(&sb, schema ? schema : "");
	strbuf_append_char(&sb, '.');
	append_display_ident(&sb, name ? name : "");
	return strbuf_detach(&sb, NULL);
}
