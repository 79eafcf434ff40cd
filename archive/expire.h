/* expire.h — retention: which base copies and segments of a table a policy keeps, and the objects that go. */
#ifndef BACKSTOP_EXPIRE_H
#define BACKSTOP_EXPIRE_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "manifest.h"
#include "storage.h"

/* Keep every point of the last keep_window_us (0: no window) and the last keep_bases base
 * copies (0: no count); with both, what either keeps is kept.  At least one is set. */
typedef struct expire_policy
{
	int64_t keep_window_us;
	int64_t keep_bases;
} expire_policy;

/*
 * What a policy does to one table.  The oldest kept base serves the first kept point; every
 * base before it goes, and every segment that ends at or before it (its records all
 * committed before the base, so no kept point replays them).
 */
typedef struct expire_plan
{
	bool changes;				/* something goes */
	int first_kept;				/* index in bases of the oldest kept base (-1: no base) */
	uint64_t keep_from;			/* its LSN: the first recoverable point after expiry */
	int64_t keep_from_time;		/* its time */
	int64_t window_end_time;	/* the time the window is counted back from (now, or the drop) */
	int nbases;					/* bases that go */
	int nsegments;				/* segments that go */
	bool *drop_segment;			/* per segment of the manifest: it goes */
	uint64_t bytes;				/* stored bytes of what goes */
	storage_keys keys;			/* objects that go (chunks, schema keys, segments) */
} expire_plan;

/*
 * The plan for m under policy at now_us (pure: reads only m).  Nothing goes from a skipped
 * table or one without a base; the newest base is always kept.  A dropped table's window is
 * counted back from its drop (its last archived change or base), not from now.
 */
void expire_select(const manifest *m, const expire_policy *policy, int64_t now_us, expire_plan *out);
/* Remove what plan drops from m and record the expiry (expired_before, expired_time). */
void expire_apply(manifest *m, const expire_plan *plan, int64_t now_us);
void expire_plan_free(expire_plan *plan);

/*
 * Objects stored under the table's directory that m (NULL: no manifest) does not reference
 * and that may go: segments and base chunks wholly below m's expired_before (left by an
 * expiry interrupted between its manifest store and its deletes), and other unreferenced
 * base objects (abandoned base copies) last modified at least min_age_s ago.  keys are what
 * storage holds under tables/<relid>/ (any order).  Without a manifest, every object at
 * least min_age_s old (the caller makes sure head.json records no manifest for it).
 * Unlisted segments above expired_before are left to audit (evidence, or an upload in
 * progress).  Fails only when storage cannot be reached.
 */
int expire_orphans(storage *st, const manifest *m, const char *const *keys, int nkeys, int64_t min_age_s,
				   int64_t now_s, storage_keys *out, bs_error *err);

/* True when "schema.name" matches one of the comma-separated shell patterns (NULL: all). */
bool expire_table_matches(const char *patterns, const char *schema, const char *name);

#endif
