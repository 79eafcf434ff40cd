/* test_info_findings.c — what `backstop info` says of tables that are skipped, dropped, without a base copy, or with refused windows. */
#include "archive_fixture.h"
#include "cmd_info.h"
#include "tap.h"

static char dir[] = "/tmp/backstop-test-info-findings-XXXXXX";

static int
run(const char *const *args)
{
	static const char *const allowed[] = {"storage", "table", "json", NULL};

	return run_command(cmd_info, allowed, args);
}

/* info --table name: exit 0 and both strings in its text. */
static void
says(const char *table, const char *a, const char *b, const char *what)
{
	const char *args[] = {"--table", table, NULL};
	int rc = run(args);

	if (!ok(rc == EXIT_OK && strstr(out, a) && (b == NULL || strstr(out, b)), "%s", what))
		show();
}

static const char *const v_a[] = {"3", "carol"};

int
main(void)
{
	manifest *m;

	if (fixture_open(dir) != BS_OK)
		return 1;

	m = manifest_new(16501, "public", "skipped_t");
	free(m->status);
	m->status = xstrdup("skipped");
	m->finding = xstrdup("no primary key and REPLICA IDENTITY DEFAULT");
	store(m);
	manifest_free(m);
	says("skipped_t", "skipped: no primary key and REPLICA IDENTITY DEFAULT", NULL, "a skipped table says why");

	m = manifest_new(16502, "public", "nobase");
	{
		manifest_column cols[1] = {{"id", 23, -1, "integer", true, true, NULL}};

		manifest_add_layout(m, BASE_LSN, 'd', 1, cols);
	}
	store(m);
	manifest_free(m);
	says("nobase", "no base copy yet: the table cannot be recovered",
		 "schema changes after the last row change are not captured", "a table without a base copy, without DDL capture");

	{
		rec r[] = {{'I', 0x1500100, 700, SEC, 0, NULL, v_a}};

		m = new_table(16503, "dropped_t", "1\talice\n", 1);
		add_segment(m, r, 1);
		m->archived_to = 0x1500200;
		free(m->status);
		m->status = xstrdup("dropped");
		m->dropped_at_lsn = 0x1500300;
		m->drop_lsn = 0x1500280;
		store(m);
		manifest_free(m);
		says("dropped_t", "dropped after 0/150027F and before 0/1500300: recoverable up to its last change (--latest)",
			 "its DROP committed at 0/1500280 (read from the stream)", "a dropped table: where, and its DROP");
	}

	m = new_table(16504, "windows", "1\talice\n", 1);
	m->archived_to = 0x1600000;
	m->ddl_capture_from = BASE_LSN;
	m->rebase_requested_at = 0x1580000;
	manifest_add_gap(m, 0x1590000, MANIFEST_GAP_OPEN);
	store(m);
	manifest_free(m);
	says("windows", "points from 0/1580000 until the next base copy are refused: a column change there",
		 "not archived from 0/1590000 on: the table left the archived set", "a pending re-base and an open gap");

	m = new_table(16505, "schema_gaps", "1\talice\n", 1);
	m->archived_to = 0x1600000;
	manifest_add_schema_gap(m, 0x1510000, 0x1520000);
	manifest_add_schema_gap(m, 0x1530000, MANIFEST_GAP_OPEN);
	store(m);
	manifest_free(m);
	says("schema_gaps", "the schema changed at an unknown point between 0/1510000 and 0/1520000",
		 "the schema changed at an unknown point after 0/1530000", "closed and open windows of uncaptured schema changes");
	{
		const char *args[] = {"--table", "schema_gaps", NULL};

		run(args);
		ok(strstr(out, "0/152FFFF") != NULL, "the window shown ends before the open schema window");
		if (!strstr(out, "0/152FFFF"))
			show();
	}

	/* Every table at once, as JSON. */
	{
		const char *args[] = {"--json", NULL};
		int rc = run(args);

		if (!ok(rc == EXIT_OK && strstr(out, "\"skipped_t\"") && strstr(out, "\"dropped\"") &&
				strstr(out, "no base copy yet"), "all tables as JSON, with their findings"))
			show();
	}

	fixture_close(dir);
	return done_testing();
}
