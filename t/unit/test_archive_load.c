/* test_archive_load.c — a table loaded from a format-3 archive (format2.md 5 step 4c): head, catalog, the packs after it; the fold of every pack byte for byte; names at points; damage refused. */
#include "archive_load.h"
#include "digest.h"
#include "fold.h"
#include "fold_case.h"
#include "manifest_json.h"
#include "manifest_store.h"
#include "pack.h"
#include "packcat.h"
#include "storage.h"
#include "strbuf.h"
#include "tap.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static storage *st;
#define N 16600
/* N: first seen, with a base, after the main case (packs 5 and 6, a catalog at 6). */
#define BN "{\"lsn\":\"0/A000100\",\"time\":\"2026-12-01T13:00:00.000000Z\",\"rows\":5,\"layout_id\":0,\"schema_key\":null,\"definition\":" DEF ",\"chunks\":[" CHUNK("16600", "000000000A000100") "]}"
static const char *const ev5[] = {
	EV("table", "0/A000000", "16600") ",\"schema\":\"public\",\"name\":\"n\",\"status\":\"active\",\"finding\":null}",
	EV("layout", "0/A000000", "16600") ",\"layout\":" L0 "}",
	EV("base", "0/A000100", "16600") ",\"base\":" BN "}",
	NULL
};
static const char *const ev6[] = {NULL};

static pack_index *idx[6];		/* the main case's packs 1-4 (then N's 5-6), as stored */
static char sha[6][65];
static strbuf bytes[6];

/* Pack seq of the main case (fold_case.h), written to the store under log/<seq>.bsp. */
static void
put_pack(int i, uint64_t seal, const char *const *events, const run_spec *runs, int nruns)
{
	strbuf raw = STRBUF_INIT;
	uint64_t seq = (uint64_t) i + 1;
	pack_meta meta = {seq, seq, seal, REC_TIME, NULL, i > 0 ? sha[i - 1] : NULL};
	pack_writer *w;
	char *key = archive_log_key(seq);
	bs_error err;

	if (pack_writer_open(key, 0, CODEC_ZSTD, 0, NULL, &bytes[i], &w, &err) != BS_OK)
		goto fail;
	for (int k = 0; events[k]; k++)
		if (pack_writer_add_event(w, events[k], strlen(events[k]), &err) != BS_OK)
			goto fail;
	for (int k = 0; k < nruns; k++)
	{
		strbuf_reset(&raw);
		make_run(&raw, runs[k].nrec, runs[k].lsn, 0, 0);
		if (pack_writer_add_run(w, runs[k].relid, raw.data, raw.len, &bytes[i], &err) != BS_OK)
			goto fail;
	}
	if (pack_writer_finish(w, &meta, &bytes[i], NULL, &err) != BS_OK ||
		pack_open_buffer(key, bytes[i].data, bytes[i].len, NULL, &idx[i], &err) != BS_OK ||
		storage_put(st, key, bytes[i].data, bytes[i].len, &err) != BS_OK)
		goto fail;
	pack_writer_free(w);
	digest_sha256_hex(bytes[i].data, bytes[i].len, sha[i]);
	strbuf_free(&raw);
	free(key);
	return;
fail:
	printf("Bail out! pack %" PRIu64 ": %s\n", seq, err.message);
	exit(2);
}

static void
put_back(int i)
{
	char *key = archive_log_key((uint64_t) i + 1);
	bs_error err;

	if (storage_put(st, key, bytes[i].data, bytes[i].len, &err) != BS_OK)
		exit(2);
	free(key);
}

static void
delete_pack(int i)
{
	char *key = archive_log_key((uint64_t) i + 1);
	bs_error err;

	if (storage_delete(st, key, &err) != BS_OK)
		exit(2);
	free(key);
}

/* The catalog at seq n (packs 1..n), written to the store. */
static void
write_catalog(int n)
{
	bs_error err;
	packcat_dir *d = NULL;

	if (packcat_write(NULL, packcat_storage_get, st, (const pack_index *const *) idx, n, sha[n - 1],
					  packcat_storage_put, st, &d, &err) != BS_OK)
	{
		printf("Bail out! catalog %d: %s\n", n, err.message);
		exit(2);
	}
	packcat_dir_free(d);
}

