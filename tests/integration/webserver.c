/* webserver.c - see webserver.h. */
#include "webserver.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define LIGHTTPD "/usr/sbin/lighttpd"
#define APACHE "/usr/sbin/apache2"
#define APACHE_MODULES "/usr/lib/apache2/modules"
#define START_TRIES 4
#define START_WAIT_MS 10000
#define STOP_WAIT_MS 5000
#define MAX_PROCS 64
/* htpasswd -nbs bob bpw */
#define WS_HTPASSWD WS_USER ":{SHA}1Hfnvouvt1+kHkP0znUIGxDyfYc=\n"

/* --- small things -------------------------------------------------------- */

static char *ws_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *ws_asprintf(const char *fmt, ...)
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

const char *ws_name(ws_kind kind)
{
	switch (kind) {
	case WS_LIGHTTPD: return "lighttpd";
	case WS_APACHE_PROXY: return "apache+proxy_fcgi";
	case WS_APACHE_FCGID: return "apache+fcgid";
	case WS_APACHE_CGI: return "apache+cgid";
	}
	return "?";
}

/* The user the web server runs programs as. */
typedef struct web_user {
	bool root;          /* we are root: Apache switches to this user */
	uid_t uid;
	gid_t gid;
	char user[64];
	char group[64];
} web_user;

static void get_web_user(web_user *w)
{
	struct passwd *pw;

	memset(w, 0, sizeof *w);
	w->root = geteuid() == 0;
	pw = w->root ? getpwnam("nobody") : getpwuid(geteuid());
	if (!pw)
		fail_msg("no passwd entry for %s", w->root ? "nobody" : "the current user");
	w->uid = pw->pw_uid;
	w->gid = pw->pw_gid;
	snprintf(w->user, sizeof w->user, "%s", pw->pw_name);
	struct group *gr = getgrgid(w->gid);
	if (!gr)
		fail_msg("no group entry for gid %d", (int)w->gid);
	snprintf(w->group, sizeof w->group, "%s", gr->gr_name);
}

static uid_t share_uid;
static gid_t share_gid;

static int chown_entry(const char *path, const struct stat *st, int flag,
		       struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return lchown(path, share_uid, share_gid) == 0 ? 0 : -1;
}

void ws_share_project(const char *project)
{
	web_user w;

	get_web_user(&w);
	if (!w.root)
		return;
	share_uid = w.uid;
	share_gid = w.gid;
	if (nftw(project, chown_entry, 16, FTW_PHYS) != 0)
		fail_msg("chown -R %s %s: %s", w.user, project, strerror(errno));
}

/* Whether user w may reach and run path (o+x on every folder above it). */
static void check_reachable(const web_user *w, const char *path)
{
	char *p = strdup(path);
	assert_non_null(p);
	for (char *slash = p; w->root && slash;) {
		struct stat st;
		char *next = strchr(slash + 1, '/');
		if (next)
			*next = '\0';
		if (stat(*p ? p : "/", &st) != 0)
			fail_msg("stat %s: %s", p, strerror(errno));
		if (!(st.st_mode & S_IXOTH))
			fail_msg("%s is not reachable by %s (Apache's user when the tests "
				 "run as root): build in a world-readable folder (chmod o+rx)",
				 p, w->user);
		if (next)
			*next = '/';
		slash = next;
	}
	free(p);
}

/*
 * Copies the program src to dst, mode 0755: what Apache's user runs must
 * not depend on where the build tree is (a clone in a private folder).
 */
static void stage_program(const char *src, const char *dst)
{
	char buf[65536];
	ssize_t n = 0;
	int in = open(src, O_RDONLY | O_CLOEXEC);
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);

	if (in < 0 || out < 0)
		fail_msg("copy %s to %s: %s", src, dst, strerror(errno));
	while ((n = read(in, buf, sizeof buf)) > 0)
		if (write(out, buf, (size_t)n) != n)
			break;
	if (n != 0 || fchmod(out, 0755) != 0 || close(out) != 0)
		fail_msg("copy %s to %s: %s", src, dst, strerror(errno));
	close(in);
}

