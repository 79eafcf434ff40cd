/* test_progress.c — unit tests for the progress line: rendering, ETA, drawing rules and phase timings, on a fake clock. */
#include "progress.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double fake_now;

static double
fake_clock(void *ctx)
{
	(void) ctx;
	return fake_now;
}

/* What was written to f since the start, as a string (freed by the caller). */
static char *
contents(FILE *f)
{
	long n;
	char *s;

	fflush(f);
	n = ftell(f);
	s = calloc(1, (size_t) n + 1);
	rewind(f);
	if (fread(s, 1, (size_t) n, f) != (size_t) n)
		s[0] = '\0';
	fseek(f, 0, SEEK_END);
	return s;
}

int
main(void)
{
	progress p;
	strbuf line = STRBUF_INIT;
	double eta = -1;
	FILE *f = tmpfile();
	char *s;
	json_t *j;

	/* Rendering: only what is counted is shown. */
	fake_now = 100;
	progress_init(&p, "recover", true);
	progress_set_clock(&p, fake_clock, NULL);
	progress_set_output(&p, f, 200);
	progress_render(&p, 100, &line);
	is_str(line.data, "recover: 0s", "nothing counted: the command and the time");
	progress_phase(&p, "fetch");
	p.bytes_total = 50000000;
	progress_update(&p);		/* the ETA's reference: 0 bytes at t=100 */
	fake_now = 110;
	p.bytes_done = 10000000;
	p.applied = 1234;
	progress_render(&p, fake_now, &line);
	is_str(line.data, "recover fetch: 10.0/50.0 MB fetched, 1234 changes applied, 10s, about 40s left",
		   "bytes, changes, elapsed and ETA");
	ok(progress_eta(&p, fake_now, &eta) && eta > 39.999 && eta < 40.001, "ETA: 40 MB left at 1 MB/s");

	/* Rows, once their total is known and they are counted, rule the ETA. */
	p.draw = false;				/* (drawing is tested below) */
	p.copied_total = 1000;
	p.copied = 100;
	progress_update(&p);		/* reference: 100 rows at t=110 */
	ok(!progress_eta(&p, fake_now, &eta), "rows: no ETA at their first count");
	fake_now = 112;
	p.copied = 300;
	ok(progress_eta(&p, fake_now, &eta) && eta > 6.999 && eta < 7.001, "ETA from rows: 700 left at 100 rows/s");

	/* The ETA counts from when the total was first known, not from the start. */
	fake_now = 200;
	progress_init(&p, "verify", false);
	progress_set_clock(&p, fake_clock, NULL);
	fake_now = 260;				/* a minute of listing first */
	p.bytes_total = 1000;
	p.bytes_done = 100;
	progress_update(&p);
	fake_now = 262;
	p.bytes_done = 300;
	ok(progress_eta(&p, fake_now, &eta) && eta > 6.999 && eta < 7.001, "ETA: 700 bytes left at 100 bytes/s");
	fake_now = 260.5;
	ok(!progress_eta(&p, fake_now, &eta), "no ETA in the first second");
	p.bytes_done = p.bytes_total;
	fake_now = 270;
	ok(!progress_eta(&p, fake_now, &eta), "no ETA once everything is fetched");
	p.items_unit = "objects checked";
	p.items_done = 7;
	p.items_total = 9;
	p.bytes_total = p.bytes_done = 1000000000;
	progress_render(&p, 3860, &line);
	is_str(line.data, "verify: 1000.0/1000.0 MB fetched, 7 of 9 objects checked, 1h01m", "items and hours");
	p.bytes_total = 0;
	p.bytes_done = 2500000;
	p.items_total = 0;
	p.copied = 5;
	progress_render(&p, 275, &line);
	is_str(line.data, "verify: 2.5 MB fetched, 7 objects checked, 5 rows copied, 1m15s", "no totals");

	/* Drawing: not in the first second, then at most every 0.2 s, cut to the width, cleared. */
	fake_now = 1000;
	progress_init(&p, "changes", true);
	progress_set_clock(&p, fake_clock, NULL);
	progress_set_output(&p, f, 30);
	p.items_unit = "transactions listed";
	p.items_done = 1;
	progress_update(&p);
	fake_now = 1000.9;
	progress_update(&p);
	s = contents(f);
	is_str(s, "", "nothing drawn in the first second");
	free(s);
	fake_now = 1001;
	progress_update(&p);
	s = contents(f);
	is_str(s, "\rchanges: 1 transactions liste", "drawn after a second, cut to 29 columns");
	free(s);
	fake_now = 1001.1;
	p.items_done = 2;
	progress_update(&p);
	s = contents(f);
	ok(strstr(s, "2 transactions") == NULL, "not redrawn within 0.2 s");
	free(s);
	progress_clear(&p);
	s = contents(f);
	is_str(s, "\rchanges: 1 transactions liste\r                             \r", "cleared with spaces");
	free(s);
	fake_now = 1001.15;
	progress_update(&p);
	s = contents(f);
	ok(strlen(s) == 61, "not drawn again right after a clear (lines printed in a row stay clean)");
	free(s);
	fake_now = 1001.25;
	progress_update(&p);
	s = contents(f);
	ok(strstr(s, "\rchanges: 2 transactions liste") != NULL, "drawn again once the interval has passed");
	free(s);
	fclose(f);

	/* Not drawing: nothing written, phases still timed. */
	f = tmpfile();
	fake_now = 0;
	progress_init(&p, "recover", false);
	progress_set_clock(&p, fake_clock, NULL);
	progress_set_output(&p, f, 80);
	progress_phase(&p, "plan");
	fake_now = 0.5;
	progress_phase(&p, "fetch");
	fake_now = 3;
	p.bytes_total = 10;
	p.bytes_done = 5;
	progress_update(&p);
	progress_phase(&p, "copy");
	fake_now = 4;
	progress_phase(&p, "replay");
	fake_now = 4.25;
	progress_phase(&p, "copy");
	fake_now = 6;
	progress_done(&p);
	fake_now = 100;
	s = contents(f);
	is_str(s, "", "nothing written when not drawing");
	free(s);
	fclose(f);
	j = progress_phases_json(&p);
	s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	is_str(s, "{\"plan\":0.5,\"fetch\":2.5,\"copy\":2.75,\"replay\":0.25}", "phases in order, repeated ones added up");
	free(s);
	json_decref(j);
	strbuf_reset(&line);
	progress_phases_text(&p, &line);
	is_str(line.data, "plan 0.50s, fetch 2.50s, copy 2.75s, replay 0.25s", "phases as text");

	/* Fetching segments: bytes of the total and segments done, the ETA from the bytes, while
	 * a segment's bytes arrive (recover's fetch phase). */
	fake_now = 500;
	progress_init(&p, "recover", false);
	progress_set_clock(&p, fake_clock, NULL);
	progress_phase(&p, "fetch");
	p.bytes_total = 8000000;
	p.items_unit = "segments fetched";
	p.items_total = 4;
	progress_update(&p);		/* the ETA's reference: nothing fetched at t=500 */
	fake_now = 502;
	p.bytes_done = 2000000;		/* one segment and half of the next */
	p.items_done = 1;
	progress_render(&p, fake_now, &line);
	is_str(line.data, "recover fetch: 2.0/8.0 MB fetched, 1 of 4 segments fetched, 2s, about 6s left",
		   "segments being fetched: bytes, segments and time left");
	p.items_unit = NULL;
	progress_render(&p, fake_now, &line);
	is_str(line.data, "recover fetch: 2.0/8.0 MB fetched, 2s, about 6s left", "segments no longer shown after the fetch");

	/* The drawing delay can be changed (test hook): 0 draws at the first update. */
	setenv("BACKSTOP_TEST_PROGRESS_DELAY", "0", 1);
	f = tmpfile();
	fake_now = 10;
	progress_init(&p, "recover", true);
	progress_set_clock(&p, fake_clock, NULL);
	progress_set_output(&p, f, 80);
	progress_update(&p);
	s = contents(f);
	is_str(s, "\rrecover: 0s", "BACKSTOP_TEST_PROGRESS_DELAY=0: drawn at once");
	free(s);
	fclose(f);
	unsetenv("BACKSTOP_TEST_PROGRESS_DELAY");

	strbuf_free(&line);
	return done_testing();
}
