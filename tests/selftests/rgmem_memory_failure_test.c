// SPDX-License-Identifier: GPL-2.0
/*
 * Memory failure in guest_memfd memory: one test case per row of the
 * table in Documentation/rgmem.rst ("Memory failure").
 *
 * - shared.*: a page of an mmap-ed file fails.  The kernel unmaps it and
 *   sends SIGBUS only as the row says; later accesses get SIGBUS, the other
 *   pages keep their contents, and a punched page comes back zeroed.
 *   Injected with madvise(MADV_HWPOISON) (MF_ACTION_REQUIRED) or debugfs's
 *   hwpoison/corrupt-pfn (without it), the pfn from /proc/self/pagemap.
 *   Shared pages need the file to hold the attributes
 *   (kvm.vm_memory_attributes=0), and 6.12's C guest_memfd has no mmap:
 *   these run on rgmem only.
 * - private.*: a private page the guest used fails.  No one gets SIGBUS;
 *   the guest's next access to it fails KVM_RUN with EHWPOISON and a
 *   KVM_EXIT_MEMORY_FAULT naming the page, and only it.  fallocate() does
 *   not bring it back, punching it does, and a conversion refuses it.  The
 *   pfn comes from KVM's own tracepoint, so the same test runs on C after
 *   rmmod (RGMEM_SERVER=kvm).
 * - huge.*, huge_lost.*: a private page of a hugetlb-backed file fails;
 *   the guest's next touch splits it off, or, under fault injection, the
 *   folio is lost whole.  piece_never_merges: a page of a block split for
 *   sharing fails, and the block never merges back.
 *
 * Each case runs in its own child (the harness forks), so the SIGBUS the
 * row expects is caught and checked, never fatal.  Poisoned pages stay out
 * of use: every case leaks one page, as real failures do.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <linux/falloc.h>
#include <linux/kvm.h>

#include "kselftest_harness.h"
#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"

#define DATA_GPA	(1ULL << 32)
#define DATA_SLOT	10

#include "rgmem_kvm.h"
#include "rgmem_huge.h"
#include "rgmem_fail.h"

#define PS		4096UL
#define NPAGES		4
#define BAD		1	/* the page that fails; odd pages stay clean */
#define PATTERN(i)	(0x6d656d6661696c00ULL + (i))

#define CORRUPT_PFN	"/sys/kernel/debug/hwpoison/corrupt-pfn"
#define TRACING		"/sys/kernel/debug/tracing"
#define SPTE_EVENT	TRACING "/events/kvmmmu/kvm_tdp_mmu_spte_changed"

/* What the SIGBUS handler saw; read with READ_ONCE(). */
static int sigbus_count;
static int sigbus_code;
static void *sigbus_addr;
static short sigbus_lsb;
static sigjmp_buf probe_env;
static int probing;

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	WRITE_ONCE(sigbus_count, sigbus_count + 1);
	WRITE_ONCE(sigbus_code, si->si_code);
	WRITE_ONCE(sigbus_addr, si->si_addr);
	WRITE_ONCE(sigbus_lsb, si->si_addr_lsb);
	/* A faulting access would fault again: jump over it. */
	if (READ_ONCE(probing))
		siglongjmp(probe_env, 1);
}

static void catch_sigbus(void)
{
	struct sigaction sa = {
		.sa_sigaction = on_sigbus,
		.sa_flags = SA_SIGINFO,
	};

	sigemptyset(&sa.sa_mask);
	TEST_ASSERT(!sigaction(SIGBUS, &sa, NULL), "sigaction: %s",
		    strerror(errno));
	WRITE_ONCE(sigbus_count, 0);
}

/*
 * Reads (or writes) the first word of @p: true if that took a SIGBUS.  A
 * read's value goes to *@val.
 */
static bool probe(uint64_t *p, bool write, uint64_t *val)
{
	int before = READ_ONCE(sigbus_count);

	if (sigsetjmp(probe_env, 1)) {
		WRITE_ONCE(probing, 0);
		return true;
	}
	WRITE_ONCE(probing, 1);
	if (write)
		WRITE_ONCE(*p, PATTERN(0xff));
	else
		*val = READ_ONCE(*p);
	WRITE_ONCE(probing, 0);
	return READ_ONCE(sigbus_count) != before;
}

