/* ddl.c — schema changes captured in the replication stream: event triggers and their messages. */
#include "ddl.h"
#include "pgsql.h"
#include "strbuf.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* NAMEDATALEN - 1: the longest identifier PostgreSQL keeps. */
#define DDL_NAME_MAX 63
/* MaxTupleAttributeNumber. */
#define DDL_COLUMNS_MAX 1664
/* Tables in one message (a DROP SCHEMA ... CASCADE may drop many). */
#define DDL_TABLES_MAX 1000000
/* format_type output (a long type name, quoted, with a modifier). */
#define DDL_TYPE_NAME_MAX 1024

/*
 * One function for the three events, so that a message is written in the transaction of
 * the change itself (transactional logical message: it arrives, in the stream, inside that
 * transaction).  ddl_command_end carries each table's columns as the catalog shows them
 * inside the transaction, in pgoutput's terms (no dropped or generated columns, the
 * replica-identity key as pgoutput flags it), so that the new layout is known at the
 * change's own position.  A failure to capture must not fail the user's DDL: it is a
 * warning (and a layout then arrives with the table's next change, as without capture).
 */
static const char install_sql[] =
	"CREATE SCHEMA IF NOT EXISTS " DDL_SCHEMA ";\n"
	"CREATE OR REPLACE FUNCTION " DDL_SCHEMA ".ddl_capture() RETURNS event_trigger\n"
	"LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $bs$\n"
	"DECLARE\n"
	"  tabs jsonb;\n"
	"BEGIN\n"
	"  IF TG_EVENT = 'ddl_command_end' THEN\n"
	"    SELECT jsonb_agg(jsonb_build_object(\n"
	"        'relid', c.oid::bigint, 'schema', n.nspname::text, 'name', c.relname::text, 'tag', e.tag,\n"
	"        'replident', c.relreplident::text,\n"
	"        'columns', (SELECT coalesce(jsonb_agg(jsonb_build_object(\n"
	"              'name', a.attname::text, 'type_oid', a.atttypid::bigint, 'typmod', a.atttypmod,\n"
	"              'type_name', format_type(a.atttypid, a.atttypmod), 'not_null', a.attnotnull,\n"
	"              'key', (c.relreplident = 'f' OR a.attnum = ANY (coalesce((SELECT i.indkey::int2[] FROM pg_index i\n"
	"                 WHERE i.indrelid = c.oid AND ((c.relreplident = 'd' AND i.indisprimary)\n"
	"                   OR (c.relreplident = 'i' AND i.indisreplident)) LIMIT 1), '{}'::int2[]))),\n"
	"              'missing', CASE WHEN a.atthasmissing THEN (a.attmissingval::text::text[])[1] END)\n"
	"            ORDER BY a.attnum), '[]'::jsonb)\n"
	"          FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped\n"
	"            AND a.attgenerated = '')\n"
	"      ) ORDER BY c.oid)\n"
	"    INTO tabs\n"
	"    FROM (SELECT objid, min(command_tag) AS tag FROM pg_event_trigger_ddl_commands()\n"
	"          WHERE classid = 'pg_class'::regclass GROUP BY objid) e\n"
	"    JOIN pg_class c ON c.oid = e.objid JOIN pg_namespace n ON n.oid = c.relnamespace\n"
	"    WHERE c.relkind IN ('r', 'p') AND c.relpersistence = 'p';\n"
	"  ELSIF TG_EVENT = 'sql_drop' THEN\n"
	"    SELECT jsonb_agg(jsonb_build_object('relid', d.objid::bigint, 'schema', coalesce(d.schema_name, ''),\n"
	"        'name', coalesce(d.object_name, ''), 'tag', TG_TAG) ORDER BY d.objid)\n"
	"    INTO tabs FROM pg_event_trigger_dropped_objects() d\n"
	"    WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0 AND d.object_type = 'table';\n"
	"  ELSIF TG_EVENT = 'table_rewrite' THEN\n"
	"    SELECT jsonb_agg(jsonb_build_object('relid', c.oid::bigint, 'schema', n.nspname::text,\n"
	"        'name', c.relname::text, 'tag', TG_TAG))\n"
	"    INTO tabs FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace\n"
	"    WHERE c.oid = pg_event_trigger_table_rewrite_oid() AND c.relkind IN ('r', 'p');\n"
	"  END IF;\n"
	"  IF tabs IS NOT NULL THEN\n"
	"    PERFORM pg_logical_emit_message(true, '" DDL_MESSAGE_PREFIX "',\n"
	"      jsonb_build_object('v', 1, 'event', TG_EVENT, 'tables', tabs)::text);\n"
	"  END IF;\n"
	"EXCEPTION WHEN OTHERS THEN\n"
	"  RAISE WARNING 'backstop: schema change not captured for the archive: %', SQLERRM;\n"
	"END\n"
	"$bs$;\n"
	"DROP EVENT TRIGGER IF EXISTS backstop_ddl_end;\n"
	"CREATE EVENT TRIGGER backstop_ddl_end ON ddl_command_end EXECUTE FUNCTION " DDL_SCHEMA ".ddl_capture();\n"
	"DROP EVENT TRIGGER IF EXISTS backstop_ddl_drop;\n"
	"CREATE EVENT TRIGGER backstop_ddl_drop ON sql_drop EXECUTE FUNCTION " DDL_SCHEMA ".ddl_capture();\n"
	"DROP EVENT TRIGGER IF EXISTS backstop_ddl_rewrite;\n"
	"CREATE EVENT TRIGGER backstop_ddl_rewrite ON table_rewrite EXECUTE FUNCTION " DDL_SCHEMA ".ddl_capture();\n";

