/* test_storage_s3.c — the s3:// driver against a scripted HTTP server (fake_s3.h): the answers a real S3 gives rarely, and those it should never give. */
#include "fake_s3.h"
#include "storage.h"
#include "tap.h"

#include <string.h>

#define XML_CAP ((size_t) 16 * 1024 * 1024)

static fake_s3 srv;

/* A raw s3:// storage on the fake server, bucket "bkt", prefix "pre/", with retries. */
static storage *
open_s3(int retries)
{
	storage_options o;
	storage *st = NULL;
	bs_error err;

	storage_options_init(&o);
	o.s3.endpoint = srv.endpoint;
	o.s3.access_key_id = "AKIDEXAMPLE";
	o.s3.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
	o.s3.retries = retries;
	o.s3.retry_base_ms = 0;
	o.s3.timeout_ms = 10000;
	o.s3.part_size = 1;			/* clamped to S3's minimum, 5 MiB */
	if (storage_open_raw("s3://bkt/pre", &o, &st, &err) != BS_OK)
	{
		printf("Bail out! %s\n", err.message);
		exit(1);
	}
	return st;
}

static int
count_key(void *ctx, const char *key, uint64_t size, bs_error *err)
{
	strbuf *sb = ctx;

	(void) err;
	strbuf_printf(sb, "%s:%llu;", key, (unsigned long long) size);
	return BS_OK;
}

static int
refuse_key(void *ctx, const char *key, uint64_t size, bs_error *err)
{
	(void) ctx;
	(void) size;
	return error_set(err, ERRCODE_CANCELED, "callback refused %s", key);
}

/* err has code and its message contains msg; prints both when not. */
static bool
failed_with(int rc, const bs_error *err, const char *code, const char *msg)
{
	bool good = rc == BS_ERR && strcmp(err->code, code) == 0 && strstr(err->message, msg) != NULL;

	if (!good)
		printf("#   rc %d, code %s: %s\n", rc, err->code, err->message);
	return good;
}

static const char *
page(const char *contents, bool truncated, const char *next)
{
	static char bufs[4][4096];
	static int n;
	char *buf = bufs[n++ % 4];

	snprintf(buf, sizeof(bufs[0]),
			 "<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult><IsTruncated>%s</IsTruncated>%s%s%s%s"
			 "</ListBucketResult>",
			 truncated ? "true" : "false", next ? "<NextContinuationToken>" : "", next ? next : "",
			 next ? "</NextContinuationToken>" : "", contents);
	return buf;
}

#define OBJ(k, n) "<Contents><Key>" k "</Key><Size>" #n "</Size></Contents>"

/* ---------- answers larger than the cap (the bug: reported as a connection error) ---------- */

static void
test_oversized_answers(void)
{
	storage *st = open_s3(2);
	bs_error err;
	strbuf keys = STRBUF_INIT;
	strbuf out = STRBUF_INIT;
	char *tag = NULL;
	const char *const del[] = {"a", "b"};
	int rc;

	fake_s3_reset(&srv);
	fake_s3_answer_fill(&srv, 200, "Content-Type: application/xml\r\n", XML_CAP + 1);
	rc = storage_list(st, "", count_key, &keys, &err);
	ok(failed_with(rc, &err, ERRCODE_PROTOCOL, "answer larger than 16777216 bytes"),
	   "a listing page larger than 16 MiB: a protocol error saying so");
	is_int(fake_s3_count(&srv), 1, "the oversized listing is not retried");

	fake_s3_reset(&srv);
	fake_s3_answer_fill(&srv, 200, "Content-Type: application/xml\r\n", XML_CAP + 1);
	rc = storage_delete_many(st, del, 2, &err);
	ok(failed_with(rc, &err, ERRCODE_PROTOCOL, "answer larger than 16777216 bytes"),
	   "a DeleteObjects answer larger than 16 MiB: a protocol error saying so");

	fake_s3_reset(&srv);
	fake_s3_answer_fill(&srv, 200, "ETag: \"t\"\r\n", XML_CAP + 1);
	rc = storage_get_tagged(st, "lease", &out, &tag, &err);
	ok(failed_with(rc, &err, ERRCODE_PROTOCOL, "answer larger than 16777216 bytes") && tag == NULL,
	   "a tagged object larger than 16 MiB: a protocol error saying so");

	/* Exactly the cap is accepted (as a page it is then malformed XML: a protocol error too). */
	fake_s3_reset(&srv);
	fake_s3_answer_fill(&srv, 200, "ETag: \"t\"\r\n", XML_CAP);
	strbuf_reset(&out);
	rc = storage_get_tagged(st, "lease", &out, &tag, &err);
	ok(rc == BS_OK && out.len == XML_CAP && tag && strcmp(tag, "\"t\"") == 0, "an answer of exactly 16 MiB is read");
	free(tag);

	/* An error document larger than its own cap is cut, not refused: the status still tells. */
	fake_s3_reset(&srv);
	fake_s3_answer_fill(&srv, 403, NULL, 100000);
	rc = storage_list(st, "", count_key, &keys, &err);
	ok(failed_with(rc, &err, ERRCODE_AUTH, "HTTP 403"), "an oversized error document: the status is reported");
	strbuf_free(&keys);
	strbuf_free(&out);
	storage_close(st);
}

