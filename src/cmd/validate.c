/* validate.c — the checks every command applies to the effective configuration before it runs. */
#include "validate.h"
#include "control.h"
#include "codec.h"
#include "ident.h"
#include "lsn.h"
#include "manifest.h"
#include "recover_plan.h"
#include "redact.h"
#include "storage.h"
#include "strbuf.h"

#include <ctype.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int (*value_check) (const char *value, bs_error *err);

static int
check_storage(const char *value, bs_error *err)
{
	return storage_url_check(value, err);
}

static int
check_absolute_path(const char *value, bs_error *err)
{
	if (value[0] != '/')
		return error_set(err, ERRCODE_INVALID_PARAMETER, "\"%s\" is not an absolute path", value);
	return BS_OK;
}

static int
check_endpoint(const char *value, bs_error *err)
{
	if (strncmp(value, "http://", 7) != 0 && strncmp(value, "https://", 8) != 0)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "expected an http:// or https:// URL");
	for (const unsigned char *p = (const unsigned char *) value; *p; p++)
		if (*p <= 0x20 || *p == 0x7f)
			return error_set(err, ERRCODE_INVALID_PARAMETER, "a URL holds no spaces or control characters");
	return BS_OK;
}

static int
check_region(const char *value, bs_error *err)
{
	if (*value == '\0' || strlen(value) > 64)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "expected a region name such as eu-west-1");
	for (const char *r = value; *r; r++)
		if (!(isalnum((unsigned char) *r) || *r == '-'))
			return error_set(err, ERRCODE_INVALID_PARAMETER, "expected a region name such as eu-west-1");
	return BS_OK;
}

/* What libpq accepts: conninfo "key=value ...", a postgresql:// URI or a database name. */
static int
check_conninfo(const char *value, bs_error *err)
{
	char *msg = NULL;
	PQconninfoOption *opts;

	/* Without '=' and not a URI, libpq takes the whole string as a database name. */
	if (strchr(value, '=') == NULL && strncmp(value, "postgresql://", 13) != 0 &&
		strncmp(value, "postgres://", 11) != 0)
		return BS_OK;
	opts = PQconninfoParse(value, &msg);
	if (opts == NULL)
	{
		char *shown = redact_text(msg ? msg : "out of memory");
		size_t n = strlen(shown);

		while (n > 0 && (shown[n - 1] == '\n' || shown[n - 1] == ' '))
			shown[--n] = '\0';
		error_set(err, ERRCODE_INVALID_PARAMETER, "not a valid connection string (conninfo or URI): %s", shown);
		free(shown);
		PQfreemem(msg);
		return BS_ERR;
	}
	PQconninfoFree(opts);
	return BS_OK;
}

/* schema.table or table, as PostgreSQL's lexer reads it, each part at most 63 bytes. */
static int
check_table_name(const char *value, bs_error *err)
{
	char *schema = NULL,
		*name = NULL;
	int rc = BS_OK;

	if (ident_split_name(value, &schema, &name, err) != BS_OK)
		return BS_ERR;
	if (strlen(schema) > VALIDATE_NAME_MAX || strlen(name) > VALIDATE_NAME_MAX)
		rc = error_set(err, ERRCODE_INVALID_PARAMETER,
					   "the name \"%s\" is %zu bytes long, longer than PostgreSQL's limit of %d bytes",
					   strlen(schema) > VALIDATE_NAME_MAX ? schema : name,
					   strlen(strlen(schema) > VALIDATE_NAME_MAX ? schema : name), VALIDATE_NAME_MAX);
	free(schema);
	free(name);
	return rc;
}

/* Comma-separated items, each checked by check (spaces around them trimmed, empty ones
 * skipped, as catalog_list_tables() and the encryption layer split them); at least one. */
