/* cmd_changes.c — `backstop changes`: rows inserted, updated and deleted in an LSN range, with full images. */
#include "cmd_changes.h"
#include "audit.h"
#include "cli.h"
#include "lsn.h"
#include "manifest.h"
#include "pgsql.h"
#include "recover_plan.h"
#include "replay.h"
#include "storage.h"
#include "strbuf.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
usage(const char *msg)
{
	fprintf(stderr, "backstop changes: ERROR: %s\n"
			"Usage: backstop changes [--storage URL] --table S.T --from-lsn A --to-lsn B [--json]\n", msg);
	return EXIT_USAGE;
}

typedef struct changes_ctx
{
	bool json;
	json_t *list;
	uint64_t count;
	strbuf line;
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
		tm[MANIFEST_TIME_BUFLEN];
	int64_t t = ch->rec->commit_time + RECOVER_PG_EPOCH_UNIX_US;

	(void) err;
	c->count++;
	if (c->json)
	{
		json_t *o = json_object();

		json_object_set_new(o, "op", json_string(op_name(ch->rec->op)));
		json_object_set_new(o, "commit_lsn", manifest_json_lsn(ch->rec->commit_lsn));
		json_object_set_new(o, "xid", json_integer(ch->rec->xid));
		json_object_set_new(o, "commit_time", manifest_json_time(t));
		if (ch->rec->op == 'T')
			json_object_set_new(o, "rows_removed", json_integer((json_int_t) ch->truncated_rows));
		json_object_set_new(o, "old", ch->old_values ? image_json(ch, ch->old_values) : json_null());
		json_object_set_new(o, "new", ch->new_values ? image_json(ch, ch->new_values) : json_null());
		json_array_append_new(c->list, o);
		return BS_OK;
	}
	strbuf_reset(&c->line);
	strbuf_printf(&c->line, "%s  xid %u  %s  %-8s", lsn_format(ch->rec->commit_lsn, lsn), ch->rec->xid,
				  manifest_format_time(t, tm), op_name(ch->rec->op));
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
	{
		char *shown = xstrdup_printable(c->line.data);

		printf("%s\n", shown);
		free(shown);
	}
	return BS_OK;
}

int
cmd_changes(bs_config *cfg, int argc, char **argv)
{
	const char *table = config_get(cfg, "table");
	const char *from = config_get(cfg, "from_lsn");
	const char *to = config_get(cfg, "to_lsn");
	bool json = config_get_bool(cfg, "json");
	recover_point pt;
	uint64_t a,
		b;
	bs_error err;
	storage *st = NULL;
	manifest *m = NULL;
	archive_head head;
	bool head_exists = false;
	recover_plan *plan = NULL;
	replay_state *rs = NULL;
	changes_ctx c = {json, NULL, 0, STRBUF_INIT};
	bool listing = false;		/* text rows have started on stdout */
	int rc = EXIT_FAILURE_RUNTIME;
	char la[LSN_BUFLEN],
		lb[LSN_BUFLEN];

	(void) argv;
	error_clear(&err);
	memset(&head, 0, sizeof(head));
	if (argc > 0)
		return usage("changes takes no positional arguments");
	if (table == NULL || from == NULL || to == NULL)
		return usage("--table, --from-lsn and --to-lsn are required");
	if (lsn_parse(from, &a) != BS_OK || lsn_parse(to, &b) != BS_OK)
		return usage("--from-lsn and --to-lsn must be LSNs such as 0/1A2B3C4");
	if (a >= b)
		return usage("--from-lsn must be before --to-lsn");
	memset(&pt, 0, sizeof(pt));
	pt.kind = RECOVER_POINT_LSN;
	pt.lsn = b;
	/* The state must be rebuilt up to A first, so the base must hold nothing after A. */
	pt.base_limit = a + 1;

	if ((rc = cli_open_storage("changes", cfg, &st)) != EXIT_OK)
		goto done;
	rc = EXIT_FAILURE_RUNTIME;
	if (archive_head_load(st, &head, &head_exists, &err) != BS_OK ||
		audit_find_table(st, head_exists ? &head : NULL, table, &m, &err) != BS_OK ||
		recover_plan_build(st, m, head_exists ? &head : NULL, &pt, &plan, &err) != BS_OK ||
		replay_new(m->nlayouts, m->layouts, &rs, &err) != BS_OK)
		goto failed;
	if (json)
		c.list = json_array();
	else
	{
		char *name = pgsql_display_name(m->schema, m->name);

		printf("Changes to %s after LSN %s through %s:\n", name, lsn_format(a, la), lsn_format(b, lb));
		free(name);
		listing = true;
	}
	if (recover_plan_run(plan, st, rs, a, on_change, &c, NULL, NULL, &err) != BS_OK)
		goto failed;
	if (json)
	{
		json_t *o = json_object();
		char *s;

		json_object_set_new(o, "table", json_sprintf("%s.%s", m->schema, m->name));
		json_object_set_new(o, "from_lsn", manifest_json_lsn(a));
		json_object_set_new(o, "to_lsn", manifest_json_lsn(b));
		json_object_set_new(o, "changes", c.list);
		c.list = NULL;
		s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		printf("%s\n", s);
		free(s);
		json_decref(o);
	}
	else
		printf("%llu change(s)\n", (unsigned long long) c.count);
	rc = EXIT_OK;
	goto done;
failed:
	/* Rows already printed are not the whole range: say so where they are, last. */
	if (listing)
		printf("INCOMPLETE: the list stops after %llu change(s) because of an error; "
			   "changes after that point are missing\n", (unsigned long long) c.count);
	fflush(stdout);
	cli_report_error("changes", &err);
	rc = cli_exit_code(&err, recover_error_is_integrity(&err) ? EXIT_INTEGRITY : EXIT_FAILURE_RUNTIME);
done:
	json_decref(c.list);
	strbuf_free(&c.line);
	replay_free(rs);
	recover_plan_free(plan);
	if (head_exists)
		archive_head_clear(&head);
	manifest_free(m);
	storage_close(st);
	return rc;
}
