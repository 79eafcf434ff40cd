/* config.c — effective configuration: defaults < config file < BACKSTOP_* environment < flags. */
#include "config.h"
#include "inifile.h"
#include "redact.h"
#include "strbuf.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define DEFAULT_CONFIG_FILE "/etc/backstop/backstop.conf"

const config_option config_options[CONFIG_OPTION_COUNT + 1] = {
#define CONFIG_OPTION(id, name, type, def, enum_values, secret, help) \
	[CFG_##id] = {name, type, def, enum_values, secret, help},
#include "config_list.h"
#undef CONFIG_OPTION
	[CONFIG_OPTION_COUNT] = {NULL, 0, NULL, NULL, false, NULL}
};

/*
 * The values each numeric option accepts (INT: the number; SIZE: bytes; DURATION:
 * milliseconds), checked wherever a value comes from (file, environment, flag, SIGHUP
 * reload).  Kept apart from config_options so that its positional initializers stay as
 * they are; a numeric option missing here takes any value its type parses (none should:
 * t/unit/test_config checks that every numeric option has a range).
 */
#define KIB INT64_C(1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
#define SEC INT64_C(1000)
#define MINUTE (SEC * 60)
#define HOUR (MINUTE * 60)
#define DAY (HOUR * 24)

static const config_range config_ranges[] = {
	{CFG_COMPRESSION_LEVEL, 0, 22},	/* zstd 0..22 (0: zstd's default); lz4 0..12, checked with the codec */
	{CFG_SEGMENT_COMPRESSION_LEVEL, 0, 22},
	{CFG_S3_MULTIPART_THRESHOLD, 5 * MIB, 5 * GIB},	/* S3's smallest and largest part */
	{CFG_S3_TIMEOUT, SEC, DAY},
	{CFG_RETRIES, 0, 100},
	{CFG_RETRY_BASE_DELAY, 1, 20 * SEC},	/* a retry never waits more than 20 s */
	{CFG_SEGMENT_SIZE, 64 * KIB, GIB},
	{CFG_SEGMENT_AGE, 100, DAY},
	{CFG_HEAD_INTERVAL, 0, DAY},
	{CFG_BASE_CHUNK_SIZE, 64 * KIB, GIB},
	{CFG_REBASE_AGE, MINUTE, 3650 * DAY},
	{CFG_REBASE_RATIO, 1, 1000000},
	{CFG_REBASE_MIN_INTERVAL, 0, 3650 * DAY},	/* 0: no minimum */
	{CFG_BASE_LOCK_TIMEOUT, 1, MINUTE},	/* a waiting lock request holds up the users queued behind it */
	{CFG_SPOOL_LIMIT, 64 * KIB, INT64_MAX},
	{CFG_OPEN_MEMORY_LIMIT, MIB, INT64_MAX},
	{CFG_MEMORY_LIMIT, MIB, INT64_MAX},
	{CFG_LISTEN_MAX_CONNECTIONS, 1, 100000},
	{CFG_LISTEN_TIMEOUT, SEC, HOUR},
	{CFG_STATUS_INTERVAL, 100, HOUR},
	{CFG_TABLE_POLL_INTERVAL, 100, DAY},
	{CFG_LEASE_TIMEOUT, SEC, DAY},	/* renewed every third of it: below 1 s, storage latency alone would expire it */
	{CFG_TIMEOUT, 100, DAY},
	{CFG_STALE_AFTER, SEC, 3650 * DAY},
	{CFG_KEEP_WINDOW, 1, 36500 * DAY},
	{CFG_KEEP_BASES, 1, 1000000},	/* the newest base copy is never removed */
	{CFG_ORPHAN_AGE, 0, 3650 * DAY},	/* 0: at once (no upload may be running: tests, a stopped archiver) */
	{CFG_EXPIRE_INTERVAL, 0, 3650 * DAY},	/* 0: off */
};

const config_range *
config_range_of(config_id id)
{
	for (size_t i = 0; i < sizeof(config_ranges) / sizeof(config_ranges[0]); i++)
		if (config_ranges[i].id == id)
			return &config_ranges[i];
	return NULL;
}

const config_range *
config_find_range(const char *name)
{
	config_id id;

	return config_find_id(name, &id) ? config_range_of(id) : NULL;
}

/* A bound as the user would write it: 64kB, 5MiB, 1GiB, 100ms, 20s, 1h, 7d. */
void
config_format_value(config_type type, int64_t v, char *buf, size_t len)
{
	static const char *const size_units[] = {"GiB", "MiB", "kB", NULL};
	static const int64_t size_mult[] = {GIB, MIB, KIB};
	static const char *const time_units[] = {"d", "h", "min", "s", NULL};
	static const int64_t time_mult[] = {DAY, HOUR, MINUTE, SEC};
	const char *const *units = type == CONFIG_SIZE ? size_units : type == CONFIG_DURATION ? time_units : NULL;
	const int64_t *mult = type == CONFIG_SIZE ? size_mult : time_mult;

	if (v == INT64_MAX)
	{
		snprintf(buf, len, "no limit");
		return;
	}
	if (v == 0)
	{
		snprintf(buf, len, "0");
		return;
	}
	for (int i = 0; units && units[i]; i++)
	{
		if (v % mult[i] == 0)
		{
			snprintf(buf, len, "%lld%s", (long long) (v / mult[i]), units[i]);
			return;
		}
	}
	snprintf(buf, len, "%lld%s", (long long) v, type == CONFIG_SIZE ? "B" : type == CONFIG_DURATION ? "ms" : "");
}

/* "between 64kB and 1GiB" or "at least 64kB" for messages and help. */
void
config_format_range(const config_option *opt, const config_range *r, char *buf, size_t len)
{
	char lo[32],
		hi[32];

	config_format_value(opt->type, r->min, lo, sizeof(lo));
	config_format_value(opt->type, r->max, hi, sizeof(hi));
	if (r->max == INT64_MAX)
		snprintf(buf, len, "at least %s", lo);
	else
		snprintf(buf, len, "between %s and %s", lo, hi);
}

static int
option_index(const char *name)
{
	for (int i = 0; config_options[i].name; i++)
		if (strcmp(config_options[i].name, name) == 0)
			return i;
	return -1;
}

const config_option *
config_find_option(const char *name)
{
	int i = option_index(name);

	return i < 0 ? NULL : &config_options[i];
}

bool
config_find_id(const char *name, config_id *id)
{
	int i = option_index(name);

	if (i < 0)
		return false;
	*id = (config_id) i;
	return true;
}

/* A bug in Backstop, not a user error (see config.h): say so and stop. */
static void internal_error(const char *fmt,...) __attribute__((format(printf, 1, 2), noreturn));

static void
internal_error(const char *fmt,...)
{
	va_list ap;

	fflush(stdout);
	fputs("backstop: internal error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* The checked index of an option id. */
static config_id
checked_id(config_id id, const char *getter)
{
	if ((unsigned) id >= CONFIG_OPTION_COUNT)
		internal_error("%s(): option id %d out of range", getter, (int) id);
	return id;
}

int
config_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"on", "true", "yes", "1", NULL};
	static const char *const no[] = {"off", "false", "no", "0", NULL};

	for (int i = 0; yes[i]; i++)
		if (strcasecmp(s, yes[i]) == 0)
			return (*out = true), 0;
	for (int i = 0; no[i]; i++)
		if (strcasecmp(s, no[i]) == 0)
			return (*out = false), 0;
	return -1;
}

int
config_parse_int(const char *s, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

/* Number followed by an optional unit from the table; multiplier applied with overflow check. */
static int
parse_with_units(const char *s, const char *const *units, const int64_t *mult, int64_t *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || v < 0)
		return -1;
	while (*end == ' ')
		end++;
	if (*end == '\0')
	{
		if (v > (double) INT64_MAX)
			return -1;
		*out = (int64_t) v;
		return 0;
	}
	for (int i = 0; units[i]; i++)
	{
		if (strcasecmp(end, units[i]) == 0 && strcmp(units[i], "") != 0)
		{
			double r = v * (double) mult[i];

			if (r > (double) INT64_MAX)
				return -1;
			*out = (int64_t) r;
			return 0;
		}
	}
	return -1;
}

int
config_parse_size(const char *s, int64_t *out)
{
	static const char *const units[] = {"B", "k", "kB", "KiB", "M", "MB", "MiB", "G", "GB", "GiB", "TB", "TiB", NULL};
	static const int64_t mult[] = {1, 1024, 1024, 1024, 1 << 20, 1 << 20, 1 << 20, 1 << 30, 1 << 30, 1 << 30,
	(int64_t) 1 << 40, (int64_t) 1 << 40};

	return parse_with_units(s, units, mult, out);
}

int
config_parse_duration_ms(const char *s, int64_t *out)
{
	static const char *const units[] = {"ms", "s", "sec", "min", "m", "h", "d", NULL};
	static const int64_t mult[] = {1, 1000, 1000, 60000, 60000, 3600000, 86400000};
	int64_t v;

	/* A bare number is seconds, as in most daemons' configuration. */
	if (config_parse_int(s, &v) == 0)
	{
		if (v < 0 || v > INT64_MAX / 1000)
			return -1;
		*out = v * 1000;
		return 0;
	}
	return parse_with_units(s, units, mult, out);
}

/* The value of a numeric option within its range (config_ranges). */
static int
check_range(const config_option *opt, int64_t n, const char *value, const char *origin, bs_error *err)
{
	const config_range *r = config_range_of((config_id) (opt - config_options));
	char range[80];

	if (r == NULL || (n >= r->min && n <= r->max))
		return BS_OK;
	config_format_range(opt, r, range, sizeof(range));
	return error_set(err, ERRCODE_INVALID_PARAMETER, "%s: invalid value for %s: \"%s\" (must be %s)",
					 origin, opt->name, value, range);
}

static int
validate_value(const config_option *opt, const char *value, const char *origin, bs_error *err)
{
	bool b;
	int64_t n;

	switch (opt->type)
	{
		case CONFIG_STRING:
			return BS_OK;
		case CONFIG_BOOL:
			if (config_parse_bool(value, &b) == 0)
				return BS_OK;
			return error_set(err, ERRCODE_INVALID_PARAMETER,
							 "%s: invalid value for %s: \"%s\" (expected on or off)", origin, opt->name, value);
		case CONFIG_INT:
			if (config_parse_int(value, &n) == 0)
				return check_range(opt, n, value, origin, err);
			return error_set(err, ERRCODE_INVALID_PARAMETER,
							 "%s: invalid value for %s: \"%s\" (expected an integer)", origin, opt->name, value);
		case CONFIG_SIZE:
			if (config_parse_size(value, &n) == 0)
				return check_range(opt, n, value, origin, err);
			return error_set(err, ERRCODE_INVALID_PARAMETER,
							 "%s: invalid value for %s: \"%s\" (expected a size such as 16MiB)", origin, opt->name, value);
		case CONFIG_DURATION:
			if (config_parse_duration_ms(value, &n) == 0)
				return check_range(opt, n, value, origin, err);
			return error_set(err, ERRCODE_INVALID_PARAMETER,
							 "%s: invalid value for %s: \"%s\" (expected a duration such as 10s)", origin, opt->name, value);
		case CONFIG_ENUM:
			{
				const char *p = opt->enum_values;
				size_t len = strlen(value);

				while (p && *p)
				{
					const char *bar = strchr(p, '|');
					size_t n2 = bar ? (size_t) (bar - p) : strlen(p);

					if (n2 == len && strncasecmp(p, value, len) == 0)
						return BS_OK;
					p = bar ? bar + 1 : NULL;
				}
				return error_set(err, ERRCODE_INVALID_PARAMETER,
								 "%s: invalid value for %s: \"%s\" (expected one of %s)", origin, opt->name, value, opt->enum_values);
			}
	}
	return BS_OK;
}

void
config_set(bs_config *cfg, config_id id, const char *value, config_source source)
{
	int i = checked_id(id, "config_set");

	free(cfg->values[i].value);
	cfg->values[i].value = value ? xstrdup(value) : NULL;
	cfg->values[i].source = source;
}

static int
set_checked(bs_config *cfg, const char *name, const char *value, config_source source,
			const char *origin, bs_error *err)
{
	int i = option_index(name);

	if (i < 0)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "%s: unknown option \"%s\"", origin, name);
	if (validate_value(&config_options[i], value, origin, err) != BS_OK)
		return BS_ERR;
	config_set(cfg, (config_id) i, value, source);
	free(cfg->values[i].origin);
	cfg->values[i].origin = xstrdup(origin);
	return BS_OK;
}

