/* cmd_checkpoint.h — `backstop checkpoint` command handler. */
#ifndef BACKSTOP_CMD_CHECKPOINT_H
#define BACKSTOP_CMD_CHECKPOINT_H

#include "config.h"

int cmd_checkpoint(bs_config *cfg, int argc, char **argv);

#endif
