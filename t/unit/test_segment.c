/* test_segment.c — unit tests of the change-segment encoder and reader. */
#include "segment.h"
#include "pgoutput.h"
#include "strbuf.h"
#include "tap.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
put_text(strbuf *sb, const char *s)
{
	strbuf_append_u8(sb, 't');
	strbuf_append_be32(sb, (uint32_t) strlen(s));
	strbuf_append_str(sb, s);
}

static bool
same_record(const segment_record *a, const segment_record *b)
{
	return a->op == b->op && a->commit_lsn == b->commit_lsn && a->end_lsn == b->end_lsn && a->xid == b->xid &&
		a->commit_time == b->commit_time && a->layout_id == b->layout_id && a->old_kind == b->old_kind &&
		a->truncate_options == b->truncate_options && a->old_len == b->old_len && a->new_len == b->new_len &&
		(a->old_len == 0 || memcmp(a->old_tuple, b->old_tuple, a->old_len) == 0) &&
		(a->new_len == 0 || memcmp(a->new_tuple, b->new_tuple, a->new_len) == 0);
}

/* Read a whole segment; returns records read, or -1 on error. */
static int
read_all(const void *buf, size_t len, segment_record *recs, int max, bs_error *err)
{
	segment_reader r;
	bool eof = false;
	int n = 0;

	if (segment_reader_init(&r, buf, len, err) != BS_OK)
		return -1;
	for (;;)
	{
		segment_record rec;

		if (segment_reader_next(&r, &rec, &eof, err) != BS_OK)
			return -1;
		if (eof)
			return n;
		if (n < max)
			recs[n] = rec;
		n++;
	}
}

static void
write_seed(const char *name, const strbuf *seg)
{
	const char *dir = getenv("BACKSTOP_FUZZ_SEED_DIR");
	char path[4096];
	FILE *f;
	uint8_t sel = 4;	/* the fuzzer's segment target; it adds the magic itself */

	if (dir == NULL)
		return;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL)
	{
		perror(path);
		exit(2);
	}
	fwrite(&sel, 1, 1, f);
	fwrite(seg->data + SEGMENT_MAGIC_LEN, 1, seg->len - SEGMENT_MAGIC_LEN, f);
	fclose(f);
}

