// SPDX-License-Identifier: GPL-2.0
/*
 * Races around in-place conversion of rgmem's guest_memfd, with the memory
 * attributes held by the guest_memfd (kvm.vm_memory_attributes=0).
 *
 * One 512-page file, created shared (GUEST_MEMFD_FLAG_MMAP |
 * GUEST_MEMFD_FLAG_INIT_SHARED) and mapped MAP_SHARED by the host, is bound
 * at GPA 4G of a SW_PROTECTED VM with that mapping as the memslot's
 * userspace_addr.  For a fixed time, threads do the following at once:
 * - two converters: KVM_SET_MEMORY_ATTRIBUTES2 of random ranges (a page, a
 *   short run, a naturally aligned chunk, the whole file) to random states,
 *   retrying EAGAIN (some page of the range is referenced) for a while;
 * - a writer: stamps shared pages through the host's mapping, and expects
 *   SIGBUS from private ones;
 * - a reader: maps the file afresh again and again, checks pages through
 *   that mapping, zaps parts of it with MADV_DONTNEED, unmaps it;
 * - a puncher: PUNCH_HOLE of short ranges, which empties pages but keeps
 *   their state;
 * - two vCPUs (the main thread and one more): the guest checks and stamps
 *   a page of either state, which KVM faults in as private (rgmem's
 *   get_pfn) or as shared (GUP of the host's mapping);
 * - chaos: unchecked reads of random pages through the host's mapping and
 *   through GUP (process_vm_readv), which fault pages in and hold transient
 *   references while the others convert and punch them.
 *
 * The checked threads share a model: each page's state and the 64-bit
 * sequence number in its first 8 bytes (0: the page reads as zeroes).  A
 * checked operation locks the model of the pages it covers, in ascending
 * order, does its operation, checks the result against the model and
 * updates the model.  The chaos thread only reads and takes no lock, so the
 * model stays exact.
 *
 * With -H, the file is one 2 MiB page of the hugetlb pool instead, created
 * private: every conversion to shared splits it, every one back merges it
 * when no page is shared any more, and the puncher punches the whole file,
 * which may get EBUSY (a piece held elsewhere) and then changes nothing.
 * With -G, it is one 1 GiB page, which splits to 2 MiB and further only
 * where pages become shared; conversions keep to its first 8 MiB, and
 * three in four of the other threads' picks fall there, so that pages
 * there are shared and private again often.  The final
 * check then covers every page the test wrote or shared, and one in 64 of
 * the others.
 *
 * At the end every page is checked once more, and rgmem's debugfs counters
 * show that rgmem served the file, converted, punched and took both kinds
 * of faults.  A hugetlb file's first 2 MiB are then shared and made private
 * again alone, which must split and merge them: under TCG a race on a
 * 1 GiB file may convert too seldom to merge anything.  The test fails
 * (never skips) when rgmem is not loaded; with vm_memory_attributes=Y it
 * skips.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <linux/compiler.h>
#include <linux/falloc.h>
#include <linux/kvm.h>

#include "kselftest.h"
#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"

#include "rgmem_kvm.h"

#define GPA		(1ULL << 32)
#define SLOT		10
#define NPAGES		512
#define NPAGES_1G	(1U << 18)
/* -G: where three picks in four fall, four 2 MiB sub-blocks. */
#define HOT_PAGES	2048
#define PS		((uint64_t)PAGE_SIZE)
#define NR_VCPUS	2
/* KVM_SET_MEMORY_ATTRIBUTES2 calls per conversion before it gives up. */
#define EAGAIN_TRIES	100
#define DEFAULT_SECONDS	20
/* Pages the chaos thread reads at once. */
#define CHAOS_PAGES	4

/* What a vCPU's guest does on its next run: gpa 0 says it is done. */
struct guest_op {
	uint64_t gpa;
	uint64_t expected;
	uint64_t new;
};

static struct guest_op ops[NR_VCPUS];

/*
 * Checks that the first 8 bytes at ops[@id].gpa hold ops[@id].expected,
 * writes ops[@id].new.
 */
static void guest_code(uint64_t id)
{
	for (;;) {
		struct guest_op *op = &ops[id];
		uint64_t gpa = READ_ONCE(op->gpa);
		uint64_t expected = READ_ONCE(op->expected);
		uint64_t *p = (uint64_t *)gpa;
		uint64_t val;

		if (!gpa)
			GUEST_DONE();
		val = READ_ONCE(*p);
		__GUEST_ASSERT(val == expected,
			       "gpa %#lx holds %#lx, expected %#lx",
			       gpa, val, expected);
		WRITE_ONCE(*p, READ_ONCE(op->new));
		GUEST_SYNC(gpa);
	}
}

