/* sqlcheck.h — SQL text from storage (types, defaults, constraints, indexes) checked as exactly one fragment of its kind. */
#ifndef BACKSTOP_SQLCHECK_H
#define BACKSTOP_SQLCHECK_H

#include <stdbool.h>

#include "error.h"
#include "manifest.h"

/*
 * Recovery splices definition text taken from a manifest into SQL.  Whoever can write the
 * bucket writes that text, so each piece is parsed with PostgreSQL's own grammar
 * (libpg_query) inside the very statement recovery sends, and accepted only when that
 * statement is exactly one statement of the expected kind touching only the expected
 * table: a type is one column type, a default one expression, a constraint one table
 * constraint, an index definition one CREATE INDEX.  Anything else (a second statement, a
 * comment swallowing what follows, an extra clause, an unparsable text) is refused with
 * ERRCODE_DATA_CORRUPTED.  Fragments longer than SQLCHECK_MAX_FRAGMENT are refused too.
 *
 * The builders return the statement recovery sends (a new string) or NULL with err set.
 * schema may be NULL (an unqualified name); names are quoted here.
 */
#define SQLCHECK_MAX_FRAGMENT (256 * 1024)

/* CREATE TABLE schema.table (col type [NOT NULL], ...) for the columns of a layout. */
char *sqlcheck_create_table(const char *schema, const char *table, const manifest_layout *l, bs_error *err);
/* ALTER TABLE schema.table ALTER COLUMN column SET DEFAULT expr. */
/* CREATE TABLE schema.table (the columns of l) PARTITION BY partkey (pg_get_partkeydef output),
 * checked: nothing but a strategy and its key columns or expressions after the columns. */
char *sqlcheck_create_partitioned_table(const char *schema, const char *table, const manifest_layout *l,
										const char *partkey, bs_error *err);
/* ALTER TABLE schema.table ATTACH PARTITION pschema.partition bound (pg_get_expr of
 * relpartbound: "FOR VALUES ..." or "DEFAULT"), checked as that one command. */
char *sqlcheck_attach_partition(const char *schema, const char *table, const char *pschema, const char *partition,
								const char *bound, bs_error *err);
char *sqlcheck_set_default(const char *schema, const char *table, const char *column, const char *expr,
						   bs_error *err);
/* ALTER TABLE schema.table ADD COLUMN column type GENERATED ALWAYS AS (expr) STORED, or
 * VIRTUAL (PostgreSQL 18; checked as STORED, which the parser knows, then the last keyword
 * swapped: the expression was checked alone and is closed before it). */
char *sqlcheck_add_generated_column(const char *schema, const char *table, const char *column,
									const char *type_name, const char *expr, bool is_virtual, bs_error *err);
/*
 * ALTER TABLE schema.table ADD CONSTRAINT name def, where def (pg_get_constraintdef output)
 * must be a constraint of contype ('p', 'u', 'c', 'x' or 'f').  A CHECK constraint is added
 * NOT VALID, so that adding it runs none of its expression; *validate_after (may be NULL)
 * is set when the definition itself was valid, i.e. the caller should VALIDATE it.
 */
char *sqlcheck_add_constraint(const char *schema, const char *table, const char *name, char contype,
							  const char *def, bool *validate_after, bs_error *err);
/* BS_OK when def is one CREATE INDEX; on relation schema.table and named name where they
 * are not NULL (a stored definition names the source table, perhaps under an old name). */
int sqlcheck_index(const char *def, const char *schema, const char *table, const char *name, bs_error *err);

/* The fragment checks, with placeholder names: exactly what recovery would send. */
int sqlcheck_type(const char *type_name, bs_error *err);
int sqlcheck_default(const char *expr, bs_error *err);
int sqlcheck_constraint(const char *def, char contype, bs_error *err);

/* One refused fragment: field is the manifest member path (e.g.
 * "bases[0].definition.constraints[1].def"), object what it defines (e.g. "constraint \"c\""). */
typedef void (*sqlcheck_problem_fn) (void *ctx, const char *field, const char *object, const char *message);

/*
 * Every SQL-carrying member of a manifest: layout column types, and in each base's
 * definition the column defaults, constraint and index definitions.  Calls fn for each
 * refused one and returns their number.
 */
int sqlcheck_manifest(const manifest *m, sqlcheck_problem_fn fn, void *ctx);
/* As sqlcheck_manifest, stopping at the first problem: BS_ERR with ERRCODE_DATA_CORRUPTED
 * naming the table, the field and the object. */
int sqlcheck_manifest_first(const manifest *m, bs_error *err);

#endif
