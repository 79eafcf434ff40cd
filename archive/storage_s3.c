/* storage_s3.c — the s3:// storage driver: S3 REST API over libcurl (SigV4 by libcurl), with retries. */
#include "autoconf.h"
#include "storage_s3.h"
#include "digest.h"
#include "s3xml.h"
#include "clock.h"
#include "log.h"
#include "redact.h"
#include "strbuf.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define MIN_PART_SIZE ((size_t) 5 * 1024 * 1024)	/* S3's minimum for all but the last part */
#define MAX_PART_SIZE ((size_t) 5 * 1024 * 1024 * 1024)
#define MAX_PARTS 10000
#define MAX_XML_BODY ((size_t) 16 * 1024 * 1024)	/* listing pages and multipart answers */
#define MAX_ERROR_BODY ((size_t) 64 * 1024)
#define MAX_RETRY_DELAY_MS 20000

typedef struct s3_storage
{
	storage		base;
	CURL	   *curl;			/* one handle, so that connections are reused */
	char	   *bucket;
	char	   *prefix;			/* "" or ending in '/' */
	char	   *endpoint;		/* scheme://host[:port][/path], no trailing '/' */
	bool		path_style;
	char	   *sigv4;			/* "aws:amz:REGION:s3" */
	char	   *access_key;
	char	   *secret_key;
	char	   *session_token;
	char	   *ca_file;
	bool		verify_tls;
	size_t		part_size;
	long		timeout_ms;
	int			retries;
	long		retry_base_ms;
	uint64_t	rng;			/* jitter only; not security relevant */
	char		errbuf[CURL_ERROR_SIZE];
} s3_storage;

typedef struct s3_request
{
	const char *method;			/* GET, HEAD, PUT, POST, DELETE */
	const char *key;			/* full object key, or NULL for the bucket */
	const char *query;			/* canonical query (sorted, encoded), or NULL */
	const char *what;			/* key for messages (without the prefix) */
	const void *body;
	size_t		body_len;
	const char *content_type;
	const char *content_md5;	/* base64 MD5 of the body (DeleteObjects requires one) */
	const char *range;
	const char *if_match;
	const char *if_none_match;
	/* Streaming GET: 2xx bodies go to the sink instead of the body buffer. */
	storage_sink sink;
	void	   *sink_ctx;
	uint64_t	range_start;	/* first byte asked for with Range */
	uint64_t	limit;			/* deliver at most this many, 0: no limit */
} s3_request;

typedef struct s3_response
{
	long		status;
	strbuf		body;
	char	   *etag;
	char	   *content_range;
	char	   *last_modified;
	char	   *request_id;
	uint64_t	content_length;
	bool		has_length;
	uint64_t	delivered;		/* bytes handed to the sink */
	uint64_t	skipped;
	bool		range_checked;	/* a 206's Content-Range matched the range asked for */
	/* The write callback stopped the transfer (the sink refused, a range or an answer was
	 * wrong): sink_err says why, where curl would say only "Failed writing received data". */
	bool		sink_failed;
	bs_error	sink_err;
	/* upload cursor */
	size_t		upload_pos;
	const s3_request *req;
} s3_response;

typedef struct s3_writer
{
	storage_writer base;
	char	   *key;			/* full key */
	char	   *what;			/* key as given */
	strbuf		buf;
	char	   *upload_id;
	char	  **etags;
	int			nparts;
	bool		failed;
} s3_writer;

/* ---------------------------------------------------------------- helpers */

static void
response_reset(s3_response *r)
{
	strbuf_reset(&r->body);
	free(r->etag);
	free(r->content_range);
	free(r->last_modified);
	free(r->request_id);
	r->etag = r->content_range = r->last_modified = r->request_id = NULL;
	r->status = 0;
	r->content_length = 0;
	r->has_length = false;
	r->delivered = 0;
	r->skipped = 0;
	r->range_checked = false;
	r->sink_failed = false;
	r->upload_pos = 0;
}

static void
response_free(s3_response *r)
{
	response_reset(r);
	strbuf_free(&r->body);
}

/* RFC 3986 encoding as SigV4 wants it: unreserved characters stay, '/' optionally. */
static void
uri_encode(strbuf *sb, const char *s, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
	{
		if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' || (keep_slash && *p == '/'))
			strbuf_append_char(sb, (char) *p);
		else
		{
			strbuf_append_char(sb, '%');
			strbuf_append_char(sb, hex[*p >> 4]);
			strbuf_append_char(sb, hex[*p & 15]);
		}
	}
}

static char *
full_key(const s3_storage *s3, const char *key)
{
	strbuf sb = STRBUF_INIT;

	strbuf_append_str(&sb, s3->prefix);
	strbuf_append_str(&sb, key);
	return strbuf_detach(&sb, NULL);
}

static char *
request_url(const s3_storage *s3, const s3_request *req)
{
	strbuf sb = STRBUF_INIT;

	if (s3->path_style)
		strbuf_printf(&sb, "%s/%s", s3->endpoint, s3->bucket);
	else
	{
		const char *sep = strstr(s3->endpoint, "://");

		strbuf_printf(&sb, "%.*s%s.%s", (int) (sep + 3 - s3->endpoint), s3->endpoint, s3->bucket, sep + 3);
	}
	if (req->key)
	{
		strbuf_append_char(&sb, '/');
		uri_encode(&sb, req->key, true);
	}
	else if (!s3->path_style)
		strbuf_append_char(&sb, '/');
	if (req->query)
	{
		strbuf_append_char(&sb, '?');
		strbuf_append_str(&sb, req->query);
	}
	return strbuf_detach(&sb, NULL);
}

