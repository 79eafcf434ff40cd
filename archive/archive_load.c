/* archive_load.c — a table's manifest as the commands need it, whatever the archive's format: format-1/2 manifests, or (format 3) the catalog folded forward over the packs (doc/design/format2.md 3.8, 5 step 4c); the whole log walked for verify (3.6). */
#include "archive_load.h"
#include "audit.h"
#include "digest.h"
#include "fold.h"
#include "ident.h"
#include "lsn.h"
#include "manifest_json.h"
#include "manifest_keys.h"
#include "manifest_store.h"
#include "pack.h"
#include "packcat.h"
#include "replmsg.h"
#include "storage_crypt.h"
#include "strbuf.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *
archive_log_key(uint64_t seq)
{
	char buf[64];

	snprintf(buf, sizeof(buf), ARCHIVE_LOG_PREFIX "%016" PRIX64 ".bsp", seq);
	return xstrdup(buf);
}

/* A listed pack of the log. */
typedef struct log_entry
{
	char *key;
	uint64_t seq;				/* from its key: its first sequence number */
	uint64_t size;
} log_entry;

/* What a format-3 load reads once: the catalog's dir, the log's listing, the packs after it. */
struct archive_view
{
	storage *st;				/* catalog objects: sealed whole, through the wrapper */
	storage *raw;				/* packs: by range, under it */
	uint8_t (*keyv)[CRYPT_KEY_SIZE];
	int nkeys;
	pack_keys keys;
	packcat_dir *dir;			/* NULL: no catalog yet */
	uint64_t cat_seq;
	log_entry *log;				/* every pack listed, by sequence */
	int nlog;
	int first_after;			/* index in log of the first pack after the catalog */
	pack_index **after;			/* the packs after the catalog, opened */
	int nafter;
	pack_index **before;		/* log[0 .. first_after): opened when a table's runs need them */
	char **page_keys;			/* catalog pages read (immutable: copy-on-write keys), kept */
	strbuf *pages;
	int npages;
	int tip;					/* index in log of the tip pack, -1: an empty log */
	uint64_t tip_seq;
	uint64_t tip_seal_lsn;
	uint64_t head_tip_seq;		/* what head.json vouches for */
	char head_tip_sha256[65];
};

static bool
is_format3(const archive_head *head)
{
	return head && head->format == ARCHIVE_HEAD_FORMAT_PACKS;
}

static const pack_keys *
keys_of(const archive_view *L)
{
	return L->nkeys ? &L->keys : NULL;
}

static int
parse_log_key(const char *key, uint64_t *seq)
{
	const char *p = key + strlen(ARCHIVE_LOG_PREFIX);
	uint64_t v = 0;

	if (strncmp(key, ARCHIVE_LOG_PREFIX, strlen(ARCHIVE_LOG_PREFIX)) != 0 || strlen(p) != 20 ||
		strcmp(p + 16, ".bsp") != 0)
		return BS_ERR;
	for (int i = 0; i < 16; i++)
	{
		int c = p[i];

		if (c >= '0' && c <= '9')
			v = v * 16 + (uint64_t) (c - '0');
		else if (c >= 'A' && c <= 'F')
			v = v * 16 + (uint64_t) (c - 'A' + 10);
		else
			return BS_ERR;
	}
	if (v == 0)
		return BS_ERR;
	*seq = v;
	return BS_OK;
}

static int
collect_log(void *ctx, const char *key, uint64_t size, bs_error *err)
{
	archive_view *L = ctx;
	uint64_t seq;

	(void) err;
	/* Anything else under log/ (a store's leftover) is not a pack of the log. */
	if (parse_log_key(key, &seq) != BS_OK)
		return BS_OK;
	L->log = xrealloc(L->log, (size_t) (L->nlog + 1) * sizeof(log_entry));
	L->log[L->nlog].key = xstrdup(key);
	L->log[L->nlog].seq = seq;
	L->log[L->nlog].size = size;
	L->nlog++;
	return BS_OK;
}

void
archive_view_free(archive_view *L)
{
	if (L == NULL)
		return;
	packcat_dir_free(L->dir);
	for (int i = 0; i < L->nlog; i++)
		free(L->log[i].key);
	free(L->log);
	for (int i = 0; i < L->nafter; i++)
		pack_index_free(L->after[i]);
	free(L->after);
	for (int i = 0; L->before && i < L->first_after; i++)
		pack_index_free(L->before[i]);
	free(L->before);
	for (int i = 0; i < L->npages; i++)
	{
		free(L->page_keys[i]);
		strbuf_free(&L->pages[i]);
	}
	free(L->page_keys);
	free(L->pages);
	storage_crypt_unit_keys_free(L->keyv, L->nkeys);
	free(L);
}

