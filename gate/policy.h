/* policy.h — the gate's policy: level, principal, environment and table patterns mapped to an action. */
#ifndef BACKSTOP_POLICY_H
#define BACKSTOP_POLICY_H

#include <stdbool.h>

#include "error.h"
#include "gate.h"

/* Actions, least strict first: the strictest one that applies wins. */
typedef enum policy_action
{
	POLICY_ALLOW = 0,			/* run it */
	POLICY_CHECKPOINT,			/* run it once a verified recovery point covers every target */
	POLICY_APPROVE,				/* hold for a human (refused until the gateway can hold) */
	POLICY_REFUSE				/* never */
} policy_action;

const char *policy_action_name(policy_action a);

typedef struct policy_rule
{
	char *name;
	int line;
	bool levels[GATE_NLEVELS];	/* levels it applies to */
	char **principals;			/* fnmatch patterns; NULL: any */
	char **environments;
	char **tables;				/* "schema.table" patterns; NULL: every target and the statement itself */
	policy_action action;
} policy_rule;

typedef struct policy
{
	policy_action defaults[GATE_NLEVELS];
	policy_rule *rules;
	int nrules;
	char **trusted_functions;	/* "schema.name" patterns of harmless functions (NULL-terminated) */
	char *origin;				/* file name, or "built-in defaults" */
} policy;

/* The built-in policy: SAFE, LOW, MEDIUM allow; HIGH checkpoint; CRITICAL refuse. */
policy *policy_default(void);

/*
 * Parse a policy from text in the configuration file's INI form; origin names it in errors
 * ("FILE:LINE: ...").  Sections: [defaults] (safe/low/medium/high/critical = ACTION,
 * trusted_functions = PATTERNS) and [rule NAME] (level, principal, environment, tables,
 * action).  Rules apply in file order.
 */
int policy_parse(const char *text, const char *origin, policy **out, bs_error *err);
void policy_free(policy *p);

/* What the policy decides for one classified statement. */
typedef struct policy_decision
{
	policy_action action;
	char *why;					/* "rule NAME (FILE:LINE)" or "default for LEVEL", and refusal reasons */
	bool *cover;				/* per target: a recovery point must cover it (action checkpoint) */
	int ntargets;
} policy_decision;

void policy_decide(const policy *p, const gate_stmt *st, const char *principal, const char *environment,
				   policy_decision *out);
void policy_decision_clear(policy_decision *d);

/* The effective rules, one per line, for `backstop policy check`. */
char *policy_describe(const policy *p);

#endif
