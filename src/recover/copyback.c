/* copyback.c — the SQL that puts a recovered table back: chosen from the live database and the point, printed, or applied and validated. */
#include "copyback.h"
#include "isotime.h"
#include "lsn.h"
#include "pgsql.h"
#include "quote.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/*
 * Names holding control characters are written U&"..." (quote_ident_printable), so that
 * every statement reads as it runs: the printed SQL and the applied SQL are the same text.
 */

/* Comma-separated quoted columns of the layout; keys: -1 every column, 1 the key columns, 0
 * the others; fmt names the column as %1$s. */
static void
column_items(strbuf *sb, const manifest_layout *l, int keys, const char *sep, const char *fmt)
{
	for (int i = 0, k = 0; i < l->ncols; i++)
	{
		char *q;

		if (keys >= 0 && (int) l->columns[i].key != keys)
			continue;
		q = quote_ident_printable(l->columns[i].name);
		if (k++)
			strbuf_append_str(sb, sep);
		strbuf_printf(sb, fmt, q);
		free(q);
	}
}

/* The same for a list of column names. */
static void
name_items(strbuf *sb, char **names, int n, const char *sep, const char *fmt)
{
	for (int i = 0; i < n; i++)
	{
		char *q = quote_ident_printable(names[i]);

		if (i)
			strbuf_append_str(sb, sep);
		strbuf_printf(sb, fmt, q);
		free(q);
	}
}

static int
key_count(const manifest_layout *l)
{
	int nkey = 0;

	for (int i = 0; i < l->ncols; i++)
		nkey += l->columns[i].key && (l->replident == 'd' || l->replident == 'i');
	return nkey;
}

static void
add_step(copyback *cb, const char *what, strbuf *sql)
{
	if (cb->n == COPYBACK_MAX_STEPS)
		abort();				/* the plans below have at most five */
	cb->what[cb->n] = xstrdup(what);
	cb->sql[cb->n] = strbuf_detach(sql, NULL);
	cb->n++;
}

void
copyback_free(copyback *cb)
{
	for (int i = 0; i < cb->n; i++)
	{
		free(cb->what[i]);
		free(cb->sql[i]);
	}
	strbuf_free(&cb->notes);
	cb->n = 0;
}

int
copyback_parse_columns(const char *list, char ***out, int *n, bs_error *err)
{
	const char *p = list;

	*out = NULL;
	*n = 0;
	for (;;)
	{
		strbuf name = STRBUF_INIT;

		while (*p == ' ')
			p++;
		if (*p == '"')
		{
			for (p++;; p++)
			{
				if (*p == '\0')
				{
					strbuf_free(&name);
					return error_set(err, ERRCODE_INVALID_PARAMETER, "--copy-back-columns: unterminated quoted name");
				}
				if (*p == '"' && p[1] == '"')
					strbuf_append_char(&name, *p++);
				else if (*p == '"')
					break;
				else
					strbuf_append_char(&name, *p);
			}
			p++;
		}
		else
			while (*p && *p != ',' && *p != ' ')
				strbuf_append_char(&name, *p++);
		while (*p == ' ')
			p++;
		if (name.len == 0 || (*p != ',' && *p != '\0'))
		{
			strbuf_free(&name);
			return error_set(err, ERRCODE_INVALID_PARAMETER, "--copy-back-columns: expected column names separated "
							 "by commas");
		}
		*out = xrealloc(*out, sizeof(char *) * (size_t) (*n + 1));
		(*out)[(*n)++] = strbuf_detach(&name, NULL);
		if (*p == '\0')
			return BS_OK;
		p++;
	}
}

void
copyback_free_columns(char **cols, int n)
{
	for (int i = 0; i < n; i++)
		free(cols[i]);
	free(cols);
}

int
copyback_live_state(PGconn *conn, const manifest *m, copyback_live *live, uint32_t *relid, bs_error *err)
{
	char *q = quote_qualified_name(m->schema, m->name);
	const char *params[1] = {q};
	PGresult *res;

	*live = COPYBACK_LIVE_UNKNOWN;
	*relid = 0;
	if (pgsql_query_params(conn, "SELECT to_regclass($1)::oid", 1, params, &res, err) != BS_OK)
	{
		free(q);
		return error_prefix(err, "could not look up the table in the live database");
	}
	free(q);
	if (PQgetisnull(res, 0, 0))
		*live = COPYBACK_LIVE_GONE;
	else
	{
		*relid = (uint32_t) strtoul(PQgetvalue(res, 0, 0), NULL, 10);
		*live = *relid == m->relid ? COPYBACK_LIVE_SAME : COPYBACK_LIVE_OTHER;
	}
	PQclear(res);
	return BS_OK;
}