static int
open_pack(archive_view *L, const log_entry *e, pack_index **out, bs_error *err)
{
	pack_storage ps;

	ps.st = L->raw;
	ps.key = e->key;
	if (pack_open(e->key, e->size, pack_storage_read, &ps, keys_of(L), out, err) != BS_OK)
		return BS_ERR;
	if ((*out)->seq_first != e->seq)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "pack \"%s\" starts at sequence number %" PRIu64 ", not the %" PRIu64
				  " of its key", e->key, (*out)->seq_first, e->seq);
		pack_index_free(*out);
		*out = NULL;
		return BS_ERR;
	}
	return BS_OK;
}

/* packcat_get_fn of a view: a catalog page is read once per view (many tables share one). */
static int
view_get(void *ctx, const char *key, strbuf *out, bs_error *err)
{
	archive_view *L = ctx;

	for (int i = 0; i < L->npages; i++)
		if (strcmp(L->page_keys[i], key) == 0)
		{
			strbuf_reset(out);
			strbuf_append(out, L->pages[i].data, L->pages[i].len);
			return BS_OK;
		}
	if (packcat_storage_get(L->st, key, out, err) != BS_OK)
		return BS_ERR;
	L->page_keys = xrealloc(L->page_keys, (size_t) (L->npages + 1) * sizeof(char *));
	L->pages = xrealloc(L->pages, (size_t) (L->npages + 1) * sizeof(strbuf));
	L->page_keys[L->npages] = xstrdup(key);
	memset(&L->pages[L->npages], 0, sizeof(strbuf));
	strbuf_append(&L->pages[L->npages], out->data, out->len);
	L->npages++;
	return BS_OK;
}

/* A hole in the log: the pack that should start at seq is not listed. */
static int
missing_pack(uint64_t seq, const char *why, bs_error *err)
{
	char *key = archive_log_key(seq);

	error_set(err, ERRCODE_DATA_CORRUPTED, "pack \"%s\" is missing from the log (%s)", key, why);
	free(key);
	return BS_ERR;
}

/* head.json's catalog, the listing of log/, the footers of the packs after the catalog. */
static int
view_open(storage *st, const archive_head *head, archive_view *L, bs_error *err)
{
	uint64_t next;
	char why[160];

	L->st = st;
	L->tip = -1;
	L->cat_seq = head->catalog_seq;
	L->head_tip_seq = head->tip_seq;
	memcpy(L->head_tip_sha256, head->tip_sha256, sizeof(L->head_tip_sha256));
	storage_crypt_unit_access(st, &L->raw, &L->keyv, &L->nkeys);
	L->keys.keys = (const uint8_t (*)[CRYPT_KEY_SIZE]) L->keyv;
	L->keys.nkeys = L->nkeys;
	if (L->cat_seq > 0 && packcat_load_dir(packcat_storage_get, st, L->cat_seq, &L->dir, err) != BS_OK)
	{
		if (strcmp(err->code, ERRCODE_NOT_FOUND) == 0)
		{
			char *key = packcat_dir_key(L->cat_seq);

			error_set(err, ERRCODE_DATA_CORRUPTED, "\"%s\" names catalog seq %" PRIu64 ", but \"%s\" is missing",
					  ARCHIVE_HEAD_KEY, L->cat_seq, key);
			free(key);
		}
		return BS_ERR;
	}
	if (L->dir && L->dir->seq != L->cat_seq)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "catalog \"%s\" is of seq %" PRIu64 ", not %" PRIu64,
						 L->dir->key, L->dir->seq, L->cat_seq);
	if (L->dir && head->tip_seq == L->cat_seq && strcmp(head->tip_sha256, L->dir->pack_sha256) != 0)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "\"%s\" names pack seq %" PRIu64 " with SHA-256 %s, but catalog "
						 "\"%s\" records %s for it (the chain is broken)", ARCHIVE_HEAD_KEY, head->tip_seq,
						 head->tip_sha256, L->dir->key, L->dir->pack_sha256);
	if (storage_list(L->raw, ARCHIVE_LOG_PREFIX, collect_log, L, err) != BS_OK)
		return error_prefix(err, "could not list \"%s\"", ARCHIVE_LOG_PREFIX);
	L->first_after = 0;
	while (L->first_after < L->nlog && L->log[L->first_after].seq <= L->cat_seq)
		L->first_after++;
	L->before = xcalloc((size_t) L->first_after + 1, sizeof(pack_index *));
	L->after = xcalloc((size_t) (L->nlog - L->first_after) + 1, sizeof(pack_index *));
	next = L->cat_seq + 1;
	for (int i = L->first_after; i < L->nlog; i++)
	{
		const log_entry *e = &L->log[i];
		pack_index *idx;

		if (e->seq != next)
		{
			snprintf(why, sizeof(why), "the log lists seq %" PRIu64 " next", e->seq);
			return missing_pack(next, why, err);
		}
		if (open_pack(L, e, &idx, err) != BS_OK)
			return BS_ERR;
		L->after[L->nafter++] = idx;
		/* The head vouches for its tip: the pack after it must chain to it. */
		if (idx->seq_first == head->tip_seq + 1 && head->tip_seq > 0 && strcmp(idx->prev, head->tip_sha256) != 0)
			return error_set(err, ERRCODE_DATA_CORRUPTED, "pack \"%s\" names %s as its predecessor's SHA-256, but "
							 "\"%s\" records %s for seq %" PRIu64 " (the chain is broken)", e->key,
							 idx->prev[0] ? idx->prev : "none", ARCHIVE_HEAD_KEY, head->tip_sha256, head->tip_seq);
		next = idx->seq_last + 1;
	}
	if (next <= head->tip_seq)
	{
		snprintf(why, sizeof(why), "\"%s\" names seq %" PRIu64 " as the tip, and the log ends at seq %" PRIu64,
				 ARCHIVE_HEAD_KEY, head->tip_seq, next - 1);
		return missing_pack(next, why, err);
	}
	/* The tip: the last pack after the catalog, else the catalog's own (as the dir records it). */
	if (L->nafter > 0)
	{
		L->tip = L->nlog - 1;
		L->tip_seq = L->after[L->nafter - 1]->seq_last;
		L->tip_seal_lsn = L->after[L->nafter - 1]->seal_lsn;
	}
	else if (L->dir)
	{
		L->tip = L->first_after - 1;
		L->tip_seq = L->dir->seq;
		L->tip_seal_lsn = L->dir->seal_lsn;
	}
	return BS_OK;
}

