/* pghash.h — PostgreSQL's hash_bytes_extended (Jenkins lookup3), the per-row term of Backstop's content checksum. */
#ifndef BACKSTOP_PGHASH_H
#define BACKSTOP_PGHASH_H

#include <stddef.h>
#include <stdint.h>

/*
 * The value of SQL hashtextextended(text, 0) for the UTF-8 bytes of a text under a
 * deterministic collation (what PostgreSQL's hash partitioning relies on, so it does not
 * change between releases).  Computed here from the algorithm; only seed 0 is needed.
 */
int64_t pghash_text(const void *data, size_t len);

#endif
