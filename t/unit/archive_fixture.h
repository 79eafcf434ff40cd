/* archive_fixture.h — synthetic file:// archives for the unit tests of commands: segments, base copies, a command run with its output captured. */
#ifndef BACKSTOP_ARCHIVE_FIXTURE_H
#define BACKSTOP_ARCHIVE_FIXTURE_H

#include "capture.h"
#include "cli.h"
#include "manifest.h"
#include "manifest_head.h"
#include "manifest_json.h"
#include "manifest_keys.h"
#include "manifest_store.h"
#include "isotime.h"
#include "ident.h"
#include "object.h"
#include "records.h"
#include "segment.h"
#include "strbuf.h"
#include "tap.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BASE_LSN UINT64_C(0x1500000)
#define PG_EPOCH_OFFSET_US INT64_C(946684800000000)
/* 2026-11-26 16:00:00 UTC, the archive's first second. */
#define T0 INT64_C(1795708800000000)
#define SEC INT64_C(1000000)

static char url[128];
static storage *st;

/* Run a command's handler as `--storage URL args...` would, its stdout in out, its stderr in errout
 * (allowed: the options it takes). */
static inline int
run_command(int (*handler) (bs_config *, int, char **), const char *const *allowed, const char *const *args)
{
	char *argv[32];
	int argc = 0;
	bs_config cfg;
	bs_error err;
	char **pos = NULL;
	int npos = 0;
	bool usage = false;
	capture c;
	int rc;

	argv[argc++] = "--storage";
	argv[argc++] = url;
	for (int i = 0; args[i]; i++)
		argv[argc++] = (char *) args[i];
	if (config_load(&cfg, argc, argv, allowed, &pos, &npos, &usage, &err) != BS_OK)
	{
		printf("# config_load: %s\n", err.message);
		return -1;
	}
	capture_begin(&c);
	rc = handler(&cfg, npos, pos);
	capture_end(&c);
	config_free(&cfg);
	free(pos);
	return rc;
}

/* `backstop COMMAND --storage URL args...` as the binary runs it (cli_main), captured likewise. */
static inline int
run_cli(const char *command, const char *const *args)
{
	char *argv[32];
	int argc = 0;
	capture c;
	int rc;

	argv[argc++] = "backstop";
	argv[argc++] = (char *) command;
	argv[argc++] = "--storage";
	argv[argc++] = url;
	for (int i = 0; args[i]; i++)
		argv[argc++] = (char *) args[i];
	argv[argc] = NULL;
	capture_begin(&c);
	rc = cli_main(argc, argv);
	capture_end(&c);
	return rc;
}

/* `backstop args...` exactly as given (no --storage added: for commands that take none, or to
 * name another), captured likewise.  The arguments are copied: cli_main overwrites secrets
 * given as flags in place, as it does in the process's own argv. */
static inline int
run_backstop(const char *const *args)
{
	char *argv[32];
	char *copies[32];
	int argc = 0;
	capture c;
	int rc;

	argv[argc++] = "backstop";
	for (int i = 0; args[i]; i++)
		argv[argc++] = copies[i] = xstrdup(args[i]);
	argv[argc] = NULL;
	capture_begin(&c);
	rc = cli_main(argc, argv);	/* (it may also replace -c and -f in argv) */
	capture_end(&c);
	for (int i = 0; i < argc - 1; i++)
		free(copies[i]);
	return rc;
}

/* A usage error: the arguments (NULL-terminated) and what the message must say. */
typedef struct usage_case
{
	const char *args[12];
	const char *msg;
} usage_case;

/* Each case run through run (run_command or run_cli of command): exit 2, the message and
 * command's usage on stderr, nothing on stdout. */
static inline void
check_usage_errors(int (*run) (const char *const *), const char *command, const usage_case *cases, size_t n)
{
	char usage[64];

	snprintf(usage, sizeof(usage), "Usage: backstop %s", command);
	for (size_t i = 0; i < n; i++)
	{
		int rc = run(cases[i].args);

		if (!ok(rc == EXIT_USAGE && strstr(errout, cases[i].msg) && strstr(errout, usage) && out[0] == '\0',
				"usage error %zu: %s", i, cases[i].msg))
			show();
	}
}

/* One record to write: commit at lsn (ends at lsn + 0x80), t_us after T0. */
typedef struct rec
{
	char op;
	uint64_t lsn;
	uint32_t xid;
	int64_t t_us;
	uint32_t layout;
	const char *const *old_vals;	/* D: the key (other columns null); U: none */
	const char *const *new_vals;	/* I and U */
} rec;

