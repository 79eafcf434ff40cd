/* segment.h — encoder and bounds-checked reader of the change-segment raw format (doc/FORMAT.md). */
#ifndef BACKSTOP_SEGMENT_H
#define BACKSTOP_SEGMENT_H

#include "error.h"
#include "strbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEGMENT_MAGIC "BSSEG001"
#define SEGMENT_MAGIC_LEN 8
/* Byte1 op + UInt32 body_length */
#define SEGMENT_RECORD_HDR_LEN 5
/* commit_lsn, end_lsn, xid, commit_time, layout_id */
#define SEGMENT_FIXED_BODY_LEN 32

/* old_kind of an update that carries no old tuple (an ASCII '0' on storage). */
#define SEGMENT_OLD_NONE '0'

typedef struct segment_record
{
	char op;					/* 'I', 'U', 'D' or 'T' */
	uint64_t commit_lsn;
	uint64_t end_lsn;
	uint32_t xid;
	int64_t commit_time;		/* microseconds since 2000-01-01 UTC */
	uint32_t layout_id;
	char old_kind;				/* U: 'K', 'O' or SEGMENT_OLD_NONE; D: 'K' or 'O'; else SEGMENT_OLD_NONE */
	uint8_t truncate_options;	/* T only: PGO_TRUNCATE_* bits */
	const uint8_t *old_tuple;	/* verbatim TupleData, U (when old_kind != none) and D */
	size_t old_len;
	const uint8_t *new_tuple;	/* verbatim TupleData, I and U */
	size_t new_len;
	/* Writer only: the caller has already parsed these tuples with pgo_decode and seen only
	 * text/null/unchanged columns, so segment_write_record need not parse them again. */
	bool tuples_checked;
} segment_record;

/* Append the segment header (magic) to out. */
void segment_write_header(strbuf *out);

/*
 * Append one record to out.  The record is checked first (op, old_kind, presence
 * and well-formedness of the tuples it needs, text-only columns, lengths that fit
 * the format); on BS_ERR (ERRCODE_INVALID_PARAMETER) out is unchanged.
 */
int segment_write_record(strbuf *out, const segment_record *r, bs_error *err);

typedef struct segment_reader
{
	const uint8_t *buf;
	size_t len;
	size_t pos;
	uint64_t nrecords;			/* records returned so far */
} segment_reader;

/* Start reading a raw segment; checks the magic.  buf must outlive the reader. */
int segment_reader_init(segment_reader *r, const void *buf, size_t len, bs_error *err);

/*
 * Read the next record.  At the end of the segment sets *eof and returns BS_OK.
 * Tuple pointers in *out point into the reader's buffer.  Any inconsistency (bad
 * op, length overrunning the segment or the body, malformed or non-text tuple,
 * bad old_kind or options) gives BS_ERR with ERRCODE_DATA_CORRUPTED and the record
 * number and offset; the reader then stays at that record.
 */
int segment_reader_next(segment_reader *r, segment_record *out, bool *eof, bs_error *err);

/* What a segment holds, from the records' fixed fields only. */
typedef struct segment_summary
{
	uint64_t records;
	uint64_t first_commit_lsn;
	uint64_t last_end_lsn;
	int64_t first_time;			/* commit times, microseconds since 2000-01-01 UTC */
	int64_t last_time;
} segment_summary;

/*
 * Walk a raw segment's record headers (bounds-checked, ops and lengths checked) without
 * parsing tuples: for a writer that needs its own segment's range quickly.  Readers that
 * act on the contents use segment_reader_next, which checks everything.
 */
int segment_summarize(const void *buf, size_t len, segment_summary *out, bs_error *err);

/*
 * segment_summarize over a segment handed over in pieces of any size (a file read in
 * chunks, a stream being uploaded): the same checks and the same verdicts, in constant
 * memory.  Records may straddle pieces.  After an error every later call fails too.
 */
typedef struct segment_scan
{
	uint64_t offset;			/* bytes fed so far */
	uint64_t record_offset;		/* where the record being read starts */
	uint8_t head[SEGMENT_RECORD_HDR_LEN + SEGMENT_FIXED_BODY_LEN];	/* its first bytes */
	size_t head_len;
	uint64_t skip;				/* bytes of its body still to pass over */
	segment_summary sum;
	bool failed;
} segment_scan;

void segment_scan_init(segment_scan *s);
int segment_scan_feed(segment_scan *s, const void *data, size_t len, bs_error *err);
/* The segment ends here: fails on a cut inside the magic or a record. */
int segment_scan_finish(segment_scan *s, segment_summary *out, bs_error *err);

/* Bytes of a record that segment_patch_end_lsn needs in the buffer: op, length, commit LSN
 * and end LSN. */
#define SEGMENT_PATCH_SPAN (SEGMENT_RECORD_HDR_LEN + 16)

/*
 * Write end_lsn into the record headers in buf[0, len), which starts at a record boundary
 * (records only, no magic): every record whose first SEGMENT_PATCH_SPAN bytes lie in buf.
 * Returns the offset at which to go on: just after the last record patched (beyond len when
 * that record continues past buf), or the offset of a record cut before the end of its
 * end LSN (0 when the first one is).  *patched_end (may be NULL) is set to the end of the
 * last byte written (0: none), so a caller working on a copy writes back only buf[0, that).
 * Lengths are not checked: the records are the archiver's own, already encoded.
 */
size_t segment_patch_end_lsn(void *buf, size_t len, uint64_t end_lsn, size_t *patched_end);

#endif
