/* test_packcat.c — unit tests of the catalog: written from packs, read back per table, folded forward, copy-on-write pages; damage refused. */
#include "packcat.h"
#include "digest.h"
#include "fold.h"
#include "fold_case.h"
#include "manifest_json.h"
#include "pack.h"
#include "segment.h"
#include "storage.h"
#include "strbuf.h"
#include "tap.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A pack built in memory: its index and the SHA-256 of its stored bytes. */
typedef struct tpack
{
	pack_index *idx;
	char sha[65];
} tpack;

/* Pack seq with events (NULL-terminated, or ev_n of them from evs) and runs, chained to prev. */
static tpack
mkpack_n(uint64_t seq, uint64_t seal, const char *const *events, int ev_n, const run_spec *runs, int nruns,
		 const char *prev)
{
	tpack tp;

	tp.idx = fold_case_pack(seq, seal, events, ev_n, runs, nruns, prev, tp.sha);
	return tp;
}

static tpack
mkpack(uint64_t seq, uint64_t seal, const char *const *events, const run_spec *runs, int nruns, const char *prev)
{
	return mkpack_n(seq, seal, events, -1, runs, nruns, prev);
}

/*
 * A store in memory: keys and bytes, with counts of gets and puts.
 */
#define STORE_MAX 64
typedef struct mstore
{
	int n;
	char *keys[STORE_MAX];
	strbuf vals[STORE_MAX];
	int gets;
	int puts;
} mstore;

static strbuf *
store_find(mstore *s, const char *key)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->keys[i], key) == 0)
			return &s->vals[i];
	return NULL;
}

static int
store_get(void *ctx, const char *key, strbuf *out, bs_error *err)
{
	mstore *s = ctx;
	strbuf *v = store_find(s, key);

	s->gets++;
	strbuf_reset(out);
	if (v == NULL)
		return error_set(err, ERRCODE_NOT_FOUND, "no object \"%s\"", key);
	strbuf_append(out, v->data, v->len);
	return BS_OK;
}

static int
store_put(void *ctx, const char *key, const void *data, size_t len, bs_error *err)
{
	mstore *s = ctx;
	strbuf *v = store_find(s, key);

	(void) err;
	s->puts++;
	if (v == NULL)
	{
		if (s->n == STORE_MAX)
			exit(2);
		s->keys[s->n] = strdup(key);
		memset(&s->vals[s->n], 0, sizeof(strbuf));
		v = &s->vals[s->n++];
	}
	strbuf_reset(v);
	strbuf_append(v, data, len);
	return BS_OK;
}

static void
store_free(mstore *s)
{
	for (int i = 0; i < s->n; i++)
	{
		free(s->keys[i]);
		strbuf_free(&s->vals[i]);
	}
	memset(s, 0, sizeof(*s));
}

/* The text of key in s ("" when none). */
static const char *
store_text(mstore *s, const char *key)
{
	strbuf *v = store_find(s, key);

	return v && v->data ? v->data : "";
}

static char *
json_of(const manifest *m)
{
	return m ? manifest_to_json(m) : NULL;
}

/* The fold of relid over packs, its segments of packs up to keep_from - 1 dropped. */
static manifest *
fold_without_segments(uint32_t relid, tpack *tp, int n, uint64_t keep_from)
{
	const pack_index *p[8];
	manifest *m = NULL;
	bs_error err;
	int k = 0;

	for (int i = 0; i < n; i++)
		p[i] = tp[i].idx;
	if (fold_table(relid, p, n, &m, &err) != BS_OK)
	{
		printf("# fold_table: %s\n", err.message);
		exit(2);
	}
	for (int i = 0; i < m->nsegments; i++)
		if (m->segments[i].pack_seq >= keep_from)
			m->segments[k++] = m->segments[i];
		else
			free(m->segments[i].key);
	m->nsegments = k;
	return m;
}

/* Whether the first page of the catalog at seq 1 in s holds text. */
static bool
catalog_entry_has(mstore *s, const char *text)
{
	return strstr(store_text(s, "catalog/0000000000000001/0000.json"), text) != NULL;
}

static bool
same_json(const char *what, const manifest *a, const manifest *b)
{
	char *x = json_of(a),
		*y = json_of(b);
	bool same = x && y && strcmp(x, y) == 0;

	if (!same)
		printf("# %s:\n#   got:  %s\n#   want: %s\n", what, x ? x : "(none)", y ? y : "(none)");
	free(x);
	free(y);
	return same;
}

static tpack main_packs[4];

static void
build_main_packs(void)
{
	static const run_spec r1[] = {{T, 3, 0x2000000}, {D, 2, 0x2100000}};
	static const run_spec r2[] = {{T, 2, 0x4000000}};
	static const run_spec r4[] = {{T, 1, 0x8100000}};

	main_packs[0] = mkpack(1, 0x3000000, ev1, r1, 2, NULL);
	main_packs[1] = mkpack(2, 0x5000000, ev2, r2, 1, main_packs[0].sha);
	main_packs[2] = mkpack(3, 0x7000000, ev3, NULL, 0, main_packs[1].sha);
	main_packs[3] = mkpack(4, 0x9000000, ev4, r4, 1, main_packs[2].sha);
}

