/* ident.c — SQL identifiers as PostgreSQL's lexer reads them: "schema.table" split into its parts. */
#include "ident.h"
#include "strbuf.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

static bool
ident_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool
ident_cont(unsigned char c)
{
	return ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

/* One identifier at *sp, as PostgreSQL's lexer reads it; advances *sp. */
static int
read_ident(const char **sp, const char *whole, char **out, bs_error *err)
{
	const char *s = *sp;
	strbuf sb = STRBUF_INIT;

	bool unicode = (s[0] == 'U' || s[0] == 'u') && s[1] == '&' && s[2] == '"';

	/* U&"..." with \XXXX / \+XXXXXX escapes: the form names with control characters are
	 * printed in (quote_ident_printable), so that they can be pasted back. */
	if (unicode)
		s += 2;
	if (*s == '"')
	{
		s++;
		for (;;)
		{
			if (*s == '\0')
			{
				strbuf_free(&sb);
				return error_set(err, ERRCODE_SYNTAX, "unterminated quoted identifier in \"%s\"", whole);
			}
			if (unicode && *s == '\\')
			{
				int ndig = s[1] == '+' ? 6 : 4;
				const char *h = s + (s[1] == '+' ? 2 : 1);
				uint32_t cp = 0;

				if (s[1] == '\\')
				{
					strbuf_append_char(&sb, '\\');
					s += 2;
					continue;
				}
				for (int k = 0; k < ndig; k++)
				{
					char c = h[k];

					if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
					{
						strbuf_free(&sb);
						return error_set(err, ERRCODE_SYNTAX, "invalid Unicode escape in \"%s\": \\XXXX or \\+XXXXXX expected", whole);
					}
					cp = cp * 16 + (uint32_t) (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
				}
				if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
				{
					strbuf_free(&sb);
					return error_set(err, ERRCODE_SYNTAX, "invalid Unicode code point in \"%s\"", whole);
				}
				if (cp < 0x80)
					strbuf_append_char(&sb, (char) cp);
				else if (cp < 0x800)
				{
					strbuf_append_char(&sb, (char) (0xC0 | (cp >> 6)));
					strbuf_append_char(&sb, (char) (0x80 | (cp & 0x3F)));
				}
				else if (cp < 0x10000)
				{
					strbuf_append_char(&sb, (char) (0xE0 | (cp >> 12)));
					strbuf_append_char(&sb, (char) (0x80 | ((cp >> 6) & 0x3F)));
					strbuf_append_char(&sb, (char) (0x80 | (cp & 0x3F)));
				}
				else
				{
					strbuf_append_char(&sb, (char) (0xF0 | (cp >> 18)));
					strbuf_append_char(&sb, (char) (0x80 | ((cp >> 12) & 0x3F)));
					strbuf_append_char(&sb, (char) (0x80 | ((cp >> 6) & 0x3F)));
					strbuf_append_char(&sb, (char) (0x80 | (cp & 0x3F)));
				}
				s = h + ndig;
				continue;
			}
			if (*s == '"')
			{
				if (s[1] != '"')
					break;
				s++;
			}
			strbuf_append_char(&sb, *s++);
		}
		s++;
		if (sb.len == 0)
		{
			strbuf_free(&sb);
			return error_set(err, ERRCODE_SYNTAX, "zero-length quoted identifier in \"%s\"", whole);
		}
	}
	else
	{
		if (!ident_start((unsigned char) *s))
			return error_set(err, ERRCODE_SYNTAX, "invalid table name \"%s\": expected schema.table", whole);
		while (ident_cont((unsigned char) *s))
		{
			char c = *s++;

			strbuf_append_char(&sb, (c >= 'A' && c <= 'Z') ? (char) (c - 'A' + 'a') : c);
		}
	}
	*sp = s;
	*out = strbuf_detach(&sb, NULL);
	return BS_OK;
}

int
ident_split_name(const char *qualified, char **schema, char **name, bs_error *err)
{
	const char *s = qualified;
	char *first = NULL;
	char *second = NULL;

	*schema = *name = NULL;
	if (read_ident(&s, qualified, &first, err) != BS_OK)
		return BS_ERR;
	if (*s == '.')
	{
		s++;
		if (read_ident(&s, qualified, &second, err) != BS_OK)
		{
			free(first);
			return BS_ERR;
		}
	}
	if (*s != '\0')
	{
		free(first);
		free(second);
		return error_set(err, ERRCODE_SYNTAX, "invalid table name \"%s\": expected schema.table", qualified);
	}
	if (second)
	{
		*schema = first;
		*name = second;
	}
	else
	{
		*schema = xstrdup("public");
		*name = first;
	}
	return BS_OK;
}
