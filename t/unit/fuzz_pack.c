/* fuzz_pack.c — libFuzzer target for packs as stored: trailer, header, footer, frames and runs, plaintext or sealed. */
#include "pack.h"
#include "segment.h"
#include "strbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PACKKEY "log/0000000000000001.bsp"

/* A ranged read that must never be asked for bytes outside the object. */
static int
strict_read(void *ctx, uint64_t offset, uint64_t length, strbuf *out, bs_error *err)
{
	const pack_buffer *b = ctx;

	if (offset > b->len || length > b->len - offset)
		abort();
	return pack_buffer_read(ctx, offset, length, out, err);
}

/*
 * The first byte's bit 0 says whether the pack is read with keys (seeds in t/fuzz/pack/ that
 * are sealed use key A below; test_pack writes them); the rest is the pack, copied to an
 * exact-size heap block.  An accepted index keeps its promises (frames tile the stored space
 * between header and footer, runs tile the raw space in increasing relid); every run either
 * fails or yields exactly its raw length of whole records matching its entry; and what was
 * read, written again as a pack, reads back the same.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t keys[1][CRYPT_KEY_SIZE];
	pack_keys k;
	const pack_keys *kp = NULL;
	pack_index *idx = NULL,
			   *again = NULL;
	pack_buffer b;
	strbuf *runs = NULL,
			rewritten = STRBUF_INIT,
			got = STRBUF_INIT;
	pack_writer *w = NULL;
	pack_meta meta;
	bs_error err;
	uint8_t *obj;
	size_t len;
	bool all_read = true;

	if (size < 1)
		return 0;
	memset(keys[0], 0xa1, CRYPT_KEY_SIZE);
	k.current = keys[0];
	k.keys = (const uint8_t (*)[CRYPT_KEY_SIZE]) keys;
	k.nkeys = 1;
	if (data[0] & 1)
		kp = &k;
	len = size - 1;
	obj = xmalloc(len ? len : 1);
	memcpy(obj, data + 1, len);
	b.data = obj;
	b.len = len;

	if (pack_open(PACKKEY, len, strict_read, &b, kp, &idx, &err) != BS_OK)
	{
		if (idx != NULL)
			abort();
		goto out;
	}
	if (idx->footer_offset + idx->footer_size + PACK_TRAILER_SIZE != len || idx->footer_offset < PACK_HEADER_SIZE)
		abort();
	for (int i = 0; i < idx->nframes; i++)
		if (idx->frames[i].offset != (i ? idx->frames[i - 1].offset + idx->frames[i - 1].size : PACK_HEADER_SIZE) ||
			idx->frames[i].offset + idx->frames[i].size > idx->footer_offset)
			abort();
	for (int i = 0; i < idx->nruns; i++)
		if ((i > 0 && idx->runs[i].relid <= idx->runs[i - 1].relid) ||
			idx->runs[i].raw_offset + idx->runs[i].raw_len > idx->raw_size ||
			pack_find_run(idx, idx->runs[i].relid) != &idx->runs[i])
			abort();

	runs = xcalloc((size_t) idx->nruns + 1, sizeof(strbuf));
	for (int i = 0; i < idx->nruns; i++)
	{
		const pack_run *r = &idx->runs[i];

		if (pack_read_run_all(idx, r->relid, strict_read, &b, kp, &runs[i], &err) != BS_OK)
		{
			if (runs[i].len != 0)
				abort();
			all_read = false;
			continue;
		}
		if (runs[i].len != r->raw_len)
			abort();
	}
	if (!all_read)
		goto out;

	/* Written again, the same runs and events read back. */
	meta.seq_first = idx->seq_first;
	meta.seq_last = idx->seq_last;
	meta.seal_lsn = idx->seal_lsn;
	meta.time = idx->time;
	meta.lease_token = idx->lease_token;
	meta.prev = idx->prev[0] ? idx->prev : NULL;
	if (pack_writer_open(PACKKEY, idx->level, idx->codec, 1, kp, &rewritten, &w, &err) != BS_OK)
		abort();
	for (int i = 0; i < idx->nruns; i++)
		if (pack_writer_add_run(w, idx->runs[i].relid, runs[i].data, runs[i].len, &rewritten, &err) != BS_OK)
			abort();
	for (int i = 0; i < idx->nevents; i++)
		if (pack_writer_add_event(w, idx->events[i].json, strlen(idx->events[i].json), &err) != BS_OK)
			abort();
	if (pack_writer_finish(w, &meta, &rewritten, NULL, &err) != BS_OK ||
		pack_open_buffer(PACKKEY, rewritten.data, rewritten.len, kp, &again, &err) != BS_OK ||
		again->nruns != idx->nruns || again->nevents != idx->nevents || again->raw_size != idx->raw_size)
		abort();
	for (int i = 0; i < idx->nruns; i++)
	{
		pack_buffer rb = {(const uint8_t *) rewritten.data, rewritten.len};

		if (memcmp(&again->runs[i], &idx->runs[i], sizeof(pack_run)) != 0 ||
			pack_read_run_all(again, idx->runs[i].relid, strict_read, &rb, kp, &got, &err) != BS_OK ||
			got.len != runs[i].len || (got.len && memcmp(got.data, runs[i].data, got.len) != 0))
			abort();
	}
	for (int i = 0; i < idx->nevents; i++)
		if (strcmp(again->events[i].json, idx->events[i].json) != 0)
			abort();

out:
	if (runs)
		for (int i = 0; i < idx->nruns; i++)
			strbuf_free(&runs[i]);
	free(runs);
	pack_writer_free(w);
	pack_index_free(idx);
	pack_index_free(again);
	strbuf_free(&rewritten);
	strbuf_free(&got);
	free(obj);
	return 0;
}
