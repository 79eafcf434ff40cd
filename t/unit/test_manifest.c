/* test_manifest.c — unit tests for manifests and the archive head: JSON, validation, storage, names. */
#include "ident.h"
#include "isotime.h"
#include "manifest.h"
#include "log.h"
#include "manifest_head.h"
#include "manifest_json.h"
#include "manifest_keys.h"
#include "manifest_store.h"
#include "strbuf.h"
#include "tap.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SHA_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define SHA_B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define DEFINITION "{\"columns\":[{\"name\":\"id\",\"type\":\"integer\",\"not_null\":true,\"default\":null}," \
	"{\"name\":\"v\",\"type\":\"text\",\"not_null\":false,\"default\":\"'x'::text\",\"identity\":\"\"}]," \
	"\"indexes\":[{\"name\":\"t_v\",\"def\":\"CREATE INDEX t_v ON public.t USING btree (v)\"}]," \
	"\"constraints\":[{\"name\":\"t_pkey\",\"type\":\"p\",\"def\":\"PRIMARY KEY (id)\"}]," \
	"\"replica_identity\":\"d\"}"

/* A manifest with every kind of element, for round trips and mutations. */
static manifest *
sample_manifest(uint32_t relid, const char *schema, const char *name, uint64_t archived_to)
{
	manifest *m = manifest_new(relid, schema, name);
	manifest_column cols[2] = {
		{"id", 23, -1, "integer", true, true, NULL},
		{"v", 25, -1, "text", false, false, "dflt"},
	};
	manifest_chunk chunks[2];
	manifest_base base;
	manifest_segment seg;

	manifest_add_layout(m, 0x1500000, 'd', 2, cols);
	manifest_add_layout(m, 0x1600000, 'f', 1, cols);
	memset(&base, 0, sizeof(base));
	memset(chunks, 0, sizeof(chunks));
	chunks[0].key = manifest_base_chunk_key(relid, 0x1500000, 1);
	strcpy(chunks[0].sha256, SHA_A);
	chunks[0].size = 100;
	chunks[0].raw_size = 300;
	chunks[0].rows = 10;
	chunks[1].key = manifest_base_chunk_key(relid, 0x1500000, 2);
	strcpy(chunks[1].sha256, SHA_B);
	chunks[1].size = 50;
	chunks[1].raw_size = 90;
	chunks[1].rows = 3;
	base.lsn = 0x1500000;
	base.time = 1795708800123456LL;
	base.rows = 13;
	base.layout_id = 0;
	base.schema_key = manifest_base_schema_key(relid, 0x1500000);
	base.definition = (char *) DEFINITION;
	base.nchunks = 2;
	base.chunks = chunks;
	manifest_add_base(m, &base);
	free(chunks[0].key);
	free(chunks[1].key);
	free(base.schema_key);

	memset(&seg, 0, sizeof(seg));
	seg.first_lsn = 0x1500010;
	seg.last_end_lsn = 0x1500100;
	seg.key = manifest_segment_key(relid, seg.first_lsn, seg.last_end_lsn);
	seg.first_time = 1795708801000000LL;
	seg.last_time = 1795708802000001LL;
	seg.records = 7;
	strcpy(seg.sha256, SHA_B);
	seg.size = 77;
	seg.raw_size = 700;
	manifest_add_segment(m, &seg);
	free(seg.key);
	seg.first_lsn = 0x1600000;
	seg.last_end_lsn = 0x100000000ULL;
	seg.key = manifest_segment_key(relid, seg.first_lsn, seg.last_end_lsn);
	manifest_add_segment(m, &seg);
	free(seg.key);
	m->archived_to = archived_to;
	return m;
}

static void
test_time(void)
{
	char buf[ISOTIME_BUFLEN];
	int64_t t;
	static const char *const bad_times[] = {
		"2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-26T24:00:00Z",
		"2026-11-26T16:00:00.1234567Z", "2026-11-26T16:00:00.Z", "2026-11-26T16:00:00",
		"2026-11-26T16:00:00Zx", "2026-11-26 16:00:00Z", "2026-11-26T16:00:00+01:00",
		"", "2026-11-2", "-026-11-26T16:00:00Z", "2026-04-31T00:00:00Z", NULL
	};

	is_str(isotime_format(0, buf), "1970-01-01T00:00:00.000000Z", "epoch formats");
	is_str(isotime_format(1795708800123456LL, buf), "2026-11-26T16:00:00.123456Z", "a 2026 time formats");
	is_str(isotime_format(-1, buf), "1969-12-31T23:59:59.999999Z", "negative time formats");
	ok(isotime_parse("2026-11-26T16:00:00.123456Z", &t) == BS_OK && t == 1795708800123456LL,
	   "a 2026 time parses");
	ok(isotime_parse("2026-11-26T16:00:00Z", &t) == BS_OK && t == 1795708800000000LL,
	   "a time without fraction parses");
	ok(isotime_parse("2026-11-26T16:00:00.5Z", &t) == BS_OK && t == 1795708800500000LL,
	   "a short fraction is tenths");
	ok(isotime_parse("2024-02-29T12:00:00Z", &t) == BS_OK, "a leap day parses");
	ok(isotime_parse("2000-02-29T00:00:00Z", &t) == BS_OK, "2000 is a leap year");
	ok(isotime_parse("1900-02-29T00:00:00Z", &t) == BS_ERR, "1900 is not a leap year");
	for (int i = 0; bad_times[i]; i++)
		ok(isotime_parse(bad_times[i], &t) == BS_ERR, "bad time \"%s\" refused", bad_times[i]);
	{
		int64_t samples[] = {0, 1, -1, 946684800000000LL, -62135596800000000LL, 253402300799999999LL,
		1795708800123456LL, 951782400000000LL};
		bool all = true;

		for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
			if (isotime_parse(isotime_format(samples[i], buf), &t) != BS_OK || t != samples[i])
			{
				all = false;
				printf("# round trip of %lld failed: %s\n", (long long) samples[i], buf);
			}
		ok(all, "format/parse round trip over years 1..9999");
	}
}

