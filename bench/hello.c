/*
 * hello.c - the FastCGI baseline of bench/api: the least a libfcgi program
 * can do per request.
 *
 * Started by lighttpd (mod_fastcgi "bin-path"), so the listening socket is
 * fd 0, like pipewright.fcgi. HELLO_THREADS threads (default 16, the default
 * of pipewright.fcgi) each accept with FCGX_Accept_r, as pipewright.fcgi
 * does, and answer every request with the same fixed JSON body of
 * HELLO_BYTES bytes (default 100; bench/api sets it to the size of the
 * /api/v1/health body). No routing, no database, no JSON library.
 *
 *     cc -O2 -o hello bench/hello.c -lfcgi -lpthread
 */
#include <fcgiapp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char reply[8192];
static int reply_len;

static void *worker(void *arg)
{
	FCGX_Request r;

	(void)arg;
	if (FCGX_InitRequest(&r, 0, 0) != 0)
		return NULL;
	while (FCGX_Accept_r(&r) >= 0) {
		FCGX_PutStr(reply, reply_len, r.out);
		FCGX_Finish_r(&r);
	}
	return NULL;
}

/* An env number in 1..max, else def. */
static int env_int(const char *name, int def, int max)
{
	const char *s = getenv(name);
	int v = s ? atoi(s) : 0;
	return v >= 1 && v <= max ? v : def;
}

int main(void)
{
	int threads = env_int("HELLO_THREADS", 16, 256);
	int bytes = env_int("HELLO_BYTES", 100, 4096);
	static const char head[] = "{\"data\":{\"status\":\"ok\",\"pad\":\"";
	static const char tail[] = "\"},\"error\":null}";
	char body[4200];
	int fixed = (int)(sizeof head - 1 + sizeof tail - 1);

	if (bytes < fixed)
		bytes = fixed;
	int pad = bytes - fixed;
	memcpy(body, head, sizeof head - 1);
	memset(body + sizeof head - 1, 'x', (size_t)pad);
	memcpy(body + sizeof head - 1 + pad, tail, sizeof tail - 1);
	reply_len = snprintf(reply, sizeof reply,
			     "Status: 200 OK\r\nContent-Type: application/json\r\n"
			     "Content-Length: %d\r\n\r\n%.*s",
			     bytes, bytes, body);

	if (FCGX_Init() != 0) {
		fprintf(stderr, "hello: FCGX_Init failed\n");
		return 1;
	}
	pthread_t *tid = calloc((size_t)threads, sizeof *tid);
	if (!tid)
		return 1;
	for (int i = 1; i < threads; i++)
		if (pthread_create(&tid[i], NULL, worker, NULL) != 0) {
			fprintf(stderr, "hello: pthread_create failed\n");
			return 1;
		}
	worker(NULL);   /* the main thread is the first worker */
	return 0;
}
