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
#include "segfetch.h"
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
		if (seg->source == MANIFEST_SEGMENT_PACK)
		{
			/* The table's run, read back from its pack: frames against the footer's hashes,
			 * records against the run's entry. */
			segfetch *f = segfetch_new();
			strbuf raw = STRBUF_INIT;
			segfetch_info info;
			int rc = segfetch_read_all(f, a->st_main, t->relid, seg, &raw, &info, err);

			strbuf_free(&raw);
			segfetch_free(f);
			if (rc != BS_OK)
				return BS_ERR;
		}
		else if (object_verify(a->st_main, seg->key, seg->sha256, NULL, err) != BS_OK)
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
		/* The publication streams it at (or after) the point: a checkpoint or a table check saw it
		 * published in a snapshot taken after reading a position at or after the point. */
		bool member = rt && rt->pub_seen_lsn >= r->target_lsn;
		bool reached = r->positioned && r->sealed && a->flush_lsn >= r->target_lsn && has_base && member;

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
				control_reply_error(r->req, 504, "Gateway Timeout", has_base && !member && a->flush_lsn >= r->target_lsn ?
							"timed out waiting for the table's membership in the publication to be read at or after "
							"the requested LSN (see the archiver's log)" :
							has_base || a->flush_lsn < r->target_lsn ?
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
read_position(PGconn *conn, uint64_t *lsn, bs_error *err)
{
	PGresult *res = NULL;
	bool unflushed;

	if (pgsql_query(conn, "SELECT pg_current_wal_insert_lsn()::text, "
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
		pgsql_exec(conn, "BEGIN; SET LOCAL synchronous_commit = local; "
				   "SELECT pg_logical_emit_message(true, 'backstop', ''); COMMIT", err) != BS_OK)
	{
		log_debug("checkpoint: could not flush the server's WAL up to %X/%X: %s",
				  (unsigned) (*lsn >> 32), (unsigned) *lsn, err->message);
		pgsql_exec(conn, "ROLLBACK", err);
		error_clear(err);
	}
	return BS_OK;
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
table_exists_at(PGconn *conn, uint32_t relid, uint64_t lsn)
{
	char oid[16];
	const char *params[1] = {oid};
	uint64_t now_lsn = 0;
	PGresult *res = NULL;
	bs_error err;
	int rc = -1;

	error_clear(&err);
	snprintf(oid, sizeof(oid), "%u", relid);
	if (PQstatus(conn) != CONNECTION_OK || read_position(conn, &now_lsn, &err) != BS_OK || now_lsn < lsn ||
		pgsql_query_params(conn, "SELECT 1 FROM pg_class WHERE oid = $1::oid", 1, params, &res, &err) != BS_OK)
		rc = -1;
	else
		rc = PQntuples(res) > 0 ? 1 : 0;
	PQclear(res);
	return rc;
}

/* ---------- the querier: what a checkpoint asks of PostgreSQL, off the loop ---------- */

/* A connection of the querier's own (remade when it was lost: PostgreSQL restarted). */
static int
querier_connect(archiver *a, bs_error *err)
{
	bool again = a->qconn != NULL;

	if (a->qconn && PQstatus(a->qconn) == CONNECTION_OK)
		return BS_OK;
	PQfinish(a->qconn);
	a->qconn = NULL;
	if (pgsql_connect(a->query_conninfo, false, "backstop archive", &a->qconn, err) != BS_OK)
		return BS_ERR;
	if (again)
		log_info("reconnected to PostgreSQL (checkpoint connection)");
	return BS_OK;
}

/* Run one request's queries (no lock held; r is the querier's while QUERY_RUNNING). */
static void
querier_run(archiver *a, checkpoint_req *r, uint64_t lsn, bool want_position, bool check_exists, bool check_layout,
			bool check_member)
{
	bs_error err, lerr, merr;
	int rc;
	int lrc = BS_OK;
	int exists = -1;
	char member = 0;
	uint64_t member_lsn = 0;
	PGresult *lres = NULL;

	error_clear(&err);
	rc = querier_connect(a, &err);
	if (rc == BS_OK && want_position)
	{
		rc = read_position(a->qconn, &lsn, &err);
		/* Lost since its last use: once more on a new connection. */
		if (rc != BS_OK && PQstatus(a->qconn) != CONNECTION_OK)
		{
			error_clear(&err);
			rc = querier_connect(a, &err);
			if (rc == BS_OK)
				rc = read_position(a->qconn, &lsn, &err);
		}
	}
	if (rc == BS_OK && check_exists)
		exists = table_exists_at(a->qconn, r->relid, lsn);
	/* The table check after the point (weak mode), as the loop would have run it then. */
	error_clear(&lerr);
	if (rc == BS_OK && check_layout && exists != 0)
		lrc = schema_layout_query(a->qconn, r->relid, &lres, &lerr);
	/* Last: its snapshot is after the position read above, at or after the point. */
	error_clear(&merr);
	if (rc == BS_OK && check_member && exists != 0 &&
		catalog_publication_member(a->qconn, a->query_pubname, r->relid, &member, &member_lsn, &merr) != BS_OK)
		member = 0;
	uploader_lock(a);
	r->q_member = member;
	r->q_member_lsn = member_lsn;
	r->q_member_err = merr;
	r->layout_rc = lrc;
	r->layout_err = lerr;
	r->layout_res = lres;
	r->q_rc = rc;
	r->q_lsn = lsn;
	r->q_exists = exists;
	r->q_err = err;
	r->q_conn_ok = a->qconn && PQstatus(a->qconn) == CONNECTION_OK;
	r->qstate = QUERY_DONE;
	uploader_notify_main(a);
	pthread_mutex_unlock(&a->lock);
}

static void *
querier_main(void *arg)
{
	archiver *a = arg;

	uploader_lock(a);
	while (!a->querier_stop)
	{
		checkpoint_req *r = NULL;
		uint64_t lsn;
		bool want_position, check_exists, check_layout, check_member;

		for (checkpoint_req *q = a->querying; q && r == NULL; q = q->next)
			if (q->qstate == QUERY_WANTED)
				r = q;
		if (r == NULL)
		{
			pthread_cond_wait(&a->query_wake, &a->lock);
			continue;
		}
		r->qstate = QUERY_RUNNING;
		lsn = r->target_lsn;
		want_position = r->want_position;
		check_exists = r->check_exists;
		check_layout = r->check_layout;
		check_member = r->check_member;
		/* Unlocked across the queries: the loop keeps reading the stream meanwhile. */
		pthread_mutex_unlock(&a->lock);
		querier_run(a, r, lsn, want_position, check_exists, check_layout, check_member);
		uploader_lock(a);
	}
	pthread_mutex_unlock(&a->lock);
	PQfinish(a->qconn);
	a->qconn = NULL;
	return NULL;
}

/* Hand r to the querier (started on first use); the loop takes it back in checkpoint_queried. */
static void
querier_ask(archiver *a, checkpoint_req *r)
{
	if (!a->querier_running)
	{
		if (a->query_conninfo == NULL)
			a->query_conninfo = xstrdup(config_get(a->cfg, CFG_DB));
		if (a->query_pubname == NULL)
			a->query_pubname = xstrdup(config_get(a->cfg, CFG_PUBLICATION));
		a->querier_stop = false;
		if (pthread_create(&a->querier, NULL, querier_main, a) != 0)
		{
			/* Answered like a connection that cannot be made: 503, or again at the tick. */
			r->q_rc = error_set(&r->q_err, ERRCODE_INTERNAL, "could not start the checkpoint querier thread");
			r->q_conn_ok = !r->retry;
			r->q_exists = -1;
			r->qstate = QUERY_DONE;
			r->next = a->querying;
			a->querying = r;
			uploader_notify_main(a);
			return;
		}
		a->querier_running = true;
	}
	r->qstate = QUERY_WANTED;
	r->next = a->querying;
	a->querying = r;
	pthread_cond_signal(&a->query_wake);
}

/* The end (the loop has stopped): join the querier; what it held is answered with the rest. */
void
checkpoint_stop_querier(archiver *a)
{
	pthread_mutex_lock(&a->lock);
	a->querier_stop = true;
	pthread_cond_broadcast(&a->query_wake);
	pthread_mutex_unlock(&a->lock);
	if (a->querier_running)
		pthread_join(a->querier, NULL);
	a->querier_running = false;
	pthread_mutex_lock(&a->lock);
	while (a->querying)
	{
		checkpoint_req *r = a->querying;

		a->querying = r->next;
		PQclear(r->layout_res);
		r->layout_res = NULL;
		r->next = a->pending;
		a->pending = r;
	}
	pthread_mutex_unlock(&a->lock);
}

/* A request ready to wait for the archive: the uploader is told to hurry, the server asked. */
static void
checkpoint_wait(archiver *a, checkpoint_req *r)
{
	bs_error err;

	error_clear(&err);
	r->next = a->pending;
	a->pending = r;
	a->retry_now = true;
	pthread_cond_signal(&a->wake);
	/* Ask the server for its position now instead of waiting for a keepalive. */
	if (r->positioned && a->received_lsn < r->target_lsn && stream_send_status(a, true, &err) != BS_OK)
		log_warning("%s", err.message);
	/* Stream lost (PostgreSQL restarted): a waiting checkpoint cuts the back-off short. */
	if (a->repl == NULL && !a->stopping && a->reconnect_ms > clock_mono_ms() + CONN_RETRY_MS)
		a->reconnect_ms = clock_mono_ms() + CONN_RETRY_MS;
}

/* Reply and forget a request that never reached the pending list. */
static void
checkpoint_refuse(checkpoint_req *r, int code, const char *reason, const char *message)
{
	control_reply_error(r->req, code, reason, message);
	PQclear(r->layout_res);
	free(r);
}

/*
 * What the querier read of the table's membership in the publication, at or after the point.
 * ALTER PUBLICATION is not in the stream: pgoutput just stops sending the table's changes (or
 * those a new row filter or column list leaves out), so only the catalog says it, and a table
 * check may be up to --table-poll-interval away.  Published: seen so at q_member_lsn (the answer
 * waits for that to reach the point).  Not (or in part): it left, as a table check would find,
 * and the request is refused (409); false then.  Not read: the answer waits for a table check.
 */
static bool
checkpoint_member(archiver *a, arch_table *t, checkpoint_req *r)
{
	strbuf sb = STRBUF_INIT;

	if (!r->check_member)
		return true;
	if (r->q_member == 'p')
	{
		if (r->q_member_lsn > t->pub_seen_lsn)
			t->pub_seen_lsn = r->q_member_lsn;
		return true;
	}
	if (r->q_member != 'n' && r->q_member != 'f' && r->q_member != 'x')
	{
		if (r->q_member_err.message[0])
			log_warning("checkpoint of %s.%s: %s; the answer waits for a table check", t->man->schema, t->man->name,
						r->q_member_err.message);
		return true;
	}
	if (!t->unpublished && manifest_open_gap(t->man) == NULL)
	{
		catalog_table ct;

		memset(&ct, 0, sizeof(ct));
		ct.relid = t->relid;
		ct.schema = t->man->schema;
		ct.name = t->man->name;
		tables_publication_finding(a, r->q_member, t->man->schema, t->man->name,
								   "it was taken out of the publication after the archiver last saw it there, "
								   "outside the archiver; found by a checkpoint", &sb);
		ct.finding = sb.data;
		tables_set_unpublished(t, &ct, tables_unpublished_from(a, t));
		strbuf_reset(&sb);
	}
	tables_unpublished_reason(a, t, &sb);
	checkpoint_refuse(r, 409, "Conflict", sb.data);
	strbuf_free(&sb);
	return false;
}

/*
 * The rest of a request once its queries are done: where it stands (the position read, or
 * at the tick's next try when PostgreSQL is not back), whether the table is gone, the
 * table check of what is not captured; then it waits with the others.
 */
static void
checkpoint_placed(archiver *a, checkpoint_req *r)
{
	arch_table *t = tables_find(a, r->relid);

	if (r->want_position && r->q_rc == BS_OK)
	{
		r->target_lsn = r->q_lsn;
		r->positioned = true;
	}
	else if (r->want_position && r->retry)
	{
		a->conn_err = r->q_err;
		a->conn_retry_ms = clock_mono_ms() + CONN_RETRY_MS;
	}
	else if (r->want_position && r->q_conn_ok)
	{
		checkpoint_refuse(r, 503, "Service Unavailable", r->q_err.message[0] ? r->q_err.message :
						  "could not read the current WAL position");
		return;
	}
	else if (r->want_position)
	{
		/* PostgreSQL is not back yet (a restart): the tick tries again until the deadline. */
		log_warning("checkpoint of %s.%s: %s; trying again until its deadline", t ? t->man->schema : "?",
					t ? t->man->name : "?", r->q_err.message);
		a->conn_err = r->q_err;
		a->conn_retry_ms = clock_mono_ms() + CONN_RETRY_MS;
	}
	if (r->retry)
	{
		/* Only its position (and the membership after it) was asked again: the rest was
		 * settled when it came. */
		if (t == NULL || t->gone_lsn != 0 || checkpoint_member(a, t, r))
			checkpoint_wait(a, r);
		return;
	}
	if (t == NULL)
	{
		checkpoint_refuse(r, 404, "Not Found", "the table is not archived by this daemon any more");
		return;
	}
	/* Dropped: no recovery point of a table that is gone (recover --latest has its last state). */
	if (t->gone_lsn != 0 || r->q_exists == 0)
	{
		strbuf sb = STRBUF_INIT;

		strbuf_printf(&sb, "table %s.%s was dropped (backstop recover --latest gives its last state)",
					  t->man->schema, t->man->name);
		checkpoint_refuse(r, 410, "Gone", sb.data);
		strbuf_free(&sb);
		return;
	}
	if (!checkpoint_member(a, t, r))
		return;
	/* Not captured: a schema change before the point and after the table's last row change
	 * is found by a table check only; one now, after the point, so that the point is not
	 * answered before that change's window is recorded (the answer then waits for it). */
	if (r->layout_rc != BS_OK)
		log_warning("checkpoint of %s.%s: table check: %s", t->man->schema, t->man->name, r->layout_err.message);
	else if (r->positioned && r->layout_res)
	{
		bs_error e2;

		error_clear(&e2);
		if (schema_layout_apply(a, t, r->layout_seen, r->layout_res, &e2) != BS_OK)
			log_warning("checkpoint of %s.%s: table check: %s", t->man->schema, t->man->name, e2.message);
	}
	r->layout_res = NULL;
	r->existed = r->q_exists == 1;
	checkpoint_wait(a, r);
}

/* The loop takes back the requests whose queries are done (woken by the querier). */
void
checkpoint_queried(archiver *a)
{
	checkpoint_req **pp = &a->querying;

	while (*pp)
	{
		checkpoint_req *r = *pp;

		if (r->qstate != QUERY_DONE)
		{
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		r->next = NULL;
		checkpoint_placed(a, r);
	}
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
	int64_t timeout_ms = config_get_duration_ms(a->cfg, CFG_TIMEOUT);

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

		if (ident_split_name(table, &schema, &name, &err) == BS_OK)
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
	evhttp_clear_headers(&q);
	r = xcalloc(1, sizeof(checkpoint_req));
	r->req = req;
	r->relid = t->relid;
	r->target_lsn = lsn;
	r->positioned = lsn != 0;
	r->started_ms = clock_mono_ms();
	r->deadline_ms = r->started_ms + (timeout_ms > 0 ? timeout_ms : 30000);
	/*
	 * A named point the stream has passed, where schema changes are captured: every DROP
	 * committed before it has been read (it would have set gone_lsn), its WAL was sent
	 * (nothing to flush), and there is no table check to run (schema_poll_layout checks what
	 * is not captured).  So the table existed there; and the publication streamed it there
	 * when a table check or a checkpoint saw it published after the point (pub_seen_lsn: an
	 * ALTER PUBLICATION is not in the stream).  Then nothing is asked of PostgreSQL.
	 */
	if (r->positioned && t->gone_lsn == 0 && a->last_commit_end >= lsn && !tables_ddl_weak_at(a, t, lsn) &&
		t->pub_seen_lsn >= lsn)
	{
		r->existed = true;
		checkpoint_wait(a, r);
		checkpoint_answer(a, false, NULL);
		return;
	}
	if (t->gone_lsn != 0)
	{
		r->q_exists = -1;
		r->q_rc = BS_OK;
		checkpoint_placed(a, r);	/* 410, nothing to ask */
		return;
	}
	/* Everything else (the position "now", whether the table is in the catalog there, and
	 * the flush of a named point's WAL) is asked by the querier, never on the loop. */
	r->want_position = !r->positioned;
	r->check_exists = true;
	r->check_member = true;
	r->check_layout = schema_layout_check_due(a, t, &r->layout_seen);
	querier_ask(a, r);
}

/* Checkpoints that wait for the control connection to come back: asked again (tick). */
void
checkpoint_position(archiver *a)
{
	checkpoint_req **pp = &a->pending;

	if (clock_mono_ms() < a->conn_retry_ms)
		return;
	while (*pp)
	{
		checkpoint_req *r = *pp;

		if (r->positioned)
		{
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		r->retry = true;
		r->want_position = true;
		r->check_exists = false;
		r->check_member = true;
		/* Not again before this one is back (it is out of the pending list meanwhile). */
		a->conn_retry_ms = clock_mono_ms() + CONN_RETRY_MS;
		querier_ask(a, r);
	}
}
