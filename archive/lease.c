/* lease.c — one writer per archive: an owner object in storage (lease.json) with a fencing token, renewed by a heartbeat and checked before every manifest write. */
#include "lease.h"
#include "clock.h"
#include "isotime.h"
#include "log.h"
#include "manifest.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* The first line of a small file, "" when it cannot be read. */
static char *
read_line(const char *path)
{
	FILE *f = fopen(path, "r");
	char buf[128] = "";

	if (f)
	{
		if (fgets(buf, sizeof(buf), f) == NULL)
			buf[0] = '\0';
		fclose(f);
	}
	buf[strcspn(buf, "\r\n")] = '\0';
	return xstrdup(buf);
}

void
lease_owner_init(lease_owner *me, const char *slot)
{
	unsigned char rnd[16];
	char host[256] = "";
	strbuf id = STRBUF_INIT;
	size_t got = 0;

	memset(me, 0, sizeof(*me));
	while (got < sizeof(rnd))
	{
		ssize_t n = getrandom(rnd + got, sizeof(rnd) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
		{
			/* No entropy source: still unique enough with time, pid and address. */
			uint64_t x = (uint64_t) clock_unix_us() ^ ((uint64_t) getpid() << 32) ^ (uint64_t) (uintptr_t) me;

			for (size_t i = got; i < sizeof(rnd); i++, x = x * 6364136223846793005ULL + 1442695040888963407ULL)
				rnd[i] = (unsigned char) (x >> 56);
			break;
		}
		got += (size_t) n;
	}
	strbuf_append_hex(&id, rnd, sizeof(rnd));
	me->id = strbuf_detach(&id, NULL);
	if (gethostname(host, sizeof(host) - 1) != 0)
		snprintf(host, sizeof(host), "unknown");
	me->host = xstrdup(host);
	me->boot_id = read_line("/proc/sys/kernel/random/boot_id");
	me->pid = (int64_t) getpid();
	me->slot = xstrdup(slot ? slot : "");
}

void
lease_owner_clear(lease_owner *o)
{
	free(o->id);
	free(o->host);
	free(o->boot_id);
	free(o->slot);
	memset(o, 0, sizeof(*o));
}

static void
owner_copy(lease_owner *dst, const lease_owner *src)
{
	dst->id = xstrdup(src->id);
	dst->host = xstrdup(src->host);
	dst->boot_id = xstrdup(src->boot_id);
	dst->pid = src->pid;
	dst->slot = xstrdup(src->slot);
	dst->since = src->since;
}

void
lease_clear(lease *l)
{
	lease_owner_clear(&l->owner);
	memset(l, 0, sizeof(*l));
}

char *
lease_to_json(const lease *l)
{
	json_t *o = json_object();
	json_t *ow = json_object();
	char tbuf[ISOTIME_BUFLEN];
	char *text;

	json_object_set_new(o, "format", json_integer(MANIFEST_FORMAT));
	json_object_set_new(o, "token", json_integer((json_int_t) l->token));
	json_object_set_new(ow, "id", json_string(l->owner.id));
	json_object_set_new(ow, "host", json_string(l->owner.host));
	json_object_set_new(ow, "boot_id", json_string(l->owner.boot_id));
	json_object_set_new(ow, "pid", json_integer(l->owner.pid));
	json_object_set_new(ow, "slot", json_string(l->owner.slot));
	json_object_set_new(ow, "since", json_string(isotime_format(l->owner.since, tbuf)));
	json_object_set_new(o, "owner", ow);
	json_object_set_new(o, "renewed", json_string(isotime_format(l->renewed, tbuf)));
	json_object_set_new(o, "timeout_ms", json_integer(l->timeout_ms));
	json_object_set_new(o, "released", json_boolean(l->released));
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

int
lease_from_json(const char *json, size_t len, lease *out, bs_error *err)
{
	json_error_t jerr;
	json_t *root;
	json_int_t format, token, pid, timeout;
	const char *id, *host, *boot, *slot, *since, *renewed;
	int released;
	int rc = BS_ERR;

	memset(out, 0, sizeof(*out));
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "invalid lease: JSON error at line %d: %s", jerr.line, jerr.text);
	if (json_unpack_ex(root, &jerr, 0, "{s:I, s:I, s:{s:s, s:s, s:s, s:I, s:s, s:s}, s:s, s:I, s:b}",
					   "format", &format, "token", &token,
					   "owner", "id", &id, "host", &host, "boot_id", &boot, "pid", &pid, "slot", &slot, "since", &since,
					   "renewed", &renewed, "timeout_ms", &timeout, "released", &released) != 0)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "invalid lease: %s", jerr.text);
		goto out;
	}
	if (format != MANIFEST_FORMAT)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "invalid lease: member \"format\" is %" PRId64 "; this version of "
				  "Backstop reads format %d", (int64_t) format, MANIFEST_FORMAT);
		goto out;
	}
	if (token < 0 || pid <= 0 || timeout <= 0 || id[0] == '\0' ||
		isotime_parse(since, &out->owner.since) != BS_OK || isotime_parse(renewed, &out->renewed) != BS_OK)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "invalid lease: a token, pid, timeout, owner id or time is out of range");
		goto out;
	}
	out->token = (uint64_t) token;
	out->owner.id = xstrdup(id);
	out->owner.host = xstrdup(host);
	out->owner.boot_id = xstrdup(boot);
	out->owner.pid = (int64_t) pid;
	out->owner.slot = xstrdup(slot);
	out->timeout_ms = (int64_t) timeout;
	out->released = released != 0;
	rc = BS_OK;