int
archive_view_open(storage *st, const archive_head *head, archive_view **out, bs_error *err)
{
	archive_view *L;

	*out = NULL;
	if (!is_format3(head))
		return error_set(err, ERRCODE_INVALID_PARAMETER, "the archive at %s is not in format 3 (packs and catalog)",
						 storage_describe(st));
	L = xcalloc(1, sizeof(*L));
	if (view_open(st, head, L, err) != BS_OK)
	{
		archive_view_free(L);
		return BS_ERR;
	}
	*out = L;
	return BS_OK;
}

/*
 * relid's runs in the packs up to the catalog (newest first in the walk), as segments in
 * sequence order: from the catalog's pack back to the first pack sealed at or below floor.
 * A footer opened once is kept in the view for the next table (nothing kept from a failure).
 */
static int
runs_before_catalog(archive_view *L, uint32_t relid, uint64_t floor, manifest_segment **segs, int *nsegs, bs_error *err)
{
	const pack_index **opened = NULL;
	int nopened = 0;
	int i = L->first_after - 1;
	uint64_t want_last = L->cat_seq;
	int rc = BS_ERR;
	char why[128];

	*segs = NULL;
	*nsegs = 0;
	opened = xcalloc((size_t) L->first_after + 1, sizeof(pack_index *));
	while (want_last > 0)
	{
		const pack_index *idx;

		if (i < 0 || L->log[i].seq > want_last)
		{
			snprintf(why, sizeof(why), "the catalog at seq %" PRIu64 " follows it", L->cat_seq);
			missing_pack(i < 0 ? 1 : want_last, why, err);
			goto out;
		}
		if (L->before[i] == NULL && open_pack(L, &L->log[i], &L->before[i], err) != BS_OK)
			goto out;
		idx = L->before[i];
		opened[nopened++] = idx;
		if (idx->seq_last != want_last)
		{
			snprintf(why, sizeof(why), "pack \"%s\" ends at seq %" PRIu64, idx->key, idx->seq_last);
			missing_pack(idx->seq_last + 1, why, err);
			goto out;
		}
		if (want_last == L->cat_seq && idx->seal_lsn != L->dir->seal_lsn)
		{
			char a[LSN_BUFLEN],
				b[LSN_BUFLEN];

			error_set(err, ERRCODE_DATA_CORRUPTED, "pack \"%s\" has seal LSN %s, but catalog \"%s\" records %s for it",
					  idx->key, lsn_format(idx->seal_lsn, a), L->dir->key, lsn_format(L->dir->seal_lsn, b));
			goto out;
		}
		if (floor > 0 && idx->seal_lsn <= floor)
			break;				/* sealed at or below the first base: nothing of it is replayed */
		want_last = idx->seq_first - 1;
		i--;
	}
	/* Oldest first: each run inside its pack's seal range. */
	for (int k = nopened - 1; k >= 0; k--)
	{
		const pack_index *idx = opened[k];
		const pack_run *r = pack_find_run(idx, relid);
		uint64_t prev_seal = k + 1 < nopened ? opened[k + 1]->seal_lsn : 0;
		manifest_segment *s;
		char a[LSN_BUFLEN],
			b[LSN_BUFLEN];

		if (k + 1 < nopened && idx->seal_lsn < prev_seal)
		{
			error_set(err, ERRCODE_DATA_CORRUPTED, "pack \"%s\" (seq %" PRIu64 ") has seal LSN %s, below the "
					  "previous pack's %s", idx->key, idx->seq_first, lsn_format(idx->seal_lsn, a),
					  lsn_format(prev_seal, b));
			goto out;
		}
		if (r == NULL || (floor > 0 && idx->seal_lsn <= floor))
			continue;
		if (r->first_lsn < prev_seal || r->last_end_lsn > idx->seal_lsn)
		{
			error_set(err, ERRCODE_DATA_CORRUPTED, "pack \"%s\" (seq %" PRIu64 "), relid %" PRIu32 ": has a run (%s to "
					  "%s) outside the pack's seal range", idx->key, idx->seq_first, relid, lsn_format(r->first_lsn, a),
					  lsn_format(r->last_end_lsn, b));
			goto out;
		}
		*segs = xrealloc(*segs, (size_t) (*nsegs + 1) * sizeof(manifest_segment));
		s = &(*segs)[(*nsegs)++];
		fold_run_segment(idx, r, s);
		s->key = xstrdup(idx->key);
	}
	rc = BS_OK;
out:
	free(opened);
	if (rc != BS_OK)
	{
		for (int k = 0; k < *nsegs; k++)
			free((*segs)[k].key);
		free(*segs);
		*segs = NULL;
		*nsegs = 0;
	}
	return rc;
}

