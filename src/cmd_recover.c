/* cmd_recover.c — `backstop recover`: rebuild one table at a point into a new, validated table. */
#include "cmd_recover.h"
#include "copyback.h"
#include "redact.h"
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
			"Usage: backstop recover --db CONNINFO [--storage URL] (--table S.T | --relid OID) (--to-lsn LSN | --to-time TS | --to-xid XID | --latest)\n"
			"Try \"backstop help recover\".\n", msg);
	return EXIT_USAGE;
}

/* Exit code for a failure: 3 when the archive is damaged or validation failed. */
static int
fail(const bs_error *err)
{
	cli_report_error("recover", err);
	return cli_exit_code(err, recover_error_is_integrity(err) ? EXIT_INTEGRITY : EXIT_FAILURE_RUNTIME);
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
		recover_time rt;

		pt->kind = RECOVER_POINT_TIME;
		if (recover_parse_time_at(tm, recover_now(), &rt) != BS_OK)
		{
			*msg = "--to-time must be a time such as \"2026-11-26 16:00:00.123456+00\" (your time zone when no "
				"offset is given), \"20 min ago\" or \"now\"";
			return BS_ERR;
		}
		pt->time = rt.time;
		pt->second_precision = rt.second_precision;
		snprintf(pt->zone, sizeof(pt->zone), "%s", rt.zone);
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
			{
				char lt[RECOVER_TIME_BUFLEN];

				snprintf(buf, size, "commits %s %s (%s; time read in %s)", pt->exclusive ? "before" : "at or before",
						 recover_format_local_time(pt->time, lt), manifest_format_time(pt->time, t), pt->zone);
				break;
			}
		case RECOVER_POINT_XID:
			snprintf(buf, size, "commits %s transaction %u", incl, pt->xid);
			break;
		case RECOVER_POINT_LATEST:
			snprintf(buf, size, "everything archived");
			break;
	}
	return buf;
}

