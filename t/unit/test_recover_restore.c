/* test_recover_restore.c — the after-copy-back SQL from a base's definition: policies of every command, and what is refused as malformed (notes, never SQL). */
#include "recover_restore.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

/* The statements joined by "|", then "#" and the notes. */
static char *
restore(const char *definition, bool attach)
{
	recover_restore r;
	strbuf sb = STRBUF_INIT;

	memset(&r, 0, sizeof(r));
	recover_restore_from_definition(definition, "public", "t", attach, &r);
	for (int i = 0; i < r.n; i++)
		strbuf_printf(&sb, "%s|", r.sql[i]);
	strbuf_printf(&sb, "#%s", r.notes.data ? r.notes.data : "");
	recover_restore_free(&r);
	return strbuf_detach(&sb, NULL);
}

static void
check(const char *definition, bool attach, const char *want, const char *what)
{
	char *got = restore(definition, attach);

	is_str(got, want, "%s", what);
	free(got);
}

int
main(void)
{
	check("{\"policy_defs\": ["
		  "{\"name\": \"p_all\", \"cmd\": \"*\", \"permissive\": true, \"roles\": [\"PUBLIC\"], \"using\": \"true\"},"
		  "{\"name\": \"p_ins\", \"cmd\": \"a\", \"permissive\": false, \"roles\": [\"app\", \"Odd Role\"], "
		  "\"with_check\": \"(id > 0)\"},"
		  "{\"name\": \"p_upd\", \"cmd\": \"w\", \"permissive\": true, \"roles\": [\"app\"], \"using\": \"(id > 0)\", "
		  "\"with_check\": \"(id < 10)\"},"
		  "{\"name\": \"p_del\", \"cmd\": \"d\", \"permissive\": true, \"roles\": [null]}]}", false,
		  "CREATE POLICY \"p_all\" ON \"public\".\"t\" AS PERMISSIVE FOR ALL TO PUBLIC USING (true)|"
		  "CREATE POLICY \"p_ins\" ON \"public\".\"t\" AS RESTRICTIVE FOR INSERT TO \"app\", \"Odd Role\" WITH CHECK ((id > 0))|"
		  "CREATE POLICY \"p_upd\" ON \"public\".\"t\" AS PERMISSIVE FOR UPDATE TO \"app\" USING ((id > 0)) WITH CHECK "
		  "((id < 10))|"
		  "CREATE POLICY \"p_del\" ON \"public\".\"t\" AS PERMISSIVE FOR DELETE TO NONE|#",
		  "policies of every command, restrictive, quoted roles, USING and WITH CHECK");
	check("{\"policy_defs\": ["
		  "{\"name\": \"p1\", \"cmd\": \"x\", \"permissive\": true, \"roles\": [\"app\"]},"
		  "{\"name\": \"p2\", \"cmd\": \"rr\", \"permissive\": true, \"roles\": [\"app\"]},"
		  "{\"name\": \"p3\", \"cmd\": \"r\", \"permissive\": true, \"roles\": []}]}", false,
		  "#a row security policy of public.t in the definition is malformed: not given as SQL\n"
		  "a row security policy of public.t in the definition is malformed: not given as SQL\n"
		  "a row security policy of public.t in the definition is malformed: not given as SQL\n",
		  "policies of an unknown command or without roles: notes, no SQL");
	{
		char *got = restore("{\"policy_defs\": [{\"name\": \"p4\", \"cmd\": \"r\", \"permissive\": true, \"roles\": [\"app\"], "
							"\"using\": \"true); DROP TABLE x; --\"}, {\"name\": \"p5\", \"cmd\": \"r\", \"permissive\": true, "
							"\"roles\": [\"app\"], \"with_check\": \"1, 2\"}]}", false);

		ok(strstr(got, "#row security policy \"p4\" of public.t: an expression is not exactly one expression (") == got &&
		   strstr(got, "row security policy \"p5\" of public.t: an expression is not exactly one expression (") &&
		   !strstr(got, "CREATE"), "a policy expression that is not exactly one expression: a note, no SQL");
		free(got);
	}
	check("{\"policies\": [\"old_policy\", 7]}", false,
		  "#row security policy \"old_policy\" of public.t: only its name was captured; copy it from the source\n"
		  "row security policy \"?\" of public.t: only its name was captured; copy it from the source\n",
		  "policies captured by name only (before 0.3): notes");
	check("{\"triggers\": [{\"name\": \"t1\", \"def\": \"DROP TABLE x\"}, {\"name\": \"t2\", "
		  "\"def\": \"CREATE TRIGGER t2 BEFORE UPDATE ON public.t FOR EACH ROW EXECUTE FUNCTION f(); DROP TABLE x\"}, "
		  "{\"def\": \"CREATE TRIGGER t3\"}]}", false,
		  "#a trigger of public.t in the definition is malformed: not given as SQL\n"
		  "a trigger of public.t in the definition is malformed: not given as SQL\n"
		  "a trigger of public.t in the definition is malformed: not given as SQL\n",
		  "triggers that are not one CREATE statement: notes, no SQL");
	check("{\"publications\": [\"pub\", 3]}", false, "ALTER PUBLICATION \"pub\" ADD TABLE \"public\".\"t\"|#",
		  "publication membership; a member that is not a name is skipped");
	check("{\"partition\": {\"parent_schema\": \"public\", \"parent_name\": \"p\"}}", true,
		  "#public.t was a partition, but its parent or bound in the definition is malformed (missing): its "
		  "attachment is not given as SQL\n", "a partition without its bound: a note");
	check("{\"partition\": {\"parent_schema\": \"public\", \"parent_name\": \"p\"}}", false, "#",
		  "without attach, no attachment at all");
	{
		char *got = restore("{\"partition\": {\"parent_schema\": \"public\", \"parent_name\": \"p\", "
							"\"bound\": \"FOR VALUES IN (1)\"}}", true);
		char *bad = restore("{\"partition\": {\"parent_schema\": \"public\", \"parent_name\": \"p\", "
							"\"bound\": \"FOR VALUES IN (1)); DROP TABLE x; --\"}}", true);

		ok(strstr(got, "ALTER TABLE") && strstr(got, "ATTACH PARTITION") && strstr(got, "FOR VALUES IN (1)|#") == got + strlen(got) - 19,
		   "a partition's attachment given as SQL");
		ok(strncmp(bad, "#public.t was a partition, but its parent or bound in the definition is malformed (", 83) == 0 &&
		   !strstr(bad, "ATTACH"), "a bound that is not one bound: a note with the reason, no SQL");
		free(got);
		free(bad);
	}
	check("not json", true, "#", "a definition that is not JSON: nothing");
	check(NULL, true, "#", "no definition: nothing");
	return done_testing();
}
