/* test_policy.c — unit tests of the gate's policy: parsing, errors, and the decision per statement. */
#include "gate.h"
#include "policy.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

static gate_result *
classify(const char *sql)
{
	gate_result *r = NULL;
	bs_error err;

	if (gate_classify(sql, NULL, &r, &err) != BS_OK)
		return NULL;
	return r;
}

static policy_action
decide(const policy *p, const char *sql, const char *principal, const char *env, char **why, int *ncover)
{
	gate_result *r = classify(sql);
	policy_decision d;
	policy_action a;

	policy_decide(p, &r->stmts[0], principal, env, &d);
	a = d.action;
	if (why)
		*why = strdup(d.why);
	if (ncover)
	{
		*ncover = 0;
		for (int i = 0; i < d.ntargets; i++)
			*ncover += d.cover[i];
	}
	policy_decision_clear(&d);
	gate_result_free(r);
	return a;
}

static void
test_defaults(void)
{
	policy *p = policy_default();
	char *why;
	int ncover;

	is_int(decide(p, "SELECT 1", NULL, NULL, NULL, NULL), POLICY_ALLOW, "default: SAFE allowed");
	is_int(decide(p, "UPDATE t SET a = 1 WHERE id = 2", NULL, NULL, NULL, NULL), POLICY_ALLOW, "default: LOW allowed");
	is_int(decide(p, "CREATE INDEX ON t (a)", NULL, NULL, NULL, NULL), POLICY_ALLOW, "default: MEDIUM allowed");
	is_int(decide(p, "DROP TABLE a, b", NULL, NULL, &why, &ncover), POLICY_CHECKPOINT, "default: HIGH needs a checkpoint");
	is_int(ncover, 2, "both dropped tables need a recovery point");
	is_str(why, "default for HIGH, for a", "the reason names the default and the target");
	free(why);
	is_int(decide(p, "WITH d AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM d", NULL, NULL, NULL, &ncover),
		   POLICY_CHECKPOINT, "a DELETE in a CTE needs a checkpoint");
	is_int(ncover, 1, "only the table it destroys needs the recovery point, not the one it inserts into");
	is_int(decide(p, "DROP SCHEMA s", NULL, NULL, NULL, NULL), POLICY_REFUSE, "default: CRITICAL refused");
	is_int(decide(p, "SELEC 1", NULL, NULL, &why, NULL), POLICY_REFUSE, "unparsable: refused");
	is_str(why, "the gate cannot decide it", "... because the gate cannot decide it");
	free(why);
	is_int(decide(p, "DO $$BEGIN EXECUTE format('DROP TABLE %I', 'x'); END$$", NULL, NULL, &why, NULL), POLICY_REFUSE,
		   "HIGH with tables the gate cannot name: no checkpoint can cover it, refused");
	ok(strstr(why, "cannot name") != NULL, "... saying so");
	free(why);
	policy_free(p);
}

