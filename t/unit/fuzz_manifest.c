/* fuzz_manifest.c — libFuzzer target for what is read from storage as JSON: manifests, head.json, and the SQL checks of their definitions. */
#include "manifest.h"
#include "manifest_head.h"
#include "manifest_json.h"
#include "sqlcheck.h"
#include "strbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint32_t sink;

static void
count_problem(void *ctx, const char *field, const char *object, const char *message)
{
	(void) ctx;
	sink += (uint32_t) (strlen(field) + strlen(object) + strlen(message));
}

/*
 * The input is a manifest and also a head.json.  A manifest that parses must serialize, and
 * what it serializes to must parse again to the same text (the writer stores only what the
 * reader accepts).  Its SQL-carrying members then go through sqlcheck as recover and verify
 * do.  The input is copied to an exact-size heap block so ASan catches any over-read.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = xmalloc(size ? size : 1);
	manifest *m = NULL;
	archive_head head;
	bs_error err;

	memcpy(buf, data, size);
	if (manifest_from_json(buf, size, &m, &err) == BS_OK)
	{
		char *json = manifest_to_json(m);
		manifest *again = NULL;

		if (json == NULL)
			abort();
		if (manifest_from_json(json, strlen(json), &again, &err) != BS_OK)
			abort();
		{
			char *json2 = manifest_to_json(again);

			if (json2 == NULL || strcmp(json, json2) != 0)
				abort();
			free(json2);
		}
		if (manifest_validate(m, &err) != BS_OK)
			abort();
		(void) sqlcheck_manifest(m, count_problem, NULL);
		manifest_free(again);
		free(json);
		manifest_free(m);
	}
	memset(&head, 0, sizeof(head));
	if (archive_head_from_json(buf, size, &head, &err) == BS_OK)
	{
		char *json = archive_head_to_json(&head);
		archive_head again;

		if (json == NULL)
			abort();
		memset(&again, 0, sizeof(again));
		if (archive_head_from_json(json, strlen(json), &again, &err) != BS_OK)
			abort();
		archive_head_clear(&again);
		free(json);
		archive_head_clear(&head);
	}
	free(buf);
	return 0;
}
