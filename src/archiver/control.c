/* control.c — the archiver's control endpoint: an HTTP server kept safe from what its peers send. */
#include "control.h"
#include "clock.h"
#include "digest.h"
#include "log.h"
#include "strbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/crypto.h>

/* How often idle connections are looked for. */
#define SWEEP_INTERVAL_MS 500
/* Accept errors (out of descriptors): stop accepting for this long, doubling up to the max. */
#define ACCEPT_BACKOFF_MIN_MS 100
#define ACCEPT_BACKOFF_MAX_MS 5000
/* At most one warning of a kind per interval; the others are counted in the next one. */
#define LOG_INTERVAL_MS 60000

/* Why the listener does not accept (a bit each). */
#define PAUSE_FULL 1			/* listen_max_connections reached */
#define PAUSE_ERROR 2			/* back-off after an accept error */

typedef struct log_limit
{
	int64_t last_ms;
	uint64_t pending;			/* events not logged yet */
} log_limit;

typedef struct control_conn
{
	struct control_endpoint *ce;
	struct bufferevent *bev;	/* until bound to its evhttp connection (a reference of ours) */
	struct evhttp_connection *evcon;
	int64_t since_ms;			/* last time it was not waiting for a request */
	struct control_conn *prev;
	struct control_conn *next;
} control_conn;

struct control_endpoint
{
	struct event_base *base;
	struct evhttp *http;
	struct evconnlistener *listener;
	struct event *sweep_ev;
	struct event *resume_ev;
	control_handler handler;
	void *handler_arg;
	char *listen;
	unsigned char token_sha256[32];
	bool has_token;
	int64_t timeout_ms;
	int max_conns;
	int nconns;
	control_conn *conns;
	int paused;					/* PAUSE_* bits */
	bool listening;
	bool closing;
	int64_t backoff_ms;
	log_limit accept_log;
	log_limit auth_log;
	log_limit timeout_log;
	control_stats stats;
};

/* Count n events; true when they may be logged now, *total being how many happened since the
 * last line logged (these included). */
static bool
log_limit_pass(log_limit *l, uint64_t n, uint64_t *total)
{
	int64_t now = clock_mono_ms();

	l->pending += n;
	if (l->last_ms != 0 && now - l->last_ms < LOG_INTERVAL_MS)
		return false;
	*total = l->pending;
	l->pending = 0;
	l->last_ms = now;
	return true;
}

/* ---------- replies ---------- */

void
control_reply_json(struct evhttp_request *req, int code, const char *reason, const char *json)
{
	struct evbuffer *b = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
	evbuffer_add_printf(b, "%s\n", json);
	evhttp_send_reply(req, code, reason, b);
	evbuffer_free(b);
}

void
control_reply_error(struct evhttp_request *req, int code, const char *reason, const char *message)
{
	strbuf sb = STRBUF_INIT;

	strbuf_append_str(&sb, "{\"error\":\"");
	for (const char *p = message; *p; p++)
	{
		if (*p == '"' || *p == '\\')
			strbuf_append_char(&sb, '\\');
		if ((unsigned char) *p >= 0x20)
			strbuf_append_char(&sb, *p);
	}
	strbuf_append_str(&sb, "\"}");
	control_reply_json(req, code, reason, sb.data);
	strbuf_free(&sb);
}

/* ---------- address and token ---------- */

int
control_parse_listen(const char *listen, char **host, char **port, bs_error *err)
{
	const char *colon = strrchr(listen, ':');
	const char *h = listen;
	size_t hlen;
	long p;
	char *end;

	*host = *port = NULL;
	if (colon == NULL || colon[1] == '\0')
		goto bad;
	hlen = (size_t) (colon - listen);
	/* [IPv6]:PORT */
	if (hlen >= 2 && listen[0] == '[' && listen[hlen - 1] == ']')
	{
		h++;
		hlen -= 2;
	}
	else if (memchr(listen, ':', hlen) != NULL)
		goto bad;				/* a bare IPv6 address: the port would be ambiguous */
	if (hlen == 0)
		goto bad;
	if (hlen >= 256)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "invalid listen address: the host name is too long");
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || p <= 0 || p > 65535)
		return error_set(err, ERRCODE_INVALID_PARAMETER,
						 "invalid listen address \"%s\": the port must be a number from 1 to 65535", listen);
	*host = xstrndup(h, hlen);
	*port = xstrdup(colon + 1);
	return BS_OK;
