/* cache.h — exact-text cache of gate classifications, keyed so that a changed context cannot reuse one. */
#ifndef BACKSTOP_GATE_CACHE_H
#define BACKSTOP_GATE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "gate.h"

/*
 * A classification depends on the exact text and, with a catalog, on the session it was made
 * in.  The key is the text's bytes, a context string (the session's user, its resolved
 * search_path including the temporary schema, the policy's trusted functions) and a catalog
 * epoch the caller advances whenever the catalog may have changed (DDL it ran or was told
 * of).  Results that depend on session state (PREPARE/EXECUTE, transaction control,
 * functions created in the session, a search_path change) are never cached.
 */
typedef struct gate_cache gate_cache;

gate_cache *gate_cache_new(int capacity);
void gate_cache_free(gate_cache *c);

/* The cached result, owned by the cache (valid until the next gate_cache_put), or NULL. */
const gate_result *gate_cache_get(gate_cache *c, const char *sql, size_t len, const char *context, uint64_t epoch);
/* Keep r (the cache takes it; one not cacheable is freed at once).  The oldest entry makes
 * room when the cache is full. */
void gate_cache_put(gate_cache *c, const char *sql, size_t len, const char *context, uint64_t epoch, gate_result *r);

typedef struct gate_cache_stats
{
	uint64_t hits;
	uint64_t misses;
	uint64_t evictions;
	int entries;
} gate_cache_stats;

void gate_cache_get_stats(const gate_cache *c, gate_cache_stats *out);

#endif
