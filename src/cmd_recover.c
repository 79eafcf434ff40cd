/* cmd_recover.c — `backstop recover`: rebuild one table at a point into a new, validated table. */
#include "cmd_recover.h"
#include "audit.h"
#include "cli.h"
#include "lsn.h"
#include "manifest.h"
#include "pgsql.h"
#include "recover_load.h"
#include "recover_plan.h"
#include "replay.h"
#include "sqlcheck.h"
#include "storage.h"
#include "strbuf.h"
#include "validate.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static int
usage(const char *msg)
{
	fprintf(stderr, "backstop recover: ERROR: %s\n"
			"Usage: backstop recover --db CONNINFO [--storage URL] --table S.T (--to-lsn LSN | --to-time TS | --to-xid XID | --latest)\n"
			"Try \"backstop help recover\".\n", msg);
	return EXIT_USAGE;
}

/* Exit code for a failure: 3 when the archive is damaged or validation failed. */
static int
fail(const bs_error *err)
{
	cli_report_error("recover", err);
	return recover_error_is_integrity(err) ? EXIT_INTEGRITY : EXIT_FAILURE_RUNTIME;
}

/* Read the point options; *msg explains a usage error. */
static int
parse_point(const bs_config *cfg, recover_point *pt, const char **msg)
{
	const char *lsn = config_get(cfg, "to_lsn");
	const char *tm = config_get(cfg, "to_time");
	const char *xid = config_get(cfg, "to_xid");
	bool latest = config_get_bool(cfg, "latest");
	int n = (lsn != NULL) + (tm != NULL) + (xid != NULL) + latest;

	memset(pt, 0, sizeof(*pt));
	pt->exclusive = config_get_bool(cfg, "exclusive");
	if (n != 1)
	{
		*msg = "give exactly one of --to-lsn, --to-time, --to-xid and --latest";
		return BS_ERR;
	}
	if (lsn)
	{
		pt->kind = RECOVER_POINT_LSN;
		if (lsn_parse(lsn, &pt->lsn) != BS_OK)
		{
			*msg = "--to-lsn must be an LSN such as 0/1A2B3C4";
			return BS_ERR;
		}
	}
	else if (tm)
	{
		pt->kind = RECOVER_POINT_TIME;
		if (recover_parse_time(tm, &pt->time) != BS_OK)
		{
			*msg = "--to-time must be a time such as \"2026-11-26 16:00:00.123456+00\" (UTC when no offset is given)";
			return BS_ERR;
		}
	}
	else if (xid)
	{
		char *end;
		unsigned long long v;

		pt->kind = RECOVER_POINT_XID;
		v = strtoull(xid, &end, 10);
		if (*xid < '0' || *xid > '9' || *end != '\0' || v > UINT32_MAX)
		{
			*msg = "--to-xid must be a transaction id (a decimal number)";
			return BS_ERR;
		}
		pt->xid = (uint32_t) v;
	}
	else
	{
		pt->kind = RECOVER_POINT_LATEST;
		if (pt->exclusive)
		{
			*msg = "--exclusive does not apply to --latest";
			return BS_ERR;
		}
	}
	return BS_OK;
}

typedef struct progress_state
{
	bool tty;
	double last;
	double start;
} progress_state;

static void
progress(void *ctx, const recover_plan *plan, uint64_t applied)
{
	progress_state *p = ctx;
	double t = now_seconds();

	if (!p->tty || t - p->last < 0.2)
		return;
	p->last = t;
	fprintf(stderr, "\rdownloaded %.1f of %.1f MB, applied %llu changes", (double) plan->downloaded / 1e6,
			(double) plan->download_bytes / 1e6, (unsigned long long) applied);
	/* Downloading and parsing dominate: estimate from the share of bytes fetched. */
	if (plan->downloaded > 0 && plan->downloaded < plan->download_bytes && t - p->start > 1)
		fprintf(stderr, ", about %.0f s left", (t - p->start) *
				((double) plan->download_bytes / (double) plan->downloaded - 1));
	fprintf(stderr, "   ");
}

