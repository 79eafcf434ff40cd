/* basejob.c — the archiver's base-copy job: one thread with its own connections, results applied by the loop. */
#include "autoconf.h"
#include "clock.h"
#include "basecopy.h"
#include "codec.h"
#include "control.h"
#include "log.h"
#include "lsn.h"
#include "manifest.h"
#include "pgoutput.h"
#include "pgsql.h"
#include "replmsg.h"
#include "storage.h"
#include "strbuf.h"
#include "config.h"
#include "error.h"
#include "archiver_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
base_job_free(base_job *j)
{
	if (j == NULL)
		return;
	for (int i = 0; i < j->ntargets; i++)
	{
		free(j->targets[i].schema);
		free(j->targets[i].name);
		if (j->results)
			basecopy_result_free(&j->results[i]);
	}
	free(j->results);
	free(j->targets);
	free(j->conninfo);
	pthread_mutex_destroy(&j->cancel_lock);
	free(j);
}

static base_job *
base_job_new(archiver *a, storage *st, arch_table **list, int n)
{
	base_job *j = xcalloc(1, sizeof(base_job));

	j->conninfo = xstrdup(config_get(a->cfg, CFG_DB));
	j->st = st;
	j->opts.codec = a->codec;
	j->opts.level = a->level;
	j->opts.chunk_size = (uint64_t) config_get_size(a->cfg, CFG_BASE_CHUNK_SIZE);
	j->opts.cancel = &j->cancel;
	j->opts.test_lock_key = a->test_lock_key;
	j->opts.publication = config_get(a->cfg, CFG_PUBLICATION);
	j->opts.test_snapshot_lock_key = a->test_snapshot_lock_key;
	j->opts.test_end_lock_key = a->test_end_lock_key;
	j->opts.lock_timeout_ms = config_get_duration_ms(a->cfg, CFG_BASE_LOCK_TIMEOUT);
	j->ntargets = n;
	j->targets = xcalloc((size_t) n, sizeof(basecopy_target));
	for (int i = 0; i < n; i++)
	{
		j->targets[i].relid = list[i]->relid;
		j->targets[i].schema = xstrdup(list[i]->man->schema);
		j->targets[i].name = xstrdup(list[i]->man->name);
	}
	pthread_mutex_init(&j->cancel_lock, NULL);
	j->started_ms = clock_mono_ms();
	return j;
}

/* Make conn cancellable from the main thread (NULL conn: no longer). */
static void
base_job_track(base_job *j, int slot, PGconn *conn)
{
	pthread_mutex_lock(&j->cancel_lock);
	if (j->cancels[slot])
		PQfreeCancel(j->cancels[slot]);
	j->cancels[slot] = conn ? PQgetCancel(conn) : NULL;
	pthread_mutex_unlock(&j->cancel_lock);
}

/* Run a job: its own connections (a temporary slot on a replication one, the COPYs on a
 * normal one).  Used by the base-copy thread, and directly at start-up. */
static void
base_job_run(base_job *j)
{
	PGconn *conn = NULL;
	PGconn *repl = NULL;

	error_clear(&j->err);
	j->rc = BS_ERR;
	if (pgsql_connect(j->conninfo, false, "backstop basecopy", &conn, &j->err) != BS_OK ||
		pgsql_connect(j->conninfo, true, "backstop basecopy", &repl, &j->err) != BS_OK)
		goto out;
	base_job_track(j, 0, conn);
	base_job_track(j, 1, repl);
	if (__atomic_load_n(&j->cancel, __ATOMIC_RELAXED))
		error_set(&j->err, ERRCODE_CANCELED, "base copy cancelled");
	else
		j->rc = basecopy_with_temporary_slot(repl, conn, j->st, &j->opts, j->targets, j->ntargets,
											 &j->results, &j->lsn, &j->err);
	base_job_track(j, 0, NULL);
	base_job_track(j, 1, NULL);
out:
	if (conn)
		PQfinish(conn);
	if (repl)
		PQfinish(repl);
}