/* The frame behind user address @p, from /proc/self/pagemap; 0 if none. */
static uint64_t pagemap_pfn(void *p)
{
	uint64_t ent = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return 0;
	if (pread(fd, &ent, 8, (uintptr_t)p / PS * 8) != 8)
		ent = 0;
	close(fd);
	return (ent >> 63) ? ent & ((1ULL << 55) - 1) : 0;
}

/* Memory failure without MF_ACTION_REQUIRED at @pfn: 0 or the errno. */
static int corrupt_pfn(uint64_t pfn)
{
	char buf[32];
	int fd, n, err = 0;

	fd = open(CORRUPT_PFN, O_WRONLY);
	if (fd < 0)
		return errno;
	n = snprintf(buf, sizeof(buf), "%#llx\n", (unsigned long long)pfn);
	if (write(fd, buf, n) != n)
		err = errno;
	close(fd);
	return err;
}

/* HardwareCorrupted in /proc/meminfo, in kB; -1 if not found. */
static long hardware_corrupted_kb(void)
{
	char line[128];
	long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "HardwareCorrupted: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static void set_policy(int policy)
{
	TEST_ASSERT(!prctl(PR_MCE_KILL, PR_MCE_KILL_SET, policy, 0, 0),
		    "PR_MCE_KILL: %s", strerror(errno));
}

static const struct vm_shape protected_shape = {
	.mode = VM_MODE_DEFAULT,
	.type = KVM_X86_SW_PROTECTED_VM,
};

/* Shared rows: the kernel's side of the table, for an rgmem mapping. */
FIXTURE(shared) {
	struct kvm_vm *vm;
	int fd;
	uint8_t *mem;
};

/* One row of the table. */
struct row {
	bool action_required;
	bool early;		/* PR_MCE_KILL_EARLY; else LATE */
	bool any_policy;	/* both policies, one page each */
	bool mapped;
	bool dirty;
	bool sigbus;
};

FIXTURE_VARIANT(shared) {
	struct row row;
};

/* MF_ACTION_REQUIRED false: debugfs's corrupt-pfn. */
FIXTURE_VARIANT_ADD(shared, ao_early_mapped_dirty) {
	.row = { .early = true, .mapped = true, .dirty = true, .sigbus = true },
};
FIXTURE_VARIANT_ADD(shared, ao_early_mapped_clean) {
	.row = { .early = true, .mapped = true },
};
FIXTURE_VARIANT_ADD(shared, ao_early_unmapped_dirty) {
	.row = { .early = true, .dirty = true },
};
FIXTURE_VARIANT_ADD(shared, ao_early_unmapped_clean) {
	.row = { .early = true },
};
FIXTURE_VARIANT_ADD(shared, ao_late_mapped_dirty) {
	.row = { .mapped = true, .dirty = true },
};
FIXTURE_VARIANT_ADD(shared, ao_late_mapped_clean) {
	.row = { .mapped = true },
};
FIXTURE_VARIANT_ADD(shared, ao_late_unmapped_dirty) {
	.row = { .dirty = true },
};
FIXTURE_VARIANT_ADD(shared, ao_late_unmapped_clean) {
};
/* MF_ACTION_REQUIRED true: madvise(MADV_HWPOISON), which maps the page. */
FIXTURE_VARIANT_ADD(shared, ar_any_mapped_dirty) {
	.row = { .action_required = true, .any_policy = true, .mapped = true, .dirty = true, .sigbus = true },
};
FIXTURE_VARIANT_ADD(shared, ar_any_mapped_clean) {
	.row = { .action_required = true, .any_policy = true, .mapped = true },
};

FIXTURE_SETUP(shared)
{
	if (rgmem_kvm_serves())
		SKIP(return, "6.12's C guest_memfd cannot be mmap-ed");
	ASSERT_TRUE(rgmem_loaded());
	if (rgmem_vm_memory_attributes() != 0)
		SKIP(return, "kvm.vm_memory_attributes=Y: no page of the file is shared");
	self->vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	self->fd = rgmem_create_mapped_gmem(self->vm, NPAGES * PS,
					    GUEST_MEMFD_FLAG_MMAP |
					    GUEST_MEMFD_FLAG_INIT_SHARED,
					    &self->mem);
	catch_sigbus();
}

FIXTURE_TEARDOWN(shared)
{
	if (!self->vm)
		return;
	munmap(self->mem, NPAGES * PS);
	close(self->fd);
	kvm_vm_free(self->vm);
}

/*
 * Fails page @bad of the file under kill policy @early as @v says, then
 * checks what the row and what follows must hold.
 */
static void fail_shared_page(struct __test_metadata *_metadata, int fd,
			     uint8_t *mem, const struct row *v, int bad,
			     bool early)
{
	uint64_t *page = (uint64_t *)(mem + bad * PS), val = 1;
	long long failures = rgmem_read_counter("memory_failures_shared");
	long corrupted = hardware_corrupted_kb();
	uint64_t pfn;
	int i, err;

	set_policy(early ? PR_MCE_KILL_EARLY : PR_MCE_KILL_LATE);
	/* A read fault maps the page clean, a write fault dirty. */
	if (v->dirty)
		WRITE_ONCE(*page, PATTERN(bad));
	else
		ASSERT_EQ(0, READ_ONCE(*page));
	pfn = pagemap_pfn(page);
	ASSERT_NE(0, pfn) TH_LOG("no pfn in /proc/self/pagemap");
	if (!v->mapped)
		ASSERT_EQ(0, munmap(page, PS));

	WRITE_ONCE(sigbus_count, 0);
	if (v->action_required) {
		ASSERT_EQ(0, madvise(page, PS, MADV_HWPOISON))
			TH_LOG("madvise(MADV_HWPOISON): %s", strerror(errno));
	} else {
		err = corrupt_pfn(pfn);
		ASSERT_EQ(0, err) TH_LOG("corrupt-pfn: %s", strerror(err));
	}

	ASSERT_EQ(v->sigbus, READ_ONCE(sigbus_count) != 0)
		TH_LOG("SIGBUS at the failure: %d, the table says %d",
		       READ_ONCE(sigbus_count), v->sigbus);
	if (v->sigbus) {
		ASSERT_EQ(v->action_required ? BUS_MCEERR_AR : BUS_MCEERR_AO,
			  READ_ONCE(sigbus_code));
		ASSERT_EQ((void *)page, READ_ONCE(sigbus_addr));
		ASSERT_EQ(12, READ_ONCE(sigbus_lsb));
	}
	ASSERT_EQ(failures + 1, rgmem_read_counter("memory_failures_shared"))
		TH_LOG("rgmem did not handle the failure");
	ASSERT_EQ(corrupted + 4, hardware_corrupted_kb());

	if (!v->mapped)
		ASSERT_EQ(page, mmap(page, PS, PROT_READ | PROT_WRITE,
				     MAP_SHARED | MAP_FIXED, fd, bad * PS));
	/* Every later access gets SIGBUS, whether mapped before or not. */
	ASSERT_TRUE(probe(page, false, &val));
	ASSERT_EQ(BUS_MCEERR_AR, READ_ONCE(sigbus_code));
	ASSERT_EQ((void *)page, READ_ONCE(sigbus_addr));
	ASSERT_EQ(12, READ_ONCE(sigbus_lsb));
	ASSERT_TRUE(probe(page, true, NULL));

	for (i = 0; i < NPAGES; i += 2)
		ASSERT_EQ(PATTERN(i), ((uint64_t *)(mem + i * PS))[0]);

	/* Punching lets the page go: a new one, zeroed, takes its place. */
	ASSERT_EQ(0, fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			       bad * PS, PS));
	ASSERT_FALSE(probe(page, false, &val));
	ASSERT_EQ(0, val);
	ASSERT_NE(pfn, pagemap_pfn(page));
	ASSERT_FALSE(probe(page, true, NULL));
}

