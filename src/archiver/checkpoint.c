/* checkpoint.c — the archiver's checkpoints: a recovery point asked over HTTP, answered once it is stored. */
#include "autoconf.h"
#include "clock.h"
#include "codec.h"
#include "control.h"
#include "log.h"
#include "lsn.h"
#include "manifest.h"
#include "object.h"
#include "pgoutput.h"
#include "pgsql.h"
#include "replmsg.h"
#include "storage.h"
#include "strbuf.h"
#include "config.h"
#include "error.h"
#include "archiver_int.h"

#include <pthread.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Re-read and check the table's newest stored object (segment, else base chunks). */
static int
verify_newest(archiver *a, arch_table *t, bs_error *err)
{
	const manifest *m = t->man;

	if (m->nsegments > 0)
	{
		const manifest_segment *seg = &m->segments[m->nsegments - 1];

		if (t->verified_key && strcmp(t->verified_key, seg->key) == 0)
			return BS_OK;
		if (object_verify(a->st_main, seg->key, seg->sha256, NULL, err) != BS_OK)
			return BS_ERR;
		free(t->verified_key);
		t->verified_key = xstrdup(seg->key);
	}
	else if (m->nbases > 0)
	{
		const manifest_base *b = &m->bases[m->nbases - 1];

		if (t->verified_key && b->nchunks > 0 && strcmp(t->verified_key, b->chunks[0].key) == 0)
			return BS_OK;
		for (int i = 0; i < b->nchunks; i++)
			if (object_verify(a->st_main, b->chunks[i].key, b->chunks[i].sha256, NULL, err) != BS_OK)
				return BS_ERR;
		if (b->nchunks > 0)
		{
			free(t->verified_key);
			t->verified_key = xstrdup(b->chunks[0].key);
		}
	}
	return BS_OK;
}

/* Answer the checkpoint requests whose target is reached (after sealing and uploading). */
void
checkpoint_answer(archiver *a, bool force_fail, const char *why)
{
	checkpoint_req **pp = &a->pending;
	bool ready = false;
	bs_error err;

	error_clear(&err);
	/* Seal once per request, when its target has been received; later commits do not
	 * re-seal for it (that would cut an epoch per transaction while storage is slow). */
	for (checkpoint_req *r = a->pending; r; r = r->next)
	{
		if (r->positioned && !r->sealed && a->received_lsn >= r->target_lsn && !a->in_txn)
		{
			ready = true;
			r->sealed = true;
		}
	}
	if (ready && !force_fail)
	{
		/* Hands what is open to the uploader; the reply waits until flush reaches it. */
		if (uploader_seal_epoch(a, true, &err) != BS_OK)
		{
			log_warning("checkpoint: %s", err.message);
			force_fail = true;
			why = err.message;
		}
	}
	while (*pp)
	{
		checkpoint_req *r = *pp;
		bool expired = clock_mono_ms() >= r->deadline_ms;
		arch_table *rt = tables_find(a, r->relid);
		/* A table whose first base copy is still running (or whose base is not stored yet)
		 * has no recovery point, however far its changes are stored. */
		bool has_base = rt && rt->man->nbases > 0 && !rt->base_unstored && !tables_rebase_pending(a, rt);
		bool reached = r->positioned && r->sealed && a->flush_lsn >= r->target_lsn && has_base;

		if (rt && (rt->unpublished || manifest_open_gap(rt->man) != NULL))
		{
			/* It left the publication while the checkpoint waited. */
			strbuf sb = STRBUF_INIT;

			tables_unpublished_reason(a, rt, &sb);
			control_reply_error(r->req, 409, "Conflict", sb.data);
			strbuf_free(&sb);
			*pp = r->next;
			free(r);
			continue;
		}
		if (force_fail || reached || expired)
		{
			if (force_fail)
				control_reply_error(r->req, 503, "Service Unavailable", why ? why : "archiver stopping");
			else if (!r->positioned)
				control_reply_error(r->req, 503, "Service Unavailable", a->conn_err.message[0] ? a->conn_err.message :
									"no connection to PostgreSQL");
			else if (reached)
			{
				arch_table *t = rt;
				strbuf sb = STRBUF_INIT;
				char l1[LSN_BUFLEN], l2[LSN_BUFLEN];
				const manifest_segment *seg = t && t->man->nsegments ? &t->man->segments[t->man->nsegments - 1] : NULL;
				bs_error verr;

				/* The point is only as good as the objects behind it: re-read and check the
				 * newest one (once), whether this seal wrote it or an earlier one did. */
				error_clear(&verr);
				if (t && verify_newest(a, t, &verr) != BS_OK)
				{
					control_reply_error(r->req, 503, "Service Unavailable", verr.message);
					*pp = r->next;
					free(r);
					continue;
				}
				{
					/* Built by jansson: a table name is data, never JSON syntax. */
					json_t *o = json_object();
					char *text;

					strbuf_printf(&sb, "%s.%s", t ? t->man->schema : "", t ? t->man->name : "");
					json_object_set_new(o, "table", json_stringn(sb.data, sb.len));
					json_object_set_new(o, "relid", json_integer(r->relid));
					json_object_set_new(o, "lsn", json_string(lsn_format(a->flush_lsn, l1)));
					json_object_set_new(o, "requested_lsn", json_string(lsn_format(r->target_lsn, l2)));
					json_object_set_new(o, "segment", seg ? json_string(seg->key) : json_null());
					json_object_set_new(o, "verified", json_true());
					json_object_set_new(o, "elapsed_ms", json_integer((json_int_t) (clock_mono_ms() - r->started_ms)));
					text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
					control_reply_json(r->req, 200, "OK", text ? text : "{}");
					free(text);
					json_decref(o);
				}
				strbuf_free(&sb);
				a->metrics.checkpoints++;
				/* Kept with the manifest: if the table is dropped next, this point stays
				 * recoverable (manifest_dropped_after).  Not a store of its own (no request
				 * per checkpoint): it goes with the table's next manifest store, at the
				 * latest the one that marks it dropped; lost with a crash before that, the
				 * point is refused, never answered wrongly. */
				if (t && r->existed && t->gone_lsn == 0 && r->target_lsn > t->man->existed_to)
					t->man->existed_to = r->target_lsn;
			}
			else
				control_reply_error(r->req, 504, "Gateway Timeout", has_base || a->flush_lsn < r->target_lsn ?
							"timed out waiting for the archive to reach the requested LSN" :
							rt && rt->man->nbases > 0 && tables_rebase_pending(a, rt) ?
							"timed out waiting for the table's new base copy (a column change needs one: "
							"points since it are refused until it is taken)" :
							"timed out waiting for the table's first base copy");
			*pp = r->next;
			free(r);
			continue;
		}
		pp = &r->next;
	}
}

