/* archiver.c — the continuous archiver daemon: its event loop, signals and lease (the entry point). */
#include "autoconf.h"
#include "clock.h"
#include "archiver.h"
#include "basecopy.h"
#include "codec.h"
#include "control.h"
#include "lease.h"
#include "log.h"
#include "lsn.h"
#include "manifest.h"
#include "pgsql.h"
#include "spill.h"
#include "storage.h"
#include "storage_config.h"
#include "storage_crypt.h"
#include "strbuf.h"
#include "config.h"
#include "error.h"
#include "archiver_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <event2/event.h>
#include <event2/http.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>
void
archiver_fail(archiver *a, const bs_error *err)
{
	if (!a->fatal)
	{
		a->fatal = true;
		a->fatal_err = *err;
	}
	event_base_loopbreak(a->evbase);
}

/* ---------- the archive's lease ---------- */

/*
 * Before writing manifests, segments or the head: is the archive's lease still ours?  A
 * lost lease fails with ERRCODE_LOCK_NOT_AVAILABLE, which stops the archiver.  Without
 * conditional writes a takeover can still land between this check and the write that
 * follows it (doc/archiving.md, "One writer per archive").
 */
int
archiver_fence(archiver *a, bs_error *err)
{
	return lease_hold_check(a->st, &a->hold, err);
}

/* Start-up, before anything is written: take the lease and start its heartbeat (renewed
 * every third of lease_timeout, at least 1 s by config_ranges). */
int
archiver_take_lease(archiver *a, bs_error *err)
{
	if (lease_hold(a->st, config_get(a->cfg, CFG_SLOT),
				   config_get_duration_ms(a->cfg, CFG_LEASE_TIMEOUT), config_get_bool(a->cfg, CFG_TAKE_OVER),
				   a->head.lease_token, false, &a->hold, err) != BS_OK)
		return BS_ERR;
	/* Written with every head: a deleted lease.json never lets tokens go backwards. */
	a->head.lease_token = a->hold.lease.token;
	return BS_OK;
}

/* The end (single-threaded): stop the heartbeat, and give the lease up if it is still ours. */
static void
release_lease(archiver *a)
{
	lease_let_go(a->st, &a->hold, false);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	archiver *a = arg;
	int64_t now = clock_mono_ms();
	bs_error err;

	(void) fd;
	(void) what;
	error_clear(&err);
	if (lease_keeper_lost(a->hold.keeper, &err))
	{
		archiver_fail(a, &err);
		return;
	}
	if (a->repl == NULL && now >= a->reconnect_ms && !a->stopping && !a->slot_lost)
	{
		if (stream_start(a, &err) != BS_OK)
		{
			stream_schedule_reconnect(a, &err);
			/* A checkpoint waits for the stream: no long back-off meanwhile. */
			if (a->pending && a->reconnect_ms > now + CONN_RETRY_MS)
				a->reconnect_ms = now + CONN_RETRY_MS;
		}
		else
		{
			a->reconnect_delay_ms = 1000;
			/* Checkpoints asked while the stream was down: the server's position now. */
			if (a->pending && stream_send_status(a, true, &err) != BS_OK)
				stream_schedule_reconnect(a, &err);
		}
	}
	if (a->open_bytes > 0 && !a->in_txn && a->open_since_ms &&
		now - a->open_since_ms >= config_get_duration_ms(a->cfg, CFG_SEGMENT_AGE))
	{
		if (uploader_seal_epoch(a, false, &err) != BS_OK)
		{
			archiver_fail(a, &err);
			return;
		}
	}
	else if (a->open_bytes == 0 && !a->in_txn && !a->spool_pending && a->jobs_head == NULL)
		uploader_idle_progress(a, a->last_commit_end, false);
	else
		uploader_idle_progress(a, 0, false);	/* a throttled earlier request, when its time comes */
	if (a->repl && (a->flush_lsn > a->last_sent_flush ||
					now - a->last_status_ms >= config_get_duration_ms(a->cfg, CFG_STATUS_INTERVAL)))
	{
		if (stream_send_status(a, false, &err) != BS_OK)
			stream_schedule_reconnect(a, &err);
	}
	basejob_reap(a);
	stream_track_progress(a);
	if (now - a->last_poll_ms >= config_get_duration_ms(a->cfg, CFG_TABLE_POLL_INTERVAL))
	{
		a->last_poll_ms = now;
		if (tables_check_held(a))
			;					/* skipped: a test holds the check back */
		else if (tables_poll(a, &err) != BS_OK)
		{
			/* The same failure again (a lock held for as long as a rewrite runs): said once. */
			if (a->table_check_failures++ == 0 || strcmp(err.message, a->table_check_error) != 0)
				log_warning("table check failed: %s", err.message);
			else
				log_debug("table check failed again (%d times): %s", a->table_check_failures, err.message);
			snprintf(a->table_check_error, sizeof(a->table_check_error), "%s", err.message);
		}
		else
		{
			if (a->table_check_failures > 1)
				log_info("table checks succeed again, after %d failed", a->table_check_failures);
			a->table_check_failures = 0;
			a->table_checks++;
		}
		stream_read_slot_wal(a, false);
	}
	if (a->pending)
	{
		checkpoint_position(a);
		checkpoint_answer(a, false, NULL);
	}
}

