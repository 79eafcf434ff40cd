/* pack.c — packs (.bsp, doc/design/format2.md 3.2): many tables' records in independent frames, with a strictly read index. */
#include "pack.h"
#include "digest.h"
#include "isotime.h"
#include "lsn.h"
#include "segment.h"

#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Stored bytes asked for in one ranged read of a run's frames. */
#define PACK_READ_BATCH ((uint64_t) 8 * 1024 * 1024)
/* Smallest record: header and fixed body (a truncate without relations is not smaller). */
#define PACK_MIN_RECORD (SEGMENT_RECORD_HDR_LEN + SEGMENT_FIXED_BODY_LEN)
/* Longest member path in messages ("runs[1048576].last_end_lsn"). */
#define PACK_PATH_BUFLEN 96

static const char *const event_kinds[] = {
	"table", "layout", "base", "name", "drop", "gap", "gap_closed", "rebase_requested",
	"existed_to", "skipped", "ddl_capture_from", "expired", "schema_unknown", "schema_unknown_closed",
	"partition_change", "status", "layout_replaced", "name_replaced", NULL
};

/* ---------- shared helpers ---------- */

static bool
sha256_valid(const char *s, size_t len)
{
	if (len != 64)
		return false;
	for (size_t i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static int
append_sink(void *ctx, const void *data, size_t len, bs_error *err)
{
	(void) err;
	strbuf_append(ctx, data, len);
	return BS_OK;
}

/* Compress one buffer as one frame of codec. */
static int
compress_all(codec_id codec, int level, const void *data, size_t len, strbuf *out, bs_error *err)
{
	codec_stream *cs = NULL;
	int rc;

	strbuf_reset(out);
	if (codec_compressor_open(codec, level, &cs, err) != BS_OK)
		return BS_ERR;
	rc = codec_compress(cs, data, len, out, err);
	if (rc == BS_OK)
		rc = codec_compress_finish(cs, out, err);
	codec_stream_free(cs);
	return rc;
}

/* A sink that refuses more than limit bytes in all: decompression of untrusted frames. */
typedef struct limited_sink
{
	uint64_t produced;
	uint64_t limit;
	const char *what;
	codec_sink next;
	void *next_ctx;
} limited_sink;

static int
limited_take(void *ctx, const void *data, size_t len, bs_error *err)
{
	limited_sink *ls = ctx;

	if (len > ls->limit - ls->produced)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "%s decompresses to more than %" PRIu64 " bytes",
						 ls->what, ls->limit);
	ls->produced += len;
	return ls->next(ls->next_ctx, data, len, err);
}

static int
decompress_all(codec_id codec, const void *data, size_t len, limited_sink *ls, bs_error *err)
{
	codec_stream *cs = NULL;
	int rc;

	if (codec_decompressor_open(codec, &cs, err) != BS_OK)
		return BS_ERR;
	rc = codec_decompress(cs, data, len, limited_take, ls, err);
	if (rc == BS_OK)
		rc = codec_decompress_finish(cs, err);
	codec_stream_free(cs);
	return rc;
}

/* ---------- the footer as JSON ---------- */

static int __attribute__((format(printf, 2, 3)))
bad(bs_error *err, const char *fmt, ...)
{
	va_list ap;
	char msg[512];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return error_set(err, ERRCODE_DATA_CORRUPTED, "%s", msg);
}

/* Only the members named may be present. */
static int
only_members(json_t *o, const char *path, const char *const *names, bs_error *err)
{
	const char *name;
	json_t *v;

	json_object_foreach(o, name, v)
	{
		int i;

		for (i = 0; names[i] && strcmp(names[i], name) != 0; i++)
			;
		if (names[i] == NULL)
		{
			char *shown = xstrdup_printable(name);
			int rc = bad(err, "footer member \"%s%s%.64s\" is not one this version knows", path,
						 path[0] ? "." : "", shown);

			free(shown);
			return rc;
		}
	}
	return BS_OK;
}

static int
get_member(json_t *o, const char *path, const char *name, json_t **v, bs_error *err)
{
	*v = json_object_get(o, name);
	if (*v == NULL)
		return bad(err, "footer member \"%s%s%s\" is missing", path, path[0] ? "." : "", name);
	return BS_OK;
}

static int
get_int(json_t *o, const char *path, const char *name, int64_t min, int64_t max, int64_t *out, bs_error *err)
{
	json_t *v;

	if (get_member(o, path, name, &v, err) != BS_OK)
		return BS_ERR;
	if (!json_is_integer(v))
		return bad(err, "footer member \"%s%s%s\" must be an integer", path, path[0] ? "." : "", name);
	if (json_integer_value(v) < min || json_integer_value(v) > max)
		return bad(err, "footer member \"%s%s%s\" is out of range", path, path[0] ? "." : "", name);
	*out = json_integer_value(v);
	return BS_OK;
}

static int
get_u64(json_t *o, const char *path, const char *name, uint64_t *out, bs_error *err)
{
	int64_t v;

	if (get_int(o, path, name, 0, INT64_MAX, &v, err) != BS_OK)
		return BS_ERR;
	*out = (uint64_t) v;
	return BS_OK;
}

static int
get_lsn(json_t *o, const char *path, const char *name, uint64_t *out, bs_error *err)
{
	json_t *v;

	if (get_member(o, path, name, &v, err) != BS_OK)
		return BS_ERR;
	if (!json_is_string(v) || lsn_parse(json_string_value(v), out) != BS_OK)
		return bad(err, "footer member \"%s%s%s\" must be an LSN string (\"X/Y\")", path, path[0] ? "." : "", name);
	return BS_OK;
}

static int
get_time(json_t *o, const char *path, const char *name, int64_t *out, bs_error *err)
{
	json_t *v;

	if (get_member(o, path, name, &v, err) != BS_OK)
		return BS_ERR;
	if (!json_is_string(v) || isotime_parse(json_string_value(v), out) != BS_OK)
		return bad(err, "footer member \"%s%s%s\" must be an ISO-8601 UTC time", path, path[0] ? "." : "", name);
	return BS_OK;
}

static int
get_array(json_t *o, const char *name, json_t **arr, int *n, bs_error *err)
{
	if (get_member(o, "", name, arr, err) != BS_OK)
		return BS_ERR;
	if (!json_is_array(*arr))
		return bad(err, "footer member \"%s\" must be an array", name);
	if (json_array_size(*arr) > INT_MAX / 4)
		return bad(err, "footer member \"%s\" has too many elements", name);
	*n = (int) json_array_size(*arr);
	return BS_OK;
}

static int
get_element(json_t *arr, const char *name, int i, json_t **e, char *path, bs_error *err)
{
	snprintf(path, PACK_PATH_BUFLEN, "%s[%d]", name, i);
	*e = json_array_get(arr, (size_t) i);
	if (!json_is_object(*e))
		return bad(err, "footer member \"%s\" must be an object", path);
	return BS_OK;
}

/* An event object: a known kind, an LSN, a relid (0: the whole archive). */
static int
event_check(json_t *e, const char *path, const char **kind, uint32_t *relid, uint64_t *lsn, bs_error *err)
{
	json_t *v;
	int64_t r;
	int i;

	if (get_member(e, path, "kind", &v, err) != BS_OK)
		return BS_ERR;
	if (!json_is_string(v))
		return bad(err, "footer member \"%s.kind\" must be a string", path);
	for (i = 0; event_kinds[i] && strcmp(event_kinds[i], json_string_value(v)) != 0; i++)
		;
	if (event_kinds[i] == NULL)
		return bad(err, "footer member \"%s.kind\" is not a kind of event this version knows", path);
	*kind = event_kinds[i];
	if (get_int(e, path, "relid", 0, UINT32_MAX, &r, err) != BS_OK ||
		get_lsn(e, path, "lsn", lsn, err) != BS_OK)
		return BS_ERR;
	*relid = (uint32_t) r;
	return BS_OK;
}

static const char *const top_members[] = {
	"format", "level", "codec", "sealed", "seq_first", "seq_last", "seal_lsn", "time", "lease_token",
	"prev", "raw_size", "frames", "runs", "events", NULL
};
static const char *const frame_members[] = {"offset", "size", "raw_size", "sha256", NULL};
static const char *const run_members[] = {
	"relid", "raw_offset", "raw_len", "records", "first_lsn", "last_end_lsn", "first_time", "last_time", NULL
};

/* Types and conversions of the footer into idx (key, sizes and header values set by the caller). */
static int
footer_from_json(json_t *root, pack_index *idx, bs_error *err)
{
	char path[PACK_PATH_BUFLEN];
	json_t *v,
			   *arr,
			   *e;
	int64_t n;
	codec_id codec;
	bs_error cerr;

	if (!json_is_object(root))
		return bad(err, "footer is not a JSON object");
	if (only_members(root, "", top_members, err) != BS_OK)
		return BS_ERR;
	if (get_int(root, "", "format", INT64_MIN, INT64_MAX, &n, err) != BS_OK)
		return BS_ERR;
	if (n != PACK_FORMAT)
		return bad(err, "footer member \"format\" is %" PRId64 "; this version reads packs of format %d", n,
				   PACK_FORMAT);
	if (get_int(root, "", "level", 0, PACK_LEVEL_MAX, &n, err) != BS_OK)
		return BS_ERR;
	if (n != idx->level)
		return bad(err, "footer says level %" PRId64 ", the header %d", n, idx->level);
	if (get_member(root, "", "codec", &v, err) != BS_OK)
		return BS_ERR;
	if (!json_is_string(v) || codec_parse(json_string_value(v), &codec, &cerr) != BS_OK)
		return bad(err, "footer member \"codec\" must be \"none\", \"zstd\" or \"lz4\"");
	if (codec != idx->codec)
		return bad(err, "footer says codec %s, the header %s", codec_name(codec), codec_name(idx->codec));
	if (get_member(root, "", "sealed", &v, err) != BS_OK)
		return BS_ERR;
	if (!json_is_boolean(v))
		return bad(err, "footer member \"sealed\" must be a boolean");
	if (json_is_true(v) != idx->sealed)
		return bad(err, "footer says %s, the header %s", json_is_true(v) ? "sealed" : "not sealed",
				   idx->sealed ? "sealed" : "not sealed");
	if (get_u64(root, "", "seq_first", &idx->seq_first, err) != BS_OK ||
		get_u64(root, "", "seq_last", &idx->seq_last, err) != BS_OK ||
		get_lsn(root, "", "seal_lsn", &idx->seal_lsn, err) != BS_OK ||
		get_time(root, "", "time", &idx->time, err) != BS_OK ||
		get_u64(root, "", "raw_size", &idx->raw_size, err) != BS_OK)
		return BS_ERR;
	if (idx->seq_first < 1 || idx->seq_last < idx->seq_first)
		return bad(err, "footer's sequence range %" PRIu64 "-%" PRIu64 " is not one (1 <= first <= last)",
				   idx->seq_first, idx->seq_last);
	if (get_member(root, "", "lease_token", &v, err) != BS_OK)
		return BS_ERR;
	if (json_is_string(v))
		idx->lease_token = xstrdup(json_string_value(v));
	else if (!json_is_null(v))
		return bad(err, "footer member \"lease_token\" must be a string or null");
	if (get_member(root, "", "prev", &v, err) != BS_OK)
		return BS_ERR;
	if (json_is_string(v) && sha256_valid(json_string_value(v), json_string_length(v)))
		memcpy(idx->prev, json_string_value(v), 65);
	else if (!json_is_null(v))
		return bad(err, "footer member \"prev\" must be 64 lowercase hex digits or null");

	if (get_array(root, "frames", &arr, &idx->nframes, err) != BS_OK)
		return BS_ERR;
	idx->frames = xcalloc((size_t) idx->nframes + 1, sizeof(pack_frame));
	for (int i = 0; i < idx->nframes; i++)
	{
		pack_frame *f = &idx->frames[i];

		if (get_element(arr, "frames", i, &e, path, err) != BS_OK ||
			only_members(e, path, frame_members, err) != BS_OK ||
			get_u64(e, path, "offset", &f->offset, err) != BS_OK ||
			get_u64(e, path, "size", &f->size, err) != BS_OK ||
			get_u64(e, path, "raw_size", &f->raw_size, err) != BS_OK ||
			get_member(e, path, "sha256", &v, err) != BS_OK)
			return BS_ERR;
		if (!json_is_string(v) || !sha256_valid(json_string_value(v), json_string_length(v)))
			return bad(err, "footer member \"%s.sha256\" must be 64 lowercase hex digits", path);
		memcpy(f->sha256, json_string_value(v), 65);
	}

	if (get_array(root, "runs", &arr, &idx->nruns, err) != BS_OK)
		return BS_ERR;
	idx->runs = xcalloc((size_t) idx->nruns + 1, sizeof(pack_run));
	for (int i = 0; i < idx->nruns; i++)
	{
		pack_run *r = &idx->runs[i];

		if (get_element(arr, "runs", i, &e, path, err) != BS_OK ||
			only_members(e, path, run_members, err) != BS_OK ||
			get_int(e, path, "relid", 1, UINT32_MAX, &n, err) != BS_OK ||
			get_u64(e, path, "raw_offset", &r->raw_offset, err) != BS_OK ||
			get_u64(e, path, "raw_len", &r->raw_len, err) != BS_OK ||
			get_u64(e, path, "records", &r->records, err) != BS_OK ||
			get_lsn(e, path, "first_lsn", &r->first_lsn, err) != BS_OK ||
			get_lsn(e, path, "last_end_lsn", &r->last_end_lsn, err) != BS_OK ||
			get_time(e, path, "first_time", &r->first_time, err) != BS_OK ||
			get_time(e, path, "last_time", &r->last_time, err) != BS_OK)
			return BS_ERR;
		r->relid = (uint32_t) n;
	}

	if (get_array(root, "events", &arr, &idx->nevents, err) != BS_OK)
		return BS_ERR;
	idx->events = xcalloc((size_t) idx->nevents + 1, sizeof(pack_event));
	for (int i = 0; i < idx->nevents; i++)
	{
		pack_event *ev = &idx->events[i];
		const char *kind;

		if (get_element(arr, "events", i, &e, path, err) != BS_OK ||
			event_check(e, path, &kind, &ev->relid, &ev->lsn, err) != BS_OK)
			return BS_ERR;
		ev->kind = xstrdup(kind);
		ev->json = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS);
		if (ev->json == NULL)
			abort();			/* out of memory in jansson */
	}
	return BS_OK;
}

