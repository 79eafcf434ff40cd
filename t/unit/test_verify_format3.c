/* test_verify_format3.c — `backstop verify` on a format-3 archive (format2.md 3.6, 3.9, 5 step 5): a clean log, and each kind of damage with its message and exit code. */
#include "archive_fixture.h"
#include "archive_load.h"
#include "cmd_verify.h"
#include "digest.h"
#include "mdelta.h"
#include "pack.h"
#include "packcat.h"

#include <inttypes.h>
#include <jansson.h>

#define USERS 16400
#define NPACKS 3

static uint64_t seals[NPACKS] = {UINT64_C(0x1502000), UINT64_C(0x1504000), UINT64_C(0x1506000)};

static const char *const v_carol[] = {"3", "carol"};
static const char *const v_key1[] = {"1", NULL};
static const char *const v_bobby[] = {"2", "bobby"};
static const char *const v_dave[] = {"4", "dave"};
static const char *const v_eve[] = {"5", "eve"};

static char dir2[] = "/tmp/backstop-test-verify3-src-XXXXXX";
static char dir3[64];
static storage *st2;			/* the format-2 archive the format-3 one is built from */
static storage *st3;
static manifest *users2;
static char pack_sha[NPACKS][65];
static strbuf pack_bytes[NPACKS];
/* Pack i + 1 written with this prev instead of its predecessor's hash (NULL: the right one, none for pack 1). */
static const char *prev_override[NPACKS];
/* An event added to pack i + 1 after the table's (NULL: none). */
static const char *extra_event[NPACKS];

static void
bail(const char *what, const bs_error *err)
{
	printf("Bail out! %s: %s\n", what, err->message);
	exit(2);
}

/* users: a base copy (alice, bob) and three segments, one per pack-to-be. */
static void
build_format2(void)
{
	rec seg1[] = {
		{'I', 0x1500100, 700, 1 * SEC, 0, NULL, v_carol},
		{'D', 0x1501000, 701, 2 * SEC, 0, v_key1, NULL},
	};
	rec seg2[] = {
		{'U', 0x1502000, 702, 3 * SEC, 0, NULL, v_bobby},
		{'I', 0x1503000, 703, 4 * SEC, 0, NULL, v_dave},
	};
	rec seg3[] = {
		{'I', 0x1505000, 705, 6 * SEC, 0, NULL, v_eve},
	};

	users2 = new_table(USERS, "users", "1\talice\n2\tbob\n", 2);
	add_segment(users2, seg1, 2);
	add_segment(users2, seg2, 2);
	add_segment(users2, seg3, 1);
	users2->archived_to = seals[NPACKS - 1];
}

/* The raw records of segment i (without the magic). */
static void
records_of(int i, strbuf *res)
{
	strbuf raw = STRBUF_INIT;
	object_info info;
	bs_error err;

	if (object_get_all(st2, users2->segments[i].key, users2->segments[i].sha256, &raw, &info, &err) != BS_OK)
		bail("object_get_all", &err);
	strbuf_reset(res);
	strbuf_append(res, raw.data + SEGMENT_MAGIC_LEN, raw.len - SEGMENT_MAGIC_LEN);
	strbuf_free(&raw);
}

/*
 * The format-3 archive of users in a new directory (st3, url): the table's events (mdelta_events
 * from nothing) in the pack whose seal range holds their LSN, segment i the run of pack i + 1,
 * the base chunk copied, a catalog at cat_seq, a format-3 head at tip 3.
 */