static uint64_t
next_random(s3_storage *s3)
{
	/* xorshift64* */
	s3->rng ^= s3->rng >> 12;
	s3->rng ^= s3->rng << 25;
	s3->rng ^= s3->rng >> 27;
	return s3->rng * 2685821657736338717ULL;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Exponential backoff with jitter: a random delay in [d/2, d], d = base * 2^(attempt-1). */
static long
retry_delay_ms(s3_storage *s3, int attempt)
{
	long d = s3->retry_base_ms > 0 ? s3->retry_base_ms : 1;

	for (int i = 1; i < attempt && d < MAX_RETRY_DELAY_MS; i++)
		d *= 2;
	if (d > MAX_RETRY_DELAY_MS)
		d = MAX_RETRY_DELAY_MS;
	return d / 2 + (long) (next_random(s3) % (uint64_t) (d / 2 + 1));
}

/* ---------------------------------------------------------------- one HTTP exchange */

static char *
header_value(const char *line, size_t len, const char *name)
{
	size_t		n = strlen(name);
	const char *v,
			   *e;

	if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
		return NULL;
	v = line + n + 1;
	e = line + len;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t'))
		e--;
	return xstrndup(v, (size_t) (e - v));
}

static size_t
header_cb(char *data, size_t size, size_t nmemb, void *ud)
{
	s3_response *r = ud;
	size_t		len = size * nmemb;
	char	   *v;

	if (len >= 5 && strncmp(data, "HTTP/", 5) == 0)
	{
		/* A new status line (after 100 Continue, too): forget earlier headers. */
		const char *sp = memchr(data, ' ', len);

		free(r->etag);
		free(r->content_range);
		free(r->last_modified);
		free(r->request_id);
		r->etag = r->content_range = r->last_modified = r->request_id = NULL;
		r->has_length = false;
		r->status = 0;
		if (sp && (size_t) (sp - data) + 4 <= len && isdigit((unsigned char) sp[1]) &&
			isdigit((unsigned char) sp[2]) && isdigit((unsigned char) sp[3]))
			r->status = (sp[1] - '0') * 100 + (sp[2] - '0') * 10 + (sp[3] - '0');
		return len;
	}
	if ((v = header_value(data, len, "ETag")) != NULL)
	{
		free(r->etag);
		r->etag = v;
	}
	else if ((v = header_value(data, len, "Content-Range")) != NULL)
	{
		free(r->content_range);
		r->content_range = v;
	}
	else if ((v = header_value(data, len, "Last-Modified")) != NULL)
	{
		free(r->last_modified);
		r->last_modified = v;
	}
	else if ((v = header_value(data, len, "x-amz-request-id")) != NULL)
	{
		free(r->request_id);
		r->request_id = v;
	}
	else if ((v = header_value(data, len, "Content-Length")) != NULL)
	{
		char	   *end;
		unsigned long long n;

		errno = 0;
		n = strtoull(v, &end, 10);
		r->has_length = (errno == 0 && end != v && *end == '\0' && v[0] != '-');
		r->content_length = r->has_length ? n : 0;
		free(v);
	}
	return len;
}

/* "bytes a-b/total" -> start and total (total 0 when "*"). */
static bool
parse_content_range(const char *v, uint64_t *start, uint64_t *total)
{
	unsigned long long a, b, t;
	char		tail;

	if (v == NULL)
		return false;
	if (sscanf(v, "bytes %llu-%llu/%llu%c", &a, &b, &t, &tail) == 3 && b >= a)
	{
		*start = a;
		*total = t;
		return true;
	}
	return false;
}

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
	s3_response *r = ud;
	const s3_request *req = r->req;
	size_t		len = size * nmemb;

	if (req->sink && r->status >= 200 && r->status < 300)
	{
		const char *p = data;
		size_t		n = len;

		/* A partial answer must be the range asked for: other bytes would pass for it. */
		if (r->status == 206 && !r->range_checked)
		{
			uint64_t	start,
						total;

			if (!parse_content_range(r->content_range, &start, &total) || start != req->range_start)
			{
				error_set(&r->sink_err, ERRCODE_PROTOCOL,
						  "S3 GET \"%s\": the answer's range \"%.80s\" is not the one asked for (from byte %llu)",
						  req->what ? req->what : "", r->content_range ? r->content_range : "(none)",
						  (unsigned long long) req->range_start);
				r->sink_failed = true;
				return 0;
			}
			r->range_checked = true;
		}

		/* A 200 to a ranged request is the whole object: drop the bytes before the range. */
		uint64_t	skip = r->status == 200 ? req->range_start : 0;

		if (r->skipped < skip)
		{
			uint64_t	drop = skip - r->skipped;

			if (drop > n)
				drop = n;
			r->skipped += drop;
			p += drop;
			n -= (size_t) drop;
		}
		if (req->limit && n > req->limit - r->delivered)
			n = (size_t) (req->limit - r->delivered);
		if (n > 0)
		{
			if (req->sink(req->sink_ctx, p, n, &r->sink_err) != BS_OK)
			{
				r->sink_failed = true;
				return 0;		/* aborts the transfer with CURLE_WRITE_ERROR */
			}
			r->delivered += n;
		}
		return len;
	}
	/* Buffered answers (XML, error documents) are bounded. */
	{
		size_t		cap = (r->status >= 200 && r->status < 300) ? MAX_XML_BODY : MAX_ERROR_BODY;

		if (r->body.len + len > cap)
		{
			/* An error document is cut: its status tells enough. */
			if (r->status < 200 || r->status >= 300)
				return len;
			error_set(&r->sink_err, ERRCODE_PROTOCOL, "S3 %s \"%s\": answer larger than %zu bytes",
					  req->method, req->what ? req->what : "", cap);
			r->sink_failed = true;
			return 0;			/* aborts the transfer with CURLE_WRITE_ERROR */
		}
		strbuf_append(&r->body, data, len);
	}
	return len;
}

static size_t
read_cb(char *buf, size_t size, size_t nmemb, void *ud)
{
	s3_response *r = ud;
	size_t		want = size * nmemb;
	size_t		left = r->req->body_len - r->upload_pos;

	if (want > left)
		want = left;
	if (want > 0)
		memcpy(buf, (const char *) r->req->body + r->upload_pos, want);
	r->upload_pos += want;
	return want;
}

static int
seek_cb(void *ud, curl_off_t offset, int origin)
{
	s3_response *r = ud;

	if (origin != SEEK_SET || offset < 0 || (uint64_t) offset > r->req->body_len)
		return CURL_SEEKFUNC_FAIL;
	r->upload_pos = (size_t) offset;
	return CURL_SEEKFUNC_OK;
}

/* hdrs with the header "name: value" appended, unless value is NULL; line is scratch space. */
static struct curl_slist *
add_header(struct curl_slist *hdrs, strbuf *line, const char *name, const char *value)
{
	if (value == NULL)
		return hdrs;
	strbuf_reset(line);
	strbuf_printf(line, "%s: %s", name, value);
	return curl_slist_append(hdrs, line->data);
}

