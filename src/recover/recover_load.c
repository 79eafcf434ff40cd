/* recover_load.c — loading a recovered table into PostgreSQL in one validated transaction. */
#include "recover_load.h"
#include "clock.h"
#include "pgsql.h"
#include "quote.h"
#include "sqlcheck.h"
#include "strbuf.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void
recover_load_result_free(recover_load_result *res)
{
	strbuf_free(&res->warnings);
}

/* PostgreSQL's longest name (NAMEDATALEN - 1 bytes); a longer one is cut silently. */
#define NAME_MAX_BYTES 63

/* The length of s cut to at most max bytes without splitting a UTF-8 character. */
static size_t
utf8_prefix_len(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return n;
	n = max;
	while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80)
		n--;
	return n;
}

char *
recover_rename_object(const char *objname, const char *source_name, const char *target_name)
{
	size_t sl = strlen(source_name);
	/* "_pkey", "_a_idx": what follows the source's name, kept whole when the target's
	 * name is long, as PostgreSQL keeps the label when it shortens a name it makes. */
	const char *suffix = strncmp(objname, source_name, sl) == 0 && objname[sl] == '_' ? objname + sl : NULL;
	strbuf sb = STRBUF_INIT;
	char *out;
	size_t room;

	if (suffix == NULL)
	{
		strbuf_printf(&sb, "_%s", objname);
		suffix = sb.data;
	}
	room = strlen(suffix) < NAME_MAX_BYTES ? NAME_MAX_BYTES - strlen(suffix) : 1;
	{
		strbuf r = STRBUF_INIT;

		strbuf_append(&r, target_name, utf8_prefix_len(target_name, room));
		strbuf_append_str(&r, suffix);
		out = xstrndup(r.data, utf8_prefix_len(r.data, NAME_MAX_BYTES));
		strbuf_free(&r);
	}
	strbuf_free(&sb);
	return out;
}

/*
 * Whether name is taken for an index or constraint of the target: by a relation of the
 * target's schema (the target table itself, what this load created so far, anything else)
 * or by a constraint of the target.
 */
static int
object_name_taken(PGconn *conn, const recover_load_options *o, const char *name, bool *taken, bs_error *err)
{
	const char *params[3] = {o->schema, name, o->name};
	PGresult *res;

	if (pgsql_query_params(conn,
						   "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
						   "               WHERE n.nspname = $1 AND c.relname = $2) "
						   "    OR EXISTS (SELECT 1 FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
						   "               JOIN pg_namespace n ON n.oid = c.relnamespace "
						   "               WHERE n.nspname = $1 AND c.relname = $3 AND k.conname = $2)",
						   3, params, &res, err) != BS_OK)
		return error_prefix(err, "could not check the name \"%s\"", name);
	*taken = PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	return BS_OK;
}

/* The target's name for an index or constraint of the source: recover_rename_object(),
 * then, while that is taken, a number appended (name1, name2, ...) within 63 bytes. */
static int
choose_object_name(PGconn *conn, const recover_load_options *o, const char *objname, char **out, bs_error *err)
{
	char *base = recover_rename_object(objname, o->source_name, o->name);

	*out = NULL;
	for (int n = 0; n < 1000; n++)
	{
		strbuf sb = STRBUF_INIT;
		char num[16] = "";
		bool taken = false;

		if (n > 0)
			snprintf(num, sizeof(num), "%d", n);
		strbuf_append(&sb, base, utf8_prefix_len(base, NAME_MAX_BYTES - strlen(num)));
		strbuf_append_str(&sb, num);
		if (object_name_taken(conn, o, sb.data, &taken, err) != BS_OK)
		{
			strbuf_free(&sb);
			free(base);
			return BS_ERR;
		}
		if (!taken)
		{
			*out = strbuf_detach(&sb, NULL);
			free(base);
			return BS_OK;
		}
		strbuf_free(&sb);
	}
	error_set(err, ERRCODE_DUPLICATE_TABLE, "no free name for \"%s\" on the target", base);
	free(base);
	return BS_ERR;
}

/* Skip one identifier (quoted or bare) at p; NULL when there is none. */
static const char *
skip_ident(const char *p)
{
	if (*p == '"')
	{
		for (p++; *p; p++)
		{
			if (*p == '"')
			{
				if (p[1] == '"')
					p++;
				else
					return p + 1;
			}
		}
		return NULL;
	}
	if (*p == '\0' || *p == ' ' || *p == '.')
		return NULL;
	while (*p && *p != ' ' && *p != '.' && *p != '(')
		p++;
	return p;
}

static const char *
expect(const char *p, const char *word)
{
	size_t n = strlen(word);

	return p && strncmp(p, word, n) == 0 ? p + n : NULL;
}

char *
recover_rewrite_indexdef(const char *def, const char *new_name, const char *target)
{
	const char *p = expect(def, "CREATE ");
	bool unique = false;
	strbuf sb = STRBUF_INIT;
	char *qname;

	if (p && strncmp(p, "UNIQUE ", 7) == 0)
	{
		unique = true;
		p += 7;
	}
	p = expect(p, "INDEX ");
	p = p ? skip_ident(p) : NULL;
	p = expect(p, " ON ");
	if (p && strncmp(p, "ONLY ", 5) == 0)
		p += 5;
	p = p ? skip_ident(p) : NULL;
	while (p && *p == '.')
		p = skip_ident(p + 1);
	p = expect(p, " USING ");
	if (p == NULL)
		return NULL;
	qname = quote_ident(new_name);
	strbuf_printf(&sb, "CREATE %sINDEX %s ON %s USING %s", unique ? "UNIQUE " : "", qname, target, p);
	free(qname);
	return strbuf_detach(&sb, NULL);
}