/*
 * "Now" for a checkpoint: everything committed before this call must be covered.  The
 * insert position, not pg_current_wal_lsn() (the write position): with synchronous_commit
 * = off a commit can be visible before its record is written out.
 */
static int
read_position(archiver *a, uint64_t *lsn, bs_error *err)
{
	PGresult *res = NULL;
	bool unflushed;

	if (pgsql_query(a->conn, "SELECT pg_current_wal_insert_lsn()::text, "
					"pg_current_wal_flush_lsn() < pg_current_wal_insert_lsn()", &res, err) != BS_OK)
		return BS_ERR;
	if (PQntuples(res) != 1 || lsn_parse(PQgetvalue(res, 0, 0), lsn) != BS_OK)
	{
		PQclear(res);
		return error_set(err, ERRCODE_PROTOCOL, "could not read the current WAL position");
	}
	unflushed = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	PQclear(res);
	/*
	 * The walsender sends only flushed WAL, and with asynchronous commits the WAL writer
	 * may flush the last page up to wal_writer_delay later.  A transaction that writes
	 * WAL (a logical message, which pgoutput does not send without its messages option)
	 * and commits with local synchronous commit flushes everything before it, L
	 * included.  Failing here (a read-only role, say) only makes the wait longer.
	 */
	if (unflushed &&
		pgsql_exec(a->conn, "BEGIN; SET LOCAL synchronous_commit = local; "
				   "SELECT pg_logical_emit_message(true, 'backstop', ''); COMMIT", err) != BS_OK)
	{
		log_debug("checkpoint: could not flush the server's WAL up to %X/%X: %s",
				  (unsigned) (*lsn >> 32), (unsigned) *lsn, err->message);
		pgsql_exec(a->conn, "ROLLBACK", err);
		error_clear(err);
	}
	return BS_OK;
}

