/* mdelta.h — a table's pack events from the change of its in-memory manifest between two seals (doc/design/format2.md 5 step 4a). */
#ifndef BACKSTOP_MDELTA_H
#define BACKSTOP_MDELTA_H

#include <stdint.h>

#include "error.h"
#include "manifest.h"

/* One event: its LSN (also in the JSON) and the compact JSON object, as pack_writer_add_event takes it. */
typedef struct mdelta_event
{
	uint64_t lsn;
	char *json;
} mdelta_event;

/* A table's events in LSN order (not going back). */
typedef struct mdelta_list
{
	int n;
	mdelta_event *events;
} mdelta_list;

void mdelta_list_free(mdelta_list *l);

/*
 * The events that, folded (fold_table_from) onto the state before (NULL: the table not seen
 * yet; the first event is then its "table" event), give after, segments and archived_to aside
 * (the fold derives those from the runs and the seal LSNs).  Every event's LSN is at or above
 * lsn_floor (the LSN of the table's last event folded, which the fold's order check starts
 * from) and at or above the position the event stands for (a layout's from_lsn, a base's lsn,
 * a gap's from, ...), raised where needed so the list never goes back.  No change: *out empty.
 *
 * Before returning, the events are checked by the fold itself: written to a pack in memory and
 * folded onto a copy of before; the result must equal after in every member of a catalog entry
 * (manifest_table_to_json_object).  What the archiver changes in place has its own kinds: a
 * status changed back to active or a finding changed ("status"), a layout changed in place
 * ("layout_replaced"), a names entry replaced or inserted before the newest ("name_replaced");
 * the "expired" event removes what expire_apply removes (the bases below expired_before).
 * What events cannot express is refused with ERRCODE_INTERNAL naming the member (a layout
 * removed, or changed in how its records decode; a base removed other than by an expiry,
 * changed or moved; a names entry removed; a dropped table's status going back; a counter
 * going down, ...).  *out is empty on failure.
 */
int mdelta_events(const manifest *before, const manifest *after, uint64_t lsn_floor, mdelta_list *out,
				  bs_error *err);

#endif
