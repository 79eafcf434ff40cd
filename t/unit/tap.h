/* tap.h — a minimal Test Anything Protocol producer for C unit tests. */
#ifndef BACKSTOP_TAP_H
#define BACKSTOP_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_count = 0;
static int tap_failed = 0;

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, expected, ...) do { long long g_ = (long long) (got), e_ = (long long) (expected); \
	if (!ok(g_ == e_, __VA_ARGS__)) printf("#   got: %lld\n#   expected: %lld\n", g_, e_); } while (0)
#define is_str(got, expected, ...) do { const char *g_ = (got), *e_ = (expected); \
	if (!ok(g_ && e_ && strcmp(g_, e_) == 0, __VA_ARGS__)) \
		printf("#   got: \"%s\"\n#   expected: \"%s\"\n", g_ ? g_ : "(null)", e_ ? e_ : "(null)"); } while (0)

static int __attribute__((format(printf, 4, 5)))
tap_ok(int cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	tap_count++;
	printf("%sok %d - ", cond ? "" : "not ", tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond)
	{
		tap_failed++;
		printf("#   Failed test at %s line %d.\n", file, line);
	}
	fflush(stdout);
	return cond;
}

static int
done_testing(void)
{
	printf("1..%d\n", tap_count);
	return tap_failed ? 1 : 0;
}

#endif
