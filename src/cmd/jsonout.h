/* jsonout.h — JSON values of command output in the archive's conventions: LSN as "X/Y", time as ISO-8601 UTC. */
#ifndef BACKSTOP_JSONOUT_H
#define BACKSTOP_JSONOUT_H

#include <jansson.h>
#include <stdint.h>

/* New references (as json_string), for json_object_set_new and the like. */
json_t *jsonout_lsn(uint64_t lsn);
json_t *jsonout_time(int64_t unix_us);

#endif
