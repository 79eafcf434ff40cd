/* test_uploader.c — unit tests for the archiver's uploader: sealing into the queue, upload, manifest update, failed puts and their retry. */
#include "archiver_int.h"
#include "fault_storage.h"
#include "lsn.h"
#include "object.h"
#include "storage_local.h"
#include "tap.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RELID1 16384
#define RELID2 16390

/* ---------- the fixture: an archiver without PostgreSQL ---------- */

typedef struct fixture
{
	char dir[64];
	storage *local;				/* the archive, as written */
	fault_storage *fs;			/* a.st: the uploader's handle on it */
	bs_config cfg;
	archiver a;
	arch_table *t1;
	arch_table *t2;
	int64_t xid;
} fixture;

static manifest_column cols[] = {{.name = "id", .type_oid = 23, .typmod = -1, .type_name = "integer", .key = true}};

static void
setup(fixture *fx)
{
	static const char *const allowed[] = {NULL};
	char *argv[] = {NULL};
	char **pos = NULL;
	int npos = 0;
	bool usage = false;
	char path[128];
	bs_error err;
	archiver *a = &fx->a;

	memset(fx, 0, sizeof(*fx));
	strcpy(fx->dir, "/tmp/backstop-test-uploader-XXXXXX");
	if (mkdtemp(fx->dir) == NULL || config_load(&fx->cfg, 0, argv, allowed, &pos, &npos, &usage, &err) != BS_OK)
	{
		printf("Bail out! fixture: %s\n", fx->dir);
		exit(1);
	}
	free(pos);
	a->cfg = &fx->cfg;
	snprintf(path, sizeof(path), "file://%s/archive", fx->dir);
	if (storage_open(path, NULL, &fx->local, &err) != BS_OK)
		goto fail;
	snprintf(path, sizeof(path), "file://%s/spool", fx->dir);
	if (storage_open(path, NULL, &a->spool, &err) != BS_OK)
		goto fail;
	snprintf(path, sizeof(path), "%s/spool/%s", fx->dir, SPILL_DIR);
	a->spill_dir = xstrdup(path);
	/* Puts refused on demand (fail_from[STORAGE_OP_PUT]), as a storage outage would. */
	fx->fs = fault_storage_new(fx->local, false);
	a->st = &fx->fs->base;
	a->codec = CODEC_ZSTD;
	a->segment_level = 1;
	a->open_memory_limit = UINT64_C(1) << 30;
	a->spool_limit = INT64_C(1) << 30;
	a->metrics.slot_retained = -1;
	archive_head_init(&a->head);
	a->head.system_identifier = xstrdup("7300000000000000001");
	a->head.database = xstrdup("test");
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->wake, NULL);
	/* The test reads the uploader's wake-ups (blocking); the uploader writes without blocking. */
	if (pipe(a->notify_pipe) != 0 || fcntl(a->notify_pipe[1], F_SETFL, O_NONBLOCK) != 0)
		goto fail;
	if (lease_hold(fx->local, "test-uploader", 60000, false, 0, true, &a->hold, &err) != BS_OK)
		goto fail;
	if (tables_load(a, a->st, RELID1, "public", "t1", true, &fx->t1, &err) != BS_OK ||
		tables_load(a, a->st, RELID2, "public", "t2", true, &fx->t2, &err) != BS_OK)
		goto fail;
	fx->t1->layout_id = tables_insert_layout(fx->t1->man, -1, 0x1000, 'd', 1, cols);
	fx->t2->layout_id = tables_insert_layout(fx->t2->man, -1, 0x1000, 'd', 1, cols);
	fx->xid = 700;
	return;
fail:
	printf("Bail out! fixture: %s\n", err.message);
	exit(1);
}

static void
teardown(fixture *fx)
{
	archiver *a = &fx->a;
	char cmd[128];

	while (a->jobs_head)
	{
		seal_job *next = a->jobs_head->next;

		uploader_job_free(a->jobs_head);
		a->jobs_head = next;
	}
	lease_let_go(fx->local, &a->hold, true);
	for (int i = 0; i < a->ntables; i++)
	{
		strbuf_free(&a->tables[i]->open);
		free(a->tables[i]->verified_key);
		manifest_free(a->tables[i]->man);
		free(a->tables[i]);
	}
	free(a->tables);
	archive_head_clear(&a->head);
	storage_close(a->st);
	storage_close(fx->local);
	storage_close(a->spool);
	free(a->spill_dir);
	close(a->notify_pipe[0]);
	close(a->notify_pipe[1]);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->wake);
	config_free(&fx->cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", fx->dir);
}

/*
 * Receive one transaction committing at lsn, as the stream does (stream.c, Begin, changes,
 * Commit): nrows inserts into each table of the list.  Returns its end LSN.  The caller holds
 * the lock while the uploader runs.
 */
