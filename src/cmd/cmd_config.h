/* cmd_config.h — `backstop config`: print the effective configuration. */
#ifndef BACKSTOP_CMD_CONFIG_H
#define BACKSTOP_CMD_CONFIG_H

#include "config.h"

int cmd_config(bs_config *cfg, int argc, char **argv);

#endif
