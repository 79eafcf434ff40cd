/* ident.h — SQL identifiers as PostgreSQL's lexer reads them: "schema.table" split into its parts. */
#ifndef BACKSTOP_IDENT_H
#define BACKSTOP_IDENT_H

#include "error.h"

/* Split "schema.table" (quoted identifiers allowed, also U&"..." with escapes) into parts;
 * "table" means public.  Unquoted identifiers are folded to lower case, as PostgreSQL does.
 * ERRCODE_SYNTAX naming the whole text when it is not one or two identifiers. */
int ident_split_name(const char *qualified, char **schema, char **name, bs_error *err);

#endif