static void
progress_done(progress_state *p)
{
	if (p->tty && p->last > 0)
		fprintf(stderr, "\r%60s\r", "");
}

static const char *
point_text(const recover_point *pt, char *buf, size_t size)
{
	char l[LSN_BUFLEN],
		t[MANIFEST_TIME_BUFLEN];
	const char *incl = pt->exclusive ? "before" : "through";

	switch (pt->kind)
	{
		case RECOVER_POINT_LSN:
			snprintf(buf, size, "commits %s LSN %s", pt->exclusive ? "before" : "at or before", lsn_format(pt->lsn, l));
			break;
		case RECOVER_POINT_TIME:
			snprintf(buf, size, "commits %s %s", pt->exclusive ? "before" : "at or before",
					 manifest_format_time(pt->time, t));
			break;
		case RECOVER_POINT_XID:
			snprintf(buf, size, "commits %s transaction %u", incl, pt->xid);
			break;
		case RECOVER_POINT_LATEST:
			snprintf(buf, size, "everything archived");
			break;
	}
	return buf;
}

/* Comma-separated quoted column list with a prefix ("r." or ""). */
static void
column_items(strbuf *sb, const manifest_layout *l, int keys, const char *sep, const char *fmt)
{
	/* keys: -1 every column, 1 the key columns, 0 the others; fmt names the column as %1$s. */
	for (int i = 0, k = 0; i < l->ncols; i++)
	{
		char *q;

		if (keys >= 0 && (int) l->columns[i].key != keys)
			continue;
		q = pgsql_quote_ident_printable(l->columns[i].name);
		if (k++)
			strbuf_append_str(sb, sep);
		strbuf_printf(sb, fmt, q);
		free(q);
	}
}

typedef struct copyback
{
	char *what[3];
	char *sql[3];
	int n;
} copyback;

static void
copyback_add(copyback *cb, const char *what, strbuf *sql)
{
	cb->what[cb->n] = xstrdup(what);
	cb->sql[cb->n] = strbuf_detach(sql, NULL);
	cb->n++;
}

static void
copyback_free(copyback *cb)
{
	for (int i = 0; i < cb->n; i++)
	{
		free(cb->what[i]);
		free(cb->sql[i]);
	}
}

/* The SQL to bring rows back into the source table, printed and never executed; names
 * holding control characters are written U&"..." so that every statement reads as it runs. */
