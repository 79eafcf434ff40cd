/* test_control.c — unit tests for the control endpoint's address policy and token handling. */
#include "config.h"
#include "control.h"
#include "tap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

static bool
parses(const char *listen, const char *want_host, const char *want_port)
{
	char *host = NULL, *port = NULL;
	bs_error err;
	bool good;

	error_clear(&err);
	if (control_parse_listen(listen, &host, &port, &err) != BS_OK)
		return want_host == NULL && strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0;
	good = want_host && strcmp(host, want_host) == 0 && strcmp(port, want_port) == 0;
	free(host);
	free(port);
	return good;
}

static bool
loopback4(const char *addr)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, addr, &sin.sin_addr);
	return control_sockaddr_is_loopback((struct sockaddr *) &sin);
}

static bool
loopback6(const char *addr)
{
	struct sockaddr_in6 sin6;

	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, addr, &sin6.sin6_addr);
	return control_sockaddr_is_loopback((struct sockaddr *) &sin6);
}

/* Load the token with options given as flags (argv) or set from the environment. */
static int
token(int argc, char **argv, const char *env_token, char **out, bs_error *err)
{
	static const char *const allowed[] = {"control_token", "control_token_file", NULL};
	bs_config cfg;
	char **pos = NULL;
	int npos;
	bool usage;
	int rc;

	if (env_token)
		setenv("BACKSTOP_CONTROL_TOKEN", env_token, 1);
	else
		unsetenv("BACKSTOP_CONTROL_TOKEN");
	rc = config_load(&cfg, argc, argv, allowed, &pos, &npos, &usage, err);
	if (rc == BS_OK)
		rc = control_load_token(&cfg, out, err);
	config_free(&cfg);
	free(pos);
	return rc;
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t) strlen(text))
		perror(path);
	close(fd);
	chmod(path, mode);
}

static void
answer(struct evhttp_request *req, void *arg)
{
	(void) arg;
	control_reply_json(req, 200, "OK", "{}");
}

static int
free_port(void)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int port;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *) &sin, sizeof(sin)) != 0 || getsockname(fd, (struct sockaddr *) &sin, &len) != 0)
		port = -1;
	else
		port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Run the loop until cond holds (or 20 s pass, a failure). */
#define LOOP_UNTIL(base, cond) do { double d_ = now_s() + 20; \
	while (!(cond) && now_s() < d_) event_base_loop((base), EVLOOP_ONCE); } while (0)

/*
 * accept() failing for want of descriptors: the listener backs off instead of failing again
 * at every loop pass, and accepts the waiting clients once descriptors are free again.
 */
