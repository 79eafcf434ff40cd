/* test_gate.c — unit tests of the SQL gate: a table of statements with their expected level and targets. */
#include "cache.h"
#include "gate.h"
#include "strbuf.h"
#include "tap.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define F_REFUSE 1				/* refused whatever the policy */
#define F_INTXN 2				/* classified inside a transaction the gate opened */
#define F_UNKNOWN 4				/* some effect on relations the gate cannot name */

typedef struct tcase
{
	const char *sql;
	gate_level level;
	const char *targets;		/* display names of every statement's targets, comma-separated */
	int flags;
} tcase;

#define S GATE_SAFE
#define L GATE_LOW
#define M GATE_MEDIUM
#define H GATE_HIGH
#define C GATE_CRITICAL

static const tcase cases[] = {
	/* 1. statement stacking, transaction control */
	{"SELECT 1; DROP TABLE users", H, "users", 0},
	{"SELECT 1; SELECT 2;", S, "", 0},
	{"select 1;;; select 2", S, "", 0},
	{"BEGIN; DELETE FROM t WHERE id = 1; COMMIT", L, "t", 0},
	{"COMMIT", C, "", F_INTXN},
	{"ROLLBACK", C, "", F_INTXN},
	{"END", C, "", F_INTXN},
	{"ABORT", C, "", F_INTXN},
	{"SELECT 1; COMMIT; DROP TABLE t", C, "t", F_INTXN},
	{"BEGIN; SELECT 1; COMMIT", C, "", F_INTXN},	/* BEGIN inside a transaction is a no-op */
	{"commit", S, "", 0},
	{"PREPARE TRANSACTION 'x'", C, "", 0},
	{"COMMIT PREPARED 'x'", C, "", 0},
	{"SAVEPOINT s1; ROLLBACK TO SAVEPOINT s1; RELEASE s1", S, "", 0},

	/* 2. read-only flips */
	{"SET transaction_read_only = off", C, "", 0},
	{"SET default_transaction_read_only TO false", C, "", 0},
	{"set Default_Transaction_Read_Only = 'OFF'", C, "", 0},
	{"SET \"default_transaction_read_only\" = 0", C, "", 0},
	{"SET LOCAL transaction_read_only = no", C, "", 0},
	{"SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", C, "", 0},
	{"SET TRANSACTION READ WRITE", C, "", 0},
	{"BEGIN READ WRITE", C, "", 0},
	{"START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE", C, "", 0},
	{"RESET default_transaction_read_only", C, "", 0},
	{"SET default_transaction_read_only TO DEFAULT", C, "", 0},
	{"SELECT set_config('transaction_read_only', 'off', false)", C, "", 0},
	{"SELECT pg_catalog.set_config('default_transaction_read_only', 'false', true)", C, "", 0},
	{"SELECT set_config(name, 'off', false) FROM settings", C, "", 0},
	{"UPDATE pg_settings SET setting = 'off' WHERE name = 'transaction_read_only'", C, "pg_settings", 0},
	{"BEGIN READ ONLY", S, "", 0},
	{"SET transaction_read_only = on", S, "", 0},
	{"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE", S, "", 0},

	/* 3. writes hidden in reads */
	{"WITH d AS (DELETE FROM x RETURNING *) SELECT * FROM d", H, "x", 0},
	{"WITH a AS (WITH b AS (UPDATE y SET v = 1 RETURNING *) SELECT * FROM b) SELECT * FROM a", H, "y", 0},
	{"SELECT 1 UNION ALL (WITH d AS (DELETE FROM z RETURNING 1) SELECT * FROM d)", H, "z", 0},
	{"SELECT * FROM t WHERE id IN (WITH d AS (DELETE FROM q RETURNING id) SELECT id FROM d)", H, "q", 0},
	{"WITH i AS (INSERT INTO log VALUES (1) RETURNING *) SELECT * FROM i", L, "log", 0},
	{"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5), d AS (DELETE FROM w WHERE id IN (SELECT n FROM r) RETURNING 1) SELECT * FROM d", L, "w", 0},
	{"SELECT * INTO newt FROM t", M, "newt", 0},
	{"SELECT * FROM t FOR UPDATE", L, "", 0},
	{"SELECT * FROM t FOR NO KEY UPDATE SKIP LOCKED", L, "", 0},
	{"EXPLAIN ANALYZE DELETE FROM t", H, "t", 0},
	{"EXPLAIN ANALYSE DELETE FROM t", H, "t", 0},
	{"EXPLAIN (ANALYZE) DELETE FROM t", H, "t", 0},
	{"EXPLAIN (ANALYZE true) DELETE FROM t", H, "t", 0},
	{"EXPLAIN (ANALYZE on, BUFFERS) DELETE FROM t", H, "t", 0},
	{"EXPLAIN (analyse 1) DELETE FROM t", H, "t", 0},
	{"EXPLAIN (FORMAT JSON, ANALYZE) UPDATE t SET a = 1", H, "t", 0},
	{"EXPLAIN (ANALYZE false) DELETE FROM t", S, "", 0},
	{"EXPLAIN (ANALYZE off, VERBOSE) DELETE FROM t", S, "", 0},
	{"EXPLAIN (ANALYZE 0) DELETE FROM t", S, "", 0},
	{"EXPLAIN DELETE FROM t", S, "", 0},
	{"EXPLAIN ANALYZE CREATE TABLE x AS SELECT 1", M, "x", 0},
	{"COPY (DELETE FROM t RETURNING *) TO STDOUT", H, "t", 0},
	{"DECLARE c CURSOR FOR SELECT * FROM t FOR UPDATE", L, "", 0},
	{"DECLARE c CURSOR FOR WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", H, "t", 0},

	/* 4. side effects in expressions */
	{"SELECT pg_terminate_backend(123)", C, "", 0},
	{"SELECT * FROM t WHERE pg_cancel_backend(pid)", C, "", 0},
	{"SELECT * FROM pg_reload_conf()", C, "", 0},
	{"SELECT * FROM ROWS FROM (generate_series(1, 2), pg_switch_wal())", C, "", 0},
	{"SELECT \"pg_terminate_backend\"(1)", C, "", 0},
	{"SELECT PG_TERMINATE_BACKEND(1)", C, "", 0},
	{"SELECT pg_catalog.pg_terminate_backend(1)", C, "", 0},
	{"SELECT U&\"pg_termin\\0061te_backend\"(1)", C, "", 0},
	{"SELECT /* harmless */ pg_drop_replication_slot('backstop')", C, "", 0},
	{"SELECT pg_read_file('/etc/passwd')", C, "", 0},
	{"SELECT pg_ls_dir('.')", C, "", 0},
	{"SELECT lo_unlink(1234)", C, "", 0},
	{"SELECT lo_export(1, '/tmp/x')", C, "", 0},
	{"SELECT dblink_exec('dbname=x', 'DROP TABLE t')", C, "", 0},
	{"SELECT * FROM dblink('host=localhost', 'select 1') AS t(a int)", C, "", 0},
	{"SELECT pg_logical_slot_get_changes('s', NULL, NULL)", C, "", 0},
	{"SELECT pg_replication_origin_session_setup('x')", C, "", 0},
	{"SELECT CASE WHEN true THEN pg_rotate_logfile() END", C, "", 0},
	{"SELECT count(*) FROM t GROUP BY pg_reload_conf()", C, "", 0},
	{"SELECT coalesce(null, pg_promote())", C, "", 0},
	{"SELECT ARRAY[pg_switch_wal()]", C, "", 0},
	{"SELECT (SELECT pg_terminate_backend(1))", C, "", 0},
	{"SELECT 1 WHERE EXISTS (SELECT pg_terminate_backend(1))", C, "", 0},
	{"SELECT sum(x) OVER (PARTITION BY pg_reload_conf()) FROM t", C, "", 0},
	{"SELECT nextval('s')", L, "", 0},
	{"SELECT setval('s', 1)", M, "", 0},
	{"SELECT query_to_xml('DELETE FROM t RETURNING 1', true, false, '')", H, "t", 0},
	{"SELECT query_to_xml(q, true, false, '') FROM qs", H, "", F_UNKNOWN},
	{"INSERT INTO t VALUES (pg_terminate_backend(1))", C, "t", 0},
	{"UPDATE t SET a = pg_read_file('x') WHERE id = 1", C, "t", 0},
	{"SELECT heap_force_kill('t'::regclass, ARRAY['(0,1)'::tid])", C, "", 0},

	/* 5. code the parser cannot see into */
	{"DO $$BEGIN DELETE FROM t WHERE id = 1; END$$", L, "t", 0},
	{"DO $$BEGIN EXECUTE 'DROP TABLE x'; END$$", H, "x", 0},
	{"DO $$BEGIN EXECUTE format('DROP TABLE %I', 'x'); END$$", H, "", F_UNKNOWN},
	{"DO $$DECLARE r record; BEGIN FOR r IN SELECT id FROM t LOOP DELETE FROM u WHERE id = r.id; END LOOP; END$$", L, "u", 0},
	{"DO LANGUAGE plpgsql $$BEGIN PERFORM pg_reload_conf(); END$$", C, "", 0},
	{"DO $$BEGIN IF pg_terminate_backend(1) THEN NULL; END IF; END$$", C, "", 0},
	{"DO $$DECLARE x int; BEGIN x := pg_cancel_backend(1); END$$", C, "", 0},
	{"DO $$DECLARE x int := pg_cancel_backend(1); BEGIN NULL; END$$", C, "", 0},
	{"DO $$BEGIN RAISE NOTICE '%', lo_unlink(1); END$$", C, "", 0},
	{"DO $$BEGIN COMMIT; END$$", H, "", 0},
	{"DO $$BEGIN TRUNCATE a, b; END$$", H, "a,b", 0},
	{"DO $$BEGIN EXECUTE 'DO $x$BEGIN DELETE FROM t; END$x$'; END$$", H, "t", 0},
	{"do $body$ begin update t set a = 1 where true; end $body$", H, "t", 0},
	{"DO LANGUAGE plperlu $$ system('rm -rf /') $$", C, "", 0},
	{"DO LANGUAGE plpython3u $$ import os $$", C, "", 0},
	{"DO LANGUAGE plv8 $$ plv8.execute('drop table t') $$", H, "", F_UNKNOWN},
	{"DO $$ this is not plpgsql $$", C, "", F_REFUSE},
	{"CALL my_proc(1)", H, "", F_UNKNOWN},
	{"CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$BEGIN DELETE FROM t; END$$", M, "", 0},
	{"CREATE OR REPLACE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$BEGIN DELETE FROM t; END$$", H, "t", 0},
	{"CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'DELETE FROM t RETURNING 1'", H, "t", 0},
	{"CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC DELETE FROM t; SELECT 1; END", H, "t", 0},
	{"CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS $$SELECT 1$$", M, "", 0},
	{"CREATE FUNCTION f() RETURNS int LANGUAGE c AS 'lib', 'sym'", C, "", 0},
	{"CREATE FUNCTION f() RETURNS int LANGUAGE internal AS 'pg_terminate_backend'", C, "", 0},
	{"CREATE FUNCTION f() RETURNS void SECURITY DEFINER LANGUAGE sql AS 'SELECT 1'", M, "", 0},
	/* no body: PostgreSQL rejects these; libpg_query's PL/pgSQL parser would abort on them */
	{"CREATE FUNCTION f() RETURNS void SECURITY DEFINER", C, "", F_REFUSE},
	{"CREATE OR REPLACE FUNCTION f() RETURNS void LANGUAGE plpgsql", C, "", F_REFUSE},
	{"CREATE PROCEDURE p() LANGUAGE plpgsql BEGIN ATOMIC SELECT 1; END", C, "", F_REFUSE},
	{"CREATE FUNCTION f() RETURNS void SECURITY DEFINER; SELECT f()", C, "", F_REFUSE},
	{"CREATE TRIGGER trg AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", H, "t", F_UNKNOWN},
	{"CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN DELETE FROM audit; RETURN NEW; END$$;"
	 "CREATE TRIGGER trg AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", H, "t,audit", 0},
	{"CREATE RULE r AS ON INSERT TO t DO INSTEAD DELETE FROM u", H, "t,u", 0},
	{"CREATE RULE r AS ON UPDATE TO t DO ALSO INSERT INTO log VALUES (1)", M, "t,log", 0},
	{"CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f()", C, "", 0},
	{"ALTER EVENT TRIGGER e DISABLE", C, "", 0},
	{"CREATE VIEW v AS SELECT pg_terminate_backend(1)", C, "v", 0},
	{"ALTER TABLE t ALTER COLUMN c SET DEFAULT pg_reload_conf()", C, "t", 0},

	/* 6. named statements */
	{"PREPARE p AS DELETE FROM t; EXECUTE p", H, "t", 0},
	{"PREPARE p (int) AS DELETE FROM t WHERE id = $1; EXECUTE p(1)", L, "t", 0},
	{"PREPARE p AS SELECT 1", S, "", 0},
	{"EXECUTE unknown_stmt", H, "", F_UNKNOWN},
	{"PREPARE p AS SELECT 1; DEALLOCATE p; EXECUTE p", H, "", F_UNKNOWN},
	{"PREPARE p AS DELETE FROM t; DEALLOCATE ALL; EXECUTE p", H, "", F_UNKNOWN},
	{"EXPLAIN ANALYZE EXECUTE p", H, "", F_UNKNOWN},

	/* 8. lexer desync */
	{"SET standard_conforming_strings = off", C, "", 0},
	{"SET standard_conforming_strings TO 'off'", C, "", 0},
	{"RESET standard_conforming_strings", C, "", 0},
	{"SELECT set_config('standard_conforming_strings', 'off', false)", C, "", 0},
	{"SET client_encoding = 'SJIS'", C, "", 0},
	{"SET NAMES 'GBK'", C, "", 0},
	{"SET client_encoding TO 'UTF8'", S, "", 0},
	{"SET standard_conforming_strings = on", S, "", 0},
	{"SELECT '\xff'", C, "", F_REFUSE},

	/* 9. privilege switches and state resets */
	{"SET ROLE postgres", C, "", 0},
	{"SET ROLE NONE", C, "", 0},
	{"RESET ROLE", C, "", 0},
	{"SET LOCAL ROLE admin", C, "", 0},
	{"SET SESSION AUTHORIZATION postgres", C, "", 0},
	{"SET SESSION AUTHORIZATION DEFAULT", C, "", 0},
	{"SELECT set_config('role', 'postgres', false)", C, "", 0},
	{"RESET ALL", C, "", 0},
	{"DISCARD ALL", C, "", 0},
	{"DISCARD PLANS", S, "", 0},
	{"DISCARD TEMP", M, "", 0},
	{"SET statement_timeout = 0", M, "", 0},
	{"SET statement_timeout TO '0'", M, "", 0},
	{"RESET lock_timeout", M, "", 0},
	{"SET statement_timeout = '5s'", S, "", 0},
	{"SET search_path TO evil, public", M, "", 0},
	{"SET session_replication_role = replica", C, "", 0},
	{"GRANT ALL ON t TO agent", C, "", 0},
	{"REVOKE ALL ON t FROM agent", M, "", 0},
	{"GRANT admin TO agent", C, "", 0},
	{"ALTER ROLE agent SUPERUSER", C, "", 0},
	{"ALTER ROLE agent SET default_transaction_read_only = off", C, "", 0},
	{"CREATE ROLE x LOGIN", C, "", 0},

	/* 10. server and OS reach */
	{"COPY t FROM PROGRAM 'curl http://x'", C, "", 0},
	{"COPY t TO PROGRAM 'sh'", C, "", 0},
	{"COPY (SELECT 1) TO '/tmp/x'", C, "", 0},
	{"COPY t FROM '/etc/passwd'", C, "", 0},
	{"COPY t FROM STDIN", L, "t", 0},
	{"COPY t (a, b) TO STDOUT WITH (FORMAT csv)", S, "", 0},
	{"ALTER SYSTEM SET fsync = off", C, "", 0},
	{"ALTER SYSTEM RESET ALL", C, "", 0},
	{"LOAD 'plpgsql'", C, "", 0},
	{"CREATE EXTENSION dblink", C, "", 0},
	{"CREATE EXTENSION IF NOT EXISTS \"uuid-ossp\"", C, "", 0},
	{"CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'localhost')", C, "", 0},
	{"CREATE USER MAPPING FOR current_user SERVER s", C, "", 0},
	{"CREATE TABLESPACE ts LOCATION '/tmp'", C, "", 0},

	/* 11. destruction without DROP, and DROP */
	{"ALTER TABLE t ALTER COLUMN c TYPE int", H, "t", 0},
	{"ALTER TABLE t ALTER c SET DATA TYPE text USING c::text", H, "t", 0},
	{"ALTER TABLE t DROP COLUMN c", H, "t", 0},
	{"ALTER TABLE t DROP c", H, "t", 0},
	{"ALTER TABLE IF EXISTS ONLY t DROP COLUMN IF EXISTS c", H, "t", 0},
	{"ALTER TABLE t DROP COLUMN c CASCADE", C, "t", 0},
	{"ALTER TABLE t SET UNLOGGED", H, "t", 0},
	{"ALTER TABLE t SET LOGGED", M, "t", 0},
	{"ALTER TABLE p DETACH PARTITION p1", H, "p,p1", 0},
	{"ALTER TABLE p DETACH PARTITION p1 CONCURRENTLY", H, "p,p1", 0},
	{"ALTER TABLE c NO INHERIT p", H, "c,p", 0},
	{"ALTER TABLE t REPLICA IDENTITY NOTHING", H, "t", 0},
	{"ALTER TABLE t REPLICA IDENTITY FULL", M, "t", 0},
	{"ALTER TABLE t ADD COLUMN c int, DROP COLUMN d", H, "t", 0},
	{"TRUNCATE t", H, "t", 0},
	{"TRUNCATE TABLE ONLY t", H, "t", 0},
	{"TRUNCATE a, b RESTART IDENTITY", H, "a,b", 0},
	{"TRUNCATE t CASCADE", C, "t", 0},
	{"DROP TABLE t", H, "t", 0},
	{"DROP TABLE IF EXISTS a, b", H, "a,b", 0},
	{"DROP TABLE t CASCADE", C, "t", 0},
	{"DROP SCHEMA s", C, "s", 0},
	{"DROP SCHEMA IF EXISTS s CASCADE", C, "s", 0},
	{"DROP DATABASE d", C, "d", 0},
	{"DROP OWNED BY agent", C, "agent", 0},
	{"DROP VIEW v", M, "v", 0},
	{"DROP MATERIALIZED VIEW mv", M, "mv", 0},
	{"DROP INDEX CONCURRENTLY i", M, "i", 0},
	{"DROP SEQUENCE s", M, "s", 0},
	{"DROP FUNCTION f(int)", M, "", 0},
	{"DROP EXTENSION pgcrypto", C, "", 0},
	{"DROP PUBLICATION backstop", C, "", 0},
	{"DELETE FROM t", H, "t", 0},
	{"DELETE FROM t WHERE true", H, "t", 0},
	{"DELETE FROM t WHERE 1=1", H, "t", 0},
	{"DELETE FROM t WHERE 'a' = 'a'", H, "t", 0},
	{"DELETE FROM t WHERE id IS NOT NULL", H, "t", 0},
	{"DELETE FROM t WHERE NOT (id IS NULL)", H, "t", 0},
	{"DELETE FROM t WHERE id > 0", H, "t", 0},
	{"DELETE FROM t WHERE id >= 1", H, "t", 0},
	{"DELETE FROM t WHERE 0 < id", H, "t", 0},
	{"DELETE FROM t WHERE id = id", H, "t", 0},
	{"DELETE FROM t WHERE id <> 5", H, "t", 0},
	{"DELETE FROM t WHERE true OR id = 5", H, "t", 0},
	{"DELETE FROM t WHERE id = 5 OR 1 = 1", H, "t", 0},
	{"DELETE FROM t WHERE id BETWEEN 0 AND 99999999999", H, "t", 0},
	{"DELETE FROM t WHERE name LIKE '%'", H, "t", 0},
	{"DELETE FROM t USING u WHERE u.x = 1", H, "t", 0},
	{"DELETE FROM t AS x WHERE t.id = 1", H, "t", 0},
	{"UPDATE t SET a = 1", H, "t", 0},
	{"UPDATE t SET a = 1 WHERE TRUE AND 1=1", H, "t", 0},
	{"UPDATE t SET a = 1 WHERE t.id IS NOT NULL", H, "t", 0},
	{"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", H, "t", 0},
	{"MERGE INTO t USING s ON true WHEN MATCHED THEN UPDATE SET v = 1", H, "t", 0},
	{"INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET v = excluded.v", H, "t", 0},
	{"DELETE FROM t WHERE id = 1 AND 1 = 1", L, "t", 0},
	{"DELETE FROM t WHERE 1 = 0", L, "t", 0},
	{"DELETE FROM t WHERE created_at < now() - interval '30 days'", L, "t", 0},
	{"DELETE FROM t WHERE id IN (1, 2, 3)", L, "t", 0},
	{"DELETE FROM t WHERE id = ANY($1)", L, "t", 0},
	{"DELETE FROM t WHERE deleted_at IS NULL", L, "t", 0},
	{"DELETE FROM t USING u WHERE t.uid = u.id AND u.name = 'x'", L, "t", 0},
	{"DELETE FROM t WHERE CURRENT OF c", L, "t", 0},
	{"DELETE FROM t WHERE status <> 'done'", L, "t", 0},
	{"MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v)", L, "t", 0},
	{"INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING", L, "t", 0},

	/* 12. names: quoting, Unicode escapes, comments, case */
	{"DROP TABLE \"Users\"", H, "\"Users\"", 0},
	{"DROP TABLE U&\"us\\0065rs\"", H, "users", 0},
	{"DROP TABLE U&\"!0055sers\" UESCAPE '!'", H, "\"Users\"", 0},
	{"DROP TABLE public.users", H, "public.users", 0},
	{"DELETE FROM \"my schema\".\"my table\"", H, "\"my schema\".\"my table\"", 0},
	{"drop table USERS", H, "users", 0},
	{"DROP/*x*/TABLE/*y*/users", H, "users", 0},
	{"-- comment\nDROP TABLE users -- trailing", H, "users", 0},
	{"DROP TABLE pg_temp.t", H, "pg_temp.t", 0},
	{"DELETE FROM ONLY parent", H, "parent", 0},

	/* 14. what the gate cannot parse */
	{"SELEC 1", C, "", F_REFUSE},
	{"SELECT 1 FROM", C, "", F_REFUSE},
	{"SELECT $$unterminated", C, "", F_REFUSE},
	{"MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE RETURNING *", C, "", F_REFUSE},
	{"SELECT JSON_OBJECT('a': 1)", C, "", F_REFUSE},
	{"DROP TABLE users; SELEC", C, "", F_REFUSE},
	{"", S, "", 0},
	{"-- only a comment", S, "", 0},

	/* ordinary application traffic */
	{"SELECT \"users\".\"id\", \"users\".\"email\" FROM \"users\" WHERE \"users\".\"id\" = $1 LIMIT $2", S, "", 0},
	{"SELECT u.* FROM users u JOIN orders o ON o.user_id = u.id WHERE o.created_at > $1 ORDER BY o.created_at DESC LIMIT 50", S, "", 0},
	{"SELECT COUNT(*) AS \"count\" FROM \"posts\" WHERE \"posts\".\"published\" = TRUE", S, "", 0},
	{"INSERT INTO \"orders\" (\"user_id\", \"total\") VALUES ($1, $2) RETURNING \"id\"", L, "orders", 0},
	{"UPDATE \"users\" SET \"last_login\" = $1 WHERE \"users\".\"id\" = $2", L, "users", 0},
	{"UPDATE users SET name = $1, updated_at = now() WHERE id = $2 RETURNING *", L, "users", 0},
	{"DELETE FROM sessions WHERE id = $1", L, "sessions", 0},
	{"DELETE FROM sessions WHERE expires_at < now()", L, "sessions", 0},
	{"SELECT abalance FROM pgbench_accounts WHERE aid = 3", S, "", 0},
	{"UPDATE pgbench_accounts SET abalance = abalance + 5 WHERE aid = 3", L, "pgbench_accounts", 0},
	{"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 3, 5, CURRENT_TIMESTAMP)", L, "pgbench_history", 0},
	{"SELECT now(), lower(name), coalesce(a, b) FROM t", S, "", 0},
	{"SELECT * FROM generate_series(1, 10)", S, "", 0},
	{"WITH recent AS (SELECT * FROM orders WHERE created_at > now() - interval '1 day') SELECT count(*) FROM recent", S, "", 0},
	{"SELECT pg_sleep(0.1)", S, "", 0},
	{"SELECT uuid_generate_v4()", S, "", 0},
	{"SHOW search_path", S, "", 0},
	{"SET application_name = 'worker'", S, "", 0},
	{"SET TIME ZONE 'UTC'", S, "", 0},
	{"BEGIN ISOLATION LEVEL REPEATABLE READ", S, "", 0},
	{"LISTEN jobs", S, "", 0},
	{"VALUES (1), (2)", S, "", 0},
	{"TABLE t", S, "", 0},
	{"INSERT INTO events SELECT * FROM staging", L, "events", 0},
	{"CREATE TABLE t (id bigserial PRIMARY KEY, v text DEFAULT 'x')", M, "t", 0},
	{"CREATE INDEX CONCURRENTLY i ON t (lower(v))", M, "t", 0},
	{"ALTER TABLE t ADD COLUMN c int DEFAULT 0", M, "t", 0},
	{"CREATE TEMP TABLE tmp (a int)", M, "tmp", 0},
	{"ANALYZE t", S, "", 0},
	{"VACUUM t", L, "", 0},
	{"VACUUM FULL t", M, "", 0},
	{"REFRESH MATERIALIZED VIEW mv", L, "mv", 0},
	{"LOCK TABLE t IN ACCESS EXCLUSIVE MODE", L, "", 0},
	{"NOTIFY ch, 'x'", L, "", 0},
	{"SELECT * FROM orders WHERE id = $1 FOR UPDATE", L, "", 0},
	{"SELECT o.id, sum(i.qty * i.price) FROM orders o JOIN items i ON i.order_id = o.id "
	 "WHERE o.created_at BETWEEN $1 AND $2 GROUP BY o.id HAVING sum(i.qty) > 10 ORDER BY 2 DESC", S, "", 0},
	{NULL, S, NULL, 0}
};

