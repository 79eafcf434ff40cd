/* sqlcheck.c — SQL text from storage (types, defaults, constraints, indexes) checked as exactly one fragment of its kind. */
#include "sqlcheck.h"
#include "quote.h"
#include "strbuf.h"

#include <jansson.h>
#include <pg_query.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * libpg_query recurses once per level of the parse tree, and a long "1+1+...+1" is as deep
 * as it is long: parse in a thread whose stack bounds that for SQLCHECK_MAX_FRAGMENT.
 */
#define PARSE_STACK_SIZE ((size_t) 128 << 20)
#define REASON_LEN 300

typedef struct parse_job
{
	const char *sql;
	json_t *root;				/* the parse tree, NULL on failure */
	char reason[REASON_LEN];
} parse_job;

/* Printable copy of a message that may quote untrusted text: control bytes become '?'. */
static void
set_reason(char *reason, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
set_reason(char *reason, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, REASON_LEN, fmt, ap);
	va_end(ap);
	for (char *p = reason; *p; p++)
		if ((unsigned char) *p < 0x20 || *p == 0x7f)
			*p = '?';
	/* Do not leave a UTF-8 sequence cut at the end. */
	{
		size_t n = strlen(reason);
		size_t i = n;

		while (i > 0 && ((unsigned char) reason[i - 1] & 0xC0) == 0x80)
			i--;
		if (i > 0 && ((unsigned char) reason[i - 1] & 0x80))
		{
			unsigned char lead = (unsigned char) reason[i - 1];
			size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;

			if (n - (i - 1) < want)
				reason[i - 1] = '\0';
		}
	}
}

static void *
parse_main(void *arg)
{
	parse_job *job = arg;
	PgQueryParseResult r = pg_query_parse(job->sql);

	if (r.error)
		set_reason(job->reason, "%s", r.error->message ? r.error->message : "syntax error");
	else if (r.parse_tree == NULL)
		set_reason(job->reason, "the parser returned nothing");
	else
	{
		json_error_t jerr;

		job->root = json_loads(r.parse_tree, 0, &jerr);
		if (job->root == NULL)
			set_reason(job->reason, "parse tree not readable (%s): too deeply nested?", jerr.text);
	}
	pg_query_free_parse_result(r);
	return NULL;
}

/*
 * Parse sql, which must be exactly one statement of the given node kind spanning the whole
 * text (a ';' ends it early, so no ';' at all): returns that node (owned by *root).
 */
static json_t *
parse_one(const char *sql, const char *kind, const char *what, json_t **root, char *reason)
{
	parse_job job;
	pthread_attr_t attr;
	pthread_t th;
	json_t *stmts,
			   *entry,
			   *stmt,
			   *node;
	const char *key;
	json_t *v;

	memset(&job, 0, sizeof(job));
	job.sql = sql;
	*root = NULL;
	if (pthread_attr_init(&attr) != 0)
	{
		set_reason(reason, "could not start the SQL parser");
		return NULL;
	}
	if (pthread_attr_setstacksize(&attr, PARSE_STACK_SIZE) != 0 ||
		pthread_create(&th, &attr, parse_main, &job) != 0)
	{
		pthread_attr_destroy(&attr);
		set_reason(reason, "could not start the SQL parser");
		return NULL;
	}
	pthread_attr_destroy(&attr);
	pthread_join(th, NULL);
	if (job.root == NULL)
	{
		memcpy(reason, job.reason, REASON_LEN);
		return NULL;
	}
	*root = job.root;
	stmts = json_object_get(job.root, "stmts");
	if (!json_is_array(stmts) || json_array_size(stmts) != 1)
	{
		set_reason(reason, "%zu statements instead of one", json_is_array(stmts) ? json_array_size(stmts) : 0);
		return NULL;
	}
	entry = json_array_get(stmts, 0);
	json_object_foreach(entry, key, v)
	{
		/* A statement that does not start at 0 or does not run to the end has a ';' around it. */
		if ((strcmp(key, "stmt_location") == 0 || strcmp(key, "stmt_len") == 0) && json_integer_value(v) == 0)
			continue;
		if (strcmp(key, "stmt") == 0)
			continue;
		set_reason(reason, "a ';' cuts the statement short");
		return NULL;
	}
	stmt = json_object_get(entry, "stmt");
	if (!json_is_object(stmt) || json_object_size(stmt) != 1 || (node = json_object_get(stmt, kind)) == NULL)
	{
		set_reason(reason, "the statement is not %s", what);
		return NULL;
	}
	if (!json_is_object(node))
	{
		set_reason(reason, "malformed %s", what);
		return NULL;
	}
	return node;
}