/* INI file: "key = value" lines, '#' or ';' comments, optional [section] headers (ignored
 * except for naming, e.g. [backstop]).  Values may be single- or double-quoted. */
static int
load_file(bs_config *cfg, const char *path, bool must_exist, bs_error *err)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0;
	int rc = BS_OK;

	struct stat sb;

	if (f == NULL)
	{
		if (errno == ENOENT && !must_exist)
			return BS_OK;
		return error_set_errno(err, errno, "could not open configuration file \"%s\"", path);
	}
	/* fopen() opens a directory for reading and reading it fails: that is no empty file.
	 * (/dev/null and pipes are fine.) */
	if (fstat(fileno(f), &sb) != 0)
	{
		error_set_errno(err, errno, "could not stat configuration file \"%s\"", path);
		fclose(f);
		return BS_ERR;
	}
	if (S_ISDIR(sb.st_mode))
	{
		error_set(err, ERRCODE_INVALID_PARAMETER, "configuration file \"%s\" is a directory", path);
		fclose(f);
		return BS_ERR;
	}
	while ((n = getline(&line, &cap, f)) >= 0)
	{
		char *s, *key, *value;
		char origin[PATH_MAX + 32];

		lineno++;
		s = ini_trim(line);
		if (*s == '\0' || *s == '#' || *s == ';' || *s == '[')
			continue;
		snprintf(origin, sizeof(origin), "%s:%d", path, lineno);
		if (!ini_key_value(s, &key, &value))
		{
			rc = error_set(err, ERRCODE_SYNTAX, "%s: syntax error: expected \"key = value\"", origin);
			break;
		}
		for (char *k = key; *k; k++)
			if (*k == '-')
				*k = '_';
		if (strcmp(key, "config") == 0)
		{
			rc = error_set(err, ERRCODE_INVALID_PARAMETER, "%s: \"config\" cannot be set in a configuration file", origin);
			break;
		}
		if (set_checked(cfg, key, value, SOURCE_FILE, origin, err) != BS_OK)
		{
			rc = BS_ERR;
			break;
		}
	}
	if (rc == BS_OK && ferror(f))
		rc = error_set_errno(err, errno, "could not read configuration file \"%s\"", path);
	free(line);
	fclose(f);
	if (rc == BS_OK)
		cfg->config_file = xstrdup(path);
	return rc;
}