static void
test_keys(void)
{
	char *k;
	uint32_t relid = 0;
	const char *rest = NULL;

	k = manifest_key(16384);
	is_str(k, "tables/16384/manifest.json", "manifest key");
	free(k);
	k = manifest_segment_key(16384, 0x1500000, 0x1A2B3C4D5E6FULL);
	is_str(k, "tables/16384/seg/0000000001500000-00001A2B3C4D5E6F.bso", "segment key");
	free(k);
	k = manifest_base_chunk_key(7, 0xFFFFFFFF00000001ULL, 12);
	is_str(k, "tables/7/base/FFFFFFFF00000001/chunk-000012.bso", "base chunk key");
	free(k);
	k = manifest_base_schema_key(7, 0x10);
	is_str(k, "tables/7/base/0000000000000010/schema.sql", "schema key");
	free(k);
	ok(manifest_key_relid("tables/4294967295/x", &relid, &rest) == BS_OK && relid == 4294967295U &&
	   strcmp(rest, "x") == 0, "largest relid parses");
	ok(manifest_key_relid("tables/4294967296/x", &relid, &rest) == BS_ERR, "relid overflow refused");
	ok(manifest_key_relid("tables/0123/x", &relid, &rest) == BS_ERR, "leading zero refused");
	ok(manifest_key_relid("tables/0/x", &relid, &rest) == BS_ERR, "relid 0 refused");
	ok(manifest_key_relid("tables/12a/x", &relid, &rest) == BS_ERR, "non-digit refused");
	ok(manifest_key_relid("tables/12", &relid, &rest) == BS_ERR, "no slash refused");
	ok(manifest_key_relid("other/12/x", &relid, &rest) == BS_ERR, "other prefix refused");
}

/* missing_unknown: optional, written only when true, read as false when absent. */
static void
test_missing_unknown(void)
{
	manifest *m = sample_manifest(16384, "public", "t", 0x100000000ULL);
	manifest *back = NULL;
	char *j0 = manifest_to_json(m);
	char *j1,
			   *j2 = NULL;
	bs_error err;

	error_clear(&err);
	ok(strstr(j0, "missing_unknown") == NULL, "not written when false (older readers see the same manifest)");
	m->layouts[0].columns[1].missing_unknown = true;
	j1 = manifest_to_json(m);
	ok(strstr(j1, "\"missing_unknown\":true") != NULL || strstr(j1, "\"missing_unknown\": true") != NULL,
	   "written when true");
	ok(manifest_from_json(j1, strlen(j1), &back, &err) == BS_OK, "parses: %s", err.message);
	if (back)
	{
		ok(back->layouts[0].columns[1].missing_unknown, "true read back");
		ok(!back->layouts[0].columns[0].missing_unknown && !back->layouts[1].columns[0].missing_unknown,
		   "absent read as false");
		j2 = manifest_to_json(back);
		is_str(j2, j1, "round trip is exact");
		manifest_free(back);
		back = NULL;
	}
	ok(manifest_from_json(j0, strlen(j0), &back, &err) == BS_OK && !back->layouts[0].columns[1].missing_unknown,
	   "a manifest without it reads as false");
	manifest_free(back);
	free(j0);
	free(j1);
	free(j2);
	manifest_free(m);
}

static void
test_round_trip(void)
{
	manifest *m = sample_manifest(16384, "public", "t", 0x100000000ULL);
	manifest *back = NULL;
	char *j1 = manifest_to_json(m);
	char *j2 = NULL;
	bs_error err;
	json_error_t jerr;
	json_t *root;

	error_clear(&err);
	ok(j1 != NULL, "manifest serializes");
	ok(manifest_from_json(j1, strlen(j1), &back, &err) == BS_OK, "manifest parses back: %s", err.message);
	if (back)
	{
		j2 = manifest_to_json(back);
		is_str(j2, j1, "round trip is exact");
		is_int(back->relid, 16384, "relid");
		is_int(back->nlayouts, 2, "layouts");
		is_int(back->layouts[1].id, 1, "second layout id");
		ok(back->layouts[1].replident == 'f', "replident");
		is_str(back->layouts[0].columns[1].missing, "dflt", "missing value");
		ok(back->layouts[0].columns[0].missing == NULL, "null missing value");
		ok(back->layouts[0].columns[0].key && back->layouts[0].columns[0].not_null, "key and not_null");
		is_int(back->layouts[0].columns[0].typmod, -1, "typmod");
		is_int(back->nbases, 1, "bases");
		is_int(back->bases[0].time, 1795708800123456LL, "base time in microseconds");
		is_int(back->bases[0].nchunks, 2, "chunks");
		is_str(back->bases[0].chunks[1].sha256, SHA_B, "chunk sha256");
		is_int(back->nsegments, 2, "segments");
		ok(back->segments[1].last_end_lsn == 0x100000000ULL, "LSN above 4 GiB survives");
		ok(back->archived_to == 0x100000000ULL, "archived_to");
		ok(back->bases[0].definition && strstr(back->bases[0].definition, "\"replica_identity\":\"d\""),
		   "unknown definition members are kept");
	}
	root = json_loads(j1, 0, &jerr);
	ok(json_is_object(json_object_get(json_array_get(json_object_get(root, "bases"), 0), "definition")),
	   "definition is stored as a nested object");
	is_str(json_string_value(json_object_get(root, "archived_to")), "1/0", "LSNs are X/Y strings");
	is_str(json_string_value(json_object_get(json_array_get(json_object_get(root, "bases"), 0), "time")),
		   "2026-11-26T16:00:00.123456Z", "times are ISO-8601 strings");
	ok(json_object_get(root, "dropped_at_lsn") == NULL, "no dropped_at_lsn while active");
	json_decref(root);

	/* Dropped: dropped_at_lsn is written and required. */
	free(m->status);
	m->status = xstrdup("dropped");
	m->dropped_at_lsn = 0x1700000;
	free(j2);
	j2 = manifest_to_json(m);
	manifest_free(back);
	back = NULL;
	ok(manifest_from_json(j2, strlen(j2), &back, &err) == BS_OK && back->dropped_at_lsn == 0x1700000,
	   "dropped manifest round trips");
	manifest_free(back);
	back = NULL;

	/* existed_to: a checkpoint's point extends what the archive shows of a dropped table. */
	{
		uint64_t before = manifest_dropped_after(m);

		m->existed_to = before + 0x100;
		ok(manifest_dropped_after(m) == before + 0x100, "a checkpoint after the last change moves the end of the window");
		m->existed_to = before > 0 ? before - 1 : 0;
		ok(manifest_dropped_after(m) == before, "an older checkpoint does not");
		m->existed_to = 0x1600000;
		free(j2);
		j2 = manifest_to_json(m);
		ok(manifest_from_json(j2, strlen(j2), &back, &err) == BS_OK && back->existed_to == 0x1600000,
		   "existed_to round trips");
		manifest_free(back);
		back = NULL;
		m->existed_to = 0x1700000;
		free(j2);
		j2 = manifest_to_json(m);
		ok(manifest_from_json(j2, strlen(j2), &back, &err) == BS_ERR && strstr(err.message, "existed_to"),
		   "existed_to at or after dropped_at_lsn refused: %s", err.message);
		manifest_free(back);
		back = NULL;
		m->existed_to = 0;
	}

	/* A durable re-base request and an open gap (the table left the archived set) round trip;
	 * a new base copy closes the open gap at its LSN. */
	{
		uint64_t from = 0x1650000;

		m->rebase_requested_at = 0x1600010;
		manifest_add_gap(m, from, MANIFEST_GAP_OPEN);
		free(j2);
		j2 = manifest_to_json(m);
		ok(manifest_from_json(j2, strlen(j2), &back, &err) == BS_OK && back->rebase_requested_at == 0x1600010 &&
		   manifest_open_gap(back) != NULL && manifest_open_gap(back)->from == from,
		   "rebase_requested_at and an open gap round trip");
		ok(back && manifest_gap_in(back, from - 1, from) == NULL && manifest_gap_in(back, from, from + 1) != NULL &&
		   manifest_gap_in(back, 0x5000000, 0x5000001) != NULL, "an open gap covers every later commit");
		manifest_close_open_gap(back, from);
		ok(back && manifest_open_gap(back) != NULL, "a base at the gap's start does not close it");
		manifest_close_open_gap(back, 0x1680000);
		ok(back && manifest_open_gap(back) == NULL && back->gaps[back->ngaps - 1].to == 0x1680000 &&
		   manifest_gap_in(back, 0x1680000, 0x1680001) == NULL, "a later base copy closes it at its LSN");
		manifest_free(back);
		back = NULL;
		m->rebase_requested_at = 0;
		m->ngaps--;
	}

	/* A definition that is not an object cannot be stored. */
	free(m->bases[0].definition);
	m->bases[0].definition = xstrdup("[1,2]");
	ok(manifest_validate(m, &err) == BS_ERR && strstr(err.message, "bases[0].definition"),
	   "non-object definition refused: %s", err.message);
	free(m->bases[0].definition);
	m->bases[0].definition = NULL;
	ok(manifest_validate(m, &err) == BS_OK, "absent definition allowed");

	free(j1);
	free(j2);
	manifest_free(m);
}