static const pack_index *const *
idxs(tpack *tp, int n)
{
	static const pack_index *p[8];

	for (int i = 0; i < n; i++)
		p[i] = tp[i].idx;
	return p;
}

static mstore full;			/* the catalog at seq 4, from scratch */
static packcat_dir *dir4;

static void
test_round_trip(void)
{
	mstore inc;
	packcat_dir *dir2 = NULL,
			   *dir4b = NULL;
	bs_error err;
	manifest *m = NULL,
		*want;
	uint64_t last = 0;
	const packcat_table *t;

	memset(&full, 0, sizeof(full));
	memset(&inc, 0, sizeof(inc));
	ok(packcat_write(NULL, store_get, &full, idxs(main_packs, 4), 4, main_packs[3].sha, store_put, &full, &dir4,
					 &err) == BS_OK, "catalog written at seq 4 from the start of the log");
	if (dir4 == NULL)
	{
		printf("#   %s\n", err.message);
		exit(1);
	}
	is_int(full.puts, 2, "one page and the dir stored");
	is_int(full.gets, 0, "nothing read");
	is_str(dir4->key, "catalog/0000000000000004/dir.json", "the dir's key");
	is_int(dir4->npages, 1, "one page");
	is_str(dir4->pages[0].key, "catalog/0000000000000004/0000.json", "the page's key");
	is_int(dir4->ntables, 2, "two tables");
	ok(dir4->seq == 4 && dir4->seal_lsn == 0x9000000 && strcmp(dir4->pack_sha256, main_packs[3].sha) == 0,
	   "the dir records the seq, seal LSN and SHA-256 of the last pack");

	t = packcat_find_relid(dir4, T);
	ok(t && t->follows_log && t->archived_to == 0x9000000 && t->first_base_lsn == 0x1000100 && t->nnames == 2,
	   "T: active with a base and no open gap, archived to the log's seal");
	t = packcat_find_relid(dir4, D);
	ok(t && !t->follows_log && t->archived_to == 0x3500000 && strcmp(t->status, "dropped") == 0,
	   "D: dropped, archived to its drop");
	ok(packcat_find_relid(dir4, 1) == NULL, "an unknown relid is not found");

	/* Each table's state is the fold without its runs, byte for byte. */
	for (int k = 0; k < 2; k++)
	{
		uint32_t relid = k == 0 ? T : D;

		want = fold_without_segments(relid, main_packs, 4, UINT64_MAX);
		full.gets = 0;
		ok(packcat_load_table(dir4, relid, store_get, &full, &m, &last, &err) == BS_OK &&
		   same_json("page entry", m, want), "relid %u: the catalog's state is the fold of seq 1-4 without runs", relid);
		is_int(full.gets, 1, "relid %u: one read (its page)", relid);
		manifest_free(m);
		m = NULL;
		ok(packcat_fold_table(dir4, relid, store_get, &full, NULL, 0, &m, NULL, &err) == BS_OK &&
		   same_json("fold from the catalog, no packs", m, want), "relid %u: folded from the catalog alone", relid);
		manifest_free(m);
		m = NULL;
		manifest_free(want);
	}
	ok(packcat_load_table(dir4, T, store_get, &full, &m, &last, &err) == BS_OK && last == 0x8000000,
	   "T's last event LSN kept (0/8000000)");
	manifest_free(m);
	m = NULL;

	/* The catalog at seq 2, then folded forward over packs 3-4: the same manifests. */
	ok(packcat_write(NULL, store_get, &inc, idxs(main_packs, 2), 2, main_packs[1].sha, store_put, &inc, &dir2,
					 &err) == BS_OK, "catalog written at seq 2");
	for (int k = 0; dir2 && k < 2; k++)
	{
		uint32_t relid = k == 0 ? T : D;

		want = fold_without_segments(relid, main_packs, 4, 3);
		ok(packcat_fold_table(dir2, relid, store_get, &inc, idxs(main_packs + 2, 2), 2, &m, NULL, &err) == BS_OK &&
		   same_json("fold from catalog 2", m, want),
		   "relid %u: catalog at seq 2 + packs 3-4 = the fold of packs 1-4 (runs of 3-4), byte for byte", relid);
		manifest_free(m);
		m = NULL;
		manifest_free(want);
	}
	/* Written forward from seq 2: the same objects as from scratch. */
	inc.puts = inc.gets = 0;
	ok(dir2 && packcat_write(dir2, store_get, &inc, idxs(main_packs + 2, 2), 2, main_packs[3].sha, store_put, &inc,
							 &dir4b, &err) == BS_OK, "catalog at seq 4 written from the one at seq 2");
	is_int(inc.gets, 1, "the previous catalog's page read once");
	is_str(store_text(&inc, "catalog/0000000000000004/dir.json"), store_text(&full, "catalog/0000000000000004/dir.json"),
		   "dir.json byte-identical to the one written from scratch");
	is_str(store_text(&inc, "catalog/0000000000000004/0000.json"),
		   store_text(&full, "catalog/0000000000000004/0000.json"),
		   "the page byte-identical to the one written from scratch");
	ok(strstr(store_text(&full, "catalog/0000000000000004/0000.json"), "\"segments\"") == NULL &&
	   strstr(store_text(&full, "catalog/0000000000000004/0000.json"), "\"generation\"") == NULL,
	   "pages hold no segments and no generation");

	/* Names: manifest_find_table_at's rules. */
	{
		const packcat_table *f = NULL;

		ok(packcat_find_name(dir4, "app", "t2", UINT64_MAX, &f, &err) == BS_OK && f->relid == T, "app.t2 now is T");
		ok(packcat_find_name(dir4, "public", "t", 0x2000000, &f, &err) == BS_OK && f->relid == T,
		   "public.t at 0/2000000 is T (its name then)");
		ok(packcat_find_name(dir4, "public", "d", UINT64_MAX, &f, &err) == BS_OK && f->relid == D, "public.d is D");
		ok(packcat_find_name(dir4, "x", "y", UINT64_MAX, &f, &err) == BS_ERR &&
		   strcmp(err.code, ERRCODE_UNDEFINED_TABLE) == 0 && f == NULL, "an unknown name: ERRCODE_UNDEFINED_TABLE");
	}
	ok(packcat_load_table(dir4, 1, store_get, &full, &m, NULL, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_NOT_FOUND) == 0, "a relid the catalog lacks: ERRCODE_NOT_FOUND");

	/* A table first seen after the catalog: folded from the packs after it. */
	{
		static const char *const ev5[] = {
			EV("table", "0/9100000", "16600") ",\"schema\":\"public\",\"name\":\"n\",\"status\":\"active\",\"finding\":null}",
			EV("layout", "0/9100000", "16600") ",\"layout\":{\"id\":0,\"from_lsn\":\"0/9100000\",\"replident\":\"d\",\"columns\":[" COL_ID "]}}",
			NULL
		};
		static const run_spec r5[] = {{16600, 1, 0x9200000}};
		tpack p5 = mkpack(5, 0xA000000, ev5, r5, 1, main_packs[3].sha);
		tpack all[5] = {main_packs[0], main_packs[1], main_packs[2], main_packs[3], p5};

		want = fold_without_segments(16600, all, 5, 0);
		ok(packcat_fold_table(dir4, 16600, store_get, &full, idxs(&p5, 1), 1, &m, NULL, &err) == BS_OK &&
		   same_json("new table", m, want), "a table new after the catalog: folded from the packs after it");
		manifest_free(m);
		m = NULL;
		manifest_free(want);
		pack_index_free(p5.idx);
	}
	packcat_dir_free(dir2);
	packcat_dir_free(dir4b);
	store_free(&inc);
}