/* read_position, on a new connection when the last one was lost (PostgreSQL restarted). */
static int
current_position(archiver *a, uint64_t *lsn, bs_error *err)
{
	if (PQstatus(a->conn) != CONNECTION_OK && stream_reconnect_conn(a, err) != BS_OK)
		return BS_ERR;
	if (read_position(a, lsn, err) == BS_OK)
		return BS_OK;
	if (!stream_conn_recovered(a, err))
		return BS_ERR;
	return read_position(a, lsn, err);
}

/*
 * Is the table in the catalog now, with now at or after lsn?  Then it existed at lsn (a DROP
 * of it commits later), and a recovery point there must stay one after a DROP: the answer
 * records it (manifest existed_to).  The position is read first and the catalog in a later
 * statement, so the catalog's snapshot is not older than the position.  Reading the position
 * also has the server flush its WAL that far (read_position): a point the caller named (the
 * gate's, read inside a transaction that has written WAL but not committed) is otherwise
 * sent only when something else flushes, up to 15 s later.  1: yes; 0: the table is gone;
 * -1: unknown (no connection, or lsn is ahead of the server).
 */
static int
table_exists_at(archiver *a, uint32_t relid, uint64_t lsn)
{
	char oid[16];
	const char *params[1] = {oid};
	uint64_t now_lsn = 0;
	PGresult *res = NULL;
	bs_error err;
	int rc = -1;

	error_clear(&err);
	snprintf(oid, sizeof(oid), "%u", relid);
	if (PQstatus(a->conn) != CONNECTION_OK || read_position(a, &now_lsn, &err) != BS_OK || now_lsn < lsn ||
		pgsql_query_params(a->conn, "SELECT 1 FROM pg_class WHERE oid = $1::oid", 1, params, &res, &err) != BS_OK)
		rc = -1;
	else
		rc = PQntuples(res) > 0 ? 1 : 0;
	PQclear(res);
	return rc;
}