static void
test_rules(void)
{
	const char *text =
		"# a policy\n"
		"[defaults]\n"
		"medium = checkpoint\n"
		"trusted_functions = audit.*, 'public.uuid_*'\n"
		"\n"
		"[rule scratch]\n"
		"level = HIGH\n"
		"tables = scratch.*, tmp_*\n"
		"action = allow\n"
		"\n"
		"[rule \"night jobs\"]\n"
		"principal = cron_*\n"
		"environment = staging, dev\n"
		"level = >= medium\n"
		"action = allow\n"
		"\n"
		"[rule agents]\n"
		"principal = agent_*\n"
		"level = low, medium\n"
		"action = approve\n"
		"[rule prod-refuse]\n"
		"environment = production\n"
		"level = *\n"
		"tables = billing.*\n"
		"action = refuse\n";
	policy *p = NULL;
	bs_error err;
	char *why, *desc;

	ok(policy_parse(text, "test.conf", &p, &err) == BS_OK, "a policy with defaults and four rules parses");
	if (p == NULL)
	{
		printf("# %s\n", err.message);
		return;
	}
	is_int(p->nrules, 4, "four rules");
	is_str(p->trusted_functions[1], "public.uuid_*", "trusted functions list, quotes removed");
	is_int(decide(p, "DROP TABLE scratch.x", NULL, NULL, &why, NULL), POLICY_ALLOW, "rule scratch allows DROP TABLE scratch.x");
	is_str(why, "rule \"scratch\" (test.conf:6), for scratch.x", "... naming the rule, file and line");
	free(why);
	is_int(decide(p, "DROP TABLE tmp_1", NULL, NULL, NULL, NULL), POLICY_ALLOW, "a pattern without a schema matches any schema");
	is_int(decide(p, "DROP TABLE scratch.x, public.y", NULL, NULL, NULL, NULL), POLICY_CHECKPOINT,
		   "one table outside the rule keeps the default checkpoint");
	is_int(decide(p, "DROP TABLE y", NULL, NULL, NULL, NULL), POLICY_CHECKPOINT,
		   "an unqualified unresolved name does not match schema.* patterns");
	is_int(decide(p, "CREATE INDEX ON t (a)", NULL, NULL, NULL, NULL), POLICY_CHECKPOINT, "[defaults] medium = checkpoint");
	is_int(decide(p, "DROP TABLE t", "cron_nightly", "staging", NULL, NULL), POLICY_ALLOW, "principal and environment both match");
	is_int(decide(p, "DROP TABLE t", "cron_nightly", "production", NULL, NULL), POLICY_CHECKPOINT,
		   "environment does not match: default");
	is_int(decide(p, "DROP TABLE t", NULL, "staging", NULL, NULL), POLICY_CHECKPOINT, "no principal: principal rules do not match");
	is_int(decide(p, "UPDATE t SET a = 1 WHERE id = 1", "agent_1", NULL, NULL, NULL), POLICY_APPROVE, "agents' LOW writes need approval");
	is_int(decide(p, "SELECT 1", "agent_1", NULL, NULL, NULL), POLICY_ALLOW, "agents' reads are allowed");
	is_int(decide(p, "UPDATE billing.inv SET a = 1 WHERE id = 1", NULL, "production", NULL, NULL), POLICY_REFUSE,
		   "a refuse rule on billing.* in production");
	is_int(decide(p, "SELECT * FROM billing.inv", NULL, "production", NULL, NULL), POLICY_ALLOW,
		   "table rules apply to targets (a read has none)");
	desc = policy_describe(p);
	ok(strstr(desc, "rule \"night jobs\" (line 11): level MEDIUM, HIGH, CRITICAL; principal cron_*; environment staging, dev -> allow") != NULL,
	   "describe: a rule with its levels, patterns and action");
	ok(strstr(desc, "otherwise: SAFE allow, LOW allow, MEDIUM checkpoint, HIGH checkpoint, CRITICAL refuse") != NULL,
	   "describe: the defaults");
	free(desc);
	policy_free(p);
}

static void
test_errors(void)
{
	static const struct
	{
		const char *text;
		const char *message;
	} bad[] = {
		{"[rule a]\nlevel = HUGE\naction = allow\n", "t.conf:2: invalid level \"HUGE\""},
		{"[rule a]\nlevel = high\n", "t.conf:1: rule \"a\" has no action"},
		{"[rule a]\naction = maybe\n", "t.conf:2: invalid action \"maybe\""},
		{"[rule a]\naction = allow\n[rule a]\naction = refuse\n", "t.conf:3: rule \"a\" is already defined at line 1"},
		{"[rules]\n", "t.conf:1: unknown section \"[rules]\""},
		{"[rule]\n", "t.conf:1: a rule needs a name"},
		{"action = allow\n", "t.conf:1: \"action\" outside a section"},
		{"[defaults]\nhigh = sometimes\n", "t.conf:2: invalid action \"sometimes\""},
		{"[defaults]\nextreme = allow\n", "t.conf:2: unknown key \"extreme\" in [defaults]"},
		{"[rule a]\ntablez = x\naction = allow\n", "t.conf:2: unknown key \"tablez\" in a rule"},
		{"[rule a]\njust text\n", "t.conf:2: syntax error"},
		{"[defaults\n", "t.conf:1: syntax error"},
		{"[rule a]\nlevel = >= extreme\naction = allow\n", "t.conf:2: invalid level \">= extreme\""},
		{"[rule a]\nlevel = high, , huge\naction = allow\n", "t.conf:2: invalid level \"high, , huge\""},
		{"[rule a]\nlevel = ,\naction = allow\n", "t.conf:2: invalid level \",\""},
		{"[rule a]\nlevel = high\n[rule b]\naction = allow\n", "t.conf:1: rule \"a\" has no action"},
		{NULL, NULL}
	};

	for (int i = 0; bad[i].text; i++)
	{
		policy *p = NULL;
		bs_error err;

		error_clear(&err);
		ok(policy_parse(bad[i].text, "t.conf", &p, &err) == BS_ERR && p == NULL &&
		   strncmp(err.message, bad[i].message, strlen(bad[i].message)) == 0,
		   "rejected: %s", bad[i].message);
		if (p == NULL && strncmp(err.message, bad[i].message, strlen(bad[i].message)) != 0)
			printf("#   got: %s\n", err.message);
		policy_free(p);
	}
	is_str(policy_action_name((policy_action) 99), "?", "an out-of-range action has no name");
}

int
main(void)
{
	test_defaults();
	test_rules();
	test_errors();
	return done_testing();
}
