/* archive_load.h — a table's manifest as the commands need it, whatever the archive's format: format-1/2 manifests, or (format 3) the catalog folded forward over the packs (doc/design/format2.md 3.8, 5 step 4c); the whole log walked for verify (3.6). */
#ifndef BACKSTOP_ARCHIVE_LOAD_H
#define BACKSTOP_ARCHIVE_LOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "manifest.h"
#include "manifest_head.h"
#include "pack.h"
#include "packcat.h"
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

/*
 * The format-3 view the loads above read once, open for many tables (a whole-archive command
 * opens one and loads every table through it): catalog/<head.catalog_seq>/dir.json, one LIST of
 * log/, the footers of the packs after the catalog, with the checks above.  The footers of the
 * packs up to the catalog that a table's runs need are opened on the first table that needs
 * them and kept for the next.  The head is read at open only (not kept).
 */
typedef struct archive_view archive_view;

/* A format-3 head only (else ERRCODE_INVALID_PARAMETER); damage as above. */
int archive_view_open(storage *st, const archive_head *head, archive_view **out, bs_error *err);
void archive_view_free(archive_view *v);
/* Every relid the archive knows: the catalog dir's tables and the relids of "table" events in the
 * packs after it; sorted, unique (*relids NULL when none; the caller frees it). */
void archive_view_relids(const archive_view *v, uint32_t **relids, int *n);
/*
 * As archive_load_table; *last_event_lsn (may be NULL; 0 when the table does not exist) gets
 * the LSN of the table's last event folded (the catalog page's when no pack after it has an
 * event of the table): the lsn_floor of mdelta_events for a writer appending its events.
 */
int archive_view_table(archive_view *v, uint32_t relid, manifest **out, uint64_t *last_event_lsn, bool *exists,
					   bs_error *err);
/* The tip: the last pack after the catalog as listed, else the catalog's own pack (the dir's seq
 * and seal LSN); 0 for an empty log (no catalog, no pack). */
uint64_t archive_view_tip_seq(const archive_view *v);
uint64_t archive_view_tip_seal_lsn(const archive_view *v);
/*
 * Hex SHA-256 of the tip pack's stored bytes ("" for an empty log): the pack read whole (1 GET,
 * through the storage under any encryption wrapper), its size checked against the listing's,
 * its hash against the catalog's when the catalog's pack is the tip and against head.json's
 * tip_sha256 when it is the head's tip (ERRCODE_DATA_CORRUPTED; a tip pack not listed: "is
 * missing from the log").
 */
int archive_view_tip_sha256(archive_view *v, char out[65], bs_error *err);
/* The catalog's dir (NULL: none) and the opened packs after it (owned by the view). */
const packcat_dir *archive_view_dir(const archive_view *v);
const pack_index *const *archive_view_packs_after(const archive_view *v, int *n);
/* The table named schema.name at lsn (UINT64_MAX: now), as archive_load_find_at ranks it. */
int archive_view_find_at(archive_view *v, const char *qualified_name, uint64_t lsn, manifest **out, bs_error *err);

/*
 * verify's walk of the whole log of a format-3 archive (doc/design/format2.md 3.6, 3.9): every
 * pack listed under log/ read whole once (through the storage under any encryption wrapper),
 * its size against the listing's, opened (pack_open) and its events checked (fold_check_pack);
 * sequence numbers contiguous from 1 to the last (a hole names the missing key), each pack's
 * prev the SHA-256 of its predecessor's stored bytes (the first pack's none), seal LSNs not
 * going back, each run inside its pack's seal range and read back (pack_read_run: frames'
 * SHA-256, raw sizes, records against the run's entry); head.json's tip_seq reached and
 * tip_sha256 the tip's hash; the catalog the head names present, its dir's pack_sha256 and
 * seal LSN those of its pack.  Each piece of damage goes to damage (the key it concerns, the
 * message) and the walk goes on; BS_ERR only when the storage fails (err).
 */
typedef void (*archive_damage_fn) (void *ctx, const char *key, const char *message);
typedef struct archive_log_stats
{
	uint64_t packs;				/* read whole */
	uint64_t runs;				/* read back */
	uint64_t bytes;				/* stored bytes read */
	uint64_t problems;			/* damage reported */
} archive_log_stats;
int archive_log_verify(storage *st, const archive_head *head, archive_damage_fn damage, void *ctx,
					   archive_log_stats *stats, bs_error *err);

/*
 * Every table of an archive whatever its format, loaded one after the other (a whole-archive
 * command): formats 1 and 2 (or no head) list tables/ (manifest_list_relids) and load each with
 * manifest_load, unchanged; format 3 opens one archive_view (its relids, archive_view_table).
 */
typedef struct archive_tables archive_tables;

int archive_tables_open(storage *st, const archive_head *head, archive_tables **out, bs_error *err);
void archive_tables_free(archive_tables *t);
/* The relids, ascending (owned by t). */
const uint32_t *archive_tables_relids(const archive_tables *t, int *n);
/* As archive_load_table (*exists false: removed since the listing, or no such table). */
int archive_tables_load(archive_tables *t, uint32_t relid, manifest **out, bool *exists, bs_error *err);

#endif