int
archive_view_table(archive_view *L, uint32_t relid, manifest **out, uint64_t *last_event_lsn, bool *exists,
				   bs_error *err)
{
	const packcat_table *t = L->dir ? packcat_find_relid(L->dir, relid) : NULL;
	manifest *m = NULL;
	manifest_segment *pre = NULL;
	int npre = 0;
	uint64_t last = 0;
	int rc;

	*out = NULL;
	*exists = false;
	if (last_event_lsn)
		*last_event_lsn = 0;
	if (L->dir)
		rc = packcat_fold_table(L->dir, relid, view_get, L, (const pack_index *const *) L->after, L->nafter, &m,
								&last, err);
	else
		rc = fold_table_from(relid, NULL, (const pack_index *const *) L->after, L->nafter, &m, &last, err);
	if (rc != BS_OK)
	{
		if (strcmp(err->code, ERRCODE_NOT_FOUND) != 0)
			return BS_ERR;
		if (t == NULL)
		{
			error_clear(err);
			return BS_OK;		/* not in the archive */
		}
		/* The dir names the table's page: a missing page is damage. */
		{
			char *cause = xstrdup(err->message);

			error_set(err, ERRCODE_DATA_CORRUPTED, "catalog \"%s\", relid %" PRIu32 ": %s", L->dir->key, relid,
					  cause);
			free(cause);
			return BS_ERR;
		}
	}
	if (t && runs_before_catalog(L, relid, t->first_base_lsn, &pre, &npre, err) != BS_OK)
	{
		manifest_free(m);
		return BS_ERR;
	}
	if (npre > 0)
	{
		manifest_segment *all = xcalloc((size_t) (npre + m->nsegments), sizeof(manifest_segment));

		memcpy(all, pre, (size_t) npre * sizeof(manifest_segment));
		if (m->nsegments > 0)
			memcpy(all + npre, m->segments, (size_t) m->nsegments * sizeof(manifest_segment));
		free(m->segments);
		free(pre);
		m->segments = all;
		m->nsegments += npre;
		if (manifest_validate(m, err) != BS_OK)
		{
			manifest_free(m);
			return error_prefix(err, "relid %" PRIu32 ": the catalog at seq %" PRIu64 " with the runs before it",
								relid, L->cat_seq);
		}
	}
	*out = m;
	*exists = true;
	if (last_event_lsn)
		*last_event_lsn = last;
	return BS_OK;
}

int
archive_load_table(storage *st, const archive_head *head, uint32_t relid, manifest **out, bool *exists,
				   bs_error *err)
{
	archive_view *v = NULL;
	int rc;

	if (!is_format3(head))
		return manifest_load(st, relid, out, exists, err);
	*out = NULL;
	*exists = false;
	rc = archive_view_open(st, head, &v, err);
	if (rc == BS_OK)
		rc = archive_view_table(v, relid, out, NULL, exists, err);
	archive_view_free(v);
	return rc;
}

int
archive_load_find_relid(storage *st, const archive_head *head, const char *relid_text, manifest **out,
						bs_error *err)
{
	char *end = NULL;
	unsigned long long v;
	bool exists = false;

	if (!is_format3(head))
		return manifest_find_relid(st, relid_text, out, err);
	*out = NULL;
	errno = 0;
	v = strtoull(relid_text, &end, 10);
	if (relid_text[0] < '0' || relid_text[0] > '9' || *end != '\0' || errno != 0 || v == 0 || v > UINT32_MAX)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "--relid must be a table OID (1 to 4294967295)");
	if (archive_load_table(st, head, (uint32_t) v, out, &exists, err) != BS_OK)
		return BS_ERR;
	if (!exists)
		return error_set(err, ERRCODE_UNDEFINED_TABLE, "no table with relid %llu is in the archive at %s", v,
						 storage_describe(st));
	return BS_OK;
}