static uint64_t
receive_txn(fixture *fx, uint64_t lsn, arch_table **tables, int ntables, int nrows)
{
	archiver *a = &fx->a;
	uint64_t end = lsn + 0x28;
	bs_error err;

	a->in_txn = true;
	a->txn_final_lsn = lsn;
	a->txn_commit_time = (int64_t) lsn * 1000;
	a->txn_xid = (uint32_t) fx->xid++;
	for (int i = 0; i < a->ntables; i++)
	{
		a->tables[i]->txn_start = segments_open_len(a->tables[i]);
		a->tables[i]->txn_records = a->tables[i]->open_records;
	}
	for (int i = 0; i < ntables; i++)
	{
		for (int r = 0; r < nrows; r++)
		{
			strbuf tuple = STRBUF_INIT;
			char val[32];
			segment_record rec;

			snprintf(val, sizeof(val), "%d", (int) (lsn & 0xffff) + r);
			strbuf_append_be16(&tuple, 1);
			strbuf_append_u8(&tuple, 't');
			strbuf_append_be32(&tuple, (uint32_t) strlen(val));
			strbuf_append(&tuple, val, strlen(val));
			memset(&rec, 0, sizeof(rec));
			rec.op = 'I';
			rec.old_kind = SEGMENT_OLD_NONE;
			rec.new_tuple = (const uint8_t *) tuple.data;
			rec.new_len = tuple.len;
			if (segments_append_record(a, tables[i], &rec, &err) != BS_OK)
			{
				printf("Bail out! append: %s\n", err.message);
				exit(1);
			}
			strbuf_free(&tuple);
		}
	}
	for (int i = 0; i < a->ntables; i++)
		if (a->tables[i]->txn_start < segments_open_len(a->tables[i]) &&
			segments_patch_end_lsn(a, a->tables[i], end, &err) != BS_OK)
		{
			printf("Bail out! commit: %s\n", err.message);
			exit(1);
		}
	a->in_txn = false;
	a->last_commit_end = a->received_lsn = end;
	return end;
}

static uint64_t
flush_lsn(archiver *a)
{
	uint64_t v;

	pthread_mutex_lock(&a->lock);
	v = a->flush_lsn;
	pthread_mutex_unlock(&a->lock);
	return v;
}

/*
 * Wait for the uploader (woken through notify_pipe, never by a sleep) until the flush reaches
 * lsn (lsn > 0: an upload error meanwhile is a failure), or until it has counted errors upload
 * errors with every sealed epoch taken from the queue into the spool (lsn 0).  False when it failed, or when nothing came for a minute (a hang, reported
 * as a failure rather than waited for forever).
 */
static bool
wait_uploader(archiver *a, uint64_t lsn, uint64_t errors)
{
	uint64_t errors_before;

	pthread_mutex_lock(&a->lock);
	errors_before = a->metrics.upload_errors;
	pthread_mutex_unlock(&a->lock);
	for (;;)
	{
		struct pollfd p = {.fd = a->notify_pipe[0], .events = POLLIN};
		bool done, failed;
		char buf[64];

		pthread_mutex_lock(&a->lock);
		done = lsn ? a->flush_lsn >= lsn
			: a->metrics.upload_errors >= errors && a->jobs_head == NULL && a->queued_bytes == 0;
		failed = a->uploader_failed || (lsn && a->metrics.upload_errors > errors_before);
		if (a->uploader_failed)
			printf("# uploader failed: %s\n", a->uploader_err.message);
		else if (failed)
			printf("# an upload failed while the flush was awaited\n");
		pthread_mutex_unlock(&a->lock);
		if (done || failed)
			return done && !failed;
		if (poll(&p, 1, 60000) != 1 || read(a->notify_pipe[0], buf, sizeof(buf)) <= 0)
		{
			printf("# no word from the uploader\n");
			return false;
		}
	}
}

/* Ask the uploader to try storage again now (what a waiting checkpoint does). */
static void
retry_now(archiver *a)
{
	pthread_mutex_lock(&a->lock);
	a->retry_now = true;
	pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->lock);
}

static int
spool_count(archiver *a, const char *suffix)
{
	storage_keys keys = {0};
	bs_error err;
	int n = 0;

	if (storage_list(a->spool, "", storage_collect_key, &keys, &err) != BS_OK)
		return -1;
	for (int i = 0; i < keys.count; i++)
	{
		size_t kl = strlen(keys.keys[i]), sl = strlen(suffix);

		if (strncmp(keys.keys[i], SPILL_DIR "/", strlen(SPILL_DIR) + 1) != 0 && kl >= sl &&
			strcmp(keys.keys[i] + kl - sl, suffix) == 0)
			n++;
	}
	storage_keys_free(&keys);
	return n;
}

/* One sealed epoch as the test expects to find it in storage. */
typedef struct sealed
{
	uint64_t seal_lsn;
	uint32_t relid;
	uint64_t first_lsn;
	uint64_t end_lsn;
	uint64_t records;
	strbuf raw;					/* the segment's bytes as sealed */
} sealed;

/*
 * What storage holds, read as recovery would (the local storage, not the uploader's handle):
 * is everything the flush claims durable and indexed?  head.json has reached flush, and every
 * epoch sealed at or before it is listed, exactly once, in its table's stored manifest, with
 * an object that reads back as the bytes sealed; head.json records a generation of each such
 * manifest no newer than the one stored (settled: the one stored, as after a complete
 * upload).  why says what is missing.
 */
