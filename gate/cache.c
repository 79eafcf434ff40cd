/* cache.c — exact-text cache of gate classifications, keyed so that a changed context cannot reuse one. */
#include "cache.h"
#include "strbuf.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry
{
	uint64_t hash;
	uint64_t epoch;
	char *sql;
	size_t len;
	char *context;
	gate_result *result;
	int next;					/* next entry in the bucket, or -1 */
	bool used;
} entry;

struct gate_cache
{
	entry *entries;
	int capacity;
	int *buckets;				/* first entry of each bucket, or -1 */
	int nbuckets;				/* a power of two */
	int ring;					/* next entry to (re)use: entries are replaced oldest first */
	int count;
	gate_cache_stats stats;
};

/* 64-bit hash, eight bytes at a time (a multiply-xorshift mix; not for adversarial keys
 * beyond filling a bucket: every hit is confirmed by comparing the bytes). */
static uint64_t
mix(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;

	while (len >= 8)
	{
		uint64_t w;

		memcpy(&w, p, 8);
		h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
		h ^= h >> 29;
		p += 8;
		len -= 8;
	}
	if (len)
	{
		uint64_t w = 0;

		memcpy(&w, p, len);
		h = (h ^ w ^ ((uint64_t) len << 56)) * 0x9E3779B97F4A7C15ULL;
		h ^= h >> 29;
	}
	return h;
}

static uint64_t
key_hash(const char *sql, size_t len, const char *context, uint64_t epoch)
{
	uint64_t h = 0xCBF29CE484222325ULL ^ len;

	h = mix(h, sql, len);
	if (context)
		h = mix(h ^ 0x51ED270B27A3C5F1ULL, context, strlen(context));
	h = mix(h, &epoch, sizeof(epoch));
	return h ^ (h >> 31);
}

gate_cache *
gate_cache_new(int capacity)
{
	gate_cache *c = xcalloc(1, sizeof(*c));

	if (capacity < 1)
		capacity = 1;
	c->capacity = capacity;
	c->entries = xcalloc((size_t) capacity, sizeof(entry));
	c->nbuckets = 1;
	while (c->nbuckets < capacity * 2)
		c->nbuckets <<= 1;
	c->buckets = xmalloc(sizeof(int) * (size_t) c->nbuckets);
	for (int i = 0; i < c->nbuckets; i++)
		c->buckets[i] = -1;
	return c;
}

static void
entry_clear(entry *e)
{
	free(e->sql);
	free(e->context);
	gate_result_free(e->result);
	memset(e, 0, sizeof(*e));
	e->next = -1;
}

void
gate_cache_free(gate_cache *c)
{
	if (c == NULL)
		return;
	for (int i = 0; i < c->capacity; i++)
		if (c->entries[i].used)
			entry_clear(&c->entries[i]);
	free(c->entries);
	free(c->buckets);
	free(c);
}

static bool
same_key(const entry *e, uint64_t hash, const char *sql, size_t len, const char *context, uint64_t epoch)
{
	return e->hash == hash && e->len == len && e->epoch == epoch &&
		((e->context == NULL && context == NULL) ||
		 (e->context && context && strcmp(e->context, context) == 0)) &&
		memcmp(e->sql, sql, len) == 0;
}

const gate_result *
gate_cache_get(gate_cache *c, const char *sql, size_t len, const char *context, uint64_t epoch)
{
	uint64_t h = key_hash(sql, len, context, epoch);

	for (int i = c->buckets[h & (uint64_t) (c->nbuckets - 1)]; i >= 0; i = c->entries[i].next)
		if (same_key(&c->entries[i], h, sql, len, context, epoch))
		{
			c->stats.hits++;
			return c->entries[i].result;
		}
	c->stats.misses++;
	return NULL;
}

static void
unlink_entry(gate_cache *c, int idx)
{
	entry *e = &c->entries[idx];
	int *link = &c->buckets[e->hash & (uint64_t) (c->nbuckets - 1)];

	while (*link >= 0 && *link != idx)
		link = &c->entries[*link].next;
	if (*link == idx)
		*link = e->next;
}

void
gate_cache_put(gate_cache *c, const char *sql, size_t len, const char *context, uint64_t epoch, gate_result *r)
{
	uint64_t h;
	int idx;
	entry *e;

	if (r == NULL)
		return;
	if (!r->cacheable)
	{
		gate_result_free(r);
		return;
	}
	h = key_hash(sql, len, context, epoch);
	for (int i = c->buckets[h & (uint64_t) (c->nbuckets - 1)]; i >= 0; i = c->entries[i].next)
		if (same_key(&c->entries[i], h, sql, len, context, epoch))
		{
			gate_result_free(c->entries[i].result);
			c->entries[i].result = r;
			return;
		}
	idx = c->ring;
	c->ring = (c->ring + 1) % c->capacity;
	e = &c->entries[idx];
	if (e->used)
	{
		unlink_entry(c, idx);
		entry_clear(e);
		c->stats.evictions++;
		c->count--;
	}
	e->used = true;
	e->hash = h;
	e->epoch = epoch;
	e->sql = xstrndup(sql, len);
	e->len = len;
	e->context = context ? xstrdup(context) : NULL;
	e->result = r;
	e->next = c->buckets[h & (uint64_t) (c->nbuckets - 1)];
	c->buckets[h & (uint64_t) (c->nbuckets - 1)] = idx;
	c->count++;
}

void
gate_cache_get_stats(const gate_cache *c, gate_cache_stats *out)
{
	*out = c->stats;
	out->entries = c->count;
}
