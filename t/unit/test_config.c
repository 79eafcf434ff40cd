/* test_config.c — unit tests for configuration parsing, precedence and redaction. */
#include "config.h"
#include "redact.h"
#include "strbuf.h"
#include "tap.h"
#include "validate.h"

#include <ctype.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

/* A value shown in a test's description, on one line. */
static const char *
shown(const char *s)
{
	static char buf[4][256];
	static int k;
	char *b = buf[k++ % 4];
	size_t i;

	for (i = 0; s[i] && i < sizeof(buf[0]) - 1; i++)
		b[i] = (unsigned char) s[i] < 0x20 ? '?' : s[i];
	b[i] = '\0';
	return b;
}

/* The ids as written in config_list.h, to check each against its option's name. */
static const char *const id_names[] = {
#define CONFIG_OPTION(id, name, type, def, enum_values, secret, help) #id,
#include "config_list.h"
#undef CONFIG_OPTION
};

/* Run a getter in a child: true when it aborted with an internal error naming the option
 * (stderr checked for want), false when it returned. */
static bool
getter_aborts(const bs_config *cfg, int which, config_id id, const char *want)
{
	int fds[2];
	pid_t pid;
	int status;
	char buf[512];
	ssize_t n;
	size_t len = 0;

	if (pipe(fds) != 0)
		return false;
	fflush(stdout);
	pid = fork();
	if (pid == 0)
	{
		dup2(fds[1], 2);
		close(fds[0]);
		signal(SIGABRT, SIG_DFL);
		if (which == 0)
			(void) config_get_int(cfg, id);
		else if (which == 1)
			(void) config_get_size(cfg, id);
		else if (which == 2)
			(void) config_get_duration_ms(cfg, id);
		else
			(void) config_get_bool(cfg, id);
		_exit(0);
	}
	close(fds[1]);
	while (len < sizeof(buf) - 1 && (n = read(fds[0], buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t) n;
	buf[len] = '\0';
	close(fds[0]);
	if (waitpid(pid, &status, 0) != pid)
		return false;
	if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT))
		return false;
	if (strstr(buf, "internal error") == NULL || strstr(buf, want) == NULL)
	{
		printf("# stderr: %s\n", buf);
		return false;
	}
	return true;
}

static int
load(bs_config *cfg, int argc, char **argv, const char *const *allowed, bs_error *err, bool *usage)
{
	char **pos;
	int npos;
	int rc = config_load(cfg, argc, argv, allowed, &pos, &npos, usage, err);

	free(pos);
	return rc;
}