static bool
stored_covers(fixture *fx, uint64_t flush, bool settled, const sealed *s, int ns, char *why, size_t whylen)
{
	archive_head head;
	bool exists = false;
	bs_error err;
	bool good = true;

	why[0] = '\0';
	if (flush == 0)
		return true;
	if (archive_head_load(fx->local, &head, &exists, &err) != BS_OK || !exists || head.flushed_lsn < flush)
	{
		snprintf(why, whylen, "head.json %s", exists ? "is behind the flush" : "is missing");
		if (exists)
			archive_head_clear(&head);
		return false;
	}
	for (int i = 0; i < ns && good; i++)
	{
		manifest *m = NULL;
		char *key;
		int found = 0;

		if (s[i].seal_lsn > flush)
			continue;
		key = manifest_segment_key(s[i].relid, s[i].first_lsn, s[i].end_lsn);
		if (manifest_load(fx->local, s[i].relid, &m, &exists, &err) != BS_OK || !exists)
		{
			snprintf(why, whylen, "no stored manifest for %u", s[i].relid);
			good = false;
		}
		for (int j = 0; good && j < m->nsegments; j++)
		{
			strbuf data = STRBUF_INIT;

			if (strcmp(m->segments[j].key, key) != 0)
				continue;
			found++;
			if (object_get_all(fx->local, key, m->segments[j].sha256, &data, NULL, &err) != BS_OK ||
				data.len != s[i].raw.len || memcmp(data.data, s[i].raw.data, data.len) != 0 ||
				m->segments[j].records != s[i].records || m->segments[j].first_lsn != s[i].first_lsn ||
				m->segments[j].last_end_lsn != s[i].end_lsn)
			{
				snprintf(why, whylen, "%s is not what was sealed", key);
				good = false;
			}
			strbuf_free(&data);
		}
		if (good && found != 1)
		{
			snprintf(why, whylen, "%s listed %d times", key, found);
			good = false;
		}
		if (good && m->archived_to < s[i].seal_lsn)
		{
			snprintf(why, whylen, "manifest of %u archived_to before the seal", s[i].relid);
			good = false;
		}
		if (good)
		{
			const archive_head_table *rec = archive_head_find_table(&head, s[i].relid);

			if (rec == NULL || rec->generation > m->generation || (settled && rec->generation != m->generation))
			{
				snprintf(why, whylen, "head.json records generation %llu of manifest %u, stored: %llu",
						 rec ? (unsigned long long) rec->generation : 0ULL, s[i].relid,
						 (unsigned long long) m->generation);
				good = false;
			}
		}
		free(key);
		manifest_free(m);
	}
	archive_head_clear(&head);
	return good;
}

/* Seal what is open (the caller holds the lock), noting what each table's segment holds. */
static int
seal(fixture *fx, sealed *s, int *ns)
{
	archiver *a = &fx->a;
	bs_error err;
	int n = 0;

	for (int i = 0; i < a->ntables; i++)
	{
		arch_table *t = a->tables[i];

		if (t->open_records == 0)
			continue;
		memset(&s[*ns + n], 0, sizeof(sealed));
		s[*ns + n].seal_lsn = a->last_commit_end;
		s[*ns + n].relid = t->relid;
		s[*ns + n].first_lsn = t->sum.first_commit_lsn;
		s[*ns + n].end_lsn = t->sum.last_end_lsn;
		s[*ns + n].records = t->open_records;
		strbuf_append(&s[*ns + n].raw, t->open.data, t->open.len);
		n++;
	}
	if (uploader_seal_epoch(a, false, &err) != BS_OK)
	{
		printf("# seal: %s\n", err.message);
		return -1;
	}
	*ns += n;
	return n;
}

/* ---------- sealing into the queue (main thread only) ---------- */

