/* test_recover_time.c — unit tests for points in time as users give them: zones, relative times, precision. */
#include "manifest.h"
#include "recover_plan.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* 2026-11-26 16:00:00 UTC in Unix microseconds. */
#define T0 INT64_C(1795708800000000)

static void
set_tz(const char *tz)
{
	if (tz)
		setenv("TZ", tz, 1);
	else
		unsetenv("TZ");
	tzset();
}

int
main(void)
{
	recover_time t;
	char buf[RECOVER_TIME_BUFLEN];
	const int64_t now = T0 + 123456;
	static const char *const bad[] = {
		"", "yesterday", "20 min", "20 minutes before", "-5 min ago", "20 fortnights ago", "ago",
		"2026-11-26", "2026-11-26 16:00", "2026-11-26 16:00:00.", "2026-11-26 16:00:00 EST",
		"2026-11-26 16:00:00+16", "2026-02-30 16:00:00", "2026-11-26 16:00:00.1234567",
		"999999999999 days ago", NULL
	};

	/* Absolute times with an explicit zone do not depend on TZ. */
	set_tz("America/New_York");
	ok(recover_parse_time_at("2026-11-26 16:00:00Z", now, &t) == BS_OK && t.time == T0, "Z is UTC");
	is_str(t.zone, "UTC", "zone named UTC");
	ok(recover_parse_time_at("2026-11-26 16:00:00 UTC", now, &t) == BS_OK && t.time == T0, "UTC spelled out");
	ok(recover_parse_time_at("2026-11-26T18:00:00+02:00", now, &t) == BS_OK && t.time == T0, "numeric offset +02:00");
	is_str(t.zone, "UTC+02:00", "offset named");
	ok(recover_parse_time_at("2026-11-26 11:00:00-05", now, &t) == BS_OK && t.time == T0, "numeric offset -05");
	ok(recover_parse_time_at("2026-11-26 10:30:00-0530", now, &t) == BS_OK && t.time == T0, "offset -0530");

	/* No zone: the user's zone (TZ), as psql shows local times. */
	ok(recover_parse_time_at("2026-11-26 11:00:00", now, &t) == BS_OK && t.time == T0,
	   "no zone: read in TZ=America/New_York (EST, UTC-5)");
	ok(strstr(t.zone, "America/New_York") && strstr(t.zone, "UTC-05:00"), "zone named with its offset: %s", t.zone);
	ok(recover_parse_time_at("2026-07-01 12:00:00", now, &t) == BS_OK && t.time == INT64_C(1782921600000000),
	   "summer time: EDT, UTC-4");
	ok(strstr(t.zone, "UTC-04:00") != NULL, "summer offset named: %s", t.zone);
	ok(recover_parse_time_at("2026-03-08 02:30:00", now, &t) == BS_ERR, "a local time the clocks skipped is refused");
	set_tz("Europe/Berlin");
	ok(recover_parse_time_at("2026-11-26 17:00:00.5", now, &t) == BS_OK && t.time == T0 + 500000,
	   "TZ=Europe/Berlin: CET, UTC+1, with a fraction");
	set_tz("UTC");
	ok(recover_parse_time_at("2026-11-26 16:00:00", now, &t) == BS_OK && t.time == T0, "TZ=UTC");
	set_tz("America/New_York");

	/* Precision. */
	ok(recover_parse_time_at("2026-11-26 11:00:00", now, &t) == BS_OK && t.second_precision, "whole seconds flagged");
	ok(recover_parse_time_at("2026-11-26 11:00:00.000000", now, &t) == BS_OK && !t.second_precision,
	   "a fraction (even .000000) is not whole seconds");
	ok(recover_parse_time_at("2026-11-26 16:00:00Z", now, &t) == BS_OK && t.second_precision, "zoned whole seconds flagged");

	/* Relative times. */
	ok(recover_parse_time_at("now", now, &t) == BS_OK && t.time == now && t.relative && !t.second_precision, "now");
	ok(recover_parse_time_at("20 min ago", now, &t) == BS_OK && t.time == now - INT64_C(1200000000), "20 min ago");
	ok(recover_parse_time_at("20min ago", now, &t) == BS_OK && t.time == now - INT64_C(1200000000), "20min ago");
	ok(recover_parse_time_at("2 hours ago", now, &t) == BS_OK && t.time == now - INT64_C(7200000000), "2 hours ago");
	ok(recover_parse_time_at("1 hour ago", now, &t) == BS_OK && t.time == now - INT64_C(3600000000), "1 hour ago");
	ok(recover_parse_time_at("90 seconds ago", now, &t) == BS_OK && t.time == now - INT64_C(90000000), "90 seconds ago");
	ok(recover_parse_time_at("3 days ago", now, &t) == BS_OK && t.time == now - INT64_C(259200000000), "3 days ago");
	ok(recover_parse_time_at("1 week ago", now, &t) == BS_OK && t.time == now - INT64_C(604800000000), "1 week ago");
	ok(strstr(t.zone, "America/New_York") != NULL, "relative times name the zone too: %s", t.zone);

	for (int i = 0; bad[i]; i++)
		ok(recover_parse_time_at(bad[i], now, &t) == BS_ERR, "refused: \"%s\"", bad[i]);

	/* The plain form gives the same points. */
	{
		int64_t v = 0;

		ok(recover_parse_time("2026-11-26 11:00:00", &v) == BS_OK && v == T0, "recover_parse_time: the same, in TZ");
		ok(recover_parse_time("soon", &v) == BS_ERR, "recover_parse_time: refuses the same");
	}

	/* Output in the user's zone reads back as the same time. */
	recover_format_local_time(T0 + 42, buf);
	is_str(buf, "2026-11-26 11:00:00.000042-05:00", "formatted in the user's zone with its offset");
	ok(recover_parse_time_at(buf, now, &t) == BS_OK && t.time == T0 + 42, "and parsed back exactly");

	/* Before 1970 (negative microseconds), in a zone whose old offset has seconds
	 * (Monrovia: -00:44:30 until 1972): read back exactly too. */
	set_tz("Africa/Monrovia");
	recover_format_local_time(INT64_C(-1) * 86400 * 1000000 * 365 - 250000, buf);
	is_str(buf, "1968-12-31 23:15:29.750000-00:44:30", "before 1970, an offset with seconds");
	ok(recover_parse_time_at(buf, now, &t) == BS_ERR || t.time == INT64_C(-1) * 86400 * 1000000 * 365 - 250000,
	   "and never read back as another time (%lld)", (long long) t.time);
	recover_describe_zone(T0, buf, sizeof(buf));
	is_str(buf, "Africa/Monrovia (GMT, UTC+00:00)", "the zone described by its TZ name, abbreviation and offset");
	set_tz(":UTC");
	recover_describe_zone(T0, buf, sizeof(buf));
	is_str(buf, "UTC (UTC, UTC+00:00)", "a TZ with a leading colon: named without it");
	return done_testing();
}
