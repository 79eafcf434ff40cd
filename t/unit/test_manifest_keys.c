/* test_manifest_keys.c — unit tests for the archive's object keys: every key built parses back to its table. */
#include "manifest_keys.h"
#include "error.h"
#include "storage.h"
#include "tap.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A key built for relid: a valid storage key under tables/<relid>/ that parses back to relid,
 * with rest the part after the table's directory. */
static void
check_round_trip(const char *what, char *key, uint32_t relid, const char *rest_expected)
{
	uint32_t got = 0;
	const char *rest = NULL;

	ok(storage_key_valid(key), "%s for relid %" PRIu32 " is a valid storage key (%s)", what, relid, key);
	ok(strncmp(key, ARCHIVE_TABLES_PREFIX, strlen(ARCHIVE_TABLES_PREFIX)) == 0, "%s is under " ARCHIVE_TABLES_PREFIX, what);
	ok(manifest_key_relid(key, &got, &rest) == BS_OK && got == relid, "%s parses back to relid %" PRIu32, what, relid);
	is_str(rest, rest_expected, "%s: what follows the table's directory", what);
	ok(manifest_key_relid(key, &got, NULL) == BS_OK && got == relid, "%s parses without asking for the rest", what);
	free(key);
}

int
main(void)
{
	static const uint32_t relids[] = {1, 9, 10, 16384, 4294967295U};
	static const uint64_t lsns[] = {0, 0x16B3748, UINT64_MAX};

	for (size_t r = 0; r < sizeof(relids) / sizeof(relids[0]); r++)
	{
		uint32_t relid = relids[r];

		check_round_trip("manifest key", manifest_key(relid), relid, "manifest.json");
		for (size_t l = 0; l < sizeof(lsns) / sizeof(lsns[0]); l++)
		{
			char rest[128];

			snprintf(rest, sizeof(rest), "seg/%016" PRIX64 "-%016" PRIX64 ".bso", lsns[l], lsns[l] + 1);
			check_round_trip("segment key", manifest_segment_key(relid, lsns[l], lsns[l] + 1), relid, rest);
			snprintf(rest, sizeof(rest), "base/%016" PRIX64 "/chunk-%06d.bso", lsns[l], 999999);
			check_round_trip("base chunk key", manifest_base_chunk_key(relid, lsns[l], 999999), relid, rest);
			snprintf(rest, sizeof(rest), "base/%016" PRIX64 "/schema.sql", lsns[l]);
			check_round_trip("base schema key", manifest_base_schema_key(relid, lsns[l]), relid, rest);
		}
	}
	/* A table's directory is not a prefix of another's: tables/1/ is not tables/16384/. */
	{
		char *k = manifest_key(16384);
		char *k1 = manifest_key(1);
		uint32_t got = 0;

		ok(strncmp(k, k1, strlen(ARCHIVE_TABLES_PREFIX "1/")) != 0, "tables/1/ is not a prefix of relid 16384's keys");
		ok(manifest_key_relid(k, &got, NULL) == BS_OK && got == 16384, "relid 16384's key is not taken for relid 1");
		free(k);
		free(k1);
	}
	ok(strcmp(ARCHIVE_HEAD_KEY, "head.json") == 0 && storage_key_valid(ARCHIVE_HEAD_KEY), "head.json at the top");
	{
		uint32_t got = 0;

		ok(manifest_key_relid(ARCHIVE_HEAD_KEY, &got, NULL) == BS_ERR, "head.json is under no table");
	}
	/* A segment's name parses back to the LSNs it was built from, and nothing else parses. */
	{
		char *k = manifest_segment_key(16384, UINT64_C(0x16B3740000), UINT64_C(0x16B3750030));
		const char *rest = NULL;
		uint64_t first = 0,
			end = 0;
		uint32_t relid = 0;
		static const char *const bad[] = {
			"seg/00000016B3740000-00000016B3750030.bs", "seg/00000016B3740000-00000016B3750030.bsox",
			"seg/00000016B3740000_00000016B3750030.bso", "seg/00000016b3740000-00000016B3750030.bso",
			"seg/00000016B3740000-00000016B375003G.bso", "base/00000016B3740000-00000016B3750030.bso",
			"seg/0000016B3740000-000000016B3750030.bso", "seg/", "",
		};

		ok(manifest_key_relid(k, &relid, &rest) == BS_OK && relid == 16384, "a segment's key is under its table");
		ok(manifest_segment_name_parse(rest, &first, &end) == BS_OK && first == UINT64_C(0x16B3740000) &&
		   end == UINT64_C(0x16B3750030), "a segment's name parses back to its LSNs (%s)", rest);
		ok(manifest_segment_name_parse("seg/0000000000000002-0000000000000001.bso", &first, &end) == BS_OK &&
		   first == 2 && end == 1, "the order of the two LSNs is the caller's to check");
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			ok(manifest_segment_name_parse(bad[i], &first, &end) == BS_ERR, "not a segment's name: \"%s\"", bad[i]);
		free(k);
	}
	return done_testing();
}