const char *
ddl_install_sql(void)
{
	return install_sql;
}

int
ddl_install(PGconn *conn, bool *capturing, const char **why, bs_error *err)
{
	char *super = NULL;
	char *present = NULL;
	strbuf sql = STRBUF_INIT;
	int rc = BS_ERR;

	*capturing = false;
	*why = NULL;
	if (PQserverVersion(conn) < 140000)
	{
		*why = "PostgreSQL before 14 does not deliver logical messages through pgoutput";
		return BS_OK;
	}
	if (pgsql_query_value(conn, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user", &super, err) != BS_OK)
		return BS_ERR;
	if (strcmp(super, "t") == 0)
	{
		strbuf_printf(&sql, "BEGIN;\n%sCOMMIT;", install_sql);
		if (pgsql_exec(conn, sql.data, err) != BS_OK)
		{
			bs_error e2;

			error_clear(&e2);
			pgsql_exec(conn, "ROLLBACK", &e2);
			error_prefix(err, "could not create the event triggers that capture schema changes");
			goto out;
		}
		*capturing = true;
		rc = BS_OK;
		goto out;
	}
	/* Created once by a superuser: usable by this role as they are. */
	if (pgsql_query_value(conn,
						  "SELECT count(*) = 3 FROM pg_event_trigger WHERE evtname IN "
						  "('backstop_ddl_end', 'backstop_ddl_drop', 'backstop_ddl_rewrite') AND evtenabled <> 'D' "
						  "AND evtfoid = to_regprocedure('" DDL_SCHEMA ".ddl_capture()')", &present, err) != BS_OK)
		goto out;
	*capturing = strcmp(present, "t") == 0;
	if (!*capturing)
		*why = "the role is not a superuser (creating event triggers needs one) and they are not in place";
	rc = BS_OK;
out:
	free(super);
	free(present);
	strbuf_free(&sql);
	return rc;
}

/*
 * Parsing.
 */

static int
get_string(json_t *o, const char *member, const char *where, size_t maxlen, bool allow_empty, char **out,
		   bs_error *err)
{
	json_t *v = json_object_get(o, member);
	size_t len;

	if (!json_is_string(v))
		return error_set(err, ERRCODE_PROTOCOL, "schema change message: %s.%s must be a string", where, member);
	len = json_string_length(v);
	if (len > maxlen || (!allow_empty && len == 0) || memchr(json_string_value(v), '\0', len) != NULL)
		return error_set(err, ERRCODE_PROTOCOL, "schema change message: %s.%s has a bad length (%zu)", where,
						 member, len);
	*out = xstrndup(json_string_value(v), len);
	return BS_OK;
}

static int
get_int(json_t *o, const char *member, const char *where, json_int_t lo, json_int_t hi, json_int_t *out,
		bs_error *err)
{
	json_t *v = json_object_get(o, member);

	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return error_set(err, ERRCODE_PROTOCOL, "schema change message: %s.%s must be an integer in %lld..%lld",
						 where, member, (long long) lo, (long long) hi);
	*out = json_integer_value(v);
	return BS_OK;
}

static int
get_bool(json_t *o, const char *member, const char *where, bool *out, bs_error *err)
{
	json_t *v = json_object_get(o, member);

	if (!json_is_boolean(v))
		return error_set(err, ERRCODE_PROTOCOL, "schema change message: %s.%s must be a boolean", where, member);
	*out = json_is_true(v);
	return BS_OK;
}

static int
parse_columns(json_t *arr, const char *where, ddl_table *t, bs_error *err)
{
	char w[96];

	if (!json_is_array(arr) || json_array_size(arr) > DDL_COLUMNS_MAX)
		return error_set(err, ERRCODE_PROTOCOL, "schema change message: %s.columns must be an array of at most %d",
						 where, DDL_COLUMNS_MAX);
	t->columns = xcalloc(json_array_size(arr) + 1, sizeof(manifest_column));
	for (size_t i = 0; i < json_array_size(arr); i++)
	{
		json_t *c = json_array_get(arr, i);
		manifest_column *col = &t->columns[i];
		json_t *missing;
		json_int_t v;

		t->ncols = (int) i + 1;
		snprintf(w, sizeof(w), "%s.columns[%zu]", where, i);
		if (!json_is_object(c))
			return error_set(err, ERRCODE_PROTOCOL, "schema change message: %s must be an object", w);
		if (get_string(c, "name", w, DDL_NAME_MAX, false, &col->name, err) != BS_OK ||
			get_int(c, "type_oid", w, 1, UINT32_MAX, &v, err) != BS_OK)
			return BS_ERR;
		col->type_oid = (uint32_t) v;
		if (get_int(c, "typmod", w, INT32_MIN, INT32_MAX, &v, err) != BS_OK)
			return BS_ERR;
		col->typmod = (int32_t) v;
		if (get_string(c, "type_name", w, DDL_TYPE_NAME_MAX, false, &col->type_name, err) != BS_OK ||
			get_bool(c, "not_null", w, &col->not_null, err) != BS_OK ||
			get_bool(c, "key", w, &col->key, err) != BS_OK)
			return BS_ERR;
		missing = json_object_get(c, "missing");
		if (json_is_string(missing))
		{
			if (get_string(c, "missing", w, DDL_MESSAGE_MAX, true, &col->missing, err) != BS_OK)
				return BS_ERR;
		}
		else if (missing != NULL && !json_is_null(missing))
			return error_set(err, ERRCODE_PROTOCOL, "schema change message: %s.missing must be a string or null", w);
		for (size_t k = 0; k < i; k++)
			if (strcmp(t->columns[k].name, col->name) == 0)
				return error_set(err, ERRCODE_PROTOCOL, "schema change message: %s names column \"%s\" twice",
								 where, col->name);
	}
	return BS_OK;
}

void
ddl_event_free(ddl_event *ev)
{
	for (int i = 0; i < ev->ntables; i++)
	{
		ddl_table *t = &ev->tables[i];

		free(t->schema);
		free(t->name);
		free(t->tag);
		manifest_columns_free(t->ncols, t->columns);
	}
	free(ev->tables);
	memset(ev, 0, sizeof(*ev));
}

int
ddl_parse_message(const char *content, size_t len, ddl_event *out, bs_error *err)
{
	json_t *root;
	json_t *tabs;
	json_error_t jerr;
	const char *event;
	json_int_t v;
	int rc = BS_ERR;

	memset(out, 0, sizeof(*out));
	if (len > DDL_MESSAGE_MAX)
		return error_set(err, ERRCODE_PROTOCOL, "schema change message of %zu bytes: larger than %zu", len,
						 DDL_MESSAGE_MAX);
	root = json_loadb(content, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return error_set(err, ERRCODE_PROTOCOL, "schema change message is not JSON: %s", jerr.text);
	if (!json_is_object(root))
	{
		error_set(err, ERRCODE_PROTOCOL, "schema change message is not a JSON object");
		goto out;
	}
	if (get_int(root, "v", "message", 1, 1, &v, err) != BS_OK)
		goto out;
	event = json_string_value(json_object_get(root, "event"));
	if (event == NULL)
	{
		error_set(err, ERRCODE_PROTOCOL, "schema change message: message.event must be a string");
		goto out;
	}
	if (strcmp(event, "ddl_command_end") == 0)
		out->kind = DDL_EVENT_END;
	else if (strcmp(event, "sql_drop") == 0)
		out->kind = DDL_EVENT_DROP;
	else if (strcmp(event, "table_rewrite") == 0)
		out->kind = DDL_EVENT_REWRITE;
	else
	{
		error_set(err, ERRCODE_PROTOCOL, "schema change message: unknown event \"%.40s\"", event);
		goto out;
	}
	tabs = json_object_get(root, "tables");
	if (!json_is_array(tabs) || json_array_size(tabs) > DDL_TABLES_MAX)
	{
		error_set(err, ERRCODE_PROTOCOL, "schema change message: message.tables must be an array of at most %d",
				  DDL_TABLES_MAX);
		goto out;
	}
	out->tables = xcalloc(json_array_size(tabs) + 1, sizeof(ddl_table));
	for (size_t i = 0; i < json_array_size(tabs); i++)
	{
		json_t *o = json_array_get(tabs, i);
		ddl_table *t = &out->tables[i];
		char w[32];

		out->ntables = (int) i + 1;
		snprintf(w, sizeof(w), "tables[%zu]", i);
		if (!json_is_object(o))
		{
			error_set(err, ERRCODE_PROTOCOL, "schema change message: %s must be an object", w);
			goto out;
		}
		if (get_int(o, "relid", w, 1, UINT32_MAX, &v, err) != BS_OK)
			goto out;
		t->relid = (uint32_t) v;
		/* A dropped object's names may be unknown (empty). */
		if (get_string(o, "schema", w, DDL_NAME_MAX, out->kind == DDL_EVENT_DROP, &t->schema, err) != BS_OK ||
			get_string(o, "name", w, DDL_NAME_MAX, out->kind == DDL_EVENT_DROP, &t->name, err) != BS_OK ||
			get_string(o, "tag", w, 64, false, &t->tag, err) != BS_OK)
			goto out;
		if (out->kind == DDL_EVENT_END)
		{
			char *ri = NULL;

			if (get_string(o, "replident", w, 1, false, &ri, err) != BS_OK)
				goto out;
			t->replident = ri[0];
			free(ri);
			if (strchr("dfin", t->replident) == NULL)
			{
				error_set(err, ERRCODE_PROTOCOL, "schema change message: %s.replident must be d, f, i or n", w);
				goto out;
			}
			if (parse_columns(json_object_get(o, "columns"), w, t, err) != BS_OK)
				goto out;
		}
	}
	rc = BS_OK;
out:
	json_decref(root);
	if (rc != BS_OK)
		ddl_event_free(out);
	return rc;
}
