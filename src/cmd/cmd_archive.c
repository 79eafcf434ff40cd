/* cmd_archive.c — `backstop archive`: run the continuous archiver (or --drop its slot and publication). */
#include "cmd_archive.h"
#include "archiver.h"
#include "cli.h"

#include <stdio.h>
#include <string.h>

int
cmd_archive(bs_config *cfg, int argc, char **argv)
{
	bs_error err;

	error_clear(&err);
	if (argc > 0)
	{
		cli_usage_error("archive", "unexpected argument \"%s\"", argv[0]);
		return EXIT_USAGE;
	}
	if (config_get_bool(cfg, CFG_DROP))
	{
		if (archiver_drop(cfg, &err) != BS_OK)
		{
			cli_report_error("archive", &err);
			/* No --db is a usage error, as it is without --drop. */
			return strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0 ? EXIT_USAGE : EXIT_FAILURE_RUNTIME;
		}
		return EXIT_OK;
	}
	if (config_get(cfg, CFG_DB) == NULL)
	{
		cli_usage_error("archive", "--db is required");
		return EXIT_USAGE;
	}
	if (config_get(cfg, CFG_TABLES) == NULL && !config_get_bool(cfg, CFG_ALL_TABLES))
	{
		cli_usage_error("archive", "give --tables schema.table[,...] or --all-tables");
		return EXIT_USAGE;
	}
	if (archiver_run(cfg, &err) != BS_OK)
	{
		cli_report_error("archive", &err);
		/* A lost slot has its own code: a supervisor must not restart into it (the systemd
		 * unit sets RestartPreventExitStatus=4). */
		if (strcmp(err.code, ERRCODE_SLOT_LOST) == 0)
			return EXIT_SLOT_LOST;
		/* A bad setting (end LSN, listen address, levels, spool_dir, slot of another kind)
		 * is a configuration error, not a failure of the run; a damaged archive (a manifest
		 * rolled back or deleted) is exit 3. */
		if (strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0 || strcmp(err.code, ERRCODE_ENCRYPTION_KEY) == 0)
			return EXIT_USAGE;
		return strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 ? EXIT_INTEGRITY : EXIT_FAILURE_RUNTIME;
	}
	return EXIT_OK;
}
