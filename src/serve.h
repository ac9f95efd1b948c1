/*
 * serve.h - `pipewright server start`: lighttpd with pipewright.fcgi behind
 * it, and pipewright-runner beside it, in the foreground (serve.c).
 */
#ifndef PW_SERVE_H
#define PW_SERVE_H

#include "project.h"

/*
 * Serves project p at host:port (as given on the command line) until
 * SIGINT or SIGTERM, or until lighttpd or the runner dies. Prints the URL
 * and the pids. Returns the exit status: 0 after a clean stop, 1 otherwise.
 */
int pw_serve_start(const pw_project *p, const char *host, const char *port);

/*
 * One of our programs (pipewright-runner, pipewright.fcgi): beside this
 * executable, in the build tree (<exe>/../<subdir>/<name>), or in the
 * bindir. malloc'd path, or NULL.
 */
char *find_own_program(const char *name, const char *subdir);

#endif
