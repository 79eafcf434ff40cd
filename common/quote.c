/* quote.c — SQL identifier and literal quoting, and safe display of schema-qualified names. */
#include "quote.h"
#include "strbuf.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

char *
quote_ident(const char *ident)
{
	strbuf sb = STRBUF_INIT;

	strbuf_append_char(&sb, '"');
	for (const char *p = ident; *p; p++)
	{
		if (*p == '"')
			strbuf_append_char(&sb, '"');
		strbuf_append_char(&sb, *p);
	}
	strbuf_append_char(&sb, '"');
	return strbuf_detach(&sb, NULL);
}

char *
quote_literal(const char *lit)
{
	strbuf sb = STRBUF_INIT;
	bool backslash = strchr(lit, '\\') != NULL;

	/* E'' form when backslashes are present, so the result is correct whatever
	 * standard_conforming_strings says. */
	if (backslash)
		strbuf_append_char(&sb, 'E');
	strbuf_append_char(&sb, '\'');
	for (const char *p = lit; *p; p++)
	{
		if (*p == '\'' || (*p == '\\' && backslash))
			strbuf_append_char(&sb, *p);
		strbuf_append_char(&sb, *p);
	}
	strbuf_append_char(&sb, '\'');
	return strbuf_detach(&sb, NULL);
}

/* schema.name, each part quoted by quote. */
static char *
qualify(const char *schema, const char *name, char *(*quote)(const char *))
{
	char *s = quote(schema);
	char *n = quote(name);
	strbuf sb = STRBUF_INIT;

	strbuf_printf(&sb, "%s.%s", s, n);
	free(s);
	free(n);
	return strbuf_detach(&sb, NULL);
}

char *
quote_qualified_name(const char *schema, const char *name)
{
	return qualify(schema, name, quote_ident);
}

static bool
has_control(const char *s)
{
	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return true;
	return false;
}

char *
quote_ident_printable(const char *ident)
{
	strbuf sb = STRBUF_INIT;

	if (!has_control(ident))
		return quote_ident(ident);
	/* U&"..." with \XXXX escapes: the same identifier to PostgreSQL, one line on a terminal. */
	strbuf_append_str(&sb, "U&\"");
	for (const unsigned char *p = (const unsigned char *) ident; *p; p++)
	{
		if (*p == '"')
			strbuf_append_str(&sb, "\"\"");
		else if (*p == '\\')
			strbuf_append_str(&sb, "\\\\");
		else if (*p < 0x20 || *p == 0x7f)
			strbuf_printf(&sb, "\\%04X", *p);
		else
			strbuf_append_char(&sb, (char) *p);
	}
	strbuf_append_char(&sb, '"');
	return strbuf_detach(&sb, NULL);
}

char *
quote_qualified_name_printable(const char *schema, const char *name)
{
	return qualify(schema, name, quote_ident_printable);
}

/* A part shown bare when PostgreSQL would read it back unchanged without quotes. */
static void
append_display_ident(strbuf *sb, const char *ident)
{
	bool bare = (*ident >= 'a' && *ident <= 'z') || *ident == '_';
	char *q;

	for (const char *p = ident; bare && *p; p++)
		bare = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '$';
	if (bare)
	{
		strbuf_append_str(sb, ident);
		return;
	}
	q = quote_ident_printable(ident);
	strbuf_append_str(sb, q);
	free(q);
}

char *
quote_display_name(const char *schema, const char *name)
{
	strbuf sb = STRBUF_INIT;

	append_display_ident(&sb, schema ? schema : "");
	strbuf_append_char(&sb, '.');
	append_display_ident(&sb, name ? name : "");
	return strbuf_detach(&sb, NULL);
}
