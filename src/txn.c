/* txn.c - the write queue and the busy handler; see txn.h. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "store.h"
#include "txn.h"

/* A thread waiting for its turn, on its own stack. */
typedef struct waiter {
	pthread_cond_t cv;
	bool granted;          /* the turn was handed to it */
	struct waiter *next;
} waiter;

static struct {
	pthread_mutex_t mu;
	bool held;
	waiter *head, *tail;   /* FIFO of waiters */
} queue = {.mu = PTHREAD_MUTEX_INITIALIZER};

static atomic_bool queue_on;

void pw_store_set_write_queue(bool on)
{
	atomic_store(&queue_on, on);
}

bool pw_txn_queue_on(void)
{
	return atomic_load(&queue_on);
}

static long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* Takes w out of the queue (it timed out). Under queue.mu. */
static void unlink_waiter(waiter *w)
{
	waiter **p = &queue.head, *prev = NULL;
	while (*p && *p != w) {
		prev = *p;
		p = &(*p)->next;
	}
	if (!*p)
		return;
	*p = w->next;
	if (queue.tail == w)
		queue.tail = prev;
}

void pw_txn_begin_wait(pw_txn_wait *w)
{
	w->since_us = now_us();
	w->in_begin = true;
}

int pw_txn_enter(const pw_txn_wait *wait)
{
	waiter w = {.granted = false, .next = NULL};
	pthread_condattr_t attr;
	struct timespec until;
	int rc = 0;
	long long left_us = wait ? wait->since_us + wait->timeout_ms * 1000LL - now_us() : 0;

	pthread_mutex_lock(&queue.mu);
	if (!queue.held && !queue.head) {
		queue.held = true;
		pthread_mutex_unlock(&queue.mu);
		return 0;
	}
	if (pthread_condattr_init(&attr) != 0) {
		pthread_mutex_unlock(&queue.mu);
		return -1;
	}
	bool ready = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
		     pthread_cond_init(&w.cv, &attr) == 0;
	pthread_condattr_destroy(&attr);
	if (!ready) {
		pthread_mutex_unlock(&queue.mu);
		return -1;
	}
	if (queue.tail)
		queue.tail->next = &w;
	else
		queue.head = &w;
	queue.tail = &w;
	clock_gettime(CLOCK_MONOTONIC, &until);
	if (left_us < 0)
		left_us = 0;
	until.tv_sec += left_us / 1000000;
	until.tv_nsec += (long)(left_us % 1000000) * 1000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (!w.granted) {
		int e = pthread_cond_timedwait(&w.cv, &queue.mu, &until);
		if (e == ETIMEDOUT && !w.granted) {
			unlink_waiter(&w);
			rc = -1;
			break;
		}
	}
	pthread_mutex_unlock(&queue.mu);
	pthread_cond_destroy(&w.cv);
	return rc;
}

void pw_txn_leave(void)
{
	pthread_mutex_lock(&queue.mu);
	waiter *w = queue.head;
	if (w) {
		/* Handed on: queue.held stays true, now for w. */
		queue.head = w->next;
		if (!queue.head)
			queue.tail = NULL;
		w->granted = true;
		pthread_cond_signal(&w->cv);
	} else {
		queue.held = false;
	}
	pthread_mutex_unlock(&queue.mu);
}

int pw_txn_busy(void *arg, int count)
{
	pw_txn_wait *wait = arg;
	long long now = now_us();

	if (count == 0 && !wait->in_begin)
		wait->since_us = now;
	long long left = wait->since_us + wait->timeout_ms * 1000LL - now;
	if (left <= 0)
		return 0;
	long long step = count < 20 ? 100 : count < 100 ? 500 : 2000;
	if (step > left)
		step = left;
	struct timespec ts = {0, (long)step * 1000L};
	nanosleep(&ts, NULL);
	return 1;
}
