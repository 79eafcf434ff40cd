/* test_s3xml.c — unit tests of the S3 XML reader on hostile answers: truncated, huge, entities, missing fields. */
#include "s3xml.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEAD "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" \
	"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>b</Name><Prefix>p/</Prefix>"
#define TAIL "</ListBucketResult>\n"
#define ENTRY(k, s) "<Contents><Key>" k "</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>" \
	"<ETag>&quot;x&quot;</ETag><Size>" s "</Size><StorageClass>STANDARD</StorageClass></Contents>"

typedef struct seen
{
	strbuf keys;				/* "key=size;" for each entry */
	int count;
	int stop_at;				/* fail on this entry (1-based), 0: never */
} seen;

static int
collect(void *ctx, const char *key, uint64_t size, bs_error *err)
{
	seen *s = ctx;
	char num[32];

	if (++s->count == s->stop_at)
		return error_set(err, ERRCODE_IO, "the callback stops");
	strbuf_append_str(&s->keys, key);
	snprintf(num, sizeof(num), "=%llu;", (unsigned long long) size);
	strbuf_append_str(&s->keys, num);
	return BS_OK;
}

/* One page through the reader: BS_OK or BS_ERR, the entries in s->keys. */
static int
page(const char *xml, size_t len, seen *s, bool *truncated, strbuf *token, bs_error *err)
{
	strbuf_reset(&s->keys);
	strbuf_append_str(&s->keys, "");
	s->count = 0;
	error_clear(err);
	return s3xml_list_page(xml, len, collect, s, truncated, token, err);
}

static bool
protocol_error(const bs_error *err, const char *part)
{
	return strcmp(err->code, ERRCODE_PROTOCOL) == 0 && strstr(err->message, part) != NULL;
}