/*
 * The footer's values against each other and against the object: frames tile the stored
 * space between header and footer, runs tile the raw space, runs sorted by relid.
 */
static int
index_check(pack_index *idx, bs_error *err)
{
	uint64_t pos = PACK_HEADER_SIZE,
				raw = 0;

	for (int i = 0; i < idx->nframes; i++)
	{
		pack_frame *f = &idx->frames[i];

		if (f->offset != pos)
			return bad(err, "frames[%d] starts at offset %" PRIu64 ", but %s ends at %" PRIu64 ": frames must be contiguous and must not overlap",
					   i, f->offset, i ? "the previous frame" : "the header", pos);
		if (f->size == 0 || f->size > idx->footer_offset - pos)
			return bad(err, "frames[%d] (offset %" PRIu64 ", %" PRIu64 " bytes) runs past the footer at offset %" PRIu64,
					   i, f->offset, f->size, idx->footer_offset);
		if (f->raw_size == 0 || f->raw_size > PACK_FRAME_RAW_MAX)
			return bad(err, "frames[%d] has a raw size of %" PRIu64 " bytes (1 to %" PRIu64 ")", i, f->raw_size,
					   PACK_FRAME_RAW_MAX);
		/* Bounds memory per frame: no codec expands data by more than this. */
		if (f->size > f->raw_size + f->raw_size / 64 + 1024 + CRYPT_OVERHEAD)
			return bad(err, "frames[%d] is %" PRIu64 " bytes stored for %" PRIu64 " raw: more than any codec makes",
					   i, f->size, f->raw_size);
		f->raw_offset = raw;
		pos += f->size;
		raw += f->raw_size;
	}
	if (pos != idx->footer_offset)
		return bad(err, "the frames end at offset %" PRIu64 ", but the footer starts at %" PRIu64, pos,
				   idx->footer_offset);
	if (raw != idx->raw_size)
		return bad(err, "the frames hold %" PRIu64 " raw bytes, the footer says raw_size %" PRIu64, raw,
				   idx->raw_size);

	raw = 0;
	for (int i = 0; i < idx->nruns; i++)
	{
		pack_run *r = &idx->runs[i];

		if (i > 0 && r->relid <= idx->runs[i - 1].relid)
			return bad(err, "runs[%d] (relid %u) does not follow runs[%d] (relid %u): runs must be sorted by relid, without duplicates",
					   i, r->relid, i - 1, idx->runs[i - 1].relid);
		if (r->raw_offset != raw)
			return bad(err, "runs[%d] (relid %u) starts at raw offset %" PRIu64 ", but %s ends at %" PRIu64 ": runs must tile the raw space",
					   i, r->relid, r->raw_offset, i ? "the previous run" : "nothing", raw);
		if (r->raw_len == 0 || r->raw_len > idx->raw_size - raw)
			return bad(err, "runs[%d] (relid %u, raw offset %" PRIu64 ", %" PRIu64 " bytes) is not inside the raw space (%" PRIu64 " bytes)",
					   i, r->relid, r->raw_offset, r->raw_len, idx->raw_size);
		if (r->records == 0 || r->records > r->raw_len / PACK_MIN_RECORD)
			return bad(err, "runs[%d] (relid %u) claims %" PRIu64 " records in %" PRIu64 " bytes", i, r->relid,
					   r->records, r->raw_len);
		if (r->first_lsn > r->last_end_lsn)
			return bad(err, "runs[%d] (relid %u) ends (last_end_lsn) before it starts (first_lsn)", i, r->relid);
		raw += r->raw_len;
	}
	if (raw != idx->raw_size)
		return bad(err, "the runs cover %" PRIu64 " raw bytes of %" PRIu64 ": runs must tile the raw space", raw,
				   idx->raw_size);
	return BS_OK;
}

