/* config.h — effective configuration: built-in defaults < config file < BACKSTOP_* environment < flags. */
#ifndef BACKSTOP_CONFIG_H
#define BACKSTOP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef enum config_type
{
	CONFIG_STRING,
	CONFIG_BOOL,
	CONFIG_INT,
	CONFIG_SIZE,		/* bytes, accepts kB/MB/GB/KiB/MiB/GiB suffixes */
	CONFIG_DURATION,	/* milliseconds, accepts ms/s/min/h/d suffixes */
	CONFIG_ENUM
} config_type;

typedef enum config_source
{
	SOURCE_DEFAULT = 0,
	SOURCE_FILE,
	SOURCE_ENV,
	SOURCE_FLAG
} config_source;

typedef struct config_option
{
	const char *name;		/* key in the file; flag is --name with '-' for '_' */
	config_type type;
	const char *default_value;	/* NULL: unset */
	const char *enum_values;	/* "a|b|c" for CONFIG_ENUM */
	bool secret;			/* redact in `backstop config` */
	const char *help;
} config_option;

/*
 * The id of each option: CFG_ and its name in upper case (CFG_SEGMENT_AGE for segment_age),
 * made from the one list in config_list.h.  Code names an option by its id, so a misspelt
 * option does not compile; a name as a string is looked up only where it comes from the
 * user (command line, environment, configuration file, `backstop config`): see
 * config_find_id().
 */
typedef enum config_id
{
#define CONFIG_OPTION(id, name, type, def, enum_values, secret, help) CFG_##id,
#include "config_list.h"
#undef CONFIG_OPTION
	CONFIG_OPTION_COUNT
} config_id;

/* The values a numeric option accepts: INT the number, SIZE bytes, DURATION milliseconds;
 * max INT64_MAX is "no upper limit".  Kept in a table of its own, keyed by option id. */
typedef struct config_range
{
	config_id id;
	int64_t min;
	int64_t max;
} config_range;

/* The range of a numeric option, NULL when it has none (by name: for the help text). */
const config_range *config_range_of(config_id id);
const config_range *config_find_range(const char *name);
/* A value or range as a user writes it ("64kB", "between 100ms and 1d"). */
void config_format_value(config_type type, int64_t v, char *buf, size_t len);
void config_format_range(const config_option *opt, const config_range *r, char *buf, size_t len);

/* All options Backstop knows, indexed by config_id (terminated by a NULL name at
 * CONFIG_OPTION_COUNT). */
extern const config_option config_options[CONFIG_OPTION_COUNT + 1];

typedef struct config_value
{
	char *value;			/* NULL when unset */
	config_source source;
	char *origin;			/* "file:line", "BACKSTOP_X", "--flag" */
} config_value;

typedef struct bs_config
{
	config_value *values;	/* parallel to config_options */
	char *config_file;		/* file actually read, or NULL */
} bs_config;

/* An option by the name a user wrote ("segment_age"): NULL, or false, when there is none. */
const config_option *config_find_option(const char *name);
bool config_find_id(const char *name, config_id *id);

/* Build the effective configuration.  argv holds only the option arguments of the
 * command (already split off); `allowed` lists the option names the command takes
 * (NULL-terminated); positional arguments are returned in *positional.
 * Returns BS_ERR with a message naming file/line/key or the flag on bad input;
 * *usage_error is set when the fault is in the command line (exit code 2). */
int config_load(bs_config *cfg, int argc, char **argv, const char *const *allowed,
				char ***positional, int *npositional, bool *usage_error, bs_error *err);
void config_free(bs_config *cfg);

/* Overwrite, in argv itself, the values of secret options (passwords in --db, S3 keys) so
 * that the process list (/proc/PID/cmdline, ps) no longer shows them.  Call once the
 * values have been copied, i.e. after config_load(). */
void config_scrub_secrets(int argc, char **argv);

/*
 * Access by id.  Every value was checked when it was loaded (config_load(): its type and
 * range; validate_config(): its form), so the typed getters meet only values they parse.
 * One that still does not parse (a config_set() that bypassed the checks), a getter used on
 * an option of another type (config_get_int() on a SIZE option would return bytes
 * unscaled), or an id out of range is a bug in Backstop, not a user error: the getter
 * prints "internal error" naming the option and aborts, rather than return a 0 the caller
 * would take for a setting.  An unset option (no default, nothing given) reads as NULL from
 * config_get() and as 0 / false from the typed getters: test config_get() != NULL first
 * where unset means something else than 0.
 */

/* Where a value came from: "option --x", "BACKSTOP_X", "FILE:LINE" or "default". */
const char *config_origin(const bs_config *cfg, config_id id);

/* Set a value programmatically (tests, derived defaults, SIGHUP reload); not checked. */
void config_set(bs_config *cfg, config_id id, const char *value, config_source source);

/* The value as written (any type), NULL when unset. */
const char *config_get(const bs_config *cfg, config_id id);
/* BOOL options only. */
bool config_get_bool(const bs_config *cfg, config_id id);
/* INT options only. */
int64_t config_get_int(const bs_config *cfg, config_id id);
/* SIZE options only: bytes.  DURATION options only: milliseconds. */
int64_t config_get_size(const bs_config *cfg, config_id id);
int64_t config_get_duration_ms(const bs_config *cfg, config_id id);

/* Parsers shared with other modules; return 0 on success. */
int config_parse_bool(const char *s, bool *out);
int config_parse_int(const char *s, int64_t *out);
int config_parse_size(const char *s, int64_t *out);
int config_parse_duration_ms(const char *s, int64_t *out);

/* Print the effective configuration (secrets redacted) in INI form. */
void config_print(const bs_config *cfg, bool show_all);

#endif
