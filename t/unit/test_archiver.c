/* test_archiver.c — unit tests for the archiver's parts that need no server: the control API's dispatch table and the table registry. */
#include "archiver_int.h"
#include "tap.h"

#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

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

static manifest_column cols1[] = {{.name = "id", .type_oid = 23, .typmod = -1}};
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

int
main(void)
{
	test_routes();
	test_registry();
	return done_testing();
}
