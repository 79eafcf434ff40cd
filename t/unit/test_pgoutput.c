/* test_pgoutput.c — unit tests of the pgoutput decoder with hand-built binary messages. */
#include "pgoutput.h"
#include "strbuf.h"
#include "tap.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every valid message built here, kept for the truncation sweep and as fuzzer seeds. */
typedef struct sample
{
	char *data;
	size_t len;
	int proto;
	bool in_stream;
} sample;

static sample samples[64];
static int nsamples;

static void
keep(const strbuf *sb, int proto, bool in_stream)
{
	if (nsamples >= (int) (sizeof(samples) / sizeof(samples[0])))
	{
		fprintf(stderr, "too many samples\n");
		exit(2);
	}
	samples[nsamples].data = xmalloc(sb->len);
	memcpy(samples[nsamples].data, sb->data, sb->len);
	samples[nsamples].len = sb->len;
	samples[nsamples].proto = proto;
	samples[nsamples].in_stream = in_stream;
	nsamples++;
}

/*
 * Decode from an exact-size heap copy, so that AddressSanitizer catches any read past
 * the end; remembers valid messages as samples.
 */
static int
decode(const strbuf *sb, int proto, bool in_stream, pgo_message *m, bs_error *err, uint8_t **copy)
{
	int rc;

	*copy = xmalloc(sb->len ? sb->len : 1);
	memcpy(*copy, sb->data, sb->len);
	rc = pgo_decode(*copy, sb->len, proto, in_stream, m, err);
	if (rc == BS_OK)
		keep(sb, proto, in_stream);
	return rc;
}

static void
put_str(strbuf *sb, const char *s)
{
	strbuf_append(sb, s, strlen(s) + 1);
}

static void
put_text(strbuf *sb, const char *s)
{
	strbuf_append_u8(sb, 't');
	strbuf_append_be32(sb, (uint32_t) strlen(s));
	strbuf_append_str(sb, s);
}

/* A three-column tuple: text "42", NULL, unchanged TOAST. */
static void
put_tuple3(strbuf *sb)
{
	strbuf_append_be16(sb, 3);
	put_text(sb, "42");
	strbuf_append_u8(sb, 'n');
	strbuf_append_u8(sb, 'u');
}

static bool
value_is(const pgo_value *v, char kind, const char *text)
{
	if (v->kind != kind)
		return false;
	if (text == NULL)
		return true;
	return v->len == strlen(text) && memcmp(v->data, text, v->len) == 0;
}

static void
write_seeds(void)
{
	const char *dir = getenv("BACKSTOP_FUZZ_SEED_DIR");

	if (dir == NULL)
		return;
	for (int i = 0; i < nsamples; i++)
	{
		char path[4096];
		FILE *f;
		/* The fuzzer's first byte picks the target: 0 v1, 1 v2, 2 v2 in stream. */
		uint8_t sel = samples[i].proto == 1 ? 0 : samples[i].in_stream ? 2 : 1;

		snprintf(path, sizeof(path), "%s/pgoutput-%02d", dir, i);
		f = fopen(path, "wb");
		if (f == NULL)
		{
			perror(path);
			exit(2);
		}
		fwrite(&sel, 1, 1, f);
		fwrite(samples[i].data, 1, samples[i].len, f);
		fclose(f);
	}
}

