/* gate_tool.c — timing of the gate for contrib/bench/gate: bare parse vs classification vs cache hit. */
#include "cache.h"
#include "gate.h"
#include "strbuf.h"

#include <pg_query.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The bare raw parse the gate starts from (pg_query_internal.h needs the server headers). */
typedef struct
{
	void *tree;
	char *stderr_buffer;
	PgQueryError *error;
} raw_result;
extern raw_result pg_query_raw_parse(const char *input);
extern void *pg_query_enter_memory_context(void);
extern void pg_query_exit_memory_context(void *ctx);
extern void pg_query_free_error(PgQueryError *error);

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec * 1e6 + (double) ts.tv_nsec / 1e3;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *) a, y = *(const double *) b;

	return x < y ? -1 : x > y;
}

typedef struct series
{
	double *v;
	int n;
	int cap;
} series;

static void
add(series *s, double v)
{
	if (s->n == s->cap)
	{
		s->cap = s->cap ? s->cap * 2 : 1024;
		s->v = xrealloc(s->v, sizeof(double) * (size_t) s->cap);
	}
	s->v[s->n++] = v;
}

static double
pct(series *s, double p)
{
	int i;

	if (s->n == 0)
		return 0;
	qsort(s->v, (size_t) s->n, sizeof(double), cmp_double);
	i = (int) (p * (s->n - 1) + 0.5);
	return s->v[i];
}

enum { M_JSON, M_RAW, M_CLASSIFY, M_HIT };

/* Per-call microseconds, averaged over a batch (the clock costs about as much as a cache hit). */
static double
batch(int mode, const char *sql, size_t len, int n, gate_cache *cache)
{
	double t0 = now_us();

	for (int i = 0; i < n; i++)
	{
		switch (mode)
		{
			case M_JSON:
				{
					PgQueryParseResult r = pg_query_parse(sql);

					pg_query_free_parse_result(r);
					break;
				}
			case M_RAW:
				{
					void *ctx = pg_query_enter_memory_context();
					raw_result r = pg_query_raw_parse(sql);

					if (r.error)
						pg_query_free_error(r.error);
					free(r.stderr_buffer);
					pg_query_exit_memory_context(ctx);
					break;
				}
			case M_CLASSIFY:
				{
					gate_result *r;
					bs_error err;

					gate_classify(sql, NULL, &r, &err);
					gate_result_free(r);
					break;
				}
			case M_HIT:
				if (gate_cache_get(cache, sql, len, "app\n\"$user\",public", 7) == NULL)
					abort();
				break;
		}
	}
	return (now_us() - t0) / n;
}

int
main(int argc, char **argv)
{
	FILE *f;
	strbuf text = STRBUF_INIT;
	char buf[65536];
	size_t n;
	PgQuerySplitResult split;
	series s[4] = {{0}};
	int rounds = argc > 2 ? atoi(argv[2]) : 30;
	gate_cache *cache = gate_cache_new(1024);
	int uncached = 0;
	static const char *const names[] = {"pg_query_parse (JSON)", "pg_query_raw_parse", "gate_classify", "cache hit"};

	if (argc < 2 || (f = fopen(argv[1], "rb")) == NULL)
	{
		fprintf(stderr, "usage: gate_tool CORPUS.sql [ROUNDS]\n");
		return 2;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		strbuf_append(&text, buf, n);
	fclose(f);
	strbuf_append_str(&text, "");
	split = pg_query_split_with_parser(text.data);
	if (split.error)
	{
		fprintf(stderr, "gate_tool: cannot split the corpus: %s\n", split.error->message);
		return 1;
	}
	for (int k = 0; k < split.n_stmts; k++)
	{
		char *sql = xstrndup(text.data + split.stmts[k]->stmt_location, (size_t) split.stmts[k]->stmt_len);
		size_t len = strlen(sql);
		gate_result *r;
		bs_error err;

		/* one classification for the cache */
		gate_classify(sql, NULL, &r, &err);
		if (!r->cacheable)
		{
			uncached++;
			gate_result_free(r);
		}
		else
			gate_cache_put(cache, sql, len, "app\n\"$user\",public", 7, r);
		series one[4] = {{0}};

		for (int round = 0; round < rounds; round++)
		{
			/* interleaved, so that drift affects every mode alike */
			add(&one[M_JSON], batch(M_JSON, sql, len, 10, NULL));
			add(&one[M_RAW], batch(M_RAW, sql, len, 10, NULL));
			add(&one[M_CLASSIFY], batch(M_CLASSIFY, sql, len, 10, NULL));
			if (gate_cache_get(cache, sql, len, "app\n\"$user\",public", 7))
				add(&one[M_HIT], batch(M_HIT, sql, len, 1000, cache));
		}
		/* a statement's cost is the median of its rounds (rounds hit by preemption drop out) */
		for (int m = 0; m < 4; m++)
		{
			if (one[m].n)
				add(&s[m], pct(&one[m], 0.5));
		}
		if (getenv("GATE_BENCH_VERBOSE"))
		{
			printf("%3d", k + 1);
			for (int m = 0; m < 4; m++)
				printf(" %9.3f", one[m].n ? pct(&one[m], 0.5) : 0.0);
			for (char *p = sql; *p; p++)
				if (*p == '\n')
					*p = ' ';
			printf("  %.60s\n", sql);
		}
		for (int m = 0; m < 4; m++)
			free(one[m].v);
		free(sql);
	}
	printf("corpus: %d statements (%d not cacheable), %d rounds of 10 calls each (1000 for cache hits);\n"
		   "a statement's cost is the median of its rounds; median and p99 over the statements\n\n",
		   split.n_stmts, uncached, rounds);
	printf("%-24s %12s %12s\n", "us per statement", "median", "p99");
	for (int m = 0; m < 4; m++)
		printf("%-24s %12.3f %12.3f\n", names[m], pct(&s[m], 0.5), pct(&s[m], 0.99));
	{
		double json = pct(&s[M_JSON], 0.5), raw = pct(&s[M_RAW], 0.5), cls = pct(&s[M_CLASSIFY], 0.5);
		double json99 = pct(&s[M_JSON], 0.99), raw99 = pct(&s[M_RAW], 0.99), cls99 = pct(&s[M_CLASSIFY], 0.99);

		printf("\nclassification / pg_query_parse:     median %.2fx, p99 %.2fx (goal: median <= 1.5x)\n",
			   cls / json, cls99 / json99);
		printf("classification / pg_query_raw_parse: median %.2fx, p99 %.2fx\n", cls / raw, cls99 / raw99);
		printf("cache hit: median %.3f us, p99 %.3f us (goal: <= 1 us)\n", pct(&s[M_HIT], 0.5), pct(&s[M_HIT], 0.99));
	}
	pg_query_free_split_result(split);
	gate_cache_free(cache);
	strbuf_free(&text);
	for (int m = 0; m < 4; m++)
		free(s[m].v);
	return 0;
}