/* Parse footer text into idx and check it; idx's key, sizes and header values are set. */
static int
footer_parse(const char *text, size_t len, pack_index *idx, bs_error *err)
{
	json_error_t jerr;
	json_t *root;
	int rc;

	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return bad(err, "footer is not JSON: error at line %d: %s", jerr.line, jerr.text);
	rc = footer_from_json(root, idx, err);
	json_decref(root);
	if (rc == BS_OK)
		rc = index_check(idx, err);
	return rc;
}

/* ---------- writer ---------- */

struct pack_writer
{
	char *key;
	int level;
	codec_id codec;
	int codec_level;
	bool sealed;
	uint8_t seal_key[CRYPT_KEY_SIZE];
	uint64_t stored;			/* bytes appended to out so far */
	strbuf raw;					/* the frame being filled */
	uint64_t raw_total;
	pack_frame *frames;
	int nframes;
	int frames_cap;
	pack_run *runs;
	int nruns;
	int runs_cap;
	json_t *events;
	bool in_run;
	pack_run cur;
	segment_scan scan;
	bool failed;
	strbuf tmp;
	strbuf tmp2;
};

int
pack_writer_open(const char *key, int level, codec_id codec, int codec_level, const pack_keys *keys,
				 strbuf *out, pack_writer **wp, bs_error *err)
{
	pack_writer *w;
	uint8_t header[PACK_HEADER_SIZE];

	*wp = NULL;
	if (level < 0 || level > PACK_LEVEL_MAX)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "pack level %d is not 0 to %d", level, PACK_LEVEL_MAX);
	if (!codec_is_known((int) codec))
		return error_set(err, ERRCODE_INVALID_PARAMETER, "unknown codec id %d", (int) codec);
	if (!storage_key_valid(key))
		return error_set(err, ERRCODE_INVALID_PARAMETER, "pack key is not a valid storage key");
	w = xcalloc(1, sizeof(*w));
	w->key = xstrdup(key);
	w->level = level;
	w->codec = codec;
	w->codec_level = codec_level;
	if (keys && keys->current)
	{
		w->sealed = true;
		memcpy(w->seal_key, keys->current, CRYPT_KEY_SIZE);
	}
	w->events = json_array();
	memset(header, 0, sizeof(header));
	memcpy(header, PACK_MAGIC, 8);
	header[8] = (uint8_t) level;
	header[9] = (uint8_t) codec;
	header[10] = w->sealed ? PACK_FLAG_SEALED : 0;
	strbuf_append(out, header, sizeof(header));
	w->stored = PACK_HEADER_SIZE;
	*wp = w;
	return BS_OK;
}

