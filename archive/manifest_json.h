/* manifest_json.h — the JSON form of manifests and head.json, read strictly: what comes from storage is untrusted. */
#ifndef BACKSTOP_MANIFEST_JSON_H
#define BACKSTOP_MANIFEST_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/*
 * The readers of the objects a manifest shares with other codecs (the pack events of
 * doc/design/format2.md: layouts, bases with their chunks, gaps) and of its scalar members,
 * for those codecs: the type checks of manifest_from_json, with path naming the object in
 * messages ("" at the top).  The value checks stay manifest_validate's, to run on the
 * manifest they end up in.  On failure what was read is in *out, for the caller to free
 * (manifest_columns_free, manifest_base_clear).
 */
int manifest_json_layout(json_t *o, const char *path, manifest_layout *out, bs_error *err);
int manifest_json_base(json_t *o, const char *path, manifest_base *out, bs_error *err);
int manifest_json_gap(json_t *o, const char *path, manifest_gap *out, bs_error *err);
/* *out NULL / 0 when optional and absent or null. */
int manifest_json_string(json_t *o, const char *path, const char *name, bool required, char **out,
						 bs_error *err);
int manifest_json_lsn(json_t *o, const char *path, const char *name, bool required, uint64_t *out,
					  bs_error *err);
int manifest_json_time(json_t *o, const char *path, const char *name, int64_t *out, bs_error *err);
int manifest_json_int(json_t *o, const char *path, const char *name, int64_t min, int64_t max, int64_t *out,
					  bs_error *err);
/* Only the members named (NULL-terminated) may be present; path names o in the message. */
int manifest_json_only_members(json_t *o, const char *path, const char *const *names, bs_error *err);
/* A required array member (absent or null: "is missing"); *n its length, bounded by int. */
/* An LSN as "X/Y", a time (Unix microseconds) as ISO-8601 UTC: JSON strings (new references). */
json_t *manifest_json_lsn_value(uint64_t lsn);
json_t *manifest_json_time_value(int64_t us);
int manifest_json_array(json_t *o, const char *path, const char *name, json_t **arr, int *n, bs_error *err);

/*
 * A table's entry in a catalog page (doc/design/format2.md 3.4): the manifest's members but
 * format, generation, archived_to and segments.  The reader is as strict as
 * manifest_from_json and refuses unknown members; archived_to is the caller's to set.
 */
json_t *manifest_table_to_json_object(const manifest *m);
int manifest_table_from_json_object(json_t *o, manifest **out, bs_error *err);

/*
 * The writers of the shared objects, for the codecs that embed them (the pack events of
 * doc/design/format2.md): a layout, a base (NULL when its definition is not a JSON object) and
 * a gap ({"from", "to"}), exactly as a manifest writes them.
 */
json_t *manifest_layout_to_json_object(const manifest_layout *l);
json_t *manifest_base_to_json_object(const manifest_base *b);
json_t *manifest_gap_to_json_object(const manifest_gap *g);

/* NULL when head cannot be serialized. */
char *archive_head_to_json(const archive_head *head);
/* Strict as manifest_from_json; *out is zeroed on failure. */
int archive_head_from_json(const char *json, size_t len, archive_head *out, bs_error *err);
/* Likewise, and a format-3 head (doc/design/format2.md 3.3) too: its unknown members refused. */
int archive_head_from_json_any(const char *json, size_t len, archive_head *out, bs_error *err);
/* The checks of archive_head_from_json on a head built in memory. */
int archive_head_validate(const archive_head *head, bs_error *err);

#endif
