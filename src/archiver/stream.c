/* stream.c — the archiver's replication stream: connect, read, decode dispatch, standby status, end LSN. */
#include "autoconf.h"
#include "clock.h"
#include "codec.h"
#include "control.h"
#include "ddl.h"
#include "log.h"
#include "lsn.h"
#include "pgoutput.h"
#include "pgsql.h"
#include "quote.h"
#include "replmsg.h"
#include "segment.h"
#include "spill.h"
#include "storage.h"
#include "storage_crypt.h"
#include "strbuf.h"
#include "config.h"
#include "error.h"
#include "archiver_int.h"

#include <pthread.h>
#include <sched.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void locked_repl_readable(evutil_socket_t fd, short what, void *arg);

int
stream_send_status(archiver *a, bool reply_requested, bs_error *err)
{
	uint8_t buf[REPLMSG_STATUS_LEN];
	size_t n;

	if (a->repl == NULL)
		return BS_OK;
	n = replmsg_build_status(buf, a->received_lsn, a->flush_lsn, a->flush_lsn, replmsg_now_pgtime(),
							 reply_requested);
	if (PQputCopyData(a->repl, (const char *) buf, (int) n) <= 0 || PQflush(a->repl) < 0)
		return pgsql_set_error(err, a->repl, NULL, "could not send a status update");
	a->last_status_ms = clock_mono_ms();
	a->last_sent_flush = a->flush_lsn;
	return BS_OK;
}

/*
 * The control connection (catalog queries, checkpoints' WAL position).  libpq notices that it
 * was lost (PostgreSQL restarted) only when a query on it fails: callers make it again and
 * retry once rather than fail the first request after a restart.  A new connection, not
 * PQreset, so that the session's pinned text format is set again.
 */
int
stream_reconnect_conn(archiver *a, bs_error *err)
{
	PGconn *c;

	if (pgsql_connect(config_get(a->cfg, CFG_DB), false, "backstop archive", &c, err) != BS_OK)
		return BS_ERR;
	PQfinish(a->conn);
	a->conn = c;
	log_info("reconnected to PostgreSQL (control connection)");
	return BS_OK;
}

/* After a failed query: true when the connection had been lost and a new one is made, so
 * the query may be tried once more.  When it cannot be made, err says why. */
bool
stream_conn_recovered(archiver *a, bs_error *err)
{
	if (PQstatus(a->conn) == CONNECTION_OK)
		return false;
	return stream_reconnect_conn(a, err) == BS_OK;
}

/* Decoded by pgo_decode already; text (not binary) is all segments may hold. */
static bool
tuple_is_text(const pgo_tuple *t)
{
	for (int i = 0; i < t->ncols; i++)
		if (t->values[i].kind == 'b')
			return false;
	return true;
}

static int
handle_change(archiver *a, const pgo_message *m, bs_error *err)
{
	segment_record r;
	arch_table *t;

	memset(&r, 0, sizeof(r));
	r.old_kind = SEGMENT_OLD_NONE;
	switch (m->type)
	{
		case 'I':
			t = tables_find(a, m->u.insert.relid);
			if (t == NULL || !t->active)
				return BS_OK;
			r.op = 'I';
			r.tuples_checked = tuple_is_text(&m->u.insert.newtup);
			r.new_tuple = m->u.insert.newtup.raw;
			r.new_len = m->u.insert.newtup.raw_len;
			return segments_append_record(a, t, &r, err);
		case 'U':
			t = tables_find(a, m->u.update.relid);
			if (t == NULL || !t->active)
				return BS_OK;
			r.op = 'U';
			if (m->u.update.old_kind)
			{
				r.old_kind = m->u.update.old_kind;
				r.old_tuple = m->u.update.oldtup.raw;
				r.old_len = m->u.update.oldtup.raw_len;
			}
			r.new_tuple = m->u.update.newtup.raw;
			r.new_len = m->u.update.newtup.raw_len;
			r.tuples_checked = tuple_is_text(&m->u.update.newtup) &&
				(!m->u.update.old_kind || tuple_is_text(&m->u.update.oldtup));
			return segments_append_record(a, t, &r, err);
		case 'D':
			t = tables_find(a, m->u.delete.relid);
			if (t == NULL || !t->active)
				return BS_OK;
			r.op = 'D';
			r.old_kind = m->u.delete.old_kind;
			r.old_tuple = m->u.delete.oldtup.raw;
			r.old_len = m->u.delete.oldtup.raw_len;
			r.tuples_checked = tuple_is_text(&m->u.delete.oldtup);
			return segments_append_record(a, t, &r, err);
		case 'T':
			for (uint32_t i = 0; i < m->u.truncate.nrels; i++)
			{
				t = tables_find(a, m->u.truncate.relids[i]);
				if (t == NULL || !t->active)
					continue;
				memset(&r, 0, sizeof(r));
				r.op = 'T';
				r.old_kind = SEGMENT_OLD_NONE;
				r.truncate_options = m->u.truncate.options;
				if (segments_append_record(a, t, &r, err) != BS_OK)
					return BS_ERR;
			}
			return BS_OK;
	}
	return BS_OK;
}

