/* test_lease.c — the archive's lease (lease.json) and the conditional writes under it, on a file:// storage. */
#include "lease.h"
#include "log.h"
#include "manifest.h"
#include "storage.h"
#include "strbuf.h"
#include "tap.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[] = "/tmp/backstop-test-lease-XXXXXX";
static storage *st;

static int64_t
now_us(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (int64_t) tv.tv_sec * 1000000 + tv.tv_usec;
}

/* Store a lease as another process would have written it. */
static void
put_lease(uint64_t token, const char *host, int64_t pid, const char *slot, int64_t renewed, int64_t timeout_ms,
		  bool released)
{
	lease l;
	char *json;
	bs_error err;
	char *boot = NULL;
	lease_owner me;

	lease_owner_init(&me, "x");
	boot = xstrdup(me.boot_id);
	lease_owner_clear(&me);
	memset(&l, 0, sizeof(l));
	l.token = token;
	l.owner.id = "0123456789abcdef0123456789abcdef";
	l.owner.host = (char *) host;
	l.owner.boot_id = boot;
	l.owner.pid = pid;
	l.owner.slot = (char *) slot;
	l.owner.since = renewed - 1000000;
	l.renewed = renewed;
	l.timeout_ms = timeout_ms;
	l.released = released;
	json = lease_to_json(&l);
	if (storage_put(st, LEASE_KEY, json, strlen(json), &err) != BS_OK)
		printf("# put lease: %s\n", err.message);
	free(json);
	free(boot);
}

static char *
hostname(void)
{
	static char host[256];

	if (gethostname(host, sizeof(host) - 1) != 0)
		strcpy(host, "unknown");
	return host;
}

static int
count_key(void *ctx, const char *key, uint64_t size, bs_error *err)
{
	(void) key;
	(void) size;
	(void) err;
	(*(int *) ctx)++;
	return BS_OK;
}

static void
test_conditional(void)
{
	bs_error err;
	strbuf sb = STRBUF_INIT;
	char *tag = NULL;
	char *tag2 = NULL;
	int n = 0;

	error_clear(&err);
	ok(storage_put_if(st, "c/obj", "one", 3, NULL, &err) == BS_OK, "create-only put of an absent key");
	ok(storage_put_if(st, "c/obj", "two", 3, NULL, &err) == BS_ERR && strcmp(err.code, ERRCODE_PRECONDITION) == 0,
	   "create-only put of a present key fails the precondition: %s", err.message);
	ok(storage_get_tagged(st, "c/obj", &sb, &tag, &err) == BS_OK && sb.len == 3 && memcmp(sb.data, "one", 3) == 0 &&
	   tag && strlen(tag) == 64, "tagged get returns the content and a tag");
	ok(storage_put_if(st, "c/obj", "three", 5, tag, &err) == BS_OK, "put under the current tag");
	ok(storage_put_if(st, "c/obj", "four", 4, tag, &err) == BS_ERR && strcmp(err.code, ERRCODE_PRECONDITION) == 0,
	   "put under a stale tag fails the precondition: %s", err.message);
	ok(storage_get_tagged(st, "c/obj", &sb, &tag2, &err) == BS_OK && sb.len == 5 && strcmp(tag, tag2) != 0,
	   "the failed put changed nothing; the tag follows the content");
	ok(storage_delete(st, "c/obj", &err) == BS_OK &&
	   storage_put_if(st, "c/obj", "five", 4, tag2, &err) == BS_ERR && strcmp(err.code, ERRCODE_PRECONDITION) == 0,
	   "put under a tag of a deleted object fails the precondition");
	free(tag);
	tag = (char *) "not reset";
	ok(storage_get_tagged(st, "c/none", &sb, &tag, &err) == BS_ERR && strcmp(err.code, ERRCODE_NOT_FOUND) == 0 &&
	   tag == NULL, "tagged get of a missing key: not found");
	ok(storage_list(st, "c/", count_key, &n, &err) == BS_OK && n == 0, "nothing is left beside the key");
	{
		char path[256];

		snprintf(path, sizeof(path), "%s/c/%slock-obj", dir, STORAGE_TEMP_MARKER);
		ok(access(path, F_OK) != 0, "the directory itself is locked: no lock file");
	}
	free(tag2);
	strbuf_free(&sb);
}