/* Perform one attempt; returns the curl result (the HTTP status is in resp). */
static CURLcode
s3_attempt(s3_storage *s3, const s3_request *req, s3_response *resp)
{
	CURL	   *c = s3->curl;
	struct curl_slist *hdrs = NULL;
	char		hash[65];
	char	   *url;
	strbuf		line = STRBUF_INIT;
	CURLcode	rc;
	long		low_speed_time = s3->timeout_ms > 0 ? (s3->timeout_ms + 999) / 1000 : 60;

	response_reset(resp);
	resp->req = req;
	s3->errbuf[0] = '\0';
	/* Reset keeps the connection cache: only options are cleared. */
	curl_easy_reset(c);
	url = request_url(s3, req);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, s3->errbuf);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "backstop/" PACKAGE_VERSION);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, s3->timeout_ms > 0 ? s3->timeout_ms : 60000L);
	/* Stall detection: less than 1 byte/s for the whole timeout aborts the attempt. */
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, low_speed_time);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, s3->verify_tls ? 1L : 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, s3->verify_tls ? 2L : 0L);
	if (s3->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, s3->ca_file);
	curl_easy_setopt(c, CURLOPT_AWS_SIGV4, s3->sigv4);
	curl_easy_setopt(c, CURLOPT_USERNAME, s3->access_key);
	curl_easy_setopt(c, CURLOPT_PASSWORD, s3->secret_key);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, resp);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);

	/* libcurl 7.88 signs with the payload hash given in this header; S3 verifies it. */
	if (req->body_len > 0)
		digest_sha256_hex(req->body, req->body_len, hash);
	else
		memcpy(hash, EMPTY_SHA256, sizeof(hash));
	hdrs = add_header(hdrs, &line, "x-amz-content-sha256", hash);
	hdrs = add_header(hdrs, &line, "x-amz-security-token", s3->session_token);
	hdrs = add_header(hdrs, &line, "Range", req->range);
	hdrs = add_header(hdrs, &line, "If-Match", req->if_match);
	hdrs = add_header(hdrs, &line, "If-None-Match", req->if_none_match);
	hdrs = add_header(hdrs, &line, "Content-Type", req->content_type);
	hdrs = add_header(hdrs, &line, "Content-MD5", req->content_md5);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);

	if (strcmp(req->method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (strcmp(req->method, "PUT") == 0)
	{
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(c, CURLOPT_READDATA, resp);
		curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, seek_cb);
		curl_easy_setopt(c, CURLOPT_SEEKDATA, resp);
		curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t) req->body_len);
		/* Skip the 100-continue round trip; the body is already in memory. */
		curl_easy_setopt(c, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
	}
	else if (strcmp(req->method, "POST") == 0)
	{
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body_len ? (const char *) req->body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_len);
	}
	else if (strcmp(req->method, "DELETE") == 0)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "DELETE");

	rc = curl_easy_perform(c);
	if (rc == CURLE_OK || resp->status == 0)
	{
		long		code = 0;

		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		if (code)
			resp->status = code;
	}
	curl_slist_free_all(hdrs);
	strbuf_free(&line);
	free(url);
	return rc;
}

static bool
curl_transient(CURLcode rc)
{
	switch (rc)
	{
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_CONNECT:
		case CURLE_OPERATION_TIMEDOUT:
		case CURLE_RECV_ERROR:
		case CURLE_SEND_ERROR:
		case CURLE_PARTIAL_FILE:
		case CURLE_GOT_NOTHING:
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_HTTP2:
		case CURLE_HTTP2_STREAM:
		case CURLE_WEIRD_SERVER_REPLY:
			return true;
		default:
			return false;
	}
}

static bool
status_transient(long status)
{
	return status >= 500 || status == 408 || status == 429;
}

static bool
s3_code_transient(const char *code)
{
	return strcmp(code, "RequestTimeout") == 0 || strcmp(code, "InternalError") == 0 ||
		strcmp(code, "SlowDown") == 0 || strcmp(code, "ServiceUnavailable") == 0;
}

/* Fill err for a failed attempt: HTTP answer or transport failure. */
static int
s3_fail(s3_storage *s3, const s3_request *req, const s3_response *resp, CURLcode rc,
		int attempts, bs_error *err)
{
	strbuf		code = STRBUF_INIT;
	strbuf		msg = STRBUF_INIT;
	char		after[64] = "";
	const char *errcode;

	if (attempts > 1)
		snprintf(after, sizeof(after), " (after %d attempts)", attempts);
	if (rc != CURLE_OK)
	{
		error_set(err, curl_transient(rc) ? ERRCODE_TRANSIENT : ERRCODE_CONNECTION,
				  "S3 %s \"%s\" in bucket \"%s\" failed: %s%s%s%s",
				  req->method, req->what ? req->what : "", s3->bucket, curl_easy_strerror(rc),
				  s3->errbuf[0] ? " (" : "", s3->errbuf[0] ? s3->errbuf : "", s3->errbuf[0] ? ")" : "");
		if (after[0])
		{
			size_t		l = strlen(err->message);

			snprintf(err->message + l, sizeof(err->message) - l, "%s", after);
		}
		return BS_ERR;
	}
	s3xml_error_doc(resp->body.data, resp->body.len, &code, &msg);
	if (resp->status == 404 && code.data && strcmp(code.data, "NoSuchBucket") == 0)
		errcode = ERRCODE_STORAGE;
	else if (resp->status == 404)
		errcode = ERRCODE_NOT_FOUND;
	else if (resp->status == 403 || resp->status == 401)
		errcode = ERRCODE_AUTH;
	else if (resp->status == 416)
		errcode = ERRCODE_OUT_OF_RANGE;
	else if (status_transient(resp->status) || (code.data && s3_code_transient(code.data)))
		errcode = ERRCODE_TRANSIENT;
	else
		errcode = ERRCODE_STORAGE;
	/* HEAD answers have no error document; say what the status usually means. */
	if (code.len == 0 && msg.len == 0)
		strbuf_append_str(&msg, resp->status == 403 ? "forbidden (bad credentials or no permission)" :
						  resp->status == 404 ? "not found" : "no error document");
	error_set(err, errcode, "S3 %s \"%s\" in bucket \"%s\" failed: HTTP %ld%s%s: %.300s%s",
			  req->method, req->what ? req->what : "", s3->bucket, resp->status,
			  code.len ? " " : "", code.len ? code.data : "", msg.data, after);
	err->http_status = (int) resp->status;
	strbuf_free(&code);
	strbuf_free(&msg);
	return BS_ERR;
}

/*
 * Run a request with retries.  On success resp holds the 2xx answer.  Retries cover
 * transport failures, 5xx, 408, 429 and S3's RequestTimeout; other answers fail at once.
 */
static int
s3_execute(s3_storage *s3, const s3_request *req, s3_response *resp, bs_error *err)
{
	int			max_attempts = 1 + (s3->retries > 0 ? s3->retries : 0);

	for (int attempt = 1;; attempt++)
	{
		CURLcode	rc = s3_attempt(s3, req, resp);
		bool		retry;
		long		delay;

		if (resp->sink_failed)
		{
			*err = resp->sink_err;
			return BS_ERR;
		}
		if (rc == CURLE_OK && resp->status >= 200 && resp->status < 300)
			return BS_OK;
		if (rc != CURLE_OK)
			retry = curl_transient(rc);
		else
		{
			strbuf		code = STRBUF_INIT;
			strbuf		msg = STRBUF_INIT;

			s3xml_error_doc(resp->body.data, resp->body.len, &code, &msg);
			retry = status_transient(resp->status) || (code.data && s3_code_transient(code.data));
			strbuf_free(&code);
			strbuf_free(&msg);
		}
		if (!retry || attempt >= max_attempts)
			return s3_fail(s3, req, resp, rc, attempt, err);
		delay = retry_delay_ms(s3, attempt);
		if (rc != CURLE_OK)
			log_warning("storage: S3 %s \"%s\": %s; retrying in %ld ms (attempt %d of %d)",
						req->method, req->what ? req->what : "", curl_easy_strerror(rc), delay,
						attempt + 1, max_attempts);
		else
			log_warning("storage: S3 %s \"%s\": HTTP %ld; retrying in %ld ms (attempt %d of %d)",
						req->method, req->what ? req->what : "", resp->status, delay,
						attempt + 1, max_attempts);
		sleep_ms(delay);
	}
}

