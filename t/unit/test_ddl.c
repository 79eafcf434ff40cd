/* test_ddl.c — unit tests for schema-change messages (ddl.c) and the manifest's name history. */
#include "ddl.h"
#include "manifest.h"
#include "manifest_json.h"
#include "strbuf.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

#define COL_ID "{\"name\":\"id\",\"type_oid\":23,\"typmod\":-1,\"type_name\":\"integer\",\"not_null\":true,\"key\":true,\"missing\":null}"
#define COL_C "{\"name\":\"c\",\"type_oid\":23,\"typmod\":-1,\"type_name\":\"integer\",\"not_null\":false,\"key\":false,\"missing\":\"7\"}"
#define END_MSG "{\"v\":1,\"event\":\"ddl_command_end\",\"tables\":[{\"relid\":16384,\"schema\":\"public\"," \
	"\"name\":\"t\",\"tag\":\"ALTER TABLE\",\"replident\":\"d\",\"columns\":[" COL_ID "," COL_C "]}]}"

static int
parse(const char *text, ddl_event *ev, bs_error *err)
{
	error_clear(err);
	return ddl_parse_message(text, strlen(text), ev, err);
}

static void
test_valid(void)
{
	ddl_event ev;
	bs_error err;

	ok(parse(END_MSG, &ev, &err) == BS_OK, "ddl_command_end parses: %s", err.message);
	is_int(ev.kind, DDL_EVENT_END, "kind");
	is_int(ev.ntables, 1, "one table");
	is_int(ev.tables[0].relid, 16384, "relid");
	is_str(ev.tables[0].name, "t", "name");
	is_int(ev.tables[0].replident, 'd', "replident");
	is_int(ev.tables[0].ncols, 2, "two columns");
	ok(ev.tables[0].columns[0].key && ev.tables[0].columns[0].not_null, "id: key, not null");
	ok(ev.tables[0].columns[0].missing == NULL, "id: no missing value");
	is_str(ev.tables[0].columns[1].missing, "7", "c: missing value 7");
	is_int(ev.tables[0].columns[1].type_oid, 23, "c: type oid");
	ddl_event_free(&ev);

	ok(parse("{\"v\":1,\"event\":\"sql_drop\",\"tables\":[{\"relid\":5,\"schema\":\"\",\"name\":\"\",\"tag\":\"DROP TABLE\"}]}",
			 &ev, &err) == BS_OK, "sql_drop parses (names may be empty): %s", err.message);
	is_int(ev.kind, DDL_EVENT_DROP, "drop");
	ddl_event_free(&ev);
	ok(parse("{\"v\":1,\"event\":\"table_rewrite\",\"tables\":[{\"relid\":5,\"schema\":\"s\",\"name\":\"n\",\"tag\":\"ALTER TABLE\"}],"
			 "\"extra\":1}", &ev, &err) == BS_OK, "table_rewrite parses, unknown members ignored: %s", err.message);
	is_int(ev.kind, DDL_EVENT_REWRITE, "rewrite");
	ddl_event_free(&ev);
	ok(parse("{\"v\":1,\"event\":\"ddl_command_end\",\"tables\":[]}", &ev, &err) == BS_OK, "no tables");
	ddl_event_free(&ev);
}

