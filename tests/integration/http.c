/* http.c - see http.h. */
#include "http.h"
#include "harness.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LIGHTTPD "/usr/sbin/lighttpd"
#define START_TRIES 5
#define START_WAIT_MS 10000
#define STOP_WAIT_MS 5000

/* --- small things -------------------------------------------------------- */

long long ht_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ht_sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

const char *ht_builddir(void)
{
	const char *b = getenv("PW_BUILDDIR");
	return b && *b ? b : ".";
}

const char *ht_srcdir(void)
{
	const char *s = getenv("PW_SRCDIR");
	return s && *s ? s : ".";
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		fail_msg("out of memory");
	return s;
}

/* A port that was free a moment ago (bind to 0, read it, close). */
int ht_free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		fail_msg("socket: %s", strerror(errno));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
		int e = errno;
		close(fd);
		fail_msg("bind/getsockname: %s", strerror(e));
	}
	close(fd);
	return ntohs(a.sin_port);
}

bool ht_port_answers(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return false;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
	close(fd);
	return ok;
}

bool ht_pid_gone(pid_t pid)
{
	int st;
	pid_t r = waitpid(pid, &st, WNOHANG);

	if (r == pid)
		return true;
	if (r < 0 && errno == ECHILD)
		return kill(pid, 0) != 0 && errno == ESRCH;
	return false;
}

/* SIGTERM, bounded wait, SIGKILL and wait. */
static void stop_pid(pid_t pid)
{
	if (pid <= 0 || ht_pid_gone(pid))
		return;
	kill(pid, SIGTERM);
	for (long long end = ht_now_ms() + STOP_WAIT_MS; ht_now_ms() < end;) {
		if (ht_pid_gone(pid))
			return;
		ht_sleep_ms(20);
	}
	fprintf(stderr, "http: pid %d ignored SIGTERM; SIGKILL\n", (int)pid);
	kill(pid, SIGKILL);
	for (long long end = ht_now_ms() + STOP_WAIT_MS; ht_now_ms() < end;) {
		if (ht_pid_gone(pid))
			return;
		ht_sleep_ms(20);
	}
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f)
		fail_msg("fopen %s: %s", path, strerror(errno));
	fputs(text, f);
	if (fclose(f) != 0)
		fail_msg("write %s: %s", path, strerror(errno));
}

static void rmtree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char *p = xasprintf("%s/%s", dir, e->d_name);
		struct stat st;
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			rmtree(p);
		else
			unlink(p);
		free(p);
	}
	closedir(d);
	rmdir(dir);
}

/* One fastcgi.server entry. */
static char *fcgi_entry(const ht_server *s, const char *mount, const char *sock,
			bool fix_root, int threads)
{
	char opt[32] = "";
	if (threads > 0)
		snprintf(opt, sizeof opt, " --threads %d", threads);
	return xasprintf(
		"  \"%s\" => ((\n"
		"    \"bin-path\" => \"%s/fcgi/pipewright.fcgi%s\",\n"
		"    \"socket\" => \"%s/%s\",\n"
		"    \"check-local\" => \"disable\",\n"
		"    \"max-procs\" => 1,\n"
		"%s"
		"    \"bin-environment\" => (\"PIPEWRIGHT_PROJECT_PATH\" => \"%s\"),\n"
		"  ))",
		mount, ht_builddir(), opt, s->dir, sock,
		fix_root ? "    \"fix-root-scriptname\" => \"enable\",\n" : "",
		s->project);
}

