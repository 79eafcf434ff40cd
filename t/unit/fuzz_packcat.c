/* fuzz_packcat.c — libFuzzer target for the catalog reader: a dir and one of its pages, read strictly. */
#include "manifest_json.h"
#include "packcat.h"
#include "digest.h"
#include "strbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DIR_KEY "catalog/0000000000000004/dir.json"
/* Tables of a page read per input: enough to reach every entry of the seeds. */
#define TABLES_READ 8

/*
 * Input: the dir's length (4 bytes, big-endian), the dir, a page.  A dir either fails with
 * nothing out or reads; then each page of it is taken to hold the page bytes (its size and
 * SHA-256 patched in: a fuzzer cannot forge a hash) and the first tables are read from it: a
 * read either fails with nothing out or gives the table's manifest, without segments, that
 * passes manifest_validate and whose table object reads back.  A table's current name always
 * resolves.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	packcat_dir *dir = (packcat_dir *) 1;
	size_t dlen;
	const uint8_t *page;
	size_t plen;
	bs_error err;

	if (size < 4)
		return 0;
	dlen = (size_t) data[0] << 24 | (size_t) data[1] << 16 | (size_t) data[2] << 8 | data[3];
	if (dlen > size - 4)
		dlen = size - 4;
	page = data + 4 + dlen;
	plen = size - 4 - dlen;
	if (packcat_dir_from_json(DIR_KEY, (const char *) data + 4, dlen, &dir, &err) != BS_OK)
	{
		if (dir != NULL)
			abort();
		return 0;
	}
	if (dir == NULL)
		abort();
	for (int p = 0; p < dir->npages; p++)
	{
		dir->pages[p].size = plen;
		digest_sha256_hex(page, plen, dir->pages[p].sha256);
	}
	for (int i = 0; i < dir->ntables; i++)
	{
		const packcat_table *t = &dir->tables[i];
		const packcat_table *found = NULL;
		manifest *m = (manifest *) 1;
		uint64_t last = 0;

		if (packcat_find_relid(dir, t->relid) != t)
			abort();
		if (packcat_find_name(dir, t->schema, t->name, UINT64_MAX, &found, &err) != BS_OK || found == NULL)
			abort();
		if (i >= TABLES_READ)
			continue;
		if (packcat_page_table(dir, t->relid, page, plen, &m, &last, &err) != BS_OK)
		{
			if (m != NULL)
				abort();
			continue;
		}
		if (m == NULL || m->relid != t->relid || m->nsegments != 0 || manifest_validate(m, &err) != BS_OK ||
			m->archived_to != t->archived_to)
			abort();
		{
			json_t *o = manifest_table_to_json_object(m);
			manifest *back = NULL;

			if (o == NULL || manifest_table_from_json_object(o, &back, &err) != BS_OK)
				abort();
			json_decref(o);
			manifest_free(back);
		}
		manifest_free(m);
	}
	packcat_dir_free(dir);
	return 0;
}
