/* strbuf.c — growable byte buffers. */
#include "strbuf.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
out_of_memory(size_t n)
{
	fprintf(stderr, "backstop: FATAL: out of memory allocating %zu bytes\n", n);
	abort();
}

void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		out_of_memory(n);
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		out_of_memory(n * size);
	return p;
}

void *
xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		out_of_memory(n);
	return q;
}

char *
xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = xvasprintf(fmt, ap);
	va_end(ap);
	return s;
}

char *
xvasprintf(const char *fmt, va_list ap)
{
	char *s;

	if (vasprintf(&s, fmt, ap) < 0)
		out_of_memory(strlen(fmt));
	return s;
}

void
strbuf_reserve(strbuf *sb, size_t extra)
{
	size_t need;

	if (extra > SIZE_MAX - sb->len - 1)
		out_of_memory(SIZE_MAX);
	need = sb->len + extra + 1;
	if (need <= sb->cap)
		return;
	size_t cap = sb->cap ? sb->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	sb->data = xrealloc(sb->data, cap);
	sb->cap = cap;
	/* Always a string, even before the first append (strbuf_detach hands it out as one). */
	sb->data[sb->len] = '\0';
}

void
strbuf_append(strbuf *sb, const void *data, size_t len)
{
	strbuf_reserve(sb, len);
	if (len)
		memcpy(sb->data + sb->len, data, len);
	sb->len += len;
	sb->data[sb->len] = '\0';
}

void
strbuf_append_str(strbuf *sb, const char *s)
{
	strbuf_append(sb, s, strlen(s));
}

void
strbuf_append_char(strbuf *sb, char c)
{
	strbuf_append(sb, &c, 1);
}

void
strbuf_printf(strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	strbuf_reserve(sb, (size_t) n);
	va_start(ap, fmt);
	vsnprintf(sb->data + sb->len, (size_t) n + 1, fmt, ap);
	va_end(ap);
	sb->len += (size_t) n;
}

void
strbuf_append_u8(strbuf *sb, uint8_t v)
{
	strbuf_append(sb, &v, 1);
}

void
strbuf_append_be16(strbuf *sb, uint16_t v)
{
	uint8_t b[2] = {(uint8_t) (v >> 8), (uint8_t) v};

	strbuf_append(sb, b, 2);
}

void
strbuf_append_be32(strbuf *sb, uint32_t v)
{
	uint8_t b[4] = {(uint8_t) (v >> 24), (uint8_t) (v >> 16), (uint8_t) (v >> 8), (uint8_t) v};

	strbuf_append(sb, b, 4);
}

void
strbuf_append_be64(strbuf *sb, uint64_t v)
{
	strbuf_append_be32(sb, (uint32_t) (v >> 32));
	strbuf_append_be32(sb, (uint32_t) v);
}

void
strbuf_reset(strbuf *sb)
{
	sb->len = 0;
	if (sb->data)
		sb->data[0] = '\0';
}

void
strbuf_free(strbuf *sb)
{
	free(sb->data);
	sb->data = NULL;
	sb->len = sb->cap = 0;
}

char *
strbuf_detach(strbuf *sb, size_t *len)
{
	char *p;

	if (sb->data == NULL)
		strbuf_reserve(sb, 0);
	p = sb->data;
	if (len)
		*len = sb->len;
	sb->data = NULL;
	sb->len = sb->cap = 0;
	return p;
}

void
hex_encode(const void *data, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	const uint8_t *in = data;

	for (size_t i = 0; i < len; i++)
	{
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

void
strbuf_append_hex(strbuf *sb, const void *data, size_t len)
{
	strbuf_reserve(sb, 2 * len);
	hex_encode(data, len, sb->data + sb->len);
	sb->len += 2 * len;
}

bool
buf_fill(void *buf, size_t size, size_t *have, const uint8_t **p, size_t *len)
{
	size_t take = size - *have;

	if (take > *len)
		take = *len;
	memcpy((uint8_t *) buf + *have, *p, take);
	*have += take;
	*p += take;
	*len -= take;
	return *have == size;
}

void
strbuf_append_printable(strbuf *sb, const char *s)
{
	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
	{
		if (*p == '\n')
			strbuf_append_str(sb, "\\n");
		else if (*p == '\r')
			strbuf_append_str(sb, "\\r");
		else if (*p == '\t')
			strbuf_append_str(sb, "\\t");
		else if (*p < 0x20 || *p == 0x7f)
			strbuf_printf(sb, "\\x%02x", *p);
		else
			strbuf_append_char(sb, (char) *p);
	}
}

char *
xstrdup_printable(const char *s)
{
	strbuf sb = STRBUF_INIT;

	strbuf_append_printable(&sb, s ? s : "");
	return sb.data ? strbuf_detach(&sb, NULL) : xstrdup("");
}

void
strbuf_append_shell_word(strbuf *sb, const char *s)
{
	bool bare = *s != '\0';

	for (const char *p = s; *p && bare; p++)
		bare = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			strchr("_-.,/:@%+=", *p) != NULL;
	if (bare)
		strbuf_append_str(sb, s);
	else
		strbuf_append_shell_quoted(sb, s);
}

void
strbuf_append_shell_quoted(strbuf *sb, const char *s)
{
	strbuf_append_char(sb, '\'');
	for (; *s; s++)
	{
		if (*s == '\'')
			strbuf_append_str(sb, "'\\''");
		else
			strbuf_append_char(sb, *s);
	}
	strbuf_append_char(sb, '\'');
}
