/* cmd_changes.c — `backstop changes` (not yet implemented). */
#include "cmd_changes.h"
#include "cli.h"

#include <stdio.h>

int
cmd_changes(bs_config *cfg, int argc, char **argv)
{
	(void) cfg;
	(void) argc;
	(void) argv;
	fprintf(stderr, "backstop changes: not implemented yet\n");
	return EXIT_FAILURE_RUNTIME;
}
