/*
 * serve.c - `pipewright server start`: runs lighttpd (mod_fastcgi starting
 * pipewright.fcgi) and pipewright-runner as children in the foreground and
 * supervises them: a child that dies, even by SIGKILL, is started again
 * after 1 s, doubling up to 30 s while it keeps dying (reset once it has run
 * a minute), each restart logged with its cause; only SIGINT/SIGTERM (or
 * SIGHUP) stop everything. The lighttpd configuration, the FastCGI
 * socket and an empty document root live in a fresh runtime directory,
 * $XDG_RUNTIME_DIR (else $TMPDIR, else /tmp)/pipewright-XXXXXX, mode 0700,
 * removed on exit: short enough for a unix socket path, private to the
 * user, and nothing is written into the project but its database and logs.
 * lighttpd serves the www folder itself (find_www: /ui/, /docs,
 * /openapi.json; "/" redirects to /ui/); every other URL goes to
 * pipewright.fcgi.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"
#include "store.h"


#ifndef PW_BINDIR
#define PW_BINDIR "/usr/local/bin"
#endif
#ifndef PW_WWWDIR
#define PW_WWWDIR "/usr/local/share/pipewright/www"
#endif

/* How long the children get to stop after SIGTERM before SIGKILL. */
#define STOP_GRACE_SECONDS 10
/* How long lighttpd gets to start listening. */
#define START_SECONDS 10

/* The signals the parent handles synchronously (blocked, sigtimedwait). */
static void server_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGCHLD);
}

/*
 * A host lighttpd can bind: an IPv4 literal, or "localhost" (127.0.0.1).
 * Fills addr; returns 0 or -1.
 */
static int parse_host(const char *host, struct in_addr *addr)
{
	if (strcmp(host, "localhost") == 0)
		host = "127.0.0.1";
	return inet_pton(AF_INET, host, addr) == 1 ? 0 : -1;
}

/* A port number 1..65535, or -1. */
static int parse_port(const char *s)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > 65535)
		return -1;
	return (int)v;
}

/* Whether s can go inside a lighttpd "..." string unescaped. */
static bool conf_safe(const char *s)
{
	for (; *s; s++)
		if (*s == '"' || *s == '\\' || *s == '$' || (unsigned char)*s < 0x20)
			return false;
	return true;
}

/* The directory of the running executable (malloc'd), or NULL. */
static char *exe_dir(void)
{
	char buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	char *slash = strrchr(buf, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	return strdup(buf[0] ? buf : "/");
}

/*
 * Finds one of our programs: beside this executable (installed, also under
 * DESTDIR), in the build tree (<exe>/../<subdir>/<name>), or in PW_BINDIR.
 * Returns a malloc'd path, or NULL.
 */
char *find_own_program(const char *name, const char *subdir)
{
	char *dir = exe_dir();
	char *cand[3] = {
		dir ? pw_asprintf("%s/%s", dir, name) : NULL,
		dir ? pw_asprintf("%s/../%s/%s", dir, subdir, name) : NULL,
		pw_asprintf("%s/%s", PW_BINDIR, name),
	};
	char *found = NULL;
	for (size_t i = 0; i < 3; i++) {
		if (!found && cand[i] && access(cand[i], X_OK) == 0) {
			found = realpath(cand[i], NULL);
		}
		free(cand[i]);
	}
	free(dir);
	return found;
}

/*
 * The www folder (/ui/, /docs, /openapi.json): $PIPEWRIGHT_WWW, else the
 * build tree's (<exe>/../www), else an install beside this executable
 * (<exe>/../share/pipewright/www, also under DESTDIR), else PW_WWWDIR.
 * A folder counts when it holds docs/index.html. malloc'd, or NULL.
 */
static char *find_www(void)
{
	const char *env = getenv("PIPEWRIGHT_WWW");
	if (env && *env)
		return realpath(env, NULL);
	char *dir = exe_dir();
	char *cand[3] = {
		dir ? pw_asprintf("%s/../www", dir) : NULL,
		dir ? pw_asprintf("%s/../share/pipewright/www", dir) : NULL,
		pw_asprintf("%s", PW_WWWDIR),
	};
	char *found = NULL;
	for (size_t i = 0; i < 3; i++) {
		char *index = !found && cand[i] ? pw_asprintf("%s/docs/index.html", cand[i])
						: NULL;
		if (index && access(index, R_OK) == 0)
			found = realpath(cand[i], NULL);
		free(index);
		free(cand[i]);
	}
	free(dir);
	return found;
}

/* lighttpd: $PIPEWRIGHT_LIGHTTPD, else on $PATH or in an sbin. malloc'd or NULL. */
static char *find_lighttpd(void)
{
	const char *env = getenv("PIPEWRIGHT_LIGHTTPD");
	if (env && *env)
		return access(env, X_OK) == 0 ? strdup(env) : NULL;
	const char *path = getenv("PATH");
	char *dirs = pw_asprintf("%s:/usr/sbin:/usr/local/sbin:/sbin", path ? path : "");
	char *found = NULL, *save = NULL;
	for (char *d = dirs ? strtok_r(dirs, ":", &save) : NULL; d && !found;
	     d = strtok_r(NULL, ":", &save)) {
		char *cand = pw_asprintf("%s/lighttpd", *d ? d : ".");
		if (cand && access(cand, X_OK) == 0)
			found = cand;
		else
			free(cand);
	}
	free(dirs);
	return found;
}

/* Can we bind host:port now? Returns 0, or an errno value. */
static int port_available(struct in_addr addr, int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, rc = 0;
	if (fd < 0)
		return errno;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr = addr};
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
		rc = errno;
	close(fd);
	return rc;
}

