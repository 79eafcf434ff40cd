/* test_info_verify.c — `backstop info` and `backstop verify` against a synthetic file:// archive. */
#include "archive_fixture.h"
#include "audit.h"
#include "cmd_info.h"
#include "cmd_verify.h"
#include "log.h"
#include "tap.h"

#include <jansson.h>

#define RELID 16384

static char dir[] = "/tmp/backstop-test-info-verify-XXXXXX";

/* Run a command handler with these options, its stdout in out, its stderr in errout. */
static int
run(int (*handler) (bs_config *, int, char **), const char *table, bool json)
{
	static const char *const allowed[] = {"storage", "table", "json", NULL};
	const char *args[4];
	int n = 0;

	if (table)
	{
		args[n++] = "--table";
		args[n++] = table;
	}
	if (json)
		args[n++] = "--json";
	args[n] = NULL;
	return run_command(handler, allowed, args);
}

static void
show_output(void)
{
	char *copy = xstrdup(out);
	char *save = NULL;

	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		printf("#   | %s\n", line);
	free(copy);
}

/* A table with a base (1 alice, 2 bob) at BASE_LSN and one segment: xid 700 inserts carol (+1 s),
 * 701 deletes 1 (+2 s); stored. */
static manifest *
build_table(uint32_t relid, const char *name, uint64_t archived_to)
{
	static const char *const v_carol[] = {"3", "carol"};
	static const char *const v_key1[] = {"1", NULL};
	const rec recs[] = {
		{'I', BASE_LSN + 0x100, 700, 1 * SEC, 0, NULL, v_carol},
		{'D', BASE_LSN + 0x1000, 701, 2 * SEC, 0, v_key1, NULL},
	};
	manifest *m = new_table(relid, name, "1\talice\n2\tbob\n", 2);

	add_segment(m, recs, 2);
	m->archived_to = archived_to;
	store(m);
	return m;
}

/* Store a segment of one insert committed at commit_lsn under key; fills seg (key borrowed). */
static void
put_segment(const char *key, uint64_t commit_lsn, uint64_t end_lsn, manifest_segment *seg)
{
	static const char *const v[] = {"9", "zed"};
	strbuf raw = STRBUF_INIT;
	strbuf t = STRBUF_INIT;
	segment_record r;
	object_info info;
	bs_error err;

	segment_write_header(&raw);
	tuple(&t, 2, v);
	memset(&r, 0, sizeof(r));
	r.op = 'I';
	r.commit_lsn = commit_lsn;
	r.end_lsn = end_lsn;
	r.xid = 900;
	r.commit_time = 1795708803000000LL - PG_EPOCH_OFFSET_US;
	r.old_kind = SEGMENT_OLD_NONE;
	r.new_tuple = (const uint8_t *) t.data;
	r.new_len = t.len;
	if (segment_write_record(&raw, &r, &err) != BS_OK)
		printf("# segment_write_record: %s\n", err.message);
	if (object_put(st, key, CODEC_ZSTD, 1, raw.data, raw.len, &info, &err) != BS_OK)
		printf("# object_put: %s\n", err.message);
	memset(seg, 0, sizeof(*seg));
	seg->key = (char *) key;
	seg->first_lsn = commit_lsn;
	seg->last_end_lsn = end_lsn;
	seg->first_time = seg->last_time = 1795708803000000LL;
	seg->records = 1;
	memcpy(seg->sha256, info.stored_sha256, 65);
	seg->size = info.stored_size;
	seg->raw_size = info.raw_size;
	strbuf_free(&raw);
	strbuf_free(&t);
}

static void
store_head(uint64_t gen_users, uint64_t gen_orders, uint32_t ghost)
{
	archive_head head;
	bs_error err;

	archive_head_init(&head);
	head.flushed_lsn = 0x1700000;
	head.time = 1795708900000000LL;
	head.system_identifier = xstrdup("7312345678901234567");
	head.database = xstrdup("app");
	head.lease_token = 3;
	archive_head_note_table(&head, RELID, gen_users, "public", "users");
	archive_head_note_table(&head, RELID + 1, gen_orders, "public", "orders");
	if (ghost)
		archive_head_note_table(&head, ghost, 1, "public", "ghost");
	if (archive_head_store(st, &head, &err) != BS_OK)
		printf("# archive_head_store: %s\n", err.message);
	archive_head_clear(&head);
}