/*
 * Copies the build tree's www folder (the dashboard, /docs, openapi.json;
 * its links followed) to dst, for the same reason as stage_program.
 */
static void stage_www(const char *dst)
{
	char *cmd = ws_asprintf("cp -RL '%s/www' '%s'", ht_builddir(), dst);
	int st = system(cmd);
	if (st != 0)
		fail_msg("%s: status %d", cmd, st);
	free(cmd);
}

static bool wait_gone(pid_t pid, int ms)
{
	for (long long end = ht_now_ms() + ms; ht_now_ms() < end;) {
		if (ht_pid_gone(pid))
			return true;
		ht_sleep_ms(20);
	}
	return ht_pid_gone(pid);
}

/* SIGTERM, bounded wait, SIGKILL and wait. */
static void ws_stop_pid(pid_t pid)
{
	if (pid <= 0 || ht_pid_gone(pid))
		return;
	kill(pid, SIGTERM);
	if (wait_gone(pid, STOP_WAIT_MS))
		return;
	fprintf(stderr, "webserver: pid %d ignored SIGTERM; SIGKILL\n", (int)pid);
	kill(pid, SIGKILL);
	wait_gone(pid, STOP_WAIT_MS);
}

/* The parent pid of pid (from /proc), or -1. */
static pid_t parent_of(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t len = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[len] = '\0';
	char *close_paren = strrchr(buf, ')'), state;
	int ppid;
	if (!close_paren || sscanf(close_paren + 1, " %c %d", &state, &ppid) != 2)
		return -1;
	return (pid_t)ppid;
}

/* Adds the descendants of root to out (n entries already), up to MAX_PROCS. */
static int descendants(pid_t root, pid_t *out, int n)
{
	int first = n;
	if (root <= 0)
		return n;
	out[n++] = root;
	/* Breadth first: each pass adds the children of the entries so far. */
	for (bool grew = true; grew && n < MAX_PROCS;) {
		grew = false;
		DIR *d = opendir("/proc");
		struct dirent *e;
		if (!d)
			break;
		while ((e = readdir(d)) && n < MAX_PROCS) {
			if (!isdigit((unsigned char)e->d_name[0]))
				continue;
			pid_t pid = (pid_t)atoi(e->d_name), pp = parent_of(pid);
			bool known = false, child = false;
			for (int i = first; i < n; i++) {
				known = known || out[i] == pid;
				child = child || out[i] == pp;
			}
			if (child && !known) {
				out[n++] = pid;
				grew = true;
			}
		}
		closedir(d);
	}
	return n;
}

static void ws_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f)
		fail_msg("fopen %s: %s", path, strerror(errno));
	fputs(text, f);
	if (fclose(f) != 0)
		fail_msg("write %s: %s", path, strerror(errno));
}

static void ws_mkdir(const char *path, mode_t mode)
{
	if (mkdir(path, mode) != 0 && errno != EEXIST)
		fail_msg("mkdir %s: %s", path, strerror(errno));
	if (chmod(path, mode) != 0)
		fail_msg("chmod %s: %s", path, strerror(errno));
}

/* --- templates ------------------------------------------------------------ */

typedef struct ws_var {
	const char *name;  /* "PREFIX" for @PREFIX@ */
	const char *value;
} ws_var;

/*
 * Copies apache-conf/<name> to dst with every @NAME@ of vars replaced;
 * fails on a placeholder it does not know.
 */
static void fill_template(const char *name, const char *dst, const ws_var *vars,
			  size_t n)
{
	char *src = ws_asprintf("%s/apache-conf/%s", ht_srcdir(), name);
	char *text = th_read(src);
	if (!text)
		fail_msg("cannot read %s", src);
	FILE *out = fopen(dst, "w");
	if (!out)
		fail_msg("fopen %s: %s", dst, strerror(errno));
	for (const char *p = text; *p;) {
		size_t k = 0;
		if (*p == '@') {
			while (isupper((unsigned char)p[1 + k]) || p[1 + k] == '_')
				k++;
			if (k == 0 || p[1 + k] != '@')
				k = 0;
		}
		if (k == 0) {
			fputc(*p++, out);
			continue;
		}
		size_t i;
		for (i = 0; i < n; i++)
			if (strlen(vars[i].name) == k && !strncmp(p + 1, vars[i].name, k))
				break;
		if (i == n)
			fail_msg("%s: unknown placeholder @%.*s@", src, (int)k, p + 1);
		fputs(vars[i].value, out);
		p += k + 2;
	}
	if (fclose(out) != 0)
		fail_msg("write %s: %s", dst, strerror(errno));
	free(text);
	free(src);
}

