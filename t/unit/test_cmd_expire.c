/* test_cmd_expire.c — `backstop expire` on a synthetic archive: the plan (dry run, text and JSON), what it removes and stores, orphans, damage left alone, the lease, and bad input. */
#include "archive_fixture.h"
#include "lease.h"
#include "tap.h"

#include <jansson.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <errno.h>
#include <time.h>
#include <utime.h>

#define DAY (86400 * SEC)
#define BASE2_LSN UINT64_C(0x2500000)

static char dir[] = "/tmp/backstop-test-cmd-expire-XXXXXX";

static bool
exists_key(const char *key)
{
	bool e = false;
	bs_error err;

	if (storage_head(st, key, &e, NULL, &err) != BS_OK)
		printf("# storage_head: %s\n", err.message);
	return e;
}

/* The archive: public.t (relid 16384) with a base at T0, a segment, a base a day later, a
 * segment; public.u (16385) with one base; head.json recording both. */
static void
build(void)
{
	static const char *const r1[] = {"2", "two"};
	static const char *const r2[] = {"3", "three"};
	rec s1[] = {{'I', BASE_LSN + 0x1000, 700, 60 * SEC, 1, NULL, r1}};
	rec s2[] = {{'I', BASE2_LSN + 0x1000, 701, DAY + 60 * SEC, 1, NULL, r2}};
	manifest *m = new_table(16384, "t", "1\tone\n", 1);
	manifest *u = new_table(16385, "u", "1\tone\n", 1);
	archive_head h;
	bs_error err;

	add_segment(m, s1, 1);
	add_base(m, BASE2_LSN, DAY, "1\tone\n2\ttwo\n", 2);
	add_segment(m, s2, 1);
	m->archived_to = BASE2_LSN + 0x1080;
	u->archived_to = BASE_LSN;
	m->generation = 3;
	u->generation = 1;
	store(m);
	store(u);
	archive_head_init(&h);
	h.system_identifier = xstrdup("7300000000000000001");
	h.database = xstrdup("app");
	h.flushed_lsn = BASE2_LSN + 0x2000;
	h.time = T0 + DAY + 120 * SEC;
	archive_head_note_table(&h, 16384, 3, "public", "t");
	archive_head_note_table(&h, 16385, 1, "public", "u");
	if (archive_head_store(st, &h, &err) != BS_OK)
		printf("# archive_head_store: %s\n", err.message);
	archive_head_clear(&h);
	manifest_free(m);
	manifest_free(u);
}

static void
test_refusals(void)
{
	char empty[300], empty_url[320];

	is_int(run_cli("expire", (const char *const[]) {"--keep-bases", "1", "extra", NULL}), EXIT_USAGE, "an argument: exit 2");
	ok(strncmp(errout, "backstop expire: ERROR: unexpected argument \"extra\"\nUsage: backstop expire", 72) == 0,
	   "an argument: the message and the usage");
	if (strncmp(errout, "backstop expire: ERROR: unexpected argument", 43) != 0)
		show();
	is_int(run_cli("expire", (const char *const[]) {NULL}), EXIT_USAGE, "no policy: exit 2");
	is_str(errout, "backstop expire: ERROR: no retention policy: give --keep-window and/or --keep-bases\n", "no policy: the message");
	snprintf(empty, sizeof(empty), "%s/empty", dir);
	mkdir(empty, 0700);
	snprintf(empty_url, sizeof(empty_url), "file://%s", empty);
	is_int(run_backstop((const char *const[]) {"expire", "--storage", empty_url, "--keep-bases", "1", NULL}),
		   EXIT_FAILURE_RUNTIME, "no archive: exit 1");
	ok(strncmp(errout, "backstop expire: ERROR: no archive at file://", 45) == 0, "no archive: says so");
	{
		struct stat sb;
		char lease_path[400];

		snprintf(lease_path, sizeof(lease_path), "%s/lease.json", empty);
		ok(stat(lease_path, &sb) != 0, "no lease was created where there is no archive");
	}
}

