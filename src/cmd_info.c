/* cmd_info.c — `backstop info`: what the archive holds per table, its recovery window and findings. */
#include "cmd_info.h"
#include "audit.h"
#include "cli.h"
#include "isotime.h"
#include "jsonout.h"
#include "lsn.h"
#include "manifest.h"
#include "manifest_head.h"
#include "manifest_store.h"
#include "pgsql.h"
#include "redact.h"
#include "storage.h"
#include "strbuf.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What info reports about one table, derived from its manifest. */
typedef struct table_summary
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
} table_summary;

static void
human_size(uint64_t n, char *buf, size_t len)
{
	static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double) n;
	int u = 0;

	if (n < 1024)
	{
		snprintf(buf, len, "%" PRIu64 " bytes", n);
		return;
	}
	while (v >= 1024 && u < 5)
	{
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, units[u]);
}

static void __attribute__((format(printf, 2, 3)))
finding(table_summary *s, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();				/* out of memory, as xmalloc would */
	va_end(ap);
	json_array_append_new(s->findings, json_string(msg));
	free(msg);
}

static void
summarize(const manifest *m, const archive_head *head, bool head_exists, table_summary *s)
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
			s->window_to_time = m->bases[0].time;
			for (int i = 0; i < m->nbases; i++)
				if (m->bases[i].lsn <= g->from)
					s->window_to_time = m->bases[i].time;
			for (int i = 0; i < m->nsegments; i++)
				if (m->segments[i].last_end_lsn <= g->from && m->segments[i].last_time > s->window_to_time)
					s->window_to_time = m->segments[i].last_time;
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
				s->window_to_time = m->bases[0].time;
				for (int i = 0; i < m->nbases; i++)
					if (m->bases[i].lsn <= s->window_to)
						s->window_to_time = m->bases[i].time;
				for (int i = 0; i < m->nsegments; i++)
					if (m->segments[i].last_end_lsn <= s->window_to && m->segments[i].last_time > s->window_to_time)
						s->window_to_time = m->segments[i].last_time;
			}
		}
		else
			finding(s, "the schema changed at an unknown point between %s and %s (schema changes were not "
					"captured): points in between are refused", lsn_format(g->from, a), lsn_format(g->to, b));
	}
}

/* The base copy after lsn (0: none yet): where points are exact again. */
static uint64_t
base_after(const manifest *m, uint64_t lsn)
{
	for (int k = 0; k < m->nbases; k++)
		if (m->bases[k].lsn > lsn)
			return m->bases[k].lsn;
	return 0;
}

/* The layout in effect just before layout i's position (NULL: none). */
static const manifest_layout *
layout_before(const manifest *m, int i)
{
	const manifest_layout *prev = NULL;

	for (int k = 0; k < m->nlayouts; k++)
		if (m->layouts[k].from_lsn < m->layouts[i].from_lsn && (prev == NULL || m->layouts[k].from_lsn > prev->from_lsn))
			prev = &m->layouts[k];
	return prev;
}

/*
 * The windows in which recovery refuses points because of a column change that needs a newer
 * base copy: from the layout that made it to the first base copy after it (to = 0: none
 * yet).  A column added with a value computed for each existing row (missing_unknown) is
 * always refused there; a retyped column where its older values do not convert exactly.
 */
static void
column_change_windows(const manifest *m, void (*fn) (void *ctx, const char *reason, const char *column,
													  uint64_t from, uint64_t to), void *ctx)
{
	for (int i = 0; i < m->nlayouts; i++)
	{
		const manifest_layout *l = &m->layouts[i];
		const manifest_layout *prev = layout_before(m, i);

		for (int c = 0; c < l->ncols; c++)
		{
			const manifest_column *col = &l->columns[c];

			if (col->missing_unknown)
				fn(ctx, "added with a per-row default", col->name, l->from_lsn, base_after(m, l->from_lsn));
			else if (prev && col->name)
				for (int k = 0; k < prev->ncols; k++)
					if (prev->columns[k].name && strcmp(prev->columns[k].name, col->name) == 0 &&
						(prev->columns[k].type_oid != col->type_oid || prev->columns[k].typmod != col->typmod))
						fn(ctx, "retyped (refused where older values do not convert exactly)", col->name,
						   l->from_lsn, base_after(m, l->from_lsn));
		}
	}
}