/* ---------- listing ---------- */

static void
test_list(void)
{
	storage *st = open_s3(0);
	bs_error err;
	strbuf keys = STRBUF_INIT;
	int rc;

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, NULL, page(OBJ("pre/a", 1) OBJ("pre/b", 2), true, "tok1"));
	fake_s3_answer(&srv, 200, NULL, page(OBJ("pre/c", 3) OBJ("pre/dir/", 0) OBJ("pre/x/../y", 4), false, NULL));
	rc = storage_list_after(st, "", "0", count_key, &keys, &err);
	ok(rc == BS_OK && keys.data && strcmp(keys.data, "a:1;b:2;c:3;") == 0,
	   "two pages: every valid key once, the folder placeholder and an invalid key skipped (%s)",
	   keys.data ? keys.data : "");
	ok(strstr(fake_s3_request_line(&srv, 0), "start-after=pre%2F0") != NULL &&
	   strstr(fake_s3_request_line(&srv, 1), "continuation-token=tok1") != NULL &&
	   strstr(fake_s3_request_line(&srv, 1), "start-after") == NULL,
	   "start-after on the first page only, the token on the next (%s | %s)", fake_s3_request_line(&srv, 0),
	   fake_s3_request_line(&srv, 1));

	/* A server that ignores start-after: nothing at or before it is reported. */
	fake_s3_reset(&srv);
	strbuf_reset(&keys);
	fake_s3_answer(&srv, 200, NULL, page(OBJ("pre/a", 1) OBJ("pre/b", 2) OBJ("pre/c", 3), false, NULL));
	rc = storage_list_after(st, "", "b", count_key, &keys, &err);
	ok(rc == BS_OK && keys.data && strcmp(keys.data, "c:3;") == 0, "start-after enforced on the answer (%s)",
	   keys.data ? keys.data : "");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, NULL, page(OBJ("pre/a", 1), true, NULL));
	rc = storage_list(st, "", count_key, &keys, &err);
	ok(failed_with(rc, &err, ERRCODE_PROTOCOL, "truncated page without a new continuation token"),
	   "a truncated page without a token: refused");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, NULL, page(OBJ("pre/a", 1), true, "same"));
	fake_s3_answer(&srv, 200, NULL, page(OBJ("pre/b", 1), true, "same"));
	rc = storage_list(st, "", count_key, &keys, &err);
	ok(failed_with(rc, &err, ERRCODE_PROTOCOL, "without a new continuation token"),
	   "a token given twice: refused, no endless loop");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, NULL, page(OBJ("pre/b", 1) OBJ("pre/a", 1), false, NULL));
	rc = storage_list(st, "", count_key, &keys, &err);
	ok(failed_with(rc, &err, ERRCODE_PROTOCOL, "keys out of order") && strstr(err.message, "S3 list of"),
	   "keys out of order: refused");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, NULL, page(OBJ("other/a", 1), false, NULL));
	rc = storage_list(st, "", count_key, &keys, &err);
	ok(failed_with(rc, &err, ERRCODE_PROTOCOL, "outside the prefix"), "a key outside the prefix: refused");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, NULL, page(OBJ("pre/q/a", 1), false, NULL));
	rc = storage_list(st, "r/", count_key, &keys, &err);
	ok(failed_with(rc, &err, ERRCODE_PROTOCOL, "outside the prefix"), "a key outside the listed prefix: refused");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, NULL, "<ListBucketResult><IsTruncated>false");
	rc = storage_list(st, "", count_key, &keys, &err);
	ok(failed_with(rc, &err, ERRCODE_PROTOCOL, "S3 list of"), "a malformed page: refused");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, NULL, page(OBJ("pre/a", 1), false, NULL));
	rc = storage_list(st, "", refuse_key, NULL, &err);
	ok(failed_with(rc, &err, ERRCODE_CANCELED, "callback refused a") && strstr(err.message, "S3 list") == NULL,
	   "the callback's error is returned as it is");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 404, NULL, "<Error><Code>NoSuchBucket</Code><Message>The bucket does not exist</Message></Error>");
	rc = storage_list(st, "", count_key, &keys, &err);
	ok(failed_with(rc, &err, ERRCODE_STORAGE, "NoSuchBucket: The bucket does not exist"),
	   "a missing bucket: a storage error naming it");
	strbuf_free(&keys);
	storage_close(st);
}