void
copyback_later_changes(const manifest *m, uint64_t applied_end, uint64_t base_lsn, copyback_later *later)
{
	/* Transactions are archived in commit order: one that ends after the last applied one
	 * (or, with none applied, after the base) committed after the point. */
	uint64_t after = applied_end > base_lsn ? applied_end : base_lsn;

	memset(later, 0, sizeof(*later));
	for (int i = 0; i < m->nsegments; i++)
	{
		const manifest_segment *s = &m->segments[i];

		if (s->last_end_lsn <= after)
			continue;
		later->segments++;
		if (s->last_end_lsn > later->last_end_lsn)
		{
			later->last_end_lsn = s->last_end_lsn;
			later->last_time = s->last_time;
		}
	}
}

/* After the recovery takes the table's name: its comment (which also ends the recovery mark)
 * and its owner, as the base's definition has them. */
static void
add_table_attributes(const char *definition, const char *table, copyback *cb)
{
	json_t *root = definition ? json_loads(definition, 0, NULL) : NULL;
	const char *comment = json_string_value(json_object_get(root, "comment"));
	const char *owner = json_string_value(json_object_get(root, "owner"));
	strbuf sql = STRBUF_INIT;

	if (root == NULL)
		return;
	if (comment)
	{
		char *lit = quote_literal(comment);
		char *shown = xstrdup_printable(lit);

		strbuf_printf(&sql, "COMMENT ON TABLE %s IS %s;", table, shown);
		free(shown);
		free(lit);
	}
	else
		strbuf_printf(&sql, "COMMENT ON TABLE %s IS NULL;", table);
	add_step(cb, "the table's comment as it was (this also removes the recovery mark)", &sql);
	if (owner)
	{
		char *q = quote_ident_printable(owner);

		strbuf_printf(&sql, "ALTER TABLE %s OWNER TO %s;", table, q);
		free(q);
		add_step(cb, "the table's owner as it was (the recovery is owned by the role that ran it)", &sql);
	}
	json_decref(root);
}

static void
note_later(const copyback_input *in, copyback *cb, const char *what_is_lost)
{
	char l[LSN_BUFLEN],
		t[ISOTIME_BUFLEN];

	if (in->later.segments == 0)
		return;
	strbuf_printf(&cb->notes, "WARNING: changes to this table were archived after the point (%d segment(s), the last "
				  "transaction ending at LSN %s, committed %s): %s\n", in->later.segments,
				  lsn_format(in->later.last_end_lsn, l), isotime_format(in->later.last_time, t), what_is_lost);
}

static void
build_rename(const copyback_input *in, const char *orig, copyback *cb)
{
	const manifest *m = in->m;
	char *tgt = quote_qualified_name_printable(in->target_schema, in->target_name);
	char *qn = quote_ident_printable(m->name);
	strbuf sql = STRBUF_INIT;

	cb->kind = COPYBACK_RENAME;
	if (in->live == COPYBACK_LIVE_OTHER)
	{
		/* Another table holds the name: move it aside, never drop it. */
		strbuf aside = STRBUF_INIT;
		char *qa;

		strbuf_append(&aside, m->name, strlen(m->name) > 47 ? 47 : strlen(m->name));
		strbuf_append_str(&aside, "_before_recovery");
		qa = quote_ident_printable(aside.data);
		strbuf_printf(&sql, "ALTER TABLE %s RENAME TO %s;", orig, qa);
		add_step(cb, "a table of that name exists again: move it aside (it is kept)", &sql);
		strbuf_printf(&cb->notes, "A table named %s exists again (relid %u, not the archived table's %u): the plan "
					  "moves it aside as %s and keeps it. To keep it in place instead, copy rows into it by hand "
					  "or with --copy-back-columns.\n", orig, in->live_relid, m->relid, qa);
		free(qa);
		strbuf_free(&aside);
	}
	if (strcmp(in->target_schema, m->schema) != 0)
	{
		char *qs = quote_ident_printable(m->schema);

		strbuf_printf(&sql, "ALTER TABLE %s SET SCHEMA %s;", tgt, qs);
		add_step(cb, "the recovery into the table's schema", &sql);
		free(tgt);
		tgt = quote_qualified_name_printable(m->schema, in->target_name);
		free(qs);
	}
	strbuf_printf(&sql, "ALTER TABLE %s RENAME TO %s;", tgt, qn);
	add_step(cb, in->live == COPYBACK_LIVE_OTHER ? "give the recovered table its name back"
			 : "the table was dropped: give the recovered table its name back", &sql);
	add_table_attributes(in->definition, orig, cb);
	note_later(in, cb, "putting this recovery in place loses them");
	if (in->later.segments && in->latest_command)
		strbuf_printf(&cb->notes, "To keep them, recover the latest state instead: %s\n", in->latest_command);
	free(qn);
	free(tgt);
}

