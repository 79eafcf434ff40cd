/* cmd_changes.h — `backstop changes` command handler. */
#ifndef BACKSTOP_CMD_CHANGES_H
#define BACKSTOP_CMD_CHANGES_H

#include "config.h"

int cmd_changes(bs_config *cfg, int argc, char **argv);

#endif