static int
writer_fail(pack_writer *w, bs_error *err)
{
	w->failed = true;
	return error_prefix(err, "pack \"%s\"", w->key);
}

/* Compress (and seal) the frame being filled, append it to out. */
static int
emit_frame(pack_writer *w, strbuf *out, bs_error *err)
{
	strbuf *stored = &w->tmp;
	pack_frame f;

	if (compress_all(w->codec, w->codec_level, w->raw.data, w->raw.len, &w->tmp, err) != BS_OK)
		return BS_ERR;
	if (w->sealed)
	{
		if (crypt_seal_unit(w->seal_key, w->key, w->stored, w->tmp.data, w->tmp.len, &w->tmp2, err) != BS_OK)
			return BS_ERR;
		stored = &w->tmp2;
	}
	memset(&f, 0, sizeof(f));
	f.offset = w->stored;
	f.size = stored->len;
	f.raw_offset = w->raw_total - w->raw.len;
	f.raw_size = w->raw.len;
	digest_sha256_hex(stored->data, stored->len, f.sha256);
	strbuf_append(out, stored->data, stored->len);
	w->stored += stored->len;
	if (w->nframes == w->frames_cap)
	{
		w->frames_cap = w->frames_cap ? 2 * w->frames_cap : 16;
		w->frames = xrealloc(w->frames, (size_t) w->frames_cap * sizeof(pack_frame));
	}
	w->frames[w->nframes++] = f;
	strbuf_reset(&w->raw);
	return BS_OK;
}

int
pack_writer_begin_run(pack_writer *w, uint32_t relid, bs_error *err)
{
	if (w->failed || w->in_run)
		return error_set(err, ERRCODE_INTERNAL, "pack \"%s\": a run begins while %s", w->key,
						 w->failed ? "the writer has failed" : "another is open");
	if (relid == 0 || (w->nruns > 0 && relid <= w->runs[w->nruns - 1].relid))
		return error_set(err, ERRCODE_INVALID_PARAMETER,
						 "pack \"%s\": run of relid %u after relid %u: runs must come in increasing relid",
						 w->key, relid, w->nruns ? w->runs[w->nruns - 1].relid : 0);
	memset(&w->cur, 0, sizeof(w->cur));
	w->cur.relid = relid;
	w->cur.raw_offset = w->raw_total;
	segment_scan_init(&w->scan);
	if (segment_scan_feed(&w->scan, SEGMENT_MAGIC, SEGMENT_MAGIC_LEN, err) != BS_OK)
		return BS_ERR;
	w->in_run = true;
	return BS_OK;
}

int
pack_writer_write(pack_writer *w, const void *data, size_t len, strbuf *out, bs_error *err)
{
	const uint8_t *p = data;

	if (w->failed || !w->in_run)
		return error_set(err, ERRCODE_INTERNAL, "pack \"%s\": records written %s", w->key,
						 w->failed ? "after a failure" : "outside a run");
	if (segment_scan_feed(&w->scan, data, len, err) != BS_OK)
	{
		error_prefix(err, "run of relid %u", w->cur.relid);
		return writer_fail(w, err);
	}
	w->cur.raw_len += len;
	w->raw_total += len;
	while (len > 0)
	{
		size_t n = PACK_FRAME_RAW - w->raw.len;

		n = n < len ? n : len;
		strbuf_append(&w->raw, p, n);
		p += n;
		len -= n;
		if (w->raw.len == PACK_FRAME_RAW && emit_frame(w, out, err) != BS_OK)
			return writer_fail(w, err);
	}
	return BS_OK;
}

