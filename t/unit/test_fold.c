/* test_fold.c — unit tests of the fold: packs built in memory, folded per table, compared with the format-2 manifest they stand for; damage refused. */
#include "fold.h"
#include "fold_case.h"
#include "manifest_json.h"
#include "pack.h"
#include "records.h"
#include "segment.h"
#include "strbuf.h"
#include "tap.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Seconds from the Unix epoch to PostgreSQL's, in microseconds. */
#define PG_EPOCH_US INT64_C(946684800000000)

/* A pack of seq with these events (NULL-terminated) and runs (by relid), opened. */
static pack_index *
mkpack(uint64_t seq, uint64_t seal, const char *const *events, const run_spec *runs, int nruns)
{
	return fold_case_pack(seq, seal, events, -1, runs, nruns, NULL, NULL);
}

/* The segment a run of the table in idx stands for. */
static void
add_pack_segment(manifest *m, const pack_index *idx, int nrec, uint64_t lsn)
{
	const pack_run *r = pack_find_run(idx, m->relid);
	manifest_segment s;

	memset(&s, 0, sizeof(s));
	s.source = MANIFEST_SEGMENT_PACK;
	s.key = idx->key;
	s.pack_seq = idx->seq_first;
	s.raw_offset = r ? r->raw_offset : 0;
	s.raw_size = r ? r->raw_len : 0;
	s.first_lsn = lsn;
	s.last_end_lsn = lsn + (uint64_t) (nrec - 1) * 0x100 + 0x30;
	s.first_time = REC_TIME + PG_EPOCH_US;
	s.last_time = REC_TIME + PG_EPOCH_US + (int64_t) (nrec - 1) * 1000;
	s.records = (uint64_t) nrec;
	manifest_add_segment(m, &s);
}

static const char expect_t[] =
	"{\"format\":2,\"generation\":0,\"relid\":16400,\"schema\":\"app\",\"name\":\"t2\",\"status\":\"active\","
	"\"existed_to\":\"0/4800000\",\"ddl_capture_from\":\"0/3200000\","
	"\"names\":[{\"from_lsn\":\"0/0\",\"schema\":\"public\",\"name\":\"t\"},{\"from_lsn\":\"0/3100000\",\"schema\":\"app\",\"name\":\"t2\"}],"
	"\"finding\":null,\"expired_before\":\"0/1000100\",\"expired_time\":\"2026-12-01T12:00:00.000000Z\","
	"\"archived_to\":\"0/9000000\",\"layouts\":[" L0 "," L1 "],\"bases\":[" B0("16400") "," B1 "],\"segments\":[],"
	"\"gaps\":[{\"from\":\"0/5000000\",\"to\":\"0/8000000\"}]}";
static const char expect_d[] =
	"{\"format\":2,\"generation\":0,\"relid\":16500,\"schema\":\"public\",\"name\":\"d\",\"status\":\"dropped\","
	"\"dropped_at_lsn\":\"0/3500000\",\"drop_lsn\":\"0/3400000\",\"finding\":null,"
	"\"archived_to\":\"0/3500000\",\"layouts\":[" L0 "],\"bases\":[" B0("16500") "],\"segments\":[],\"gaps\":[]}";

/* Fold relid over packs and compare with the format-2 manifest expect plus its pack segments. */
static void
compare(const char *what, uint32_t relid, const pack_index *const *packs, int npacks, const char *expect,
		manifest *want)
{
	manifest *got = NULL;
	bs_error err;
	char *a = NULL,
		*b = NULL;
	int rc = fold_table(relid, packs, npacks, &got, &err);

	ok(rc == BS_OK, "%s: folded", what);
	if (rc != BS_OK)
		printf("#   %s\n", err.message);
	(void) expect;
	if (got)
		a = manifest_to_json(got);
	b = manifest_to_json(want);
	ok(a && b && strcmp(a, b) == 0, "%s: the fold is the format-2 manifest, byte for byte (manifest_to_json)", what);
	if (a && b && strcmp(a, b) != 0)
		printf("#   got:\n%s\n#   want:\n%s\n", a, b);
	free(a);
	free(b);
	manifest_free(got);
}

static manifest *
expected(const char *json)
{
	manifest *m;
	bs_error err;

	if (manifest_from_json(json, strlen(json), &m, &err) != BS_OK)
	{
		printf("# expected manifest: %s\n", err.message);
		exit(2);
	}
	return m;
}

