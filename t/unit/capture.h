/* capture.h — unit tests' capture of stdout and stderr: what the code under test prints, read back into out and errout. */
#ifndef BACKSTOP_CAPTURE_H
#define BACKSTOP_CAPTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char out[1 << 16];
static char errout[1 << 14];

/* Read what fd holds (from its start) into buf, and close it. */
static inline void
slurp(int fd, char *buf, size_t size)
{
	ssize_t n;

	lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, size - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
}

/* stdout and stderr sent to temporary files until capture_end, which reads them into out and
 * errout. */
typedef struct capture
{
	int ofd;
	int efd;
	int saved_out;
	int saved_err;
} capture;

static inline void
capture_begin(capture *c)
{
	char opath[] = "/tmp/backstop-test-out-XXXXXX";
	char epath[] = "/tmp/backstop-test-err-XXXXXX";

	c->ofd = mkstemp(opath);
	c->efd = mkstemp(epath);
	unlink(opath);
	unlink(epath);
	c->saved_out = dup(STDOUT_FILENO);
	c->saved_err = dup(STDERR_FILENO);
	fflush(stdout);
	fflush(stderr);
	dup2(c->ofd, STDOUT_FILENO);
	dup2(c->efd, STDERR_FILENO);
}

static inline void
capture_end(capture *c)
{
	fflush(stdout);
	fflush(stderr);
	dup2(c->saved_out, STDOUT_FILENO);
	dup2(c->saved_err, STDERR_FILENO);
	close(c->saved_out);
	close(c->saved_err);
	slurp(c->ofd, out, sizeof(out));
	slurp(c->efd, errout, sizeof(errout));
}

/* What was captured, as TAP comments. */
static inline void
show(void)
{
	printf("# stdout:\n%s# stderr:\n%s", out, errout);
}

#endif