out:
	json_decref(root);
	return rc;
}

/* Reads of an unreadable lease before it counts as such (see lease_load). */
#define LEASE_READS 3

int
lease_load(storage *st, lease *out, char **tag, bool *exists, bs_error *err)
{
	strbuf sb = STRBUF_INIT;
	char *t = NULL;
	int rc = BS_OK;

	memset(out, 0, sizeof(*out));
	*exists = false;
	if (tag)
		*tag = NULL;
	/*
	 * An unreadable lease is read again: a store that does not replace objects atomically
	 * (s3rver) can hand out a write in progress, which must not pass for a takeover.
	 */
	for (int attempt = 1;; attempt++)
	{
		free(t);
		t = NULL;
		if (storage_get_tagged(st, LEASE_KEY, &sb, &t, err) != BS_OK)
		{
			strbuf_free(&sb);
			if (strcmp(err->code, ERRCODE_NOT_FOUND) == 0)
			{
				error_clear(err);
				return BS_OK;
			}
			return error_prefix(err, "could not read \"%s\"", LEASE_KEY);
		}
		rc = lease_from_json(sb.data ? sb.data : "", sb.len, out, err);
		if (rc == BS_OK || attempt == LEASE_READS)
			break;
		log_debug("%s unreadable (%s), reading it again", LEASE_KEY, err->message);
	}
	*exists = true;
	/* The tag is handed back even for an unreadable lease: --take-over replaces it. */
	if (rc != BS_OK)
		error_prefix(err, "%s", LEASE_KEY);
	if (tag)
		*tag = t;
	else
		free(t);
	strbuf_free(&sb);
	return rc;
}

void
lease_describe(const lease *l, strbuf *out)
{
	char since[ISOTIME_BUFLEN];
	char renewed[ISOTIME_BUFLEN];

	strbuf_printf(out, "host %s, pid %" PRId64 ", slot \"%s\", since %s (lease token %" PRIu64 ", last renewed %s%s)",
				  l->owner.host, l->owner.pid, l->owner.slot, isotime_format(l->owner.since, since), l->token,
				  isotime_format(l->renewed, renewed), l->released ? ", released" : "");
}

