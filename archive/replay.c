/* replay.c — table state rebuilt from a base copy and change records (in memory, rows spilled to a file past a limit). */
#include "replay.h"
#include "lsn.h"
#include "pghash.h"
#include "pgoutput.h"
#include "spill.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * A stored row: the layout it was written in, then per column a LEB128 varint that is 0
 * for NULL and length+1 otherwise, followed by the value bytes.
 */
typedef struct rrow
{
	uint64_t seq;				/* when it was written into the state: the output order */
	uint32_t layout;
	uint32_t len;
	uint8_t data[];
} rrow;

/*
 * Open addressing with linear probing; row == NULL marks an empty slot.  A row beyond the
 * memory limit lives in the spill file: row is then SPILLED(offset), an odd value that is
 * never a pointer (malloc aligns), and the file holds the rrow as it would be in memory.
 */
typedef struct rslot
{
	uint64_t hash;
	rrow *row;
} rslot;

/*
 * The slots, in memory, or past INDEX_SHARE of the memory limit in a temporary file
 * (spill_array): the index is then bounded too, one read per probe.  The same code runs
 * either way, so the results are identical.
 */
typedef struct slot_table
{
	rslot *mem;
	spill_array *disk;
	size_t cap;					/* power of two, or 0 */
} slot_table;

/*
 * The keys touched by change records (streaming): 0 marks an empty slot.  Every base row
 * is looked up, and most are absent: a bitmap of the hashes (one bit each, in memory, up
 * to FILTER_BITS_PER_SLOT bits per slot) answers those without a probe into the slots,
 * which miss the cache (or, on disk, read the file).  A clear bit means absent; a set bit
 * only means "probe".
 */
typedef struct hash_set
{
	uint64_t *mem;
	spill_array *disk;
	size_t cap;					/* power of two, or 0 */
	size_t count;
	uint64_t *filter;			/* fmask + 1 bits */
	uint64_t fmask;
} hash_set;

#define FILTER_BITS_PER_SLOT 4

/*
 * An index larger than this share of the limit goes to a file (the slots and the touched
 * keys each; the rows, which spill first, fill what the index leaves).  Looked up in a file
 * the index costs a read or a write per probe: it stays in memory as long as it may.
 */
#define INDEX_SHARE(limit) ((limit) / 2)

#define IS_SPILLED(r) (((uintptr_t) (r)) & 1)
#define SPILLED(off) ((rrow *) (uintptr_t) (((uint64_t) (off) << 1) | 1))
#define SPILL_OFFSET(r) ((uint64_t) (((uintptr_t) (r)) >> 1))

/*
 * Streaming, the base lines that change records touch are loaded into the state by a
 * second thread (split_worker) while the main thread sends the others on: a table whose
 * changes touch its first rows would otherwise send PostgreSQL nothing until they are all
 * in the state.  The main thread hands over copies of the lines, in order (the output
 * order of the state's rows is their order of arrival), in buffers of about SPLIT_BATCH,
 * SPLIT_QUEUE at most (fewer under a memory limit: a sixteenth of it), so that it can run
 * ahead of the worker through a long run of touched rows.
 * While it runs the worker alone uses the state's rows and slots; the main thread parses
 * with its own scratch and reads only the touched-key set, which must be in memory (on
 * disk its reads would record failures in the state).  replay_split_finish joins it.
 */
#define SPLIT_QUEUE 16
#define SPLIT_BATCH (1024 * 1024)

typedef struct split_worker
{
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	strbuf q[SPLIT_QUEUE];		/* ring: q[head .. head+count) queued, q[head] being loaded */
	char *what[SPLIT_QUEUE];	/* the chunk each came from, for messages */
	int depth;					/* buffers queued at most (<= SPLIT_QUEUE) */
	int head;
	int count;
	bool done;
	bool failed;
	bs_error err;
	uint32_t layout;			/* position of the base layout */
	strbuf cur;					/* lines being gathered (main thread) */
	char *cur_what;
} split_worker;

/* How to build the columns of layout `to` from a row in layout `from`. */
#define MAP_CONST (-1)			/* column absent from the row: its missing value or NULL */
#define MAP_INCOMPATIBLE (-2)	/* the column changed type in a way that changes its text */
#define MAP_UNKNOWN (-3)		/* absent from the row, added with a per-row value not archived */
/* The column changed type in a way that changes its text, from the row's column k: a NULL
 * there is NULL in either type (a DELETE's old key, say, leaves the other columns NULL). */
#define MAP_RETYPED(k) (-4 - (k))
#define MAP_IS_RETYPED(v) ((v) <= -4)
#define MAP_RETYPED_SOURCE(v) (-4 - (v))

typedef struct colmap
{
	bool ready;
	int ncols;
	int *src;					/* per target column: source index or MAP_* */
	const char **cval;			/* MAP_CONST: value (NULL for SQL NULL) */
	char **why;					/* MAP_INCOMPATIBLE, MAP_UNKNOWN: explanation */
} colmap;

/* A value that was not sent ('u'): only meaningful in a tuple being applied. */
#define UNCHANGED_LEN UINT32_MAX

struct replay_state
{
	int nlayouts;
	const manifest_layout *layouts;
	colmap *maps;				/* nlayouts * nlayouts, built on demand */
	const segment_record *cb_rec;	/* the record being applied as given (its layout id) */
	int maxcols;

	/* The layout of the newest base or record; it also defines the key. */
	bool have_layout;
	uint32_t cur_layout;
	bool keyed;					/* key columns (identity d/i) rather than the whole row */
	int nkey;
	int *keypos;				/* positions in cur_layout of the columns compared */

	slot_table tab;
	size_t count;
	uint64_t next_seq;			/* rrow.seq of the next row encoded */

	/* Rows beyond one per key (keyed tables); must be zero at transaction boundaries. */
	uint64_t ndup;
	char dup_where[160];

	bool in_tx;
	uint64_t tx_end_lsn;

	/* Scratch value arrays, maxcols each. */
	replay_value *v_probe;
	replay_value *v_old;
	replay_value *v_new;
	replay_value *v_cand;
	replay_value *v_raw;
	replay_value *v_raw2;
	strbuf enc;
	strbuf tmp;
	strbuf tmp2;

	replay_change_cb cb;
	void *cbctx;

	/* Rows beyond mem_limit (0: none) go to spill, created on first use in spill_dir. */
	uint64_t mem_limit;
	char *spill_dir;
	spill_file *spill;
	uint64_t mem_rows;			/* bytes of the rows in memory */
	uint64_t spilled_rows;		/* rows written to the file (ever) */
	uint64_t spilled_bytes;		/* bytes written to the file (ever) */
	uint64_t index_spills;		/* times an index went to a file */
	/* The first failure to read or write an index file: every later call fails with it. */
	bool io_failed;
	bs_error io_err;
	strbuf rb_find;				/* a spilled row read back: candidates of table_find */
	strbuf rb_old;				/* the same: the prior image of an update or delete */

	/* Streaming (replay_stream_begin): hashes of the keys that change records touch; open
	 * addressing, 0 marks an empty slot.  Base rows whose key hash is absent bypass the state. */
	bool streaming;
	hash_set touched;
	strbuf rectext;
	/* The main thread's scratch while it splits (the worker uses v_probe and tmp). */
	replay_value *v_split;
	strbuf split_tmp;
	split_worker *worker;		/* NULL: touched lines are loaded inline */
};

/* ---------- hashing ---------- */

static inline uint64_t
mix64(uint64_t h)
{
	/* splitmix64 finalizer: full avalanche of every input bit. */
	h ^= h >> 30;
	h *= UINT64_C(0xbf58476d1ce4e5b9);
	h ^= h >> 27;
	h *= UINT64_C(0x94d049bb133111eb);
	h ^= h >> 31;
	return h;
}

static inline uint64_t
hash_bytes(uint64_t h, const void *data, size_t len)
{
	const uint8_t *p = data;
	const uint64_t m = UINT64_C(0x9e3779b97f4a7c15);

	h ^= len * m;
	while (len >= 8)
	{
		uint64_t w;

		memcpy(&w, p, 8);
		h = (h ^ mix64(w)) * m;
		h = (h << 29) | (h >> 35);
		p += 8;
		len -= 8;
	}
	if (len > 0)
	{
		uint64_t w = 0;

		memcpy(&w, p, len);
		h = (h ^ mix64(w ^ ((uint64_t) len << 56))) * m;
	}
	return h;
}

static uint64_t
key_hash(const replay_state *st, const replay_value *v)
{
	uint64_t h = UINT64_C(0x84222325cbf29ce4);

	for (int i = 0; i < st->nkey; i++)
	{
		const replay_value *x = &v[st->keypos[i]];

		if (x->isnull)
			h = (h ^ UINT64_C(0x5bd1e9955bd1e995)) * UINT64_C(0x100000001b3);
		else
			h = hash_bytes(h, x->data, x->len);
	}
	return mix64(h);
}

static bool
key_equal(const replay_state *st, const replay_value *a, const replay_value *b)
{
	for (int i = 0; i < st->nkey; i++)
	{
		const replay_value *x = &a[st->keypos[i]];
		const replay_value *y = &b[st->keypos[i]];

		if (x->isnull != y->isnull)
			return false;
		if (!x->isnull && (x->len != y->len || memcmp(x->data, y->data, x->len) != 0))
			return false;
	}
	return true;
}

/* ---------- row encoding ---------- */

static rrow *
row_encode(replay_state *st, uint32_t layout, int ncols, const replay_value *v)
{
	rrow *r;

	strbuf_reset(&st->enc);
	for (int i = 0; i < ncols; i++)
	{
		uint64_t n = v[i].isnull ? 0 : (uint64_t) v[i].len + 1;

		do
		{
			uint8_t b = n & 0x7f;

			n >>= 7;
			strbuf_append_u8(&st->enc, (uint8_t) (b | (n ? 0x80 : 0)));
		} while (n);
		if (!v[i].isnull)
			strbuf_append(&st->enc, v[i].data, v[i].len);
	}
	r = xmalloc(sizeof(rrow) + st->enc.len);
	r->seq = st->next_seq++;
	r->layout = layout;
	r->len = (uint32_t) st->enc.len;
	if (st->enc.len)
		memcpy(r->data, st->enc.data, st->enc.len);
	return r;
}