static void write_config(ht_server *s, const ht_opts *o, const char *conf)
{
	char *www = xasprintf("%s/www", s->dir);
	if (mkdir(www, 0755) != 0 && errno != EEXIST)
		fail_msg("mkdir %s: %s", www, strerror(errno));
	char *root = fcgi_entry(s, "/", "fcgi.sock", true, o->threads);
	char *pre = o->prefix ? fcgi_entry(s, o->prefix, "fcgi-prefix.sock", false, o->threads)
			      : xasprintf("%s", "");
	char *auth = xasprintf("%s", "");
	if (o->users) {
		char *userfile = xasprintf("%s/users", s->dir);
		write_file(userfile, o->users);
		free(auth);
		auth = xasprintf(
			"auth.backend = \"plain\"\n"
			"auth.backend.plain.userfile = \"%s\"\n"
			"auth.require = ( \"/\" => ( \"method\" => \"basic\",\n"
			"  \"realm\" => \"pipewright\", \"require\" => \"valid-user\" ) )\n",
			userfile);
		free(userfile);
	}
	/* The prefix mount comes first: mod_fastcgi takes the first match. */
	char *text = xasprintf(
		"server.document-root = \"%s\"\n"
		"server.port = %d\n"
		"server.bind = \"127.0.0.1\"\n"
		"server.pid-file = \"%s/lighttpd.pid\"\n"
		"server.errorlog = \"%s\"\n"
		"server.upload-dirs = ( \"%s\" )\n"
		"server.modules += ( %s\"mod_fastcgi\", \"mod_setenv\" )\n"
		"server.http-parseopts = ( \"url-ctrls-reject\" => \"%s\" )\n"
		"server.stream-response-body = 2\n"
		"server.max-request-field-size = 65535\n"
		"%s"
		"fastcgi.server = (\n%s%s%s\n)\n",
		www, s->port, s->dir, s->errorlog, s->dir,
		o->users ? "\"mod_auth\", \"mod_authn_file\", " : "",
		o->raw_urls ? "disable" : "enable", auth,
		pre, o->prefix ? ",\n" : "", root);
	write_file(conf, text);
	free(text);
	free(auth);
	free(pre);
	free(root);
	free(www);
}

void ht_child_setup(const char *log)
{
	int null = open("/dev/null", O_RDONLY);
	int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (null < 0 || out < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 ||
	    dup2(out, 2) < 0)
		_exit(126);
	unsetenv("PIPEWRIGHT_PROJECT_PATH");
	unsetenv("PIPEWRIGHT_ENV");
	unsetenv("PIPEWRIGHT_CONF_SOURCE");
}

static pid_t spawn_lighttpd(const char *conf, const char *out_log)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		fail_msg("fork: %s", strerror(errno));
	if (pid == 0) {
		ht_child_setup(out_log); /* the config's bin-environment names the project */
		execl(LIGHTTPD, LIGHTTPD, "-D", "-f", conf, (char *)NULL);
		dprintf(2, "http: exec %s: %s\n", LIGHTTPD, strerror(errno));
		_exit(127);
	}
	return pid;
}

ht_server *ht_start(const char *project, const ht_opts *opts)
{
	static const ht_opts none;
	const ht_opts *o = opts ? opts : &none;
	char *bin = xasprintf("%s/fcgi/pipewright.fcgi", ht_builddir());

	if (access(bin, X_OK) != 0)
		fail_msg("%s: %s", bin, strerror(errno));
	free(bin);
	if (access(LIGHTTPD, X_OK) != 0)
		fail_msg("%s: %s (install lighttpd)", LIGHTTPD, strerror(errno));
	static bool curl_ready;
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
			fail_msg("curl_global_init failed");
		curl_ready = true;
	}

	ht_server *s = calloc(1, sizeof *s);
	assert_non_null(s);
	s->dir = th_mkdtemp();
	s->project = strdup(project);
	assert_non_null(s->project);
	s->errorlog = xasprintf("%s/error.log", s->dir);
	char *conf = xasprintf("%s/lighttpd.conf", s->dir);
	char *out = xasprintf("%s/lighttpd.out", s->dir);

	for (int attempt = 1;; attempt++) {
		s->port = ht_free_port();
		snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
		write_config(s, o, conf);
		s->pid = spawn_lighttpd(conf, out);
		bool up = false;
		for (long long end = ht_now_ms() + START_WAIT_MS; ht_now_ms() < end;) {
			if (ht_pid_gone(s->pid)) {
				s->pid = 0;
				break;
			}
			if (ht_port_answers(s->port)) {
				up = true;
				break;
			}
			ht_sleep_ms(20);
		}
		if (up)
			break;
		stop_pid(s->pid);
		s->pid = 0;
		if (attempt == START_TRIES) {
			char *log = th_read(out);
			fprintf(stderr, "http: lighttpd output:\n%s\n", log ? log : "");
			free(log);
			ht_dump_logs(s);
			free(conf);
			free(out);
			fail_msg("lighttpd did not start on 127.0.0.1 (%d tries)", attempt);
		}
	}
	free(conf);
	free(out);
	return s;
}


