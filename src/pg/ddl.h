/* ddl.h — schema changes captured in the replication stream: event triggers and their messages. */
#ifndef BACKSTOP_DDL_H
#define BACKSTOP_DDL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <libpq-fe.h>

#include "error.h"
#include "manifest.h"

/* The prefix of the logical messages the event triggers write; no other prefix is read. */
#define DDL_MESSAGE_PREFIX "backstop.ddl"
/* The schema holding the event-trigger function. */
#define DDL_SCHEMA "backstop"
/* Largest message content accepted (a table of 1600 columns is far below it). */
#define DDL_MESSAGE_MAX ((size_t) 16 * 1024 * 1024)

typedef enum ddl_event_kind
{
	DDL_EVENT_END,				/* ddl_command_end: the tables as the catalog shows them now */
	DDL_EVENT_DROP,				/* sql_drop: the tables dropped */
	DDL_EVENT_REWRITE			/* table_rewrite: the table is being rewritten */
} ddl_event_kind;

typedef struct ddl_table
{
	uint32_t relid;
	char *schema;
	char *name;
	char *tag;					/* command tag, e.g. "ALTER TABLE" */
	/* DDL_EVENT_END only: */
	char replident;				/* 'd', 'f', 'i', 'n' */
	int ncols;
	manifest_column *columns;	/* in attnum order; dropped and generated columns left out */
} ddl_table;

typedef struct ddl_event
{
	ddl_event_kind kind;
	int ntables;
	ddl_table *tables;
} ddl_event;

/*
 * Parse a message's content strictly (it comes from the database, but anything able to
 * call pg_logical_emit_message can write one): every member present with its type, names
 * within NAMEDATALEN, counts bounded, relids non-zero.  On error *out is left empty.
 */
int ddl_parse_message(const char *content, size_t len, ddl_event *out, bs_error *err);
void ddl_event_free(ddl_event *ev);

/*
 * Make the event triggers write DDL_MESSAGE_PREFIX messages.  Superuser: the function and
 * the three triggers are (re)created.  Another role: *capturing is true only when they are
 * in place and enabled already (created once by a superuser).  *why says why not (static).
 * PostgreSQL 14 or later is needed (pgoutput's messages option).
 */
int ddl_install(PGconn *conn, bool *capturing, const char **why, bs_error *err);

/* The SQL ddl_install runs (for doc and for a superuser to run by hand). */
const char *ddl_install_sql(void);

#endif