static void
test_list_pages(void)
{
	seen s = {STRBUF_INIT, 0, 0};
	strbuf token = STRBUF_INIT;
	bs_error err;
	bool truncated = true;
	const char *good = HEAD "<KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>"
		ENTRY("p/a&amp;b", "12") ENTRY("p/&#xE9;t&#233;", "0") TAIL;
	const char *more = HEAD "<IsTruncated>true</IsTruncated>" ENTRY("p/x", "1")
		"<NextContinuationToken>tok&lt;1&gt;</NextContinuationToken>" TAIL;

	ok(page(good, strlen(good), &s, &truncated, &token, &err) == BS_OK && !truncated && token.len == 0 &&
	   s.count == 2 && strcmp(s.keys.data, "p/a&b=12;p/\xC3\xA9t\xC3\xA9=0;") == 0,
	   "a whole page: two entries, unescaped, the root with its xmlns attribute");
	ok(page(more, strlen(more), &s, &truncated, &token, &err) == BS_OK && truncated &&
	   strcmp(token.data, "tok<1>") == 0 && s.count == 1, "a truncated page gives its continuation token");
	{
		const char *empty = HEAD "<IsTruncated>false</IsTruncated>" TAIL;

		ok(page(empty, strlen(empty), &s, &truncated, &token, &err) == BS_OK && s.count == 0 && !truncated,
		   "an empty page");
	}

	/* Truncated: every cut of a whole page short of its closing tag is refused, never taken as
	 * a shorter listing. */
	{
		size_t len = strlen(good);
		size_t cut_at = strstr(good, TAIL) - good;
		int accepted = 0;

		for (size_t cut = 0; cut <= cut_at + strlen("</ListBucketResult") ; cut++)
			if (page(good, cut, &s, &truncated, &token, &err) == BS_OK)
				accepted++;
			else if (!protocol_error(&err, "malformed"))
				accepted += 1000;
		ok(accepted == 0, "no prefix of a page cut before its closing tag is accepted (%d)", accepted);
		ok(page(good, len - 1, &s, &truncated, &token, &err) == BS_OK, "only the final newline cut: accepted");
	}
	ok(page(NULL, 0, &s, &truncated, &token, &err) == BS_ERR && protocol_error(&err, "malformed"), "no body");
	{
		const char *other = "<Error><Code>AccessDenied</Code></Error>";
		const char *selfclosed = "<ListBucketResult/></ListBucketResult>";
		const char *nul = HEAD "<IsTruncated>false</IsTruncated>" ENTRY("p/a", "1") TAIL;
		char *copy = strdup(nul);

		ok(page(other, strlen(other), &s, &truncated, &token, &err) == BS_ERR && protocol_error(&err, "malformed"),
		   "another document than a list is refused");
		ok(page(selfclosed, strlen(selfclosed), &s, &truncated, &token, &err) == BS_ERR, "an empty root is refused");
		copy[strstr(copy, "p/a") - copy + 1] = '\0';
		ok(page(copy, strlen(nul), &s, &truncated, &token, &err) == BS_ERR && protocol_error(&err, "malformed"),
		   "a NUL byte in the body is refused");
		free(copy);
	}

	/* Missing fields. */
	{
		const char *no_trunc = HEAD ENTRY("p/a", "1") TAIL;
		const char *bad_trunc = HEAD "<IsTruncated>maybe</IsTruncated>" ENTRY("p/a", "1") TAIL;
		const char *no_key = HEAD "<IsTruncated>false</IsTruncated><Contents><Size>1</Size></Contents>" TAIL;
		const char *empty_key = HEAD "<IsTruncated>false</IsTruncated>" ENTRY("", "1") TAIL;
		const char *no_size = HEAD "<IsTruncated>false</IsTruncated><Contents><Key>p/a</Key></Contents>" TAIL;
		const char *empty_size = HEAD "<IsTruncated>false</IsTruncated>" ENTRY("p/a", "") TAIL;
		const char *neg_size = HEAD "<IsTruncated>false</IsTruncated>" ENTRY("p/a", "-1") TAIL;
		const char *sp_size = HEAD "<IsTruncated>false</IsTruncated>" ENTRY("p/a", " 1") TAIL;
		const char *big_size = HEAD "<IsTruncated>false</IsTruncated>" ENTRY("p/a", "18446744073709551616") TAIL;
		const char *unclosed = HEAD "<IsTruncated>false</IsTruncated><Contents><Key>p/a</Key><Size>1</Size>" TAIL;

		ok(page(no_trunc, strlen(no_trunc), &s, &truncated, &token, &err) == BS_ERR &&
		   protocol_error(&err, "IsTruncated") && s.count == 0, "a page without <IsTruncated> is refused");
		ok(page(bad_trunc, strlen(bad_trunc), &s, &truncated, &token, &err) == BS_ERR &&
		   protocol_error(&err, "IsTruncated"), "an <IsTruncated> neither true nor false is refused");
		ok(page(no_key, strlen(no_key), &s, &truncated, &token, &err) == BS_ERR &&
		   protocol_error(&err, "<Contents>"), "an entry without <Key>");
		ok(page(empty_key, strlen(empty_key), &s, &truncated, &token, &err) == BS_ERR &&
		   protocol_error(&err, "<Contents>"), "an entry with an empty <Key>");
		ok(page(no_size, strlen(no_size), &s, &truncated, &token, &err) == BS_ERR &&
		   protocol_error(&err, "<Contents>"), "an entry without <Size>");
		ok(page(empty_size, strlen(empty_size), &s, &truncated, &token, &err) == BS_ERR &&
		   protocol_error(&err, "<Contents>"), "an entry with an empty <Size>");
		ok(page(neg_size, strlen(neg_size), &s, &truncated, &token, &err) == BS_ERR &&
		   protocol_error(&err, "bad size"), "a negative size");
		ok(page(sp_size, strlen(sp_size), &s, &truncated, &token, &err) == BS_ERR &&
		   protocol_error(&err, "bad size"), "a size with a leading space");
		ok(page(big_size, strlen(big_size), &s, &truncated, &token, &err) == BS_ERR &&
		   protocol_error(&err, "bad size"), "a size beyond 64 bits");
		ok(page(unclosed, strlen(unclosed), &s, &truncated, &token, &err) == BS_OK && s.count == 0,
		   "an unclosed <Contents> is no entry (its text is not read as one)");
	}

	/* Entities: only the five predefined ones and character references; nothing a DOCTYPE
	 * declares is expanded, and references to NUL, surrogates or beyond U+10FFFF are refused. */
	{
		static const char *const bad_keys[] = {
			"p/&xxe;", "p/&amp", "p/a&b", "p/&#0;", "p/&#x0;", "p/&#xD800;", "p/&#x110000;",
			"p/&#123456789;", "p/&#;", "p/&#x;", "p/&#12a;", "p/&#x1F600", "p/&lt", "p/&",
		};
		int refused = 0;
		strbuf xml = STRBUF_INIT;

		for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++)
		{
			strbuf_reset(&xml);
			strbuf_printf(&xml, HEAD "<IsTruncated>false</IsTruncated><Contents><Key>%s</Key><Size>1</Size>"
						  "</Contents>" TAIL, bad_keys[i]);
			if (page(xml.data, xml.len, &s, &truncated, &token, &err) == BS_ERR && protocol_error(&err, "<Contents>"))
				refused++;
			else
				printf("# accepted key %s\n", bad_keys[i]);
		}
		is_int(refused, (int) (sizeof(bad_keys) / sizeof(bad_keys[0])), "malformed references in a key are refused");
		strbuf_reset(&xml);
		strbuf_append_str(&xml, "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY lol \"lollollol\">"
						  "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;\">]>"
						  "<ListBucketResult><IsTruncated>false</IsTruncated>" ENTRY("p/&lol2;", "1") TAIL);
		ok(page(xml.data, xml.len, &s, &truncated, &token, &err) == BS_ERR && s.count == 0,
		   "entities a DOCTYPE declares are not expanded: the entry is refused");
		strbuf_reset(&xml);
		strbuf_append_str(&xml, HEAD "<IsTruncated>false</IsTruncated>" ENTRY("p/&#x1F600;&#X41;&apos;&quot;", "7") TAIL);
		ok(page(xml.data, xml.len, &s, &truncated, &token, &err) == BS_OK &&
		   strcmp(s.keys.data, "p/\xF0\x9F\x98\x80" "A'\"=7;") == 0, "character references up to four UTF-8 bytes");
		strbuf_free(&xml);
	}

	/* Huge: a page of many entries, and one key of 1 MiB, are read in linear time and whole. */
	{
		strbuf xml = STRBUF_INIT;
		int n = 100000;

		strbuf_append_str(&xml, HEAD "<IsTruncated>false</IsTruncated>");
		for (int i = 0; i < n; i++)
			strbuf_printf(&xml, "<Contents><Key>p/k%07d</Key><Size>%d</Size></Contents>", i, i);
		strbuf_append_str(&xml, TAIL);
		ok(page(xml.data, xml.len, &s, &truncated, &token, &err) == BS_OK && s.count == n,
		   "a page of %d entries (%zu bytes) is read whole", n, xml.len);
		strbuf_reset(&xml);
		strbuf_append_str(&xml, HEAD "<IsTruncated>false</IsTruncated><Contents><Key>p/");
		for (int i = 0; i < 1024 * 1024; i++)
			strbuf_append_char(&xml, 'a');
		strbuf_append_str(&xml, "</Key><Size>1</Size></Contents>" TAIL);
		ok(page(xml.data, xml.len, &s, &truncated, &token, &err) == BS_OK && s.count == 1 &&
		   s.keys.len == 2 + 1024 * 1024 + 3, "a key of 1 MiB reaches the callback whole (the driver refuses it)");
		strbuf_free(&xml);
	}

	/* The callback's failure stops the page and is returned as it is. */
	s.stop_at = 2;
	ok(page(good, strlen(good), &s, &truncated, &token, &err) == BS_ERR && strcmp(err.code, ERRCODE_IO) == 0 &&
	   s.count == 2, "a failing callback stops the page");
	s.stop_at = 0;
	strbuf_free(&s.keys);
	strbuf_free(&token);
}

