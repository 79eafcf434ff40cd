/* log.c — leveled logging to stderr, as text or JSON lines, with secrets redacted and control characters escaped. */
#include "log.h"
#include "clock.h"
#include "redact.h"
#include "strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Logging settings are configuration, set once at start-up (and on SIGHUP). */
static log_level log_min_level = LOG_INFO;
static int log_json = 0;

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR", "FATAL"};

int
log_level_parse(const char *s, log_level *out)
{
	for (int i = LOG_DEBUG; i <= LOG_ERROR; i++)
	{
		if (strcasecmp(s, level_names[i]) == 0)
		{
			*out = (log_level) i;
			return 0;
		}
	}
	if (strcasecmp(s, "warn") == 0)
	{
		*out = LOG_WARNING;
		return 0;
	}
	return -1;
}

void
log_configure(log_level min_level, int json)
{
	log_min_level = min_level;
	log_json = json;
}

int
log_enabled(log_level level)
{
	return level >= log_min_level;
}

static void
json_escape(strbuf *out, const char *s)
{
	for (; *s; s++)
	{
		unsigned char c = (unsigned char) *s;

		if (c == '"' || c == '\\')
		{
			strbuf_append_char(out, '\\');
			strbuf_append_char(out, (char) c);
		}
		else if (c == '\n')
			strbuf_append_str(out, "\\n");
		else if (c == '\t')
			strbuf_append_str(out, "\\t");
		else if (c < 0x20)
			strbuf_printf(out, "\\u%04x", c);
		else
			strbuf_append_char(out, (char) c);
	}
}

void
log_msg(log_level level, const char *fmt, ...)
{
	strbuf raw = STRBUF_INIT;
	strbuf line = STRBUF_INIT;
	char *clean;
	char stamp[64];
	int64_t now_us;
	time_t now_s;
	struct tm tm;
	va_list ap;
	int n;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	strbuf_reserve(&raw, (size_t) n);
	va_start(ap, fmt);
	vsnprintf(raw.data, (size_t) n + 1, fmt, ap);
	va_end(ap);
	raw.len = (size_t) n;

	/* Last line of defence: nothing that looks like a secret leaves the process. */
	clean = redact_text(raw.data);
	now_us = clock_unix_us();
	now_s = (time_t) (now_us / 1000000);
	gmtime_r(&now_s, &tm);
	n = (int) strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(stamp + n, sizeof(stamp) - (size_t) n, ".%03dZ", (int) (now_us % 1000000 / 1000));
	if (log_json)
	{
		strbuf_printf(&line, "{\"time\":\"%s\",\"level\":\"%s\",\"pid\":%d,\"msg\":\"",
					  stamp, level_names[level], (int) getpid());
		json_escape(&line, clean);
		strbuf_append_str(&line, "\"}\n");
	}
	else
	{
		/* One event, one line: a table name holding a newline cannot forge another. */
		strbuf_printf(&line, "%s backstop[%d] %s: ", stamp, (int) getpid(), level_names[level]);
		strbuf_append_printable(&line, clean);
		strbuf_append_char(&line, '\n');
	}
	fwrite(line.data, 1, line.len, stderr);
	fflush(stderr);
	free(clean);
	strbuf_free(&raw);
	strbuf_free(&line);
}
