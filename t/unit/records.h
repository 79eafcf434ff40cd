/* records.h — segment records for unit tests: TupleData of text columns, and runs of inserts written as a segment's records. */
#ifndef BACKSTOP_RECORDS_H
#define BACKSTOP_RECORDS_H

#include "segment.h"
#include "strbuf.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The commit time of a run's first record (PostgreSQL epoch, microseconds). */
#define REC_TIME INT64_C(849000000000000)

/* One text column of a TupleData: len bytes of s. */
static inline void
tuple_text(strbuf *sb, const char *s, size_t len)
{
	strbuf_append_u8(sb, 't');
	strbuf_append_be32(sb, (uint32_t) len);
	strbuf_append(sb, s, len);
}

/* A TupleData of n text columns (NULL: a null column). */
static inline void
tuple(strbuf *sb, int n, const char *const *vals)
{
	strbuf_append_be16(sb, (uint16_t) n);
	for (int i = 0; i < n; i++)
	{
		if (vals[i] == NULL)
			strbuf_append_u8(sb, 'n');
		else
			tuple_text(sb, vals[i], strlen(vals[i]));
	}
}

static uint32_t run_rng = 12345;
/* make_run's pads: one letter repeated instead of pseudo-random ones. */
static bool run_compressible = false;

static inline uint32_t
run_next_rand(void)
{
	run_rng = run_rng * 1103515245u + 12345u;
	return run_rng >> 8;
}

/*
 * nrec inserts of layout_id: commit LSNs lsn, lsn + 0x100, ..., each ending 0x30 later, xids from
 * 1000, commit times 1 ms apart from REC_TIME.  The rows are (id) with id 0, 1, ..., or with
 * padlen > 0 (id, pad), pad being padlen pseudo-random letters (see run_compressible).
 */
static inline void
make_run(strbuf *sb, int nrec, uint64_t lsn, uint32_t layout_id, size_t padlen)
{
	strbuf tup = STRBUF_INIT;
	char *pad = xmalloc(padlen + 1);
	bs_error err;

	for (int i = 0; i < nrec; i++)
	{
		segment_record r;
		char id[32];

		for (size_t k = 0; k < padlen; k++)
			pad[k] = run_compressible ? 'x' : (char) ('a' + run_next_rand() % 26);
		snprintf(id, sizeof(id), "%d", i);
		strbuf_reset(&tup);
		strbuf_append_be16(&tup, padlen > 0 ? 2 : 1);
		tuple_text(&tup, id, strlen(id));
		if (padlen > 0)
			tuple_text(&tup, pad, padlen);
		memset(&r, 0, sizeof(r));
		r.op = 'I';
		r.commit_lsn = lsn + (uint64_t) i * 0x100;
		r.end_lsn = r.commit_lsn + 0x30;
		r.xid = 1000 + (uint32_t) i;
		r.commit_time = REC_TIME + (int64_t) i * 1000;
		r.layout_id = layout_id;
		r.old_kind = SEGMENT_OLD_NONE;
		r.new_tuple = (const uint8_t *) tup.data;
		r.new_len = tup.len;
		if (segment_write_record(sb, &r, &err) != BS_OK)
		{
			printf("# segment_write_record: %s\n", err.message);
			exit(2);
		}
	}
	strbuf_free(&tup);
	free(pad);
}

#endif