/* Fail unless every member of o is in allowed (NULL-terminated). */
static bool
only_members(json_t *o, const char *what, const char *const *allowed, char *reason)
{
	const char *key;
	json_t *v;

	if (!json_is_object(o))
	{
		set_reason(reason, "malformed %s", what);
		return false;
	}
	json_object_foreach(o, key, v)
	{
		const char *const *a;

		for (a = allowed; *a; a++)
			if (strcmp(*a, key) == 0)
				break;
		if (*a == NULL)
		{
			set_reason(reason, "unexpected \"%s\" in the %s", key, what);
			return false;
		}
	}
	return true;
}

static bool
str_member_is(json_t *o, const char *key, const char *want)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL && strcmp(s, want) == 0;
}

/* The only member of a {"Kind": {...}} wrapper when it is kind, else NULL. */
static json_t *
unwrap(json_t *o, const char *kind)
{
	if (!json_is_object(o) || json_object_size(o) != 1)
		return NULL;
	o = json_object_get(o, kind);
	return json_is_object(o) ? o : NULL;
}

/* A RangeVar naming schema.table (schema NULL: unqualified; table NULL: any name). */
static bool
check_relation(json_t *rv, const char *schema, const char *table, char *reason)
{
	static const char *const members[] = {"schemaname", "relname", "inh", "relpersistence", "location", NULL};
	const char *s;

	if (!only_members(rv, "table name", members, reason))
		return false;
	if (!str_member_is(rv, "relpersistence", "p"))
	{
		set_reason(reason, "the table is not a plain table");
		return false;
	}
	if (json_string_value(json_object_get(rv, "relname")) == NULL ||
		(table && !str_member_is(rv, "relname", table)))
	{
		set_reason(reason, "the statement is not on the expected table");
		return false;
	}
	s = json_string_value(json_object_get(rv, "schemaname"));
	if (table && ((schema == NULL) != (s == NULL) || (schema && strcmp(s, schema) != 0)))
	{
		set_reason(reason, "the statement is not on the expected table");
		return false;
	}
	return true;
}

static char *
qualified(const char *schema, const char *table)
{
	return schema ? quote_qualified_name(schema, table) : quote_ident(table);
}

static bool
check_fragment_size(const char *text, const char *what, bs_error *err)
{
	if (text == NULL)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "%s is missing", what);
		return false;
	}
	if (strlen(text) > SQLCHECK_MAX_FRAGMENT)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "%s is longer than %d bytes: refused", what, SQLCHECK_MAX_FRAGMENT);
		return false;
	}
	return true;
}

/* A type name: names, integer/string/identifier type modifiers, array bounds; nothing else. */
static bool
check_type_name(json_t *tn, char *reason)
{
	static const char *const members[] = {"names", "typmods", "typemod", "arrayBounds", "location", NULL};
	static const char *const const_members[] = {"ival", "sval", "fval", "location", NULL};
	json_t *names = json_object_get(tn, "names");
	json_t *typmods = json_object_get(tn, "typmods");
	json_t *bounds = json_object_get(tn, "arrayBounds");
	json_t *tm = json_object_get(tn, "typemod");
	json_t *e;
	size_t i;

	if (!only_members(tn, "type", members, reason))
		return false;
	if (!json_is_array(names) || json_array_size(names) < 1 || json_array_size(names) > 3 ||
		(tm && json_integer_value(tm) != -1))
	{
		set_reason(reason, "malformed type name");
		return false;
	}
	json_array_foreach(names, i, e)
	{
		if (unwrap(e, "String") == NULL)
		{
			set_reason(reason, "malformed type name");
			return false;
		}
	}
	if (typmods && !json_is_array(typmods))
	{
		set_reason(reason, "malformed type modifiers");
		return false;
	}
	json_array_foreach(typmods, i, e)
	{
		json_t *c = unwrap(e, "A_Const");
		json_t *cr = unwrap(e, "ColumnRef");

		if (c && only_members(c, "type modifier", const_members, reason) && json_object_size(c) >= 1)
			continue;
		if (cr && json_array_size(json_object_get(cr, "fields")) == 1 &&
			unwrap(json_array_get(json_object_get(cr, "fields"), 0), "String"))
			continue;
		set_reason(reason, "a type modifier is not a constant or a name");
		return false;
	}
	if (bounds && !json_is_array(bounds))
	{
		set_reason(reason, "malformed array bounds");
		return false;
	}
	json_array_foreach(bounds, i, e)
	{
		if (unwrap(e, "Integer") == NULL)
		{
			set_reason(reason, "malformed array bounds");
			return false;
		}
	}
	return true;
}