/*
 * Statements of the less common kinds, with a reason each must give (a substring of one of
 * its reasons): the node kinds and decisions the table above does not reach.
 */
typedef struct rcase
{
	const char *sql;
	gate_level level;
	const char *targets;
	int flags;
	const char *reason;
} rcase;

static const rcase reason_cases[] = {
	/* expressions the walker descends into */
	{"SELECT a FROM t GROUP BY GROUPING SETS ((a), ()) HAVING GROUPING(a) = pg_reload_conf()::int", C, "", 0,
	 "pg_reload_conf() reloads the server configuration"},
	{"SELECT a, GROUPING(a) FROM t GROUP BY ROLLUP(a)", S, "", 0, NULL},
	{"SELECT x IS TRUE FROM t WHERE (pg_cancel_backend(1)) IS NOT FALSE", C, "", 0, "pg_cancel_backend()"},
	{"SELECT * FROM XMLTABLE('/r' PASSING x COLUMNS a int PATH 'a' DEFAULT pg_reload_conf()::int) AS x", C, "", 0,
	 "pg_reload_conf() reloads the server configuration"},
	{"SELECT XMLSERIALIZE(CONTENT pg_read_file('x')::xml AS text)", C, "", 0, "pg_read_file()"},
	{"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SEARCH DEPTH FIRST BY n SET ord "
	 "CYCLE n SET is_cycle USING path SELECT * FROM r", S, "", 0, NULL},
	{"CREATE TABLE p (a int) PARTITION BY RANGE ((a + 1))", M, "p", 0, "creates table p"},
	{"CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (MINVALUE) TO (10)", M, "p1", 0, "creates table p1"},
	{"CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql RETURN pg_terminate_backend(1)", C, "", 0,
	 "body of f(): pg_terminate_backend() terminates a server process"},
	{"CREATE OR REPLACE FUNCTION f() RETURNS int RETURN 1", M, "", 0, "creates or replaces function f()"},
	{"CREATE TRIGGER trg AFTER UPDATE ON t FOR EACH ROW WHEN (pg_reload_conf()) EXECUTE FUNCTION f()", C, "t",
	 F_UNKNOWN, "pg_reload_conf()"},
	{"CREATE RULE r AS ON DELETE TO t WHERE OLD.a > 0 DO INSTEAD NOTHING", M, "t", 0, "creates rule r on t"},
	{"CREATE RULE r AS ON UPDATE TO t WHERE pg_reload_conf() DO ALSO NOTHING", C, "t", 0, "pg_reload_conf()"},
	{"CREATE INDEX i ON t (a) WHERE b > pg_reload_conf()::int", C, "t", 0, "pg_reload_conf()"},
	{"CREATE POLICY pol ON t USING (pg_terminate_backend(1))", C, "", 0, "pg_terminate_backend()"},
	{"CREATE POLICY pol ON t USING (owner = current_user)", M, "", 0, "creates a row-security policy"},
	{"ALTER POLICY pol ON t USING (true) WITH CHECK (true)", M, "", 0, "alters a row-security policy"},

	/* constant WHERE clauses: always true is every row, always false is none */
	{"DELETE FROM t WHERE 1.5 = 1.5", H, "t", 0, "the WHERE is always true"},
	{"DELETE FROM t WHERE 'true'::boolean", H, "t", 0, "the WHERE is always true"},
	{"DELETE FROM t WHERE 1::int = 1", H, "t", 0, "the WHERE is always true"},
	{"DELETE FROM t WHERE true = true", H, "t", 0, "the WHERE does not depend on the rows of the table"},
	{"DELETE FROM t WHERE 1 <> 2", H, "t", 0, "the WHERE is always true"},
	{"DELETE FROM t WHERE 'a' != 'b'", H, "t", 0, "the WHERE is always true"},
	{"DELETE FROM t WHERE 1 < 2", H, "t", 0, "the WHERE is always true"},
	{"DELETE FROM t WHERE 2 <= 2", H, "t", 0, "the WHERE is always true"},
	{"DELETE FROM t WHERE 3 > 2", H, "t", 0, "the WHERE is always true"},
	{"DELETE FROM t WHERE NOT false", H, "t", 0, "the WHERE is always true"},
	{"DELETE FROM t WHERE 2 >= 3", L, "t", 0, "bounded by its WHERE"},

	/* ranges over a generated key, either side, and negated */
	{"DELETE FROM t WHERE 0 > id", L, "t", 0, "bounded by its WHERE"},
	{"DELETE FROM t WHERE 9999999999 > id", H, "t", 0, "id < 9999999999 matches every row of a generated key"},
	{"DELETE FROM t WHERE 9999999999 >= id", H, "t", 0, "id <= 9999999999 matches every row of a generated key"},
	{"DELETE FROM t WHERE id < 99999999999", H, "t", 0, "id < 99999999999 matches every row of a generated key"},
	{"DELETE FROM t WHERE id <= 2147483647", H, "t", 0, "id <= 2147483647 matches every row of a generated key"},
	{"DELETE FROM t WHERE NOT (id = 5)", H, "t", 0, "id <> 5 matches every other row of a generated key"},
	{"DELETE FROM t WHERE id NOT IN (5)", H, "t", 0, "matches every other row of a generated key"},
	{"DELETE FROM t WHERE NOT (id < 1)", H, "t", 0, "id >= 1 matches every row of a generated key"},
	{"DELETE FROM t WHERE NOT (1 > id)", H, "t", 0, "id >= 1 matches every row of a generated key"},
	{"DELETE FROM t WHERE NOT (id <= 0)", H, "t", 0, "id > 0 matches every row of a generated key"},
	{"UPDATE t SET a = 1 WHERE NOT (id >= 99999999999)", H, "t", 0,
	 "id < 99999999999 matches every row of a generated key"},
	{"DELETE FROM t WHERE NOT (id > 5)", L, "t", 0, "bounded by its WHERE"},
	{"DELETE FROM t WHERE NOT (id ~ 'x')", L, "t", 0, "bounded by its WHERE"},
	{"DELETE FROM t WHERE id IS NOT DISTINCT FROM id", H, "t", 0, "id IS NOT DISTINCT FROM itself"},
	{"DELETE FROM t WHERE id IS NOT DISTINCT FROM 5", L, "t", 0, "bounded by its WHERE"},
	{"DELETE FROM t WHERE id IS DISTINCT FROM NULL", H, "t", 0, "id IS DISTINCT FROM NULL matches every row"},
	{"DELETE FROM t WHERE id IS DISTINCT FROM 5", L, "t", 0, "bounded by its WHERE"},
	{"DELETE FROM t WHERE lower(name) IS NOT NULL", H, "t", 0, "IS NOT NULL on an expression may match every row"},
	{"DELETE FROM t WHERE flag IS TRUE", L, "t", 0, "bounded by its WHERE"},

	/* the system catalog */
	{"DELETE FROM pg_catalog.pg_class WHERE oid = 1", C, "pg_catalog.pg_class", 0,
	 "DELETE pg_catalog.pg_class writes the system catalog"},
	{"UPDATE pg_class SET relname = 'x' WHERE oid = 1", C, "pg_class", 0, "UPDATE pg_class writes the system catalog"},

	/* statement kinds */
	{"CREATE SCHEMA s CREATE TABLE t (a int) CREATE VIEW v AS SELECT 1", M, "t,v", 0, "creates schema s"},
	{"CREATE SCHEMA AUTHORIZATION joe", M, "", 0, "creates schema (named after its owner)"},
	{"REASSIGN OWNED BY agent TO postgres", C, "agent", 0, "REASSIGN OWNED BY agent hands its objects to another role"},
	{"ALTER TABLE t RENAME TO u", M, "t", 0, "renames (in) t"},
	{"ALTER TABLE t RENAME COLUMN a TO b", M, "t", 0, "renames (in) t"},
	{"ALTER FUNCTION f() RENAME TO g", M, "", 0, "renames a FUNCTION"},
	{"ALTER SCHEMA s RENAME TO s2", M, "", 0, "renames a SCHEMA"},
	{"ALTER TYPE ty RENAME TO ty2", M, "", 0, "renames a TYPE"},
	{"ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO agent", C, "", 0,
	 "ALTER DEFAULT PRIVILEGES changes the privileges of future objects"},
	{"ALTER DEFAULT PRIVILEGES REVOKE SELECT ON TABLES FROM agent", M, "", 0,
	 "ALTER DEFAULT PRIVILEGES changes the privileges of future objects"},
	{"ALTER DATABASE d SET work_mem = '1GB'", C, "", 0, "ALTER DATABASE changes settings of every session"},
	{"ALTER DATABASE d CONNECTION LIMIT 1", C, "", 0, "ALTER DATABASE changes settings of every session"},
	{"CREATE LANGUAGE plperlu", C, "", 0, "runs an extension's script (server code)"},
	{"CREATE PUBLICATION p FOR ALL TABLES", C, "", 0, "CREATE PUBLICATION changes logical replication"},
	{"ALTER PUBLICATION backstop DROP TABLE t", C, "", 0, "ALTER PUBLICATION changes logical replication"},
	{"CREATE SUBSCRIPTION sub CONNECTION 'host=x' PUBLICATION p", C, "", 0,
	 "CREATE SUBSCRIPTION changes logical replication"},
	{"ALTER SUBSCRIPTION sub DISABLE", C, "", 0, "ALTER SUBSCRIPTION changes logical replication"},
	{"DROP SUBSCRIPTION sub", C, "", 0, "DROP SUBSCRIPTION changes logical replication"},
	{"ALTER FUNCTION f() SECURITY DEFINER", M, "", 0, "makes a function run with its owner's privileges"},
	{"ALTER FUNCTION f() STABLE", M, "", 0, "alters a function"},
	{"CREATE SEQUENCE sq", M, "", 0, "CREATE SEQUENCE (a schema change; no rows lost)"},
	{"ALTER SEQUENCE sq RESTART", M, "", 0, "ALTER SEQUENCE (a schema change; no rows lost)"},
	{"CREATE DATABASE d", M, "", 0, "CREATE DATABASE (a schema change; no rows lost)"},
	{"DROP ROLE agent", C, "", 0, "DROP ROLE changes roles and privileges"},
	{"DROP TABLESPACE ts", C, "", 0, "tablespaces reach the server's file system"},
	{"ALTER EXTENSION pgcrypto UPDATE", C, "", 0, "ALTER EXTENSION runs an extension's script"},
	{"ALTER EXTENSION pgcrypto ADD FUNCTION f()", C, "", 0, "ALTER EXTENSION runs an extension's script"},
	{"CREATE FOREIGN DATA WRAPPER w", C, "", 0, "foreign servers open connections outside the gate"},
	{"CHECKPOINT", M, "", 0, "CHECKPOINT"},
	{"CLUSTER t USING i", M, "", 0, "CLUSTER"},
	{"REINDEX TABLE t", M, "", 0, "REINDEX"},
	{"CREATE FOREIGN TABLE ft (a int) SERVER s", M, "", 0, "CREATE FOREIGN TABLE"},
	{"IMPORT FOREIGN SCHEMA r FROM SERVER s INTO public", M, "", 0, "IMPORT FOREIGN SCHEMA"},
	{"COMMENT ON TABLE t IS 'x'", M, "", 0, "COMMENT"},
	{"UNLISTEN jobs", S, "", 0, NULL},
	{"FETCH 10 FROM c", S, "", 0, NULL},
	{"MOVE 10 IN c", S, "", 0, NULL},
	{"CLOSE c", S, "", 0, NULL},
	{"SET CONSTRAINTS ALL DEFERRED", S, "", 0, NULL},
	{"SET search_path FROM CURRENT", S, "", 0, NULL},
	{"ROLLBACK PREPARED 'x'", C, "", 0, "two-phase commit moves work out of the session the gate sees"},
	{"DROP FOREIGN TABLE ft", M, "ft", 0, "drops FOREIGN TABLE ft"},
	{"DROP PROCEDURE p()", M, "", 0, "drops PROCEDURE p (a definition; no table rows)"},
	{"DROP TYPE ty", M, "", 0, "drops TYPE ty"},
	{"DROP DOMAIN dm", M, "", 0, "drops DOMAIN dm"},
	{"DROP TRIGGER trg ON t", M, "", 0, "drops TRIGGER t.trg"},
	{"DROP RULE r ON t", M, "", 0, "drops RULE t.r"},
	{"DROP POLICY pol ON t", M, "", 0, "drops POLICY t.pol"},
	{"DROP EVENT TRIGGER e", C, "", 0, "drops EVENT TRIGGER e"},
	{"DROP ROUTINE r()", M, "", 0, "drops ROUTINE r"},
	{"DROP AGGREGATE ag(int)", M, "", 0, "drops AGGREGATE ag"},
	{"DROP COLLATION co", M, "", 0, "drops COLLATION co"},
	{"DROP SERVER s", M, "", 0, "drops SERVER s"},
	{"DROP LANGUAGE plperl", C, "", 0, "drops LANGUAGE plperl"},
	{"ALTER TABLE t ALTER c DROP NOT NULL", M, "t", 0, "changes NOT NULL on t"},
	{"ALTER TABLE t ALTER c DROP EXPRESSION", M, "t", 0, "drops a generation expression of t"},
	{"ALTER TABLE p ATTACH PARTITION p1 FOR VALUES FROM (1) TO (10)", M, "p", 0, "attaches a partition to p"},
	{"ALTER TABLE t DROP CONSTRAINT c", M, "t", 0, "drops a constraint of t"},
	{"ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0)", M, "t", 0, "changes constraints of t"},
	{"ALTER TABLE t DISABLE TRIGGER ALL", M, "t", 0, "enables or disables triggers of t"},
	{"ALTER TABLE t ENABLE RULE r", M, "t", 0, "enables or disables rules of t"},
	{"ALTER TABLE t OWNER TO agent", M, "t", 0, "changes the owner of t"},
	{"ALTER TABLE t DISABLE ROW LEVEL SECURITY", M, "t", 0, "changes row security of t"},
	{"EXPLAIN (ANALYZE 'yes') DELETE FROM t", H, "t", 0, "EXPLAIN ANALYZE executes it"},
	{"EXPLAIN (ANALYZE maybe) DELETE FROM t", H, "t", 0, "EXPLAIN ANALYZE executes it"},
	{"PREPARE p AS WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d", S, "", 0,
	 "PREPARE p: its statement is classified at each EXECUTE"},

	/* PL/pgSQL */
	{"DO $$DECLARE a int[]; BEGIN a[1] := pg_reload_conf()::int; END$$", C, "", 0,
	 "DO block: pg_reload_conf() reloads the server configuration"},
	{"DO $$DECLARE a int[]; BEGIN a[1:2] := ARRAY[1,2]; END$$", S, "", 0, NULL},
	{"DO $$BEGIN PERFORM 1 +; END$$", C, "", F_REFUSE, "cannot parse the PL/pgSQL body: syntax error"},
	{"CREATE OR REPLACE FUNCTION f() RETURNS SETOF int LANGUAGE plpgsql AS "
	 "$$BEGIN RETURN QUERY DELETE FROM t RETURNING 1; END$$", H, "t", 0, "body of f(): DELETE from t without a selective WHERE"},

	{"DO $$DECLARE \"my\"\"v\" int; BEGIN \"my\"\"v\" := pg_reload_conf()::int; END$$", C, "", 0,
	 "DO block: pg_reload_conf() reloads the server configuration"},
	{"DO $$DECLARE a int[]; BEGIN a[pg_terminate_backend(1)] := 1; END$$", C, "", 0,
	 "DO block: pg_terminate_backend() terminates a server process"},
	/* a slice's ':' and a cast's '::' look alike to the gate: refused (this crashed the gate) */
	{"DO $$DECLARE a int[]; BEGIN a[pg_terminate_backend(1)::int] := 1; END$$", C, "", F_REFUSE,
	 "DO block: cannot parse the PL/pgSQL expression \"a[pg_terminate_backend(1)::int] := 1\""},
	{"DO $$DECLARE a int[]; BEGIN PERFORM pg_reload_conf(); a[lower(x)::int] := 1; END$$", C, "", F_REFUSE,
	 "cannot parse the PL/pgSQL expression"},
	{"DO $$BEGIN EXECUTE 'PREPARE p AS DELETE FROM t'; END$$", S, "", 0, NULL},

	/* more statement kinds */
	{"SET allow_system_table_mods = on", C, "", 0, "allow_system_table_mods: reaches the server's files or catalogs"},
	{"DROP OWNED BY CURRENT_USER", C, "", 0, "DROP OWNED changes ownership of a role's objects"},
	{"ALTER DATABASE d RENAME TO e", M, "", 0, "renames a DATABASE"},
	{"ALTER FOREIGN DATA WRAPPER w RENAME TO x", M, "", 0, "renames a FOREIGN DATA WRAPPER"},
	{"ALTER CONVERSION c RENAME TO d", M, "", 0, "renames a CONVERSION"},
	{"ALTER STATISTICS st RENAME TO st2", M, "", 0, "renames a STATISTICS"},
	{"DELETE FROM t WHERE id <> true", H, "t", 0, "id <> true matches every other row of a generated key"},
	{"CALL pg_reload_conf()", C, "", 0, "pg_reload_conf() reloads the server configuration"},
	{"COPY t FROM STDIN WHERE pg_reload_conf()", C, "t", 0, "pg_reload_conf() reloads the server configuration"},
	{"SET TIME ZONE INTERVAL '+00:00' HOUR TO MINUTE", S, "", 0, NULL},
	{"SET statement_timeout = ' 0'", M, "", 0, "SET statement_timeout: removes a timeout"},
	{"SET statement_timeout = 0.0", M, "", 0, "SET statement_timeout: removes a timeout"},
	{"SET lock_timeout = '  5s'", S, "", 0, NULL},
	{"CREATE MATERIALIZED VIEW mv AS SELECT pg_reload_conf()", C, "mv", 0, "pg_reload_conf()"},

	/* the text itself */
	{"SELECT 'é€😀'", S, "", 0, NULL},
	{"SELECT '\xc0\x80'", C, "", F_REFUSE, NULL},
	{"SELECT '\xe2\x82'", C, "", F_REFUSE, NULL},
	{"SELECT '\xed\xa0\x80'", C, "", F_REFUSE, NULL},
	{"SELECT '\xf4\x90\x80\x80'", C, "", F_REFUSE, NULL},
	{NULL, S, NULL, 0, NULL}
};

