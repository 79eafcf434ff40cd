/* packcat.c — the catalog (doc/design/format2.md 3.4): every table's folded state at a pack sequence number, a directory and copy-on-write pages, strictly read. */
#include "packcat.h"
#include "digest.h"
#include "fold.h"
#include "lsn.h"
#include "manifest_json.h"
#include "strbuf.h"

#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEQ_HEX 16

char *
packcat_dir_key(uint64_t seq)
{
	strbuf sb = STRBUF_INIT;

	strbuf_printf(&sb, PACKCAT_PREFIX "%016" PRIX64 "/dir.json", seq);
	return strbuf_detach(&sb, NULL);
}

char *
packcat_page_key(uint64_t seq, int page)
{
	strbuf sb = STRBUF_INIT;

	strbuf_printf(&sb, PACKCAT_PREFIX "%016" PRIX64 "/%04d.json", seq, page);
	return strbuf_detach(&sb, NULL);
}

/* catalog/<16 upper-case hex>/<rest>: *seq; BS_ERR when not of that form. */
static int
key_seq(const char *key, uint64_t *seq, const char **rest)
{
	uint64_t v = 0;
	const char *p;

	if (strncmp(key, PACKCAT_PREFIX, strlen(PACKCAT_PREFIX)) != 0)
		return BS_ERR;
	p = key + strlen(PACKCAT_PREFIX);
	for (int i = 0; i < SEQ_HEX; i++, p++)
	{
		if (*p >= '0' && *p <= '9')
			v = v * 16 + (uint64_t) (*p - '0');
		else if (*p >= 'A' && *p <= 'F')
			v = v * 16 + (uint64_t) (*p - 'A' + 10);
		else
			return BS_ERR;
	}
	if (*p != '/' || v == 0)
		return BS_ERR;
	*seq = v;
	*rest = p + 1;
	return BS_OK;
}

static void
table_clear(packcat_table *t)
{
	free(t->schema);
	free(t->name);
	free(t->status);
	for (int i = 0; i < t->nnames; i++)
	{
		free(t->names[i].schema);
		free(t->names[i].name);
	}
	free(t->names);
	memset(t, 0, sizeof(*t));
}

void
packcat_dir_free(packcat_dir *dir)
{
	if (dir == NULL)
		return;
	free(dir->key);
	for (int i = 0; i < dir->npages; i++)
		free(dir->pages[i].key);
	free(dir->pages);
	for (int i = 0; i < dir->ntables; i++)
		table_clear(&dir->tables[i]);
	free(dir->tables);
	free(dir);
}

/*
 * Strict JSON reading.  Messages name the member by its path ("tables[3].names[0].schema").
 */

static int
bad(bs_error *err, const char *path, const char *what)
{
	return error_set(err, ERRCODE_DATA_CORRUPTED, "member \"%s\" %s", path, what);
}

static bool
sha256_valid(const char *s)
{
	if (strlen(s) != 64)
		return false;
	for (int i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static int
get_int(json_t *o, const char *path, const char *name, int64_t min, int64_t max, int64_t *out, bs_error *err)
{
	json_t *v = json_object_get(o, name);
	char p[256];

	snprintf(p, sizeof(p), "%s%s%s", path, path[0] ? "." : "", name);
	if (v == NULL)
		return bad(err, p, "is missing");
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "member \"%s\" must be an integer from %" PRId64 " to %" PRId64,
						 p, min, max);
	*out = json_integer_value(v);
	return BS_OK;
}

/* A string member; optional: absent gives NULL (null is never accepted). */
static int
get_str(json_t *o, const char *path, const char *name, bool required, const char **out, bs_error *err)
{
	json_t *v = json_object_get(o, name);
	char p[256];

	snprintf(p, sizeof(p), "%s%s%s", path, path[0] ? "." : "", name);
	*out = NULL;
	if (v == NULL && !required)
		return BS_OK;
	if (v == NULL)
		return bad(err, p, "is missing");
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
		return bad(err, p, "must be a string");
	*out = json_string_value(v);
	return BS_OK;
}

static int
get_lsn(json_t *o, const char *path, const char *name, bool required, uint64_t *out, bool *present, bs_error *err)
{
	const char *s;
	char p[256];

	*out = 0;
	if (present)
		*present = false;
	if (get_str(o, path, name, required, &s, err) != BS_OK)
		return BS_ERR;
	if (s == NULL)
		return BS_OK;
	snprintf(p, sizeof(p), "%s%s%s", path, path[0] ? "." : "", name);
	if (lsn_parse(s, out) != BS_OK)
		return bad(err, p, "must be an LSN (\"X/Y\")");
	if (present)
		*present = true;
	return BS_OK;
}

static int
check_format(json_t *root, bs_error *err)
{
	int64_t v;

	if (get_int(root, "", "format", INT64_MIN, INT64_MAX, &v, err) != BS_OK)
		return BS_ERR;
	if (v != PACKCAT_FORMAT)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "member \"format\" is %" PRId64 "; this version reads format %d",
						 v, PACKCAT_FORMAT);
	return BS_OK;
}

static const char *const dir_members[] = {"format", "seq", "seal_lsn", "pack_sha256", "pages", "tables", NULL};
static const char *const ref_members[] = {"key", "sha256", "size", "first_relid", "tables", NULL};
static const char *const dtable_members[] = {"relid", "page", "schema", "name", "status", "archived_to",
	"first_base_lsn", "names", NULL};
static const char *const name_members[] = {"from_lsn", "schema", "name", NULL};

