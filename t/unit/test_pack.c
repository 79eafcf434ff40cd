/* test_pack.c — unit tests of packs: writer and reader round trips, sealed units, and damaged packs refused. */
#include "pack.h"
#include "records.h"
#include "segment.h"
#include "storage_crypt.h"
#include "strbuf.h"
#include "tap.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY "log/0000000000000001.bsp"

typedef struct table_spec
{
	uint32_t relid;
	int nrec;
	size_t padlen;
} table_spec;

static const pack_meta meta1 = {1, 1, UINT64_C(0x16B3750000), REC_TIME, "token-1", NULL};

/* A pack of the tables in specs; runs[i] gets each table's raw records. */
static int
build(const table_spec *specs, int n, codec_id codec, const pack_keys *keys, strbuf *runs, strbuf *pack,
	  bs_error *err)
{
	pack_writer *w;
	int rc;

	strbuf_reset(pack);
	if (pack_writer_open(KEY, 0, codec, 0, keys, pack, &w, err) != BS_OK)
		return BS_ERR;
	rc = BS_OK;
	for (int i = 0; i < n && rc == BS_OK; i++)
	{
		strbuf_reset(&runs[i]);
		make_run(&runs[i], specs[i].nrec, UINT64_C(0x16B3740000) + (uint64_t) i * 0x1000000, 1, specs[i].padlen);
		rc = pack_writer_add_run(w, specs[i].relid, runs[i].data, runs[i].len, pack, err);
	}
	if (rc == BS_OK)
		rc = pack_writer_finish(w, &meta1, pack, NULL, err);
	pack_writer_free(w);
	return rc;
}

/* A ranged read that records the stored bytes it was asked for. */
typedef struct counting
{
	pack_buffer buf;
	uint64_t bytes;
	int reads;
} counting;

static int
counting_read(void *ctx, uint64_t offset, uint64_t length, strbuf *out, bs_error *err)
{
	counting *c = ctx;

	c->bytes += length;
	c->reads++;
	return pack_buffer_read(&c->buf, offset, length, out, err);
}

/* Round trip: every table's run read back exactly, reading only its frames. */
static void
round_trip(const char *what, const table_spec *specs, int n, codec_id codec, const pack_keys *keys)
{
	strbuf *runs = calloc((size_t) n + 1, sizeof(strbuf));
	strbuf pack = STRBUF_INIT,
			got = STRBUF_INIT;
	pack_index *idx = NULL;
	bs_error err;
	bool all = true,
		local = true;
	int rc;

	rc = build(specs, n, codec, keys, runs, &pack, &err);
	ok(rc == BS_OK, "%s: written", what);
	if (rc != BS_OK)
		printf("#   %s\n", err.message);
	rc = pack_open_buffer(KEY, pack.data, pack.len, keys, &idx, &err);
	ok(rc == BS_OK, "%s: opened (%zu bytes)", what, pack.len);
	if (rc != BS_OK)
	{
		printf("#   %s\n", err.message);
		goto out;
	}
	is_int(idx->nruns, n, "%s: one run per table", what);
	for (int i = 0; i < n; i++)
	{
		counting c = {{(const uint8_t *) pack.data, pack.len}, 0, 0};
		const pack_run *r = pack_find_run(idx, specs[i].relid);
		uint64_t frames_bytes = 0;

		if (r == NULL || r->records != (uint64_t) specs[i].nrec ||
			pack_read_run_all(idx, specs[i].relid, counting_read, &c, keys, &got, &err) != BS_OK ||
			got.len != runs[i].len || memcmp(got.data, runs[i].data, got.len) != 0)
		{
			all = false;
			printf("#   relid %u: %s\n", specs[i].relid, r ? err.message : "no run");
			continue;
		}
		for (int f = 0; f < idx->nframes; f++)
			if (idx->frames[f].raw_offset < r->raw_offset + r->raw_len &&
				idx->frames[f].raw_offset + idx->frames[f].raw_size > r->raw_offset)
				frames_bytes += idx->frames[f].size;
		if (c.bytes != frames_bytes)
		{
			local = false;
			printf("#   relid %u: read %" PRIu64 " bytes, its frames hold %" PRIu64 "\n", specs[i].relid, c.bytes,
				   frames_bytes);
		}
	}
	ok(all, "%s: every run reads back byte for byte, with its count", what);
	ok(local, "%s: reading a run reads exactly the frames it touches", what);
	ok(pack_find_run(idx, 999999) == NULL, "%s: no run for a relid not in the pack", what);
	ok(idx->seq_first == 1 && idx->seal_lsn == meta1.seal_lsn && idx->lease_token &&
	   strcmp(idx->lease_token, "token-1") == 0 && idx->prev[0] == '\0' && idx->codec == codec,
	   "%s: footer members read back", what);
out:
	pack_index_free(idx);
	for (int i = 0; i < n; i++)
		strbuf_free(&runs[i]);
	free(runs);
	strbuf_free(&pack);
	strbuf_free(&got);
}