/* A process of this host that still runs (a zombie does not). */
static bool
process_running(int64_t pid)
{
	char path[64];
	char *stat;
	const char *p;
	bool running = true;

	if (pid <= 0 || pid > INT32_MAX)
		return false;
	if (kill((pid_t) pid, 0) != 0 && errno == ESRCH)
		return false;
	snprintf(path, sizeof(path), "/proc/%" PRId64 "/stat", pid);
	stat = read_line(path);
	/* "pid (comm) S ...": the state follows the last ')'. */
	p = strrchr(stat, ')');
	if (p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'))
		running = false;
	free(stat);
	return running;
}

bool
lease_holder_gone(const lease *l, int64_t now_us, const char **why)
{
	char host[256] = "";
	char *boot;
	bool gone = false;

	*why = NULL;
	if (l->released)
	{
		*why = "it was released by an orderly stop";
		return true;
	}
	if (now_us - l->renewed > l->timeout_ms * 1000)
	{
		*why = "it was not renewed within its timeout";
		return true;
	}
	if (gethostname(host, sizeof(host) - 1) != 0 || strcmp(host, l->owner.host) != 0)
		return false;
	/* Same host: the process itself tells, unless the host has rebooted since. */
	boot = read_line("/proc/sys/kernel/random/boot_id");
	if (boot[0] && l->owner.boot_id[0] && strcmp(boot, l->owner.boot_id) != 0)
	{
		*why = "this host has rebooted since it was taken";
		gone = true;
	}
	else if (l->owner.pid == (int64_t) getpid() || !process_running(l->owner.pid))
	{
		*why = "its process no longer runs on this host";
		gone = true;
	}
	free(boot);
	return gone;
}

static bool
is_ours(const lease *stored, const lease *held)
{
	return stored->token == held->token && strcmp(stored->owner.id, held->owner.id) == 0 && !stored->released;
}

/* ERRCODE_LOCK_NOT_AVAILABLE: stored (exists or not) is not the lease held. */
static int
lost_error(storage *st, const lease *stored, bool exists, const lease *held, bs_error *err)
{
	strbuf who = STRBUF_INIT;
	int rc;

	if (!exists)
		rc = error_set(err, ERRCODE_LOCK_NOT_AVAILABLE,
					   "%s was deleted from %s: this archiver (lease token %" PRIu64 ") no longer holds the "
					   "archive's lease and stops without writing", LEASE_KEY, storage_describe(st), held->token);
	else
	{
		lease_describe(stored, &who);
		rc = error_set(err, ERRCODE_LOCK_NOT_AVAILABLE,
					   "the lease of %s was taken over by another archiver (%s): this archiver (lease token %"
					   PRIu64 ") stops without writing", storage_describe(st), who.data, held->token);
	}
	strbuf_free(&who);
	return rc;
}

int
lease_acquire(storage *st, const lease_owner *me, int64_t timeout_ms, bool take_over, uint64_t min_token,
			  lease *held, bs_error *err)
{
	lease cur;
	lease back;
	char *tag = NULL;
	char *json = NULL;
	bool exists = false;
	int64_t now = clock_unix_us();
	strbuf who = STRBUF_INIT;
	int rc = BS_ERR;

	memset(held, 0, sizeof(*held));
	memset(&back, 0, sizeof(back));
	if (lease_load(st, &cur, &tag, &exists, err) != BS_OK)
	{
		if (strcmp(err->code, ERRCODE_DATA_CORRUPTED) != 0)
			goto out;
		if (!take_over)
		{
			error_prefix(err, "the archive's lease is unreadable; if no archiver runs on %s, start with --take-over",
						 storage_describe(st));
			goto out;
		}
		log_warning("replacing an unreadable %s (--take-over): %s", LEASE_KEY, err->message);
		error_clear(err);
	}
	else if (exists && strcmp(cur.owner.id, me->id) != 0)
	{
		const char *why;

		lease_describe(&cur, &who);
		if (!lease_holder_gone(&cur, now, &why))
		{
			char expires[ISOTIME_BUFLEN];

			if (!take_over)
			{
				error_set(err, ERRCODE_LOCK_NOT_AVAILABLE,
						  "storage %s is being archived by another archiver: %s; refusing to start a second writer "
						  "on one archive. If that archiver is gone for good, start again after %s (its lease "
						  "expires) or with --take-over",
						  storage_describe(st), who.data,
						  isotime_format(cur.renewed + cur.timeout_ms * 1000, expires));
				goto out;
			}
			log_warning("--take-over: taking the archive's lease from a holder that looks alive (%s); it stops "
						"at its next write", who.data);
		}
		else
			log_info("taking over the archive's lease from %s: %s", who.data, why);
	}
	held->token = (cur.token > min_token ? cur.token : min_token) + 1;
	owner_copy(&held->owner, me);
	held->owner.since = now;
	held->renewed = now;
	held->timeout_ms = timeout_ms;
	held->released = false;
	json = lease_to_json(held);
	if (storage_put_if(st, LEASE_KEY, json, strlen(json), exists ? tag : NULL, err) != BS_OK &&
		strcmp(err->code, ERRCODE_PRECONDITION) != 0)
	{
		error_prefix(err, "could not take the archive's lease");
		goto out;
	}
	/* What is stored decides, whatever the write answered: a store that ignores conditions
	 * lets the last writer win, and a retried write that had succeeded reports a conflict. */
	error_clear(err);
	if (lease_load(st, &back, NULL, &exists, err) != BS_OK)
		goto out;
	if (!exists || !is_ours(&back, held))
	{
		strbuf_reset(&who);
		if (exists)
			lease_describe(&back, &who);
		error_set(err, ERRCODE_LOCK_NOT_AVAILABLE,
				  "storage %s: another archiver took the archive's lease at the same time (%s); refusing to start "
				  "a second writer on one archive", storage_describe(st), exists ? who.data : "lease.json deleted");
		goto out;
	}
	rc = BS_OK;
out:
	if (rc != BS_OK)
		lease_clear(held);
	lease_clear(&cur);
	lease_clear(&back);
	strbuf_free(&who);
	free(tag);
	free(json);
	return rc;
}

/* Load the stored lease and check that it is held's; *tag (may be NULL) its version. */
static int
check_held(storage *st, const lease *held, char **tag, bs_error *err)
{
	lease stored;
	bool exists;
	int rc;

	if (lease_load(st, &stored, tag, &exists, err) != BS_OK)
	{
		/* Unreadable: someone else wrote it; not ours any more. */
		if (strcmp(err->code, ERRCODE_DATA_CORRUPTED) == 0)
		{
			bs_error e = *err;

			error_set(err, ERRCODE_LOCK_NOT_AVAILABLE, "%s; this archiver (lease token %" PRIu64 ") no longer holds "
					  "the archive's lease and stops without writing", e.message, held->token);
		}
		if (tag)
		{
			free(*tag);
			*tag = NULL;
		}
		return BS_ERR;
	}
	rc = exists && is_ours(&stored, held) ? BS_OK : lost_error(st, &stored, exists, held, err);
	lease_clear(&stored);
	if (rc != BS_OK && tag)
	{
		free(*tag);
		*tag = NULL;
	}
	return rc;
}

int
lease_check(storage *st, const lease *held, bs_error *err)
{
	return check_held(st, held, NULL, err);
}

/* Write held (a renewal or a release) over the version tagged tag, then check it stands. */
static int
rewrite(storage *st, const lease *held, const char *tag, bs_error *err)
{
	char *json = lease_to_json(held);
	int rc = storage_put_if(st, LEASE_KEY, json, strlen(json), tag, err);

	free(json);
	if (rc != BS_OK && strcmp(err->code, ERRCODE_PRECONDITION) != 0)
		return error_prefix(err, "could not renew the archive's lease");
	/* A conflict (or a store ignoring conditions): what is stored says whose it is. */
	error_clear(err);
	return check_held(st, held, NULL, err);
}

int
lease_renew(storage *st, lease *held, bs_error *err)
{
	char *tag = NULL;
	int rc;

	if (check_held(st, held, &tag, err) != BS_OK)
		return BS_ERR;
	held->renewed = clock_unix_us();
	rc = rewrite(st, held, tag, err);
	free(tag);
	return rc;
}

int
lease_release(storage *st, lease *held, bs_error *err)
{
	char *tag = NULL;
	lease rel;
	int rc;

	if (check_held(st, held, &tag, err) != BS_OK)
		return BS_ERR;
	memset(&rel, 0, sizeof(rel));
	rel = *held;
	rel.released = true;
	rel.renewed = clock_unix_us();
	{
		char *json = lease_to_json(&rel);

		rc = storage_put_if(st, LEASE_KEY, json, strlen(json), tag, err);
		free(json);
	}
	free(tag);
	if (rc != BS_OK)
		return error_prefix(err, "could not release the archive's lease");
	return BS_OK;
}

/* ---------- heartbeat ---------- */

struct lease_keeper
{
	storage *st;				/* its own handle: a driver handle is not shared across threads */
	lease held;					/* the thread's copy */
	int64_t interval_ms;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	bool lost;
	bs_error lost_err;
};

static void *
keeper_main(void *arg)
{
	lease_keeper *k = arg;

	pthread_mutex_lock(&k->mu);
	while (!k->stop)
	{
		struct timespec ts;
		bs_error e;
		int rc;

		clock_deadline(k->interval_ms, &ts);
		while (!k->stop && pthread_cond_timedwait(&k->cv, &k->mu, &ts) != ETIMEDOUT)
			;
		if (k->stop)
			break;
		pthread_mutex_unlock(&k->mu);
		error_clear(&e);
		rc = lease_renew(k->st, &k->held, &e);
		pthread_mutex_lock(&k->mu);
		if (rc == BS_OK)
			continue;
		if (strcmp(e.code, ERRCODE_LOCK_NOT_AVAILABLE) == 0)
		{
			k->lost = true;
			k->lost_err = e;
			log_error("%s", e.message);
			break;
		}
		/* Storage trouble: the lease may expire meanwhile; the check before each manifest
		 * write still decides whether this archiver may go on. */
		log_warning("could not renew the archive's lease (retried in %.1f s): %s",
					(double) k->interval_ms / 1000.0, e.message);
	}
	pthread_mutex_unlock(&k->mu);
	return NULL;
}

int
lease_keeper_start(const storage *st, const lease *held, lease_keeper **out, bs_error *err)
{
	lease_keeper *k = xcalloc(1, sizeof(*k));

	*out = NULL;
	if (storage_reopen(st, &k->st, err) != BS_OK)
	{
		free(k);
		return BS_ERR;
	}
	k->held = *held;
	owner_copy(&k->held.owner, &held->owner);
	k->interval_ms = held->timeout_ms / 3 > 0 ? held->timeout_ms / 3 : 1;
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->cv, NULL);
	if (pthread_create(&k->thread, NULL, keeper_main, k) != 0)
	{
		pthread_mutex_destroy(&k->mu);
		pthread_cond_destroy(&k->cv);
		lease_clear(&k->held);
		storage_close(k->st);
		free(k);
		return error_set(err, ERRCODE_INTERNAL, "could not start the lease heartbeat thread");
	}
	*out = k;
	return BS_OK;
}

