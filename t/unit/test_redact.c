/* test_redact.c — secret redaction (redact_text): values after secret keys and SQL's PASSWORD go, names of tables called "secret" or "password" stay. */
#include "redact.h"
#include "tap.h"

#include <stdlib.h>

static void
redacts_to(const char *text, const char *want, const char *what)
{
	char *got = redact_text(text);

	is_str(got, want, "%s", what);
	free(got);
}

int
main(void)
{
	/* Secrets: connection strings, URLs, headers, SQL's PASSWORD. */
	redacts_to("host=db user=u password=s3cret dbname=x", "host=db user=u password=******** dbname=x",
			   "a conninfo password");
	redacts_to("postgresql://alice:hunter2@db.example/prod", "postgresql://alice:********@db.example/prod",
			   "a URL's password");
	redacts_to("x-amz-security-token: abc def", "x-amz-security-token: ******** def", "a header's token");
	redacts_to("s3_secret_access_key = wJalr host=h", "s3_secret_access_key = ******** host=h", "a configuration secret");
	redacts_to("ALTER ROLE x PASSWORD 'y'", "ALTER ROLE x PASSWORD ********", "ALTER ROLE ... PASSWORD 'y'");
	redacts_to("CREATE ROLE app LOGIN ENCRYPTED password\n  'it''s s3cret' VALID UNTIL 'infinity'",
			   "CREATE ROLE app LOGIN ENCRYPTED password\n  ******** VALID UNTIL 'infinity'",
			   "a quote doubled inside the literal, over a line break, in lower case");
	redacts_to("ALTER USER x WITH PASSWORD E'a\\'b c' LOGIN", "ALTER USER x WITH PASSWORD E******** LOGIN",
			   "an E'' literal with a backslash escape");
	redacts_to("LINE 1: ALTER ROLE x PASSWORD 'y' FOO\n", "LINE 1: ALTER ROLE x PASSWORD ******** FOO\n",
			   "a server's syntax error quoting the statement");
	redacts_to("ALTER ROLE x PASSWORD 'unterminated", "ALTER ROLE x PASSWORD ********", "an unterminated literal, all of it");
	redacts_to("UPDATE t SET password = 'x' WHERE id = 1", "UPDATE t SET password = ******** WHERE id = 1",
			   "a value assigned to a column called password");

	/* No secrets: a table called secret, password or token, and what follows its name. */
	redacts_to("UPDATE secret SET x = 1", "UPDATE secret SET x = 1", "UPDATE secret");
	redacts_to("SELECT * FROM password", "SELECT * FROM password", "FROM password");
	redacts_to("SELECT * FROM password WHERE id = 1", "SELECT * FROM password WHERE id = 1", "FROM password WHERE");
	redacts_to("INSERT INTO password VALUES (1)", "INSERT INTO password VALUES (1)", "INTO password");
	redacts_to("ALTER ROLE x PASSWORD NULL", "ALTER ROLE x PASSWORD NULL", "PASSWORD NULL has nothing to mask");
	redacts_to("base copy of public.secret: the table was rewritten",
			   "base copy of public.secret: the table was rewritten", "a qualified table name before a colon");
	redacts_to("table password: NOT archived", "table password: NOT archived", "\"table password:\"");
	redacts_to("could not lock relation token: lock timeout", "could not lock relation token: lock timeout",
			   "\"relation token:\"");
	redacts_to("password authentication failed for user \"u\"", "password authentication failed for user \"u\"",
			   "the server's password failure");
	redacts_to("", "", "an empty text");
	return done_testing();
}
