/*
 * sseflood.c - opens many event streams at once and checks what the
 * server answers (used by tests/server_start.sh; built by make check).
 *
 *   sseflood URL N
 *
 * Starts N concurrent GET URL/api/v1/events with Accept: text/event-stream
 * (libcurl multi, no connection limit), and while they are answered asks
 * URL/api/v1/health again and again on a connection of its own (the
 * first health request goes out before the streams). A stream that opens
 * (200) is held open until the end; every other answer must be a 503 in
 * the JSON envelope ("code": "unavailable") with Retry-After. Health must
 * answer 200 every time, at least once while attempts are still
 * unanswered. Once every attempt has been answered or opened, and health
 * has answered at least 3 times, it prints its counts and exits 0 when
 * every rule held, 1 otherwise (printing the first few breaches); 77
 * (skip) when the file descriptor limit cannot be raised above N. Every
 * attempt gets WAIT_S seconds at most: one still unanswered then is a
 * breach (no time is asserted otherwise).
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>

#define WAIT_S 120
#define HEALTH_MIN 3
#define BODY_MAX 4096
#define REPORT_MAX 5

typedef struct attempt {
	CURL *h;
	char body[BODY_MAX];
	size_t len;
	bool retry_after;
	bool json;
	bool done;      /* answered (or failed) */
	bool open;      /* a 200 stream: its first bytes came */
} attempt;

static int breaches;

