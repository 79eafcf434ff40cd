/* error.h — caller-provided error reports: a message plus an SQLSTATE-like code and errno. */
#ifndef BACKSTOP_ERROR_H
#define BACKSTOP_ERROR_H

#include <stdarg.h>

/* SQLSTATE-like codes used across Backstop (PostgreSQL's where one fits). */
#define ERRCODE_INVALID_PARAMETER "22023"
#define ERRCODE_SYNTAX "42601"
#define ERRCODE_UNDEFINED_OBJECT "42704"
#define ERRCODE_UNDEFINED_TABLE "42P01"
#define ERRCODE_DUPLICATE_TABLE "42P07"
#define ERRCODE_IO "58030"
#define ERRCODE_DISK_FULL "53100"
#define ERRCODE_OUT_OF_MEMORY "53200"
#define ERRCODE_CONNECTION "08006"
#define ERRCODE_PROTOCOL "08P01"
#define ERRCODE_AUTH "28000"
#define ERRCODE_PERMISSION "42501"
#define ERRCODE_DATA_CORRUPTED "XX001"
#define ERRCODE_NOT_FOUND "58P01"
#define ERRCODE_INTERNAL "XX000"
#define ERRCODE_OUT_OF_RANGE "22003"
#define ERRCODE_TIMEOUT "57014"
#define ERRCODE_OBJECT_IN_USE "55006"
#define ERRCODE_CANCELED "57014"  /* query_canceled: also a copy abandoned on request */
#define ERRCODE_STORAGE "BS001"   /* storage service answered with an error */
#define ERRCODE_TRANSIENT "BS002" /* retryable failure (5xx, timeout, reset) */
#define ERRCODE_PRECONDITION "BS003" /* a conditional write found another version in place */
#define ERRCODE_LOCK_NOT_AVAILABLE "55P03" /* another writer holds the archive's lease */
#define ERRCODE_SLOT_LOST "BS004" /* the replication slot was invalidated or dropped: changes are gone */
#define ERRCODE_ENCRYPTION_KEY "BSE01" /* encryption key missing, unreadable or not the archive's (exit 2) */

typedef struct bs_error
{
	char code[6];		/* five-character code, NUL-terminated */
	int sys_errno;		/* errno when the cause was a system call, else 0 */
	int http_status;	/* HTTP status when the cause was an HTTP answer, else 0 */
	char message[1024];
} bs_error;

/* Functions return BS_OK or BS_ERR; on BS_ERR the caller's bs_error is filled. */
#define BS_OK 0
#define BS_ERR (-1)

void error_clear(bs_error *err);
int error_set(bs_error *err, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* As error_set, appending ": strerror(errnum)" and recording errnum. */
int error_set_errno(bs_error *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prepend context ("while doing X: ") to an existing message. */
int error_prefix(bs_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* True when err carries the transient (retryable) code. */
int error_is_transient(const bs_error *err);

#endif