/* --- configs ----------------------------------------------------------------- */

static void write_lighttpd_conf(ws_server *s, const char *conf)
{
	char *frag = ws_asprintf("%s/pipewright.conf", s->dir);
	char *bindir = ws_asprintf("%s/fcgi", ht_builddir());
	char *rundir = ws_asprintf("%s/run", s->dir);
	char *wwwdir = ws_asprintf("%s/www", ht_builddir());
	const ws_var vars[] = {
		{"BINDIR", bindir}, {"PROJECT", s->http.project},
		{"PREFIX", WS_PREFIX}, {"RUNDIR", rundir}, {"WWWDIR", wwwdir},
	};
	fill_template("lighttpd.conf", frag, vars, sizeof vars / sizeof *vars);
	char *users = ws_asprintf("%s/users", s->dir);
	ws_write_file(users, WS_USER ":" WS_PASSWORD "\n");
	/* mod_auth before mod_fastcgi (the fragment adds it). */
	char *text = ws_asprintf(
		"server.document-root = \"%s/www\"\n"
		"server.port = %d\n"
		"server.bind = \"127.0.0.1\"\n"
		"server.pid-file = \"%s/lighttpd.pid\"\n"
		"server.errorlog = \"%s/error.log\"\n"
		"server.upload-dirs = ( \"%s\" )\n"
		"server.modules = ( \"mod_auth\", \"mod_authn_file\" )\n"
		"auth.backend = \"plain\"\n"
		"auth.backend.plain.userfile = \"%s\"\n"
		"auth.require = ( \"/\" => ( \"method\" => \"basic\",\n"
		"  \"realm\" => \"pipewright\", \"require\" => \"valid-user\" ) )\n"
		"mimetype.assign = ( \".html\" => \"text/html\",\n"
		"  \".js\" => \"text/javascript\", \".css\" => \"text/css\",\n"
		"  \".json\" => \"application/json\", \".png\" => \"image/png\" )\n"
		"include \"%s\"\n",
		s->dir, s->http.port, s->dir, s->dir, s->dir, users, frag);
	ws_write_file(conf, text);
	free(text);
	free(users);
	free(wwwdir);
	free(rundir);
	free(bindir);
	free(frag);
}

