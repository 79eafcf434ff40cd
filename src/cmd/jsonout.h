/* jsonout.h — JSON of command output: values in the archive's conventions (LSN as "X/Y", time as ISO-8601 UTC), and printing it. */
#ifndef BACKSTOP_JSONOUT_H
#define BACKSTOP_JSONOUT_H

#include <jansson.h>
#include <stdint.h>

/* New references (as json_string), for json_object_set_new and the like. */
json_t *jsonout_lsn(uint64_t lsn);
json_t *jsonout_time(int64_t unix_us);

/* o as JSON text (json_dumps with flags) and a newline, on standard output. */
void jsonout_print(const json_t *o, size_t flags);

#endif
