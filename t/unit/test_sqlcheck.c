/* test_sqlcheck.c — unit tests for the checks of SQL text from storage: good and hostile types, defaults, constraints, indexes. */
#include "sqlcheck.h"
#include "manifest.h"
#include "strbuf.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

typedef struct fragment
{
	char kind;					/* 'T' type, 'D' default, 'p'/'u'/'c'/'x'/'f' constraint, 'I' index */
	bool good;
	const char *text;
} fragment;

/* What pg_get_* and format_type produce, then what a bucket writer could put instead. */
static const fragment fragments[] = {
	{'T', true, "integer"},
	{'T', true, "text"},
	{'T', true, "character varying(40)"},
	{'T', true, "numeric(12,2)"},
	{'T', true, "numeric(12,2)[]"},
	{'T', true, "text[]"},
	{'T', true, "integer[][]"},
	{'T', true, "timestamp(3) with time zone"},
	{'T', true, "time without time zone"},
	{'T', true, "interval year to month"},
	{'T', true, "interval day to second(3)"},
	{'T', true, "bit varying(5)"},
	{'T', true, "double precision"},
	{'T', true, "\"char\""},
	{'T', true, "public.\"My Type\""},
	{'T', true, "geometry(Point,4326)"},
	{'T', false, ""},
	{'T', false, "integer); DROP TABLE public.victim; --"},
	{'T', false, "integer) ; DROP TABLE public.victim; CREATE TABLE x (c int"},
	{'T', false, "integer --"},
	{'T', false, "integer /*"},
	{'T', false, "integer, d integer"},
	{'T', false, "integer) INHERITS (public.victim"},
	{'T', false, "integer) PARTITION BY RANGE (c"},
	{'T', false, "integer) WITH (fillfactor=10"},
	{'T', false, "integer) TABLESPACE pg_global --"},
	{'T', false, "integer REFERENCES public.victim"},
	{'T', false, "integer DEFAULT 1"},
	{'T', false, "integer CHECK (c > 0)"},
	{'T', false, "integer GENERATED ALWAYS AS IDENTITY"},
	{'T', false, "text COLLATE \"C\""},
	{'T', false, "integer;"},
	{'T', false, "varchar((SELECT 1))"},
	{'T', false, "varchar(1+1)"},
	{'T', false, "SETOF integer"},
	{'T', false, "public.victim.id%TYPE"},
	{'T', false, "integer)\n;DROP TABLE public.victim;\nCREATE TABLE y (c int"},
	{'D', true, "0"},
	{'D', true, "'x'::text"},
	{'D', true, "nextval('acct_id_seq'::regclass)"},
	{'D', true, "now()"},
	{'D', true, "'a;b'::text"},
	{'D', true, "$$x$$"},
	{'D', true, "E'\\';'::text"},
	{'D', true, "'-- not a comment'::text"},
	{'D', true, "U&'d\\0061t'"},
	{'D', true, "(0)::numeric -- trailing comment"},
	{'D', true, "/* note */ 1"},
	{'D', false, ""},
	{'D', false, "0; DROP TABLE public.victim; --"},
	{'D', false, "0; DROP TABLE public.victim"},
	{'D', false, "0;"},
	{'D', false, "0 ; "},
	{'D', false, "$$x$$; DROP TABLE public.victim"},
	{'D', false, "E'\\''; DROP TABLE public.victim; --'"},
	{'D', false, "'x'::text, ALTER COLUMN c DROP NOT NULL"},
	{'D', false, "0, ADD COLUMN z integer"},
	{'D', false, "0\n;\nDROP TABLE public.victim"},
	{'D', false, "0 /* ; DROP TABLE public.victim"},
	{'D', false, "U&'x' UESCAPE '!'; DROP TABLE public.victim; --"},
	{'p', true, "PRIMARY KEY (id)"},
	{'p', true, "PRIMARY KEY (id) INCLUDE (v) WITH (fillfactor='90') USING INDEX TABLESPACE pg_default"},
	{'u', true, "UNIQUE (a, b)"},
	{'u', true, "UNIQUE NULLS NOT DISTINCT (a)"},
	{'u', true, "UNIQUE (a) DEFERRABLE INITIALLY DEFERRED"},
	{'c', true, "CHECK ((balance >= (0)::numeric))"},
	{'c', true, "CHECK ((balance >= (0)::numeric)) NOT VALID"},
	{'c', true, "CHECK ((length(note) < 100)) NO INHERIT"},
	{'x', true, "EXCLUDE USING gist (c WITH &&)"},
	{'f', true, "FOREIGN KEY (a) REFERENCES other(id) ON DELETE CASCADE"},
	{'p', false, "PRIMARY KEY (id); DROP TABLE public.victim; --"},
	{'p', false, "PRIMARY KEY (id);DROP TABLE public.victim"},
	{'p', false, "PRIMARY KEY (id), DROP COLUMN v"},
	{'p', false, "PRIMARY KEY (id), ADD CONSTRAINT z CHECK (false)"},
	{'p', false, "PRIMARY KEY USING INDEX victim_pkey"},
	{'p', false, "UNIQUE (id)"},
	{'p', false, "CHECK (true)"},
	{'p', false, "CONSTRAINT other PRIMARY KEY (id)"},
	{'c', false, "CHECK ((balance >= 0)) --"},
	{'c', false, "CHECK ((balance >= 0)) -- swallows NOT VALID"},
	{'c', false, "CHECK (true); DELETE FROM public.victim"},
	{'c', false, "CHECK (true) /*"},
	{'u', false, "PRIMARY KEY (id)"},
	{'z', false, "PRIMARY KEY (id)"},
	{'x', false, "EXCLUDE USING gist (c WITH &&); DROP TABLE public.victim"},
	{'I', true, "CREATE INDEX acct_owner_idx ON public.acct USING btree (owner)"},
	{'I', true, "CREATE UNIQUE INDEX \"odd; name\" ON public.\"a;cct\" USING btree (lower(owner) text_pattern_ops DESC NULLS LAST) INCLUDE (x) WITH (fillfactor='50') WHERE (id > 0)"},
	{'I', true, "CREATE INDEX i ON ONLY public.p USING btree (a)"},
	{'I', true, "CREATE INDEX i ON public.acct USING gin (tags)"},
	{'I', false, "CREATE INDEX i ON public.acct USING btree (owner); DROP TABLE public.victim"},
	{'I', false, "CREATE INDEX i ON public.acct USING btree (owner);"},
	{'I', false, "DROP TABLE public.victim"},
	{'I', false, "CREATE INDEX CONCURRENTLY i ON public.acct USING btree (owner)"},
	{'I', false, "CREATE INDEX i ON public.acct USING btree (owner) TABLESPACE pg_global"},
	{'I', false, "CREATE INDEX IF NOT EXISTS i ON public.acct USING btree (owner)"},
	{'I', false, "CREATE INDEX ON public.acct USING btree (owner)"},
	{'I', false, "CREATE TEMP TABLE i (a int)"},
	{'I', false, "CREATE INDEX i ON public.acct USING btree (owner) WHERE (id > 0); COMMIT"},
	{'I', false, "SELECT 1; CREATE INDEX i ON public.acct USING btree (owner)"},
};