/* Rows are written only by row_encode, so a malformed one is a bug, not bad input. */
static void
row_decode(const rrow *r, int ncols, replay_value *out)
{
	const uint8_t *p = r->data;
	const uint8_t *end = r->data + r->len;

	for (int i = 0; i < ncols; i++)
	{
		uint64_t n = 0;
		int shift = 0;

		while (p < end)
		{
			uint8_t b = *p++;

			n |= (uint64_t) (b & 0x7f) << shift;
			shift += 7;
			if (!(b & 0x80))
				break;
		}
		if (n == 0)
		{
			out[i].isnull = true;
			out[i].data = NULL;
			out[i].len = 0;
		}
		else
		{
			out[i].isnull = false;
			out[i].data = (const char *) p;
			out[i].len = (uint32_t) (n - 1);
			p += n - 1;
		}
	}
}

/* ---------- layout conversion ---------- */

/* Text forms that a type change keeps identical, so old values stay exact. */
static bool
type_change_keeps_text(const char *from, const char *to)
{
	static const char *const ints[] = {"smallint", "integer", "bigint", NULL};
	bool fi = false,
		ti = false;

	if (strcmp(from, to) == 0)
		return true;
	for (int i = 0; ints[i]; i++)
	{
		fi |= strcmp(from, ints[i]) == 0;
		ti |= strcmp(to, ints[i]) == 0;
	}
	if (fi && ti)
		return true;
	if ((strcmp(from, "text") == 0 || strncmp(from, "character varying", 17) == 0) &&
		(strcmp(to, "text") == 0 || strncmp(to, "character varying", 17) == 0))
		return true;
	if (strncmp(from, "numeric(", 8) == 0 && strcmp(to, "numeric") == 0)
		return true;
	return false;
}

static const char *
col_type(const manifest_column *c)
{
	return c->type_name ? c->type_name : "";
}

/* One step between two layouts, by column name. */
static void
map_step(const manifest_layout *a, const manifest_layout *b, int *src, const char **cval, char **why)
{
	for (int j = 0; j < b->ncols; j++)
	{
		const manifest_column *cb = &b->columns[j];

		src[j] = MAP_CONST;
		cval[j] = cb->missing;
		why[j] = NULL;
		for (int k = 0; k < a->ncols; k++)
		{
			const manifest_column *ca = &a->columns[k];

			if (strcmp(ca->name, cb->name) != 0)
				continue;
			if (type_change_keeps_text(col_type(ca), col_type(cb)))
				src[j] = k;
			else
			{
				strbuf sb = STRBUF_INIT;

				strbuf_printf(&sb, "column \"%s\" changed type from %s to %s between layouts %u and %u",
							  cb->name, col_type(ca), col_type(cb), a->id, b->id);
				src[j] = MAP_RETYPED(k);
				why[j] = strbuf_detach(&sb, NULL);
			}
			break;
		}
		/* Added with a volatile default: the rows that predate it each got a value PostgreSQL
		 * computed in the rewrite, which the stream never carried; NULL would be a guess. */
		if (src[j] == MAP_CONST && cb->missing_unknown)
		{
			strbuf sb = STRBUF_INIT;
			char l[LSN_BUFLEN];

			strbuf_printf(&sb, "column \"%s\" was added in layout %u (from LSN %s) with a value computed for "
						  "each existing row (a volatile default), which the archive does not hold",
						  cb->name, b->id, lsn_format(b->from_lsn, l));
			src[j] = MAP_UNKNOWN;
			cval[j] = NULL;
			why[j] = strbuf_detach(&sb, NULL);
		}
	}
}

static colmap *
get_map(replay_state *st, uint32_t from, uint32_t to)
{
	colmap *m = &st->maps[(size_t) from * (size_t) st->nlayouts + to];
	const manifest_layout *lt = &st->layouts[to];

	if (m->ready)
		return m;
	m->ncols = lt->ncols;
	m->src = xcalloc((size_t) lt->ncols + 1, sizeof(int));
	m->cval = xcalloc((size_t) lt->ncols + 1, sizeof(char *));
	m->why = xcalloc((size_t) lt->ncols + 1, sizeof(char *));
	if (from > to)
	{
		/* An older layout again (ids reused): by name, directly. */
		map_step(&st->layouts[from], lt, m->src, m->cval, m->why);
	}
	else
	{
		/*
		 * Walk the chain of layouts so that a column dropped and re-added in between is
		 * the new column (with its own missing value), not the old one.
		 */
		int n = st->layouts[from].ncols;
		int *src = xcalloc((size_t) st->maxcols + 1, sizeof(int));
		const char **cval = xcalloc((size_t) st->maxcols + 1, sizeof(char *));
		char **why = xcalloc((size_t) st->maxcols + 1, sizeof(char *));
		int *ssrc = xcalloc((size_t) st->maxcols + 1, sizeof(int));
		const char **scval = xcalloc((size_t) st->maxcols + 1, sizeof(char *));
		char **swhy = xcalloc((size_t) st->maxcols + 1, sizeof(char *));

		for (int i = 0; i < n; i++)
			src[i] = i;
		for (uint32_t l = from + 1; l <= to; l++)
		{
			const manifest_layout *b = &st->layouts[l];
			int *nsrc = xcalloc((size_t) b->ncols + 1, sizeof(int));
			const char **ncval = xcalloc((size_t) b->ncols + 1, sizeof(char *));
			char **nwhy = xcalloc((size_t) b->ncols + 1, sizeof(char *));

			map_step(&st->layouts[l - 1], b, ssrc, scval, swhy);
			for (int j = 0; j < b->ncols; j++)
			{
				if (ssrc[j] >= 0)
				{
					nsrc[j] = src[ssrc[j]];
					ncval[j] = cval[ssrc[j]];
					nwhy[j] = why[ssrc[j]] ? xstrdup(why[ssrc[j]]) : NULL;
				}
				else if (MAP_IS_RETYPED(ssrc[j]))
				{
					/* Retyped in this step: from the row's column the previous column came from
					 * (retyped already or not); from a value absent from the row, only a NULL
					 * stays what it was; an unknown one stays unknown. */
					int k = src[MAP_RETYPED_SOURCE(ssrc[j])];

					nsrc[j] = k >= 0 ? MAP_RETYPED(k) : MAP_IS_RETYPED(k) ? k :
						k == MAP_CONST && cval[MAP_RETYPED_SOURCE(ssrc[j])] == NULL ? MAP_CONST :
						k == MAP_UNKNOWN ? MAP_UNKNOWN : MAP_INCOMPATIBLE;
					ncval[j] = NULL;
					nwhy[j] = k == MAP_UNKNOWN ? xstrdup(why[MAP_RETYPED_SOURCE(ssrc[j])]) : swhy[j];
					if (k != MAP_UNKNOWN)
						swhy[j] = NULL;
				}
				else
				{
					nsrc[j] = ssrc[j];
					ncval[j] = scval[j];
					nwhy[j] = swhy[j];
					swhy[j] = NULL;
				}
				free(swhy[j]);
			}
			for (int i = 0; i < n; i++)
				free(why[i]);
			memcpy(src, nsrc, sizeof(int) * (size_t) b->ncols);
			memcpy(cval, ncval, sizeof(char *) * (size_t) b->ncols);
			memcpy(why, nwhy, sizeof(char *) * (size_t) b->ncols);
			n = b->ncols;
			free(nsrc);
			free(ncval);
			free(nwhy);
		}
		memcpy(m->src, src, sizeof(int) * (size_t) n);
		memcpy(m->cval, cval, sizeof(char *) * (size_t) n);
		memcpy(m->why, why, sizeof(char *) * (size_t) n);
		free(src);
		free(cval);
		free(why);
		free(ssrc);
		free(scval);
		free(swhy);
	}
	m->ready = true;
	return m;
}

/* Bytes read at once for a spilled row: most rows of narrow tables fit. */
#define ROW_FETCH_FIRST 256

/* A row as kept in a slot, in memory: a spilled one is read into scratch. */
static int
row_fetch(const replay_state *st, const rrow *r, strbuf *scratch, const rrow **out, bs_error *err)
{
	uint64_t off;
	rrow hdr;

	if (!IS_SPILLED(r))
	{
		*out = r;
		return BS_OK;
	}
	off = SPILL_OFFSET(r);
	/* One read for a short row (each read is a system call): the header and what follows. */
	{
		uint64_t avail = spill_size(st->spill) > off ? spill_size(st->spill) - off : 0;
		size_t first = avail < ROW_FETCH_FIRST ? (size_t) avail : ROW_FETCH_FIRST;

		if (first < sizeof(hdr))
			first = sizeof(hdr);	/* short of a header: spill_read reports it */
		strbuf_reset(scratch);
		strbuf_reserve(scratch, first);
		if (spill_read(st->spill, off, scratch->data, first, err) != BS_OK)
			return BS_ERR;
		scratch->len = first;	/* kept by the reserve below */
		memcpy(&hdr, scratch->data, sizeof(hdr));
		if (sizeof(hdr) + hdr.len > first)
		{
			strbuf_reserve(scratch, sizeof(hdr) + hdr.len - first);
			if (spill_read(st->spill, off + first, scratch->data + first, sizeof(hdr) + hdr.len - first, err) != BS_OK)
				return BS_ERR;
		}
	}
	scratch->len = sizeof(hdr) + hdr.len;
	*out = (const rrow *) scratch->data;
	return BS_OK;
}

/* The values of row r in layout `to`; raw is scratch for the row's own columns, scratch
 * holds a spilled row (the values point into it). */
static int
row_values(replay_state *st, const rrow *slot_row, uint32_t to, replay_value *out, replay_value *raw,
		   strbuf *scratch, bs_error *err)
{
	colmap *m;
	const rrow *r;

	if (row_fetch(st, slot_row, scratch, &r, err) != BS_OK)
		return BS_ERR;

	if (r->layout == to)
	{
		row_decode(r, st->layouts[to].ncols, out);
		return BS_OK;
	}
	row_decode(r, st->layouts[r->layout].ncols, raw);
	m = get_map(st, r->layout, to);
	for (int j = 0; j < m->ncols; j++)
	{
		if (m->src[j] >= 0)
			out[j] = raw[m->src[j]];
		else if (m->src[j] == MAP_CONST)
		{
			out[j].isnull = m->cval[j] == NULL;
			out[j].data = m->cval[j];
			out[j].len = m->cval[j] ? (uint32_t) strlen(m->cval[j]) : 0;
		}
		else if (MAP_IS_RETYPED(m->src[j]) && raw[MAP_RETYPED_SOURCE(m->src[j])].isnull)
		{
			out[j].isnull = true;
			out[j].data = NULL;
			out[j].len = 0;
		}
		else if (m->src[j] == MAP_UNKNOWN)
			return error_set(err, ERRCODE_DATA_CORRUPTED,
							 "cannot convert a row written in layout %u to layout %u: %s (choose a point before "
							 "that layout, or at or after a newer base copy)",
							 st->layouts[r->layout].id, st->layouts[to].id, m->why[j]);
		else
			return error_set(err, ERRCODE_DATA_CORRUPTED,
							 "cannot convert a row written in layout %u to layout %u: %s; "
							 "the old text form would not be exact (choose a point after a newer base copy)",
							 st->layouts[r->layout].id, st->layouts[to].id, m->why[j]);
	}
	return BS_OK;
}

