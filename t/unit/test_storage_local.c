/* test_storage_local.c — unit tests for storage URLs, key rules and the file:// driver. */
#include "storage.h"
#include "storage_local.h"
#include "tap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct listing
{
	strbuf		text;			/* "key size\n" per entry */
	int			count;
	int			stop_after;		/* fail the callback after this many, 0: never */
} listing;

static int
list_cb(void *ctx, const char *key, uint64_t size, bs_error *err)
{
	listing *l = ctx;

	if (l->stop_after && l->count >= l->stop_after)
		return error_set(err, ERRCODE_INTERNAL, "callback stop");
	strbuf_printf(&l->text, "%s %llu\n", key, (unsigned long long) size);
	l->count++;
	return BS_OK;
}

static const char *
list_all(storage *st, const char *prefix, listing *l)
{
	bs_error err;

	strbuf_reset(&l->text);
	strbuf_append_str(&l->text, "");
	l->count = 0;
	if (storage_list(st, prefix, list_cb, l, &err) != BS_OK)
	{
		printf("# list failed: %s\n", err.message);
		return "(error)";
	}
	return l->text.data ? l->text.data : "";
}

static const char *
list_after(storage *st, const char *prefix, const char *after, listing *l)
{
	bs_error err;

	strbuf_reset(&l->text);
	strbuf_append_str(&l->text, "");
	l->count = 0;
	if (storage_list_after(st, prefix, after, list_cb, l, &err) != BS_OK)
	{
		printf("# list failed: %s\n", err.message);
		return "(error)";
	}
	return l->text.data ? l->text.data : "";
}

static int
append_sink(void *ctx, const void *data, size_t len, bs_error *err)
{
	(void) err;
	strbuf_append((strbuf *) ctx, data, len);
	return BS_OK;
}

static int
failing_sink(void *ctx, const void *data, size_t len, bs_error *err)
{
	(void) ctx;
	(void) data;
	(void) len;
	return error_set(err, ERRCODE_INTERNAL, "sink refused");
}

static int
count_entry(void *ctx, const char *key, uint64_t size, bs_error *err)
{
	(void) key;
	(void) size;
	(void) err;
	(*(int *) ctx)++;
	return BS_OK;
}

/* Count directory entries that look like our temp files. */
static int
count_temp_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, STORAGE_TEMP_MARKER, strlen(STORAGE_TEMP_MARKER)) == 0)
			n++;
	closedir(d);
	return n;
}

/* A sink that truncates the file being read after the first piece: the read must not pass short. */
typedef struct shrink_ctx
{
	const char *path;
	size_t got;
} shrink_ctx;

static int
shrinking_sink(void *ctx, const void *data, size_t len, bs_error *err)
{
	shrink_ctx *s = ctx;

	(void) data;
	(void) err;
	if (s->got == 0 && truncate(s->path, 1) != 0)
		return error_set_errno(err, errno, "truncate");
	s->got += len;
	return BS_OK;
}

/* What the file system can refuse even to root: files in the way, directories as keys,
 * symbolic-link loops, a file shrinking while it is read. */