/* A format-3 head: tip and catalog. */
static void
head3(archive_head *h, uint64_t tip, uint64_t cat)
{
	archive_head_init(h);
	h->format = ARCHIVE_HEAD_FORMAT_PACKS;
	h->system_identifier = xstrdup("7000000000000000001");
	h->database = xstrdup("app");
	h->flushed_lsn = 0x9000000;
	h->time = 849000000000000;
	h->lease_token = 3;
	h->tip_seq = tip;
	if (tip > 0)
		memcpy(h->tip_sha256, sha[tip - 1], 65);
	h->catalog_seq = cat;
}

static int npacks = 4;

/* manifest_to_json of the fold of every pack: what every load must give. */
static char *
full_fold(uint32_t relid)
{
	manifest *m = NULL;
	bs_error err;
	char *j;

	if (fold_table(relid, (const pack_index *const *) idx, npacks, &m, &err) != BS_OK)
	{
		printf("Bail out! fold_table: %s\n", err.message);
		exit(2);
	}
	j = manifest_to_json(m);
	manifest_free(m);
	return j;
}

static bool
loads_as_fold(const archive_head *h, uint32_t relid, const char *what)
{
	manifest *m = NULL;
	bool exists = false;
	bs_error err;
	char *want = full_fold(relid),
		*got = NULL;
	bool same;

	if (archive_load_table(st, h, relid, &m, &exists, &err) != BS_OK)
		printf("# %s: %s\n", what, err.message);
	got = m ? manifest_to_json(m) : NULL;
	same = exists && got && strcmp(got, want) == 0;
	if (!same)
		printf("# %s:\n#   got:  %s\n#   want: %s\n", what, got ? got : "(none)", want);
	free(got);
	free(want);
	manifest_free(m);
	return same;
}

static bool
refused(const archive_head *h, uint32_t relid, const char *code, const char *text, const char *text2)
{
	manifest *m = NULL;
	bool exists = false;
	bs_error err;
	int rc;

	error_clear(&err);
	rc = archive_load_table(st, h, relid, &m, &exists, &err);
	manifest_free(m);
	if (rc == BS_OK)
	{
		printf("# loaded, not refused\n");
		return false;
	}
	if (strcmp(err.code, code) != 0 || strstr(err.message, text) == NULL || (text2 && strstr(err.message, text2) == NULL))
	{
		printf("# %s: %s\n", err.code, err.message);
		return false;
	}
	return m == NULL;
}

static uint32_t
found(const archive_head *h, const char *name, uint64_t lsn)
{
	manifest *m = NULL;
	bs_error err;
	uint32_t relid = 0;

	if (archive_load_find_at(st, h, name, lsn, &m, &err) != BS_OK)
		printf("# %s: %s: %s\n", name, err.code, err.message);
	else
		relid = m->relid;
	manifest_free(m);
	return relid;
}

