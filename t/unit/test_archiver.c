/* test_archiver.c — unit tests for the archiver's parts that need no server: the control API's dispatch table and the table registry. */
#include "archiver_int.h"
#include "capture.h"
#include "tap.h"

#include <event2/http.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
test_routes(void)
{
	const api_route *r;

	is_int(api_route_for("/metrics", EVHTTP_REQ_GET, &r), 0, "GET /metrics is routed");
	ok(r && strcmp(r->path, "/metrics") == 0 && r->handler != NULL, "to the metrics handler");
	is_int(api_route_for("/health", EVHTTP_REQ_GET, &r), 0, "GET /health is routed");
	ok(r && strcmp(r->path, "/health") == 0, "to the health handler");
	is_int(api_route_for("/metrics", EVHTTP_REQ_POST, &r), 0, "/metrics takes any method");
	is_int(api_route_for("/checkpoint", EVHTTP_REQ_POST, &r), 0, "POST /checkpoint is routed");
	ok(r && r->handler == checkpoint_request, "to checkpoint_request");
	is_int(api_route_for("/checkpoint", EVHTTP_REQ_GET, &r), 405, "GET /checkpoint: 405");
	ok(r == NULL, "no handler for a 405");
	is_int(api_route_for("/checkpoint", EVHTTP_REQ_PUT, &r), 405, "PUT /checkpoint: 405");
	is_int(api_route_for("/nope", EVHTTP_REQ_GET, &r), 404, "an unknown path: 404");
	ok(r == NULL, "no handler for a 404");
	is_int(api_route_for("/metrics/", EVHTTP_REQ_GET, &r), 404, "paths match exactly");
	is_int(api_route_for("/CHECKPOINT", EVHTTP_REQ_POST, &r), 404, "and with their case");
	is_int(api_route_for("", EVHTTP_REQ_GET, &r), 404, "an empty path: 404");
	is_int(api_route_for(NULL, EVHTTP_REQ_GET, &r), 404, "no path: 404");
}

static manifest_column cols1[] = {{.name = "id", .type_oid = 23, .typmod = -1, .type_name = "integer"}};
static manifest_column cols2[] = {{.name = "id", .type_oid = 23, .typmod = -1}, {.name = "v", .type_oid = 25, .typmod = -1}};

static void
test_registry(void)
{
	archiver a;
	manifest *m1 = manifest_new(1001, "public", "t1");
	manifest *m2 = manifest_new(1002, "s", "t2");
	arch_table *t1, *t2;
	uint32_t id1, id2, id0;

	memset(&a, 0, sizeof(a));
	ok(tables_find(&a, 1001) == NULL, "an empty registry finds nothing");
	ok(tables_layout_at(m1, 100) == NULL, "no layout before the first");

	id1 = tables_insert_layout(m1, -1, 100, 'd', 1, cols1);
	id2 = tables_insert_layout(m1, -1, 300, 'd', 2, cols2);
	ok(id1 != id2, "each layout gets its own id");
	/* One older than the newest (a transaction sent again after a restart): kept in LSN order. */
	id0 = tables_insert_layout(m1, -1, 50, 'd', 1, cols1);
	is_int(m1->nlayouts, 3, "three layouts");
	ok(m1->layouts[0].from_lsn == 50 && m1->layouts[1].from_lsn == 100 && m1->layouts[2].from_lsn == 300,
	   "sorted by LSN whatever the order they came in");
	is_int(tables_layout_at(m1, 50)->id, id0, "the layout in effect at its own LSN");
	is_int(tables_layout_at(m1, 299)->id, id1, "just before the next one");
	is_int(tables_layout_at(m1, 300)->id, id2, "the newest from its LSN on");
	is_int(tables_layout_at(m1, UINT64_MAX)->id, id2, "and at the end");
	is_int(tables_layout_at(m1, 10)->id, id0, "before every layout: the first");
	is_int(tables_insert_layout(m1, (int64_t) id1, 100, 'd', 1, cols1), id1, "an id already used is kept");

	t1 = tables_add(&a, m1, true);
	t2 = tables_add(&a, m2, false);
	is_int(a.ntables, 2, "two tables registered");
	ok(t1->man == m1 && t1->relid == 1001 && t1->active, "the first, active, with its manifest");
	is_int(t1->layout_id, m1->layouts[m1->nlayouts - 1].id, "receiving in its newest layout");
	ok(t2->relid == 1002 && !t2->active && t2->layout_id == 0, "the second, known from storage only, no layout");
	ok(tables_find(&a, 1002) == t2 && tables_find(&a, 1001) == t1, "found by relid");
	ok(tables_find(&a, 1003) == NULL, "an unknown relid is not found");

	for (int i = 0; i < a.ntables; i++)
	{
		manifest_free(a.tables[i]->man);
		free(a.tables[i]);
	}
	free(a.tables);
}