/* ---------- get ---------- */

static void
test_get(void)
{
	storage *st = open_s3(1);
	bs_error err;
	strbuf out = STRBUF_INIT;
	int rc;

	/* A 200 to a ranged request: the whole object, the bytes before the range dropped. */
	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, "ETag: \"e\"\r\n", "0123456789");
	rc = storage_get(st, "k", 3, 4, storage_sink_strbuf, &out, &err);
	ok(rc == BS_OK && out.len == 4 && memcmp(out.data, "3456", 4) == 0, "a 200 to a range: the range cut out of it");
	ok(strstr(fake_s3_request_line(&srv, 0), "GET /bkt/pre/k") != NULL, "path-style key (%s)", fake_s3_request_line(&srv, 0));

	/* A 206 of another range than the one asked for is refused. */
	fake_s3_reset(&srv);
	strbuf_reset(&out);
	fake_s3_answer(&srv, 206, "Content-Range: bytes 0-3/10\r\n", "0123");
	rc = storage_get(st, "k", 3, 4, storage_sink_strbuf, &out, &err);
	ok(failed_with(rc, &err, ERRCODE_PROTOCOL, "is not the one asked for"), "a 206 of another range: refused");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 206, NULL, "0123");
	rc = storage_get(st, "k", 3, 4, storage_sink_strbuf, &out, &err);
	ok(failed_with(rc, &err, ERRCODE_PROTOCOL, "(none)"), "a 206 without Content-Range: refused");

	/* Fewer bytes than the range: out of range, whatever the server said. */
	fake_s3_reset(&srv);
	strbuf_reset(&out);
	fake_s3_answer(&srv, 206, "Content-Range: bytes 8-9/10\r\n", "89");
	rc = storage_get(st, "k", 8, 4, storage_sink_strbuf, &out, &err);
	ok(failed_with(rc, &err, ERRCODE_OUT_OF_RANGE, "beyond the end of \"k\" (10 bytes)"),
	   "a short range: out of range, naming the size");

	/* 416 from the end of the object to its end: empty, as locally. */
	fake_s3_reset(&srv);
	strbuf_reset(&out);
	fake_s3_answer(&srv, 416, "Content-Range: bytes */10\r\n", "");
	rc = storage_get(st, "k", 10, 0, storage_sink_strbuf, &out, &err);
	ok(rc == BS_OK && out.len == 0, "from the end to the end (416 with the size): empty");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 416, NULL, "");
	fake_s3_answer(&srv, 200, "Content-Length: 10\r\n", "");
	rc = storage_get(st, "k", 10, 0, storage_sink_strbuf, &out, &err);
	ok(rc == BS_OK && out.len == 0 && strncmp(fake_s3_request_line(&srv, 1), "HEAD", 4) == 0,
	   "from the end to the end (416 without the size): a HEAD tells");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 416, "Content-Range: bytes */5\r\n", "");
	rc = storage_get(st, "k", 10, 0, storage_sink_strbuf, &out, &err);
	ok(failed_with(rc, &err, ERRCODE_OUT_OF_RANGE, "beyond the end") && err.http_status == 416,
	   "past the end: out of range");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 412, NULL, "");
	rc = storage_get(st, "k", 0, 0, storage_sink_strbuf, &out, &err);
	ok(failed_with(rc, &err, ERRCODE_STORAGE, "changed while it was being read"), "412: the object changed");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 404, NULL, "<Error><Code>NoSuchKey</Code></Error>");
	rc = storage_get(st, "k", 0, 0, storage_sink_strbuf, &out, &err);
	ok(failed_with(rc, &err, ERRCODE_NOT_FOUND, "NoSuchKey"), "404: not found");

	/* A server error is retried (retries = 1), then the answer is read. */
	fake_s3_reset(&srv);
	strbuf_reset(&out);
	fake_s3_answer(&srv, 503, NULL, "<Error><Code>SlowDown</Code></Error>");
	fake_s3_answer(&srv, 200, "ETag: \"e\"\r\n", "abc");
	rc = storage_get(st, "k", 0, 0, storage_sink_strbuf, &out, &err);
	ok(rc == BS_OK && out.len == 3 && fake_s3_count(&srv) == 2, "a 503 retried once, then read");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 500, NULL, "<Error><Code>InternalError</Code><Message>oops</Message></Error>");
	fake_s3_answer(&srv, 500, NULL, "<Error><Code>InternalError</Code><Message>oops</Message></Error>");
	rc = storage_get(st, "k", 0, 0, storage_sink_strbuf, &out, &err);
	ok(failed_with(rc, &err, ERRCODE_TRANSIENT, "(after 2 attempts)"), "500 twice: transient, after 2 attempts");

	/* The sink's refusal stops the transfer and is returned as it is. */
	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, NULL, "abc");
	rc = storage_get(st, "k", 0, 0, (storage_sink) refuse_key, NULL, &err);
	ok(failed_with(rc, &err, ERRCODE_CANCELED, "callback refused"), "the sink's error is returned");
	strbuf_free(&out);
	storage_close(st);
}

