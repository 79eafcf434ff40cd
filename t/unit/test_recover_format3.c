/* test_recover_format3.c — recovery from a format-3 archive (format2.md 5 step 4c) gives what the equivalent format-2 archive gives: the plan and rows in-process, and `backstop recover --dry-run` through the command. */
#include "archive_fixture.h"
#include "archive_load.h"
#include "digest.h"
#include "mdelta.h"
#include "pack.h"
#include "packcat.h"
#include "recover_plan.h"
#include "replay.h"
#include "segfetch.h"

#include <inttypes.h>
#include <jansson.h>

#define USERS 16400
#define SEAL1 UINT64_C(0x1502000)
#define SEAL2 UINT64_C(0x1506000)

static const char *const v_carol[] = {"3", "carol"};
static const char *const v_key1[] = {"1", NULL};
static const char *const v_bobby[] = {"2", "bobby"};
static const char *const v_dave[] = {"4", "dave"};
static const char *const v_null[] = {"5", NULL};

static manifest *users2;
static storage *st2,
		   *st3;
static char url2[128],
			url3[128];
static char pack_sha[2][65];

static void
bail(const char *what, const bs_error *err)
{
	printf("Bail out! %s: %s\n", what, err->message);
	exit(2);
}

/* Format 2: users (base 1 alice, 2 bob; two segments; a second layout from 0/1503000). */
static void
build_format2(void)
{
	manifest_column cols2[2] = {{"id", 23, -1, "integer", true, true, NULL}, {"name", 1043, -1, "character varying", false, false, NULL}};
	rec seg1[] = {
		{'I', 0x1500100, 700, 1 * SEC, 0, NULL, v_carol},
		{'D', 0x1501000, 701, 2 * SEC, 0, v_key1, NULL},
	};
	rec seg2[] = {
		{'U', 0x1502000, 702, 2 * SEC + SEC / 2, 0, NULL, v_bobby},
		{'I', 0x1503000, 703, 4 * SEC, 1, NULL, v_dave},
		{'I', 0x1505000, 705, 6 * SEC, 1, NULL, v_null},
	};
	bs_error err;

	users2 = new_table(USERS, "users", "1\talice\n2\tbob\n", 2);
	manifest_add_layout(users2, 0x1503000, 'd', 2, cols2);
	add_segment(users2, seg1, 2);
	add_segment(users2, seg2, 3);
	users2->archived_to = SEAL2;
	if (manifest_store(st, users2, &err) != BS_OK)
		bail("manifest_store", &err);
}

/* The raw records of segment i (without the magic). */
static void
records_of(int i, strbuf *res)
{
	strbuf raw = STRBUF_INIT;
	object_info info;
	bs_error err;

	if (object_get_all(st, users2->segments[i].key, users2->segments[i].sha256, &raw, &info, &err) != BS_OK)
		bail("object_get_all", &err);
	strbuf_reset(res);
	strbuf_append(res, raw.data + SEGMENT_MAGIC_LEN, raw.len - SEGMENT_MAGIC_LEN);
	strbuf_free(&raw);
}

static void
copy_object(const char *key)
{
	strbuf b = STRBUF_INIT;
	bs_error err;

	if (storage_get_all(st2, key, &b, &err) != BS_OK || storage_put(st3, key, b.data, b.len, &err) != BS_OK)
		bail(key, &err);
	strbuf_free(&b);
}

/*
 * Format 3 of the same table: its events (mdelta_events from nothing) in the pack whose seal
 * range holds their LSN, each segment's records the run of a pack (seq 1 sealed at 0/1502000,
 * seq 2 at 0/1506000), the base chunks copied, a catalog at seq 1, a format-3 head at tip 2.
 */
