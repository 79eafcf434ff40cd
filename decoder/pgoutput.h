/* pgoutput.h — pure decoder of pgoutput logical replication messages (protocol versions 1 and 2). */
#ifndef BACKSTOP_PGOUTPUT_H
#define BACKSTOP_PGOUTPUT_H

#include "error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Decoded messages point into the caller's buffer wherever they can (tuple values,
 * strings other than the relation's, message content): the buffer must outlive
 * the decoded message.  Only the arrays (tuple values, relation columns, truncated
 * relids) and the relation's names are allocated, so that a relation can be kept
 * in a cache with pgo_relation_copy.
 */

#define PGO_MIN_PROTO_VERSION 1
#define PGO_MAX_PROTO_VERSION 2

/* Column flag in the Relation message: the column is part of the replica identity key. */
#define PGO_COLUMN_KEY 1

/* Truncate option bits. */
#define PGO_TRUNCATE_CASCADE 1
#define PGO_TRUNCATE_RESTART_IDENTITY 2

/* Logical decoding message flag. */
#define PGO_MESSAGE_TRANSACTIONAL 1

typedef struct pgo_value
{
	char kind;				/* 'n' null, 'u' unchanged TOASTed, 't' text, 'b' binary */
	uint32_t len;			/* 't'/'b' only */
	const char *data;		/* 't'/'b' only; NOT NUL-terminated */
} pgo_value;

typedef struct pgo_tuple
{
	int ncols;
	pgo_value *values;		/* allocated, ncols entries (NULL when ncols == 0) */
	const uint8_t *raw;		/* the verbatim TupleData bytes, Int16 count included */
	size_t raw_len;
} pgo_tuple;

typedef struct pgo_column
{
	uint8_t flags;			/* PGO_COLUMN_KEY */
	char *name;
	uint32_t type_oid;
	int32_t typmod;
} pgo_column;

typedef struct pgo_relation
{
	uint32_t relid;
	char *nspname;			/* empty for pg_catalog */
	char *relname;
	char replident;			/* 'd' default, 'n' nothing, 'f' full, 'i' index */
	int ncols;
	pgo_column *columns;
} pgo_relation;

typedef struct pgo_begin
{
	uint64_t final_lsn;
	int64_t commit_time;	/* microseconds since 2000-01-01 UTC */
	uint32_t xid;
} pgo_begin;

typedef struct pgo_commit
{
	uint8_t flags;
	uint64_t commit_lsn;
	uint64_t end_lsn;
	int64_t commit_time;
} pgo_commit;

typedef struct pgo_origin
{
	uint64_t origin_lsn;
	const char *name;		/* points into the buffer */
} pgo_origin;

typedef struct pgo_type
{
	uint32_t oid;
	const char *nspname;	/* points into the buffer; empty for pg_catalog */
	const char *typname;	/* points into the buffer */
} pgo_type;

typedef struct pgo_insert
{
	uint32_t relid;
	pgo_tuple newtup;
} pgo_insert;

typedef struct pgo_update
{
	uint32_t relid;
	char old_kind;			/* 'K' old key, 'O' old row, '\0' none */
	pgo_tuple oldtup;		/* valid when old_kind != '\0' */
	pgo_tuple newtup;
} pgo_update;

typedef struct pgo_delete
{
	uint32_t relid;
	char old_kind;			/* 'K' or 'O' */
	pgo_tuple oldtup;
} pgo_delete;

typedef struct pgo_truncate
{
	uint8_t options;		/* PGO_TRUNCATE_* */
	uint32_t nrels;
	uint32_t *relids;		/* allocated */
} pgo_truncate;

typedef struct pgo_logical_message
{
	uint8_t flags;			/* PGO_MESSAGE_TRANSACTIONAL */
	uint64_t lsn;
	const char *prefix;		/* points into the buffer */
	uint32_t content_len;
	const uint8_t *content;	/* points into the buffer */
} pgo_logical_message;

typedef struct pgo_stream_start
{
	uint32_t xid;
	bool first_segment;
} pgo_stream_start;

typedef struct pgo_stream_commit
{
	uint32_t xid;
	uint8_t flags;
	uint64_t commit_lsn;
	uint64_t end_lsn;
	int64_t commit_time;
} pgo_stream_commit;

typedef struct pgo_stream_abort
{
	uint32_t xid;
	uint32_t subxid;		/* equals xid for a top-level abort */
} pgo_stream_abort;

typedef struct pgo_message
{
	char type;				/* the pgoutput message type byte */
	/*
	 * Messages sent between Stream Start and Stream Stop (protocol 2) carry the
	 * streamed transaction's xid before their own fields: Relation, Type, Insert,
	 * Update, Delete, Truncate and Message.
	 */
	bool has_stream_xid;
	uint32_t stream_xid;
	union
	{
		pgo_begin begin;
		pgo_commit commit;
		pgo_origin origin;
		pgo_relation relation;
		pgo_type type;
		pgo_insert insert;
		pgo_update update;
		pgo_delete delete;
		pgo_truncate truncate;
		pgo_logical_message message;
		pgo_stream_start stream_start;
		pgo_stream_commit stream_commit;
		pgo_stream_abort stream_abort;
	} u;
} pgo_message;

/*
 * Decode one pgoutput message occupying exactly buf[0..len).  in_stream tells
 * whether the message arrived between Stream Start and Stream Stop (only valid
 * with proto_version 2).  Malformed input, trailing bytes, a message type not
 * valid for the version or at this point of the stream, and unknown flag bits give
 * BS_ERR with ERRCODE_PROTOCOL naming the field and byte offset; an unsupported
 * proto_version gives ERRCODE_INVALID_PARAMETER.  On success release *out with
 * pgo_message_free; on failure nothing needs releasing.
 */
int pgo_decode(const uint8_t *buf, size_t len, int proto_version, bool in_stream,
			   pgo_message *out, bs_error *err);
void pgo_message_free(pgo_message *m);

/*
 * Parse one TupleData at buf.  When consumed is NULL the tuple must occupy exactly
 * len bytes; otherwise *consumed receives its length and later bytes are ignored.
 * On success release *out with pgo_tuple_free.
 */
int pgo_tuple_parse(const uint8_t *buf, size_t len, pgo_tuple *out, size_t *consumed, bs_error *err);
void pgo_tuple_free(pgo_tuple *t);

/*
 * Check, without allocating, that buf[0..len) is exactly one well-formed TupleData;
 * with allow_binary false a 'b' (binary) column is an error too.
 */
int pgo_tuple_validate(const uint8_t *buf, size_t len, bool allow_binary, bs_error *err);

/* Deep copy (dst owns everything afterwards) and release of a relation. */
void pgo_relation_copy(pgo_relation *dst, const pgo_relation *src);
void pgo_relation_free(pgo_relation *rel);

/* Human-readable name of a message type byte ("Insert", ...), "unknown" otherwise. */
const char *pgo_message_name(char type);

#endif
