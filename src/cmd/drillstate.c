/* drillstate.c — the last drill's result, kept in DATA_DIR for the archiver's /metrics. */
#include "drillstate.h"
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int
drillstate_write(const char *data_dir, const json_t *state, bs_error *err)
{
	strbuf		path = STRBUF_INIT,
				tmp = STRBUF_INIT;
	char	   *text = json_dumps(state, JSON_COMPACT);
	size_t		len = strlen(text);
	int			fd = -1;
	bool		made_tmp = false;	/* the temporary file exists (remove it on failure) */
	int			rc = BS_ERR;

	if (mkdir(data_dir, 0700) != 0 && errno != EEXIST)
	{
		error_set_errno(err, errno, "could not create directory \"%s\"", data_dir);
		goto out;
	}
	strbuf_printf(&path, "%s/%s", data_dir, DRILLSTATE_FILE);
	/* A new file of our own, never one that is there (a symlink planted at the name is not
	 * followed, a file is not truncated): taken, the next name is tried. */
	for (int i = 0; i < DRILLSTATE_TMP_TRIES; i++)
	{
		strbuf_reset(&tmp);
		strbuf_printf(&tmp, "%s.tmp.%d", path.data, (int) getpid());
		if (i > 0)
			strbuf_printf(&tmp, ".%d", i);
		fd = open(tmp.data, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	if (fd < 0)
	{
		error_set_errno(err, errno, "could not create \"%s\"", tmp.data);
		goto out;
	}
	made_tmp = true;
	for (size_t off = 0; off < len;)
	{
		ssize_t		n = write(fd, text + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
		{
			error_set_errno(err, errno, "could not write \"%s\"", tmp.data);
			goto out;
		}
		off += (size_t) n;
	}
	if (fsync(fd) != 0)
	{
		error_set_errno(err, errno, "could not fsync \"%s\"", tmp.data);
		goto out;
	}
	if (close(fd) != 0)
	{
		fd = -1;
		error_set_errno(err, errno, "could not close \"%s\"", tmp.data);
		goto out;
	}
	fd = -1;
	if (rename(tmp.data, path.data) != 0)
	{
		error_set_errno(err, errno, "could not rename \"%s\" to \"%s\"", tmp.data, path.data);
		goto out;
	}
	made_tmp = false;
	rc = fileio_fsync_dir(data_dir, err);
out:
	if (fd >= 0)
		close(fd);
	/* Every failure before the rename: the partial file goes, whichever step failed. */
	if (made_tmp)
		unlink(tmp.data);
	free(text);
	strbuf_free(&path);
	strbuf_free(&tmp);
	return rc;
}

void
drillstate_metrics(const char *data_dir, strbuf *out)
{
	strbuf		path = STRBUF_INIT;
	json_t	   *j;
	json_error_t jerr;
	FILE	   *f;
	char	   *buf;
	size_t		n;

	strbuf_printf(&path, "%s/%s", data_dir, DRILLSTATE_FILE);
	f = fopen(path.data, "r");
	strbuf_free(&path);
	if (f == NULL)
		return;
	/* Bounded: one byte more than allowed tells that it is too large. */
	buf = xmalloc(DRILLSTATE_MAX_BYTES + 1);
	n = fread(buf, 1, DRILLSTATE_MAX_BYTES + 1, f);
	fclose(f);
	j = n <= DRILLSTATE_MAX_BYTES ? json_loadb(buf, n, 0, &jerr) : NULL;
	free(buf);
	if (!json_is_object(j) || !json_is_integer(json_object_get(j, "time")) || !json_is_boolean(json_object_get(j, "ok")))
	{
		json_decref(j);
		return;
	}
	strbuf_printf(out,
				  "# HELP backstop_drill_last_run_timestamp_seconds When the last `backstop drill` finished (Unix time).\n"
				  "# TYPE backstop_drill_last_run_timestamp_seconds gauge\nbackstop_drill_last_run_timestamp_seconds %lld\n"
				  "# HELP backstop_drill_last_success 1 when the last drill recovered its table exactly, 0 when it failed.\n"
				  "# TYPE backstop_drill_last_success gauge\nbackstop_drill_last_success %d\n",
				  (long long) json_integer_value(json_object_get(j, "time")), json_is_true(json_object_get(j, "ok")) ? 1 : 0);
	if (json_is_number(json_object_get(j, "rto_seconds")))
		strbuf_printf(out, "# HELP backstop_drill_last_rto_seconds Time the last drill took to recover the table (all phases).\n"
					  "# TYPE backstop_drill_last_rto_seconds gauge\nbackstop_drill_last_rto_seconds %.3f\n",
					  json_number_value(json_object_get(j, "rto_seconds")));
	if (json_is_number(json_object_get(j, "rpo_seconds")))
		strbuf_printf(out, "# HELP backstop_drill_last_rpo_seconds Age of the recovery point the last drill recovered.\n"
					  "# TYPE backstop_drill_last_rpo_seconds gauge\nbackstop_drill_last_rpo_seconds %.3f\n",
					  json_number_value(json_object_get(j, "rpo_seconds")));
	json_decref(j);
}