/* schema_unknown windows and partition changes kept by the catalog and folded on from it. */
static void
test_schema_unknown_kept(void)
{
	static const char *const su2[] = {
		EV("schema_unknown_closed", "0/4000000", "16400") ",\"at\":\"0/4000000\"}",
		EV("partition_change", "0/4100000", "16400") ",\"at\":\"0/4100000\"}",
		NULL
	};
	tpack p[2];
	mstore s;
	packcat_dir *d = NULL;
	manifest *m = NULL,
		*want;
	bs_error err;

	memset(&s, 0, sizeof(s));
	p[0] = mkpack(1, 0x3000000, ev_su1, NULL, 0, NULL);
	p[1] = mkpack(2, 0x5000000, su2, NULL, 0, p[0].sha);
	ok(packcat_write(NULL, store_get, &s, idxs(p, 1), 1, p[0].sha, store_put, &s, &d, &err) == BS_OK,
	   "catalog with an open schema_unknown window written");
	ok(d && catalog_entry_has(&s, "\"schema_unknown\":[{\"from\":\"0/2000000\",\"to\":\"FFFFFFFF/FFFFFFFF\"}]") &&
	   catalog_entry_has(&s, "\"partition_changes\":[\"0/1800000\"]"), "the page keeps the window and the change");
	want = fold_without_segments(T, p, 2, UINT64_MAX);
	ok(d && packcat_fold_table(d, T, store_get, &s, idxs(p + 1, 1), 1, &m, NULL, &err) == BS_OK &&
	   same_json("schema_unknown", m, want) && m->nschema_gaps == 1 && m->schema_gaps[0].to == 0x4000000 &&
	   m->npartition_changes == 2, "folded on from the catalog: the window closed, two partition changes");
	manifest_free(m);
	manifest_free(want);
	packcat_dir_free(d);
	pack_index_free(p[0].idx);
	pack_index_free(p[1].idx);
	store_free(&s);
}

