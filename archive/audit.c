/* audit.c — evidence that a table's manifest was rolled back, edited or deleted: its generation against head.json, and the segments stored beside it that it does not list. */
#include "audit.h"
#include "ident.h"
#include "lsn.h"
#include "manifest_head.h"
#include "manifest_keys.h"
#include "manifest_store.h"
#include "object.h"
#include "segfetch.h"
#include "segment.h"
#include "strbuf.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *) a;
	uint64_t y = *(const uint64_t *) b;

	return x < y ? -1 : x > y;
}

/* A failure about the archive's content, not about reaching it. */
static bool
is_integrity(const bs_error *err)
{
	return strcmp(err->code, ERRCODE_DATA_CORRUPTED) == 0 || strcmp(err->code, ERRCODE_NOT_FOUND) == 0;
}

static void __attribute__((format(printf, 6, 7)))
add_finding(audit_finding **arr, int *n, const char *key, uint64_t from, uint64_t to, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	audit_finding *f;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	*arr = xrealloc(*arr, (size_t) (*n + 1) * sizeof(audit_finding));
	f = &(*arr)[(*n)++];
	f->key = xstrdup(key);
	f->message = msg;
	f->doubt_from = from;
	f->doubt_to = to;
}

void
audit_report_free(audit_report *r)
{
	for (int i = 0; i < r->nproblems; i++)
	{
		free(r->problems[i].key);
		free(r->problems[i].message);
	}
	for (int i = 0; i < r->nwarnings; i++)
	{
		free(r->warnings[i].key);
		free(r->warnings[i].message);
	}
	free(r->problems);
	free(r->warnings);
	memset(r, 0, sizeof(*r));
}

uint64_t
audit_complete_to(const manifest *m, const archive_head *head)
{
	uint64_t c = m->archived_to;

	if (head && strcmp(m->status, "active") == 0 && head->flushed_lsn > c)
		c = head->flushed_lsn;
	return c;
}

bool
audit_segment_range(const char *rest, uint64_t *first, uint64_t *end)
{
	return manifest_segment_name_parse(rest, first, end) == BS_OK && *end >= *first;
}

/* Transactions of a raw segment: (commit LSN, end LSN) pairs, one per transaction. */
typedef struct txn_list
{
	uint64_t *commit;
	uint64_t *end;
	int n;
	int cap;
} txn_list;

static int
segment_transactions(const strbuf *raw, txn_list *out, bs_error *err)
{
	segment_reader rd;
	segment_record rec;
	bool eof = false;

	if (segment_reader_init(&rd, raw->data ? raw->data : "", raw->len, err) != BS_OK)
		return BS_ERR;
	for (;;)
	{
		if (segment_reader_next(&rd, &rec, &eof, err) != BS_OK)
			return BS_ERR;
		if (eof)
			return BS_OK;
		if (out->n > 0 && out->end[out->n - 1] == rec.end_lsn)
			continue;
		if (out->n == out->cap)
		{
			out->cap = out->cap ? out->cap * 2 : 64;
			out->commit = xrealloc(out->commit, (size_t) out->cap * sizeof(uint64_t));
			out->end = xrealloc(out->end, (size_t) out->cap * sizeof(uint64_t));
		}
		out->commit[out->n] = rec.commit_lsn;
		out->end[out->n] = rec.end_lsn;
		out->n++;
	}
}

static void
txn_list_free(txn_list *t)
{
	free(t->commit);
	free(t->end);
	memset(t, 0, sizeof(*t));
}

/*
 * An unlisted segment [first, end] below the complete position c: which of its transactions
 * (committed in [lo, c), lo being the oldest base) no listed segment holds.
 */
