/*
 * testhelp.h - helpers shared by the unit tests: a scratch folder per test
 * and files written into it. Every helper fails the test (cmocka's fail_msg)
 * instead of returning an error.
 */
#ifndef PW_TESTHELP_H
#define PW_TESTHELP_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

/* Creates a fresh folder under $TMPDIR (or /tmp); malloc'd absolute path. */
char *th_mkdtemp(void);
/* Removes a folder and everything below it, then frees the path. */
void th_rmtree(char *dir);
/* Writes text to dir/relpath, creating the folders in between. */
void th_write(const char *dir, const char *relpath, const char *text);
/* malloc'd contents of a file, or NULL when it does not exist. */
char *th_read(const char *path);
/* The source tree (PW_SRCDIR from make check, else "."). */
const char *th_srcdir(void);

#endif
