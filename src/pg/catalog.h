/* catalog.h — what the source database holds: archivable tables, replica identity, definitions, publication. */
#ifndef BACKSTOP_CATALOG_H
#define BACKSTOP_CATALOG_H

#include <stdbool.h>
#include <stdint.h>
#include <libpq-fe.h>

#include "error.h"
#include "manifest.h"

/* Tables `backstop recover` created carry a comment starting with this: only those are replaced,
 * and catalog_list_tables tells them apart.  Defined here, below recovery, which writes it. */
#define RECOVER_COMMENT_PREFIX "backstop recovery of "

typedef struct catalog_table
{
	uint32_t relid;
	char *schema;
	char *name;
	char replident;				/* relreplident */
	char relkind;				/* pg_class.relkind: 'r' table, 'p' partitioned table, ... */
	bool usable;				/* UPDATE/DELETE can be published without failing on the primary */
	char *finding;				/* why not usable, NULL when usable */
	bool unpublished;			/* usable, but not in the publication the slot streams (set by the archiver) */
	bool publish_pending;		/* usable, new, not in the publication yet: a table check's update of it failed
								 * for a reason of the moment, the next one adds it (set by the archiver) */
	bool put_back;				/* not in the publication, added by this check's update of it (set by the
								 * archiver): one it archived was taken out of it meanwhile */
} catalog_table;

typedef struct catalog_table_list
{
	int count;
	catalog_table *tables;
	int nmissing;
	char **missing;				/* listed names that do not exist (dropped?) */
} catalog_table_list;

/* Tables to archive: the comma-separated list or, when all is true, every permanent or
 * unlogged ordinary or partitioned table outside system schemas (the unlogged and
 * partitioned ones not usable, with a finding).  Listed names that do not exist are returned in
 * missing (the caller decides: a dropped table, or a typo); none existing is an error.
 * With all, a table made by `backstop recover` (RECOVER_COMMENT_PREFIX comment) is left out
 * until it bears the name its comment names (renamed into place) or is in a publication
 * (archived already: it stays, whatever its name). */
int catalog_list_tables(PGconn *conn, const char *list, bool all, catalog_table_list *out, bs_error *err);
void catalog_table_list_free(catalog_table_list *list);
const catalog_table *catalog_find(const catalog_table_list *list, uint32_t relid);

/* Definition captured with a base copy: JSON text with columns, indexes, constraints (see
 * doc/FORMAT.md).  own_publication (may be NULL) is left out of its publication list. */
int catalog_table_definition(PGconn *conn, uint32_t relid, const char *own_publication, char **json_out,
							 bs_error *err);

/* Complete a layout's columns (from a Relation message: name, type, typmod, key) with the
 * type's name, NOT NULL and the value pre-existing rows read for the column. */
int catalog_describe_columns(PGconn *conn, uint32_t relid, int ncols, manifest_column *cols, bs_error *err);

/* Whether rows that predate column `name` may hold values the stream never carried: it has a
 * default (or is an identity) and no missing value, so PostgreSQL computed one per row in a
 * rewrite (a volatile default).  True when the column is not found: errs toward not knowing. */
int catalog_column_values_unknown(PGconn *conn, uint32_t relid, const char *name, bool *unknown, bs_error *err);

/* Make the publication publish exactly these tables (created when missing).  A publication
 * FOR ALL TABLES, or one this role does not own, is left as it is: *used_as_is then says why
 * (malloc'd; NULL when the publication was made or checked right).  lock_timeout_ms > 0: the
 * change waits at most that long for the tables' locks (PGSQL_LOCAL_LOCK_TIMEOUT_FMT), else
 * fails (0: waits as long as it takes).  *added (malloc'd, *nadded of them; NULL when none):
 * the tables of the list an existing publication did not list before the update added them,
 * or listed in part (a row filter or a column list) before the update published them whole. */
int catalog_sync_publication(PGconn *conn, const char *pubname, const catalog_table_list *tables, char **used_as_is,
							 int64_t lock_timeout_ms, uint32_t **added, int *nadded, bs_error *err);
/* Whether the publication streams each of these tables now: state[i] 'p' published, 'n' not,
 * 'f' only in part (a row filter or a column list), 'x' with its stored generated columns
 * (PostgreSQL 18: publish_generated_columns, or a column list naming one), 'g' gone from the catalog (dropped
 * meanwhile); and a WAL position read before: a table
 * published here leaves the publication (if it does) after *seen_lsn.  The read waits at
 * most lock_timeout_ms for the tables' locks (0: as long as it takes; see catalog.c). */
int catalog_publication_members(PGconn *conn, const char *pubname, int n, const uint32_t *relids, char *state,
								uint64_t *seen_lsn, int64_t lock_timeout_ms, bs_error *err);
/* The same for one table, read without opening any table (no lock of a session holds it up):
 * *state as above, and the position read before. */
int catalog_publication_member(PGconn *conn, const char *pubname, uint32_t relid, char *state, uint64_t *seen_lsn,
							   bs_error *err);

#endif
