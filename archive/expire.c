/* expire.c — retention: which base copies and segments of a table a policy keeps, and the objects that go. */
#include "expire.h"
#include "audit.h"
#include "lsn.h"
#include "manifest_keys.h"
#include "strbuf.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

static void
add_key(storage_keys *k, const char *key)
{
	storage_collect_key(k, key, 0, NULL);
}

/* The time a table's window is counted back from: now, or for a dropped table its drop
 * (as far as the archive shows it: its newest change or base, which is before the drop). */
static int64_t
window_end(const manifest *m, int64_t now_us)
{
	int64_t t;

	if (strcmp(m->status, "dropped") != 0)
		return now_us;
	t = m->bases[m->nbases - 1].time;
	for (int i = 0; i < m->nsegments; i++)
		if (m->segments[i].last_time > t)
			t = m->segments[i].last_time;
	return t;
}

/* Would keeping from base k drop a segment holding a commit at or after cutoff?  (Only
 * when clocks disagree: a commit below a base's LSN precedes the base's time.) */
static bool
drops_window(const manifest *m, int k, int64_t cutoff)
{
	for (int i = 0; i < m->nsegments; i++)
		if (m->segments[i].last_end_lsn <= m->bases[k].lsn && m->segments[i].last_time >= cutoff)
			return true;
	return false;
}

void
expire_select(const manifest *m, const expire_policy *policy, int64_t now_us, expire_plan *out)
{
	int k;

	memset(out, 0, sizeof(*out));
	out->first_kept = -1;
	if (m->nbases == 0 || strcmp(m->status, "skipped") == 0)
		return;
	out->window_end_time = window_end(m, now_us);
	/* The newest base is always kept: never the only base copy of a table. */
	k = m->nbases - 1;
	if (policy->keep_window_us > 0)
	{
		int64_t cutoff = out->window_end_time - policy->keep_window_us;
		int kw = 0;

		/* Recovery at a time T starts from the newest base taken at or before T: for every
		 * T in the window, that is the newest base taken at or before the window's start
		 * or a later one. */
		for (int i = 0; i < m->nbases; i++)
			if (m->bases[i].time <= cutoff)
				kw = i;
		while (kw > 0 && drops_window(m, kw, cutoff))
			kw--;
		if (kw < k)
			k = kw;
	}
	if (policy->keep_bases > 0)
	{
		int kn = policy->keep_bases >= m->nbases ? 0 : m->nbases - (int) policy->keep_bases;

		/* What either rule keeps is kept: the older of the two starts. */
		if (kn < k)
			k = kn;
	}
	if (policy->keep_window_us <= 0 && policy->keep_bases <= 0)
		k = 0;					/* no rule: keep everything */
	out->first_kept = k;
	out->keep_from = m->bases[k].lsn;
	out->keep_from_time = m->bases[k].time;
	out->drop_segment = calloc((size_t) m->nsegments + 1, sizeof(bool));
	if (out->drop_segment == NULL)
		abort();
	for (int i = 0; i < k; i++)
	{
		const manifest_base *b = &m->bases[i];

		out->nbases++;
		if (b->schema_key)
			add_key(&out->keys, b->schema_key);
		for (int c = 0; c < b->nchunks; c++)
		{
			add_key(&out->keys, b->chunks[c].key);
			out->bytes += b->chunks[c].size;
		}
	}
	/* A segment ending at or before the kept base holds only commits below it (a record's
	 * commit LSN is below its end LSN): recovery from that base never reads it. */
	for (int i = 0; i < m->nsegments; i++)
	{
		const manifest_segment *s = &m->segments[i];

		if (s->last_end_lsn > out->keep_from)
			continue;
		out->drop_segment[i] = true;
		out->nsegments++;
		/* A pack holds other tables' runs too: it is deleted only when every run it holds
		 * has expired (doc/design/format2.md 3.9), never for one table's. */
		if (s->source == MANIFEST_SEGMENT_PACK)
			continue;
		out->bytes += s->size;
		add_key(&out->keys, s->key);
	}
	out->changes = out->nbases > 0 || out->nsegments > 0;
}

void
expire_apply(manifest *m, const expire_plan *plan, int64_t now_us)
{
	int n = 0;

	if (!plan->changes || plan->first_kept < 0)
		return;
	for (int i = 0; i < plan->first_kept; i++)
	{
		manifest_base *b = &m->bases[i];

		free(b->schema_key);
		free(b->definition);
		for (int c = 0; c < b->nchunks; c++)
			free(b->chunks[c].key);
		free(b->chunks);
	}
	memmove(m->bases, m->bases + plan->first_kept, (size_t) (m->nbases - plan->first_kept) * sizeof(manifest_base));
	m->nbases -= plan->first_kept;
	for (int i = 0; i < m->nsegments; i++)
	{
		if (plan->drop_segment[i])
			free(m->segments[i].key);
		else
			m->segments[n++] = m->segments[i];
	}
	m->nsegments = n;
	if (plan->keep_from > m->expired_before)
		m->expired_before = plan->keep_from;
	m->expired_time = now_us;
}

