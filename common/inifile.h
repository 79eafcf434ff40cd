/* inifile.h — the line syntax shared by the configuration and policy files: "key = value", quotes, blanks. */
#ifndef BACKSTOP_INIFILE_H
#define BACKSTOP_INIFILE_H

#include <stdbool.h>

/* s without its leading and trailing white space (trailing space cut in place). */
char *ini_trim(char *s);

/* s without one pair of matching single or double quotes around it (cut in place). */
char *ini_unquote(char *s);

/* Split the trimmed line s at its first '=': *key and *value trimmed, the value unquoted.
 * False when there is no '='. */
bool ini_key_value(char *s, char **key, char **value);

#endif
