/*
 * serve.c - `pipewright server start`: runs lighttpd (mod_fastcgi starting
 * pipewright.fcgi) and pipewright-runner as children in the foreground. The lighttpd configuration, the FastCGI
 * socket and an empty document root live in a fresh runtime directory,
 * $XDG_RUNTIME_DIR (else $TMPDIR, else /tmp)/pipewright-XXXXXX, mode 0700,
 * removed on exit: short enough for a unix socket path, private to the
 * user, and nothing is written into the project but its database and logs.
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


#ifndef PW_BINDIR
#define PW_BINDIR "/usr/local/bin"
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
static char *find_own_program(const char *name, const char *subdir)
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

/* The lighttpd configuration of one server. malloc'd, or NULL. */
static char *lighttpd_conf(const char *dir, const char *bind_to, int port,
			   const char *fcgi, const pw_project *p)
{
	return pw_asprintf(
		"# Written by `pipewright server start`; removed when it stops.\n"
		"server.document-root = \"%s/www\"\n"
		"server.bind = \"%s\"\n"
		"server.port = %d\n"
		"server.upload-dirs = ( \"%s\" )\n"
		"server.modules += ( \"mod_fastcgi\" )\n"
		"server.stream-response-body = 2\n"
		"server.max-request-field-size = 65535\n"
		/*
		 * Slow clients: more connections than the default (a third of
		 * 4096 fds), and a client that stops sending its request is
		 * dropped after 10 s (not 60); docs/hosting.md.
		 */
		"server.max-fds = 16384\n"
		"server.max-connections = 8192\n"
		"server.max-read-idle = 10\n"
		"server.max-keep-alive-idle = 5\n"
		/* lighttpd's own refusals (411, ...) in the JSON envelope */
		"server.error-handler = \"/__pipewright/error\"\n"
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
		")))\n",
		dir, bind_to, port, dir, fcgi, dir, p->root, p->env, p->conf_source);
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

/* Prints how a child ended ("exited with status 1", "killed by signal 9"). */
static void say_ended(const char *name, int status)
{
	if (WIFEXITED(status))
		fprintf(stderr, "pipewright: %s exited with status %d\n", name,
			WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		fprintf(stderr, "pipewright: %s was killed by signal %d (%s)\n", name,
			WTERMSIG(status), strsignal(WTERMSIG(status)));
}

/* The children of a running server; a pid is 0 once reaped. */
typedef struct serve_kids {
	pid_t lighttpd;
	pid_t runner;
	const char *fcgi;  /* realpath of pipewright.fcgi */
} serve_kids;

/*
 * We are a child subreaper: a pipewright.fcgi whose lighttpd ended (even
 * by SIGKILL) is now our child. Sends it SIGTERM; reap_kids reaps it.
 */
static void stop_orphans(const serve_kids *k)
{
	char path[64], exe[PATH_MAX];
	snprintf(path, sizeof path, "/proc/self/task/%ld/children", (long)getpid());
	FILE *f = fopen(path, "r");
	long pid;
	while (f && fscanf(f, "%ld", &pid) == 1) {
		snprintf(path, sizeof path, "/proc/%ld/exe", pid);
		ssize_t n = readlink(path, exe, sizeof exe - 1);
		if (n > 0 && (exe[n] = '\0', strcmp(exe, k->fcgi) == 0))
			kill((pid_t)pid, SIGTERM);
	}
	if (f)
		fclose(f);
}

/* Sends sig to every child still alive. */
static void signal_kids(const serve_kids *k, int sig)
{
	if (k->lighttpd > 0)
		kill(k->lighttpd, sig);
	if (k->runner > 0)
		kill(k->runner, sig);
}

/*
 * Reaps ended children. Returns the number reaped; *died names the first
 * one that ended with stopping false (for the message).
 */
static int reap_kids(serve_kids *k, bool stopping, bool *died)
{
	int status, n = 0;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		const char *name = NULL;
		if (pid == k->lighttpd) {
			k->lighttpd = 0;
			name = "lighttpd";
			stop_orphans(k);
		} else if (pid == k->runner) {
			k->runner = 0;
			name = "the runner";
		} else {
			continue;
		}
		n++;
		if (!stopping) {
			say_ended(name, status);
			*died = true;
		}
	}
	return n;
}

/*
 * Waits until lighttpd accepts connections. Returns 0; -1 when it ended
 * (reaped, message printed); 1 when a stop signal came first.
 */
static int wait_listening(serve_kids *k, struct in_addr addr, int port, const sigset_t *set)
{
	struct timespec tick = {0, 50 * 1000 * 1000};
	bool died = false;
	for (int i = 0; i < START_SECONDS * 20; i++) {
		if (port_answers(addr, port))
			return 0;
		reap_kids(k, false, &died);
		if (died)
			return -1;
		int sig = sigtimedwait(set, NULL, &tick);
		if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP)
			return 1;
	}
	fprintf(stderr, "pipewright: lighttpd does not accept connections after %d s\n",
		START_SECONDS);
	return -1;
}