static void
build_format3(void)
{
	manifest *state;
	mdelta_list ev;
	char *json = manifest_to_json(users2);
	bs_error err;
	pack_index *idx1 = NULL;
	packcat_dir *dir = NULL;
	archive_head h;

	if (manifest_from_json(json, strlen(json), &state, &err) != BS_OK)
		bail("manifest_from_json", &err);
	free(json);
	for (int i = 0; i < state->nsegments; i++)
		free(state->segments[i].key);
	state->nsegments = 0;
	if (mdelta_events(NULL, state, 0, &ev, &err) != BS_OK)
		bail("mdelta_events", &err);
	for (int p = 0; p < 2; p++)
	{
		char *key = archive_log_key((uint64_t) p + 1);
		strbuf bytes = STRBUF_INIT,
				raw = STRBUF_INIT;
		pack_writer *w;
		pack_meta meta = {(uint64_t) p + 1, (uint64_t) p + 1, p == 0 ? SEAL1 : SEAL2, REC_TIME, NULL,
		p == 0 ? NULL : pack_sha[0]};

		if (pack_writer_open(key, 0, CODEC_ZSTD, 3, NULL, &bytes, &w, &err) != BS_OK)
			bail("pack_writer_open", &err);
		for (int i = 0; i < ev.n; i++)
			if ((p == 0) == (ev.events[i].lsn < SEAL1) &&
				pack_writer_add_event(w, ev.events[i].json, strlen(ev.events[i].json), &err) != BS_OK)
				bail("pack_writer_add_event", &err);
		records_of(p, &raw);
		if (pack_writer_add_run(w, USERS, raw.data, raw.len, &bytes, &err) != BS_OK ||
			pack_writer_finish(w, &meta, &bytes, NULL, &err) != BS_OK ||
			storage_put(st3, key, bytes.data, bytes.len, &err) != BS_OK)
			bail("pack", &err);
		pack_writer_free(w);
		digest_sha256_hex(bytes.data, bytes.len, pack_sha[p]);
		if (p == 0 && pack_open_buffer(key, bytes.data, bytes.len, NULL, &idx1, &err) != BS_OK)
			bail("pack_open_buffer", &err);
		strbuf_free(&bytes);
		strbuf_free(&raw);
		free(key);
	}
	for (int c = 0; c < users2->bases[0].nchunks; c++)
		copy_object(users2->bases[0].chunks[c].key);
	if (packcat_write(NULL, packcat_storage_get, st3, (const pack_index *const *) &idx1, 1, pack_sha[0],
					  packcat_storage_put, st3, &dir, &err) != BS_OK)
		bail("packcat_write", &err);
	archive_head_init(&h);
	h.format = ARCHIVE_HEAD_FORMAT_PACKS;
	h.system_identifier = xstrdup("7000000000000000001");
	h.database = xstrdup("app");
	h.flushed_lsn = SEAL2;
	h.time = T0 + 7 * SEC;
	h.tip_seq = 2;
	memcpy(h.tip_sha256, pack_sha[1], 65);
	h.catalog_seq = 1;
	if (archive_head_store(st3, &h, &err) != BS_OK)
		bail("archive_head_store", &err);
	archive_head_clear(&h);
	packcat_dir_free(dir);
	pack_index_free(idx1);
	mdelta_list_free(&ev);
	manifest_free(state);
}

/* The table's manifest through archive_load, from the archive at s. */
static manifest *
load(storage *s)
{
	archive_head h;
	bool exists = false;
	manifest *m = NULL;
	bs_error err;

	if (archive_head_load_any(s, &h, &exists, &err) != BS_OK ||
		archive_load_find_at(s, exists ? &h : NULL, "public.users", UINT64_MAX, &m, &err) != BS_OK)
		bail("load", &err);
	archive_head_clear(&h);
	return m;
}

static int
copy_append(void *ctx, const char *data, size_t len, bs_error *err)
{
	(void) err;
	strbuf_append(ctx, data, len);
	return BS_OK;
}

/* The rows at pt as COPY text, and the plan's transaction count. */
static int
recover_rows(storage *s, manifest *m, const recover_point *pt, strbuf *copy, uint64_t *txns, bs_error *err)
{
	recover_plan *plan = NULL;
	replay_state *rs = NULL;
	replay_checksum sum;
	int rc = BS_ERR;

	if (recover_plan_build(s, m, NULL, pt, NULL, &plan, err) != BS_OK ||
		replay_new(m->nlayouts, m->layouts, &rs, err) != BS_OK ||
		recover_plan_run(plan, s, rs, UINT64_MAX, NULL, NULL, NULL, NULL, err) != BS_OK ||
		replay_write_copy(rs, recover_plan_point_layout(plan, replay_current_layout(rs)), copy_append, copy, &sum,
						  err) != BS_OK)
		goto done;
	*txns = plan->transactions;
	rc = BS_OK;
done:
	replay_free(rs);
	recover_plan_free(plan);
	return rc;
}

