/* cmd_classify.c — `backstop classify` and `backstop policy check`: the gate's verdict on SQL, without running it. */
#include "cmd_classify.h"
#include "cli.h"
#include "gatedb.h"
#include "jsonout.h"
#include "log.h"
#include "pgsql.h"
#include "strbuf.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SQL_FILE (64 * 1024 * 1024)

int
cmd_classify_exit_code(const gate_result *r)
{
	static const int codes[GATE_NLEVELS] = {0, 4, 5, 6, 7};

	if (r->refuse)
		return 7;
	return codes[r->level];
}

static int
read_stream(FILE *f, const char *name, char **out, size_t *len, bs_error *err)
{
	strbuf sb = STRBUF_INIT;
	char buf[65536];
	size_t n;

	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
	{
		if (sb.len + n > MAX_SQL_FILE)
		{
			strbuf_free(&sb);
			return error_set(err, ERRCODE_INVALID_PARAMETER, "%s is larger than %d bytes", name, MAX_SQL_FILE);
		}
		strbuf_append(&sb, buf, n);
	}
	if (ferror(f))
	{
		strbuf_free(&sb);
		return error_set_errno(err, errno, "could not read %s", name);
	}
	strbuf_append_str(&sb, "");
	*out = strbuf_detach(&sb, len);
	return BS_OK;
}

int
cmd_classify_read_sql(const bs_config *cfg, int argc, char **argv, bool take_command,
					  char **sql, size_t *len, bs_error *err)
{
	const char *file = config_get(cfg, CFG_FILE);
	const char *command = take_command ? config_get(cfg, CFG_COMMAND) : NULL;
	int given = (argc > 0) + (file != NULL) + (command != NULL);

	*sql = NULL;
	*len = 0;
	if (argc > 1)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "unexpected argument \"%s\" (quote the SQL as one argument)", argv[1]);
	if (given != 1)
		return error_set(err, ERRCODE_INVALID_PARAMETER, given == 0 ? "no SQL given (an argument, -f FILE%s)" :
						 "give the SQL one way only (an argument, -f FILE%s)", take_command ? " or -c SQL" : "");
	if (argc == 1 || command)
	{
		const char *s = argc == 1 ? argv[0] : command;

		*len = strlen(s);
		*sql = xstrdup(s);
		return BS_OK;
	}
	if (strcmp(file, "-") == 0)
		return read_stream(stdin, "standard input", sql, len, err);
	{
		FILE *f = fopen(file, "rb");
		int rc;

		if (f == NULL)
			return error_set_errno(err, errno, "could not open \"%s\"", file);
		rc = read_stream(f, file, sql, len, err);
		fclose(f);
		return rc;
	}
}

int
cmd_classify_load_policy(const bs_config *cfg, policy **out, bs_error *err)
{
	const char *path = config_get(cfg, CFG_POLICY);
	FILE *f;
	char *text;
	size_t len;
	int rc;

	if (path == NULL)
	{
		*out = policy_default();
		return BS_OK;
	}
	f = fopen(path, "rb");
	if (f == NULL)
		return error_set_errno(err, errno, "could not open policy file \"%s\"", path);
	rc = read_stream(f, path, &text, &len, err);
	fclose(f);
	if (rc != BS_OK)
		return rc;
	rc = policy_parse(text, path, out, err);
	free(text);
	return rc;
}

