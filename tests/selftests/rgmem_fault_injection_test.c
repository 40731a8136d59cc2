// SPDX-License-Identifier: GPL-2.0
/*
 * Allocation failures inside rgmem's in-place conversion.
 *
 * Every KVM_SET_MEMORY_ATTRIBUTES2 below is retried with the n-th fault
 * injection point its thread reaches failing, n = 1, 2, ..., until a call
 * reaches fewer than n points. /proc/thread-self/fail-nth arms a single
 * failure for this thread and tells whether it was injected; failslab and
 * fail_page_alloc are set so that any allocation may fail, sleeping ones
 * and order 0 included, and that nothing but fail-nth makes one fail.
 *
 * A call that fails must fail with ENOMEM, report the request's offset in
 * error_offset, and have changed nothing: rgmem's debugfs dump of the
 * file's shareability reads exactly as before, the host still reads each
 * shared page and still takes SIGBUS on each private one, and rgmem did
 * not count a conversion. A call that succeeds although a fault was
 * injected (a failure the kernel absorbed) must have converted: it is
 * checked as a success, undone, and the loop goes on. The call that
 * reaches no armed point ends the loop, and the dump must then show
 * exactly the runs the conversion made.
 *
 * The file starts fragmented: 64 shared pages, then every other page of
 * [16, 48) made private, one call each, without injection. WARNs and
 * kmemleak reports are the runner's to find in dmesg.
 *
 * This needs the debug kernel's CONFIG_FAILSLAB, CONFIG_FAIL_PAGE_ALLOC
 * and CONFIG_FAULT_INJECTION_DEBUG_FS, and fails (never skips) without
 * them or without rgmem; with kvm.vm_memory_attributes=Y it skips. The
 * fault injection settings it changes are restored at exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/compiler.h>
#include <linux/kvm.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"

#include "rgmem_kvm.h"
#include "rgmem_fail.h"

#define GPA		(1ULL << 32)
#define SLOT		10
#define NPAGES		64
#define PS		PAGE_SIZE
/* More points than any conversion reaches: the loop must end before. */
#define MAX_NTH		1000
/* In error_offset before each call: whatever rgmem copies back shows. */
#define UNTOUCHED	0x5eed5eed5eed5eedULL

#define DUMP		RGMEM_DEBUGFS "/shareability"

_Static_assert(sizeof(struct kvm_memory_attributes2) == 128,
	       "struct kvm_memory_attributes2 is 16 u64s");

/* The case's VM, guest_memfd, its inode and its host mapping. */
static struct kvm_vm *vm;
static int gmem_fd = -1;
static unsigned long long gmem_ino;
static uint8_t *gmem_mem;
/* The case number, part of each page's tag. */
static int case_nr;
/* Each page's attribute, as this test made it. */
static bool page_private[NPAGES];
/* What rgmem's conversions counter must read. */
static long long conversions;
/* Over all conversions: calls failed by an injection, absorbed ones. */
static unsigned int total_enomem, total_absorbed;

static sigjmp_buf sigbus_env;

static void on_sigbus(int sig)
{
	siglongjmp(sigbus_env, 1);
}

static void assert_conversions(const char *what)
{
	long long v = rgmem_read_counter("conversions");

	TEST_ASSERT(v == conversions,
		    "%s: rgmem counted %lld conversions, wanted %lld", what, v,
		    conversions);
}

/*
 * This file's lines of rgmem's shareability dump, in the dump's order;
 * the caller frees them. Every line of the dump, any file's, must be
 * "<ino> <first_page> <last_page> <shared|private>" exactly.
 */
static char *dump(void)
{
	char *all = read_all(DUMP), *out, *line, *nl;
	unsigned long long ino, first, last;
	char state[16], canon[128];
	size_t len = 0;
	int n, end;

	out = malloc(strlen(all) + 1);
	TEST_ASSERT(out, "malloc");
	for (line = all; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		TEST_ASSERT(nl, "%s: unterminated line '%s'", DUMP, line);
		*nl = '\0';
		end = -1;
		n = sscanf(line, "%llu %llu %llu %15s%n", &ino, &first, &last,
			   state, &end);
		snprintf(canon, sizeof(canon), "%llu %llu %llu %s", ino, first,
			 last, state);
		TEST_ASSERT(n == 4 && end == (int)strlen(line) &&
			    !strcmp(canon, line) && first <= last &&
			    (!strcmp(state, "shared") ||
			     !strcmp(state, "private")),
			    "%s: bad line '%s'", DUMP, line);
		if (ino != gmem_ino)
			continue;
		memcpy(out + len, line, nl - line);
		len += nl - line;
		out[len++] = '\n';
	}
	out[len] = '\0';
	free(all);
	return out;
}

