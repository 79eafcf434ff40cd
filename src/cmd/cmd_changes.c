/* cmd_changes.c — `backstop changes`: what transactions did to one or every archived table, by LSN, time or xid. */
#include "cmd_changes.h"
#include "archive_load.h"
#include "clock.h"
#include "audit.h"
#include "cli.h"
#include "isotime.h"
#include "jsonout.h"
#include "lsn.h"
#include "manifest.h"
#include "manifest_head.h"
#include "manifest_store.h"
#include "pgsql.h"
#include "quote.h"
#include "progress.h"
#include "recover_plan.h"
#include "redact.h"
#include "replay.h"
#include "segment.h"
#include "storage.h"
#include "strbuf.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Which transactions: every bound is optional (no upper one: up to the latest archived). */
typedef struct changes_range
{
	bool has_from_lsn;
	uint64_t from_lsn;			/* commits after it */
	bool has_to_lsn;
	uint64_t to_lsn;			/* commits at or before it */
	bool has_since;
	recover_time since;			/* committed after it */
	bool has_until;
	recover_time until;			/* committed at or before it */
	bool has_xid;
	uint32_t xid;
} changes_range;

static bool
in_range(const changes_range *r, const segment_record *rec)
{
	int64_t t = rec->commit_time + RECOVER_PG_EPOCH_UNIX_US;

	return !(r->has_from_lsn && rec->commit_lsn <= r->from_lsn) &&
		!(r->has_to_lsn && rec->commit_lsn > r->to_lsn) &&
		!(r->has_since && t <= r->since.time) &&
		!(r->has_until && t > r->until.time) &&
		!(r->has_xid && rec->xid != r->xid);
}

/* Transactions that committed inside a second given without a fraction (the boundary is
 * its start): the user may have meant the whole second. */
#define SECOND_US INT64_C(1000000)
#define BOUNDARY_MAX 10000

typedef struct boundary
{
	const char *option;
	const recover_time *t;
	int n;						/* distinct transactions (at most BOUNDARY_MAX counted) */
	uint64_t commits[BOUNDARY_MAX];
	uint32_t first_xid;
	uint64_t first_lsn;
} boundary;

static void
boundary_note(boundary *b, const changes_range *r, const segment_record *rec)
{
	int64_t t = rec->commit_time + RECOVER_PG_EPOCH_UNIX_US;
	changes_range others = *r;

	if (b->t == NULL || !b->t->second_precision || t < b->t->time || t >= b->t->time + SECOND_US)
		return;
	/* Counted when every other bound lets it in. */
	others.has_since = others.has_until = false;
	if (!in_range(&others, rec))
		return;
	for (int i = 0; i < b->n; i++)
		if (b->commits[i] == rec->commit_lsn)
			return;
	if (b->n == 0)
	{
		b->first_xid = rec->xid;
		b->first_lsn = rec->commit_lsn;
	}
	if (b->n < BOUNDARY_MAX)
		b->commits[b->n++] = rec->commit_lsn;
}

/*
 * One table's records in commit order, one verified segment in memory at a time: the
 * memory a scan needs does not grow with the range.
 */
typedef struct cursor
{
	manifest *m;
	char *shown;				/* display name, pasteable to --table */
	int seg;					/* the segment loaded or to load next */
	bool loaded;
	strbuf data;
	segment_reader rd;
	uint64_t applied_end;		/* records ending at or before it were seen in an earlier segment */
	uint64_t seg_end;
	uint64_t prev_commit;
	bool have;					/* rec is the next record in range */
	segment_record rec;
	bool done;
	uint64_t downloaded;
} cursor;

typedef struct scan
{
	storage *st;
	const changes_range *r;
	boundary *bounds[2];
	segfetch *sf;				/* packs opened, for every table's pack segments */
} scan;

