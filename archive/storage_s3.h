/* storage_s3.h — the s3:// storage driver: S3 REST API over libcurl with SigV4 signing. */
#ifndef BACKSTOP_STORAGE_S3_H
#define BACKSTOP_STORAGE_S3_H

#include "storage.h"

/* bucket is a validated bucket name; prefix is "" or ends with '/'.  The options are
 * checked here (ERRCODE_INVALID_PARAMETER) and copied. */
int storage_s3_open(const char *bucket, const char *prefix, const storage_s3_options *options,
					storage **out, bs_error *err);

#endif
