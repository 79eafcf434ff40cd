/* cmd_doctor.c — `backstop doctor`: storage, PostgreSQL, slot, publication, tables, privileges and freshness, with a fix per finding. */
#include "cmd_doctor.h"
#include "clock.h"
#include "cli.h"
#include "catalog.h"
#include "cmd_checkpoint.h"
#include "control.h"
#include "isotime.h"
#include "jsonout.h"
#include "lsn.h"
#include "manifest.h"
#include "manifest_head.h"
#include "manifest_store.h"
#include "pgsql.h"
#include "quote.h"
#include "redact.h"
#include "storage.h"
#include "storage_config.h"
#include "strbuf.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct probe
{
	json_t	   *obj;			/* {"ok":..., "steps":[...], "warnings":[...], ...} */
	json_t	   *steps;
	json_t	   *warnings;
	bool		ok;
} probe;

static void
probe_init(probe *p)
{
	p->obj = json_object();
	p->steps = json_array();
	p->warnings = json_array();
	p->ok = true;
	json_object_set_new(p->obj, "steps", p->steps);
	json_object_set_new(p->obj, "warnings", p->warnings);
}

static void
add_step(probe *p, const char *name, bool ok, double ms)
{
	json_t	   *s = json_object();

	json_object_set_new(s, "step", json_string(name));
	json_object_set_new(s, "ok", json_boolean(ok));
	json_object_set_new(s, "ms", json_real((double) ((long long) (ms * 100.0 + 0.5)) / 100.0));
	json_array_append_new(p->steps, s);
}

/* A short, actionable cause for a storage failure. */
static const char *
storage_reason(const bs_error *err, const char *step)
{
	const char *m = err->message;

	if (strstr(m, "NoSuchBucket"))
		return "the bucket does not exist";
	if (strstr(m, "InvalidAccessKeyId") || strstr(m, "SignatureDoesNotMatch") ||
		strstr(m, "no S3 credentials") || strstr(m, "ExpiredToken") || strstr(m, "InvalidToken"))
		return "bad or missing credentials";
	if (strstr(m, "AccessDenied") || strcmp(err->code, ERRCODE_PERMISSION) == 0 ||
		strcmp(err->code, ERRCODE_AUTH) == 0)
		return strcmp(step, "put") == 0 ? "no write permission" :
			strcmp(step, "delete") == 0 ? "no delete permission" : "no permission";
	if ((strcmp(err->code, ERRCODE_TRANSIENT) == 0 || strcmp(err->code, ERRCODE_CONNECTION) == 0) &&
		err->http_status == 0)
		return "storage unreachable";
	if (strcmp(err->code, ERRCODE_INVALID_PARAMETER) == 0)
		return "invalid storage configuration";
	if (strcmp(err->code, ERRCODE_DISK_FULL) == 0)
		return "disk full";
	return "storage error";
}

static void
fail_step(probe *p, const char *step, double ms, const bs_error *err)
{
	char	   *msg = redact_text(err->message);

	add_step(p, step, false, ms);
	p->ok = false;
	json_object_set_new(p->obj, "failed_step", json_string(step));
	json_object_set_new(p->obj, "reason", json_string(storage_reason(err, step)));
	json_object_set_new(p->obj, "error", json_string(msg));
	free(msg);
}

typedef struct find_ctx
{
	const char *want;
	bool		found;
} find_ctx;

static int
find_cb(void *ctx, const char *key, uint64_t size, bs_error *err)
{
	find_ctx   *f = ctx;

	(void) size;
	(void) err;
	if (strcmp(key, f->want) == 0)
		f->found = true;
	return BS_OK;
}

static void
probe_storage(const bs_config *cfg, probe *p)
{
	const char *url = config_get(cfg, CFG_STORAGE);
	storage    *st = NULL;
	bs_error	err;
	char		key[128];
	char		payload[256];
	strbuf		got = STRBUF_INIT;
	find_ctx	fc;
	double		t;
	bool		exists = true;

	error_clear(&err);
	{
		char	   *shown = redact_text(url);

		json_object_set_new(p->obj, "url", json_string(shown));
		free(shown);
	}
	t = (1e3 * clock_mono_s());
	if (storage_config_open(url, cfg, &st, &err) != BS_OK)
	{
		fail_step(p, "open", (1e3 * clock_mono_s()) - t, &err);
		return;
	}
	snprintf(key, sizeof(key), "doctor/probe-%ld-%d", (long) (clock_unix_us() / 1000000), (int) getpid());
	snprintf(payload, sizeof(payload), "backstop doctor probe %s\n", key);

	t = (1e3 * clock_mono_s());
	if (storage_put(st, key, payload, strlen(payload), &err) != BS_OK)
	{
		fail_step(p, "put", (1e3 * clock_mono_s()) - t, &err);
		goto out;
	}
	add_step(p, "put", true, (1e3 * clock_mono_s()) - t);

	t = (1e3 * clock_mono_s());
	if (storage_get_all(st, key, &got, &err) != BS_OK)
	{
		fail_step(p, "get", (1e3 * clock_mono_s()) - t, &err);
		goto out;
	}
	if (got.len != strlen(payload) || memcmp(got.data, payload, got.len) != 0)
	{
		error_set(&err, ERRCODE_DATA_CORRUPTED, "the probe object read back differs from what was written");
		fail_step(p, "get", (1e3 * clock_mono_s()) - t, &err);
		goto out;
	}
	add_step(p, "get", true, (1e3 * clock_mono_s()) - t);

	fc.want = key;
	fc.found = false;
	t = (1e3 * clock_mono_s());
	if (storage_list(st, "doctor/", find_cb, &fc, &err) != BS_OK)
	{
		fail_step(p, "list", (1e3 * clock_mono_s()) - t, &err);
		goto out;
	}
	if (!fc.found)
	{
		error_set(&err, ERRCODE_STORAGE, "the probe object is missing from the listing");
		fail_step(p, "list", (1e3 * clock_mono_s()) - t, &err);
		goto out;
	}
	add_step(p, "list", true, (1e3 * clock_mono_s()) - t);

	t = (1e3 * clock_mono_s());
	if (storage_delete(st, key, &err) != BS_OK)
	{
		/* Refused deletes are what immutable storage looks like: fine, not a failure. */
		if (strcmp(err.code, ERRCODE_AUTH) == 0 || strcmp(err.code, ERRCODE_PERMISSION) == 0)
		{
			add_step(p, "delete", false, (1e3 * clock_mono_s()) - t);
			json_object_set_new(p->obj, "delete_permitted", json_false());
			{
				strbuf		w = STRBUF_INIT;

				strbuf_printf(&w, "delete is refused (good for immutability); the probe object \"%s\" stays", key);
				json_object_set_new(p->obj, "note", json_string(w.data));
				strbuf_free(&w);
			}
			goto out;
		}
		fail_step(p, "delete", (1e3 * clock_mono_s()) - t, &err);
		goto out;
	}
	if (storage_head(st, key, &exists, NULL, &err) == BS_OK && exists)
	{
		/* Object lock / versioning may keep it: deletes then do not destroy data. */
		add_step(p, "delete", true, (1e3 * clock_mono_s()) - t);
		json_object_set_new(p->obj, "delete_permitted", json_false());
		goto out;
	}
	add_step(p, "delete", true, (1e3 * clock_mono_s()) - t);
	json_object_set_new(p->obj, "delete_permitted", json_true());
	json_array_append_new(p->warnings,
						  json_string("objects can be deleted with these credentials; immutable storage "
									  "(object lock, or credentials without delete permission) is safer "
									  "against ransomware and mistakes"));
out:
	json_object_set_new(p->obj, "ok", json_boolean(p->ok));
	strbuf_free(&got);
	storage_close(st);
}