static void
test_seal_queue(void)
{
	fixture fx;
	archiver *a;
	arch_table *both[2];
	uint64_t end1, end2;
	seal_job *j1, *j2;
	strbuf raw1 = STRBUF_INIT;
	bs_error err;
	char key[96], h1[LSN_BUFLEN], h2[LSN_BUFLEN], h3[LSN_BUFLEN];

	setup(&fx);
	a = &fx.a;
	both[0] = fx.t1;
	both[1] = fx.t2;

	/* In the middle of a transaction nothing is sealed: its records have no end LSN yet. */
	end1 = receive_txn(&fx, 0x2000, both, 2, 3);
	a->in_txn = true;
	is_int(uploader_seal_epoch(a, false, &err), BS_OK, "sealing inside a transaction succeeds");
	ok(a->jobs_head == NULL && fx.t1->open_records == 3, "but seals nothing");
	a->in_txn = false;
	a->fatal = true;
	is_int(uploader_seal_epoch(a, false, &err), BS_OK, "after a fatal error sealing succeeds");
	ok(a->jobs_head == NULL && fx.t1->open_records == 3, "but seals nothing");
	a->fatal = false;

	strbuf_append(&raw1, fx.t1->open.data, fx.t1->open.len);
	is_int(uploader_seal_epoch(a, false, &err), BS_OK, "an epoch is sealed");
	j1 = a->jobs_head;
	ok(j1 != NULL && a->jobs_tail == j1 && j1->next == NULL, "one job queued");
	is_int(j1->seal_lsn, end1, "at the last commit's end");
	is_int(j1->nparts, 2, "one part per table with records");
	lsn_format_key(end1, h1);
	snprintf(key, sizeof(key), "%s/%u-%s-%s.seg", h1, RELID1, lsn_format_key(0x2000, h2), lsn_format_key(end1, h3));
	is_str(j1->parts[0].spool_key, key, "the spool key names the epoch, the table, first commit and last end");
	is_int(j1->parts[0].sum.records, 3, "the part's summary counts its records");
	ok(!j1->parts[0].spilled && j1->parts[0].data.len == raw1.len &&
	   memcmp(j1->parts[0].data.data, raw1.data, raw1.len) == 0, "the part holds the open segment's bytes");
	ok(j1->parts[0].layouts && strstr(j1->parts[0].layouts, "\"layouts\""), "and the table's layouts");
	is_int(j1->bytes, j1->parts[0].size + j1->parts[1].size, "the job's bytes are its parts'");
	is_int(a->queued_bytes, j1->bytes, "counted as queued");
	ok(fx.t1->open.len == 0 && fx.t1->open_records == 0 && fx.t2->open_records == 0 && a->open_bytes == 0,
	   "nothing is open any more");
	is_int(a->metrics.seals, 1, "seals counted");
	is_int(a->flush_lsn, 0, "nothing is confirmed by sealing");

	/* A second epoch goes behind the first. */
	end2 = receive_txn(&fx, 0x3000, both, 1, 2);
	is_int(uploader_seal_epoch(a, false, &err), BS_OK, "a second epoch is sealed");
	j2 = a->jobs_tail;
	ok(a->jobs_head == j1 && j1->next == j2 && j2 != j1 && j2->next == NULL, "queued behind the first");
	is_int(j2->seal_lsn, end2, "at its own commit");
	ok(j2->nparts == 1 && j2->parts[0].relid == RELID1, "with only the table that changed");
	is_int(a->queued_bytes, j1->bytes + j2->bytes, "queued bytes add up");

	/* Nothing open: no job, but the idle position is asked of the uploader (urgent: now). */
	a->last_commit_end = 0x3100;
	is_int(uploader_seal_epoch(a, true, &err), BS_OK, "sealing with nothing open succeeds");
	ok(a->jobs_tail == j2, "and queues nothing");
	is_int(a->head_wanted, 0, "with epochs still queued, no idle progress is asked");
	a->jobs_head = a->jobs_tail = NULL;
	is_int(uploader_seal_epoch(a, true, &err), BS_OK, "with nothing queued either");
	is_int(a->head_wanted, 0x3100, "the head is asked for at the last commit");
	is_int(a->flush_lsn, 0, "but not confirmed before it is written");
	a->jobs_head = j1;
	a->jobs_tail = j2;

	/* The spool's room: what is spooled, queued and open stays within spool_limit. */
	receive_txn(&fx, 0x4000, both, 1, 1);
	a->spool_limit = (int64_t) (a->queued_bytes + a->open_bytes) - 1;
	ok(uploader_seal_epoch(a, false, &err) == BS_ERR && strcmp(err.code, ERRCODE_DISK_FULL) == 0,
	   "beyond spool_limit a seal fails (disk full)");
	ok(a->jobs_tail == j2 && fx.t1->open_records == 1, "and leaves the open segment where it was");
	strbuf_free(&raw1);
	teardown(&fx);
}

/* ---------- the uploader thread: upload, manifests, failed puts, retries ---------- */

