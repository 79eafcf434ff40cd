/* storage_crypt.c — encryption at rest: a storage wrapper that seals every object with AES-256-GCM. */
#include "storage_crypt.h"
#include "log.h"
#include "strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#define PIECE (64 * 1024)
#define SALT_SIZE 16
#define MAX_SECRET_FILE 4096
#define MIN_PASSPHRASE 8
#define MAX_ARCHIVE_KEYS 64
/* GCM encrypts at most 2^32 - 2 blocks under one nonce. */
#define GCM_MAX_BYTES ((UINT64_C(1) << 36) - 64)
/* scrypt's cost for new archives: N = 2^15, r = 8, p = 1 (32 MiB, about 0.1 s). */
#define SCRYPT_LOG2_N 15
#define SCRYPT_R 8
#define SCRYPT_P 1
/* What a reader accepts from encryption.json (untrusted): at most 1 GiB of memory. */
#define SCRYPT_MAX_MEM (UINT64_C(1) << 30)

typedef enum crypt_state
{
	CRYPT_OFF,					/* no key: pass through, refuse encrypted objects */
	CRYPT_UNINIT,				/* a key, but no encryption.json (yet) */
	CRYPT_ON					/* encrypt and decrypt */
} crypt_state;

typedef struct crypt_key_entry
{
	uint8_t key[CRYPT_KEY_SIZE];
	uint8_t id[CRYPT_KEY_ID_SIZE];
} crypt_key_entry;

#define PLAIN_SEEN_MAX 32

typedef struct crypt_storage
{
	storage base;
	storage *inner;
	crypt_state state;
	crypt_key_entry *keys;		/* keys[0] is the current key when has_current */
	int nkeys;
	bool has_current;
	char *passphrase;			/* the current key's passphrase until the salt is known */
	size_t passphrase_len;
	char **old_passphrases;		/* earlier keys' passphrases, likewise */
	size_t *old_passphrase_lens;
	int nold_passphrases;
	/* encryption.json as last read */
	uint8_t salt[SALT_SIZE];
	int log2_n, r, p;
	uint8_t (*archive_ids)[CRYPT_KEY_ID_SIZE];
	int narchive_ids;
	char *config_tag;
	/* Without keys: objects whose first bytes were seen not to be encrypted, so that ranged
	 * reads of one object (a pack's runs) check its header once (a ring, newest last). */
	char *plain_seen[PLAIN_SEEN_MAX];
	int plain_next;
} crypt_storage;

typedef struct crypt_writer
{
	storage_writer base;
	storage_writer *inner;
	EVP_CIPHER_CTX *ctx;
	uint64_t len;
	uint8_t *buf;
} crypt_writer;

static const storage_ops crypt_ops;

/* ---------- helpers ---------- */

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool
hex_decode(const char *in, size_t inlen, uint8_t *out, size_t outlen)
{
	if (inlen != 2 * outlen)
		return false;
	for (size_t i = 0; i < outlen; i++)
	{
		int hi = hex_value(in[2 * i]);
		int lo = hex_value(in[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t) (hi << 4 | lo);
	}
	return true;
}

static void
id_hex(const uint8_t id[CRYPT_KEY_ID_SIZE], char out[2 * CRYPT_KEY_ID_SIZE + 1])
{
	hex_encode(id, CRYPT_KEY_ID_SIZE, out);
}

void
crypt_key_id(const uint8_t key[CRYPT_KEY_SIZE], uint8_t id[CRYPT_KEY_ID_SIZE])
{
	static const char label[] = "backstop key id";
	uint8_t mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;

	HMAC(EVP_sha256(), key, CRYPT_KEY_SIZE, (const uint8_t *) label, sizeof(label) - 1, mac, &maclen);
	memcpy(id, mac, CRYPT_KEY_ID_SIZE);
	OPENSSL_cleanse(mac, sizeof(mac));
}

int
crypt_derive_key(const char *passphrase, size_t len, const uint8_t *salt, size_t salt_len,
				 int log2_n, int r, int p, uint8_t key[CRYPT_KEY_SIZE], bs_error *err)
{
	uint64_t n;
	uint64_t mem;

	if (log2_n < 10 || log2_n > 24 || r < 1 || r > 32 || p < 1 || p > 16)
		return error_set(err, ERRCODE_DATA_CORRUPTED,
						 "encryption.json: scrypt parameters out of range (log2_n %d, r %d, p %d)", log2_n, r, p);
	n = UINT64_C(1) << log2_n;
	mem = UINT64_C(128) * (uint64_t) r * n * (uint64_t) p;
	if (mem > SCRYPT_MAX_MEM)
		return error_set(err, ERRCODE_DATA_CORRUPTED,
						 "encryption.json: scrypt parameters need more than 1 GiB of memory");
	if (EVP_PBE_scrypt(passphrase, len, salt, salt_len, n, (uint64_t) r, (uint64_t) p,
					   mem + (UINT64_C(1) << 20), key, CRYPT_KEY_SIZE) != 1)
		return error_set(err, ERRCODE_INTERNAL, "scrypt key derivation failed");
	return BS_OK;
}

int
crypt_header_parse(const uint8_t *buf, size_t len, const char *key, crypt_header *h, bs_error *err)
{
	if (len < CRYPT_HEADER_SIZE)
		return error_set(err, ERRCODE_DATA_CORRUPTED,
						 "object \"%s\" is truncated: %zu bytes, shorter than the encryption header", key, len);
	if (memcmp(buf, CRYPT_MAGIC, 8) != 0)
		return error_set(err, ERRCODE_DATA_CORRUPTED,
						 "object \"%s\" is not encrypted (no " CRYPT_MAGIC " header) although the archive is: "
						 "written without the key, or tampered", key);
	if (buf[8] != CRYPT_ALG_AES256GCM)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "object \"%s\": unknown encryption algorithm %u",
						 key, (unsigned) buf[8]);
	if (buf[9] != 0 || buf[10] != 0 || buf[11] != 0)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "object \"%s\": reserved encryption header bytes are not zero", key);
	h->alg = buf[8];
	memcpy(h->key_id, buf + 12, CRYPT_KEY_ID_SIZE);
	memcpy(h->nonce, buf + 12 + CRYPT_KEY_ID_SIZE, CRYPT_NONCE_SIZE);
	return BS_OK;
}

static void
configured_ids(const crypt_storage *cs, strbuf *sb)
{
	for (int i = 0; i < cs->nkeys; i++)
	{
		char hex[2 * CRYPT_KEY_ID_SIZE + 1];

		id_hex(cs->keys[i].id, hex);
		strbuf_printf(sb, "%s%s", i ? ", " : "", hex);
	}
	if (cs->nkeys == 0)
		strbuf_append_str(sb, "none");
}

static const crypt_key_entry *
find_key(const crypt_storage *cs, const uint8_t id[CRYPT_KEY_ID_SIZE])
{
	for (int i = 0; i < cs->nkeys; i++)
		if (memcmp(cs->keys[i].id, id, CRYPT_KEY_ID_SIZE) == 0)
			return &cs->keys[i];
	return NULL;
}

