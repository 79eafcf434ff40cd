/* test_escape.c — unit tests for human output that cannot be forged: escaped text, log lines, displayed names. */
#include "capture.h"
#include "log.h"
#include "pgsql.h"
#include "quote.h"
#include "recover_load.h"
#include "strbuf.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int
count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

int
main(void)
{
	char *s;

	/* --- xstrdup_printable / strbuf_append_printable --- */
	s = xstrdup_printable("a\nb\rc\td\x1b[31me\x7f");
	is_str(s, "a\\nb\\rc\\td\\x1b[31me\\x7f", "control characters escaped");
	free(s);
	s = xstrdup_printable("plain text, \"quotes\", back\\slash and UTF-8 \xc3\xa9");
	is_str(s, "plain text, \"quotes\", back\\slash and UTF-8 \xc3\xa9", "printable text unchanged");
	free(s);
	s = xstrdup_printable(NULL);
	is_str(s, "", "NULL is the empty string");
	free(s);

	/* --- names for human output --- */
	s = quote_display_name("public", "users");
	is_str(s, "public.users", "plain names shown bare");
	free(s);
	s = quote_display_name("public", "My Table");
	is_str(s, "public.\"My Table\"", "a name needing quotes is quoted");
	free(s);
	s = quote_display_name("a.b", "x\"y");
	is_str(s, "\"a.b\".\"x\"\"y\"", "a dot or quote inside a name cannot pass for another name");
	free(s);
	s = quote_display_name("public", "evil\n2026-01-01T00:00:00.000Z backstop[1] ERROR: forged");
	ok(strchr(s, '\n') == NULL, "a newline in a name never reaches the output: %s", s);
	is_str(s, "public.U&\"evil\\000A2026-01-01T00:00:00.000Z backstop[1] ERROR: forged\"",
		   "a name with control characters is written U&\"...\" (valid SQL)");
	free(s);
	s = quote_ident_printable("a\\b\x01");
	is_str(s, "U&\"a\\\\b\\0001\"", "U& form escapes the backslash and the control character");
	free(s);
	s = quote_ident_printable("ok name");
	is_str(s, "\"ok name\"", "without control characters the usual quoting");
	free(s);

	/* --- the log formatter: one event, one line --- */
	{
		capture c;

		capture_begin(&c);
		log_configure(LOG_INFO, 0);
		log_info("table %s.%s archived", "public", "t\n2026-01-01T00:00:00.000Z backstop[1] ERROR: forged");
		log_configure(LOG_INFO, 1);
		log_info("table %s archived", "t\nx");
		capture_end(&c);
		is_int(count_lines(errout), 2, "two messages, two lines (text and JSON)");
		ok(strstr(errout, "INFO: table public.t\\n2026-01-01T00:00:00.000Z backstop[1] ERROR: forged archived\n") != NULL,
		   "text format: the newline is shown as \\n inside the one line");
		ok(strstr(errout, "\"msg\":\"table t\\nx archived\"") != NULL, "JSON format escapes as before");
	}

	/* --- names of recreated indexes and constraints --- */
	{
		char long_target[64];

		memset(long_target, 'x', 63);
		long_target[63] = '\0';
		s = recover_rename_object("t_pkey", "t", "t_recovered");
		is_str(s, "t_recovered_pkey", "source prefix replaced by the target's name");
		free(s);
		s = recover_rename_object("myindex", "t", "t_recovered");
		is_str(s, "t_recovered_myindex", "other names prefixed with the target's");
		free(s);
		s = recover_rename_object("t_pkey", "t", long_target);
		ok(strlen(s) == 63 && strcmp(s + 58, "_pkey") == 0 && strcmp(s, long_target) != 0,
		   "a 63-byte target keeps the suffix and differs from the table's name: %s", s);
		free(s);
		s = recover_rename_object("t_a_key", "t", "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
								  "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
								  "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
								  "\xc3\xa9\xc3\xa9\xc3\xa9");
		ok(strlen(s) <= 63 && strcmp(s + strlen(s) - 6, "_a_key") == 0 && ((unsigned char) s[strlen(s) - 7] & 0xC0) != 0xC0,
		   "UTF-8 target cut on a character boundary, suffix kept: %s", s);
		free(s);
	}
	return done_testing();
}
