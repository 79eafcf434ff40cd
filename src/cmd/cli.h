/* cli.h — the `backstop` command table, argument handling, help and exit codes. */
#ifndef BACKSTOP_CLI_H
#define BACKSTOP_CLI_H

#include "config.h"

/* Exit codes (documented in doc/backstop.1 and `backstop --help`). */
#define EXIT_OK 0
#define EXIT_FAILURE_RUNTIME 1	/* the operation failed (connection, storage, ...) */
#define EXIT_USAGE 2			/* bad command line or configuration */
#define EXIT_INTEGRITY 3		/* the archive is damaged or a validation failed */
#define EXIT_SLOT_LOST 4		/* archive: the replication slot is lost; restarting cannot help */

/* A command handler gets the effective configuration and its positional arguments
 * and returns an exit code. */
typedef int (*cli_handler) (bs_config *cfg, int argc, char **argv);

typedef struct cli_command
{
	const char *name;
	const char *summary;
	const char *usage;			/* argument synopsis */
	const char *description;	/* longer help text */
	const char *const *options;	/* option names accepted (NULL-terminated) */
	cli_handler handler;
} cli_command;

int cli_main(int argc, char **argv);

/* Fill derived defaults (data_dir, storage, spool_dir) after loading. */
void cli_apply_derived_defaults(bs_config *cfg);

/* Print text on one line of standard output, escaped (xstrdup_printable): names and values
 * from storage can neither start a line of their own nor drive the terminal. */
void cli_print_line(const char *text);

/* Print "backstop: ERROR: message" (redacted) for a failed command. */
void cli_report_error(const char *command, const bs_error *err);

/* A command's usage error (a missing or contradictory option, an unexpected argument), reported
 * as the CLI reports a bad option: "backstop CMD: ERROR: message", the command's usage line and
 * where to get help, on stderr.  Returns EXIT_USAGE: `return cli_usage_error(...)`. */
int cli_usage_error(const char *command, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

struct storage;

/* Open the configured storage for a command; on failure report it and return the exit code
 * (2 for a configuration error such as missing credentials, 1 otherwise), else EXIT_OK. */
int cli_open_storage(const char *command, const bs_config *cfg, struct storage **st);
/* The exit code of a failure: 2 for a missing or wrong encryption key (a configuration
 * error wherever it shows), otherwise the command's own choice. */
int cli_exit_code(const bs_error *err, int otherwise);

#endif