/*
 * CREATE TABLE for the columns of l, checked.  NULL on failure with reason set and *bad the
 * column at fault (-1 when the statement as a whole is).
 */
static char *
build_create_table(const char *schema, const char *table, const manifest_layout *l, const char *partkey,
				   char *reason, int *bad)
{
	static const char *const stmt_members[] = {"relation", "tableElts", "oncommit", NULL};
	static const char *const part_stmt_members[] = {"relation", "tableElts", "oncommit", "partspec", NULL};
	static const char *const spec_members[] = {"strategy", "partParams", "location", NULL};
	static const char *const elem_members[] = {"name", "expr", "collation", "opclass", "location", NULL};
	static const char *const col_members[] = {"colname", "typeName", "is_local", "location", "constraints", NULL};
	strbuf sql = STRBUF_INIT;
	char *target = qualified(schema, table);
	json_t *root = NULL,
			   *node,
			   *elts;

	*bad = -1;
	strbuf_printf(&sql, "CREATE TABLE %s (", target);
	free(target);
	for (int i = 0; i < l->ncols; i++)
	{
		const manifest_column *c = &l->columns[i];
		char *q;

		if (c->type_name == NULL || strlen(c->type_name) > SQLCHECK_MAX_FRAGMENT)
		{
			*bad = i;
			set_reason(reason, c->type_name ? "longer than %d bytes" : "missing", SQLCHECK_MAX_FRAGMENT);
			strbuf_free(&sql);
			return NULL;
		}
		q = quote_ident(c->name);
		strbuf_printf(&sql, "%s%s %s%s", i ? ", " : "", q, c->type_name, c->not_null ? " NOT NULL" : "");
		free(q);
	}
	strbuf_append_str(&sql, ")");
	if (partkey)
	{
		if (strlen(partkey) > SQLCHECK_MAX_FRAGMENT)
		{
			set_reason(reason, "the partition key is longer than %d bytes", SQLCHECK_MAX_FRAGMENT);
			strbuf_free(&sql);
			return NULL;
		}
		strbuf_printf(&sql, " PARTITION BY %s", partkey);
	}

	node = parse_one(sql.data, "CreateStmt", "a CREATE TABLE", &root, reason);
	if (node == NULL)
		goto fail;
	if (!only_members(node, "CREATE TABLE", partkey ? part_stmt_members : stmt_members, reason) ||
		!check_relation(json_object_get(node, "relation"), schema, table, reason))
		goto fail;
	if (partkey)
	{
		/* The key: a strategy and its columns or expressions, nothing else. */
		json_t *spec = json_object_get(node, "partspec");
		json_t *params,
				   *e;
		size_t i;

		if (!json_is_object(spec) || !only_members(spec, "partition key", spec_members, reason))
		{
			if (!json_is_object(spec))
				set_reason(reason, "no partition key");
			goto fail;
		}
		params = json_object_get(spec, "partParams");
		if (!json_is_array(params) || json_array_size(params) == 0)
		{
			set_reason(reason, "the partition key has no columns");
			goto fail;
		}
		json_array_foreach(params, i, e)
		{
			if (!only_members(unwrap(e, "PartitionElem"), "partition key column", elem_members, reason))
				goto fail;
		}
	}
	if (!str_member_is(node, "oncommit", "ONCOMMIT_NOOP"))
	{
		set_reason(reason, "unexpected ON COMMIT");
		goto fail;
	}
	elts = json_object_get(node, "tableElts");
	if (json_array_size(elts) != (size_t) l->ncols)
	{
		set_reason(reason, "%zu columns where %d are defined", json_array_size(elts), l->ncols);
		goto fail;
	}
	for (int i = 0; i < l->ncols; i++)
	{
		json_t *cd = unwrap(json_array_get(elts, (size_t) i), "ColumnDef");
		json_t *cons;

		*bad = i;
		if (cd == NULL)
		{
			set_reason(reason, "element %d is not a column", i + 1);
			goto fail;
		}
		if (!only_members(cd, "column", col_members, reason) ||
			!check_type_name(json_object_get(cd, "typeName"), reason))
			goto fail;
		if (!str_member_is(cd, "colname", l->columns[i].name))
		{
			set_reason(reason, "column %d is not named as defined", i + 1);
			goto fail;
		}
		cons = json_object_get(cd, "constraints");
		if (cons == NULL ? l->columns[i].not_null :
			!(l->columns[i].not_null && json_array_size(cons) == 1 &&
			  str_member_is(unwrap(json_array_get(cons, 0), "Constraint"), "contype", "CONSTR_NOTNULL") &&
			  json_object_size(unwrap(json_array_get(cons, 0), "Constraint")) == 2))
		{
			set_reason(reason, "the type carries a column constraint");
			goto fail;
		}
	}
	json_decref(root);
	return strbuf_detach(&sql, NULL);
fail:
	json_decref(root);
	strbuf_free(&sql);
	return NULL;
}

