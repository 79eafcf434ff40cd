/* fold.h — the fold (doc/design/format2.md 3.2, 5 step 3): one table's pack events and runs, in sequence order, as the in-memory manifest. */
#ifndef BACKSTOP_FOLD_H
#define BACKSTOP_FOLD_H

#include <stdint.h>

#include "error.h"
#include "manifest.h"
#include "pack.h"

/*
 * The manifest of relid from the indexes of a sequence of packs (packs[0] first; contiguous
 * sequence numbers, seal LSNs not going back): the table's events applied in order (each
 * pack's events are in LSN order, the table's do not go back across packs), each of its runs
 * a segment of source MANIFEST_SEGMENT_PACK, archived_to from the seal LSNs (format2.md
 * section 5 step 3 defines the events' members and these rules).  The packs' events and
 * runs are untrusted: damage is ERRCODE_DATA_CORRUPTED with a message naming the pack (key and sequence) and the relid;
 * the result passes manifest_validate.  Only the table's own events are read (other tables'
 * are checked for LSN order only; fold_check_pack reads them all).  A table the packs never show (no first sight):
 * ERRCODE_NOT_FOUND.
 */
int fold_table(uint32_t relid, const pack_index *const *packs, int npacks, manifest **out, bs_error *err);

/*
 * Where a fold resumes (a catalog's state of the table, doc/design/format2.md 3.4): the
 * packs up to seq are folded into m (no segments; NULL: the table was not seen by then).
 */
typedef struct fold_start
{
	uint64_t seq;				/* the last pack folded */
	uint64_t seal_lsn;			/* its seal LSN: the next pack's runs start at or above it */
	const char *sha256;			/* hex SHA-256 of its stored bytes (the next pack's prev); NULL: unknown */
	manifest *m;				/* owned by the fold from the call on (set to NULL), also on failure */
	uint64_t last_event_lsn;	/* of the table's last event folded */
} fold_start;

/*
 * fold_table resumed from start (NULL: from nothing): packs[0] must follow start->seq (and
 * name start->sha256 as prev when given).  *last_event_lsn (may be NULL) gets the LSN of the
 * table's last event, what a catalog keeps to resume from.  With no packs: start's manifest,
 * validated.
 */
int fold_table_from(uint32_t relid, fold_start *start, const pack_index *const *packs, int npacks,
					manifest **out, uint64_t *last_event_lsn, bs_error *err);

/* Every event of a pack checked as fold_table checks its table's (kinds, members, order),
 * each table's events on their own: what a reader of the whole pack can refuse at once. */
/* A pack's run as the manifest segment that names it (key borrowed from idx). */
void fold_run_segment(const pack_index *idx, const pack_run *r, manifest_segment *seg);
int fold_check_pack(const pack_index *idx, bs_error *err);

#endif
