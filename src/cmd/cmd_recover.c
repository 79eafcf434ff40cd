/* cmd_recover.c — `backstop recover`: rebuild one table at a point into a new, validated table. */
#include "cmd_recover.h"
#include "clock.h"
#include "copyback.h"
#include "ident.h"
#include "isotime.h"
#include "jsonout.h"
#include "archive_load.h"
#include "manifest_head.h"
#include "manifest_store.h"
#include "redact.h"
#include "audit.h"
#include "cli.h"
#include "lsn.h"
#include "manifest.h"
#include "pgsql.h"
#include "quote.h"
#include "progress.h"
#include "recover_load.h"
#include "recover_plan.h"
#include "recover_render.h"
#include "recover_restore.h"
#include "replay.h"
#include "sqlcheck.h"
#include "storage.h"
#include "strbuf.h"
#include "validate.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * The rebuilt rows get half of --memory-limit (their index included); base chunk pieces in
 * flight take up to a quarter (recover_plan) and COPY batches in flight another (recover_load),
 * each at least two pieces of 1 MiB.
 */
#define RECOVER_STATE_SHARE(limit) ((limit) / 2)

static int
usage(const char *msg)
{
	fprintf(stderr, "backstop recover: ERROR: %s\n"
			"Usage: backstop recover --db CONNINFO [--storage URL] (--table S.T | --relid OID) (--to-lsn LSN | --to-time TS | --to-xid XID | --latest)\n"
			"Try \"backstop help recover\".\n", msg);
	return EXIT_USAGE;
}

/* Exit code for a failure: 3 when the archive is damaged or validation failed (the progress
 * line is erased first). */
static int
fail(progress *prog, const bs_error *err)
{
	if (prog)
		progress_clear(prog);
	cli_report_error("recover", err);
	return cli_exit_code(err, recover_error_is_integrity(err) ? EXIT_INTEGRITY : EXIT_FAILURE_RUNTIME);
}

/* Read the point options; *msg explains a usage error. */
static int
parse_point(const bs_config *cfg, recover_point *pt, const char **msg)
{
	const char *lsn = config_get(cfg, CFG_TO_LSN);
	const char *tm = config_get(cfg, CFG_TO_TIME);
	const char *xid = config_get(cfg, CFG_TO_XID);
	bool latest = config_get_bool(cfg, CFG_LATEST);
	int n = (lsn != NULL) + (tm != NULL) + (xid != NULL) + latest;

	memset(pt, 0, sizeof(*pt));
	pt->exclusive = config_get_bool(cfg, CFG_EXCLUSIVE);
	if (n != 1)
	{
		*msg = "give exactly one of --to-lsn, --to-time, --to-xid and --latest";
		return BS_ERR;
	}
	if (lsn)
	{
		pt->kind = RECOVER_POINT_LSN;
		if (lsn_parse(lsn, &pt->lsn) != BS_OK)
		{
			*msg = "--to-lsn must be an LSN such as 0/1A2B3C4";
			return BS_ERR;
		}
	}
	else if (tm)
	{
		recover_time rt;

		pt->kind = RECOVER_POINT_TIME;
		if (recover_parse_time_at(tm, clock_unix_us(), &rt) != BS_OK)
		{
			*msg = "--to-time must be a time such as \"2026-11-26 16:00:00.123456+00\" (your time zone when no "
				"offset is given), \"20 min ago\" or \"now\"";
			return BS_ERR;
		}
		pt->time = rt.time;
		pt->second_precision = rt.second_precision;
		snprintf(pt->zone, sizeof(pt->zone), "%s", rt.zone);
	}
	else if (xid)
	{
		char *end;
		unsigned long long v;

		pt->kind = RECOVER_POINT_XID;
		v = strtoull(xid, &end, 10);
		if (*xid < '0' || *xid > '9' || *end != '\0' || v > UINT32_MAX)
		{
			*msg = "--to-xid must be a transaction id (a decimal number)";
			return BS_ERR;
		}
		pt->xid = (uint32_t) v;
	}
	else
	{
		pt->kind = RECOVER_POINT_LATEST;
		if (pt->exclusive)
		{
			*msg = "--exclusive does not apply to --latest";
			return BS_ERR;
		}
	}
	return BS_OK;
}

/* Progress of a recovery: the plan's counters, and its stages as phases. */
typedef struct recover_progress
{
	progress *p;
	bool streaming;
	int stage;					/* the plan's stage last seen, -1 none */
} recover_progress;

static void
on_progress(void *ctx, const recover_plan *plan, uint64_t applied)
{
	recover_progress *rp = ctx;

	if (plan->stage != rp->stage)
	{
		/* Streamed, the base goes to COPY as it is fetched: that is the copy phase. */
		rp->stage = plan->stage;
		progress_phase(rp->p, plan->stage == RECOVER_STAGE_CHANGES ? "replay" :
					   rp->streaming ? "copy" : "fetch");
	}
	rp->p->items_unit = NULL;	/* the segments were counted while they were fetched */
	rp->p->bytes_done = plan->downloaded;
	rp->p->bytes_total = plan->download_bytes;
	rp->p->applied = applied;
	progress_update(rp->p);
}

/* Segments being fetched: bytes as they arrive, segments done. */
static void
on_fetch(void *ctx, const recover_plan *plan)
{
	recover_progress *rp = ctx;

	rp->p->bytes_done = plan->downloaded + plan->fetching;
	rp->p->bytes_total = plan->download_bytes;
	rp->p->items_unit = "segments fetched";
	rp->p->items_done = (uint64_t) plan->segs_fetched;
	rp->p->items_total = (uint64_t) plan->nsegs;
	progress_update(rp->p);
}

/* The "fetch" phase: every segment of the plan downloaded and verified to a temporary file. */
static int
fetch_segments(recover_plan *plan, storage *st, recover_progress *rp, bs_error *err)
{
	int rc;

	progress_phase(rp->p, "fetch");
	rp->stage = RECOVER_STAGE_FETCH;
	rc = recover_plan_fetch(plan, st, on_fetch, rp, err);
	rp->p->items_unit = NULL;
	return rc;
}

/* --apply without --yes: whether the user confirms the copy-back shown to orig. */
static bool
confirm_apply(const bs_config *cfg, const char *orig, const char *target_shown)
{
	char answer[16];

	fflush(stdout);
	if (config_get_bool(cfg, CFG_YES))
		return true;
	fprintf(stderr, "Apply the copy-back above to %s? [y/N] ", orig);
	if (fgets(answer, sizeof(answer), stdin) == NULL || (answer[0] != 'y' && answer[0] != 'Y'))
	{
		fprintf(stderr, "backstop recover: copy-back not applied; the recovered table %s stays\n", target_shown);
		return false;
	}
	return true;
}

/* --apply: ask (unless --yes), run the copy-back in one transaction and validate it. */
static int
apply_copyback(const bs_config *cfg, PGconn *conn, const copyback_input *ci, const copyback *cb, const manifest *m,
			   const char *target_shown, bool json, bs_error *err)
{
	char *orig = quote_display_name(m->schema, m->name);

	if (!confirm_apply(cfg, orig, target_shown))
	{
		free(orig);
		return EXIT_FAILURE_RUNTIME;
	}
	if (copyback_apply(conn, ci, cb, err) != BS_OK)
	{
		free(orig);
		return fail(NULL, err);
	}
	if (!json)
		printf("%sCopy-back applied to %s and validated (%s).\n", config_get_bool(cfg, CFG_YES) ? "" : "\n", orig,
			   cb->kind == COPYBACK_RENAME ? "the table's rows and checksum are the recovery's" :
			   cb->kind == COPYBACK_ROWS ? "every recovered row is in the table" :
			   "the named columns hold the recovered values for every matched key");
	free(orig);
	return EXIT_OK;
}

/* Target name: --into S.NAME, or <table>_recovered in the source schema. */
static int
target_name(const bs_config *cfg, const manifest *m, char **schema, char **name, bs_error *err)
{
	const char *into = config_get(cfg, CFG_INTO);

	if (into)
		return ident_split_name(into, schema, name, err);
	{
		strbuf sb = STRBUF_INIT;
		size_t n = strlen(m->name);

		/* Keep within NAMEDATALEN - 1 bytes, not splitting a UTF-8 character. */
		while (n + strlen("_recovered") > VALIDATE_NAME_MAX && n > 0)
		{
			n--;
			while (n > 0 && ((unsigned char) m->name[n] & 0xC0) == 0x80)
				n--;
		}
		strbuf_append(&sb, m->name, n);
		strbuf_append_str(&sb, "_recovered");
		*schema = xstrdup(m->schema);
		*name = strbuf_detach(&sb, NULL);
	}
	return BS_OK;
}

/* Where a point lies in a table's own history (a --to-time or --to-xid placed by its records):
 * just before the point's bound, UINT64_MAX past its last record, 0 when this table refuses it. */
static uint64_t
point_position(storage *st, manifest *m, const archive_head *head, const recover_point *pt)
{
	recover_plan *plan = NULL;
	bs_error perr;
	uint64_t at;

	error_clear(&perr);
	if (recover_plan_build(st, m, head, pt, NULL, &plan, &perr) != BS_OK)
		return 0;
	at = plan->bound == UINT64_MAX ? UINT64_MAX : plan->bound - 1;
	recover_plan_free(plan);
	return at;
}

/* Did m carry schema.name at the position? */
static bool
named_at(const manifest *m, uint64_t at, const char *schema, const char *name)
{
	const char *s,
			   *n;

	manifest_name_at(m, at, &s, &n);
	return strcmp(s, schema) == 0 && strcmp(n, name) == 0;
}

/*
 * --table with --to-time or --to-xid: the lookup by name prefers the table that has the name now,
 * but only a table's own records place such a point, so the position of the point is known only
 * once a table is chosen.  When the table found did not carry the name there (or cannot have the
 * point at all), another table that once carried the name and carried it at the point, as its own
 * records place it, is the one meant: a name given to a new table later must not hide the table
 * renamed away from it.  Otherwise the table found stays, and its plan says what it can recover.
 */
static int
resolve_name_at_point(storage *st, const archive_head *head, const char *table, const recover_point *pt,
					  manifest **m, bs_error *err)
{
	char *schema = NULL,
		*name = NULL;
	archive_tables *all = NULL;
	const uint32_t *relids = NULL;
	int n = 0;
	uint64_t at;
	manifest *best = NULL;
	int rc = BS_OK;

	if (pt->kind != RECOVER_POINT_TIME && pt->kind != RECOVER_POINT_XID)
		return BS_OK;
	if (ident_split_name(table, &schema, &name, err) != BS_OK)
		return BS_ERR;
	at = point_position(st, *m, head, pt);
	if (at != 0 && named_at(*m, at, schema, name))
		goto out;				/* the table found carried the name at the point */
	/* Every table of the archive: the manifests (formats 1 and 2), or one view of the catalog and the log. */
	if (archive_tables_open(st, head, &all, err) != BS_OK)
	{
		rc = BS_ERR;
		goto out;
	}
	relids = archive_tables_relids(all, &n);
	for (int i = 0; i < n; i++)
	{
		manifest *o = NULL;
		bool exists = false;
		bs_error lerr;
		uint64_t own;

		error_clear(&lerr);
		if (relids[i] == (*m)->relid || archive_tables_load(all, relids[i], &o, &exists, &lerr) != BS_OK || !exists)
			continue;			/* an unreadable one was reported by the lookup */
		if (manifest_had_name(o, schema, name) && (own = point_position(st, o, head, pt)) != 0 &&
			named_at(o, own, schema, name) && (best == NULL || o->archived_to > best->archived_to))
		{
			manifest_free(best);
			best = o;
			continue;
		}
		manifest_free(o);
	}
	if (best)
	{
		manifest_free(*m);
		*m = best;
	}
out:
	archive_tables_free(all);
	free(schema);
	free(name);
	return rc;
}

