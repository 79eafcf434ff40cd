/* test_drillstate.c — the last drill's result on disk: written durably or not at all (no temporary file left), read back as /metrics. */
#include "drillstate.h"
#include "tap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char top[] = "/tmp/backstop-test-drillstate-XXXXXX";

/* The names in dir, sorted, separated by spaces ("" when empty, "(none)" when unreadable). */
static void
list_dir(const char *dir, char *buf, size_t size)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort);

	buf[0] = '\0';
	if (n < 0)
	{
		snprintf(buf, size, "(none)");
		return;
	}
	for (int i = 0; i < n; i++)
	{
		if (strcmp(names[i]->d_name, ".") != 0 && strcmp(names[i]->d_name, "..") != 0)
			snprintf(buf + strlen(buf), size - strlen(buf), "%s%s", buf[0] ? " " : "", names[i]->d_name);
		free(names[i]);
	}
	free(names);
}

static void
write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");

	fwrite(text, 1, len, f);
	fclose(f);
}

static char *
read_file(const char *path)
{
	static char buf[4096];
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* The metrics of dir, as a string the caller frees. */
static char *
metrics(const char *dir)
{
	strbuf sb = STRBUF_INIT;

	strbuf_append_str(&sb, "");
	drillstate_metrics(dir, &sb);
	return strbuf_detach(&sb, NULL);
}

static json_t *
state(long long time, bool ok, double rto, double rpo)
{
	json_t *j = json_object();

	json_object_set_new(j, "time", json_integer(time));
	json_object_set_new(j, "ok", json_boolean(ok));
	json_object_set_new(j, "mode", json_string("scratch"));
	if (rto >= 0)
		json_object_set_new(j, "rto_seconds", json_real(rto));
	if (rpo >= 0)
		json_object_set_new(j, "rpo_seconds", json_real(rpo));
	return j;
}

static void
test_write_and_metrics(void)
{
	char dir[256], path[300], names[512];
	json_t *j = state(1795708800, true, 1.5, 0.25);
	bs_error err;
	struct stat sb;
	char *m;

	/* data_dir is created when missing, the file is complete and private, nothing else is left */
	snprintf(dir, sizeof(dir), "%s/data", top);
	snprintf(path, sizeof(path), "%s/" DRILLSTATE_FILE, dir);
	error_clear(&err);
	is_int(drillstate_write(dir, j, &err), BS_OK, "written into a data_dir that did not exist (%s)", err.message);
	json_decref(j);
	is_str(read_file(path), "{\"time\":1795708800,\"ok\":true,\"mode\":\"scratch\",\"rto_seconds\":1.5,\"rpo_seconds\":0.25}",
		   "the state as compact JSON");
	ok(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600, "the file is 0600");
	ok(stat(dir, &sb) == 0 && (sb.st_mode & 0777) == 0700, "the directory it created is 0700");
	list_dir(dir, names, sizeof(names));
	is_str(names, DRILLSTATE_FILE, "no temporary file is left");
	m = metrics(dir);
	is_str(m,
		   "# HELP backstop_drill_last_run_timestamp_seconds When the last `backstop drill` finished (Unix time).\n"
		   "# TYPE backstop_drill_last_run_timestamp_seconds gauge\nbackstop_drill_last_run_timestamp_seconds 1795708800\n"
		   "# HELP backstop_drill_last_success 1 when the last drill recovered its table exactly, 0 when it failed.\n"
		   "# TYPE backstop_drill_last_success gauge\nbackstop_drill_last_success 1\n"
		   "# HELP backstop_drill_last_rto_seconds Time the last drill took to recover the table (all phases).\n"
		   "# TYPE backstop_drill_last_rto_seconds gauge\nbackstop_drill_last_rto_seconds 1.500\n"
		   "# HELP backstop_drill_last_rpo_seconds Age of the recovery point the last drill recovered.\n"
		   "# TYPE backstop_drill_last_rpo_seconds gauge\nbackstop_drill_last_rpo_seconds 0.250\n",
		   "the metrics of a passed drill, with RTO and RPO");
	free(m);

	/* a second write replaces the first; a failed drill has no RTO or RPO */
	j = state(1795708900, false, -1, -1);
	is_int(drillstate_write(dir, j, &err), BS_OK, "written again");
	json_decref(j);
	m = metrics(dir);
	is_str(m,
		   "# HELP backstop_drill_last_run_timestamp_seconds When the last `backstop drill` finished (Unix time).\n"
		   "# TYPE backstop_drill_last_run_timestamp_seconds gauge\nbackstop_drill_last_run_timestamp_seconds 1795708900\n"
		   "# HELP backstop_drill_last_success 1 when the last drill recovered its table exactly, 0 when it failed.\n"
		   "# TYPE backstop_drill_last_success gauge\nbackstop_drill_last_success 0\n",
		   "the metrics of a failed drill: no RTO or RPO series");
	free(m);
	list_dir(dir, names, sizeof(names));
	is_str(names, DRILLSTATE_FILE, "still only the state file");
}

static void
test_metrics_ignores_what_is_not_ours(void)
{
	static const char *const bad[] = {
		"not json",
		"[1, 2]",
		"{\"ok\": true}",
		"{\"time\": \"1795708800\", \"ok\": true}",
		"{\"time\": 1795708800, \"ok\": 1}",
		"{\"time\": 1795708800}",
		NULL
	};
	char dir[256], path[300];
	char *m;

	snprintf(dir, sizeof(dir), "%s/metrics", top);
	snprintf(path, sizeof(path), "%s/" DRILLSTATE_FILE, dir);
	m = metrics(dir);
	is_str(m, "", "no directory: no series");
	free(m);
	mkdir(dir, 0700);
	m = metrics(dir);
	is_str(m, "", "no file: no series");
	free(m);
	for (int i = 0; bad[i]; i++)
	{
		write_file(path, bad[i], strlen(bad[i]));
		m = metrics(dir);
		is_str(m, "", "ignored: %s", bad[i]);
		free(m);
	}

	/* larger than DRILLSTATE_MAX_BYTES: not ours, even when it is a valid state */
	{
		const char *head = "{\"time\": 1, \"ok\": true, \"pad\": \"";
		size_t len = DRILLSTATE_MAX_BYTES + 1;
		char *big = malloc(len);

		memset(big, 'x', len);
		memcpy(big, head, strlen(head));
		memcpy(big + len - 2, "\"}", 2);
		write_file(path, big, len);
		m = metrics(dir);
		is_str(m, "", "a file of %zu bytes is ignored", len);
		free(m);
		/* one byte less (the pad one shorter) is read */
		memcpy(big + len - 3, "\"}", 2);
		write_file(path, big, len - 1);
		m = metrics(dir);
		ok(strstr(m, "backstop_drill_last_success 1\n") != NULL, "a file of %zu bytes is read", len - 1);
		free(m);
		free(big);
	}
}

/* The i-th temporary name drillstate_write tries for the state file path. */
static const char *
tmp_name(const char *path, int i)
{
	static char buf[400];

	snprintf(buf, sizeof(buf), "%s.tmp.%d", path, (int) getpid());
	if (i > 0)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), ".%d", i);
	return buf;
}

