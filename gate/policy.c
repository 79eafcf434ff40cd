/* policy.c — the gate's policy: level, principal, environment and table patterns mapped to an action. */
#include "policy.h"
#include "inifile.h"
#include "strbuf.h"

#include <ctype.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const action_names[] = {"allow", "checkpoint", "approve", "refuse"};

const char *
policy_action_name(policy_action a)
{
	if ((int) a < 0 || a > POLICY_REFUSE)
		return "?";
	return action_names[a];
}

static int
parse_action(const char *s, policy_action *out)
{
	for (int i = 0; i <= POLICY_REFUSE; i++)
		if (strcasecmp(s, action_names[i]) == 0)
		{
			*out = (policy_action) i;
			return 0;
		}
	return -1;
}

policy *
policy_default(void)
{
	policy *p = xcalloc(1, sizeof(*p));

	p->defaults[GATE_SAFE] = POLICY_ALLOW;
	p->defaults[GATE_LOW] = POLICY_ALLOW;
	p->defaults[GATE_MEDIUM] = POLICY_ALLOW;
	p->defaults[GATE_HIGH] = POLICY_CHECKPOINT;
	p->defaults[GATE_CRITICAL] = POLICY_REFUSE;
	p->origin = xstrdup("built-in defaults");
	return p;
}

static void
free_list(char **l)
{
	for (int i = 0; l && l[i]; i++)
		free(l[i]);
	free(l);
}

void
policy_free(policy *p)
{
	if (p == NULL)
		return;
	for (int i = 0; i < p->nrules; i++)
	{
		free(p->rules[i].name);
		free_list(p->rules[i].principals);
		free_list(p->rules[i].environments);
		free_list(p->rules[i].tables);
	}
	free(p->rules);
	free_list(p->trusted_functions);
	free(p->origin);
	free(p);
}

/* "a, b ,c" -> {"a", "b", "c", NULL}; NULL when empty. */
static char **
split_list(const char *value)
{
	char *copy = xstrdup(value);
	char **out = NULL;
	int n = 0;

	for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ","))
	{
		char *t = ini_unquote(ini_trim(tok));

		if (*t == '\0')
			continue;
		out = xrealloc(out, sizeof(char *) * (size_t) (n + 2));
		out[n++] = xstrdup(t);
		out[n] = NULL;
	}
	free(copy);
	return out;
}

/* "high", "medium, high", ">= medium", "*" */
static int
parse_levels(const char *value, bool *levels)
{
	char *v = xstrdup(value);
	char *s = ini_trim(v);
	gate_level l;
	int rc = 0;

	memset(levels, 0, sizeof(bool) * GATE_NLEVELS);
	if (strcmp(s, "*") == 0 || strcasecmp(s, "any") == 0)
	{
		for (int i = 0; i < GATE_NLEVELS; i++)
			levels[i] = true;
	}
	else if (strncmp(s, ">=", 2) == 0 || strncmp(s, "<=", 2) == 0)
	{
		if (gate_level_parse(ini_trim(s + 2), &l) != 0)
			rc = -1;
		else
			for (int i = 0; i < GATE_NLEVELS; i++)
				levels[i] = s[0] == '>' ? i >= (int) l : i <= (int) l;
	}
	else
	{
		char **list = split_list(s);

		if (list == NULL)
			rc = -1;
		for (int i = 0; list && list[i]; i++)
		{
			if (gate_level_parse(list[i], &l) != 0)
				rc = -1;
			else
				levels[l] = true;
		}
		free_list(list);
	}
	free(v);
	return rc;
}

static int
finish_rule(policy_rule *r, const char *origin, bs_error *err)
{
	if (r == NULL)
		return BS_OK;
	if ((int) r->action < 0)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "%s:%d: rule \"%s\" has no action", origin, r->line, r->name);
	return BS_OK;
}