/*
 * Damage: the footer of a plaintext zstd pack decompressed, changed by edit, and put back
 * (trailer rewritten to match), so the reader's checks of values are what refuses it.
 */
typedef void (*footer_edit) (json_t *root);

static int
append_sink(void *ctx, const void *data, size_t len, bs_error *err)
{
	(void) err;
	strbuf_append(ctx, data, len);
	return BS_OK;
}

static void
refooter(const strbuf *pack, footer_edit edit, strbuf *out)
{
	pack_index *idx;
	bs_error err;
	codec_stream *cs;
	strbuf text = STRBUF_INIT,
			z = STRBUF_INIT;
	json_t *root;
	json_error_t jerr;
	char *dump;
	uint8_t trailer[PACK_TRAILER_SIZE];

	if (pack_open_buffer(KEY, pack->data, pack->len, NULL, &idx, &err) != BS_OK)
	{
		printf("# refooter: %s\n", err.message);
		exit(2);
	}
	if (codec_decompressor_open(CODEC_ZSTD, &cs, &err) != BS_OK ||
		codec_decompress(cs, pack->data + idx->footer_offset, idx->footer_size,
						 append_sink, &text, &err) != BS_OK)
		exit(2);
	codec_stream_free(cs);
	root = json_loadb(text.data, text.len, 0, &jerr);
	edit(root);
	dump = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (codec_compressor_open(CODEC_ZSTD, 0, &cs, &err) != BS_OK ||
		codec_compress(cs, dump, strlen(dump), &z, &err) != BS_OK || codec_compress_finish(cs, &z, &err) != BS_OK)
		exit(2);
	codec_stream_free(cs);
	strbuf_reset(out);
	strbuf_append(out, pack->data, idx->footer_offset);
	strbuf_append(out, z.data, z.len);
	for (int i = 0; i < 8; i++)
		trailer[i] = (uint8_t) (idx->footer_offset >> (56 - 8 * i));
	for (int i = 0; i < 4; i++)
		trailer[8 + i] = (uint8_t) ((uint64_t) z.len >> (24 - 8 * i));
	memcpy(trailer + 12, PACK_END_MAGIC, 8);
	strbuf_append(out, trailer, sizeof(trailer));
	free(dump);
	json_decref(root);
	strbuf_free(&text);
	strbuf_free(&z);
	pack_index_free(idx);
}

static json_t *
arr_obj(json_t *root, const char *arr, size_t i)
{
	return json_array_get(json_object_get(root, arr), i);
}

static void
set_int(json_t *o, const char *name, json_int_t v)
{
	json_object_set_new(o, name, json_integer(v));
}

static json_int_t
get_int(json_t *o, const char *name)
{
	return json_integer_value(json_object_get(o, name));
}

static void
edit_nothing(json_t *root)
{
	(void) root;
}

static void
edit_frame_gap(json_t *root)
{
	json_t *f = arr_obj(root, "frames", 1);

	set_int(f, "offset", get_int(f, "offset") + 10);
}

static void
edit_frame_overlap(json_t *root)
{
	json_t *f = arr_obj(root, "frames", 1);

	set_int(f, "offset", get_int(f, "offset") - 5);
	set_int(f, "size", get_int(f, "size") + 5);
}

static void
edit_frame_past_footer(json_t *root)
{
	json_t *frames = json_object_get(root, "frames");
	json_t *f = json_array_get(frames, json_array_size(frames) - 1);

	set_int(f, "size", get_int(f, "size") + 1000000);
}

static void
edit_frame_raw_huge(json_t *root)
{
	set_int(arr_obj(root, "frames", 0), "raw_size", (json_int_t) 1 << 40);
}

static void
edit_runs_unsorted(json_t *root)
{
	json_t *a = arr_obj(root, "runs", 0),
			   *b = arr_obj(root, "runs", 1);
	json_int_t ra = get_int(a, "relid");

	set_int(a, "relid", get_int(b, "relid"));
	set_int(b, "relid", ra);
}

static void
edit_runs_duplicate(json_t *root)
{
	set_int(arr_obj(root, "runs", 1), "relid", get_int(arr_obj(root, "runs", 0), "relid"));
}