static char *
targets_of(const gate_result *r)
{
	strbuf sb = STRBUF_INIT;

	strbuf_append_str(&sb, "");
	for (int i = 0; i < r->nstmts; i++)
		for (int k = 0; k < r->stmts[i].ntargets; k++)
		{
			char *dn = gate_target_display(&r->stmts[i].targets[k]);

			if (sb.len)
				strbuf_append_char(&sb, ',');
			strbuf_append_str(&sb, dn);
			free(dn);
		}
	return strbuf_detach(&sb, NULL);
}

static void
diag_result(const gate_result *r, const char *sql)
{
	json_t *j = gate_result_json(r, sql);
	char *s = json_dumps(j, JSON_INDENT(1));

	for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n"))
		printf("#   %s\n", line);
	free(s);
	json_decref(j);
}

/* One statement classified without a catalog: level, refusal, targets and (when given) a reason. */
static void
check_one(const char *sql, gate_level level, const char *want_targets, int flags, const char *want_reason)
{
	gate_options opts;
	gate_result *r = NULL;
	bs_error err;
	char *targets;
	bool good;
	bool unknown = false;
	bool reason_found = want_reason == NULL;

	memset(&opts, 0, sizeof(opts));
	opts.in_transaction = (flags & F_INTXN) != 0;
	if (gate_classify(sql, &opts, &r, &err) != BS_OK)
	{
		ok(0, "classify %s: %s", sql, err.message);
		return;
	}
	targets = targets_of(r);
	for (int i = 0; i < r->nstmts; i++)
	{
		unknown |= r->stmts[i].unknown_targets;
		for (int k = 0; k < r->stmts[i].nreasons; k++)
			if (want_reason && strstr(r->stmts[i].reasons[k].text, want_reason))
				reason_found = true;
	}
	good = r->level == level && r->refuse == ((flags & F_REFUSE) != 0) && strcmp(targets, want_targets) == 0 &&
		reason_found && (!(flags & F_UNKNOWN) || unknown);
	if (!ok(good, "%s -> %s [%s]%s%s", sql, gate_level_name(level), want_targets, want_reason ? ": " : "",
			want_reason ? want_reason : ""))
	{
		printf("#   got %s%s [%s]\n", gate_level_name(r->level), r->refuse ? " refused" : "", targets);
		diag_result(r, sql);
	}
	free(targets);
	gate_result_free(r);
}

