/* cmd_info.c — `backstop info` (not yet implemented). */
#include "cmd_info.h"
#include "cli.h"

#include <stdio.h>

int
cmd_info(bs_config *cfg, int argc, char **argv)
{
	(void) cfg;
	(void) argc;
	(void) argv;
	fprintf(stderr, "backstop info: not implemented yet\n");
	return EXIT_FAILURE_RUNTIME;
}
