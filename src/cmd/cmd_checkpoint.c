/* cmd_checkpoint.c — `backstop checkpoint`: ask the running archiver for a verified recovery point. */
#include "cmd_checkpoint.h"
#include "cli.h"
#include "control.h"
#include "jsonout.h"
#include "strbuf.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t
collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	strbuf *sb = userdata;
	size_t n = size * nmemb;

	/* The endpoint answers with a small JSON object; refuse anything absurd. */
	if (sb->len + n > 1024 * 1024)
		return 0;
	strbuf_append(sb, ptr, n);
	return n;
}

/*
 * Send the request set up in curl (its URL, and its method when not GET) to the archiver at
 * listen, with token as its bearer token when not NULL; curl is cleaned up.  The answer (at
 * most 1 MiB) is appended to body and its HTTP status set in *status; BS_ERR when the
 * archiver cannot be reached (hint: say how it is started).
 */
static int
perform(CURL *curl, const char *listen, const char *token, long timeout_ms, bool hint, long *status, strbuf *body,
		bs_error *err)
{
	struct curl_slist *headers = NULL;
	CURLcode cc;
	int rc = BS_OK;

	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
	if (token)
	{
		strbuf h = STRBUF_INIT;

		/* The endpoint's token (control_token / control_token_file), never on the command line. */
		strbuf_printf(&h, "Authorization: Bearer %s", token);
		headers = curl_slist_append(headers, h.data);
		strbuf_free(&h);
		curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	}
	cc = curl_easy_perform(curl);
	if (cc != CURLE_OK && hint)
		rc = error_set(err, ERRCODE_CONNECTION,
					   "could not reach the archiver at %s: %s (is `backstop archive` running with --listen %s?)",
					   listen, curl_easy_strerror(cc), listen);
	else if (cc != CURLE_OK)
		rc = error_set(err, ERRCODE_CONNECTION, "could not reach the archiver at %s: %s", listen,
					   curl_easy_strerror(cc));
	else
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(curl);
	curl_slist_free_all(headers);
	return rc;
}

int
cmd_checkpoint_request(const char *listen, const char *token, const char *table, const char *lsn,
					   int64_t timeout_ms, long *status, json_t **answer, bs_error *err)
{
	CURL *curl;
	char *etable;
	strbuf url = STRBUF_INIT;
	strbuf body = STRBUF_INIT;
	json_error_t jerr;
	int rc;

	*status = 0;
	*answer = NULL;
	curl = curl_easy_init();
	if (curl == NULL)
		return error_set(err, ERRCODE_INTERNAL, "could not initialise libcurl");
	etable = curl_easy_escape(curl, table, 0);
	strbuf_printf(&url, "http://%s/checkpoint?table=%s&timeout_ms=%lld", listen, etable,
				  (long long) (timeout_ms > 0 ? timeout_ms : 30000));
	if (lsn)
		strbuf_printf(&url, "&lsn=%s", lsn);
	curl_free(etable);
	curl_easy_setopt(curl, CURLOPT_URL, url.data);
	curl_easy_setopt(curl, CURLOPT_POST, 1L);
	curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
	/* The daemon enforces its own deadline; allow it to answer a little later. */
	rc = perform(curl, listen, token, (long) (timeout_ms > 0 ? timeout_ms + 5000 : 35000), true, status, &body, err);
	if (rc == BS_OK)
	{
		*answer = json_loadb(body.data ? body.data : "", body.len, 0, &jerr);
		if (*answer == NULL)
		{
			char *shown = xstrdup_printable(body.data ? body.data : "(empty)");

			rc = error_set(err, ERRCODE_PROTOCOL, "archiver answered %ld: %s", *status, shown);
			free(shown);
		}
	}
	strbuf_free(&url);
	strbuf_free(&body);
	return rc;
}

int
cmd_checkpoint(bs_config *cfg, int argc, char **argv)
{
	const char *table = config_get(cfg, CFG_TABLE);
	const char *listen = config_get(cfg, CFG_LISTEN);
	int64_t timeout_ms = config_get_duration_ms(cfg, CFG_TIMEOUT);
	char *token = NULL;
	long status = 0;
	json_t *j = NULL;
	bs_error err;
	int rc;

	if (argc > 0)
	{
		cli_usage_error("checkpoint", "unexpected argument \"%s\"", argv[0]);
		return EXIT_USAGE;
	}
	if (table == NULL)
	{
		cli_usage_error("checkpoint", "--table is required");
		return EXIT_USAGE;
	}
	error_clear(&err);
	if (control_load_token(cfg, &token, &err) != BS_OK)
	{
		cli_report_error("checkpoint", &err);
		return EXIT_USAGE;
	}
	rc = cmd_checkpoint_request(listen, token, table, NULL, timeout_ms, &status, &j, &err);
	free(token);
	if (rc != BS_OK)
	{
		cli_report_error("checkpoint", &err);
		return EXIT_FAILURE_RUNTIME;
	}
	if (status == 200)
	{
		if (config_get_bool(cfg, CFG_JSON))
		{
			jsonout_print(j, JSON_COMPACT);
		}
		else
		{
			/* The answer names the table as the archive does: escaped for the terminal. */
			strbuf line = STRBUF_INIT;

			strbuf_printf(&line, "recovery point for %s: LSN %s (segment %s, verified in %lld ms)",
						  json_string_value(json_object_get(j, "table")) ?: "?",
						  json_string_value(json_object_get(j, "lsn")) ?: "?",
						  json_is_string(json_object_get(j, "segment")) ? json_string_value(json_object_get(j, "segment")) : "none: no changes since the base copy",
						  (long long) json_integer_value(json_object_get(j, "elapsed_ms")));
			cli_print_line(line.data);
			strbuf_free(&line);
		}
		rc = EXIT_OK;
	}
	else
	{
		const char *msg = json_is_string(json_object_get(j, "error")) ? json_string_value(json_object_get(j, "error")) : "(no message)";
		char *shown = xstrdup_printable(msg);

		fprintf(stderr, "backstop checkpoint: ERROR: archiver answered %ld: %s\n", status, shown);
		free(shown);
		/* Not archived, or not allowed (token): a setting to fix, not a failure to retry. */
		rc = status == 404 || status == 401 || status == 403 ? EXIT_USAGE : EXIT_FAILURE_RUNTIME;
	}
	json_decref(j);
	return rc;
}

int
cmd_checkpoint_get(const char *listen, const char *token, const char *path, int64_t timeout_ms, long *status,
				   strbuf *body, bs_error *err)
{
	CURL *curl;
	strbuf url = STRBUF_INIT;
	int rc;

	*status = 0;
	curl = curl_easy_init();
	if (curl == NULL)
		return error_set(err, ERRCODE_INTERNAL, "could not initialise libcurl");
	strbuf_printf(&url, "http://%s%s", listen, path);
	curl_easy_setopt(curl, CURLOPT_URL, url.data);
	rc = perform(curl, listen, token, (long) (timeout_ms > 0 ? timeout_ms : 10000), false, status, body, err);
	strbuf_free(&url);
	return rc;
}
