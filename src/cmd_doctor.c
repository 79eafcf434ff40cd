/* cmd_doctor.c — `backstop doctor` (not yet implemented). */
#include "cmd_doctor.h"
#include "cli.h"

#include <stdio.h>

int
cmd_doctor(bs_config *cfg, int argc, char **argv)
{
	(void) cfg;
	(void) argc;
	(void) argv;
	fprintf(stderr, "backstop doctor: not implemented yet\n");
	return EXIT_FAILURE_RUNTIME;
}