static void
test_transaction_messages(void)
{
	strbuf sb = STRBUF_INIT;
	pgo_message m;
	bs_error err;
	uint8_t *copy;

	strbuf_append_u8(&sb, 'B');
	strbuf_append_be64(&sb, UINT64_C(0x16B374D848));
	strbuf_append_be64(&sb, (uint64_t) INT64_C(-5));
	strbuf_append_be32(&sb, 0xFFFFFFF0u);
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_OK, "Begin decodes");
	ok(m.type == 'B' && m.u.begin.final_lsn == UINT64_C(0x16B374D848) && m.u.begin.commit_time == -5 &&
	   m.u.begin.xid == 0xFFFFFFF0u && !m.has_stream_xid, "Begin fields");
	pgo_message_free(&m);
	free(copy);
	ok(decode(&sb, 2, true, &m, &err, &copy) == BS_ERR && strcmp(err.code, ERRCODE_PROTOCOL) == 0,
	   "Begin inside a stream block is refused");
	free(copy);

	strbuf_reset(&sb);
	strbuf_append_u8(&sb, 'C');
	strbuf_append_u8(&sb, 0);
	strbuf_append_be64(&sb, 0x1000);
	strbuf_append_be64(&sb, 0x1038);
	strbuf_append_be64(&sb, 812345678901234);
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_OK, "Commit decodes");
	ok(m.u.commit.flags == 0 && m.u.commit.commit_lsn == 0x1000 && m.u.commit.end_lsn == 0x1038 &&
	   m.u.commit.commit_time == 812345678901234, "Commit fields");
	pgo_message_free(&m);
	free(copy);
	sb.data[1] = 1;
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_ERR && strstr(err.message, "flags") &&
	   strstr(err.message, "offset 1"), "Commit with nonzero flags refused, offset named: %s", err.message);
	free(copy);

	strbuf_reset(&sb);
	strbuf_append_u8(&sb, 'O');
	strbuf_append_be64(&sb, 0xABCDEF);
	put_str(&sb, "node_a");
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_OK, "Origin decodes");
	ok(m.u.origin.origin_lsn == 0xABCDEF && strcmp(m.u.origin.name, "node_a") == 0, "Origin fields");
	pgo_message_free(&m);
	free(copy);
	ok(decode(&sb, 2, true, &m, &err, &copy) == BS_OK && m.u.origin.origin_lsn == 0xABCDEF &&
	   !m.has_stream_xid, "Origin in a stream block has no xid prefix");
	pgo_message_free(&m);
	free(copy);
	/* Drop the terminator: the string now runs to the end of the message. */
	sb.len--;
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_ERR && strstr(err.message, "NUL-terminated") &&
	   strstr(err.message, "offset 9"), "unterminated origin name refused: %s", err.message);
	free(copy);
	strbuf_free(&sb);
}

static void
build_relation(strbuf *sb, bool with_xid)
{
	strbuf_append_u8(sb, 'R');
	if (with_xid)
		strbuf_append_be32(sb, 777);
	strbuf_append_be32(sb, 16384);
	put_str(sb, "public");
	put_str(sb, "users");
	strbuf_append_u8(sb, 'd');
	strbuf_append_be16(sb, 2);
	strbuf_append_u8(sb, 1);
	put_str(sb, "id");
	strbuf_append_be32(sb, 23);
	strbuf_append_be32(sb, 0xFFFFFFFFu);
	strbuf_append_u8(sb, 0);
	put_str(sb, "name");
	strbuf_append_be32(sb, 1043);
	strbuf_append_be32(sb, 68);
}

static void
test_relation_and_type(void)
{
	strbuf sb = STRBUF_INIT;
	pgo_message m;
	pgo_relation copy_rel;
	bs_error err;
	uint8_t *copy;

	build_relation(&sb, false);
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_OK, "Relation decodes");
	ok(m.u.relation.relid == 16384 && strcmp(m.u.relation.nspname, "public") == 0 &&
	   strcmp(m.u.relation.relname, "users") == 0 && m.u.relation.replident == 'd' &&
	   m.u.relation.ncols == 2, "Relation header fields");
	ok(m.u.relation.columns[0].flags == PGO_COLUMN_KEY && strcmp(m.u.relation.columns[0].name, "id") == 0 &&
	   m.u.relation.columns[0].type_oid == 23 && m.u.relation.columns[0].typmod == -1, "key column");
	ok(m.u.relation.columns[1].flags == 0 && strcmp(m.u.relation.columns[1].name, "name") == 0 &&
	   m.u.relation.columns[1].type_oid == 1043 && m.u.relation.columns[1].typmod == 68, "plain column");
	pgo_relation_copy(&copy_rel, &m.u.relation);
	pgo_message_free(&m);
	memset(copy, 0, sb.len);
	free(copy);
	ok(copy_rel.ncols == 2 && strcmp(copy_rel.relname, "users") == 0 &&
	   strcmp(copy_rel.columns[1].name, "name") == 0 && copy_rel.columns[0].typmod == -1,
	   "relation copy survives the message and its buffer");
	pgo_relation_free(&copy_rel);
	ok(copy_rel.columns == NULL && copy_rel.ncols == 0, "relation free resets");

	strbuf_reset(&sb);
	build_relation(&sb, true);
	ok(decode(&sb, 2, true, &m, &err, &copy) == BS_OK && m.has_stream_xid && m.stream_xid == 777 &&
	   m.u.relation.relid == 16384 && m.u.relation.ncols == 2, "Relation inside a stream carries the xid");
	pgo_message_free(&m);
	free(copy);
	ok(decode(&sb, 2, false, &m, &err, &copy) == BS_ERR, "the same bytes outside a stream do not parse");
	free(copy);

	strbuf_reset(&sb);
	build_relation(&sb, false);
	sb.data[1 + 4 + 7 + 6] = 'x';
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_ERR && strstr(err.message, "replica identity") &&
	   strstr(err.message, "offset 18"), "bad replica identity refused: %s", err.message);
	free(copy);

	strbuf_reset(&sb);
	build_relation(&sb, false);
	sb.data[1 + 4 + 7 + 6 + 1 + 2] = 4;
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_ERR && strstr(err.message, "flags of column 1"),
	   "unknown column flag refused: %s", err.message);
	free(copy);

	strbuf_reset(&sb);
	build_relation(&sb, false);
	sb.data[1 + 4 + 7 + 6 + 1] = (char) 0x7F;	/* 32512 columns announced */
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_ERR && strstr(err.message, "columns announced"),
	   "absurd column count refused before allocating: %s", err.message);
	free(copy);
	sb.data[1 + 4 + 7 + 6 + 1] = (char) 0xFF;
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_ERR && strstr(err.message, "negative column count"),
	   "negative column count refused");
	free(copy);

	strbuf_reset(&sb);
	strbuf_append_u8(&sb, 'Y');
	strbuf_append_be32(&sb, 50000);
	put_str(&sb, "");
	put_str(&sb, "mood");
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_OK && m.u.type.oid == 50000 &&
	   strcmp(m.u.type.nspname, "") == 0 && strcmp(m.u.type.typname, "mood") == 0, "Type decodes");
	pgo_message_free(&m);
	free(copy);
	strbuf_free(&sb);
}

