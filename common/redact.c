/* redact.c — remove secrets from text shown to users. */
#include "redact.h"
#include "strbuf.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#define MASK "********"

/* Keys whose value is a secret, as "key=value" or "key: value". */
static const char *const secret_keys[] = {
	"password", "passwd", "secret_access_key", "aws_secret_access_key", "s3_secret_access_key",
	"session_token", "aws_session_token", "authorization", "x-amz-security-token",
	"sslpassword", "secret", "token", "passphrase", NULL
};

/* Words after which a name is a table's (SQL, and the messages that name tables), not a key. */
static const char *const relation_words[] = {
	"table", "from", "update", "into", "join", "only", "relation", NULL
};

static bool
word_char(char c)
{
	return isalnum((unsigned char) c) || c == '_';
}

/* Whether the word at p (a key's name) names a table: the word before it (across spaces)
 * introduces a table, or, before a ':', it is schema-qualified ("base copy of public.secret: ...").
 * Then what follows is no secret value. */
static bool
names_relation(const char *p, const char *start, char sep)
{
	const char *end = p;
	const char *w;

	if (sep == ':' && p > start && p[-1] == '.')
		return true;
	while (end > start && isspace((unsigned char) end[-1]))
		end--;
	if (end == p)
		return false;
	for (w = end; w > start && word_char(w[-1]); w--)
		;
	for (int i = 0; relation_words[i]; i++)
		if ((size_t) (end - w) == strlen(relation_words[i]) && strncasecmp(w, relation_words[i], (size_t) (end - w)) == 0)
			return true;
	return false;
}

/*
 * The length of a secret key at p with what separates it from its value: "key=", "key: ", or
 * the SQL PASSWORD keyword before a string literal ("PASSWORD 'y'", "PASSWORD E'y'": *sql set);
 * 0 when p starts none, or when the name is a table's ("UPDATE secret SET", "FROM password").
 */
static size_t
match_secret_key(const char *p, const char *start, bool *sql)
{
	*sql = false;
	/* A key starts at a word boundary. */
	if (p > start && (isalnum((unsigned char) p[-1]) || p[-1] == '_' || p[-1] == '-'))
		return 0;
	for (int i = 0; secret_keys[i]; i++)
	{
		size_t n = strlen(secret_keys[i]);

		if (strncasecmp(p, secret_keys[i], n) == 0)
		{
			const char *q = p + n;

			while (*q == ' ')
				q++;
			if (*q == '=' || *q == ':')
			{
				if (names_relation(p, start, *q))
					return 0;
				q++;
				while (*q == ' ')
					q++;
				return (size_t) (q - p);
			}
			if (strcasecmp(secret_keys[i], "password") == 0 && isspace((unsigned char) p[n]))
			{
				q = p + n;
				while (isspace((unsigned char) *q))
					q++;
				if (*q == 'E' || *q == 'e')
					q++;
				if (*q == '\'' && !names_relation(p, start, ' '))
				{
					*sql = true;
					return (size_t) (q - p);
				}
			}
		}
	}
	return 0;
}

/* Length of an SQL string literal at p ('...', a quote doubled inside; a backslash escapes
 * the next character too, as in E'...': the longer reading, so that all of a secret goes). */
static size_t
sql_literal_length(const char *p)
{
	const char *q = p + 1;

	while (*q)
	{
		if (*q == '\\' && q[1])
			q += 2;
		else if (*q == '\'' && q[1] == '\'')
			q += 2;
		else if (*q == '\'')
			return (size_t) (q + 1 - p);
		else
			q++;
	}
	return (size_t) (q - p);
}

/* Length of a value starting at p: quoted ('...' with \' escapes) or up to whitespace/&/,. */
static size_t
value_length(const char *p)
{
	const char *q = p;

	if (*q == '\'' || *q == '"')
	{
		char quote = *q++;

		while (*q && *q != quote)
		{
			if (*q == '\\' && q[1])
				q++;
			q++;
		}
		if (*q)
			q++;
		return (size_t) (q - p);
	}
	while (*q && !isspace((unsigned char) *q) && *q != '&' && *q != ',' && *q != '"' && *q != '}')
		q++;
	return (size_t) (q - p);
}

char *
redact_text(const char *text)
{
	strbuf out = STRBUF_INIT;
	const char *p = text;

	strbuf_reserve(&out, strlen(text));
	while (*p)
	{
		bool sql;
		size_t keylen = match_secret_key(p, text, &sql);

		if (keylen > 0)
		{
			size_t vlen = sql ? sql_literal_length(p + keylen) : value_length(p + keylen);

			strbuf_append(&out, p, keylen);
			if (vlen > 0)
				strbuf_append_str(&out, MASK);
			p += keylen + vlen;
			continue;
		}
		/* scheme://user:password@host — mask the password. */
		if (p[0] == ':' && p[1] == '/' && p[2] == '/')
		{
			const char *auth = p + 3;
			const char *end = auth;

			while (*end && *end != '/' && *end != '@' && !isspace((unsigned char) *end))
				end++;
			if (*end == '@')
			{
				const char *colon = memchr(auth, ':', (size_t) (end - auth));

				strbuf_append_str(&out, "://");
				if (colon)
				{
					strbuf_append(&out, auth, (size_t) (colon - auth));
					strbuf_append_str(&out, ":" MASK);
				}
				else
					strbuf_append(&out, auth, (size_t) (end - auth));
				p = end;
				continue;
			}
		}
		strbuf_append_char(&out, *p);
		p++;
	}
	return strbuf_detach(&out, NULL);
}