bad:
	return error_set(err, ERRCODE_INVALID_PARAMETER,
					 "invalid listen address \"%s\" (expected HOST:PORT, [IPV6]:PORT or off)", listen);
}

bool
control_sockaddr_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *) sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
	{
		const struct in6_addr *a6 = &((const struct sockaddr_in6 *) sa)->sin6_addr;

		if (IN6_IS_ADDR_LOOPBACK(a6))
			return true;
		return IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127;
	}
	return false;
}

static int
check_authorization(const unsigned char token_sha256[32], const char *authorization)
{
	const char *p = authorization;
	size_t len;
	unsigned char got[32];

	if (p == NULL || strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
		return 401;
	p += 6;
	while (*p == ' ' || *p == '\t')
		p++;
	len = strlen(p);
	while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	if (len == 0)
		return 401;
	/* Digests of equal length compared in constant time: neither the token's length nor its
	 * content leaks through the time the answer takes. */
	digest_sha256(p, len, got);
	return CRYPTO_memcmp(got, token_sha256, 32) == 0 ? 0 : 403;
}

int
control_check_authorization(const char *token, const char *authorization)
{
	unsigned char want[32];

	digest_sha256(token, strlen(token), want);
	return check_authorization(want, authorization);
}

static int
check_token(const char *token, const char *origin, bs_error *err)
{
	size_t len = strlen(token);

	if (len < CONTROL_TOKEN_MIN || len > CONTROL_TOKEN_MAX)
		return error_set(err, ERRCODE_INVALID_PARAMETER,
						 "%s: the control token must be %d to %d characters long (e.g. `openssl rand -hex 32`)",
						 origin, CONTROL_TOKEN_MIN, CONTROL_TOKEN_MAX);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char) token[i] <= 0x20 || (unsigned char) token[i] >= 0x7f)
			return error_set(err, ERRCODE_INVALID_PARAMETER,
							 "%s: the control token may hold only printable ASCII characters without spaces", origin);
	return BS_OK;
}

static int
read_token_file(const char *path, char **out, bs_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char buf[CONTROL_TOKEN_MAX + 64];
	size_t len = 0;
	ssize_t n;
	strbuf origin = STRBUF_INIT;
	int rc = BS_ERR;

	if (fd < 0)
	{
		error_set_errno(err, errno, "could not open control_token_file \"%s\"", path);
		memcpy(err->code, ERRCODE_INVALID_PARAMETER, sizeof(err->code));
		return BS_ERR;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
	{
		close(fd);
		return error_set(err, ERRCODE_INVALID_PARAMETER, "control_token_file \"%s\" is not a regular file", path);
	}
	if (st.st_mode & S_IRWXO)
	{
		close(fd);
		return error_set(err, ERRCODE_INVALID_PARAMETER,
						 "control_token_file \"%s\" is accessible by others (mode %04o): chmod o-rwx it",
						 path, (unsigned) (st.st_mode & 07777));
	}
	while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) != 0)
	{
		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			error_set_errno(err, errno, "could not read control_token_file \"%s\"", path);
			goto out;
		}
		len += (size_t) n;
	}
	buf[len] = '\0';
	/* One line: the token, and perhaps a newline. */
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		buf[--len] = '\0';
	strbuf_printf(&origin, "control_token_file \"%s\"", path);
	if (strlen(buf) != len)
		error_set(err, ERRCODE_INVALID_PARAMETER, "%s holds a NUL byte", origin.data);
	else if (check_token(buf, origin.data, err) == BS_OK)
	{
		*out = xstrdup(buf);
		rc = BS_OK;
	}
out:
	close(fd);
	OPENSSL_cleanse(buf, sizeof(buf));
	strbuf_free(&origin);
	return rc;
}

