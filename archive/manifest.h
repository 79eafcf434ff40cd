/* manifest.h — the per-table manifest in memory: layouts, base copies, segments, gaps and names; built, looked up, freed. */
#ifndef BACKSTOP_MANIFEST_H
#define BACKSTOP_MANIFEST_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

/* Format written; readers accept MANIFEST_FORMAT_MIN..MANIFEST_FORMAT (doc/FORMAT.md). */
#define MANIFEST_FORMAT 2
#define MANIFEST_FORMAT_MIN 1

typedef struct manifest_column
{
	char *name;
	uint32_t type_oid;
	int32_t typmod;
	char *type_name;			/* format_type(oid, typmod), e.g. "numeric(10,2)" */
	bool key;					/* part of the replica identity */
	bool not_null;
	char *missing;				/* value for rows that predate the column (attmissingval), NULL if none */
	bool missing_unknown;		/* added with a per-row (volatile) default: rows that predate the
								 * column had values the archive does not know */
} manifest_column;

typedef struct manifest_layout
{
	uint32_t id;
	uint64_t from_lsn;			/* first commit LSN using this layout */
	char replident;				/* 'd' default, 'f' full, 'i' index, 'n' nothing */
	int ncols;
	manifest_column *columns;
} manifest_layout;

typedef struct manifest_chunk
{
	char *key;
	char sha256[65];			/* of the stored object */
	uint64_t size;
	uint64_t raw_size;
	uint64_t rows;
} manifest_chunk;

typedef struct manifest_base
{
	uint64_t lsn;				/* exact: transactions with commit LSN < lsn are included */
	int64_t time;				/* Unix microseconds when taken */
	uint64_t rows;
	uint32_t layout_id;
	char *schema_key;			/* pg_dump --schema-only output, NULL if unavailable */
	char *definition;			/* JSON text: columns, indexes, constraints at this base (see FORMAT.md) */
	int nchunks;
	manifest_chunk *chunks;
} manifest_base;

/* Where a segment's records are: a segment object of its own (formats 1 and 2), or a run of
 * records in a pack (doc/design/format2.md 3.2; folded from packs, never in a stored manifest). */
typedef enum manifest_segment_source
{
	MANIFEST_SEGMENT_OBJECT = 0,
	MANIFEST_SEGMENT_PACK
} manifest_segment_source;

typedef struct manifest_segment
{
	manifest_segment_source source;
	char *key;					/* the segment object; PACK: the pack */
	uint64_t first_lsn;			/* commit LSN of the first record */
	uint64_t last_end_lsn;		/* end LSN of the last transaction */
	int64_t first_time;			/* commit times, Unix microseconds */
	int64_t last_time;
	uint64_t records;
	char sha256[65];
	uint64_t size;				/* stored size; PACK: 0 (the pack's frames are checked by their own hashes) */
	uint64_t raw_size;			/* PACK: the run's length in the pack's raw space */
	uint64_t pack_seq;			/* PACK: the pack's first sequence number */
	uint64_t raw_offset;		/* PACK: where the run starts in the pack's raw space */
} manifest_segment;

/* Changes committed in [from, to) are not in the archive: archiving resumed from a new
 * replication slot at to (a takeover, or a slot dropped and created again). */
typedef struct manifest_gap
{
	uint64_t from;
	uint64_t to;
} manifest_gap;

/* A name the table carried for points at or after from_lsn (until the next entry). */
typedef struct manifest_name
{
	uint64_t from_lsn;
	char *schema;
	char *name;
} manifest_name;

typedef struct manifest
{
	uint32_t relid;
	/* Format 2: raised at every store and recorded in head.json, so an older copy put back
	 * is seen for what it is; 0 in a format-1 manifest. */
	uint64_t generation;
	char *schema;
	char *name;
	char *status;				/* "active", "dropped", "skipped" */
	uint64_t dropped_at_lsn;
	/* The newest point at which a checkpoint verified that the table existed (0: none): the
	 * archiver answered a recovery point there while the table was in the catalog. */
	uint64_t existed_to;
	char *finding;				/* why skipped or reduced; NULL if none */
	/* Retention (backstop expire): points below expired_before were removed on purpose, at
	 * expired_time (Unix microseconds); 0: nothing expired.  Never above the oldest base. */
	uint64_t expired_before;
	int64_t expired_time;
	/* A column change at this LSN needs a new base copy (0: none pending): recovery points from
	 * here until the next base copy are refused; kept durably so a restart takes it at once. */
	uint64_t rebase_requested_at;
	uint64_t archived_to;		/* every change up to here is in the segments */
	int nlayouts;
	manifest_layout *layouts;
	int nbases;
	manifest_base *bases;		/* ascending LSN */
	int nsegments;
	manifest_segment *segments;	/* ascending LSN */
	int ngaps;
	manifest_gap *gaps;			/* ascending, disjoint (format 2; none in format 1) */
	/* Optional (absent in older manifests): the name history, ascending from_lsn, the first
	 * from 0/0, the last the current schema.name; none: the table always had its name. */
	int nnames;
	manifest_name *names;
	/* Optional: the commit LSN of the table's DROP, read from the stream (exact); 0: only
	 * dropped_at_lsn's upper bound is known. */
	uint64_t drop_lsn;
	/* Optional: schema changes of the table are captured in the stream from this LSN on
	 * (0: not captured; a change after the last row change is then not at its position). */
	uint64_t ddl_capture_from;
	/* Optional: commit LSNs (ascending) of ALTER TABLEs on the partitioned table this one was a
	 * partition of (ATTACH/DETACH PARTITION among them), read from the stream: a base before
	 * one does not tell the membership at a point after it. */
	int npartition_changes;
	uint64_t *partition_changes;
	/* Optional ("schema_unknown"): where schema changes were not captured, the windows in
	 * which the table's columns changed at an unknown commit: commits in [from, to] may or
	 * may not see the change, so points p with from <= p < to are refused (to =
	 * MANIFEST_GAP_OPEN: until a base copy closes it).  Ascending, disjoint. */
	int nschema_gaps;
	manifest_gap *schema_gaps;
} manifest;

