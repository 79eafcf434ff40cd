/* redact.h — remove secrets (passwords, keys, tokens, URL credentials) from text shown to users. */
#ifndef BACKSTOP_REDACT_H
#define BACKSTOP_REDACT_H

/* Returns a newly allocated copy of text with secrets replaced by "********":
 * password=... in conninfo strings, user:password@ in URLs, AWS secret keys,
 * session tokens, Authorization/X-Amz-Security-Token headers and the string after SQL's
 * PASSWORD ("ALTER ROLE r PASSWORD '...'").  A table of such a name is no key: what follows
 * "UPDATE secret", "FROM password" or "public.secret:" is shown. */
char *redact_text(const char *text);

#endif