/* 300 tables, then one touched, then 300 more: pages kept, split, written only when changed. */
#define MANY 300
static void
test_copy_on_write(void)
{
	char **evs = calloc(3 * MANY + 1, sizeof(char *));
	char **evs3 = calloc(3 * MANY + 1, sizeof(char *));
	tpack p[3];
	mstore s,
			scratch;
	packcat_dir *d1 = NULL,
			   *d2 = NULL,
			   *d3 = NULL,
			   *ds = NULL;
	bs_error err;
	manifest *m = NULL,
		*want;
	char buf[1024];
	static const char *const ev_touch[] = {EV("existed_to", "0/3800000", "20010") ",\"existed_to\":\"0/3800000\"}", NULL};
	static const run_spec r2[] = {{20010, 2, 0x3900000}};

	memset(&s, 0, sizeof(s));
	memset(&scratch, 0, sizeof(scratch));
	for (int pass = 0; pass < 2; pass++)
	{
		char **e = pass == 0 ? evs : evs3;
		uint32_t base = pass == 0 ? 20000 : 30000;
		const char *at = pass == 0 ? "0/1000000" : "0/5000000";

		for (int i = 0; i < MANY; i++)
		{
			uint32_t r = base + (uint32_t) i;

			snprintf(buf, sizeof(buf), "{\"kind\":\"table\",\"lsn\":\"%s\",\"relid\":%u,\"schema\":\"s\",\"name\":\"t%u\","
					 "\"status\":\"active\",\"finding\":null}", at, r, r);
			e[3 * i] = strdup(buf);
			snprintf(buf, sizeof(buf), "{\"kind\":\"layout\",\"lsn\":\"%s\",\"relid\":%u,\"layout\":{\"id\":0,"
					 "\"from_lsn\":\"%s\",\"replident\":\"d\",\"columns\":[" COL_ID "]}}", at, r, at);
			e[3 * i + 1] = strdup(buf);
			snprintf(buf, sizeof(buf), "{\"kind\":\"base\",\"lsn\":\"%s\",\"relid\":%u,\"base\":{\"lsn\":\"%s\","
					 "\"time\":\"2026-12-01T10:00:00.000000Z\",\"rows\":0,\"layout_id\":0,\"schema_key\":null,"
					 "\"definition\":null,\"chunks\":[]}}", at, r, at);
			e[3 * i + 2] = strdup(buf);
		}
	}
	p[0] = mkpack(1, 0x3000000, (const char *const *) evs, NULL, 0, NULL);
	p[1] = mkpack(2, 0x4000000, ev_touch, r2, 1, p[0].sha);
	p[2] = mkpack(3, 0x6000000, (const char *const *) evs3, NULL, 0, p[1].sha);

	ok(packcat_write(NULL, store_get, &s, idxs(p, 1), 1, p[0].sha, store_put, &s, &d1, &err) == BS_OK,
	   "catalog of %d tables written", MANY);
	ok(d1 && d1->npages == 2 && d1->pages[0].ntables == 256 && d1->pages[1].ntables == MANY - 256 &&
	   d1->pages[1].first_relid == 20256, "in pages of 256 tables by relid");

	s.puts = s.gets = 0;
	ok(d1 && packcat_write(d1, store_get, &s, idxs(p + 1, 1), 1, p[1].sha, store_put, &s, &d2, &err) == BS_OK,
	   "catalog after a seal that touched one table");
	is_int(s.puts, 2, "one page (the touched table's) and the dir stored");
	is_int(s.gets, 1, "only the touched table's page read");
	ok(d2 && strcmp(d2->pages[0].key, "catalog/0000000000000002/0000.json") == 0 &&
	   strcmp(d2->pages[1].key, "catalog/0000000000000001/0001.json") == 0,
	   "the untouched page is the older catalog's");
	ok(d2 && packcat_find_relid(d2, 20299)->archived_to == 0x4000000,
	   "a quiet table on a kept page is archived to the new catalog's seal");
	want = fold_without_segments(20299, p, 2, UINT64_MAX);
	ok(d2 && packcat_load_table(d2, 20299, store_get, &s, &m, NULL, &err) == BS_OK && same_json("kept page", m, want),
	   "its state read from the kept page is the fold of seq 1-2");
	manifest_free(m);
	m = NULL;
	manifest_free(want);
	want = fold_without_segments(20010, p, 2, UINT64_MAX);
	ok(d2 && packcat_load_table(d2, 20010, store_get, &s, &m, NULL, &err) == BS_OK && same_json("touched", m, want) &&
	   m->existed_to == 0x3800000, "the touched table's state is the fold of seq 1-2");
	manifest_free(m);
	m = NULL;
	manifest_free(want);

	s.puts = s.gets = 0;
	ok(d2 && packcat_write(d2, store_get, &s, idxs(p + 2, 1), 1, p[2].sha, store_put, &s, &d3, &err) == BS_OK,
	   "catalog after %d more tables", MANY);
	ok(d3 && d3->npages == 3 && d3->pages[1].ntables == 256 && d3->pages[2].ntables == 2 * MANY - 512 &&
	   strcmp(d3->pages[0].key, "catalog/0000000000000002/0000.json") == 0,
	   "the last page split at 256 tables, the first kept");
	is_int(s.gets, 1, "only the page that grew read");
	is_int(s.puts, 3, "the two pages it became and the dir stored");

	/* From scratch at seq 3: pages of the same bytes. */
	ok(packcat_write(NULL, store_get, &scratch, idxs(p, 3), 3, p[2].sha, store_put, &scratch, &ds, &err) == BS_OK,
	   "catalog at seq 3 written from scratch");
	{
		bool same = d3 && ds && d3->npages == ds->npages;

		for (int i = 0; same && i < ds->npages; i++)
			same = strcmp(d3->pages[i].sha256, ds->pages[i].sha256) == 0;
		ok(same, "every page byte-identical to the one written forward (same SHA-256)");
	}
	want = fold_without_segments(30123, p, 3, UINT64_MAX);
	ok(d3 && packcat_load_table(d3, 30123, store_get, &s, &m, NULL, &err) == BS_OK && same_json("split", m, want),
	   "a table of the split page: the fold of seq 1-3");
	manifest_free(m);
	manifest_free(want);

	for (int i = 0; i < 3 * MANY; i++)
	{
		free(evs[i]);
		free(evs3[i]);
	}
	free(evs);
	free(evs3);
	for (int i = 0; i < 3; i++)
		pack_index_free(p[i].idx);
	packcat_dir_free(d1);
	packcat_dir_free(d2);
	packcat_dir_free(d3);
	packcat_dir_free(ds);
	store_free(&s);
	store_free(&scratch);
}

