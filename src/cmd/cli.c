/* cli.c — the `backstop` command table, argument handling, help and exit codes. */
#include "autoconf.h"
#include "cli.h"
#include "cmd_archive.h"
#include "cmd_changes.h"
#include "cmd_checkpoint.h"
#include "cmd_classify.h"
#include "cmd_config.h"
#include "cmd_doctor.h"
#include "cmd_drill.h"
#include "cmd_exec.h"
#include "cmd_expire.h"
#include "cmd_info.h"
#include "cmd_recover.h"
#include "cmd_verify.h"
#include "log.h"
#include "redact.h"
#include "storage.h"
#include "storage_config.h"
#include "strbuf.h"
#include "validate.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STORAGE_OPTIONS "storage", "compression", "compression_level", "s3_endpoint", "s3_region", \
	"s3_uri_style", "s3_ca_file", "s3_verify_tls", "s3_access_key_id", "s3_secret_access_key", \
	"s3_session_token", "s3_multipart_threshold", "s3_timeout", "retries", "retry_base_delay", \
	"encryption_key_file", "encryption_passphrase", "encryption_passphrase_file", "encryption_old_key_file", \
	"encryption_old_passphrase_file"

static const char *const archive_options[] = {
	STORAGE_OPTIONS, "db", "tables", "all_tables", "slot", "publication", "drop", "segment_size",
	"segment_age", "segment_compression_level", "base_chunk_size", "base_lock_timeout", "rebase_age", "rebase_ratio", "rebase_min_interval", "spool_dir", "spool_limit",
	"open_memory_limit", "listen", "listen_allow_remote", "listen_max_connections", "listen_timeout",
	"control_token", "control_token_file", "status_interval", "table_poll_interval", "end_lsn", "lease_timeout",
	"take_over", "keep_window", "keep_bases", "orphan_age", "expire_interval", "ddl_capture", "archive_format",
	"head_interval", NULL
};
static const char *const recover_options[] = {
	STORAGE_OPTIONS, "db", "table", "relid", "to_lsn", "to_time", "to_xid", "latest", "exclusive", "into",
	"target_db", "replace", "no_indexes", "dry_run", "json", "yes", "apply", "copy_back_columns",
	"memory_limit", "temp_dir", NULL
};
static const char *const changes_options[] = {
	STORAGE_OPTIONS, "table", "from_lsn", "to_lsn", "since", "until", "xid", "summary", "json", NULL
};
static const char *const info_options[] = {STORAGE_OPTIONS, "table", "relid", "json", NULL};
static const char *const verify_options[] = {STORAGE_OPTIONS, "table", "json", NULL};
static const char *const expire_options[] = {
	STORAGE_OPTIONS, "keep_window", "keep_bases", "table", "orphan_age", "lease_timeout", "dry_run", "json", NULL
};
static const char *const checkpoint_options[] = {
	"table", "listen", "control_token", "control_token_file", "timeout", "json", NULL
};
static const char *const doctor_options[] = {STORAGE_OPTIONS, "db", "json", "tables", "all_tables", "slot", "publication",
	"listen", "control_token", "control_token_file", "timeout", "status_interval", "stale_after", "ddl_capture", NULL};
static const char *const drill_options[] = {STORAGE_OPTIONS, "db", "table", "scratch", "to_db", "json", "listen",
	"control_token", "control_token_file", "timeout", NULL};
static const char *const classify_options[] = {"db", "json", "policy", "file", "principal", "environment", NULL};
static const char *const policy_options[] = {NULL};
static const char *const exec_options[] = {"db", "json", "policy", "file", "command", "principal", "environment",
	"listen", "control_token", "control_token_file", "timeout", NULL};
static const char *const config_cmd_options[] = {
	STORAGE_OPTIONS, "db", "tables", "all_tables", "slot", "publication", "segment_size",
	"segment_age", "segment_compression_level", "base_chunk_size", "base_lock_timeout", "rebase_age", "rebase_ratio", "rebase_min_interval", "spool_dir", "spool_limit",
	"open_memory_limit", "listen", "listen_allow_remote", "listen_max_connections", "listen_timeout",
	"control_token", "control_token_file", "status_interval", "table_poll_interval", "lease_timeout", "stale_after",
	"keep_window", "keep_bases", "orphan_age", "expire_interval", "ddl_capture", NULL
};

