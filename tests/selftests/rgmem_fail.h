/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Fault injection for rgmem's selftests: /proc/thread-self/fail-nth armed
 * so that the n-th allocation a call reaches fails, whatever its GFP flags
 * and order, and nothing else does. setup_fault_injection() saves every
 * setting it changes, and they are restored at exit or on SIGTERM/SIGINT.
 *
 * Needs the debug kernel's CONFIG_FAILSLAB, CONFIG_FAIL_PAGE_ALLOC and
 * CONFIG_FAULT_INJECTION_DEBUG_FS.
 */
#ifndef RGMEM_FAIL_H
#define RGMEM_FAIL_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"
#include "rgmem_test.h"

#define FAIL_NTH	"/proc/thread-self/fail-nth"
#define FAILSLAB	"/sys/kernel/debug/failslab"
#define FAIL_PAGE	"/sys/kernel/debug/fail_page_alloc"

/*
 * A fault injection setting: what this test writes to it (NULL: nothing,
 * but injections change it) and what it held before. Set in this order
 * and restored in reverse, so that random failures are off (probability
 * 0) before sleeping and order-0 allocations become eligible, and stay
 * off until they are exempt again.
 *
 * fail-nth takes precedence over probability, interval, times, space and
 * task-filter: should_fail_ex() fails the n-th eligible call before it
 * looks at any of them. Only the per-capability filters come first:
 * failslab's ignore-gfp-wait (default Y: GFP_KERNEL never fails) and
 * cache-filter, fail_page_alloc's ignore-gfp-wait, ignore-gfp-highmem and
 * min-order (default 1: order-0 pages never fail). times need not be -1,
 * but each injection decrements it unless it is, so it is restored too.
 */
static struct knob {
	const char *path;
	const char *val;
	char old[32];
	bool saved;
} knobs[] = {
	{ FAILSLAB "/probability", "0" },
	{ FAILSLAB "/verbose", "0" },
	{ FAILSLAB "/times", NULL },
	{ FAILSLAB "/cache-filter", "N" },
	{ FAILSLAB "/ignore-gfp-wait", "N" },
	{ FAIL_PAGE "/probability", "0" },
	{ FAIL_PAGE "/verbose", "0" },
	{ FAIL_PAGE "/times", NULL },
	{ FAIL_PAGE "/min-order", "0" },
	{ FAIL_PAGE "/ignore-gfp-highmem", "N" },
	{ FAIL_PAGE "/ignore-gfp-wait", "N" },
};

static int nth_fd = -1;

/* The whole of @path, NUL-terminated; the caller frees it. */
static inline char *read_all(const char *path)
{
	size_t size = 4096, len = 0;
	char *buf = malloc(size);
	ssize_t r;
	int fd;

	TEST_ASSERT(buf, "malloc");
	fd = open(path, O_RDONLY);
	TEST_ASSERT(fd >= 0, "open %s: %s", path, strerror(errno));
	for (;;) {
		if (size - len < 2) {
			size *= 2;
			buf = realloc(buf, size);
			TEST_ASSERT(buf, "realloc");
		}
		r = read(fd, buf + len, size - len - 1);
		TEST_ASSERT(r >= 0, "read %s: %s", path, strerror(errno));
		if (!r)
			break;
		len += r;
	}
	close(fd);
	buf[len] = '\0';
	return buf;
}

/* Writes @val to @path: 0 or the errno. */
static inline int write_str(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);
	ssize_t r;

	if (fd < 0)
		return errno;
	r = write(fd, val, strlen(val));
	if (r < 0)
		r = -errno;
	close(fd);
	return r < 0 ? -r : 0;
}

static inline void restore_knobs(void)
{
	int i, e;

	for (i = ARRAY_SIZE(knobs) - 1; i >= 0; i--) {
		if (!knobs[i].saved)
			continue;
		e = write_str(knobs[i].path, knobs[i].old);
		if (e)
			fprintf(stderr, "cannot restore %s to %s: %s\n",
				knobs[i].path, knobs[i].old, strerror(e));
	}
}

/* Killed, as by the runner's timeout: the settings still go back. */
static inline void on_term(int sig)
{
	restore_knobs();
	_exit(KSFT_FAIL);
}

/* Saves every setting, then makes fail-nth reach any allocation. */
static inline void setup_fault_injection(void)
{
	struct sigaction sa = { .sa_handler = on_term };
	struct knob *k;
	char *old;
	size_t n;
	int e;

	TEST_ASSERT(rgmem_is_dir(FAILSLAB) && rgmem_is_dir(FAIL_PAGE),
		    "No %s or %s: not the debug kernel (CONFIG_FAILSLAB, CONFIG_FAIL_PAGE_ALLOC, CONFIG_FAULT_INJECTION_DEBUG_FS)",
		    FAILSLAB, FAIL_PAGE);
	for (k = knobs; k < knobs + ARRAY_SIZE(knobs); k++) {
		old = read_all(k->path);
		n = strcspn(old, "\n");
		TEST_ASSERT(n && n < sizeof(k->old), "%s reads '%s'", k->path,
			    old);
		memcpy(k->old, old, n);
		k->old[n] = '\0';
		free(old);
	}
	atexit(restore_knobs);
	TEST_ASSERT(!sigaction(SIGTERM, &sa, NULL) &&
		    !sigaction(SIGINT, &sa, NULL), "sigaction: %s",
		    strerror(errno));
	for (k = knobs; k < knobs + ARRAY_SIZE(knobs); k++) {
		/* Restore even what was left half written. */
		k->saved = true;
		if (!k->val)
			continue;
		e = write_str(k->path, k->val);
		TEST_ASSERT(!e, "write %s to %s: %s", k->val, k->path,
			    strerror(e));
	}
	nth_fd = open(FAIL_NTH, O_RDWR);
	TEST_ASSERT(nth_fd >= 0, "open %s: %s", FAIL_NTH, strerror(errno));
}

/*
 * Sets this thread's fail-nth. The write itself reaches no injection
 * point once the count is set, so the next one is the ioctl's.
 */
static inline void fail_nth_set(unsigned int n)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "%u", n);

	TEST_ASSERT(pwrite(nth_fd, buf, len, 0) == len, "write %s: %s",
		    FAIL_NTH, strerror(errno));
}

/* 0 if the armed fault was injected, else how many points were left. */
static inline unsigned int fail_nth_get(void)
{
	char buf[16] = {}, *end;
	unsigned long v;
	ssize_t r;

	r = pread(nth_fd, buf, sizeof(buf) - 1, 0);
	TEST_ASSERT(r > 0, "read %s: %s", FAIL_NTH, strerror(errno));
	v = strtoul(buf, &end, 10);
	TEST_ASSERT(end != buf && *end == '\n', "%s reads '%s'", FAIL_NTH,
		    buf);
	return v;
}

#endif /* RGMEM_FAIL_H */