/* ---------- head, delete, conditional writes ---------- */

static void
test_head_delete_put_if(void)
{
	storage *st = open_s3(0);
	bs_error err;
	bool exists = true;
	storage_stat sst = {0};
	int rc;

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, "Content-Length: 42\r\nLast-Modified: Wed, 02 Dec 2026 12:00:00 GMT\r\n", "");
	rc = storage_head(st, "k", &exists, &sst, &err);
	ok(rc == BS_OK && exists && sst.size == 42 && sst.mtime == 1796212800, "HEAD: size and time (%lld)",
	   (long long) sst.mtime);

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 404, NULL, "");
	exists = true;
	rc = storage_head(st, "k", &exists, &sst, &err);
	ok(rc == BS_OK && !exists, "HEAD 404: missing");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 403, NULL, "");
	rc = storage_head(st, "k", &exists, &sst, &err);
	ok(failed_with(rc, &err, ERRCODE_AUTH, "forbidden (bad credentials or no permission)"),
	   "HEAD 403: the usual meaning said");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 404, NULL, "<Error><Code>NoSuchKey</Code></Error>");
	ok(storage_delete(st, "k", &err) == BS_OK, "DELETE 404: deleted already");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 409, NULL, "<Error><Code>Conflict</Code></Error>");
	rc = storage_delete(st, "k", &err);
	ok(failed_with(rc, &err, ERRCODE_STORAGE, "HTTP 409 Conflict"), "DELETE 409: a storage error");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 412, NULL, "<Error><Code>PreconditionFailed</Code></Error>");
	rc = storage_put_if(st, "lease", "x", 1, "\"old\"", &err);
	ok(failed_with(rc, &err, ERRCODE_PRECONDITION, "PreconditionFailed"), "put_if 412: precondition");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 409, NULL, "<Error><Code>ConditionalRequestConflict</Code></Error>");
	rc = storage_put_if(st, "lease", "x", 1, NULL, &err);
	ok(failed_with(rc, &err, ERRCODE_PRECONDITION, "ConditionalRequestConflict"), "put_if 409: precondition");
	storage_close(st);
}

/* ---------- DeleteObjects ---------- */

static void
test_delete_many(void)
{
	storage *st = open_s3(1);
	bs_error err;
	const char *const keys[] = {"a", "b", "c", "d", "e"};
	int rc;

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, NULL,
				   "<DeleteResult><Error><Key>pre/a</Key><Code>AccessDenied</Code><Message>no</Message></Error>"
				   "<Error><Key>pre/b</Key><Code>SlowDown</Code></Error></DeleteResult>");
	fake_s3_answer(&srv, 200, NULL, "<DeleteResult><Error><Key>pre/b</Key><Code>SlowDown</Code></Error></DeleteResult>");
	rc = storage_delete_many(st, keys, 2, &err);
	ok(failed_with(rc, &err, ERRCODE_STORAGE, "2 of 2 keys not deleted: \"a\": AccessDenied: no; \"b\": SlowDown"),
	   "a refused key and a transient one sent again and refused again: both named");
	ok(fake_s3_count(&srv) == 2 && strstr(srv.requests[1].body.data, "<Key>pre/b</Key>") &&
	   !strstr(srv.requests[1].body.data, "<Key>pre/a</Key>"), "the second round sends only the transient key");

	/* An error entry for a key that was not sent is not sent again. */
	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, NULL,
				   "<DeleteResult><Error><Key>pre/zz</Key><Code>SlowDown</Code></Error>"
				   "<Error><Key>pre/b</Key><Code>X1</Code></Error><Error><Key>pre/c</Key><Code>X2</Code></Error>"
				   "<Error><Key>pre/d</Key><Code>X3</Code></Error></DeleteResult>");
	rc = storage_delete_many(st, keys, 5, &err);
	ok(failed_with(rc, &err, ERRCODE_STORAGE, "4 of 5 keys not deleted") && strstr(err.message, "; ...") &&
	   fake_s3_count(&srv) == 1, "an unknown key is not retried; more than three failures: the first named");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, NULL, "<DeleteResult><Error><Key>pre/a</Key></Error></DeleteResult>");
	rc = storage_delete_many(st, keys, 1, &err);
	ok(failed_with(rc, &err, ERRCODE_PROTOCOL, "S3 DeleteObjects in bucket \"bkt\""), "a malformed answer: refused");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, NULL, "<DeleteResult></DeleteResult>");
	rc = storage_delete_many(st, keys, 5, &err);
	ok(rc == BS_OK && srv.requests[0].headers && strcasestr(srv.requests[0].headers, "Content-MD5:"),
	   "all deleted; the request carries Content-MD5");
	storage_close(st);
}

