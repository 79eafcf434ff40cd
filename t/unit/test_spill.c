/* test_spill.c — unit tests of the spill file (archive/spill.c), the chunked end-LSN patch and summary over pieces (archive/segment.c), and adopting a local file under a key. */
#include "segment.h"
#include "spill.h"
#include "storage.h"
#include "storage_local.h"
#include "strbuf.h"
#include "tap.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One text column of len bytes. */
static void
make_tuple(strbuf *sb, size_t len, unsigned seed)
{
	strbuf_reset(sb);
	strbuf_append_be16(sb, 1);
	strbuf_append_u8(sb, 't');
	strbuf_append_be32(sb, (uint32_t) len);
	for (size_t i = 0; i < len; i++)
		strbuf_append_char(sb, (char) ('a' + (seed + i) % 26));
}

/*
 * A segment of n records of sizes chosen by a small generator (some longer than the
 * chunks used below); records from index split on belong to a second transaction whose
 * end LSN is still 0.  bounds[i] is the offset of record i, bounds[n] the end.
 */
static void
build_segment(strbuf *seg, int n, int split, size_t *bounds, uint64_t end1)
{
	strbuf tup = STRBUF_INIT;
	uint32_t x = 12345;

	strbuf_reset(seg);
	segment_write_header(seg);
	for (int i = 0; i < n; i++)
	{
		segment_record r;
		bs_error err;
		size_t len;

		x = x * 1103515245u + 12345u;
		len = (i % 17 == 5) ? 3000 + (x >> 16) % 2000 : (x >> 16) % 90;
		make_tuple(&tup, len, (unsigned) i);
		memset(&r, 0, sizeof(r));
		r.op = (i % 5 == 3) ? 'D' : 'I';
		r.old_kind = r.op == 'D' ? 'K' : SEGMENT_OLD_NONE;
		if (r.op == 'D')
		{
			r.old_tuple = (const uint8_t *) tup.data;
			r.old_len = tup.len;
		}
		else
		{
			r.new_tuple = (const uint8_t *) tup.data;
			r.new_len = tup.len;
		}
		r.commit_lsn = i < split ? 0x1000 : 0x2000;
		r.end_lsn = i < split ? end1 : 0;
		r.xid = i < split ? 7 : 8;
		r.commit_time = i < split ? 111 : 222;
		r.layout_id = 1;
		bounds[i] = seg->len;
		if (segment_write_record(seg, &r, &err) != BS_OK)
		{
			printf("# build: %s\n", err.message);
			exit(2);
		}
	}
	bounds[n] = seg->len;
	strbuf_free(&tup);
}

/* Every record's end LSN: before split equals e1, from split on equals e2; tuples intact. */
static bool
check_end_lsns(const void *buf, size_t len, int n, int split, uint64_t e1, uint64_t e2)
{
	segment_reader r;
	bs_error err;
	bool eof = false;
	int i = 0;

	if (segment_reader_init(&r, buf, len, &err) != BS_OK)
		return false;
	for (;;)
	{
		segment_record rec;

		if (segment_reader_next(&r, &rec, &eof, &err) != BS_OK)
		{
			printf("# read: %s\n", err.message);
			return false;
		}
		if (eof)
			break;
		if (rec.end_lsn != (i < split ? e1 : e2) || rec.commit_lsn != (i < split ? 0x1000u : 0x2000u))
		{
			printf("# record %d: end %llx\n", i, (unsigned long long) rec.end_lsn);
			return false;
		}
		i++;
	}
	return i == n;
}

static int
write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, data, len) != (ssize_t) len)
	{
		perror(path);
		exit(2);
	}
	return fd;
}

static void
read_file(int fd, strbuf *out)
{
	struct stat sb;

	fstat(fd, &sb);
	strbuf_reset(out);
	strbuf_reserve(out, (size_t) sb.st_size);
	if (pread(fd, out->data, (size_t) sb.st_size, 0) != sb.st_size)
	{
		perror("pread");
		exit(2);
	}
	out->len = (size_t) sb.st_size;
	out->data[out->len] = '\0';
}