static int
check_list(const char *value, int (*check) (const char *item, bs_error *err), const char *expected, bs_error *err)
{
	char *copy = xstrdup(value);
	char *save = NULL;
	int n = 0;
	int rc = BS_OK;

	for (char *tok = strtok_r(copy, ",", &save); tok && rc == BS_OK; tok = strtok_r(NULL, ",", &save))
	{
		while (*tok == ' ')
			tok++;
		for (char *e = tok + strlen(tok); e > tok && e[-1] == ' ';)
			*--e = '\0';
		if (*tok == '\0')
			continue;
		n++;
		rc = check(tok, err);
	}
	free(copy);
	if (rc == BS_OK && n == 0)
		rc = error_set(err, ERRCODE_INVALID_PARAMETER, "expected %s", expected);
	return rc;
}

static int
check_table_list(const char *value, bs_error *err)
{
	return check_list(value, check_table_name, "schema.table[,...]", err);
}

/* PostgreSQL's rule for replication slot names. */
static int
check_slot(const char *value, bs_error *err)
{
	size_t n = strlen(value);

	if (n == 0 || n > VALIDATE_NAME_MAX)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "a slot name has 1 to %d characters", VALIDATE_NAME_MAX);
	for (const char *p = value; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return error_set(err, ERRCODE_INVALID_PARAMETER,
							 "a slot name holds only lower case letters, digits and underscores");
	return BS_OK;
}

/* A name used as it is (quoted) in SQL, e.g. the publication. */
static int
check_pg_name(const char *value, bs_error *err)
{
	size_t n = strlen(value);

	if (n == 0 || n > VALIDATE_NAME_MAX)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "a name has 1 to %d bytes", VALIDATE_NAME_MAX);
	return BS_OK;
}

/* HOST:PORT, [IPV6]:PORT or off: as the control endpoint parses it. */
static int
check_listen(const char *value, bs_error *err)
{
	char *host;
	char *port;

	if (*value == '\0' || strcmp(value, "off") == 0)
		return BS_OK;
	if (control_parse_listen(value, &host, &port, err) != BS_OK)
		return BS_ERR;
	free(host);
	free(port);
	return BS_OK;
}

static int
check_lsn(const char *value, bs_error *err)
{
	uint64_t lsn;

	if (lsn_parse(value, &lsn) != BS_OK)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "expected an LSN such as 0/1A2B3C4");
	return BS_OK;
}

static int
check_xid(const char *value, bs_error *err)
{
	char *end;
	unsigned long long v;

	v = strtoull(value, &end, 10);
	if (*value < '0' || *value > '9' || *end != '\0' || v > UINT32_MAX)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "expected a transaction id (a decimal number)");
	return BS_OK;
}

static int
check_time(const char *value, bs_error *err)
{
	int64_t t;

	if (recover_parse_time(value, &t) != BS_OK)
		return error_set(err, ERRCODE_INVALID_PARAMETER,
						 "expected a time such as \"2026-11-26 16:00:00.123456+00\" (your time zone when no "
						 "offset is given), \"20 min ago\" or \"now\"");
	return BS_OK;
}

