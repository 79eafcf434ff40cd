/* test_replmsg.c — unit tests of CopyBoth framing, LSN and timestamp helpers. */
#include "lsn.h"
#include "replmsg.h"
#include "strbuf.h"
#include "tap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void
test_lsn(void)
{
	char buf[LSN_BUFLEN];
	uint64_t v = 7;

	ok(lsn_parse("16/B374D848", &v) == BS_OK && v == UINT64_C(0x16B374D848), "16/B374D848 parses");
	ok(lsn_parse("0/0", &v) == BS_OK && v == 0, "0/0 parses");
	ok(lsn_parse("FFFFFFFF/ffffffff", &v) == BS_OK && v == UINT64_MAX, "largest LSN parses, either case");
	v = 7;
	ok(lsn_parse("1/", &v) == BS_ERR && v == 7, "missing low part refused, output untouched");
	ok(lsn_parse("/1", &v) == BS_ERR, "missing high part refused");
	ok(lsn_parse("123456789/0", &v) == BS_ERR, "nine hex digits refused");
	ok(lsn_parse("0/123456789", &v) == BS_ERR, "nine low hex digits refused");
	ok(lsn_parse("0/1 ", &v) == BS_ERR && lsn_parse(" 0/1", &v) == BS_ERR, "blanks refused");
	ok(lsn_parse("-1/0", &v) == BS_ERR && lsn_parse("0x1/0", &v) == BS_ERR, "sign and 0x refused");
	ok(lsn_parse("1/2/3", &v) == BS_ERR && lsn_parse("", &v) == BS_ERR && lsn_parse(NULL, &v) == BS_ERR,
	   "garbage refused");
	is_str(lsn_format(UINT64_C(0x16B374D848), buf), "16/B374D848", "format");
	is_str(lsn_format(0, buf), "0/0", "format zero");
	is_str(lsn_format(UINT64_MAX, buf), "FFFFFFFF/FFFFFFFF", "format max");
	is_str(lsn_format_key(UINT64_C(0x16B374D848), buf), "00000016B374D848", "key form");
	ok(lsn_parse_key("00000016B374D848", &v) == BS_OK && v == UINT64_C(0x16B374D848), "key parses");
	ok(lsn_parse_key("00000016b374d848", &v) == BS_ERR, "lower-case key refused");
	ok(lsn_parse_key("0000016B374D848", &v) == BS_ERR && lsn_parse_key("00000016B374D8480", &v) == BS_ERR,
	   "key of wrong length refused");
	for (uint64_t x = 1; x != 0; x <<= 7)
	{
		uint64_t back = 0;

		if (lsn_parse(lsn_format(x * 3, buf), &back) != BS_OK || back != x * 3)
		{
			ok(0, "round trip of %s", buf);
			return;
		}
	}
	ok(1, "format/parse round trip");
}