static void
test_head_codec(void)
{
	archive_head h,
				back;
	char *j;
	bs_error err;
	static const char *const bad[] = {
		"\"catalog_seq\":1,\"tables\":[]",
		"\"catalog_seq\":5",
		"\"catalog_seq\":1,\"tip\":1",
		"\"catalog_seq\":\"1\"",
		NULL
	};
	static const char *const why[] = {
		"unknown member \"tables\"", "\"catalog_seq\" is above tip_seq", "unknown member \"tip\"",
		"\"catalog_seq\" must be an integer"
	};

	head3(&h, 4, 2);
	j = archive_head_to_json(&h);
	ok(j && strstr(j, "\"format\":3") && strstr(j, "\"catalog_seq\":2") && strstr(j, "\"tip_seq\":4") &&
	   strstr(j, sha[3]) && strstr(j, "\"tables\"") == NULL, "format-3 head written with tip and catalog, no tables");
	ok(archive_head_from_json_any(j, strlen(j), &back, &err) == BS_OK && back.format == 3 && back.tip_seq == 4 &&
	   back.catalog_seq == 2 && strcmp(back.tip_sha256, sha[3]) == 0 && back.lease_token == 3 && back.ntables == 0,
	   "read back by archive_head_from_json_any");
	archive_head_clear(&back);
	ok(archive_head_from_json(j, strlen(j), &back, &err) == BS_ERR && strstr(err.message, "written by a newer Backstop"),
	   "the format-2 reader refuses it as newer: %s", err.message);
	free(j);
	for (int i = 0; bad[i]; i++)
	{
		strbuf sb = STRBUF_INIT;

		strbuf_printf(&sb, "{\"format\":3,\"system_identifier\":\"1\",\"database\":\"d\",\"flushed_lsn\":\"0/1\","
					  "\"time\":\"2026-11-26T16:00:00Z\",\"text_format\":{\"timezone\":\"UTC\",\"datestyle\":\"ISO, YMD\","
					  "\"extra_float_digits\":3,\"intervalstyle\":\"postgres\",\"bytea_output\":\"hex\"},"
					  "\"lease_token\":1,\"tip_seq\":4,\"tip_sha256\":\"%s\",%s}", sha[3], bad[i]);
		ok(archive_head_from_json_any(sb.data, sb.len, &back, &err) == BS_ERR && strstr(err.message, why[i]) &&
		   back.database == NULL, "bad format-3 head %d refused: %s", i, err.message);
		strbuf_free(&sb);
	}
	{
		const char *t = "{\"format\":3,\"system_identifier\":\"1\",\"database\":\"d\",\"flushed_lsn\":\"0/1\","
			"\"time\":\"2026-11-26T16:00:00Z\",\"text_format\":{\"timezone\":\"UTC\",\"datestyle\":\"ISO, YMD\","
			"\"extra_float_digits\":3,\"intervalstyle\":\"postgres\",\"bytea_output\":\"hex\",\"x\":1},"
			"\"lease_token\":1,\"tip_seq\":0,\"tip_sha256\":null,\"catalog_seq\":0}";
		const char *u = "{\"format\":3,\"system_identifier\":\"1\",\"database\":\"d\",\"flushed_lsn\":\"0/1\","
			"\"time\":\"2026-11-26T16:00:00Z\",\"text_format\":{\"timezone\":\"UTC\",\"datestyle\":\"ISO, YMD\","
			"\"extra_float_digits\":3,\"intervalstyle\":\"postgres\",\"bytea_output\":\"hex\"},"
			"\"lease_token\":1,\"tip_seq\":0,\"tip_sha256\":null,\"catalog_seq\":0}";

		ok(archive_head_from_json_any(t, strlen(t), &back, &err) == BS_ERR &&
		   strstr(err.message, "text_format has an unknown member \"x\""), "an unknown text_format member refused: %s",
		   err.message);
		ok(archive_head_from_json_any(u, strlen(u), &back, &err) == BS_OK && back.tip_seq == 0 &&
		   back.tip_sha256[0] == '\0', "an empty log: tip_seq 0, tip_sha256 null");
		archive_head_clear(&back);
	}
	ok(archive_head_store(st, &h, &err) == BS_OK, "format-3 head stored");
	{
		bool exists = false;

		ok(archive_head_load(st, &back, &exists, &err) == BS_ERR && strstr(err.message, "written by a newer Backstop"),
		   "archive_head_load refuses it (commands not reading format 3 stop): %s", err.message);
		ok(archive_head_load_any(st, &back, &exists, &err) == BS_OK && exists && back.format == 3 &&
		   back.catalog_seq == 2, "archive_head_load_any reads it");
		archive_head_clear(&back);
	}
	archive_head_clear(&h);
}