/* The dump's lines for page_private[]: its maximal runs, in order. */
static char *expected_dump(void)
{
	size_t size = NPAGES * 64, len = 0;
	char *out = malloc(size);
	int first, last;

	TEST_ASSERT(out, "malloc");
	out[0] = '\0';
	for (first = 0; first < NPAGES; first = last + 1) {
		for (last = first; last + 1 < NPAGES; last++)
			if (page_private[last + 1] != page_private[first])
				break;
		len += snprintf(out + len, size - len, "%llu %d %d %s\n",
				gmem_ino, first, last,
				page_private[first] ? "private" : "shared");
	}
	return out;
}

static void assert_dump(const char *what)
{
	char *got = dump(), *want = expected_dump();

	TEST_ASSERT(!strcmp(got, want), "%s: %s shows\n%s  wanted\n%s", what,
		    DUMP, got, want);
	free(got);
	free(want);
}

/* What each page holds: written when the case starts, never changed. */
static uint64_t tag(int page)
{
	return 0x7267000000000000ULL | (uint64_t)case_nr << 16 | page;
}

/* Reads the first word of @page through the mapping: false on SIGBUS. */
static bool host_read(int page, uint64_t *val)
{
	uint64_t *p = (uint64_t *)(gmem_mem + page * PS);

	if (sigsetjmp(sigbus_env, 1))
		return false;
	*val = READ_ONCE(*p);
	return true;
}

/* The host reads each shared page's tag and takes SIGBUS on private ones. */
static void assert_host(const char *what)
{
	uint64_t val;
	int i;

	for (i = 0; i < NPAGES; i++) {
		val = 0;
		if (page_private[i]) {
			TEST_ASSERT(!host_read(i, &val),
				    "%s: private page %d read %#lx", what, i,
				    val);
			continue;
		}
		TEST_ASSERT(host_read(i, &val), "%s: shared page %d: SIGBUS",
			    what, i);
		TEST_ASSERT(val == tag(i), "%s: shared page %d reads %#lx, not %#lx",
			    what, i, val, tag(i));
	}
}

static struct kvm_memory_attributes2 attrs2(int first, int n, bool private)
{
	return (struct kvm_memory_attributes2){
		.offset = first * PS,
		.size = n * PS,
		.attributes = private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
		.error_offset = UNTOUCHED,
	};
}

/*
 * Records a successful conversion of @n pages from @first and checks what
 * rgmem shows of it; the ioctl left @a as @sent.
 */
static void converted(const char *what, int first, int n, bool private,
		      const struct kvm_memory_attributes2 *a,
		      const struct kvm_memory_attributes2 *sent)
{
	bool changes = false;
	int i;

	TEST_ASSERT(!memcmp(a, sent, sizeof(*a)),
		    "%s: a success copied the struct back (error_offset %#llx)",
		    what, a->error_offset);
	for (i = first; i < first + n; i++) {
		changes |= page_private[i] != private;
		page_private[i] = private;
	}
	/* rgmem counts the calls that change a page. */
	conversions += changes;
	assert_conversions(what);
	assert_dump(what);
}

/* Converts @n pages from @first, without injection. */
static void convert(int first, int n, bool private)
{
	struct kvm_memory_attributes2 a = attrs2(first, n, private), sent = a;
	char what[64];
	int e;

	snprintf(what, sizeof(what), "[%d, %d) to %s", first, first + n,
		 private ? "private" : "shared");
	e = rgmem_set_attributes2(gmem_fd, &a);
	TEST_ASSERT(!e, "%s: %s", what, strerror(e));
	converted(what, first, n, private, &a, &sent);
}

/*
 * Converts @n pages from @first with each injection point the call
 * reaches failing in turn, checking each failure, until a call reaches
 * no armed point.
 */
