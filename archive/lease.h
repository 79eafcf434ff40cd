/* lease.h — one writer per archive: an owner object in storage (lease.json) with a fencing token, renewed by a heartbeat and checked before every manifest write. */
#ifndef BACKSTOP_LEASE_H
#define BACKSTOP_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "storage.h"
#include "strbuf.h"

#define LEASE_KEY "lease.json"

typedef struct lease_owner
{
	char *id;					/* random: one run of one process */
	char *host;
	char *boot_id;				/* the host's boot (Linux boot_id), "" when unknown */
	int64_t pid;
	char *slot;
	int64_t since;				/* Unix microseconds: when it took the lease */
} lease_owner;

typedef struct lease
{
	uint64_t token;				/* fencing token: every acquisition takes a higher one */
	lease_owner owner;
	int64_t renewed;			/* Unix microseconds, the holder's clock */
	int64_t timeout_ms;			/* the holder is gone when not renewed for this long */
	bool released;				/* given up by an orderly stop */
} lease;

/* This process, about to archive through slot. */
void lease_owner_init(lease_owner *me, const char *slot);
void lease_owner_clear(lease_owner *o);
void lease_clear(lease *l);

char *lease_to_json(const lease *l);
/* Strict, like manifests: ERRCODE_DATA_CORRUPTED naming the member. */
int lease_from_json(const char *json, size_t len, lease *out, bs_error *err);
/* lease.json with its version tag (see storage_get_tagged); *exists false when absent. */
int lease_load(storage *st, lease *out, char **tag, bool *exists, bs_error *err);

/* "host H, pid P, slot S, since T (lease token N, last renewed R)" for messages. */
void lease_describe(const lease *l, strbuf *out);

/*
 * Whether l's holder is gone at now_us: it released the lease, did not renew it within its
 * timeout, or ran on this host (same boot) as a process that no longer runs.  *why says which.
 */
bool lease_holder_gone(const lease *l, int64_t now_us, const char **why);

/*
 * Take the lease for me.  A live holder other than me is refused with
 * ERRCODE_LOCK_NOT_AVAILABLE naming it, unless take_over.  The token is above the one
 * stored and above min_token (head.json's: tokens never go backwards).  The write is
 * conditional (on the version read); what is stored is read back and must be ours.
 */
int lease_acquire(storage *st, const lease_owner *me, int64_t timeout_ms, bool take_over, uint64_t min_token,
				  lease *held, bs_error *err);
/* Is the lease still ours?  ERRCODE_LOCK_NOT_AVAILABLE naming the new holder when not;
 * a storage failure keeps its own code. */
int lease_check(storage *st, const lease *held, bs_error *err);
/* Check, then store a new renewal time (conditional on the version checked). */
int lease_renew(storage *st, lease *held, bs_error *err);
/* An orderly stop: mark it released, if it is still ours. */
int lease_release(storage *st, lease *held, bs_error *err);

/*
 * A heartbeat thread that renews the lease every timeout/3 through its own storage handle.
 * It never stops the archiver by itself: lease_keeper_lost says when it found the lease
 * taken by another writer (err filled), and the caller stops.
 */
typedef struct lease_keeper lease_keeper;

/* The heartbeat's handle is storage_reopen(st): the storage that st was opened on. */
int lease_keeper_start(const storage *st, const lease *held, lease_keeper **out, bs_error *err);
bool lease_keeper_lost(lease_keeper *k, bs_error *err);
/* Stop and join the thread; *held gets the last renewal.  k may be NULL. */
void lease_keeper_stop(lease_keeper *k, lease *held);

/*
 * A writer's hold on the lease: taken once (lease_hold: acquire, log who holds it, start the
 * heartbeat), checked before each batch of writes (lease_hold_check), given up at the end
 * (lease_let_go).  The archiver and a standalone `expire` both write through one of these.
 */
typedef struct lease_holding
{
	lease lease;
	lease_keeper *keeper;
	bool held;
} lease_holding;

int lease_hold(storage *st, const char *owner, int64_t timeout_ms, bool take_over, uint64_t min_token, bool quiet,
			   lease_holding *h, bs_error *err);
/* Is the lease still ours?  Not held, lost to the heartbeat's knowledge, or taken since:
 * ERRCODE_LOCK_NOT_AVAILABLE. */
int lease_hold_check(storage *st, lease_holding *h, bs_error *err);
void lease_let_go(storage *st, lease_holding *h, bool quiet);

#endif