pid_t ht_fcgi_pid(ht_server *s)
{
	pid_t pids[4];
	if (!s || s->pid <= 0)
		return 0;
	return hr_children(s->pid, "pipewright.fcg", 0, pids, 4) > 0 ? pids[0] : 0;
}

void ht_stop(ht_server *s)
{
	pid_t kids[8];
	int n = 0;

	if (!s)
		return;
	if (s->pid > 0) {
		n = hr_children(s->pid, "pipewright.fcg", 0, kids, 8);
		stop_pid(s->pid);
	}
	/* lighttpd ends its backends; make sure (they may be ours now). */
	for (int i = 0; i < n; i++) {
		for (long long end = ht_now_ms() + STOP_WAIT_MS; ht_now_ms() < end;) {
			if (ht_pid_gone(kids[i]))
				break;
			ht_sleep_ms(20);
		}
		stop_pid(kids[i]);
	}
	if (getenv("PW_KEEP_TMP"))
		fprintf(stderr, "kept %s\n", s->dir);
	else
		rmtree(s->dir);
	free(s->dir);
	free(s->errorlog);
	free(s->project);
	free(s);
}

void ht_dump_logs(ht_server *s)
{
	if (!s)
		return;
	char *log = th_read(s->errorlog);
	fprintf(stderr, "---- lighttpd error log (%s) ----\n%s\n---- end ----\n",
		s->errorlog, log ? log : "(none)");
	free(log);
}

/* --- requests ------------------------------------------------------------- */

typedef struct buf {
	char *p;
	size_t len;
} buf;

static size_t on_data(char *ptr, size_t size, size_t n, void *ud)
{
	buf *b = ud;
	size_t add = size * n;
	char *p = realloc(b->p, b->len + add + 1);
	if (!p)
		return 0;
	memcpy(p + b->len, ptr, add);
	b->len += add;
	p[b->len] = '\0';
	b->p = p;
	return add;
}

/* Keeps only the header block of the last response (after 100 Continue). */
static size_t on_header(char *ptr, size_t size, size_t n, void *ud)
{
	buf *b = ud;
	size_t add = size * n;
	if (add >= 5 && strncmp(ptr, "HTTP/", 5) == 0)
		b->len = 0;
	return on_data(ptr, size, n, ud);
}

/*
 * ht_req without cmocka: NULL with the reason in err on a failure, so
 * that client threads may call it (cmocka fails only on the test's own
 * thread).
 */
static ht_resp *request(ht_server *s, const char *method, const char *path,
			const char *const *headers, const char *body, size_t body_len,
			char *err, size_t err_size)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hl = NULL;
	buf hb = {0}, bb = {0};
	bool has_ct = false;
	ht_resp *r = calloc(1, sizeof *r);

	if (!c || !r) {
		snprintf(err, err_size, "%s %.400s: out of memory", method, path);
		curl_easy_cleanup(c);
		free(r);
		return NULL;
	}
	snprintf(r->req, sizeof r->req, "%s %.480s", method, path);
	char *url = xasprintf("%s%s", s->base, path);
	for (size_t i = 0; headers && headers[i]; i++) {
		if (strncasecmp(headers[i], "Content-Type:", 13) == 0)
			has_ct = true;
		hl = curl_slist_append(hl, headers[i]);
	}
	if (body && !has_ct)
		hl = curl_slist_append(hl, "Content-Type: application/json");
	else if (!body && !has_ct)
		hl = curl_slist_append(hl, "Content-Type:"); /* none, not curl's form type */
	hl = curl_slist_append(hl, "Expect:");
	if (body && body_len == (size_t)-1)
		body_len = strlen(body);

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (!strcmp(method, "HEAD"))
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &bb);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &hb);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	if (s->user) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(c, CURLOPT_USERNAME, s->user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, s->password ? s->password : "");
	}
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	} else if (!strcmp(method, "POST") || !strcmp(method, "PUT") ||
		   !strcmp(method, "PATCH")) {
		/* No body: "Content-Length: 0" (else lighttpd answers 411). */
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
	}
	CURLcode rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	free(url);
	r->headers = hb.p ? hb.p : strdup("");
	r->body = bb.p ? bb.p : strdup("");
	if (rc != CURLE_OK || !r->headers || !r->body) {
		snprintf(err, err_size, "%s: curl: %s", r->req,
			 rc != CURLE_OK ? curl_easy_strerror(rc) : "out of memory");
		free(r->headers);
		free(r->body);
		free(r);
		return NULL;
	}
	r->body_len = bb.len;
	json_tokener *tok = r->body_len > 0 && strlen(r->body) == r->body_len
		? json_tokener_new() : NULL;
	if (tok) {
		json_object *j = json_tokener_parse_ex(tok, r->body, (int)r->body_len);
		if (j && json_tokener_get_error(tok) == json_tokener_success &&
		    tok->char_offset == (int)r->body_len)
			r->json = j;
		else
			json_object_put(j);
		json_tokener_free(tok);
	}
	return r;
}

