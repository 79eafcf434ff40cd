/* cmd_classify.h — `backstop classify` and `backstop policy check`: the gate's verdict on SQL, without running it. */
#ifndef BACKSTOP_CMD_CLASSIFY_H
#define BACKSTOP_CMD_CLASSIFY_H

#include <jansson.h>
#include <stddef.h>

#include "config.h"
#include "error.h"
#include "gate.h"
#include "policy.h"

int cmd_classify(bs_config *cfg, int argc, char **argv);
int cmd_policy(bs_config *cfg, int argc, char **argv);

/* Exit code of `backstop classify` for the highest level: 0 SAFE, 4 LOW, 5 MEDIUM, 6 HIGH,
 * 7 CRITICAL (and refused); 1 and 2 keep their usual meaning. */
int cmd_classify_exit_code(const gate_result *r);

/* Shared with `backstop exec`. */
/* The SQL of a command: the one positional argument, or --file (FILE or - for stdin), or
 * --command when take_command.  *origin names it ("argument", the file name). */
int cmd_classify_read_sql(const bs_config *cfg, int argc, char **argv, bool take_command,
						  char **sql, size_t *len, bs_error *err);
/* --policy FILE, else the built-in defaults. */
int cmd_classify_load_policy(const bs_config *cfg, policy **out, bs_error *err);
/* Print one statement's verdict (text form). */
void cmd_classify_print_stmt(int index, const char *sql, const gate_stmt *st, const policy_decision *d);
/* The decision record logged for a statement (and kept in --json output). */
json_t *cmd_classify_record(const char *sql, const gate_stmt *st, const policy_decision *d,
							const char *principal, const char *environment);
/* Short SHA-256 of a statement's text, for logs and approvals. */
void cmd_classify_hash(const char *text, size_t len, char out[17]);

#endif