static void
build_format3(uint64_t cat_seq)
{
	manifest *state;
	mdelta_list ev;
	char *json = manifest_to_json(users2);
	pack_index *idx[NPACKS];
	packcat_dir *dir = NULL;
	storage_options so;
	archive_head h;
	bs_error err;

	snprintf(dir3, sizeof(dir3), "/tmp/backstop-test-verify3-XXXXXX");
	if (mkdtemp(dir3) == NULL)
		exit(2);
	snprintf(url, sizeof(url), "file://%s", dir3);
	memset(&so, 0, sizeof(so));
	if (storage_open(url, &so, &st3, &err) != BS_OK)
		bail("storage_open", &err);
	if (manifest_from_json(json, strlen(json), &state, &err) != BS_OK)
		bail("manifest_from_json", &err);
	free(json);
	for (int i = 0; i < state->nsegments; i++)
		free(state->segments[i].key);
	state->nsegments = 0;
	if (mdelta_events(NULL, state, 0, &ev, &err) != BS_OK)
		bail("mdelta_events", &err);
	for (int p = 0; p < NPACKS; p++)
	{
		char *key = archive_log_key((uint64_t) p + 1);
		strbuf raw = STRBUF_INIT;
		pack_writer *w;
		const char *prev = prev_override[p] ? prev_override[p] : p == 0 ? NULL : pack_sha[p - 1];
		pack_meta meta = {(uint64_t) p + 1, (uint64_t) p + 1, seals[p], REC_TIME, NULL, prev};

		strbuf_reset(&pack_bytes[p]);
		if (pack_writer_open(key, 0, CODEC_ZSTD, 3, NULL, &pack_bytes[p], &w, &err) != BS_OK)
			bail("pack_writer_open", &err);
		for (int i = 0; i < ev.n; i++)
			if (ev.events[i].lsn < seals[p] && (p == 0 || ev.events[i].lsn >= seals[p - 1]) &&
				pack_writer_add_event(w, ev.events[i].json, strlen(ev.events[i].json), &err) != BS_OK)
				bail("pack_writer_add_event", &err);
		if (extra_event[p] && pack_writer_add_event(w, extra_event[p], strlen(extra_event[p]), &err) != BS_OK)
			bail("pack_writer_add_event", &err);
		records_of(p, &raw);
		if (pack_writer_add_run(w, USERS, raw.data, raw.len, &pack_bytes[p], &err) != BS_OK ||
			pack_writer_finish(w, &meta, &pack_bytes[p], NULL, &err) != BS_OK ||
			storage_put(st3, key, pack_bytes[p].data, pack_bytes[p].len, &err) != BS_OK ||
			pack_open_buffer(key, pack_bytes[p].data, pack_bytes[p].len, NULL, &idx[p], &err) != BS_OK)
			bail("pack", &err);
		pack_writer_free(w);
		digest_sha256_hex(pack_bytes[p].data, pack_bytes[p].len, pack_sha[p]);
		strbuf_free(&raw);
		free(key);
	}
	for (int c = 0; c < users2->bases[0].nchunks; c++)
	{
		strbuf b = STRBUF_INIT;
		const char *key = users2->bases[0].chunks[c].key;

		if (storage_get_all(st2, key, &b, &err) != BS_OK || storage_put(st3, key, b.data, b.len, &err) != BS_OK)
			bail(key, &err);
		strbuf_free(&b);
	}
	if (packcat_write(NULL, packcat_storage_get, st3, (const pack_index *const *) idx, (int) cat_seq,
					  pack_sha[cat_seq - 1], packcat_storage_put, st3, &dir, &err) != BS_OK)
		bail("packcat_write", &err);
	archive_head_init(&h);
	h.format = ARCHIVE_HEAD_FORMAT_PACKS;
	h.system_identifier = xstrdup("7000000000000000001");
	h.database = xstrdup("app");
	h.flushed_lsn = seals[NPACKS - 1];
	h.time = T0 + 7 * SEC;
	h.tip_seq = NPACKS;
	memcpy(h.tip_sha256, pack_sha[NPACKS - 1], 65);
	h.catalog_seq = cat_seq;
	if (archive_head_store(st3, &h, &err) != BS_OK)
		bail("archive_head_store", &err);
	archive_head_clear(&h);
	packcat_dir_free(dir);
	for (int p = 0; p < NPACKS; p++)
		pack_index_free(idx[p]);
	mdelta_list_free(&ev);
	manifest_free(state);
}

static void
drop_format3(void)
{
	char cmd[128];

	storage_close(st3);
	st3 = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir3);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir3);
}

/* `backstop verify --storage URL args...`. */
static int
run(const char *const *args)
{
	static const char *const allowed[] = {"storage", "table", "json", NULL};

	return run_command(cmd_verify, allowed, args);
}