/* What the checked threads know of each page; see lock_pages(). */
struct page_model {
	pthread_mutex_t lock;
	bool shared;
	/* The sequence number in the page's first 8 bytes. */
	uint64_t value;
};

static struct page_model *model;

/* -H, -G: the file is one hugetlb page of this size; splits and merges are counted. */
static uint64_t huge_size;
static bool hugetlb;
/* The file's pages, and its size. */
static uint64_t npages = NPAGES;
static uint64_t gmem_size = NPAGES * PS;

static struct kvm_vm *vm;
static struct kvm_vcpu *vcpus[NR_VCPUS];
static int gmem_fd;
/* The host's mapping of the file, also the memslot's userspace_addr. */
static uint8_t *gmem_mem;
static uint64_t deadline_ns;
/* The last sequence number handed out. */
static uint64_t seq;

/* One thread's state and what it did. */
struct worker {
	const char *name;
	void (*fn)(struct worker *w);
	pthread_t thread;
	uint64_t rng;
	/* Operations done; each kind of thread counts its own extras. */
	uint64_t ops;
	/* Host accesses that raised SIGBUS (expected, or ignored by chaos). */
	uint64_t sigbuses;
	/* Converters: EAGAIN results, and conversions given up after them. */
	uint64_t eagains;
	uint64_t giveups;
	/*
	 * Converters: conversions to private of ranges the model says have a
	 * shared page, and how many of them succeeded.
	 */
	uint64_t to_private;
	uint64_t to_private_ok;
	/* Reader: mappings made, MADV_DONTNEED calls. */
	uint64_t maps;
	uint64_t madvises;
	/* vCPU: runs on private pages. */
	uint64_t privates;
	/* Chaos: reads by GUP. */
	uint64_t gups;
	/* vCPU workers: the vCPU. */
	struct kvm_vcpu *vcpu;
	/* When the current operation began, and the slowest one so far. */
	uint64_t op_start_ns;
	uint64_t slowest_ns;
};

/*
 * SIGBUS from the host's accesses to private pages.  The handler is the
 * process's; whether a SIGBUS may come, and where it returns to, are the
 * faulting thread's own.
 */
static __thread sigjmp_buf sigbus_env;
static __thread bool sigbus_armed;
static __thread void *sigbus_addr;
static __thread const char *thread_name = "main";

static void say(const char *s)
{
	ssize_t r = write(STDERR_FILENO, s, strlen(s));

	(void)r;
}

static void say_hex(uint64_t v)
{
	static const char digits[] = "0123456789abcdef";
	char buf[19];
	int i;

	buf[0] = '0';
	buf[1] = 'x';
	for (i = 0; i < 16; i++)
		buf[2 + i] = digits[(v >> (60 - 4 * i)) & 0xf];
	buf[18] = '\0';
	say(buf);
}

/* An access that no one guarded raised SIGBUS: fail, async-signal-safely. */
static void __noreturn unexpected_sigbus(void *addr)
{
	uint64_t a = (uint64_t)(uintptr_t)addr;

	say("FAIL: unexpected SIGBUS in thread ");
	say(thread_name);
	say(" at ");
	say_hex(a);
	if (a - (uint64_t)(uintptr_t)gmem_mem < gmem_size) {
		say(", guest_memfd page ");
		say_hex((a - (uint64_t)(uintptr_t)gmem_mem) / PS);
	}
	say("\n");
	_exit(KSFT_FAIL);
}

static void on_sigbus(int sig, siginfo_t *info, void *ctx)
{
	if (!READ_ONCE(sigbus_armed))
		unexpected_sigbus(info->si_addr);
	WRITE_ONCE(sigbus_armed, false);
	sigbus_addr = info->si_addr;
	siglongjmp(sigbus_env, 1);
}

static void check_sigbus_addr(void *p)
{
	TEST_ASSERT((uintptr_t)sigbus_addr / PS == (uintptr_t)p / PS,
		    "%s: SIGBUS at %p while accessing %p", thread_name,
		    sigbus_addr, p);
}

/*
 * Reads *@p into *@val: false, or true (*@val untouched) if the read raised
 * SIGBUS.  Nothing the caller can see is written between sigsetjmp() and a
 * siglongjmp(), so no local needs to be volatile.
 */