static int
page_ref_read(packcat_dir *dir, json_t *e, int i, bs_error *err)
{
	packcat_page_ref *r = &dir->pages[i];
	const char *s;
	const char *rest;
	uint64_t seq;
	int64_t v;
	char path[64];
	char *want;

	snprintf(path, sizeof(path), "pages[%d]", i);
	if (!json_is_object(e))
		return bad(err, path, "must be an object");
	if (manifest_json_only_members(e, path, ref_members, err) != BS_OK ||
		get_str(e, path, "key", true, &s, err) != BS_OK)
		return BS_ERR;
	/* A page of this catalog or of an earlier one, by its index there. */
	if (key_seq(s, &seq, &rest) != BS_OK || seq > dir->seq || strlen(rest) != 9 ||
		strspn(rest, "0123456789") != 4 || strcmp(rest + 4, ".json") != 0)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "member \"%s.key\" must be a page key (" PACKCAT_PREFIX
						 "<SEQ>/<NNNN>.json) of this catalog or an earlier one", path);
	want = packcat_page_key(seq, atoi(rest));
	if (strcmp(want, s) != 0)
	{
		free(want);
		return error_set(err, ERRCODE_DATA_CORRUPTED, "member \"%s.key\" is not a page key as written", path);
	}
	free(want);
	r->key = xstrdup(s);
	for (int j = 0; j < i; j++)
		if (strcmp(dir->pages[j].key, r->key) == 0)
			return error_set(err, ERRCODE_DATA_CORRUPTED, "member \"%s.key\" names the page of pages[%d] again",
							 path, j);
	if (get_str(e, path, "sha256", true, &s, err) != BS_OK)
		return BS_ERR;
	if (!sha256_valid(s))
		return error_set(err, ERRCODE_DATA_CORRUPTED, "member \"%s.sha256\" must be 64 lowercase hex digits", path);
	memcpy(r->sha256, s, 65);
	if (get_int(e, path, "size", 1, (int64_t) PACKCAT_PAGE_MAX, &v, err) != BS_OK)
		return BS_ERR;
	r->size = (uint64_t) v;
	if (get_int(e, path, "first_relid", 1, UINT32_MAX, &v, err) != BS_OK)
		return BS_ERR;
	r->first_relid = (uint32_t) v;
	if (i > 0 && r->first_relid <= dir->pages[i - 1].first_relid)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "member \"%s.first_relid\" is not above the previous page's",
						 path);
	if (get_int(e, path, "tables", 1, PACKCAT_PAGE_TABLES, &v, err) != BS_OK)
		return BS_ERR;
	r->ntables = (int) v;
	return BS_OK;
}

static int
dir_table_read(packcat_dir *dir, json_t *e, int i, bs_error *err)
{
	packcat_table *t = &dir->tables[i];
	const char *s;
	json_t *names;
	int nnames;
	int64_t v;
	bool present;
	char path[64];
	char p[128];

	snprintf(path, sizeof(path), "tables[%d]", i);
	if (!json_is_object(e))
		return bad(err, path, "must be an object");
	if (manifest_json_only_members(e, path, dtable_members, err) != BS_OK ||
		get_int(e, path, "relid", 1, UINT32_MAX, &v, err) != BS_OK)
		return BS_ERR;
	t->relid = (uint32_t) v;
	if (i > 0 && t->relid <= dir->tables[i - 1].relid)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "member \"%s.relid\" is not above the previous table's "
						 "(tables must be sorted by relid, without duplicates)", path);
	if (get_int(e, path, "page", 0, dir->npages - 1, &v, err) != BS_OK)
		return BS_ERR;
	t->page = (int) v;
	if (get_str(e, path, "schema", true, &s, err) != BS_OK)
		return BS_ERR;
	t->schema = xstrdup(s);
	if (get_str(e, path, "name", true, &s, err) != BS_OK)
		return BS_ERR;
	t->name = xstrdup(s);
	if (t->schema[0] == '\0' || t->name[0] == '\0')
		return error_set(err, ERRCODE_DATA_CORRUPTED, "member \"%s\" has an empty schema or name", path);
	if (get_str(e, path, "status", true, &s, err) != BS_OK)
		return BS_ERR;
	t->status = xstrdup(s);
	if (strcmp(s, "active") != 0 && strcmp(s, "dropped") != 0 && strcmp(s, "skipped") != 0)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "member \"%s.status\" must be \"active\", \"dropped\" or "
						 "\"skipped\"", path);
	if (get_lsn(e, path, "first_base_lsn", false, &t->first_base_lsn, &present, err) != BS_OK)
		return BS_ERR;
	if (present && t->first_base_lsn == 0)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "member \"%s.first_base_lsn\" must be above 0/0 (absent: "
						 "no base)", path);
	if (get_lsn(e, path, "archived_to", false, &t->archived_to, &present, err) != BS_OK)
		return BS_ERR;
	t->follows_log = !present;
	if (t->follows_log)
	{
		/* Only an active table with a base is archived to the log's seal. */
		if (strcmp(t->status, "active") != 0 || t->first_base_lsn == 0)
			return error_set(err, ERRCODE_DATA_CORRUPTED, "member \"%s.archived_to\" is missing (only an active "
							 "table with a base is archived to the catalog's seal LSN)", path);
		t->archived_to = dir->seal_lsn;
	}
	if (manifest_json_array(e, path, "names", &names, &nnames, err) != BS_OK)
		return BS_ERR;
	t->names = xcalloc((size_t) nnames + 1, sizeof(manifest_name));
	for (int j = 0; j < nnames; j++)
	{
		json_t *ne = json_array_get(names, (size_t) j);
		manifest_name *nm = &t->names[j];

		snprintf(p, sizeof(p), "%s.names[%d]", path, j);
		if (!json_is_object(ne))
			return bad(err, p, "must be an object");
		t->nnames = j + 1;
		if (manifest_json_only_members(ne, p, name_members, err) != BS_OK ||
			get_lsn(ne, p, "from_lsn", true, &nm->from_lsn, NULL, err) != BS_OK ||
			get_str(ne, p, "schema", true, &s, err) != BS_OK)
			return BS_ERR;
		nm->schema = xstrdup(s);
		if (get_str(ne, p, "name", true, &s, err) != BS_OK)
			return BS_ERR;
		nm->name = xstrdup(s);
		if (nm->schema[0] == '\0' || nm->name[0] == '\0')
			return bad(err, p, "has an empty schema or name");
		if (j == 0 && nm->from_lsn != 0)
			return bad(err, p, "must start at 0/0");
		if (j > 0 && nm->from_lsn <= t->names[j - 1].from_lsn)
			return bad(err, p, "is not above the previous name's from_lsn");
	}
	if (t->nnames > 0 && (strcmp(t->names[t->nnames - 1].schema, t->schema) != 0 ||
						  strcmp(t->names[t->nnames - 1].name, t->name) != 0))
		return error_set(err, ERRCODE_DATA_CORRUPTED, "member \"%s.names\" does not end with the table's current "
						 "name", path);
	return BS_OK;
}

