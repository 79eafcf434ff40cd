/* lsn.h — parsing and formatting of PostgreSQL WAL positions (LSNs). */
#ifndef BACKSTOP_LSN_H
#define BACKSTOP_LSN_H

#include <stdint.h>

/* Enough for "%X/%X" of any 64-bit LSN (17 characters + NUL) and for the key form. */
#define LSN_BUFLEN 32

/*
 * Parse PostgreSQL's "X/Y" text form strictly: one to eight hex digits, '/', one to
 * eight hex digits, nothing else (no sign, no blanks).  Returns BS_OK or BS_ERR;
 * *out is written only on success.  Callers build the error message, since they
 * know where the text came from.
 */
int lsn_parse(const char *s, uint64_t *out);

/* Format as "%X/%X" into buf (at least LSN_BUFLEN bytes); returns buf. */
char *lsn_format(uint64_t lsn, char *buf);

/* Storage-key form: exactly 16 upper-case hex digits, so lexical order is LSN order. */
char *lsn_format_key(uint64_t lsn, char *buf);
/* Parse exactly 16 upper-case hex digits; BS_OK or BS_ERR. */
int lsn_parse_key(const char *s, uint64_t *out);

#endif