int
pack_writer_end_run(pack_writer *w, pack_run *run, bs_error *err)
{
	segment_summary sum;

	if (w->failed || !w->in_run)
		return error_set(err, ERRCODE_INTERNAL, "pack \"%s\": a run ends %s", w->key,
						 w->failed ? "after a failure" : "that did not begin");
	w->in_run = false;
	if (segment_scan_finish(&w->scan, &sum, err) != BS_OK)
	{
		error_prefix(err, "run of relid %u", w->cur.relid);
		return writer_fail(w, err);
	}
	if (sum.records == 0)
	{
		error_set(err, ERRCODE_INVALID_PARAMETER, "run of relid %u holds no record", w->cur.relid);
		return writer_fail(w, err);
	}
	w->cur.records = sum.records;
	w->cur.first_lsn = sum.first_commit_lsn;
	w->cur.last_end_lsn = sum.last_end_lsn;
	w->cur.first_time = sum.first_time;
	w->cur.last_time = sum.last_time;
	if (w->nruns == w->runs_cap)
	{
		w->runs_cap = w->runs_cap ? 2 * w->runs_cap : 64;
		w->runs = xrealloc(w->runs, (size_t) w->runs_cap * sizeof(pack_run));
	}
	w->runs[w->nruns++] = w->cur;
	if (run)
		*run = w->cur;
	return BS_OK;
}

int
pack_writer_add_run(pack_writer *w, uint32_t relid, const void *data, size_t len, strbuf *out, bs_error *err)
{
	if (pack_writer_begin_run(w, relid, err) != BS_OK ||
		pack_writer_write(w, data, len, out, err) != BS_OK ||
		pack_writer_end_run(w, NULL, err) != BS_OK)
		return BS_ERR;
	return BS_OK;
}

int
pack_writer_add_event(pack_writer *w, const char *json, size_t len, bs_error *err)
{
	json_error_t jerr;
	json_t *e;
	const char *kind;
	uint32_t relid;
	uint64_t lsn;
	char path[PACK_PATH_BUFLEN];

	if (w->failed)
		return error_set(err, ERRCODE_INTERNAL, "pack \"%s\": event added after a failure", w->key);
	snprintf(path, sizeof(path), "events[%zu]", json_array_size(w->events));
	e = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (e == NULL)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "pack \"%s\": event is not JSON: %s", w->key, jerr.text);
	if (!json_is_object(e))
	{
		json_decref(e);
		return error_set(err, ERRCODE_INVALID_PARAMETER, "pack \"%s\": event is not a JSON object", w->key);
	}
	if (event_check(e, path, &kind, &relid, &lsn, err) != BS_OK)
	{
		json_decref(e);
		memcpy(err->code, ERRCODE_INVALID_PARAMETER, sizeof(err->code));
		return error_prefix(err, "pack \"%s\"", w->key);
	}
	json_array_append_new(w->events, e);
	return BS_OK;
}

static json_t *
lsn_json(uint64_t lsn)
{
	char buf[LSN_BUFLEN];

	return json_string(lsn_format(lsn, buf));
}

static json_t *
time_json(int64_t us)
{
	char buf[ISOTIME_BUFLEN];

	return json_string(isotime_format(us, buf));
}

static char *
footer_to_json(pack_writer *w, const pack_meta *meta)
{
	json_t *o = json_object(),
			   *frames = json_array(),
			   *runs = json_array();
	char *text;

	json_object_set_new(o, "format", json_integer(PACK_FORMAT));
	json_object_set_new(o, "level", json_integer(w->level));
	json_object_set_new(o, "codec", json_string(codec_name(w->codec)));
	json_object_set_new(o, "sealed", json_boolean(w->sealed));
	json_object_set_new(o, "seq_first", json_integer((json_int_t) meta->seq_first));
	json_object_set_new(o, "seq_last", json_integer((json_int_t) meta->seq_last));
	json_object_set_new(o, "seal_lsn", lsn_json(meta->seal_lsn));
	json_object_set_new(o, "time", time_json(meta->time));
	json_object_set_new(o, "lease_token", meta->lease_token ? json_string(meta->lease_token) : json_null());
	json_object_set_new(o, "prev", meta->prev ? json_string(meta->prev) : json_null());
	json_object_set_new(o, "raw_size", json_integer((json_int_t) w->raw_total));
	for (int i = 0; i < w->nframes; i++)
	{
		json_t *f = json_object();

		json_object_set_new(f, "offset", json_integer((json_int_t) w->frames[i].offset));
		json_object_set_new(f, "size", json_integer((json_int_t) w->frames[i].size));
		json_object_set_new(f, "raw_size", json_integer((json_int_t) w->frames[i].raw_size));
		json_object_set_new(f, "sha256", json_string(w->frames[i].sha256));
		json_array_append_new(frames, f);
	}
	for (int i = 0; i < w->nruns; i++)
	{
		const pack_run *r = &w->runs[i];
		json_t *j = json_object();

		json_object_set_new(j, "relid", json_integer(r->relid));
		json_object_set_new(j, "raw_offset", json_integer((json_int_t) r->raw_offset));
		json_object_set_new(j, "raw_len", json_integer((json_int_t) r->raw_len));
		json_object_set_new(j, "records", json_integer((json_int_t) r->records));
		json_object_set_new(j, "first_lsn", lsn_json(r->first_lsn));
		json_object_set_new(j, "last_end_lsn", lsn_json(r->last_end_lsn));
		json_object_set_new(j, "first_time", time_json(r->first_time));
		json_object_set_new(j, "last_time", time_json(r->last_time));
		json_array_append_new(runs, j);
	}
	json_object_set_new(o, "frames", frames);
	json_object_set_new(o, "runs", runs);
	json_object_set(o, "events", w->events);
	/* One object on one line: the reader parses it whole (JSON_REJECT_DUPLICATES), which
	 * JSON lines would not make cheaper, and the footer is bounded (PACK_FOOTER_MAX). */
	text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return text;
}

