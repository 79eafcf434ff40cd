/* catalog.c — what the source database holds: archivable tables, replica identity, definitions, publication. */
#include "catalog.h"
#include "lsn.h"
#include "pgsql.h"
#include "quote.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The leaf partitions below c, from pg_inherits, as relid: not pg_partition_tree(), which
 * locks every partition (ACCESS SHARE, to the end of the statement) and so waits behind a
 * session's DROP, ALTER or TRUNCATE of one, or deadlocks with a DROP of the parent locking
 * them in another order.  Catalog reads take no lock on the tables.
 */
#define LEAF_PARTITIONS_OF_C \
	"(WITH RECURSIVE tree(relid) AS (SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = c.oid " \
	"  UNION ALL SELECT i.inhrelid FROM pg_inherits i JOIN tree ON i.inhparent = tree.relid) " \
	"  SELECT tree.relid FROM tree JOIN pg_class lc ON lc.oid = tree.relid AND lc.relispartition " \
	"  WHERE lc.relkind <> 'p') "

/* Replica identity is usable when UPDATE and DELETE can carry a key (or the full row):
 * publishing updates of any other table makes them fail on the primary.  For a partitioned
 * table, its leaf partitions (which are what is archived), first ones by OID.  Last, how many
 * columns it has: a table of none has nothing to archive. */
#define TABLE_QUERY \
	"SELECT c.oid, n.nspname, c.relname, c.relreplident, c.relkind, c.relpersistence, " \
	"  CASE c.relreplident " \
	"    WHEN 'f' THEN true " \
	"    WHEN 'd' THEN EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) " \
	"    WHEN 'i' THEN EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisreplident) " \
	"    ELSE false END, " \
	"  CASE WHEN c.relkind = 'p' THEN (SELECT count(*) FROM " LEAF_PARTITIONS_OF_C " pt) END, " \
	"  CASE WHEN c.relkind = 'p' THEN (SELECT string_agg(format('%I.%I', pn.nspname, pc.relname), ', ' ORDER BY pc.oid) " \
	"    FROM (SELECT pt.relid FROM " LEAF_PARTITIONS_OF_C " pt ORDER BY pt.relid LIMIT " \
	CATALOG_PARTITIONS_NAMED ") l JOIN pg_class pc ON pc.oid = l.relid " \
	"    JOIN pg_namespace pn ON pn.oid = pc.relnamespace) END, " \
	"  (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) " \
	"FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
/* How many partitions a partitioned table's finding names (a string: it goes into SQL). */
#define CATALOG_PARTITIONS_NAMED "20"

static void
table_from_row(PGresult *res, int row, catalog_table *t)
{
	char relkind = PQgetvalue(res, row, 4)[0];
	char persistence = PQgetvalue(res, row, 5)[0];
	bool identity = PQgetvalue(res, row, 6)[0] == 't';

	/* Every field starts cleared: an entry of a grown list (xrealloc) is not zeroed. */
	memset(t, 0, sizeof(*t));
	t->relid = (uint32_t) strtoul(PQgetvalue(res, row, 0), NULL, 10);
	t->schema = xstrdup(PQgetvalue(res, row, 1));
	t->name = xstrdup(PQgetvalue(res, row, 2));
	t->replident = PQgetvalue(res, row, 3)[0];
	t->relkind = relkind;
	t->usable = false;
	t->finding = NULL;
	if (relkind == 'p')
	{
		long nparts = PQgetisnull(res, row, 7) ? 0 : strtol(PQgetvalue(res, row, 7), NULL, 10);
		strbuf sb = STRBUF_INIT;

		/* Its rows live in its partitions, which pgoutput publishes under their own relids. */
		strbuf_printf(&sb, "partitioned table: not archived as a whole; each partition is archived as a "
					  "table of its own (with --all-tables, or when listed in --tables); recover --table names it "
					  "as a whole (its partitions at the point, attached)");
		if (nparts == 0)
			strbuf_printf(&sb, "; it has no partitions");
		else
			strbuf_printf(&sb, "; its %ld partition%s: %s%s", nparts, nparts == 1 ? "" : "s",
						  PQgetvalue(res, row, 8),
						  nparts > atol(CATALOG_PARTITIONS_NAMED) ? ", ..." : "");
		t->finding = strbuf_detach(&sb, NULL);
	}
	else if (relkind != 'r')
		t->finding = xstrdup("not a table (a view, materialized view, sequence or foreign table): nothing to archive");
	else if (persistence == 'u')
		t->finding = xstrdup("unlogged table: its changes are not written to the WAL, so logical replication "
							 "cannot see them; skipped (ALTER TABLE ... SET LOGGED to archive it)");
	else if (persistence != 'p')
		t->finding = xstrdup("temporary table: its changes are not written to the WAL and it lives only in "
							 "its session; never archived");
	else if (strcmp(PQgetvalue(res, row, 9), "0") == 0)
		t->finding = xstrdup("no columns: its rows have no values to archive (only how many there are); skipped "
							 "(add a column to archive it)");
	else if (!identity)
		t->finding = xstrdup(t->replident == 'n'
							 ? "REPLICA IDENTITY NOTHING: UPDATE/DELETE cannot be archived; skipped (set REPLICA IDENTITY FULL or add a primary key)"
							 : "no primary key or replica identity index: publishing its UPDATE/DELETE would make them fail on the primary; skipped (add a primary key or set REPLICA IDENTITY FULL)");
	else
		t->usable = true;
}

