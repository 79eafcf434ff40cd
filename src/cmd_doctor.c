/* cmd_doctor.c — `backstop doctor`: probe the storage (put/get/list/delete) and PostgreSQL, with latencies. */
#include "cmd_doctor.h"
#include "cli.h"
#include "redact.h"
#include "storage.h"
#include "strbuf.h"

#include <jansson.h>
#include <libpq-fe.h>
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

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec * 1000.0 + (double) ts.tv_nsec / 1e6;
}

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
	const char *url = config_get(cfg, "storage");
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
	t = now_ms();
	if (storage_open(url, cfg, &st, &err) != BS_OK)
	{
		fail_step(p, "open", now_ms() - t, &err);
		return;
	}
	snprintf(key, sizeof(key), "doctor/probe-%ld-%d", (long) time(NULL), (int) getpid());
	snprintf(payload, sizeof(payload), "backstop doctor probe %s\n", key);

	t = now_ms();
	if (storage_put(st, key, payload, strlen(payload), &err) != BS_OK)
	{
		fail_step(p, "put", now_ms() - t, &err);
		goto out;
	}
	add_step(p, "put", true, now_ms() - t);

	t = now_ms();
	if (storage_get_all(st, key, &got, &err) != BS_OK)
	{
		fail_step(p, "get", now_ms() - t, &err);
		goto out;
	}
	if (got.len != strlen(payload) || memcmp(got.data, payload, got.len) != 0)
	{
		error_set(&err, ERRCODE_DATA_CORRUPTED, "the probe object read back differs from what was written");
		fail_step(p, "get", now_ms() - t, &err);
		goto out;
	}
	add_step(p, "get", true, now_ms() - t);

	fc.want = key;
	fc.found = false;
	t = now_ms();
	if (storage_list(st, "doctor/", find_cb, &fc, &err) != BS_OK)
	{
		fail_step(p, "list", now_ms() - t, &err);
		goto out;
	}
	if (!fc.found)
	{
		error_set(&err, ERRCODE_STORAGE, "the probe object is missing from the listing");
		fail_step(p, "list", now_ms() - t, &err);
		goto out;
	}
	add_step(p, "list", true, now_ms() - t);

	t = now_ms();
	if (storage_delete(st, key, &err) != BS_OK)
	{
		/* Refused deletes are what immutable storage looks like: fine, not a failure. */
		if (strcmp(err.code, ERRCODE_AUTH) == 0 || strcmp(err.code, ERRCODE_PERMISSION) == 0)
		{
			add_step(p, "delete", false, now_ms() - t);
			json_object_set_new(p->obj, "delete_permitted", json_false());
			{
				strbuf		w = STRBUF_INIT;

				strbuf_printf(&w, "delete is refused (good for immutability); the probe object \"%s\" stays", key);
				json_object_set_new(p->obj, "note", json_string(w.data));
				strbuf_free(&w);
			}
			goto out;
		}
		fail_step(p, "delete", now_ms() - t, &err);
		goto out;
	}
	if (storage_head(st, key, &exists, NULL, &err) == BS_OK && exists)
	{
		/* Object lock / versioning may keep it: deletes then do not destroy data. */
		add_step(p, "delete", true, now_ms() - t);
		json_object_set_new(p->obj, "delete_permitted", json_false());
		goto out;
	}
	add_step(p, "delete", true, now_ms() - t);
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

static void
probe_db(const char *conninfo, probe *p)
{
	PGconn	   *conn;
	PGresult   *res;
	double		t = now_ms();
	int			ver;

	conn = PQconnectdb(conninfo);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		char	   *msg = redact_text(PQerrorMessage(conn));
		size_t		len = strlen(msg);

		while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' '))
			msg[--len] = '\0';
		add_step(p, "connect", false, now_ms() - t);
		p->ok = false;
		json_object_set_new(p->obj, "error", json_string(msg));
		json_object_set_new(p->obj, "ok", json_false());
		free(msg);
		PQfinish(conn);
		return;
	}
	add_step(p, "connect", true, now_ms() - t);
	ver = PQserverVersion(conn);
	json_object_set_new(p->obj, "server_version", json_string(PQparameterStatus(conn, "server_version")));
	json_object_set_new(p->obj, "server_version_num", json_integer(ver));
	if (ver < 100000)
	{
		p->ok = false;
		json_object_set_new(p->obj, "error", json_string("PostgreSQL 10 or later is required (pgoutput)"));
	}

	t = now_ms();
	res = PQexec(conn, "SELECT current_setting('wal_level'), r.rolreplication OR r.rolsuper, current_user "
				 "FROM pg_catalog.pg_roles r WHERE r.rolname = current_user");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
	{
		char	   *msg = redact_text(PQerrorMessage(conn));

		add_step(p, "query", false, now_ms() - t);
		p->ok = false;
		json_object_set_new(p->obj, "error", json_string(msg));
		free(msg);
	}
	else
	{
		const char *wal = PQgetvalue(res, 0, 0);
		bool		repl = strcmp(PQgetvalue(res, 0, 1), "t") == 0;

		add_step(p, "query", true, now_ms() - t);
		json_object_set_new(p->obj, "wal_level", json_string(wal));
		json_object_set_new(p->obj, "replication", json_boolean(repl));
		json_object_set_new(p->obj, "user", json_string(PQgetvalue(res, 0, 2)));
		if (strcmp(wal, "logical") != 0)
			json_array_append_new(p->warnings,
								  json_string("wal_level is not logical: set wal_level = logical and restart "
											  "PostgreSQL before running backstop archive"));
		if (!repl)
			json_array_append_new(p->warnings,
								  json_string("the role lacks REPLICATION: ALTER ROLE ... REPLICATION is needed "
											  "for backstop archive"));
	}
	PQclear(res);
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
	char *shown;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();				/* out of memory, as xmalloc would */
	va_end(ap);
	shown = xstrdup_printable(msg);
	printf("%s\n", shown);
	free(shown);
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
	bool		json = config_get_bool(cfg, "json");
	const char *db = config_get(cfg, "db");
	bool		ok;

	(void) argv;
	if (argc > 0)
	{
		fprintf(stderr, "backstop doctor: unexpected argument \"%s\"\n", argv[0]);
		return EXIT_USAGE;
	}
	probe_init(&sp);
	probe_storage(cfg, &sp);
	ok = sp.ok;
	if (db)
	{
		probe_init(&dp);
		probe_db(db, &dp);
		ok = ok && dp.ok;
	}
	if (json)
	{
		json_t	   *root = json_object();
		char	   *text;

		json_object_set(root, "storage", sp.obj);
		if (db)
			json_object_set(root, "db", dp.obj);
		json_object_set_new(root, "ok", json_boolean(ok));
		text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
		printf("%s\n", text);
		free(text);
		json_decref(root);
	}
	else
	{
		print_text("storage", &sp);
		if (db)
			print_text("database", &dp);
	}
	json_decref(sp.obj);
	if (db)
		json_decref(dp.obj);
	return ok ? EXIT_OK : EXIT_FAILURE_RUNTIME;
}