/* ---------------------------------------------------------------- put */

static int
s3_writer_open(storage *st, const char *key, storage_writer **out, bs_error *err)
{
	s3_writer  *w = xcalloc(1, sizeof(*w));

	(void) err;
	w->base.st = st;
	w->key = full_key((s3_storage *) st, key);
	w->what = xstrdup(key);
	*out = &w->base;
	return BS_OK;
}

static void
s3_abort_upload(s3_storage *s3, s3_writer *w)
{
	strbuf		q = STRBUF_INIT;
	s3_request	req = {0};
	s3_response resp = {0};
	bs_error	err;

	if (w->upload_id == NULL)
		return;
	strbuf_append_str(&q, "uploadId=");
	uri_encode(&q, w->upload_id, false);
	req.method = "DELETE";
	req.key = w->key;
	req.query = q.data;
	req.what = w->what;
	if (s3_execute(s3, &req, &resp, &err) != BS_OK && err.http_status != 404)
		log_warning("storage: could not abort multipart upload of \"%s\" (upload id %s): %s; "
					"the parts stay billed until a lifecycle rule removes them",
					w->what, w->upload_id, err.message);
	free(w->upload_id);
	w->upload_id = NULL;
	response_free(&resp);
	strbuf_free(&q);
}

static int
s3_start_upload(s3_storage *s3, s3_writer *w, bs_error *err)
{
	s3_request	req = {0};
	s3_response resp = {0};
	strbuf		id = STRBUF_INIT;
	int			rc = BS_ERR;

	req.method = "POST";
	req.key = w->key;
	req.query = "uploads=";
	req.what = w->what;
	if (s3_execute(s3, &req, &resp, err) != BS_OK)
		goto out;
	if (!s3xml_upload_id(resp.body.data, resp.body.len, &id))
	{
		error_set(err, ERRCODE_PROTOCOL, "S3 CreateMultipartUpload of \"%s\": no UploadId in the answer", w->what);
		goto out;
	}
	w->upload_id = strbuf_detach(&id, NULL);
	rc = BS_OK;
out:
	strbuf_free(&id);
	response_free(&resp);
	return rc;
}

static int
s3_upload_part(s3_storage *s3, s3_writer *w, bs_error *err)
{
	s3_request	req = {0};
	s3_response resp = {0};
	strbuf		q = STRBUF_INIT;
	int			rc = BS_ERR;

	if (w->nparts >= MAX_PARTS)
		return error_set(err, ERRCODE_OUT_OF_RANGE,
						 "object \"%s\" needs more than %d parts of %zu bytes; raise s3_multipart_threshold",
						 w->what, MAX_PARTS, ((s3_storage *) w->base.st)->part_size);
	if (w->upload_id == NULL && s3_start_upload(s3, w, err) != BS_OK)
		return BS_ERR;
	/* Parameters in canonical (sorted) order: libcurl 7.88 signs the query as given. */
	strbuf_printf(&q, "partNumber=%d&uploadId=", w->nparts + 1);
	uri_encode(&q, w->upload_id, false);
	req.method = "PUT";
	req.key = w->key;
	req.query = q.data;
	req.what = w->what;
	req.body = w->buf.data;
	req.body_len = w->buf.len;
	if (s3_execute(s3, &req, &resp, err) != BS_OK)
		goto out;
	if (resp.etag == NULL || resp.etag[0] == '\0')
	{
		error_set(err, ERRCODE_PROTOCOL, "S3 UploadPart %d of \"%s\": no ETag in the answer", w->nparts + 1, w->what);
		goto out;
	}
	w->etags = xrealloc(w->etags, (size_t) (w->nparts + 1) * sizeof(char *));
	w->etags[w->nparts++] = resp.etag;
	resp.etag = NULL;
	strbuf_reset(&w->buf);
	rc = BS_OK;
out:
	response_free(&resp);
	strbuf_free(&q);
	return rc;
}

static int
s3_writer_write(storage_writer *base, const void *data, size_t len, bs_error *err)
{
	s3_writer  *w = (s3_writer *) base;
	s3_storage *s3 = (s3_storage *) base->st;
	const char *p = data;

	if (w->failed)
		return error_set(err, ERRCODE_INTERNAL, "write to a failed storage writer for \"%s\"", w->what);
	while (len > 0)
	{
		size_t		room;

		/* A full buffer becomes a part only once more data proves the object is larger. */
		if (w->buf.len >= s3->part_size)
		{
			if (s3_upload_part(s3, w, err) != BS_OK)
			{
				w->failed = true;
				s3_abort_upload(s3, w);
				return BS_ERR;
			}
		}
		room = s3->part_size - w->buf.len;
		if (room > len)
			room = len;
		strbuf_append(&w->buf, p, room);
		p += room;
		len -= room;
	}
	return BS_OK;
}

/* The ETag S3 gives a completed multipart object: MD5 of the parts' binary MD5s, "-N". */
static bool
expected_multipart_etag(const s3_writer *w, strbuf *out)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	bool		ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1;

	for (int i = 0; ok && i < w->nparts; i++)
	{
		const char *e = w->etags[i];
		unsigned char bin[16];

		if (*e == '"')
			e++;
		for (int k = 0; k < 16 && ok; k++)
		{
			if (!isxdigit((unsigned char) e[2 * k]) || !isxdigit((unsigned char) e[2 * k + 1]))
				ok = false;
			else
			{
				char		h[3] = {e[2 * k], e[2 * k + 1], 0};

				bin[k] = (unsigned char) strtoul(h, NULL, 16);
			}
		}
		if (ok)
			ok = EVP_DigestUpdate(ctx, bin, 16) == 1;
	}
	if (ok)
		ok = EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 16;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return false;
	strbuf_reset(out);
	strbuf_append_char(out, '"');
	strbuf_append_hex(out, md, 16);
	strbuf_printf(out, "-%d\"", w->nparts);
	return true;
}

