/* control.h — the archiver's control endpoint: an HTTP server kept safe from what its peers send. */
#ifndef BACKSTOP_CONTROL_H
#define BACKSTOP_CONTROL_H

#include "config.h"
#include "error.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct event_base;
struct evhttp_request;

/* Fixed limits of one request: /checkpoint, /metrics and /health need no more. */
#define CONTROL_MAX_HEADERS_SIZE 8192	/* request line and headers */
#define CONTROL_MAX_BODY_SIZE 4096
#define CONTROL_MAX_URI 2048
#define CONTROL_TOKEN_MIN 16
#define CONTROL_TOKEN_MAX 1024
/* Descriptors kept for the archiver's own work (PostgreSQL, storage, spool, spill files). */
#define CONTROL_FD_RESERVE 64

typedef struct control_endpoint control_endpoint;

/* A request that passed the endpoint's checks (token, sizes); it must be answered, now or later. */
typedef void (*control_handler)(struct evhttp_request *req, void *arg);

typedef struct control_stats
{
	int connections;			/* open now */
	int max_connections;		/* the effective cap (listen_max_connections, descriptor limit) */
	uint64_t accepted;
	uint64_t timed_out;			/* closed idle, or without a complete request in listen_timeout */
	uint64_t unauthorized;		/* 401 and 403 */
	uint64_t accept_errors;
} control_stats;

/*
 * Listen on cfg's listen address (*out NULL when it is "off" or empty).  A non-loopback
 * address needs listen_allow_remote and a token; every setting error is
 * ERRCODE_INVALID_PARAMETER.  handler runs on base's loop, for checked requests only.
 */
int control_open(struct event_base *base, const bs_config *cfg, control_handler handler, void *arg,
				 control_endpoint **out, bs_error *err);
/* Stop listening and close every connection (requests still held are dropped unanswered). */
void control_free(control_endpoint *ce);
void control_get_stats(const control_endpoint *ce, control_stats *st);

/* The bearer token from control_token or control_token_file (*out NULL: none); never a flag. */
int control_load_token(const bs_config *cfg, char **out, bs_error *err);

/* Answer a request with a JSON body, or with {"error": message}. */
void control_reply_json(struct evhttp_request *req, int code, const char *reason, const char *json);
void control_reply_error(struct evhttp_request *req, int code, const char *reason, const char *message);

/* Parts exposed for unit tests. */
int control_parse_listen(const char *listen, char **host, char **port, bs_error *err);
bool control_sockaddr_is_loopback(const struct sockaddr *sa);
/* An Authorization header against the token: 0 accepted, 401 missing or not "Bearer", 403 wrong. */
int control_check_authorization(const char *token, const char *authorization);

#endif
