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

static int __attribute__((format(printf, 3, 4)))
scan_corrupt(segment_scan *s, bs_error *err, const char *fmt, ...)
{
	char detail[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	s->failed = true;
	return error_set(err, ERRCODE_DATA_CORRUPTED, "change segment record %llu at offset %llu: %s",
					 (unsigned long long) s->sum.records + 1, (unsigned long long) s->record_offset, detail);
}

void
segment_scan_init(segment_scan *s)
{
	memset(s, 0, sizeof(*s));
}

/* The head of a record is complete: check it and count it. */
static int
scan_record(segment_scan *s, bs_error *err)
{
	const uint8_t *p = s->head;
	char op = (char) p[0];
	uint32_t body = get_be32(p + 1);
	int64_t time;

	if (op != 'I' && op != 'U' && op != 'D' && op != 'T')
		return scan_corrupt(s, err, "invalid op 0x%02x", (unsigned char) op);
	if (body < SEGMENT_FIXED_BODY_LEN)
		return scan_corrupt(s, err, "bad body length %u", body);
	p += SEGMENT_RECORD_HDR_LEN;
	time = (int64_t) get_be64(p + 20);
	if (s->sum.records == 0)
	{
		s->sum.first_commit_lsn = get_be64(p);
		s->sum.first_time = time;
	}
	s->sum.last_end_lsn = get_be64(p + 8);
	s->sum.last_time = time;
	s->sum.records++;
	s->skip = body - SEGMENT_FIXED_BODY_LEN;
	return BS_OK;
}

int
segment_scan_feed(segment_scan *s, const void *data, size_t len, bs_error *err)
{
	const uint8_t *p = data;

	if (s->failed)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "change segment: scan already failed");
	while (len > 0)
	{
		size_t n;

		if (s->offset < SEGMENT_MAGIC_LEN)
		{
			n = SEGMENT_MAGIC_LEN - (size_t) s->offset;
			n = n < len ? n : len;
			if (memcmp(p, &SEGMENT_MAGIC[s->offset], n) != 0)
			{
				s->failed = true;
				return error_set(err, ERRCODE_DATA_CORRUPTED, "change segment does not start with magic %s",
								 SEGMENT_MAGIC);
			}
			s->record_offset = s->offset + n;
		}
		else if (s->skip > 0)
		{
			n = s->skip < len ? (size_t) s->skip : len;
			s->skip -= n;
			if (s->skip == 0)
				s->record_offset = s->offset + n;
		}
		else
		{
			n = sizeof(s->head) - s->head_len;
			n = n < len ? n : len;
			memcpy(s->head + s->head_len, p, n);
			s->head_len += n;
			if (s->head_len == sizeof(s->head))
			{
				if (scan_record(s, err) != BS_OK)
					return BS_ERR;
				s->head_len = 0;
				if (s->skip == 0)
					s->record_offset = s->offset + n;
			}
		}
		p += n;
		len -= n;
		s->offset += n;
	}
	return BS_OK;
}

int
segment_scan_finish(segment_scan *s, segment_summary *out, bs_error *err)
{
	memset(out, 0, sizeof(*out));
	if (s->failed)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "change segment: scan already failed");
	if (s->offset < SEGMENT_MAGIC_LEN)
	{
		s->failed = true;
		return error_set(err, ERRCODE_DATA_CORRUPTED, "change segment does not start with magic %s",
						 SEGMENT_MAGIC);
	}
	if (s->head_len > 0 && s->head_len < SEGMENT_RECORD_HDR_LEN)
		return scan_corrupt(s, err, "truncated record header (%zu bytes)", s->head_len);
	if (s->head_len > 0)
	{
		uint32_t body = get_be32(s->head + 1);

		/* The head holds the fixed fields too: a shorter body is reported as such. */
		if ((char) s->head[0] != 'I' && (char) s->head[0] != 'U' && (char) s->head[0] != 'D' &&
			(char) s->head[0] != 'T')
			return scan_corrupt(s, err, "invalid op 0x%02x", s->head[0]);
		if (body < SEGMENT_FIXED_BODY_LEN)
			return scan_corrupt(s, err, "bad body length %u", body);
		return scan_corrupt(s, err, "body length %u overruns the segment (%zu bytes remain)", body,
							s->head_len - SEGMENT_RECORD_HDR_LEN);
	}
	if (s->skip > 0)
		return scan_corrupt(s, err, "body overruns the segment (%llu bytes missing)",
							(unsigned long long) s->skip);
	*out = s->sum;
	return BS_OK;
}

int
segment_summarize(const void *buf, size_t len, segment_summary *out, bs_error *err)
{
	segment_scan s;

	memset(out, 0, sizeof(*out));
	segment_scan_init(&s);
	if (segment_scan_feed(&s, buf, len, err) != BS_OK)
		return BS_ERR;
	return segment_scan_finish(&s, out, err);
}

size_t
segment_patch_end_lsn(void *buf, size_t len, uint64_t end_lsn, size_t *patched_end)
{
	uint8_t *b = buf;
	size_t pos = 0;
	size_t done = 0;

	while (len - pos >= SEGMENT_PATCH_SPAN)
	{
		uint8_t *e = b + pos + SEGMENT_RECORD_HDR_LEN + 8;
		uint64_t next = (uint64_t) pos + SEGMENT_RECORD_HDR_LEN + get_be32(b + pos + 1);

		for (int i = 0; i < 8; i++)
			e[i] = (uint8_t) (end_lsn >> (56 - 8 * i));
		done = pos + SEGMENT_PATCH_SPAN;
		if (next >= len)
		{
			pos = (size_t) next;
			break;
		}
		pos = (size_t) next;
	}
	if (patched_end)
		*patched_end = done;
	return pos;
}