TEST_F(shared, row)
{
	const struct row *r = &variant->row;
	int i;

	/* The even pages hold data that must survive. */
	for (i = 0; i < NPAGES; i += 2)
		((uint64_t *)(self->mem + i * PS))[0] = PATTERN(i);
	fail_shared_page(_metadata, self->fd, self->mem, r, BAD, r->early);
	if (r->any_policy)
		fail_shared_page(_metadata, self->fd, self->mem, r, BAD + 2,
				 !r->early);
}

/*
 * Private rows.  The guest writes (dirty) or reads (clean) each page,
 * then, after the failure, reads page 0 and page BAD, then all of them.
 */
static void guest_private(uint64_t gpa, uint64_t dirty)
{
	uint64_t i, v;

	for (i = 0; i < NPAGES; i++) {
		if (dirty)
			WRITE_ONCE(*(uint64_t *)(gpa + i * PS), PATTERN(i));
		else
			GUEST_ASSERT_EQ(0, READ_ONCE(*(uint64_t *)(gpa + i * PS)));
	}
	GUEST_SYNC(1);
	v = READ_ONCE(*(uint64_t *)gpa);
	GUEST_ASSERT_EQ(dirty ? PATTERN(0) : 0, v);
	GUEST_SYNC(2);
	/* Fails until the host punches the page. */
	v = READ_ONCE(*(uint64_t *)(gpa + BAD * PS));
	GUEST_ASSERT_EQ(0, v);
	for (i = 0; i < NPAGES; i++)
		if (i != BAD)
			GUEST_ASSERT_EQ(dirty ? PATTERN(i) : 0,
					READ_ONCE(*(uint64_t *)(gpa + i * PS)));
	GUEST_DONE();
}

