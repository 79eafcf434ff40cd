/* test_segfetch.c — segments read from their own objects and from runs in packs (format2.md 5 step 4b): the same records, the same recovery, damage refused. */
/* Before the fixture, whose globals (st, out) its parameters would shadow. */
#include "fault_storage.h"
#include "archive_fixture.h"
#include "expire.h"
#include "pack.h"
#include "recover_plan.h"
#include "replay.h"
#include "segfetch.h"
#include "storage_crypt.h"

#include <inttypes.h>

#define USERS 16400
#define ORDERS 16401
#define PACK1 "log/0000000000000001.bsp"
#define PACK2 "log/0000000000000002.bsp"
#define ARCHIVED_TO UINT64_C(0x1506000)

static const char *const v_carol[] = {"3", "carol"};
static const char *const v_key1[] = {"1", NULL};
static const char *const v_bobby[] = {"2", "bobby"};
static const char *const v_dave[] = {"4", "dave"};
static const char *const v_null[] = {"5", NULL};
static const char *const v_pen[] = {"10", "pen"};

/* Format 2: users (base: 1 alice, 2 bob; two segments, a second layout), orders (one segment). */
static manifest *users2,
		   *orders2;
/* The same tables folded from packs: users' runs in packs 1 and 2, orders' in pack 1. */
static manifest *users3,
		   *orders3;

static uint8_t key_a[CRYPT_KEY_SIZE];

static void
build_objects(void)
{
	manifest_column cols2[2] = {{"id", 23, -1, "integer", true, true, NULL}, {"name", 1043, -1, "character varying", false, false, NULL}};
	rec seg1[] = {
		{'I', 0x1500100, 700, 1 * SEC, 0, NULL, v_carol},
		{'D', 0x1501000, 701, 2 * SEC, 0, v_key1, NULL},
	};
	rec seg2[] = {
		{'U', 0x1502000, 702, 2 * SEC + SEC / 2, 0, NULL, v_bobby},
		{'I', 0x1503000, 703, 4 * SEC, 1, NULL, v_dave},
		{'I', 0x1505000, 705, 6 * SEC, 1, NULL, v_null},
	};
	rec oseg[] = {{'I', 0x1501000, 701, 2 * SEC, 0, NULL, v_pen}};

	users2 = new_table(USERS, "users", "1\talice\n2\tbob\n", 2);
	manifest_add_layout(users2, 0x1503000, 'd', 2, cols2);
	add_segment(users2, seg1, 2);
	add_segment(users2, seg2, 3);
	users2->archived_to = ARCHIVED_TO;
	orders2 = new_table(ORDERS, "orders", "", 0);
	add_segment(orders2, oseg, 1);
	orders2->archived_to = ARCHIVED_TO;
}

/* The raw records of a format-2 segment (without the magic), read back from its object. */
static void
object_records(const manifest *m, int i, strbuf *res)
{
	strbuf raw = STRBUF_INIT;
	object_info info;
	bs_error err;

	if (object_get_all(st, m->segments[i].key, m->segments[i].sha256, &raw, &info, &err) != BS_OK)
	{
		printf("Bail out! object_get_all: %s\n", err.message);
		exit(2);
	}
	strbuf_reset(res);
	strbuf_append(res, raw.data + SEGMENT_MAGIC_LEN, raw.len - SEGMENT_MAGIC_LEN);
	strbuf_free(&raw);
}

/* A pack of seq holding the given runs (relids increasing), stored under key in to. */
static void
write_pack(storage *to, const char *key, uint64_t seq, const uint32_t *relids, const strbuf *runs, int n,
		   const pack_keys *keys)
{
	strbuf res = STRBUF_INIT;
	pack_writer *w = NULL;
	pack_meta meta = {seq, seq, ARCHIVED_TO, REC_TIME, NULL, NULL};
	bs_error err;

	if (pack_writer_open(key, 0, CODEC_ZSTD, 3, keys, &res, &w, &err) != BS_OK)
		goto fail;
	for (int i = 0; i < n; i++)
		if (pack_writer_add_run(w, relids[i], runs[i].data, runs[i].len, &res, &err) != BS_OK)
			goto fail;
	if (pack_writer_finish(w, &meta, &res, NULL, &err) != BS_OK || storage_put(to, key, res.data, res.len, &err) != BS_OK)
		goto fail;
	pack_writer_free(w);
	strbuf_free(&res);
	return;
fail:
	printf("Bail out! writing pack %s: %s\n", key, err.message);
	exit(2);
}