static void
add_key(crypt_storage *cs, const uint8_t key[CRYPT_KEY_SIZE], bool current)
{
	crypt_key_entry e;

	memcpy(e.key, key, CRYPT_KEY_SIZE);
	crypt_key_id(e.key, e.id);
	if (find_key(cs, e.id) != NULL && !current)
	{
		OPENSSL_cleanse(&e, sizeof(e));
		return;					/* an old key listed twice, or equal to the current one */
	}
	cs->keys = xrealloc(cs->keys, (size_t) (cs->nkeys + 1) * sizeof(crypt_key_entry));
	if (current)
	{
		memmove(cs->keys + 1, cs->keys, (size_t) cs->nkeys * sizeof(crypt_key_entry));
		cs->keys[0] = e;
		cs->has_current = true;
	}
	else
		cs->keys[cs->nkeys] = e;
	cs->nkeys++;
	OPENSSL_cleanse(&e, sizeof(e));
}

/* ---------- sealing ---------- */

/* Start a seal: a fresh nonce, the header, and the cipher keyed with the current key, the
 * header and the object's key as associated data. */
static EVP_CIPHER_CTX *
seal_begin(const crypt_storage *cs, const char *key, uint8_t header[CRYPT_HEADER_SIZE], bs_error *err)
{
	EVP_CIPHER_CTX *ctx;
	int outl;

	memset(header, 0, CRYPT_HEADER_SIZE);
	memcpy(header, CRYPT_MAGIC, 8);
	header[8] = CRYPT_ALG_AES256GCM;
	memcpy(header + 12, cs->keys[0].id, CRYPT_KEY_ID_SIZE);
	if (RAND_bytes(header + 12 + CRYPT_KEY_ID_SIZE, CRYPT_NONCE_SIZE) != 1)
	{
		error_set(err, ERRCODE_INTERNAL, "could not draw a random nonce");
		return NULL;
	}
	ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL ||
		EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CRYPT_NONCE_SIZE, NULL) != 1 ||
		EVP_EncryptInit_ex(ctx, NULL, NULL, cs->keys[0].key, header + 12 + CRYPT_KEY_ID_SIZE) != 1 ||
		EVP_EncryptUpdate(ctx, NULL, &outl, header, CRYPT_HEADER_SIZE) != 1 ||
		EVP_EncryptUpdate(ctx, NULL, &outl, (const uint8_t *) key, (int) strlen(key)) != 1)
	{
		EVP_CIPHER_CTX_free(ctx);
		error_set(err, ERRCODE_INTERNAL, "could not start AES-256-GCM encryption");
		return NULL;
	}
	return ctx;
}

static int
seal_update(EVP_CIPHER_CTX *ctx, const uint8_t *in, size_t len, uint8_t *out, bs_error *err)
{
	int outl = 0;

	if (EVP_EncryptUpdate(ctx, out, &outl, in, (int) len) != 1 || (size_t) outl != len)
		return error_set(err, ERRCODE_INTERNAL, "AES-256-GCM encryption failed");
	return BS_OK;
}

static int
seal_finish(EVP_CIPHER_CTX *ctx, uint8_t tag[CRYPT_TAG_SIZE], bs_error *err)
{
	uint8_t dummy[32];
	int outl = 0;

	if (EVP_EncryptFinal_ex(ctx, dummy, &outl) != 1 || outl != 0 ||
		EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CRYPT_TAG_SIZE, tag) != 1)
		return error_set(err, ERRCODE_INTERNAL, "AES-256-GCM encryption failed");
	return BS_OK;
}