int
catalog_list_tables(PGconn *conn, const char *list, bool all, catalog_table_list *out, bs_error *err)
{
	PGresult *res;

	memset(out, 0, sizeof(*out));
	if (all)
	{
		if (pgsql_query(conn, TABLE_QUERY
						/* Unlogged tables and partitioned tables too: they are reported
						 * (skipped, with a finding), not silently left out. */
						"WHERE c.relkind IN ('r', 'p') AND c.relpersistence IN ('p', 'u') "
						"AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
						"AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' "
						/* A table `backstop recover` made (its comment says so) is left out until it
						 * is renamed into place, i.e. bears the name its comment names: a copy made
						 * during an incident is not base-copied as a new table.  Once published
						 * (archived) it stays, whatever it is renamed to later: never dropped from
						 * the publication behind the user's back. */
						"AND NOT COALESCE(starts_with(obj_description(c.oid, 'pg_class'), '" RECOVER_COMMENT_PREFIX "') "
						"  AND NOT starts_with(obj_description(c.oid, 'pg_class'), "
						"    '" RECOVER_COMMENT_PREFIX "' || n.nspname || '.' || c.relname || ' (relid ') "
						"  AND NOT EXISTS (SELECT 1 FROM pg_publication_rel pr WHERE pr.prrelid = c.oid), false) "
						"ORDER BY c.oid", &res, err) != BS_OK)
			return BS_ERR;
		out->count = PQntuples(res);
		out->tables = xcalloc((size_t) out->count, sizeof(catalog_table));
		for (int i = 0; i < out->count; i++)
			table_from_row(res, i, &out->tables[i]);
		PQclear(res);
		return BS_OK;
	}
	if (list == NULL || *list == '\0')
		return error_set(err, ERRCODE_INVALID_PARAMETER, "no tables to archive: give --tables schema.table[,...] or --all-tables");

	/* Each name is resolved by PostgreSQL's own rules (quoting, search_path). */
	char *copy = xstrdup(list);
	char *save = NULL;
	int cap = 8;

	out->tables = xcalloc((size_t) cap, sizeof(catalog_table));
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
	{
		const char *params[1];

		while (*tok == ' ')
			tok++;
		for (char *e = tok + strlen(tok); e > tok && e[-1] == ' '; )
			*--e = '\0';
		if (*tok == '\0')
			continue;
		params[0] = tok;
		if (pgsql_query_params(conn, TABLE_QUERY "WHERE c.oid = to_regclass($1)", 1, params, &res, err) != BS_OK)
		{
			free(copy);
			catalog_table_list_free(out);
			return BS_ERR;
		}
		if (PQntuples(res) != 1)
		{
			PQclear(res);
			out->missing = xrealloc(out->missing, (size_t) (out->nmissing + 1) * sizeof(char *));
			out->missing[out->nmissing++] = xstrdup(tok);
			continue;
		}
		if (out->count == cap)
		{
			cap *= 2;
			out->tables = xrealloc(out->tables, (size_t) cap * sizeof(catalog_table));
		}
		table_from_row(res, 0, &out->tables[out->count]);
		if (catalog_find(out, out->tables[out->count].relid) != NULL)	/* listed twice */
		{
			free(out->tables[out->count].schema);
			free(out->tables[out->count].name);
			free(out->tables[out->count].finding);
		}
		else
			out->count++;
		PQclear(res);
	}
	free(copy);
	if (out->count == 0)
	{
		catalog_table_list_free(out);
		return error_set(err, ERRCODE_UNDEFINED_TABLE,
						 "none of the tables to archive exists: \"%s\"", list);
	}
	return BS_OK;
}

const catalog_table *
catalog_find(const catalog_table_list *list, uint32_t relid)
{
	for (int i = 0; i < list->count; i++)
		if (list->tables[i].relid == relid)
			return &list->tables[i];
	return NULL;
}

void
catalog_table_list_free(catalog_table_list *list)
{
	for (int i = 0; i < list->count; i++)
	{
		free(list->tables[i].schema);
		free(list->tables[i].name);
		free(list->tables[i].finding);
	}
	for (int i = 0; i < list->nmissing; i++)
		free(list->missing[i]);
	free(list->missing);
	free(list->tables);
	memset(list, 0, sizeof(*list));
}