ht_resp *ht_req(ht_server *s, const char *method, const char *path,
		const char *const *headers, const char *body, size_t body_len)
{
	char err[600];
	ht_resp *r = request(s, method, path, headers, body, body_len, err, sizeof err);
	if (!r)
		fail_msg("%s", err);
	return r;
}

ht_resp *ht_send_from_thread(ht_server *s, const char *method, const char *path,
			     const char *json_body, char *err, size_t err_size)
{
	return request(s, method, path, NULL, json_body, (size_t)-1, err, err_size);
}

ht_resp *ht_get(ht_server *s, const char *path)
{
	return ht_req(s, "GET", path, NULL, NULL, 0);
}

ht_resp *ht_send(ht_server *s, const char *method, const char *path,
		 const char *json_body)
{
	return ht_req(s, method, path, NULL, json_body, (size_t)-1);
}

void ht_resp_free(ht_resp *r)
{
	if (!r)
		return;
	free(r->headers);
	free(r->body);
	json_object_put(r->json);
	free(r);
}

char *ht_header(const ht_resp *r, const char *name)
{
	size_t nl = strlen(name);
	const char *line = r->headers;

	while (line && *line) {
		const char *end = strstr(line, "\r\n");
		size_t len = end ? (size_t)(end - line) : strlen(line);
		if (len > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
			const char *v = line + nl + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			size_t vl = len - (size_t)(v - line);
			while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				vl--;
			return strndup(v, vl);
		}
		line = end ? end + 2 : NULL;
	}
	return NULL;
}

void ht_fail(const ht_resp *r, const char *what)
{
	fail_msg("%s -> HTTP %ld: %s\nbody: %.2000s", r->req, r->status, what,
		 r->body);
}

const char *ht_code(long status)
{
	switch (status) {
	case 400: return "bad_request";
	case 401: return "unauthorized";
	case 403: return "forbidden";
	case 404: return "not_found";
	case 405: return "method_not_allowed";
	case 409: return "conflict";
	case 411: return "length_required";
	case 413: return "payload_too_large";
	case 415: return "unsupported_media_type";
	case 503: return "unavailable";
	default: return "internal";
	}
}

json_object *ht_ok(ht_resp *r, long status)
{
	char what[128];

	if (r->status != status) {
		snprintf(what, sizeof what, "expected HTTP %ld", status);
		ht_fail(r, what);
	}
	if (!r->json || !json_object_is_type(r->json, json_type_object))
		ht_fail(r, "body is not a JSON object");
	json_object *data, *meta;
	if (!json_object_object_get_ex(r->json, "data", &data))
		ht_fail(r, "envelope has no \"data\"");
	if (!json_object_object_get_ex(r->json, "meta", &meta) ||
	    !json_object_is_type(meta, json_type_object))
		ht_fail(r, "envelope has no object \"meta\"");
	if (json_object_object_get_ex(r->json, "error", NULL))
		ht_fail(r, "success envelope has \"error\"");
	return data;
}

