/* recover_restore.c — what a recovered table cannot hold (foreign keys into it, triggers, policies, publications, its partition attachment), as SQL printed for after the copy-back. */
#include "recover_restore.h"
#include "archive_load.h"
#include "pgsql.h"
#include "quote.h"
#include "sqlcheck.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A new string from a format (strbuf's printf). */
static char *
dup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
dup_printf(const char *fmt, ...)
{
	char *s;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	s = xmalloc((size_t) n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t) n + 1, fmt, ap);
	va_end(ap);
	return s;
}

static void
add(recover_restore *r, char *what, char *sql)
{
	r->what = xrealloc(r->what, sizeof(char *) * (size_t) (r->n + 1));
	r->sql = xrealloc(r->sql, sizeof(char *) * (size_t) (r->n + 1));
	r->what[r->n] = what;
	r->sql[r->n] = sql;
	r->n++;
}

void
recover_restore_free(recover_restore *r)
{
	for (int i = 0; i < r->n; i++)
	{
		free(r->what[i]);
		free(r->sql[i]);
	}
	free(r->what);
	free(r->sql);
	strbuf_free(&r->notes);
	memset(r, 0, sizeof(*r));
}

const char *
recover_restore_definition_at(const manifest *m, uint64_t bound)
{
	const char *def = NULL;

	for (int i = 0; i < m->nbases; i++)
		if (m->bases[i].lsn < bound)
			def = m->bases[i].definition;
	return def;
}

/* pg_policy.polcmd as the FOR clause names it. */
static const char *
policy_command(const char *cmd)
{
	if (cmd == NULL || strlen(cmd) != 1)
		return NULL;
	switch (cmd[0])
	{
		case '*':
			return "ALL";
		case 'r':
			return "SELECT";
		case 'a':
			return "INSERT";
		case 'w':
			return "UPDATE";
		case 'd':
			return "DELETE";
	}
	return NULL;
}

static void
add_policy(json_t *p, const char *table, const char *shown, recover_restore *r)
{
	const char *name = json_string_value(json_object_get(p, "name"));
	const char *cmd = policy_command(json_string_value(json_object_get(p, "cmd")));
	const char *qual = json_string_value(json_object_get(p, "using"));
	const char *check = json_string_value(json_object_get(p, "with_check"));
	json_t *roles = json_object_get(p, "roles");
	strbuf sql = STRBUF_INIT;
	strbuf what = STRBUF_INIT;
	bs_error e;
	char *qname;
	size_t i;
	json_t *role;

	if (name == NULL || cmd == NULL || !json_is_boolean(json_object_get(p, "permissive")) || !json_is_array(roles) ||
		json_array_size(roles) == 0)
	{
		strbuf_printf(&r->notes, "a row security policy of %s in the definition is malformed: not given as SQL\n", shown);
		return;
	}
	if ((qual && sqlcheck_default(qual, &e) != BS_OK) || (check && sqlcheck_default(check, &e) != BS_OK))
	{
		char *n = xstrdup_printable(name);

		strbuf_printf(&r->notes, "row security policy \"%s\" of %s: an expression is not exactly one expression "
					  "(%s): not given as SQL\n", n, shown, e.message);
		free(n);
		return;
	}
	qname = quote_ident_printable(name);
	strbuf_printf(&sql, "CREATE POLICY %s ON %s AS %s FOR %s TO ", qname, table,
				  json_is_true(json_object_get(p, "permissive")) ? "PERMISSIVE" : "RESTRICTIVE", cmd);
	json_array_foreach(roles, i, role)
	{
		const char *rn = json_string_value(role);
		char *q = rn == NULL ? xstrdup("NONE") : strcmp(rn, "PUBLIC") == 0 ? xstrdup("PUBLIC")
			: quote_ident_printable(rn);

		strbuf_printf(&sql, "%s%s", i ? ", " : "", q);
		free(q);
	}
	if (qual)
		strbuf_printf(&sql, " USING (%s)", qual);
	if (check)
		strbuf_printf(&sql, " WITH CHECK (%s)", check);
	strbuf_printf(&what, "row security policy %s of %s", qname, shown);
	free(qname);
	add(r, strbuf_detach(&what, NULL), strbuf_detach(&sql, NULL));
}

