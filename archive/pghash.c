/* pghash.c — PostgreSQL's hash_bytes_extended (Jenkins lookup3), the per-row term of Backstop's content checksum. */
#include "pghash.h"

static inline uint32_t
rotl32(uint32_t x, int k)
{
	return (x << k) | (x >> (32 - k));
}

/* Little-endian 32-bit load, whatever the host: PostgreSQL's result on x86 and ARM. */
static inline uint32_t
load_le32(const unsigned char *p)
{
	return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

#define LOOKUP3_MIX(a, b, c) \
	do { \
		a -= c; a ^= rotl32(c, 4); c += b; \
		b -= a; b ^= rotl32(a, 6); a += c; \
		c -= b; c ^= rotl32(b, 8); b += a; \
		a -= c; a ^= rotl32(c, 16); c += b; \
		b -= a; b ^= rotl32(a, 19); a += c; \
		c -= b; c ^= rotl32(b, 4); b += a; \
	} while (0)

#define LOOKUP3_FINAL(a, b, c) \
	do { \
		c ^= b; c -= rotl32(b, 14); \
		a ^= c; a -= rotl32(c, 11); \
		b ^= a; b -= rotl32(a, 25); \
		c ^= b; c -= rotl32(b, 16); \
		a ^= c; a -= rotl32(c, 4); \
		b ^= a; b -= rotl32(a, 14); \
		c ^= b; c -= rotl32(b, 24); \
	} while (0)

int64_t
pghash_text(const void *data, size_t len)
{
	const unsigned char *k = data;
	size_t n = len;
	uint32_t a,
		b,
		c;

	/* PostgreSQL truncates the length to 32 bits in the initial value, as done here. */
	a = b = c = 0x9e3779b9u + (uint32_t) len + 3923095u;
	while (n >= 12)
	{
		a += load_le32(k);
		b += load_le32(k + 4);
		c += load_le32(k + 8);
		LOOKUP3_MIX(a, b, c);
		k += 12;
		n -= 12;
	}
	/* The tail; the low byte of c stays for the length, as in PostgreSQL. */
	switch (n)
	{
		case 11:
			c += (uint32_t) k[10] << 24;
			/* fall through */
		case 10:
			c += (uint32_t) k[9] << 16;
			/* fall through */
		case 9:
			c += (uint32_t) k[8] << 8;
			/* fall through */
		case 8:
			b += load_le32(k + 4);
			a += load_le32(k);
			break;
		case 7:
			b += (uint32_t) k[6] << 16;
			/* fall through */
		case 6:
			b += (uint32_t) k[5] << 8;
			/* fall through */
		case 5:
			b += k[4];
			/* fall through */
		case 4:
			a += load_le32(k);
			break;
		case 3:
			a += (uint32_t) k[2] << 16;
			/* fall through */
		case 2:
			a += (uint32_t) k[1] << 8;
			/* fall through */
		case 1:
			a += k[0];
			break;
		default:
			break;
	}
	LOOKUP3_FINAL(a, b, c);
	return (int64_t) (((uint64_t) b << 32) | c);
}