/* The stored form of a whole buffer. */
static int
seal_all(const crypt_storage *cs, const char *key, const void *data, size_t len, strbuf *out, bs_error *err)
{
	uint8_t header[CRYPT_HEADER_SIZE];
	uint8_t tag[CRYPT_TAG_SIZE];
	EVP_CIPHER_CTX *ctx;
	int rc;

	if ((uint64_t) len > GCM_MAX_BYTES)
		return error_set(err, ERRCODE_OUT_OF_RANGE, "object \"%s\" is too large to encrypt", key);
	if ((ctx = seal_begin(cs, key, header, err)) == NULL)
		return BS_ERR;
	strbuf_reset(out);
	strbuf_reserve(out, len + CRYPT_OVERHEAD + 1);
	strbuf_append(out, header, CRYPT_HEADER_SIZE);
	rc = len == 0 ? BS_OK : seal_update(ctx, data, len, (uint8_t *) out->data + out->len, err);
	if (rc == BS_OK)
	{
		out->len += len;
		rc = seal_finish(ctx, tag, err);
	}
	if (rc == BS_OK)
		strbuf_append(out, tag, CRYPT_TAG_SIZE);
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

/* ---------- opening (streaming) ---------- */

typedef struct crypt_reader
{
	const crypt_storage *cs;
	const char *key;
	uint8_t header[CRYPT_HEADER_SIZE];
	size_t header_len;
	uint8_t tail[CRYPT_TAG_SIZE];	/* the last bytes seen: perhaps the tag */
	size_t tail_len;
	uint64_t total;
	EVP_CIPHER_CTX *ctx;
	uint8_t key_id[CRYPT_KEY_ID_SIZE];
	storage_sink sink;
	void *sink_ctx;
	bool sink_failed;			/* the consumer found the content corrupt: see reader_finish */
	bs_error sink_err;
	uint8_t buf[PIECE];
} crypt_reader;

static int
reader_start(crypt_reader *r, bs_error *err)
{
	crypt_header h;
	const crypt_key_entry *k;
	int outl;

	if (crypt_header_parse(r->header, CRYPT_HEADER_SIZE, r->key, &h, err) != BS_OK)
		return BS_ERR;
	memcpy(r->key_id, h.key_id, CRYPT_KEY_ID_SIZE);
	if ((k = find_key(r->cs, h.key_id)) == NULL)
	{
		char hex[2 * CRYPT_KEY_ID_SIZE + 1];
		strbuf ids = STRBUF_INIT;

		id_hex(h.key_id, hex);
		configured_ids(r->cs, &ids);
		error_set(err, ERRCODE_ENCRYPTION_KEY,
				  "object \"%s\" is encrypted with key id %s, which is not configured (configured: %s): "
				  "give its key with encryption_old_key_file or encryption_old_passphrase_file", r->key, hex, ids.data);
		strbuf_free(&ids);
		return BS_ERR;
	}
	r->ctx = EVP_CIPHER_CTX_new();
	if (r->ctx == NULL ||
		EVP_DecryptInit_ex(r->ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
		EVP_CIPHER_CTX_ctrl(r->ctx, EVP_CTRL_GCM_SET_IVLEN, CRYPT_NONCE_SIZE, NULL) != 1 ||
		EVP_DecryptInit_ex(r->ctx, NULL, NULL, k->key, h.nonce) != 1 ||
		EVP_DecryptUpdate(r->ctx, NULL, &outl, r->header, CRYPT_HEADER_SIZE) != 1 ||
		EVP_DecryptUpdate(r->ctx, NULL, &outl, (const uint8_t *) r->key, (int) strlen(r->key)) != 1)
		return error_set(err, ERRCODE_INTERNAL, "could not start AES-256-GCM decryption");
	return BS_OK;
}

static int
reader_open_bytes(crypt_reader *r, const uint8_t *p, size_t n, bs_error *err)
{
	while (n > 0)
	{
		size_t piece = n < PIECE ? n : PIECE;
		int outl = 0;

		if (EVP_DecryptUpdate(r->ctx, r->buf, &outl, p, (int) piece) != 1 || (size_t) outl != piece)
			return error_set(err, ERRCODE_INTERNAL, "AES-256-GCM decryption failed");
		if (r->sink && !r->sink_failed && r->sink(r->sink_ctx, r->buf, piece, err) != BS_OK)
		{
			/* Content judged corrupt before the tag is checked: read on to the tag, so that
			 * tampering is reported as such rather than as whatever it broke downstream. */
			if (strcmp(err->code, ERRCODE_DATA_CORRUPTED) != 0)
				return BS_ERR;
			r->sink_failed = true;
			r->sink_err = *err;
			error_clear(err);
		}
		p += piece;
		n -= piece;
	}
	return BS_OK;
}

static int
reader_write(void *ctx, const void *data, size_t len, bs_error *err)
{
	crypt_reader *r = ctx;
	const uint8_t *p = data;
	size_t out_n,
		from_tail,
		from_data;

	r->total += len;
	if (r->total > GCM_MAX_BYTES + CRYPT_OVERHEAD)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "object \"%s\" is larger than one encrypted object can be", r->key);
	if (r->header_len < CRYPT_HEADER_SIZE)
	{
		if (!buf_fill(r->header, CRYPT_HEADER_SIZE, &r->header_len, &p, &len))
			return BS_OK;
		if (reader_start(r, err) != BS_OK)
			return BS_ERR;
	}
	/* Hold back the last CRYPT_TAG_SIZE bytes: they may be the tag. */
	if (r->tail_len + len <= CRYPT_TAG_SIZE)
	{
		memcpy(r->tail + r->tail_len, p, len);
		r->tail_len += len;
		return BS_OK;
	}
	out_n = r->tail_len + len - CRYPT_TAG_SIZE;
	from_tail = out_n < r->tail_len ? out_n : r->tail_len;
	from_data = out_n - from_tail;
	if (from_tail > 0)
	{
		if (reader_open_bytes(r, r->tail, from_tail, err) != BS_OK)
			return BS_ERR;
		memmove(r->tail, r->tail + from_tail, r->tail_len - from_tail);
		r->tail_len -= from_tail;
	}
	if (from_data > 0 && reader_open_bytes(r, p, from_data, err) != BS_OK)
		return BS_ERR;
	memcpy(r->tail + r->tail_len, p + from_data, len - from_data);
	r->tail_len += len - from_data;
	return BS_OK;
}

static int
reader_finish(crypt_reader *r, bs_error *err)
{
	uint8_t dummy[32];
	int outl = 0;

	if (r->header_len < CRYPT_HEADER_SIZE || r->tail_len < CRYPT_TAG_SIZE)
		return error_set(err, ERRCODE_DATA_CORRUPTED,
						 "object \"%s\" is truncated: %llu bytes, shorter than the encryption header and tag",
						 r->key, (unsigned long long) r->total);
	if (EVP_CIPHER_CTX_ctrl(r->ctx, EVP_CTRL_GCM_SET_TAG, CRYPT_TAG_SIZE, r->tail) != 1 ||
		EVP_DecryptFinal_ex(r->ctx, dummy, &outl) != 1)
	{
		char hex[2 * CRYPT_KEY_ID_SIZE + 1];

		id_hex(r->key_id, hex);
		return error_set(err, ERRCODE_DATA_CORRUPTED,
						 "object \"%s\" failed authentication: wrong key or tampered (key id %s)", r->key, hex);
	}
	if (r->sink_failed)
	{
		*err = r->sink_err;
		return BS_ERR;
	}
	return BS_OK;
}

static crypt_reader *
reader_new(const crypt_storage *cs, const char *key, storage_sink sink, void *ctx)
{
	crypt_reader *r = xcalloc(1, sizeof(*r));

	r->cs = cs;
	r->key = key;
	r->sink = sink;
	r->sink_ctx = ctx;
	return r;
}

static void
reader_free(crypt_reader *r)
{
	if (r == NULL)
		return;
	EVP_CIPHER_CTX_free(r->ctx);
	OPENSSL_cleanse(r->buf, sizeof(r->buf));
	free(r);
}

static int
open_all(const crypt_storage *cs, const char *key, const void *data, size_t len, strbuf *out, bs_error *err)
{
	crypt_reader *r = reader_new(cs, key, storage_sink_strbuf, out);
	int rc;

	strbuf_reset(out);
	rc = reader_write(r, data, len, err);
	if (rc == BS_OK)
		rc = reader_finish(r, err);
	reader_free(r);
	if (rc != BS_OK)
		strbuf_reset(out);
	return rc;
}

/* ---------- without a key: refuse encrypted objects ---------- */

typedef struct sniffer
{
	const crypt_storage *cs;
	const char *key;
	uint8_t first[8];
	size_t n;
	bool passed;
	storage_sink sink;
	void *sink_ctx;
} sniffer;

static int
encrypted_without_key(const crypt_storage *cs, const char *key, bs_error *err)
{
	return error_set(err, ERRCODE_ENCRYPTION_KEY,
					 "the archive at %s is encrypted (object \"%s\" is): configure its key "
					 "(encryption_key_file, encryption_passphrase_file or BACKSTOP_ENCRYPTION_PASSPHRASE)",
					 storage_describe(&cs->base), key);
}

static int
sniff_write(void *ctx, const void *data, size_t len, bs_error *err)
{
	sniffer *s = ctx;
	const uint8_t *p = data;

	if (!s->passed)
	{
		if (!buf_fill(s->first, sizeof(s->first), &s->n, &p, &len))
			return BS_OK;
		if (memcmp(s->first, CRYPT_MAGIC, 8) == 0)
			return encrypted_without_key(s->cs, s->key, err);
		s->passed = true;
		if (s->sink && s->sink(s->sink_ctx, s->first, s->n, err) != BS_OK)
			return BS_ERR;
	}
	if (len > 0 && s->sink)
		return s->sink(s->sink_ctx, p, len, err);
	return BS_OK;
}

/* Without a key, before a ranged read: fails with ERRCODE_ENCRYPTION_KEY if the object starts
 * with the encryption header.  An object shorter than the magic is not encrypted (the range
 * read after this reports what it finds); a missing object is reported as missing. */
static int
refuse_encrypted(crypt_storage *cs, const char *key, bs_error *err)
{
	sniffer s = {cs, key, {0}, 0, false, NULL, NULL};

	for (int i = 0; i < PLAIN_SEEN_MAX; i++)
		if (cs->plain_seen[i] && strcmp(cs->plain_seen[i], key) == 0)
			return BS_OK;
	if (storage_get(cs->inner, key, 0, sizeof(s.first), sniff_write, &s, err) != BS_OK &&
		strcmp(err->code, ERRCODE_OUT_OF_RANGE) != 0)
		return BS_ERR;
	error_clear(err);
	free(cs->plain_seen[cs->plain_next]);
	cs->plain_seen[cs->plain_next] = xstrdup(key);
	cs->plain_next = (cs->plain_next + 1) % PLAIN_SEEN_MAX;
	return BS_OK;
}

/* ---------- encryption.json ---------- */

static int
not_initialised(const crypt_storage *cs, bs_error *err)
{
	return error_set(err, ERRCODE_ENCRYPTION_KEY,
					 "the archive at %s is not encrypted (it has no " CRYPT_CONFIG_KEY ") but an encryption key "
					 "is configured: remove the encryption options to read it; an encrypted archive is "
					 "created by the archiver's first start in an empty location", storage_describe(&cs->base));
}

static int
config_missing(const crypt_storage *cs, const char *key, bs_error *err)
{
	return error_set(err, ERRCODE_DATA_CORRUPTED,
					 "the archive at %s holds encrypted objects (\"%s\") but no " CRYPT_CONFIG_KEY
					 ": it was deleted; restore it (from a backup, or another copy of the archive)",
					 storage_describe(&cs->base), key);
}

/* A read with a key from an archive without encryption.json: the object as it is says whether
 * the archive is plaintext or lost its encryption.json; a missing object stays missing. */
static int
get_uninitialised(const crypt_storage *cs, const char *key, bs_error *err)
{
	sniffer s = {cs, key, {0}, 0, false, NULL, NULL};

	if (storage_get(cs->inner, key, 0, 0, sniff_write, &s, err) == BS_OK)
		return not_initialised(cs, err);
	if (strcmp(err->code, ERRCODE_ENCRYPTION_KEY) == 0)
		return config_missing(cs, key, err);
	return BS_ERR;
}

static int
bad_config(const char *what, bs_error *err)
{
	return error_set(err, ERRCODE_DATA_CORRUPTED, CRYPT_CONFIG_KEY ": %s", what);
}

static int
parse_config(crypt_storage *cs, const strbuf *text, bs_error *err)
{
	json_error_t jerr;
	json_t *root = json_loadb(text->data, text->len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *kdf, *ids, *v;
	const char *salt;
	int rc = BS_ERR;

	if (root == NULL || !json_is_object(root))
	{
		json_decref(root);
		return bad_config("not a JSON object", err);
	}
	v = json_object_get(root, "format");
	if (!json_is_integer(v) || json_integer_value(v) != 1)
	{
		bad_config("member \"format\" must be 1 (written by a newer Backstop?)", err);
		goto out;
	}
	v = json_object_get(root, "cipher");
	if (!json_is_string(v) || strcmp(json_string_value(v), "aes-256-gcm") != 0)
	{
		bad_config("member \"cipher\" must be \"aes-256-gcm\"", err);
		goto out;
	}
	kdf = json_object_get(root, "kdf");
	if (!json_is_object(kdf) || !json_is_string(json_object_get(kdf, "name")) ||
		strcmp(json_string_value(json_object_get(kdf, "name")), "scrypt") != 0 ||
		!json_is_string(json_object_get(kdf, "salt")) ||
		!json_is_integer(json_object_get(kdf, "log2_n")) || !json_is_integer(json_object_get(kdf, "r")) ||
		!json_is_integer(json_object_get(kdf, "p")))
	{
		bad_config("member \"kdf\" must be {name: \"scrypt\", salt, log2_n, r, p}", err);
		goto out;
	}
	salt = json_string_value(json_object_get(kdf, "salt"));
	if (!hex_decode(salt, strlen(salt), cs->salt, SALT_SIZE))
	{
		bad_config("member \"kdf.salt\" must be 32 hex digits", err);
		goto out;
	}
	{
		json_int_t n = json_integer_value(json_object_get(kdf, "log2_n"));
		json_int_t r = json_integer_value(json_object_get(kdf, "r"));
		json_int_t p = json_integer_value(json_object_get(kdf, "p"));

		if (n < 10 || n > 24 || r < 1 || r > 32 || p < 1 || p > 16)
		{
			bad_config("scrypt parameters out of range", err);
			goto out;
		}
		cs->log2_n = (int) n;
		cs->r = (int) r;
		cs->p = (int) p;
	}
	ids = json_object_get(root, "key_ids");
	if (!json_is_array(ids) || json_array_size(ids) < 1 || json_array_size(ids) > MAX_ARCHIVE_KEYS)
	{
		bad_config("member \"key_ids\" must be an array of 1 to 64 key ids", err);
		goto out;
	}
	free(cs->archive_ids);
	cs->narchive_ids = 0;
	cs->archive_ids = xcalloc(json_array_size(ids), CRYPT_KEY_ID_SIZE);
	for (size_t i = 0; i < json_array_size(ids); i++)
	{
		const char *s = json_string_value(json_array_get(ids, i));

		if (s == NULL || !hex_decode(s, strlen(s), cs->archive_ids[i], CRYPT_KEY_ID_SIZE))
		{
			bad_config("member \"key_ids\" holds a value that is not 16 hex digits", err);
			goto out;
		}
		cs->narchive_ids++;
	}
	rc = BS_OK;
out:
	json_decref(root);
	return rc;
}

static bool
archive_has_id(const crypt_storage *cs, const uint8_t id[CRYPT_KEY_ID_SIZE])
{
	for (int i = 0; i < cs->narchive_ids; i++)
		if (memcmp(cs->archive_ids[i], id, CRYPT_KEY_ID_SIZE) == 0)
			return true;
	return false;
}

static void
free_old_passphrases(crypt_storage *cs)
{
	for (int i = 0; i < cs->nold_passphrases; i++)
	{
		OPENSSL_cleanse(cs->old_passphrases[i], cs->old_passphrase_lens[i]);
		free(cs->old_passphrases[i]);
	}
	free(cs->old_passphrases);
	free(cs->old_passphrase_lens);
	cs->old_passphrases = NULL;
	cs->old_passphrase_lens = NULL;
	cs->nold_passphrases = 0;
}

/* The keys of the passphrases (current and old), once the archive's salt is known. */
static int
derive_pending(crypt_storage *cs, bs_error *err)
{
	uint8_t key[CRYPT_KEY_SIZE];

	for (int i = 0; i < cs->nold_passphrases; i++)
	{
		if (crypt_derive_key(cs->old_passphrases[i], cs->old_passphrase_lens[i], cs->salt, SALT_SIZE, cs->log2_n,
							 cs->r, cs->p, key, err) != BS_OK)
			return BS_ERR;
		add_key(cs, key, false);
	}
	free_old_passphrases(cs);
	if (cs->passphrase == NULL)
	{
		OPENSSL_cleanse(key, sizeof(key));
		return BS_OK;
	}
	if (crypt_derive_key(cs->passphrase, cs->passphrase_len, cs->salt, SALT_SIZE, cs->log2_n, cs->r, cs->p,
						 key, err) != BS_OK)
		return BS_ERR;
	add_key(cs, key, true);
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(cs->passphrase, cs->passphrase_len);
	free(cs->passphrase);
	cs->passphrase = NULL;
	return BS_OK;
}

/* Read encryption.json: *found false when there is none. */
static int
load_config(crypt_storage *cs, bool *found, bs_error *err)
{
	strbuf text = STRBUF_INIT;
	char *tag = NULL;
	bool match = false;

	*found = false;
	if (storage_get_tagged(cs->inner, CRYPT_CONFIG_KEY, &text, &tag, err) != BS_OK)
	{
		strbuf_free(&text);
		if (strcmp(err->code, ERRCODE_NOT_FOUND) == 0)
		{
			error_clear(err);
			return BS_OK;
		}
		return error_prefix(err, "could not read " CRYPT_CONFIG_KEY);
	}
	*found = true;
	free(cs->config_tag);
	cs->config_tag = tag;
	if (parse_config(cs, &text, err) != BS_OK || derive_pending(cs, err) != BS_OK)
	{
		strbuf_free(&text);
		return BS_ERR;
	}
	strbuf_free(&text);
	/* A key check before anything else: a wrong key is a clear error, not a failed object. */
	for (int i = 0; i < cs->nkeys && !match; i++)
		match = archive_has_id(cs, cs->keys[i].id);
	if (!match)
	{
		strbuf have = STRBUF_INIT;
		strbuf want = STRBUF_INIT;

		configured_ids(cs, &have);
		for (int i = 0; i < cs->narchive_ids; i++)
		{
			char hex[2 * CRYPT_KEY_ID_SIZE + 1];

			id_hex(cs->archive_ids[i], hex);
			strbuf_printf(&want, "%s%s", i ? ", " : "", hex);
		}
		error_set(err, ERRCODE_ENCRYPTION_KEY,
				  "wrong encryption key for the archive at %s: its keys have ids %s, the configured ones %s "
				  "(check encryption_key_file, the passphrase, encryption_old_key_file, encryption_old_passphrase_file)",
				  storage_describe(&cs->base), want.data, have.data);
		strbuf_free(&have);
		strbuf_free(&want);
		return BS_ERR;
	}
	cs->state = CRYPT_ON;
	return BS_OK;
}

static char *
config_text(const crypt_storage *cs, const uint8_t *extra_id)
{
	char salt[2 * SALT_SIZE + 1];
	json_t *ids = json_array();
	json_t *root;
	char *text;

	hex_encode(cs->salt, SALT_SIZE, salt);
	for (int i = 0; i < cs->narchive_ids; i++)
	{
		char hex[2 * CRYPT_KEY_ID_SIZE + 1];

		id_hex(cs->archive_ids[i], hex);
		json_array_append_new(ids, json_string(hex));
	}
	if (extra_id)
	{
		char hex[2 * CRYPT_KEY_ID_SIZE + 1];

		id_hex(extra_id, hex);
		json_array_append_new(ids, json_string(hex));
	}
	root = json_pack("{s:i, s:s, s:{s:s, s:s, s:i, s:i, s:i}, s:o}",
					 "format", 1, "cipher", "aes-256-gcm",
					 "kdf", "name", "scrypt", "salt", salt, "log2_n", cs->log2_n, "r", cs->r, "p", cs->p,
					 "key_ids", ids);
	text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return text;
}

typedef struct nonempty_ctx
{
	char *first;
} nonempty_ctx;

static int
first_key_cb(void *ctx, const char *key, uint64_t size, bs_error *err)
{
	nonempty_ctx *n = ctx;

	(void) size;
	(void) err;
	if (n->first == NULL && strcmp(key, CRYPT_CONFIG_KEY) != 0)
		n->first = xstrdup(key);
	return BS_OK;
}

/* Write encryption.json into an empty archive (create only), then read it back: another
 * archiver may have raced us, and S3-compatible servers may ignore the condition. */
static int
create_config(crypt_storage *cs, bs_error *err)
{
	nonempty_ctx n = {NULL};
	char *text;
	bool found;
	int rc;

	if (storage_list(cs->inner, "", first_key_cb, &n, err) != BS_OK)
		return error_prefix(err, "could not list the archive");
	if (n.first)
	{
		if (get_uninitialised(cs, n.first, err) != BS_OK && strcmp(err->code, ERRCODE_ENCRYPTION_KEY) != 0)
		{
			free(n.first);
			return BS_ERR;
		}
		rc = error_set(err, ERRCODE_ENCRYPTION_KEY,
					   "the archive at %s holds objects (\"%s\") but is not encrypted: an existing plaintext "
					   "archive cannot be encrypted in place; archive into a new location, or remove the "
					   "encryption options", storage_describe(&cs->base), n.first);
		free(n.first);
		return rc;
	}
	if (RAND_bytes(cs->salt, SALT_SIZE) != 1)
		return error_set(err, ERRCODE_INTERNAL, "could not draw a random salt");
	cs->log2_n = SCRYPT_LOG2_N;
	cs->r = SCRYPT_R;
	cs->p = SCRYPT_P;
	if (derive_pending(cs, err) != BS_OK)
		return BS_ERR;
	free(cs->archive_ids);
	cs->archive_ids = NULL;
	cs->narchive_ids = 0;
	text = config_text(cs, cs->keys[0].id);
	rc = storage_put_if(cs->inner, CRYPT_CONFIG_KEY, text, strlen(text), NULL, err);
	free(text);
	if (rc != BS_OK && strcmp(err->code, ERRCODE_PRECONDITION) != 0)
		return error_prefix(err, "could not create " CRYPT_CONFIG_KEY);
	error_clear(err);
	if (load_config(cs, &found, err) != BS_OK)
		return BS_ERR;
	if (!found)
		return error_set(err, ERRCODE_STORAGE, CRYPT_CONFIG_KEY " is missing right after it was written");
	{
		char hex[2 * CRYPT_KEY_ID_SIZE + 1];

		id_hex(cs->keys[0].id, hex);
		log_info("encryption: the archive is encrypted with key id %s", hex);
	}
	return BS_OK;
}

/* Record a new current key (rotation) in encryption.json, under the version read. */
static int
add_current_id(crypt_storage *cs, bs_error *err)
{
	char hex[2 * CRYPT_KEY_ID_SIZE + 1];
	char *text;
	bool found;
	int rc;

	if (cs->narchive_ids >= MAX_ARCHIVE_KEYS)
		return error_set(err, ERRCODE_ENCRYPTION_KEY, CRYPT_CONFIG_KEY " already lists %d keys", MAX_ARCHIVE_KEYS);
	text = config_text(cs, cs->keys[0].id);
	rc = storage_put_if(cs->inner, CRYPT_CONFIG_KEY, text, strlen(text), cs->config_tag, err);
	free(text);
	if (rc != BS_OK && strcmp(err->code, ERRCODE_PRECONDITION) != 0)
		return error_prefix(err, "could not update " CRYPT_CONFIG_KEY);
	error_clear(err);
	if (load_config(cs, &found, err) != BS_OK)
		return BS_ERR;
	id_hex(cs->keys[0].id, hex);
	if (!found || !archive_has_id(cs, cs->keys[0].id))
		return error_set(err, ERRCODE_PRECONDITION,
						 "could not record key id %s in " CRYPT_CONFIG_KEY ": it changed meanwhile; start again", hex);
	log_info("encryption: new objects are encrypted with key id %s (recorded in " CRYPT_CONFIG_KEY ")", hex);
	return BS_OK;
}

int
storage_crypt_prepare_write(storage *st, bs_error *err)
{
	crypt_storage *cs;
	bool found;

	if (st->ops != &crypt_ops)
		return BS_OK;
	cs = (crypt_storage *) st;
	if (cs->state == CRYPT_OFF)
	{
		bool exists = false;

		if (storage_head(cs->inner, CRYPT_CONFIG_KEY, &exists, NULL, err) != BS_OK)
			return error_prefix(err, "could not read " CRYPT_CONFIG_KEY);
		if (exists)
			return error_set(err, ERRCODE_ENCRYPTION_KEY,
							 "the archive at %s is encrypted (it has " CRYPT_CONFIG_KEY "): configure its key "
							 "(encryption_key_file, encryption_passphrase_file or BACKSTOP_ENCRYPTION_PASSPHRASE)",
							 storage_describe(st));
		return BS_OK;
	}
	if (!cs->has_current && cs->passphrase == NULL)
		return error_set(err, ERRCODE_ENCRYPTION_KEY,
						 "only old encryption keys are configured: writing needs the current key "
						 "(encryption_key_file or a passphrase)");
	if (cs->state == CRYPT_UNINIT)
	{
		if (load_config(cs, &found, err) != BS_OK)
			return BS_ERR;
		if (!found)
			return create_config(cs, err);
	}
	/* Another handle of the same archiver may have recorded the key meanwhile. */
	if (!archive_has_id(cs, cs->keys[0].id) && load_config(cs, &found, err) != BS_OK)
		return BS_ERR;
	if (!archive_has_id(cs, cs->keys[0].id))
		return add_current_id(cs, err);
	return BS_OK;
}

bool
storage_crypt_active(const storage *st)
{
	return st->ops == &crypt_ops && ((const crypt_storage *) st)->state == CRYPT_ON;
}

void
storage_crypt_unit_access(storage *st, storage **raw, uint8_t (**keys)[CRYPT_KEY_SIZE], int *nkeys)
{
	const crypt_storage *cs = (const crypt_storage *) st;

	*raw = st;
	*keys = NULL;
	*nkeys = 0;
	if (!storage_crypt_active(st))
		return;
	*raw = cs->inner;
	*keys = xcalloc((size_t) cs->nkeys + 1, CRYPT_KEY_SIZE);
	for (int i = 0; i < cs->nkeys; i++)
		memcpy((*keys)[i], cs->keys[i].key, CRYPT_KEY_SIZE);
	*nkeys = cs->nkeys;
}

void
storage_crypt_unit_keys_free(uint8_t (*keys)[CRYPT_KEY_SIZE], int nkeys)
{
	if (keys == NULL)
		return;
	OPENSSL_cleanse(keys, (size_t) (nkeys + 1) * CRYPT_KEY_SIZE);
	free(keys);
}

/* ---------- the driver ---------- */

static int
crypt_writer_open(storage *st, const char *key, storage_writer **out, bs_error *err)
{
	crypt_storage *cs = (crypt_storage *) st;
	crypt_writer *w;
	uint8_t header[CRYPT_HEADER_SIZE];

	if (cs->state == CRYPT_OFF)
		return storage_writer_open(cs->inner, key, out, err);
	if (cs->state == CRYPT_UNINIT)
		return not_initialised(cs, err);
	if (!cs->has_current)
		return error_set(err, ERRCODE_ENCRYPTION_KEY, "no current encryption key is configured: cannot write \"%s\"", key);
	w = xcalloc(1, sizeof(*w));
	w->base.st = st;
	if ((w->ctx = seal_begin(cs, key, header, err)) == NULL)
	{
		free(w);
		return BS_ERR;
	}
	if (storage_writer_open(cs->inner, key, &w->inner, err) != BS_OK)
	{
		EVP_CIPHER_CTX_free(w->ctx);
		free(w);
		return BS_ERR;
	}
	if (storage_writer_write(w->inner, header, CRYPT_HEADER_SIZE, err) != BS_OK)
	{
		storage_writer_abort(w->inner);
		EVP_CIPHER_CTX_free(w->ctx);
		free(w);
		return BS_ERR;
	}
	w->buf = xmalloc(PIECE);
	*out = &w->base;
	return BS_OK;
}

static int
crypt_writer_write(storage_writer *base, const void *data, size_t len, bs_error *err)
{
	crypt_writer *w = (crypt_writer *) base;
	const uint8_t *p = data;

	if (w->len + len > GCM_MAX_BYTES)
		return error_set(err, ERRCODE_OUT_OF_RANGE, "object too large to encrypt under one nonce");
	w->len += len;
	while (len > 0)
	{
		size_t piece = len < PIECE ? len : PIECE;

		if (seal_update(w->ctx, p, piece, w->buf, err) != BS_OK ||
			storage_writer_write(w->inner, w->buf, piece, err) != BS_OK)
			return BS_ERR;
		p += piece;
		len -= piece;
	}
	return BS_OK;
}

static void
crypt_writer_free(crypt_writer *w)
{
	EVP_CIPHER_CTX_free(w->ctx);
	if (w->buf)
		OPENSSL_cleanse(w->buf, PIECE);
	free(w->buf);
	free(w);
}

static int
crypt_writer_commit(storage_writer *base, bs_error *err)
{
	crypt_writer *w = (crypt_writer *) base;
	uint8_t tag[CRYPT_TAG_SIZE];
	int rc;

	if (seal_finish(w->ctx, tag, err) != BS_OK ||
		storage_writer_write(w->inner, tag, CRYPT_TAG_SIZE, err) != BS_OK)
	{
		storage_writer_abort(w->inner);
		crypt_writer_free(w);
		return BS_ERR;
	}
	rc = storage_writer_commit(w->inner, err);
	crypt_writer_free(w);
	return rc;
}

static void
crypt_writer_abort(storage_writer *base)
{
	crypt_writer *w = (crypt_writer *) base;

	storage_writer_abort(w->inner);
	crypt_writer_free(w);
}

static int
crypt_get(storage *st, const char *key, uint64_t offset, uint64_t length,
		  storage_sink sink, void *ctx, bs_error *err)
{
	crypt_storage *cs = (crypt_storage *) st;
	int rc;

	if (cs->state == CRYPT_OFF)
	{
		sniffer s = {cs, key, {0}, 0, false, sink, ctx};

		/* A range that does not start with the header (or ends inside it) cannot show it: the
		 * header is read first. */
		if (offset > 0 || (length > 0 && length < sizeof(s.first)))
		{
			if (refuse_encrypted(cs, key, err) != BS_OK)
				return BS_ERR;
			return storage_get(cs->inner, key, offset, length, sink, ctx, err);
		}
		rc = storage_get(cs->inner, key, offset, length, sniff_write, &s, err);
		if (rc == BS_OK && !s.passed && s.n > 0 && sink)
			rc = sink(ctx, s.first, s.n, err);
		return rc;
	}
	if (cs->state == CRYPT_UNINIT)
		return get_uninitialised(cs, key, err);
	if (offset != 0 || length != 0)
		return error_set(err, ERRCODE_INVALID_PARAMETER,
						 "cannot read bytes %llu+%llu of \"%s\": the archive is encrypted and its objects "
						 "are sealed whole (one AES-GCM tag over the object), so they are read whole only",
						 (unsigned long long) offset, (unsigned long long) length, key);
	{
		crypt_reader *r = reader_new(cs, key, sink, ctx);

		rc = storage_get(cs->inner, key, 0, 0, reader_write, r, err);
		if (rc == BS_OK)
			rc = reader_finish(r, err);
		reader_free(r);
	}
	return rc;
}

static int
crypt_head(storage *st, const char *key, bool *exists, storage_stat *stat, bs_error *err)
{
	crypt_storage *cs = (crypt_storage *) st;

	if (storage_head(cs->inner, key, exists, stat, err) != BS_OK)
		return BS_ERR;
	/* Sizes are those of the content, as manifests record them. */
	if (cs->state == CRYPT_ON && *exists && strcmp(key, CRYPT_CONFIG_KEY) != 0)
		stat->size = stat->size >= CRYPT_OVERHEAD ? stat->size - CRYPT_OVERHEAD : 0;
	return BS_OK;
}

typedef struct list_ctx
{
	storage_list_cb cb;
	void *ctx;
} list_ctx;

static int
list_adjust(void *ctx, const char *key, uint64_t size, bs_error *err)
{
	list_ctx *l = ctx;

	if (strcmp(key, CRYPT_CONFIG_KEY) != 0)
		size = size >= CRYPT_OVERHEAD ? size - CRYPT_OVERHEAD : 0;
	return l->cb(l->ctx, key, size, err);
}

static int
crypt_list(storage *st, const char *prefix, const char *start_after,
		   storage_list_cb cb, void *ctx, bs_error *err)
{
	crypt_storage *cs = (crypt_storage *) st;
	list_ctx l = {cb, ctx};

	if (cs->state != CRYPT_ON)
		return storage_list_after(cs->inner, prefix, start_after, cb, ctx, err);
	return storage_list_after(cs->inner, prefix, start_after, list_adjust, &l, err);
}

static int
crypt_delete(storage *st, const char *key, bs_error *err)
{
	return storage_delete(((crypt_storage *) st)->inner, key, err);
}

static int
crypt_delete_many(storage *st, const char *const *keys, int n, bs_error *err)
{
	return storage_delete_many(((crypt_storage *) st)->inner, keys, n, err);
}

static int
crypt_get_tagged(storage *st, const char *key, strbuf *out, char **tag, bs_error *err)
{
	crypt_storage *cs = (crypt_storage *) st;
	strbuf stored = STRBUF_INIT;
	int rc;

	if (cs->state == CRYPT_UNINIT)
		return not_initialised(cs, err);
	if (storage_get_tagged(cs->inner, key, cs->state == CRYPT_OFF ? out : &stored, tag, err) != BS_OK)
	{
		strbuf_free(&stored);
		return BS_ERR;
	}
	if (cs->state == CRYPT_OFF)
	{
		if (out->len >= 8 && memcmp(out->data, CRYPT_MAGIC, 8) == 0)
			return encrypted_without_key(cs, key, err);
		return BS_OK;
	}
	rc = open_all(cs, key, stored.data, stored.len, out, err);
	strbuf_free(&stored);
	return rc;
}

static int
crypt_put_if(storage *st, const char *key, const void *data, size_t len, const char *tag, bs_error *err)
{
	crypt_storage *cs = (crypt_storage *) st;
	strbuf stored = STRBUF_INIT;
	int rc;

	if (cs->state == CRYPT_OFF)
		return storage_put_if(cs->inner, key, data, len, tag, err);
	if (cs->state == CRYPT_UNINIT)
		return not_initialised(cs, err);
	if (!cs->has_current)
		return error_set(err, ERRCODE_ENCRYPTION_KEY, "no current encryption key is configured: cannot write \"%s\"", key);
	rc = seal_all(cs, key, data, len, &stored, err);
	if (rc == BS_OK)
		rc = storage_put_if(cs->inner, key, stored.data, stored.len, tag, err);
	strbuf_free(&stored);
	return rc;
}

static void
crypt_free(crypt_storage *cs)
{
	if (cs->keys)
		OPENSSL_cleanse(cs->keys, (size_t) cs->nkeys * sizeof(crypt_key_entry));
	free(cs->keys);
	if (cs->passphrase)
		OPENSSL_cleanse(cs->passphrase, cs->passphrase_len);
	free(cs->passphrase);
	free_old_passphrases(cs);
	free(cs->archive_ids);
	free(cs->config_tag);
	for (int i = 0; i < PLAIN_SEEN_MAX; i++)
		free(cs->plain_seen[i]);
	free(cs);
}

static void
crypt_close(storage *st)
{
	crypt_storage *cs = (crypt_storage *) st;

	storage_close(cs->inner);
	crypt_free(cs);
}

static const storage_ops crypt_ops = {
	.writer_open = crypt_writer_open,
	.writer_write = crypt_writer_write,
	.writer_commit = crypt_writer_commit,
	.writer_abort = crypt_writer_abort,
	.get = crypt_get,
	.head = crypt_head,
	.list = crypt_list,
	.delete_key = crypt_delete,
	.delete_many = crypt_delete_many,
	.get_tagged = crypt_get_tagged,
	.put_if = crypt_put_if,
	.close = crypt_close,
};

/* ---------- keys from configuration ---------- */

/* A secret file: a regular file that others cannot read (as control_token_file). */
static int
read_secret_file(const char *path, const char *what, strbuf *out, bs_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	char buf[MAX_SECRET_FILE + 1];
	size_t len = 0;
	ssize_t n;

	if (fd < 0)
	{
		error_set_errno(err, errno, "could not open %s \"%s\"", what, path);
		memcpy(err->code, ERRCODE_ENCRYPTION_KEY, sizeof(err->code));
		return BS_ERR;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
	{
		close(fd);
		return error_set(err, ERRCODE_ENCRYPTION_KEY, "%s \"%s\" is not a regular file", what, path);
	}
	if (sb.st_mode & S_IRWXO)
	{
		close(fd);
		return error_set(err, ERRCODE_ENCRYPTION_KEY, "%s \"%s\" is accessible by others (mode %04o): chmod o-rwx it",
						 what, path, (unsigned) (sb.st_mode & 07777));
	}
	while (len < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - len)) != 0)
	{
		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			error_set_errno(err, errno, "could not read %s \"%s\"", what, path);
			memcpy(err->code, ERRCODE_ENCRYPTION_KEY, sizeof(err->code));
			close(fd);
			OPENSSL_cleanse(buf, sizeof(buf));
			return BS_ERR;
		}
		len += (size_t) n;
	}
	close(fd);
	if (len > MAX_SECRET_FILE)
	{
		OPENSSL_cleanse(buf, sizeof(buf));
		return error_set(err, ERRCODE_ENCRYPTION_KEY, "%s \"%s\" is larger than %d bytes", what, path, MAX_SECRET_FILE);
	}
	strbuf_append(out, buf, len);
	OPENSSL_cleanse(buf, sizeof(buf));
	return BS_OK;
}

