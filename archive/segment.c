/* segment.c — encoder and bounds-checked reader of the change-segment raw format (doc/FORMAT.md). */
#include "segment.h"
#include "pgoutput.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static uint32_t
get_be32(const uint8_t *p)
{
	return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
}

static uint64_t
get_be64(const uint8_t *p)
{
	return ((uint64_t) get_be32(p) << 32) | get_be32(p + 4);
}

void
segment_write_header(strbuf *out)
{
	strbuf_append(out, SEGMENT_MAGIC, SEGMENT_MAGIC_LEN);
}

/* A tuple the writer is given must be present and one well-formed text TupleData. */
static int
check_tuple(const uint8_t *t, size_t len, const char *which, char op, bs_error *err)
{
	if (t == NULL || len == 0)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "segment record '%c' needs a %s tuple", op, which);
	if (pgo_tuple_validate(t, len, false, err) != BS_OK)
	{
		error_prefix(err, "segment record '%c': %s tuple", op, which);
		snprintf(err->code, sizeof(err->code), "%s", ERRCODE_INVALID_PARAMETER);
		return BS_ERR;
	}
	return BS_OK;
}

int
segment_write_record(strbuf *out, const segment_record *r, bs_error *err)
{
	size_t body = SEGMENT_FIXED_BODY_LEN;

	switch (r->op)
	{
		case 'I':
			if (!r->tuples_checked && check_tuple(r->new_tuple, r->new_len, "new", r->op, err) != BS_OK)
				return BS_ERR;
			body += r->new_len;
			break;
		case 'U':
			if (r->old_kind == 'K' || r->old_kind == 'O')
			{
				if (!r->tuples_checked && check_tuple(r->old_tuple, r->old_len, "old", r->op, err) != BS_OK)
					return BS_ERR;
				if (r->old_len > UINT32_MAX)
					return error_set(err, ERRCODE_INVALID_PARAMETER,
									 "segment record 'U': old tuple of %zu bytes is too long", r->old_len);
			}
			else if (r->old_kind != SEGMENT_OLD_NONE || r->old_len != 0)
				return error_set(err, ERRCODE_INVALID_PARAMETER,
								 "segment record 'U': invalid old_kind 0x%02x with %zu old bytes",
								 (unsigned char) r->old_kind, r->old_len);
			if (!r->tuples_checked && check_tuple(r->new_tuple, r->new_len, "new", r->op, err) != BS_OK)
				return BS_ERR;
			body += 1 + 4 + r->old_len + r->new_len;
			break;
		case 'D':
			if (r->old_kind != 'K' && r->old_kind != 'O')
				return error_set(err, ERRCODE_INVALID_PARAMETER,
								 "segment record 'D': invalid old_kind 0x%02x", (unsigned char) r->old_kind);
			if (!r->tuples_checked && check_tuple(r->old_tuple, r->old_len, "old", r->op, err) != BS_OK)
				return BS_ERR;
			body += 1 + r->old_len;
			break;
		case 'T':
			if ((r->truncate_options & ~(PGO_TRUNCATE_CASCADE | PGO_TRUNCATE_RESTART_IDENTITY)) != 0)
				return error_set(err, ERRCODE_INVALID_PARAMETER,
								 "segment record 'T': invalid options 0x%02x", r->truncate_options);
			body += 1;
			break;
		default:
			return error_set(err, ERRCODE_INVALID_PARAMETER, "invalid segment record op 0x%02x",
							 (unsigned char) r->op);
	}
	/* pgoutput messages stay below 1 GB, so this only trips on caller bugs. */
	if (body > UINT32_MAX)
		return error_set(err, ERRCODE_INVALID_PARAMETER,
						 "segment record '%c' body of %zu bytes is too long", r->op, body);

	strbuf_reserve(out, SEGMENT_RECORD_HDR_LEN + body);
	strbuf_append_u8(out, (uint8_t) r->op);
	strbuf_append_be32(out, (uint32_t) body);
	strbuf_append_be64(out, r->commit_lsn);
	strbuf_append_be64(out, r->end_lsn);
	strbuf_append_be32(out, r->xid);
	strbuf_append_be64(out, (uint64_t) r->commit_time);
	strbuf_append_be32(out, r->layout_id);
	switch (r->op)
	{
		case 'I':
			strbuf_append(out, r->new_tuple, r->new_len);
			break;
		case 'U':
			strbuf_append_u8(out, (uint8_t) r->old_kind);
			strbuf_append_be32(out, (uint32_t) r->old_len);
			if (r->old_len > 0)
				strbuf_append(out, r->old_tuple, r->old_len);
			strbuf_append(out, r->new_tuple, r->new_len);
			break;
		case 'D':
			strbuf_append_u8(out, (uint8_t) r->old_kind);
			strbuf_append(out, r->old_tuple, r->old_len);
			break;
		case 'T':
			strbuf_append_u8(out, r->truncate_options);
			break;
	}
	return BS_OK;
}

