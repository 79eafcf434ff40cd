/* fake_http.h — a stand-in HTTP server for the unit tests of commands: canned answers by route (an archiver's endpoint, S3 faults), or an S3 bucket served from a directory. */
#ifndef BACKSTOP_FAKE_HTTP_H
#define BACKSTOP_FAKE_HTTP_H

#include "strbuf.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* A route: "METHOD /path", or a prefix of it ending in '*'.  Bodies: "{ECHO}" answers with the
 * body of the last PUT, "{LIST}" with an S3 listing of the last key PUT. */
typedef struct fake_route
{
	const char *request;
	int status;
	const char *body;
} fake_route;

typedef struct fake_endpoint
{
	int fd;
	char listen[64];
	const fake_route *routes;
	pthread_t thread;
	char requests[1024];		/* "METHOD path[ auth];" for each request served */
	char put_key[1100];
	char put_body[4096];
	/* When set: what no route answers is an S3 bucket "bucket" whose keys under "PREFIX/" are
	 * the files under root (GET, HEAD and list-type=2; read only). */
	const char *root;
	const char *prefix;
} fake_endpoint;

static inline bool
route_matches(const char *pattern, const char *request)
{
	size_t n = strlen(pattern);

	return pattern[n - 1] == '*' ? strncmp(pattern, request, n - 1) == 0 : strcmp(pattern, request) == 0;
}

/* Read one request: headers, then Content-Length bytes of body into body. */
static inline void
read_request(int c, char *req, size_t size, char *body, size_t bsize)
{
	size_t n = 0;
	char *end = NULL;
	const char *cl;
	size_t want = 0, have;

	while (n < size - 1 && end == NULL)
	{
		ssize_t got = read(c, req + n, size - 1 - n);

		if (got <= 0)
			break;
		n += (size_t) got;
		req[n] = '\0';
		end = strstr(req, "\r\n\r\n");
	}
	req[n] = '\0';
	body[0] = '\0';
	if (end == NULL)
		return;
	if ((cl = strcasestr(req, "\r\nContent-Length: ")) != NULL)
		want = (size_t) strtoul(cl + 18, NULL, 10);
	have = n - (size_t) (end + 4 - req);
	if (have > bsize - 1)
		have = bsize - 1;
	memcpy(body, end + 4, have);
	while (have < want && have < bsize - 1)
	{
		ssize_t got = read(c, body + have, bsize - 1 - have);

		if (got <= 0)
			break;
		have += (size_t) got;
	}
	body[have] = '\0';
	*end = '\0';
}

/* %XX decoded, in place. */
static inline void
fake_url_decode(char *s)
{
	char *o = s;

	for (char *p = s; *p; p++)
	{
		unsigned int v;

		if (*p == '%' && p[1] && p[2] && sscanf(p + 1, "%2x", &v) == 1)
		{
			*o++ = (char) v;
			p += 2;
		}
		else
			*o++ = *p;
	}
	*o = '\0';
}

static inline int
fake_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The files under root/rel, as paths relative to root ("rel/name"), appended to *names. */
static inline void
fake_walk(const char *root, const char *rel, char ***names, int *n)
{
	char path[2048];
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "%s%s%s", root, *rel ? "/" : "", rel);
	if ((d = opendir(path)) == NULL)
		return;
	while ((e = readdir(d)) != NULL)
	{
		char sub[1024];
		char full[3072];
		struct stat sb;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s%s%.500s", rel, *rel ? "/" : "", e->d_name);
		snprintf(full, sizeof(full), "%s/%s", root, sub);
		if (stat(full, &sb) != 0)
			continue;
		if (S_ISDIR(sb.st_mode))
			fake_walk(root, sub, names, n);
		else
		{
			*names = xrealloc(*names, (size_t) (*n + 1) * sizeof(char *));
			(*names)[(*n)++] = xstrdup(sub);
		}
	}
	closedir(d);
}

/* An S3 answer from the files under fe->root: *status and body. */
static inline void
fake_bucket(fake_endpoint *fe, const char *method, const char *path, int *status, strbuf *body)
{
	char bucket_prefix[256];
	size_t bl;

	snprintf(bucket_prefix, sizeof(bucket_prefix), "/bucket/%s/", fe->prefix);
	bl = strlen(bucket_prefix);
	if (strncmp(path, "/bucket?", 8) == 0 && strcmp(method, "GET") == 0)
	{
		/* list-type=2: every key under the prefix asked for, in one page */
		const char *p = strstr(path, "prefix=");
		char want[1024] = "";
		char **names = NULL;
		int n = 0;

		if (p)
			sscanf(p + 7, "%1023[^&]", want);
		fake_url_decode(want);
		fake_walk(fe->root, "", &names, &n);
		if (n > 0)
			qsort(names, (size_t) n, sizeof(char *), fake_cmp_str);
		strbuf_append_str(body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult><Name>bucket</Name>"
						  "<IsTruncated>false</IsTruncated>");
		for (int i = 0; i < n; i++)
		{
			char key[1100];
			char full[3072];
			struct stat sb;

			snprintf(key, sizeof(key), "%s/%s", fe->prefix, names[i]);
			snprintf(full, sizeof(full), "%s/%s", fe->root, names[i]);
			if (strncmp(key, want, strlen(want)) == 0 && stat(full, &sb) == 0)
				strbuf_printf(body, "<Contents><Key>%s</Key><Size>%lld</Size></Contents>", key, (long long) sb.st_size);
			free(names[i]);
		}
		free(names);
		strbuf_append_str(body, "</ListBucketResult>");
		*status = 200;
		return;
	}
	if (strncmp(path, bucket_prefix, bl) == 0 && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0))
	{
		char full[3072];
		FILE *f;

		snprintf(full, sizeof(full), "%s/%s", fe->root, path + bl);
		if ((f = fopen(full, "rb")) != NULL)
		{
			char buf[65536];
			size_t got;

			while ((got = fread(buf, 1, sizeof(buf), f)) > 0)
				strbuf_append(body, buf, got);
			fclose(f);
			*status = 200;
			return;
		}
	}
	strbuf_append_str(body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code></Error>");
	*status = 404;
}