/* --end-lsn: every transaction committed at or before it has been received; stop (the orderly
 * stop seals and stores what is open). */
static void
end_lsn_reached(archiver *a)
{
	char l[LSN_BUFLEN];

	if (a->end_received_ms)
		return;
	a->end_received_ms = clock_mono_ms();
	log_info("end LSN %s reached: all received after %.3f s; storing it, then stopping",
			 lsn_format(a->end_lsn, l), (double) (a->end_received_ms - a->metrics.started_ms) / 1000.0);
	a->stopping = true;
	event_base_loopbreak(a->evbase);
}

static int
handle_xlogdata(archiver *a, const replmsg_xlogdata *x, bs_error *err)
{
	pgo_message m;
	int rc = BS_OK;

	if (pgo_decode(x->data, x->len, 1, false, &m, err) != BS_OK)
		return error_prefix(err, "could not decode a change at %X/%X",
							(unsigned) (x->data_start >> 32), (unsigned) x->data_start);
	a->metrics.messages++;
	switch (m.type)
	{
		case 'B':
			if (a->end_lsn && m.u.begin.final_lsn > a->end_lsn)
			{
				/* Commits after the end LSN: not ours to keep in this run. */
				end_lsn_reached(a);
				break;
			}
			a->in_txn = true;
			a->txn_final_lsn = m.u.begin.final_lsn;
			a->txn_commit_time = m.u.begin.commit_time;
			a->txn_xid = m.u.begin.xid;
			/* Already kept (spooled or stored) before a restart or reconnect: skip. */
			a->txn_skip = m.u.begin.final_lsn < a->resume_lsn;
			for (int i = 0; i < a->ntables; i++)
			{
				a->tables[i]->txn_start = segments_open_len(a->tables[i]);
				a->tables[i]->txn_records = a->tables[i]->open_records;
			}
			break;
		case 'C':
			if (!a->txn_skip)
			{
				for (int i = 0; i < a->ntables && rc == BS_OK; i++)
					if (a->tables[i]->txn_start < segments_open_len(a->tables[i]))
						rc = segments_patch_end_lsn(a, a->tables[i], m.u.commit.end_lsn, err);
				if (rc != BS_OK)
					break;
				a->metrics.transactions++;
			}
			a->in_txn = false;
			a->txn_skip = false;
			if (m.u.commit.end_lsn > a->last_commit_end)
				a->last_commit_end = m.u.commit.end_lsn;
			a->metrics.commit_time = a->txn_commit_time + INT64_C(946684800000000);	/* PostgreSQL's epoch to Unix */
			a->metrics.commit_end = m.u.commit.end_lsn;
			if (m.u.commit.end_lsn > a->received_lsn)
				a->received_lsn = m.u.commit.end_lsn;
			if (a->last_commit_end > a->resume_lsn)
				a->resume_lsn = a->last_commit_end;
			tables_check_gone_passed(a);
			/* Seal at a transaction boundary when the open segments are big enough. */
			if ((int64_t) a->open_bytes >= a->segment_size)
				rc = uploader_seal_epoch(a, false, err);
			if (a->pending)
				checkpoint_answer(a, false, NULL);
			/* Commit records do not overlap: the next one starts at or after this end. */
			if (a->end_lsn && m.u.commit.end_lsn > a->end_lsn)
				end_lsn_reached(a);
			break;
		case 'R':
			rc = schema_handle_relation(a, &m.u.relation, err);
			break;
		case 'I':
		case 'U':
		case 'D':
		case 'T':
			if (!a->txn_skip)
				rc = handle_change(a, &m, err);
			break;
		case 'M':
			/* Only transactional messages of the event triggers: at their transaction's position. */
			if (a->in_txn && (m.u.message.flags & PGO_MESSAGE_TRANSACTIONAL) &&
				strcmp(m.u.message.prefix, DDL_MESSAGE_PREFIX) == 0)
				rc = schema_handle_ddl_message(a, &m.u.message, err);
			break;
		default:
			/* Origin and Type messages carry nothing a table recovery needs. */
			break;
	}
	pgo_message_free(&m);
	return rc;
}