static void
test_dml(void)
{
	strbuf sb = STRBUF_INIT;
	pgo_message m;
	bs_error err;
	uint8_t *copy;
	size_t tstart;

	strbuf_append_u8(&sb, 'I');
	strbuf_append_be32(&sb, 16384);
	strbuf_append_u8(&sb, 'N');
	tstart = sb.len;
	strbuf_append_be16(&sb, 4);
	put_text(&sb, "42");
	strbuf_append_u8(&sb, 'n');
	strbuf_append_u8(&sb, 'u');
	strbuf_append_u8(&sb, 'b');
	strbuf_append_be32(&sb, 3);
	strbuf_append(&sb, "\0\1\2", 3);
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_OK, "Insert decodes");
	ok(m.u.insert.relid == 16384 && m.u.insert.newtup.ncols == 4, "Insert relid and column count");
	ok(value_is(&m.u.insert.newtup.values[0], 't', "42") && value_is(&m.u.insert.newtup.values[1], 'n', NULL) &&
	   value_is(&m.u.insert.newtup.values[2], 'u', NULL) &&
	   m.u.insert.newtup.values[3].kind == 'b' && m.u.insert.newtup.values[3].len == 3 &&
	   memcmp(m.u.insert.newtup.values[3].data, "\0\1\2", 3) == 0, "Insert values of every kind");
	ok(m.u.insert.newtup.raw == copy + tstart && m.u.insert.newtup.raw_len == sb.len - tstart,
	   "raw TupleData covers the tuple verbatim");
	pgo_message_free(&m);
	free(copy);

	/* Insert inside a stream. */
	strbuf_reset(&sb);
	strbuf_append_u8(&sb, 'I');
	strbuf_append_be32(&sb, 901);
	strbuf_append_be32(&sb, 16384);
	strbuf_append_u8(&sb, 'N');
	put_tuple3(&sb);
	ok(decode(&sb, 2, true, &m, &err, &copy) == BS_OK && m.has_stream_xid && m.stream_xid == 901 &&
	   m.u.insert.relid == 16384 && m.u.insert.newtup.ncols == 3, "streamed Insert with xid prefix");
	pgo_message_free(&m);
	free(copy);

	/* Update without old tuple. */
	strbuf_reset(&sb);
	strbuf_append_u8(&sb, 'U');
	strbuf_append_be32(&sb, 16384);
	strbuf_append_u8(&sb, 'N');
	put_tuple3(&sb);
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_OK && m.u.update.old_kind == '\0' &&
	   m.u.update.oldtup.values == NULL && m.u.update.newtup.ncols == 3 &&
	   value_is(&m.u.update.newtup.values[0], 't', "42"), "Update without old tuple");
	pgo_message_free(&m);
	free(copy);

	for (const char *k = "KO"; *k; k++)
	{
		strbuf_reset(&sb);
		strbuf_append_u8(&sb, 'U');
		strbuf_append_be32(&sb, 16384);
		strbuf_append_u8(&sb, (uint8_t) *k);
		strbuf_append_be16(&sb, 1);
		put_text(&sb, "7");
		strbuf_append_u8(&sb, 'N');
		put_tuple3(&sb);
		ok(decode(&sb, 1, false, &m, &err, &copy) == BS_OK && m.u.update.old_kind == *k &&
		   m.u.update.oldtup.ncols == 1 && value_is(&m.u.update.oldtup.values[0], 't', "7") &&
		   m.u.update.oldtup.raw == copy + 6 && m.u.update.oldtup.raw_len == 8 &&
		   m.u.update.newtup.ncols == 3, "Update with '%c' old tuple", *k);
		pgo_message_free(&m);
		free(copy);
	}
	/* Old tuple not followed by 'N'. */
	sb.data[14] = 'K';
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_ERR && strstr(err.message, "tuple marker") &&
	   strstr(err.message, "offset 14"), "Update with a second old tuple refused: %s", err.message);
	free(copy);

	for (const char *k = "KO"; *k; k++)
	{
		strbuf_reset(&sb);
		strbuf_append_u8(&sb, 'D');
		strbuf_append_be32(&sb, 16384);
		strbuf_append_u8(&sb, (uint8_t) *k);
		put_tuple3(&sb);
		ok(decode(&sb, 1, false, &m, &err, &copy) == BS_OK && m.u.delete.old_kind == *k &&
		   m.u.delete.relid == 16384 && m.u.delete.oldtup.ncols == 3, "Delete with '%c' tuple", *k);
		pgo_message_free(&m);
		free(copy);
	}
	sb.data[5] = 'N';
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_ERR, "Delete with 'N' tuple refused");
	free(copy);

	/* Tuple errors. */
	strbuf_reset(&sb);
	strbuf_append_u8(&sb, 'I');
	strbuf_append_be32(&sb, 16384);
	strbuf_append_u8(&sb, 'N');
	strbuf_append_be16(&sb, 1);
	strbuf_append_u8(&sb, 't');
	strbuf_append_be32(&sb, 0x80000000u);
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_ERR && strstr(err.message, "negative length"),
	   "negative value length refused: %s", err.message);
	free(copy);
	sb.data[8] = 'x';
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_ERR && strstr(err.message, "kind of column 1") &&
	   strstr(err.message, "offset 8"), "unknown column kind refused: %s", err.message);
	free(copy);
	sb.data[8] = 't';
	sb.data[9] = 0;
	sb.data[12] = 5;	/* length 5, no bytes */
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_ERR && strstr(err.message, "value of column 1") &&
	   strstr(err.message, "needs 5 bytes, 0 remain"), "value overrunning the message refused: %s",
	   err.message);
	free(copy);
	sb.len = 6;
	strbuf_append_be16(&sb, 0x7FFF);
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_ERR && strstr(err.message, "claims 32767 columns"),
	   "column count beyond the message refused");
	free(copy);
	sb.len = 6;
	strbuf_append_be16(&sb, 0);
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_OK && m.u.insert.newtup.ncols == 0 &&
	   m.u.insert.newtup.values == NULL, "zero-column tuple accepted");
	pgo_message_free(&m);
	free(copy);
	strbuf_append_u8(&sb, 0);
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_ERR && strstr(err.message, "trailing") &&
	   strstr(err.message, "offset 8"), "trailing byte refused: %s", err.message);
	free(copy);
	strbuf_free(&sb);
}

