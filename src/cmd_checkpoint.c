/* cmd_checkpoint.c — `backstop checkpoint` (not yet implemented). */
#include "cmd_checkpoint.h"
#include "cli.h"

#include <stdio.h>

int
cmd_checkpoint(bs_config *cfg, int argc, char **argv)
{
	(void) cfg;
	(void) argc;
	(void) argv;
	fprintf(stderr, "backstop checkpoint: not implemented yet\n");
	return EXIT_FAILURE_RUNTIME;
}