/* A transaction cut off by a disconnect will be sent again in full: forget its records. */
int
stream_drop_partial_transaction(archiver *a, bs_error *err)
{
	int rc = BS_OK;

	for (int i = 0; i < a->ntables && a->in_txn; i++)
	{
		arch_table *t = a->tables[i];
		uint64_t len = segments_open_len(t);
		uint64_t in_file = t->spill ? spill_size(t->spill) : 0;

		if (t->txn_start >= len)
			continue;
		a->open_bytes -= len - t->txn_start;
		t->open_records = t->txn_records;
		if (t->txn_start >= in_file)
			t->open.len = (size_t) (t->txn_start - in_file);
		else
		{
			/* Cut back below (or removed with the whole file when nothing else is left). */
			a->spilled_bytes -= in_file - t->txn_start;
			t->open.len = 0;
			if (t->open_records > 0 && rc == BS_OK)
			{
				if (spill_truncate(t->spill, t->txn_start, err) != BS_OK)
					rc = error_prefix(err, "table %s.%s", t->man->schema, t->man->name);
				else
					log_info("table %s.%s: spill file cut back to %" PRIu64 " bytes (%" PRIu64
							 " records), the transaction cut off is sent again", t->man->schema, t->man->name,
							 t->txn_start, t->open_records);
			}
		}
		if (t->open_records == 0)
		{
			/* Only the header is left. */
			if (t->spill)
				log_info("table %s.%s: spill file removed, the transaction cut off is sent again",
						 t->man->schema, t->man->name);
			spill_discard(t->spill);
			t->spill = NULL;
			t->open.len = 0;
			t->txn_start = 0;
			memset(&t->sum, 0, sizeof(t->sum));
		}
		if (t->open.data)
			t->open.data[t->open.len] = '\0';
	}
	a->in_txn = false;
	a->txn_skip = false;
	return rc;
}

void
stream_close(archiver *a)
{
	bs_error err;

	error_clear(&err);
	if (a->repl_ev)
	{
		event_free(a->repl_ev);
		a->repl_ev = NULL;
	}
	if (a->repl)
	{
		PQfinish(a->repl);
		a->repl = NULL;
	}
	if (stream_drop_partial_transaction(a, &err) != BS_OK)
		archiver_fail(a, &err);
	for (int i = 0; i < a->nrelcache; i++)
		pgo_relation_free(&a->relcache[i]);
	a->nrelcache = 0;
}

/*
 * The WAL the slot holds on the server (for /metrics), and at start the backlog to catch up
 * (logged, then its progress from on_tick).  On the control connection, with the table poll:
 * a failure only leaves the value unknown.
 */