FIXTURE(private) {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	int fd;
	bool rgmem;
	bool in_place;	/* guest_memfd holds the attributes */
};

FIXTURE_VARIANT(private) {
	bool early;
	bool dirty;
};

FIXTURE_VARIANT_ADD(private, early_dirty) { .early = true, .dirty = true };
FIXTURE_VARIANT_ADD(private, early_clean) { .early = true };
FIXTURE_VARIANT_ADD(private, late_dirty) { .dirty = true };
FIXTURE_VARIANT_ADD(private, late_clean) { };

static void write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_TRUNC);

	TEST_ASSERT(fd >= 0, "open %s: %s", path, strerror(errno));
	TEST_ASSERT(write(fd, s, strlen(s)) == (ssize_t)strlen(s),
		    "write %s: %s", path, strerror(errno));
	close(fd);
}

/* Records the changes of gfn @gfn's SPTE at @level (1: 4 KiB) from now on. */
static void trace_spte(uint64_t gfn, int level)
{
	char filter[64];

	write_file(SPTE_EVENT "/enable", "0");
	write_file(TRACING "/trace", "");
	snprintf(filter, sizeof(filter), "gfn == %#llx && level == %d",
		 (unsigned long long)gfn, level);
	write_file(SPTE_EVENT "/filter", filter);
	write_file(SPTE_EVENT "/enable", "1");
}

/* The frame of the last present SPTE recorded since trace_spte(); 0 if none. */
static uint64_t traced_pfn(void)
{
	unsigned long long old, new;
	uint64_t pfn = 0;
	char line[512], *p;
	FILE *f;

	write_file(SPTE_EVENT "/enable", "0");
	f = fopen(TRACING "/trace", "r");
	TEST_ASSERT(f, "open trace: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		p = strstr(line, "old_spte ");
		if (p && sscanf(p, "old_spte %llx new_spte %llx", &old, &new) == 2 &&
		    (new & 1))
			pfn = (new & 0x000ffffffffff000ULL) >> 12;
	}
	fclose(f);
	write_file(SPTE_EVENT "/filter", "0");
	return pfn;
}

FIXTURE_SETUP(private)
{
	int attrs = rgmem_vm_memory_attributes();

	self->rgmem = !rgmem_kvm_serves();
	if (self->rgmem)
		ASSERT_TRUE(rgmem_loaded());
	if (access(SPTE_EVENT, F_OK))
		SKIP(return, "no %s", SPTE_EVENT);
	self->in_place = attrs == 0;
	if (self->in_place && !self->rgmem)
		SKIP(return, "KVM's own guest_memfd holds no attributes");

	self->vm = vm_create_shape_with_one_vcpu(protected_shape, &self->vcpu,
						 guest_private);
	self->fd = vm_create_guest_memfd(self->vm, NPAGES * PS, 0);
	vm_set_user_memory_region2(self->vm, DATA_SLOT, KVM_MEM_GUEST_MEMFD,
				   DATA_GPA, NPAGES * PS,
				   rgmem_host_mem(NPAGES * PS), self->fd, 0);
	if (!self->in_place)
		vm_set_memory_attributes(self->vm, DATA_GPA, NPAGES * PS,
					 KVM_MEMORY_ATTRIBUTE_PRIVATE);
	virt_map(self->vm, DATA_GPA, DATA_GPA, NPAGES);
	catch_sigbus();
}

FIXTURE_TEARDOWN(private)
{
	if (!self->vm)
		return;
	close(self->fd);
	kvm_vm_free(self->vm);
}

/* Runs the vCPU into a lost page at @gpa: EHWPOISON, and the page's exit. */
static void expect_poison_exit_at(struct __test_metadata *_metadata,
				  struct kvm_vcpu *vcpu, uint64_t gpa)
{
	struct kvm_run *run = vcpu->run;
	int r = __vcpu_run(vcpu);

