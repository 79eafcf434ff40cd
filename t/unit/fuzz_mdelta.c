/* fuzz_mdelta.c — libFuzzer target for mdelta_events: two manifests, the events between them folded back. */
#include "fold.h"
#include "manifest_json.h"
#include "mdelta.h"
#include "pack.h"
#include "strbuf.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A copy of m's table state (no segments). */
static manifest *
copy_table(const manifest *m)
{
	json_t *o = manifest_table_to_json_object(m);
	manifest *c = NULL;
	bs_error err;

	if (o == NULL || manifest_table_from_json_object(o, &c, &err) != BS_OK)
		abort();
	json_decref(o);
	return c;
}

/*
 * Input: a format-2 manifest (before; an empty line: none), a line "=", a manifest (after).
 * Inputs the manifest reader refuses are left.  mdelta_events either fails with nothing out,
 * or gives events whose LSNs do not go back from the floor (0/1000000) and that, written to a
 * pack and folded onto before, give after's catalog entry (manifest_table_to_json_object).
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *) data;
	const char *sep = NULL;
	manifest *before = NULL,
			   *after = NULL,
			   *got = NULL;
	mdelta_list l;
	bs_error err;
	uint64_t floor = 0x1000000;

	for (size_t i = 0; i + 1 < size && sep == NULL; i++)
		if ((i == 0 || text[i - 1] == '\n') && text[i] == '=' && (i + 1 == size || text[i + 1] == '\n'))
			sep = text + i;
	if (sep == NULL)
		return 0;
	if (sep > text + 1 && manifest_from_json(text, (size_t) (sep - text - 1), &before, &err) != BS_OK)
		return 0;
	if (manifest_from_json(sep + 2, size - (size_t) (sep + 2 - text), &after, &err) != BS_OK)
		goto out;
	if (mdelta_events(before, after, floor, &l, &err) != BS_OK)
	{
		if (l.n != 0 || l.events != NULL)
			abort();
		goto out;
	}
	{
		strbuf pack = STRBUF_INIT;
		pack_meta meta = {before ? 2 : 1, before ? 2 : 1, floor, 849000000000000, NULL, NULL};
		pack_writer *w;
		pack_index *idx = NULL;
		fold_start st = {1, 0, NULL, before ? copy_table(before) : NULL, floor};
		json_t *x,
				   *y;

		for (int i = 0; i < l.n; i++)
		{
			if (l.events[i].lsn < (i ? l.events[i - 1].lsn : floor))
				abort();
			if (l.events[i].lsn > meta.seal_lsn)
				meta.seal_lsn = l.events[i].lsn;
		}
		if (pack_writer_open("log/0000000000000002.bsp", 0, CODEC_NONE, 0, NULL, &pack, &w, &err) != BS_OK)
			abort();
		for (int i = 0; i < l.n; i++)
			if (pack_writer_add_event(w, l.events[i].json, strlen(l.events[i].json), &err) != BS_OK)
				abort();
		if (pack_writer_finish(w, &meta, &pack, NULL, &err) != BS_OK ||
			pack_open_buffer("log/0000000000000002.bsp", pack.data, pack.len, NULL, &idx, &err) != BS_OK)
			abort();
		pack_writer_free(w);
		strbuf_free(&pack);
		if (fold_table_from(after->relid, before ? &st : NULL, (const pack_index *const *) &idx, 1, &got, NULL,
							&err) != BS_OK)
			abort();
		pack_index_free(idx);
		x = manifest_table_to_json_object(got);
		y = manifest_table_to_json_object(after);
		if (!json_equal(x, y))
			abort();
		json_decref(x);
		json_decref(y);
	}
	mdelta_list_free(&l);
out:
	manifest_free(got);
	manifest_free(before);
	manifest_free(after);
	return 0;
}
