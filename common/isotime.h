/* isotime.h — ISO-8601 UTC times with microseconds ("2026-11-26T16:00:00.123456Z") <-> Unix microseconds. */
#ifndef BACKSTOP_ISOTIME_H
#define BACKSTOP_ISOTIME_H

#include <stdint.h>

/* buf holds at least ISOTIME_BUFLEN bytes; returns buf. */
#define ISOTIME_BUFLEN 64
char *isotime_format(int64_t unix_us, char *buf);
/* Exactly the form isotime_format writes, with 0..6 fraction digits: BS_OK, else BS_ERR. */
int isotime_parse(const char *s, int64_t *out);

#endif
