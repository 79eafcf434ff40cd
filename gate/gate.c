/* gate.c — the SQL gate: classifies statements from libpg_query's raw parse tree (pure decision logic). */
#include "gate.h"
#include "strbuf.h"

#include <ctype.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * PostgreSQL's headers define ERRCODE_* macros of their own; ours are not used below this
 * point (error codes are written out).
 */
#undef ERRCODE_INVALID_PARAMETER
#undef ERRCODE_SYNTAX
#undef ERRCODE_UNDEFINED_OBJECT
#undef ERRCODE_UNDEFINED_TABLE
#undef ERRCODE_DUPLICATE_TABLE
#undef ERRCODE_IO
#undef ERRCODE_DISK_FULL
#undef ERRCODE_OUT_OF_MEMORY
#undef ERRCODE_CONNECTION
#undef ERRCODE_PROTOCOL
#undef ERRCODE_AUTH
#undef ERRCODE_PERMISSION
#undef ERRCODE_DATA_CORRUPTED
#undef ERRCODE_NOT_FOUND
#undef ERRCODE_INTERNAL
#undef ERRCODE_OUT_OF_RANGE
#undef ERRCODE_TIMEOUT
#undef ERRCODE_CANCELED
#undef ERRCODE_STORAGE
#undef ERRCODE_TRANSIENT

/*
 * The raw parse tree of libpg_query is PostgreSQL 15's own (pg_query_raw_parse, an internal
 * interface): configure checks that library and headers are both 15, and gate_self_check()
 * checks at run time that the node tags still match.  pg_query.h's version macros collide
 * with the server's pg_config.h.
 */
#include <pg_query.h>
static const int gate_pg_query_version = PG_VERSION_NUM;
#undef PG_VERSION
#undef PG_VERSION_NUM
#undef PG_MAJORVERSION
#include <postgres.h>
#include <pg_query/pg_query_internal.h>
#include <nodes/parsenodes.h>
#include <nodes/pg_list.h>

/* PostgreSQL's port.h maps these to its own implementations (present in libpg_query). */
#undef snprintf
#undef vsnprintf
#undef printf
#undef fprintf
#undef sprintf

/*
 * libpg_query 15-4.0's pg_query_parse_plpgsql leaks one byte (a stderr buffer) for each body
 * it rejects; under LeakSanitizer that call is not counted, and nothing else is exempted.
 */
#if defined(__SANITIZE_ADDRESS__)
#define GATE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GATE_LSAN 1
#endif
#endif
#ifdef GATE_LSAN
#include <sanitizer/lsan_interface.h>
#define LIBRARY_LEAK_BEGIN() __lsan_disable()
#define LIBRARY_LEAK_END() __lsan_enable()
#else
#define LIBRARY_LEAK_BEGIN() ((void) 0)
#define LIBRARY_LEAK_END() ((void) 0)
#endif

#define GATE_MAX_DEPTH 1000		/* tree nesting beyond this is refused (no one writes it) */
#define GATE_MAX_NESTING 8		/* bodies within bodies (DO, functions, triggers) */
#define GATE_MAX_TEXT (64 * 1024 * 1024)

/* ------------------------------------------------------------------------------------------
 * Levels, results
 * ------------------------------------------------------------------------------------------ */

static const char *const level_names[GATE_NLEVELS] = {"SAFE", "LOW", "MEDIUM", "HIGH", "CRITICAL"};

const char *
gate_level_name(gate_level level)
{
	if ((int) level < 0 || level >= GATE_NLEVELS)
		return "?";
	return level_names[level];
}

int
gate_level_parse(const char *s, gate_level *out)
{
	for (int i = 0; i < GATE_NLEVELS; i++)
		if (strcasecmp(s, level_names[i]) == 0)
		{
			*out = (gate_level) i;
			return 0;
		}
	return -1;
}

static gate_level
max_level(gate_level a, gate_level b)
{
	return a > b ? a : b;
}

static gate_level
min_level(gate_level a, gate_level b)
{
	return a < b ? a : b;
}

void
gate_rel_clear(gate_rel *r)
{
	free(r->nspname);
	free(r->relname);
	memset(r, 0, sizeof(*r));
}

void
gate_func_clear(gate_func *f)
{
	free(f->nspname);
	free(f->name);
	free(f->language);
	free(f->definition);
	memset(f, 0, sizeof(*f));
}

static void
target_clear(gate_target *t)
{
	free(t->schema);
	free(t->name);
	free(t->nspname);
	free(t->relname);
}

static void
stmt_clear(gate_stmt *st)
{
	for (int i = 0; i < st->nreasons; i++)
		free(st->reasons[i].text);
	free(st->reasons);
	for (int i = 0; i < st->ntargets; i++)
		target_clear(&st->targets[i]);
	free(st->targets);
	memset(st, 0, sizeof(*st));
}

void
gate_result_free(gate_result *r)
{
	if (r == NULL)
		return;
	for (int i = 0; i < r->nstmts; i++)
		stmt_clear(&r->stmts[i]);
	free(r->stmts);
	free(r);
}

static char *
dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void
stmt_copy(gate_stmt *dst, const gate_stmt *src)
{
	*dst = *src;
	dst->reasons = src->nreasons ? xcalloc((size_t) src->nreasons, sizeof(gate_reason)) : NULL;
	for (int i = 0; i < src->nreasons; i++)
	{
		dst->reasons[i] = src->reasons[i];
		dst->reasons[i].text = xstrdup(src->reasons[i].text);
	}
	dst->targets = src->ntargets ? xcalloc((size_t) src->ntargets, sizeof(gate_target)) : NULL;
	for (int i = 0; i < src->ntargets; i++)
	{
		const gate_target *s = &src->targets[i];
		gate_target *d = &dst->targets[i];

		*d = *s;
		d->schema = dup_or_null(s->schema);
		d->name = dup_or_null(s->name);
		d->nspname = dup_or_null(s->nspname);
		d->relname = dup_or_null(s->relname);
	}
}

gate_result *
gate_result_copy(const gate_result *r)
{
	gate_result *c = xcalloc(1, sizeof(*c));

	*c = *r;
	c->stmts = r->nstmts ? xcalloc((size_t) r->nstmts, sizeof(gate_stmt)) : NULL;
	for (int i = 0; i < r->nstmts; i++)
		stmt_copy(&c->stmts[i], &r->stmts[i]);
	return c;
}

/* An identifier as PostgreSQL would print it: quoted unless plain lower-case. */
static void
append_ident(strbuf *sb, const char *id)
{
	bool plain = id[0] != '\0' && (islower((unsigned char) id[0]) || id[0] == '_');

	for (const char *p = id; plain && *p; p++)
		if (!(islower((unsigned char) *p) || isdigit((unsigned char) *p) || *p == '_' || *p == '$'))
			plain = false;
	if (plain)
	{
		strbuf_append_str(sb, id);
		return;
	}
	strbuf_append_char(sb, '"');
	for (const char *p = id; *p;)
	{
		const char *q = strchr(p, '"');
		size_t n = q ? (size_t) (q - p) + 1 : strlen(p);

		strbuf_append(sb, p, n);
		if (q)
			strbuf_append_char(sb, '"');
		p += n;
	}
	strbuf_append_char(sb, '"');
}

static char *
display_name(const char *schema, const char *name)
{
	strbuf sb = STRBUF_INIT;

	if (schema)
	{
		append_ident(&sb, schema);
		strbuf_append_char(&sb, '.');
	}
	append_ident(&sb, name ? name : "?");
	return strbuf_detach(&sb, NULL);
}

char *
gate_target_display(const gate_target *t)
{
	if (t->resolved && t->exists && t->relname)
		return display_name(t->nspname, t->relname);
	return display_name(t->schema, t->name);
}

/* ------------------------------------------------------------------------------------------
 * Session state
 * ------------------------------------------------------------------------------------------ */

typedef struct named_stmt
{
	char *name;
	gate_stmt *st;				/* heap: a prepared statement's classification */
} named_stmt;

typedef struct named_text
{
	char *schema;				/* as written, may be NULL */
	char *name;
	char *text;					/* the CREATE FUNCTION statement */
} named_text;

struct gate_session
{
	named_stmt *prepared;
	int nprepared;
	named_text *functions;
	int nfunctions;
	bool in_block;				/* a BEGIN of the session's own is open */
	gate_stmt **graveyard;		/* replaced prepared statements, freed after the call */
	int ngraveyard;
};

gate_session *
gate_session_new(void)
{
	return xcalloc(1, sizeof(gate_session));
}

static void
heap_stmt_free(gate_stmt *st)
{
	if (st)
	{
		stmt_clear(st);
		free(st);
	}
}

static void
session_bury(gate_session *s)
{
	for (int i = 0; i < s->ngraveyard; i++)
		heap_stmt_free(s->graveyard[i]);
	free(s->graveyard);
	s->graveyard = NULL;
	s->ngraveyard = 0;
}

void
gate_session_free(gate_session *s)
{
	if (s == NULL)
		return;
	for (int i = 0; i < s->nprepared; i++)
	{
		free(s->prepared[i].name);
		heap_stmt_free(s->prepared[i].st);
	}
	free(s->prepared);
	for (int i = 0; i < s->nfunctions; i++)
	{
		free(s->functions[i].schema);
		free(s->functions[i].name);
		free(s->functions[i].text);
	}
	free(s->functions);
	session_bury(s);
	free(s);
}

static gate_stmt *
session_prepared(gate_session *s, const char *name)
{
	for (int i = 0; s && i < s->nprepared; i++)
		if (strcmp(s->prepared[i].name, name) == 0)
			return s->prepared[i].st;
	return NULL;
}

/* Forget a prepared statement (DEALLOCATE); its classification may still be referenced by
 * work queued in this call, so it is freed at the end of the call. */
static void
session_deallocate(gate_session *s, const char *name)
{
	for (int i = 0; i < s->nprepared; i++)
		if (name == NULL || strcmp(s->prepared[i].name, name) == 0)
		{
			s->graveyard = xrealloc(s->graveyard, sizeof(gate_stmt *) * (size_t) (s->ngraveyard + 1));
			s->graveyard[s->ngraveyard++] = s->prepared[i].st;
			free(s->prepared[i].name);
			s->prepared[i] = s->prepared[--s->nprepared];
			i--;
		}
}

static void
session_prepare(gate_session *s, const char *name, gate_stmt *st)
{
	session_deallocate(s, name);
	s->prepared = xrealloc(s->prepared, sizeof(named_stmt) * (size_t) (s->nprepared + 1));
	s->prepared[s->nprepared].name = xstrdup(name);
	s->prepared[s->nprepared].st = st;
	s->nprepared++;
}

static const named_text *
session_function(const gate_session *s, const char *schema, const char *name)
{
	/* the newest definition of that name (older ones stay: work queued may point at them) */
	for (int i = s ? s->nfunctions - 1 : -1; i >= 0; i--)
	{
		const named_text *f = &s->functions[i];

		if (strcmp(f->name, name) != 0)
			continue;
		if (schema && f->schema && strcmp(schema, f->schema) != 0)
			continue;
		return f;
	}
	return NULL;
}

static void
session_add_function(gate_session *s, const char *schema, const char *name, const char *text, size_t len)
{
	s->functions = xrealloc(s->functions, sizeof(named_text) * (size_t) (s->nfunctions + 1));
	s->functions[s->nfunctions].schema = dup_or_null(schema);
	s->functions[s->nfunctions].name = xstrdup(name);
	s->functions[s->nfunctions].text = xstrndup(text, len);
	s->nfunctions++;
}

/* ------------------------------------------------------------------------------------------
 * Classification state
 * ------------------------------------------------------------------------------------------ */

/* A relation's or a function's name: the key of a catalog answer kept for the call. */
typedef struct name_key
{
	char *schema;				/* NULL: unqualified */
	char *name;
} name_key;

typedef struct rel_entry
{
	name_key key;				/* first: see name_find */
	bool found;
	gate_rel rel;
} rel_entry;

typedef struct col_entry
{
	uint32_t oid;
	char *column;
	gate_column col;
} col_entry;

typedef struct fn_entry
{
	name_key key;				/* first: see name_find */
	gate_func *funcs;
	int n;
} fn_entry;

/* A function body classified in this call: cache, and guard against recursion. */
typedef struct body_entry
{
	uint32_t oid;				/* 0: a session-defined function, keyed by its definition */
	const void *key;
	bool busy;
	gate_stmt *summary;			/* heap */
} body_entry;

typedef struct gctx
{
	const gate_options *opts;
	const gate_catalog *cat;
	gate_session *session;
	bool own_session;
	bs_error *err;
	bool failed;				/* a catalog callback failed: err holds why */
	bool search_path_changed;	/* by an earlier statement of this call: names not resolved */
	bool session_dependent;		/* the result depends on session state: not cacheable */
	rel_entry *rels;
	int nrels;
	col_entry *cols;
	int ncols;
	fn_entry *fns;
	int nfns;
	body_entry *bodies;
	int nbodies;
} gctx;

typedef enum item_kind
{
	ITEM_SQL,					/* SQL text (a function body, EXECUTE of a constant) */
	ITEM_PLPGSQL,				/* a DO or CREATE FUNCTION ... LANGUAGE plpgsql statement */
	ITEM_FUNCTION,				/* a function found in the catalog or the session */
	ITEM_PREPARED				/* EXECUTE of a statement prepared in this session */
} item_kind;

/* Work that needs a parse of its own, done once the current parse tree is released
 * (libpg_query's memory contexts do not nest). */
typedef struct item
{
	item_kind kind;
	gate_stmt *st;				/* where the findings go */
	char *text;
	char *prefix;				/* "DO block", "function public.f()", ... */
	gate_level cap;				/* findings above this are lowered (not in effect now) */
	bool targets;				/* the findings' targets are the statement's targets */
	bool must_parse;			/* unparsable: refuse (else: an invisible body) */
	bool body_only;				/* text is a CREATE FUNCTION/RULE: only its body counts */
	bool volatile_fn;			/* invisible body is HIGH (volatile), else SAFE */
	int depth;
	uint32_t oid;
	const void *key;			/* a session function's definition (stable during the call) */
	const gate_stmt *prepared;
} item;

typedef struct tctx
{
	gctx *g;
	const char *sql;
	int depth;					/* bodies within bodies */
	bool body_only;
	item *items;
	int nitems;
} tctx;

typedef struct walk
{
	tctx *t;
	gate_stmt *st;
	const char *prefix;
	gate_level cap;
	bool targets;
	int depth;
	const char *text;			/* the current statement's text */
	size_t text_len;
} walk;

static int
vreason_text(gate_stmt *st, const char *prefix, gate_level level, int target, bool unknown, const char *text)
{
	size_t plen = prefix ? strlen(prefix) + 2 : 0;
	size_t tlen = strlen(text);
	char *full = xmalloc(plen + tlen + 1);

	if (prefix)
	{
		memcpy(full, prefix, plen - 2);
		memcpy(full + plen - 2, ": ", 2);
	}
	memcpy(full + plen, text, tlen + 1);
	for (int i = 0; i < st->nreasons; i++)
		if (st->reasons[i].target == target && strcmp(st->reasons[i].text, full) == 0)
		{
			st->reasons[i].level = max_level(st->reasons[i].level, level);
			st->reasons[i].unknown_targets |= unknown;
			st->level = max_level(st->level, level);
			st->unknown_targets |= unknown;
			free(full);
			return i;
		}
	st->reasons = xrealloc(st->reasons, sizeof(gate_reason) * (size_t) (st->nreasons + 1));
	st->reasons[st->nreasons].level = level;
	st->reasons[st->nreasons].target = target;
	st->reasons[st->nreasons].unknown_targets = unknown;
	st->reasons[st->nreasons].refusal = false;
	st->reasons[st->nreasons].text = full;
	st->nreasons++;
	st->level = max_level(st->level, level);
	st->unknown_targets |= unknown;
	return st->nreasons - 1;
}

static void
vreason(gate_stmt *st, const char *prefix, gate_level level, int target, bool unknown,
		const char *fmt, va_list ap)
{
	char buf[512];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	vreason_text(st, prefix, level, target, unknown, buf);
}

static void __attribute__((format(printf, 5, 6)))
reason(walk *w, gate_level level, int target, bool unknown, const char *fmt, ...)
{
	va_list ap;

	level = min_level(level, w->cap);
	if (!w->targets)
	{
		target = -1;
		unknown = false;
	}
	va_start(ap, fmt);
	vreason(w->st, w->prefix, level, target, unknown, fmt, ap);
	va_end(ap);
}

/* reason() without printf, for the statements every application sends: a + b + c. */
static void
reason3(walk *w, gate_level level, int target, const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	char buf[512];

	if (la + lb + lc >= sizeof(buf))
	{
		reason(w, level, target, false, "%s%s%s", a, b, c);
		return;
	}
	memcpy(buf, a, la);
	memcpy(buf + la, b, lb);
	memcpy(buf + la + lb, c, lc + 1);
	level = min_level(level, w->cap);
	if (!w->targets)
		target = -1;
	vreason_text(w->st, w->prefix, level, target, false, buf);
}

/* Refuse the statement whatever the policy: the gate cannot decide it. */
static void __attribute__((format(printf, 2, 3)))
refuse(walk *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreason(w->st, w->prefix, GATE_CRITICAL, -1, false, fmt, ap);
	va_end(ap);
	w->st->reasons[w->st->nreasons - 1].refusal = true;
	w->st->refuse = true;
}

static bool
str_eq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* The session, created on first use when the caller gave none (most strings need none). */
static gate_session *
session_of(gctx *g)
{
	if (g->session == NULL)
	{
		g->session = gate_session_new();
		g->own_session = true;
	}
	return g->session;
}

static bool
cat_ok(gctx *g)
{
	return g->cat != NULL && !g->failed;
}

/*
 * The index of schema.name among the n entries (of size bytes each, each beginning with its
 * name_key) of a catalog answer cache, or -1.
 */
static int
name_find(const void *entries, int n, size_t size, const char *schema, const char *name)
{
	for (int i = 0; i < n; i++)
	{
		const name_key *k = (const name_key *) ((const char *) entries + (size_t) i * size);

		if (str_eq(k->schema, schema) && strcmp(k->name, name) == 0)
			return i;
	}
	return -1;
}

/* An array of n entries of size bytes, grown by one zeroed entry at its end. */
static void *
grow_zeroed(void *entries, int n, size_t size)
{
	entries = xrealloc(entries, size * (size_t) (n + 1));
	memset((char *) entries + size * (size_t) n, 0, size);
	return entries;
}

static void
name_key_set(name_key *k, const char *schema, const char *name)
{
	k->schema = dup_or_null(schema);
	k->name = xstrdup(name);
}

static void
name_key_clear(name_key *k)
{
	free(k->schema);
	free(k->name);
}

/* Resolve a relation through the catalog, once per name in this call. */
static const rel_entry *
resolve(gctx *g, const char *schema, const char *name)
{
	rel_entry *e;
	int i;

	if (!cat_ok(g) || g->cat->relation == NULL || g->search_path_changed)
		return NULL;
	if ((i = name_find(g->rels, g->nrels, sizeof(rel_entry), schema, name)) >= 0)
		return &g->rels[i];
	g->rels = grow_zeroed(g->rels, g->nrels, sizeof(rel_entry));
	e = &g->rels[g->nrels];
	if (g->cat->relation(g->cat->arg, schema, name, &e->found, &e->rel, g->err) != BS_OK)
	{
		gate_rel_clear(&e->rel);
		g->failed = true;
		return NULL;
	}
	name_key_set(&e->key, schema, name);
	g->nrels++;
	return e;
}

static bool
is_catalog_schema(const char *s)
{
	return s && (strcmp(s, "pg_catalog") == 0 || strcmp(s, "information_schema") == 0 ||
				 strcmp(s, "pg_toast") == 0);
}