	ASSERT_EQ(-1, r) TH_LOG("KVM_RUN: %d, exit reason %u", r, run->exit_reason);
	ASSERT_EQ(EHWPOISON, errno) TH_LOG("KVM_RUN: %s", strerror(errno));
	ASSERT_EQ(KVM_EXIT_MEMORY_FAULT, run->exit_reason);
	ASSERT_EQ(gpa, run->memory_fault.gpa);
	ASSERT_EQ(PS, run->memory_fault.size);
	ASSERT_EQ(KVM_MEMORY_EXIT_FLAG_PRIVATE, run->memory_fault.flags);
}

TEST_F(private, row)
{
	long long failures = 0, get_pfn = 0;
	long corrupted = hardware_corrupted_kb();
	struct kvm_memory_attributes2 conv = {
		.offset = 0,
		.size = NPAGES * PS,
		.attributes = 0,
	};
	uint64_t pfn;
	int err;

	set_policy(variant->early ? PR_MCE_KILL_EARLY : PR_MCE_KILL_LATE);
	if (self->rgmem) {
		failures = rgmem_read_counter("memory_failures_isolated");
		get_pfn = rgmem_read_counter("get_pfn");
	}
	vcpu_args_set(self->vcpu, 2, DATA_GPA, variant->dirty);
	trace_spte((DATA_GPA >> 12) + BAD, 1);
	rgmem_run_to(self->vcpu, UCALL_SYNC);
	pfn = traced_pfn();
	ASSERT_NE(0, pfn) TH_LOG("KVM mapped no 4 KiB page at the gfn");

	err = corrupt_pfn(pfn);
	ASSERT_EQ(0, err) TH_LOG("corrupt-pfn: %s", strerror(err));
	/* Nothing maps it on the host: no one to signal. */
	ASSERT_EQ(0, READ_ONCE(sigbus_count));
	ASSERT_EQ(corrupted + 4, hardware_corrupted_kb());
	if (self->rgmem) {
		ASSERT_EQ(failures + 1, rgmem_read_counter("memory_failures_isolated"))
			TH_LOG("rgmem did not handle the failure");
	}

	/* The other pages stay the guest's. */
	rgmem_run_to(self->vcpu, UCALL_SYNC);
	expect_poison_exit_at(_metadata, self->vcpu, DATA_GPA + BAD * PS);
	/* Allocating over it does not hand it back. */
	ASSERT_EQ(0, fallocate(self->fd, FALLOC_FL_KEEP_SIZE, 0, NPAGES * PS));
	expect_poison_exit_at(_metadata, self->vcpu, DATA_GPA + BAD * PS);

	if (self->in_place) {
		/* Converts neither way while poisoned; nothing changes. */
		conv.error_offset = 0;
		ASSERT_EQ(EHWPOISON, rgmem_set_attributes2(self->fd, &conv));
		ASSERT_EQ(BAD * PS, conv.error_offset);
		expect_poison_exit_at(_metadata, self->vcpu, DATA_GPA + BAD * PS);
	}

	ASSERT_EQ(0, fallocate(self->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			       BAD * PS, PS));
	rgmem_run_to(self->vcpu, UCALL_DONE);
	ASSERT_EQ(0, READ_ONCE(sigbus_count));
	if (self->in_place)
		ASSERT_EQ(0, rgmem_set_range_attributes(self->fd, BAD * PS, PS, 0));
	if (self->rgmem)
		ASSERT_LT(get_pfn, rgmem_read_counter("get_pfn"));
}

/*
 * Huge rows: a private page of a hugetlb-backed file fails.  The guest's
 * next touch of the block splits the bad page off, only as far as needed:
 * a 2 MiB block becomes 512 base pages, a 1 GiB one 511 pieces of 2 MiB
 * and 512 base pages.  The guest keeps every other page, with its
 * contents, mapped huge again where its piece is 2 MiB; the bad page gives
 * it EHWPOISON.  Where the split's memory cannot be had, the block is lost
 * whole, as in C.  A punch (2 MiB) or the file's release (1 GiB) lets the
 * block go: the huge page leaves its pool, its healthy pages go to the
 * page allocator, the bad one out of use, and the file's reservation is
 * whole again.  The guest stamps a few pages and the bad one, checks them
 * after the failure, then reads the bad page, which reads zero once
 * punched.
 */
static const uint64_t huge_pages[] = { 0, 2, 511, 512, 513 };

