/* error.c — caller-provided error reports. */
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void
error_clear(bs_error *err)
{
	if (err == NULL)
		return;
	memset(err, 0, sizeof(*err));
}

static void
error_vset(bs_error *err, const char *code, const char *fmt, va_list ap)
{
	if (err == NULL)
		return;
	snprintf(err->code, sizeof(err->code), "%s", code ? code : ERRCODE_INTERNAL);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	err->sys_errno = 0;
	err->http_status = 0;
}

int
error_set(bs_error *err, const char *code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	error_vset(err, code, fmt, ap);
	va_end(ap);
	return BS_ERR;
}

int
error_set_errno(bs_error *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	size_t len;
	const char *code;

	if (err == NULL)
		return BS_ERR;
	code = (errnum == ENOSPC || errnum == EDQUOT) ? ERRCODE_DISK_FULL :
		(errnum == ENOENT) ? ERRCODE_NOT_FOUND :
		(errnum == EACCES || errnum == EPERM) ? ERRCODE_PERMISSION : ERRCODE_IO;
	va_start(ap, fmt);
	error_vset(err, code, fmt, ap);
	va_end(ap);
	len = strlen(err->message);
	snprintf(err->message + len, sizeof(err->message) - len, ": %s", strerror(errnum));
	err->sys_errno = errnum;
	return BS_ERR;
}

int
error_prefix(bs_error *err, const char *fmt, ...)
{
	char prefix[512];
	char old[sizeof(err->message)];
	va_list ap;

	if (err == NULL)
		return BS_ERR;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->message, sizeof(old));
	{
		/* Truncation of an over-long message is acceptable; keep both parts bounded. */
		size_t plen = strlen(prefix);	/* < sizeof(prefix) <= message - 3 */

		memcpy(err->message, prefix, plen);
		memcpy(err->message + plen, ": ", 2);
		snprintf(err->message + plen + 2, sizeof(err->message) - plen - 2, "%.*s",
				 (int) (sizeof(err->message) - plen - 3), old);
	}
	return BS_ERR;
}

int
error_is_transient(const bs_error *err)
{
	return err != NULL && strcmp(err->code, ERRCODE_TRANSIENT) == 0;
}