/* A copy of m (through its JSON) whose segment i is the run of m's table in the pack key. */
static manifest *
copy_manifest(const manifest *m)
{
	char *json = manifest_to_json(m);
	manifest *c = NULL;
	bs_error err;

	if (manifest_from_json(json, strlen(json), &c, &err) != BS_OK)
	{
		printf("Bail out! manifest_from_json: %s\n", err.message);
		exit(2);
	}
	free(json);
	return c;
}

static void
to_pack_segment(manifest *m, int i, const char *key, storage *from)
{
	manifest_segment *s = &m->segments[i];
	strbuf buf = STRBUF_INIT;
	pack_index *idx = NULL;
	const pack_run *r;
	bs_error err;

	if (storage_get_all(from, key, &buf, &err) != BS_OK ||
		pack_open_buffer(key, buf.data, buf.len, NULL, &idx, &err) != BS_OK || (r = pack_find_run(idx, m->relid)) == NULL)
	{
		printf("Bail out! pack %s: %s\n", key, err.message);
		exit(2);
	}
	free(s->key);
	s->key = xstrdup(key);
	s->source = MANIFEST_SEGMENT_PACK;
	s->pack_seq = idx->seq_first;
	s->raw_offset = r->raw_offset;
	s->raw_size = r->raw_len;
	s->size = 0;
	s->sha256[0] = '\0';
	pack_index_free(idx);
	strbuf_free(&buf);
}

static void
build_packs(void)
{
	strbuf runs[2] = {STRBUF_INIT, STRBUF_INIT};
	uint32_t relids[2] = {USERS, ORDERS};

	object_records(users2, 0, &runs[0]);
	object_records(orders2, 0, &runs[1]);
	write_pack(st, PACK1, 1, relids, runs, 2, NULL);
	object_records(users2, 1, &runs[0]);
	write_pack(st, PACK2, 2, relids, runs, 1, NULL);
	users3 = copy_manifest(users2);
	to_pack_segment(users3, 0, PACK1, st);
	to_pack_segment(users3, 1, PACK2, st);
	orders3 = copy_manifest(orders2);
	to_pack_segment(orders3, 0, PACK1, st);
	strbuf_free(&runs[0]);
	strbuf_free(&runs[1]);
}

static uint64_t
gets(storage *s)
{
	storage_stats stats;

	memset(&stats, 0, sizeof(stats));
	storage_stats_add(s, &stats);
	return stats.requests[STORAGE_OP_GET];
}

/* Every segment reads the same from its object and from its pack run; one open per pack. */
static void
test_same_records(void)
{
	segfetch *sf = segfetch_new();
	const manifest *two[2] = {users2, orders2};
	const manifest *three[2] = {users3, orders3};
	strbuf a = STRBUF_INIT,
			b = STRBUF_INIT;
	segfetch_info ia,
				ib;
	bs_error err;
	uint64_t before;

	for (int t = 0; t < 2; t++)
		for (int i = 0; i < two[t]->nsegments; i++)
		{
			int ra = segfetch_read_all(sf, st, two[t]->relid, &two[t]->segments[i], &a, &ia, &err);
			int rb = segfetch_read_all(sf, st, three[t]->relid, &three[t]->segments[i], &b, &ib, &err);

			if (!ok(ra == BS_OK && rb == BS_OK && a.len > SEGMENT_MAGIC_LEN && a.len == b.len &&
					memcmp(a.data, b.data, a.len) == 0 && ia.raw_size == a.len && ib.raw_size == b.len &&
					segfetch_raw_size(&two[t]->segments[i]) == a.len &&
					segfetch_raw_size(&three[t]->segments[i]) == b.len && ib.stored_size > 0,
					"relid %u segment %d: the pack run reads as the segment object (%zu raw bytes)",
					two[t]->relid, i, a.len))
				printf("# %s\n", err.message);
		}
	is_int(segfetch_packs_opened(sf), 2, "two packs opened for three runs (users' two, orders' one in pack 1)");
	/* Opened once: reading a run of an opened pack is one ranged GET (its frame). */
	before = gets(st);
	{
		int rc = segfetch_read_all(sf, st, ORDERS, &orders3->segments[0], &b, &ib, &err);
		uint64_t n = gets(st) - before;

		ok(rc == BS_OK && n == 1 && segfetch_packs_opened(sf) == 2,
		   "a run of a pack already opened costs one GET (%" PRIu64 ")", n);
	}
	segfetch_free(sf);

	/* recover_fetch_segment (what `changes` reads with): the same, with or without a cache. */
	{
		uint64_t bytes = 0;

		ok(recover_fetch_segment(st, NULL, USERS, &users2->segments[1], &a, &bytes, &err) == BS_OK &&
		   recover_fetch_segment(st, NULL, USERS, &users3->segments[1], &b, &bytes, &err) == BS_OK &&
		   a.len == b.len && memcmp(a.data, b.data, a.len) == 0 && bytes > 0,
		   "recover_fetch_segment: a pack segment gives the object's records");
	}
	strbuf_free(&a);
	strbuf_free(&b);
}