void
stream_read_slot_wal(archiver *a, bool at_start)
{
	const char *params[1] = {config_get(a->cfg, CFG_SLOT)};
	PGresult *res = NULL;
	bs_error err;

	error_clear(&err);
	if (a->conn == NULL || PQstatus(a->conn) != CONNECTION_OK ||
		pgsql_query_params(a->conn, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, "
						   "pg_current_wal_lsn(), confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1",
						   1, params, &res, &err) != BS_OK || PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
	{
		a->metrics.slot_retained = -1;
		PQclear(res);
		return;
	}
	a->metrics.slot_retained = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	if (at_start && a->metrics.catchup_to == 0)
	{
		uint64_t now_lsn = 0, from = 0;

		if (lsn_parse(PQgetvalue(res, 0, 1), &now_lsn) == BS_OK && !PQgetisnull(res, 0, 2) &&
			lsn_parse(PQgetvalue(res, 0, 2), &from) == BS_OK)
		{
			log_info("backlog at start: %" PRIu64 " bytes of WAL to catch up (slot confirmed at %s, server at %s); "
					 "the slot holds %" PRId64 " bytes", now_lsn > from ? now_lsn - from : 0, PQgetvalue(res, 0, 2),
					 PQgetvalue(res, 0, 1), a->metrics.slot_retained);
			if (now_lsn > from)
			{
				a->metrics.catchup_from = from;
				a->metrics.catchup_to = now_lsn;
				a->metrics.catchup_started_ms = a->metrics.catchup_logged_ms = clock_mono_ms();
			}
		}
	}
	PQclear(res);
}

/* Seconds behind and catch-up progress, once a tick. */
void
stream_track_progress(archiver *a)
{
	int64_t now = clock_mono_ms();

	if (a->metrics.commit_end && a->flush_lsn >= a->metrics.commit_end)
		a->metrics.durable_commit_time = a->metrics.commit_time;
	if (a->metrics.catchup_to == 0)
		return;
	if (a->flush_lsn >= a->metrics.catchup_to)
	{
		log_info("caught up with the backlog at start (%" PRIu64 " bytes of WAL) in %.1f s",
				 a->metrics.catchup_to - a->metrics.catchup_from, (double) (now - a->metrics.catchup_started_ms) / 1000.0);
		a->metrics.catchup_to = 0;
	}
	else if (now - a->metrics.catchup_logged_ms >= 10000)
	{
		uint64_t done = a->flush_lsn > a->metrics.catchup_from ? a->flush_lsn - a->metrics.catchup_from : 0;
		uint64_t total = a->metrics.catchup_to - a->metrics.catchup_from;

		log_info("catching up: %" PRIu64 " of %" PRIu64 " bytes of the backlog durable (%.0f%%), received up to %" PRIu64,
				 done, total, total ? 100.0 * (double) done / (double) total : 100.0, a->received_lsn);
		a->metrics.catchup_logged_ms = now;
	}
}

int
stream_start(archiver *a, bs_error *err)
{
	strbuf sql = STRBUF_INIT;
	char *slot = quote_ident(config_get(a->cfg, CFG_SLOT));
	char *pubs = quote_ident(config_get(a->cfg, CFG_PUBLICATION));
	char *publit = quote_literal(pubs);
	PGresult *res;
	int rc = BS_ERR;

	if (pgsql_connect(config_get(a->cfg, CFG_DB), true, "backstop archive", &a->repl, err) != BS_OK)
		goto out;
	/* 0/0: resume exactly at the slot's confirmed_flush_lsn, never anywhere else. */
	strbuf_printf(&sql, "START_REPLICATION SLOT %s LOGICAL 0/0 (proto_version '1', publication_names %s%s)",
				  slot, publit, a->ddl_capture ? ", messages 'true'" : "");
	res = PQexec(a->repl, sql.data);
	if (PQresultStatus(res) != PGRES_COPY_BOTH)
	{
		pgsql_set_error(err, a->repl, res, "could not start replication");
		PQclear(res);
		PQfinish(a->repl);
		a->repl = NULL;
		goto out;
	}
	PQclear(res);
	if (PQsetnonblocking(a->repl, 1) != 0)
	{
		pgsql_set_error(err, a->repl, NULL, "could not make the replication connection non-blocking");
		goto out;
	}
	a->repl_ev = event_new(a->evbase, PQsocket(a->repl), EV_READ | EV_PERSIST, locked_repl_readable, a);
	event_add(a->repl_ev, NULL);
	log_info("streaming from slot %s", config_get(a->cfg, CFG_SLOT));
	stream_read_slot_wal(a, true);
	rc = BS_OK;
out:
	free(slot);
	free(pubs);
	free(publit);
	strbuf_free(&sql);
	return rc;
}

/*
 * Whether the slot can still be read.  An invalidated slot (wal_status = lost, after
 * max_slot_wal_keep_size) or a dropped one has lost changes for good: reconnecting cannot
 * help, so this is an error (ERRCODE_SLOT_LOST).  A failing query (the server is restarting,
 * say) says nothing: BS_OK, and the reconnection is tried as usual.
 */
static int
check_slot(archiver *a, bs_error *err)
{
	const char *slot = config_get(a->cfg, CFG_SLOT);
	const char *params[1] = {slot};
	PGresult *res;
	bs_error qerr;
	char l[LSN_BUFLEN];
	int rc = BS_OK;

	error_clear(&qerr);
	if (PQstatus(a->conn) != CONNECTION_OK)
		PQreset(a->conn);
	if (pgsql_query_params(a->conn, "SELECT s.wal_status, " SLOT_OTHER_INVALIDATION
						   " FROM pg_replication_slots s WHERE s.slot_name = $1",
						   1, params, &res, &qerr) != BS_OK)
	{
		log_debug("could not check replication slot %s: %s", slot, qerr.message);
		return BS_OK;
	}
	if (PQntuples(res) == 0)
		rc = error_set(err, ERRCODE_SLOT_LOST,
					   "replication slot \"%s\" was dropped while the archiver ran: the changes after %s (the "
					   "last position received) are lost.  Starting again creates a new slot and takes new "
					   "base copies", slot, lsn_format(a->received_lsn, l));
	else if (!PQgetisnull(res, 0, 1))
		rc = error_set(err, ERRCODE_SLOT_LOST,
					   "replication slot \"%s\" was invalidated while the archiver ran (invalidation_reason = "
					   "%s): the changes after %s (the last position received) are lost.  Drop the slot "
					   "(backstop archive --drop) and start again for new base copies",
					   slot, PQgetvalue(res, 0, 1), lsn_format(a->received_lsn, l));
	else if (!PQgetisnull(res, 0, 0) && strcmp(PQgetvalue(res, 0, 0), "lost") == 0)
		rc = error_set(err, ERRCODE_SLOT_LOST,
					   "replication slot \"%s\" was invalidated while the archiver ran (wal_status = lost: "
					   "max_slot_wal_keep_size exceeded): the changes after %s (the last position received) are "
					   "lost.  Drop the slot (backstop archive --drop) and start again for new base copies",
					   slot, lsn_format(a->received_lsn, l));
	PQclear(res);
	return rc;
}

/* The slot is lost: stop as on SIGTERM (what was received is sealed and stored), then fail. */
static void
slot_lost(archiver *a, const bs_error *err)
{
	if (!a->slot_lost)
	{
		a->slot_lost = true;
		a->slot_lost_err = *err;
		log_error("replication slot %s is lost: storing what was received, then stopping",
				  config_get(a->cfg, CFG_SLOT));
	}
	a->stopping = true;
	event_base_loopbreak(a->evbase);
}

void
stream_schedule_reconnect(archiver *a, const bs_error *err)
{
	bs_error serr;

	error_clear(&serr);
	if (check_slot(a, &serr) != BS_OK)
	{
		log_warning("replication connection lost: %s", err->message);
		stream_close(a);
		slot_lost(a, &serr);
		return;
	}
	log_warning("replication connection lost: %s; reconnecting in %lld ms", err->message,
				(long long) a->reconnect_delay_ms);
	stream_close(a);
	a->reconnect_ms = clock_mono_ms() + a->reconnect_delay_ms;
	a->reconnect_delay_ms = a->reconnect_delay_ms * 2 > 30000 ? 30000 : a->reconnect_delay_ms * 2;
	a->metrics.reconnects++;
}

/*
 * Reading the stream.  The walsender sends each pgoutput message as soon as it is decoded, so
 * a reader that goes back to epoll after every read is woken for one message of ~100 bytes at
 * a time and spends most of its CPU in epoll_wait, recv and context switches (and makes the
 * walsender wake it for every message), CPU that the walsender needs on a small machine.
 * After a short read the reader sleeps REPL_PAUSE_US (lock released) and reads again, so
 * that each read finds a batch; it returns to the event loop when a read finds nothing.
 * The pause must stay well below the time the walsender needs to fill the socket's send
 * buffer (a few hundred small messages), or the walsender would block waiting for us.
 */
#define REPL_PAUSE_US 100
#define REPL_BATCH_BYTES ((size_t) 16 * 1024)
/* Return to the event loop after this much, so that timers and HTTP requests run. */
#define REPL_BURST_BYTES ((size_t) 4 * 1024 * 1024)
#define REPL_MAX_PAUSES 50

/* Handle every complete message in libpq's buffer.  false: the connection was dropped or
 * the archiver failed; the caller must return. */
static bool
repl_drain(archiver *a, size_t *got)
{
	bs_error err;

	error_clear(&err);
	for (;;)
	{
		char *buf = NULL;
		int n = PQgetCopyData(a->repl, &buf, 1);
		replmsg msg;

		if (n == 0)
			return true;
		if (n == -1)
		{
			PGresult *res = PQgetResult(a->repl);

			if (res && PQresultStatus(res) == PGRES_COMMAND_OK)
				error_set(&err, ERRCODE_CONNECTION, "the server ended the replication stream (shutdown, or the walsender was stopped)");
			else
				pgsql_set_error(&err, a->repl, res, "replication stream ended");
			PQclear(res);
			stream_schedule_reconnect(a, &err);
			return false;
		}
		if (n < 0)
		{
			pgsql_set_error(&err, a->repl, NULL, "replication connection failed");
			stream_schedule_reconnect(a, &err);
			return false;
		}
		a->metrics.bytes_received += (uint64_t) n;
		*got += (size_t) n;
		/* Lock dropped between two messages (none is half handled): a long burst must not
		 * starve the uploader, which asked for the lock.  What it changes meanwhile
		 * (flush_lsn, the queue, metrics) is read afresh below. */
		if (__atomic_load_n(&a->uploader_waiting, __ATOMIC_RELAXED))
		{
			pthread_mutex_unlock(&a->lock);
			sched_yield();
			pthread_mutex_lock(&a->lock);
		}
		if (replmsg_parse((const uint8_t *) buf, (size_t) n, &msg, &err) != BS_OK)
		{
			PQfreemem(buf);
			archiver_fail(a, &err);
			return false;
		}
		if (msg.type == 'w')
		{
			if (handle_xlogdata(a, &msg.u.xlogdata, &err) != BS_OK)
			{
				PQfreemem(buf);
				/* Undecodable input, a full spool or a catalog failure: stop rather than
				 * archive something wrong; nothing unconfirmed is lost. */
				archiver_fail(a, &err);
				return false;
			}
		}
		else if (msg.type == 'k')
		{
			if (!a->in_txn && msg.u.keepalive.wal_end > a->received_lsn)
				a->received_lsn = msg.u.keepalive.wal_end;
			/* Every transaction committed before the keepalive's position was sent before
			 * it, and none is in progress: the next seal may claim up to there.  Without
			 * this, a checkpoint whose target a keepalive passed waited for a later seal. */
			if (!a->in_txn && msg.u.keepalive.wal_end > a->last_commit_end)
				a->last_commit_end = msg.u.keepalive.wal_end;
			tables_check_gone_passed(a);
			/* Idle publication: nothing pending means the slot may advance. */
			if (!a->in_txn && a->open_bytes == 0 && !a->spool_pending && a->jobs_head == NULL &&
				msg.u.keepalive.wal_end > a->flush_lsn)
				uploader_idle_progress(a, msg.u.keepalive.wal_end, false);
			if (msg.u.keepalive.reply_requested && stream_send_status(a, false, &err) != BS_OK)
			{
				PQfreemem(buf);
				stream_schedule_reconnect(a, &err);
				return false;
			}
			if (a->pending)
				checkpoint_answer(a, false, NULL);
			/* The keepalive carries how far decoding has read: every transaction committed
			 * before that was sent in full before it (pg_recvlogical reasons the same way). */
			if (a->end_lsn && !a->in_txn && msg.u.keepalive.wal_end >= a->end_lsn)
				end_lsn_reached(a);
		}
		PQfreemem(buf);
		if (a->fatal || a->stopping)
			return false;
	}
}

static void
on_repl_readable(evutil_socket_t fd, short what, void *arg)
{
	archiver *a = arg;
	size_t got = 0;
	int pauses = 0;

	(void) fd;
	(void) what;
	for (;;)
	{
		size_t before = got;

		if (PQconsumeInput(a->repl) == 0)
		{
			bs_error err;

			error_clear(&err);
			pgsql_set_error(&err, a->repl, NULL, "replication connection failed");
			stream_schedule_reconnect(a, &err);
			return;
		}
		if (!repl_drain(a, &got))
			return;
		if (got == before || got >= REPL_BURST_BYTES)
			break;
		if (got - before < REPL_BATCH_BYTES)
		{
			struct timespec pause = {0, REPL_PAUSE_US * 1000L};

			if (++pauses > REPL_MAX_PAUSES)
				break;
			/* Lock dropped: the pause is for the walsender to fill the socket, and the
			 * uploader may use it.  The stream may have been closed or the archiver failed
			 * meanwhile (a notify or a signal ran): check before reading again. */
			pthread_mutex_unlock(&a->lock);
			nanosleep(&pause, NULL);
			pthread_mutex_lock(&a->lock);
			if (a->repl == NULL || a->fatal || a->stopping)
				return;
		}
	}
}

/* The main loop's callback: the stream is read with the lock held (archiver_int.h). */
static void
locked_repl_readable(evutil_socket_t fd, short what, void *arg)
{
	archiver *a = arg;

	pthread_mutex_lock(&a->lock);
	on_repl_readable(fd, what, arg);
	pthread_mutex_unlock(&a->lock);
}