static void
run_reasons(void)
{
	for (const rcase *c = reason_cases; c->sql; c++)
		check_one(c->sql, c->level, c->targets, c->flags, c->reason);
}

static void
run_table(void)
{
	int n = 0;

	const char *seeds = getenv("BACKSTOP_FUZZ_SEED_DIR");

	for (const tcase *c = cases; c->sql; c++, n++)
	{
		if (seeds)
		{
			/* fuzz_gate's first byte: bit 0 a catalog, bit 1 inside a gate transaction */
			for (int cat = 0; cat < 2; cat++)
			{
				char path[4096];
				FILE *f;
				unsigned char sel = (unsigned char) (cat | ((c->flags & F_INTXN) ? 2 : 0));

				snprintf(path, sizeof(path), "%s/gate-%03d-%d", seeds, n, cat);
				f = fopen(path, "wb");
				if (f == NULL)
				{
					perror(path);
					exit(2);
				}
				fwrite(&sel, 1, 1, f);
				fwrite(c->sql, 1, strlen(c->sql), f);
				fclose(f);
			}
		}
		check_one(c->sql, c->level, c->targets, c->flags, NULL);
	}
	ok(n >= 150, "the table has %d statements (at least 150)", n);
}

/* ------------------------------------------------------------------------------------------
 * A fake catalog: what a connected session would answer
 * ------------------------------------------------------------------------------------------ */