/* The rows of a streaming recovery, produced while recover_load's COPY runs. */
typedef struct stream_source
{
	recover_plan *plan;
	storage *st;
	replay_state *rs;
	uint32_t layout;
	recover_progress *prog;
} stream_source;

static int
stream_rows(void *ctx, replay_copy_cb sink, void *sinkctx, replay_checksum *sum, bs_error *err)
{
	stream_source *s = ctx;

	return recover_plan_stream(s->plan, s->st, s->rs, s->layout, sink, sinkctx, sum, on_progress, s->prog, err);
}

/* ---- A partitioned table as a whole: its partitions at the point, attached to a new parent. ---- */

/* One partition of the parent at the point. */
typedef struct part_item
{
	manifest *m;
	recover_plan *plan;
	json_t *def;				/* the plan's base definition */
	json_t *part;				/* its "partition" member (borrowed from def) */
	char *tname;				/* target name (in the parent's target schema) */
	uint32_t parent;			/* the partitioned table it is attached to */
	const manifest_layout *layout;	/* its recovered columns (in m) */
	recover_load_result lres;
	bool loaded;
} part_item;

/* Whether any base of m's definitions names parent as its partitioned parent, or as one above
 * it (multi-level); *unknown: a base of a partition of a partition predates "ancestors". */
static bool
ever_partition_of(const manifest *m, uint32_t parent, bool *unknown)
{
	*unknown = false;
	for (int i = 0; i < m->nbases; i++)
	{
		json_t *root = m->bases[i].definition ? json_loads(m->bases[i].definition, 0, NULL) : NULL;
		json_t *p = root ? json_object_get(root, "partition") : NULL;
		bool yes = json_is_object(p) && json_integer_value(json_object_get(p, "parent_relid")) == (json_int_t) parent;
		json_t *anc;
		size_t k;

		json_array_foreach(json_is_object(p) ? json_object_get(p, "ancestors") : NULL, k, anc)
			yes = yes || json_integer_value(json_object_get(anc, "relid")) == (json_int_t) parent;
		if (json_is_object(p) && json_is_true(json_object_get(p, "parent_is_partition")) &&
			json_object_get(p, "ancestors") == NULL)
			*unknown = true;
		json_decref(root);
		if (yes)
			return true;
	}
	return false;
}

/* A partitioned table of the hierarchy: the root, or a partition that is itself partitioned. */
typedef struct part_node
{
	uint32_t relid;
	uint32_t parent;			/* its partitioned table (0: the root) */
	char *schema;				/* source names */
	char *name;
	char *bound;				/* its bound in its parent (NULL: the root) */
	json_t *shape;				/* {key, parent_columns, parent_constraints}, as a partition's member has them */
	uint64_t base_lsn;			/* the newest base it was read from */
	int depth;					/* 0 for the root */
	char *tname;				/* target name (in the root's target schema; the root's is the target) */
} part_node;

static void
nodes_free(part_node *nodes, int n)
{
	for (int i = 0; i < n; i++)
	{
		free(nodes[i].schema);
		free(nodes[i].name);
		free(nodes[i].bound);
		json_decref(nodes[i].shape);
		free(nodes[i].tname);
	}
	free(nodes);
}

static int
node_index(const part_node *nodes, int n, uint32_t relid)
{
	for (int i = 0; i < n; i++)
		if (nodes[i].relid == relid)
			return i;
	return -1;
}

/*
 * One partition's base tells of a partitioned table of the hierarchy: its parent, bound, key,
 * columns and constraints.  The newest base tells its definition at the point; every base
 * must agree on where it sits (a change there re-bases the partitions below, see
 * partition_changes), else the whole is refused.
 */
static int
note_node(part_node **nodes, int *n, uint32_t relid, uint32_t parent, const char *schema, const char *name,
		  const char *bound, json_t *key, json_t *columns, json_t *constraints, uint64_t base_lsn, bs_error *err)
{
	int i = node_index(*nodes, *n, relid);
	part_node *nd;

	if (!json_is_string(key) || !json_is_array(columns) || !json_is_array(constraints) || schema == NULL ||
		name == NULL || (parent && bound == NULL))
		return error_set(err, ERRCODE_DATA_CORRUPTED, "the definition of partitioned table %u in a partition's "
						 "definition is malformed (no key, columns, constraints, name or bound)", relid);
	if (i >= 0)
	{
		nd = &(*nodes)[i];
		if (nd->parent != parent || (bound && strcmp(nd->bound, bound) != 0) ||
			!json_equal(json_object_get(nd->shape, "key"), key))
			return error_set(err, ERRCODE_OUT_OF_RANGE, "the base copies of the partitions under %s.%s disagree on "
							 "its place in the hierarchy (its parent, bound or partition key): they tell different "
							 "times; choose a point after the partitions' next base copies", nd->schema, nd->name);
		if (base_lsn <= nd->base_lsn)
			return BS_OK;
		json_decref(nd->shape);
		free(nd->schema);
		free(nd->name);
	}
	else
	{
		*nodes = xrealloc(*nodes, sizeof(part_node) * (size_t) (*n + 1));
		nd = &(*nodes)[(*n)++];
		memset(nd, 0, sizeof(*nd));
		nd->relid = relid;
		nd->parent = parent;
		nd->bound = bound ? xstrdup(bound) : NULL;
	}
	nd->schema = xstrdup(schema);
	nd->name = xstrdup(name);
	nd->shape = json_pack("{s:O,s:O,s:O}", "key", key, "parent_columns", columns, "parent_constraints", constraints);
	nd->base_lsn = base_lsn;
	return BS_OK;
}

/* The partitioned partitions, for --json. */
static json_t *
nodes_json(const part_node *nodes, int n, const char *tschema)
{
	json_t *a = json_array();

	for (int i = 1; i < n; i++)
	{
		int up = node_index(nodes, n, nodes[i].parent);

		json_array_append_new(a, json_pack("{s:o,s:o,s:o,s:s,s:O}", "partition",
										   json_sprintf("%s.%s", nodes[i].schema, nodes[i].name), "target",
										   json_sprintf("%s.%s", tschema, nodes[i].tname), "parent",
										   json_sprintf("%s.%s", nodes[up].schema, nodes[up].name), "bound",
										   nodes[i].bound, "key", json_object_get(nodes[i].shape, "key")));
	}
	return a;
}

/* " (of S.NAME)" and the line's end, for a partition below a partitioned partition. */
static void
print_parent(const part_node *nodes, int n, uint32_t parent)
{
	int up = node_index(nodes, n, parent);

	if (up > 0)
	{
		char *s = quote_display_name(nodes[up].schema, nodes[up].name);

		printf(" (of %s)", s);
		free(s);
	}
	printf("\n");
}

/* Whether m's newest base holds a definition captured before the "partition" member existed. */
static bool
definition_predates_partitions(const manifest *m)
{
	json_t *root;
	bool old;

	if (m->nbases == 0)
		return false;
	root = m->bases[m->nbases - 1].definition ? json_loads(m->bases[m->nbases - 1].definition, 0, NULL) : NULL;
	old = root == NULL || json_object_get(root, "partition") == NULL;
	json_decref(root);
	return old;
}

/* name cut to fit NAMEDATALEN - 1 bytes with suffix appended, not splitting a UTF-8 character. */
static char *
name_with_suffix(const char *name, const char *sep, const char *suffix)
{
	strbuf sb = STRBUF_INIT;
	size_t n = strlen(name);
	size_t extra = strlen(sep) + strlen(suffix);

	while (n + extra > VALIDATE_NAME_MAX && n > 0)
	{
		n--;
		while (n > 0 && ((unsigned char) name[n] & 0xC0) == 0x80)
			n--;
	}
	strbuf_append(&sb, name, n);
	strbuf_append_str(&sb, sep);
	strbuf_append_str(&sb, suffix);
	if (sb.len > VALIDATE_NAME_MAX)
	{
		/* The suffix alone is too long: cut it instead. */
		size_t k = VALIDATE_NAME_MAX;

		while (k > 0 && ((unsigned char) sb.data[k] & 0xC0) == 0x80)
			k--;
		sb.data[k] = '\0';
		sb.len = k;
	}
	return strbuf_detach(&sb, NULL);
}

static void
parts_free(part_item *parts, int n)
{
	for (int i = 0; i < n; i++)
	{
		recover_plan_free(parts[i].plan);
		json_decref(parts[i].def);
		manifest_free(parts[i].m);
		free(parts[i].tname);
		recover_load_result_free(&parts[i].lres);
	}
	free(parts);
}

/* The parent's columns (name, type, not null) from a partition's "partition" member. */
static int
parent_layout(json_t *part, manifest_layout *l, bs_error *err)
{
	json_t *cols = json_object_get(part, "parent_columns");
	json_t *c;
	size_t i;

	memset(l, 0, sizeof(*l));
	if (!json_is_array(cols) || json_array_size(cols) == 0 || json_array_size(cols) > 1600)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "the parent's columns in the partition's definition are malformed");
	l->ncols = (int) json_array_size(cols);
	l->columns = xcalloc((size_t) l->ncols, sizeof(manifest_column));
	json_array_foreach(cols, i, c)
	{
		const char *name = json_string_value(json_object_get(c, "name"));
		const char *type = json_string_value(json_object_get(c, "type"));

		if (name == NULL || type == NULL || !json_is_boolean(json_object_get(c, "not_null")))
			return error_set(err, ERRCODE_DATA_CORRUPTED, "column %zu of the parent in the partition's definition "
							 "is not a name, a type and not_null", i);
		l->columns[i].name = (char *) name;
		l->columns[i].type_name = (char *) type;
		l->columns[i].not_null = json_is_true(json_object_get(c, "not_null"));
	}
	return BS_OK;
}

/*
 * In one transaction: the partitioned tables (the root and those below it: columns, key,
 * defaults), every recovered partition attached with its bound, the primary key and unique
 * constraints (lowest level first, so each attaches the indexes below), the recovery comments;
 * the root's rows counted against the partitions'.
 */
