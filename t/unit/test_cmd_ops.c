/* test_cmd_ops.c — the operational commands (archive, drill, exec) up to their first connection: usage, configuration and connection errors, exit codes, and what a failed drill records. */
#include "archive_fixture.h"
#include "drillstate.h"
#include "tap.h"

#include <jansson.h>
#include <sys/stat.h>

/* A server that cannot be there: libpq fails at once (no such socket directory). */
#define NO_SERVER "host=/nonexistent-backstop-test-dir"
#define NO_SERVER_MSG "could not connect to PostgreSQL: connection to server on socket \"/nonexistent-backstop-test-dir/.s.PGSQL.5432\" failed: No such file or directory"

static char dir[] = "/tmp/backstop-test-cmd-ops-XXXXXX";
static char data_dir[256];

static bool
starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
}

static json_t *
load_json(const char *path)
{
	json_error_t jerr;

	return json_load_file(path, 0, &jerr);
}

/* One refusal: the exit code, and stderr starting with msg. */
static void
refused(const char *const *args, int rc, const char *msg, const char *what)
{
	int got = run_backstop(args);

	is_int(got, rc, "%s: exit %d", what, rc);
	ok(starts_with(errout, msg), "%s: the message", what);
	if (got != rc || !starts_with(errout, msg))
		show();
}

static void
test_archive(void)
{
	char storage2[400], crypt_dir[300], path[400], pp[400];

	refused((const char *const[]) {"archive", "--storage", url, "extra", NULL}, EXIT_USAGE,
			"backstop archive: ERROR: unexpected argument \"extra\"\nUsage: backstop archive --db CONNINFO", "an argument");
	refused((const char *const[]) {"archive", "--storage", url, "--data-dir", data_dir, "--tables", "public.t", NULL},
			EXIT_USAGE, "backstop archive: ERROR: --db is required\n", "no --db");
	refused((const char *const[]) {"archive", "--storage", url, "--data-dir", data_dir, "--db", NO_SERVER, NULL},
			EXIT_USAGE, "backstop archive: ERROR: give --tables schema.table[,...] or --all-tables\n", "no tables");
	refused((const char *const[]) {"archive", "--storage", url, "--data-dir", data_dir, "--db", NO_SERVER, "--tables",
			"public.t", "--expire-interval", "1h", NULL}, EXIT_USAGE,
			"backstop archive: ERROR: --expire-interval needs a retention policy: --keep-window and/or --keep-bases\n",
			"expiry without a policy (the archiver's refusal is a usage error)");
	/* the server is not there: a failure of the run, with libpq's reason */
	refused((const char *const[]) {"archive", "--storage", url, "--data-dir", data_dir, "--db", NO_SERVER, "--tables",
			"public.t", NULL}, EXIT_FAILURE_RUNTIME, "backstop archive: ERROR: " NO_SERVER_MSG, "no server");
	refused((const char *const[]) {"archive", "--storage", url, "--data-dir", data_dir, "--db", NO_SERVER, "--drop", NULL},
			EXIT_FAILURE_RUNTIME, "backstop archive: ERROR: " NO_SERVER_MSG, "--drop, no server");
	/* a usage error, as without --drop */
	refused((const char *const[]) {"archive", "--storage", url, "--data-dir", data_dir, "--drop", NULL},
			EXIT_USAGE, "backstop archive: ERROR: --db is required\n", "--drop without --db");

	/* an encrypted archive without its key: a configuration error, before any connection */
	snprintf(crypt_dir, sizeof(crypt_dir), "%s/crypt", dir);
	mkdir(crypt_dir, 0700);
	snprintf(path, sizeof(path), "%s/encryption.json", crypt_dir);
	write_file(path, "{\"format\": 99}");
	snprintf(storage2, sizeof(storage2), "file://%s", crypt_dir);
	refused((const char *const[]) {"archive", "--storage", storage2, "--data-dir", data_dir, "--db", NO_SERVER, "--tables",
			"public.t", NULL}, EXIT_USAGE,
			"backstop archive: ERROR: the archive at file:///", "an encrypted archive, no key");
	ok(strstr(errout, "is encrypted (it has encryption.json): configure its key") != NULL, "says what to configure");
	/* with a key, an encryption.json that is not ours is a damaged archive */
	snprintf(pp, sizeof(pp), "%s/passphrase", dir);
	write_file(pp, "a passphrase long enough for the test\n");
	chmod(pp, 0600);
	refused((const char *const[]) {"archive", "--storage", storage2, "--data-dir", data_dir, "--db", NO_SERVER, "--tables",
			"public.t", "--encryption-passphrase-file", pp, NULL}, EXIT_INTEGRITY,
			"backstop archive: ERROR: encryption.json: member \"format\" must be 1", "a damaged encryption.json");
}

