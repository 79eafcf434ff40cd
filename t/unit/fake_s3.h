/* fake_s3.h — a scripted HTTP server on 127.0.0.1 for unit tests of the s3:// driver: canned answers in order, the requests recorded. */
#ifndef BACKSTOP_FAKE_S3_H
#define BACKSTOP_FAKE_S3_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "strbuf.h"

/*
 * One answer: the status, extra header lines ("Name: value\r\n" each, or NULL), and the body:
 * body (body_len bytes, strlen(body) when body_len is 0), or fill_len bytes of 'x' when fill_len
 * is set (a large answer without holding it twice).  Content-Length says declared_len when it
 * is set (an answer cut short: the connection closes after what was sent).  Status 0: the
 * connection is closed without an answer.  Every answer closes the connection, so that each
 * request comes on a connection of its own and the server handles one at a time.
 */
typedef struct fake_answer
{
	int			status;
	const char *headers;
	const char *body;
	size_t		body_len;
	size_t		fill_len;
	size_t		declared_len;
} fake_answer;

#define FAKE_MAX_ANSWERS 16

/* A request as received: "METHOD /path?query", its headers and its body. */
typedef struct fake_request
{
	char	   *line;
	char	   *headers;
	strbuf		body;
} fake_request;

typedef struct fake_s3
{
	int			listen_fd;
	int			port;
	char		endpoint[64];	/* http://127.0.0.1:PORT */
	pthread_t	thread;
	pthread_mutex_t lock;
	fake_answer answers[FAKE_MAX_ANSWERS];
	int			nanswers;		/* scripted */
	int			next;			/* answers given */
	fake_request requests[FAKE_MAX_ANSWERS];
	int			nrequests;		/* recorded (at most FAKE_MAX_ANSWERS) */
	int			unexpected;		/* requests beyond the script (answered 500) */
} fake_s3;

/* Read one request's head and body from fd; false on EOF or a malformed request. */
static bool
fake_read_request(int fd, fake_request *rq)
{
	strbuf		in = STRBUF_INIT;
	char		buf[65536];
	char	   *end = NULL;
	size_t		head_len,
				want = 0;
	const char *cl;

	while ((end = in.data ? strstr(in.data, "\r\n\r\n") : NULL) == NULL)
	{
		ssize_t		n = read(fd, buf, sizeof(buf));

		if (n <= 0)
		{
			strbuf_free(&in);
			return false;
		}
		strbuf_append(&in, buf, (size_t) n);
	}
	head_len = (size_t) (end - in.data) + 4;
	*end = '\0';
	cl = strcasestr(in.data, "\r\nContent-Length:");
	if (cl)
		want = strtoull(cl + 17, NULL, 10);
	{
		char	   *eol = strstr(in.data, "\r\n");

		rq->line = strndup(in.data, (size_t) (eol - in.data));
		rq->headers = strdup(eol + 2);
		/* "GET /path HTTP/1.1": keep "GET /path". */
		if (strrchr(rq->line, ' ') && strrchr(rq->line, ' ') != strchr(rq->line, ' '))
			*strrchr(rq->line, ' ') = '\0';
	}
	memset(&rq->body, 0, sizeof(rq->body));
	strbuf_append(&rq->body, in.data + head_len, in.len - head_len);
	while (rq->body.len < want)
	{
		ssize_t		n = read(fd, buf, sizeof(buf));

		if (n <= 0)
			break;
		strbuf_append(&rq->body, buf, (size_t) n);
	}
	strbuf_free(&in);
	return true;
}

static void
fake_send_all(int fd, const char *p, size_t len)
{
	while (len > 0)
	{
		ssize_t		n = send(fd, p, len, MSG_NOSIGNAL);

		if (n <= 0)
			return;				/* the client went away (it may abort a transfer) */
		p += n;
		len -= (size_t) n;
	}
}

static void *
fake_s3_main(void *arg)
{
	fake_s3    *fs = arg;

	for (;;)
	{
		int			fd = accept(fs->listen_fd, NULL, NULL);
		fake_request rq = {0};
		fake_answer a = {500, NULL, "<Error><Code>InternalError</Code><Message>unscripted request</Message></Error>", 0, 0, 0};
		strbuf		head = STRBUF_INIT;
		size_t		blen;

		if (fd < 0)
			return NULL;		/* the socket was shut down: stop */
		if (!fake_read_request(fd, &rq))
		{
			close(fd);
			continue;
		}
		pthread_mutex_lock(&fs->lock);
		if (fs->next < fs->nanswers)
			a = fs->answers[fs->next++];
		else
			fs->unexpected++;
		if (fs->nrequests < FAKE_MAX_ANSWERS)
			fs->requests[fs->nrequests++] = rq;
		else
		{
			free(rq.line);
			free(rq.headers);
			strbuf_free(&rq.body);
		}
		pthread_mutex_unlock(&fs->lock);

		if (a.status == 0)
		{
			close(fd);
			continue;
		}
		blen = a.fill_len ? a.fill_len : a.body ? (a.body_len ? a.body_len : strlen(a.body)) : 0;
		strbuf_printf(&head, "HTTP/1.1 %d Fake\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n",
					  a.status, a.declared_len ? a.declared_len : blen, a.headers ? a.headers : "");
		fake_send_all(fd, head.data, head.len);
		if (a.fill_len)
		{
			static char chunk[65536];

			memset(chunk, 'x', sizeof(chunk));
			for (size_t sent = 0; sent < a.fill_len;)
			{
				size_t		n = a.fill_len - sent < sizeof(chunk) ? a.fill_len - sent : sizeof(chunk);
				ssize_t		w = send(fd, chunk, n, MSG_NOSIGNAL);

				if (w <= 0)
					break;
				sent += (size_t) w;
			}
		}
		else if (blen)
			fake_send_all(fd, a.body, blen);
		strbuf_free(&head);
		shutdown(fd, SHUT_WR);
		/* Wait for the client to close, so that it has read all of the answer. */
		{
			char		drain[4096];

			while (read(fd, drain, sizeof(drain)) > 0)
				;
		}
		close(fd);
	}
}