/* 32 raw bytes, or 64 hex digits (openssl rand -hex 32), perhaps with a newline. */
static int
read_key_file(const char *path, const char *what, uint8_t key[CRYPT_KEY_SIZE], bs_error *err)
{
	strbuf sb = STRBUF_INIT;
	size_t len;
	int rc = BS_OK;

	if (read_secret_file(path, what, &sb, err) != BS_OK)
		return BS_ERR;
	len = sb.len;
	if (len == CRYPT_KEY_SIZE)
		memcpy(key, sb.data, CRYPT_KEY_SIZE);
	else
	{
		while (len > 0 && (sb.data[len - 1] == '\n' || sb.data[len - 1] == '\r' || sb.data[len - 1] == ' '))
			len--;
		if (!hex_decode(sb.data, len, key, CRYPT_KEY_SIZE))
			rc = error_set(err, ERRCODE_ENCRYPTION_KEY,
						   "%s \"%s\" must hold 32 bytes or 64 hex digits (e.g. openssl rand -hex 32)", what, path);
	}
	if (sb.data)
		OPENSSL_cleanse(sb.data, sb.len);
	strbuf_free(&sb);
	return rc;
}

static int
take_passphrase(const char *text, size_t len, const char *origin, char **out, size_t *out_len, bs_error *err)
{
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		len--;
	if (len < MIN_PASSPHRASE)
		return error_set(err, ERRCODE_ENCRYPTION_KEY, "%s: the passphrase is shorter than %d bytes", origin, MIN_PASSPHRASE);
	*out = xstrndup(text, len);
	*out_len = len;
	return BS_OK;
}

