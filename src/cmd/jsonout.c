/* jsonout.c — JSON values of command output in the archive's conventions: LSN as "X/Y", time as ISO-8601 UTC. */
#include "jsonout.h"
#include "isotime.h"
#include "lsn.h"

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