static bool probe_read(uint64_t *p, uint64_t *val)
{
	if (sigsetjmp(sigbus_env, 1)) {
		check_sigbus_addr(p);
		return true;
	}
	WRITE_ONCE(sigbus_armed, true);
	*val = READ_ONCE(*p);
	WRITE_ONCE(sigbus_armed, false);
	return false;
}

/* Writes @val to *@p: false, or true if the write raised SIGBUS. */
static bool probe_write(uint64_t *p, uint64_t val)
{
	if (sigsetjmp(sigbus_env, 1)) {
		check_sigbus_addr(p);
		return true;
	}
	WRITE_ONCE(sigbus_armed, true);
	WRITE_ONCE(*p, val);
	WRITE_ONCE(sigbus_armed, false);
	return false;
}

static uint64_t *page_ptr(uint8_t *mem, uint64_t page)
{
	return (uint64_t *)(mem + page * PS);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

static bool time_is_up(void)
{
	return now_ns() >= deadline_ns;
}

/* xorshift64*: each thread has its own generator. */
static uint64_t rnd(struct worker *w)
{
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return (w->rng * 0x2545f4914f6cdd1dULL) >> 11;
}

static uint64_t rnd_below(struct worker *w, uint64_t n)
{
	return rnd(w) % n;
}

/*
 * The pages a pick may start at: all, or in a 1 GiB file mostly the first
 * HOT_PAGES, so that its pages are shared, punched and converted back
 * often enough to split and merge it.
 */
static uint64_t pick_limit(struct worker *w)
{
	return npages > NPAGES && rnd_below(w, 4) ? HOT_PAGES : npages;
}

/* The first page of a random run of @n pages. */
static uint64_t rnd_first(struct worker *w, uint64_t n)
{
	return rnd_below(w, pick_limit(w) - n + 1);
}

/* Sleeps between @min_us and @max_us: the vCPU needs a CPU too. */
static void nap(struct worker *w, unsigned int min_us, unsigned int max_us)
{
	usleep(min_us + rnd_below(w, max_us - min_us + 1));
}

static uint64_t next_seq(void)
{
	return __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
}

static void op_begin(struct worker *w)
{
	w->op_start_ns = now_ns();
}

/* Counts an operation, and keeps the slowest: where a run's time went. */
static void op_end(struct worker *w)
{
	uint64_t t = now_ns() - w->op_start_ns;

	if (t > w->slowest_ns)
		w->slowest_ns = t;
	w->ops++;
}

/*
 * Every checked operation locks the pages it covers from the lowest up,
 * so that operations on overlapping ranges cannot deadlock.
 */
static void lock_pages(uint64_t first, uint64_t n)
{
	uint64_t i;

	for (i = first; i < first + n; i++)
		pthread_mutex_lock(&model[i].lock);
}

static void unlock_pages(uint64_t first, uint64_t n)
{
	uint64_t i;

	for (i = first + n; i > first; i--)
		pthread_mutex_unlock(&model[i - 1].lock);
}

/*
 * Checks locked @page through the host's mapping @mem: a shared page holds
 * the model's value, a private one raises SIGBUS.  Whether it did.
 */
static bool host_check_page(uint8_t *mem, uint64_t page)
{
	struct page_model *m = &model[page];
	uint64_t val = 0;
	bool bus = probe_read(page_ptr(mem, page), &val);

	if (m->shared) {
		TEST_ASSERT(!bus, "%s: shared page %lu: read raised SIGBUS",
			    thread_name, page);
		TEST_ASSERT(val == m->value,
			    "%s: shared page %lu holds %#lx, expected %#lx",
			    thread_name, page, val, m->value);
	} else {
		TEST_ASSERT(bus,
			    "%s: private page %lu: read without SIGBUS, got %#lx",
			    thread_name, page, val);
	}
	return bus;
}

/* The guest's copy of @vcpu's operation. */
static struct guest_op *guest_op_of(struct kvm_vcpu *vcpu)
{
	return addr_gva2hva(vm, (vm_vaddr_t)&ops[vcpu->id]);
}

/*
 * A triple fault. The guest's code, stack and page tables live in memslot
 * 0, outside the guest_memfd, so no guest_memfd state can cause one: it is
 * the known TCG flake, reported in upstream's wording, which
 * tcg_flake_guard.sh retries. The RIP says which of its two kinds it was.
 */
static void report_shutdown(struct kvm_vcpu *vcpu, uint64_t page)
{
	struct kvm_regs regs;

	vcpu_regs_get(vcpu, &regs);
	TEST_FAIL("page %lu: got exit reason: 8 (SHUTDOWN), guest RIP %#llx",
		  page, regs.rip);
}

/*
 * The guest on @vcpu checks that locked @page holds @expected and writes
 * @new, whatever the page's state.
 */
static void guest_rmw(struct kvm_vcpu *vcpu, uint64_t page, uint64_t expected,
		      uint64_t new)
{
	struct guest_op *op = guest_op_of(vcpu);
	struct kvm_run *run = vcpu->run;
	struct ucall uc;
	int r;

	WRITE_ONCE(op->gpa, GPA + page * PS);
	WRITE_ONCE(op->expected, expected);
	WRITE_ONCE(op->new, new);

	r = _vcpu_run(vcpu);
	TEST_ASSERT(!r,
		    "%s page %lu: KVM_RUN: %s, exit reason %u (%s), memory fault flags %#llx gpa %#llx size %#llx",
		    model[page].shared ? "shared" : "private", page,
		    strerror(errno), run->exit_reason,
		    exit_reason_str(run->exit_reason),
		    run->memory_fault.flags, run->memory_fault.gpa,
		    run->memory_fault.size);
	if (run->exit_reason == KVM_EXIT_SHUTDOWN)
		report_shutdown(vcpu, page);
	TEST_ASSERT(run->exit_reason == KVM_EXIT_IO,
		    "%s page %lu: wanted KVM_EXIT_IO, got exit reason %u (%s)",
		    model[page].shared ? "shared" : "private", page,
		    run->exit_reason, exit_reason_str(run->exit_reason));

	switch (get_ucall(vcpu, &uc)) {
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
		break;
	case UCALL_SYNC:
		TEST_ASSERT(uc.args[1] == op->gpa,
			    "Guest synced gpa %#lx, asked for %#lx",
			    uc.args[1], op->gpa);
		break;
	default:
		TEST_FAIL("Unexpected ucall %lu", uc.cmd);
	}
}

/* Lets the guest on @vcpu finish. */
static void guest_done(struct kvm_vcpu *vcpu)
{
	struct ucall uc;

	WRITE_ONCE(guest_op_of(vcpu)->gpa, 0);
	vcpu_run(vcpu);
	switch (get_ucall(vcpu, &uc)) {
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
		break;
	case UCALL_DONE:
		break;
	default:
		TEST_FAIL("Wanted UCALL_DONE, got ucall %lu", uc.cmd);
	}
}

/*
 * A range for a converter: a page, a short run, an aligned chunk, or all.
 * In a 1 GiB file, converters keep to the first HOT_PAGES, and "all" is
 * those: sharing the whole 1 GiB has the other threads fault in 262,144
 * pages (a run that did so converted 9 times in 20 s and never merged),
 * while the window all private again merges the 1 GiB folio whole.
 */
static void pick_range(struct worker *w, uint64_t *first, uint64_t *n)
{
	uint64_t kind = rnd_below(w, 100);
	uint64_t limit = npages > NPAGES ? HOT_PAGES : npages;

	if (kind < 40) {
		*n = 1;
		*first = rnd_below(w, limit);
	} else if (kind < 70) {
		*n = 2 + rnd_below(w, 15);
		*first = rnd_below(w, limit - *n + 1);
	} else if (kind < 90) {
		/* 64K to 1M, aligned to its size. */
		*n = 16ULL << rnd_below(w, 5);
		*first = rnd_below(w, limit / *n) * *n;
	} else {
		*n = limit;
		*first = 0;
	}
}

/*
 * Converts @n locked pages from @first: 0, or EAGAIN if some page stayed
 * referenced EAGAIN_TRIES times in a row.
 */
static int convert(struct worker *w, uint64_t first, uint64_t n, bool private)
{
	const uint64_t offset = first * PS, size = n * PS;
	int tries, r = 0;

	for (tries = 0; tries < EAGAIN_TRIES; tries++) {
		struct kvm_memory_attributes2 a = {
			.offset = offset,
			.size = size,
			.attributes = private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
		};

		r = rgmem_set_attributes2(gmem_fd, &a);
		if (r != EAGAIN)
			break;
		/* A hugetlb split needs its folio idle, even of transient users. */
		TEST_ASSERT(private || hugetlb,
			    "%s: pages %lu..%lu to shared: EAGAIN", w->name,
			    first, first + n - 1);
		TEST_ASSERT(a.error_offset >= offset &&
			    a.error_offset < offset + size &&
			    !(a.error_offset % PS),
			    "%s: pages %lu..%lu: EAGAIN with error_offset %#llx",
			    w->name, first, first + n - 1, a.error_offset);
		w->eagains++;
		nap(w, 100, 500);
	}
	TEST_ASSERT(!r || r == EAGAIN,
		    "%s: KVM_SET_MEMORY_ATTRIBUTES2(pages %lu..%lu, %s): %s",
		    w->name, first, first + n - 1,
		    private ? "private" : "shared", strerror(r));
	return r;
}

static void converter(struct worker *w)
{
	do {
		bool private = rnd(w) & 1, changes = false;
		uint64_t first, n, i;
		int r;

		op_begin(w);
		pick_range(w, &first, &n);
		lock_pages(first, n);
		for (i = first; i < first + n; i++)
			changes |= model[i].shared == private;
		r = convert(w, first, n, private);
		if (r) {
			/* Nothing changed: the model still holds. */
			w->giveups++;
		} else {
			for (i = first; i < first + n; i++)
				model[i].shared = !private;
		}
		if (private && changes) {
			w->to_private++;
			if (!r)
				w->to_private_ok++;
		}
		unlock_pages(first, n);
		op_end(w);
		nap(w, 200, 1000);
	} while (!time_is_up());
}

/* Stamps shared pages through the host's mapping; private ones SIGBUS. */
static void writer(struct worker *w)
{
	do {
		uint64_t page = rnd_first(w, 1);
		uint64_t *p = page_ptr(gmem_mem, page);
		struct page_model *m = &model[page];

		op_begin(w);
		lock_pages(page, 1);
		if (host_check_page(gmem_mem, page)) {
			w->sigbuses++;
		} else {
			uint64_t new = next_seq();

			TEST_ASSERT(!probe_write(p, new),
				    "%s: shared page %lu: write raised SIGBUS",
				    w->name, page);
			m->value = new;
		}
		unlock_pages(page, 1);
		op_end(w);
		nap(w, 100, 500);
	} while (!time_is_up());
}

/* Checks pages through mappings of its own, made and unmapped again. */
static void reader(struct worker *w)
{
	do {
		uint8_t *mem = mmap(NULL, gmem_size, PROT_READ, MAP_SHARED,
				    gmem_fd, 0);
		int i;

		TEST_ASSERT(mem != MAP_FAILED, "%s: mmap: %s", w->name,
			    strerror(errno));
		w->maps++;
		for (i = 0; i < 8; i++) {
			uint64_t page = rnd_first(w, 1);

			op_begin(w);
			if (!rnd_below(w, 4)) {
				uint64_t n = 1 + rnd_below(w, 64);
				uint64_t first = rnd_first(w, n);

				TEST_ASSERT(!madvise(mem + first * PS, n * PS,
						     MADV_DONTNEED),
					    "%s: madvise(DONTNEED): %s",
					    w->name, strerror(errno));
				w->madvises++;
			}
			lock_pages(page, 1);
			if (host_check_page(mem, page))
				w->sigbuses++;
			unlock_pages(page, 1);
			op_end(w);
			nap(w, 100, 300);
		}
		TEST_ASSERT(!munmap(mem, gmem_size), "%s: munmap: %s",
			    w->name, strerror(errno));
	} while (!time_is_up());
}

/* Punches short ranges: their pages keep their state and read 0. */
static void puncher(struct worker *w)
{
	do {
		uint64_t n = hugetlb ? npages : 1 + rnd_below(w, 8);
		uint64_t first = rnd_below(w, npages - n + 1);
		uint64_t i;
		int r;

		op_begin(w);
		lock_pages(first, n);
		r = fallocate(gmem_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      first * PS, n * PS);
		TEST_ASSERT(!r || (hugetlb && errno == EBUSY),
			    "%s: PUNCH_HOLE of pages %lu..%lu: %s",
			    w->name, first, first + n - 1, strerror(errno));
		for (i = first; i < first + n && !r; i++)
			model[i].value = 0;
		unlock_pages(first, n);
		op_end(w);
		/*
		 * A 1 GiB file punched is zeroed whole, 2 to 4 s under TCG,
		 * by the next fault: more often, and little else would run.
		 */
		if (npages > NPAGES)
			usleep(3000000 + rnd_below(w, 2000000));
		else
			nap(w, 500, 2000);
	} while (!time_is_up());
}

/*
 * Reads pages without locks and ignores what it finds: faults and GUPs in
 * flight race with conversions and punches of the same pages.  It never
 * writes, so the model stays exact.
 */
static void chaos(struct worker *w)
{
	static uint8_t buf[CHAOS_PAGES * PAGE_SIZE];

	do {
		uint64_t n = 1 + rnd_below(w, CHAOS_PAGES);
		uint64_t first = rnd_first(w, n);
		uint64_t i, val;

		op_begin(w);
		if (!rnd_below(w, 4)) {
			/* GUP of the pages: fails on private ones. */
			struct iovec local = {
				.iov_base = buf,
				.iov_len = n * PS,
			};
			struct iovec remote = {
				.iov_base = gmem_mem + first * PS,
				.iov_len = n * PS,
			};

			(void)process_vm_readv(getpid(), &local, 1, &remote,
					       1, 0);
			w->gups++;
		} else {
			for (i = first; i < first + n; i++)
				if (probe_read(page_ptr(gmem_mem, i), &val))
					w->sigbuses++;
		}
		op_end(w);
		nap(w, 100, 300);
	} while (!time_is_up());
}

/* A vCPU checks and stamps random pages of either state. */
static void vcpu_loop(struct worker *w)
{
	do {
		uint64_t page = rnd_first(w, 1);
		struct page_model *m = &model[page];
		uint64_t new = next_seq();

		op_begin(w);
		lock_pages(page, 1);
		guest_rmw(w->vcpu, page, m->value, new);
		m->value = new;
		if (!m->shared)
			w->privates++;
		unlock_pages(page, 1);
		op_end(w);
	} while (!time_is_up());
}

enum {
	CONVERTER0,
	CONVERTER1,
	WRITER,
	READER,
	PUNCHER,
	CHAOS,
	VCPU1,
	NR_WORKERS,
};

static struct worker workers[NR_WORKERS] = {
	[CONVERTER0] = { .name = "converter0", .fn = converter },
	[CONVERTER1] = { .name = "converter1", .fn = converter },
	[WRITER] = { .name = "writer", .fn = writer },
	[READER] = { .name = "reader", .fn = reader },
	[PUNCHER] = { .name = "puncher", .fn = puncher },
	[CHAOS] = { .name = "chaos", .fn = chaos },
	[VCPU1] = { .name = "vcpu1", .fn = vcpu_loop },
};

/* The first vCPU runs on the main thread. */
static struct worker vcpu_worker = { .name = "vcpu0", .fn = vcpu_loop };

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	thread_name = w->name;
	w->fn(w);
	return NULL;
}

