/* fuzz_fold.c — libFuzzer target for the fold: pack events (and runs) of two packs folded per table. */
#include "fold.h"
#include "manifest_json.h"
#include "pack.h"
#include "segment.h"
#include "strbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* One insert at lsn, the record of a run. */
static void
one_record(strbuf *out, uint64_t lsn)
{
	static const uint8_t tuple[] = {0, 1, 't', 0, 0, 0, 1, '1'};
	segment_record r;
	bs_error err;

	memset(&r, 0, sizeof(r));
	r.op = 'I';
	r.commit_lsn = lsn;
	r.end_lsn = lsn + 0x30;
	r.xid = 1000;
	r.commit_time = 849000000000000;
	r.old_kind = SEGMENT_OLD_NONE;
	r.new_tuple = tuple;
	r.new_len = sizeof(tuple);
	if (segment_write_record(out, &r, &err) != BS_OK)
		abort();
}

/* A pack of the events in lines (one JSON object a line; those the writer refuses are left
 * out) with a one-record run of relid at run_lsn (relid 0: none). */
static pack_index *
build(uint64_t seq, uint64_t seal, const char *lines, size_t len, uint32_t relid, uint64_t run_lsn)
{
	strbuf pack = STRBUF_INIT,
			raw = STRBUF_INIT;
	pack_meta meta = {seq, seq, seal, 849000000000000, NULL, NULL};
	pack_writer *w;
	pack_index *idx = NULL;
	bs_error err;
	size_t i = 0;

	if (pack_writer_open(seq == 1 ? "log/0000000000000001.bsp" : "log/0000000000000002.bsp", 0, CODEC_NONE, 0,
						 NULL, &pack, &w, &err) != BS_OK)
		abort();
	while (i < len)
	{
		const char *nl = memchr(lines + i, '\n', len - i);
		size_t n = nl ? (size_t) (nl - (lines + i)) : len - i;

		(void) pack_writer_add_event(w, lines + i, n, &err);
		i += n + 1;
	}
	if (relid)
	{
		one_record(&raw, run_lsn);
		if (pack_writer_add_run(w, relid, raw.data, raw.len, &pack, &err) != BS_OK)
			abort();
	}
	if (pack_writer_finish(w, &meta, &pack, NULL, &err) != BS_OK ||
		pack_open_buffer(seq == 1 ? "log/0000000000000001.bsp" : "log/0000000000000002.bsp", pack.data, pack.len, NULL, &idx, &err) != BS_OK)
		abort();
	pack_writer_free(w);
	strbuf_free(&pack);
	strbuf_free(&raw);
	return idx;
}

/*
 * Input: events of pack 1, a line "=", events of pack 2 (pack 2 may be absent).  Each pack
 * gets a run of the relid of its first event, at 0/2000000 and 0/4000000 (seals 0/3000000 and
 * 0/5000000).  Every relid of an event is folded: a fold either fails with nothing out or
 * gives a manifest that passes manifest_validate and serializes; fold_check_pack never
 * accepts a pack whose tables' folds refuse an event as malformed (not checked: order and
 * state rules are the fold's own).
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *) data;
	const char *sep = NULL;
	size_t len1 = size;
	pack_index *p[2] = {NULL, NULL};
	int n = 1;

	for (size_t i = 0; i + 1 < size; i++)
		if (text[i] == '\n' && text[i + 1] == '=')
		{
			sep = text + i + 1;
			len1 = i;
			break;
		}
	p[0] = build(1, 0x3000000, text, len1, 0, 0);
	if (p[0]->nevents > 0 && p[0]->events[0].relid)
	{
		uint32_t relid = p[0]->events[0].relid;

		pack_index_free(p[0]);
		p[0] = build(1, 0x3000000, text, len1, relid, 0x2000000);
	}
	if (sep)
	{
		const char *start = sep + 1 < text + size ? sep + 1 : text + size;

		p[1] = build(2, 0x5000000, start, (size_t) (text + size - start), 0, 0);
		n = 2;
	}
	for (int k = 0; k < n; k++)
	{
		bs_error err;

		(void) fold_check_pack(p[k], &err);
		for (int e = 0; e < p[k]->nevents; e++)
		{
			manifest *m = (manifest *) 1;
			int rc = fold_table(p[k]->events[e].relid, (const pack_index *const *) p, n, &m, &err);

			if (rc != BS_OK)
			{
				if (m != NULL)
					abort();
				continue;
			}
			if (m == NULL || manifest_validate(m, &err) != BS_OK)
				abort();
			{
				char *json = manifest_to_json(m);

				if (json == NULL)
					abort();
				free(json);
			}
			manifest_free(m);
		}
	}
	pack_index_free(p[0]);
	pack_index_free(p[1]);
	return 0;
}