static void
put_key(const char *key, const void *data, size_t len)
{
	bs_error err;

	if (storage_put(st3, key, data, len, &err) != BS_OK)
		bail(key, &err);
}

static void
delete_key(const char *key)
{
	bs_error err;

	if (storage_delete(st3, key, &err) != BS_OK)
		bail(key, &err);
}

/* verify (args) on the archive: exit code want_rc, and each of the strings (NULL-ended) in stdout. */
static void
expect(const char *const *args, int want_rc, const char *const *texts, const char *what)
{
	int rc = run(args);
	bool good = rc == want_rc;

	for (int i = 0; texts[i]; i++)
		good = good && strstr(out, texts[i]) != NULL;
	if (!ok(good, "%s (exit %d)", what, rc))
		show();
}

static const char *const bare[] = {NULL};

static void
test_clean(void)
{
	static const char *const json[] = {"--json", NULL};
	static const char *const one[] = {"--table", "users", NULL};
	static const char *const nope[] = {"--table", "nope", NULL};
	json_t *j;
	int rc;

	for (uint64_t cat = 1; cat <= NPACKS; cat += NPACKS - 1)
	{
		build_format3(cat);
		expect(bare, 0, (const char *const[]) {"OK: 3 pack(s), 1 table(s), 3 run(s), ", "0 problem(s), 0 warning(s)",
					NULL}, cat == 1 ? "a clean archive, the catalog at seq 1: OK" : "a clean archive, the catalog at "
			   "the tip: OK");
		ok(strstr(out, "PROBLEM") == NULL && strstr(out, "warning:") == NULL, "nothing reported");
		drop_format3();
	}
	build_format3(1);
	rc = run(json);
	j = json_loads(out, 0, NULL);
	ok(rc == 0 && j && json_is_true(json_object_get(j, "ok")) &&
	   json_integer_value(json_object_get(j, "packs")) == 3 && json_integer_value(json_object_get(j, "tables")) == 1 &&
	   json_integer_value(json_object_get(j, "runs")) == 3 &&
	   json_integer_value(json_object_get(j, "objects")) == 3 + 1 + 3 &&
	   json_array_size(json_object_get(j, "problems")) == 0, "--json: packs, tables, runs, objects (packs, the base "
	   "chunk, the table's runs read again through segfetch)");
	json_decref(j);
	expect(one, 0, (const char *const[]) {"OK: 3 pack(s), 1 table(s), 3 run(s)", NULL}, "--table users: OK");
	rc = run(nope);
	ok(rc == EXIT_FAILURE_RUNTIME && strstr(errout, "\"public.nope\" is not in"), "--table of no table: exit 1: %s",
	   errout);
	drop_format3();
}

/* Pack 2 deleted: the hole names its key (the catalog before it, then at the tip). */
static void
test_hole(void)
{
	static const char *const json[] = {"--json", NULL};
	char *key = archive_log_key(2);
	json_t *j;

	build_format3(1);
	delete_key(key);
	expect(bare, EXIT_INTEGRITY, (const char *const[]) {"PROBLEM: - log/0000000000000002.bsp: missing from the log "
				"(the log lists seq 3 next, after \"log/0000000000000001.bsp\")", "DAMAGED: 2 pack(s)", NULL},
		   "pack 2 deleted, the catalog at 1: the hole named, exit 3");
	ok(strstr(out, "warning: - head.json: the tables cannot be read: pack \"log/0000000000000002.bsp\" is missing")
	   != NULL, "the tables not checked: said as a warning (the damage is said once)");
	run(json);
	j = json_loads(out, 0, NULL);
	ok(j && json_is_false(json_object_get(j, "ok")) &&
	   strcmp(json_string_value(json_object_get(json_array_get(json_object_get(j, "problems"), 0), "key")),
			  "log/0000000000000002.bsp") == 0, "--json: the problem's key is the missing pack's");
	json_decref(j);
	drop_format3();

	build_format3(3);
	delete_key(key);
	expect(bare, EXIT_INTEGRITY, (const char *const[]) {"log/0000000000000002.bsp: missing from the log",
				"PROBLEM: - catalog/0000000000000003/dir.json: relid 16400: pack \"log/0000000000000002.bsp\" is "
				"missing from the log", NULL}, "pack 2 deleted, the catalog at the tip: the hole, and the table's "
		   "runs before the catalog refused");
	drop_format3();
	build_format3(3);
	key[strlen(key) - 5] = '3';
	delete_key(key);
	expect(bare, EXIT_INTEGRITY, (const char *const[]) {"log/0000000000000003.bsp: missing from the log "
				"(\"head.json\" names seq 3 as the tip, and the log ends at seq 2)", NULL},
		   "the tip deleted: the log ends below the head's tip");
	drop_format3();
	free(key);
}