/* The table recovered at a point, as COPY text. */
typedef struct recovered
{
	strbuf copy;
	uint64_t transactions;
	uint64_t last_commit_lsn;
	int packs_opened;
} recovered;

static int
copy_append(void *ctx, const char *data, size_t len, bs_error *err)
{
	(void) err;
	strbuf_append(ctx, data, len);
	return BS_OK;
}

static int
recover(manifest *m, const recover_point *pt, recovered *res, bs_error *err)
{
	recover_plan *plan = NULL;
	replay_state *rs = NULL;
	replay_checksum sum;
	int rc = BS_ERR;

	memset(res, 0, sizeof(*res));
	if (recover_plan_build(st, m, NULL, pt, NULL, &plan, err) != BS_OK ||
		replay_new(m->nlayouts, m->layouts, &rs, err) != BS_OK ||
		recover_plan_run(plan, st, rs, UINT64_MAX, NULL, NULL, NULL, NULL, err) != BS_OK ||
		replay_write_copy(rs, recover_plan_point_layout(plan, replay_current_layout(rs)), copy_append, &res->copy,
						  &sum, err) != BS_OK)
		goto done;
	res->transactions = plan->transactions;
	res->last_commit_lsn = plan->last_commit_lsn;
	res->packs_opened = plan->segfetch ? segfetch_packs_opened(plan->segfetch) : 0;
	rc = BS_OK;
done:
	replay_free(rs);
	recover_plan_free(plan);
	return rc;
}

/* Recovery (plan, fetch, replay) over pack segments gives the rows it gives over objects. */
static void
test_replay(void)
{
	recover_point pts[5];
	const char *names[5] = {"latest", "LSN 0x1502000 (after the update)", "LSN 0x1500100 (the first insert)",
	"transaction 703", "time +4.5 s"};

	memset(pts, 0, sizeof(pts));
	pts[0].kind = RECOVER_POINT_LATEST;
	pts[1].kind = RECOVER_POINT_LSN;
	pts[1].lsn = 0x1502000;
	pts[2].kind = RECOVER_POINT_LSN;
	pts[2].lsn = 0x1500100;
	pts[3].kind = RECOVER_POINT_XID;
	pts[3].xid = 703;
	pts[4].kind = RECOVER_POINT_TIME;
	pts[4].time = T0 + 4 * SEC + SEC / 2;
	for (int i = 0; i < 5; i++)
	{
		recovered a,
					b;
		bs_error err;
		int ra = recover(users2, &pts[i], &a, &err);
		int rb = ra == BS_OK ? recover(users3, &pts[i], &b, &err) : BS_ERR;

		if (!ok(ra == BS_OK && rb == BS_OK && a.copy.len > 0 && a.copy.len == b.copy.len &&
				memcmp(a.copy.data, b.copy.data, a.copy.len) == 0 && a.transactions == b.transactions &&
				a.last_commit_lsn == b.last_commit_lsn && a.packs_opened == 0 && b.packs_opened >= 1,
				"recovery at %s: the same rows from packs as from segment objects (%" PRIu64 " transactions)",
				names[i], a.transactions))
			printf("# %s\n", err.message);
		if (i == 0)
			ok(ra == BS_OK && a.copy.len == strlen("2\tbobby\n3\tcarol\n4\tdave\n5\t\\N\n") &&
			   strstr(a.copy.data, "2\tbobby\n") && strstr(a.copy.data, "3\tcarol\n") &&
			   strstr(a.copy.data, "4\tdave\n") && strstr(a.copy.data, "5\t\\N\n") && a.transactions == 5 &&
			   b.packs_opened == 2, "the latest state is the five transactions' (bobby, carol, dave, a null name)");
		strbuf_free(&a.copy);
		if (rb == BS_OK)
			strbuf_free(&b.copy);
	}
}

