/* test_expire.c — unit tests of retention's selection: given a manifest and a policy, what is kept. */
#include "expire.h"
#include "manifest.h"
#include "manifest_json.h"
#include "manifest_keys.h"
#include "storage.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <utime.h>

#define HOUR_US ((int64_t) 3600 * 1000000)
#define DAY_US (24 * HOUR_US)
#define T0 ((int64_t) 1800000000 * 1000000)	/* 2027-01-15 */

static const char SHA[] = "0000000000000000000000000000000000000000000000000000000000000000";

/* A table with a base every day at day d (LSN (d+1) << 24), and a segment every 12 hours
 * between them; nbases bases, segments up to the last base + 1 day. */
static manifest *
table(int nbases)
{
	manifest *m = manifest_new(16384, "public", "t");
	manifest_column col = {"id", 23, -1, "integer", true, true, NULL};

	manifest_add_layout(m, 0x1000000, 'd', 1, &col);
	for (int d = 0; d < nbases; d++)
	{
		manifest_base b;
		manifest_chunk ch;

		memset(&b, 0, sizeof(b));
		memset(&ch, 0, sizeof(ch));
		b.lsn = (uint64_t) (d + 1) << 24;
		b.time = T0 + d * DAY_US;
		b.rows = 1;
		b.layout_id = 0;
		ch.key = manifest_base_chunk_key(16384, b.lsn, 1);
		memcpy(ch.sha256, SHA, 65);
		ch.size = 100;
		ch.raw_size = 2;
		ch.rows = 1;
		b.nchunks = 1;
		b.chunks = &ch;
		manifest_add_base(m, &b);
		free(ch.key);
	}
	for (int h = 0; h < 2 * nbases; h++)
	{
		manifest_segment s;

		memset(&s, 0, sizeof(s));
		/* segment h covers [base(h/2) + 0x100 + (h%2) * 0x800000, + 0x400000) */
		s.first_lsn = ((uint64_t) (h / 2 + 1) << 24) + 0x100 + (uint64_t) (h % 2) * 0x800000;
		s.last_end_lsn = s.first_lsn + 0x400000;
		s.first_time = T0 + (h / 2) * DAY_US + (h % 2) * 12 * HOUR_US + 1000;
		s.last_time = s.first_time + HOUR_US;
		s.records = 1;
		s.key = manifest_segment_key(16384, s.first_lsn, s.last_end_lsn);
		memcpy(s.sha256, SHA, 65);
		s.size = 10;
		s.raw_size = 20;
		manifest_add_segment(m, &s);
		free(s.key);
	}
	m->archived_to = ((uint64_t) (nbases + 1) << 24);
	return m;
}