static void *
base_thread_main(void *arg)
{
	base_job *j = arg;

	base_job_run(j);
	__atomic_store_n(&j->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * Where schema changes are not captured: a base copy whose columns are not those the archive
 * has in effect at its LSN shows a change that nothing else may have seen (the table check
 * before the copy found the old columns, the copy's snapshot came after the change's commit,
 * and no row change has brought a Relation message since).  The change committed after the
 * newest position known to use the old columns and before the copy: returns that position
 * (from there to the copy, recovery cannot tell the columns), or lsn when there is nothing to
 * record (same columns, capture on, no layout yet, or a window that holds the copy already).
 */
static uint64_t
basejob_weak_change_from(const archiver *a, const arch_table *t, const basecopy_result *r, uint64_t lsn)
{
	const manifest *m = t->man;
	const manifest_layout *prev = manifest_layout_at(m, lsn);
	uint64_t from;

	if (prev == NULL || !tables_ddl_weak_at(a, t, lsn) ||
		(prev->replident == r->replident && manifest_columns_equal(prev->ncols, prev->columns, r->ncols, r->cols)))
		return lsn;
	/* A window that holds the copy's LSN bounds the change already (the copy lies after it). */
	if (manifest_schema_gap_at(m, lsn) != NULL)
		return lsn;
	/* Known to use the old columns: where they start, a base with them, and (the stream's
	 * layout being those) its newest commit with them; a lower bound is what is safe. */
	from = schema_newest_base_with_layout(m, prev->id, lsn, prev->from_lsn);
	if (t->layout_id == prev->id && t->layout_seen <= lsn && t->layout_seen > from)
		from = t->layout_seen;
	return from;
}

/* A newer copy asked for, durably (as request_rebase does): checkpoints wait for one taken
 * after lsn.  True when the request moved to lsn (none, or a later one, was recorded). */
static bool
want_copy_after(arch_table *t, uint64_t lsn)
{
	t->rebase_wanted = true;
	if (t->man->rebase_requested_at != 0 && t->man->rebase_requested_at <= lsn)
		return false;
	t->man->rebase_requested_at = lsn;
	return true;
}

/*
 * Add a copy to its table (lock held, or single-threaded).  The table may have been dropped
 * while it was copied: the copy is then discarded (its chunks stay unreferenced in storage).
 * Returns the table, NULL when discarded.
 */
arch_table *
basejob_apply(archiver *a, const basecopy_result *r, uint64_t lsn)
{
	arch_table *t = tables_find(a, r->relid);
	const manifest_layout *bl;
	char l[LSN_BUFLEN],
		 l2[LSN_BUFLEN];
	bs_error err;
	uint64_t weak_from;

	error_clear(&err);
	if (t == NULL || !t->active)
	{
		log_warning("base copy of table %u at %s discarded: the table is no longer archived (dropped meanwhile?)",
					r->relid, lsn_format(lsn, l));
		return NULL;
	}
	if (t->unpublished)
	{
		log_warning("base copy of %s.%s at %s discarded: the table left the publication meanwhile", t->man->schema,
					t->man->name, lsn_format(lsn, l));
		return NULL;
	}
	/* Before the copy's layout is placed: that may move the layouts. */
	weak_from = basejob_weak_change_from(a, t, r, lsn);
	if (basecopy_apply(t->man, r, &err) != BS_OK)
	{
		log_warning("%s (a new one is taken at a later check)", err.message);
		t->rebase_wanted = true;
		return NULL;
	}
	if (weak_from < lsn)
	{
		char l1[LSN_BUFLEN];

		manifest_add_schema_gap(t->man, weak_from, lsn);
		log_info("table %s.%s: the base copy at %s has other columns than the archive had there (schema changes "
				 "are not captured): they changed at an unknown point between %s and the copy; recovery points in "
				 "between are refused", t->man->schema, t->man->name, lsn_format(lsn, l), lsn_format(weak_from, l1));
	}
	/* Back in the archived set: its archive resumes at this copy. */
	manifest_close_open_gap(t->man, lsn);
	/* A schema change found by a table check: the copy shows the new columns when taken after
	 * the check saw them (every copy of a later run is). */
	if (manifest_open_schema_gap(t->man) != NULL)
	{
		if (t->schema_detect_lsn == 0 || lsn > t->schema_detect_lsn)
		{
			manifest_close_open_schema_gap(t->man, lsn);
			schema_check_forget(t);
			log_info("table %s.%s: the base copy at %s ends the window of an unknown schema change",
					 t->man->schema, t->man->name, lsn_format(lsn, l));
		}
		if (manifest_open_schema_gap(t->man) != NULL)
			t->rebase_wanted = true;
	}
	/* The re-base a column change asked for: done when this copy lies after the change. */
	if (t->man->rebase_requested_at != 0)
	{
		if (lsn > t->man->rebase_requested_at)
		{
			t->man->rebase_requested_at = 0;
			t->rebase_done_lsn = lsn;
		}
		else
			t->rebase_wanted = true;
	}
	if (strcmp(t->man->status ? t->man->status : "", "active") != 0)
	{
		free(t->man->status);
		t->man->status = xstrdup("active");
	}
	/* A first base covers the table up to its LSN.  A re-base may lie ahead of the stream:
	 * archived_to moves when the stream has caught up (uploader_store_head). */
	if (t->man->nbases == 1 && t->man->archived_to < lsn)
		t->man->archived_to = lsn;
	/*
	 * The layouts the stream recorded after the copy's LSN.  A column added after the base (the
	 * stream ran on during the copy) asks for another, as schema_handle_relation does for one
	 * added before.  A column the copy lacks: what it held in the copy's rows is known only as
	 * a value stored for missing rows (a constant default); otherwise (a volatile default, or a
	 * layout read before the table had one to compare with) recovery refuses the points that
	 * need it until a newer copy.
	 */
	bl = manifest_layout_by_id(t->man, t->man->bases[t->man->nbases - 1].layout_id);
	for (int i = 0; bl && i < t->man->nlayouts; i++)
	{
		manifest_layout *nl = &t->man->layouts[i];

		if (nl->from_lsn <= lsn)
			continue;
		if (nl->ncols > bl->ncols)
			t->rebase_wanted = true;
		/*
		 * Retyped after the copy (read by the stream while it was taken): the copy's rows cannot
		 * be converted to the new type exactly.  Asked for durably, as request_rebase does: the
		 * request this copy met (above) may have been one made before, which the retype's
		 * request joined (it was not recorded apart), and would be lost with it.
		 */
		if (schema_layout_retyped(bl, nl->ncols, nl->columns))
		{
			if (want_copy_after(t, nl->from_lsn))
				log_info("table %s.%s: a column retyped at %s, after the base copy at %s was taken, needs a newer "
						 "copy; recovery points from there until it is taken are refused", t->man->schema,
						 t->man->name, lsn_format(nl->from_lsn, l), lsn_format(lsn, l2));
		}
		for (int c = 0; c < nl->ncols; c++)
		{
			bool had = manifest_layout_has_column(bl, nl->columns[c].name);

			/* Judged where it first appears after the copy (later layouts carry it on). */
			for (int e = 0; e < t->man->nlayouts && !had; e++)
			{
				const manifest_layout *el = &t->man->layouts[e];

				had = el->from_lsn > lsn && el->from_lsn < nl->from_lsn &&
					manifest_layout_has_column(el, nl->columns[c].name);
			}
			if (had || nl->columns[c].missing != NULL || nl->columns[c].missing_unknown)
				continue;
			nl->columns[c].missing_unknown = true;
			(void) want_copy_after(t, nl->from_lsn);
			log_info("table %s.%s: column \"%s\" added at %s, after the base copy at %s was taken: its values in "
					 "the copy's rows are not known; recovery points from there are refused until a newer copy",
					 t->man->schema, t->man->name, nl->columns[c].name, lsn_format(nl->from_lsn, l),
					 lsn_format(lsn, l2));
		}
	}
	/* Stored by the uploader: one writer per manifest keeps the newest version last. */
	t->dirty = true;
	t->base_unstored = true;
	t->change_bytes = 0;
	t->base_yields = 0;
	t->base_retry_ms = 0;
	a->metrics.base_copies++;
	pthread_cond_signal(&a->wake);
	return t;
}

/* First wait after a copy gave way, doubled at each one in a row up to the maximum. */
#define BASE_YIELD_BACKOFF_MIN_MS 1000
#define BASE_YIELD_BACKOFF_MAX_MS (5 * 60 * 1000)

/*
 * A copy of this table gave way to its users (logged by basecopy): taken again at a table
 * check, not before the backoff, so that a session holding the table's lock for long is not
 * disturbed by a copy every check.  A table dropped meanwhile is found so by the check.
 */
static void
base_yielded(archiver *a, uint32_t relid)
{
	arch_table *t = tables_find(a, relid);
	int64_t delay = BASE_YIELD_BACKOFF_MIN_MS;

	if (t == NULL || !t->active)
		return;
	t->rebase_wanted = true;
	for (int i = 0; i < t->base_yields && delay < BASE_YIELD_BACKOFF_MAX_MS; i++)
		delay *= 2;
	if (delay > BASE_YIELD_BACKOFF_MAX_MS)
		delay = BASE_YIELD_BACKOFF_MAX_MS;
	t->base_yields++;
	t->base_retry_ms = clock_mono_ms() + delay;
	a->metrics.base_copy_yields++;
	log_info("table %s.%s: base copy taken again in %lld ms at the earliest (%d in a row gave way)",
			 t->man->schema, t->man->name, (long long) delay, t->base_yields);
}

/* The job has finished (thread joined, or run directly): add its copies, or log why not. */
static void
finish_base_job(archiver *a, base_job *j)
{
	int ncopied = 0;

	if (j->rc != BS_OK && __atomic_load_n(&j->cancel, __ATOMIC_RELAXED))
	{
		/* The tables have no new base yet: the next start takes them (nbases == 0 or the
		 * usual re-base conditions). */
		log_info("base copy cancelled: the archiver is stopping");
		return;
	}
	if (j->rc != BS_OK)
	{
		log_warning("base copy failed (retried at a later check): %s", j->err.message);
		for (int i = 0; i < j->ntargets; i++)
		{
			arch_table *t = tables_find(a, j->targets[i].relid);

			if (t && t->active)
				t->rebase_wanted = true;
		}
		return;
	}
	for (int i = 0; i < j->ntargets; i++)
	{
		if (j->results[i].relid == 0)
			base_yielded(a, j->targets[i].relid);
		else
		{
			basejob_apply(a, &j->results[i], j->lsn);
			ncopied++;
		}
	}
	log_info("%d base cop%s done in %.1f s%s", ncopied, ncopied == 1 ? "y" : "ies",
			 (double) (clock_mono_ms() - j->started_ms) / 1000.0,
			 ncopied < j->ntargets ? " (the others gave way, taken again later)" : "");
}

/*
 * Start copying these tables in the base-copy thread (lock held).  The stream keeps being
 * read meanwhile; the tables are already active, so their changes are kept from now on,
 * and those committed before the copy's point are skipped at recovery.
 */
void
basejob_start(archiver *a, arch_table **list, int n)
{
	base_job *j = base_job_new(a, a->st_base, list, n);

	/* Cleared now, not when the copy is added: a layout change during the copy asks again. */
	for (int i = 0; i < n; i++)
		list[i]->rebase_wanted = false;
	if (pthread_create(&a->base_thread, NULL, base_thread_main, j) != 0)
	{
		log_warning("could not start the base-copy thread (retried at a later check)");
		for (int i = 0; i < n; i++)
			list[i]->rebase_wanted = true;
		base_job_free(j);
		return;
	}
	a->bjob = j;
}

/* The base-copy thread has been joined: add its copies and forget the job (lock held). */
static void
retire_base_job(archiver *a)
{
	finish_base_job(a, a->bjob);
	base_job_free(a->bjob);
	a->bjob = NULL;
}

/* The base-copy thread has finished: join it and add its copies (lock held). */
void
basejob_reap(archiver *a)
{
	if (a->bjob == NULL || !__atomic_load_n(&a->bjob->done, __ATOMIC_ACQUIRE))
		return;
	pthread_join(a->base_thread, NULL);
	retire_base_job(a);
}

/*
 * Stopping: cancel the running copy (its COPY or slot creation is interrupted with PQcancel;
 * rows are no longer read) and wait for the thread, without the lock (the uploader may need
 * it meanwhile).  basejob_reap then keeps a copy that completed anyway.
 */
void
basejob_stop(archiver *a)
{
	if (a->bjob == NULL)
		return;
	__atomic_store_n(&a->bjob->cancel, 1, __ATOMIC_RELAXED);
	log_info("stopping: waiting for the base copy to stop");
	/* Again until it has stopped: a cancel that arrives between two statements is lost,
	 * and the next one may wait on a lock, where no row check can see the flag. */
	while (!__atomic_load_n(&a->bjob->done, __ATOMIC_ACQUIRE))
	{
		pthread_mutex_lock(&a->bjob->cancel_lock);
		for (int i = 0; i < 2; i++)
		{
			char buf[256];

			if (a->bjob->cancels[i])
				PQcancel(a->bjob->cancels[i], buf, sizeof(buf));
		}
		pthread_mutex_unlock(&a->bjob->cancel_lock);
		for (int i = 0; i < 10 && !__atomic_load_n(&a->bjob->done, __ATOMIC_ACQUIRE); i++)
			usleep(50 * 1000);
	}
	pthread_join(a->base_thread, NULL);
	/* Joined: basejob_reap must not join again.  A copy that completed anyway is kept. */
	pthread_mutex_lock(&a->lock);
	retire_base_job(a);
	pthread_mutex_unlock(&a->lock);
}

/* Start-up (no stream yet, single-threaded): copy in this thread. */
int
basejob_take_now(archiver *a, arch_table **list, int n, bs_error *err)
{
	base_job *j = base_job_new(a, a->st_main, list, n);

	base_job_run(j);
	if (j->rc != BS_OK)
	{
		*err = j->err;
		base_job_free(j);
		return BS_ERR;
	}
	for (int i = 0; i < n; i++)
	{
		list[i]->rebase_wanted = false;
		/* One that gave way has no base yet: a table check takes it in the background. */
		if (j->results[i].relid == 0)
			base_yielded(a, j->targets[i].relid);
		else
			basejob_apply(a, &j->results[i], j->lsn);
	}
	base_job_free(j);
	return BS_OK;
}