/* Check one type alone, in the positions recovery puts it (before NOT NULL, and before ")"). */
static bool
check_one_type(const char *type_name, char *reason)
{
	manifest_column col;
	manifest_layout l;
	char *sql;
	int bad;

	memset(&col, 0, sizeof(col));
	memset(&l, 0, sizeof(l));
	col.name = (char *) "c";
	col.type_name = (char *) type_name;
	l.ncols = 1;
	l.columns = &col;
	for (int nn = 0; nn < 2; nn++)
	{
		col.not_null = nn == 1;
		sql = build_create_table(NULL, "t", &l, NULL, reason, &bad);
		if (sql == NULL)
			return false;
		free(sql);
	}
	return true;
}

char *
sqlcheck_create_table(const char *schema, const char *table, const manifest_layout *l, bs_error *err)
{
	char reason[REASON_LEN];
	char *sql;
	int bad;

	sql = build_create_table(schema, table, l, NULL, reason, &bad);
	if (sql)
		return sql;
	/* A statement broken as a whole: find the column whose type breaks it alone. */
	for (int i = 0; bad < 0 && i < l->ncols; i++)
		if (!check_one_type(l->columns[i].type_name, reason))
			bad = i;
	if (bad >= 0)
		error_set(err, ERRCODE_DATA_CORRUPTED, "the type of column \"%s\" is not exactly one column type: %s",
				  l->columns[bad].name, reason);
	else
		error_set(err, ERRCODE_DATA_CORRUPTED, "the column types do not make exactly one CREATE TABLE: %s", reason);
	return NULL;
}

/*
 * sql set to "ALTER TABLE schema.table what name", the name quoted (and qualified by nschema
 * when given): the caller appends the rest of the command.
 */
static void
alter_sql(strbuf *sql, const char *schema, const char *table, const char *what, const char *nschema,
		  const char *name)
{
	char *target = qualified(schema, table);
	char *qname = qualified(nschema, name);

	strbuf_printf(sql, "ALTER TABLE %s %s %s", target, what, qname);
	free(target);
	free(qname);
}

/*
 * Parse sql as one ALTER TABLE on schema.table with one command of subtype: that command
 * (in *root, which the caller frees), or NULL with reason set.
 */
static json_t *
one_alter_command(const char *sql, const char *schema, const char *table, const char *subtype, json_t **root,
				  char *reason)
{
	static const char *const stmt_members[] = {"relation", "cmds", "objtype", NULL};
	json_t *node,
			   *cmds,
			   *cmd;

	node = parse_one(sql, "AlterTableStmt", "an ALTER TABLE", root, reason);
	if (node == NULL || !only_members(node, "ALTER TABLE", stmt_members, reason) ||
		!check_relation(json_object_get(node, "relation"), schema, table, reason))
		return NULL;
	if (!str_member_is(node, "objtype", "OBJECT_TABLE"))
	{
		set_reason(reason, "not an ALTER TABLE");
		return NULL;
	}
	cmds = json_object_get(node, "cmds");
	if (!json_is_array(cmds) || json_array_size(cmds) != 1)
	{
		set_reason(reason, "%zu ALTER TABLE commands instead of one", json_is_array(cmds) ? json_array_size(cmds) : 0);
		return NULL;
	}
	cmd = unwrap(json_array_get(cmds, 0), "AlterTableCmd");
	if (cmd == NULL || !str_member_is(cmd, "subtype", subtype))
	{
		set_reason(reason, "the ALTER TABLE command is not the expected one");
		return NULL;
	}
	return cmd;
}