/* What recovery decides for changes replayed in [from, to): 0 allowed, 1 refused, -1 error. */
static int
audit_verdict(const manifest *m, uint64_t from, uint64_t to, char *msg, size_t msglen)
{
	archive_head head;
	bool exists;
	audit_report ar;
	bs_error err;
	int v;

	error_clear(&err);
	if (archive_head_load(st, &head, &exists, &err) != BS_OK ||
		audit_table(st, m, exists ? &head : NULL, NULL, 0, &ar, &err) != BS_OK)
	{
		snprintf(msg, msglen, "%s", err.message);
		return -1;
	}
	v = audit_check_range(&ar, m, from, to, &err) == BS_OK ? 0 : 1;
	snprintf(msg, msglen, "%s", v ? err.message : "");
	if (v && strcmp(err.code, ERRCODE_DATA_CORRUPTED) != 0)
		v = -1;
	audit_report_free(&ar);
	archive_head_clear(&head);
	return v;
}

/* Rolled-back, edited and deleted manifests; base rows counted (defect 2 of issue 13). */
static void
test_tampering(manifest *m, manifest *m2)
{
	bs_error err;
	char msg[2048];
	int rc;
	manifest_segment seg2;
	char *key2 = manifest_segment_key(RELID, 0x1502000, 0x1502080);
	strbuf saved = STRBUF_INIT;

	/* Row counts raised consistently (chunk and base): only counting the rows shows it. */
	m->bases[0].rows = 3;
	m->bases[0].chunks[0].rows = 3;
	ok(manifest_store(st, m, &err) == BS_OK, "manifest with raised row counts");
	rc = run(cmd_verify, "users", false);
	if (!ok(rc == EXIT_INTEGRITY && strstr(out, "chunk-000001.bso: holds 2 rows of COPY text, the manifest records 3") &&
			strstr(out, "its chunks hold 2 rows of COPY text, the base records 3"), "raised row counts found by counting rows"))
		show_output();
	m->bases[0].rows = 2;
	m->bases[0].chunks[0].rows = 2;

	/* Generations: the head records them; an older copy put back is a problem. */
	m->generation = 5;
	m2->generation = 2;
	ok(manifest_store(st, m, &err) == BS_OK && manifest_store(st, m2, &err) == BS_OK, "manifests of generations 5 and 2");
	store_head(5, 2, 0);
	rc = run(cmd_verify, NULL, false);
	if (!ok(rc == EXIT_OK, "archive with generations recorded verifies"))
		show_output();
	m->generation = 4;
	ok(manifest_store(st, m, &err) == BS_OK, "an older copy of the manifest put back");
	rc = run(cmd_verify, NULL, false);
	if (!ok(rc == EXIT_INTEGRITY && strstr(out, "PROBLEM: public.users (relid 16384) tables/16384/manifest.json: manifest is "
										  "generation 4, but head.json records generation 5 for it: it was replaced by an older copy"),
			"rolled-back manifest reported, naming table and generations"))
		show_output();
	is_int(audit_verdict(m, 0x1500000, 0x1600000, msg, sizeof(msg)), 0, "a point within the old copy's archived_to is not in doubt");
	rc = audit_verdict(m, 0x1500000, UINT64_MAX, msg, sizeof(msg));
	if (!ok(rc == 1 && strstr(msg, "the archive of public.users cannot rebuild this point exactly") &&
			strstr(msg, "generation 4") && strstr(msg, "from LSN 0/1600000 on may be missing"),
			"the latest point is refused after a rollback"))
		printf("#   %d %s\n", rc, msg);
	m->generation = 5;
	ok(manifest_store(st, m, &err) == BS_OK, "manifest restored");

	/* A second segment; then its entry deleted from the manifest, the object kept. */
	put_segment(key2, 0x1502000, 0x1502080, &seg2);
	manifest_add_segment(m, &seg2);
	m->generation = 6;
	ok(manifest_store(st, m, &err) == BS_OK, "manifest with two segments");
	store_head(6, 2, 0);
	rc = run(cmd_verify, NULL, false);
	if (!ok(rc == EXIT_OK, "two segments verify"))
		show_output();
	m->nsegments--;
	ok(manifest_store(st, m, &err) == BS_OK, "segment entry deleted from the manifest");
	rc = run(cmd_verify, "users", false);
	if (!ok(rc == EXIT_INTEGRITY && strstr(out, "PROBLEM: public.users (relid 16384) tables/16384/seg/0000000001502000-0000000001502080.bso: "
										  "not listed in the manifest, yet holds 1 transaction(s) committed from 0/1502000 to 0/1502000") &&
			strstr(out, "a segment entry was removed from the manifest") && !strstr(out, "leftover"),
			"deleted segment entry reported as a problem, not as a leftover"))
		show_output();
	is_int(audit_verdict(m, 0x1500000, 0x1502000, msg, sizeof(msg)), 0, "a point before the hole is not in doubt");
	rc = audit_verdict(m, 0x1500000, 0x1502001, msg, sizeof(msg));
	if (!ok(rc == 1 && strstr(msg, "from LSN 0/1502000 on may be missing"), "a point after the hole is refused"))
		printf("#   %d %s\n", rc, msg);
	is_int(audit_verdict(m, 0x1502081, UINT64_MAX, msg, sizeof(msg)), 0, "a base after the hole is not in doubt");
	m->nsegments++;
	ok(manifest_store(st, m, &err) == BS_OK, "entry restored");

	/* An unlisted segment whose every transaction is listed: a leftover sent again. */
	{
		manifest_segment dup;
		char *dkey = manifest_segment_key(RELID, 0x1501F00, 0x1502080);

		put_segment(dkey, 0x1502000, 0x1502080, &dup);
		rc = run(cmd_verify, "users", false);
		if (!ok(rc == EXIT_OK && strstr(out, "warning: public.users (relid 16384) tables/16384/seg/0000000001501F00-0000000001502080.bso: "
											   "not listed in the manifest, but every transaction it holds"),
				"an unlisted duplicate is only a warning"))
			show_output();
		storage_delete(st, dkey, &err);
		free(dkey);
	}
	/* An unreadable unlisted segment below the complete position. */
	ok(storage_put(st, "tables/16384/seg/0000000001503000-0000000001503100.bso", "x", 1, &err) == BS_OK, "junk segment put");
	rc = run(cmd_verify, "users", false);
	if (!ok(rc == EXIT_INTEGRITY && strstr(out, "0000000001503000-0000000001503100.bso: not listed in the manifest and below 0/1700000") &&
			strstr(out, "unreadable"), "an unreadable unlisted segment below the complete position is a problem"))
		show_output();
	storage_delete(st, "tables/16384/seg/0000000001503000-0000000001503100.bso", &err);

	/* A deleted manifest of a table whose objects remain. */
	ok(storage_get_all(st, "tables/16385/manifest.json", &saved, &err) == BS_OK &&
	   storage_delete(st, "tables/16385/manifest.json", &err) == BS_OK, "manifest of orders deleted");
	rc = run(cmd_verify, NULL, false);
	if (!ok(rc == EXIT_INTEGRITY && strstr(out, "PROBLEM: - tables/16385/manifest.json: missing, but head.json records generation 2 "
										  "of the manifest of public.orders (relid 16385): it was deleted; 2 object(s) remain"),
			"deleted manifest reported as a problem"))
		show_output();
	rc = run(cmd_verify, "public.orders", false);
	is_int(rc, EXIT_INTEGRITY, "verify --table of a table whose manifest was deleted: exit 3");
	{
		archive_head head;
		bool exists;
		manifest *found = (manifest *) 1;

		error_clear(&err);
		archive_head_load(st, &head, &exists, &err);
		rc = audit_find_table(st, &head, "orders", &found, &err);
		if (!ok(rc == BS_ERR && found == NULL && strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 &&
				strstr(err.message, "the archive of public.orders is damaged: tables/16385/manifest.json is missing"),
				"recovery's table lookup refuses a deleted manifest"))
			printf("#   %s\n", err.message);
		rc = audit_find_table(st, &head, "public.users", &found, &err);
		ok(rc == BS_OK && found && found->relid == RELID, "other tables are still found");
		manifest_free(found);
		rc = audit_find_table(st, &head, "public.nosuch", &found, &err);
		ok(rc == BS_ERR && strcmp(err.code, ERRCODE_UNDEFINED_TABLE) == 0, "an unknown table is still just unknown");
		archive_head_clear(&head);
	}
	ok(storage_put(st, "tables/16385/manifest.json", saved.data, saved.len, &err) == BS_OK, "manifest restored");
	strbuf_free(&saved);

	/* The head records a table of which nothing is left. */
	store_head(6, 2, 16399);
	rc = run(cmd_verify, NULL, false);
	if (!ok(rc == EXIT_INTEGRITY && strstr(out, "tables/16399/manifest.json: missing, and nothing is left under tables/16399/"),
			"a table recorded by the head with nothing left is a problem"))
		show_output();
	store_head(6, 2, 0);
	rc = run(cmd_verify, NULL, false);
	if (!ok(rc == EXIT_OK, "untouched archive verifies again"))
		show_output();
	free(key2);
}

