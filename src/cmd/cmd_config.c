/* cmd_config.c — `backstop config`: print the effective configuration, secrets redacted. */
#include "cmd_config.h"
#include "cli.h"

#include <stdio.h>
#include <string.h>

int
cmd_config(bs_config *cfg, int argc, char **argv)
{
	bool all = false;

	for (int i = 0; i < argc; i++)
	{
		if (strcmp(argv[i], "all") == 0)
			all = true;
		else
		{
			cli_usage_error("config", "unexpected argument \"%s\"", argv[i]);
			return EXIT_USAGE;
		}
	}
	config_print(cfg, all);
	return EXIT_OK;
}