/* The end of a refused statement: what was parsed and built freed, err set ("what: reason"). */
static char *
refused(strbuf *sql, json_t *root, const char *what, const char *reason, bs_error *err)
{
	json_decref(root);
	strbuf_free(sql);
	error_set(err, ERRCODE_DATA_CORRUPTED, "%s: %s", what, reason);
	return NULL;
}

char *
sqlcheck_create_partitioned_table(const char *schema, const char *table, const manifest_layout *l,
								  const char *partkey, bs_error *err)
{
	char reason[REASON_LEN];
	char *sql;
	int bad;

	if (!check_fragment_size(partkey, "the partition key", err))
		return NULL;
	sql = build_create_table(schema, table, l, partkey, reason, &bad);
	if (sql == NULL)
		error_set(err, ERRCODE_DATA_CORRUPTED, "the columns and partition key do not make exactly one "
				  "partitioned CREATE TABLE: %s", reason);
	return sql;
}

char *
sqlcheck_attach_partition(const char *schema, const char *table, const char *pschema, const char *partition,
						  const char *bound, bs_error *err)
{
	static const char *const cmd_members[] = {"subtype", "def", "behavior", NULL};
	static const char *const pcmd_members[] = {"name", "bound", "concurrent", NULL};
	static const char *const bound_members[] = {"strategy", "is_default", "modulus", "remainder", "listdatums",
		"lowerdatums", "upperdatums", "location", NULL};
	strbuf sql = STRBUF_INIT;
	char reason[REASON_LEN];
	json_t *root = NULL,
			   *cmd,
			   *pcmd;

	if (!check_fragment_size(bound, "the partition bound", err))
		return NULL;
	alter_sql(&sql, schema, table, "ATTACH PARTITION", pschema, partition);
	strbuf_printf(&sql, " %s", bound);
	if ((cmd = one_alter_command(sql.data, schema, table, "AT_AttachPartition", &root, reason)) == NULL ||
		!only_members(cmd, "ATTACH PARTITION", cmd_members, reason))
		goto fail;
	pcmd = unwrap(json_object_get(cmd, "def"), "PartitionCmd");
	if (pcmd == NULL || !only_members(pcmd, "ATTACH PARTITION", pcmd_members, reason) ||
		!check_relation(json_object_get(pcmd, "name"), pschema, partition, reason))
		goto fail;
	/* A typed member: the parser writes it without the node's name around it. */
	if (!json_is_object(json_object_get(pcmd, "bound")) ||
		!only_members(json_object_get(pcmd, "bound"), "partition bound", bound_members, reason))
		goto fail;
	json_decref(root);
	return strbuf_detach(&sql, NULL);
fail:
	return refused(&sql, root, "the partition bound is not exactly one FOR VALUES clause", reason, err);
}

char *
sqlcheck_set_default(const char *schema, const char *table, const char *column, const char *expr, bs_error *err)
{
	static const char *const cmd_members[] = {"subtype", "name", "def", "behavior", NULL};
	strbuf sql = STRBUF_INIT;
	char reason[REASON_LEN];
	json_t *root = NULL,
			   *cmd;

	if (!check_fragment_size(expr, "the default", err))
		return NULL;
	alter_sql(&sql, schema, table, "ALTER COLUMN", NULL, column);
	strbuf_printf(&sql, " SET DEFAULT %s", expr);
	if ((cmd = one_alter_command(sql.data, schema, table, "AT_ColumnDefault", &root, reason)) == NULL ||
		!only_members(cmd, "ALTER COLUMN", cmd_members, reason))
		goto fail;
	if (!str_member_is(cmd, "name", column) || !json_is_object(json_object_get(cmd, "def")))
	{
		set_reason(reason, "the default is not one expression for the column");
		goto fail;
	}
	json_decref(root);
	return strbuf_detach(&sql, NULL);
fail:
	return refused(&sql, root, "the default is not exactly one expression", reason, err);
}

