/* test_crypt_buffer.c — encrypted objects sealed and opened in memory: any piece size, the key ring, refusals. */
#include "storage_crypt.h"
#include "strbuf.h"
#include "tap.h"

#include <string.h>

#define OBJKEY "tables/1/seg/0000000000000001-0000000000000002.bso"

int
main(void)
{
	uint8_t keys[2][CRYPT_KEY_SIZE];
	uint8_t other[1][CRYPT_KEY_SIZE];
	strbuf plain = STRBUF_INIT,
		sealed = STRBUF_INIT,
		opened = STRBUF_INIT;
	bs_error err;
	bool all_sizes = true;

	memset(keys[0], 0xa1, CRYPT_KEY_SIZE);
	memset(keys[1], 0xb2, CRYPT_KEY_SIZE);
	memset(other[0], 0xc3, CRYPT_KEY_SIZE);
	/* More than one of the format's chunks, not a multiple of anything. */
	for (int i = 0; i < 200003; i++)
		strbuf_append_char(&plain, (char) ('a' + i % 23));

	/* Sealed under the old key (second in the ring), opened by the ring. */
	ok(crypt_seal_buffer(keys[1], OBJKEY, plain.data, plain.len, &sealed, &err) == BS_OK, "sealed");
	is_int(sealed.len, plain.len + CRYPT_OVERHEAD, "the stored size is the plain size plus the overhead");
	ok(memmem(sealed.data, sealed.len, plain.data, 64) == NULL, "the plain text does not appear in the sealed object");
	for (size_t piece = 0; piece <= 70000; piece = piece ? piece * 7 : 1)
	{
		strbuf_reset(&opened);
		if (crypt_open_buffer((const uint8_t (*)[CRYPT_KEY_SIZE]) keys, 2, OBJKEY, sealed.data, sealed.len, piece,
							  &opened, &err) != BS_OK || opened.len != plain.len ||
			memcmp(opened.data, plain.data, plain.len) != 0)
		{
			printf("# piece %zu: %s\n", piece, err.message);
			all_sizes = false;
		}
	}
	ok(all_sizes, "opened by the key ring to the same bytes, whatever the size of the pieces it arrives in");

	/* Refusals: another key, another name, a flipped bit, a cut end; the output stays empty. */
	ok(crypt_open_buffer((const uint8_t (*)[CRYPT_KEY_SIZE]) other, 1, OBJKEY, sealed.data, sealed.len, 0, &opened,
						 &err) == BS_ERR && opened.len == 0, "a key not in the ring: refused (%s)", err.message);
	ok(crypt_open_buffer((const uint8_t (*)[CRYPT_KEY_SIZE]) keys, 2, "tables/1/manifest.json", sealed.data, sealed.len,
						 4096, &opened, &err) == BS_ERR && opened.len == 0,
	   "the object under another name: refused (%s)", err.message);
	sealed.data[sealed.len / 2] ^= 0x01;
	ok(crypt_open_buffer((const uint8_t (*)[CRYPT_KEY_SIZE]) keys, 2, OBJKEY, sealed.data, sealed.len, 1000, &opened,
						 &err) == BS_ERR && opened.len == 0, "one bit flipped: refused (%s)", err.message);
	sealed.data[sealed.len / 2] ^= 0x01;
	ok(crypt_open_buffer((const uint8_t (*)[CRYPT_KEY_SIZE]) keys, 2, OBJKEY, sealed.data, sealed.len - 1, 0, &opened,
						 &err) == BS_ERR && opened.len == 0, "the last byte cut: refused (%s)", err.message);
	ok(crypt_open_buffer((const uint8_t (*)[CRYPT_KEY_SIZE]) keys, 2, OBJKEY, sealed.data, 10, 3, &opened,
						 &err) == BS_ERR && opened.len == 0, "only the start of the header: refused (%s)", err.message);
	ok(crypt_open_buffer((const uint8_t (*)[CRYPT_KEY_SIZE]) keys, 2, OBJKEY, sealed.data, sealed.len, 0, &opened,
						 &err) == BS_OK && opened.len == plain.len, "restored: opens again");

	/* An empty object. */
	ok(crypt_seal_buffer(keys[0], OBJKEY, "", 0, &sealed, &err) == BS_OK && sealed.len == CRYPT_OVERHEAD &&
	   crypt_open_buffer((const uint8_t (*)[CRYPT_KEY_SIZE]) keys, 2, OBJKEY, sealed.data, sealed.len, 5, &opened,
						 &err) == BS_OK && opened.len == 0, "an empty object seals and opens");

	strbuf_free(&plain);
	strbuf_free(&sealed);
	strbuf_free(&opened);
	return done_testing();
}
