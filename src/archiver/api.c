/* api.c — the archiver's control API: the dispatch table of /checkpoint, /metrics and /health. */
#include "autoconf.h"
#include "clock.h"
#include "codec.h"
#include "control.h"
#include "drillstate.h"
#include "lsn.h"
#include "storage.h"
#include "strbuf.h"
#include "config.h"
#include "archiver_int.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <inttypes.h>
#include <string.h>

/* Requests to the archive's storage (all three handles; not the local spool), and what the
 * seals cost in manifests: the figures of contrib/bench/scale. */
static void
storage_metrics(const archiver *a, strbuf *out)
{
	storage_stats s;

	memset(&s, 0, sizeof(s));
	if (a->st)
		storage_stats_add(a->st, &s);
	if (a->st_main)
		storage_stats_add(a->st_main, &s);
	if (a->st_base)
		storage_stats_add(a->st_base, &s);
	strbuf_printf(out, "# HELP backstop_storage_requests_total Requests to the archive's storage, by operation "
				  "(a put is one object, a list one call of any number of pages, a delete_many one per 1,000 keys).\n"
				  "# TYPE backstop_storage_requests_total counter\n");
	for (int op = 0; op < STORAGE_NOPS; op++)
		strbuf_printf(out, "backstop_storage_requests_total{op=\"%s\"} %" PRIu64 "\n",
					  storage_op_name((storage_op) op), s.requests[op]);
	strbuf_printf(out, "# HELP backstop_storage_bytes_total Bytes written to (put, put_if) or read from (get, "
				  "get_tagged) the archive's storage, as stored.\n"
				  "# TYPE backstop_storage_bytes_total counter\n");
	for (int op = 0; op < STORAGE_NOPS; op++)
		if (op == STORAGE_OP_PUT || op == STORAGE_OP_GET || op == STORAGE_OP_GET_TAGGED || op == STORAGE_OP_PUT_IF)
			strbuf_printf(out, "backstop_storage_bytes_total{op=\"%s\"} %" PRIu64 "\n",
						  storage_op_name((storage_op) op), s.bytes[op]);
	strbuf_printf(out,
		"# HELP backstop_seals_total Epochs sealed (each becomes durable as a whole).\n"
		"# TYPE backstop_seals_total counter\nbackstop_seals_total %" PRIu64 "\n"
		"# HELP backstop_manifests_stored_total Table manifests stored.\n"
		"# TYPE backstop_manifests_stored_total counter\nbackstop_manifests_stored_total %" PRIu64 "\n"
		"# HELP backstop_manifest_bytes_total Bytes of the table manifests stored (before encryption).\n"
		"# TYPE backstop_manifest_bytes_total counter\nbackstop_manifest_bytes_total %" PRIu64 "\n",
		a->metrics.seals, a->metrics.manifests_stored, a->metrics.manifest_bytes);
}