/* Apply a mutation given as a JSON-pointer-like path and a replacement (NULL: delete). */
static char *
mutate(const char *good, const char *const *path, const char *replacement)
{
	json_error_t jerr;
	json_t *root = json_loads(good, 0, &jerr);
	json_t *parent = root;
	char *out;
	int i;

	for (i = 0; path[i + 1]; i++)
	{
		if (json_is_array(parent))
			parent = json_array_get(parent, (size_t) atoi(path[i]));
		else
			parent = json_object_get(parent, path[i]);
	}
	if (replacement == NULL)
	{
		if (json_is_array(parent))
			json_array_remove(parent, (size_t) atoi(path[i]));
		else
			json_object_del(parent, path[i]);
	}
	else
	{
		json_t *v = json_loads(replacement, JSON_DECODE_ANY, &jerr);

		if (json_is_array(parent))
			json_array_set_new(parent, (size_t) atoi(path[i]), v);
		else
			json_object_set_new(parent, path[i], v);
	}
	out = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return out;
}

typedef struct mutation
{
	const char *path[8];
	const char *value;			/* NULL: remove the member */
	const char *expect;			/* in the error message */
} mutation;

static void
test_hostile(void)
{
	static const mutation muts[] = {
		{{"format", NULL}, "3", "\"format\" is 3: written by a newer Backstop"},
		{{"format", NULL}, "0", "\"format\" is 0"},
		{{"generation", NULL}, "-1", "\"generation\" is out of range"},
		{{"generation", NULL}, "\"7\"", "\"generation\" must be an integer"},
		{{"generation", NULL}, NULL, "\"generation\" is missing"},
		{{"format", NULL}, "\"1\"", "\"format\" must be an integer"},
		{{"relid", NULL}, "0", "\"relid\" is out of range"},
		{{"relid", NULL}, "4294967296", "\"relid\" is out of range"},
		{{"relid", NULL}, "1.5", "\"relid\" must be an integer"},
		{{"relid", NULL}, NULL, "\"relid\" is missing"},
		{{"schema", NULL}, "\"\"", "\"schema\""},
		{{"name", NULL}, "17", "\"name\" must be a string"},
		{{"status", NULL}, "\"gone\"", "\"status\""},
		{{"status", NULL}, "\"dropped\"", "\"dropped_at_lsn\" is missing"},
		{{"finding", NULL}, "[]", "\"finding\" must be a string"},
		{{"archived_to", NULL}, "\"1/\"", "\"archived_to\" must be an LSN"},
		{{"archived_to", NULL}, "\"G/0\"", "\"archived_to\" must be an LSN"},
		{{"archived_to", NULL}, "\"123456789/0\"", "\"archived_to\" must be an LSN"},
		{{"archived_to", NULL}, "16", "\"archived_to\" must be an LSN"},
		{{"archived_to", NULL}, NULL, "\"archived_to\" is missing"},
		{{"layouts", NULL}, "{}", "\"layouts\" must be an array"},
		{{"layouts", "0", NULL}, "7", "\"layouts[0]\" must be an object"},
		{{"layouts", "0", "replident", NULL}, "\"x\"", "\"layouts[0].replident\""},
		{{"layouts", "0", "replident", NULL}, "\"dd\"", "\"layouts[0].replident\""},
		{{"layouts", "1", "id", NULL}, "0", "\"layouts[1].id\" duplicates"},
		{{"layouts", "1", "id", NULL}, "-1", "\"layouts[1].id\" is out of range"},
		{{"layouts", "1", "from_lsn", NULL}, "\"0/1\"", "\"layouts[1].from_lsn\" is lower"},
		{{"layouts", "0", "columns", "1", "typmod", NULL}, "2147483648", "\"layouts[0].columns[1].typmod\" is out of range"},
		{{"layouts", "0", "columns", "1", "key", NULL}, "1", "\"layouts[0].columns[1].key\" must be a boolean"},
		{{"layouts", "0", "columns", "1", "missing_unknown", NULL}, "1", "\"layouts[0].columns[1].missing_unknown\" must be a boolean"},
		{{"layouts", "0", "columns", "0", "name", NULL}, NULL, "\"layouts[0].columns[0].name\" is missing"},
		{{"bases", "0", "layout_id", NULL}, "9", "\"bases[0].layout_id\" references a layout"},
		{{"bases", "0", "time", NULL}, "\"yesterday\"", "\"bases[0].time\" must be an ISO-8601"},
		{{"bases", "0", "rows", NULL}, "-1", "\"bases[0].rows\" is out of range"},
		{{"bases", "0", "definition", NULL}, "\"{}\"", "\"bases[0].definition\" must be an object"},
		{{"bases", "0", "definition", "columns", NULL}, NULL, "\"bases[0].definition.columns\" is missing"},
		{{"bases", "0", "definition", "columns", "0", "not_null", NULL}, "\"t\"", "\"bases[0].definition.columns[0].not_null\""},
		{{"bases", "0", "definition", "columns", "1", "default", NULL}, "3", "\"bases[0].definition.columns[1].default\""},
		{{"bases", "0", "definition", "indexes", "0", "def", NULL}, NULL, "\"bases[0].definition.indexes[0].def\" is missing"},
		{{"bases", "0", "definition", "constraints", "0", "type", NULL}, "null", "\"bases[0].definition.constraints[0].type\""},
		{{"bases", "0", "chunks", "0", "sha256", NULL}, "\"" SHA_A "0\"", "\"bases[0].chunks[0].sha256\""},
		{{"bases", "0", "chunks", "0", "sha256", NULL}, "\"0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\"", "\"bases[0].chunks[0].sha256\""},
		{{"bases", "0", "chunks", "1", "sha256", NULL}, "\"0123\"", "\"bases[0].chunks[1].sha256\""},
		{{"bases", "0", "chunks", "1", "key", NULL}, "\"tables/99/base/0000000001500000/chunk-000002.bso\"", "\"bases[0].chunks[1].key\" is not a storage key under"},
		{{"bases", "0", "chunks", "1", "key", NULL}, "\"tables/16384/../99/x\"", "\"bases[0].chunks[1].key\""},
		{{"bases", "0", "chunks", "1", "key", NULL}, "\"/etc/passwd\"", "\"bases[0].chunks[1].key\""},
		{{"bases", "0", "schema_key", NULL}, "\"tables/1/x\"", "\"bases[0].schema_key\""},
		{{"segments", "1", "first_lsn", NULL}, "\"0/1\"", "\"segments[1].first_lsn\" is lower"},
		{{"segments", "0", "last_end_lsn", NULL}, "\"0/1\"", "\"segments[0].last_end_lsn\" is below"},
		{{"segments", "0", "records", NULL}, "true", "\"segments[0].records\" must be an integer"},
		{{"segments", "0", "size", NULL}, NULL, "\"segments[0].size\" is missing"},
		{{"segments", "0", "last_time", NULL}, "\"2026-11-26T16:00:00.1234567Z\"", "\"segments[0].last_time\""},
		{{"segments", NULL}, NULL, "\"segments\" is missing"},
		{{"gaps", NULL}, NULL, "\"gaps\" is missing"},
		{{"gaps", NULL}, "[{\"from\":\"0/10\"}]", "\"gaps[0].to\" is missing"},
		{{"gaps", NULL}, "[{\"from\":\"0/10\",\"to\":\"0/8\"}]", "\"gaps[0].to\" is not above from"},
	};
	manifest *m = sample_manifest(16384, "public", "t", 0x100000000ULL);
	char *good = manifest_to_json(m);
	manifest *out = NULL;
	bs_error err;
	size_t len = strlen(good);
	int crashes_or_accepts = 0;

	for (size_t i = 0; i < sizeof(muts) / sizeof(muts[0]); i++)
	{
		char *bad_json = mutate(good, muts[i].path, muts[i].value);

		error_clear(&err);
		out = (manifest *) 1;
		ok(manifest_from_json(bad_json, strlen(bad_json), &out, &err) == BS_ERR && out == NULL &&
		   strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 && strstr(err.message, muts[i].expect) != NULL,
		   "mutation %zu refused naming %s", i, muts[i].expect);
		if (strstr(err.message, muts[i].expect) == NULL)
			printf("#   message: %s\n", err.message);
		if (out && out != (manifest *) 1)
			manifest_free(out);
		free(bad_json);
	}

	/* Every truncation fails cleanly (the sanitizer build catches leaks and overreads). */
	for (size_t cut = 0; cut < len; cut++)
	{
		char *copy = xstrndup(good, cut);

		if (manifest_from_json(copy, cut, &out, &err) != BS_ERR || strcmp(err.code, ERRCODE_DATA_CORRUPTED) != 0)
			crashes_or_accepts++;
		free(copy);
	}
	is_int(crashes_or_accepts, 0, "all %zu truncations refused as corrupt", len);

	/* Byte flips: either refused as corrupt or accepted as a valid manifest, never anything else. */
	{
		int other = 0;
		int refused = 0;

		for (size_t pos = 0; pos < len; pos++)
		{
			char *copy = xstrdup(good);

			copy[pos] ^= 0x21;
			if (manifest_from_json(copy, len, &out, &err) == BS_OK)
			{
				if (manifest_validate(out, &err) != BS_OK)
					other++;
				manifest_free(out);
			}
			else if (strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0)
				refused++;
			else
				other++;
			free(copy);
		}
		is_int(other, 0, "byte flips: every outcome is a valid manifest or a corruption error");
		ok(refused > (int) len / 2, "byte flips: most are refused (%d of %zu)", refused, len);
	}

	{
		strbuf deep = STRBUF_INIT;

		for (int i = 0; i < 100000; i++)
			strbuf_append_char(&deep, '[');
		ok(manifest_from_json(deep.data, deep.len, &out, &err) == BS_ERR, "deep nesting refused");
		strbuf_free(&deep);
	}
	ok(manifest_from_json("{\"format\":1,\"format\":1}", 24, &out, &err) == BS_ERR, "duplicate keys refused");
	ok(manifest_from_json("[]", 2, &out, &err) == BS_ERR && strstr(err.message, "not a JSON object"),
	   "non-object refused");
	ok(manifest_from_json("{\"a\":\"\\u0000\"}", 14, &out, &err) == BS_ERR, "NUL in a string refused");
	ok(manifest_from_json("", 0, &out, &err) == BS_ERR, "empty input refused");

	{
		static const char *const ext[] = {"future_member", NULL};
		char *extended = mutate(good, ext, "{\"x\":1}");

		ok(manifest_from_json(extended, strlen(extended), &out, &err) == BS_OK, "unknown members ignored");
		manifest_free(out);
		free(extended);
	}
	free(good);
	manifest_free(m);
}

