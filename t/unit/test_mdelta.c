/* test_mdelta.c — unit tests of mdelta_events: a manifest's change as events, written to a pack in memory and folded back onto the state before, give the state after byte for byte; what events cannot say is refused. */
#include "expire.h"
#include "fold.h"
#include "fold_case.h"
#include "lsn.h"
#include "manifest_json.h"
#include "mdelta.h"
#include "pack.h"
#include "strbuf.h"
#include "tap.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* manifest_to_json without what the fold derives from runs and seals (segments, archived_to)
 * and without generation (no meaning in a fold). */
static char *
sans_runs(manifest *m)
{
	int nseg = m->nsegments;
	uint64_t archived_to = m->archived_to,
		generation = m->generation;
	char *s;

	m->nsegments = 0;
	m->archived_to = 0;
	m->generation = 0;
	s = manifest_to_json(m);
	m->nsegments = nseg;
	m->archived_to = archived_to;
	m->generation = generation;
	return s;
}

/* A copy of m's table state (no segments), as a catalog holds it. */
static manifest *
copy_table(const manifest *m)
{
	json_t *o;
	manifest *c = NULL;
	bs_error err;

	if (m == NULL)
		return NULL;
	o = manifest_table_to_json_object(m);
	if (o == NULL || manifest_table_from_json_object(o, &c, &err) != BS_OK)
	{
		printf("# copying a manifest: %s\n", o ? err.message : "not serializable");
		exit(2);
	}
	json_decref(o);
	return c;
}

/* The events as a pack of seq (sealed at the last event's LSN, or seal when higher). */
static pack_index *
events_pack(uint64_t seq, uint64_t seal, const mdelta_list *l)
{
	const char **ev = xcalloc((size_t) l->n + 1, sizeof(char *));
	pack_index *idx;

	for (int i = 0; i < l->n; i++)
		ev[i] = l->events[i].json;
	if (l->n > 0 && l->events[l->n - 1].lsn > seal)
		seal = l->events[l->n - 1].lsn;
	idx = fold_case_pack(seq, seal, (const char *const *) ev, l->n, NULL, 0, NULL, NULL);
	free(ev);
	return idx;
}

/* The events folded onto before (a catalog's state at seq 1 with lsn_floor as its last event). */
static manifest *
fold_onto(uint32_t relid, const manifest *before, uint64_t floor, const mdelta_list *l, bs_error *err)
{
	pack_index *idx = events_pack(before ? 2 : 1, floor, l);
	fold_start st = {1, 0, NULL, copy_table(before), floor};
	manifest *m = NULL;

	if (fold_table_from(relid, before ? &st : NULL, (const pack_index *const *) &idx, 1, &m, NULL, err) != BS_OK)
		m = NULL;
	manifest_free(st.m);
	pack_index_free(idx);
	return m;
}

static int diag_left = 8;

static void
diag(const char *what, const char *fmt, const char *detail)
{
	if (diag_left-- > 0)
		printf("#   %s: %s%s\n", what, fmt, detail ? detail : "");
}

/* The position an event stands for (a layout's from_lsn, a base's lsn, ...); 0: none. */
static uint64_t
event_position(const char *json)
{
	static const char *const pos[][3] = {
		{"layout", "layout", "from_lsn"}, {"base", "base", "lsn"}, {"name", NULL, "from_lsn"},
		{"drop", NULL, "dropped_at_lsn"}, {"gap", NULL, "from"}, {"schema_unknown", NULL, "from"},
		{"gap_closed", NULL, "at"}, {"schema_unknown_closed", NULL, "at"}, {"partition_change", NULL, "at"},
		{"rebase_requested", NULL, "at"}, {"existed_to", NULL, "existed_to"}, {"ddl_capture_from", NULL, "from"},
		{"expired", NULL, "expired_before"},
	};
	json_error_t jerr;
	json_t *o = json_loads(json, 0, &jerr);
	const char *kind = json_string_value(json_object_get(o, "kind"));
	uint64_t lsn = 0;

	for (size_t i = 0; kind && i < sizeof(pos) / sizeof(pos[0]); i++)
		if (strcmp(kind, pos[i][0]) == 0)
		{
			json_t *in = pos[i][1] ? json_object_get(o, pos[i][1]) : o;
			const char *v = json_string_value(json_object_get(in, pos[i][2]));

			if (v == NULL || lsn_parse(v, &lsn) != BS_OK)
				lsn = 0;
		}
	json_decref(o);
	return lsn;
}

/* The property: the events of (before, after) satisfy the fold and give after. */
static bool
check_pair(const char *what, const manifest *before, manifest *after, uint64_t floor)
{
	mdelta_list l;
	bs_error err;
	manifest *got;
	char *a,
		*b;
	bool good;
	uint64_t prev = floor;

	if (mdelta_events(before, after, floor, &l, &err) != BS_OK)
	{
		diag(what, "mdelta_events: ", err.message);
		return false;
	}
	for (int i = 0; i < l.n; i++)
	{
		char want[64],
			l1[LSN_BUFLEN];

		snprintf(want, sizeof(want), "\"lsn\":\"%s\"", lsn_format(l.events[i].lsn, l1));
		if (l.events[i].lsn < prev || strstr(l.events[i].json, want) == NULL ||
			l.events[i].lsn < event_position(l.events[i].json))
		{
			diag(what, "event LSNs go back, below the floor or the event's position, or are not the JSON's: ",
				 l.events[i].json);
			mdelta_list_free(&l);
			return false;
		}
		prev = l.events[i].lsn;
	}
	got = fold_onto(after->relid, before, floor, &l, &err);
	if (got == NULL)
	{
		diag(what, "the fold refuses the events: ", err.message);
		for (int i = 0; i < l.n && diag_left > 0; i++)
			printf("#     %s\n", l.events[i].json);
		mdelta_list_free(&l);
		return false;
	}
	a = sans_runs(got);
	b = sans_runs(after);
	good = a && b && strcmp(a, b) == 0;
	if (!good && diag_left-- > 0)
		printf("#   %s: the fold of the events differs:\n#   got:  %s\n#   want: %s\n", what, a, b);
	free(a);
	free(b);
	manifest_free(got);
	mdelta_list_free(&l);
	return good;
}