static void breach(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void breach(const char *fmt, ...)
{
	va_list ap;

	if (++breaches > REPORT_MAX)
		return;
	fprintf(stderr, "sseflood: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	attempt *a = arg;
	size_t len = size * n;

	if (len >= 12 && !strncasecmp(p, "Retry-After:", 12))
		a->retry_after = true;
	if (len >= 13 && !strncasecmp(p, "Content-Type:", 13) && memmem(p, len, "json", 4))
		a->json = true;
	return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	attempt *a = arg;
	size_t len = size * n, room = BODY_MAX - 1 - a->len;
	long status = 0;

	curl_easy_getinfo(a->h, CURLINFO_RESPONSE_CODE, &status);
	if (status == 200)
		a->open = true;
	memcpy(a->body + a->len, p, len < room ? len : room);
	a->len += len < room ? len : room;
	a->body[a->len] = '\0';
	return len;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Checks a finished attempt's answer; 200 streams that ended count too. */
static void judge(attempt *a, CURLcode res)
{
	long status = 0;

	curl_easy_getinfo(a->h, CURLINFO_RESPONSE_CODE, &status);
	a->done = true;
	if (status == 200 && a->open)
		return;
	if (res != CURLE_OK && status == 0) {
		breach("a stream attempt failed: %s", curl_easy_strerror(res));
		return;
	}
	if (status != 503 || !a->json || !a->retry_after ||
	    !strstr(a->body, "\"code\":\"unavailable\""))
		breach("answer not a JSON 503 with Retry-After: %.200s (status %ld)", a->body,
		       status);
}

int main(int argc, char **argv)
{
	if (argc != 3 || atoi(argv[2]) <= 0) {
		fprintf(stderr, "usage: sseflood URL N\n");
		return 2;
	}
	const char *base = argv[1];
	int n = atoi(argv[2]), settled = 0, running = 0, health_ok = 0, health_bad = 0;
	int opened = 0, refused = 0, health_during = 0;
	struct rlimit fds;
	char url[1024], hurl[1024];
	attempt *at = calloc((size_t)n, sizeof *at), health = {0};
	struct curl_slist *hdr = curl_slist_append(NULL, "Accept: text/event-stream");
	CURLM *m;

	if (getrlimit(RLIMIT_NOFILE, &fds) != 0 || fds.rlim_max < (rlim_t)n + 64) {
		printf("sseflood: the file descriptor limit is below %d: skipped\n", n + 64);
		return 77;
	}
	fds.rlim_cur = fds.rlim_max;
	setrlimit(RLIMIT_NOFILE, &fds);
	snprintf(url, sizeof url, "%s/api/v1/events", base);
	snprintf(hurl, sizeof hurl, "%s/api/v1/health", base);
	if (!at || !hdr || curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || !(m = curl_multi_init())) {
		fprintf(stderr, "sseflood: out of memory\n");
		return 2;
	}
	curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, 0L);
	curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
	for (int i = -1; i < n; i++) {
		attempt *a = i < 0 ? &health : &at[i];
		if (!(a->h = curl_easy_init())) {
			fprintf(stderr, "sseflood: out of memory\n");
			return 2;
		}
		curl_easy_setopt(a->h, CURLOPT_URL, i < 0 ? hurl : url);
		curl_easy_setopt(a->h, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(a->h, CURLOPT_HEADERDATA, a);
		curl_easy_setopt(a->h, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(a->h, CURLOPT_WRITEDATA, a);
		curl_easy_setopt(a->h, CURLOPT_PRIVATE, a);
		curl_easy_setopt(a->h, CURLOPT_NOPROXY, "*");
		curl_easy_setopt(a->h, CURLOPT_FORBID_REUSE, 1L);
		curl_easy_setopt(a->h, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(a->h, CURLOPT_CONNECTTIMEOUT, (long)WAIT_S);
		if (i >= 0)
			curl_easy_setopt(a->h, CURLOPT_HTTPHEADER, hdr);
		else
			curl_easy_setopt(a->h, CURLOPT_TIMEOUT, (long)WAIT_S);
		curl_multi_add_handle(m, a->h);
	}

	double deadline = now_s() + WAIT_S;
	for (;;) {
		CURLMsg *msg;
		int left;

		curl_multi_perform(m, &running);
		while ((msg = curl_multi_info_read(m, &left)) != NULL) {
			attempt *a;
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&a);
			CURLcode res = msg->data.result;
			curl_multi_remove_handle(m, a->h);
			if (a == &health) {
				long status = 0;
				curl_easy_getinfo(a->h, CURLINFO_RESPONSE_CODE, &status);
				if (res == CURLE_OK && status == 200) {
					health_ok++;
					health_during += settled < n;
				} else {
					health_bad++;
					breach("health answered %s (status %ld) during the flood",
					       res == CURLE_OK ? "not 200" : curl_easy_strerror(res),
					       status);
				}
				health.len = 0;
				if (health_ok + health_bad < 1000)
					curl_multi_add_handle(m, a->h);
				continue;
			}
			judge(a, res);
		}
		settled = opened = refused = 0;
		for (int i = 0; i < n; i++) {
			settled += at[i].done || at[i].open;
			opened += at[i].open;
			refused += at[i].done && !at[i].open;
		}
		if ((settled == n && health_ok + health_bad >= HEALTH_MIN) || now_s() > deadline)
			break;
		curl_multi_poll(m, NULL, 0, 200, NULL);
	}
	if (settled < n)
		breach("%d attempts neither answered nor opened in time", n - settled);
	if (health_ok + health_bad < HEALTH_MIN)
		breach("health answered only %d times", health_ok + health_bad);
	if (health_during == 0)
		breach("health never answered while attempts were unanswered");
	printf("sseflood: %d attempts: %d streams opened, %d refused; health answered 200 "
	       "%d times (%d during the flood), otherwise %d times; %d breaches\n",
	       n, opened, refused, health_ok, health_during, health_bad, breaches);
	for (int i = 0; i < n; i++) {
		if (!at[i].done)
			curl_multi_remove_handle(m, at[i].h);
		curl_easy_cleanup(at[i].h);
	}
	if (health_ok + health_bad < 1000)
		curl_multi_remove_handle(m, health.h);
	curl_easy_cleanup(health.h);
	curl_multi_cleanup(m);
	curl_slist_free_all(hdr);
	free(at);
	curl_global_cleanup();
	return breaches ? 1 : 0;
}
