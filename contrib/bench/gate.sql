-- contrib/bench/gate.sql — the gate benchmark's corpus: statements as applications, ORMs,
-- migrations, analysts and agents send them.  Each statement is timed on its own.

-- pgbench (TPC-B-like)
SELECT abalance FROM pgbench_accounts WHERE aid = 48213;
UPDATE pgbench_accounts SET abalance = abalance + -4210 WHERE aid = 48213;
UPDATE pgbench_tellers SET tbalance = tbalance + -4210 WHERE tid = 7;
UPDATE pgbench_branches SET bbalance = bbalance + -4210 WHERE bid = 1;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (7, 1, 48213, -4210, CURRENT_TIMESTAMP);
BEGIN;
END;

-- ORMs (Django, Rails, Hibernate, SQLAlchemy)
SELECT "auth_user"."id", "auth_user"."password", "auth_user"."last_login", "auth_user"."is_superuser", "auth_user"."username", "auth_user"."first_name", "auth_user"."last_name", "auth_user"."email", "auth_user"."is_staff", "auth_user"."is_active", "auth_user"."date_joined" FROM "auth_user" WHERE "auth_user"."id" = $1 LIMIT 21;
SELECT "users".* FROM "users" WHERE "users"."email" = $1 LIMIT $2;
SELECT "posts".* FROM "posts" WHERE "posts"."user_id" = $1 AND "posts"."published" = TRUE ORDER BY "posts"."created_at" DESC LIMIT $2 OFFSET $3;
SELECT COUNT(*) FROM "orders" WHERE "orders"."customer_id" = $1 AND "orders"."status" IN ('paid', 'shipped');
INSERT INTO "orders" ("customer_id", "total", "status", "created_at", "updated_at") VALUES ($1, $2, $3, $4, $5) RETURNING "id";
INSERT INTO "line_items" ("order_id", "product_id", "quantity", "price") VALUES ($1, $2, $3, $4), ($5, $6, $7, $8), ($9, $10, $11, $12) RETURNING "id";
UPDATE "users" SET "last_login" = $1, "updated_at" = $2 WHERE "users"."id" = $3;
UPDATE "orders" SET "status" = $1, "updated_at" = $2 WHERE "orders"."id" = $3 AND "orders"."lock_version" = $4;
DELETE FROM "sessions" WHERE "sessions"."id" = $1;
select user0_.id as id1_0_, user0_.email as email2_0_, user0_.name as name3_0_ from users user0_ where user0_.id=$1;
SELECT users.id AS users_id, users.name AS users_name, addresses_1.id AS addresses_1_id, addresses_1.email_address AS addresses_1_email_address FROM users LEFT OUTER JOIN addresses AS addresses_1 ON users.id = addresses_1.user_id WHERE users.name = $1;
INSERT INTO events (kind, payload, created_at) VALUES ($1, $2::jsonb, now()) ON CONFLICT DO NOTHING;
SELECT id, payload FROM jobs WHERE queue = $1 AND run_at <= now() ORDER BY priority, run_at LIMIT 1 FOR UPDATE SKIP LOCKED;
UPDATE jobs SET locked_at = now(), locked_by = $1 WHERE id = $2 RETURNING *;

-- migrations
CREATE TABLE IF NOT EXISTS public.invoices (id bigserial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers (id), amount numeric(12, 2) NOT NULL CHECK (amount >= 0), currency char(3) NOT NULL DEFAULT 'EUR', issued_at timestamptz NOT NULL DEFAULT now(), notes text);
ALTER TABLE public.invoices ADD COLUMN paid_at timestamptz;
CREATE INDEX CONCURRENTLY IF NOT EXISTS invoices_customer_idx ON public.invoices (customer_id, issued_at DESC);
ALTER TABLE public.orders ALTER COLUMN status SET DEFAULT 'new';
ALTER TABLE public.orders ADD CONSTRAINT orders_total_positive CHECK (total >= 0) NOT VALID;
CREATE OR REPLACE VIEW public.open_orders AS SELECT o.id, o.customer_id, o.total FROM public.orders o WHERE o.status NOT IN ('shipped', 'cancelled');
COMMENT ON TABLE public.invoices IS 'issued invoices';
ALTER TABLE public.legacy DROP COLUMN obsolete_flag;
ALTER TABLE public.orders ALTER COLUMN total TYPE numeric(14, 2);