static int
s3_complete_upload(s3_storage *s3, s3_writer *w, bs_error *err)
{
	s3_request	req = {0};
	s3_response resp = {0};
	strbuf		q = STRBUF_INIT;
	strbuf		body = STRBUF_INIT;
	int			rc = BS_ERR;

	strbuf_append_str(&body, "<CompleteMultipartUpload>");
	for (int i = 0; i < w->nparts; i++)
	{
		strbuf_printf(&body, "<Part><PartNumber>%d</PartNumber><ETag>", i + 1);
		s3xml_escape(&body, w->etags[i]);
		strbuf_append_str(&body, "</ETag></Part>");
	}
	strbuf_append_str(&body, "</CompleteMultipartUpload>");
	strbuf_append_str(&q, "uploadId=");
	uri_encode(&q, w->upload_id, false);
	req.method = "POST";
	req.key = w->key;
	req.query = q.data;
	req.what = w->what;
	req.body = body.data;
	req.body_len = body.len;
	req.content_type = "application/xml";

	for (int round = 0; round < 1 + s3->retries; round++)
	{
		strbuf		code = STRBUF_INIT;
		strbuf		msg = STRBUF_INIT;
		const char *b;

		if (s3_execute(s3, &req, &resp, err) != BS_OK)
		{
			/*
			 * NoSuchUpload after an earlier round may mean that round completed and only
			 * its answer was lost: the object's ETag tells.
			 */
			if (round > 0 && err->http_status == 404 && strstr(err->message, "NoSuchUpload"))
			{
				strbuf		want = STRBUF_INIT;
				s3_request	h = {0};
				s3_response hr = {0};
				bs_error	herr;

				h.method = "HEAD";
				h.key = w->key;
				h.what = w->what;
				if (expected_multipart_etag(w, &want) && s3_execute(s3, &h, &hr, &herr) == BS_OK &&
					hr.etag && strcmp(hr.etag, want.data) == 0)
					rc = BS_OK;
				strbuf_free(&want);
				response_free(&hr);
			}
			break;
		}
		/* A 200 answer can still carry an error document. */
		b = resp.body.data ? resp.body.data : "";
		s3xml_error_doc(resp.body.data, resp.body.len, &code, &msg);
		if (strstr(b, "<CompleteMultipartUploadResult") != NULL && code.len == 0)
		{
			rc = BS_OK;
			strbuf_free(&code);
			strbuf_free(&msg);
			break;
		}
		error_set(err, code.len && s3_code_transient(code.data) ? ERRCODE_TRANSIENT : ERRCODE_STORAGE,
				  "S3 CompleteMultipartUpload of \"%s\" in bucket \"%s\" failed: %s%s%.300s",
				  w->what, s3->bucket, code.len ? code.data : "malformed answer",
				  msg.len ? ": " : "", msg.len ? msg.data : "");
		err->http_status = (int) resp.status;
		if (!(code.len && s3_code_transient(code.data)))
			round = s3->retries;	/* permanent: stop */
		else
			sleep_ms(retry_delay_ms(s3, round + 1));
		strbuf_free(&code);
		strbuf_free(&msg);
	}
	response_free(&resp);
	strbuf_free(&q);
	strbuf_free(&body);
	return rc;
}

static void
s3_writer_free(s3_writer *w)
{
	for (int i = 0; i < w->nparts; i++)
		free(w->etags[i]);
	free(w->etags);
	free(w->upload_id);
	free(w->key);
	free(w->what);
	strbuf_free(&w->buf);
	free(w);
}

static int
s3_writer_commit(storage_writer *base, bs_error *err)
{
	s3_writer  *w = (s3_writer *) base;
	s3_storage *s3 = (s3_storage *) base->st;
	int			rc;

	if (w->failed)
		rc = error_set(err, ERRCODE_INTERNAL, "commit of a failed storage writer for \"%s\"", w->what);
	else if (w->upload_id == NULL && w->nparts == 0)
	{
		s3_request	req = {0};
		s3_response resp = {0};

		req.method = "PUT";
		req.key = w->key;
		req.what = w->what;
		req.body = w->buf.data ? w->buf.data : "";
		req.body_len = w->buf.len;
		rc = s3_execute(s3, &req, &resp, err);
		response_free(&resp);
	}
	else
	{
		rc = s3_upload_part(s3, w, err);
		if (rc == BS_OK)
			rc = s3_complete_upload(s3, w, err);
		if (rc != BS_OK)
			s3_abort_upload(s3, w);
	}
	s3_writer_free(w);
	return rc;
}

static void
s3_writer_abort(storage_writer *base)
{
	s3_writer  *w = (s3_writer *) base;

	s3_abort_upload((s3_storage *) base->st, w);
	s3_writer_free(w);
}

/* ---------------------------------------------------------------- get, head, delete */

static int	s3_head(storage *st, const char *key, bool *exists, storage_stat *stat, bs_error *err);

static int
s3_get(storage *st, const char *key, uint64_t offset, uint64_t length,
	   storage_sink sink, void *ctx, bs_error *err)
{
	s3_storage *s3 = (s3_storage *) st;
	char	   *fk = full_key(s3, key);
	char	   *etag = NULL;
	uint64_t	delivered = 0;
	uint64_t	total = 0;		/* object size, once known */
	bool		total_known = false;
	s3_response resp = {0};
	strbuf		range = STRBUF_INIT;
	int			max_attempts = 1 + (s3->retries > 0 ? s3->retries : 0);
	int			rc = BS_ERR;

	for (int attempt = 1;; attempt++)
	{
		s3_request	req = {0};
		uint64_t	start = offset + delivered;
		CURLcode	cc;
		bool		retry;

		if (length > 0 && delivered == length)
		{
			rc = BS_OK;
			break;
		}
		if (total_known && length == 0 && start == total && delivered > 0)
		{
			rc = BS_OK;
			break;
		}
		strbuf_reset(&range);
		if (length > 0)
			strbuf_printf(&range, "bytes=%llu-%llu", (unsigned long long) start,
						  (unsigned long long) (offset + length - 1));
		else if (start > 0)
			strbuf_printf(&range, "bytes=%llu-", (unsigned long long) start);
		req.method = "GET";
		req.key = fk;
		req.what = key;
		req.range = range.len ? range.data : NULL;
		/* A resumed read must see the same object version as the first attempt. */
		req.if_match = etag;
		req.sink = sink;
		req.sink_ctx = ctx;
		req.limit = length ? length - delivered : 0;

		req.range_start = start;
		cc = s3_attempt(s3, &req, &resp);
		delivered += resp.delivered;
		if (resp.sink_failed)
		{
			*err = resp.sink_err;
			break;
		}
		if (resp.status >= 200 && resp.status < 300 && etag == NULL && resp.etag)
		{
			etag = resp.etag;
			resp.etag = NULL;
		}
		if (resp.status == 206)
		{
			uint64_t	s,
						t;

			if (parse_content_range(resp.content_range, &s, &t))
			{
				total = t;
				total_known = true;
			}
		}
		else if (resp.status == 200 && resp.has_length)
		{
			total = resp.content_length;
			total_known = true;
		}
		if (cc == CURLE_OK && resp.status >= 200 && resp.status < 300)
		{
			if (length > 0 && delivered != length)
			{
				error_set(err, ERRCODE_OUT_OF_RANGE,
						  "range %llu+%llu is beyond the end of \"%s\" (%llu bytes)",
						  (unsigned long long) offset, (unsigned long long) length, key,
						  (unsigned long long) total);
				break;
			}
			rc = BS_OK;
			break;
		}
		if (cc == CURLE_OK && resp.status == 416)
		{
			unsigned long long t;
			char		tail;

			/*
			 * From the end of an object to its end is an empty range, as locally; S3 answers
			 * 416 to it.  The size is in the answer's "bytes * /SIZE" when the server sends one,
			 * else a HEAD tells.
			 */
			if (length == 0 && delivered == 0 && offset > 0)
			{
				bool		at_end = false;

				if (resp.content_range && sscanf(resp.content_range, "bytes */%llu%c", &t, &tail) == 1)
					at_end = t == offset;
				else
				{
					bool		exists = false;
					storage_stat sst = {0};
					bs_error	herr;

					at_end = s3_head(st, key, &exists, &sst, &herr) == BS_OK && exists && sst.size == offset;
				}
				if (at_end)
				{
					rc = BS_OK;
					break;
				}
			}
			error_set(err, ERRCODE_OUT_OF_RANGE, "range %llu+%llu is beyond the end of \"%s\"",
					  (unsigned long long) offset, (unsigned long long) length, key);
			err->http_status = 416;
			break;
		}
		if (cc == CURLE_OK && resp.status == 412)
		{
			error_set(err, ERRCODE_STORAGE, "object \"%s\" changed while it was being read", key);
			err->http_status = 412;
			break;
		}
		if (cc != CURLE_OK)
			retry = curl_transient(cc);
		else
		{
			strbuf		code = STRBUF_INIT;
			strbuf		msg = STRBUF_INIT;

			s3xml_error_doc(resp.body.data, resp.body.len, &code, &msg);
			retry = status_transient(resp.status) || (code.data && s3_code_transient(code.data));
			strbuf_free(&code);
			strbuf_free(&msg);
		}
		if (!retry || attempt >= max_attempts)
		{
			s3_fail(s3, &req, &resp, cc, attempt, err);
			break;
		}
		{
			long		delay = retry_delay_ms(s3, attempt);

			log_warning("storage: S3 GET \"%s\": %s after %llu bytes; retrying in %ld ms (attempt %d of %d)",
						key, cc != CURLE_OK ? curl_easy_strerror(cc) : "server error",
						(unsigned long long) delivered, delay, attempt + 1, max_attempts);
			sleep_ms(delay);
		}
	}
	response_free(&resp);
	strbuf_free(&range);
	free(etag);
	free(fk);
	return rc;
}

