/* replmsg.h — streaming replication CopyBoth framing (XLogData, keepalive, status update) and time helpers. */
#ifndef BACKSTOP_REPLMSG_H
#define BACKSTOP_REPLMSG_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 'w' XLogData: the pgoutput message is data[0..len), pointing into the caller's buffer. */
typedef struct replmsg_xlogdata
{
	uint64_t data_start;
	uint64_t wal_end;
	int64_t send_time;		/* microseconds since 2000-01-01 UTC */
	const uint8_t *data;
	size_t len;
} replmsg_xlogdata;

/* 'k' primary keepalive. */
typedef struct replmsg_keepalive
{
	uint64_t wal_end;
	int64_t send_time;
	bool reply_requested;
} replmsg_keepalive;

/* One server-to-client CopyData message. */
typedef struct replmsg
{
	char type;				/* 'w' or 'k' */
	union
	{
		replmsg_xlogdata xlogdata;
		replmsg_keepalive keepalive;
	} u;
} replmsg;

/* Byte size of an 'r' standby status update: 'r' + 4 * Int64 + Byte1. */
#define REPLMSG_STATUS_LEN 34

/*
 * Parse one CopyData payload received during START_REPLICATION (buf[0] is the type
 * byte).  Any type other than 'w' or 'k', a short or over-long message, or a
 * replyRequested byte other than 0/1 gives BS_ERR with ERRCODE_PROTOCOL.
 */
int replmsg_parse(const uint8_t *buf, size_t len, replmsg *out, bs_error *err);
int replmsg_parse_xlogdata(const uint8_t *buf, size_t len, replmsg_xlogdata *out, bs_error *err);
int replmsg_parse_keepalive(const uint8_t *buf, size_t len, replmsg_keepalive *out, bs_error *err);

/* Build an 'r' standby status update into out (REPLMSG_STATUS_LEN bytes); returns its length. */
size_t replmsg_build_status(uint8_t *out, uint64_t write_lsn, uint64_t flush_lsn, uint64_t apply_lsn,
							int64_t client_time, bool reply_requested);

/* Seconds between the Unix epoch and the PostgreSQL epoch (2000-01-01 UTC). */
#define REPLMSG_PG_EPOCH_OFFSET_SECS INT64_C(946684800)

/*
 * Convert between PostgreSQL-epoch and Unix-epoch microseconds.  PostgreSQL's
 * -infinity/infinity (INT64_MIN/INT64_MAX) are kept as they are; results beyond
 * the int64 range (only possible for nonsense inputs near the ends) are clamped.
 */
int64_t replmsg_pgtime_to_unix(int64_t pg_us);
int64_t replmsg_unix_to_pgtime(int64_t unix_us);
/* Current time as PostgreSQL-epoch microseconds (for clientTime). */
int64_t replmsg_now_pgtime(void);

/* Enough for any int64 timestamp in ISO-8601 form. */
#define REPLMSG_TIME_BUFLEN 48

/*
 * Format PostgreSQL-epoch microseconds as ISO-8601 UTC with microseconds,
 * e.g. "2026-11-26T16:00:00.000000Z"; "infinity"/"-infinity" for the special values.
 * buf must hold REPLMSG_TIME_BUFLEN bytes; returns buf.
 */
char *replmsg_format_time(int64_t pg_us, char *buf);

#endif