typedef struct fake_rel
{
	const char *lookup;			/* name as written */
	uint32_t oid;
	const char *nspname;
	const char *relname;
	char relkind;
	bool temp;
} fake_rel;

static const fake_rel fake_rels[] = {
	{"users", 100, "public", "users", 'r', false},
	{"plain", 101, "public", "plain", 'r', false},
	{"parent", 102, "public", "parent", 'p', false},
	{"accounts", 103, "public", "accounts", 'r', false},
	{"ft", 104, "public", "ft", 'f', false},
	{"shadowed", 105, "pg_temp_3", "shadowed", 'r', true},
	{"orders", 106, "public", "orders", 'r', false},
	{"audit", 107, "public", "audit", 'r', false},
	{"archive", 108, "public", "archive", 'r', false},
	{NULL, 0, NULL, NULL, 0, false}
};

static bool fake_fail = false;
static const char *fake_fail_in = NULL;	/* "reach", "column", "functions", "triggers": that callback fails */
static int fake_calls = 0;

static bool
failing(const char *callback)
{
	return fake_fail_in != NULL && strcmp(fake_fail_in, callback) == 0;
}

static void
fill_rel(gate_rel *out, uint32_t oid, const char *nsp, const char *rel, char kind, bool temp)
{
	out->oid = oid;
	out->nspname = xstrdup(nsp);
	out->relname = xstrdup(rel);
	out->relkind = kind;
	out->temp = temp;
}

