/* cmd_verify.c — `backstop verify`: every object's checksum and framing, LSN bookkeeping, orphans; a format-3 archive's whole log (chain, coverage) and its tables. */
#include "cmd_verify.h"
#include "archive_load.h"
#include "audit.h"
#include "cli.h"
#include "jsonout.h"
#include "log.h"
#include "lsn.h"
#include "manifest.h"
#include "manifest_head.h"
#include "manifest_keys.h"
#include "manifest_store.h"
#include "pgsql.h"
#include "quote.h"
#include "progress.h"
#include "object.h"
#include "redact.h"
#include "segfetch.h"
#include "segment.h"
#include "sqlcheck.h"
#include "storage.h"
#include "strbuf.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Segment commit times count from 2000-01-01; manifests use the Unix epoch. */
#define PG_EPOCH_OFFSET_US INT64_C(946684800000000)
/* Segments larger than this are checked for checksum and framing only, not record by record. */
#define MAX_PARSED_SEGMENT (INT64_C(256) << 20)

typedef struct listed_key
{
	char *key;
	uint64_t size;
	bool referenced;
} listed_key;

typedef struct key_list
{
	listed_key *keys;
	int n;
	int cap;
} key_list;

typedef struct verify_ctx
{
	storage *st;
	const archive_head *head;	/* NULL when there is none (or it is unreadable) */
	bool json;
	json_t *problems;			/* --json: collected; text: printed as found */
	json_t *warnings;
	int nproblems;
	int nwarnings;
	int tables;
	bool format3;				/* a format-3 archive: packs and runs counted too */
	uint64_t packs;
	uint64_t runs;
	uint64_t objects;
	uint64_t bytes;
	bs_error storage_err;		/* set when a storage failure stops the run */
	bool storage_failed;
	progress prog;
	segfetch *sf;				/* packs opened for pack segments, once each */
} verify_ctx;

static void __attribute__((format(printf, 5, 6)))
report(verify_ctx *c, bool problem, const manifest *m, const char *key, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	strbuf table = STRBUF_INIT;
	char *safe;

	va_start(ap, fmt);
	msg = xvasprintf(fmt, ap);
	va_end(ap);
	safe = redact_text(msg);
	if (m)
	{
		char *name = quote_display_name(m->schema, m->name);

		strbuf_printf(&table, "%s (relid %" PRIu32 ")", name, m->relid);
		free(name);
	}
	else
		strbuf_append_str(&table, "-");
	if (problem)
		c->nproblems++;
	else
		c->nwarnings++;
	if (c->json)
	{
		json_t *o = json_object();
		json_t *jm;

		if (m)
		{
			json_object_set_new(o, "relid", json_integer(m->relid));
			json_object_set_new(o, "schema", json_string(m->schema));
			json_object_set_new(o, "name", json_string(m->name));
		}
		json_object_set_new(o, "key", key ? json_string(key) : json_null());
		jm = json_string(safe);
		/* A message cut at the error buffer's end may split a UTF-8 sequence. */
		if (jm == NULL)
			jm = json_string("(message is not valid UTF-8)");
		json_object_set_new(o, "message", jm);
		json_array_append_new(problem ? c->problems : c->warnings, o);
	}
	else
	{
		/* Keys and messages may carry names and bytes from storage: one line each. */
		strbuf line = STRBUF_INIT;

		progress_clear(&c->prog);

		strbuf_printf(&line, "%s: %s ", problem ? "PROBLEM" : "warning", table.data);
		strbuf_append_printable(&line, key ? key : "-");
		strbuf_append_str(&line, ": ");
		strbuf_append_printable(&line, safe);
		printf("%s\n", line.data);
		strbuf_free(&line);
	}
	free(safe);
	free(msg);
	strbuf_free(&table);
}

typedef struct sql_problem_ctx
{
	verify_ctx *c;
	const manifest *m;
	const char *key;
} sql_problem_ctx;

/* sqlcheck_problem_fn: a definition recovery would refuse to send. */
static void
report_sql_problem(void *ctx, const char *field, const char *object, const char *message)
{
	sql_problem_ctx *sp = ctx;

	report(sp->c, true, sp->m, sp->key, "%s (%s) is refused: %s", field, object, message);
}

static int
collect_key(void *ctx, const char *key, uint64_t size, bs_error *err)
{
	key_list *l = ctx;

	(void) err;
	if (l->n == l->cap)
	{
		l->cap = l->cap ? l->cap * 2 : 64;
		l->keys = xrealloc(l->keys, (size_t) l->cap * sizeof(listed_key));
	}
	l->keys[l->n].key = xstrdup(key);
	l->keys[l->n].size = size;
	l->keys[l->n].referenced = false;
	l->n++;
	return BS_OK;
}

static int
cmp_listed(const void *a, const void *b)
{
	return strcmp(((const listed_key *) a)->key, ((const listed_key *) b)->key);
}