/* ---------- findings ---------- */

#define EXIT_DOCTOR_DEGRADED 8	/* doctor: usable, with warnings (README, "Exit codes") */

typedef struct findings
{
	json_t	   *arr;
	int			errors;
	int			warnings;
} findings;

/*
 * One finding: severity "error" (not ready), "warning" (degraded) or "info"; check names
 * what was looked at; fix is the exact statement or setting that cures it (NULL: none).
 */
static void __attribute__((format(printf, 4, 5)))
add_finding(findings *f, const char *severity, const char *fix, const char *fmt, ...)
{
	va_list		ap;
	char	   *msg;
	json_t	   *o = json_object();

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	json_object_set_new(o, "severity", json_string(severity));
	json_object_set_new(o, "message", json_string(msg));
	json_object_set_new(o, "fix", fix ? json_string(fix) : json_null());
	json_array_append_new(f->arr, o);
	if (strcmp(severity, "error") == 0)
		f->errors++;
	else if (strcmp(severity, "warning") == 0)
		f->warnings++;
	free(msg);
}

/* The check a finding belongs to, set on the last one added. */
static void
tag_finding(findings *f, const char *check, const char *subject)
{
	json_t	   *o = json_array_get(f->arr, json_array_size(f->arr) - 1);

	json_object_set_new(o, "check", json_string(check));
	if (subject)
		json_object_set_new(o, "subject", json_string(subject));
}

static const char *
fmt_bytes(double v, char *buf, size_t len)
{
	const char *u[] = {"bytes", "kB", "MB", "GB", "TB"};
	int			i = 0;

	while (v >= 1024.0 && i < 4)
	{
		v /= 1024.0;
		i++;
	}
	snprintf(buf, len, i == 0 ? "%.0f %s" : "%.1f %s", v, u[i]);
	return buf;
}

static const char *
fmt_seconds(double s, char *buf, size_t len)
{
	if (s < 120)
		snprintf(buf, len, "%.0f s", s);
	else if (s < 7200)
		snprintf(buf, len, "%.0f min", s / 60);
	else if (s < 172800)
		snprintf(buf, len, "%.1f h", s / 3600);
	else
		snprintf(buf, len, "%.1f days", s / 86400);
	return buf;
}

/* What doctor learnt that a later check needs. */
typedef struct doctor_state
{
	bool		archiver_reached;
	bool		archiver_caught_up;	/* streaming, nothing received that is not durable */
	int			archived_tables;	/* active tables in storage (-1: storage not read) */
} doctor_state;

/* ---------- the archiver's endpoint ---------- */

static bool
metric_value(const char *text, const char *name, double *out)
{
	size_t		n = strlen(name);

	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
	{
		if (strncmp(p, name, n) == 0 && p[n] == ' ')
		{
			*out = strtod(p + n + 1, NULL);
			return true;
		}
	}
	return false;
}

static void
check_archiver(const bs_config *cfg, json_t *root, findings *f, doctor_state *ds)
{
	const char *listen = config_get(cfg, CFG_LISTEN);
	bool		explicit = strcmp(config_origin(cfg, CFG_LISTEN), "default") != 0;
	char	   *token = NULL;
	strbuf		body = STRBUF_INIT;
	long		status = 0;
	bs_error	err;
	json_t	   *o = json_object();
	json_t	   *health = NULL;
	double		v;
	char		b1[32],
				b2[32];

	error_clear(&err);
	if (listen == NULL || strcmp(listen, "off") == 0 || *listen == '\0')
	{
		json_decref(o);
		return;
	}
	json_object_set_new(root, "archiver", o);
	json_object_set_new(o, "listen", json_string(listen));
	if (control_load_token(cfg, &token, &err) != BS_OK)
	{
		add_finding(f, "error", "set control_token_file to a readable file holding the archiver's token",
					"the control token could not be read: %s", err.message);
		tag_finding(f, "archiver", listen);
		return;
	}
	if (cmd_checkpoint_get(listen, token, "/health", config_get_duration_ms(cfg, CFG_TIMEOUT), &status, &body,
						   &err) != BS_OK)
	{
		json_object_set_new(o, "reachable", json_false());
		if (explicit)
			add_finding(f, "error", "start `backstop archive` with --listen (or give doctor the --listen it uses)",
						"the archiver does not answer at %s: it is not running, or listens elsewhere (%s)", listen,
						err.message);
		else
			add_finding(f, "info", "give --listen HOST:PORT when the archiver listens elsewhere",
						"no archiver answers at %s (the default --listen): its lag and spool are not checked", listen);
		tag_finding(f, "archiver", listen);
		goto out;
	}
	ds->archiver_reached = true;
	json_object_set_new(o, "reachable", json_true());
	if (status == 401 || status == 403)
	{
		add_finding(f, "error", "give doctor the archiver's token: control_token (BACKSTOP_CONTROL_TOKEN) or --control-token-file",
					"the archiver at %s refused doctor's token (HTTP %ld)", listen, status);
		tag_finding(f, "archiver", listen);
		goto out;
	}
	health = json_loadb(body.data ? body.data : "", body.len, 0, NULL);
	if (!json_is_object(health))
	{
		add_finding(f, "error", NULL, "the endpoint at %s answered /health with something that is not Backstop's (HTTP %ld)",
					listen, status);
		tag_finding(f, "archiver", listen);
		goto out;
	}
	json_object_set(o, "health", health);
	if (!json_is_true(json_object_get(health, "streaming")))
	{
		add_finding(f, "warning", "see the archiver's log: it reconnects by itself once PostgreSQL is back",
					"the archiver at %s is not streaming from PostgreSQL", listen);
		tag_finding(f, "archiver", listen);
	}
	else if (status != 200)
	{
		add_finding(f, "warning", "see the archiver's log; the spool empties once storage accepts uploads again",
					"the archiver at %s reports degraded: sealed segments wait in the spool (%s) for storage", listen,
					fmt_bytes((double) json_integer_value(json_object_get(health, "spool_bytes")), b1, sizeof(b1)));
		tag_finding(f, "archiver", listen);
	}
	strbuf_reset(&body);
	if (cmd_checkpoint_get(listen, token, "/metrics", config_get_duration_ms(cfg, CFG_TIMEOUT), &status, &body,
						   &err) == BS_OK && status == 200 && body.data)
	{
		double		lag = 0;

		if (metric_value(body.data, "backstop_lag_bytes", &lag))
			json_object_set_new(o, "lag_bytes", json_real(lag));
		if (metric_value(body.data, "backstop_spool_bytes", &v))
			json_object_set_new(o, "spool_bytes", json_real(v));
		if (metric_value(body.data, "backstop_slot_retained_wal_bytes", &v))
			json_object_set_new(o, "slot_retained_wal_bytes", json_real(v));
		if (metric_value(body.data, "backstop_upload_errors_total", &v))
		{
			json_object_set_new(o, "upload_errors", json_real(v));
			if (v > 0)
			{
				add_finding(f, "info", NULL, "the archiver at %s retried %.0f failed upload(s) since it started", listen, v);
				tag_finding(f, "archiver", listen);
			}
		}
		if (metric_value(body.data, "backstop_seconds_behind", &v))
		{
			json_object_set_new(o, "seconds_behind", json_real(v));
			if (v * 1000.0 > (double) config_get_duration_ms(cfg, CFG_STALE_AFTER))
			{
				add_finding(f, "warning", "see the archiver's log and its backstop_lag_bytes; raise --stale-after if this is expected",
							"the archiver at %s is %s behind (its newest durable commit), more than --stale-after", listen,
							fmt_seconds(v, b2, sizeof(b2)));
				tag_finding(f, "freshness", listen);
			}
		}
		ds->archiver_caught_up = json_is_true(json_object_get(health, "streaming")) && lag == 0;
	}
out:
	json_decref(health);
	strbuf_free(&body);
	free(token);
}

