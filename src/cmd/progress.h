/* progress.h — a progress line on a terminal (stderr) and phase timings for long commands. */
#ifndef BACKSTOP_PROGRESS_H
#define BACKSTOP_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "strbuf.h"

#define PROGRESS_MAX_PHASES 12

/* Seconds on a monotonic clock; tests give a fake one. */
typedef double (*progress_clock_fn) (void *ctx);

/*
 * One command's progress.  Phase timings are kept whether or not a line is drawn (they go
 * into --json results); the line is drawn only when `draw` is set, on `out` (stderr: never
 * stdout, which carries the result), at most every PROGRESS_INTERVAL seconds, and not in the
 * first PROGRESS_DELAY seconds (a quick command shows nothing).  Counters left at zero are
 * not shown.  Used from one thread.
 */
typedef struct progress
{
	const char *command;		/* "recover": the line starts with it */
	bool draw;
	FILE *out;
	int width;					/* the terminal's columns: the line is cut to width - 1 */
	progress_clock_fn clock;
	void *clock_ctx;
	double start;
	double last_draw;			/* 0: nothing drawn yet */
	double delay;				/* nothing is drawn before (PROGRESS_DELAY) */
	double interval;			/* nor more often (PROGRESS_INTERVAL) */
	size_t drawn;				/* characters of the line now on the screen */

	int nphases;
	const char *phase_names[PROGRESS_MAX_PHASES];	/* static strings, in order of first use */
	double phase_seconds[PROGRESS_MAX_PHASES];
	int cur;					/* the running phase, -1 none */
	double phase_start;

	uint64_t bytes_done;		/* stored bytes fetched */
	uint64_t bytes_total;		/* 0: unknown */
	uint64_t applied;			/* archived changes applied */
	uint64_t copied;			/* rows copied into PostgreSQL */
	uint64_t copied_total;		/* rows expected, 0: unknown */
	uint64_t items_done;		/* objects checked, transactions listed, ... */
	uint64_t items_total;		/* 0: unknown */
	const char *items_unit;		/* "objects checked"; NULL: items not shown */
	/* The ETA is reckoned from the rows copied (when their total is known) or else the bytes
	 * fetched, at the rate seen since the total was first known (progress_update). */
	double eta_t0;
	uint64_t eta_bytes0;
	double eta_rows_t0;
	uint64_t eta_rows0;
} progress;

#define PROGRESS_INTERVAL 0.2
#define PROGRESS_DELAY 1.0

/* draw: whether a line may be drawn (see progress_wanted). */
void progress_init(progress *p, const char *command, bool draw);
/* Whether a command should draw: stderr is a terminal and the output is not --json. */
bool progress_wanted(bool json);
/* For tests: a fake clock (call before anything else is timed; restarts the start time),
 * an output stream and a width. */
void progress_set_clock(progress *p, progress_clock_fn clock, void *ctx);
void progress_set_output(progress *p, FILE *out, int width);

/* End the running phase (its time is added to its total) and start `name` (a static string;
 * a phase may come back: its times add up). */
void progress_phase(progress *p, const char *name);
/* Redraw when due. */
void progress_update(progress *p);
/* Erase the line (before other output to the terminal); an update draws it again once the
 * interval since the last drawing has passed. */
void progress_clear(progress *p);
/* End the running phase and erase the line. */
void progress_done(progress *p);

/* The line as it would be drawn at `now` (no cut to the width), into out (reset first). */
void progress_render(const progress *p, double now, strbuf *out);
/* Seconds left of the fetching and copying, from the share of rows copied or else of bytes
 * fetched; false when it cannot be told (yet, or any more). */
bool progress_eta(const progress *p, double now, double *seconds);
/* Seconds since progress_init. */
double progress_elapsed(const progress *p);
/* {"phase": seconds, ...} in the order the phases first ran (seconds to the millisecond). */
json_t *progress_phases_json(const progress *p);
/* "plan 0.01s, fetch 1.20s, ...": the same for a human. */
void progress_phases_text(const progress *p, strbuf *out);

#endif
