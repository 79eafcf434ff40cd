/* cmd_doctor.h — `backstop doctor`: storage and PostgreSQL probes. */
#ifndef BACKSTOP_CMD_DOCTOR_H
#define BACKSTOP_CMD_DOCTOR_H

#include "config.h"

int cmd_doctor(bs_config *cfg, int argc, char **argv);

#endif