static void
test_fold_equals_manifest(void)
{
	const run_spec r1[] = {{T, 3, 0x2000000}, {D, 2, 0x2100000}};
	const run_spec r2[] = {{T, 2, 0x4000000}};
	const run_spec r4[] = {{T, 1, 0x8100000}};
	pack_index *p[4];
	manifest *want;

	p[0] = mkpack(1, 0x3000000, ev1, r1, 2);
	p[1] = mkpack(2, 0x5000000, ev2, r2, 1);
	p[2] = mkpack(3, 0x7000000, ev3, NULL, 0);
	p[3] = mkpack(4, 0x9000000, ev4, r4, 1);

	want = expected(expect_t);
	add_pack_segment(want, p[0], 3, 0x2000000);
	add_pack_segment(want, p[1], 2, 0x4000000);
	add_pack_segment(want, p[3], 1, 0x8100000);
	compare("renamed, re-based through a gap, expired", T, (const pack_index *const *) p, 4, expect_t, want);
	manifest_free(want);

	want = expected(expect_d);
	add_pack_segment(want, p[0], 2, 0x2100000);
	compare("dropped", D, (const pack_index *const *) p, 4, expect_d, want);
	manifest_free(want);

	/* Cut after pack 1: the fold of a prefix is the manifest as of that seal. */
	{
		static const char expect_t1[] =
			"{\"format\":2,\"generation\":0,\"relid\":16400,\"schema\":\"public\",\"name\":\"t\",\"status\":\"active\","
			"\"finding\":null,\"archived_to\":\"0/3000000\",\"layouts\":[" L0 "],\"bases\":[" B0("16400") "],"
			"\"segments\":[],\"gaps\":[]}";

		want = expected(expect_t1);
		add_pack_segment(want, p[0], 3, 0x2000000);
		compare("as of seq 1", T, (const pack_index *const *) p, 1, expect_t1, want);
		manifest_free(want);
	}
	/* During the open gap archived_to stays at the gap's start. */
	{
		manifest *m = NULL;
		bs_error err;

		ok(fold_table(T, (const pack_index *const *) p, 3, &m, &err) == BS_OK && m->archived_to == 0x5000000 &&
		   manifest_open_gap(m) != NULL, "in an open gap, archived_to stays where the gap began");
		manifest_free(m);
	}
	for (int i = 0; i < 4; i++)
	{
		bs_error err;

		ok(fold_check_pack(p[i], &err) == BS_OK, "fold_check_pack accepts pack %d", i + 1);
		pack_index_free(p[i]);
	}
}

/* ev_su1 (fold_case.h) and ev_su2: schema_unknown windows (one merged into the open one, then closed)
 * and partition changes: the format-2 manifest's schema_unknown and partition_changes. */
static const char *const ev_su2[] = {
	EV("schema_unknown", "0/4000000", "16400") ",\"from\":\"0/1000200\",\"to\":\"0/2100000\"}",
	EV("schema_unknown_closed", "0/4000000", "16400") ",\"at\":\"0/4000000\"}",
	EV("partition_change", "0/4100000", "16400") ",\"at\":\"0/4100000\"}",
	NULL
};

static void
test_schema_unknown_and_partitions(void)
{
	static const char expect_su[] =
		"{\"format\":2,\"generation\":0,\"relid\":16400,\"schema\":\"public\",\"name\":\"t\",\"status\":\"active\","
		"\"partition_changes\":[\"0/1800000\",\"0/4100000\"],\"finding\":null,\"archived_to\":\"0/5000000\","
		"\"layouts\":[" L0 "],\"bases\":[" B0("16400") "],\"segments\":[],\"gaps\":[],"
		"\"schema_unknown\":[{\"from\":\"0/1000200\",\"to\":\"0/4000000\"}]}";
	const run_spec r1[] = {{T, 1, 0x2000000}};
	pack_index *p[2];
	manifest *want,
			   *m = NULL;
	bs_error err;

	p[0] = mkpack(1, 0x3000000, ev_su1, r1, 1);
	p[1] = mkpack(2, 0x5000000, ev_su2, NULL, 0);
	want = expected(expect_su);
	add_pack_segment(want, p[0], 1, 0x2000000);
	compare("schema_unknown windows and partition changes", T, (const pack_index *const *) p, 2, expect_su, want);
	manifest_free(want);
	ok(fold_table(T, (const pack_index *const *) p, 1, &m, &err) == BS_OK && manifest_open_schema_gap(m) != NULL &&
	   m->npartition_changes == 1, "as of seq 1: the window open, one partition change");
	manifest_free(m);
	ok(fold_check_pack(p[1], &err) == BS_OK, "fold_check_pack accepts the new kinds");
	pack_index_free(p[0]);
	pack_index_free(p[1]);
}