/* ---------- freshness, from storage ---------- */

static void
check_freshness(const bs_config *cfg, json_t *root, findings *f, doctor_state *ds)
{
	storage    *st = NULL;
	archive_head head;
	bool		head_exists = false;
	uint32_t   *relids = NULL;
	int			n = 0;
	bs_error	err;
	json_t	   *arr = json_array();
	int64_t		stale_ms = config_get_duration_ms(cfg, CFG_STALE_AFTER);
	int64_t		now_us = clock_unix_us();

	error_clear(&err);
	memset(&head, 0, sizeof(head));
	json_object_set_new(root, "freshness", arr);
	if (storage_config_open(config_get(cfg, CFG_STORAGE), cfg, &st, &err) != BS_OK ||
		archive_head_load(st, &head, &head_exists, &err) != BS_OK ||
		manifest_list_relids(st, &relids, &n, &err) != BS_OK)
	{
		add_finding(f, "error", "backstop verify shows what is damaged", "the archive could not be read: %s", err.message);
		tag_finding(f, "freshness", NULL);
		goto out;
	}
	ds->archived_tables = 0;
	for (int i = 0; i < n; i++)
	{
		manifest   *m = NULL;
		bool		exists = false;
		uint64_t	to_lsn;
		int64_t		to_time;
		double		age;
		char		l[LSN_BUFLEN],
					tm[ISOTIME_BUFLEN],
					a[32];
		json_t	   *o;
		char	   *name;

		error_clear(&err);
		if (manifest_load(st, relids[i], &m, &exists, &err) != BS_OK)
		{
			add_finding(f, "error", "backstop verify shows what is damaged", "a manifest could not be read: %s", err.message);
			tag_finding(f, "freshness", NULL);
			continue;
		}
		if (!exists || strcmp(m->status, "active") != 0)
		{
			manifest_free(m);
			continue;
		}
		ds->archived_tables++;
		name = quote_display_name(m->schema, m->name);
		if (m->nbases == 0)
		{
			add_finding(f, "warning", "wait for the archiver's base copy (backstop_base_copy_running), or see its log",
						"%s has no base copy yet: it cannot be recovered", name);
			tag_finding(f, "freshness", name);
			free(name);
			manifest_free(m);
			continue;
		}
		/* The latest verified point as `info` computes it. */
		to_lsn = m->archived_to;
		to_time = m->nsegments ? m->segments[m->nsegments - 1].last_time : m->bases[m->nbases - 1].time;
		if (head_exists && head.flushed_lsn > to_lsn)
		{
			to_lsn = head.flushed_lsn;
			to_time = head.time;
		}
		age = (double) (now_us - to_time) / 1e6;
		if (age < 0)
			age = 0;
		o = json_object();
		json_object_set_new(o, "table", json_sprintf("%s.%s", m->schema, m->name));
		json_object_set_new(o, "latest_lsn", json_string(lsn_format(to_lsn, l)));
		json_object_set_new(o, "latest_time", jsonout_time(to_time));
		json_object_set_new(o, "age_seconds", json_real(floor(age)));
		json_array_append_new(arr, o);
		if (age * 1000.0 > (double) stale_ms)
		{
			/* Idle is not stale: a caught-up archiver has archived everything there is. */
			add_finding(f, ds->archiver_caught_up ? "info" : "warning",
						ds->archiver_caught_up ? NULL : "check that `backstop archive` runs and streams (its /health); raise --stale-after for a table that is rarely written",
						"the latest verified point of %s (LSN %s, %s) is %s old, more than --stale-after%s", name, l,
						isotime_format(to_time, tm), fmt_seconds(age, a, sizeof(a)),
						ds->archiver_caught_up ? "; the archiver is streaming and caught up, so nothing newer was written" : "");
			tag_finding(f, "freshness", name);
		}
		free(name);
		manifest_free(m);
	}
out:
	free(relids);
	if (head_exists)
		archive_head_clear(&head);
	storage_close(st);
}

/* ---------- PostgreSQL ---------- */

/* A value of a one-row result by column name ("" when NULL). */
static const char *
col(PGresult *res, int row, const char *name)
{
	int			c = PQfnumber(res, name);

	return c < 0 || PQgetisnull(res, row, c) ? NULL : PQgetvalue(res, row, c);
}