int
control_load_token(const bs_config *cfg, char **out, bs_error *err)
{
	const char *token = config_get(cfg, CFG_CONTROL_TOKEN);
	const char *file = config_get(cfg, CFG_CONTROL_TOKEN_FILE);

	*out = NULL;
	if (token && *token && cfg->values[CFG_CONTROL_TOKEN].source == SOURCE_FLAG)
		return error_set(err, ERRCODE_INVALID_PARAMETER,
						 "--control-token is refused: a command line shows in ps; set BACKSTOP_CONTROL_TOKEN, "
						 "control_token in the configuration file, or control_token_file");
	if (token && *token && file && *file)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "set control_token or control_token_file, not both");
	if (file && *file)
		return read_token_file(file, out, err);
	if (token && *token)
	{
		if (check_token(token, "control_token", err) != BS_OK)
			return BS_ERR;
		*out = xstrdup(token);
	}
	return BS_OK;
}

/* ---------- connections ---------- */

static void
set_listening(control_endpoint *ce)
{
	bool want = ce->paused == 0 && !ce->closing;

	if (want == ce->listening)
		return;
	if (want)
		evconnlistener_enable(ce->listener);
	else
		evconnlistener_disable(ce->listener);
	ce->listening = want;
}

static void
conn_forget(control_conn *c)
{
	control_endpoint *ce = c->ce;

	if (c->prev)
		c->prev->next = c->next;
	else
		ce->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ce->nconns--;
	free(c);
	if (!ce->closing && ce->nconns < ce->max_conns)
	{
		ce->paused &= ~PAUSE_FULL;
		set_listening(ce);
	}
}

static void
conn_closed(struct evhttp_connection *evcon, void *arg)
{
	(void) evcon;
	conn_forget(arg);
}

/*
 * Runs right after the accept callback that created the connection, before any of its I/O
 * (an event activated now runs in this loop pass; the socket's first read can only come
 * from the next poll).  evhttp gives a server connection's bufferevent the connection as
 * its callback argument; from here on its close callback keeps the count.
 */
static void
conn_bind(evutil_socket_t fd, short what, void *arg)
{
	control_conn *c = arg;
	struct bufferevent *bev = c->bev;
	bufferevent_data_cb rcb, wcb;
	bufferevent_event_cb ecb;
	void *cbarg = NULL;

	(void) fd;
	(void) what;
	bufferevent_getcb(bev, &rcb, &wcb, &ecb, &cbarg);
	c->bev = NULL;
	if (cbarg != NULL)
	{
		c->evcon = cbarg;
		evhttp_connection_set_closecb(c->evcon, conn_closed, c);
		bufferevent_decref(bev);
	}
	else
	{
		/* evhttp already gave it up (freeing clears the callbacks; our reference kept it). */
		bufferevent_decref(bev);
		conn_forget(c);
	}
}

/* evhttp asks for each accepted connection's bufferevent: count the connection. */
static struct bufferevent *
conn_new(struct event_base *base, void *arg)
{
	control_endpoint *ce = arg;
	struct bufferevent *bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	control_conn *c;

	if (bev == NULL)
		return NULL;
	ce->stats.accepted++;
	ce->backoff_ms = 0;
	c = xcalloc(1, sizeof(control_conn));
	c->ce = ce;
	c->since_ms = clock_mono_ms();
	c->next = ce->conns;
	if (ce->conns)
		ce->conns->prev = c;
	ce->conns = c;
	ce->nconns++;
	/* Full: further clients wait in the kernel's backlog, holding none of our descriptors. */
	if (ce->nconns >= ce->max_conns)
	{
		ce->paused |= PAUSE_FULL;
		set_listening(ce);
	}
	bufferevent_incref(bev);
	c->bev = bev;
	if (event_base_once(base, -1, EV_TIMEOUT, conn_bind, c, NULL) != 0)
	{
		/* Cannot watch it: let it run untracked rather than refuse it. */
		c->bev = NULL;
		bufferevent_decref(bev);
		conn_forget(c);
	}
	return bev;
}

/* A connection is idle while it waits for (the rest of) a request with nothing to send. */
static bool
conn_waiting(control_conn *c)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(c->evcon);

	return (bufferevent_get_enabled(bev) & EV_READ) != 0 &&
		evbuffer_get_length(bufferevent_get_output(bev)) == 0;
}

/* Close connections that waited for a request for longer than listen_timeout (all waiting
 * ones when force): evhttp's own timeout restarts at every byte, so a peer sending one
 * byte at a time would otherwise keep a connection for hours. */
