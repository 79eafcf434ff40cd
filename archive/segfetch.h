/* segfetch.h — the raw records of a manifest segment, from its own object or from its run in a pack (doc/design/format2.md 5 step 4b). */
#ifndef BACKSTOP_SEGFETCH_H
#define BACKSTOP_SEGFETCH_H

#include <stdint.h>

#include "error.h"
#include "manifest.h"
#include "storage.h"
#include "strbuf.h"

/*
 * Every reader of segments (recovery, `changes`, `verify`, the audit) reads through here, so
 * that a segment of a folded manifest whose records lie in a pack (MANIFEST_SEGMENT_PACK) is
 * read as a format-2 segment object is.  What comes out is the raw segment either way: the
 * BSSEG001 magic and the records (segment_reader_init reads it).
 *
 * A segfetch is a cache of the pack indexes opened so far (one per reading command or
 * recovery): the runs of N tables, or of one table's N segments, in one pack open it once.
 * It is used by one thread at a time.
 */
typedef struct segfetch segfetch;

segfetch *segfetch_new(void);
void segfetch_free(segfetch *f);

typedef struct segfetch_info
{
	uint64_t stored_size;		/* stored bytes read: the object, or the pack's frames (and,
								 * when the pack was opened for this read, its trailer, header
								 * and footer) */
	uint64_t raw_size;			/* bytes handed to the sink */
} segfetch_info;

/* The raw size a segment's read gives: the object's raw size, or the magic and the run. */
uint64_t segfetch_raw_size(const manifest_segment *s);

/*
 * The raw segment s of table relid, streamed to sink (the sink sees data before the verdict:
 * act on it only after BS_OK).
 *
 * A segment object (MANIFEST_SEGMENT_OBJECT): object_get against the manifest's SHA-256 of the
 * stored object, exactly as before packs (its messages and codes unprefixed: the callers say
 * which object, as they did); the raw size is the caller's to compare.
 *
 * A pack run (MANIFEST_SEGMENT_PACK): the pack (missing: ERRCODE_NOT_FOUND) is opened once per
 * segfetch (pack_open: trailer, header and footer checked), must start at the segment's
 * pack_seq, and must hold a run of relid (none: ERRCODE_NOT_FOUND) that is the segment's: raw
 * offset and length, records, first and last LSN and times (else ERRCODE_DATA_CORRUPTED); the
 * run is read with pack_read_run (each frame's SHA-256 against the footer, its raw size, then
 * the records against the run's entry), which stands for the object's SHA-256.  Every message
 * names the pack's key.  In an encrypted archive (st a storage_crypt wrapper with its key) the
 * pack is read by range from the storage under the wrapper and its units opened with the
 * wrapper's keys (storage_crypt_unit_access); without the key, a sealed pack is refused
 * (ERRCODE_ENCRYPTION_KEY).
 */
int segfetch_read(segfetch *f, storage *st, uint32_t relid, const manifest_segment *s, storage_sink sink,
				  void *ctx, segfetch_info *info, bs_error *err);

/* As segfetch_read into out (reset first; empty on failure). */
int segfetch_read_all(segfetch *f, storage *st, uint32_t relid, const manifest_segment *s, strbuf *out,
					  segfetch_info *info, bs_error *err);

/* Packs opened so far (tests: one open per pack, whatever the number of runs read). */
int segfetch_packs_opened(const segfetch *f);

#endif