static bool
has(const bs_error *err, const char *code, const char *a, const char *b)
{
	if (strcmp(err->code, code) == 0 && strstr(err->message, a) && (b == NULL || strstr(err->message, b)))
		return true;
	printf("# %s: %s\n", err->code, err->message);
	return false;
}

/* What does not match is refused, naming the pack. */
static void
test_refusals(void)
{
	segfetch *sf = segfetch_new();
	manifest_segment s;
	strbuf res = STRBUF_INIT;
	segfetch_info info;
	bs_error err;

	/* orders has no run in pack 2. */
	s = users3->segments[1];
	ok(segfetch_read_all(sf, st, ORDERS, &s, &res, &info, &err) == BS_ERR &&
	   has(&err, ERRCODE_NOT_FOUND, "pack \"" PACK2 "\" (seq 2) holds no run of relid 16401", "is missing from it") &&
	   res.len == 0, "a run missing from its pack: not found, naming the pack and the relid");
	s.key = "log/00000000000000ff.bsp";
	ok(segfetch_read_all(sf, st, USERS, &s, &res, &info, &err) == BS_ERR &&
	   has(&err, ERRCODE_NOT_FOUND, "pack \"log/00000000000000ff.bsp\" is missing", "relid 16400"),
	   "a missing pack: not found");
	s = users3->segments[1];
	s.pack_seq = 5;
	ok(segfetch_read_all(sf, st, USERS, &s, &res, &info, &err) == BS_ERR &&
	   has(&err, ERRCODE_DATA_CORRUPTED, "pack \"" PACK2 "\" starts at sequence number 2", "names sequence 5"),
	   "a pack of another sequence number: damage");
	s = users3->segments[1];
	s.raw_offset++;
	ok(segfetch_read_all(sf, st, USERS, &s, &res, &info, &err) == BS_ERR &&
	   has(&err, ERRCODE_DATA_CORRUPTED, PACK2, "is not the manifest's segment"),
	   "a run at another raw offset than the manifest's: damage");
	s = users3->segments[1];
	s.records++;
	ok(segfetch_read_all(sf, st, USERS, &s, &res, &info, &err) == BS_ERR &&
	   has(&err, ERRCODE_DATA_CORRUPTED, PACK2, "is not the manifest's segment"),
	   "a run with another record count than the manifest's: damage");
	s = users3->segments[1];
	s.last_time += 1;
	ok(segfetch_read_all(sf, st, USERS, &s, &res, &info, &err) == BS_ERR &&
	   has(&err, ERRCODE_DATA_CORRUPTED, PACK2, "times differ"), "a run with other times than the manifest's: damage");
	ok(segfetch_read_all(sf, st, USERS, &users3->segments[1], &res, &info, &err) == BS_OK,
	   "after the refusals the pack still reads");
	segfetch_free(sf);
	strbuf_free(&res);
}