/* The options a SIGHUP reloads from the configuration file. */
static const config_id reloadable_ids[] = {
	CFG_SEGMENT_SIZE, CFG_SEGMENT_AGE, CFG_LOG_LEVEL, CFG_REBASE_AGE, CFG_REBASE_RATIO, CFG_REBASE_MIN_INTERVAL,
	CFG_BASE_LOCK_TIMEOUT, CFG_SPOOL_LIMIT, CFG_OPEN_MEMORY_LIMIT, CFG_STATUS_INTERVAL, CFG_TABLE_POLL_INTERVAL
};

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	archiver *a = arg;

	(void) what;
	if (sig == SIGHUP)
	{
		bs_config fresh;
		bs_error err;
		char **pos = NULL;
		int npos = 0;
		bool usage = false;
		char *argv[2] = {"--config", a->cfg->config_file};
		log_level level;

		/* Re-read the file; flags and environment of the original start still apply on top
		 * for options that were set that way. */
		error_clear(&err);
		if (a->cfg->config_file == NULL)
		{
			log_info("SIGHUP: no configuration file to reload");
			return;
		}
		if (config_load(&fresh, 2, argv, NULL, &pos, &npos, &usage, &err) != BS_OK)
		{
			log_error("SIGHUP: configuration not reloaded: %s", err.message);
			config_free(&fresh);
			free(pos);
			return;
		}
		for (size_t i = 0; i < sizeof(reloadable_ids) / sizeof(reloadable_ids[0]); i++)
		{
			config_id id = reloadable_ids[i];

			if (a->cfg->values[id].source <= SOURCE_FILE && fresh.values[id].source == SOURCE_FILE)
				config_set(a->cfg, id, fresh.values[id].value, SOURCE_FILE);
		}
		a->segment_size = config_get_size(a->cfg, CFG_SEGMENT_SIZE);
		a->open_memory_limit = (uint64_t) config_get_size(a->cfg, CFG_OPEN_MEMORY_LIMIT);
		a->spool_limit = config_get_size(a->cfg, CFG_SPOOL_LIMIT);
		if (log_level_parse(config_get(a->cfg, CFG_LOG_LEVEL), &level) == 0)
			log_configure(level, strcmp(config_get(a->cfg, CFG_LOG_FORMAT), "json") == 0);
		config_free(&fresh);
		free(pos);
		log_info("SIGHUP: configuration reloaded from %s", a->cfg->config_file);
		return;
	}
	log_info("received %s, finishing", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	a->stopping = true;
	event_base_loopbreak(a->evbase);
}