/* Record a target (deduplicated; the worst level kept) and resolve it; returns its index. */
static int
add_target(walk *w, gate_target_kind kind, const char *schema, const char *name, gate_level level,
		   bool only, int via)
{
	gate_stmt *st = w->st;
	gate_target *t;

	if (!w->targets || name == NULL)
		return -1;
	level = min_level(level, w->cap);
	for (int i = 0; i < st->ntargets; i++)
	{
		t = &st->targets[i];
		if (t->kind == kind && str_eq(t->schema, schema) && strcmp(t->name, name) == 0 && t->only == only)
		{
			t->level = max_level(t->level, level);
			return i;
		}
	}
	st->targets = xrealloc(st->targets, sizeof(gate_target) * (size_t) (st->ntargets + 1));
	t = &st->targets[st->ntargets];
	memset(t, 0, sizeof(*t));
	t->kind = kind;
	t->schema = dup_or_null(schema);
	t->name = xstrdup(name);
	t->level = level;
	t->only = only;
	t->via = via;
	if (kind == GATE_TARGET_RELATION)
	{
		const rel_entry *e = resolve(w->t->g, schema, name);

		if (e)
		{
			t->resolved = true;
			t->exists = e->found;
			if (e->found)
			{
				t->oid = e->rel.oid;
				t->nspname = dup_or_null(e->rel.nspname);
				t->relname = dup_or_null(e->rel.relname);
				t->relkind = e->rel.relkind;
				t->temp = e->rel.temp;
			}
		}
	}
	return st->ntargets++;
}

/* Add a relation already resolved by the catalog (reached through another target). */
static int
add_reached(walk *w, const gate_rel *r, gate_level level, int via)
{
	gate_stmt *st = w->st;
	gate_target *t;

	if (!w->targets)
		return -1;
	level = min_level(level, w->cap);
	for (int i = 0; i < st->ntargets; i++)
		if (st->targets[i].resolved && st->targets[i].exists && st->targets[i].oid == r->oid)
		{
			st->targets[i].level = max_level(st->targets[i].level, level);
			return i;
		}
	st->targets = xrealloc(st->targets, sizeof(gate_target) * (size_t) (st->ntargets + 1));
	t = &st->targets[st->ntargets];
	memset(t, 0, sizeof(*t));
	t->kind = GATE_TARGET_RELATION;
	t->schema = dup_or_null(r->nspname);
	t->name = xstrdup(r->relname ? r->relname : "?");
	t->level = level;
	t->only = false;
	t->via = via;
	t->resolved = true;
	t->exists = true;
	t->oid = r->oid;
	t->nspname = dup_or_null(r->nspname);
	t->relname = dup_or_null(r->relname);
	t->relkind = r->relkind;
	t->temp = r->temp;
	return st->ntargets++;
}

static char *
target_name(walk *w, int idx, const char *schema, const char *name)
{
	if (idx >= 0)
		return gate_target_display(&w->st->targets[idx]);
	return display_name(schema, name);
}

/* Expand a target to what it reaches (children, cascades, a schema's or role's tables).
 * Returns how many relations were added. */
static int
expand(walk *w, int idx, gate_reach how, const char *byname, gate_level level, const char *what)
{
	gctx *g = w->t->g;
	gate_rel *rels = NULL;
	int n = 0;
	uint32_t oid = 0;
	char *via;

	if (!cat_ok(g) || g->cat->reach == NULL || idx < 0 || g->search_path_changed)
		return 0;
	if (byname == NULL)
	{
		gate_target *t = &w->st->targets[idx];

		if (!t->resolved || !t->exists)
			return 0;
		oid = t->oid;
	}
	if (g->cat->reach(g->cat->arg, how, oid, byname, &rels, &n, g->err) != BS_OK)
	{
		g->failed = true;
		return 0;
	}
	via = gate_target_display(&w->st->targets[idx]);
	for (int i = 0; i < n; i++)
	{
		int j = add_reached(w, &rels[i], level, idx);

		if (j >= 0 && j != idx)
		{
			char *name = gate_target_display(&w->st->targets[j]);

			reason(w, level, j, false, "%s %s (%s)", what, name, via);
			free(name);
		}
		gate_rel_clear(&rels[i]);
	}
	free(rels);
	free(via);
	return n;
}

static void
queue_item(walk *w, item_kind kind, const char *text, size_t len, const char *prefix,
		   gate_level cap, bool targets, bool must_parse)
{
	tctx *t = w->t;
	item *it;

	t->items = xrealloc(t->items, sizeof(item) * (size_t) (t->nitems + 1));
	it = &t->items[t->nitems++];
	memset(it, 0, sizeof(*it));
	it->kind = kind;
	it->st = w->st;
	it->text = text ? xstrndup(text, len) : NULL;
	if (w->prefix && prefix)
	{
		strbuf sb = STRBUF_INIT;

		strbuf_printf(&sb, "%s: %s", w->prefix, prefix);
		it->prefix = strbuf_detach(&sb, NULL);
	}
	else
		it->prefix = dup_or_null(prefix ? prefix : w->prefix);
	it->cap = min_level(cap, w->cap);
	it->targets = targets && w->targets;
	it->must_parse = must_parse;
	it->depth = t->depth + 1;
}

/* ------------------------------------------------------------------------------------------
 * Tree helpers
 * ------------------------------------------------------------------------------------------ */

typedef bool (*child_fn) (Node *child, void *arg);

/*
 * The direct children of the node types of a raw DML statement or expression (those
 * PostgreSQL's raw_expression_tree_walker knows, and a few more): the offsets of their
 * pointer fields, in the order they are visited.  A type listed without offsets has no
 * children; a type not listed is unknown, and the walk fails closed on it.
 */
typedef struct node_children
{
	bool		known;
	uint16		off[17];		/* zero-terminated: offset 0 holds the node tag, never a child */
} node_children;

/* The offset of a child field, which must be a pointer (to a Node or a List). */
#define F(type, field) \
	(offsetof(type, field) + 0 * sizeof(char[sizeof(((type *) 0)->field) == sizeof(Node *) ? 1 : -1]))
#define LEAF(tag) [tag] = {true, {0}}

static const node_children node_children_of[] = {
	LEAF(T_SetToDefault), LEAF(T_CurrentOfExpr), LEAF(T_SQLValueFunction), LEAF(T_Integer),
	LEAF(T_Float), LEAF(T_Boolean), LEAF(T_String), LEAF(T_BitString), LEAF(T_ParamRef),
	LEAF(T_A_Const), LEAF(T_A_Star), LEAF(T_Alias), LEAF(T_ColumnRef), LEAF(T_RangeVar),
	LEAF(T_RoleSpec), LEAF(T_TableLikeClause), LEAF(T_TriggerTransition), LEAF(T_ObjectWithArgs),
	LEAF(T_PartitionSpec), LEAF(T_CTESearchClause),
	[T_GroupingFunc] = {true, {F(GroupingFunc, args)}},
	[T_SubLink] = {true, {F(SubLink, testexpr), F(SubLink, subselect)}},
	[T_CaseExpr] = {true, {F(CaseExpr, arg), F(CaseExpr, args), F(CaseExpr, defresult)}},
	[T_CaseWhen] = {true, {F(CaseWhen, expr), F(CaseWhen, result)}},
	[T_RowExpr] = {true, {F(RowExpr, args)}},
	[T_CoalesceExpr] = {true, {F(CoalesceExpr, args)}},
	[T_MinMaxExpr] = {true, {F(MinMaxExpr, args)}},
	[T_XmlExpr] = {true, {F(XmlExpr, named_args), F(XmlExpr, args)}},
	[T_NullTest] = {true, {F(NullTest, arg)}},
	[T_BooleanTest] = {true, {F(BooleanTest, arg)}},
	[T_JoinExpr] = {true, {F(JoinExpr, larg), F(JoinExpr, rarg), F(JoinExpr, quals)}},
	[T_IntoClause] = {true, {F(IntoClause, rel), F(IntoClause, viewQuery)}},
	[T_InsertStmt] = {true, {F(InsertStmt, relation), F(InsertStmt, cols),
		F(InsertStmt, selectStmt), F(InsertStmt, onConflictClause), F(InsertStmt, returningList),
		F(InsertStmt, withClause)}},
	[T_DeleteStmt] = {true, {F(DeleteStmt, relation), F(DeleteStmt, usingClause),
		F(DeleteStmt, whereClause), F(DeleteStmt, returningList), F(DeleteStmt, withClause)}},
	[T_UpdateStmt] = {true, {F(UpdateStmt, relation), F(UpdateStmt, targetList),
		F(UpdateStmt, whereClause), F(UpdateStmt, fromClause), F(UpdateStmt, returningList),
		F(UpdateStmt, withClause)}},
	[T_MergeStmt] = {true, {F(MergeStmt, relation), F(MergeStmt, sourceRelation),
		F(MergeStmt, joinCondition), F(MergeStmt, mergeWhenClauses), F(MergeStmt, withClause)}},
	[T_MergeWhenClause] = {true, {F(MergeWhenClause, condition), F(MergeWhenClause, targetList),
		F(MergeWhenClause, values)}},
	[T_SelectStmt] = {true, {F(SelectStmt, distinctClause), F(SelectStmt, intoClause),
		F(SelectStmt, targetList), F(SelectStmt, fromClause), F(SelectStmt, whereClause),
		F(SelectStmt, groupClause), F(SelectStmt, havingClause), F(SelectStmt, windowClause),
		F(SelectStmt, valuesLists), F(SelectStmt, sortClause), F(SelectStmt, limitOffset),
		F(SelectStmt, limitCount), F(SelectStmt, lockingClause), F(SelectStmt, withClause),
		F(SelectStmt, larg), F(SelectStmt, rarg)}},
	[T_PLAssignStmt] = {true, {F(PLAssignStmt, indirection), F(PLAssignStmt, val)}},
	[T_ReturnStmt] = {true, {F(ReturnStmt, returnval)}},
	[T_A_Expr] = {true, {F(A_Expr, lexpr), F(A_Expr, rexpr)}},
	[T_BoolExpr] = {true, {F(BoolExpr, args)}},
	[T_FuncCall] = {true, {F(FuncCall, args), F(FuncCall, agg_order), F(FuncCall, agg_filter),
		F(FuncCall, over)}},
	[T_NamedArgExpr] = {true, {F(NamedArgExpr, arg)}},
	[T_A_Indices] = {true, {F(A_Indices, lidx), F(A_Indices, uidx)}},
	[T_A_Indirection] = {true, {F(A_Indirection, arg), F(A_Indirection, indirection)}},
	[T_A_ArrayExpr] = {true, {F(A_ArrayExpr, elements)}},
	[T_ResTarget] = {true, {F(ResTarget, indirection), F(ResTarget, val)}},
	[T_MultiAssignRef] = {true, {F(MultiAssignRef, source)}},
	[T_TypeCast] = {true, {F(TypeCast, arg), F(TypeCast, typeName)}},
	[T_CollateClause] = {true, {F(CollateClause, arg)}},
	[T_SortBy] = {true, {F(SortBy, node)}},
	[T_WindowDef] = {true, {F(WindowDef, partitionClause), F(WindowDef, orderClause),
		F(WindowDef, startOffset), F(WindowDef, endOffset)}},
	[T_RangeSubselect] = {true, {F(RangeSubselect, subquery)}},
	[T_RangeFunction] = {true, {F(RangeFunction, functions), F(RangeFunction, coldeflist)}},
	[T_RangeTableSample] = {true, {F(RangeTableSample, relation), F(RangeTableSample, args),
		F(RangeTableSample, repeatable)}},
	[T_RangeTableFunc] = {true, {F(RangeTableFunc, docexpr), F(RangeTableFunc, rowexpr),
		F(RangeTableFunc, namespaces), F(RangeTableFunc, columns)}},
	[T_RangeTableFuncCol] = {true, {F(RangeTableFuncCol, colexpr),
		F(RangeTableFuncCol, coldefexpr)}},
	[T_TypeName] = {true, {F(TypeName, typmods), F(TypeName, arrayBounds)}},
	[T_ColumnDef] = {true, {F(ColumnDef, typeName), F(ColumnDef, raw_default),
		F(ColumnDef, collClause), F(ColumnDef, constraints)}},
	[T_Constraint] = {true, {F(Constraint, raw_expr), F(Constraint, where_clause),
		F(Constraint, exclusions)}},
	[T_IndexElem] = {true, {F(IndexElem, expr)}},
	[T_GroupingSet] = {true, {F(GroupingSet, content)}},
	[T_LockingClause] = {true, {F(LockingClause, lockedRels)}},
	[T_XmlSerialize] = {true, {F(XmlSerialize, expr), F(XmlSerialize, typeName)}},
	[T_WithClause] = {true, {F(WithClause, ctes)}},
	[T_CommonTableExpr] = {true, {F(CommonTableExpr, ctequery), F(CommonTableExpr, cycle_clause)}},
	[T_CTECycleClause] = {true, {F(CTECycleClause, cycle_mark_value),
		F(CTECycleClause, cycle_mark_default)}},
	[T_InferClause] = {true, {F(InferClause, indexElems), F(InferClause, whereClause)}},
	[T_OnConflictClause] = {true, {F(OnConflictClause, infer), F(OnConflictClause, targetList),
		F(OnConflictClause, whereClause)}},
	[T_DefElem] = {true, {F(DefElem, arg)}},
	[T_PartitionBoundSpec] = {true, {F(PartitionBoundSpec, listdatums),
		F(PartitionBoundSpec, lowerdatums), F(PartitionBoundSpec, upperdatums)}},
	[T_PartitionRangeDatum] = {true, {F(PartitionRangeDatum, value)}},
	[T_PartitionElem] = {true, {F(PartitionElem, expr)}},
};

#undef LEAF
#undef F

/*
 * Call fn on every direct child of a node listed in node_children_of (and on every element of
 * a List).  Returns 1 when fn stopped the walk, -1 for a node type not listed (the caller fails
 * closed), else 0.
 */
static int
gw_children(Node *node, child_fn fn, void *arg)
{
	NodeTag		tag = nodeTag(node);
	const node_children *c;

	if (tag == T_List)
	{
		ListCell   *lc;

		foreach(lc, (List *) node)
		{
			if (lfirst(lc) != NULL && fn((Node *) lfirst(lc), arg))
				return 1;
		}
		return 0;
	}
	if ((size_t) tag >= lengthof(node_children_of) || !node_children_of[tag].known)
		return -1;
	c = &node_children_of[tag];
	for (int i = 0; i < (int) lengthof(c->off) && c->off[i] != 0; i++)
	{
		Node	   *child = *(Node **) ((char *) node + c->off[i]);

		if (child != NULL && fn(child, arg))
			return 1;
	}
	return 0;
}

/* Last element of a qualified name list (String nodes), and the one before it. */
static void
split_name(List *names, const char **schema, const char **name)
{
	int n = list_length(names);

	*schema = NULL;
	*name = NULL;
	if (n >= 1 && IsA(llast(names), String))
		*name = strVal(llast(names));
	if (n >= 2 && IsA(list_nth(names, n - 2), String))
		*schema = strVal(list_nth(names, n - 2));
}

/* The constant n is, under one cast at most; NULL for anything else and for NULL. */
static A_Const *
a_const_of(Node *n)
{
	if (n && IsA(n, TypeCast))
		n = ((TypeCast *) n)->arg;
	if (n == NULL || !IsA(n, A_Const) || ((A_Const *) n)->isnull)
		return NULL;
	return (A_Const *) n;
}

static const char *
a_const_string(Node *n)
{
	A_Const *c = a_const_of(n);

	if (c && IsA(&c->val, String))
		return strVal(&c->val);
	return NULL;
}

/* A constant's text (string or number), or NULL. */
static const char *
a_const_text(Node *n, char *buf, size_t bufsize)
{
	A_Const *c = a_const_of(n);

	if (c == NULL)
		return NULL;
	switch (nodeTag(&c->val))
	{
		case T_String:
			return strVal(&c->val);
		case T_Integer:
			snprintf(buf, bufsize, "%d", intVal(&c->val));
			return buf;
		case T_Float:
			return castNode(Float, &c->val)->fval;
		case T_Boolean:
			return boolVal(&c->val) ? "true" : "false";
		default:
			return NULL;
	}
}

/* PostgreSQL's boolean spellings (parse_bool): 1 true, 0 false, -1 not a boolean. */
static int
pg_bool(const char *s)
{
	size_t len;

	if (s == NULL)
		return -1;
	len = strlen(s);
	if (len == 0)
		return -1;
	if (strncasecmp(s, "true", len) == 0 || strncasecmp(s, "yes", len) == 0)
		return 1;
	if (strncasecmp(s, "false", len) == 0 || strncasecmp(s, "no", len) == 0)
		return 0;
	if (len >= 2 && strncasecmp(s, "on", len) == 0)
		return 1;
	if (len >= 2 && strncasecmp(s, "off", len) == 0)
		return 0;
	if (strcmp(s, "1") == 0)
		return 1;
	if (strcmp(s, "0") == 0)
		return 0;
	return -1;
}

/* ------------------------------------------------------------------------------------------
 * What the gate knows about built-in functions and settings
 * ------------------------------------------------------------------------------------------ */

typedef enum fn_special
{
	FN_PLAIN = 0,
	FN_SET_CONFIG,				/* set_config(name, value, is_local): like SET */
	FN_RUNS_SQL					/* runs the SQL text of its first argument */
} fn_special;

typedef struct builtin_fn
{
	const char *name;
	bool prefix;				/* name is a prefix (dblink*, binary_upgrade_*) */
	gate_level level;
	fn_special special;
	const char *what;
} builtin_fn;

