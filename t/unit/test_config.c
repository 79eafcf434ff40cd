/* test_config.c — unit tests for configuration parsing, precedence and redaction. */
#include "config.h"
#include "redact.h"
#include "tap.h"

#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

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
		is_str(config_get(&cfg, "segment_size"), "8MiB", "file value used");
		is_str(config_get(&cfg, "storage"), "file:///from-env", "environment beats file");
		is_str(config_get(&cfg, "segment_age"), "30s", "flag beats file");
		ok(config_get_bool(&cfg, "all_tables"), "boolean flag without value");
		is_int(config_get_duration_ms(&cfg, "segment_age"), 30000, "duration getter");
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

	r = redact_text("host=db user=u password=s3cret dbname=x");
	ok(strstr(r, "s3cret") == NULL && strstr(r, "dbname=x"), "conninfo password redacted: %s", r);
	free(r);
	r = redact_text("postgresql://alice:hunter2@db.example/prod");
	ok(strstr(r, "hunter2") == NULL && strstr(r, "alice"), "URI password redacted: %s", r);
	free(r);
	r = redact_text("password='a b\\' c' host=h");
	ok(strstr(r, "a b") == NULL && strstr(r, "host=h"), "quoted password redacted: %s", r);
	free(r);
	return done_testing();
}
