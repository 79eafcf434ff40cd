/* pgoutput.c — pure decoder of pgoutput logical replication messages (protocol versions 1 and 2). */
#include "pgoutput.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * A read position in one message.  Every getter checks the remaining length first,
 * so nothing ever reads past len, and reports the field and offset on failure.
 */
typedef struct cursor
{
	const uint8_t *buf;
	size_t len;
	size_t pos;
	const char *what;		/* "Insert message", "tuple", ... for error messages */
	bs_error *err;
} cursor;

static int
need(cursor *c, size_t n, const char *field)
{
	if (c->len - c->pos < n)
		return error_set(c->err, ERRCODE_PROTOCOL,
						 "%s truncated at offset %zu: %s needs %zu bytes, %zu remain",
						 c->what, c->pos, field, n, c->len - c->pos);
	return BS_OK;
}

static int
get_u8(cursor *c, const char *field, uint8_t *v)
{
	if (need(c, 1, field) != BS_OK)
		return BS_ERR;
	*v = c->buf[c->pos++];
	return BS_OK;
}

static int
get_u16(cursor *c, const char *field, uint16_t *v)
{
	const uint8_t *p;

	if (need(c, 2, field) != BS_OK)
		return BS_ERR;
	p = c->buf + c->pos;
	*v = (uint16_t) ((p[0] << 8) | p[1]);
	c->pos += 2;
	return BS_OK;
}

static int
get_u32(cursor *c, const char *field, uint32_t *v)
{
	const uint8_t *p;

	if (need(c, 4, field) != BS_OK)
		return BS_ERR;
	p = c->buf + c->pos;
	*v = ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
	c->pos += 4;
	return BS_OK;
}

static int
get_u64(cursor *c, const char *field, uint64_t *v)
{
	uint32_t hi;
	uint32_t lo;

	if (need(c, 8, field) != BS_OK)
		return BS_ERR;
	get_u32(c, field, &hi);
	get_u32(c, field, &lo);
	*v = ((uint64_t) hi << 32) | lo;
	return BS_OK;
}

static int
get_i64(cursor *c, const char *field, int64_t *v)
{
	uint64_t u;

	if (get_u64(c, field, &u) != BS_OK)
		return BS_ERR;
	*v = (int64_t) u;
	return BS_OK;
}

/* A NUL-terminated string; the terminator must lie within the message. */
static int
get_string(cursor *c, const char *field, const char **s)
{
	const uint8_t *start = c->buf + c->pos;
	const uint8_t *nul = memchr(start, '\0', c->len - c->pos);

	if (nul == NULL)
		return error_set(c->err, ERRCODE_PROTOCOL,
						 "%s: %s at offset %zu is not NUL-terminated within the message",
						 c->what, field, c->pos);
	*s = (const char *) start;
	c->pos += (size_t) (nul - start) + 1;
	return BS_OK;
}

static int
get_bytes(cursor *c, const char *field, size_t n, const uint8_t **p)
{
	if (need(c, n, field) != BS_OK)
		return BS_ERR;
	*p = c->buf + c->pos;
	c->pos += n;
	return BS_OK;
}

static int
bad_value(cursor *c, size_t offset, const char *field, unsigned value)
{
	return error_set(c->err, ERRCODE_PROTOCOL, "%s: invalid %s 0x%02x at offset %zu",
					 c->what, field, value, offset);
}

/*
 * TupleData: Int16 column count, then per column a kind byte and, for 't' and 'b',
 * Int32 length and the bytes.  With out == NULL only validate (no allocation).
 */