/* Whatever has a temporary name already is not ours: a symlink planted there is not followed
 * (its target keeps its content), a file is not truncated; the next name is taken. */
static void
test_taken_temporary_names(void)
{
	char dir[256], path[300], victim[300], link0[400], names[512], target[300];
	json_t *j = state(1795709100, true, 3, 1);
	bs_error err;
	struct stat sb;
	ssize_t n;

	snprintf(dir, sizeof(dir), "%s/taken", top);
	snprintf(path, sizeof(path), "%s/" DRILLSTATE_FILE, dir);
	snprintf(victim, sizeof(victim), "%s/victim", top);
	mkdir(dir, 0700);
	write_file(victim, "precious", 8);
	snprintf(link0, sizeof(link0), "%s", tmp_name(path, 0));
	if (symlink(victim, link0) != 0)
		printf("# symlink: %s\n", strerror(errno));
	write_file(tmp_name(path, 1), "someone else's", 14);
	error_clear(&err);
	is_int(drillstate_write(dir, j, &err), BS_OK, "written past a planted symlink and a file (%s)", err.message);
	is_str(read_file(victim), "precious", "the symlink's target is untouched");
	n = readlink(link0, target, sizeof(target) - 1);
	ok(n > 0 && (size_t) n == strlen(victim) && strncmp(target, victim, (size_t) n) == 0, "the symlink is left as it was");
	is_str(read_file(tmp_name(path, 1)), "someone else's", "the file is left as it was");
	ok(lstat(path, &sb) == 0 && S_ISREG(sb.st_mode) && (sb.st_mode & 0777) == 0600, "the state is a regular 0600 file");
	is_str(read_file(path), "{\"time\":1795709100,\"ok\":true,\"mode\":\"scratch\",\"rto_seconds\":3.0,\"rpo_seconds\":1.0}",
		   "holding the state");
	{
		char want[512];

		snprintf(want, sizeof(want), DRILLSTATE_FILE " " DRILLSTATE_FILE ".tmp.%d " DRILLSTATE_FILE ".tmp.%d.1",
				 (int) getpid(), (int) getpid());
		list_dir(dir, names, sizeof(names));
		is_str(names, want, "no other file is left");
	}
	json_decref(j);
}

