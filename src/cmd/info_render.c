/* info_render.c — the text and JSON forms of `backstop info`: per table, its window and findings. */
#include "info_render.h"
#include "isotime.h"
#include "jsonout.h"
#include "lsn.h"
#include "quote.h"
#include "strbuf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Gaps as [{from_lsn, to_lsn}], to_lsn null while open. */
static json_t *
gaps_json(const manifest_gap *gaps, int n)
{
	json_t *a = json_array();

	for (int i = 0; i < n; i++)
	{
		json_t *g = json_object();

		json_object_set_new(g, "from_lsn", jsonout_lsn(gaps[i].from));
		json_object_set_new(g, "to_lsn", gaps[i].to == MANIFEST_GAP_OPEN ? json_null() : jsonout_lsn(gaps[i].to));
		json_array_append_new(a, g);
	}
	return a;
}

json_t *
info_render_table_json(const manifest *m, const info_summary *s)
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
	json_object_set_new(o, "not_archived", gaps_json(m->gaps, m->ngaps));
	json_object_set_new(o, "schema_unknown", gaps_json(m->schema_gaps, m->nschema_gaps));
	{
		json_t *gaps = json_array();

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

void
info_render_table_text(const manifest *m, const info_summary *s)
{
	char a[LSN_BUFLEN];
	char b[LSN_BUFLEN];
	char t[ISOTIME_BUFLEN];
	char sz[32];
	char rsz[32];
	size_t i;
	json_t *f;
	char *name = quote_display_name(m->schema, m->name);
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
			printf("  not archived: %s .. %s (archiving resumed with a new base copy)\n", lsn_format(m->gaps[k].from, a),
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
		char *nm = quote_display_name(m->names[k].schema, m->names[k].name);

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

void
info_render_head_text(const char *shown_where, const char *head_error, bool head_exists,
					  const archive_head *head, int ntables)
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
		char *db = quote_ident_printable(head->database);
		char *sysid = xstrdup_printable(head->system_identifier);

		printf("  database:     %s (system identifier %s)\n", db, sysid);
		printf("  flushed to:   %s at %s\n", lsn_format(head->flushed_lsn, a),
			   isotime_format(head->time, t));
		strbuf_printf(&tf, "TimeZone=%s, DateStyle='%s', extra_float_digits=%d, IntervalStyle=%s, bytea_output=%s",
					  head->text_format.timezone, head->text_format.datestyle, head->text_format.extra_float_digits,
					  head->text_format.intervalstyle, head->text_format.bytea_output);
		free(db);
		free(sysid);
		db = xstrdup_printable(tf.data);
		printf("  text format:  %s\n", db);
		free(db);
		strbuf_free(&tf);
	}
	printf("  tables:       %d\n", ntables);
}

void
info_render_unreadable(json_t *tables, uint32_t relid, const char *msg)
{
	if (tables)
	{
		json_t *o = json_object();

		json_object_set_new(o, "relid", json_integer(relid));
		json_t *jm = json_string(msg);

		/* A message cut at the error buffer's end may split a UTF-8 sequence. */
		json_object_set_new(o, "error", jm ? jm : json_string("(message is not valid UTF-8)"));
		json_array_append_new(tables, o);
	}
	else
	{
		char *shown = xstrdup_printable(msg);

		printf("\ntable with relid %" PRIu32 ": MANIFEST UNREADABLE: %s\n", relid, shown);
		free(shown);
	}
}

void
info_render_json(const char *where, const char *head_error, bool head_exists, const archive_head *head,
				 json_t *tables)
{
	json_t *o = json_object();

	json_object_set_new(o, "storage", json_string(where));
	if (head_exists && head_error == NULL)
	{
		json_t *h = json_object();
		json_t *tf = json_object();

		json_object_set_new(h, "database", json_string(head->database));
		json_object_set_new(h, "system_identifier", json_string(head->system_identifier));
		json_object_set_new(h, "flushed_lsn", jsonout_lsn(head->flushed_lsn));
		json_object_set_new(h, "time", jsonout_time(head->time));
		json_object_set_new(tf, "timezone", json_string(head->text_format.timezone));
		json_object_set_new(tf, "datestyle", json_string(head->text_format.datestyle));
		json_object_set_new(tf, "extra_float_digits", json_integer(head->text_format.extra_float_digits));
		json_object_set_new(tf, "intervalstyle", json_string(head->text_format.intervalstyle));
		json_object_set_new(tf, "bytea_output", json_string(head->text_format.bytea_output));
		json_object_set_new(h, "text_format", tf);
		json_object_set_new(o, "head", h);
	}
	else
		json_object_set_new(o, "head", json_null());
	json_object_set_new(o, "head_error", head_error ? json_string(head_error) : json_null());
	if (json_object_get(o, "head_error") == NULL)
		json_object_set_new(o, "head_error", json_string("(message is not valid UTF-8)"));
	json_object_set_new(o, "tables", tables);
	jsonout_print(o, JSON_INDENT(2));
	json_decref(o);
}