static void
test_plan_and_apply(void)
{
	char seg1[128], base1[128], seg2[128];
	manifest *m = NULL;
	bool ex = false;
	bs_error err;

	{
		char *k = manifest_base_chunk_key(16384, BASE_LSN, 1);

		snprintf(base1, sizeof(base1), "%s", k);
		free(k);
	}
	/* the keys of what goes: the first base's chunk and the segment before the second base */
	{
		manifest *cur = NULL;

		manifest_load(st, 16384, &cur, &ex, &err);
		snprintf(seg1, sizeof(seg1), "%s", cur->segments[0].key);
		snprintf(seg2, sizeof(seg2), "%s", cur->segments[1].key);
		manifest_free(cur);
	}

	/* dry run, text */
	is_int(run_cli("expire", (const char *const[]) {"--keep-bases", "1", "--dry-run", NULL}), EXIT_OK, "dry run: exit 0");
	ok(strstr(out, "public.t (relid 16384, active): would remove 1 base copy, 1 segment(s), 0 orphan(s), ") != NULL,
	   "dry run: what would go from public.t");
	ok(strstr(out, "; window after expiry: 0/2500000 (base copy taken 2026-11-27T16:00:00.000000Z) to 0/2502000\n") != NULL,
	   "dry run: the window left (to head.json's flushed LSN)");
	ok(strstr(out, "public.u (relid 16385, active): nothing to remove; window: 0/1500000 (base copy taken 2026-11-26T16:00:00.000000Z) to 0/2502000\n") != NULL,
	   "dry run: public.u keeps everything");
	{
		char line[300];

		snprintf(line, sizeof(line), "  would delete %s\n", base1);
		ok(strstr(out, line) != NULL, "dry run: names the base chunk");
		snprintf(line, sizeof(line), "  would delete %s\n", seg1);
		ok(strstr(out, line) != NULL, "dry run: names the segment");
	}
	ok(strstr(out, "expired:") == NULL, "dry run: nothing removed");
	if (strstr(out, "would remove 1 base copy") == NULL)
		show();
	ok(exists_key(base1) && exists_key(seg1), "dry run: the objects are still there");

	/* dry run, JSON */
	is_int(run_cli("expire", (const char *const[]) {"--keep-bases", "1", "--dry-run", "--json", NULL}), EXIT_OK, "dry run --json: exit 0");
	{
		json_error_t jerr;
		json_t *j = json_loads(out, 0, &jerr);
		json_t *t = json_array_get(json_object_get(j, "tables"), 0);

		ok(json_is_true(json_object_get(j, "dry_run")), "--json: dry_run");
		is_str(json_string_value(json_object_get(t, "table")), "public.t", "--json: public.t first");
		is_int(json_integer_value(json_object_get(t, "bases_removed")), 1, "--json: one base");
		is_int(json_integer_value(json_object_get(t, "segments_removed")), 1, "--json: one segment");
		is_int(json_array_size(json_object_get(t, "objects")), 2, "--json: two objects");
		is_str(json_string_value(json_object_get(json_object_get(t, "window"), "from_lsn")), "0/2500000", "--json: window from");
		is_str(json_string_value(json_object_get(json_object_get(t, "window"), "to_lsn")), "0/2502000", "--json: window to");
		is_int(json_integer_value(json_object_get(j, "objects_removed")), 0, "--json: nothing removed");
		json_decref(j);
	}

	/* for real */
	is_int(run_cli("expire", (const char *const[]) {"--keep-bases", "1", NULL}), EXIT_OK, "expire: exit 0");
	ok(strstr(out, "public.t (relid 16384, active): removes 1 base copy, 1 segment(s), 0 orphan(s), ") != NULL, "says what it removes");
	ok(strstr(out, "expired: 2 object(s) removed\n") != NULL, "two objects removed");
	ok(!exists_key(base1) && !exists_key(seg1), "the first base and its segment are gone");
	ok(exists_key(seg2), "the later segment stays");
	manifest_load(st, 16384, &m, &ex, &err);
	ok(m && m->nbases == 1 && m->bases[0].lsn == BASE2_LSN && m->nsegments == 1, "the manifest keeps the second base and its segment");
	is_int(m ? (long long) m->generation : -1, 4, "the manifest's generation moved on from head.json's");
	manifest_free(m);
	{
		archive_head h;
		bool he = false;
		const archive_head_table *hrec;

		archive_head_load(st, &h, &he, &err);
		hrec = he ? archive_head_find_table(&h, 16384) : NULL;
		is_int(hrec ? (long long) hrec->generation : -1, 4, "head.json records the new generation");
		ok(he && h.lease_token > 0, "head.json carries the lease's token");
		archive_head_clear(&h);
	}

	/* again: nothing left to remove */
	is_int(run_cli("expire", (const char *const[]) {"--keep-bases", "1", NULL}), EXIT_OK, "again: exit 0");
	ok(strstr(out, "public.t (relid 16384, active): nothing to remove; window: 0/2500000") != NULL, "nothing more to remove");
	ok(strstr(out, "expired: 0 object(s) removed\n") != NULL, "none removed");

	/* --table: only matching tables */
	is_int(run_cli("expire", (const char *const[]) {"--keep-bases", "1", "--table", "public.u", "--dry-run", NULL}), EXIT_OK,
		   "--table: exit 0");
	ok(strstr(out, "public.t") == NULL && strstr(out, "public.u (relid 16385") != NULL, "--table: only public.u");
}