static void
test_acquire(void)
{
	bs_error err;
	lease_owner me;
	lease held;
	lease stored;
	bool exists;
	char *tag = NULL;
	pid_t child;

	error_clear(&err);
	lease_owner_init(&me, "slot_a");
	ok(me.id && strlen(me.id) == 32 && me.pid == getpid() && strcmp(me.slot, "slot_a") == 0, "owner identity");
	ok(lease_acquire(st, &me, 60000, false, 6, &held, &err) == BS_OK && held.token == 7,
	   "first acquisition takes a token above the head's: %s", err.message);
	ok(lease_load(st, &stored, &tag, &exists, &err) == BS_OK && exists && stored.token == 7 &&
	   strcmp(stored.owner.id, me.id) == 0 && strcmp(stored.owner.host, hostname()) == 0 && stored.timeout_ms == 60000,
	   "lease.json names the holder");
	lease_clear(&stored);
	free(tag);
	ok(lease_check(st, &held, &err) == BS_OK, "the holder's check passes");
	lease_clear(&held);
	ok(lease_acquire(st, &me, 60000, false, 0, &held, &err) == BS_OK && held.token == 8, "the same owner takes it again");
	lease_clear(&held);

	/* A live holder on this host: the parent process. */
	put_lease(20, hostname(), (int64_t) getppid(), "slot_b", now_us(), 60000, false);
	ok(lease_acquire(st, &me, 60000, false, 0, &held, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_LOCK_NOT_AVAILABLE) == 0 && strstr(err.message, "being archived by another archiver") &&
	   strstr(err.message, "slot \"slot_b\"") && strstr(err.message, "lease token 20") &&
	   strstr(err.message, "--take-over"), "a live holder on this host is refused, named: %s", err.message);
	ok(lease_acquire(st, &me, 60000, true, 0, &held, &err) == BS_OK && held.token == 21, "--take-over takes it anyway");
	lease_clear(&held);

	/* Another host, renewed just now: alive until it expires. */
	put_lease(30, "elsewhere.example", 4242, "slot_c", now_us(), 60000, false);
	ok(lease_acquire(st, &me, 60000, false, 0, &held, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_LOCK_NOT_AVAILABLE) == 0 && strstr(err.message, "host elsewhere.example, pid 4242"),
	   "a fresh lease of another host is refused: %s", err.message);
	/* The same, not renewed for longer than its timeout. */
	put_lease(30, "elsewhere.example", 4242, "slot_c", now_us() - 120 * 1000000LL, 60000, false);
	ok(lease_acquire(st, &me, 60000, false, 0, &held, &err) == BS_OK && held.token == 31, "an expired lease is taken");
	lease_clear(&held);
	/* Released by an orderly stop. */
	put_lease(40, "elsewhere.example", 4242, "slot_c", now_us(), 60000, true);
	ok(lease_acquire(st, &me, 60000, false, 0, &held, &err) == BS_OK && held.token == 41, "a released lease is taken");
	lease_clear(&held);

	/* This host, a process that has exited (kill -9 and restart): taken at once. */
	child = fork();
	if (child == 0)
		_exit(0);
	waitpid(child, NULL, 0);
	put_lease(50, hostname(), (int64_t) child, "slot_d", now_us(), 60000, false);
	ok(lease_acquire(st, &me, 60000, false, 0, &held, &err) == BS_OK && held.token == 51,
	   "the lease of an exited process of this host is taken at once: %s", err.message);
	lease_clear(&held);
	/* A zombie (killed, not yet reaped) counts as gone too. */
	child = fork();
	if (child == 0)
	{
		pause();
		_exit(0);
	}
	kill(child, SIGKILL);
	{
		char path[64];
		int64_t deadline = now_us() + 10 * 1000000LL;
		bool zombie = false;

		snprintf(path, sizeof(path), "/proc/%d/stat", (int) child);
		while (!zombie && now_us() < deadline)
		{
			FILE *f = fopen(path, "r");
			char line[512] = "";

			if (f)
			{
				if (fgets(line, sizeof(line), f) == NULL)
					line[0] = '\0';
				fclose(f);
			}
			zombie = strstr(line, ") Z ") != NULL;
			if (!zombie)
				usleep(10000);
		}
		ok(zombie, "the killed child is a zombie");
	}
	put_lease(60, hostname(), (int64_t) child, "slot_d", now_us(), 60000, false);
	ok(lease_acquire(st, &me, 60000, false, 0, &held, &err) == BS_OK && held.token == 61,
	   "the lease of a killed, unreaped process is taken at once: %s", err.message);
	waitpid(child, NULL, 0);

	/* The holder finds out at its next check. */
	put_lease(70, "elsewhere.example", 777, "slot_e", now_us(), 60000, false);
	ok(lease_check(st, &held, &err) == BS_ERR && strcmp(err.code, ERRCODE_LOCK_NOT_AVAILABLE) == 0 &&
	   strstr(err.message, "taken over by another archiver (host elsewhere.example, pid 777") &&
	   strstr(err.message, "stops without writing"), "a taken-over holder's check fails, naming the new holder: %s", err.message);
	ok(lease_renew(st, &held, &err) == BS_ERR && strcmp(err.code, ERRCODE_LOCK_NOT_AVAILABLE) == 0,
	   "nor can it renew");
	ok(lease_load(st, &stored, NULL, &exists, &err) == BS_OK && stored.token == 70, "and the new holder's lease stands");
	lease_clear(&stored);
	lease_clear(&held);

	/* Renew and release. */
	put_lease(80, "elsewhere.example", 777, "slot_e", now_us() - 3600 * 1000000LL, 1000, false);
	ok(lease_acquire(st, &me, 60000, false, 0, &held, &err) == BS_OK && held.token == 81, "taken after expiry");
	{
		int64_t before = held.renewed;

		usleep(2000);
		ok(lease_renew(st, &held, &err) == BS_OK && held.renewed > before, "renewed");
		ok(lease_load(st, &stored, NULL, &exists, &err) == BS_OK && stored.renewed == held.renewed &&
		   stored.token == 81, "the renewal is stored, same token");
		lease_clear(&stored);
	}
	ok(lease_release(st, &held, &err) == BS_OK, "released");
	ok(lease_load(st, &stored, NULL, &exists, &err) == BS_OK && stored.released && stored.token == 81,
	   "stored as released, token kept");
	lease_clear(&stored);
	ok(lease_check(st, &held, &err) == BS_ERR, "a released lease is no longer held");
	lease_clear(&held);

	/* Deleted, unreadable. */
	ok(lease_acquire(st, &me, 60000, false, 0, &held, &err) == BS_OK && held.token == 82, "taken again");
	storage_delete(st, LEASE_KEY, &err);
	ok(lease_check(st, &held, &err) == BS_ERR && strcmp(err.code, ERRCODE_LOCK_NOT_AVAILABLE) == 0 &&
	   strstr(err.message, "lease.json was deleted"), "a deleted lease is lost: %s", err.message);
	lease_clear(&held);
	storage_put(st, LEASE_KEY, "{\"format\":2}", 12, &err);
	ok(lease_acquire(st, &me, 60000, false, 0, &held, &err) == BS_ERR && strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 &&
	   strstr(err.message, "--take-over"), "an unreadable lease is refused: %s", err.message);
	ok(lease_acquire(st, &me, 60000, true, 90, &held, &err) == BS_OK && held.token == 91,
	   "and replaced with --take-over (token above the head's)");
	lease_clear(&held);
	lease_owner_clear(&me);
}