int
pack_writer_finish(pack_writer *w, const pack_meta *meta, strbuf *out, uint64_t *stored_size, bs_error *err)
{
	char *text;
	size_t text_len;
	strbuf *stored = &w->tmp;
	pack_index *check;
	uint8_t trailer[PACK_TRAILER_SIZE];
	int rc;

	if (w->failed || w->in_run)
		return error_set(err, ERRCODE_INTERNAL, "pack \"%s\": finished %s", w->key,
						 w->failed ? "after a failure" : "inside a run");
	if (meta->seq_first < 1 || meta->seq_last < meta->seq_first || meta->seq_last > INT64_MAX)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "pack \"%s\": sequence range %" PRIu64 "-%" PRIu64 " is not one",
						 w->key, meta->seq_first, meta->seq_last);
	if (meta->prev && !sha256_valid(meta->prev, strlen(meta->prev)))
		return error_set(err, ERRCODE_INVALID_PARAMETER, "pack \"%s\": prev is not a SHA-256 in hex", w->key);
	if (w->raw.len > 0 && emit_frame(w, out, err) != BS_OK)
		return writer_fail(w, err);
	text = footer_to_json(w, meta);
	if (text == NULL)
		abort();				/* out of memory in jansson */
	text_len = strlen(text);
	rc = compress_all(w->codec, w->codec_level, text, text_len, &w->tmp, err);
	if (rc == BS_OK && w->sealed)
	{
		rc = crypt_seal_unit(w->seal_key, w->key, w->stored, w->tmp.data, w->tmp.len, &w->tmp2, err);
		stored = &w->tmp2;
	}
	if (rc == BS_OK && (text_len > PACK_FOOTER_MAX || stored->len > PACK_FOOTER_MAX))
		rc = error_set(err, ERRCODE_OUT_OF_RANGE, "footer of %zu bytes is larger than a pack may have", text_len);
	if (rc == BS_OK)
	{
		/* Never store what a reader would refuse. */
		check = xcalloc(1, sizeof(*check));
		check->level = w->level;
		check->codec = w->codec;
		check->sealed = w->sealed;
		check->footer_offset = w->stored;
		check->footer_size = stored->len;
		check->object_size = w->stored + stored->len + PACK_TRAILER_SIZE;
		rc = footer_parse(text, text_len, check, err);
		pack_index_free(check);
	}
	free(text);
	if (rc != BS_OK)
		return writer_fail(w, err);
	strbuf_append(out, stored->data, stored->len);
	for (int i = 0; i < 8; i++)
		trailer[i] = (uint8_t) (w->stored >> (56 - 8 * i));
	for (int i = 0; i < 4; i++)
		trailer[8 + i] = (uint8_t) ((uint64_t) stored->len >> (24 - 8 * i));
	memcpy(trailer + 12, PACK_END_MAGIC, 8);
	strbuf_append(out, trailer, sizeof(trailer));
	w->stored += stored->len + PACK_TRAILER_SIZE;
	if (stored_size)
		*stored_size = w->stored;
	w->failed = true;			/* finished: nothing more may be added */
	return BS_OK;
}

void
pack_writer_free(pack_writer *w)
{
	if (w == NULL)
		return;
	OPENSSL_cleanse(w->seal_key, sizeof(w->seal_key));
	free(w->key);
	strbuf_free(&w->raw);
	strbuf_free(&w->tmp);
	strbuf_free(&w->tmp2);
	free(w->frames);
	free(w->runs);
	json_decref(w->events);
	free(w);
}

/* ---------- reader ---------- */

void
pack_index_free(pack_index *idx)
{
	if (idx == NULL)
		return;
	free(idx->key);
	free(idx->lease_token);
	free(idx->frames);
	free(idx->runs);
	for (int i = 0; i < idx->nevents; i++)
	{
		free(idx->events[i].kind);
		free(idx->events[i].json);
	}
	free(idx->events);
	free(idx);
}

int
pack_buffer_read(void *ctx, uint64_t offset, uint64_t length, strbuf *out, bs_error *err)
{
	const pack_buffer *b = ctx;

	strbuf_reset(out);
	if (offset > b->len || length > b->len - offset)
		return error_set(err, ERRCODE_INTERNAL, "read of [%" PRIu64 ", +%" PRIu64 ") outside a buffer of %zu bytes",
						 offset, length, b->len);
	strbuf_append(out, b->data + offset, (size_t) length);
	return BS_OK;
}

typedef struct range_sink
{
	strbuf *out;
	uint64_t want;
} range_sink;

static int
range_take(void *ctx, const void *data, size_t len, bs_error *err)
{
	range_sink *rs = ctx;

	if (len > rs->want - rs->out->len)
		return error_set(err, ERRCODE_STORAGE, "the store answered a read of %" PRIu64 " bytes with more", rs->want);
	strbuf_append(rs->out, data, len);
	return BS_OK;
}

int
pack_storage_read(void *ctx, uint64_t offset, uint64_t length, strbuf *out, bs_error *err)
{
	const pack_storage *ps = ctx;
	range_sink rs = {out, length};

	strbuf_reset(out);
	if (length == 0)
		return BS_OK;			/* storage_get's length 0 means "to the end" */
	if (storage_get(ps->st, ps->key, offset, length, range_take, &rs, err) != BS_OK)
		return BS_ERR;
	if (out->len != length)
		return error_set(err, ERRCODE_STORAGE, "the store answered a read of %" PRIu64 " bytes at offset %" PRIu64 " with %zu",
						 length, offset, out->len);
	return BS_OK;
}

/* A ranged read that must return exactly the bytes asked for. */
static int
read_exact(pack_read_fn read, void *ctx, uint64_t offset, uint64_t length, strbuf *out, bs_error *err)
{
	if (read(ctx, offset, length, out, err) != BS_OK)
		return BS_ERR;
	if (out->len != length)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "read of %" PRIu64 " bytes at offset %" PRIu64 " returned %zu",
						 length, offset, out->len);
	return BS_OK;
}

