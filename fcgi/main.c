/*
 * main.c - pipewright.fcgi: the server library with its built-in routes,
 * run on fd 0 (started by the web server), on its own socket, or as one
 * plain CGI request.
 */
#include <errno.h>
#include <fcgiapp.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pwserver.h"

static const char usage[] =
	"usage: pipewright.fcgi [--socket PATH|127.0.0.1:PORT] [--threads N]\n"
	"                       [--project PATH] [--env ENV] [--conf-source DIR]\n"
	"                       [--max-body BYTES]\n";

/* A positive decimal number up to max, or -1. */
static long long positive(const char *s, long long max)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > max)
		return -1;
	return v;
}

/* The answer of a CGI request when there is no project to serve. */
static void cgi_fail(const char *message)
{
	json_object *env = json_object_new_object(), *err = json_object_new_object();
	const char *body = "{\"data\":null,\"error\":{\"code\":\"internal\","
			   "\"message\":\"pipewright: cannot load the project\"}}";
	if (env && err && json_object_object_add(env, "data", NULL) == 0 &&
	    json_object_object_add(err, "code", json_object_new_string("internal")) == 0 &&
	    json_object_object_add(err, "message", json_object_new_string(message)) == 0 &&
	    json_object_object_add(env, "error", err) == 0) {
		err = NULL;
		body = json_object_to_json_string_ext(
			env, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	}
	printf("Status: 500 Internal Server Error\r\nContent-Type: application/json\r\n"
	       "Content-Length: %zu\r\n\r\n%s",
	       strlen(body), body);
	fflush(stdout);
	json_object_put(err);
	json_object_put(env);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"threads", required_argument, NULL, 't'},
		{"project", required_argument, NULL, 'p'},
		{"env", required_argument, NULL, 'e'},
		{"conf-source", required_argument, NULL, 'c'},
		{"max-body", required_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	pw_project_opts opts = {0};
	pw_server_config cfg = {0};
	long long v;
	int c;

	/*
	 * A web server running us as CGI may turn a query without '=' into
	 * arguments ("?--project+/elsewhere"): a CGI request takes none.
	 */
	if (getenv("GATEWAY_INTERFACE") && FCGX_IsCGI()) {
		if (argc > 1)
			fprintf(stderr, "pipewright.fcgi: running as CGI, arguments ignored\n");
		argc = 1;
	}
	while ((c = getopt_long(argc, argv, "s:t:p:e:c:m:h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			cfg.socket = optarg;
			break;
		case 't':
			if ((v = positive(optarg, 256)) < 0) {
				fprintf(stderr, "pipewright.fcgi: --threads must be 1..256\n");
				return 2;
			}
			cfg.threads = (int)v;
			break;
		case 'p':
			opts.path = optarg;
			break;
		case 'e':
			opts.env = optarg;
			break;
		case 'c':
			opts.conf_source = optarg;
			break;
		case 'm':
			if ((v = positive(optarg, 1LL << 40)) < 0) {
				fprintf(stderr, "pipewright.fcgi: --max-body must be a positive "
						"number of bytes\n");
				return 2;
			}
			cfg.max_body = (size_t)v;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fputs(usage, stderr);
		return 2;
	}

	/*
	 * glibc gives each thread that contends for malloc an arena of its
	 * own (up to 8 per CPU), each keeping its freed memory: one per CPU
	 * (at least 2) is as many as can run at once (bench/README.md has
	 * the figures). MALLOC_ARENA_MAX in the environment still decides.
	 */
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (!getenv("MALLOC_ARENA_MAX"))
		mallopt(M_ARENA_MAX, cpus > 2 ? (int)cpus : 2);
	/*
	 * glibc hands free memory above 128 KiB at the top of a heap back
	 * to the kernel (brk, madvise) and faults it in again: each time a
	 * TLB flush on every CPU. Under 64 writing clients that was half of
	 * the process's CPU (bench/README.md, "Writes under load"); 1 MiB
	 * kept per arena stops it. MALLOC_TRIM_THRESHOLD_ still decides.
	 */
	if (!getenv("MALLOC_TRIM_THRESHOLD_"))
		mallopt(M_TRIM_THRESHOLD, 1 << 20);

	char *err = NULL;
	pw_server *srv = pw_server_new(&opts, &err);
	if (!srv) {
		fprintf(stderr, "pipewright.fcgi: %s\n", err ? err : "out of memory");
		if (!cfg.socket && FCGX_IsCGI())
			cgi_fail(err ? err : "out of memory");
		free(err);
		return 1;
	}
	int rc = pw_server_run(srv, &cfg);
	pw_server_free(srv);
	return rc == 0 ? 0 : 1;
}