/* Does host:port accept a connection (0.0.0.0 is tried as 127.0.0.1)? */
static bool port_answers(struct in_addr addr, int port)
{
	if (addr.s_addr == htonl(INADDR_ANY))
		addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr = addr};
	bool ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	close(fd);
	return ok;
}

/* Writes text to path (mode 0600). Returns 0 or -1 with errno set. */
static int write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return -1;
	int rc = fputs(text, f) < 0 ? -1 : 0;
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

/*
 * The lighttpd configuration of one server. Static files come from www
 * (aliases; "/" redirects to /ui/); every other URL goes to
 * pipewright.fcgi. malloc'd, or NULL.
 */
static char *lighttpd_conf(const char *dir, const char *bind_to, int port,
			   const char *fcgi, const char *www, const pw_project *p)
{
	return pw_asprintf(
		"# Written by `pipewright server start`; removed when it stops.\n"
		"server.document-root = \"%s/www\"\n"
		"server.bind = \"%s\"\n"
		"server.port = %d\n"
		"server.upload-dirs = ( \"%s\" )\n"
		"server.modules += ( \"mod_alias\", \"mod_redirect\", \"mod_fastcgi\" )\n"
		"server.stream-response-body = 2\n"
		"server.max-request-field-size = 65535\n"
		/*
		 * Slow clients: more connections than the default (a third of
		 * 4096 fds), and a client that stops sending its request is
		 * dropped after 10 s (not 60); fewer connections than
		 * pipewright.fcgi's backlog (4096), so lighttpd never finds
		 * it full (docs/hosting.md, "Floods of event streams").
		 */
		"server.max-fds = 16384\n"
		"server.max-connections = 4000\n"
		"server.max-read-idle = 10\n"
		"server.max-keep-alive-idle = 5\n"
		/* lighttpd's own refusals (411, ...) in the JSON envelope */
		"server.error-handler = \"/__pipewright/error\"\n"
		"index-file.names = ( \"index.html\" )\n"
		"mimetype.assign = ( \".html\" => \"text/html; charset=utf-8\",\n"
		"  \".js\" => \"text/javascript; charset=utf-8\",\n"
		"  \".css\" => \"text/css; charset=utf-8\",\n"
		"  \".json\" => \"application/json\", \".svg\" => \"image/svg+xml\",\n"
		"  \".png\" => \"image/png\", \".txt\" => \"text/plain; charset=utf-8\",\n"
		"  \"\" => \"application/octet-stream\" )\n"
		"url.redirect = ( \"^/$\" => \"/ui/\" )\n"
		"url.redirect-code = 302\n"
		"alias.url = ( \"/ui/\" => \"%s/ui/\", \"/docs/\" => \"%s/docs/\",\n"
		"  \"/docs\" => \"%s/docs/index.html\",\n"
		"  \"/openapi.json\" => \"%s/openapi.json\" )\n"
		"$HTTP[\"url\"] !~ \"^(/$|/ui/|/docs/|/docs$|/openapi\\.json$)\" {\n"
		"fastcgi.server = ( \"/\" => ((\n"
		"  \"bin-path\" => \"%s\",\n"
		"  \"socket\" => \"%s/fcgi.sock\",\n"
		"  \"check-local\" => \"disable\",\n"
		"  \"fix-root-scriptname\" => \"enable\",\n"
		"  \"max-procs\" => 1,\n"
		"  \"bin-environment\" => (\n"
		"    \"PIPEWRIGHT_PROJECT_PATH\" => \"%s\",\n"
		"    \"PIPEWRIGHT_ENV\" => \"%s\",\n"
		"    \"PIPEWRIGHT_CONF_SOURCE\" => \"%s\",\n"
		"  ),\n"
		")))\n"
		"}\n",
		dir, bind_to, port, dir, www, www, www, www, fcgi, dir, p->root, p->env,
		p->conf_source);
}

