/* replmsg.c — streaming replication CopyBoth framing (XLogData, keepalive, status update) and time helpers. */
#include "replmsg.h"
#include "clock.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define XLOGDATA_HDR_LEN 25		/* 'w' + 3 * Int64 */
#define KEEPALIVE_LEN 18		/* 'k' + 2 * Int64 + Byte1 */

static uint64_t
get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

static void
put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--)
	{
		p[i] = (uint8_t) v;
		v >>= 8;
	}
}

int
replmsg_parse_xlogdata(const uint8_t *buf, size_t len, replmsg_xlogdata *out, bs_error *err)
{
	if (len < 1 || buf[0] != 'w')
		return error_set(err, ERRCODE_PROTOCOL, "replication message is not XLogData ('w')");
	if (len < XLOGDATA_HDR_LEN)
		return error_set(err, ERRCODE_PROTOCOL,
						 "XLogData message truncated: %zu bytes, header needs %d", len, XLOGDATA_HDR_LEN);
	out->data_start = get_be64(buf + 1);
	out->wal_end = get_be64(buf + 9);
	out->send_time = (int64_t) get_be64(buf + 17);
	out->data = buf + XLOGDATA_HDR_LEN;
	out->len = len - XLOGDATA_HDR_LEN;
	return BS_OK;
}

int
replmsg_parse_keepalive(const uint8_t *buf, size_t len, replmsg_keepalive *out, bs_error *err)
{
	if (len < 1 || buf[0] != 'k')
		return error_set(err, ERRCODE_PROTOCOL, "replication message is not a keepalive ('k')");
	if (len != KEEPALIVE_LEN)
		return error_set(err, ERRCODE_PROTOCOL,
						 "keepalive message has %zu bytes, expected %d", len, KEEPALIVE_LEN);
	if (buf[17] > 1)
		return error_set(err, ERRCODE_PROTOCOL,
						 "keepalive replyRequested byte at offset 17 is %u, expected 0 or 1", buf[17]);
	out->wal_end = get_be64(buf + 1);
	out->send_time = (int64_t) get_be64(buf + 9);
	out->reply_requested = buf[17] == 1;
	return BS_OK;
}

int
replmsg_parse(const uint8_t *buf, size_t len, replmsg *out, bs_error *err)
{
	if (len == 0)
		return error_set(err, ERRCODE_PROTOCOL, "empty replication message");
	out->type = (char) buf[0];
	switch (buf[0])
	{
		case 'w':
			return replmsg_parse_xlogdata(buf, len, &out->u.xlogdata, err);
		case 'k':
			return replmsg_parse_keepalive(buf, len, &out->u.keepalive, err);
		default:
			return error_set(err, ERRCODE_PROTOCOL,
							 "unexpected replication message type 0x%02x", buf[0]);
	}
}

size_t
replmsg_build_status(uint8_t *out, uint64_t write_lsn, uint64_t flush_lsn, uint64_t apply_lsn,
					 int64_t client_time, bool reply_requested)
{
	out[0] = 'r';
	put_be64(out + 1, write_lsn);
	put_be64(out + 9, flush_lsn);
	put_be64(out + 17, apply_lsn);
	put_be64(out + 25, (uint64_t) client_time);
	out[33] = reply_requested ? 1 : 0;
	return REPLMSG_STATUS_LEN;
}

#define EPOCH_OFFSET_US (REPLMSG_PG_EPOCH_OFFSET_SECS * INT64_C(1000000))

int64_t
replmsg_pgtime_to_unix(int64_t pg_us)
{
	if (pg_us == INT64_MIN || pg_us == INT64_MAX)
		return pg_us;
	if (pg_us > INT64_MAX - EPOCH_OFFSET_US)
		return INT64_MAX;
	return pg_us + EPOCH_OFFSET_US;
}

int64_t
replmsg_unix_to_pgtime(int64_t unix_us)
{
	if (unix_us == INT64_MIN || unix_us == INT64_MAX)
		return unix_us;
	if (unix_us < INT64_MIN + EPOCH_OFFSET_US)
		return INT64_MIN;
	return unix_us - EPOCH_OFFSET_US;
}

int64_t
replmsg_now_pgtime(void)
{
	return replmsg_unix_to_pgtime(clock_unix_us());
}

char *
replmsg_format_time(int64_t pg_us, char *buf)
{
	int64_t secs;
	int64_t usecs;
	time_t t;
	struct tm tm;

	if (pg_us == INT64_MAX)
	{
		snprintf(buf, REPLMSG_TIME_BUFLEN, "infinity");
		return buf;
	}
	if (pg_us == INT64_MIN)
	{
		snprintf(buf, REPLMSG_TIME_BUFLEN, "-infinity");
		return buf;
	}
	/* Floor division, so that instants before 2000 get a non-negative fraction. */
	secs = pg_us / 1000000;
	usecs = pg_us % 1000000;
	if (usecs < 0)
	{
		usecs += 1000000;
		secs--;
	}
	t = (time_t) (secs + REPLMSG_PG_EPOCH_OFFSET_SECS);
	if (gmtime_r(&t, &tm) == NULL)
	{
		snprintf(buf, REPLMSG_TIME_BUFLEN, "invalid(%" PRId64 ")", pg_us);
		return buf;
	}
	snprintf(buf, REPLMSG_TIME_BUFLEN, "%04lld-%02d-%02dT%02d:%02d:%02d.%06dZ",
			 (long long) tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			 tm.tm_hour, tm.tm_min, tm.tm_sec, (int) usecs);
	return buf;
}
