/* segfetch.c — the raw records of a manifest segment, from its own object or from its run in a pack (doc/design/format2.md 5 step 4b). */
#include "segfetch.h"
#include "lsn.h"
#include "object.h"
#include "pack.h"
#include "replmsg.h"
#include "segment.h"
#include "storage_crypt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cached_pack
{
	char *key;
	pack_index *idx;
} cached_pack;

struct segfetch
{
	cached_pack *packs;
	int npacks;
	int cap;
	int opened;					/* pack_open calls that succeeded */
};

segfetch *
segfetch_new(void)
{
	return xcalloc(1, sizeof(segfetch));
}

void
segfetch_free(segfetch *f)
{
	if (f == NULL)
		return;
	for (int i = 0; i < f->npacks; i++)
	{
		free(f->packs[i].key);
		pack_index_free(f->packs[i].idx);
	}
	free(f->packs);
	free(f);
}

int
segfetch_packs_opened(const segfetch *f)
{
	return f->opened;
}

uint64_t
segfetch_raw_size(const manifest_segment *s)
{
	return s->source == MANIFEST_SEGMENT_PACK ? SEGMENT_MAGIC_LEN + s->raw_size : s->raw_size;
}

/* Ranged reads of the pack, counting the stored bytes read. */
typedef struct counted_read
{
	pack_storage ps;
	uint64_t bytes;
} counted_read;

static int
counted_read_fn(void *ctx, uint64_t offset, uint64_t length, strbuf *out, bs_error *err)
{
	counted_read *c = ctx;

	if (pack_storage_read(&c->ps, offset, length, out, err) != BS_OK)
		return BS_ERR;
	c->bytes += out->len;
	return BS_OK;
}

/* The range of a segment, for messages. */
static const char *
seg_range(const manifest_segment *s, char *buf, size_t size)
{
	char a[LSN_BUFLEN],
		b[LSN_BUFLEN];

	snprintf(buf, size, "%s to %s", lsn_format(s->first_lsn, a), lsn_format(s->last_end_lsn, b));
	return buf;
}

/* The index of the pack s names: from the cache, or opened (and kept). */
static int
pack_index_of(segfetch *f, storage *raw, const pack_keys *keys, uint32_t relid, const manifest_segment *s,
			  counted_read *rd, const pack_index **out, bs_error *err)
{
	bool exists = false;
	storage_stat stat = {0, 0};
	pack_index *idx = NULL;
	char range[2 * LSN_BUFLEN + 8];

	*out = NULL;
	for (int i = 0; i < f->npacks; i++)
		if (strcmp(f->packs[i].key, s->key) == 0)
		{
			*out = f->packs[i].idx;
			return BS_OK;
		}
	if (storage_head(raw, s->key, &exists, &stat, err) != BS_OK)
		return error_prefix(err, "pack \"%s\"", s->key);
	if (!exists)
		return error_set(err, ERRCODE_NOT_FOUND, "pack \"%s\" is missing (it holds the changes of relid %" PRIu32
						 " from LSN %s)", s->key, relid, seg_range(s, range, sizeof(range)));
	if (pack_open(s->key, stat.size, counted_read_fn, rd, keys, &idx, err) != BS_OK)
		return BS_ERR;
	if (f->npacks == f->cap)
	{
		f->cap = f->cap ? f->cap * 2 : 8;
		f->packs = xrealloc(f->packs, (size_t) f->cap * sizeof(cached_pack));
	}
	f->packs[f->npacks].key = xstrdup(s->key);
	f->packs[f->npacks].idx = idx;
	f->npacks++;
	f->opened++;
	*out = idx;
	return BS_OK;
}