/* The tables tile the pages: in page order, each page's count, its first table its first_relid. */
static int
dir_check_pages(const packcat_dir *dir, bs_error *err)
{
	int i = 0;

	if ((dir->npages == 0) != (dir->ntables == 0))
		return error_set(err, ERRCODE_DATA_CORRUPTED, "has %d pages for %d tables", dir->npages, dir->ntables);
	for (int p = 0; p < dir->npages; p++)
	{
		const packcat_page_ref *r = &dir->pages[p];

		if (i >= dir->ntables || dir->tables[i].page != p || dir->tables[i].relid != r->first_relid)
			return error_set(err, ERRCODE_DATA_CORRUPTED, "member \"pages[%d]\" does not start at the first table "
							 "the dir puts on it (relid %u)", p, r->first_relid);
		for (int n = 0; n < r->ntables; n++, i++)
			if (i >= dir->ntables || dir->tables[i].page != p)
				return error_set(err, ERRCODE_DATA_CORRUPTED, "member \"pages[%d].tables\" is %d, but the dir puts "
								 "%d tables on it", p, r->ntables, n);
	}
	if (i != dir->ntables)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "member \"tables[%d]\" is on no page's count", i);
	return BS_OK;
}

int
packcat_dir_from_json(const char *key, const char *json, size_t len, packcat_dir **out, bs_error *err)
{
	json_error_t jerr;
	json_t *root = NULL;
	json_t *arr;
	int n;
	packcat_dir *dir = xcalloc(1, sizeof(packcat_dir));
	const char *s;
	const char *rest;
	uint64_t kseq = 0;
	int64_t v;

	*out = NULL;
	dir->key = xstrdup(key);
	if (key_seq(key, &kseq, &rest) != BS_OK || strcmp(rest, "dir.json") != 0)
	{
		error_set(err, ERRCODE_INVALID_PARAMETER, "not a catalog dir key");
		goto fail;
	}
	if (len > PACKCAT_DIR_MAX)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "is %zu bytes, above the limit of %" PRIu64, len, PACKCAT_DIR_MAX);
		goto fail;
	}
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "JSON error at line %d: %s", jerr.line, jerr.text);
		goto fail;
	}
	if (!json_is_object(root))
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "is not a JSON object");
		goto fail;
	}
	if (manifest_json_only_members(root, "", dir_members, err) != BS_OK || check_format(root, err) != BS_OK ||
		get_int(root, "", "seq", 1, INT64_MAX, &v, err) != BS_OK)
		goto fail;
	dir->seq = (uint64_t) v;
	if (dir->seq != kseq)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "member \"seq\" is %" PRIu64 ", but the key says %" PRIu64, dir->seq,
				  kseq);
		goto fail;
	}
	if (get_lsn(root, "", "seal_lsn", true, &dir->seal_lsn, NULL, err) != BS_OK ||
		get_str(root, "", "pack_sha256", true, &s, err) != BS_OK)
		goto fail;
	if (!sha256_valid(s))
	{
		bad(err, "pack_sha256", "must be 64 lowercase hex digits");
		goto fail;
	}
	memcpy(dir->pack_sha256, s, 65);
	if (manifest_json_array(root, "", "pages", &arr, &n, err) != BS_OK)
		goto fail;
	if (n > PACKCAT_PAGES_MAX)
	{
		bad(err, "pages", "has more than " "9999" " elements");
		goto fail;
	}
	dir->pages = xcalloc((size_t) n + 1, sizeof(packcat_page_ref));
	for (int i = 0; i < n; i++)
	{
		dir->npages = i + 1;
		if (page_ref_read(dir, json_array_get(arr, (size_t) i), i, err) != BS_OK)
			goto fail;
	}
	if (manifest_json_array(root, "", "tables", &arr, &n, err) != BS_OK)
		goto fail;
	if (n > PACKCAT_PAGES_MAX * PACKCAT_PAGE_TABLES)
	{
		bad(err, "tables", "has more elements than the pages can hold");
		goto fail;
	}
	dir->tables = xcalloc((size_t) n + 1, sizeof(packcat_table));
	for (int i = 0; i < n; i++)
	{
		dir->ntables = i + 1;
		if (dir_table_read(dir, json_array_get(arr, (size_t) i), i, err) != BS_OK)
			goto fail;
	}
	if (dir_check_pages(dir, err) != BS_OK)
		goto fail;
	json_decref(root);
	*out = dir;
	return BS_OK;
fail:
	json_decref(root);
	packcat_dir_free(dir);
	return error_prefix(err, "catalog \"%s\"", key);
}