/* ---------- main-loop callbacks run with the lock held ---------- */

static void
on_notify(evutil_socket_t fd, short what, void *arg)
{
	archiver *a = arg;
	char buf[64];
	bs_error err;

	(void) what;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	error_clear(&err);
	if (a->uploader_failed)
	{
		archiver_fail(a, &a->uploader_err);
		return;
	}
	if (a->repl && a->flush_lsn > a->last_sent_flush && stream_send_status(a, false, &err) != BS_OK)
		stream_schedule_reconnect(a, &err);
	if (a->querying)
		checkpoint_queried(a);
	if (a->pending)
		checkpoint_answer(a, false, NULL);
}

/* Every callback of the loop runs with the lock held (the protocol: archiver_int.h). */
#define LOCKED_CALLBACK(name, fn) \
	static void name(evutil_socket_t fd, short what, void *arg) \
	{ \
		archiver *a = arg; \
		pthread_mutex_lock(&a->lock); \
		fn(fd, what, arg); \
		pthread_mutex_unlock(&a->lock); \
	}
LOCKED_CALLBACK(locked_tick, on_tick)
LOCKED_CALLBACK(locked_signal, on_signal)
LOCKED_CALLBACK(locked_notify, on_notify)

static void
locked_http(struct evhttp_request *req, void *arg)
{
	archiver *a = arg;

	pthread_mutex_lock(&a->lock);
	api_dispatch(req, arg);
	pthread_mutex_unlock(&a->lock);
}

static void
archiver_free(archiver *a)
{
	stream_close(a);
	free(a->relcache);
	packlog_free(a);
	for (int i = 0; i < a->ntables; i++)
	{
		manifest_free(a->tables[i]->man);
		strbuf_free(&a->tables[i]->open);
		/* Never sealed: not durable (an orderly stop sealed it; a failure left it open). */
		spill_discard(a->tables[i]->spill);
		free(a->tables[i]->verified_key);
		schema_check_forget(a->tables[i]);
		free(a->tables[i]);
	}
	free(a->tables);
	while (a->pending)
	{
		checkpoint_req *r = a->pending;

		a->pending = r->next;
		free(r);
	}
	control_free(a->control);
	for (int i = 0; i < 3; i++)
		if (a->sig_evs[i])
			event_free(a->sig_evs[i]);
	if (a->tick_ev)
		event_free(a->tick_ev);
	if (a->notify_ev)
		event_free(a->notify_ev);
	for (int i = 0; i < 2; i++)
		if (a->notify_pipe[i] >= 0)
			close(a->notify_pipe[i]);
	while (a->jobs_head)
	{
		seal_job *j = a->jobs_head;

		a->jobs_head = j->next;
		uploader_job_free(j);
	}
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->wake);
	pthread_cond_destroy(&a->query_wake);
	free(a->query_conninfo);
	free(a->query_pubname);
	if (a->evbase)
		event_base_free(a->evbase);
	if (a->conn)
		PQfinish(a->conn);
	if (a->st)
		storage_close(a->st);
	if (a->st_main)
		storage_close(a->st_main);
	if (a->st_base)
		storage_close(a->st_base);
	if (a->spool)
		storage_close(a->spool);
	free(a->spill_dir);
	free(a->pub_as_is);
	archive_head_clear(&a->head);
}