/* Tables of other shapes: no base copy, dropped, a base copy beyond what head.json vouches for;
 * a key that is no table's; an object of an abandoned copy too young to go. */
static void
test_shapes(void)
{
	manifest *m;
	bs_error err;

	m = manifest_new(16386, "public", "nobase");
	{
		manifest_column c = {"id", 23, -1, "integer", true, true, NULL};

		manifest_add_layout(m, BASE_LSN, 'd', 1, &c);
	}
	store(m);
	manifest_free(m);
	m = new_table(16387, "dropped", "1\tone\n", 1);
	free(m->status);
	m->status = xstrdup("dropped");
	m->archived_to = BASE_LSN + 0x100;
	m->dropped_at_lsn = BASE_LSN + 0x5000;
	store(m);
	manifest_free(m);
	m = new_table(16388, "ahead", "1\tone\n", 1);
	add_base(m, UINT64_C(0x3000000), 2 * DAY, "1\tone\n", 1);
	m->archived_to = BASE_LSN;
	store(m);
	manifest_free(m);
	if (storage_put(st, "tables/notarelid/x", "x", 1, &err) != BS_OK ||
		storage_put(st, "tables/16389/base/0000000001000000/chunk-000001", "x", 1, &err) != BS_OK)
		printf("# storage_put: %s\n", err.message);

	is_int(run_cli("expire", (const char *const[]) {"--keep-bases", "1", "--dry-run", NULL}), EXIT_OK, "shapes, dry run: exit 0");
	ok(strstr(out, "public.nobase (relid 16386, active): no base copy: nothing to expire\n") != NULL, "no base copy");
	ok(strstr(out, "public.dropped (relid 16387, dropped): nothing to remove; window: 0/1500000 (base copy taken "
			   "2026-11-26T16:00:00.000000Z) to 0/1500000\n") != NULL, "a dropped table: its window ends at its newest base (no later change), not at archived_to");
	ok(strstr(out, "public.ahead (relid 16388, active): would remove 1 base copy, 0 segment(s), 0 orphan(s), ") != NULL &&
	   strstr(out, "window after expiry: 0/3000000 (base copy taken 2026-11-28T16:00:00.000000Z) to 0/3000000\n") != NULL,
	   "a base copy beyond head.json: the window reaches it");
	ok(strstr(out, "16389") == NULL, "a young abandoned copy is not listed");
	ok(strstr(out, "notarelid") == NULL, "a key of no table is ignored");
	if (strstr(out, "(relid 16387, dropped): nothing to remove; window: 0/1500000 (base copy taken 2026-11-26T16:00:00.000000Z) to 0/1500000\n") == NULL)
		show();
	is_int(run_cli("expire", (const char *const[]) {"--keep-bases", "1", "--dry-run", "--json", "--orphan-age", "0s", NULL}),
		   EXIT_OK, "shapes, --json, --orphan-age 0s: exit 0");
	{
		json_error_t jerr;
		json_t *j = json_loads(out, 0, &jerr);
		size_t i;
		json_t *t;
		int seen = 0;

		json_array_foreach(json_object_get(j, "tables"), i, t)
		{
			json_int_t relid = json_integer_value(json_object_get(t, "relid"));

			if (relid == 16386 && json_is_null(json_object_get(t, "window")))
				seen++;
			if (relid == 16389 && json_is_null(json_object_get(t, "table")) &&
				json_array_size(json_object_get(t, "orphans")) == 1 &&
				strcmp(json_string_value(json_array_get(json_object_get(t, "orphans"), 0)),
					   "tables/16389/base/0000000001000000/chunk-000001") == 0)
				seen++;
		}
		is_int(seen, 2, "--json: no window without a base copy; the abandoned copy's orphan once old enough");
		json_decref(j);
	}
	storage_delete(st, "tables/16389/base/0000000001000000/chunk-000001", &err);
}