/* BACKSTOP_FUZZ_SEED_DIR: where to write fuzz_mdelta's seeds (NULL: none). */
static const char *seed_dir;

/* A seed of fuzz_mdelta: before's manifest (none: an empty line), a line "=", after's. */
static void
write_seed(const char *name, manifest *before, manifest *after)
{
	char path[4096];
	char *a = before ? sans_runs(before) : NULL,
		*b = sans_runs(after);
	FILE *f;

	if (seed_dir == NULL)
		goto out;
	snprintf(path, sizeof(path), "%s/%s", seed_dir, name);
	f = fopen(path, "w");
	if (f == NULL)
		exit(2);
	fprintf(f, "%s\n=\n%s\n", a ? a : "", b);
	fclose(f);
out:
	free(a);
	free(b);
}

/* The fold of relid over the first k packs; *last: its last event's LSN. */
static manifest *
fold_prefix(uint32_t relid, pack_index **p, int k, uint64_t *last)
{
	manifest *m = NULL;
	bs_error err;

	if (fold_table_from(relid, NULL, (const pack_index *const *) p, k, &m, last, &err) != BS_OK)
	{
		printf("# folding relid %u over %d packs: %s\n", relid, k, err.message);
		exit(2);
	}
	return m;
}

static const char *const ev_su2[] = {
	EV("schema_unknown", "0/4000000", "16400") ",\"from\":\"0/1000200\",\"to\":\"0/2100000\"}",
	EV("schema_unknown_closed", "0/4000000", "16400") ",\"at\":\"0/4000000\"}",
	EV("partition_change", "0/4100000", "16400") ",\"at\":\"0/4100000\"}",
	NULL
};

/* The states of test_fold's cases (each prefix of the packs): every pair forward is reachable,
 * every pair backward is refused. */
static void
test_fold_states(void)
{
	const run_spec r1[] = {{T, 3, 0x2000000}, {D, 2, 0x2100000}};
	const run_spec r2[] = {{T, 2, 0x4000000}};
	const run_spec r4[] = {{T, 1, 0x8100000}};
	const run_spec rsu[] = {{T, 1, 0x2000000}};
	pack_index *p[4],
			   *su[2];
	struct
	{
		const char *what;
		uint32_t relid;
		pack_index **packs;
		int n;
	} groups[] = {
		{"renamed, re-based through a gap, expired", T, p, 4},
		{"dropped", D, p, 2},
		{"schema_unknown windows and partition changes", T, su, 2},
	};

	p[0] = fold_case_pack(1, 0x3000000, ev1, -1, r1, 2, NULL, NULL);
	p[1] = fold_case_pack(2, 0x5000000, ev2, -1, r2, 1, NULL, NULL);
	p[2] = fold_case_pack(3, 0x7000000, ev3, -1, NULL, 0, NULL, NULL);
	p[3] = fold_case_pack(4, 0x9000000, ev4, -1, r4, 1, NULL, NULL);
	su[0] = fold_case_pack(1, 0x3000000, ev_su1, -1, rsu, 1, NULL, NULL);
	su[1] = fold_case_pack(2, 0x5000000, ev_su2, -1, NULL, 0, NULL, NULL);
	for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++)
	{
		manifest *s[4];
		uint64_t last[4];
		int n = groups[g].n,
			pairs = 0,
			good = 0,
			back = 0,
			refused = 0;

		for (int k = 0; k < n; k++)
			s[k] = fold_prefix(groups[g].relid, groups[g].packs, k + 1, &last[k]);
		for (int j = 0; j < n; j++)
		{
			pairs++;
			good += check_pair(groups[g].what, NULL, s[j], 0);
			for (int i = 0; i <= j; i++)
			{
				pairs++;
				good += check_pair(groups[g].what, s[i], s[j], last[i]);
			}
			for (int i = j + 1; i < n; i++)
			{
				mdelta_list l;
				bs_error err;

				back++;
				if (mdelta_events(s[i], s[j], last[i], &l, &err) == BS_OK)
				{
					diag(groups[g].what, "a state going back gave events", NULL);
					mdelta_list_free(&l);
				}
				else if (strcmp(err.code, ERRCODE_INTERNAL) == 0 && l.n == 0)
					refused++;
			}
		}
		{
			char name[64];

			snprintf(name, sizeof(name), "fold-%d-new.txt", (int) g);
			write_seed(name, NULL, s[n - 1]);
			snprintf(name, sizeof(name), "fold-%d-forward.txt", (int) g);
			write_seed(name, s[0], s[n - 1]);
			snprintf(name, sizeof(name), "fold-%d-back.txt", (int) g);
			write_seed(name, s[n - 1], s[0]);
		}
		is_int(good, pairs, "%s: %d pairs forward (from nothing, each prefix to each later one and itself): "
			   "the events fold to the later state", groups[g].what, pairs);
		is_int(refused, back, "%s: %d pairs backward refused (ERRCODE_INTERNAL)", groups[g].what, back);
		for (int k = 0; k < n; k++)
			manifest_free(s[k]);
	}
	/* The main case from nothing: the events are test_fold's in kind and order. */
	{
		manifest *s4 = fold_prefix(T, p, 4, NULL);
		mdelta_list l;
		bs_error err;
		strbuf kinds = STRBUF_INIT;

		if (mdelta_events(NULL, s4, 0, &l, &err) == BS_OK)
		{
			for (int i = 0; i < l.n; i++)
			{
				json_error_t jerr;
				json_t *o = json_loads(l.events[i].json, 0, &jerr);

				if (i)
					strbuf_append_char(&kinds, ' ');
				strbuf_append_str(&kinds, json_string_value(json_object_get(o, "kind")));
				json_decref(o);
			}
			mdelta_list_free(&l);
		}
		is_str(kinds.data, "table layout base name layout ddl_capture_from existed_to gap base expired",
			   "the main case from nothing: its events in LSN order, the expiry last");
		strbuf_free(&kinds);
		manifest_free(s4);
	}
	for (int i = 0; i < 4; i++)
		pack_index_free(p[i]);
	pack_index_free(su[0]);
	pack_index_free(su[1]);
}

