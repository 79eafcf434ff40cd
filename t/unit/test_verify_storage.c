/* test_verify_storage.c — `backstop verify` when storage fails part-way (an S3 stand-in serving a synthetic archive, with faults): exit 1 and the failure, never a verdict on the archive. */
#include "archive_fixture.h"
#include "fake_http.h"
#include "tap.h"

#include <jansson.h>

#define S3_ERROR "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code><Message>injected</Message></Error>"

static char dir[] = "/tmp/backstop-test-verify-storage-XXXXXX";
static char seg_route[256], chunk_route[256], manifest_route[256];

/* verify --storage s3://bucket/arch through a stand-in serving dir, with the routes' faults. */
static int
verify(const fake_route *routes, const char *const *more, char *requests, size_t rsize)
{
	fake_endpoint fe;
	char endpoint[128];
	const char *args[24] = {"verify", "--storage", "s3://bucket/arch", "--s3-endpoint", endpoint, "--s3-uri-style", "path",
		"--s3-region", "us-east-1", "--retries", "0", NULL};
	int n = 11;
	int rc;

	for (int i = 0; more[i]; i++)
		args[n++] = more[i];
	args[n] = NULL;
	fake_start_bucket(&fe, routes, dir, "arch");
	snprintf(endpoint, sizeof(endpoint), "http://%s", fe.listen);
	rc = run_backstop(args);
	fake_stop(&fe);
	if (requests)
		snprintf(requests, rsize, "%s", fe.requests);
	return rc;
}

static void
failing(const char *route, const char *const *more, const char *what)
{
	const fake_route routes[] = {{route, 500, S3_ERROR}, {NULL, 0, NULL}};
	char requests[1024];
	int rc = verify(routes, more, requests, sizeof(requests));

	is_int(rc, EXIT_FAILURE_RUNTIME, "%s: exit 1", what);
	ok(strncmp(errout, "backstop verify: ERROR: ", 24) == 0 && strstr(errout, "injected") != NULL,
	   "%s: says storage failed, with its message", what);
	ok(strstr(out, "OK:") == NULL && strstr(out, "DAMAGED") == NULL, "%s: no verdict on the archive", what);
	if (rc != EXIT_FAILURE_RUNTIME || strstr(errout, "injected") == NULL)
	{
		printf("# requests: %s\n", requests);
		show();
	}
}

int
main(void)
{
	static const char *const v[] = {"2", "bob"};
	rec r[] = {{'I', BASE_LSN + 0x100, 700, SEC, 0, NULL, v}};
	manifest *m;
	archive_head h;
	bs_error err;
	const fake_route none[] = {{NULL, 0, NULL}};

	if (fixture_open(dir) != BS_OK)
		return 1;
	setenv("AWS_ACCESS_KEY_ID", "AKIDTEST", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "secrettest", 1);
	unsetenv("AWS_SESSION_TOKEN");
	m = new_table(16401, "t", "1\talice\n", 1);
	add_segment(m, r, 1);
	m->archived_to = BASE_LSN + 0x180;
	m->generation = 1;
	store(m);
	snprintf(seg_route, sizeof(seg_route), "GET /bucket/arch/%s", m->segments[0].key);
	snprintf(chunk_route, sizeof(chunk_route), "GET /bucket/arch/%s", m->bases[0].chunks[0].key);
	snprintf(manifest_route, sizeof(manifest_route), "GET /bucket/arch/tables/16401/manifest.json");
	archive_head_init(&h);
	h.system_identifier = xstrdup("7300000000000000001");
	h.database = xstrdup("app");
	h.flushed_lsn = BASE_LSN + 0x180;
	h.time = T0 + 2 * SEC;
	archive_head_note_table(&h, 16401, 1, "public", "t");
	if (archive_head_store(st, &h, &err) != BS_OK)
		printf("# archive_head_store: %s\n", err.message);
	archive_head_clear(&h);
	manifest_free(m);

	/* the stand-in serves the archive as it is: verify passes */
	is_int(verify(none, (const char *const[]) {NULL}, NULL, 0), EXIT_OK, "through the stand-in, no fault: exit 0");
	ok(strncmp(out, "OK: 1 table(s), 2 object(s), ", 29) == 0, "OK, both objects read");
	if (strncmp(out, "OK:", 3) != 0)
		show();

	failing("GET /bucket/arch/head.json", (const char *const[]) {NULL}, "head.json fails");
	failing("GET /bucket?list-type=2&prefix=arch%2Ftables%2F*", (const char *const[]) {NULL}, "the listing fails");
	failing(manifest_route, (const char *const[]) {NULL}, "the manifest fails");
	failing(seg_route, (const char *const[]) {NULL}, "a segment fails");
	failing(chunk_route, (const char *const[]) {NULL}, "a base chunk fails");
	failing(seg_route, (const char *const[]) {"--table", "public.t", NULL}, "--table, a segment fails");
	failing("GET /bucket?list-type=2&prefix=arch%2Ftables%2F16401%2F*", (const char *const[]) {"--table", "public.t", NULL},
			"--table, the table's listing fails");
	failing(seg_route, (const char *const[]) {"--json", NULL}, "--json, a segment fails");

	fixture_close(dir);
	return done_testing();
}