/* ---------- puts and multipart uploads ---------- */

static void
test_put(void)
{
	storage *st = open_s3(0);
	bs_error err;
	storage_writer *w = NULL;
	size_t big = (size_t) 5 * 1024 * 1024 + 1;
	char *data = xcalloc(1, big);
	int rc;

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, NULL, "");
	ok(storage_put(st, "k", "abc", 3, &err) == BS_OK && strcmp(srv.requests[0].body.data, "abc") == 0,
	   "a small put: one PUT");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 400, NULL, "<Error><Code>InvalidDigest</Code><Message>bad</Message></Error>");
	rc = storage_put(st, "k", "abc", 3, &err);
	ok(failed_with(rc, &err, ERRCODE_STORAGE, "HTTP 400 InvalidDigest: bad"), "a refused put: the code and message");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 403, NULL, "<Error><Code>AccessDenied</Code></Error>");
	rc = storage_put(st, "k", data, big, &err);
	ok(failed_with(rc, &err, ERRCODE_AUTH, "S3 POST \"k\"") && fake_s3_count(&srv) == 1,
	   "CreateMultipartUpload refused: the put fails, nothing to abort");

	/* CreateMultipartUpload without an UploadId: refused, nothing to abort. */
	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, NULL, "<InitiateMultipartUploadResult></InitiateMultipartUploadResult>");
	rc = storage_put(st, "k", data, big, &err);
	ok(failed_with(rc, &err, ERRCODE_PROTOCOL, "no UploadId in the answer") && fake_s3_count(&srv) == 1,
	   "no UploadId: refused");

	/* UploadPart without an ETag: refused, and the upload aborted. */
	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, NULL, "<InitiateMultipartUploadResult><UploadId>U1</UploadId></InitiateMultipartUploadResult>");
	fake_s3_answer(&srv, 200, NULL, "");
	fake_s3_answer(&srv, 204, NULL, "");
	rc = storage_put(st, "k", data, big, &err);
	ok(failed_with(rc, &err, ERRCODE_PROTOCOL, "UploadPart 1 of \"k\": no ETag"), "a part without ETag: refused");
	ok(fake_s3_count(&srv) == 3 && strncmp(fake_s3_request_line(&srv, 2), "DELETE /bkt/pre/k?uploadId=U1", 30) == 0,
	   "and the upload aborted (%s)", fake_s3_request_line(&srv, 2));
	ok(storage_writer_open(st, "k", &w, &err) == BS_OK, "a writer");

	/* CompleteMultipartUpload answering 200 with an error document: refused, aborted. */
	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, NULL, "<InitiateMultipartUploadResult><UploadId>U2</UploadId></InitiateMultipartUploadResult>");
	fake_s3_answer(&srv, 200, "ETag: \"00112233445566778899aabbccddeeff\"\r\n", "");
	fake_s3_answer(&srv, 200, "ETag: \"00112233445566778899aabbccddeeff\"\r\n", "");
	fake_s3_answer(&srv, 200, NULL, "<Error><Code>AccessDenied</Code><Message>late refusal</Message></Error>");
	fake_s3_answer(&srv, 404, NULL, "<Error><Code>NoSuchUpload</Code></Error>");
	rc = storage_writer_write(w, data, big, &err);
	if (rc == BS_OK)
		rc = storage_writer_write(w, "tail", 4, &err);
	ok(rc == BS_OK, "two parts written");
	rc = storage_writer_commit(w, &err);
	ok(failed_with(rc, &err, ERRCODE_STORAGE, "CompleteMultipartUpload of \"k\" in bucket \"bkt\" failed: AccessDenied: late refusal"),
	   "an error document in a 200 to CompleteMultipartUpload: refused");
	ok(fake_s3_count(&srv) == 5 && strstr(srv.requests[3].body.data, "<PartNumber>2</PartNumber>"),
	   "both parts listed in the completion, then the abort");

	/* A multipart put that works. */
	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, NULL, "<InitiateMultipartUploadResult><UploadId>U3</UploadId></InitiateMultipartUploadResult>");
	fake_s3_answer(&srv, 200, "ETag: \"e1\"\r\n", "");
	fake_s3_answer(&srv, 200, "ETag: \"e2\"\r\n", "");
	fake_s3_answer(&srv, 200, NULL, "<CompleteMultipartUploadResult><ETag>x</ETag></CompleteMultipartUploadResult>");
	ok(storage_put(st, "k", data, big, &err) == BS_OK && fake_s3_count(&srv) == 4 &&
	   strstr(fake_s3_request_line(&srv, 1), "partNumber=1&uploadId=U3"), "a multipart put: create, two parts, complete");
	free(data);
	storage_close(st);
}