/* The text on one line, for a TAP test name. */
static const char *
oneline(const char *text, char *buf, size_t size)
{
	size_t n = 0;

	for (const char *p = text; *p && n + 3 < size; p++)
	{
		if (*p == '\n')
		{
			buf[n++] = '\\';
			buf[n++] = 'n';
		}
		else
			buf[n++] = *p;
	}
	buf[n] = '\0';
	return buf;
}

static int
check_fragment(const fragment *f, bs_error *err)
{
	switch (f->kind)
	{
		case 'T':
			return sqlcheck_type(f->text, err);
		case 'D':
			return sqlcheck_default(f->text, err);
		case 'I':
			return sqlcheck_index(f->text, NULL, NULL, NULL, err);
		default:
			return sqlcheck_constraint(f->text, f->kind, err);
	}
}

static void
test_fragments(void)
{
	for (size_t i = 0; i < sizeof(fragments) / sizeof(fragments[0]); i++)
	{
		const fragment *f = &fragments[i];
		bs_error err;
		char name[400];
		int rc;

		error_clear(&err);
		oneline(f->text, name, sizeof(name));
		rc = check_fragment(f, &err);
		if (f->good)
		{
			if (!ok(rc == BS_OK, "%c accepted: %s", f->kind, name))
				printf("#   error: %s\n", err.message);
		}
		else
		{
			ok(rc == BS_ERR && strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 && err.message[0],
			   "%c refused: %s (%s)", f->kind, name, err.message);
		}
	}
}

