/* test_recover_refusals.c — `backstop recover --dry-run` against a synthetic file:// archive: points outside the window, damaged segments, ambiguous points, duplicates. */
#include "archive_fixture.h"
#include "copyback.h"
#include "tap.h"

#include <jansson.h>

#define USERS 16384
#define BADCOUNT 16385
#define BADRAW 16386
#define DISORDER 16387
#define AMBIG 16388
#define DUPS 16389
#define LONGNAME 16390
#define AHEAD 16391
#define VOLATILE 16392
#define LONGSCHEMA 16393
#define PARENT 16394

static char dir[] = "/tmp/backstop-test-recover-refusals-XXXXXX";

/* `backstop recover --storage URL args...` as the binary runs it (cli_main). */
static int
run(const char *const *args)
{
	return run_cli("recover", args);
}

static const char *const v_carol[] = {"3", "carol"};
static const char *const v_dave[] = {"4", "dave"};
static const char *const v_erin[] = {"5", "erin"};
static const char *const v_key1[] = {"1", NULL};

/* A table with a base (1 alice, 2 bob) and the records as one segment, stored. */
static manifest *
table_with(uint32_t relid, const char *name, const rec *recs, int n)
{
	manifest *m = new_table(relid, name, "1\talice\n2\tbob\n", 2);

	add_segment(m, recs, n);
	m->archived_to = 0x1506000;
	return m;
}

static void
build_archive(void)
{
	/* users: xid 700 inserts carol (+1 s), 701 deletes 1 (+2 s). */
	rec users[] = {
		{'I', 0x1500100, 700, 1 * SEC, 0, NULL, v_carol},
		{'D', 0x1501000, 701, 2 * SEC, 0, v_key1, NULL},
	};
	/* The same transaction id committed twice (after a wraparound). */
	rec ambig[] = {
		{'I', 0x1500100, 800, 1 * SEC, 0, NULL, v_carol},
		{'I', 0x1501000, 800, 2 * SEC, 0, NULL, v_dave},
	};
	/* Records out of commit order. */
	rec disorder[] = {
		{'I', 0x1501000, 901, 2 * SEC, 0, NULL, v_dave},
		{'I', 0x1500100, 900, 1 * SEC, 0, NULL, v_carol},
	};
	/* Two segments overlapping by one transaction (xid 1001 in both). */
	rec dup1[] = {
		{'I', 0x1500100, 1000, 1 * SEC, 0, NULL, v_carol},
		{'I', 0x1501000, 1001, 2 * SEC, 0, NULL, v_dave},
	};
	rec dup2[] = {
		{'I', 0x1501000, 1001, 2 * SEC, 0, NULL, v_dave},
		{'I', 0x1502000, 1002, 3 * SEC, 0, NULL, v_erin},
	};
	manifest *m;
	char longname[64];

	m = table_with(USERS, "users", users, 2);
	store(m);
	manifest_free(m);

	/* The manifest records one record more than the segment holds. */
	m = table_with(BADCOUNT, "badcount", users, 2);
	m->segments[0].records = 3;
	store(m);
	manifest_free(m);

	/* The manifest records another raw size than the segment's (its checksum still matches). */
	m = table_with(BADRAW, "badraw", users, 2);
	m->segments[0].raw_size += 7;
	store(m);
	manifest_free(m);

	m = table_with(DISORDER, "disorder", disorder, 2);
	store(m);
	manifest_free(m);

	m = table_with(AMBIG, "ambig", ambig, 2);
	store(m);
	manifest_free(m);

	m = table_with(DUPS, "dups", dup1, 2);
	add_segment(m, dup2, 2);
	store(m);
	manifest_free(m);

	/* 53 ASCII bytes and a two-byte character: "<name>_recovered" must not split it. */
	memset(longname, 'a', 53);
	strcpy(longname + 53, "\xc3\xa9z");
	m = table_with(LONGNAME, longname, users, 2);
	store(m);
	manifest_free(m);

	/* Column u added at 0/1501800 with a per-row (volatile) default, dropped again at 0/1502800. */
	{
		manifest_column three[3] = {{"id", 23, -1, "integer", true, true, NULL, false},
		{"name", 25, -1, "text", false, false, NULL, false}, {"u", 2950, -1, "uuid", false, false, NULL, true}};
		manifest_column two[2] = {{"id", 23, -1, "integer", true, true, NULL, false},
		{"name", 25, -1, "text", false, false, NULL, false}};

		m = table_with(VOLATILE, "vol", users, 2);
		manifest_add_layout(m, 0x1501800, 'd', 3, three);
		manifest_add_layout(m, 0x1502800, 'd', 2, two);
		store(m);
		manifest_free(m);
	}

	/* A schema name of 64 bytes (as only a hostile manifest can have). */
	m = table_with(LONGSCHEMA, "t", users, 2);
	free(m->schema);
	m->schema = xstrdup("s234567890123456789012345678901234567890123456789012345678901234");
	store(m);
	manifest_free(m);

	/* A partitioned table (the other tables' bases hold no definitions). */
	m = manifest_new(PARENT, "public", "parent");
	free(m->status);
	m->status = xstrdup("skipped");
	m->finding = xstrdup("partitioned table (its partitions are archived as tables)");
	store(m);
	manifest_free(m);

	/* The stream archived up to 0/1506000; a base copy was taken ahead of it, at 0/1600000. */
	m = table_with(AHEAD, "ahead", users, 2);
	add_base(m, 0x1600000, 10 * SEC, "7\tgrace\n", 1);
	store(m);
	manifest_free(m);
}

