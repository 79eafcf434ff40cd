/* test_cli_errors.c — every command refuses bad input with a message that says what is wrong and the README's exit code. */
#include "capture.h"
#include "cli.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char empty[] = "/tmp/backstop-test-cli-errors-XXXXXX";
static char empty_url[128];

/* cli_main as the binary runs it (argv[0] "backstop"), its stdout in out, its stderr in errout. */
static int
run(const char *const *args)
{
	char *argv[32];
	int argc = 0;
	capture c;
	int rc;

	argv[argc++] = "backstop";
	for (int i = 0; args[i]; i++)
		argv[argc++] = strcmp(args[i], "EMPTY") == 0 ? empty_url : (char *) args[i];
	argv[argc] = NULL;
	capture_begin(&c);
	rc = cli_main(argc, argv);
	capture_end(&c);
	return rc;
}

typedef struct ecase
{
	const char *args[12];
	int rc;
	const char *msg;
} ecase;

/* EMPTY: a file:// URL of an empty directory (no archive there). */
static const ecase cases[] = {
	{{"nosuchcommand", NULL}, EXIT_USAGE, "backstop: unknown command \"nosuchcommand\""},
	{{"help", "nosuch", NULL}, EXIT_USAGE, "unknown command \"nosuch\""},
	{{"classify", NULL}, EXIT_USAGE, "backstop classify: ERROR: no SQL given (an argument, -f FILE)"},
	{{"classify", "--bogus", NULL}, EXIT_USAGE, "backstop classify: ERROR: unknown option \"--bogus\""},
	{{"classify", "SELECT", "1", NULL}, EXIT_USAGE, "unexpected argument \"1\" (quote the SQL as one argument)"},
	{{"classify", "-f", "/nonexistent/x.sql", NULL}, EXIT_FAILURE_RUNTIME, "could not open \"/nonexistent/x.sql\""},
	{{"classify", "--policy", "/nonexistent/p.toml", "SELECT 1", NULL}, EXIT_USAGE,
	"could not open policy file \"/nonexistent/p.toml\""},
	{{"exec", NULL}, EXIT_USAGE, "backstop exec: ERROR: --db is required"},
	{{"exec", "--db", "dbname=x", NULL}, EXIT_USAGE, "no SQL given (an argument, -f FILE or -c SQL)"},
	{{"exec", "--db", "dbname=x", "-c", NULL}, EXIT_USAGE, "option \"--command\" needs a value"},
	{{"drill", NULL}, EXIT_USAGE, "backstop drill: ERROR: --db is required"},
	{{"expire", NULL}, EXIT_USAGE, "no retention policy: give --keep-window and/or --keep-bases"},
	{{"expire", "--keep-bases", "0", NULL}, EXIT_USAGE, "invalid value for keep_bases: \"0\" (must be between 1 and 1000000)"},
	{{"expire", "--keep-window", "1x", NULL}, EXIT_USAGE, "invalid value for keep_window: \"1x\" (expected a duration such as 10s)"},
	{{"expire", "--storage", "EMPTY", "--keep-bases", "1", NULL}, EXIT_FAILURE_RUNTIME, "backstop expire: ERROR: no archive at file://"},
	{{"checkpoint", NULL}, EXIT_USAGE, "backstop checkpoint: ERROR: --table is required"},
	{{"checkpoint", "--table", "t", "--timeout", "abc", NULL}, EXIT_USAGE, "invalid value for timeout: \"abc\""},
	{{"checkpoint", "--table", "t", "--listen", "127.0.0.1:1", NULL}, EXIT_FAILURE_RUNTIME,
	"could not reach the archiver at 127.0.0.1:1"},
	{{"recover", NULL}, EXIT_USAGE, "backstop recover: ERROR: one of --table or --relid is required"},
	{{"recover", "--table", "t", NULL}, EXIT_USAGE, "give exactly one of --to-lsn, --to-time, --to-xid and --latest"},
	{{"recover", "--table", "t", "--to-lsn", "0/1", "--to-time", "now", NULL}, EXIT_USAGE, "give exactly one of"},
	{{"recover", "--table", "t", "--to-lsn", "zz", NULL}, EXIT_USAGE, "invalid value for to_lsn: \"zz\": expected an LSN such as 0/1A2B3C4"},
	{{"recover", "--table", "t", "--storage", "EMPTY", "--db", "dbname=x", "--latest", NULL}, EXIT_FAILURE_RUNTIME,
	"table \"public.t\" is not in the archive at file://"},
	{{"changes", "--storage", "EMPTY", "--table", "t", NULL}, EXIT_FAILURE_RUNTIME,
	"(the archive holds no tables)"},
	{{"changes", "--storage", "s3://bucket/x", "--table", "t", NULL}, EXIT_USAGE,
	"no S3 credentials: set s3_access_key_id and s3_secret_access_key"},
	{{"changes", "--storage", "EMPTY", NULL}, EXIT_FAILURE_RUNTIME, "backstop changes: ERROR: no archive at file://"},
	{{"info", "--storage", "EMPTY", NULL}, EXIT_FAILURE_RUNTIME, "backstop info: ERROR: no archive at file://"},
	{{"verify", "--storage", "EMPTY", "x", NULL}, EXIT_USAGE, "backstop verify: ERROR: unexpected argument \"x\""},
	{{"doctor", "extra", NULL}, EXIT_USAGE, "backstop doctor: ERROR: unexpected argument \"extra\""},
	{{NULL}, 0, NULL}
};

int
main(void)
{
	/* Nothing from the caller's environment may answer for the test. */
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");
	unsetenv("BACKSTOP_CONTROL_TOKEN");
	if (mkdtemp(empty) == NULL)
		return 1;
	snprintf(empty_url, sizeof(empty_url), "file://%s", empty);
	for (const ecase *c = cases; c->args[0]; c++)
	{
		int rc = run(c->args);
		char what[256] = "";

		for (int i = 0; c->args[i]; i++)
			snprintf(what + strlen(what), sizeof(what) - strlen(what), "%s%s", i ? " " : "", c->args[i]);
		if (!ok(rc == c->rc && strstr(errout, c->msg), "%s: exit %d, says why", what, c->rc))
			printf("#   exit %d, stderr:\n%s", rc, errout);
	}
	rmdir(empty);
	return done_testing();
}