/* A damaged frame: its hash refuses it, in segfetch and in a recovery, naming the pack. */
static void
test_damaged_frame(void)
{
	strbuf good = STRBUF_INIT,
			bad = STRBUF_INIT,
			res = STRBUF_INIT;
	segfetch *sf = segfetch_new();
	segfetch_info info;
	recover_point pt;
	recovered r;
	bs_error err;

	if (storage_get_all(st, PACK1, &good, &err) != BS_OK)
		exit(2);
	strbuf_append(&bad, good.data, good.len);
	bad.data[PACK_HEADER_SIZE + 4] ^= 0x20;	/* inside frame 0 */
	if (storage_put(st, PACK1, bad.data, bad.len, &err) != BS_OK)
		exit(2);
	ok(segfetch_read_all(sf, st, USERS, &users3->segments[0], &res, &info, &err) == BS_ERR &&
	   has(&err, ERRCODE_DATA_CORRUPTED, "pack \"" PACK1 "\"", "frames[0]") && strstr(err.message, "SHA-256") &&
	   res.len == 0, "a pack frame whose bytes changed: refused by its SHA-256, naming the pack");
	memset(&pt, 0, sizeof(pt));
	pt.kind = RECOVER_POINT_LATEST;
	/* The segment objects are untouched: format-2 recovery still works. */
	ok(recover(users2, &pt, &r, &err) == BS_OK, "the same point from the segment objects still recovers");
	strbuf_free(&r.copy);
	/* The format-2 objects are unlisted leftovers for users3: the audit reads the pack segments
	 * to see whether they hold their transactions (it did in test_replay), and now cannot. */
	ok(recover(users3, &pt, &r, &err) == BS_ERR && recover_error_is_integrity(&err) &&
	   has(&err, ERRCODE_DATA_CORRUPTED, "the listed segment " PACK1 " is unreadable", NULL),
	   "recovery over the damaged pack: the audit of the leftover objects names the unreadable pack");
	strbuf_free(&r.copy);
	/* Without them, the fetch itself refuses the frame. */
	for (int i = 0; i < users2->nsegments; i++)
		if (storage_delete(st, users2->segments[i].key, &err) != BS_OK)
			exit(2);
	ok(recover(users3, &pt, &r, &err) == BS_ERR && recover_error_is_integrity(&err) &&
	   has(&err, ERRCODE_DATA_CORRUPTED, "pack \"" PACK1 "\"", "SHA-256"),
	   "recovery over the damaged pack fails as damage (exit 3), naming the pack and the frame's SHA-256");
	strbuf_free(&r.copy);
	if (storage_put(st, PACK1, good.data, good.len, &err) != BS_OK)
		exit(2);
	segfetch_free(sf);
	sf = segfetch_new();
	/* A pack cut short: its trailer is gone. */
	if (storage_put(st, PACK1, good.data, good.len - 3, &err) != BS_OK)
		exit(2);
	ok(segfetch_read_all(sf, st, USERS, &users3->segments[0], &res, &info, &err) == BS_ERR &&
	   has(&err, ERRCODE_DATA_CORRUPTED, PACK1, NULL), "a pack cut short: damage, naming the pack");
	if (storage_put(st, PACK1, good.data, good.len, &err) != BS_OK)
		exit(2);
	segfetch_free(sf);
	strbuf_free(&good);
	strbuf_free(&bad);
	strbuf_free(&res);
}

/*
 * An encrypted archive: the wrapper seals objects whole and refuses ranged reads of them, so
 * a unit-sealed pack is read from the storage under it, with its keys.
 */