static void
test_hostile(void)
{
	static const char *const bad[] = {
		"",
		"not json",
		"[]",
		"{\"v\":2,\"event\":\"sql_drop\",\"tables\":[]}",
		"{\"event\":\"sql_drop\",\"tables\":[]}",
		"{\"v\":1,\"event\":\"create\",\"tables\":[]}",
		"{\"v\":1,\"event\":7,\"tables\":[]}",
		"{\"v\":1,\"event\":\"sql_drop\"}",
		"{\"v\":1,\"event\":\"sql_drop\",\"tables\":{}}",
		"{\"v\":1,\"event\":\"sql_drop\",\"tables\":[1]}",
		"{\"v\":1,\"event\":\"sql_drop\",\"tables\":[{\"relid\":0,\"schema\":\"\",\"name\":\"\",\"tag\":\"DROP TABLE\"}]}",
		"{\"v\":1,\"event\":\"sql_drop\",\"tables\":[{\"relid\":4294967296,\"schema\":\"\",\"name\":\"\",\"tag\":\"x\"}]}",
		"{\"v\":1,\"event\":\"sql_drop\",\"tables\":[{\"relid\":-1,\"schema\":\"\",\"name\":\"\",\"tag\":\"x\"}]}",
		"{\"v\":1,\"event\":\"sql_drop\",\"tables\":[{\"relid\":\"5\",\"schema\":\"\",\"name\":\"\",\"tag\":\"x\"}]}",
		"{\"v\":1,\"event\":\"sql_drop\",\"tables\":[{\"relid\":5,\"schema\":\"\",\"name\":\"\"}]}",
		"{\"v\":1,\"event\":\"sql_drop\",\"tables\":[{\"relid\":5,\"schema\":\"\",\"name\":\"x\\u0000y\",\"tag\":\"x\"}]}",
		"{\"v\":1,\"event\":\"sql_drop\",\"tables\":[{\"relid\":5,\"schema\":\"\",\"name\":"
		"\"0123456789012345678901234567890123456789012345678901234567890123\",\"tag\":\"x\"}]}",
		"{\"v\":1,\"event\":\"table_rewrite\",\"tables\":[{\"relid\":5,\"schema\":\"\",\"name\":\"n\",\"tag\":\"x\"}]}",
		/* ddl_command_end: replident and columns */
		"{\"v\":1,\"event\":\"ddl_command_end\",\"tables\":[{\"relid\":5,\"schema\":\"s\",\"name\":\"n\",\"tag\":\"x\",\"columns\":[]}]}",
		"{\"v\":1,\"event\":\"ddl_command_end\",\"tables\":[{\"relid\":5,\"schema\":\"s\",\"name\":\"n\",\"tag\":\"x\",\"replident\":\"z\",\"columns\":[]}]}",
		"{\"v\":1,\"event\":\"ddl_command_end\",\"tables\":[{\"relid\":5,\"schema\":\"s\",\"name\":\"n\",\"tag\":\"x\",\"replident\":\"d\"}]}",
		"{\"v\":1,\"event\":\"ddl_command_end\",\"tables\":[{\"relid\":5,\"schema\":\"s\",\"name\":\"n\",\"tag\":\"x\",\"replident\":\"d\",\"columns\":[{}]}]}",
		"{\"v\":1,\"event\":\"ddl_command_end\",\"tables\":[{\"relid\":5,\"schema\":\"s\",\"name\":\"n\",\"tag\":\"x\",\"replident\":\"d\",\"columns\":["
		COL_ID "," COL_ID "]}]}",
		"{\"v\":1,\"event\":\"ddl_command_end\",\"tables\":[{\"relid\":5,\"schema\":\"s\",\"name\":\"n\",\"tag\":\"x\",\"replident\":\"d\",\"columns\":["
		"{\"name\":\"id\",\"type_oid\":0,\"typmod\":-1,\"type_name\":\"integer\",\"not_null\":true,\"key\":true}]}]}",
		"{\"v\":1,\"event\":\"ddl_command_end\",\"tables\":[{\"relid\":5,\"schema\":\"s\",\"name\":\"n\",\"tag\":\"x\",\"replident\":\"d\",\"columns\":["
		"{\"name\":\"id\",\"type_oid\":23,\"typmod\":2147483648,\"type_name\":\"integer\",\"not_null\":true,\"key\":true}]}]}",
		"{\"v\":1,\"event\":\"ddl_command_end\",\"tables\":[{\"relid\":5,\"schema\":\"s\",\"name\":\"n\",\"tag\":\"x\",\"replident\":\"d\",\"columns\":["
		"{\"name\":\"id\",\"type_oid\":23,\"typmod\":-1,\"type_name\":\"integer\",\"not_null\":1,\"key\":true}]}]}",
		"{\"v\":1,\"event\":\"ddl_command_end\",\"tables\":[{\"relid\":5,\"schema\":\"s\",\"name\":\"n\",\"tag\":\"x\",\"replident\":\"d\",\"columns\":["
		"{\"name\":\"id\",\"type_oid\":23,\"typmod\":-1,\"type_name\":\"integer\",\"not_null\":true,\"key\":true,\"missing\":7}]}]}",
		"{\"v\":1,\"v\":1,\"event\":\"sql_drop\",\"tables\":[]}",
	};
	ddl_event ev;
	bs_error err;
	strbuf big = STRBUF_INIT;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		int rc = parse(bad[i], &ev, &err);

		ok(rc == BS_ERR && strcmp(err.code, ERRCODE_PROTOCOL) == 0 && ev.ntables == 0 && ev.tables == NULL,
		   "refused: %.70s (%s)", bad[i], err.message);
	}
	/* Too many columns. */
	strbuf_append_str(&big, "{\"v\":1,\"event\":\"ddl_command_end\",\"tables\":[{\"relid\":5,\"schema\":\"s\",\"name\":\"n\","
					  "\"tag\":\"x\",\"replident\":\"d\",\"columns\":[");
	for (int i = 0; i < 1665; i++)
		strbuf_printf(&big, "%s{\"name\":\"c%d\",\"type_oid\":23,\"typmod\":-1,\"type_name\":\"integer\",\"not_null\":false,"
					  "\"key\":false}", i ? "," : "", i);
	strbuf_append_str(&big, "]}]}");
	ok(parse(big.data, &ev, &err) == BS_ERR, "more than 1664 columns refused");
	/* Content longer than the limit is refused before parsing. */
	error_clear(&err);
	ok(ddl_parse_message(big.data, DDL_MESSAGE_MAX + 1, &ev, &err) == BS_ERR, "oversized content refused");
	strbuf_free(&big);
}