int
catalog_table_definition(PGconn *conn, uint32_t relid, const char *own_publication, char **json_out,
						 bs_error *err)
{
	char oid[16];
	const char *params[2] = {oid, own_publication ? own_publication : ""};
	PGresult *res;

	snprintf(oid, sizeof(oid), "%u", relid);
	/* One query builds the whole definition, so it is read from a single snapshot.
	 * Indexes that back constraints are recreated by their constraint.  PostgreSQL 18 also
	 * lists NOT NULL as constraints (contype 'n'): the columns' not_null carries them, as on
	 * every older server, so they are left out here. */
	if (pgsql_query_params(conn,
		"SELECT json_build_object("
		" 'columns', (SELECT coalesce(json_agg(json_build_object("
		"     'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod),"
		"     'not_null', a.attnotnull, 'default', pg_get_expr(d.adbin, d.adrelid),"
		"     'generated', a.attgenerated, 'identity', a.attidentity,"
		"     'comment', col_description(a.attrelid, a.attnum),"
		/* The sequence the column owns (serial, or identity), with its settings: recovery
		 * gives the recovered table its own, positioned past every recovered value. */
		"     'sequence', (SELECT json_build_object('name', sc.relname, 'type', format_type(sq.seqtypid, NULL),"
		"         'increment', sq.seqincrement, 'start', sq.seqstart, 'min', sq.seqmin, 'max', sq.seqmax,"
		"         'cache', sq.seqcache, 'cycle', sq.seqcycle)"
		"       FROM pg_depend dp JOIN pg_class sc ON sc.oid = dp.objid AND sc.relkind = 'S'"
		"       JOIN pg_sequence sq ON sq.seqrelid = sc.oid"
		"       WHERE dp.classid = 'pg_class'::regclass AND dp.refclassid = 'pg_class'::regclass"
		"         AND dp.refobjid = a.attrelid AND dp.refobjsubid = a.attnum AND dp.deptype IN ('a', 'i')"
		"       LIMIT 1)) ORDER BY a.attnum), '[]')"
		"   FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
		"   WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped),"
		" 'comment', obj_description($1::oid, 'pg_class'),"
		" 'owner', (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = $1::oid),"
		/* Table privileges granted to others than the owner (the recovering role owns the copy). */
		" 'grants', (SELECT coalesce(json_agg(json_build_object("
		"     'grantee', CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END,"
		"     'privilege', x.privilege_type, 'grantable', x.is_grantable) ORDER BY x.grantee, x.privilege_type), '[]')"
		"   FROM pg_class c, aclexplode(c.relacl) x WHERE c.oid = $1::oid AND x.grantee <> c.relowner),"
		" 'triggers', (SELECT coalesce(json_agg(json_build_object('name', tg.tgname, 'def', pg_get_triggerdef(tg.oid))"
		"     ORDER BY tg.tgname), '[]') FROM pg_trigger tg WHERE tg.tgrelid = $1::oid AND NOT tg.tgisinternal),"
		" 'policies', (SELECT coalesce(json_agg(p.policyname ORDER BY p.policyname), '[]') FROM pg_policies p"
		"     JOIN pg_class c ON c.relname = p.tablename JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = p.schemaname"
		"     WHERE c.oid = $1::oid),"
		" 'row_security', (SELECT relrowsecurity FROM pg_class WHERE oid = $1::oid),"
		" 'indexes', (SELECT coalesce(json_agg(json_build_object("
		"     'name', ic.relname, 'def', pg_get_indexdef(i.indexrelid)) ORDER BY ic.relname), '[]')"
		"   FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid"
		"   WHERE i.indrelid = $1::oid"
		"     AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid)),"
		/* A foreign key names the table it references by relid too: recovery of that table
		 * prints it for the copy-back (it lives in this table's definition, not in that one's). */
		" 'constraints', (SELECT coalesce(json_agg(json_build_object("
		"     'name', k.conname, 'type', k.contype, 'def', pg_get_constraintdef(k.oid),"
		"     'ref_relid', CASE WHEN k.contype = 'f' THEN k.confrelid::bigint END) ORDER BY k.contype DESC, k.conname), '[]')"
		"   FROM pg_constraint k WHERE k.conrelid = $1::oid AND k.contype <> 'n'"
		/* A foreign key into a partitioned table has internal clones, one per referenced partition. */
		"     AND NOT (k.contype = 'f' AND EXISTS (SELECT 1 FROM pg_constraint pk WHERE pk.oid = k.conparentid AND pk.conrelid = k.conrelid))),"
		" 'replica_identity', (SELECT relreplident FROM pg_class WHERE oid = $1::oid),"
		/* Policies in full (the copy-back prints CREATE POLICY) and explicit publication
		 * membership (FOR ALL TABLES publications take a table by themselves). */
		" 'policy_defs', (SELECT coalesce(json_agg(json_build_object('name', p.polname,"
		"     'permissive', p.polpermissive, 'cmd', p.polcmd,"
		"     'roles', (SELECT coalesce(json_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r) END ORDER BY r), '[]')"
		"               FROM unnest(p.polroles) r),"
		"     'using', pg_get_expr(p.polqual, p.polrelid), 'with_check', pg_get_expr(p.polwithcheck, p.polrelid))"
		"     ORDER BY p.polname), '[]') FROM pg_policy p WHERE p.polrelid = $1::oid),"
		" 'publications', (SELECT coalesce(json_agg(pb.pubname ORDER BY pb.pubname), '[]')"
		"     FROM pg_publication_rel pr JOIN pg_publication pb ON pb.oid = pr.prpubid WHERE pr.prrelid = $1::oid AND pb.pubname <> $2),"
		/* A partition: its parent with the parent's columns, key and constraints, and its bound
		 * (null when the table is no partition): recovery rebuilds the parent from them. */
		" 'partition', (SELECT json_build_object('parent_relid', pc.oid::bigint, 'parent_schema', pn.nspname,"
		"     'parent_name', pc.relname, 'parent_is_partition', pc.relispartition,"
		"     'key', pg_get_partkeydef(pc.oid), 'bound', pg_get_expr(c.relpartbound, c.oid),"
		"     'parent_columns', (SELECT coalesce(json_agg(json_build_object('name', a.attname,"
		"         'type', format_type(a.atttypid, a.atttypmod), 'not_null', a.attnotnull,"
		"         'default', pg_get_expr(d.adbin, d.adrelid)) ORDER BY a.attnum), '[]')"
		"       FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
		"       WHERE a.attrelid = pc.oid AND a.attnum > 0 AND NOT a.attisdropped),"
		"     'parent_constraints', (SELECT coalesce(json_agg(json_build_object("
		"         'name', k.conname, 'type', k.contype, 'def', pg_get_constraintdef(k.oid)) ORDER BY k.contype DESC, k.conname), '[]')"
		"       FROM pg_constraint k WHERE k.conrelid = pc.oid AND k.contype IN ('p', 'u')),"
		/* A partition of a partition: every partitioned table above it, the parent first, each
		 * with its bound in the next (null at the top), so the whole can be rebuilt at any level. */
		"     'ancestors', (SELECT coalesce(json_agg(json_build_object('relid', ac.oid::bigint, 'schema', an.nspname,"
		"         'name', ac.relname, 'key', pg_get_partkeydef(ac.oid), 'bound', pg_get_expr(ac.relpartbound, ac.oid),"
		"         'columns', (SELECT coalesce(json_agg(json_build_object('name', aa.attname,"
		"             'type', format_type(aa.atttypid, aa.atttypmod), 'not_null', aa.attnotnull,"
		"             'default', pg_get_expr(ad.adbin, ad.adrelid)) ORDER BY aa.attnum), '[]')"
		"           FROM pg_attribute aa LEFT JOIN pg_attrdef ad ON ad.adrelid = aa.attrelid AND ad.adnum = aa.attnum"
		"           WHERE aa.attrelid = ac.oid AND aa.attnum > 0 AND NOT aa.attisdropped),"
		"         'constraints', (SELECT coalesce(json_agg(json_build_object("
		"             'name', ak.conname, 'type', ak.contype, 'def', pg_get_constraintdef(ak.oid)) ORDER BY ak.contype DESC, ak.conname), '[]')"
		"           FROM pg_constraint ak WHERE ak.conrelid = ac.oid AND ak.contype IN ('p', 'u'))) ORDER BY anc.n), '[]')"
		"       FROM pg_partition_ancestors(c.oid) WITH ORDINALITY anc(relid, n) JOIN pg_class ac ON ac.oid = anc.relid"
		"       JOIN pg_namespace an ON an.oid = ac.relnamespace WHERE anc.relid <> c.oid))"
		"   FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid JOIN pg_class pc ON pc.oid = i.inhparent"
		"   JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE c.oid = $1::oid AND c.relispartition))::text",
		2, params, &res, err) != BS_OK)
		return error_prefix(err, "could not read the definition of table %u", relid);
	*json_out = xstrdup(PQgetvalue(res, 0, 0));
	PQclear(res);
	return BS_OK;
}