static void
column_change_json(void *ctx, const char *reason, const char *column, uint64_t from, uint64_t to)
{
	json_array_append_new((json_t *) ctx, json_pack("{s:s,s:s?,s:o,s:o}", "reason", reason, "column", column,
													 "from_lsn", jsonout_lsn(from),
													 "to_lsn", to ? jsonout_lsn(to) : json_null()));
}

static void
column_change_text(void *ctx, const char *reason, const char *column, uint64_t from, uint64_t to)
{
	char a[LSN_BUFLEN],
		b[LSN_BUFLEN];
	char *shown = xstrdup_printable(column ? column : "?");

	(void) ctx;
	if (to == 0)
		printf("  refused:      from %s on, until a new base copy (column \"%s\" %s)\n", lsn_format(from, a), shown,
			   reason);
	else
		printf("  refused:      %s .. %s (column \"%s\" %s)\n", lsn_format(from, a), lsn_format(to, b), shown, reason);
	free(shown);
}

static json_t *
table_json(const manifest *m, table_summary *s)
{
	json_t *o = json_object();
	json_t *bases = json_array();
	json_t *segs = json_object();

	json_object_set_new(o, "relid", json_integer(m->relid));
	json_object_set_new(o, "schema", json_string(m->schema));
	json_object_set_new(o, "name", json_string(m->name));
	json_object_set_new(o, "status", json_string(m->status));
	json_object_set_new(o, "dropped_at_lsn", strcmp(m->status, "dropped") == 0 ? jsonout_lsn(m->dropped_at_lsn) : json_null());
	json_object_set_new(o, "rebase_requested_at", m->rebase_requested_at ? jsonout_lsn(m->rebase_requested_at) :
						json_null());
	json_object_set_new(o, "archived_to", jsonout_lsn(m->archived_to));
	json_object_set_new(o, "drop_lsn", m->drop_lsn ? jsonout_lsn(m->drop_lsn) : json_null());
	json_object_set_new(o, "ddl_capture_from", m->ddl_capture_from ? jsonout_lsn(m->ddl_capture_from) : json_null());
	{
		json_t *names = json_array();

		for (int i = 0; i < m->nnames; i++)
			json_array_append_new(names, json_pack("{s:o,s:s,s:s}", "from_lsn", jsonout_lsn(m->names[i].from_lsn),
												   "schema", m->names[i].schema, "name", m->names[i].name));
		json_object_set_new(o, "names", names);
	}
	for (int i = 0; i < m->nbases; i++)
	{
		const manifest_base *b = &m->bases[i];
		json_t *jb = json_object();
		uint64_t size = 0;
		uint64_t raw = 0;

		for (int k = 0; k < b->nchunks; k++)
		{
			size += b->chunks[k].size;
			raw += b->chunks[k].raw_size;
		}
		json_object_set_new(jb, "lsn", jsonout_lsn(b->lsn));
		json_object_set_new(jb, "time", jsonout_time(b->time));
		json_object_set_new(jb, "rows", json_integer((json_int_t) b->rows));
		json_object_set_new(jb, "chunks", json_integer(b->nchunks));
		json_object_set_new(jb, "size", json_integer((json_int_t) size));
		json_object_set_new(jb, "raw_size", json_integer((json_int_t) raw));
		json_array_append_new(bases, jb);
	}
	json_object_set_new(o, "bases", bases);
	json_object_set_new(segs, "count", json_integer(m->nsegments));
	json_object_set_new(segs, "size", json_integer((json_int_t) s->seg_size));
	json_object_set_new(segs, "raw_size", json_integer((json_int_t) s->seg_raw));
	json_object_set_new(segs, "records", json_integer((json_int_t) s->seg_records));
	json_object_set_new(segs, "first_lsn", m->nsegments ? jsonout_lsn(s->seg_first) : json_null());
	json_object_set_new(segs, "last_end_lsn", m->nsegments ? jsonout_lsn(s->seg_last_end) : json_null());
	json_object_set_new(o, "segments", segs);
	{
		json_t *gaps = json_array();

		for (int i = 0; i < m->ngaps; i++)
		{
			json_t *g = json_object();

			json_object_set_new(g, "from_lsn", jsonout_lsn(m->gaps[i].from));
			json_object_set_new(g, "to_lsn", m->gaps[i].to == MANIFEST_GAP_OPEN ? json_null() :
								jsonout_lsn(m->gaps[i].to));
			json_array_append_new(gaps, g);
		}
		json_object_set_new(o, "not_archived", gaps);
		gaps = json_array();
		for (int i = 0; i < m->nschema_gaps; i++)
		{
			json_t *g = json_object();

			json_object_set_new(g, "from_lsn", jsonout_lsn(m->schema_gaps[i].from));
			json_object_set_new(g, "to_lsn", m->schema_gaps[i].to == MANIFEST_GAP_OPEN ? json_null() :
								jsonout_lsn(m->schema_gaps[i].to));
			json_array_append_new(gaps, g);
		}
		json_object_set_new(o, "schema_unknown", gaps);
		gaps = json_array();
		column_change_windows(m, column_change_json, gaps);
		json_object_set_new(o, "column_change_refused", gaps);
	}
	json_object_set_new(o, "generation", json_integer((json_int_t) m->generation));
	if (m->expired_before)
	{
		json_t *e = json_object();

		json_object_set_new(e, "before_lsn", jsonout_lsn(m->expired_before));
		json_object_set_new(e, "time", jsonout_time(m->expired_time));
		json_object_set_new(o, "expired", e);
	}
	else
		json_object_set_new(o, "expired", json_null());
	if (s->has_window)
	{
		json_t *w = json_object();

		json_object_set_new(w, "from_lsn", jsonout_lsn(s->window_from));
		json_object_set_new(w, "from_time", jsonout_time(s->window_from_time));
		json_object_set_new(w, "to_lsn", jsonout_lsn(s->window_to));
		json_object_set_new(w, "to_time", jsonout_time(s->window_to_time));
		json_object_set_new(o, "recovery_window", w);
	}
	else
		json_object_set_new(o, "recovery_window", json_null());
	json_object_set_new(o, "findings", json_incref(s->findings));
	return o;
}