static void write_apache_conf(ws_server *s, const web_user *w, const char *conf)
{
	static const char *const common[] = {
		"mpm_event", "authz_core", "authn_core", "authn_file", "auth_basic",
		"authz_user", "alias", "env", "setenvif", "dir", "mime",
	};
	const char *tmpl = s->kind == WS_APACHE_PROXY ? "apache-proxy-fcgi.conf"
			   : s->kind == WS_APACHE_FCGID ? "apache-fcgid.conf"
							: "apache-cgi.conf";
	const char *extra_mods = s->kind == WS_APACHE_PROXY ? "proxy proxy_fcgi"
				 : s->kind == WS_APACHE_FCGID ? "fcgid"
							      : "cgid";
	char *frag = ws_asprintf("%s/pipewright.conf", s->dir);
	char *bindir = strdup(s->bin);
	assert_non_null(bindir);
	*strrchr(bindir, '/') = '\0';
	char *rundir = ws_asprintf("%s/run", s->dir);
	char *wwwdir = ws_asprintf("%s/static", s->dir);   /* stage_www's copy */
	const ws_var vars[] = {
		{"BINDIR", bindir}, {"PROJECT", s->http.project},
		{"PREFIX", WS_PREFIX}, {"RUNDIR", rundir}, {"WWWDIR", wwwdir},
	};
	fill_template(tmpl, frag, vars, sizeof vars / sizeof *vars);
	char *users = ws_asprintf("%s/htpasswd", s->dir);
	ws_write_file(users, WS_HTPASSWD);

	size_t cap = 4096, len = 0;
	char *mods = calloc(1, cap);
	assert_non_null(mods);
	char extra[64];
	snprintf(extra, sizeof extra, "%s", extra_mods);
	for (size_t i = 0; i < sizeof common / sizeof *common + 2; i++) {
		const char *m = i < sizeof common / sizeof *common ? common[i]
			: i == sizeof common / sizeof *common ? strtok(extra, " ")
							      : strtok(NULL, " ");
		if (!m)
			continue;
		int k = snprintf(mods + len, cap - len,
				 "LoadModule %s_module " APACHE_MODULES "/mod_%s.so\n", m, m);
		if (k < 0 || (size_t)k >= cap - len)
			fail_msg("module list too long");
		len += (size_t)k;
	}
	char *kind_text;
	if (s->kind == WS_APACHE_FCGID)
		kind_text = ws_asprintf("FcgidIPCDir \"%s/fcgid\"\n"
					"FcgidProcessTableFile \"%s/fcgid_shm\"\n"
					"FcgidInitialEnv PIPEWRIGHT_SSE_MAX_SECONDS 3\n",
					s->dir, s->dir);
	else if (s->kind == WS_APACHE_CGI)
		kind_text = ws_asprintf("ScriptSock \"%s/run/cgid.sock\"\n"
					"SetEnv PIPEWRIGHT_SSE_MAX_SECONDS 3\n",
					s->dir);
	else
		kind_text = ws_asprintf("%s", "");
	/* The authentication comes after the template: it overrides its Require. */
	char *text = ws_asprintf(
		"ServerRoot \"%s\"\n"
		"ServerName 127.0.0.1\n"
		"Listen 127.0.0.1:%d\n"
		"PidFile \"%s/httpd.pid\"\n"
		"ErrorLog \"%s/error.log\"\n"
		"LogLevel warn\n"
		"DefaultRuntimeDir \"%s/run\"\n"
		"User %s\n"
		"Group %s\n"
		"%s"
		"StartServers 1\n"
		"MinSpareThreads 1\n"
		"MaxSpareThreads 50\n"
		"ThreadsPerChild 25\n"
		"DocumentRoot \"%s/www\"\n"
		"TypesConfig /etc/mime.types\n"
		"%s"
		"Include \"%s\"\n"
		"<Location \"/\">\n"
		"    AuthType Basic\n"
		"    AuthName \"pipewright\"\n"
		"    AuthBasicProvider file\n"
		"    AuthUserFile \"%s\"\n"
		"    Require valid-user\n"
		"</Location>\n",
		s->dir, s->http.port, s->dir, s->dir, s->dir, w->user, w->group, mods,
		s->dir, kind_text, frag, users);
	ws_write_file(conf, text);
	free(text);
	free(kind_text);
	free(mods);
	free(users);
	free(wwwdir);
	free(rundir);
	free(bindir);
	free(frag);
}

/* --- processes ------------------------------------------------------------ */

