/* cmd_drill.h — `backstop drill` command handler. */
#ifndef BACKSTOP_CMD_DRILL_H
#define BACKSTOP_CMD_DRILL_H

#include "config.h"

int cmd_drill(bs_config *cfg, int argc, char **argv);

#endif
