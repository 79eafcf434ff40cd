/* cmd_archive.c — `backstop archive` (not yet implemented). */
#include "cmd_archive.h"
#include "cli.h"

#include <stdio.h>

int
cmd_archive(bs_config *cfg, int argc, char **argv)
{
	(void) cfg;
	(void) argc;
	(void) argv;
	fprintf(stderr, "backstop archive: not implemented yet\n");
	return EXIT_FAILURE_RUNTIME;
}