static void
test_plans(void)
{
	manifest *m2 = load(st2),
		*m3 = load(st3);
	recover_point pts[5];
	const char *names[5] = {"latest", "LSN 0/1502000", "LSN 0/1500100", "transaction 703", "time +4.5 s"};

	ok(m2->nsegments == 2 && m2->segments[0].source == MANIFEST_SEGMENT_OBJECT, "format 2: segment objects");
	ok(m3->nsegments == 2 && m3->segments[0].source == MANIFEST_SEGMENT_PACK &&
	   m3->segments[1].source == MANIFEST_SEGMENT_PACK && m3->segments[0].pack_seq == 1 &&
	   m3->segments[1].pack_seq == 2 && m3->archived_to == m2->archived_to && m3->nlayouts == 2 && m3->nbases == 1,
	   "format 3: the runs of packs 1 (before the catalog) and 2 (after it), archived to the last seal");
	memset(pts, 0, sizeof(pts));
	pts[0].kind = RECOVER_POINT_LATEST;
	pts[1].kind = RECOVER_POINT_LSN;
	pts[1].lsn = 0x1502000;
	pts[2].kind = RECOVER_POINT_LSN;
	pts[2].lsn = 0x1500100;
	pts[3].kind = RECOVER_POINT_XID;
	pts[3].xid = 703;
	pts[4].kind = RECOVER_POINT_TIME;
	pts[4].time = T0 + 4 * SEC + SEC / 2;
	for (int i = 0; i < 5; i++)
	{
		strbuf a = STRBUF_INIT,
				b = STRBUF_INIT;
		uint64_t ta = 0,
			tb = 0;
		bs_error err;
		int ra = recover_rows(st2, m2, &pts[i], &a, &ta, &err);
		int rb = ra == BS_OK ? recover_rows(st3, m3, &pts[i], &b, &tb, &err) : BS_ERR;

		if (!ok(ra == BS_OK && rb == BS_OK && a.len > 0 && a.len == b.len && memcmp(a.data, b.data, a.len) == 0 &&
				ta == tb, "recovery at %s: format 3 gives format 2's rows (%" PRIu64 " transactions)", names[i], ta))
			printf("# %s\n", err.message);
		if (i == 0)
			ok(ra == BS_OK && strstr(a.data, "2\tbobby\n") && strstr(a.data, "4\tdave\n") && ta == 5,
			   "the latest rows are the five transactions'");
		strbuf_free(&a);
		strbuf_free(&b);
	}
	manifest_free(m2);
	manifest_free(m3);
}

/* `backstop recover --dry-run --json`: the same plan from either archive, through the command. */
static void
test_command(void)
{
	static const char *const points[][3] = {
		{"--latest", NULL, NULL}, {"--to-lsn", "0/1502000", NULL}, {"--to-xid", "703", NULL},
	};

	for (int i = 0; i < 3; i++)
	{
		json_t *j[2] = {NULL, NULL};

		for (int f = 0; f < 2; f++)
		{
			const char *args[8];
			int n = 0;
			int rc;

			snprintf(url, sizeof(url), "%s", f == 0 ? url2 : url3);
			args[n++] = "--table";
			args[n++] = "users";
			args[n++] = "--dry-run";
			args[n++] = "--json";
			args[n++] = points[i][0];
			if (points[i][1])
				args[n++] = points[i][1];
			args[n] = NULL;
			rc = run_cli("recover", args);
			if (!ok(rc == 0, "recover %s %s --dry-run on the format-%d archive: exit 0", points[i][0],
					points[i][1] ? points[i][1] : "", f == 0 ? 2 : 3))
				printf("# %s\n", errout);
			j[f] = json_loads(out, 0, NULL);
		}
		ok(j[0] && j[1] && json_equal(json_object_get(j[0], "expected_rows"), json_object_get(j[1], "expected_rows")) &&
		   json_equal(json_object_get(j[0], "transactions"), json_object_get(j[1], "transactions")) &&
		   json_equal(json_object_get(j[0], "row_operations"), json_object_get(j[1], "row_operations")) &&
		   json_equal(json_object_get(j[0], "base_lsn"), json_object_get(j[1], "base_lsn")) &&
		   json_array_size(json_object_get(j[1], "segments")) == json_array_size(json_object_get(j[0], "segments")),
		   "%s: the same plan (rows, transactions, operations, base, segment count)", points[i][0]);
		json_decref(j[0]);
		json_decref(j[1]);
	}
	snprintf(url, sizeof(url), "%s", url3);
	{
		const char *args[] = {"--relid", "16400", "--dry-run", "--json", "--latest", NULL};

		ok(run_cli("recover", args) == 0 && strstr(out, "\"expected_rows\": 4") != NULL,
		   "recover --relid 16400 --dry-run on the format-3 archive: %s", errout);
	}
	{
		const char *args[] = {"--table", "nope", "--dry-run", "--latest", NULL};

		ok(run_cli("recover", args) != 0 && strstr(errout, "\"public.nope\" is not in") != NULL,
		   "an unknown table in the format-3 archive refused: %s", errout);
	}
}

