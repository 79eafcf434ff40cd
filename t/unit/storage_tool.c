/* storage_tool.c — command-line front end to the storage API, used by the Perl integration tests. */
#include "cli.h"
#include "config.h"
#include "log.h"
#include "storage.h"
#include "storage_config.h"
#include "storage_crypt.h"

#include <errno.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Usage: storage_tool [--storage URL] [--s3-... options] [--encryption-key-file FILE] COMMAND ARGS
 *   put KEY [FILE]            upload FILE (default stdin), streamed in 1 MiB writes
 *   put-abort KEY [FILE]      write everything, then abort instead of committing
 *   get KEY [OFFSET [LENGTH]] write the object (or range) to stdout
 *   head KEY                  print "exists SIZE MTIME" or "missing"
 *   list [PREFIX]             print "KEY<TAB>SIZE" per object
 *   list-after PREFIX KEY     likewise, only the keys after KEY
 *   delete KEY
 *   delete-many [FILE]        delete the keys of FILE (default stdin), one per line
 *   crypt-speed MIB           seal and open MIB MiB in memory (no storage): MiB/s of each
 * On failure prints "storage_tool: ERROR [CODE http=N]: message" and exits 1.
 * Objects are read and written as stored (encrypted ones included), unless a key file is
 * given: then through the encryption layer, as Backstop does (encryption.json created in an
 * empty location).
 */

static int
stdout_sink(void *ctx, const void *data, size_t len, bs_error *err)
{
	(void) ctx;
	if (fwrite(data, 1, len, stdout) != len)
		return error_set_errno(err, errno, "could not write to stdout");
	return BS_OK;
}

static int
print_cb(void *ctx, const char *key, uint64_t size, bs_error *err)
{
	(void) ctx;
	(void) err;
	printf("%s\t%llu\n", key, (unsigned long long) size);
	return BS_OK;
}

static int
put_file(storage *st, const char *key, const char *file, bool abort_it, bs_error *err)
{
	FILE	   *in = (file && strcmp(file, "-") != 0) ? fopen(file, "rb") : stdin;
	storage_writer *w;
	char	   *buf;
	size_t		n;

	if (in == NULL)
		return error_set_errno(err, errno, "could not open \"%s\"", file);
	if (storage_writer_open(st, key, &w, err) != BS_OK)
		return BS_ERR;
	buf = xmalloc(1 << 20);
	while ((n = fread(buf, 1, 1 << 20, in)) > 0)
	{
		if (storage_writer_write(w, buf, n, err) != BS_OK)
		{
			storage_writer_abort(w);
			free(buf);
			return BS_ERR;
		}
	}
	free(buf);
	if (ferror(in))
	{
		storage_writer_abort(w);
		return error_set(err, ERRCODE_IO, "could not read input");
	}
	if (in != stdin)
		fclose(in);
	if (abort_it)
	{
		storage_writer_abort(w);
		return BS_OK;
	}
	return storage_writer_commit(w, err);
}

