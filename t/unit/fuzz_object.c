/* fuzz_object.c — libFuzzer target for the object reader: framing header, codec frames and trailer as stored. */
#include "object.h"
#include "strbuf.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct raw_seen
{
	uint64_t len;
	EVP_MD_CTX *sha;
} raw_seen;

static int
take_raw(void *ctx, const void *data, size_t len, bs_error *err)
{
	raw_seen *r = ctx;

	(void) err;
	r->len += len;
	EVP_DigestUpdate(r->sha, data, len);
	return BS_OK;
}

/* Decode obj fed in pieces of `piece` bytes (0: all at once); BS_OK or BS_ERR. */
static int
decode(const uint8_t *obj, size_t len, size_t piece, object_info *info, raw_seen *r)
{
	object_decoder *dec = NULL;
	bs_error err;
	int rc = BS_OK;

	memset(r, 0, sizeof(*r));
	r->sha = EVP_MD_CTX_new();
	if (r->sha == NULL || EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL) != 1)
		abort();
	if (object_decoder_open("tables/1/seg/fuzz.bso", NULL, take_raw, r, &dec, &err) != BS_OK)
		abort();
	for (size_t off = 0; off < len && rc == BS_OK;)
	{
		size_t n = piece == 0 || piece > len - off ? len - off : piece;

		rc = object_decoder_write(dec, obj + off, n, &err);
		off += n;
	}
	if (rc == BS_OK)
		rc = object_decoder_finish(dec, info, &err);
	object_decoder_free(dec);
	return rc;
}

/*
 * The first byte sets the piece size the stored bytes arrive in; the rest is the object,
 * copied to an exact-size heap block.  Whatever the pieces, the verdict is the same, and an
 * accepted object handed exactly its recorded raw size with its recorded raw SHA-256.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *obj;
	size_t len;
	size_t piece;
	object_info whole,
				pieces;
	raw_seen r1,
			 r2;
	int rc1,
		rc2;

	if (size < 1)
		return 0;
	piece = (size_t) data[0] + 1;
	len = size - 1;
	obj = xmalloc(len ? len : 1);
	memcpy(obj, data + 1, len);
	rc1 = decode(obj, len, 0, &whole, &r1);
	rc2 = decode(obj, len, piece, &pieces, &r2);
	if (rc1 != rc2)
		abort();
	if (rc1 == BS_OK)
	{
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int mdlen = 0;
		char hex[65];

		if (EVP_DigestFinal_ex(r1.sha, md, &mdlen) != 1 || mdlen != 32)
			abort();
		for (unsigned int i = 0; i < mdlen; i++)
			snprintf(hex + 2 * i, 3, "%02x", md[i]);
		if (r1.len != whole.raw_size || r2.len != pieces.raw_size || whole.raw_size != pieces.raw_size ||
			strcmp(hex, whole.raw_sha256) != 0 || strcmp(whole.stored_sha256, pieces.stored_sha256) != 0 ||
			whole.stored_size != len)
			abort();
	}
	EVP_MD_CTX_free(r1.sha);
	EVP_MD_CTX_free(r2.sha);
	free(obj);
	return 0;
}