/* Forks argv with stdin /dev/null and stdout/stderr appended to log. */
static pid_t spawn(const char *const *argv, const char *log, const char *project,
		   const web_user *as)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		fail_msg("fork: %s", strerror(errno));
	if (pid == 0) {
		/* The project is named by the configs only (or here, for a backend). */
		ht_child_setup(log);
		if (project && setenv("PIPEWRIGHT_PROJECT_PATH", project, 1) != 0)
			_exit(126);
		/* lighttpd copies its environment to the programs it starts. */
		if (setenv("PIPEWRIGHT_SSE_MAX_SECONDS", "3", 0) != 0)
			_exit(126);
		if (as && as->root &&
		    (setgroups(0, NULL) != 0 || setgid(as->gid) != 0 || setuid(as->uid) != 0))
			_exit(125);
		execv(argv[0], (char *const *)argv);
		dprintf(2, "webserver: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

/* Starts pipewright.fcgi --socket <dir>/run/pipewright.sock as the web user. */
static void start_backend(ws_server *s, const web_user *w)
{
	char *bin = strdup(s->bin);
	assert_non_null(bin);
	char *sock = ws_asprintf("%s/run/pipewright.sock", s->dir);
	char *log = ws_asprintf("%s/backend.log", s->dir);
	const char *argv[] = {bin, "--socket", sock, NULL};
	struct stat st;

	unlink(sock);
	s->backend = spawn(argv, log, s->http.project, w);
	long long end = ht_now_ms() + START_WAIT_MS;
	while (!(stat(sock, &st) == 0 && S_ISSOCK(st.st_mode))) {
		if (ht_pid_gone(s->backend) || ht_now_ms() > end)
			fail_msg("pipewright.fcgi --socket %s did not start (see %s)", sock, log);
		ht_sleep_ms(20);
	}
	free(log);
	free(sock);
	free(bin);
}

ws_server *ws_new(ws_kind kind, const char *project)
{
	ws_server *s = calloc(1, sizeof *s);
	assert_non_null(s);
	s->kind = kind;
	s->dir = th_mkdtemp();
	s->http.project = strdup(project);
	assert_non_null(s->http.project);
	s->http.user = WS_USER;
	s->http.password = WS_PASSWORD;
	return s;
}

void ws_launch(ws_server *s)
{
	ws_kind kind = s->kind;
	web_user w;
	get_web_user(&w);
	char *bin = ws_asprintf("%s/fcgi/pipewright.fcgi", ht_builddir());
	if (access(bin, X_OK) != 0)
		fail_msg("%s: %s", bin, strerror(errno));
	ws_mkdir(s->dir, 0755);
	free(s->bin);
	if (kind != WS_LIGHTTPD) {
		char *stage = ws_asprintf("%s/bin", s->dir);
		ws_mkdir(stage, 0755);
		s->bin = ws_asprintf("%s/pipewright.fcgi", stage);
		stage_program(bin, s->bin);
		check_reachable(&w, s->bin);
		free(stage);
		stage = ws_asprintf("%s/static", s->dir);
		stage_www(stage);
		check_reachable(&w, stage);
		free(stage);
		free(bin);
	} else {
		s->bin = bin;
	}
	const char *exe = kind == WS_LIGHTTPD ? LIGHTTPD : APACHE;
	if (access(exe, X_OK) != 0)
		fail_msg("%s: %s (install lighttpd, apache2, libapache2-mod-fcgid)", exe,
			 strerror(errno));
	static bool curl_ready;
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
			fail_msg("curl_global_init failed");
		curl_ready = true;
	}

	/* Apache's children (the web user) reach the sockets and fcgid's folder. */
	char *sub = ws_asprintf("%s/www", s->dir);
	ws_mkdir(sub, 0755);
	free(sub);
	sub = ws_asprintf("%s/run", s->dir);
	ws_mkdir(sub, 0755);
	if (w.root && chown(sub, w.uid, w.gid) != 0)
		fail_msg("chown %s: %s", sub, strerror(errno));
	free(sub);
	if (kind == WS_APACHE_PROXY)
		start_backend(s, &w);

	char *conf = ws_asprintf("%s/%s", s->dir,
				 kind == WS_LIGHTTPD ? "lighttpd.conf" : "httpd.conf");
	char *out = ws_asprintf("%s/server.out", s->dir);
	for (int attempt = 1;; attempt++) {
		s->http.port = ht_free_port();
		snprintf(s->http.base, sizeof s->http.base, "http://127.0.0.1:%d",
			 s->http.port);
		if (kind == WS_LIGHTTPD) {
			write_lighttpd_conf(s, conf);
			const char *argv[] = {LIGHTTPD, "-D", "-f", conf, NULL};
			s->pid = spawn(argv, out, NULL, NULL);
		} else {
			write_apache_conf(s, &w, conf);
			const char *argv[] = {APACHE, "-d", s->dir, "-f", conf,
					      "-DFOREGROUND", NULL};
			s->pid = spawn(argv, out, NULL, NULL);
		}
		bool up = false;
		for (long long end = ht_now_ms() + START_WAIT_MS; ht_now_ms() < end;) {
			if (ht_pid_gone(s->pid)) {
				s->pid = 0;
				break;
			}
			if (ht_port_answers(s->http.port)) {
				up = true;
				break;
			}
			ht_sleep_ms(20);
		}
		if (up)
			break;
		ws_stop_pid(s->pid);
		s->pid = 0;
		if (attempt == START_TRIES) {
			free(conf);
			free(out);
			fail_msg("%s did not start on 127.0.0.1 (%d tries)", ws_name(kind),
				 attempt);
		}
	}
	free(conf);
	free(out);
}

void ws_stop(ws_server *s)
{
	pid_t procs[MAX_PROCS];
	int n = 0;

	if (!s)
		return;
	n = descendants(s->pid, procs, n);
	n = descendants(s->backend, procs, n);
	ws_stop_pid(s->pid);
	ws_stop_pid(s->backend);
	/* The server ends what it started; make sure (orphans are ours now). */
	for (int i = 0; i < n; i++) {
		if (!wait_gone(procs[i], 1000))
			ws_stop_pid(procs[i]);
	}
	if (getenv("PW_KEEP_TMP")) {
		fprintf(stderr, "kept %s\n", s->dir);
		free(s->dir);
	} else {
		th_rmtree(s->dir); /* frees the path */
	}
	free(s->http.project);
	free(s->bin);
	free(s);
}

static void dump_file(const char *dir, const char *name)
{
	char *path = ws_asprintf("%s/%s", dir, name);
	char *text = th_read(path);
	if (text)
		fprintf(stderr, "---- %s ----\n%s\n---- end ----\n", path, text);
	free(text);
	free(path);
}

void ws_dump_logs(ws_server *s)
{
	if (!s)
		return;
	fprintf(stderr, "==== logs of %s ====\n", ws_name(s->kind));
	dump_file(s->dir, "server.out");
	dump_file(s->dir, "error.log");
	dump_file(s->dir, "backend.log");
}

/* --- SSE ---------------------------------------------------------------------- */

typedef struct sse_ctx {
	ws_stream *st;
	long long t0;
} sse_ctx;

static size_t sse_data(char *ptr, size_t size, size_t n, void *ud)
{
	sse_ctx *c = ud;
	ws_stream *st = c->st;
	size_t add = size * n;
	char *p = realloc(st->body, st->len + add + 1);
	if (!p)
		return 0;
	memcpy(p + st->len, ptr, add);
	st->len += add;
	p[st->len] = '\0';
	st->body = p;
	if (st->first_event_ms < 0 &&
	    (strncmp(st->body, "id:", 3) == 0 || strstr(st->body, "\nid:")))
		st->first_event_ms = ht_now_ms() - c->t0;
	return add;
}

ws_stream *ws_sse(ws_server *s, const char *path, const char *last_event_id)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hl = NULL;
	ws_stream *st = calloc(1, sizeof *st);
	char *lei = NULL;

	if (!c || !st)
		fail_msg("out of memory");
	st->first_event_ms = -1;
	sse_ctx ctx = {st, ht_now_ms()};
	char *url = ws_asprintf("%s%s", s->http.base, path);
	hl = curl_slist_append(hl, "Accept: text/event-stream");
	if (last_event_id) {
		lei = ws_asprintf("Last-Event-ID: %s", last_event_id);
		hl = curl_slist_append(hl, lei);
	}
	if (!hl)
		fail_msg("out of memory");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sse_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &ctx);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	curl_easy_setopt(c, CURLOPT_USERNAME, s->http.user);
	curl_easy_setopt(c, CURLOPT_PASSWORD, s->http.password);
	CURLcode rc = curl_easy_perform(c);
	st->total_ms = ht_now_ms() - ctx.t0;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &st->status);
	char *ct = NULL;
	curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
	st->content_type = ct ? strdup(ct) : NULL;
	if (!st->body)
		st->body = strdup("");
	assert_non_null(st->body);
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	free(lei);
	free(url);
	if (rc != CURLE_OK) {
		fprintf(stderr, "GET %s (SSE) got so far: %.2000s\n", path, st->body);
		ws_stream_free(st);
		fail_msg("GET %s (SSE): curl: %s", path, curl_easy_strerror(rc));
	}
	return st;
}

void ws_stream_free(ws_stream *st)
{
	if (!st)
		return;
	free(st->content_type);
	free(st->body);
	free(st);
}