static int
cursor_next(scan *sc, cursor *c, bs_error *err)
{
	const changes_range *r = sc->r;

	c->have = false;
	while (!c->done)
	{
		bool eof;

		if (!c->loaded)
		{
			const manifest_segment *s;

			if (c->seg >= c->m->nsegments)
			{
				c->done = true;
				break;
			}
			s = &c->m->segments[c->seg];
			if ((r->has_to_lsn && s->first_lsn > r->to_lsn) ||
				(r->has_until && s->first_time > r->until.time + SECOND_US))
			{
				c->done = true;
				break;
			}
			/* Skipped whole when it ends before the range (a second of slack for commit
			 * times, which follow the commit order only closely). */
			if ((r->has_from_lsn && s->last_end_lsn <= r->from_lsn) ||
				(r->has_since && s->last_time + SECOND_US <= r->since.time) ||
				s->last_end_lsn <= c->applied_end)
			{
				c->seg++;
				continue;
			}
			if (recover_fetch_segment(sc->st, sc->sf, c->m->relid, s, &c->data, &c->downloaded, err) != BS_OK)
				return BS_ERR;
			segment_reader_init(&c->rd, c->data.data, c->data.len, err);
			c->loaded = true;
			c->seg_end = c->applied_end;
			c->prev_commit = 0;
		}
		if (segment_reader_next(&c->rd, &c->rec, &eof, err) != BS_OK)
			return error_prefix(err, "segment %s", c->m->segments[c->seg].key);
		if (eof)
		{
			c->applied_end = c->seg_end;
			c->loaded = false;
			strbuf_free(&c->data);
			c->seg++;
			continue;
		}
		if (c->rec.commit_lsn < c->prev_commit)
		{
			char a[LSN_BUFLEN];

			return error_set(err, ERRCODE_DATA_CORRUPTED, "segment %s: record %llu at commit LSN %s is out of commit order",
							 c->m->segments[c->seg].key, (unsigned long long) c->rd.nrecords,
							 lsn_format(c->rec.commit_lsn, a));
		}
		c->prev_commit = c->rec.commit_lsn;
		if (c->rec.end_lsn <= c->applied_end)
			continue;			/* already seen in an earlier, overlapping segment */
		if (c->rec.end_lsn > c->seg_end)
			c->seg_end = c->rec.end_lsn;
		if (r->has_to_lsn && c->rec.commit_lsn > r->to_lsn)
		{
			c->done = true;
			break;
		}
		for (int i = 0; i < 2; i++)
			if (sc->bounds[i])
				boundary_note(sc->bounds[i], r, &c->rec);
		if (!in_range(r, &c->rec))
			continue;
		c->have = true;
		return BS_OK;
	}
	if (c->loaded)
		strbuf_free(&c->data);
	c->loaded = false;
	return BS_OK;
}

/* What one transaction did to one table. */
typedef struct txn_table
{
	cursor *c;
	uint64_t ins,
		upd,
		del,
		trunc;
	bool schema;
} txn_table;

/* The `backstop recover` command that undoes transaction xid on a table: the storage options
 * this command was given (secrets left out: they come from where they came from here). */
static void
append_recover_command(const bs_config *cfg, strbuf *out, const char *shown, uint32_t xid)
{
	static const config_id carried_ids[] = {
		CFG_STORAGE, CFG_S3_ENDPOINT, CFG_S3_REGION, CFG_S3_URI_STYLE, CFG_S3_CA_FILE, CFG_S3_VERIFY_TLS,
		CFG_S3_TIMEOUT, CFG_RETRIES, CFG_RETRY_BASE_DELAY
	};

	strbuf_append_str(out, "backstop recover");
	if (cfg->config_file)
	{
		strbuf_append_str(out, " --config ");
		strbuf_append_shell_word(out, cfg->config_file);
	}
	for (size_t i = 0; i < sizeof(carried_ids) / sizeof(carried_ids[0]); i++)
	{
		config_id id = carried_ids[i];
		const config_option *opt = &config_options[id];
		const config_value *v;

		/* The storage URL is flagged secret for the credentials it may hold: redacted below. */
		if (opt->secret && id != CFG_STORAGE)
			continue;
		v = &cfg->values[id];
		/* The storage always (its default depends on --data-dir); the others when given. */
		if (v->value == NULL || (v->source == SOURCE_DEFAULT && id != CFG_STORAGE) ||
			v->source == SOURCE_FILE)
			continue;
		{
			char *val = redact_text(v->value);

			strbuf_append_str(out, " --");
			for (const char *k = opt->name; *k; k++)
				strbuf_append_char(out, *k == '_' ? '-' : *k);
			strbuf_append_char(out, ' ');
			strbuf_append_shell_word(out, val);
			free(val);
		}
	}
	strbuf_append_str(out, " --table ");
	strbuf_append_shell_word(out, shown);
	strbuf_printf(out, " --to-xid %u --exclusive", xid);
}

typedef struct summary_out
{
	const bs_config *cfg;
	bool json;
	uint64_t count;
	strbuf line;
	progress *prog;
} summary_out;