/* Relids the packs after the catalog give schema.name by a first sight or a rename. */
static void
named_after(const archive_view *L, const char *schema, const char *name, uint32_t **ids, int *n)
{
	for (int p = 0; p < L->nafter; p++)
		for (int i = 0; i < L->after[p]->nevents; i++)
		{
			const pack_event *e = &L->after[p]->events[i];
			json_t *o;
			const char *s,
					   *nm;

			if (strcmp(e->kind, "table") != 0 && strcmp(e->kind, "name") != 0)
				continue;
			o = json_loads(e->json, JSON_REJECT_DUPLICATES, NULL);
			s = o ? json_string_value(json_object_get(o, "schema")) : NULL;
			nm = o ? json_string_value(json_object_get(o, "name")) : NULL;
			if (s && nm && strcmp(s, schema) == 0 && strcmp(nm, name) == 0)
			{
				*ids = xrealloc(*ids, (size_t) (*n + 1) * sizeof(uint32_t));
				(*ids)[(*n)++] = e->relid;
			}
			json_decref(o);
		}
}

static bool
dir_had_name(const packcat_table *t, const char *schema, const char *name)
{
	if (strcmp(t->schema, schema) == 0 && strcmp(t->name, name) == 0)
		return true;
	for (int i = 0; i < t->nnames; i++)
		if (strcmp(t->names[i].schema, schema) == 0 && strcmp(t->names[i].name, name) == 0)
			return true;
	return false;
}

static int
find3(archive_view *L, const char *schema, const char *name, uint64_t lsn, manifest **out, bs_error *err)
{
	uint32_t *ids = NULL;
	int n = 0;
	manifest *best = NULL;
	int best_score = -1;
	int rc = BS_ERR;

	named_after(L, schema, name, &ids, &n);
	if (n == 0 && L->dir)
	{
		/* Nothing since the catalog gives the name: the dir alone resolves it. */
		const packcat_table *t = NULL;
		bool exists = false;

		if (packcat_find_name(L->dir, schema, name, lsn, &t, err) != BS_OK)
			goto out;
		if (archive_view_table(L, t->relid, &best, NULL, &exists, err) != BS_OK)
			goto out;
		if (!exists)
		{
			error_set(err, ERRCODE_DATA_CORRUPTED, "catalog \"%s\" names relid %" PRIu32 ", but it cannot be loaded",
					  L->dir->key, t->relid);
			goto out;
		}
		/* A table renamed away since the catalog: ranked again below with the others. */
		if (manifest_name_match(best, schema, name, lsn) >= 0)
		{
			*out = best;
			best = NULL;
			rc = BS_OK;
			goto out;
		}
		manifest_free(best);
		best = NULL;
	}
	for (int i = 0; L->dir && i < L->dir->ntables; i++)
		if (dir_had_name(&L->dir->tables[i], schema, name))
		{
			ids = xrealloc(ids, (size_t) (n + 1) * sizeof(uint32_t));
			ids[n++] = L->dir->tables[i].relid;
		}
	for (int i = 0; i < n; i++)
	{
		manifest *m = NULL;
		bool exists = false;
		int score;
		bool seen = false;

		for (int k = 0; k < i; k++)
			seen = seen || ids[k] == ids[i];
		if (seen)
			continue;
		if (archive_view_table(L, ids[i], &m, NULL, &exists, err) != BS_OK)
			goto out;
		if (!exists)
			continue;
		score = manifest_name_match(m, schema, name, lsn);
		if (score >= 0 && (best == NULL || score > best_score ||
						   (score == best_score && (m->archived_to > best->archived_to ||
													(m->archived_to == best->archived_to && m->relid > best->relid)))))
		{
			manifest_free(best);
			best = m;
			best_score = score;
			continue;
		}
		manifest_free(m);
	}
	if (best == NULL)
	{
		error_set(err, ERRCODE_UNDEFINED_TABLE, "table \"%s.%s\" is not in the archive at %s (neither catalog seq "
				  "%" PRIu64 " nor the log after it names such a table)", schema, name, storage_describe(L->st),
				  L->cat_seq);
		goto out;
	}
	*out = best;
	best = NULL;
	rc = BS_OK;
out:
	manifest_free(best);
	free(ids);
	return rc;
}

int
archive_view_find_at(archive_view *v, const char *qualified_name, uint64_t lsn, manifest **out, bs_error *err)
{
	char *schema = NULL;
	char *name = NULL;
	int rc;

	*out = NULL;
	if (ident_split_name(qualified_name, &schema, &name, err) != BS_OK)
		return BS_ERR;
	rc = find3(v, schema, name, lsn, out, err);
	free(schema);
	free(name);
	return rc;
}