static void
build_rows(const copyback_input *in, const char *orig, const char *tgt, copyback *cb)
{
	const manifest_layout *l = in->layout;
	int nkey = key_count(l);
	strbuf sql = STRBUF_INIT;

	cb->kind = COPYBACK_ROWS;
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
	add_step(cb, "rows were deleted: insert the recovered rows that are missing from the table", &sql);
	/* Rows changed since the point (needs a key to pair rows).  Compared as text: a column
	 * type without an equality operator (json, point, ...) compares too. */
	if (nkey > 0 && nkey < l->ncols)
	{
		strbuf_printf(&sql, "UPDATE %s o SET ", orig);
		column_items(&sql, l, 0, ", ", "%1$s = r.%1$s");
		strbuf_printf(&sql, "\nFROM %s r WHERE ", tgt);
		column_items(&sql, l, 1, " AND ", "o.%1$s = r.%1$s");
		strbuf_append_str(&sql, "\n  AND ROW(");
		column_items(&sql, l, 0, ", ", "o.%1$s");
		strbuf_append_str(&sql, ")::text IS DISTINCT FROM ROW(");
		column_items(&sql, l, 0, ", ", "r.%1$s");
		strbuf_append_str(&sql, ")::text;");
		add_step(cb, "rows were changed: set them back to their recovered values, matched by key", &sql);
	}
	note_later(in, cb, "rows changed since are set back to their values at the point, and those later changes "
			   "to them are lost; rows inserted since are kept (delete them yourself if they are part of the damage)");
	if (nkey == 0)
		strbuf_append_str(&cb->notes, "The table has no key: changed rows cannot be paired, only missing rows "
						  "are inserted (as a multiset).\n");
}

static int
build_columns(const copyback_input *in, const char *orig, const char *tgt, copyback *cb, bs_error *err)
{
	const manifest_layout *l = in->layout;
	strbuf sql = STRBUF_INIT;

	if (key_count(l) == 0)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "--copy-back-columns needs a key to pair rows, and the table "
						 "has none (replica identity FULL or nothing)");
	for (int i = 0; i < in->ncolumns; i++)
	{
		int found = -1;

		for (int c = 0; c < l->ncols; c++)
			if (strcmp(l->columns[c].name, in->columns[i]) == 0)
				found = c;
		if (found < 0)
			return error_set(err, ERRCODE_INVALID_PARAMETER, "--copy-back-columns: the table has no column \"%s\" "
							 "at the point", in->columns[i]);
		if (l->columns[found].key)
			return error_set(err, ERRCODE_INVALID_PARAMETER, "--copy-back-columns: \"%s\" is a key column; rows "
							 "are matched by it", in->columns[i]);
	}
	cb->kind = COPYBACK_COLUMNS;
	strbuf_printf(&sql, "UPDATE %s o SET ", orig);
	name_items(&sql, in->columns, in->ncolumns, ", ", "%1$s = r.%1$s");
	strbuf_printf(&sql, "\nFROM %s r WHERE ", tgt);
	column_items(&sql, l, 1, " AND ", "o.%1$s = r.%1$s");
	strbuf_append_str(&sql, "\n  AND ROW(");
	name_items(&sql, in->columns, in->ncolumns, ", ", "o.%1$s");
	strbuf_append_str(&sql, ")::text IS DISTINCT FROM ROW(");
	name_items(&sql, in->columns, in->ncolumns, ", ", "r.%1$s");
	strbuf_append_str(&sql, ")::text;");
	add_step(cb, "set the named columns back to their recovered values, matched by key (other columns and rows "
			 "are left as they are)", &sql);
	strbuf_append_str(&cb->notes, "Only the named columns of rows present in both tables change; later changes "
					  "to those columns are lost.\n");
	return BS_OK;
}