/*
 * One request on key: req's method, and its body or condition, set by the caller; its key and
 * name filled in here.  The answer is in resp, which the caller frees.
 */
static int
s3_key_request(s3_storage *s3, const char *key, s3_request *req, s3_response *resp, bs_error *err)
{
	char	   *fk = full_key(s3, key);
	int			rc;

	req->key = fk;
	req->what = key;
	rc = s3_execute(s3, req, resp, err);
	req->key = NULL;
	free(fk);
	return rc;
}

static int
s3_head(storage *st, const char *key, bool *exists, storage_stat *stat, bs_error *err)
{
	s3_request	req = {.method = "HEAD"};
	s3_response resp = {0};
	int			rc = s3_key_request((s3_storage *) st, key, &req, &resp, err);

	if (rc == BS_OK)
	{
		*exists = true;
		stat->size = resp.has_length ? resp.content_length : 0;
		stat->mtime = resp.last_modified ? (int64_t) curl_getdate(resp.last_modified, NULL) : 0;
		if (stat->mtime < 0)
			stat->mtime = 0;
	}
	else if (err->http_status == 404)
	{
		/* HEAD has no body, so a missing bucket looks the same; put and list tell them apart. */
		rc = BS_OK;
	}
	response_free(&resp);
	return rc;
}

static int
s3_delete(storage *st, const char *key, bs_error *err)
{
	s3_request	req = {.method = "DELETE"};
	s3_response resp = {0};
	int			rc = s3_key_request((s3_storage *) st, key, &req, &resp, err);

	if (rc != BS_OK && err->http_status == 404 && strcmp(err->code, ERRCODE_NOT_FOUND) == 0)
		rc = BS_OK;
	response_free(&resp);
	return rc;
}

/* The base64 MD5 of data: the Content-MD5 header. */
static void
md5_base64(const void *data, size_t len, char out[25])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_Digest(data, len, md, &mdlen, EVP_md5(), NULL) != 1 || mdlen != 16)
	{
		fprintf(stderr, "backstop: MD5 computation failed\n");
		abort();
	}
	EVP_EncodeBlock((unsigned char *) out, md, 16);
}

/* The keys DeleteObjects did not delete: counted, the first ones named, transient ones kept
 * for another round. */
typedef struct s3_delete_state
{
	s3_storage *s3;
	int			failed;			/* permanently */
	strbuf		first;			/* the first failures, for the message */
	const char *const *batch;	/* the keys sent (as given) */
	int			nbatch;
	bool		last_round;		/* no more rounds: transient failures are failures */
	char	  **again;			/* keys (as given) to send again; at most nbatch */
	int			nagain;
} s3_delete_state;

static int
s3_delete_error(void *ctx, const char *key, const char *code, const char *message, bs_error *err)
{
	s3_delete_state *ds = ctx;
	size_t		plen = strlen(ds->s3->prefix);
	const char *rel = strncmp(key, ds->s3->prefix, plen) == 0 ? key + plen : key;

	(void) err;
	if (s3_code_transient(code) && !ds->last_round && ds->nagain < ds->nbatch)
	{
		/* Only a key that was sent: the answer is untrusted. */
		for (int i = 0; i < ds->nbatch; i++)
			if (strcmp(ds->batch[i], rel) == 0)
			{
				ds->again[ds->nagain++] = xstrdup(rel);
				return BS_OK;
			}
	}
	if (ds->failed++ < 3)
		strbuf_printf(&ds->first, "%s\"%.200s\": %.40s%s%.200s", ds->failed > 1 ? "; " : "", rel, code,
					  *message ? ": " : "", message);
	return BS_OK;
}

static void
free_keys(char **keys, int n)
{
	for (int i = 0; keys && i < n; i++)
		free(keys[i]);
	free(keys);
}

/* One DeleteObjects request of n keys (n <= STORAGE_DELETE_BATCH), with S3's own retries;
 * keys it answers with a transient error are sent again, as many times as retries allows. */