/* `backstop info --table`: the same table summary from either archive. */
static void
test_info(void)
{
	json_t *t[2] = {NULL, NULL};

	for (int f = 0; f < 2; f++)
	{
		const char *args[] = {"--table", "users", "--json", NULL};
		json_t *j;
		int rc;

		snprintf(url, sizeof(url), "%s", f == 0 ? url2 : url3);
		rc = run_cli("info", args);
		if (!ok(rc == 0, "info --table users on the format-%d archive: exit 0", f == 0 ? 2 : 3))
			printf("# %s\n", errout);
		j = json_loads(out, 0, NULL);
		t[f] = j ? json_incref(json_array_get(json_object_get(j, "tables"), 0)) : NULL;
		json_decref(j);
	}
	/* Each member but the segments' keys and sizes (pack runs have no stored size of their own). */
	{
		static const char *const same[] = {"relid", "schema", "name", "status", "archived_to", "names", "bases",
		"recovery_window", "findings", NULL};
		bool all = t[0] && t[1];

		for (int i = 0; all && same[i]; i++)
			if (json_object_get(t[0], same[i]) == NULL ||
				!json_equal(json_object_get(t[0], same[i]), json_object_get(t[1], same[i])))
			{
				char *a = json_dumps(json_object_get(t[0], same[i]), JSON_COMPACT),
					*b = json_dumps(json_object_get(t[1], same[i]), JSON_COMPACT);

				printf("# %s: %s vs %s\n", same[i], a ? a : "?", b ? b : "?");
				free(a);
				free(b);
				all = false;
			}
		ok(all, "info: the same table summary from format 3 as from format 2 (names, bases, archived_to, recovery "
		   "window, findings)");
	}
	json_decref(t[0]);
	json_decref(t[1]);
	{
		const char *args[] = {"--relid", "16400", NULL};

		snprintf(url, sizeof(url), "%s", url3);
		ok(run_cli("info", args) == 0 && strstr(out, "users") != NULL, "info --relid 16400 on the format-3 archive");
	}
}

/* A format-2 head for the format-2 archive with the format-3 head's values (what info shows of it). */
static void
head2(void)
{
	archive_head h;
	bs_error err;

	archive_head_init(&h);
	h.system_identifier = xstrdup("7000000000000000001");
	h.database = xstrdup("app");
	h.flushed_lsn = SEAL2;
	h.time = T0 + 7 * SEC;
	archive_head_note_table(&h, USERS, users2->generation, "public", "users");
	if (archive_head_store(st2, &h, &err) != BS_OK)
		bail("archive_head_store", &err);
	archive_head_clear(&h);
}

/* out with the archive's URL and the segments' stored sizes (pack runs have none of their own) cut. */
static char *
info_text_normalized(const char *url_shown)
{
	strbuf sb = STRBUF_INIT;
	const char *p = out;

	while (*p)
	{
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t) (eol - p) + 1 : strlen(p);
		const char *u = strstr(p, url_shown);
		const char *c = strstr(p, "  changes:");

		if (u && u < p + len)
		{
			strbuf_append(&sb, p, (size_t) (u - p));
			strbuf_append_str(&sb, "URL");
			strbuf_append(&sb, u + strlen(url_shown), len - (size_t) (u - p) - strlen(url_shown));
		}
		else if (c == p)
		{
			const char *cut = strstr(p, " record(s), ");

			strbuf_append(&sb, p, cut && cut < p + len ? (size_t) (cut - p) + 11 : len);
			strbuf_append_str(&sb, "\n");
		}
		else
			strbuf_append(&sb, p, len);
		p += len;
	}
	return strbuf_detach(&sb, NULL);
}

/* `backstop info` of the whole archive: the same from format 3 (one view) as from format 2. */
static void
test_info_all(void)
{
	char *text[2] = {NULL, NULL};
	json_t *j[2] = {NULL, NULL};
	const char *none[] = {NULL};
	const char *as_json[] = {"--json", NULL};

	head2();
	for (int f = 0; f < 2; f++)
	{
		snprintf(url, sizeof(url), "%s", f == 0 ? url2 : url3);
		if (!ok(run_cli("info", none) == 0, "info of the whole format-%d archive: exit 0", f == 0 ? 2 : 3))
			printf("# %s\n", errout);
		text[f] = info_text_normalized(url);
		if (!ok(run_cli("info", as_json) == 0, "info --json of the whole format-%d archive: exit 0", f == 0 ? 2 : 3))
			printf("# %s\n", errout);
		j[f] = json_loads(out, 0, NULL);
	}
	if (!ok(strcmp(text[0], text[1]) == 0 && strstr(text[1], "tables:       1\n") &&
			strstr(text[1], "public.users (relid 16400): active") &&
			strstr(text[1], "2 segment(s), 5 record(s)"),
			"info: the same text from format 3 as from format 2 (the segments' stored sizes aside)"))
		printf("# format 2:\n%s# format 3:\n%s", text[0], text[1]);
	/* JSON: the head, and each table but its segments' sizes and its generation (format 3 has none). */
	{
		bool same = j[0] && j[1] && json_equal(json_object_get(j[0], "head"), json_object_get(j[1], "head")) &&
			json_array_size(json_object_get(j[0], "tables")) == 1 &&
			json_array_size(json_object_get(j[1], "tables")) == 1;

		for (int f = 0; same && f < 2; f++)
		{
			json_t *t = json_array_get(json_object_get(j[f], "tables"), 0);

			json_object_del(json_object_get(t, "segments"), "size");
			json_object_del(json_object_get(t, "segments"), "raw_size");
			json_object_del(t, "generation");
		}
		same = same && json_equal(json_object_get(j[0], "tables"), json_object_get(j[1], "tables")) &&
			json_object_get(json_array_get(json_object_get(j[1], "tables"), 0), "bases") != NULL;
		if (!ok(same, "info --json: the same head and table from format 3 as from format 2"))
		{
			char *a = j[0] ? json_dumps(j[0], JSON_COMPACT) : NULL,
				*b = j[1] ? json_dumps(j[1], JSON_COMPACT) : NULL;

			printf("# %s\n# %s\n", a ? a : "?", b ? b : "?");
			free(a);
			free(b);
		}
	}
	for (int f = 0; f < 2; f++)
	{
		free(text[f]);
		json_decref(j[f]);
	}
	/* The catalog the head names missing: damage, exit 3. */
	{
		strbuf dir = STRBUF_INIT;
		char *key = packcat_dir_key(1);
		bs_error err;

		snprintf(url, sizeof(url), "%s", url3);
		if (storage_get_all(st3, key, &dir, &err) != BS_OK || storage_delete(st3, key, &err) != BS_OK)
			bail(key, &err);
		ok(run_cli("info", none) == EXIT_INTEGRITY && strstr(errout, "catalog/0000000000000001/dir.json\" is missing"),
		   "info of a format-3 archive whose catalog is missing: exit 3: %s", errout);
		if (storage_put(st3, key, dir.data, dir.len, &err) != BS_OK)
			bail(key, &err);
		strbuf_free(&dir);
		free(key);
	}
}