static void
table_text(const manifest *m, table_summary *s)
{
	char a[LSN_BUFLEN];
	char b[LSN_BUFLEN];
	char t[ISOTIME_BUFLEN];
	char sz[32];
	char rsz[32];
	size_t i;
	json_t *f;
	char *name = pgsql_display_name(m->schema, m->name);
	char *status = xstrdup_printable(m->status);

	/* Names and texts come from storage, which others may write: shown quoted and escaped. */
	printf("\n%s (relid %" PRIu32 "): %s\n", name, m->relid, status);
	free(name);
	free(status);
	if (s->has_window)
	{
		char t2[ISOTIME_BUFLEN];

		printf("  recoverable:  %s (%s) .. %s (%s)\n", lsn_format(s->window_from, a),
			   isotime_format(s->window_from_time, t), lsn_format(s->window_to, b),
			   isotime_format(s->window_to_time, t2));
	}
	else
		printf("  recoverable:  no\n");
	if (m->expired_before)
		printf("  expired:      points before %s (retention, at %s)\n", lsn_format(m->expired_before, a),
			   isotime_format(m->expired_time, t));
	for (int k = 0; k < m->ngaps; k++)
	{
		if (m->gaps[k].to == MANIFEST_GAP_OPEN)
			printf("  not archived: from %s on (the table left the archived set)\n", lsn_format(m->gaps[k].from, a));
		else
			printf("  not archived: %s .. %s (archiving resumed from a new slot)\n", lsn_format(m->gaps[k].from, a),
				   lsn_format(m->gaps[k].to, b));
	}
	for (int k = 0; k < m->nschema_gaps; k++)
	{
		if (m->schema_gaps[k].to == MANIFEST_GAP_OPEN)
			printf("  schema unknown: from %s on, until a new base copy (a schema change not captured)\n",
				   lsn_format(m->schema_gaps[k].from, a));
		else
			printf("  schema unknown: %s .. %s (a schema change at an unknown point; points in between refused)\n",
				   lsn_format(m->schema_gaps[k].from, a), lsn_format(m->schema_gaps[k].to, b));
	}
	column_change_windows(m, column_change_text, NULL);
	printf("  archived to:  %s\n", lsn_format(m->archived_to, a));
	for (int k = 0; k < m->nnames; k++)
	{
		char *nm = pgsql_display_name(m->names[k].schema, m->names[k].name);

		printf("  named:        %s from %s\n", nm, lsn_format(m->names[k].from_lsn, a));
		free(nm);
	}
	if (m->ddl_capture_from)
		printf("  schema changes: captured in the stream from %s\n", lsn_format(m->ddl_capture_from, a));

	if (m->nbases == 0)
		printf("  base copies:  none\n");
	else
		printf("  base copies:  %d\n", m->nbases);
	for (int k = 0; k < m->nbases; k++)
	{
		const manifest_base *bs = &m->bases[k];
		uint64_t size = 0;
		uint64_t raw = 0;

		for (int c = 0; c < bs->nchunks; c++)
		{
			size += bs->chunks[c].size;
			raw += bs->chunks[c].raw_size;
		}
		human_size(size, sz, sizeof(sz));
		human_size(raw, rsz, sizeof(rsz));
		printf("    %-17s  %s  %" PRIu64 " rows, %d chunk(s), %s (raw %s)\n", lsn_format(bs->lsn, a),
			   isotime_format(bs->time, t), bs->rows, bs->nchunks, sz, rsz);
	}
	human_size(s->seg_size, sz, sizeof(sz));
	human_size(s->seg_raw, rsz, sizeof(rsz));
	if (m->nsegments == 0)
		printf("  changes:      none archived\n");
	else
		printf("  changes:      %s .. %s: %d segment(s), %" PRIu64 " record(s), %s (raw %s)\n",
			   lsn_format(s->seg_first, a), lsn_format(s->seg_last_end, b), m->nsegments,
			   s->seg_records, sz, rsz);
	json_array_foreach(s->findings, i, f)
	{
		char *shown = xstrdup_printable(json_string_value(f));

		printf("  finding:      %s\n", shown);
		free(shown);
	}
}