/* Side-effect functions, matched by name whatever the schema, quoting or case. */
static const builtin_fn builtin_fns[] = {
	{"pg_terminate_backend", false, GATE_CRITICAL, FN_PLAIN, "terminates a server process"},
	{"pg_cancel_backend", false, GATE_CRITICAL, FN_PLAIN, "cancels another session's query"},
	{"pg_reload_conf", false, GATE_CRITICAL, FN_PLAIN, "reloads the server configuration"},
	{"pg_rotate_logfile", false, GATE_CRITICAL, FN_PLAIN, "rotates the server log"},
	{"set_config", false, GATE_SAFE, FN_SET_CONFIG, "changes a setting"},
	{"pg_switch_wal", false, GATE_CRITICAL, FN_PLAIN, "switches WAL"},
	{"pg_switch_xlog", false, GATE_CRITICAL, FN_PLAIN, "switches WAL"},
	{"pg_create_restore_point", false, GATE_CRITICAL, FN_PLAIN, "controls WAL"},
	{"pg_backup_start", false, GATE_CRITICAL, FN_PLAIN, "controls backups"},
	{"pg_backup_stop", false, GATE_CRITICAL, FN_PLAIN, "controls backups"},
	{"pg_start_backup", false, GATE_CRITICAL, FN_PLAIN, "controls backups"},
	{"pg_stop_backup", false, GATE_CRITICAL, FN_PLAIN, "controls backups"},
	{"pg_wal_replay_pause", false, GATE_CRITICAL, FN_PLAIN, "controls WAL replay"},
	{"pg_wal_replay_resume", false, GATE_CRITICAL, FN_PLAIN, "controls WAL replay"},
	{"pg_promote", false, GATE_CRITICAL, FN_PLAIN, "promotes a standby"},
	{"pg_create_physical_replication_slot", false, GATE_CRITICAL, FN_PLAIN, "creates a replication slot"},
	{"pg_create_logical_replication_slot", false, GATE_CRITICAL, FN_PLAIN, "creates a replication slot"},
	{"pg_drop_replication_slot", false, GATE_CRITICAL, FN_PLAIN, "drops a replication slot"},
	{"pg_replication_slot_advance", false, GATE_CRITICAL, FN_PLAIN, "advances a replication slot (skipping changes)"},
	{"pg_copy_physical_replication_slot", false, GATE_CRITICAL, FN_PLAIN, "copies a replication slot"},
	{"pg_copy_logical_replication_slot", false, GATE_CRITICAL, FN_PLAIN, "copies a replication slot"},
	{"pg_logical_slot_get_changes", false, GATE_CRITICAL, FN_PLAIN, "consumes a replication slot"},
	{"pg_logical_slot_get_binary_changes", false, GATE_CRITICAL, FN_PLAIN, "consumes a replication slot"},
	{"pg_logical_slot_peek_changes", false, GATE_CRITICAL, FN_PLAIN, "reads a replication slot"},
	{"pg_logical_slot_peek_binary_changes", false, GATE_CRITICAL, FN_PLAIN, "reads a replication slot"},
	{"pg_replication_origin_", true, GATE_CRITICAL, FN_PLAIN, "controls replication origins"},
	{"pg_read_file", false, GATE_CRITICAL, FN_PLAIN, "reads a server file"},
	{"pg_read_binary_file", false, GATE_CRITICAL, FN_PLAIN, "reads a server file"},
	{"pg_stat_file", false, GATE_CRITICAL, FN_PLAIN, "reads server file metadata"},
	{"pg_ls_", true, GATE_CRITICAL, FN_PLAIN, "lists a server directory"},
	{"pg_file_", true, GATE_CRITICAL, FN_PLAIN, "writes server files"},
	{"pg_logdir_ls", false, GATE_CRITICAL, FN_PLAIN, "lists a server directory"},
	{"lo_import", false, GATE_CRITICAL, FN_PLAIN, "reads a server file into a large object"},
	{"lo_export", false, GATE_CRITICAL, FN_PLAIN, "writes a server file"},
	{"lo_unlink", false, GATE_CRITICAL, FN_PLAIN, "destroys a large object (large objects are not archived)"},
	{"lo_truncate", false, GATE_CRITICAL, FN_PLAIN, "truncates a large object (large objects are not archived)"},
	{"lo_truncate64", false, GATE_CRITICAL, FN_PLAIN, "truncates a large object (large objects are not archived)"},
	{"lo_put", false, GATE_CRITICAL, FN_PLAIN, "overwrites a large object (large objects are not archived)"},
	{"lowrite", false, GATE_CRITICAL, FN_PLAIN, "overwrites a large object (large objects are not archived)"},
	{"lo_create", false, GATE_LOW, FN_PLAIN, "creates a large object"},
	{"lo_creat", false, GATE_LOW, FN_PLAIN, "creates a large object"},
	{"lo_from_bytea", false, GATE_LOW, FN_PLAIN, "creates a large object"},
	{"dblink", true, GATE_CRITICAL, FN_PLAIN, "opens a database connection outside the gate"},
	{"postgres_fdw_", true, GATE_CRITICAL, FN_PLAIN, "controls foreign-server connections"},
	{"binary_upgrade_", true, GATE_CRITICAL, FN_PLAIN, "is a binary-upgrade support function"},
	{"heap_force_", true, GATE_CRITICAL, FN_PLAIN, "destroys or rewrites tuples (pg_surgery)"},
	{"pg_truncate_visibility_map", false, GATE_CRITICAL, FN_PLAIN, "truncates a visibility map"},
	{"pg_stat_reset", true, GATE_MEDIUM, FN_PLAIN, "resets statistics"},
	{"pg_stat_statements_reset", false, GATE_MEDIUM, FN_PLAIN, "resets statistics"},
	{"pg_import_system_collations", false, GATE_MEDIUM, FN_PLAIN, "creates collations"},
	{"pg_extension_config_dump", false, GATE_MEDIUM, FN_PLAIN, "changes an extension"},
	{"setval", false, GATE_MEDIUM, FN_PLAIN, "moves a sequence (sequence positions are not archived)"},
	{"nextval", false, GATE_LOW, FN_PLAIN, "advances a sequence"},
	{"pg_notify", false, GATE_LOW, FN_PLAIN, "sends a notification"},
	{"pg_logical_emit_message", false, GATE_LOW, FN_PLAIN, "writes a message into WAL"},
	{"pg_log_backend_memory_contexts", false, GATE_LOW, FN_PLAIN, "logs another process's memory"},
	{"query_to_xml", false, GATE_SAFE, FN_RUNS_SQL, "runs SQL text"},
	{"query_to_xmlschema", false, GATE_SAFE, FN_RUNS_SQL, "runs SQL text"},
	{"query_to_xml_and_xmlschema", false, GATE_SAFE, FN_RUNS_SQL, "runs SQL text"},
	{"ts_stat", false, GATE_SAFE, FN_RUNS_SQL, "runs SQL text"},
	{"crosstab", true, GATE_SAFE, FN_RUNS_SQL, "runs SQL text"},
	{"connectby", false, GATE_SAFE, FN_RUNS_SQL, "runs SQL text"},
	{NULL, false, GATE_SAFE, FN_PLAIN, NULL}
};

/* Volatile extension functions with no effect on data, trusted without a look-up. */
static const char *const builtin_trusted[] = {
	"uuid_generate_v1", "uuid_generate_v1mc", "uuid_generate_v3", "uuid_generate_v4",
	"uuid_generate_v5", "gen_random_uuid", "gen_random_bytes", "gen_salt", "crypt", "digest",
	"hmac", "encrypt", "decrypt", "encrypt_iv", "decrypt_iv", "pgp_sym_encrypt",
	"pgp_sym_decrypt", "pgp_pub_encrypt", "pgp_pub_decrypt", "armor", "dearmor", NULL
};

static const builtin_fn *
find_builtin(const char *name)
{
	for (int i = 0; builtin_fns[i].name; i++)
	{
		const builtin_fn *b = &builtin_fns[i];

		if (b->prefix ? strncasecmp(name, b->name, strlen(b->name)) == 0 : strcasecmp(name, b->name) == 0)
			return b;
	}
	return NULL;
}

static bool
trusted_function(gctx *g, const char *schema, const char *name)
{
	const char *const *pat = g->opts ? g->opts->trusted_functions : NULL;

	for (int i = 0; builtin_trusted[i]; i++)
		if (strcmp(name, builtin_trusted[i]) == 0)
			return true;
	for (int i = 0; pat && pat[i]; i++)
	{
		char full[512];

		snprintf(full, sizeof(full), "%s.%s", schema ? schema : "*", name);
		if (fnmatch(pat[i], full, 0) == 0 || fnmatch(pat[i], name, 0) == 0)
			return true;
	}
	return false;
}

/* Client encodings the gate's UTF-8 parse agrees with. */
static bool
utf8_encoding(const char *v)
{
	return v && (strcasecmp(v, "utf8") == 0 || strcasecmp(v, "utf-8") == 0 || strcasecmp(v, "unicode") == 0);
}

static bool
zero_duration(const char *v)
{
	if (v == NULL)
		return true;
	while (*v == ' ')
		v++;
	if (*v == '\0')
		return true;
	for (; *v && isdigit((unsigned char) *v); v++)
		if (*v != '0')
			return false;
	return true;
}

/*
 * The level of setting a configuration parameter (SET, RESET, set_config(), SET in a function
 * definition).  value is NULL when unknown or reset to a default the gate cannot see.
 */
static void
setting_effect(walk *w, const char *verb, const char *name, const char *value, bool known)
{
	static const char *const server_reach[] = {
		"allow_system_table_mods", "ignore_system_indexes", "zero_damaged_pages",
		"ignore_checksum_failure", "ignore_invalid_pages", "session_preload_libraries",
		"local_preload_libraries", "dynamic_library_path", "jit_provider", "lo_compat_privileges",
		NULL
	};
	static const char *const timeouts[] = {
		"statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
		"idle_session_timeout", NULL
	};
	char lname[128];

	if (name == NULL)
	{
		reason(w, GATE_CRITICAL, -1, false, "%s of a setting whose name the gate cannot see", verb);
		return;
	}
	snprintf(lname, sizeof(lname), "%s", name);
	for (char *p = lname; *p; p++)
		*p = (char) tolower((unsigned char) *p);

	if (strcmp(lname, "transaction_read_only") == 0 || strcmp(lname, "default_transaction_read_only") == 0)
	{
		if (!known || pg_bool(value) != 1)
			reason(w, GATE_CRITICAL, -1, false, "%s %s %s: a read-only session can become read-write",
				   verb, lname, known && value ? value : "(to a value the gate cannot see)");
		return;
	}
	if (strcmp(lname, "standard_conforming_strings") == 0)
	{
		if (!known || pg_bool(value) != 1)
			reason(w, GATE_CRITICAL, -1, false,
				   "%s standard_conforming_strings %s: the server would lex later statements differently from the gate",
				   verb, known && value ? value : "(to a value the gate cannot see)");
		return;
	}
	if (strcmp(lname, "client_encoding") == 0 || strcmp(lname, "names") == 0)
	{
		if (!known || !utf8_encoding(value))
			reason(w, GATE_CRITICAL, -1, false,
				   "%s client_encoding %s: the gate parses UTF-8, the server would read other statements",
				   verb, known && value ? value : "(to a value the gate cannot see)");
		return;
	}
	if (strcmp(lname, "role") == 0 || strcmp(lname, "session_authorization") == 0)
	{
		reason(w, GATE_CRITICAL, -1, false, "%s %s: switches the privileges later statements run with", verb, lname);
		return;
	}
	if (strcmp(lname, "session_replication_role") == 0)
	{
		if (!known || value == NULL || strcasecmp(value, "origin") != 0)
			reason(w, GATE_CRITICAL, -1, false,
				   "%s session_replication_role: triggers and foreign keys stop firing", verb);
		return;
	}
	for (int i = 0; server_reach[i]; i++)
		if (strcmp(lname, server_reach[i]) == 0)
		{
			reason(w, GATE_CRITICAL, -1, false, "%s %s: reaches the server's files or catalogs", verb, lname);
			return;
		}
	for (int i = 0; timeouts[i]; i++)
		if (strcmp(lname, timeouts[i]) == 0)
		{
			if (!known || zero_duration(value))
				reason(w, GATE_MEDIUM, -1, false, "%s %s: removes a timeout", verb, lname);
			return;
		}
	if (strcmp(lname, "search_path") == 0)
	{
		reason(w, GATE_MEDIUM, -1, false, "%s search_path: later statements' names resolve differently", verb);
		w->t->g->search_path_changed = true;
		w->t->g->session_dependent = true;
		return;
	}
}

/* ------------------------------------------------------------------------------------------
 * Is a WHERE clause selective?  A heuristic that fails closed: it looks for conditions true
 * for every row (WHERE true, 1=1, c = c, id IS NOT NULL on a NOT NULL column, id > 0 on a
 * generated key, conditions that do not depend on the target's rows at all).
 * ------------------------------------------------------------------------------------------ */

typedef struct where_ctx
{
	walk *w;
	const RangeVar *rel;		/* the target */
	int target;					/* its index, or -1 */
	int depth;
	char why[256];				/* what makes it match every row */
} where_ctx;

typedef struct ref_search
{
	const RangeVar *rel;
	int sub;					/* inside a sub-select: only qualified references count */
	bool found;
} ref_search;

/* Does a column reference name the target (unqualified, or by its name or alias)? */
static bool
colref_is_target(ColumnRef *cr, const RangeVar *rel, bool qualified_only)
{
	int n = list_length(cr->fields);
	Node *q;
	const char *qual;

	if (n <= 1)
		return !qualified_only;
	q = list_nth(cr->fields, n - 2);
	if (!IsA(q, String))
		return false;
	qual = strVal(q);
	if (rel->alias && rel->alias->aliasname)
		return strcmp(qual, rel->alias->aliasname) == 0;
	return strcmp(qual, rel->relname) == 0;
}

static bool
ref_search_fn(Node *n, void *arg)
{
	ref_search *rs = arg;
	int rc;

	if (IsA(n, ColumnRef))
	{
		if (colref_is_target((ColumnRef *) n, rs->rel, rs->sub > 0))
			rs->found = true;
		return rs->found;
	}
	if (IsA(n, SelectStmt))
		rs->sub++;
	rc = gw_children(n, ref_search_fn, rs);
	if (IsA(n, SelectStmt))
		rs->sub--;
	if (rc < 0)
		rs->found = true;		/* unknown construct: assume it depends on the rows */
	return rs->found;
}

static bool
refs_target(Node *e, const RangeVar *rel)
{
	ref_search rs = {rel, 0, false};

	ref_search_fn(e, &rs);
	return rs.found;
}

static bool
numeric_const(Node *n, double *out)
{
	A_Const *c = a_const_of(n);

	if (c == NULL)
		return false;
	if (IsA(&c->val, Integer))
	{
		*out = intVal(&c->val);
		return true;
	}
	if (IsA(&c->val, Float))
	{
		*out = strtod(castNode(Float, &c->val)->fval, NULL);
		return true;
	}
	return false;
}

static const char *
op_name(A_Expr *e)
{
	if (list_length(e->name) < 1 || !IsA(llast(e->name), String))
		return "";
	return strVal(llast(e->name));
}

/* The value of a constant boolean expression: 1 true, 0 false or NULL, -1 not a constant. */
static int
const_bool(Node *e, int depth)
{
	if (e == NULL || depth > 50)
		return -1;
	if (IsA(e, TypeCast))
		return const_bool(((TypeCast *) e)->arg, depth + 1);
	if (IsA(e, A_Const))
	{
		A_Const *c = (A_Const *) e;

		if (c->isnull)
			return 0;
		if (IsA(&c->val, Boolean))
			return boolVal(&c->val) ? 1 : 0;
		if (IsA(&c->val, String))
			return pg_bool(strVal(&c->val));
		return -1;
	}
	if (IsA(e, BoolExpr))
	{
		BoolExpr *b = (BoolExpr *) e;
		ListCell *lc;
		int acc = b->boolop == AND_EXPR ? 1 : 0;

		if (b->boolop == NOT_EXPR)
		{
			int v = const_bool(linitial(b->args), depth + 1);

			return v < 0 ? -1 : !v;
		}
		foreach(lc, b->args)
		{
			int v = const_bool(lfirst(lc), depth + 1);

			if (v < 0)
				return -1;
			acc = b->boolop == AND_EXPR ? (acc && v) : (acc || v);
		}
		return acc;
	}
	if (IsA(e, A_Expr) && ((A_Expr *) e)->kind == AEXPR_OP)
	{
		A_Expr *a = (A_Expr *) e;
		const char *op = op_name(a);
		double l, r;
		int cmp;
		const char *ls = a_const_string(a->lexpr), *rs = a_const_string(a->rexpr);

		if (numeric_const(a->lexpr, &l) && numeric_const(a->rexpr, &r))
			cmp = l < r ? -1 : l > r ? 1 : 0;
		else if (ls && rs)
			cmp = strcmp(ls, rs);
		else
			return -1;
		if (strcmp(op, "=") == 0)
			return cmp == 0;
		if (strcmp(op, "<>") == 0 || strcmp(op, "!=") == 0)
			return cmp != 0;
		if (strcmp(op, "<") == 0)
			return cmp < 0;
		if (strcmp(op, "<=") == 0)
			return cmp <= 0;
		if (strcmp(op, ">") == 0)
			return cmp > 0;
		if (strcmp(op, ">=") == 0)
			return cmp >= 0;
	}
	return -1;
}

static const char *
colref_name(Node *n)
{
	ColumnRef *cr;

	if (n && IsA(n, TypeCast))
		n = ((TypeCast *) n)->arg;
	if (n == NULL || !IsA(n, ColumnRef))
		return NULL;
	cr = (ColumnRef *) n;
	if (list_length(cr->fields) < 1 || !IsA(llast(cr->fields), String))
		return NULL;
	return strVal(llast(cr->fields));
}

static bool
same_column(Node *a, Node *b)
{
	const char *x = colref_name(a), *y = colref_name(b);

	return x && y && strcmp(x, y) == 0 && equal(a, b);
}

/* Column facts from the catalog; without one, the worst case (NOT NULL, and a column named
 * id taken for a generated key). */
static gate_column
column_facts(where_ctx *wc, const char *col)
{
	gctx *g = wc->w->t->g;
	gate_column c = {true, true, strcmp(col, "id") == 0};
	const gate_target *t;

	if (wc->target < 0 || !cat_ok(g) || g->cat->column == NULL)
		return c;
	t = &wc->w->st->targets[wc->target];
	if (!t->resolved || !t->exists)
		return c;
	for (int i = 0; i < g->ncols; i++)
		if (g->cols[i].oid == t->oid && strcmp(g->cols[i].column, col) == 0)
			return g->cols[i].col;
	memset(&c, 0, sizeof(c));
	if (g->cat->column(g->cat->arg, t->oid, col, &c, g->err) != BS_OK)
	{
		g->failed = true;
		c.exists = c.notnull = true;
		return c;
	}
	if (!c.exists)
		c.notnull = true;		/* the statement fails; nothing to learn */
	g->cols = xrealloc(g->cols, sizeof(col_entry) * (size_t) (g->ncols + 1));
	g->cols[g->ncols].oid = t->oid;
	g->cols[g->ncols].column = xstrdup(col);
	g->cols[g->ncols].col = c;
	g->ncols++;
	return c;
}

static bool taut(where_ctx *wc, Node *e);

static bool
taut_not_null(where_ctx *wc, Node *arg, const char *how)
{
	const char *col = colref_name(arg);
	gate_column c;

	if (col == NULL)
	{
		snprintf(wc->why, sizeof(wc->why), "%s on an expression may match every row", how);
		return true;
	}
	c = column_facts(wc, col);
	if (!c.notnull)
		return false;
	snprintf(wc->why, sizeof(wc->why), "%s %s matches every row (%s)", col, how,
			 cat_ok(wc->w->t->g) && wc->target >= 0 && wc->w->st->targets[wc->target].resolved ?
			 "the column is NOT NULL" : "not known to be nullable: no connection");
	return true;
}

/* col OP constant on a generated key that every row satisfies (id > 0, id >= 1, id <> 5). */
static bool
taut_key_range(where_ctx *wc, A_Expr *a, const char *op)
{
	Node *col = a->lexpr, *val = a->rexpr;
	const char *name;
	double v;
	bool all = false;
	char flipped[3];

	if (colref_name(col) == NULL)
	{
		/* constant OP column: mirror the operator */
		col = a->rexpr;
		val = a->lexpr;
		if (strcmp(op, "<") == 0)
			op = ">";
		else if (strcmp(op, ">") == 0)
			op = "<";
		else if (strcmp(op, "<=") == 0)
			op = ">=";
		else if (strcmp(op, ">=") == 0)
			op = "<=";
	}
	snprintf(flipped, sizeof(flipped), "%s", op);
	name = colref_name(col);
	if (name == NULL || !refs_target(col, wc->rel))
		return false;
	if (strcmp(op, "<>") == 0 || strcmp(op, "!=") == 0)
		all = true;				/* every row but the few that equal it */
	else if (!numeric_const(val, &v))
		return false;
	else if (strcmp(op, ">") == 0)
		all = v < 1;
	else if (strcmp(op, ">=") == 0)
		all = v <= 1;
	else if (strcmp(op, "<") == 0)
		all = v > 2147483647.0;
	else if (strcmp(op, "<=") == 0)
		all = v >= 2147483647.0;
	if (!all || !column_facts(wc, name).serial)
		return false;
	{
		char buf[64];
		const char *vt = a_const_text(val, buf, sizeof(buf));

		snprintf(wc->why, sizeof(wc->why), "%s %s %s matches every %srow of a generated key", name, flipped,
				 vt ? vt : "...", strcmp(flipped, "<>") == 0 || strcmp(flipped, "!=") == 0 ? "other " : "");
	}
	return true;
}