static void
test_keeper(void)
{
	bs_error err;
	lease_owner me;
	lease held;
	lease stored;
	bool exists;
	lease_keeper *k = NULL;
	char url[128];
	int64_t first;
	int64_t deadline;
	bool renewed = false;
	bool lost = false;

	error_clear(&err);
	snprintf(url, sizeof(url), "file://%s", dir);
	lease_owner_init(&me, "slot_k");
	ok(lease_acquire(st, &me, 300, false, 0, &held, &err) == BS_OK, "acquired with a 300 ms timeout");
	first = held.renewed;
	ok(lease_keeper_start(st, &held, &k, &err) == BS_OK, "heartbeat started");
	deadline = now_us() + 20 * 1000000LL;
	while (!renewed && now_us() < deadline)
	{
		if (lease_load(st, &stored, NULL, &exists, &err) == BS_OK && exists && stored.renewed > first &&
			stored.token == held.token)
			renewed = true;
		lease_clear(&stored);
		if (!renewed)
			usleep(20000);
	}
	ok(renewed, "the heartbeat renews the lease");
	ok(!lease_keeper_lost(k, &err), "not lost");
	put_lease(held.token + 1, "elsewhere.example", 99, "slot_z", now_us() + 3600 * 1000000LL, 60000, false);
	deadline = now_us() + 20 * 1000000LL;
	while (!(lost = lease_keeper_lost(k, &err)) && now_us() < deadline)
		usleep(20000);
	ok(lost && strcmp(err.code, ERRCODE_LOCK_NOT_AVAILABLE) == 0 && strstr(err.message, "elsewhere.example"),
	   "the heartbeat finds the lease taken over: %s", err.message);
	ok(lease_load(st, &stored, NULL, &exists, &err) == BS_OK && strcmp(stored.owner.host, "elsewhere.example") == 0,
	   "and leaves the new holder's lease alone");
	lease_clear(&stored);
	lease_keeper_stop(k, &held);
	lease_clear(&held);
	lease_owner_clear(&me);
}

int
main(void)
{
	bs_error err;
	char url[128];

	log_configure(LOG_ERROR, 0);
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(url, sizeof(url), "file://%s", dir);
	if (storage_open(url, NULL, &st, &err) != BS_OK)
	{
		printf("# %s\n", err.message);
		return 1;
	}
	test_conditional();
	test_acquire();
	test_keeper();
	storage_close(st);
	{
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", dir);
	}
	return done_testing();
}
