/* test_verify_damage.c — `backstop verify` on damage inside segments and base chunks, and on what it only warns about. */
#include "archive_fixture.h"
#include "cmd_verify.h"
#include "tap.h"

#include <jansson.h>

static char dir[] = "/tmp/backstop-test-verify-damage-XXXXXX";

/* `backstop verify --storage URL args...`. */
static int
run(const char *const *args)
{
	static const char *const allowed[] = {"storage", "table", "json", NULL};

	return run_command(cmd_verify, allowed, args);
}

static const char *const v_a[] = {"3", "carol"};
static const char *const v_b[] = {"4", "dave"};

/* A table named t<relid> with a base copy of two rows and the given segment. */
static manifest *
table_with(uint32_t relid, const rec *recs, int n)
{
	char name[32];
	manifest *m;

	snprintf(name, sizeof(name), "t%u", relid);
	m = new_table(relid, name, "1\talice\n2\tbob\n", 2);
	if (n)
		add_segment(m, recs, n);
	m->archived_to = 0x1510000;
	return m;
}

/* Move segment i's object to the key of a new range and record that range (contents unchanged). */
static void
retarget(manifest *m, int i, uint64_t first, uint64_t last_end)
{
	manifest_segment *s = &m->segments[i];
	strbuf data = STRBUF_INIT;
	bs_error err;
	char *key = manifest_segment_key(m->relid, first, last_end);

	if (storage_get_all(st, s->key, &data, &err) != BS_OK || storage_put(st, key, data.data, data.len, &err) != BS_OK ||
		storage_delete(st, s->key, &err) != BS_OK)
		printf("# retarget: %s\n", err.message);
	free(s->key);
	s->key = key;
	s->first_lsn = first;
	s->last_end_lsn = last_end;
	strbuf_free(&data);
}

/* Verify one table: exit code, and whether both strings are in the report. */
static void
expect(const char *table, int want_rc, const char *a, const char *b, const char *what)
{
	const char *args[] = {"--table", table, NULL};
	int rc = run(args);

	if (!ok(rc == want_rc && strstr(out, a) && (b == NULL || strstr(out, b)), "%s", what))
		show();
}

