/* storage_s3.h — the s3:// storage driver: S3 REST API over libcurl with SigV4 signing. */
#ifndef BACKSTOP_STORAGE_S3_H
#define BACKSTOP_STORAGE_S3_H

#include "storage.h"

/* bucket is a validated bucket name; prefix is "" or ends with '/'.  cfg may be NULL:
 * then only the AWS_* environment variables and the built-in defaults apply. */
int storage_s3_open(const char *bucket, const char *prefix, const bs_config *cfg,
					storage **out, bs_error *err);

#endif