static bool
taut(where_ctx *wc, Node *e)
{
	if (e == NULL)
	{
		snprintf(wc->why, sizeof(wc->why), "no WHERE");
		return true;
	}
	if (++wc->depth > 200)
	{
		snprintf(wc->why, sizeof(wc->why), "a WHERE too complex to check");
		return true;
	}
	if (!refs_target(e, wc->rel))
	{
		int v = const_bool(e, 0);

		if (v == 0)
			return false;		/* matches nothing */
		snprintf(wc->why, sizeof(wc->why), v == 1 ? "the WHERE is always true" :
				 "the WHERE does not depend on the rows of the table");
		return true;
	}
	switch (nodeTag(e))
	{
		case T_BoolExpr:
			{
				BoolExpr *b = (BoolExpr *) e;
				ListCell *lc;

				if (b->boolop == AND_EXPR)
				{
					foreach(lc, b->args)
						if (!taut(wc, lfirst(lc)))
							return false;
					return true;
				}
				if (b->boolop == OR_EXPR)
				{
					foreach(lc, b->args)
						if (taut(wc, lfirst(lc)))
							return true;
					return false;
				}
				/*
				 * NOT: NOT (c IS NULL), NOT (key = v) and NOT (key < 1) match (almost) every
				 * row: the comparison negated is checked as written that way.
				 */
				{
					Node *arg = linitial(b->args);

					if (IsA(arg, NullTest) && ((NullTest *) arg)->nulltesttype == IS_NULL)
						return taut_not_null(wc, (Node *) ((NullTest *) arg)->arg, "IS NOT NULL");
					if (IsA(arg, A_Expr) && ((A_Expr *) arg)->kind == AEXPR_OP)
					{
						static const char *const negated[][2] = {
							{"=", "<>"}, {"<", ">="}, {"<=", ">"}, {">", "<="}, {">=", "<"}
						};
						const char *op = op_name((A_Expr *) arg);

						for (size_t i = 0; i < sizeof(negated) / sizeof(negated[0]); i++)
							if (strcmp(op, negated[i][0]) == 0)
								return taut_key_range(wc, (A_Expr *) arg, negated[i][1]);
					}
					return false;
				}
			}
		case T_NullTest:
			if (((NullTest *) e)->nulltesttype == IS_NOT_NULL)
				return taut_not_null(wc, (Node *) ((NullTest *) e)->arg, "IS NOT NULL");
			return false;
		case T_A_Expr:
			{
				A_Expr *a = (A_Expr *) e;
				const char *op = op_name(a);

				switch (a->kind)
				{
					case AEXPR_OP:
						if (same_column(a->lexpr, a->rexpr) &&
							(strcmp(op, "=") == 0 || strcmp(op, ">=") == 0 || strcmp(op, "<=") == 0))
						{
							snprintf(wc->why, sizeof(wc->why), "%s %s %s is always true", colref_name(a->lexpr),
									 op, colref_name(a->lexpr));
							return true;
						}
						if (strcmp(op, "=") == 0)
							return false;
						return taut_key_range(wc, a, op);
					case AEXPR_NOT_DISTINCT:
						if (same_column(a->lexpr, a->rexpr))
						{
							snprintf(wc->why, sizeof(wc->why), "%s IS NOT DISTINCT FROM itself", colref_name(a->lexpr));
							return true;
						}
						return false;
					case AEXPR_DISTINCT:
						if (a->rexpr && IsA(a->rexpr, A_Const) && ((A_Const *) a->rexpr)->isnull)
							return taut_not_null(wc, a->lexpr, "IS DISTINCT FROM NULL");
						return false;
					case AEXPR_IN:
						if (strcmp(op, "<>") == 0)
							return taut_key_range(wc, a, "<>");
						return false;
					case AEXPR_LIKE:
					case AEXPR_ILIKE:
						{
							const char *pat = a_const_string(a->rexpr);

							if (pat && op[0] != '!' && pat[0] != '\0' && strspn(pat, "%") == strlen(pat))
								return taut_not_null(wc, a->lexpr, "LIKE '%'");
							return false;
						}
					case AEXPR_BETWEEN:
					case AEXPR_BETWEEN_SYM:
						{
							List *bounds = (List *) a->rexpr;
							double lo, hi;
							const char *name = colref_name(a->lexpr);

							if (name && list_length(bounds) == 2 && numeric_const(linitial(bounds), &lo) &&
								numeric_const(lsecond(bounds), &hi) && lo <= 1 && hi >= 2147483647.0 &&
								column_facts(wc, name).serial)
							{
								snprintf(wc->why, sizeof(wc->why), "%s BETWEEN %g AND %g matches every row of a generated key",
										 name, lo, hi);
								return true;
							}
							return false;
						}
					default:
						return false;
				}
			}
		default:
			return false;
	}
}

/* ------------------------------------------------------------------------------------------
 * The walk
 * ------------------------------------------------------------------------------------------ */

static bool cw(Node *n, void *arg);
static void classify_stmt(walk *w, Node *n);

static void
raise_target(walk *w, int idx, gate_level level)
{
	if (idx >= 0)
		w->st->targets[idx].level = max_level(w->st->targets[idx].level, min_level(level, w->cap));
}

static char *
join_prefix(const char *a, const char *b)
{
	strbuf sb = STRBUF_INIT;

	if (a && b)
		strbuf_printf(&sb, "%s: %s", a, b);
	else
		strbuf_append_str(&sb, a ? a : b ? b : "");
	return strbuf_detach(&sb, NULL);
}

/* Classify a statement or expression found inside another one (rule actions, EXPLAIN,
 * PREPARE, function bodies in the tree), its findings capped at cap. */
static void
nested(walk *w, Node *n, const char *prefix, gate_level cap, bool targets)
{
	walk sub = *w;
	char *p = prefix ? join_prefix(w->prefix, prefix) : NULL;

	if (n == NULL)
	{
		free(p);
		return;
	}
	sub.prefix = p ? p : w->prefix;
	sub.cap = min_level(cap, w->cap);
	sub.targets = targets && w->targets;
	classify_stmt(&sub, n);
	free(p);
}

static const fn_entry *
lookup_functions(gctx *g, const char *schema, const char *name)
{
	fn_entry *e;
	int i;

	if (!cat_ok(g) || g->cat->functions == NULL)
		return NULL;
	if ((i = name_find(g->fns, g->nfns, sizeof(fn_entry), schema, name)) >= 0)
		return &g->fns[i];
	g->fns = grow_zeroed(g->fns, g->nfns, sizeof(fn_entry));
	e = &g->fns[g->nfns];
	if (g->cat->functions(g->cat->arg, schema, name, &e->funcs, &e->n, g->err) != BS_OK)
	{
		for (int k = 0; k < e->n; k++)
			gate_func_clear(&e->funcs[k]);
		free(e->funcs);
		g->failed = true;
		return NULL;
	}
	name_key_set(&e->key, schema, name);
	g->nfns++;
	return e;
}

static bool
untrusted_language(const char *lang)
{
	size_t n = lang ? strlen(lang) : 0;

	return n > 2 && strncmp(lang, "pl", 2) == 0 && lang[n - 1] == 'u';
}

static void
queue_function(walk *w, const gate_func *f, const char *prefix)
{
	item *it;

	queue_item(w, ITEM_FUNCTION, f->definition, strlen(f->definition), prefix, GATE_CRITICAL, true, false);
	it = &w->t->items[w->t->nitems - 1];
	it->oid = f->oid;
	it->key = f->definition;
	it->body_only = true;
	it->volatile_fn = f->volatility == 'v';
}

/* What a call of a function (or procedure) defined outside the built-in list can do. */
static void
check_user_function(walk *w, const char *schema, const char *name, bool procedure)
{
	gctx *g = w->t->g;
	const named_text *sf = session_function(g->session, schema, name);
	const fn_entry *e;
	char *dn = display_name(schema, name);
	const char *what = procedure ? "procedure" : "function";

	if (sf)
	{
		char prefix[600];
		gate_func f;

		g->session_dependent = true;
		memset(&f, 0, sizeof(f));
		f.definition = sf->text;
		f.volatility = 'v';
		snprintf(prefix, sizeof(prefix), "%s %s() (created in this session)", what, dn);
		queue_function(w, &f, prefix);
		free(dn);
		return;
	}
	if (trusted_function(g, schema, name))
	{
		free(dn);
		return;
	}
	e = lookup_functions(g, schema, name);
	if (e == NULL)
	{
		if (procedure)
			reason(w, GATE_HIGH, -1, true, "CALL %s(): the procedure's body is not visible without a connection", dn);
		free(dn);
		return;
	}
	if (e->n == 0 && procedure)
		reason(w, GATE_SAFE, -1, false, "no procedure %s() in the session's search_path (the CALL would fail)", dn);
	for (int i = 0; i < e->n; i++)
	{
		const gate_func *f = &e->funcs[i];
		char *fn = display_name(f->nspname, f->name);
		char prefix[600];

		if (f->nspname && strcmp(f->nspname, "pg_catalog") == 0)
		{
			free(fn);
			continue;
		}
		if (trusted_function(g, f->nspname, f->name))
		{
			free(fn);
			continue;
		}
		snprintf(prefix, sizeof(prefix), "%s %s()", f->kind == 'p' ? "procedure" : "function", fn);
		if (untrusted_language(f->language))
			reason(w, GATE_CRITICAL, -1, true, "%s() is written in the untrusted language %s (it can reach the server's OS)",
				   fn, f->language);
		else if (f->definition)
			queue_function(w, f, prefix);
		else if (f->volatility == 'v')
			reason(w, GATE_HIGH, -1, true, "%s %s() is volatile and written in %s: the gate cannot see its body",
				   f->kind == 'p' ? "procedure" : "function", fn, f->language ? f->language : "an unknown language");
		if (f->security_definer)
			reason(w, GATE_SAFE, -1, false, "%s() runs with its owner's privileges (SECURITY DEFINER)", fn);
		free(fn);
	}
	free(dn);
}

static void
check_funccall(walk *w, FuncCall *fc)
{
	const char *schema, *name;
	const builtin_fn *b;

	split_name(fc->funcname, &schema, &name);
	if (name == NULL)
		return;
	b = find_builtin(name);
	if (b == NULL)
	{
		check_user_function(w, schema, name, false);
		return;
	}
	switch (b->special)
	{
		case FN_SET_CONFIG:
			{
				char buf[64];
				const char *setting = list_length(fc->args) >= 1 ? a_const_string(linitial(fc->args)) : NULL;
				const char *value = list_length(fc->args) >= 2 ? a_const_text(lsecond(fc->args), buf, sizeof(buf)) : NULL;

				setting_effect(w, "set_config()", setting, value, value != NULL);
				return;
			}
		case FN_RUNS_SQL:
			{
				const char *sql = list_length(fc->args) >= 1 ? a_const_string(linitial(fc->args)) : NULL;
				char prefix[256];

				snprintf(prefix, sizeof(prefix), "SQL run by %s()", name);
				if (sql)
					queue_item(w, ITEM_SQL, sql, strlen(sql), prefix, GATE_CRITICAL, true, true);
				else
					reason(w, GATE_HIGH, -1, true, "%s() runs SQL text the gate cannot see", name);
				return;
			}
		case FN_PLAIN:
			reason(w, b->level, -1, false, "%s() %s", name, b->what);
			return;
	}
}

/* Writes to the system catalogs and through foreign tables escape the archive. */
static void
check_write(walk *w, int idx, const char *verb)
{
	const gate_target *t;
	const char *schema;
	const char *name;
	char *dn;

	if (idx < 0)
		return;
	t = &w->st->targets[idx];
	schema = t->resolved && t->exists ? t->nspname : t->schema;
	name = t->resolved && t->exists ? t->relname : t->name;
	if (!is_catalog_schema(schema) && !(schema == NULL && strncmp(name, "pg_", 3) == 0) &&
		!(t->resolved && t->exists && t->relkind == 'f'))
		return;
	dn = gate_target_display(t);
	if (is_catalog_schema(schema) || (schema == NULL && strncmp(name, "pg_", 3) == 0))
	{
		if (strcmp(name, "pg_settings") == 0)
			reason(w, GATE_CRITICAL, idx, false, "%s %s changes the configuration (like SET)", verb, dn);
		else
			reason(w, GATE_CRITICAL, idx, false, "%s %s writes the system catalog", verb, dn);
	}
	else if (t->resolved && t->exists && t->relkind == 'f')
		reason(w, GATE_CRITICAL, idx, false,
			   "%s foreign table %s: the change goes through a connection outside the gate", verb, dn);
	free(dn);
}

/* Trigger functions and rewrite rules that the write fires run code of their own. */
static void
check_triggers(walk *w, int idx, int events)
{
	gctx *g = w->t->g;
	const gate_target *t;
	gate_func *funcs = NULL;
	int n = 0;
	char *dn;

	if (idx < 0 || !cat_ok(g) || g->cat->triggers == NULL)
		return;
	t = &w->st->targets[idx];
	if (!t->resolved || !t->exists)
		return;
	if (g->cat->triggers(g->cat->arg, t->oid, events, &funcs, &n, g->err) != BS_OK)
	{
		g->failed = true;
		return;
	}
	dn = gate_target_display(t);
	for (int i = 0; i < n; i++)
	{
		gate_func *f = &funcs[i];
		char *fn = display_name(f->nspname, f->name);
		char prefix[600];

		if (f->kind == 'r')
			snprintf(prefix, sizeof(prefix), "rule %s on %s", f->name ? f->name : "?", dn);
		else
			snprintf(prefix, sizeof(prefix), "trigger function %s() on %s", fn, dn);
		if (untrusted_language(f->language))
			reason(w, GATE_CRITICAL, idx, true, "%s is written in the untrusted language %s", prefix, f->language);
		else if (f->definition)
			queue_function(w, f, prefix);
		else if (f->volatility == 'v' || f->kind == 'r')
			reason(w, GATE_HIGH, idx, true, "%s: the gate cannot see its body", prefix);
		free(fn);
		gate_func_clear(f);
	}
	free(funcs);
	free(dn);
}

static void
walk_children(walk *w, Node *n)
{
	if (n != NULL && gw_children(n, cw, w) < 0)
		refuse(w, "a construct the gate does not know (node type %d)", (int) nodeTag(n));
}

static void
walk_select(walk *w, SelectStmt *s)
{
	if (s->intoClause && s->intoClause->rel)
	{
		RangeVar *rv = s->intoClause->rel;
		int t = add_target(w, GATE_TARGET_RELATION, rv->schemaname, rv->relname, GATE_MEDIUM, false, -1);
		char *dn = target_name(w, t, rv->schemaname, rv->relname);

		reason(w, GATE_MEDIUM, t, false, "SELECT INTO creates table %s", dn);
		free(dn);
	}
	if (s->lockingClause)
	{
		LockingClause *lc = linitial(s->lockingClause);
		static const char *const names[] = {"", "FOR KEY SHARE", "FOR SHARE", "FOR NO KEY UPDATE", "FOR UPDATE"};

		reason(w, GATE_LOW, -1, false, "SELECT %s locks the rows it reads",
			   IsA(lc, LockingClause) && (int) lc->strength >= 0 && (int) lc->strength <= 4 ?
			   names[lc->strength] : "FOR UPDATE");
	}
	walk_children(w, (Node *) s);
}

/* Tie a WHERE (or MERGE join condition) to its target: bounded or every row. */
static bool
unbounded(walk *w, RangeVar *rel, int t, Node *where, char *why, size_t whysize)
{
	where_ctx wc;

	if (where && IsA(where, CurrentOfExpr))
		return false;
	memset(&wc, 0, sizeof(wc));
	wc.w = w;
	wc.rel = rel;
	wc.target = t;
	if (!taut(&wc, where))
		return false;
	snprintf(why, whysize, "%s", wc.why);
	return true;
}

static void
walk_delete_update(walk *w, Node *n, bool is_delete)
{
	RangeVar *rel = is_delete ? ((DeleteStmt *) n)->relation : ((UpdateStmt *) n)->relation;
	Node *where = is_delete ? ((DeleteStmt *) n)->whereClause : ((UpdateStmt *) n)->whereClause;
	const char *verb = is_delete ? "DELETE" : "UPDATE";
	int t = add_target(w, GATE_TARGET_RELATION, rel->schemaname, rel->relname, GATE_LOW, !rel->inh, -1);
	char *dn = target_name(w, t, rel->schemaname, rel->relname);
	char why[256];

	if (unbounded(w, rel, t, where, why, sizeof(why)))
	{
		raise_target(w, t, GATE_HIGH);
		reason(w, GATE_HIGH, t, false, "%s %s %s without a selective WHERE (%s)", verb,
			   is_delete ? "from" : "of", dn, why);
		if (rel->inh)
			expand(w, t, GATE_REACH_CHILDREN, NULL, GATE_HIGH, is_delete ? "also deletes from" : "also updates");
		if (is_delete)
			expand(w, t, GATE_REACH_FK_DELETE, NULL, GATE_HIGH, "cascades (foreign key) into");
	}
	else
	{
		reason3(w, GATE_LOW, t, is_delete ? "DELETE from " : "UPDATE of ", dn, " (bounded by its WHERE)");
		if (is_delete)
			expand(w, t, GATE_REACH_FK_DELETE, NULL, GATE_LOW, "cascades (foreign key) into");
	}
	check_write(w, t, verb);
	check_triggers(w, t, is_delete ? GATE_EVENT_DELETE : GATE_EVENT_UPDATE);
	free(dn);
	walk_children(w, n);
}

static void
walk_insert(walk *w, InsertStmt *s)
{
	RangeVar *rel = s->relation;
	bool upsert = s->onConflictClause && s->onConflictClause->action == ONCONFLICT_UPDATE;
	int t = add_target(w, GATE_TARGET_RELATION, rel->schemaname, rel->relname, upsert ? GATE_HIGH : GATE_LOW, false, -1);
	char *dn = target_name(w, t, rel->schemaname, rel->relname);

	if (upsert)
		reason(w, GATE_HIGH, t, false, "INSERT ... ON CONFLICT DO UPDATE rewrites existing rows of %s", dn);
	else
		reason3(w, GATE_LOW, t, "INSERT into ", dn, "");
	check_write(w, t, "INSERT into");
	check_triggers(w, t, GATE_EVENT_INSERT | (upsert ? GATE_EVENT_UPDATE : 0));
	free(dn);
	walk_children(w, (Node *) s);
}

static void
walk_merge(walk *w, MergeStmt *s)
{
	RangeVar *rel = s->relation;
	int t = add_target(w, GATE_TARGET_RELATION, rel->schemaname, rel->relname, GATE_LOW, !rel->inh, -1);
	char *dn = target_name(w, t, rel->schemaname, rel->relname);
	bool deletes = false, updates = false;
	int events = 0;
	ListCell *lc;
	char why[256];

	foreach(lc, s->mergeWhenClauses)
	{
		MergeWhenClause *mw = lfirst(lc);

		if (!IsA(mw, MergeWhenClause))
			continue;
		if (mw->commandType == CMD_DELETE)
			deletes = true, events |= GATE_EVENT_DELETE;
		else if (mw->commandType == CMD_UPDATE)
			updates = true, events |= GATE_EVENT_UPDATE;
		else if (mw->commandType == CMD_INSERT)
			events |= GATE_EVENT_INSERT;
	}
	if (deletes)
	{
		raise_target(w, t, GATE_HIGH);
		reason(w, GATE_HIGH, t, false, "MERGE ... THEN DELETE destroys rows of %s", dn);
		expand(w, t, GATE_REACH_FK_DELETE, NULL, GATE_HIGH, "cascades (foreign key) into");
	}
	else if (updates && unbounded(w, rel, t, s->joinCondition, why, sizeof(why)))
	{
		raise_target(w, t, GATE_HIGH);
		reason(w, GATE_HIGH, t, false, "MERGE ... THEN UPDATE rewrites every row of %s (%s)", dn, why);
	}
	else
		reason(w, GATE_LOW, t, false, "MERGE into %s", dn);
	check_write(w, t, "MERGE into");
	check_triggers(w, t, events);
	free(dn);
	walk_children(w, (Node *) s);
}

static bool
cw(Node *n, void *arg)
{
	walk *w = arg;

	if (n == NULL || w->st->refuse)
		return false;
	if (++w->depth > GATE_MAX_DEPTH)
	{
		refuse(w, "the statement nests deeper than %d levels", GATE_MAX_DEPTH);
		w->depth--;
		return true;
	}
	switch (nodeTag(n))
	{
		case T_SelectStmt:
			walk_select(w, (SelectStmt *) n);
			break;
		case T_InsertStmt:
			walk_insert(w, (InsertStmt *) n);
			break;
		case T_DeleteStmt:
			walk_delete_update(w, n, true);
			break;
		case T_UpdateStmt:
			walk_delete_update(w, n, false);
			break;
		case T_MergeStmt:
			walk_merge(w, (MergeStmt *) n);
			break;
		case T_FuncCall:
			check_funccall(w, (FuncCall *) n);
			walk_children(w, n);
			break;
		default:
			walk_children(w, n);
			break;
	}
	w->depth--;
	return w->st->refuse;
}

