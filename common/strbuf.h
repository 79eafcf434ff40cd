/* strbuf.h — growable byte buffers for untrusted and variable-length data. */
#ifndef BACKSTOP_STRBUF_H
#define BACKSTOP_STRBUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct strbuf
{
	char *data;		/* always NUL-terminated when non-NULL */
	size_t len;
	size_t cap;
} strbuf;

#define STRBUF_INIT {NULL, 0, 0}

/* Allocation failure aborts the process: there is no sane way to continue. */
void strbuf_reserve(strbuf *sb, size_t extra);
void strbuf_append(strbuf *sb, const void *data, size_t len);
void strbuf_append_str(strbuf *sb, const char *s);
void strbuf_append_char(strbuf *sb, char c);
void strbuf_printf(strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_append_u8(strbuf *sb, uint8_t v);
void strbuf_append_be16(strbuf *sb, uint16_t v);
void strbuf_append_be32(strbuf *sb, uint32_t v);
void strbuf_append_be64(strbuf *sb, uint64_t v);
void strbuf_reset(strbuf *sb);
void strbuf_free(strbuf *sb);
/* Text for a terminal or a log line: control characters (newline, carriage return, escape,
 * ...) as \n, \r, \t or \xNN, so untrusted text (table names, storage contents, messages)
 * can neither start a line of its own nor drive the terminal.  Other bytes unchanged. */
void strbuf_append_printable(strbuf *sb, const char *s);
char *xstrdup_printable(const char *s);
/* s as one POSIX shell word: bare when it holds only safe characters, else in single quotes. */
void strbuf_append_shell_word(strbuf *sb, const char *s);
/* s as one POSIX shell word, always in single quotes (a quote written '\''). */
void strbuf_append_shell_quoted(strbuf *sb, const char *s);
/* len bytes as lower-case hex: 2 * len characters (strbuf_append_hex), and a NUL (hex_encode,
 * into out of 2 * len + 1 bytes). */
void strbuf_append_hex(strbuf *sb, const void *data, size_t len);
void hex_encode(const void *data, size_t len, char *out);
/* Hand the buffer to the caller (who frees it); sb becomes empty. */
char *strbuf_detach(strbuf *sb, size_t *len);

/* Fill the fixed-size buffer buf (size bytes, *have of them held) from a stream's chunk (*p,
 * *len): as many bytes as fit, *p and *len advanced past them.  True once buf is full. */
bool buf_fill(void *buf, size_t size, size_t *have, const uint8_t **p, size_t *len);

/* Memory helpers that abort on exhaustion. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* asprintf and vasprintf into a new string (the caller frees it). */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

#endif