/*
 * The kinds of what the archiver changes in place (format2.md 5 step 4a): a skipped table made
 * active again by a base copy (status), a layout changed in place (layout_replaced: a column
 * marked missing_unknown, from_lsn lowered), a name replaced and one inserted before the newest
 * (name_replaced); and an expiry that removes, as expire_apply does, the bases below
 * expired_before and the segments ending at or below it.
 */
#define COL_PAD_MU "{\"name\":\"pad\",\"type_oid\":25,\"typmod\":-1,\"type\":\"text\",\"key\":false,\"not_null\":false,\"missing\":null,\"missing_unknown\":true}"
#define L1_LOW "{\"id\":1,\"from_lsn\":\"0/3100000\",\"replident\":\"f\",\"columns\":[" COL_ID "," COL_PAD_MU "]}"
#define B2 "{\"lsn\":\"0/3000000\",\"time\":\"2026-12-01T10:30:00.000000Z\",\"rows\":6,\"layout_id\":0,\"schema_key\":null,\"definition\":null,\"chunks\":[" CHUNK("16400", "0000000003000000") "]}"
static const char *const ev_inplace[] = {
	EV("skipped", "0/2000000", "16400") ",\"finding\":\"why\"}",
	EV("base", "0/3000000", "16400") ",\"base\":" B2 "}",
	EV("status", "0/3000000", "16400") ",\"status\":\"active\",\"finding\":\"why\"}",
	EV("layout", "0/3200000", "16400") ",\"layout\":" L1 "}",
	EV("layout_replaced", "0/3200000", "16400") ",\"layout\":" L1_LOW "}",
	EV("name", "0/3300000", "16400") ",\"from_lsn\":\"0/3300000\",\"schema\":\"app\",\"name\":\"t2\"}",
	EV("name_replaced", "0/3300000", "16400") ",\"from_lsn\":\"0/3300000\",\"schema\":\"app\",\"name\":\"t3\"}",
	EV("name_replaced", "0/3300000", "16400") ",\"from_lsn\":\"0/3250000\",\"schema\":\"app\",\"name\":\"tx\"}",
	EV("expired", "0/3300000", "16400") ",\"expired_before\":\"0/3000000\",\"expired_time\":\"2026-12-01T12:00:00.000000Z\"}",
	NULL
};

static void
test_in_place_kinds(void)
{
	static const char expect_ip[] =
		"{\"format\":2,\"generation\":0,\"relid\":16400,\"schema\":\"app\",\"name\":\"t3\",\"status\":\"active\","
		"\"names\":[{\"from_lsn\":\"0/0\",\"schema\":\"public\",\"name\":\"t\"},"
		"{\"from_lsn\":\"0/3250000\",\"schema\":\"app\",\"name\":\"tx\"},{\"from_lsn\":\"0/3300000\",\"schema\":\"app\",\"name\":\"t3\"}],"
		"\"finding\":\"why\",\"expired_before\":\"0/3000000\",\"expired_time\":\"2026-12-01T12:00:00.000000Z\","
		"\"archived_to\":\"0/5000000\",\"layouts\":[" L0 "," L1_LOW "],\"bases\":[" B2 "],\"segments\":[],\"gaps\":[]}";
	const run_spec r1[] = {{T, 3, 0x2000000}};
	const run_spec r2[] = {{T, 1, 0x4000000}};
	pack_index *p[2];
	manifest *want,
			   *m = NULL;
	bs_error err;

	p[0] = mkpack(1, 0x3000000, ev1, r1, 1);
	p[1] = mkpack(2, 0x5000000, ev_inplace, r2, 1);
	want = expected(expect_ip);
	/* Pack 1's run ends below expired_before: expired with the base; pack 2's is kept. */
	add_pack_segment(want, p[1], 1, 0x4000000);
	compare("status, layout_replaced, name_replaced, expired (bases and segments below it removed)", T,
			(const pack_index *const *) p, 2, expect_ip, want);
	manifest_free(want);
	ok(fold_table(T, (const pack_index *const *) p, 1, &m, &err) == BS_OK && m->nsegments == 1 && m->nbases == 1,
	   "before the expiry: pack 1's segment and base B0 are there");
	manifest_free(m);
	ok(fold_check_pack(p[1], &err) == BS_OK, "fold_check_pack accepts the new kinds");
	pack_index_free(p[0]);
	pack_index_free(p[1]);
}