/* Store a manifest of relid at a generation, named schema.name, archived to archived_to. */
static void
store_manifest(storage *st, uint32_t relid, const char *schema, const char *name, uint64_t generation,
			   uint64_t archived_to, uint64_t rebase_requested_at)
{
	manifest *m = manifest_new(relid, schema, name);
	bs_error err;

	m->generation = generation;
	m->archived_to = archived_to;
	m->rebase_requested_at = rebase_requested_at;
	tables_insert_layout(m, -1, 0x100, 'd', 1, cols1);
	if (manifest_store(st, m, &err) != BS_OK)
	{
		printf("Bail out! manifest_store: %s\n", err.message);
		exit(1);
	}
	manifest_free(m);
}

/* A file:// storage in a new temporary directory (dir: a mkdtemp template); bails out if it cannot. */
static storage *
scratch_open(char *dir)
{
	char url[96];
	storage *st = NULL;
	bs_error err;

	if (mkdtemp(dir) == NULL)
	{
		printf("Bail out! mkdtemp\n");
		exit(1);
	}
	snprintf(url, sizeof(url), "file://%s", dir);
	if (storage_open(url, NULL, &st, &err) != BS_OK)
	{
		printf("Bail out! storage_open: %s\n", err.message);
		exit(1);
	}
	return st;
}

/* Close st and remove its directory. */
static void
scratch_close(storage *st, const char *dir)
{
	char cmd[128];

	storage_close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
}

/*
 * Loading a table into the registry from storage, against head.json's record of its manifest:
 * a manifest older than the head says (rolled back) or missing (deleted) is refused, never
 * archived on top of.
 */