static void
accept_errors(void)
{
	static const char *const allowed[] = {"listen", "listen_timeout", NULL};
	char listen[64];
	char *argv[4] = {"--listen", listen, "--listen-timeout", "1s"};
	bs_config cfg;
	char **pos = NULL;
	int npos;
	bool usage;
	bs_error err;
	struct event_base *base = event_base_new();
	control_endpoint *ce = NULL;
	control_stats st;
	struct rlimit rl, low;
	int fds[512];
	int nfds = 0;
	int fd;
	int go[2];
	pid_t child;
	uint64_t errors;

	/* Without the back-off the loop would spin in accept(): fail rather than hang. */
	alarm(120);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", free_port());
	if (config_load(&cfg, 4, argv, allowed, &pos, &npos, &usage, &err) != BS_OK ||
		control_open(base, &cfg, answer, NULL, &ce, &err) != BS_OK)
	{
		ok(0, "endpoint on %s: %s", listen, err.message);
		return;
	}
	ok(1, "endpoint on %s", listen);
	if (pipe(go) != 0)
		return;
	/* Every descriptor in use (a low limit keeps that quick). */
	getrlimit(RLIMIT_NOFILE, &rl);
	low = rl;
	low.rlim_cur = 256;
	setrlimit(RLIMIT_NOFILE, &low);
	while (nfds < (int) (sizeof(fds) / sizeof(fds[0])) && (fd = open("/dev/null", O_RDONLY)) >= 0)
		fds[nfds++] = fd;
	ok(errno == EMFILE, "all %d free descriptors taken", nfds);
	child = fork();
	if (child == 0)
	{
		char c;

		/* Three clients send a request each and wait for the parent. */
		close(go[1]);
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		for (int i = 0; i < 3; i++)
		{
			struct sockaddr_in sin;
			int s = socket(AF_INET, SOCK_STREAM, 0);

			memset(&sin, 0, sizeof(sin));
			sin.sin_family = AF_INET;
			sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			sin.sin_port = htons((uint16_t) atoi(strrchr(listen, ':') + 1));
			if (connect(s, (struct sockaddr *) &sin, sizeof(sin)) != 0 ||
				write(s, "GET /x HTTP/1.0\r\n\r\n", 18) != 18)
				_exit(1);
		}
		while (read(go[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	LOOP_UNTIL(base, (control_get_stats(ce, &st), st.accept_errors > 0));
	control_get_stats(ce, &st);
	errors = st.accept_errors;
	ok(errors >= 1 && st.accepted == 0, "accept fails for want of descriptors (%llu errors)", (unsigned long long) errors);
	/* Without the back-off each pass would fail again (the socket stays readable). */
	for (int i = 0; i < 1000; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
	control_get_stats(ce, &st);
	ok(st.accept_errors <= errors + 1, "the listener pauses: %llu errors after 1000 more loop passes",
	   (unsigned long long) st.accept_errors);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	setrlimit(RLIMIT_NOFILE, &rl);
	LOOP_UNTIL(base, (control_get_stats(ce, &st), st.accepted >= 3));
	ok(st.accepted >= 3, "once descriptors are free the waiting clients are accepted (%llu)",
	   (unsigned long long) st.accepted);
	close(go[1]);
	waitpid(child, NULL, 0);
	close(go[0]);
	control_free(ce);
	config_free(&cfg);
	free(pos);
	event_base_free(base);
	alarm(0);
}

int
main(void)
{
	char dir[] = "/tmp/backstop-test-control-XXXXXX";
	char path[512];
	char *tok = NULL;
	bs_error err;
	const char *good = "0123456789abcdef0123456789abcdef";

	setenv("BACKSTOP_CONFIG", "/dev/null", 1);
	unsetenv("BACKSTOP_CONTROL_TOKEN_FILE");
	if (mkdtemp(dir) == NULL)
	{
		perror("mkdtemp");
		return 1;
	}

	/* Listen addresses. */
	ok(parses("127.0.0.1:9816", "127.0.0.1", "9816"), "HOST:PORT");
	ok(parses("localhost:80", "localhost", "80"), "a name");
	ok(parses("[::1]:9816", "::1", "9816"), "[IPV6]:PORT");
	ok(parses("::1:9816", NULL, NULL), "a bare IPv6 address is ambiguous: refused");
	ok(parses(":9816", NULL, NULL), "no host: refused");
	ok(parses("127.0.0.1", NULL, NULL), "no port: refused");
	ok(parses("127.0.0.1:", NULL, NULL), "empty port: refused");
	ok(parses("127.0.0.1:0", NULL, NULL), "port 0: refused");
	ok(parses("127.0.0.1:65536", NULL, NULL), "port out of range: refused");
	ok(parses("127.0.0.1:98x", NULL, NULL), "port with garbage: refused");

	ok(loopback4("127.0.0.1") && loopback4("127.1.2.3"), "127/8 is loopback");
	ok(!loopback4("0.0.0.0"), "0.0.0.0 (every interface) is not loopback");
	ok(!loopback4("10.0.0.1") && !loopback4("192.168.1.1"), "private addresses are not loopback");
	ok(loopback6("::1"), "::1 is loopback");
	ok(loopback6("::ffff:127.0.0.1"), "IPv4-mapped 127.0.0.1 is loopback");
	ok(!loopback6("::") && !loopback6("fe80::1") && !loopback6("::ffff:10.0.0.1"), "other IPv6 addresses are not");

	/* Authorization headers. */
	is_int(control_check_authorization(good, NULL), 401, "no header: 401");
	is_int(control_check_authorization(good, "Basic dXNlcjpwYXNz"), 401, "another scheme: 401");
	is_int(control_check_authorization(good, "Bearer"), 401, "no token: 401");
	is_int(control_check_authorization(good, "Bearer   "), 401, "blank token: 401");
	is_int(control_check_authorization(good, "Bearerx 0123456789abcdef0123456789abcdef"), 401, "scheme must end: 401");
	is_int(control_check_authorization(good, "Bearer 0123456789abcdef0123456789abcdeX"), 403, "wrong token: 403");
	is_int(control_check_authorization(good, "Bearer 0123456789abcdef"), 403, "a prefix of the token: 403");
	is_int(control_check_authorization(good, "Bearer 0123456789abcdef0123456789abcdef0"), 403, "token plus more: 403");
	is_int(control_check_authorization(good, "Bearer 0123456789abcdef0123456789abcdef"), 0, "right token");
	is_int(control_check_authorization(good, "bearer \t0123456789abcdef0123456789abcdef "), 0,
		   "scheme case and surrounding blanks do not matter");

	/* Where the token comes from. */
	ok(token(0, NULL, NULL, &tok, &err) == BS_OK && tok == NULL, "no token configured");
	ok(token(0, NULL, good, &tok, &err) == BS_OK && tok && strcmp(tok, good) == 0, "token from the environment");
	free(tok);
	tok = NULL;
	{
		char *argv[] = {"--control-token", (char *) good};

		ok(token(2, argv, NULL, &tok, &err) == BS_ERR && strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0 &&
		   strstr(err.message, "ps") != NULL && strstr(err.message, good) == NULL,
		   "a token given as a flag is refused (without echoing it): %s", err.message);
	}
	ok(token(0, NULL, "short", &tok, &err) == BS_ERR && strstr(err.message, "16 to 1024") != NULL,
	   "a short token is refused");
	ok(token(0, NULL, "0123456789abcdef 0123", &tok, &err) == BS_ERR && strstr(err.message, "printable") != NULL,
	   "a token with a space is refused");

	snprintf(path, sizeof(path), "%s/token", dir);
	write_file(path, "0123456789abcdef0123456789abcdef\n", 0600);
	{
		char *argv[] = {"--control-token-file", path};

		ok(token(2, argv, NULL, &tok, &err) == BS_OK && tok && strcmp(tok, good) == 0,
		   "token from a file, newline removed");
		free(tok);
		tok = NULL;
		ok(token(2, argv, good, &tok, &err) == BS_ERR && strstr(err.message, "not both") != NULL,
		   "a file and a token at once are refused");
		chmod(path, 0604);
		ok(token(2, argv, NULL, &tok, &err) == BS_ERR && strstr(err.message, "accessible by others") != NULL,
		   "a file others can read is refused: %s", err.message);
		write_file(path, "", 0600);
		ok(token(2, argv, NULL, &tok, &err) == BS_ERR && strstr(err.message, "16 to 1024") != NULL,
		   "an empty file is refused");
		unlink(path);
		ok(token(2, argv, NULL, &tok, &err) == BS_ERR && strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0,
		   "a missing file is a configuration error");
	}
	rmdir(dir);
	accept_errors();
	return done_testing();
}