/* text with the first occurrence of from replaced by to (freed by the caller). */
static char *
replace(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	strbuf sb = STRBUF_INIT;

	if (at == NULL)
	{
		printf("# \"%s\" not in the text\n", from);
		exit(2);
	}
	strbuf_append(&sb, text, (size_t) (at - text));
	strbuf_append(&sb, to, strlen(to));
	strbuf_append(&sb, at + strlen(from), strlen(at + strlen(from)));
	return strbuf_detach(&sb, NULL);
}

typedef struct dir_case
{
	const char *what;
	const char *from;
	const char *to;
	const char *needle;
} dir_case;

static void
test_dir_refusals(void)
{
	const char *key = "catalog/0000000000000004/dir.json";
	const char *text = store_text(&full, key);
	static const dir_case cases[] = {
		{"not JSON", "{", "[", "JSON error"},
		{"an unknown member", "\"format\":3", "\"format\":3,\"extra\":1", "unknown member \"extra\""},
		{"another format", "\"format\":3", "\"format\":4", "\"format\" is 4"},
		{"a seq that is not its key's", "\"seq\":4", "\"seq\":5", "\"seq\" is 5, but the key says 4"},
		{"a pack SHA-256 that is not one", "\"pack_sha256\":\"", "\"pack_sha256\":\"X", "64 lowercase hex"},
		{"a seal LSN that is not one", "\"seal_lsn\":\"0/9000000\"", "\"seal_lsn\":\"nine\"", "\"seal_lsn\" must be an LSN"},
		{"a page key of a later catalog", "catalog/0000000000000004/0000.json", "catalog/0000000000000005/0000.json", "of this catalog or an earlier one"},
		{"a page key outside the catalog", "catalog/0000000000000004/0000.json", "tables/16400/manifest.json", "must be a page key"},
		{"a page key not as written", "catalog/0000000000000004/0000.json", "catalog/0000000000000004/00x0.json", "must be a page key"},
		{"a page size out of range", "\"size\":", "\"size\":-", "\"pages[0].size\" must be an integer"},
		{"a page count above 256", "\"tables\":2}", "\"tables\":257}", "\"pages[0].tables\" must be an integer from 1 to 256"},
		{"a page count below its tables", "\"tables\":2}", "\"tables\":1}", "is on no page's count"},
		{"tables out of relid order", "\"relid\":16500", "\"relid\":16300", "not above the previous table's"},
		{"a table on a page that does not exist", "\"page\":0", "\"page\":1", "\"tables[0].page\" must be an integer from 0 to 0"},
		{"a page not starting at its first table", "\"first_relid\":16400", "\"first_relid\":16399", "does not start at the first table"},
		{"an empty name", "\"name\":\"d\"", "\"name\":\"\"", "empty schema or name"},
		{"an unknown status", "\"status\":\"dropped\"", "\"status\":\"gone\"", "\"tables[1].status\" must be"},
		{"a dropped table archived to the log", "\"archived_to\":\"0/3500000\",", "", "\"tables[1].archived_to\" is missing"},
		{"a name history not from 0/0", "{\"from_lsn\":\"0/0\"", "{\"from_lsn\":\"0/1\"", "must start at 0/0"},
		{"a name history not ending with the name", "\"schema\":\"app\",\"name\":\"t2\"}]", "\"schema\":\"app\",\"name\":\"t3\"}]", "does not end with the table's current name"},
		{"a name entry with an unknown member", "{\"from_lsn\":\"0/0\"", "{\"x\":1,\"from_lsn\":\"0/0\"", "tables[0].names[0] has an unknown member \"x\""},
		{"a page SHA-256 that is not one", "\"sha256\":\"", "\"sha256\":\"X", "\"pages[0].sha256\" must be 64 lowercase hex"},
		{"a page holding more tables than the dir puts on it", "\"tables\":2}", "\"tables\":3}", "is 3, but the dir puts 2 tables on it"},
		{"a name history entry with an empty schema", "\"schema\":\"public\",\"name\":\"t\"}", "\"schema\":\"\",\"name\":\"t\"}", "tables[0].names[0]\" has an empty schema or name"},
		{"a name history out of order", "{\"from_lsn\":\"0/3100000\"", "{\"from_lsn\":\"0/0\"", "is not above the previous name's from_lsn"},
		{"a first base at 0/0", "\"first_base_lsn\":\"0/1000100\"", "\"first_base_lsn\":\"0/0\"", "must be above 0/0"},
		{"a name history that is no array", "\"names\":[]}", "\"names\":{}}", "\"tables[1].names\" must be an array"},
		{"a name history that is null", "\"names\":[]}", "\"names\":null}", "\"tables[1].names\" is missing"},
	};

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
	{
		char *bad = replace(text, cases[c].from, cases[c].to);
		packcat_dir *d = NULL;
		bs_error err;
		int rc = packcat_dir_from_json(key, bad, strlen(bad), &d, &err);

		ok(rc == BS_ERR && d == NULL && strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 &&
		   strstr(err.message, "catalog \"catalog/0000000000000004/dir.json\"") && strstr(err.message, cases[c].needle),
		   "dir refused: %s", cases[c].what);
		printf("#   %s\n", rc == BS_OK ? "accepted" : err.message);
		packcat_dir_free(d);
		free(bad);
	}
	{
		packcat_dir *d = NULL;
		bs_error err;

		ok(packcat_dir_from_json("catalog/0000000000000005/dir.json", text, strlen(text), &d, &err) == BS_ERR &&
		   strstr(err.message, "the key says 5"), "dir refused: read under another seq's key");
		ok(packcat_dir_from_json("catalog/4/dir.json", text, strlen(text), &d, &err) == BS_ERR &&
		   strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0, "a key that is no dir key refused");
		ok(packcat_dir_from_json(key, "[]", 2, &d, &err) == BS_ERR && strstr(err.message, "not a JSON object"),
		   "dir refused: not an object");
		ok(packcat_dir_from_json(key, text, (size_t) PACKCAT_DIR_MAX + 1, &d, &err) == BS_ERR &&
		   strstr(err.message, "above the limit"), "dir refused: above the size limit (before parsing)");
	}
}

