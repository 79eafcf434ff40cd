/* archiver.h — the continuous archiver daemon: replication stream -> per-table segments in storage. */
#ifndef BACKSTOP_ARCHIVER_H
#define BACKSTOP_ARCHIVER_H

#include "config.h"
#include "error.h"

/* Run until SIGTERM/SIGINT (exit code 0) or a fatal error (BS_ERR with err filled). */
int archiver_run(bs_config *cfg, bs_error *err);

/* Remove the slot and the publication (`backstop archive --drop`). */
int archiver_drop(const bs_config *cfg, bs_error *err);

#endif