/* Bases the mutations' expiries removed. */
static int expired_bases;

/* A deterministic generator (xorshift64). */
static uint64_t rng_state;

static uint64_t
rnd(uint64_t n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return n ? rng_state % n : 0;
}

static void
set_str(char **p, const char *v)
{
	free(*p);
	*p = v ? xstrdup(v) : NULL;
}

static void
add_base(manifest *m, uint64_t lsn)
{
	manifest_base b;
	manifest_chunk c;
	char key[128],
		lk[LSN_BUFLEN];

	memset(&b, 0, sizeof(b));
	memset(&c, 0, sizeof(c));
	snprintf(key, sizeof(key), "tables/%u/base/%s/chunk-000000.bso", m->relid, lsn_format_key(lsn, lk));
	c.key = key;
	memset(c.sha256, 'a', 64);
	c.size = 100 + rnd(100);
	c.raw_size = 200;
	c.rows = rnd(10);
	b.lsn = lsn;
	b.time = INT64_C(1764583200000000) + (int64_t) lsn;
	b.rows = c.rows;
	b.layout_id = manifest_layout_at(m, lsn) ? manifest_layout_at(m, lsn)->id : m->layouts[0].id;
	b.definition = rnd(2) ? (char *) DEF : NULL;
	b.nchunks = 1;
	b.chunks = &c;
	manifest_add_base(m, &b);
}

static void
add_layout(manifest *m, uint64_t from, bool behind)
{
	manifest_column cols[3];
	int n = 1 + (int) rnd(3);
	char names[3][16];

	memset(cols, 0, sizeof(cols));
	for (int i = 0; i < n; i++)
	{
		snprintf(names[i], sizeof(names[i]), "c%d_%d", i, (int) rnd(100));
		cols[i].name = names[i];
		cols[i].type_oid = 23;
		cols[i].typmod = -1;
		cols[i].type_name = (char *) "integer";
		cols[i].key = i == 0;
		cols[i].not_null = i == 0;
		cols[i].missing = i == 2 ? (char *) "7" : NULL;
		cols[i].missing_unknown = i == 1 && rnd(2);
	}
	if (behind && m->nlayouts > 0 && m->layouts[m->nlayouts - 1].from_lsn > m->layouts[0].from_lsn + 1)
		/* A base copy behind the stream: a layout between two others (a new id, its place by LSN). */
		manifest_insert_layout(m, -1, m->layouts[0].from_lsn + 1, 'f', n, cols);
	else
		manifest_add_layout(m, from, rnd(2) ? 'd' : 'i', n, cols);
}

/*
 * One mutation of an archiver's kind, at cur (raised first); what it did in *what.  A dropped
 * table only expires.
 */
