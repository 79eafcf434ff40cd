/* cmd_drill.c — `backstop drill`: prove that a table comes back, by recovering one from storage alone and comparing. */
#include "cmd_drill.h"
#include "clock.h"
#include "cli.h"
#include "cmd_checkpoint.h"
#include "control.h"
#include "drillstate.h"
#include "ident.h"
#include "jsonout.h"
#include "lsn.h"
#include "manifest.h"
#include "pgsql.h"
#include "quote.h"
#include "recover_load.h"
#include "redact.h"
#include "strbuf.h"
#include "validate.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The drill's own schema (in --db, and in --to-db), recognised by its comment. */
#define DRILL_SCHEMA "backstop_drill"
#define DRILL_SCHEMA_COMMENT "backstop drill scratch schema: tables here are created and dropped by backstop drill"
/* The recover child's JSON answer is small; anything larger is refused. */
#define DRILL_RECOVER_OUTPUT_MAX (16 * 1024 * 1024)

/* Options the recover child needs as the drill has them (through the environment, so that
 * secrets stay out of the process list). */
static const config_id child_ids[] = {
	CFG_STORAGE, CFG_COMPRESSION, CFG_COMPRESSION_LEVEL, CFG_S3_ENDPOINT, CFG_S3_REGION, CFG_S3_URI_STYLE,
	CFG_S3_CA_FILE, CFG_S3_VERIFY_TLS, CFG_S3_ACCESS_KEY_ID, CFG_S3_SECRET_ACCESS_KEY, CFG_S3_SESSION_TOKEN,
	CFG_S3_MULTIPART_THRESHOLD, CFG_S3_TIMEOUT, CFG_RETRIES, CFG_RETRY_BASE_DELAY, CFG_DATA_DIR, CFG_LOG_LEVEL,
	CFG_LOG_FORMAT
};
/* Recovery options the child must not inherit from the drill's environment. */
static const char *const child_unset[] = {
	"BACKSTOP_TO_LSN", "BACKSTOP_TO_TIME", "BACKSTOP_TO_XID", "BACKSTOP_LATEST", "BACKSTOP_EXCLUSIVE",
	"BACKSTOP_INTO", "BACKSTOP_TARGET_DB", "BACKSTOP_REPLACE", "BACKSTOP_NO_INDEXES", "BACKSTOP_DRY_RUN",
	"BACKSTOP_TABLE", "BACKSTOP_JSON", "BACKSTOP_YES", "BACKSTOP_DB", NULL
};

typedef struct drill
{
	const bs_config *cfg;
	bool		scratch;
	const char *db;
	const char *to_db;
	const char *listen;
	char	   *token;
	int64_t		timeout_ms;
	PGconn	   *conn;			/* --db */
	PGconn	   *tconn;			/* --to-db, or NULL */
	char	   *source;			/* schema.table drilled (unquoted, as the archive names it) */
	char	   *src_schema;
	char	   *src_name;
	char	   *copy_name;		/* the recovered copy, in DRILL_SCHEMA */
	bool		made_source;	/* the scratch table was created (drop it at the end) */
	bool		made_copy;
	bool		schema_ours;	/* DRILL_SCHEMA in --db is the drill's (its comment) */
	bool		tschema_ours;	/* and in --to-db */
	json_t	   *out;
	json_t	   *phases;
	double		t0;
} drill;

static void
phase(drill *d, const char *name, double started)
{
	json_object_set_new(d->phases, name, json_real((double) ((long long) ((clock_mono_s() - started) * 1000.0 + 0.5)) / 1000.0));
}

/* A name of at most 63 bytes: prefix, then as much of name as fits (not splitting UTF-8). */
static char *
bounded_name(const char *prefix, const char *name)
{
	strbuf		sb = STRBUF_INIT;
	size_t		n = strlen(name);

	while (strlen(prefix) + n > VALIDATE_NAME_MAX && n > 0)
	{
		n--;
		while (n > 0 && ((unsigned char) name[n] & 0xC0) == 0x80)
			n--;
	}
	strbuf_append_str(&sb, prefix);
	strbuf_append(&sb, name, n);
	return strbuf_detach(&sb, NULL);
}