static int
build_parent(PGconn *conn, const char *schema, part_node *nodes, int nnodes, part_item *parts, int nparts,
			 const char *comment, bool replace, bs_error *err)
{
	const char *name = nodes[0].tname;
	char *target = quote_qualified_name(schema, name);
	uint64_t want = 0;
	int maxdepth = 0;
	size_t i;
	json_t *c;
	int rc = BS_ERR;

	if (pgsql_exec(conn, "BEGIN", err) != BS_OK)
		goto out;
	if (replace)
	{
		/* Only an earlier Backstop recovery is replaced (its comment says so). */
		const char *params[2] = {target, RECOVER_COMMENT_PREFIX "%"};
		PGresult *res;

		if (pgsql_query_params(conn, "SELECT to_regclass($1) IS NOT NULL, "
							   "coalesce(obj_description(to_regclass($1), 'pg_class') LIKE $2, false)",
							   2, params, &res, err) != BS_OK)
			goto rollback;
		if (strcmp(PQgetvalue(res, 0, 0), "t") == 0)
		{
			bool ours = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
			strbuf drop = STRBUF_INIT;

			PQclear(res);
			if (!ours)
			{
				error_set(err, ERRCODE_DUPLICATE_TABLE, "%s.%s exists and is not a Backstop recovery: not replaced",
						  schema, name);
				goto rollback;
			}
			strbuf_printf(&drop, "DROP TABLE %s", target);
			if (pgsql_exec(conn, drop.data, err) != BS_OK)
			{
				strbuf_free(&drop);
				goto rollback;
			}
			strbuf_free(&drop);
		}
		else
			PQclear(res);
	}
	for (int n = 0; n < nnodes; n++)
	{
		manifest_layout l;
		char *sql;

		if (nodes[n].depth > maxdepth)
			maxdepth = nodes[n].depth;
		if (parent_layout(nodes[n].shape, &l, err) != BS_OK)
		{
			free(l.columns);
			goto rollback;
		}
		sql = sqlcheck_create_partitioned_table(schema, nodes[n].tname, &l,
												json_string_value(json_object_get(nodes[n].shape, "key")), err);
		free(l.columns);
		if (sql == NULL || pgsql_exec(conn, sql, err) != BS_OK)
		{
			free(sql);
			error_prefix(err, "could not create the partitioned table %s.%s", schema, nodes[n].tname);
			goto rollback;
		}
		free(sql);
		json_array_foreach(json_object_get(nodes[n].shape, "parent_columns"), i, c)
		{
			const char *expr = json_string_value(json_object_get(c, "default"));
			char *d;

			if (expr == NULL)
				continue;
			d = sqlcheck_set_default(schema, nodes[n].tname, json_string_value(json_object_get(c, "name")), expr, err);
			if (d == NULL || pgsql_exec(conn, d, err) != BS_OK)
			{
				free(d);
				error_prefix(err, "the default of column \"%s\" of %s.%s", json_string_value(json_object_get(c, "name")),
							 nodes[n].schema, nodes[n].name);
				goto rollback;
			}
			free(d);
		}
	}
	for (int p = 0; p < nparts; p++)
	{
		const char *bound = json_string_value(json_object_get(parts[p].part, "bound"));
		int up = node_index(nodes, nnodes, parts[p].parent);
		char *a = sqlcheck_attach_partition(schema, nodes[up].tname, schema, parts[p].tname, bound, err);

		if (a == NULL || pgsql_exec(conn, a, err) != BS_OK)
		{
			free(a);
			error_prefix(err, "could not attach the recovered partition %s.%s (of %s.%s)", schema, parts[p].tname,
						 parts[p].m->schema, parts[p].m->name);
			goto rollback;
		}
		free(a);
		want += parts[p].lres.pg_rows;
	}
	for (int n = 1; n < nnodes; n++)
	{
		int up = node_index(nodes, nnodes, nodes[n].parent);
		char *a = sqlcheck_attach_partition(schema, nodes[up].tname, schema, nodes[n].tname, nodes[n].bound, err);

		if (a == NULL || pgsql_exec(conn, a, err) != BS_OK)
		{
			free(a);
			error_prefix(err, "could not attach the recovered partitioned table %s.%s (of %s.%s)", schema,
						 nodes[n].tname, nodes[n].schema, nodes[n].name);
			goto rollback;
		}
		free(a);
	}
	for (int depth = maxdepth; depth >= 0; depth--)
		for (int n = 0; n < nnodes; n++)
		{
			if (nodes[n].depth != depth)
				continue;
			json_array_foreach(json_object_get(nodes[n].shape, "parent_constraints"), i, c)
			{
				const char *cn = json_string_value(json_object_get(c, "name"));
				const char *type = json_string_value(json_object_get(c, "type"));
				const char *def = json_string_value(json_object_get(c, "def"));
				bool validate = false;
				char *newname,
						   *a;

				if (cn == NULL || type == NULL || strlen(type) != 1 || def == NULL)
				{
					error_set(err, ERRCODE_DATA_CORRUPTED, "constraint %zu of %s.%s in a partition's definition is "
							  "malformed", i, nodes[n].schema, nodes[n].name);
					goto rollback;
				}
				newname = recover_rename_object(cn, nodes[n].name, nodes[n].tname);
				a = sqlcheck_add_constraint(schema, nodes[n].tname, newname, type[0], def, &validate, err);
				free(newname);
				if (a == NULL || pgsql_exec(conn, a, err) != BS_OK)
				{
					free(a);
					error_prefix(err, "constraint \"%s\" of %s.%s", cn, nodes[n].schema, nodes[n].name);
					goto rollback;
				}
				free(a);
			}
		}
	{
		strbuf q = STRBUF_INIT;
		char *count = NULL;

		for (int n = 0; n < nnodes; n++)
		{
			strbuf text = STRBUF_INIT;
			char *lit,
					   *qn = quote_qualified_name(schema, nodes[n].tname);

			if (n == 0)
				strbuf_append_str(&text, comment);
			else
				strbuf_printf(&text, RECOVER_COMMENT_PREFIX "%s.%s (relid %u, partitioned), a partition of %s.%s",
							  nodes[n].schema, nodes[n].name, nodes[n].relid, schema, name);
			lit = quote_literal(text.data);
			strbuf_reset(&q);
			strbuf_printf(&q, "COMMENT ON TABLE %s IS %s", qn, lit);
			free(lit);
			free(qn);
			strbuf_free(&text);
			if (pgsql_exec(conn, q.data, err) != BS_OK)
			{
				strbuf_free(&q);
				goto rollback;
			}
		}
		strbuf_reset(&q);
		strbuf_printf(&q, "SELECT count(*) FROM %s", target);
		if (pgsql_query_value(conn, q.data, &count, err) != BS_OK)
		{
			strbuf_free(&q);
			goto rollback;
		}
		strbuf_free(&q);
		if (count == NULL || strtoull(count, NULL, 10) != want)
		{
			error_set(err, ERRCODE_DATA_CORRUPTED, "the recovered partitioned table holds %s rows where its "
					  "partitions were recovered with %llu", count ? count : "no", (unsigned long long) want);
			free(count);
			goto rollback;
		}
		free(count);
	}
	if (pgsql_exec(conn, "COMMIT", err) != BS_OK)
		goto rollback;
	rc = BS_OK;
	goto out;
rollback:
	{
		bs_error e2;

		pgsql_exec(conn, "ROLLBACK", &e2);
	}
out:
	free(target);
	return rc;
}

/* A partitioned table's copy-back: one statement each, printed together and applied together. */
typedef struct cb_steps
{
	int n;
	char **sql;
	const char **what;
} cb_steps;

static void cb_step(cb_steps *s, const char *what, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
cb_step(cb_steps *s, const char *what, const char *fmt, ...)
{
	va_list ap;
	int len;
	char *sql;

	va_start(ap, fmt);
	len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (len < 0)
		abort();
	sql = xmalloc((size_t) len + 1);
	va_start(ap, fmt);
	vsnprintf(sql, (size_t) len + 1, fmt, ap);
	va_end(ap);
	s->sql = xrealloc(s->sql, sizeof(char *) * (size_t) (s->n + 1));
	s->what = xrealloc(s->what, sizeof(char *) * (size_t) (s->n + 1));
	s->what[s->n] = what;
	s->sql[s->n++] = sql;
}

static void
cb_steps_free(cb_steps *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->sql[i]);
	free(s->sql);
	free(s->what);
	memset(s, 0, sizeof(*s));
}

/*
 * --apply for a partitioned table: refused (the SQL stays printed) where the copy-back cannot
 * restore the hierarchy exactly, else asked (unless --yes), run in one transaction and
 * validated.  Returns an exit code, the error reported.
 */
static int
apply_parent(const bs_config *cfg, PGconn *conn, bool gone, const cb_steps *steps, const copyback_member *mem, int n,
			 uint64_t rows, const char *pshown, const char *target_shown, bs_error *err)
{
	strbuf why = STRBUF_INIT;

	/* Dropped: every name must be free for the renames.  Live: the rows go through its
	 * partitions, so each must be the point's, with the point's bound. */
	if ((gone ? copyback_names_free(conn, mem, n, &why, err) : copyback_hierarchy_check(conn, mem, n, &why, err)) != BS_OK)
	{
		strbuf_free(&why);
		return fail(NULL, err);
	}
	if (why.len)
	{
		error_set(err, ERRCODE_OBJECT_IN_USE, "--apply refused: %s, so the copy-back cannot restore %s's hierarchy "
				  "exactly (%s); nothing was changed, the recovered table %s stays: put the live tables in order and "
				  "run the printed copy-back SQL yourself", why.data, pshown,
				  gone ? "the recovered tables take the names of the point" :
				  "the recovered rows are routed by the live table's partitions, which must be those of the point",
				  target_shown);
		strbuf_free(&why);
		return fail(NULL, err);
	}
	strbuf_free(&why);
	if (!confirm_apply(cfg, pshown, target_shown))
		return EXIT_FAILURE_RUNTIME;
	if (copyback_apply_hierarchy(conn, steps->sql, steps->what, steps->n, mem, n, rows, err) != BS_OK)
		return fail(NULL, err);
	if (!config_get_bool(cfg, CFG_YES) && !config_get_bool(cfg, CFG_JSON))
		printf("\nCopy-back applied to %s and validated (the hierarchy with its bounds, and each partition's rows "
			   "and checksum, are the recovery's).\n", pshown);
	return EXIT_OK;
}

/* Drop what this run created (a failed whole): nothing of the source is touched. */
static void
drop_created(PGconn *conn, const char *schema, part_item *parts, int nparts)
{
	for (int p = 0; p < nparts; p++)
		if (parts[p].loaded)
		{
			char *q = quote_qualified_name(schema, parts[p].tname);
			strbuf sql = STRBUF_INIT;
			bs_error e;

			strbuf_printf(&sql, "DROP TABLE IF EXISTS %s", q);
			pgsql_exec(conn, sql.data, &e);
			strbuf_free(&sql);
			free(q);
		}
}

/* Load one partition like a table (its own validated transaction) into schema.tname. */
static int
load_partition(PGconn *conn, storage *st, part_item *it, const char *schema, const recover_point *pt, bool replace,
			   bool no_indexes, const recover_resources *res, recover_progress *rprog, bs_error *err)
{
	replay_state *rs = NULL;
	bool streaming = false;
	uint32_t stream_layout = 0;
	const manifest_layout *layout;
	stream_source src;
	recover_load_options o;
	strbuf comment = STRBUF_INIT;
	char buf[256],
		l1[LSN_BUFLEN];
	int rc = BS_ERR;

	if (replay_new(it->m->nlayouts, it->m->layouts, &rs, err) != BS_OK)
		goto out;
	replay_set_memory_limit(rs, RECOVER_STATE_SHARE(res->memory_limit), res->temp_dir);
	if (fetch_segments(it->plan, st, rprog, err) != BS_OK)
		goto out;
	if (recover_plan_prepare_stream(it->plan, st, rs, &streaming, &stream_layout, err) != BS_OK)
		goto out;
	rprog->streaming = false;
	rprog->stage = -1;
	if (!streaming)
	{
		replay_free(rs);
		rs = NULL;
		if (replay_new(it->m->nlayouts, it->m->layouts, &rs, err) != BS_OK)
			goto out;
		replay_set_memory_limit(rs, RECOVER_STATE_SHARE(res->memory_limit), res->temp_dir);
		if (recover_plan_run(it->plan, st, rs, 0, NULL, NULL, on_progress, rprog, err) != BS_OK)
			goto out;
		progress_clear(rprog->p);
		layout = manifest_layout_by_id(it->m, recover_plan_point_layout(it->plan, replay_current_layout(rs)));
	}
	else
		layout = manifest_layout_by_id(it->m, stream_layout);
	if (layout == NULL)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "the replayed layout is not in the manifest of %s.%s", it->m->schema,
				  it->m->name);
		goto out;
	}
	strbuf_printf(&comment, RECOVER_COMMENT_PREFIX "%s.%s (relid %u) at %s; base LSN %s", it->m->schema, it->m->name,
				  it->m->relid, recover_render_point(pt, buf, sizeof(buf)), lsn_format(it->plan->base->lsn, l1));
	memset(&o, 0, sizeof(o));
	o.schema = schema;
	o.name = it->tname;
	o.source_schema = it->m->schema;
	o.source_name = it->m->name;
	o.layout = layout;
	o.definition = it->plan->base->definition;
	o.comment = comment.data;
	o.replace = replace;
	o.no_indexes = no_indexes;
	o.memory_limit = res->memory_limit;
	o.progress = rprog->p;
	if (streaming)
	{
		rprog->streaming = true;
		src = (stream_source) {it->plan, st, rs, stream_layout, rprog};
		o.source = stream_rows;
		o.source_ctx = &src;
	}
	if (recover_load(conn, rs, &o, &it->lres, err) != BS_OK)
	{
		progress_clear(rprog->p);
		error_prefix(err, "partition %s.%s", it->m->schema, it->m->name);
		goto out;
	}
	progress_clear(rprog->p);
	it->loaded = true;
	it->layout = layout;
	rc = BS_OK;