/* ------------------------------------------------------------------------------------------
 * Statements
 * ------------------------------------------------------------------------------------------ */

static const char *
object_word(ObjectType t)
{
	switch (t)
	{
		case OBJECT_TABLE: return "TABLE";
		case OBJECT_VIEW: return "VIEW";
		case OBJECT_MATVIEW: return "MATERIALIZED VIEW";
		case OBJECT_INDEX: return "INDEX";
		case OBJECT_SEQUENCE: return "SEQUENCE";
		case OBJECT_FOREIGN_TABLE: return "FOREIGN TABLE";
		case OBJECT_SCHEMA: return "SCHEMA";
		case OBJECT_DATABASE: return "DATABASE";
		case OBJECT_FUNCTION: return "FUNCTION";
		case OBJECT_PROCEDURE: return "PROCEDURE";
		case OBJECT_ROUTINE: return "ROUTINE";
		case OBJECT_AGGREGATE: return "AGGREGATE";
		case OBJECT_TYPE: return "TYPE";
		case OBJECT_DOMAIN: return "DOMAIN";
		case OBJECT_EXTENSION: return "EXTENSION";
		case OBJECT_TRIGGER: return "TRIGGER";
		case OBJECT_RULE: return "RULE";
		case OBJECT_POLICY: return "POLICY";
		case OBJECT_EVENT_TRIGGER: return "EVENT TRIGGER";
		case OBJECT_PUBLICATION: return "PUBLICATION";
		case OBJECT_FOREIGN_SERVER: return "SERVER";
		case OBJECT_FDW: return "FOREIGN DATA WRAPPER";
		case OBJECT_LANGUAGE: return "LANGUAGE";
		case OBJECT_ACCESS_METHOD: return "ACCESS METHOD";
		case OBJECT_COLLATION: return "COLLATION";
		case OBJECT_CONVERSION: return "CONVERSION";
		case OBJECT_OPERATOR: return "OPERATOR";
		case OBJECT_CAST: return "CAST";
		case OBJECT_STATISTIC_EXT: return "STATISTICS";
		case OBJECT_TRANSFORM: return "TRANSFORM";
		default: return "OBJECT";
	}
}

static const char *
drop_command(ObjectType t)
{
	switch (t)
	{
		case OBJECT_TABLE: return "DROP TABLE";
		case OBJECT_VIEW: return "DROP VIEW";
		case OBJECT_MATVIEW: return "DROP MATERIALIZED VIEW";
		case OBJECT_INDEX: return "DROP INDEX";
		case OBJECT_SEQUENCE: return "DROP SEQUENCE";
		case OBJECT_FOREIGN_TABLE: return "DROP FOREIGN TABLE";
		case OBJECT_SCHEMA: return "DROP SCHEMA";
		case OBJECT_FUNCTION: return "DROP FUNCTION";
		case OBJECT_PROCEDURE: return "DROP PROCEDURE";
		case OBJECT_TYPE: return "DROP TYPE";
		case OBJECT_DOMAIN: return "DROP DOMAIN";
		case OBJECT_EXTENSION: return "DROP EXTENSION";
		case OBJECT_TRIGGER: return "DROP TRIGGER";
		case OBJECT_RULE: return "DROP RULE";
		case OBJECT_POLICY: return "DROP POLICY";
		case OBJECT_EVENT_TRIGGER: return "DROP EVENT TRIGGER";
		case OBJECT_PUBLICATION: return "DROP PUBLICATION";
		default: return "DROP";
	}
}

/* The name of a dropped object, whatever form the grammar gave it. */
static void
object_name(Node *obj, const char **schema, const char **name)
{
	*schema = NULL;
	*name = NULL;
	if (obj == NULL)
		return;
	if (IsA(obj, List))
		split_name((List *) obj, schema, name);
	else if (IsA(obj, String))
		*name = strVal(obj);
	else if (IsA(obj, ObjectWithArgs))
		split_name(((ObjectWithArgs *) obj)->objname, schema, name);
	else if (IsA(obj, TypeName))
		split_name(((TypeName *) obj)->names, schema, name);
}

static int
rel_target(walk *w, RangeVar *rv, gate_level level, bool only)
{
	if (rv == NULL)
		return -1;
	return add_target(w, GATE_TARGET_RELATION, rv->schemaname, rv->relname, level, only, -1);
}

static void __attribute__((format(printf, 4, 5)))
rel_reason(walk *w, RangeVar *rv, gate_level level, const char *fmt, ...)
{
	int t = rel_target(w, rv, level, rv ? !rv->inh : false);
	char *dn = rv ? target_name(w, t, rv->schemaname, rv->relname) : xstrdup("?");
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	reason(w, level, t, false, "%s %s", what, dn);
	free(dn);
}

static void
walk_drop(walk *w, DropStmt *d)
{
	ListCell *lc;
	bool cascade = d->behavior == DROP_CASCADE;

	foreach(lc, d->objects)
	{
		const char *schema, *name;
		int t;
		char *dn;

		object_name(lfirst(lc), &schema, &name);
		if (name == NULL)
			continue;
		switch (d->removeType)
		{
			case OBJECT_TABLE:
				t = add_target(w, GATE_TARGET_RELATION, schema, name, GATE_HIGH, false, -1);
				dn = target_name(w, t, schema, name);
				reason(w, GATE_HIGH, t, false, "DROP TABLE destroys %s and all its rows", dn);
				expand(w, t, GATE_REACH_CHILDREN, NULL, GATE_HIGH, "also drops");
				break;
			case OBJECT_VIEW:
			case OBJECT_MATVIEW:
			case OBJECT_INDEX:
			case OBJECT_SEQUENCE:
			case OBJECT_FOREIGN_TABLE:
				t = add_target(w, GATE_TARGET_RELATION, schema, name, GATE_MEDIUM, false, -1);
				dn = target_name(w, t, schema, name);
				reason(w, GATE_MEDIUM, t, false, "drops %s %s (%s)", object_word(d->removeType), dn,
					   d->removeType == OBJECT_SEQUENCE ? "its position is not archived; no table rows" :
					   "a definition or derived data; no table rows");
				break;
			case OBJECT_SCHEMA:
				t = add_target(w, GATE_TARGET_SCHEMA, NULL, name, GATE_CRITICAL, false, -1);
				dn = display_name(NULL, name);
				reason(w, GATE_CRITICAL, t, false, "DROP SCHEMA %s destroys every object in it (functions, types, sequences: not archived)", dn);
				expand(w, t, GATE_REACH_SCHEMA, name, GATE_HIGH, "drops table");
				break;
			case OBJECT_EXTENSION:
			case OBJECT_EVENT_TRIGGER:
			case OBJECT_PUBLICATION:
			case OBJECT_ACCESS_METHOD:
			case OBJECT_LANGUAGE:
				dn = display_name(schema, name);
				reason(w, GATE_CRITICAL, -1, false, "drops %s %s%s", object_word(d->removeType), dn,
					   d->removeType == OBJECT_PUBLICATION ? " (the archiver reads changes through a publication)" :
					   d->removeType == OBJECT_EXTENSION ? " (and the tables and functions it owns)" : "");
				break;
			default:
				dn = display_name(schema, name);
				reason(w, GATE_MEDIUM, -1, false, "drops %s %s (a definition; no table rows)", object_word(d->removeType), dn);
				break;
		}
		free(dn);
	}
	if (cascade)
		reason(w, GATE_CRITICAL, -1, false, "CASCADE also drops dependent objects the gate does not enumerate");
}

static void
walk_truncate(walk *w, TruncateStmt *s)
{
	ListCell *lc;

	foreach(lc, s->relations)
	{
		RangeVar *rv = lfirst(lc);
		int t = rel_target(w, rv, GATE_HIGH, !rv->inh);
		char *dn = target_name(w, t, rv->schemaname, rv->relname);

		reason(w, GATE_HIGH, t, false, "TRUNCATE destroys every row of %s", dn);
		check_write(w, t, "TRUNCATE");
		check_triggers(w, t, GATE_EVENT_TRUNCATE);
		if (rv->inh)
			expand(w, t, GATE_REACH_CHILDREN, NULL, GATE_HIGH, "also truncates");
		if (s->behavior == DROP_CASCADE)
		{
			if (cat_ok(w->t->g) && t >= 0 && w->st->targets[t].resolved)
				expand(w, t, GATE_REACH_REFERENCING, NULL, GATE_HIGH, "CASCADE also truncates");
			else
				reason(w, GATE_CRITICAL, t, false,
					   "TRUNCATE ... CASCADE empties every table with a foreign key to %s (not enumerated without a connection)", dn);
		}
		free(dn);
	}
	if (s->restart_seqs)
		reason(w, GATE_MEDIUM, -1, false, "RESTART IDENTITY resets owned sequences (not archived)");
}

static const char *
alter_what(AlterTableType t, gate_level *level)
{
	*level = GATE_MEDIUM;
	switch (t)
	{
		case AT_AddColumn:
		case AT_AddColumnRecurse:
		case AT_AddColumnToView:
			return "adds a column to";
		case AT_ColumnDefault:
		case AT_CookedColumnDefault:
			return "changes a column default of";
		case AT_DropNotNull:
		case AT_SetNotNull:
		case AT_CheckNotNull:
			return "changes NOT NULL on";
		case AT_DropExpression:
			return "drops a generation expression of";
		case AT_DropColumn:
		case AT_DropColumnRecurse:
			*level = GATE_HIGH;
			return "DROP COLUMN destroys a column's values in";
		case AT_AlterColumnType:
			*level = GATE_HIGH;
			return "ALTER COLUMN TYPE rewrites a column's values in";
		case AT_SetUnLogged:
			*level = GATE_HIGH;
			return "SET UNLOGGED stops WAL (and so the archive) seeing changes to, and a crash empties,";
		case AT_SetLogged:
			return "makes WAL-logged";
		case AT_DropInherit:
			*level = GATE_HIGH;
			return "NO INHERIT takes rows out of the parent's view:";
		case AT_DetachPartition:
		case AT_DetachPartitionFinalize:
			*level = GATE_HIGH;
			return "DETACH PARTITION takes a partition's rows out of";
		case AT_AttachPartition:
			return "attaches a partition to";
		case AT_DropConstraint:
		case AT_DropConstraintRecurse:
			return "drops a constraint of";
		case AT_AddConstraint:
		case AT_AddConstraintRecurse:
		case AT_AddIndex:
		case AT_AddIndexConstraint:
		case AT_AlterConstraint:
		case AT_ValidateConstraint:
		case AT_ValidateConstraintRecurse:
			return "changes constraints of";
		case AT_EnableTrig:
		case AT_EnableAlwaysTrig:
		case AT_EnableReplicaTrig:
		case AT_DisableTrig:
		case AT_EnableTrigAll:
		case AT_DisableTrigAll:
		case AT_EnableTrigUser:
		case AT_DisableTrigUser:
			return "enables or disables triggers of";
		case AT_EnableRule:
		case AT_EnableAlwaysRule:
		case AT_EnableReplicaRule:
		case AT_DisableRule:
			return "enables or disables rules of";
		case AT_ChangeOwner:
			return "changes the owner of";
		case AT_EnableRowSecurity:
		case AT_DisableRowSecurity:
		case AT_ForceRowSecurity:
		case AT_NoForceRowSecurity:
			return "changes row security of";
		default:
			return "alters";
	}
}

static void
walk_alter_table(walk *w, AlterTableStmt *s)
{
	ListCell *lc;

	foreach(lc, s->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);
		gate_level level;
		const char *what;
		int t;
		char *dn;

		if (!IsA(cmd, AlterTableCmd))
			continue;
		what = alter_what(cmd->subtype, &level);
		if (cmd->subtype == AT_ReplicaIdentity && cmd->def && IsA(cmd->def, ReplicaIdentityStmt) &&
			((ReplicaIdentityStmt *) cmd->def)->identity_type == 'n')
		{
			level = GATE_HIGH;
			what = "REPLICA IDENTITY NOTHING stops the archive recording updates and deletes of";
		}
		t = rel_target(w, s->relation, level, !s->relation->inh);
		dn = target_name(w, t, s->relation->schemaname, s->relation->relname);
		if (cmd->name && (cmd->subtype == AT_DropColumn || cmd->subtype == AT_DropColumnRecurse ||
						  cmd->subtype == AT_AlterColumnType))
			reason(w, level, t, false, "%s %s (column %s)", what, dn, cmd->name);
		else
			reason(w, level, t, false, "%s %s", what, dn);
		if (level >= GATE_HIGH && s->relation->inh)
			expand(w, t, GATE_REACH_CHILDREN, NULL, level, "also alters");
		if ((cmd->subtype == AT_DetachPartition || cmd->subtype == AT_DropInherit) && cmd->def)
		{
			RangeVar *part = IsA(cmd->def, PartitionCmd) ? ((PartitionCmd *) cmd->def)->name :
				IsA(cmd->def, RangeVar) ? (RangeVar *) cmd->def : NULL;

			if (part)
				rel_target(w, part, GATE_HIGH, true);
		}
		if (cmd->behavior == DROP_CASCADE)
			reason(w, cmd->subtype == AT_DropConstraint || cmd->subtype == AT_DropConstraintRecurse ?
				   GATE_MEDIUM : GATE_CRITICAL, t, false,
				   "CASCADE also drops dependent objects the gate does not enumerate");
		free(dn);
		if (cmd->def && !IsA(cmd->def, ReplicaIdentityStmt) && !IsA(cmd->def, PartitionCmd) &&
			!IsA(cmd->def, RangeVar))
			walk_children(w, (Node *) list_make1(cmd->def));
	}
}

static bool
explain_analyzes(ExplainStmt *s)
{
	ListCell *lc;

	foreach(lc, s->options)
	{
		DefElem *d = lfirst(lc);

		if (!IsA(d, DefElem) || d->defname == NULL || strcmp(d->defname, "analyze") != 0)
			continue;
		if (d->arg == NULL)
			return true;
		if (IsA(d->arg, Integer))
		{
			if (intVal(d->arg) != 0)
				return true;
		}
		else if (IsA(d->arg, String))
		{
			if (pg_bool(strVal(d->arg)) != 0)
				return true;
		}
		else if (IsA(d->arg, Boolean))
		{
			if (boolVal(d->arg))
				return true;
		}
		else
			return true;		/* a spelling the gate does not know: assume it executes */
	}
	return false;
}

static const char *
defelem_string(List *options, const char *name)
{
	ListCell *lc;

	foreach(lc, options)
	{
		DefElem *d = lfirst(lc);

		if (IsA(d, DefElem) && d->defname && strcmp(d->defname, name) == 0 && d->arg && IsA(d->arg, String))
			return strVal(d->arg);
	}
	return NULL;
}

static DefElem *
defelem(List *options, const char *name)
{
	ListCell *lc;

	foreach(lc, options)
	{
		DefElem *d = lfirst(lc);

		if (IsA(d, DefElem) && d->defname && strcmp(d->defname, name) == 0)
			return d;
	}
	return NULL;
}

static void
walk_set(walk *w, VariableSetStmt *s)
{
	const char *verb = s->is_local ? "SET LOCAL" : "SET";

	switch (s->kind)
	{
		case VAR_SET_VALUE:
			{
				strbuf v = STRBUF_INIT;
				ListCell *lc;
				bool known = true;

				foreach(lc, s->args)
				{
					char buf[64];
					const char *t = a_const_text(lfirst(lc), buf, sizeof(buf));

					if (t == NULL)
						known = false;
					else
					{
						if (v.len)
							strbuf_append_char(&v, ',');
						strbuf_append_str(&v, t);
					}
				}
				setting_effect(w, verb, s->name, known ? v.data : NULL, known && v.data);
				strbuf_free(&v);
				return;
			}
		case VAR_SET_DEFAULT:
		case VAR_RESET:
			setting_effect(w, s->kind == VAR_RESET ? "RESET" : "SET ... TO DEFAULT", s->name, NULL, false);
			return;
		case VAR_SET_CURRENT:
			return;
		case VAR_SET_MULTI:
			{
				ListCell *lc;

				foreach(lc, s->args)
				{
					DefElem *d = lfirst(lc);

					if (IsA(d, DefElem) && d->defname && strcmp(d->defname, "transaction_read_only") == 0)
					{
						char buf[64];
						const char *v = a_const_text(d->arg, buf, sizeof(buf));

						setting_effect(w, s->name && strcmp(s->name, "SESSION CHARACTERISTICS") == 0 ?
									   "SET SESSION CHARACTERISTICS" : "SET TRANSACTION",
									   "transaction_read_only", v, v != NULL);
					}
				}
				return;
			}
		case VAR_RESET_ALL:
			reason(w, GATE_CRITICAL, -1, false,
				   "RESET ALL returns every setting (read-only, role, timeouts) to defaults the gate cannot see");
			return;
	}
}

static void
walk_transaction(walk *w, TransactionStmt *s)
{
	gctx *g = w->t->g;
	gate_session *ss = session_of(g);
	bool outer = g->opts && g->opts->in_transaction;

	g->session_dependent = true;
	switch (s->kind)
	{
		case TRANS_STMT_BEGIN:
		case TRANS_STMT_START:
			{
				DefElem *ro = defelem(s->options, "transaction_read_only");
				char buf[64];

				if (ro)
				{
					const char *v = a_const_text(ro->arg, buf, sizeof(buf));

					setting_effect(w, "BEGIN", "transaction_read_only", v, v != NULL);
				}
				if (!outer && w->targets)
					ss->in_block = true;
				return;
			}
		case TRANS_STMT_COMMIT:
		case TRANS_STMT_ROLLBACK:
			if (ss->in_block && !s->chain)
			{
				if (w->targets)
					ss->in_block = false;
			}
			else if (outer && !ss->in_block)
				reason(w, GATE_CRITICAL, -1, false,
					   "%s ends the transaction the gate opened (its locks and checks with it)",
					   s->kind == TRANS_STMT_COMMIT ? "COMMIT" : "ROLLBACK");
			return;
		case TRANS_STMT_PREPARE:
		case TRANS_STMT_COMMIT_PREPARED:
		case TRANS_STMT_ROLLBACK_PREPARED:
			reason(w, GATE_CRITICAL, -1, false,
				   "two-phase commit moves work out of the session the gate sees");
			if (s->kind == TRANS_STMT_PREPARE && w->targets)
				ss->in_block = false;
			return;
		case TRANS_STMT_SAVEPOINT:
		case TRANS_STMT_RELEASE:
		case TRANS_STMT_ROLLBACK_TO:
			return;
	}
}

/* DO blocks and CREATE FUNCTION bodies. */
static void
walk_body(walk *w, const char *language, const char *prefix, bool in_effect, bool must_parse,
		  Node *sql_body, const char *sql_text)
{
	gate_level cap = in_effect ? GATE_CRITICAL : GATE_MEDIUM;
	bool body_only = w->t->body_only;

	if (language == NULL)
		language = sql_body || sql_text ? "sql" : "plpgsql";
	if (strcmp(language, "plpgsql") == 0)
		queue_item(w, ITEM_PLPGSQL, w->text, w->text_len, body_only ? NULL : prefix, cap, in_effect, must_parse);
	else if (strcmp(language, "sql") == 0)
	{
		if (sql_body)
			nested(w, sql_body, body_only ? NULL : prefix, cap, in_effect);
		else if (sql_text)
			queue_item(w, ITEM_SQL, sql_text, strlen(sql_text), body_only ? NULL : prefix, cap, in_effect, must_parse);
	}
	else if (strcmp(language, "c") == 0 || strcmp(language, "internal") == 0)
		reason(w, GATE_CRITICAL, -1, false, "%s: a %s-language function runs server code the gate cannot see",
			   prefix, language);
	else if (untrusted_language(language))
		reason(w, GATE_CRITICAL, -1, false, "%s: the untrusted language %s can reach the server's OS", prefix, language);
	else
		reason(w, in_effect ? GATE_HIGH : GATE_MEDIUM, -1, in_effect,
			   "%s: the gate cannot see into a body in language %s", prefix, language);
}