int
policy_parse(const char *text, const char *origin, policy **out, bs_error *err)
{
	policy *p = policy_default();
	char *copy = xstrdup(text);
	int lineno = 0;
	enum { SEC_NONE, SEC_DEFAULTS, SEC_RULE } section = SEC_NONE;
	policy_rule *rule = NULL;
	char *line;
	char *next;

	free(p->origin);
	p->origin = xstrdup(origin);
	*out = NULL;
	for (line = copy; line; line = next)
	{
		char *s, *key, *value;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		s = ini_trim(line);
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		if (*s == '[')
		{
			char *end = strchr(s, ']');
			char *name;

			if (end == NULL || ini_trim(end + 1)[0] != '\0')
			{
				error_set(err, ERRCODE_SYNTAX, "%s:%d: syntax error: expected \"[defaults]\" or \"[rule NAME]\"", origin, lineno);
				goto fail;
			}
			*end = '\0';
			name = ini_trim(s + 1);
			if (finish_rule(rule, origin, err) != BS_OK)
				goto fail;
			rule = NULL;
			if (strcasecmp(name, "defaults") == 0)
				section = SEC_DEFAULTS;
			else if (strncasecmp(name, "rule", 4) == 0 && (name[4] == '\0' || isspace((unsigned char) name[4])))
			{
				char *rn = ini_unquote(ini_trim(name + 4));

				if (*rn == '\0')
				{
					error_set(err, ERRCODE_SYNTAX, "%s:%d: a rule needs a name: [rule NAME]", origin, lineno);
					goto fail;
				}
				for (int i = 0; i < p->nrules; i++)
					if (strcmp(p->rules[i].name, rn) == 0)
					{
						error_set(err, ERRCODE_INVALID_PARAMETER, "%s:%d: rule \"%s\" is already defined at line %d",
								  origin, lineno, rn, p->rules[i].line);
						goto fail;
					}
				p->rules = xrealloc(p->rules, sizeof(policy_rule) * (size_t) (p->nrules + 1));
				rule = &p->rules[p->nrules++];
				memset(rule, 0, sizeof(*rule));
				rule->name = xstrdup(rn);
				rule->line = lineno;
				rule->action = (policy_action) -1;
				for (int i = 0; i < GATE_NLEVELS; i++)
					rule->levels[i] = true;
				section = SEC_RULE;
			}
			else
			{
				error_set(err, ERRCODE_INVALID_PARAMETER, "%s:%d: unknown section \"[%s]\" (expected [defaults] or [rule NAME])",
						  origin, lineno, name);
				goto fail;
			}
			continue;
		}
		if (!ini_key_value(s, &key, &value))
		{
			error_set(err, ERRCODE_SYNTAX, "%s:%d: syntax error: expected \"key = value\"", origin, lineno);
			goto fail;
		}
		for (char *k = key; *k; k++)
			*k = *k == '-' ? '_' : (char) tolower((unsigned char) *k);
		if (section == SEC_NONE)
		{
			error_set(err, ERRCODE_SYNTAX, "%s:%d: \"%s\" outside a section ([defaults] or [rule NAME])", origin, lineno, key);
			goto fail;
		}
		if (section == SEC_DEFAULTS)
		{
			gate_level l;
			policy_action a;

			if (strcmp(key, "trusted_functions") == 0)
			{
				free_list(p->trusted_functions);
				p->trusted_functions = split_list(value);
			}
			else if (gate_level_parse(key, &l) == 0)
			{
				if (parse_action(value, &a) != 0)
				{
					error_set(err, ERRCODE_INVALID_PARAMETER, "%s:%d: invalid action \"%s\" (allow, checkpoint, approve or refuse)",
							  origin, lineno, value);
					goto fail;
				}
				p->defaults[l] = a;
			}
			else
			{
				error_set(err, ERRCODE_INVALID_PARAMETER,
						  "%s:%d: unknown key \"%s\" in [defaults] (safe, low, medium, high, critical, trusted_functions)",
						  origin, lineno, key);
				goto fail;
			}
			continue;
		}
		/* a rule */
		if (strcmp(key, "level") == 0 || strcmp(key, "levels") == 0)
		{
			if (parse_levels(value, rule->levels) != 0)
			{
				error_set(err, ERRCODE_INVALID_PARAMETER,
						  "%s:%d: invalid level \"%s\" (SAFE, LOW, MEDIUM, HIGH, CRITICAL, a list, >= LEVEL or *)",
						  origin, lineno, value);
				goto fail;
			}
		}
		else if (strcmp(key, "principal") == 0 || strcmp(key, "principals") == 0)
		{
			free_list(rule->principals);
			rule->principals = split_list(value);
		}
		else if (strcmp(key, "environment") == 0 || strcmp(key, "environments") == 0)
		{
			free_list(rule->environments);
			rule->environments = split_list(value);
		}
		else if (strcmp(key, "tables") == 0 || strcmp(key, "table") == 0)
		{
			free_list(rule->tables);
			rule->tables = split_list(value);
		}
		else if (strcmp(key, "action") == 0)
		{
			if (parse_action(value, &rule->action) != 0)
			{
				error_set(err, ERRCODE_INVALID_PARAMETER, "%s:%d: invalid action \"%s\" (allow, checkpoint, approve or refuse)",
						  origin, lineno, value);
				goto fail;
			}
		}
		else
		{
			error_set(err, ERRCODE_INVALID_PARAMETER,
					  "%s:%d: unknown key \"%s\" in a rule (level, principal, environment, tables, action)",
					  origin, lineno, key);
			goto fail;
		}
	}
	if (finish_rule(rule, origin, err) != BS_OK)
		goto fail;
	free(copy);
	*out = p;
	return BS_OK;
fail:
	free(copy);
	policy_free(p);
	return BS_ERR;
}

