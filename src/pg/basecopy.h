/* basecopy.h — consistent base copies of tables: COPY under an exported snapshot into chunked objects. */
#ifndef BACKSTOP_BASECOPY_H
#define BACKSTOP_BASECOPY_H

#include <stdbool.h>
#include <stdint.h>
#include <libpq-fe.h>

#include "codec.h"
#include "error.h"
#include "manifest.h"
#include "storage.h"

typedef struct basecopy_options
{
	codec_id codec;
	int level;
	uint64_t chunk_size;		/* raw bytes per chunk */
	/* Another thread sets *cancel (atomically) to abandon a copy: checked between rows.
	 * May be NULL. */
	const int  *cancel;
	/* Tests only (BACKSTOP_TEST_BASE_COPY_LOCK, see doc/HACKING.md): when non-zero, each table's
	 * copy waits, after locking the table and before reading it, until it can take this
	 * advisory lock (shared), so that a test holding it decides how long a copy lasts. */
	int64_t		test_lock_key;
	/* The archiver's own publication: left out of the definitions' publication lists (it
	 * takes a table by itself).  May be NULL. */
	const char *publication;
	/* Tests only (BACKSTOP_TEST_BASE_COPY_SNAPSHOT_LOCK): the same wait, after the snapshot is
	 * imported and before the table is locked, so that a test can commit DDL in between. */
	int64_t		test_snapshot_lock_key;
	/* Tests only (BACKSTOP_TEST_BASE_JOB_END_LOCK): the same wait once every table is copied,
	 * before the copies are handed back, so that a test can commit DDL and have the stream
	 * read it before the copies are added. */
	int64_t		test_end_lock_key;
	/* How long a copy may wait for a lock (the session's lock_timeout, capped below the
	 * server's deadlock_timeout): past it the copy of that table yields (see
	 * basecopy_error_yields).  0: PostgreSQL's own (wait without end). */
	int64_t		lock_timeout_ms;
} basecopy_options;

/* A test hook's key from the environment variable name (0: none; a malformed value is
 * ignored, logged). */
int64_t basecopy_test_lock_key_from_env(const char *name);

/* A table to copy. */
typedef struct basecopy_target
{
	uint32_t relid;
	char	   *schema;
	char	   *name;
} basecopy_target;

/*
 * What a copy produced, before it is added to any manifest: the table's layout and the base
 * (chunks stored and verified; layout_id is set by basecopy_apply).  relid 0: no copy (the
 * table's copy yielded, see basecopy_with_temporary_slot).
 */
typedef struct basecopy_result
{
	uint32_t relid;
	char		replident;
	int			ncols;
	manifest_column *cols;
	manifest_base base;
} basecopy_result;

/*
 * Copy one table into storage as base copy at lsn.  conn must be inside a REPEATABLE READ
 * transaction importing the snapshot that is exact at lsn.  Reads the table's layout and
 * definition in the same snapshot.  No manifest is touched: the caller adds *out to the
 * table's manifest with basecopy_apply (so the copy can run in another thread).
 */
int basecopy_table(PGconn *conn, storage *st, const basecopy_options *opts, const basecopy_target *table,
				   uint64_t lsn, basecopy_result *out, bs_error *err);

/* Add a copy to the table's manifest: its layout (manifest_use_layout), then the base.
 * Fails, leaving m unchanged, when the layout cannot be placed (see manifest_use_layout). */
int basecopy_apply(manifest *m, const basecopy_result *r, bs_error *err);
void basecopy_result_free(basecopy_result *r);

/* Columns of the table as the next Relation message will describe them (key flags per
 * replica identity), completed as catalog_describe_columns does. */
int basecopy_read_layout(PGconn *conn, uint32_t relid, char *replident, int *ncols,
						 manifest_column **cols, bs_error *err);

/*
 * True when a copy failed because it gave way to the table's users, not because of a fault:
 * a lock it could not have within its lock_timeout (or a deadlock), the table dropped or
 * renamed meanwhile, or changed since the snapshot.  Nothing of it is recorded; the copy is
 * taken again later.
 */
bool basecopy_error_yields(const bs_error *err);

/*
 * Copy one table in its own transaction under an exported snapshot (basecopy_begin_snapshot,
 * then basecopy_table, then COMMIT; ROLLBACK on failure): its locks are held only while this
 * table is copied, never while another one is waited for.
 */
int basecopy_table_in_snapshot(PGconn *conn, const char *snapshot, storage *st, const basecopy_options *opts,
							   const basecopy_target *table, uint64_t lsn, basecopy_result *out, bs_error *err);

/*
 * Take base copies of the given tables exactly at one point, using a temporary logical
 * slot created on repl (a replication connection) for its exported snapshot; conn (a
 * normal connection, idle) runs the copies, each table in its own transaction under that
 * snapshot.  results receives ntables entries (free each with basecopy_result_free, then the
 * array), *lsn_out the point.  A table whose copy yields (basecopy_error_yields; logged) gets
 * an entry with relid 0 and the others are copied all the same; any other failure fails all.
 */
int basecopy_with_temporary_slot(PGconn *repl, PGconn *conn, storage *st, const basecopy_options *opts,
								 const basecopy_target *tables, int ntables, basecopy_result **results,
								 uint64_t *lsn_out, bs_error *err);

/* Start the snapshot transaction on conn for an exported snapshot name, with lock_timeout_ms
 * (basecopy_options) as the transaction's lock_timeout. */
int basecopy_begin_snapshot(PGconn *conn, const char *snapshot, int64_t lock_timeout_ms, bs_error *err);

#endif
