/* test_replay.c — unit tests of the in-memory replay engine: base copies, changes, layouts, checksums, errors. */
#include "replay.h"
#include "pghash.h"
#include "error.h"
#include "strbuf.h"
#include "tap.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------- helpers: tuples, records, layouts ---------- */

/* Build a pgoutput TupleData from a spec: one string per column; NULL means SQL NULL and
 * the string "\x01U" means an unchanged TOASTed value. */
#define UNCH "\x01U"

static strbuf tuples[64];
static int ntuples;

static const uint8_t *
tuple(size_t *len, int ncols, const char *const *vals)
{
	strbuf *sb = &tuples[ntuples++ % 64];

	strbuf_reset(sb);
	strbuf_append_be16(sb, (uint16_t) ncols);
	for (int i = 0; i < ncols; i++)
	{
		if (vals[i] == NULL)
			strbuf_append_u8(sb, 'n');
		else if (strcmp(vals[i], UNCH) == 0)
			strbuf_append_u8(sb, 'u');
		else
		{
			strbuf_append_u8(sb, 't');
			strbuf_append_be32(sb, (uint32_t) strlen(vals[i]));
			strbuf_append_str(sb, vals[i]);
		}
	}
	*len = sb->len;
	return (const uint8_t *) sb->data;
}

static uint64_t next_lsn = 0x1000000;
static uint32_t next_xid = 1000;

/* Each call is one transaction unless same_tx. */
static segment_record
rec(char op, uint32_t layout, char old_kind, int ncols, const char *const *oldv, const char *const *newv,
	bool same_tx)
{
	segment_record r;

	memset(&r, 0, sizeof(r));
	if (!same_tx)
	{
		next_lsn += 0x100;
		next_xid++;
	}
	r.op = op;
	r.commit_lsn = next_lsn;
	r.end_lsn = next_lsn + 0x30;
	r.xid = next_xid;
	r.commit_time = 0;
	r.layout_id = layout;
	r.old_kind = old_kind;
	if (oldv)
		r.old_tuple = tuple(&r.old_len, ncols, oldv);
	if (newv)
		r.new_tuple = tuple(&r.new_len, ncols, newv);
	return r;
}

static manifest_column
col(const char *name, const char *type, bool key, const char *missing)
{
	manifest_column c;

	memset(&c, 0, sizeof(c));
	c.name = (char *) name;
	c.type_name = (char *) type;
	c.key = key;
	c.missing = (char *) missing;
	return c;
}

/* All rows as sorted COPY lines, joined. */
static int
collect(void *ctx, const char *data, size_t len, bs_error *err)
{
	(void) err;
	strbuf_append((strbuf *) ctx, data, len);
	return BS_OK;
}

static int
cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static char *
dump(replay_state *st, uint32_t layout, replay_checksum *sum)
{
	strbuf sb = STRBUF_INIT;
	strbuf out = STRBUF_INIT;
	bs_error err;
	char **lines = NULL;
	int n = 0;

	if (replay_write_copy(st, layout, collect, &sb, sum, &err) != BS_OK)
	{
		printf("# dump failed: %s\n", err.message);
		strbuf_free(&sb);
		return xstrdup("<error>");
	}
	for (char *p = sb.data, *nl; p && *p; p = nl + 1)
	{
		nl = strchr(p, '\n');
		*nl = '\0';
		lines = xrealloc(lines, sizeof(char *) * (size_t) (n + 1));
		lines[n++] = p;
	}
	qsort(lines, (size_t) n, sizeof(char *), cmpstr);
	for (int i = 0; i < n; i++)
	{
		strbuf_append_str(&out, lines[i]);
		strbuf_append_char(&out, '|');
	}
	free(lines);
	strbuf_free(&sb);
	return out.data ? strbuf_detach(&out, NULL) : xstrdup("");
}

static int
apply(replay_state *st, segment_record r, bs_error *err)
{
	return replay_apply(st, &r, err);
}

/* ---------- change callback ---------- */

static int
record_change(void *ctx, const replay_change *ch, bs_error *err)
{
	strbuf *sb = ctx;

	(void) err;
	strbuf_printf(sb, "%c:", ch->rec->op);
	if (ch->old_values)
		replay_record_text(sb, ch->ncols, ch->old_values);
	strbuf_append_str(sb, "->");
	if (ch->new_values)
		replay_record_text(sb, ch->ncols, ch->new_values);
	if (ch->rec->op == 'T')
		strbuf_printf(sb, "%llu", (unsigned long long) ch->truncated_rows);
	strbuf_append_char(sb, ';');
	return BS_OK;
}

/* ---------- tests ---------- */

/* Every tail length of lookup3 (0..11, then a full block plus one), against PostgreSQL 15:
 *   SELECT hashtextextended(x, 0) FROM unnest(ARRAY['', 'a', 'ab', ...]) x */
