/* storage_config.c — the storage library's options from the configuration and the AWS_* environment. */
#include "storage_config.h"

#include <stdlib.h>

static const char *
nonempty(const char *v)
{
	return (v && *v) ? v : NULL;
}

/* A configured value, else the first set environment variable, else NULL. */
static const char *
setting(const bs_config *cfg, const char *option, const char *env1, const char *env2)
{
	const char *v = nonempty(config_get(cfg, option));

	if (v == NULL && env1)
		v = nonempty(getenv(env1));
	if (v == NULL && env2)
		v = nonempty(getenv(env2));
	return v;
}

/* A typed option: the configured value, else the option table's default. */
static const char *
option_or_default(const bs_config *cfg, const char *option)
{
	const char *v = config_get(cfg, option);

	return v ? v : config_find_option(option)->default_value;
}

int
storage_config_options(const bs_config *cfg, storage_options *o, bs_error *err)
{
	const config_option *pass_opt = config_find_option("encryption_passphrase");
	int64_t retries;
	bool verify = true;

	storage_options_init(o);
	o->s3.endpoint = setting(cfg, "s3_endpoint", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL");
	o->s3.region = setting(cfg, "s3_region", "AWS_REGION", "AWS_DEFAULT_REGION");
	o->s3.uri_style = nonempty(config_get(cfg, CFG_S3_URI_STYLE));
	o->s3.access_key_id = setting(cfg, "s3_access_key_id", "AWS_ACCESS_KEY_ID", NULL);
	o->s3.secret_access_key = setting(cfg, "s3_secret_access_key", "AWS_SECRET_ACCESS_KEY", NULL);
	o->s3.session_token = setting(cfg, "s3_session_token", "AWS_SESSION_TOKEN", NULL);
	o->s3.ca_file = nonempty(config_get(cfg, CFG_S3_CA_FILE));
	if (config_parse_size(option_or_default(cfg, "s3_multipart_threshold"), &o->s3.part_size) != 0 ||
		config_parse_duration_ms(option_or_default(cfg, "s3_timeout"), &o->s3.timeout_ms) != 0 ||
		config_parse_int(option_or_default(cfg, "retries"), &retries) != 0 ||
		config_parse_duration_ms(option_or_default(cfg, "retry_base_delay"), &o->s3.retry_base_ms) != 0 ||
		config_parse_bool(option_or_default(cfg, "s3_verify_tls"), &verify) != 0)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "invalid S3 setting");
	if (retries < 0 || retries > 100)
		return error_set(err, ERRCODE_INVALID_PARAMETER, "retries must be between 0 and 100");
	o->s3.retries = (int) retries;
	o->s3.verify_tls = verify;

	o->crypt.key_file = config_get(cfg, CFG_ENCRYPTION_KEY_FILE);
	o->crypt.passphrase = config_get(cfg, CFG_ENCRYPTION_PASSPHRASE);
	o->crypt.passphrase_origin = config_origin(cfg, CFG_ENCRYPTION_PASSPHRASE);
	o->crypt.passphrase_file = config_get(cfg, CFG_ENCRYPTION_PASSPHRASE_FILE);
	o->crypt.old_key_files = config_get(cfg, CFG_ENCRYPTION_OLD_KEY_FILE);
	o->crypt.old_passphrase_files = config_get(cfg, CFG_ENCRYPTION_OLD_PASSPHRASE_FILE);
	if (nonempty(o->crypt.passphrase) && cfg->values[pass_opt - config_options].source == SOURCE_FLAG)
		return error_set(err, ERRCODE_ENCRYPTION_KEY,
						 "--encryption-passphrase is refused: a command line shows in ps; set "
						 "BACKSTOP_ENCRYPTION_PASSPHRASE, encryption_passphrase in the configuration file, "
						 "or encryption_passphrase_file");
	return BS_OK;
}

static int
open_with(const char *url, const bs_config *cfg, bool raw, storage **out, bs_error *err)
{
	storage_options o;

	*out = NULL;
	if (storage_config_options(cfg, &o, err) != BS_OK)
		return BS_ERR;
	return (raw ? storage_open_raw : storage_open) (url, &o, out, err);
}

int
storage_config_open(const char *url, const bs_config *cfg, storage **out, bs_error *err)
{
	return open_with(url, cfg, false, out, err);
}

int
storage_config_open_raw(const char *url, const bs_config *cfg, storage **out, bs_error *err)
{
	return open_with(url, cfg, true, out, err);
}