/* splitmix64, to seed each thread's generator from the test's seed. */
static uint64_t seed_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return (x ^ (x >> 31)) | 1;
}

static const char *const counter_names[] = {
	"conversions", "user_faults", "get_pfn", "punch_holes", "splits", "merges",
};

/* Of counter_names: the race raises these surely; split_and_merge() the rest. */
#define RACE_COUNTERS	4


static void setup(void)
{
	const uint64_t size_flag = hugetlb ? (uint64_t)__builtin_ctzll(huge_size) <<
					     GUEST_MEMFD_HUGETLB_SIZE_SHIFT : 0;
	const uint64_t flags = GUEST_MEMFD_FLAG_MMAP |
			       (hugetlb ? GUEST_MEMFD_FLAG_HUGETLB :
					  GUEST_MEMFD_FLAG_INIT_SHARED);
	const struct vm_shape shape = {
		.mode = VM_MODE_DEFAULT,
		.type = KVM_X86_SW_PROTECTED_VM,
	};
	struct sigaction sa = {
		.sa_sigaction = on_sigbus,
		.sa_flags = SA_SIGINFO,
	};
	uint64_t i;

	TEST_ASSERT(!sigaction(SIGBUS, &sa, NULL), "sigaction: %s",
		    strerror(errno));

	vm = __vm_create_with_vcpus(shape, NR_VCPUS, 0, guest_code, vcpus);
	for (i = 0; i < NR_VCPUS; i++)
		vcpu_args_set(vcpus[i], 1, i);
	vcpu_worker.vcpu = vcpus[0];
	workers[VCPU1].vcpu = vcpus[1];
	TEST_ASSERT((vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS) & flags) ==
		    flags, "KVM_CAP_GUEST_MEMFD_FLAGS is %#x",
		    vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS));
	TEST_ASSERT(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES) &
		    KVM_MEMORY_ATTRIBUTE_PRIVATE,
		    "KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES lacks PRIVATE");

	gmem_fd = vm_create_guest_memfd(vm, gmem_size, flags | size_flag);
	gmem_mem = mmap(NULL, gmem_size, PROT_READ | PROT_WRITE, MAP_SHARED,
			gmem_fd, 0);
	TEST_ASSERT(gmem_mem != MAP_FAILED, "mmap of the guest_memfd: %s",
		    strerror(errno));
	vm_set_user_memory_region2(vm, SLOT, KVM_MEM_GUEST_MEMFD, GPA,
				   gmem_size, gmem_mem, gmem_fd, 0);
	/* The guest maps 1 GiB with 2 MiB pages: 4 KiB ones need 2 MiB of tables. */
	if (npages > NPAGES)
		virt_map_level(vm, GPA, GPA, gmem_size, PG_LEVEL_2M);
	else
		virt_map(vm, GPA, GPA, npages);

	/* GUEST_MEMFD_FLAG_INIT_SHARED: all shared; hugetlb: all private. */
	model = calloc(npages, sizeof(*model));
	TEST_ASSERT(model, "calloc");
	for (i = 0; i < npages; i++) {
		TEST_ASSERT(!pthread_mutex_init(&model[i].lock, NULL),
			    "pthread_mutex_init");
		model[i].shared = !hugetlb;
		model[i].value = 0;
	}
}

