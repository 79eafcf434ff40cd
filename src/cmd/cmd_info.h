/* cmd_info.h — `backstop info` command handler. */
#ifndef BACKSTOP_CMD_INFO_H
#define BACKSTOP_CMD_INFO_H

#include "config.h"

int cmd_info(bs_config *cfg, int argc, char **argv);

#endif