int
main(void)
{
	strbuf t1 = STRBUF_INIT;
	strbuf t2 = STRBUF_INIT;
	strbuf bin = STRBUF_INIT;
	strbuf seg = STRBUF_INIT;
	strbuf tmp = STRBUF_INIT;
	segment_record in[6];
	segment_record out[8];
	size_t bounds[8];
	int nb = 0;
	bs_error err;
	int n;

	strbuf_append_be16(&t1, 2);
	put_text(&t1, "1");
	put_text(&t1, "alice");
	strbuf_append_be16(&t2, 3);
	put_text(&t2, "1");
	strbuf_append_u8(&t2, 'n');
	strbuf_append_u8(&t2, 'u');
	strbuf_append_be16(&bin, 1);
	strbuf_append_u8(&bin, 'b');
	strbuf_append_be32(&bin, 1);
	strbuf_append_u8(&bin, 7);

	memset(in, 0, sizeof(in));
	for (int i = 0; i < 6; i++)
	{
		in[i].commit_lsn = UINT64_C(0x16B374D848) + (uint64_t) (i / 3) * 0x100;
		in[i].end_lsn = in[i].commit_lsn + 0x30;
		in[i].xid = 4000000000u + (uint32_t) (i / 3);
		in[i].commit_time = -((int64_t) i) * 1000 - 1;
		in[i].layout_id = (uint32_t) i;
		in[i].old_kind = SEGMENT_OLD_NONE;
	}
	in[0].op = 'I';
	in[0].new_tuple = (const uint8_t *) t1.data;
	in[0].new_len = t1.len;
	in[1].op = 'U';
	in[1].new_tuple = (const uint8_t *) t2.data;
	in[1].new_len = t2.len;
	in[2].op = 'U';
	in[2].old_kind = 'K';
	in[2].old_tuple = (const uint8_t *) t1.data;
	in[2].old_len = t1.len;
	in[2].new_tuple = (const uint8_t *) t2.data;
	in[2].new_len = t2.len;
	in[3].op = 'D';
	in[3].old_kind = 'O';
	in[3].old_tuple = (const uint8_t *) t2.data;
	in[3].old_len = t2.len;
	in[4].op = 'T';
	in[4].truncate_options = PGO_TRUNCATE_CASCADE | PGO_TRUNCATE_RESTART_IDENTITY;
	in[5].op = 'D';
	in[5].old_kind = 'K';
	in[5].old_tuple = (const uint8_t *) t1.data;
	in[5].old_len = t1.len;

	segment_write_header(&seg);
	ok(seg.len == SEGMENT_MAGIC_LEN && memcmp(seg.data, "BSSEG001", 8) == 0, "header is the magic");
	bounds[nb++] = seg.len;
	for (int i = 0; i < 6; i++)
	{
		if (segment_write_record(&seg, &in[i], &err) != BS_OK)
			ok(0, "write record %d: %s", i, err.message);
		bounds[nb++] = seg.len;
	}
	/* Spot-check the documented layout of the first record. */
	ok(seg.data[8] == 'I' && (uint8_t) seg.data[12] == 32 + t1.len &&
	   memcmp(seg.data + 8 + 5 + 32, t1.data, t1.len) == 0, "insert record layout: op, body length, tuple");
	ok(seg.data[bounds[1]] == 'U' && seg.data[bounds[1] + 5 + 32] == '0' &&
	   memcmp(seg.data + bounds[1] + 5 + 33, "\0\0\0\0", 4) == 0, "update without old: '0' and zero length");
	is_int(bounds[5] - bounds[4], 5 + 33, "truncate record size");

	n = read_all(seg.data, seg.len, out, 8, &err);
	is_int(n, 6, "all records read back");
	for (int i = 0; i < 6 && i < n; i++)
		ok(same_record(&in[i], &out[i]), "record %d (%c) round-trips", i, in[i].op);
	ok(n == 6 && out[0].old_kind == SEGMENT_OLD_NONE && out[0].old_tuple == NULL &&
	   out[0].new_tuple == (const uint8_t *) seg.data + 8 + 5 + 32, "reader points into the buffer");
	write_seed("segment-all", &seg);

	/* The header-only summary agrees with the full reader, and refuses truncation too. */
	{
		segment_summary sum;

		ok(segment_summarize(seg.data, seg.len, &sum, &err) == BS_OK, "summary of a valid segment");
		ok(sum.records == 6 && sum.first_commit_lsn == in[0].commit_lsn && sum.last_end_lsn == in[5].end_lsn &&
		   sum.first_time == in[0].commit_time && sum.last_time == in[5].commit_time,
		   "summary: count, first commit LSN, last end LSN, times");
		ok(segment_summarize(seg.data, bounds[3] + 7, &sum, &err) == BS_ERR &&
		   strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0, "summary refuses a cut inside a record");
		ok(segment_summarize(seg.data, bounds[2], &sum, &err) == BS_OK && sum.records == 2,
		   "summary of a segment cut at a record boundary");
	}

	/* Every cut: at a record boundary it is a shorter valid segment, elsewhere corruption. */
	{
		int bad = 0;

		for (size_t cut = 0; cut < seg.len; cut++)
		{
			char *copy = xmalloc(cut ? cut : 1);
			int expect = -1;

			for (int b = 0; b < nb; b++)
				if (bounds[b] == cut)
					expect = b;
			memcpy(copy, seg.data, cut);
			error_clear(&err);
			n = read_all(copy, cut, out, 8, &err);
			if (n != expect || (n < 0 && strcmp(err.code, ERRCODE_DATA_CORRUPTED) != 0))
			{
				printf("# cut %zu: got %d expected %d (%s)\n", cut, n, expect, err.message);
				bad++;
			}
			free(copy);
		}
		is_int(bad, 0, "every truncation is either a record boundary or reported corrupt");
	}

	/* Corruptions. */
	memcpy(&tmp, &seg, sizeof(tmp));
	tmp.data = xmalloc(seg.len);
	memcpy(tmp.data, seg.data, seg.len);
#define RESET() memcpy(tmp.data, seg.data, seg.len)
	tmp.data[0] = 'X';
	ok(read_all(tmp.data, tmp.len, out, 8, &err) < 0 && strstr(err.message, "magic"), "bad magic refused");
	RESET();
	tmp.data[bounds[2]] = 'X';
	ok(read_all(tmp.data, tmp.len, out, 8, &err) < 0 && strstr(err.message, "record 3") &&
	   strstr(err.message, "invalid op"), "bad op refused with record number: %s", err.message);
	RESET();
	tmp.data[bounds[0] + 1] = 0x7F;
	ok(read_all(tmp.data, tmp.len, out, 8, &err) < 0 && strstr(err.message, "overruns the segment"),
	   "body length overrun refused");
	RESET();
	tmp.data[bounds[2] + 5 + 32] = 'X';
	ok(read_all(tmp.data, tmp.len, out, 8, &err) < 0 && strstr(err.message, "old_kind"), "bad old_kind refused");
	RESET();
	tmp.data[bounds[1] + 5 + 36] = 1;	/* old_length 1 with old_kind none */
	ok(read_all(tmp.data, tmp.len, out, 8, &err) < 0 && strstr(err.message, "without an old tuple"),
	   "old_length without old tuple refused");
	RESET();
	tmp.data[bounds[2] + 5 + 36] = (char) (t1.len + 1);	/* old tuple swallows a byte of the new one */
	ok(read_all(tmp.data, tmp.len, out, 8, &err) < 0 && strstr(err.message, "old tuple"),
	   "old_length off by one refused: %s", err.message);
	RESET();
	tmp.data[bounds[4] + 5 + 32] = 8;
	ok(read_all(tmp.data, tmp.len, out, 8, &err) < 0 && strstr(err.message, "truncate options"),
	   "bad truncate options refused");
	RESET();
	tmp.data[bounds[0] + 5 + 32 + 2] = 'b';	/* first column of the insert becomes binary */
	ok(read_all(tmp.data, tmp.len, out, 8, &err) < 0 && strstr(err.message, "binary") &&
	   strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0, "binary column in a segment refused: %s", err.message);
	RESET();
	tmp.data[bounds[0] + 4] = 31;
	ok(read_all(tmp.data, tmp.len, out, 8, &err) < 0, "body shorter than the fixed fields refused");
	free(tmp.data);

	/* Writer refusals leave the buffer untouched. */
	{
		size_t before = seg.len;
		segment_record r = in[0];

		r.op = 'X';
		ok(segment_write_record(&seg, &r, &err) == BS_ERR && strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0,
		   "writer refuses a bad op");
		r = in[0];
		r.new_tuple = (const uint8_t *) bin.data;
		r.new_len = bin.len;
		ok(segment_write_record(&seg, &r, &err) == BS_ERR, "writer refuses a binary tuple");
		r = in[0];
		r.new_len--;
		ok(segment_write_record(&seg, &r, &err) == BS_ERR, "writer refuses a cut tuple");
		r = in[1];
		r.old_kind = 'O';
		ok(segment_write_record(&seg, &r, &err) == BS_ERR, "writer refuses old_kind without tuple");
		r = in[3];
		r.old_kind = SEGMENT_OLD_NONE;
		ok(segment_write_record(&seg, &r, &err) == BS_ERR, "writer refuses a delete without old_kind");
		r = in[4];
		r.truncate_options = 4;
		ok(segment_write_record(&seg, &r, &err) == BS_ERR, "writer refuses bad truncate options");
		is_int(seg.len, before, "nothing appended by refused writes");
	}

	{
		char empty[] = "BSSEG001";

		ok(read_all(empty, 8, out, 8, &err) == 0, "header-only segment has no records");
		ok(read_all(empty, 7, out, 8, &err) < 0, "short header refused");
	}

	strbuf_free(&t1);
	strbuf_free(&t2);
	strbuf_free(&bin);
	strbuf_free(&seg);
	return done_testing();
}