/* --apply: ask (unless --yes), run the copy-back in one transaction and validate it. */
static int
apply_copyback(const bs_config *cfg, PGconn *conn, const copyback_input *ci, const copyback *cb, const manifest *m,
			   const char *target_shown, bool json, bs_error *err)
{
	char *orig = pgsql_display_name(m->schema, m->name);

	fflush(stdout);
	if (!config_get_bool(cfg, "yes"))
	{
		char answer[16];

		fprintf(stderr, "Apply the copy-back above to %s? [y/N] ", orig);
		if (fgets(answer, sizeof(answer), stdin) == NULL || (answer[0] != 'y' && answer[0] != 'Y'))
		{
			fprintf(stderr, "backstop recover: copy-back not applied; the recovered table %s stays\n", target_shown);
			free(orig);
			return EXIT_FAILURE_RUNTIME;
		}
	}
	if (copyback_apply(conn, ci, cb, err) != BS_OK)
	{
		free(orig);
		return fail(err);
	}
	if (!json)
		printf("%sCopy-back applied to %s and validated (%s).\n", config_get_bool(cfg, "yes") ? "" : "\n", orig,
			   cb->kind == COPYBACK_RENAME ? "the table's rows and checksum are the recovery's" :
			   cb->kind == COPYBACK_ROWS ? "every recovered row is in the table" :
			   "the named columns hold the recovered values for every matched key");
	free(orig);
	return EXIT_OK;
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

/* Where a point lies in a table's own history (a --to-time or --to-xid placed by its records):
 * just before the point's bound, UINT64_MAX past its last record, 0 when this table refuses it. */
static uint64_t
point_position(storage *st, manifest *m, const archive_head *head, const recover_point *pt)
{
	recover_plan *plan = NULL;
	bs_error perr;
	uint64_t at;

	error_clear(&perr);
	if (recover_plan_build(st, m, head, pt, &plan, &perr) != BS_OK)
		return 0;
	at = plan->bound == UINT64_MAX ? UINT64_MAX : plan->bound - 1;
	recover_plan_free(plan);
	return at;
}

/* Did m carry schema.name at the position? */
static bool
named_at(const manifest *m, uint64_t at, const char *schema, const char *name)
{
	const char *s,
			   *n;

	manifest_name_at(m, at, &s, &n);
	return strcmp(s, schema) == 0 && strcmp(n, name) == 0;
}

/*
 * --table with --to-time or --to-xid: the lookup by name prefers the table that has the name now,
 * but only a table's own records place such a point, so the position of the point is known only
 * once a table is chosen.  When the table found did not carry the name there (or cannot have the
 * point at all), another table that once carried the name and carried it at the point, as its own
 * records place it, is the one meant: a name given to a new table later must not hide the table
 * renamed away from it.  Otherwise the table found stays, and its plan says what it can recover.
 */
static int
resolve_name_at_point(storage *st, const archive_head *head, const char *table, const recover_point *pt,
					  manifest **m, bs_error *err)
{
	char *schema = NULL,
		*name = NULL;
	uint32_t *relids = NULL;
	int n = 0;
	uint64_t at;
	manifest *best = NULL;
	int rc = BS_OK;

	if (pt->kind != RECOVER_POINT_TIME && pt->kind != RECOVER_POINT_XID)
		return BS_OK;
	if (manifest_split_name(table, &schema, &name, err) != BS_OK)
		return BS_ERR;
	at = point_position(st, *m, head, pt);
	if (at != 0 && named_at(*m, at, schema, name))
		goto out;				/* the table found carried the name at the point */
	if (manifest_list_relids(st, &relids, &n, err) != BS_OK)
	{
		rc = BS_ERR;
		goto out;
	}
	for (int i = 0; i < n; i++)
	{
		manifest *o = NULL;
		bool exists = false;
		bs_error lerr;
		uint64_t own;

		error_clear(&lerr);
		if (relids[i] == (*m)->relid || manifest_load(st, relids[i], &o, &exists, &lerr) != BS_OK || !exists)
			continue;			/* an unreadable one was reported by the lookup */
		if (manifest_had_name(o, schema, name) && (own = point_position(st, o, head, pt)) != 0 &&
			named_at(o, own, schema, name) && (best == NULL || o->archived_to > best->archived_to))
		{
			manifest_free(best);
			best = o;
			continue;
		}
		manifest_free(o);
	}
	if (best)
	{
		manifest_free(*m);
		*m = best;
	}
out:
	free(relids);
	free(schema);
	free(name);
	return rc;
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
	bool apply = config_get_bool(cfg, "apply");
	copyback cb;
	copyback_input ci;
	char **cb_columns = NULL;
	int cb_ncolumns = 0;
	strbuf latest_cmd = STRBUF_INIT;

	(void) argv;
	error_clear(&err);
	memset(&lres, 0, sizeof(lres));
	memset(&head, 0, sizeof(head));
	memset(&cb, 0, sizeof(cb));
	memset(&ci, 0, sizeof(ci));
	if (argc > 0)
		return usage("recover takes no positional arguments");
	if ((table == NULL) == (config_get(cfg, "relid") == NULL))
		return usage("one of --table or --relid is required");
	if (parse_point(cfg, &pt, &msg) != BS_OK)
		return usage(msg);
	if (!dry_run && db == NULL && target_db == NULL)
		return usage("--db (or --target-db) is required unless --dry-run");
	/* --apply changes the live table: refused up front where it cannot be done or asked. */
	if (apply && (dry_run || target_db))
		return usage("--apply runs the copy-back in the source database: not with --dry-run or --target-db");
	if (apply && !config_get_bool(cfg, "yes") && (json || !(isatty(0) && isatty(2))))
		return usage("--apply asks before it changes the table; without a terminal, add --yes");
	if (config_get(cfg, "copy_back_columns") &&
		copyback_parse_columns(config_get(cfg, "copy_back_columns"), &cb_columns, &cb_ncolumns, &err) != BS_OK)
	{
		copyback_free_columns(cb_columns, cb_ncolumns);
		return usage(err.message);
	}

	if ((rc = cli_open_storage("recover", cfg, &st)) != EXIT_OK)
		return rc;
	if (archive_head_load(st, &head, &head_exists, &err) != BS_OK ||
		(table ? audit_find_table_at(st, head_exists ? &head : NULL, table,
									 pt.kind == RECOVER_POINT_LSN ? pt.lsn : UINT64_MAX, &m, &err)
		 : manifest_find_relid(st, config_get(cfg, "relid"), &m, &err)) != BS_OK)
	{
		rc = strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0 ? usage(err.message) : fail(&err);
		goto done;
	}
	if (table && resolve_name_at_point(st, head_exists ? &head : NULL, table, &pt, &m, &err) != BS_OK)
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
	/* "16:00:05" means the whole second to many: say when commits fall inside it. */
	if (pt.kind == RECOVER_POINT_TIME && pt.second_precision && plan->next_commit_lsn &&
		plan->next_commit_time < pt.time + 1000000)
	{
		char l[LSN_BUFLEN],
			lt[RECOVER_TIME_BUFLEN];

		fprintf(stderr, "backstop recover: WARNING: --to-time has whole seconds only, and transaction %u committed "
				"inside that second (at %s, LSN %s), after the point: it is not recovered; give fractional "
				"seconds or use --to-xid to include it\n", plan->next_xid,
				recover_format_local_time(plan->next_commit_time, lt), lsn_format(plan->next_commit_lsn, l));
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
		layout = manifest_layout_by_id(m, recover_plan_point_layout(plan, replay_current_layout(rs)));
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
	/* The copy-back is chosen before anything is written, from the live database (what holds
	 * the table's name now) and the point (what the archive holds after it). */
	ci.m = m;
	ci.layout = layout;
	ci.definition = plan->base->definition;
	ci.target_schema = tschema;
	ci.target_name = tname;
	ci.columns = cb_columns;
	ci.ncolumns = cb_ncolumns;
	if (target_db == NULL && copyback_live_state(conn, m, &ci.live, &ci.live_relid, &err) != BS_OK)
	{
		rc = fail(&err);
		goto done;
	}
	copyback_later_changes(m, plan->last_end_lsn, plan->base->lsn, &ci.later);
	{
		char *qt = pgsql_qualified_name_printable(m->schema, m->name);
		char *qstorage = redact_text(config_get(cfg, "storage"));
		char *lit = pgsql_quote_literal(qstorage);

		strbuf_printf(&latest_cmd, "backstop recover --storage %s --table %s --latest", lit, qt);
		/* Into the same <table>_recovered, replacing this recovery. */
		if (config_get(cfg, "into") == NULL)
			strbuf_append_str(&latest_cmd, " --replace");
		free(qt);
		free(qstorage);
		free(lit);
		ci.latest_command = latest_cmd.data;
	}
	if (copyback_build(&ci, &cb, &err) != BS_OK)
	{
		rc = usage(err.message);
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

	/* With --yes the copy-back runs first, so the result printed says whether it was applied. */
	if (apply && config_get_bool(cfg, "yes") &&
		(rc = apply_copyback(cfg, conn, &ci, &cb, m, target_shown, true, &err)) != EXIT_OK)
		goto done;
	{
		char ours[REPLAY_CHECKSUM_BUFLEN];

		replay_checksum_format(&lres.ours, ours);
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
			json_object_set_new(o, "schema_changes_captured", json_boolean(!recover_plan_ddl_uncaptured(plan)));
			json_object_set_new(o, "rows", json_integer((json_int_t) lres.ours.rows));
			json_object_set_new(o, "checksum", json_string(ours));
			json_object_set_new(o, "postgres_rows", json_integer((json_int_t) lres.pg_rows));
			json_object_set_new(o, "postgres_checksum", json_string(lres.pg_sum));
			json_object_set_new(o, "indexes_and_constraints", json_integer(lres.nindexes));
			json_object_set_new(o, "sequences", json_integer(lres.nsequences));
			json_object_set_new(o, "generated_columns", json_integer(lres.ngenerated));
			json_object_set_new(o, "privileges", json_integer(lres.ngrants));
			json_object_set_new(o, "download_bytes", json_integer((json_int_t) plan->downloaded));
			json_object_set_new(o, "seconds", json_pack("{s:f,s:f,s:f,s:f,s:f}", "fetch_and_replay", t_fetch,
														"copy", lres.copy_seconds, "validate", lres.validate_seconds,
														"indexes", lres.index_seconds, "total", now_seconds() - t_start));
			json_object_set_new(o, "warnings", warn);
			json_object_set_new(o, "copy_back", cba);
			{
				json_t *notes = json_array();

				for (char *p = cb.notes.data, *nl; p && *p && (nl = strchr(p, '\n')); p = nl + 1)
					json_array_append_new(notes, json_stringn(p, (size_t) (nl - p)));
				json_object_set_new(o, "copy_back_notes", notes);
			}
			json_object_set_new(o, "copy_back_applied", json_boolean(apply));
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
			if (lres.nsequences || lres.ngenerated || lres.ngrants)
				printf("Also recreated: %d identity or serial sequence(s) (set past the recovered values), "
					   "%d generated column(s), %d privilege(s)\n", lres.nsequences, lres.ngenerated, lres.ngrants);
			if (recover_plan_ddl_uncaptured(plan))
				printf("Note:         schema changes after the table's last row change before the point are not "
					   "captured (the archiver ran without --ddl-capture there): such a change is not in this table\n");
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
			if (apply && config_get_bool(cfg, "yes"))
				printf("\nCopy-back SQL (applied in one transaction and validated):\n");
			else if (apply)
				printf("\nCopy-back SQL (to be applied in one transaction once you confirm):\n");
			else
				printf("\nCopy-back SQL (not executed; review, then run it yourself, or use --apply):\n");
			for (int i = 0; i < cb.n; i++)
				printf("\n-- %s\n%s\n", cb.what[i], cb.sql[i]);
			if (cb.notes.len)
			{
				char *shown = xstrdup_printable(cb.notes.data);

				/* xstrdup_printable writes the line ends as \n: one note per line again. */
				printf("\nNotes:\n");
				for (char *p = shown, *nl; p && *p; p = nl ? nl + 2 : NULL)
				{
					nl = strstr(p, "\\n");
					printf("%.*s\n", nl ? (int) (nl - p) : (int) strlen(p), p);
				}
				free(shown);
			}
			if (apply && config_get_bool(cfg, "yes"))
				printf("\nCopy-back applied to %s and validated.\n", src_shown);
		}
	}
	(void) t_load;
	/* Asked at the terminal: after the plan was shown. */
	if (apply && !config_get_bool(cfg, "yes") &&
		(rc = apply_copyback(cfg, conn, &ci, &cb, m, target_shown, json, &err)) != EXIT_OK)
		goto done;
	rc = EXIT_OK;
done:
	copyback_free(&cb);
	copyback_free_columns(cb_columns, cb_ncolumns);
	strbuf_free(&latest_cmd);
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