static uint64_t
be_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

/* A sealed pack needs keys; an encrypted archive accepts no plaintext pack. */
static int
check_sealing(const pack_index *idx, const pack_keys *keys, bs_error *err)
{
	bool have = keys && keys->nkeys > 0;

	if (idx->sealed && !have)
		return error_set(err, ERRCODE_ENCRYPTION_KEY, "pack is encrypted, and no encryption key is configured");
	if (!idx->sealed && have)
		return bad(err, "pack is not encrypted, but the archive is");
	return BS_OK;
}

static int
open_footer(pack_index *idx, pack_read_fn read, void *ctx, const pack_keys *keys, bs_error *err)
{
	strbuf buf = STRBUF_INIT,
			opened = STRBUF_INIT,
			text = STRBUF_INIT;
	const strbuf *stored = &buf;
	limited_sink ls = {0, PACK_FOOTER_MAX, "footer", append_sink, &text};
	uint8_t fixed[PACK_TRAILER_SIZE];
	int rc;

	if (idx->object_size < PACK_HEADER_SIZE + PACK_TRAILER_SIZE)
		return bad(err, "pack is truncated: %" PRIu64 " bytes, fewer than a header and a trailer", idx->object_size);
	rc = read_exact(read, ctx, 0, PACK_HEADER_SIZE, &buf, err);
	if (rc != BS_OK)
		goto out;
	memcpy(fixed, buf.data, PACK_HEADER_SIZE);
	if (memcmp(fixed, PACK_MAGIC, 8) != 0)
	{
		rc = bad(err, "not a pack: no magic " PACK_MAGIC);
		goto out;
	}
	if (fixed[8] > PACK_LEVEL_MAX || !codec_is_known(fixed[9]) || (fixed[10] & ~PACK_FLAG_SEALED) != 0 ||
		fixed[11] || fixed[12] || fixed[13] || fixed[14] || fixed[15])
	{
		rc = bad(err, "header has level %u, codec %u, flags %u: not a pack this version reads", fixed[8], fixed[9],
				 fixed[10]);
		goto out;
	}
	idx->level = fixed[8];
	idx->codec = (codec_id) fixed[9];
	idx->sealed = (fixed[10] & PACK_FLAG_SEALED) != 0;
	if ((rc = check_sealing(idx, keys, err)) != BS_OK)
		goto out;

	rc = read_exact(read, ctx, idx->object_size - PACK_TRAILER_SIZE, PACK_TRAILER_SIZE, &buf, err);
	if (rc != BS_OK)
		goto out;
	memcpy(fixed, buf.data, PACK_TRAILER_SIZE);
	if (memcmp(fixed + 12, PACK_END_MAGIC, 8) != 0)
	{
		rc = bad(err, "pack is truncated: it does not end with " PACK_END_MAGIC);
		goto out;
	}
	idx->footer_offset = be_u64(fixed);
	idx->footer_size = ((uint64_t) fixed[8] << 24) | ((uint64_t) fixed[9] << 16) | ((uint64_t) fixed[10] << 8) | fixed[11];
	if (idx->footer_size == 0 || idx->footer_size > PACK_FOOTER_MAX ||
		idx->footer_offset < PACK_HEADER_SIZE ||
		idx->footer_offset > idx->object_size - PACK_TRAILER_SIZE ||
		idx->footer_size != idx->object_size - PACK_TRAILER_SIZE - idx->footer_offset)
	{
		rc = bad(err, "trailer places the footer at offset %" PRIu64 " (%" PRIu64 " bytes), which does not end where the trailer starts (%" PRIu64 ") or is too large",
				 idx->footer_offset, idx->footer_size, idx->object_size - PACK_TRAILER_SIZE);
		goto out;
	}
	rc = read_exact(read, ctx, idx->footer_offset, idx->footer_size, &buf, err);
	if (rc != BS_OK)
		goto out;
	if (idx->sealed)
	{
		rc = crypt_open_unit(keys->keys, keys->nkeys, idx->key, idx->footer_offset, buf.data, buf.len, &opened, err);
		if (rc != BS_OK)
		{
			error_prefix(err, "footer");
			goto out;
		}
		stored = &opened;
	}
	rc = decompress_all(idx->codec, stored->data, stored->len, &ls, err);
	if (rc != BS_OK)
	{
		memcpy(err->code, ERRCODE_DATA_CORRUPTED, sizeof(err->code));
		error_prefix(err, "footer does not decompress");
		goto out;
	}
	rc = footer_parse(text.data ? text.data : "", text.len, idx, err);
out:
	strbuf_free(&buf);
	strbuf_free(&opened);
	strbuf_free(&text);
	return rc;
}

int
pack_open(const char *key, uint64_t object_size, pack_read_fn read, void *ctx, const pack_keys *keys,
		  pack_index **out, bs_error *err)
{
	pack_index *idx = xcalloc(1, sizeof(*idx));

	*out = NULL;
	idx->key = xstrdup(key);
	idx->object_size = object_size;
	if (open_footer(idx, read, ctx, keys, err) != BS_OK)
	{
		pack_index_free(idx);
		return error_prefix(err, "pack \"%s\"", key);
	}
	*out = idx;
	return BS_OK;
}

int
pack_open_buffer(const char *key, const void *data, size_t len, const pack_keys *keys, pack_index **out,
				 bs_error *err)
{
	pack_buffer b = {data, len};

	return pack_open(key, len, pack_buffer_read, &b, keys, out, err);
}

