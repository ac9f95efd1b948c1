/*
 * fuzz_request.c - libFuzzer target for the request layer: the real
 * dispatcher of pipewright.fcgi (routing, query and header parsing, role
 * checks, body reading and every handler, the /run validator included)
 * in-process on a real project and SQLite file (PIPEWRIGHT_PROJECT_PATH,
 * a copy of examples/iris that tests/fuzz/run.sh makes, on tmpfs when it
 * can). The handlers never create the database: LLVMFuzzerInitialize
 * does, as the runner would, else every route that reads it would answer
 * 503 and the fuzzer would never get past it.
 *
 * An input is an HTTP request as text:
 *
 *   METHOD PATH[?QUERY]\n
 *   Name: value\n          (headers: HTTP_NAME params; Content-Type,
 *   ...                     Content-Length as CGI names them;
 *   \n                      Remote-User becomes REMOTE_USER)
 *   body
 *
 * The FastCGI connection is a socketpair whose other end is closed: a
 * stream or a waiting POST /run sees a client that has left and ends at
 * once, as it must.
 */
#include <fcgiapp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core.h"
#include "util.h"
#include "pwserver.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
const char *__asan_default_options(void);

/*
 * A 16 MB quarantine instead of ASan's 256 MB: every request allocates
 * (glibc's opendir buffers of the project fingerprint alone take 128 KB),
 * and with the large quarantine each allocation touched fresh pages: page
 * faults took half the time. A use-after-free within a request, or a few
 * requests later, is still caught. ASAN_OPTIONS overrides it.
 */
const char *__asan_default_options(void)
{
	return "quarantine_size_mb=16";
}
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PARAMS 64

typedef struct fz_io {
	pw_io io;
	const char *names[MAX_PARAMS];
	char *values[MAX_PARAMS];
	size_t n;
	const char *body;
	size_t body_len, body_off;
	size_t written;
} fz_io;

static pw_server *srv;
static pw_store *store;
static pw_snap *snap;
static FCGX_Request conn;   /* only ipcFd and requestId are looked at */

static const char *fz_param(pw_io *io, const char *name)
{
	fz_io *f = (fz_io *)io;
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->names[i], name) == 0)
			return f->values[i];
	return NULL;
}

static long fz_read(pw_io *io, char *buf, size_t n)
{
	fz_io *f = (fz_io *)io;
	size_t left = f->body_len - f->body_off;
	if (n > left)
		n = left;
	memcpy(buf, f->body + f->body_off, n);
	f->body_off += n;
	return (long)n;
}

static int fz_write(pw_io *io, const char *buf, size_t n)
{
	fz_io *f = (fz_io *)io;
	(void)buf;
	f->written += n;
	return 0;
}

static int fz_flush(pw_io *io)
{
	(void)io;
	return 0;
}

/* Adds a parameter (name static, value a copy of n bytes). */
static void add(fz_io *f, const char *name, const char *v, size_t n)
{
	if (f->n == MAX_PARAMS)
		return;
	char *c = malloc(n + 1);
	if (!c)
		abort();
	memcpy(c, v, n);
	c[n] = '\0';
	f->names[f->n] = name;
	f->values[f->n++] = c;
}

/* The CGI parameter name of header name (n bytes), in buf; false if unusable. */
static bool header_param(const char *name, size_t n, char *buf, size_t size)
{
	static const struct {
		const char *header, *param;
	} cgi[] = {{"content-type", "CONTENT_TYPE"}, {"content-length", "CONTENT_LENGTH"},
		   {"remote-user", "REMOTE_USER"}};
	for (size_t i = 0; i < sizeof cgi / sizeof *cgi; i++)
		if (strlen(cgi[i].header) == n && strncasecmp(name, cgi[i].header, n) == 0) {
			snprintf(buf, size, "%s", cgi[i].param);
			return true;
		}
	if (n == 0 || n + 6 > size)
		return false;
	memcpy(buf, "HTTP_", 5);
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (c == '\0' || c == ':')
			return false;
		buf[5 + i] = c == '-' ? '_' : (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
	}
	buf[5 + n] = '\0';
	return true;
}