static void
build_copyback(const manifest *m, const manifest_layout *l, const char *target_schema, const char *target_name,
			   bool source_gone, copyback *cb)
{
	char *orig = pgsql_qualified_name_printable(m->schema, m->name);
	char *tgt = pgsql_qualified_name_printable(target_schema, target_name);
	strbuf sql = STRBUF_INIT;
	int nkey = 0;

	memset(cb, 0, sizeof(*cb));
	for (int i = 0; i < l->ncols; i++)
		nkey += l->columns[i].key && (l->replident == 'd' || l->replident == 'i');
	if (source_gone)
	{
		char *qn = pgsql_quote_ident_printable(m->name);

		if (strcmp(target_schema, m->schema) != 0)
		{
			char *qs = pgsql_quote_ident_printable(m->schema);

			strbuf_printf(&sql, "ALTER TABLE %s SET SCHEMA %s;\n", tgt, qs);
			free(tgt);
			tgt = pgsql_qualified_name_printable(m->schema, target_name);
			free(qs);
		}
		strbuf_printf(&sql, "ALTER TABLE %s RENAME TO %s;", tgt, qn);
		free(qn);
		copyback_add(cb, "the table was dropped: give the recovered table its name back", &sql);
		goto done;
	}
	/* Rows deleted since the point. */
	strbuf_printf(&sql, "INSERT INTO %s (", orig);
	column_items(&sql, l, -1, ", ", "%1$s");
	strbuf_append_str(&sql, ")\nSELECT ");
	column_items(&sql, l, -1, ", ", "r.%1$s");
	strbuf_printf(&sql, " FROM %s r\n", tgt);
	if (nkey > 0)
	{
		strbuf_printf(&sql, "WHERE NOT EXISTS (SELECT 1 FROM %s o WHERE ", orig);
		column_items(&sql, l, 1, " AND ", "o.%1$s = r.%1$s");
		strbuf_append_str(&sql, ");");
	}
	else
	{
		strbuf_append_str(&sql, "EXCEPT ALL SELECT ");
		column_items(&sql, l, -1, ", ", "%1$s");
		strbuf_printf(&sql, " FROM %s;", orig);
	}
	copyback_add(cb, "rows were deleted: insert the recovered rows that are missing from the table", &sql);
	/* Rows changed since the point (needs a key to pair rows). */
	if (nkey > 0 && nkey < l->ncols)
	{
		strbuf_printf(&sql, "UPDATE %s o SET ", orig);
		column_items(&sql, l, 0, ", ", "%1$s = r.%1$s");
		strbuf_printf(&sql, "\nFROM %s r WHERE ", tgt);
		column_items(&sql, l, 1, " AND ", "o.%1$s = r.%1$s");
		strbuf_append_str(&sql, "\n  AND (");
		column_items(&sql, l, 0, ", ", "o.%1$s");
		strbuf_append_str(&sql, ") IS DISTINCT FROM (");
		column_items(&sql, l, 0, ", ", "r.%1$s");
		strbuf_append_str(&sql, ");");
		copyback_add(cb, "rows were changed: set them back to their recovered values, matched by key", &sql);
	}
done:
	strbuf_free(&sql);
	free(orig);
	free(tgt);
}

/* Target name: --into S.NAME, or <table>_recovered in the source schema. */
static int
target_name(const bs_config *cfg, const manifest *m, char **schema, char **name, bs_error *err)
{
	const char *into = config_get(cfg, "into");

	if (into)
		return manifest_split_name(into, schema, name, err);
	{
		strbuf sb = STRBUF_INIT;
		size_t n = strlen(m->name);

		/* Keep within NAMEDATALEN - 1 bytes, not splitting a UTF-8 character. */
		while (n + strlen("_recovered") > VALIDATE_NAME_MAX && n > 0)
		{
			n--;
			while (n > 0 && ((unsigned char) m->name[n] & 0xC0) == 0x80)
				n--;
		}
		strbuf_append(&sb, m->name, n);
		strbuf_append_str(&sb, "_recovered");
		*schema = xstrdup(m->schema);
		*name = strbuf_detach(&sb, NULL);
	}
	return BS_OK;
}

/* The rows of a streaming recovery, produced while recover_load's COPY runs. */
typedef struct stream_source
{
	recover_plan *plan;
	storage *st;
	replay_state *rs;
	uint32_t layout;
	progress_state *prog;
} stream_source;

static int
stream_rows(void *ctx, replay_copy_cb sink, void *sinkctx, replay_checksum *sum, bs_error *err)
{
	stream_source *s = ctx;

	return recover_plan_stream(s->plan, s->st, s->rs, s->layout, sink, sinkctx, sum, progress, s->prog, err);
}