static bool
is_true(const char *v)
{
	return v && v[0] == 't';
}

static void
db_failed(probe *p, findings *f, const char *what, const bs_error *err)
{
	char	   *msg = redact_text(err->message);

	p->ok = false;
	json_object_set_new(p->obj, "error", json_string(msg));
	add_finding(f, "error", NULL, "%s: %s", what, msg);
	tag_finding(f, "server", NULL);
	free(msg);
}

typedef struct server_facts
{
	int			version;
	double		wal_rate;		/* bytes per second, average since the statistics were reset; <0: unknown */
	double		keep_mb;		/* max_slot_wal_keep_size in MB, -1 unset, -2 not supported */
	char	   *user;
	char	   *dbname;
	bool		superuser;
	bool		replication;
	bool		create_db;		/* CREATE on the database: CREATE PUBLICATION */
} server_facts;

static void
check_server(PGconn *conn, const bs_config *cfg, probe *p, findings *f, server_facts *sf)
{
	PGresult   *res = NULL;
	bs_error	err;
	const char *v;
	char		fix[512],
				b1[32];

	error_clear(&err);
	sf->version = PQserverVersion(conn);
	sf->wal_rate = -1;
	sf->keep_mb = -2;
	json_object_set_new(p->obj, "server_version", json_string(PQparameterStatus(conn, "server_version")));
	json_object_set_new(p->obj, "server_version_num", json_integer(sf->version));
	if (sf->version < 100000)
	{
		add_finding(f, "error", "upgrade PostgreSQL (Backstop is tested with PostgreSQL 15)",
					"PostgreSQL %s is not supported: 10 or later is required (pgoutput)", PQparameterStatus(conn, "server_version"));
		tag_finding(f, "server", "server_version");
		return;
	}

	/* the role */
	if (pgsql_query(conn, "SELECT current_user AS u, current_database() AS d, r.rolsuper AS su, "
					"r.rolreplication OR r.rolsuper AS repl, "
					"has_database_privilege(current_database(), 'CREATE') AS create_db "
					"FROM pg_catalog.pg_roles r WHERE r.rolname = current_user", &res, &err) != BS_OK ||
		PQntuples(res) != 1)
	{
		db_failed(p, f, "could not read the role", &err);
		PQclear(res);
		return;
	}
	sf->user = xstrdup(col(res, 0, "u"));
	sf->dbname = xstrdup(col(res, 0, "d"));
	sf->superuser = is_true(col(res, 0, "su"));
	sf->replication = is_true(col(res, 0, "repl"));
	sf->create_db = is_true(col(res, 0, "create_db")) || sf->superuser;
	PQclear(res);
	json_object_set_new(p->obj, "user", json_string(sf->user));
	json_object_set_new(p->obj, "replication", json_boolean(sf->replication));
	if (!sf->replication)
	{
		char	   *q = quote_ident(sf->user);

		snprintf(fix, sizeof(fix), "ALTER ROLE %s REPLICATION;", q);
		add_finding(f, "error", fix, "role \"%s\" lacks REPLICATION: it cannot create or stream from the slot", sf->user);
		tag_finding(f, "privileges", sf->user);
		free(q);
	}

	/* settings */
	if (pgsql_query(conn, "SELECT "
					"current_setting('wal_level') AS wal_level, "
					"current_setting('max_replication_slots')::int AS max_slots, "
					"current_setting('max_wal_senders')::int AS max_senders, "
					"(SELECT setting FROM pg_settings WHERE name = 'max_slot_wal_keep_size') AS keep_mb, "
					"(SELECT setting FROM pg_settings WHERE name = 'wal_sender_timeout')::bigint AS sender_timeout_ms, "
					"current_setting('track_commit_timestamp') AS track_ts, "
					"(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'walsender') AS senders",
					&res, &err) != BS_OK)
	{
		db_failed(p, f, "could not read the server's settings", &err);
		return;
	}
	v = col(res, 0, "wal_level");
	json_object_set_new(p->obj, "wal_level", json_string(v ? v : "?"));
	if (v && strcmp(v, "logical") != 0)
	{
		add_finding(f, "error", "ALTER SYSTEM SET wal_level = logical;  -- then restart PostgreSQL",
					"wal_level is %s, not logical: logical decoding (and so backstop archive) is impossible", v);
		tag_finding(f, "server", "wal_level");
	}
	json_object_set_new(p->obj, "max_replication_slots", json_integer(atoi(col(res, 0, "max_slots"))));
	json_object_set_new(p->obj, "max_wal_senders", json_integer(atoi(col(res, 0, "max_senders"))));
	json_object_set_new(p->obj, "wal_senders_in_use", json_integer(atoi(col(res, 0, "senders"))));
	if (atoi(col(res, 0, "max_senders")) <= atoi(col(res, 0, "senders")))
	{
		snprintf(fix, sizeof(fix), "ALTER SYSTEM SET max_wal_senders = %d;  -- then restart PostgreSQL",
				 atoi(col(res, 0, "senders")) + 2);
		add_finding(f, "warning", fix, "no free WAL sender: max_wal_senders is %s and %s are in use",
					col(res, 0, "max_senders"), col(res, 0, "senders"));
		tag_finding(f, "server", "max_wal_senders");
	}
	if ((v = col(res, 0, "keep_mb")) != NULL)
		sf->keep_mb = atof(v);
	{
		long long	st_ms = col(res, 0, "sender_timeout_ms") ? atoll(col(res, 0, "sender_timeout_ms")) : -1;
		int64_t		status_ms = config_get_duration_ms(cfg, CFG_STATUS_INTERVAL);

		json_object_set_new(p->obj, "wal_sender_timeout_ms", json_integer(st_ms));
		if (st_ms == 0)
		{
			add_finding(f, "warning", "ALTER SYSTEM SET wal_sender_timeout = '60s'; SELECT pg_reload_conf();",
						"wal_sender_timeout is 0: a dead archiver connection keeps the slot active (and its WAL) until TCP gives up");
			tag_finding(f, "server", "wal_sender_timeout");
		}
		else if (st_ms > 0 && st_ms < 2 * status_ms)
		{
			snprintf(fix, sizeof(fix), "ALTER SYSTEM SET wal_sender_timeout = '%llds'; SELECT pg_reload_conf();  -- or a lower --status-interval",
					 (long long) (4 * status_ms / 1000 + 1));
			add_finding(f, "warning", fix,
						"wal_sender_timeout (%lld ms) is less than twice the archiver's status_interval (%lld ms): an idle "
						"archiver can be disconnected", st_ms, (long long) status_ms);
			tag_finding(f, "server", "wal_sender_timeout");
		}
	}
	v = col(res, 0, "track_ts");
	json_object_set_new(p->obj, "track_commit_timestamp", json_string(v ? v : "?"));
	add_finding(f, "info", NULL,
				"track_commit_timestamp is %s: it does not change --to-time, which uses the commit time pgoutput sends "
				"with every transaction", v ? v : "?");
	tag_finding(f, "server", "track_commit_timestamp");
	json_object_set_new(p->obj, "max_slots", json_integer(atoi(col(res, 0, "max_slots"))));
	PQclear(res);

	/* the WAL rate, for sizing max_slot_wal_keep_size */
	if (sf->version >= 140000 &&
		pgsql_query(conn, "SELECT wal_bytes::float8 / greatest(extract(epoch FROM now() - "
					"coalesce(stats_reset, pg_postmaster_start_time())), 1) FROM pg_stat_wal", &res, &err) == BS_OK)
	{
		if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
			sf->wal_rate = atof(PQgetvalue(res, 0, 0));
		PQclear(res);
	}
	error_clear(&err);
	if (sf->wal_rate >= 0)
		json_object_set_new(p->obj, "wal_rate_bytes_per_second", json_real(floor(sf->wal_rate)));
	if (sf->keep_mb == -1)
	{
		char		fix2[512];

		if (sf->wal_rate > 0)
		{
			/* a day's outage at the average rate, plus a quarter (doc/archiving.md, sizing) */
			double		gb = ceil(sf->wal_rate * 86400.0 * 1.25 / (1024.0 * 1024 * 1024));

			if (gb < 1)
				gb = 1;
			snprintf(fix2, sizeof(fix2), "ALTER SYSTEM SET max_slot_wal_keep_size = '%.0fGB'; SELECT pg_reload_conf();  "
					 "-- about a day of WAL at the measured %s/s, plus 25%%; size it for the outage to tolerate "
					 "(doc/archiving.md)", gb, fmt_bytes(sf->wal_rate, b1, sizeof(b1)));
		}
		else
			snprintf(fix2, sizeof(fix2), "ALTER SYSTEM SET max_slot_wal_keep_size = '64GB'; SELECT pg_reload_conf();  "
					 "-- size it from the WAL rate and the outage to tolerate (doc/archiving.md)");
		add_finding(f, "warning", fix2,
					"max_slot_wal_keep_size is unset: an abandoned or stalled slot keeps WAL until the disk is full");
		tag_finding(f, "server", "max_slot_wal_keep_size");
	}
	json_object_set_new(p->obj, "max_slot_wal_keep_size_mb", json_real(sf->keep_mb));
}