static void
test_loads(void)
{
	archive_head h;
	manifest *m = NULL;
	bs_error err;

	/* The catalog at 2, packs 3-4 after it; then the catalog at 4 (none after), none at all. */
	for (int c = 0; c < 4; c++)
	{
		uint64_t cat = c == 0 ? 2 : c == 1 ? 4 : c == 2 ? 1 : 0;

		head3(&h, 4, cat);
		ok(loads_as_fold(&h, T, "T") && loads_as_fold(&h, D, "D"),
		   "catalog seq %" PRIu64 ": T and D load as the fold of packs 1-4, byte for byte", cat);
		ok(found(&h, "app.t2", UINT64_MAX) == T, "catalog seq %" PRIu64 ": app.t2 now is T", cat);
		ok(found(&h, "public.t", 0x2000000) == T, "catalog seq %" PRIu64 ": public.t at 0/2000000 is T", cat);
		ok(found(&h, "public.d", UINT64_MAX) == D, "catalog seq %" PRIu64 ": public.d is D (dropped)", cat);
		ok(archive_load_find_at(st, &h, "public.nope", UINT64_MAX, &m, &err) == BS_ERR &&
		   strcmp(err.code, ERRCODE_UNDEFINED_TABLE) == 0 && strstr(err.message, "public.nope") && m == NULL,
		   "catalog seq %" PRIu64 ": an unknown name: %s", cat, err.message);
		archive_head_clear(&h);
	}
	head3(&h, 4, 2);
	ok(archive_load_find_relid(st, &h, "16400", &m, &err) == BS_OK && m->relid == T, "--relid 16400 is T");
	manifest_free(m);
	m = NULL;
	ok(archive_load_find_relid(st, &h, "99", &m, &err) == BS_ERR && strcmp(err.code, ERRCODE_UNDEFINED_TABLE) == 0 &&
	   strstr(err.message, "no table with relid 99"), "--relid 99: none");
	ok(archive_load_find_relid(st, &h, "x", &m, &err) == BS_ERR && strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0,
	   "--relid x: not a relid");
	{
		bool exists = true;

		ok(archive_load_table(st, &h, 99, &m, &exists, &err) == BS_OK && !exists && m == NULL,
		   "a relid no catalog or pack shows does not exist");
	}
	archive_head_clear(&h);
}

static void
test_damage(void)
{
	archive_head h;
	char *page = packcat_page_key(2, 0);
	strbuf sb = STRBUF_INIT;
	bs_error err;

	head3(&h, 4, 2);
	delete_pack(2);
	ok(refused(&h, T, ERRCODE_DATA_CORRUPTED, "pack \"log/0000000000000003.bsp\" is missing from the log",
			   "lists seq 4 next"), "a hole after the catalog (pack 3 deleted) refused, naming it");
	put_back(2);
	delete_pack(0);
	ok(refused(&h, T, ERRCODE_DATA_CORRUPTED, "pack \"log/0000000000000001.bsp\" is missing from the log", NULL),
	   "a pack before the catalog that holds T's runs deleted: refused, naming it");
	put_back(0);
	delete_pack(3);
	ok(refused(&h, T, ERRCODE_DATA_CORRUPTED, "pack \"log/0000000000000004.bsp\" is missing from the log",
			   "names seq 4 as the tip"), "the tip's pack deleted: refused, naming it");
	put_back(3);
	archive_head_clear(&h);

	head3(&h, 4, 3);
	ok(refused(&h, T, ERRCODE_DATA_CORRUPTED, "\"catalog/0000000000000003/dir.json\" is missing", NULL),
	   "a head naming a missing catalog refused, naming it");
	archive_head_clear(&h);

	head3(&h, 3, 2);
	memcpy(h.tip_sha256, sha[0], 65);
	ok(refused(&h, T, ERRCODE_DATA_CORRUPTED, "pack \"log/0000000000000004.bsp\" names", "the chain is broken"),
	   "a head whose tip SHA-256 the next pack does not name refused");
	archive_head_clear(&h);

	head3(&h, 4, 2);
	ok(storage_get_all(st, page, &sb, &err) == BS_OK, "the page of catalog 2 read");
	{
		strbuf changed = STRBUF_INIT;

		strbuf_append(&changed, sb.data, sb.len);
		changed.data[changed.len - 1] = ' ';	/* the same size, another hash */
		ok(storage_put(st, page, changed.data, changed.len, &err) == BS_OK, "the page changed by a byte");
		ok(refused(&h, T, ERRCODE_DATA_CORRUPTED, "catalog page \"catalog/0000000000000002/0000.json\"", "SHA-256"),
		   "a catalog page whose hash is not the dir's refused, naming it");
		ok(found(&h, "app.t2", UINT64_MAX) == 0, "and the name does not resolve through it");
		ok(storage_delete(st, page, &err) == BS_OK, "the page deleted");
		ok(refused(&h, T, ERRCODE_DATA_CORRUPTED, "catalog \"catalog/0000000000000002/dir.json\", relid 16400", NULL),
		   "a missing page refused as damage, naming the catalog");
		ok(storage_put(st, page, sb.data, sb.len, &err) == BS_OK && loads_as_fold(&h, T, "T again"),
		   "the page put back: T loads again");
		strbuf_free(&changed);
	}
	strbuf_free(&sb);
	free(page);
	archive_head_clear(&h);
}

