/* archive_load.h — a table's manifest as the commands need it, whatever the archive's format: format-1/2 manifests, or (format 3) the catalog folded forward over the packs (doc/design/format2.md 3.8, 5 step 4c). */
#ifndef BACKSTOP_ARCHIVE_LOAD_H
#define BACKSTOP_ARCHIVE_LOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "manifest.h"
#include "manifest_head.h"
#include "storage.h"

/* Pack keys of the log: log/<SEQ>.bsp, SEQ 16 upper-case hex digits, as catalog keys (the pack's first). */
#define ARCHIVE_LOG_PREFIX "log/"
char *archive_log_key(uint64_t seq);

/*
 * head: as archive_head_load_any read it (NULL: the archive has none).  Formats 1 and 2 (or
 * no head) read tables/<relid>/manifest.json as manifest_load, manifest_find_relid and
 * audit_find_table_at do, unchanged.
 *
 * Format 3: catalog/<head.catalog_seq>/dir.json (none when catalog_seq is 0), one LIST of log/,
 * the footers of the packs after the catalog (sequence numbers contiguous from catalog_seq + 1,
 * the first naming the catalog's pack as prev, the log reaching head.tip_seq and the pack after
 * the tip naming head.tip_sha256), the table's catalog page, the fold forward
 * (packcat_fold_table); then the table's runs in the packs up to the catalog, which the
 * catalog does not hold: the footers of those packs from the catalog's back to the first whose
 * seal LSN is at or below the table's first base (a run wholly below it is never replayed).
 * The manifest has pack segments, archived_to from the seals; generation 0.  Damage is
 * ERRCODE_DATA_CORRUPTED naming the object (a hole in the log, a missing catalog or page, a
 * chain that breaks), a pack's own refusals as pack_open and the fold give them.
 */

/* relid's manifest; *exists false (and *out NULL) when the archive has no such table. */
int archive_load_table(storage *st, const archive_head *head, uint32_t relid, manifest **out, bool *exists,
					   bs_error *err);
/* --relid (text): ERRCODE_INVALID_PARAMETER when not a relid, ERRCODE_UNDEFINED_TABLE when none. */
int archive_load_find_relid(storage *st, const archive_head *head, const char *relid_text, manifest **out,
							bs_error *err);
/*
 * "schema.table" at lsn (UINT64_MAX: now) by manifest_find_table_at's rules.  Format 3: the
 * catalog's dir (packcat_find_name) when no event after the catalog names a table of that name
 * (a first sight or a rename); else every table the dir or those events give that name is
 * folded and ranked (manifest_name_match).  None: ERRCODE_UNDEFINED_TABLE.
 */
int archive_load_find_at(storage *st, const archive_head *head, const char *qualified_name, uint64_t lsn,
						 manifest **out, bs_error *err);

#endif