/* One warning, one line: names and messages are escaped, so a newline in them (or in a
 * multi-line PostgreSQL error) cannot split it. */
static void __attribute__((format(printf, 2, 3)))
add_warning(recover_load_result *res, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	strbuf_append_printable(&res->warnings, msg);
	strbuf_append_char(&res->warnings, '\n');
	free(msg);
}

/* Every statement here may carry text from storage: one statement each, never a script. */
static int
exec_sql(PGconn *conn, const char *sql, bs_error *err)
{
	return pgsql_exec_one(conn, sql, err);
}

/* Run sql under a savepoint; on failure roll back to it and record a warning.  *count (may
 * be NULL) is incremented when it succeeded. */
static int
exec_optional(PGconn *conn, const char *sql, const char *what, recover_load_result *res, int *count,
			  bs_error *err)
{
	bs_error e2;

	if (exec_sql(conn, "SAVEPOINT backstop_def", err) != BS_OK)
		return BS_ERR;
	if (exec_sql(conn, sql, &e2) != BS_OK)
	{
		add_warning(res, "could not recreate %s: %s", what, e2.message);
		return exec_sql(conn, "ROLLBACK TO SAVEPOINT backstop_def", err);
	}
	if (count)
		(*count)++;
	return exec_sql(conn, "RELEASE SAVEPOINT backstop_def", err);
}

static bool
layout_has_column(const manifest_layout *l, const char *name)
{
	for (int i = 0; i < l->ncols; i++)
		if (strcmp(l->columns[i].name, name) == 0)
			return true;
	return false;
}

/*
 * The volatile functions a CHECK constraint of the target calls, directly or through an
 * operator, as a list; NULL when there are none.  Such a constraint is left NOT VALID:
 * validating it would run them on every row, and its text came from storage.  pg_depend
 * does not list built-in functions (they are pinned), so the stored expression is read:
 * every call in a pg_node_tree names its function (:funcid, :opfuncid) or operator
 * (:opno, :opnos); matching more than that only errs on the side of not validating.
 */
#define VOLATILE_CALLS_SQL \
	"WITH e AS (SELECT conbin::text AS t FROM pg_constraint WHERE conrelid = $1::regclass AND conname = $2), " \
	"f AS (SELECT m[1]::oid AS fn FROM e, regexp_matches(e.t, ':(?:funcid|opfuncid) ([0-9]+)', 'g') m " \
	"  UNION SELECT o.oprcode FROM e, regexp_matches(e.t, ':opno ([0-9]+)', 'g') m " \
	"    JOIN pg_operator o ON o.oid = m[1]::oid " \
	"  UNION SELECT o.oprcode FROM e, regexp_matches(e.t, ':opnos \\(o ([0-9 ]+)\\)', 'g') m, " \
	"    unnest(string_to_array(m[1], ' ')) x JOIN pg_operator o ON o.oid = x::oid) " \
	"SELECT string_agg(DISTINCT p.oid::regprocedure::text, ', ') FROM f JOIN pg_proc p ON p.oid = f.fn " \
	"WHERE p.provolatile = 'v'"

static int
volatile_functions(PGconn *conn, const char *target, const char *conname, char **out, bs_error *err)
{
	const char *params[2] = {target, conname};
	PGresult *res;

	if (pgsql_query_params(conn, VOLATILE_CALLS_SQL, 2, params, &res, err) != BS_OK)
		return error_prefix(err, "could not look at the functions constraint \"%s\" calls", conname);
	*out = PQgetisnull(res, 0, 0) ? NULL : xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return BS_OK;
}

/* Add a constraint under a savepoint; a CHECK is added NOT VALID, then validated unless it
 * calls volatile functions.  Failures the database reports become warnings. */
static int
add_constraint(PGconn *conn, const char *target, const char *sql,
			   const char *newname, bool validate, const char *what, recover_load_result *res, bs_error *err)
{
	bs_error e2;
	char *vol = NULL;
	char *qname;
	strbuf v = STRBUF_INIT;
	int rc;

	if (!validate)
		return exec_optional(conn, sql, what, res, &res->nindexes, err);
	if (exec_sql(conn, "SAVEPOINT backstop_def", err) != BS_OK)
		return BS_ERR;
	if (exec_sql(conn, sql, &e2) != BS_OK || volatile_functions(conn, target, newname, &vol, &e2) != BS_OK)
	{
		strbuf_printf(&res->warnings, "could not recreate %s: %s\n", what, e2.message);
		return exec_sql(conn, "ROLLBACK TO SAVEPOINT backstop_def", err);
	}
	if (vol)
	{
		strbuf_printf(&res->warnings,
					  "%s recreated NOT VALID, not checked against the rows: it calls volatile function(s) %s; "
					  "review it, then run ALTER TABLE ... VALIDATE CONSTRAINT yourself\n", what, vol);
		free(vol);
		res->nindexes++;
		return exec_sql(conn, "RELEASE SAVEPOINT backstop_def", err);
	}
	qname = quote_ident(newname);
	strbuf_printf(&v, "ALTER TABLE %s VALIDATE CONSTRAINT %s", target, qname);
	free(qname);
	rc = exec_sql(conn, v.data, &e2);
	strbuf_free(&v);
	if (rc != BS_OK)
	{
		strbuf_printf(&res->warnings, "could not recreate %s: %s\n", what, e2.message);
		return exec_sql(conn, "ROLLBACK TO SAVEPOINT backstop_def", err);
	}
	res->nindexes++;
	return exec_sql(conn, "RELEASE SAVEPOINT backstop_def", err);
}

/* The settings of a column's sequence, from the definition (untrusted: every member checked). */
typedef struct seq_settings
{
	const char *name;
	const char *type;
	json_int_t increment,
				start,
				min,
				max,
				cache;
	bool cycle;
} seq_settings;