static void
test_other_documents(void)
{
	strbuf code = STRBUF_INIT;
	strbuf msg = STRBUF_INIT;
	strbuf id = STRBUF_INIT;
	const char *err_doc = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code>"
		"<Message>Please reduce &lt;your&gt; rate</Message><RequestId>1</RequestId></Error>";
	const char *cut = "<Error><Code>SlowDo";
	const char *bad = "<Error><Code>&bogus;</Code><Message>m</Message></Error>";

	s3xml_error_doc(err_doc, strlen(err_doc), &code, &msg);
	ok(strcmp(code.data, "SlowDown") == 0 && strcmp(msg.data, "Please reduce <your> rate") == 0,
	   "an error document's code and message");
	s3xml_error_doc(cut, strlen(cut), &code, &msg);
	ok(code.len == 0 && msg.len == 0, "a truncated error document: empty code and message");
	s3xml_error_doc(bad, strlen(bad), &code, &msg);
	ok(code.len == 0 && strcmp(msg.data, "m") == 0, "a malformed code is empty, the message still read");
	s3xml_error_doc(NULL, 0, &code, &msg);
	ok(code.len == 0 && msg.len == 0, "no body");

	ok(s3xml_upload_id("<InitiateMultipartUploadResult><UploadId>u-1&amp;2</UploadId></InitiateMultipartUploadResult>",
					   90, &id) && strcmp(id.data, "u-1&2") == 0, "an UploadId");
	ok(!s3xml_upload_id("<InitiateMultipartUploadResult><UploadId></UploadId>", 52, &id), "an empty UploadId");
	ok(!s3xml_upload_id("<InitiateMultipartUploadResult><UploadId>u-1", 44, &id), "a cut UploadId");
	ok(!s3xml_upload_id(NULL, 0, &id), "no body, no UploadId");
	{
		const char *euro = "<InitiateMultipartUploadResult><UploadId>&#x20AC;1</UploadId></InitiateMultipartUploadResult>";
		const char *no_open = "<Other><IsTruncated>false</IsTruncated></ListBucketResult>";
		const char *self_closed = "<ListBucketResult /><IsTruncated>false</IsTruncated></ListBucketResult>";
		bs_error err;

		ok(s3xml_upload_id(euro, strlen(euro), &id) && strcmp(id.data, "\xE2\x82\xAC" "1") == 0,
		   "a character reference of three UTF-8 bytes");
		ok(s3xml_list_page(no_open, strlen(no_open), NULL, NULL, &(bool) {false}, &id, &err) == BS_ERR &&
		   strcmp(err.code, ERRCODE_PROTOCOL) == 0, "a listing whose closing root tag has no opening one: refused");
		ok(s3xml_list_page(self_closed, strlen(self_closed), NULL, NULL, &(bool) {false}, &id, &err) == BS_ERR &&
		   strcmp(err.code, ERRCODE_PROTOCOL) == 0, "a listing whose root element is self-closed: refused");
	}

	strbuf_reset(&id);
	s3xml_escape(&id, "\"e<t>&ag\"");
	ok(strcmp(id.data, "&quot;e&lt;t&gt;&amp;ag&quot;") == 0, "escape for a request body");
	ok(s3xml_unescape(id.data, id.len, &msg) == 0 && strcmp(msg.data, "\"e<t>&ag\"") == 0, "and back");
	strbuf_free(&code);
	strbuf_free(&msg);
	strbuf_free(&id);
}