/* The page of dir4 edited (from -> to), with a dir that vouches for its new bytes: refused for
 * what it says, not for its hash. */
static void
page_case_dir(const char *what, uint32_t relid, const char *from, const char *to, const char *dir_from,
			  const char *dir_to, const char *needle)
{
	const char *page = store_text(&full, "catalog/0000000000000004/0000.json");
	const char *dtext = store_text(&full, "catalog/0000000000000004/dir.json");
	char *bad = replace(page, from, to);
	char sha[65];
	char size_old[64], size_new[64];
	char *d1, *d2;
	packcat_dir *d = NULL;
	manifest *m = NULL;
	bs_error err;
	int rc;

	digest_sha256_hex(bad, strlen(bad), sha);
	snprintf(size_old, sizeof(size_old), "\"size\":%zu,", strlen(page));
	snprintf(size_new, sizeof(size_new), "\"size\":%zu,", strlen(bad));
	d1 = replace(dtext, dir4->pages[0].sha256, sha);
	d2 = replace(d1, size_old, size_new);
	if (dir_from)
	{
		free(d1);
		d1 = d2;
		d2 = replace(d1, dir_from, dir_to);
	}
	if (packcat_dir_from_json("catalog/0000000000000004/dir.json", d2, strlen(d2), &d, &err) != BS_OK)
	{
		printf("# %s\n", err.message);
		exit(2);
	}
	rc = packcat_page_table(d, relid, bad, strlen(bad), &m, NULL, &err);
	ok(rc == BS_ERR && m == NULL && strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 &&
	   strstr(err.message, "catalog page \"catalog/0000000000000004/0000.json\"") && strstr(err.message, needle),
	   "page refused: %s", what);
	printf("#   %s\n", rc == BS_OK ? "accepted" : err.message);
	manifest_free(m);
	packcat_dir_free(d);
	free(d1);
	free(d2);
	free(bad);
}

static void
page_case(const char *what, uint32_t relid, const char *from, const char *to, const char *needle)
{
	page_case_dir(what, relid, from, to, NULL, NULL, needle);
}