void
recover_restore_from_definition(const char *definition, const char *schema, const char *name, bool attach,
								recover_restore *r)
{
	json_t *root = definition ? json_loads(definition, 0, NULL) : NULL;
	char *table = quote_qualified_name_printable(schema, name);
	char *shown = quote_display_name(schema, name);
	json_t *it,
			   *part;
	size_t i;

	if (root == NULL)
	{
		free(table);
		free(shown);
		return;
	}
	/* Triggers call functions that act on other tables: given as they were, to run once the
	 * table is back under its name (the definition names it so). */
	json_array_foreach(json_object_get(root, "triggers"), i, it)
	{
		const char *tn = json_string_value(json_object_get(it, "name"));
		const char *def = json_string_value(json_object_get(it, "def"));
		char *q;

		if (tn == NULL || def == NULL || strncmp(def, "CREATE ", 7) != 0 || strchr(def, ';') != NULL)
		{
			strbuf_printf(&r->notes, "a trigger of %s in the definition is malformed: not given as SQL\n", shown);
			continue;
		}
		q = quote_ident_printable(tn);
		add(r, dup_printf("trigger %s of %s", q, shown), xstrdup_printable(def));
		free(q);
	}
	if (json_is_true(json_object_get(root, "row_security")))
		add(r, dup_printf("row level security of %s", shown),
			dup_printf("ALTER TABLE %s ENABLE ROW LEVEL SECURITY", table));
	if (json_is_array(json_object_get(root, "policy_defs")))
	{
		json_array_foreach(json_object_get(root, "policy_defs"), i, it)
			add_policy(it, table, shown, r);
	}
	else
		json_array_foreach(json_object_get(root, "policies"), i, it)
		{
			char *n = json_is_string(it) ? xstrdup_printable(json_string_value(it)) : xstrdup("?");

			/* Definitions captured before 0.3 hold the policies' names only. */
			strbuf_printf(&r->notes, "row security policy \"%s\" of %s: only its name was captured; copy it from "
						  "the source\n", n, shown);
			free(n);
		}
	json_array_foreach(json_object_get(root, "publications"), i, it)
	{
		char *q;

		if (!json_is_string(it))
			continue;
		q = quote_ident_printable(json_string_value(it));
		add(r, dup_printf("membership of %s in publication %s", shown, q),
			dup_printf("ALTER PUBLICATION %s ADD TABLE %s", q, table));
		free(q);
	}
	part = json_object_get(root, "partition");
	if (attach && json_is_object(part))
	{
		const char *ps = json_string_value(json_object_get(part, "parent_schema"));
		const char *pn = json_string_value(json_object_get(part, "parent_name"));
		const char *bound = json_string_value(json_object_get(part, "bound"));
		bs_error e;
		char *sql = (ps && pn && bound) ? sqlcheck_attach_partition(ps, pn, schema, name, bound, &e) : NULL;

		if (sql)
		{
			char *pshown = quote_display_name(ps, pn);
			char *printable = xstrdup_printable(sql);

			add(r, dup_printf("attachment of %s to its partitioned table %s", shown, pshown), printable);
			free(pshown);
			free(sql);
		}
		else
			strbuf_printf(&r->notes, "%s was a partition, but its parent or bound in the definition is malformed "
						  "(%s): its attachment is not given as SQL\n", shown,
						  (ps && pn && bound) ? e.message : "missing");
	}
	json_decref(root);
	free(table);
	free(shown);
}

void
recover_restore_foreign_keys(storage *st, const archive_head *head, const uint32_t *relids, int nrelids,
							 uint64_t bound, recover_restore *r)
{
	archive_tables *tables = NULL;
	const uint32_t *all;
	int n = 0;
	bs_error err;

	if (archive_tables_open(st, head, &tables, &err) != BS_OK)
	{
		strbuf_printf(&r->notes, "foreign keys from other tables are not listed: %s\n", err.message);
		return;
	}
	all = archive_tables_relids(tables, &n);
	for (int i = 0; i < n; i++)
	{
		manifest *m = NULL;
		bool exists = false;
		const char *def;
		json_t *root,
				   *k;
		size_t j;
		const char *schema,
				   *name;
		char *table,
				   *shown;

		if (archive_tables_load(tables, all[i], &m, &exists, &err) != BS_OK)
		{
			strbuf_printf(&r->notes, "the manifest of table %u could not be read (%s): foreign keys it may hold "
						  "into the recovered table are not listed\n", all[i], err.message);
			continue;
		}
		if (!exists)
			continue;
		/* Not there at the point: dropped before it. */
		if (strcmp(m->status, "dropped") == 0 && m->drop_lsn && m->drop_lsn < bound)
		{
			manifest_free(m);
			continue;
		}
		def = recover_restore_definition_at(m, bound);
		root = def ? json_loads(def, 0, NULL) : NULL;
		if (root == NULL)
		{
			manifest_free(m);
			continue;
		}
		manifest_name_at(m, bound, &schema, &name);
		table = quote_qualified_name_printable(schema, name);
		shown = quote_display_name(schema, name);
		json_array_foreach(json_object_get(root, "constraints"), j, k)
		{
			const char *type = json_string_value(json_object_get(k, "type"));
			const char *cn = json_string_value(json_object_get(k, "name"));
			const char *cdef = json_string_value(json_object_get(k, "def"));
			json_t *ref = json_object_get(k, "ref_relid");
			bool ours = false;

			if (type == NULL || strcmp(type, "f") != 0 || !json_is_integer(ref))
				continue;
			for (int x = 0; x < nrelids; x++)
				ours = ours || json_integer_value(ref) == (json_int_t) relids[x];
			if (!ours)
				continue;
			if (cn == NULL || cdef == NULL || sqlcheck_constraint(cdef, 'f', &err) != BS_OK)
			{
				strbuf_printf(&r->notes, "a foreign key of %s into the recovered table is malformed in its "
							  "definition: not given as SQL\n", shown);
				continue;
			}
			{
				char *q = quote_ident_printable(cn);
				char *d = xstrdup_printable(cdef);

				add(r, dup_printf("foreign key %s of %s into the recovered table", q, shown),
					dup_printf("ALTER TABLE %s ADD CONSTRAINT %s %s", table, q, d));
				free(q);
				free(d);
			}
		}
		json_decref(root);
		free(table);
		free(shown);
		manifest_free(m);
	}
	archive_tables_free(tables);
}