static int
parse_tuple(cursor *c, pgo_tuple *out, bool allow_binary)
{
	size_t start = c->pos;
	uint16_t raw_ncols;
	int16_t ncols;
	pgo_value *values = NULL;
	char field[64];

	if (get_u16(c, "tuple column count", &raw_ncols) != BS_OK)
		return BS_ERR;
	ncols = (int16_t) raw_ncols;
	if (ncols < 0)
		return error_set(c->err, ERRCODE_PROTOCOL, "%s: negative tuple column count %d at offset %zu",
						 c->what, ncols, start);
	/* Each column takes at least its kind byte: refuse absurd counts before allocating. */
	if ((size_t) ncols > c->len - c->pos)
		return error_set(c->err, ERRCODE_PROTOCOL,
						 "%s truncated: tuple at offset %zu claims %d columns but only %zu bytes remain",
						 c->what, start, ncols, c->len - c->pos);
	if (out != NULL && ncols > 0)
		values = xcalloc((size_t) ncols, sizeof(pgo_value));

	for (int i = 0; i < ncols; i++)
	{
		size_t kpos = c->pos;
		uint8_t kind;
		uint32_t vlen;
		const uint8_t *data;

		/* Field names are formatted only on failure: this loop is the decoder's hot path. */
		if (c->pos >= c->len)
		{
			snprintf(field, sizeof(field), "kind of column %d", i + 1);
			need(c, 1, field);
			goto fail;
		}
		kind = c->buf[c->pos++];
		switch (kind)
		{
			case 'n':
			case 'u':
				vlen = 0;
				data = NULL;
				break;
			case 'b':
				if (!allow_binary)
				{
					bad_value(c, kpos, "binary column kind (only text is allowed here)", kind);
					goto fail;
				}
				/* FALLTHROUGH */
			case 't':
				if (c->len - c->pos < 4)
				{
					snprintf(field, sizeof(field), "length of column %d", i + 1);
					need(c, 4, field);
					goto fail;
				}
				get_u32(c, "", &vlen);
				if (vlen > INT32_MAX)
				{
					error_set(c->err, ERRCODE_PROTOCOL, "%s: negative length of column %d at offset %zu",
							  c->what, i + 1, kpos + 1);
					goto fail;
				}
				if (c->len - c->pos < vlen)
				{
					snprintf(field, sizeof(field), "value of column %d", i + 1);
					need(c, vlen, field);
					goto fail;
				}
				data = c->buf + c->pos;
				c->pos += vlen;
				break;
			default:
				snprintf(field, sizeof(field), "kind of column %d", i + 1);
				bad_value(c, kpos, field, kind);
				goto fail;
		}
		if (values != NULL)
		{
			values[i].kind = (char) kind;
			values[i].len = vlen;
			values[i].data = (const char *) data;
		}
	}
	if (out != NULL)
	{
		out->ncols = ncols;
		out->values = values;
		out->raw = c->buf + start;
		out->raw_len = c->pos - start;
	}
	return BS_OK;

fail:
	free(values);
	return BS_ERR;
}

static int
finish(cursor *c)
{
	if (c->pos != c->len)
		return error_set(c->err, ERRCODE_PROTOCOL, "%s: %zu unexpected trailing bytes at offset %zu",
						 c->what, c->len - c->pos, c->pos);
	return BS_OK;
}

int
pgo_tuple_parse(const uint8_t *buf, size_t len, pgo_tuple *out, size_t *consumed, bs_error *err)
{
	cursor c = {buf, len, 0, "tuple", err};

	memset(out, 0, sizeof(*out));
	if (parse_tuple(&c, out, true) != BS_OK)
		return BS_ERR;
	if (consumed != NULL)
		*consumed = c.pos;
	else if (finish(&c) != BS_OK)
	{
		pgo_tuple_free(out);
		return BS_ERR;
	}
	return BS_OK;
}

int
pgo_tuple_validate(const uint8_t *buf, size_t len, bool allow_binary, bs_error *err)
{
	cursor c = {buf, len, 0, "tuple", err};

	if (parse_tuple(&c, NULL, allow_binary) != BS_OK)
		return BS_ERR;
	return finish(&c);
}

void
pgo_tuple_free(pgo_tuple *t)
{
	if (t == NULL)
		return;
	free(t->values);
	memset(t, 0, sizeof(*t));
}