static void
mutate(manifest *m, uint64_t *cur, int step, const char **what)
{
	bool dropped = strcmp(m->status, "dropped") == 0;
	manifest_gap *og = manifest_open_gap(m);

	*cur += 0x100 + rnd(0x10000);
	for (;;)
	{
		int kind = dropped ? 14 : (int) rnd(22);
		char text[64];

		switch (kind)
		{
			case 0:
				*what = "add layout";
				add_layout(m, *cur, false);
				return;
			case 1:
				*what = "add base (closing an open gap or window, meeting a re-base request)";
				add_base(m, *cur);
				manifest_close_open_gap(m, *cur);
				if (rnd(2))
					manifest_close_open_schema_gap(m, *cur);
				if (rnd(2))
					m->rebase_requested_at = 0;
				return;
			case 2:
				*what = "rename";
				snprintf(text, sizeof(text), "t%d", step);
				manifest_add_name(m, *cur, rnd(2) ? "app" : "public", text);
				return;
			case 3:
				if (step < 4 || rnd(3) || m->existed_to >= *cur)
					continue;
				*what = "drop";
				free(m->status);
				m->status = xstrdup("dropped");
				m->dropped_at_lsn = *cur;
				m->drop_lsn = rnd(2) ? *cur - 0x10 : 0;
				return;
			case 4:
				if (og || (m->ngaps > 0 && m->gaps[m->ngaps - 1].to > *cur))
					continue;
				*what = "gap opened";
				manifest_add_gap(m, *cur, MANIFEST_GAP_OPEN);
				return;
			case 5:
				if (og)
					continue;
				*what = "gap (closed)";
				manifest_add_gap(m, *cur, *cur + 0x80);
				*cur += 0x100;
				return;
			case 6:
				*what = "rebase requested";
				m->rebase_requested_at = *cur;
				return;
			case 7:
				*what = "existed_to raised";
				m->existed_to = *cur;
				return;
			case 8:
				*what = "skipped";
				free(m->status);
				m->status = xstrdup("skipped");
				snprintf(text, sizeof(text), "reason %d", step);
				free(m->finding);
				m->finding = xstrdup(text);
				return;
			case 9:
				*what = "ddl_capture_from";
				m->ddl_capture_from = *cur;
				return;
			case 10:
				if (manifest_open_schema_gap(m))
					continue;
				*what = "schema_unknown opened";
				manifest_add_schema_gap(m, *cur, MANIFEST_GAP_OPEN);
				return;
			case 11:
				/* A base copy's window, reaching back (maybe into earlier or open windows). */
				*what = "schema_unknown window (merged with what it touches)";
				manifest_add_schema_gap(m, *cur - rnd(2) * rnd(*cur - 0x1000000), *cur);
				return;
			case 12:
				if (!manifest_open_schema_gap(m))
					continue;
				*what = "schema_unknown closed";
				manifest_close_open_schema_gap(m, *cur);
				return;
			case 13:
				*what = "partition change";
				manifest_add_partition_change(m, *cur);
				return;
			case 14:
				{
					/* expire as the archiver's retention does it (expire_select, expire_apply). */
					expire_policy pol = {0, 1 + (int64_t) rnd(3)};
					expire_plan plan;

					*what = "expired (expire_apply: bases below the first kept go)";
					expire_select(m, &pol, INT64_C(1764583200000000) + (int64_t) *cur, &plan);
					expire_apply(m, &plan, INT64_C(1764583200000000) + (int64_t) *cur);
					expired_bases += plan.changes ? plan.nbases : 0;
					expire_plan_free(&plan);
				}
				return;
			case 15:
				{
					manifest_segment s;

					*what = "a run and archived_to (no event)";
					memset(&s, 0, sizeof(s));
					s.source = MANIFEST_SEGMENT_PACK;
					s.key = (char *) "log/0000000000000001.bsp";
					s.pack_seq = 1;
					s.raw_size = 10;
					s.first_lsn = *cur;
					s.last_end_lsn = *cur + 0x30;
					s.records = 1;
					manifest_add_segment(m, &s);
					m->archived_to = *cur + 0x100;
				}
				return;
			case 16:
				*what = "layout inserted behind";
				add_layout(m, *cur, true);
				return;
			case 17:
				if (og || m->ngaps == 0)
					continue;
				/* A gap from the last one's end: manifest_add_gap merges it into that one. */
				*what = "gap extended (merged)";
				manifest_add_gap(m, m->gaps[m->ngaps - 1].to, *cur);
				return;
			case 18:
				if (strcmp(m->status, "skipped") != 0)
					continue;
				/* basejob.c: a base copy makes a skipped table active again (its finding kept). */
				*what = "base copy of a skipped table (active again)";
				add_base(m, *cur);
				set_str(&m->status, "active");
				return;
			case 19:
				{
					/* basejob.c: a column of a layout after the copy marked missing_unknown. */
					manifest_column *c = NULL;

					for (int i = m->nlayouts - 1; i >= 0 && c == NULL; i--)
						for (int k = 0; k < m->layouts[i].ncols && c == NULL; k++)
							if (!m->layouts[i].columns[k].missing_unknown && m->layouts[i].columns[k].missing == NULL)
								c = &m->layouts[i].columns[k];
					if (c == NULL)
						continue;
					*what = "column marked missing_unknown (a layout changed in place)";
					c->missing_unknown = true;
					if (m->rebase_requested_at == 0)
						m->rebase_requested_at = *cur;
				}
				return;
			case 20:
				{
					/* manifest_use_layout: the newest layout seen earlier, its from_lsn lowered. */
					const manifest_layout *l = &m->layouts[m->nlayouts - 1];
					uint64_t lo = m->nlayouts > 1 ? m->layouts[m->nlayouts - 2].from_lsn : 0;
					manifest_column cols[3];
					uint32_t id;
					bs_error err;

					if (l->from_lsn <= lo + 2 || l->ncols > 3 ||
						(m->nlayouts > 1 && manifest_columns_equal(l->ncols, l->columns, m->layouts[m->nlayouts - 2].ncols,
															  m->layouts[m->nlayouts - 2].columns)))
						continue;
					*what = "layout's from_lsn lowered (manifest_use_layout)";
					memcpy(cols, l->columns, sizeof(manifest_column) * (size_t) l->ncols);
					cols[l->ncols - 1].missing_unknown = rnd(2);
					if (manifest_use_layout(m, lo + 1 + rnd(l->from_lsn - lo - 1), l->replident, l->ncols, cols, &id,
											&err) != BS_OK)
						exit(2);
				}
				return;
			case 21:
				{
					/* manifest_add_name: the name at an LSN already listed replaced, or one
					 * inserted before the newest. */
					uint64_t at;

					if (m->nnames < 2)
						continue;
					if (rnd(2) || m->names[m->nnames - 1].from_lsn <= m->names[m->nnames - 2].from_lsn + 1)
					{
						*what = "name at a listed LSN replaced (manifest_add_name)";
						at = m->names[1 + rnd((uint64_t) m->nnames - 1)].from_lsn;
					}
					else
					{
						*what = "name inserted before the newest (manifest_add_name)";
						at = m->names[m->nnames - 2].from_lsn + 1 +
							rnd(m->names[m->nnames - 1].from_lsn - m->names[m->nnames - 2].from_lsn - 1);
					}
					snprintf(text, sizeof(text), "r%d", step);
					manifest_add_name(m, at, rnd(2) ? "app" : "public", text);
				}
				return;
		}
	}
}