static const cli_command commands[] = {
	{"archive", "stream changes and base copies into the archive (daemon)",
		"--db CONNINFO [--storage URL] (--tables S.T[,...] | --all-tables) [--slot NAME] [--publication NAME] [--drop] [--end-lsn LSN]\n"
		"        [--ddl-capture auto|on|off]",
		"Runs in the foreground until SIGTERM or SIGINT; SIGHUP reloads the configuration.\n"
		"The first start creates the publication and the logical slot (pgoutput) and takes a\n"
		"consistent base copy of every table; later starts resume from the slot.\n"
		"--drop removes the slot and the publication (unless another role owns it) and exits: an\n"
		"abandoned slot pins WAL forever.\n"
		"Only tables the publication streams are archived: one this role does not own, or one FOR\n"
		"ALL TABLES, is used as it is; a table it does not publish is reported and not archived.\n"
		"--end-lsn LSN stops once every transaction committed at or before LSN is durable in\n"
		"storage (like pg_recvlogical --endpos) and exits 0: for drills, tests and benchmarks.\n"
		"Open segments beyond --open-memory-limit are spilled to the spool directory, so memory\n"
		"stays bounded whatever the size of a transaction (the spool must hold it: --spool-limit).\n"
		"One archiver writes to an archive: it holds a lease in storage (lease.json), renewed\n"
		"every --lease-timeout/3; a second one is refused, naming the holder. A holder that\n"
		"crashed is replaced at once on the same host, elsewhere once its lease expires or\n"
		"with --take-over (doc/archiving.md, \"One writer per archive\").\n"
		"The control endpoint (--listen) is loopback only unless --listen-allow-remote, which needs a\n"
		"token: control_token (environment or file, never a flag) or --control-token-file.\n"
		"With --encryption-key-file (or a passphrase: BACKSTOP_ENCRYPTION_PASSPHRASE,\n"
		"--encryption-passphrase-file) every stored object is encrypted (AES-256-GCM); the\n"
		"first start in an empty location makes the archive encrypted, and every command\n"
		"reading it needs the key. A new key with the old one in --encryption-old-key-file\n"
		"(or --encryption-old-passphrase-file) rotates keys (doc/storage.md, \"Encryption at\n"
		"rest\"). A lost key is lost data.\n"

		"A dropped table's changes are archived until the stream passes the drop, then it is\n"
		"marked dropped (recover --latest gives its last state). Unlogged, temporary and\n"
		"partitioned tables are reported as skipped (partitions are archived as tables).\n"
		"--ddl-capture (default auto): event triggers in schema backstop write each schema change\n"
		"(DROP, RENAME, ADD/DROP/ALTER COLUMN, rewrites) into the stream at its transaction, so it\n"
		"is archived at its own LSN. Creating them needs a superuser (or a superuser created them\n"
		"once); without them (off, or a role that may not) a schema change after a table's last\n"
		"row change is not captured, which info and recover report. on: refuse to start without.\n"
		"Exit code 4: the replication slot is lost (invalidated or dropped); do not restart.",
	archive_options, cmd_archive},
	{"recover", "rebuild one table at an LSN, time or transaction into a new table",
		"--db CONNINFO [--storage URL] (--table S.T | --relid OID) (--to-lsn LSN | --to-time TS | --to-xid XID | --latest)\n"
		"        [--into S.NAME] [--target-db CONNINFO] [--exclusive] [--replace] [--no-indexes] [--dry-run] [--json]\n"
		"        [--copy-back-columns COL[,...]] [--apply [--yes]] [--memory-limit SIZE] [--temp-dir DIR]",
		"--to-time without a zone is read in your time zone (TZ, else the system's); also \"20 min ago\".\n"
		"Works from the storage alone. Verifies every object before using it and loads the table\n"
		"in one transaction that any failure rolls back; validates row count and content checksum,\n"
		"then prints copy-back SQL chosen from the live database and the point: the rename of a\n"
		"dropped table (moving aside a table that took its name since), or the rows deleted and\n"
		"changed since the point, or with --copy-back-columns only those columns, by key. Notes say\n"
		"what each plan loses of the changes archived after the point. --apply runs it in one\n"
		"transaction after asking (--yes: without asking) and validates the result before commit.\n"
		"Base rows no change touched are\n"
		"streamed straight into COPY (\"Method: streamed\"); after DDL or TRUNCATE since the base,\n"
		"the table is rebuilt first. Memory stays within --memory-limit (256MiB) plus a fixed overhead:\n"
		"segments are verified while streamed to temporary files (--temp-dir, else $TMPDIR; unlinked\n"
		"at once, so none is left behind) and replayed from them; rebuilt rows past the limit\n"
		"spill to a temporary file (\"Spilled:\"), and their index too once it outgrows a quarter of\n"
		"the limit (much slower: raise the limit where memory allows), with the same result.\n"
		"Definitions taken from the manifest (column types,\n"
		"defaults, constraints, indexes) must each parse as exactly one SQL fragment of their kind,\n"
		"or nothing is sent (exit 3).\n"
		"Tables are archived by relid; --table resolves a name through the table's name history\n"
		"(a renamed table answers to its old name for points before the rename, to the new one\n"
		"after); --relid names the archive directly (info shows relids and names).\n"
		"On a terminal, a progress line on stderr (phase, MB fetched of the total, segments fetched,\n"
		"changes applied, rows copied, time left), also while each segment is downloaded; none when\n"
		"stderr is not a terminal or with --json. Timings: and the --json\n"
		"\"phases\" give the seconds of each phase: plan, fetch, replay, copy, validate, index, commit.\n"
		"A partitioned table named with --table is rebuilt as a whole: every partition the archive\n"
		"shows attached at the point is recovered at that point and validated, into\n"
		"<target>_<partition>, and attached with its bound to a new table partitioned by the same\n"
		"key; a partition that cannot be recovered there refuses the whole (nothing is left).\n"
		"Partitioned partitions are rebuilt the same way at every level (recover the top-level\n"
		"table). --apply puts the hierarchy back (or replaces the live table's rows) in one\n"
		"transaction, validating the bounds and each partition's checksum; it is refused, the\n"
		"SQL printed, when a name is taken or the live table's partitions are not the point's.\n"
		"What a recovered table cannot hold is printed as SQL for after the copy-back (never run):\n"
		"other tables' foreign keys into it, triggers, row security and policies, publications,\n"
		"a partition's attachment to its parent.",
	recover_options, cmd_recover},
	{"changes", "find the bad transaction: what transactions did, per table or across the archive",
		"[--storage URL] [--table S.T] [--since TIME] [--until TIME] [--from-lsn A] [--to-lsn B] [--xid XID]\n"
		"        [--summary] [--json]",
		"Every bound is optional: without an upper one the list goes up to the latest archived point.\n"
		"TIME is \"2026-11-26 16:00:00[.ffffff]\" in your time zone (TZ, else the system's; the output\n"
		"says which), or with Z / +HH:MM, or relative: \"20 min ago\", \"2 hours ago\", \"now\".\n"
		"A time in whole seconds with commits inside that second gets a warning (so does recover --to-time).\n"
		"--summary (implied without --table: every archived table, merged in commit order) prints one\n"
		"line per transaction: commit time, LSN, xid, rows inserted/updated/deleted (+I ~U -D) per\n"
		"table, TRUNCATE, SCHEMA-CHANGE, and the `backstop recover ... --to-xid X --exclusive` command\n"
		"that undoes it (give --db or BACKSTOP_DB to run it).  Segments are read one at a time per\n"
		"table, so memory does not grow with the range.\n"
		"With --table and no --summary, every row change with its full old and new images (the\n"
		"table is rebuilt up to the range first).  Names are printed as --table takes them back.\n"
		"On a terminal, a progress line on stderr while segments are read and the table is rebuilt\n"
		"(none when stderr is not a terminal or with --json).",
		changes_options, cmd_changes},
	{"info", "describe the archive: base copies, segments, recovery windows, findings",
		"[--storage URL] [--table S.T | --relid OID] [--json]",
		"Shows each table's name history and whether schema changes are captured in the stream.",
		info_options, cmd_info},
	{"verify", "check every object's checksum, LSN continuity and manifest consistency",
		"[--storage URL] [--table S.T] [--json]",
		"Also checks each definition recovery would send as SQL (column types, defaults,\n"
		"constraints, indexes) as exactly one fragment of its kind.\n"
		"An encrypted archive needs its key (an object that fails authentication is a problem).\n"
		"On a terminal, a progress line on stderr (objects checked, MB read, time left); none when\n"
		"stderr is not a terminal or with --json, whose \"phases\" give the seconds of listing and checking.\n"
		"Exit code 3 lists each problem found.", verify_options, cmd_verify},
	{"expire", "retention: remove base copies and segments no kept recovery point needs",
		"[--storage URL] (--keep-window DURATION | --keep-bases N)... [--table PATTERN[,...]] [--orphan-age DURATION]\n"
		"        [--dry-run] [--json]",
		"Keeps every point of the last --keep-window (e.g. 30d) and the last --keep-bases base\n"
		"copies of each table (with both, what either keeps); removes older base copies and the\n"
		"segments that end before the oldest kept one. The newest base copy is never removed. A\n"
		"dropped table keeps the window before its drop. Points before the window are then\n"
		"refused by recover as expired. --table limits it to tables matching shell patterns\n"
		"(schema.name; a name alone means public). Also removes unreferenced objects: those left\n"
		"by an interrupted expire, and base copies never listed (abandoned) once --orphan-age old.\n"
		"Takes the archive's lease, so it refuses while an archiver runs: use the archiver's\n"
		"--expire-interval then. --dry-run lists what would go and each table's window after.\n"
		"Exit code 3: a damaged table was left alone.",
	expire_options, cmd_expire},
	{"checkpoint", "ask the running archiver for a verified recovery point of a table",
		"--table S.T [--listen HOST:PORT] [--control-token-file FILE] [--timeout DURATION] [--json]",
		"Sends the archiver's token when control_token (BACKSTOP_CONTROL_TOKEN) or\n"
		"--control-token-file is set; a refused token (401, 403) exits 2.", checkpoint_options, cmd_checkpoint},
	{"classify", "the gate's verdict on SQL: level, reasons, targets, policy action (runs nothing)",
		"[--db CONNINFO] [--json] [--policy FILE] [--principal NAME] [--environment NAME] (SQL | -f FILE)",
		"Every statement is classified from its parse tree: SAFE (reads), LOW (bounded writes),\n"
		"MEDIUM (schema changes that lose nothing), HIGH (destroys or rewrites rows of named tables),\n"
		"CRITICAL (destroys what no table archive covers, or escapes the gate); what cannot be\n"
		"parsed is refused.  With --db, targets are resolved to OIDs in that session's search_path\n"
		"(temporary tables first) and user functions, triggers and rules are looked up.\n"
		"The policy maps level, principal, environment and tables to allow, checkpoint, approve\n"
		"or refuse (see doc/gate.md).\n"
		"Exit code: the highest level: 0 SAFE, 4 LOW, 5 MEDIUM, 6 HIGH, 7 CRITICAL or refused;\n"
		"1 when the classification failed (connection), 2 on a usage error.",
	classify_options, cmd_classify},
	{"exec", "run SQL through the gate: a verified recovery point before each destructive statement",
		"--db CONNINFO (-c SQL | -f FILE) [--policy FILE] [--json] [--principal NAME] [--environment NAME]\n"
		"        [--listen HOST:PORT] [--control-token-file FILE] [--timeout DURATION]",
		"Each statement is classified (with the session's catalog) and the policy applied: allowed\n"
		"ones run; for \"checkpoint\" ones the gate, in the statement's own transaction, locks the\n"
		"targets, reads the WAL insert position, has the running archiver (--listen) verify a\n"
		"recovery point of every target at it, then runs the statement and prints the recovery\n"
		"point and the `backstop recover` command that undoes it.  A refused statement, one that\n"
		"needs approval, one that cannot be covered (archiver down, table not archived, timeout)\n"
		"or one that fails stops the run: nothing after it executes, exit 1.",
	exec_options, cmd_exec},
	{"policy", "validate a gate policy file and print its effective rules", "check FILE",
		"Exit 0 when the file is valid, 2 with FILE:LINE and the problem otherwise.", policy_options, cmd_policy},
	{"doctor", "check storage, PostgreSQL, the slot, the tables and freshness: ready, degraded or not ready",
		"[--storage URL] [--db CONNINFO] [--tables S.T[,...] | --all-tables] [--slot NAME] [--publication NAME]\n"
		"        [--listen HOST:PORT] [--stale-after DURATION] [--json]",
		"Probes storage (put/get/list/delete); with --db checks the server (version, wal_level, free\n"
		"slots and WAL senders, max_slot_wal_keep_size with a value from the measured WAL rate,\n"
		"wal_sender_timeout), the slot (active, wal_status, WAL held) and other inactive slots, the\n"
		"publication against the tables, each table (replica identity, unlogged, partitioned) and the\n"
		"role's privileges (REPLICATION, SELECT, CREATE for the publication); from storage, each\n"
		"table's latest verified point and its age (--stale-after); from the archiver's /health and\n"
		"/metrics (--listen), its lag and spool.  One line per finding with its severity and the exact\n"
		"fix, then the verdict.\n"
		"Exit code: 0 ready, 8 degraded (warnings only), 1 not ready (errors), 2 usage.", doctor_options, cmd_doctor},
	{"drill", "prove a table comes back: archive, destroy, recover from storage alone, compare",
		"--db CONNINFO [--storage URL] [--table S.T | --scratch] [--to-db CONNINFO] [--listen HOST:PORT] [--timeout DURATION] [--json]",
		"--scratch (the default): creates a table with a mix of types in schema backstop_drill, waits\n"
		"until the running archiver (--listen) archives it (it must archive new tables: --all-tables),\n"
		"writes a known workload, records its checksum and the LSN, has the archiver verify a\n"
		"recovery point there, DROPs the table, recovers it from storage alone with `backstop recover`\n"
		"into backstop_drill, compares the checksums and drops everything it created (also on failure).\n"
		"--table S.T: recovers a real table into backstop_drill (or --to-db) at a point the archiver\n"
		"verifies, compares with the live table's checksum taken in a snapshot at that point (or, when\n"
		"that cannot be taken, relies on recover's own validation) and drops the copy; nothing is ever\n"
		"written to the live table.  Reports RPO, RTO per phase and bytes read; the result is kept in\n"
		"DATA_DIR/drill-state.json for the archiver's /metrics.\n"
		"Exit code: 0 passed, 1 failed (archiver, database, storage), 3 the copy differs or the archive\n"
		"is damaged, 2 usage.", drill_options, cmd_drill},
	{"config", "print the effective configuration (secrets redacted)", "[all]",
		"Precedence: flag > BACKSTOP_<OPTION> environment variable > configuration file > default.\n"
	"`all` also lists unset options.", config_cmd_options, cmd_config},
	{NULL, NULL, NULL, NULL, NULL, NULL}
};

