/* cmd_checkpoint.h — `backstop checkpoint` command handler. */
#ifndef BACKSTOP_CMD_CHECKPOINT_H
#define BACKSTOP_CMD_CHECKPOINT_H

#include <jansson.h>
#include <stdint.h>

#include "config.h"
#include "error.h"
#include "strbuf.h"

int cmd_checkpoint(bs_config *cfg, int argc, char **argv);

/*
 * POST /checkpoint to the archiver at listen (with token as its bearer token when not NULL) for table (schema.table), at lsn (X/Y, or NULL
 * for "now"), the daemon waiting up to timeout_ms.  Returns BS_OK with the answer (the
 * caller json_decref()s it) and the HTTP status (200: a verified recovery point); BS_ERR
 * when the archiver could not be reached or answered garbage.
 */
int cmd_checkpoint_request(const char *listen, const char *token, const char *table, const char *lsn,
						   int64_t timeout_ms, long *status, json_t **answer, bs_error *err);

/* GET path (e.g. "/health") from the archiver at listen; the body (at most 1 MiB) is appended
 * to body.  BS_ERR when it cannot be reached. */
int cmd_checkpoint_get(const char *listen, const char *token, const char *path, int64_t timeout_ms, long *status,
					   strbuf *body, bs_error *err);

#endif