static void
test_refusals(const char *root)
{
	char url[512];
	char path[512];
	char other[512];
	storage *st = NULL;
	storage *wrapper = NULL;
	bs_error err;
	strbuf buf = STRBUF_INIT;
	listing l = {STRBUF_INIT, 0, 0};
	bool exists = false;
	bool removed = true;
	const char *const dirs[] = {"d1", "d2", "gone"};
	int fd;

	snprintf(url, sizeof(url), "file://%s/refusals", root);
	if (storage_open(url, NULL, &st, &err) != BS_OK)
	{
		ok(0, "open %s: %s", url, err.message);
		return;
	}
	ok(storage_put(st, "f", "file", 4, &err) == BS_OK, "a key f");
	ok(storage_put(st, "f/x", "x", 1, &err) == BS_ERR && strstr(err.message, "a file is in the way"),
	   "a key below a file: refused (%s)", err.message);
	ok(storage_put_if(st, "f/x", "x", 1, NULL, &err) == BS_ERR && strstr(err.message, "a file is in the way"),
	   "put_if below a file: refused");
	is_str(list_all(st, "f/", &l), "", "listing below a file: empty");

	/* A key whose path is a directory. */
	ok(storage_put(st, "d1/x", "1", 1, &err) == BS_OK && storage_put(st, "d2/x", "22", 2, &err) == BS_OK,
	   "two directories");
	ok(storage_delete(st, "d1", &err) == BS_ERR && strstr(err.message, "could not delete"),
	   "deleting a directory as a key: refused (%s)", err.message);
	ok(storage_delete_many(st, dirs, 3, &err) == BS_ERR && strstr(err.message, "2 of 3 keys not deleted") &&
	   strstr(err.message, "could not delete"), "delete_many: both named in the count (%s)", err.message);
	ok(storage_get_all(st, "d1", &buf, &err) == BS_ERR && strcmp(err.code, ERRCODE_NOT_FOUND) == 0,
	   "a directory is no object to read");

	/* Symbolic links: a loop cannot be opened or stated; links are not listed. */
	snprintf(path, sizeof(path), "%s/refusals/loop", root);
	ok(symlink("loop", path) == 0, "a symbolic link to itself");
	ok(storage_get_all(st, "loop", &buf, &err) == BS_ERR && strstr(err.message, "could not open"),
	   "get of a link loop: refused (%s)", err.message);
	ok(storage_head(st, "loop", &exists, NULL, &err) == BS_ERR && strstr(err.message, "could not stat"),
	   "head of a link loop: refused");
	snprintf(path, sizeof(path), "%s/refusals/dangling", root);
	ok(symlink("nowhere", path) == 0, "a dangling link");
	l.count = 0;
	strbuf_reset(&l.text);
	ok(strcmp(list_all(st, "", &l), "d1/x 1\nd2/x 2\nf 4\n") == 0, "links are not listed, loops and dangling ones alike");

	/* A file that shrinks while it is read. */
	{
		size_t big = 600 * 1024;
		char *data = xcalloc(1, big);
		shrink_ctx sc = {path, 0};

		snprintf(path, sizeof(path), "%s/refusals/shrinks", root);
		ok(storage_put(st, "shrinks", data, big, &err) == BS_OK, "a 600 KiB object");
		ok(storage_get(st, "shrinks", 0, 0, shrinking_sink, &sc, &err) == BS_ERR &&
		   strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 && strstr(err.message, "unexpected end of file"),
		   "truncated while read: refused, not short (%s)", err.message);
		free(data);
	}

	/* Adopting a file: by path, into a blocked directory, gone before the rename. */
	snprintf(path, sizeof(path), "%s/refusals/scratch1", root);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ok(fd >= 0 && write(fd, "abc", 3) == 3 && close(fd) == 0, "a scratch file");
	ok(storage_local_adopt(st, "adopted/a", path, -1, &err) == BS_OK && storage_get_all(st, "adopted/a", &buf, &err) == BS_OK &&
	   buf.len == 3, "adopted by path (opened by the driver)");
	snprintf(path, sizeof(path), "%s/refusals/scratch2", root);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ok(storage_local_adopt(st, "f/a", path, fd, &err) == BS_ERR && strstr(err.message, "a file is in the way"),
	   "adopting below a file: refused");
	ok(unlink(path) == 0 && storage_local_adopt(st, "adopted/b", path, fd, &err) == BS_ERR &&
	   strstr(err.message, "could not rename"), "adopting a file gone from its path: refused (%s)", err.message);
	if (fd >= 0)
		close(fd);
	ok(storage_local_adopt(st, "adopted/c", "relative/path", -1, &err) == BS_ERR && strstr(err.message, "not an absolute path"),
	   "adopting a relative path: refused");
	ok(storage_local_adopt(st, "adopted/c", path, -1, &err) == BS_ERR && strstr(err.message, "could not open"),
	   "adopting a missing file: refused");

	/* The local-only functions on a storage of another kind. */
	snprintf(other, sizeof(other), "file://%s/refusals", root);
	{
		storage_options o;

		storage_options_init(&o);
		ok(storage_open(other, &o, &wrapper, &err) == BS_OK, "the same archive through the encryption layer");
	}
	if (wrapper)
	{
		ok(storage_local_adopt(wrapper, "k", "/x", -1, &err) == BS_ERR && strstr(err.message, "is not a local storage"),
		   "adopt needs a local storage");
		ok(storage_local_remove_dir(wrapper, "d1", &removed, &err) == BS_ERR && !removed &&
		   strstr(err.message, "is not a local storage"), "remove_dir needs a local storage");
		ok(storage_local_list_dirs(wrapper, list_cb, &l, &err) == BS_ERR && strstr(err.message, "is not a local storage"),
		   "list_dirs needs a local storage");
		storage_close(wrapper);
	}
	ok(storage_local_remove_dir(st, "f", &removed, &err) == BS_OK && !removed, "remove_dir of a file: nothing removed");
	l.count = 0;
	strbuf_reset(&l.text);
	ok(storage_local_list_dirs(st, list_cb, &l, &err) == BS_OK && l.count == 3,
	   "list_dirs: the directories only, not the file or the links (%d)", l.count);
	storage_close(st);

	snprintf(path, sizeof(path), "%s/nothing-here", root);
	ok(storage_local_open(path, &st, &err) == BS_OK, "a missing root opens");
	l.count = 0;
	ok(storage_local_list_dirs(st, list_cb, &l, &err) == BS_OK && l.count == 0, "list_dirs of a missing root: none");
	storage_close(st);
	ok(storage_local_open("relative/root", &st, &err) == BS_ERR && strstr(err.message, "not an absolute path"),
	   "a relative root: refused");
	/* The file system's root as storage root: a listing starts at "/" itself. */
	ok(storage_local_open("/", &st, &err) == BS_OK, "\"/\" as root");
	l.count = 0;
	ok(st && storage_list(st, "zz-backstop-no-such-key", list_cb, &l, &err) == BS_OK && l.count == 0,
	   "a listing of a prefix without a slash under \"/\": nothing");
	storage_close(st);
	strbuf_free(&buf);
	strbuf_free(&l.text);
}

