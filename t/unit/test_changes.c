/* test_changes.c — `backstop changes` against a synthetic file:// archive: ranges, summaries, row images, refusals. */
#include "archive_fixture.h"
#include "cmd_changes.h"
#include "fake_http.h"
#include "tap.h"

#include <jansson.h>

#define USERS 16384
#define ORDERS 16385
#define SKIPPED 16386

static char dir[] = "/tmp/backstop-test-changes-XXXXXX";

/* `backstop changes --storage URL args...`. */
static int
run(const char *const *args)
{
	static const char *const allowed[] = {"storage", "table", "json", "summary", "from_lsn", "to_lsn",
	"since", "until", "xid", "retries", NULL};

	return run_command(cmd_changes, allowed, args);
}

static const char *const v_carol[] = {"3", "carol"};
static const char *const v_key1[] = {"1", NULL};
static const char *const v_bobby[] = {"2", "bobby"};
static const char *const v_binary[] = {"4", "\xff\xfe"};
static const char *const v_null[] = {"5", NULL};
static const char *const v_pen[] = {"10", "pen"};

/*
 * users: base (1 alice, 2 bob); xid 700 inserts carol (+1 s), 701 deletes 1 (+2 s, with an
 * insert into orders in the same transaction), 702 updates 2 (+2.5 s), 703 inserts a
 * non-UTF-8 name under a new layout (+4 s: a schema change), 704 truncates (+5 s), 705
 * inserts a null name (+6 s).  orders: base (none), 701's insert.  A skipped table.
 */
static manifest *users;

static void
build_archive(void)
{
	manifest_column cols2[2] = {{"id", 23, -1, "integer", true, true, NULL}, {"name", 1043, -1, "character varying", false, false, NULL}};
	rec seg1[] = {
		{'I', 0x1500100, 700, 1 * SEC, 0, NULL, v_carol},
		{'D', 0x1501000, 701, 2 * SEC, 0, v_key1, NULL},
	};
	rec seg2[] = {
		{'U', 0x1502000, 702, 2 * SEC + SEC / 2, 0, NULL, v_bobby},
		{'I', 0x1503000, 703, 4 * SEC, 1, NULL, v_binary},
		{'T', 0x1504000, 704, 5 * SEC, 1, NULL, NULL},
		{'I', 0x1505000, 705, 6 * SEC, 1, NULL, v_null},
	};
	rec oseg[] = {{'I', 0x1501000, 701, 2 * SEC, 0, NULL, v_pen}};
	manifest *orders,
			   *skipped;

	users = new_table(USERS, "users", "1\talice\n2\tbob\n", 2);
	manifest_add_layout(users, 0x1503000, 'd', 2, cols2);
	add_segment(users, seg1, 2);
	add_segment(users, seg2, 4);
	users->archived_to = 0x1506000;
	store(users);

	orders = new_table(ORDERS, "orders", "", 0);
	add_segment(orders, oseg, 1);
	orders->archived_to = 0x1506000;
	store(orders);
	manifest_free(orders);

	skipped = manifest_new(SKIPPED, "public", "skipped");
	free(skipped->status);
	skipped->status = xstrdup("skipped");
	skipped->finding = xstrdup("no primary key or replica identity");
	store(skipped);
	manifest_free(skipped);
}

/* Bad options: exit 2 with a message naming the option, nothing opened. */
static void
test_usage(void)
{
	static const usage_case cases[] = {
		{{"stray", NULL}, "changes takes no positional arguments"},
		{{"--from-lsn", "nope", NULL}, "--from-lsn must be an LSN such as 0/1A2B3C4"},
		{{"--to-lsn", "0/XYZ", NULL}, "--to-lsn must be an LSN such as 0/1A2B3C4"},
		{{"--from-lsn", "0/2000", "--to-lsn", "0/1000", NULL}, "--from-lsn must be before --to-lsn"},
		{{"--from-lsn", "0/2000", "--to-lsn", "0/2000", NULL}, "--from-lsn must be before --to-lsn"},
		{{"--since", "yesterday-ish", NULL}, "--since must be a time such as"},
		{{"--until", "soon", NULL}, "--until must be a time such as"},
		{{"--since", "2026-11-26 16:00:05+00", "--until", "2026-11-26 16:00:01+00", NULL}, "--since must be before --until"},
		{{"--xid", "abc", NULL}, "--xid must be a transaction id (a decimal number)"},
		{{"--xid", "-1", NULL}, "--xid must be a transaction id"},
		{{"--xid", "12x", NULL}, "--xid must be a transaction id"},
		{{"--xid", "4294967296", NULL}, "--xid must be a transaction id"},
	};

	check_usage_errors(run, "changes", cases, sizeof(cases) / sizeof(cases[0]));
}