/* nftw callback of remove_tree. */
static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((type == FTW_DP ? rmdir(path) : unlink(path)) != 0)
		fprintf(stderr, "pipewright: cannot remove %s: %s\n", path, strerror(errno));
	return 0;
}

/* rm -rf dir (the runtime directory). */
static void remove_tree(const char *dir)
{
	nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/*
 * Starts argv[0] as a child with the default signal mask and handlers, in
 * its own process group (so a terminal's Ctrl-C reaches only us and we
 * decide the order), dying with us. Returns its pid, or -1.
 */
static pid_t spawn(char *const argv[], const sigset_t *oldmask)
{
	fflush(NULL);
	pid_t parent = getpid(), pid = fork();
	if (pid != 0)
		return pid;
	setpgid(0, 0);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	sigprocmask(SIG_SETMASK, oldmask, NULL);
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
		_exit(127);
	execv(argv[0], argv);
	fprintf(stderr, "pipewright: cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* "exited with status 1", "was killed by signal 9 (Killed)" into buf. */
static void ended_text(int status, char *buf, size_t len)
{
	if (WIFSIGNALED(status))
		snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
}

static long long mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* One supervised child: how to start it, and when to start it again. */
typedef struct serve_kid {
	const char *name;     /* "lighttpd", "the runner" */
	char **argv;
	pid_t pid;            /* 0: not running */
	long long started_ms; /* CLOCK_MONOTONIC of its last start */
	long long due_ms;     /* when to start it again; 0: not waiting */
	int delay_s;          /* the delay after its next death */
	int status;           /* its last wait status */
} serve_kid;

enum { KID_WEB, KID_RUNNER, KIDS };

/* The children of a running server. */
typedef struct serve_kids {
	serve_kid kid[KIDS];
	const char *fcgi;      /* realpath of pipewright.fcgi */
	const sigset_t *old;   /* the signal mask children get */
} serve_kids;

/* Restart delays: 1 s, doubling to RESTART_MAX_S; back to 1 s after a
 * child has run RESTART_RESET_S. */
#define RESTART_MAX_S 30
#define RESTART_RESET_S 60

/*
 * We are a child subreaper: a pipewright.fcgi whose lighttpd ended (even
 * by SIGKILL) is now our child. Sends it SIGTERM; reap_kids reaps it.
 * Returns how many there were, children on their way out (whose exe is
 * gone already) included.
 */
static int stop_orphans(const serve_kids *k)
{
	int n = 0;
	char path[64], exe[PATH_MAX];
	snprintf(path, sizeof path, "/proc/self/task/%ld/children", (long)getpid());
	FILE *f = fopen(path, "r");
	long pid;
	while (f && fscanf(f, "%ld", &pid) == 1) {
		snprintf(path, sizeof path, "/proc/%ld/exe", pid);
		ssize_t len = readlink(path, exe, sizeof exe - 1);
		if (len <= 0) {
			n++;  /* exiting (no exe any more), not yet reapable */
		} else if (exe[len] = '\0', strcmp(exe, k->fcgi) == 0) {
			kill((pid_t)pid, SIGTERM);
			n++;
		}
	}
	if (f)
		fclose(f);
	return n;
}

/* Sends sig to every child still alive. */
static void signal_kids(const serve_kids *k, int sig)
{
	for (int i = 0; i < KIDS; i++)
		if (k->kid[i].pid > 0)
			kill(k->kid[i].pid, sig);
}

/* Starts kid c now. Returns 0, or -1 (fork failed; said why). */
static int kid_start(serve_kids *k, serve_kid *c)
{
	c->due_ms = 0;
	c->started_ms = mono_ms();
	if ((c->pid = spawn(c->argv, k->old)) < 0) {
		fprintf(stderr, "pipewright: cannot start %s: fork: %s\n", c->name,
			strerror(errno));
		c->pid = 0;
		return -1;
	}
	return 0;
}

/*
 * Kid c ended with status at now: says so and, unless stopping, when it
 * will be started again (the delay doubles while it keeps dying young).
 */
static void kid_ended(serve_kid *c, int status, bool stopping, long long now)
{
	char how[96];
	c->pid = 0;
	c->status = status;
	if (stopping)
		return;
	ended_text(status, how, sizeof how);
	if (now - c->started_ms >= RESTART_RESET_S * 1000LL || c->delay_s < 1)
		c->delay_s = 1;
	fprintf(stderr, "pipewright: %s %s; starting it again in %d s\n", c->name, how,
		c->delay_s);
	c->due_ms = now + c->delay_s * 1000LL;
	c->delay_s = c->delay_s * 2 > RESTART_MAX_S ? RESTART_MAX_S : c->delay_s * 2;
}

/* Reaps ended children (orphaned grandchildren too, as a subreaper). */
static void reap_kids(serve_kids *k, bool stopping)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (int i = 0; i < KIDS; i++) {
			if (pid != k->kid[i].pid)
				continue;
			kid_ended(&k->kid[i], status, stopping, mono_ms());
			if (i == KID_WEB)
				stop_orphans(k);
		}
	}
}

/*
 * Starts the children whose restart is due. A restart that cannot fork is
 * tried again after the next delay. Returns ms until the next one is due
 * (at most 1000).
 */
static long long restart_due(serve_kids *k)
{
	long long now = mono_ms(), wait = 1000;
	for (int i = 0; i < KIDS; i++) {
		serve_kid *c = &k->kid[i];
		if (c->pid != 0 || c->due_ms == 0)
			continue;
		if (c->due_ms <= now) {
			if (kid_start(k, c) == 0) {
				fprintf(stderr, "pipewright: %s started again (pid %ld)\n",
					c->name, (long)c->pid);
				continue;
			}
			c->due_ms = now + c->delay_s * 1000LL;
		}
		if (c->due_ms - now < wait)
			wait = c->due_ms - now;
	}
	return wait < 10 ? 10 : wait;
}

/*
 * Waits until lighttpd accepts connections. Returns 0; -1 when it ended
 * (reaped, message printed); 1 when a stop signal came first.
 */
static int wait_listening(serve_kids *k, struct in_addr addr, int port, const sigset_t *set)
{
	struct timespec tick = {0, 50 * 1000 * 1000};
	for (int i = 0; i < START_SECONDS * 20; i++) {
		if (port_answers(addr, port))
			return 0;
		reap_kids(k, true);
		if (k->kid[KID_WEB].pid == 0) {
			char how[96];
			ended_text(k->kid[KID_WEB].status, how, sizeof how);
			fprintf(stderr, "pipewright: lighttpd %s\n", how);
			return -1;
		}
		int sig = sigtimedwait(set, NULL, &tick);
		if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP)
			return 1;
	}
	fprintf(stderr, "pipewright: lighttpd does not accept connections after %d s\n",
		START_SECONDS);
	return -1;
}