int
catalog_describe_columns(PGconn *conn, uint32_t relid, int ncols, manifest_column *cols, bs_error *err)
{
	char oid[16];
	char typoid[16];
	char typmod[16];
	PGresult *res;

	snprintf(oid, sizeof(oid), "%u", relid);
	for (int i = 0; i < ncols; i++)
	{
		const char *params[4] = {oid, cols[i].name, typoid, typmod};

		snprintf(typoid, sizeof(typoid), "%u", cols[i].type_oid);
		snprintf(typmod, sizeof(typmod), "%d", cols[i].typmod);
		/* format_type works from the type OID alone; NOT NULL and the missing value come
		 * from the current catalog, which is what the Relation message describes. */
		if (pgsql_query_params(conn,
			"SELECT format_type($3::oid, $4::int), "
			"  (SELECT a.attnotnull FROM pg_attribute a WHERE a.attrelid = $1::oid AND a.attname = $2 AND NOT a.attisdropped), "
			"  (SELECT CASE WHEN a.atthasmissing THEN (a.attmissingval::text::text[])[1] END "
			"     FROM pg_attribute a WHERE a.attrelid = $1::oid AND a.attname = $2 AND NOT a.attisdropped)",
			4, params, &res, err) != BS_OK)
			return error_prefix(err, "could not describe column \"%s\" of table %u", cols[i].name, relid);
		free(cols[i].type_name);
		free(cols[i].missing);
		cols[i].type_name = PQgetisnull(res, 0, 0) ? xstrdup(typoid) : xstrdup(PQgetvalue(res, 0, 0));
		cols[i].not_null = !PQgetisnull(res, 0, 1) && PQgetvalue(res, 0, 1)[0] == 't';
		cols[i].missing = PQgetisnull(res, 0, 2) ? NULL : xstrdup(PQgetvalue(res, 0, 2));
		PQclear(res);
	}
	return BS_OK;
}