static bool
is_allowed(const char *const *allowed, const char *name)
{
	/* General options are accepted by every command. */
	static const config_id general_ids[] = {CFG_CONFIG, CFG_LOG_LEVEL, CFG_LOG_FORMAT, CFG_DATA_DIR};

	for (size_t i = 0; i < sizeof(general_ids) / sizeof(general_ids[0]); i++)
		if (strcmp(config_options[general_ids[i]].name, name) == 0)
			return true;
	for (int i = 0; allowed && allowed[i]; i++)
		if (strcmp(allowed[i], name) == 0)
			return true;
	return false;
}

int
config_load(bs_config *cfg, int argc, char **argv, const char *const *allowed,
			char ***positional, int *npositional, bool *usage_error, bs_error *err)
{
	int nopts = 0;
	char **flag_names;
	char **flag_values;
	int nflags = 0;
	const char *config_path = NULL;
	bool config_explicit = false;
	int rc = BS_ERR;

	*usage_error = false;
	/* The commands' option lists name options as strings (src/cli.c): one that names none
	 * would silently drop the option from its command. */
	for (int i = 0; allowed && allowed[i]; i++)
		if (option_index(allowed[i]) < 0)
			internal_error("config_load(): the option list of the command names an unknown option \"%s\"",
						   allowed[i]);
	while (config_options[nopts].name)
		nopts++;
	memset(cfg, 0, sizeof(*cfg));
	cfg->values = xcalloc((size_t) nopts, sizeof(config_value));
	for (int i = 0; i < nopts; i++)
		if (config_options[i].default_value)
			config_set(cfg, (config_id) i, config_options[i].default_value, SOURCE_DEFAULT);

	*positional = xcalloc((size_t) argc + 1, sizeof(char *));
	*npositional = 0;
	flag_names = xcalloc((size_t) argc + 1, sizeof(char *));
	flag_values = xcalloc((size_t) argc + 1, sizeof(char *));

	/* First pass: split the command line into flags and positional arguments. */
	for (int i = 0; i < argc; i++)
	{
		const char *arg = argv[i];
		char *name;
		const char *value = NULL;
		const config_option *opt;
		char *eq;

		if (strcmp(arg, "--") == 0)
		{
			for (i++; i < argc; i++)
				(*positional)[(*npositional)++] = argv[i];
			break;
		}
		if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0')
		{
			if (arg[0] == '-' && arg[1] != '\0')
			{
				*usage_error = true;
				error_set(err, ERRCODE_INVALID_PARAMETER, "unknown option \"%s\"", arg);
				goto out;
			}
			(*positional)[(*npositional)++] = argv[i];
			continue;
		}
		name = xstrdup(arg + 2);
		eq = strchr(name, '=');
		if (eq)
		{
			*eq = '\0';
			value = eq + 1;
		}
		for (char *k = name; *k; k++)
			if (*k == '-')
				*k = '_';
		opt = config_find_option(name);
		if (opt == NULL || !is_allowed(allowed, name))
		{
			*usage_error = true;
			error_set(err, ERRCODE_INVALID_PARAMETER, "unknown option \"--%.*s\"",
					  (int) (eq ? (size_t) (eq - name) : strlen(name)), arg + 2);
			free(name);
			goto out;
		}
		if (value == NULL)
		{
			if (opt->type == CONFIG_BOOL)
				value = "on";
			else if (i + 1 < argc)
				value = argv[++i];
			else
			{
				*usage_error = true;
				error_set(err, ERRCODE_INVALID_PARAMETER, "option \"%s\" needs a value", arg);
				free(name);
				goto out;
			}
		}
		if (strcmp(name, "config") == 0)
		{
			config_path = value;
			config_explicit = true;
		}
		flag_names[nflags] = name;
		flag_values[nflags] = (char *) value;
		nflags++;
	}

	/* The file: --config, else BACKSTOP_CONFIG, else the default (optional). */
	if (config_path == NULL && getenv("BACKSTOP_CONFIG") && *getenv("BACKSTOP_CONFIG"))
	{
		config_path = getenv("BACKSTOP_CONFIG");
		config_explicit = true;
	}
	if (config_path == NULL)
		config_path = DEFAULT_CONFIG_FILE;
	if (load_file(cfg, config_path, config_explicit, err) != BS_OK)
		goto out;

	/* Environment: BACKSTOP_<OPTION>. */
	for (int i = 0; i < nopts; i++)
	{
		char envname[128];
		const char *v;

		if (i == CFG_CONFIG)
			continue;
		snprintf(envname, sizeof(envname), "BACKSTOP_%s", config_options[i].name);
		for (char *k = envname; *k; k++)
			*k = (char) toupper((unsigned char) *k);
		v = getenv(envname);
		if (v == NULL || *v == '\0')
			continue;
		if (set_checked(cfg, config_options[i].name, v, SOURCE_ENV, envname, err) != BS_OK)
			goto out;
	}

	/* Flags last: they win. */
	for (int i = 0; i < nflags; i++)
	{
		char origin[256];

		snprintf(origin, sizeof(origin), "option --%s", flag_names[i]);
		for (char *k = origin; *k; k++)
			if (*k == '_')
				*k = '-';
		if (set_checked(cfg, flag_names[i], flag_values[i], SOURCE_FLAG, origin, err) != BS_OK)
		{
			*usage_error = true;
			goto out;
		}
	}
	rc = BS_OK;
out:
	for (int i = 0; i < nflags; i++)
		free(flag_names[i]);
	free(flag_names);
	free(flag_values);
	return rc;
}