void
expire_plan_free(expire_plan *plan)
{
	free(plan->drop_segment);
	storage_keys_free(&plan->keys);
	memset(plan, 0, sizeof(*plan));
	plan->first_kept = -1;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* "base/<16 hex>/..." after the table's directory: the base's LSN. */
static bool
base_object_lsn(const char *rest, uint64_t *lsn)
{
	char part[17];

	if (strncmp(rest, "base/", 5) != 0 || strlen(rest) < 5 + 16 + 2 || rest[21] != '/')
		return false;
	memcpy(part, rest + 5, 16);
	part[16] = '\0';
	return lsn_parse_key(part, lsn) == BS_OK;
}

/* Old enough that no upload still in progress can be writing it. */
static int
old_enough(storage *st, const char *key, int64_t min_age_s, int64_t now_s, bool *old, bs_error *err)
{
	bool exists = false;
	storage_stat stat = {0, 0};

	*old = false;
	if (min_age_s <= 0)
	{
		*old = true;
		return BS_OK;
	}
	if (storage_head(st, key, &exists, &stat, err) != BS_OK)
		return BS_ERR;
	/* An unknown time (0) is never old enough. */
	*old = exists && stat.mtime > 0 && now_s - stat.mtime >= min_age_s;
	return BS_OK;
}

int
expire_orphans(storage *st, const manifest *m, const char *const *keys, int nkeys, int64_t min_age_s,
			   int64_t now_s, storage_keys *out, bs_error *err)
{
	const char **refs = NULL;
	int nrefs = 0;

	memset(out, 0, sizeof(*out));
	if (m)
	{
		int cap = m->nsegments + 2;

		for (int i = 0; i < m->nbases; i++)
			cap += m->bases[i].nchunks + 1;
		refs = xcalloc((size_t) cap, sizeof(char *));
		for (int i = 0; i < m->nbases; i++)
		{
			if (m->bases[i].schema_key)
				refs[nrefs++] = m->bases[i].schema_key;
			for (int c = 0; c < m->bases[i].nchunks; c++)
				refs[nrefs++] = m->bases[i].chunks[c].key;
		}
		for (int i = 0; i < m->nsegments; i++)
			refs[nrefs++] = m->segments[i].key;
		if (nrefs > 1)
			qsort(refs, (size_t) nrefs, sizeof(char *), cmp_str);
	}
	for (int i = 0; i < nkeys; i++)
	{
		uint32_t relid;
		const char *rest;
		uint64_t first,
			end,
			lsn;
		bool old;

		if (manifest_key_relid(keys[i], &relid, &rest) != BS_OK || strcmp(rest, "manifest.json") == 0)
			continue;
		if (m == NULL)
		{
			/* No manifest ever stored (the caller checked head.json): an abandoned first copy. */
			if (old_enough(st, keys[i], min_age_s, now_s, &old, err) != BS_OK)
				goto fail;
			if (old)
				add_key(out, keys[i]);
			continue;
		}
		if (relid != m->relid)
			continue;
		if (nrefs > 0 && bsearch(&keys[i], refs, (size_t) nrefs, sizeof(char *), cmp_str))
			continue;
		if (audit_segment_range(rest, &first, &end))
		{
			/* Wholly below the expired range: listed once, removed from the manifest by an
			 * expiry that did not get to delete it.  Others are audit's evidence. */
			if (m->expired_before && end <= m->expired_before)
				add_key(out, keys[i]);
			continue;
		}
		if (!base_object_lsn(rest, &lsn))
			continue;
		if (m->expired_before && lsn < m->expired_before)
		{
			add_key(out, keys[i]);
			continue;
		}
		/* A base copy not in the manifest: abandoned (the table was dropped during its copy,
		 * or the copy failed), or still being uploaded: only once it is old enough. */
		if (old_enough(st, keys[i], min_age_s, now_s, &old, err) != BS_OK)
			goto fail;
		if (old)
			add_key(out, keys[i]);
	}
	free(refs);
	return BS_OK;
fail:
	free(refs);
	storage_keys_free(out);
	return BS_ERR;
}

bool
expire_table_matches(const char *patterns, const char *schema, const char *name)
{
	char *list,
	   *save = NULL;
	strbuf qn = STRBUF_INIT;
	bool match = false;

	if (patterns == NULL || patterns[0] == '\0')
		return true;
	strbuf_printf(&qn, "%s.%s", schema, name);
	list = xstrdup(patterns);
	for (char *p = strtok_r(list, ",", &save); p && !match; p = strtok_r(NULL, ",", &save))
	{
		while (*p == ' ')
			p++;
		/* A pattern without a schema means public, as table names do elsewhere. */
		if (strchr(p, '.') == NULL)
			match = strcmp(schema, "public") == 0 && fnmatch(p, name, 0) == 0;
		else
			match = fnmatch(p, qn.data, 0) == 0;
	}
	free(list);
	strbuf_free(&qn);
	return match;
}
