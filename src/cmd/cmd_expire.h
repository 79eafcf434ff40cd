/* cmd_expire.h — `backstop expire` command handler. */
#ifndef BACKSTOP_CMD_EXPIRE_H
#define BACKSTOP_CMD_EXPIRE_H

#include "config.h"

int cmd_expire(bs_config *cfg, int argc, char **argv);

#endif
