/* basecopy.h — consistent base copies of tables: COPY under an exported snapshot into chunked objects. */
#ifndef BACKSTOP_BASECOPY_H
#define BACKSTOP_BASECOPY_H

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
	/* Called now and then during a long copy, so the caller can keep its replication
	 * connection alive (standby status updates); may be NULL. */
	void		(*tick) (void *ctx);
	void	   *tick_ctx;
} basecopy_options;

/*
 * Copy one table into storage as base copy at lsn.  conn must be inside a REPEATABLE READ
 * transaction importing the snapshot that is exact at lsn.  Reads the table's layout and
 * definition in the same snapshot, adds the layout to m when it differs from m's current
 * one, and appends the base (chunks uploaded, verified by checksum) to m.  The caller stores m.
 */
int basecopy_table(PGconn *conn, storage *st, const basecopy_options *opts, manifest *m,
				   uint64_t lsn, bs_error *err);

/* Columns of the table as the next Relation message will describe them (key flags per
 * replica identity), completed as catalog_describe_columns does. */
int basecopy_read_layout(PGconn *conn, uint32_t relid, char *replident, int *ncols,
						 manifest_column **cols, bs_error *err);
void basecopy_free_columns(int ncols, manifest_column *cols);

/*
 * Take base copies of the given tables exactly at one point, using a temporary logical
 * slot's exported snapshot (a second replication connection).  *lsn_out receives the point.
 */
int basecopy_with_temporary_slot(const char *conninfo, PGconn *conn, storage *st,
								 const basecopy_options *opts, manifest **tables, int ntables,
								 uint64_t *lsn_out, bs_error *err);

/* Start the snapshot transaction on conn for an exported snapshot name. */
int basecopy_begin_snapshot(PGconn *conn, const char *snapshot, bs_error *err);

#endif