static void
test_format2(void)
{
	manifest *m = NULL,
		*c = NULL;
	bool exists = false;
	bs_error err;
	uint64_t last;
	packcat_dir *d = NULL;
	char *a,
		*b;

	/* A format-2 manifest (the catalog's state of T: no segments) read as before. */
	ok(packcat_load_dir(packcat_storage_get, st, 4, &d, &err) == BS_OK &&
	   packcat_load_table(d, T, packcat_storage_get, st, &c, &last, &err) == BS_OK, "T's state at catalog 4");
	ok(c && manifest_store(st, c, &err) == BS_OK, "stored as tables/16400/manifest.json");
	ok(archive_load_table(st, NULL, T, &m, &exists, &err) == BS_OK && exists, "no head: the manifest loaded");
	a = m ? manifest_to_json(m) : NULL;
	b = c ? manifest_to_json(c) : NULL;
	ok(a && b && strcmp(a, b) == 0, "as manifest_load gives it");
	free(a);
	free(b);
	manifest_free(m);
	m = NULL;
	ok(archive_load_find_at(st, NULL, "app.t2", UINT64_MAX, &m, &err) == BS_OK && m->relid == T,
	   "no head: the name through the manifests");
	manifest_free(m);
	manifest_free(c);
	packcat_dir_free(d);
}

/* The relids a view lists, as "a,b,c". */
static void
relids_text(const archive_view *v, char *buf, size_t len)
{
	uint32_t *ids = NULL;
	int n = 0;
	size_t used = 0;

	archive_view_relids(v, &ids, &n);
	buf[0] = '\0';
	for (int i = 0; i < n && used < len; i++)
		used += (size_t) snprintf(buf + used, len - used, "%s%" PRIu32, i ? "," : "", ids[i]);
	free(ids);
}

/* The view's table equals the fold of packs 1..npacks, and its last event LSN fold_table_from's. */
static bool
view_table_as_fold(archive_view *v, uint32_t relid, const char *what)
{
	manifest *m = NULL,
		*f = NULL;
	uint64_t last = 1,
		want = 2;
	bool exists = false;
	bs_error err;
	char *a = NULL,
		*b = NULL;
	bool same;

	if (archive_view_table(v, relid, &m, &last, &exists, &err) != BS_OK)
		printf("# %s: %s\n", what, err.message);
	if (fold_table_from(relid, NULL, (const pack_index *const *) idx, npacks, &f, &want, &err) != BS_OK)
		printf("# %s: fold_table_from: %s\n", what, err.message);
	a = m ? manifest_to_json(m) : NULL;
	b = f ? manifest_to_json(f) : NULL;
	same = exists && a && b && strcmp(a, b) == 0 && last == want && last > 0;
	if (!same)
		printf("# %s: last event %" PRIX64 " vs %" PRIX64 "\n#   got:  %s\n#   want: %s\n", what, last, want,
			   a ? a : "(none)", b ? b : "(none)");
	free(a);
	free(b);
	manifest_free(m);
	manifest_free(f);
	return same;
}

static uint64_t
gets(void)
{
	storage_stats s;

	memset(&s, 0, sizeof(s));
	storage_stats_add(st, &s);
	return s.requests[STORAGE_OP_GET];
}