/*
 * Runs until a stop signal (forwarded as SIGTERM; a second one, or
 * STOP_GRACE_SECONDS, SIGKILLs): a child that ends meanwhile is started
 * again after its delay. With stopping, only waits for the children to
 * end. Returns the exit status: 0 after a clean stop, 1 when a child had
 * to be killed.
 */
static int supervise(serve_kids *k, const sigset_t *set, bool stopping)
{
	bool killed = false;
	long long deadline = stopping ? mono_ms() + STOP_GRACE_SECONDS * 1000LL : 0;
	for (;;) {
		reap_kids(k, stopping);
		long long wait = stopping ? 50 : restart_due(k);
		/*
		 * Done when lighttpd, the runner and their pipewright.fcgi are
		 * gone and reaped: else, once we exit, a late one would be left
		 * for init.
		 */
		if (stopping && k->kid[KID_WEB].pid <= 0 && k->kid[KID_RUNNER].pid <= 0 &&
		    (killed || stop_orphans(k) == 0))
			break;
		if (stopping && mono_ms() >= deadline && !killed) {
			fprintf(stderr, "pipewright: still running after %d s, killing\n",
				STOP_GRACE_SECONDS);
			signal_kids(k, SIGKILL);
			killed = true;
		}
		struct timespec tick = {wait / 1000, (wait % 1000) * 1000000};
		int sig = sigtimedwait(set, NULL, &tick);
		if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
			if (stopping) {
				signal_kids(k, SIGKILL);
				killed = true;
			} else {
				fprintf(stderr, "pipewright: stopping\n");
				signal_kids(k, SIGTERM);
				stopping = true;
				deadline = mono_ms() + STOP_GRACE_SECONDS * 1000LL;
			}
		}
	}
	return killed ? 1 : 0;
}

