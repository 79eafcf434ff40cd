/* isotime.c — ISO-8601 UTC times with microseconds ("2026-11-26T16:00:00.123456Z") <-> Unix microseconds. */
#include "isotime.h"
#include "error.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/*
 * Civil-date arithmetic is done here (days from 1970-01-01, proleptic Gregorian) so that
 * neither TZ nor the C library's time_t range matters.
 */

static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era;
	int64_t yoe;
	int64_t doy;
	int64_t doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era;
	int64_t doe;
	int64_t yoe;
	int64_t doy;
	int64_t mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int) (doy - (153 * mp + 2) / 5 + 1);
	*m = (int) (mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

char *
isotime_format(int64_t unix_us, char *buf)
{
	int64_t secs = unix_us / 1000000;
	int64_t us = unix_us % 1000000;
	int64_t days;
	int64_t sod;
	int64_t y;
	int m;
	int d;

	if (us < 0)
	{
		us += 1000000;
		secs--;
	}
	days = secs / 86400;
	sod = secs % 86400;
	if (sod < 0)
	{
		sod += 86400;
		days--;
	}
	civil_from_days(days, &y, &m, &d);
	snprintf(buf, ISOTIME_BUFLEN, "%04" PRId64 "-%02d-%02dT%02d:%02d:%02d.%06dZ",
			 y, m, d, (int) (sod / 3600), (int) (sod / 60 % 60), (int) (sod % 60), (int) us);
	return buf;
}

/* Exactly n decimal digits at s; -1 otherwise. */
static int
read_digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int
isotime_parse(const char *s, int64_t *out)
{
	static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y;
	int mo;
	int d;
	int h;
	int mi;
	int sec;
	int64_t frac = 0;
	int nfrac = 0;
	const char *p;

	if (s == NULL || strlen(s) < 20)
		return BS_ERR;
	y = read_digits(s, 4);
	mo = read_digits(s + 5, 2);
	d = read_digits(s + 8, 2);
	h = read_digits(s + 11, 2);
	mi = read_digits(s + 14, 2);
	sec = read_digits(s + 17, 2);
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h < 0 || h > 23 ||
		mi < 0 || mi > 59 || sec < 0 || sec > 59 ||
		s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':')
		return BS_ERR;
	if (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return BS_ERR;
	p = s + 19;
	if (*p == '.')
	{
		p++;
		while (*p >= '0' && *p <= '9')
		{
			if (++nfrac > 6)
				return BS_ERR;
			frac = frac * 10 + (*p++ - '0');
		}
		if (nfrac == 0)
			return BS_ERR;
		for (int i = nfrac; i < 6; i++)
			frac *= 10;
	}
	if (p[0] != 'Z' || p[1] != '\0')
		return BS_ERR;
	*out = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) * 1000000) + frac;
	return BS_OK;
}