/* archive_view: one open for many tables, the relids, the tip, the last event LSN. */
static void
test_view(void)
{
	archive_head h;
	archive_view *v = NULL;
	bs_error err;
	char buf[128];
	char hex[65];
	manifest *m = NULL;
	bool exists = true;
	uint64_t last = 1;

	/* catalog 2 and packs 3-4; catalog 4 alone (the tip is the catalog's); no catalog (every pack after it) */
	for (int c = 0; c < 3; c++)
	{
		uint64_t cat = c == 0 ? 2 : c == 1 ? 4 : 0;
		int n = -1;
		const pack_index *const *after;

		head3(&h, 4, cat);
		if (!ok(archive_view_open(st, &h, &v, &err) == BS_OK, "catalog seq %" PRIu64 ": the view opens", cat))
		{
			printf("# %s\n", err.message);
			archive_head_clear(&h);
			continue;
		}
		relids_text(v, buf, sizeof(buf));
		ok(strcmp(buf, "16400,16500") == 0, "catalog seq %" PRIu64 ": relids T and D (%s)", cat, buf);
		ok(view_table_as_fold(v, T, "T") && view_table_as_fold(v, D, "D"),
		   "catalog seq %" PRIu64 ": T and D are the fold of packs 1-4, their last event LSNs fold_table_from's", cat);
		ok(archive_view_tip_seq(v) == 4 && archive_view_tip_seal_lsn(v) == 0x9000000,
		   "catalog seq %" PRIu64 ": the tip is seq 4, sealed at 0/9000000", cat);
		ok(archive_view_tip_sha256(v, hex, &err) == BS_OK && strcmp(hex, sha[3]) == 0,
		   "catalog seq %" PRIu64 ": the tip's SHA-256 is the one of the bytes written", cat);
		after = archive_view_packs_after(v, &n);
		ok(n == (int) (4 - cat) && (n == 0 || (after[0]->seq_first == cat + 1 && after[n - 1]->seq_last == 4)) &&
		   (cat == 0 ? archive_view_dir(v) == NULL : archive_view_dir(v)->seq == cat),
		   "catalog seq %" PRIu64 ": the dir and the %d packs after it", cat, n);
		ok(archive_view_table(v, 99, &m, &last, &exists, &err) == BS_OK && !exists && m == NULL && last == 0,
		   "catalog seq %" PRIu64 ": relid 99 does not exist", cat);
		m = NULL;
		ok(archive_view_find_at(v, "app.t2", UINT64_MAX, &m, &err) == BS_OK && m->relid == T,
		   "catalog seq %" PRIu64 ": app.t2 through the view", cat);
		manifest_free(m);
		m = NULL;
		ok(archive_view_find_at(v, "public.t", 0x2000000, &m, &err) == BS_OK && m->relid == T,
		   "catalog seq %" PRIu64 ": public.t at 0/2000000 through the view", cat);
		manifest_free(m);
		m = NULL;
		archive_view_free(v);
		v = NULL;
		archive_head_clear(&h);
	}

	/* The footers before the catalog are read once per view: D needs packs 4 to 1, T then none. */
	head3(&h, 4, 4);
	if (archive_view_open(st, &h, &v, &err) == BS_OK)
	{
		uint64_t g0,
			g1,
			g2;

		g0 = gets();
		ok(archive_view_table(v, D, &m, NULL, &exists, &err) == BS_OK && exists, "D through the view");
		manifest_free(m);
		g1 = gets();
		ok(archive_view_table(v, T, &m, NULL, &exists, &err) == BS_OK && exists, "then T");
		manifest_free(m);
		g2 = gets();
		ok(g1 - g0 > 4 && g2 - g1 == 0, "D read its page and the footers of packs 4 to 1 (%" PRIu64 " GETs), T "
		   "then nothing (%" PRIu64 "): its page and the footers it needs were read for D", g1 - g0, g2 - g1);
		archive_view_free(v);
		v = NULL;
	}
	else
		ok(false, "the view at catalog 4: %s", err.message);
	/* The catalog's pack is the tip: deleted, or another pack in its place, is refused there. */
	ok(archive_view_open(st, &h, &v, &err) == BS_OK, "the view at catalog 4 again");
	delete_pack(3);
	ok(v && archive_view_tip_sha256(v, hex, &err) == BS_ERR && strcmp(err.code, ERRCODE_NOT_FOUND) == 0 &&
	   strstr(err.message, "could not read pack \"log/0000000000000004.bsp\""), "the tip pack gone after the open: %s",
	   err.message);
	archive_view_free(v);
	v = NULL;
	ok(archive_view_open(st, &h, &v, &err) == BS_OK && archive_view_tip_seq(v) == 4 &&
	   archive_view_tip_sha256(v, hex, &err) == BS_ERR && strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 &&
	   strstr(err.message, "pack \"log/0000000000000004.bsp\" is missing from the log"),
	   "the catalog's tip pack not listed: %s", err.message);
	archive_view_free(v);
	v = NULL;
	put_back(3);
	{
		char *key = archive_log_key(4);
		strbuf longer = STRBUF_INIT;

		/* Rewritten after the listing: another size than the one listed. */
		strbuf_append(&longer, bytes[3].data, bytes[3].len);
		strbuf_append_char(&longer, 0);
		ok(archive_view_open(st, &h, &v, &err) == BS_OK && storage_put(st, key, longer.data, longer.len, &err) == BS_OK &&
		   archive_view_tip_sha256(v, hex, &err) == BS_ERR && strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 &&
		   strstr(err.message, "but the listing of \"log/\" says"), "the tip pack of another size than listed: %s",
		   err.message);
		archive_view_free(v);
		v = NULL;
		strbuf_free(&longer);
		put_back(3);

		ok(storage_put(st, key, bytes[2].data, bytes[2].len, &err) == BS_OK &&
		   archive_view_open(st, &h, &v, &err) == BS_OK &&
		   archive_view_tip_sha256(v, hex, &err) == BS_ERR && strstr(err.message, "the chain is broken") &&
		   strstr(err.message, "catalog/0000000000000004/dir.json"),
		   "pack 3's bytes in place of the catalog's tip pack: refused: %s", err.message);
		archive_view_free(v);
		v = NULL;
		free(key);
		put_back(3);
	}
	archive_head_clear(&h);

	/* The head's tip hash is checked once the tip is read whole (the open cannot: nothing follows the tip). */
	head3(&h, 4, 2);
	memcpy(h.tip_sha256, sha[2], 65);
	ok(archive_view_open(st, &h, &v, &err) == BS_OK && archive_view_tip_sha256(v, hex, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 && strstr(err.message, "\"head.json\" records") &&
	   strstr(err.message, "the chain is broken") && hex[0] == '\0',
	   "a head whose tip SHA-256 is not the tip pack's: refused when the tip is read: %s", err.message);
	archive_view_free(v);
	v = NULL;
	archive_head_clear(&h);

	ok(archive_view_open(st, NULL, &v, &err) == BS_ERR && strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0 && v == NULL,
	   "no head: no view");
	head3(&h, 4, 2);
	h.format = 2;
	ok(archive_view_open(st, &h, &v, &err) == BS_ERR && strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0 &&
	   strstr(err.message, "not in format 3"), "a format-2 head: no view (%s)", err.message);
	archive_head_clear(&h);
}

/* An empty log: no catalog, no pack. */
static void
test_view_empty(void)
{
	char dir[] = "/tmp/test_archive_load_empty.XXXXXX";
	char url[600];
	storage *e = NULL;
	archive_head h;
	archive_view *v = NULL;
	bs_error err;
	uint32_t *ids = (uint32_t *) &err;
	int n = -1;
	char hex[65] = "x";
	manifest *m = NULL;
	bool exists = true;

	if (mkdtemp(dir) == NULL)
		exit(2);
	snprintf(url, sizeof(url), "file://%s", dir);
	if (storage_open(url, NULL, &e, &err) != BS_OK)
		exit(2);
	head3(&h, 0, 0);
	ok(archive_view_open(e, &h, &v, &err) == BS_OK, "an empty log: the view opens");
	archive_view_relids(v, &ids, &n);
	ok(n == 0 && ids == NULL, "no relids");
	ok(archive_view_tip_seq(v) == 0 && archive_view_tip_seal_lsn(v) == 0 && archive_view_dir(v) == NULL &&
	   archive_view_packs_after(v, &n) != NULL && n == 0, "tip seq 0, seal 0, no dir, no packs");
	ok(archive_view_tip_sha256(v, hex, &err) == BS_OK && hex[0] == '\0', "no tip SHA-256");
	ok(archive_view_table(v, T, &m, NULL, &exists, &err) == BS_OK && !exists, "no table");
	ok(archive_view_find_at(v, "public.t", UINT64_MAX, &m, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_UNDEFINED_TABLE) == 0, "no name: %s", err.message);
	archive_view_free(v);
	archive_head_clear(&h);
	storage_close(e);
	snprintf(url, sizeof(url), "rm -rf '%s'", dir);
	if (system(url) != 0)
		exit(2);
}

/*
 * O(window): N, first seen with a base in pack 5, is loaded from the catalog at 6 reading the
 * packs back to 4 only (sealed below its base); T still needs them all.
 */
static void
test_window(void)
{
	archive_head h;
	static const run_spec r5[] = {{N, 2, 0xA100000}};
	static const run_spec r6[] = {{N, 1, 0xB100000}};

	put_pack(4, 0xB000000, ev5, r5, 1);
	put_pack(5, 0xC000000, ev6, r6, 1);
	npacks = 6;
	write_catalog(6);
	head3(&h, 6, 6);
	ok(loads_as_fold(&h, N, "N") && loads_as_fold(&h, T, "T") && loads_as_fold(&h, D, "D"),
	   "catalog seq 6: N, T and D load as the fold of packs 1-6, byte for byte");
	ok(found(&h, "public.n", UINT64_MAX) == N, "public.n is N");
	delete_pack(2);
	ok(loads_as_fold(&h, N, "N without pack 3"),
	   "pack 3 deleted: N still loads (the packs before its base, sealed at or below it, are not read)");
	ok(refused(&h, T, ERRCODE_DATA_CORRUPTED, "pack \"log/0000000000000003.bsp\" is missing from the log", NULL),
	   "while T, whose runs go back to seq 1, is refused naming pack 3");
	put_back(2);
	archive_head_clear(&h);

	/* The catalog at 4 and packs 5-6 after it: T and D in the catalog only, N after it only. */
	{
		archive_view *v = NULL;
		bs_error err;
		char buf[128];
		char hex[65];

		head3(&h, 6, 4);
		ok(archive_view_open(st, &h, &v, &err) == BS_OK, "catalog 4, tip 6: the view opens");
		relids_text(v, buf, sizeof(buf));
		ok(strcmp(buf, "16400,16500,16600") == 0, "relids from the catalog and after it: %s", buf);
		ok(view_table_as_fold(v, N, "N") && view_table_as_fold(v, T, "T") && view_table_as_fold(v, D, "D"),
		   "N, T and D through the view: the fold of packs 1-6 and its last event LSNs");
		ok(archive_view_tip_seq(v) == 6 && archive_view_tip_seal_lsn(v) == 0xC000000 &&
		   archive_view_tip_sha256(v, hex, &err) == BS_OK && strcmp(hex, sha[5]) == 0,
		   "the tip is pack 6, its seal and SHA-256");
		archive_view_free(v);
		archive_head_clear(&h);
	}
}

int
main(void)
{
	char dir[] = "/tmp/test_archive_load.XXXXXX";
	char url[600];
	char cmd[700];
	bs_error err;
	static const run_spec r1[] = {{T, 3, 0x2000000}, {D, 2, 0x2100000}};
	static const run_spec r2[] = {{T, 2, 0x4000000}};
	static const run_spec r4[] = {{T, 1, 0x8100000}};

	if (mkdtemp(dir) == NULL)
		return 2;
	snprintf(url, sizeof(url), "file://%s", dir);
	if (storage_open(url, NULL, &st, &err) != BS_OK)
	{
		printf("Bail out! %s\n", err.message);
		return 2;
	}
	put_pack(0, 0x3000000, ev1, r1, 2);
	put_pack(1, 0x5000000, ev2, r2, 1);
	put_pack(2, 0x7000000, ev3, NULL, 0);
	put_pack(3, 0x9000000, ev4, r4, 1);
	write_catalog(1);
	write_catalog(2);
	write_catalog(4);

	test_head_codec();
	test_loads();
	test_damage();
	test_format2();
	test_view();
	test_view_empty();
	test_window();

	for (int i = 0; i < 6; i++)
	{
		pack_index_free(idx[i]);
		strbuf_free(&bytes[i]);
	}
	storage_close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		return 2;
	return done_testing();
}