static void
test_names(void)
{
	static const struct
	{
		const char *in;
		const char *schema;
		const char *name;
	} good[] = {
		{"users", "public", "users"},
		{"Sales.Orders", "sales", "orders"},
		{"\"My Schema\".\"Tbl\"", "My Schema", "Tbl"},
		{"\"a\"\"b\".c$1", "a\"b", "c$1"},
		{"\"x.y\"", "public", "x.y"},
		{"_t", "public", "_t"},
		/* The printed form of names with control characters (quote_display_name). */
		{"public.U&\"evil\\0009x\"", "public", "evil\tx"},
		{"u&\"a\\\\b\"\"c\".t", "a\\b\"c", "t"},
		{"U&\"\\00E9\\+01F600\"", "public", "\xc3\xa9\xf0\x9f\x98\x80"},
	};
	static const char *const bad_names[] = {
		"", ".", "a.", ".a", "a.b.c", "\"\"", "\"abc", "a b", "1abc", "a.\"b", "a;drop", "\"a\"x", "U&\"\\0000\"", "U&\"\\12\"", "U&\"\\D800\"", "U&x", NULL
	};
	bs_error err;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
	{
		char *s = NULL;
		char *n = NULL;

		ok(ident_split_name(good[i].in, &s, &n, &err) == BS_OK && strcmp(s, good[i].schema) == 0 &&
		   strcmp(n, good[i].name) == 0, "name %s splits into [%s].[%s]", good[i].in, good[i].schema, good[i].name);
		free(s);
		free(n);
	}
	for (int i = 0; bad_names[i]; i++)
	{
		char *s = (char *) 1;
		char *n = (char *) 1;

		ok(ident_split_name(bad_names[i], &s, &n, &err) == BS_ERR && s == NULL && n == NULL &&
		   strcmp(err.code, ERRCODE_SYNTAX) == 0, "bad name '%s' refused", bad_names[i]);
	}
}