/* text with every u replaced by "URL". */
static char *
without_url(const char *text, const char *u)
{
	strbuf sb = STRBUF_INIT;
	const char *p = text,
			   *q;

	while ((q = strstr(p, u)) != NULL)
	{
		strbuf_append(&sb, p, (size_t) (q - p));
		strbuf_append_str(&sb, "URL");
		p = q + strlen(u);
	}
	strbuf_append_str(&sb, p);
	return strbuf_detach(&sb, NULL);
}

/* `backstop changes` args at u2 and u3: the same exit 0 and output (stdout, the archive's URL
 * aside) from either archive. */
static bool
same_changes(const char *u2, const char *u3, const char *const *args, const char *must)
{
	char *o[2] = {NULL, NULL};
	int rc[2];
	bool same;

	for (int f = 0; f < 2; f++)
	{
		snprintf(url, sizeof(url), "%s", f == 0 ? u2 : u3);
		rc[f] = run_cli("changes", args);
		o[f] = without_url(out, url);
		if (rc[f] != 0)
			printf("# format %d: exit %d: %s\n", f == 0 ? 2 : 3, rc[f], errout);
	}
	same = rc[0] == 0 && rc[1] == 0 && strcmp(o[0], o[1]) == 0 && strstr(o[1], must) != NULL;
	if (!same)
		printf("# format 2:\n%s# format 3:\n%s", o[0], o[1]);
	free(o[0]);
	free(o[1]);
	return same;
}

/* `backstop changes`: every table, one table's transactions and its row images, text and JSON. */
static void
test_changes(void)
{
	static const char *const all[] = {NULL};
	static const char *const all_json[] = {"--json", NULL};
	static const char *const one[] = {"--table", "users", NULL};
	static const char *const one_json[] = {"--table", "users", "--json", NULL};
	static const char *const one_summary[] = {"--table", "users", "--summary", "--from-lsn", "0/1501000", NULL};
	static const char *const range[] = {"--table", "users", "--from-lsn", "0/1501000", "--to-lsn", "0/1503000", NULL};

	ok(same_changes(url2, url3, all, "5 transaction(s)"), "changes of every table: format 3 lists format 2's");
	ok(same_changes(url2, url3, all_json, "\"count\": 5"), "changes --json of every table: the same");
	ok(same_changes(url2, url3, one, "5 change(s)"), "changes --table users (row images): the same");
	ok(same_changes(url2, url3, one_json, "\"changes\""), "changes --table users --json: the same");
	ok(same_changes(url2, url3, one_summary, "3 transaction(s)"), "changes --table users --summary --from-lsn: the same");
	ok(same_changes(url2, url3, range, "change(s)"), "changes --table users --from-lsn --to-lsn: the same");
}

/*
 * Several tables, renamed and partitioned: formats 2 and 3 of the same data for the look-ups
 * that read every table of the archive (format2.md 5 step 4c).
 */
#define OLD 16400				/* public.users, renamed to public.users_old at 0/1502000 */
#define NEW 16500				/* public.users from 0/1504000 */
#define PARTS 16600				/* public.parts: a partitioned table (skipped) */
#define MSEAL1 UINT64_C(0x1502800)
#define MSEAL2 UINT64_C(0x1506000)

typedef struct ev_ref
{
	uint64_t lsn;
	int table;
	int i;
	const char *json;
} ev_ref;

