/* quote.h — SQL identifier and literal quoting, and safe display of schema-qualified names. */
#ifndef BACKSTOP_QUOTE_H
#define BACKSTOP_QUOTE_H

/* Quote an identifier / literal (new string). */
char *quote_ident(const char *ident);
char *quote_literal(const char *lit);
/* "schema"."name", quoted as needed. */
char *quote_qualified_name(const char *schema, const char *name);

/* As quote_ident / quote_qualified_name, but an identifier holding control characters
 * (a newline, ...) is written U&"...\000A..." so the SQL stays on one line when printed. */
char *quote_ident_printable(const char *ident);
char *quote_qualified_name_printable(const char *schema, const char *name);

/* schema.name for human output (terminal, logs): each part bare when it is a plain lower-case
 * identifier, else quoted as SQL would need it (printable form), so a hostile name can neither
 * forge a line nor be mistaken for another name. */
char *quote_display_name(const char *schema, const char *name);

#endif