/* ---------- the hash table ---------- */

/* Remember the first failure of an index file; the public calls report it (io_check). */
static void
io_fail(replay_state *st, const bs_error *e)
{
	if (!st->io_failed)
	{
		st->io_failed = true;
		st->io_err = *e;
	}
}

/* rc, or the index file's failure if there was one: nothing built on it may be trusted. */
static int
io_check(replay_state *st, int rc, bs_error *err)
{
	if (st->io_failed)
	{
		*err = st->io_err;
		return BS_ERR;
	}
	return rc;
}

/* A slot; after a failed read an empty one (the failure is kept: see io_check). */
static inline rslot
slot_get(replay_state *st, const slot_table *t, size_t i)
{
	rslot s = {0, NULL};
	bs_error e;

	if (t->mem)
		return t->mem[i];
	if (spill_array_get(t->disk, i, &s, &e) != BS_OK)
	{
		io_fail(st, &e);
		s.hash = 0;
		s.row = NULL;
	}
	return s;
}

static inline void
slot_set(replay_state *st, slot_table *t, size_t i, uint64_t hash, rrow *row)
{
	rslot s = {hash, row};
	bs_error e;

	if (t->mem)
		t->mem[i] = s;
	else if (spill_array_put(t->disk, i, &s, &e) != BS_OK)
		io_fail(st, &e);
}

/* An empty table of cap slots: in memory while within INDEX_SHARE of the limit.  Fails
 * (io_check) only when the file cannot be made; t is then in memory and empty. */
static void
slot_table_init(replay_state *st, slot_table *t, size_t cap)
{
	bs_error e;

	t->mem = NULL;
	t->disk = NULL;
	t->cap = cap;
	if (st->mem_limit > 0 && (uint64_t) cap * sizeof(rslot) > INDEX_SHARE(st->mem_limit))
	{
		if (spill_array_create(st->spill_dir, "backstop-index-", sizeof(rslot), cap, &t->disk, &e) == BS_OK)
		{
			st->index_spills++;
			return;
		}
		error_prefix(&e, "the index of rows beyond the memory limit");
		io_fail(st, &e);
	}
	t->mem = xcalloc(cap, sizeof(rslot));
}

static void
slot_table_free(slot_table *t)
{
	free(t->mem);
	spill_array_free(t->disk);
	t->mem = NULL;
	t->disk = NULL;
	t->cap = 0;
}

static void
table_insert_slot(replay_state *st, slot_table *t, uint64_t hash, rrow *row)
{
	size_t mask = t->cap - 1;
	size_t i = hash & mask;

	while (slot_get(st, t, i).row != NULL)
		i = (i + 1) & mask;
	slot_set(st, t, i, hash, row);
}

static void
table_grow(replay_state *st)
{
	size_t ncap = st->tab.cap ? st->tab.cap * 2 : 1024;
	slot_table nt;

	slot_table_init(st, &nt, ncap);
	if (st->io_failed)
	{
		/* Keep the old table: the caller stops at io_check before it fills up. */
		slot_table_free(&nt);
		return;
	}
	for (size_t i = 0; i < st->tab.cap; i++)
	{
		rslot s = slot_get(st, &st->tab, i);

		if (s.row)
			table_insert_slot(st, &nt, s.hash, s.row);
	}
	slot_table_free(&st->tab);
	st->tab = nt;
}