static void
test_drill(void)
{
	char path[400], file[300];
	json_t *j;

	refused((const char *const[]) {"drill", "--storage", url, "--db", NO_SERVER, "extra", NULL}, EXIT_USAGE,
			"backstop drill: ERROR: unexpected argument \"extra\"\nUsage: backstop drill", "an argument");
	refused((const char *const[]) {"drill", "--storage", url, "--db", NO_SERVER, "--table", "public.t", "--scratch", NULL},
			EXIT_USAGE, "backstop drill: ERROR: give --table or --scratch, not both\n", "--table and --scratch");
	refused((const char *const[]) {"drill", "--storage", url, "--db", NO_SERVER, "--listen", "", NULL}, EXIT_USAGE,
			"backstop drill: ERROR: a scratch drill needs the running archiver's --listen\n", "scratch with an empty --listen");
	refused((const char *const[]) {"drill", "--storage", url, "--db", NO_SERVER, "--listen", "off", NULL}, EXIT_USAGE,
			"backstop drill: ERROR: a scratch drill needs the running archiver's --listen\n", "scratch with --listen off");
	refused((const char *const[]) {"drill", "--storage", url, "--db", NO_SERVER, "--table", "public.t", "--control-token",
			"abcdefghijklmnopqrstuvwxyz0123456789", NULL}, EXIT_USAGE,
			"backstop drill: ERROR: --control-token is refused: a command line shows in ps", "a token on the command line");

	/* no server: the drill fails (exit 1), says why, and records the failure for /metrics */
	snprintf(path, sizeof(path), "%s/" DRILLSTATE_FILE, data_dir);
	is_int(run_backstop((const char *const[]) {"drill", "--storage", url, "--data-dir", data_dir, "--db", NO_SERVER,
		   "--table", "public.t", NULL}), EXIT_FAILURE_RUNTIME, "table drill, no server: exit 1");
	ok(starts_with(out, "drill FAILED: public.t (table)\n  phases:     \n  error:       " NO_SERVER_MSG), "says which table failed and why");
	if (!starts_with(out, "drill FAILED: public.t (table)\n"))
		show();
	j = load_json(path);
	ok(json_is_false(json_object_get(j, "ok")) && json_is_integer(json_object_get(j, "time")) &&
	   strcmp(json_string_value(json_object_get(j, "mode")) ? json_string_value(json_object_get(j, "mode")) : "", "table") == 0 &&
	   json_object_get(j, "rto_seconds") == NULL, "drill-state.json: a failed table drill, no RTO");
	json_decref(j);

	/* --json: the same outcome as JSON */
	is_int(run_backstop((const char *const[]) {"drill", "--storage", url, "--data-dir", data_dir, "--db", NO_SERVER,
		   "--listen", "127.0.0.1:1", "--json", NULL}), EXIT_FAILURE_RUNTIME, "scratch drill, no server, --json: exit 1");
	{
		json_error_t jerr;

		j = json_loads(out, 0, &jerr);
		ok(json_is_object(j), "stdout is JSON");
		is_str(json_string_value(json_object_get(j, "mode")), "scratch", "mode scratch");
		ok(json_is_false(json_object_get(j, "ok")), "ok false");
		is_int(json_integer_value(json_object_get(j, "exit_code")), EXIT_FAILURE_RUNTIME, "exit_code 1");
		ok(json_is_string(json_object_get(j, "error")) && starts_with(json_string_value(json_object_get(j, "error")), NO_SERVER_MSG),
		   "error: why");
		ok(json_object_get(j, "table") == NULL, "no table: none was made");
		json_decref(j);
	}
	j = load_json(path);
	is_str(json_string_value(json_object_get(j, "mode")), "scratch", "drill-state.json: the scratch drill replaced it");
	json_decref(j);

	/* the result cannot be recorded: a warning, the drill's own outcome stands */
	snprintf(file, sizeof(file), "%s/not-a-dir", dir);
	write_file(file, "x");
	is_int(run_backstop((const char *const[]) {"drill", "--storage", url, "--data-dir", file, "--db", NO_SERVER, "--table",
		   "public.t", NULL}), EXIT_FAILURE_RUNTIME, "data_dir is a file: still exit 1");
	ok(strstr(errout, "backstop drill: WARNING: the result was not recorded for /metrics: could not create \"") != NULL &&
	   strstr(errout, "/not-a-dir/" DRILLSTATE_FILE ".tmp.") != NULL, "warns that the result was not recorded");
	if (strstr(errout, "WARNING") == NULL)
		show();
}