static void
test_truncate_and_message(void)
{
	strbuf sb = STRBUF_INIT;
	pgo_message m;
	bs_error err;
	uint8_t *copy;

	strbuf_append_u8(&sb, 'T');
	strbuf_append_be32(&sb, 2);
	strbuf_append_u8(&sb, PGO_TRUNCATE_CASCADE | PGO_TRUNCATE_RESTART_IDENTITY);
	strbuf_append_be32(&sb, 16384);
	strbuf_append_be32(&sb, 16390);
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_OK && m.u.truncate.nrels == 2 &&
	   m.u.truncate.options == 3 && m.u.truncate.relids[0] == 16384 && m.u.truncate.relids[1] == 16390,
	   "Truncate decodes");
	pgo_message_free(&m);
	free(copy);
	sb.data[5] = 4;
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_ERR && strstr(err.message, "options"),
	   "unknown truncate option refused");
	free(copy);
	sb.data[5] = 0;
	sb.data[1] = (char) 0xFF;
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_ERR && strstr(err.message, "relations announced"),
	   "huge relation count refused before allocating: %s", err.message);
	free(copy);

	strbuf_reset(&sb);
	strbuf_append_u8(&sb, 'T');
	strbuf_append_be32(&sb, 55);
	strbuf_append_be32(&sb, 1);
	strbuf_append_u8(&sb, 0);
	strbuf_append_be32(&sb, 16384);
	ok(decode(&sb, 2, true, &m, &err, &copy) == BS_OK && m.stream_xid == 55 && m.u.truncate.nrels == 1,
	   "streamed Truncate");
	pgo_message_free(&m);
	free(copy);

	strbuf_reset(&sb);
	strbuf_append_u8(&sb, 'M');
	strbuf_append_u8(&sb, 1);
	strbuf_append_be64(&sb, 0x2000);
	put_str(&sb, "backstop");
	strbuf_append_be32(&sb, 4);
	strbuf_append(&sb, "a\0b\n", 4);
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_OK && m.u.message.flags == PGO_MESSAGE_TRANSACTIONAL &&
	   m.u.message.lsn == 0x2000 && strcmp(m.u.message.prefix, "backstop") == 0 &&
	   m.u.message.content_len == 4 && memcmp(m.u.message.content, "a\0b\n", 4) == 0,
	   "logical decoding Message decodes (content with NUL)");
	pgo_message_free(&m);
	free(copy);
	sb.data[sb.len - 5] = 5;
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_ERR && strstr(err.message, "content"),
	   "content overrunning the message refused");
	free(copy);
	strbuf_free(&sb);
}