static void
test_page_refusals(void)
{
	const char *page = store_text(&full, "catalog/0000000000000004/0000.json");
	char *edited = replace(page, "\"rows\":7", "\"rows\":8");
	manifest *m = NULL;
	bs_error err;

	ok(packcat_page_table(dir4, T, edited, strlen(edited), &m, NULL, &err) == BS_ERR &&
	   strstr(err.message, "has SHA-256") && strstr(err.message, "the dir says"), "page refused: edited (SHA-256)");
	ok(packcat_page_table(dir4, T, page, strlen(page) - 1, &m, NULL, &err) == BS_ERR &&
	   strstr(err.message, "bytes, the dir says"), "page refused: truncated (size)");
	free(edited);
	page_case("not JSON", T, "{", "[", "JSON error");
	page_case("an unknown member", T, "\"format\":3", "\"format\":3,\"x\":1", "unknown member \"x\"");
	page_case("another format", T, "\"format\":3", "\"format\":2", "\"format\" is 2");
	page_case("an entry of another relid", T, "\"relid\":16500,\"last", "\"relid\":16501,\"last",
			  "\"tables[1].relid\" is 16501, the dir has relid 16500 there");
	page_case("an entry with an unknown member", T, "\"last_event_lsn\"", "\"x\":1,\"last_event_lsn\"",
			  "tables[0] has an unknown member \"x\"");
	page_case("a table object with an unknown member", T, "\"table\":{", "\"table\":{\"segments\":[],",
			  "tables[0].table: has an unknown member \"segments\"");
	page_case("a table object of another relid", T, "\"table\":{\"relid\":16400", "\"table\":{\"relid\":16401",
			  "\"tables[0].table.relid\" is not the entry's");
	page_case("a table object the manifest reader refuses", T, "\"rows\":7", "\"rows\":\"7\"", "bases[1].rows");
	page_case("a name the dir does not have", D, "\"name\":\"d\",\"status\"", "\"name\":\"e\",\"status\"",
			  "disagrees with the dir on its name or status");
	page_case("an archived_to of its own for a table the log archives", T, "\"last_event_lsn\":\"0/8000000\"",
			  "\"last_event_lsn\":\"0/8000000\",\"archived_to\":\"0/9000000\"", "disagrees with the dir on archived_to");
	page_case_dir("an archived_to of its own (the dir's too) for a table the log archives", T,
				  "\"last_event_lsn\":\"0/8000000\"", "\"last_event_lsn\":\"0/8000000\",\"archived_to\":\"0/9000000\"",
				  "\"status\":\"active\",", "\"status\":\"active\",\"archived_to\":\"0/9000000\",",
				  "has its own archived_to, but an active table with a base and no open gap");
	page_case("a table in an open gap archived to the log", T, "\"to\":\"0/8000000\"", "\"to\":\"FFFFFFFF/FFFFFFFF\"",
			  "is in an open gap but archived to the catalog's seal LSN");
	page_case("a dropped table archived to the log", D, "\"archived_to\":\"0/3500000\",", "",
			  "disagrees with the dir on archived_to");
	page_case("a first base the dir does not have", T, "\"lsn\":\"0/1000100\",\"time\"", "\"lsn\":\"0/1000200\",\"time\"",
			  "disagrees with the dir on its first base");
	page_case("a last event LSN that is not one", T, "\"last_event_lsn\":\"0/8000000\"", "\"last_event_lsn\":8",
			  "\"tables[0].last_event_lsn\" must be a string");
	page_case("fewer tables than the dir says", T, ",{\"relid\":16500", "]}{\"relid\":16500", "JSON error");
}

static void
test_write_refusals(void)
{
	mstore s;
	packcat_dir *d = NULL,
			   *d2 = NULL;
	bs_error err;
	static const char *const ev_bad[] = {
		EV("table", "0/1000000", "16400") ",\"schema\":\"public\",\"name\":\"t\",\"status\":\"active\",\"finding\":null}",
		EV("skipped", "0/2000000", "16500") ",\"finding\":7}", NULL
	};
	tpack bad = mkpack(1, 0x3000000, ev_bad, NULL, 0, NULL);
	tpack broken = mkpack(3, 0x7000000, ev3, NULL, 0, SHA_A);

	memset(&s, 0, sizeof(s));
	ok(packcat_write(NULL, store_get, &s, idxs(main_packs + 1, 1), 1, main_packs[1].sha, store_put, &s, &d, &err) ==
	   BS_ERR && strstr(err.message, "the catalog needs seq 1") && s.puts == 0, "refused: packs not from seq 1");
	ok(packcat_write(NULL, store_get, &s, idxs(main_packs, 1), 1, "abc", store_put, &s, &d, &err) == BS_ERR &&
	   strstr(err.message, "SHA-256"), "refused: a tip SHA-256 that is not one");
	ok(packcat_write(NULL, store_get, &s, idxs(main_packs, 0), 0, main_packs[0].sha, store_put, &s, &d, &err) ==
	   BS_ERR, "refused: no pack");
	{
		tpack gap[2] = {main_packs[0], main_packs[2]};

		ok(packcat_write(NULL, store_get, &s, idxs(gap, 2), 2, main_packs[2].sha, store_put, &s, &d, &err) == BS_ERR &&
		   strstr(err.message, "does not follow seq 1") && s.puts == 0, "refused: packs not contiguous");
	}
	ok(packcat_write(NULL, store_get, &s, idxs(&bad, 1), 1, bad.sha, store_put, &s, &d, &err) == BS_ERR &&
	   strstr(err.message, "relid 16500") && strstr(err.message, "\"finding\" must be a string") && s.puts == 0,
	   "refused: a malformed event of any table (a catalog folds them all)");
	ok(packcat_write(NULL, store_get, &s, idxs(main_packs, 2), 2, main_packs[1].sha, store_put, &s, &d, &err) == BS_OK,
	   "catalog at seq 2");
	s.puts = 0;
	ok(d && packcat_write(d, store_get, &s, idxs(&broken, 1), 1, broken.sha, store_put, &s, &d2, &err) == BS_ERR &&
	   strstr(err.message, "the chain is broken") && s.puts == 0, "refused: a pack that does not name the catalog's");
	ok(d && packcat_write(d, store_get, &s, idxs(main_packs + 3, 1), 1, main_packs[3].sha, store_put, &s, &d2, &err) ==
	   BS_ERR && strstr(err.message, "the catalog needs seq 3"), "refused: a pack that does not follow the catalog");
	/* A reader folding forward checks the same. */
	{
		manifest *m = NULL;

		ok(d && packcat_fold_table(d, T, store_get, &s, idxs(&broken, 1), 1, &m, NULL, &err) == BS_ERR &&
		   strstr(err.message, "the chain is broken") && strstr(err.message, "seq 3") && m == NULL,
		   "fold from a catalog refused: the chain is broken");
		ok(d && packcat_fold_table(d, T, store_get, &s, idxs(main_packs + 3, 1), 1, &m, NULL, &err) == BS_ERR &&
		   strstr(err.message, "does not follow seq 2, where the fold starts") && m == NULL,
		   "fold from a catalog refused: a pack that does not follow it");
		ok(d && packcat_fold_table(d, 16999, store_get, &s, idxs(main_packs + 2, 2), 2, &m, NULL, &err) == BS_ERR &&
		   strcmp(err.code, ERRCODE_NOT_FOUND) == 0, "a table neither the catalog nor the packs show: not found");
	}
	/* A page missing from storage. */
	{
		mstore empty;
		manifest *m = NULL;

		memset(&empty, 0, sizeof(empty));
		ok(d && packcat_write(d, store_get, &empty, idxs(main_packs + 2, 2), 2, main_packs[3].sha, store_put, &empty,
							  &d2, &err) == BS_ERR && strcmp(err.code, ERRCODE_NOT_FOUND) == 0 && empty.puts == 0,
		   "refused: the previous catalog's page is missing");
		ok(d && packcat_load_table(d, T, store_get, &empty, &m, NULL, &err) == BS_ERR && m == NULL,
		   "a table whose page is missing: refused");
		store_free(&empty);
	}
	packcat_dir_free(d);
	packcat_dir_free(d2);
	pack_index_free(bad.idx);
	pack_index_free(broken.idx);
	store_free(&s);
}