static void
table_add(replay_state *st, uint64_t hash, rrow *row)
{
	if ((st->count + 1) * 10 > st->tab.cap * 7)
		table_grow(st);
	table_insert_slot(st, &st->tab, hash, row);
	st->count++;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void
table_remove_at(replay_state *st, size_t i)
{
	size_t mask = st->tab.cap - 1;
	size_t j = i;

	for (;;)
	{
		size_t k;
		rslot sj;

		j = (j + 1) & mask;
		sj = slot_get(st, &st->tab, j);
		if (sj.row == NULL)
			break;
		k = sj.hash & mask;
		if ((i <= j) ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		slot_set(st, &st->tab, i, sj.hash, sj.row);
		i = j;
	}
	slot_set(st, &st->tab, i, 0, NULL);
	st->count--;
}

/*
 * Find rows whose key (in cur_layout) equals probe's.  *first gets the first match's slot
 * (SIZE_MAX if none); *nmatch counts matches, scanning on only when want_all.
 * skip (may be SIZE_MAX) excludes one slot.
 */
static int
table_find(replay_state *st, const replay_value *probe, uint64_t hash, bool want_all, size_t skip,
		   size_t *first, int *nmatch, bs_error *err)
{
	size_t mask = st->tab.cap - 1;
	rslot sl;

	*first = SIZE_MAX;
	*nmatch = 0;
	if (st->tab.cap == 0)
		return BS_OK;
	for (size_t i = hash & mask; (sl = slot_get(st, &st->tab, i)).row != NULL; i = (i + 1) & mask)
	{
		if (sl.hash != hash || i == skip)
			continue;
		if (row_values(st, sl.row, st->cur_layout, st->v_cand, st->v_raw2, &st->rb_find, err) != BS_OK)
			return BS_ERR;
		if (!key_equal(st, probe, st->v_cand))
			continue;
		if (*nmatch == 0)
			*first = i;
		(*nmatch)++;
		if (!want_all)
			break;
	}
	return BS_OK;
}

static uint64_t
row_hash(replay_state *st, const rrow *r, bs_error *err, bool *ok)
{
	*ok = row_values(st, r, st->cur_layout, st->v_cand, st->v_raw2, &st->rb_find, err) == BS_OK;
	return *ok ? key_hash(st, st->v_cand) : 0;
}

/* ---------- keys touched by change records (streaming) ---------- */

static inline uint64_t
set_get(replay_state *st, const hash_set *t, size_t i)
{
	uint64_t h = 0;
	bs_error e;

	if (t->mem)
		return t->mem[i];
	if (spill_array_get(t->disk, i, &h, &e) != BS_OK)
	{
		io_fail(st, &e);
		h = 0;
	}
	return h;
}

/* The filter's bit of h: other bits of h than the slot's (the hashes are mixed). */
static inline uint64_t
filter_bit(const hash_set *t, uint64_t h)
{
	return ((h >> 29) | (h << 35)) & t->fmask;
}

/* Put h (nonzero) into the set's slots; true when it was not there yet. */
static bool
touched_put(replay_state *st, hash_set *t, uint64_t h)
{
	size_t mask = t->cap - 1;
	size_t i = h & mask;
	uint64_t x;
	bs_error e;

	if (t->filter)
	{
		uint64_t b = filter_bit(t, h);

		t->filter[b / 64] |= UINT64_C(1) << (b % 64);
	}
	while ((x = set_get(st, t, i)) != 0 && x != h)
		i = (i + 1) & mask;
	if (x == h)
		return false;
	if (t->mem)
		t->mem[i] = h;
	else if (spill_array_put(t->disk, i, &h, &e) != BS_OK)
		io_fail(st, &e);
	return true;
}

static void
touched_add(replay_state *st, uint64_t h)
{
	hash_set *t = &st->touched;

	if (h == 0)
		h = 1;					/* 0 marks an empty slot; a shared hash only sends more rows through the state */
	if ((t->count + 1) * 2 > t->cap)
	{
		hash_set n = {NULL, NULL, t->cap ? t->cap * 2 : 1024, 0, NULL, 0};
		uint64_t fbits;
		bs_error e;

		if (st->mem_limit > 0 && (uint64_t) n.cap * sizeof(uint64_t) > INDEX_SHARE(st->mem_limit))
		{
			if (spill_array_create(st->spill_dir, "backstop-keys-", sizeof(uint64_t), n.cap, &n.disk, &e) != BS_OK)
			{
				error_prefix(&e, "the keys touched beyond the memory limit");
				io_fail(st, &e);
				return;
			}
			st->index_spills++;
		}
		else
			n.mem = xcalloc(n.cap, sizeof(uint64_t));
		/* The filter stays in memory: within an eighth of the index's share of the limit
		 * (fewer bits per slot only make more lookups probe). */
		fbits = (uint64_t) n.cap * FILTER_BITS_PER_SLOT;
		while (st->mem_limit > 0 && fbits > 512 && fbits / 8 > INDEX_SHARE(st->mem_limit) / 8)
			fbits /= 2;
		n.filter = xcalloc((size_t) (fbits / 64), sizeof(uint64_t));
		n.fmask = fbits - 1;
		for (size_t i = 0; i < t->cap; i++)
		{
			uint64_t x = set_get(st, t, i);

			if (x)
				(void) touched_put(st, &n, x);
		}
		free(t->mem);
		free(t->filter);
		spill_array_free(t->disk);
		n.count = t->count;
		*t = n;
	}
	if (touched_put(st, t, h))
		t->count++;
}

static bool
touched_has(replay_state *st, uint64_t h)
{
	const hash_set *t = &st->touched;
	size_t mask;
	uint64_t x;

	if (t->cap == 0)
		return false;
	if (h == 0)
		h = 1;
	if (t->filter)
	{
		uint64_t b = filter_bit(t, h);

		if (!(t->filter[b / 64] & (UINT64_C(1) << (b % 64))))
			return false;
	}
	mask = t->cap - 1;
	for (size_t i = h & mask; (x = set_get(st, t, i)) != 0; i = (i + 1) & mask)
		if (x == h)
			return true;
	return false;
}

/* ---------- layouts and keys ---------- */

static void
compute_key(const manifest_layout *l, bool *keyed, int *nkey, int *keypos)
{
	int n = 0;

	if (l->replident == 'd' || l->replident == 'i')
		for (int i = 0; i < l->ncols; i++)
			if (l->columns[i].key)
				keypos[n++] = i;
	*keyed = n > 0;
	if (n == 0)
		for (int i = 0; i < l->ncols; i++)
			keypos[n++] = i;
	*nkey = n;
}

static bool
same_key(const replay_state *st, const manifest_layout *a, bool akeyed, int an, const int *apos,
		 const manifest_layout *b, bool bkeyed, int bn, const int *bpos)
{
	(void) st;
	if (akeyed != bkeyed || an != bn)
		return false;
	for (int i = 0; i < an; i++)
	{
		const manifest_column *x = &a->columns[apos[i]];
		const manifest_column *y = &b->columns[bpos[i]];

		if (strcmp(x->name, y->name) != 0 || strcmp(col_type(x), col_type(y)) != 0 ||
			(x->missing == NULL) != (y->missing == NULL))
			return false;
	}
	return true;
}

/* Rows of layout a are rows of layout b as they are: same columns, same types, same key. */
static bool
layouts_equivalent(const replay_state *st, uint32_t a, uint32_t b)
{
	const manifest_layout *x = &st->layouts[a];
	const manifest_layout *y = &st->layouts[b];
	int *xpos,
			   *ypos;
	bool xkeyed,
		ykeyed,
		same;
	int xn,
		yn;

	if (a == b)
		return true;
	if (x->ncols != y->ncols)
		return false;
	for (int i = 0; i < x->ncols; i++)
		if (strcmp(x->columns[i].name, y->columns[i].name) != 0 ||
			strcmp(col_type(&x->columns[i]), col_type(&y->columns[i])) != 0)
			return false;
	xpos = xcalloc((size_t) x->ncols + 1, sizeof(int));
	ypos = xcalloc((size_t) y->ncols + 1, sizeof(int));
	compute_key(x, &xkeyed, &xn, xpos);
	compute_key(y, &ykeyed, &yn, ypos);
	same = xkeyed == ykeyed && xn == yn && memcmp(xpos, ypos, (size_t) xn * sizeof(int)) == 0;
	free(xpos);
	free(ypos);
	return same;
}

/* Make `id` the current layout; rehash every row when the key it defines differs. */
static int
set_layout(replay_state *st, uint32_t id, bs_error *err)
{
	const manifest_layout *nl = &st->layouts[id];
	int *npos;
	bool nkeyed;
	int nkey;

	if (st->have_layout && st->cur_layout == id)
		return BS_OK;
	npos = xcalloc((size_t) nl->ncols + 1, sizeof(int));
	compute_key(nl, &nkeyed, &nkey, npos);
	if (st->have_layout &&
		same_key(st, &st->layouts[st->cur_layout], st->keyed, st->nkey, st->keypos, nl, nkeyed, nkey, npos))
	{
		st->cur_layout = id;
		free(st->keypos);
		st->keypos = npos;
		return BS_OK;
	}
	st->have_layout = true;
	st->cur_layout = id;
	st->keyed = nkeyed;
	st->nkey = nkey;
	free(st->keypos);
	st->keypos = npos;
	if (st->count > 0)
	{
		slot_table old = st->tab;

		slot_table_init(st, &st->tab, old.cap);
		for (size_t i = 0; i < old.cap; i++)
		{
			bool ok;
			uint64_t h;
			rslot sl = slot_get(st, &old, i);

			if (sl.row == NULL)
				continue;
			h = row_hash(st, sl.row, err, &ok);
			if (!ok)
			{
				/* Keep every row reachable so that replay_free releases it. */
				for (size_t k = i; k < old.cap; k++)
				{
					sl = slot_get(st, &old, k);
					if (sl.row)
						table_insert_slot(st, &st->tab, 0, sl.row);
				}
				slot_table_free(&old);
				return io_check(st, BS_ERR, err);
			}
			table_insert_slot(st, &st->tab, h, sl.row);
		}
		slot_table_free(&old);
	}
	return io_check(st, BS_OK, err);
}

/*
 * Inside the state a layout is its position in layouts (sorted by from_lsn: the chain of
 * changes get_map walks); the API speaks the manifest's ids, translated here.
 */
static int
layout_pos(const replay_state *st, uint32_t id, uint32_t *pos)
{
	for (int i = 0; i < st->nlayouts; i++)
		if (st->layouts[i].id == id)
		{
			*pos = (uint32_t) i;
			return BS_OK;
		}
	return BS_ERR;
}

/* ---------- public API ---------- */

int
replay_new(int nlayouts, const manifest_layout *layouts, replay_state **out, bs_error *err)
{
	replay_state *st;
	int maxcols = 1;

	*out = NULL;
	if (nlayouts <= 0 || layouts == NULL)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "the manifest has no layouts");
	for (int i = 0; i < nlayouts; i++)
	{
		/* Records and bases name layouts by id; ids are unique, in any order (FORMAT.md). */
		for (int k = 0; k < i; k++)
			if (layouts[k].id == layouts[i].id)
				return error_set(err, ERRCODE_DATA_CORRUPTED, "manifest layouts %d and %d carry the same id %u", k,
								 i, layouts[i].id);
		if (layouts[i].ncols < 0 || (layouts[i].ncols > 0 && layouts[i].columns == NULL))
			return error_set(err, ERRCODE_DATA_CORRUPTED, "manifest layout %d has no columns", i);
		if (layouts[i].ncols > maxcols)
			maxcols = layouts[i].ncols;
	}
	st = xcalloc(1, sizeof(*st));
	st->nlayouts = nlayouts;
	st->layouts = layouts;
	st->maxcols = maxcols;
	st->maps = xcalloc((size_t) nlayouts * (size_t) nlayouts, sizeof(colmap));
	st->v_probe = xcalloc((size_t) maxcols, sizeof(replay_value));
	st->v_old = xcalloc((size_t) maxcols, sizeof(replay_value));
	st->v_new = xcalloc((size_t) maxcols, sizeof(replay_value));
	st->v_cand = xcalloc((size_t) maxcols, sizeof(replay_value));
	st->v_raw = xcalloc((size_t) maxcols, sizeof(replay_value));
	st->v_raw2 = xcalloc((size_t) maxcols, sizeof(replay_value));
	st->v_split = xcalloc((size_t) maxcols, sizeof(replay_value));
	*out = st;
	return BS_OK;
}

static void
table_clear(replay_state *st)
{
	if (st->tab.disk)
	{
		/* Start over in memory: the next rows may be few. */
		for (size_t i = 0; i < st->tab.cap; i++)
		{
			rslot sl = slot_get(st, &st->tab, i);

			if (!IS_SPILLED(sl.row))
				free(sl.row);
		}
		slot_table_free(&st->tab);
	}
	for (size_t i = 0; i < st->tab.cap; i++)
	{
		if (!IS_SPILLED(st->tab.mem[i].row))
			free(st->tab.mem[i].row);
		st->tab.mem[i].row = NULL;
		st->tab.mem[i].hash = 0;
	}
	st->count = 0;
	st->ndup = 0;
	st->mem_rows = 0;
	/* No row is left in the file: start it over (a TRUNCATE and a reload reuse it). */
	if (st->spill)
	{
		bs_error e;

		/* On failure the file just keeps growing from where it is: unused space is harmless. */
		(void) spill_truncate(st->spill, 0, &e);
	}
}

/* Memory the state's index takes (not spilled): the slots and the touched keys. */
static uint64_t
index_bytes(const replay_state *st)
{
	return (st->tab.mem ? (uint64_t) st->tab.cap * sizeof(rslot) : SPILL_ARRAY_WINDOW) +
		(st->touched.mem ? (uint64_t) st->touched.cap * sizeof(uint64_t) : SPILL_ARRAY_WINDOW) +
		(st->touched.filter ? (st->touched.fmask + 1) / 8 : 0);
}

/*
 * Keep a freshly encoded row: in memory while the rows and the index stay within the
 * limit, else appended to the spill file (and freed).  *out is what the slot holds.
 */
static int
row_keep(replay_state *st, rrow *r, rrow **out, bs_error *err)
{
	uint64_t size = sizeof(rrow) + r->len;

	if (st->mem_limit == 0 || st->mem_rows + size + index_bytes(st) <= st->mem_limit)
	{
		st->mem_rows += size;
		*out = r;
		return BS_OK;
	}
	if (st->spill == NULL && spill_create_temp(st->spill_dir, "backstop-rows-", &st->spill, err) != BS_OK)
	{
		free(r);
		return error_prefix(err, "rows beyond the memory limit");
	}
	*out = SPILLED(spill_size(st->spill));
	if (spill_append(st->spill, r, (size_t) size, err) != BS_OK)
	{
		free(r);
		return error_prefix(err, "rows beyond the memory limit");
	}
	st->spilled_rows++;
	st->spilled_bytes += size;
	free(r);
	return BS_OK;
}

/* Let go of a slot's row (its file space is only reused after a TRUNCATE). */
static void
row_release(replay_state *st, rrow *r)
{
	if (r == NULL || IS_SPILLED(r))
		return;
	st->mem_rows -= sizeof(rrow) + r->len;
	free(r);
}

static void split_worker_stop(replay_state *st);

void
replay_free(replay_state *st)
{
	if (st == NULL)
		return;
	split_worker_stop(st);
	table_clear(st);
	slot_table_free(&st->tab);
	for (size_t i = 0; i < (size_t) st->nlayouts * (size_t) st->nlayouts; i++)
	{
		colmap *m = &st->maps[i];

		if (!m->ready)
			continue;
		for (int j = 0; j < m->ncols; j++)
			free(m->why[j]);
		free(m->src);
		free(m->cval);
		free(m->why);
	}
	free(st->maps);
	free(st->keypos);
	free(st->v_probe);
	free(st->v_old);
	free(st->v_new);
	free(st->v_cand);
	free(st->v_raw);
	free(st->v_raw2);
	free(st->v_split);
	strbuf_free(&st->split_tmp);
	strbuf_free(&st->enc);
	strbuf_free(&st->tmp);
	strbuf_free(&st->tmp2);
	strbuf_free(&st->rectext);
	strbuf_free(&st->rb_find);
	strbuf_free(&st->rb_old);
	spill_close(st->spill);
	free(st->spill_dir);
	free(st->touched.mem);
	free(st->touched.filter);
	spill_array_free(st->touched.disk);
	free(st);
}

void
replay_set_change_callback(replay_state *st, replay_change_cb cb, void *ctx)
{
	st->cb = cb;
	st->cbctx = ctx;
}

void
replay_set_memory_limit(replay_state *st, uint64_t limit, const char *dir)
{
	st->mem_limit = limit;
	free(st->spill_dir);
	st->spill_dir = dir ? xstrdup(dir) : NULL;
}

void
replay_spill_stats(const replay_state *st, uint64_t *rows, uint64_t *bytes)
{
	*rows = st->spilled_rows;
	*bytes = st->spilled_bytes;
}

uint64_t
replay_index_spills(const replay_state *st)
{
	return st->index_spills;
}

uint64_t
replay_row_count(const replay_state *st)
{
	return st->count;
}

uint32_t
replay_current_layout(const replay_state *st)
{
	return st->have_layout ? st->layouts[st->cur_layout].id : st->layouts[0].id;
}

/* Insert an encoded row (in memory; vals may point into it), counting keys that are
 * already present. */
static int
insert_row(replay_state *st, rrow *r, const replay_value *vals, const char *where, bs_error *err)
{
	uint64_t h = key_hash(st, vals);
	rrow *kept;

	if (st->keyed)
	{
		size_t first;
		int n;

		if (table_find(st, vals, h, false, SIZE_MAX, &first, &n, err) != BS_OK)
		{
			free(r);
			return BS_ERR;
		}
		if (n > 0)
		{
			if (st->ndup == 0)
				snprintf(st->dup_where, sizeof(st->dup_where), "%s", where);
			st->ndup++;
		}
	}
	/* Grow first: the index counts against the limit before the row is placed. */
	if ((st->count + 1) * 10 > st->tab.cap * 7)
		table_grow(st);
	/* A table that could not grow must not fill up: stop here. */
	if (st->io_failed)
	{
		free(r);
		return io_check(st, BS_ERR, err);
	}
	if (row_keep(st, r, &kept, err) != BS_OK)
		return BS_ERR;
	table_add(st, h, kept);
	return BS_OK;
}

/* Remove the row in slot i (already matched), keeping the duplicate count right. */
static int
remove_row(replay_state *st, size_t i, const replay_value *keyvals, bs_error *err)
{
	rslot sl = slot_get(st, &st->tab, i);
	uint64_t h = sl.hash;

	if (st->keyed && st->ndup > 0)
	{
		size_t first;
		int n;

		if (table_find(st, keyvals, h, false, i, &first, &n, err) != BS_OK)
			return BS_ERR;
		if (n > 0)
			st->ndup--;
	}
	row_release(st, sl.row);
	table_remove_at(st, i);
	return BS_OK;
}

/* ---------- the split worker ---------- */

struct split_out;
static int load_base_lines(replay_state *st, uint32_t layout_id, const char *text, size_t len, const char *what,
						   struct split_out *so, bs_error *err);

static void *
split_worker_main(void *arg)
{
	replay_state *st = arg;
	split_worker *w = st->worker;

	pthread_mutex_lock(&w->mu);
	for (;;)
	{
		strbuf *b;
		const char *what;
		bs_error e;
		int rc;

		while (w->count == 0 && !w->done)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->count == 0)
			break;
		b = &w->q[w->head];
		what = w->what[w->head];
		pthread_mutex_unlock(&w->mu);
		rc = io_check(st, load_base_lines(st, w->layout, b->data ? b->data : "", b->len, what, NULL, &e), &e);
		pthread_mutex_lock(&w->mu);
		strbuf_reset(b);
		free(w->what[w->head]);
		w->what[w->head] = NULL;
		w->head = (w->head + 1) % w->depth;
		w->count--;
		pthread_cond_broadcast(&w->cv);
		if (rc != BS_OK)
		{
			w->failed = true;
			w->err = e;
			break;
		}
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Queue the gathered lines for the worker, waiting for room; its failure, if any. */
static int
split_push(split_worker *w, bs_error *err)
{
	int rc = BS_OK;

	pthread_mutex_lock(&w->mu);
	while (!w->failed && w->count == w->depth)
		pthread_cond_wait(&w->cv, &w->mu);
	if (!w->failed && w->cur.len > 0)
	{
		int slot = (w->head + w->count) % w->depth;
		strbuf t = w->q[slot];

		/* Swap buffers: the queued one keeps the lines, cur reuses an old allocation. */
		w->q[slot] = w->cur;
		w->what[slot] = w->cur_what;
		w->cur = t;
		w->cur_what = NULL;
		w->count++;
		pthread_cond_broadcast(&w->cv);
	}
	if (w->failed)
	{
		*err = w->err;
		rc = BS_ERR;
	}
	pthread_mutex_unlock(&w->mu);
	strbuf_reset(&w->cur);
	free(w->cur_what);
	w->cur_what = NULL;
	return rc;
}

/*
 * A touched base line: handed to the worker (started on the first one, when the touched
 * keys are in memory and a thread can be had); else st->worker stays NULL and the caller
 * loads it inline.
 */
static int
split_defer(replay_state *st, uint32_t layout, const char *line, size_t len, const char *what, bs_error *err)
{
	split_worker *w = st->worker;

	if (w == NULL)
	{
		if (st->touched.mem == NULL || st->count > 0)
			return BS_OK;
		w = xcalloc(1, sizeof(*w));
		w->layout = layout;
		w->depth = SPLIT_QUEUE;
		if (st->mem_limit > 0 && st->mem_limit / 16 / SPLIT_BATCH < SPLIT_QUEUE)
			w->depth = st->mem_limit / 16 / SPLIT_BATCH < 2 ? 2 : (int) (st->mem_limit / 16 / SPLIT_BATCH);
		pthread_mutex_init(&w->mu, NULL);
		pthread_cond_init(&w->cv, NULL);
		st->worker = w;
		if (pthread_create(&w->th, NULL, split_worker_main, st) != 0)
		{
			pthread_cond_destroy(&w->cv);
			pthread_mutex_destroy(&w->mu);
			free(w);
			st->worker = NULL;
			return BS_OK;
		}
	}
	/* One chunk per buffer, so that messages name the right one. */
	if (w->cur.len > 0 && (w->cur.len >= SPLIT_BATCH || strcmp(w->cur_what, what) != 0) &&
		split_push(w, err) != BS_OK)
		return BS_ERR;
	if (w->cur_what == NULL)
		w->cur_what = xstrdup(what);
	strbuf_append(&w->cur, line, len);
	return BS_OK;
}

/* Join the worker (after the rest of its lines are loaded, unless stop); its failure. */
static int
split_worker_join(replay_state *st, bool stop, bs_error *err)
{
	split_worker *w = st->worker;
	int rc = BS_OK;

	if (w == NULL)
		return BS_OK;
	if (!stop && w->cur.len > 0)
		rc = split_push(w, err);
	pthread_mutex_lock(&w->mu);
	w->done = true;
	if (stop && w->count > 1)
	{
		/* Drop what is queued but not yet begun. */
		for (int i = 1; i < w->count; i++)
		{
			int k = (w->head + i) % w->depth;

			strbuf_reset(&w->q[k]);
			free(w->what[k]);
			w->what[k] = NULL;
		}
		w->count = 1;
	}
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->th, NULL);
	if (rc == BS_OK && w->failed)
	{
		*err = w->err;
		rc = BS_ERR;
	}
	for (int i = 0; i < SPLIT_QUEUE; i++)
	{
		strbuf_free(&w->q[i]);
		free(w->what[i]);
	}
	strbuf_free(&w->cur);
	free(w->cur_what);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
	st->worker = NULL;
	return rc;
}

static void
split_worker_stop(replay_state *st)
{
	bs_error e;

	(void) split_worker_join(st, true, &e);
}

int
replay_split_finish(replay_state *st, bs_error *err)
{
	return io_check(st, split_worker_join(st, false, err), err);
}

/* Unescape one COPY text field into out; returns false on a malformed escape. */
static bool
copy_unescape(const char *s, size_t n, strbuf *out)
{
	size_t i = 0;

	while (i < n)
	{
		const char *bs = memchr(s + i, '\\', n - i);
		size_t run = bs ? (size_t) (bs - (s + i)) : n - i;

		strbuf_append(out, s + i, run);
		i += run;
		if (i >= n)
			break;
		i++;					/* the backslash */
		if (i >= n)
			return false;
		switch (s[i])
		{
			case 'b': strbuf_append_char(out, '\b'); i++; break;
			case 'f': strbuf_append_char(out, '\f'); i++; break;
			case 'n': strbuf_append_char(out, '\n'); i++; break;
			case 'r': strbuf_append_char(out, '\r'); i++; break;
			case 't': strbuf_append_char(out, '\t'); i++; break;
			case 'v': strbuf_append_char(out, '\v'); i++; break;
			case 'x':
				{
					int v = 0,
						k = 0;

					i++;
					while (k < 2 && i < n && ((s[i] >= '0' && s[i] <= '9') || ((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'f')))
					{
						v = v * 16 + (s[i] <= '9' ? s[i] - '0' : (s[i] | 0x20) - 'a' + 10);
						i++;
						k++;
					}
					if (k == 0)
						strbuf_append_char(out, 'x');	/* PostgreSQL takes "\x" alone as "x" */
					else
						strbuf_append_char(out, (char) v);
					break;
				}
			default:
				if (s[i] >= '0' && s[i] <= '7')
				{
					int v = 0,
						k = 0;

					while (k < 3 && i < n && s[i] >= '0' && s[i] <= '7')
					{
						v = v * 8 + (s[i] - '0');
						i++;
						k++;
					}
					strbuf_append_char(out, (char) (v & 0xff));
				}
				else
					strbuf_append_char(out, s[i++]);	/* \\ and any other character */
				break;
		}
	}
	return true;
}

/* Add one row to a content checksum; scratch holds its record text. */
static void
checksum_add(replay_checksum *sum, strbuf *scratch, int ncols, const replay_value *vals)
{
	strbuf_reset(scratch);
	replay_record_text(scratch, ncols, vals);
	sum->sum += pghash_text(scratch->data, scratch->len);
	sum->rows++;
}

/* Bypass output of a streaming base load: runs of consecutive untouched lines. */
typedef struct split_out
{
	replay_copy_cb cb;
	void *ctx;
	replay_checksum *sum;
	uint64_t *passed;
	const char *run;
	size_t runlen;
} split_out;

/* Runs are sent at about this size so that PostgreSQL starts loading early. */
#define SPLIT_RUN_FLUSH (1024 * 1024)

static int
split_flush(split_out *so, bs_error *err)
{
	int rc = BS_OK;

	if (so->runlen > 0)
		rc = so->cb(so->ctx, so->run, so->runlen, err);
	so->runlen = 0;
	return rc;
}

/*
 * Parse base copy lines into the state, or (so != NULL) pass those whose key no change
 * record touches straight to so->cb, adding them to so->sum.
 */
static int
load_base_lines(replay_state *st, uint32_t layout_id, const char *text, size_t len, const char *what,
				split_out *so, bs_error *err)
{
	const manifest_layout *l;
	size_t pos = 0;
	uint64_t lineno = 0;
	size_t *offs;
	/* Splitting, the worker may be using v_probe and tmp. */
	replay_value *vals = so ? st->v_split : st->v_probe;
	strbuf *tmp = so ? &st->split_tmp : &st->tmp;
	int rc = BS_ERR;

	if (layout_id >= (uint32_t) st->nlayouts)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "%s: base layout %u is not in the manifest", what, layout_id);
	if (set_layout(st, layout_id, err) != BS_OK)
		return BS_ERR;
	l = &st->layouts[layout_id];
	if (len > 0 && text[len - 1] != '\n')
		return error_set(err, ERRCODE_DATA_CORRUPTED, "%s: the base copy chunk does not end at a line boundary", what);
	offs = xcalloc((size_t) l->ncols + 1, sizeof(size_t));
	while (pos < len)
	{
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen = (size_t) (nl - line);
		int nf = 0;
		rrow *r;

		pos += llen + 1;
		lineno++;
		if (llen == 2 && line[0] == '\\' && line[1] == '.')
		{
			if (pos < len)
			{
				error_set(err, ERRCODE_DATA_CORRUPTED, "%s: end-of-data marker before the end (line %llu)",
						  what, (unsigned long long) lineno);
				goto done;
			}
			break;
		}
		strbuf_reset(tmp);
		/*
		 * Fields without a backslash are used where they are; the others are unescaped
		 * into tmp (which may move), and pointed into once the line is done.
		 */
		if (l->ncols > 0)
		{
			const char *p = line;
			const char *lend = line + llen;

			for (;;)
			{
				const char *tab = memchr(p, '\t', (size_t) (lend - p));
				const char *fend = tab ? tab : lend;
				size_t flen = (size_t) (fend - p);

				if (nf >= l->ncols)
				{
					nf++;
					break;
				}
				if (flen == 2 && p[0] == '\\' && p[1] == 'N')
				{
					vals[nf].isnull = true;
					offs[nf] = SIZE_MAX;
				}
				else if (memchr(p, '\\', flen) == NULL)
				{
					vals[nf].isnull = false;
					vals[nf].data = p;
					vals[nf].len = (uint32_t) flen;
					offs[nf] = SIZE_MAX;
				}
				else
				{
					vals[nf].isnull = false;
					offs[nf] = tmp->len;
					if (!copy_unescape(p, flen, tmp))
					{
						error_set(err, ERRCODE_DATA_CORRUPTED, "%s: line %llu, column %d: malformed escape",
								  what, (unsigned long long) lineno, nf + 1);
						goto done;
					}
					vals[nf].len = (uint32_t) (tmp->len - offs[nf]);
				}
				nf++;
				if (tab == NULL)
					break;
				p = tab + 1;
			}
		}
		if (nf != l->ncols || (l->ncols == 0 && llen != 0))
		{
			error_set(err, ERRCODE_DATA_CORRUPTED, "%s: line %llu has %s columns than layout %u (%d)",
					  what, (unsigned long long) lineno, nf > l->ncols ? "more" : "fewer",
					  l->id, l->ncols);
			goto done;
		}
		for (int c = 0; c < nf; c++)
			if (offs[c] != SIZE_MAX)
				vals[c].data = tmp->data + offs[c];
		if (so && !touched_has(st, key_hash(st, vals)))
		{
			/* No change touches this row: it goes out exactly as archived. */
			if (so->runlen == 0)
				so->run = line;
			so->runlen += llen + 1;
			checksum_add(so->sum, &st->rectext, l->ncols, vals);
			(*so->passed)++;
			if (so->runlen >= SPLIT_RUN_FLUSH && split_flush(so, err) != BS_OK)
				goto done;
			continue;
		}
		if (so && split_flush(so, err) != BS_OK)
			goto done;
		if (so && split_defer(st, layout_id, line, llen + 1, what, err) != BS_OK)
			goto done;
		if (so && st->worker)
			continue;
		r = row_encode(st, layout_id, l->ncols, vals);
		if (insert_row(st, r, vals, what, err) != BS_OK)
			goto done;
	}
	if (so && split_flush(so, err) != BS_OK)
		goto done;
	rc = BS_OK;
done:
	free(offs);
	return rc;
}

int
replay_load_base_copy(replay_state *st, uint32_t layout_id, const char *text, size_t len,
					  const char *what, bs_error *err)
{
	uint32_t pos;

	if (layout_pos(st, layout_id, &pos) != BS_OK)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "%s: base layout %u is not in the manifest", what, layout_id);
	return io_check(st, load_base_lines(st, pos, text, len, what, NULL, err), err);
}