void
cmd_classify_hash(const char *text, size_t len, char out[17])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(text, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen < 8)
		memset(md, 0, 8);
	for (int i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static const char *
relkind_name(char k)
{
	switch (k)
	{
		case 'r': return "table";
		case 'p': return "partitioned table";
		case 'v': return "view";
		case 'm': return "materialized view";
		case 'f': return "foreign table";
		case 'i':
		case 'I': return "index";
		case 'S': return "sequence";
		default: return "relation";
	}
}

void
cmd_classify_print_stmt(int index, const char *sql, const gate_stmt *st, const policy_decision *d)
{
	strbuf text = STRBUF_INIT;

	/* one line, at most 300 bytes of the statement */
	for (size_t i = 0; i < st->length && text.len < 300; i++)
	{
		char c = sql[st->offset + i];

		strbuf_append_char(&text, c == '\n' || c == '\r' || c == '\t' ? ' ' : c);
	}
	if (st->length > 300)
		strbuf_append_str(&text, " ...");
	printf("[%d] %s\n", index, text.data ? text.data : "");
	printf("    level %s, action %s (%s)\n", gate_level_name(st->level), policy_action_name(d->action), d->why);
	for (int i = 0; i < st->nreasons; i++)
		printf("    %-9s %s\n", gate_level_name(st->reasons[i].level), st->reasons[i].text);
	for (int i = 0; i < st->ntargets; i++)
	{
		const gate_target *t = &st->targets[i];
		char *dn = gate_target_display(t);

		printf("    target    %s (%s", dn, gate_level_name(t->level));
		if (t->kind != GATE_TARGET_RELATION)
			printf("; %s", t->kind == GATE_TARGET_SCHEMA ? "schema" : t->kind == GATE_TARGET_DATABASE ? "database" : "role");
		else if (t->resolved && t->exists)
			printf("; %s%s, oid %u", t->temp ? "temporary " : "", relkind_name(t->relkind), t->oid);
		else if (t->resolved)
			printf("; does not exist in this session");
		else
			printf("; not resolved");
		if (d->cover && i < d->ntargets && d->cover[i])
			printf("; needs a recovery point");
		printf(")\n");
		free(dn);
	}
	strbuf_free(&text);
}

json_t *
cmd_classify_record(const char *sql, const gate_stmt *st, const policy_decision *d,
					const char *principal, const char *environment)
{
	gate_result one;
	json_t *j, *s, *cover = json_array();
	char hash[17];

	memset(&one, 0, sizeof(one));
	one.stmts = (gate_stmt *) st;
	one.nstmts = 1;
	one.level = st->level;
	one.refuse = st->refuse;
	j = gate_result_json(&one, sql);
	s = json_incref(json_array_get(json_object_get(j, "statements"), 0));
	json_decref(j);
	cmd_classify_hash(sql + st->offset, st->length, hash);
	json_object_set_new(s, "sha256", json_string(hash));
	json_object_set_new(s, "action", json_string(policy_action_name(d->action)));
	json_object_set_new(s, "why", json_string(d->why));
	for (int i = 0; d->cover && i < d->ntargets; i++)
		if (d->cover[i])
			json_array_append_new(cover, json_integer(i));
	json_object_set_new(s, "cover", cover);
	if (principal)
		json_object_set_new(s, "principal", json_string(principal));
	if (environment)
		json_object_set_new(s, "environment", json_string(environment));
	return s;
}

int
cmd_classify(bs_config *cfg, int argc, char **argv)
{
	const char *db = config_get(cfg, CFG_DB);
	const char *environment = config_get(cfg, CFG_ENVIRONMENT);
	bool json = config_get_bool(cfg, CFG_JSON);
	char *sql = NULL;
	size_t len;
	policy *pol = NULL;
	PGconn *conn = NULL;
	gatedb gdb;
	gate_options opts;
	gate_result *r = NULL;
	char *user = NULL, *search_path = NULL;
	const char *principal = config_get(cfg, CFG_PRINCIPAL);
	bs_error err;
	int rc = EXIT_FAILURE_RUNTIME;
	json_t *out = NULL, *stmts = NULL;

	error_clear(&err);
	if (cmd_classify_read_sql(cfg, argc, argv, false, &sql, &len, &err) != BS_OK)
	{
		cli_report_error("classify", &err);
		return err.sys_errno ? EXIT_FAILURE_RUNTIME : EXIT_USAGE;
	}
	if (cmd_classify_load_policy(cfg, &pol, &err) != BS_OK)
	{
		cli_report_error("classify", &err);
		free(sql);
		return EXIT_USAGE;
	}
	if (gate_self_check(&err) != BS_OK)
		goto fail;
	memset(&opts, 0, sizeof(opts));
	opts.trusted_functions = (const char *const *) pol->trusted_functions;
	if (db)
	{
		if (gatedb_connect(db, "backstop classify", &conn, &err) != BS_OK ||
			gatedb_check_session(conn, &user, &search_path, &err) != BS_OK)
			goto fail;
		gatedb_init(&gdb, conn);
		opts.catalog = &gdb.catalog;
		if (principal == NULL)
			principal = user;
	}
	if (gate_classify_n(sql, len, &opts, &r, &err) != BS_OK)
		goto fail;

	if (json)
	{
		out = json_object();
		stmts = json_array();
	}
	for (int i = 0; i < r->nstmts; i++)
	{
		policy_decision d;
		json_t *rec;
		char *line;

		policy_decide(pol, &r->stmts[i], principal, environment, &d);
		rec = cmd_classify_record(sql, &r->stmts[i], &d, principal, environment);
		line = json_dumps(rec, JSON_COMPACT);
		log_debug("gate decision (classify, not executed): %s", line);
		free(line);
		if (json)
			json_array_append_new(stmts, rec);
		else
		{
			json_decref(rec);
			cmd_classify_print_stmt(i + 1, sql, &r->stmts[i], &d);
		}
		policy_decision_clear(&d);
	}
	rc = cmd_classify_exit_code(r);
	if (json)
	{
		json_object_set_new(out, "level", json_string(gate_level_name(r->level)));
		json_object_set_new(out, "refused", json_boolean(r->refuse));
		json_object_set_new(out, "resolved", json_boolean(r->resolved));
		json_object_set_new(out, "exit_code", json_integer(rc));
		if (search_path)
			json_object_set_new(out, "search_path", json_string(search_path));
		json_object_set_new(out, "statements", stmts);
		jsonout_print(out, JSON_INDENT(2));
		json_decref(out);
	}
	else
	{
		if (r->nstmts == 0)
			printf("no statements\n");
		if (!r->resolved)
			printf("(no --db: targets are named as written, not resolved; user functions are not looked up)\n");
		printf("highest level: %s%s\n", gate_level_name(r->level), r->refuse ? " (refused: the gate cannot decide it)" : "");
	}
	goto out;
fail:
	cli_report_error("classify", &err);
	rc = EXIT_FAILURE_RUNTIME;
out:
	gate_result_free(r);
	policy_free(pol);
	if (conn)
		PQfinish(conn);
	free(user);
	free(search_path);
	free(sql);
	return rc;
}

int
cmd_policy(bs_config *cfg, int argc, char **argv)
{
	bs_error err;
	policy *p = NULL;
	char *desc;

	(void) cfg;
	error_clear(&err);
	if (argc != 2 || strcmp(argv[0], "check") != 0)
	{
		fprintf(stderr, "backstop policy: usage: backstop policy check FILE\n");
		return EXIT_USAGE;
	}
	config_set(cfg, CFG_POLICY, argv[1], SOURCE_FLAG);
	if (cmd_classify_load_policy(cfg, &p, &err) != BS_OK)
	{
		cli_report_error("policy check", &err);
		return EXIT_USAGE;
	}
	desc = policy_describe(p);
	printf("%s", desc);
	printf("policy %s is valid\n", argv[1]);
	free(desc);
	policy_free(p);
	return EXIT_OK;
}