static void
test_head(void)
{
	archive_head h;
	archive_head back;
	char *j;
	bs_error err;

	archive_head_init(&h);
	h.flushed_lsn = 0x3A0F2C8;
	h.time = 1795708800123456LL;
	h.system_identifier = xstrdup("7312345678901234567");
	h.database = xstrdup("app");
	j = archive_head_to_json(&h);
	ok(strstr(j, "\"text_format\"") && strstr(j, "\"datestyle\":\"ISO, YMD\"") &&
	   strstr(j, "\"extra_float_digits\":3"), "head carries text_format");
	ok(archive_head_from_json(j, strlen(j), &back, &err) == BS_OK, "head parses back");
	ok(back.flushed_lsn == 0x3A0F2C8 && back.time == h.time, "head LSN and time");
	is_str(back.database, "app", "head database");
	is_str(back.text_format.timezone, "UTC", "timezone");
	is_str(back.text_format.bytea_output, "hex", "bytea_output");
	is_int(back.text_format.extra_float_digits, 3, "extra_float_digits");
	archive_head_clear(&back);
	free(j);
	{
		static const char *const bad_heads[] = {
			"{\"format\":1,\"system_identifier\":\"1\",\"database\":\"d\",\"flushed_lsn\":\"0/1\",\"time\":\"2026-11-26T16:00:00Z\"}",
			"{\"format\":1,\"system_identifier\":\"1\",\"database\":\"d\",\"flushed_lsn\":\"0/1\",\"time\":\"2026-11-26T16:00:00Z\","
			"\"text_format\":{\"timezone\":\"UTC\",\"datestyle\":\"ISO, YMD\",\"extra_float_digits\":9,\"intervalstyle\":\"postgres\",\"bytea_output\":\"hex\"}}",
			"{\"format\":1,\"system_identifier\":1,\"database\":\"d\",\"flushed_lsn\":\"0/1\",\"time\":\"2026-11-26T16:00:00Z\"}",
			"{\"format\":1,\"system_identifier\":\"1\",\"database\":\"d\",\"flushed_lsn\":\"x\",\"time\":\"2026-11-26T16:00:00Z\"}",
			"{\"format\":3}",
			"[1]",
			"{\"format\":2,\"system_identifier\":\"1\",\"database\":\"d\",\"flushed_lsn\":\"0/1\",\"time\":\"2026-11-26T16:00:00Z\","
			"\"text_format\":{\"timezone\":\"UTC\",\"datestyle\":\"ISO, YMD\",\"extra_float_digits\":3,\"intervalstyle\":\"postgres\",\"bytea_output\":\"hex\"},"
			"\"lease_token\":1}",
			"{\"format\":2,\"system_identifier\":\"1\",\"database\":\"d\",\"flushed_lsn\":\"0/1\",\"time\":\"2026-11-26T16:00:00Z\","
			"\"text_format\":{\"timezone\":\"UTC\",\"datestyle\":\"ISO, YMD\",\"extra_float_digits\":3,\"intervalstyle\":\"postgres\",\"bytea_output\":\"hex\"},"
			"\"tables\":[]}",
			"{\"format\":2,\"system_identifier\":\"1\",\"database\":\"d\",\"flushed_lsn\":\"0/1\",\"time\":\"2026-11-26T16:00:00Z\","
			"\"text_format\":{\"timezone\":\"UTC\",\"datestyle\":\"ISO, YMD\",\"extra_float_digits\":3,\"intervalstyle\":\"postgres\",\"bytea_output\":\"hex\"},"
			"\"lease_token\":1,\"tables\":[{\"relid\":9,\"generation\":1,\"schema\":\"s\",\"name\":\"a\"},"
			"{\"relid\":9,\"generation\":2,\"schema\":\"s\",\"name\":\"b\"}]}",
			"{\"format\":2,\"system_identifier\":\"1\",\"database\":\"d\",\"flushed_lsn\":\"0/1\",\"time\":\"2026-11-26T16:00:00Z\","
			"\"text_format\":{\"timezone\":\"UTC\",\"datestyle\":\"ISO, YMD\",\"extra_float_digits\":3,\"intervalstyle\":\"postgres\",\"bytea_output\":\"hex\"},"
			"\"lease_token\":1,\"tables\":[{\"relid\":9,\"generation\":-4,\"schema\":\"s\",\"name\":\"a\"}]}",
			NULL
		};
		static const char *const expect[] = {"\"text_format\" is missing", "\"text_format.extra_float_digits\" is out of range",
			"\"system_identifier\" must be a string", "\"flushed_lsn\"", "\"format\" is 3: written by a newer Backstop",
			"not a JSON object", "\"tables\" is missing", "\"lease_token\" is missing",
			"\"tables[1].relid\" is not above", "\"tables[0].generation\" is out of range"};

		for (int i = 0; bad_heads[i]; i++)
			ok(archive_head_from_json(bad_heads[i], strlen(bad_heads[i]), &back, &err) == BS_ERR &&
			   strstr(err.message, expect[i]) && back.database == NULL,
			   "bad head %d refused: %s", i, err.message);
	}
	archive_head_clear(&h);
	ok(h.database == NULL, "clear empties the head");
}

