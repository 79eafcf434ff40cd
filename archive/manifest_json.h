/* manifest_json.h — the JSON form of manifests and head.json, read strictly: what comes from storage is untrusted. */
#ifndef BACKSTOP_MANIFEST_JSON_H
#define BACKSTOP_MANIFEST_JSON_H

#include <stddef.h>

#include "error.h"
#include "manifest.h"
#include "manifest_head.h"

/* NULL when m cannot be serialized (a base definition that is not a JSON object). */
char *manifest_to_json(const manifest *m);
/* Strict: any wrong type, missing member, bad LSN/time/checksum, unsorted array or dangling
 * layout reference fails with ERRCODE_DATA_CORRUPTED naming the member. Unknown members
 * are ignored; another "format" is refused. */
int manifest_from_json(const char *json, size_t len, manifest **out, bs_error *err);
/* The checks of manifest_from_json on a manifest built in memory. */
int manifest_validate(const manifest *m, bs_error *err);

/* NULL when head cannot be serialized. */
char *archive_head_to_json(const archive_head *head);
/* Strict as manifest_from_json; *out is zeroed on failure. */
int archive_head_from_json(const char *json, size_t len, archive_head *out, bs_error *err);
/* The checks of archive_head_from_json on a head built in memory. */
int archive_head_validate(const archive_head *head, bs_error *err);

#endif