/*
 * -H, -G: once the threads are done, the first 2 MiB become private, shared
 * and private again, alone: the last two must split and merge, however few
 * conversions the race managed (a slow run did 9 and merged nothing).
 */
static void split_and_merge(void)
{
	struct worker *w = &vcpu_worker;
	long long splits, merges;
	uint64_t i;
	int r;

	lock_pages(0, NPAGES);
	r = convert(w, 0, NPAGES, true);
	TEST_ASSERT(!r, "first 2 MiB to private: %s", strerror(r));
	splits = rgmem_read_counter("splits");
	merges = rgmem_read_counter("merges");
	r = convert(w, 0, NPAGES, false);
	TEST_ASSERT(!r, "first 2 MiB to shared: %s", strerror(r));
	TEST_ASSERT(rgmem_read_counter("splits") > splits,
		    "sharing a private 2 MiB block did not split it");
	r = convert(w, 0, NPAGES, true);
	TEST_ASSERT(!r, "first 2 MiB back to private: %s", strerror(r));
	TEST_ASSERT(rgmem_read_counter("merges") > merges,
		    "a 2 MiB block private again did not merge");
	for (i = 0; i < NPAGES; i++)
		model[i].shared = false;
	unlock_pages(0, NPAGES);
}

/*
 * Every page once more, shared ones through the host, private ones in the
 * guest; of a 1 GiB file, those written or shared and one in 64 of the rest.
 */