void ht_err(ht_resp *r, long status)
{
	char what[160];

	if (r->status != status) {
		snprintf(what, sizeof what, "expected HTTP %ld (%s)", status, ht_code(status));
		ht_fail(r, what);
	}
	if (!r->json || !json_object_is_type(r->json, json_type_object))
		ht_fail(r, "body is not a JSON object");
	json_object *data;
	if (!json_object_object_get_ex(r->json, "data", &data) || data != NULL)
		ht_fail(r, "error envelope: \"data\" is not null");
	json_object *code = ht_at(r->json, "error.code");
	json_object *msg = ht_at(r->json, "error.message");
	if (!code || !json_object_is_type(code, json_type_string) ||
	    strcmp(json_object_get_string(code), ht_code(status)) != 0) {
		snprintf(what, sizeof what, "error.code is not \"%s\"", ht_code(status));
		ht_fail(r, what);
	}
	if (!msg || !json_object_is_type(msg, json_type_string))
		ht_fail(r, "error.message is not a string");
}

/* --- JSON ------------------------------------------------------------------- */

/* Walks path; *found tells whether the last key exists (value may be null). */
static json_object *walk(json_object *o, const char *path, bool *found)
{
	char key[256];
	const char *p = path;

	*found = true;
	while (*p) {
		size_t n = strcspn(p, ".");
		if (n >= sizeof key)
			fail_msg("path too long: %s", path);
		memcpy(key, p, n);
		key[n] = '\0';
		p += n;
		if (*p == '.')
			p++;
		if (!o) {
			*found = false;
			return NULL;
		}
		if (json_object_is_type(o, json_type_array) && isdigit((unsigned char)key[0])) {
			size_t i = strtoul(key, NULL, 10);
			if (i >= json_object_array_length(o)) {
				*found = false;
				return NULL;
			}
			o = json_object_array_get_idx(o, i);
		} else if (json_object_is_type(o, json_type_object)) {
			json_object *v;
			if (!json_object_object_get_ex(o, key, &v)) {
				*found = false;
				return NULL;
			}
			o = v;
		} else {
			*found = false;
			return NULL;
		}
	}
	return o;
}

json_object *ht_at(json_object *o, const char *path)
{
	bool found;
	return walk(o, path, &found);
}

bool ht_has(json_object *o, const char *path)
{
	bool found;
	walk(o, path, &found);
	return found;
}

static json_object *typed(json_object *o, const char *path, json_type t,
			  const char *tname)
{
	json_object *v = ht_at(o, path);
	if (!v || !json_object_is_type(v, t))
		fail_msg("%s is not %s in %.2000s", path, tname,
			 o ? json_object_to_json_string(o) : "null");
	return v;
}

const char *ht_str(json_object *o, const char *path)
{
	return json_object_get_string(typed(o, path, json_type_string, "a string"));
}

long long ht_int(json_object *o, const char *path)
{
	return json_object_get_int64(typed(o, path, json_type_int, "an integer"));
}

double ht_num(json_object *o, const char *path)
{
	json_object *v = ht_at(o, path);
	if (!v || !(json_object_is_type(v, json_type_int) ||
		    json_object_is_type(v, json_type_double)))
		fail_msg("%s is not a number in %.2000s", path,
			 o ? json_object_to_json_string(o) : "null");
	return json_object_get_double(v);
}

bool ht_bool(json_object *o, const char *path)
{
	return json_object_get_boolean(typed(o, path, json_type_boolean, "a boolean"));
}

json_object *ht_arr(json_object *o, const char *path)
{
	return typed(o, path, json_type_array, "an array");
}

json_object *ht_find(json_object *arr, const char *key, const char *value)
{
	size_t n = json_object_array_length(arr);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(arr, i), *v;
		if (json_object_object_get_ex(e, key, &v) &&
		    json_object_is_type(v, json_type_string) &&
		    strcmp(json_object_get_string(v), value) == 0)
			return e;
	}
	return NULL;
}

bool ht_arr_has_str(json_object *arr, const char *s)
{
	size_t n = json_object_array_length(arr);
	for (size_t i = 0; i < n; i++) {
		json_object *e = json_object_array_get_idx(arr, i);
		if (json_object_is_type(e, json_type_string) &&
		    strcmp(json_object_get_string(e), s) == 0)
			return true;
	}
	return false;
}

char *ht_arr_join(json_object *arr)
{
	size_t n = json_object_array_length(arr), len = 1;
	for (size_t i = 0; i < n; i++)
		len += strlen(json_object_get_string(json_object_array_get_idx(arr, i))) + 1;
	char *s = calloc(1, len);
	assert_non_null(s);
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(s, ",");
		strcat(s, json_object_get_string(json_object_array_get_idx(arr, i)));
	}
	return s;
}