static const cli_command *
find_command(const char *name)
{
	for (int i = 0; commands[i].name; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static void
print_usage(FILE *out)
{
	fprintf(out,
			"Backstop %s: continuous per-table archive and exact table recovery for PostgreSQL.\n\n"
			"Usage: backstop <command> [options]\n\nCommands:\n", PACKAGE_VERSION);
	for (int i = 0; commands[i].name; i++)
		fprintf(out, "  %-11s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "  %-11s %s\n", "help", "show help for a command");
	fprintf(out,
			"\nGeneral options: --config FILE, --log-level LEVEL, --log-format text|json, --data-dir DIR,\n"
			"                 --help, --version\n"
			"Every option can also be set as BACKSTOP_<OPTION> or in the configuration file\n"
			"(default /etc/backstop/backstop.conf).\n\n"
			"Exit codes: 0 success, 1 operation failed, 2 usage or configuration error,\n"
			"            3 archive damaged or validation failed, 4 (archive) replication slot lost.\n");
}

static void
print_command_help(const cli_command *cmd)
{
	printf("backstop %s — %s\n\nUsage: backstop %s %s\n", cmd->name, cmd->summary, cmd->name, cmd->usage);
	if (cmd->description)
		printf("\n%s\n", cmd->description);
	printf("\nOptions:\n");
	for (int i = 0; cmd->options[i]; i++)
	{
		const config_option *opt = config_find_option(cmd->options[i]);
		char flag[64];

		if (opt == NULL)
			continue;
		snprintf(flag, sizeof(flag), "--%s", opt->name);
		for (char *k = flag; *k; k++)
			if (*k == '_')
				*k = '-';
		{
			const config_range *r = config_find_range(opt->name);
			char range[80] = "";

			if (r)
				config_format_range(opt, r, range, sizeof(range));
			printf("  %-26s %s%s%s%s%s%s\n", flag, opt->help, opt->default_value ? " [" : "",
				   opt->default_value ? opt->default_value : "", opt->default_value ? "]" : "",
				   r ? "; " : "", range);
		}
	}
	printf("  %-26s %s\n", "--config FILE", "configuration file");
	printf("  %-26s %s\n", "--log-level LEVEL", "debug, info, warning or error");
	printf("  %-26s %s\n", "--log-format FORMAT", "text or json");
}

void
cli_apply_derived_defaults(bs_config *cfg)
{
	char buf[4096];

	if (config_get(cfg, CFG_DATA_DIR) == NULL)
	{
		const char *home = getenv("HOME");

		if (geteuid() == 0 || home == NULL || *home == '\0')
			snprintf(buf, sizeof(buf), "/var/lib/backstop");
		else
			snprintf(buf, sizeof(buf), "%s/.local/share/backstop", home);
		config_set(cfg, CFG_DATA_DIR, buf, SOURCE_DEFAULT);
	}
	if (config_get(cfg, CFG_STORAGE) == NULL)
	{
		snprintf(buf, sizeof(buf), "file://%s/archive", config_get(cfg, CFG_DATA_DIR));
		config_set(cfg, CFG_STORAGE, buf, SOURCE_DEFAULT);
	}
	if (config_get(cfg, CFG_SPOOL_DIR) == NULL)
	{
		snprintf(buf, sizeof(buf), "%s/spool", config_get(cfg, CFG_DATA_DIR));
		config_set(cfg, CFG_SPOOL_DIR, buf, SOURCE_DEFAULT);
	}
}

int
cli_exit_code(const bs_error *err, int otherwise)
{
	return strcmp(err->code, ERRCODE_ENCRYPTION_KEY) == 0 ? EXIT_USAGE : otherwise;
}

void
cli_print_line(const char *text)
{
	char *shown = xstrdup_printable(text);

	printf("%s\n", shown);
	free(shown);
}

void
cli_report_error(const char *command, const bs_error *err)
{
	char *msg = redact_text(err->message);
	char *shown = xstrdup_printable(msg);

	fprintf(stderr, "backstop %s: ERROR: %s\n", command, shown);
	free(shown);
	free(msg);
}

/* After a usage error: the command's synopsis and where its help is. */
static void
print_usage_hint(const cli_command *cmd)
{
	fprintf(stderr, "Usage: backstop %s %s\nTry \"backstop help %s\".\n", cmd->name, cmd->usage, cmd->name);
}

int
cli_usage_error(const char *command, const char *fmt, ...)
{
	const cli_command *cmd = find_command(command);
	bs_error err;
	char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	error_clear(&err);
	error_set(&err, ERRCODE_INVALID_PARAMETER, "%s", msg ? msg : fmt);
	free(msg);
	cli_report_error(command, &err);
	if (cmd)
		print_usage_hint(cmd);
	return EXIT_USAGE;
}

/* The name is the user's input: shown escaped, like every name in human output. */
static void
cli_report_unknown(const char *name)
{
	char *shown = xstrdup_printable(name);

	fprintf(stderr, "backstop: unknown command \"%s\"\n", shown);
	free(shown);
}

int
cli_open_storage(const char *command, const bs_config *cfg, struct storage **st)
{
	bs_error err;

	error_clear(&err);
	*st = NULL;
	if (storage_config_open(config_get(cfg, CFG_STORAGE), cfg, st, &err) == BS_OK)
		return EXIT_OK;
	cli_report_error(command, &err);
	return cli_exit_code(&err, strcmp(err.code, ERRCODE_INVALID_PARAMETER) == 0 ? EXIT_USAGE :
						 strcmp(err.code, ERRCODE_DATA_CORRUPTED) == 0 ? EXIT_INTEGRITY : EXIT_FAILURE_RUNTIME);
}

static int
run_command(const cli_command *cmd, int argc, char **argv)
{
	bs_config cfg;
	bs_error err;
	char **positional = NULL;
	int npositional = 0;
	bool usage_error = false;
	log_level level = LOG_INFO;
	int rc;

	for (int i = 0; i < argc; i++)
	{
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
		{
			print_command_help(cmd);
			return EXIT_OK;
		}
		/* psql's short forms, for the commands that take SQL */
		for (int k = 0; cmd->options[k]; k++)
		{
			if (strcmp(argv[i], "-f") == 0 && strcmp(cmd->options[k], "file") == 0)
				argv[i] = (char *) "--file";
			else if (strcmp(argv[i], "-c") == 0 && strcmp(cmd->options[k], "command") == 0)
				argv[i] = (char *) "--command";
		}
	}
	error_clear(&err);
	rc = config_load(&cfg, argc, argv, cmd->options, &positional, &npositional, &usage_error, &err);
	/* The values are copied: take the secrets out of the process list. */
	config_scrub_secrets(argc, argv);
	if (rc != BS_OK)
	{
		cli_report_error(cmd->name, &err);
		if (usage_error)
			print_usage_hint(cmd);
		config_free(&cfg);
		free(positional);
		return EXIT_USAGE;
	}
	log_level_parse(config_get(&cfg, CFG_LOG_LEVEL), &level);
	log_configure(level, strcmp(config_get(&cfg, CFG_LOG_FORMAT), "json") == 0);
	cli_apply_derived_defaults(&cfg);
	/* One validation for every command, `config` included: a bad value is exit 2 here,
	 * never a failure (exit 1) or a silent misreading later. */
	if (validate_config(&cfg, &err) != BS_OK)
	{
		cli_report_error(cmd->name, &err);
		config_free(&cfg);
		free(positional);
		return EXIT_USAGE;
	}
	rc = cmd->handler(&cfg, npositional, positional);
	config_free(&cfg);
	free(positional);
	return rc;
}

int
cli_main(int argc, char **argv)
{
	const cli_command *cmd;

	if (argc < 2)
	{
		print_usage(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
	{
		print_usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0)
	{
		printf("backstop %s\n", PACKAGE_VERSION);
		return EXIT_OK;
	}
	if (strcmp(argv[1], "help") == 0)
	{
		if (argc < 3)
		{
			print_usage(stdout);
			return EXIT_OK;
		}
		cmd = find_command(argv[2]);
		if (cmd == NULL)
		{
			cli_report_unknown(argv[2]);
			print_usage(stderr);
			return EXIT_USAGE;
		}
		print_command_help(cmd);
		return EXIT_OK;
	}
	cmd = find_command(argv[1]);
	if (cmd == NULL)
	{
		cli_report_unknown(argv[1]);
		print_usage(stderr);
		return EXIT_USAGE;
	}
	return run_command(cmd, argc - 2, argv + 2);
}