static void
walk_create_function(walk *w, CreateFunctionStmt *s)
{
	const char *schema, *name;
	const char *language = defelem_string(s->options, "language");
	DefElem *as = defelem(s->options, "as");
	DefElem *sec = defelem(s->options, "security");
	const char *sql_text = NULL;
	char prefix[512];
	char *dn;
	bool body_only = w->t->body_only;

	split_name(s->funcname, &schema, &name);
	if (name == NULL)
		return;
	dn = display_name(schema, name);
	if (as && as->arg && IsA(as->arg, List) && list_length((List *) as->arg) >= 1 &&
		IsA(linitial((List *) as->arg), String))
		sql_text = strVal(linitial((List *) as->arg));
	snprintf(prefix, sizeof(prefix), "body of %s()", dn);
	if (sql_text == NULL && (s->sql_body == NULL || (language && strcmp(language, "sql") != 0)))
	{
		/* PostgreSQL rejects it (no function body), and libpg_query's PL/pgSQL parser
		 * aborts the process on it, so it never gets there. */
		refuse(w, "%s %s() has no body the server would accept", s->is_procedure ? "procedure" : "function", dn);
		free(dn);
		return;
	}
	if (!body_only)
	{
		reason(w, GATE_MEDIUM, -1, false, "%s %s %s()", s->replace ? "creates or replaces" : "creates",
			   s->is_procedure ? "procedure" : "function", dn);
		if (sec && sec->arg && ((IsA(sec->arg, Boolean) && boolVal(sec->arg)) ||
								(IsA(sec->arg, Integer) && intVal(sec->arg))))
			reason(w, GATE_MEDIUM, -1, false, "%s() runs with its owner's privileges (SECURITY DEFINER)", dn);
		if (w->targets)
			session_add_function(session_of(w->t->g), schema, name, w->text, w->text_len);
		w->t->g->session_dependent = true;
	}
	/* A replaced function is in effect at once (callers, triggers, defaults use it); a new
	 * one only when something calls it, which the gate classifies then. */
	walk_body(w, language, prefix, s->replace || body_only, s->replace || body_only,
			  s->sql_body, sql_text);
	free(dn);
}

static void
walk_trigger(walk *w, CreateTrigStmt *s)
{
	const char *schema, *name;
	char *dn;
	int t = rel_target(w, s->relation, GATE_MEDIUM, false);
	char *rn = target_name(w, t, s->relation->schemaname, s->relation->relname);
	gctx *g = w->t->g;

	split_name(s->funcname, &schema, &name);
	dn = display_name(schema, name);
	if (name && session_function(g->session, schema, name))
		g->session_dependent = true;
	reason(w, GATE_MEDIUM, t, false, "creates trigger %s on %s running %s()", s->trigname ? s->trigname : "?", rn, dn);
	if (name && !session_function(g->session, schema, name) && lookup_functions(g, schema, name) == NULL)
		reason(w, GATE_HIGH, t, true,
			   "trigger function %s() will run on writes to %s; its body is not visible without a connection", dn, rn);
	else if (name)
	{
		char prefix[600];
		walk sub = *w;

		snprintf(prefix, sizeof(prefix), "trigger on %s", rn);
		sub.prefix = prefix;
		check_user_function(&sub, schema, name, false);
	}
	if (s->whenClause)
		walk_children(w, (Node *) list_make1(s->whenClause));
	free(dn);
	free(rn);
}

static void
walk_copy(walk *w, CopyStmt *s)
{
	if (s->is_program)
	{
		reason(w, GATE_CRITICAL, -1, false, "COPY %s PROGRAM runs a command on the server", s->is_from ? "FROM" : "TO");
		return;
	}
	if (s->filename)
	{
		reason(w, GATE_CRITICAL, -1, false, "COPY %s a server file (%s)", s->is_from ? "FROM" : "TO", s->filename);
		return;
	}
	if (s->is_from && s->relation)
	{
		int t = rel_target(w, s->relation, GATE_LOW, false);
		char *dn = target_name(w, t, s->relation->schemaname, s->relation->relname);

		reason(w, GATE_LOW, t, false, "COPY FROM STDIN inserts into %s", dn);
		check_write(w, t, "COPY into");
		check_triggers(w, t, GATE_EVENT_INSERT);
		free(dn);
	}
	if (s->query)
		nested(w, s->query, NULL, GATE_CRITICAL, true);
	if (s->whereClause)
		walk_children(w, (Node *) list_make1(s->whereClause));
}

static void
walk_rule(walk *w, RuleStmt *s)
{
	int t = w->t->body_only ? -1 : rel_target(w, s->relation, GATE_MEDIUM, false);
	char *dn = target_name(w, t, s->relation->schemaname, s->relation->relname);
	char prefix[600];
	ListCell *lc;

	if (!w->t->body_only)
		reason(w, GATE_MEDIUM, t, false, "creates rule %s on %s", s->rulename ? s->rulename : "?", dn);
	snprintf(prefix, sizeof(prefix), "rule %s on %s", s->rulename ? s->rulename : "?", dn);
	foreach(lc, s->actions)
		nested(w, lfirst(lc), w->t->body_only ? NULL : prefix, GATE_CRITICAL, true);
	if (s->whereClause)
		walk_children(w, (Node *) list_make1(s->whereClause));
	free(dn);
}

static void
walk_do(walk *w, DoStmt *s)
{
	const char *language = defelem_string(s->args, "language");

	walk_body(w, language ? language : "plpgsql", "DO block", true, true, NULL, NULL);
}

static void
walk_prepare(walk *w, PrepareStmt *s)
{
	gate_stmt *st;
	walk sub;

	w->t->g->session_dependent = true;
	if (!w->targets || s->name == NULL)
	{
		nested(w, s->query, "PREPARE", GATE_SAFE, false);
		return;
	}
	st = xcalloc(1, sizeof(gate_stmt));
	st->command = "EXECUTE";
	sub = *w;
	sub.st = st;
	sub.prefix = NULL;
	sub.cap = GATE_CRITICAL;
	classify_stmt(&sub, s->query);
	session_prepare(session_of(w->t->g), s->name, st);
	reason(w, GATE_SAFE, -1, false, "PREPARE %s: its statement is classified at each EXECUTE", s->name);
}

static void
walk_execute(walk *w, ExecuteStmt *s)
{
	const gate_stmt *p = session_prepared(w->t->g->session, s->name);

	w->t->g->session_dependent = true;
	if (p)
	{
		char prefix[300];

		snprintf(prefix, sizeof(prefix), "EXECUTE %s", s->name);
		queue_item(w, ITEM_PREPARED, NULL, 0, prefix, GATE_CRITICAL, true, true);
		w->t->items[w->t->nitems - 1].prepared = p;
	}
	else
		reason(w, GATE_HIGH, -1, true, "EXECUTE %s: a statement prepared where the gate did not see it", s->name);
	if (s->params)
		walk_children(w, (Node *) s->params);
}

static void
walk_vacuum(walk *w, VacuumStmt *s)
{
	ListCell *lc;
	bool full = false;

	if (!s->is_vacuumcmd)
		return;
	foreach(lc, s->options)
	{
		DefElem *d = lfirst(lc);

		if (IsA(d, DefElem) && d->defname && strcmp(d->defname, "full") == 0 &&
			(d->arg == NULL || !IsA(d->arg, String) || pg_bool(strVal(d->arg)) != 0))
			full = true;
	}
	reason(w, full ? GATE_MEDIUM : GATE_LOW, -1, false, full ? "VACUUM FULL rewrites tables (no rows lost)" :
		   "VACUUM (maintenance; no rows lost)");
}

static const char *
command_name(Node *n)
{
	switch (nodeTag(n))
	{
		case T_SelectStmt: return "SELECT";
		case T_InsertStmt: return "INSERT";
		case T_UpdateStmt: return "UPDATE";
		case T_DeleteStmt: return "DELETE";
		case T_MergeStmt: return "MERGE";
		case T_DropStmt: return drop_command(((DropStmt *) n)->removeType);
		case T_TruncateStmt: return "TRUNCATE";
		case T_AlterTableStmt: return "ALTER TABLE";
		case T_CopyStmt: return "COPY";
		case T_ExplainStmt: return "EXPLAIN";
		case T_VariableSetStmt: return ((VariableSetStmt *) n)->kind == VAR_RESET ||
				((VariableSetStmt *) n)->kind == VAR_RESET_ALL ? "RESET" : "SET";
		case T_VariableShowStmt: return "SHOW";
		case T_TransactionStmt:
			switch (((TransactionStmt *) n)->kind)
			{
				case TRANS_STMT_BEGIN:
				case TRANS_STMT_START: return "BEGIN";
				case TRANS_STMT_COMMIT: return "COMMIT";
				case TRANS_STMT_ROLLBACK: return "ROLLBACK";
				case TRANS_STMT_SAVEPOINT: return "SAVEPOINT";
				case TRANS_STMT_RELEASE: return "RELEASE";
				case TRANS_STMT_ROLLBACK_TO: return "ROLLBACK TO";
				case TRANS_STMT_PREPARE: return "PREPARE TRANSACTION";
				case TRANS_STMT_COMMIT_PREPARED: return "COMMIT PREPARED";
				case TRANS_STMT_ROLLBACK_PREPARED: return "ROLLBACK PREPARED";
			}
			return "TRANSACTION";
		case T_DoStmt: return "DO";
		case T_CreateFunctionStmt: return ((CreateFunctionStmt *) n)->is_procedure ? "CREATE PROCEDURE" : "CREATE FUNCTION";
		case T_CallStmt: return "CALL";
		case T_PrepareStmt: return "PREPARE";
		case T_ExecuteStmt: return "EXECUTE";
		case T_DeallocateStmt: return "DEALLOCATE";
		case T_RuleStmt: return "CREATE RULE";
		case T_CreateTrigStmt: return "CREATE TRIGGER";
		case T_DiscardStmt: return "DISCARD";
		case T_CreateTableAsStmt: return ((CreateTableAsStmt *) n)->objtype == OBJECT_MATVIEW ?
				"CREATE MATERIALIZED VIEW" : "CREATE TABLE AS";
		case T_ViewStmt: return "CREATE VIEW";
		case T_DeclareCursorStmt: return "DECLARE CURSOR";
		case T_CreateSchemaStmt: return "CREATE SCHEMA";
		case T_DropOwnedStmt: return "DROP OWNED";
		case T_ReassignOwnedStmt: return "REASSIGN OWNED";
		case T_LockStmt: return "LOCK";
		case T_VacuumStmt: return ((VacuumStmt *) n)->is_vacuumcmd ? "VACUUM" : "ANALYZE";
		case T_CreateStmt: return "CREATE TABLE";
		case T_IndexStmt: return "CREATE INDEX";
		case T_RenameStmt: return "RENAME";
		case T_GrantStmt: return ((GrantStmt *) n)->is_grant ? "GRANT" : "REVOKE";
		case T_GrantRoleStmt: return ((GrantRoleStmt *) n)->is_grant ? "GRANT ROLE" : "REVOKE ROLE";
		case T_CreateRoleStmt: return "CREATE ROLE";
		case T_AlterRoleStmt:
		case T_AlterRoleSetStmt: return "ALTER ROLE";
		case T_DropRoleStmt: return "DROP ROLE";
		case T_CreatedbStmt: return "CREATE DATABASE";
		case T_DropdbStmt: return "DROP DATABASE";
		case T_AlterDatabaseStmt:
		case T_AlterDatabaseSetStmt:
		case T_AlterDatabaseRefreshCollStmt: return "ALTER DATABASE";
		case T_CreateExtensionStmt: return "CREATE EXTENSION";
		case T_AlterExtensionStmt:
		case T_AlterExtensionContentsStmt: return "ALTER EXTENSION";
		case T_LoadStmt: return "LOAD";
		case T_AlterSystemStmt: return "ALTER SYSTEM";
		case T_CheckPointStmt: return "CHECKPOINT";
		case T_ClusterStmt: return "CLUSTER";
		case T_ReindexStmt: return "REINDEX";
		case T_NotifyStmt: return "NOTIFY";
		case T_ListenStmt: return "LISTEN";
		case T_UnlistenStmt: return "UNLISTEN";
		case T_FetchStmt: return ((FetchStmt *) n)->ismove ? "MOVE" : "FETCH";
		case T_ClosePortalStmt: return "CLOSE";
		case T_CreateSeqStmt: return "CREATE SEQUENCE";
		case T_AlterSeqStmt: return "ALTER SEQUENCE";
		case T_RefreshMatViewStmt: return "REFRESH MATERIALIZED VIEW";
		case T_CreateEventTrigStmt: return "CREATE EVENT TRIGGER";
		case T_AlterEventTrigStmt: return "ALTER EVENT TRIGGER";
		case T_CreatePublicationStmt: return "CREATE PUBLICATION";
		case T_AlterPublicationStmt: return "ALTER PUBLICATION";
		case T_CreateSubscriptionStmt: return "CREATE SUBSCRIPTION";
		case T_AlterSubscriptionStmt: return "ALTER SUBSCRIPTION";
		case T_DropSubscriptionStmt: return "DROP SUBSCRIPTION";
		case T_CreateTableSpaceStmt: return "CREATE TABLESPACE";
		case T_DropTableSpaceStmt: return "DROP TABLESPACE";
		case T_CreateForeignServerStmt: return "CREATE SERVER";
		case T_CreateUserMappingStmt: return "CREATE USER MAPPING";
		case T_CreateFdwStmt: return "CREATE FOREIGN DATA WRAPPER";
		case T_CreateForeignTableStmt: return "CREATE FOREIGN TABLE";
		case T_ImportForeignSchemaStmt: return "IMPORT FOREIGN SCHEMA";
		case T_CreatePolicyStmt: return "CREATE POLICY";
		case T_AlterPolicyStmt: return "ALTER POLICY";
		case T_AlterFunctionStmt: return "ALTER FUNCTION";
		case T_CommentStmt: return "COMMENT";
		case T_ConstraintsSetStmt: return "SET CONSTRAINTS";
		default: return "OTHER";
	}
}

/*
 * Statement types classified by their type alone: the level and the reason, in which "%s" stands
 * for the command's name (command_name); no reason for those that change nothing.
 */
typedef struct stmt_rule
{
	bool		known;
	gate_level	level;
	const char *why;
} stmt_rule;

#define RULE(tag, level, why) [tag] = {true, level, why}

static const stmt_rule stmt_rules[] = {
	RULE(T_GrantRoleStmt, GATE_CRITICAL, "%s changes roles and privileges"),
	RULE(T_CreateRoleStmt, GATE_CRITICAL, "%s changes roles and privileges"),
	RULE(T_AlterRoleStmt, GATE_CRITICAL, "%s changes roles and privileges"),
	RULE(T_AlterRoleSetStmt, GATE_CRITICAL, "%s changes roles and privileges"),
	RULE(T_DropRoleStmt, GATE_CRITICAL, "%s changes roles and privileges"),
	RULE(T_AlterDatabaseStmt, GATE_CRITICAL, "ALTER DATABASE changes settings of every session of a database"),
	RULE(T_AlterDatabaseSetStmt, GATE_CRITICAL, "ALTER DATABASE changes settings of every session of a database"),
	RULE(T_CreateExtensionStmt, GATE_CRITICAL, "%s runs an extension's script (server code)"),
	RULE(T_AlterExtensionStmt, GATE_CRITICAL, "%s runs an extension's script (server code)"),
	RULE(T_AlterExtensionContentsStmt, GATE_CRITICAL, "%s runs an extension's script (server code)"),
	RULE(T_LoadStmt, GATE_CRITICAL, "LOAD loads a shared library into the server"),
	RULE(T_CreateEventTrigStmt, GATE_CRITICAL, "event triggers run code on every DDL statement"),
	RULE(T_AlterEventTrigStmt, GATE_CRITICAL, "event triggers run code on every DDL statement"),
	RULE(T_CreatePLangStmt, GATE_CRITICAL, "%s installs server code"),
	RULE(T_CreateAmStmt, GATE_CRITICAL, "%s installs server code"),
	RULE(T_CreateTableSpaceStmt, GATE_CRITICAL, "tablespaces reach the server's file system"),
	RULE(T_DropTableSpaceStmt, GATE_CRITICAL, "tablespaces reach the server's file system"),
	RULE(T_AlterTableSpaceOptionsStmt, GATE_CRITICAL, "tablespaces reach the server's file system"),
	RULE(T_CreateFdwStmt, GATE_CRITICAL, "foreign servers open connections outside the gate (postgres_fdw loopback)"),
	RULE(T_AlterFdwStmt, GATE_CRITICAL, "foreign servers open connections outside the gate (postgres_fdw loopback)"),
	RULE(T_CreateForeignServerStmt, GATE_CRITICAL, "foreign servers open connections outside the gate (postgres_fdw loopback)"),
	RULE(T_AlterForeignServerStmt, GATE_CRITICAL, "foreign servers open connections outside the gate (postgres_fdw loopback)"),
	RULE(T_CreateUserMappingStmt, GATE_CRITICAL, "foreign servers open connections outside the gate (postgres_fdw loopback)"),
	RULE(T_AlterUserMappingStmt, GATE_CRITICAL, "foreign servers open connections outside the gate (postgres_fdw loopback)"),
	RULE(T_CreatePublicationStmt, GATE_CRITICAL, "%s changes logical replication (the archiver depends on it)"),
	RULE(T_AlterPublicationStmt, GATE_CRITICAL, "%s changes logical replication (the archiver depends on it)"),
	RULE(T_CreateSubscriptionStmt, GATE_CRITICAL, "%s changes logical replication (the archiver depends on it)"),
	RULE(T_AlterSubscriptionStmt, GATE_CRITICAL, "%s changes logical replication (the archiver depends on it)"),
	RULE(T_DropSubscriptionStmt, GATE_CRITICAL, "%s changes logical replication (the archiver depends on it)"),
	RULE(T_LockStmt, GATE_LOW, "LOCK TABLE (blocks other sessions; changes nothing)"),
	RULE(T_NotifyStmt, GATE_LOW, "NOTIFY sends a notification"),
	RULE(T_VariableShowStmt, GATE_SAFE, NULL),
	RULE(T_ListenStmt, GATE_SAFE, NULL),
	RULE(T_UnlistenStmt, GATE_SAFE, NULL),
	RULE(T_FetchStmt, GATE_SAFE, NULL),
	RULE(T_ClosePortalStmt, GATE_SAFE, NULL),
	RULE(T_ConstraintsSetStmt, GATE_SAFE, NULL),
};

#undef RULE