static int
fake_relation(void *arg, const char *schema, const char *name, bool *found, gate_rel *out, bs_error *err)
{
	(void) arg;
	fake_calls++;
	if (fake_fail)
		return error_set(err, "08006", "connection lost");
	*found = false;
	for (const fake_rel *r = fake_rels; r->lookup; r++)
		if (strcmp(r->lookup, name) == 0 && (schema == NULL || strcmp(schema, r->nspname) == 0))
		{
			*found = true;
			fill_rel(out, r->oid, r->nspname, r->relname, r->relkind, r->temp);
		}
	return BS_OK;
}

static int
fake_reach(void *arg, gate_reach how, uint32_t oid, const char *name, gate_rel **out, int *n, bs_error *err)
{
	(void) arg;
	if (failing("reach"))
		return error_set(err, "08006", "connection lost in reach");
	*out = xcalloc(4, sizeof(gate_rel));
	*n = 0;
	if (how == GATE_REACH_CHILDREN && oid == 102)
	{
		fill_rel(&(*out)[(*n)++], 200, "public", "p1", 'r', false);
		fill_rel(&(*out)[(*n)++], 201, "public", "p2", 'r', false);
	}
	else if ((how == GATE_REACH_FK_DELETE || how == GATE_REACH_REFERENCING) && oid == 103)
		fill_rel(&(*out)[(*n)++], 202, "public", "entries", 'r', false);
	else if (how == GATE_REACH_SCHEMA && strcmp(name, "s") == 0)
	{
		fill_rel(&(*out)[(*n)++], 203, "s", "a", 'r', false);
		fill_rel(&(*out)[(*n)++], 204, "s", "b", 'r', false);
	}
	else if (how == GATE_REACH_OWNED && strcmp(name, "agent") == 0)
		fill_rel(&(*out)[(*n)++], 205, "public", "agent_t", 'r', false);
	return BS_OK;
}

static int
fake_column(void *arg, uint32_t reloid, const char *column, gate_column *out, bs_error *err)
{
	(void) arg;
	if (failing("column"))
		return error_set(err, "08006", "connection lost in column");
	if (strcmp(column, "nosuchcol") == 0)
	{
		out->exists = false;
		return BS_OK;
	}
	out->exists = true;
	out->notnull = strcmp(column, "deleted_at") != 0;
	out->serial = reloid == 100 && strcmp(column, "id") == 0;
	return BS_OK;
}

typedef struct fake_fn
{
	const char *lookup;
	const char *nspname;
	char kind;
	char volatility;
	const char *language;
	bool secdef;
	const char *definition;
} fake_fn;

static const fake_fn fake_fns[] = {
	{"cleanup", "public", 'f', 'v', "plpgsql", false,
	 "CREATE OR REPLACE FUNCTION public.cleanup() RETURNS void LANGUAGE plpgsql AS $function$BEGIN DELETE FROM users; END$function$"},
	{"cfunc", "public", 'f', 'v', "c", false, NULL},
	{"stablef", "public", 'f', 's', "c", false, NULL},
	{"lower", "pg_catalog", 'f', 'i', "internal", false, NULL},
	{"plpy", "public", 'f', 'v', "plpython3u", false, NULL},
	{"recursive", "public", 'f', 'v', "sql", false,
	 "CREATE OR REPLACE FUNCTION public.recursive() RETURNS int LANGUAGE sql AS $function$SELECT recursive()$function$"},
	{"secdef", "public", 'f', 'v', "sql", true,
	 "CREATE OR REPLACE FUNCTION public.secdef() RETURNS int LANGUAGE sql SECURITY DEFINER AS $function$SELECT 1$function$"},
	{"proc1", "public", 'p', 'v', "plpgsql", false,
	 "CREATE OR REPLACE PROCEDURE public.proc1() LANGUAGE plpgsql AS $p$BEGIN TRUNCATE users; END$p$"},
	{"broken", "public", 'f', 'v', "plpgsql", false,
	 "CREATE OR REPLACE FUNCTION public.broken() RETURNS void LANGUAGE plpgsql AS $p$BEGIN this is not plpgsql; END$p$"},
	{NULL, NULL, 0, 0, NULL, false, NULL}
};

static void
fill_fn(gate_func *f, const char *nsp, const char *name, char kind, char vol, const char *lang, bool secdef,
		const char *def, uint32_t oid)
{
	f->oid = oid;
	f->nspname = xstrdup(nsp);
	f->name = xstrdup(name);
	f->kind = kind;
	f->volatility = vol;
	f->language = xstrdup(lang);
	f->security_definer = secdef;
	f->definition = def ? xstrdup(def) : NULL;
}

static int
fake_functions(void *arg, const char *schema, const char *name, gate_func **out, int *n, bs_error *err)
{
	uint32_t oid = 1000;

	(void) arg;
	(void) schema;
	if (failing("functions"))
		return error_set(err, "08006", "connection lost in functions");
	*out = xcalloc(2, sizeof(gate_func));
	*n = 0;
	for (const fake_fn *f = fake_fns; f->lookup; f++, oid++)
		if (strcmp(f->lookup, name) == 0)
			fill_fn(&(*out)[(*n)++], f->nspname, f->lookup, f->kind, f->volatility, f->language, f->secdef,
					f->definition, oid);
	return BS_OK;
}

static int
fake_triggers(void *arg, uint32_t reloid, int events, gate_func **out, int *n, bs_error *err)
{
	(void) arg;
	if (failing("triggers"))
		return error_set(err, "08006", "connection lost in triggers");
	*out = xcalloc(2, sizeof(gate_func));
	*n = 0;
	if (reloid == 108 && (events & GATE_EVENT_UPDATE))
		fill_fn(&(*out)[(*n)++], "public", "perl_trg", 'f', 'v', "plperlu", false, NULL, 2001);
	if (reloid == 107 && (events & GATE_EVENT_UPDATE))
		fill_fn(&(*out)[(*n)++], "public", "c_trg", 'f', 'v', "c", false, NULL, 2002);
	if (reloid == 100 && (events & GATE_EVENT_DELETE))
		fill_fn(&(*out)[(*n)++], "public", "audit_del", 'f', 'v', "plpgsql", false,
				"CREATE OR REPLACE FUNCTION public.audit_del() RETURNS trigger LANGUAGE plpgsql AS "
				"$f$BEGIN INSERT INTO audit VALUES (OLD.id); RETURN OLD; END$f$", 2000);
	if (reloid == 106 && (events & GATE_EVENT_DELETE))
		fill_fn(&(*out)[(*n)++], "public", "r", 'r', 'v', "sql", false,
				"CREATE RULE r AS ON DELETE TO public.orders DO INSTEAD DELETE FROM public.archive", 3000);
	return BS_OK;
}

static const gate_catalog fake_catalog = {
	NULL, fake_relation, fake_reach, fake_column, fake_functions, fake_triggers
};

typedef struct ccase
{
	const char *sql;
	gate_level level;
	const char *targets;
	int flags;
} ccase;