void
pgo_relation_free(pgo_relation *rel)
{
	if (rel == NULL)
		return;
	for (int i = 0; i < rel->ncols && rel->columns != NULL; i++)
		free(rel->columns[i].name);
	free(rel->columns);
	free(rel->nspname);
	free(rel->relname);
	memset(rel, 0, sizeof(*rel));
}

void
pgo_relation_copy(pgo_relation *dst, const pgo_relation *src)
{
	dst->relid = src->relid;
	dst->nspname = xstrdup(src->nspname ? src->nspname : "");
	dst->relname = xstrdup(src->relname ? src->relname : "");
	dst->replident = src->replident;
	dst->ncols = src->ncols;
	dst->columns = NULL;
	if (src->ncols > 0)
	{
		dst->columns = xcalloc((size_t) src->ncols, sizeof(pgo_column));
		for (int i = 0; i < src->ncols; i++)
		{
			dst->columns[i] = src->columns[i];
			dst->columns[i].name = xstrdup(src->columns[i].name ? src->columns[i].name : "");
		}
	}
}

/* Message names, and the phrase error messages use ("pgoutput Insert message"): constant
 * strings, so that decoding formats nothing unless it fails. */
static const struct
{
	char type;
	const char *name;
	const char *what;
} message_names[] = {
	{'B', "Begin", "pgoutput Begin message"},
	{'C', "Commit", "pgoutput Commit message"},
	{'O', "Origin", "pgoutput Origin message"},
	{'R', "Relation", "pgoutput Relation message"},
	{'Y', "Type", "pgoutput Type message"},
	{'I', "Insert", "pgoutput Insert message"},
	{'U', "Update", "pgoutput Update message"},
	{'D', "Delete", "pgoutput Delete message"},
	{'T', "Truncate", "pgoutput Truncate message"},
	{'M', "Message", "pgoutput Message message"},
	{'S', "Stream Start", "pgoutput Stream Start message"},
	{'E', "Stream Stop", "pgoutput Stream Stop message"},
	{'c', "Stream Commit", "pgoutput Stream Commit message"},
	{'A', "Stream Abort", "pgoutput Stream Abort message"},
};

static int
message_index(char type)
{
	for (size_t i = 0; i < sizeof(message_names) / sizeof(message_names[0]); i++)
		if (message_names[i].type == type)
			return (int) i;
	return -1;
}

const char *
pgo_message_name(char type)
{
	int i = message_index(type);

	return i < 0 ? "unknown" : message_names[i].name;
}

static const char *
message_what(char type)
{
	int i = message_index(type);

	return i < 0 ? "pgoutput unknown message" : message_names[i].what;
}

void
pgo_message_free(pgo_message *m)
{
	if (m == NULL)
		return;
	switch (m->type)
	{
		case 'R':
			pgo_relation_free(&m->u.relation);
			break;
		case 'I':
			pgo_tuple_free(&m->u.insert.newtup);
			break;
		case 'U':
			pgo_tuple_free(&m->u.update.oldtup);
			pgo_tuple_free(&m->u.update.newtup);
			break;
		case 'D':
			pgo_tuple_free(&m->u.delete.oldtup);
			break;
		case 'T':
			free(m->u.truncate.relids);
			break;
		default:
			break;
	}
	memset(m, 0, sizeof(*m));
}

/* Tuple inside a message: offsets in errors stay relative to the message start. */
static int
message_tuple(cursor *c, pgo_tuple *out)
{
	return parse_tuple(c, out, true);
}

static int
decode_begin(cursor *c, pgo_begin *b)
{
	if (get_u64(c, "final LSN", &b->final_lsn) != BS_OK ||
		get_i64(c, "commit timestamp", &b->commit_time) != BS_OK ||
		get_u32(c, "xid", &b->xid) != BS_OK)
		return BS_ERR;
	return BS_OK;
}

