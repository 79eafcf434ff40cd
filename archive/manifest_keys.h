/* manifest_keys.h — the archive's object keys (the layout of doc/FORMAT.md): built, and parsed back to a relid or a segment's LSNs. */
#ifndef BACKSTOP_MANIFEST_KEYS_H
#define BACKSTOP_MANIFEST_KEYS_H

#include <stdint.h>

/* The archive head, at the top of the archive. */
#define ARCHIVE_HEAD_KEY "head.json"
/* Every table's objects are under tables/<relid>/ (relid in decimal). */
#define ARCHIVE_TABLES_PREFIX "tables/"

/* tables/<relid>/: every object of the table */
char *manifest_table_prefix(uint32_t relid);
/* tables/<relid>/seg/: the table's segments */
char *manifest_segment_prefix(uint32_t relid);
/* tables/<relid>/manifest.json */
char *manifest_key(uint32_t relid);
/* tables/<relid>/seg/<first LSN>-<end LSN>.bso (16 hex digits each) */
char *manifest_segment_key(uint32_t relid, uint64_t first_lsn, uint64_t end_lsn);
/* tables/<relid>/base/<LSN>/chunk-<NNNNNN>.bso */
char *manifest_base_chunk_key(uint32_t relid, uint64_t base_lsn, int chunk);
/* tables/<relid>/base/<LSN>/schema.sql */
char *manifest_base_schema_key(uint32_t relid, uint64_t base_lsn);

/* Parse a tables/<relid>/... key: BS_OK and *relid when key is under a valid relid
 * directory (decimal, no sign, no leading zero, 1..UINT32_MAX), *rest (when not NULL)
 * pointing after "tables/<relid>/"; BS_ERR otherwise. */
int manifest_key_relid(const char *key, uint32_t *relid, const char **rest);

/* Parse the name of a segment after its table's directory ("seg/<16 hex>-<16 hex>.bso", the
 * rest manifest_key_relid gives): BS_OK and its two LSNs as written (their order unchecked);
 * BS_ERR for any other name. */
int manifest_segment_name_parse(const char *rest, uint64_t *first_lsn, uint64_t *end_lsn);

#endif