/* Bad points and option combinations: exit 2, the message says which option is wrong. */
static void
test_usage(void)
{
	static const usage_case cases[] = {
		{{"--table", "users", "--dry-run", "--latest", "--exclusive", NULL}, "--exclusive does not apply to --latest"},
		{{"--table", "users", "--latest", "stray", NULL}, "recover takes no positional arguments"},
		{{"--table", "users", "--latest", NULL}, "--db (or --target-db) is required unless --dry-run"},
		{{"--table", "users", "--latest", "--dry-run", "--apply", NULL}, "--apply runs the copy-back in the source database"},
		{{"--table", "users", "--latest", "--db", "dbname=x", "--apply", "--json", NULL},
		"--apply asks before it changes the table; without a terminal, add --yes"},
		{{"--table", "users", "--latest", "--dry-run", "--copy-back-columns", "name,\"open", NULL},
		"--copy-back-columns: unterminated quoted name"},
		{{"--table", "users", "--latest", "--dry-run", "--copy-back-columns", "a b", NULL},
		"--copy-back-columns: expected column names separated by commas"},
		{{"--table", "users", "--latest", "--dry-run", "--into", "public.users", NULL},
		"the target must not be the source table itself"},
	};

	check_usage_errors(run, "recover", cases, sizeof(cases) / sizeof(cases[0]));
}

/* A point outside the table's window is refused, saying the window. */
static void
test_window(void)
{
	static const char *const before[] = {"--table", "users", "--dry-run", "--to-time", "2026-11-26 15:00:00+00", NULL};
	static const char *const after[] = {"--relid", "16384", "--dry-run", "--to-time", "2026-11-26 17:00:00+00", NULL};
	static const char *const inside[] = {"--table", "users", "--dry-run", "--to-time", "2026-11-26 16:00:01.5+00", NULL};
	int rc;

	rc = run(before);
	if (!ok(rc == EXIT_FAILURE_RUNTIME && strstr(errout, "time 2026-11-26T15:00:00.000000Z is outside the recovery window of public.users: "
						   "2026-11-26T16:00:00.000000Z to 2026-11-26T16:00:02.000000Z") && out[0] == '\0',
			"--to-time before the first base copy: refused with the window"))
		show();
	rc = run(after);
	if (!ok(rc == EXIT_FAILURE_RUNTIME && strstr(errout, "is outside the recovery window of public.users") &&
			strstr(errout, "to 2026-11-26T16:00:02.000000Z"), "--to-time after the last archived change: refused with the window"))
		show();
	/* The same table inside its window: carol inserted, the delete of 1 not yet. */
	rc = run(inside);
	if (!ok(rc == EXIT_OK && strstr(out, "Dry run: nothing written.") && strstr(out, "Expected rows:   3\n") &&
			strstr(out, "Transactions:    1 (1 row operations)"), "--to-time inside the window: planned"))
		show();
}