/* Checks host and port; prints why not. Returns 0 or -1. */
static int check_address(const char *host, const char *port_text, struct in_addr *addr,
			 int *port)
{
	if (parse_host(host, addr) != 0) {
		fprintf(stderr, "pipewright: --host must be an IPv4 address or localhost, "
				"not '%s'\n", host);
		return -1;
	}
	if ((*port = parse_port(port_text)) < 0) {
		fprintf(stderr, "pipewright: --port must be 1..65535, not '%s'\n", port_text);
		return -1;
	}
	if ((ntohl(addr->s_addr) >> 24) != 127)
		fprintf(stderr, "pipewright: warning: listening on %s, beyond this machine: "
				"there is no authentication (see README, Security)\n",
			host);
	int e = port_available(*addr, *port);
	if (e) {
		fprintf(stderr, "pipewright: cannot listen on %s:%d: %s%s\n", host, *port,
			strerror(e),
			e == EADDRINUSE ? " (another server? choose one with --port)" : "");
		return -1;
	}
	return 0;
}

/* The runtime directory (malloc'd, created 0700), or NULL. */
static char *make_runtime_dir(void)
{
	const char *base = getenv("XDG_RUNTIME_DIR");
	if (!base || !*base || access(base, W_OK) != 0)
		base = getenv("TMPDIR");
	if (!base || !*base || access(base, W_OK) != 0)
		base = "/tmp";
	char *dir = pw_asprintf("%s/pipewright-XXXXXX", base);
	if (!dir || !mkdtemp(dir)) {
		fprintf(stderr, "pipewright: cannot create a directory in %s: %s\n", base,
			strerror(errno));
		free(dir);
		return NULL;
	}
	return dir;
}