int
replay_stream_begin(replay_state *st, uint32_t base_layout, bs_error *err)
{
	uint32_t pos;

	if (layout_pos(st, base_layout, &pos) != BS_OK)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "base layout %u is not in the manifest", base_layout);
	if (st->count > 0 || st->streaming)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "streaming must begin on an empty state");
	if (set_layout(st, pos, err) != BS_OK)
		return BS_ERR;
	st->streaming = true;
	return BS_OK;
}

int
replay_split_base_copy(replay_state *st, uint32_t layout_id, const char *text, size_t len, const char *what,
					   replay_copy_cb cb, void *ctx, replay_checksum *sum, uint64_t *passed, bs_error *err)
{
	split_out so = {cb, ctx, sum, passed, NULL, 0};
	uint32_t pos;

	int rc;

	if (!st->streaming || layout_pos(st, layout_id, &pos) != BS_OK || pos != st->cur_layout)
		return error_set(err, ERRCODE_INVALID_PARAMETER,
						 "%s: a streaming base load needs replay_stream_begin with its layout", what);
	rc = load_base_lines(st, pos, text, len, what, &so, err);
	/* While the worker runs, the state's failures are its own (replay_split_finish). */
	return st->worker ? rc : io_check(st, rc, err);
}

/* "commit LSN X/Y (xid N)" for messages. */
static const char *
rec_where(const segment_record *rec, char *buf, size_t size)
{
	char a[LSN_BUFLEN],
		b[LSN_BUFLEN];

	snprintf(buf, size, "record %c at commit LSN %s (end LSN %s, xid %u)", rec->op,
			 lsn_format(rec->commit_lsn, a), lsn_format(rec->end_lsn, b), rec->xid);
	return buf;
}