static void
test_upload_retry(void)
{
	fixture fx;
	archiver *a;
	arch_table *one[1];
	pthread_t th;
	sealed s[64];
	int ns = 0;
	int clean_puts;
	uint64_t lsn = 0x10000;
	uint64_t seal_lsn;
	char why[256];
	manifest *m = NULL;
	bool exists;
	bs_error err;

	setup(&fx);
	a = &fx.a;
	one[0] = fx.t1;

	/* A clean upload: the segment, the manifest listing it, the head, then the flush. */
	seal_lsn = receive_txn(&fx, lsn, one, 1, 4);
	seal(&fx, s, &ns);
	if (pthread_create(&th, NULL, uploader_main, a) != 0)
	{
		printf("Bail out! pthread_create\n");
		exit(1);
	}
	ok(wait_uploader(a, seal_lsn, 0), "the flush reaches the sealed epoch");
	ok(stored_covers(&fx, flush_lsn(a), true, s, ns, why, sizeof(why)), "what it confirms is stored and listed %s", why);
	is_int(flush_lsn(a), seal_lsn, "exactly the epoch's position");
	is_int(spool_count(a, ""), 0, "the spool is emptied once stored");
	clean_puts = fx.fs->calls[STORAGE_OP_PUT];
	ok(clean_puts >= 3, "segment, manifest and head were written (%d puts)", clean_puts);
	pthread_mutex_lock(&a->lock);
	ok(!a->spool_pending && a->queued_bytes == 0 && a->metrics.segments_uploaded == 1 &&
	   a->metrics.manifests_stored >= 1 && a->metrics.upload_errors == 0, "metrics: one segment, no error");
	pthread_mutex_unlock(&a->lock);

	/*
	 * Storage fails from each of an upload's puts on in turn: the flush stays where it was
	 * (what storage holds and lists), the epoch waits in the spool, and a retry stores it once.
	 */
	for (int k = 1; k <= clean_puts; k++)
	{
		uint64_t before = flush_lsn(a);
		uint64_t errors;
		int puts;

		pthread_mutex_lock(&a->lock);
		errors = a->metrics.upload_errors;
		puts = fx.fs->calls[STORAGE_OP_PUT];
		fx.fs->fail_from[STORAGE_OP_PUT] = puts + k;
		lsn += 0x1000;
		seal_lsn = receive_txn(&fx, lsn, one, 1, 2);
		seal(&fx, s, &ns);
		pthread_mutex_unlock(&a->lock);
		ok(wait_uploader(a, 0, errors + 1), "put %d of %d refused: the uploader reports an error", k, clean_puts);
		pthread_mutex_lock(&a->lock);
		fx.fs->fail_from[STORAGE_OP_PUT] = 0;
		is_int(a->flush_lsn, before, "put %d refused: the flush does not move", k);
		ok(a->spool_pending, "put %d refused: the epoch is pending in the spool", k);
		pthread_mutex_unlock(&a->lock);
		ok(stored_covers(&fx, before, false, s, ns, why, sizeof(why)), "put %d refused: storage still holds what was confirmed %s",
		   k, why);
		is_int(spool_count(a, "/" SPOOL_COMPLETE), 1, "put %d refused: the epoch is complete in the spool", k);
		retry_now(a);
		ok(wait_uploader(a, seal_lsn, 0), "put %d refused: the retry reaches the epoch", k);
		ok(stored_covers(&fx, flush_lsn(a), true, s, ns, why, sizeof(why)), "put %d refused: after the retry, stored once %s",
		   k, why);
		is_int(spool_count(a, ""), 0, "put %d refused: the spool is emptied by the retry", k);
	}

	/* Storage down while two epochs are sealed: both wait, then go in order. */
	{
		uint64_t before = flush_lsn(a);
		uint64_t errors;
		uint64_t first_seal;

		pthread_mutex_lock(&a->lock);
		errors = a->metrics.upload_errors;
		fx.fs->fail_from[STORAGE_OP_PUT] = fx.fs->calls[STORAGE_OP_PUT] + 1;
		first_seal = receive_txn(&fx, lsn += 0x1000, one, 1, 1);
		seal(&fx, s, &ns);
		pthread_mutex_unlock(&a->lock);
		ok(wait_uploader(a, 0, errors + 1), "storage down: the first epoch is refused");
		/* Counted from the seal: a retry of the first alone may fail meanwhile. */
		pthread_mutex_lock(&a->lock);
		seal_lsn = receive_txn(&fx, lsn += 0x1000, one, 1, 1);
		seal(&fx, s, &ns);
		errors = a->metrics.upload_errors;
		a->retry_now = true;
		pthread_cond_signal(&a->wake);
		pthread_mutex_unlock(&a->lock);
		ok(wait_uploader(a, 0, errors + 1), "storage down: the second epoch is spooled and refused too");
		is_int(flush_lsn(a), before, "the flush has not moved");
		is_int(spool_count(a, "/" SPOOL_COMPLETE), 2, "both epochs wait in the spool");
		pthread_mutex_lock(&a->lock);
		fx.fs->fail_from[STORAGE_OP_PUT] = 0;
		pthread_mutex_unlock(&a->lock);
		retry_now(a);
		ok(wait_uploader(a, seal_lsn, 0), "storage back: the flush reaches the second epoch");
		ok(stored_covers(&fx, flush_lsn(a), true, s, ns, why, sizeof(why)), "both stored and listed %s", why);
		if (manifest_load(fx.local, RELID1, &m, &exists, &err) == BS_OK && exists)
		{
			bool ascending = true;

			for (int i = 1; i < m->nsegments; i++)
				ascending = ascending && m->segments[i - 1].first_lsn < m->segments[i].first_lsn;
			ok(ascending, "the manifest lists the segments in LSN order");
			ok(m->nsegments >= 2 && m->segments[m->nsegments - 2].first_lsn == first_seal - 0x28 &&
			   m->segments[m->nsegments - 1].last_end_lsn == seal_lsn, "the two epochs last, first one first");
			is_int(m->archived_to, seal_lsn, "archived to the last seal");
			is_int(m->nsegments, ns, "one segment per epoch sealed, none twice");
		}
		else
			ok(false, "the manifest loads");
		manifest_free(m);
	}

	/* Idle progress (nothing open): the flush follows the head, never goes before it. */
	{
		uint64_t before = flush_lsn(a);
		uint64_t errors;
		uint64_t idle = lsn + 0x5000;
		archive_head head;

		pthread_mutex_lock(&a->lock);
		errors = a->metrics.upload_errors;
		fx.fs->fail_from[STORAGE_OP_PUT] = fx.fs->calls[STORAGE_OP_PUT] + 1;
		a->last_commit_end = idle;
		uploader_idle_progress(a, idle, true);
		pthread_mutex_unlock(&a->lock);
		ok(wait_uploader(a, 0, errors + 1), "idle progress with the head refused: an error");
		is_int(flush_lsn(a), before, "the flush stays before the head that was not written");
		pthread_mutex_lock(&a->lock);
		fx.fs->fail_from[STORAGE_OP_PUT] = 0;
		pthread_mutex_unlock(&a->lock);
		retry_now(a);
		ok(wait_uploader(a, idle, 0), "retried: the flush reaches the idle position");
		if (archive_head_load(fx.local, &head, &exists, &err) == BS_OK && exists)
		{
			is_int(head.flushed_lsn, idle, "head.json was written there first");
			archive_head_clear(&head);
		}
		else
			ok(false, "head.json loads");
	}

	pthread_mutex_lock(&a->lock);
	a->uploader_stop = true;
	pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->lock);
	pthread_join(th, NULL);
	for (int i = 0; i < ns; i++)
		strbuf_free(&s[i].raw);
	teardown(&fx);
}