char *
sqlcheck_add_generated_column(const char *schema, const char *table, const char *column,
							  const char *type_name, const char *expr, bool is_virtual, bs_error *err)
{
	strbuf sql = STRBUF_INIT;
	char reason[REASON_LEN] = "";
	json_t *root = NULL,
			   *cmd,
			   *cd,
			   *cons,
			   *c;

	/* Each fragment alone first: a type that is one type, an expression that is one
	 * expression; then the statement they make, as one ADD COLUMN of that column. */
	if (sqlcheck_type(type_name, err) != BS_OK || sqlcheck_default(expr, err) != BS_OK)
		return NULL;
	alter_sql(&sql, schema, table, "ADD COLUMN", NULL, column);
	strbuf_printf(&sql, " %s GENERATED ALWAYS AS (%s) STORED", type_name, expr);
	if ((cmd = one_alter_command(sql.data, schema, table, "AT_AddColumn", &root, reason)) == NULL)
		goto fail;
	cd = unwrap(json_object_get(cmd, "def"), "ColumnDef");
	cons = cd ? json_object_get(cd, "constraints") : NULL;
	c = json_array_size(cons) == 1 ? unwrap(json_array_get(cons, 0), "Constraint") : NULL;
	if (cd == NULL || !str_member_is(cd, "colname", column) ||
		!check_type_name(json_object_get(cd, "typeName"), reason) ||
		c == NULL || !str_member_is(c, "contype", "CONSTR_GENERATED") ||
		json_object_get(c, "raw_expr") == NULL)
	{
		if (reason[0] == '\0')
			set_reason(reason, "not one generated column");
		goto fail;
	}
	json_decref(root);
	if (is_virtual)
	{
		/* The statement ends with the " STORED" written above: the same statement, VIRTUAL. */
		sql.len -= strlen(" STORED");
		sql.data[sql.len] = '\0';
		strbuf_append_str(&sql, " VIRTUAL");
	}
	return strbuf_detach(&sql, NULL);
fail:
	return refused(&sql, root, "the generated column is not exactly one column with one expression", reason, err);
}

static const char *
contype_node(char contype)
{
	switch (contype)
	{
		case 'p':
			return "CONSTR_PRIMARY";
		case 'u':
			return "CONSTR_UNIQUE";
		case 'c':
			return "CONSTR_CHECK";
		case 'x':
			return "CONSTR_EXCLUSION";
		case 'f':
			return "CONSTR_FOREIGN";
		default:
			return NULL;
	}
}

/* Parse ALTER TABLE ... ADD CONSTRAINT; the Constraint node, or NULL with reason set. */
static json_t *
parse_constraint(const char *sql, const char *schema, const char *table, const char *name, char contype,
				 json_t **root, char *reason)
{
	static const char *const cmd_members[] = {"subtype", "def", "behavior", NULL};
	/* What pg_get_constraintdef can produce; not USING INDEX, nor anything only the
	 * server fills in. */
	static const char *const con_members[] = {
		"contype", "conname", "location", "deferrable", "initdeferred", "is_no_inherit", "raw_expr",
		"keys", "including", "exclusions", "options", "indexspace", "access_method", "where_clause",
		"nulls_not_distinct", "pktable", "fk_attrs", "pk_attrs", "fk_matchtype", "fk_upd_action",
		"fk_del_action", "fk_del_set_cols", "skip_validation", "initially_valid", NULL
	};
	json_t *cmd,
			   *con;

	if ((cmd = one_alter_command(sql, schema, table, "AT_AddConstraint", root, reason)) == NULL ||
		!only_members(cmd, "ADD CONSTRAINT", cmd_members, reason))
		return NULL;
	con = unwrap(json_object_get(cmd, "def"), "Constraint");
	if (con == NULL || !only_members(con, "constraint", con_members, reason))
	{
		if (con == NULL)
			set_reason(reason, "malformed constraint");
		return NULL;
	}
	if (!str_member_is(con, "conname", name))
	{
		set_reason(reason, "the definition names a constraint of its own");
		return NULL;
	}
	if (!str_member_is(con, "contype", contype_node(contype)))
	{
		set_reason(reason, "the definition is not a constraint of type \"%c\"", contype);
		return NULL;
	}
	return con;
}