static void guest_huge(uint64_t gpa, uint64_t last)
{
	uint64_t i;

	for (i = 0; i < ARRAY_SIZE(huge_pages); i++)
		WRITE_ONCE(*(uint64_t *)(gpa + huge_pages[i] * PS),
			   PATTERN(huge_pages[i]));
	WRITE_ONCE(*(uint64_t *)(gpa + last * PS), PATTERN(last));
	WRITE_ONCE(*(uint64_t *)(gpa + BAD * PS), PATTERN(BAD));
	GUEST_SYNC(1);
	for (i = 0; i < ARRAY_SIZE(huge_pages); i++)
		GUEST_ASSERT_EQ(PATTERN(huge_pages[i]),
				READ_ONCE(*(uint64_t *)(gpa + huge_pages[i] * PS)));
	GUEST_ASSERT_EQ(PATTERN(last), READ_ONCE(*(uint64_t *)(gpa + last * PS)));
	GUEST_SYNC(2);
	GUEST_ASSERT_EQ(0, READ_ONCE(*(uint64_t *)(gpa + BAD * PS)));
	GUEST_DONE();
}

/* A huge-page case: its block, and what its folio runs become. */
struct huge_shape {
	uint64_t page_size;
	int blocks;
	int level;	/* KVM's, of a mapping of that size */
	bool punch;	/* else the file's release lets the block go */
	const char *split;	/* the block's folio runs once isolated */
	const char *whole;	/* and once lost whole */
};

static const struct huge_shape huge_2m = {
	.page_size = SZ_2M, .blocks = 2, .level = 2, .punch = true,
	.split = "0 511 0\n512 1023 9\n",
	.whole = "0 1023 9\n",
};

static const struct huge_shape huge_1g = {
	.page_size = SZ_1G, .blocks = 1, .level = 3,
	.split = "0 511 0\n512 262143 9\n",
	.whole = "0 262143 18\n",
};

/* A case's VM, and what it read before the failure. */
struct huge_case {
	const struct huge_shape *shape;
	struct huge_vm h;
	struct pool before;
	long corrupted;
	long long whole, isolated, retired;
};

/*
 * A VM over the file, the guest's stamps written, and the bad page failed:
 * the block is lost whole until the guest's next touch.  Returns false if
 * the case cannot run, with why in *@why.
 */
static bool huge_case_setup(struct __test_metadata *_metadata, struct huge_case *c,
		       const struct huge_shape *shape, const char **why)
{
	uint64_t pfn, last;
	int err;

	c->shape = shape;
	*why = pool_missing(shape->page_size, shape->blocks);
	if (*why)
		return false;
	if (access(SPTE_EVENT, F_OK)) {
		*why = "no " SPTE_EVENT;
		return false;
	}
	catch_sigbus();
	c->corrupted = hardware_corrupted_kb();
	c->before = pool_get(shape->page_size);
	c->h = huge_vm_create(shape->page_size, shape->blocks, guest_huge, 0);
	last = shape->blocks * shape->page_size / PS - 1;
	vcpu_args_set(c->h.vcpu, 2, DATA_GPA, last);
	trace_spte(DATA_GPA >> 12, shape->level);
	rgmem_run_to(c->h.vcpu, UCALL_SYNC);
	pfn = traced_pfn();
	EXPECT_NE(0, pfn) TH_LOG("KVM mapped no huge page at the block");
	if (!pfn)
		return true;

	c->whole = rgmem_read_counter("memory_failures_whole_folio");
	c->isolated = rgmem_read_counter("memory_failures_isolated");
	c->retired = rgmem_read_counter("poisoned_retired");
	err = corrupt_pfn(pfn + BAD);
	EXPECT_EQ(0, err) TH_LOG("corrupt-pfn: %s", strerror(err));
	EXPECT_EQ(c->corrupted + 4, hardware_corrupted_kb());
	EXPECT_EQ(0, READ_ONCE(sigbus_count));
	/* Decided by the next touch. */
	EXPECT_EQ(c->whole, rgmem_read_counter("memory_failures_whole_folio"));
	EXPECT_EQ(c->isolated, rgmem_read_counter("memory_failures_isolated"));
	return true;
}

static void huge_case_teardown(struct __test_metadata *_metadata,
			  struct huge_case *c)
{
	uint64_t ps = c->shape->page_size;
	struct pool after;