int
archiver_run(bs_config *cfg, bs_error *err)
{
	archiver a;
	strbuf spool_url = STRBUF_INIT;
	struct timeval tick = {0, 200000};
	int sigs[3] = {SIGTERM, SIGINT, SIGHUP};
	sigset_t stop_signals;
	int rc = BS_ERR;

	/* Until the event loop handles them, stop signals wait: a SIGTERM during start-up (a slot
	 * creation waiting for running transactions, say) then stops the archiver in order, with
	 * its lease released, instead of killing it.  Threads started meanwhile inherit the mask,
	 * so the signals always reach this thread.  On a start-up failure they stay blocked: the
	 * process is about to exit with its own code. */
	sigemptyset(&stop_signals);
	for (int i = 0; i < 3; i++)
		sigaddset(&stop_signals, sigs[i]);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	memset(&a, 0, sizeof(a));
	a.cfg = cfg;
	a.test_lock_key = basecopy_test_lock_key_from_env("BACKSTOP_TEST_BASE_COPY_LOCK");
	a.test_snapshot_lock_key = basecopy_test_lock_key_from_env("BACKSTOP_TEST_BASE_COPY_SNAPSHOT_LOCK");
	a.test_check_lock_key = basecopy_test_lock_key_from_env("BACKSTOP_TEST_TABLE_CHECK_LOCK");
	a.test_end_lock_key = basecopy_test_lock_key_from_env("BACKSTOP_TEST_BASE_JOB_END_LOCK");
	a.test_members_lock_key = basecopy_test_lock_key_from_env("BACKSTOP_TEST_PUBLICATION_MEMBERS_LOCK");
	a.test_pub_update_lock_key = basecopy_test_lock_key_from_env("BACKSTOP_TEST_PUBLICATION_UPDATE_LOCK");
	a.metrics.started_ms = clock_mono_ms();
	a.metrics.slot_retained = -1;
	a.reconnect_delay_ms = 1000;
	a.notify_pipe[0] = a.notify_pipe[1] = -1;
	pthread_mutex_init(&a.lock, NULL);
	pthread_cond_init(&a.wake, NULL);
	pthread_cond_init(&a.query_wake, NULL);
	if (config_get(cfg, CFG_DB) == NULL)
	{
		rc = error_set(err, ERRCODE_INVALID_PARAMETER, "--db is required (a role with REPLICATION)");
		goto out;
	}
	if (codec_parse(config_get(cfg, CFG_COMPRESSION), &a.codec, err) != BS_OK)
		goto out;
	a.level = (int) config_get_int(cfg, CFG_COMPRESSION_LEVEL);
	a.segment_level = (int) config_get_int(cfg, CFG_SEGMENT_COMPRESSION_LEVEL);
	a.segment_size = config_get_size(cfg, CFG_SEGMENT_SIZE);
	if (config_get_duration_ms(cfg, CFG_EXPIRE_INTERVAL) > 0 && config_get(cfg, CFG_KEEP_WINDOW) == NULL &&
		config_get(cfg, CFG_KEEP_BASES) == NULL)
	{
		rc = error_set(err, ERRCODE_INVALID_PARAMETER,
					   "--expire-interval needs a retention policy: --keep-window and/or --keep-bases");
		goto out;
	}
	if (config_get(cfg, CFG_END_LSN) && lsn_parse(config_get(cfg, CFG_END_LSN), &a.end_lsn) != BS_OK)
	{
		rc = error_set(err, ERRCODE_INVALID_PARAMETER, "--end-lsn: invalid LSN \"%s\" (expected X/X, e.g. 0/16B3748)",
					   config_get(cfg, CFG_END_LSN));
		goto out;
	}
	a.open_memory_limit = (uint64_t) config_get_size(cfg, CFG_OPEN_MEMORY_LIMIT);
	a.spool_limit = config_get_size(cfg, CFG_SPOOL_LIMIT);
	{
		codec_stream *cs = NULL;

		/* A bad level is a configuration error now, not an upload failing forever later. */
		if (codec_compressor_open(a.codec, a.segment_level, &cs, err) != BS_OK)
		{
			error_prefix(err, "segment_compression_level");
			snprintf(err->code, sizeof(err->code), "%s", ERRCODE_INVALID_PARAMETER);
			goto out;
		}
		codec_stream_free(cs);
	}
	signal(SIGPIPE, SIG_IGN);
	if (pipe2(a.notify_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
	{
		error_set_errno(err, errno, "could not create a pipe");
		goto out;
	}
	if (storage_config_open(config_get(cfg, CFG_STORAGE), cfg, &a.st, err) != BS_OK ||
		storage_config_open(config_get(cfg, CFG_STORAGE), cfg, &a.st_main, err) != BS_OK ||
		storage_config_open(config_get(cfg, CFG_STORAGE), cfg, &a.st_base, err) != BS_OK ||
		storage_crypt_prepare_write(a.st, err) != BS_OK ||
		storage_crypt_prepare_write(a.st_main, err) != BS_OK ||
		storage_crypt_prepare_write(a.st_base, err) != BS_OK)
		goto out;
	strbuf_printf(&spool_url, "file://%s", config_get(cfg, CFG_SPOOL_DIR));
	if (spool_url.data[7] != '/')
	{
		error_set(err, ERRCODE_INVALID_PARAMETER, "spool_dir must be an absolute path: \"%s\"", config_get(cfg, CFG_SPOOL_DIR));
		goto out;
	}
	if (storage_open(spool_url.data, NULL, &a.spool, err) != BS_OK)
		goto out;
	{
		const char *spool_dir = config_get(cfg, CFG_SPOOL_DIR);
		size_t len = strlen(spool_dir);
		strbuf dir = STRBUF_INIT;

		/* The spool's root (absolute, checked above) without trailing slashes. */
		while (len > 1 && spool_dir[len - 1] == '/')
			len--;
		strbuf_printf(&dir, "%.*s/%s", (int) len, spool_dir, SPILL_DIR);
		a.spill_dir = strbuf_detach(&dir, NULL);
	}
	if (pgsql_connect(config_get(cfg, CFG_DB), false, "backstop archive", &a.conn, err) != BS_OK)
		goto out;
	a.evbase = event_base_new();
	if (control_open(a.evbase, cfg, locked_http, &a, &a.control, err) != BS_OK)
		goto out;
	log_info("archiving to %s", storage_describe(a.st));
	/* Single-threaded until the uploader starts. */
	if (startup_setup(&a, err) != BS_OK)
		goto out;
	a.last_poll_ms = clock_mono_ms();
	/* Before anything runs in the background: a start that cannot stream (the slot in use by
	 * another process, say) is an error with the server's message, and stores nothing more
	 * (no head is written on the way out). */
	if (stream_start(&a, err) != BS_OK)
		goto out;

	pthread_mutex_lock(&a.lock);
	if (pthread_create(&a.uploader, NULL, uploader_main, &a) != 0)
	{
		pthread_mutex_unlock(&a.lock);
		error_set(err, ERRCODE_INTERNAL, "could not start the uploader thread");
		goto out;
	}
	a.uploader_running = true;
	a.tick_ev = event_new(a.evbase, -1, EV_PERSIST, locked_tick, &a);
	event_add(a.tick_ev, &tick);
	a.notify_ev = event_new(a.evbase, a.notify_pipe[0], EV_READ | EV_PERSIST, locked_notify, &a);
	event_add(a.notify_ev, NULL);
	for (int i = 0; i < 3; i++)
	{
		a.sig_evs[i] = evsignal_new(a.evbase, sigs[i], locked_signal, &a);
		event_add(a.sig_evs[i], NULL);
	}
	pthread_mutex_unlock(&a.lock);
	/* A signal that arrived during start-up is delivered now, to the handlers just added. */
	pthread_sigmask(SIG_UNBLOCK, &stop_signals, NULL);
	while (!a.stopping && !a.fatal)
		event_base_dispatch(a.evbase);
	/* Before the final seal, and before anything is freed. */
	basejob_stop(&a);
	checkpoint_stop_querier(&a);

	pthread_mutex_lock(&a.lock);
	if (a.fatal)
		*err = a.fatal_err;
	else
	{
		bs_error e2;

		/* Orderly stop: seal what is complete; the uploader stores it before it exits. */
		error_clear(&e2);
		/* Not captured: a schema change since the last table check is found now, so that
		 * the stored archive does not vouch for the old columns after it. */
		for (int i = 0; i < a.ntables && PQstatus(a.conn) == CONNECTION_OK; i++)
			if (a.tables[i]->active && schema_poll_layout(&a, a.tables[i], &e2) != BS_OK)
			{
				log_warning("table check of %s.%s at the stop: %s", a.tables[i]->man->schema,
							a.tables[i]->man->name, e2.message);
				error_clear(&e2);
			}
		/* Likewise a table taken out of the publication since the last table check. */
		tables_check_membership_at_stop(&a);
		if (stream_drop_partial_transaction(&a, &e2) != BS_OK)
			archiver_fail(&a, &e2);
		else if (uploader_seal_epoch(&a, false, &e2) != BS_OK)
			log_warning("%s", e2.message);
		if (a.fatal)
			*err = a.fatal_err;
	}
	pthread_mutex_unlock(&a.lock);

	pthread_mutex_lock(&a.lock);
	a.uploader_stop = true;
	pthread_cond_signal(&a.wake);
	pthread_mutex_unlock(&a.lock);
	pthread_join(a.uploader, NULL);
	a.uploader_running = false;
	/* Single-threaded again. */
	if (!a.fatal && a.uploader_failed)
	{
		a.fatal = true;
		*err = a.uploader_err;
	}
	if (!a.fatal && !a.spool_pending)
	{
		uint64_t target = a.idle_lsn > a.flush_lsn ? a.idle_lsn : a.flush_lsn;
		bs_error e2;

		error_clear(&e2);
		if (target > a.head_written_lsn && uploader_store_head(&a, target, &e2) != BS_OK)
			log_warning("%s", e2.message);
		else
			a.flush_lsn = target;
	}
	if (a.spool_pending)
		log_warning("stopping with %llu bytes in the spool (uploaded on the next start)",
					(unsigned long long) a.metrics.spool_bytes);
	checkpoint_answer(&a, true, a.fatal ? err->message : "archiver stopping");
	/* Whatever is durable is confirmed, so a restart does not redo it. */
	{
		bs_error e2;
		char l[LSN_BUFLEN];

		error_clear(&e2);
		if (stream_send_status(&a, false, &e2) != BS_OK)
			log_warning("%s", e2.message);
		else
			log_info("stopped; confirmed %s to PostgreSQL", lsn_format(a.flush_lsn, l));
	}
	if (!a.fatal && a.slot_lost)
	{
		char l[LSN_BUFLEN];

		a.fatal = true;
		*err = a.slot_lost_err;
		log_info("the archive is stored up to %s (the last position durable before the slot was lost)",
				 lsn_format(a.flush_lsn, l));
	}
	if (!a.fatal && a.end_received_ms)
	{
		char l[LSN_BUFLEN], f[LSN_BUFLEN];

		if (a.spool_pending || a.flush_lsn < a.last_commit_end)
		{
			a.fatal = true;
			error_set(err, ERRCODE_STORAGE, "end LSN %s reached, but only %s is durable in storage "
					  "(the rest stays in the spool and is uploaded on the next start)",
					  lsn_format(a.end_lsn, l), lsn_format(a.flush_lsn, f));
		}
		else
			log_info("end LSN %s: everything through %s is durable in storage after %.3f s",
					 lsn_format(a.end_lsn, l), lsn_format(a.flush_lsn, f),
					 (double) (clock_mono_ms() - a.metrics.started_ms) / 1000.0);
	}
	if (!a.fatal)
		rc = BS_OK;
out:
	release_lease(&a);
	archiver_free(&a);
	strbuf_free(&spool_url);
	return rc;
}
