/* drillstate.h — the last drill's result, kept in DATA_DIR for the archiver's /metrics. */
#ifndef BACKSTOP_DRILLSTATE_H
#define BACKSTOP_DRILLSTATE_H

#include <jansson.h>

#include "error.h"
#include "strbuf.h"

/* The file's name under data_dir. */
#define DRILLSTATE_FILE "drill-state.json"
/* Larger files are not ours: ignored. */
#define DRILLSTATE_MAX_BYTES (64 * 1024)

/* How many temporary names a write tries: DRILLSTATE_FILE ".tmp." pid, then with ".1", ".2"... */
#define DRILLSTATE_TMP_TRIES 8

/*
 * Store the drill's result {"time": unix seconds, "ok": bool, "mode": "scratch"|"table",
 * "rto_seconds": n, "rpo_seconds": n} durably (a new temporary file, 0600, created exclusively:
 * whatever already has its name, a symlink too, is left alone and the next name tried; fsync,
 * rename, fsync of the directory, which is created when missing).
 */
int drillstate_write(const char *data_dir, const json_t *state, bs_error *err);

/* Append the Prometheus series of the stored result (with # HELP and # TYPE) to out;
 * nothing when there is no readable result. */
void drillstate_metrics(const char *data_dir, strbuf *out);

#endif