const packcat_table *
packcat_find_relid(const packcat_dir *dir, uint32_t relid)
{
	int lo = 0,
		hi = dir->ntables - 1;

	while (lo <= hi)
	{
		int mid = lo + (hi - lo) / 2;

		if (dir->tables[mid].relid == relid)
			return &dir->tables[mid];
		if (dir->tables[mid].relid < relid)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

/* The name of t at lsn (UINT64_MAX: now), as manifest_name_at. */
static void
name_at(const packcat_table *t, uint64_t lsn, const char **schema, const char **name)
{
	*schema = t->schema;
	*name = t->name;
	if (lsn == UINT64_MAX)
		return;
	for (int i = t->nnames - 1; i >= 0; i--)
		if (t->names[i].from_lsn <= lsn)
		{
			*schema = t->names[i].schema;
			*name = t->names[i].name;
			return;
		}
}

/* manifest_find_table_at's score: 2 named so at lsn, 1 named so now, 0 named so once, -1 never. */
static int
name_score(const packcat_table *t, const char *schema, const char *name, uint64_t lsn)
{
	const char *s, *n;

	name_at(t, lsn, &s, &n);
	if (strcmp(s, schema) == 0 && strcmp(n, name) == 0 &&
		(lsn == UINT64_MAX || t->first_base_lsn == 0 || lsn >= t->first_base_lsn))
		return 2;
	if (strcmp(t->schema, schema) == 0 && strcmp(t->name, name) == 0)
		return 1;
	for (int i = 0; i < t->nnames; i++)
		if (strcmp(t->names[i].schema, schema) == 0 && strcmp(t->names[i].name, name) == 0)
			return 0;
	return -1;
}

int
packcat_find_name(const packcat_dir *dir, const char *schema, const char *name, uint64_t lsn,
				  const packcat_table **out, bs_error *err)
{
	const packcat_table *best = NULL;
	int best_score = -1;

	*out = NULL;
	for (int i = 0; i < dir->ntables; i++)
	{
		const packcat_table *t = &dir->tables[i];
		int score = name_score(t, schema, name, lsn);

		if (score < 0)
			continue;
		if (best == NULL || score > best_score ||
			(score == best_score && (t->archived_to > best->archived_to ||
									 (t->archived_to == best->archived_to && t->relid > best->relid))))
		{
			best = t;
			best_score = score;
		}
	}
	if (best == NULL)
		return error_set(err, ERRCODE_UNDEFINED_TABLE, "table \"%s.%s\" is not in catalog \"%s\"", schema, name,
						 dir->key);
	*out = best;
	return BS_OK;
}

/*
 * Pages.
 */

static const char *const page_members[] = {"format", "tables", NULL};
static const char *const entry_members[] = {"relid", "last_event_lsn", "archived_to", "table", NULL};

/* An entry agrees with the dir's view of the table. */
static int
entry_check(const packcat_table *t, const manifest *m, bool follows, bs_error *err)
{
	uint64_t first_base = m->nbases > 0 ? m->bases[0].lsn : 0;

	if (strcmp(m->schema, t->schema) != 0 || strcmp(m->name, t->name) != 0 || strcmp(m->status, t->status) != 0)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "disagrees with the dir on its name or status");
	if (m->nnames != t->nnames)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "disagrees with the dir on its name history");
	for (int i = 0; i < m->nnames; i++)
		if (m->names[i].from_lsn != t->names[i].from_lsn || strcmp(m->names[i].schema, t->names[i].schema) != 0 ||
			strcmp(m->names[i].name, t->names[i].name) != 0)
			return error_set(err, ERRCODE_DATA_CORRUPTED, "disagrees with the dir on its name history");
	if (first_base != t->first_base_lsn)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "disagrees with the dir on its first base");
	if (follows != t->follows_log || (!follows && m->archived_to != t->archived_to))
		return error_set(err, ERRCODE_DATA_CORRUPTED, "disagrees with the dir on archived_to");
	if (follows && manifest_open_gap(m) != NULL)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "is in an open gap but archived to the catalog's seal LSN");
	/* The fold archives such a table to every seal: another archived_to is not a fold's. */
	if (!follows && strcmp(m->status, "active") == 0 && manifest_open_gap(m) == NULL && m->nbases > 0)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "has its own archived_to, but an active table with a base and "
						 "no open gap is archived to the catalog's seal LSN");
	return BS_OK;
}

/*
 * Read page p of dir from its stored bytes; want 0: every entry into ms[] / lasts[] (ntables
 * of the page each), else only relid want's into ms[0] / lasts[0].
 */