/* Every table, one line per transaction, in commit order, with the command that undoes it. */
static void
test_summary(void)
{
	static const char *const text[] = {"--retries", "2", NULL};
	static const char *const js[] = {"--json", NULL};
	static const char *const to[] = {"--table", "users", "--summary", "--to-lsn", "0/1502000", NULL};
	char undo[256];
	int rc;
	json_t *j;
	json_error_t jerr;

	rc = run(text);
	snprintf(undo, sizeof(undo), "undo: backstop recover --storage %s --retries 2 --table public.users --to-xid 700 --exclusive", url);
	if (!ok(rc == EXIT_OK && strstr(out, "Transactions on all 2 archived table(s), committed through the latest archived point (LSN 0/1506000)") &&
			strstr(out, "xid 700  public.users +1 ~0 -0;  ") && strstr(out, undo) &&
			strstr(out, "xid 701  public.users +0 ~0 -1; public.orders +1 ~0 -0;  undo: ") &&
			strstr(out, "--table public.users --to-xid 701 --exclusive && backstop recover") &&
			strstr(out, "xid 703  public.users +1 ~0 -0 SCHEMA-CHANGE;") &&
			strstr(out, "xid 704  public.users TRUNCATE;") &&
			strstr(out, "6 transaction(s)\n") && !strstr(out, "skipped"),
			"summary of every table: one line per transaction, both tables of xid 701, undo commands"))
		show();

	rc = run(js);
	j = json_loads(out, 0, &jerr);
	if (!ok(rc == EXIT_OK && j && json_integer_value(json_object_get(j, "count")) == 6 &&
			strcmp(json_string_value(json_object_get(j, "latest_lsn")), "0/1506000") == 0 &&
			json_array_size(json_object_get(j, "transactions")) == 6 &&
			json_array_size(json_object_get(json_array_get(json_object_get(j, "transactions"), 1), "tables")) == 2 &&
			json_is_true(json_object_get(json_array_get(json_object_get(json_array_get(json_object_get(j, "transactions"), 3),
																		  "tables"), 0), "schema_change")) &&
			json_integer_value(json_object_get(json_array_get(json_object_get(json_array_get(json_object_get(j, "transactions"), 4),
																			   "tables"), 0), "truncates")) == 1,
			"summary as JSON: six transactions, two tables in the second, the schema change and the truncate"))
		show();
	json_decref(j);

	/* --to-lsn ends the scan inside the second segment; --summary with --table. */
	rc = run(to);
	if (!ok(rc == EXIT_OK && strstr(out, "Transactions on public.users, committed through LSN 0/1502000") &&
			strstr(out, "xid 702 ") && !strstr(out, "xid 703") && strstr(out, "3 transaction(s)\n"),
			"summary of one table through an LSN"))
		show();
}