static int
read_seq_settings(json_t *seq, const char *column, seq_settings *s, bs_error *err)
{
	static const char *const ints[] = {"increment", "start", "min", "max", "cache"};
	json_int_t *dst[] = {&s->increment, &s->start, &s->min, &s->max, &s->cache};

	s->name = json_string_value(json_object_get(seq, "name"));
	s->type = json_string_value(json_object_get(seq, "type"));
	if (s->name == NULL || s->type == NULL || !json_is_boolean(json_object_get(seq, "cycle")))
		return error_set(err, ERRCODE_DATA_CORRUPTED, "the sequence of column \"%s\" in the base's definition "
						 "lacks its name, type or cycle", column);
	s->cycle = json_is_true(json_object_get(seq, "cycle"));
	for (int k = 0; k < 5; k++)
	{
		json_t *v = json_object_get(seq, ints[k]);

		if (!json_is_integer(v))
			return error_set(err, ERRCODE_DATA_CORRUPTED, "the sequence of column \"%s\" in the base's definition: "
							 "%s is not an integer", column, ints[k]);
		*dst[k] = json_integer_value(v);
	}
	if (s->increment == 0 || s->cache < 1 || s->min > s->max || s->start < s->min || s->start > s->max)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "the sequence of column \"%s\" in the base's definition "
						 "has inconsistent settings", column);
	if (strcmp(s->type, "smallint") != 0 && strcmp(s->type, "integer") != 0 && strcmp(s->type, "bigint") != 0)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "the sequence of column \"%s\" in the base's definition "
						 "has type \"%s\" (expected smallint, integer or bigint)", column, s->type);
	return BS_OK;
}

/* " INCREMENT BY i MINVALUE a MAXVALUE b START WITH s CACHE c [NO] CYCLE": numbers only. */
static void
append_seq_options(strbuf *sql, const seq_settings *s)
{
	strbuf_printf(sql, " INCREMENT BY %lld MINVALUE %lld MAXVALUE %lld START WITH %lld CACHE %lld %sCYCLE",
				  (long long) s->increment, (long long) s->min, (long long) s->max, (long long) s->start,
				  (long long) s->cache, s->cycle ? "" : "NO ");
}

/*
 * Identity and serial columns.  The source's sequence is the source's (dropped with it, or
 * still serving it), so the recovered table gets its own: an identity of the same kind and
 * settings, or a sequence it owns (as serial makes) with the column's default on it.  Either
 * is set past every recovered value, so the application's next INSERT does not collide;
 * values the source's sequence had handed out beyond them are not known to the archive.
 */
static int
recreate_sequences(PGconn *conn, const recover_load_options *o, const char *target, json_t *columns,
				   recover_load_result *res, bs_error *err)
{
	size_t i;
	json_t *it;

	json_array_foreach(columns, i, it)
	{
		const char *name = json_string_value(json_object_get(it, "name"));
		const char *identity = json_string_value(json_object_get(it, "identity"));
		json_t *seqj = json_object_get(it, "sequence");
		bool is_identity = identity && (strcmp(identity, "a") == 0 || strcmp(identity, "d") == 0);
		seq_settings ss;
		char *qcol,
				   *seqname = NULL,
				   *qseq = NULL;
		strbuf sql = STRBUF_INIT;
		char what[200];
		int rc;

		if (name == NULL || !layout_has_column(o->layout, name) || (!is_identity && !json_is_object(seqj)))
			continue;
		if (!json_is_object(seqj))
		{
			/* An identity column without its sequence's settings (a definition from an older
			 * archiver): the defaults of ADD ... AS IDENTITY. */
			memset(&ss, 0, sizeof(ss));
			ss.name = NULL;
		}
		else if (read_seq_settings(seqj, name, &ss, err) != BS_OK)
			return BS_ERR;
		if (choose_object_name(conn, o, ss.name ? ss.name : name, &seqname, err) != BS_OK)
			return BS_ERR;
		qcol = quote_ident(name);
		qseq = quote_qualified_name(o->schema, seqname);
		if (is_identity)
		{
			strbuf_printf(&sql, "ALTER TABLE %s ALTER COLUMN %s ADD GENERATED %s AS IDENTITY (SEQUENCE NAME %s",
						  target, qcol, identity[0] == 'a' ? "ALWAYS" : "BY DEFAULT", qseq);
			if (ss.name)
				append_seq_options(&sql, &ss);
			strbuf_append_str(&sql, ")");
			snprintf(what, sizeof(what), "the identity of column \"%s\"", name);
			/* An identity needs NOT NULL; the layout has it unless the definition is odd. */
			rc = exec_sql(conn, "SAVEPOINT backstop_def", err);
			if (rc == BS_OK)
			{
				strbuf nn = STRBUF_INIT;
				bs_error e2;

				strbuf_printf(&nn, "ALTER TABLE %s ALTER COLUMN %s SET NOT NULL", target, qcol);
				error_clear(&e2);
				if (exec_sql(conn, nn.data, &e2) != BS_OK || exec_sql(conn, sql.data, &e2) != BS_OK)
				{
					add_warning(res, "could not recreate %s: %s", what, e2.message);
					rc = exec_sql(conn, "ROLLBACK TO SAVEPOINT backstop_def", err);
					strbuf_free(&nn);
					goto next;
				}
				strbuf_free(&nn);
				rc = exec_sql(conn, "RELEASE SAVEPOINT backstop_def", err);
			}
		}
		else
		{
			char *lit;

			strbuf_printf(&sql, "CREATE SEQUENCE %s AS %s", qseq, ss.type);
			append_seq_options(&sql, &ss);
			strbuf_printf(&sql, " OWNED BY %s.%s", target, qcol);
			snprintf(what, sizeof(what), "the sequence of column \"%s\" (serial)", name);
			rc = exec_sql(conn, "SAVEPOINT backstop_def", err);
			if (rc == BS_OK)
			{
				strbuf def = STRBUF_INIT;
				bs_error e2;

				lit = quote_literal(qseq);
				strbuf_printf(&def, "ALTER TABLE %s ALTER COLUMN %s SET DEFAULT nextval(%s::regclass)", target, qcol, lit);
				free(lit);
				error_clear(&e2);
				if (exec_sql(conn, sql.data, &e2) != BS_OK || exec_sql(conn, def.data, &e2) != BS_OK)
				{
					add_warning(res, "could not recreate %s: %s", what, e2.message);
					rc = exec_sql(conn, "ROLLBACK TO SAVEPOINT backstop_def", err);
					strbuf_free(&def);
					goto next;
				}
				strbuf_free(&def);
				rc = exec_sql(conn, "RELEASE SAVEPOINT backstop_def", err);
			}
		}
		if (rc == BS_OK)
		{
			/* Past the highest recovered value (the lowest, for a descending sequence). */
			const char *params[1] = {qseq};
			PGresult *pr;

			strbuf_reset(&sql);
			strbuf_printf(&sql, "SELECT setval($1::regclass, v) FROM (SELECT %s(%s)::bigint AS v FROM %s) s "
						  "WHERE v IS NOT NULL", ss.name && ss.increment < 0 ? "min" : "max", qcol, target);
			rc = pgsql_query_params(conn, sql.data, 1, params, &pr, err);
			if (rc == BS_OK)
				PQclear(pr);
			else
				error_prefix(err, "could not set %s past the recovered values", what);
			res->nsequences++;
		}
next:
		strbuf_free(&sql);
		free(qcol);
		free(qseq);
		free(seqname);
		if (rc != BS_OK)
			return BS_ERR;
	}
	return BS_OK;
}

