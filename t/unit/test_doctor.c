/* test_doctor.c — `backstop doctor` without PostgreSQL: the storage probe, the archiver's endpoint (a stand-in answering /health and /metrics), freshness from a synthetic archive, verdicts and exit codes. */
#include "archive_fixture.h"
#include "fake_http.h"
#include "clock.h"
#include "tap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <strings.h>
#include <sys/stat.h>

#define NO_SERVER "host=/nonexistent-backstop-test-dir"

static char dir[] = "/tmp/backstop-test-doctor-XXXXXX";
static char data_dir[256];

/* ---------- helpers ---------- */

static bool
has(const char *text, const char *needle, const char *what)
{
	bool found = strstr(text, needle) != NULL;

	ok(found, "%s", what);
	if (!found)
	{
		printf("# missing: %s\n", needle);
		show();
	}
	return found;
}

/* doctor --storage URL --listen LISTEN args... */
static int
doctor(const char *storage_url, const char *listen, const char *const *args)
{
	const char *argv[32];
	int n = 0;

	argv[n++] = "doctor";
	argv[n++] = "--storage";
	argv[n++] = storage_url;
	argv[n++] = "--listen";
	argv[n++] = listen;
	for (int i = 0; args[i]; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	return run_backstop(argv);
}

/* ---------- the tests ---------- */

static void
test_storage(void)
{
	char file[300], bad[400];

	/* an empty file:// archive: every step works, deleting is allowed (an info), ready */
	is_int(doctor(url, "off", (const char *const[]) {NULL}), EXIT_OK, "empty archive, no archiver: exit 0");
	ok(strncmp(out, "storage: OK (file://", 20) == 0, "storage: OK and its URL");
	has(out, "\n  put      ok    ", "the put step");
	has(out, "\n  delete   ok    ", "the delete step");
	has(out, "\n  WARNING: objects can be deleted with these credentials; immutable storage", "the delete warning");
	has(out, "findings:\n  INFO    [storage] objects can be deleted with these credentials: immutable storage is safer "
		"against ransomware and mistakes\n          fix: object lock, or credentials without delete permission (doc/storage.md)\n",
		"the finding and its fix");
	has(out, "verdict: ready (0 errors, 0 warnings)\n", "verdict ready");

	/* storage that cannot be written: the step, the reason, not ready */
	snprintf(file, sizeof(file), "%s/plainfile", dir);
	{
		FILE *f = fopen(file, "w");

		fputs("x", f);
		fclose(f);
	}
	snprintf(bad, sizeof(bad), "file://%s/archive", file);
	is_int(doctor(bad, "off", (const char *const[]) {NULL}), EXIT_FAILURE_RUNTIME, "storage under a file: exit 1");
	has(out, "storage: FAILED (file://", "storage: FAILED");
	has(out, "\n  put      failed", "the put step failed");
	has(out, "\n  reason: storage error\n  error: ", "the reason and the error");
	has(out, "  ERROR   [storage] storage is not usable: storage error\n          fix: see the storage steps above",
		"the finding");
	has(out, "verdict: not ready (1 error, 0 warnings)\n", "verdict not ready");

}

/* doctor against a stand-in S3 (path style, no retries): each step's failure, and refused deletes. */
static int
doctor_s3(fake_endpoint *fe, const fake_route *routes, const char *const *more)
{
	char endpoint[128];
	const char *args[16] = {"--s3-endpoint", endpoint, "--s3-uri-style", "path", "--s3-region", "us-east-1",
		"--retries", "0", NULL};
	int n = 8;
	int rc;

	for (int i = 0; more[i]; i++)
		args[n++] = more[i];
	args[n] = NULL;
	fake_start(fe, routes);
	snprintf(endpoint, sizeof(endpoint), "http://%s", fe->listen);
	rc = doctor("s3://bucket/arch", "off", args);
	fake_stop(fe);
	return rc;
}

static void
test_storage_s3(void)
{
#define ACCESS_DENIED "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
#define NO_HEAD {"GET /bucket/arch/head.json", 404, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code></Error>"}
#define EMPTY_LIST {"GET /bucket?*", 200, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult><Name>bucket</Name><IsTruncated>false</IsTruncated></ListBucketResult>"}
	static const fake_route put_denied[] = {{"PUT /bucket/*", 403, ACCESS_DENIED}, {NULL, 0, NULL}};
	static const fake_route get_differs[] = {{"PUT /bucket/*", 200, ""}, {"GET /bucket/*", 200, "something else"}, {NULL, 0, NULL}};
	static const fake_route list_empty[] = {
		{"PUT /bucket/*", 200, ""},
		EMPTY_LIST,
		{"GET /bucket/*", 200, "{ECHO}"},
		{NULL, 0, NULL}
	};
	static const fake_route delete_denied[] = {
		NO_HEAD,
		{"PUT /bucket/*", 200, ""},
		{"GET /bucket?list-type=2&prefix=arch%2Fdoctor*", 200, "{LIST}"},
		EMPTY_LIST,
		{"GET /bucket/*", 200, "{ECHO}"},
		{"DELETE /bucket/*", 403, ACCESS_DENIED},
		{NULL, 0, NULL}
	};
	static const fake_route delete_kept[] = {
		NO_HEAD,
		{"PUT /bucket/*", 200, ""},
		{"GET /bucket?list-type=2&prefix=arch%2Fdoctor*", 200, "{LIST}"},
		EMPTY_LIST,
		{"GET /bucket/*", 200, "{ECHO}"},
		{"DELETE /bucket/*", 204, ""},
		{"HEAD /bucket/*", 200, ""},
		{NULL, 0, NULL}
	};
	fake_endpoint fe;

	/* no credentials: the open step */
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");
	is_int(doctor("s3://bucket/arch", "off", (const char *const[]) {"--s3-endpoint", "http://127.0.0.1:1", "--json", NULL}),
		   EXIT_FAILURE_RUNTIME, "S3 without credentials: exit 1");
	{
		json_error_t jerr;
		json_t *j = json_loads(out, 0, &jerr);
		json_t *s = json_object_get(j, "storage");

		is_str(json_string_value(json_object_get(s, "failed_step")), "open", "--json: failed_step open");
		is_str(json_string_value(json_object_get(s, "reason")), "bad or missing credentials", "--json: the reason");
		is_str(json_string_value(json_object_get(j, "verdict")), "not ready", "--json: verdict");
		is_int(json_integer_value(json_object_get(j, "errors")), 1, "--json: one error");
		ok(json_is_false(json_object_get(j, "ok")), "--json: ok false");
		ok(json_object_get(j, "freshness") == NULL, "--json: no freshness when storage failed");
		json_decref(j);
	}
	setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secrettest", 1);

	is_int(doctor_s3(&fe, put_denied, (const char *const[]) {NULL}), EXIT_FAILURE_RUNTIME, "S3 put refused: exit 1");
	has(out, "\n  put      failed", "the put step failed");
	has(out, "\n  reason: no write permission\n", "reason: no write permission");
	ok(strncmp(fe.requests, "PUT /bucket/arch/doctor/probe-", 30) == 0, "the probe went to doctor/ under the prefix: %s", fe.requests);

	is_int(doctor_s3(&fe, get_differs, (const char *const[]) {NULL}), EXIT_FAILURE_RUNTIME, "S3 get differs: exit 1");
	has(out, "\n  get      failed", "the get step failed");
	has(out, "\n  error: the probe object read back differs from what was written\n", "says it differs");

	is_int(doctor_s3(&fe, list_empty, (const char *const[]) {NULL}), EXIT_FAILURE_RUNTIME, "S3 list without the probe: exit 1");
	has(out, "\n  list     failed", "the list step failed");
	has(out, "\n  error: the probe object is missing from the listing\n", "says it is missing");

	is_int(doctor_s3(&fe, delete_denied, (const char *const[]) {NULL}), EXIT_OK, "S3 delete refused: ready");
	has(out, "storage: OK (s3://bucket/arch)\n", "storage OK");
	has(out, "\n  delete   failed", "the delete step is marked");
	has(out, "\n  note: delete is refused (good for immutability); the probe object \"doctor/probe-", "the note");
	ok(strstr(out, "objects can be deleted") == NULL, "no delete warning");
	has(out, "verdict: ready (0 errors, 0 warnings)\n", "ready");

	is_int(doctor_s3(&fe, delete_kept, (const char *const[]) {"--json", NULL}), EXIT_OK, "S3 delete that keeps the object: ready");
	{
		json_error_t jerr;
		json_t *j = json_loads(out, 0, &jerr);
		json_t *s = json_object_get(j, "storage");

		ok(json_is_true(json_object_get(s, "ok")), "--json: storage ok");
		ok(json_is_false(json_object_get(s, "delete_permitted")), "--json: delete_permitted false (the object stays)");
		is_int(json_array_size(json_object_get(s, "warnings")), 0, "--json: no warning");
		json_decref(j);
	}
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
}

static void
test_archiver(void)
{
	static const fake_route healthy[] = {
		{"GET /health", 200, "{\"streaming\": true, \"spool_bytes\": 0}"},
		{"GET /metrics", 200, "# HELP x\nbackstop_lag_bytes 0\nbackstop_spool_bytes 0\nbackstop_slot_retained_wal_bytes 4096\n"
		 "backstop_upload_errors_total 2\nbackstop_seconds_behind 7200\n"},
		{NULL, 0, NULL}
	};
	static const fake_route refusing[] = {{"GET /health", 401, "{\"error\": \"bad token\"}"}, {NULL, 0, NULL}};
	static const fake_route foreign[] = {{"GET /health", 200, "<html>hello</html>"}, {NULL, 0, NULL}};
	static const fake_route degraded[] = {
		{"GET /health", 503, "{\"streaming\": true, \"spool_bytes\": 2048}"},
		{"GET /metrics", 500, "oops"},
		{NULL, 0, NULL}
	};
	static const fake_route down[] = {
		{"GET /health", 503, "{\"streaming\": false}"},
		{"GET /metrics", 200, "backstop_lag_bytes 10\n"},
		{NULL, 0, NULL}
	};
	fake_endpoint fe;
	char tokfile[300];

	/* streaming, but behind: an info (upload retries) and a warning (behind --stale-after): degraded */
	fake_start(&fe, healthy);
	is_int(doctor(url, fe.listen, (const char *const[]) {"--stale-after", "1h", NULL}), 8, "archiver behind: exit 8 (degraded)");
	fake_stop(&fe);
	is_str(fe.requests, "GET /health;GET /metrics;", "asked /health, then /metrics (no token: no Authorization)");
	has(out, "  INFO    [archiver] the archiver at 127.0.0.1:", "the upload retries");
	has(out, " retried 2 failed upload(s) since it started\n", "... counted");
	has(out, "  WARNING [freshness] the archiver at 127.0.0.1:", "behind");
	has(out, " is 2.0 h behind (its newest durable commit), more than --stale-after\n", "... by how much");
	has(out, "verdict: degraded (0 errors, 1 warning)\n", "verdict degraded");

	/* --json: what the endpoint said */
	fake_start(&fe, healthy);
	is_int(doctor(url, fe.listen, (const char *const[]) {"--stale-after", "3h", "--json", NULL}), EXIT_OK,
		   "within --stale-after: exit 0");
	fake_stop(&fe);
	{
		json_error_t jerr;
		json_t *j = json_loads(out, 0, &jerr);
		json_t *a = json_object_get(j, "archiver");

		ok(json_is_true(json_object_get(a, "reachable")), "--json: reachable");
		is_int((long long) json_number_value(json_object_get(a, "slot_retained_wal_bytes")), 4096, "--json: retained WAL");
		is_int((long long) json_number_value(json_object_get(a, "seconds_behind")), 7200, "--json: seconds behind");
		is_int((long long) json_number_value(json_object_get(a, "upload_errors")), 2, "--json: upload errors");
		ok(json_is_true(json_object_get(json_object_get(a, "health"), "streaming")), "--json: the health it read");
		is_str(json_string_value(json_object_get(j, "verdict")), "ready", "--json: ready");
		json_decref(j);
	}

	/* a token: sent as a bearer token; refused: an error */
	snprintf(tokfile, sizeof(tokfile), "%s/token", dir);
	{
		FILE *f = fopen(tokfile, "w");

		fputs("abcdefghijklmnopqrstuvwxyz0123456789\n", f);
		fclose(f);
		chmod(tokfile, 0600);
	}
	fake_start(&fe, refusing);
	is_int(doctor(url, fe.listen, (const char *const[]) {"--control-token-file", tokfile, NULL}), EXIT_FAILURE_RUNTIME,
		   "token refused: exit 1");
	fake_stop(&fe);
	is_str(fe.requests, "GET /health auth;", "the token was sent; nothing more asked once refused");
	has(out, " refused doctor's token (HTTP 401)\n          fix: give doctor the archiver's token", "says the token was refused");

	/* something else listens there */
	fake_start(&fe, foreign);
	is_int(doctor(url, fe.listen, (const char *const[]) {NULL}), EXIT_FAILURE_RUNTIME, "not Backstop: exit 1");
	fake_stop(&fe);
	has(out, " answered /health with something that is not Backstop's (HTTP 200)\n", "says it is not Backstop");

	/* the spool fills while storage refuses: degraded, with the spool's size */
	fake_start(&fe, degraded);
	is_int(doctor(url, fe.listen, (const char *const[]) {NULL}), 8, "spool waiting: exit 8");
	fake_stop(&fe);
	has(out, " reports degraded: sealed segments wait in the spool (2.0 kB) for storage\n", "says the spool waits");

	/* not streaming */
	fake_start(&fe, down);
	is_int(doctor(url, fe.listen, (const char *const[]) {NULL}), 8, "not streaming: exit 8");
	fake_stop(&fe);
	has(out, " is not streaming from PostgreSQL\n          fix: see the archiver's log", "says it is not streaming");

	/* nobody at an explicit --listen: an error */
	{
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in sa;
		socklen_t sl = sizeof(sa);
		char listen_addr[64];

		/* a port that was just free: bound, not listening (connections are refused) */
		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		bind(fd, (struct sockaddr *) &sa, sizeof(sa));
		getsockname(fd, (struct sockaddr *) &sa, &sl);
		snprintf(listen_addr, sizeof(listen_addr), "127.0.0.1:%d", ntohs(sa.sin_port));
		is_int(doctor(url, listen_addr, (const char *const[]) {NULL}), EXIT_FAILURE_RUNTIME, "nobody listening: exit 1");
		close(fd);
		has(out, ": it is not running, or listens elsewhere (could not reach the archiver at 127.0.0.1:",
			"says nobody answers");
	}

	/* an unreadable token file */
	is_int(doctor(url, "127.0.0.1:1", (const char *const[]) {"--control-token-file", "/nonexistent-backstop-token", NULL}),
		   EXIT_FAILURE_RUNTIME, "token file missing: exit 1");
	has(out, "  ERROR   [archiver] the control token could not be read: ", "says the token could not be read");
}

static void
test_freshness(void)
{
	static const fake_route caught_up[] = {
		{"GET /health", 200, "{\"streaming\": true}"},
		{"GET /metrics", 200, "backstop_lag_bytes 0\n"},
		{NULL, 0, NULL}
	};
	manifest *m;
	fake_endpoint fe;
	int64_t now = clock_unix_us();

	/* t_old: its base copy at T0 (days ago); t_new: a base copy a minute ago; t_none: no base */
	m = new_table(16401, "t_old", "1\tone\n", 1);
	m->archived_to = BASE_LSN;
	store(m);
	manifest_free(m);
	m = new_table(16402, "t_new", "1\tone\n", 1);
	m->bases[0].time = now - 60 * SEC;
	m->archived_to = BASE_LSN;
	store(m);
	manifest_free(m);
	m = manifest_new(16403, "public", "t_none");
	{
		manifest_column c = {"id", 23, -1, "integer", true, true, NULL};

		manifest_add_layout(m, BASE_LSN, 'd', 1, &c);
	}
	store(m);
	manifest_free(m);

	is_int(doctor(url, "off", (const char *const[]) {"--stale-after", "1h", NULL}), 8, "a stale table and one without a base: exit 8");
	has(out, "  WARNING [freshness] public.t_none has no base copy yet: it cannot be recovered\n", "the table without a base");
	has(out, "  WARNING [freshness] the latest verified point of public.t_old (LSN 0/1500000, 2026-11-26T16:00:00.000000Z) is ", "the stale table");
	has(out, " old, more than --stale-after\n          fix: check that `backstop archive` runs and streams", "... and what to check");
	ok(strstr(out, "t_new") == NULL, "the fresh table is no finding");
	has(out, "verdict: degraded (0 errors, 2 warnings)\n", "two warnings");

	/* an archiver streaming and caught up: idle, not stale (an info) */
	fake_start(&fe, caught_up);
	is_int(doctor(url, fe.listen, (const char *const[]) {"--stale-after", "1h", "--json", NULL}), 8, "caught up: still the base-less warning");
	fake_stop(&fe);
	{
		json_error_t jerr;
		json_t *j = json_loads(out, 0, &jerr);
		json_t *fr = json_object_get(j, "freshness");
		size_t i;
		json_t *v;
		int stale_info = 0;

		is_int(json_array_size(fr), 2, "--json: two tables with a point");
		is_str(json_string_value(json_object_get(json_array_get(fr, 0), "table")), "public.t_old", "--json: t_old first");
		is_str(json_string_value(json_object_get(json_array_get(fr, 0), "latest_lsn")), "0/1500000", "--json: its LSN");
		json_array_foreach(json_object_get(j, "findings"), i, v)
			if (strcmp(json_string_value(json_object_get(v, "severity")), "info") == 0 &&
				strstr(json_string_value(json_object_get(v, "message")), "the archiver is streaming and caught up"))
				stale_info++;
		is_int(stale_info, 1, "--json: the old table is an info, the archiver being caught up");
		is_int(json_integer_value(json_object_get(j, "warnings")), 1, "--json: one warning left");
		json_decref(j);
	}

	/* a damaged manifest */
	{
		char key[64];

		snprintf(key, sizeof(key), "tables/16404/manifest.json");
		if (storage_put(st, key, "{", 1, &(bs_error) {0}) != BS_OK)
			printf("# could not store the damaged manifest\n");
	}
	is_int(doctor(url, "off", (const char *const[]) {NULL}), EXIT_FAILURE_RUNTIME, "a damaged manifest: exit 1");
	has(out, "  ERROR   [freshness] a", "says the archive could not be read");
	has(out, "          fix: backstop verify shows what is damaged\n", "and what shows the damage");
}

static void
test_db(void)
{
	is_int(doctor(url, "off", (const char *const[]) {"--db", NO_SERVER, NULL}), EXIT_FAILURE_RUNTIME, "no server: exit 1");
	has(out, "database: FAILED\n  connect  failed", "the database probe failed at connect");
	has(out, "  ERROR   [server] could not connect to PostgreSQL: could not connect to PostgreSQL: connection to server on socket",
		"the finding says why");
}

int
main(void)
{
	if (fixture_open_commands(dir, data_dir, sizeof(data_dir)) != BS_OK)
		return 1;
	test_storage();
	test_storage_s3();
	test_archiver();
	test_freshness();
	test_db();
	fixture_close(dir);
	return done_testing();
}