/* Temporary files: unlinked at creation, readable at any offset, gone when closed. */
static void
test_temp(const char *dir)
{
	spill_file *f = NULL;
	bs_error err;
	char buf[16];
	struct stat sb;
	int fd;

	ok(spill_create_temp(dir, "t-", &f, &err) == BS_OK, "temporary file created");
	if (f == NULL)
		return;
	ok(strncmp(spill_path(f), dir, strlen(dir)) == 0, "in the directory given");
	ok(stat(spill_path(f), &sb) != 0, "and unlinked at once");
	ok(spill_append(f, "0123456789", 10, &err) == BS_OK && spill_append(f, "abcdef", 6, &err) == BS_OK, "appended");
	ok(spill_read(f, 8, buf, 4, &err) == BS_OK && memcmp(buf, "89ab", 4) == 0, "read back across appends");
	ok(spill_read(f, 12, buf, 5, &err) == BS_ERR, "a read past the end is refused");
	ok(spill_truncate(f, 0, &err) == BS_OK && spill_size(f) == 0, "truncated");
	fd = spill_fd(f);
	spill_discard(f);			/* must not unlink whatever has that name now */
	ok(fcntl(fd, F_GETFD) < 0, "closed");
	setenv("TMPDIR", dir, 1);
	is_str(spill_temp_dir(NULL), dir, "without a directory: $TMPDIR");
	unsetenv("TMPDIR");
	is_str(spill_temp_dir(NULL), "/tmp", "else /tmp");
}

/* Arrays of fixed-size entries in a temporary file: zero until written, the window kept in
 * step with writes, ranges read past it, bounds refused. */
static void
test_array(const char *dir)
{
	spill_array *a = NULL;
	bs_error err;
	uint64_t v = 0,
		range[300];
	int good = 1;
	const uint64_t n = 5000;	/* several windows, the last one partial */

	ok(spill_array_create(dir, "a-", sizeof(uint64_t), n, &a, &err) == BS_OK, "array created");
	if (a == NULL)
		return;
	is_int((long long) spill_array_length(a), (long long) n, "its length");
	ok(spill_array_get(a, n - 1, &v, &err) == BS_OK && v == 0, "entries read as zero until written");
	for (uint64_t i = 0; good && i < n; i += 3)
	{
		uint64_t x = i * 7 + 1;

		good = spill_array_put(a, i, &x, &err) == BS_OK;
	}
	ok(good, "every third entry written");
	/* Read in an order that moves the window back and forth. */
	for (uint64_t k = 0; good && k < n; k++)
	{
		uint64_t i = (k * 2654435761u) % n;

		good = spill_array_get(a, i, &v, &err) == BS_OK && v == (i % 3 == 0 ? i * 7 + 1 : 0);
	}
	ok(good, "read back in a scattered order");
	/* A write inside the window is seen by the next read. */
	ok(spill_array_get(a, 10, &v, &err) == BS_OK, "window on entry 10");
	v = 99;
	ok(spill_array_put(a, 11, &v, &err) == BS_OK && spill_array_get(a, 11, &v, &err) == BS_OK && v == 99,
	   "a write within the window is read back");
	ok(spill_array_read_range(a, n - 300, 300, range, &err) == BS_OK && range[0] == ((n - 300) % 3 ? 0 : (n - 300) * 7 + 1) &&
	   range[299] == ((n - 1) % 3 ? 0 : (n - 1) * 7 + 1), "a range up to the end, past the window");
	ok(spill_array_get(a, n, &v, &err) == BS_ERR && strstr(err.message, "beyond") != NULL, "a read past the end is refused");
	ok(spill_array_put(a, n, &v, &err) == BS_ERR, "so is a write");
	ok(spill_array_read_range(a, n - 1, 2, range, &err) == BS_ERR, "and a range overrunning it");
	spill_array_free(a);
	ok(spill_array_create(dir, "a-", 3, 10, &a, &err) == BS_ERR, "an entry size that does not divide the window is refused");
	spill_array_free(NULL);
}