/* Row images of one table. */
static void
test_rows(void)
{
	static const char *const lsn[] = {"--table", "users", "--from-lsn", "0/1500100", "--to-lsn", "0/1502000", NULL};
	static const char *const all[] = {"--table", "public.users", "--json", NULL};
	static const char *const xid[] = {"--table", "users", "--xid", "702", NULL};
	static const char *const none[] = {"--table", "users", "--xid", "999", "--json", NULL};
	static const char *const from[] = {"--table", "users", "--from-lsn", "0/1503000", "--json", NULL};
	int rc;
	json_t *j,
			   *ch;
	json_error_t jerr;

	rc = run(lsn);
	if (!ok(rc == EXIT_OK && strstr(out, "Changes to public.users after LSN 0/1500100 through 0/1502000:\n") &&
			strstr(out, "0/1501000  xid 701  2026-11-26T16:00:02.000000Z  DELETE   old (1,alice)\n") &&
			strstr(out, "0/1502000  xid 702  2026-11-26T16:00:02.500000Z  UPDATE   old (2,bob) new (2,bobby)\n") &&
			!strstr(out, "xid 700") && strstr(out, "2 change(s)\n"),
			"row images of an LSN range: the old row of a delete and of an update, rebuilt from the base"))
		show();

	rc = run(all);
	j = json_loads(out, 0, &jerr);
	ch = j ? json_object_get(j, "changes") : NULL;
	if (!ok(rc == EXIT_OK && json_array_size(ch) == 6 &&
			strcmp(json_string_value(json_object_get(j, "table")), "public.users") == 0 &&
			strcmp(json_string_value(json_object_get(json_array_get(ch, 0), "op")), "INSERT") == 0 &&
			json_is_null(json_object_get(json_array_get(ch, 0), "old")) &&
			strcmp(json_string_value(json_object_get(json_object_get(json_array_get(ch, 3), "new"), "name")), "\\xfffe") == 0 &&
			strcmp(json_string_value(json_object_get(json_array_get(ch, 4), "op")), "TRUNCATE") == 0 &&
			json_integer_value(json_object_get(json_array_get(ch, 4), "rows_removed")) == 3 &&
			json_is_null(json_object_get(json_object_get(json_array_get(ch, 5), "new"), "name")),
			"every change as JSON: non-UTF-8 values as hex, a truncate's removed rows, nulls"))
		show();
	json_decref(j);

	rc = run(xid);
	if (!ok(rc == EXIT_OK && strstr(out, "Changes to public.users, transaction 702, committed through the latest archived point") &&
			strstr(out, "xid 702") && strstr(out, "UPDATE") && !strstr(out, "xid 701") && strstr(out, "1 change(s)\n"),
			"one transaction by xid"))
		show();

	rc = run(none);
	j = json_loads(out, 0, &jerr);
	if (!ok(rc == EXIT_OK && j && json_array_size(json_object_get(j, "changes")) == 0 &&
			strstr(json_string_value(json_object_get(j, "range")), "transaction 999"), "an xid with no change: an empty list"))
		show();
	json_decref(j);

	rc = run(from);
	j = json_loads(out, 0, &jerr);
	if (!ok(rc == EXIT_OK && j && json_array_size(json_object_get(j, "changes")) == 2 &&
			strcmp(json_string_value(json_object_get(j, "from_lsn")), "0/1503000") == 0,
			"changes after an LSN through the latest: the truncate and the last insert"))
		show();
	json_decref(j);
}

/* Whole-second bounds: the commits inside that second are named on stderr. */
static void
test_seconds(void)
{
	static const char *const since[] = {"--table", "users", "--since", "2026-11-26 16:00:02+00", "--until",
	"2026-11-26 16:00:04.5+00", NULL};
	static const char *const until[] = {"--summary", "--until", "2026-11-26 16:00:02+00", NULL};
	int rc;

	rc = run(since);
	if (!ok(rc == EXIT_OK && strstr(out, "xid 702") && strstr(out, "xid 703") && !strstr(out, "xid 701") &&
			strstr(out, "2 change(s)\n") &&
			strstr(errout, "WARNING: --since") && strstr(errout, "has whole seconds only, and 2 transaction(s) committed inside that second") &&
			strstr(errout, "(the first: xid 701 at LSN 0/1501000); they are listed") && !strstr(errout, "--until"),
			"--since with whole seconds: the transactions inside that second are named"))
		show();

	rc = run(until);
	if (!ok(rc == EXIT_OK && strstr(out, "xid 700") && strstr(out, "xid 701") && !strstr(out, "xid 702") &&
			strstr(out, "2 transaction(s)\n") && strstr(errout, "WARNING: --until") &&
			strstr(errout, "they are not listed"), "--until with whole seconds: the warning says they are not listed"))
		show();
}

