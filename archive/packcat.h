/* packcat.h — the catalog (doc/design/format2.md 3.4): every table's folded state at a pack sequence number, a directory and copy-on-write pages, strictly read. */
#ifndef BACKSTOP_PACKCAT_H
#define BACKSTOP_PACKCAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "manifest.h"
#include "pack.h"
#include "storage.h"
#include "strbuf.h"

/*
 * Stored form (JSON, compact):
 *   catalog/<SEQ>/dir.json    {"format":3,"seq","seal_lsn","pack_sha256","pages":[{"key","sha256",
 *                             "size","first_relid","tables"}],"tables":[{"relid","page","schema",
 *                             "name","status","archived_to"?,"first_base_lsn"?,"names"}]}
 *   catalog/<SEQ>/<NNNN>.json {"format":3,"tables":[{"relid","last_event_lsn","archived_to"?,
 *                             "table":{the manifest's members but format, generation,
 *                             archived_to and segments}}]}
 * SEQ is 16 hex digits, NNNN 4 decimal digits (the page's index in the catalog that wrote it).
 * Tables are sorted by relid; a page holds 1 to PACKCAT_PAGE_TABLES consecutive ones.  A dir
 * names pages of older catalogs for the pages whose tables did not change (copy-on-write).
 * archived_to is absent where it is the log's: an active table with a base and no open gap is
 * archived to the seal LSN of the catalog (or of any later one that names the page).
 */
#define PACKCAT_PREFIX "catalog/"
#define PACKCAT_FORMAT 3
#define PACKCAT_PAGE_TABLES 256
#define PACKCAT_PAGES_MAX 9999
#define PACKCAT_DIR_MAX ((uint64_t) 64 * 1024 * 1024)
#define PACKCAT_PAGE_MAX ((uint64_t) 16 * 1024 * 1024)

typedef struct packcat_page_ref
{
	char *key;
	char sha256[65];			/* of the page's stored bytes */
	uint64_t size;
	uint32_t first_relid;		/* its first table's */
	int ntables;
} packcat_page_ref;

/* What the dir says of a table: enough to resolve a name (manifest_find_table_at's rules). */
typedef struct packcat_table
{
	uint32_t relid;
	int page;					/* index in pages[] */
	char *schema;				/* current name */
	char *name;
	char *status;
	bool follows_log;			/* archived_to is the catalog's seal LSN */
	uint64_t archived_to;		/* resolved */
	uint64_t first_base_lsn;	/* 0: no base */
	int nnames;					/* the name history, as in the manifest */
	manifest_name *names;
} packcat_table;

typedef struct packcat_dir
{
	char *key;
	uint64_t seq;				/* the last pack folded */
	uint64_t seal_lsn;			/* its seal LSN */
	char pack_sha256[65];		/* SHA-256 of its stored bytes: the next pack's prev */
	int npages;
	packcat_page_ref *pages;
	int ntables;
	packcat_table *tables;		/* sorted by relid */
} packcat_dir;

/* catalog/<SEQ>/dir.json and catalog/<SEQ>/<NNNN>.json */
char *packcat_dir_key(uint64_t seq);
char *packcat_page_key(uint64_t seq, int page);

/*
 * A dir read from key, strictly (types, order, counts, keys, unknown members refused): damage
 * is ERRCODE_DATA_CORRUPTED naming the key and the member.
 */
int packcat_dir_from_json(const char *key, const char *json, size_t len, packcat_dir **out, bs_error *err);
void packcat_dir_free(packcat_dir *dir);

/* The dir's entry of relid, NULL when none. */
const packcat_table *packcat_find_relid(const packcat_dir *dir, uint32_t relid);
/*
 * The table named schema.name at lsn (UINT64_MAX: now), by the rules of
 * manifest_find_table_at: the table that had the name then, else the one that has it now,
 * else one that had it once; ties go to the table archived last, then the highest relid.
 * None: ERRCODE_UNDEFINED_TABLE.
 */
int packcat_find_name(const packcat_dir *dir, const char *schema, const char *name, uint64_t lsn,
					  const packcat_table **out, bs_error *err);

/*
 * relid's state from the stored bytes of its page (pages[dir's entry's page]): size and SHA-256
 * checked against the dir, the page read strictly, its tables the ones the dir puts there, the
 * entry agreeing with the dir's (names, status, archived_to, first base); archived_to
 * resolved.  The manifest has no segments and passes manifest_validate.
 */
int packcat_page_table(const packcat_dir *dir, uint32_t relid, const void *data, size_t len, manifest **m,
					   uint64_t *last_event_lsn, bs_error *err);

/* Whole objects: get puts key's bytes into out (replaced; a missing key ERRCODE_NOT_FOUND). */
typedef int (*packcat_get_fn) (void *ctx, const char *key, strbuf *out, bs_error *err);
typedef int (*packcat_put_fn) (void *ctx, const char *key, const void *data, size_t len, bs_error *err);
/* Over a storage (ctx is the storage *): at most PACKCAT_DIR_MAX bytes are read. */
int packcat_storage_get(void *ctx, const char *key, strbuf *out, bs_error *err);
int packcat_storage_put(void *ctx, const char *key, const void *data, size_t len, bs_error *err);

/* catalog/<seq>/dir.json read and checked (1 GET). */
int packcat_load_dir(packcat_get_fn get, void *ctx, uint64_t seq, packcat_dir **out, bs_error *err);
/* relid's state at the dir's seq (1 GET: its page).  Not in the catalog: ERRCODE_NOT_FOUND. */
int packcat_load_table(const packcat_dir *dir, uint32_t relid, packcat_get_fn get, void *ctx, manifest **m,
					   uint64_t *last_event_lsn, bs_error *err);
/*
 * relid's manifest at the last of packs: its state in the catalog (when the dir has it)
 * folded forward over packs, which follow the dir's seq (fold_table_from: contiguous, the
 * first naming the dir's pack_sha256 as prev).  No packs: the catalog's state.
 * *last_event_lsn (may be NULL) gets the LSN of the table's last event folded: the page's
 * last_event_lsn when no pack has an event of it (what a writer appending events needs as
 * mdelta_events' lsn_floor).
 */
int packcat_fold_table(const packcat_dir *dir, uint32_t relid, packcat_get_fn get, void *ctx,
					   const pack_index *const *packs, int npacks, manifest **out, uint64_t *last_event_lsn,
					   bs_error *err);

/*
 * Write the catalog at the last of packs: prev (NULL: none; packs then start at seq 1) folded
 * forward over packs (every event checked, fold_check_pack), tip_sha256 the hex SHA-256 of
 * the last pack's stored bytes.  Only the pages of tables the packs touch (events or runs)
 * are read (through get) and written; a page whose bytes come out the same keeps its key.
 * Pages are put first, the dir last.  Tables stay in the pages of prev's boundaries; a page
 * past PACKCAT_PAGE_TABLES is split.  *out (may be NULL) gets the dir as written, read back.
 */
int packcat_write(const packcat_dir *prev, packcat_get_fn get, void *get_ctx, const pack_index *const *packs,
				  int npacks, const char *tip_sha256, packcat_put_fn put, void *put_ctx, packcat_dir **out,
				  bs_error *err);

#endif
