/* gate.h — the SQL gate: classifies statements from their parse tree (pure decision logic, no I/O). */
#ifndef BACKSTOP_GATE_H
#define BACKSTOP_GATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/*
 * Levels, lowest first.  A statement's level is the highest level among its reasons;
 * a string's level is the highest among its statements.
 */
typedef enum gate_level
{
	GATE_SAFE = 0,				/* reads */
	GATE_LOW,					/* bounded writes */
	GATE_MEDIUM,				/* schema changes that lose nothing */
	GATE_HIGH,					/* destroys or rewrites rows of named tables */
	GATE_CRITICAL				/* destroys what no table archive covers, or escapes the gate */
} gate_level;

#define GATE_NLEVELS 5

const char *gate_level_name(gate_level level);
/* Case-insensitive level name; returns 0 on success. */
int gate_level_parse(const char *s, gate_level *out);

typedef enum gate_target_kind
{
	GATE_TARGET_RELATION,		/* table, view, index, sequence, ... */
	GATE_TARGET_SCHEMA,
	GATE_TARGET_DATABASE,
	GATE_TARGET_ROLE			/* DROP OWNED / REASSIGN OWNED */
} gate_target_kind;

typedef struct gate_target
{
	gate_target_kind kind;
	char *schema;				/* as written (quotes and U&"" escapes decoded); NULL if unqualified */
	char *name;
	gate_level level;			/* the worst the statement does to it */
	bool only;					/* ONLY: inheritance children are not touched */
	int via;					/* target it is reached through (partition, cascade, ...), or -1 */
	/* Filled when the classification had a catalog: */
	bool resolved;				/* looked up in the session */
	bool exists;				/* false: no such relation (the statement fails or does nothing) */
	uint32_t oid;
	char *nspname;				/* where it resolved in the session's search_path */
	char *relname;
	char relkind;				/* pg_class.relkind */
	bool temp;					/* a temporary table (shadows permanent ones of that name) */
} gate_target;

typedef struct gate_reason
{
	gate_level level;
	int target;					/* index in the statement's targets, or -1 */
	bool unknown_targets;		/* an effect on relations the gate cannot name */
	bool refusal;				/* why the statement cannot be decided (refused) */
	char *text;
} gate_reason;

typedef struct gate_stmt
{
	size_t offset;				/* byte range of the statement in the input */
	size_t length;
	const char *command;		/* "SELECT", "DROP TABLE", "DO", ... */
	gate_level level;
	bool refuse;				/* cannot be decided (unparsable, ...): refused whatever the policy */
	bool unknown_targets;		/* some effect is on relations the gate cannot name */
	gate_reason *reasons;
	int nreasons;
	gate_target *targets;
	int ntargets;
} gate_stmt;

typedef struct gate_result
{
	gate_level level;
	bool refuse;
	bool resolved;				/* targets and functions were looked up in a catalog */
	bool cacheable;				/* depends only on the text (and the catalog), not on session state */
	gate_stmt *stmts;
	int nstmts;
} gate_result;

/*
 * Catalog look-ups, supplied by the caller (the gate does no I/O).  Every callback
 * returns BS_OK or BS_ERR with err filled; a failed look-up fails the classification
 * (the caller refuses).  Strings and arrays returned are malloc'd and owned by the gate.
 */
typedef struct gate_rel
{
	uint32_t oid;
	char *nspname;
	char *relname;
	char relkind;
	bool temp;
} gate_rel;

typedef enum gate_reach
{
	GATE_REACH_CHILDREN,		/* partitions and inheritance children, recursively (by oid) */
	GATE_REACH_SCHEMA,			/* the relations in a schema (by name) */
	GATE_REACH_OWNED,			/* the relations a role owns in this database (by name) */
	GATE_REACH_FK_DELETE,		/* tables a DELETE cascades into (ON DELETE CASCADE/SET NULL/SET DEFAULT), recursively */
	GATE_REACH_REFERENCING		/* tables with a foreign key to it, recursively (TRUNCATE ... CASCADE) */
} gate_reach;

typedef struct gate_func
{
	uint32_t oid;
	char *nspname;
	char *name;
	char kind;					/* prokind f/p/a/w; 'r' for a rewrite rule */
	char volatility;			/* provolatile i/s/v */
	char *language;
	bool security_definer;
	char *definition;			/* CREATE FUNCTION / CREATE RULE text when the gate can read it, else NULL */
} gate_func;

typedef struct gate_column
{
	bool exists;
	bool notnull;
	bool serial;				/* identity or nextval() default: a generated key */
} gate_column;

#define GATE_EVENT_INSERT 1
#define GATE_EVENT_UPDATE 2
#define GATE_EVENT_DELETE 4
#define GATE_EVENT_TRUNCATE 8

typedef struct gate_catalog
{
	void *arg;
	/* Resolve a relation as the session would (its search_path, temporary tables first). */
	int (*relation) (void *arg, const char *schema, const char *name, bool *found, gate_rel *out, bs_error *err);
	/* Relations reached from a relation (oid) or a schema or role (name). */
	int (*reach) (void *arg, gate_reach how, uint32_t oid, const char *name, gate_rel **out, int *n, bs_error *err);
	int (*column) (void *arg, uint32_t reloid, const char *column, gate_column *out, bs_error *err);
	/* Every function or procedure the name can reach in the session (all overloads). */
	int (*functions) (void *arg, const char *schema, const char *name, gate_func **out, int *n, bs_error *err);
	/* Enabled trigger functions and rewrite rules a write (GATE_EVENT_*) on the relation fires. */
	int (*triggers) (void *arg, uint32_t reloid, int events, gate_func **out, int *n, bs_error *err);
} gate_catalog;

void gate_rel_clear(gate_rel *r);
void gate_func_clear(gate_func *f);

/* State carried from one string to the next in one session: prepared statements,
 * functions created, the transaction opened by the session's own BEGIN. */
typedef struct gate_session gate_session;

gate_session *gate_session_new(void);
void gate_session_free(gate_session *s);

typedef struct gate_options
{
	const gate_catalog *catalog;	/* NULL: no connection, targets unresolved */
	gate_session *session;		/* NULL: the string stands alone */
	bool in_transaction;		/* runs inside a transaction the gate opened: ending it escapes the gate */
	const char *const *trusted_functions;	/* NULL-terminated "schema.name" patterns (fnmatch) of harmless functions */
} gate_options;

/*
 * Classify a NUL-terminated string of one or more statements.  Unparsable input is not an
 * error: it yields a refused CRITICAL statement saying why.  BS_ERR only when a catalog
 * callback failed.
 */
int gate_classify(const char *sql, const gate_options *opts, gate_result **out, bs_error *err);
/* The same for a text of len bytes: a NUL byte inside it is refused (the server would stop
 * reading there, the gate would not). */
int gate_classify_n(const char *sql, size_t len, const gate_options *opts, gate_result **out, bs_error *err);
void gate_result_free(gate_result *r);
gate_result *gate_result_copy(const gate_result *r);

/* Check that libpg_query's node tags and fields still match the PostgreSQL headers the gate
 * was built with; BS_ERR (refuse everything) when they do not. */
int gate_self_check(bs_error *err);

/* Display name of a target: "schema.name" quoted as needed (resolved names when resolved). */
char *gate_target_display(const gate_target *t);

/* JSON of a result: statements with text, level, reasons, targets. */
json_t *gate_result_json(const gate_result *r, const char *sql);

#endif
