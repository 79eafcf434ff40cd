/* inifile.c — the line syntax shared by the configuration and policy files: "key = value", quotes, blanks. */
#include "inifile.h"

#include <ctype.h>
#include <string.h>

char *
ini_trim(char *s)
{
	char *end;

	while (isspace((unsigned char) *s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char) end[-1]))
		*--end = '\0';
	return s;
}

char *
ini_unquote(char *s)
{
	size_t len = strlen(s);

	if (len >= 2 && (s[0] == '"' || s[0] == '\'') && s[len - 1] == s[0])
	{
		s[len - 1] = '\0';
		s++;
	}
	return s;
}

bool
ini_key_value(char *s, char **key, char **value)
{
	char *eq = strchr(s, '=');

	if (eq == NULL)
		return false;
	*eq = '\0';
	*key = ini_trim(s);
	*value = ini_unquote(ini_trim(eq + 1));
	return true;
}