/* Names for header params live here for the input's lifetime. */
static char header_names[MAX_PARAMS][72];

/* Parses the input into f (see the top of the file). */
static void parse(fz_io *f, const char *s, size_t size)
{
	const char *end = s + size, *nl = memchr(s, '\n', size);
	const char *line_end = nl ? nl : end;
	const char *sp = memchr(s, ' ', (size_t)(line_end - s));
	size_t h = 0;
	bool has_length = false;
	if (!sp)
		sp = line_end;
	add(f, "REQUEST_METHOD", s, (size_t)(sp - s));
	const char *target = sp < line_end ? sp + 1 : line_end;
	const char *q = memchr(target, '?', (size_t)(line_end - target));
	add(f, "PATH_INFO", target, (size_t)((q ? q : line_end) - target));
	add(f, "SCRIPT_NAME", "", 0);
	if (q)
		add(f, "QUERY_STRING", q + 1, (size_t)(line_end - q - 1));
	add(f, "SERVER_PROTOCOL", "HTTP/1.1", 8);
	s = nl ? nl + 1 : end;
	while (s < end && *s != '\n' && h < MAX_PARAMS) {
		nl = memchr(s, '\n', (size_t)(end - s));
		line_end = nl ? nl : end;
		const char *colon = memchr(s, ':', (size_t)(line_end - s));
		if (colon && header_param(s, (size_t)(colon - s), header_names[h], sizeof *header_names)) {
			const char *v = colon + 1;
			while (v < line_end && *v == ' ')
				v++;
			has_length |= strcmp(header_names[h], "CONTENT_LENGTH") == 0;
			add(f, header_names[h], v, (size_t)(line_end - v));
			h++;
		}
		s = nl ? nl + 1 : end;
	}
	if (s < end && *s == '\n')
		s++;
	f->body = s;
	f->body_len = (size_t)(end - s);
	if (!has_length) {
		char len[32];
		int n = snprintf(len, sizeof len, "%zu", f->body_len);
		add(f, "CONTENT_LENGTH", len, (size_t)n);
	}
}

/* Creates and migrates the project's database, as the runner would. */
static void create_database(void)
{
	pw_project_opts opts = {0};
	pw_project *p = NULL;
	pw_store *s = NULL;
	char *err = NULL;

	if (pw_project_load(&opts, &p, &err) != PW_OK || pw_mkdirs_for(p->database) != 0 ||
	    pw_store_open(p->database, &s, &err) != PW_OK) {
		fprintf(stderr, "fuzz_request: cannot create the database: %s\n",
			err ? err : "mkdir failed");
		exit(2);
	}
	pw_store_close(s);
	pw_project_free(p);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	int sv[2];
	char *err = NULL;
	pw_project_opts opts = {0};
	if (!getenv("PIPEWRIGHT_PROJECT_PATH")) {
		fprintf(stderr, "fuzz_request: set PIPEWRIGHT_PROJECT_PATH (tests/fuzz/run.sh does)\n");
		exit(2);
	}
	create_database();
	if (!(srv = pw_server_new(&opts, &err))) {
		fprintf(stderr, "fuzz_request: %s\n", err ? err : "out of memory");
		exit(2);
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		exit(2);
	close(sv[1]);   /* the web server has left */
	conn.ipcFd = sv[0];
	conn.requestId = 1;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_io f = {.io = {fz_param, fz_read, fz_write, fz_flush, &conn}};
	parse(&f, (const char *)data, size);
	pw_server_serve_io(srv, &f.io, &store, &snap);
	for (size_t i = 0; i < f.n; i++)
		free(f.values[i]);
	return 0;
}
