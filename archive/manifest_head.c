/* manifest_head.c — head.json, the archive's head: flushed LSN, text format, and each table's manifest generation. */
#include "manifest_head.h"
#include "manifest.h"
#include "manifest_json.h"
#include "manifest_keys.h"
#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

void
archive_head_init(archive_head *head)
{
	memset(head, 0, sizeof(*head));
	head->format = MANIFEST_FORMAT;
	head->text_format.timezone = xstrdup(ARCHIVE_TEXT_TIMEZONE);
	head->text_format.datestyle = xstrdup(ARCHIVE_TEXT_DATESTYLE);
	head->text_format.extra_float_digits = ARCHIVE_TEXT_EXTRA_FLOAT_DIGITS;
	head->text_format.intervalstyle = xstrdup(ARCHIVE_TEXT_INTERVALSTYLE);
	head->text_format.bytea_output = xstrdup(ARCHIVE_TEXT_BYTEA_OUTPUT);
}

void
archive_head_clear(archive_head *head)
{
	free(head->system_identifier);
	free(head->database);
	free(head->text_format.timezone);
	free(head->text_format.datestyle);
	free(head->text_format.intervalstyle);
	free(head->text_format.bytea_output);
	for (int i = 0; i < head->ntables; i++)
	{
		free(head->tables[i].schema);
		free(head->tables[i].name);
	}
	free(head->tables);
	memset(head, 0, sizeof(*head));
}

const archive_head_table *
archive_head_find_table(const archive_head *head, uint32_t relid)
{
	int lo = 0;
	int hi = head->ntables - 1;

	while (lo <= hi)
	{
		int mid = lo + (hi - lo) / 2;

		if (head->tables[mid].relid == relid)
			return &head->tables[mid];
		if (head->tables[mid].relid < relid)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

void
archive_head_note_table(archive_head *head, uint32_t relid, uint64_t generation, const char *schema,
						const char *name)
{
	archive_head_table *t = (archive_head_table *) archive_head_find_table(head, relid);

	if (t == NULL)
	{
		int at = 0;

		while (at < head->ntables && head->tables[at].relid < relid)
			at++;
		head->tables = xrealloc(head->tables, (size_t) (head->ntables + 1) * sizeof(archive_head_table));
		memmove(&head->tables[at + 1], &head->tables[at], (size_t) (head->ntables - at) * sizeof(archive_head_table));
		head->ntables++;
		t = &head->tables[at];
		memset(t, 0, sizeof(*t));
		t->relid = relid;
	}
	/* Generations never go backwards, whatever the caller saw. */
	if (generation > t->generation)
		t->generation = generation;
	if (schema && (t->schema == NULL || strcmp(t->schema, schema) != 0))
	{
		free(t->schema);
		t->schema = xstrdup(schema);
	}
	if (name && (t->name == NULL || strcmp(t->name, name) != 0))
	{
		free(t->name);
		t->name = xstrdup(name);
	}
}

static int
head_load(storage *st, bool packs, archive_head *out, bool *exists, bs_error *err)
{
	strbuf sb = STRBUF_INIT;
	int rc;

	memset(out, 0, sizeof(*out));
	*exists = false;
	if (storage_get_all(st, ARCHIVE_HEAD_KEY, &sb, err) != BS_OK)
	{
		strbuf_free(&sb);
		if (strcmp(err->code, ERRCODE_NOT_FOUND) == 0)
		{
			error_clear(err);
			return BS_OK;
		}
		return error_prefix(err, "could not read \"%s\"", ARCHIVE_HEAD_KEY);
	}
	*exists = true;
	rc = packs ? archive_head_from_json_any(sb.data ? sb.data : "", sb.len, out, err)
		: archive_head_from_json(sb.data ? sb.data : "", sb.len, out, err);
	if (rc != BS_OK)
		error_prefix(err, "%s", ARCHIVE_HEAD_KEY);
	strbuf_free(&sb);
	return rc;
}

int
archive_head_load(storage *st, archive_head *out, bool *exists, bs_error *err)
{
	return head_load(st, false, out, exists, err);
}

int
archive_head_load_any(storage *st, archive_head *out, bool *exists, bs_error *err)
{
	return head_load(st, true, out, exists, err);
}

char *
archive_head_serialize(const archive_head *head, bs_error *err)
{
	char *text;

	if (archive_head_validate(head, err) != BS_OK)
	{
		error_prefix(err, "refusing to store an invalid archive head");
		return NULL;
	}
	text = archive_head_to_json(head);
	if (text == NULL)
		error_set(err, ERRCODE_INTERNAL, "could not serialize the archive head");
	return text;
}

int
archive_head_store_json(storage *st, const char *json, bs_error *err)
{
	if (storage_put(st, ARCHIVE_HEAD_KEY, json, strlen(json), err) != BS_OK)
		return error_prefix(err, "could not store \"%s\"", ARCHIVE_HEAD_KEY);
	return BS_OK;
}

int
archive_head_store(storage *st, const archive_head *head, bs_error *err)
{
	char *text = archive_head_serialize(head, err);
	int rc;

	if (text == NULL)
		return BS_ERR;
	rc = archive_head_store_json(st, text, err);
	free(text);
	return rc;
}
