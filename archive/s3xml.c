/* s3xml.c — the XML of the S3 REST API: error documents, multipart and delete answers and list pages read, request bodies written. */
#include "s3xml.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool
s3xml_find(const char *p, const char *end, const char *tag, const char **vstart, const char **vend)
{
	char open[64], close[64];
	size_t olen, clen;
	const char *s, *e;

	snprintf(open, sizeof(open), "<%s>", tag);
	snprintf(close, sizeof(close), "</%s>", tag);
	olen = strlen(open);
	clen = strlen(close);
	for (s = p; s + olen <= end; s++)
		if (memcmp(s, open, olen) == 0)
			break;
	if (s + olen > end)
		return false;
	s += olen;
	for (e = s; e + clen <= end; e++)
		if (memcmp(e, close, clen) == 0)
			break;
	if (e + clen > end)
		return false;
	*vstart = s;
	*vend = e;
	return true;
}

bool
s3xml_text(const char *p, const char *end, const char *tag, strbuf *out)
{
	const char *s, *e;

	strbuf_reset(out);
	if (!s3xml_find(p, end, tag, &s, &e))
		return false;
	if (s3xml_unescape(s, (size_t) (e - s), out) == 0)
		return true;
	strbuf_reset(out);
	return false;
}

static void
append_utf8(strbuf *out, unsigned long cp)
{
	if (cp < 0x80)
		strbuf_append_char(out, (char) cp);
	else if (cp < 0x800)
	{
		strbuf_append_char(out, (char) (0xC0 | (cp >> 6)));
		strbuf_append_char(out, (char) (0x80 | (cp & 0x3F)));
	}
	else if (cp < 0x10000)
	{
		strbuf_append_char(out, (char) (0xE0 | (cp >> 12)));
		strbuf_append_char(out, (char) (0x80 | ((cp >> 6) & 0x3F)));
		strbuf_append_char(out, (char) (0x80 | (cp & 0x3F)));
	}
	else
	{
		strbuf_append_char(out, (char) (0xF0 | (cp >> 18)));
		strbuf_append_char(out, (char) (0x80 | ((cp >> 12) & 0x3F)));
		strbuf_append_char(out, (char) (0x80 | ((cp >> 6) & 0x3F)));
		strbuf_append_char(out, (char) (0x80 | (cp & 0x3F)));
	}
}

/* The five predefined entities and numeric references; anything else is malformed (-1). */
int
s3xml_unescape(const char *s, size_t len, strbuf *out)
{
	static const struct
	{
		const char *name;
		char		c;
	}			ents[] = {{"amp;", '&'}, {"lt;", '<'}, {"gt;", '>'}, {"quot;", '"'}, {"apos;", '\''}};
	size_t		i = 0;

	strbuf_reset(out);
	strbuf_reserve(out, len);
	out->data[0] = '\0';
	while (i < len)
	{
		const char *amp = memchr(s + i, '&', len - i);
		size_t		plain = amp ? (size_t) (amp - (s + i)) : len - i;
		bool		found = false;

		strbuf_append(out, s + i, plain);
		i += plain;
		if (i >= len)
			break;
		i++;					/* the '&' */
		for (size_t k = 0; k < sizeof(ents) / sizeof(ents[0]); k++)
		{
			size_t		n = strlen(ents[k].name);

			if (len - i >= n && memcmp(s + i, ents[k].name, n) == 0)
			{
				strbuf_append_char(out, ents[k].c);
				i += n;
				found = true;
				break;
			}
		}
		if (found)
			continue;
		if (i < len && s[i] == '#')
		{
			unsigned long cp = 0;
			bool		hexa = (i + 1 < len && (s[i + 1] == 'x' || s[i + 1] == 'X'));
			size_t		j = i + (hexa ? 2 : 1);
			size_t		digits = 0;

			for (; j < len && s[j] != ';' && digits < 8; j++, digits++)
			{
				int			c = (unsigned char) s[j];
				int			v;

				if (isdigit(c))
					v = c - '0';
				else if (hexa && isxdigit(c))
					v = tolower(c) - 'a' + 10;
				else
					return -1;
				cp = cp * (hexa ? 16 : 10) + (unsigned long) v;
			}
			if (j >= len || s[j] != ';' || digits == 0 || cp == 0 || cp > 0x10FFFF ||
				(cp >= 0xD800 && cp <= 0xDFFF))
				return -1;
			append_utf8(out, cp);
			i = j + 1;
			continue;
		}
		return -1;
	}
	return 0;
}

void
s3xml_escape(strbuf *out, const char *s)
{
	for (; *s; s++)
	{
		switch (*s)
		{
			case '&':
				strbuf_append_str(out, "&amp;");
				break;
			case '<':
				strbuf_append_str(out, "&lt;");
				break;
			case '>':
				strbuf_append_str(out, "&gt;");
				break;
			case '"':
				strbuf_append_str(out, "&quot;");
				break;
			default:
				strbuf_append_char(out, *s);
		}
	}
}

void
s3xml_error_doc(const char *body, size_t len, strbuf *code, strbuf *msg)
{
	const char *p = body ? body : "";
	const char *end = p + (body ? len : 0);

	if (!s3xml_text(p, end, "Code", code))
		strbuf_reset(code);
	if (!s3xml_text(p, end, "Message", msg))
		strbuf_reset(msg);
}