static int
s3_delete_batch(s3_storage *s3, const char *const *keys, int n, s3_delete_state *ds, bs_error *err)
{
	char	  **owned = NULL;	/* keys of a later round */
	int			rc = BS_OK;

	for (int round = 0;; round++)
	{
		s3_request	req = {0};
		s3_response resp = {0};
		strbuf		body = STRBUF_INIT;
		char		md5[25];

		/* Quiet: the answer lists only the keys not deleted. */
		strbuf_append_str(&body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
						  "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>");
		for (int i = 0; i < n; i++)
		{
			char	   *fk = full_key(s3, keys[i]);

			strbuf_append_str(&body, "<Object><Key>");
			s3xml_escape(&body, fk);
			strbuf_append_str(&body, "</Key></Object>");
			free(fk);
		}
		strbuf_append_str(&body, "</Delete>");
		md5_base64(body.data, body.len, md5);
		req.method = "POST";
		req.query = "delete=";
		req.what = n == 1 ? keys[0] : "(DeleteObjects)";
		req.body = body.data;
		req.body_len = body.len;
		req.content_type = "application/xml";
		req.content_md5 = md5;
		ds->batch = keys;
		ds->nbatch = n;
		ds->last_round = round >= s3->retries;
		ds->again = xcalloc((size_t) n, sizeof(char *));
		ds->nagain = 0;
		rc = s3_execute(s3, &req, &resp, err);
		if (rc == BS_OK &&
			(rc = s3xml_delete_result(resp.body.data, resp.body.len, s3_delete_error, ds, err)) != BS_OK)
			error_prefix(err, "S3 DeleteObjects in bucket \"%s\"", s3->bucket);
		response_free(&resp);
		strbuf_free(&body);
		free_keys(owned, n);
		owned = ds->again;
		keys = (const char *const *) owned;
		n = ds->nagain;
		ds->again = NULL;
		if (rc != BS_OK || n == 0)
			break;
		{
			long		delay = retry_delay_ms(s3, round + 1);

			log_warning("storage: S3 DeleteObjects: %d keys refused for now; retrying in %ld ms (attempt %d of %d)",
						n, delay, round + 2, s3->retries + 1);
			sleep_ms(delay);
		}
	}
	free_keys(owned, n);
	return rc;
}

static int
s3_delete_many(storage *st, const char *const *keys, int n, bs_error *err)
{
	s3_storage *s3 = (s3_storage *) st;
	s3_delete_state ds = {0};
	int			rc = BS_OK;

	ds.s3 = s3;
	/* A batch that fails as a request stops; keys refused one by one do not. */
	for (int i = 0; i < n && rc == BS_OK; i += STORAGE_DELETE_BATCH)
		rc = s3_delete_batch(s3, keys + i, n - i < STORAGE_DELETE_BATCH ? n - i : STORAGE_DELETE_BATCH, &ds, err);
	if (rc == BS_OK && ds.failed > 0)
		rc = error_set(err, ERRCODE_STORAGE, "S3 DeleteObjects in bucket \"%s\": %d of %d keys not deleted: %s%s",
					   s3->bucket, ds.failed, n, ds.first.data, ds.failed > 3 ? "; ..." : "");
	strbuf_free(&ds.first);
	return rc;
}

/* ---------------------------------------------------------------- conditional */

static int
s3_get_tagged(storage *st, const char *key, strbuf *out, char **tag, bs_error *err)
{
	s3_request	req = {.method = "GET"};
	s3_response resp = {0};
	int			rc;

	/* Small objects only: the answer is kept in the response buffer (MAX_XML_BODY). */
	rc = s3_key_request((s3_storage *) st, key, &req, &resp, err);
	if (rc == BS_OK)
	{
		strbuf_append(out, resp.body.data ? resp.body.data : "", resp.body.len);
		*tag = xstrdup(resp.etag ? resp.etag : "");
	}
	response_free(&resp);
	return rc;
}

static int
s3_put_if(storage *st, const char *key, const void *data, size_t len, const char *tag, bs_error *err)
{
	s3_request	req = {.method = "PUT"};
	s3_response resp = {0};
	int			rc;

	req.body = len ? data : "";
	req.body_len = len;
	if (tag)
		req.if_match = tag;
	else
		req.if_none_match = "*";
	rc = s3_key_request((s3_storage *) st, key, &req, &resp, err);
	/* 412: the condition failed; 409: a concurrent conditional write won (AWS). */
	if (rc != BS_OK && (err->http_status == 412 || err->http_status == 409))
		snprintf(err->code, sizeof(err->code), "%s", ERRCODE_PRECONDITION);
	response_free(&resp);
	return rc;
}

/* ---------------------------------------------------------------- list */

/* What s3_list checks of each entry of a page (s3xml_list_page reads them). */
typedef struct s3_list_state
{
	s3_storage *s3;
	const char *full_prefix;	/* with the storage's prefix */
	const char *full_after;		/* start_after with the storage's prefix, or NULL */
	strbuf		last;			/* the previous key */
	storage_list_cb cb;
	void	   *ctx;
	bool		cb_failed;		/* the error is the callback's, not the server's */
} s3_list_state;

static int
s3_list_entry(void *ctx, const char *key, uint64_t size, bs_error *err)
{
	s3_list_state *ls = ctx;
	size_t		plen = strlen(ls->s3->prefix);
	size_t		klen = strlen(key);

	if (klen < plen || strncmp(key, ls->s3->prefix, plen) != 0 ||
		strncmp(key, ls->full_prefix, strlen(ls->full_prefix)) != 0)
		return error_set(err, ERRCODE_PROTOCOL, "key \"%.200s\" outside the prefix", key);
	/* Callers rely on the order (and on seeing each key once). */
	if (ls->last.len && strcmp(key, ls->last.data) <= 0)
		return error_set(err, ERRCODE_PROTOCOL, "keys out of order");
	strbuf_reset(&ls->last);
	strbuf_append_str(&ls->last, key);
	/* Whatever the server did with start-after, nothing at or before it is reported. */
	if (ls->full_after && strcmp(key, ls->full_after) <= 0)
		return BS_OK;
	if (key[klen - 1] == '/' && size == 0)
		return BS_OK;			/* "folder" placeholder made by consoles */
	if (!storage_key_valid(key + plen))
	{
		log_warning("storage: ignoring object \"%.200s\" in %s: not a valid Backstop key",
					key + plen, ls->s3->base.description);
		return BS_OK;
	}
	if (ls->cb(ls->ctx, key + plen, size, err) == BS_OK)
		return BS_OK;
	ls->cb_failed = true;
	return BS_ERR;
}

static int
s3_list(storage *st, const char *prefix, const char *start_after,
		storage_list_cb cb, void *ctx, bs_error *err)
{
	s3_storage *s3 = (s3_storage *) st;
	char	   *fp = full_key(s3, prefix);
	char	   *fa = start_after ? full_key(s3, start_after) : NULL;
	strbuf		token = STRBUF_INIT;
	strbuf		next = STRBUF_INIT;
	strbuf		q = STRBUF_INIT;
	s3_response resp = {0};
	s3_list_state ls = {s3, fp, fa, STRBUF_INIT, cb, ctx, false};
	int			rc = BS_ERR;

	for (;;)
	{
		s3_request	req = {0};
		bool		truncated;

		/* Sorted parameter names, as SigV4 requires (libcurl 7.88 does not sort). */
		strbuf_reset(&q);
		if (token.len)
		{
			strbuf_append_str(&q, "continuation-token=");
			uri_encode(&q, token.data, false);
			strbuf_append_char(&q, '&');
		}
		strbuf_append_str(&q, "list-type=2&prefix=");
		uri_encode(&q, fp, false);
		/* The first page only: the continuation token carries the position on. */
		if (fa && token.len == 0)
		{
			strbuf_append_str(&q, "&start-after=");
			uri_encode(&q, fa, false);
		}
		req.method = "GET";
		req.query = q.data;
		req.what = prefix;
		if (s3_execute(s3, &req, &resp, err) != BS_OK)
			goto out;
		if (s3xml_list_page(resp.body.data, resp.body.len, s3_list_entry, &ls, &truncated, &next, err) != BS_OK)
		{
			if (!ls.cb_failed)
				error_prefix(err, "S3 list of \"%s\"", prefix);
			goto out;
		}
		if (!truncated)
			break;
		if (next.len == 0 || (token.len && strcmp(next.data, token.data) == 0))
		{
			error_set(err, ERRCODE_PROTOCOL, "S3 list of \"%s\": truncated page without a new continuation token", prefix);
			goto out;
		}
		strbuf_reset(&token);
		strbuf_append_str(&token, next.data);
	}
	rc = BS_OK;
out:
	response_free(&resp);
	strbuf_free(&token);
	strbuf_free(&next);
	strbuf_free(&q);
	strbuf_free(&ls.last);
	free(fp);
	free(fa);
	return rc;
}

