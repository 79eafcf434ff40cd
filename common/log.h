/* log.h — leveled logging to stderr, as text or JSON lines, with secrets redacted and control characters escaped. */
#ifndef BACKSTOP_LOG_H
#define BACKSTOP_LOG_H

typedef enum log_level
{
	LOG_DEBUG = 0,
	LOG_INFO,
	LOG_WARNING,
	LOG_ERROR,
	LOG_FATAL
} log_level;

/* Parse "debug|info|warning|error"; returns 0 on success. */
int log_level_parse(const char *s, log_level *out);
void log_configure(log_level min_level, int json);
int log_enabled(log_level level);
void log_msg(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
