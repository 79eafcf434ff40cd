/* redact.c — remove secrets from text shown to users. */
#include "redact.h"
#include "strbuf.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#define MASK "********"

/* Keys whose value is a secret, as "key=value" or "key: value". */
static const char *const secret_keys[] = {
	"password", "passwd", "secret_access_key", "aws_secret_access_key", "s3_secret_access_key",
	"session_token", "aws_session_token", "authorization", "x-amz-security-token",
	"sslpassword", "secret", "token", "passphrase", NULL
};

static size_t
match_secret_key(const char *p, const char *start)
{
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
				q++;
				while (*q == ' ')
					q++;
				return (size_t) (q - p);
			}
		}
	}
	return 0;
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
		size_t keylen = match_secret_key(p, text);

		if (keylen > 0)
		{
			size_t vlen = value_length(p + keylen);

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