/*
 * Stored generated columns: pgoutput and the base copy leave them out, so they are added
 * after the rows are in, and PostgreSQL computes them.  ADD COLUMN puts them last.
 */
static int
recreate_generated(PGconn *conn, const recover_load_options *o, json_t *columns, recover_load_result *res,
				   bs_error *err)
{
	size_t i;
	json_t *it;

	json_array_foreach(columns, i, it)
	{
		const char *name = json_string_value(json_object_get(it, "name"));
		const char *type = json_string_value(json_object_get(it, "type"));
		const char *gen = json_string_value(json_object_get(it, "generated"));
		const char *expr = json_string_value(json_object_get(it, "default"));
		char *sql;
		char what[200];
		int rc;

		/* s: stored; v: virtual (PostgreSQL 18), recreated so too (failing on an older server:
		 * a warning, as for anything optional). */
		if (name == NULL || gen == NULL || (strcmp(gen, "s") != 0 && strcmp(gen, "v") != 0) ||
			layout_has_column(o->layout, name))
			continue;
		if (type == NULL || expr == NULL)
			return error_set(err, ERRCODE_DATA_CORRUPTED, "generated column \"%s\" in the base's definition "
							 "lacks its type or expression", name);
		if ((sql = sqlcheck_add_generated_column(o->schema, o->name, name, type, expr, strcmp(gen, "v") == 0,
												 err)) == NULL)
			return error_prefix(err, "generated column \"%s\" in the base's definition", name);
		snprintf(what, sizeof(what), "generated column \"%s\"", name);
		rc = exec_optional(conn, sql, what, res, &res->ngenerated, err);
		free(sql);
		if (rc != BS_OK)
			return BS_ERR;
	}
	if (res->ngenerated)
		add_warning(res, "%d generated column(s) recreated as the last column(s) of the table, computed by PostgreSQL",
					res->ngenerated);
	return BS_OK;
}

/* Privileges named by aclexplode(); anything else in storage is refused. */
static bool
known_privilege(const char *p)
{
	static const char *const privs[] = {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES",
		"TRIGGER", "MAINTAIN", NULL};

	for (int k = 0; privs[k]; k++)
		if (strcmp(p, privs[k]) == 0)
			return true;
	return false;
}

/*
 * Column comments and the table's grants as they were at the base.  The table's own comment
 * marks it as a recovery (and goes back with the copy-back); triggers, policies and foreign
 * keys act on other tables or the live data, so they are named for the copy-back, not made.
 */