#define NSEQ 60
#define NSTEP 10

/* Sequences of mutations: every pair of states (i <= j, and from nothing) and the chain of deltas. */
static void
test_mutation_sequences(void)
{
	const run_spec r1[] = {{T, 3, 0x2000000}, {D, 2, 0x2100000}};
	pack_index *p1 = fold_case_pack(1, 0x3000000, ev1, -1, r1, 2, NULL, NULL);
	int pairs = 0,
		good = 0,
		chains = 0,
		chains_good = 0,
		invalid = 0;
	int distinct = 0;
	const char *seen[32];
	int nseen = 0;

	for (int seq = 0; seq < NSEQ; seq++)
	{
		manifest *s[NSTEP + 1];
		const char *what[NSTEP + 1];
		uint64_t cur = 0x3000000;
		pack_index *chain[NSTEP + 2];
		int nchain = 0;
		uint64_t floor = 0,
			seal = 0;
		bool chain_ok = true;
		char label[128];

		rng_state = 0x9E3779B97F4A7C15ULL ^ (uint64_t) (seq + 1) * 0x100000001B3ULL;
		s[0] = fold_prefix(T, &p1, 1, NULL);
		what[0] = "start";
		for (int k = 1; k <= NSTEP; k++)
		{
			bs_error err;

			s[k] = copy_table(s[k - 1]);
			mutate(s[k], &cur, k, &what[k]);
			{
				int i = 0;

				while (i < nseen && strcmp(seen[i], what[k]) != 0)
					i++;
				if (i == nseen && nseen < 32)
					seen[nseen++] = what[k];
			}
			if (manifest_validate(s[k], &err) != BS_OK)
			{
				invalid++;
				if (diag_left-- > 0)
					printf("#   sequence %d step %d (%s): the builder made an invalid manifest: %s\n", seq, k,
						   what[k], err.message);
			}
		}
		for (int j = 0; j <= NSTEP; j++)
		{
			snprintf(label, sizeof(label), "sequence %d: from nothing to state %d (%s)", seq, j, what[j]);
			pairs++;
			good += check_pair(label, NULL, s[j], 0);
			for (int i = 0; i <= j; i++)
			{
				snprintf(label, sizeof(label), "sequence %d: state %d to %d (%s ... %s)", seq, i, j, what[i + (i < j)],
						 what[j]);
				pairs++;
				good += check_pair(label, s[i], s[j], i == 0 ? 0x1000100 : (uint64_t) rnd(0x3000000));
			}
		}
		if (seq < 3)
		{
			char name[64];

			snprintf(name, sizeof(name), "sequence-%d.txt", seq);
			write_seed(name, s[0], s[NSTEP]);
		}
		/* The chain: each step's events in its own pack, from nothing, the floor carried on. */
		for (int k = -1; k < NSTEP && chain_ok; k++)
		{
			mdelta_list l;
			bs_error err;

			if (mdelta_events(k < 0 ? NULL : s[k], s[k + 1], floor, &l, &err) != BS_OK)
			{
				diag("chain", "mdelta_events: ", err.message);
				chain_ok = false;
				break;
			}
			if (l.n > 0)
				floor = l.events[l.n - 1].lsn;
			if (floor > seal)
				seal = floor;
			chain[nchain] = events_pack((uint64_t) nchain + 1, seal, &l);
			nchain++;
			mdelta_list_free(&l);
		}
		chains++;
		if (chain_ok)
		{
			manifest *m = NULL;
			bs_error err;

			if (fold_table(T, (const pack_index *const *) chain, nchain, &m, &err) != BS_OK)
				diag("chain", "the fold refuses the chain: ", err.message);
			else
			{
				char *a = sans_runs(m),
					*b = sans_runs(s[NSTEP]);

				if (strcmp(a, b) == 0)
					chains_good++;
				else if (diag_left-- > 0)
					printf("#   chain %d differs:\n#   got:  %s\n#   want: %s\n", seq, a, b);
				free(a);
				free(b);
			}
			manifest_free(m);
		}
		for (int k = 0; k < nchain; k++)
			pack_index_free(chain[k]);
		for (int k = 0; k < NSTEP; k++)
		{
			char *a = sans_runs(s[k]),
				*b = sans_runs(s[k + 1]);

			distinct += strcmp(a, b) != 0;
			free(a);
			free(b);
		}
		for (int k = 0; k <= NSTEP; k++)
			manifest_free(s[k]);
	}
	is_int(nseen, 23, "every kind of mutation was made");
	ok(expired_bases > 0, "expiries removed bases (%d)", expired_bases);
	is_int(invalid, 0, "the mutations make valid manifests");
	ok(distinct > NSEQ * NSTEP * 3 / 4, "most mutations change what events carry (%d of %d)", distinct,
	   NSEQ * NSTEP);
	is_int(good, pairs, "%d sequences of %d mutations: all %d pairs (i <= j, and from nothing) fold to the later "
		   "state", NSEQ, NSTEP, pairs);
	is_int(chains_good, chains, "each sequence as a chain of %d packs of deltas folds to its last state", NSTEP + 1);
	pack_index_free(p1);
}