/* One damaged sequence: the fold of relid refused with a message holding each of needles. */
typedef struct damage_case
{
	const char *what;
	uint32_t relid;
	const char *const *ev[2];
	run_spec run[2];
	uint64_t seq[2];
	uint64_t seal[2];
	const char *code;
	const char *needle[3];
} damage_case;

#define TABLE_T EV("table", "0/1000000", "16400") ",\"schema\":\"public\",\"name\":\"t\",\"status\":\"active\",\"finding\":null}"
#define LAYOUT_T EV("layout", "0/1000000", "16400") ",\"layout\":" L0 "}"

static const char *const ev_ok[] = {TABLE_T, LAYOUT_T, NULL};
static const char *const ev_back[] = {TABLE_T, EV("layout", "0/0FFFFFF", "16400") ",\"layout\":" L0 "}", NULL};
static const char *const ev_late[] = {EV("existed_to", "0/0900000", "16400") ",\"existed_to\":\"0/900000\"}", NULL};
static const char *const ev_dup[] = {TABLE_T, TABLE_T, NULL};
static const char *const ev_reuse[] = {TABLE_T, LAYOUT_T, LAYOUT_T, NULL};
static const char *const ev_before[] = {LAYOUT_T, NULL};
static const char *const ev_unknown[] = {TABLE_T, EV("existed_to", "0/2000000", "16400") ",\"existed_to\":\"0/2000000\",\"extra\":1}", NULL};
static const char *const ev_badbase[] = {TABLE_T, LAYOUT_T, EV("base", "0/1000100", "16400") ",\"base\":{\"lsn\":\"0/1000100\",\"time\":\"2026-12-01T10:00:00.000000Z\",\"rows\":\"5\",\"layout_id\":0,\"schema_key\":null,\"definition\":null,\"chunks\":[]}}", NULL};
static const char *const ev_nolayout[] = {TABLE_T, EV("base", "0/1000100", "16400") ",\"base\":" B0("16400") "}", NULL};
static const char *const ev_foreignkey[] = {TABLE_T, LAYOUT_T, EV("base", "0/1000100", "16400") ",\"base\":" B0("16500") "}", NULL};
static const char *const ev_closed[] = {TABLE_T, EV("gap_closed", "0/2000000", "16400") ",\"at\":\"0/2000000\"}", NULL};
static const char *const ev_drop[] = {TABLE_T, EV("drop", "0/2000000", "16400") ",\"dropped_at_lsn\":\"0/2000000\",\"drop_lsn\":null}", EV("name", "0/2000000", "16400") ",\"from_lsn\":\"0/2000000\",\"schema\":\"s\",\"name\":\"n\"}", NULL};
static const char *const ev_archive[] = {TABLE_T, EV("existed_to", "0/2000000", "0") ",\"existed_to\":\"0/2000000\"}", NULL};
static const char *const ev_status[] = {EV("table", "0/1000000", "16400") ",\"schema\":\"public\",\"name\":\"t\",\"status\":\"dropped\",\"finding\":null}", NULL};
static const char *const ev_gaps[] = {TABLE_T, EV("gap", "0/2000000", "16400") ",\"from\":\"0/2000000\",\"to\":\"FFFFFFFF/FFFFFFFF\"}", EV("gap", "0/3000000", "16400") ",\"from\":\"0/3000000\",\"to\":\"0/4000000\"}", NULL};
static const char *const ev_other[] = {TABLE_T, EV("skipped", "0/2000000", "16500") ",\"finding\":7}", NULL};