bool
s3xml_upload_id(const char *body, size_t len, strbuf *id)
{
	const char *p = body ? body : "";

	return s3xml_text(p, p + (body ? len : 0), "UploadId", id) && id->len > 0;
}

/*
 * The content of the root element <name ...> (it may carry an xmlns attribute) in
 * [*cs, *ce): false unless the body ends with its closing tag, so that an answer cut short
 * is never taken for a whole one.  name is at most 60 bytes.
 */
static bool
root_element(const char *p, const char *end, const char *name, const char **cs, const char **ce)
{
	char		open[64];
	char		close[64];
	size_t		olen;
	size_t		clen;
	const char *s;
	const char *gt;

	snprintf(open, sizeof(open), "<%s", name);
	snprintf(close, sizeof(close), "</%s>", name);
	olen = strlen(open);
	clen = strlen(close);

	while (end > p && isspace((unsigned char) end[-1]))
		end--;
	if ((size_t) (end - p) < olen + clen || memcmp(end - clen, close, clen) != 0)
		return false;
	end -= clen;
	for (s = p; s + olen < end; s++)
		if (memcmp(s, open, olen) == 0 && (s[olen] == '>' || isspace((unsigned char) s[olen])))
			break;
	if (s + olen >= end)
		return false;
	gt = memchr(s + olen, '>', (size_t) (end - (s + olen)));
	if (gt == NULL || gt[-1] == '/')
		return false;
	*cs = gt + 1;
	*ce = end;
	return true;
}

int
s3xml_list_page(const char *body, size_t len, s3xml_entry_cb cb, void *ctx, bool *truncated,
				strbuf *next_token, bs_error *err)
{
	const char *p = body ? body : "";
	const char *end = p + (body ? len : 0);
	const char *start;
	strbuf		key = STRBUF_INIT;
	strbuf		val = STRBUF_INIT;
	int			rc = BS_ERR;

	*truncated = false;
	strbuf_reset(next_token);
	if (memchr(p, '\0', (size_t) (end - p)) != NULL || !root_element(p, end, "ListBucketResult", &start, &end))
	{
		error_set(err, ERRCODE_PROTOCOL, "malformed answer");
		goto out;
	}
	/* The root's own elements come before or after the entries; a <Key> is escaped text, so
	 * no entry can hold a tag that would be read as one of them. */
	if (!s3xml_text(start, end, "IsTruncated", &val) ||
		(strcmp(val.data, "true") != 0 && strcmp(val.data, "false") != 0))
	{
		error_set(err, ERRCODE_PROTOCOL, "malformed answer (no <IsTruncated>true|false</IsTruncated>)");
		goto out;
	}
	*truncated = strcmp(val.data, "true") == 0;
	if (!s3xml_text(start, end, "NextContinuationToken", next_token))
		strbuf_reset(next_token);
	for (p = start;;)
	{
		const char *cs,
				   *ce;
		char	   *endp;
		unsigned long long size;

		if (!s3xml_find(p, end, "Contents", &cs, &ce))
			break;
		p = ce + strlen("</Contents>");
		if (!s3xml_text(cs, ce, "Key", &key) || key.len == 0 || strlen(key.data) != key.len ||
			!s3xml_text(cs, ce, "Size", &val) || val.len == 0)
		{
			error_set(err, ERRCODE_PROTOCOL, "malformed <Contents> entry");
			goto out;
		}
		errno = 0;
		size = strtoull(val.data, &endp, 10);
		if (errno != 0 || *endp != '\0' || !isdigit((unsigned char) val.data[0]))
		{
			error_set(err, ERRCODE_PROTOCOL, "bad size \"%.40s\"", val.data);
			goto out;
		}
		if (cb(ctx, key.data, (uint64_t) size, err) != BS_OK)
			goto out;
	}
	rc = BS_OK;
out:
	strbuf_free(&key);
	strbuf_free(&val);
	return rc;
}

int
s3xml_delete_result(const char *body, size_t len, s3xml_delete_error_cb cb, void *ctx, bs_error *err)
{
	const char *p = body ? body : "";
	const char *end = p + (body ? len : 0);
	const char *start;
	strbuf		key = STRBUF_INIT;
	strbuf		code = STRBUF_INIT;
	strbuf		msg = STRBUF_INIT;
	int			rc = BS_ERR;

	if (memchr(p, '\0', (size_t) (end - p)) != NULL || !root_element(p, end, "DeleteResult", &start, &end))
	{
		error_set(err, ERRCODE_PROTOCOL, "malformed answer (not a whole <DeleteResult>)");
		goto out;
	}
	for (p = start;;)
	{
		const char *es,
				   *ee;

		if (!s3xml_find(p, end, "Error", &es, &ee))
			break;
		p = ee + strlen("</Error>");
		if (!s3xml_text(es, ee, "Key", &key) || key.len == 0 || strlen(key.data) != key.len ||
			!s3xml_text(es, ee, "Code", &code) || code.len == 0)
		{
			error_set(err, ERRCODE_PROTOCOL, "malformed <Error> entry");
			goto out;
		}
		if (!s3xml_text(es, ee, "Message", &msg))
			strbuf_reset(&msg);
		if (cb(ctx, key.data, code.data, msg.data ? msg.data : "", err) != BS_OK)
			goto out;
	}
	rc = BS_OK;
out:
	strbuf_free(&key);
	strbuf_free(&code);
	strbuf_free(&msg);
	return rc;
}