static void
test_builders(void)
{
	manifest_column cols[3] = {
		{"id", 23, -1, "integer", true, true, NULL},
		{"we\"ird; name", 25, -1, "text", false, false, NULL},
		{"amount", 1700, 0, "numeric(12,2)[]", false, true, NULL},
	};
	manifest_layout l = {0, 0, 'd', 3, cols};
	bs_error err;
	char *sql;
	bool validate = false;

	error_clear(&err);
	sql = sqlcheck_create_table("my schema", "acct_recovered", &l, &err);
	is_str(sql, "CREATE TABLE \"my schema\".\"acct_recovered\" (\"id\" integer NOT NULL, \"we\"\"ird; name\" text, "
		   "\"amount\" numeric(12,2)[] NOT NULL)", "CREATE TABLE built and checked");
	free(sql);
	cols[1].type_name = "text); DROP TABLE public.victim; --";
	sql = sqlcheck_create_table("public", "acct_recovered", &l, &err);
	ok(sql == NULL && strstr(err.message, "we\"ird; name") != NULL, "a hostile type is refused naming the column (%s)",
	   err.message);
	cols[1].type_name = "text";

	sql = sqlcheck_set_default("public", "acct_recovered", "id", "nextval('acct_id_seq'::regclass)", &err);
	is_str(sql, "ALTER TABLE \"public\".\"acct_recovered\" ALTER COLUMN \"id\" SET DEFAULT nextval('acct_id_seq'::regclass)",
		   "SET DEFAULT built and checked");
	free(sql);

	/* Stored generated columns: one column, one expression, one type. */
	sql = sqlcheck_add_generated_column("public", "u_rec", "total", "numeric", "((qty)::numeric * price)", false, &err);
	is_str(sql, "ALTER TABLE \"public\".\"u_rec\" ADD COLUMN \"total\" numeric GENERATED ALWAYS AS "
		   "(((qty)::numeric * price)) STORED", "ADD COLUMN ... GENERATED built and checked");
	free(sql);
	{
		static const char *const bad_exprs[] = {
			"1) STORED, ADD COLUMN x int GENERATED ALWAYS AS (1",
			"1); DROP TABLE users; --",
			"(SELECT 1)) STORED; SELECT (1",
			"",
			NULL
		};

		for (int k = 0; bad_exprs[k]; k++)
		{
			sql = sqlcheck_add_generated_column("public", "u_rec", "total", "numeric", bad_exprs[k], false, &err);
			ok(sql == NULL && strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0,
			   "generated expression refused: %s", bad_exprs[k]);
			free(sql);
		}
		sql = sqlcheck_add_generated_column("public", "u_rec", "total", "int GENERATED ALWAYS AS (1) STORED, ADD COLUMN y int",
											"1", false, &err);
		ok(sql == NULL, "a type carrying a second column is refused");
		free(sql);
		/* Virtual (PostgreSQL 18): checked as the stored statement, the keyword swapped after. */
		sql = sqlcheck_add_generated_column("public", "u_rec", "total", "numeric", "((qty)::numeric * price)", true, &err);
		is_str(sql, "ALTER TABLE \"public\".\"u_rec\" ADD COLUMN \"total\" numeric GENERATED ALWAYS AS "
			   "(((qty)::numeric * price)) VIRTUAL", "ADD COLUMN ... GENERATED ... VIRTUAL built and checked");
		free(sql);
		for (int k = 0; bad_exprs[k]; k++)
		{
			sql = sqlcheck_add_generated_column("public", "u_rec", "total", "numeric", bad_exprs[k], true, &err);
			ok(sql == NULL && strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0,
			   "virtual generated expression refused: %s", bad_exprs[k]);
			free(sql);
		}
	}

	sql = sqlcheck_add_constraint("public", "acct_recovered", "acct_recovered_pkey", 'p', "PRIMARY KEY (id)", &validate,
								  &err);
	is_str(sql, "ALTER TABLE \"public\".\"acct_recovered\" ADD CONSTRAINT \"acct_recovered_pkey\" PRIMARY KEY (id)",
		   "ADD CONSTRAINT built and checked");
	ok(!validate, "a primary key needs no VALIDATE");
	free(sql);
	sql = sqlcheck_add_constraint("public", "t", "t_check", 'c', "CHECK ((a > 0))", &validate, &err);
	is_str(sql, "ALTER TABLE \"public\".\"t\" ADD CONSTRAINT \"t_check\" CHECK ((a > 0)) NOT VALID",
		   "a CHECK is added NOT VALID");
	ok(validate, "and is to be validated afterwards");
	free(sql);
	sql = sqlcheck_add_constraint("public", "t", "t_check", 'c', "CHECK ((a > 0)) NOT VALID", &validate, &err);
	ok(sql != NULL && !validate, "a CHECK that was NOT VALID stays so");
	free(sql);

	ok(sqlcheck_index("CREATE INDEX \"t_i\" ON \"public\".\"t\" USING btree (a)", "public", "t", "t_i", &err) == BS_OK,
	   "an index on the expected table");
	ok(sqlcheck_index("CREATE INDEX \"t_i\" ON \"public\".\"victim\" USING btree (a)", "public", "t", "t_i", &err) ==
	   BS_ERR, "an index on another table is refused (%s)", err.message);
	ok(sqlcheck_index("CREATE INDEX \"t_i\" ON \"t\" USING btree (a)", "public", "t", "t_i", &err) == BS_ERR,
	   "an index on an unqualified name is refused where a schema is expected");
	ok(sqlcheck_index("CREATE INDEX \"x\" ON \"public\".\"t\" USING btree (a)", "public", "t", "t_i", &err) == BS_ERR,
	   "an index under another name is refused");
}