/* Commit and Stream Commit share the trailing layout; flags are unused and must be 0. */
static int
decode_commit_fields(cursor *c, uint8_t *flags, uint64_t *commit_lsn, uint64_t *end_lsn,
					 int64_t *commit_time)
{
	size_t fpos = c->pos;

	if (get_u8(c, "flags", flags) != BS_OK)
		return BS_ERR;
	if (*flags != 0)
		return bad_value(c, fpos, "flags", *flags);
	if (get_u64(c, "commit LSN", commit_lsn) != BS_OK ||
		get_u64(c, "end LSN", end_lsn) != BS_OK ||
		get_i64(c, "commit timestamp", commit_time) != BS_OK)
		return BS_ERR;
	return BS_OK;
}

static int
decode_relation(cursor *c, pgo_relation *r)
{
	const char *s;
	uint8_t ri;
	uint16_t raw_ncols;
	int16_t ncols;
	size_t pos;
	char field[64];

	if (get_u32(c, "relation OID", &r->relid) != BS_OK)
		return BS_ERR;
	if (get_string(c, "namespace", &s) != BS_OK)
		return BS_ERR;
	r->nspname = xstrdup(s);
	if (get_string(c, "relation name", &s) != BS_OK)
		return BS_ERR;
	r->relname = xstrdup(s);
	pos = c->pos;
	if (get_u8(c, "replica identity", &ri) != BS_OK)
		return BS_ERR;
	if (ri != 'd' && ri != 'n' && ri != 'f' && ri != 'i')
		return bad_value(c, pos, "replica identity", ri);
	r->replident = (char) ri;
	pos = c->pos;
	if (get_u16(c, "column count", &raw_ncols) != BS_OK)
		return BS_ERR;
	ncols = (int16_t) raw_ncols;
	if (ncols < 0)
		return error_set(c->err, ERRCODE_PROTOCOL, "%s: negative column count %d at offset %zu",
						 c->what, ncols, pos);
	/* flags + name terminator + type OID + typmod: at least 10 bytes per column. */
	if ((size_t) ncols > (c->len - c->pos) / 10)
		return error_set(c->err, ERRCODE_PROTOCOL,
						 "%s truncated: %d columns announced at offset %zu but only %zu bytes remain",
						 c->what, ncols, pos, c->len - c->pos);
	if (ncols > 0)
		r->columns = xcalloc((size_t) ncols, sizeof(pgo_column));
	r->ncols = ncols;
	for (int i = 0; i < ncols; i++)
	{
		pgo_column *col = &r->columns[i];
		uint32_t typmod;

		pos = c->pos;
		snprintf(field, sizeof(field), "flags of column %d", i + 1);
		if (get_u8(c, field, &col->flags) != BS_OK)
			return BS_ERR;
		if ((col->flags & ~PGO_COLUMN_KEY) != 0)
			return bad_value(c, pos, field, col->flags);
		snprintf(field, sizeof(field), "name of column %d", i + 1);
		if (get_string(c, field, &s) != BS_OK)
			return BS_ERR;
		col->name = xstrdup(s);
		snprintf(field, sizeof(field), "type OID of column %d", i + 1);
		if (get_u32(c, field, &col->type_oid) != BS_OK)
			return BS_ERR;
		snprintf(field, sizeof(field), "typmod of column %d", i + 1);
		if (get_u32(c, field, &typmod) != BS_OK)
			return BS_ERR;
		col->typmod = (int32_t) typmod;
	}
	return BS_OK;
}

/* Byte1 'K'/'O'/'N' tuple marker; allowed is the set of acceptable markers. */
static int
tuple_marker(cursor *c, const char *allowed, char *marker)
{
	size_t pos = c->pos;
	uint8_t m;

	if (get_u8(c, "tuple marker", &m) != BS_OK)
		return BS_ERR;
	if (m == 0 || strchr(allowed, m) == NULL)
		return bad_value(c, pos, "tuple marker", m);
	*marker = (char) m;
	return BS_OK;
}