/* DRILL_SCHEMA in conn: created (with its comment) when missing; refused when it exists
 * without the comment, since then it is not ours to put tables in and drop them. */
static int
ensure_schema(PGconn *conn, bool *ours, bs_error *err)
{
	PGresult   *res;
	int			rc;

	if (pgsql_query(conn, "SELECT coalesce(obj_description(oid, 'pg_namespace'), '') FROM pg_namespace "
					"WHERE nspname = '" DRILL_SCHEMA "'", &res, err) != BS_OK)
		return BS_ERR;
	if (PQntuples(res) == 0)
	{
		PQclear(res);
		if (pgsql_exec(conn, "CREATE SCHEMA " DRILL_SCHEMA, err) != BS_OK ||
			pgsql_exec(conn, "COMMENT ON SCHEMA " DRILL_SCHEMA " IS '" DRILL_SCHEMA_COMMENT "'", err) != BS_OK)
			return error_prefix(err, "could not create the drill's schema " DRILL_SCHEMA);
		*ours = true;
		return BS_OK;
	}
	rc = strcmp(PQgetvalue(res, 0, 0), DRILL_SCHEMA_COMMENT) == 0 ? BS_OK :
		error_set(err, ERRCODE_INVALID_PARAMETER, "schema " DRILL_SCHEMA " exists but was not created by backstop drill "
				  "(its comment differs): the drill does not put tables in it");
	PQclear(res);
	*ours = rc == BS_OK;
	return rc;
}

