/* cmd_exec.h — `backstop exec`: run SQL through the gate, with a verified recovery point before every destructive statement. */
#ifndef BACKSTOP_CMD_EXEC_H
#define BACKSTOP_CMD_EXEC_H

#include "config.h"

int cmd_exec(bs_config *cfg, int argc, char **argv);

#endif
