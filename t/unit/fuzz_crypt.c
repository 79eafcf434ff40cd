/* fuzz_crypt.c — libFuzzer target for encrypted objects as stored: header parsing, streaming decryption, the tag. */
#include "storage_crypt.h"
#include "strbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OBJKEY "tables/1/seg/0000000000000001-0000000000000002.bso"

/*
 * The first byte sets the piece size the stored bytes arrive in; the rest is a sealed object
 * (seeds in t/fuzz/crypt/ are sealed with key A below under OBJKEY).  Whatever the pieces, the
 * verdict and the content are the same; an object accepted under one key is refused under
 * another key or another name; and the input itself, sealed, opens to exactly itself.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t keys[2][CRYPT_KEY_SIZE];
	strbuf whole = STRBUF_INIT, pieces = STRBUF_INIT, sealed = STRBUF_INIT;
	bs_error err;
	uint8_t *obj;
	size_t len, piece;
	int rc_whole, rc_pieces;

	if (size < 1)
		return 0;
	memset(keys[0], 0xa1, CRYPT_KEY_SIZE);
	memset(keys[1], 0xb2, CRYPT_KEY_SIZE);
	piece = data[0] % 64 + 1;
	len = size - 1;
	obj = malloc(len ? len : 1);
	if (obj == NULL)
		abort();
	memcpy(obj, data + 1, len);

	rc_whole = crypt_open_buffer((const uint8_t (*)[CRYPT_KEY_SIZE]) keys, 2, OBJKEY, obj, len, 0, &whole, &err);
	rc_pieces = crypt_open_buffer((const uint8_t (*)[CRYPT_KEY_SIZE]) keys, 2, OBJKEY, obj, len, piece, &pieces, &err);
	if (rc_whole != rc_pieces)
		abort();
	if (rc_whole == BS_OK && (whole.len != pieces.len || whole.len != len - CRYPT_OVERHEAD ||
							  (whole.len > 0 && memcmp(whole.data, pieces.data, whole.len) != 0)))
		abort();
	if (rc_whole == BS_OK &&
		crypt_open_buffer((const uint8_t (*)[CRYPT_KEY_SIZE]) keys, 2, "tables/2/manifest.json", obj, len, piece,
						  &pieces, &err) == BS_OK)
		abort();
	if (rc_whole != BS_OK && whole.len != 0)
		abort();

	if (crypt_seal_buffer(keys[1], OBJKEY, obj, len, &sealed, &err) != BS_OK ||
		sealed.len != len + CRYPT_OVERHEAD ||
		crypt_open_buffer((const uint8_t (*)[CRYPT_KEY_SIZE]) keys, 2, OBJKEY, sealed.data, sealed.len, piece,
						  &whole, &err) != BS_OK ||
		whole.len != len || (len && memcmp(whole.data, obj, len) != 0))
		abort();
	/* One bit flipped anywhere is refused. */
	sealed.data[(size_t) data[0] * 7 % sealed.len] ^= 0x10;
	if (crypt_open_buffer((const uint8_t (*)[CRYPT_KEY_SIZE]) keys, 2, OBJKEY, sealed.data, sealed.len, piece,
						  &whole, &err) == BS_OK)
		abort();

	strbuf_free(&whole);
	strbuf_free(&pieces);
	strbuf_free(&sealed);
	free(obj);
	return 0;
}