/* A passphrase file: one passphrase, a trailing newline ignored. */
static int
read_passphrase_file(const char *path, const char *what, char **out, size_t *out_len, bs_error *err)
{
	strbuf sb = STRBUF_INIT;
	int rc = read_secret_file(path, what, &sb, err);

	if (rc == BS_OK)
	{
		if (memchr(sb.data, '\0', sb.len) != NULL)
			rc = error_set(err, ERRCODE_ENCRYPTION_KEY, "%s \"%s\" holds a NUL byte", what, path);
		else
			rc = take_passphrase(sb.data, sb.len, what, out, out_len, err);
	}
	if (sb.data)
		OPENSSL_cleanse(sb.data, sb.len);
	strbuf_free(&sb);
	return rc;
}

static int
load_keys(crypt_storage *cs, const storage_crypt_options *o, bs_error *err)
{
	const char *key_file = o->key_file;
	const char *pass = o->passphrase;
	const char *pass_file = o->passphrase_file;
	const char *old = o->old_key_files;
	const char *old_pass = o->old_passphrase_files;
	uint8_t key[CRYPT_KEY_SIZE];
	int nsources = 0;

	if (key_file && *key_file == '\0')
		key_file = NULL;
	if (pass && *pass == '\0')
		pass = NULL;
	if (pass_file && *pass_file == '\0')
		pass_file = NULL;
	nsources = (key_file != NULL) + (pass != NULL) + (pass_file != NULL);
	if (nsources > 1)
		return error_set(err, ERRCODE_ENCRYPTION_KEY,
						 "set one of encryption_key_file, encryption_passphrase_file and encryption_passphrase");
	if (old && *old)
	{
		char *copy = xstrdup(old);
		char *save = NULL;

		for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		{
			while (*tok == ' ')
				tok++;
			for (char *e = tok + strlen(tok); e > tok && e[-1] == ' ';)
				*--e = '\0';
			if (*tok == '\0')
				continue;
			if (read_key_file(tok, "encryption_old_key_file", key, err) != BS_OK)
			{
				free(copy);
				return BS_ERR;
			}
			add_key(cs, key, false);
		}
		free(copy);
	}
	if (key_file)
	{
		if (read_key_file(key_file, "encryption_key_file", key, err) != BS_OK)
			return BS_ERR;
		add_key(cs, key, true);
	}
	else if (pass_file)
	{
		if (read_passphrase_file(pass_file, "encryption_passphrase_file", &cs->passphrase, &cs->passphrase_len,
								 err) != BS_OK)
			return BS_ERR;
	}
	else if (pass && take_passphrase(pass, strlen(pass), o->passphrase_origin ? o->passphrase_origin : "encryption_passphrase",
									 &cs->passphrase, &cs->passphrase_len, err) != BS_OK)
		return BS_ERR;
	if (old_pass && *old_pass)
	{
		char *copy = xstrdup(old_pass);
		char *save = NULL;

		for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		{
			char *text;
			size_t len;

			while (*tok == ' ')
				tok++;
			for (char *e = tok + strlen(tok); e > tok && e[-1] == ' ';)
				*--e = '\0';
			if (*tok == '\0')
				continue;
			if (read_passphrase_file(tok, "encryption_old_passphrase_file", &text, &len, err) != BS_OK)
			{
				free(copy);
				return BS_ERR;
			}
			cs->old_passphrases = xrealloc(cs->old_passphrases, (size_t) (cs->nold_passphrases + 1) * sizeof(char *));
			cs->old_passphrase_lens = xrealloc(cs->old_passphrase_lens,
											   (size_t) (cs->nold_passphrases + 1) * sizeof(size_t));
			cs->old_passphrases[cs->nold_passphrases] = text;
			cs->old_passphrase_lens[cs->nold_passphrases] = len;
			cs->nold_passphrases++;
		}
		free(copy);
	}
	OPENSSL_cleanse(key, sizeof(key));
	return BS_OK;
}

