/* test_s3_options.c — the s3:// driver's settings checked when it opens (no request sent): refusals, defaults, URL style. */
#include "storage.h"
#include "tap.h"

#include <string.h>

static storage_options o;

static void
reset(void)
{
	storage_options_init(&o);
	o.s3.access_key_id = "AKIDEXAMPLE";
	o.s3.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
}

/* Opening url with the options refused, naming the setting. */
static void
refused(const char *url, const char *msg, const char *what)
{
	storage *st = NULL;
	bs_error err;

	error_clear(&err);
	if (!ok(storage_open(url, &o, &st, &err) == BS_ERR && st == NULL && strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0 &&
			strstr(err.message, msg), "%s: refused", what))
		printf("#   code %s: %s\n", err.code, err.message);
	storage_close(st);
	reset();
}

/* Opening url with the options works, and the description says where and how. */
static void
opens(const char *url, const char *description, const char *what)
{
	storage *st = NULL;
	bs_error err;

	error_clear(&err);
	if (!ok(storage_open(url, &o, &st, &err) == BS_OK && strcmp(storage_describe(st), description) == 0, "%s", what))
		printf("#   %s | %s\n", st ? storage_describe(st) : "-", err.message);
	storage_close(st);
	reset();
}

int
main(void)
{
	reset();
	o.s3.uri_style = "virtual";
	refused("s3://bkt/p", "invalid S3 URI style \"virtual\": expected path or host", "an unknown URI style");
	o.s3.part_size = 0;
	refused("s3://bkt/p", "invalid S3 setting", "a part size of 0");
	o.s3.retry_base_ms = -1;
	refused("s3://bkt/p", "invalid S3 setting", "a negative retry delay");
	o.s3.retries = 101;
	refused("s3://bkt/p", "retries must be between 0 and 100", "101 retries");
	o.s3.retries = -1;
	refused("s3://bkt/p", "retries must be between 0 and 100", "-1 retries");
	o.s3.timeout_ms = 999;
	refused("s3://bkt/p", "s3_timeout must be between 1s and 1d", "a timeout under a second");
	o.s3.timeout_ms = INT64_C(86400001);
	refused("s3://bkt/p", "s3_timeout must be between 1s and 1d", "a timeout over a day");
	o.s3.secret_access_key = "";
	refused("s3://bkt/p", "no S3 credentials: set s3_access_key_id and s3_secret_access_key", "an empty secret key");
	o.s3.access_key_id = NULL;
	refused("s3://bkt/p", "no S3 credentials", "no access key id");
	o.s3.endpoint = "ftp://user:secret@host/";
	refused("s3://bkt/p", "expected http:// or https://", "an endpoint that is not HTTP");
	{
		storage *st = NULL;
		bs_error err;

		o.s3.endpoint = "ftp://user:topsecret@host/";
		ok(storage_open("s3://bkt/p", &o, &st, &err) == BS_ERR && strstr(err.message, "topsecret") == NULL,
		   "the endpoint's password is not in the message");
		reset();
	}
	o.s3.region = "eu-west-1; rm";
	refused("s3://bkt/p", "invalid S3 region \"eu-west-1; rm\"", "a region with other characters than letters, digits and -");

	opens("s3://bucket/some/prefix", "s3://bucket/some/prefix/ (endpoint https://s3.us-east-1.amazonaws.com, host style)",
		  "defaults: AWS's endpoint in us-east-1, host style");
	o.s3.region = "eu-west-3";
	opens("s3://bucket/p", "s3://bucket/p/ (endpoint https://s3.eu-west-3.amazonaws.com, host style)", "AWS's endpoint of the region");
	opens("s3://my.bucket/p", "s3://my.bucket/p/ (endpoint https://s3.us-east-1.amazonaws.com, path style)",
		  "a dotted bucket: path style (TLS wildcard certificates)");
	o.s3.endpoint = "http://127.0.0.1:9000///";
	opens("s3://bucket/p", "s3://bucket/p/ (endpoint http://127.0.0.1:9000, path style)",
		  "a custom endpoint: path style, trailing slashes dropped");
	o.s3.endpoint = "https://minio.example:9000";
	o.s3.uri_style = "HOST";
	opens("s3://bucket/p", "s3://bucket/p/ (endpoint https://minio.example:9000, host style)", "the style given wins");
	o.s3.part_size = 1;
	o.s3.retries = 0;
	o.s3.timeout_ms = 1000;
	opens("s3://bucket/p", "s3://bucket/p/ (endpoint https://s3.us-east-1.amazonaws.com, host style)",
		  "the smallest part size, retries and timeout are accepted");
	return done_testing();
}