static void
check_slots(PGconn *conn, const bs_config *cfg, probe *p, findings *f, server_facts *sf, const doctor_state *ds)
{
	const char *slot = config_get(cfg, CFG_SLOT);
	bool		new13 = sf->version >= 130000;
	PGresult   *res = NULL;
	bs_error	err;
	bool		found = false;
	int			max_slots = (int) json_integer_value(json_object_get(p->obj, "max_slots"));
	char		fix[512],
				b1[32],
				b2[32];
	strbuf		sql = STRBUF_INIT;

	error_clear(&err);
	strbuf_printf(&sql, "SELECT slot_name, plugin, slot_type, database, active, "
				  "CASE WHEN restart_lsn IS NULL THEN NULL ELSE "
				  "pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END, restart_lsn)::bigint END AS held, "
				  "%s FROM pg_replication_slots ORDER BY slot_name",
				  new13 ? "wal_status, safe_wal_size" : "NULL::text AS wal_status, NULL::bigint AS safe_wal_size");
	if (pgsql_query(conn, sql.data, &res, &err) != BS_OK)
	{
		strbuf_free(&sql);
		db_failed(p, f, "could not read the replication slots", &err);
		return;
	}
	strbuf_free(&sql);
	for (int r = 0; r < PQntuples(res); r++)
	{
		const char *name = col(res, r, "slot_name");
		bool		active = is_true(col(res, r, "active"));
		double		held = col(res, r, "held") ? atof(col(res, r, "held")) : 0;
		const char *ws = col(res, r, "wal_status");
		char	   *lit = quote_literal(name);
		char		howlong[96] = "";

		if (sf->wal_rate > 0 && held > 0)
			snprintf(howlong, sizeof(howlong), " (about %s of WAL at the average rate)",
					 fmt_seconds(held / sf->wal_rate, b2, sizeof(b2)));
		if (strcmp(name, slot) == 0)
		{
			json_t	   *o = json_object();

			found = true;
			json_object_set_new(o, "name", json_string(name));
			json_object_set_new(o, "active", json_boolean(active));
			json_object_set_new(o, "wal_status", ws ? json_string(ws) : json_null());
			json_object_set_new(o, "retained_wal_bytes", json_real(held));
			json_object_set_new(o, "safe_wal_size", col(res, r, "safe_wal_size") ? json_real(atof(col(res, r, "safe_wal_size"))) : json_null());
			json_object_set_new(p->obj, "slot", o);
			if (strcmp(col(res, r, "slot_type"), "logical") != 0 || !col(res, r, "plugin") ||
				strcmp(col(res, r, "plugin"), "pgoutput") != 0 || !col(res, r, "database") ||
				strcmp(col(res, r, "database"), sf->dbname) != 0)
			{
				add_finding(f, "error", "choose another --slot name for Backstop",
							"slot \"%s\" exists but is not a pgoutput logical slot of database \"%s\"", name, sf->dbname);
				tag_finding(f, "slot", name);
			}
			if (ws && strcmp(ws, "lost") == 0)
			{
				snprintf(fix, sizeof(fix), "SELECT pg_drop_replication_slot(%s);  -- then start backstop archive: it takes new base copies", lit);
				add_finding(f, "error", fix, "slot \"%s\" is lost (max_slot_wal_keep_size was exceeded): changes since are not archived", name);
				tag_finding(f, "slot", name);
			}
			else if (ws && strcmp(ws, "unreserved") == 0)
			{
				add_finding(f, "error", "make sure the archiver runs and streams now; raise max_slot_wal_keep_size",
							"slot \"%s\" holds more WAL than max_slot_wal_keep_size (wal_status unreserved): it is lost at the next checkpoint", name);
				tag_finding(f, "slot", name);
			}
			else if (ws && strcmp(ws, "extended") == 0 && sf->keep_mb >= 0)
			{
				add_finding(f, "warning", "make sure the archiver keeps up (backstop_lag_bytes); raise max_slot_wal_keep_size",
							"slot \"%s\" holds more than max_wal_size of WAL (wal_status extended)", name);
				tag_finding(f, "slot", name);
			}
			if (!active)
			{
				snprintf(fix, sizeof(fix), "start backstop archive; if this archive is abandoned: backstop archive --drop "
						 "(or SELECT pg_drop_replication_slot(%s);)", lit);
				add_finding(f, "warning", fix, "slot \"%s\" is not active (no archiver streams from it) and holds %s of WAL%s",
							name, fmt_bytes(held, b1, sizeof(b1)), howlong);
				tag_finding(f, "slot", name);
			}
			else if (sf->keep_mb > 0 && held > sf->keep_mb * 1024 * 1024 * 0.8)
			{
				add_finding(f, "warning", "see the archiver's lag; raise max_slot_wal_keep_size (doc/archiving.md)",
							"slot \"%s\" holds %s of WAL, more than 80%% of max_slot_wal_keep_size", name,
							fmt_bytes(held, b1, sizeof(b1)));
				tag_finding(f, "slot", name);
			}
		}
		else if (!active && held > 0)
		{
			snprintf(fix, sizeof(fix), "SELECT pg_drop_replication_slot(%s);  -- if nothing uses it any more", lit);
			add_finding(f, "warning", fix, "slot \"%s\" (not Backstop's) is inactive and holds %s of WAL%s", name,
						fmt_bytes(held, b1, sizeof(b1)), howlong);
			tag_finding(f, "slot", name);
		}
		free(lit);
	}
	if (!found)
	{
		json_object_set_new(p->obj, "slot", json_null());
		if (PQntuples(res) >= max_slots)
		{
			snprintf(fix, sizeof(fix), "ALTER SYSTEM SET max_replication_slots = %d;  -- then restart PostgreSQL", PQntuples(res) + 1);
			add_finding(f, "error", fix, "slot \"%s\" does not exist and no slot is free (max_replication_slots %d, %d in use)",
						slot, max_slots, PQntuples(res));
			tag_finding(f, "server", "max_replication_slots");
		}
		if (ds->archived_tables > 0)
			add_finding(f, "warning", "see doc/archiving.md (\"The slot and WAL\"); --slot must name the archiver's slot",
						"slot \"%s\" does not exist although the archive holds %d table(s): changes made since it was lost "
						"are not archived", slot, ds->archived_tables);
		else
			add_finding(f, "info", NULL, "slot \"%s\" does not exist yet: the archiver's first start creates it", slot);
		tag_finding(f, "slot", slot);
	}
	PQclear(res);
}