static int
delete_many(storage *st, const char *file, bs_error *err)
{
	FILE	   *in = (file && strcmp(file, "-") != 0) ? fopen(file, "r") : stdin;
	storage_keys keys = {0};
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		n;
	int			rc;

	if (in == NULL)
		return error_set_errno(err, errno, "could not open \"%s\"", file);
	while ((n = getline(&line, &cap, in)) > 0)
	{
		if (line[n - 1] == '\n')
			line[--n] = '\0';
		if (n > 0)
			storage_collect_key(&keys, line, 0, err);
	}
	free(line);
	if (in != stdin)
		fclose(in);
	rc = storage_delete_many(st, (const char *const *) keys.keys, keys.count, err);
	storage_keys_free(&keys);
	return rc;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* The encryption layer's CPU cost alone: AES-256-GCM seal and open of MIB objects of 1 MiB in
 * memory (the pieces the object writer hands on), CPU time of this process. */
static int
crypt_speed(long mib, bs_error *err)
{
	uint8_t key[1][CRYPT_KEY_SIZE];
	strbuf raw = STRBUF_INIT, sealed = STRBUF_INIT, opened = STRBUF_INIT;
	double t_seal = 0, t_open = 0, t0;
	int rc = BS_OK;

	memset(key[0], 0x5a, CRYPT_KEY_SIZE);
	strbuf_reserve(&raw, 1 << 20);
	memset(raw.data, 'x', 1 << 20);
	raw.len = 1 << 20;
	for (long i = 0; i < mib && rc == BS_OK; i++)
	{
		t0 = now_s();
		rc = crypt_seal_buffer(key[0], "bench/obj", raw.data, raw.len, &sealed, err);
		t_seal += now_s() - t0;
		t0 = now_s();
		if (rc == BS_OK)
			rc = crypt_open_buffer((const uint8_t (*)[CRYPT_KEY_SIZE]) key, 1, "bench/obj", sealed.data, sealed.len,
								   0, &opened, err);
		t_open += now_s() - t0;
		if (rc == BS_OK && (opened.len != raw.len || memcmp(opened.data, raw.data, raw.len) != 0))
			rc = error_set(err, ERRCODE_INTERNAL, "opened content differs");
	}
	if (rc == BS_OK)
		printf("seal %.1f open %.1f\n", (double) mib / t_seal, (double) mib / t_open);
	strbuf_free(&raw);
	strbuf_free(&sealed);
	strbuf_free(&opened);
	return rc;
}

int
main(int argc, char **argv)
{
	static const char *const allowed[] = {
		"storage", "s3_endpoint", "s3_region", "s3_uri_style", "s3_ca_file", "s3_verify_tls",
		"s3_access_key_id", "s3_secret_access_key", "s3_session_token", "s3_multipart_threshold",
		"s3_timeout", "retries", "retry_base_delay", "encryption_key_file", "encryption_old_key_file", NULL
	};
	bs_config	cfg;
	bs_error	err;
	char	  **pos = NULL;
	int			npos = 0;
	bool		usage = false;
	storage    *st = NULL;
	const char *cmd;
	int			rc = BS_ERR;

	error_clear(&err);
	if (config_load(&cfg, argc - 1, argv + 1, allowed, &pos, &npos, &usage, &err) != BS_OK)
	{
		fprintf(stderr, "storage_tool: ERROR: %s\n", err.message);
		return 2;
	}
	log_configure(LOG_WARNING, 0);
	cli_apply_derived_defaults(&cfg);
	if (npos < 1)
	{
		fprintf(stderr, "usage: storage_tool [--storage URL] put|put-abort|get|head|list|list-after|delete|delete-many ...\n");
		return 2;
	}
	cmd = pos[0];
	if (strcmp(cmd, "crypt-speed") == 0 && npos >= 2)
	{
		rc = crypt_speed(atol(pos[1]) > 0 ? atol(pos[1]) : 64, &err);
		goto out;
	}
	if (config_get(&cfg, CFG_ENCRYPTION_KEY_FILE) != NULL)
	{
		if (storage_config_open(config_get(&cfg, CFG_STORAGE), &cfg, &st, &err) != BS_OK ||
			storage_crypt_prepare_write(st, &err) != BS_OK)
			goto out;
	}
	else if (storage_config_open_raw(config_get(&cfg, CFG_STORAGE), &cfg, &st, &err) != BS_OK)
		goto out;
	if ((strcmp(cmd, "put") == 0 || strcmp(cmd, "put-abort") == 0) && npos >= 2)
		rc = put_file(st, pos[1], npos >= 3 ? pos[2] : NULL, strcmp(cmd, "put-abort") == 0, &err);
	else if (strcmp(cmd, "get") == 0 && npos >= 2)
	{
		uint64_t	off = npos >= 3 ? strtoull(pos[2], NULL, 10) : 0;
		uint64_t	len = npos >= 4 ? strtoull(pos[3], NULL, 10) : 0;

		rc = storage_get(st, pos[1], off, len, stdout_sink, NULL, &err);
		if (fflush(stdout) != 0 && rc == BS_OK)
			rc = error_set_errno(&err, errno, "could not write to stdout");
	}
	else if (strcmp(cmd, "head") == 0 && npos >= 2)
	{
		bool		exists;
		storage_stat sst;

		rc = storage_head(st, pos[1], &exists, &sst, &err);
		if (rc == BS_OK && exists)
			printf("exists %llu %lld\n", (unsigned long long) sst.size, (long long) sst.mtime);
		else if (rc == BS_OK)
			printf("missing\n");
	}
	else if (strcmp(cmd, "list") == 0)
		rc = storage_list(st, npos >= 2 ? pos[1] : "", print_cb, NULL, &err);
	else if (strcmp(cmd, "list-after") == 0 && npos >= 3)
		rc = storage_list_after(st, pos[1], pos[2], print_cb, NULL, &err);
	else if (strcmp(cmd, "delete") == 0 && npos >= 2)
		rc = storage_delete(st, pos[1], &err);
	else if (strcmp(cmd, "delete-many") == 0)
		rc = delete_many(st, npos >= 2 ? pos[1] : NULL, &err);
	else
	{
		fprintf(stderr, "storage_tool: bad command line\n");
		storage_close(st);
		config_free(&cfg);
		free(pos);
		return 2;
	}
out:
	if (rc != BS_OK)
		fprintf(stderr, "storage_tool: ERROR [%s http=%d]: %s\n", err.code, err.http_status, err.message);
	storage_close(st);
	config_free(&cfg);
	free(pos);
	return rc == BS_OK ? 0 : 1;
}