static void
test_limits(void)
{
	strbuf sb = STRBUF_INIT;
	bs_error err;

	/* As deep as it is long: the parser runs on its own stack, so this is refused, not a crash. */
	strbuf_append_str(&sb, "1");
	while (sb.len < SQLCHECK_MAX_FRAGMENT - 2)
		strbuf_append_str(&sb, "+1");
	error_clear(&err);
	ok(sqlcheck_default(sb.data, &err) == BS_ERR && strstr(err.message, "nested") != NULL,
	   "a default nested %zu levels deep is refused (%s)", sb.len / 2, err.message);
	strbuf_reset(&sb);
	strbuf_append_str(&sb, "'");
	while (sb.len < SQLCHECK_MAX_FRAGMENT + 10)
		strbuf_append_str(&sb, "xxxxxxxx");
	strbuf_append_str(&sb, "'");
	ok(sqlcheck_default(sb.data, &err) == BS_ERR && strstr(err.message, "longer than") != NULL,
	   "a default longer than the limit is refused (%s)", err.message);
	strbuf_free(&sb);
	ok(sqlcheck_default("'\x01\x02'; DROP TABLE x", &err) == BS_ERR && strchr(err.message, '\x01') == NULL,
	   "control characters do not reach the message");
}

typedef struct seen
{
	int n;
	strbuf all;
} seen;

static void
collect(void *ctx, const char *field, const char *object, const char *message)
{
	seen *s = ctx;

	s->n++;
	strbuf_printf(&s->all, "%s|%s|%s\n", field, object, message);
}