/* ---------- transport failures, retries, resumed reads, odd headers ---------- */

static void
test_transport(void)
{
	storage *st = open_s3(1);
	storage *st0 = open_s3(0);
	bs_error err;
	strbuf out = STRBUF_INIT;
	strbuf keys = STRBUF_INIT;
	bool exists = false;
	storage_stat sst = {0};
	storage_writer *w = NULL;
	int rc;

	/* The connection closed without an answer: transient, retried, then reported so. */
	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 0, NULL, NULL);
	fake_s3_answer(&srv, 0, NULL, NULL);
	rc = storage_list(st, "", count_key, &keys, &err);
	ok(failed_with(rc, &err, ERRCODE_TRANSIENT, "(after 2 attempts)") && fake_s3_count(&srv) == 2,
	   "no answer twice: transient, after 2 attempts");
	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 0, NULL, NULL);
	fake_s3_answer(&srv, 200, NULL, page(OBJ("pre/a", 1), false, NULL));
	strbuf_reset(&keys);
	rc = storage_list(st, "", count_key, &keys, &err);
	ok(rc == BS_OK && keys.data && strcmp(keys.data, "a:1;") == 0, "no answer, then a page: the retry reads it");
	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 503, NULL, "<Error><Code>SlowDown</Code></Error>");
	fake_s3_answer(&srv, 200, NULL, page("", false, NULL));
	ok(storage_list(st, "", count_key, &keys, &err) == BS_OK && fake_s3_count(&srv) == 2, "a 503 to a listing: retried");

	/* A read cut short is resumed where it stopped, on the same version of the object. */
	fake_s3_reset(&srv);
	strbuf_reset(&out);
	fake_s3_answer_cut(&srv, 200, "ETag: \"v1\"\r\n", "01234", 10);
	fake_s3_answer(&srv, 206, "Content-Range: bytes 5-9/10\r\n", "56789");
	rc = storage_get(st, "k", 0, 0, storage_sink_strbuf, &out, &err);
	ok(rc == BS_OK && out.len == 10 && memcmp(out.data, "0123456789", 10) == 0, "a cut read resumed: the whole object");
	ok(strcasestr(fake_s3_request_headers(&srv, 1), "Range: bytes=5-") &&
	   strcasestr(fake_s3_request_headers(&srv, 1), "If-Match: \"v1\""), "from byte 5, if the ETag still matches");

	/* Cut after the whole range: nothing is asked again. */
	fake_s3_reset(&srv);
	strbuf_reset(&out);
	fake_s3_answer_cut(&srv, 206, "Content-Range: bytes 2-5/10\r\n", "2345", 8);
	rc = storage_get(st, "k", 2, 4, storage_sink_strbuf, &out, &err);
	ok(rc == BS_OK && out.len == 4 && fake_s3_count(&srv) == 1, "a range complete before the cut: done");

	/* Cut after the whole object (the size known from a 206): nothing is asked again. */
	fake_s3_reset(&srv);
	strbuf_reset(&out);
	fake_s3_answer_cut(&srv, 206, "Content-Range: bytes 0-9/10\r\n", "0123456789", 20);
	rc = storage_get(st, "k", 0, 0, storage_sink_strbuf, &out, &err);
	ok(rc == BS_OK && out.len == 10 && fake_s3_count(&srv) == 1, "a whole object complete before the cut: done");

	fake_s3_reset(&srv);
	fake_s3_answer_cut(&srv, 200, NULL, "01", 10);
	rc = storage_get(st0, "k", 0, 0, storage_sink_strbuf, &out, &err);
	ok(failed_with(rc, &err, ERRCODE_TRANSIENT, "S3 GET \"k\" in bucket \"bkt\" failed"), "a cut read without retries: transient");

	/* A 200 to a range, far into the object: the bytes before it dropped over several pieces. */
	fake_s3_reset(&srv);
	strbuf_reset(&out);
	fake_s3_answer_fill(&srv, 200, NULL, 300000);
	rc = storage_get(st, "k", 250000, 10, storage_sink_strbuf, &out, &err);
	ok(rc == BS_OK && out.len == 10 && memcmp(out.data, "xxxxxxxxxx", 10) == 0, "a 200 to a range far in: cut out of it");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 206, "Content-Range: bytes x-y/z\r\n", "0123");
	rc = storage_get(st, "k", 3, 4, storage_sink_strbuf, &out, &err);
	ok(failed_with(rc, &err, ERRCODE_PROTOCOL, "bytes x-y/z"), "a malformed Content-Range: refused");

	/* Headers that repeat or do not parse. */
	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, "x-amz-request-id: one\r\nx-amz-request-id: two\r\nLast-Modified: not a date\r\n"
				   "Content-Length: 7\r\n", "");
	rc = storage_head(st, "k", &exists, &sst, &err);
	ok(rc == BS_OK && exists && sst.mtime == 0, "an unparsable Last-Modified: time unknown");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 416, NULL, "<Error><Code>InvalidRange</Code></Error>");
	{
		char *tag = NULL;

		rc = storage_get_tagged(st, "lease", &out, &tag, &err);
		ok(failed_with(rc, &err, ERRCODE_OUT_OF_RANGE, "InvalidRange") && tag == NULL, "a 416 to a whole read: out of range");
	}

	/* A writer whose part failed refuses more data and its commit; the abort's failure is logged. */
	{
		size_t big = (size_t) 5 * 1024 * 1024 + 1;
		char *data = xcalloc(1, big);

		fake_s3_reset(&srv);
		fake_s3_answer(&srv, 200, NULL, "<InitiateMultipartUploadResult><UploadId>U9</UploadId></InitiateMultipartUploadResult>");
		fake_s3_answer(&srv, 400, NULL, "<Error><Code>EntityTooSmall</Code></Error>");
		fake_s3_answer(&srv, 403, NULL, "<Error><Code>AccessDenied</Code></Error>");
		ok(storage_writer_open(st0, "k", &w, &err) == BS_OK, "a writer");
		rc = storage_writer_write(w, data, big, &err);
		ok(failed_with(rc, &err, ERRCODE_STORAGE, "EntityTooSmall") && fake_s3_count(&srv) == 3 &&
		   strncmp(fake_s3_request_line(&srv, 2), "DELETE", 6) == 0, "a refused part: the write fails, the upload aborted");
		ok(failed_with(storage_writer_write(w, "x", 1, &err), &err, ERRCODE_INTERNAL, "write to a failed storage writer"),
		   "more data refused");
		ok(failed_with(storage_writer_commit(w, &err), &err, ERRCODE_INTERNAL, "commit of a failed storage writer"),
		   "its commit refused");
		free(data);
	}
	strbuf_free(&out);
	strbuf_free(&keys);
	storage_close(st);
	storage_close(st0);
}