static bool
match_any(char **patterns, const char *value)
{
	if (patterns == NULL)
		return true;
	if (value == NULL)
		return false;
	for (int i = 0; patterns[i]; i++)
		if (fnmatch(patterns[i], value, 0) == 0)
			return true;
	return false;
}

/* A table pattern against a target: "schema.table" patterns need the schema (resolved, or
 * as written); patterns without a dot match the name in any schema. */
static bool
match_table(char **patterns, const gate_target *t)
{
	const char *schema = t->resolved && t->exists ? t->nspname : t->schema;
	const char *name = t->resolved && t->exists ? t->relname : t->name;
	strbuf full = STRBUF_INIT;
	bool m = false;

	if (t->kind != GATE_TARGET_RELATION)
		return false;
	if (schema)
		strbuf_printf(&full, "%s.%s", schema, name);
	for (int i = 0; patterns[i] && !m; i++)
	{
		if (strchr(patterns[i], '.') == NULL)
			m = fnmatch(patterns[i], name, 0) == 0;
		else if (schema)
			m = fnmatch(patterns[i], full.data, 0) == 0;
	}
	strbuf_free(&full);
	return m;
}

/* The first rule for this level that matches (target NULL: the statement as a whole). */
static policy_action
first_match(const policy *p, gate_level level, const gate_target *target, const char *principal,
			const char *environment, strbuf *why)
{
	for (int i = 0; i < p->nrules; i++)
	{
		const policy_rule *r = &p->rules[i];

		if (!r->levels[level] || !match_any(r->principals, principal) || !match_any(r->environments, environment))
			continue;
		if (r->tables && (target == NULL || !match_table(r->tables, target)))
			continue;
		strbuf_reset(why);
		strbuf_printf(why, "rule \"%s\" (%s:%d)", r->name, p->origin, r->line);
		return r->action;
	}
	strbuf_reset(why);
	strbuf_printf(why, "default for %s", gate_level_name(level));
	return p->defaults[level];
}