/* ---------- the spool after a restart: clean, then drain from the files ---------- */

static void
test_spool_restart(void)
{
	fixture fx;
	archiver *a;
	bs_error err;
	uint64_t max_seal = 0;
	strbuf seg = STRBUF_INIT;
	char *layouts;
	char k[128], e1[LSN_BUFLEN], e2[LSN_BUFLEN], f[LSN_BUFLEN], l[LSN_BUFLEN];
	manifest *ml, *m = NULL;
	bool exists = false;
	uint32_t spooled_id;
	arch_table *one[1];
	sealed s[1];
	int ns = 0;
	char why[256];

	setup(&fx);
	a = &fx.a;
	one[0] = fx.t2;

	/* An epoch of a crashed run, complete; another never completed. */
	receive_txn(&fx, 0x8000, one, 1, 3);
	strbuf_append(&seg, fx.t2->open.data, fx.t2->open.len);
	memset(s, 0, sizeof(s));
	s[0].seal_lsn = 0x8028;
	s[0].relid = RELID2;
	s[0].first_lsn = 0x8000;
	s[0].end_lsn = 0x8028;
	s[0].records = 3;
	strbuf_append(&s[0].raw, seg.data, seg.len);
	ns = 1;
	/* Its layouts: one the crash lost from the manifest (id 9, from 0x7000). */
	ml = manifest_new(RELID2, "public", "t2");
	spooled_id = tables_insert_layout(ml, 9, 0x7000, 'f', 1, cols);
	layouts = manifest_to_json(ml);
	manifest_free(ml);
	lsn_format_key(0x8028, e1);
	lsn_format_key(0x9028, e2);
	snprintf(k, sizeof(k), "%s/%u-%s-%s.seg", e1, RELID2, lsn_format_key(0x8000, f), lsn_format_key(0x8028, l));
	ok(storage_put(a->spool, k, seg.data, seg.len, &err) == BS_OK, "a spooled segment");
	snprintf(k, sizeof(k), "%s/%u.layouts.json", e1, RELID2);
	ok(storage_put(a->spool, k, layouts, strlen(layouts), &err) == BS_OK, "its layouts");
	snprintf(k, sizeof(k), "%s/%s", e1, SPOOL_COMPLETE);
	ok(storage_put(a->spool, k, "", 0, &err) == BS_OK, "its COMPLETE marker");
	snprintf(k, sizeof(k), "%s/%u-%s-%s.seg", e2, RELID2, lsn_format_key(0x9000, f), lsn_format_key(0x9028, l));
	ok(storage_put(a->spool, k, seg.data, seg.len, &err) == BS_OK, "an epoch without its marker");
	/* The open segment was spooled by hand: forget it. */
	strbuf_free(&fx.t2->open);
	fx.t2->open_records = 0;
	a->open_bytes = 0;

	is_int(uploader_clean_spool(a, &max_seal, &err), BS_OK, "the spool is cleaned at start");
	is_int(max_seal, 0x8028, "the newest complete epoch is found");
	is_int(spool_count(a, ".seg"), 1, "the incomplete epoch is discarded (never confirmed)");
	is_int(spool_count(a, "/" SPOOL_COMPLETE), 1, "the complete one is kept");

	/* Drained from the files alone (no job in memory), as after a restart. */
	a->spool_pending = true;
	is_int(uploader_drain_spool(a, true, NULL, &err), BS_OK, "the spool is drained");
	is_int(a->flush_lsn, 0x8028, "the flush reaches the epoch");
	ok(stored_covers(&fx, a->flush_lsn, true, s, ns, why, sizeof(why)), "stored and listed %s", why);
	ok(!a->spool_pending && spool_count(a, "") == 0, "the spool is empty");
	{
		char *key = manifest_segment_key(RELID2, 0x8000, 0x8028);

		is_str(fx.t2->verified_key, key, "verify: the segment was read back");
		free(key);
	}
	if (manifest_load(fx.local, RELID2, &m, &exists, &err) == BS_OK && exists)
	{
		const manifest_layout *ly = manifest_layout_by_id(m, spooled_id);

		ok(ly && ly->from_lsn == 0x7000 && ly->replident == 'f', "the spooled layout is merged into the manifest");
		is_int(m->nlayouts, 2, "next to the one it had");
	}
	else
		ok(false, "the manifest loads");
	manifest_free(m);

	/* Drained again (a crash after the head, before the spool was emptied): nothing twice. */
	snprintf(k, sizeof(k), "%s/%u-%s-%s.seg", e1, RELID2, lsn_format_key(0x8000, f), lsn_format_key(0x8028, l));
	storage_put(a->spool, k, seg.data, seg.len, &err);
	snprintf(k, sizeof(k), "%s/%s", e1, SPOOL_COMPLETE);
	storage_put(a->spool, k, "", 0, &err);
	is_int(uploader_drain_spool(a, false, NULL, &err), BS_OK, "an epoch already stored is drained again");
	ok(stored_covers(&fx, a->flush_lsn, true, s, ns, why, sizeof(why)), "and listed once %s", why);

	/* A file in the spool that is not a segment's name is refused, not uploaded. */
	snprintf(k, sizeof(k), "%s/junk.seg", e2);
	storage_put(a->spool, k, "x", 1, &err);
	snprintf(k, sizeof(k), "%s/%s", e2, SPOOL_COMPLETE);
	storage_put(a->spool, k, "", 0, &err);
	ok(uploader_drain_spool(a, false, NULL, &err) == BS_ERR && strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 &&
	   strstr(err.message, "junk.seg"), "an unexpected spool file: refused, named");
	is_int(a->flush_lsn, 0x8028, "and the flush does not pass it");

	free(layouts);
	strbuf_free(&seg);
	strbuf_free(&s[0].raw);
	teardown(&fx);
}