static int
cmp_ev(const void *a, const void *b)
{
	const ev_ref *x = a,
			   *y = b;

	if (x->lsn != y->lsn)
		return x->lsn < y->lsn ? -1 : 1;
	if (x->table != y->table)
		return x->table - y->table;
	return x->i - y->i;
}

/*
 * Format 3 of the tables ms (format 2 in src, ascending relid) in dst: every table's events
 * (mdelta_events from nothing) in the pack whose seal range holds their LSN, each table's
 * segments in a pack the run of that pack (their records concatenated), the base chunks
 * copied, a catalog at seq 1, a format-3 head at the last pack.
 */
static void
build_format3_of(storage *src, storage *dst, manifest *const *ms, int nm, const uint64_t *seals, int nseals,
				 uint64_t flushed)
{
	mdelta_list *ev = xcalloc((size_t) nm, sizeof(mdelta_list));
	ev_ref *all = NULL;
	int nall = 0;
	char (*sha)[65] = xcalloc((size_t) nseals, 65);
	pack_index *idx1 = NULL;
	packcat_dir *dir = NULL;
	archive_head h;
	bs_error err;

	for (int t = 0; t < nm; t++)
	{
		char *json = manifest_to_json(ms[t]);
		manifest *state;

		if (manifest_from_json(json, strlen(json), &state, &err) != BS_OK)
			bail("manifest_from_json", &err);
		free(json);
		for (int i = 0; i < state->nsegments; i++)
			free(state->segments[i].key);
		state->nsegments = 0;
		if (mdelta_events(NULL, state, 0, &ev[t], &err) != BS_OK)
			bail("mdelta_events", &err);
		manifest_free(state);
		all = xrealloc(all, (size_t) (nall + ev[t].n) * sizeof(ev_ref));
		for (int i = 0; i < ev[t].n; i++)
		{
			ev_ref r = {ev[t].events[i].lsn, t, i, ev[t].events[i].json};

			all[nall++] = r;
		}
		for (int b = 0; b < ms[t]->nbases; b++)
			for (int c = 0; c < ms[t]->bases[b].nchunks; c++)
			{
				strbuf bytes = STRBUF_INIT;
				const char *key = ms[t]->bases[b].chunks[c].key;

				if (storage_get_all(src, key, &bytes, &err) != BS_OK ||
					storage_put(dst, key, bytes.data, bytes.len, &err) != BS_OK)
					bail(key, &err);
				strbuf_free(&bytes);
			}
	}
	qsort(all, (size_t) nall, sizeof(ev_ref), cmp_ev);
	for (int p = 0; p < nseals; p++)
	{
		char *key = archive_log_key((uint64_t) p + 1);
		uint64_t lo = p == 0 ? 0 : seals[p - 1];
		strbuf bytes = STRBUF_INIT,
				raw = STRBUF_INIT;
		pack_writer *w;
		pack_meta meta = {(uint64_t) p + 1, (uint64_t) p + 1, seals[p], REC_TIME, NULL, p == 0 ? NULL : sha[p - 1]};

		if (pack_writer_open(key, 0, CODEC_ZSTD, 3, NULL, &bytes, &w, &err) != BS_OK)
			bail("pack_writer_open", &err);
		for (int i = 0; i < nall; i++)
			if (all[i].lsn >= lo && (all[i].lsn < seals[p] || p == nseals - 1) &&
				pack_writer_add_event(w, all[i].json, strlen(all[i].json), &err) != BS_OK)
				bail("pack_writer_add_event", &err);
		for (int t = 0; t < nm; t++)
		{
			strbuf_reset(&raw);
			for (int g = 0; g < ms[t]->nsegments; g++)
			{
				const manifest_segment *seg = &ms[t]->segments[g];
				strbuf obj = STRBUF_INIT;
				object_info info;

				if (seg->first_lsn < lo || seg->last_end_lsn > seals[p])
					continue;
				if (object_get_all(src, seg->key, seg->sha256, &obj, &info, &err) != BS_OK)
					bail("object_get_all", &err);
				strbuf_append(&raw, obj.data + SEGMENT_MAGIC_LEN, obj.len - SEGMENT_MAGIC_LEN);
				strbuf_free(&obj);
			}
			if (raw.len > 0 && pack_writer_add_run(w, ms[t]->relid, raw.data, raw.len, &bytes, &err) != BS_OK)
				bail("pack_writer_add_run", &err);
		}
		if (pack_writer_finish(w, &meta, &bytes, NULL, &err) != BS_OK ||
			storage_put(dst, key, bytes.data, bytes.len, &err) != BS_OK)
			bail("pack", &err);
		pack_writer_free(w);
		digest_sha256_hex(bytes.data, bytes.len, sha[p]);
		if (p == 0 && pack_open_buffer(key, bytes.data, bytes.len, NULL, &idx1, &err) != BS_OK)
			bail("pack_open_buffer", &err);
		strbuf_free(&bytes);
		strbuf_free(&raw);
		free(key);
	}
	if (packcat_write(NULL, packcat_storage_get, dst, (const pack_index *const *) &idx1, 1, sha[0],
					  packcat_storage_put, dst, &dir, &err) != BS_OK)
		bail("packcat_write", &err);
	archive_head_init(&h);
	h.format = ARCHIVE_HEAD_FORMAT_PACKS;
	h.system_identifier = xstrdup("7000000000000000001");
	h.database = xstrdup("app");
	h.flushed_lsn = flushed;
	h.time = T0 + 7 * SEC;
	h.tip_seq = (uint64_t) nseals;
	memcpy(h.tip_sha256, sha[nseals - 1], 65);
	h.catalog_seq = 1;
	if (archive_head_store(dst, &h, &err) != BS_OK)
		bail("archive_head_store", &err);
	archive_head_clear(&h);
	packcat_dir_free(dir);
	pack_index_free(idx1);
	for (int t = 0; t < nm; t++)
		mdelta_list_free(&ev[t]);
	free(ev);
	free(all);
	free(sha);
}

