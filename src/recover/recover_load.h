/* recover_load.h — loading a recovered table into PostgreSQL in one validated transaction. */
#ifndef BACKSTOP_RECOVER_LOAD_H
#define BACKSTOP_RECOVER_LOAD_H

#include <stdbool.h>
#include <stdint.h>
#include <libpq-fe.h>

#include "catalog.h"
#include "error.h"
#include "manifest.h"
#include "progress.h"
#include "replay.h"
#include "strbuf.h"

typedef struct recover_load_options
{
	const char *schema;			/* target */
	const char *name;
	const char *source_schema;	/* for rewriting index and constraint names */
	const char *source_name;
	const manifest_layout *layout;	/* the columns at the point */
	const char *definition;		/* the base's definition JSON, NULL if none */
	const char *comment;		/* COMMENT ON TABLE text; must start with RECOVER_COMMENT_PREFIX (catalog.h) */
	bool replace;				/* drop an earlier Backstop recovery table of that name */
	bool no_indexes;
	uint64_t memory_limit;		/* bounds the COPY batches in flight (0: no limit) */
	/* When set, the rows come from source as they are rebuilt (streaming) and rs is not
	 * used: it writes COPY text to sink and fills sum with the checksum of what it wrote. */
	int (*source) (void *ctx, replay_copy_cb sink, void *sinkctx, replay_checksum *sum, bs_error *err);
	void *source_ctx;
	/* May be NULL: the phases "copy", "validate" and "index" are timed and the rows sent
	 * counted there. */
	progress *progress;
} recover_load_options;

typedef struct recover_load_result
{
	replay_checksum ours;		/* Backstop's, computed alongside the COPY */
	uint64_t pg_rows;
	char pg_sum[REPLAY_CHECKSUM_BUFLEN];
	double copy_seconds;
	double validate_seconds;
	double index_seconds;
	int nindexes;				/* indexes and constraints created */
	int nsequences;				/* identity columns and owned (serial) sequences made */
	int ngenerated;				/* stored generated columns added */
	int ngrants;				/* privileges granted as at the base */
	strbuf warnings;			/* one line each: definitions that could not be recreated */
} recover_load_result;

/* The content checksum query of a table (count, sum); %s is the qualified table name. */
#define RECOVER_CHECKSUM_SQL \
	"SELECT count(*), coalesce(sum(hashtextextended(ROW(t.*)::text, 0)), 0)::text FROM %s t"

/*
 * In one transaction: create the table, COPY the rows of rs in the layout, compare row count
 * and content checksum computed by PostgreSQL with Backstop's (mismatch: ERRCODE_DATA_CORRUPTED),
 * recreate defaults, constraints and indexes, comment, commit.  Any failure rolls everything
 * back.  An existing target is ERRCODE_DUPLICATE_TABLE unless replace is set and it is a
 * Backstop recovery table.  conn must use the archive's text format settings.  Every
 * statement built from the layout or the definition is checked by sqlcheck (exactly one
 * statement of its kind on the target; otherwise ERRCODE_DATA_CORRUPTED, nothing committed)
 * and sent one at a time through the extended protocol.
 */
int recover_load(PGconn *conn, replay_state *rs, const recover_load_options *opts,
				 recover_load_result *res, bs_error *err);
void recover_load_result_free(recover_load_result *res);

/* The name given to an index or constraint of the source on the target: the source
 * table's name prefix replaced by the target's (or the target's name prepended), at most
 * 63 bytes.  Returns a new string. */
char *recover_rename_object(const char *objname, const char *source_name, const char *target_name);

/* Rewrite pg_get_indexdef output to create the index under new_name on target (a quoted
 * qualified name).  NULL when the definition has an unexpected shape. */
char *recover_rewrite_indexdef(const char *def, const char *new_name, const char *target);

#endif