int
main(void)
{
	char root[] = "/tmp/backstop-test-storage-XXXXXX";
	char url[1024];
	storage *st = NULL;
	storage_writer *w = NULL;
	bs_error err;
	strbuf buf = STRBUF_INIT;
	listing l = {STRBUF_INIT, 0, 0};
	bool exists;
	storage_stat sst;
	char path[512];

	if (mkdtemp(root) == NULL)
	{
		perror("mkdtemp");
		return 1;
	}

	/* Key rules. */
	ok(storage_key_valid("a/b/c.seg"), "plain key valid");
	ok(storage_key_valid("tables/my table/ünïcode"), "spaces and UTF-8 valid");
	ok(!storage_key_valid(""), "empty key invalid");
	ok(!storage_key_valid("/abs"), "absolute key invalid");
	ok(!storage_key_valid("a//b"), "empty component invalid");
	ok(!storage_key_valid("a/../b"), "dot-dot component invalid");
	ok(!storage_key_valid("./a"), "dot component invalid");
	ok(!storage_key_valid("a/"), "trailing slash invalid");
	ok(!storage_key_valid("a\nb"), "control character invalid");
	ok(!storage_key_valid("a/" STORAGE_TEMP_MARKER "x"), "temp marker reserved");

	/* URL forms. */
	ok(storage_open("/no/scheme", NULL, &st, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0, "URL without scheme rejected");
	ok(storage_open("file://relative/path", NULL, &st, &err) == BS_ERR, "relative file URL rejected");
	ok(storage_open("s3://Bad_Bucket/x", NULL, &st, &err) == BS_ERR &&
	   strstr(err.message, "bucket") != NULL, "invalid bucket name rejected");
	ok(storage_open("s3://AKIA:hunter2@bucket/x", NULL, &st, &err) == BS_ERR &&
	   strstr(err.message, "hunter2") == NULL, "credentials in URL rejected without echoing them");
	ok(storage_open("http://x", NULL, &st, &err) == BS_ERR, "unknown scheme rejected");

	/* A root that is a regular file. */
	snprintf(path, sizeof(path), "%s/plainfile", root);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	snprintf(url, sizeof(url), "file://%s", path);
	ok(storage_open(url, NULL, &st, &err) == BS_ERR, "file as root rejected");

	/* The real root: a subdirectory that does not exist yet. */
	snprintf(url, sizeof(url), "file://%s/archive/", root);
	ok(storage_open(url, NULL, &st, &err) == BS_OK, "open file:// storage");
	if (st == NULL)
		return done_testing();
	ok(strstr(storage_describe(st), "archive") != NULL, "describe names the URL");
	is_str(list_all(st, "", &l), "", "list of a missing root is empty");
	ok(storage_get_all(st, "nope", &buf, &err) == BS_ERR && strcmp(err.code, ERRCODE_NOT_FOUND) == 0,
	   "get of a missing key fails with NOT_FOUND");
	ok(storage_head(st, "nope", &exists, &sst, &err) == BS_OK && !exists, "head of a missing key");

	/* put creates parents, get reads back. */
	ok(storage_put(st, "t/a/one", "hello world", 11, &err) == BS_OK, "put nested key");
	ok(storage_get_all(st, "t/a/one", &buf, &err) == BS_OK && buf.len == 11 &&
	   memcmp(buf.data, "hello world", 11) == 0, "get_all returns the content");
	ok(storage_head(st, "t/a/one", &exists, &sst, &err) == BS_OK && exists && sst.size == 11 &&
	   sst.mtime > 0, "head reports size and mtime");
	snprintf(path, sizeof(path), "%s/archive/t/a/one", root);
	{
		struct stat sb;

		ok(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0640, "object file mode is 0640");
	}

	/* Ranges. */
	strbuf_reset(&buf);
	ok(storage_get(st, "t/a/one", 6, 5, append_sink, &buf, &err) == BS_OK && buf.len == 5 &&
	   memcmp(buf.data, "world", 5) == 0, "range 6+5 is \"world\"");
	strbuf_reset(&buf);
	ok(storage_get(st, "t/a/one", 6, 0, append_sink, &buf, &err) == BS_OK && buf.len == 5 &&
	   memcmp(buf.data, "world", 5) == 0, "range 6 to the end");
	ok(storage_get(st, "t/a/one", 6, 6, append_sink, &buf, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_OUT_OF_RANGE) == 0, "range past the end fails");
	ok(storage_get(st, "t/a/one", 12, 0, append_sink, &buf, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_OUT_OF_RANGE) == 0, "offset past the end fails");
	strbuf_reset(&buf);
	ok(storage_get(st, "t/a/one", 11, 0, append_sink, &buf, &err) == BS_OK && buf.len == 0,
	   "from the end to the end: nothing, no error");
	ok(storage_get(st, "t/a/one", 11, 1, append_sink, &buf, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_OUT_OF_RANGE) == 0, "one byte at the end fails");
	ok(storage_get(st, "t/a/one", UINT64_MAX, 2, append_sink, &buf, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_OUT_OF_RANGE) == 0, "a range that overflows fails");
	ok(storage_get(st, "t/a/one", 0, 0, failing_sink, NULL, &err) == BS_ERR &&
	   strcmp(err.message, "sink refused") == 0, "sink error is returned unchanged");

	/* Large streamed object, read back across chunk boundaries. */
	{
		size_t big = 3 * 1024 * 1024 + 17;
		unsigned char *data = xmalloc(big);
		bool same;

		for (size_t i = 0; i < big; i++)
			data[i] = (unsigned char) (i * 2654435761u >> 13);
		ok(storage_writer_open(st, "big/obj", &w, &err) == BS_OK, "writer open");
		for (size_t off = 0; off < big; off += 100000)
			storage_writer_write(w, data + off, big - off < 100000 ? big - off : 100000, &err);
		snprintf(path, sizeof(path), "%s/archive/big", root);
		ok(storage_head(st, "big/obj", &exists, NULL, &err) == BS_OK && !exists,
		   "object not visible before commit");
		is_int(count_temp_files(path), 1, "one temp file while writing");
		is_str(list_all(st, "big/", &l), "", "temp file not listed");
		ok(storage_writer_commit(w, &err) == BS_OK, "commit");
		is_int(count_temp_files(path), 0, "no temp file after commit");
		strbuf_reset(&buf);
		ok(storage_get_all(st, "big/obj", &buf, &err) == BS_OK, "get big object");
		same = buf.len == big && memcmp(buf.data, data, big) == 0;
		ok(same, "big object round trip is byte-exact");
		strbuf_reset(&buf);
		ok(storage_get(st, "big/obj", 262140, 10, append_sink, &buf, &err) == BS_OK &&
		   buf.len == 10 && memcmp(buf.data, data + 262140, 10) == 0, "range across a read chunk");

		/* Abort leaves nothing behind. */
		ok(storage_writer_open(st, "big/aborted", &w, &err) == BS_OK, "writer open for abort");
		storage_writer_write(w, data, 1000, &err);
		storage_writer_abort(w);
		ok(storage_head(st, "big/aborted", &exists, NULL, &err) == BS_OK && !exists, "aborted object absent");
		is_int(count_temp_files(path), 0, "abort removes the temp file");
		free(data);
	}

	/* Overwrite replaces atomically; empty objects work. */
	ok(storage_put(st, "t/a/one", "bye", 3, &err) == BS_OK, "overwrite");
	ok(storage_get_all(st, "t/a/one", &buf, &err) == BS_OK && buf.len == 3 && memcmp(buf.data, "bye", 3) == 0,
	   "overwrite visible");
	ok(storage_put(st, "empty", "", 0, &err) == BS_OK, "put empty object");
	ok(storage_get_all(st, "empty", &buf, &err) == BS_OK && buf.len == 0 && buf.data && buf.data[0] == '\0',
	   "empty object reads back empty");

	/* Lexicographic, recursive listing: "a.txt" sorts before "a/..." ('.' < '/'). */
	storage_put(st, "a/b", "1", 1, &err);
	storage_put(st, "a.txt", "22", 2, &err);
	storage_put(st, "a/c/d", "333", 3, &err);
	storage_put(st, "ab", "", 0, &err);
	is_str(list_all(st, "", &l),
		   "a.txt 2\na/b 1\na/c/d 3\nab 0\nbig/obj 3145745\nempty 0\nt/a/one 3\n", "full listing in order");
	is_str(list_all(st, "a", &l), "a.txt 2\na/b 1\na/c/d 3\nab 0\n", "partial-component prefix");
	is_str(list_all(st, "a/", &l), "a/b 1\na/c/d 3\n", "directory prefix");
	is_str(list_all(st, "a/c/d", &l), "a/c/d 3\n", "exact key as prefix");
	is_str(list_all(st, "zzz/", &l), "", "missing prefix lists nothing");
	ok(storage_list(st, "../", list_cb, &l, &err) == BS_ERR, "escaping prefix rejected");
	l.stop_after = 2;
	l.count = 0;
	ok(storage_list(st, "", list_cb, &l, &err) == BS_ERR && strcmp(err.message, "callback stop") == 0 &&
	   l.count == 2, "callback error stops listing");
	l.stop_after = 0;

	/* Listing after a key: only what sorts strictly after it, in order, whatever the depth. */
	is_str(list_after(st, "", NULL, &l), list_all(st, "", &l), "no start key: the whole listing");
	is_str(list_after(st, "", "a/b", &l), "a/c/d 3\nab 0\nbig/obj 3145745\nempty 0\nt/a/one 3\n",
		   "after an existing key: the keys that follow it, not itself");
	is_str(list_after(st, "", "a", &l), "a.txt 2\na/b 1\na/c/d 3\nab 0\nbig/obj 3145745\nempty 0\nt/a/one 3\n",
		   "after a key that is a prefix of others: those follow it");
	is_str(list_after(st, "", "a/c", &l), "a/c/d 3\nab 0\nbig/obj 3145745\nempty 0\nt/a/one 3\n",
		   "after a directory's name: its keys follow it");
	is_str(list_after(st, "", "a/c0", &l), "ab 0\nbig/obj 3145745\nempty 0\nt/a/one 3\n",
		   "a directory whose keys all sort before the start key is skipped (\"a/c/d\" < \"a/c0\")");
	is_str(list_after(st, "", "a.txt", &l), "a/b 1\na/c/d 3\nab 0\nbig/obj 3145745\nempty 0\nt/a/one 3\n",
		   "'.' sorts before '/'");
	is_str(list_after(st, "a/", "a/b", &l), "a/c/d 3\n", "with a prefix");
	is_str(list_after(st, "a/", "0", &l), "a/b 1\na/c/d 3\n", "a start key before the prefix: all of it");
	is_str(list_after(st, "a/", "b", &l), "", "a start key after the prefix: nothing");
	is_str(list_after(st, "", "t/a/one", &l), "", "after the last key: nothing");
	is_str(list_after(st, "", "", &l), list_all(st, "", &l), "an empty start key is none");
	ok(storage_list_after(st, "", "../x", list_cb, &l, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0, "an invalid start key is refused");
	{
		char key[32];
		int bad = 0;

		/* Many keys in one directory, as log/<SEQ> packs are: each start key gives its successors. */
		for (int i = 1; i <= 40; i++)
		{
			snprintf(key, sizeof(key), "log/%016x.bsp", i);
			storage_put(st, key, "p", 1, &err);
		}
		for (int i = 0; i <= 40; i++)
		{
			strbuf want = STRBUF_INIT;

			for (int j = i + 1; j <= 40; j++)
				strbuf_printf(&want, "log/%016x.bsp 1\n", j);
			snprintf(key, sizeof(key), "log/%016x.bsp", i);
			if (strcmp(list_after(st, "log/", key, &l), want.data ? want.data : "") != 0)
				bad++;
			strbuf_free(&want);
		}
		is_int(bad, 0, "after each of 40 sequence keys: exactly the later ones, in order");
	}

	/* Deleting many: missing keys are no error; an invalid key stops all before any delete. */
	{
		const char *doomed[] = {"log/0000000000000001.bsp", "log/0000000000000002.bsp", "a/c/d",
			"log/no-such", "no/such/dir/key", "log/0000000000000001.bsp"};
		const char *bad_list[] = {"log/0000000000000003.bsp", "../x"};
		const char *dir_list[] = {"a/c", "log/0000000000000004.bsp"};

		ok(storage_delete_many(st, bad_list, 2, &err) == BS_ERR && strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0,
		   "a list with an invalid key is refused");
		ok(storage_head(st, "log/0000000000000003.bsp", &exists, NULL, &err) == BS_OK && exists,
		   "and nothing of it is deleted");
		ok(storage_delete_many(st, doomed, 6, &err) == BS_OK,
		   "delete_many of existing, missing and repeated keys succeeds");
		is_str(list_all(st, "log/000000000000000", &l),
			   "log/0000000000000003.bsp 1\nlog/0000000000000004.bsp 1\nlog/0000000000000005.bsp 1\n"
			   "log/0000000000000006.bsp 1\nlog/0000000000000007.bsp 1\nlog/0000000000000008.bsp 1\n"
			   "log/0000000000000009.bsp 1\nlog/000000000000000a.bsp 1\nlog/000000000000000b.bsp 1\n"
			   "log/000000000000000c.bsp 1\nlog/000000000000000d.bsp 1\nlog/000000000000000e.bsp 1\n"
			   "log/000000000000000f.bsp 1\n", "the named keys are gone, the others stay");
		ok(storage_head(st, "a/c/d", &exists, NULL, &err) == BS_OK && !exists, "in another directory too");
		ok(storage_delete_many(st, doomed, 0, &err) == BS_OK, "deleting nothing succeeds");
		ok(storage_delete_many(st, dir_list, 2, &err) == BS_ERR && strstr(err.message, "could not delete") != NULL,
		   "a key that cannot be deleted (a directory) fails: %s", err.message);
		ok(storage_head(st, "log/0000000000000004.bsp", &exists, NULL, &err) == BS_OK && !exists,
		   "but the other keys are deleted");
	}

	/* Delete, idempotent. */
	ok(storage_delete(st, "a/b", &err) == BS_OK, "delete");
	ok(storage_head(st, "a/b", &exists, NULL, &err) == BS_OK && !exists, "deleted key gone");
	ok(storage_delete(st, "a/b", &err) == BS_OK, "deleting a missing key succeeds");
	ok(storage_delete(st, "no/such/dir/key", &err) == BS_OK, "deleting under a missing dir succeeds");

	/* Bad keys and paths. */
	ok(storage_put(st, "../escape", "x", 1, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0, "put with .. rejected");
	ok(storage_get_all(st, "/etc/passwd", &buf, &err) == BS_ERR &&
	   strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0, "get of an absolute key rejected");
	ok(storage_put(st, "empty/child", "x", 1, &err) == BS_ERR && err.code[0] != '\0',
	   "put under a key that is a file fails: %s", err.message);
	ok(storage_get_all(st, "a/c", &buf, &err) == BS_ERR && strcmp(err.code, ERRCODE_NOT_FOUND) == 0,
	   "a directory is not an object");
	if (geteuid() != 0)
	{
		snprintf(path, sizeof(path), "%s/archive/ro", root);
		mkdir(path, 0500);
		ok(storage_put(st, "ro/x", "x", 1, &err) == BS_ERR && strcmp(err.code, ERRCODE_PERMISSION) == 0,
		   "put into a read-only directory fails with PERMISSION");
		chmod(path, 0700);
	}

	/* Empty directories: deleting keys leaves them; remove_dir takes them away when empty. */
	{
		bool removed = true;
		int n = 0;
		struct stat sb;

		ok(storage_put(st, "epoch1/x.seg", "x", 1, &err) == BS_OK && storage_put(st, "epoch2/y.seg", "y", 1, &err) == BS_OK,
		   "two keys in two directories");
		ok(storage_local_remove_dir(st, "epoch1", &removed, &err) == BS_OK && !removed,
		   "a directory that holds a key is not removed (and that is no error)");
		ok(storage_delete(st, "epoch1/x.seg", &err) == BS_OK, "delete its key");
		snprintf(path, sizeof(path), "%s/archive/epoch1", root);
		ok(stat(path, &sb) == 0 && S_ISDIR(sb.st_mode), "deleting the key left the directory");
		ok(storage_local_list_dirs(st, count_entry, &n, &err) == BS_OK && n >= 2, "list_dirs sees the directories");
		ok(storage_local_remove_dir(st, "epoch1", &removed, &err) == BS_OK && removed, "the empty directory is removed");
		ok(stat(path, &sb) != 0 && errno == ENOENT, "and is gone");
		ok(storage_local_remove_dir(st, "epoch1", &removed, &err) == BS_OK && !removed, "removing it again is no error");
		ok(storage_local_remove_dir(st, "../x", &removed, &err) == BS_ERR && strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0,
		   "an invalid name is refused");
		ok(storage_local_remove_dir(st, "epoch2/y.seg", &removed, &err) == BS_OK && !removed, "a key is not a directory");
		ok(storage_head(st, "epoch2/y.seg", &exists, NULL, &err) == BS_OK && exists, "and stays");
	}
	storage_close(st);

	/* Request counts per operation (the archiver's backstop_storage_* metrics). */
	snprintf(url, sizeof(url), "file://%s/counted", root);
	ok(storage_open(url, NULL, &st, &err) == BS_OK, "open a storage to count its requests");
	{
		storage_stats s0, s1;
		storage_keys keys = {0};
		char *tag = NULL;

		memset(&s0, 0, sizeof(s0));
		storage_stats_add(st, &s0);
		is_int(s0.requests[STORAGE_OP_PUT] + s0.requests[STORAGE_OP_GET] + s0.requests[STORAGE_OP_LIST], 0,
			   "a new handle has counted nothing");
		ok(storage_put(st, "t/a", "hello", 5, &err) == BS_OK && storage_put(st, "t/b", "", 0, &err) == BS_OK,
		   "two puts");
		ok(storage_writer_open(st, "t/c", &w, &err) == BS_OK && storage_writer_write(w, "abc", 3, &err) == BS_OK &&
		   storage_writer_write(w, "defg", 4, &err) == BS_OK && storage_writer_commit(w, &err) == BS_OK,
		   "a streamed put of two pieces");
		ok(storage_writer_open(st, "t/d", &w, &err) == BS_OK && storage_writer_write(w, "zz", 2, &err) == BS_OK,
		   "a put that is aborted");
		storage_writer_abort(w);
		w = NULL;
		ok(storage_get_all(st, "t/a", &buf, &err) == BS_OK, "a get");
		ok(storage_get(st, "t/c", 2, 3, append_sink, &buf, &err) == BS_OK, "a ranged get");
		ok(storage_get_all(st, "t/missing", &buf, &err) == BS_ERR, "a get of a missing key");
		ok(storage_head(st, "t/a", &exists, NULL, &err) == BS_OK, "a head");
		ok(storage_list(st, "t/", storage_collect_key, &keys, &err) == BS_OK && keys.count == 3, "a list");
		storage_keys_free(&keys);
		ok(storage_delete(st, "t/b", &err) == BS_OK, "a delete");
		ok(storage_list_after(st, "t/", "t/a", storage_collect_key, &keys, &err) == BS_OK && keys.count == 1,
		   "a list after a key");
		storage_keys_free(&keys);
		{
			char **many = xcalloc(1001, sizeof(char *));
			char k[32];

			for (int i = 0; i < 1001; i++)
			{
				snprintf(k, sizeof(k), "t/many/%04d", i);
				many[i] = xstrdup(k);
			}
			ok(storage_delete_many(st, (const char *const *) many, 1001, &err) == BS_OK,
			   "a delete_many of 1001 (missing) keys");
			ok(storage_delete_many(st, (const char *const *) many, 0, &err) == BS_OK, "a delete_many of none");
			for (int i = 0; i < 1001; i++)
				free(many[i]);
			free(many);
		}
		ok(storage_put_if(st, "t/lease", "0123456789", 10, NULL, &err) == BS_OK, "a conditional put");
		ok(storage_get_tagged(st, "t/lease", &buf, &tag, &err) == BS_OK, "a tagged get");
		free(tag);
		ok(storage_put(st, "/bad", "x", 1, &err) == BS_ERR, "an invalid key is refused before any request");

		memset(&s1, 0, sizeof(s1));
		storage_stats_add(st, &s1);
		is_int(s1.requests[STORAGE_OP_PUT], 3, "puts counted: committed objects, not the aborted one");
		is_int(s1.bytes[STORAGE_OP_PUT], 12, "bytes put");
		is_int(s1.requests[STORAGE_OP_GET], 3, "gets counted, the failed one too");
		is_int(s1.bytes[STORAGE_OP_GET], 8, "bytes read: the whole object and the range");
		is_int(s1.requests[STORAGE_OP_HEAD], 1, "heads counted");
		is_int(s1.requests[STORAGE_OP_LIST], 2, "lists counted, after a key too");
		is_int(s1.requests[STORAGE_OP_DELETE], 1, "deletes counted");
		is_int(s1.requests[STORAGE_OP_DELETE_MANY], 2, "delete_many counted per 1,000 keys, none for no key");
		is_int(s1.requests[STORAGE_OP_PUT_IF], 1, "conditional puts counted");
		is_int(s1.bytes[STORAGE_OP_PUT_IF], 10, "their bytes");
		is_int(s1.requests[STORAGE_OP_GET_TAGGED], 1, "tagged gets counted");
		is_int(s1.bytes[STORAGE_OP_GET_TAGGED], 10, "their bytes");
		storage_stats_add(st, &s1);
		is_int(s1.requests[STORAGE_OP_PUT], 6, "storage_stats_add adds to what the sum holds");
		is_str(storage_op_name(STORAGE_OP_GET_TAGGED), "get_tagged", "operation names for the metrics' label");
		is_str(storage_op_name(STORAGE_OP_DELETE_MANY), "delete_many", "delete_many's label");
	}
	storage_close(st);
	test_refusals(root);

	{
		char cmd[512];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
		if (system(cmd) != 0)
			printf("# could not remove %s\n", root);
	}
	strbuf_free(&buf);
	strbuf_free(&l.text);
	return done_testing();
}