int
main(void)
{
	static const char *const bare[] = {NULL};
	static const char *const stray[] = {"extra", NULL};
	static const char *const json[] = {"--json", NULL};
	bs_error err;
	int rc;

	if (fixture_open(dir) != BS_OK)
		return 1;

	rc = run(stray);
	if (!ok(rc == EXIT_USAGE && strstr(errout, "backstop verify: ERROR: unexpected argument \"extra\""), "a positional argument: exit 2"))
		show();
	rc = run(bare);
	if (!ok(rc == EXIT_FAILURE_RUNTIME && strstr(errout, "backstop verify: ERROR: no archive at file://"),
			"an empty storage is no archive: exit 1"))
		show();

	/* A clean table, no head.json yet: a warning only. */
	{
		rec r[] = {{'I', 0x1500100, 700, SEC, 0, NULL, v_a}};
		manifest *m = table_with(16401, r, 1);

		store(m);
		manifest_free(m);
		rc = run(bare);
		if (!ok(rc == EXIT_OK && strstr(out, "head.json") && strstr(out, "missing: the archiver has not completed a seal yet"),
				"a clean archive without head.json verifies, with a warning"))
			show();
	}

	/* Records that disagree with the manifest's entry. */
	{
		rec r[] = {{'I', 0x1500100, 700, SEC, 0, NULL, v_a}, {'I', 0x1500200, 701, 2 * SEC, 0, NULL, v_b}};
		manifest *m = table_with(16402, r, 2);

		retarget(m, 0, 0x1500080, 0x1500300);
		store(m);
		manifest_free(m);
		expect("t16402", EXIT_INTEGRITY, "first record has commit LSN 0/1500100, the manifest records 0/1500080",
			   "last record ends at 0/1500280, the manifest records 0/1500300",
			   "a segment whose records start and end elsewhere than its entry says");
	}
	{
		rec r[] = {{'I', 0x1500300, 700, SEC, 0, NULL, v_a}, {'I', 0x1500200, 701, 2 * SEC, 0, NULL, v_b}};
		manifest *m = table_with(16403, r, 2);

		store(m);
		manifest_free(m);
		expect("t16403", EXIT_INTEGRITY, "record 2 (commit LSN 0/1500200) is out of commit order", NULL,
			   "records out of commit order");
	}
	{
		rec r[] = {{'I', 0x1500100, 700, SEC, 7, NULL, v_a}};
		manifest *m = table_with(16404, r, 1);

		store(m);
		manifest_free(m);
		expect("t16404", EXIT_INTEGRITY, "record 1 uses layout 7, which the manifest lacks", NULL,
			   "a record under a layout the manifest does not have");
	}
	/* An object that is not a segment at all, under a segment's entry. */
	{
		manifest *m = table_with(16405, NULL, 0);
		manifest_segment seg;
		object_info info;

		memset(&seg, 0, sizeof(seg));
		seg.first_lsn = 0x1500100;
		seg.last_end_lsn = 0x1500180;
		seg.first_time = seg.last_time = T0 + SEC;
		seg.records = 1;
		seg.key = manifest_segment_key(16405, seg.first_lsn, seg.last_end_lsn);
		ok(object_put(st, seg.key, CODEC_ZSTD, 1, "not a segment", 13, &info, &err) == BS_OK, "junk stored as a segment object");
		memcpy(seg.sha256, info.stored_sha256, 65);
		seg.size = info.stored_size;
		seg.raw_size = info.raw_size;
		manifest_add_segment(m, &seg);
		free(seg.key);
		store(m);
		manifest_free(m);
		expect("t16405", EXIT_INTEGRITY, "tables/16405/seg/0000000001500100-0000000001500180.bso:", "segment",
			   "an object that is not a segment is a problem");
	}
	/* A base chunk whose last row has no newline. */
	{
		manifest *m = new_table(16406, "t16406", "1\talice\n2\tbob", 2);

		m->archived_to = 0x1510000;
		store(m);
		manifest_free(m);
		expect("t16406", EXIT_INTEGRITY, "does not end at a line boundary (COPY text rows end with a newline)", NULL,
			   "a base chunk cut inside a row");
	}

	/* States the archiver leaves, reported as warnings: exit 0. */
	{
		manifest *m = manifest_new(16407, "public", "t16407");
		manifest_column cols[1] = {{"id", 23, -1, "integer", true, true, NULL}};

		manifest_add_layout(m, BASE_LSN, 'd', 1, cols);
		store(m);
		manifest_free(m);
		expect("t16407", EXIT_OK, "no base copy: the table cannot be recovered yet", NULL, "a table without a base copy: a warning");
	}
	{
		manifest *m = table_with(16408, NULL, 0);
		manifest_gap gaps[2] = {{0x1500400, 0x1500800}, {0x1500900, MANIFEST_GAP_OPEN}};

		m->archived_to = 0x1400000;
		m->nschema_gaps = 2;
		m->schema_gaps = xmalloc(sizeof(gaps));
		memcpy(m->schema_gaps, gaps, sizeof(gaps));
		store(m);
		manifest_free(m);
		expect("t16408", EXIT_OK, "newest base copy (0/1500000) is ahead of archived_to (0/1400000)",
			   "the schema changed at an unknown point between 0/1500400 and 0/1500800 (not captured)",
			   "a base ahead of the stream and a closed schema window: warnings");
		expect("t16408", EXIT_OK, "the schema changed at an unknown point after 0/1500900 (not captured)", NULL,
			   "an open schema window: a warning");
	}
	/* Objects nobody lists: a leftover, an expired base, a name that breaks the layout. */
	{
		manifest *m = table_with(16409, NULL, 0);

		m->expired_before = BASE_LSN;
		m->expired_time = T0;
		store(m);
		manifest_free(m);
		ok(storage_put(st, "tables/16409/base/0000000001400000/chunk-000001.bso", "x", 1, &err) == BS_OK &&
		   storage_put(st, "tables/16409/base/0000000001600000/chunk-000001.bso", "x", 1, &err) == BS_OK,
		   "an expired and a newer unlisted base chunk");
		expect("t16409", EXIT_OK, "base/0000000001400000/chunk-000001.bso: not listed in the manifest: an expired base copy "
			   "left by an interrupted expire", "base/0000000001600000/chunk-000001.bso: not listed in the manifest "
			   "(leftover of an interrupted upload?)", "unlisted base chunks: expired or leftover, warnings");
		ok(storage_put(st, "tables/16409/seg/not-a-range.bso", "x", 1, &err) == BS_OK, "a badly named segment");
		expect("t16409", EXIT_INTEGRITY, "seg/not-a-range.bso: unexpected name under seg/ (expected <FIRSTLSN>-<ENDLSN>.bso)",
			   NULL, "a name under seg/ that is no range: a problem");
		storage_delete(st, "tables/16409/seg/not-a-range.bso", &err);
	}

	/* The whole archive: keys outside table directories, a directory without a manifest, JSON. */
	ok(storage_put(st, "tables/notatable", "x", 1, &err) == BS_OK &&
	   storage_put(st, "tables/16499/seg/0000000001500100-0000000001500180.bso", "x", 1, &err) == BS_OK,
	   "a stray key and a table directory without a manifest");
	rc = run(json);
	{
		json_error_t jerr;
		json_t *j = json_loads(out, 0, &jerr);
		char *dump = j ? json_dumps(j, JSON_COMPACT) : NULL;

		if (!ok(rc == EXIT_INTEGRITY && dump && strstr(dump, "\"ok\":false") &&
				strstr(dump, "not under a valid table directory; ignored") &&
				strstr(dump, "table directory without a manifest (1 objects): leftovers of an interrupted upload?") &&
				strstr(dump, "out of commit order"), "the whole archive as JSON: problems and warnings listed"))
			show();
		free(dump);
		json_decref(j);
	}

	/* An unreadable head.json is a problem of its own, the tables are still checked. */
	ok(storage_put(st, "head.json", "{", 1, &err) == BS_OK, "head.json damaged");
	expect("t16401", EXIT_INTEGRITY, "head.json", "PROBLEM", "an unreadable head.json is a problem");

	fixture_close(dir);
	return done_testing();
}