static const char *const ev_su_twice[] = {TABLE_T, EV("schema_unknown", "0/2000000", "16400") ",\"from\":\"0/2000000\",\"to\":\"FFFFFFFF/FFFFFFFF\"}", EV("schema_unknown", "0/3000000", "16400") ",\"from\":\"0/2800000\",\"to\":\"FFFFFFFF/FFFFFFFF\"}", NULL};
static const char *const ev_su_closed[] = {TABLE_T, EV("schema_unknown_closed", "0/2000000", "16400") ",\"at\":\"0/2000000\"}", NULL};
static const char *const ev_su_early[] = {TABLE_T, EV("schema_unknown", "0/2000000", "16400") ",\"from\":\"0/2000000\",\"to\":\"FFFFFFFF/FFFFFFFF\"}", EV("schema_unknown_closed", "0/2000000", "16400") ",\"at\":\"0/2000000\"}", NULL};
static const char *const ev_su_empty[] = {TABLE_T, EV("schema_unknown", "0/2000000", "16400") ",\"from\":\"0/2000000\",\"to\":\"0/2000000\"}", NULL};
static const char *const ev_pc_back[] = {TABLE_T, EV("partition_change", "0/2000000", "16400") ",\"at\":\"0/2000000\"}", EV("partition_change", "0/2100000", "16400") ",\"at\":\"0/2000000\"}", NULL};
static const char *const ev_pc_zero[] = {TABLE_T, EV("partition_change", "0/2000000", "16400") ",\"at\":\"0/0\"}", NULL};
#define BASE_T EV("base", "0/1000100", "16400") ",\"base\":" B0("16400") "}"
static const char *const ev_st_same[] = {TABLE_T, EV("status", "0/2000000", "16400") ",\"status\":\"active\",\"finding\":null}", NULL};
static const char *const ev_st_nofinding[] = {TABLE_T, EV("status", "0/2000000", "16400") ",\"status\":\"skipped\",\"finding\":null}", NULL};
static const char *const ev_st_dropped[] = {TABLE_T, EV("status", "0/2000000", "16400") ",\"status\":\"dropped\",\"finding\":null}", NULL};
static const char *const ev_st_missing[] = {TABLE_T, EV("status", "0/2000000", "16400") ",\"status\":\"active\"}", NULL};
static const char *const ev_st_extra[] = {TABLE_T, EV("status", "0/2000000", "16400") ",\"status\":\"active\",\"finding\":\"x\",\"drop_lsn\":null}", NULL};
static const char *const ev_st_drop[] = {TABLE_T, EV("drop", "0/2000000", "16400") ",\"dropped_at_lsn\":\"0/2000000\",\"drop_lsn\":null}", EV("status", "0/2000000", "16400") ",\"status\":\"active\",\"finding\":\"x\"}", NULL};
static const char *const ev_lr_none[] = {TABLE_T, LAYOUT_T, EV("layout_replaced", "0/2000000", "16400") ",\"layout\":" L1 "}", NULL};
static const char *const ev_lr_decode[] = {TABLE_T, LAYOUT_T, EV("layout_replaced", "0/2000000", "16400") ",\"layout\":{\"id\":0,\"from_lsn\":\"0/1000000\",\"replident\":\"f\",\"columns\":[" COL_ID "]}}", NULL};
static const char *const ev_lr_cols[] = {TABLE_T, LAYOUT_T, EV("layout_replaced", "0/2000000", "16400") ",\"layout\":{\"id\":0,\"from_lsn\":\"0/1000000\",\"replident\":\"d\",\"columns\":[" COL_ID "," COL_PAD "]}}", NULL};
static const char *const ev_lr_raise[] = {TABLE_T, LAYOUT_T, EV("layout_replaced", "0/2000000", "16400") ",\"layout\":{\"id\":0,\"from_lsn\":\"0/1000001\",\"replident\":\"d\",\"columns\":[" COL_ID "]}}", NULL};
static const char *const ev_lr_below[] = {TABLE_T, LAYOUT_T, EV("layout", "0/3200000", "16400") ",\"layout\":" L1 "}", EV("layout_replaced", "0/3200000", "16400") ",\"layout\":{\"id\":1,\"from_lsn\":\"0/0FFFFFF\",\"replident\":\"f\",\"columns\":[" COL_ID "," COL_PAD "]}}", NULL};
static const char *const ev_lr_same[] = {TABLE_T, LAYOUT_T, EV("layout_replaced", "0/2000000", "16400") ",\"layout\":" L0 "}", NULL};
static const char *const ev_nr_same[] = {TABLE_T, EV("name", "0/2000000", "16400") ",\"from_lsn\":\"0/2000000\",\"schema\":\"app\",\"name\":\"t2\"}", EV("name_replaced", "0/2000000", "16400") ",\"from_lsn\":\"0/0\",\"schema\":\"public\",\"name\":\"t\"}", NULL};
static const char *const ev_nr_empty[] = {TABLE_T, EV("name_replaced", "0/2000000", "16400") ",\"from_lsn\":\"0/1000000\",\"schema\":\"\",\"name\":\"t\"}", NULL};
static const char *const ev_ex_nobase[] = {TABLE_T, LAYOUT_T, EV("expired", "0/2000000", "16400") ",\"expired_before\":\"0/1000100\",\"expired_time\":\"2026-12-01T12:00:00.000000Z\"}", NULL};
static const char *const ev_ex_between[] = {TABLE_T, LAYOUT_T, BASE_T, EV("expired", "0/2000000", "16400") ",\"expired_before\":\"0/1000000\",\"expired_time\":\"2026-12-01T12:00:00.000000Z\"}", NULL};
static const char *const ev_ex_past[] = {TABLE_T, LAYOUT_T, BASE_T, EV("expired", "0/2000000", "16400") ",\"expired_before\":\"0/2000000\",\"expired_time\":\"2026-12-01T12:00:00.000000Z\"}", NULL};
static const char *const ev_ex_back[] = {TABLE_T, LAYOUT_T, BASE_T, EV("base", "0/3000000", "16400") ",\"base\":" B2 "}", EV("expired", "0/3000000", "16400") ",\"expired_before\":\"0/3000000\",\"expired_time\":\"2026-12-01T12:00:00.000000Z\"}", EV("expired", "0/3000000", "16400") ",\"expired_before\":\"0/1000100\",\"expired_time\":\"2026-12-01T12:00:00.000000Z\"}", NULL};