static void
test_registry_load(void)
{
	char dir[] = "/tmp/backstop-test-archiver-XXXXXX";
	storage *st = NULL;
	archiver a;
	arch_table *t = NULL, *again = NULL;
	bs_error err;

	memset(&a, 0, sizeof(a));
	archive_head_init(&a.head);
	st = scratch_open(dir);
	a.st = st;

	/* Nothing stored, nothing recorded: a new manifest under the names given. */
	is_int(tables_load(&a, st, 2001, "public", "fresh", false, &t, &err), BS_OK, "a table never archived loads");
	ok(t && t->relid == 2001 && !t->active && strcmp(t->man->schema, "public") == 0 &&
	   strcmp(t->man->name, "fresh") == 0 && t->man->generation == 0, "as a new manifest, generation 0");
	is_int(tables_next_generation(&a, t->man), 1, "whose first store is generation 1");
	is_int(tables_load(&a, st, 2001, NULL, NULL, true, &again, &err), BS_OK, "loaded again");
	ok(again == t && t->active && a.ntables == 1, "the same entry, made active, not a second one");
	is_int(tables_load(&a, st, 2002, NULL, NULL, false, &t, &err), BS_OK, "without names");
	ok(strcmp(t->man->schema, "?") == 0 && strcmp(t->man->name, "?") == 0, "a new manifest is named \"?\"");

	/* Stored at generation 3, head.json records 5: an older copy put back. */
	store_manifest(st, 2003, "s", "rolled", 3, 0x500, 0);
	archive_head_note_table(&a.head, 2003, 5, "s", "rolled");
	t = NULL;
	ok(tables_load(&a, st, 2003, "s", "rolled", true, &t, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0, "a manifest older than head.json records is refused");
	ok(strstr(err.message, "generation 3") && strstr(err.message, "generation 5") && strstr(err.message, "rolled back") &&
	   strstr(err.message, "s.rolled"), "naming the table, both generations and the roll-back");
	ok(tables_find(&a, 2003) == NULL, "and not registered");

	/* head.json records a manifest that is not there: deleted. */
	archive_head_note_table(&a.head, 2004, 2, "s", "deleted");
	ok(tables_load(&a, st, 2004, "s", "deleted", true, &t, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 && strstr(err.message, "deleted") &&
	   strstr(err.message, "generation 2"), "a manifest head.json records but storage lacks is refused (deleted)");
	ok(tables_find(&a, 2004) == NULL, "and not registered");

	/* Stored at 3, recorded at 2 (a store after the last head): loaded; the next store is above both. */
	store_manifest(st, 2005, "s", "newer", 3, 0x500, 0);
	archive_head_note_table(&a.head, 2005, 2, "s", "newer");
	is_int(tables_load(&a, st, 2005, "s", "newer", true, &t, &err), BS_OK, "a manifest newer than head.json's record loads");
	is_int(t->man->generation, 3, "at its stored generation");
	is_int(tables_next_generation(&a, t->man), 4, "next generation: above the manifest's");
	archive_head_note_table(&a.head, 2005, 7, "s", "newer");
	is_int(tables_next_generation(&a, t->man), 8, "and above head.json's");
	/* The same generation as recorded: loads. */
	store_manifest(st, 2006, "s", "same", 4, 0x500, 0);
	archive_head_note_table(&a.head, 2006, 4, "s", "same");
	is_int(tables_load(&a, st, 2006, "s", "same", true, &t, &err), BS_OK, "the generation head.json records loads");

	/* Renamed while the archiver did not capture schema changes: the new name from archived_to. */
	store_manifest(st, 2007, "s", "old", 1, 0x700, 0);
	is_int(tables_load(&a, st, 2007, "s", "new", true, &t, &err), BS_OK, "a renamed table loads");
	ok(t->man->nnames == 2 && strcmp(t->man->names[0].name, "old") == 0 && t->man->names[1].from_lsn == 0x700 &&
	   strcmp(t->man->names[1].name, "new") == 0, "its name history gets the new name at the archive's end");
	ok(!t->rebase_wanted, "no re-base asked");

	/* A re-base asked before a stop is taken at the first table check. */
	store_manifest(st, 2008, "s", "rebase", 1, 0x800, 0x780);
	is_int(tables_load(&a, st, 2008, "s", "rebase", true, &t, &err), BS_OK, "a table with a pending re-base loads");
	ok(t->rebase_wanted, "the re-base is wanted again");

	for (int i = 0; i < a.ntables; i++)
	{
		manifest_free(a.tables[i]->man);
		free(a.tables[i]);
	}
	free(a.tables);
	archive_head_clear(&a.head);
	scratch_close(st, dir);
}

/* Run tables_find_gone with its output (the log on stderr) captured into out and errout. */
static int
find_gone_logged(archiver *a, const catalog_table_list *list, bs_error *err)
{
	capture c;
	int rc;

	capture_begin(&c);
	rc = tables_find_gone(a, list, err);
	capture_end(&c);
	return rc;
}

/*
 * Archived tables missing from the catalog at start-up, the parts that need no server: a
 * listed name never archived or whose manifest was deleted is refused, an unreadable
 * manifest of a table not in the database is reported and left alone, a dropped one is
 * skipped, and a rolled-back one refuses the start.
 */
static void
test_find_gone(void)
{
	char dir[] = "/tmp/backstop-test-archiver-XXXXXX";
	char *missing[1];
	storage *st = NULL;
	archiver a;
	catalog_table_list list;
	manifest *m;
	bs_error err;

	memset(&a, 0, sizeof(a));
	memset(&list, 0, sizeof(list));
	archive_head_init(&a.head);
	st = scratch_open(dir);
	a.st = st;

	/* A listed name that is neither in the database nor in the archive: a typo. */
	missing[0] = "s.typo";
	list.missing = missing;
	list.nmissing = 1;
	ok(find_gone_logged(&a, &list, &err) == BS_ERR && strcmp(err.code, ERRCODE_UNDEFINED_TABLE) == 0 &&
	   strstr(err.message, "table \"s.typo\" does not exist and was never archived"),
	   "a listed table never archived: refused as such (%s)", err.message);

	/* Listed, recorded by head.json, its manifest gone: damage, refused with the name. */
	archive_head_note_table(&a.head, 3004, 2, "s", "vanished");
	missing[0] = "s.vanished";
	ok(find_gone_logged(&a, &list, &err) == BS_ERR &&
	   strncmp(err.message, "table \"s.vanished\" does not exist: ", strlen("table \"s.vanished\" does not exist: ")) == 0 &&
	   strstr(err.message, "the manifest was deleted"),
	   "a listed table whose manifest was deleted: refused, naming it (%s)", err.message);
	list.nmissing = 0;
	archive_head_clear(&a.head);
	archive_head_init(&a.head);

	/* An unreadable manifest of a table not in the database, and one of a dropped table. */
	if (storage_put(st, "tables/3001/manifest.json", "{ not a manifest", 16, &err) != BS_OK)
	{
		printf("Bail out! storage_put: %s\n", err.message);
		exit(1);
	}
	m = manifest_new(3002, "s", "dropped");
	free(m->status);
	m->status = xstrdup("dropped");
	m->generation = 1;
	m->archived_to = m->dropped_at_lsn = 0x600;
	if (manifest_store(st, m, &err) != BS_OK)
	{
		printf("Bail out! manifest_store: %s\n", err.message);
		exit(1);
	}
	manifest_free(m);
	is_int(find_gone_logged(&a, &list, &err), BS_OK, "an unreadable and a dropped manifest: the start goes on");
	ok(strstr(errout, "tables/3001/manifest.json") && strstr(errout, "(not a table of the database now; left alone)"),
	   "the unreadable one is reported and left alone");
	ok(strstr(errout, "3002") == NULL && strstr(errout, "s.dropped") == NULL, "the dropped one is not mentioned");
	is_int(a.ntables, 0, "neither is registered");

	/* An active manifest older than head.json records (rolled back): the start is refused. */
	store_manifest(st, 3003, "s", "rolled", 2, 0x500, 0);
	archive_head_note_table(&a.head, 3003, 5, "s", "rolled");
	ok(find_gone_logged(&a, &list, &err) == BS_ERR && strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 &&
	   strstr(err.message, "s.rolled") && strstr(err.message, "rolled back"),
	   "a rolled-back manifest of a table not in the database refuses the start (%s)", err.message);

	archive_head_clear(&a.head);
	scratch_close(st, dir);
}

int
main(void)
{
	test_routes();
	test_registry();
	test_registry_load();
	test_find_gone();
	return done_testing();
}