static void convert_injected(int first, int n, bool private)
{
	bool was[NPAGES];
	unsigned int nth, left, enomem = 0, absorbed = 0;
	char what[96], *before, *after;
	int e, i, j;

	for (nth = 1;; nth++) {
		struct kvm_memory_attributes2 a = attrs2(first, n, private);
		struct kvm_memory_attributes2 sent = a;

		snprintf(what, sizeof(what), "[%d, %d) to %s, fail-nth %u",
			 first, first + n, private ? "private" : "shared", nth);
		TEST_ASSERT(nth <= MAX_NTH,
			    "%s: the conversion never succeeds", what);
		memcpy(was, page_private, sizeof(was));
		before = dump();
		assert_dump(what);

		/* Nothing but the ioctl between arming and reading back. */
		fail_nth_set(nth);
		e = rgmem_set_attributes2(gmem_fd, &a);
		left = fail_nth_get();
		fail_nth_set(0);

		if (e) {
			TEST_ASSERT(!left, "%s: failed (%s) with no fault injected, %u points short",
				    what, strerror(e), left);
			TEST_ASSERT(e == ENOMEM, "%s: failed with %s, not ENOMEM",
				    what, strerror(e));
			TEST_ASSERT(a.error_offset == sent.offset,
				    "%s: error_offset %#llx, not the offset %#llx",
				    what, a.error_offset, sent.offset);
			sent.error_offset = sent.offset;
			TEST_ASSERT(!memcmp(&a, &sent, sizeof(a)),
				    "%s: copied back more than error_offset",
				    what);
			after = dump();
			TEST_ASSERT(!strcmp(before, after),
				    "%s: a failure changed %s from\n%s  to\n%s",
				    what, DUMP, before, after);
			free(after);
			free(before);
			assert_conversions(what);
			assert_host(what);
			enomem++;
			continue;
		}
		free(before);
		converted(what, first, n, private, &a, &sent);
		assert_host(what);
		if (left) {
			ksft_print_msg("[%d, %d) to %s: %u injection points, %u failures, %u absorbed\n",
				       first, first + n,
				       private ? "private" : "shared",
				       nth - left, enomem, absorbed);
			break;
		}

		/* The kernel absorbed the failure: undo, go on. */
		absorbed++;
		for (i = first; i < first + n; i++) {
			if (was[i] == private)
				continue;
			for (j = i; j < first + n && was[j] != private; j++)
				;
			convert(i, j - i, !private);
			i = j;
		}
		TEST_ASSERT(!memcmp(was, page_private, sizeof(was)),
			    "%s: undoing went wrong", what);
		assert_dump(what);
	}
	total_enomem += enomem;
	total_absorbed += absorbed;
}

/*
 * A fresh VM and 64-page INIT_SHARED guest_memfd, mapped by the host and
 * bound to a memslot through that mapping, every page faulted in and
 * tagged, then every other page of [16, 48) made private.
 */
static void case_begin(int nr)
{
	const uint64_t size = NPAGES * PS;
	long long files_created = rgmem_read_counter("files_created");
	struct stat st;
	int i;

	case_nr = nr;
	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	gmem_fd = vm_create_guest_memfd(vm, size, GUEST_MEMFD_FLAG_MMAP |
					GUEST_MEMFD_FLAG_INIT_SHARED);
	TEST_ASSERT(rgmem_read_counter("files_created") == files_created + 1,
		    "The guest_memfd is not rgmem's");
	TEST_ASSERT(!fstat(gmem_fd, &st), "fstat: %s", strerror(errno));
	gmem_ino = st.st_ino;
	gmem_mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
			gmem_fd, 0);
	TEST_ASSERT(gmem_mem != MAP_FAILED, "mmap: %s", strerror(errno));
	vm_set_user_memory_region2(vm, SLOT, KVM_MEM_GUEST_MEMFD, GPA, size,
				   gmem_mem, gmem_fd, 0);

	for (i = 0; i < NPAGES; i++) {
		WRITE_ONCE(*(uint64_t *)(gmem_mem + i * PS), tag(i));
		page_private[i] = false;
	}
	assert_dump("fresh file");
	assert_host("fresh file");
	for (i = 16; i < 48; i += 2)
		convert(i, 1, true);
	assert_host("fragmented");
}

static void case_end(void)
{
	kvm_vm_free(vm);
	munmap(gmem_mem, NPAGES * PS);
	close(gmem_fd);
	vm = NULL;
	gmem_mem = NULL;
	gmem_fd = -1;
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_sigbus };
	long long start;

	ksft_print_header();
	rgmem_require_gmem_attributes();
	TEST_ASSERT(!sigaction(SIGBUS, &sa, NULL), "sigaction: %s",
		    strerror(errno));
	setup_fault_injection();
	ksft_set_plan(5);
	start = conversions = rgmem_read_counter("conversions");

	case_begin(1);
	convert_injected(8, 32, true);
	case_end();
	ksft_test_result_pass("several fragments to private\n");

	case_begin(2);
	convert_injected(20, 24, false);
	case_end();
	ksft_test_result_pass("several fragments to shared\n");

	case_begin(3);
	convert_injected(4, 1, true);
	case_end();
	ksft_test_result_pass("a page in a shared run to private\n");

	case_begin(4);
	convert_injected(0, NPAGES, true);
	convert_injected(0, NPAGES, false);
	case_end();
	ksft_test_result_pass("the whole file to private and back\n");

	ksft_print_msg("%u calls failed with ENOMEM, %u absorbed a failure, rgmem counted %lld conversions\n",
		       total_enomem, total_absorbed, conversions - start);
	ksft_test_result(total_enomem > 0,
			 "an injected failure failed a conversion\n");
	ksft_finished();
}