static int
page_read(const packcat_dir *dir, int p, const void *data, size_t len, uint32_t want, manifest **ms,
		  uint64_t *lasts, bs_error *err)
{
	const packcat_page_ref *r = &dir->pages[p];
	json_error_t jerr;
	json_t *root = NULL;
	json_t *arr;
	int n;
	int first = 0;
	int found = 0;
	char sha[65];
	int rc = BS_ERR;

	while (first < dir->ntables && dir->tables[first].page != p)
		first++;
	if (len != r->size)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "is %zu bytes, the dir says %" PRIu64, len, r->size);
		goto out;
	}
	digest_sha256_hex(data, len, sha);
	if (strcmp(sha, r->sha256) != 0)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "has SHA-256 %s, the dir says %s", sha, r->sha256);
		goto out;
	}
	root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "JSON error at line %d: %s", jerr.line, jerr.text);
		goto out;
	}
	if (!json_is_object(root))
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "is not a JSON object");
		goto out;
	}
	if (manifest_json_only_members(root, "", page_members, err) != BS_OK || check_format(root, err) != BS_OK ||
		manifest_json_array(root, "", "tables", &arr, &n, err) != BS_OK)
		goto out;
	if (n != r->ntables)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "holds %d tables, the dir says %d", n, r->ntables);
		goto out;
	}
	for (int i = 0; i < r->ntables; i++)
	{
		const packcat_table *t = &dir->tables[first + i];
		json_t *e = json_array_get(arr, (size_t) i);
		manifest *m = NULL;
		uint64_t last;
		bool present;
		int64_t v;
		char path[64];

		snprintf(path, sizeof(path), "tables[%d]", i);
		if (!json_is_object(e))
		{
			bad(err, path, "must be an object");
			goto out;
		}
		if (manifest_json_only_members(e, path, entry_members, err) != BS_OK ||
			get_int(e, path, "relid", 1, UINT32_MAX, &v, err) != BS_OK)
			goto out;
		if ((uint32_t) v != t->relid)
		{
			error_set(err, ERRCODE_DATA_CORRUPTED, "member \"%s.relid\" is %" PRId64 ", the dir has relid %u there",
					  path, v, t->relid);
			goto out;
		}
		if (want != 0 && t->relid != want)
			continue;
		if (get_lsn(e, path, "last_event_lsn", true, &last, NULL, err) != BS_OK)
			goto out;
		if (!json_is_object(json_object_get(e, "table")))
		{
			bad(err, path, "lacks member \"table\" (an object)");
			goto out;
		}
		/* Before its members are checked against the relid (base keys are under it). */
		if (!json_is_integer(json_object_get(json_object_get(e, "table"), "relid")) ||
			json_integer_value(json_object_get(json_object_get(e, "table"), "relid")) != (json_int_t) t->relid)
		{
			error_set(err, ERRCODE_DATA_CORRUPTED, "member \"%s.table.relid\" is not the entry's", path);
			goto out;
		}
		if (manifest_table_from_json_object(json_object_get(e, "table"), &m, err) != BS_OK)
		{
			error_prefix(err, "%s.table", path);
			goto out;
		}
		if (get_lsn(e, path, "archived_to", false, &m->archived_to, &present, err) != BS_OK)
		{
			manifest_free(m);
			goto out;
		}
		if (!present)
			m->archived_to = dir->seal_lsn;
		if (entry_check(t, m, !present, err) != BS_OK)
		{
			error_prefix(err, "%s (relid %u)", path, t->relid);
			manifest_free(m);
			goto out;
		}
		ms[want ? 0 : i] = m;
		lasts[want ? 0 : i] = last;
		found++;
	}
	if (want != 0 && found == 0)
	{
		error_set(err, ERRCODE_DATA_CORRUPTED, "does not hold relid %u, which the dir puts there", want);
		goto out;
	}
	rc = BS_OK;
out:
	json_decref(root);
	if (rc != BS_OK)
	{
		for (int i = 0; i < (want ? 1 : r->ntables); i++)
		{
			manifest_free(ms[i]);
			ms[i] = NULL;
		}
		error_prefix(err, "catalog page \"%s\"", r->key);
	}
	return rc;
}

int
packcat_page_table(const packcat_dir *dir, uint32_t relid, const void *data, size_t len, manifest **m,
				   uint64_t *last_event_lsn, bs_error *err)
{
	const packcat_table *t = packcat_find_relid(dir, relid);
	uint64_t last = 0;

	*m = NULL;
	if (t == NULL)
		return error_set(err, ERRCODE_NOT_FOUND, "relid %u is not in catalog \"%s\"", relid, dir->key);
	if (page_read(dir, t->page, data, len, relid, m, &last, err) != BS_OK)
		return BS_ERR;
	if (last_event_lsn)
		*last_event_lsn = last;
	return BS_OK;
}

/* A sink that refuses more than PACKCAT_DIR_MAX bytes (a hostile store could send any size). */
static int
capped_sink(void *ctx, const void *data, size_t len, bs_error *err)
{
	strbuf *sb = ctx;

	if (sb->len + len > PACKCAT_DIR_MAX)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "is larger than %" PRIu64 " bytes, the limit of catalog "
						 "objects", PACKCAT_DIR_MAX);
	strbuf_append(sb, data, len);
	return BS_OK;
}

int
packcat_storage_get(void *ctx, const char *key, strbuf *out, bs_error *err)
{
	strbuf_reset(out);
	if (storage_get((storage *) ctx, key, 0, 0, capped_sink, out, err) != BS_OK)
	{
		strbuf_reset(out);
		return error_prefix(err, "could not read \"%s\"", key);
	}
	return BS_OK;
}

int
packcat_storage_put(void *ctx, const char *key, const void *data, size_t len, bs_error *err)
{
	if (storage_put((storage *) ctx, key, data, len, err) != BS_OK)
		return error_prefix(err, "could not store \"%s\"", key);
	return BS_OK;
}

int
packcat_load_dir(packcat_get_fn get, void *ctx, uint64_t seq, packcat_dir **out, bs_error *err)
{
	char *key = packcat_dir_key(seq);
	strbuf sb = STRBUF_INIT;
	int rc;

	*out = NULL;
	rc = get(ctx, key, &sb, err);
	if (rc == BS_OK)
		rc = packcat_dir_from_json(key, sb.data ? sb.data : "", sb.len, out, err);
	strbuf_free(&sb);
	free(key);
	return rc;
}

int
packcat_load_table(const packcat_dir *dir, uint32_t relid, packcat_get_fn get, void *ctx, manifest **m,
				   uint64_t *last_event_lsn, bs_error *err)
{
	const packcat_table *t = packcat_find_relid(dir, relid);
	strbuf sb = STRBUF_INIT;
	int rc;

	*m = NULL;
	if (t == NULL)
		return error_set(err, ERRCODE_NOT_FOUND, "relid %u is not in catalog \"%s\"", relid, dir->key);
	rc = get(ctx, dir->pages[t->page].key, &sb, err);
	if (rc == BS_OK)
		rc = packcat_page_table(dir, relid, sb.data ? sb.data : "", sb.len, m, last_event_lsn, err);
	strbuf_free(&sb);
	return rc;
}

int
packcat_fold_table(const packcat_dir *dir, uint32_t relid, packcat_get_fn get, void *ctx,
				   const pack_index *const *packs, int npacks, manifest **out, uint64_t *last_event_lsn, bs_error *err)
{
	fold_start start;

	*out = NULL;
	memset(&start, 0, sizeof(start));
	start.seq = dir->seq;
	start.seal_lsn = dir->seal_lsn;
	start.sha256 = dir->pack_sha256;
	if (packcat_find_relid(dir, relid) != NULL &&
		packcat_load_table(dir, relid, get, ctx, &start.m, &start.last_event_lsn, err) != BS_OK)
		return BS_ERR;
	return fold_table_from(relid, &start, packs, npacks, out, last_event_lsn, err);
}