static void
test_pghash(void)
{
	static const struct
	{
		const char *text;
		int64_t hash;
	} v[] = {
		{"", -6939563903564495251LL}, {"a", 3591986179850072241LL}, {"ab", 2833316173711343549LL},
		{"abc", -6747756470228489321LL}, {"abcd", -1038429303365892052LL},
		{"abcde", 3076356108696143428LL}, {"abcdefgh", -8882191227074733005LL},
		{"abcdefghi", -3278210106038014113LL}, {"abcdefghijk", 3112909444737856467LL},
		{"abcdefghijkl", -7556637188122330412LL}, {"abcdefghijklm", 8871624171452417744LL},
		{"(1,\"name 1\",0.01)", -7691719259832819096LL},
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
		is_int(pghash_text(v[i].text, strlen(v[i].text)), v[i].hash, "hashtextextended('%s', 0)", v[i].text);
}

static void
test_record_text_and_checksum(void)
{
	/* Rows and values verified against PostgreSQL 15:
	 *   SELECT t::text, hashtextextended(t::text, 0) FROM ck t */
	replay_value r1[3] = {{"1", 1, false}, {"a b", 3, false}, {NULL, 0, true}};
	replay_value r2[3] = {{"2", 1, false}, {"", 0, false}, {"x\"y\\z", 5, false}};
	replay_value r3[3] = {{"3", 1, false}, {"(paren)", 7, false}, {"tab\tnl\nend", 10, false}};
	replay_value r4[3] = {{"4", 1, false}, {"plain,comma", 11, false}, {"\xc3\xbcn\xc3\xaf", 5, false}};
	strbuf sb = STRBUF_INIT;
	replay_checksum sum = {0, 0};
	char buf[REPLAY_CHECKSUM_BUFLEN];
	const replay_value *rows[4] = {r1, r2, r3, r4};
	const int64_t expect[4] = {4280411909749434950LL, -5056770852533086799LL, 9130676252834260167LL,
		-2662685466033804999LL};
	replay_checksum big = {0, 0};

	replay_record_text(&sb, 3, r1);
	is_str(sb.data, "(1,\"a b\",)", "record text: space quoted, NULL empty");
	strbuf_reset(&sb);
	replay_record_text(&sb, 3, r2);
	is_str(sb.data, "(2,\"\",\"x\"\"y\\\\z\")", "record text: empty quoted, quote and backslash doubled");
	strbuf_reset(&sb);
	replay_record_text(&sb, 3, r4);
	is_str(sb.data, "(4,\"plain,comma\",\xc3\xbcn\xc3\xaf)", "record text: comma quoted, UTF-8 verbatim");
	for (int i = 0; i < 4; i++)
	{
		strbuf_reset(&sb);
		replay_record_text(&sb, 3, rows[i]);
		is_int(replay_row_hash(sb.data, sb.len), expect[i], "hashtextextended of row %d matches PostgreSQL", i + 1);
		sum.sum += replay_row_hash(sb.data, sb.len);
		sum.rows++;
		if (i == 0 || i == 2)
			big.sum += replay_row_hash(sb.data, sb.len);
	}
	is_str(replay_checksum_format(&sum, buf), "5691631844016803319", "sum matches PostgreSQL's");
	is_str(replay_checksum_format(&big, buf), "13411088162583695117",
		   "128-bit sum beyond int64 matches PostgreSQL's numeric sum (rows 1 and 3)");
	sum.sum = 0;
	is_str(replay_checksum_format(&sum, buf), "0", "zero formats as 0");
	sum.sum = (__int128) INT64_MAX * 4;
	is_str(replay_checksum_format(&sum, buf), "36893488147419103228", "large positive sum");
	strbuf_free(&sb);
}

static void
test_base_and_changes(void)
{
	manifest_column cols[3] = {col("id", "integer", true, NULL), col("name", "text", false, NULL),
	col("note", "text", false, NULL)};
	manifest_layout l = {0, 0, 'd', 3, cols};
	replay_state *st;
	bs_error err;
	const char *base = "1\tone\t\\N\n2\ttwo\tbig\\ttoast\n3\tth\\\\ree\tx\n";
	char *d;
	replay_checksum sum,
		sum2;
	strbuf changes = STRBUF_INIT;

	ok(replay_new(1, &l, &st, &err) == BS_OK, "replay_new");
	ok(replay_load_base_copy(st, 0, base, strlen(base), "chunk 1", &err) == BS_OK, "base copy loads");
	is_int(replay_row_count(st), 3, "three base rows");
	d = dump(st, 0, &sum);
	is_str(d, "1\tone\t\\N|2\ttwo\tbig\\ttoast|3\tth\\\\ree\tx|", "base rows round-trip through COPY text");
	free(d);
	is_int(sum.rows, 3, "checksum counts rows");

	replay_set_change_callback(st, record_change, &changes);
	ok(apply(st, rec('I', 0, '0', 3, NULL, (const char *[]) {"4", "four", NULL}, false), &err) == BS_OK,
	   "insert");
	/* An update that kept the key and did not send the TOASTed note. */
	ok(apply(st, rec('U', 0, '0', 3, NULL, (const char *[]) {"2", "TWO", UNCH}, false), &err) == BS_OK,
	   "update with unchanged TOASTed column");
	/* Key change: old key carried as 'K' (non-key columns null). */
	ok(apply(st, rec('U', 0, 'K', 3, (const char *[]) {"3", NULL, NULL}, (const char *[]) {"30", "thirty", UNCH},
					 false), &err) == BS_OK, "update changing the key");
	ok(apply(st, rec('D', 0, 'K', 3, (const char *[]) {"1", NULL, NULL}, NULL, false), &err) == BS_OK, "delete");
	d = dump(st, 0, NULL);
	is_str(d, "2\tTWO\tbig\\ttoast|30\tthirty\tx|4\tfour\t\\N|", "state after I/U/U/D");
	free(d);
	is_str(changes.data,
		   "I:->(4,four,);"
		   "U:(2,two,\"big\ttoast\")->(2,TWO,\"big\ttoast\");"
		   "U:(3,\"th\\\\ree\",x)->(30,thirty,x);"
		   "D:(1,one,)->;",
		   "changes carry full old images reconstructed from the state");
	replay_set_change_callback(st, NULL, NULL);

	ok(replay_checksum_compute(st, 0, &sum2, &err) == BS_OK && sum2.rows == 3, "checksum of final state");
	ok(sum2.sum != sum.sum, "checksum changed with the content");

	/* Errors: each names the LSN and xid and uses the corruption code. */
	ok(apply(st, rec('U', 0, '0', 3, NULL, (const char *[]) {"99", "x", NULL}, false), &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 && strstr(err.message, "not in the table") &&
	   strstr(err.message, "xid") && strstr(err.message, "commit LSN"), "update of a missing row fails: %s",
	   err.message);
	ok(apply(st, rec('D', 0, 'K', 3, (const char *[]) {"1", NULL, NULL}, NULL, false), &err) == BS_ERR &&
	   strstr(err.message, "DELETE of a row that is not in the table"), "delete of a missing row fails");
	ok(apply(st, rec('I', 0, '0', 2, NULL, (const char *[]) {"5", "x"}, false), &err) == BS_ERR &&
	   strstr(err.message, "2 columns but layout 0 has 3"), "column count mismatch fails: %s", err.message);
	ok(apply(st, rec('I', 0, '0', 3, NULL, (const char *[]) {"5", "x", UNCH}, false), &err) == BS_ERR &&
	   strstr(err.message, "unchanged TOASTed"), "'u' in an insert fails");
	ok(apply(st, rec('U', 0, '0', 3, NULL, (const char *[]) {"4", "x", UNCH}, false), &err) == BS_ERR &&
	   strstr(err.message, "prior image has no value"), "'u' over a NULL prior value fails");
	ok(apply(st, rec('I', 7, '0', 3, NULL, (const char *[]) {"5", "x", NULL}, false), &err) == BS_ERR &&
	   strstr(err.message, "layout 7"), "unknown layout fails");
	is_int(replay_row_count(st), 3, "failed records changed nothing");

	/* Duplicate key: allowed inside a transaction (deferred constraint), not at its end. */
	ok(apply(st, rec('I', 0, '0', 3, NULL, (const char *[]) {"4", "dup", NULL}, false), &err) == BS_OK,
	   "duplicate key insert accepted within the transaction");
	ok(apply(st, rec('U', 0, 'K', 3, (const char *[]) {"4", NULL, NULL}, (const char *[]) {"5", "x", NULL}, true),
			 &err) == BS_ERR && strstr(err.message, "matches 2 rows"), "ambiguous update refused");
	ok(replay_check(st, &err) == BS_ERR && strstr(err.message, "duplicate"), "duplicate key at a boundary fails");
	ok(apply(st, rec('D', 0, 'K', 3, (const char *[]) {"4", NULL, NULL}, NULL, true), &err) == BS_ERR,
	   "ambiguous delete refused too");

	/* Truncate empties; inserts continue after it. */
	ok(apply(st, rec('T', 0, '0', 0, NULL, NULL, true), &err) == BS_OK, "truncate (in the same transaction)");
	is_int(replay_row_count(st), 0, "table empty after truncate");
	ok(apply(st, rec('I', 0, '0', 3, NULL, (const char *[]) {"7", "", "a\\b\tc"}, false), &err) == BS_OK,
	   "insert after truncate");
	d = dump(st, 0, NULL);
	is_str(d, "7\t\ta\\\\b\\tc|", "COPY output escapes backslash and tab, keeps empty string");
	free(d);
	replay_free(st);
	strbuf_free(&changes);
}

static void
test_deferred_key_swap(void)
{
	manifest_column cols[2] = {col("id", "integer", true, NULL), col("v", "text", false, NULL)};
	manifest_layout l = {0, 0, 'd', 2, cols};
	replay_state *st;
	bs_error err;
	const char *base = "1\ta\n2\tb\n";
	char *d;

	replay_new(1, &l, &st, &err);
	replay_load_base_copy(st, 0, base, strlen(base), "base", &err);
	/* UPDATE t SET id = id + 1 under a deferrable key: 2 is briefly duplicated. */
	ok(apply(st, rec('U', 0, 'K', 2, (const char *[]) {"2", NULL}, (const char *[]) {"3", "b"}, false), &err) == BS_OK &&
	   apply(st, rec('U', 0, 'K', 2, (const char *[]) {"1", NULL}, (const char *[]) {"2", "a"}, true), &err) == BS_OK,
	   "key shift applied");
	ok(replay_check(st, &err) == BS_OK, "no duplicates left");
	d = dump(st, 0, NULL);
	is_str(d, "2\ta|3\tb|", "shifted keys");
	free(d);
	replay_free(st);
}

static void
test_full_identity_duplicates(void)
{
	manifest_column cols[2] = {col("a", "integer", false, NULL), col("b", "text", false, NULL)};
	manifest_layout l = {0, 0, 'f', 2, cols};
	replay_state *st;
	bs_error err;
	const char *base = "1\tx\n1\tx\n1\tx\n2\t\\N\n";
	char *d;

	replay_new(1, &l, &st, &err);
	ok(replay_load_base_copy(st, 0, base, strlen(base), "base", &err) == BS_OK, "identical rows load");
	is_int(replay_row_count(st), 4, "four rows, three identical");
	ok(apply(st, rec('D', 0, 'O', 2, (const char *[]) {"1", "x"}, NULL, false), &err) == BS_OK,
	   "delete of one identical row");
	is_int(replay_row_count(st), 3, "exactly one removed");
	ok(apply(st, rec('U', 0, 'O', 2, (const char *[]) {"1", "x"}, (const char *[]) {"1", "y"}, false), &err) == BS_OK,
	   "update of one identical row");
	ok(apply(st, rec('U', 0, 'O', 2, (const char *[]) {"2", NULL}, (const char *[]) {"2", "z"}, false), &err) == BS_OK,
	   "update matching a NULL column");
	d = dump(st, 0, NULL);
	is_str(d, "1\tx|1\ty|2\tz|", "FULL identity state");
	free(d);
	ok(apply(st, rec('D', 0, 'O', 2, (const char *[]) {"1", "q"}, NULL, false), &err) == BS_ERR &&
	   strstr(err.message, "whole row"), "delete of a row that differs in a column fails");
	ok(apply(st, rec('D', 0, 'O', 2, (const char *[]) {"1", "x"}, NULL, false), &err) == BS_OK &&
	   apply(st, rec('D', 0, 'O', 2, (const char *[]) {"1", "x"}, NULL, false), &err) == BS_ERR,
	   "a second delete of the last identical row fails");
	replay_free(st);
}

static void
test_layouts(void)
{
	/* 0: (id, b)  1: ADD COLUMN c DEFAULT 'x'  2: DROP COLUMN b  3: re-add b (no default)
	 * 4: ALTER c TYPE to a type whose text changes. */
	manifest_column c0[2] = {col("id", "integer", true, NULL), col("b", "text", false, NULL)};
	manifest_column c1[3] = {col("id", "integer", true, NULL), col("b", "text", false, NULL),
	col("c", "text", false, "x")};
	manifest_column c2[2] = {col("id", "integer", true, NULL), col("c", "text", false, "x")};
	manifest_column c3[3] = {col("id", "bigint", true, NULL), col("c", "character varying(5)", false, "x"),
	col("b", "text", false, NULL)};
	manifest_column c4[3] = {col("id", "bigint", true, NULL), col("c", "numeric(4,2)", false, NULL),
	col("b", "text", false, NULL)};
	manifest_layout ls[5] = {{0, 0, 'd', 2, c0}, {1, 0, 'd', 3, c1}, {2, 0, 'd', 2, c2}, {3, 0, 'd', 3, c3},
	{4, 0, 'd', 3, c4}};
	replay_state *st;
	bs_error err;
	const char *base = "1\told\n2\told2\n";
	char *d;

	ok(replay_new(5, ls, &st, &err) == BS_OK, "five layouts");
	replay_load_base_copy(st, 0, base, strlen(base), "base", &err);
	ok(apply(st, rec('I', 1, '0', 3, NULL, (const char *[]) {"3", "new", "c3"}, false), &err) == BS_OK,
	   "insert after ADD COLUMN");
	ok(apply(st, rec('U', 1, '0', 3, NULL, (const char *[]) {"2", "upd", "x"}, false), &err) == BS_OK,
	   "update of a base row in the new layout");
	d = dump(st, 1, NULL);
	is_str(d, "1\told\tx|2\tupd\tx|3\tnew\tc3|", "old rows get the column's missing value");
	free(d);
	ok(apply(st, rec('D', 2, 'K', 2, (const char *[]) {"3", NULL}, NULL, false), &err) == BS_OK,
	   "delete in the layout after DROP COLUMN");
	d = dump(st, 2, NULL);
	is_str(d, "1\tx|2\tx|", "dropped column omitted");
	free(d);
	is_int(replay_current_layout(st), 2, "current layout follows the records");
	ok(apply(st, rec('I', 3, '0', 3, NULL, (const char *[]) {"4", "c4", "b4"}, false), &err) == BS_OK,
	   "insert after re-adding b and widening types");
	d = dump(st, 3, NULL);
	is_str(d, "1\tx\t\\N|2\tx\t\\N|4\tc4\tb4|", "a re-added column is new: old values are not resurrected");
	free(d);
	/* Converting to layout 4 would need a cast PostgreSQL does (text -> numeric(4,2)). */
	ok(apply(st, rec('I', 4, '0', 3, NULL, (const char *[]) {"5", "1.50", NULL}, false), &err) == BS_OK,
	   "insert in the retyped layout (only the new row is touched)");
	{
		replay_checksum sum;

		ok(replay_checksum_compute(st, 4, &sum, &err) == BS_ERR && strstr(err.message, "changed type"),
		   "old rows across a text-changing type change are refused: %s", err.message);
	}
	replay_free(st);
}

/* A column retyped so that its text changes: a NULL is NULL in either type.  A DELETE decoded
 * with the old layout (its change made before the ALTER committed, its transaction committed
 * after) carries the key and NULLs: it applies in the new layout, and rows whose value in that
 * column is NULL pass; another value is still refused. */
static void
test_retyped_null(void)
{
	manifest_column c0[2] = {col("id", "integer", true, NULL), col("c", "text", false, NULL)};
	manifest_column c1[2] = {col("id", "integer", true, NULL), col("c", "numeric(4,2)", false, NULL)};
	manifest_column c2[3] = {col("id", "integer", true, NULL), col("c", "numeric(4,2)", false, NULL),
	col("w", "integer", false, NULL)};
	manifest_layout ls[3] = {{0, 0, 'd', 2, c0}, {1, 0, 'd', 2, c1}, {2, 0, 'd', 3, c2}};
	replay_state *st;
	bs_error err;
	const char *base = "1\t\\N\n2\tx\n";
	replay_checksum sum;
	char *d;

	ok(replay_new(3, ls, &st, &err) == BS_OK, "retyped: three layouts");
	replay_load_base_copy(st, 0, base, strlen(base), "base", &err);
	ok(apply(st, rec('I', 1, '0', 2, NULL, (const char *[]) {"3", "1.50"}, false), &err) == BS_OK,
	   "retyped: insert in the retyped layout");
	ok(apply(st, rec('D', 0, 'K', 2, (const char *[]) {"2", NULL}, NULL, false), &err) == BS_OK,
	   "retyped: a key-only delete written in the old layout applies in the new one");
	d = dump(st, 1, NULL);
	is_str(d, "1\t\\N|3\t1.50|", "retyped: the NULL of an old row is NULL in the new type");
	free(d);
	/* Through a later layout too (the map is composed over two steps). */
	ok(replay_checksum_compute(st, 2, &sum, &err) == BS_OK, "retyped: a NULL passes two steps");
	ok(apply(st, rec('I', 0, '0', 2, NULL, (const char *[]) {"4", "y"}, false), &err) == BS_OK,
	   "retyped: an old-layout insert is kept as written");
	ok(replay_checksum_compute(st, 2, &sum, &err) == BS_ERR && strstr(err.message, "changed type"),
	   "retyped: a value that is not NULL is still refused: %s", err.message);
	replay_free(st);
}

/* ADD COLUMN u DEFAULT gen_random_uuid(): each old row got its own value in a rewrite that the
 * stream does not carry.  A row from before may not be given NULL for it. */
static void
test_volatile_default(void)
{
	manifest_column c0[2] = {col("id", "integer", true, NULL), col("v", "text", false, NULL)};
	manifest_column c1[3] = {col("id", "integer", true, NULL), col("v", "text", false, NULL),
	col("u", "uuid", false, NULL)};
	manifest_column c2[4] = {col("id", "integer", true, NULL), col("v", "text", false, NULL),
	col("u", "uuid", false, NULL), col("w", "integer", false, "7")};
	manifest_column c3[2] = {col("id", "integer", true, NULL), col("v", "text", false, NULL)};
	manifest_layout ls[4] = {{0, 0x100, 'd', 2, c0}, {1, 0x200, 'd', 3, c1}, {2, 0x300, 'd', 4, c2},
	{3, 0x400, 'd', 2, c3}};
	replay_state *st;
	bs_error err;
	const char *base = "1\ta\n2\tb\n";
	replay_checksum sum;
	char *d;

	c1[2].missing_unknown = true;
	error_clear(&err);
	ok(replay_new(4, ls, &st, &err) == BS_OK, "layouts with a column of unknown old values");
	replay_load_base_copy(st, 0, base, strlen(base), "base", &err);
	d = dump(st, 0, NULL);
	is_str(d, "1\ta|2\tb|", "before the column: exact");
	free(d);
	ok(replay_checksum_compute(st, 1, &sum, &err) == BS_ERR && strstr(err.message, "column \"u\"") &&
	   strstr(err.message, "volatile default") && strstr(err.message, "0/200") &&
	   strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0,
	   "an old row in the layout that added it is refused: %s", err.message);
	error_clear(&err);
	ok(replay_checksum_compute(st, 2, &sum, &err) == BS_ERR && strstr(err.message, "column \"u\""),
	   "and in a later layout (through the chain): %s", err.message);
	error_clear(&err);
	ok(replay_checksum_compute(st, 3, &sum, &err) == BS_OK, "not once the column is dropped again: %s",
	   err.message);
	/* An update of an old row needs its old image in the new layout: refused as well. */
	error_clear(&err);
	ok(apply(st, rec('U', 1, '0', 3, NULL, (const char *[]) {"1", "a", "00000000-0000-0000-0000-000000000001"},
					 false), &err) == BS_ERR && strstr(err.message, "column \"u\""),
	   "an update of an old row in the new layout is refused: %s", err.message);
	/* Rows written with the column need no guess. */
	error_clear(&err);
	ok(apply(st, rec('I', 1, '0', 3, NULL, (const char *[]) {"3", "c", "00000000-0000-0000-0000-000000000003"},
					 false), &err) == BS_OK, "insert in the new layout: %s", err.message);
	ok(apply(st, rec('D', 0, 'K', 2, (const char *[]) {"1", NULL}, NULL, false), &err) == BS_OK &&
	   apply(st, rec('D', 0, 'K', 2, (const char *[]) {"2", NULL}, NULL, false), &err) == BS_OK,
	   "old rows deleted: %s", err.message);
	d = dump(st, 2, NULL);
	is_str(d, "3\tc\t00000000-0000-0000-0000-000000000003\t7|", "no old row left: exact");
	free(d);
	replay_free(st);
}

static int
record_layout_id(void *ctx, const replay_change *ch, bs_error *err)
{
	(void) err;
	strbuf_printf((strbuf *) ctx, "%u/%u,", ch->rec->layout_id, ch->layout->id);
	return BS_OK;
}

/* Layout ids are unique, not positions: a layout inserted between two others (a base copy
 * taken ahead of the stream) keeps a higher id.  Positions give the order of changes. */
static void
test_layout_ids(void)
{
	/* In from_lsn order: id 0 (id, b); id 2 DROP COLUMN b; id 1 b added again (no default). */
	manifest_column c0[2] = {col("id", "integer", true, NULL), col("b", "text", false, NULL)};
	manifest_column c2[1] = {col("id", "integer", true, NULL)};
	manifest_column c1[2] = {col("id", "integer", true, NULL), col("b", "text", false, NULL)};
	manifest_layout ls[3] = {{0, 0x100, 'd', 2, c0}, {2, 0x200, 'd', 1, c2}, {1, 0x300, 'd', 2, c1}};
	manifest_layout dup[2] = {{0, 0x100, 'd', 2, c0}, {0, 0x200, 'd', 1, c2}};
	replay_state *st;
	bs_error err;
	const char *base = "1\told\n";
	char *d;
	strbuf changes = STRBUF_INIT;

	ok(replay_new(2, dup, &st, &err) == BS_ERR && strstr(err.message, "same id 0"),
	   "duplicate layout ids are refused: %s", err.message);
	ok(replay_new(3, ls, &st, &err) == BS_OK, "ids out of position order are accepted");
	if (st == NULL)
		return;
	replay_set_change_callback(st, record_layout_id, &changes);
	ok(replay_load_base_copy(st, 0, base, strlen(base), "base", &err) == BS_OK, "base in layout id 0");
	ok(apply(st, rec('I', 2, '0', 1, NULL, (const char *[]) {"2"}, false), &err) == BS_OK,
	   "insert in layout id 2 (position 1)");
	is_int(replay_current_layout(st), 2, "current layout is reported by id");
	ok(apply(st, rec('I', 1, '0', 2, NULL, (const char *[]) {"3", "b3"}, false), &err) == BS_OK,
	   "insert in layout id 1 (position 2)");
	is_int(replay_current_layout(st), 1, "current layout id 1");
	d = dump(st, 1, NULL);
	is_str(d, "1\t\\N|2\t\\N|3\tb3|",
		   "converted along positions: b dropped (id 2) then added again (id 1) is a new column");
	free(d);
	d = dump(st, 2, NULL);
	is_str(d, "1|2|3|", "target layout named by id");
	free(d);
	is_str(changes.data ? changes.data : "", "2/2,1/1,", "the change callback sees the records' own layout ids");
	ok(apply(st, rec('I', 7, '0', 1, NULL, (const char *[]) {"4"}, false), &err) == BS_ERR &&
	   strstr(err.message, "layout 7 is not in the manifest"), "an unknown id is refused: %s", err.message);
	ok(replay_checksum_compute(st, 5, &(replay_checksum) {0}, &err) == BS_ERR, "an unknown target id is refused");
	strbuf_free(&changes);
	replay_free(st);
}

static void
test_full_identity_layout_change(void)
{
	/* FULL identity: the whole row is the key, so ADD COLUMN changes every key. */
	manifest_column c0[1] = {col("a", "text", false, NULL)};
	manifest_column c1[2] = {col("a", "text", false, NULL), col("n", "integer", false, "0")};
	manifest_layout ls[2] = {{0, 0, 'f', 1, c0}, {1, 0, 'f', 2, c1}};
	replay_state *st;
	bs_error err;
	const char *base = "p\nq\n";
	char *d;

	replay_new(2, ls, &st, &err);
	replay_load_base_copy(st, 0, base, strlen(base), "base", &err);
	ok(apply(st, rec('U', 1, 'O', 2, (const char *[]) {"q", "0"}, (const char *[]) {"q", "5"}, false), &err) == BS_OK,
	   "old row matched through the rehash to the new layout: %s", err.message);
	d = dump(st, 1, NULL);
	is_str(d, "p\t0|q\t5|", "FULL identity after ADD COLUMN");
	free(d);
	replay_free(st);
}

static void
test_bad_base(void)
{
	manifest_column cols[2] = {col("id", "integer", true, NULL), col("v", "text", false, NULL)};
	manifest_layout l = {0, 0, 'd', 2, cols};
	replay_state *st;
	bs_error err;

	replay_new(1, &l, &st, &err);
	ok(replay_load_base_copy(st, 0, "1\ta\n2", 5, "chunk 3", &err) == BS_ERR &&
	   strstr(err.message, "chunk 3") && strstr(err.message, "line boundary"), "partial line refused");
	ok(replay_load_base_copy(st, 0, "1\ta\tb\n", 6, "chunk 4", &err) == BS_ERR &&
	   strstr(err.message, "more columns"), "extra column refused");
	ok(replay_load_base_copy(st, 0, "1\n", 2, "chunk 5", &err) == BS_ERR &&
	   strstr(err.message, "fewer columns"), "missing column refused");
	ok(replay_load_base_copy(st, 0, "1\tab\\\n", 6, "chunk 6", &err) == BS_ERR &&
	   strstr(err.message, "escape"), "trailing backslash refused");
	ok(replay_load_base_copy(st, 0, "9\t\\101\\x42\\q\n", 13, "chunk 7", &err) == BS_OK,
	   "octal, hex and other escapes accepted");
	{
		char *d = dump(st, 0, NULL);

		is_str(d, "9\tABq|", "escapes decoded");
		free(d);
	}
	replay_free(st);
	ok(replay_new(0, NULL, &st, &err) == BS_ERR, "no layouts refused");
}

/* The rarer COPY escapes and end-of-data markers of a base chunk; calls out of order. */
static void
test_base_edges(void)
{
	manifest_column cols[2] = {col("id", "integer", true, NULL), col("v", "text", false, NULL)};
	manifest_layout l = {0, 0, 'd', 2, cols};
	manifest_layout nocols = {0, 0, 'd', 2, NULL};
	replay_state *st;
	bs_error err;
	strbuf sb = STRBUF_INIT;
	const uint8_t *t;
	size_t tlen;
	bool streamable;
	segment_record r;
	uint64_t rows;

	replay_new(1, &l, &st, &err);
	ok(replay_load_base_copy(st, 0, "8\t\\b\\f\\r\\v\\xz\n", 14, "chunk 1", &err) == BS_OK,
	   "\\b \\f \\r \\v and a bare \\x accepted: %s", err.message);
	{
		char *d = dump(st, 0, NULL);

		is_str(d, "8\t\\b\\f\\r\\vxz|", "decoded to the control characters, \\x alone to x (as PostgreSQL)");
		free(d);
	}
	ok(replay_load_base_copy(st, 0, "9\ta\n\\.\n", 7, "chunk 2", &err) == BS_OK && replay_row_count(st) == 2,
	   "an end-of-data marker at the end ends the chunk");
	ok(replay_load_base_copy(st, 0, "10\ta\n\\.\n11\tb\n", 13, "chunk 3", &err) == BS_ERR &&
	   strstr(err.message, "chunk 3: end-of-data marker before the end (line 2)") &&
	   strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0, "an end-of-data marker before the end refused: %s", err.message);
	ok(replay_load_base_copy(st, 4, "1\ta\n", 4, "chunk 4", &err) == BS_ERR &&
	   strstr(err.message, "chunk 4: base layout 4 is not in the manifest"), "a base of an unknown layout refused");
	ok(replay_stream_begin(st, 0, &err) == BS_ERR && strstr(err.message, "streaming must begin on an empty state"),
	   "streaming refused on a state that holds rows");
	ok(replay_stream_begin(st, 9, &err) == BS_ERR && strstr(err.message, "base layout 9 is not in the manifest"),
	   "streaming refused for an unknown base layout");
	r = rec('I', 0, '0', 2, NULL, (const char *[]) {"12", "x"}, false);
	ok(replay_touch(st, &r, &streamable, &err) == BS_ERR && strstr(err.message, "replay_touch needs replay_stream_begin"),
	   "replay_touch refused before replay_stream_begin");

	/* A binary column in a tuple: only text is archived. */
	rows = replay_row_count(st);
	strbuf_append_be16(&sb, 2);
	strbuf_append_u8(&sb, 't');
	strbuf_append_be32(&sb, 2);
	strbuf_append_str(&sb, "13");
	strbuf_append_u8(&sb, 'b');
	strbuf_append_be32(&sb, 1);
	strbuf_append_str(&sb, "x");
	r = rec('I', 0, '0', 2, NULL, NULL, false);
	r.new_tuple = (const uint8_t *) sb.data;
	r.new_len = sb.len;
	ok(apply(st, r, &err) == BS_ERR && strstr(err.message, "new tuple column 2 has kind 'b' (only text is archived)") &&
	   strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0, "a binary column refused: %s", err.message);
	/* An update whose key is an unchanged TOASTed value cannot be placed. */
	t = tuple(&tlen, 2, (const char *[]) {UNCH, "y"});
	r = rec('U', 0, '0', 2, NULL, NULL, false);
	r.new_tuple = t;
	r.new_len = tlen;
	ok(apply(st, r, &err) == BS_ERR && strstr(err.message, "identity column \"id\" is an unchanged TOASTed value"),
	   "an unchanged TOASTed key refused: %s", err.message);
	is_int(replay_row_count(st), rows, "the refused records changed nothing");
	replay_free(st);
	strbuf_free(&sb);

	ok(replay_new(1, &nocols, &st, &err) == BS_ERR && strstr(err.message, "manifest layout 0 has no columns"),
	   "a layout without its columns refused");
}

/* Throughput sanity: many rows and changes stay fast and consistent. */
static void
test_volume(void)
{
	manifest_column cols[3] = {col("id", "integer", true, NULL), col("v", "text", false, NULL),
	col("w", "text", false, NULL)};
	manifest_layout l = {0, 0, 'd', 3, cols};
	replay_state *st;
	bs_error err;
	strbuf base = STRBUF_INIT;
	int n = 200000;
	bool good = true;
	char idb[32],
		vb[32];

	replay_new(1, &l, &st, &err);
	for (int i = 0; i < n; i++)
		strbuf_printf(&base, "%d\tvalue %d\t\\N\n", i, i);
	ok(replay_load_base_copy(st, 0, base.data, base.len, "big", &err) == BS_OK, "200k base rows");
	for (int i = 0; i < n && good; i += 2)
	{
		snprintf(idb, sizeof(idb), "%d", i);
		snprintf(vb, sizeof(vb), "v%d", i);
		good = apply(st, rec('U', 0, '0', 3, NULL, (const char *[]) {idb, vb, UNCH}, false), &err) == BS_ERR;
		/* 'u' over NULL is an error; now with a value. */
		good = apply(st, rec('U', 0, '0', 3, NULL, (const char *[]) {idb, vb, "w"}, false), &err) == BS_OK;
		if (good && i % 4 == 0)
			good = apply(st, rec('D', 0, 'K', 3, (const char *[]) {idb, NULL, NULL}, NULL, false), &err) == BS_OK;
	}
	ok(good, "100k updates and 50k deletes applied");
	is_int(replay_row_count(st), n - n / 4, "row count after deletes");
	strbuf_free(&base);
	replay_free(st);
}

/*
 * The same base and changes on a state without a limit and on one whose limit is tiny
 * (rows spill to a file almost at once, and the index alone soon exceeds it): the tables,
 * the checksums and the errors must be identical.
 */
static int
both_apply(replay_state *a, replay_state *b, segment_record r, bs_error *ea, bs_error *eb)
{
	int ra = replay_apply(a, &r, ea);
	int rb = replay_apply(b, &r, eb);

	return ra == BS_OK && rb == BS_OK ? BS_OK : (ra == rb ? BS_ERR : -2);
}

static void
test_spill_state(void)
{
	manifest_column cols[3] = {col("id", "integer", true, NULL), col("name", "text", false, NULL),
	col("big", "text", false, NULL)};
	manifest_layout l = {0, 0, 'd', 3, cols};
	manifest_column fcols[2] = {col("a", "integer", false, NULL), col("b", "text", false, NULL)};
	manifest_layout fl = {0, 0, 'f', 2, fcols};
	replay_state *mem,
			   *sp;
	bs_error err,
		err2;
	strbuf base = STRBUF_INIT;
	char dir[] = "/tmp/backstop-test-spill-XXXXXX";
	char ids[32],
		names[64],
		bigs[600];
	char *d1,
			   *d2;
	replay_checksum s1,
				s2;
	uint64_t rows = 0,
		bytes = 0;
	int good = 1,
		nfiles = 0;
	const int N = 3000;

	error_clear(&err);
	error_clear(&err2);
	if (mkdtemp(dir) == NULL)
	{
		ok(0, "mkdtemp");
		return;
	}
	ok(replay_new(1, &l, &mem, &err) == BS_OK && replay_new(1, &l, &sp, &err) == BS_OK, "two states");
	replay_set_memory_limit(sp, 20000, dir);
	/* Base rows with a value big enough that the rows, not the index, pass the limit first. */
	for (int i = 1; i <= N; i++)
	{
		memset(bigs, 'a' + i % 26, 500);
		bigs[500] = '\0';
		strbuf_printf(&base, "%d\tname %d\t%s\n", i, i, bigs);
	}
	ok(replay_load_base_copy(mem, 0, base.data, base.len, "base", &err) == BS_OK &&
		replay_load_base_copy(sp, 0, base.data, base.len, "base", &err) == BS_OK, "base loaded into both");
	replay_spill_stats(sp, &rows, &bytes);
	ok(rows > 0 && rows < (uint64_t) N, "some base rows spilled, the first ones stayed in memory (%llu spilled)",
		(unsigned long long) rows);
	replay_spill_stats(mem, &rows, &bytes);
	is_int((long long) rows, 0, "nothing spills without a limit");
	ok(replay_index_spills(sp) > 0, "the index went to a file too (%llu times, as it grew)",
	   (unsigned long long) replay_index_spills(sp));
	is_int((long long) replay_index_spills(mem), 0, "not without a limit");
	/* Every row is looked up and replaced: update in place, key change, unchanged TOAST,
	 * delete, insert; in memory and spilled rows alike. */
	for (int i = 1; good && i <= N; i++)
	{
		snprintf(ids, sizeof(ids), "%d", i);
		snprintf(names, sizeof(names), "renamed %d", i);
		if (i % 5 == 0)
		{
			const char *o[3] = {ids, NULL, NULL};

			good = both_apply(mem, sp, rec('D', 0, 'K', 3, o, NULL, false), &err, &err2) == BS_OK;
		}
		else if (i % 5 == 1)
		{
			char nid[32];
			const char *o[3] = {ids, NULL, NULL};
			const char *n[3] = {nid, names, UNCH};

			snprintf(nid, sizeof(nid), "%d", i + 100000);
			good = both_apply(mem, sp, rec('U', 0, 'K', 3, o, n, false), &err, &err2) == BS_OK;
		}
		else
		{
			const char *n[3] = {ids, names, UNCH};

			good = both_apply(mem, sp, rec('U', 0, SEGMENT_OLD_NONE, 3, NULL, n, false), &err, &err2) == BS_OK;
		}
	}
	ok(good, "updates (same key, new key, unchanged TOASTed values) and deletes apply to both");
	if (!good)
		printf("# in memory: %s\n# spilled: %s\n", err.message, err2.message);
	for (int i = 1; good && i <= 500; i++)
	{
		const char *n[3] = {ids, "new", NULL};

		snprintf(ids, sizeof(ids), "%d", 200000 + i);
		good = both_apply(mem, sp, rec('I', 0, SEGMENT_OLD_NONE, 3, NULL, n, false), &err, &err2) == BS_OK;
	}
	ok(good, "inserts apply to both");
	d1 = dump(mem, 0, &s1);
	d2 = dump(sp, 0, &s2);
	ok(strcmp(d1, d2) == 0, "spilled and in-memory states hold the same rows");
	ok(s1.rows == s2.rows && s1.sum == s2.sum && s1.rows == (uint64_t) (N - N / 5 + 500),
		"same checksum and row count (%llu)", (unsigned long long) s2.rows);
	free(d1);
	free(d2);
	{
		/* A duplicate key and a missing row are refused the same way. */
		const char *n[3] = {"200001", "dup", NULL};
		const char *o[3] = {"5", NULL, NULL};

		is_int(both_apply(mem, sp, rec('I', 0, SEGMENT_OLD_NONE, 3, NULL, n, false), &err, &err2), BS_OK,
			   "a duplicate key is taken within its transaction");
		is_int(replay_check(sp, &err2), BS_ERR, "and refused at the boundary (spilled state)");
		is_int(replay_check(mem, &err), BS_ERR, "and refused at the boundary (in memory)");
		replay_free(mem);
		replay_free(sp);
		ok(replay_new(1, &l, &mem, &err) == BS_OK && replay_new(1, &l, &sp, &err) == BS_OK, "new states");
		replay_set_memory_limit(sp, 20000, dir);
		(void) replay_load_base_copy(mem, 0, base.data, base.len, "base", &err);
		(void) replay_load_base_copy(sp, 0, base.data, base.len, "base", &err);
		is_int(both_apply(mem, sp, rec('D', 0, 'K', 3, o, NULL, false), &err, &err2), BS_OK, "delete row 5");
		is_int(both_apply(mem, sp, rec('D', 0, 'K', 3, o, NULL, false), &err, &err2), BS_ERR,
			   "deleting it again fails in both");
		is_str(err2.message, err.message, "with the same message");
	}
	{
		/* TRUNCATE empties the file; a reload spills again and comes out the same. */
		segment_record t = rec('T', 0, SEGMENT_OLD_NONE, 3, NULL, NULL, false);

		ok(replay_apply(mem, &t, &err) == BS_OK && replay_apply(sp, &t, &err2) == BS_OK, "truncate");
		is_int((long long) replay_row_count(sp), 0, "no rows after the truncate");
		(void) replay_load_base_copy(mem, 0, base.data, base.len, "reload", &err);
		(void) replay_load_base_copy(sp, 0, base.data, base.len, "reload", &err);
		d1 = dump(mem, 0, &s1);
		d2 = dump(sp, 0, &s2);
		ok(strcmp(d1, d2) == 0 && s1.sum == s2.sum && s2.rows == (uint64_t) N, "reloaded after truncate: same rows");
		ok(replay_index_spills(sp) > 1, "the index started over in memory and went to a file again");
		free(d1);
		free(d2);
	}
	replay_free(mem);
	replay_free(sp);
	/* A table without a key (whole-row identity): identical rows are interchangeable. */
	ok(replay_new(1, &fl, &mem, &err) == BS_OK && replay_new(1, &fl, &sp, &err) == BS_OK, "keyless states");
	replay_set_memory_limit(sp, 20000, dir);
	strbuf_reset(&base);
	for (int i = 0; i < 4000; i++)
		strbuf_printf(&base, "%d\tsame value for many rows %d\n", i % 100, i % 7);
	(void) replay_load_base_copy(mem, 0, base.data, base.len, "base", &err);
	(void) replay_load_base_copy(sp, 0, base.data, base.len, "base", &err);
	for (int i = 0; good && i < 700; i++)
	{
		char a[32],
			b[64];
		const char *o[2] = {a, b};
		const char *n[2] = {a, "changed"};

		snprintf(a, sizeof(a), "%d", i % 100);
		snprintf(b, sizeof(b), "same value for many rows %d", i % 7);
		good = both_apply(mem, sp, rec(i % 2 ? 'U' : 'D', 0, 'O', 2, o, i % 2 ? n : NULL, false), &err, &err2) == BS_OK;
	}
	ok(good, "keyless updates and deletes apply to both");
	d1 = dump(mem, 0, &s1);
	d2 = dump(sp, 0, &s2);
	replay_spill_stats(sp, &rows, &bytes);
	ok(strcmp(d1, d2) == 0 && s1.sum == s2.sum && s1.rows == s2.rows && rows > 0,
		"keyless: same rows and checksum, with rows spilled");
	free(d1);
	free(d2);
	replay_free(mem);
	replay_free(sp);
	/* The file was unlinked when it was made: nothing is left behind. */
	{
		DIR *dh = opendir(dir);
		struct dirent *de;

		while (dh && (de = readdir(dh)) != NULL)
			if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
				nfiles++;
		if (dh)
			closedir(dh);
	}
	is_int(nfiles, 0, "no file is left in the spill directory");
	rmdir(dir);
	strbuf_free(&base);
}

/* Rows come out in the order they entered the state (base order, then each changed row at
 * its last change, as PostgreSQL's heap has them), not in hash order. */
static void
test_output_order(void)
{
	manifest_column cols[2] = {col("id", "integer", true, NULL), col("v", "text", false, NULL)};
	manifest_layout l = {0, 0, 'd', 2, cols};
	replay_state *st;
	bs_error err;
	strbuf base = STRBUF_INIT;
	strbuf out = STRBUF_INIT;
	strbuf want = STRBUF_INIT;

	for (int i = 1; i <= 2000; i++)
		strbuf_printf(&base, "%d\tb\n", i);
	ok(replay_new(1, &l, &st, &err) == BS_OK &&
	   replay_load_base_copy(st, 0, base.data, base.len, "base", &err) == BS_OK, "2000 base rows");
	ok(apply(st, rec('U', 0, '0', 2, NULL, (const char *[]) {"7", "u"}, false), &err) == BS_OK &&
	   apply(st, rec('I', 0, '0', 2, NULL, (const char *[]) {"5000", "i"}, false), &err) == BS_OK &&
	   apply(st, rec('U', 0, '0', 2, NULL, (const char *[]) {"3", "u"}, false), &err) == BS_OK &&
	   apply(st, rec('D', 0, 'K', 2, (const char *[]) {"9", NULL}, NULL, false), &err) == BS_OK, "changes apply");
	ok(replay_write_copy(st, 0, collect, &out, NULL, &err) == BS_OK, "rows written");
	for (int i = 1; i <= 2000; i++)
		if (i != 3 && i != 7 && i != 9)
			strbuf_printf(&want, "%d\tb\n", i);
	strbuf_append_str(&want, "7\tu\n5000\ti\n3\tu\n");
	ok(out.data && strcmp(out.data, want.data) == 0, "base rows in base order, then changed rows in change order");
	replay_free(st);
	strbuf_free(&base);
	strbuf_free(&out);
	strbuf_free(&want);
}

/*
 * Streaming with many touched keys: the touched-key set grows several times (and, past a
 * small memory limit, goes to a file with its bitmap cut down); every touched base row must
 * still go through the state and every other row straight out, whatever the set's form.
 */
static void
test_stream_touched(void)
{
	manifest_column cols[2] = {col("id", "integer", true, NULL), col("v", "text", false, NULL)};
	manifest_layout l = {0, 0, 'd', 2, cols};
	const int N = 20000;
	strbuf base = STRBUF_INIT;
	replay_state *ref = NULL;
	replay_checksum want = {0, 0};
	bs_error err;
	int ntouched = 0;

	error_clear(&err);
	for (int i = 1; i <= N; i++)
		strbuf_printf(&base, "%d\tv%d\n", i, i);
	for (int i = 1; i <= N; i++)
		ntouched += i % 3 == 0;
	ok(replay_new(1, &l, &ref, &err) == BS_OK && replay_load_base_copy(ref, 0, base.data, base.len, "base", &err) == BS_OK,
	   "reference state loaded");
	/* Pass 0: no limit; 1: the touched keys in a file; 2: in memory, the loading thread's
	 * queue cut to its least. */
	for (int pass = 0; pass < 3; pass++)
	{
		replay_state *st = NULL;
		char dir[] = "/tmp/backstop-test-stream-XXXXXX";
		strbuf out = STRBUF_INIT;
		replay_checksum sum = {0, 0},
					rest = {0, 0};
		uint64_t passed = 0;
		bool streamable = true;
		int good = 1;

		next_lsn = 0x1000000 + (uint64_t) pass * 0x10000000;
		if (mkdtemp(dir) == NULL)
		{
			ok(0, "mkdtemp");
			break;
		}
		ok(replay_new(1, &l, &st, &err) == BS_OK, "state %d", pass);
		if (pass > 0)
			replay_set_memory_limit(st, pass == 1 ? 20000 : 4 << 20, dir);
		ok(replay_stream_begin(st, 0, &err) == BS_OK, "stream begins");
		/* The records: an update of every third row (its value), touched first; the
		 * reference gets them too, once. */
		for (int i = 3; good && i <= N; i += 3)
		{
			char ids[32],
				vs[32];
			const char *o[2] = {ids, NULL};
			const char *n[2] = {ids, vs};
			segment_record r;

			snprintf(ids, sizeof(ids), "%d", i);
			snprintf(vs, sizeof(vs), "u%d", i);
			r = rec('U', 0, 'K', 2, o, n, false);
			good = replay_touch(st, &r, &streamable, &err) == BS_OK && streamable &&
				(pass > 0 || replay_apply(ref, &r, &err) == BS_OK);
		}
		ok(good, "records touched (%s)", err.message);
		/* In pieces of 500 lines named by turns: the touched lines go to the loading thread
		 * in many batches (one chunk each). */
		{
			const char *p = base.data,
					   *end = base.data + base.len;
			int piece = 0;

			while (good && p < end)
			{
				const char *q = p;
				char what[32];

				for (int k = 0; k < 500 && q < end; k++)
					q = strchr(q, '\n') + 1;
				snprintf(what, sizeof(what), "chunk-%d", piece++ % 2);
				good = replay_split_base_copy(st, 0, p, (size_t) (q - p), what, collect, &out, &sum, &passed,
											  &err) == BS_OK;
				p = q;
			}
		}
		ok(good, "base split (%s)", err.message);
		is_int((long long) passed, N - ntouched, "pass %d: exactly the untouched rows went straight out", pass);
		ok(replay_split_finish(st, &err) == BS_OK, "the touched rows are loaded (%s)", err.message);
		next_lsn = 0x1000000 + (uint64_t) pass * 0x10000000;
		for (int i = 3; good && i <= N; i += 3)
		{
			char ids[32],
				vs[32];
			const char *o[2] = {ids, NULL};
			const char *n[2] = {ids, vs};
			segment_record r;

			snprintf(ids, sizeof(ids), "%d", i);
			snprintf(vs, sizeof(vs), "u%d", i);
			r = rec('U', 0, 'K', 2, o, n, false);
			good = replay_apply(st, &r, &err) == BS_OK;
		}
		ok(good && replay_check(st, &err) == BS_OK && replay_write_copy(st, 0, collect, &out, &rest, &err) == BS_OK,
		   "changes applied to the touched rows, written (%s)", err.message);
		if (pass == 0)
		{
			char *d = dump(ref, 0, &want);

			free(d);
		}
		sum.rows += rest.rows;
		sum.sum += rest.sum;
		ok(sum.rows == want.rows && sum.sum == want.sum,
		   "pass %d: streamed rows and checksum equal the in-memory replay's (%llu rows)", pass,
		   (unsigned long long) sum.rows);
		if (pass > 0)
			ok((replay_index_spills(st) > 0) == (pass == 1), "pass %d: the touched keys %s", pass,
			   pass == 1 ? "went to a file" : "stayed in memory");
		replay_free(st);
		strbuf_free(&out);
		rmdir(dir);
	}
	replay_free(ref);
	strbuf_free(&base);
}

int
main(void)
{
	test_pghash();
	test_record_text_and_checksum();
	test_base_and_changes();
	test_output_order();
	test_deferred_key_swap();
	test_full_identity_duplicates();
	test_layouts();
	test_retyped_null();
	test_volatile_default();
	test_layout_ids();
	test_full_identity_layout_change();
	test_bad_base();
	test_base_edges();
	test_volume();
	test_spill_state();
	test_stream_touched();
	for (int i = 0; i < 64; i++)
		strbuf_free(&tuples[i]);
	return done_testing();
}