int
segment_reader_init(segment_reader *r, const void *buf, size_t len, bs_error *err)
{
	memset(r, 0, sizeof(*r));
	if (len < SEGMENT_MAGIC_LEN || memcmp(buf, SEGMENT_MAGIC, SEGMENT_MAGIC_LEN) != 0)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "change segment does not start with magic %s",
						 SEGMENT_MAGIC);
	r->buf = buf;
	r->len = len;
	r->pos = SEGMENT_MAGIC_LEN;
	return BS_OK;
}

/* Report corruption of the record starting at offset pos. */
static int __attribute__((format(printf, 4, 5)))
corrupt(const segment_reader *r, size_t pos, bs_error *err, const char *fmt, ...)
{
	char detail[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	return error_set(err, ERRCODE_DATA_CORRUPTED, "change segment record %llu at offset %zu: %s",
					 (unsigned long long) r->nrecords + 1, pos, detail);
}

/* Validate a stored tuple: exactly len bytes of text-only TupleData. */
static int
stored_tuple(const segment_reader *r, size_t pos, const uint8_t *t, size_t len, const char *which,
			 bs_error *err)
{
	bs_error terr;

	if (pgo_tuple_validate(t, len, false, &terr) != BS_OK)
		return corrupt(r, pos, err, "%s tuple at offset %zu: %s", which, (size_t) (t - r->buf), terr.message);
	return BS_OK;
}

int
segment_reader_next(segment_reader *r, segment_record *out, bool *eof, bs_error *err)
{
	size_t pos = r->pos;
	size_t remain = r->len - r->pos;
	const uint8_t *p;
	const uint8_t *end;
	uint32_t body;
	char op;

	memset(out, 0, sizeof(*out));
	out->old_kind = SEGMENT_OLD_NONE;
	*eof = false;
	if (remain == 0)
	{
		*eof = true;
		return BS_OK;
	}
	if (remain < SEGMENT_RECORD_HDR_LEN)
		return corrupt(r, pos, err, "truncated record header (%zu bytes)", remain);
	p = r->buf + pos;
	op = (char) p[0];
	body = get_be32(p + 1);
	if (op != 'I' && op != 'U' && op != 'D' && op != 'T')
		return corrupt(r, pos, err, "invalid op 0x%02x", (unsigned char) op);
	if (body > remain - SEGMENT_RECORD_HDR_LEN)
		return corrupt(r, pos, err, "body length %u overruns the segment (%zu bytes remain)",
					   body, remain - SEGMENT_RECORD_HDR_LEN);
	if (body < SEGMENT_FIXED_BODY_LEN)
		return corrupt(r, pos, err, "body length %u is shorter than the fixed fields", body);

	p += SEGMENT_RECORD_HDR_LEN;
	end = p + body;
	out->op = op;
	out->commit_lsn = get_be64(p);
	out->end_lsn = get_be64(p + 8);
	out->xid = get_be32(p + 16);
	out->commit_time = (int64_t) get_be64(p + 20);
	out->layout_id = get_be32(p + 28);
	p += SEGMENT_FIXED_BODY_LEN;

	switch (op)
	{
		case 'I':
			out->new_tuple = p;
			out->new_len = (size_t) (end - p);
			if (stored_tuple(r, pos, out->new_tuple, out->new_len, "new", err) != BS_OK)
				return BS_ERR;
			break;
		case 'U':
		{
			uint32_t old_len;

			if (end - p < 5)
				return corrupt(r, pos, err, "update body too short for old_kind and old_length");
			out->old_kind = (char) p[0];
			old_len = get_be32(p + 1);
			p += 5;
			if (out->old_kind != 'K' && out->old_kind != 'O' && out->old_kind != SEGMENT_OLD_NONE)
				return corrupt(r, pos, err, "invalid old_kind 0x%02x", (unsigned char) out->old_kind);
			if (out->old_kind == SEGMENT_OLD_NONE && old_len != 0)
				return corrupt(r, pos, err, "old_length %u without an old tuple", old_len);
			if (old_len > (size_t) (end - p))
				return corrupt(r, pos, err, "old_length %u overruns the body", old_len);
			if (old_len > 0)
			{
				out->old_tuple = p;
				out->old_len = old_len;
				if (stored_tuple(r, pos, out->old_tuple, out->old_len, "old", err) != BS_OK)
					return BS_ERR;
			}
			else if (out->old_kind != SEGMENT_OLD_NONE)
				return corrupt(r, pos, err, "old_kind '%c' with an empty old tuple", out->old_kind);
			p += old_len;
			out->new_tuple = p;
			out->new_len = (size_t) (end - p);
			if (stored_tuple(r, pos, out->new_tuple, out->new_len, "new", err) != BS_OK)
				return BS_ERR;
			break;
		}
		case 'D':
			if (end - p < 1)
				return corrupt(r, pos, err, "delete body too short for old_kind");
			out->old_kind = (char) p[0];
			if (out->old_kind != 'K' && out->old_kind != 'O')
				return corrupt(r, pos, err, "invalid old_kind 0x%02x", (unsigned char) out->old_kind);
			p++;
			out->old_tuple = p;
			out->old_len = (size_t) (end - p);
			if (stored_tuple(r, pos, out->old_tuple, out->old_len, "old", err) != BS_OK)
				return BS_ERR;
			break;
		case 'T':
			if (end - p != 1)
				return corrupt(r, pos, err, "truncate body has %u bytes, expected %d",
							   body, SEGMENT_FIXED_BODY_LEN + 1);
			out->truncate_options = p[0];
			if ((out->truncate_options & ~(PGO_TRUNCATE_CASCADE | PGO_TRUNCATE_RESTART_IDENTITY)) != 0)
				return corrupt(r, pos, err, "invalid truncate options 0x%02x", out->truncate_options);
			break;
	}
	r->pos = pos + SEGMENT_RECORD_HDR_LEN + body;
	r->nrecords++;
	return BS_OK;
}

int
segment_summarize(const void *buf, size_t len, segment_summary *out, bs_error *err)
{
	segment_reader r;
	const uint8_t *p;

	memset(out, 0, sizeof(*out));
	if (segment_reader_init(&r, buf, len, err) != BS_OK)
		return BS_ERR;
	while (r.pos < r.len)
	{
		size_t remain = r.len - r.pos;
		uint32_t body;
		char op;
		uint64_t end_lsn;
		int64_t time;

		if (remain < SEGMENT_RECORD_HDR_LEN)
			return corrupt(&r, r.pos, err, "truncated record header (%zu bytes)", remain);
		p = r.buf + r.pos;
		op = (char) p[0];
		body = get_be32(p + 1);
		if (op != 'I' && op != 'U' && op != 'D' && op != 'T')
			return corrupt(&r, r.pos, err, "invalid op 0x%02x", (unsigned char) op);
		if (body > remain - SEGMENT_RECORD_HDR_LEN || body < SEGMENT_FIXED_BODY_LEN)
			return corrupt(&r, r.pos, err, "bad body length %u", body);
		p += SEGMENT_RECORD_HDR_LEN;
		end_lsn = get_be64(p + 8);
		time = (int64_t) get_be64(p + 20);
		if (out->records == 0)
		{
			out->first_commit_lsn = get_be64(p);
			out->first_time = time;
		}
		out->last_end_lsn = end_lsn;
		out->last_time = time;
		out->records++;
		r.nrecords++;
		r.pos += SEGMENT_RECORD_HDR_LEN + body;
	}
	return BS_OK;
}
