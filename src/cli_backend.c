/*
 * cli_backend.c - the two ways a `pipewright` command reaches the API:
 *
 *   local    the project's own database, through the handlers of
 *            pipewright.fcgi run in this process (pw_server_call): the
 *            answers are the API's, byte for byte, and nothing else has to
 *            run. The caller is trusted (settings.roles is the web
 *            server's business); REMOTE_USER is $USER, so triggered_by
 *            names who ran the command.
 *   remote   --url URL: HTTP with libcurl; credentials from --user
 *            USER:PASS, else ~/.netrc (curl's netrc handling).
 *
 * Each thread that calls has its own connection: a store slot (local,
 * thread-local) or a curl easy handle made per call (remote).
 */
#include <curl/curl.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "cli.h"

struct cli_backend {
	pw_server *srv;          /* local */
	char *database;          /* local: the project's database */
	char *url;               /* remote: without a trailing slash */
	const char *userpwd;     /* remote: --user */
	char *where;
};

static __thread pw_store *thread_store;

/*
 * Creates the database at path, or applies its pending migrations, as the
 * runner does when it starts (the API's handlers never create it). Returns
 * the schema version, or -1 with the reason in *err when err is not NULL
 * (caller frees).
 */
int cli_make_database(const char *path, char **err)
{
	pw_store *store = NULL;
	char *why = NULL;
	int version = -1;
	if (pw_mkdirs_for(path) != 0)
		why = pw_asprintf("cannot create the folder of %s: %s", path, strerror(errno));
	else if (pw_store_open(path, &store, &why) == PW_OK)
		version = pw_store_schema_version(store);
	pw_store_close(store);
	if (err)
		*err = why;
	else
		free(why);
	return version;
}

cli_backend *cli_backend_open(const cli_opts *o, bool make_db)
{
	cli_backend *b = calloc(1, sizeof *b);
	char *err = NULL;
	if (!b)
		goto oom;
	if (o->url) {
		size_t n = strlen(o->url);
		while (n > 0 && o->url[n - 1] == '/')
			n--;
		if (strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0) {
			cli_error(CLI_USAGE, "--url must start with http:// or https://: %s", o->url);
			free(b);
			return NULL;
		}
		b->url = strndup(o->url, n);
		b->where = b->url ? strdup(b->url) : NULL;
		b->userpwd = o->user;
		if (!b->url || !b->where || curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
			goto oom;
		return b;
	}
	pw_project *p = NULL;
	if (pw_project_load(&o->project, &p, &err) != PW_OK) {
		cli_error(CLI_FAIL, "%s", err ? err : "out of memory");
		goto fail;
	}
	b->database = strdup(p->database);
	b->where = pw_asprintf("the project at %s", p->root);
	pw_project_free(p);
	if (!b->database || !b->where)
		goto oom;
	/*
	 * A read-only project (an installed example) still validates: the
	 * commands that need the database answer 503 then, and say so.
	 */
	if (make_db)
		(void)cli_make_database(b->database, NULL);
	b->srv = pw_server_new(&o->project, &err);
	if (!b->srv) {
		cli_error(CLI_FAIL, "%s", err ? err : "out of memory");
		goto fail;
	}
	return b;
oom:
	cli_error(CLI_FAIL, "out of memory");
fail:
	free(err);
	cli_backend_close(b);
	return NULL;
}

void cli_backend_close(cli_backend *b)
{
	if (!b)
		return;
	cli_backend_thread_end(b);
	if (b->srv)
		pw_server_free(b->srv);
	if (b->url)
		curl_global_cleanup();
	free(b->database);
	free(b->url);
	free(b->where);
	free(b);
}

void cli_backend_thread_end(cli_backend *b)
{
	(void)b;
	pw_store_close(thread_store);
	thread_store = NULL;
}

const char *cli_backend_where(const cli_backend *b)
{
	return b->where;
}

bool cli_backend_is_local(const cli_backend *b)
{
	return b->srv != NULL;
}

const char *cli_backend_database(const cli_backend *b)
{
	return b->database;
}

/* --- remote ------------------------------------------------------------------- */

typedef struct remote_call {
	pw_call *call;
	char content_type[128];
	bool refused;
} remote_call;

static size_t on_header(char *buf, size_t size, size_t n, void *ctx)
{
	remote_call *rc = ctx;
	size_t len = size * n;
	if (len > 13 && strncasecmp(buf, "Content-Type:", 13) == 0) {
		size_t skip = 13 + strspn(buf + 13, " \t"), end = len;
		while (end > skip && (buf[end - 1] == '\r' || buf[end - 1] == '\n'))
			end--;
		snprintf(rc->content_type, sizeof rc->content_type, "%.*s", (int)(end - skip),
			 buf + skip);
	}
	return len;
}

static size_t on_body(char *buf, size_t size, size_t n, void *ctx)
{
	remote_call *rc = ctx;
	if (rc->call->sink && rc->call->sink(rc->call->ctx, rc->content_type, buf, size * n) != 0) {
		rc->refused = true;
		return 0;   /* curl stops with CURLE_WRITE_ERROR */
	}
	return size * n;
}

/* One HTTP request; the HTTP status, or -1 after printing why not. */
static int remote_call_do(cli_backend *b, pw_call *call)
{
	remote_call rc = {.call = call};
	char *url = pw_asprintf("%s%s", b->url, call->path), *accept = NULL;
	struct curl_slist *headers = NULL;
	CURL *h = curl_easy_init();
	long status = -1;
	if (!url || !h) {
		cli_error(CLI_FAIL, "out of memory");
		goto out;
	}
	accept = pw_asprintf("Accept: %s", call->accept ? call->accept : "application/json");
	if (!accept || !(headers = curl_slist_append(headers, accept)) ||
	    (call->body && !(headers = curl_slist_append(headers,
							 "Content-Type: application/json")))) {
		cli_error(CLI_FAIL, "out of memory");
		goto out;
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, call->method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &rc);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &rc);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "pipewright-cli/" PACKAGE_VERSION);
	if (strcmp(call->method, "GET") != 0 && strcmp(call->method, "DELETE") != 0) {
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, call->body ? call->body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)(call->body ? call->body_len : 0));
	}
	if (b->userpwd) {
		curl_easy_setopt(h, CURLOPT_USERPWD, b->userpwd);
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC | CURLAUTH_DIGEST);
	} else {
		curl_easy_setopt(h, CURLOPT_NETRC, (long)CURL_NETRC_OPTIONAL);
	}
	CURLcode cc = curl_easy_perform(h);
	if (cc != CURLE_OK && !(cc == CURLE_WRITE_ERROR && rc.refused)) {
		cli_error(CLI_FAIL, "cannot reach %s: %s (is the server running? check --url)",
			  b->url, curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
out:
	curl_slist_free_all(headers);
	if (h)
		curl_easy_cleanup(h);
	free(accept);
	free(url);
	return (int)status;
}

int cli_backend_call(cli_backend *b, pw_call *call)
{
	if (b->url)
		return remote_call_do(b, call);
	if (!getenv("USER")) {
		struct passwd *pw = getpwuid(getuid());
		call->user = pw ? pw->pw_name : NULL;
	} else {
		call->user = getenv("USER");
	}
	int st = pw_server_call(b->srv, call, &thread_store);
	if (st < 0)
		cli_error(CLI_FAIL, "out of memory");
	return st;
}
