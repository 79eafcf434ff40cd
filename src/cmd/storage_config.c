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
setting(const bs_config *cfg, config_id id, const char *env1, const char *env2)
{
	const char *v = nonempty(config_get(cfg, id));

	if (v == NULL && env1)
		v = nonempty(getenv(env1));
	if (v == NULL && env2)
		v = nonempty(getenv(env2));
	return v;
}

/* A typed option: the configured value, else the option table's default. */
static const char *
option_or_default(const bs_config *cfg, config_id id)
{
	const char *v = config_get(cfg, id);

	return v ? v : config_options[id].default_value;
}

int
storage_config_options(const bs_config *cfg, storage_options *o, bs_error *err)
{
	int64_t retries;
	bool verify = true;

	storage_options_init(o);
	o->s3.endpoint = setting(cfg, CFG_S3_ENDPOINT, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL");
	o->s3.region = setting(cfg, CFG_S3_REGION, "AWS_REGION", "AWS_DEFAULT_REGION");
	o->s3.uri_style = nonempty(config_get(cfg, CFG_S3_URI_STYLE));
	o->s3.access_key_id = setting(cfg, CFG_S3_ACCESS_KEY_ID, "AWS_ACCESS_KEY_ID", NULL);
	o->s3.secret_access_key = setting(cfg, CFG_S3_SECRET_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY", NULL);
	o->s3.session_token = setting(cfg, CFG_S3_SESSION_TOKEN, "AWS_SESSION_TOKEN", NULL);
	o->s3.ca_file = nonempty(config_get(cfg, CFG_S3_CA_FILE));
	if (config_parse_size(option_or_default(cfg, CFG_S3_MULTIPART_THRESHOLD), &o->s3.part_size) != 0 ||
		config_parse_duration_ms(option_or_default(cfg, CFG_S3_TIMEOUT), &o->s3.timeout_ms) != 0 ||
		config_parse_int(option_or_default(cfg, CFG_RETRIES), &retries) != 0 ||
		config_parse_duration_ms(option_or_default(cfg, CFG_RETRY_BASE_DELAY), &o->s3.retry_base_ms) != 0 ||
		config_parse_bool(option_or_default(cfg, CFG_S3_VERIFY_TLS), &verify) != 0)
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
	if (nonempty(o->crypt.passphrase) && cfg->values[CFG_ENCRYPTION_PASSPHRASE].source == SOURCE_FLAG)
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