char *
sqlcheck_add_constraint(const char *schema, const char *table, const char *name, char contype, const char *def,
						bool *validate_after, bs_error *err)
{
	strbuf sql = STRBUF_INIT;
	char reason[REASON_LEN];
	json_t *root = NULL,
			   *con;
	bool was_valid = false;

	if (validate_after)
		*validate_after = false;
	if (contype_node(contype) == NULL)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "constraint type \"%c\" is not one recovery recreates", contype);
		return NULL;
	}
	if (!check_fragment_size(def, "the definition", err))
		return NULL;
	alter_sql(&sql, schema, table, "ADD CONSTRAINT", NULL, name);
	strbuf_printf(&sql, " %s", def);
	if ((con = parse_constraint(sql.data, schema, table, name, contype, &root, reason)) == NULL)
		goto fail;
	if (contype == 'c')
	{
		/* Adding a CHECK scans the rows with its expression, which may call any function:
		 * add it NOT VALID (scanning nothing), the caller decides about validating.  The
		 * whole text is checked again, so that a trailing comment cannot swallow the
		 * NOT VALID. */
		was_valid = !json_is_true(json_object_get(con, "skip_validation"));
		json_decref(root);
		root = NULL;
		strbuf_append_str(&sql, " NOT VALID");
		if ((con = parse_constraint(sql.data, schema, table, name, contype, &root, reason)) == NULL)
			goto fail;
		if (!json_is_true(json_object_get(con, "skip_validation")))
		{
			set_reason(reason, "a comment swallows what follows the definition");
			goto fail;
		}
	}
	if (validate_after)
		*validate_after = was_valid;
	json_decref(root);
	return strbuf_detach(&sql, NULL);
fail:
	return refused(&sql, root, "the definition is not exactly one constraint", reason, err);
}

int
sqlcheck_index(const char *def, const char *schema, const char *table, const char *name, bs_error *err)
{
	/* What pg_get_indexdef produces: no TABLESPACE, CONCURRENTLY, IF NOT EXISTS. */
	static const char *const members[] = {
		"idxname", "relation", "accessMethod", "indexParams", "indexIncludingParams", "options",
		"whereClause", "unique", "nulls_not_distinct", NULL
	};
	char reason[REASON_LEN];
	json_t *root = NULL,
			   *node;

	if (!check_fragment_size(def, "the definition", err))
		return BS_ERR;
	node = parse_one(def, "IndexStmt", "a CREATE INDEX", &root, reason);
	if (node == NULL || !only_members(node, "CREATE INDEX", members, reason) ||
		!check_relation(json_object_get(node, "relation"), schema, table, reason))
		goto fail;
	if (json_string_value(json_object_get(node, "idxname")) == NULL ||
		(name && !str_member_is(node, "idxname", name)))
	{
		set_reason(reason, "the index is not named as expected");
		goto fail;
	}
	if (json_array_size(json_object_get(node, "indexParams")) == 0)
	{
		set_reason(reason, "no indexed column");
		goto fail;
	}
	json_decref(root);
	return BS_OK;
fail:
	json_decref(root);
	return error_set(err, ERRCODE_DATA_CORRUPTED, "the definition is not exactly one CREATE INDEX: %s", reason);
}

/* Placeholder names of the fragment checks. */
#define PH_TABLE "t"
#define PH_COLUMN "c"
#define PH_CONSTRAINT "n"

int
sqlcheck_type(const char *type_name, bs_error *err)
{
	char reason[REASON_LEN];

	if (!check_one_type(type_name, reason))
		return error_set(err, ERRCODE_DATA_CORRUPTED, "the type is not exactly one column type: %s", reason);
	return BS_OK;
}

int
sqlcheck_default(const char *expr, bs_error *err)
{
	char *sql = sqlcheck_set_default(NULL, PH_TABLE, PH_COLUMN, expr, err);

	free(sql);
	return sql ? BS_OK : BS_ERR;
}

int
sqlcheck_constraint(const char *def, char contype, bs_error *err)
{
	char *sql = sqlcheck_add_constraint(NULL, PH_TABLE, PH_CONSTRAINT, contype, def, NULL, err);

	free(sql);
	return sql ? BS_OK : BS_ERR;
}

/*
 * The manifest walk.
 */

static int
problem(sqlcheck_problem_fn fn, void *ctx, const char *field, const char *object, const bs_error *e)
{
	fn(ctx, field, object, e->message);
	return 1;
}