static void
test_encrypted(void)
{
	char dir[] = "/tmp/backstop-segfetch-enc-XXXXXX";
	char eurl[128];
	storage *raw = NULL,
			   *raw2 = NULL,
			   *enc = NULL,
			   *nokey = NULL;
	const uint8_t (*keyv)[CRYPT_KEY_SIZE] = (const uint8_t (*)[CRYPT_KEY_SIZE]) &key_a;
	pack_keys keys = {key_a, keyv, 1};
	strbuf runs[2] = {STRBUF_INIT, STRBUF_INIT};
	uint32_t relids[2] = {USERS, ORDERS};
	strbuf a = STRBUF_INIT,
			b = STRBUF_INIT;
	segfetch *sf = segfetch_new();
	segfetch_info info;
	pack_storage ps;
	pack_index *idx = NULL;
	bool exists;
	storage_stat stat;
	bs_error err;
	char cmd[160];

	for (int i = 0; i < CRYPT_KEY_SIZE; i++)
		key_a[i] = (uint8_t) (0x40 + i);
	if (mkdtemp(dir) == NULL)
		exit(2);
	snprintf(eurl, sizeof(eurl), "file://%s", dir);
	if (storage_open(eurl, NULL, &raw, &err) != BS_OK || storage_open(eurl, NULL, &raw2, &err) != BS_OK ||
		storage_crypt_wrap_keys(raw, key_a, NULL, 0, true, &enc, &err) != BS_OK)
	{
		printf("Bail out! encrypted archive: %s\n", err.message);
		exit(2);
	}
	object_records(users2, 0, &runs[0]);
	object_records(orders2, 0, &runs[1]);
	/* The pack writer seals the units; stored as it wrote them, under the wrapper. */
	write_pack(raw2, PACK1, 1, relids, runs, 2, &keys);
	ok(storage_crypt_active(enc), "the archive is encrypted");
	ok(segfetch_read_all(sf, enc, USERS, &users3->segments[0], &b, &info, &err) == BS_OK &&
	   segfetch_read_all(sf, st, USERS, &users2->segments[0], &a, &info, &err) == BS_OK && a.len == b.len &&
	   memcmp(a.data, b.data, a.len) == 0, "a sealed pack's run reads through the encrypting storage, with its key");
	ok(segfetch_read_all(sf, enc, ORDERS, &orders3->segments[0], &b, &info, &err) == BS_OK &&
	   segfetch_packs_opened(sf) == 1, "a second table's run of the sealed pack: opened once");
	/* Why: the wrapper refuses ranged reads of what it holds. */
	ps.st = enc;
	ps.key = PACK1;
	ok(storage_head(raw2, PACK1, &exists, &stat, &err) == BS_OK &&
	   pack_open(PACK1, stat.size, pack_storage_read, &ps, &keys, &idx, &err) == BS_ERR &&
	   has(&err, ERRCODE_INVALID_PARAMETER, "sealed whole", NULL),
	   "the wrapper itself refuses the pack's ranged reads (objects sealed whole are read whole)");
	pack_index_free(idx);
	segfetch_free(sf);
	/* Without the key: refused as such. */
	sf = segfetch_new();
	if (storage_open(eurl, NULL, &raw, &err) != BS_OK || storage_crypt_wrap_keys(raw, NULL, NULL, 0, false, &nokey, &err) != BS_OK)
	{
		printf("Bail out! keyless storage: %s\n", err.message);
		exit(2);
	}
	ok(segfetch_read_all(sf, nokey, USERS, &users3->segments[0], &b, &info, &err) == BS_ERR &&
	   has(&err, ERRCODE_ENCRYPTION_KEY, PACK1, NULL), "a sealed pack read without the key: an encryption-key error");
	segfetch_free(sf);
	/* A unit of the sealed pack changed: its hash (then its tag) refuses it. */
	sf = segfetch_new();
	{
		strbuf p = STRBUF_INIT;

		if (storage_get_all(raw2, PACK1, &p, &err) != BS_OK)
			exit(2);
		p.data[PACK_HEADER_SIZE + CRYPT_HEADER_SIZE + 2] ^= 1;
		if (storage_put(raw2, PACK1, p.data, p.len, &err) != BS_OK)
			exit(2);
		ok(segfetch_read_all(sf, enc, USERS, &users3->segments[0], &b, &info, &err) == BS_ERR &&
		   has(&err, ERRCODE_DATA_CORRUPTED, PACK1, "SHA-256"), "a damaged sealed frame: refused, naming the pack");
		strbuf_free(&p);
	}
	segfetch_free(sf);
	storage_close(nokey);
	storage_close(enc);
	storage_close(raw2);
	strbuf_free(&runs[0]);
	strbuf_free(&runs[1]);
	strbuf_free(&a);
	strbuf_free(&b);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
}

/* Expiry drops a table's pack segments from its manifest but never deletes the pack, which
 * holds other tables' runs (format2.md 3.9: a pack goes when all its runs have expired). */