void
policy_decide(const policy *p, const gate_stmt *st, const char *principal, const char *environment,
			  policy_decision *out)
{
	strbuf why = STRBUF_INIT;
	strbuf best = STRBUF_INIT;
	gate_level whole = GATE_SAFE;
	bool has_whole = false;
	policy_action a;

	memset(out, 0, sizeof(*out));
	out->ntargets = st->ntargets;
	out->cover = st->ntargets ? xcalloc((size_t) st->ntargets, sizeof(bool)) : NULL;

	/* The statement as a whole, when something in it names no target: the level of those reasons. */
	for (int i = 0; i < st->nreasons; i++)
		if (st->reasons[i].target < 0)
		{
			whole = st->reasons[i].level > whole ? st->reasons[i].level : whole;
			has_whole = true;
		}
	if (st->ntargets == 0)
	{
		whole = st->level;
		has_whole = true;
	}
	if (has_whole)
	{
		out->action = first_match(p, whole, NULL, principal, environment, &why);
		strbuf_append_str(&best, why.data);
	}
	for (int i = 0; i < st->ntargets; i++)
	{
		a = first_match(p, st->targets[i].level, &st->targets[i], principal, environment, &why);
		if (a == POLICY_CHECKPOINT)
			out->cover[i] = true;
		if (a > out->action || (!has_whole && i == 0))
		{
			char *dn = gate_target_display(&st->targets[i]);

			out->action = a;
			strbuf_reset(&best);
			strbuf_printf(&best, "%s, for %s", why.data, dn);
			free(dn);
		}
	}
	if (out->action != POLICY_CHECKPOINT && out->cover)
		memset(out->cover, 0, sizeof(bool) * (size_t) st->ntargets);
	if (st->refuse)
	{
		out->action = POLICY_REFUSE;
		strbuf_reset(&best);
		strbuf_append_str(&best, "the gate cannot decide it");
	}
	else if (out->action == POLICY_CHECKPOINT && st->unknown_targets)
	{
		out->action = POLICY_REFUSE;
		strbuf_printf(&best, "; refused: it can change tables the gate cannot name, so no recovery point can cover them");
	}
	out->why = strbuf_detach(&best, NULL);
	strbuf_free(&why);
}

void
policy_decision_clear(policy_decision *d)
{
	free(d->why);
	free(d->cover);
	memset(d, 0, sizeof(*d));
}

static void
append_list(strbuf *sb, const char *label, char **list)
{
	if (list == NULL)
		return;
	strbuf_printf(sb, "; %s ", label);
	for (int i = 0; list[i]; i++)
		strbuf_printf(sb, "%s%s", i ? ", " : "", list[i]);
}

char *
policy_describe(const policy *p)
{
	strbuf sb = STRBUF_INIT;

	strbuf_printf(&sb, "policy: %s\n", p->origin);
	for (int i = 0; i < p->nrules; i++)
	{
		const policy_rule *r = &p->rules[i];
		bool all = true;
		bool first = true;

		strbuf_printf(&sb, "rule \"%s\" (line %d): level ", r->name, r->line);
		for (int l = 0; l < GATE_NLEVELS; l++)
			all = all && r->levels[l];
		if (all)
			strbuf_append_str(&sb, "any");
		for (int l = 0; l < GATE_NLEVELS && !all; l++)
			if (r->levels[l])
			{
				strbuf_printf(&sb, "%s%s", first ? "" : ", ", gate_level_name((gate_level) l));
				first = false;
			}
		append_list(&sb, "principal", r->principals);
		append_list(&sb, "environment", r->environments);
		append_list(&sb, "tables", r->tables);
		strbuf_printf(&sb, " -> %s\n", policy_action_name(r->action));
	}
	strbuf_append_str(&sb, "otherwise:");
	for (int l = 0; l < GATE_NLEVELS; l++)
		strbuf_printf(&sb, " %s %s%s", gate_level_name((gate_level) l), policy_action_name(p->defaults[l]),
					  l + 1 < GATE_NLEVELS ? "," : "\n");
	if (p->trusted_functions)
	{
		strbuf_append_str(&sb, "trusted functions:");
		for (int i = 0; p->trusted_functions[i]; i++)
			strbuf_printf(&sb, "%s %s", i ? "," : "", p->trusted_functions[i]);
		strbuf_append_char(&sb, '\n');
	}
	strbuf_append_str(&sb, "a statement's action is the strictest one among its targets and itself\n");
	return strbuf_detach(&sb, NULL);
}