	/* The harness's children end in _exit(): no atexit() handler runs. */
	restore_knobs();
	if (!c->h.vm)
		return;
	huge_vm_free(&c->h, ps);
	/* One huge page fewer, and no reservation left behind. */
	after = pool_get(ps);
	EXPECT_EQ(c->before.nr - 1, after.nr);
	EXPECT_EQ(c->before.free - 1, after.free);
	EXPECT_EQ(c->before.resv, after.resv);
	EXPECT_EQ(c->before.surplus, after.surplus);
	EXPECT_EQ(c->corrupted + 4, hardware_corrupted_kb());
}

/* The guest reads the bad page: EHWPOISON until the punch, then zero. */
static void huge_case_finish(struct __test_metadata *_metadata,
			struct huge_case *c)
{
	expect_poison_exit_at(_metadata, c->h.vcpu, DATA_GPA + BAD * PS);
	if (!c->shape->punch)
		return;
	ASSERT_EQ(0, fallocate(c->h.fd, FALLOC_FL_PUNCH_HOLE |
			       FALLOC_FL_KEEP_SIZE, 0, c->shape->page_size));
	ASSERT_EQ(c->retired + 1, rgmem_read_counter("poisoned_retired"));
	rgmem_run_to(c->h.vcpu, UCALL_DONE);
}

FIXTURE(huge) {
	struct huge_case c;
};

FIXTURE_VARIANT(huge) {
	const struct huge_shape *shape;
};

FIXTURE_VARIANT_ADD(huge, private_2m) { .shape = &huge_2m };
FIXTURE_VARIANT_ADD(huge, private_1g) { .shape = &huge_1g };

FIXTURE_SETUP(huge)
{
	const char *why;

	if (!huge_case_setup(_metadata, &self->c, variant->shape, &why))
		SKIP(return, "%s", why);
	ASSERT_EQ(0, _metadata->exit_code);
}

FIXTURE_TEARDOWN(huge)
{
	huge_case_teardown(_metadata, &self->c);
}

TEST_F(huge, isolated)
{
	struct huge_case *c = &self->c;
	long long splits = rgmem_read_counter("splits");
	uint64_t pages_4k = vm_get_stat(c->h.vm, "pages_4k");
	uint64_t pages_2m = vm_get_stat(c->h.vm, "pages_2m");
	char runs[128];

	rgmem_run_to(c->h.vcpu, UCALL_SYNC);
	ASSERT_EQ(c->isolated + 1,
		  rgmem_read_counter("memory_failures_isolated"));
	ASSERT_EQ(c->whole, rgmem_read_counter("memory_failures_whole_folio"));
	ASSERT_LT(splits, rgmem_read_counter("splits"));
	folio_runs(ino_of(c->h.fd), runs, sizeof(runs));
	ASSERT_STREQ(c->shape->split, runs);
	/*
	 * Pages 0, 2 and 511 are base pages now.  Of a 1 GiB block, pages
	 * 512, 513 and the last are in 2 MiB pieces, mapped 2 MiB again.
	 */
	ASSERT_LE(pages_4k + 3, vm_get_stat(c->h.vm, "pages_4k"));
	if (c->shape->page_size == SZ_1G) {
		ASSERT_EQ(0, vm_get_stat(c->h.vm, "pages_1g"));
		ASSERT_EQ(pages_2m + 2, vm_get_stat(c->h.vm, "pages_2m"));
	}
	huge_case_finish(_metadata, c);
}

/*
 * The split's memory cannot be had: fail-nth fails the n-th allocation of
 * the guest's touch, for n = 1, 2, ..., until one is the split's.  Those
 * before are KVM's, whose failure fails KVM_RUN and changes nothing.  Only
 * on 2 MiB: the check boot has one 1 GiB page, which huge.private_1g
 * uses, and the code is the same.
 */
FIXTURE(huge_lost) {
	struct huge_case c;
};

FIXTURE_SETUP(huge_lost)
{
	const char *why;

	if (!huge_case_setup(_metadata, &self->c, &huge_2m, &why))
		SKIP(return, "%s", why);
	ASSERT_EQ(0, _metadata->exit_code);
}

FIXTURE_TEARDOWN(huge_lost)
{
	huge_case_teardown(_metadata, &self->c);
}