out:
	strbuf_free(&comment);
	replay_free(rs);
	return rc;
}

/* Whether a plan failure for partition m means it did not exist at the point (dropped before it). */
static bool
dropped_before(const manifest *m, const recover_point *pt, uint64_t point_lsn)
{
	if (strcmp(m->status, "dropped") != 0)
		return false;
	if (pt->kind == RECOVER_POINT_LATEST)
		return true;
	return point_lsn && m->drop_lsn && m->drop_lsn < point_lsn;
}

/*
 * `recover --table PARENT` for a partitioned table: every partition the archive shows attached
 * to it at the point is recovered at that same point (each validated), then attached with
 * its bound to a new partitioned table; any partition that cannot be recovered there refuses
 * the whole.  Returns an exit code.
 */
static int
recover_parent(const bs_config *cfg, storage *st, const archive_head *head, manifest *pm, const recover_point *user_pt,
			   bool json)
{
	bs_error err;
	archive_tables *all = NULL;
	const uint32_t *relids = NULL;
	int nrel = 0;
	part_item *parts = NULL;
	int nparts = 0;
	char *tschema = NULL,
			   *tname = NULL;
	char *pshown = quote_display_name(pm->schema, pm->name);
	const char *target_db = config_get(cfg, CFG_TARGET_DB);
	const char *db = config_get(cfg, CFG_DB);
	PGconn *conn = NULL;
	recover_point pt = *user_pt;
	uint64_t point_lsn = 0;		/* commits before it are in the point (0: a time) */
	json_t *key_part = NULL;	/* the root's key, columns and constraints (nodes[0].shape) */
	part_node *nodes = NULL;	/* the partitioned tables: the root first */
	int nnodes = 0;
	progress prog;
	recover_progress rprog = {&prog, false, -1};
	recover_resources res = {config_get(cfg, CFG_TEMP_DIR), (uint64_t) config_get_size(cfg, CFG_MEMORY_LIMIT)};
	recover_restore rr;
	char buf[256];
	int rc = EXIT_FAILURE_RUNTIME;

	error_clear(&err);
	progress_init(&prog, "recover", progress_wanted(json));
	memset(&rr, 0, sizeof(rr));
	if (config_get(cfg, CFG_COPY_BACK_COLUMNS))
	{
		free(pshown);
		return usage("--copy-back-columns does not apply to a partitioned table yet: run the printed copy-back "
					 "yourself, or recover and copy back one partition at a time");
	}
	if (target_name(cfg, pm, &tschema, &tname, &err) != BS_OK)
	{
		rc = usage(err.message);
		goto done;
	}
	/* The partitions: every table whose captured definition ever names this parent. */
	if (archive_tables_open(st, head, &all, &err) != BS_OK)
	{
		rc = fail(&prog, &err);
		goto done;
	}
	relids = archive_tables_relids(all, &nrel);
	for (int i = 0; i < nrel; i++)
	{
		manifest *m = NULL;
		bool exists = false,
			unknown = false;

		if (relids[i] == pm->relid)
			continue;
		if (archive_tables_load(all, relids[i], &m, &exists, &err) != BS_OK)
		{
			error_prefix(&err, "the manifest of table %u cannot be read, so whether it was a partition of %s at "
						 "the point is not known", relids[i], pshown);
			rc = fail(&prog, &err);
			goto done;
		}
		if (!exists || strcmp(m->status, "skipped") == 0)
		{
			manifest_free(m);
			continue;
		}
		if (!ever_partition_of(m, pm->relid, &unknown))
		{
			if (unknown)
			{
				error_set(&err, ERRCODE_OUT_OF_RANGE,
						  "%s cannot be recovered as a whole: table %s.%s (relid %u) is a partition of a partition, "
						  "and its definition was captured by a Backstop that did not record the partitioned "
						  "tables above its parent (no \"ancestors\" member), so whether it was one of the "
						  "partitions of %s is not known; recover each partition with --table, or wait for new "
						  "base copies", pshown, m->schema, m->name, m->relid, pshown);
				manifest_free(m);
				rc = fail(&prog, &err);
				goto done;
			}
			if (definition_predates_partitions(m))
			{
				error_set(&err, ERRCODE_OUT_OF_RANGE,
						  "%s cannot be recovered as a whole: the definition of table %s.%s (relid %u) was captured "
						  "by a Backstop that did not record partitions (no \"partition\" member), so whether it "
						  "was one of its partitions is not known; recover each partition with --table, or wait "
						  "for new base copies", pshown, m->schema, m->name, m->relid);
				manifest_free(m);
				rc = fail(&prog, &err);
				goto done;
			}
			manifest_free(m);
			continue;
		}
		parts = xrealloc(parts, sizeof(part_item) * (size_t) (nparts + 1));
		memset(&parts[nparts], 0, sizeof(part_item));
		parts[nparts++].m = m;
	}
	archive_tables_free(all);
	all = NULL;
	if (nparts == 0)
	{
		error_set(&err, ERRCODE_UNDEFINED_TABLE, "%s is a partitioned table, and no archived table was ever "
				  "captured as its partition: nothing to recover it from", pshown);
		rc = fail(&prog, &err);
		goto done;
	}
	/* A transaction id is a point only in the partitions it changed: theirs gives the LSN
	 * every other partition is recovered at. */
	if (pt.kind == RECOVER_POINT_XID)
	{
		uint64_t bound = 0;

		for (int p = 0; p < nparts && bound == 0; p++)
		{
			recover_plan *plan = NULL;
			bs_error e;

			if (recover_plan_build(st, parts[p].m, head, &pt, &res, &plan, &e) == BS_OK)
				bound = plan->bound;
			else if (strcmp(e.code, ERRCODE_UNDEFINED_OBJECT) != 0)
			{
				err = e;
				error_prefix(&err, "partition %s.%s", parts[p].m->schema, parts[p].m->name);
				rc = fail(&prog, &err);
				goto done;
			}
			recover_plan_free(plan);
		}
		if (bound == 0)
		{
			error_set(&err, ERRCODE_UNDEFINED_OBJECT, "transaction %u changed no partition of %s that is in the "
					  "archive: only transactions that touched the table can be recovery points", pt.xid, pshown);
			rc = fail(&prog, &err);
			goto done;
		}
		pt.kind = RECOVER_POINT_LSN;
		pt.lsn = bound;
		pt.exclusive = true;
	}
	if (pt.kind == RECOVER_POINT_LSN)
		point_lsn = pt.exclusive ? pt.lsn : pt.lsn + 1;
	else if (pt.kind == RECOVER_POINT_LATEST)
		point_lsn = UINT64_MAX;
	/* Each partition at the point, or the reason the whole is refused. */
	for (int p = 0; p < nparts; p++)
	{
		part_item *it = &parts[p];
		json_t *part,
				   *anc;
		uint32_t prel;
		int top;

		if (dropped_before(it->m, &pt, point_lsn))
			continue;
		if (recover_plan_build(st, it->m, head, &pt, &res, &it->plan, &err) != BS_OK)
		{
			error_prefix(&err, "%s cannot be recovered as a whole: its partition %s.%s (relid %u) cannot be "
						 "recovered at the point", pshown, it->m->schema, it->m->name, it->m->relid);
			rc = fail(&prog, &err);
			goto done;
		}
		it->def = it->plan->base->definition ? json_loads(it->plan->base->definition, 0, NULL) : NULL;
		part = it->def ? json_object_get(it->def, "partition") : NULL;
		if (part == NULL)
		{
			error_set(&err, ERRCODE_OUT_OF_RANGE,
					  "%s cannot be recovered as a whole: the definition of %s.%s at the point was captured by a "
					  "Backstop that did not record partitions (no \"partition\" member); choose a point after its "
					  "next base copy, or recover the partitions one by one", pshown, it->m->schema, it->m->name);
			rc = fail(&prog, &err);
			goto done;
		}
		/* A membership change (ATTACH/DETACH) between the base and the point: the base does not
		 * tell whether the table was a partition at the point. */
		for (int c = 0; c < it->m->npartition_changes; c++)
			if (it->m->partition_changes[c] >= it->plan->base->lsn && it->m->partition_changes[c] < it->plan->bound)
			{
				char l1[LSN_BUFLEN],
					l2[LSN_BUFLEN];

				error_set(&err, ERRCODE_OUT_OF_RANGE,
						  "%s cannot be recovered as a whole at %s: the partitions of %s changed at LSN %s "
						  "(ATTACH or DETACH PARTITION, or another ALTER TABLE on it), after the base copy of "
						  "%s.%s at %s and before the point; choose a point before %s or after that table's "
						  "next base copy", pshown, recover_render_point(user_pt, buf, sizeof(buf)), pshown,
						  lsn_format(it->m->partition_changes[c], l1), it->m->schema, it->m->name,
						  lsn_format(it->plan->base->lsn, l2), l1);
				rc = fail(&prog, &err);
				goto done;
			}
		if (!json_is_object(part))
			continue;			/* no partition at that base */
		prel = (uint32_t) json_integer_value(json_object_get(part, "parent_relid"));
		anc = json_object_get(part, "ancestors");
		top = -1;
		if (prel != pm->relid)
		{
			/* A partition of a partition: the whole is pm when pm is among the tables above. */
			if (!json_is_true(json_object_get(part, "parent_is_partition")))
				continue;		/* not its partition at that base (detached, or attached later) */
			if (!json_is_array(anc))
			{
				error_set(&err, ERRCODE_OUT_OF_RANGE,
						  "%s cannot be recovered as a whole: %s.%s is a partition of a partition, and its "
						  "definition at the point was captured by a Backstop that did not record the partitioned "
						  "tables above its parent (no \"ancestors\" member); choose a point after its next base "
						  "copy, or recover the partitions one by one", pshown, it->m->schema, it->m->name);
				rc = fail(&prog, &err);
				goto done;
			}
			for (size_t k = 0; k < json_array_size(anc) && top < 0; k++)
				if (json_integer_value(json_object_get(json_array_get(anc, k), "relid")) == (json_int_t) pm->relid)
					top = (int) k;
			if (top < 0)
				continue;		/* under another partitioned table at that base */
			if (top == 0 || json_integer_value(json_object_get(json_array_get(anc, 0), "relid")) != (json_int_t) prel)
			{
				error_set(&err, ERRCODE_DATA_CORRUPTED, "the ancestors in the definition of %s.%s do not begin "
						  "with its parent", it->m->schema, it->m->name);
				rc = fail(&prog, &err);
				goto done;
			}
		}
		/* pm itself a partition: the whole would lack its attachment above. */
		if ((top < 0 && json_is_true(json_object_get(part, "parent_is_partition"))) ||
			(top > 0 && json_is_string(json_object_get(json_array_get(anc, (size_t) top), "bound"))))
		{
			json_t *up = json_array_size(anc) ? json_array_get(anc, json_array_size(anc) - 1) : NULL;

			if (up && json_integer_value(json_object_get(up, "relid")) != (json_int_t) pm->relid)
				error_set(&err, ERRCODE_OUT_OF_RANGE, "%s is itself a partition (multi-level partitioning): "
						  "recovering it as a whole is not supported; recover its top-level partitioned table %s.%s, "
						  "or its partitions one by one", pshown, json_string_value(json_object_get(up, "schema")),
						  json_string_value(json_object_get(up, "name")));
			else
				error_set(&err, ERRCODE_OUT_OF_RANGE, "%s is itself a partition (multi-level partitioning): "
						  "recovering it as a whole is not supported; recover its top-level partitioned table, "
						  "or its partitions one by one", pshown);
			rc = fail(&prog, &err);
			goto done;
		}
		if (!json_is_string(json_object_get(part, "bound")) || !json_is_string(json_object_get(part, "key")))
		{
			error_set(&err, ERRCODE_DATA_CORRUPTED, "the partition member of %s.%s's definition has no bound or key",
					  it->m->schema, it->m->name);
			rc = fail(&prog, &err);
			goto done;
		}
		it->part = part;
		it->parent = prel;
		/* The partitioned tables from its parent up to pm (the newest base tells each). */
		if (top < 0)
			rc = note_node(&nodes, &nnodes, pm->relid, 0, pm->schema, pm->name, NULL, json_object_get(part, "key"),
						   json_object_get(part, "parent_columns"), json_object_get(part, "parent_constraints"),
						   it->plan->base->lsn, &err);
		else
		{
			rc = BS_OK;
			/* The parent's key as the partition saw it, and as the ancestors say. */
			if (!json_equal(json_object_get(part, "key"), json_object_get(json_array_get(anc, 0), "key")))
				rc = error_set(&err, ERRCODE_DATA_CORRUPTED, "the definition of %s.%s disagrees with itself on its "
							   "parent's partition key", it->m->schema, it->m->name);
			for (int k = top; k >= 0 && rc == BS_OK; k--)
			{
				json_t *a = json_array_get(anc, (size_t) k);

				rc = note_node(&nodes, &nnodes, (uint32_t) json_integer_value(json_object_get(a, "relid")),
							   k == top ? 0 : (uint32_t) json_integer_value(json_object_get(json_array_get(anc, (size_t) k + 1), "relid")),
							   k == top ? pm->schema : json_string_value(json_object_get(a, "schema")),
							   k == top ? pm->name : json_string_value(json_object_get(a, "name")),
							   k == top ? NULL : json_string_value(json_object_get(a, "bound")),
							   json_object_get(a, "key"), json_object_get(a, "columns"),
							   json_object_get(a, "constraints"), it->plan->base->lsn, &err);
			}
		}
		if (rc != BS_OK)
		{
			rc = fail(&prog, &err);
			goto done;
		}
		rc = EXIT_FAILURE_RUNTIME;
	}
	/* Keep only the partitions of the point. */
	{
		int k = 0;

		for (int p = 0; p < nparts; p++)
		{
			if (parts[p].part)
				parts[k++] = parts[p];
			else
			{
				recover_plan_free(parts[p].plan);
				json_decref(parts[p].def);
				manifest_free(parts[p].m);
			}
		}
		nparts = k;
	}
	if (nparts == 0)
	{
		error_set(&err, ERRCODE_OUT_OF_RANGE, "%s had no archived partition at %s: its definition is captured "
				  "only with its partitions", pshown, recover_render_point(user_pt, buf, sizeof(buf)));
		rc = fail(&prog, &err);
		goto done;
	}
	/* Every partition agrees with its parent's key (a key cannot change, but the archive is
	 * untrusted), and every partitioned table hangs from the root. */
	for (int p = 0; p < nparts; p++)
	{
		int i = node_index(nodes, nnodes, parts[p].parent);

		if (i < 0 || !json_equal(json_object_get(parts[p].part, "key"), json_object_get(nodes[i].shape, "key")))
		{
			error_set(&err, ERRCODE_DATA_CORRUPTED, "the partitions of %s disagree on its partition key", pshown);
			rc = fail(&prog, &err);
			goto done;
		}
	}
	for (int i = 1; i < nnodes; i++)
	{
		int up = i;

		for (int d = 0; d <= nnodes && nodes[up].parent; d++)
		{
			up = node_index(nodes, nnodes, nodes[up].parent);
			nodes[i].depth++;
			if (up < 0)
				break;
		}
		if (up != 0)
		{
			error_set(&err, ERRCODE_DATA_CORRUPTED, "the partitioned table %s.%s in the partitions' definitions does "
					  "not lead up to %s", nodes[i].schema, nodes[i].name, pshown);
			rc = fail(&prog, &err);
			goto done;
		}
	}
	key_part = nodes[0].shape;
	nodes[0].tname = xstrdup(tname);
	for (int i = 1; i < nnodes; i++)
		nodes[i].tname = name_with_suffix(tname, "_", nodes[i].name);
	for (int p = 0; p < nparts; p++)
	{
		parts[p].tname = name_with_suffix(tname, "_", parts[p].m->name);
		for (int q = 0; q < p; q++)
			if (strcmp(parts[q].tname, parts[p].tname) == 0)
			{
				rc = usage("two partitions get the same recovered name (their names are cut to 63 bytes): choose a "
						   "shorter name with --into");
				goto done;
			}
		for (int i = 0; i < nnodes; i++)
			if (strcmp(nodes[i].tname, parts[p].tname) == 0)
			{
				rc = usage("two partitions get the same recovered name (their names are cut to 63 bytes): choose a "
						   "shorter name with --into");
				goto done;
			}
	}
	for (int i = 1; i < nnodes; i++)
		for (int j = 0; j < i; j++)
			if (strcmp(nodes[i].tname, nodes[j].tname) == 0)
			{
				rc = usage("two partitions get the same recovered name (their names are cut to 63 bytes): choose a "
						   "shorter name with --into");
				goto done;
			}
	if (config_get_bool(cfg, CFG_DRY_RUN))
	{
		if (json)
		{
			json_t *o = json_object();
			json_t *pa = json_array();

			for (int p = 0; p < nparts; p++)
				json_array_append_new(pa, json_pack("{s:o,s:o,s:s,s:o}", "partition",
													json_sprintf("%s.%s", parts[p].m->schema, parts[p].m->name),
													"target", json_sprintf("%s.%s", tschema, parts[p].tname),
													"bound", json_string_value(json_object_get(parts[p].part, "bound")),
													"base_lsn", jsonout_lsn(parts[p].plan->base->lsn)));
			json_object_set_new(o, "dry_run", json_true());
			json_object_set_new(o, "table", json_sprintf("%s.%s", pm->schema, pm->name));
			json_object_set_new(o, "partitioned", json_true());
			json_object_set_new(o, "point", json_string(recover_render_point(user_pt, buf, sizeof(buf))));
			json_object_set_new(o, "target", json_sprintf("%s.%s", tschema, tname));
			json_object_set_new(o, "partitions", pa);
			if (nnodes > 1)
				json_object_set_new(o, "partitioned_partitions", nodes_json(nodes, nnodes, tschema));
			jsonout_print(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
			json_decref(o);
		}
		else
		{
			char *ts = quote_display_name(tschema, tname);

			printf("Dry run: nothing written.\n");
			printf("Table:           %s (partitioned, relid %u)\n", pshown, pm->relid);
			printf("Point:           %s\n", recover_render_point(user_pt, buf, sizeof(buf)));
			printf("Target:          %s\n", ts);
			for (int p = 0; p < nparts; p++)
			{
				char *s = quote_display_name(parts[p].m->schema, parts[p].m->name);
				char *b = xstrdup_printable(json_string_value(json_object_get(parts[p].part, "bound")));

				printf("Partition:       %s %s", s, b);
				print_parent(nodes, nnodes, parts[p].parent);
				free(s);
				free(b);
			}
			for (int i = 1; i < nnodes; i++)
			{
				char *s = quote_display_name(nodes[i].schema, nodes[i].name);
				char *b = xstrdup_printable(nodes[i].bound);
				char *k = xstrdup_printable(json_string_value(json_object_get(nodes[i].shape, "key")));

				printf("Partition:       %s %s, partitioned by %s", s, b, k);
				print_parent(nodes, nnodes, nodes[i].parent);
				free(s);
				free(b);
				free(k);
			}
			free(ts);
		}
		rc = EXIT_OK;
		goto done;
	}
	if (db == NULL && target_db == NULL)
	{
		rc = usage("--db (or --target-db) is required unless --dry-run");
		goto done;
	}
	if (pgsql_connect(target_db ? target_db : db, false, "backstop recover", &conn, &err) != BS_OK)
	{
		rc = fail(&prog, &err);
		goto done;
	}
	for (int p = 0; p < nparts; p++)
		if (load_partition(conn, st, &parts[p], tschema, &pt, config_get_bool(cfg, CFG_REPLACE),
						   config_get_bool(cfg, CFG_NO_INDEXES), &res, &rprog, &err) != BS_OK)
		{
			drop_created(conn, tschema, parts, nparts);
			error_prefix(&err, "%s not recovered as a whole", pshown);
			rc = fail(&prog, &err);
			goto done;
		}
	{
		strbuf comment = STRBUF_INIT;

		strbuf_printf(&comment, RECOVER_COMMENT_PREFIX "%s.%s (relid %u, partitioned) at %s", pm->schema, pm->name,
					  pm->relid, recover_render_point(user_pt, buf, sizeof(buf)));
		if (build_parent(conn, tschema, nodes, nnodes, parts, nparts, comment.data, config_get_bool(cfg, CFG_REPLACE),
						 &err) != BS_OK)
		{
			strbuf_free(&comment);
			drop_created(conn, tschema, parts, nparts);
			error_prefix(&err, "%s not recovered as a whole", pshown);
			rc = fail(&prog, &err);
			goto done;
		}
		strbuf_free(&comment);
	}
	/* What the recovered hierarchy cannot hold, for after the copy-back. */
	{
		uint32_t *ids = xcalloc((size_t) (nparts + nnodes), sizeof(uint32_t));
		uint64_t bound = UINT64_MAX;

		for (int n = 0; n < nnodes; n++)
			ids[n] = nodes[n].relid;
		for (int p = 0; p < nparts; p++)
		{
			ids[p + nnodes] = parts[p].m->relid;
			if (parts[p].plan->bound < bound)
				bound = parts[p].plan->bound;
			recover_restore_from_definition(parts[p].plan->base->definition, parts[p].m->schema, parts[p].m->name,
											false, &rr);
		}
		recover_restore_foreign_keys(st, head, ids, nparts + nnodes, point_lsn ? point_lsn : bound, &rr);
		free(ids);
	}
	/* Output, and the copy-back: the hierarchy back under its names, or its rows into the live table. */
	{
		copyback_live live = COPYBACK_LIVE_UNKNOWN;
		uint32_t live_relid = 0;
		strbuf cb = STRBUF_INIT;
		char *ptarget = quote_qualified_name_printable(tschema, tname);
		char *porig = quote_qualified_name_printable(pm->schema, pm->name);
		uint64_t total = 0;
		cb_steps steps = {0};
		int nmem = nnodes + nparts;
		copyback_member *mem = xcalloc((size_t) nmem, sizeof(copyback_member));
		char (*sums)[REPLAY_CHECKSUM_BUFLEN + 32] = xcalloc((size_t) nparts + 1, sizeof(*sums));
		bool apply = config_get_bool(cfg, CFG_APPLY),
			yes = config_get_bool(cfg, CFG_YES),
			applied = false;
		int arc = EXIT_OK;

		if (target_db == NULL && copyback_live_state(conn, pm, &live, &live_relid, &err) != BS_OK)
		{
			arc = fail(&prog, &err);
			goto copy_back_out;
		}
		/* The hierarchy as it stands after the copy-back (what --apply validates). */
		for (int n = 0; n < nnodes; n++)
		{
			int up = n ? node_index(nodes, nnodes, nodes[n].parent) : -1;

			mem[n] = (copyback_member) {nodes[n].schema, nodes[n].name, up >= 0 ? nodes[up].schema : NULL,
				up >= 0 ? nodes[up].name : NULL, nodes[n].bound,
				json_string_value(json_object_get(nodes[n].shape, "key")), NULL, NULL};
		}
		for (int p = 0; p < nparts; p++)
		{
			int up = node_index(nodes, nnodes, parts[p].parent);

			snprintf(sums[p], sizeof(sums[p]), "%llu/%s", (unsigned long long) parts[p].lres.pg_rows,
					 parts[p].lres.pg_sum);
			mem[nnodes + p] = (copyback_member) {parts[p].m->schema, parts[p].m->name, nodes[up].schema,
				nodes[up].name, json_string_value(json_object_get(parts[p].part, "bound")), NULL, parts[p].layout,
				sums[p]};
			total += parts[p].lres.ours.rows;
		}
		if (live == COPYBACK_LIVE_GONE)
		{
			char *qn = quote_ident_printable(pm->name);

			if (strcmp(tschema, pm->schema) != 0)
			{
				char *qs = quote_ident_printable(pm->schema);

				cb_step(&steps, "the recovered partitioned table into its schema", "ALTER TABLE %s SET SCHEMA %s;",
						ptarget, qs);
				free(qs);
			}
			/* Each partition into its own schema (it may differ from the parent's). */
			for (int p = 0; p < nmem - 1; p++)
			{
				const char *ps = p < nnodes - 1 ? nodes[p + 1].schema : parts[p - nnodes + 1].m->schema;
				const char *pn = p < nnodes - 1 ? nodes[p + 1].tname : parts[p - nnodes + 1].tname;

				if (strcmp(tschema, ps) != 0)
				{
					char *pt2 = quote_qualified_name_printable(tschema, pn);
					char *qs = quote_ident_printable(ps);

					cb_step(&steps, "a recovered partition into its schema", "ALTER TABLE %s SET SCHEMA %s;", pt2, qs);
					free(pt2);
					free(qs);
				}
			}
			{
				char *cur = quote_qualified_name_printable(pm->schema, tname);

				cb_step(&steps, "the table was dropped: the recovered partitioned table takes its name",
						"ALTER TABLE %s RENAME TO %s;", cur, qn);
				free(cur);
			}
			cb_step(&steps, "its comment (this removes the recovery mark)", "COMMENT ON TABLE %s IS NULL;", porig);
			for (int p = 0; p < nmem - 1; p++)
			{
				const char *ps = p < nnodes - 1 ? nodes[p + 1].schema : parts[p - nnodes + 1].m->schema;
				const char *pn = p < nnodes - 1 ? nodes[p + 1].name : parts[p - nnodes + 1].m->name;
				char *cur = quote_qualified_name_printable(ps, p < nnodes - 1 ? nodes[p + 1].tname :
														   parts[p - nnodes + 1].tname);
				char *qp = quote_ident_printable(pn);
				char *orig = quote_qualified_name_printable(ps, pn);

				cb_step(&steps, "a recovered partition takes its name", "ALTER TABLE %s RENAME TO %s;", cur, qp);
				cb_step(&steps, "its comment (this removes the recovery mark)", "COMMENT ON TABLE %s IS NULL;", orig);
				free(cur);
				free(qp);
				free(orig);
			}
			free(qn);
		}
		else
		{
			/* The table exists: its rows are replaced by the recovered ones, routed by its own
			 * partitions (a row no live partition takes fails the whole). */
			manifest_layout pl;
			strbuf cols = STRBUF_INIT;

			if (parent_layout(key_part, &pl, &err) != BS_OK)
			{
				free(pl.columns);
				arc = fail(&prog, &err);
				goto copy_back_out;
			}
			for (int c = 0; c < pl.ncols; c++)
			{
				char *q = quote_ident_printable(pl.columns[c].name);

				strbuf_printf(&cols, "%s%s", c ? ", " : "", q);
				free(q);
			}
			free(pl.columns);
			cb_step(&steps, "the live table's rows go", "DELETE FROM %s;", porig);
			cb_step(&steps, "the recovered rows go in, through the live table's partitions",
					"INSERT INTO %s (%s) SELECT %s FROM %s;", porig, cols.data, cols.data, ptarget);
			strbuf_free(&cols);
		}
		strbuf_append_str(&cb, "BEGIN;\n");
		for (int i = 0; i < steps.n; i++)
			strbuf_printf(&cb, "%s\n", steps.sql[i]);
		strbuf_append_str(&cb, "COMMIT;");
		/* With --yes the copy-back runs before the output says what was done; asked, after it. */
		if (apply && yes)
		{
			arc = apply_parent(cfg, conn, live == COPYBACK_LIVE_GONE, &steps, mem, nmem, total, pshown, ptarget,
							   &err);
			applied = arc == EXIT_OK;
		}
		if (json)
		{
			json_t *o = json_object();
			json_t *pa = json_array();
			json_t *ra = json_array();
			json_t *notes = json_array();

			for (int p = 0; p < nparts; p++)
			{
				char ours[REPLAY_CHECKSUM_BUFLEN];

				replay_checksum_format(&parts[p].lres.ours, ours);
				json_array_append_new(pa, json_pack("{s:o,s:o,s:s,s:o,s:I,s:s,s:s}", "partition",
													json_sprintf("%s.%s", parts[p].m->schema, parts[p].m->name),
													"target", json_sprintf("%s.%s", tschema, parts[p].tname),
													"bound", json_string_value(json_object_get(parts[p].part, "bound")),
													"base_lsn", jsonout_lsn(parts[p].plan->base->lsn),
													"rows", (json_int_t) parts[p].lres.ours.rows,
													"checksum", ours, "postgres_checksum", parts[p].lres.pg_sum));
			}
			for (int i = 0; i < rr.n; i++)
				json_array_append_new(ra, json_pack("{s:s,s:s}", "purpose", rr.what[i], "sql", rr.sql[i]));
			for (char *p = rr.notes.data, *nl; p && *p && (nl = strchr(p, '\n')); p = nl + 1)
				json_array_append_new(notes, json_stringn(p, (size_t) (nl - p)));
			json_object_set_new(o, "table", json_sprintf("%s.%s", pm->schema, pm->name));
			json_object_set_new(o, "partitioned", json_true());
			json_object_set_new(o, "target", json_sprintf("%s.%s", tschema, tname));
			json_object_set_new(o, "point", json_string(recover_render_point(user_pt, buf, sizeof(buf))));
			json_object_set_new(o, "partition_key", json_string(json_string_value(json_object_get(key_part, "key"))));
			json_object_set_new(o, "rows", json_integer((json_int_t) total));
			json_object_set_new(o, "partitions", pa);
			if (nnodes > 1)
				json_object_set_new(o, "partitioned_partitions", nodes_json(nodes, nnodes, tschema));
			json_object_set_new(o, "copy_back", json_pack("[{s:s,s:s}]", "purpose", live == COPYBACK_LIVE_GONE ?
														  "rename the recovered hierarchy into place" :
														  "replace the live table's rows", "sql", cb.data));
			json_object_set_new(o, "copy_back_applied", json_boolean(applied));
			json_object_set_new(o, "after_copy_back", ra);
			json_object_set_new(o, "after_copy_back_notes", notes);
			jsonout_print(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
			json_decref(o);
		}
		else
		{
			char *ts = quote_display_name(tschema, tname);
			char *key = xstrdup_printable(json_string_value(json_object_get(key_part, "key")));

			printf("Recovered %s (partitioned) into %s, PARTITION BY %s\n", pshown, ts, key);
			printf("Point:        %s\n", recover_render_point(user_pt, buf, sizeof(buf)));
			printf("Partitions:   %d, %llu rows in all, each validated:\n", nparts, (unsigned long long) total);
			for (int p = 0; p < nparts; p++)
			{
				char ours[REPLAY_CHECKSUM_BUFLEN];
				char *s = quote_display_name(parts[p].m->schema, parts[p].m->name);
				char *t = quote_display_name(tschema, parts[p].tname);
				char *b = xstrdup_printable(json_string_value(json_object_get(parts[p].part, "bound")));
				char l1[LSN_BUFLEN];

				replay_checksum_format(&parts[p].lres.ours, ours);
				printf("  %s -> %s %s: %llu rows, checksum %s (Backstop) = %s (PostgreSQL), base LSN %s", s, t, b,
					   (unsigned long long) parts[p].lres.ours.rows, ours, parts[p].lres.pg_sum,
					   lsn_format(parts[p].plan->base->lsn, l1));
				print_parent(nodes, nnodes, parts[p].parent);
				free(s);
				free(t);
				free(b);
			}
			for (int n = 1; n < nnodes; n++)
			{
				char *s = quote_display_name(nodes[n].schema, nodes[n].name);
				char *t = quote_display_name(tschema, nodes[n].tname);
				char *b = xstrdup_printable(nodes[n].bound);
				char *k = xstrdup_printable(json_string_value(json_object_get(nodes[n].shape, "key")));

				printf("  %s -> %s %s: partitioned by %s", s, t, b, k);
				print_parent(nodes, nnodes, nodes[n].parent);
				free(s);
				free(t);
				free(b);
				free(k);
			}
			printf("\nCopy-back SQL (%s):\n\n-- %s\n%s\n",
				   applied ? "applied in one transaction and validated" :
				   apply && !yes ? "to be applied in one transaction once you confirm" :
				   "not executed; review, then run it yourself, or use --apply",
				   live == COPYBACK_LIVE_GONE ? "the table is gone: the recovered hierarchy takes its names"
				   : "the table exists: its rows are replaced by the recovered ones (changes made after the point are "
				   "lost; rows go to the live table's partitions)", cb.data);
			recover_render_after_copy_back(&rr, "\nAfter the copy-back (not executed, not part of --apply): what the recovered "
								  "tables cannot hold\n");
			recover_render_notes("Notes", &rr.notes);
			if (applied)
				printf("\nCopy-back applied to %s and validated (the hierarchy with its bounds, and each partition's "
					   "rows and checksum, are the recovery's).\n", pshown);
			free(ts);
			free(key);
		}
		if (apply && !yes)
			arc = apply_parent(cfg, conn, live == COPYBACK_LIVE_GONE, &steps, mem, nmem, total, pshown, ptarget,
							   &err);
copy_back_out:
		cb_steps_free(&steps);
		free(mem);
		free(sums);
		strbuf_free(&cb);
		free(ptarget);
		free(porig);
		if (arc != EXIT_OK)
		{
			rc = arc;
			goto done;
		}
	}
	rc = EXIT_OK;
done:
	recover_restore_free(&rr);
	if (conn)
		PQfinish(conn);
	parts_free(parts, nparts);
	nodes_free(nodes, nnodes);
	archive_tables_free(all);
	free(tschema);
	free(tname);
	free(pshown);
	return rc;
}

int
cmd_recover(bs_config *cfg, int argc, char **argv)
{
	const char *table = config_get(cfg, CFG_TABLE);
	const char *db = config_get(cfg, CFG_DB);
	const char *target_db = config_get(cfg, CFG_TARGET_DB);
	bool dry_run = config_get_bool(cfg, CFG_DRY_RUN);
	bool json = config_get_bool(cfg, CFG_JSON);
	recover_point pt;
	const char *msg = NULL;
	bs_error err;
	storage *st = NULL;
	manifest *m = NULL;
	archive_head head;
	bool head_exists = false;
	recover_plan *plan = NULL;
	replay_state *rs = NULL;
	PGconn *conn = NULL;
	char *tschema = NULL,
			   *tname = NULL;
	char *src_shown = NULL,		/* names for human output: quoted, escaped */
			   *target_shown = NULL,
			   *status_shown = NULL;
	recover_load_result lres;
	progress prog;
	recover_progress rprog = {&prog, false, -1};
	int rc = EXIT_FAILURE_RUNTIME;
	double t_start = clock_mono_s(),
		t_fetch = 0,
		t_load = 0;
	const manifest_layout *layout;
	bool streaming = false;
	uint32_t stream_layout = 0;
	stream_source src;
	char buf[256],
		l1[LSN_BUFLEN],
		l2[LSN_BUFLEN],
		tm[ISOTIME_BUFLEN];
	bool apply = config_get_bool(cfg, CFG_APPLY);
	copyback cb;
	copyback_input ci;
	char **cb_columns = NULL;
	int cb_ncolumns = 0;
	strbuf latest_cmd = STRBUF_INIT;
	recover_restore rr;
	recover_resources res = {config_get(cfg, CFG_TEMP_DIR), (uint64_t) config_get_size(cfg, CFG_MEMORY_LIMIT)};
	uint64_t spilled_rows = 0,
		spilled_bytes = 0;

	(void) argv;
	progress_init(&prog, "recover", progress_wanted(json));
	progress_phase(&prog, "plan");
	memset(&rr, 0, sizeof(rr));
	error_clear(&err);
	memset(&lres, 0, sizeof(lres));
	memset(&head, 0, sizeof(head));
	memset(&cb, 0, sizeof(cb));
	memset(&ci, 0, sizeof(ci));
	if (argc > 0)
		return usage("recover takes no positional arguments");
	if ((table == NULL) == (config_get(cfg, CFG_RELID) == NULL))
		return usage("one of --table or --relid is required");
	if (parse_point(cfg, &pt, &msg) != BS_OK)
		return usage(msg);
	if (!dry_run && db == NULL && target_db == NULL)
		return usage("--db (or --target-db) is required unless --dry-run");
	/* --apply changes the live table: refused up front where it cannot be done or asked. */
	if (apply && (dry_run || target_db))
		return usage("--apply runs the copy-back in the source database: not with --dry-run or --target-db");
	if (apply && !config_get_bool(cfg, CFG_YES) && (json || !(isatty(0) && isatty(2))))
		return usage("--apply asks before it changes the table; without a terminal, add --yes");
	if (config_get(cfg, CFG_COPY_BACK_COLUMNS) &&
		copyback_parse_columns(config_get(cfg, CFG_COPY_BACK_COLUMNS), &cb_columns, &cb_ncolumns, &err) != BS_OK)
	{
		copyback_free_columns(cb_columns, cb_ncolumns);
		return usage(err.message);
	}

	if ((rc = cli_open_storage("recover", cfg, &st)) != EXIT_OK)
		return rc;
	/* Formats 1 and 2 through the manifests as before; format 3 through the catalog and the
	 * packs after it (archive_load). */
	if (archive_head_load_any(st, &head, &head_exists, &err) != BS_OK ||
		(table ? archive_load_find_at(st, head_exists ? &head : NULL, table,
									  pt.kind == RECOVER_POINT_LSN ? pt.lsn : UINT64_MAX, &m, &err)
		 : archive_load_find_relid(st, head_exists ? &head : NULL, config_get(cfg, CFG_RELID), &m, &err)) != BS_OK)
	{
		progress_clear(&prog);
		rc = strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0 ? usage(err.message) : fail(&prog, &err);
		goto done;
	}
	if (table && resolve_name_at_point(st, head_exists ? &head : NULL, table, &pt, &m, &err) != BS_OK)
	{
		rc = fail(&prog, &err);
		goto done;
	}
	/* Definitions from storage become SQL: refuse any that is not exactly one fragment of
	 * its kind before anything is sent (the same check as verify's). */
	if (sqlcheck_manifest_first(m, &err) != BS_OK)
	{
		rc = fail(&prog, &err);
		goto done;
	}
	if (strcmp(m->status, "skipped") == 0 && m->finding && strncmp(m->finding, "partitioned table", 17) == 0)
	{
		rc = recover_parent(cfg, st, head_exists ? &head : NULL, m, &pt, json);
		goto done;
	}
	if (strcmp(m->status, "skipped") == 0)
	{
		error_set(&err, ERRCODE_UNDEFINED_TABLE, "table %s.%s is not archived (skipped: %s)", m->schema, m->name,
				  m->finding ? m->finding : "no reason recorded");
		rc = fail(&prog, &err);
		goto done;
	}
	if (target_name(cfg, m, &tschema, &tname, &err) != BS_OK)
	{
		rc = usage(err.message);
		goto done;
	}
	if (strlen(tschema) > VALIDATE_NAME_MAX || strlen(tname) > VALIDATE_NAME_MAX)
	{
		/* --into is checked by validate_config(); the derived name is shortened. */
		rc = usage("the target's name is longer than 63 bytes");
		goto done;
	}
	src_shown = quote_display_name(m->schema, m->name);
	target_shown = quote_display_name(tschema, tname);
	status_shown = xstrdup_printable(m->status);
	if (target_db == NULL && strcmp(tschema, m->schema) == 0 && strcmp(tname, m->name) == 0)
	{
		rc = usage("the target must not be the source table itself: choose another name with --into");
		goto done;
	}
	if (recover_plan_build(st, m, head_exists ? &head : NULL, &pt, &res, &plan, &err) != BS_OK)
	{
		rc = fail(&prog, &err);
		goto done;
	}
	/* "16:00:05" means the whole second to many: say when commits fall inside it. */
	if (pt.kind == RECOVER_POINT_TIME && pt.second_precision && plan->next_commit_lsn &&
		plan->next_commit_time < pt.time + 1000000)
	{
		char l[LSN_BUFLEN],
			lt[RECOVER_TIME_BUFLEN];

		progress_clear(&prog);
		fprintf(stderr, "backstop recover: WARNING: --to-time has whole seconds only, and transaction %u committed "
				"inside that second (at %s, LSN %s), after the point: it is not recovered; give fractional "
				"seconds or use --to-xid to include it\n", plan->next_xid,
				recover_format_local_time(plan->next_commit_time, lt), lsn_format(plan->next_commit_lsn, l));
	}
	if (replay_new(m->nlayouts, m->layouts, &rs, &err) != BS_OK)
	{
		rc = fail(&prog, &err);
		goto done;
	}
	replay_set_memory_limit(rs, RECOVER_STATE_SHARE(res.memory_limit), res.temp_dir);
	/*
	 * Streaming (when no change since the base alters the columns or truncates): the
	 * segments are fetched and verified now, the base chunks while their untouched rows are
	 * being loaded, inside the transaction that any failure rolls back.  Otherwise the whole
	 * table is rebuilt in memory here, before anything is written.
	 */
	prog.bytes_total = plan->download_bytes;
	if (fetch_segments(plan, st, &rprog, &err) != BS_OK)
	{
		rc = fail(&prog, &err);
		goto done;
	}
	if (!dry_run)
	{
		if (recover_plan_prepare_stream(plan, st, rs, &streaming, &stream_layout, &err) != BS_OK)
		{
			rc = fail(&prog, &err);
			goto done;
		}
		if (!streaming)
		{
			replay_free(rs);
			rs = NULL;
			if (replay_new(m->nlayouts, m->layouts, &rs, &err) != BS_OK)
			{
				rc = fail(&prog, &err);
				goto done;
			}
			replay_set_memory_limit(rs, RECOVER_STATE_SHARE(res.memory_limit), res.temp_dir);
		}
	}
	if (streaming)
		layout = manifest_layout_by_id(m, stream_layout);
	else
	{
		if (recover_plan_run(plan, st, rs, 0, NULL, NULL, on_progress, &rprog, &err) != BS_OK)
		{
			rc = fail(&prog, &err);
			goto done;
		}
		progress_clear(&prog);
		layout = manifest_layout_by_id(m, recover_plan_point_layout(plan, replay_current_layout(rs)));
	}
	if (layout == NULL)
	{
		error_set(&err, ERRCODE_DATA_CORRUPTED, "the replayed layout is not in the manifest of %s.%s", m->schema,
				  m->name);
		rc = fail(&prog, &err);
		goto done;
	}
	t_fetch = clock_mono_s() - t_start;

	if (dry_run)
	{
		progress_done(&prog);
		if (json)
		{
			json_t *o = json_object();
			json_t *segs = json_array();

			for (int i = 0; i < plan->nsegs; i++)
				json_array_append_new(segs, json_string(m->segments[plan->segs[i]].key));
			json_object_set_new(o, "dry_run", json_true());
			json_object_set_new(o, "table", json_sprintf("%s.%s", m->schema, m->name));
			json_object_set_new(o, "point", json_string(recover_render_point(&pt, buf, sizeof(buf))));
			json_object_set_new(o, "base_lsn", jsonout_lsn(plan->base->lsn));
			json_object_set_new(o, "base_rows", json_integer((json_int_t) plan->base->rows));
			json_object_set_new(o, "segments", segs);
			json_object_set_new(o, "transactions", json_integer((json_int_t) plan->transactions));
			json_object_set_new(o, "row_operations", json_integer((json_int_t) plan->operations));
			json_object_set_new(o, "expected_rows", json_integer((json_int_t) replay_row_count(rs)));
			json_object_set_new(o, "download_bytes", json_integer((json_int_t) plan->download_bytes));
			json_object_set_new(o, "last_commit_lsn",
								plan->last_commit_lsn ? jsonout_lsn(plan->last_commit_lsn) : json_null());
			json_object_set_new(o, "target", json_sprintf("%s.%s", tschema, tname));
			json_object_set_new(o, "phases", progress_phases_json(&prog));
			jsonout_print(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
			json_decref(o);
		}
		else
		{
			printf("Dry run: nothing written.\n");
			printf("Table:           %s (relid %u, %s)\n", src_shown, m->relid, status_shown);
			printf("Point:           %s\n", recover_render_point(&pt, buf, sizeof(buf)));
			printf("Base copy:       LSN %s, taken %s, %llu rows in %d chunk(s)\n", lsn_format(plan->base->lsn, l1),
				   isotime_format(plan->base->time, tm), (unsigned long long) plan->base->rows,
				   plan->base->nchunks);
			printf("Segments:        %d\n", plan->nsegs);
			for (int i = 0; i < plan->nsegs; i++)
			{
				char *key = xstrdup_printable(m->segments[plan->segs[i]].key);

				printf("                 %s\n", key);
				free(key);
			}
			printf("Transactions:    %llu (%llu row operations)\n", (unsigned long long) plan->transactions,
				   (unsigned long long) plan->operations);
			if (plan->last_commit_lsn)
				printf("Last applied:    commit LSN %s, xid %u, %s\n", lsn_format(plan->last_commit_lsn, l2),
					   plan->last_xid, isotime_format(plan->last_commit_time, tm));
			printf("Expected rows:   %llu\n", (unsigned long long) replay_row_count(rs));
			printf("Download:        %llu bytes\n", (unsigned long long) plan->download_bytes);
			printf("Target:          %s\n", target_shown);
		}
		rc = EXIT_OK;
		goto done;
	}

	if (config_get_bool(cfg, CFG_REPLACE) && !config_get_bool(cfg, CFG_YES) && isatty(0) && isatty(2))
	{
		progress_clear(&prog);
		char answer[16];

		fprintf(stderr, "Replace %s if it is an earlier Backstop recovery? [y/N] ", target_shown);
		if (fgets(answer, sizeof(answer), stdin) == NULL || (answer[0] != 'y' && answer[0] != 'Y'))
		{
			fprintf(stderr, "backstop recover: nothing done\n");
			rc = EXIT_FAILURE_RUNTIME;
			goto done;
		}
	}
	if (pgsql_connect(target_db ? target_db : db, false, "backstop recover", &conn, &err) != BS_OK)
	{
		rc = fail(&prog, &err);
		goto done;
	}
	/* The copy-back is chosen before anything is written, from the live database (what holds
	 * the table's name now) and the point (what the archive holds after it). */
	ci.m = m;
	ci.layout = layout;
	ci.definition = plan->base->definition;
	ci.target_schema = tschema;
	ci.target_name = tname;
	ci.columns = cb_columns;
	ci.ncolumns = cb_ncolumns;
	if (target_db == NULL && copyback_live_state(conn, m, &ci.live, &ci.live_relid, &err) != BS_OK)
	{
		rc = fail(&prog, &err);
		goto done;
	}
	copyback_later_changes(m, plan->last_end_lsn, plan->base->lsn, &ci.later);
	{
		char *qt = quote_qualified_name_printable(m->schema, m->name);
		char *qstorage = redact_text(config_get(cfg, CFG_STORAGE));
		char *lit = quote_literal(qstorage);

		strbuf_printf(&latest_cmd, "backstop recover --storage %s --table %s --latest", lit, qt);
		/* Into the same <table>_recovered, replacing this recovery. */
		if (config_get(cfg, CFG_INTO) == NULL)
			strbuf_append_str(&latest_cmd, " --replace");
		free(qt);
		free(qstorage);
		free(lit);
		ci.latest_command = latest_cmd.data;
	}
	if (copyback_build(&ci, &cb, &err) != BS_OK)
	{
		rc = usage(err.message);
		goto done;
	}
	/* What the recovered table cannot hold (triggers, policies, publications, its partition
	 * attachment, other tables' foreign keys into it), for after the copy-back. */
	recover_restore_from_definition(plan->base->definition, m->schema, m->name, true, &rr);
	recover_restore_foreign_keys(st, head_exists ? &head : NULL, &m->relid, 1, plan->bound, &rr);
	{
		recover_load_options o;
		strbuf comment = STRBUF_INIT;
		const manifest_base *b = plan->base;

		strbuf_printf(&comment, RECOVER_COMMENT_PREFIX "%s.%s (relid %u) at %s", m->schema, m->name, m->relid,
					  recover_render_point(&pt, buf, sizeof(buf)));
		if (plan->last_commit_lsn)
			strbuf_printf(&comment, "; last transaction %u committed at LSN %s", plan->last_xid,
						  lsn_format(plan->last_commit_lsn, l1));
		strbuf_printf(&comment, "; base LSN %s", lsn_format(b->lsn, l2));
		memset(&o, 0, sizeof(o));
		o.schema = tschema;
		o.name = tname;
		o.source_schema = m->schema;
		o.source_name = m->name;
		o.layout = layout;
		o.definition = b->definition;
		o.comment = comment.data;
		o.replace = config_get_bool(cfg, CFG_REPLACE);
		o.no_indexes = config_get_bool(cfg, CFG_NO_INDEXES);
		o.progress = &prog;
		/* Streamed, the base's count is the estimate (the changes move it a little). */
		prog.copied_total = streaming ? b->rows : replay_row_count(rs);
		o.memory_limit = res.memory_limit;
		if (streaming)
		{
			rprog.streaming = true;
			src = (stream_source) {plan, st, rs, stream_layout, &rprog};
			o.source = stream_rows;
			o.source_ctx = &src;
		}
		t_load = clock_mono_s();
		if (recover_load(conn, rs, &o, &lres, &err) != BS_OK)
		{
			strbuf_free(&comment);
			rc = fail(&prog, &err);
			goto done;
		}
		progress_done(&prog);
		t_load = clock_mono_s() - t_load;
		strbuf_free(&comment);
	}

	/* With --yes the copy-back runs first, so the result printed says whether it was applied. */
	if (apply && config_get_bool(cfg, CFG_YES) &&
		(rc = apply_copyback(cfg, conn, &ci, &cb, m, target_shown, true, &err)) != EXIT_OK)
		goto done;
	{
		char ours[REPLAY_CHECKSUM_BUFLEN];

		replay_checksum_format(&lres.ours, ours);
		if (json)
		{
			json_t *o = json_object();
			json_t *cba = json_array();
			json_t *warn = json_array();

			for (int i = 0; i < cb.n; i++)
				json_array_append_new(cba, json_pack("{s:s,s:s}", "purpose", cb.what[i], "sql", cb.sql[i]));
			for (char *p = lres.warnings.data, *nl; p && *p; p = nl + 1)
			{
				nl = strchr(p, '\n');
				json_array_append_new(warn, json_stringn(p, (size_t) (nl - p)));
			}
			json_object_set_new(o, "table", json_sprintf("%s.%s", m->schema, m->name));
			json_object_set_new(o, "target", json_sprintf("%s.%s", tschema, tname));
			json_object_set_new(o, "point", json_string(recover_render_point(&pt, buf, sizeof(buf))));
			json_object_set_new(o, "base_lsn", jsonout_lsn(plan->base->lsn));
			json_object_set_new(o, "last_commit_lsn",
								plan->last_commit_lsn ? jsonout_lsn(plan->last_commit_lsn) : json_null());
			json_object_set_new(o, "last_xid", plan->last_commit_lsn ? json_integer(plan->last_xid) : json_null());
			json_object_set_new(o, "last_commit_time",
								plan->last_commit_lsn ? jsonout_time(plan->last_commit_time) : json_null());
			json_object_set_new(o, "transactions", json_integer((json_int_t) plan->transactions));
			json_object_set_new(o, "row_operations", json_integer((json_int_t) plan->operations));
			json_object_set_new(o, "method", json_string(streaming ? "streamed" : "in-memory"));
			replay_spill_stats(rs, &spilled_rows, &spilled_bytes);
			json_object_set_new(o, "memory_limit", json_integer((json_int_t) res.memory_limit));
			json_object_set_new(o, "spilled_rows", json_integer((json_int_t) spilled_rows));
			json_object_set_new(o, "spilled_bytes", json_integer((json_int_t) spilled_bytes));
			json_object_set_new(o, "schema_changes_captured", json_boolean(!recover_plan_ddl_uncaptured(plan)));
			json_object_set_new(o, "rows", json_integer((json_int_t) lres.ours.rows));
			json_object_set_new(o, "checksum", json_string(ours));
			json_object_set_new(o, "postgres_rows", json_integer((json_int_t) lres.pg_rows));
			json_object_set_new(o, "postgres_checksum", json_string(lres.pg_sum));
			json_object_set_new(o, "indexes_and_constraints", json_integer(lres.nindexes));
			json_object_set_new(o, "sequences", json_integer(lres.nsequences));
			json_object_set_new(o, "generated_columns", json_integer(lres.ngenerated));
			json_object_set_new(o, "privileges", json_integer(lres.ngrants));
			json_object_set_new(o, "download_bytes", json_integer((json_int_t) plan->downloaded));
			json_object_set_new(o, "seconds", json_pack("{s:f,s:f,s:f,s:f,s:f}", "fetch_and_replay", t_fetch,
														"copy", lres.copy_seconds, "validate", lres.validate_seconds,
														"indexes", lres.index_seconds, "total", clock_mono_s() - t_start));
			json_object_set_new(o, "phases", progress_phases_json(&prog));
			json_object_set_new(o, "warnings", warn);
			json_object_set_new(o, "copy_back", cba);
			{
				json_t *notes = json_array();

				for (char *p = cb.notes.data, *nl; p && *p && (nl = strchr(p, '\n')); p = nl + 1)
					json_array_append_new(notes, json_stringn(p, (size_t) (nl - p)));
				json_object_set_new(o, "copy_back_notes", notes);
			}
			json_object_set_new(o, "copy_back_applied", json_boolean(apply));
			{
				json_t *ra = json_array();
				json_t *notes = json_array();

				for (int i = 0; i < rr.n; i++)
					json_array_append_new(ra, json_pack("{s:s,s:s}", "purpose", rr.what[i], "sql", rr.sql[i]));
				for (char *p = rr.notes.data, *nl; p && *p && (nl = strchr(p, '\n')); p = nl + 1)
					json_array_append_new(notes, json_stringn(p, (size_t) (nl - p)));
				json_object_set_new(o, "after_copy_back", ra);
				json_object_set_new(o, "after_copy_back_notes", notes);
			}
			jsonout_print(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
			json_decref(o);
		}
		else
		{
			printf("Recovered %s into %s\n", src_shown, target_shown);
			printf("Point:        %s\n", recover_render_point(&pt, buf, sizeof(buf)));
			if (plan->last_commit_lsn)
				printf("Last applied: commit LSN %s, xid %u, %s\n", lsn_format(plan->last_commit_lsn, l1),
					   plan->last_xid, isotime_format(plan->last_commit_time, tm));
			printf("Base copy:    LSN %s (%llu rows), then %llu transactions (%llu row operations) from %d segment(s)\n",
				   lsn_format(plan->base->lsn, l2), (unsigned long long) plan->base->rows,
				   (unsigned long long) plan->transactions, (unsigned long long) plan->operations, plan->nsegs);
			printf("Method:       %s\n", streaming ? "streamed (rows no change touched went from the base copy straight to COPY)"
				   : "rebuilt in memory, then loaded");
			replay_spill_stats(rs, &spilled_rows, &spilled_bytes);
			if (spilled_rows > 0)
				printf("Spilled:      %llu row version(s), %.1f MB, to a temporary file (past --memory-limit)\n",
					   (unsigned long long) spilled_rows, (double) spilled_bytes / 1e6);
			printf("Rows:         %llu (PostgreSQL counted %llu)\n", (unsigned long long) lres.ours.rows,
				   (unsigned long long) lres.pg_rows);
			printf("Checksum:     %s (Backstop) = %s (PostgreSQL)\n", ours, lres.pg_sum);
			{
				strbuf ph = STRBUF_INIT;

				progress_phases_text(&prog, &ph);
				printf("Timings:      %s; total %.2fs\n", ph.data, clock_mono_s() - t_start);
				strbuf_free(&ph);
			}
			printf("Indexes and constraints recreated: %d\n", lres.nindexes);
			if (lres.nsequences || lres.ngenerated || lres.ngrants)
				printf("Also recreated: %d identity or serial sequence(s) (set past the recovered values), "
					   "%d generated column(s), %d privilege(s)\n", lres.nsequences, lres.ngenerated, lres.ngrants);
			if (recover_plan_ddl_uncaptured(plan))
				printf("Note:         schema changes after the table's last row change before the point are not "
					   "captured (the archiver ran without --ddl-capture there): one its table checks found is refused "
					   "as an unknown point; one made after its last check before the point is not in this table\n");
			if (lres.warnings.len)
			{
				/* One line per warning; each holds names and definitions from storage. */
				printf("Warnings:\n");
				for (char *p = lres.warnings.data, *nl; p && *p; p = nl + 1)
				{
					char *line;

					nl = strchr(p, '\n');
					line = nl ? xstrndup(p, (size_t) (nl - p)) : xstrdup(p);
					cli_print_line(line);
					free(line);
					if (nl == NULL)
						break;
				}
			}
			if (apply && config_get_bool(cfg, CFG_YES))
				printf("\nCopy-back SQL (applied in one transaction and validated):\n");
			else if (apply)
				printf("\nCopy-back SQL (to be applied in one transaction once you confirm):\n");
			else
				printf("\nCopy-back SQL (not executed; review, then run it yourself, or use --apply):\n");
			for (int i = 0; i < cb.n; i++)
				printf("\n-- %s\n%s\n", cb.what[i], cb.sql[i]);
			recover_render_notes("Notes", &cb.notes);
			recover_render_after_copy_back(&rr, "\nAfter the copy-back (not executed, not part of --apply): what the recovered table "
					   "cannot hold\n");
			recover_render_notes("Not given as SQL", &rr.notes);
			if (apply && config_get_bool(cfg, CFG_YES))
				printf("\nCopy-back applied to %s and validated.\n", src_shown);
		}
	}
	(void) t_load;
	/* Asked at the terminal: after the plan was shown. */
	if (apply && !config_get_bool(cfg, CFG_YES) &&
		(rc = apply_copyback(cfg, conn, &ci, &cb, m, target_shown, json, &err)) != EXIT_OK)
		goto done;
	rc = EXIT_OK;
done:
	recover_restore_free(&rr);
	copyback_free(&cb);
	copyback_free_columns(cb_columns, cb_ncolumns);
	strbuf_free(&latest_cmd);
	recover_load_result_free(&lres);
	if (conn)
		PQfinish(conn);
	replay_free(rs);
	recover_plan_free(plan);
	free(tschema);
	free(tname);
	free(src_shown);
	free(target_shown);
	free(status_shown);
	if (head_exists)
		archive_head_clear(&head);
	manifest_free(m);
	storage_close(st);
	return rc;
}
