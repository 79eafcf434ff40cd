/* info_render.h — the text and JSON forms of `backstop info` (cmd_info.c decides what to show). */
#ifndef BACKSTOP_INFO_RENDER_H
#define BACKSTOP_INFO_RENDER_H

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

#include "manifest.h"
#include "manifest_head.h"

/* What info reports about one table, derived from its manifest. */
typedef struct info_summary
{
	uint64_t seg_size;
	uint64_t seg_raw;
	uint64_t seg_records;
	uint64_t seg_first;
	uint64_t seg_last_end;
	bool has_window;
	uint64_t window_from;
	int64_t window_from_time;
	uint64_t window_to;
	int64_t window_to_time;		/* of the last archived change, or of the head */
	json_t *findings;			/* array of strings */
} info_summary;

/* The text form's archive header: where, the head (or why it is unreadable), how many tables. */
void info_render_head_text(const char *shown_where, const char *head_error, bool head_exists,
						   const archive_head *head, int ntables);
/* One table: its JSON entry (new reference), or its text paragraph on stdout. */
json_t *info_render_table_json(const manifest *m, const info_summary *s);
void info_render_table_text(const manifest *m, const info_summary *s);
/* A table whose manifest is unreadable: appended to tables (JSON) when tables is not NULL, else a line. */
void info_render_unreadable(json_t *tables, uint32_t relid, const char *msg);
/* The JSON document on stdout: the storage, the head (or null and head_error), and tables (taken). */
void info_render_json(const char *where, const char *head_error, bool head_exists, const archive_head *head,
					  json_t *tables);

#endif