static void final_check(void)
{
	uint64_t page, shared = 0, private = 0;

	for (page = 0; page < npages; page++) {
		struct page_model *m = &model[page];

		if (npages > NPAGES && !m->shared && !m->value && page % 64)
			continue;
		host_check_page(gmem_mem, page);
		if (m->shared) {
			shared++;
		} else {
			guest_rmw(vcpus[0], page, m->value, m->value);
			private++;
		}
	}
	ksft_print_msg("final: %lu shared pages, %lu private pages checked\n",
		       shared, private);
}

static void report(void)
{
	uint64_t to_private = 0, to_private_ok = 0;
	int i;

	for (i = 0; i < NR_WORKERS; i++) {
		struct worker *w = &workers[i];

		ksft_print_msg("%-10s %8lu ops (slowest %lu ms), %lu SIGBUS, %lu EAGAIN, %lu given up, %lu/%lu to private, %lu maps, %lu madvises, %lu GUP reads\n",
			       w->name, w->ops, w->slowest_ns / 1000000,
			       w->sigbuses, w->eagains, w->giveups,
			       w->to_private_ok, w->to_private, w->maps,
			       w->madvises, w->gups);
		to_private += w->to_private;
		to_private_ok += w->to_private_ok;
	}
	ksft_print_msg("%-10s %8lu ops (slowest %lu ms), %lu on private pages\n",
		       vcpu_worker.name, vcpu_worker.ops,
		       vcpu_worker.slowest_ns / 1000000, vcpu_worker.privates);
	ksft_print_msg("%-10s %8lu ops (slowest %lu ms), %lu on private pages\n",
		       workers[VCPU1].name, workers[VCPU1].ops,
		       workers[VCPU1].slowest_ns / 1000000,
		       workers[VCPU1].privates);

	for (i = 0; i < NR_WORKERS; i++)
		TEST_ASSERT(workers[i].ops > 0, "Thread %s did nothing",
			    workers[i].name);
	TEST_ASSERT(vcpu_worker.ops > 0, "The vCPU never ran");
	TEST_ASSERT(to_private_ok > 0,
		    "No conversion to private succeeded: %lu tried, all gave up after EAGAIN",
		    to_private);
}

