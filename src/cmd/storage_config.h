/* storage_config.h — the storage library's options from the configuration and the AWS_* environment. */
#ifndef BACKSTOP_STORAGE_CONFIG_H
#define BACKSTOP_STORAGE_CONFIG_H

#include "config.h"
#include "error.h"
#include "storage.h"

/*
 * Fill o from cfg: each s3_* option, else its AWS_* environment variable (s3_endpoint:
 * AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL; s3_region: AWS_REGION, AWS_DEFAULT_REGION; the
 * credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), and the
 * encryption_* options.  o borrows strings from cfg and the environment: use it while both
 * stay as they are.  A passphrase given as a flag is refused (ERRCODE_ENCRYPTION_KEY): a
 * command line shows in ps.
 */
int storage_config_options(const bs_config *cfg, storage_options *o, bs_error *err);

/* storage_open and storage_open_raw with cfg's options: how the commands open an archive. */
int storage_config_open(const char *url, const bs_config *cfg, storage **out, bs_error *err);
int storage_config_open_raw(const char *url, const bs_config *cfg, storage **out, bs_error *err);

#endif