/* The pack's run of relid must be the manifest's segment. */
static int
check_run(const pack_index *idx, uint32_t relid, const manifest_segment *s, bs_error *err)
{
	const pack_run *r = pack_find_run(idx, relid);
	char range[2 * LSN_BUFLEN + 8],
		a[LSN_BUFLEN],
		b[LSN_BUFLEN];

	if (idx->seq_first != s->pack_seq)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "pack \"%s\" starts at sequence number %" PRIu64
						 ", but the manifest's segment of relid %" PRIu32 " names sequence %" PRIu64,
						 idx->key, idx->seq_first, relid, s->pack_seq);
	if (r == NULL)
		return error_set(err, ERRCODE_NOT_FOUND, "pack \"%s\" (seq %" PRIu64 ") holds no run of relid %" PRIu32
						 ": the manifest's segment from LSN %s is missing from it", idx->key, idx->seq_first, relid,
						 seg_range(s, range, sizeof(range)));
	if (r->raw_offset != s->raw_offset || r->raw_len != s->raw_size || r->records != s->records ||
		r->first_lsn != s->first_lsn || r->last_end_lsn != s->last_end_lsn ||
		replmsg_pgtime_to_unix(r->first_time) != s->first_time || replmsg_pgtime_to_unix(r->last_time) != s->last_time)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "pack \"%s\" (seq %" PRIu64 "): its run of relid %" PRIu32
						 " (raw %" PRIu64 "+%" PRIu64 ", %" PRIu64 " records, LSN %s to %s) is not the manifest's "
						 "segment (raw %" PRIu64 "+%" PRIu64 ", %" PRIu64 " records, LSN %s; or their times differ)",
						 idx->key, idx->seq_first, relid, r->raw_offset, r->raw_len, r->records,
						 lsn_format(r->first_lsn, a), lsn_format(r->last_end_lsn, b), s->raw_offset, s->raw_size,
						 s->records, seg_range(s, range, sizeof(range)));
	return BS_OK;
}

typedef struct count_sink
{
	storage_sink sink;
	void *ctx;
	uint64_t bytes;
} count_sink;

static int
count_sink_write(void *ctx, const void *data, size_t len, bs_error *err)
{
	count_sink *c = ctx;

	c->bytes += len;
	return c->sink ? c->sink(c->ctx, data, len, err) : BS_OK;
}

static int
read_pack_run(segfetch *f, storage *st, uint32_t relid, const manifest_segment *s, storage_sink sink, void *ctx,
			  segfetch_info *info, bs_error *err)
{
	storage *raw;
	uint8_t (*keyv)[CRYPT_KEY_SIZE];
	int nkeys;
	pack_keys keys = {NULL, NULL, 0};
	counted_read rd;
	count_sink cs = {sink, ctx, 0};
	const pack_index *idx;
	int rc;

	storage_crypt_unit_access(st, &raw, &keyv, &nkeys);
	keys.keys = (const uint8_t (*)[CRYPT_KEY_SIZE]) keyv;
	keys.nkeys = nkeys;
	memset(&rd, 0, sizeof(rd));
	rd.ps.st = raw;
	rd.ps.key = s->key;
	rc = pack_index_of(f, raw, nkeys ? &keys : NULL, relid, s, &rd, &idx, err);
	if (rc == BS_OK)
		rc = check_run(idx, relid, s, err);
	/* The records as a segment object holds them: the magic, then the run. */
	if (rc == BS_OK)
		rc = count_sink_write(&cs, SEGMENT_MAGIC, SEGMENT_MAGIC_LEN, err);
	if (rc == BS_OK)
		rc = pack_read_run(idx, relid, counted_read_fn, &rd, nkeys ? &keys : NULL, count_sink_write, &cs, err);
	storage_crypt_unit_keys_free(keyv, nkeys);
	info->stored_size = rd.bytes;
	info->raw_size = cs.bytes;
	return rc;
}

int
segfetch_read(segfetch *f, storage *st, uint32_t relid, const manifest_segment *s, storage_sink sink, void *ctx,
			  segfetch_info *info, bs_error *err)
{
	object_info oi;
	int rc;

	memset(info, 0, sizeof(*info));
	memset(&oi, 0, sizeof(oi));
	if (s->source == MANIFEST_SEGMENT_PACK)
		return read_pack_run(f, st, relid, s, sink, ctx, info, err);
	rc = object_get(st, s->key, s->sha256, sink, ctx, &oi, err);
	info->stored_size = oi.stored_size;
	info->raw_size = oi.raw_size;
	return rc;
}

int
segfetch_read_all(segfetch *f, storage *st, uint32_t relid, const manifest_segment *s, strbuf *out,
				  segfetch_info *info, bs_error *err)
{
	strbuf_reset(out);
	if (segfetch_read(f, st, relid, s, storage_sink_strbuf, out, info, err) != BS_OK)
	{
		strbuf_reset(out);
		return BS_ERR;
	}
	return BS_OK;
}