static void
edit_run_outside(json_t *root)
{
	json_t *runs = json_object_get(root, "runs");
	json_t *r = json_array_get(runs, json_array_size(runs) - 1);

	set_int(r, "raw_len", get_int(r, "raw_len") + 1);
}

static void
edit_run_overlap(json_t *root)
{
	json_t *r = arr_obj(root, "runs", 1);

	set_int(r, "raw_offset", get_int(r, "raw_offset") - 1);
}

static void
edit_run_records(json_t *root)
{
	json_t *r = arr_obj(root, "runs", 0);

	set_int(r, "records", get_int(r, "records") - 1);
}

static void
edit_unknown_member(json_t *root)
{
	json_object_set_new(arr_obj(root, "runs", 0), "extra", json_true());
}

static void
edit_codec(json_t *root)
{
	json_object_set_new(root, "codec", json_string("lz4"));
}

static void
edit_event_kind(json_t *root)
{
	json_object_set_new(arr_obj(root, "events", 0), "kind", json_string("mystery"));
}

static void
edit_raw_size(json_t *root)
{
	set_int(root, "raw_size", get_int(root, "raw_size") + 1);
}

static void
edit_offset_string(json_t *root)
{
	json_object_set_new(arr_obj(root, "frames", 0), "offset", json_string("16"));
}

/* Open must fail with a message holding want. */
static void
refused(const char *what, const strbuf *pack, const pack_keys *keys, const char *want)
{
	pack_index *idx = NULL;
	bs_error err;
	int rc = pack_open_buffer(KEY, pack->data, pack->len, keys, &idx, &err);

	ok(rc == BS_ERR && strstr(err.message, want) != NULL, "refused: %s", what);
	if (rc == BS_OK)
		printf("#   accepted\n");
	else if (strstr(err.message, want) == NULL)
		printf("#   got: %s\n#   expected to contain: %s\n", err.message, want);
	pack_index_free(idx);
}

/* Open succeeds, reading relid fails with a message holding want. */
static void
run_refused(const char *what, const strbuf *pack, uint32_t relid, const char *want)
{
	pack_index *idx = NULL;
	bs_error err;
	strbuf got = STRBUF_INIT;
	pack_buffer b = {(const uint8_t *) pack->data, pack->len};
	int rc = pack_open_buffer(KEY, pack->data, pack->len, NULL, &idx, &err);

	if (rc == BS_OK)
		rc = pack_read_run_all(idx, relid, pack_buffer_read, &b, NULL, &got, &err) == BS_OK ? 2 : BS_ERR;
	ok(rc == BS_ERR && strstr(err.message, want) != NULL && strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 &&
	   got.len == 0, "refused when read: %s", what);
	if (rc != BS_ERR)
		printf("#   accepted\n");
	else if (strstr(err.message, want) == NULL)
		printf("#   got: %s\n#   expected to contain: %s\n", err.message, want);
	pack_index_free(idx);
	strbuf_free(&got);
}