static void
emit_transaction(summary_out *so, uint64_t commit_lsn, uint32_t xid, int64_t t, const txn_table *tt, int ntt)
{
	char lsn[LSN_BUFLEN],
		lt[RECOVER_TIME_BUFLEN];

	so->count++;
	if (so->json)
	{
		json_t *o = json_object();
		json_t *tables = json_array();
		json_t *undo = json_array();
		char *s;

		json_object_set_new(o, "commit_time", jsonout_time(t));
		json_object_set_new(o, "commit_time_local", json_string(recover_format_local_time(t, lt)));
		json_object_set_new(o, "commit_lsn", jsonout_lsn(commit_lsn));
		json_object_set_new(o, "xid", json_integer(xid));
		for (int i = 0; i < ntt; i++)
		{
			strbuf_reset(&so->line);
			append_recover_command(so->cfg, &so->line, tt[i].c->shown, xid);
			json_array_append_new(tables, json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:b}",
													"table", tt[i].c->shown, "schema", tt[i].c->m->schema,
													"name", tt[i].c->m->name,
													"inserted", (json_int_t) tt[i].ins, "updated", (json_int_t) tt[i].upd,
													"deleted", (json_int_t) tt[i].del, "truncates", (json_int_t) tt[i].trunc,
													"schema_change", tt[i].schema));
			json_array_append_new(undo, json_string(so->line.data));
		}
		json_object_set_new(o, "tables", tables);
		json_object_set_new(o, "undo", undo);
		s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		printf("%s    %s", so->count > 1 ? ",\n" : "", s);
		free(s);
		json_decref(o);
		return;
	}
	progress_clear(so->prog);
	strbuf_reset(&so->line);
	strbuf_printf(&so->line, "%s  LSN %s  xid %u ", recover_format_local_time(t, lt), lsn_format(commit_lsn, lsn), xid);
	for (int i = 0; i < ntt; i++)
	{
		strbuf_printf(&so->line, " %s", tt[i].c->shown);
		if (tt[i].ins || tt[i].upd || tt[i].del || (!tt[i].trunc && !tt[i].schema))
			strbuf_printf(&so->line, " +%llu ~%llu -%llu", (unsigned long long) tt[i].ins,
						  (unsigned long long) tt[i].upd, (unsigned long long) tt[i].del);
		if (tt[i].trunc)
			strbuf_append_str(&so->line, " TRUNCATE");
		if (tt[i].schema)
			strbuf_append_str(&so->line, " SCHEMA-CHANGE");
		strbuf_append_char(&so->line, ';');
	}
	strbuf_append_str(&so->line, "  undo:");
	for (int i = 0; i < ntt; i++)
	{
		strbuf_append_str(&so->line, i ? " && " : " ");
		append_recover_command(so->cfg, &so->line, tt[i].c->shown, xid);
	}
	/* Names may hold anything: escaped, so one transaction is one line. */
	cli_print_line(so->line.data);
}

/* Rebuilding the table up to the range (recover_progress_cb). */
static void
on_progress(void *ctx, const recover_plan *plan, uint64_t applied)
{
	progress *p = ctx;

	p->bytes_done = plan->downloaded;
	p->bytes_total = plan->download_bytes;
	p->applied = applied;
	progress_update(p);
}