static int
decode_update(cursor *c, pgo_update *u)
{
	char marker;

	if (get_u32(c, "relation OID", &u->relid) != BS_OK ||
		tuple_marker(c, "KON", &marker) != BS_OK)
		return BS_ERR;
	if (marker != 'N')
	{
		u->old_kind = marker;
		if (message_tuple(c, &u->oldtup) != BS_OK ||
			tuple_marker(c, "N", &marker) != BS_OK)
			return BS_ERR;
	}
	return message_tuple(c, &u->newtup);
}

static int
decode_truncate(cursor *c, pgo_truncate *t)
{
	size_t pos;

	if (get_u32(c, "relation count", &t->nrels) != BS_OK)
		return BS_ERR;
	pos = c->pos;
	if (get_u8(c, "options", &t->options) != BS_OK)
		return BS_ERR;
	if ((t->options & ~(PGO_TRUNCATE_CASCADE | PGO_TRUNCATE_RESTART_IDENTITY)) != 0)
		return bad_value(c, pos, "options", t->options);
	/* Check the announced count against the bytes present before allocating. */
	if (t->nrels > (c->len - c->pos) / 4)
		return error_set(c->err, ERRCODE_PROTOCOL,
						 "%s truncated: %u relations announced but only %zu bytes remain at offset %zu",
						 c->what, t->nrels, c->len - c->pos, c->pos);
	if (t->nrels > 0)
		t->relids = xcalloc(t->nrels, sizeof(uint32_t));
	for (uint32_t i = 0; i < t->nrels; i++)
		get_u32(c, "relation OID", &t->relids[i]);
	return BS_OK;
}

static int
decode_logical_message(cursor *c, pgo_logical_message *m)
{
	size_t pos = c->pos;

	if (get_u8(c, "flags", &m->flags) != BS_OK)
		return BS_ERR;
	if ((m->flags & ~PGO_MESSAGE_TRANSACTIONAL) != 0)
		return bad_value(c, pos, "flags", m->flags);
	if (get_u64(c, "LSN", &m->lsn) != BS_OK ||
		get_string(c, "prefix", &m->prefix) != BS_OK)
		return BS_ERR;
	pos = c->pos;
	if (get_u32(c, "content length", &m->content_len) != BS_OK)
		return BS_ERR;
	if (m->content_len > INT32_MAX)
		return error_set(c->err, ERRCODE_PROTOCOL, "%s: negative content length at offset %zu",
						 c->what, pos);
	return get_bytes(c, "content", m->content_len, &m->content);
}