static void help(const char *name)
{
	printf("usage: %s [-h] [-H | -G] [-t seconds] [-s seed]\n", name);
	printf(" -H: a 2 MiB hugetlb file, created private\n");
	printf(" -G: a 1 GiB hugetlb file, created private\n");
	printf(" -t: how long the threads race (default: %d)\n",
	       DEFAULT_SECONDS);
	printf(" -s: seed of the random choices (default: from the time)\n");
}

int main(int argc, char *argv[])
{
	unsigned int seconds = DEFAULT_SECONDS;
	uint64_t seed = now_ns() ^ getpid();
	long long before[ARRAY_SIZE(counter_names)], files_created, v;
	int opt, r;
	unsigned int i;

	while ((opt = getopt(argc, argv, "hHGt:s:")) != -1) {
		switch (opt) {
		case 'H':
			hugetlb = true;
			huge_size = 2ULL << 20;
			break;
		case 'G':
			hugetlb = true;
			huge_size = 1ULL << 30;
			npages = NPAGES_1G;
			gmem_size = npages * PS;
			break;
		case 't':
			seconds = atoi_positive("seconds", optarg);
			break;
		case 's':
			seed = strtoull(optarg, NULL, 0);
			break;
		case 'h':
		default:
			help(argv[0]);
			exit(opt == 'h' ? KSFT_PASS : KSFT_FAIL);
		}
	}

	ksft_print_header();
	rgmem_require_gmem_attributes();
	ksft_set_plan(1);
	ksft_print_msg("%u seconds, seed %#lx\n", seconds, seed);

	files_created = rgmem_read_counter("files_created");
	setup();
	TEST_ASSERT(rgmem_read_counter("files_created") == files_created + 1,
		    "The guest_memfd is not rgmem's");
	for (i = 0; i < ARRAY_SIZE(counter_names); i++)
		before[i] = rgmem_read_counter(counter_names[i]);

	deadline_ns = now_ns() + (uint64_t)seconds * NSEC_PER_SEC;
	for (i = 0; i < NR_WORKERS; i++) {
		workers[i].rng = seed_mix(seed + i);
		r = pthread_create(&workers[i].thread, NULL, worker_main,
				   &workers[i]);
		TEST_ASSERT(!r, "pthread_create: %s", strerror(r));
	}
	thread_name = vcpu_worker.name;
	vcpu_worker.rng = seed_mix(seed + NR_WORKERS);
	vcpu_worker.fn(&vcpu_worker);
	for (i = 0; i < NR_WORKERS; i++) {
		r = pthread_join(workers[i].thread, NULL);
		TEST_ASSERT(!r, "pthread_join: %s", strerror(r));
	}
	thread_name = "main";

	for (i = 0; i < ARRAY_SIZE(counter_names); i++) {
		v = rgmem_read_counter(counter_names[i]);
		ksft_print_msg("rgmem %s: +%lld\n", counter_names[i],
			       v - before[i]);
		/* Splits and merges, hugetlb files' only, are checked below. */
		TEST_ASSERT(v > before[i] || i >= RACE_COUNTERS,
			    "rgmem's %s did not rise", counter_names[i]);
	}
	if (hugetlb)
		split_and_merge();
	final_check();
	for (i = 0; i < NR_VCPUS; i++)
		guest_done(vcpus[i]);
	report();

	TEST_ASSERT(rgmem_read_counter("files_created") == files_created + 1,
		    "rgmem created %lld files, wanted 1",
		    rgmem_read_counter("files_created") - files_created);

	kvm_vm_free(vm);
	munmap(gmem_mem, gmem_size);
	close(gmem_fd);
	for (i = 0; i < npages; i++)
		pthread_mutex_destroy(&model[i].lock);
	free(model);

	ksft_test_result_pass("conversion races for %u seconds\n", seconds);
	ksft_finished();
}