static void
classify_stmt(walk *w, Node *n)
{
	if (n == NULL || w->st->refuse)
		return;
	if (w->st->command == NULL)
		w->st->command = command_name(n);
	if ((size_t) nodeTag(n) < lengthof(stmt_rules) && stmt_rules[nodeTag(n)].known)
	{
		const stmt_rule *r = &stmt_rules[nodeTag(n)];

		if (r->why != NULL)
			reason(w, r->level, -1, false, r->why, command_name(n));
		return;
	}
	switch (nodeTag(n))
	{
		case T_SelectStmt:
		case T_InsertStmt:
		case T_UpdateStmt:
		case T_DeleteStmt:
		case T_MergeStmt:
		case T_ReturnStmt:
		case T_List:
			cw(n, w);
			return;
		case T_DropStmt:
			walk_drop(w, (DropStmt *) n);
			return;
		case T_TruncateStmt:
			walk_truncate(w, (TruncateStmt *) n);
			return;
		case T_AlterTableStmt:
			walk_alter_table(w, (AlterTableStmt *) n);
			return;
		case T_CopyStmt:
			walk_copy(w, (CopyStmt *) n);
			return;
		case T_ExplainStmt:
			if (explain_analyzes((ExplainStmt *) n))
				nested(w, ((ExplainStmt *) n)->query, "EXPLAIN ANALYZE executes it", GATE_CRITICAL, true);
			else
				nested(w, ((ExplainStmt *) n)->query, "EXPLAIN without ANALYZE (not executed)", GATE_SAFE, false);
			return;
		case T_VariableSetStmt:
			walk_set(w, (VariableSetStmt *) n);
			return;
		case T_TransactionStmt:
			walk_transaction(w, (TransactionStmt *) n);
			return;
		case T_DoStmt:
			walk_do(w, (DoStmt *) n);
			return;
		case T_CreateFunctionStmt:
			walk_create_function(w, (CreateFunctionStmt *) n);
			return;
		case T_CallStmt:
			{
				CallStmt *c = (CallStmt *) n;
				const char *schema, *name;

				if (c->funccall == NULL)
					return;
				split_name(c->funccall->funcname, &schema, &name);
				if (name)
				{
					const builtin_fn *b = find_builtin(name);

					if (b && b->special == FN_PLAIN)
						reason(w, b->level, -1, false, "%s() %s", name, b->what);
					else
						check_user_function(w, schema, name, true);
				}
				walk_children(w, (Node *) c->funccall->args);
				return;
			}
		case T_PrepareStmt:
			walk_prepare(w, (PrepareStmt *) n);
			return;
		case T_ExecuteStmt:
			walk_execute(w, (ExecuteStmt *) n);
			return;
		case T_DeallocateStmt:
			w->t->g->session_dependent = true;
			if (w->targets)
				session_deallocate(session_of(w->t->g), ((DeallocateStmt *) n)->name);
			return;
		case T_RuleStmt:
			walk_rule(w, (RuleStmt *) n);
			return;
		case T_CreateTrigStmt:
			walk_trigger(w, (CreateTrigStmt *) n);
			return;
		case T_DiscardStmt:
			switch (((DiscardStmt *) n)->target)
			{
				case DISCARD_ALL:
					reason(w, GATE_CRITICAL, -1, false,
						   "DISCARD ALL resets the session (RESET ALL, SET SESSION AUTHORIZATION DEFAULT)");
					break;
				case DISCARD_TEMP:
					reason(w, GATE_MEDIUM, -1, false, "DISCARD TEMP drops this session's temporary tables (not archived)");
					break;
				default:
					break;
			}
			return;
		case T_CreateTableAsStmt:
			{
				CreateTableAsStmt *c = (CreateTableAsStmt *) n;

				if (c->into && c->into->rel)
					rel_reason(w, c->into->rel, GATE_MEDIUM, "creates %s",
							   c->objtype == OBJECT_MATVIEW ? "materialized view" : "table");
				nested(w, c->query, NULL, GATE_CRITICAL, true);
				return;
			}
		case T_ViewStmt:
			{
				ViewStmt *v = (ViewStmt *) n;

				rel_reason(w, v->view, GATE_MEDIUM, "%s view", v->replace ? "creates or replaces" : "creates");
				/* what the view's query calls runs whenever the view is read */
				nested(w, v->query, "view query (runs when the view is read)", GATE_CRITICAL, false);
				return;
			}
		case T_DeclareCursorStmt:
			nested(w, ((DeclareCursorStmt *) n)->query, NULL, GATE_CRITICAL, true);
			return;
		case T_CreateSchemaStmt:
			{
				ListCell *lc;

				reason(w, GATE_MEDIUM, -1, false, "creates schema %s",
					   ((CreateSchemaStmt *) n)->schemaname ? ((CreateSchemaStmt *) n)->schemaname : "(named after its owner)");
				foreach(lc, ((CreateSchemaStmt *) n)->schemaElts)
					nested(w, lfirst(lc), NULL, GATE_CRITICAL, true);
				return;
			}
		case T_DropOwnedStmt:
		case T_ReassignOwnedStmt:
			{
				List *roles = IsA(n, DropOwnedStmt) ? ((DropOwnedStmt *) n)->roles : ((ReassignOwnedStmt *) n)->roles;
				ListCell *lc;

				foreach(lc, roles)
				{
					RoleSpec *r = lfirst(lc);
					int t;

					if (!IsA(r, RoleSpec) || r->rolename == NULL)
						continue;
					t = add_target(w, GATE_TARGET_ROLE, NULL, r->rolename, GATE_CRITICAL, false, -1);
					if (IsA(n, DropOwnedStmt))
					{
						reason(w, GATE_CRITICAL, t, false, "DROP OWNED BY %s destroys everything the role owns", r->rolename);
						expand(w, t, GATE_REACH_OWNED, r->rolename, GATE_HIGH, "drops table");
					}
					else
						reason(w, GATE_CRITICAL, t, false, "REASSIGN OWNED BY %s hands its objects to another role", r->rolename);
				}
				if (list_length(roles) == 0 || w->st->nreasons == 0)
					reason(w, GATE_CRITICAL, -1, false, "%s changes ownership of a role's objects", command_name(n));
				return;
			}
		case T_DropdbStmt:
			{
				int t = add_target(w, GATE_TARGET_DATABASE, NULL, ((DropdbStmt *) n)->dbname, GATE_CRITICAL, false, -1);

				reason(w, GATE_CRITICAL, t, false, "DROP DATABASE %s destroys a whole database",
					   ((DropdbStmt *) n)->dbname ? ((DropdbStmt *) n)->dbname : "?");
				return;
			}
		case T_VacuumStmt:
			walk_vacuum(w, (VacuumStmt *) n);
			return;
		case T_CreateStmt:
			{
				CreateStmt *c = (CreateStmt *) n;

				rel_reason(w, c->relation, GATE_MEDIUM, "creates %stable",
						   c->relation->relpersistence == 'u' ? "unlogged (not archived) " :
						   c->relation->relpersistence == 't' ? "temporary " : "");
				walk_children(w, (Node *) c->tableElts);
				if (c->partbound)
					walk_children(w, (Node *) list_make1(c->partbound));
				return;
			}
		case T_IndexStmt:
			{
				IndexStmt *ix = (IndexStmt *) n;

				rel_reason(w, ix->relation, GATE_MEDIUM, "creates an index on");
				walk_children(w, (Node *) ix->indexParams);
				if (ix->whereClause)
					walk_children(w, (Node *) list_make1(ix->whereClause));
				return;
			}
		case T_RenameStmt:
			if (((RenameStmt *) n)->relation)
				rel_reason(w, ((RenameStmt *) n)->relation, GATE_MEDIUM, "renames (in)");
			else
				reason(w, GATE_MEDIUM, -1, false, "renames a %s", object_word(((RenameStmt *) n)->renameType));
			return;
		case T_GrantStmt:
			reason(w, ((GrantStmt *) n)->is_grant ? GATE_CRITICAL : GATE_MEDIUM, -1, false,
				   ((GrantStmt *) n)->is_grant ? "GRANT gives privileges (the gate's least-privilege role relies on them)" :
				   "REVOKE takes privileges away");
			return;
		case T_AlterDefaultPrivilegesStmt:
			reason(w, ((AlterDefaultPrivilegesStmt *) n)->action->is_grant ? GATE_CRITICAL : GATE_MEDIUM, -1, false,
				   "ALTER DEFAULT PRIVILEGES changes the privileges of future objects");
			return;
		case T_AlterSystemStmt:
			reason(w, GATE_CRITICAL, -1, false, "ALTER SYSTEM changes the server configuration (%s)",
				   ((AlterSystemStmt *) n)->setstmt && ((AlterSystemStmt *) n)->setstmt->name ?
				   ((AlterSystemStmt *) n)->setstmt->name : "all settings");
			return;
		case T_CreatePolicyStmt:
			reason(w, GATE_MEDIUM, -1, false, "creates a row-security policy");
			walk_children(w, (Node *) list_make2(((CreatePolicyStmt *) n)->qual, ((CreatePolicyStmt *) n)->with_check));
			return;
		case T_AlterPolicyStmt:
			reason(w, GATE_MEDIUM, -1, false, "alters a row-security policy");
			walk_children(w, (Node *) list_make2(((AlterPolicyStmt *) n)->qual, ((AlterPolicyStmt *) n)->with_check));
			return;
		case T_AlterFunctionStmt:
			{
				DefElem *sec = defelem(((AlterFunctionStmt *) n)->actions, "security");

				if (sec && sec->arg && IsA(sec->arg, Boolean) && boolVal(sec->arg))
					reason(w, GATE_MEDIUM, -1, false, "makes a function run with its owner's privileges (SECURITY DEFINER)");
				else
					reason(w, GATE_MEDIUM, -1, false, "alters a function");
				return;
			}
		case T_RefreshMatViewStmt:
			rel_reason(w, ((RefreshMatViewStmt *) n)->relation, GATE_LOW, "refreshes (derived data)");
			return;
		case T_CreateSeqStmt:
		case T_AlterSeqStmt:
		case T_CreatedbStmt:
		case T_AlterDatabaseRefreshCollStmt:
		case T_ClusterStmt:
		case T_ReindexStmt:
		case T_CheckPointStmt:
		case T_AlterObjectSchemaStmt:
		case T_AlterOwnerStmt:
		case T_AlterObjectDependsStmt:
		case T_AlterTableMoveAllStmt:
		case T_DropUserMappingStmt:
		case T_CreateForeignTableStmt:
		case T_ImportForeignSchemaStmt:
		case T_DefineStmt:
		case T_CreateDomainStmt:
		case T_AlterDomainStmt:
		case T_CompositeTypeStmt:
		case T_CreateEnumStmt:
		case T_CreateRangeStmt:
		case T_AlterEnumStmt:
		case T_AlterTypeStmt:
		case T_CreateConversionStmt:
		case T_CreateCastStmt:
		case T_CreateOpClassStmt:
		case T_CreateOpFamilyStmt:
		case T_AlterOpFamilyStmt:
		case T_AlterOperatorStmt:
		case T_AlterTSDictionaryStmt:
		case T_AlterTSConfigurationStmt:
		case T_CreateTransformStmt:
		case T_CreateStatsStmt:
		case T_AlterStatsStmt:
		case T_AlterCollationStmt:
		case T_CommentStmt:
		case T_SecLabelStmt:
			reason(w, GATE_MEDIUM, -1, false, "%s (a schema change; no rows lost)",
				   strcmp(command_name(n), "OTHER") == 0 ? "changes a definition" : command_name(n));
			return;
		default:
			refuse(w, "a statement the gate does not know (node type %d)", (int) nodeTag(n));
			return;
	}
}

/* ------------------------------------------------------------------------------------------
 * Texts: parse, walk each statement, then the work that needs parses of its own
 * ------------------------------------------------------------------------------------------ */

static gate_result *classify_text(gctx *g, const char *sql, int depth, bool body_only, bool try_only);

static bool
valid_utf8(const unsigned char *s, size_t len)
{
	size_t i = 0;

	while (i < len)
	{
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80)
		{
			i++;
			continue;
		}
		if ((c & 0xE0) == 0xC0)
			n = 1, cp = c & 0x1F;
		else if ((c & 0xF0) == 0xE0)
			n = 2, cp = c & 0x0F;
		else if ((c & 0xF8) == 0xF0)
			n = 3, cp = c & 0x07;
		else
			return false;
		if (i + n >= len)
			return false;
		for (size_t k = 1; k <= n; k++)
		{
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
			cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += n + 1;
	}
	return true;
}

