/* fuzz_s3xml.c — libFuzzer target for the S3 XML reader: list pages, error documents, multipart and delete answers as a server may send them. */
#include "s3xml.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct entries
{
	int count;
	size_t bytes;
} entries;

static int
entry(void *ctx, const char *key, uint64_t size, bs_error *err)
{
	entries *e = ctx;
	size_t len = strlen(key);

	(void) size;
	(void) err;
	/* The reader promises a non-empty key without a NUL byte. */
	if (len == 0)
		abort();
	e->count++;
	e->bytes += len;
	return BS_OK;
}

static int
delete_error(void *ctx, const char *key, const char *code, const char *message, bs_error *err)
{
	entries *e = ctx;

	(void) message;
	(void) err;
	/* A non-empty key and code without a NUL byte. */
	if (strlen(key) == 0 || strlen(code) == 0)
		abort();
	e->count++;
	return BS_OK;
}

/*
 * Any bytes: the reader never reads out of bounds, and what it accepts is consistent: a page
 * accepted whole is refused once cut inside its closing tag, and an unescaped text escapes
 * and unescapes to itself.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *) data;
	strbuf token = STRBUF_INIT, code = STRBUF_INIT, msg = STRBUF_INIT, id = STRBUF_INIT;
	strbuf esc = STRBUF_INIT, back = STRBUF_INIT;
	entries e = {0, 0};
	bool truncated;
	bs_error err;

	if (s3xml_list_page(body, size, entry, &e, &truncated, &token, &err) == BS_OK)
	{
		size_t len = size;

		/* Without the final '>' of its closing tag the same page is cut short. */
		while (len > 0 && strchr(" \t\r\n\f\v", body[len - 1]) != NULL && body[len - 1] != '\0')
			len--;
		if (len == 0 || s3xml_list_page(body, len - 1, entry, &e, &truncated, &token, &err) == BS_OK)
			abort();
	}
	s3xml_error_doc(body, size, &code, &msg);
	if (s3xml_delete_result(body, size, delete_error, &e, &err) == BS_OK)
	{
		size_t len = size;

		while (len > 0 && strchr(" \t\r\n\f\v", body[len - 1]) != NULL && body[len - 1] != '\0')
			len--;
		if (len == 0 || s3xml_delete_result(body, len - 1, delete_error, &e, &err) == BS_OK)
			abort();
	}
	if (s3xml_upload_id(body, size, &id))
	{
		s3xml_escape(&esc, id.data);
		if (s3xml_unescape(esc.data, esc.len, &back) != 0 || strcmp(back.data, id.data) != 0)
			abort();
	}
	strbuf_free(&token);
	strbuf_free(&code);
	strbuf_free(&msg);
	strbuf_free(&id);
	strbuf_free(&esc);
	strbuf_free(&back);
	return 0;
}
