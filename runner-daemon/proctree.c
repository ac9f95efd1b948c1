/*
 * proctree.c - the processes below a shim, from /proc (launch.h).
 *
 * A shim is a child subreaper, so every process its task starts stays
 * below it, even one that left the task's process group and session with
 * setsid (a daemon): when its parent exits it becomes the shim's child.
 * This lists them, so that the shim can say in the log what the task
 * left behind and pass a cancel's SIGTERM on to those outside the group.
 * Only system calls, malloc and snprintf: no stdio stream.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "launch.h"

/* One process of /proc: pid, parent, process group. */
typedef struct proc_row {
	pid_t pid, ppid, pgid;
} proc_row;

/*
 * Reads the parent and process group of pid (fields 4 and 5 of
 * /proc/PID/stat, after the command in parentheses). Returns 0 or -1.
 */
static int read_stat(pid_t pid, proc_row *row)
{
	char path[64], buf[1024];
	snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n;
	while ((n = read(fd, buf, sizeof buf - 1)) < 0 && errno == EINTR)
		;
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || !p[2] || p[3] != ' ')
		return -1;
	char *end;
	long ppid = strtol(p + 4, &end, 10);
	if (*end != ' ')
		return -1;
	long pgid = strtol(end + 1, &end, 10);
	if (*end != ' ')
		return -1;
	*row = (proc_row){pid, (pid_t)ppid, (pid_t)pgid};
	return 0;
}

/* Appends row to *v (of *n, room *cap). Returns 0 or -1. */
static int rows_push(proc_row **v, size_t *n, size_t *cap, proc_row row)
{
	if (pw_grow(v, *n, cap, sizeof **v, 256) != 0)
		return -1;
	(*v)[(*n)++] = row;
	return 0;
}

/* Every process of /proc. Returns 0 or -1. */
static int all_procs(proc_row **v, size_t *n)
{
	size_t cap = 0;
	DIR *d = opendir("/proc");
	struct dirent *e;
	*v = NULL;
	*n = 0;
	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		proc_row row;
		if (*end || pid <= 0 || read_stat((pid_t)pid, &row) != 0)
			continue; /* not a process, or gone meanwhile */
		if (rows_push(v, n, &cap, row) != 0) {
			closedir(d);
			free(*v);
			*v = NULL;
			return -1;
		}
	}
	closedir(d);
	return 0;
}

int pw_descendants(pid_t root, pw_procs *out)
{
	proc_row *all;
	size_t n, cap = 0;
	out->v = NULL;
	out->n = 0;
	if (all_procs(&all, &n) != 0)
		return -1;
	/* Breadth first: the children of root, then of each one found. */
	proc_row *found = NULL;
	size_t n_found = 0;
	int rc = 0;
	pid_t parent = root;
	for (size_t head = 0;; head++) {
		for (size_t i = 0; i < n && rc == 0; i++)
			if (all[i].ppid == parent && all[i].pid != root)
				rc = rows_push(&found, &n_found, &cap, all[i]);
		if (rc != 0 || head >= n_found)
			break;
		parent = found[head].pid;
	}
	free(all);
	if (rc != 0) {
		free(found);
		return -1;
	}
	out->v = malloc((n_found ? n_found : 1) * sizeof *out->v);
	if (!out->v) {
		free(found);
		return -1;
	}
	for (size_t i = 0; i < n_found; i++)
		out->v[i] = (pw_proc){found[i].pid, found[i].pgid};
	out->n = n_found;
	free(found);
	return 0;
}

void pw_procs_free(pw_procs *p)
{
	free(p->v);
	p->v = NULL;
	p->n = 0;
}
