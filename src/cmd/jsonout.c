/* jsonout.c — JSON of command output: values in the archive's conventions (LSN as "X/Y", time as ISO-8601 UTC), and printing it. */
#include "jsonout.h"
#include "isotime.h"
#include "lsn.h"

#include <stdio.h>
#include <stdlib.h>

void
jsonout_print(const json_t *o, size_t flags)
{
	char *text = json_dumps(o, flags);

	printf("%s\n", text);
	free(text);
}

json_t *
jsonout_lsn(uint64_t lsn)
{
	char buf[LSN_BUFLEN];

	return json_string(lsn_format(lsn, buf));
}

json_t *
jsonout_time(int64_t unix_us)
{
	char buf[ISOTIME_BUFLEN];

	return json_string(isotime_format(unix_us, buf));
}