/* Key values as text for messages: at most about 200 bytes. */
static const char *
key_text(replay_state *st, const replay_value *v)
{
	strbuf_reset(&st->tmp2);
	for (int i = 0; i < st->nkey; i++)
	{
		const replay_value *x = &v[st->keypos[i]];
		const manifest_column *c = &st->layouts[st->cur_layout].columns[st->keypos[i]];

		strbuf_printf(&st->tmp2, "%s%s=", i ? ", " : "", c->name);
		if (x->isnull)
			strbuf_append_str(&st->tmp2, "NULL");
		else
			strbuf_append(&st->tmp2, x->data, x->len > 64 ? 64 : x->len);
		if (st->tmp2.len > 200)
		{
			strbuf_append_str(&st->tmp2, "...");
			break;
		}
	}
	return st->tmp2.data ? st->tmp2.data : "";
}

/* Parse a tuple of rec into vals; *has_unchanged tells whether any column was 'u'. */
static int
tuple_values(replay_state *st, const segment_record *rec, const uint8_t *buf, size_t len,
			 pgo_tuple *t, replay_value *vals, bool *has_unchanged, const char *which, bs_error *err)
{
	const manifest_layout *l = &st->layouts[rec->layout_id];
	char where[160];

	if (pgo_tuple_parse(buf, len, t, NULL, err) != BS_OK)
	{
		error_prefix(err, "%s, %s tuple", rec_where(rec, where, sizeof(where)), which);
		memcpy(err->code, ERRCODE_DATA_CORRUPTED, sizeof(err->code));
		return BS_ERR;
	}
	if (t->ncols != l->ncols)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "%s: %s tuple has %d columns but layout %u has %d",
				  rec_where(rec, where, sizeof(where)), which, t->ncols, l->id, l->ncols);
		pgo_tuple_free(t);
		return BS_ERR;
	}
	*has_unchanged = false;
	for (int i = 0; i < t->ncols; i++)
	{
		const pgo_value *pv = &t->values[i];

		vals[i].isnull = pv->kind == 'n';
		vals[i].data = pv->kind == 't' ? pv->data : NULL;
		vals[i].len = pv->kind == 't' ? pv->len : 0;
		if (pv->kind == 'u')
		{
			vals[i].len = UNCHANGED_LEN;
			*has_unchanged = true;
		}
		else if (pv->kind != 't' && pv->kind != 'n')
		{
			error_set(err, ERRCODE_DATA_CORRUPTED, "%s: %s tuple column %d has kind '%c' (only text is archived)",
					  rec_where(rec, where, sizeof(where)), which, i + 1, pv->kind);
			pgo_tuple_free(t);
			return BS_ERR;
		}
	}
	return BS_OK;
}

/* The first key column of a probe that was not sent ('u'), or -1 when all are known. */
static int
unknown_key_column(const replay_state *st, const replay_value *probe)
{
	for (int i = 0; i < st->nkey; i++)
		if (!probe[st->keypos[i]].isnull && probe[st->keypos[i]].len == UNCHANGED_LEN)
			return st->keypos[i];
	return -1;
}

/* The key columns of a probe must all be known. */
static int
check_probe(replay_state *st, const segment_record *rec, const replay_value *probe, const char *which,
			bs_error *err)
{
	char where[160];
	int col = unknown_key_column(st, probe);

	if (col >= 0)
		return error_set(err, ERRCODE_DATA_CORRUPTED,
						 "%s: the %s tuple's identity column \"%s\" is an unchanged TOASTed value; "
						 "the row cannot be identified",
						 rec_where(rec, where, sizeof(where)), which,
						 st->layouts[st->cur_layout].columns[col].name);
	return BS_OK;
}

/* Find the single row matching probe; error when absent or ambiguous. */
static int
locate(replay_state *st, const segment_record *rec, const replay_value *probe, size_t *slot, bs_error *err)
{
	uint64_t h = key_hash(st, probe);
	int n;
	char where[160];

	/* Identical rows of a table without a key are interchangeable: any one will do. */
	if (table_find(st, probe, h, st->keyed && st->ndup > 0, SIZE_MAX, slot, &n, err) != BS_OK)
		return error_prefix(err, "%s", rec_where(rec, where, sizeof(where)));
	if (n == 0)
		return error_set(err, ERRCODE_DATA_CORRUPTED,
						 "%s: %s of a row that is not in the table (%s; %s)",
						 rec_where(rec, where, sizeof(where)), rec->op == 'U' ? "UPDATE" : "DELETE",
						 st->keyed ? "key" : "whole row", key_text(st, probe));
	if (n > 1)
		return error_set(err, ERRCODE_DATA_CORRUPTED,
						 "%s: %s matches %d rows with the same key (%s); the archive is inconsistent",
						 rec_where(rec, where, sizeof(where)), rec->op == 'U' ? "UPDATE" : "DELETE", n,
						 key_text(st, probe));
	return BS_OK;
}

