/* gatedb.h — the gate's catalog look-ups over a libpq session (the callbacks of gate_catalog). */
#ifndef BACKSTOP_GATEDB_H
#define BACKSTOP_GATEDB_H

#include <libpq-fe.h>

#include "error.h"
#include "gate.h"

typedef struct gatedb
{
	PGconn *conn;
	gate_catalog catalog;		/* callbacks answering from conn; arg is this gatedb */
} gatedb;

void gatedb_init(gatedb *db, PGconn *conn);

/* Connect as the user's own session would be (their options, search_path and role settings
 * kept; unlike pgsql_connect, no settings pinned) with client_encoding UTF8. */
int gatedb_connect(const char *conninfo, const char *application_name, PGconn **out, bs_error *err);

/*
 * Check that the session lexes SQL as the gate does (standard_conforming_strings on, client
 * encoding UTF8) and return its user and search_path (the cache key's context).  BS_ERR with
 * a reason otherwise: the gate must not pass statements it may have parsed differently.
 */
int gatedb_check_session(PGconn *conn, char **user, char **search_path, bs_error *err);

#endif