void
checkpoint_request(struct evhttp_request *req, void *arg)
{
	archiver *a = arg;
	struct evkeyvalq q;
	const char *table, *lsn_s;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *query = evhttp_uri_get_query(uri);
	checkpoint_req *r;
	manifest *found = NULL;
	arch_table *t = NULL;
	bs_error err;
	uint64_t lsn = 0;
	bool positioned;
	bool named;
	int64_t timeout_ms = config_get_duration_ms(a->cfg, "timeout");

	error_clear(&err);
	memset(&q, 0, sizeof(q));
	if (query == NULL || evhttp_parse_query_str(query, &q) != 0 || (table = evhttp_find_header(&q, "table")) == NULL)
	{
		control_reply_error(req, 400, "Bad Request", "usage: POST /checkpoint?table=schema.table[&lsn=X/Y]");
		evhttp_clear_headers(&q);
		return;
	}
	{
		const char *t_s = evhttp_find_header(&q, "timeout_ms");
		int64_t client_ms;

		/* The client says how long it waits; the daemon's own setting is the default. */
		if (t_s && config_parse_int(t_s, &client_ms) == 0 && client_ms > 0 && client_ms <= 3600 * 1000)
			timeout_ms = client_ms;
	}
	lsn_s = evhttp_find_header(&q, "lsn");
	if (lsn_s && lsn_parse(lsn_s, &lsn) != BS_OK)
	{
		control_reply_error(req, 400, "Bad Request", "invalid lsn");
		evhttp_clear_headers(&q);
		return;
	}
	{
		char *schema = NULL, *name = NULL;

		if (manifest_split_name(table, &schema, &name, &err) == BS_OK)
		{
			for (int i = 0; i < a->ntables; i++)
				if (a->tables[i]->active && strcmp(a->tables[i]->man->schema, schema) == 0 &&
					strcmp(a->tables[i]->man->name, name) == 0)
					t = a->tables[i];
		}
		free(schema);
		free(name);
	}
	(void) found;
	if (t == NULL)
	{
		strbuf sb = STRBUF_INIT;

		strbuf_printf(&sb, "table \"%s\" is not archived by this daemon", table);
		control_reply_error(req, 404, "Not Found", sb.data);
		strbuf_free(&sb);
		evhttp_clear_headers(&q);
		return;
	}
	if (t->unpublished || manifest_open_gap(t->man) != NULL)
	{
		strbuf sb = STRBUF_INIT;

		tables_unpublished_reason(a, t, &sb);
		control_reply_error(req, 409, "Conflict", sb.data);
		strbuf_free(&sb);
		evhttp_clear_headers(&q);
		return;
	}
	named = lsn != 0;
	positioned = named;
	if (!positioned)
	{
		if (current_position(a, &lsn, &err) == BS_OK)
			positioned = true;
		else if (PQstatus(a->conn) == CONNECTION_OK)
		{
			control_reply_error(req, 503, "Service Unavailable", err.message[0] ? err.message : "could not read the current WAL position");
			evhttp_clear_headers(&q);
			return;
		}
		else
		{
			/* PostgreSQL is not back yet (a restart): the tick tries again until the deadline. */
			log_warning("checkpoint of %s.%s: %s; trying again until its deadline", t->man->schema, t->man->name,
						err.message);
			a->conn_err = err;
			a->conn_retry_ms = clock_mono_ms() + CONN_RETRY_MS;
		}
	}
	evhttp_clear_headers(&q);
	{
		/*
		 * A named point the stream has passed, where schema changes are captured: every DROP
		 * committed before it has been read (it would have set gone_lsn), its WAL was sent
		 * (nothing to flush), and there is no table check to run (schema_poll_layout checks
		 * what is not captured).  So the table existed there and nothing is asked of
		 * PostgreSQL: no query runs on the loop for it.
		 */
		bool known = named && t->gone_lsn == 0 && a->last_commit_end >= lsn && !tables_ddl_weak_at(a, t, lsn);
		int exists = known ? 1 : positioned && t->gone_lsn == 0 ? table_exists_at(a, t->relid, lsn) : -1;

		/* Dropped: no recovery point of a table that is gone (recover --latest has its last state). */
		if (t->gone_lsn != 0 || exists == 0)
		{
			strbuf sb = STRBUF_INIT;

			strbuf_printf(&sb, "table %s.%s was dropped (backstop recover --latest gives its last state)",
						  t->man->schema, t->man->name);
			control_reply_error(req, 410, "Gone", sb.data);
			strbuf_free(&sb);
			return;
		}
		/* Not captured: a schema change before the point and after the table's last row change
		 * is found by a table check only; one now, after the point, so that the point is not
		 * answered before that change's window is recorded (the answer then waits for it). */
		if (positioned && !known)
		{
			bs_error e2;

			error_clear(&e2);
			if (schema_poll_layout(a, t, &e2) != BS_OK)
				log_warning("checkpoint of %s.%s: table check: %s", t->man->schema, t->man->name, e2.message);
		}
		r = xcalloc(1, sizeof(checkpoint_req));
		r->existed = exists == 1;
	}
	r->req = req;
	r->relid = t->relid;
	r->target_lsn = lsn;
	r->positioned = positioned;
	r->started_ms = clock_mono_ms();
	r->deadline_ms = r->started_ms + (timeout_ms > 0 ? timeout_ms : 30000);
	r->next = a->pending;
	a->pending = r;
	a->retry_now = true;
	pthread_cond_signal(&a->wake);
	/* Ask the server for its position now instead of waiting for a keepalive. */
	if (a->received_lsn < lsn && stream_send_status(a, true, &err) != BS_OK)
		log_warning("%s", err.message);
	/* Stream lost (PostgreSQL restarted): a waiting checkpoint cuts the back-off short. */
	if (a->repl == NULL && !a->stopping && a->reconnect_ms > clock_mono_ms() + CONN_RETRY_MS)
		a->reconnect_ms = clock_mono_ms() + CONN_RETRY_MS;
	checkpoint_answer(a, false, NULL);
}

/* Checkpoints that wait for the control connection to come back: try again (tick). */
void
checkpoint_position(archiver *a)
{
	uint64_t lsn;
	bool waiting = false;
	bs_error err;

	for (checkpoint_req *r = a->pending; r; r = r->next)
		waiting = waiting || !r->positioned;
	if (!waiting || clock_mono_ms() < a->conn_retry_ms)
		return;
	error_clear(&err);
	if (current_position(a, &lsn, &err) != BS_OK)
	{
		a->conn_err = err;
		a->conn_retry_ms = clock_mono_ms() + CONN_RETRY_MS;
		return;
	}
	for (checkpoint_req *r = a->pending; r; r = r->next)
	{
		if (!r->positioned)
		{
			r->target_lsn = lsn;
			r->positioned = true;
		}
	}
	if (a->received_lsn < lsn && stream_send_status(a, true, &err) != BS_OK)
		log_warning("%s", err.message);
}
