/* clock.h — the one place that reads the clocks: wall time for what is recorded, monotonic time for intervals. */
#ifndef BACKSTOP_CLOCK_H
#define BACKSTOP_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Wall-clock time, microseconds since the Unix epoch: what manifests, leases and logs
 * record.  It may jump (NTP, an operator): never measure an interval with it. */
int64_t clock_unix_us(void);

/* Monotonic time: intervals, deadlines and durations; meaningless across processes. */
int64_t clock_mono_ms(void);
double clock_mono_s(void);		/* with sub-millisecond resolution, for reported durations */

/* The absolute CLOCK_REALTIME time ms from now, for pthread_cond_timedwait. */
void clock_deadline(int64_t ms, struct timespec *ts);

#endif