int
main(void)
{
	expire_policy p;
	expire_plan plan;
	manifest *m;
	int64_t now = T0 + 5 * DAY_US + HOUR_US;	/* 1 h after the sixth base (day 5) */
	bs_error err;

	/* keep_bases */
	m = table(6);
	p = (expire_policy) {0, 2};
	expire_select(m, &p, now, &plan);
	is_int(plan.first_kept, 4, "keep 2 bases of 6: the oldest kept is the fifth");
	is_int(plan.nbases, 4, "four bases go");
	is_int(plan.nsegments, 8, "the eight segments before the fifth base go");
	ok(plan.keep_from == ((uint64_t) 5 << 24), "the first kept point is the fifth base's LSN");
	is_int(plan.keys.count, 12, "twelve objects go (4 chunks, 8 segments)");
	is_int(plan.bytes, 4 * 100 + 8 * 10, "their stored bytes are counted");
	expire_apply(m, &plan, now);
	is_int(m->nbases, 2, "two bases left");
	is_int(m->nsegments, 4, "four segments left");
	ok(m->expired_before == ((uint64_t) 5 << 24) && m->expired_time == now, "expiry recorded");
	error_clear(&err);
	ok(manifest_validate(m, &err) == BS_OK, "the expired manifest is valid: %s", err.message);
	{
		char *json = manifest_to_json(m);
		manifest *back = NULL;

		ok(json && manifest_from_json(json, strlen(json), &back, &err) == BS_OK &&
		   back->expired_before == m->expired_before && back->expired_time == now,
		   "expired_before and expired_time round trip");
		manifest_free(back);
		free(json);
	}
	expire_plan_free(&plan);
	/* Applied again: nothing more goes. */
	expire_select(m, &p, now, &plan);
	ok(!plan.changes && plan.first_kept == 0, "a second run with the same policy changes nothing");
	expire_plan_free(&plan);
	manifest_free(m);

	/* never the only base; more kept than exist */
	m = table(1);
	p = (expire_policy) {HOUR_US, 1};
	expire_select(m, &p, now + 100 * DAY_US, &plan);
	ok(!plan.changes && plan.first_kept == 0, "the only base copy is never removed");
	expire_plan_free(&plan);
	manifest_free(m);
	m = table(3);
	p = (expire_policy) {0, 10};
	expire_select(m, &p, now, &plan);
	ok(!plan.changes && plan.first_kept == 0, "keep 10 bases of 3: nothing goes");
	expire_plan_free(&plan);
	manifest_free(m);

	/* keep_window */
	m = table(6);
	p = (expire_policy) {2 * DAY_US, 0};
	expire_select(m, &p, now, &plan);
	/* window starts at day 3 + 1 h: base of day 3 (index 3) serves it */
	is_int(plan.first_kept, 3, "window of 2 days: the base taken at or before its start is kept (day 3)");
	is_int(plan.nsegments, 6, "segments before that base go");
	expire_plan_free(&plan);
	p = (expire_policy) {2 * DAY_US + HOUR_US, 0};
	expire_select(m, &p, now, &plan);
	is_int(plan.first_kept, 3, "window starting exactly at a base's time keeps that base");
	expire_plan_free(&plan);
	p = (expire_policy) {2 * DAY_US + HOUR_US + 1, 0};
	expire_select(m, &p, now, &plan);
	is_int(plan.first_kept, 2, "window starting 1 us before a base keeps the one before");
	expire_plan_free(&plan);
	p = (expire_policy) {100 * DAY_US, 0};
	expire_select(m, &p, now, &plan);
	ok(!plan.changes, "a window longer than the archive keeps everything");
	expire_plan_free(&plan);

	/* both: what either keeps */
	p = (expire_policy) {2 * DAY_US, 4};
	expire_select(m, &p, now, &plan);
	is_int(plan.first_kept, 2, "window (day 3) and 4 bases (day 2): the older start wins");
	expire_plan_free(&plan);
	p = (expire_policy) {4 * DAY_US, 1};
	expire_select(m, &p, now, &plan);
	is_int(plan.first_kept, 1, "window (day 1) and 1 base (day 5): the older start wins");
	expire_plan_free(&plan);

	/* a segment that straddles the kept base stays */
	m->segments[5].last_end_lsn = ((uint64_t) 4 << 24) + 0x10;	/* segment of day 2, ends after base of day 3 */
	free(m->segments[5].key);
	m->segments[5].key = manifest_segment_key(16384, m->segments[5].first_lsn, m->segments[5].last_end_lsn);
	p = (expire_policy) {0, 3};
	expire_select(m, &p, now, &plan);
	is_int(plan.first_kept, 3, "3 bases: from day 3");
	ok(!plan.drop_segment[5] && plan.drop_segment[4], "a segment ending after the kept base is kept, one before it goes");
	expire_plan_free(&plan);

	/* clocks: a segment before the base committed at or after the window's start is kept */
	m->segments[4].last_time = T0 + 3 * DAY_US + 2 * HOUR_US;
	p = (expire_policy) {2 * DAY_US, 0};
	expire_select(m, &p, now, &plan);
	is_int(plan.first_kept, 2, "a commit below the base but inside the window keeps the base before");
	expire_plan_free(&plan);
	manifest_free(m);

	/* dropped tables: the window ends at the drop */
	m = table(6);
	free(m->status);
	m->status = strdup("dropped");
	m->dropped_at_lsn = m->archived_to;
	p = (expire_policy) {2 * DAY_US, 0};
	expire_select(m, &p, now + 300 * DAY_US, &plan);
	/* last change: segment 11 at day 5 + 12 h + 1 h; window back to day 3 + 13 h: base of day 3 */
	is_int(plan.first_kept, 3, "a dropped table keeps the window before its drop, however long ago");
	expire_plan_free(&plan);
	manifest_free(m);

	/* skipped tables and tables without a base */
	m = table(0);
	p = (expire_policy) {HOUR_US, 1};
	expire_select(m, &p, now, &plan);
	ok(!plan.changes && plan.first_kept == -1, "a table without a base keeps everything");
	expire_plan_free(&plan);
	manifest_free(m);

	/* patterns */
	ok(expire_table_matches(NULL, "public", "t"), "no pattern: every table");
	ok(expire_table_matches("public.t*", "public", "tab"), "schema.glob");
	ok(expire_table_matches("x.y, t", "public", "t"), "a list; no schema means public");
	ok(!expire_table_matches("t", "app", "t"), "no schema does not match another schema");
	ok(!expire_table_matches("app.*", "public", "t"), "another schema");

	/* orphans, on a local directory */
	{
		char dir[] = "/tmp/backstop_test_expire_XXXXXX";
		char url[128];
		storage *st = NULL;
		storage_keys out;
		const char *keys[6];
		char path[512];
		struct utimbuf old = {time(NULL) - 7200, time(NULL) - 7200};

		ok(mkdtemp(dir) != NULL, "temp dir");
		snprintf(url, sizeof(url), "file://%s", dir);
		m = table(3);
		m->expired_before = (uint64_t) 1 << 24;
		m->expired_time = now;
		keys[0] = "tables/16384/manifest.json";
		keys[1] = m->bases[0].chunks[0].key;					/* referenced */
		keys[2] = "tables/16384/seg/0000000000500000-0000000000600000.bso";	/* below expired_before */
		keys[3] = "tables/16384/seg/0000000000F00000-0000000001000000.bso";	/* ends at it */
		keys[4] = "tables/16384/seg/0000000005000000-0000000005000100.bso";	/* above: audit's */
		keys[5] = "tables/16384/base/0000000009000000/chunk-000001.bso";		/* abandoned copy */
		error_clear(&err);
		ok(storage_open(url, NULL, &st, &err) == BS_OK, "open local storage: %s", err.message);
		ok(storage_put(st, keys[5], "x", 1, &err) == BS_OK, "store an abandoned chunk");
		ok(expire_orphans(st, m, keys, 6, 3600, time(NULL), &out, &err) == BS_OK, "orphans listed");
		is_int(out.count, 2, "a fresh unreferenced base chunk is not old enough; expired leftovers are");
		ok(out.count == 2 && strcmp(out.keys[0], keys[2]) == 0 && strcmp(out.keys[1], keys[3]) == 0,
		   "the expired segments");
		storage_keys_free(&out);
		snprintf(path, sizeof(path), "%s/%s", dir, keys[5]);
		ok(utime(path, &old) == 0, "age the chunk");
		ok(expire_orphans(st, m, keys, 6, 3600, time(NULL), &out, &err) == BS_OK && out.count == 3 &&
		   strcmp(out.keys[2], keys[5]) == 0, "an old unreferenced base chunk goes");
		storage_keys_free(&out);
		ok(expire_orphans(st, NULL, keys + 5, 1, 3600, time(NULL), &out, &err) == BS_OK && out.count == 1,
		   "without a manifest: every old object");
		storage_keys_free(&out);
		storage_delete(st, keys[5], &err);
		storage_close(st);
		manifest_free(m);
		snprintf(path, sizeof(path), "rm -rf '%s'", dir);
		if (system(path) != 0)
			printf("# could not remove %s\n", dir);
	}
	return done_testing();
}