/* A key or token, masked whole; other secret options (conninfo, URLs) are redacted. */
static bool
whole_value_secret(const config_option *opt)
{
	return strstr(opt->name, "secret") || strstr(opt->name, "token") || strstr(opt->name, "key_id") ||
		strstr(opt->name, "passphrase");
}

void
config_scrub_secrets(int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
	{
		const char *arg = argv[i];
		const char *eq;
		char name[128];
		size_t len;
		const config_option *opt;
		char *value;

		if (strcmp(arg, "--") == 0)
			break;
		if (strncmp(arg, "--", 2) != 0)
			continue;
		eq = strchr(arg, '=');
		len = eq ? (size_t) (eq - arg - 2) : strlen(arg + 2);
		if (len == 0 || len >= sizeof(name))
			continue;
		memcpy(name, arg + 2, len);
		name[len] = '\0';
		for (char *k = name; *k; k++)
			if (*k == '-')
				*k = '_';
		opt = config_find_option(name);
		if (opt == NULL)
			continue;
		if (eq)
			value = argv[i] + (eq - arg) + 1;
		else if (opt->type != CONFIG_BOOL && i + 1 < argc)
			value = argv[++i];
		else
			continue;
		/* Overwritten in place: /proc/PID/cmdline (ps) shows the argv memory itself.  A
		 * connection string or URL stays readable when it holds no password. */
		if (opt->secret)
		{
			char *shown = whole_value_secret(opt) ? NULL : redact_text(value);

			if (shown == NULL || strcmp(shown, value) != 0)
				memset(value, 'x', strlen(value));
			free(shown);
		}
	}
}

