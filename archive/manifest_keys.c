/* manifest_keys.c — the archive's object keys (the layout of doc/FORMAT.md): built, and parsed back to a relid or a segment's LSNs. */
#include "manifest_keys.h"
#include "error.h"
#include "lsn.h"
#include "strbuf.h"

#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

char *
manifest_table_prefix(uint32_t relid)
{
	return xasprintf(ARCHIVE_TABLES_PREFIX "%" PRIu32 "/", relid);
}

char *
manifest_segment_prefix(uint32_t relid)
{
	return xasprintf(ARCHIVE_TABLES_PREFIX "%" PRIu32 "/seg/", relid);
}

char *
manifest_key(uint32_t relid)
{
	return xasprintf(ARCHIVE_TABLES_PREFIX "%" PRIu32 "/manifest.json", relid);
}

char *
manifest_segment_key(uint32_t relid, uint64_t first_lsn, uint64_t end_lsn)
{
	return xasprintf(ARCHIVE_TABLES_PREFIX "%" PRIu32 "/seg/%016" PRIX64 "-%016" PRIX64 ".bso",
					 relid, first_lsn, end_lsn);
}

char *
manifest_base_chunk_key(uint32_t relid, uint64_t base_lsn, int chunk)
{
	return xasprintf(ARCHIVE_TABLES_PREFIX "%" PRIu32 "/base/%016" PRIX64 "/chunk-%06d.bso",
					 relid, base_lsn, chunk);
}

char *
manifest_base_schema_key(uint32_t relid, uint64_t base_lsn)
{
	return xasprintf(ARCHIVE_TABLES_PREFIX "%" PRIu32 "/base/%016" PRIX64 "/schema.sql", relid, base_lsn);
}

/* A relid as written in keys: decimal, no sign, no leading zero, 1..UINT32_MAX. */
static bool
parse_relid(const char *s, size_t len, uint32_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 10 || s[0] == '0')
		return false;
	for (size_t i = 0; i < len; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (uint64_t) (s[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*out = (uint32_t) v;
	return true;
}

int
manifest_key_relid(const char *key, uint32_t *relid, const char **rest)
{
	const char *p;
	const char *slash;

	if (strncmp(key, ARCHIVE_TABLES_PREFIX, strlen(ARCHIVE_TABLES_PREFIX)) != 0)
		return BS_ERR;
	p = key + strlen(ARCHIVE_TABLES_PREFIX);
	slash = strchr(p, '/');
	if (slash == NULL || !parse_relid(p, (size_t) (slash - p), relid))
		return BS_ERR;
	if (rest)
		*rest = slash + 1;
	return BS_OK;
}

int
manifest_segment_name_parse(const char *rest, uint64_t *first_lsn, uint64_t *end_lsn)
{
	char part[17];

	if (strncmp(rest, "seg/", 4) != 0 || strlen(rest) != 4 + 16 + 1 + 16 + 4 || rest[20] != '-' ||
		strcmp(rest + 37, ".bso") != 0)
		return BS_ERR;
	memcpy(part, rest + 4, 16);
	part[16] = '\0';
	if (lsn_parse_key(part, first_lsn) != BS_OK)
		return BS_ERR;
	memcpy(part, rest + 21, 16);
	return lsn_parse_key(part, end_lsn);
}
