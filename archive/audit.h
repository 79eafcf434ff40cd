/* audit.h — evidence that a table's manifest was rolled back, edited or deleted: its generation against head.json, and the segments stored beside it that it does not list. */
#ifndef BACKSTOP_AUDIT_H
#define BACKSTOP_AUDIT_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "manifest.h"
#include "manifest_head.h"
#include "storage.h"

/*
 * One finding.  A problem puts the changes committed in [doubt_from, doubt_to) in doubt:
 * the archive may lack some of them, so no recovery may replay across that range.  A
 * warning is an unlisted segment shown to be harmless (every transaction it holds below
 * the archive's complete position is in listed segments).
 */
typedef struct audit_finding
{
	char *key;					/* the manifest or object the evidence is about */
	char *message;				/* what is wrong, naming the evidence */
	uint64_t doubt_from;
	uint64_t doubt_to;			/* UINT64_MAX: open-ended */
} audit_finding;

typedef struct audit_report
{
	int nproblems;
	audit_finding *problems;
	int nwarnings;
	audit_finding *warnings;
} audit_report;

/*
 * The position up to which the archive claims the table's manifest complete: its
 * archived_to, or for an active table head.json's flushed_lsn when that is later.
 */
uint64_t audit_complete_to(const manifest *m, const archive_head *head);

/*
 * Audit one table: a manifest older than the generation head.json records (head may be
 * NULL), and every segment stored under tables/<relid>/seg/ that the manifest does not list
 * yet lies below audit_complete_to: such a segment is read, and its transactions looked for
 * in the listed segments that overlap it.  keys (nkeys of them, any order) are the keys
 * stored under the table's directory; NULL lists tables/<relid>/seg/ here.  Fails only when
 * storage cannot be reached (damage is reported, not returned).
 */
int audit_table(storage *st, const manifest *m, const archive_head *head, const char *const *keys, int nkeys,
				audit_report *out, bs_error *err);
void audit_report_free(audit_report *r);

/* "seg/<16 hex>-<16 hex>.bso" after the table's directory: its LSN range. */
bool audit_segment_range(const char *rest, uint64_t *first, uint64_t *end);

/* ERRCODE_DATA_CORRUPTED, naming the table and the evidence, when a problem of r puts a
 * change committed in [from, to) in doubt. */
int audit_check_range(const audit_report *r, const manifest *m, uint64_t from, uint64_t to, bs_error *err);

/*
 * manifest_find_table, but refusing with ERRCODE_DATA_CORRUPTED when head.json (head may
 * be NULL) records a manifest of a table of that name that storage no longer holds: the
 * table's manifest was deleted, and whatever remains cannot be trusted to be the newest.
 */
int audit_find_table(storage *st, const archive_head *head, const char *qualified_name, manifest **out,
					 bs_error *err);
/* As audit_find_table, resolving the name at lsn through the name history (UINT64_MAX: now). */
int audit_find_table_at(storage *st, const archive_head *head, const char *qualified_name, uint64_t lsn,
						manifest **out, bs_error *err);

#endif