typedef struct delete_errors
{
	strbuf		text;			/* "key code message\n" per <Error> */
	int			stop_at;
} delete_errors;

static int
delete_error(void *ctx, const char *key, const char *code, const char *message, bs_error *err)
{
	delete_errors *d = ctx;

	if (d->stop_at && d->stop_at-- == 1)
		return error_set(err, ERRCODE_IO, "stop");
	strbuf_printf(&d->text, "%s|%s|%s\n", key, code, message);
	return BS_OK;
}

static void
test_delete_result(void)
{
	delete_errors d = {STRBUF_INIT, 0};
	bs_error	err;
	const char *good = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		"<DeleteResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
		"<Deleted><Key>a/1</Key></Deleted>"
		"<Error><Key>a/&lt;2&gt;</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
		"<Deleted><Key>a/3</Key></Deleted>"
		"<Error><Key>a/4</Key><Code>InternalError</Code></Error>"
		"</DeleteResult>\n";
	const char *quiet = "<DeleteResult></DeleteResult>";
	const char *no_code = "<DeleteResult><Error><Key>k</Key><Message>m</Message></Error></DeleteResult>";
	const char *no_key = "<DeleteResult><Error><Code>AccessDenied</Code></Error></DeleteResult>";
	const char *other = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";

	ok(s3xml_delete_result(good, strlen(good), delete_error, &d, &err) == BS_OK &&
	   strcmp(d.text.data, "a/<2>|AccessDenied|Access Denied\na/4|InternalError|\n") == 0,
	   "each <Error> entry: its key unescaped, code and message; <Deleted> entries not reported");
	ok(s3xml_delete_result(good, strlen(good) - 3, delete_error, &d, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_PROTOCOL) == 0, "an answer cut short is refused");
	strbuf_reset(&d.text);
	ok(s3xml_delete_result(quiet, strlen(quiet), delete_error, &d, &err) == BS_OK && d.text.len == 0,
	   "a quiet answer without errors: nothing reported");
	ok(s3xml_delete_result(no_code, strlen(no_code), delete_error, &d, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_PROTOCOL) == 0, "an <Error> without its code is refused");
	ok(s3xml_delete_result(no_key, strlen(no_key), delete_error, &d, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_PROTOCOL) == 0, "an <Error> without its key is refused");
	ok(s3xml_delete_result(other, strlen(other), delete_error, &d, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_PROTOCOL) == 0, "an error document is not a DeleteResult");
	ok(s3xml_delete_result(NULL, 0, delete_error, &d, &err) == BS_ERR, "no body is refused");
	d.stop_at = 1;
	ok(s3xml_delete_result(good, strlen(good), delete_error, &d, &err) == BS_ERR && strcmp(err.code, ERRCODE_IO) == 0,
	   "a failing callback stops");
	strbuf_free(&d.text);
}

int
main(void)
{
	test_list_pages();
	test_other_documents();
	test_delete_result();
	return done_testing();
}