static int
recreate_comments_and_grants(PGconn *conn, const char *target, json_t *root, recover_load_result *res,
							 bs_error *err)
{
	size_t i;
	json_t *it;

	json_array_foreach(json_object_get(root, "columns"), i, it)
	{
		const char *name = json_string_value(json_object_get(it, "name"));
		const char *comment = json_string_value(json_object_get(it, "comment"));
		strbuf sql = STRBUF_INIT;
		char *qcol,
				   *lit;
		char what[200];
		int rc;

		if (name == NULL || comment == NULL)
			continue;
		qcol = quote_ident(name);
		lit = quote_literal(comment);
		strbuf_printf(&sql, "COMMENT ON COLUMN %s.%s IS %s", target, qcol, lit);
		snprintf(what, sizeof(what), "the comment of column \"%s\"", name);
		rc = exec_optional(conn, sql.data, what, res, NULL, err);
		strbuf_free(&sql);
		free(qcol);
		free(lit);
		if (rc != BS_OK)
			return BS_ERR;
	}
	json_array_foreach(json_object_get(root, "grants"), i, it)
	{
		const char *grantee = json_string_value(json_object_get(it, "grantee"));
		const char *priv = json_string_value(json_object_get(it, "privilege"));
		json_t *grantable = json_object_get(it, "grantable");
		strbuf sql = STRBUF_INIT;
		char *qrole;
		char what[300];
		int rc;

		if (grantee == NULL || priv == NULL || !known_privilege(priv) || !json_is_boolean(grantable))
			return error_set(err, ERRCODE_DATA_CORRUPTED, "grant %zu in the base's definition is not a grantee, "
							 "a known privilege and a grant option", i);
		qrole = strcmp(grantee, "PUBLIC") == 0 ? xstrdup("PUBLIC") : quote_ident(grantee);
		strbuf_printf(&sql, "GRANT %s ON %s TO %s%s", priv, target, qrole,
					  json_is_true(grantable) ? " WITH GRANT OPTION" : "");
		snprintf(what, sizeof(what), "%s granted to %s", priv, grantee);
		rc = exec_optional(conn, sql.data, what, res, &res->ngrants, err);
		strbuf_free(&sql);
		free(qrole);
		if (rc != BS_OK)
			return BS_ERR;
	}
	json_array_foreach(json_object_get(root, "triggers"), i, it)
	{
		const char *name = json_string_value(json_object_get(it, "name"));
		const char *def = json_string_value(json_object_get(it, "def"));

		if (name && def)
			add_warning(res, "trigger \"%s\" not recreated (it acts on other tables or calls functions): %s", name, def);
	}
	json_array_foreach(json_object_get(root, "policies"), i, it)
		if (json_is_string(it))
			add_warning(res, "row security policy \"%s\" not recreated: copy it from the source's definition", json_string_value(it));
	if (json_is_true(json_object_get(root, "row_security")))
		add_warning(res, "the source had row level security enabled: run ALTER TABLE ... ENABLE ROW LEVEL SECURITY after the copy-back");
	return BS_OK;
}

/*
 * Defaults, constraints and indexes from the base's definition.  Each statement is built and
 * checked by sqlcheck (exactly one statement of its kind on the target); a definition that
 * fails the check fails the recovery (cmd_recover checked the manifest before anything was
 * sent, so this is a second line).
 */
static int
recreate_definition(PGconn *conn, const recover_load_options *o, const char *target, recover_load_result *res,
					bs_error *err)
{
	json_error_t jerr;
	json_t *root = json_loads(o->definition, 0, &jerr);
	json_t *arr,
			   *it;
	size_t i;
	int rc = BS_ERR;

	if (root == NULL || !json_is_object(root))
	{
		add_warning(res, "the base's table definition is not valid JSON (%s): no indexes or constraints recreated",
					  jerr.text);
		json_decref(root);
		return BS_OK;
	}
	arr = json_object_get(root, "columns");
	json_array_foreach(arr, i, it)
	{
		const char *name = json_string_value(json_object_get(it, "name"));
		const char *def = json_string_value(json_object_get(it, "default"));
		const char *gen = json_string_value(json_object_get(it, "generated"));
		char *sql;
		char what[200];

		if (name == NULL || def == NULL || !layout_has_column(o->layout, name))
			continue;
		/* Generated columns are added after the rows (pgoutput and COPY leave them out);
		 * a serial column's default names the source's sequence: it gets its own below. */
		if ((gen && *gen) || json_is_object(json_object_get(it, "sequence")))
			continue;
		if ((sql = sqlcheck_set_default(o->schema, o->name, name, def, err)) == NULL)
		{
			error_prefix(err, "the default of column \"%s\" in the base's definition", name);
			goto done;
		}
		snprintf(what, sizeof(what), "the default of column \"%s\"", name);
		rc = exec_optional(conn, sql, what, res, NULL, err);
		free(sql);
		if (rc != BS_OK)
			goto done;
		rc = BS_ERR;
	}
	if (recreate_sequences(conn, o, target, json_object_get(root, "columns"), res, err) != BS_OK ||
		recreate_generated(conn, o, json_object_get(root, "columns"), res, err) != BS_OK ||
		recreate_comments_and_grants(conn, target, root, res, err) != BS_OK)
		goto done;
	arr = json_object_get(root, "constraints");
	json_array_foreach(arr, i, it)
	{
		const char *name = json_string_value(json_object_get(it, "name"));
		const char *type = json_string_value(json_object_get(it, "type"));
		const char *def = json_string_value(json_object_get(it, "def"));
		char *newname,
				   *sql;
		bool validate = false;
		char what[200];

		if (name == NULL || def == NULL)
			continue;
		if (type && (strcmp(type, "f") == 0 || strcmp(type, "t") == 0))
		{
			/* A foreign key would tie the copy to other tables' current rows; a trigger
			 * constraint to functions that may act on them. */
			add_warning(res, "constraint \"%s\" (%s) not recreated: %s", name, def,
						  strcmp(type, "f") == 0 ? "foreign keys are left to the copy-back" : "trigger constraint");
			continue;
		}
		if (choose_object_name(conn, o, name, &newname, err) != BS_OK)
			goto done;
		sql = sqlcheck_add_constraint(o->schema, o->name, newname, type && strlen(type) == 1 ? type[0] : '?', def,
									  &validate, err);
		if (sql == NULL)
		{
			error_prefix(err, "constraint \"%s\" in the base's definition", name);
			free(newname);
			goto done;
		}
		snprintf(what, sizeof(what), "constraint \"%s\" as \"%s\"", name, newname);
		rc = add_constraint(conn, target, sql, newname, validate, what, res, err);
		free(sql);
		free(newname);
		if (rc != BS_OK)
			goto done;
		rc = BS_ERR;
	}
	arr = json_object_get(root, "indexes");
	json_array_foreach(arr, i, it)
	{
		const char *name = json_string_value(json_object_get(it, "name"));
		const char *def = json_string_value(json_object_get(it, "def"));
		char *newname,
				   *stmt;
		char what[200];

		if (name == NULL || def == NULL)
			continue;
		if (sqlcheck_index(def, NULL, NULL, NULL, err) != BS_OK)
		{
			error_prefix(err, "index \"%s\" in the base's definition", name);
			rc = BS_ERR;
			goto done;
		}
		if (choose_object_name(conn, o, name, &newname, err) != BS_OK)
		{
			rc = BS_ERR;
			goto done;
		}
		stmt = recover_rewrite_indexdef(def, newname, target);
		snprintf(what, sizeof(what), "index \"%s\" as \"%s\"", name, newname);
		if (stmt == NULL)
		{
			free(newname);
			add_warning(res, "could not recreate %s: unexpected definition %s", what, def);
			continue;
		}
		/* The rewrite works on the text: check what it made, on the target, under the new name. */
		if (sqlcheck_index(stmt, o->schema, o->name, newname, err) != BS_OK)
		{
			error_prefix(err, "index \"%s\" in the base's definition, rewritten for the target", name);
			free(newname);
			free(stmt);
			goto done;
		}
		free(newname);
		rc = exec_optional(conn, stmt, what, res, &res->nindexes, err);
		free(stmt);
		if (rc != BS_OK)
			goto done;
		rc = BS_ERR;
	}
	rc = BS_OK;
done:
	json_decref(root);
	return rc;
}