/* Merge the tables' records in commit order, one summary per transaction. */
static int
run_summary(scan *sc, cursor *cs, int n, summary_out *so, bs_error *err)
{
	txn_table *tt = xcalloc((size_t) n + 1, sizeof(txn_table));
	int rc = BS_ERR;

	for (int i = 0; i < n; i++)
		if (cursor_next(sc, &cs[i], err) != BS_OK)
			goto out;
	for (;;)
	{
		cursor *min = NULL;
		uint64_t commit;
		uint32_t xid;
		int64_t t;
		int ntt = 0;

		for (int i = 0; i < n; i++)
			if (cs[i].have && (min == NULL || cs[i].rec.commit_lsn < min->rec.commit_lsn))
				min = &cs[i];
		if (min == NULL)
			break;
		commit = min->rec.commit_lsn;
		xid = min->rec.xid;
		t = min->rec.commit_time + RECOVER_PG_EPOCH_UNIX_US;
		for (int i = 0; i < n; i++)
		{
			cursor *c = &cs[i];
			txn_table *e;

			if (!c->have || c->rec.commit_lsn != commit)
				continue;
			e = &tt[ntt++];
			memset(e, 0, sizeof(*e));
			e->c = c;
			while (c->have && c->rec.commit_lsn == commit)
			{
				const manifest_layout *l = manifest_layout_by_id(c->m, c->rec.layout_id);

				switch (c->rec.op)
				{
					case 'I': e->ins++; break;
					case 'U': e->upd++; break;
					case 'D': e->del++; break;
					case 'T': e->trunc++; break;
				}
				/* A layout first used by this transaction: it changed the columns or key. */
				if (l && l != &c->m->layouts[0] && l->from_lsn == commit)
					e->schema = true;
				if (cursor_next(sc, c, err) != BS_OK)
					goto out;
			}
		}
		emit_transaction(so, commit, xid, t, tt, ntt);
		if (so->prog->draw)
		{
			so->prog->items_done = so->count;
			so->prog->bytes_done = 0;
			for (int i = 0; i < n; i++)
				so->prog->bytes_done += cs[i].downloaded;
			progress_update(so->prog);
		}
	}
	rc = BS_OK;
out:
	free(tt);
	return rc;
}

typedef struct changes_ctx
{
	const changes_range *r;
	bool json;
	json_t *list;
	uint64_t count;
	strbuf line;
	progress *prog;
} changes_ctx;

static const char *
op_name(char op)
{
	switch (op)
	{
		case 'I': return "INSERT";
		case 'U': return "UPDATE";
		case 'D': return "DELETE";
		case 'T': return "TRUNCATE";
	}
	return "?";
}

static json_t *
image_json(const replay_change *ch, const replay_value *v)
{
	json_t *o = json_object();

	for (int i = 0; i < ch->ncols; i++)
	{
		json_t *val;

		if (v[i].isnull)
			val = json_null();
		else
		{
			val = json_stringn(v[i].data, v[i].len);
			if (val == NULL)	/* not UTF-8: show it as the hex of its bytes */
			{
				strbuf sb = STRBUF_INIT;

				strbuf_append_str(&sb, "\\x");
				for (uint32_t k = 0; k < v[i].len; k++)
					strbuf_printf(&sb, "%02x", (unsigned char) v[i].data[k]);
				val = json_string(sb.data);
				strbuf_free(&sb);
			}
		}
		json_object_set_new(o, ch->layout->columns[i].name, val);
	}
	return o;
}

static int
on_change(void *vctx, const replay_change *ch, bs_error *err)
{
	changes_ctx *c = vctx;
	char lsn[LSN_BUFLEN],
		tm[ISOTIME_BUFLEN];
	int64_t t = ch->rec->commit_time + RECOVER_PG_EPOCH_UNIX_US;

	(void) err;
	if (!in_range(c->r, ch->rec))
		return BS_OK;
	c->count++;
	if (c->json)
	{
		json_t *o = json_object();

		json_object_set_new(o, "op", json_string(op_name(ch->rec->op)));
		json_object_set_new(o, "commit_lsn", jsonout_lsn(ch->rec->commit_lsn));
		json_object_set_new(o, "xid", json_integer(ch->rec->xid));
		json_object_set_new(o, "commit_time", jsonout_time(t));
		if (ch->rec->op == 'T')
			json_object_set_new(o, "rows_removed", json_integer((json_int_t) ch->truncated_rows));
		json_object_set_new(o, "old", ch->old_values ? image_json(ch, ch->old_values) : json_null());
		json_object_set_new(o, "new", ch->new_values ? image_json(ch, ch->new_values) : json_null());
		json_array_append_new(c->list, o);
		return BS_OK;
	}
	progress_clear(c->prog);
	strbuf_reset(&c->line);
	strbuf_printf(&c->line, "%s  xid %u  %s  %-8s", lsn_format(ch->rec->commit_lsn, lsn), ch->rec->xid,
				  isotime_format(t, tm), op_name(ch->rec->op));
	if (ch->rec->op == 'T')
		strbuf_printf(&c->line, " %llu row(s) removed", (unsigned long long) ch->truncated_rows);
	if (ch->old_values)
	{
		strbuf_append_str(&c->line, " old ");
		replay_record_text(&c->line, ch->ncols, ch->old_values);
	}
	if (ch->new_values)
	{
		strbuf_append_str(&c->line, " new ");
		replay_record_text(&c->line, ch->ncols, ch->new_values);
	}
	/* Values may hold newlines: escaped, so that one change is one line and a value cannot
	 * pass for another change. */
	cli_print_line(c->line.data);
	return BS_OK;
}


