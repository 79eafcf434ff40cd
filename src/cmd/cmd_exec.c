/* cmd_exec.c — `backstop exec`: run SQL through the gate, with a verified recovery point before every destructive statement. */
#include "cmd_exec.h"
#include "clock.h"
#include "cli.h"
#include "cmd_checkpoint.h"
#include "cmd_classify.h"
#include "control.h"
#include "gatedb.h"
#include "jsonout.h"
#include "log.h"
#include "pgsql.h"
#include "quote.h"
#include "redact.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_LOCK_ROUNDS 3

typedef struct exec_ctx
{
	PGconn *conn;
	gatedb gdb;
	gate_session *session;
	policy *pol;
	const char *conninfo;
	const char *principal;
	const char *environment;
	const char *listen;
	char *token;				/* the archiver endpoint's bearer token, or NULL */
	int64_t timeout_ms;
	bool json;
	json_t *records;
} exec_ctx;

static int
classify(exec_ctx *x, const char *text, size_t len, gate_result **r, policy_decision *d, bs_error *err)
{
	gate_options opts;

	memset(&opts, 0, sizeof(opts));
	opts.catalog = &x->gdb.catalog;
	opts.session = x->session;
	opts.trusted_functions = (const char *const *) x->pol->trusted_functions;
	memset(d, 0, sizeof(*d));
	if (gate_classify_n(text, len, &opts, r, err) != BS_OK)
		return BS_ERR;
	if ((*r)->nstmts == 0)
		return BS_OK;
	policy_decide(x->pol, &(*r)->stmts[0], x->principal, x->environment, d);
	return BS_OK;
}

/* The targets a recovery point must cover: indexes into st->targets. */
static int
cover_list(const gate_stmt *st, const policy_decision *d, int *out)
{
	int n = 0;

	for (int i = 0; i < st->ntargets; i++)
		if (d->cover && d->cover[i] && st->targets[i].kind == GATE_TARGET_RELATION &&
			!(st->targets[i].resolved && (!st->targets[i].exists || st->targets[i].temp)))
			out[n++] = i;
	return n;
}

