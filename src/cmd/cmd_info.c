/* cmd_info.c — `backstop info`: what the archive holds per table, its recovery window and findings. */
#include "cmd_info.h"
#include "isotime.h"
#include "jsonout.h"
#include "archive_load.h"
#include "manifest_head.h"
#include "manifest_store.h"
#include "audit.h"
#include "cli.h"
#include "info_render.h"
#include "lsn.h"
#include "manifest.h"
#include "redact.h"
#include "storage.h"
#include "strbuf.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void __attribute__((format(printf, 2, 3)))
finding(info_summary *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	json_array_append_new(s->findings, json_vsprintf(fmt, ap));
	va_end(ap);
}

/* The time the window shows for an end cut back to lsn: the newest base or segment end at or
 * before it (the first base's when none is). */
static int64_t
window_time_at(const manifest *m, uint64_t lsn)
{
	int64_t t = m->bases[0].time;

	for (int i = 0; i < m->nbases; i++)
		if (m->bases[i].lsn <= lsn)
			t = m->bases[i].time;
	for (int i = 0; i < m->nsegments; i++)
		if (m->segments[i].last_end_lsn <= lsn && m->segments[i].last_time > t)
			t = m->segments[i].last_time;
	return t;
}

static void
summarize(const manifest *m, const archive_head *head, bool head_exists, info_summary *s)
{
	char a[LSN_BUFLEN];

	memset(s, 0, sizeof(*s));
	s->findings = json_array();
	for (int i = 0; i < m->nsegments; i++)
	{
		const manifest_segment *seg = &m->segments[i];

		s->seg_size += seg->size;
		s->seg_raw += seg->raw_size;
		s->seg_records += seg->records;
		if (i == 0 || seg->first_lsn < s->seg_first)
			s->seg_first = seg->first_lsn;
		if (seg->last_end_lsn > s->seg_last_end)
			s->seg_last_end = seg->last_end_lsn;
	}
	if (strcmp(m->status, "skipped") == 0)
	{
		finding(s, "skipped: %s", m->finding ? m->finding : "no reason recorded");
		return;
	}
	if (m->finding)
		finding(s, "%s", m->finding);
	if (strcmp(m->status, "dropped") == 0)
	{
		char b[LSN_BUFLEN];

		finding(s, "dropped after %s and before %s: recoverable up to its last change (--latest)",
				lsn_format(manifest_dropped_after(m), a), lsn_format(m->dropped_at_lsn, b));
		if (m->drop_lsn)
			finding(s, "its DROP committed at %s (read from the stream): points below it are recoverable",
					lsn_format(m->drop_lsn, a));
	}
	if (strcmp(m->status, "active") == 0 && m->ddl_capture_from == 0)
		finding(s, "%s", "schema changes after the last row change are not captured (the archiver runs without "
				"--ddl-capture): such a change is placed in a window (from the last row change to the next one, "
				"or to a new base copy once a table check finds it) whose points are refused; one made after the "
				"archiver's last table check is not known to the archive yet");
	if (m->nbases == 0)
	{
		finding(s, "%s", "no base copy yet: the table cannot be recovered");
		return;
	}
	s->has_window = true;
	s->window_from = m->bases[0].lsn;
	s->window_from_time = m->bases[0].time;
	s->window_to = m->archived_to;
	s->window_to_time = m->nsegments ? m->segments[m->nsegments - 1].last_time : m->bases[m->nbases - 1].time;
	/* A dropped table: up to its last change, as recovery has it (the drop came later). */
	if (strcmp(m->status, "dropped") == 0)
		s->window_to = manifest_dropped_after(m);
	/* The head vouches that every table's changes up to flushed_lsn are archived. */
	if (strcmp(m->status, "active") == 0 && head_exists && head->flushed_lsn > s->window_to)
	{
		s->window_to = head->flushed_lsn;
		s->window_to_time = head->time;
	}
	if (m->rebase_requested_at != 0)
		finding(s, "points from %s until the next base copy are refused: a column change there (its type) "
				"needs a new base copy, which the archiver takes at its next table check",
				lsn_format(m->rebase_requested_at, a));
	/* Its archive ends where it left the archived set (an open gap): nothing later is backed. */
	if (manifest_open_gap(m) != NULL)
	{
		const manifest_gap *g = manifest_open_gap(m);

		finding(s, "not archived from %s on: the table left the archived set (the publication, or the tables "
				"to archive); points from there on are refused until it is archived again and a new base copy "
				"is taken", lsn_format(g->from, a));
		if (s->window_to > g->from)
		{
			s->window_to = g->from;
			s->window_to_time = window_time_at(m, s->window_to);
		}
	}
	/* Schema changes not captured: windows in which the columns changed at an unknown point. */
	for (int k = 0; k < m->nschema_gaps; k++)
	{
		const manifest_gap *g = &m->schema_gaps[k];
		char b[LSN_BUFLEN];

		if (g->to == MANIFEST_GAP_OPEN)
		{
			finding(s, "the schema changed at an unknown point after %s (schema changes are not captured): points "
					"from there on are refused until the archiver takes a new base copy", lsn_format(g->from, a));
			/* The window shown ends before it: nothing later is backed yet. */
			if (s->window_to >= g->from)
			{
				s->window_to = g->from > 0 ? g->from - 1 : 0;
				s->window_to_time = window_time_at(m, s->window_to);
			}
		}
		else
			finding(s, "the schema changed at an unknown point between %s and %s (schema changes were not "
					"captured): points in between are refused", lsn_format(g->from, a), lsn_format(g->to, b));
	}
}