manifest *manifest_new(uint32_t relid, const char *schema, const char *name);
void manifest_free(manifest *m);
/* Free what a column array or a base owns (the base itself is the caller's). */
void manifest_columns_free(int n, manifest_column *cols);
void manifest_base_clear(manifest_base *b);

/* Append entries (copies are made of the strings / arrays). Returns the stored element. */
manifest_layout *manifest_add_layout(manifest *m, uint64_t from_lsn, char replident,
									 int ncols, const manifest_column *columns);
/* Add a layout keeping the list sorted by from_lsn (a layout may arrive after a later one:
 * a base copy taken ahead of or behind the stream).  want_id keeps a given id (-1: a new one). */
manifest_layout *manifest_insert_layout(manifest *m, int64_t want_id, uint64_t from_lsn, char replident,
										int ncols, const manifest_column *columns);
/*
 * The id of a layout in effect from from_lsn with these columns, added when needed: the
 * layout in effect at from_lsn when it is the same; else a new layout when none is later;
 * else the next later one when it is the same (its from_lsn is lowered); else a new layout
 * inserted in LSN order (its id, the highest + 1, is then not its position).
 */
int manifest_use_layout(manifest *m, uint64_t from_lsn, char replident, int ncols, const manifest_column *columns,
						uint32_t *id, bs_error *err);
/* The layout in effect for a commit at lsn (the newest from at or before it), NULL if none. */
const manifest_layout *manifest_layout_at(const manifest *m, uint64_t lsn);
/* The newest point at which the archive shows the table existing: its last archived change's
 * end LSN, its newest base's LSN or the newest checkpoint answered for it (existed_to),
 * whichever is greater.  A dropped table was dropped after it (and before dropped_at_lsn);
 * recovery vouches for no later point. */
uint64_t manifest_dropped_after(const manifest *m);
manifest_base *manifest_add_base(manifest *m, const manifest_base *base);
manifest_segment *manifest_add_segment(manifest *m, const manifest_segment *seg);
/* Record that changes committed in [from, to) are not archived (merged with the gaps it
 * touches; nothing when from >= to). */
void manifest_add_gap(manifest *m, uint64_t from, uint64_t to);
/* The open gap (to = MANIFEST_GAP_OPEN: the table's archive ends at its from, until a new base
 * copy closes it), NULL if none.  Only the last gap can be open. */
#define MANIFEST_GAP_OPEN UINT64_MAX
manifest_gap *manifest_open_gap(const manifest *m);
/* A new base copy at base_lsn ends the open gap there (when it lies after the gap's start). */
void manifest_close_open_gap(manifest *m, uint64_t base_lsn);
/* The first gap overlapping commits in [from, to), NULL if none. */
const manifest_gap *manifest_gap_in(const manifest *m, uint64_t from, uint64_t to);
/* Record that the table's columns changed at an unknown commit in [from, to] (merged with
 * the windows it touches; nothing when from >= to). */
void manifest_add_schema_gap(manifest *m, uint64_t from, uint64_t to);
/* The open schema window, NULL if none; closed (to = base_lsn) by a base copy after its start. */
manifest_gap *manifest_open_schema_gap(const manifest *m);
void manifest_close_open_schema_gap(manifest *m, uint64_t base_lsn);
/* The schema window that makes a recovery bound uncertain (from < bound <= to), NULL if none. */
const manifest_gap *manifest_schema_gap_at(const manifest *m, uint64_t bound);
const manifest_layout *manifest_layout_by_id(const manifest *m, uint32_t id);
/* Whether the layout has a column of that name. */
bool manifest_layout_has_column(const manifest_layout *l, const char *name);
/* True when two column lists describe the same layout. */
bool manifest_columns_equal(int n1, const manifest_column *c1, int n2, const manifest_column *c2);
/* The same names, types and typmods, key flags aside (a table check's view of the catalog). */
bool manifest_columns_same_types(int n1, const manifest_column *c1, int n2, const manifest_column *c2);

/* Record that the table is named schema.name for points at or after from_lsn (the history
 * starts with the name it had before); the current name becomes the newest entry's. */
void manifest_add_name(manifest *m, uint64_t from_lsn, const char *schema, const char *name);
/* The name in effect at lsn (UINT64_MAX: the current name). */
void manifest_name_at(const manifest *m, uint64_t lsn, const char **schema, const char **name);
/* Whether the table ever carried schema.name. */
bool manifest_had_name(const manifest *m, const char *schema, const char *name);

/* Record a change of the table's partition membership at lsn (kept ascending, no duplicates). */
void manifest_add_partition_change(manifest *m, uint64_t lsn);

#endif