/* Every failure: an error that names what failed, the old state untouched, no temporary file. */
static void
test_failures_leave_nothing(void)
{
	char dir[256], path[300], names[512], file[256], sub[400];
	json_t *j = state(1795709000, true, 2, 1);
	bs_error err;

	snprintf(dir, sizeof(dir), "%s/fail", top);
	snprintf(path, sizeof(path), "%s/" DRILLSTATE_FILE, dir);

	/* data_dir cannot be created: its parent is a file */
	snprintf(file, sizeof(file), "%s/plainfile", top);
	write_file(file, "x", 1);
	snprintf(sub, sizeof(sub), "%s/data", file);
	error_clear(&err);
	is_int(drillstate_write(sub, j, &err), BS_ERR, "refused: data_dir under a file");
	ok(strstr(err.message, "could not create directory \"") != NULL && strstr(err.message, "/plainfile/data\"") != NULL,
	   "names the directory: %s", err.message);

	/* the temporary file cannot be created: every name it may take is a directory's */
	mkdir(dir, 0700);
	for (int i = 0; i < DRILLSTATE_TMP_TRIES; i++)
		mkdir(tmp_name(path, i), 0700);
	error_clear(&err);
	is_int(drillstate_write(dir, j, &err), BS_ERR, "refused: every temporary name is taken");
	ok(strncmp(err.message, "could not create \"", 18) == 0 && strstr(err.message, ".tmp.") != NULL &&
	   strstr(err.message, "File exists") != NULL, "names the temporary file: %s", err.message);
	for (int i = 0; i < DRILLSTATE_TMP_TRIES; i++)
		rmdir(tmp_name(path, i));

	/* writing fails part-way (the file size limit: EFBIG) */
	{
		struct rlimit saved, small;

		signal(SIGXFSZ, SIG_IGN);
		getrlimit(RLIMIT_FSIZE, &saved);
		small = saved;
		small.rlim_cur = 10;
		setrlimit(RLIMIT_FSIZE, &small);
		error_clear(&err);
		is_int(drillstate_write(dir, j, &err), BS_ERR, "refused: the write fails");
		setrlimit(RLIMIT_FSIZE, &saved);
		signal(SIGXFSZ, SIG_DFL);
		ok(strncmp(err.message, "could not write \"", 17) == 0 && strstr(err.message, "File too large") != NULL,
		   "says the write failed and why: %s", err.message);
	}
	list_dir(dir, names, sizeof(names));
	is_str(names, "", "the temporary file is removed after a failed write");

	/* the rename fails (the state's name is a directory that is not empty) */
	mkdir(path, 0700);
	snprintf(sub, sizeof(sub), "%s/keep", path);
	write_file(sub, "x", 1);
	error_clear(&err);
	is_int(drillstate_write(dir, j, &err), BS_ERR, "refused: the rename fails");
	ok(strncmp(err.message, "could not rename \"", 18) == 0, "says the rename failed: %s", err.message);
	list_dir(dir, names, sizeof(names));
	is_str(names, DRILLSTATE_FILE, "the temporary file is removed after a failed rename");
	list_dir(path, names, sizeof(names));
	is_str(names, "keep", "what had the state's name is untouched");
	json_decref(j);
}

int
main(void)
{
	if (mkdtemp(top) == NULL)
	{
		perror("mkdtemp");
		return 1;
	}
	test_write_and_metrics();
	test_metrics_ignores_what_is_not_ours();
	test_taken_temporary_names();
	test_failures_leave_nothing();
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", top);
	}
	return done_testing();
}