int
main(void)
{
	static const char *const allowed[] = {"storage", "segment_size", "segment_age", "all_tables", "db", NULL};
	char path[] = "/tmp/backstop-test-config-XXXXXX";
	int fd = mkstemp(path);
	bs_config cfg;
	bs_error err;
	bool usage;
	int64_t n;
	bool b;
	char *r;
	const char *every[128] = {NULL};

	ok(config_parse_size("16MiB", &n) == 0 && n == 16 * 1024 * 1024, "16MiB parses");
	ok(config_parse_size("1.5k", &n) == 0 && n == 1536, "1.5k parses");
	ok(config_parse_size("12 parsecs", &n) != 0, "bad unit rejected");
	ok(config_parse_duration_ms("10s", &n) == 0 && n == 10000, "10s parses");
	ok(config_parse_duration_ms("250ms", &n) == 0 && n == 250, "250ms parses");
	ok(config_parse_duration_ms("5", &n) == 0 && n == 5000, "bare number is seconds");
	ok(config_parse_bool("On", &b) == 0 && b, "On is true");
	ok(config_parse_bool("maybe", &b) != 0, "maybe rejected");

	dprintf(fd, "# comment\n[backstop]\nsegment_size = 8MiB\nsegment-age = '20s'\nstorage = file:///from-file\n");
	close(fd);

	setenv("BACKSTOP_STORAGE", "file:///from-env", 1);
	{
		char *argv[] = {"--config", path, "--segment-age=30s", "--all-tables", "extra"};

		ok(load(&cfg, 5, argv, allowed, &err, &usage) == BS_OK, "file+env+flags load");
		is_str(config_get(&cfg, CFG_SEGMENT_SIZE), "8MiB", "file value used");
		is_str(config_get(&cfg, CFG_STORAGE), "file:///from-env", "environment beats file");
		is_str(config_get(&cfg, CFG_SEGMENT_AGE), "30s", "flag beats file");
		ok(config_get_bool(&cfg, CFG_ALL_TABLES), "boolean flag without value");
		is_int(config_get_duration_ms(&cfg, CFG_SEGMENT_AGE), 30000, "duration getter");
		config_free(&cfg);
	}
	unsetenv("BACKSTOP_STORAGE");
	{
		char *argv[] = {"--bogus"};

		ok(load(&cfg, 1, argv, allowed, &err, &usage) == BS_ERR && usage, "unknown flag is a usage error");
		ok(strstr(err.message, "--bogus") != NULL, "message names the flag: %s", err.message);
		config_free(&cfg);
	}
	{
		char *argv[] = {"--slot", "x"};

		ok(load(&cfg, 2, argv, allowed, &err, &usage) == BS_ERR && usage, "option of another command rejected");
		config_free(&cfg);
	}
	fd = open(path, O_WRONLY | O_TRUNC);
	dprintf(fd, "segment_size = 8MiB\nwhatever = 1\n");
	close(fd);
	{
		char *argv[] = {"--config", path};

		ok(load(&cfg, 2, argv, allowed, &err, &usage) == BS_ERR, "unknown key in file rejected");
		ok(strstr(err.message, ":2:") != NULL && strstr(err.message, "whatever") != NULL,
		   "message names file line and key: %s", err.message);
		config_free(&cfg);
	}
	fd = open(path, O_WRONLY | O_TRUNC);
	dprintf(fd, "segment_size = lots\n");
	close(fd);
	{
		char *argv[] = {"--config", path};

		ok(load(&cfg, 2, argv, allowed, &err, &usage) == BS_ERR && strstr(err.message, "segment_size"),
		   "malformed value rejected: %s", err.message);
		config_free(&cfg);
	}
	{
		char *argv[] = {"--config", "/nonexistent/backstop.conf"};

		ok(load(&cfg, 2, argv, allowed, &err, &usage) == BS_ERR, "missing explicit config file is an error");
		config_free(&cfg);
	}
	unlink(path);

	/* Every option allowed, as if one command took them all. */
	for (int i = 0; config_options[i].name && i < 127; i++)
		every[i] = config_options[i].name;

	/* --- ids: one per option, in table order, the name in upper case --- */
	is_int(sizeof(id_names) / sizeof(id_names[0]), CONFIG_OPTION_COUNT, "one id per option");
	ok(config_options[CONFIG_OPTION_COUNT].name == NULL, "the table ends after the last id");
	for (int i = 0; i < CONFIG_OPTION_COUNT; i++)
	{
		char upper[128];
		size_t k;
		config_id id;

		for (k = 0; config_options[i].name[k] && k < sizeof(upper) - 1; k++)
			upper[k] = (char) toupper((unsigned char) config_options[i].name[k]);
		upper[k] = '\0';
		if (strcmp(upper, id_names[i]) != 0)
			ok(false, "option %s has the id CFG_%s", config_options[i].name, id_names[i]);
		if (!config_find_id(config_options[i].name, &id) || id != (config_id) i)
			ok(false, "config_find_id(\"%s\") finds its id", config_options[i].name);
	}
	ok(true, "every option's id is CFG_ and its name in upper case");
	{
		config_id id;

		ok(!config_find_id("segment_aeg", &id), "config_find_id() of an unknown name is false");
	}

	/* --- typed getters: a value they cannot parse, or an option of another type, is an
	 * internal error, never a silent 0 --- */
	{
		char *argv[] = {"--config", "/dev/null"};

		load(&cfg, 2, argv, allowed, &err, &usage);
		is_int(config_get_size(&cfg, CFG_SEGMENT_SIZE), 16 * 1024 * 1024, "size getter reads the default");
		config_set(&cfg, CFG_SEGMENT_SIZE, "lots", SOURCE_FLAG);
		ok(getter_aborts(&cfg, 1, CFG_SEGMENT_SIZE, "segment_size"), "an unparsable size aborts the getter");
		config_set(&cfg, CFG_RETRIES, "6x", SOURCE_FLAG);
		ok(getter_aborts(&cfg, 0, CFG_RETRIES, "retries"), "an unparsable integer aborts the getter");
		config_set(&cfg, CFG_SEGMENT_AGE, "soon", SOURCE_FLAG);
		ok(getter_aborts(&cfg, 2, CFG_SEGMENT_AGE, "segment_age"), "an unparsable duration aborts the getter");
		config_set(&cfg, CFG_ALL_TABLES, "maybe", SOURCE_FLAG);
		ok(getter_aborts(&cfg, 3, CFG_ALL_TABLES, "all_tables"), "an unparsable boolean aborts the getter");
		ok(getter_aborts(&cfg, 0, CFG_SPOOL_LIMIT, "spool_limit"), "config_get_int() on a size option aborts");
		ok(getter_aborts(&cfg, 1, CFG_STATUS_INTERVAL, "status_interval"), "config_get_size() on a duration option aborts");
		ok(getter_aborts(&cfg, 3, CFG_DDL_CAPTURE, "ddl_capture"), "config_get_bool() on an enum option aborts");
		ok(getter_aborts(&cfg, 0, (config_id) CONFIG_OPTION_COUNT, "out of range"), "an id out of range aborts");
		config_set(&cfg, CFG_KEEP_BASES, NULL, SOURCE_DEFAULT);
		ok(config_get(&cfg, CFG_KEEP_BASES) == NULL && config_get_int(&cfg, CFG_KEEP_BASES) == 0,
		   "an unset option reads as NULL and 0");
		config_free(&cfg);
	}

	/* --- ranges: every numeric option has one, its default is inside it --- */
	for (int i = 0; config_options[i].name; i++)
	{
		const config_option *o = &config_options[i];
		const config_range *rg = config_find_range(o->name);
		int64_t v = 0;

		if (o->type != CONFIG_INT && o->type != CONFIG_SIZE && o->type != CONFIG_DURATION)
			continue;
		ok(rg != NULL, "numeric option %s has a range", o->name);
		if (rg == NULL || o->default_value == NULL)
			continue;
		if (o->type == CONFIG_INT)
			config_parse_int(o->default_value, &v);
		else if (o->type == CONFIG_SIZE)
			config_parse_size(o->default_value, &v);
		else
			config_parse_duration_ms(o->default_value, &v);
		ok(v >= rg->min && v <= rg->max, "default of %s (%s) is within its range", o->name, o->default_value);
	}
	{
		/* Zero and negative values of sizes, ages, intervals, limits and retries, and values
		 * just outside the bounds, from each source. */
		static const char *const bad[][2] = {
			{"base_chunk_size", "0"}, {"segment_size", "0"}, {"segment_size", "63kB"}, {"segment_size", "2GiB"},
			{"segment_age", "0"}, {"segment_age", "99ms"}, {"rebase_age", "0"}, {"rebase_ratio", "0"},
			{"rebase_ratio", "-5"}, {"rebase_min_interval", "3651d"}, {"spool_limit", "0"}, {"open_memory_limit", "0"},
			{"status_interval", "0"}, {"table_poll_interval", "0ms"}, {"timeout", "0"}, {"retries", "-1"},
			{"retries", "101"}, {"retry_base_delay", "0"}, {"s3_timeout", "0"}, {"s3_multipart_threshold", "1MiB"},
			{"compression_level", "99"}, {"compression_level", "-1"}, {"segment_compression_level", "23"},
		};
		static const char *const good[][2] = {
			{"base_chunk_size", "64kB"}, {"segment_size", "1GiB"}, {"segment_age", "100ms"}, {"rebase_min_interval", "0"},
			{"retries", "0"}, {"retries", "100"}, {"spool_limit", "64kB"}, {"s3_multipart_threshold", "5MiB"},
			{"compression_level", "22"}, {"timeout", "1d"},
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		{
			char flag[64];
			char *argv[2];

			snprintf(flag, sizeof(flag), "--%s", bad[i][0]);
			argv[0] = flag;
			argv[1] = (char *) bad[i][1];
			error_clear(&err);
			ok(load(&cfg, 2, argv, every, &err, &usage) == BS_ERR && strstr(err.message, "must be") &&
			   strstr(err.message, bad[i][0]), "%s = %s refused: %s", bad[i][0], bad[i][1], err.message);
			config_free(&cfg);
		}
		for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		{
			char env[64];

			snprintf(env, sizeof(env), "BACKSTOP_%s", good[i][0]);
			for (char *k = env; *k; k++)
				*k = (char) toupper((unsigned char) *k);
			setenv(env, good[i][1], 1);
			ok(load(&cfg, 0, NULL, every, &err, &usage) == BS_OK, "%s = %s (a bound) accepted", good[i][0], good[i][1]);
			config_free(&cfg);
			unsetenv(env);
		}
		setenv("BACKSTOP_RETRIES", "-3", 1);
		ok(load(&cfg, 0, NULL, every, &err, &usage) == BS_ERR && strstr(err.message, "BACKSTOP_RETRIES") &&
		   strstr(err.message, "between 0 and 100"), "range checked in the environment: %s", err.message);
		config_free(&cfg);
		unsetenv("BACKSTOP_RETRIES");
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	dprintf(fd, "segment_size = 8MiB\nspool_limit = 0\n");
	close(fd);
	{
		char *argv[] = {"--config", path};

		ok(load(&cfg, 2, argv, every, &err, &usage) == BS_ERR && strstr(err.message, ":2:") &&
		   strstr(err.message, "spool_limit"), "range checked in the file, with its line: %s", err.message);
		config_free(&cfg);
	}
	unlink(path);
	{
		char dir[] = "/tmp/backstop-test-confdir-XXXXXX";
		char *argv[] = {"--config", dir};

		ok(mkdtemp(dir) != NULL, "made a directory");
		ok(load(&cfg, 2, argv, every, &err, &usage) == BS_ERR && strstr(err.message, "is a directory"),
		   "--config naming a directory is refused: %s", err.message);
		config_free(&cfg);
		setenv("BACKSTOP_CONFIG", dir, 1);
		ok(load(&cfg, 0, NULL, every, &err, &usage) == BS_ERR && strstr(err.message, "is a directory"),
		   "BACKSTOP_CONFIG naming a directory is refused");
		config_free(&cfg);
		unsetenv("BACKSTOP_CONFIG");
		rmdir(dir);
	}

	/* --- the checks of values by form (validate.c) --- */
	{
		static const char *const bad[][2] = {
			{"storage", "bogus://x"}, {"storage", "s3://A"}, {"storage", "file://relative"}, {"storage", "s3://bkt/../x"},
			{"storage", "file:///a\nb"}, {"table", "a.b.c"}, {"table", "\"unterminated"}, {"table", ""},
			{"table", "1abc"}, {"into", "public.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
			{"tables", "public.t,x.y.z"}, {"tables", " , "}, {"slot", "Bad"}, {"slot", ""}, {"publication", ""},
			{"data_dir", "relative"}, {"spool_dir", "relative/spool"}, {"listen", "9816"}, {"listen", "h:0"},
			{"listen", "h:70000"}, {"listen", "h:12x"}, {"end_lsn", "zz"}, {"to_lsn", "1"}, {"from_lsn", "0/G"},
			{"to_xid", "-1"}, {"to_xid", "4294967296"}, {"to_time", "yesterday"}, {"db", "host=x foo"},
			{"db", "postgresql://h/db?nosuch=1"}, {"target_db", "password='unterminated"}, {"s3_endpoint", "ftp://x"},
			{"s3_region", "eu west"},
		};
		static const char *const good[][2] = {
			{"storage", "s3://bkt/prefix"}, {"storage", "file:///var/x"}, {"table", "t"}, {"table", "\"Odd\nName\".t"},
			{"into", "s.\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""}, {"tables", "a.b, c"},
			{"slot", "backstop_1"}, {"listen", "off"}, {"listen", "[::1]:9816"}, {"to_lsn", "0/1A2B3C4"},
			{"to_xid", "4294967295"}, {"to_time", "2026-11-26 16:00:00+00"}, {"db", "app"},
			{"db", "host=h dbname=app password='a b'"}, {"db", "postgresql://u:p@h:5432/app?sslmode=require"},
			{"s3_endpoint", "https://s3.example:9000"}, {"s3_region", "eu-west-1"},
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		{
			error_clear(&err);
			ok(validate_option_value(bad[i][0], bad[i][1], &err) == BS_ERR &&
			   (strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0 || strcmp(err.code, ERRCODE_SYNTAX) == 0),
			   "%s = \"%s\" refused: %s", bad[i][0], shown(bad[i][1]), shown(err.message));
		}
		for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		{
			error_clear(&err);
			ok(validate_option_value(good[i][0], good[i][1], &err) == BS_OK, "%s = \"%s\" accepted: %s",
			   good[i][0], shown(good[i][1]), shown(err.message));
		}
	}
	{
		/* validate_config: names where the value came from; a secret is not repeated; the
		 * level is checked against the codec. */
		char *argv[] = {"--storage", "s3://bkt", "--compression", "lz4", "--compression-level", "13"};

		ok(load(&cfg, 6, argv, every, &err, &usage) == BS_OK, "lz4 level 13 passes the range check");
		ok(validate_config(&cfg, &err) == BS_ERR && strstr(err.message, "option --compression-level") &&
		   strstr(err.message, "lz4"), "lz4 level 13 refused with the codec: %s", err.message);
		config_free(&cfg);
	}
	{
		char *argv[] = {"--db", "host=h password=Hunter2Secret foo"};

		ok(load(&cfg, 2, argv, every, &err, &usage) == BS_OK, "malformed conninfo loads");
		ok(validate_config(&cfg, &err) == BS_ERR && strstr(err.message, "option --db") &&
		   strstr(err.message, "Hunter2Secret") == NULL, "malformed conninfo refused without the password: %s",
		   err.message);
		config_free(&cfg);
	}
	{
		char *argv[] = {"--table", "x.y.z"};

		setenv("BACKSTOP_TABLE", "also.bad.name", 1);
		ok(load(&cfg, 0, NULL, every, &err, &usage) == BS_OK && validate_config(&cfg, &err) == BS_ERR &&
		   strstr(err.message, "BACKSTOP_TABLE"), "environment value checked and named: %s", err.message);
		config_free(&cfg);
		unsetenv("BACKSTOP_TABLE");
		ok(load(&cfg, 2, argv, every, &err, &usage) == BS_OK && validate_config(&cfg, &err) == BS_ERR &&
		   strstr(err.message, "option --table"), "flag value checked and named: %s", err.message);
		config_free(&cfg);
	}

	/* --- encryption options: file names, the passphrase never shown --- */
	ok(validate_option_value("encryption_old_key_file", "/k/a, /k/b", &err) == BS_OK, "a list of old key files");
	ok(validate_option_value("encryption_old_key_file", " , ", &err) == BS_ERR, "an empty list of old key files");
	ok(validate_option_value("encryption_key_file", "", &err) == BS_ERR, "an empty key file name");
	{
		char a0[] = "--encryption-passphrase", a1[] = "Tr0ub4dor&3";
		char *argv[] = {a0, a1};

		config_scrub_secrets(2, argv);
		ok(strstr(a1, "Tr0ub4dor") == NULL, "a passphrase on the command line is scrubbed: %s", a1);
	}

	/* --- secrets scrubbed from argv (the process list) --- */
	{
		char a0[] = "--db", a1[] = "host=h password=pw1 dbname=x", a2[] = "--s3-secret-access-key=KEY2",
			a3[] = "--storage", a4[] = "s3://bkt/p", a5[] = "--s3-access-key-id", a6[] = "AKID3", a7[] = "--target-db",
			a8[] = "dbname=plain", a9[] = "--table", a10[] = "t";
		char *argv[] = {a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10};

		config_scrub_secrets(11, argv);
		ok(strstr(a1, "pw1") == NULL && strlen(a1) == strlen("host=h password=pw1 dbname=x"),
		   "conninfo with a password overwritten in place: %s", a1);
		is_str(a2, "--s3-secret-access-key=xxxx", "--name=value secret overwritten");
		is_str(a6, "xxxxx", "access key id overwritten");
		is_str(a4, "s3://bkt/p", "storage URL without credentials kept");
		is_str(a8, "dbname=plain", "conninfo without a password kept");
		is_str(a10, "t", "other options kept");
		is_str(a0, "--db", "option names kept");
	}

	r = redact_text("host=db user=u password=s3cret dbname=x");
	ok(strstr(r, "s3cret") == NULL && strstr(r, "dbname=x"), "conninfo password redacted: %s", r);
	free(r);
	r = redact_text("postgresql://alice:hunter2@db.example/prod");
	ok(strstr(r, "hunter2") == NULL && strstr(r, "alice"), "URI password redacted: %s", r);
	free(r);
	r = redact_text("password='a b\\' c' host=h");
	ok(strstr(r, "a b") == NULL && strstr(r, "host=h"), "quoted password redacted: %s", r);
	free(r);
	/* An empty text (a stream that ended without a message) comes back empty, terminated:
	 * it used to come back as uninitialized heap bytes. */
	r = redact_text("");
	is_str(r, "", "empty text redacted to an empty string");
	free(r);
	{
		strbuf sb = STRBUF_INIT;
		char *d;

		strbuf_reserve(&sb, 100);
		d = strbuf_detach(&sb, NULL);
		is_str(d, "", "a reserved, empty buffer detaches as an empty string");
		free(d);
	}
	return done_testing();
}