/* One byte of pack 2's first frame flipped: its run's frame, and the chain at pack 3. */
static void
test_flipped(void)
{
	char *key = archive_log_key(2);
	strbuf b = STRBUF_INIT;

	build_format3(1);
	strbuf_append(&b, pack_bytes[1].data, pack_bytes[1].len);
	b.data[PACK_HEADER_SIZE + 3] ^= 0x20;
	put_key(key, b.data, b.len);
	expect(bare, EXIT_INTEGRITY, (const char *const[]) {"PROBLEM: - log/0000000000000002.bsp: ",
				"SHA-256", "PROBLEM: - log/0000000000000003.bsp: names ", " as its predecessor's SHA-256, but "
				"\"log/0000000000000002.bsp\" has SHA-256 ", "(the chain is broken)", NULL},
		   "a byte of pack 2 flipped: its frame refused, the chain broken at pack 3");
	drop_format3();
	strbuf_free(&b);
	free(key);
}

/* Pack 2 replaced by a valid pack naming another predecessor. */
static void
test_replaced(void)
{
	static const char other[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
	char *key = archive_log_key(2);
	strbuf good = STRBUF_INIT;
	char want[512];

	build_format3(1);
	strbuf_append(&good, pack_bytes[1].data, pack_bytes[1].len);
	drop_format3();
	prev_override[1] = other;
	build_format3(1);			/* packs 2 and 3 chained to the other pack 2 */
	prev_override[1] = NULL;
	snprintf(want, sizeof(want), "PROBLEM: - log/0000000000000002.bsp: names %s as its predecessor's SHA-256, but "
			 "\"log/0000000000000001.bsp\" has SHA-256 %s (the chain is broken)", other, pack_sha[0]);
	expect(bare, EXIT_INTEGRITY, (const char *const[]) {want, "DAMAGED: 3 pack(s)", NULL},
		   "pack 2 naming another predecessor: the chain is broken, naming both packs");
	ok(strstr(out, "log/0000000000000003.bsp") == NULL, "pack 3 chains to the pack 2 in place: nothing said of it");
	put_key(key, good.data, good.len);
	expect(bare, EXIT_INTEGRITY, (const char *const[]) {"PROBLEM: - log/0000000000000003.bsp: names",
				"\"log/0000000000000002.bsp\" has SHA-256", "(the chain is broken)", NULL},
		   "pack 2 replaced by a valid pack of the right prev but other bytes: broken at pack 3");
	drop_format3();
	strbuf_free(&good);
	free(key);
}

/* The first pack naming a predecessor; a pack cut short; a seal LSN going back. */
static void
test_log_order(void)
{
	static const char other[] = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
	char *key = archive_log_key(2);
	char want[512];

	prev_override[0] = other;
	build_format3(1);
	prev_override[0] = NULL;
	snprintf(want, sizeof(want), "PROBLEM: - log/0000000000000001.bsp: is the first pack of the log, but names %s as "
			 "its predecessor's SHA-256", other);
	expect(bare, EXIT_INTEGRITY, (const char *const[]) {want, NULL}, "the first pack naming a predecessor: refused");
	drop_format3();

	build_format3(1);
	put_key(key, pack_bytes[1].data, pack_bytes[1].len / 2);
	expect(bare, EXIT_INTEGRITY, (const char *const[]) {"PROBLEM: - log/0000000000000002.bsp: pack "
				"\"log/0000000000000002.bsp\"", "PROBLEM: - log/0000000000000003.bsp: names ",
				"but \"log/0000000000000002.bsp\" has SHA-256", "(the chain is broken)", NULL},
		   "pack 2 cut short: its footer refused, the chain broken at pack 3 (its bytes are not the ones named)");
	ok(strstr(out, "DAMAGED: 3 pack(s), 0 table(s), 2 run(s)") != NULL, "pack 2's run not counted as read");
	drop_format3();

	/* Pack 2's bytes under key 4: a pack whose first seq is not its key's. */
	build_format3(1);
	{
		char *k4 = archive_log_key(4);

		put_key(k4, pack_bytes[1].data, pack_bytes[1].len);
		free(k4);
	}
	expect(bare, EXIT_INTEGRITY, (const char *const[]) {"PROBLEM: - log/0000000000000004.bsp: starts at sequence "
				"number 2, not the 4 of its key", NULL}, "a pack under another sequence number's key: refused");
	drop_format3();

	/* An event of another table that does not fold (a member no kind has). */
	extra_event[1] = "{\"kind\":\"existed_to\",\"lsn\":\"0/1503000\",\"relid\":16999,\"existed_to\":\"0/1503000\","
		"\"bogus\":1}";
	build_format3(1);
	extra_event[1] = NULL;
	expect(bare, EXIT_INTEGRITY, (const char *const[]) {"PROBLEM: - log/0000000000000002.bsp: ", "relid 16999", NULL},
		   "a malformed event of a table with no run: refused by the walk");
	drop_format3();

	/* The catalog's pack (the tip) edited: the catalog and the head name other bytes. */
	build_format3(3);
	{
		char *k3 = archive_log_key(3);
		strbuf b = STRBUF_INIT;

		strbuf_append(&b, pack_bytes[2].data, pack_bytes[2].len);
		b.data[PACK_HEADER_SIZE + 3] ^= 0x20;
		put_key(k3, b.data, b.len);
		strbuf_free(&b);
		free(k3);
	}
	expect(bare, EXIT_INTEGRITY, (const char *const[]) {"PROBLEM: - catalog/0000000000000003/dir.json: records SHA-256 ",
				"for pack \"log/0000000000000003.bsp\", which has ", "PROBLEM: - head.json: records SHA-256 ", NULL},
		   "the catalog's pack edited: the catalog's and the head's hashes refuse it");
	drop_format3();

	seals[2] = UINT64_C(0x1503800);
	build_format3(1);
	seals[2] = UINT64_C(0x1506000);
	expect(bare, EXIT_INTEGRITY, (const char *const[]) {"PROBLEM: - log/0000000000000003.bsp: has seal LSN 0/1503800, "
				"below the previous pack's 0/1504000", "PROBLEM: - log/0000000000000003.bsp: relid 16400: has a run "
				"(0/1505000 to 0/1505080) outside the pack's seal range", NULL},
		   "a seal LSN going back, and a run beyond its pack's seal");
	drop_format3();
	free(key);
}

/* The head's tip hash is another pack's; the catalog's pack hash another's. */
static void
test_head_and_catalog(void)
{
	archive_head h;
	bool exists = false;
	bs_error err;
	char want[512];

	build_format3(1);
	if (archive_head_load_any(st3, &h, &exists, &err) != BS_OK)
		bail("archive_head_load_any", &err);
	memcpy(h.tip_sha256, pack_sha[1], 65);
	if (archive_head_store(st3, &h, &err) != BS_OK)
		bail("archive_head_store", &err);
	archive_head_clear(&h);
	snprintf(want, sizeof(want), "PROBLEM: - head.json: records SHA-256 %s for the tip, seq 3, but pack "
			 "\"log/0000000000000003.bsp\" has %s (the chain is broken)", pack_sha[1], pack_sha[2]);
	expect(bare, EXIT_INTEGRITY, (const char *const[]) {want, NULL}, "head.json's tip_sha256 another pack's: refused");
	drop_format3();
}

/* A catalog page edited (one byte): refused by its hash when the table folds. */
static void
test_page(void)
{
	char *pkey = packcat_page_key(1, 0);
	strbuf b = STRBUF_INIT;
	bs_error err;
	char *p;

	build_format3(1);
	if (storage_get_all(st3, pkey, &b, &err) != BS_OK)
		bail(pkey, &err);
	p = strstr(b.data, "alice");
	if (p == NULL)
		p = strstr(b.data, "users");
	if (p)
		p[0] ^= 0x01;
	put_key(pkey, b.data, b.len);
	expect(bare, EXIT_INTEGRITY, (const char *const[]) {"PROBLEM: - catalog/0000000000000001/dir.json: relid 16400:",
				"catalog page \"catalog/0000000000000001/0000.json\"", "the dir says", NULL},
		   "a catalog page edited: refused by its SHA-256, exit 3");
	delete_key(pkey);
	expect(bare, EXIT_INTEGRITY, (const char *const[]) {"PROBLEM: - catalog/0000000000000001/dir.json: catalog "
				"\"catalog/0000000000000001/dir.json\", relid 16400: could not read \"catalog/0000000000000001/0000.json\"",
				NULL}, "a catalog page missing: exit 3, the relid named once");
	drop_format3();
	build_format3(1);
	delete_key("catalog/0000000000000001/dir.json");
	expect(bare, EXIT_INTEGRITY, (const char *const[]) {"PROBLEM: - catalog/0000000000000001/dir.json: missing, but "
				"\"head.json\" names catalog seq 1", NULL}, "the catalog's dir missing: exit 3");
	drop_format3();
	strbuf_free(&b);
	free(pkey);
}

/* The base chunk deleted, and one changed: as format 2 says it. */
static void
test_base_chunk(void)
{
	const char *ckey = users2->bases[0].chunks[0].key;
	char want[160];

	build_format3(1);
	delete_key(ckey);
	snprintf(want, sizeof(want), "PROBLEM: public.users (relid 16400) %s: missing from storage", ckey);
	expect(bare, EXIT_INTEGRITY, (const char *const[]) {want, "DAMAGED: 3 pack(s), 1 table(s), 3 run(s)", NULL},
		   "the base chunk deleted: missing from storage, exit 3");
	put_key(ckey, "x", 1);
	snprintf(want, sizeof(want), "PROBLEM: public.users (relid 16400) %s: stored size is 1 bytes", ckey);
	expect(bare, EXIT_INTEGRITY, (const char *const[]) {want, NULL}, "the base chunk replaced: refused, exit 3");
	put_key("tables/16999/base/0000000001500000/chunk-000001.bso", "x", 1);
	expect(bare, EXIT_INTEGRITY, (const char *const[]) {"warning: - tables/16999/base/0000000001500000/chunk-000001.bso: "
				"under the directory of relid 16999, which neither the catalog nor the log knows", NULL},
		   "objects of a table the archive does not know: a warning");
	put_key("tables/x/stray", "x", 1);
	expect(bare, EXIT_INTEGRITY, (const char *const[]) {"warning: - tables/x/stray: not under a valid table directory",
				NULL}, "an object outside any table directory: a warning");
	drop_format3();
}

int
main(void)
{
	storage_options so;
	bs_error err;

	setenv("TZ", "UTC", 1);
	if (mkdtemp(dir2) == NULL)
		return 1;
	snprintf(url, sizeof(url), "file://%s", dir2);
	memset(&so, 0, sizeof(so));
	if (storage_open(url, &so, &st2, &err) != BS_OK)
		bail("storage_open", &err);
	st = st2;					/* the fixture's segments and bases go to the format-2 archive */
	build_format2();

	test_clean();
	test_hole();
	test_flipped();
	test_replaced();
	test_log_order();
	test_head_and_catalog();
	test_page();
	test_base_chunk();

	for (int p = 0; p < NPACKS; p++)
		strbuf_free(&pack_bytes[p]);
	manifest_free(users2);
	snprintf(url, sizeof(url), "%s", dir2);
	fixture_close(dir2);
	return done_testing();
}