/*
 * CompleteMultipartUpload answered with a transient error document, then NoSuchUpload: the
 * first round may have completed and only its answer been lost, and the object's ETag tells.
 */
static void
test_complete_lost_answer(void)
{
	storage *st = open_s3(1);
	bs_error err;
	size_t big = (size_t) 5 * 1024 * 1024 + 1;
	char *data = xcalloc(1, big);
	const char *transient = "<Error><Code>InternalError</Code><Message>try again</Message></Error>";
	int rc;

	for (int right = 1; right >= 0; right--)
	{
		fake_s3_reset(&srv);
		fake_s3_answer(&srv, 200, NULL, "<InitiateMultipartUploadResult><UploadId>U5</UploadId></InitiateMultipartUploadResult>");
		fake_s3_answer(&srv, 200, "ETag: \"00112233445566778899aabbccddeeff\"\r\n", "");
		fake_s3_answer(&srv, 200, "ETag: \"ffeeddccbbaa99887766554433221100\"\r\n", "");
		fake_s3_answer(&srv, 200, NULL, transient);
		fake_s3_answer(&srv, 404, NULL, "<Error><Code>NoSuchUpload</Code></Error>");
		/* MD5 of the parts' binary MD5s, and the number of parts. */
		fake_s3_answer(&srv, 200, right ? "ETag: \"2c9fc96c5e9c12cc2e04537710e74a63-2\"\r\n" : "ETag: \"other-2\"\r\n", "");
		fake_s3_answer(&srv, 204, NULL, "");
		rc = storage_put(st, "k", data, big, &err);
		if (right)
			ok(rc == BS_OK && fake_s3_count(&srv) == 6 && strncmp(fake_s3_request_line(&srv, 5), "HEAD /bkt/pre/k", 15) == 0,
			   "NoSuchUpload after a lost answer, and the object has the parts' ETag: stored");
		else
			ok(failed_with(rc, &err, ERRCODE_NOT_FOUND, "NoSuchUpload") && fake_s3_count(&srv) == 7,
			   "NoSuchUpload, and the object is another: refused (and aborted)");
	}
	/* Part ETags that are no MD5: the object's ETag cannot be predicted, so no HEAD can tell. */
	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, NULL, "<InitiateMultipartUploadResult><UploadId>U7</UploadId></InitiateMultipartUploadResult>");
	fake_s3_answer(&srv, 200, "ETag: \"part-one\"\r\n", "");
	fake_s3_answer(&srv, 200, "ETag: \"part-two\"\r\n", "");
	fake_s3_answer(&srv, 200, NULL, transient);
	fake_s3_answer(&srv, 404, NULL, "<Error><Code>NoSuchUpload</Code></Error>");
	fake_s3_answer(&srv, 204, NULL, "");
	rc = storage_put(st, "k", data, big, &err);
	ok(failed_with(rc, &err, ERRCODE_NOT_FOUND, "NoSuchUpload") && fake_s3_count(&srv) == 6 &&
	   strncmp(fake_s3_request_line(&srv, 5), "DELETE", 6) == 0, "NoSuchUpload with parts that are no MD5: refused, no HEAD");

	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, NULL, "<InitiateMultipartUploadResult><UploadId>U6</UploadId></InitiateMultipartUploadResult>");
	fake_s3_answer(&srv, 200, "ETag: \"e1\"\r\n", "");
	fake_s3_answer(&srv, 200, "ETag: \"e2\"\r\n", "");
	fake_s3_answer(&srv, 200, NULL, transient);
	fake_s3_answer(&srv, 200, NULL, transient);
	fake_s3_answer(&srv, 204, NULL, "");
	rc = storage_put(st, "k", data, big, &err);
	ok(failed_with(rc, &err, ERRCODE_TRANSIENT, "CompleteMultipartUpload of \"k\" in bucket \"bkt\" failed: InternalError: try again"),
	   "a transient error document twice: transient");
	free(data);
	storage_close(st);
}