int
copyback_build(const copyback_input *in, copyback *cb, bs_error *err)
{
	char *orig = quote_qualified_name_printable(in->m->schema, in->m->name);
	char *tgt = quote_qualified_name_printable(in->target_schema, in->target_name);
	int rc = BS_OK;

	memset(cb, 0, sizeof(*cb));
	if (in->columns)
	{
		if (in->live == COPYBACK_LIVE_GONE)
			rc = error_set(err, ERRCODE_INVALID_PARAMETER, "--copy-back-columns: no table named %s exists to "
						   "copy columns into (recover it first, e.g. at --latest, and put that in place)", orig);
		else
			rc = build_columns(in, orig, tgt, cb, err);
	}
	else if (in->live == COPYBACK_LIVE_GONE || in->live == COPYBACK_LIVE_OTHER ||
			 (in->live == COPYBACK_LIVE_UNKNOWN && strcmp(in->m->status, "dropped") == 0))
		build_rename(in, orig, cb);
	else
		build_rows(in, orig, tgt, cb);
	free(orig);
	free(tgt);
	return rc;
}

/* One number from a query. */
static int
query_text(PGconn *conn, const char *sql, char **out, bs_error *err)
{
	return pgsql_query_value(conn, sql, out, err);
}

/* count and content checksum over the recovered columns, as recovery's validation computes
 * them over the whole row: ROW(a, b)::text is ROW(t.*)::text for a table of columns a, b. */
static int
columns_checksum(PGconn *conn, const manifest_layout *l, const char *table, char **out, bs_error *err)
{
	strbuf sql = STRBUF_INIT;
	int rc;

	strbuf_append_str(&sql, "SELECT count(*) || '/' || coalesce(sum(hashtextextended(ROW(");
	column_items(&sql, l, -1, ", ", "t.%1$s");
	strbuf_printf(&sql, ")::text, 0)), 0)::text FROM %s t", table);
	rc = query_text(conn, sql.data, out, err);
	strbuf_free(&sql);
	return rc;
}

static int
validate(PGconn *conn, const copyback_input *in, const copyback *cb, const char *orig, const char *tgt,
		 const char *before, bs_error *err)
{
	strbuf sql = STRBUF_INIT;
	char *v = NULL;
	int rc;

	if (cb->kind == COPYBACK_RENAME)
	{
		if ((rc = columns_checksum(conn, in->layout, orig, &v, err)) == BS_OK && strcmp(v, before) != 0)
			rc = error_set(err, ERRCODE_DATA_CORRUPTED, "copy-back validation failed: %s holds %s (rows/checksum), "
						   "the recovery held %s; rolled back", orig, v, before);
		free(v);
		return rc;
	}
	if (cb->kind == COPYBACK_ROWS)
	{
		/* Every recovered row is in the table (as a multiset, compared as text). */
		strbuf_append_str(&sql, "SELECT count(*) FROM (SELECT ROW(");
		column_items(&sql, in->layout, -1, ", ", "r.%1$s");
		strbuf_printf(&sql, ")::text FROM %s r EXCEPT ALL SELECT ROW(", tgt);
		column_items(&sql, in->layout, -1, ", ", "o.%1$s");
		strbuf_printf(&sql, ")::text FROM %s o) x", orig);
	}
	else
	{
		strbuf_printf(&sql, "SELECT count(*) FROM %s r JOIN %s o ON ", tgt, orig);
		column_items(&sql, in->layout, 1, " AND ", "o.%1$s = r.%1$s");
		strbuf_append_str(&sql, " WHERE ROW(");
		name_items(&sql, in->columns, in->ncolumns, ", ", "o.%1$s");
		strbuf_append_str(&sql, ")::text IS DISTINCT FROM ROW(");
		name_items(&sql, in->columns, in->ncolumns, ", ", "r.%1$s");
		strbuf_append_str(&sql, ")::text");
	}
	rc = query_text(conn, sql.data, &v, err);
	strbuf_free(&sql);
	if (rc == BS_OK && strcmp(v, "0") != 0)
		rc = error_set(err, ERRCODE_DATA_CORRUPTED, "copy-back validation failed: %s recovered %s not in %s "
					   "after the copy-back; rolled back", v, cb->kind == COPYBACK_ROWS ? "row(s) are" :
					   "value(s) are", orig);
	free(v);
	return rc;
}

