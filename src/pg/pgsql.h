/* pgsql.h — libpq helpers: connections with Backstop's fixed text-format settings, checked queries. */
#ifndef BACKSTOP_PGSQL_H
#define BACKSTOP_PGSQL_H

#include <stdbool.h>
#include <libpq-fe.h>

#include "error.h"

/*
 * Session settings under which every archived value is produced and every recovered value
 * is read back, so that text forms are identical; the same as ARCHIVE_TEXT_* in manifest_head.h,
 * which records them in head.json.
 */
#define PGSQL_TEXT_FORMAT_OPTIONS \
	"-c timezone=UTC -c datestyle=ISO,YMD -c extra_float_digits=3 -c intervalstyle=postgres -c bytea_output=hex -c client_encoding=UTF8"
/* Connect with anything libpq accepts (conninfo, URI, PG* variables, ~/.pgpass); when
 * replication is true, as a logical replication connection (replication=database).
 * The fixed text-format options are appended. */
int pgsql_connect(const char *conninfo, bool replication, const char *application_name,
				  PGconn **out, bs_error *err);

/* Run a command expecting no rows (or any rows, discarded). */
int pgsql_exec(PGconn *conn, const char *sql, bs_error *err);
/* As pgsql_exec, through the extended protocol: sql must be exactly one statement (a
 * second one is refused by the server, not run).  For statements built from stored text. */
int pgsql_exec_one(PGconn *conn, const char *sql, bs_error *err);
/* Run one query expecting tuples (extended protocol: one statement); the caller PQclear()s *out. */
int pgsql_query(PGconn *conn, const char *sql, PGresult **out, bs_error *err);
int pgsql_query_params(PGconn *conn, const char *sql, int nparams, const char *const *params,
					   PGresult **out, bs_error *err);
/* First column of the first row as a new string (NULL for SQL NULL), error if no row. */
int pgsql_query_value(PGconn *conn, const char *sql, char **out, bs_error *err);

/*
 * A statement (printf format, one long long: milliseconds) setting the transaction's
 * lock_timeout for statements of the archiver that must give way to the tables' users: at
 * most that long, and below half the server's deadlock_timeout, so that in a deadlock with a
 * user's statement the archiver's wait, never the user's, is the one that ends.
 * lock_timeout is user-settable (no privilege needed).
 */
#define PGSQL_LOCAL_LOCK_TIMEOUT_FMT \
	"SELECT set_config('lock_timeout', greatest(1, least(%lld, " \
	"(SELECT setting::bigint / 2 FROM pg_settings WHERE name = 'deadlock_timeout')))::text, true)"

/* The CREATE_REPLICATION_SLOT ... LOGICAL pgoutput option that exports the slot's snapshot:
 * the option list of PostgreSQL 15 and later, or the keyword PostgreSQL 14 understands. */
const char *pgsql_export_snapshot_option(PGconn *repl);

/* Fill err from the connection's last error (message redacted of secrets). */
int pgsql_set_error(bs_error *err, PGconn *conn, const PGresult *res, const char *what);

#endif