int
main(void)
{
	enum {N = 300, SPLIT = 120};
	strbuf seg = STRBUF_INIT;
	strbuf copy = STRBUF_INIT;
	size_t bounds[N + 1];
	char dir[] = "/tmp/bs-test-spill-XXXXXX";
	char path[4096];
	bs_error err;
	segment_summary whole;

	if (mkdtemp(dir) == NULL)
	{
		perror("mkdtemp");
		return 2;
	}
	build_segment(&seg, N, SPLIT, bounds, 0xAAAA);

	/* --- segment_patch_end_lsn in memory --- */
	{
		size_t patched = 0;
		size_t next;

		strbuf_reset(&copy);
		strbuf_append(&copy, seg.data, seg.len);
		next = segment_patch_end_lsn(copy.data + bounds[SPLIT], copy.len - bounds[SPLIT], 0xBBBB, &patched);
		is_int(next, seg.len - bounds[SPLIT], "memory patch: goes on exactly at the end");
		is_int(patched, bounds[N - 1] - bounds[SPLIT] + SEGMENT_PATCH_SPAN, "memory patch: last byte written");
		ok(check_end_lsns(copy.data, copy.len, N, SPLIT, 0xAAAA, 0xBBBB),
		   "memory patch: the transaction's records, and only they, carry the end LSN");
		/* A buffer cut inside the span of a record stops at that record. */
		next = segment_patch_end_lsn(copy.data + bounds[SPLIT], bounds[SPLIT + 1] - bounds[SPLIT] + 10, 1, &patched);
		is_int(next, bounds[SPLIT + 1] - bounds[SPLIT], "memory patch: a record cut in its span is left for later");
		next = segment_patch_end_lsn(copy.data + bounds[SPLIT], 4, 1, &patched);
		ok(next == 0 && patched == 0, "memory patch: nothing fits in 4 bytes");
	}

	/* --- spill_patch_fd: every chunk size from the minimum up, and a big one --- */
	{
		size_t chunks[] = {SEGMENT_PATCH_SPAN, SEGMENT_PATCH_SPAN + 1, 22, 23, 29, 37, 38, 50, 64, 100, 127, 128,
			500, 1000, 4096, 4999, 5001, 65536, SPILL_PATCH_CHUNK};
		bool all = true;
		int fd;

		snprintf(path, sizeof(path), "%s/patch", dir);
		for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++)
		{
			fd = write_file(path, seg.data, seg.len);
			if (spill_patch_fd(fd, path, bounds[SPLIT], seg.len, 0xCCCCDDDD, chunks[c], &err) != BS_OK)
			{
				printf("# chunk %zu: %s\n", chunks[c], err.message);
				all = false;
			}
			read_file(fd, &copy);
			close(fd);
			if (!check_end_lsns(copy.data, copy.len, N, SPLIT, 0xAAAA, 0xCCCCDDDD))
			{
				printf("# chunk %zu: wrong result\n", chunks[c]);
				all = false;
			}
			/* Only end LSN fields may differ from the original. */
			for (int i = 0; i < N && all; i++)
			{
				size_t a = bounds[i] + SEGMENT_RECORD_HDR_LEN + 8;

				if (memcmp(copy.data + bounds[i], seg.data + bounds[i], a - bounds[i]) != 0 ||
					memcmp(copy.data + a + 8, seg.data + a + 8, bounds[i + 1] - a - 8) != 0)
				{
					printf("# chunk %zu: record %d changed outside its end LSN\n", chunks[c], i);
					all = false;
				}
			}
		}
		ok(all, "file patch: records straddling chunks and records longer than a chunk are patched exactly");

		/* Every split point (transaction start) with a small chunk. */
		all = true;
		for (int s = 0; s < N && all; s += 7)
		{
			fd = write_file(path, seg.data, seg.len);
			if (spill_patch_fd(fd, path, bounds[s], seg.len, 0x42, 33, &err) != BS_OK)
				all = false;
			read_file(fd, &copy);
			close(fd);
			for (int i = 0; i < N && all; i++)
			{
				/* The end LSN field, big-endian, after op, length and commit LSN. */
				const uint8_t *e = (const uint8_t *) copy.data + bounds[i] + SEGMENT_RECORD_HDR_LEN + 8;
				uint64_t v = 0;

				for (int k = 0; k < 8; k++)
					v = (v << 8) | e[k];
				if (v != (i >= s ? 0x42u : (i < SPLIT ? 0xAAAAu : 0u)))
					all = false;
			}
		}
		ok(all, "file patch: from every transaction start, only the records after it change");

		/* A range that ends inside a record is refused. */
		fd = write_file(path, seg.data, seg.len);
		ok(spill_patch_fd(fd, path, bounds[SPLIT], bounds[SPLIT + 3] + 7, 1, 64, &err) == BS_ERR &&
		   strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0, "file patch: a record overrunning the range is corruption");
		ok(spill_patch_fd(fd, path, bounds[SPLIT], bounds[SPLIT] + 10, 1, 64, &err) == BS_ERR &&
		   strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0, "file patch: a range cut inside a record's span is corruption");
		ok(spill_patch_fd(fd, path, bounds[SPLIT], seg.len, 1, 8, &err) == BS_ERR, "file patch: too small a chunk is refused");
		close(fd);
		unlink(path);
	}

	/* --- segment_scan: the summary over pieces of any size --- */
	{
		bool all = true;
		size_t pieces[] = {1, 2, 3, 5, 7, 13, 36, 37, 38, 64, 1000, 4096, 100000};

		ok(segment_summarize(seg.data, seg.len, &whole, &err) == BS_OK && whole.records == N &&
		   whole.first_commit_lsn == 0x1000 && whole.last_end_lsn == 0 && whole.first_time == 111 &&
		   whole.last_time == 222, "summary of the whole segment");
		for (size_t p = 0; p < sizeof(pieces) / sizeof(pieces[0]); p++)
		{
			segment_scan s;
			segment_summary sum;

			segment_scan_init(&s);
			for (size_t off = 0; off < seg.len && all; off += pieces[p])
			{
				size_t n = seg.len - off < pieces[p] ? seg.len - off : pieces[p];

				if (segment_scan_feed(&s, seg.data + off, n, &err) != BS_OK)
					all = false;
			}
			if (!all || segment_scan_finish(&s, &sum, &err) != BS_OK || memcmp(&sum, &whole, sizeof(sum)) != 0)
			{
				printf("# pieces of %zu: %s\n", pieces[p], all ? "wrong summary" : err.message);
				all = false;
			}
		}
		ok(all, "scan in pieces of any size gives the same summary");

		/* Cuts: at a record boundary a shorter valid segment, elsewhere corruption. */
		all = true;
		for (size_t cut = 0; cut < bounds[20] && all; cut++)
		{
			segment_scan s;
			segment_summary sum;
			int boundary = -1;
			int rc;

			for (int i = 0; i <= N; i++)
				if (bounds[i] == cut)
					boundary = i;
			segment_scan_init(&s);
			rc = segment_scan_feed(&s, seg.data, cut / 2, &err);
			if (rc == BS_OK)
				rc = segment_scan_feed(&s, seg.data + cut / 2, cut - cut / 2, &err);
			if (rc == BS_OK)
				rc = segment_scan_finish(&s, &sum, &err);
			if (boundary >= 0 ? (rc != BS_OK || sum.records != (uint64_t) boundary)
				: (rc != BS_ERR || strcmp(err.code, ERRCODE_DATA_CORRUPTED) != 0))
			{
				printf("# cut at %zu: rc %d\n", cut, rc);
				all = false;
			}
		}
		ok(all, "scan: cut at a record boundary is valid, any other cut is corruption");

		/* A bad op in the middle, fed across pieces. */
		{
			segment_scan s;
			segment_summary sum;

			strbuf_reset(&copy);
			strbuf_append(&copy, seg.data, seg.len);
			copy.data[bounds[50]] = 'X';
			segment_scan_init(&s);
			ok((segment_scan_feed(&s, copy.data, bounds[50] + 2, &err) == BS_ERR ||
				segment_scan_feed(&s, copy.data + bounds[50] + 2, copy.len - bounds[50] - 2, &err) == BS_ERR) &&
			   strstr(err.message, "record 51") && strstr(err.message, "invalid op"),
			   "scan: an invalid op is named with its record number");
			ok(segment_scan_finish(&s, &sum, &err) == BS_ERR, "scan: a failed scan stays failed");
			copy.data[0] = 'x';
			segment_scan_init(&s);
			ok(segment_scan_feed(&s, copy.data, 3, &err) == BS_ERR && strstr(err.message, "magic"),
			   "scan: a bad magic is refused at once");
		}
	}

	/* --- spill_file: create, append, truncate, patch, discard --- */
	{
		spill_file *f = NULL;
		char sdir[4096];
		struct stat sb;
		uint64_t start;

		snprintf(sdir, sizeof(sdir), "%s/spool/spill", dir);
		ok(spill_create(sdir, "16384-0000000000001000.open", &f, &err) == BS_OK, "spill_create makes its directory");
		/* The first transaction, appended in two pieces, then committed. */
		ok(spill_append(f, seg.data, bounds[60], &err) == BS_OK &&
		   spill_append(f, seg.data + bounds[60], bounds[SPLIT] - bounds[60], &err) == BS_OK &&
		   spill_size(f) == bounds[SPLIT], "spill_append");
		start = spill_size(f);
		/* A transaction cut off by a disconnect: appended, then cut back. */
		ok(spill_append(f, seg.data + bounds[SPLIT], bounds[SPLIT + 40] - bounds[SPLIT], &err) == BS_OK &&
		   spill_truncate(f, start, &err) == BS_OK && spill_size(f) == start &&
		   fstat(spill_fd(f), &sb) == 0 && (uint64_t) sb.st_size == start, "spill_truncate cuts the file back");
		ok(spill_truncate(f, start + 1, &err) == BS_ERR, "spill_truncate does not extend");
		/* Sent again, in full, and committed. */
		ok(spill_append(f, seg.data + bounds[SPLIT], seg.len - bounds[SPLIT], &err) == BS_OK &&
		   spill_patch_end_lsn(f, start, 0x5555, &err) == BS_OK, "the re-sent transaction is appended and patched");
		read_file(spill_fd(f), &copy);
		ok(copy.len == seg.len && check_end_lsns(copy.data, copy.len, N, SPLIT, 0xAAAA, 0x5555),
		   "the spill file is the segment with both transactions' end LSNs");

		/* Adopted by the spool: durable under its key, gone from the spill directory. */
		{
			storage *st = NULL;
			strbuf got = STRBUF_INIT;
			char root[4096];
			char kept[4096];

			snprintf(root, sizeof(root), "%s/spool", dir);
			snprintf(kept, sizeof(kept), "%s", spill_path(f));
			ok(storage_local_open(root, &st, &err) == BS_OK, "open the spool");
			ok(storage_local_adopt(st, "0000000000005555/16384-0000000000001000-0000000000005555.seg",
								   spill_path(f), spill_fd(f), &err) == BS_OK, "storage_local_adopt");
			ok(access(kept, F_OK) != 0, "the spill file's old name is gone");
			ok(storage_get_all(st, "0000000000005555/16384-0000000000001000-0000000000005555.seg", &got, &err) == BS_OK &&
			   got.len == copy.len && memcmp(got.data, copy.data, got.len) == 0, "the key holds the spill file's bytes");
			ok(storage_local_adopt(st, "../escape", "/tmp/x", -1, &err) == BS_ERR, "adopt refuses an invalid key");
			ok(storage_local_adopt(st, "a/b", "/nonexistent/bs-test", -1, &err) == BS_ERR, "adopt of a missing file fails");
			spill_close(f);
			f = NULL;
			/* A discarded spill file is deleted. */
			ok(spill_create(sdir, "1-2.open", &f, &err) == BS_OK, "a second spill file");
			snprintf(kept, sizeof(kept), "%s", spill_path(f));
			spill_discard(f);
			ok(access(kept, F_OK) != 0, "spill_discard deletes it");
			storage_delete(st, "0000000000005555/16384-0000000000001000-0000000000005555.seg", &err);
			storage_close(st);
			strbuf_free(&got);
		}
		/* A file where a directory of the path should be: refused, saying so. */
		{
			char blocker[4096];
			char below[4096];
			int fd;

			snprintf(blocker, sizeof(blocker), "%s/spool/blocker", dir);
			fd = open(blocker, O_WRONLY | O_CREAT | O_TRUNC, 0600);
			close(fd);
			snprintf(below, sizeof(below), "%s/spool/blocker/spill", dir);
			ok(spill_create(below, "1-2.open", &f, &err) == BS_ERR && f == NULL &&
			   strstr(err.message, "/spool/blocker\": a file is in the way"),
			   "a file in the spill directory's path is refused (%s)", err.message);
			unlink(blocker);
		}
		rmdir(sdir);
		snprintf(sdir, sizeof(sdir), "%s/spool/0000000000005555", dir);
		rmdir(sdir);
		snprintf(sdir, sizeof(sdir), "%s/spool", dir);
		rmdir(sdir);
	}
	test_temp(dir);
	test_array(dir);
	rmdir(dir);
	ok(stat(dir, &(struct stat) {0}) != 0, "nothing was left in the directory");
	strbuf_free(&seg);
	strbuf_free(&copy);
	return done_testing();
}
