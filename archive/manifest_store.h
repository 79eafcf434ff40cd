/* manifest_store.h — manifests in storage: loaded and checked, stored only when valid, listed, found by name or relid. */
#ifndef BACKSTOP_MANIFEST_STORE_H
#define BACKSTOP_MANIFEST_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "manifest.h"
#include "storage.h"

/* tables/<relid>/manifest.json; *exists false (and *out NULL) when absent. */
int manifest_load(storage *st, uint32_t relid, manifest **out, bool *exists, bs_error *err);
int manifest_store(storage *st, const manifest *m, bs_error *err);
/* The two halves of manifest_store, for a writer that serializes under a lock and writes
 * outside it: validate + serialize (NULL on error), then put. */
char *manifest_serialize(const manifest *m, bs_error *err);
int manifest_store_json(storage *st, uint32_t relid, const char *json, bs_error *err);

/* Every table in the archive: relids in ascending order. */
int manifest_list_relids(storage *st, uint32_t **relids, int *count, bs_error *err);
/* Resolve "schema.table" (or "table" = public.table) by name through the manifests.
 * Several archived tables may have carried the name (dropped and re-created): the one
 * archived last wins. ERRCODE_UNDEFINED_TABLE when none matches, naming what exists.
 * A manifest that cannot be read (XX001) is skipped with a warning; the lookup fails with
 * XX001 only when it may have been the one meant (no match, or a match not active). */
int manifest_find_table(storage *st, const char *qualified_name, manifest **out, bs_error *err);
/* As manifest_find_table, with the name history: the table that carried the name at lsn
 * wins (UINT64_MAX: now), else the one that carries it now, else one that carried it once. */
int manifest_find_table_at(storage *st, const char *qualified_name, uint64_t lsn, manifest **out, bs_error *err);

/* How well m matches schema.name at lsn (UINT64_MAX: now), the score manifest_find_table_at
 * ranks by: 2 named so there, 1 named so now (a point before the table's archive), 0 named so
 * once, -1 never.  Ties go to the higher archived_to, then the higher relid. */
int manifest_name_match(const manifest *m, const char *schema, const char *name, uint64_t lsn);

/* The table archived under relid (text, as given by a user): ERRCODE_UNDEFINED_TABLE when
 * the archive has none, ERRCODE_INVALID_PARAMETER when text is not a relid. */
int manifest_find_relid(storage *st, const char *relid_text, manifest **out, bs_error *err);

#endif