static void
test_stream_messages(void)
{
	strbuf sb = STRBUF_INIT;
	pgo_message m;
	bs_error err;
	uint8_t *copy;

	strbuf_append_u8(&sb, 'S');
	strbuf_append_be32(&sb, 1234);
	strbuf_append_u8(&sb, 1);
	ok(decode(&sb, 2, false, &m, &err, &copy) == BS_OK && m.u.stream_start.xid == 1234 &&
	   m.u.stream_start.first_segment, "Stream Start decodes");
	free(copy);
	ok(decode(&sb, 1, false, &m, &err, &copy) == BS_ERR && strcmp(err.code, ERRCODE_PROTOCOL) == 0 &&
	   strstr(err.message, "protocol version 1"), "Stream Start refused in protocol 1");
	free(copy);
	ok(decode(&sb, 2, true, &m, &err, &copy) == BS_ERR, "nested Stream Start refused");
	free(copy);
	sb.data[5] = 2;
	ok(decode(&sb, 2, false, &m, &err, &copy) == BS_ERR, "first segment flag 2 refused");
	free(copy);

	strbuf_reset(&sb);
	strbuf_append_u8(&sb, 'E');
	ok(decode(&sb, 2, true, &m, &err, &copy) == BS_OK && m.type == 'E', "Stream Stop decodes");
	free(copy);
	ok(decode(&sb, 2, false, &m, &err, &copy) == BS_ERR, "Stream Stop outside a stream refused");
	free(copy);

	strbuf_reset(&sb);
	strbuf_append_u8(&sb, 'c');
	strbuf_append_be32(&sb, 1234);
	strbuf_append_u8(&sb, 0);
	strbuf_append_be64(&sb, 0x5000);
	strbuf_append_be64(&sb, 0x5030);
	strbuf_append_be64(&sb, 99);
	ok(decode(&sb, 2, false, &m, &err, &copy) == BS_OK && m.u.stream_commit.xid == 1234 &&
	   m.u.stream_commit.commit_lsn == 0x5000 && m.u.stream_commit.end_lsn == 0x5030 &&
	   m.u.stream_commit.commit_time == 99 && !m.has_stream_xid, "Stream Commit decodes");
	free(copy);

	strbuf_reset(&sb);
	strbuf_append_u8(&sb, 'A');
	strbuf_append_be32(&sb, 1234);
	strbuf_append_be32(&sb, 1240);
	ok(decode(&sb, 2, false, &m, &err, &copy) == BS_OK && m.u.stream_abort.xid == 1234 &&
	   m.u.stream_abort.subxid == 1240, "Stream Abort decodes");
	free(copy);
	ok(decode(&sb, 2, true, &m, &err, &copy) == BS_ERR, "Stream Abort inside a stream block refused");
	free(copy);

	ok(pgo_decode((const uint8_t *) "E", 1, 1, true, &m, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0, "in_stream with protocol 1 is a caller error");
	ok(pgo_decode((const uint8_t *) "E", 1, 3, true, &m, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0, "protocol 3 not supported");
	ok(pgo_decode((const uint8_t *) "Z", 1, 1, false, &m, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_PROTOCOL) == 0 && strstr(err.message, "0x5a"), "unknown type refused");
	ok(pgo_decode((const uint8_t *) "", 0, 1, false, &m, &err) == BS_ERR, "empty message refused");
	strbuf_free(&sb);
}

/* Every proper prefix of every valid message must fail cleanly, never over-read. */
static void
test_truncations(void)
{
	int bad = 0;
	int total = 0;

	for (int i = 0; i < nsamples; i++)
	{
		for (size_t cut = 0; cut < samples[i].len; cut++)
		{
			uint8_t *copy = xmalloc(cut ? cut : 1);
			pgo_message m;
			bs_error err;

			memcpy(copy, samples[i].data, cut);
			error_clear(&err);
			total++;
			if (pgo_decode(copy, cut, samples[i].proto, samples[i].in_stream, &m, &err) != BS_ERR ||
				strcmp(err.code, ERRCODE_PROTOCOL) != 0)
			{
				bad++;
				printf("# sample %d ('%c') prefix %zu did not fail\n", i, samples[i].data[0], cut);
				if (err.code[0] == '\0')
					pgo_message_free(&m);
			}
			free(copy);
		}
	}
	ok(nsamples >= 20 && total > 300, "truncation sweep covers %d messages, %d prefixes", nsamples, total);
	is_int(bad, 0, "every truncated message is refused with a protocol error");
}

static void
test_tuple_api(void)
{
	strbuf sb = STRBUF_INIT;
	pgo_tuple t;
	size_t used;
	bs_error err;

	put_tuple3(&sb);
	ok(pgo_tuple_parse((const uint8_t *) sb.data, sb.len, &t, NULL, &err) == BS_OK && t.ncols == 3 &&
	   t.raw_len == sb.len && value_is(&t.values[0], 't', "42"), "pgo_tuple_parse exact");
	pgo_tuple_free(&t);
	strbuf_append(&sb, "xyz", 3);
	ok(pgo_tuple_parse((const uint8_t *) sb.data, sb.len, &t, NULL, &err) == BS_ERR &&
	   strstr(err.message, "trailing"), "exact parse refuses trailing bytes");
	ok(pgo_tuple_parse((const uint8_t *) sb.data, sb.len, &t, &used, &err) == BS_OK && used == sb.len - 3 &&
	   t.ncols == 3, "parse with consumed reports the tuple length");
	pgo_tuple_free(&t);
	ok(pgo_tuple_validate((const uint8_t *) sb.data, sb.len - 3, false, &err) == BS_OK,
	   "validate accepts a text tuple");
	ok(pgo_tuple_validate((const uint8_t *) sb.data, sb.len, false, &err) == BS_ERR,
	   "validate refuses trailing bytes");
	strbuf_reset(&sb);
	strbuf_append_be16(&sb, 1);
	strbuf_append_u8(&sb, 'b');
	strbuf_append_be32(&sb, 1);
	strbuf_append_u8(&sb, 0xFF);
	ok(pgo_tuple_validate((const uint8_t *) sb.data, sb.len, true, &err) == BS_OK, "binary allowed on request");
	ok(pgo_tuple_validate((const uint8_t *) sb.data, sb.len, false, &err) == BS_ERR &&
	   strstr(err.message, "binary"), "binary refused otherwise");
	ok(pgo_tuple_parse((const uint8_t *) sb.data, 1, &t, NULL, &err) == BS_ERR, "one-byte tuple refused");
	strbuf_free(&sb);
}

int
main(void)
{
	test_transaction_messages();
	test_relation_and_type();
	test_dml();
	test_truncate_and_message();
	test_stream_messages();
	test_truncations();
	test_tuple_api();
	write_seeds();
	for (int i = 0; i < nsamples; i++)
		free(samples[i].data);
	return done_testing();
}