const char *
config_origin(const bs_config *cfg, config_id id)
{
	int i = checked_id(id, "config_origin");

	if (cfg->values == NULL)
		return NULL;
	if (cfg->values[i].origin)
		return cfg->values[i].origin;
	return cfg->values[i].source == SOURCE_DEFAULT ? "default" : config_options[i].name;
}

void
config_free(bs_config *cfg)
{
	if (cfg->values)
	{
		for (int i = 0; config_options[i].name; i++)
		{
			free(cfg->values[i].value);
			free(cfg->values[i].origin);
		}
	}
	free(cfg->values);
	free(cfg->config_file);
	memset(cfg, 0, sizeof(*cfg));
}

const char *
config_get(const bs_config *cfg, config_id id)
{
	int i = checked_id(id, "config_get");

	if (cfg->values == NULL)
		internal_error("config_get(): option %s read before the configuration was loaded", config_options[i].name);
	return cfg->values[i].value;
}

/* The value of a typed option for a typed getter; NULL when unset. */
static const char *
typed_value(const bs_config *cfg, config_id id, config_type type, const char *getter)
{
	int i = checked_id(id, getter);

	if (config_options[i].type != type)
		internal_error("%s(): option %s is of another type", getter, config_options[i].name);
	return config_get(cfg, id);
}