static void
test_expire(void)
{
	manifest *m2 = copy_manifest(users2),
			   *m3 = copy_manifest(users2);
	expire_policy pol = {0, 1};
	expire_plan p2,
				p3;
	bool seg_key = false,
		pack_key = false;
	bs_error err;

	to_pack_segment(m3, 0, PACK1, st);
	to_pack_segment(m3, 1, PACK2, st);
	add_base(m2, 0x1502100, 3 * SEC, "2\tbobby\n3\tcarol\n", 2);
	add_base(m3, 0x1502100, 3 * SEC, "2\tbobby\n3\tcarol\n", 2);
	expire_select(m2, &pol, T0 + 10 * SEC, &p2);
	expire_select(m3, &pol, T0 + 10 * SEC, &p3);
	for (int i = 0; i < p2.keys.count; i++)
		seg_key = seg_key || strcmp(p2.keys.keys[i], users2->segments[0].key) == 0;
	for (int i = 0; i < p3.keys.count; i++)
		pack_key = pack_key || strncmp(p3.keys.keys[i], "log/", 4) == 0;
	ok(p2.nsegments == 1 && p3.nsegments == 1 && p3.drop_segment[0] && !p3.drop_segment[1],
	   "expiry drops the first segment from either manifest");
	ok(seg_key && !pack_key && p3.keys.count == p2.keys.count - 1,
	   "the segment object goes; the pack does not (other tables' runs are in it)");
	expire_apply(m3, &p3, T0 + 10 * SEC);
	ok(m3->nsegments == 1 && strcmp(m3->segments[0].key, PACK2) == 0 && manifest_validate(m3, &err) == BS_OK,
	   "after expiry the manifest keeps its pack segment in pack 2");
	expire_plan_free(&p2);
	expire_plan_free(&p3);
	manifest_free(m2);
	manifest_free(m3);
}

/* A store that fails is not damage: its code comes through (recovery exits 1, not 3), and
 * nothing is cached from a failed open. */
static void
test_storage_failures(void)
{
	fault_storage *fs = fault_storage_new(st, false);
	storage *fst = &fs->base;
	segfetch *sf = segfetch_new();
	strbuf res = STRBUF_INIT;
	segfetch_info info;
	bs_error err;

	fault_storage_fail_next(fs, STORAGE_OP_HEAD, 1);
	ok(segfetch_read_all(sf, fst, USERS, &users3->segments[0], &res, &info, &err) == BS_ERR &&
	   has(&err, ERRCODE_TRANSIENT, "pack \"" PACK1 "\"", "injected storage failure (head") &&
	   !recover_error_is_integrity(&err) && segfetch_packs_opened(sf) == 0,
	   "the pack's HEAD fails: the store's error, naming the pack, nothing opened");
	fault_storage_fail_next(fs, STORAGE_OP_GET, 1);
	ok(segfetch_read_all(sf, fst, USERS, &users3->segments[0], &res, &info, &err) == BS_ERR &&
	   has(&err, ERRCODE_TRANSIENT, "injected storage failure (get", NULL) && segfetch_packs_opened(sf) == 0,
	   "a read of the pack's trailer fails: the store's error, nothing cached");
	ok(segfetch_read_all(sf, fst, USERS, &users3->segments[0], &res, &info, &err) == BS_OK &&
	   segfetch_packs_opened(sf) == 1, "then it opens");
	fault_storage_fail_next(fs, STORAGE_OP_GET, 1);
	ok(segfetch_read_all(sf, fst, ORDERS, &orders3->segments[0], &res, &info, &err) == BS_ERR &&
	   has(&err, ERRCODE_TRANSIENT, "pack \"" PACK1 "\"", "injected storage failure (get") && res.len == 0 &&
	   !recover_error_is_integrity(&err), "a read of a run's frames fails: the store's error, naming the pack");
	ok(segfetch_read_all(sf, fst, ORDERS, &orders3->segments[0], &res, &info, &err) == BS_OK &&
	   segfetch_packs_opened(sf) == 1, "then the run reads, from the pack opened before");
	segfetch_free(sf);
	storage_close(fst);
	strbuf_free(&res);
}

int
main(void)
{
	char dir[] = "/tmp/backstop-segfetch-XXXXXX";

	if (fixture_open(dir) != BS_OK)
		return 2;
	build_objects();
	build_packs();
	test_same_records();
	test_replay();
	test_expire();
	test_refusals();
	test_storage_failures();
	test_encrypted();
	test_damaged_frame();
	manifest_free(users2);
	manifest_free(orders2);
	manifest_free(users3);
	manifest_free(orders3);
	fixture_close(dir);
	return done_testing();
}