/* ---------- the head and the tables found dropped ---------- */

static void
test_head_drops(void)
{
	fixture fx;
	archiver *a;
	bs_error err;
	manifest *m = NULL;
	archive_head head;
	bool exists = false;

	setup(&fx);
	a = &fx.a;
	/* Found dropped at the server's position 0x5000; the DROP read from the stream at 0x4800. */
	fx.t1->gone_lsn = 0x5000;
	fx.t1->drop_lsn = 0x4800;
	/* Both manifests changed in memory (their first layouts): stored before the head. */
	fx.t1->dirty = fx.t2->dirty = true;

	is_int(uploader_store_head(a, 0x4fff, &err), BS_OK, "a head before the table's end is stored");
	ok(fx.t1->active && strcmp(fx.t1->man->status, "active") == 0, "the table is not marked dropped before it");
	if (archive_head_load(fx.local, &head, &exists, &err) == BS_OK && exists)
	{
		is_int(head.flushed_lsn, 0x4fff, "head.json at the position asked");
		ok(archive_head_find_table(&head, RELID1) != NULL && archive_head_find_table(&head, RELID2) != NULL,
		   "recording the manifests stored before it");
		archive_head_clear(&head);
	}
	else
		ok(false, "head.json loads");
	if (manifest_load(fx.local, RELID1, &m, &exists, &err) == BS_OK && exists)
		is_str(m->status, "active", "the stored manifest says active");
	else
		ok(false, "the manifest is stored before the head");
	manifest_free(m);
	m = NULL;
	is_int(a->head_written_lsn, 0x4fff, "the head written is noted");
	is_int(a->flush_lsn, 0, "the head alone confirms nothing (the caller moves the flush)");

	is_int(uploader_store_head(a, 0x5000, &err), BS_OK, "the head at the table's end is stored");
	ok(!fx.t1->active && strcmp(fx.t1->man->status, "dropped") == 0, "the table is marked dropped");
	if (manifest_load(fx.local, RELID1, &m, &exists, &err) == BS_OK && exists)
	{
		is_str(m->status, "dropped", "in the stored manifest");
		is_int(m->dropped_at_lsn, 0x5000, "dropped before the position it was found gone at");
		is_int(m->drop_lsn, 0x4800, "with the DROP's commit read from the stream");
		ok(m->archived_to >= 0x5000, "and archived to there (no change of it can follow)");
	}
	else
		ok(false, "the manifest loads");
	manifest_free(m);
	m = NULL;
	if (manifest_load(fx.local, RELID2, &m, &exists, &err) == BS_OK && exists)
		is_str(m->status, "active", "the other table stays active");
	else
		ok(false, "the other manifest loads");
	manifest_free(m);

	/* A head that cannot be stored leaves head_written_lsn where it was. */
	fx.fs->fail_from[STORAGE_OP_PUT] = fx.fs->calls[STORAGE_OP_PUT] + 1;
	ok(uploader_store_head(a, 0x6000, &err) == BS_ERR && strstr(err.message, "injected"),
	   "a refused put fails the head");
	is_int(a->head_written_lsn, 0x5000, "and the head written is not moved");

	/* A manifest that cannot be stored: no head after it, the manifest stays to be stored. */
	fx.t2->dirty = fx.t2->base_unstored = true;
	fx.fs->fail_from[STORAGE_OP_PUT] = fx.fs->calls[STORAGE_OP_PUT] + 1;
	ok(uploader_store_head(a, 0x6100, &err) == BS_ERR && strstr(err.message, "injected"),
	   "a refused manifest put fails the head after it");
	ok(fx.t2->dirty && fx.t2->base_unstored, "the manifest stays dirty, its base still to be recorded");
	is_int(a->head_written_lsn, 0x5000, "the head written is not moved");
	if (archive_head_load(fx.local, &head, &exists, &err) == BS_OK && exists)
	{
		is_int(head.flushed_lsn, 0x5000, "head.json stays where it was");
		archive_head_clear(&head);
	}
	else
		ok(false, "head.json loads");
	fx.fs->fail_from[STORAGE_OP_PUT] = 0;
	is_int(uploader_store_head(a, 0x6100, &err), BS_OK, "stored once storage takes it");
	ok(!fx.t2->dirty && !fx.t2->base_unstored, "the manifest is stored");
	is_int(a->head_written_lsn, 0x6100, "and the head after it");
	teardown(&fx);
}