static gate_result *
refused_result(const char *sql, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static gate_result *
refused_result(const char *sql, const char *fmt, ...)
{
	gate_result *r = xcalloc(1, sizeof(*r));
	gate_stmt *st;
	va_list ap;

	r->stmts = xcalloc(1, sizeof(gate_stmt));
	r->nstmts = 1;
	st = &r->stmts[0];
	st->offset = 0;
	st->length = strlen(sql);
	st->command = "UNPARSABLE";
	va_start(ap, fmt);
	vreason(st, NULL, GATE_CRITICAL, -1, false, fmt, ap);
	va_end(ap);
	st->reasons[0].refusal = true;
	st->refuse = true;
	r->level = GATE_CRITICAL;
	r->refuse = true;
	return r;
}

/* Copy a target into st (deduplicated), returning its index there. */
static int
merge_target(gate_stmt *st, const gate_target *src, gate_level cap)
{
	gate_target *t;
	gate_level level = min_level(src->level, cap);

	for (int i = 0; i < st->ntargets; i++)
	{
		t = &st->targets[i];
		if ((src->resolved && src->exists && t->resolved && t->exists && t->oid == src->oid) ||
			(t->kind == src->kind && str_eq(t->schema, src->schema) && strcmp(t->name, src->name) == 0 &&
			 t->only == src->only && t->resolved == src->resolved))
		{
			t->level = max_level(t->level, level);
			return i;
		}
	}
	st->targets = xrealloc(st->targets, sizeof(gate_target) * (size_t) (st->ntargets + 1));
	t = &st->targets[st->ntargets];
	*t = *src;
	t->schema = dup_or_null(src->schema);
	t->name = xstrdup(src->name);
	t->nspname = dup_or_null(src->nspname);
	t->relname = dup_or_null(src->relname);
	t->level = level;
	t->via = -1;
	return st->ntargets++;
}


/*
 * Fold the classification of a body (or a prepared statement) into the statement that runs
 * it.  A body that could not be parsed refuses the statement when it must be seen (DO, a
 * replaced function), else counts as invisible: HIGH for a volatile function.
 */
static void
merge_stmt(item *it, const gate_stmt *s)
{
	gate_stmt *st = it->st;

	for (int i = 0; i < s->nreasons; i++)
	{
		const gate_reason *r = &s->reasons[i];
		gate_level level = min_level(r->level, it->cap);
		bool unknown = r->unknown_targets && it->targets;
		int target = -1;

		int k;

		if (r->refusal && !it->must_parse)
		{
			/* a body the gate cannot read: invisible, as for a C function */
			level = it->volatile_fn ? min_level(GATE_HIGH, it->cap) : GATE_SAFE;
			unknown = it->volatile_fn && it->targets;
		}
		if (r->target >= 0 && r->target < s->ntargets && it->targets)
			target = merge_target(st, &s->targets[r->target], it->cap);
		k = vreason_text(st, it->prefix, level, target, unknown, r->text);
		if (r->refusal && it->must_parse)
			st->reasons[k].refusal = true;
	}
	if (it->targets)
		for (int i = 0; i < s->ntargets; i++)
			merge_target(st, &s->targets[i], it->cap);
	if (s->refuse && it->must_parse)
		st->refuse = true;
}

static void
merge_result(item *it, const gate_result *r)
{
	for (int i = 0; i < r->nstmts; i++)
		merge_stmt(it, &r->stmts[i]);
}

/* A constant string expression ('...', $q$...$q$, E'...'), or NULL. */
static char *
const_sql_of(const char *expr)
{
	strbuf sb = STRBUF_INIT;
	MemoryContext ctx;
	PgQueryInternalParsetreeAndError pr;
	char *out = NULL;

	strbuf_printf(&sb, "SELECT %s", expr);
	ctx = pg_query_enter_memory_context();
	pr = pg_query_raw_parse(sb.data);
	if (pr.error == NULL && list_length(pr.tree) == 1)
	{
		RawStmt *rs = linitial(pr.tree);
		SelectStmt *s = (SelectStmt *) rs->stmt;

		if (IsA(s, SelectStmt) && list_length(s->targetList) == 1 && s->fromClause == NIL &&
			IsA(linitial(s->targetList), ResTarget))
		{
			const char *v = a_const_string(((ResTarget *) linitial(s->targetList))->val);

			if (v)
				out = xstrdup(v);
		}
	}
	if (pr.error)
		pg_query_free_error(pr.error);
	free(pr.stderr_buffer);
	pg_query_exit_memory_context(ctx);
	strbuf_free(&sb);
	return out;
}

typedef enum pl_mode
{
	PL_STMT,					/* a whole SQL statement */
	PL_EXPR,					/* an expression, run as SELECT expr */
	PL_ASSIGN,					/* target := expression */
	PL_DYNAMIC					/* the text of dynamic SQL (EXECUTE) */
} pl_mode;

typedef struct pl_ctx
{
	gctx *g;
	int depth;
	gate_stmt *acc;
	bool failed_parse;
	char why[300];
} pl_ctx;

static void
pl_merge(pl_ctx *pc, gate_result *r)
{
	item it;

	memset(&it, 0, sizeof(it));
	it.st = pc->acc;
	it.cap = GATE_CRITICAL;
	it.targets = true;
	it.must_parse = true;
	merge_result(&it, r);
	gate_result_free(r);
}

static bool
pl_try(pl_ctx *pc, const char *prefix, const char *text)
{
	strbuf sb = STRBUF_INIT;
	gate_result *r;

	strbuf_printf(&sb, "%s%s", prefix, text);
	r = classify_text(pc->g, sb.data, pc->depth, false, true);
	strbuf_free(&sb);
	if (r == NULL)
		return false;
	pl_merge(pc, r);
	return true;
}

/* Split "target := expr" (or "target = expr") at the first top-level assignment operator. */
static const char *
assign_rhs(const char *s)
{
	int depth = 0;

	for (const char *p = s; *p; p++)
	{
		if (*p == '"')
		{
			for (p++; *p && !(*p == '"' && p[1] != '"'); p++)
				if (*p == '"')
					p++;
			if (*p == '\0')
				return NULL;
		}
		else if (*p == '[')
			depth++;
		else if (*p == ']')
			depth--;
		else if (depth == 0 && p[0] == ':' && p[1] == '=')
			return p + 2;
		else if (depth == 0 && p[0] == '=')
			return p + 1;
		else if (depth == 0 && p[0] == '\'')
			return NULL;
	}
	return NULL;
}

static void
pl_sql(pl_ctx *pc, const char *text, pl_mode mode)
{
	bool ok = false;

	switch (mode)
	{
		case PL_STMT:
			ok = pl_try(pc, "", text) || pl_try(pc, "SELECT ", text);
			break;
		case PL_EXPR:
			ok = pl_try(pc, "SELECT ", text) || pl_try(pc, "", text);
			break;
		case PL_ASSIGN:
			{
				const char *rhs = assign_rhs(text);
				const char *br = strchr(text, '[');

				ok = rhs && pl_try(pc, "SELECT ", rhs);
				if (ok && br && br < rhs)
				{
					/* subscripts of the target are expressions too */
					char *sub = xstrndup(br + 1, (size_t) (rhs - br - 1));
					char *end = strrchr(sub, ']');

					if (end)
						*end = '\0';
					for (char *p = sub; *p; p++)
						if (*p == ':' || *p == '[' || *p == ']')
							*p = ',';
					ok = pl_try(pc, "SELECT ", sub);
					free(sub);
				}
				break;
			}
		case PL_DYNAMIC:
			{
				char *c = const_sql_of(text);

				if (c)
				{
					gate_result *r = classify_text(pc->g, c, pc->depth, false, false);
					item it;

					memset(&it, 0, sizeof(it));
					it.st = pc->acc;
					it.cap = GATE_CRITICAL;
					it.targets = true;
					it.must_parse = true;
					it.prefix = "EXECUTE of a constant";
					merge_result(&it, r);
					gate_result_free(r);
					free(c);
				}
				else
					vreason_text(pc->acc, NULL, GATE_HIGH, -1, true,
								 "dynamic SQL (EXECUTE of a computed string) the gate cannot see");
				ok = pl_try(pc, "SELECT ", text);
				break;
			}
	}
	if (!ok && !pc->failed_parse)
	{
		pc->failed_parse = true;
		snprintf(pc->why, sizeof(pc->why), "cannot parse the PL/pgSQL expression \"%.200s\"", text);
	}
}

/* Walk libpg_query's JSON of a PL/pgSQL function: every SQL text in it, by what it is. */
static void
pl_walk(pl_ctx *pc, json_t *j, const char *type, const char *key, int depth)
{
	if (depth > 200)
	{
		pc->failed_parse = true;
		snprintf(pc->why, sizeof(pc->why), "the PL/pgSQL body nests too deeply");
		return;
	}
	if (json_is_array(j))
	{
		size_t i;
		json_t *v;

		json_array_foreach(j, i, v)
			pl_walk(pc, v, type, key, depth + 1);
		return;
	}
	if (!json_is_object(j))
		return;
	{
		const char *k;
		json_t *v;

		json_object_foreach(j, k, v)
		{
			if (strcmp(k, "PLpgSQL_expr") == 0)
			{
				const char *q = json_string_value(json_object_get(v, "query"));
				pl_mode mode = PL_EXPR;

				if (q == NULL)
					continue;
				if (strcmp(key, "dynquery") == 0 ||
					(strcmp(key, "query") == 0 && (strcmp(type, "PLpgSQL_stmt_dynexecute") == 0 ||
												   strcmp(type, "PLpgSQL_stmt_dynfors") == 0)))
					mode = PL_DYNAMIC;
				else if (strcmp(key, "sqlstmt") == 0 || strcmp(key, "cursor_explicit_expr") == 0 ||
						 strcmp(type, "PLpgSQL_stmt_perform") == 0 || strcmp(type, "PLpgSQL_stmt_call") == 0 ||
						 (strcmp(key, "query") == 0 && (strcmp(type, "PLpgSQL_stmt_fors") == 0 ||
														strcmp(type, "PLpgSQL_stmt_return_query") == 0 ||
														strcmp(type, "PLpgSQL_stmt_open") == 0)))
					mode = PL_STMT;
				else if (strcmp(type, "PLpgSQL_stmt_assign") == 0)
					mode = PL_ASSIGN;
				pl_sql(pc, q, mode);
				continue;
			}
			if (strcmp(k, "PLpgSQL_stmt_commit") == 0 || strcmp(k, "PLpgSQL_stmt_rollback") == 0)
				vreason_text(pc->acc, NULL, GATE_HIGH, -1, false,
							 "COMMIT or ROLLBACK inside the body ends its transaction part-way");
			if (strncmp(k, "PLpgSQL_", 8) == 0)
				pl_walk(pc, v, k, "", depth + 1);
			else
				pl_walk(pc, v, type, k, depth + 1);
		}
	}
}

static gate_result *
classify_plpgsql(gctx *g, const char *text, int depth)
{
	PgQueryPlpgsqlParseResult pr;
	gate_result *r;
	json_t *j;
	json_error_t jerr;
	pl_ctx pc;

	LIBRARY_LEAK_BEGIN();
	pr = pg_query_parse_plpgsql(text);
	LIBRARY_LEAK_END();

	if (pr.error)
	{
		r = refused_result(text, "cannot parse the PL/pgSQL body: %s", pr.error->message ? pr.error->message : "?");
		pg_query_free_plpgsql_parse_result(pr);
		return r;
	}
	j = json_loads(pr.plpgsql_funcs ? pr.plpgsql_funcs : "[]", 0, &jerr);
	pg_query_free_plpgsql_parse_result(pr);
	if (j == NULL)
		return refused_result(text, "cannot read the PL/pgSQL parse: %s", jerr.text);
	r = xcalloc(1, sizeof(*r));
	r->stmts = xcalloc(1, sizeof(gate_stmt));
	r->nstmts = 1;
	r->stmts[0].length = strlen(text);
	r->stmts[0].command = "PL/pgSQL";
	memset(&pc, 0, sizeof(pc));
	pc.g = g;
	pc.depth = depth;
	pc.acc = &r->stmts[0];
	pl_walk(&pc, j, "", "", 0);
	json_decref(j);
	if (pc.failed_parse)
	{
		/* the index first: vreason_text() moves the array the subscript would be taken from */
		int i = vreason_text(pc.acc, NULL, GATE_CRITICAL, -1, false, pc.why);

		pc.acc->reasons[i].refusal = true;
		pc.acc->refuse = true;
	}
	r->level = r->stmts[0].level;
	r->refuse = r->stmts[0].refuse;
	return r;
}

static int
body_index(gctx *g, uint32_t oid, const void *key)
{
	for (int i = 0; i < g->nbodies; i++)
		if (oid ? g->bodies[i].oid == oid : g->bodies[i].key == key)
			return i;
	return -1;
}

static void
process_item(gctx *g, item *it)
{
	gate_result *r;

	switch (it->kind)
	{
		case ITEM_SQL:
			r = classify_text(g, it->text, it->depth, it->body_only, false);
			merge_result(it, r);
			gate_result_free(r);
			return;
		case ITEM_PLPGSQL:
			r = it->depth > GATE_MAX_NESTING ?
				refused_result(it->text, "bodies nest deeper than %d levels", GATE_MAX_NESTING) :
				classify_plpgsql(g, it->text, it->depth);
			merge_result(it, r);
			gate_result_free(r);
			return;
		case ITEM_PREPARED:
			merge_stmt(it, it->prepared);
			return;
		case ITEM_FUNCTION:
			{
				int i = body_index(g, it->oid, it->key);
				item whole;

				if (i >= 0 && g->bodies[i].busy)
					return;		/* recursion: the outer classification covers it */
				if (i < 0)
				{
					g->bodies = xrealloc(g->bodies, sizeof(body_entry) * (size_t) (g->nbodies + 1));
					i = g->nbodies++;
					g->bodies[i].oid = it->oid;
					g->bodies[i].key = it->key;
					g->bodies[i].busy = true;
					g->bodies[i].summary = NULL;
					r = classify_text(g, it->text, it->depth, true, false);
					memset(&whole, 0, sizeof(whole));
					whole.st = xcalloc(1, sizeof(gate_stmt));
					whole.st->command = "FUNCTION";
					whole.cap = GATE_CRITICAL;
					whole.targets = true;
					whole.must_parse = false;
					whole.volatile_fn = it->volatile_fn;
					merge_result(&whole, r);
					gate_result_free(r);
					g->bodies[i].summary = whole.st;
					g->bodies[i].busy = false;
				}
				merge_stmt(it, g->bodies[i].summary);
				return;
			}
	}
}

static void
trim_stmt(const char *sql, gate_stmt *st)
{
	while (st->length > 0 && isspace((unsigned char) sql[st->offset]))
		st->offset++, st->length--;
	while (st->length > 0 && (isspace((unsigned char) sql[st->offset + st->length - 1]) ||
							  sql[st->offset + st->length - 1] == ';'))
		st->length--;
}

static gate_result *
classify_text(gctx *g, const char *sql, int depth, bool body_only, bool try_only)
{
	size_t len = strlen(sql);
	MemoryContext ctx;
	PgQueryInternalParsetreeAndError pr;
	gate_result *r;
	tctx t;
	ListCell *lc;
	int i = 0;

	if (depth > GATE_MAX_NESTING)
		return refused_result(sql, "bodies nest deeper than %d levels", GATE_MAX_NESTING);
	if (len > GATE_MAX_TEXT)
		return refused_result(sql, "the text is larger than %d bytes", GATE_MAX_TEXT);
	if (!valid_utf8((const unsigned char *) sql, len))
		return try_only ? NULL : refused_result(sql, "the text is not valid UTF-8 (the server would read it differently)");

	ctx = pg_query_enter_memory_context();
	pr = pg_query_raw_parse(sql);
	if (pr.error)
	{
		r = try_only ? NULL :
			refused_result(sql, "cannot parse: %s (at byte %d)", pr.error->message ? pr.error->message : "syntax error",
						   pr.error->cursorpos > 0 ? pr.error->cursorpos - 1 : 0);
		pg_query_free_error(pr.error);
		free(pr.stderr_buffer);
		pg_query_exit_memory_context(ctx);
		return r;
	}
	free(pr.stderr_buffer);

	r = xcalloc(1, sizeof(*r));
	r->nstmts = list_length(pr.tree);
	r->stmts = r->nstmts ? xcalloc((size_t) r->nstmts, sizeof(gate_stmt)) : NULL;
	memset(&t, 0, sizeof(t));
	t.g = g;
	t.sql = sql;
	t.depth = depth;
	t.body_only = body_only;
	foreach(lc, pr.tree)
	{
		RawStmt *rs = lfirst(lc);
		gate_stmt *st = &r->stmts[i++];
		walk w;

		st->offset = rs->stmt_location > 0 && (size_t) rs->stmt_location <= len ? (size_t) rs->stmt_location : 0;
		st->length = rs->stmt_len > 0 && st->offset + (size_t) rs->stmt_len <= len ? (size_t) rs->stmt_len : len - st->offset;
		memset(&w, 0, sizeof(w));
		w.t = &t;
		w.st = st;
		w.cap = GATE_CRITICAL;
		w.targets = true;
		w.text = sql + st->offset;
		w.text_len = st->length;
		classify_stmt(&w, rs->stmt);
		trim_stmt(sql, st);
		if (g->failed)
			break;
	}
	pg_query_exit_memory_context(ctx);

	for (int k = 0; k < t.nitems; k++)
	{
		if (!g->failed)
			process_item(g, &t.items[k]);
		free(t.items[k].text);
		free(t.items[k].prefix);
	}
	free(t.items);
	for (int k = 0; k < r->nstmts; k++)
	{
		r->level = max_level(r->level, r->stmts[k].level);
		r->refuse |= r->stmts[k].refuse;
	}
	return r;
}

/* ------------------------------------------------------------------------------------------
 * Entry points
 * ------------------------------------------------------------------------------------------ */

int
gate_classify_n(const char *sql, size_t len, const gate_options *opts, gate_result **out, bs_error *err)
{
	char *copy;
	int rc;

	if (memchr(sql, '\0', len) != NULL)
	{
		copy = xstrndup(sql, strnlen(sql, len));
		*out = refused_result(copy, "the text contains a NUL byte (the server would read only what comes before it)");
		free(copy);
		return BS_OK;
	}
	copy = xstrndup(sql, len);
	rc = gate_classify(copy, opts, out, err);
	free(copy);
	return rc;
}

int
gate_classify(const char *sql, const gate_options *opts, gate_result **out, bs_error *err)
{
	gctx g;
	gate_result *r;

	memset(&g, 0, sizeof(g));
	g.opts = opts;
	g.cat = opts ? opts->catalog : NULL;
	g.err = err;
	g.session = opts && opts->session ? opts->session : NULL;
	*out = NULL;
	r = classify_text(&g, sql ? sql : "", 0, false, false);
	r->resolved = g.cat != NULL;
	r->cacheable = !g.session_dependent;

	for (int i = 0; i < g.nrels; i++)
	{
		name_key_clear(&g.rels[i].key);
		gate_rel_clear(&g.rels[i].rel);
	}
	free(g.rels);
	for (int i = 0; i < g.ncols; i++)
		free(g.cols[i].column);
	free(g.cols);
	for (int i = 0; i < g.nfns; i++)
	{
		for (int k = 0; k < g.fns[i].n; k++)
			gate_func_clear(&g.fns[i].funcs[k]);
		free(g.fns[i].funcs);
		name_key_clear(&g.fns[i].key);
	}
	free(g.fns);
	for (int i = 0; i < g.nbodies; i++)
		heap_stmt_free(g.bodies[i].summary);
	free(g.bodies);
	if (g.session)
		session_bury(g.session);
	if (g.own_session)
		gate_session_free(g.session);
	if (g.failed)
	{
		gate_result_free(r);
		error_prefix(err, "catalog look-up for the gate failed");
		return BS_ERR;
	}
	*out = r;
	return BS_OK;
}

typedef struct self_case
{
	const char *sql;
	NodeTag tag;
	const char *json_name;
} self_case;

static int
self_fail(bs_error *err, const char *what)
{
	return error_set(err, "XX000",
					 "libpg_query's parse tree does not match the PostgreSQL %d headers the gate was built with (%s): "
					 "rebuild Backstop against this libpg_query; the gate refuses everything meanwhile",
					 PG_VERSION_NUM / 10000, what);
}

int
gate_self_check(bs_error *err)
{
	static const self_case cases[] = {
		{"SELECT 1", T_SelectStmt, "SelectStmt"},
		{"INSERT INTO t VALUES (1)", T_InsertStmt, "InsertStmt"},
		{"UPDATE t SET a = 1", T_UpdateStmt, "UpdateStmt"},
		{"DELETE FROM t WHERE a = 1", T_DeleteStmt, "DeleteStmt"},
		{"MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE", T_MergeStmt, "MergeStmt"},
		{"DROP TABLE t", T_DropStmt, "DropStmt"},
		{"TRUNCATE t", T_TruncateStmt, "TruncateStmt"},
		{"ALTER TABLE t DROP COLUMN c", T_AlterTableStmt, "AlterTableStmt"},
		{"COPY t FROM STDIN", T_CopyStmt, "CopyStmt"},
		{"EXPLAIN ANALYZE SELECT 1", T_ExplainStmt, "ExplainStmt"},
		{"SET a = 1", T_VariableSetStmt, "VariableSetStmt"},
		{"BEGIN", T_TransactionStmt, "TransactionStmt"},
		{"DO $$BEGIN END$$", T_DoStmt, "DoStmt"},
		{"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", T_CreateFunctionStmt, "CreateFunctionStmt"},
		{"CALL p()", T_CallStmt, "CallStmt"},
		{"PREPARE p AS SELECT 1", T_PrepareStmt, "PrepareStmt"},
		{"CREATE TABLE t (a int)", T_CreateStmt, "CreateStmt"},
		{"ALTER SYSTEM SET a = 1", T_AlterSystemStmt, "AlterSystemStmt"},
		{"DISCARD ALL", T_DiscardStmt, "DiscardStmt"},
		{"DROP OWNED BY r", T_DropOwnedStmt, "DropOwnedStmt"},
		{"CREATE PUBLICATION p", T_CreatePublicationStmt, "CreatePublicationStmt"},
		{"ALTER STATISTICS s SET STATISTICS 1", T_AlterStatsStmt, "AlterStatsStmt"},
		{NULL, T_Invalid, NULL}
	};
	MemoryContext ctx;
	PgQueryInternalParsetreeAndError pr;
	int rc = BS_OK;

	if (gate_pg_query_version / 10000 != PG_VERSION_NUM / 10000)
		return self_fail(err, "libpg_query is another major version");
	for (int i = 0; cases[i].sql && rc == BS_OK; i++)
	{
		PgQueryParseResult jr = pg_query_parse(cases[i].sql);
		char key[80];

		snprintf(key, sizeof(key), "\"stmt\":{\"%s\"", cases[i].json_name);
		if (jr.error || jr.parse_tree == NULL || strstr(jr.parse_tree, key) == NULL)
			rc = self_fail(err, cases[i].sql);
		pg_query_free_parse_result(jr);
		if (rc != BS_OK)
			break;
		ctx = pg_query_enter_memory_context();
		pr = pg_query_raw_parse(cases[i].sql);
		if (pr.error || list_length(pr.tree) != 1 || !IsA(linitial(pr.tree), RawStmt) ||
			nodeTag(((RawStmt *) linitial(pr.tree))->stmt) != cases[i].tag)
			rc = self_fail(err, cases[i].sql);
		else if (cases[i].tag == T_DeleteStmt)
		{
			DeleteStmt *d = (DeleteStmt *) ((RawStmt *) linitial(pr.tree))->stmt;

			if (d->relation == NULL || !IsA(d->relation, RangeVar) || strcmp(d->relation->relname, "t") != 0 ||
				d->whereClause == NULL || !IsA(d->whereClause, A_Expr) ||
				!IsA(((A_Expr *) d->whereClause)->rexpr, A_Const) ||
				!IsA(&((A_Const *) ((A_Expr *) d->whereClause)->rexpr)->val, Integer) ||
				intVal(&((A_Const *) ((A_Expr *) d->whereClause)->rexpr)->val) != 1)
				rc = self_fail(err, "DeleteStmt fields");
		}
		else if (cases[i].tag == T_AlterTableStmt)
		{
			AlterTableStmt *a = (AlterTableStmt *) ((RawStmt *) linitial(pr.tree))->stmt;
			AlterTableCmd *c = list_length(a->cmds) == 1 ? linitial(a->cmds) : NULL;

			if (c == NULL || !IsA(c, AlterTableCmd) || c->subtype != AT_DropColumn || strcmp(c->name, "c") != 0)
				rc = self_fail(err, "AlterTableCmd fields");
		}
		else if (cases[i].tag == T_DropStmt)
		{
			DropStmt *d = (DropStmt *) ((RawStmt *) linitial(pr.tree))->stmt;

			if (d->removeType != OBJECT_TABLE || d->behavior != DROP_RESTRICT)
				rc = self_fail(err, "DropStmt fields");
		}
		if (pr.error)
			pg_query_free_error(pr.error);
		free(pr.stderr_buffer);
		pg_query_exit_memory_context(ctx);
	}
	return rc;
}

static const char *
target_kind_name(gate_target_kind k)
{
	switch (k)
	{
		case GATE_TARGET_RELATION: return "relation";
		case GATE_TARGET_SCHEMA: return "schema";
		case GATE_TARGET_DATABASE: return "database";
		case GATE_TARGET_ROLE: return "role";
	}
	return "?";
}

json_t *
gate_result_json(const gate_result *r, const char *sql)
{
	json_t *o = json_object();
	json_t *stmts = json_array();
	size_t sqllen = sql ? strlen(sql) : 0;

	json_object_set_new(o, "level", json_string(gate_level_name(r->level)));
	json_object_set_new(o, "refused", json_boolean(r->refuse));
	json_object_set_new(o, "resolved", json_boolean(r->resolved));
	for (int i = 0; i < r->nstmts; i++)
	{
		const gate_stmt *st = &r->stmts[i];
		json_t *s = json_object();
		json_t *reasons = json_array();
		json_t *targets = json_array();

		if (sql && st->offset + st->length <= sqllen)
			json_object_set_new(s, "text", json_stringn(sql + st->offset, st->length));
		json_object_set_new(s, "offset", json_integer((json_int_t) st->offset));
		json_object_set_new(s, "length", json_integer((json_int_t) st->length));
		json_object_set_new(s, "command", json_string(st->command ? st->command : "?"));
		json_object_set_new(s, "level", json_string(gate_level_name(st->level)));
		json_object_set_new(s, "refused", json_boolean(st->refuse));
		json_object_set_new(s, "unknown_targets", json_boolean(st->unknown_targets));
		for (int k = 0; k < st->nreasons; k++)
		{
			json_t *x = json_object();

			json_object_set_new(x, "level", json_string(gate_level_name(st->reasons[k].level)));
			json_object_set_new(x, "text", json_string(st->reasons[k].text));
			if (st->reasons[k].target >= 0)
				json_object_set_new(x, "target", json_integer(st->reasons[k].target));
			if (st->reasons[k].unknown_targets)
				json_object_set_new(x, "unknown_targets", json_true());
			json_array_append_new(reasons, x);
		}
		for (int k = 0; k < st->ntargets; k++)
		{
			const gate_target *t = &st->targets[k];
			json_t *x = json_object();
			char *dn = gate_target_display(t);

			json_object_set_new(x, "kind", json_string(target_kind_name(t->kind)));
			json_object_set_new(x, "name", json_string(dn));
			json_object_set_new(x, "level", json_string(gate_level_name(t->level)));
			if (t->only)
				json_object_set_new(x, "only", json_true());
			if (t->via >= 0)
				json_object_set_new(x, "via", json_integer(t->via));
			json_object_set_new(x, "resolved", json_boolean(t->resolved));
			if (t->resolved)
			{
				json_object_set_new(x, "exists", json_boolean(t->exists));
				if (t->exists)
				{
					char rk[2] = {t->relkind, '\0'};

					json_object_set_new(x, "oid", json_integer(t->oid));
					json_object_set_new(x, "relkind", json_string(rk));
					json_object_set_new(x, "temporary", json_boolean(t->temp));
				}
			}
			free(dn);
			json_array_append_new(targets, x);
		}
		json_object_set_new(s, "reasons", reasons);
		json_object_set_new(s, "targets", targets);
		json_array_append_new(stmts, s);
	}
	json_object_set_new(o, "statements", stmts);
	return o;
}