/* Segments that do not match their manifest entries are refused before anything is written. */
static void
test_damage(void)
{
	static const char *const count[] = {"--table", "badcount", "--dry-run", "--latest", NULL};
	static const char *const raw[] = {"--table", "badraw", "--dry-run", "--latest", NULL};
	static const char *const order[] = {"--table", "disorder", "--dry-run", "--latest", NULL};
	int rc;

	rc = run(count);
	if (!ok(rc == EXIT_INTEGRITY && strstr(errout, "holds 2 records but the manifest records 3") && out[0] == '\0',
			"a segment with fewer records than its manifest entry: exit 3, says the counts"))
		show();
	rc = run(raw);
	if (!ok(rc == EXIT_INTEGRITY && strstr(errout, "raw bytes but the manifest records") && out[0] == '\0',
			"a segment of another raw size than its manifest entry: exit 3"))
		show();
	rc = run(order);
	if (!ok(rc == EXIT_INTEGRITY && strstr(errout, "follows commit LSN 0/1501000 (not in commit order)") &&
			out[0] == '\0', "a segment whose records are not in commit order: exit 3"))
		show();
}

/* Between what the stream archived and a base copy taken ahead of it: not recoverable yet. */
static void
test_ahead(void)
{
	static const char *const gap[] = {"--relid", "16391", "--dry-run", "--to-lsn", "0/1580000", NULL};
	static const char *const at_base[] = {"--relid", "16391", "--dry-run", "--to-lsn", "0/1600000", NULL};
	int rc;

	rc = run(gap);
	if (!ok(rc == EXIT_FAILURE_RUNTIME &&
			strstr(errout, "LSN 0/1580000 is not recoverable yet: the stream has archived changes to public.ahead up to "
				   "LSN 0/1506000 only, and the base copy at 0/1600000 was taken ahead of it") && out[0] == '\0',
			"a point past the stream, before a base copy ahead of it: refused, says up to where"))
		show();
	rc = run(at_base);
	if (!ok(rc == EXIT_OK && strstr(out, "Base copy:       LSN 0/1600000") && strstr(out, "Expected rows:   1\n"),
			"the base copy's own point: recovered from it"))
		show();
}

/* A column added with a volatile default: refused while it exists, recovered once dropped again. */
static void
test_volatile(void)
{
	static const char *const during[] = {"--relid", "16392", "--dry-run", "--to-lsn", "0/1502000", NULL};
	static const char *const after[] = {"--relid", "16392", "--dry-run", "--to-lsn", "0/1503000", NULL};
	int rc;

	rc = run(during);
	if (!ok(rc == EXIT_INTEGRITY &&
			strstr(errout, "LSN 0/1502000 is not recoverable exactly: column \"u\" of public.vol was added at LSN 0/1501800 "
				   "with a value computed for each existing row") &&
			strstr(errout, "and no base copy has been taken since; choose a point before 0/1501800, or wait for the new "
				   "base copy") && out[0] == '\0', "a point while the column exists, no base since: exit 3, says why"))
		show();
	rc = run(after);
	if (!ok(rc == EXIT_OK && strstr(out, "Expected rows:   2\n"), "a point after the column was dropped again: planned"))
		show();
}

