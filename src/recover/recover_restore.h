/* recover_restore.h — what a recovered table cannot hold (foreign keys into it, triggers, policies, publications, its partition attachment), as SQL printed for after the copy-back. */
#ifndef BACKSTOP_RECOVER_RESTORE_H
#define BACKSTOP_RECOVER_RESTORE_H

#include <stdint.h>

#include "manifest.h"
#include "manifest_head.h"
#include "storage.h"
#include "strbuf.h"

/* Statements for the user to run after the copy-back (never run by Backstop). */
typedef struct recover_restore
{
	int n;
	char **what;				/* one line: what the statement restores */
	char **sql;					/* one statement, without a trailing ';' */
	strbuf notes;				/* one line each: what could not be given as SQL, and why */
} recover_restore;

void recover_restore_free(recover_restore *r);

/*
 * From a base's definition of schema.name: its triggers, row security and policies, explicit
 * publication membership, and (with attach) its attachment to its partitioned parent.  Each
 * fragment from storage is checked (sqlcheck) before it is given as SQL; one that fails is a
 * note, not a statement.
 */
void recover_restore_from_definition(const char *definition, const char *schema, const char *name, bool attach,
									 recover_restore *r);

/*
 * Foreign keys of other archived tables that reference one of relids, from each table's
 * definition at its newest base before bound (the point), for tables not dropped before it.
 * Every table of the archive, whatever its format (head: as archive_head_load_any read it,
 * NULL: none; archive_tables_open).  A manifest that cannot be read is a note (the keys it may
 * hold are not listed).
 */
void recover_restore_foreign_keys(storage *st, const archive_head *head, const uint32_t *relids, int nrelids,
								  uint64_t bound, recover_restore *r);

/* The definition text of m's newest base before bound (NULL if none). */
const char *recover_restore_definition_at(const manifest *m, uint64_t bound);

#endif