static void
test_framing(void)
{
	strbuf sb = STRBUF_INIT;
	replmsg m;
	replmsg_keepalive k;
	bs_error err;
	uint8_t st[REPLMSG_STATUS_LEN];
	uint8_t *copy;

	strbuf_append_u8(&sb, 'w');
	strbuf_append_be64(&sb, 0x100);
	strbuf_append_be64(&sb, 0x200);
	strbuf_append_be64(&sb, 12345);
	strbuf_append(&sb, "B...", 4);
	copy = xmalloc(sb.len);
	memcpy(copy, sb.data, sb.len);
	ok(replmsg_parse(copy, sb.len, &m, &err) == BS_OK && m.type == 'w' && m.u.xlogdata.data_start == 0x100 &&
	   m.u.xlogdata.wal_end == 0x200 && m.u.xlogdata.send_time == 12345 && m.u.xlogdata.len == 4 &&
	   m.u.xlogdata.data == copy + 25, "XLogData parses, payload points into the buffer");
	for (size_t cut = 0; cut < 25; cut++)
		if (replmsg_parse(copy, cut, &m, &err) != BS_ERR)
		{
			ok(0, "XLogData truncated to %zu refused", cut);
			break;
		}
	ok(replmsg_parse_xlogdata(copy, 24, &m.u.xlogdata, &err) == BS_ERR && strstr(err.message, "truncated") &&
	   strcmp(err.code, ERRCODE_PROTOCOL) == 0, "short XLogData refused: %s", err.message);
	free(copy);

	strbuf_reset(&sb);
	strbuf_append_u8(&sb, 'k');
	strbuf_append_be64(&sb, 0x300);
	strbuf_append_be64(&sb, (uint64_t) INT64_C(-1));
	strbuf_append_u8(&sb, 1);
	ok(replmsg_parse((const uint8_t *) sb.data, sb.len, &m, &err) == BS_OK && m.type == 'k' &&
	   m.u.keepalive.wal_end == 0x300 && m.u.keepalive.send_time == -1 && m.u.keepalive.reply_requested,
	   "keepalive parses");
	sb.data[17] = 0;
	ok(replmsg_parse_keepalive((const uint8_t *) sb.data, sb.len, &k, &err) == BS_OK && !k.reply_requested,
	   "keepalive without reply request");
	sb.data[17] = 2;
	ok(replmsg_parse_keepalive((const uint8_t *) sb.data, sb.len, &k, &err) == BS_ERR, "replyRequested 2 refused");
	sb.data[17] = 0;
	ok(replmsg_parse_keepalive((const uint8_t *) sb.data, sb.len - 1, &k, &err) == BS_ERR,
	   "short keepalive refused");
	strbuf_append_u8(&sb, 0);
	ok(replmsg_parse_keepalive((const uint8_t *) sb.data, sb.len, &k, &err) == BS_ERR,
	   "over-long keepalive refused");
	ok(replmsg_parse((const uint8_t *) "x", 1, &m, &err) == BS_ERR && strstr(err.message, "0x78"),
	   "unknown message type refused");
	ok(replmsg_parse((const uint8_t *) "", 0, &m, &err) == BS_ERR, "empty message refused");

	{
		static const uint8_t expect[REPLMSG_STATUS_LEN] = {
			'r',
			0, 0, 0, 0x16, 0xB3, 0x74, 0xD8, 0x48,
			0, 0, 0, 0, 0, 0, 0x10, 0,
			0, 0, 0, 0, 0, 0, 0, 0,
			0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,
			1
		};

		memset(st, 0xAA, sizeof(st));
		is_int(replmsg_build_status(st, UINT64_C(0x16B374D848), 0x1000, 0, -2, true), REPLMSG_STATUS_LEN,
			   "status update length");
		ok(memcmp(st, expect, sizeof(st)) == 0, "status update bytes");
	}
	strbuf_free(&sb);
}

static void
test_time(void)
{
	char buf[REPLMSG_TIME_BUFLEN];
	int64_t now;

	is_str(replmsg_format_time(0, buf), "2000-01-01T00:00:00.000000Z", "PostgreSQL epoch");
	is_str(replmsg_format_time(-1, buf), "1999-12-31T23:59:59.999999Z", "one microsecond before");
	is_str(replmsg_format_time(INT64_C(849024000) * 1000000 + 123456, buf), "2026-11-26T16:00:00.123456Z",
		   "a known instant");
	is_str(replmsg_format_time(INT64_MAX, buf), "infinity", "infinity");
	is_str(replmsg_format_time(INT64_MIN, buf), "-infinity", "-infinity");
	ok(strlen(replmsg_format_time(INT64_MAX - 1, buf)) < REPLMSG_TIME_BUFLEN, "extreme value fits the buffer");
	is_int(replmsg_pgtime_to_unix(0), INT64_C(946684800000000), "to Unix");
	is_int(replmsg_unix_to_pgtime(INT64_C(946684800000000)), 0, "from Unix");
	is_int(replmsg_pgtime_to_unix(INT64_MAX), INT64_MAX, "infinity kept");
	is_int(replmsg_pgtime_to_unix(INT64_MAX - 1), INT64_MAX, "overflow clamps");
	is_int(replmsg_unix_to_pgtime(INT64_MIN + 1), INT64_MIN, "underflow clamps");
	now = replmsg_now_pgtime();
	ok(now > INT64_C(849024000) * 1000000 - INT64_C(86400) * 365 * 10 * 1000000 &&
	   now < INT64_C(849024000) * 1000000 * 3, "now is plausible");
}

int
main(void)
{
	test_lsn();
	test_framing();
	test_time();
	return done_testing();
}