static void
free_cursors(cursor *cs, int n)
{
	for (int i = 0; i < n; i++)
	{
		manifest_free(cs[i].m);
		free(cs[i].shown);
		strbuf_free(&cs[i].data);
	}
	free(cs);
}

/* Every archived table (those skipped by the archiver have nothing to show), refusing when
 * head.json records a manifest that storage no longer holds. */
static int
load_all_tables(storage *st, const archive_head *head, cursor **out, int *nout, bs_error *err)
{
	archive_tables *all = NULL;
	const uint32_t *relids;
	int n = 0;
	cursor *cs;
	int nc = 0;

	*out = NULL;
	*nout = 0;
	/* The manifests (formats 1 and 2), or one view of the catalog and the log (format 3). */
	if (archive_tables_open(st, head, &all, err) != BS_OK)
		return BS_ERR;
	relids = archive_tables_relids(all, &n);
	if (head)
		for (int i = 0; i < head->ntables; i++)
		{
			bool listed = false;

			for (int k = 0; k < n && !listed; k++)
				listed = relids[k] == head->tables[i].relid;
			if (!listed)
			{
				error_set(err, ERRCODE_DATA_CORRUPTED,
						  "the archive is damaged: head.json records generation %llu of the manifest of %s.%s "
						  "(relid %u), which storage no longer holds: its changes cannot be listed",
						  (unsigned long long) head->tables[i].generation, head->tables[i].schema,
						  head->tables[i].name, head->tables[i].relid);
				archive_tables_free(all);
				return BS_ERR;
			}
		}
	cs = xcalloc((size_t) n + 1, sizeof(cursor));
	for (int i = 0; i < n; i++)
	{
		manifest *m = NULL;
		bool exists = false;

		if (archive_tables_load(all, relids[i], &m, &exists, err) != BS_OK)
		{
			free_cursors(cs, nc);
			archive_tables_free(all);
			return BS_ERR;
		}
		if (!exists)
			continue;
		if (strcmp(m->status, "skipped") == 0)
		{
			manifest_free(m);
			continue;
		}
		cs[nc].m = m;
		cs[nc].shown = quote_display_name(m->schema, m->name);
		nc++;
	}
	archive_tables_free(all);
	*out = cs;
	*nout = nc;
	return BS_OK;
}

static int
parse_range(const bs_config *cfg, changes_range *r, const char **msg)
{
	const char *from = config_get(cfg, CFG_FROM_LSN);
	const char *to = config_get(cfg, CFG_TO_LSN);
	const char *since = config_get(cfg, CFG_SINCE);
	const char *until = config_get(cfg, CFG_UNTIL);
	const char *xid = config_get(cfg, CFG_XID);
	int64_t now = clock_unix_us();

	memset(r, 0, sizeof(*r));
	if (from)
	{
		r->has_from_lsn = true;
		if (lsn_parse(from, &r->from_lsn) != BS_OK)
			return (*msg = "--from-lsn must be an LSN such as 0/1A2B3C4", BS_ERR);
	}
	if (to)
	{
		r->has_to_lsn = true;
		if (lsn_parse(to, &r->to_lsn) != BS_OK)
			return (*msg = "--to-lsn must be an LSN such as 0/1A2B3C4", BS_ERR);
	}
	if (r->has_from_lsn && r->has_to_lsn && r->from_lsn >= r->to_lsn)
		return (*msg = "--from-lsn must be before --to-lsn", BS_ERR);
	if (since)
	{
		r->has_since = true;
		if (recover_parse_time_at(since, now, &r->since) != BS_OK)
			return (*msg = "--since must be a time such as \"2026-11-26 16:00:00\" (your time zone unless an offset "
					"is given), \"20 min ago\" or \"now\"", BS_ERR);
	}
	if (until)
	{
		r->has_until = true;
		if (recover_parse_time_at(until, now, &r->until) != BS_OK)
			return (*msg = "--until must be a time such as \"2026-11-26 16:00:00\" (your time zone unless an offset "
					"is given), \"20 min ago\" or \"now\"", BS_ERR);
	}
	if (r->has_since && r->has_until && r->since.time >= r->until.time)
		return (*msg = "--since must be before --until", BS_ERR);
	if (xid)
	{
		char *end;
		unsigned long long v = strtoull(xid, &end, 10);

		if (*xid < '0' || *xid > '9' || *end != '\0' || v > UINT32_MAX)
			return (*msg = "--xid must be a transaction id (a decimal number)", BS_ERR);
		r->has_xid = true;
		r->xid = (uint32_t) v;
	}
	return BS_OK;
}