static void
flip_byte(const char *key, long offset)
{
	char path[512];
	int fd;
	unsigned char c;

	snprintf(path, sizeof(path), "%s/%s", dir, key);
	fd = open(path, O_RDWR);
	if (fd < 0 || pread(fd, &c, 1, offset) != 1)
		printf("# cannot open %s\n", path);
	c ^= 0x40;
	if (pwrite(fd, &c, 1, offset) != 1)
		printf("# cannot write %s\n", path);
	close(fd);
}

int
main(void)
{
	bs_error err;
	manifest *m;
	manifest *m2;
	archive_head head;
	int rc;

	log_configure(LOG_ERROR, 0);
	if (fixture_open(dir) != BS_OK)
		return 1;

	rc = run(cmd_info, NULL, false);
	is_int(rc, EXIT_FAILURE_RUNTIME, "info on an empty archive fails");
	rc = run(cmd_verify, NULL, false);
	is_int(rc, EXIT_FAILURE_RUNTIME, "verify on an empty archive fails");

	m = build_table(RELID, "users", 0x1600000);
	m2 = build_table(RELID + 1, "orders", 0x1600000);
	archive_head_init(&head);
	head.flushed_lsn = 0x1700000;
	head.time = 1795708900000000LL;
	head.system_identifier = xstrdup("7312345678901234567");
	head.database = xstrdup("app");
	ok(archive_head_store(st, &head, &err) == BS_OK, "head stored");
	archive_head_clear(&head);

	rc = run(cmd_verify, NULL, false);
	if (!ok(rc == EXIT_OK && strstr(out, "OK: 2 table(s), 4 object(s)"), "clean archive verifies"))
		show_output();
	rc = run(cmd_info, NULL, false);
	if (!ok(rc == EXIT_OK && strstr(out, "public.users (relid 16384): active") &&
			strstr(out, "recoverable:  0/1500000 (2026-11-26T16:00:00.000000Z) .. 0/1700000 (2026-11-26T16:01:40.000000Z)") &&
			strstr(out, "0/1500100 .. 0/1501080: 1 segment(s), 2 record(s)"), "info describes the tables"))
		show_output();
	rc = run(cmd_info, "users", true);
	{
		json_error_t jerr;
		json_t *root = json_loads(out, 0, &jerr);
		json_t *t = json_array_get(json_object_get(root, "tables"), 0);
		json_t *w = json_object_get(t, "recovery_window");

		ok(rc == EXIT_OK && json_array_size(json_object_get(root, "tables")) == 1 &&
		   json_integer_value(json_object_get(t, "relid")) == RELID &&
		   strcmp(json_string_value(json_object_get(w, "to_lsn")), "0/1700000") == 0 &&
		   strcmp(json_string_value(json_object_get(w, "to_time")), "2026-11-26T16:01:40.000000Z") == 0 &&
		   json_integer_value(json_object_get(json_object_get(t, "segments"), "records")) == 2 &&
		   strcmp(json_string_value(json_object_get(json_object_get(root, "head"), "database")), "app") == 0,
		   "info --table --json");
		json_decref(root);
	}
	rc = run(cmd_info, "public.nosuch", false);
	is_int(rc, EXIT_FAILURE_RUNTIME, "info on an unknown table fails");

	/* An orphan with a proper name is only a warning. */
	ok(storage_put(st, "tables/16384/seg/0000000001700000-0000000001700100.bso", "x", 1, &err) == BS_OK, "orphan put");
	rc = run(cmd_verify, NULL, false);
	if (!ok(rc == EXIT_OK && strstr(out, "warning: public.users (relid 16384) tables/16384/seg/0000000001700000-0000000001700100.bso: not listed"),
			"orphan segment is a warning"))
		show_output();
	ok(storage_put(st, "tables/16384/seg/junk.bso", "x", 1, &err) == BS_OK, "junk put");
	rc = run(cmd_verify, "users", true);
	if (!ok(rc == EXIT_INTEGRITY && strstr(out, "unexpected name under seg/"), "misnamed object under seg/ is a problem"))
		show_output();
	storage_delete(st, "tables/16384/seg/junk.bso", &err);
	storage_delete(st, "tables/16384/seg/0000000001700000-0000000001700100.bso", &err);

	/* A flipped byte in the payload of a segment. */
	flip_byte(m->segments[0].key, OBJECT_HEADER_SIZE + 3);
	rc = run(cmd_verify, NULL, false);
	if (!ok(rc == EXIT_INTEGRITY && strstr(out, "PROBLEM: public.users (relid 16384) tables/16384/seg/0000000001500100-0000000001501080.bso:") &&
			strstr(out, "1 problem(s)"), "damaged segment reported with its key"))
		show_output();
	flip_byte(m->segments[0].key, OBJECT_HEADER_SIZE + 3);
	rc = run(cmd_verify, NULL, false);
	is_int(rc, EXIT_OK, "restored segment verifies again");

	/* A missing base chunk. */
	{
		strbuf saved = STRBUF_INIT;

		ok(storage_get_all(st, m2->bases[0].chunks[0].key, &saved, &err) == BS_OK, "save chunk");
		ok(storage_delete(st, m2->bases[0].chunks[0].key, &err) == BS_OK, "delete chunk");
		rc = run(cmd_verify, NULL, false);
		if (!ok(rc == EXIT_INTEGRITY && strstr(out, "chunk-000001.bso: missing from storage"), "missing chunk reported"))
			show_output();
		ok(storage_put(st, m2->bases[0].chunks[0].key, saved.data, saved.len, &err) == BS_OK, "restore chunk");
		strbuf_free(&saved);
	}

	/* Bookkeeping errors in the manifest. */
	m->archived_to = 0x1500200;
	ok(manifest_store(st, m, &err) == BS_OK, "manifest with archived_to inside a segment");
	rc = run(cmd_verify, "users", false);
	if (!ok(rc == EXIT_INTEGRITY && strstr(out, "beyond archived_to (0/1500200)"), "segment beyond archived_to"))
		show_output();
	m->archived_to = 0x1400000;
	ok(manifest_store(st, m, &err) == BS_OK, "manifest with archived_to before the base");
	rc = run(cmd_verify, "users", false);
	/* A base taken ahead of the stream is a warning (the segment past archived_to is the damage). */
	if (!ok(strstr(out, "warning: public.users (relid 16384) tables/16384/manifest.json: newest base copy (0/1500000) is ahead of archived_to"),
			"base ahead of archived_to: a warning"))
		show_output();
	m->archived_to = 0x1600000;
	m->segments[0].records = 3;
	m->bases[0].rows = 5;
	ok(manifest_store(st, m, &err) == BS_OK, "manifest with wrong counts");
	rc = run(cmd_verify, "users", false);
	if (!ok(rc == EXIT_INTEGRITY && strstr(out, "holds 2 records, the manifest records 3") &&
			strstr(out, "chunks hold 2 rows, the base records 5"), "record and row counts checked"))
		show_output();
	m->segments[0].records = 2;
	m->bases[0].rows = 2;
	m->segments[0].first_time += 1;
	ok(manifest_store(st, m, &err) == BS_OK, "manifest with a wrong time");
	rc = run(cmd_verify, "users", false);
	if (!ok(rc == EXIT_INTEGRITY && strstr(out, "commit times differ"), "commit times checked"))
		show_output();
	m->segments[0].first_time -= 1;
	m->segments[0].size += 1;
	ok(manifest_store(st, m, &err) == BS_OK, "manifest with a wrong size");
	rc = run(cmd_verify, "users", false);
	if (!ok(rc == EXIT_INTEGRITY && strstr(out, "the manifest records"), "size mismatch reported"))
		show_output();
	m->segments[0].size -= 1;
	ok(manifest_store(st, m, &err) == BS_OK, "manifest restored");
	rc = run(cmd_verify, NULL, false);
	is_int(rc, EXIT_OK, "archive clean again");

	test_tampering(m, m2);

	/* A corrupt manifest: verify names it, info still shows the other table. */
	ok(storage_put(st, "tables/16385/manifest.json", "{\"format\":1}", 12, &err) == BS_OK, "corrupt a manifest");
	rc = run(cmd_verify, NULL, true);
	if (!ok(rc == EXIT_INTEGRITY && strstr(out, "tables/16385/manifest.json") && strstr(out, "\"ok\": false"),
			"verify reports the corrupt manifest"))
		show_output();
	rc = run(cmd_info, NULL, false);
	if (!ok(rc == EXIT_INTEGRITY && strstr(out, "MANIFEST UNREADABLE") && strstr(out, "public.users (relid 16384)"),
			"info shows the readable tables and flags the other"))
		show_output();

	manifest_free(m);
	manifest_free(m2);
	fixture_close(dir);
	return done_testing();
}