/* The tables the archiver is asked for, from --tables / --all-tables, else the publication's. */
/* Schema changes in the stream (doc/archiving.md): the event triggers the archiver uses. */
static void
check_ddl_capture(PGconn *conn, const bs_config *cfg, findings *f, const server_facts *sf)
{
	const char *mode = config_get(cfg, CFG_DDL_CAPTURE);
	char *present = NULL;
	bs_error err;

	error_clear(&err);
	if (mode && strcmp(mode, "off") == 0)
	{
		add_finding(f, "warning", "set ddl_capture = auto (or on) so that schema changes, drops and renames are "
					"recorded at their own position",
					"ddl_capture is off: a schema change after a table's last row change is not in the archive at "
					"its position, a drop is placed where a table check found it");
		tag_finding(f, "tables", "ddl_capture");
		return;
	}
	if (pgsql_query_value(conn, "SELECT count(*) = 3 FROM pg_event_trigger WHERE evtname IN "
						  "('backstop_ddl_end', 'backstop_ddl_drop', 'backstop_ddl_rewrite') AND evtenabled <> 'D'",
						  &present, &err) != BS_OK)
		return;
	if (strcmp(present, "t") == 0)
		add_finding(f, "info", NULL, "schema changes are captured in the stream (Backstop's event triggers are in place)");
	else if (sf->superuser)
		add_finding(f, "info", NULL, "Backstop's event triggers are not in place yet: the archiver creates them at "
					"start (it runs as a superuser)");
	else
		add_finding(f, "warning", "as a superuser, start `backstop archive` once (it creates the event triggers in "
					"schema backstop), or run it with ddl_capture = off knowingly",
					"schema changes are not captured in the stream: the event triggers are not in place and role "
					"\"%s\" may not create them", sf->user);
	tag_finding(f, "tables", "ddl_capture");
	free(present);
}