/* "after X through Y" for the header. */
static void
describe_range(const changes_range *r, uint64_t latest, strbuf *out)
{
	char a[LSN_BUFLEN],
		t[RECOVER_TIME_BUFLEN];

	if (r->has_xid)
		strbuf_printf(out, "transaction %u, ", r->xid);
	strbuf_append_str(out, "committed");
	if (r->has_from_lsn)
		strbuf_printf(out, " after LSN %s", lsn_format(r->from_lsn, a));
	if (r->has_since)
		strbuf_printf(out, "%s after %s", r->has_from_lsn ? " and" : "", recover_format_local_time(r->since.time, t));
	if (r->has_to_lsn)
		strbuf_printf(out, " through LSN %s", lsn_format(r->to_lsn, a));
	if (r->has_until)
		strbuf_printf(out, "%s through %s", r->has_to_lsn ? " and" : "", recover_format_local_time(r->until.time, t));
	if (!r->has_to_lsn && !r->has_until)
		strbuf_printf(out, " through the latest archived point (LSN %s)", lsn_format(latest, a));
}

/* Say when a whole-seconds bound has commits inside its second. */
static void
warn_boundary(const boundary *b, bool included)
{
	char t[RECOVER_TIME_BUFLEN],
		l[LSN_BUFLEN];

	if (b->t == NULL || b->n == 0)
		return;
	fprintf(stderr, "backstop changes: WARNING: %s %s has whole seconds only, and %s%d transaction(s) committed "
			"inside that second (the first: xid %u at LSN %s); they are %s: give fractional seconds to be exact\n",
			b->option, recover_format_local_time(b->t->time, t), b->n >= BOUNDARY_MAX ? "at least " : "", b->n,
			b->first_xid, lsn_format(b->first_lsn, l), included ? "listed" : "not listed");
}