-- analytics (TPC-H-like)
SELECT l_returnflag, l_linestatus, sum(l_quantity) AS sum_qty, sum(l_extendedprice) AS sum_base_price, sum(l_extendedprice * (1 - l_discount)) AS sum_disc_price, sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)) AS sum_charge, avg(l_quantity) AS avg_qty, avg(l_extendedprice) AS avg_price, avg(l_discount) AS avg_disc, count(*) AS count_order FROM lineitem WHERE l_shipdate <= date '1998-12-01' - interval '90' day GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus;
SELECT l_orderkey, sum(l_extendedprice * (1 - l_discount)) AS revenue, o_orderdate, o_shippriority FROM customer, orders, lineitem WHERE c_mktsegment = 'BUILDING' AND c_custkey = o_custkey AND l_orderkey = o_orderkey AND o_orderdate < date '1995-03-15' AND l_shipdate > date '1995-03-15' GROUP BY l_orderkey, o_orderdate, o_shippriority ORDER BY revenue DESC, o_orderdate LIMIT 10;
SELECT n_name, sum(l_extendedprice * (1 - l_discount)) AS revenue FROM customer, orders, lineitem, supplier, nation, region WHERE c_custkey = o_custkey AND l_orderkey = o_orderkey AND l_suppkey = s_suppkey AND c_nationkey = s_nationkey AND s_nationkey = n_nationkey AND n_regionkey = r_regionkey AND r_name = 'ASIA' AND o_orderdate >= date '1994-01-01' AND o_orderdate < date '1994-01-01' + interval '1' year GROUP BY n_name ORDER BY revenue DESC;
WITH monthly AS (SELECT date_trunc('month', created_at) AS month, customer_id, sum(total) AS spent FROM orders WHERE created_at >= now() - interval '1 year' GROUP BY 1, 2), ranked AS (SELECT month, customer_id, spent, rank() OVER (PARTITION BY month ORDER BY spent DESC) AS r FROM monthly) SELECT month, customer_id, spent FROM ranked WHERE r <= 10 ORDER BY month, r;
SELECT c.id, c.name, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) AS orders, coalesce((SELECT max(created_at) FROM orders o WHERE o.customer_id = c.id), c.created_at) AS last_seen FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id AND o.total > 100) ORDER BY last_seen DESC NULLS LAST LIMIT 100;
SELECT json_build_object('id', p.id, 'tags', array_agg(t.name ORDER BY t.name)) FROM posts p JOIN post_tags pt ON pt.post_id = p.id JOIN tags t ON t.id = pt.tag_id GROUP BY p.id HAVING count(*) > 2;

-- maintenance and what agents try
DELETE FROM sessions WHERE expires_at < now() - interval '30 days';
UPDATE users SET deleted_at = now() WHERE id = ANY($1::bigint[]);
DELETE FROM users;
DELETE FROM users WHERE id > 0;
UPDATE accounts SET balance = 0 WHERE true;
TRUNCATE audit_log;
DROP TABLE IF EXISTS staging_import;
WITH moved AS (DELETE FROM queue WHERE processed RETURNING *) INSERT INTO queue_archive SELECT * FROM moved;
SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE state = 'idle in transaction' AND state_change < now() - interval '1 hour';
EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM orders WHERE customer_id = 42;
DO $$BEGIN DELETE FROM tmp_rows WHERE created_at < now() - interval '1 day'; END$$;
SET statement_timeout = '30s';
SHOW search_path;
