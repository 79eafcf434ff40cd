/* fuzz_pgoutput.c — libFuzzer target for the pgoutput decoder, tuples, segments and CopyBoth framing. */
#include "lsn.h"
#include "pgoutput.h"
#include "replmsg.h"
#include "segment.h"
#include "strbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint32_t sink;

/* Touch every byte a decoded value claims, so ASan sees any pointer past the input. */
static void
touch_tuple(const pgo_tuple *t)
{
	for (int i = 0; i < t->ncols; i++)
		for (uint32_t j = 0; j < t->values[i].len; j++)
			sink += (uint8_t) t->values[i].data[j];
	for (size_t j = 0; j < t->raw_len; j++)
		sink += t->raw[j];
}

static void
touch_message(const pgo_message *m)
{
	switch (m->type)
	{
		case 'R':
		{
			pgo_relation copy;

			pgo_relation_copy(&copy, &m->u.relation);
			sink += (uint32_t) strlen(copy.nspname) + (uint32_t) strlen(copy.relname);
			for (int i = 0; i < copy.ncols; i++)
				sink += (uint32_t) strlen(copy.columns[i].name);
			pgo_relation_free(&copy);
			break;
		}
		case 'O':
			sink += (uint32_t) strlen(m->u.origin.name);
			break;
		case 'Y':
			sink += (uint32_t) strlen(m->u.type.nspname) + (uint32_t) strlen(m->u.type.typname);
			break;
		case 'I':
			touch_tuple(&m->u.insert.newtup);
			break;
		case 'U':
			touch_tuple(&m->u.update.oldtup);
			touch_tuple(&m->u.update.newtup);
			break;
		case 'D':
			touch_tuple(&m->u.delete.oldtup);
			break;
		case 'T':
			for (uint32_t i = 0; i < m->u.truncate.nrels; i++)
				sink += m->u.truncate.relids[i];
			break;
		case 'M':
			sink += (uint32_t) strlen(m->u.message.prefix);
			for (uint32_t i = 0; i < m->u.message.content_len; i++)
				sink += m->u.message.content[i];
			break;
		default:
			break;
	}
}

/*
 * The first input byte picks the target: 0 pgoutput v1, 1 v2, 2 v2 inside a stream,
 * 3 tuple parsing, 4 segment reading (the magic is prepended), 5 CopyBoth framing
 * and LSN text.  The rest is copied to an exact-size heap block so ASan catches any
 * over-read.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *buf;
	size_t len;
	bs_error err;

	if (size < 1)
		return 0;
	len = size - 1;
	buf = xmalloc(len);
	memcpy(buf, data + 1, len);

	switch (data[0] % 6)
	{
		case 0:
		case 1:
		case 2:
		{
			pgo_message m;
			int proto = data[0] % 6 == 0 ? 1 : 2;
			bool in_stream = data[0] % 6 == 2;

			if (pgo_decode(buf, len, proto, in_stream, &m, &err) == BS_OK)
			{
				touch_message(&m);
				pgo_message_free(&m);
			}
			break;
		}
		case 3:
		{
			pgo_tuple t;
			size_t used = 0;
			int exact = pgo_tuple_parse(buf, len, &t, NULL, &err);

			if (exact == BS_OK)
			{
				touch_tuple(&t);
				pgo_tuple_free(&t);
			}
			if (pgo_tuple_parse(buf, len, &t, &used, &err) == BS_OK)
			{
				if (used > len)
					abort();
				touch_tuple(&t);
				pgo_tuple_free(&t);
				/* Parsing with and without 'consumed' must agree. */
				if ((exact == BS_OK) != (used == len))
					abort();
			}
			else if (exact == BS_OK)
				abort();
			if ((pgo_tuple_validate(buf, len, true, &err) == BS_OK) != (exact == BS_OK))
				abort();
			(void) pgo_tuple_validate(buf, len, false, &err);
			break;
		}
		case 4:
		{
			strbuf seg = STRBUF_INIT;
			strbuf again = STRBUF_INIT;
			segment_reader r;
			segment_record rec;
			bool eof = false;
			size_t good_end;
			char *copy;
			size_t copy_len;

			segment_write_header(&seg);
			strbuf_append(&seg, buf, len);
			copy = strbuf_detach(&seg, &copy_len);
			segment_write_header(&again);
			if (segment_reader_init(&r, copy, copy_len, &err) != BS_OK)
				abort();
			good_end = r.pos;
			/* Every record read back must re-encode to the same bytes. */
			while (segment_reader_next(&r, &rec, &eof, &err) == BS_OK && !eof)
			{
				if (segment_write_record(&again, &rec, &err) != BS_OK)
					abort();
				good_end = r.pos;
			}
			if (again.len != good_end || memcmp(again.data, copy, good_end) != 0)
				abort();
			strbuf_free(&again);
			free(copy);
			break;
		}
		case 5:
		{
			replmsg m;
			uint64_t lsn;
			char *text = xstrndup((const char *) buf, len);
			char out[LSN_BUFLEN];

			if (replmsg_parse(buf, len, &m, &err) == BS_OK && m.type == 'w')
				for (size_t i = 0; i < m.u.xlogdata.len; i++)
					sink += m.u.xlogdata.data[i];
			if (lsn_parse(text, &lsn) == BS_OK)
			{
				uint64_t back;

				if (lsn_parse(lsn_format(lsn, out), &back) != BS_OK || back != lsn)
					abort();
			}
			if (lsn_parse_key(text, &lsn) == BS_OK && strcmp(lsn_format_key(lsn, out), text) != 0)
				abort();
			free(text);
			break;
		}
	}
	free(buf);
	return 0;
}