int pw_serve_start(const pw_project *p, const char *host, const char *port_text)
{
	struct in_addr addr;
	int port, rc = 1;
	if (check_address(host, port_text, &addr, &port) != 0)
		return 1;

	char *fcgi = find_own_program("pipewright.fcgi", "fcgi");
	char *runner = find_own_program("pipewright-runner", "runner-daemon");
	char *lighttpd = find_lighttpd();
	char *files = find_www();
	char *dir = NULL, *conf = NULL, *text = NULL, *www = NULL;
	char port_s[16], bind_to[INET_ADDRSTRLEN];
	serve_kids kids = {.fcgi = fcgi};
	pw_store *store = NULL;
	char *err = NULL;
	sigset_t set, old;
	bool masked = false;

	if (!fcgi || !runner || !lighttpd) {
		fprintf(stderr, "pipewright: cannot find %s\n",
			!fcgi ? "pipewright.fcgi (beside pipewright or in " PW_BINDIR ")"
			: !runner ? "pipewright-runner (beside pipewright or in " PW_BINDIR ")"
				  : "lighttpd (install it: apt-get install lighttpd; or set "
				    "PIPEWRIGHT_LIGHTTPD)");
		goto out;
	}
	if (!files) {
		fprintf(stderr, "pipewright: warning: no www folder (%s, or set PIPEWRIGHT_WWW): "
				"/ui/, /docs and /openapi.json will answer 404\n", PW_WWWDIR);
		if (!(files = strdup(PW_WWWDIR))) {
			perror("pipewright");
			goto out;
		}
	}
	if (!conf_safe(p->root) || !conf_safe(p->env) || !conf_safe(p->conf_source) ||
	    !conf_safe(fcgi) || !conf_safe(files)) {
		fprintf(stderr, "pipewright: the project path, environment, conf source, "
				"pipewright.fcgi and www paths must not contain '\"', '\\', '$' or "
				"control characters\n");
		goto out;
	}
	if (pw_mkdirs_for(p->database) != 0) {
		fprintf(stderr, "pipewright: cannot create the folder of %s: %s\n", p->database,
			strerror(errno));
		goto out;
	}
	/* The API never creates the database: it must exist before lighttpd. */
	if (pw_store_open(p->database, &store, &err) != PW_OK) {
		fprintf(stderr, "pipewright: %s\n", err);
		goto out;
	}
	pw_store_close(store);
	if (!(dir = make_runtime_dir()))
		goto out;
	/* sun_path holds 108 bytes; lighttpd appends "-N" to the socket name. */
	if (strlen(dir) + sizeof "/fcgi.sock-000" > sizeof ((struct sockaddr_un *)0)->sun_path ||
	    !conf_safe(dir)) {
		fprintf(stderr, "pipewright: runtime directory %s: path too long or unsafe "
				"(set TMPDIR)\n", dir);
		goto out;
	}
	inet_ntop(AF_INET, &addr, bind_to, sizeof bind_to);
	snprintf(port_s, sizeof port_s, "%d", port);
	conf = pw_asprintf("%s/lighttpd.conf", dir);
	www = pw_asprintf("%s/www", dir);
	text = lighttpd_conf(dir, bind_to, port, fcgi, files, p);
	if (!conf || !www || !text || mkdir(www, 0700) != 0 || write_text(conf, text) != 0) {
		fprintf(stderr, "pipewright: cannot write %s: %s\n", conf ? conf : dir,
			strerror(errno));
		goto out;
	}

	server_signals(&set);
	if (sigprocmask(SIG_BLOCK, &set, &old) != 0) {
		perror("pipewright: sigprocmask");
		goto out;
	}
	masked = true;
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
		perror("pipewright: prctl(PR_SET_CHILD_SUBREAPER)");
	char *web_argv[] = {lighttpd, "-D", "-f", conf, NULL};
	char *run_argv[] = {runner, "--project", p->root, "--env", p->env,
			    "--conf-source", p->conf_source, NULL};
	kids.kid[KID_WEB] = (serve_kid){.name = "lighttpd", .argv = web_argv};
	kids.kid[KID_RUNNER] = (serve_kid){.name = "the runner", .argv = run_argv};
	kids.old = &old;
	if (kid_start(&kids, &kids.kid[KID_WEB]) != 0)
		goto out;
	int started = wait_listening(&kids, addr, port, &set);
	if (started < 0) {
		fprintf(stderr, "pipewright: the web server did not start (port %d busy? "
				"see its messages above)\n", port);
		signal_kids(&kids, SIGTERM);
		supervise(&kids, &set, true);
		goto out;
	}
	if (started == 0) {
		if (kid_start(&kids, &kids.kid[KID_RUNNER]) != 0) {
			signal_kids(&kids, SIGTERM);
			supervise(&kids, &set, true);
			goto out;
		}
		printf("pipewright: serving %s at http://%s:%d/ (lighttpd pid %ld, runner pid "
		       "%ld)\n", p->root, host, port, (long)kids.kid[KID_WEB].pid,
		       (long)kids.kid[KID_RUNNER].pid);
		printf("pipewright: press Ctrl-C to stop\n");
		fflush(stdout);
	} else {
		signal_kids(&kids, SIGTERM);
	}
	rc = supervise(&kids, &set, started != 0);
	if (rc == 0)
		printf("pipewright: stopped\n");
out:
	if (masked)
		sigprocmask(SIG_SETMASK, &old, NULL);
	if (dir)
		remove_tree(dir);
	free(err);
	free(text);
	free(www);
	free(conf);
	free(dir);
	free(files);
	free(lighttpd);
	free(runner);
	free(fcgi);
	return rc;
}