int
catalog_column_values_unknown(PGconn *conn, uint32_t relid, const char *name, bool *unknown, bs_error *err)
{
	char oid[16];
	const char *params[2] = {oid, name};
	PGresult *res;

	snprintf(oid, sizeof(oid), "%u", relid);
	/* A constant default has atthasmissing (no rewrite); one PostgreSQL cannot store so (a
	 * volatile one, serial's nextval, an identity) rewrote the table, each row its value. */
	if (pgsql_query_params(conn,
						   "SELECT coalesce((SELECT (a.atthasdef OR a.attidentity <> '') AND NOT a.atthasmissing "
						   "FROM pg_attribute a WHERE a.attrelid = $1::oid AND a.attname = $2 AND NOT a.attisdropped), "
						   "true)", 2, params, &res, err) != BS_OK)
		return error_prefix(err, "could not read the default of column \"%s\" of table %u", name, relid);
	*unknown = PQntuples(res) != 1 || PQgetisnull(res, 0, 0) || PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	return BS_OK;
}

/*
 * Fragments of the publication queries below, on table c (pg_class) and publication $1.  A
 * column list that leaves out a column of the table (the table's own entry or a partitioned
 * ancestor's; to_jsonb: prattrs does not exist before 15), compared by name with the table's
 * columns in the statement's snapshot:
 */
#define PUB_COLUMN_LIST_PARTIAL \
		"EXISTS (" \
		"    SELECT 1 FROM pg_publication_rel r JOIN pg_publication pb ON pb.oid = r.prpubid " \
		"    WHERE pb.pubname = $1 AND (r.prrelid = c.oid OR r.prrelid IN (SELECT relid FROM pg_partition_ancestors(c.oid))) " \
		"      AND jsonb_typeof(to_jsonb(r) -> 'prattrs') = 'array' AND EXISTS (" \
		"        SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped " \
		"          AND a.attgenerated = '' AND a.attname NOT IN (SELECT l.attname FROM pg_attribute l " \
		"            WHERE l.attrelid = r.prrelid " \
		"              AND l.attnum IN (SELECT jsonb_array_elements_text(to_jsonb(r) -> 'prattrs')::int2))))"
/* PostgreSQL 18: stored generated columns streamed too, by publish_generated_columns = stored
 * (pubgencols 's') without a column list, or named in the column list. */
#define PUB_GENERATED_PUBLISHED \
		"  EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped " \
		"    AND a.attgenerated = 's' AND (" \
		"      EXISTS (SELECT 1 FROM pg_publication pb WHERE pb.pubname = $1 AND to_jsonb(pb) ->> 'pubgencols' = 's' " \
		"        AND NOT EXISTS (SELECT 1 FROM pg_publication_rel r WHERE r.prpubid = pb.oid " \
		"          AND (r.prrelid = c.oid OR r.prrelid IN (SELECT relid FROM pg_partition_ancestors(c.oid))) " \
		"          AND jsonb_typeof(to_jsonb(r) -> 'prattrs') = 'array')) " \
		"      OR EXISTS (SELECT 1 FROM pg_publication_rel r JOIN pg_publication pb ON pb.oid = r.prpubid " \
		"        WHERE pb.pubname = $1 AND (r.prrelid = c.oid OR r.prrelid IN (SELECT relid FROM pg_partition_ancestors(c.oid))) " \
		"          AND jsonb_typeof(to_jsonb(r) -> 'prattrs') = 'array' AND a.attname IN (SELECT l.attname " \
		"            FROM pg_attribute l WHERE l.attrelid = r.prrelid " \
		"              AND l.attnum IN (SELECT jsonb_array_elements_text(to_jsonb(r) -> 'prattrs')::int2)))))"

