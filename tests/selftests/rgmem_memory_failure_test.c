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
 * Huge rows: a private page of a hugetlb-backed file fails.  Its folio is
 * lost whole: KVM's mappings of all of it go, each of its pages gives the
 * guest EHWPOISON, and the other folios stay the guest's.  A punch (2 MiB)
 * or the file's release (1 GiB) lets the block go: the huge page leaves its pool, its healthy pages go to the
 * page allocator, the bad one out of use, and the file's reservation is
 * whole again.  The guest writes the bad page and the next block, reads
 * the next block after the failure, then page 0, which reads zero once
 * punched.
 */
static void guest_huge(uint64_t gpa, uint64_t next)
{
	WRITE_ONCE(*(uint64_t *)(gpa + BAD * PS), PATTERN(BAD));
	if (next)
		WRITE_ONCE(*(uint64_t *)(gpa + next), PATTERN(2));
	GUEST_SYNC(1);
	if (next)
		GUEST_ASSERT_EQ(PATTERN(2), READ_ONCE(*(uint64_t *)(gpa + next)));
	GUEST_SYNC(2);
	GUEST_ASSERT_EQ(0, READ_ONCE(*(uint64_t *)gpa));
	GUEST_DONE();
}

FIXTURE(huge) {};

FIXTURE_VARIANT(huge) {
	uint64_t page_size;
	int blocks;
	int level;	/* KVM's, of a mapping of that size */
	bool punch;	/* else the file's release lets the block go */
};

FIXTURE_VARIANT_ADD(huge, private_2m) {
	.page_size = SZ_2M, .blocks = 2, .level = 2, .punch = true,
};
FIXTURE_VARIANT_ADD(huge, private_1g) {
	.page_size = SZ_1G, .blocks = 1, .level = 3,
};

FIXTURE_SETUP(huge) {}
FIXTURE_TEARDOWN(huge) {}

TEST_F(huge, whole_folio)
{
	const uint64_t ps = variant->page_size;
	const char *why = pool_missing(ps, variant->blocks);
	long corrupted = hardware_corrupted_kb();
	struct pool before, after;
	long long whole, retired;
	struct huge_vm h;
	uint64_t pfn;
	int err;

	if (why)
		SKIP(return, "%s", why);
	if (access(SPTE_EVENT, F_OK))
		SKIP(return, "no %s", SPTE_EVENT);
	catch_sigbus();
	before = pool_get(ps);
	h = huge_vm_create(ps, variant->blocks, guest_huge, 0);
	vcpu_args_set(h.vcpu, 2, DATA_GPA, variant->blocks > 1 ? ps : 0);
	trace_spte(DATA_GPA >> 12, variant->level);
	rgmem_run_to(h.vcpu, UCALL_SYNC);
	pfn = traced_pfn();
	ASSERT_NE(0, pfn) TH_LOG("KVM mapped no huge page at the block");

	whole = rgmem_read_counter("memory_failures_whole_folio");
	retired = rgmem_read_counter("poisoned_retired");
	err = corrupt_pfn(pfn + BAD);
	ASSERT_EQ(0, err) TH_LOG("corrupt-pfn: %s", strerror(err));
	ASSERT_EQ(whole + 1, rgmem_read_counter("memory_failures_whole_folio"))
		TH_LOG("rgmem did not handle the failure");
	ASSERT_EQ(corrupted + 4, hardware_corrupted_kb());
	ASSERT_EQ(0, READ_ONCE(sigbus_count));

	rgmem_run_to(h.vcpu, UCALL_SYNC);
	/* Page 0 is healthy, but went with its folio. */
	expect_poison_exit_at(_metadata, h.vcpu, DATA_GPA);
	if (variant->punch) {
		ASSERT_EQ(0, fallocate(h.fd, FALLOC_FL_PUNCH_HOLE |
				       FALLOC_FL_KEEP_SIZE, 0, ps));
		ASSERT_EQ(retired + 1, rgmem_read_counter("poisoned_retired"));
		rgmem_run_to(h.vcpu, UCALL_DONE);
	}
	huge_vm_free(&h, ps);

	/* One huge page fewer, and no reservation left behind. */
	after = pool_get(ps);
	ASSERT_EQ(before.nr - 1, after.nr);
	ASSERT_EQ(before.free - 1, after.free);
	ASSERT_EQ(before.resv, after.resv);
	ASSERT_EQ(before.surplus, after.surplus);
	ASSERT_EQ(corrupted + 4, hardware_corrupted_kb());
}

TEST_HARNESS_MAIN