static int
close_idle(control_endpoint *ce, bool force)
{
	int64_t now = clock_mono_ms();
	int closed = 0;

	for (control_conn *c = ce->conns, *next; c; c = next)
	{
		next = c->next;
		if (c->evcon == NULL)
			continue;
		if (!conn_waiting(c))
			c->since_ms = now;	/* a request being answered (a checkpoint may wait long) */
		else if (force || now - c->since_ms >= ce->timeout_ms)
		{
			ce->stats.timed_out++;
			closed++;
			evhttp_connection_free(c->evcon);	/* calls conn_closed */
		}
	}
	return closed;
}

static void
on_sweep(evutil_socket_t fd, short what, void *arg)
{
	control_endpoint *ce = arg;
	int closed;
	uint64_t total;

	(void) fd;
	(void) what;
	closed = close_idle(ce, false);
	if (closed > 0 && log_limit_pass(&ce->timeout_log, (uint64_t) closed, &total))
		log_info("control endpoint: closed %llu connection%s idle or without a complete request for %lld ms "
				 "(since the last such line)", (unsigned long long) total, total == 1 ? "" : "s",
				 (long long) ce->timeout_ms);
}

static void
on_resume(evutil_socket_t fd, short what, void *arg)
{
	control_endpoint *ce = arg;

	(void) fd;
	(void) what;
	ce->paused &= ~PAUSE_ERROR;
	set_listening(ce);
}

typedef struct find_ctx
{
	struct evconnlistener *listener;
	control_endpoint *found;
} find_ctx;

static int
find_endpoint(const struct event_base *base, const struct event *ev, void *arg)
{
	find_ctx *f = arg;

	(void) base;
	if (event_get_callback(ev) == on_sweep &&
		((control_endpoint *) event_get_callback_arg(ev))->listener == f->listener)
	{
		f->found = event_get_callback_arg(ev);
		return 1;
	}
	return 0;
}

/*
 * accept() failed, typically out of descriptors.  The listening socket stays readable, so
 * libevent would call accept again at once, forever, logging each failure: stop accepting
 * for a while instead, give back idle connections' descriptors, and log now and then.
 * evhttp passes itself as the argument; the endpoint is found through its sweep event.
 */
static void
on_accept_error(struct evconnlistener *listener, void *arg)
{
	int e = errno;
	find_ctx f = {listener, NULL};
	control_endpoint *ce;
	struct timeval tv;
	int shed = 0;
	uint64_t total;

	(void) arg;
	event_base_foreach_event(evconnlistener_get_base(listener), find_endpoint, &f);
	ce = f.found;
	if (ce == NULL)
	{
		evconnlistener_disable(listener);
		log_error("control endpoint: accept failed: %s; no longer accepting connections", strerror(e));
		return;
	}
	ce->stats.accept_errors++;
	ce->backoff_ms = ce->backoff_ms == 0 ? ACCEPT_BACKOFF_MIN_MS :
		(ce->backoff_ms * 2 > ACCEPT_BACKOFF_MAX_MS ? ACCEPT_BACKOFF_MAX_MS : ce->backoff_ms * 2);
	ce->paused |= PAUSE_ERROR;
	set_listening(ce);
	tv.tv_sec = ce->backoff_ms / 1000;
	tv.tv_usec = (ce->backoff_ms % 1000) * 1000;
	evtimer_add(ce->resume_ev, &tv);
	/* The archiver's own work comes first. */
	if (e == EMFILE || e == ENFILE)
		shed = close_idle(ce, true);
	if (log_limit_pass(&ce->accept_log, 1, &total))
		log_warning("control endpoint: accept failed: %s; not accepting for %lld ms%s (%llu failure%s since "
					"the last such line)", strerror(e), (long long) ce->backoff_ms,
					shed ? ", idle connections closed" : "", (unsigned long long) total, total == 1 ? "" : "s");
}

/* ---------- requests ---------- */

static control_conn *
find_conn(control_endpoint *ce, struct evhttp_connection *evcon)
{
	for (control_conn *c = ce->conns; c; c = c->next)
		if (c->evcon == evcon)
			return c;
	return NULL;
}