/* Store the records as one segment of relid and add it to m. */
static inline void
add_segment(manifest *m, const rec *recs, int n)
{
	strbuf raw = STRBUF_INIT;
	manifest_segment seg;
	object_info info;
	bs_error err;

	segment_write_header(&raw);
	memset(&seg, 0, sizeof(seg));
	for (int i = 0; i < n; i++)
	{
		segment_record r;
		strbuf o = STRBUF_INIT;
		strbuf nw = STRBUF_INIT;

		memset(&r, 0, sizeof(r));
		r.op = recs[i].op;
		r.commit_lsn = recs[i].lsn;
		r.end_lsn = recs[i].lsn + 0x80;
		r.xid = recs[i].xid;
		r.commit_time = T0 + recs[i].t_us - PG_EPOCH_OFFSET_US;
		r.layout_id = recs[i].layout;
		r.old_kind = SEGMENT_OLD_NONE;
		if (recs[i].old_vals)
		{
			tuple(&o, 2, recs[i].old_vals);
			r.old_kind = 'K';
			r.old_tuple = (const uint8_t *) o.data;
			r.old_len = o.len;
		}
		if (recs[i].new_vals)
		{
			tuple(&nw, 2, recs[i].new_vals);
			r.new_tuple = (const uint8_t *) nw.data;
			r.new_len = nw.len;
		}
		if (segment_write_record(&raw, &r, &err) != BS_OK)
			printf("# segment_write_record: %s\n", err.message);
		strbuf_free(&o);
		strbuf_free(&nw);
		if (i == 0)
		{
			seg.first_lsn = r.commit_lsn;
			seg.first_time = T0 + recs[i].t_us;
		}
		if (r.end_lsn > seg.last_end_lsn)
			seg.last_end_lsn = r.end_lsn;
		seg.last_time = T0 + recs[i].t_us;
	}
	seg.key = manifest_segment_key(m->relid, seg.first_lsn, seg.last_end_lsn);
	if (object_put(st, seg.key, CODEC_ZSTD, 1, raw.data, raw.len, &info, &err) != BS_OK)
		printf("# object_put: %s\n", err.message);
	seg.records = (uint64_t) n;
	memcpy(seg.sha256, info.stored_sha256, 65);
	seg.size = info.stored_size;
	seg.raw_size = info.raw_size;
	manifest_add_segment(m, &seg);
	free(seg.key);
	strbuf_free(&raw);
}

/* A base copy of m at lsn, t_us after T0: the COPY text rows (nrows of them) stored as one chunk. */
static inline void
add_base(manifest *m, uint64_t lsn, int64_t t_us, const char *rows, int nrows)
{
	manifest_chunk chunk;
	manifest_base base;
	object_info info;
	bs_error err;

	memset(&chunk, 0, sizeof(chunk));
	chunk.key = manifest_base_chunk_key(m->relid, lsn, 1);
	if (object_put(st, chunk.key, CODEC_ZSTD, 3, rows, strlen(rows), &info, &err) != BS_OK)
		printf("# object_put: %s\n", err.message);
	memcpy(chunk.sha256, info.stored_sha256, 65);
	chunk.size = info.stored_size;
	chunk.raw_size = info.raw_size;
	chunk.rows = (uint64_t) nrows;
	memset(&base, 0, sizeof(base));
	base.lsn = lsn;
	base.time = T0 + t_us;
	base.rows = (uint64_t) nrows;
	base.nchunks = 1;
	base.chunks = &chunk;
	manifest_add_base(m, &base);
	free(chunk.key);
}

/* A table (id integer, name text) with a base copy of the given COPY text at BASE_LSN. */
static inline manifest *
new_table(uint32_t relid, const char *name, const char *rows, int nrows)
{
	manifest *m = manifest_new(relid, "public", name);
	manifest_column cols[2] = {{"id", 23, -1, "integer", true, true, NULL}, {"name", 25, -1, "text", false, false, NULL}};

	manifest_add_layout(m, BASE_LSN, 'd', 2, cols);
	add_base(m, BASE_LSN, 0, rows, nrows);
	return m;
}

/* The archive in a new temporary directory (dir: a mkdtemp template); storage opened on it. */
static inline int
fixture_open(char *dir)
{
	storage_options so;
	bs_error err;

	setenv("TZ", "UTC", 1);
	if (mkdtemp(dir) == NULL)
		return BS_ERR;
	snprintf(url, sizeof(url), "file://%s", dir);
	memset(&so, 0, sizeof(so));
	if (storage_open(url, &so, &st, &err) != BS_OK)
	{
		printf("Bail out! storage_open: %s\n", err.message);
		return BS_ERR;
	}
	return BS_OK;
}

/*
 * fixture_open for commands run as a user would: whatever a command writes to its data_dir goes
 * to dir/data (data_dir, size bytes), and no control token or configuration file comes from the
 * environment.
 */
static inline int
fixture_open_commands(char *dir, char *data_dir, size_t size)
{
	if (fixture_open(dir) != BS_OK)
		return BS_ERR;
	snprintf(data_dir, size, "%s/data", dir);
	setenv("BACKSTOP_DATA_DIR", data_dir, 1);
	unsetenv("BACKSTOP_CONTROL_TOKEN");
	unsetenv("BACKSTOP_CONFIG");
	return BS_OK;
}

static inline void
fixture_close(const char *dir)
{
	char cmd[256];

	storage_close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", dir);
}

static inline void
store(manifest *m)
{
	bs_error err;

	if (manifest_store(st, m, &err) != BS_OK)
		printf("# manifest_store: %s\n", err.message);
}

#endif