static void
damaged(void)
{
	/* Three tables, the middle one spanning frames, so frames[1] exists. */
	table_spec specs[] = {{10, 3, 50}, {20, 2000, 300}, {30, 4, 50}};
	strbuf runs[3] = {STRBUF_INIT, STRBUF_INIT, STRBUF_INIT};
	strbuf pack = STRBUF_INIT,
			bad = STRBUF_INIT,
			got = STRBUF_INIT;
	pack_writer *w;
	pack_index *idx = NULL;
	bs_error err;
	int rc;

	if (pack_writer_open(KEY, 0, CODEC_ZSTD, 0, NULL, &pack, &w, &err) != BS_OK)
		exit(2);
	for (int i = 0; i < 3; i++)
	{
		make_run(&runs[i], specs[i].nrec, UINT64_C(0x100000) * (uint64_t) (i + 1), 1, specs[i].padlen);
		if (pack_writer_add_run(w, specs[i].relid, runs[i].data, runs[i].len, &pack, &err) != BS_OK)
			exit(2);
	}
	if (pack_writer_add_event(w, "{\"kind\":\"gap\",\"lsn\":\"0/10\",\"relid\":0,\"from\":\"0/1\"}", 50, &err) != BS_OK ||
		pack_writer_finish(w, &meta1, &pack, NULL, &err) != BS_OK)
		exit(2);
	pack_writer_free(w);

	refooter(&pack, edit_nothing, &bad);
	rc = pack_open_buffer(KEY, bad.data, bad.len, NULL, &idx, &err);
	ok(rc == BS_OK && idx->nframes >= 3 && idx->nevents == 1, "the test's footer rewriting keeps a good pack good (%d frames)",
	   rc == BS_OK ? idx->nframes : -1);
	pack_index_free(idx);

	/* Truncated, or the trailer lying. */
	strbuf_reset(&bad);
	strbuf_append(&bad, pack.data, pack.len - 1);
	refused("cut by one byte", &bad, NULL, "pack \"" KEY "\": pack is truncated: it does not end with BSPEND03");
	strbuf_reset(&bad);
	strbuf_append(&bad, pack.data, 30);
	refused("cut to 30 bytes", &bad, NULL, "pack is truncated: 30 bytes, fewer than a header and a trailer");
	strbuf_reset(&bad);
	strbuf_append(&bad, pack.data, pack.len);
	bad.data[bad.len - 13] ^= 0x01;		/* footer offset, low byte */
	refused("trailer's footer offset off by one", &bad, NULL, "trailer places the footer at offset");
	strbuf_reset(&bad);
	strbuf_append(&bad, pack.data, pack.len);
	bad.data[bad.len - 20] = 0x7f;		/* footer offset far beyond the object */
	refused("trailer's footer offset beyond the object", &bad, NULL, "trailer places the footer at offset");
	strbuf_reset(&bad);
	strbuf_append(&bad, pack.data, pack.len);
	bad.data[bad.len - 12] = 0x7f;		/* footer size of 2 GiB */
	refused("trailer's footer size too large", &bad, NULL, "or is too large");
	strbuf_reset(&bad);
	strbuf_append(&bad, pack.data, pack.len);
	bad.data[0] = 'X';
	refused("bad magic", &bad, NULL, "not a pack: no magic BSPAK003");
	strbuf_reset(&bad);
	strbuf_append(&bad, pack.data, pack.len);
	bad.data[9] = 9;
	refused("unknown codec in the header", &bad, NULL, "header has level 0, codec 9, flags 0");
	strbuf_reset(&bad);
	strbuf_append(&bad, pack.data, pack.len);
	bad.data[bad.len - 30] ^= 0x40;
	refused("footer bytes damaged", &bad, NULL, "footer does not decompress");

	/* The footer's values. */
	refooter(&pack, edit_frame_gap, &bad);
	refused("a gap between frames", &bad, NULL,
			"frames[1] starts at offset");
	refused("a gap between frames (message)", &bad, NULL, "frames must be contiguous and must not overlap");
	refooter(&pack, edit_frame_overlap, &bad);
	refused("overlapping frames", &bad, NULL, "frames must be contiguous and must not overlap");
	refooter(&pack, edit_frame_past_footer, &bad);
	refused("a frame running into the footer", &bad, NULL, "runs past the footer at offset");
	refooter(&pack, edit_frame_raw_huge, &bad);
	refused("a frame of 1 TiB raw", &bad, NULL, "frames[0] has a raw size of 1099511627776 bytes");
	refooter(&pack, edit_raw_size, &bad);
	refused("raw_size not the frames' sum", &bad, NULL, "the footer says raw_size");
	refooter(&pack, edit_runs_unsorted, &bad);
	refused("unsorted runs", &bad, NULL, "runs[1] (relid 10) does not follow runs[0] (relid 20): runs must be sorted by relid");
	refooter(&pack, edit_runs_duplicate, &bad);
	refused("two runs of one relid", &bad, NULL, "runs must be sorted by relid, without duplicates");
	refooter(&pack, edit_run_outside, &bad);
	refused("a run past the raw space", &bad, NULL, "is not inside the raw space");
	refooter(&pack, edit_run_overlap, &bad);
	refused("overlapping runs", &bad, NULL, "runs[1] (relid 20) starts at raw offset");
	refooter(&pack, edit_unknown_member, &bad);
	refused("an unknown member", &bad, NULL, "footer member \"runs[0].extra\" is not one this version knows");
	refooter(&pack, edit_codec, &bad);
	refused("footer and header disagree on the codec", &bad, NULL, "footer says codec lz4, the header zstd");
	refooter(&pack, edit_event_kind, &bad);
	refused("an unknown event kind", &bad, NULL, "footer member \"events[0].kind\" is not a kind of event");
	refooter(&pack, edit_offset_string, &bad);
	refused("an offset as a string", &bad, NULL, "footer member \"frames[0].offset\" must be an integer");

	/* Damage found when a run is read. */
	refooter(&pack, edit_run_records, &bad);
	run_refused("a run's record count", &bad, 10, "run of relid 10 does not match its footer entry (3 records, footer 2");
	strbuf_reset(&bad);
	strbuf_append(&bad, pack.data, pack.len);
	bad.data[PACK_HEADER_SIZE + 40] ^= 0x01;	/* inside frames[0] */
	run_refused("a frame's bytes changed (bad hash)", &bad, 10, "frames[0] (offset 16, ");
	run_refused("a frame's bytes changed (message)", &bad, 10, "the footer says");
	rc = pack_open_buffer(KEY, bad.data, bad.len, NULL, &idx, &err);
	if (rc == BS_OK)
	{
		pack_buffer b = {(const uint8_t *) bad.data, bad.len};

		rc = pack_read_run_all(idx, 30, pack_buffer_read, &b, NULL, &got, &err);
		ok(rc == BS_OK && got.len == runs[2].len && memcmp(got.data, runs[2].data, got.len) == 0,
		   "a run in other frames still reads beside a damaged frame");
		rc = pack_read_run_all(idx, 11, pack_buffer_read, &b, NULL, &got, &err);
		ok(rc == BS_ERR && strcmp(err.code, ERRCODE_NOT_FOUND) == 0 &&
		   strstr(err.message, "holds no run of relid 11"), "reading a relid without a run: not found");
	}
	else
		ok(0, "damaged frame: the footer still opens");
	pack_index_free(idx);

	strbuf_free(&pack);
	strbuf_free(&bad);
	strbuf_free(&got);
	for (int i = 0; i < 3; i++)
		strbuf_free(&runs[i]);
}