/* Format 2: a manifest's generation, the head's record of it, and format-1 documents. */
static void
test_generations(void)
{
	manifest *m = sample_manifest(16384, "public", "t", 0x100000000ULL);
	manifest *back = NULL;
	archive_head h;
	archive_head hb;
	const archive_head_table *e;
	char *j;
	bs_error err;

	error_clear(&err);
	m->generation = 41;
	j = manifest_to_json(m);
	ok(strstr(j, "\"format\":2") && strstr(j, "\"generation\":41"), "manifest written as format 2 with its generation");
	ok(manifest_from_json(j, strlen(j), &back, &err) == BS_OK && back->generation == 41, "generation round trips");
	manifest_free(back);
	back = NULL;
	{
		/* The same manifest as 0.1.0 wrote it: format 1, no generation. */
		json_error_t jerr;
		json_t *root = json_loads(j, 0, &jerr);
		char *old;

		json_object_set_new(root, "format", json_integer(1));
		json_object_del(root, "generation");
		old = json_dumps(root, JSON_COMPACT);
		ok(manifest_from_json(old, strlen(old), &back, &err) == BS_OK && back->generation == 0,
		   "a format-1 manifest reads with generation 0: %s", err.message);
		manifest_free(back);
		back = NULL;
		free(old);
		json_decref(root);
	}
	free(j);

	/* Gaps: changes never archived (a new slot resumed archiving). */
	manifest_add_gap(m, 0x3000, 0x4000);
	manifest_add_gap(m, 0x1000, 0x2000);
	manifest_add_gap(m, 0x5000, 0x5000);
	is_int(m->ngaps, 2, "two gaps, an empty one ignored");
	ok(m->gaps[0].from == 0x1000 && m->gaps[1].from == 0x3000, "gaps kept sorted");
	manifest_add_gap(m, 0x1800, 0x3000);
	ok(m->ngaps == 1 && m->gaps[0].from == 0x1000 && m->gaps[0].to == 0x4000, "touching gaps merge into one");
	ok(manifest_gap_in(m, 0x0, 0x1000) == NULL && manifest_gap_in(m, 0x4000, 0x9000) == NULL,
	   "ranges beside a gap are clear");
	ok(manifest_gap_in(m, 0x0, 0x1001) != NULL && manifest_gap_in(m, 0x3FFF, 0x9000) != NULL,
	   "ranges reaching into a gap are not");
	j = manifest_to_json(m);
	{
		json_error_t jerr;
		json_t *root = json_loads(j, 0, &jerr);
		json_t *g = json_array_get(json_object_get(root, "gaps"), 0);

		ok(json_array_size(json_object_get(root, "gaps")) == 1 &&
		   strcmp(json_string_value(json_object_get(g, "from")), "0/1000") == 0 &&
		   strcmp(json_string_value(json_object_get(g, "to")), "0/4000") == 0, "gaps written as LSN pairs");
		json_decref(root);
	}
	ok(manifest_from_json(j, strlen(j), &back, &err) == BS_OK && back->ngaps == 1 && back->gaps[0].to == 0x4000,
	   "gaps round trip");
	manifest_free(back);
	back = NULL;
	free(j);
	m->gaps[0].to = m->gaps[0].from;
	ok(manifest_validate(m, &err) == BS_ERR && strstr(err.message, "\"gaps[0].to\" is not above from"),
	   "an empty gap is refused: %s", err.message);
	m->gaps[0].to = 0x4000;
	m->gaps = xrealloc(m->gaps, 2 * sizeof(manifest_gap));
	m->gaps[1].from = 0x3000;
	m->gaps[1].to = 0x6000;
	m->ngaps = 2;
	ok(manifest_validate(m, &err) == BS_ERR && strstr(err.message, "\"gaps[1].from\" is below the previous gap's end"),
	   "overlapping gaps are refused: %s", err.message);
	m->ngaps = 1;

	/* Schema windows: a change at an unknown commit (not captured in the stream). */
	ok(strstr(j = manifest_to_json(m), "schema_unknown") == NULL, "no schema window: the member is absent");
	free(j);
	manifest_add_schema_gap(m, 0x2000, 0x3000);
	manifest_add_schema_gap(m, 0x5000, MANIFEST_GAP_OPEN);
	ok(m->nschema_gaps == 2 && manifest_open_schema_gap(m) == &m->schema_gaps[1], "schema windows kept, the last open");
	ok(manifest_schema_gap_at(m, 0x2000) == NULL && manifest_schema_gap_at(m, 0x2001) != NULL &&
	   manifest_schema_gap_at(m, 0x3000) != NULL && manifest_schema_gap_at(m, 0x3001) == NULL,
	   "points from the window's start to before its end are in it (bound = point + 1)");
	ok(manifest_schema_gap_at(m, 0x5001) != NULL && manifest_schema_gap_at(m, UINT64_MAX) != NULL,
	   "an open window holds every later point, --latest too");
	j = manifest_to_json(m);
	ok(manifest_from_json(j, strlen(j), &back, &err) == BS_OK && back->nschema_gaps == 2 &&
	   back->schema_gaps[0].from == 0x2000 && back->schema_gaps[1].to == MANIFEST_GAP_OPEN,
	   "schema windows round trip: %s", err.message);
	manifest_free(back);
	back = NULL;
	free(j);
	manifest_close_open_schema_gap(m, 0x4000);
	ok(manifest_open_schema_gap(m) != NULL, "a base copy before the window's start does not close it");
	manifest_close_open_schema_gap(m, 0x6000);
	ok(manifest_open_schema_gap(m) == NULL && m->schema_gaps[1].to == 0x6000, "a later base copy closes it");
	m->schema_gaps[1].from = 0x2800;
	ok(manifest_validate(m, &err) == BS_ERR && strstr(err.message, "schema_unknown[1].from"),
	   "overlapping schema windows are refused: %s", err.message);
	m->nschema_gaps = 0;

	archive_head_init(&h);
	h.flushed_lsn = 0x3A0F2C8;
	h.system_identifier = xstrdup("7312345678901234567");
	h.database = xstrdup("app");
	h.lease_token = 7;
	archive_head_note_table(&h, 16390, 3, "public", "b");
	archive_head_note_table(&h, 16384, 5, "public", "a");
	archive_head_note_table(&h, 16387, 1, "s", "c");
	archive_head_note_table(&h, 16384, 4, "public", "a2");
	is_int(h.ntables, 3, "three tables noted");
	ok(h.tables[0].relid == 16384 && h.tables[1].relid == 16387 && h.tables[2].relid == 16390, "kept sorted by relid");
	e = archive_head_find_table(&h, 16384);
	ok(e && e->generation == 5 && strcmp(e->name, "a2") == 0, "a lower generation never replaces a higher one; the name follows");
	ok(archive_head_find_table(&h, 16385) == NULL && archive_head_find_table(&h, 1) == NULL &&
	   archive_head_find_table(&h, 99999) == NULL, "absent relids are not found");
	j = archive_head_to_json(&h);
	ok(j && strstr(j, "\"format\":2") && strstr(j, "\"lease_token\":7") && strstr(j, "\"tables\":["), "head written as format 2");
	ok(archive_head_from_json(j, strlen(j), &hb, &err) == BS_OK, "head with tables parses back: %s", err.message);
	ok(hb.format == 2 && hb.lease_token == 7 && hb.ntables == 3 && hb.tables[2].generation == 3 &&
	   strcmp(hb.tables[1].schema, "s") == 0, "tables and lease token round trip");
	archive_head_clear(&hb);
	free(j);
	{
		static const char *v1 =
			"{\"format\":1,\"system_identifier\":\"1\",\"database\":\"d\",\"flushed_lsn\":\"0/1\",\"time\":\"2026-11-26T16:00:00Z\","
			"\"text_format\":{\"timezone\":\"UTC\",\"datestyle\":\"ISO, YMD\",\"extra_float_digits\":3,\"intervalstyle\":\"postgres\",\"bytea_output\":\"hex\"}}";

		ok(archive_head_from_json(v1, strlen(v1), &hb, &err) == BS_OK && hb.format == 1 && hb.ntables == 0 &&
		   hb.lease_token == 0, "a format-1 head reads, with no table records");
		archive_head_clear(&hb);
	}
	archive_head_clear(&h);
	manifest_free(m);
}