static void
test_manifest_walk(void)
{
	manifest *m = manifest_new(16384, "public", "acct");
	manifest_column cols[2] = {
		{"id", 23, -1, "integer", true, true, NULL},
		{"v", 25, -1, "text) ; DROP TABLE public.victim; --", false, false, NULL},
	};
	manifest_base base;
	seen s = {0, STRBUF_INIT};
	bs_error err;

	manifest_add_layout(m, 0x1500000, 'd', 2, cols);
	memset(&base, 0, sizeof(base));
	base.lsn = 0x1500000;
	base.definition =
		"{\"columns\":[{\"name\":\"id\",\"type\":\"integer\",\"not_null\":true,\"default\":\"0; DROP TABLE public.victim\"},"
		"{\"name\":\"v\",\"type\":\"text\",\"not_null\":false,\"default\":null}],"
		"\"indexes\":[{\"name\":\"acct_v\",\"def\":\"CREATE INDEX acct_v ON public.acct USING btree (v); DROP TABLE public.victim\"},"
		"{\"name\":\"acct_ok\",\"def\":\"CREATE INDEX acct_ok ON public.acct USING btree (v)\"}],"
		"\"constraints\":[{\"name\":\"acct_pkey\",\"type\":\"p\",\"def\":\"PRIMARY KEY (id); DROP TABLE public.victim; --\"},"
		"{\"name\":\"acct_trg\",\"type\":\"t\",\"def\":\"TRIGGER\"},"
		"{\"name\":\"acct_c\",\"type\":\"c\",\"def\":\"CHECK ((id > 0))\"}]}";
	manifest_add_base(m, &base);
	is_int(sqlcheck_manifest(m, collect, &s), 4, "four hostile fragments in the manifest");
	ok(strstr(s.all.data, "layouts[0].columns[1].type|column \"v\"|") != NULL, "the layout type is named");
	ok(strstr(s.all.data, "bases[0].definition.columns[0].default|column \"id\"|") != NULL, "the default is named");
	ok(strstr(s.all.data, "bases[0].definition.indexes[0].def|index \"acct_v\"|") != NULL, "the index is named");
	ok(strstr(s.all.data, "bases[0].definition.constraints[0].def|constraint \"acct_pkey\"|") != NULL,
	   "the constraint is named");
	ok(strstr(s.all.data, "acct_ok") == NULL && strstr(s.all.data, "acct_c") == NULL && strstr(s.all.data, "acct_trg") == NULL,
	   "good fragments and trigger constraints are not reported");
	if (s.n != 4)
		printf("# %s", s.all.data);
	error_clear(&err);
	ok(sqlcheck_manifest_first(m, &err) == BS_ERR && strstr(err.message, "public.acct") != NULL &&
	   strstr(err.message, "layouts[0].columns[1].type") != NULL && strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0,
	   "the first problem as an error (%s)", err.message);
	strbuf_free(&s.all);
	manifest_free(m);

	m = manifest_new(16384, "public", "acct");
	cols[1].type_name = "text";
	manifest_add_layout(m, 0x1500000, 'd', 2, cols);
	base.definition = "{\"columns\":[],\"indexes\":[],\"constraints\":[{\"name\":\"k\",\"type\":\"c\",\"def\":\"CHECK ((id > 0))\"}]}";
	manifest_add_base(m, &base);
	ok(sqlcheck_manifest_first(m, &err) == BS_OK, "a benign manifest passes");
	manifest_free(m);
}