/* Register the key hash of a probe tuple; false when a key column is not in it ('u'). */
static bool
touch_values(replay_state *st, const replay_value *vals)
{
	if (unknown_key_column(st, vals) >= 0)
		return false;
	touched_add(st, key_hash(st, vals));
	return true;
}

int
replay_touch(replay_state *st, const segment_record *orig, bool *streamable, bs_error *err)
{
	segment_record r = *orig;	/* layout_id: its position (layout_pos) */
	const segment_record *rec = &r;
	pgo_tuple nt,
		ot;
	bool unch,
		ok = true;
	bool have_old = rec->old_kind == 'K' || rec->old_kind == 'O';
	char where[160];

	if (!st->streaming)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "replay_touch needs replay_stream_begin");
	if (layout_pos(st, orig->layout_id, &r.layout_id) != BS_OK)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "%s: layout %u is not in the manifest",
						 rec_where(rec, where, sizeof(where)), orig->layout_id);
	/* A TRUNCATE or a different layout or key: the rows need the whole state. */
	if (rec->op == 'T' || !layouts_equivalent(st, rec->layout_id, st->cur_layout))
	{
		*streamable = false;
		return BS_OK;
	}
	memset(&nt, 0, sizeof(nt));
	memset(&ot, 0, sizeof(ot));
	if ((rec->op == 'I' || rec->op == 'U') && rec->new_tuple)
	{
		if (tuple_values(st, rec, rec->new_tuple, rec->new_len, &nt, st->v_new, &unch, "new", err) != BS_OK)
			return BS_ERR;
		/* The new key of a keyed row: a base row with it would become a duplicate.  The
		 * probe of an update without an old tuple. */
		if (st->keyed || (rec->op == 'U' && !have_old))
			ok = touch_values(st, st->v_new);
	}
	if (ok && (rec->op == 'U' || rec->op == 'D') && have_old && rec->old_tuple)
	{
		if (tuple_values(st, rec, rec->old_tuple, rec->old_len, &ot, st->v_probe, &unch, "old", err) != BS_OK)
		{
			pgo_tuple_free(&nt);
			return BS_ERR;
		}
		ok = touch_values(st, st->v_probe);
	}
	pgo_tuple_free(&nt);
	pgo_tuple_free(&ot);
	/* Anything malformed or unidentifiable is left to replay_apply, which explains it. */
	if (!ok || (rec->op == 'D' && rec->old_tuple == NULL) || (rec->op != 'D' && rec->new_tuple == NULL))
		*streamable = false;
	return io_check(st, BS_OK, err);
}

int
replay_check(replay_state *st, bs_error *err)
{
	if (st->io_failed)
		return io_check(st, BS_ERR, err);
	if (st->ndup > 0)
		return error_set(err, ERRCODE_DATA_CORRUPTED,
						 "%llu row(s) with a duplicate replica identity key remained after a transaction "
						 "(first at %s); the archive is inconsistent with the table's key",
						 (unsigned long long) st->ndup, st->dup_where);
	return BS_OK;
}

static int
apply_insert(replay_state *st, const segment_record *rec, bs_error *err)
{
	const manifest_layout *l = &st->layouts[rec->layout_id];
	pgo_tuple t;
	bool unch;
	char where[160];
	rrow *r;

	if (rec->new_tuple == NULL)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "%s: INSERT without a new tuple",
						 rec_where(rec, where, sizeof(where)));
	if (tuple_values(st, rec, rec->new_tuple, rec->new_len, &t, st->v_new, &unch, "new", err) != BS_OK)
		return BS_ERR;
	if (unch)
	{
		pgo_tuple_free(&t);
		return error_set(err, ERRCODE_DATA_CORRUPTED, "%s: INSERT carries an unchanged TOASTed value",
						 rec_where(rec, where, sizeof(where)));
	}
	r = row_encode(st, rec->layout_id, l->ncols, st->v_new);
	if (insert_row(st, r, st->v_new, rec_where(rec, where, sizeof(where)), err) != BS_OK)
	{
		pgo_tuple_free(&t);
		return BS_ERR;
	}
	if (st->cb)
	{
		replay_change ch = {st->cb_rec, l, l->ncols, NULL, st->v_new, 0};

		if (st->cb(st->cbctx, &ch, err) != BS_OK)
		{
			pgo_tuple_free(&t);
			return BS_ERR;
		}
	}
	pgo_tuple_free(&t);
	return BS_OK;
}

static int
apply_update(replay_state *st, const segment_record *rec, bs_error *err)
{
	const manifest_layout *l = &st->layouts[rec->layout_id];
	pgo_tuple nt,
		ot;
	bool unch,
		ounch = false;
	bool have_old = rec->old_kind == 'K' || rec->old_kind == 'O';
	const replay_value *probe;
	size_t slot;
	rrow *oldrow,
		*newrow;
	char where[160];
	int rc = BS_ERR;

	memset(&ot, 0, sizeof(ot));
	if (rec->new_tuple == NULL || (have_old && rec->old_tuple == NULL))
		return error_set(err, ERRCODE_DATA_CORRUPTED, "%s: UPDATE without its tuples",
						 rec_where(rec, where, sizeof(where)));
	if (tuple_values(st, rec, rec->new_tuple, rec->new_len, &nt, st->v_new, &unch, "new", err) != BS_OK)
		return BS_ERR;
	if (have_old)
	{
		if (tuple_values(st, rec, rec->old_tuple, rec->old_len, &ot, st->v_probe, &ounch, "old", err) != BS_OK)
		{
			pgo_tuple_free(&nt);
			return BS_ERR;
		}
		probe = st->v_probe;
	}
	else
		probe = st->v_new;
	if (check_probe(st, rec, probe, have_old ? "old" : "new", err) != BS_OK)
		goto done;
	if (locate(st, rec, probe, &slot, err) != BS_OK)
		goto done;
	oldrow = slot_get(st, &st->tab, slot).row;
	/* The prior image in this record's layout, for 'u' columns and the change report. */
	if (row_values(st, oldrow, rec->layout_id, st->v_old, st->v_raw, &st->rb_old, err) != BS_OK)
	{
		error_prefix(err, "%s", rec_where(rec, where, sizeof(where)));
		goto done;
	}
	for (int i = 0; unch && i < l->ncols; i++)
		if (!st->v_new[i].isnull && st->v_new[i].len == UNCHANGED_LEN)
		{
			if (st->v_old[i].isnull)
			{
				/* An unchanged TOASTed value is never NULL: the prior image is wrong. */
				error_set(err, ERRCODE_DATA_CORRUPTED,
						  "%s: column \"%s\" is an unchanged TOASTed value but the prior image has no value for it",
						  rec_where(rec, where, sizeof(where)), l->columns[i].name);
				goto done;
			}
			st->v_new[i] = st->v_old[i];
		}
	newrow = row_encode(st, rec->layout_id, l->ncols, st->v_new);
	if (st->cb)
	{
		replay_change ch = {st->cb_rec, l, l->ncols, st->v_old, st->v_new, 0};

		if (st->cb(st->cbctx, &ch, err) != BS_OK)
		{
			free(newrow);
			goto done;
		}
	}
	if (st->keyed && key_equal(st, probe, st->v_new))
	{
		/* Same key, same hash: replace in place (the old row is let go first, so that its
		 * memory can take the new one). */
		rrow *kept;

		uint64_t h = slot_get(st, &st->tab, slot).hash;

		row_release(st, oldrow);
		if (row_keep(st, newrow, &kept, err) != BS_OK)
		{
			/* The slot must not stay inside a probe chain with the released row. */
			table_remove_at(st, slot);
			goto done;
		}
		slot_set(st, &st->tab, slot, h, kept);
	}
	else
	{
		/* The new image may point into the old row ('u' columns): it was encoded first. */
		if (remove_row(st, slot, probe, err) != BS_OK)
		{
			free(newrow);
			goto done;
		}
		/* newrow holds its own copy; decode it for the duplicate check. */
		row_decode(newrow, l->ncols, st->v_new);
		if (insert_row(st, newrow, st->v_new, rec_where(rec, where, sizeof(where)), err) != BS_OK)
			goto done;
	}
	rc = BS_OK;
done:
	pgo_tuple_free(&nt);
	pgo_tuple_free(&ot);
	return rc;
}

static int
apply_delete(replay_state *st, const segment_record *rec, bs_error *err)
{
	const manifest_layout *l = &st->layouts[rec->layout_id];
	pgo_tuple ot;
	bool unch;
	size_t slot;
	char where[160];
	int rc = BS_ERR;

	if (rec->old_tuple == NULL)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "%s: DELETE without an old tuple",
						 rec_where(rec, where, sizeof(where)));
	if (tuple_values(st, rec, rec->old_tuple, rec->old_len, &ot, st->v_probe, &unch, "old", err) != BS_OK)
		return BS_ERR;
	if (check_probe(st, rec, st->v_probe, "old", err) != BS_OK)
		goto done;
	if (locate(st, rec, st->v_probe, &slot, err) != BS_OK)
		goto done;
	if (st->cb)
	{
		replay_change ch = {st->cb_rec, l, l->ncols, st->v_old, NULL, 0};

		if (row_values(st, slot_get(st, &st->tab, slot).row, rec->layout_id, st->v_old, st->v_raw, &st->rb_old, err) != BS_OK)
			goto done;
		if (st->cb(st->cbctx, &ch, err) != BS_OK)
			goto done;
	}
	if (remove_row(st, slot, st->v_probe, err) != BS_OK)
		goto done;
	rc = BS_OK;
done:
	pgo_tuple_free(&ot);
	return rc;
}