/*
 * The writer.
 */

/* One table of the catalog being written. */
typedef struct wtable
{
	uint32_t relid;
	const packcat_table *prev;	/* its entry in prev, NULL when new */
	bool touched;				/* events or runs in the packs */
	manifest *m;				/* the state (touched, or loaded for a page rewritten) */
	uint64_t last;
	int page;
} wtable;

/* A page of the catalog being written: tables [first, first + n). */
typedef struct wpage
{
	int first;
	int n;
	const packcat_page_ref *reuse;	/* prev's page when the same tables */
	char *key;
	char sha256[65];
	uint64_t size;
} wpage;

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *) a,
		y = *(const uint32_t *) b;

	return x < y ? -1 : x > y;
}

static bool
follows_log(const manifest *m, uint64_t seal_lsn)
{
	return strcmp(m->status, "active") == 0 && manifest_open_gap(m) == NULL && m->nbases > 0 &&
		m->archived_to == seal_lsn;
}

/* The page's JSON text (NULL: a table's state cannot be serialized). */
static char *
page_json(const wtable *ts, const wpage *pg, uint64_t seal_lsn)
{
	json_t *root = json_object();
	json_t *arr = json_array();
	char *text;

	json_object_set_new(root, "format", json_integer(PACKCAT_FORMAT));
	for (int i = pg->first; i < pg->first + pg->n; i++)
	{
		json_t *e = json_object();
		json_t *tj = manifest_table_to_json_object(ts[i].m);

		if (tj == NULL)
		{
			json_decref(e);
			json_decref(arr);
			json_decref(root);
			return NULL;
		}
		json_object_set_new(e, "relid", json_integer(ts[i].relid));
		json_object_set_new(e, "last_event_lsn", manifest_json_lsn_value(ts[i].last));
		if (!follows_log(ts[i].m, seal_lsn))
			json_object_set_new(e, "archived_to", manifest_json_lsn_value(ts[i].m->archived_to));
		json_object_set_new(e, "table", tj);
		json_array_append_new(arr, e);
	}
	json_object_set_new(root, "tables", arr);
	text = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return text;
}

/* A dir entry from a state, or carried over from prev's entry. */
static json_t *
dir_table_json(const wtable *w, uint64_t seal_lsn)
{
	json_t *e = json_object();
	json_t *names = json_array();
	const packcat_table *p = w->prev;
	const manifest *m = w->m;

	json_object_set_new(e, "relid", json_integer(w->relid));
	json_object_set_new(e, "page", json_integer(w->page));
	json_object_set_new(e, "schema", json_string(m ? m->schema : p->schema));
	json_object_set_new(e, "name", json_string(m ? m->name : p->name));
	json_object_set_new(e, "status", json_string(m ? m->status : p->status));
	if (m ? !follows_log(m, seal_lsn) : !p->follows_log)
		json_object_set_new(e, "archived_to", manifest_json_lsn_value(m ? m->archived_to : p->archived_to));
	if (m ? m->nbases > 0 : p->first_base_lsn != 0)
		json_object_set_new(e, "first_base_lsn", manifest_json_lsn_value(m ? m->bases[0].lsn : p->first_base_lsn));
	for (int i = 0; i < (m ? m->nnames : p->nnames); i++)
	{
		const manifest_name *nm = m ? &m->names[i] : &p->names[i];
		json_t *ne = json_object();

		json_object_set_new(ne, "from_lsn", manifest_json_lsn_value(nm->from_lsn));
		json_object_set_new(ne, "schema", json_string(nm->schema));
		json_object_set_new(ne, "name", json_string(nm->name));
		json_array_append_new(names, ne);
	}
	json_object_set_new(e, "names", names);
	return e;
}

/* Load prev's page p into the states of its tables not yet held (a page to rewrite). */
static int
load_prev_page(const packcat_dir *prev, int p, packcat_get_fn get, void *ctx, wtable *ts, int nts, bs_error *err)
{
	const packcat_page_ref *r = &prev->pages[p];
	manifest **ms = xcalloc((size_t) r->ntables, sizeof(manifest *));
	uint64_t *lasts = xcalloc((size_t) r->ntables, sizeof(uint64_t));
	strbuf sb = STRBUF_INIT;
	int rc = get(ctx, r->key, &sb, err);

	if (rc == BS_OK)
		rc = page_read(prev, p, sb.data ? sb.data : "", sb.len, 0, ms, lasts, err);
	for (int i = 0; rc == BS_OK && i < r->ntables; i++)
	{
		/* ts is sorted by relid: find the table. */
		int lo = 0,
			hi = nts - 1;

		while (lo <= hi)
		{
			int mid = lo + (hi - lo) / 2;

			if (ts[mid].relid == ms[i]->relid)
			{
				if (ts[mid].m == NULL)
				{
					ts[mid].m = ms[i];
					ts[mid].last = lasts[i];
					ms[i] = NULL;
				}
				break;
			}
			if (ts[mid].relid < ms[i]->relid)
				lo = mid + 1;
			else
				hi = mid - 1;
		}
	}
	for (int i = 0; i < r->ntables; i++)
		manifest_free(ms[i]);
	free(ms);
	free(lasts);
	strbuf_free(&sb);
	return rc;
}