/* A value that config_load() would not have accepted. */
static void
unparsable(config_id id, const char *value, const char *getter)
{
	internal_error("%s(): the value \"%s\" of option %s does not parse (it was not checked when set)",
				   getter, value, config_options[id].name);
}

bool
config_get_bool(const bs_config *cfg, config_id id)
{
	const char *v = typed_value(cfg, id, CONFIG_BOOL, "config_get_bool");
	bool b = false;

	if (v && config_parse_bool(v, &b) != 0)
		unparsable(id, v, "config_get_bool");
	return b;
}

/* The value of a numeric option (int, size or duration) as its parser reads it; 0 when unset. */
static int64_t
typed_number(const bs_config *cfg, config_id id, config_type type, int (*parse) (const char *, int64_t *),
			 const char *getter)
{
	const char *v = typed_value(cfg, id, type, getter);
	int64_t n = 0;

	if (v && parse(v, &n) != 0)
		unparsable(id, v, getter);
	return n;
}

int64_t
config_get_int(const bs_config *cfg, config_id id)
{
	return typed_number(cfg, id, CONFIG_INT, config_parse_int, "config_get_int");
}

int64_t
config_get_size(const bs_config *cfg, config_id id)
{
	return typed_number(cfg, id, CONFIG_SIZE, config_parse_size, "config_get_size");
}

int64_t
config_get_duration_ms(const bs_config *cfg, config_id id)
{
	return typed_number(cfg, id, CONFIG_DURATION, config_parse_duration_ms, "config_get_duration_ms");
}

void
config_print(const bs_config *cfg, bool show_all)
{
	static const char *const source_names[] = {"default", "file", "environment", "flag"};

	printf("# effective configuration (file: %s)\n", cfg->config_file ? cfg->config_file : "none");
	for (int i = 0; config_options[i].name; i++)
	{
		const config_value *v = &cfg->values[i];
		char *shown;

		if (i == CFG_CONFIG)
			continue;
		if (v->value == NULL)
		{
			if (show_all)
				printf("# %s =\t\t# unset: %s\n", config_options[i].name, config_options[i].help);
			continue;
		}
		if (config_options[i].secret)
		{
			/* Whole-value secrets are masked; conninfo/URLs keep their non-secret parts. */
			if (whole_value_secret(&config_options[i]))
				shown = xstrdup("********");
			else
				shown = redact_text(v->value);
		}
		else
			shown = xstrdup(v->value);
		{
			/* A value from the environment or a flag may hold a newline: one setting, one line. */
			char *line = xstrdup_printable(shown);

			printf("%s = %s\t# %s%s%s\n", config_options[i].name, line, source_names[v->source],
				   v->origin ? ": " : "", v->origin ? v->origin : "");
			free(line);
		}
		free(shown);
	}
}
