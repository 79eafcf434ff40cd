/* digest.c — one-shot SHA-256 of a buffer, raw or in hex. */
#include "digest.h"

#include <stdio.h>
#include <stdlib.h>

#include <openssl/evp.h>

#include "strbuf.h"

void
digest_sha256(const void *data, size_t len, unsigned char out[DIGEST_SHA256_LEN])
{
	unsigned int mdlen = 0;

	if (EVP_Digest(len ? data : "", len, out, &mdlen, EVP_sha256(), NULL) != 1 ||
		mdlen != DIGEST_SHA256_LEN)
	{
		fprintf(stderr, "backstop: SHA-256 computation failed (out of memory)\n");
		abort();
	}
}

void
digest_sha256_hex(const void *data, size_t len, char out[2 * DIGEST_SHA256_LEN + 1])
{
	unsigned char md[DIGEST_SHA256_LEN];

	digest_sha256(data, len, md);
	hex_encode(md, sizeof(md), out);
}
