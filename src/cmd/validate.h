/* validate.h — the checks every command applies to the effective configuration before it runs. */
#ifndef BACKSTOP_VALIDATE_H
#define BACKSTOP_VALIDATE_H

#include <stdbool.h>

#include "config.h"
#include "error.h"

/* PostgreSQL's longest name in bytes (NAMEDATALEN - 1); a longer one is cut silently. */
#define VALIDATE_NAME_MAX 63

/*
 * Check every value that is set for its form: storage URLs, connection strings, table names
 * (at most VALIDATE_NAME_MAX bytes per part), slot and publication names, paths, LSNs, the
 * listen address, compression levels for the chosen codec.  Numeric ranges are checked
 * earlier, by config_load().  On failure err names where the value came from and the
 * option (ERRCODE_INVALID_PARAMETER); the caller exits 2.
 */
int validate_config(const bs_config *cfg, bs_error *err);

/* One value of one option, by the name a user writes, as validate_config() checks it (for
 * tests); BS_OK for an option without such a check or an unknown name. */
int validate_option_value(const char *option, const char *value, bs_error *err);

#endif
