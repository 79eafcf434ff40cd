/* recover_render.h — printed pieces of `backstop recover`: the point in words, notes, the SQL for after a copy-back. */
#ifndef BACKSTOP_RECOVER_RENDER_H
#define BACKSTOP_RECOVER_RENDER_H

#include <stddef.h>

#include "recover_plan.h"
#include "recover_restore.h"
#include "strbuf.h"

/* The point in words ("commits at or before LSN 0/16B3748", ...), written to buf (returned). */
const char *recover_render_point(const recover_point *pt, char *buf, size_t size);
/* Notes kept one per line under heading, on stdout (nothing when there are none). */
void recover_render_notes(const char *heading, const strbuf *notes);
/* The SQL for after the copy-back (what the recovered tables cannot hold), under heading, on stdout. */
void recover_render_after_copy_back(const recover_restore *rr, const char *heading);

#endif