int
archive_load_find_at(storage *st, const archive_head *head, const char *qualified_name, uint64_t lsn,
					 manifest **out, bs_error *err)
{
	archive_view *v = NULL;
	int rc;

	if (!is_format3(head))
		return audit_find_table_at(st, head, qualified_name, lsn, out, err);
	*out = NULL;
	rc = archive_view_open(st, head, &v, err);
	if (rc == BS_OK)
		rc = archive_view_find_at(v, qualified_name, lsn, out, err);
	archive_view_free(v);
	return rc;
}

static int
cmp_relid(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *) a,
		y = *(const uint32_t *) b;

	return x < y ? -1 : x > y;
}

void
archive_view_relids(const archive_view *v, uint32_t **relids, int *n)
{
	uint32_t *ids = NULL;
	int k = 0,
		cap = v->dir ? v->dir->ntables : 0;

	for (int p = 0; p < v->nafter; p++)
		cap += v->after[p]->nevents;
	ids = xcalloc((size_t) cap + 1, sizeof(uint32_t));
	for (int i = 0; v->dir && i < v->dir->ntables; i++)
		ids[k++] = v->dir->tables[i].relid;
	for (int p = 0; p < v->nafter; p++)
		for (int i = 0; i < v->after[p]->nevents; i++)
			if (strcmp(v->after[p]->events[i].kind, "table") == 0 && v->after[p]->events[i].relid != 0)
				ids[k++] = v->after[p]->events[i].relid;
	if (k > 1)
		qsort(ids, (size_t) k, sizeof(uint32_t), cmp_relid);
	*n = 0;
	for (int i = 0; i < k; i++)
		if (*n == 0 || ids[*n - 1] != ids[i])
			ids[(*n)++] = ids[i];
	if (*n == 0)
	{
		free(ids);
		ids = NULL;
	}
	*relids = ids;
}

uint64_t
archive_view_tip_seq(const archive_view *v)
{
	return v->tip_seq;
}

uint64_t
archive_view_tip_seal_lsn(const archive_view *v)
{
	return v->tip_seal_lsn;
}

const packcat_dir *
archive_view_dir(const archive_view *v)
{
	return v->dir;
}

const pack_index *const *
archive_view_packs_after(const archive_view *v, int *n)
{
	*n = v->nafter;
	return (const pack_index *const *) v->after;
}

int
archive_view_tip_sha256(archive_view *v, char out[65], bs_error *err)
{
	strbuf bytes = STRBUF_INIT;
	const log_entry *e;
	char why[160];

	out[0] = '\0';
	if (v->tip_seq == 0)
		return BS_OK;			/* an empty log */
	/* The catalog's pack is the tip: it must be listed, and be the pack the catalog names. */
	if (v->tip < 0 || v->log[v->tip].seq != v->tip_seq)
	{
		snprintf(why, sizeof(why), "the catalog at seq %" PRIu64 " names it as its last pack", v->cat_seq);
		return missing_pack(v->tip_seq, why, err);
	}
	e = &v->log[v->tip];
	if (storage_get_all(v->raw, e->key, &bytes, err) != BS_OK)
	{
		strbuf_free(&bytes);
		return error_prefix(err, "could not read pack \"%s\"", e->key);
	}
	if ((uint64_t) bytes.len != e->size)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "pack \"%s\" has %zu bytes, but the listing of \"%s\" says %" PRIu64,
				  e->key, bytes.len, ARCHIVE_LOG_PREFIX, e->size);
		strbuf_free(&bytes);
		return BS_ERR;
	}
	digest_sha256_hex(bytes.data, bytes.len, out);
	strbuf_free(&bytes);
	if (v->nafter == 0 && strcmp(out, v->dir->pack_sha256) != 0)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "pack \"%s\" has SHA-256 %s, but catalog \"%s\" records %s for it (the "
				  "chain is broken)", e->key, out, v->dir->key, v->dir->pack_sha256);
		out[0] = '\0';
		return BS_ERR;
	}
	if (v->tip_seq == v->head_tip_seq && strcmp(out, v->head_tip_sha256) != 0)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "pack \"%s\" has SHA-256 %s, but \"%s\" records %s for seq %" PRIu64
				  " (the chain is broken)", e->key, out, ARCHIVE_HEAD_KEY, v->head_tip_sha256, v->head_tip_seq);
		out[0] = '\0';
		return BS_ERR;
	}
	return BS_OK;
}

/* The walk of archive_log_verify. */
typedef struct log_walk
{
	archive_damage_fn damage;
	void *ctx;
	archive_log_stats *stats;
} log_walk;

static void __attribute__((format(printf, 3, 4)))
walk_damage(log_walk *w, const char *key, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	w->stats->problems++;
	w->damage(w->ctx, key, msg);
	free(msg);
}

static int
cmp_log_entry(const void *a, const void *b)
{
	uint64_t x = ((const log_entry *) a)->seq,
		y = ((const log_entry *) b)->seq;

	return x < y ? -1 : x > y;
}

