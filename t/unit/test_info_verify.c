/* test_info_verify.c — `backstop info` and `backstop verify` against a synthetic file:// archive. */
#include "cli.h"
#include "cmd_info.h"
#include "cmd_verify.h"
#include "log.h"
#include "manifest.h"
#include "object.h"
#include "segment.h"
#include "strbuf.h"
#include "tap.h"

#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RELID 16384
#define PG_EPOCH_OFFSET_US INT64_C(946684800000000)

static char dir[] = "/tmp/backstop-test-info-verify-XXXXXX";
static char url[128];
static storage *st;
static char output[1 << 16];

/* Run a command handler with the given options, capturing its stdout into output. */
static int
run(int (*handler) (bs_config *, int, char **), const char *table, bool json)
{
	static const char *const allowed[] = {"storage", "table", "json", NULL};
	char *argv[6];
	int argc = 0;
	bs_config cfg;
	bs_error err;
	char **pos = NULL;
	int npos = 0;
	bool usage = false;
	char outpath[] = "/tmp/backstop-test-out-XXXXXX";
	int fd = mkstemp(outpath);
	int saved = dup(STDOUT_FILENO);
	int rc;
	ssize_t n;

	argv[argc++] = "--storage";
	argv[argc++] = url;
	if (table)
	{
		argv[argc++] = "--table";
		argv[argc++] = (char *) table;
	}
	if (json)
		argv[argc++] = "--json";
	if (config_load(&cfg, argc, argv, allowed, &pos, &npos, &usage, &err) != BS_OK)
	{
		printf("# config_load: %s\n", err.message);
		return -1;
	}
	fflush(stdout);
	dup2(fd, STDOUT_FILENO);
	rc = handler(&cfg, npos, pos);
	fflush(stdout);
	dup2(saved, STDOUT_FILENO);
	close(saved);
	lseek(fd, 0, SEEK_SET);
	n = read(fd, output, sizeof(output) - 1);
	output[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(outpath);
	config_free(&cfg);
	free(pos);
	return rc;
}

static void
show_output(void)
{
	char *copy = xstrdup(output);
	char *save = NULL;

	for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		printf("#   | %s\n", line);
	free(copy);
}

/* A TupleData with the given text columns. */
static void
tuple(strbuf *sb, int n, const char *const *vals)
{
	strbuf_append_be16(sb, (uint16_t) n);
	for (int i = 0; i < n; i++)
	{
		strbuf_append_u8(sb, 't');
		strbuf_append_be32(sb, (uint32_t) strlen(vals[i]));
		strbuf_append_str(sb, vals[i]);
	}
}

static manifest *
build_table(uint32_t relid, const char *name, uint64_t base_lsn, uint64_t archived_to)
{
	manifest *m = manifest_new(relid, "public", name);
	manifest_column cols[2] = {{"id", 23, -1, "integer", true, true, NULL}, {"name", 25, -1, "text", false, false, NULL}};
	const char *base_rows = "1\talice\n2\tbob\n";
	manifest_chunk chunk;
	manifest_base base;
	manifest_segment seg;
	object_info info;
	strbuf raw = STRBUF_INIT;
	strbuf t1 = STRBUF_INIT;
	strbuf t2 = STRBUF_INIT;
	segment_record r;
	bs_error err;
	static const char *const v1[] = {"3", "carol"};
	static const char *const v2[] = {"1"};

	manifest_add_layout(m, base_lsn, 'd', 2, cols);
	memset(&chunk, 0, sizeof(chunk));
	chunk.key = manifest_base_chunk_key(relid, base_lsn, 1);
	if (object_put(st, chunk.key, CODEC_ZSTD, 3, base_rows, strlen(base_rows), &info, &err) != BS_OK)
		printf("# object_put: %s\n", err.message);
	memcpy(chunk.sha256, info.stored_sha256, 65);
	chunk.size = info.stored_size;
	chunk.raw_size = info.raw_size;
	chunk.rows = 2;
	memset(&base, 0, sizeof(base));
	base.lsn = base_lsn;
	base.time = 1795708800000000LL;
	base.rows = 2;
	base.nchunks = 1;
	base.chunks = &chunk;
	manifest_add_base(m, &base);
	free(chunk.key);

	segment_write_header(&raw);
	memset(&r, 0, sizeof(r));
	tuple(&t1, 2, v1);
	tuple(&t2, 1, v2);
	r.op = 'I';
	r.commit_lsn = base_lsn + 0x100;
	r.end_lsn = base_lsn + 0x180;
	r.xid = 700;
	r.commit_time = 1795708801000000LL - PG_EPOCH_OFFSET_US;
	r.old_kind = SEGMENT_OLD_NONE;
	r.new_tuple = (const uint8_t *) t1.data;
	r.new_len = t1.len;
	if (segment_write_record(&raw, &r, &err) != BS_OK)
		printf("# segment_write_record: %s\n", err.message);
	r.op = 'D';
	r.commit_lsn = base_lsn + 0x1000;
	r.end_lsn = base_lsn + 0x1080;
	r.xid = 701;
	r.commit_time = 1795708802000000LL - PG_EPOCH_OFFSET_US;
	r.old_kind = 'K';
	r.new_tuple = NULL;
	r.new_len = 0;
	r.old_tuple = (const uint8_t *) t2.data;
	r.old_len = t2.len;
	if (segment_write_record(&raw, &r, &err) != BS_OK)
		printf("# segment_write_record: %s\n", err.message);

	memset(&seg, 0, sizeof(seg));
	seg.first_lsn = base_lsn + 0x100;
	seg.last_end_lsn = base_lsn + 0x1080;
	seg.key = manifest_segment_key(relid, seg.first_lsn, seg.last_end_lsn);
	if (object_put(st, seg.key, CODEC_LZ4, 1, raw.data, raw.len, &info, &err) != BS_OK)
		printf("# object_put: %s\n", err.message);
	seg.first_time = 1795708801000000LL;
	seg.last_time = 1795708802000000LL;
	seg.records = 2;
	memcpy(seg.sha256, info.stored_sha256, 65);
	seg.size = info.stored_size;
	seg.raw_size = info.raw_size;
	manifest_add_segment(m, &seg);
	free(seg.key);
	m->archived_to = archived_to;
	if (manifest_store(st, m, &err) != BS_OK)
		printf("# manifest_store: %s\n", err.message);
	strbuf_free(&raw);
	strbuf_free(&t1);
	strbuf_free(&t2);
	return m;
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
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(url, sizeof(url), "file://%s", dir);
	if (storage_open(url, NULL, &st, &err) != BS_OK)
	{
		printf("# %s\n", err.message);
		return 1;
	}

	rc = run(cmd_info, NULL, false);
	is_int(rc, EXIT_FAILURE_RUNTIME, "info on an empty archive fails");
	rc = run(cmd_verify, NULL, false);
	is_int(rc, EXIT_FAILURE_RUNTIME, "verify on an empty archive fails");

	m = build_table(RELID, "users", 0x1500000, 0x1600000);
	m2 = build_table(RELID + 1, "orders", 0x1500000, 0x1600000);
	archive_head_init(&head);
	head.flushed_lsn = 0x1700000;
	head.time = 1795708900000000LL;
	head.system_identifier = xstrdup("7312345678901234567");
	head.database = xstrdup("app");
	ok(archive_head_store(st, &head, &err) == BS_OK, "head stored");
	archive_head_clear(&head);

	rc = run(cmd_verify, NULL, false);
	if (!ok(rc == EXIT_OK && strstr(output, "OK: 2 table(s), 4 object(s)"), "clean archive verifies"))
		show_output();
	rc = run(cmd_info, NULL, false);
	if (!ok(rc == EXIT_OK && strstr(output, "public.users (relid 16384): active") &&
			strstr(output, "recoverable:  0/1500000 (2026-11-26T16:00:00.000000Z) .. 0/1700000 (2026-11-26T16:01:40.000000Z)") &&
			strstr(output, "0/1500100 .. 0/1501080: 1 segment(s), 2 record(s)"), "info describes the tables"))
		show_output();
	rc = run(cmd_info, "users", true);
	{
		json_error_t jerr;
		json_t *root = json_loads(output, 0, &jerr);
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
	if (!ok(rc == EXIT_OK && strstr(output, "warning: public.users (relid 16384) tables/16384/seg/0000000001700000-0000000001700100.bso: not listed"),
			"orphan segment is a warning"))
		show_output();
	ok(storage_put(st, "tables/16384/seg/junk.bso", "x", 1, &err) == BS_OK, "junk put");
	rc = run(cmd_verify, "users", true);
	if (!ok(rc == EXIT_INTEGRITY && strstr(output, "unexpected name under seg/"), "misnamed object under seg/ is a problem"))
		show_output();
	storage_delete(st, "tables/16384/seg/junk.bso", &err);
	storage_delete(st, "tables/16384/seg/0000000001700000-0000000001700100.bso", &err);

	/* A flipped byte in the payload of a segment. */
	flip_byte(m->segments[0].key, OBJECT_HEADER_SIZE + 3);
	rc = run(cmd_verify, NULL, false);
	if (!ok(rc == EXIT_INTEGRITY && strstr(output, "PROBLEM: public.users (relid 16384) tables/16384/seg/0000000001500100-0000000001501080.bso:") &&
			strstr(output, "1 problem(s)"), "damaged segment reported with its key"))
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
		if (!ok(rc == EXIT_INTEGRITY && strstr(output, "chunk-000001.bso: missing from storage"), "missing chunk reported"))
			show_output();
		ok(storage_put(st, m2->bases[0].chunks[0].key, saved.data, saved.len, &err) == BS_OK, "restore chunk");
		strbuf_free(&saved);
	}

	/* Bookkeeping errors in the manifest. */
	m->archived_to = 0x1500200;
	ok(manifest_store(st, m, &err) == BS_OK, "manifest with archived_to inside a segment");
	rc = run(cmd_verify, "users", false);
	if (!ok(rc == EXIT_INTEGRITY && strstr(output, "beyond archived_to (0/1500200)"), "segment beyond archived_to"))
		show_output();
	m->archived_to = 0x1400000;
	ok(manifest_store(st, m, &err) == BS_OK, "manifest with archived_to before the base");
	rc = run(cmd_verify, "users", false);
	if (!ok(rc == EXIT_INTEGRITY && strstr(output, "newest base copy (0/1500000) is beyond archived_to"), "base beyond archived_to"))
		show_output();
	m->archived_to = 0x1600000;
	m->segments[0].records = 3;
	m->bases[0].rows = 5;
	ok(manifest_store(st, m, &err) == BS_OK, "manifest with wrong counts");
	rc = run(cmd_verify, "users", false);
	if (!ok(rc == EXIT_INTEGRITY && strstr(output, "holds 2 records, the manifest records 3") &&
			strstr(output, "chunks hold 2 rows, the base records 5"), "record and row counts checked"))
		show_output();
	m->segments[0].records = 2;
	m->bases[0].rows = 2;
	m->segments[0].first_time += 1;
	ok(manifest_store(st, m, &err) == BS_OK, "manifest with a wrong time");
	rc = run(cmd_verify, "users", false);
	if (!ok(rc == EXIT_INTEGRITY && strstr(output, "commit times differ"), "commit times checked"))
		show_output();
	m->segments[0].first_time -= 1;
	m->segments[0].size += 1;
	ok(manifest_store(st, m, &err) == BS_OK, "manifest with a wrong size");
	rc = run(cmd_verify, "users", false);
	if (!ok(rc == EXIT_INTEGRITY && strstr(output, "the manifest records"), "size mismatch reported"))
		show_output();
	m->segments[0].size -= 1;
	ok(manifest_store(st, m, &err) == BS_OK, "manifest restored");
	rc = run(cmd_verify, NULL, false);
	is_int(rc, EXIT_OK, "archive clean again");

	/* A corrupt manifest: verify names it, info still shows the other table. */
	ok(storage_put(st, "tables/16385/manifest.json", "{\"format\":1}", 12, &err) == BS_OK, "corrupt a manifest");
	rc = run(cmd_verify, NULL, true);
	if (!ok(rc == EXIT_INTEGRITY && strstr(output, "tables/16385/manifest.json") && strstr(output, "\"ok\": false"),
			"verify reports the corrupt manifest"))
		show_output();
	rc = run(cmd_info, NULL, false);
	if (!ok(rc == EXIT_INTEGRITY && strstr(output, "MANIFEST UNREADABLE") && strstr(output, "public.users (relid 16384)"),
			"info shows the readable tables and flags the other"))
		show_output();

	manifest_free(m);
	manifest_free(m2);
	storage_close(st);
	{
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", dir);
	}
	return done_testing();
}