static void
check_tables(PGconn *conn, const bs_config *cfg, probe *p, findings *f, server_facts *sf)
{
	const char *tables = config_get(cfg, CFG_TABLES);
	bool		all = config_get_bool(cfg, CFG_ALL_TABLES);
	const char *pubname = config_get(cfg, CFG_PUBLICATION);
	const char *params[1] = {pubname};
	catalog_table_list list;
	PGresult   *pub = NULL,
			   *pubt = NULL,
			   *priv = NULL;
	bs_error	err;
	bool		pub_exists,
				pub_owned = false,
				from_pub = tables == NULL && !all;
	strbuf		oids = STRBUF_INIT;
	char		fix[1024];
	json_t	   *arr = json_array();
	char	   *pubq = quote_ident(pubname);
	char	   *userq = quote_ident(sf->user);

	error_clear(&err);
	memset(&list, 0, sizeof(list));
	json_object_set_new(p->obj, "tables", arr);
	if (pgsql_query_params(conn, "SELECT pg_has_role(pubowner, 'USAGE'), puballtables FROM pg_publication WHERE pubname = $1",
						   1, params, &pub, &err) != BS_OK ||
		pgsql_query_params(conn, "SELECT c.oid FROM pg_publication_tables p JOIN pg_namespace n ON n.nspname = p.schemaname "
						   "JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename WHERE p.pubname = $1",
						   1, params, &pubt, &err) != BS_OK)
	{
		db_failed(p, f, "could not read the publication", &err);
		goto out;
	}
	pub_exists = PQntuples(pub) == 1;
	pub_owned = pub_exists && is_true(PQgetvalue(pub, 0, 0));
	json_object_set_new(p->obj, "publication", pub_exists ? json_string(pubname) : json_null());
	if (!pub_exists && !sf->create_db)
	{
		char	   *dbq = quote_ident(sf->dbname);

		snprintf(fix, sizeof(fix), "GRANT CREATE ON DATABASE %s TO %s;  -- or a DBA runs CREATE PUBLICATION %s FOR TABLE ...; "
				 "ALTER PUBLICATION %s OWNER TO %s;", dbq, userq, pubq, pubq, userq);
		add_finding(f, "error", fix, "publication \"%s\" does not exist and role \"%s\" may not create it (no CREATE on database \"%s\")",
					pubname, sf->user, sf->dbname);
		tag_finding(f, "privileges", pubname);
		free(dbq);
	}
	else if (!pub_exists)
	{
		add_finding(f, "info", NULL, "publication \"%s\" does not exist yet: the archiver's first start creates it", pubname);
		tag_finding(f, "publication", pubname);
	}
	if (from_pub && !pub_exists)
	{
		add_finding(f, "info", "give doctor the archiver's --tables or --all-tables",
					"no --tables, --all-tables or publication: the tables were not checked");
		tag_finding(f, "tables", NULL);
		goto out;
	}
	if (catalog_list_tables(conn, from_pub ? NULL : tables, from_pub || all, &list, &err) != BS_OK)
	{
		add_finding(f, "error", "correct --tables (schema.table, comma-separated)", "%s", err.message);
		tag_finding(f, "tables", NULL);
		goto out;
	}
	strbuf_append_str(&oids, "{");
	for (int i = 0; i < list.count; i++)
		strbuf_printf(&oids, "%s%u", i ? "," : "", list.tables[i].relid);
	strbuf_append_str(&oids, "}");
	{
		const char *p1[1] = {oids.data};

		if (pgsql_query_params(conn, "SELECT c.oid, has_table_privilege(c.oid, 'SELECT'), pg_has_role(c.relowner, 'USAGE') "
							   "FROM pg_class c WHERE c.oid = ANY($1::oid[])", 1, p1, &priv, &err) != BS_OK)
		{
			db_failed(p, f, "could not read table privileges", &err);
			goto out;
		}
	}
	for (int i = 0; i < list.count; i++)
	{
		const catalog_table *t = &list.tables[i];
		bool		in_pub = false,
					can_select = true,
					owner = false;
		char	   *q = quote_qualified_name(t->schema, t->name);
		char	   *shown = quote_display_name(t->schema, t->name);
		json_t	   *o = json_object();

		for (int r = 0; r < PQntuples(pubt); r++)
			if ((uint32_t) strtoul(PQgetvalue(pubt, r, 0), NULL, 10) == t->relid)
				in_pub = true;
		if (from_pub && !in_pub)
		{
			free(q);
			free(shown);
			json_decref(o);
			continue;
		}
		for (int r = 0; r < PQntuples(priv); r++)
			if ((uint32_t) strtoul(PQgetvalue(priv, r, 0), NULL, 10) == t->relid)
			{
				can_select = is_true(PQgetvalue(priv, r, 1));
				owner = is_true(PQgetvalue(priv, r, 2));
			}
		json_object_set_new(o, "table", json_sprintf("%s.%s", t->schema, t->name));
		json_object_set_new(o, "archivable", json_boolean(t->usable));
		json_object_set_new(o, "select", json_boolean(can_select));
		json_object_set_new(o, "in_publication", json_boolean(in_pub));
		json_array_append_new(arr, o);
		if (t->relkind == 'p')
		{
			add_finding(f, "info", NULL, "%s: %s", shown, t->finding);
			tag_finding(f, "tables", shown);
		}
		else if (t->relkind == 'r' && t->finding && strstr(t->finding, "unlogged"))
		{
			snprintf(fix, sizeof(fix), "ALTER TABLE %s SET LOGGED;", q);
			add_finding(f, "warning", fix, "%s is unlogged: its changes never reach the WAL, so it is never archived", shown);
			tag_finding(f, "tables", shown);
		}
		else if (t->relkind == 'r' && t->finding && strstr(t->finding, "temporary"))
		{
			add_finding(f, "warning", "make it a permanent table (CREATE TABLE ... AS SELECT) if it must be archived",
						"%s is a temporary table: never archived", shown);
			tag_finding(f, "tables", shown);
		}
		else if (t->relkind == 'r' && !t->usable)
		{
			snprintf(fix, sizeof(fix), "ALTER TABLE %s ADD PRIMARY KEY (...);  -- or: ALTER TABLE %s REPLICA IDENTITY FULL;", q, q);
			/* A table asked for by name that cannot be archived makes the set incomplete. */
			add_finding(f, tables ? "error" : "warning", fix,
						"%s has %s: its UPDATE and DELETE cannot be archived, so it is skipped", shown,
						t->replident == 'n' ? "REPLICA IDENTITY NOTHING" : "no primary key and no replica identity index (nor FULL)");
			tag_finding(f, "tables", shown);
		}
		else if (t->finding && t->relkind != 'r')
		{
			add_finding(f, "warning", NULL, "%s: %s", shown, t->finding);
			tag_finding(f, "tables", shown);
		}
		if (t->usable && !can_select)
		{
			snprintf(fix, sizeof(fix), "GRANT SELECT ON %s TO %s;", q, userq);
			add_finding(f, "error", fix, "role \"%s\" may not SELECT %s: its base copy fails", sf->user, shown);
			tag_finding(f, "privileges", shown);
		}
		if (t->usable && !from_pub && !in_pub && pub_exists)
		{
			bool		can_add = pub_owned && (owner || sf->superuser);

			snprintf(fix, sizeof(fix), "ALTER PUBLICATION %s ADD TABLE %s;  -- as its owner or a superuser", pubq, q);
			add_finding(f, can_add ? "info" : "warning", can_add ? NULL : fix,
						can_add ? "%s is not in publication \"%s\" yet: the archiver adds it at start"
						: "%s is not in publication \"%s\" and role \"%s\" may not add it (it must own both)",
						shown, pubname, sf->user);
			tag_finding(f, "publication", shown);
		}
		else if (t->usable && !pub_exists && !owner && !sf->superuser && sf->create_db)
		{
			snprintf(fix, sizeof(fix), "as the owner of %s or a superuser: CREATE PUBLICATION %s FOR TABLE %s; "
					 "ALTER PUBLICATION %s OWNER TO %s;", shown, pubq, q, pubq, userq);
			add_finding(f, "warning", fix, "role \"%s\" does not own %s, so it cannot publish it", sf->user, shown);
			tag_finding(f, "privileges", shown);
		}
		free(q);
		free(shown);
	}
	/* Published but not asked for: the archiver sets the publication to exactly its tables. */
	if (!from_pub)
		for (int r = 0; r < PQntuples(pubt); r++)
		{
			uint32_t	relid = (uint32_t) strtoul(PQgetvalue(pubt, r, 0), NULL, 10);
			const catalog_table *t = catalog_find(&list, relid);

			if (t == NULL || !t->usable)
			{
				add_finding(f, "info", NULL, "publication \"%s\" holds the table with OID %u, which the archiver is not "
							"asked to archive: the archiver removes it from the publication at start", pubname, relid);
				tag_finding(f, "publication", pubname);
			}
		}
	check_ddl_capture(conn, cfg, f, sf);
out:
	catalog_table_list_free(&list);
	PQclear(pub);
	PQclear(pubt);
	PQclear(priv);
	strbuf_free(&oids);
	free(pubq);
	free(userq);
}

