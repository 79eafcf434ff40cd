/* digest.h — one-shot SHA-256 of a buffer, raw or in hex. */
#ifndef BACKSTOP_DIGEST_H
#define BACKSTOP_DIGEST_H

#include <stddef.h>

#define DIGEST_SHA256_LEN 32

/* SHA-256 of len bytes (data may be NULL when len is 0).  OpenSSL fails here only when it
 * cannot allocate, which aborts, as every other allocation failure does. */
void digest_sha256(const void *data, size_t len, unsigned char out[DIGEST_SHA256_LEN]);
/* The same in lower-case hex, NUL-terminated. */
void digest_sha256_hex(const void *data, size_t len, char out[2 * DIGEST_SHA256_LEN + 1]);

#endif