/* The index of the first key of all (sorted) at or after key: all->n when none. */
static int
first_listed_at(const key_list *all, const char *key)
{
	listed_key probe;
	int lo = 0,
		hi = all->n;

	probe.key = (char *) key;	/* only compared */
	while (lo < hi)
	{
		int mid = lo + (hi - lo) / 2;

		if (cmp_listed(&all->keys[mid], &probe) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void
key_list_free(key_list *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->keys[i].key);
	free(l->keys);
	memset(l, 0, sizeof(*l));
}

static listed_key *
key_list_find(key_list *l, const char *key)
{
	listed_key probe = {(char *) key, 0, false};

	if (l->n == 0)
		return NULL;
	return bsearch(&probe, l->keys, (size_t) l->n, sizeof(listed_key), cmp_listed);
}

static int
list_prefix(storage *st, const char *prefix, key_list *out, bs_error *err)
{
	memset(out, 0, sizeof(*out));
	if (storage_list(st, prefix, collect_key, out, err) != BS_OK)
	{
		key_list_free(out);
		return error_prefix(err, "could not list \"%s\"", prefix);
	}
	/* The drivers list lexically already; sorting keeps bsearch honest whatever they do. */
	if (out->n > 1)
		qsort(out->keys, (size_t) out->n, sizeof(listed_key), cmp_listed);
	return BS_OK;
}

/* A failure that is about the archive's content, not about reaching it. */
static bool
is_integrity_error(const bs_error *err)
{
	return strcmp(err->code, ERRCODE_DATA_CORRUPTED) == 0 || strcmp(err->code, ERRCODE_NOT_FOUND) == 0;
}

static int
append_raw(void *ctx, const void *data, size_t len, bs_error *err)
{
	(void) err;
	strbuf_append(ctx, data, len);
	return BS_OK;
}

/* Outcome of checking one object. */
#define OBJECT_GOOD 0
#define OBJECT_DAMAGED 1
#define OBJECT_STORAGE_FAILED (-1)

/* Rows of a base chunk: lines of COPY text (a newline inside a value is written as \n). */
typedef struct line_count
{
	uint64_t lines;
	char last;
} line_count;

static int
count_lines(void *ctx, const void *data, size_t len, bs_error *err)
{
	line_count *lc = ctx;
	const char *p = data;
	const char *end = p + len;

	(void) err;
	while ((p = memchr(p, '\n', (size_t) (end - p))) != NULL)
	{
		lc->lines++;
		p++;
	}
	if (len > 0)
		lc->last = ((const char *) data)[len - 1];
	return BS_OK;
}

/*
 * One data object: listed, of the recorded size, and read back in full (framing, raw
 * SHA-256, stored SHA-256 against the manifest).  sink, when not NULL, receives the raw
 * content (acted on only once this returns OBJECT_GOOD).  Damage is reported here; a
 * storage failure is left in c->storage_err and ends the run.
 */
static int
check_object(verify_ctx *c, const manifest *m, key_list *keys, const char *key, const char *sha256,
			 uint64_t size, uint64_t raw_size, storage_sink sink, void *sink_ctx)
{
	listed_key *lk = key_list_find(keys, key);
	object_info info;
	bs_error err;
	int rc;

	if (lk == NULL)
	{
		report(c, true, m, key, "missing from storage");
		return OBJECT_DAMAGED;
	}
	lk->referenced = true;
	if (lk->size != size)
	{
		report(c, true, m, key, "stored size is %" PRIu64 " bytes, the manifest records %" PRIu64,
			   lk->size, size);
		return OBJECT_DAMAGED;
	}
	error_clear(&err);
	if (sink)
		rc = object_get(c->st, key, sha256, sink, sink_ctx, &info, &err);
	else
		rc = object_verify(c->st, key, sha256, &info, &err);
	c->objects++;
	c->bytes += size;
	c->prog.items_done = c->objects;
	c->prog.bytes_done = c->bytes;
	progress_update(&c->prog);
	if (rc != BS_OK)
	{
		if (!is_integrity_error(&err))
		{
			c->storage_err = err;
			c->storage_failed = true;
			return OBJECT_STORAGE_FAILED;
		}
		report(c, true, m, key, "%s", err.message);
		return OBJECT_DAMAGED;
	}
	if (info.raw_size != raw_size)
	{
		report(c, true, m, key, "holds %" PRIu64 " raw bytes, the manifest records %" PRIu64,
			   info.raw_size, raw_size);
		return OBJECT_DAMAGED;
	}
	return OBJECT_GOOD;
}

/*
 * A segment whose records are a run in a pack (a folded manifest, doc/design/format2.md 3.2):
 * read through segfetch, which checks the pack (opened once per run of verify), the run
 * against the segment, every frame's SHA-256 and the records against the run's entry, in
 * place of a segment object's listing, size and SHA-256.  Results as check_object's.
 */
static int
check_pack_segment(verify_ctx *c, const manifest *m, const manifest_segment *s, storage_sink sink, void *sink_ctx)
{
	segfetch_info info;
	bs_error err;

	error_clear(&err);
	if (c->sf == NULL)
		c->sf = segfetch_new();
	if (segfetch_read(c->sf, c->st, m->relid, s, sink, sink_ctx, &info, &err) != BS_OK)
	{
		if (!is_integrity_error(&err))
		{
			c->storage_err = err;
			c->storage_failed = true;
			return OBJECT_STORAGE_FAILED;
		}
		report(c, true, m, s->key, "%s", err.message);
		return OBJECT_DAMAGED;
	}
	c->objects++;
	c->bytes += info.stored_size;
	c->prog.items_done = c->objects;
	c->prog.bytes_done = c->bytes;
	progress_update(&c->prog);
	if (info.raw_size != segfetch_raw_size(s))
	{
		report(c, true, m, s->key, "holds %" PRIu64 " raw bytes, the manifest records %" PRIu64, info.raw_size,
			   segfetch_raw_size(s));
		return OBJECT_DAMAGED;
	}
	return OBJECT_GOOD;
}

/* Records of a segment: count, LSN range, commit order, times and layouts as the manifest says. */
static void
check_segment_records(verify_ctx *c, const manifest *m, const manifest_segment *s, const strbuf *raw)
{
	segment_reader r;
	segment_record rec;
	bool eof = false;
	bs_error err;
	uint64_t prev_commit = 0;
	uint64_t last_end = 0;
	int64_t first_time = 0;
	int64_t last_time = 0;
	char a[LSN_BUFLEN];
	char b[LSN_BUFLEN];

	error_clear(&err);
	if (segment_reader_init(&r, raw->data ? raw->data : "", raw->len, &err) != BS_OK)
	{
		report(c, true, m, s->key, "%s", err.message);
		return;
	}
	for (;;)
	{
		if (segment_reader_next(&r, &rec, &eof, &err) != BS_OK)
		{
			report(c, true, m, s->key, "%s", err.message);
			return;
		}
		if (eof)
			break;
		if (r.nrecords == 1)
		{
			first_time = rec.commit_time;
			if (rec.commit_lsn != s->first_lsn)
				report(c, true, m, s->key, "first record has commit LSN %s, the manifest records %s",
					   lsn_format(rec.commit_lsn, a), lsn_format(s->first_lsn, b));
		}
		else if (rec.commit_lsn < prev_commit)
		{
			report(c, true, m, s->key, "record %" PRIu64 " (commit LSN %s) is out of commit order",
				   r.nrecords, lsn_format(rec.commit_lsn, a));
			return;
		}
		if (rec.end_lsn < rec.commit_lsn)
		{
			report(c, true, m, s->key, "record %" PRIu64 " ends (%s) before its commit LSN (%s)",
				   r.nrecords, lsn_format(rec.end_lsn, a), lsn_format(rec.commit_lsn, b));
			return;
		}
		if (manifest_layout_by_id(m, rec.layout_id) == NULL)
		{
			report(c, true, m, s->key, "record %" PRIu64 " uses layout %" PRIu32 ", which the manifest lacks",
				   r.nrecords, rec.layout_id);
			return;
		}
		prev_commit = rec.commit_lsn;
		last_end = rec.end_lsn;
		last_time = rec.commit_time;
	}
	if (r.nrecords != s->records)
		report(c, true, m, s->key, "holds %" PRIu64 " records, the manifest records %" PRIu64,
			   r.nrecords, s->records);
	if (r.nrecords == 0)
		return;
	if (last_end != s->last_end_lsn)
		report(c, true, m, s->key, "last record ends at %s, the manifest records %s",
			   lsn_format(last_end, a), lsn_format(s->last_end_lsn, b));
	if (first_time + PG_EPOCH_OFFSET_US != s->first_time || last_time + PG_EPOCH_OFFSET_US != s->last_time)
		report(c, true, m, s->key, "commit times differ from the manifest's first_time/last_time");
}

/* Everything about one table; keys holds the objects under its directory. */
/* A base object below where retention cut ("base/<16 hex>/..."). */
static bool
expired_base_key(const char *rest, uint64_t expired_before)
{
	char part[17];
	uint64_t lsn;

	if (strncmp(rest, "base/", 5) != 0 || strlen(rest) < 5 + 16 + 2 || rest[21] != '/')
		return false;
	memcpy(part, rest + 5, 16);
	part[16] = '\0';
	return lsn_parse_key(part, &lsn) == BS_OK && lsn < expired_before;
}

static int verify_manifest(verify_ctx *c, const manifest *m, const char *mkey, key_list *keys);

static int
verify_table(verify_ctx *c, uint32_t relid, key_list *keys)
{
	manifest *m = NULL;
	bool exists;
	bs_error err;
	char *mkey = manifest_key(relid);
	int rc;

	error_clear(&err);
	if (manifest_load(c->st, relid, &m, &exists, &err) != BS_OK)
	{
		if (!is_integrity_error(&err))
		{
			c->storage_err = err;
			c->storage_failed = true;
			free(mkey);
			return BS_ERR;
		}
		c->tables++;
		report(c, true, NULL, mkey, "%s", err.message);
		free(mkey);
		return BS_OK;
	}
	if (!exists)
	{
		const archive_head_table *rec = c->head ? archive_head_find_table(c->head, relid) : NULL;

		/* Objects without a manifest: an interrupted first upload, unless head.json says the
		 * manifest was stored. */
		if (rec)
		{
			c->tables++;
			report(c, true, NULL, mkey, "missing, but head.json records generation %" PRIu64 " of the manifest of "
				   "%s.%s (relid %" PRIu32 "): it was deleted; %d object(s) remain under tables/%" PRIu32 "/ and "
				   "cannot be used without it", rec->generation, rec->schema, rec->name, relid, keys->n, relid);
		}
		else
			report(c, false, NULL, mkey, "table directory without a manifest (%d objects): leftovers of an interrupted upload?",
				   keys->n);
		free(mkey);
		return BS_OK;
	}
	c->tables++;
	rc = verify_manifest(c, m, mkey, keys);
	manifest_free(m);
	free(mkey);
	return rc;
}

/* Everything about one loaded table (its state read from mkey); keys holds the objects under its directory. */
static int
verify_manifest(verify_ctx *c, const manifest *m, const char *mkey, key_list *keys)
{
	uint32_t relid = m->relid;
	bs_error err;
	char a[LSN_BUFLEN];
	char b[LSN_BUFLEN];

	{
		listed_key *lk = key_list_find(keys, mkey);

		if (lk)
			lk->referenced = true;
	}

	/* Definitions that recovery would send to PostgreSQL. */
	{
		sql_problem_ctx sp = {c, m, mkey};

		sqlcheck_manifest(m, report_sql_problem, &sp);
	}

	/* Bookkeeping. */
	if (strcmp(m->status, "skipped") != 0 && m->nbases == 0)
		report(c, false, m, mkey, "no base copy: the table cannot be recovered yet");
	/* A base copy taken ahead of the stream (a re-base while the stream lags, then a stop):
	 * a state the archiver leaves, not damage; points between are refused by recovery. */
	if (m->nbases > 0 && m->bases[m->nbases - 1].lsn > m->archived_to)
		report(c, false, m, mkey, "newest base copy (%s) is ahead of archived_to (%s): taken ahead of the stream, "
			   "points between them are not recoverable until the stream passes it",
			   lsn_format(m->bases[m->nbases - 1].lsn, a), lsn_format(m->archived_to, b));
	/* Schema changes not captured: windows recovery refuses (a known limit, not damage). */
	for (int i = 0; i < m->nschema_gaps; i++)
	{
		if (m->schema_gaps[i].to == MANIFEST_GAP_OPEN)
			report(c, false, m, mkey, "the schema changed at an unknown point after %s (not captured): points from "
				   "there are not recoverable until a new base copy", lsn_format(m->schema_gaps[i].from, a));
		else
			report(c, false, m, mkey, "the schema changed at an unknown point between %s and %s (not captured): "
				   "points in between are not recoverable", lsn_format(m->schema_gaps[i].from, a),
				   lsn_format(m->schema_gaps[i].to, b));
	}
	for (int i = 0; i < m->nbases; i++)
		if (manifest_layout_by_id(m, m->bases[i].layout_id) == NULL)
			report(c, true, m, mkey, "base copy %s references layout %" PRIu32 ", which does not exist",
				   lsn_format(m->bases[i].lsn, a), m->bases[i].layout_id);
	for (int i = 0; i < m->nsegments; i++)
	{
		const manifest_segment *s = &m->segments[i];

		if (i > 0 && s->first_lsn < m->segments[i - 1].first_lsn)
			report(c, true, m, s->key, "segments are not sorted by LSN");
		if (s->last_end_lsn > m->archived_to)
			report(c, true, m, s->key, "ends at %s, beyond archived_to (%s)",
				   lsn_format(s->last_end_lsn, a), lsn_format(m->archived_to, b));
		for (int j = 0; j < i; j++)
			if (strcmp(m->segments[j].key, s->key) == 0)
				report(c, true, m, s->key, "listed twice in the manifest");
	}

	/* Objects. */
	for (int i = 0; i < m->nbases && !c->storage_failed; i++)
	{
		const manifest_base *bs = &m->bases[i];
		char *dirkey = manifest_base_chunk_key(relid, bs->lsn, 0);
		size_t dirlen = strlen(dirkey) - strlen("chunk-000000.bso");
		uint64_t rows = 0;
		uint64_t lines = 0;
		bool counted = true;

		if (bs->schema_key)
		{
			listed_key *lk = key_list_find(keys, bs->schema_key);

			if (lk)
				lk->referenced = true;
			else
				report(c, true, m, bs->schema_key, "missing from storage");
		}
		for (int k = 0; k < bs->nchunks; k++)
		{
			const manifest_chunk *ch = &bs->chunks[k];
			line_count lc = {0, '\n'};
			int ocheck;

			rows += ch->rows;
			if (strncmp(ch->key, dirkey, dirlen) != 0)
				report(c, true, m, ch->key, "base chunk outside the directory of its base (%.*s)",
					   (int) dirlen, dirkey);
			ocheck = check_object(c, m, keys, ch->key, ch->sha256, ch->size, ch->raw_size, count_lines, &lc);
			if (ocheck == OBJECT_STORAGE_FAILED)
				break;
			if (ocheck != OBJECT_GOOD)
			{
				counted = false;
				continue;
			}
			/* The rows themselves, not only the manifest's own sums: recovery counts them. */
			lines += lc.lines;
			if (lc.last != '\n')
				report(c, true, m, ch->key, "does not end at a line boundary (COPY text rows end with a newline)");
			else if (lc.lines != ch->rows)
				report(c, true, m, ch->key, "holds %" PRIu64 " rows of COPY text, the manifest records %" PRIu64,
					   lc.lines, ch->rows);
		}
		if (rows != bs->rows)
			report(c, true, m, mkey, "base copy %s: chunks hold %" PRIu64 " rows, the base records %" PRIu64,
				   lsn_format(bs->lsn, a), rows, bs->rows);
		else if (counted && !c->storage_failed && lines != bs->rows)
			report(c, true, m, mkey, "base copy %s: its chunks hold %" PRIu64 " rows of COPY text, the base records %" PRIu64,
				   lsn_format(bs->lsn, a), lines, bs->rows);
		free(dirkey);
	}
	for (int i = 0; i < m->nsegments && !c->storage_failed; i++)
	{
		const manifest_segment *s = &m->segments[i];
		char *expect = manifest_segment_key(relid, s->first_lsn, s->last_end_lsn);
		bool parse = s->raw_size <= (uint64_t) MAX_PARSED_SEGMENT;
		strbuf raw = STRBUF_INIT;
		int ocheck;

		if (s->source == MANIFEST_SEGMENT_PACK)
			ocheck = check_pack_segment(c, m, s, parse ? append_raw : NULL, &raw);
		else
		{
			if (strcmp(expect, s->key) != 0)
				report(c, true, m, s->key, "name does not match its range %s..%s (expected %s)",
					   lsn_format(s->first_lsn, a), lsn_format(s->last_end_lsn, b), expect);
			ocheck = check_object(c, m, keys, s->key, s->sha256, s->size, s->raw_size, parse ? append_raw : NULL,
								  &raw);
		}
		free(expect);
		if (ocheck == OBJECT_GOOD && parse)
			check_segment_records(c, m, s, &raw);
		strbuf_free(&raw);
		if (ocheck == OBJECT_STORAGE_FAILED)
			break;
	}

	/* Evidence of a rolled-back or edited manifest: its generation against the head, and
	 * unlisted segments below the position the archive claims complete. */
	if (!c->storage_failed)
	{
		const char **names = xcalloc((size_t) keys->n + 1, sizeof(char *));
		audit_report ar;

		for (int i = 0; i < keys->n; i++)
			names[i] = keys->keys[i].key;
		error_clear(&err);
		if (audit_table(c->st, m, c->head, names, keys->n, &ar, &err) != BS_OK)
		{
			c->storage_err = err;
			c->storage_failed = true;
		}
		else
		{
			for (int i = 0; i < ar.nproblems + ar.nwarnings; i++)
			{
				bool problem = i < ar.nproblems;
				const audit_finding *f = problem ? &ar.problems[i] : &ar.warnings[i - ar.nproblems];
				listed_key *lk = key_list_find(keys, f->key);

				report(c, problem, m, f->key, "%s", f->message);
				/* Said here: not again as a plain leftover below. */
				if (lk)
					lk->referenced = true;
			}
			audit_report_free(&ar);
		}
		free(names);
	}

	/* Orphans: harmless leftovers, unless their names break the layout of the directory. */
	for (int i = 0; i < keys->n && !c->storage_failed; i++)
	{
		const char *rest = NULL;
		uint32_t r;
		uint64_t first,
			end;
		bool in_dir;

		if (keys->keys[i].referenced)
			continue;
		in_dir = manifest_key_relid(keys->keys[i].key, &r, &rest) == BS_OK;
		if (in_dir && strncmp(rest, "seg/", 4) == 0 &&
			manifest_segment_name_parse(rest, &first, &end) != BS_OK)
			report(c, true, m, keys->keys[i].key, "unexpected name under seg/ (expected <FIRSTLSN>-<ENDLSN>.bso)");
		else if (in_dir && m->expired_before && expired_base_key(rest, m->expired_before))
			report(c, false, m, keys->keys[i].key,
				   "not listed in the manifest: an expired base copy left by an interrupted expire "
				   "(the next backstop expire removes it)");
		else
			report(c, false, m, keys->keys[i].key,
				   "not listed in the manifest (leftover of an interrupted upload?)");
	}
	return c->storage_failed ? BS_ERR : BS_OK;
}

/* Hand each relid directory of a full listing to verify_table. */
static int
verify_all(verify_ctx *c, key_list *all)
{
	int i = 0;

	while (i < all->n)
	{
		uint32_t relid;
		const char *rest;
		key_list sub;
		int j;
		size_t plen;

		if (manifest_key_relid(all->keys[i].key, &relid, &rest) != BS_OK)
		{
			report(c, false, NULL, all->keys[i].key, "not under a valid table directory; ignored");
			i++;
			continue;
		}
		plen = (size_t) (rest - all->keys[i].key);
		for (j = i + 1; j < all->n && strncmp(all->keys[j].key, all->keys[i].key, plen) == 0; j++)
			;
		/* A view over the slice; the keys stay owned by all. */
		sub.keys = &all->keys[i];
		sub.n = j - i;
		sub.cap = sub.n;
		if (verify_table(c, relid, &sub) != BS_OK)
			return BS_ERR;
		i = j;
	}
	return BS_OK;
}

/* Tables head.json records whose directory holds nothing at all (a directory with objects
 * but no manifest is reported by verify_table). */
static void
verify_head_tables(verify_ctx *c, key_list *all)
{
	for (int i = 0; c->head && i < c->head->ntables; i++)
	{
		const archive_head_table *t = &c->head->tables[i];
		char *prefix = manifest_table_prefix(t->relid);
		/* The first key at or after the prefix: the directory's, if it has any. */
		int lo = first_listed_at(all, prefix);

		if (lo == all->n || strncmp(all->keys[lo].key, prefix, strlen(prefix)) != 0)
		{
			char *mkey = manifest_key(t->relid);

			c->tables++;
			report(c, true, NULL, mkey, "missing, and nothing is left under %s, but head.json records generation %"
				   PRIu64 " of the manifest of %s.%s: the table's archive was deleted",
				   prefix, t->generation, t->schema, t->name);
			free(mkey);
		}
		free(prefix);
	}
}

static void listed_totals(verify_ctx *c, const key_list *all);

/* archive_damage_fn of the log's walk: archive-wide damage. */
static void
log_damage(void *ctx, const char *key, const char *message)
{
	report(ctx, true, NULL, key, "%s", message);
}

/* The objects of tables/<relid>/ in all (sorted), as a view over the slice (empty: none). */
static void
table_slice(key_list *all, uint32_t relid, key_list *sub)
{
	char *prefix = manifest_table_prefix(relid);
	size_t plen = strlen(prefix);
	int lo = first_listed_at(all, prefix);
	int j;

	for (j = lo; j < all->n && strncmp(all->keys[j].key, prefix, plen) == 0; j++)
		;
	sub->keys = all->keys ? &all->keys[lo] : NULL;
	sub->n = j - lo;
	sub->cap = sub->n;
	free(prefix);
}

/* One table of a format-3 archive: its state folded through the view, then as a manifest's. */
static int
verify_table3(verify_ctx *c, archive_view *v, uint32_t relid, key_list *all)
{
	const packcat_dir *dir = archive_view_dir(v);
	const char *state_key = dir ? dir->key : ARCHIVE_LOG_PREFIX;
	manifest *m = NULL;
	bool exists = false;
	key_list sub;
	bs_error err;
	int rc;

	error_clear(&err);
	c->tables++;
	if (archive_view_table(v, relid, &m, NULL, &exists, &err) != BS_OK)
	{
		if (!is_integrity_error(&err))
		{
			c->storage_err = err;
			c->storage_failed = true;
			return BS_ERR;
		}
		{
			char *named = xasprintf("relid %" PRIu32 ":", relid);

			/* The view's messages often name the relid already. */
			if (strstr(err.message, named))
				report(c, true, NULL, state_key, "%s", err.message);
			else
				report(c, true, NULL, state_key, "%s %s", named, err.message);
			free(named);
		}
		return BS_OK;
	}
	if (!exists)
	{
		report(c, true, NULL, state_key, "relid %" PRIu32 ": named by the archive, but no state of it folds", relid);
		return BS_OK;
	}
	table_slice(all, relid, &sub);
	rc = verify_manifest(c, m, state_key, &sub);
	manifest_free(m);
	return rc;
}

/*
 * A format-3 archive (doc/design/format2.md 3.6, 3.9): the whole log walked (archive_log_verify:
 * the chain, the sequence coverage, the head's tip, the catalog's pack, every run read back),
 * then every table the archive knows (or the one --table names) folded through one view and
 * checked as a format-2 manifest is (its runs through segfetch, its base chunks, the audit and
 * the leftovers of its directory); directories of tables the archive does not know are
 * leftovers.  BS_ERR: the storage failed (c->storage_failed) or --table names no table (err).
 */
static int
verify_format3(verify_ctx *c, const char *table, key_list *all, bs_error *err)
{
	archive_log_stats ls;
	archive_view *v = NULL;
	uint32_t *relids = NULL;
	int n = 0;
	int rc = BS_ERR;

	c->format3 = true;
	progress_phase(&c->prog, "log");
	if (archive_log_verify(c->st, c->head, log_damage, c, &ls, err) != BS_OK)
	{
		c->storage_err = *err;
		c->storage_failed = true;
		return BS_ERR;
	}
	c->packs = ls.packs;
	c->runs = ls.runs;
	c->objects += ls.packs;
	c->bytes += ls.bytes;
	if (archive_view_open(c->st, c->head, &v, err) != BS_OK)
	{
		if (!is_integrity_error(err))
		{
			c->storage_err = *err;
			c->storage_failed = true;
			return BS_ERR;
		}
		/* Said already by the walk, most likely: then only why the tables were not checked. */
		report(c, ls.problems == 0, NULL, ARCHIVE_HEAD_KEY, "the tables cannot be read: %s", err->message);
		error_clear(err);
		return BS_OK;
	}
	if (table)
	{
		manifest *m = NULL;

		if (archive_view_find_at(v, table, UINT64_MAX, &m, err) != BS_OK)
			goto out;
		relids = xcalloc(1, sizeof(uint32_t));
		relids[n++] = m->relid;
		manifest_free(m);
	}
	else
		archive_view_relids(v, &relids, &n);
	if (list_prefix(c->st, ARCHIVE_TABLES_PREFIX, all, err) != BS_OK)
	{
		c->storage_err = *err;
		c->storage_failed = true;
		goto out;
	}
	listed_totals(c, all);
	for (int i = 0; i < n; i++)
		if (verify_table3(c, v, relids[i], all) != BS_OK)
			goto out;
	/* Objects of tables the archive does not know. */
	for (int i = 0; !table && i < all->n; i++)
	{
		uint32_t relid;
		const char *rest;
		bool known = false;

		if (all->keys[i].referenced)
			continue;
		if (manifest_key_relid(all->keys[i].key, &relid, &rest) != BS_OK)
		{
			report(c, false, NULL, all->keys[i].key, "not under a valid table directory; ignored");
			continue;
		}
		for (int k = 0; k < n && !known; k++)
			known = relids[k] == relid;
		if (!known)
			report(c, false, NULL, all->keys[i].key, "under the directory of relid %" PRIu32 ", which neither the "
				   "catalog nor the log knows (leftover of an interrupted base copy?)", relid);
	}
	rc = BS_OK;
out:
	free(relids);
	archive_view_free(v);
	return rc;
}

/* What the listing holds: the progress line's totals (manifests are read on top). */
static void
listed_totals(verify_ctx *c, const key_list *all)
{
	uint64_t bytes = 0;

	for (int i = 0; i < all->n; i++)
		bytes += all->keys[i].size;
	c->prog.bytes_total = bytes;
	c->prog.items_total = (uint64_t) all->n;
	progress_phase(&c->prog, "check");
}

int
cmd_verify(bs_config *cfg, int argc, char **argv)
{
	const char *table = config_get(cfg, CFG_TABLE);
	verify_ctx c;
	storage *st = NULL;
	bs_error err;
	archive_head head;
	bool head_exists = false;
	key_list all = {NULL, 0, 0};
	int exit_code = EXIT_FAILURE_RUNTIME;

	if (argc > 0)
	{
		cli_usage_error("verify", "unexpected argument \"%s\"", argv[0]);
		return EXIT_USAGE;
	}
	memset(&c, 0, sizeof(c));
	memset(&head, 0, sizeof(head));
	c.json = config_get_bool(cfg, CFG_JSON);
	progress_init(&c.prog, "verify", progress_wanted(c.json));
	c.prog.items_unit = "objects checked";
	progress_phase(&c.prog, "list");
	c.problems = json_array();
	c.warnings = json_array();
	error_clear(&err);
	if ((exit_code = cli_open_storage("verify", cfg, &st)) != EXIT_OK)
		goto out;
	exit_code = EXIT_FAILURE_RUNTIME;
	c.st = st;

	if (archive_head_load_any(st, &head, &head_exists, &err) != BS_OK)
	{
		if (!is_integrity_error(&err))
		{
			progress_clear(&c.prog);
			cli_report_error("verify", &err);
			exit_code = cli_exit_code(&err, exit_code);
			goto out;
		}
		report(&c, true, NULL, "head.json", "%s", err.message);
		head_exists = true;
	}
	else if (head_exists)
		c.head = &head;

	if (c.head && c.head->format == ARCHIVE_HEAD_FORMAT_PACKS)
	{
		if (verify_format3(&c, table, &all, &err) != BS_OK)
		{
			progress_clear(&c.prog);
			if (c.storage_failed)
			{
				cli_report_error("verify", &c.storage_err);
				goto out;
			}
			cli_report_error("verify", &err);
			exit_code = strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 ? EXIT_INTEGRITY : EXIT_FAILURE_RUNTIME;
			goto out;
		}
	}
	else if (table)
	{
		manifest *m = NULL;
		char *prefix;
		int rc;

		if (audit_find_table(st, c.head, table, &m, &err) != BS_OK)
		{
			progress_clear(&c.prog);
			cli_report_error("verify", &err);
			exit_code = strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 ? EXIT_INTEGRITY : EXIT_FAILURE_RUNTIME;
			goto out;
		}
		prefix = manifest_table_prefix(m->relid);
		rc = list_prefix(st, prefix, &all, &err);
		if (rc == BS_OK)
		{
			listed_totals(&c, &all);
			rc = verify_table(&c, m->relid, &all);
		}
		free(prefix);
		manifest_free(m);
		if (rc != BS_OK)
		{
			if (!c.storage_failed)
				c.storage_err = err;
			progress_clear(&c.prog);
			cli_report_error("verify", &c.storage_err);
			goto out;
		}
	}
	else
	{
		if (list_prefix(st, ARCHIVE_TABLES_PREFIX, &all, &err) != BS_OK)
		{
			progress_clear(&c.prog);
			cli_report_error("verify", &err);
			goto out;
		}
		if (all.n == 0 && !head_exists)
		{
			char *u = redact_text(storage_describe(st));
			char *shown = xstrdup_printable(u);

			progress_clear(&c.prog);
			fprintf(stderr, "backstop verify: ERROR: no archive at %s\n", shown);
			free(shown);
			free(u);
			goto out;
		}
		if (!head_exists)
			report(&c, false, NULL, "head.json", "missing: the archiver has not completed a seal yet");
		listed_totals(&c, &all);
		if (verify_all(&c, &all) != BS_OK)
		{
			progress_clear(&c.prog);
			cli_report_error("verify", &c.storage_err);
			goto out;
		}
		verify_head_tables(&c, &all);
	}

	progress_done(&c.prog);
	if (c.json)
	{
		json_t *o = json_object();
		char *u = redact_text(storage_describe(st));

		json_object_set_new(o, "storage", json_string(u));
		json_object_set_new(o, "ok", json_boolean(c.nproblems == 0));
		if (c.format3)
			json_object_set_new(o, "packs", json_integer((json_int_t) c.packs));
		json_object_set_new(o, "tables", json_integer(c.tables));
		if (c.format3)
			json_object_set_new(o, "runs", json_integer((json_int_t) c.runs));
		json_object_set_new(o, "objects", json_integer((json_int_t) c.objects));
		json_object_set_new(o, "bytes", json_integer((json_int_t) c.bytes));
		json_object_set_new(o, "problems", c.problems);
		json_object_set_new(o, "warnings", c.warnings);
		json_object_set_new(o, "phases", progress_phases_json(&c.prog));
		c.problems = c.warnings = NULL;
		jsonout_print(o, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
		free(u);
		json_decref(o);
	}
	else if (c.format3)
		printf("%s: %" PRIu64 " pack(s), %d table(s), %" PRIu64 " run(s), %" PRIu64 " object(s), %" PRIu64
			   " bytes read: %d problem(s), %d warning(s)\n", c.nproblems ? "DAMAGED" : "OK", c.packs, c.tables,
			   c.runs, c.objects, c.bytes, c.nproblems, c.nwarnings);
	else
		printf("%s: %d table(s), %" PRIu64 " object(s), %" PRIu64 " bytes read: %d problem(s), %d warning(s)\n",
			   c.nproblems ? "DAMAGED" : "OK", c.tables, c.objects, c.bytes, c.nproblems, c.nwarnings);
	exit_code = c.nproblems ? EXIT_INTEGRITY : EXIT_OK;

out:
	segfetch_free(c.sf);
	key_list_free(&all);
	archive_head_clear(&head);
	json_decref(c.problems);
	json_decref(c.warnings);
	if (st)
		storage_close(st);
	return exit_code;
}