TEST_F(huge_lost, private_2m)
{
	struct huge_case *c = &self->c;
	struct kvm_run *run = c->h.vcpu->run;
	char runs[128];
	unsigned int n;
	int r, e;

	setup_fault_injection();
	for (n = 1;; n++) {
		ASSERT_GT(64, n) TH_LOG("no injected failure reached the split");
		fail_nth_set(n);
		r = __vcpu_run(c->h.vcpu);
		e = errno;
		fail_nth_set(0);
		if (rgmem_read_counter("memory_failures_whole_folio") > c->whole)
			break;
		ASSERT_EQ(c->isolated,
			  rgmem_read_counter("memory_failures_isolated"))
			TH_LOG("isolated, with fail-nth %u not reached", n);
		ASSERT_EQ(-1, r);
		ASSERT_EQ(ENOMEM, e) TH_LOG("KVM_RUN: %s", strerror(e));
	}
	/* Lost whole: page 0 too, now and later. */
	ASSERT_EQ(-1, r);
	ASSERT_EQ(EHWPOISON, e) TH_LOG("KVM_RUN: %s", strerror(e));
	ASSERT_EQ(KVM_EXIT_MEMORY_FAULT, run->exit_reason);
	ASSERT_EQ(DATA_GPA, run->memory_fault.gpa);
	expect_poison_exit_at(_metadata, c->h.vcpu, DATA_GPA);
	ASSERT_EQ(c->whole + 1,
		  rgmem_read_counter("memory_failures_whole_folio"));
	ASSERT_EQ(c->isolated, rgmem_read_counter("memory_failures_isolated"));
	folio_runs(ino_of(c->h.fd), runs, sizeof(runs));
	ASSERT_STREQ(c->shape->whole, runs);
	ASSERT_EQ(0, fallocate(c->h.fd, FALLOC_FL_PUNCH_HOLE |
			       FALLOC_FL_KEEP_SIZE, 0, SZ_2M));
	ASSERT_EQ(c->retired + 1, rgmem_read_counter("poisoned_retired"));
}

/*
 * A page of a block split for sharing fails: a private base page beside
 * the shared one.  Memory failure only flags it (a piece is neither
 * hugetlb nor on an LRU).  Making the shared page private again must not
 * merge the block, which would hand the bad page out with the rest; a
 * punch retires it as a poisoned huge page instead of freeing it to the
 * pool.  The first version merged it: "merges" rose, and the punch freed
 * the block to the pool, bad page and all.
 */
TEST(piece_never_merges)
{
	const char *why = conversions_missing(SZ_2M, 2);
	long corrupted = hardware_corrupted_kb();
	long long merges, retired;
	struct pool before, after;
	struct huge_vm h;
	uint64_t pfn;
	uint8_t *mem;
	char runs[128];

	if (why)
		SKIP(return, "%s", why);
	catch_sigbus();
	before = pool_get(SZ_2M);
	h = huge_vm_create(SZ_2M, 1, guest_huge, GUEST_MEMFD_FLAG_MMAP);
	mem = mmap(NULL, SZ_2M, PROT_READ | PROT_WRITE, MAP_SHARED, h.fd, 0);
	ASSERT_NE(MAP_FAILED, mem);
	ASSERT_EQ(0, rgmem_set_range_attributes(h.fd, 5 * PS, PS, 0));
	WRITE_ONCE(mem[5 * PS], 1);
	pfn = pagemap_pfn(mem + 5 * PS);
	ASSERT_NE(0, pfn);
	folio_runs(ino_of(h.fd), runs, sizeof(runs));
	ASSERT_STREQ("0 511 0\n", runs);

	/* Pieces sit where the huge page was: page 6 is the next frame. */
	corrupt_pfn(pfn + 1);
	ASSERT_EQ(corrupted + 4, hardware_corrupted_kb());
	merges = rgmem_read_counter("merges");
	ASSERT_EQ(0, rgmem_set_range_attributes(h.fd, 5 * PS, PS,
						KVM_MEMORY_ATTRIBUTE_PRIVATE));
	ASSERT_EQ(merges, rgmem_read_counter("merges"));
	folio_runs(ino_of(h.fd), runs, sizeof(runs));
	ASSERT_STREQ("0 511 0\n", runs);

	retired = rgmem_read_counter("poisoned_retired");
	ASSERT_EQ(0, fallocate(h.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			       0, SZ_2M));
	ASSERT_EQ(retired + 1, rgmem_read_counter("poisoned_retired"));
	munmap(mem, SZ_2M);
	huge_vm_free(&h, SZ_2M);
	after = pool_get(SZ_2M);
	ASSERT_EQ(before.nr - 1, after.nr);
	ASSERT_EQ(before.free - 1, after.free);
	ASSERT_EQ(before.resv, after.resv);
	ASSERT_EQ(corrupted + 4, hardware_corrupted_kb());
	ASSERT_EQ(0, READ_ONCE(sigbus_count));
}

TEST_HARNESS_MAIN