/* The end of the copy-back's transaction: COMMIT when all went well (rc), else, or when the
 * COMMIT fails, ROLLBACK. */
static int
commit_or_rollback(PGconn *conn, int rc, bs_error *err)
{
	if (rc == BS_OK && pgsql_exec_one(conn, "COMMIT", err) == BS_OK)
		return BS_OK;
	pgsql_exec(conn, "ROLLBACK", &(bs_error) {0});
	return BS_ERR;
}

/* The copy-back's statements in order, in the caller's transaction; a failed one is named. */
static int
run_steps(PGconn *conn, char *const *sql, const char *const *what, int n, bs_error *err)
{
	for (int i = 0; i < n; i++)
		if (pgsql_exec_one(conn, sql[i], err) != BS_OK)
			return error_prefix(err, "copy-back step %d (%s), rolled back", i + 1, what[i]);
	return BS_OK;
}

int
copyback_apply(PGconn *conn, const copyback_input *in, const copyback *cb, bs_error *err)
{
	char *orig = quote_qualified_name_printable(in->m->schema, in->m->name);
	char *tgt = quote_qualified_name_printable(in->target_schema, in->target_name);
	char *before = NULL;
	int rc = BS_ERR;

	if (pgsql_exec_one(conn, "BEGIN", err) != BS_OK)
		goto out;
	/* The recovery's own content, in this transaction, before anything moves. */
	if (cb->kind == COPYBACK_RENAME && columns_checksum(conn, in->layout, tgt, &before, err) != BS_OK)
		goto end;
	if (run_steps(conn, cb->sql, (const char *const *) cb->what, cb->n, err) != BS_OK)
		goto end;
	if (validate(conn, in, cb, orig, tgt, before, err) != BS_OK)
		goto end;
	rc = BS_OK;
end:
	rc = commit_or_rollback(conn, rc, err);
out:
	free(before);
	free(orig);
	free(tgt);
	return rc;
}

/* A query about one member: its name is $1 and, with nparams 2, its parent's $2 (NULL for the root). */
static int
member_query(PGconn *conn, const copyback_member *e, const char *sql, int nparams, PGresult **res, bs_error *err)
{
	char *q = quote_qualified_name(e->schema, e->name);
	char *pq = e->parent_name ? quote_qualified_name(e->parent_schema, e->parent_name) : NULL;
	const char *params[2] = {q, pq};
	int rc = pgsql_query_params(conn, sql, nparams, params, res, err);

	free(q);
	free(pq);
	return rc;
}

/* One member checked in the live database: a difference said in *why. */
typedef int (*member_check) (PGconn *conn, const copyback_member *e, strbuf *why, bs_error *err);

/* Check the members in order up to the first difference, said in *why (empty: none). */
static int
check_members(PGconn *conn, const copyback_member *mem, int n, member_check check, strbuf *why, bs_error *err)
{
	strbuf_reset(why);
	for (int i = 0; i < n && why->len == 0; i++)
		if (check(conn, &mem[i], why, err) != BS_OK)
			return BS_ERR;
	return BS_OK;
}