/* What the archive cannot show is refused, exit 3, and a partial list says it is partial. */
static void
test_refusals(void)
{
	static const char *const all[] = {NULL};
	static const char *const tbl[] = {"--table", "users", "--summary", NULL};
	static const char *const nosuch[] = {"--table", "nosuch", NULL};
	rec bad[] = {
		{'I', 0x1508000, 706, 8 * SEC, 1, NULL, v_carol},
		{'I', 0x1507000, 707, 7 * SEC, 1, NULL, v_pen},
	};
	archive_head head;
	bs_error err;
	int rc;

	rc = run(nosuch);
	if (!ok(rc != EXIT_OK && rc != EXIT_INTEGRITY && strstr(errout, "nosuch"), "an unknown table is an error"))
		show();

	/* A segment whose records are out of commit order. */
	add_segment(users, bad, 2);
	users->archived_to = 0x1509000;
	store(users);
	rc = run(tbl);
	if (!ok(rc == EXIT_INTEGRITY && strstr(out, "xid 705") &&
			strstr(out, "INCOMPLETE: the list stops after 6 transaction(s) because of an error; transactions after that point are missing") &&
			strstr(errout, "is out of commit order"), "records out of commit order: refused after the good ones, exit 3"))
		show();

	/* head.json records a manifest storage no longer holds. */
	archive_head_init(&head);
	head.flushed_lsn = 0x1506000;
	head.time = T0 + 10 * SEC;
	head.system_identifier = xstrdup("7312345678901234567");
	head.database = xstrdup("app");
	archive_head_note_table(&head, USERS, users->generation, "public", "users");
	archive_head_note_table(&head, 16399, 1, "public", "ghost");
	if (archive_head_store(st, &head, &err) != BS_OK)
		printf("# archive_head_store: %s\n", err.message);
	archive_head_clear(&head);
	rc = run(all);
	if (!ok(rc == EXIT_INTEGRITY && strstr(errout, "head.json records generation 1 of the manifest of public.ghost (relid 16399), "
										   "which storage no longer holds: its changes cannot be listed") && out[0] == '\0',
			"a manifest the head records but storage lost: refused before listing, exit 3"))
		show();
}

/* Storage failing part-way (an S3 stand-in serving the archive, one object or listing failing):
 * exit 1 with the storage's message, no list of changes. */
static void
test_storage_faults(void)
{
#define S3_ERROR "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code><Message>injected</Message></Error>"
	char seg[256], mf[256];
	struct
	{
		const char *route;
		const char *args[6];
		const char *what;
	} cases[] = {
		{"GET /bucket/arch/head.json", {NULL}, "head.json fails"},
		{mf, {NULL}, "a manifest fails (summary of every table)"},
		{seg, {NULL}, "a segment fails (summary of every table)"},
		{mf, {"--table", "users", NULL}, "--table: its manifest fails"},
		{seg, {"--table", "users", NULL}, "--table: a segment fails"},
		{seg, {"--table", "users", "--summary", NULL}, "--table --summary: a segment fails"},
	};

	/* the head test_refusals left records a table that is gone: without it, the archive is sound */
	{
		bs_error err;

		if (storage_delete(st, "head.json", &err) != BS_OK)
			printf("# storage_delete: %s\n", err.message);
	}
	snprintf(seg, sizeof(seg), "GET /bucket/arch/%s", users->segments[1].key);
	snprintf(mf, sizeof(mf), "GET /bucket/arch/tables/%d/manifest.json", USERS);
	setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secrettest", 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		const fake_route routes[] = {{cases[i].route, 500, S3_ERROR}, {NULL, 0, NULL}};
		fake_endpoint fe;
		char endpoint[128];
		const char *args[24] = {"changes", "--storage", "s3://bucket/arch", "--s3-endpoint", endpoint, "--s3-uri-style", "path",
			"--s3-region", "us-east-1", "--retries", "0", NULL};
		int n = 11;
		int rc;

		for (int k = 0; cases[i].args[k]; k++)
			args[n++] = cases[i].args[k];
		args[n] = NULL;
		fake_start_bucket(&fe, routes, dir, "arch");
		snprintf(endpoint, sizeof(endpoint), "http://%s", fe.listen);
		rc = run_backstop(args);
		fake_stop(&fe);
		is_int(rc, EXIT_FAILURE_RUNTIME, "%s: exit 1", cases[i].what);
		if (!ok(strstr(errout, "backstop changes: ERROR: ") != NULL && strstr(errout, "injected") != NULL,
				"%s: the storage's message", cases[i].what) || rc != EXIT_FAILURE_RUNTIME)
		{
			printf("# requests: %s\n", fe.requests);
			show();
		}
	}
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
}

int
main(void)
{
	if (fixture_open(dir) != BS_OK)
		return 1;
	build_archive();
	test_usage();
	test_summary();
	test_rows();
	test_seconds();
	test_refusals();
	test_storage_faults();
	manifest_free(users);
	fixture_close(dir);
	return done_testing();
}
