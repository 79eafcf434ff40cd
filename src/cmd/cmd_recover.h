/* cmd_recover.h — `backstop recover` command handler. */
#ifndef BACKSTOP_CMD_RECOVER_H
#define BACKSTOP_CMD_RECOVER_H

#include "config.h"

int cmd_recover(bs_config *cfg, int argc, char **argv);

#endif