/* A partitioned table's key and a partition's bound: exactly one clause each. */
static void
test_partitions(void)
{
	manifest_column cols[2];
	manifest_layout l;
	bs_error err;
	char *sql;
	static const char *const bad_keys[] = {
		"RANGE (id); DROP TABLE public.victim",
		"RANGE (id) TABLESPACE pg_global",
		"RANGE (id) WITH (fillfactor=10)",
		"RANGE (id)) INHERITS (public.victim",
		"",
		NULL
	};
	static const char *const bad_bounds[] = {
		"FOR VALUES FROM (0) TO (100); DROP TABLE public.victim",
		"FOR VALUES FROM (0) TO (100), DETACH PARTITION public.victim",
		"",
		NULL
	};

	memset(cols, 0, sizeof(cols));
	memset(&l, 0, sizeof(l));
	cols[0].name = "id";
	cols[0].type_name = "integer";
	cols[0].not_null = true;
	cols[1].name = "v";
	cols[1].type_name = "text";
	l.ncols = 2;
	l.columns = cols;
	error_clear(&err);
	sql = sqlcheck_create_partitioned_table("public", "meas_recovered", &l, "RANGE (id)", &err);
	is_str(sql, "CREATE TABLE \"public\".\"meas_recovered\" (\"id\" integer NOT NULL, \"v\" text) PARTITION BY RANGE (id)",
		   "partitioned CREATE TABLE built and checked");
	free(sql);
	sql = sqlcheck_create_partitioned_table("public", "m", &l, "LIST (lower(v) COLLATE \"C\")", &err);
	ok(sql != NULL, "a key expression with a collation passes");
	free(sql);
	sql = sqlcheck_create_partitioned_table("public", "m", &l, "HASH (id int4_ops)", &err);
	ok(sql != NULL, "a key with an operator class passes");
	free(sql);
	for (int i = 0; bad_keys[i]; i++)
	{
		sql = sqlcheck_create_partitioned_table("public", "m", &l, bad_keys[i], &err);
		ok(sql == NULL && strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0, "partition key refused: %s (%s)", bad_keys[i],
		   sql ? sql : err.message);
		free(sql);
	}
	sql = sqlcheck_attach_partition("public", "meas_recovered", "public", "meas_recovered_a",
									"FOR VALUES FROM (0) TO (100)", &err);
	is_str(sql, "ALTER TABLE \"public\".\"meas_recovered\" ATTACH PARTITION \"public\".\"meas_recovered_a\" "
		   "FOR VALUES FROM (0) TO (100)", "ATTACH PARTITION built and checked");
	free(sql);
	sql = sqlcheck_attach_partition("public", "m", "public", "m_d", "DEFAULT", &err);
	ok(sql != NULL, "a default partition passes");
	free(sql);
	sql = sqlcheck_attach_partition("public", "m", "public", "m_h", "FOR VALUES WITH (modulus 4, remainder 1)", &err);
	ok(sql != NULL, "a hash bound passes");
	free(sql);
	sql = sqlcheck_attach_partition("public", "m", "public", "m_l", "FOR VALUES IN ('a', NULL)", &err);
	ok(sql != NULL, "a list bound passes");
	free(sql);
	for (int i = 0; bad_bounds[i]; i++)
	{
		sql = sqlcheck_attach_partition("public", "m", "public", "m_a", bad_bounds[i], &err);
		ok(sql == NULL && strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0, "partition bound refused: %s (%s)", bad_bounds[i],
		   sql ? sql : err.message);
		free(sql);
	}
}