static crypt_storage *
crypt_new(storage *inner)
{
	crypt_storage *cs = xcalloc(1, sizeof(*cs));

	cs->base.ops = &crypt_ops;
	cs->base.description = xstrdup(storage_describe(inner));
	cs->inner = inner;
	cs->base.wrapped = inner;
	cs->state = CRYPT_OFF;
	return cs;
}

static int
crypt_fail(crypt_storage *cs, bs_error *err)
{
	storage_close(&cs->base);
	(void) err;
	return BS_ERR;
}

static int
crypt_start(crypt_storage *cs, bs_error *err)
{
	bool found;

	if (cs->nkeys == 0 && cs->passphrase == NULL && cs->nold_passphrases == 0)
		return BS_OK;			/* CRYPT_OFF */
	cs->state = CRYPT_UNINIT;
	return load_config(cs, &found, err);
}

int
storage_crypt_wrap(storage *inner, const storage_crypt_options *options, storage **out, bs_error *err)
{
	crypt_storage *cs = crypt_new(inner);

	*out = NULL;
	if (load_keys(cs, options, err) != BS_OK || crypt_start(cs, err) != BS_OK)
		return crypt_fail(cs, err);
	*out = &cs->base;
	return BS_OK;
}

int
storage_crypt_wrap_keys(storage *inner, const uint8_t *current, const uint8_t (*old)[CRYPT_KEY_SIZE],
						int nold, bool create, storage **out, bs_error *err)
{
	crypt_storage *cs = crypt_new(inner);

	*out = NULL;
	for (int i = 0; i < nold; i++)
		add_key(cs, old[i], false);
	if (current)
		add_key(cs, current, true);
	if (crypt_start(cs, err) != BS_OK || (create && storage_crypt_prepare_write(&cs->base, err) != BS_OK))
		return crypt_fail(cs, err);
	*out = &cs->base;
	return BS_OK;
}