/* `recover --dry-run --json` of args at the archive at u: exit code, the JSON in *j (NULL: none). */
static int
dry_run_at(const char *u, const char *const *args, json_t **j)
{
	int rc;

	snprintf(url, sizeof(url), "%s", u);
	rc = run_cli("recover", args);
	*j = json_loads(out, 0, NULL);
	return rc;
}

/*
 * resolve_name_at_point and recover_parent over every table: --to-xid and --to-time of a
 * transaction of public.users before its rename find it (the first look finds the table named
 * so now, which cannot have the point); a partitioned parent finds its would-be partitions.
 */
static void
test_every_table(void)
{
	char dir4[] = "/tmp/backstop-recover3c-XXXXXX";
	char dir5[] = "/tmp/backstop-recover3d-XXXXXX";
	char u4[128],
		u5[128];
	storage *st4,
			   *st5,
			   *keep = st;
	manifest *ms[3];
	manifest_column cols[2] = {{"id", 23, -1, "integer", true, true, NULL}, {"name", 25, -1, "text", false, false, NULL}};
	static const char *const v_zed[] = {"9", "zed"};
	rec a1[] = {
		{'I', 0x1500100, 700, 1 * SEC, 0, NULL, v_carol},
		{'D', 0x1501000, 701, 2 * SEC, 0, v_key1, NULL},
	};
	rec a2[] = {{'U', 0x1503000, 702, 3 * SEC, 0, NULL, v_bobby}};
	rec b1[] = {{'I', 0x1505000, 705, 6 * SEC, 0, NULL, v_zed}};
	bs_error err;
	char t701[64],
		t705[64];

	if (mkdtemp(dir4) == NULL || mkdtemp(dir5) == NULL)
		exit(2);
	snprintf(u4, sizeof(u4), "file://%s", dir4);
	snprintf(u5, sizeof(u5), "file://%s", dir5);
	if (storage_open(u4, NULL, &st4, &err) != BS_OK || storage_open(u5, NULL, &st5, &err) != BS_OK)
		bail("storage_open", &err);
	st = st4;					/* the fixture writes objects to st */
	ms[0] = new_table(OLD, "users", "1\talice\n2\tbob\n", 2);
	add_segment(ms[0], a1, 2);
	manifest_add_name(ms[0], 0x1502000, "public", "users_old");
	add_segment(ms[0], a2, 1);
	ms[0]->archived_to = MSEAL2;
	ms[1] = manifest_new(NEW, "public", "users");
	manifest_add_layout(ms[1], 0x1504000, 'd', 2, cols);
	add_base(ms[1], 0x1504000, 4 * SEC, "7\tgrace\n", 1);
	add_segment(ms[1], b1, 1);
	ms[1]->archived_to = MSEAL2;
	ms[2] = manifest_new(PARTS, "public", "parts");
	free(ms[2]->status);
	ms[2]->status = xstrdup("skipped");
	ms[2]->finding = xstrdup("partitioned table (its partitions are archived as tables)");
	for (int t = 0; t < 3; t++)
		store(ms[t]);
	st = keep;
	/* Both archives flushed to 0/1506000 at +7 s: the window of an active table reaches it. */
	{
		archive_head h;

		archive_head_init(&h);
		h.system_identifier = xstrdup("7000000000000000001");
		h.database = xstrdup("app");
		h.flushed_lsn = MSEAL2;
		h.time = T0 + 7 * SEC;
		for (int t = 0; t < 3; t++)
			archive_head_note_table(&h, ms[t]->relid, ms[t]->generation, ms[t]->schema, ms[t]->name);
		if (archive_head_store(st4, &h, &err) != BS_OK)
			bail("archive_head_store", &err);
		archive_head_clear(&h);
	}
	{
		const uint64_t seals[2] = {MSEAL1, MSEAL2};

		build_format3_of(st4, st5, ms, 3, seals, 2, MSEAL2);
	}
	/* Transaction 700 committed at +1 s, 701 at +2 s, 705 at +6 s (as --to-time reads them: UTC);
	 * +1.5 s is placed before 701 (at 0/1501000), under the old name. */
	{
		char iso[ISOTIME_BUFLEN];

		snprintf(t701, sizeof(t701), "%s", isotime_format(T0 + SEC + SEC / 2, iso));
		snprintf(t705, sizeof(t705), "%s", isotime_format(T0 + 6 * SEC + SEC / 2, iso));
	}
	{
		struct
		{
			const char *flag;
			const char *value;
			const char *table;
			int rows;
		} cases[] = {
			{"--to-xid", "701", "public.users_old", 2},
			{"--to-time", t701, "public.users_old", 3},
			{"--to-xid", "705", "public.users", 2},
			{"--to-time", t705, "public.users", 2},
		};

		for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
		{
			const char *args[] = {"--table", "users", "--dry-run", "--json", cases[c].flag, cases[c].value, NULL};
			json_t *j[2];
			int rc[2];

			rc[0] = dry_run_at(u4, args, &j[0]);
			rc[1] = dry_run_at(u5, args, &j[1]);
			if (!ok(rc[0] == 0 && rc[1] == 0 && j[0] && j[1] &&
					strcmp(json_string_value(json_object_get(j[1], "table")), cases[c].table) == 0 &&
					json_equal(json_object_get(j[0], "table"), json_object_get(j[1], "table")) &&
					json_equal(json_object_get(j[0], "expected_rows"), json_object_get(j[1], "expected_rows")) &&
					json_integer_value(json_object_get(j[1], "expected_rows")) == cases[c].rows,
					"recover --table users %s %s: %s in format 3 as in format 2 (%d rows)", cases[c].flag,
					cases[c].value, cases[c].table, cases[c].rows))
				printf("# exit %d/%d: %s\n# %s\n", rc[0], rc[1], errout, out);
			json_decref(j[0]);
			json_decref(j[1]);
		}
	}
	{
		const char *args[] = {"--table", "parts", "--dry-run", "--latest", NULL};
		char *e2;

		snprintf(url, sizeof(url), "%s", u4);
		ok(run_cli("recover", args) == EXIT_FAILURE_RUNTIME, "recover --table parts (format 2): refused");
		e2 = xstrdup(errout);
		snprintf(url, sizeof(url), "%s", u5);
		if (!ok(run_cli("recover", args) == EXIT_FAILURE_RUNTIME && strcmp(errout, e2) == 0 &&
				strstr(errout, "public.parts cannot be recovered as a whole: the definition of table public.users_old "
					   "(relid 16400) was captured by a Backstop that did not record partitions"),
				"recover --table parts (format 3): every table read as in format 2, the same refusal"))
			printf("# format 2: %s# format 3: %s", e2, errout);
		free(e2);
	}
	{
		static const char *const all[] = {NULL};
		static const char *const renamed[] = {"--table", "users_old", NULL};

		ok(same_changes(u4, u5, all, "4 transaction(s)"), "changes of every table of the renamed and partitioned case: "
		   "the same from format 3 (one view) as from format 2");
		ok(same_changes(u4, u5, renamed, "3 change(s)"), "changes --table users_old: the same");
	}
	for (int t = 0; t < 3; t++)
		manifest_free(ms[t]);
	storage_close(st4);
	storage_close(st5);
	snprintf(url, sizeof(url), "rm -rf '%s' '%s'", dir4, dir5);
	if (system(url) != 0)
		printf("# could not remove %s, %s\n", dir4, dir5);
}

int
main(void)
{
	char dir[] = "/tmp/backstop-recover3-XXXXXX";
	char dir3[] = "/tmp/backstop-recover3b-XXXXXX";
	bs_error err;

	if (fixture_open(dir) != BS_OK || mkdtemp(dir3) == NULL)
		return 2;
	st2 = st;
	snprintf(url2, sizeof(url2), "%s", url);
	snprintf(url3, sizeof(url3), "file://%s", dir3);
	if (storage_open(url3, NULL, &st3, &err) != BS_OK)
		bail("storage_open", &err);
	build_format2();
	build_format3();
	test_plans();
	test_command();
	test_info();
	test_info_all();
	test_changes();
	test_every_table();
	manifest_free(users2);
	storage_close(st3);
	snprintf(url, sizeof(url), "rm -rf '%s'", dir3);
	if (system(url) != 0)
		printf("# could not remove %s\n", dir3);
	fixture_close(dir);
	return done_testing();
}