static void
on_request(struct evhttp_request *req, void *arg)
{
	control_endpoint *ce = arg;
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	control_conn *c = evcon ? find_conn(ce, evcon) : NULL;
	const char *uri = evhttp_request_get_uri(req);

	if (c)
		c->since_ms = clock_mono_ms();
	if (uri == NULL || evhttp_request_get_evhttp_uri(req) == NULL)
	{
		control_reply_error(req, 400, "Bad Request", "malformed request");
		return;
	}
	if (strlen(uri) > CONTROL_MAX_URI)
	{
		control_reply_error(req, 414, "URI Too Long", "request URI too long");
		return;
	}
	if (ce->has_token)
	{
		int code = check_authorization(ce->token_sha256,
									   evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization"));

		if (code != 0)
		{
			char *peer = NULL;
			uint16_t port = 0;
			uint64_t total;

			ce->stats.unauthorized++;
			if (evcon)
				evhttp_connection_get_peer(evcon, &peer, &port);
			if (log_limit_pass(&ce->auth_log, 1, &total))
				log_warning("control endpoint: %s from %s:%u (%llu refused since the last such line)",
							code == 401 ? "request without a bearer token" : "request with a wrong token",
							peer ? peer : "?", (unsigned) port, (unsigned long long) total);
			if (code == 401)
			{
				evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
								  "Bearer realm=\"backstop\"");
				control_reply_error(req, 401, "Unauthorized", "a bearer token is required (Authorization: Bearer TOKEN)");
			}
			else
				control_reply_error(req, 403, "Forbidden", "wrong token");
			return;
		}
	}
	ce->handler(req, ce->handler_arg);
}

/* ---------- the endpoint ---------- */