static void
test_names(void)
{
	manifest *m = manifest_new(7, "public", "a");
	manifest *back = NULL;
	const char *s, *n;
	char *json;
	bs_error err;

	manifest_add_name(m, 0x100, "public", "a");
	is_int(m->nnames, 0, "the same name: no history");
	manifest_add_name(m, 0x200, "public", "b");
	manifest_add_name(m, 0x300, "other", "c");
	is_int(m->nnames, 3, "two renames: three names");
	is_str(m->name, "c", "current name is the newest");
	is_str(m->schema, "other", "current schema is the newest");
	manifest_name_at(m, 0x1ff, &s, &n);
	is_str(n, "a", "name before the first rename");
	manifest_name_at(m, 0x200, &s, &n);
	is_str(n, "b", "name at the rename's commit");
	manifest_name_at(m, UINT64_MAX, &s, &n);
	is_str(n, "c", "name now");
	ok(manifest_had_name(m, "public", "a") && manifest_had_name(m, "public", "b") &&
	   !manifest_had_name(m, "public", "c"), "had_name");
	/* Recorded out of order (the stream gives an earlier one after a start-up guess). */
	manifest_add_name(m, 0x250, "public", "b2");
	is_str(m->name, "c", "an older rename keeps the current name");
	manifest_name_at(m, 0x260, &s, &n);
	is_str(n, "b2", "inserted in LSN order");

	m->archived_to = 0x400;
	json = manifest_to_json(m);
	error_clear(&err);
	ok(json && manifest_from_json(json, strlen(json), &back, &err) == BS_OK, "round trip: %s", err.message);
	ok(back && back->nnames == 4 && strcmp(back->names[2].name, "b2") == 0 && back->names[2].from_lsn == 0x250,
	   "names survive the round trip");
	manifest_free(back);
	free(json);

	/* A history whose newest entry is not the current name is refused. */
	free(m->name);
	m->name = xstrdup("zz");
	error_clear(&err);
	ok(manifest_validate(m, &err) == BS_ERR && strstr(err.message, "names[3]") != NULL,
	   "history disagreeing with the name refused: %s", err.message);
	free(m->name);
	m->name = xstrdup("c");
	m->names[1].from_lsn = 0x400;
	ok(manifest_validate(m, &err) == BS_ERR, "unsorted history refused");
	m->names[1].from_lsn = 0x200;
	m->drop_lsn = 0x500;
	ok(manifest_validate(m, &err) == BS_ERR, "drop_lsn on an active table refused");
	free(m->status);
	m->status = xstrdup("dropped");
	m->dropped_at_lsn = 0x501;
	ok(manifest_validate(m, &err) == BS_OK, "drop_lsn below dropped_at_lsn: %s", err.message);
	is_int(manifest_dropped_after(m), 0x4ff, "recoverable up to just below the DROP's commit");
	m->dropped_at_lsn = 0x500;
	ok(manifest_validate(m, &err) == BS_ERR, "drop_lsn not below dropped_at_lsn refused");
	manifest_free(m);

	/* An old manifest without the members reads as before. */
	{
		const char *old = "{\"format\":2,\"generation\":1,\"relid\":9,\"schema\":\"public\",\"name\":\"t\",\"status\":\"active\","
			"\"finding\":null,\"archived_to\":\"0/10\",\"layouts\":[],\"bases\":[],\"segments\":[],\"gaps\":[]}";

		error_clear(&err);
		ok(manifest_from_json(old, strlen(old), &back, &err) == BS_OK && back->nnames == 0 &&
		   back->drop_lsn == 0 && back->ddl_capture_from == 0, "a manifest without the new members reads: %s",
		   err.message);
		manifest_free(back);
	}
}

int
main(void)
{
	test_valid();
	test_hostile();
	test_names();
	return done_testing();
}
