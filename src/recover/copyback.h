/* copyback.h — the SQL that puts a recovered table back: chosen from the live database and the point, printed, or applied and validated. */
#ifndef BACKSTOP_COPYBACK_H
#define BACKSTOP_COPYBACK_H

#include <stdbool.h>
#include <stdint.h>
#include <libpq-fe.h>

#include "error.h"
#include "manifest.h"
#include "strbuf.h"

/* What the source's name holds in the live database now. */
typedef enum copyback_live
{
	COPYBACK_LIVE_UNKNOWN,		/* not looked at (recovered into another database) */
	COPYBACK_LIVE_GONE,			/* no relation of that name */
	COPYBACK_LIVE_SAME,			/* the archived table itself (same relid) */
	COPYBACK_LIVE_OTHER			/* another table under that name (created since, or renamed into place) */
} copyback_live;

/* Changes to the table archived after the point, from the manifest's segment list. */
typedef struct copyback_later
{
	int segments;				/* segments holding changes after the point */
	uint64_t last_end_lsn;		/* end of the table's last archived transaction */
	int64_t last_time;			/* its commit time (Unix microseconds) */
} copyback_later;

typedef struct copyback_input
{
	const manifest *m;
	const manifest_layout *layout;	/* the recovered table's columns */
	const char *definition;		/* the base's definition JSON (comment, owner), may be NULL */
	const char *target_schema;	/* the recovered table */
	const char *target_name;
	copyback_live live;
	uint32_t live_relid;
	copyback_later later;
	char **columns;				/* --copy-back-columns: only these, by key (NULL: whole rows) */
	int ncolumns;
	const char *latest_command;	/* the `backstop recover ... --latest` that keeps later changes */
} copyback_input;

#define COPYBACK_MAX_STEPS 8

typedef enum copyback_kind
{
	COPYBACK_RENAME,			/* the recovery takes the table's name: the table is the recovery */
	COPYBACK_ROWS,				/* missing rows inserted, changed rows set back, by key */
	COPYBACK_COLUMNS			/* the named columns set back, by key */
} copyback_kind;

typedef struct copyback
{
	copyback_kind kind;
	int n;
	char *what[COPYBACK_MAX_STEPS];
	char *sql[COPYBACK_MAX_STEPS];	/* each one statement, as printed and as applied */
	strbuf notes;				/* one line each: what the plan does and what it loses */
} copyback;

/* Split --copy-back-columns: names separated by commas, each bare (as written) or
 * double-quoted ("" for a quote).  Frees nothing on failure; free with copyback_free_columns. */
int copyback_parse_columns(const char *list, char ***out, int *n, bs_error *err);
void copyback_free_columns(char **cols, int n);

/* Look up the source's name in the live database (the archiver's relid tells which table). */
int copyback_live_state(PGconn *conn, const manifest *m, copyback_live *live, uint32_t *relid, bs_error *err);

/* Changes archived after a point whose last applied transaction ended at applied_end (0:
 * none since the base at base_lsn). */
void copyback_later_changes(const manifest *m, uint64_t applied_end, uint64_t base_lsn, copyback_later *later);

/* Choose and build the copy-back.  Fails (ERRCODE_INVALID_PARAMETER) for --copy-back-columns
 * that name no column, a key column, or a table without a key. */
int copyback_build(const copyback_input *in, copyback *cb, bs_error *err);
void copyback_free(copyback *cb);

/*
 * Run the copy-back in one transaction and validate it before committing: after a rename the
 * table's content checksum over the recovered columns must equal the recovery's; after row or
 * column statements every recovered row (or column value, by key) must be in the table.
 * Anything else rolls back: ERRCODE_DATA_CORRUPTED for a failed validation.
 */
int copyback_apply(PGconn *conn, const copyback_input *in, const copyback *cb, bs_error *err);

/* One table of a recovered partitioned hierarchy, as it must stand after the copy-back. */
typedef struct copyback_member
{
	const char *schema;			/* its name after the copy-back */
	const char *name;
	const char *parent_schema;	/* its partitioned table (NULL for the root) */
	const char *parent_name;
	const char *bound;			/* pg_get_expr of its bound (NULL for the root) */
	const char *key;			/* pg_get_partkeydef when partitioned, NULL for a partition holding rows */
	const manifest_layout *layout;	/* a partition's recovered columns */
	const char *checksum;		/* its recovered content: "rows/sum" as recovery validated it */
} copyback_member;

/*
 * Whether the live database holds the hierarchy: every member under its name, partitioned by
 * its key or holding rows, attached to its parent with its bound.  *why says the first
 * difference (an empty *why: it does).
 */
int copyback_hierarchy_check(PGconn *conn, const copyback_member *mem, int n, strbuf *why, bs_error *err);

/* Whether every member's name is free in the live database; *why names the first taken one. */
int copyback_names_free(PGconn *conn, const copyback_member *mem, int n, strbuf *why, bs_error *err);

/*
 * Run a partitioned table's copy-back statements in one transaction and validate before
 * committing: the hierarchy stands as mem says, each partition's content checksum over its
 * recovered columns is its recovered checksum, and the root holds rows rows in all.  Anything
 * else rolls back: ERRCODE_DATA_CORRUPTED for a failed validation.
 */
int copyback_apply_hierarchy(PGconn *conn, char *const *sql, const char *const *what, int nsql,
							 const copyback_member *mem, int n, uint64_t rows, bs_error *err);

#endif