static int
decode_body(cursor *c, char type, int proto_version, bool in_stream, pgo_message *out)
{
	uint8_t b;
	size_t pos;

	/* Stream control messages exist from protocol 2 on. */
	if (proto_version < 2 && strchr("SEcA", type) != NULL)
		return error_set(c->err, ERRCODE_PROTOCOL,
						 "%s message (type '%c') is not valid in protocol version %d",
						 pgo_message_name(type), type, proto_version);
	/* These frame streamed chunks or whole transactions: never inside a stream block. */
	if (in_stream && strchr("BCScA", type) != NULL)
		return error_set(c->err, ERRCODE_PROTOCOL,
						 "%s message (type '%c') received between Stream Start and Stream Stop",
						 pgo_message_name(type), type);
	if (!in_stream && type == 'E')
		return error_set(c->err, ERRCODE_PROTOCOL, "Stream Stop message received outside a stream");

	/* The streamed transaction's xid precedes the fields of data-carrying messages. */
	if (in_stream && strchr("RYIUDTM", type) != NULL)
	{
		if (get_u32(c, "streamed transaction xid", &out->stream_xid) != BS_OK)
			return BS_ERR;
		out->has_stream_xid = true;
	}

	switch (type)
	{
		case 'B':
			return decode_begin(c, &out->u.begin);
		case 'C':
			return decode_commit_fields(c, &out->u.commit.flags, &out->u.commit.commit_lsn,
										&out->u.commit.end_lsn, &out->u.commit.commit_time);
		case 'O':
			if (get_u64(c, "origin LSN", &out->u.origin.origin_lsn) != BS_OK)
				return BS_ERR;
			return get_string(c, "origin name", &out->u.origin.name);
		case 'R':
			return decode_relation(c, &out->u.relation);
		case 'Y':
			if (get_u32(c, "type OID", &out->u.type.oid) != BS_OK ||
				get_string(c, "namespace", &out->u.type.nspname) != BS_OK)
				return BS_ERR;
			return get_string(c, "type name", &out->u.type.typname);
		case 'I':
		{
			char marker;

			if (get_u32(c, "relation OID", &out->u.insert.relid) != BS_OK ||
				tuple_marker(c, "N", &marker) != BS_OK)
				return BS_ERR;
			return message_tuple(c, &out->u.insert.newtup);
		}
		case 'U':
			return decode_update(c, &out->u.update);
		case 'D':
			if (get_u32(c, "relation OID", &out->u.delete.relid) != BS_OK ||
				tuple_marker(c, "KO", &out->u.delete.old_kind) != BS_OK)
				return BS_ERR;
			return message_tuple(c, &out->u.delete.oldtup);
		case 'T':
			return decode_truncate(c, &out->u.truncate);
		case 'M':
			return decode_logical_message(c, &out->u.message);
		case 'S':
			if (get_u32(c, "xid", &out->u.stream_start.xid) != BS_OK)
				return BS_ERR;
			pos = c->pos;
			if (get_u8(c, "first segment flag", &b) != BS_OK)
				return BS_ERR;
			if (b > 1)
				return bad_value(c, pos, "first segment flag", b);
			out->u.stream_start.first_segment = b == 1;
			return BS_OK;
		case 'E':
			return BS_OK;
		case 'c':
			if (get_u32(c, "xid", &out->u.stream_commit.xid) != BS_OK)
				return BS_ERR;
			return decode_commit_fields(c, &out->u.stream_commit.flags,
										&out->u.stream_commit.commit_lsn,
										&out->u.stream_commit.end_lsn,
										&out->u.stream_commit.commit_time);
		case 'A':
			if (get_u32(c, "xid", &out->u.stream_abort.xid) != BS_OK)
				return BS_ERR;
			return get_u32(c, "subtransaction xid", &out->u.stream_abort.subxid);
		default:
			return error_set(c->err, ERRCODE_PROTOCOL,
							 "unknown pgoutput message type 0x%02x at offset 0", (unsigned char) type);
	}
}

int
pgo_decode(const uint8_t *buf, size_t len, int proto_version, bool in_stream,
		   pgo_message *out, bs_error *err)
{
	cursor c = {buf, len, 0, NULL, err};
	char type;

	memset(out, 0, sizeof(*out));
	if (proto_version < PGO_MIN_PROTO_VERSION || proto_version > PGO_MAX_PROTO_VERSION)
		return error_set(err, ERRCODE_INVALID_PARAMETER,
						 "unsupported pgoutput protocol version %d (supported: %d to %d)",
						 proto_version, PGO_MIN_PROTO_VERSION, PGO_MAX_PROTO_VERSION);
	if (in_stream && proto_version < 2)
		return error_set(err, ERRCODE_INVALID_PARAMETER,
						 "streamed transactions need pgoutput protocol version 2 or later");
	if (len == 0)
		return error_set(err, ERRCODE_PROTOCOL, "empty pgoutput message");

	type = (char) buf[0];
	c.what = message_what(type);
	c.pos = 1;
	out->type = type;
	if (decode_body(&c, type, proto_version, in_stream, out) != BS_OK || finish(&c) != BS_OK)
	{
		pgo_message_free(out);
		return BS_ERR;
	}
	return BS_OK;
}
