/* cmd_verify.h — `backstop verify` command handler. */
#ifndef BACKSTOP_CMD_VERIFY_H
#define BACKSTOP_CMD_VERIFY_H

#include "config.h"

int cmd_verify(bs_config *cfg, int argc, char **argv);

#endif