/* The member stands as at the point: its kind, partition key, parent and bound. */
static int
member_in_place(PGconn *conn, const copyback_member *e, strbuf *why, bs_error *err)
{
	bool child = e->parent_name != NULL;
	char *shown;
	PGresult *res;

	if (member_query(conn, e, "SELECT c.relkind::text, CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END, "
					 "EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid AND i.inhparent = to_regclass($2)), "
					 "pg_get_expr(c.relpartbound, c.oid) FROM pg_class c WHERE c.oid = to_regclass($1)",
					 2, &res, err) != BS_OK)
		return error_prefix(err, "could not look up the live partitioned table");
	shown = quote_display_name(e->schema, e->name);
	if (PQntuples(res) == 0)
		strbuf_printf(why, "%s does not exist", shown);
	else if (e->key && (strcmp(PQgetvalue(res, 0, 0), "p") != 0 || strcmp(PQgetvalue(res, 0, 1), e->key) != 0))
		strbuf_printf(why, "%s is not partitioned by %s as at the point", shown, e->key);
	else if (e->key == NULL && strcmp(PQgetvalue(res, 0, 0), "r") != 0)
		strbuf_printf(why, "%s is not an ordinary table as at the point", shown);
	else if (child && strcmp(PQgetvalue(res, 0, 2), "t") != 0)
	{
		char *ps = quote_display_name(e->parent_schema, e->parent_name);

		strbuf_printf(why, "%s is not a partition of %s as at the point", shown, ps);
		free(ps);
	}
	else if (child && (PQgetisnull(res, 0, 3) || strcmp(PQgetvalue(res, 0, 3), e->bound) != 0))
		strbuf_printf(why, "%s is attached %s, not %s as at the point", shown,
					  PQgetisnull(res, 0, 3) ? "without a bound" : PQgetvalue(res, 0, 3), e->bound);
	PQclear(res);
	free(shown);
	return BS_OK;
}

/* No relation holds the member's name. */
static int
member_name_free(PGconn *conn, const copyback_member *e, strbuf *why, bs_error *err)
{
	PGresult *res;

	if (member_query(conn, e, "SELECT to_regclass($1) IS NOT NULL", 1, &res, err) != BS_OK)
		return error_prefix(err, "could not look up the table in the live database");
	if (strcmp(PQgetvalue(res, 0, 0), "t") == 0)
	{
		char *shown = quote_display_name(e->schema, e->name);

		strbuf_printf(why, "a table named %s exists", shown);
		free(shown);
	}
	PQclear(res);
	return BS_OK;
}

int
copyback_hierarchy_check(PGconn *conn, const copyback_member *mem, int n, strbuf *why, bs_error *err)
{
	return check_members(conn, mem, n, member_in_place, why, err);
}

int
copyback_names_free(PGconn *conn, const copyback_member *mem, int n, strbuf *why, bs_error *err)
{
	return check_members(conn, mem, n, member_name_free, why, err);
}

int
copyback_apply_hierarchy(PGconn *conn, char *const *sql, const char *const *what, int nsql,
						 const copyback_member *mem, int n, uint64_t rows, bs_error *err)
{
	strbuf why = STRBUF_INIT;
	int rc = BS_ERR;

	if (pgsql_exec_one(conn, "BEGIN", err) != BS_OK)
		goto out;
	if (run_steps(conn, sql, what, nsql, err) != BS_OK)
		goto end;
	if (copyback_hierarchy_check(conn, mem, n, &why, err) != BS_OK)
		goto end;
	if (why.len)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "copy-back validation failed: %s; rolled back", why.data);
		goto end;
	}
	for (int i = 0; i < n; i++)
	{
		char *q,
				   *v = NULL;

		if (mem[i].key)
			continue;
		q = quote_qualified_name(mem[i].schema, mem[i].name);
		if (columns_checksum(conn, mem[i].layout, q, &v, err) != BS_OK)
		{
			free(q);
			goto end;
		}
		free(q);
		if (strcmp(v, mem[i].checksum) != 0)
		{
			char *shown = quote_display_name(mem[i].schema, mem[i].name);

			error_set(err, ERRCODE_DATA_CORRUPTED, "copy-back validation failed: partition %s holds %s "
					  "(rows/checksum), the recovery held %s; rolled back", shown, v, mem[i].checksum);
			free(shown);
			free(v);
			goto end;
		}
		free(v);
	}
	{
		/* Every row is in one of the partitions checked: none went to another live one. */
		char *q = quote_qualified_name(mem[0].schema, mem[0].name);
		char *v = NULL;

		strbuf_reset(&why);
		strbuf_printf(&why, "SELECT count(*) FROM %s", q);
		free(q);
		if (query_text(conn, why.data, &v, err) != BS_OK)
			goto end;
		if (strtoull(v, NULL, 10) != rows)
		{
			error_set(err, ERRCODE_DATA_CORRUPTED, "copy-back validation failed: the partitioned table holds %s "
					  "rows, the recovery held %llu; rolled back", v, (unsigned long long) rows);
			free(v);
			goto end;
		}
		free(v);
	}
	rc = BS_OK;
end:
	rc = commit_or_rollback(conn, rc, err);
out:
	strbuf_free(&why);
	return rc;
}