bool
lease_keeper_lost(lease_keeper *k, bs_error *err)
{
	bool lost;

	if (k == NULL)
		return false;
	pthread_mutex_lock(&k->mu);
	lost = k->lost;
	if (lost && err)
		*err = k->lost_err;
	pthread_mutex_unlock(&k->mu);
	return lost;
}

void
lease_keeper_stop(lease_keeper *k, lease *held)
{
	if (k == NULL)
		return;
	pthread_mutex_lock(&k->mu);
	k->stop = true;
	pthread_cond_signal(&k->cv);
	pthread_mutex_unlock(&k->mu);
	pthread_join(k->thread, NULL);
	if (held)
		held->renewed = k->held.renewed;
	pthread_mutex_destroy(&k->mu);
	pthread_cond_destroy(&k->cv);
	lease_clear(&k->held);
	storage_close(k->st);
	free(k);
}

int
lease_hold(storage *st, const char *owner, int64_t timeout_ms, bool take_over, uint64_t min_token, bool quiet,
		   lease_holding *h, bs_error *err)
{
	lease_owner me;
	strbuf who = STRBUF_INIT;
	int rc;

	lease_owner_init(&me, owner);
	rc = lease_acquire(st, &me, timeout_ms, take_over, min_token, &h->lease, err);
	lease_owner_clear(&me);
	if (rc != BS_OK)
		return BS_ERR;
	h->held = true;
	lease_describe(&h->lease, &who);
	if (quiet)
		log_debug("holding the archive's lease: %s", who.data);
	else
		log_info("holding the archive's lease: %s", who.data);
	strbuf_free(&who);
	return lease_keeper_start(st, &h->lease, &h->keeper, err);
}

int
lease_hold_check(storage *st, lease_holding *h, bs_error *err)
{
	if (!h->held)
		return error_set(err, ERRCODE_LOCK_NOT_AVAILABLE, "the archive's lease is not held: nothing may be written");
	if (lease_keeper_lost(h->keeper, err))
		return BS_ERR;
	return lease_check(st, &h->lease, err);
}

void
lease_let_go(storage *st, lease_holding *h, bool quiet)
{
	bs_error err;

	if (!h->held)
		return;
	lease_keeper_stop(h->keeper, &h->lease);
	h->keeper = NULL;
	error_clear(&err);
	if (lease_release(st, &h->lease, &err) == BS_OK)
	{
		if (!quiet)
			log_info("released the archive's lease");
	}
	else if (strcmp(err.code, ERRCODE_LOCK_NOT_AVAILABLE) != 0)
		log_warning("could not release the archive's lease (a restart on this host takes it over at once, "
					"another host once it expires): %s", err.message);
	lease_clear(&h->lease);
	h->held = false;
}