/* mdelta_events(b, a) refused with code and a message holding needle, nothing out. */
static void
refused(const char *what, const manifest *b, const manifest *a, const char *code, const char *needle)
{
	mdelta_list l;
	bs_error err;
	int rc = mdelta_events(b, a, 0, &l, &err);

	ok(rc == BS_ERR && strcmp(err.code, code) == 0 && strstr(err.message, needle) && l.n == 0 && l.events == NULL,
	   "refused: %s", what);
	if (rc == BS_OK)
		mdelta_list_free(&l);
	else if (strcmp(err.code, code) != 0 || !strstr(err.message, needle))
		printf("#   %s: %s\n#   wanted %s: ...%s...\n", err.code, err.message, code, needle);
}

static void
test_refusals(void)
{
	const run_spec r1[] = {{T, 3, 0x2000000}, {D, 2, 0x2100000}};
	pack_index *p[4];
	manifest *s1,
			   *s2,
			   *s3,
			   *s4,
			   *d1,
			   *d2,
			   *a;

	p[0] = fold_case_pack(1, 0x3000000, ev1, -1, r1, 2, NULL, NULL);
	p[1] = fold_case_pack(2, 0x5000000, ev2, -1, NULL, 0, NULL, NULL);
	p[2] = fold_case_pack(3, 0x7000000, ev3, -1, NULL, 0, NULL, NULL);
	p[3] = fold_case_pack(4, 0x9000000, ev4, -1, NULL, 0, NULL, NULL);
	s1 = fold_prefix(T, p, 1, NULL);
	s2 = fold_prefix(T, p, 2, NULL);
	s3 = fold_prefix(T, p, 3, NULL);
	s4 = fold_prefix(T, p, 4, NULL);
	d1 = fold_prefix(D, p, 1, NULL);
	d2 = fold_prefix(D, p, 2, NULL);

	/* Expire as format 2 does it: the old base goes, expired_before rises to the new oldest. */
	a = copy_table(s4);
	manifest_base_clear(&a->bases[0]);
	memmove(&a->bases[0], &a->bases[1], sizeof(manifest_base));
	a->nbases = 1;
	a->expired_before = a->bases[0].lsn;
	ok(check_pair("expire's removal of a base", s4, a, 0x8000000), "expire's change (the old base goes, "
	   "expired_before rises to the new oldest) folds back: the expired event removes the base");
	a->expired_before = s4->expired_before;
	refused("a base removed without an expiry", s4, a, ERRCODE_INTERNAL,
			"bases[0] (at 0/1000100) is not in after (only an expiry removes bases: those below expired_before)");
	manifest_free(a);

	/* expire_apply itself, on a table with two bases (keep one): its change is one expired event. */
	{
		expire_policy pol = {0, 1};
		expire_plan plan;
		mdelta_list l;
		bs_error err;

		a = copy_table(s4);
		expire_select(a, &pol, INT64_C(1764590400000000), &plan);
		expire_apply(a, &plan, INT64_C(1764590400000000));
		expire_plan_free(&plan);
		write_seed("expire.txt", s4, a);
		ok(a->nbases == 1 && check_pair("expire_apply", s4, a, 0x8000000) &&
		   mdelta_events(s4, a, 0x8000000, &l, &err) == BS_OK && l.n == 1 &&
		   strstr(l.events[0].json, "\"kind\":\"expired\"") && strstr(l.events[0].json, "\"expired_before\":\"0/8000000\""),
		   "expire_apply's change: one expired event at the kept base, folded back");
		mdelta_list_free(&l);
		manifest_free(a);
	}

	a = copy_table(s2);
	manifest_columns_free(a->layouts[1].ncols, a->layouts[1].columns);
	a->nlayouts = 1;
	refused("a layout removed", s2, a, ERRCODE_INTERNAL, "layout 1 is not in after");
	manifest_free(a);

	a = copy_table(s2);
	a->layouts[1].replident = 'd';
	refused("a layout's replident changed in place (the fold's own check)", s2, a, ERRCODE_INTERNAL,
			"event 0 (\"layout_replaced\" at 0/3200000): changes how records of layout 1 decode");
	manifest_free(a);

	a = copy_table(s2);
	a->layouts[1].from_lsn = 0x3300000;
	refused("a layout's from_lsn raised (the fold's own check)", s2, a, ERRCODE_INTERNAL,
			"raises layout 1's from_lsn from 0/3200000");
	manifest_free(a);

	/* What the archiver changes in place: each one event, folded back. */
	{
		mdelta_list l;
		bs_error err;

		a = copy_table(s2);
		a->layouts[1].from_lsn = 0x3000000;
		a->layouts[1].columns[1].missing_unknown = true;
		ok(check_pair("layout lowered and marked", s2, a, 0x4800000) &&
		   mdelta_events(s2, a, 0x4800000, &l, &err) == BS_OK && l.n == 1 &&
		   strstr(l.events[0].json, "\"kind\":\"layout_replaced\""),
		   "a layout's from_lsn lowered and a column marked missing_unknown: one layout_replaced, folded back");
		mdelta_list_free(&l);
		manifest_free(a);
	}

	a = copy_table(s2);
	a->bases[0].rows++;
	refused("a base changed in place", s2, a, ERRCODE_INTERNAL, "bases[0] (at 0/1000100) changed in place");
	manifest_free(a);

	{
		mdelta_list l;
		bs_error err;

		a = copy_table(s2);
		manifest_add_name(a, 0x3100000, "app", "t3");
		manifest_add_name(a, 0x3000000, "app", "t1");
		a->layouts[1].from_lsn = 0x3000000;
		a->layouts[1].columns[1].missing_unknown = true;
		set_str(&a->finding, "reduced");
		write_seed("in-place.txt", s2, a);
		a->layouts[1].from_lsn = 0x3200000;
		a->layouts[1].columns[1].missing_unknown = false;
		set_str(&a->finding, NULL);
		ok(a->nnames == 3 && check_pair("names replaced and inserted", s2, a, 0x4800000) &&
		   mdelta_events(s2, a, 0x4800000, &l, &err) == BS_OK && l.n == 2 &&
		   strstr(l.events[0].json, "\"kind\":\"name_replaced\"") && strstr(l.events[1].json, "\"kind\":\"name_replaced\""),
		   "manifest_add_name replacing a listed entry and inserting one before the newest: two name_replaced, "
		   "folded back");
		mdelta_list_free(&l);
		manifest_free(a);
	}

	/* A history of the current name alone (a format-2 manifest may hold one): name_replaced at
	 * 0/0 starts it. */
	a = copy_table(s1);
	a->names = xcalloc(1, sizeof(manifest_name));
	a->names[0].schema = xstrdup("public");
	a->names[0].name = xstrdup("t");
	a->nnames = 1;
	ok(check_pair("a history started", s1, a, 0x1000100), "a names history of the current name alone: started by "
	   "name_replaced at 0/0, folded back");
	manifest_free(a);

	a = copy_table(s2);
	free(a->names[1].schema);
	free(a->names[1].name);
	a->nnames = 1;
	set_str(&a->schema, "public");
	set_str(&a->name, "t");
	refused("a names entry removed", s2, a, ERRCODE_INTERNAL,
			"names history rewritten: names[1] is not in after (entries are replaced, never removed)");
	manifest_free(a);

	a = copy_table(s1);
	set_str(&a->name, "t9");
	refused("a rename without a names history", s1, a, ERRCODE_INTERNAL,
			"schema and name changed without a names history");
	manifest_free(a);

	a = copy_table(s2);
	manifest_add_name(a, 0x4000000, "app", "t2");
	a->names = xrealloc(a->names, 3 * sizeof(manifest_name));
	a->names[2].from_lsn = 0x4000000;
	a->names[2].schema = xstrdup("app");
	a->names[2].name = xstrdup("t2");
	a->nnames = 3;
	ok(check_pair("a name repeating the one before it", s2, a, 0x4800000), "a name entry repeating the one "
	   "before it (which a name event would not add): name_replaced, folded back");
	manifest_free(a);

	refused("dropped back to active", d2, d1, ERRCODE_INTERNAL, "status goes back from dropped to active");

	a = copy_table(d2);
	a->existed_to = 0x3000000;
	refused("a dropped table's existed_to raised (no event after the drop but expired)", d2, a, ERRCODE_INTERNAL,
			"the events' fold differs from after in member existed_to");
	manifest_free(a);

	a = copy_table(d2);
	a->drop_lsn = 0x3300000;
	refused("the drop of a dropped table changed", d2, a, ERRCODE_INTERNAL, "the drop of a dropped table changed");
	manifest_free(a);

	{
		manifest *sk = copy_table(s2);

		set_str(&sk->status, "skipped");
		set_str(&sk->finding, "why");
		mdelta_list l;
		bs_error err;

		a = copy_table(sk);
		set_str(&a->status, "active");
		ok(check_pair("skipped to active", sk, a, 0x4800000) && mdelta_events(sk, a, 0x4800000, &l, &err) == BS_OK &&
		   l.n == 1 && strstr(l.events[0].json, "\"kind\":\"status\"") &&
		   strstr(l.events[0].json, "\"status\":\"active\",\"finding\":\"why\""),
		   "a skipped table made active by a base copy (basejob.c), its finding kept: one status event, folded back");
		mdelta_list_free(&l);
		manifest_free(a);
		ok(check_pair("skipped to active, finding cleared", sk, s2, 0x4800000), "skipped back to active, the "
		   "finding cleared: folded back");
		a = copy_table(sk);
		set_str(&a->finding, NULL);
		set_str(&a->status, "dropped");
		a->dropped_at_lsn = 0x5000000;
		ok(check_pair("a skipped table dropped, its finding cleared", sk, a, 0x4800000), "a skipped table dropped, "
		   "its finding cleared: folded back (status, then drop)");
		manifest_free(a);
		manifest_free(sk);
	}

	a = copy_table(s2);
	set_str(&a->finding, "reduced");
	ok(check_pair("an active table's finding changed", s2, a, 0x4800000), "an active table's finding changed: "
	   "folded back (status)");
	manifest_free(a);

	a = copy_table(s2);
	a->existed_to = 0x4700000;
	refused("existed_to going down", s2, a, ERRCODE_INTERNAL, "existed_to goes down");
	manifest_free(a);

	a = copy_table(s4);
	a->expired_before = 0x1000000;
	refused("expired_before going down", s4, a, ERRCODE_INTERNAL, "expired_before goes down");
	manifest_free(a);

	refused("a gap removed", s3, s2, ERRCODE_INTERNAL, "gaps[0] differs, not by its closing or its extension");

	a = copy_table(s3);
	a->gaps[0].from = 0x4900000;
	refused("a gap's start moved", s3, a, ERRCODE_INTERNAL, "gaps[0] differs");
	manifest_free(a);

	a = copy_table(s2);
	a->drop_lsn = 0x100;
	refused("drop_lsn without a drop", s2, a, ERRCODE_INTERNAL, "drop_lsn changed without a drop");
	manifest_free(a);

	{
		manifest *b = copy_table(s2);

		manifest_add_partition_change(b, 0x4000000);
		manifest_add_schema_gap(b, 0x4100000, 0x4200000);
		a = copy_table(s2);
		manifest_add_schema_gap(a, 0x4100000, 0x4200000);
		refused("a partition change removed", b, a, ERRCODE_INTERNAL, "partition_changes[0] removed or changed");
		manifest_free(a);
		a = copy_table(s2);
		manifest_add_partition_change(a, 0x4000000);
		manifest_add_schema_gap(a, 0x4150000, 0x4200000);
		refused("a schema_unknown window shrunk", b, a, ERRCODE_INTERNAL,
				"schema_unknown window from 0/4100000 is not within a window of after");
		manifest_free(a);
		manifest_free(b);
	}

	a = copy_table(s2);
	set_str(&a->status, "skipped");
	refused("skipped without a finding", s2, a, ERRCODE_INVALID_PARAMETER, "a skipped table without a finding");
	manifest_free(a);

	a = copy_table(s2);
	set_str(&a->names[0].name, "t0");
	ok(check_pair("the names history's start replaced", s1, a, 0x1000100), "the name at 0/0 replaced "
	   "(manifest_add_name at 0/0 starts and replaces it): folded back");
	manifest_free(a);

	a = copy_table(s2);
	set_str(&a->status, "dropped");
	a->dropped_at_lsn = 0x4800000;
	refused("a drop not above existed_to (the fold's own check)", s2, a, ERRCODE_INTERNAL,
			"the fold refuses them: pack \"mdelta\" (seq 2), relid 16400: event 0 (\"drop\" at 0/4800000): member "
			"\"dropped_at_lsn\" is not above the table's existed_to");
	manifest_free(a);

	a = copy_table(s2);
	set_str(&a->status, "gone");
	refused("a status that is none of the three", s2, a, ERRCODE_INVALID_PARAMETER,
			"status \"gone\" is none of active, skipped, dropped");
	manifest_free(a);

	refused("another table", s2, d1, ERRCODE_INVALID_PARAMETER, "before is relid 16400, after relid 16500");
	refused("no manifest after", s2, NULL, ERRCODE_INVALID_PARAMETER, "no manifest after");

	/* A new base of a new layout that starts after it (a base copy behind the stream): the
	 * layout's event comes first, the base's is raised to the layout's position. */
	{
		mdelta_list l;
		bs_error err;
		manifest *b = copy_table(s2);

		a = copy_table(s2);
		add_layout(a, 0x6000000, false);
		add_base(a, 0x5000000);
		a->bases[a->nbases - 1].layout_id = a->layouts[a->nlayouts - 1].id;
		ok(check_pair("a base before its new layout's from_lsn", b, a, 0x4800000), "a new base before its new "
		   "layout's from_lsn: the layout first, the base at the layout's position, folded back");
		ok(mdelta_events(b, a, 0x4800000, &l, &err) == BS_OK && l.n == 2 && strstr(l.events[0].json, "\"layout\"") &&
		   l.events[1].lsn == 0x6000000, "its events: the layout, then the base at 0/6000000");
		mdelta_list_free(&l);
		manifest_free(a);
		manifest_free(b);
	}

	/* Nothing that events carry changed: no events. */
	{
		mdelta_list l;
		bs_error err;

		a = copy_table(s2);
		a->archived_to = 0x9900000;
		ok(mdelta_events(s2, a, 0x4800000, &l, &err) == BS_OK && l.n == 0, "archived_to and segments alone: no events");
		mdelta_list_free(&l);
		manifest_free(a);
	}

	manifest_free(s1);
	manifest_free(s2);
	manifest_free(s3);
	manifest_free(s4);
	manifest_free(d1);
	manifest_free(d2);
	for (int i = 0; i < 4; i++)
		pack_index_free(p[i]);
}

int
main(void)
{
	seed_dir = getenv("BACKSTOP_FUZZ_SEED_DIR");
	test_fold_states();
	test_mutation_sequences();
	test_refusals();
	return done_testing();
}