static const ccase catalog_cases[] = {
	{"DELETE FROM users WHERE deleted_at IS NOT NULL", L, "public.users,public.audit", 0},
	{"DELETE FROM plain WHERE email IS NOT NULL", H, "public.plain", 0},
	{"DELETE FROM plain WHERE deleted_at IS NOT NULL", L, "public.plain", 0},
	{"UPDATE users SET a = 1 WHERE id > 0", H, "public.users", 0},
	{"UPDATE plain SET a = 1 WHERE id > 0", L, "public.plain", 0},
	{"DROP TABLE parent", H, "public.parent,public.p1,public.p2", 0},
	{"DELETE FROM ONLY parent", H, "public.parent", 0},
	{"DELETE FROM accounts", H, "public.accounts,public.entries", 0},
	{"TRUNCATE accounts CASCADE", H, "public.accounts,public.entries", 0},
	{"DROP SCHEMA s", C, "s,s.a,s.b", 0},
	{"DROP OWNED BY agent", C, "agent,public.agent_t", 0},
	{"UPDATE ft SET a = 1 WHERE id = 1", C, "public.ft", 0},
	{"DELETE FROM shadowed WHERE id = 1", L, "pg_temp_3.shadowed", 0},
	{"DROP TABLE nosuch", H, "nosuch", 0},
	{"SELECT cleanup()", H, "public.users,public.audit", 0},
	{"SELECT * FROM t WHERE x = cfunc()", H, "", F_UNKNOWN},
	{"SELECT stablef(), lower('x')", S, "", 0},
	{"SELECT plpy()", C, "", F_UNKNOWN},
	{"SELECT recursive()", S, "", 0},
	{"SELECT secdef()", S, "", 0},
	{"SELECT broken()", H, "", F_UNKNOWN},
	{"CALL proc1()", H, "public.users", 0},
	{"CALL nosuch()", S, "", 0},
	{"DELETE FROM users WHERE id = 1", L, "public.users,public.audit", 0},
	{"DELETE FROM orders WHERE id = 1", H, "public.orders,public.archive", 0},
	{"SET search_path TO x; DELETE FROM users WHERE id = 1", M, "users", 0},
	{"CREATE TRIGGER t2 BEFORE DELETE ON plain FOR EACH ROW EXECUTE FUNCTION cleanup()", H,
	 "public.plain,public.users,public.audit", 0},
	{"UPDATE archive SET a = 1 WHERE id = 1", C, "public.archive", F_UNKNOWN},
	{"UPDATE audit SET a = 1 WHERE id = 1", H, "public.audit", F_UNKNOWN},
	{"DELETE FROM plain WHERE email IS NOT NULL AND email IS NOT NULL", H, "public.plain", 0},
	{"DELETE FROM plain WHERE nosuchcol IS NOT NULL", H, "public.plain", 0},
	{NULL, S, NULL, 0}
};

static void
run_catalog(void)
{
	for (const ccase *c = catalog_cases; c->sql; c++)
	{
		gate_options opts;
		gate_result *r = NULL;
		bs_error err;
		char *targets;
		bool good;

		memset(&opts, 0, sizeof(opts));
		opts.catalog = &fake_catalog;
		if (gate_classify(c->sql, &opts, &r, &err) != BS_OK)
		{
			ok(0, "catalog: %s: %s", c->sql, err.message);
			continue;
		}
		targets = targets_of(r);
		good = r->level == c->level && strcmp(targets, c->targets) == 0 && r->resolved;
		if (c->flags & F_UNKNOWN)
			good = good && r->stmts[0].unknown_targets;
		if (!ok(good, "catalog: %s -> %s [%s]", c->sql, gate_level_name(c->level), c->targets) || getenv("GATE_DIAG"))
		{
			printf("#   got %s [%s]\n", gate_level_name(r->level), targets);
			diag_result(r, c->sql);
		}
		free(targets);
		gate_result_free(r);
	}
}

static void
test_catalog_details(void)
{
	gate_options opts;
	gate_result *r = NULL;
	bs_error err;
	const char *trusted[] = {"public.cfunc", NULL};

	memset(&opts, 0, sizeof(opts));
	opts.catalog = &fake_catalog;

	ok(gate_classify("DELETE FROM shadowed WHERE id = 1", &opts, &r, &err) == BS_OK &&
	   r->stmts[0].ntargets == 1 && r->stmts[0].targets[0].resolved && r->stmts[0].targets[0].exists &&
	   r->stmts[0].targets[0].temp && r->stmts[0].targets[0].oid == 105,
	   "a temporary table that shadows a permanent one resolves to the temporary table's OID");
	gate_result_free(r);

	ok(gate_classify("DROP TABLE nosuch", &opts, &r, &err) == BS_OK && r->stmts[0].targets[0].resolved &&
	   !r->stmts[0].targets[0].exists, "a relation the session does not have is resolved as absent");
	gate_result_free(r);

	fake_calls = 0;
	ok(gate_classify("SELECT 1 FROM plain; DELETE FROM plain WHERE id = 1; DELETE FROM plain WHERE id = 2",
					 &opts, &r, &err) == BS_OK && fake_calls == 1, "a relation is looked up once per call");
	gate_result_free(r);

	opts.trusted_functions = trusted;
	ok(gate_classify("SELECT cfunc()", &opts, &r, &err) == BS_OK && r->level == GATE_SAFE,
	   "a trusted function pattern from the policy makes a volatile C function harmless");
	gate_result_free(r);
	opts.trusted_functions = NULL;

	{
		static const struct
		{
			const char *callback;
			const char *sql;
		} fails[] = {
			{"reach", "DROP TABLE parent"},
			{"column", "DELETE FROM plain WHERE email IS NOT NULL"},
			{"functions", "SELECT cleanup()"},
			{"triggers", "DELETE FROM users WHERE id = 1"},
		};

		for (size_t i = 0; i < sizeof(fails) / sizeof(fails[0]); i++)
		{
			fake_fail_in = fails[i].callback;
			r = NULL;
			ok(gate_classify(fails[i].sql, &opts, &r, &err) == BS_ERR && r == NULL &&
			   strstr(err.message, "connection lost in") != NULL && strstr(err.message, fails[i].callback) != NULL,
			   "a failed %s look-up fails the classification of %s", fails[i].callback, fails[i].sql);
			gate_result_free(r);
		}
		fake_fail_in = NULL;
	}

	{
		json_t *j;
		char *dump;

		gate_classify("DROP TABLE parent; DROP TABLE nosuch", &opts, &r, &err);
		j = gate_result_json(r, "x");
		dump = json_dumps(j, JSON_SORT_KEYS);
		ok(strstr(dump, "\"via\": 0") && strstr(dump, "\"oid\": 200") && strstr(dump, "\"relkind\": \"p\"") &&
		   strstr(dump, "\"temporary\": false") && strstr(dump, "\"exists\": false"),
		   "JSON of resolved targets: reached through, OID, relkind, temporary, absent");
		free(dump);
		json_decref(j);
		gate_result_free(r);
	}

	fake_fail = true;
	r = NULL;
	ok(gate_classify("DELETE FROM users WHERE id = 1", &opts, &r, &err) == BS_ERR && r == NULL &&
	   strstr(err.message, "connection lost") != NULL,
	   "a failed catalog look-up fails the classification (the caller refuses)");
	fake_fail = false;
}

static void
test_session(void)
{
	gate_session *s = gate_session_new();
	gate_options opts;
	gate_result *r = NULL;
	bs_error err;

	memset(&opts, 0, sizeof(opts));
	opts.session = s;
	ok(gate_classify("PREPARE p AS DELETE FROM t", &opts, &r, &err) == BS_OK && r->level == GATE_SAFE,
	   "session: PREPARE of a DELETE is SAFE by itself");
	gate_result_free(r);
	ok(gate_classify("EXECUTE p", &opts, &r, &err) == BS_OK && r->level == GATE_HIGH &&
	   r->stmts[0].ntargets == 1 && strcmp(r->stmts[0].targets[0].name, "t") == 0,
	   "session: a later EXECUTE of it is classified as the DELETE");
	gate_result_free(r);
	ok(gate_classify("PREPARE p AS SELECT 1", &opts, &r, &err) == BS_OK, "session: p prepared again");
	gate_result_free(r);
	ok(gate_classify("EXECUTE p", &opts, &r, &err) == BS_OK && r->level == GATE_SAFE,
	   "session: EXECUTE follows the statement prepared last");
	gate_result_free(r);

	opts.in_transaction = false;
	ok(gate_classify("BEGIN", &opts, &r, &err) == BS_OK, "session: BEGIN");
	gate_result_free(r);
	opts.in_transaction = true;
	ok(gate_classify("COMMIT", &opts, &r, &err) == BS_OK && r->level == GATE_SAFE,
	   "session: COMMIT of the session's own BEGIN is SAFE even inside a gate transaction");
	gate_result_free(r);
	ok(gate_classify("COMMIT", &opts, &r, &err) == BS_OK && r->level == GATE_CRITICAL,
	   "session: a second COMMIT would end the gate's transaction");
	gate_result_free(r);

	ok(gate_classify("CREATE FUNCTION g() RETURNS void LANGUAGE sql AS 'TRUNCATE t'", &opts, &r, &err) == BS_OK &&
	   r->level == GATE_MEDIUM, "session: creating a destructive function is MEDIUM");
	gate_result_free(r);
	ok(gate_classify("SELECT g()", &opts, &r, &err) == BS_OK && r->level == GATE_HIGH,
	   "session: calling it later is HIGH (its body is known from the session)");
	gate_result_free(r);
	ok(gate_classify("CREATE FUNCTION rec() RETURNS int LANGUAGE sql AS 'SELECT rec()'", &opts, &r, &err) == BS_OK,
	   "session: a recursive function");
	gate_result_free(r);
	ok(gate_classify("SELECT rec()", &opts, &r, &err) == BS_OK && r->level == GATE_SAFE && !r->stmts[0].unknown_targets,
	   "session: calling it is classified once (recursion cut), SAFE");
	gate_result_free(r);
	gate_session_free(s);
}

static void
test_result_copy_json(void)
{
	gate_result *r = NULL, *c;
	bs_error err;
	json_t *j;

	gate_classify("DELETE FROM \"Odd\"\"Name\" WHERE true; SELECT 1", NULL, &r, &err);
	c = gate_result_copy(r);
	gate_result_free(r);
	j = gate_result_json(c, "DELETE FROM \"Odd\"\"Name\" WHERE true; SELECT 1");
	is_str(json_string_value(json_object_get(j, "level")), "HIGH", "JSON: level");
	is_str(json_string_value(json_object_get(json_array_get(json_object_get(j, "statements"), 1), "text")),
		   "SELECT 1", "JSON: second statement's text");
	is_str(json_string_value(json_object_get(json_array_get(json_object_get(
		json_array_get(json_object_get(j, "statements"), 0), "targets"), 0), "name")),
		   "\"Odd\"\"Name\"", "JSON: a quoted target name, quotes doubled");
	json_decref(j);
	gate_result_free(c);
}