/* A file name: the encryption key and passphrase files. */
static int
check_file(const char *value, bs_error *err)
{
	if (*value == '\0')
		return error_set(err, ERRCODE_INVALID_PARAMETER, "expected a file name");
	for (const unsigned char *p = (const unsigned char *) value; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return error_set(err, ERRCODE_INVALID_PARAMETER, "a file name holds no control characters");
	return BS_OK;
}

static int
check_file_list(const char *value, bs_error *err)
{
	return check_list(value, check_file, "FILE[,FILE...]", err);
}

/* quoted: the check's own messages quote the value (shared with storage_open() and
 * ident_split_name()), so it is not repeated in front of them. */
static const struct
{
	config_id id;
	value_check check;
	bool quoted;
} value_checks[] = {
	/* data_dir first: the default storage and spool_dir are made from it. */
	{CFG_DATA_DIR, check_absolute_path, true},
	{CFG_SPOOL_DIR, check_absolute_path, true},
	{CFG_STORAGE, check_storage, true},
	{CFG_S3_ENDPOINT, check_endpoint, false},
	{CFG_S3_REGION, check_region, false},
	{CFG_DB, check_conninfo, false},
	{CFG_TARGET_DB, check_conninfo, false},
	{CFG_TO_DB, check_conninfo, false},
	{CFG_TABLES, check_table_list, true},
	{CFG_TABLE, check_table_name, true},
	{CFG_INTO, check_table_name, true},
	{CFG_SLOT, check_slot, false},
	{CFG_PUBLICATION, check_pg_name, false},
	{CFG_LISTEN, check_listen, false},
	{CFG_END_LSN, check_lsn, false},
	{CFG_TO_LSN, check_lsn, false},
	{CFG_FROM_LSN, check_lsn, false},
	{CFG_TO_XID, check_xid, false},
	{CFG_TO_TIME, check_time, false},
	{CFG_ENCRYPTION_KEY_FILE, check_file, false},
	{CFG_ENCRYPTION_PASSPHRASE_FILE, check_file, false},
	{CFG_ENCRYPTION_OLD_KEY_FILE, check_file_list, false},
	{CFG_ENCRYPTION_OLD_PASSPHRASE_FILE, check_file_list, false},
	{CFG_SINCE, check_time, false},
	{CFG_UNTIL, check_time, false},
	{CFG_XID, check_xid, false},
};

#define NVALUE_CHECKS (sizeof(value_checks) / sizeof(value_checks[0]))

int
validate_option_value(const char *option, const char *value, bs_error *err)
{
	config_id id;

	if (!config_find_id(option, &id))
		return BS_OK;
	for (size_t i = 0; i < NVALUE_CHECKS; i++)
		if (value_checks[i].id == id)
			return value_checks[i].check(value, err);
	return BS_OK;
}

/* Name the value's origin and option before the reason; secrets are not repeated. */
static int
invalid(const bs_config *cfg, config_id id, bool quoted, bs_error *err)
{
	const config_option *opt = &config_options[id];
	const char *value = config_get(cfg, id);
	char *shown = opt->secret ? redact_text(value) : xstrdup(value);

	snprintf(err->code, sizeof(err->code), "%s", ERRCODE_INVALID_PARAMETER);
	if (opt->secret || quoted)
		error_prefix(err, "%s: invalid value for %s", config_origin(cfg, id), opt->name);
	else
		error_prefix(err, "%s: invalid value for %s: \"%s\"", config_origin(cfg, id), opt->name, shown);
	free(shown);
	return BS_ERR;
}

/* A compression level is checked against the codec it will be given to, as the writers do. */
static int
check_level(const bs_config *cfg, config_id id, bs_error *err)
{
	codec_id codec;
	codec_stream *cs = NULL;
	const char *level = config_get(cfg, id);

	if (level == NULL || codec_parse(config_get(cfg, CFG_COMPRESSION), &codec, err) != BS_OK)
		return BS_OK;			/* the enum and integer checks of config_load() apply */
	if (codec_compressor_open(codec, (int) config_get_int(cfg, id), &cs, err) != BS_OK)
		return invalid(cfg, id, false, err);
	codec_stream_free(cs);
	return BS_OK;
}

int
validate_config(const bs_config *cfg, bs_error *err)
{
	for (size_t i = 0; i < NVALUE_CHECKS; i++)
	{
		const char *value = config_get(cfg, value_checks[i].id);

		if (value && value_checks[i].check(value, err) != BS_OK)
			return invalid(cfg, value_checks[i].id, value_checks[i].quoted, err);
	}
	if (check_level(cfg, CFG_COMPRESSION_LEVEL, err) != BS_OK ||
		check_level(cfg, CFG_SEGMENT_COMPRESSION_LEVEL, err) != BS_OK)
		return BS_ERR;
	return BS_OK;
}
