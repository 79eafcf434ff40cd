/* manifest_head.h — head.json, the archive's head: flushed LSN, text format, and each table's manifest generation. */
#ifndef BACKSTOP_MANIFEST_HEAD_H
#define BACKSTOP_MANIFEST_HEAD_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "storage.h"

/* The session settings under which every archived value was produced (text output forms). */
#define ARCHIVE_TEXT_TIMEZONE "UTC"
#define ARCHIVE_TEXT_DATESTYLE "ISO, YMD"
#define ARCHIVE_TEXT_EXTRA_FLOAT_DIGITS 3
#define ARCHIVE_TEXT_INTERVALSTYLE "postgres"
#define ARCHIVE_TEXT_BYTEA_OUTPUT "hex"

typedef struct archive_text_format
{
	char *timezone;
	char *datestyle;
	int extra_float_digits;
	char *intervalstyle;
	char *bytea_output;
} archive_text_format;

/* The head's record of one table's manifest (format 2). */
typedef struct archive_head_table
{
	uint32_t relid;
	uint64_t generation;		/* of the manifest stored before this head */
	char *schema;
	char *name;
} archive_head_table;

/*
 * Format 3 (packs and catalog, doc/design/format2.md 3.3): no tables; tip_seq and tip_sha256
 * (the last pack the writer knew of, and the SHA-256 of its stored bytes: "" and 0 for an
 * empty log), catalog_seq (the newest catalog, 0: none yet).  Read only by
 * archive_head_load_any (archive_head_load refuses it as written by a newer Backstop).
 */
#define ARCHIVE_HEAD_FORMAT_PACKS 3

typedef struct archive_head
{
	int format;					/* as read (1, 2 or 3); MANIFEST_FORMAT when written, 3 when 3 */
	uint64_t flushed_lsn;
	int64_t time;
	char *system_identifier;
	char *database;
	archive_text_format text_format;	/* required: archive_head_init fills the defaults */
	uint64_t lease_token;		/* fencing token of the archiver that wrote it (format 2) */
	int ntables;
	archive_head_table *tables;	/* ascending relid; none in formats 1 and 3 */
	uint64_t tip_seq;			/* format 3 */
	char tip_sha256[65];		/* format 3: "" when tip_seq is 0 */
	uint64_t catalog_seq;		/* format 3: 0 when no catalog is written yet */
} archive_head;

/* Zero *head and set text_format to the ARCHIVE_TEXT_* settings. */
void archive_head_init(archive_head *head);
/* head.json; *exists false (and *out zeroed) when absent. */
int archive_head_load(storage *st, archive_head *out, bool *exists, bs_error *err);
/* As archive_head_load, a format-3 head too (out->format says which). */
int archive_head_load_any(storage *st, archive_head *out, bool *exists, bs_error *err);
int archive_head_store(storage *st, const archive_head *head, bs_error *err);
char *archive_head_serialize(const archive_head *head, bs_error *err);
int archive_head_store_json(storage *st, const char *json, bs_error *err);
void archive_head_clear(archive_head *head);
/* The head's record of relid, NULL when it has none. */
const archive_head_table *archive_head_find_table(const archive_head *head, uint32_t relid);
/* Record (or update) the generation and name of a stored manifest. */
void archive_head_note_table(archive_head *head, uint32_t relid, uint64_t generation, const char *schema,
							 const char *name);

#endif