/* The API around the classification: level names, texts with NUL bytes, limits, JSON. */
static void
test_api_edges(void)
{
	gate_level lv = GATE_SAFE;
	gate_result *r = NULL;
	bs_error err;
	strbuf sb = STRBUF_INIT;
	json_t *j;
	char *dump;

	is_str(gate_level_name((gate_level) 99), "?", "an out-of-range level has no name");
	ok(gate_level_parse("high", &lv) == 0 && lv == GATE_HIGH, "level names parse case-insensitively");
	ok(gate_level_parse("severe", &lv) == -1 && lv == GATE_HIGH, "an unknown level name is refused");

	ok(gate_classify_n("SELECT 1\0; DROP TABLE t", 24, NULL, &r, &err) == BS_OK && r->refuse &&
	   r->level == GATE_CRITICAL && strstr(r->stmts[0].reasons[0].text, "contains a NUL byte") != NULL,
	   "a NUL byte inside the text is refused (the server would stop reading there)");
	gate_result_free(r);
	ok(gate_classify_n("DROP TABLE t; SELECT 1", 13, NULL, &r, &err) == BS_OK && !r->refuse &&
	   r->level == GATE_HIGH && r->nstmts == 1, "only len bytes are classified");
	gate_result_free(r);

	/* a WHERE nested past the checker's depth counts as matching every row */
	strbuf_append_str(&sb, "DELETE FROM t WHERE ");
	for (int i = 0; i < 250; i++)
		strbuf_printf(&sb, "id = %d OR (", i);
	strbuf_append_str(&sb, "id = -1");
	for (int i = 0; i < 250; i++)
		strbuf_append_char(&sb, ')');
	ok(gate_classify(sb.data, NULL, &r, &err) == BS_OK && r->level == GATE_HIGH &&
	   strstr(r->stmts[0].reasons[0].text, "a WHERE too complex to check") != NULL,
	   "a WHERE too deep to check is treated as matching every row (HIGH)");
	gate_result_free(r);
	strbuf_free(&sb);

	/* bodies within bodies: refused past the nesting limit */
	for (int i = 0; i < 10; i++)
		strbuf_printf(&sb, "CREATE OR REPLACE FUNCTION f%d() RETURNS void LANGUAGE sql AS $q%d$ ", i, i);
	strbuf_append_str(&sb, "DELETE FROM t");
	for (int i = 9; i >= 0; i--)
		strbuf_printf(&sb, " $q%d$", i);
	ok(gate_classify(sb.data, NULL, &r, &err) == BS_OK && r->refuse && r->level == GATE_CRITICAL,
	   "function bodies nested ten deep are refused");
	if (r)
	{
		j = gate_result_json(r, sb.data);
		dump = json_dumps(j, 0);
		ok(dump && strstr(dump, "bodies nest deeper than 8 levels") != NULL, "... saying how deep they may nest");
		free(dump);
		json_decref(j);
	}
	gate_result_free(r);
	strbuf_free(&sb);

	/* an expression nested past the walker's depth is refused */
	strbuf_append_str(&sb, "SELECT ");
	for (int i = 0; i < 1100; i++)
		strbuf_append_str(&sb, "1 + ");
	strbuf_append_str(&sb, "1");
	ok(gate_classify(sb.data, NULL, &r, &err) == BS_OK && r->refuse && r->level == GATE_CRITICAL,
	   "an expression nested deeper than the walker goes is refused");
	if (r)
	{
		j = gate_result_json(r, sb.data);
		dump = json_dumps(j, 0);
		ok(dump && strstr(dump, "nests deeper than 1000 levels") != NULL, "... saying so");
		free(dump);
		json_decref(j);
	}
	gate_result_free(r);
	strbuf_free(&sb);

	/* JSON of targets of every kind, ONLY, and an effect on unnamed relations */
	gate_classify("DROP SCHEMA s; DROP DATABASE d; DROP OWNED BY agent; DELETE FROM ONLY p WHERE true; "
				  "SELECT query_to_xml(q, true, false, '') FROM qs", NULL, &r, &err);
	j = gate_result_json(r, "x");
	dump = json_dumps(j, JSON_SORT_KEYS);
	ok(strstr(dump, "\"kind\": \"schema\"") && strstr(dump, "\"kind\": \"database\"") &&
	   strstr(dump, "\"kind\": \"role\"") && strstr(dump, "\"only\": true") &&
	   strstr(dump, "\"unknown_targets\": true"), "JSON: schema, database and role targets, ONLY, unknown targets");
	free(dump);
	json_decref(j);
	gate_result_free(r);
}

static gate_result *
plain_classify(const char *sql)
{
	gate_result *r = NULL;
	bs_error err;

	gate_classify(sql, NULL, &r, &err);
	return r;
}

static void
test_cache(void)
{
	gate_cache *c = gate_cache_new(2);
	gate_cache_stats st;
	const char *q = "DELETE FROM users WHERE id = $1";
	const gate_result *hit;
	gate_result *r;

	ok(gate_cache_get(c, q, strlen(q), "app\npublic", 1) == NULL, "cache: empty");
	r = plain_classify(q);
	ok(r->cacheable, "cache: a DELETE's classification depends on its text only");
	gate_cache_put(c, q, strlen(q), "app\npublic", 1, r);
	hit = gate_cache_get(c, q, strlen(q), "app\npublic", 1);
	ok(hit == r && hit->level == GATE_LOW, "cache: the same text, context and epoch hit");
	ok(gate_cache_get(c, q, strlen(q), "app\nother,public", 1) == NULL, "cache: another search_path misses");
	ok(gate_cache_get(c, q, strlen(q), "app\npublic", 2) == NULL, "cache: another catalog epoch misses");
	ok(gate_cache_get(c, q, strlen(q), NULL, 1) == NULL, "cache: no context (no catalog) is another key");
	ok(gate_cache_get(c, "DELETE FROM users WHERE id = $2", strlen(q), "app\npublic", 1) == NULL,
	   "cache: one byte of text changed misses");
	ok(gate_cache_get(c, q, strlen(q) - 1, "app\npublic", 1) == NULL, "cache: a prefix of the text misses");

	r = plain_classify("PREPARE p AS DELETE FROM t");
	ok(!r->cacheable, "cache: PREPARE changes session state: not cacheable");
	gate_cache_put(c, "PREPARE p AS DELETE FROM t", 26, NULL, 0, r);
	ok(gate_cache_get(c, "PREPARE p AS DELETE FROM t", 26, NULL, 0) == NULL, "cache: ... and not kept");
	r = plain_classify("EXECUTE p");
	ok(!r->cacheable, "cache: EXECUTE depends on the session: not cacheable");
	gate_result_free(r);
	r = plain_classify("COMMIT");
	ok(!r->cacheable, "cache: transaction control depends on the session: not cacheable");
	gate_result_free(r);
	r = plain_classify("SET search_path TO x; DROP TABLE t");
	ok(!r->cacheable, "cache: a search_path change: not cacheable");
	gate_result_free(r);

	gate_cache_put(c, "SELECT 1", 8, NULL, 0, plain_classify("SELECT 1"));
	gate_cache_put(c, "SELECT 2", 8, NULL, 0, plain_classify("SELECT 2"));
	ok(gate_cache_get(c, q, strlen(q), "app\npublic", 1) == NULL, "cache: the oldest entry made room");
	ok(gate_cache_get(c, "SELECT 2", 8, NULL, 0) != NULL, "cache: the newest is kept");
	gate_cache_get_stats(c, &st);
	ok(st.entries == 2 && st.evictions == 1 && st.hits == 2, "cache: stats (%d entries, %llu evictions, %llu hits)",
	   st.entries, (unsigned long long) st.evictions, (unsigned long long) st.hits);
	r = plain_classify("SELECT 2; DROP TABLE t");
	gate_cache_put(c, "SELECT 2", 8, NULL, 0, r);
	hit = gate_cache_get(c, "SELECT 2", 8, NULL, 0);
	ok(hit == r && hit->level == GATE_HIGH, "cache: the same key again replaces the result kept");
	gate_cache_get_stats(c, &st);
	ok(st.entries == 2 && st.evictions == 1, "cache: ... without taking another entry");
	gate_cache_put(c, "SELECT 3", 8, NULL, 0, NULL);
	ok(gate_cache_get(c, "SELECT 3", 8, NULL, 0) == NULL, "cache: no result, nothing kept");
	gate_cache_free(c);
	gate_cache_free(NULL);

	c = gate_cache_new(0);
	gate_cache_put(c, "SELECT 1", 8, NULL, 0, plain_classify("SELECT 1"));
	gate_cache_put(c, "SELECT 2", 8, NULL, 0, plain_classify("SELECT 2"));
	ok(gate_cache_get(c, "SELECT 1", 8, NULL, 0) == NULL && gate_cache_get(c, "SELECT 2", 8, NULL, 0) != NULL,
	   "cache: a capacity below one keeps one entry");
	gate_cache_free(c);
}

int
main(void)
{
	bs_error err;

	ok(gate_self_check(&err) == BS_OK, "libpg_query's node tags match the PostgreSQL headers");
	run_table();
	run_reasons();
	run_catalog();
	test_catalog_details();
	test_session();
	test_result_copy_json();
	test_api_edges();
	test_cache();
	return done_testing();
}