int
packcat_write(const packcat_dir *prev, packcat_get_fn get, void *get_ctx, const pack_index *const *packs,
			  int npacks, const char *tip_sha256, packcat_put_fn put, void *put_ctx, packcat_dir **out,
			  bs_error *err)
{
	uint64_t seq,
			seal;
	uint32_t *touched = NULL;
	int ntouched = 0;
	size_t cap = 0;
	wtable *ts = NULL;
	int nts = 0;
	wpage *pages = NULL;
	int npages = 0;
	char *dir_key = NULL;
	char *text = NULL;
	json_t *root = NULL;
	int rc = BS_ERR;
	char l1[LSN_BUFLEN],
		l2[LSN_BUFLEN];

	if (out)
		*out = NULL;
	if (npacks <= 0)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "a catalog needs at least one pack to fold");
	if (tip_sha256 == NULL || !sha256_valid(tip_sha256))
		return error_set(err, ERRCODE_INVALID_PARAMETER, "the last pack's SHA-256 is not 64 lowercase hex digits");
	if (packs[0]->seq_first != (prev ? prev->seq + 1 : 1))
		return error_set(err, ERRCODE_INVALID_PARAMETER, "pack \"%s\" starts at seq %" PRIu64 ", the catalog needs "
						 "seq %" PRIu64, packs[0]->key, packs[0]->seq_first, prev ? prev->seq + 1 : 1);
	if (prev && strcmp(packs[0]->prev, prev->pack_sha256) != 0)
		return error_set(err, ERRCODE_DATA_CORRUPTED, "pack \"%s\" names %s as its predecessor's SHA-256, but "
						 "catalog \"%s\" has %s for seq %" PRIu64 " (the chain is broken)", packs[0]->key,
						 packs[0]->prev[0] ? packs[0]->prev : "none", prev->key, prev->pack_sha256, prev->seq);
	seq = packs[npacks - 1]->seq_last;
	seal = packs[npacks - 1]->seal_lsn;
	/* The whole log's order and every event: a catalog is the fold of all of them. */
	for (int p = 0; p < npacks; p++)
	{
		const pack_index *idx = packs[p];
		uint64_t prev_seal = p > 0 ? packs[p - 1]->seal_lsn : prev ? prev->seal_lsn : 0;

		if (p > 0 && idx->seq_first != packs[p - 1]->seq_last + 1)
		{
			error_set(err, ERRCODE_DATA_CORRUPTED, "pack \"%s\" (seq %" PRIu64 ") does not follow seq %" PRIu64
					  " (sequence numbers must be contiguous)", idx->key, idx->seq_first, packs[p - 1]->seq_last);
			goto out;
		}
		if (idx->seal_lsn < prev_seal)
		{
			error_set(err, ERRCODE_DATA_CORRUPTED, "pack \"%s\" has seal LSN %s, below the previous one's %s",
					  idx->key, lsn_format(idx->seal_lsn, l1), lsn_format(prev_seal, l2));
			goto out;
		}
		if (fold_check_pack(idx, err) != BS_OK)
			goto out;
		for (int i = 0; i < idx->nevents + idx->nruns; i++)
		{
			if ((size_t) ntouched == cap)
			{
				cap = cap ? cap * 2 : 64;
				touched = xrealloc(touched, cap * sizeof(uint32_t));
			}
			touched[ntouched++] = i < idx->nevents ? idx->events[i].relid : idx->runs[i - idx->nevents].relid;
		}
	}
	if (ntouched > 0)
		qsort(touched, (size_t) ntouched, sizeof(uint32_t), cmp_u32);

	/* The tables: prev's and the touched ones, merged by relid. */
	ts = xcalloc((size_t) (prev ? prev->ntables : 0) + (size_t) ntouched + 1, sizeof(wtable));
	{
		int a = 0,
			b = 0;

		while ((prev && a < prev->ntables) || b < ntouched)
		{
			uint32_t r;

			if (b < ntouched && (!prev || a >= prev->ntables || touched[b] <= prev->tables[a].relid))
				r = touched[b];
			else
				r = prev->tables[a].relid;
			ts[nts].relid = r;
			if (prev && a < prev->ntables && prev->tables[a].relid == r)
				ts[nts].prev = &prev->tables[a++];
			while (b < ntouched && touched[b] == r)
			{
				ts[nts].touched = true;
				b++;
			}
			nts++;
		}
	}
	if ((size_t) nts > (size_t) PACKCAT_PAGES_MAX * PACKCAT_PAGE_TABLES)
	{
		error_set(err, ERRCODE_OUT_OF_RANGE, "a catalog holds at most %d tables",
				  PACKCAT_PAGES_MAX * PACKCAT_PAGE_TABLES);
		goto out;
	}

	/* Pages: prev's boundaries (a table goes to the page whose first relid is the highest at or
	 * below its own, the first page taking those below), each split every PACKCAT_PAGE_TABLES. */
	pages = xcalloc((size_t) nts / PACKCAT_PAGE_TABLES + (size_t) (prev ? prev->npages : 0) + 2, sizeof(wpage));
	{
		int bucket = -1;
		int in_page = 0;

		for (int i = 0; i < nts; i++)
		{
			int bk = 0;

			while (prev && bk + 1 < prev->npages && prev->pages[bk + 1].first_relid <= ts[i].relid)
				bk++;
			if (npages == 0 || bk != bucket || in_page == PACKCAT_PAGE_TABLES)
			{
				pages[npages].first = i;
				npages++;
				in_page = 0;
				bucket = bk;
			}
			pages[npages - 1].n++;
			in_page++;
			ts[i].page = npages - 1;
		}
	}
	if (npages > PACKCAT_PAGES_MAX)
	{
		error_set(err, ERRCODE_OUT_OF_RANGE, "a catalog holds at most %d pages", PACKCAT_PAGES_MAX);
		goto out;
	}

	/* The same tables as a page of prev: a candidate to keep. */
	for (int p = 0; p < npages; p++)
	{
		const packcat_table *f = ts[pages[p].first].prev;

		if (f == NULL || prev->pages[f->page].ntables != pages[p].n)
			continue;
		if (prev->pages[f->page].first_relid != ts[pages[p].first].relid)
			continue;
		{
			bool same = true;

			for (int i = pages[p].first; same && i < pages[p].first + pages[p].n; i++)
				same = ts[i].prev != NULL && ts[i].prev->page == f->page;
			if (same)
				pages[p].reuse = &prev->pages[f->page];
		}
	}

	/* The touched tables' states: prev's page folded forward. */
	for (int i = 0; i < nts; i++)
	{
		fold_start start;

		if (!ts[i].touched)
			continue;
		memset(&start, 0, sizeof(start));
		if (prev)
		{
			start.seq = prev->seq;
			start.seal_lsn = prev->seal_lsn;
			start.sha256 = prev->pack_sha256;
		}
		if (ts[i].prev && ts[i].m == NULL &&
			load_prev_page(prev, ts[i].prev->page, get, get_ctx, ts, nts, err) != BS_OK)
			goto out;
		start.m = ts[i].m;
		start.last_event_lsn = ts[i].last;
		ts[i].m = NULL;
		if (fold_table_from(ts[i].relid, prev ? &start : NULL, packs, npacks, &ts[i].m, &ts[i].last, err) != BS_OK)
		{
			if (!prev)
				manifest_free(start.m);
			goto out;
		}
		/* The catalog keeps no runs: they are the packs'. */
		for (int s = 0; s < ts[i].m->nsegments; s++)
			free(ts[i].m->segments[s].key);
		free(ts[i].m->segments);
		ts[i].m->segments = NULL;
		ts[i].m->nsegments = 0;
	}
	/* Pages to write: any with a touched table or not prev's; kept when the bytes are the same. */
	for (int p = 0; p < npages; p++)
	{
		bool dirty = pages[p].reuse == NULL;

		for (int i = pages[p].first; !dirty && i < pages[p].first + pages[p].n; i++)
			dirty = ts[i].touched;
		if (!dirty)
		{
			pages[p].key = xstrdup(pages[p].reuse->key);
			memcpy(pages[p].sha256, pages[p].reuse->sha256, 65);
			pages[p].size = pages[p].reuse->size;
			continue;
		}
		for (int i = pages[p].first; i < pages[p].first + pages[p].n; i++)
			if (ts[i].m == NULL &&
				load_prev_page(prev, ts[i].prev->page, get, get_ctx, ts, nts, err) != BS_OK)
				goto out;
		/* An untouched table keeps its state; where it follows the log, to the new seal. */
		for (int i = pages[p].first; i < pages[p].first + pages[p].n; i++)
			if (!ts[i].touched && ts[i].prev->follows_log)
				ts[i].m->archived_to = seal;
		text = page_json(ts, &pages[p], seal);
		if (text == NULL)
		{
			error_set(err, ERRCODE_DATA_CORRUPTED, "a table of catalog page %d cannot be serialized", p);
			goto out;
		}
		pages[p].size = strlen(text);
		if (pages[p].size > PACKCAT_PAGE_MAX)
		{
			error_set(err, ERRCODE_OUT_OF_RANGE, "catalog page %d would be %" PRIu64 " bytes, above the "
					  "limit of %" PRIu64, p, pages[p].size, PACKCAT_PAGE_MAX);
			goto out;
		}
		digest_sha256_hex(text, pages[p].size, pages[p].sha256);
		if (pages[p].reuse && strcmp(pages[p].reuse->sha256, pages[p].sha256) == 0)
			pages[p].key = xstrdup(pages[p].reuse->key);
		else
		{
			pages[p].key = packcat_page_key(seq, p);
			if (put(put_ctx, pages[p].key, text, pages[p].size, err) != BS_OK)
				goto out;
		}
		free(text);
		text = NULL;
	}

	/* The dir, last: a reader that finds it finds its pages. */
	root = json_object();
	{
		json_t *parr = json_array();
		json_t *tarr = json_array();

		json_object_set_new(root, "format", json_integer(PACKCAT_FORMAT));
		json_object_set_new(root, "seq", json_integer((json_int_t) seq));
		json_object_set_new(root, "seal_lsn", manifest_json_lsn_value(seal));
		json_object_set_new(root, "pack_sha256", json_string(tip_sha256));
		for (int p = 0; p < npages; p++)
		{
			json_t *e = json_object();

			json_object_set_new(e, "key", json_string(pages[p].key));
			json_object_set_new(e, "sha256", json_string(pages[p].sha256));
			json_object_set_new(e, "size", json_integer((json_int_t) pages[p].size));
			json_object_set_new(e, "first_relid", json_integer(ts[pages[p].first].relid));
			json_object_set_new(e, "tables", json_integer(pages[p].n));
			json_array_append_new(parr, e);
		}
		for (int i = 0; i < nts; i++)
			json_array_append_new(tarr, dir_table_json(&ts[i], seal));
		json_object_set_new(root, "pages", parr);
		json_object_set_new(root, "tables", tarr);
	}
	text = json_dumps(root, JSON_COMPACT);
	dir_key = packcat_dir_key(seq);
	if (strlen(text) > PACKCAT_DIR_MAX)
	{
		error_set(err, ERRCODE_OUT_OF_RANGE, "the catalog dir would be %zu bytes, above the limit of %" PRIu64,
				  strlen(text), PACKCAT_DIR_MAX);
		goto out;
	}
	if (put(put_ctx, dir_key, text, strlen(text), err) != BS_OK)
		goto out;
	if (out && packcat_dir_from_json(dir_key, text, strlen(text), out, err) != BS_OK)
		goto out;
	rc = BS_OK;
out:
	json_decref(root);
	free(text);
	free(dir_key);
	for (int i = 0; i < nts; i++)
		manifest_free(ts[i].m);
	free(ts);
	for (int p = 0; p < npages; p++)
		free(pages[p].key);
	free(pages);
	free(touched);
	if (rc != BS_OK)
		error_prefix(err, "could not write the catalog at seq %" PRIu64, packs[npacks - 1]->seq_last);
	return rc;
}