static const damage_case damage[] = {
	{"a status event that changes nothing", T, {ev_st_same, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "event 1 (\"status\" at 0/2000000)", "changes neither the table's status nor its finding"}},
	{"status skipped without a finding", T, {ev_st_nofinding, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "\"finding\" must be a string for status \"skipped\"", NULL}},
	{"status dropped (only the drop event drops)", T, {ev_st_dropped, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "\"status\" must be \"active\" or \"skipped\"", NULL}},
	{"a status event without its finding", T, {ev_st_missing, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "member \"finding\" is missing", NULL}},
	{"a status event with an unknown member", T, {ev_st_extra, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "unknown member \"drop_lsn\"", NULL}},
	{"a status event after the drop", T, {ev_st_drop, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "event 2 (\"status\" at 0/2000000)", "after the table's drop"}},
	{"a layout_replaced of an id never defined", T, {ev_lr_none, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "event 2 (\"layout_replaced\" at 0/2000000)", "replaces layout 1, which no event defined"}},
	{"a layout_replaced changing the replident", T, {ev_lr_decode, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "changes how records of layout 0 decode", NULL}},
	{"a layout_replaced adding a column", T, {ev_lr_cols, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "changes how records of layout 0 decode", NULL}},
	{"a layout_replaced raising from_lsn", T, {ev_lr_raise, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "raises layout 0's from_lsn from 0/1000000", NULL}},
	{"a layout_replaced moving below the layout before it", T, {ev_lr_below, NULL}, {{0}}, {1, 0}, {0x4000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "moves layout 1's from_lsn below layout 0's, 0/1000000", NULL}},
	{"a layout_replaced that changes nothing", T, {ev_lr_same, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "changes nothing in layout 0", NULL}},
	{"a name_replaced that changes nothing", T, {ev_nr_same, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "event 2 (\"name_replaced\" at 0/2000000)", "changes nothing"}},
	{"a name_replaced with an empty schema", T, {ev_nr_empty, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "has an empty schema or name", NULL}},
	{"an expiry of a table without a base", T, {ev_ex_nobase, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "event 2 (\"expired\" at 0/2000000)", "without a base copy"}},
	{"an expiry from a point that is no base's", T, {ev_ex_between, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "\"expired_before\" is no base copy's LSN", NULL}},
	{"an expiry past the newest base", T, {ev_ex_past, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "\"expired_before\" is no base copy's LSN", NULL}},
	{"an expiry going back", T, {ev_ex_back, NULL}, {{0}}, {1, 0}, {0x4000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "event 5 (\"expired\" at 0/3000000)", "goes below the table's previous one"}},
	{"a schema_unknown window opened while one is open", T, {ev_su_twice, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "event 2 (\"schema_unknown\" at 0/3000000)", "while one is open"}},
	{"a schema_unknown window closed while none is open", T, {ev_su_closed, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "closes a schema_unknown window while none is open", NULL}},
	{"a schema_unknown window closed at its start", T, {ev_su_early, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "not above the open window's start", NULL}},
	{"an empty schema_unknown window", T, {ev_su_empty, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "\"to\" is not above from", NULL}},
	{"a partition change not above the previous one", T, {ev_pc_back, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "not above the table's previous partition change", NULL}},
	{"a partition change at 0/0", T, {ev_pc_zero, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "\"at\" must be above 0/0", NULL}},
	{"an event whose LSN goes back in a pack", T, {ev_back, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"pack \"log/0000000000000001.bsp\" (seq 1), relid 16400", "event 1 (\"layout\" at 0/FFFFFF)", "goes back in LSN order"}},
	{"a table's event going back across packs", T, {ev_ok, ev_late}, {{0}}, {1, 2}, {0x3000000, 0x4000000},
	 ERRCODE_DATA_CORRUPTED, {"(seq 2), relid 16400", "table's previous event is at 0/1000000", NULL}},
	{"a duplicate first sight", T, {ev_dup, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "second first sight", NULL}},
	{"a layout id reused", T, {ev_reuse, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "reuses layout id 0", NULL}},
	{"an event before the first sight", T, {ev_before, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "before the table's first sight", NULL}},
	{"an unknown member", T, {ev_unknown, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "unknown member \"extra\"", NULL}},
	{"a base with a member of the wrong type (the manifest codec's reader)", T, {ev_badbase, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "member \"base.rows\" must be an integer", NULL}},
	{"a base of a layout never defined", T, {ev_nolayout, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "layout 0, which no event defined", NULL}},
	{"a base chunk under another table (manifest_validate)", T, {ev_foreignkey, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"relid 16400: the fold of packs seq 1 to 1", "\"bases[0].chunks[0].key\" is not a storage key under", NULL}},
	{"a gap closed while none is open", T, {ev_closed, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "none is open", NULL}},
	{"an event after the drop", T, {ev_drop, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "after the table's drop", NULL}},
	{"an archive-wide event", T, {ev_archive, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 0", "archive-wide", NULL}},
	{"a first sight with a status it cannot have", T, {ev_status, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "\"status\" must be \"active\" or \"skipped\"", NULL}},
	{"a gap opened while one is open", T, {ev_gaps, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "while one is open", NULL}},
	{"a run after its pack's seal", T, {ev_ok, NULL}, {{T, 2, 0x2FFFF00}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "run (0/2FFFF00 to 0/3000030) outside the pack's seal range (0/0 to 0/3000000)", NULL}},
	{"a run before the previous pack's seal", T, {ev_ok, NULL}, {{0}, {T, 1, 0x2FFFFFF}}, {1, 2}, {0x3000000, 0x4000000},
	 ERRCODE_DATA_CORRUPTED, {"(seq 2), relid 16400", "outside the pack's seal range (0/3000000 to 0/4000000)", NULL}},
	{"a run of a table never seen", T, {NULL, NULL}, {{T, 1, 0x2000000}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_DATA_CORRUPTED, {"(seq 1), relid 16400", "run but no first sight", NULL}},
	{"packs not contiguous", T, {ev_ok, NULL}, {{0}}, {1, 3}, {0x3000000, 0x4000000},
	 ERRCODE_DATA_CORRUPTED, {"(seq 3), relid 16400", "does not follow pack seq 1-1", NULL}},
	{"a seal LSN going back", T, {ev_ok, NULL}, {{0}}, {1, 2}, {0x3000000, 0x2000000},
	 ERRCODE_DATA_CORRUPTED, {"(seq 2), relid 16400", "seal LSN 0/2000000, below the previous pack's 0/3000000", NULL}},
	{"a table the packs never show", D, {ev_ok, NULL}, {{0}}, {1, 0}, {0x3000000, 0},
	 ERRCODE_NOT_FOUND, {"relid 16500: no pack of seq 1 to 1 shows the table", NULL, NULL}},
};

static void
test_damage(void)
{
	for (size_t c = 0; c < sizeof(damage) / sizeof(damage[0]); c++)
	{
		const damage_case *dc = &damage[c];
		pack_index *p[2] = {NULL, NULL};
		int n = dc->seq[1] ? 2 : 1;
		manifest *m = NULL;
		bs_error err;
		bool matched;
		int rc;

		for (int i = 0; i < n; i++)
			p[i] = mkpack(dc->seq[i], dc->seal[i], dc->ev[i], &dc->run[i], dc->run[i].relid ? 1 : 0);
		rc = fold_table(dc->relid, (const pack_index *const *) p, n, &m, &err);
		matched = rc == BS_ERR && m == NULL && strcmp(err.code, dc->code) == 0;
		for (int k = 0; matched && k < 3 && dc->needle[k]; k++)
			matched = strstr(err.message, dc->needle[k]) != NULL;
		ok(matched, "refused: %s", dc->what);
		printf("#   %s\n", rc == BS_OK ? "accepted" : err.message);
		manifest_free(m);
		for (int i = 0; i < n; i++)
			pack_index_free(p[i]);
	}
}

/* Another table's malformed event: not this table's fold's business, the whole pack's check's. */
static void
test_other_table(void)
{
	pack_index *p = mkpack(1, 0x3000000, ev_other, NULL, 0);
	manifest *m = NULL;
	bs_error err;

	ok(fold_table(T, (const pack_index *const *) &p, 1, &m, &err) == BS_OK, "a table's fold reads only its own events");
	ok(fold_check_pack(p, &err) == BS_ERR && strstr(err.message, "(seq 1), relid 16500") &&
	   strstr(err.message, "event 1 (\"skipped\" at 0/2000000)") && strstr(err.message, "\"finding\" must be a string"),
	   "fold_check_pack refuses a malformed event of any table");
	manifest_free(m);
	pack_index_free(p);
}

/* A pack segment is never taken for a stored format-2 segment. */
static void
test_pack_segment_not_stored(void)
{
	const run_spec r[] = {{T, 1, 0x2000000}};
	static const char *const ev[] = {TABLE_T, LAYOUT_T, NULL};
	pack_index *p = mkpack(1, 0x3000000, ev, r, 1);
	manifest *m = NULL,
		*back = NULL;
	bs_error err;
	char *json = NULL;

	ok(fold_table(T, (const pack_index *const *) &p, 1, &m, &err) == BS_OK && m->nsegments == 1 &&
	   m->segments[0].source == MANIFEST_SEGMENT_PACK && strcmp(m->segments[0].key, p->key) == 0,
	   "a run becomes a segment naming its pack");
	json = m ? manifest_to_json(m) : NULL;
	ok(json && manifest_from_json(json, strlen(json), &back, &err) == BS_ERR &&
	   strstr(err.message, "segments[0].sha256"), "its JSON is refused by the format-2 reader");
	free(json);
	manifest_free(back);
	manifest_free(m);
	pack_index_free(p);
}

/* With BACKSTOP_FUZZ_SEED_DIR set, the seeds of fuzz_fold (t/fuzz/fold/): pack 1's events, a
 * line "=", pack 2's. */
static void
write_seed(const char *dir, const char *name, const char *const *a, const char *const *b)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (f == NULL)
		exit(2);
	for (int i = 0; a && a[i]; i++)
		fprintf(f, "%s\n", a[i]);
	if (b)
	{
		fprintf(f, "=\n");
		for (int i = 0; b[i]; i++)
			fprintf(f, "%s\n", b[i]);
	}
	fclose(f);
}

static void
write_seeds(const char *dir)
{
	write_seed(dir, "main-1-2.txt", ev1, ev2);
	write_seed(dir, "main-3-4.txt", ev3, ev4);
	write_seed(dir, "back.txt", ev_ok, ev_late);
	write_seed(dir, "reuse.txt", ev_reuse, NULL);
	write_seed(dir, "drop.txt", ev_drop, NULL);
	write_seed(dir, "badbase.txt", ev_badbase, NULL);
	write_seed(dir, "gaps.txt", ev_gaps, ev_closed);
	write_seed(dir, "schema-unknown.txt", ev_su1, ev_su2);
	write_seed(dir, "su-twice.txt", ev_su_twice, ev_pc_back);
	write_seed(dir, "in-place.txt", ev1, ev_inplace);
	write_seed(dir, "layout-replaced.txt", ev_lr_below, ev_lr_decode);
	write_seed(dir, "expired.txt", ev_ex_back, ev_nr_same);
}

int
main(void)
{
	const char *seed_dir = getenv("BACKSTOP_FUZZ_SEED_DIR");

	if (seed_dir)
		write_seeds(seed_dir);
	test_fold_equals_manifest();
	test_schema_unknown_and_partitions();
	test_in_place_kinds();
	test_damage();
	test_other_table();
	test_pack_segment_not_stored();
	return done_testing();
}