/* A pack opened from its bytes: its runs inside its seal range and read back, its events checked. */
static void
walk_pack_content(log_walk *w, const archive_view *L, const pack_index *idx, const strbuf *bytes,
				  uint64_t prev_seal)
{
	pack_buffer pb = {(const uint8_t *) bytes->data, bytes->len};
	strbuf run = STRBUF_INIT;
	bs_error err;
	char a[LSN_BUFLEN],
		b[LSN_BUFLEN];

	error_clear(&err);
	if (fold_check_pack(idx, &err) != BS_OK)
		walk_damage(w, idx->key, "%s", err.message);
	for (int i = 0; i < idx->nruns; i++)
	{
		const pack_run *r = &idx->runs[i];

		if (r->first_lsn < prev_seal || r->last_end_lsn > idx->seal_lsn)
			walk_damage(w, idx->key, "relid %" PRIu32 ": has a run (%s to %s) outside the pack's seal range",
						r->relid, lsn_format(r->first_lsn, a), lsn_format(r->last_end_lsn, b));
		error_clear(&err);
		if (pack_read_run_all(idx, r->relid, pack_buffer_read, &pb, keys_of(L), &run, &err) != BS_OK)
			walk_damage(w, idx->key, "%s", err.message);
		w->stats->runs++;
	}
	strbuf_free(&run);
}