/* Start the server (exits the test on failure). */
static void
fake_s3_start(fake_s3 *fs)
{
	struct sockaddr_in sin = {0};
	socklen_t	slen = sizeof(sin);

	memset(fs, 0, sizeof(*fs));
	pthread_mutex_init(&fs->lock, NULL);
	fs->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fs->listen_fd < 0 || bind(fs->listen_fd, (struct sockaddr *) &sin, sizeof(sin)) != 0 ||
		listen(fs->listen_fd, 16) != 0 || getsockname(fs->listen_fd, (struct sockaddr *) &sin, &slen) != 0 ||
		pthread_create(&fs->thread, NULL, fake_s3_main, fs) != 0)
	{
		printf("Bail out! fake S3 server could not start\n");
		exit(1);
	}
	fs->port = ntohs(sin.sin_port);
	snprintf(fs->endpoint, sizeof(fs->endpoint), "http://127.0.0.1:%d", fs->port);
}

/* Forget the requests and answers of the previous case. */
static void
fake_s3_reset(fake_s3 *fs)
{
	pthread_mutex_lock(&fs->lock);
	for (int i = 0; i < fs->nrequests; i++)
	{
		free(fs->requests[i].line);
		free(fs->requests[i].headers);
		strbuf_free(&fs->requests[i].body);
	}
	fs->nrequests = 0;
	fs->nanswers = 0;
	fs->next = 0;
	fs->unexpected = 0;
	pthread_mutex_unlock(&fs->lock);
}

/* Script the next answer (after the ones scripted since the last reset). */
static void
fake_s3_answer(fake_s3 *fs, int status, const char *headers, const char *body)
{
	pthread_mutex_lock(&fs->lock);
	if (fs->nanswers < FAKE_MAX_ANSWERS)
		fs->answers[fs->nanswers++] = (fake_answer) {status, headers, body, 0, 0, 0};
	pthread_mutex_unlock(&fs->lock);
}

/* Script an answer of fill_len bytes of 'x'. */
static void
fake_s3_answer_fill(fake_s3 *fs, int status, const char *headers, size_t fill_len)
{
	pthread_mutex_lock(&fs->lock);
	if (fs->nanswers < FAKE_MAX_ANSWERS)
		fs->answers[fs->nanswers++] = (fake_answer) {status, headers, NULL, 0, fill_len, 0};
	pthread_mutex_unlock(&fs->lock);
}

/* Script an answer that declares declared_len bytes, sends body and closes the connection. */
static void
fake_s3_answer_cut(fake_s3 *fs, int status, const char *headers, const char *body, size_t declared_len)
{
	pthread_mutex_lock(&fs->lock);
	if (fs->nanswers < FAKE_MAX_ANSWERS)
		fs->answers[fs->nanswers++] = (fake_answer) {status, headers, body, 0, 0, declared_len};
	pthread_mutex_unlock(&fs->lock);
}

/* The n-th request's headers (0-based), or "" if there is none. */
static const char *
fake_s3_request_headers(fake_s3 *fs, int n)
{
	const char *s;

	pthread_mutex_lock(&fs->lock);
	s = n < fs->nrequests ? fs->requests[n].headers : "";
	pthread_mutex_unlock(&fs->lock);
	return s;
}

/* The n-th request's "METHOD /path?query" (0-based), or "" if there is none. */
static const char *
fake_s3_request_line(fake_s3 *fs, int n)
{
	const char *s;

	pthread_mutex_lock(&fs->lock);
	s = n < fs->nrequests ? fs->requests[n].line : "";
	pthread_mutex_unlock(&fs->lock);
	return s;
}

static int
fake_s3_count(fake_s3 *fs)
{
	int			n;

	pthread_mutex_lock(&fs->lock);
	n = fs->nrequests;
	pthread_mutex_unlock(&fs->lock);
	return n;
}

static void
fake_s3_stop(fake_s3 *fs)
{
	fake_s3_reset(fs);
	shutdown(fs->listen_fd, SHUT_RDWR);
	pthread_join(fs->thread, NULL);
	close(fs->listen_fd);
	pthread_mutex_destroy(&fs->lock);
}

#endif