/* ---------- the spool limit and spill failures (segments.c) ---------- */

/* Append one insert to t inside a transaction at lsn, as the stream does. */
static int
append_one(fixture *fx, arch_table *t, uint64_t lsn, bs_error *err)
{
	archiver *a = &fx->a;
	strbuf tuple = STRBUF_INIT;
	segment_record rec;
	int rc;

	a->in_txn = true;
	a->txn_final_lsn = lsn;
	a->txn_commit_time = (int64_t) lsn * 1000;
	a->txn_xid = (uint32_t) fx->xid++;
	strbuf_append_be16(&tuple, 1);
	strbuf_append_u8(&tuple, 't');
	strbuf_append_be32(&tuple, 5);
	strbuf_append(&tuple, "12345", 5);
	memset(&rec, 0, sizeof(rec));
	rec.op = 'I';
	rec.old_kind = SEGMENT_OLD_NONE;
	rec.new_tuple = (const uint8_t *) tuple.data;
	rec.new_len = tuple.len;
	rc = segments_append_record(a, t, &rec, err);
	strbuf_free(&tuple);
	return rc;
}

static void
test_spool_limits(void)
{
	fixture fx;
	archiver *a;
	bs_error err;
	char path[160];
	int fd;

	setup(&fx);
	a = &fx.a;
	/* Every record goes over open_memory_limit, so each asks for a spill file. */
	a->open_memory_limit = 1;

	/* Nothing spooled or queued: this transaction alone is larger than the spool may hold. */
	a->spool_limit = 8;
	ok(append_one(&fx, fx.t1, 0x2000, &err) == BS_ERR && strcmp(err.code, ERRCODE_DISK_FULL) == 0,
	   "an open transaction larger than spool_limit: refused (disk full)");
	ok(strstr(err.message, "the open transaction needs more than spool_limit (8 bytes)") &&
	   strstr(err.message, "raise spool_limit"), "saying to raise spool_limit: %s", err.message);
	ok(fx.t1->spill == NULL && a->metrics.spills == 0, "nothing was spilled");

	/* With a backlog in the spool (storage down): the other message. */
	a->metrics.spool_bytes = 100;
	ok(append_one(&fx, fx.t1, 0x2100, &err) == BS_ERR && strcmp(err.code, ERRCODE_DISK_FULL) == 0 &&
	   strstr(err.message, "spool would exceed spool_limit (8 bytes) while storage is unavailable"),
	   "with a backlog: the spool would exceed spool_limit while storage is unavailable");
	a->metrics.spool_bytes = 0;

	/* A spill directory that cannot be made (a file is in its way). */
	a->spool_limit = INT64_C(1) << 30;
	snprintf(path, sizeof(path), "%s/in-the-way", fx.dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd >= 0)
		close(fd);
	free(a->spill_dir);
	snprintf(path, sizeof(path), "%s/in-the-way/spill", fx.dir);
	a->spill_dir = xstrdup(path);
	ok(append_one(&fx, fx.t1, 0x2200, &err) == BS_ERR &&
	   strstr(err.message, "could not spill the open segment of table public.t1"),
	   "a spill file that cannot be created: refused, naming the table: %s", err.message);
	ok(fx.t1->spill == NULL && a->metrics.spills == 0, "and nothing counted as spilled");
	a->in_txn = false;
	teardown(&fx);
}

/* ---------- a head of format 1: the manifests are recorded from storage ---------- */

static void
test_record_manifests(void)
{
	fixture fx;
	archiver *a;
	bs_error err;
	const archive_head_table *h1, *h2;

	setup(&fx);
	a = &fx.a;
	fx.t1->man->generation = 3;
	fx.t2->man->generation = 5;
	if (manifest_store(fx.local, fx.t1->man, &err) != BS_OK || manifest_store(fx.local, fx.t2->man, &err) != BS_OK)
	{
		printf("Bail out! manifest_store: %s\n", err.message);
		exit(1);
	}
	ok(archive_head_find_table(&a->head, RELID1) == NULL, "a head without records of the manifests");
	is_int(uploader_record_manifests(a, &err), BS_OK, "the manifests in storage are recorded");
	h1 = archive_head_find_table(&a->head, RELID1);
	h2 = archive_head_find_table(&a->head, RELID2);
	ok(h1 && h1->generation == 3 && strcmp(h1->schema, "public") == 0 && strcmp(h1->name, "t1") == 0,
	   "the first with its generation and name");
	ok(h2 && h2->generation == 5 && strcmp(h2->name, "t2") == 0, "the second too");
	is_int(a->head.ntables, 2, "and nothing else");
	teardown(&fx);
}

int
main(void)
{
	test_seal_queue();
	test_upload_retry();
	test_spool_restart();
	test_head_drops();
	test_spool_limits();
	test_record_manifests();
	return done_testing();
}