static bool
plain_dml(const char *command)
{
	static const char *const dml[] = {"SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "COPY", NULL};

	for (int i = 0; dml[i]; i++)
		if (strcmp(command, dml[i]) == 0)
			return true;
	return false;
}

static char *
qualified(const gate_target *t)
{
	return quote_qualified_name(t->nspname, t->relname);
}

static bool
in_list(const uint32_t *oids, int n, uint32_t oid)
{
	for (int i = 0; i < n; i++)
		if (oids[i] == oid)
			return true;
	return false;
}

static void
rollback(exec_ctx *x, bool own)
{
	bs_error ignore;

	if (own)
		pgsql_exec(x->conn, "ROLLBACK", &ignore);
}

/*
 * Lock what the statement can destroy, so that no other session changes it, and settle the
 * classification under the lock: a partition attached or a name re-created since the first
 * look changes the targets, which are then locked too (a few rounds at most).  On success
 * *r and *d are the classification made under the lock.
 */
static int
lock_targets(exec_ctx *x, const char *text, size_t len, gate_result **r, policy_decision *d,
			 strbuf *why, bs_error *err)
{
	uint32_t locked[4096];
	int nlocked = 0;

	for (int round = 0; round < MAX_LOCK_ROUNDS; round++)
	{
		gate_stmt *st = &(*r)->stmts[0];
		int *cover = xcalloc((size_t) (st->ntargets ? st->ntargets : 1), sizeof(int));
		int n = cover_list(st, d, cover);
		strbuf sql = STRBUF_INIT;
		int missing = 0;

		for (int i = 0; i < n; i++)
		{
			const gate_target *t = &st->targets[cover[i]];
			char *q;

			if (!t->resolved)
			{
				char *dn = gate_target_display(t);

				strbuf_printf(why, "%s could not be resolved in this session, so no recovery point can be asked for it", dn);
				free(dn);
				free(cover);
				strbuf_free(&sql);
				return BS_ERR;
			}
			if (in_list(locked, nlocked, t->oid))
				continue;
			if (nlocked >= (int) (sizeof(locked) / sizeof(locked[0])))
			{
				strbuf_printf(why, "the statement reaches more than %d tables", nlocked);
				free(cover);
				strbuf_free(&sql);
				return BS_ERR;
			}
			q = qualified(t);
			strbuf_printf(&sql, "%s%s", missing ? ", " : "LOCK TABLE ", q);
			free(q);
			locked[nlocked++] = t->oid;
			missing++;
		}
		free(cover);
		if (missing == 0)
		{
			strbuf_free(&sql);
			return BS_OK;		/* everything it now reaches is locked */
		}
		/* DML: block writers, not readers; anything else takes what DDL takes. */
		strbuf_printf(&sql, " IN %s MODE", plain_dml(st->command) ? "SHARE ROW EXCLUSIVE" : "ACCESS EXCLUSIVE");
		if (pgsql_exec(x->conn, sql.data, err) != BS_OK)
		{
			strbuf_free(&sql);
			error_prefix(err, "could not lock the statement's targets");
			return BS_ERR;
		}
		strbuf_free(&sql);
		/* classify again: names, partitions and cascades as they are under the lock */
		policy_decision_clear(d);
		gate_result_free(*r);
		*r = NULL;
		if (classify(x, text, len, r, d, err) != BS_OK)
			return BS_ERR;
		if ((*r)->nstmts == 0 || d->action != POLICY_CHECKPOINT)
			return BS_OK;		/* the caller looks at the new decision */
	}
	strbuf_printf(why, "its targets kept changing while the gate locked them; run it again");
	return BS_ERR;
}

/* Advice for a recovery point the archiver could not give. */
static void
coverage_advice(strbuf *why, const char *table, long status, const char *msg, const char *listen)
{
	if (status == 404)
		strbuf_printf(why, "%s is not archived by the running archiver (%s): archive it first (a primary key "
					  "or REPLICA IDENTITY FULL, and in --tables or --all-tables), or change it outside the gate",
					  table, msg);
	else if (status == 504)
		strbuf_printf(why, "the archiver could not verify a recovery point of %s in time (%s): see the archiver's "
					  "log, or raise --timeout", table, msg);
	else if (status == 0)
		strbuf_printf(why, "%s: start `backstop archive ... --listen %s` and run it again", msg, listen);
	else
		strbuf_printf(why, "the archiver could not give a recovery point of %s (HTTP %ld: %s)", table, status, msg);
}

/* Ask the archiver for a verified recovery point of t at lsn (NULL: now); false with why. */
static bool
ask_point(exec_ctx *x, const gate_target *t, const char *lsn, json_t **answer, strbuf *why)
{
	char *table = gate_target_display(t);
	long status = 0;
	json_t *ans = NULL;
	bs_error err;

	error_clear(&err);
	if (cmd_checkpoint_request(x->listen, x->token, table, lsn, x->timeout_ms, &status, &ans, &err) != BS_OK)
	{
		/* Unreachable: start it; reached, but its answer is unusable: say so, not "start it". */
		if (status == 0)
			coverage_advice(why, table, 0, err.message, x->listen);
		else
			strbuf_printf(why, "the archiver could not give a recovery point of %s (%s)", table, err.message);
	}
	else if (status != 200)
		coverage_advice(why, table, status, json_is_string(json_object_get(ans, "error")) ?
						json_string_value(json_object_get(ans, "error")) : "no reason given", x->listen);
	else if ((uint32_t) json_integer_value(json_object_get(ans, "relid")) != t->oid)
		strbuf_printf(why, "the archiver archives another table named %s (relid %lld, not OID %u): "
					  "let it catch up with the catalog and run it again", table,
					  (long long) json_integer_value(json_object_get(ans, "relid")), t->oid);
	free(table);
	if (why->len)
	{
		json_decref(ans);
		return false;
	}
	if (answer)
		*answer = ans;
	else
		json_decref(ans);
	return true;
}

static void
print_recover(const exec_ctx *x, strbuf *out, const char *table, const char *lsn)
{
	char *db = x->conninfo ? redact_text(x->conninfo) : NULL;

	strbuf_append_str(out, "backstop recover");
	if (db)
	{
		strbuf_append_str(out, " --db ");
		strbuf_append_shell_quoted(out, db);
	}
	strbuf_append_str(out, " --table ");
	strbuf_append_shell_quoted(out, table);
	strbuf_printf(out, " --to-lsn %s", lsn);
	free(db);
}

/* Run one statement through the gate; 0 when it ran, 1 when refused or failed. */
static int
run_statement(exec_ctx *x, int index, const char *text, size_t len)
{
	gate_result *r = NULL;
	policy_decision d;
	bs_error err;
	strbuf why = STRBUF_INIT;
	json_t *rec = NULL, *points = json_array(), *undo = json_array();
	const char *outcome = "refused";
	char *status = NULL;
	double t0 = (1e3 * clock_mono_s()), t_classified = t0, t_covered = 0, t_done;
	bool own = false;
	int rc = 1;
	char lsn[64] = "";
	gate_stmt *st;

	error_clear(&err);
	if (classify(x, text, len, &r, &d, &err) != BS_OK)
	{
		strbuf_printf(&why, "the gate could not classify it: %s", err.message);
		goto report;
	}
	t_classified = (1e3 * clock_mono_s());
	if (r->nstmts == 0)
	{
		rc = 0;
		outcome = "empty";
		goto report;
	}
	st = &r->stmts[0];
	if (d.action == POLICY_REFUSE || d.action == POLICY_APPROVE)
	{
		strbuf_printf(&why, "%s%s", d.why, d.action == POLICY_APPROVE ?
					  "; it needs a human's approval, which comes with the gateway: until then it is refused" : "");
		goto report;
	}
	if (d.action == POLICY_CHECKPOINT)
	{
		int *cover;
		int n;
		PGresult *res;

		/*
		 * First, holding no lock, ask for a point "now": the archiver is up, every target is
		 * archived and has its base copy (so the point asked for below lies in its window).
		 */
		cover = xcalloc((size_t) (st->ntargets ? st->ntargets : 1), sizeof(int));
		n = cover_list(st, &d, cover);
		for (int i = 0; i < n; i++)
			if (st->targets[cover[i]].resolved && !ask_point(x, &st->targets[cover[i]], NULL, NULL, &why))
				break;
		free(cover);
		if (why.len)
			goto report;

		own = PQtransactionStatus(x->conn) == PQTRANS_IDLE;
		if (own && pgsql_exec(x->conn, "BEGIN", &err) != BS_OK)
		{
			strbuf_printf(&why, "%s", err.message);
			own = false;
			goto report;
		}
		if (lock_targets(x, text, len, &r, &d, &why, &err) != BS_OK)
		{
			if (why.len == 0)
				strbuf_printf(&why, "%s", err.message);
			rollback(x, own);
			goto report;
		}
		st = r->nstmts ? &r->stmts[0] : NULL;
		if (st == NULL || d.action == POLICY_REFUSE || d.action == POLICY_APPROVE)
		{
			strbuf_printf(&why, "%s", st ? d.why : "nothing to run");
			rollback(x, own);
			goto report;
		}
		/* The position after the lock: every change to the targets is at or before it. */
		if (pgsql_query(x->conn, "SELECT pg_catalog.pg_current_wal_insert_lsn()::text", &res, &err) != BS_OK)
		{
			strbuf_printf(&why, "%s", err.message);
			rollback(x, own);
			goto report;
		}
		snprintf(lsn, sizeof(lsn), "%s", PQgetvalue(res, 0, 0));
		PQclear(res);
		cover = xcalloc((size_t) (st->ntargets ? st->ntargets : 1), sizeof(int));
		n = cover_list(st, &d, cover);
		for (int i = 0; i < n; i++)
		{
			const gate_target *t = &st->targets[cover[i]];
			char *table;
			json_t *ans = NULL;
			json_t *p;

			if (!ask_point(x, t, lsn, &ans, &why))
			{
				free(cover);
				rollback(x, own);
				goto report;
			}
			table = gate_target_display(t);
			p = json_object();
			json_object_set_new(p, "table", json_string(table));
			json_object_set_new(p, "oid", json_integer(t->oid));
			json_object_set_new(p, "lsn", json_string(lsn));
			json_object_set_new(p, "archived_to", json_incref(json_object_get(ans, "lsn")));
			json_object_set_new(p, "segment", json_incref(json_object_get(ans, "segment")));
			json_array_append_new(points, p);
			{
				strbuf cmd = STRBUF_INIT;

				print_recover(x, &cmd, table, lsn);
				json_array_append_new(undo, json_string(cmd.data));
				strbuf_free(&cmd);
			}
			json_decref(ans);
			free(table);
		}
		free(cover);
		t_covered = (1e3 * clock_mono_s());
	}

	/* Run it. */
	{
		strbuf sql = STRBUF_INIT;
		PGresult *res;

		strbuf_append(&sql, text + st->offset, st->length);
		strbuf_append_str(&sql, "");
		res = PQexec(x->conn, sql.data);
		strbuf_free(&sql);
		if (res == NULL || (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK &&
							PQresultStatus(res) != PGRES_EMPTY_QUERY))
		{
			pgsql_set_error(&err, x->conn, res, "the statement failed");
			PQclear(res);
			outcome = "failed";
			strbuf_printf(&why, "%s", err.message);
			rollback(x, own);
			/* nothing was destroyed: no recovery point to print */
			json_array_clear(undo);
			goto report;
		}
		status = xstrdup(PQcmdStatus(res));
		PQclear(res);
	}
	if (own && pgsql_exec(x->conn, "COMMIT", &err) != BS_OK)
	{
		outcome = "failed";
		strbuf_printf(&why, "%s", err.message);
		json_array_clear(undo);
		goto report;
	}
	{
		/* the session must still lex SQL as the gate does */
		char *user = NULL, *sp = NULL;

		if (gatedb_check_session(x->conn, &user, &sp, &err) != BS_OK)
		{
			outcome = "executed";
			strbuf_printf(&why, "after it, %s", err.message);
			free(user);
			free(sp);
			goto report;
		}
		free(user);
		free(sp);
	}
	outcome = "executed";
	rc = 0;

report:
	t_done = (1e3 * clock_mono_s());
	if (r && r->nstmts > 0)
	{
		char *line;

		rec = cmd_classify_record(text, &r->stmts[0], &d, x->principal, x->environment);
		json_object_set_new(rec, "outcome", json_string(outcome));
		if (status)
			json_object_set_new(rec, "status", json_string(status));
		if (why.len)
			json_object_set_new(rec, rc ? "error" : "note", json_string(why.data));
		json_object_set_new(rec, "recovery_points", json_incref(points));
		json_object_set_new(rec, "recover", json_incref(undo));
		json_object_set_new(rec, "classify_ms", json_real(t_classified - t0));
		if (t_covered > 0)
			json_object_set_new(rec, "checkpoint_ms", json_real(t_covered - t_classified));
		json_object_set_new(rec, "total_ms", json_real(t_done - t0));
		line = json_dumps(rec, JSON_COMPACT);
		log_info("gate decision: %s", line);
		free(line);
		if (!x->json)
		{
			cmd_classify_print_stmt(index, text, &r->stmts[0], &d);
			for (size_t i = 0; i < json_array_size(points); i++)
			{
				json_t *p = json_array_get(points, i);

				printf("    recovery point: %s at %s (segment %s; archived to %s, verified)\n",
					   json_string_value(json_object_get(p, "table")), lsn,
					   json_is_string(json_object_get(p, "segment")) ? json_string_value(json_object_get(p, "segment")) :
					   "none: no changes since the base copy",
					   json_string_value(json_object_get(p, "archived_to")));
			}
			if (strcmp(outcome, "executed") == 0)
			{
				printf("    executed: %s\n", status ? status : "");
				/* It ran, but what follows must not (the session changed under the gate). */
				if (rc)
					printf("    STOPPED: %s\n", why.data ? why.data : "");
			}
			else
				printf("    %s: %s\n", strcmp(outcome, "failed") == 0 ? "FAILED" : "REFUSED", why.data ? why.data : "");
			for (size_t i = 0; i < json_array_size(undo); i++)
				printf("    undo: %s\n", json_string_value(json_array_get(undo, i)));
		}
		json_array_append_new(x->records, rec);
	}
	else if (rc && !x->json)
		printf("[%d] REFUSED: %s\n", index, why.data ? why.data : "");
	if (rc)
		fprintf(stderr, "backstop exec: ERROR: statement %d %s: %s\n", index,
				strcmp(outcome, "failed") == 0 ? "failed" : strcmp(outcome, "executed") == 0 ?
				"ran, but nothing after it runs" : "refused", why.data ? why.data : "");
	json_decref(points);
	json_decref(undo);
	free(status);
	policy_decision_clear(&d);
	gate_result_free(r);
	strbuf_free(&why);
	return rc;
}

int
cmd_exec(bs_config *cfg, int argc, char **argv)
{
	exec_ctx x;
	char *sql = NULL;
	size_t len;
	gate_result *all = NULL;
	char *user = NULL, *search_path = NULL;
	bs_error err;
	int rc = EXIT_FAILURE_RUNTIME;
	int executed = 0;
	bool refused = false;

	memset(&x, 0, sizeof(x));
	error_clear(&err);
	x.conninfo = config_get(cfg, CFG_DB);
	x.principal = config_get(cfg, CFG_PRINCIPAL);
	x.environment = config_get(cfg, CFG_ENVIRONMENT);
	x.listen = config_get(cfg, CFG_LISTEN);
	x.timeout_ms = config_get_duration_ms(cfg, CFG_TIMEOUT);
	x.json = config_get_bool(cfg, CFG_JSON);
	if (argc > 0)
	{
		cli_usage_error("exec", "unexpected argument \"%s\" (give the SQL with -c or -f)", argv[0]);
		return EXIT_USAGE;
	}
	if (x.conninfo == NULL)
	{
		cli_usage_error("exec", "--db is required");
		return EXIT_USAGE;
	}
	/* What runs is said on the command line, never left over in the environment or a file. */
	for (int i = 0; i < 2; i++)
	{
		config_id id = i ? CFG_COMMAND : CFG_FILE;

		if (config_get(cfg, id) && cfg->values[id].source != SOURCE_FLAG)
		{
			fprintf(stderr, "backstop exec: ERROR: the SQL to run must be given on the command line (-c or -f), "
					"not as %s from %s\n", config_options[id].name, cfg->values[id].origin ?
					cfg->values[id].origin : "the environment or the configuration file");
			return EXIT_USAGE;
		}
	}
	if (cmd_classify_read_sql(cfg, 0, NULL, true, &sql, &len, &err) != BS_OK)
	{
		cli_report_error("exec", &err);
		return err.sys_errno ? EXIT_FAILURE_RUNTIME : EXIT_USAGE;
	}
	if (cmd_classify_load_policy(cfg, &x.pol, &err) != BS_OK || control_load_token(cfg, &x.token, &err) != BS_OK)
	{
		cli_report_error("exec", &err);
		policy_free(x.pol);
		free(sql);
		return EXIT_USAGE;
	}
	x.records = json_array();
	x.session = gate_session_new();
	if (gate_self_check(&err) != BS_OK ||
		gatedb_connect(x.conninfo, "backstop exec", &x.conn, &err) != BS_OK ||
		gatedb_check_session(x.conn, &user, &search_path, &err) != BS_OK)
	{
		cli_report_error("exec", &err);
		goto out;
	}
	gatedb_init(&x.gdb, x.conn);
	if (x.principal == NULL)
		x.principal = user;

	/* Statement boundaries first: what cannot be parsed as a whole runs not at all. */
	if (gate_classify_n(sql, len, NULL, &all, &err) != BS_OK)
	{
		cli_report_error("exec", &err);
		goto out;
	}
	if (all->refuse && all->nstmts == 1 && strcmp(all->stmts[0].command, "UNPARSABLE") == 0)
	{
		fprintf(stderr, "backstop exec: ERROR: refused, nothing executed: %s\n", all->stmts[0].reasons[0].text);
		if (!x.json)
			printf("REFUSED: %s\n", all->stmts[0].reasons[0].text);
		refused = true;
	}
	for (int i = 0; i < all->nstmts && !refused; i++)
	{
		if (run_statement(&x, i + 1, sql + all->stmts[i].offset, all->stmts[i].length) != 0)
			refused = true;
		else
			executed++;
	}
	if (x.json)
	{
		json_t *o = json_object();

		json_object_set_new(o, "statements", json_incref(x.records));
		json_object_set_new(o, "executed", json_integer(executed));
		json_object_set_new(o, "stopped", json_boolean(refused));
		jsonout_print(o, JSON_INDENT(2));
		json_decref(o);
	}
	rc = refused ? EXIT_FAILURE_RUNTIME : EXIT_OK;
out:
	gate_result_free(all);
	if (x.conn)
		PQfinish(x.conn);
	gate_session_free(x.session);
	policy_free(x.pol);
	free(x.token);
	json_decref(x.records);
	free(user);
	free(search_path);
	free(sql);
	return rc;
}