static void
writer_refusals(void)
{
	strbuf pack = STRBUF_INIT,
			run = STRBUF_INIT;
	pack_writer *w;
	bs_error err;
	static const char *const bad_events[] = {
		"[1]", "{\"kind\":\"gap\",\"lsn\":\"0/10\"}", "{\"kind\":\"nope\",\"lsn\":\"0/10\",\"relid\":1}",
		"{\"kind\":\"gap\",\"lsn\":\"10\",\"relid\":1}", "{\"kind\":\"gap\",\"lsn\":\"0/1\",\"relid\":-1}",
		"{\"kind\":\"gap\",\"kind\":\"gap\",\"lsn\":\"0/1\",\"relid\":1}", NULL
	};
	bool all = true;

	make_run(&run, 2, 0x1000, 1, 10);
	if (pack_writer_open(KEY, 0, CODEC_LZ4, 0, NULL, &pack, &w, &err) != BS_OK)
		exit(2);
	ok(pack_writer_add_run(w, 5, run.data, run.len, &pack, &err) == BS_OK, "writer: a run");
	ok(pack_writer_add_run(w, 5, run.data, run.len, &pack, &err) == BS_ERR &&
	   strstr(err.message, "runs must come in increasing relid"), "writer: a second run of one relid refused");
	for (int i = 0; bad_events[i]; i++)
		if (pack_writer_add_event(w, bad_events[i], strlen(bad_events[i]), &err) == BS_OK)
		{
			all = false;
			printf("#   accepted event %s\n", bad_events[i]);
		}
	ok(all, "writer: malformed events refused");
	ok(pack_writer_begin_run(w, 6, &err) == BS_OK && pack_writer_end_run(w, NULL, &err) == BS_ERR &&
	   strstr(err.message, "run of relid 6 holds no record"), "writer: an empty run refused");
	pack_writer_free(w);

	strbuf_reset(&pack);
	if (pack_writer_open(KEY, 0, CODEC_ZSTD, 0, NULL, &pack, &w, &err) != BS_OK)
		exit(2);
	ok(pack_writer_add_run(w, 7, run.data, run.len - 1, &pack, &err) == BS_ERR &&
	   strstr(err.message, "run of relid 7"), "writer: a run cut inside a record refused: %s", err.message);
	pack_writer_free(w);
	ok(pack_writer_open(KEY, 5, CODEC_ZSTD, 0, NULL, &pack, &w, &err) == BS_ERR, "writer: level 5 refused");
	strbuf_free(&pack);
	strbuf_free(&run);
}