int
cmd_changes(bs_config *cfg, int argc, char **argv)
{
	const char *table = config_get(cfg, CFG_TABLE);
	bool json = config_get_bool(cfg, CFG_JSON);
	bool summary = config_get_bool(cfg, CFG_SUMMARY) || table == NULL;
	changes_range r;
	const char *msg = NULL;
	bs_error err;
	storage *st = NULL;
	archive_head head;
	bool head_exists = false;
	cursor *cs = NULL;
	int ncs = 0;
	uint64_t latest = 0;
	recover_plan *plan = NULL;
	replay_state *rs = NULL;
	progress prog;
	changes_ctx c = {&r, json, NULL, 0, STRBUF_INIT, &prog};
	summary_out so = {cfg, json, 0, STRBUF_INIT, &prog};
	boundary *bsince = NULL,
		*buntil = NULL;
	scan sc;
	bool listing = false;		/* rows have started on stdout */
	int rc = EXIT_FAILURE_RUNTIME;
	char zone[160];
	strbuf what = STRBUF_INIT;

	(void) argv;
	error_clear(&err);
	memset(&head, 0, sizeof(head));
	memset(&sc, 0, sizeof(sc));
	progress_init(&prog, "changes", progress_wanted(json));
	if (argc > 0)
		return cli_usage_error("changes", "changes takes no positional arguments");
	if (parse_range(cfg, &r, &msg) != BS_OK)
		return cli_usage_error("changes", "%s", msg);
	recover_describe_zone(clock_unix_us(), zone, sizeof(zone));

	if ((rc = cli_open_storage("changes", cfg, &st)) != EXIT_OK)
		goto done;
	rc = EXIT_FAILURE_RUNTIME;
	/* Formats 1 and 2 through the manifests as before; format 3 through the catalog and the
	 * packs after it (archive_load). */
	if (archive_head_load_any(st, &head, &head_exists, &err) != BS_OK)
		goto failed;
	if (table)
	{
		manifest *m = NULL;

		if (archive_load_find_at(st, head_exists ? &head : NULL, table, UINT64_MAX, &m, &err) != BS_OK)
			goto failed;
		cs = xcalloc(1, sizeof(cursor));
		cs[0].m = m;
		cs[0].shown = quote_display_name(m->schema, m->name);
		ncs = 1;
	}
	else if (load_all_tables(st, head_exists ? &head : NULL, &cs, &ncs, &err) != BS_OK)
		goto failed;
	else if (ncs == 0 && !head_exists)
	{
		/* Nothing at all there is a mistyped URL, not an archive without transactions. */
		storage_keys keys = {0};
		bool none;

		if (storage_list(st, "tables/", storage_collect_key, &keys, &err) != BS_OK)
			goto failed;
		none = keys.count == 0;
		storage_keys_free(&keys);
		if (none)
		{
			char *where = redact_text(storage_describe(st));

			error_set(&err, ERRCODE_UNDEFINED_OBJECT, "no archive at %s", where);
			free(where);
			goto failed;
		}
	}

	/* Each table's range must be whole by the archive's own account. */
	for (int i = 0; i < ncs; i++)
	{
		manifest *m = cs[i].m;
		uint64_t lo = r.has_from_lsn ? r.from_lsn + 1 : 0;
		uint64_t hi = r.has_to_lsn ? r.to_lsn + 1 : UINT64_MAX;
		uint64_t top = audit_complete_to(m, head_exists ? &head : NULL);
		audit_report audit;
		const manifest_gap *g;

		if (top > latest)
			latest = top;
		if (audit_table(st, m, head_exists ? &head : NULL, NULL, 0, &audit, &err) != BS_OK)
			goto failed;
		if (audit_check_range(&audit, m, lo, hi, &err) != BS_OK)
		{
			audit_report_free(&audit);
			goto failed;
		}
		audit_report_free(&audit);
		if ((g = manifest_gap_in(m, lo, hi)) != NULL)
		{
			char a[LSN_BUFLEN],
				b[LSN_BUFLEN];

			fprintf(stderr, "backstop changes: WARNING: changes to %s committed from LSN %s to %s were never archived "
					"(archiving resumed with a new base copy: from a new replication slot, or after the table was out of "
					"the archived set): transactions there are missing from this list\n",
					cs[i].shown, lsn_format(g->from, a), lsn_format(g->to, b));
		}
	}

	memset(&sc, 0, sizeof(sc));
	sc.st = st;
	sc.r = &r;
	sc.sf = segfetch_new();
	if (r.has_since && r.since.second_precision)
	{
		bsince = xcalloc(1, sizeof(boundary));
		bsince->option = "--since";
		bsince->t = &r.since;
		sc.bounds[0] = bsince;
	}
	if (r.has_until && r.until.second_precision)
	{
		buntil = xcalloc(1, sizeof(boundary));
		buntil->option = "--until";
		buntil->t = &r.until;
		sc.bounds[1] = buntil;
	}
	describe_range(&r, latest, &what);

	if (summary)
	{
		if (json)
		{
			char *z = NULL;
			json_t *zs = json_string(zone);

			z = json_dumps(zs, JSON_ENCODE_ANY);
			json_decref(zs);
			zs = json_string(what.data);
			printf("{\n  \"time_zone\": %s,\n", z);
			free(z);
			z = json_dumps(zs, JSON_ENCODE_ANY);
			json_decref(zs);
			printf("  \"range\": %s,\n  \"latest_lsn\": \"%X/%X\",\n  \"transactions\": [\n", z,
				   (unsigned) (latest >> 32), (unsigned) latest);
			free(z);
		}
		else
		{
			strbuf hdr = STRBUF_INIT;
			char *shown;

			if (table)
				strbuf_printf(&hdr, "Transactions on %s, %s", cs[0].shown, what.data);
			else
				strbuf_printf(&hdr, "Transactions on all %d archived table(s), %s", ncs, what.data);
			shown = xstrdup_printable(hdr.data);
			printf("%s\nTimes in %s\n", shown, zone);
			free(shown);
			strbuf_free(&hdr);
		}
		listing = true;
		prog.items_unit = "transactions listed";
		progress_phase(&prog, "scan");
		if (run_summary(&sc, cs, ncs, &so, &err) != BS_OK)
			goto failed;
		progress_done(&prog);
		if (json)
			printf("\n  ],\n  \"count\": %llu\n}\n", (unsigned long long) so.count);
		else
			printf("%llu transaction(s)\n", (unsigned long long) so.count);
	}
	else
	{
		/* The row images need the table rebuilt up to the range: replay from a base that
		 * holds nothing from the range's first transaction on, through its last. */
		recover_point pt;
		uint64_t first = 0,
			last = 0;
		cursor *k = &cs[0];
		bool lsn_only = !r.has_since && !r.has_until && !r.has_xid;
		strbuf hdr = STRBUF_INIT;

		if (!json)
		{
			char a[LSN_BUFLEN],
				b[LSN_BUFLEN];

			if (lsn_only && r.has_from_lsn && r.has_to_lsn)
				strbuf_printf(&hdr, "Changes to %s after LSN %s through %s:", k->shown, lsn_format(r.from_lsn, a),
							  lsn_format(r.to_lsn, b));
			else
				strbuf_printf(&hdr, "Changes to %s, %s (times read in %s):", k->shown, what.data, zone);
			cli_print_line(hdr.data);
			strbuf_free(&hdr);
			listing = true;
		}
		else
			c.list = json_array();
		if (lsn_only)
		{
			/* As the range says; the plan refuses an end outside the recovery window. */
			first = r.has_from_lsn ? r.from_lsn + 1 : (k->m->nbases ? k->m->bases[0].lsn : 1);
			last = r.has_to_lsn ? r.to_lsn : UINT64_MAX;
		}
		else
		{
			/* The range's first and last transactions, from the segments. */
			progress_phase(&prog, "scan");
			if (cursor_next(&sc, k, &err) != BS_OK)
				goto failed;
			while (k->have)
			{
				if (first == 0)
					first = k->rec.commit_lsn;
				last = k->rec.commit_lsn;
				if (cursor_next(&sc, k, &err) != BS_OK)
					goto failed;
				prog.bytes_done = k->downloaded;
				progress_update(&prog);
			}
		}
		if (first)
		{
			memset(&pt, 0, sizeof(pt));
			pt.kind = last == UINT64_MAX ? RECOVER_POINT_LATEST : RECOVER_POINT_LSN;
			pt.lsn = last;
			pt.base_limit = first;
			if (recover_plan_build(st, k->m, head_exists ? &head : NULL, &pt, NULL, &plan, &err) != BS_OK ||
				replay_new(k->m->nlayouts, k->m->layouts, &rs, &err) != BS_OK)
				goto failed;
			progress_phase(&prog, "replay");
			if (recover_plan_run(plan, st, rs, first - 1, on_change, &c, on_progress, &prog, &err) != BS_OK)
				goto failed;
		}
		progress_done(&prog);
		if (json)
		{
			json_t *o = json_object();

			json_object_set_new(o, "table", json_sprintf("%s.%s", k->m->schema, k->m->name));
			json_object_set_new(o, "time_zone", json_string(zone));
			json_object_set_new(o, "range", json_string(what.data));
			if (r.has_from_lsn)
				json_object_set_new(o, "from_lsn", jsonout_lsn(r.from_lsn));
			if (r.has_to_lsn)
				json_object_set_new(o, "to_lsn", jsonout_lsn(r.to_lsn));
			json_object_set_new(o, "changes", c.list);
			c.list = NULL;
			jsonout_print(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
			json_decref(o);
		}
		else
			printf("%llu change(s)\n", (unsigned long long) c.count);
	}
	fflush(stdout);
	if (bsince)
		warn_boundary(bsince, true);
	if (buntil)
		warn_boundary(buntil, false);
	rc = EXIT_OK;
	goto done;
failed:
	progress_done(&prog);
	/* Lines already printed are not the whole range: say so where they are, last. */
	if (listing && !json)
		printf("INCOMPLETE: the list stops after %llu %s because of an error; %s after that point are missing\n",
			   (unsigned long long) (summary ? so.count : c.count), summary ? "transaction(s)" : "change(s)",
			   summary ? "transactions" : "changes");
	fflush(stdout);
	cli_report_error("changes", &err);
	rc = cli_exit_code(&err, recover_error_is_integrity(&err) ? EXIT_INTEGRITY : EXIT_FAILURE_RUNTIME);
done:
	segfetch_free(sc.sf);
	free(bsince);
	free(buntil);
	strbuf_free(&what);
	json_decref(c.list);
	strbuf_free(&c.line);
	strbuf_free(&so.line);
	replay_free(rs);
	recover_plan_free(plan);
	free_cursors(cs, ncs);
	if (head_exists)
		archive_head_clear(&head);
	storage_close(st);
	return rc;
}