/* Each refusal of the builders says why: the message names what was refused. */
static void
test_refusal_messages(void)
{
	manifest_column cols[2] = {
		{"id", 23, -1, "integer", true, true, NULL},
		{"v", 25, -1, "text", false, false, NULL},
	};
	manifest_layout l = {0, 0, 'd', 2, cols};
	bs_error err;
	char *sql;
	bool validate = false;
	static const struct
	{
		const char *type;
		const char *want;
	} bad_types[] = {
		{"text, CHECK (true)", "2 columns where 1 are defined"},
		{"text, \"w\" int", "2 columns where 1 are defined"},
		{"varchar(1 + 1)", "syntax error at or near \"+\""},
		{"varchar(a)", "syntax error at or near \"a\""},
		{"int[1 + 1]", "syntax error at or near \"+\""},
		{"int[a]", "syntax error at or near \"a\""},
		{"text) ON COMMIT DROP; --", "a ';' cuts the statement short"},
		{"int\x01", "syntax error at or near \"?\""},
		{NULL, NULL}
	};

	for (int i = 0; bad_types[i].type; i++)
	{
		cols[1].type_name = (char *) bad_types[i].type;
		error_clear(&err);
		sql = sqlcheck_create_table("public", "t", &l, &err);
		ok(sql == NULL && strstr(err.message, bad_types[i].want) != NULL, "type refused: %s (%s)", bad_types[i].type,
		   err.message);
		free(sql);
	}
	cols[1].type_name = NULL;
	sql = sqlcheck_create_table("public", "t", &l, &err);
	ok(sql == NULL && strstr(err.message, "the type of column \"v\" is not exactly one column type: missing") != NULL,
	   "a missing type is refused (%s)", err.message);
	free(sql);

	sql = sqlcheck_set_default("public", "t", "v", NULL, &err);
	ok(sql == NULL && strcmp(err.message, "the default is missing") == 0, "a missing default is refused (%s)",
	   err.message);
	sql = sqlcheck_set_default("public", "t", "v", "1, ALTER COLUMN v DROP DEFAULT", &err);
	ok(sql == NULL && strstr(err.message, "2 ALTER TABLE commands instead of one") != NULL,
	   "a default carrying a second command is refused (%s)", err.message);
	sql = sqlcheck_add_generated_column("public", "t", "g", "int", "1) STORED NOT NULL, ADD CHECK (true", false, &err);
	ok(sql == NULL && strstr(err.message, "the default is not exactly one expression") != NULL,
	   "a generation expression that closes its parenthesis is refused (%s)", err.message);
	sql = sqlcheck_add_generated_column("public", "t", "g", "int COLLATE \"C\"", "1", false, &err);
	ok(sql == NULL && strstr(err.message, "unexpected \"collClause\" in the column") != NULL,
	   "a generated column's type with a collation is refused (%s)", err.message);
	sql = sqlcheck_add_constraint("public", "t", "t_c", 'c', "CHECK (true), ADD CONSTRAINT x CHECK (true)", &validate,
								  &err);
	ok(sql == NULL && strstr(err.message, "the definition is not exactly one constraint: 2 ALTER TABLE commands") != NULL,
	   "a constraint carrying a second one is refused (%s)", err.message);
	sql = sqlcheck_add_constraint("public", "t", "t_c", 'c', "", &validate, &err);
	ok(sql == NULL && strstr(err.message, "the definition is not exactly one constraint: syntax error") != NULL,
	   "an empty constraint definition is refused (%s)", err.message);
	ok(sqlcheck_index("CREATE INDEX \"t_i\" ON \"public\".\"t\" USING btree ()", "public", "t", "t_i", &err) == BS_ERR &&
	   strstr(err.message, "not exactly one CREATE INDEX: syntax error") != NULL,
	   "an index without columns is refused (%s)", err.message);
	ok(sqlcheck_index("CREATE INDEX ON \"public\".\"t\" USING btree (a)", "public", "t", NULL, &err) == BS_ERR &&
	   strstr(err.message, "the index is not named as expected") != NULL, "an index without a name is refused (%s)",
	   err.message);
	ok(sqlcheck_index("CREATE INDEX \"t_i\" ON \"public\".\"t\" USING btree (a)", "public", "t", NULL, &err) == BS_OK,
	   "an index of any name passes when no name is expected");
	{
		/* a message quoting a long multibyte token is cut between characters, not inside one
		 * (one ASCII byte more or less puts the cut on the other byte of a character) */
		strbuf sb = STRBUF_INIT;

		for (int shift = 0; shift < 2; shift++)
		{
			size_t n, i;

			strbuf_reset(&sb);
			strbuf_append_str(&sb, shift ? "int x" : "int ");
			for (int k = 0; k < 200; k++)
				strbuf_append_str(&sb, "\xc3\xa9");
			ok(sqlcheck_type(sb.data, &err) == BS_ERR && strstr(err.message, "syntax error at or near") != NULL,
			   "a type followed by a long name is refused (%.60s...)", err.message);
			n = strlen(err.message);
			i = n;
			while (i > 0 && ((unsigned char) err.message[i - 1] & 0xC0) == 0x80)
				i--;
			ok(n > 0 && (i == n || (i > 0 && (unsigned char) err.message[i - 1] >= 0xC0 && n - (i - 1) == 2)),
			   "the message ends on a whole character (shifted by %d)", shift);
		}
		strbuf_free(&sb);
	}
}

int
main(void)
{
	test_fragments();
	test_builders();
	test_limits();
	test_manifest_walk();
	test_partitions();
	test_refusal_messages();
	return done_testing();
}