/* Refuse an existing target unless it is an earlier Backstop recovery and replace is set. */
static int
check_target(PGconn *conn, const recover_load_options *o, const char *target, bs_error *err)
{
	const char *params[2] = {o->schema, o->name};
	PGresult *res;
	const char *comment;
	strbuf sql = STRBUF_INIT;
	int rc;

	if (pgsql_query_params(conn,
						   "SELECT c.relkind, obj_description(c.oid, 'pg_class') FROM pg_class c "
						   "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2",
						   2, params, &res, err) != BS_OK)
		return error_prefix(err, "could not look for the target table");
	if (PQntuples(res) == 0)
	{
		PQclear(res);
		return BS_OK;
	}
	comment = PQgetisnull(res, 0, 1) ? "" : PQgetvalue(res, 0, 1);
	if (!o->replace)
	{
		PQclear(res);
		return error_set(err, ERRCODE_DUPLICATE_TABLE,
						 "target %s already exists; choose another with --into, or --replace it if it is an earlier Backstop recovery",
						 target);
	}
	if (PQgetvalue(res, 0, 0)[0] != 'r' || strncmp(comment, RECOVER_COMMENT_PREFIX, strlen(RECOVER_COMMENT_PREFIX)) != 0)
	{
		PQclear(res);
		return error_set(err, ERRCODE_DUPLICATE_TABLE,
						 "target %s exists and was not created by backstop recover (its comment does not say so): "
						 "refusing to replace it", target);
	}
	PQclear(res);
	strbuf_printf(&sql, "DROP TABLE %s", target);
	rc = exec_sql(conn, sql.data, err);
	strbuf_free(&sql);
	return rc;
}

static int
put_copy_data(PGconn *conn, const char *data, size_t len, bs_error *err)
{
	while (len > 0)
	{
		/* PQputCopyData takes an int length. */
		int n = len > (1 << 30) ? (1 << 30) : (int) len;

		if (PQputCopyData(conn, data, n) != 1)
			return pgsql_set_error(err, conn, NULL, "COPY into the target failed");
		data += n;
		len -= (size_t) n;
	}
	return BS_OK;
}

/*
 * COPY data goes through a sender thread: PQputCopyData blocks until PostgreSQL has read
 * what it was given, and without the thread Backstop would stop producing rows for that
 * long, and PostgreSQL would wait while Backstop produced the next batch.  Batches of about
 * COPY_PIPE_BATCH bytes, at most COPY_PIPE_DEPTH of them in flight: deep enough that
 * PostgreSQL keeps loading while a streaming recovery replays the touched rows (it sends
 * nothing then).  Only the sender uses the connection until copy_pipe_finish.
 */
#define COPY_PIPE_DEPTH 16
#define COPY_PIPE_BATCH (1024 * 1024)

typedef struct copy_pipe
{
	PGconn *conn;
	pthread_t th;
	bool threaded;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	strbuf buf[COPY_PIPE_DEPTH];
	int depth;					/* buffers used (<= COPY_PIPE_DEPTH): memory_limit */
	int sending;				/* the buffer the sender takes next */
	int nqueued;				/* buffers queued, in order from `sending` (the one being sent included) */
	int filling;				/* the buffer the producer appends to: (sending + nqueued) % depth */
	bool done;
	bool failed;
	bs_error err;
	progress *prog;				/* NULL, or rows are counted (on a terminal only) */
} copy_pipe;