typedef struct key_set
{
	int n;
	char keys[16][128];
} key_set;

static void
test_storage(void)
{
	char dir[] = "/tmp/backstop-test-manifest-XXXXXX";
	char url[128];
	storage *st = NULL;
	bs_error err;
	manifest *m;
	manifest *out = NULL;
	bool exists = true;
	uint32_t *relids = NULL;
	int n = 0;
	archive_head h;

	error_clear(&err);
	log_configure(LOG_ERROR, 0);	/* the noise below is warned about, by design */
	if (mkdtemp(dir) == NULL)
	{
		ok(0, "mkdtemp");
		return;
	}
	snprintf(url, sizeof(url), "file://%s", dir);
	if (!ok(storage_open(url, NULL, &st, &err) == BS_OK, "file:// storage opens: %s", err.message))
		return;

	ok(manifest_load(st, 16384, &out, &exists, &err) == BS_OK && !exists && out == NULL,
	   "missing manifest: exists=false, BS_OK");
	ok(archive_head_load(st, &h, &exists, &err) == BS_OK && !exists, "missing head: exists=false");
	ok(manifest_list_relids(st, &relids, &n, &err) == BS_OK && n == 0, "empty archive lists no tables");
	free(relids);
	ok(manifest_find_table(st, "public.t", &out, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_UNDEFINED_TABLE) == 0 && strstr(err.message, "the archive holds no tables"),
	   "find in an empty archive: %s", err.message);

	/* public.t archived twice (dropped, then re-created with a lower OID after wraparound). */
	m = sample_manifest(90000, "public", "t", 0x100000000ULL);
	free(m->status);
	m->status = xstrdup("dropped");
	m->dropped_at_lsn = 0x100000000ULL;
	ok(manifest_store(st, m, &err) == BS_OK, "store manifest 90000: %s", err.message);
	manifest_free(m);
	m = sample_manifest(9, "public", "t", 0x200000000ULL);
	ok(manifest_store(st, m, &err) == BS_OK, "store manifest 9");
	manifest_free(m);
	m = sample_manifest(100, "My Schema", "Tbl", 0x100000000ULL);
	ok(manifest_store(st, m, &err) == BS_OK, "store manifest 100");
	/* Refuse to store what could not be read back. */
	m->segments[1].first_lsn = 1;
	ok(manifest_store(st, m, &err) == BS_ERR && strstr(err.message, "segments[1].first_lsn"),
	   "invalid manifest not stored: %s", err.message);
	manifest_free(m);

	/* Noise that listing must skip. */
	ok(storage_put(st, "tables/abc/manifest.json", "{}", 2, &err) == BS_OK, "put bad relid dir");
	ok(storage_put(st, "tables/77/seg/x.bso", "x", 1, &err) == BS_OK, "put table dir without manifest");
	ok(storage_put(st, "tables/9/manifest.json.old", "x", 1, &err) == BS_OK, "put lookalike key");
	ok(manifest_list_relids(st, &relids, &n, &err) == BS_OK && n == 3 && relids[0] == 9 &&
	   relids[1] == 100 && relids[2] == 90000, "relids listed in numeric order, noise skipped");
	free(relids);

	ok(manifest_load(st, 100, &out, &exists, &err) == BS_OK && exists && strcmp(out->schema, "My Schema") == 0,
	   "manifest loads back");
	manifest_free(out);
	out = NULL;

	ok(manifest_find_table(st, "t", &out, &err) == BS_OK && out->relid == 9,
	   "unqualified name is public; greatest archived_to wins");
	manifest_free(out);
	out = NULL;
	ok(manifest_find_table(st, "\"My Schema\".\"Tbl\"", &out, &err) == BS_OK && out->relid == 100,
	   "quoted identifiers resolve");
	manifest_free(out);
	out = NULL;
	ok(manifest_find_table(st, "My Schema.Tbl", &out, &err) == BS_ERR && strcmp(err.code, ERRCODE_SYNTAX) == 0,
	   "unquoted blank refused");
	ok(manifest_find_table(st, "\"My Schema\".tbl", &out, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_UNDEFINED_TABLE) == 0 &&
	   strstr(err.message, "table \"My Schema.tbl\" is not in the archive at file://") &&
	   strstr(err.message, "archived tables: public.t, \"My Schema\".\"Tbl\", public.t"),
	   "not found names what is archived: %s", err.message);

	/* A manifest in the wrong directory, and a corrupt one. */
	{
		char *text = NULL;
		strbuf sb = STRBUF_INIT;

		ok(storage_get_all(st, "tables/100/manifest.json", &sb, &err) == BS_OK, "read manifest 100");
		ok(storage_put(st, "tables/101/manifest.json", sb.data, sb.len, &err) == BS_OK, "copy it to 101");
		ok(manifest_load(st, 101, &out, &exists, &err) == BS_ERR && strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 &&
		   strstr(err.message, "tables/101/manifest.json") && strstr(err.message, "\"relid\" is 100"),
		   "relid mismatch with the directory refused: %s", err.message);
		ok(storage_put(st, "tables/101/manifest.json", sb.data, sb.len / 2, &err) == BS_OK, "truncate it");
		ok(manifest_load(st, 101, &out, &exists, &err) == BS_ERR && strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 &&
		   strstr(err.message, "tables/101/manifest.json: invalid manifest: JSON error"),
		   "truncated manifest refused: %s", err.message);
		/* Another table's damaged manifest: skipped, unless it may be the table looked for. */
		ok(manifest_find_table(st, "t", &out, &err) == BS_OK && out->relid == 9,
		   "lookup of an active table skips another table's corrupt manifest: %s", err.message);
		manifest_free(out);
		out = NULL;
		ok(manifest_find_table(st, "public.nosuch", &out, &err) == BS_ERR &&
		   strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 && out == NULL &&
		   strstr(err.message, "not among the readable manifests") && strstr(err.message, "tables/101/manifest.json"),
		   "no match while a manifest is unreadable: refused, naming it: %s", err.message);
		m = sample_manifest(200, "public", "d", 0x100000000ULL);
		free(m->status);
		m->status = xstrdup("dropped");
		m->dropped_at_lsn = 0x100000000ULL;
		ok(manifest_store(st, m, &err) == BS_OK, "store dropped manifest 200");
		manifest_free(m);
		ok(manifest_find_table(st, "d", &out, &err) == BS_ERR && strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 &&
		   strstr(err.message, "is ambiguous") && strstr(err.message, "dropped (relid 200)") &&
		   strstr(err.message, "tables/101/manifest.json"),
		   "a dropped match while a manifest is unreadable: refused as ambiguous: %s", err.message);
		ok(storage_delete(st, "tables/101/manifest.json", &err) == BS_OK, "remove it");
		ok(manifest_find_table(st, "d", &out, &err) == BS_OK && out->relid == 200,
		   "the dropped table resolves once nothing is unreadable");
		manifest_free(out);
		out = NULL;
		ok(storage_delete(st, "tables/200/manifest.json", &err) == BS_OK, "remove 200");
		strbuf_free(&sb);
		free(text);
	}

	archive_head_init(&h);
	h.flushed_lsn = 0x42;
	h.time = 1;
	h.system_identifier = xstrdup("1");
	h.database = xstrdup("db");
	ok(archive_head_store(st, &h, &err) == BS_OK, "head stored");
	archive_head_clear(&h);
	ok(archive_head_load(st, &h, &exists, &err) == BS_OK && exists && h.flushed_lsn == 0x42 &&
	   strcmp(h.text_format.intervalstyle, "postgres") == 0, "head loaded");
	archive_head_clear(&h);
	memset(&h, 0, sizeof(h));
	h.system_identifier = xstrdup("1");
	h.database = xstrdup("db");
	ok(archive_head_store(st, &h, &err) == BS_ERR && strstr(err.message, "text_format"),
	   "head without text_format not stored");
	archive_head_clear(&h);

	storage_close(st);
	{
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", dir);
	}
}