int
archive_log_verify(storage *st, const archive_head *head, archive_damage_fn damage, void *ctx,
				   archive_log_stats *stats, bs_error *err)
{
	archive_view *L = xcalloc(1, sizeof(*L));
	log_walk w = {damage, ctx, stats};
	strbuf bytes = STRBUF_INIT;
	uint64_t expect = 1;
	uint64_t prev_seal = 0;
	char prev_sha[65] = "";		/* "": the predecessor is unknown (a hole, a pack unreadable) */
	char prev_key[64] = "";
	int rc = BS_ERR;
	char a[LSN_BUFLEN],
		b[LSN_BUFLEN];

	memset(stats, 0, sizeof(*stats));
	L->st = st;
	storage_crypt_unit_access(st, &L->raw, &L->keyv, &L->nkeys);
	L->keys.keys = (const uint8_t (*)[CRYPT_KEY_SIZE]) L->keyv;
	L->keys.nkeys = L->nkeys;
	if (head->catalog_seq > 0 && packcat_load_dir(packcat_storage_get, st, head->catalog_seq, &L->dir, err) != BS_OK)
	{
		char *key = packcat_dir_key(head->catalog_seq);

		if (strcmp(err->code, ERRCODE_NOT_FOUND) == 0)
			walk_damage(&w, key, "missing, but \"%s\" names catalog seq %" PRIu64, ARCHIVE_HEAD_KEY, head->catalog_seq);
		else if (strcmp(err->code, ERRCODE_DATA_CORRUPTED) == 0)
			walk_damage(&w, key, "%s", err->message);
		else
		{
			free(key);
			goto out;
		}
		free(key);
		error_clear(err);
	}
	if (storage_list(L->raw, ARCHIVE_LOG_PREFIX, collect_log, L, err) != BS_OK)
	{
		error_prefix(err, "could not list \"%s\"", ARCHIVE_LOG_PREFIX);
		goto out;
	}
	if (L->nlog > 1)
		qsort(L->log, (size_t) L->nlog, sizeof(log_entry), cmp_log_entry);
	for (int i = 0; i < L->nlog; i++)
	{
		const log_entry *e = &L->log[i];
		pack_index *idx = NULL;
		char sha[65];
		char pred[64];

		if (e->seq < expect)
		{
			walk_damage(&w, e->key, "overlaps the pack before it (\"%s\" covers up to seq %" PRIu64 ")", prev_key,
						expect - 1);
			continue;
		}
		if (e->seq > expect)
		{
			char *key = archive_log_key(expect);

			walk_damage(&w, key, "missing from the log (the log lists seq %" PRIu64 " next%s%s%s)", e->seq,
						prev_key[0] ? ", after \"" : "", prev_key, prev_key[0] ? "\"" : "");
			free(key);
			prev_sha[0] = '\0';	/* the chain cannot be checked across the hole */
		}
		memcpy(pred, prev_key, sizeof(pred));
		snprintf(prev_key, sizeof(prev_key), "%s", e->key);
		expect = e->seq + 1;
		if (storage_get_all(L->raw, e->key, &bytes, err) != BS_OK)
		{
			if (strcmp(err->code, ERRCODE_NOT_FOUND) != 0)
			{
				error_prefix(err, "could not read pack \"%s\"", e->key);
				goto out;
			}
			walk_damage(&w, e->key, "listed, but missing when read");
			error_clear(err);
			prev_sha[0] = '\0';
			continue;
		}
		stats->packs++;
		stats->bytes += bytes.len;
		digest_sha256_hex(bytes.data, bytes.len, sha);
		if ((uint64_t) bytes.len != e->size)
			walk_damage(&w, e->key, "has %zu bytes, but the listing of \"%s\" says %" PRIu64, bytes.len,
						ARCHIVE_LOG_PREFIX, e->size);
		if (pack_open_buffer(e->key, bytes.data, bytes.len, keys_of(L), &idx, err) != BS_OK)
		{
			if (strcmp(err->code, ERRCODE_DATA_CORRUPTED) != 0 && strcmp(err->code, ERRCODE_NOT_FOUND) != 0)
				goto out;		/* no key for a sealed pack: not damage */
			walk_damage(&w, e->key, "%s", err->message);
			error_clear(err);
			snprintf(prev_sha, sizeof(prev_sha), "%s", sha);	/* its successor still names these bytes */
			continue;
		}
		if (idx->seq_first != e->seq)
			walk_damage(&w, e->key, "starts at sequence number %" PRIu64 ", not the %" PRIu64 " of its key",
						idx->seq_first, e->seq);
		if (e->seq == 1 && idx->prev[0])
			walk_damage(&w, e->key, "is the first pack of the log, but names %s as its predecessor's SHA-256",
						idx->prev);
		else if (prev_sha[0] && strcmp(idx->prev, prev_sha) != 0)
			walk_damage(&w, e->key, "names %s as its predecessor's SHA-256, but \"%s\" has SHA-256 %s (the chain is "
						"broken)", idx->prev[0] ? idx->prev : "none", pred, prev_sha);
		if (idx->seal_lsn < prev_seal)
			walk_damage(&w, e->key, "has seal LSN %s, below the previous pack's %s", lsn_format(idx->seal_lsn, a),
						lsn_format(prev_seal, b));
		walk_pack_content(&w, L, idx, &bytes, prev_seal);
		if (L->dir && idx->seq_last == L->dir->seq && strcmp(sha, L->dir->pack_sha256) != 0)
			walk_damage(&w, L->dir->key, "records SHA-256 %s for pack \"%s\", which has %s (the chain is broken)",
						L->dir->pack_sha256, e->key, sha);
		else if (L->dir && idx->seq_last == L->dir->seq && idx->seal_lsn != L->dir->seal_lsn)
			walk_damage(&w, L->dir->key, "records seal LSN %s for pack \"%s\", which has %s",
						lsn_format(L->dir->seal_lsn, a), e->key, lsn_format(idx->seal_lsn, b));
		if (idx->seq_last == head->tip_seq && strcmp(sha, head->tip_sha256) != 0)
			walk_damage(&w, ARCHIVE_HEAD_KEY, "records SHA-256 %s for the tip, seq %" PRIu64 ", but pack \"%s\" has %s "
						"(the chain is broken)", head->tip_sha256, head->tip_seq, e->key, sha);
		expect = idx->seq_last + 1;
		prev_seal = idx->seal_lsn > prev_seal ? idx->seal_lsn : prev_seal;
		memcpy(prev_sha, sha, sizeof(prev_sha));
		pack_index_free(idx);
	}
	if (expect <= head->tip_seq)
	{
		char *key = archive_log_key(expect);

		walk_damage(&w, key, "missing from the log (\"%s\" names seq %" PRIu64 " as the tip, and the log ends at seq %"
					PRIu64 ")", ARCHIVE_HEAD_KEY, head->tip_seq, expect - 1);
		free(key);
	}
	rc = BS_OK;
out:
	strbuf_free(&bytes);
	archive_view_free(L);
	return rc;
}

struct archive_tables
{
	storage *st;
	archive_view *view;			/* format 3; NULL: the manifests */
	uint32_t *relids;
	int n;
};

int
archive_tables_open(storage *st, const archive_head *head, archive_tables **out, bs_error *err)
{
	archive_tables *t = xcalloc(1, sizeof(*t));

	*out = NULL;
	t->st = st;
	if (is_format3(head))
	{
		if (archive_view_open(st, head, &t->view, err) != BS_OK)
		{
			free(t);
			return BS_ERR;
		}
		archive_view_relids(t->view, &t->relids, &t->n);
	}
	else if (manifest_list_relids(st, &t->relids, &t->n, err) != BS_OK)
	{
		free(t);
		return BS_ERR;
	}
	*out = t;
	return BS_OK;
}

void
archive_tables_free(archive_tables *t)
{
	if (t == NULL)
		return;
	archive_view_free(t->view);
	free(t->relids);
	free(t);
}

const uint32_t *
archive_tables_relids(const archive_tables *t, int *n)
{
	*n = t->n;
	return t->relids;
}

int
archive_tables_load(archive_tables *t, uint32_t relid, manifest **out, bool *exists, bs_error *err)
{
	if (t->view == NULL)
		return manifest_load(t->st, relid, out, exists, err);
	return archive_view_table(t->view, relid, out, NULL, exists, err);
}