static void
probe_db(const bs_config *cfg, const char *conninfo, probe *p, findings *f, const doctor_state *ds)
{
	PGconn	   *conn = NULL;
	double		t = (1e3 * clock_mono_s());
	bs_error	err;
	server_facts sf;

	error_clear(&err);
	memset(&sf, 0, sizeof(sf));
	if (pgsql_connect(conninfo, false, "backstop doctor", &conn, &err) != BS_OK)
	{
		add_step(p, "connect", false, (1e3 * clock_mono_s()) - t);
		db_failed(p, f, "could not connect to PostgreSQL", &err);
		json_object_set_new(p->obj, "ok", json_false());
		return;
	}
	add_step(p, "connect", true, (1e3 * clock_mono_s()) - t);
	t = (1e3 * clock_mono_s());
	check_server(conn, cfg, p, f, &sf);
	if (sf.user && sf.version >= 100000)
	{
		check_slots(conn, cfg, p, f, &sf, ds);
		check_tables(conn, cfg, p, f, &sf);
	}
	add_step(p, "checks", p->ok, (1e3 * clock_mono_s()) - t);
	free(sf.user);
	free(sf.dbname);
	PQfinish(conn);
	json_object_set_new(p->obj, "ok", json_boolean(p->ok));
}

/* One line of the text report, control characters escaped: URLs, user names and server
 * messages are not ours. */
static void __attribute__((format(printf, 1, 2)))
print_line(const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	cli_print_line(msg);
	free(msg);
}

static void
print_text(const char *what, const probe *p)
{
	size_t		i;
	json_t	   *v;
	const char *s;

	s = json_string_value(json_object_get(p->obj, "url"));
	print_line("%s: %s%s%s%s", what, p->ok ? "OK" : "FAILED", s ? " (" : "", s ? s : "", s ? ")" : "");
	json_array_foreach(p->steps, i, v)
		print_line("  %-8s %-6s %8.2f ms", json_string_value(json_object_get(v, "step")),
				   json_is_true(json_object_get(v, "ok")) ? "ok" : "failed",
				   json_real_value(json_object_get(v, "ms")));
	if ((s = json_string_value(json_object_get(p->obj, "server_version"))) != NULL)
		print_line("  server version %s, wal_level %s, user %s%s", s,
				   json_string_value(json_object_get(p->obj, "wal_level")) ?: "?",
				   json_string_value(json_object_get(p->obj, "user")) ?: "?",
				   json_is_true(json_object_get(p->obj, "replication")) ? " (REPLICATION)" : " (no REPLICATION)");
	if ((s = json_string_value(json_object_get(p->obj, "reason"))) != NULL)
		print_line("  reason: %s", s);
	if ((s = json_string_value(json_object_get(p->obj, "error"))) != NULL)
		print_line("  error: %s", s);
	if ((s = json_string_value(json_object_get(p->obj, "note"))) != NULL)
		print_line("  note: %s", s);
	json_array_foreach(p->warnings, i, v)
		print_line("  WARNING: %s", json_string_value(v));
}

int
cmd_doctor(bs_config *cfg, int argc, char **argv)
{
	probe		sp,
				dp;
	bool		json = config_get_bool(cfg, CFG_JSON);
	const char *db = config_get(cfg, CFG_DB);
	findings	f = {json_array(), 0, 0};
	doctor_state ds = {false, false, -1};
	json_t	   *root = json_object();
	const char *verdict;
	int			rc;

	(void) argv;
	if (argc > 0)
	{
		cli_usage_error("doctor", "unexpected argument \"%s\"", argv[0]);
		json_decref(root);
		json_decref(f.arr);
		return EXIT_USAGE;
	}
	probe_init(&sp);
	probe_storage(cfg, &sp);
	if (!sp.ok)
	{
		add_finding(&f, "error", "see the storage steps above: credentials, bucket, permissions (doc/storage.md)",
					"storage is not usable: %s", json_string_value(json_object_get(sp.obj, "reason")) ?: "failed");
		tag_finding(&f, "storage", NULL);
	}
	else if (json_is_true(json_object_get(sp.obj, "delete_permitted")))
	{
		add_finding(&f, "info", "object lock, or credentials without delete permission (doc/storage.md)",
					"objects can be deleted with these credentials: immutable storage is safer against ransomware and mistakes");
		tag_finding(&f, "storage", NULL);
	}
	check_archiver(cfg, root, &f, &ds);
	if (sp.ok)
		check_freshness(cfg, root, &f, &ds);
	if (db)
	{
		probe_init(&dp);
		probe_db(cfg, db, &dp, &f, &ds);
	}
	verdict = f.errors ? "not ready" : f.warnings ? "degraded" : "ready";
	rc = f.errors ? EXIT_FAILURE_RUNTIME : f.warnings ? EXIT_DOCTOR_DEGRADED : EXIT_OK;
	if (json)
	{
		json_object_set(root, "storage", sp.obj);
		if (db)
			json_object_set(root, "db", dp.obj);
		json_object_set(root, "findings", f.arr);
		json_object_set_new(root, "errors", json_integer(f.errors));
		json_object_set_new(root, "warnings", json_integer(f.warnings));
		json_object_set_new(root, "verdict", json_string(verdict));
		json_object_set_new(root, "ok", json_boolean(f.errors == 0));
		jsonout_print(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
	}
	else
	{
		size_t		i;
		json_t	   *v;

		print_text("storage", &sp);
		if (db)
			print_text("database", &dp);
		if (json_array_size(f.arr))
			printf("findings:\n");
		json_array_foreach(f.arr, i, v)
		{
			const char *sev = json_string_value(json_object_get(v, "severity"));
			const char *fix = json_string_value(json_object_get(v, "fix"));

			print_line("  %-7s [%s] %s", strcmp(sev, "error") == 0 ? "ERROR" : strcmp(sev, "warning") == 0 ? "WARNING" : "INFO",
					   json_string_value(json_object_get(v, "check")) ?: "-",
					   json_string_value(json_object_get(v, "message")));
			if (fix)
				print_line("          fix: %s", fix);
		}
		printf("verdict: %s (%d error%s, %d warning%s)\n", verdict, f.errors, f.errors == 1 ? "" : "s", f.warnings,
			   f.warnings == 1 ? "" : "s");
	}
	json_decref(sp.obj);
	if (db)
		json_decref(dp.obj);
	json_decref(f.arr);
	json_decref(root);
	return rc;
}