/* Serve one request per connection until GET /stop (sent by fake_stop). */
static inline void *
fake_main(void *arg)
{
	fake_endpoint *fe = arg;

	for (;;)
	{
		int c = accept(fe->fd, NULL, NULL);
		char req[8192], reqbody[4096];
		char method[16] = "", path[1024] = "", request[1100];
		const fake_route *r = NULL;
		strbuf body = STRBUF_INIT;
		strbuf resp = STRBUF_INIT;
		int status = 404;
		bool head;

		if (c < 0)
			break;
		read_request(c, req, sizeof(req), reqbody, sizeof(reqbody));
		sscanf(req, "%15s %1023s", method, path);
		if (strcmp(path, "/stop") == 0)
		{
			close(c);
			break;
		}
		head = strcmp(method, "HEAD") == 0;
		snprintf(request, sizeof(request), "%s %s", method, path);
		snprintf(fe->requests + strlen(fe->requests), sizeof(fe->requests) - strlen(fe->requests), "%s%s;", request,
				 strstr(req, "Authorization: Bearer ") ? " auth" : "");
		for (int i = 0; fe->routes[i].request && r == NULL; i++)
			if (route_matches(fe->routes[i].request, request))
				r = &fe->routes[i];
		if (strcmp(method, "PUT") == 0)
		{
			const char *k = strchr(path + 1, '/');	/* path style: /bucket/key */

			snprintf(fe->put_key, sizeof(fe->put_key), "%s", k ? k + 1 : path);
			snprintf(fe->put_body, sizeof(fe->put_body), "%s", reqbody);
		}
		strbuf_append_str(&body, "");
		if (r == NULL && fe->root)
			fake_bucket(fe, method, path, &status, &body);
		else
		{
			status = r ? r->status : 404;
			if (r && strcmp(r->body, "{ECHO}") == 0)
				strbuf_append_str(&body, fe->put_body);
			else if (r && strcmp(r->body, "{LIST}") == 0)
				strbuf_printf(&body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult><Name>bucket</Name>"
							  "<IsTruncated>false</IsTruncated><Contents><Key>%s</Key><Size>%zu</Size></Contents>"
							  "</ListBucketResult>", fe->put_key, strlen(fe->put_body));
			else if (r)
				strbuf_append_str(&body, r->body);
		}
		strbuf_printf(&resp, "HTTP/1.1 %d X\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
					  status, body.len);
		if (!head)
			strbuf_append(&resp, body.data, body.len);
		for (size_t off = 0; off < resp.len;)
		{
			ssize_t w = write(c, resp.data + off, resp.len - off);

			if (w <= 0)
			{
				printf("# fake endpoint: short write\n");
				break;
			}
			off += (size_t) w;
		}
		strbuf_free(&body);
		strbuf_free(&resp);
		close(c);
	}
	return NULL;
}

static inline void
fake_launch(fake_endpoint *fe)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);

	fe->fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fe->fd, (struct sockaddr *) &sa, sizeof(sa)) != 0 || listen(fe->fd, 16) != 0 ||
		getsockname(fe->fd, (struct sockaddr *) &sa, &sl) != 0)
		printf("Bail out! fake endpoint: %s\n", strerror(errno));
	snprintf(fe->listen, sizeof(fe->listen), "127.0.0.1:%d", ntohs(sa.sin_port));
	pthread_create(&fe->thread, NULL, fake_main, fe);
}

/* Answer routes (the first that matches; NULL-terminated). */
static inline void
fake_start(fake_endpoint *fe, const fake_route *routes)
{
	memset(fe, 0, sizeof(*fe));
	fe->routes = routes;
	fake_launch(fe);
}

/* Answer routes first, then serve s3://bucket/PREFIX from the files under root. */
static inline void
fake_start_bucket(fake_endpoint *fe, const fake_route *routes, const char *root, const char *prefix)
{
	memset(fe, 0, sizeof(*fe));
	fe->routes = routes;
	fe->root = root;
	fe->prefix = prefix;
	fake_launch(fe);
}

static inline void
fake_stop(fake_endpoint *fe)
{
	struct sockaddr_in sa;
	int c = socket(AF_INET, SOCK_STREAM, 0);
	const char *req = "GET /stop HTTP/1.1\r\n\r\n";

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	getsockname(fe->fd, (struct sockaddr *) &sa, &(socklen_t) {sizeof(sa)});
	if (connect(c, (struct sockaddr *) &sa, sizeof(sa)) != 0 || write(c, req, strlen(req)) < 0)
		printf("# fake_stop: %s\n", strerror(errno));
	pthread_join(fe->thread, NULL);
	close(c);
	close(fe->fd);
}

#endif