/* Host-style requests: the bucket in the host name (*.localhost resolves to the loopback). */
static void
test_host_style(void)
{
	storage_options o;
	storage *st = NULL;
	bs_error err;
	char endpoint[64];

	snprintf(endpoint, sizeof(endpoint), "http://localhost:%d/", srv.port);
	storage_options_init(&o);
	o.s3.endpoint = endpoint;
	o.s3.uri_style = "host";
	o.s3.access_key_id = "AKIDEXAMPLE";
	o.s3.secret_access_key = "secret";
	o.s3.session_token = "token";
	o.s3.ca_file = "/nonexistent/ca.pem";
	o.s3.retries = 0;
	if (!ok(storage_open_raw("s3://bkt/pre", &o, &st, &err) == BS_OK, "a host-style storage"))
		return;
	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, NULL, "");
	ok(storage_put(st, "k", "v", 1, &err) == BS_OK && strcmp(fake_s3_request_line(&srv, 0), "PUT /pre/k") == 0 &&
	   strcasestr(fake_s3_request_headers(&srv, 0), "Host: bkt.localhost") &&
	   strcasestr(fake_s3_request_headers(&srv, 0), "x-amz-security-token: token"),
	   "the bucket in the host name, the key in the path, the session token sent (%s)", fake_s3_request_line(&srv, 0));
	fake_s3_reset(&srv);
	fake_s3_answer(&srv, 200, NULL, page("", false, NULL));
	{
		strbuf keys = STRBUF_INIT;

		ok(storage_list(st, "", count_key, &keys, &err) == BS_OK &&
		   strncmp(fake_s3_request_line(&srv, 0), "GET /?list-type=2&prefix=pre%2F", 31) == 0,
		   "a host-style listing: the bucket's root (%s)", fake_s3_request_line(&srv, 0));
		strbuf_free(&keys);
	}
	storage_close(st);

	/* An endpoint curl cannot parse: a connection error, not retried. */
	o.s3.endpoint = "http://[::1";
	o.s3.uri_style = "path";
	o.s3.retries = 3;
	if (ok(storage_open_raw("s3://bkt/pre", &o, &st, &err) == BS_OK, "an endpoint that only looks like a URL opens"))
	{
		ok(failed_with(storage_put(st, "k", "v", 1, &err), &err, ERRCODE_CONNECTION, "failed") &&
		   strstr(err.message, "attempts") == NULL, "its requests fail at once as connection errors: %s", err.message);
		storage_close(st);
	}
}

int
main(void)
{
	fake_s3_start(&srv);
	test_oversized_answers();
	test_list();
	test_get();
	test_head_delete_put_if();
	test_delete_many();
	test_put();
	test_transport();
	test_complete_lost_answer();
	test_host_style();
	fake_s3_stop(&srv);
	return done_testing();
}