static void
on_metrics(struct evhttp_request *req, void *arg)
{
	archiver *a = arg;
	struct evbuffer *b = evbuffer_new();
	double up = (double) (clock_mono_ms() - a->metrics.started_ms) / 1000.0;

	evbuffer_add_printf(b,
		"# HELP backstop_received_lsn Last WAL position received from the slot.\n"
		"# TYPE backstop_received_lsn gauge\nbackstop_received_lsn %" PRIu64 "\n"
		"# HELP backstop_flushed_lsn Position durable in storage and confirmed to PostgreSQL.\n"
		"# TYPE backstop_flushed_lsn gauge\nbackstop_flushed_lsn %" PRIu64 "\n"
		"# HELP backstop_lag_bytes Received but not yet durable in storage.\n"
		"# TYPE backstop_lag_bytes gauge\nbackstop_lag_bytes %" PRIu64 "\n"
		"# HELP backstop_open_segment_bytes Bytes of open (not yet sealed) change segments.\n"
		"# TYPE backstop_open_segment_bytes gauge\nbackstop_open_segment_bytes %zu\n"
		"# HELP backstop_open_spilled_bytes The part of the open segments kept in spill files.\n"
		"# TYPE backstop_open_spilled_bytes gauge\nbackstop_open_spilled_bytes %" PRIu64 "\n"
		"# HELP backstop_spills_total Open segments spilled to files in the spool directory.\n"
		"# TYPE backstop_spills_total counter\nbackstop_spills_total %" PRIu64 "\n"
		"# HELP backstop_spool_bytes Sealed segments in the spool awaiting upload.\n"
		"# TYPE backstop_spool_bytes gauge\nbackstop_spool_bytes %" PRIu64 "\n"
		"# HELP backstop_messages_total Replication messages received.\n"
		"# TYPE backstop_messages_total counter\nbackstop_messages_total %" PRIu64 "\n"
		"# HELP backstop_received_bytes_total Bytes of replication messages received.\n"
		"# TYPE backstop_received_bytes_total counter\nbackstop_received_bytes_total %" PRIu64 "\n"
		"# HELP backstop_transactions_total Transactions received that touched archived tables.\n"
		"# TYPE backstop_transactions_total counter\nbackstop_transactions_total %" PRIu64 "\n"
		"# HELP backstop_changes_total Row changes (insert, update, delete, truncate) archived.\n"
		"# TYPE backstop_changes_total counter\nbackstop_changes_total %" PRIu64 "\n"
		"# HELP backstop_segments_uploaded_total Change segments stored.\n"
		"# TYPE backstop_segments_uploaded_total counter\nbackstop_segments_uploaded_total %" PRIu64 "\n"
		"# HELP backstop_uploaded_bytes_total Bytes stored (compressed).\n"
		"# TYPE backstop_uploaded_bytes_total counter\nbackstop_uploaded_bytes_total %" PRIu64 "\n"
		"# HELP backstop_upload_errors_total Failed storage writes (each retried).\n"
		"# TYPE backstop_upload_errors_total counter\nbackstop_upload_errors_total %" PRIu64 "\n"
		"# HELP backstop_reconnects_total Reconnections to PostgreSQL.\n"
		"# TYPE backstop_reconnects_total counter\nbackstop_reconnects_total %" PRIu64 "\n"
		"# HELP backstop_base_copies_total Base copies taken.\n"
		"# TYPE backstop_base_copies_total counter\nbackstop_base_copies_total %" PRIu64 "\n"
		"# HELP backstop_base_copy_yields_total Base copies of a table abandoned to give way to a lock on it "
		"(taken again later).\n"
		"# TYPE backstop_base_copy_yields_total counter\nbackstop_base_copy_yields_total %" PRIu64 "\n"
		"# HELP backstop_base_copy_running 1 while a base copy (new table or re-base) runs in the background.\n"
		"# TYPE backstop_base_copy_running gauge\nbackstop_base_copy_running %d\n"
		"# HELP backstop_base_copy_seconds How long the running base copy has been running (0: none).\n"
		"# TYPE backstop_base_copy_seconds gauge\nbackstop_base_copy_seconds %.1f\n"
		"# HELP backstop_checkpoints_total Recovery points verified for POST /checkpoint.\n"
		"# TYPE backstop_checkpoints_total counter\nbackstop_checkpoints_total %" PRIu64 "\n"
		"# HELP backstop_decode_rate_bytes Average bytes decoded per second since start.\n"
		"# TYPE backstop_decode_rate_bytes gauge\nbackstop_decode_rate_bytes %.0f\n"
		"# HELP backstop_upload_rate_bytes Average bytes uploaded per second since start.\n"
		"# TYPE backstop_upload_rate_bytes gauge\nbackstop_upload_rate_bytes %.0f\n",
		a->received_lsn, a->flush_lsn, a->received_lsn > a->flush_lsn ? a->received_lsn - a->flush_lsn : 0,
		a->open_bytes, a->spilled_bytes, a->metrics.spills, a->metrics.spool_bytes, a->metrics.messages, a->metrics.bytes_received,
		a->metrics.transactions, a->metrics.changes, a->metrics.segments_uploaded,
		a->metrics.bytes_uploaded, a->metrics.upload_errors, a->metrics.reconnects,
		a->metrics.base_copies, a->metrics.base_copy_yields, a->bjob != NULL,
		a->bjob ? (double) (clock_mono_ms() - a->bjob->started_ms) / 1000.0 : 0.0, a->metrics.checkpoints,
		up > 0 ? (double) a->metrics.bytes_received / up : 0.0,
		up > 0 ? (double) a->metrics.bytes_uploaded / up : 0.0);
	{
		strbuf extra = STRBUF_INIT;
		/* Behind: none when everything received is durable; else the age of the newest
		 * commit known durable (an upper bound: a newer one may be durable already). */
		double behind = a->received_lsn <= a->flush_lsn && a->repl != NULL ? 0.0 :
			(double) (clock_unix_us() - (a->metrics.durable_commit_time ? a->metrics.durable_commit_time :
														   clock_unix_us() - (clock_mono_ms() - a->metrics.started_ms) * 1000)) / 1e6;

		strbuf_printf(&extra,
			"# HELP backstop_build_info Backstop's version (the value is always 1).\n"
			"# TYPE backstop_build_info gauge\nbackstop_build_info{version=\"%s\"} 1\n"
			"# HELP backstop_up_seconds Seconds since the archiver started.\n"
			"# TYPE backstop_up_seconds gauge\nbackstop_up_seconds %.1f\n"
			"# HELP backstop_seconds_behind Age of the newest commit durable in storage; 0 when everything received is durable.\n"
			"# TYPE backstop_seconds_behind gauge\nbackstop_seconds_behind %.1f\n",
			PACKAGE_VERSION, up, behind < 0 ? 0.0 : behind);
		if (a->metrics.slot_retained >= 0)
			strbuf_printf(&extra,
				"# HELP backstop_slot_retained_wal_bytes WAL the replication slot holds on the server (from pg_replication_slots, at each table poll).\n"
				"# TYPE backstop_slot_retained_wal_bytes gauge\nbackstop_slot_retained_wal_bytes %" PRId64 "\n",
				a->metrics.slot_retained);
		storage_metrics(a, &extra);
		/* The last `backstop drill` (it writes DATA_DIR/drill-state.json). */
		drillstate_metrics(config_get(a->cfg, CFG_DATA_DIR), &extra);
		evbuffer_add(b, extra.data, extra.len);
		strbuf_free(&extra);
	}
	evbuffer_add_printf(b, "# HELP backstop_table_archived_lsn Last LSN archived per table.\n"
						"# TYPE backstop_table_archived_lsn gauge\n");
	for (int i = 0; i < a->ntables; i++)
	{
		arch_table *t = a->tables[i];

		if (!t->active)
			continue;
		strbuf label = STRBUF_INIT;

		/* Prometheus label values escape \\, \" and newline: a name cannot forge a sample. */
		strbuf_printf(&label, "%s.%s", t->man->schema, t->man->name);
		evbuffer_add_printf(b, "backstop_table_archived_lsn{table=\"");
		for (const char *p = label.data; *p; p++)
		{
			if (*p == '\\' || *p == '"')
				evbuffer_add_printf(b, "\\%c", *p);
			else if (*p == '\n')
				evbuffer_add_printf(b, "\\n");
			else
				evbuffer_add(b, p, 1);
		}
		evbuffer_add_printf(b, "\"} %" PRIu64 "\n",
							t->man->archived_to > a->flush_lsn ? t->man->archived_to : a->flush_lsn);
		strbuf_free(&label);
	}
	evbuffer_add_printf(b, "# HELP backstop_tables_skipped Tables that cannot be archived (see backstop info).\n"
						"# TYPE backstop_tables_skipped gauge\n");
	{
		int skipped = 0;

		for (int i = 0; i < a->ntables; i++)
			if (a->tables[i]->man->status && strcmp(a->tables[i]->man->status, "skipped") == 0 &&
				!a->tables[i]->partitioned)
				skipped++;
		evbuffer_add_printf(b, "backstop_tables_skipped %d\n", skipped);
	}
	{
		int unpublished = 0;

		for (int i = 0; i < a->ntables; i++)
			if (a->tables[i]->unpublished)
				unpublished++;
		evbuffer_add_printf(b, "# HELP backstop_tables_unpublished Tables to archive that the publication does not "
							"stream: not archived (see backstop info).\n"
							"# TYPE backstop_tables_unpublished gauge\nbackstop_tables_unpublished %d\n", unpublished);
	}
	evbuffer_add_printf(b, "# HELP backstop_table_checks_total Table checks (catalog and publication) completed.\n"
						"# TYPE backstop_table_checks_total counter\nbackstop_table_checks_total %" PRIu64 "\n",
						a->table_checks);
	if (a->control)
	{
		control_stats cs;

		control_get_stats(a->control, &cs);
		evbuffer_add_printf(b,
			"# HELP backstop_control_connections Open connections to this endpoint.\n"
			"# TYPE backstop_control_connections gauge\nbackstop_control_connections %d\n"
			"# HELP backstop_control_max_connections Most connections at once (listen_max_connections, descriptor limit).\n"
			"# TYPE backstop_control_max_connections gauge\nbackstop_control_max_connections %d\n"
			"# HELP backstop_control_accepted_total Connections accepted by this endpoint.\n"
		"# TYPE backstop_control_accepted_total counter\nbackstop_control_accepted_total %" PRIu64 "\n"
			"# HELP backstop_control_timeouts_total Connections closed idle or without a complete request (listen_timeout).\n"
			"# TYPE backstop_control_timeouts_total counter\nbackstop_control_timeouts_total %" PRIu64 "\n"
			"# HELP backstop_control_unauthorized_total Requests refused for a missing or wrong token.\n"
			"# TYPE backstop_control_unauthorized_total counter\nbackstop_control_unauthorized_total %" PRIu64 "\n"
			"# HELP backstop_control_accept_errors_total Connections this endpoint failed to accept.\n"
		"# TYPE backstop_control_accept_errors_total counter\nbackstop_control_accept_errors_total %" PRIu64 "\n",
			cs.connections, cs.max_connections, cs.accepted, cs.timed_out, cs.unauthorized, cs.accept_errors);
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void
on_health(struct evhttp_request *req, void *arg)
{
	archiver *a = arg;
	char l1[LSN_BUFLEN], l2[LSN_BUFLEN];
	strbuf sb = STRBUF_INIT;
	bool ok = a->repl != NULL && !a->spool_pending;

	strbuf_printf(&sb, "{\"status\":\"%s\",\"streaming\":%s,\"received_lsn\":\"%s\",\"flushed_lsn\":\"%s\","
				  "\"spool_bytes\":%" PRIu64 ",\"upload_errors\":%" PRIu64 "}",
				  ok ? "ok" : "degraded", a->repl ? "true" : "false", lsn_format(a->received_lsn, l1),
				  lsn_format(a->flush_lsn, l2), a->metrics.spool_bytes, a->metrics.upload_errors);
	control_reply_json(req, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", sb.data);
	strbuf_free(&sb);
}

/* The control API: each path, the method it needs (0: any) and its handler. */
static const api_route api_routes[] = {
	{"/metrics", 0, on_metrics},
	{"/health", 0, on_health},
	{"/checkpoint", EVHTTP_REQ_POST, checkpoint_request},
};

int
api_route_for(const char *path, int method, const api_route **route)
{
	*route = NULL;
	for (size_t i = 0; path && i < sizeof(api_routes) / sizeof(api_routes[0]); i++)
	{
		if (strcmp(path, api_routes[i].path) != 0)
			continue;
		if (api_routes[i].method != 0 && api_routes[i].method != method)
			return 405;
		*route = &api_routes[i];
		return 0;
	}
	return 404;
}

void
api_dispatch(struct evhttp_request *req, void *arg)
{
	const api_route *route;

	switch (api_route_for(evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req)),
						  (int) evhttp_request_get_command(req), &route))
	{
		case 0:
			route->handler(req, arg);
			break;
		case 405:
			control_reply_error(req, 405, "Method Not Allowed", "use POST");
			break;
		default:
			control_reply_error(req, 404, "Not Found", "endpoints: /metrics, /health, POST /checkpoint?table=S.T[&lsn=X/Y]");
			break;
	}
}
