/* storage_crypt.h — encryption at rest: a storage wrapper that seals every object with AES-256-GCM. */
#ifndef BACKSTOP_STORAGE_CRYPT_H
#define BACKSTOP_STORAGE_CRYPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "storage.h"

/*
 * Stored form of every object of an encrypted archive (doc/FORMAT.md, "Encryption"):
 * a 32-byte header (magic, algorithm, reserved, key id, nonce), the AES-256-GCM ciphertext,
 * and the 16-byte tag.  The associated data is the header followed by the object's key, so an
 * object moved or copied to another key fails authentication.  encryption.json at the root
 * stays plaintext: it holds the passphrase salt and the ids of the archive's keys.
 */
#define CRYPT_MAGIC "BSENC001"
#define CRYPT_HEADER_SIZE 32
#define CRYPT_TAG_SIZE 16
#define CRYPT_OVERHEAD (CRYPT_HEADER_SIZE + CRYPT_TAG_SIZE)
#define CRYPT_KEY_SIZE 32
#define CRYPT_KEY_ID_SIZE 8
#define CRYPT_NONCE_SIZE 12
#define CRYPT_ALG_AES256GCM 1
#define CRYPT_CONFIG_KEY "encryption.json"

typedef struct crypt_header
{
	uint8_t alg;
	uint8_t key_id[CRYPT_KEY_ID_SIZE];
	uint8_t nonce[CRYPT_NONCE_SIZE];
} crypt_header;

/* Parse a stored header; key names the object in messages (ERRCODE_DATA_CORRUPTED). */
int crypt_header_parse(const uint8_t *buf, size_t len, const char *key, crypt_header *h, bs_error *err);

/* The id of a key: the first 8 bytes of HMAC-SHA256(key, "backstop key id"). */
void crypt_key_id(const uint8_t key[CRYPT_KEY_SIZE], uint8_t id[CRYPT_KEY_ID_SIZE]);

/* scrypt (memory-hard) key derivation, as encryption.json's kdf parameters say. */
int crypt_derive_key(const char *passphrase, size_t len, const uint8_t *salt, size_t salt_len,
					 int log2_n, int r, int p, uint8_t key[CRYPT_KEY_SIZE], bs_error *err);

/*
 * Wrap inner (owned from then on, also on failure) with the encryption that options configure:
 * key_file, passphrase or passphrase_file is the current key, and old_key_files and
 * old_passphrase_files list keys that still decrypt.  Without any of them the wrapper
 * passes objects through, but refuses to read an encrypted one, whole or any range of it
 * (ERRCODE_ENCRYPTION_KEY: "the archive is encrypted"; a range that does not begin with the
 * header costs one more small read of the header).  With a key, encryption.json is read: a key that is not one
 * of the archive's is ERRCODE_ENCRYPTION_KEY before anything else; an archive without
 * encryption.json is refused until storage_crypt_prepare_write() initialises it.
 */
int storage_crypt_wrap(storage *inner, const storage_crypt_options *options, storage **out, bs_error *err);

/*
 * Wrap with explicit raw keys (tests, benchmarks): current (may be NULL: read only), and
 * nold older keys.  Reads or, when create is set and the archive is empty, writes
 * encryption.json.
 */
int storage_crypt_wrap_keys(storage *inner, const uint8_t *current, const uint8_t (*old)[CRYPT_KEY_SIZE],
							int nold, bool create, storage **out, bs_error *err);

/*
 * For the writer (the archiver), after storage_open: on an empty archive with a key
 * configured, create encryption.json; record a new current key (rotation) in it; refuse to
 * write a plaintext archive with a key or an encrypted one without (ERRCODE_ENCRYPTION_KEY).
 * A storage that is not a wrapper (opened without configuration) passes.
 */
int storage_crypt_prepare_write(storage *st, bs_error *err);

/* One object in memory, without storage (the fuzzer, tests): seal with key as objkey, or open
 * with any of keys, the stored bytes fed in pieces of `piece` bytes (0: all at once). */
int crypt_seal_buffer(const uint8_t key[CRYPT_KEY_SIZE], const char *objkey, const void *data, size_t len,
					  strbuf *out, bs_error *err);
int crypt_open_buffer(const uint8_t (*keys)[CRYPT_KEY_SIZE], int nkeys, const char *objkey, const void *data,
					  size_t len, size_t piece, strbuf *out, bs_error *err);

/*
 * Unit sealing (doc/design/format2.md 3.7): an object read by ranges (a pack) is stored as
 * plaintext framing around units sealed each on its own, in the form above.  A unit's
 * associated data is the header and "<object key>\unit@<offset>+<stored size>" (a backslash
 * is never in a key, so no whole object shares it; messages name the unit so): a unit
 * moved within or between objects, or cut, fails authentication.  The stored size is
 * len + CRYPT_OVERHEAD.
 */
int crypt_seal_unit(const uint8_t key[CRYPT_KEY_SIZE], const char *objkey, uint64_t offset, const void *data,
					size_t len, strbuf *out, bs_error *err);
int crypt_open_unit(const uint8_t (*keys)[CRYPT_KEY_SIZE], int nkeys, const char *objkey, uint64_t offset,
					const void *data, size_t len, strbuf *out, bs_error *err);

/* True when st encrypts (a key is configured and the archive is encrypted). */
bool storage_crypt_active(const storage *st);

/*
 * For a reader of unit-sealed objects (packs), which the wrapper cannot serve by range: when
 * st encrypts (storage_crypt_active), *raw is the storage it wraps and *keys (*nkeys of them)
 * copies of every configured key, to open units with (crypt_open_unit); wipe and free them
 * with storage_crypt_unit_keys_free.  Otherwise *raw is st itself and there are no keys (a
 * plaintext archive, or one read without its key: a sealed unit is then refused by its
 * reader).
 */
void storage_crypt_unit_access(storage *st, storage **raw, uint8_t (**keys)[CRYPT_KEY_SIZE], int *nkeys);
void storage_crypt_unit_keys_free(uint8_t (*keys)[CRYPT_KEY_SIZE], int nkeys);

#endif
