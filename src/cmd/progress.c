/* progress.c — a progress line on a terminal (stderr) and phase timings for long commands. */
#include "progress.h"
#include "clock.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static double
monotonic_seconds(void *ctx)
{
	(void) ctx;
	return clock_mono_s();
}

static double
now(const progress *p)
{
	return p->clock(p->clock_ctx);
}

bool
progress_wanted(bool json)
{
	return !json && isatty(STDERR_FILENO) == 1;
}

void
progress_init(progress *p, const char *command, bool draw)
{
	memset(p, 0, sizeof(*p));
	p->command = command;
	p->draw = draw;
	p->out = stderr;
	p->width = 80;
	p->cur = -1;
	p->clock = monotonic_seconds;
	p->delay = PROGRESS_DELAY;
	p->interval = PROGRESS_INTERVAL;
	/* Test hook: draw from the start and at every update (0), so that a quick command on a
	 * pseudo-terminal shows every state of its line (t/060). */
	if (getenv("BACKSTOP_TEST_PROGRESS_DELAY") != NULL)
		p->delay = p->interval = atof(getenv("BACKSTOP_TEST_PROGRESS_DELAY"));
	if (draw)
	{
		struct winsize ws;

		if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
			p->width = ws.ws_col;
	}
	p->start = now(p);
}

void
progress_set_clock(progress *p, progress_clock_fn clock, void *ctx)
{
	p->clock = clock;
	p->clock_ctx = ctx;
	p->start = now(p);
}

void
progress_set_output(progress *p, FILE *out, int width)
{
	p->out = out;
	p->width = width;
}

double
progress_elapsed(const progress *p)
{
	return now(p) - p->start;
}

static void
end_phase(progress *p, double t)
{
	if (p->cur >= 0)
		p->phase_seconds[p->cur] += t - p->phase_start;
	p->cur = -1;
}

void
progress_phase(progress *p, const char *name)
{
	double t = now(p);
	int i;

	end_phase(p, t);
	if (name == NULL)
		return;
	for (i = 0; i < p->nphases; i++)
		if (strcmp(p->phase_names[i], name) == 0)
			break;
	if (i == p->nphases)
	{
		if (p->nphases == PROGRESS_MAX_PHASES)
			return;				/* a programming error: the phase goes untimed */
		p->phase_names[p->nphases++] = name;
	}
	p->cur = i;
	p->phase_start = t;
	progress_update(p);
}

/* At the rate seen since (t0, done0): the time the rest takes. */
static bool
eta_from(double t0, uint64_t done0, uint64_t done, uint64_t total, double t, double *seconds)
{
	if (t0 <= 0 || total == 0 || done >= total || done <= done0 || t - t0 < PROGRESS_DELAY)
		return false;
	*seconds = (t - t0) * (double) (total - done) / (double) (done - done0);
	return true;
}

bool
progress_eta(const progress *p, double t, double *seconds)
{
	if (p->copied_total > 0 && p->eta_rows_t0 > 0)
		return eta_from(p->eta_rows_t0, p->eta_rows0, p->copied, p->copied_total, t, seconds);
	return eta_from(p->eta_t0, p->eta_bytes0, p->bytes_done, p->bytes_total, t, seconds);
}

/* 75 -> "1m15s"; under a minute "42s". */
static void
append_duration(strbuf *out, double s)
{
	long v = lround(s < 0 ? 0 : s);

	if (v >= 3600)
		strbuf_printf(out, "%ldh%02ldm", v / 3600, v / 60 % 60);
	else if (v >= 60)
		strbuf_printf(out, "%ldm%02lds", v / 60, v % 60);
	else
		strbuf_printf(out, "%lds", v);
}

void
progress_render(const progress *p, double t, strbuf *out)
{
	double eta;

	strbuf_reset(out);
	strbuf_printf(out, "%s", p->command);
	if (p->cur >= 0)
		strbuf_printf(out, " %s", p->phase_names[p->cur]);
	strbuf_append_char(out, ':');
	if (p->bytes_total > 0)
		strbuf_printf(out, " %.1f/%.1f MB fetched,", (double) p->bytes_done / 1e6, (double) p->bytes_total / 1e6);
	else if (p->bytes_done > 0)
		strbuf_printf(out, " %.1f MB fetched,", (double) p->bytes_done / 1e6);
	if (p->items_unit)
	{
		if (p->items_total > 0)
			strbuf_printf(out, " %llu of %llu %s,", (unsigned long long) p->items_done,
						  (unsigned long long) p->items_total, p->items_unit);
		else
			strbuf_printf(out, " %llu %s,", (unsigned long long) p->items_done, p->items_unit);
	}
	if (p->applied > 0)
		strbuf_printf(out, " %llu changes applied,", (unsigned long long) p->applied);
	if (p->copied > 0)
		strbuf_printf(out, " %llu rows copied,", (unsigned long long) p->copied);
	strbuf_append_char(out, ' ');
	append_duration(out, t - p->start);
	if (progress_eta(p, t, &eta))
	{
		strbuf_append_str(out, ", about ");
		append_duration(out, eta);
		strbuf_append_str(out, " left");
	}
}

static void
draw(progress *p, double t)
{
	strbuf line = STRBUF_INIT;
	size_t n;

	progress_render(p, t, &line);
	n = line.len;
	/* A line longer than the terminal would wrap, and \r would not get back to its start. */
	if (p->width > 1 && n > (size_t) p->width - 1)
		n = (size_t) p->width - 1;
	fprintf(p->out, "\r%.*s", (int) n, line.data);
	if (p->drawn > n)
		fprintf(p->out, "%*s", (int) (p->drawn - n), "");
	fflush(p->out);
	p->drawn = n;
	p->last_draw = t;
	strbuf_free(&line);
}

void
progress_update(progress *p)
{
	double t;

	if (p->eta_t0 <= 0 && p->bytes_total > 0)
	{
		p->eta_t0 = now(p);
		p->eta_bytes0 = p->bytes_done;
	}
	if (p->eta_rows_t0 <= 0 && p->copied_total > 0 && p->copied > 0)
	{
		p->eta_rows_t0 = now(p);
		p->eta_rows0 = p->copied;
	}
	if (!p->draw)
		return;
	t = now(p);
	if (t - p->start < p->delay || (p->last_draw > 0 && t - p->last_draw < p->interval))
		return;
	draw(p, t);
}

void
progress_clear(progress *p)
{
	if (!p->draw || p->drawn == 0)
		return;
	fprintf(p->out, "\r%*s\r", (int) p->drawn, "");
	fflush(p->out);
	/* last_draw stays: output printed line after line is not interleaved with a redraw each. */
	p->drawn = 0;
}

void
progress_done(progress *p)
{
	end_phase(p, now(p));
	progress_clear(p);
}

json_t *
progress_phases_json(const progress *p)
{
	json_t *o = json_object();
	double t = now(p);

	for (int i = 0; i < p->nphases; i++)
	{
		double s = p->phase_seconds[i] + (i == p->cur ? t - p->phase_start : 0);

		json_object_set_new(o, p->phase_names[i], json_real(round(s * 1000) / 1000));
	}
	return o;
}

void
progress_phases_text(const progress *p, strbuf *out)
{
	double t = now(p);

	for (int i = 0; i < p->nphases; i++)
		strbuf_printf(out, "%s%s %.2fs", i ? ", " : "", p->phase_names[i],
					  p->phase_seconds[i] + (i == p->cur ? t - p->phase_start : 0));
}