const pack_run *
pack_find_run(const pack_index *idx, uint32_t relid)
{
	int lo = 0,
		hi = idx->nruns - 1;

	while (lo <= hi)
	{
		int mid = lo + (hi - lo) / 2;

		if (idx->runs[mid].relid == relid)
			return &idx->runs[mid];
		if (idx->runs[mid].relid < relid)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

/* The frame holding raw offset pos (pos < raw_size). */
static int
frame_at(const pack_index *idx, uint64_t pos)
{
	int lo = 0,
		hi = idx->nframes - 1;

	while (lo < hi)
	{
		int mid = lo + (hi - lo + 1) / 2;

		if (idx->frames[mid].raw_offset <= pos)
			lo = mid;
		else
			hi = mid - 1;
	}
	return lo;
}

/* Hands the part of a frame's raw bytes inside the run to the caller and the scan. */
typedef struct run_slice
{
	uint64_t pos;				/* raw offset of the next byte */
	uint64_t lo;				/* the run, in the raw space */
	uint64_t hi;
	segment_scan scan;
	codec_sink sink;
	void *sink_ctx;
} run_slice;

static int
slice_take(void *ctx, const void *data, size_t len, bs_error *err)
{
	run_slice *s = ctx;
	uint64_t start = s->pos,
				end = s->pos + len;

	s->pos = end;
	if (end <= s->lo || start >= s->hi)
		return BS_OK;
	if (start < s->lo)
		start = s->lo;
	if (end > s->hi)
		end = s->hi;
	data = (const uint8_t *) data + (start - (s->pos - len));
	if (segment_scan_feed(&s->scan, data, (size_t) (end - start), err) != BS_OK)
		return BS_ERR;
	return s->sink(s->sink_ctx, data, (size_t) (end - start), err);
}

static int
read_frames(const pack_index *idx, const pack_run *run, pack_read_fn read, void *ctx, const pack_keys *keys,
			run_slice *s, bs_error *err)
{
	strbuf batch = STRBUF_INIT,
			opened = STRBUF_INIT;
	int first = frame_at(idx, run->raw_offset),
		last = frame_at(idx, run->raw_offset + run->raw_len - 1);
	int rc = BS_OK;

	s->pos = idx->frames[first].raw_offset;
	for (int i = first; i <= last && rc == BS_OK;)
	{
		int j = i;
		uint64_t len = idx->frames[i].size;

		while (j < last && len + idx->frames[j + 1].size <= PACK_READ_BATCH)
			len += idx->frames[++j].size;
		rc = read_exact(read, ctx, idx->frames[i].offset, len, &batch, err);
		for (size_t off = 0; rc == BS_OK && i <= j; i++)
		{
			const pack_frame *f = &idx->frames[i];
			const char *data = batch.data + off;
			size_t size = (size_t) f->size;
			char sha[65];
			limited_sink ls = {0, f->raw_size, "frame", slice_take, s};

			off += size;
			digest_sha256_hex(data, size, sha);
			if (strcmp(sha, f->sha256) != 0)
			{
				rc = bad(err, "frames[%d] (offset %" PRIu64 ", %" PRIu64 " bytes) has SHA-256 %s, the footer says %s",
						 i, f->offset, f->size, sha, f->sha256);
				break;
			}
			if (idx->sealed)
			{
				if ((rc = crypt_open_unit(keys->keys, keys->nkeys, idx->key, f->offset, data, size, &opened, err)) != BS_OK)
					break;
				data = opened.data;
				size = opened.len;
			}
			if ((rc = decompress_all(idx->codec, data, size, &ls, err)) != BS_OK)
			{
				error_prefix(err, "frames[%d] (offset %" PRIu64 ")", i, f->offset);
				break;
			}
			if (ls.produced != f->raw_size)
			{
				rc = bad(err, "frames[%d] (offset %" PRIu64 ") holds %" PRIu64 " raw bytes, the footer says %" PRIu64,
						 i, f->offset, ls.produced, f->raw_size);
				break;
			}
		}
	}
	strbuf_free(&batch);
	strbuf_free(&opened);
	return rc;
}

int
pack_read_run(const pack_index *idx, uint32_t relid, pack_read_fn read, void *ctx, const pack_keys *keys,
			  codec_sink sink, void *sink_ctx, bs_error *err)
{
	const pack_run *run = pack_find_run(idx, relid);
	run_slice s;
	segment_summary sum;
	int rc;

	if (run == NULL)
		return error_set(err, ERRCODE_NOT_FOUND, "pack \"%s\" holds no run of relid %u", idx->key, relid);
	if (idx->sealed && (keys == NULL || keys->nkeys == 0))
		return error_set(err, ERRCODE_ENCRYPTION_KEY, "pack \"%s\" is encrypted, and no encryption key is configured",
						 idx->key);
	memset(&s, 0, sizeof(s));
	s.lo = run->raw_offset;
	s.hi = run->raw_offset + run->raw_len;
	s.sink = sink;
	s.sink_ctx = sink_ctx;
	segment_scan_init(&s.scan);
	rc = segment_scan_feed(&s.scan, SEGMENT_MAGIC, SEGMENT_MAGIC_LEN, err);
	if (rc == BS_OK)
		rc = read_frames(idx, run, read, ctx, keys, &s, err);
	if (rc == BS_OK && segment_scan_finish(&s.scan, &sum, err) != BS_OK)
		rc = error_prefix(err, "run of relid %u", relid);
	if (rc == BS_OK &&
		(sum.records != run->records || sum.first_commit_lsn != run->first_lsn ||
		 sum.last_end_lsn != run->last_end_lsn || sum.first_time != run->first_time ||
		 sum.last_time != run->last_time))
		rc = bad(err, "run of relid %u does not match its footer entry (%" PRIu64 " records, footer %" PRIu64 "; or their LSNs or times differ)",
				 relid, sum.records, run->records);
	/* Codes as they come: damage is ERRCODE_DATA_CORRUPTED, a failed read keeps the store's. */
	if (rc != BS_OK)
		return error_prefix(err, "pack \"%s\"", idx->key);
	return BS_OK;
}

int
pack_read_run_all(const pack_index *idx, uint32_t relid, pack_read_fn read, void *ctx, const pack_keys *keys,
				  strbuf *out, bs_error *err)
{
	strbuf_reset(out);
	if (pack_read_run(idx, relid, read, ctx, keys, append_sink, out, err) != BS_OK)
	{
		strbuf_reset(out);
		return BS_ERR;
	}
	return BS_OK;
}