static void
test_orphans_and_damage(void)
{
	char path[400];
	struct utimbuf old = {0, 0};
	bs_error err;

	/* an abandoned first copy: objects and no manifest, old enough */
	if (storage_put(st, "tables/16390/base/0000000001000000/chunk-000001", "x", 1, &err) != BS_OK)
		printf("# storage_put: %s\n", err.message);
	snprintf(path, sizeof(path), "%s/tables/16390/base/0000000001000000/chunk-000001", dir);
	old.actime = old.modtime = time(NULL) - 3 * 86400;
	if (utime(path, &old) != 0)
		printf("# utime: %s\n", strerror(errno));
	is_int(run_cli("expire", (const char *const[]) {"--keep-bases", "1", "--dry-run", NULL}), EXIT_OK, "orphans, dry run: exit 0");
	ok(strstr(out, "tables/16390/ (no manifest): would remove 1 orphaned object(s)\n"
			   "  would delete tables/16390/base/0000000001000000/chunk-000001 (orphan)\n") != NULL, "the orphan, dry run");
	if (strstr(out, "tables/16390/") == NULL)
		show();
	is_int(run_cli("expire", (const char *const[]) {"--keep-bases", "1", NULL}), EXIT_OK, "orphans: exit 0");
	ok(strstr(out, "tables/16390/ (no manifest): removes 1 orphaned object(s)\n") != NULL, "the orphan removed");
	ok(!exists_key("tables/16390/base/0000000001000000/chunk-000001"), "it is gone");

	/* a damaged manifest is left alone, exit 3 */
	if (storage_put(st, "tables/16391/manifest.json", "{", 1, &err) != BS_OK)
		printf("# storage_put: %s\n", err.message);
	is_int(run_cli("expire", (const char *const[]) {"--keep-bases", "1", "--json", NULL}), EXIT_INTEGRITY, "damaged manifest: exit 3");
	ok(strstr(errout, "\nbackstop expire: ERROR: table with relid 16391 left alone: tables/16391/manifest.json: invalid manifest: ") != NULL,
	   "says which table is left alone, and why");
	{
		json_error_t jerr;
		json_t *j = json_loads(out, 0, &jerr);

		is_int(json_array_size(json_object_get(j, "problems")), 1, "--json: one problem");
		json_decref(j);
	}
	storage_delete(st, "tables/16391/manifest.json", &err);

	/* head.json records a manifest that is gone; a manifest older than head.json records */
	{
		archive_head h;
		bool he = false;
		manifest *u = NULL;
		bool ex = false;

		archive_head_load(st, &h, &he, &err);
		archive_head_note_table(&h, 16392, 5, "public", "gone");
		archive_head_note_table(&h, 16385, 9, "public", "u");
		archive_head_store(st, &h, &err);
		archive_head_clear(&h);
		/* the gone table's directory holds an object, so that expiry sees it */
		storage_put(st, "tables/16392/base/0000000001000000/chunk-000001", "x", 1, &err);
		is_int(run_cli("expire", (const char *const[]) {"--keep-bases", "1", NULL}), EXIT_INTEGRITY, "rolled back and missing: exit 3");
		ok(strstr(errout, "backstop expire: ERROR: the manifest of table with relid 16385 is older than head.json records (rolled back?): left alone; run backstop verify\n") != NULL,
		   "the rolled-back manifest");
		ok(strstr(errout, "backstop expire: ERROR: tables/16392/manifest.json is missing but head.json records it (gone): left alone\n") != NULL,
		   "the missing manifest");
		ok(exists_key("tables/16392/base/0000000001000000/chunk-000001"), "the missing table's objects are left alone");
		manifest_load(st, 16385, &u, &ex, &err);
		ok(u && u->nbases == 1, "the rolled-back table is untouched");
		manifest_free(u);
	}
}

