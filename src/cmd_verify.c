/* cmd_verify.c — `backstop verify` (not yet implemented). */
#include "cmd_verify.h"
#include "cli.h"

#include <stdio.h>

int
cmd_verify(bs_config *cfg, int argc, char **argv)
{
	(void) cfg;
	(void) argc;
	(void) argv;
	fprintf(stderr, "backstop verify: not implemented yet\n");
	return EXIT_FAILURE_RUNTIME;
}