static void
test_exec(void)
{
	char conf[300], pol[300];

	refused((const char *const[]) {"exec", "--db", NO_SERVER, "SELECT 1", NULL}, EXIT_USAGE,
			"backstop exec: ERROR: unexpected argument \"SELECT 1\" (give the SQL with -c or -f)\n", "SQL as an argument");
	/* what runs is said on the command line */
	setenv("BACKSTOP_COMMAND", "DROP TABLE t", 1);
	refused((const char *const[]) {"exec", "--db", NO_SERVER, NULL}, EXIT_USAGE,
			"backstop exec: ERROR: the SQL to run must be given on the command line (-c or -f), not as command from BACKSTOP_COMMAND\n",
			"SQL from the environment");
	unsetenv("BACKSTOP_COMMAND");
	snprintf(conf, sizeof(conf), "%s/exec.conf", dir);
	write_file(conf, "file = /tmp/whatever.sql\n");
	refused((const char *const[]) {"exec", "--config", conf, "--db", NO_SERVER, NULL}, EXIT_USAGE,
			"backstop exec: ERROR: the SQL to run must be given on the command line (-c or -f), not as file from ",
			"SQL file from the configuration file");
	ok(strstr(errout, "/exec.conf:1\n") != NULL, "names the file and line");
	refused((const char *const[]) {"exec", "--db", NO_SERVER, "-f", "/nonexistent-backstop-test.sql", NULL},
			EXIT_FAILURE_RUNTIME, "backstop exec: ERROR: could not open \"/nonexistent-backstop-test.sql\": No such file or directory\n",
			"an SQL file that is not there (a system error: exit 1)");
	refused((const char *const[]) {"exec", "--db", NO_SERVER, "-c", "SELECT 1", "--policy", "/nonexistent-backstop-test.pol", NULL},
			EXIT_USAGE, "backstop exec: ERROR: could not open policy file \"/nonexistent-backstop-test.pol\": No such file or directory\n",
			"a policy file that is not there");
	snprintf(pol, sizeof(pol), "%s/bad.pol", dir);
	write_file(pol, "this is not a rule\n");
	refused((const char *const[]) {"exec", "--db", NO_SERVER, "-c", "SELECT 1", "--policy", pol, NULL}, EXIT_USAGE,
			"backstop exec: ERROR: ", "a policy file that does not parse");
	ok(strstr(errout, "/bad.pol:1") != NULL, "names the policy file's line: %s", errout);
	refused((const char *const[]) {"exec", "--db", NO_SERVER, "-c", "SELECT 1", "--control-token",
			"abcdefghijklmnopqrstuvwxyz0123456789", NULL}, EXIT_USAGE,
			"backstop exec: ERROR: --control-token is refused: a command line shows in ps", "a token on the command line");
	refused((const char *const[]) {"exec", "--db", NO_SERVER, "-c", "SELECT 1", NULL}, EXIT_FAILURE_RUNTIME,
			"backstop exec: ERROR: " NO_SERVER_MSG, "no server: nothing runs");
	is_str(out, "", "nothing on stdout");
}

int
main(void)
{
	if (fixture_open_commands(dir, data_dir, sizeof(data_dir)) != BS_OK)
		return 1;
	test_archive();
	test_drill();
	test_exec();
	fixture_close(dir);
	return done_testing();
}
