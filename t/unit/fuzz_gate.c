/* fuzz_gate.c — libFuzzer target for the SQL gate: every input gets a consistent decision, no crash, no leak. */
#include "gate.h"
#include "policy.h"
#include "strbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A catalog that knows every relation, so the resolution, reach and column paths run too. */
static uint32_t
name_oid(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char) *s) * 16777619u;
	return 16384 + h % 100000;
}

static int
f_relation(void *arg, const char *schema, const char *name, bool *found, gate_rel *out, bs_error *err)
{
	(void) arg;
	(void) err;
	*found = name[0] != 'x';
	if (*found)
	{
		out->oid = name_oid(name);
		out->nspname = xstrdup(schema ? schema : "public");
		out->relname = xstrdup(name);
		out->relkind = name[0] == 'p' ? 'p' : name[0] == 'f' ? 'f' : 'r';
		out->temp = name[0] == 't';
	}
	return BS_OK;
}

static int
f_reach(void *arg, gate_reach how, uint32_t oid, const char *name, gate_rel **out, int *n, bs_error *err)
{
	(void) arg;
	(void) how;
	(void) name;
	(void) err;
	*out = xcalloc(1, sizeof(gate_rel));
	*n = oid % 2;
	if (*n)
	{
		(*out)[0].oid = oid + 1;
		(*out)[0].nspname = xstrdup("public");
		(*out)[0].relname = xstrdup("child");
		(*out)[0].relkind = 'r';
	}
	return BS_OK;
}

static int
f_column(void *arg, uint32_t reloid, const char *column, gate_column *out, bs_error *err)
{
	(void) arg;
	(void) err;
	out->exists = true;
	out->notnull = (reloid + strlen(column)) % 2 == 0;
	out->serial = column[0] == 'i';
	return BS_OK;
}

static int
f_functions(void *arg, const char *schema, const char *name, gate_func **out, int *n, bs_error *err)
{
	(void) arg;
	(void) schema;
	(void) err;
	*out = xcalloc(1, sizeof(gate_func));
	*n = 1;
	(*out)[0].oid = name_oid(name);
	(*out)[0].nspname = xstrdup(name[0] == 'l' ? "pg_catalog" : "public");
	(*out)[0].name = xstrdup(name);
	(*out)[0].kind = 'f';
	(*out)[0].volatility = name[0] == 's' ? 's' : 'v';
	(*out)[0].language = xstrdup(name[0] == 'c' ? "c" : "plpgsql");
	if (name[0] == 'g')
		(*out)[0].definition = xstrdup("CREATE OR REPLACE FUNCTION public.g() RETURNS void LANGUAGE plpgsql AS "
									   "$f$BEGIN DELETE FROM t WHERE id > 0; PERFORM g(); END$f$");
	return BS_OK;
}

static int
f_triggers(void *arg, uint32_t reloid, int events, gate_func **out, int *n, bs_error *err)
{
	(void) arg;
	(void) reloid;
	(void) events;
	(void) err;
	*out = NULL;
	*n = 0;
	return BS_OK;
}

static const gate_catalog fake = {NULL, f_relation, f_reach, f_column, f_functions, f_triggers};

static void
check(const gate_result *r, size_t len)
{
	gate_level top = GATE_SAFE;
	bool refuse = false;
	policy *p = policy_default();

	for (int i = 0; i < r->nstmts; i++)
	{
		const gate_stmt *st = &r->stmts[i];
		gate_level lv = GATE_SAFE;
		bool refusal = false;
		policy_decision d;

		if (st->offset > len || st->offset + st->length > len || st->command == NULL)
			abort();
		for (int k = 0; k < st->nreasons; k++)
		{
			const gate_reason *rs = &st->reasons[k];

			if (rs->text == NULL || rs->target >= st->ntargets || (int) rs->level < 0 || rs->level > GATE_CRITICAL)
				abort();
			lv = rs->level > lv ? rs->level : lv;
			refusal |= rs->refusal;
		}
		for (int k = 0; k < st->ntargets; k++)
		{
			char *dn = gate_target_display(&st->targets[k]);

			if (st->targets[k].name == NULL || dn == NULL || st->targets[k].via >= st->ntargets)
				abort();
			free(dn);
		}
		if (lv != st->level || (st->refuse && (!refusal || st->level != GATE_CRITICAL)))
			abort();
		policy_decide(p, st, "fuzz", NULL, &d);
		if (st->refuse && d.action != POLICY_REFUSE)
			abort();
		policy_decision_clear(&d);
		top = st->level > top ? st->level : top;
		refuse |= st->refuse;
	}
	if (top != r->level || refuse != r->refuse)
		abort();
	policy_free(p);
}

/*
 * The first byte picks the options: bit 0 a catalog, bit 1 inside a gate transaction, bit 2
 * a session shared by the input's two halves (split at the first 0xff byte).  The rest is
 * the SQL, copied to an exact-size heap block so ASan sees any over-read.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	gate_options opts;
	gate_session *session = NULL;
	gate_result *r = NULL;
	bs_error err;
	const char *sql;
	size_t len, first;
	char *buf;

	if (size < 1)
		return 0;
	memset(&opts, 0, sizeof(opts));
	opts.catalog = data[0] & 1 ? &fake : NULL;
	opts.in_transaction = (data[0] & 2) != 0;
	if (data[0] & 4)
		opts.session = session = gate_session_new();
	sql = (const char *) data + 1;
	len = size - 1;
	buf = xmalloc(len ? len : 1);
	memcpy(buf, sql, len);
	first = len;
	if (session)
	{
		const char *ff = memchr(buf, 0xff, len);

		if (ff)
			first = (size_t) (ff - buf);
	}
	for (int pass = 0; pass < (first < len ? 2 : 1); pass++)
	{
		const char *s = pass == 0 ? buf : buf + first + 1;
		size_t n = pass == 0 ? first : len - first - 1;

		if (gate_classify_n(s, n, &opts, &r, &err) != BS_OK)
			abort();			/* the fake catalog never fails */
		check(r, n);
		{
			gate_result *c = gate_result_copy(r);
			json_t *j = gate_result_json(c, NULL);

			if (j == NULL || c->nstmts != r->nstmts || c->level != r->level)
				abort();
			json_decref(j);
			gate_result_free(c);
		}
		gate_result_free(r);
	}
	gate_session_free(session);
	free(buf);
	return 0;
}