static int
audit_orphan(storage *st, const manifest *m, const char *key, uint64_t first, uint64_t end, uint64_t lo,
			 uint64_t c, const char *claim, audit_report *out, bs_error *err)
{
	strbuf raw = STRBUF_INIT;
	txn_list orphan = {0};
	txn_list listed = {0};
	object_info info;
	bs_error e;
	char a[LSN_BUFLEN],
		b[LSN_BUFLEN],
		cl[LSN_BUFLEN];
	const char *unreadable_listed = NULL;
	segfetch *sf = segfetch_new();
	int missing = 0;
	uint64_t miss_lo = UINT64_MAX,
		miss_hi = 0;
	int rc = BS_OK;

	lsn_format(c, cl);
	error_clear(&e);
	if (object_get_all(st, key, NULL, &raw, &info, &e) != BS_OK ||
		segment_transactions(&raw, &orphan, &e) != BS_OK)
	{
		if (!is_integrity(&e))
		{
			*err = e;
			rc = BS_ERR;
			goto out;
		}
		add_finding(&out->problems, &out->nproblems, key, first > lo ? first : lo, end,
					"not listed in the manifest and below %s, to which %s says the table is complete, "
					"but unreadable (%s): the changes committed from %s to %s may be missing from the manifest",
					cl, claim, e.message, lsn_format(first, a), lsn_format(end, b));
		goto out;
	}
	/* A transaction of the orphan, if listed at all, is in a listed segment overlapping it. */
	for (int i = 0; i < m->nsegments; i++)
	{
		const manifest_segment *s = &m->segments[i];
		strbuf sraw = STRBUF_INIT;
		segfetch_info sinfo;

		if (s->first_lsn > end || s->last_end_lsn < first)
			continue;
		error_clear(&e);
		if (segfetch_read_all(sf, st, m->relid, s, &sraw, &sinfo, &e) != BS_OK ||
			segment_transactions(&sraw, &listed, &e) != BS_OK)
		{
			strbuf_free(&sraw);
			if (!is_integrity(&e))
			{
				*err = e;
				rc = BS_ERR;
				goto out;
			}
			/* Damage of its own (verify reports it); here: nothing it holds confirms. */
			unreadable_listed = s->key;
			continue;
		}
		strbuf_free(&sraw);
	}
	if (listed.n > 1)
		qsort(listed.end, (size_t) listed.n, sizeof(uint64_t), cmp_u64);
	for (int i = 0; i < orphan.n; i++)
	{
		/* Before the oldest base, at or past the claim, or in a gap the manifest declares:
		 * the manifest never claimed it. */
		if (orphan.commit[i] < lo || orphan.commit[i] >= c || manifest_gap_in(m, orphan.commit[i], orphan.commit[i] + 1))
			continue;
		if (listed.n > 0 && bsearch(&orphan.end[i], listed.end, (size_t) listed.n, sizeof(uint64_t), cmp_u64))
			continue;
		missing++;
		if (orphan.commit[i] < miss_lo)
			miss_lo = orphan.commit[i];
		if (orphan.commit[i] > miss_hi)
			miss_hi = orphan.commit[i];
	}
	if (missing == 0)
		add_finding(&out->warnings, &out->nwarnings, key, 0, 0,
					"not listed in the manifest, but every transaction it holds below %s is in listed segments "
					"(a leftover of an upload sent again)", cl);
	else
		add_finding(&out->problems, &out->nproblems, key, miss_lo, miss_hi + 1,
					"not listed in the manifest, yet holds %d transaction(s) committed from %s to %s that no listed "
					"segment has%s%s%s, below %s, to which %s says the table is complete: a segment entry was removed "
					"from the manifest, or the manifest was replaced by an older copy",
					missing, lsn_format(miss_lo, a), lsn_format(miss_hi, b),
					unreadable_listed ? " (the listed segment " : "", unreadable_listed ? unreadable_listed : "",
					unreadable_listed ? " is unreadable)" : "", cl, claim);
out:
	segfetch_free(sf);
	strbuf_free(&raw);
	txn_list_free(&orphan);
	txn_list_free(&listed);
	return rc;
}

int
audit_table(storage *st, const manifest *m, const archive_head *head, const char *const *keys, int nkeys,
			audit_report *out, bs_error *err)
{
	const archive_head_table *rec = head ? archive_head_find_table(head, m->relid) : NULL;
	char *mkey = manifest_key(m->relid);
	storage_keys listing = {0};
	const char **listed = NULL;
	uint64_t c = audit_complete_to(m, head);
	const char *claim = c > m->archived_to ? "head.json (flushed_lsn)" : "the manifest (archived_to)";
	char a[LSN_BUFLEN];
	int rc = BS_OK;

	memset(out, 0, sizeof(*out));
	if (rec && m->generation < rec->generation)
	{
		if (m->generation == 0)
			add_finding(&out->problems, &out->nproblems, mkey, m->archived_to, UINT64_MAX,
						"manifest has no generation (format 1), but head.json records generation %" PRIu64
						" for it: it was replaced by an older copy (rolled back) and lists changes only up to %s",
						rec->generation, lsn_format(m->archived_to, a));
		else
			add_finding(&out->problems, &out->nproblems, mkey, m->archived_to, UINT64_MAX,
						"manifest is generation %" PRIu64 ", but head.json records generation %" PRIu64
						" for it: it was replaced by an older copy (rolled back) and lists changes only up to %s",
						m->generation, rec->generation, lsn_format(m->archived_to, a));
	}
	if (m->nbases == 0)
		goto out;				/* nothing recoverable: no change can be in doubt */

	if (keys == NULL)
	{
		char *prefix = manifest_segment_prefix(m->relid);

		rc = storage_list(st, prefix, storage_collect_key, &listing, err);
		if (rc != BS_OK)
			error_prefix(err, "could not list \"%s\"", prefix);
		free(prefix);
		if (rc != BS_OK)
			goto out;
		keys = (const char *const *) listing.keys;
		nkeys = listing.count;
	}
	listed = xcalloc((size_t) m->nsegments + 1, sizeof(char *));
	for (int i = 0; i < m->nsegments; i++)
		listed[i] = m->segments[i].key;
	if (m->nsegments > 1)
		qsort(listed, (size_t) m->nsegments, sizeof(char *), cmp_str);
	for (int i = 0; i < nkeys && rc == BS_OK; i++)
	{
		uint32_t relid;
		const char *rest;
		uint64_t first,
			end;

		if (manifest_key_relid(keys[i], &relid, &rest) != BS_OK || relid != m->relid ||
			!audit_segment_range(rest, &first, &end))
			continue;
		/* At or beyond the complete position: an upload not listed yet (interrupted or in
		 * progress), which says nothing about what the manifest lists. */
		if (first >= c)
			continue;
		if (m->nsegments > 0 && bsearch(&keys[i], listed, (size_t) m->nsegments, sizeof(char *), cmp_str))
			continue;
		/* Wholly below what retention removed: dropped from the manifest by an expiry that
		 * did not get to delete it (nothing recovers from there any more). */
		if (m->expired_before && end <= m->expired_before)
		{
			add_finding(&out->warnings, &out->nwarnings, keys[i], 0, 0,
						"not listed in the manifest: expired (below %s, where the archive's retention cut), "
						"left by an interrupted expire; the next backstop expire removes it",
						lsn_format(m->expired_before, a));
			continue;
		}
		rc = audit_orphan(st, m, keys[i], first, end, m->bases[0].lsn, c, claim, out, err);
	}
out:
	free(listed);
	storage_keys_free(&listing);
	free(mkey);
	if (rc != BS_OK)
		audit_report_free(out);
	return rc;
}

