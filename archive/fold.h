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

/* Every event of a pack checked as fold_table checks its table's (kinds, members, order),
 * each table's events on their own: what a reader of the whole pack can refuse at once. */
int fold_check_pack(const pack_index *idx, bs_error *err);

#endif