int
cmd_info(bs_config *cfg, int argc, char **argv)
{
	const char *table = config_get(cfg, "table");
	bool as_json = config_get_bool(cfg, "json");
	storage *st = NULL;
	bs_error err;
	archive_head head;
	bool head_exists = false;
	char *head_error = NULL;
	uint32_t *relids = NULL;
	int nrelids = 0;
	json_t *tables = json_array();
	int unreadable = 0;
	char *where = NULL;
	char *shown_where = NULL;		/* where, escaped for text output */
	int exit_code = EXIT_FAILURE_RUNTIME;

	if (argc > 0)
	{
		fprintf(stderr, "backstop info: unexpected argument \"%s\"\n", argv[0]);
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
	if (archive_head_load(st, &head, &head_exists, &err) != BS_OK)
	{
		if (strcmp(err.code, ERRCODE_DATA_CORRUPTED) != 0)
		{
			cli_report_error("info", &err);
			exit_code = cli_exit_code(&err, exit_code);
			goto out;
		}
		head_error = redact_text(err.message);
	}

	if (table || config_get(cfg, "relid"))
	{
		manifest *m = NULL;

		if ((table ? audit_find_table(st, head_exists ? &head : NULL, table, &m, &err)
			 : manifest_find_relid(st, config_get(cfg, "relid"), &m, &err)) != BS_OK)
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
	else if (manifest_list_relids(st, &relids, &nrelids, &err) != BS_OK)
	{
		cli_report_error("info", &err);
		goto out;
	}
	if (nrelids == 0 && !head_exists && head_error == NULL)
	{
		fprintf(stderr, "backstop info: ERROR: no archive at %s\n", shown_where);
		goto out;
	}

	if (!as_json)
	{
		printf("Archive at %s\n", shown_where);
		if (head_error)
		{
			char *shown = xstrdup_printable(head_error);

			printf("  head:         UNREADABLE: %s\n", shown);
			free(shown);
		}
		else if (!head_exists)
			printf("  head:         none yet (the archiver has not completed a seal)\n");
		else
		{
			char a[LSN_BUFLEN];
			char t[ISOTIME_BUFLEN];

			strbuf tf = STRBUF_INIT;
			char *db = pgsql_quote_ident_printable(head.database);
			char *sysid = xstrdup_printable(head.system_identifier);

			printf("  database:     %s (system identifier %s)\n", db, sysid);
			printf("  flushed to:   %s at %s\n", lsn_format(head.flushed_lsn, a),
				   isotime_format(head.time, t));
			strbuf_printf(&tf, "TimeZone=%s, DateStyle='%s', extra_float_digits=%d, IntervalStyle=%s, bytea_output=%s",
						  head.text_format.timezone, head.text_format.datestyle, head.text_format.extra_float_digits,
						  head.text_format.intervalstyle, head.text_format.bytea_output);
			free(db);
			free(sysid);
			db = xstrdup_printable(tf.data);
			printf("  text format:  %s\n", db);
			free(db);
			strbuf_free(&tf);
		}
		printf("  tables:       %d\n", nrelids);
	}

	for (int i = 0; i < nrelids; i++)
	{
		manifest *m = NULL;
		bool exists;
		table_summary s;

		if (manifest_load(st, relids[i], &m, &exists, &err) != BS_OK)
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
			if (as_json)
			{
				json_t *o = json_object();

				json_object_set_new(o, "relid", json_integer(relids[i]));
				json_t *jm = json_string(msg);

				/* A message cut at the error buffer's end may split a UTF-8 sequence. */
				json_object_set_new(o, "error", jm ? jm : json_string("(message is not valid UTF-8)"));
				json_array_append_new(tables, o);
			}
			else
			{
				char *shown = xstrdup_printable(msg);

				printf("\ntable with relid %" PRIu32 ": MANIFEST UNREADABLE: %s\n", relids[i], shown);
				free(shown);
			}
			free(msg);
			continue;
		}
		if (!exists)
			continue;			/* removed since the listing */
		summarize(m, &head, head_exists, &s);
		if (as_json)
			json_array_append_new(tables, table_json(m, &s));
		else
			table_text(m, &s);
		json_decref(s.findings);
		manifest_free(m);
	}

	if (as_json)
	{
		json_t *o = json_object();
		char *text;

		json_object_set_new(o, "storage", json_string(where));
		if (head_exists && head_error == NULL)
		{
			json_t *h = json_object();
			json_t *tf = json_object();

			json_object_set_new(h, "database", json_string(head.database));
			json_object_set_new(h, "system_identifier", json_string(head.system_identifier));
			json_object_set_new(h, "flushed_lsn", jsonout_lsn(head.flushed_lsn));
			json_object_set_new(h, "time", jsonout_time(head.time));
			json_object_set_new(tf, "timezone", json_string(head.text_format.timezone));
			json_object_set_new(tf, "datestyle", json_string(head.text_format.datestyle));
			json_object_set_new(tf, "extra_float_digits", json_integer(head.text_format.extra_float_digits));
			json_object_set_new(tf, "intervalstyle", json_string(head.text_format.intervalstyle));
			json_object_set_new(tf, "bytea_output", json_string(head.text_format.bytea_output));
			json_object_set_new(h, "text_format", tf);
			json_object_set_new(o, "head", h);
		}
		else
			json_object_set_new(o, "head", json_null());
		json_object_set_new(o, "head_error", head_error ? json_string(head_error) : json_null());
		if (json_object_get(o, "head_error") == NULL)
			json_object_set_new(o, "head_error", json_string("(message is not valid UTF-8)"));
		json_object_set_new(o, "tables", tables);
		tables = NULL;
		text = json_dumps(o, JSON_INDENT(2));
		printf("%s\n", text);
		free(text);
		json_decref(o);
	}
	exit_code = (unreadable || head_error) ? EXIT_INTEGRITY : EXIT_OK;

out:
	json_decref(tables);
	free(relids);
	free(where);
	free(shown_where);
	free(head_error);
	archive_head_clear(&head);
	if (st)
		storage_close(st);
	return exit_code;
}