/* The server's WAL insert position, in a statement of its own. */
static int
read_insert_lsn(PGconn *conn, uint64_t *lsn, bs_error *err)
{
	char *text = NULL;

	if (pgsql_query_value(conn, "SELECT pg_current_wal_insert_lsn()::text", &text, err) != BS_OK)
		return BS_ERR;
	if (lsn_parse(text, lsn) != BS_OK)
	{
		error_set(err, ERRCODE_PROTOCOL, "invalid WAL position \"%s\" from the server", text);
		free(text);
		return BS_ERR;
	}
	free(text);
	return BS_OK;
}

/*
 * A query of pg_publication_tables.  From PostgreSQL 16 on, the view opens every table it
 * lists (for its columns), so it waits behind a session's lock on one (LOCK TABLE, a
 * rewriting ALTER TABLE, VACUUM FULL): the archiver's event loop with it.  With
 * lock_timeout_ms > 0 the query runs in a transaction that waits at most that long, then fails
 * (the next table check tries again); the transaction is ended here either way.
 */
static int
query_publication_tables(PGconn *conn, const char *pubname, const char *sql, int nparams, const char *const *params,
						 int64_t lock_timeout_ms, PGresult **res, bs_error *err)
{
	char begin[320];
	int rc;

	*res = NULL;
	if (lock_timeout_ms <= 0)
		return pgsql_query_params(conn, sql, nparams, params, res, err);
	snprintf(begin, sizeof(begin), "BEGIN; " PGSQL_LOCAL_LOCK_TIMEOUT_FMT, (long long) lock_timeout_ms);
	if (pgsql_exec(conn, begin, err) != BS_OK)
	{
		pgsql_exec(conn, "ROLLBACK", &(bs_error) {0});
		return BS_ERR;
	}
	rc = pgsql_query_params(conn, sql, nparams, params, res, err);
	if (rc != BS_OK)
	{
		pgsql_exec(conn, "ROLLBACK", &(bs_error) {0});
		if (strcmp(err->code, ERRCODE_LOCK_NOT_AVAILABLE) == 0)
			error_prefix(err, "could not list the tables of publication \"%s\" within %lld ms (--base-lock-timeout): "
						 "a session holds a lock on one of them, and from PostgreSQL 16 on listing a publication "
						 "opens its tables; the next table check tries again", pubname, (long long) lock_timeout_ms);
		return BS_ERR;
	}
	if (pgsql_exec(conn, "COMMIT", err) != BS_OK)
	{
		PQclear(*res);
		*res = NULL;
		return BS_ERR;
	}
	return BS_OK;
}