int
audit_check_range(const audit_report *r, const manifest *m, uint64_t from, uint64_t to, bs_error *err)
{
	for (int i = 0; i < r->nproblems; i++)
	{
		const audit_finding *f = &r->problems[i];
		char a[LSN_BUFLEN];

		if (from < f->doubt_to && f->doubt_from < to)
			return error_set(err, ERRCODE_DATA_CORRUPTED,
							 "the archive of %s.%s cannot rebuild this point exactly: %s: %s; changes committed "
							 "from LSN %s on may be missing (an earlier point is not affected; restoring the "
							 "manifest repairs it)",
							 m->schema, m->name, f->key, f->message, lsn_format(f->doubt_from, a));
	}
	return BS_OK;
}

static int
count_key(void *ctx, const char *key, uint64_t size, bs_error *err)
{
	(void) key;
	(void) size;
	(void) err;
	(*(int *) ctx)++;
	return BS_OK;
}

int
audit_find_table(storage *st, const archive_head *head, const char *qualified_name, manifest **out,
				 bs_error *err)
{
	return audit_find_table_at(st, head, qualified_name, UINT64_MAX, out, err);
}

int
audit_find_table_at(storage *st, const archive_head *head, const char *qualified_name, uint64_t lsn,
					manifest **out, bs_error *err)
{
	char *schema = NULL;
	char *name = NULL;
	bs_error found_err;
	int rc;

	rc = manifest_find_table_at(st, qualified_name, lsn, out, err);
	if (head == NULL || head->ntables == 0)
		return rc;
	if (rc != BS_OK && strcmp(err->code, ERRCODE_UNDEFINED_TABLE) != 0)
		return rc;
	if (rc != BS_OK)
		found_err = *err;
	else
		error_clear(&found_err);
	if (ident_split_name(qualified_name, &schema, &name, err) != BS_OK)
		return BS_ERR;
	for (int i = 0; i < head->ntables; i++)
	{
		const archive_head_table *t = &head->tables[i];
		char *mkey;
		bool exists = false;
		storage_stat stat;
		int nobj = 0;
		char *prefix;

		if (strcmp(t->schema, schema) != 0 || strcmp(t->name, name) != 0 || (*out && (*out)->relid == t->relid))
			continue;
		mkey = manifest_key(t->relid);
		if (storage_head(st, mkey, &exists, &stat, err) != BS_OK)
		{
			error_prefix(err, "could not read \"%s\"", mkey);
			free(mkey);
			goto fail;
		}
		if (exists)
		{
			free(mkey);
			continue;
		}
		prefix = manifest_table_prefix(t->relid);
		if (storage_list(st, prefix, count_key, &nobj, err) != BS_OK)
		{
			error_prefix(err, "could not list \"%s\"", prefix);
			free(prefix);
			free(mkey);
			goto fail;
		}
		error_set(err, ERRCODE_DATA_CORRUPTED,
				  "the archive of %s.%s is damaged: %s is missing, but head.json records generation %" PRIu64
				  " of it (relid %" PRIu32 "): the manifest was deleted; %d object(s) remain under %s, which "
				  "cannot be used without it%s",
				  schema, name, mkey, t->generation, t->relid, nobj, prefix,
				  *out ? " (another table of that name is archived, but it may not be the newest)" : "");
		free(prefix);
		free(mkey);
		goto fail;
	}
	free(schema);
	free(name);
	if (rc != BS_OK)
		*err = found_err;
	return rc;
fail:
	free(schema);
	free(name);
	manifest_free(*out);
	*out = NULL;
	return BS_ERR;
}
