/* cmd_archive.h — `backstop archive` command handler. */
#ifndef BACKSTOP_CMD_ARCHIVE_H
#define BACKSTOP_CMD_ARCHIVE_H

#include "config.h"

int cmd_archive(bs_config *cfg, int argc, char **argv);

#endif