static void
test_lease(void)
{
	int ready[2], done[2];
	pid_t pid;
	char c = 0;

	/* another process (an archiver) holds the lease until told to let go */
	if (pipe(ready) != 0 || pipe(done) != 0)
		printf("Bail out! pipe\n");
	fflush(stdout);
	pid = fork();
	if (pid == 0)
	{
		lease_holding h;
		bs_error err;
		storage *cst = NULL;
		int ok_ = 0;

		memset(&h, 0, sizeof(h));
		if (storage_open(url, NULL, &cst, &err) == BS_OK &&
			lease_hold(cst, "test archiver", 600000, false, 0, true, &h, &err) == BS_OK)
			ok_ = 1;
		c = ok_ ? 'y' : 'n';
		if (write(ready[1], &c, 1) != 1 || read(done[0], &c, 1) < 0)
			_exit(2);
		if (ok_)
			lease_let_go(cst, &h, true);
		_exit(0);
	}
	if (read(ready[0], &c, 1) != 1 || c != 'y')
		printf("# the child could not take the lease\n");
	is_int(run_cli("expire", (const char *const[]) {"--keep-bases", "1", NULL}), EXIT_FAILURE_RUNTIME, "lease held: exit 1");
	ok(strncmp(errout, "backstop expire: ERROR: an archiver writes to this archive (expiry would race with its manifest writes): "
			   "run expiry inside it with --expire-interval, or stop it first", 140) == 0, "says an archiver holds it");
	if (strstr(errout, "an archiver writes") == NULL)
		show();
	/* a dry run takes no lease */
	is_int(run_cli("expire", (const char *const[]) {"--keep-bases", "1", "--dry-run", NULL}), EXIT_INTEGRITY,
		   "a dry run while the lease is held: runs (exit 3: the damage above)");
	if (write(done[1], &c, 1) != 1)
		printf("# could not tell the child\n");
	waitpid(pid, NULL, 0);
	close(ready[0]);
	close(ready[1]);
	close(done[0]);
	close(done[1]);
}

int
main(void)
{
	if (fixture_open(dir) != BS_OK)
		return 1;
	build();
	test_refusals();
	test_plan_and_apply();
	test_shapes();
	test_orphans_and_damage();
	test_lease();
	fixture_close(dir);
	return done_testing();
}