int
sqlcheck_manifest(const manifest *m, sqlcheck_problem_fn fn, void *ctx)
{
	int n = 0;
	char field[200];
	strbuf object = STRBUF_INIT;
	bs_error e;

	for (int i = 0; i < m->nlayouts; i++)
	{
		const manifest_layout *l = &m->layouts[i];

		for (int c = 0; c < l->ncols; c++)
		{
			error_clear(&e);
			if (sqlcheck_type(l->columns[c].type_name, &e) == BS_OK)
				continue;
			snprintf(field, sizeof(field), "layouts[%d].columns[%d].type", i, c);
			strbuf_reset(&object);
			strbuf_printf(&object, "column \"%s\"", l->columns[c].name ? l->columns[c].name : "?");
			n += problem(fn, ctx, field, object.data, &e);
		}
	}
	for (int b = 0; b < m->nbases; b++)
	{
		json_error_t jerr;
		json_t *root,
				   *arr,
				   *it;
		size_t i;

		if (m->bases[b].definition == NULL)
			continue;
		root = json_loads(m->bases[b].definition, 0, &jerr);
		if (!json_is_object(root))
		{
			snprintf(field, sizeof(field), "bases[%d].definition", b);
			error_set(&e, ERRCODE_DATA_CORRUPTED, "is not a JSON object");
			n += problem(fn, ctx, field, "table definition", &e);
			json_decref(root);
			continue;
		}
		arr = json_object_get(root, "columns");
		json_array_foreach(arr, i, it)
		{
			const char *name = json_string_value(json_object_get(it, "name"));
			json_t *def = json_object_get(it, "default");

			if (json_is_null(def))
				continue;
			error_clear(&e);
			if (json_is_string(def) && sqlcheck_default(json_string_value(def), &e) == BS_OK)
				continue;
			if (!json_is_string(def))
				error_set(&e, ERRCODE_DATA_CORRUPTED, "is not a string");
			snprintf(field, sizeof(field), "bases[%d].definition.columns[%zu].default", b, i);
			strbuf_reset(&object);
			strbuf_printf(&object, "column \"%s\"", name ? name : "?");
			n += problem(fn, ctx, field, object.data, &e);
		}
		arr = json_object_get(root, "constraints");
		json_array_foreach(arr, i, it)
		{
			const char *name = json_string_value(json_object_get(it, "name"));
			const char *type = json_string_value(json_object_get(it, "type"));
			const char *def = json_string_value(json_object_get(it, "def"));

			/* Trigger constraints are never recreated: their text goes nowhere near SQL. */
			if (type && strcmp(type, "t") == 0)
				continue;
			error_clear(&e);
			if (type == NULL || strlen(type) != 1)
				error_set(&e, ERRCODE_DATA_CORRUPTED, "the constraint type is not one letter");
			else if (sqlcheck_constraint(def, type[0], &e) == BS_OK)
				continue;
			snprintf(field, sizeof(field), "bases[%d].definition.constraints[%zu].def", b, i);
			strbuf_reset(&object);
			strbuf_printf(&object, "constraint \"%s\"", name ? name : "?");
			n += problem(fn, ctx, field, object.data, &e);
		}
		arr = json_object_get(root, "indexes");
		json_array_foreach(arr, i, it)
		{
			const char *name = json_string_value(json_object_get(it, "name"));
			const char *def = json_string_value(json_object_get(it, "def"));

			error_clear(&e);
			if (sqlcheck_index(def, NULL, NULL, NULL, &e) == BS_OK)
				continue;
			snprintf(field, sizeof(field), "bases[%d].definition.indexes[%zu].def", b, i);
			strbuf_reset(&object);
			strbuf_printf(&object, "index \"%s\"", name ? name : "?");
			n += problem(fn, ctx, field, object.data, &e);
		}
		json_decref(root);
	}
	strbuf_free(&object);
	return n;
}

typedef struct first_problem
{
	const manifest *m;
	bs_error *err;
	bool found;
} first_problem;

static void
keep_first(void *ctx, const char *field, const char *object, const char *message)
{
	first_problem *fp = ctx;

	if (fp->found)
		return;
	fp->found = true;
	error_set(fp->err, ERRCODE_DATA_CORRUPTED,
			  "manifest of table %s.%s (relid %u): %s (%s) refused before any SQL was sent: %s",
			  fp->m->schema, fp->m->name, fp->m->relid, field, object, message);
}

int
sqlcheck_manifest_first(const manifest *m, bs_error *err)
{
	first_problem fp = {m, err, false};

	sqlcheck_manifest(m, keep_first, &fp);
	return fp.found ? BS_ERR : BS_OK;
}