static void *
copy_pipe_main(void *arg)
{
	copy_pipe *p = arg;

	pthread_mutex_lock(&p->mu);
	for (;;)
	{
		strbuf *b;
		bs_error e;
		int rc;

		while (p->nqueued == 0 && !p->done)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->nqueued == 0)
			break;
		b = &p->buf[p->sending];
		pthread_mutex_unlock(&p->mu);
		rc = put_copy_data(p->conn, b->data, b->len, &e);
		strbuf_reset(b);
		pthread_mutex_lock(&p->mu);
		p->sending = (p->sending + 1) % p->depth;
		p->nqueued--;
		pthread_cond_broadcast(&p->cv);
		if (rc != BS_OK)
		{
			p->failed = true;
			p->err = e;
			break;
		}
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void
copy_pipe_start(copy_pipe *p, PGconn *conn, progress *prog, uint64_t memory_limit)
{
	memset(p, 0, sizeof(*p));
	p->conn = conn;
	p->prog = prog && prog->draw ? prog : NULL;
	/* A quarter of the memory limit in flight, at least two buffers. */
	p->depth = COPY_PIPE_DEPTH;
	if (memory_limit > 0 && memory_limit / 4 / COPY_PIPE_BATCH < COPY_PIPE_DEPTH)
		p->depth = memory_limit / 4 / COPY_PIPE_BATCH < 2 ? 2 : (int) (memory_limit / 4 / COPY_PIPE_BATCH);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->threaded = pthread_create(&p->th, NULL, copy_pipe_main, p) == 0;
}

/* Queue the filling buffer for the sender (mutex held). */
static void
queue_filling(copy_pipe *p)
{
	p->nqueued++;
	p->filling = (p->filling + 1) % p->depth;
	pthread_cond_broadcast(&p->cv);
}

/* Hand the filling buffer to the sender, waiting for a free one. */
static int
copy_pipe_submit(copy_pipe *p, bs_error *err)
{
	int rc = BS_OK;

	pthread_mutex_lock(&p->mu);
	queue_filling(p);
	while (!p->failed && p->nqueued >= p->depth - 1)
		pthread_cond_wait(&p->cv, &p->mu);
	if (p->failed)
	{
		*err = p->err;
		rc = BS_ERR;
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

/* replay_copy_cb: append to the filling buffer, send when it is full. */
static int
copy_pipe_write(void *ctx, const char *data, size_t len, bs_error *err)
{
	copy_pipe *p = ctx;
	strbuf *b;

	if (p->prog)
	{
		/* COPY text: one line per row (a newline in a value is written \n). */
		for (const char *c = data, *end = data + len; (c = memchr(c, '\n', (size_t) (end - c))) != NULL; c++)
			p->prog->copied++;
		progress_update(p->prog);
	}
	if (!p->threaded)
		return put_copy_data(p->conn, data, len, err);
	b = &p->buf[p->filling];
	strbuf_append(b, data, len);
	if (b->len >= COPY_PIPE_BATCH)
		return copy_pipe_submit(p, err);
	return BS_OK;
}

/* Send what is left and stop the sender; afterwards the connection is the caller's again. */
static int
copy_pipe_finish(copy_pipe *p, bool send_rest, bs_error *err)
{
	int rc = BS_OK;

	if (p->threaded)
	{
		pthread_mutex_lock(&p->mu);
		if (send_rest && p->buf[p->filling].len > 0)
			queue_filling(p);
		p->done = true;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->th, NULL);
		if (send_rest && p->failed)
		{
			*err = p->err;
			rc = BS_ERR;
		}
	}
	for (int i = 0; i < COPY_PIPE_DEPTH; i++)
		strbuf_free(&p->buf[i]);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	return rc;
}

static int
load_rows(PGconn *conn, replay_state *rs, const recover_load_options *o, const char *target,
		  recover_load_result *res, bs_error *err)
{
	copy_pipe pipe;
	strbuf sql = STRBUF_INIT;
	PGresult *pr;
	int rc;

	/* FREEZE (legal: the table was created in this transaction) writes the rows frozen
	 * and the pages all-visible, which makes the validation scan and the index builds
	 * cheaper; the table is invisible to others until commit anyway. */
	strbuf_printf(&sql, "COPY %s FROM STDIN WITH (FREEZE)", target);
	pr = PQexecParams(conn, sql.data, 0, NULL, NULL, NULL, NULL, 0);
	strbuf_free(&sql);
	if (PQresultStatus(pr) != PGRES_COPY_IN)
	{
		pgsql_set_error(err, conn, pr, "could not start COPY into the target");
		PQclear(pr);
		return BS_ERR;
	}
	PQclear(pr);
	copy_pipe_start(&pipe, conn, o->progress, o->memory_limit);
	if (o->source)
		rc = o->source(o->source_ctx, copy_pipe_write, &pipe, &res->ours, err);
	else
		rc = replay_write_copy(rs, o->layout->id, copy_pipe_write, &pipe, NULL, err);
	if (copy_pipe_finish(&pipe, rc == BS_OK, err) != BS_OK)
		rc = BS_ERR;
	if (PQputCopyEnd(conn, rc == BS_OK ? NULL : "backstop: aborted") != 1)
	{
		if (rc == BS_OK)
			pgsql_set_error(err, conn, NULL, "could not finish COPY");
		rc = BS_ERR;
	}
	while ((pr = PQgetResult(conn)) != NULL)
	{
		if (rc == BS_OK && PQresultStatus(pr) != PGRES_COMMAND_OK)
		{
			pgsql_set_error(err, conn, pr, "COPY into the target failed");
			rc = BS_ERR;
		}
		PQclear(pr);
	}
	return rc;
}

/* Backstop's own checksum of the rows, computed in a thread while PostgreSQL loads and
 * scans them: on two cores it costs no wall-clock time. */
typedef struct checksum_job
{
	replay_state *rs;
	uint32_t layout;
	replay_checksum sum;
	bs_error err;
	int rc;
	bool started;
} checksum_job;

static void *
checksum_main(void *arg)
{
	checksum_job *job = arg;

	job->rc = replay_checksum_compute(job->rs, job->layout, &job->sum, &job->err);
	return NULL;
}

/* Start the checksum (inline when no thread can be had). */
static void
checksum_start(checksum_job *job, pthread_t *th, replay_state *rs, uint32_t layout)
{
	memset(job, 0, sizeof(*job));
	job->rs = rs;
	job->layout = layout;
	job->rc = BS_ERR;
	if (pthread_create(th, NULL, checksum_main, job) == 0)
		job->started = true;
	else
		checksum_main(job);
}

/* Wait for the checksum; the state must not change or go away before this. */
static int
checksum_finish(checksum_job *job, pthread_t th, recover_load_result *res, bs_error *err)
{
	if (job->started)
	{
		pthread_join(th, NULL);
		job->started = false;
	}
	if (job->rc != BS_OK)
	{
		*err = job->err;
		return error_prefix(err, "could not compute Backstop's checksum of the rows");
	}
	res->ours = job->sum;
	return BS_OK;
}

/* PostgreSQL's count and checksum of the loaded table. */
static int
pg_checksum(PGconn *conn, const char *target, recover_load_result *res, bs_error *err)
{
	strbuf sql = STRBUF_INIT;
	PGresult *pr;

	strbuf_printf(&sql, RECOVER_CHECKSUM_SQL, target);
	if (pgsql_query(conn, sql.data, &pr, err) != BS_OK)
	{
		strbuf_free(&sql);
		return error_prefix(err, "could not compute the checksum of the recovered table");
	}
	strbuf_free(&sql);
	res->pg_rows = strtoull(PQgetvalue(pr, 0, 0), NULL, 10);
	snprintf(res->pg_sum, sizeof(res->pg_sum), "%s", PQgetvalue(pr, 0, 1));
	PQclear(pr);
	return BS_OK;
}

static int
compare_checksums(recover_load_result *res, bs_error *err)
{
	char ours[REPLAY_CHECKSUM_BUFLEN];

	replay_checksum_format(&res->ours, ours);
	if (res->pg_rows != res->ours.rows || strcmp(res->pg_sum, ours) != 0)
		return error_set(err, ERRCODE_DATA_CORRUPTED,
						 "validation failed: PostgreSQL holds %llu rows with checksum %s, Backstop rebuilt %llu rows "
						 "with checksum %s (text forms differ: check the session settings and types); rolled back",
						 (unsigned long long) res->pg_rows, res->pg_sum, (unsigned long long) res->ours.rows, ours);
	return BS_OK;
}

static void
phase(const recover_load_options *o, const char *name)
{
	if (o->progress)
		progress_phase(o->progress, name);
}

int
recover_load(PGconn *conn, replay_state *rs, const recover_load_options *o, recover_load_result *res,
			 bs_error *err)
{
	char *target = quote_qualified_name(o->schema, o->name);
	strbuf sql = STRBUF_INIT;
	checksum_job job;
	pthread_t th;
	double t0;
	int rc = BS_ERR;

	memset(res, 0, sizeof(*res));
	memset(&job, 0, sizeof(job));
	/* PostgreSQL would cut a longer name and create another table than the one named. */
	if (strlen(o->schema) > NAME_MAX_BYTES || strlen(o->name) > NAME_MAX_BYTES)
	{
		error_set(err, ERRCODE_INVALID_PARAMETER, "target name longer than %d bytes", NAME_MAX_BYTES);
		goto out;
	}
	/* From here until checksum_finish the state is only read (by both threads).  A source
	 * computes the checksum of what it streams itself. */
	if (o->source == NULL)
	{
		if (replay_prepare_output(rs, o->layout->id, err) != BS_OK)
			goto out;
		checksum_start(&job, &th, rs, o->layout->id);
	}
	/* Text forms are read back as archived: pgsql_connect pins the session settings. */
	{
		/* Checked before BEGIN: a type that is not one column type sends nothing. */
		char *create = sqlcheck_create_table(o->schema, o->name, o->layout, err);

		if (create == NULL)
		{
			error_prefix(err, "layout %u", (unsigned) o->layout->id);
			goto out;
		}
		strbuf_append_str(&sql, create);
		free(create);
	}
	/* The stored definitions were checked with libpg_query, which reads string literals as
	 * standard_conforming_strings = on: the server must read them the same way. */
	if (exec_sql(conn, "BEGIN", err) != BS_OK)
		goto out;
	if (exec_sql(conn, "SET LOCAL standard_conforming_strings = on", err) != BS_OK ||
		check_target(conn, o, target, err) != BS_OK)
		goto rollback;
	if (exec_sql(conn, sql.data, err) != BS_OK)
	{
		error_prefix(err, "could not create %s", target);
		goto rollback;
	}
	t0 = clock_mono_s();
	phase(o, "copy");
	if (load_rows(conn, rs, o, target, res, err) != BS_OK)
		goto rollback;
	res->copy_seconds = clock_mono_s() - t0;
	t0 = clock_mono_s();
	phase(o, "validate");
	if (pg_checksum(conn, target, res, err) != BS_OK ||
		(o->source == NULL && checksum_finish(&job, th, res, err) != BS_OK) ||
		compare_checksums(res, err) != BS_OK)
		goto rollback;
	res->validate_seconds = clock_mono_s() - t0;
	t0 = clock_mono_s();
	phase(o, "index");
	if (!o->no_indexes && o->definition && recreate_definition(conn, o, target, res, err) != BS_OK)
		goto rollback;
	res->index_seconds = clock_mono_s() - t0;
	phase(o, "commit");
	{
		char *lit = quote_literal(o->comment);

		strbuf_reset(&sql);
		strbuf_printf(&sql, "COMMENT ON TABLE %s IS %s", target, lit);
		free(lit);
	}
	if (exec_sql(conn, sql.data, err) != BS_OK || exec_sql(conn, "COMMIT", err) != BS_OK)
		goto rollback;
	rc = BS_OK;
	goto out;
rollback:
	{
		PGresult *r = PQexec(conn, "ROLLBACK");

		PQclear(r);
	}
out:
	if (job.started)
		pthread_join(th, NULL);	/* a failure elsewhere: the thread still reads rs */
	strbuf_free(&sql);
	free(target);
	return rc;
}
