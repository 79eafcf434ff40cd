/* fold_case.h — the packs shared by test_fold.c and test_packcat.c: the main case's events, a schema_unknown window, and packs built in memory. */
#ifndef BACKSTOP_FOLD_CASE_H
#define BACKSTOP_FOLD_CASE_H

#include "digest.h"
#include "pack.h"
#include "records.h"
#include "strbuf.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T 16400
#define D 16500

/* The shared objects, in events and in the expected manifests alike. */
#define COL_ID "{\"name\":\"id\",\"type_oid\":23,\"typmod\":-1,\"type\":\"integer\",\"key\":true,\"not_null\":true,\"missing\":null}"
#define COL_PAD "{\"name\":\"pad\",\"type_oid\":25,\"typmod\":-1,\"type\":\"text\",\"key\":false,\"not_null\":false,\"missing\":null}"
#define L0 "{\"id\":0,\"from_lsn\":\"0/1000000\",\"replident\":\"d\",\"columns\":[" COL_ID "]}"
#define L1 "{\"id\":1,\"from_lsn\":\"0/3200000\",\"replident\":\"f\",\"columns\":[" COL_ID "," COL_PAD "]}"
#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
/* Members sorted: the pack footer is written with sorted members, so an object that keeps its
 * text (a base's definition) comes back sorted. */
#define DEF "{\"columns\":[{\"default\":null,\"name\":\"id\",\"not_null\":true,\"type\":\"integer\"}],\"constraints\":[],\"indexes\":[]}"
#define CHUNK(rel, lsn) "{\"key\":\"tables/" rel "/base/" lsn "/chunk-000000.bso\",\"sha256\":\"" SHA_A "\",\"size\":100,\"raw_size\":200,\"rows\":5}"
#define B0(rel) "{\"lsn\":\"0/1000100\",\"time\":\"2026-12-01T10:00:00.000000Z\",\"rows\":5,\"layout_id\":0,\"schema_key\":null,\"definition\":" DEF ",\"chunks\":[" CHUNK(rel, "0000000001000100") "]}"
#define B1 "{\"lsn\":\"0/8000000\",\"time\":\"2026-12-01T11:00:00.000000Z\",\"rows\":7,\"layout_id\":1,\"schema_key\":null,\"definition\":null,\"chunks\":[" CHUNK("16400", "0000000008000000") "]}"
#define EV(kind, lsn, rel) "{\"kind\":\"" kind "\",\"lsn\":\"" lsn "\",\"relid\":" rel

typedef struct run_spec
{
	uint32_t relid;
	int nrec;
	uint64_t lsn;
} run_spec;

/*
 * A pack of seq with events (NULL-terminated, or ev_n of them when ev_n >= 0) and runs (by relid),
 * chained to prev (NULL: none), opened; sha (NULL: not wanted) gets the SHA-256 of its bytes.
 */
static inline pack_index *
fold_case_pack(uint64_t seq, uint64_t seal, const char *const *events, int ev_n, const run_spec *runs, int nruns,
			   const char *prev, char *sha)
{
	strbuf pack = STRBUF_INIT,
			raw = STRBUF_INIT;
	pack_meta meta = {seq, seq, seal, REC_TIME, NULL, prev};
	pack_writer *w;
	pack_index *idx;
	char key[64];
	bs_error err;

	snprintf(key, sizeof(key), "log/%016" PRIX64 ".bsp", seq);
	if (pack_writer_open(key, 0, CODEC_ZSTD, 0, NULL, &pack, &w, &err) != BS_OK)
		goto fail;
	for (int i = 0; events && (ev_n >= 0 ? i < ev_n : events[i] != NULL); i++)
		if (pack_writer_add_event(w, events[i], strlen(events[i]), &err) != BS_OK)
			goto fail;
	for (int i = 0; i < nruns; i++)
	{
		strbuf_reset(&raw);
		make_run(&raw, runs[i].nrec, runs[i].lsn, 0, 0);
		if (pack_writer_add_run(w, runs[i].relid, raw.data, raw.len, &pack, &err) != BS_OK)
			goto fail;
	}
	if (pack_writer_finish(w, &meta, &pack, NULL, &err) != BS_OK)
		goto fail;
	pack_writer_free(w);
	if (pack_open_buffer(key, pack.data, pack.len, NULL, &idx, &err) != BS_OK)
		goto fail;
	if (sha)
		digest_sha256_hex(pack.data, pack.len, sha);
	strbuf_free(&pack);
	strbuf_free(&raw);
	return idx;
fail:
	printf("# building pack %" PRIu64 ": %s\n", seq, err.message);
	exit(2);
}

/* The four packs of the main case: T renamed, re-based through a gap, expired; D dropped. */
static const char *const ev1[] = {
	EV("table", "0/1000000", "16400") ",\"schema\":\"public\",\"name\":\"t\",\"status\":\"active\",\"finding\":null}",
	EV("layout", "0/1000000", "16400") ",\"layout\":" L0 "}",
	EV("table", "0/1000000", "16500") ",\"schema\":\"public\",\"name\":\"d\",\"status\":\"active\",\"finding\":null}",
	EV("layout", "0/1000000", "16500") ",\"layout\":" L0 "}",
	EV("base", "0/1000100", "16400") ",\"base\":" B0("16400") "}",
	EV("base", "0/1000100", "16500") ",\"base\":" B0("16500") "}",
	NULL
};
static const char *const ev2[] = {
	EV("name", "0/3100000", "16400") ",\"from_lsn\":\"0/3100000\",\"schema\":\"app\",\"name\":\"t2\"}",
	EV("layout", "0/3200000", "16400") ",\"layout\":" L1 "}",
	EV("rebase_requested", "0/3200000", "16400") ",\"at\":\"0/3200000\"}",
	EV("ddl_capture_from", "0/3200000", "16400") ",\"from\":\"0/3200000\"}",
	EV("drop", "0/3500000", "16500") ",\"dropped_at_lsn\":\"0/3500000\",\"drop_lsn\":\"0/3400000\"}",
	EV("existed_to", "0/4800000", "16400") ",\"existed_to\":\"0/4800000\"}",
	NULL
};
static const char *const ev3[] = {
	EV("gap", "0/5000000", "16400") ",\"from\":\"0/5000000\",\"to\":\"FFFFFFFF/FFFFFFFF\"}",
	NULL
};
static const char *const ev4[] = {
	EV("base", "0/8000000", "16400") ",\"base\":" B1 "}",
	EV("gap_closed", "0/8000000", "16400") ",\"at\":\"0/8000000\"}",
	EV("rebase_requested", "0/8000000", "16400") ",\"at\":null}",
	EV("expired", "0/8000000", "16400") ",\"expired_before\":\"0/1000100\",\"expired_time\":\"2026-12-01T12:00:00.000000Z\"}",
	NULL
};

/* A schema_unknown window left open, and a partition change. */
static const char *const ev_su1[] = {
	EV("table", "0/1000000", "16400") ",\"schema\":\"public\",\"name\":\"t\",\"status\":\"active\",\"finding\":null}",
	EV("layout", "0/1000000", "16400") ",\"layout\":" L0 "}",
	EV("base", "0/1000100", "16400") ",\"base\":" B0("16400") "}",
	EV("partition_change", "0/1800000", "16400") ",\"at\":\"0/1800000\"}",
	EV("schema_unknown", "0/2000000", "16400") ",\"from\":\"0/2000000\",\"to\":\"FFFFFFFF/FFFFFFFF\"}",
	NULL
};
#endif