int
cmd_info(bs_config *cfg, int argc, char **argv)
{
	const char *table = config_get(cfg, CFG_TABLE);
	bool as_json = config_get_bool(cfg, CFG_JSON);
	storage *st = NULL;
	bs_error err;
	archive_head head;
	bool head_exists = false;
	char *head_error = NULL;
	uint32_t *relids = NULL;
	int nrelids = 0;
	archive_tables *all = NULL;	/* the whole archive: its tables, through one view in format 3 */
	json_t *tables = json_array();
	int unreadable = 0;
	char *where = NULL;
	char *shown_where = NULL;		/* where, escaped for text output */
	int exit_code = EXIT_FAILURE_RUNTIME;

	if (argc > 0)
	{
		cli_usage_error("info", "unexpected argument \"%s\"", argv[0]);
		json_decref(tables);
		return EXIT_USAGE;
	}
	memset(&head, 0, sizeof(head));
	error_clear(&err);
	if ((exit_code = cli_open_storage("info", cfg, &st)) != EXIT_OK)
		goto out;
	exit_code = EXIT_FAILURE_RUNTIME;
	where = redact_text(storage_describe(st));
	shown_where = xstrdup_printable(where);
	if (archive_head_load_any(st, &head, &head_exists, &err) != BS_OK)
	{
		if (strcmp(err.code, ERRCODE_DATA_CORRUPTED) != 0)
		{
			cli_report_error("info", &err);
			exit_code = cli_exit_code(&err, exit_code);
			goto out;
		}
		head_error = redact_text(err.message);
	}

	if (table || config_get(cfg, CFG_RELID))
	{
		manifest *m = NULL;

		/* Formats 1 and 2 through the manifests; format 3 through the catalog and the packs. */
		if ((table ? archive_load_find_at(st, head_exists ? &head : NULL, table, UINT64_MAX, &m, &err)
			 : archive_load_find_relid(st, head_exists ? &head : NULL, config_get(cfg, CFG_RELID), &m, &err)) != BS_OK)
		{
			cli_report_error("info", &err);
			exit_code = strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 ? EXIT_INTEGRITY
				: strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0 ? EXIT_USAGE : EXIT_FAILURE_RUNTIME;
			goto out;
		}
		relids = xmalloc(sizeof(uint32_t));
		relids[0] = m->relid;
		nrelids = 1;
		manifest_free(m);
	}
	else if (archive_tables_open(st, head_exists ? &head : NULL, &all, &err) != BS_OK)
	{
		/* Formats 1 and 2: the listing of the manifests; format 3: the catalog and the log. */
		cli_report_error("info", &err);
		if (head_exists && head.format == ARCHIVE_HEAD_FORMAT_PACKS && strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0)
			exit_code = EXIT_INTEGRITY;
		goto out;
	}
	else
	{
		const uint32_t *ids = archive_tables_relids(all, &nrelids);

		relids = xcalloc((size_t) nrelids + 1, sizeof(uint32_t));
		if (nrelids > 0)
			memcpy(relids, ids, (size_t) nrelids * sizeof(uint32_t));
	}
	if (nrelids == 0 && !head_exists && head_error == NULL)
	{
		fprintf(stderr, "backstop info: ERROR: no archive at %s\n", shown_where);
		goto out;
	}

	if (!as_json)
		info_render_head_text(shown_where, head_error, head_exists, &head, nrelids);

	for (int i = 0; i < nrelids; i++)
	{
		manifest *m = NULL;
		bool exists;
		info_summary s;

		if ((all ? archive_tables_load(all, relids[i], &m, &exists, &err)
			 : archive_load_table(st, head_exists ? &head : NULL, relids[i], &m, &exists, &err)) != BS_OK)
		{
			char *msg;

			if (strcmp(err.code, ERRCODE_DATA_CORRUPTED) != 0)
			{
				cli_report_error("info", &err);
				goto out;
			}
			/* One damaged manifest must not hide the others. */
			unreadable++;
			msg = redact_text(err.message);
			info_render_unreadable(as_json ? tables : NULL, relids[i], msg);
			free(msg);
			continue;
		}
		if (!exists)
			continue;			/* removed since the listing */
		summarize(m, &head, head_exists, &s);
		if (as_json)
			json_array_append_new(tables, info_render_table_json(m, &s));
		else
			info_render_table_text(m, &s);
		json_decref(s.findings);
		manifest_free(m);
	}

	if (as_json)
	{
		info_render_json(where, head_error, head_exists, &head, tables);
		tables = NULL;
	}
	exit_code = (unreadable || head_error) ? EXIT_INTEGRITY : EXIT_OK;

out:
	json_decref(tables);
	archive_tables_free(all);
	free(relids);
	free(where);
	free(shown_where);
	free(head_error);
	archive_head_clear(&head);
	if (st)
		storage_close(st);
	return exit_code;
}