int
catalog_sync_publication(PGconn *conn, const char *pubname, const catalog_table_list *tables, char **used_as_is,
						 int64_t lock_timeout_ms, uint32_t **added, int *nadded, bs_error *err)
{
	const char *params[1] = {pubname};
	PGresult *res;
	strbuf list = STRBUF_INIT;
	strbuf sql = STRBUF_INIT;
	char *pub = quote_ident(pubname);
	bool exists;
	int rc;

	*used_as_is = NULL;
	*added = NULL;
	*nadded = 0;
	if (pgsql_query_params(conn, "SELECT puballtables, pg_has_role(pubowner, 'USAGE') FROM pg_publication "
						   "WHERE pubname = $1", 1, params, &res, err) != BS_OK)
	{
		free(pub);
		return BS_ERR;
	}
	exists = PQntuples(res) > 0;
	if (exists && (PQgetvalue(res, 0, 0)[0] == 't' || PQgetvalue(res, 0, 1)[0] != 't'))
	{
		/* FOR ALL TABLES publishes every table there is (it cannot be given a list), and a
		 * publication of another owner cannot be altered by this role: used as they are, the
		 * caller archives only what they publish (catalog_publication_members). */
		*used_as_is = xstrdup(PQgetvalue(res, 0, 0)[0] == 't' ? "it is FOR ALL TABLES" :
							  "the archiver's role does not own it");
		PQclear(res);
		free(pub);
		return BS_OK;
	}
	PQclear(res);
	if (exists)
	{
		/* Already exactly right: nothing to change, so a DBA may pre-create the publication
		 * and the archiver's role need not own the tables. */
		int want = 0;
		bool same = true;

		/* The second column: published in part (a row filter or a column list, 15 and later). */
		if (query_publication_tables(conn, pubname,
			"SELECT c.oid, (to_jsonb(p) ->> 'rowfilter') IS NOT NULL OR " PUB_COLUMN_LIST_PARTIAL " "
			"FROM pg_publication_tables p "
			"JOIN pg_namespace n ON n.nspname = p.schemaname "
			"JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename "
			"WHERE p.pubname = $1", 1, params, lock_timeout_ms, &res, err) != BS_OK)
		{
			free(pub);
			return BS_ERR;
		}
		for (int i = 0; i < tables->count; i++)
			if (tables->tables[i].usable)
				want++;
		if (PQntuples(res) != want)
			same = false;
		for (int r = 0; same && r < PQntuples(res); r++)
		{
			const catalog_table *t = catalog_find(tables, (uint32_t) strtoul(PQgetvalue(res, r, 0), NULL, 10));

			if (t == NULL || !t->usable)
				same = false;
		}
		if (same)
		{
			PQclear(res);
			free(pub);
			return BS_OK;
		}
		/* The tables the update below adds: the caller knows which of them it archived.  One
		 * published in part is published whole by it (SET TABLE without a filter or a list):
		 * the changes it left out were not streamed either, so it is reported too. */
		*added = xcalloc((size_t) tables->count + 1, sizeof(uint32_t));
		for (int i = 0; i < tables->count; i++)
		{
			bool listed = false;

			for (int r = 0; !listed && r < PQntuples(res); r++)
				listed = (uint32_t) strtoul(PQgetvalue(res, r, 0), NULL, 10) == tables->tables[i].relid &&
					PQgetvalue(res, r, 1)[0] != 't';
			if (tables->tables[i].usable && !listed)
				(*added)[(*nadded)++] = tables->tables[i].relid;
		}
		PQclear(res);
	}
	for (int i = 0; i < tables->count; i++)
	{
		char *q;

		if (!tables->tables[i].usable)
			continue;
		q = quote_qualified_name(tables->tables[i].schema, tables->tables[i].name);
		strbuf_printf(&list, "%s%s", list.len ? ", " : "", q);
		free(q);
	}
	if (!exists)
		strbuf_printf(&sql, "CREATE PUBLICATION %s%s%s WITH (publish = 'insert, update, delete, truncate')",
					  pub, list.len ? " FOR TABLE " : "", list.len ? list.data : "");
	else if (list.len)
		strbuf_printf(&sql, "ALTER PUBLICATION %s SET TABLE %s", pub, list.data);
	else
		strbuf_printf(&sql, "SELECT 1");
	/* ALTER PUBLICATION locks every table it names (SHARE UPDATE EXCLUSIVE): not waiting
	 * long behind a session's DDL, nor holding up the sessions queued behind this request. */
	if (lock_timeout_ms > 0)
	{
		strbuf wrapped = STRBUF_INIT;

		strbuf_printf(&wrapped, "BEGIN; " PGSQL_LOCAL_LOCK_TIMEOUT_FMT "; %s; COMMIT", (long long) lock_timeout_ms,
					  sql.data);
		strbuf_free(&sql);
		sql = wrapped;
	}
	rc = pgsql_exec(conn, sql.data, err);
	if (rc != BS_OK)
	{
		if (lock_timeout_ms > 0)
			pgsql_exec(conn, "ROLLBACK", &(bs_error) {0});
		error_prefix(err, "could not set up publication \"%s\"", pubname);
		free(*added);
		*added = NULL;
		*nadded = 0;
	}
	free(pub);
	strbuf_free(&list);
	strbuf_free(&sql);
	return rc;
}

int
catalog_publication_members(PGconn *conn, const char *pubname, int n, const uint32_t *relids, char *state,
							uint64_t *seen_lsn, int64_t lock_timeout_ms, bs_error *err)
{
	strbuf arr = STRBUF_INIT;
	const char *params[2];
	PGresult *res;

	memset(state, 'g', (size_t) n);
	/* Read first, in a statement of its own: a table still published in the next statement's
	 * snapshot left the publication (if it does) after this position. */
	if (read_insert_lsn(conn, seen_lsn, err) != BS_OK)
		return BS_ERR;
	strbuf_append_char(&arr, '{');
	for (int i = 0; i < n; i++)
		strbuf_printf(&arr, "%s%u", i ? "," : "", relids[i]);
	strbuf_append_char(&arr, '}');
	params[0] = pubname;
	params[1] = arr.data;
	/*
	 * Existence and membership in one snapshot: a table dropped meanwhile is not mistaken for
	 * one that left the publication.  pg_publication_tables resolves FOR ALL TABLES and FOR
	 * TABLES IN SCHEMA too.  PostgreSQL 15 and later: a row filter or a column list streams
	 * part of the table (to_jsonb: the columns do not exist before 15).  A column list is read
	 * from pg_publication_rel (the table's entry or a partitioned ancestor's), compared by name
	 * with the table's columns, all in the statement's snapshot: from 16 on, the view's
	 * attnames of a table without a list come from the table's current descriptor, which a
	 * column dropped by a transaction committing during the statement makes shorter than the
	 * snapshot's columns (a whole table taken for a partial one).
	 */
	if (query_publication_tables(conn, pubname,
		"SELECT c.oid, p.tablename IS NOT NULL, "
		"  (to_jsonb(p) ->> 'rowfilter') IS NOT NULL OR " PUB_COLUMN_LIST_PARTIAL ", "
		PUB_GENERATED_PUBLISHED " "
		"FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
		"LEFT JOIN pg_publication_tables p ON p.pubname = $1 AND p.schemaname = n.nspname AND p.tablename = c.relname "
		"WHERE c.oid = ANY ($2::oid[])",
		2, params, lock_timeout_ms, &res, err) != BS_OK)
	{
		strbuf_free(&arr);
		return BS_ERR;
	}
	strbuf_free(&arr);
	for (int r = 0; r < PQntuples(res); r++)
	{
		uint32_t relid = (uint32_t) strtoul(PQgetvalue(res, r, 0), NULL, 10);

		for (int i = 0; i < n; i++)
			if (relids[i] == relid)
				state[i] = PQgetvalue(res, r, 1)[0] != 't' ? 'n' : PQgetvalue(res, r, 2)[0] == 't' ? 'f' :
					PQgetvalue(res, r, 3)[0] == 't' ? 'x' : 'p';
	}
	PQclear(res);
	return BS_OK;
}

