/* cmd_recover.c — `backstop recover` (not yet implemented). */
#include "cmd_recover.h"
#include "cli.h"

#include <stdio.h>

int
cmd_recover(bs_config *cfg, int argc, char **argv)
{
	(void) cfg;
	(void) argc;
	(void) argv;
	fprintf(stderr, "backstop recover: not implemented yet\n");
	return EXIT_FAILURE_RUNTIME;
}