/*
 * Runs until a stop signal (forwarded as SIGTERM; a second one SIGKILLs)
 * or until a child ends (then the other is stopped). Returns the exit
 * status: 0 after a clean stop on a signal, 1 otherwise.
 */
static int supervise(serve_kids *k, const sigset_t *set, bool stopping)
{
	bool died = false, killed = false;
	time_t deadline = stopping ? time(NULL) + STOP_GRACE_SECONDS : 0;
	for (;;) {
		bool was = died;
		reap_kids(k, stopping, &died);
		if (died && !was && !stopping) {
			if (k->lighttpd > 0 || k->runner > 0)
				fprintf(stderr, "pipewright: stopping the %s\n",
					k->lighttpd > 0 ? "web server" : "runner");
			stopping = true;
			deadline = time(NULL) + STOP_GRACE_SECONDS;
			signal_kids(k, SIGTERM);
		}
		if (k->lighttpd <= 0 && k->runner <= 0)
			break;
		if (stopping && time(NULL) >= deadline && !killed) {
			fprintf(stderr, "pipewright: still running after %d s, killing\n",
				STOP_GRACE_SECONDS);
			signal_kids(k, SIGKILL);
			killed = true;
		}
		struct timespec tick = {1, 0};
		int sig = sigtimedwait(set, NULL, &tick);
		if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
			if (stopping) {
				signal_kids(k, SIGKILL);
				killed = true;
			} else {
				fprintf(stderr, "pipewright: stopping\n");
				signal_kids(k, SIGTERM);
				stopping = true;
				deadline = time(NULL) + STOP_GRACE_SECONDS;
			}
		}
	}
	return died || killed ? 1 : 0;
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
	char *dir = NULL, *conf = NULL, *text = NULL, *www = NULL;
	char port_s[16], bind_to[INET_ADDRSTRLEN];
	serve_kids kids = {.fcgi = fcgi};
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
	if (!conf_safe(p->root) || !conf_safe(p->env) || !conf_safe(p->conf_source) ||
	    !conf_safe(fcgi)) {
		fprintf(stderr, "pipewright: the project path, environment, conf source and "
				"pipewright.fcgi path must not contain '\"', '\\', '$' or control "
				"characters\n");
		goto out;
	}
	if (pw_mkdirs_for(p->database) != 0) {
		fprintf(stderr, "pipewright: cannot create the folder of %s: %s\n", p->database,
			strerror(errno));
		goto out;
	}
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
	text = lighttpd_conf(dir, bind_to, port, fcgi, p);
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
	if ((kids.lighttpd = spawn(web_argv, &old)) < 0) {
		fprintf(stderr, "pipewright: fork: %s\n", strerror(errno));
		goto out;
	}
	int started = wait_listening(&kids, addr, port, &set);
	if (started < 0) {
		fprintf(stderr, "pipewright: the web server did not start (port %d busy? "
				"see its messages above)\n", port);
		signal_kids(&kids, SIGTERM);
		supervise(&kids, &set, true);
		goto out;
	}
	if (started == 0) {
		char *run_argv[] = {runner, "--project", p->root, "--env", p->env,
				    "--conf-source", p->conf_source, NULL};
		if ((kids.runner = spawn(run_argv, &old)) < 0) {
			fprintf(stderr, "pipewright: fork: %s\n", strerror(errno));
			signal_kids(&kids, SIGTERM);
			supervise(&kids, &set, true);
			goto out;
		}
		printf("pipewright: serving %s at http://%s:%d/ (lighttpd pid %ld, runner pid "
		       "%ld)\n", p->root, host, port, (long)kids.lighttpd,
		       (long)kids.runner);
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
	free(text);
	free(www);
	free(conf);
	free(dir);
	free(lighttpd);
	free(runner);
	free(fcgi);
	return rc;
}