static int
apply_record(replay_state *st, const segment_record *orig, bs_error *err)
{
	char where[160];
	segment_record r = *orig;	/* layout_id: its position (layout_pos); callbacks get orig */
	const segment_record *rec = &r;

	if (layout_pos(st, orig->layout_id, &r.layout_id) != BS_OK)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "%s: layout %u is not in the manifest",
						 rec_where(rec, where, sizeof(where)), orig->layout_id);
	st->cb_rec = orig;
	if (!st->in_tx || rec->end_lsn != st->tx_end_lsn)
	{
		/* A transaction boundary: the previous one must have left a consistent table. */
		if (replay_check(st, err) != BS_OK)
			return BS_ERR;
		st->in_tx = true;
		st->tx_end_lsn = rec->end_lsn;
	}
	if (set_layout(st, rec->layout_id, err) != BS_OK)
		return error_prefix(err, "%s", rec_where(rec, where, sizeof(where)));
	switch (rec->op)
	{
		case 'I':
			return apply_insert(st, rec, err);
		case 'U':
			return apply_update(st, rec, err);
		case 'D':
			return apply_delete(st, rec, err);
		case 'T':
			{
				uint64_t n = st->count;

				table_clear(st);
				if (st->cb)
				{
					replay_change ch = {orig, &st->layouts[rec->layout_id], 0, NULL, NULL, n};

					return st->cb(st->cbctx, &ch, err);
				}
				return BS_OK;
			}
		default:
			return error_set(err, ERRCODE_DATA_CORRUPTED, "%s: unknown operation",
							 rec_where(rec, where, sizeof(where)));
	}
}

int
replay_apply(replay_state *st, const segment_record *rec, bs_error *err)
{
	return io_check(st, apply_record(st, rec, err), err);
}

/* ---------- output ---------- */

/* Bytes that COPY text form escapes, and the letter after the backslash. */
static const char copy_escape_letter[256] = {
	['\\'] = '\\', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't', ['\b'] = 'b', ['\f'] = 'f', ['\v'] = 'v',
};

/* Bytes that make record_out quote a value: " \ ( ) , and white space. */
static const bool record_quote_byte[256] = {
	['"'] = true, ['\\'] = true, ['('] = true, [')'] = true, [','] = true,
	[' '] = true, ['\t'] = true, ['\n'] = true, ['\r'] = true, ['\v'] = true, ['\f'] = true,
};

/*
 * The output paths below reserve the worst case once per value and write through a
 * pointer: appending byte by byte cost more than the escaping itself.
 */
void
replay_copy_escape(strbuf *out, const replay_value *v)
{
	const unsigned char *p,
			   *end;
	char	   *o;

	if (v->isnull)
	{
		strbuf_append(out, "\\N", 2);
		return;
	}
	strbuf_reserve(out, (size_t) v->len * 2);
	o = out->data + out->len;
	p = (const unsigned char *) v->data;
	end = p + v->len;
	for (; p < end; p++)
	{
		char		e = copy_escape_letter[*p];

		if (e)
		{
			*o++ = '\\';
			*o++ = e;
		}
		else
			*o++ = (char) *p;
	}
	out->len = (size_t) (o - out->data);
	out->data[out->len] = '\0';
}

void
replay_record_text(strbuf *out, int ncols, const replay_value *values)
{
	strbuf_append_char(out, '(');
	for (int i = 0; i < ncols; i++)
	{
		const replay_value *v = &values[i];
		const unsigned char *d = (const unsigned char *) v->data;
		bool		quote;
		char	   *o;

		if (i > 0)
			strbuf_append_char(out, ',');
		if (v->isnull)
			continue;
		/* record_out quotes empty values and those with " \ ( ) , or white space. */
		quote = v->len == 0;
		for (uint32_t k = 0; !quote && k < v->len; k++)
			quote = record_quote_byte[d[k]];
		if (!quote)
		{
			strbuf_append(out, v->data, v->len);
			continue;
		}
		strbuf_reserve(out, (size_t) v->len * 2 + 2);
		o = out->data + out->len;
		*o++ = '"';
		for (uint32_t k = 0; k < v->len; k++)
		{
			if (d[k] == '"' || d[k] == '\\')
				*o++ = (char) d[k];
			*o++ = (char) d[k];
		}
		*o++ = '"';
		out->len = (size_t) (o - out->data);
		out->data[out->len] = '\0';
	}
	strbuf_append_char(out, ')');
}

int64_t
replay_row_hash(const char *record_text, size_t len)
{
	return pghash_text(record_text, len);
}

char *
replay_checksum_format(const replay_checksum *sum, char *buf)
{
	char tmp[REPLAY_CHECKSUM_BUFLEN];
	unsigned __int128 mag = sum->sum < 0 ? (unsigned __int128) 0 - (unsigned __int128) sum->sum
		: (unsigned __int128) sum->sum;
	int n = 0,
		o = 0;

	do
	{
		tmp[n++] = (char) ('0' + (int) (mag % 10));
		mag /= 10;
	} while (mag > 0);
	if (sum->sum < 0)
		buf[o++] = '-';
	while (n > 0)
		buf[o++] = tmp[--n];
	buf[o] = '\0';
	return buf;
}

#define COPY_BATCH (1024 * 1024)
/* Slots read at once from an index file while writing out. */
#define WRITE_CHUNK 4096

int
replay_prepare_output(replay_state *st, uint32_t target_id, bs_error *err)
{
	uint32_t target;

	if (layout_pos(st, target_id, &target) != BS_OK)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "target layout %u is not in the manifest", target_id);
	/* Build every conversion now: the writers must not modify the state. */
	for (int i = 0; i < st->nlayouts; i++)
		(void) get_map(st, (uint32_t) i, target);
	return BS_OK;
}

static int
seq_cmp(const void *a, const void *b, void *arg)
{
	const rslot *slots = arg;
	uint64_t x = slots[*(const size_t *) a].row->seq,
		y = slots[*(const size_t *) b].row->seq;

	return x < y ? -1 : x > y;
}

/*
 * The slots of the rows in the order they were written into the state (the base's order,
 * then each changed row where its last change put it, as PostgreSQL's heap has them), or
 * NULL for slot order.  Hash order costs PostgreSQL's index builds on the loaded table
 * 20-25% more CPU than the source's order (measured on the name index of
 * contrib/bench/recover).  Only for rows all in memory: spilled rows would be read back
 * in random order, and the array (8 bytes a row) stays small next to the rows.
 */
static size_t *
output_order(const replay_state *st, size_t *n)
{
	size_t *order;
	size_t k = 0;

	*n = 0;
	/* Spilled rows or a spilled index: hash order (reading either in another order would seek). */
	if (st->spilled_rows > 0 || st->tab.mem == NULL || st->count < 2)
		return NULL;
	order = xmalloc(st->count * sizeof(size_t));
	for (size_t i = 0; i < st->tab.cap && k < st->count; i++)
		if (st->tab.mem[i].row != NULL)
			order[k++] = i;
	qsort_r(order, k, sizeof(size_t), seq_cmp, st->tab.mem);
	*n = k;
	return order;
}

/*
 * Reads the state only (maps built by replay_prepare_output) and keeps its scratch
 * space local, so that two calls may run in two threads at once.
 */
static int
write_rows(replay_state *st, uint32_t target, replay_copy_cb cb, void *ctx, replay_checksum *sum,
		   bs_error *err)
{
	const manifest_layout *l;
	strbuf batch = STRBUF_INIT;
	strbuf rec = STRBUF_INIT;
	strbuf rowbuf = STRBUF_INIT;	/* this thread's own: a spilled row read back */
	replay_value *vals,
			   *raw;
	size_t *order = NULL,
			norder = 0;
	rslot *chunk = NULL;
	int rc = BS_ERR;

	if (st->io_failed)
		return io_check(st, BS_ERR, err);
	if (target >= (uint32_t) st->nlayouts)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "target layout %u is not in the manifest", target);
	l = &st->layouts[target];
	if (sum)
	{
		sum->rows = 0;
		sum->sum = 0;
	}
	vals = xcalloc((size_t) st->maxcols, sizeof(replay_value));
	raw = xcalloc((size_t) st->maxcols, sizeof(replay_value));
	if (cb)
	{
		strbuf_reserve(&batch, COPY_BATCH + 64 * 1024);
		order = output_order(st, &norder);
	}
	if (st->tab.disk)
		chunk = xcalloc(WRITE_CHUNK, sizeof(rslot));
	for (size_t n = 0; n < (order ? norder : st->tab.cap); n++)
	{
		size_t i = order ? order[n] : n;
		rslot sl;

		if (st->tab.mem)
			sl = st->tab.mem[i];
		else
		{
			/* This thread's own reads (no shared window), a chunk at a time. */
			if (i % WRITE_CHUNK == 0 &&
				spill_array_read_range(st->tab.disk, i, st->tab.cap - i < WRITE_CHUNK ? st->tab.cap - i : WRITE_CHUNK,
									   chunk, err) != BS_OK)
				goto done;
			sl = chunk[i % WRITE_CHUNK];
		}
		if (sl.row == NULL)
			continue;
		if (row_values(st, sl.row, target, vals, raw, &rowbuf, err) != BS_OK)
			goto done;
		if (cb)
		{
			for (int c = 0; c < l->ncols; c++)
			{
				if (c > 0)
					strbuf_append_char(&batch, '\t');
				replay_copy_escape(&batch, &vals[c]);
			}
			strbuf_append_char(&batch, '\n');
			if (batch.len >= COPY_BATCH)
			{
				if (cb(ctx, batch.data, batch.len, err) != BS_OK)
					goto done;
				strbuf_reset(&batch);
			}
		}
		if (sum)
		{
			checksum_add(sum, &rec, l->ncols, vals);
		}
	}
	if (cb && batch.len > 0 && cb(ctx, batch.data, batch.len, err) != BS_OK)
		goto done;
	rc = BS_OK;
done:
	strbuf_free(&batch);
	strbuf_free(&rec);
	strbuf_free(&rowbuf);
	free(order);
	free(vals);
	free(raw);
	free(chunk);
	return rc;
}

int
replay_write_copy(replay_state *st, uint32_t target_layout, replay_copy_cb cb, void *ctx,
				  replay_checksum *sum, bs_error *err)
{
	uint32_t pos;

	if (replay_prepare_output(st, target_layout, err) != BS_OK || layout_pos(st, target_layout, &pos) != BS_OK)
		return BS_ERR;
	return write_rows(st, pos, cb, ctx, sum, err);
}

int
replay_checksum_compute(replay_state *st, uint32_t target_layout, replay_checksum *sum, bs_error *err)
{
	uint32_t pos;

	if (replay_prepare_output(st, target_layout, err) != BS_OK || layout_pos(st, target_layout, &pos) != BS_OK)
		return BS_ERR;
	return write_rows(st, pos, NULL, NULL, sum, err);
}