/* The content checksum of a table as recover_load computes it ("rows:sum"). */
static int
checksum(PGconn *conn, const char *schema, const char *name, char **out, bs_error *err)
{
	char	   *q = quote_qualified_name(schema, name);
	strbuf		sql = STRBUF_INIT;
	PGresult   *res;

	strbuf_printf(&sql, RECOVER_CHECKSUM_SQL, q);
	free(q);
	if (pgsql_query(conn, sql.data, &res, err) != BS_OK)
	{
		strbuf_free(&sql);
		return error_prefix(err, "could not checksum %s.%s", schema, name);
	}
	strbuf_free(&sql);
	{
		strbuf		sb = STRBUF_INIT;

		strbuf_printf(&sb, "%s:%s", PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
		*out = strbuf_detach(&sb, NULL);
	}
	PQclear(res);
	return BS_OK;
}

/*
 * Ask the running archiver for a verified recovery point of the source (at lsn, or now),
 * retrying while it does not archive the table yet (a new table is found at its next table
 * poll, then copied) until the drill's timeout.  *point gets the point's LSN.
 */
static int
wait_point(drill *d, const char *lsn, char **point, bs_error *err)
{
	double		deadline = clock_mono_s() + (double) d->timeout_ms / 1000.0;
	long		status = 0;
	json_t	   *j = NULL;
	char	   *last = NULL;

	for (;;)
	{
		double		left = deadline - clock_mono_s();

		if (cmd_checkpoint_request(d->listen, d->token, d->source, lsn, (int64_t) (left > 1 ? left * 1000 : 1000),
								   &status, &j, err) != BS_OK)
			return BS_ERR;
		if (status == 200 && json_is_string(json_object_get(j, "lsn")))
		{
			*point = xstrdup(json_string_value(json_object_get(j, "lsn")));
			json_decref(j);
			free(last);
			return BS_OK;
		}
		free(last);
		last = xstrdup(json_is_string(json_object_get(j, "error")) ? json_string_value(json_object_get(j, "error")) : "no message");
		json_decref(j);
		j = NULL;
		if (status == 401 || status == 403 || status == 410 || status == 400 || clock_mono_s() >= deadline)
			break;
		/* 404: not archived yet (found at the archiver's next table poll); 504/503: not yet verified. */
		usleep(500 * 1000);
	}
	error_set(err, status == 404 ? ERRCODE_UNDEFINED_TABLE : ERRCODE_TIMEOUT,
			  "the archiver at %s gave no recovery point of %s within --timeout (HTTP %ld: %s)%s", d->listen, d->source,
			  status, last,
			  status == 404 && d->scratch ? "; a scratch drill needs an archiver that archives new tables "
			  "(--all-tables), or use --table" : "");
	free(last);
	return BS_ERR;
}

/*
 * Recover the source at point (an LSN, or NULL for --latest) into DRILL_SCHEMA.copy_name
 * with the `backstop recover` command itself, run as a child process of this binary: the
 * same code path, options and validation as an operator's recovery.  Its JSON answer goes
 * to *answer; *child_rc is its exit code.
 */
static int
run_recover(drill *d, const char *point, json_t **answer, int *child_rc, bs_error *err)
{
	int			fds[2];
	pid_t		pid;
	strbuf		outbuf = STRBUF_INIT;
	strbuf		into = STRBUF_INIT;
	int			status;
	json_error_t jerr;
	char	   *argv[16];
	int			n = 0;

	*answer = NULL;
	*child_rc = -1;
	strbuf_printf(&into, "%s.%s", DRILL_SCHEMA, d->copy_name);
	argv[n++] = (char *) "backstop";
	argv[n++] = (char *) "recover";
	argv[n++] = (char *) "--table";
	argv[n++] = d->source;
	if (point)
	{
		argv[n++] = (char *) "--to-lsn";
		argv[n++] = (char *) point;
	}
	else
		argv[n++] = (char *) "--latest";
	argv[n++] = (char *) "--into";
	argv[n++] = into.data;
	argv[n++] = (char *) "--json";
	argv[n] = NULL;
	if (pipe(fds) != 0)
	{
		strbuf_free(&into);
		return error_set_errno(err, errno, "could not create a pipe");
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
	{
		close(fds[0]);
		close(fds[1]);
		strbuf_free(&into);
		return error_set_errno(err, errno, "could not start backstop recover");
	}
	if (pid == 0)
	{
		/* The child: the drill's settings through the environment, stdout into the pipe. */
		for (int i = 0; child_unset[i]; i++)
			unsetenv(child_unset[i]);
		for (size_t i = 0; i < sizeof(child_ids) / sizeof(child_ids[0]); i++)
		{
			const char *v = config_get(d->cfg, child_ids[i]);
			char		env[128];

			if (v == NULL)
				continue;
			snprintf(env, sizeof(env), "BACKSTOP_%s", config_options[child_ids[i]].name);
			for (char *k = env; *k; k++)
				*k = (char) (*k >= 'a' && *k <= 'z' ? *k - 'a' + 'A' : *k);
			setenv(env, v, 1);
		}
		if (d->cfg->config_file)
			setenv("BACKSTOP_CONFIG", d->cfg->config_file, 1);
		setenv("BACKSTOP_DB", d->to_db ? d->to_db : d->db, 1);
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(fds[1]);
	for (;;)
	{
		char		buf[8192];
		ssize_t		r = read(fds[0], buf, sizeof(buf));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (outbuf.len + (size_t) r <= DRILL_RECOVER_OUTPUT_MAX)
			strbuf_append(&outbuf, buf, (size_t) r);
	}
	close(fds[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
		{
			strbuf_free(&outbuf);
			strbuf_free(&into);
			return error_set_errno(err, errno, "could not wait for backstop recover");
		}
	*child_rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	d->made_copy = true;		/* maybe: dropped IF EXISTS at the end */
	if (*child_rc == 0)
	{
		*answer = json_loadb(outbuf.data ? outbuf.data : "", outbuf.len, 0, &jerr);
		if (!json_is_object(*answer))
		{
			json_decref(*answer);
			*answer = NULL;
			error_set(err, ERRCODE_PROTOCOL, "backstop recover answered something that is not its JSON report");
		}
	}
	else
		error_set(err, *child_rc == EXIT_INTEGRITY ? ERRCODE_DATA_CORRUPTED : ERRCODE_INTERNAL,
				  "backstop recover of %s failed with exit code %d (its error is above)", d->source, *child_rc);
	strbuf_free(&outbuf);
	strbuf_free(&into);
	return *answer ? BS_OK : BS_ERR;
}

/* ---------- scratch drill ---------- */

/* The known workload: every kind of change on a mix of types, in several transactions. */
static const char *const scratch_workload[] = {
	"INSERT INTO %s SELECT g, g * 7 - 3000, (g * 1.125)::numeric(12,3), CASE WHEN g %% 50 = 0 THEN 'NaN'::float8 "
	"ELSE g / 3.0 END, CASE WHEN g %% 13 = 0 THEN NULL ELSE 'row ' || g || E' \\u00e9\\t\"q\"' END, "
	"decode(md5(g::text), 'hex') || '\\x00'::bytea, timestamptz '2024-02-29 12:00:00+00' + g * interval '1 hour 7 s', "
	"date '2000-01-01' + g, jsonb_build_object('g', g, 'a', jsonb_build_array(g, 'x', NULL)), ARRAY[g, -g, NULL], "
	"g %% 2 = 0, md5('u' || g)::uuid, g * interval '1 day 3 min', NULL FROM generate_series(1, 2000) g",
	"UPDATE %s SET t = coalesce(t, '') || ' updated', n = n * 2, j = j || '{\"u\": true}' WHERE id %% 7 = 0",
	"DELETE FROM %s WHERE id %% 11 = 0",
	"UPDATE %s SET nul = 'set', b = NULL, a = '{}' WHERE id BETWEEN 100 AND 140",
	"INSERT INTO %s (id, t) VALUES (100000, repeat('long ', 4000))",
	NULL
};

static int
scratch_setup(drill *d, bs_error *err)
{
	strbuf		sql = STRBUF_INIT;
	char		name[64];
	char	   *q;
	int			rc;

	snprintf(name, sizeof(name), "scratch_%lld_%d", (long long) (clock_unix_us() / 1000000), (int) getpid());
	d->src_schema = xstrdup(DRILL_SCHEMA);
	d->src_name = xstrdup(name);
	d->copy_name = bounded_name("copy_", name);
	{
		strbuf		s = STRBUF_INIT;

		strbuf_printf(&s, "%s.%s", DRILL_SCHEMA, name);
		d->source = strbuf_detach(&s, NULL);
	}
	if (ensure_schema(d->conn, &d->schema_ours, err) != BS_OK)
		return BS_ERR;
	q = quote_qualified_name(DRILL_SCHEMA, name);
	strbuf_printf(&sql, "CREATE TABLE %s (id bigint PRIMARY KEY, i integer NOT NULL DEFAULT 0, n numeric(12,3), "
				  "f double precision, t text, b bytea, ts timestamptz, d date, j jsonb, a integer[], flag boolean, "
				  "u uuid, iv interval, nul text)", q);
	rc = pgsql_exec(d->conn, sql.data, err);
	if (rc == BS_OK)
		d->made_source = true;
	free(q);
	strbuf_free(&sql);
	return rc;
}

static int
scratch_workload_run(drill *d, bs_error *err)
{
	char	   *q = quote_qualified_name(d->src_schema, d->src_name);
	int			rc = BS_OK;

	for (int i = 0; scratch_workload[i] && rc == BS_OK; i++)
	{
		strbuf		sql = STRBUF_INIT;

		strbuf_printf(&sql, scratch_workload[i], q);
		rc = pgsql_exec(d->conn, sql.data, err);
		strbuf_free(&sql);
	}
	free(q);
	return rc;
}

/* ---------- table drill: is the last transaction the recovery applied in the live snapshot? ---------- */

/*
 * snapshot is pg_current_snapshot()'s text "xmin:xmax:xip,...", 64-bit; xid the 32-bit id
 * the archive recorded.  Its full id is the one nearest below xmax + 2^31 with those low bits.
 */
static bool
visible_in_snapshot(const char *snapshot, uint32_t xid)
{
	unsigned long long xmin,
				xmax,
				full;
	const char *p;
	char	   *end;

	xmin = strtoull(snapshot, &end, 10);
	if (*end != ':')
		return false;
	xmax = strtoull(end + 1, &end, 10);
	if (*end != ':')
		return false;
	full = (xmax & ~0xFFFFFFFFULL) | xid;
	if (full > xmax && full - xmax >= (1ULL << 31) && full >= (1ULL << 32))
		full -= 1ULL << 32;		/* the previous epoch */
	if (full < xmin)
		return true;
	if (full >= xmax)
		return false;
	for (p = end + 1; *p;)
	{
		unsigned long long x = strtoull(p, &end, 10);

		if (end == p)
			break;
		if (x == full)
			return false;
		p = *end == ',' ? end + 1 : end;
	}
	return true;
}

/* ---------- the drill ---------- */

static void
cleanup(drill *d)
{
	bs_error	ignore;

	/* Only what the drill itself created: its copy, its scratch table, its empty schema. */
	if (d->made_copy && d->copy_name)
	{
		strbuf		sql = STRBUF_INIT;
		char	   *q = quote_qualified_name(DRILL_SCHEMA, d->copy_name);
		PGconn	   *c = d->tconn ? d->tconn : d->conn;

		strbuf_printf(&sql, "DROP TABLE IF EXISTS %s", q);
		error_clear(&ignore);
		if (c && pgsql_exec(c, sql.data, &ignore) != BS_OK)
			json_object_set_new(d->out, "cleanup_error", json_string(ignore.message));
		free(q);
		strbuf_free(&sql);
	}
	if (d->made_source)
	{
		strbuf		sql = STRBUF_INIT;
		char	   *q = quote_qualified_name(d->src_schema, d->src_name);

		strbuf_printf(&sql, "DROP TABLE IF EXISTS %s", q);
		error_clear(&ignore);
		if (pgsql_exec(d->conn, sql.data, &ignore) != BS_OK)
			json_object_set_new(d->out, "cleanup_error", json_string(ignore.message));
		free(q);
		strbuf_free(&sql);
	}
	/* The schema goes when nothing else is in it (RESTRICT): a drill running alongside keeps it. */
	error_clear(&ignore);
	if (d->conn && d->schema_ours)
		(void) pgsql_exec(d->conn, "DROP SCHEMA IF EXISTS " DRILL_SCHEMA " RESTRICT", &ignore);
	if (d->tconn && d->tschema_ours)
		(void) pgsql_exec(d->tconn, "DROP SCHEMA IF EXISTS " DRILL_SCHEMA " RESTRICT", &ignore);
}

static int
run_drill(drill *d, int *exit_code, bs_error *err)
{
	char	   *expected = NULL,
			   *recovered = NULL,
			   *point = NULL,
			   *snapshot = NULL,
			   *lsn_now = NULL;
	json_t	   *rec = NULL;
	int			child_rc = 0;
	double		t,
				t_commit = 0,
				rto = 0;
	bool		live = false;
	int			rc = BS_ERR;

	*exit_code = EXIT_FAILURE_RUNTIME;
	if (pgsql_connect(d->db, false, "backstop drill", &d->conn, err) != BS_OK)
		return BS_ERR;
	if (d->to_db)
	{
		if (pgsql_connect(d->to_db, false, "backstop drill", &d->tconn, err) != BS_OK)
			return BS_ERR;
		if (ensure_schema(d->tconn, &d->tschema_ours, err) != BS_OK)
		{
			*exit_code = EXIT_USAGE;
			return BS_ERR;
		}
	}
	if (d->scratch)
	{
		/* 1. a scratch table, archived by the running archiver */
		t = clock_mono_s();
		if (scratch_setup(d, err) != BS_OK)
		{
			if (strcmp(err->code, ERRCODE_INVALID_PARAMETER) == 0)
				*exit_code = EXIT_USAGE;
			goto out;
		}
		json_object_set_new(d->out, "table", json_string(d->source));
		if (wait_point(d, NULL, &point, err) != BS_OK)
			goto out;
		free(point);
		point = NULL;
		phase(d, "archive_new_table", t);
		/* 2. the known workload; its checksum and the LSN after it */
		t = clock_mono_s();
		if (scratch_workload_run(d, err) != BS_OK ||
			checksum(d->conn, d->src_schema, d->src_name, &expected, err) != BS_OK ||
			pgsql_query_value(d->conn, "SELECT pg_current_wal_lsn()", &lsn_now, err) != BS_OK)
			goto out;
		t_commit = clock_mono_s();
		phase(d, "workload", t);
		/* 3. a verified recovery point covering it */
		t = clock_mono_s();
		if (wait_point(d, lsn_now, &point, err) != BS_OK)
			goto out;
		phase(d, "checkpoint", t);
		json_object_set_new(d->out, "rpo_seconds", json_real(clock_mono_s() - t_commit));
		/* 4. destroy it */
		{
			strbuf		sql = STRBUF_INIT;
			char	   *q = quote_qualified_name(d->src_schema, d->src_name);

			strbuf_printf(&sql, "DROP TABLE %s", q);
			free(q);
			if (pgsql_exec(d->conn, sql.data, err) != BS_OK)
			{
				strbuf_free(&sql);
				goto out;
			}
			strbuf_free(&sql);
			d->made_source = false;
		}
		live = true;
	}
	else
	{
		const char *table = config_get(d->cfg, CFG_TABLE);
		PGresult   *res = NULL;
		bool		exists = false;
		char	   *q;

		if (ident_split_name(table, &d->src_schema, &d->src_name, err) != BS_OK)
		{
			*exit_code = EXIT_USAGE;
			goto out;
		}
		d->copy_name = bounded_name("copy_", d->src_name);
		q = quote_qualified_name(d->src_schema, d->src_name);
		{
			const char *params[1] = {q};

			if (pgsql_query_params(d->conn, "SELECT to_regclass($1) IS NOT NULL", 1, params, &res, err) != BS_OK)
			{
				free(q);
				goto out;
			}
			exists = PQgetvalue(res, 0, 0)[0] == 't';
			PQclear(res);
		}
		free(q);
		if (!d->to_db && ensure_schema(d->conn, &d->schema_ours, err) != BS_OK)
		{
			*exit_code = EXIT_USAGE;
			goto out;
		}
		if (exists && d->listen)
		{
			/* The live table's checksum in a snapshot, and the LSN just after it was taken:
			 * every commit the snapshot sees is at or before that LSN. */
			t = clock_mono_s();
			if (pgsql_exec(d->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err) != BS_OK)
				goto out;
			if (pgsql_query_value(d->conn, PQserverVersion(d->conn) >= 130000 ?
								  "SELECT pg_current_snapshot()::text || '|' || pg_current_wal_lsn()::text" :
								  "SELECT txid_current_snapshot()::text || '|' || pg_current_wal_lsn()::text",
								  &snapshot, err) != BS_OK ||
				checksum(d->conn, d->src_schema, d->src_name, &expected, err) != BS_OK)
			{
				bs_error	ignore;

				pgsql_exec(d->conn, "ROLLBACK", &ignore);
				goto out;
			}
			if (pgsql_exec(d->conn, "COMMIT", err) != BS_OK)
				goto out;
			t_commit = clock_mono_s();
			phase(d, "live_checksum", t);
			lsn_now = strchr(snapshot, '|') ? xstrdup(strchr(snapshot, '|') + 1) : NULL;
			*strchr(snapshot, '|') = '\0';
			t = clock_mono_s();
			if (wait_point(d, lsn_now, &point, err) != BS_OK)
				goto out;
			phase(d, "checkpoint", t);
			json_object_set_new(d->out, "rpo_seconds", json_real(clock_mono_s() - t_commit));
			live = true;
		}
		else
			json_object_set_new(d->out, "note", json_string(exists ? "no --listen archiver: recovered at the latest archived point, validated against the archive's own checksum"
															: "the table no longer exists: recovered at its latest archived point, validated against the archive's own checksum"));
	}

	/* 5. recover from storage alone, with `backstop recover` */
	t = clock_mono_s();
	if (run_recover(d, point, &rec, &child_rc, err) != BS_OK)
	{
		*exit_code = child_rc == EXIT_INTEGRITY ? EXIT_INTEGRITY : EXIT_FAILURE_RUNTIME;
		goto out;
	}
	rto = clock_mono_s() - t;
	phase(d, "recover", t);
	json_object_set(d->out, "recover_seconds", json_object_get(rec, "seconds"));
	json_object_set(d->out, "bytes_read", json_object_get(rec, "download_bytes"));
	json_object_set(d->out, "point", json_object_get(rec, "point"));
	json_object_set(d->out, "last_commit_lsn", json_object_get(rec, "last_commit_lsn"));

	/* 6. compare */
	t = clock_mono_s();
	if (checksum(d->tconn ? d->tconn : d->conn, DRILL_SCHEMA, d->copy_name, &recovered, err) != BS_OK)
		goto out;
	phase(d, "compare", t);
	rto += clock_mono_s() - t;
	json_object_set_new(d->out, "rto_seconds", json_real(rto));
	json_object_set_new(d->out, "recovered_checksum", json_string(recovered));
	if (live && !d->scratch)
	{
		/* The live checksum stands for the point only if the last transaction the recovery
		 * applied is one the snapshot saw (else the table changed as the drill read it). */
		const char *lsn = json_string_value(json_object_get(rec, "last_commit_lsn"));

		if (lsn && !visible_in_snapshot(snapshot, (uint32_t) json_integer_value(json_object_get(rec, "last_xid"))))
		{
			live = false;
			json_object_set_new(d->out, "note", json_string("the table changed while the drill read it: validated against the archive's own checksum"));
		}
	}
	if (live)
	{
		json_object_set_new(d->out, "validation", json_string(d->scratch ? "scratch checksum" : "live table checksum"));
		json_object_set_new(d->out, "expected_checksum", json_string(expected));
		if (strcmp(expected, recovered) != 0)
		{
			*exit_code = EXIT_INTEGRITY;
			error_set(err, ERRCODE_DATA_CORRUPTED, "the recovered copy of %s differs: checksum %s, expected %s (at LSN %s)",
					  d->source, recovered, expected, point ? point : "latest");
			goto out;
		}
	}
	else
		/* recover compared Backstop's checksum of the rows it rebuilt with PostgreSQL's */
		json_object_set_new(d->out, "validation", json_string("archive checksum"));
	*exit_code = EXIT_OK;
	rc = BS_OK;
out:
	json_decref(rec);
	free(expected);
	free(recovered);
	free(point);
	free(snapshot);
	free(lsn_now);
	return rc;
}

int
cmd_drill(bs_config *cfg, int argc, char **argv)
{
	drill		d;
	bs_error	err;
	int			exit_code = EXIT_FAILURE_RUNTIME;
	bool		json = config_get_bool(cfg, CFG_JSON);
	double		t0 = clock_mono_s();

	(void) argv;
	memset(&d, 0, sizeof(d));
	error_clear(&err);
	if (argc > 0)
	{
		cli_usage_error("drill", "unexpected argument \"%s\"", argv[0]);
		return EXIT_USAGE;
	}
	d.cfg = cfg;
	d.db = config_get(cfg, CFG_DB);
	d.to_db = config_get(cfg, CFG_TO_DB);
	d.listen = config_get(cfg, CFG_LISTEN);
	if (d.listen && (strcmp(d.listen, "off") == 0 || *d.listen == '\0'))
		d.listen = NULL;
	d.timeout_ms = config_get_duration_ms(cfg, CFG_TIMEOUT);
	d.scratch = config_get(cfg, CFG_TABLE) == NULL;
	if (d.db == NULL)
	{
		cli_usage_error("drill", "--db is required");
		return EXIT_USAGE;
	}
	if (config_get(cfg, CFG_TABLE) && config_get_bool(cfg, CFG_SCRATCH))
	{
		cli_usage_error("drill", "give --table or --scratch, not both");
		return EXIT_USAGE;
	}
	if (d.scratch && d.listen == NULL)
	{
		cli_usage_error("drill", "a scratch drill needs the running archiver's --listen");
		return EXIT_USAGE;
	}
	if (control_load_token(cfg, &d.token, &err) != BS_OK)
	{
		cli_report_error("drill", &err);
		return EXIT_USAGE;
	}
	d.out = json_object();
	d.phases = json_object();
	json_object_set_new(d.out, "mode", json_string(d.scratch ? "scratch" : "table"));
	if (!d.scratch)
	{
		/* Known from the start: a drill that fails at once still says which table it drilled. */
		d.source = xstrdup(config_get(cfg, CFG_TABLE));
		json_object_set_new(d.out, "table", json_string(d.source));
	}
	if (run_drill(&d, &exit_code, &err) != BS_OK)
	{
		char	   *msg = redact_text(err.message);

		json_object_set_new(d.out, "error", json_string(msg));
		free(msg);
	}
	cleanup(&d);
	json_object_set_new(d.out, "ok", json_boolean(exit_code == EXIT_OK));
	json_object_set_new(d.out, "exit_code", json_integer(exit_code));
	json_object_set(d.out, "phases_seconds", d.phases);
	json_object_set_new(d.out, "total_seconds", json_real(clock_mono_s() - t0));
	{
		/* For the archiver's /metrics: the last drill's outcome. */
		json_t	   *st = json_object();
		bs_error	serr;

		error_clear(&serr);
		json_object_set_new(st, "time", json_integer((json_int_t) (clock_unix_us() / 1000000)));
		json_object_set_new(st, "ok", json_boolean(exit_code == EXIT_OK));
		json_object_set_new(st, "mode", json_string(d.scratch ? "scratch" : "table"));
		if (json_object_get(d.out, "rto_seconds"))
			json_object_set(st, "rto_seconds", json_object_get(d.out, "rto_seconds"));
		if (json_object_get(d.out, "rpo_seconds"))
			json_object_set(st, "rpo_seconds", json_object_get(d.out, "rpo_seconds"));
		if (drillstate_write(config_get(cfg, CFG_DATA_DIR), st, &serr) != BS_OK)
			fprintf(stderr, "backstop drill: WARNING: the result was not recorded for /metrics: %s\n", serr.message);
		json_decref(st);
	}
	if (json)
	{
		jsonout_print(d.out, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
	}
	else
	{
		const char *e = json_string_value(json_object_get(d.out, "error"));
		char	   *shown = xstrdup_printable(d.source ? d.source : "?");
		const char *k;
		json_t	   *v;

		printf("drill %s: %s (%s)\n", exit_code == EXIT_OK ? "PASSED" : "FAILED", shown, d.scratch ? "scratch table" : "table");
		free(shown);
		if (json_object_get(d.out, "validation"))
			printf("  validation:  %s\n", json_string_value(json_object_get(d.out, "validation")));
		if (json_object_get(d.out, "recovered_checksum"))
			printf("  checksum:    %s\n", json_string_value(json_object_get(d.out, "recovered_checksum")));
		if (json_is_string(json_object_get(d.out, "point")))
			printf("  point:       %s\n", json_string_value(json_object_get(d.out, "point")));
		if (json_object_get(d.out, "rpo_seconds"))
			printf("  RPO:         %.3f s (from the last commit to a verified recovery point)\n",
				   json_real_value(json_object_get(d.out, "rpo_seconds")));
		if (json_object_get(d.out, "rto_seconds"))
			printf("  RTO:         %.3f s (recover and compare)\n", json_real_value(json_object_get(d.out, "rto_seconds")));
		if (json_object_get(d.out, "bytes_read"))
			printf("  bytes read:  %lld\n", (long long) json_integer_value(json_object_get(d.out, "bytes_read")));
		printf("  phases:     ");
		json_object_foreach(d.phases, k, v)
			printf(" %s %.3f s;", k, json_real_value(v));
		printf("\n");
		if (json_object_get(d.out, "note"))
			printf("  note:        %s\n", json_string_value(json_object_get(d.out, "note")));
		if (e)
		{
			char	   *es = xstrdup_printable(e);

			printf("  error:       %s\n", es);
			free(es);
		}
	}
	if (d.conn)
		PQfinish(d.conn);
	if (d.tconn)
		PQfinish(d.tconn);
	json_decref(d.phases);
	json_decref(d.out);
	free(d.token);
	free(d.source);
	free(d.src_schema);
	free(d.src_name);
	free(d.copy_name);
	return exit_code;
}