/*
 * One table's membership (catalog_publication_members' states), read from the catalogs the
 * view pg_publication_tables is made of, as pg_get_publication_tables lists a table: FOR ALL
 * TABLES (a partition not when published through its root), its own entry or a partitioned
 * ancestor's, its schema or a partitioned ancestor's (FOR TABLES IN SCHEMA, 15 and later);
 * published through its root (publish_via_partition_root), a partition whose ancestor is listed is
 * not.  Unlike the view (16 and later), it opens no table: a session's lock on one (the gate's
 * own, while it asks for a recovery point) does not hold it up.
 */
#define PUB_LISTS(x, schemas) \
		"(EXISTS (SELECT 1 FROM pg_publication_rel r WHERE r.prpubid = pub.oid AND r.prrelid = " x ")" \
		schemas ")"
#define PUB_SCHEMA_OF(x) \
		" OR EXISTS (SELECT 1 FROM pg_publication_namespace pn JOIN pg_class s ON s.relnamespace = pn.pnnspid " \
		"WHERE pn.pnpubid = pub.oid AND s.oid = " x ")"
#define PUB_MEMBER_SQL(schemas) \
		"SELECT c.relkind = 'r' AND c.relpersistence = 'p' AND pub.oid IS NOT NULL AND CASE " \
		"  WHEN pub.puballtables THEN NOT (pub.pubviaroot AND c.relispartition) " \
		"  WHEN pub.pubviaroot THEN " PUB_LISTS("c.oid", schemas("c.oid")) \
		"    AND NOT EXISTS (SELECT 1 FROM pg_partition_ancestors(c.oid) an WHERE an.relid <> c.oid " \
		"      AND " PUB_LISTS("an.relid", schemas("an.relid")) ") " \
		"  ELSE EXISTS (SELECT 1 FROM pg_class x WHERE (x.oid = c.oid OR x.oid IN " \
		"      (SELECT relid FROM pg_partition_ancestors(c.oid))) AND " PUB_LISTS("x.oid", schemas("x.oid")) ") END, " \
		"  (NOT pub.puballtables AND EXISTS (SELECT 1 FROM pg_publication_rel r WHERE r.prpubid = pub.oid " \
		"    AND r.prrelid = c.oid AND (to_jsonb(r) ->> 'prqual') IS NOT NULL)) OR " PUB_COLUMN_LIST_PARTIAL ", " \
		PUB_GENERATED_PUBLISHED " " \
		"FROM pg_class c LEFT JOIN pg_publication pub ON pub.pubname = $1 WHERE c.oid = $2::oid"
#define PUB_NO_SCHEMAS(x) ""

int
catalog_publication_member(PGconn *conn, const char *pubname, uint32_t relid, char *state, uint64_t *seen_lsn,
						   bs_error *err)
{
	char oid[16];
	const char *params[2] = {pubname, oid};
	PGresult *res;

	*state = 'g';
	/* As catalog_publication_members: the position first, the catalog in a later statement. */
	if (read_insert_lsn(conn, seen_lsn, err) != BS_OK)
		return BS_ERR;
	snprintf(oid, sizeof(oid), "%u", relid);
	if (pgsql_query_params(conn, PQserverVersion(conn) >= 150000 ? PUB_MEMBER_SQL(PUB_SCHEMA_OF) :
						   PUB_MEMBER_SQL(PUB_NO_SCHEMAS), 2, params, &res, err) != BS_OK)
		return error_prefix(err, "could not read whether publication \"%s\" publishes table %u", pubname, relid);
	if (PQntuples(res) == 1)
		*state = PQgetvalue(res, 0, 0)[0] != 't' ? 'n' : PQgetvalue(res, 0, 1)[0] == 't' ? 'f' :
			PQgetvalue(res, 0, 2)[0] == 't' ? 'x' : 'p';
	PQclear(res);
	return BS_OK;
}