static void
empty_pack(void)
{
	strbuf pack = STRBUF_INIT,
			got = STRBUF_INIT;
	pack_writer *w;
	pack_index *idx = NULL;
	bs_error err;
	uint64_t size = 0;
	pack_meta meta = {7, 9, 0x1000, 0, NULL, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"};
	pack_buffer b;

	if (pack_writer_open(KEY, 2, CODEC_LZ4, 0, NULL, &pack, &w, &err) != BS_OK)
		exit(2);
	ok(pack_writer_finish(w, &meta, &pack, &size, &err) == BS_OK && size == pack.len, "empty pack written (%zu bytes)",
	   pack.len);
	pack_writer_free(w);
	ok(pack_open_buffer(KEY, pack.data, pack.len, NULL, &idx, &err) == BS_OK && idx->nframes == 0 &&
	   idx->nruns == 0 && idx->nevents == 0 && idx->raw_size == 0 && idx->level == 2 && idx->seq_first == 7 &&
	   idx->seq_last == 9 && strcmp(idx->prev, meta.prev) == 0 && idx->lease_token == NULL,
	   "empty pack opens: no frames, runs or events; level, sequence range and prev kept");
	b.data = (const uint8_t *) pack.data;
	b.len = pack.len;
	ok(idx && pack_read_run_all(idx, 1, pack_buffer_read, &b, NULL, &got, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_NOT_FOUND) == 0, "empty pack: no run to read");
	pack_index_free(idx);
	strbuf_free(&pack);
	strbuf_free(&got);
}

static void
events(void)
{
	strbuf pack = STRBUF_INIT;
	pack_writer *w;
	pack_index *idx = NULL;
	bs_error err;
	const char *e1 = "{\"kind\":\"table\",\"lsn\":\"0/100\",\"relid\":16384,\"schema\":\"public\",\"name\":\"t\"}";
	const char *e2 = "{\"kind\":\"gap\",\"lsn\":\"1/0\",\"relid\":0,\"from\":\"0/200\",\"to\":null}";

	if (pack_writer_open(KEY, 0, CODEC_ZSTD, 0, NULL, &pack, &w, &err) != BS_OK ||
		pack_writer_add_event(w, e1, strlen(e1), &err) != BS_OK ||
		pack_writer_add_event(w, e2, strlen(e2), &err) != BS_OK ||
		pack_writer_finish(w, &meta1, &pack, NULL, &err) != BS_OK)
	{
		ok(0, "event-only pack written: %s", err.message);
		return;
	}
	pack_writer_free(w);
	ok(pack_open_buffer(KEY, pack.data, pack.len, NULL, &idx, &err) == BS_OK && idx->nevents == 2 &&
	   strcmp(idx->events[0].kind, "table") == 0 && idx->events[0].relid == 16384 && idx->events[0].lsn == 0x100 &&
	   strcmp(idx->events[1].kind, "gap") == 0 && idx->events[1].relid == 0 &&
	   idx->events[1].lsn == UINT64_C(0x100000000) && strstr(idx->events[0].json, "\"schema\":\"public\"") &&
	   strstr(idx->events[1].json, "\"to\":null"),
	   "event-only pack: events read back in order, with their members");
	pack_index_free(idx);
	strbuf_free(&pack);
}

static void
sealed(void)
{
	uint8_t keys[2][CRYPT_KEY_SIZE];
	pack_keys ka,
			  kb,
			  ro;
	table_spec specs[] = {{3, 5, 40}, {4, 1500, 300}, {9, 2, 40}};
	strbuf runs[3] = {STRBUF_INIT, STRBUF_INIT, STRBUF_INIT};
	strbuf pack = STRBUF_INIT,
			bad = STRBUF_INIT,
			unit = STRBUF_INIT,
			opened = STRBUF_INIT;
	pack_index *idx = NULL;
	bs_error err;

	memset(keys[0], 0xa1, CRYPT_KEY_SIZE);
	memset(keys[1], 0xb2, CRYPT_KEY_SIZE);
	ka.current = keys[0];
	ka.keys = (const uint8_t (*)[CRYPT_KEY_SIZE]) keys;
	ka.nkeys = 1;
	kb.current = keys[1];
	kb.keys = (const uint8_t (*)[CRYPT_KEY_SIZE]) keys + 1;
	kb.nkeys = 1;
	ro.current = NULL;
	ro.keys = (const uint8_t (*)[CRYPT_KEY_SIZE]) keys;
	ro.nkeys = 2;

	round_trip("sealed, zstd", specs, 3, CODEC_ZSTD, &ka);
	if (build(specs, 3, CODEC_LZ4, &ka, runs, &pack, &err) != BS_OK)
		exit(2);
	ok(pack_open_buffer(KEY, pack.data, pack.len, &ro, &idx, &err) == BS_OK && idx->sealed,
	   "sealed pack opens with an older key among the keys");
	pack_index_free(idx);
	idx = NULL;
	refused("sealed pack, other key", &pack, &kb, "which is not configured");
	ok(pack_open_buffer(KEY, pack.data, pack.len, NULL, &idx, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_ENCRYPTION_KEY) == 0 && strstr(err.message, "pack is encrypted"),
	   "sealed pack without keys: encryption key error");
	ok(pack_open_buffer("log/0000000000000002.bsp", pack.data, pack.len, &ka, &idx, &err) == BS_ERR &&
	   strstr(err.message, "footer: object \"log/0000000000000002.bsp\\unit@"),
	   "sealed pack under another key (name) fails authentication: %s", err.message);
	strbuf_reset(&bad);
	strbuf_append(&bad, pack.data, pack.len);
	bad.data[10] = 0;
	refused("sealed pack whose header says plaintext, read with keys", &bad, &ka, "pack is not encrypted, but the archive is");
	/* Read without keys it is a plaintext pack whose footer does not decompress: refused too. */
	refused("sealed pack whose header says plaintext, read without keys", &bad, NULL, "footer does not decompress");

	/* A unit is bound to its offset and its size. */
	ok(crypt_seal_unit(keys[0], KEY, 16, "frame", 5, &unit, &err) == BS_OK && unit.len == 5 + CRYPT_OVERHEAD &&
	   crypt_open_unit((const uint8_t (*)[CRYPT_KEY_SIZE]) keys, 1, KEY, 16, unit.data, unit.len, &opened, &err) == BS_OK &&
	   opened.len == 5 && memcmp(opened.data, "frame", 5) == 0, "a unit opens at its offset");
	ok(crypt_open_unit((const uint8_t (*)[CRYPT_KEY_SIZE]) keys, 1, KEY, 17, unit.data, unit.len, &opened, &err) == BS_ERR,
	   "a unit moved to another offset fails authentication");
	ok(crypt_open_unit((const uint8_t (*)[CRYPT_KEY_SIZE]) keys, 1, "log/0000000000000002.bsp", 16, unit.data, unit.len,
					   &opened, &err) == BS_ERR, "a unit moved to another pack fails authentication");
	ok(crypt_open_buffer((const uint8_t (*)[CRYPT_KEY_SIZE]) keys, 1, KEY, unit.data, unit.len, 0, &opened, &err) == BS_ERR,
	   "a unit does not open as a whole object of the pack's key");

	for (int i = 0; i < 3; i++)
		strbuf_free(&runs[i]);
	strbuf_free(&pack);
	strbuf_free(&bad);
	strbuf_free(&unit);
	strbuf_free(&opened);
}

/* With BACKSTOP_FUZZ_SEED_DIR set, the seeds of fuzz_pack (t/fuzz/pack/): a mode byte (bit 0:
 * read with key A) and the pack. */
static void
write_seed(const char *dir, const char *name, bool with_keys, const table_spec *specs, int n, codec_id codec,
		   const char *event)
{
	uint8_t key[CRYPT_KEY_SIZE];
	pack_keys k = {key, (const uint8_t (*)[CRYPT_KEY_SIZE]) &key, 1};
	strbuf pack = STRBUF_INIT,
			run = STRBUF_INIT;
	pack_writer *w;
	bs_error err;
	char path[4096];
	uint8_t mode = with_keys ? 1 : 0;
	FILE *f;

	memset(key, 0xa1, sizeof(key));
	if (pack_writer_open(KEY, 0, codec, 0, with_keys ? &k : NULL, &pack, &w, &err) != BS_OK)
		exit(2);
	for (int i = 0; i < n; i++)
	{
		strbuf_reset(&run);
		make_run(&run, specs[i].nrec, UINT64_C(0x1000000) * (uint64_t) (i + 1), 1, specs[i].padlen);
		if (pack_writer_add_run(w, specs[i].relid, run.data, run.len, &pack, &err) != BS_OK)
			exit(2);
	}
	if ((event && pack_writer_add_event(w, event, strlen(event), &err) != BS_OK) ||
		pack_writer_finish(w, &meta1, &pack, NULL, &err) != BS_OK)
		exit(2);
	pack_writer_free(w);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (f == NULL)
	{
		perror(path);
		exit(2);
	}
	fwrite(&mode, 1, 1, f);
	fwrite(pack.data, 1, pack.len, f);
	fclose(f);
	strbuf_free(&pack);
	strbuf_free(&run);
}

static void
write_seeds(const char *dir)
{
	table_spec three[] = {{10, 2, 8}, {20, 1, 8}, {30, 3, 8}};
	table_spec one[] = {{16384, 2, 8}};
	table_spec frames[] = {{5, 2, 8}, {6, 1200, 300}, {7, 1, 8}};
	const char *gap = "{\"kind\":\"gap\",\"lsn\":\"0/10\",\"relid\":0,\"from\":\"0/1\",\"to\":null}";

	write_seed(dir, "three-zstd.bin", false, three, 3, CODEC_ZSTD, gap);
	write_seed(dir, "one-lz4.bin", false, one, 1, CODEC_LZ4, NULL);
	write_seed(dir, "one-none.bin", false, one, 1, CODEC_NONE, NULL);
	write_seed(dir, "empty-zstd.bin", false, NULL, 0, CODEC_ZSTD, NULL);
	write_seed(dir, "three-sealed-zstd.bin", true, three, 3, CODEC_ZSTD, gap);
	run_compressible = true;
	write_seed(dir, "frames-zstd.bin", false, frames, 3, CODEC_ZSTD, NULL);
	write_seed(dir, "frames-sealed-lz4.bin", true, frames, 3, CODEC_LZ4, NULL);
	run_compressible = false;
}

/* Through a file:// storage: pack_open and pack_read_run over ranged gets. */
static void
through_storage(void)
{
	char dir[] = "/tmp/test_pack.XXXXXX";
	char url[64];
	table_spec specs[] = {{1, 3, 30}, {2, 1500, 300}, {3, 2, 30}};
	strbuf runs[3] = {STRBUF_INIT, STRBUF_INIT, STRBUF_INIT};
	strbuf pack = STRBUF_INIT,
			got = STRBUF_INIT;
	storage *st = NULL;
	storage_stat stat;
	storage_stats stats;
	bool exists = false;
	pack_storage ps;
	pack_index *idx = NULL;
	bs_error err;
	uint64_t before;

	if (mkdtemp(dir) == NULL || build(specs, 3, CODEC_ZSTD, NULL, runs, &pack, &err) != BS_OK)
		exit(2);
	snprintf(url, sizeof(url), "file://%s", dir);
	if (storage_open(url, NULL, &st, &err) != BS_OK || storage_put(st, KEY, pack.data, pack.len, &err) != BS_OK ||
		storage_head(st, KEY, &exists, &stat, &err) != BS_OK || !exists)
	{
		ok(0, "pack stored: %s", err.message);
		return;
	}
	ps.st = st;
	ps.key = KEY;
	ok(pack_open(KEY, stat.size, pack_storage_read, &ps, NULL, &idx, &err) == BS_OK && idx->nruns == 3,
	   "stored pack opens by ranged reads");
	memset(&stats, 0, sizeof(stats));
	storage_stats_add(st, &stats);
	before = stats.bytes[STORAGE_OP_GET];
	ok(idx && pack_read_run_all(idx, 3, pack_storage_read, &ps, NULL, &got, &err) == BS_OK &&
	   got.len == runs[2].len && memcmp(got.data, runs[2].data, got.len) == 0,
	   "a stored pack's run reads back");
	memset(&stats, 0, sizeof(stats));
	storage_stats_add(st, &stats);
	ok(idx && stats.bytes[STORAGE_OP_GET] - before == idx->frames[idx->nframes - 1].size,
	   "reading the last table's run got only its frame from the store (%" PRIu64 " of %zu bytes)",
	   stats.bytes[STORAGE_OP_GET] - before, pack.len);
	pack_index_free(idx);
	ok(pack_open(KEY, stat.size + 1, pack_storage_read, &ps, NULL, &idx, &err) == BS_ERR && idx == NULL,
	   "a size larger than the object's: refused: %s", err.message);
	pack_index_free(idx);
	storage_close(st);
	for (int i = 0; i < 3; i++)
		strbuf_free(&runs[i]);
	strbuf_free(&pack);
	strbuf_free(&got);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", dir);
	}
}