int
control_open(struct event_base *base, const bs_config *cfg, control_handler handler, void *arg,
			 control_endpoint **out, bs_error *err)
{
	const char *listen = config_get(cfg, CFG_LISTEN);
	bool allow_remote = config_get_bool(cfg, CFG_LISTEN_ALLOW_REMOTE);
	int64_t max_conns = config_get_int(cfg, CFG_LISTEN_MAX_CONNECTIONS);
	int64_t timeout_ms = config_get_duration_ms(cfg, CFG_LISTEN_TIMEOUT);
	char *host = NULL, *port = NULL, *token = NULL;
	struct addrinfo hints, *res = NULL;
	struct rlimit rl;
	int64_t fd_limit, reserve;
	control_endpoint *ce = NULL;
	bool remote = false;
	struct timeval tv;
	int gai;

	*out = NULL;
	if (listen == NULL || *listen == '\0' || strcmp(listen, "off") == 0)
		return BS_OK;
	/* listen_max_connections and listen_timeout are within their ranges (config_ranges). */
	if (control_parse_listen(listen, &host, &port, err) != BS_OK)
		return BS_ERR;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((gai = getaddrinfo(host, port, &hints, &res)) != 0)
	{
		error_set(err, ERRCODE_INVALID_PARAMETER, "listen address \"%s\": %s", listen, gai_strerror(gai));
		goto fail;
	}
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
		if (!control_sockaddr_is_loopback(ai->ai_addr))
			remote = true;
	if (remote && !allow_remote)
	{
		error_set(err, ERRCODE_INVALID_PARAMETER,
				  "listen address \"%s\" is not a loopback address: the control endpoint (POST /checkpoint, "
				  "/metrics) would answer from the network; to allow it, set listen_allow_remote = on and a "
				  "token (control_token_file or BACKSTOP_CONTROL_TOKEN)", listen);
		goto fail;
	}
	if (control_load_token(cfg, &token, err) != BS_OK)
		goto fail;
	if (remote && token == NULL)
	{
		error_set(err, ERRCODE_INVALID_PARAMETER,
				  "listen_allow_remote needs a token for the non-loopback address \"%s\": "
				  "set control_token_file or BACKSTOP_CONTROL_TOKEN", listen);
		goto fail;
	}

	/* The cap leaves descriptors for the archiver itself, however many peers connect. */
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > INT32_MAX)
		fd_limit = INT32_MAX;
	else
		fd_limit = (int64_t) rl.rlim_cur;
	reserve = fd_limit / 2 < CONTROL_FD_RESERVE ? fd_limit / 2 : CONTROL_FD_RESERVE;
	if (fd_limit - reserve < max_conns)
		max_conns = fd_limit - reserve;
	if (max_conns < 1)
	{
		error_set(err, ERRCODE_INVALID_PARAMETER, "the descriptor limit (%lld) leaves no room for control connections",
				  (long long) fd_limit);
		goto fail;
	}

	ce = xcalloc(1, sizeof(control_endpoint));
	ce->base = base;
	ce->handler = handler;
	ce->handler_arg = arg;
	ce->listen = xstrdup(listen);
	ce->timeout_ms = timeout_ms;
	ce->max_conns = (int) max_conns;
	if (token)
	{
		digest_sha256(token, strlen(token), ce->token_sha256);
		ce->has_token = true;
		OPENSSL_cleanse(token, strlen(token));
		free(token);
		token = NULL;
	}
	ce->listener = evconnlistener_new_bind(base, NULL, NULL,
										   LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
										   -1, res->ai_addr, (int) res->ai_addrlen);
	if (ce->listener == NULL)
	{
		error_set_errno(err, errno, "could not listen on %s (in use?)", listen);
		goto fail;
	}
	ce->listening = true;
	ce->http = evhttp_new(base);
	if (ce->http == NULL || evhttp_bind_listener(ce->http, ce->listener) == NULL)
	{
		error_set(err, ERRCODE_INTERNAL, "could not start the HTTP server on %s", listen);
		goto fail;
	}
	evconnlistener_set_error_cb(ce->listener, on_accept_error);
	evhttp_set_bevcb(ce->http, conn_new, ce);
	evhttp_set_max_headers_size(ce->http, CONTROL_MAX_HEADERS_SIZE);
	evhttp_set_max_body_size(ce->http, CONTROL_MAX_BODY_SIZE);
	/* Waiting for a request is timed by close_idle (and counted); evhttp's own timeout, later,
	 * catches a peer that stops reading its answer. */
	tv.tv_sec = 2 * timeout_ms / 1000;
	tv.tv_usec = (2 * timeout_ms % 1000) * 1000;
	evhttp_set_timeout_tv(ce->http, &tv);
	evhttp_set_allowed_methods(ce->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_gencb(ce->http, on_request, ce);
	ce->sweep_ev = event_new(base, -1, EV_PERSIST, on_sweep, ce);
	ce->resume_ev = evtimer_new(base, on_resume, ce);
	tv.tv_sec = 0;
	tv.tv_usec = SWEEP_INTERVAL_MS * 1000;
	if (ce->sweep_ev == NULL || ce->resume_ev == NULL || event_add(ce->sweep_ev, &tv) != 0)
	{
		error_set(err, ERRCODE_INTERNAL, "could not start the HTTP server on %s", listen);
		goto fail;
	}
	log_info("control endpoint on http://%s (/metrics, /health, /checkpoint; %s; at most %d connections, "
			 "idle ones closed after %lld ms)", listen, ce->has_token ? "bearer token required" : "no token",
			 ce->max_conns, (long long) ce->timeout_ms);
	freeaddrinfo(res);
	free(host);
	free(port);
	*out = ce;
	return BS_OK;
fail:
	if (res)
		freeaddrinfo(res);
	free(host);
	free(port);
	if (token)
	{
		OPENSSL_cleanse(token, strlen(token));
		free(token);
	}
	if (ce && ce->http == NULL && ce->listener)
		evconnlistener_free(ce->listener);
	control_free(ce);
	return BS_ERR;
}

void
control_free(control_endpoint *ce)
{
	if (ce == NULL)
		return;
	ce->closing = true;
	if (ce->sweep_ev)
		event_free(ce->sweep_ev);
	if (ce->resume_ev)
		event_free(ce->resume_ev);
	/* Frees the listener, then every connection (each calls conn_closed). */
	if (ce->http)
		evhttp_free(ce->http);
	/* Connections accepted in this loop pass, not bound yet. */
	while (ce->conns)
	{
		control_conn *c = ce->conns;

		if (c->bev)
			bufferevent_decref(c->bev);
		ce->conns = c->next;
		free(c);
	}
	free(ce->listen);
	OPENSSL_cleanse(ce->token_sha256, sizeof(ce->token_sha256));
	free(ce);
}

void
control_get_stats(const control_endpoint *ce, control_stats *st)
{
	*st = ce->stats;
	st->connections = ce->nconns;
	st->max_connections = ce->max_conns;
}