int
cmd_recover(bs_config *cfg, int argc, char **argv)
{
	const char *table = config_get(cfg, "table");
	const char *db = config_get(cfg, "db");
	const char *target_db = config_get(cfg, "target_db");
	bool dry_run = config_get_bool(cfg, "dry_run");
	bool json = config_get_bool(cfg, "json");
	recover_point pt;
	const char *msg = NULL;
	bs_error err;
	storage *st = NULL;
	manifest *m = NULL;
	archive_head head;
	bool head_exists = false;
	recover_plan *plan = NULL;
	replay_state *rs = NULL;
	PGconn *conn = NULL;
	char *tschema = NULL,
			   *tname = NULL;
	char *src_shown = NULL,		/* names for human output: quoted, escaped */
			   *target_shown = NULL,
			   *status_shown = NULL;
	recover_load_result lres;
	progress_state prog = {isatty(2) == 1 && !json, 0, now_seconds()};
	int rc = EXIT_FAILURE_RUNTIME;
	double t_start = now_seconds(),
		t_fetch = 0,
		t_load = 0;
	const manifest_layout *layout;
	bool streaming = false;
	uint32_t stream_layout = 0;
	stream_source src;
	char buf[256],
		l1[LSN_BUFLEN],
		l2[LSN_BUFLEN],
		tm[MANIFEST_TIME_BUFLEN];

	(void) argv;
	error_clear(&err);
	memset(&lres, 0, sizeof(lres));
	memset(&head, 0, sizeof(head));
	if (argc > 0)
		return usage("recover takes no positional arguments");
	if (table == NULL)
		return usage("--table is required");
	if (parse_point(cfg, &pt, &msg) != BS_OK)
		return usage(msg);
	if (!dry_run && db == NULL && target_db == NULL)
		return usage("--db (or --target-db) is required unless --dry-run");

	if (storage_open(config_get(cfg, "storage"), cfg, &st, &err) != BS_OK)
		return fail(&err);
	if (archive_head_load(st, &head, &head_exists, &err) != BS_OK ||
		audit_find_table(st, head_exists ? &head : NULL, table, &m, &err) != BS_OK)
	{
		rc = fail(&err);
		goto done;
	}
	/* Definitions from storage become SQL: refuse any that is not exactly one fragment of
	 * its kind before anything is sent (the same check as verify's). */
	if (sqlcheck_manifest_first(m, &err) != BS_OK)
	{
		rc = fail(&err);
		goto done;
	}
	if (strcmp(m->status, "skipped") == 0)
	{
		error_set(&err, ERRCODE_UNDEFINED_TABLE, "table %s.%s is not archived (skipped: %s)", m->schema, m->name,
				  m->finding ? m->finding : "no reason recorded");
		rc = fail(&err);
		goto done;
	}
	if (target_name(cfg, m, &tschema, &tname, &err) != BS_OK)
	{
		rc = usage(err.message);
		goto done;
	}
	if (strlen(tschema) > VALIDATE_NAME_MAX || strlen(tname) > VALIDATE_NAME_MAX)
	{
		/* --into is checked by validate_config(); the derived name is shortened. */
		rc = usage("the target's name is longer than 63 bytes");
		goto done;
	}
	src_shown = pgsql_display_name(m->schema, m->name);
	target_shown = pgsql_display_name(tschema, tname);
	status_shown = xstrdup_printable(m->status);
	if (target_db == NULL && strcmp(tschema, m->schema) == 0 && strcmp(tname, m->name) == 0)
	{
		rc = usage("the target must not be the source table itself: choose another name with --into");
		goto done;
	}
	if (recover_plan_build(st, m, head_exists ? &head : NULL, &pt, &plan, &err) != BS_OK)
	{
		rc = fail(&err);
		goto done;
	}
	if (replay_new(m->nlayouts, m->layouts, &rs, &err) != BS_OK)
	{
		rc = fail(&err);
		goto done;
	}
	/*
	 * Streaming (when no change since the base alters the columns or truncates): the
	 * segments are fetched and verified now, the base chunks while their untouched rows are
	 * being loaded, inside the transaction that any failure rolls back.  Otherwise the whole
	 * table is rebuilt in memory here, before anything is written.
	 */
	if (!dry_run)
	{
		if (recover_plan_prepare_stream(plan, st, rs, &streaming, &stream_layout, &err) != BS_OK)
		{
			rc = fail(&err);
			goto done;
		}
		if (!streaming)
		{
			replay_free(rs);
			rs = NULL;
			if (replay_new(m->nlayouts, m->layouts, &rs, &err) != BS_OK)
			{
				rc = fail(&err);
				goto done;
			}
		}
	}
	if (streaming)
		layout = manifest_layout_by_id(m, stream_layout);
	else
	{
		if (recover_plan_run(plan, st, rs, 0, NULL, NULL, progress, &prog, &err) != BS_OK)
		{
			progress_done(&prog);
			rc = fail(&err);
			goto done;
		}
		progress_done(&prog);
		layout = manifest_layout_by_id(m, replay_current_layout(rs));
	}
	if (layout == NULL)
	{
		error_set(&err, ERRCODE_DATA_CORRUPTED, "the replayed layout is not in the manifest of %s.%s", m->schema,
				  m->name);
		rc = fail(&err);
		goto done;
	}
	t_fetch = now_seconds() - t_start;

	if (dry_run)
	{
		if (json)
		{
			json_t *o = json_object();
			json_t *segs = json_array();
			char *s;

			for (int i = 0; i < plan->nsegs; i++)
				json_array_append_new(segs, json_string(m->segments[plan->segs[i]].key));
			json_object_set_new(o, "dry_run", json_true());
			json_object_set_new(o, "table", json_sprintf("%s.%s", m->schema, m->name));
			json_object_set_new(o, "point", json_string(point_text(&pt, buf, sizeof(buf))));
			json_object_set_new(o, "base_lsn", manifest_json_lsn(plan->base->lsn));
			json_object_set_new(o, "base_rows", json_integer((json_int_t) plan->base->rows));
			json_object_set_new(o, "segments", segs);
			json_object_set_new(o, "transactions", json_integer((json_int_t) plan->transactions));
			json_object_set_new(o, "row_operations", json_integer((json_int_t) plan->operations));
			json_object_set_new(o, "expected_rows", json_integer((json_int_t) replay_row_count(rs)));
			json_object_set_new(o, "download_bytes", json_integer((json_int_t) plan->download_bytes));
			json_object_set_new(o, "last_commit_lsn",
								plan->last_commit_lsn ? manifest_json_lsn(plan->last_commit_lsn) : json_null());
			json_object_set_new(o, "target", json_sprintf("%s.%s", tschema, tname));
			s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
			printf("%s\n", s);
			free(s);
			json_decref(o);
		}
		else
		{
			printf("Dry run: nothing written.\n");
			printf("Table:           %s (relid %u, %s)\n", src_shown, m->relid, status_shown);
			printf("Point:           %s\n", point_text(&pt, buf, sizeof(buf)));
			printf("Base copy:       LSN %s, taken %s, %llu rows in %d chunk(s)\n", lsn_format(plan->base->lsn, l1),
				   manifest_format_time(plan->base->time, tm), (unsigned long long) plan->base->rows,
				   plan->base->nchunks);
			printf("Segments:        %d\n", plan->nsegs);
			for (int i = 0; i < plan->nsegs; i++)
			{
				char *key = xstrdup_printable(m->segments[plan->segs[i]].key);

				printf("                 %s\n", key);
				free(key);
			}
			printf("Transactions:    %llu (%llu row operations)\n", (unsigned long long) plan->transactions,
				   (unsigned long long) plan->operations);
			if (plan->last_commit_lsn)
				printf("Last applied:    commit LSN %s, xid %u, %s\n", lsn_format(plan->last_commit_lsn, l2),
					   plan->last_xid, manifest_format_time(plan->last_commit_time, tm));
			printf("Expected rows:   %llu\n", (unsigned long long) replay_row_count(rs));
			printf("Download:        %llu bytes\n", (unsigned long long) plan->download_bytes);
			printf("Target:          %s\n", target_shown);
		}
		rc = EXIT_OK;
		goto done;
	}

	if (config_get_bool(cfg, "replace") && !config_get_bool(cfg, "yes") && isatty(0) && isatty(2))
	{
		char answer[16];

		fprintf(stderr, "Replace %s if it is an earlier Backstop recovery? [y/N] ", target_shown);
		if (fgets(answer, sizeof(answer), stdin) == NULL || (answer[0] != 'y' && answer[0] != 'Y'))
		{
			fprintf(stderr, "backstop recover: nothing done\n");
			rc = EXIT_FAILURE_RUNTIME;
			goto done;
		}
	}
	if (pgsql_connect(target_db ? target_db : db, false, "backstop recover", &conn, &err) != BS_OK)
	{
		rc = fail(&err);
		goto done;
	}
	{
		recover_load_options o;
		strbuf comment = STRBUF_INIT;
		const manifest_base *b = plan->base;

		strbuf_printf(&comment, RECOVER_COMMENT_PREFIX "%s.%s (relid %u) at %s", m->schema, m->name, m->relid,
					  point_text(&pt, buf, sizeof(buf)));
		if (plan->last_commit_lsn)
			strbuf_printf(&comment, "; last transaction %u committed at LSN %s", plan->last_xid,
						  lsn_format(plan->last_commit_lsn, l1));
		strbuf_printf(&comment, "; base LSN %s", lsn_format(b->lsn, l2));
		memset(&o, 0, sizeof(o));
		o.schema = tschema;
		o.name = tname;
		o.source_schema = m->schema;
		o.source_name = m->name;
		o.layout = layout;
		o.definition = b->definition;
		o.comment = comment.data;
		o.replace = config_get_bool(cfg, "replace");
		o.no_indexes = config_get_bool(cfg, "no_indexes");
		if (streaming)
		{
			src = (stream_source) {plan, st, rs, stream_layout, &prog};
			o.source = stream_rows;
			o.source_ctx = &src;
		}
		t_load = now_seconds();
		if (recover_load(conn, rs, &o, &lres, &err) != BS_OK)
		{
			progress_done(&prog);
			strbuf_free(&comment);
			rc = fail(&err);
			goto done;
		}
		progress_done(&prog);
		t_load = now_seconds() - t_load;
		strbuf_free(&comment);
	}

	{
		copyback cb;
		char ours[REPLAY_CHECKSUM_BUFLEN];

		replay_checksum_format(&lres.ours, ours);
		/* Dropped: the archive says so, or (same database) the name no longer exists, e.g.
		 * dropped after the archiver last looked. */
		bool gone = strcmp(m->status, "dropped") == 0;

		if (!gone && conn && target_db == NULL)
		{
			char *q = pgsql_qualified_name(m->schema, m->name);
			const char *params[1] = {q};
			PGresult *res;
			bs_error qerr;

			error_clear(&qerr);
			if (pgsql_query_params(conn, "SELECT to_regclass($1) IS NULL", 1, params, &res, &qerr) == BS_OK)
			{
				gone = PQgetvalue(res, 0, 0)[0] == 't';
				PQclear(res);
			}
			free(q);
		}
		build_copyback(m, layout, tschema, tname, gone, &cb);
		if (json)
		{
			json_t *o = json_object();
			json_t *cba = json_array();
			json_t *warn = json_array();
			char *s;

			for (int i = 0; i < cb.n; i++)
				json_array_append_new(cba, json_pack("{s:s,s:s}", "purpose", cb.what[i], "sql", cb.sql[i]));
			for (char *p = lres.warnings.data, *nl; p && *p; p = nl + 1)
			{
				nl = strchr(p, '\n');
				json_array_append_new(warn, json_stringn(p, (size_t) (nl - p)));
			}
			json_object_set_new(o, "table", json_sprintf("%s.%s", m->schema, m->name));
			json_object_set_new(o, "target", json_sprintf("%s.%s", tschema, tname));
			json_object_set_new(o, "point", json_string(point_text(&pt, buf, sizeof(buf))));
			json_object_set_new(o, "base_lsn", manifest_json_lsn(plan->base->lsn));
			json_object_set_new(o, "last_commit_lsn",
								plan->last_commit_lsn ? manifest_json_lsn(plan->last_commit_lsn) : json_null());
			json_object_set_new(o, "last_xid", plan->last_commit_lsn ? json_integer(plan->last_xid) : json_null());
			json_object_set_new(o, "last_commit_time",
								plan->last_commit_lsn ? manifest_json_time(plan->last_commit_time) : json_null());
			json_object_set_new(o, "transactions", json_integer((json_int_t) plan->transactions));
			json_object_set_new(o, "row_operations", json_integer((json_int_t) plan->operations));
			json_object_set_new(o, "method", json_string(streaming ? "streamed" : "in-memory"));
			json_object_set_new(o, "rows", json_integer((json_int_t) lres.ours.rows));
			json_object_set_new(o, "checksum", json_string(ours));
			json_object_set_new(o, "postgres_rows", json_integer((json_int_t) lres.pg_rows));
			json_object_set_new(o, "postgres_checksum", json_string(lres.pg_sum));
			json_object_set_new(o, "indexes_and_constraints", json_integer(lres.nindexes));
			json_object_set_new(o, "download_bytes", json_integer((json_int_t) plan->downloaded));
			json_object_set_new(o, "seconds", json_pack("{s:f,s:f,s:f,s:f,s:f}", "fetch_and_replay", t_fetch,
														"copy", lres.copy_seconds, "validate", lres.validate_seconds,
														"indexes", lres.index_seconds, "total", now_seconds() - t_start));
			json_object_set_new(o, "warnings", warn);
			json_object_set_new(o, "copy_back", cba);
			s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
			printf("%s\n", s);
			free(s);
			json_decref(o);
		}
		else
		{
			printf("Recovered %s into %s\n", src_shown, target_shown);
			printf("Point:        %s\n", point_text(&pt, buf, sizeof(buf)));
			if (plan->last_commit_lsn)
				printf("Last applied: commit LSN %s, xid %u, %s\n", lsn_format(plan->last_commit_lsn, l1),
					   plan->last_xid, manifest_format_time(plan->last_commit_time, tm));
			printf("Base copy:    LSN %s (%llu rows), then %llu transactions (%llu row operations) from %d segment(s)\n",
				   lsn_format(plan->base->lsn, l2), (unsigned long long) plan->base->rows,
				   (unsigned long long) plan->transactions, (unsigned long long) plan->operations, plan->nsegs);
			printf("Method:       %s\n", streaming ? "streamed (rows no change touched went from the base copy straight to COPY)"
				   : "rebuilt in memory, then loaded");
			printf("Rows:         %llu (PostgreSQL counted %llu)\n", (unsigned long long) lres.ours.rows,
				   (unsigned long long) lres.pg_rows);
			printf("Checksum:     %s (Backstop) = %s (PostgreSQL)\n", ours, lres.pg_sum);
			printf("Timings:      fetch+replay %.2fs, copy %.2fs, validate %.2fs, indexes %.2fs, total %.2fs\n",
				   t_fetch, lres.copy_seconds, lres.validate_seconds, lres.index_seconds, now_seconds() - t_start);
			printf("Indexes and constraints recreated: %d\n", lres.nindexes);
			if (lres.warnings.len)
			{
				/* One line per warning; each holds names and definitions from storage. */
				printf("Warnings:\n");
				for (char *p = lres.warnings.data, *nl; p && *p; p = nl + 1)
				{
					char *line,
							   *shown;

					nl = strchr(p, '\n');
					line = nl ? xstrndup(p, (size_t) (nl - p)) : xstrdup(p);
					shown = xstrdup_printable(line);
					printf("%s\n", shown);
					free(shown);
					free(line);
					if (nl == NULL)
						break;
				}
			}
			printf("\nCopy-back SQL (not executed; review, then run it yourself):\n");
			for (int i = 0; i < cb.n; i++)
				printf("\n-- %s\n%s\n", cb.what[i], cb.sql[i]);
		}
		copyback_free(&cb);
	}
	(void) t_load;
	rc = EXIT_OK;
done:
	recover_load_result_free(&lres);
	if (conn)
		PQfinish(conn);
	replay_free(rs);
	recover_plan_free(plan);
	free(tschema);
	free(tname);
	free(src_shown);
	free(target_shown);
	free(status_shown);
	if (head_exists)
		archive_head_clear(&head);
	manifest_free(m);
	storage_close(st);
	return rc;
}
