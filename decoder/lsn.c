/* lsn.c — parsing and formatting of PostgreSQL WAL positions (LSNs). */
#include "lsn.h"
#include "error.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>

static int
hexval(char c, bool upper_only)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (!upper_only && c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Read 1..maxdigits hex digits from *sp; advances *sp.  Returns digit count or -1. */
static int
read_hex(const char **sp, int maxdigits, bool upper_only, uint64_t *val)
{
	const char *s = *sp;
	uint64_t v = 0;
	int n = 0;
	int d;

	while ((d = hexval(*s, upper_only)) >= 0)
	{
		if (++n > maxdigits)
			return -1;
		v = (v << 4) | (uint64_t) d;
		s++;
	}
	*sp = s;
	*val = v;
	return n;
}

int
lsn_parse(const char *s, uint64_t *out)
{
	uint64_t hi;
	uint64_t lo;

	if (s == NULL)
		return BS_ERR;
	if (read_hex(&s, 8, false, &hi) < 1 || *s++ != '/')
		return BS_ERR;
	if (read_hex(&s, 8, false, &lo) < 1 || *s != '\0')
		return BS_ERR;
	*out = (hi << 32) | lo;
	return BS_OK;
}

char *
lsn_format(uint64_t lsn, char *buf)
{
	snprintf(buf, LSN_BUFLEN, "%" PRIX32 "/%" PRIX32, (uint32_t) (lsn >> 32), (uint32_t) lsn);
	return buf;
}

char *
lsn_format_key(uint64_t lsn, char *buf)
{
	snprintf(buf, LSN_BUFLEN, "%016" PRIX64, lsn);
	return buf;
}

int
lsn_parse_key(const char *s, uint64_t *out)
{
	uint64_t v;

	if (s == NULL)
		return BS_ERR;
	if (read_hex(&s, 16, true, &v) != 16 || *s != '\0')
		return BS_ERR;
	*out = v;
	return BS_OK;
}