/* A partitioned table among tables without definitions; a database that cannot be reached. */
static void
test_nothing_to_recover(void)
{
	static const char *const parent[] = {"--table", "public.parent", "--dry-run", "--latest", NULL};
	static const char *const nodb[] = {"--table", "users", "--latest", "--db", "host=127.0.0.1 port=1 connect_timeout=5",
	"--into", "public.users_r", NULL};
	int rc;

	rc = run(parent);
	if (!ok(rc == EXIT_FAILURE_RUNTIME &&
			strstr(errout, "public.parent cannot be recovered as a whole: the definition of table public.users (relid "
				   "16384) was captured by a Backstop that did not record partitions") && out[0] == '\0',
			"a partitioned table, tables whose definitions do not say whose partition they are: refused, says why"))
		show();
	rc = run(nodb);
	if (!ok(rc == EXIT_FAILURE_RUNTIME && strstr(errout, "backstop recover: ERROR: ") && strstr(errout, "127.0.0.1") &&
			out[0] == '\0', "a database that cannot be reached: exit 1 after the plan, nothing printed"))
		show();
}

/* A transaction id that committed twice cannot name a point. */
static void
test_ambiguous(void)
{
	static const char *const args[] = {"--relid", "16388", "--dry-run", "--to-xid", "800", NULL};
	int rc = run(args);

	if (!ok(rc == EXIT_FAILURE_RUNTIME &&
			strstr(errout, "transaction id 800 is ambiguous (wraparound): it committed at LSN 0/1500100 and at "
				   "0/1501000; use --to-lsn") && out[0] == '\0', "--to-xid of a wrapped-around id: refused, says both commits"))
		show();
}

/* A transaction in two overlapping segments is applied once. */
static void
test_duplicates(void)
{
	static const char *const args[] = {"--table", "dups", "--dry-run", "--latest", "--json", NULL};
	int rc = run(args);
	json_t *j = json_loads(out, 0, NULL);

	if (!ok(rc == EXIT_OK && j && json_integer_value(json_object_get(j, "expected_rows")) == 5 &&
			json_integer_value(json_object_get(j, "transactions")) == 3 &&
			json_array_size(json_object_get(j, "segments")) == 2, "overlapping segments: the shared transaction counted once"))
		show();
	json_decref(j);
}

/* The derived target name is cut to 63 bytes without splitting a UTF-8 character. */
static void
test_long_name(void)
{
	static const char *const args[] = {"--relid", "16390", "--dry-run", "--latest", NULL};
	static const char *const schema[] = {"--relid", "16393", "--dry-run", "--latest", NULL};
	char want[128];
	int rc = run(schema);

	if (!ok(rc == EXIT_USAGE && strstr(errout, "the target's name is longer than 63 bytes") && out[0] == '\0',
			"a source schema of 64 bytes: the derived target is refused, exit 2"))
		show();
	rc = run(args);

	memset(want, 'a', 53);
	strcpy(want + 53, "_recovered\n");
	if (!ok(rc == EXIT_OK && strstr(out, "Target:          public.") && strstr(out, want),
			"a long name's _recovered target is cut before the two-byte character"))
		show();
}

/* --copy-back-columns: plain and quoted names, spaces around commas. */
static void
test_copy_back_columns(void)
{
	char **cols = NULL;
	int n = 0;
	bs_error err;

	ok(copyback_parse_columns(" id , \"Odd \"\"Name\"\" , x\" ,name", &cols, &n, &err) == BS_OK && n == 3 &&
	   strcmp(cols[0], "id") == 0 && strcmp(cols[1], "Odd \"Name\" , x") == 0 && strcmp(cols[2], "name") == 0,
	   "names parsed: spaces dropped, quotes kept as written, \"\" as one quote");
	copyback_free_columns(cols, n);
	ok(copyback_parse_columns("id,,name", &cols, &n, &err) == BS_ERR &&
	   strstr(err.message, "expected column names separated by commas"),
	   "an empty name refused");
	copyback_free_columns(cols, n);
	ok(copyback_parse_columns("\"\"", &cols, &n, &err) == BS_ERR && strstr(err.message, "expected column names"),
	   "an empty quoted name refused");
	copyback_free_columns(cols, n);
}

int
main(void)
{
	if (fixture_open(dir) != BS_OK)
		return 1;
	build_archive();
	test_usage();
	test_window();
	test_damage();
	test_ahead();
	test_nothing_to_recover();
	test_volatile();
	test_ambiguous();
	test_duplicates();
	test_long_name();
	test_copy_back_columns();
	fixture_close(dir);
	return done_testing();
}
