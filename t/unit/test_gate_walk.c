/* test_gate_walk.c — the gate finds a read-only flip wherever an expression may sit in the parse tree. */
#include "gate.h"
#include "strbuf.h"
#include "tap.h"

#include <string.h>

/* A call that turns the session's read-only guard off: CRITICAL wherever it is. */
#define FLIP "set_config('transaction_read_only', 'off', false)"

/* One statement per node kind the tree walker descends into, the flip inside it. */
static const char *const buried[] = {
	"SELECT f(x => " FLIP ")",											/* NamedArgExpr */
	"SELECT (ARRAY[1, 2])[" FLIP "::int]",								/* A_Indirection, A_Indices */
	"SELECT (ARRAY[1, 2])[1:" FLIP "::int]",							/* A_Indices, upper bound */
	"SELECT ARRAY[" FLIP "]",											/* A_ArrayExpr */
	"SELECT " FLIP "::text",											/* TypeCast */
	"UPDATE t SET (a, b) = (SELECT " FLIP ", 1)",						/* MultiAssignRef */
	"UPDATE t SET a[1] = " FLIP,										/* ResTarget with indirection */
	"INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET v = " FLIP,	/* OnConflictClause */
	"INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET v = 1 WHERE " FLIP " = 'x'",
	"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = " FLIP,	/* MergeStmt */
	"MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED AND " FLIP " = 'x' THEN DO NOTHING",
	"MERGE INTO t USING (SELECT " FLIP " AS id) s ON t.id = s.id WHEN MATCHED THEN DELETE",
	"SELECT count(*) OVER (ORDER BY " FLIP ") FROM t",					/* window */
	"SELECT count(*) OVER w FROM t WINDOW w AS (PARTITION BY " FLIP ")",
	"SELECT * FROM t ORDER BY " FLIP,									/* sort clause */
	"SELECT * FROM t LIMIT " FLIP "::int",								/* limit */
	"SELECT * FROM t OFFSET " FLIP "::int",
	"SELECT DISTINCT ON (" FLIP ") a FROM t",							/* distinct clause */
	"SELECT a FROM t GROUP BY a HAVING " FLIP " = 'x'",					/* having */
	"SELECT 1 UNION SELECT " FLIP,										/* larg/rarg */
	"VALUES (" FLIP ")",												/* values lists */
	"SELECT NOT (" FLIP " = 'x')",										/* BoolExpr */
	"SELECT CASE WHEN " FLIP " = 'x' THEN 1 END",						/* CaseExpr */
	"SELECT COALESCE(" FLIP ", 'x')",									/* CoalesceExpr */
	"SELECT " FLIP " IS NULL",											/* NullTest */
	"SELECT 1 = ANY (SELECT " FLIP "::int)",							/* SubLink */
	"SELECT ROW(" FLIP ")",												/* RowExpr */
	"SELECT GREATEST(" FLIP ", 'x')",									/* MinMaxExpr */
	"SELECT " FLIP " COLLATE \"C\"",									/* CollateClause */
	"SELECT * FROM t WHERE a IN (" FLIP ")",							/* A_Expr IN */
	"SELECT * FROM (SELECT " FLIP ") s",								/* RangeSubselect */
	"SELECT * FROM t JOIN u ON " FLIP " = 'x'",							/* JoinExpr */
	"SELECT * FROM unnest(ARRAY[" FLIP "])",							/* RangeFunction */
	"SELECT (" FLIP ")::text IS DISTINCT FROM 'x'",
	"CREATE TABLE p1 PARTITION OF p FOR VALUES IN (" FLIP ")",			/* PartitionBoundSpec */
	"CREATE TABLE p2 PARTITION OF p FOR VALUES FROM (" FLIP ") TO (MAXVALUE)",	/* PartitionRangeDatum */
	"CREATE TABLE c (a text DEFAULT " FLIP ")",							/* column default */
	"CREATE TABLE c2 (a text CHECK (a <> " FLIP "))",					/* constraint */
	"CREATE TABLE c3 AS SELECT " FLIP,									/* CREATE TABLE AS */
	"CREATE TABLE c4 (a text) WITH (fillfactor = 70); SELECT " FLIP,
	"ALTER TABLE t ALTER COLUMN a SET DEFAULT " FLIP,
	"WITH w AS (SELECT " FLIP ") SELECT * FROM w",						/* CTE */
	"DELETE FROM t WHERE a = " FLIP " RETURNING a",
	"DELETE FROM t RETURNING " FLIP,
	"INSERT INTO t SELECT " FLIP,
	"EXPLAIN ANALYZE SELECT " FLIP,
	"COPY (SELECT " FLIP ") TO STDOUT",
	"DO $$BEGIN END$$; SELECT " FLIP,
	"SELECT * FROM t TABLESAMPLE BERNOULLI (" FLIP "::float)",
	"SELECT xmlelement(name a, " FLIP ")",
	"SELECT json_agg(" FLIP ") FILTER (WHERE true)",
	"SELECT string_agg(a, ',' ORDER BY " FLIP ") FROM t",
	NULL
};

int
main(void)
{
	for (int i = 0; buried[i]; i++)
	{
		gate_result *r = NULL;
		bs_error err;

		error_clear(&err);
		if (gate_classify(buried[i], NULL, &r, &err) != BS_OK)
		{
			ok(0, "classified: %s", buried[i]);
			printf("#   %s\n", err.message);
			continue;
		}
		if (!ok(r->level == GATE_CRITICAL, "CRITICAL: %s", buried[i]))
			printf("#   level %s\n", gate_level_name(r->level));
		gate_result_free(r);
	}
	return done_testing();
}
