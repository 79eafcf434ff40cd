/* recover_render.c — printed pieces of `backstop recover`: the point in words, notes, the SQL for after a copy-back. */
#include "recover_render.h"
#include "isotime.h"
#include "lsn.h"
#include "manifest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The point in words ("commits at or before LSN 0/16B3748", ...), in buf. */
const char *
recover_render_point(const recover_point *pt, char *buf, size_t size)
{
	char l[LSN_BUFLEN],
		t[ISOTIME_BUFLEN];
	const char *incl = pt->exclusive ? "before" : "through";

	switch (pt->kind)
	{
		case RECOVER_POINT_LSN:
			snprintf(buf, size, "commits %s LSN %s", pt->exclusive ? "before" : "at or before", lsn_format(pt->lsn, l));
			break;
		case RECOVER_POINT_TIME:
			{
				char lt[RECOVER_TIME_BUFLEN];

				snprintf(buf, size, "commits %s %s (%s; time read in %s)", pt->exclusive ? "before" : "at or before",
						 recover_format_local_time(pt->time, lt), isotime_format(pt->time, t), pt->zone);
				break;
			}
		case RECOVER_POINT_XID:
			snprintf(buf, size, "commits %s transaction %u", incl, pt->xid);
			break;
		case RECOVER_POINT_LATEST:
			snprintf(buf, size, "everything archived");
			break;
	}
	return buf;
}

/* Notes kept one per line: xstrdup_printable writes the line ends as \n, split there again. */
void
recover_render_notes(const char *heading, const strbuf *notes)
{
	char *shown;

	if (notes->len == 0)
		return;
	shown = xstrdup_printable(notes->data);
	printf("\n%s:\n", heading);
	for (char *p = shown, *nl; p && *p; p = nl ? nl + 2 : NULL)
	{
		nl = strstr(p, "\\n");
		printf("%.*s\n", nl ? (int) (nl - p) : (int) strlen(p), p);
	}
	free(shown);
}

/* The SQL for after the copy-back (what the recovered tables cannot hold), under heading. */
void
recover_render_after_copy_back(const recover_restore *rr, const char *heading)
{
	if (rr->n == 0)
		return;
	printf("%s", heading);
	for (int i = 0; i < rr->n; i++)
	{
		char *w = xstrdup_printable(rr->what[i]);

		printf("\n-- %s\n%s;\n", w, rr->sql[i]);
		free(w);
	}
}