/* ---------- buffers (fuzzing, tests) ---------- */

static crypt_storage *
buffer_keys(const uint8_t (*keys)[CRYPT_KEY_SIZE], int nkeys)
{
	crypt_storage *cs = xcalloc(1, sizeof(*cs));

	cs->state = CRYPT_ON;
	for (int i = 0; i < nkeys; i++)
		add_key(cs, keys[i], i == 0);
	return cs;
}

int
crypt_seal_buffer(const uint8_t key[CRYPT_KEY_SIZE], const char *objkey, const void *data, size_t len,
				  strbuf *out, bs_error *err)
{
	crypt_storage *cs = buffer_keys((const uint8_t (*)[CRYPT_KEY_SIZE]) key, 1);
	int rc = seal_all(cs, objkey, data, len, out, err);

	crypt_free(cs);
	return rc;
}

int
crypt_open_buffer(const uint8_t (*keys)[CRYPT_KEY_SIZE], int nkeys, const char *objkey, const void *data,
				  size_t len, size_t piece, strbuf *out, bs_error *err)
{
	crypt_storage *cs = buffer_keys(keys, nkeys);
	crypt_reader *r = reader_new(cs, objkey, storage_sink_strbuf, out);
	const uint8_t *p = data;
	int rc = BS_OK;

	strbuf_reset(out);
	for (size_t off = 0; off < len && rc == BS_OK;)
	{
		size_t n = piece == 0 || piece > len - off ? len - off : piece;

		rc = reader_write(r, p + off, n, err);
		off += n;
	}
	if (rc == BS_OK)
		rc = reader_finish(r, err);
	reader_free(r);
	crypt_free(cs);
	if (rc != BS_OK)
		strbuf_reset(out);
	return rc;
}

/* ---------- units of objects read by ranges (packs) ---------- */

/* The name a unit is authenticated under: see crypt_seal_unit. */
static char *
unit_name(const char *objkey, uint64_t offset, uint64_t stored_size)
{
	strbuf sb = STRBUF_INIT;

	strbuf_printf(&sb, "%s\\unit@%" PRIu64 "+%" PRIu64, objkey, offset, stored_size);
	return strbuf_detach(&sb, NULL);
}

int
crypt_seal_unit(const uint8_t key[CRYPT_KEY_SIZE], const char *objkey, uint64_t offset, const void *data,
				size_t len, strbuf *out, bs_error *err)
{
	char *name = unit_name(objkey, offset, (uint64_t) len + CRYPT_OVERHEAD);
	int rc = crypt_seal_buffer(key, name, data, len, out, err);

	free(name);
	return rc;
}

int
crypt_open_unit(const uint8_t (*keys)[CRYPT_KEY_SIZE], int nkeys, const char *objkey, uint64_t offset,
				const void *data, size_t len, strbuf *out, bs_error *err)
{
	char *name = unit_name(objkey, offset, (uint64_t) len);
	int rc = crypt_open_buffer(keys, nkeys, name, data, len, 0, out, err);

	free(name);
	return rc;
}