/* ---------------------------------------------------------------- open/close */

static void
s3_close(storage *st)
{
	s3_storage *s3 = (s3_storage *) st;

	curl_easy_cleanup(s3->curl);
	curl_global_cleanup();
	free(s3->bucket);
	free(s3->prefix);
	free(s3->endpoint);
	free(s3->sigv4);
	free(s3->access_key);
	if (s3->secret_key)
		memset(s3->secret_key, 0, strlen(s3->secret_key));
	free(s3->secret_key);
	free(s3->session_token);
	free(s3->ca_file);
	free(s3);
}

static const storage_ops s3_ops = {
	.writer_open = s3_writer_open,
	.writer_write = s3_writer_write,
	.writer_commit = s3_writer_commit,
	.writer_abort = s3_writer_abort,
	.get = s3_get,
	.head = s3_head,
	.list = s3_list,
	.delete_key = s3_delete,
	.delete_many = s3_delete_many,
	.get_tagged = s3_get_tagged,
	.put_if = s3_put_if,
	.close = s3_close,
};

int
storage_s3_open(const char *bucket, const char *prefix, const storage_s3_options *o,
				storage **out, bs_error *err)
{
	s3_storage *s3;
	const char *endpoint = (o->endpoint && *o->endpoint) ? o->endpoint : NULL;
	const char *region = (o->region && *o->region) ? o->region : NULL;
	const char *style = o->uri_style;
	const char *ak = (o->access_key_id && *o->access_key_id) ? o->access_key_id : NULL;
	const char *sk = (o->secret_access_key && *o->secret_access_key) ? o->secret_access_key : NULL;
	const char *tok = (o->session_token && *o->session_token) ? o->session_token : NULL;
	const char *ca = o->ca_file;
	int64_t		part_size = o->part_size,
				timeout_ms = o->timeout_ms,
				retries = o->retries,
				base_ms = o->retry_base_ms;
	bool		verify = o->verify_tls;
	strbuf		sb = STRBUF_INIT;

	if (style && strcasecmp(style, "path") != 0 && strcasecmp(style, "host") != 0)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "invalid S3 URI style \"%.20s\": expected path or host", style);
	if (part_size <= 0 || base_ms < 0)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "invalid S3 setting");
	if (retries < 0 || retries > 100)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "retries must be between 0 and 100");
	if (timeout_ms < 1000 || timeout_ms > 86400000)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "s3_timeout must be between 1s and 1d");
	if (ak == NULL || sk == NULL)
		return error_set(err, ERRCODE_INVALID_PARAMETER,
						 "no S3 credentials: set s3_access_key_id and s3_secret_access_key "
						 "(or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
	if (endpoint && strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0)
	{
		char	   *shown = redact_text(endpoint);

		error_set(err, ERRCODE_INVALID_PARAMETER, "invalid S3 endpoint \"%s\": expected http:// or https://", shown);
		free(shown);
		return BS_ERR;
	}
	if (region == NULL)
		region = "us-east-1";
	for (const char *r = region; *r; r++)
		if (!(isalnum((unsigned char) *r) || *r == '-'))
			return error_set(err, ERRCODE_INVALID_PARAMETER, "invalid S3 region \"%.64s\"", region);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return error_set(err, ERRCODE_INTERNAL, "could not initialize libcurl");

	s3 = xcalloc(1, sizeof(*s3));
	s3->base.ops = &s3_ops;
	s3->curl = curl_easy_init();
	if (s3->curl == NULL)
	{
		free(s3);
		curl_global_cleanup();
		return error_set(err, ERRCODE_INTERNAL, "could not create a libcurl handle");
	}
	s3->bucket = xstrdup(bucket);
	s3->prefix = xstrdup(prefix);
	if (endpoint)
	{
		size_t		len;

		s3->endpoint = xstrdup(endpoint);
		len = strlen(s3->endpoint);
		while (len > 0 && s3->endpoint[len - 1] == '/')
			s3->endpoint[--len] = '\0';
	}
	else
	{
		strbuf_printf(&sb, "https://s3.%s.amazonaws.com", region);
		s3->endpoint = strbuf_detach(&sb, NULL);
	}
	/*
	 * Custom endpoints (MinIO, s3rver, ...) rarely have wildcard DNS, and dotted bucket
	 * names break TLS wildcard certificates: both default to path style.
	 */
	if (style)
		s3->path_style = strcasecmp(style, "path") == 0;
	else
		s3->path_style = endpoint != NULL || strchr(bucket, '.') != NULL;
	strbuf_printf(&sb, "aws:amz:%s:s3", region);
	s3->sigv4 = strbuf_detach(&sb, NULL);
	s3->access_key = xstrdup(ak);
	s3->secret_key = xstrdup(sk);
	s3->session_token = tok ? xstrdup(tok) : NULL;
	s3->ca_file = (ca && *ca) ? xstrdup(ca) : NULL;
	s3->verify_tls = verify;
	s3->part_size = (size_t) part_size < MIN_PART_SIZE ? MIN_PART_SIZE :
		(size_t) part_size > MAX_PART_SIZE ? MAX_PART_SIZE : (size_t) part_size;
	s3->timeout_ms = (long) timeout_ms;
	s3->retries = (int) retries;
	s3->retry_base_ms = (long) base_ms;
	s3->rng = (uint64_t) clock_unix_us() ^ ((uint64_t) getpid() << 32) ^ (uint64_t) (uintptr_t) s3;
	if (s3->rng == 0)
		s3->rng = 0x9E3779B97F4A7C15ULL;

	{
		char	   *ep = redact_text(s3->endpoint);

		strbuf_printf(&sb, "s3://%s/%s (endpoint %s, %s style)", bucket, prefix, ep,
					  s3->path_style ? "path" : "host");
		free(ep);
		s3->base.description = strbuf_detach(&sb, NULL);
	}
	*out = &s3->base;
	return BS_OK;
}