int
main(void)
{
	table_spec one[] = {{16384, 3, 20}};
	table_spec big[] = {{100, 4000, 400}};
	table_spec many[300];

	for (int i = 0; i < 300; i++)
	{
		many[i].relid = 16384 + (uint32_t) i * 3;
		many[i].nrec = i % 37 == 5 ? 900 : 1 + i % 4;
		many[i].padlen = 32 + (size_t) (i % 5) * 40;
	}
	if (getenv("BACKSTOP_FUZZ_SEED_DIR"))
		write_seeds(getenv("BACKSTOP_FUZZ_SEED_DIR"));
	round_trip("one table, zstd", one, 1, CODEC_ZSTD, NULL);
	round_trip("one table, lz4", one, 1, CODEC_LZ4, NULL);
	round_trip("one table, none", one, 1, CODEC_NONE, NULL);
	round_trip("one table of 1.6 MB across frames, zstd", big, 1, CODEC_ZSTD, NULL);
	round_trip("300 tables, some across frames, zstd", many, 300, CODEC_ZSTD, NULL);
	round_trip("300 tables, some across frames, lz4", many, 300, CODEC_LZ4, NULL);
	empty_pack();
	events();
	writer_refusals();
	damaged();
	sealed();
	through_storage();
	return done_testing();
}