static void
test_layouts(void)
{
	manifest_column a[2] = {{"id", 23, -1, "integer", true, true, NULL}, {"v", 25, -1, "text", false, false, NULL}};
	manifest_column b[2] = {{"id", 23, -1, "int4", true, false, "1"}, {"v", 25, -1, "text", false, true, NULL}};
	manifest *m = manifest_new(1, "public", "t");

	ok(manifest_columns_equal(2, a, 2, b), "catalog-only differences do not make a new layout");
	b[1].typmod = 4;
	ok(!manifest_columns_equal(2, a, 2, b), "typmod change is a new layout");
	b[1].typmod = -1;
	b[0].key = false;
	ok(!manifest_columns_equal(2, a, 2, b), "key change is a new layout");
	ok(!manifest_columns_equal(2, a, 1, a), "column count matters");
	manifest_add_layout(m, 10, 'd', 2, a);
	manifest_add_layout(m, 20, 'd', 1, a);
	ok(manifest_layout_by_id(m, 1) == &m->layouts[1], "layout by id");
	ok(manifest_layout_by_id(m, 2) == NULL, "unknown layout id");
	m->layouts[0].id = 5;		/* as if pruned and renumbered */
	ok(manifest_add_layout(m, 30, 'f', 2, a)->id == 6, "new ids stay above every existing id");
	ok(manifest_layout_by_id(m, 5) == &m->layouts[0], "layout by id after pruning");
	manifest_free(m);
}

/* A base copy's layout placed among layouts the stream added meanwhile (background copies). */
static void
test_use_layout(void)
{
	manifest_column a[2] = {{"id", 23, -1, "integer", true, true, NULL}, {"v", 25, -1, "text", false, false, NULL}};
	manifest *m = manifest_new(1, "public", "t");
	uint32_t id = 99;
	bs_error err;

	error_clear(&err);
	ok(manifest_use_layout(m, 100, 'd', 2, a, &id, &err) == BS_OK && id == 0 && m->nlayouts == 1,
	   "first layout is added");
	ok(manifest_use_layout(m, 150, 'd', 2, a, &id, &err) == BS_OK && id == 0 && m->nlayouts == 1,
	   "the layout in effect is reused");
	/* The stream saw the layout at 300 before a base at 200 was added: dated back to 200. */
	manifest_free(m);
	m = manifest_new(1, "public", "t");
	manifest_add_layout(m, 300, 'd', 2, a);
	ok(manifest_use_layout(m, 200, 'd', 2, a, &id, &err) == BS_OK && id == 0 && m->nlayouts == 1 &&
	   m->layouts[0].from_lsn == 200, "the same later layout is dated back");
	/* A different one before it goes in LSN order with a new id: ids are not positions. */
	ok(manifest_use_layout(m, 100, 'f', 2, a, &id, &err) == BS_OK && id == 1 && m->nlayouts == 2 &&
	   m->layouts[0].from_lsn == 100 && m->layouts[0].id == 1 && m->layouts[1].id == 0,
	   "a different layout before a later one is inserted before it, with a new id");
	ok(manifest_use_layout(m, 400, 'f', 1, a, &id, &err) == BS_OK && id == 2 && m->nlayouts == 3 &&
	   m->layouts[2].from_lsn == 400, "a new layout after the last is appended");
	ok(manifest_layout_at(m, 399) == &m->layouts[1] && manifest_layout_at(m, 400) == &m->layouts[2] &&
	   manifest_layout_at(m, 199) == &m->layouts[0] && manifest_layout_at(m, 99) == NULL,
	   "layout in effect at an LSN");
	ok(manifest_validate(m, &err) == BS_OK, "still valid (sorted by LSN)");
	manifest_free(m);
}

int
main(void)
{
	test_time();
	test_keys();
	test_round_trip();
	test_missing_unknown();
	test_hostile();
	test_names();
	test_head();
	test_generations();
	test_layouts();
	test_use_layout();
	test_storage();
	return done_testing();
}