/* Through a file:// storage: the objects stored, read back by key. */
static void
test_storage(void)
{
	char tmpl[] = "/tmp/bs_catalog_XXXXXX";
	char url[256];
	storage *st = NULL;
	packcat_dir *d = NULL,
			   *back = NULL;
	manifest *m = NULL,
		*want;
	bs_error err;

	if (mkdtemp(tmpl) == NULL)
		exit(2);
	snprintf(url, sizeof(url), "file://%s", tmpl);
	ok(storage_open(url, NULL, &st, &err) == BS_OK, "local storage opened");
	ok(packcat_write(NULL, packcat_storage_get, st, idxs(main_packs, 4), 4, main_packs[3].sha, packcat_storage_put, st,
					 &d, &err) == BS_OK, "catalog written to storage");
	ok(packcat_load_dir(packcat_storage_get, st, 4, &back, &err) == BS_OK && back->ntables == 2,
	   "its dir loaded by seq");
	want = fold_without_segments(T, main_packs, 4, UINT64_MAX);
	ok(back && packcat_load_table(back, T, packcat_storage_get, st, &m, NULL, &err) == BS_OK &&
	   same_json("storage", m, want), "a table's state loaded from storage");
	manifest_free(m);
	manifest_free(want);
	packcat_dir_free(back);
	back = NULL;
	ok(packcat_load_dir(packcat_storage_get, st, 5, &back, &err) == BS_ERR && strcmp(err.code, ERRCODE_NOT_FOUND) == 0 &&
	   strstr(err.message, "catalog/0000000000000005/dir.json"), "a catalog not stored: ERRCODE_NOT_FOUND naming it");
	packcat_dir_free(d);
	storage_close(st);
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpl);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", tmpl);
	}
}

/* With BACKSTOP_FUZZ_SEED_DIR set, the seeds of fuzz_packcat (t/fuzz/packcat/): the dir's
 * length (4 bytes, big-endian), the dir, a page. */
static void
write_seed(const char *dir, const char *name, const char *dtext, const char *ptext)
{
	char path[4096];
	FILE *f;
	size_t n = strlen(dtext);
	unsigned char len[4] = {(unsigned char) (n >> 24), (unsigned char) (n >> 16), (unsigned char) (n >> 8),
	(unsigned char) n};

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (f == NULL)
		exit(2);
	fwrite(len, 1, 4, f);
	fwrite(dtext, 1, n, f);
	fwrite(ptext, 1, strlen(ptext), f);
	fclose(f);
}

static void
write_seeds(const char *dir)
{
	write_seed(dir, "main.bin", store_text(&full, "catalog/0000000000000004/dir.json"),
			   store_text(&full, "catalog/0000000000000004/0000.json"));
	write_seed(dir, "empty-page.bin", store_text(&full, "catalog/0000000000000004/dir.json"), "{\"format\":3,\"tables\":[]}");
}

int
main(void)
{
	const char *seed_dir = getenv("BACKSTOP_FUZZ_SEED_DIR");

	build_main_packs();
	test_round_trip();
	test_schema_unknown_kept();
	test_copy_on_write();
	test_dir_refusals();
	test_page_refusals();
	test_write_refusals();
	test_storage();
	if (seed_dir)
		write_seeds(seed_dir);
	packcat_dir_free(dir4);
	store_free(&full);
	for (int i = 0; i < 4; i++)
		pack_index_free(main_packs[i].idx);
	return done_testing();
}
