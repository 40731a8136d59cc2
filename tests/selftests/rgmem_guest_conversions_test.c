// SPDX-License-Identifier: GPL-2.0
/*
 * Guest-driven in-place conversions of rgmem's guest_memfd, with the memory
 * attributes held by the guest_memfd itself (kvm.vm_memory_attributes=0).
 *
 * This is 6.12's x86_64/private_mem_conversions_test moved onto one
 * guest_memfd that is both the private and the shared memory:
 * - The file is created with GUEST_MEMFD_FLAG_MMAP and the host maps it
 *   MAP_SHARED.  That mapping is every memslot's userspace_addr, so KVM's
 *   shared faults (GUP of userspace_addr) reach the file's own pages, and
 *   the host reads and writes the guest's shared memory through it.
 * - Each vCPU asks for conversions with KVM_HC_MAP_GPA_RANGE.  Its thread
 *   handles the KVM_EXIT_HYPERCALL with KVM_SET_MEMORY_ATTRIBUTES2 on the
 *   guest_memfd (and, when asked, fallocate() or PUNCH_HOLE first, as
 *   upstream's do_fallocate), splitting the range at memslot boundaries.
 *   The VM ioctl KVM_SET_MEMORY_ATTRIBUTES is refused in this mode.
 * - As the pages are the same on both sides, contents survive a conversion
 *   unless the range is punched, after which it reads 0; and the host's
 *   accesses to private pages raise SIGBUS.
 *
 * rgmem's debugfs counters prove that rgmem served the file, converted its
 * pages, and took the faults of both sides.  The test fails (never skips)
 * when rgmem is not loaded; with vm_memory_attributes=Y it skips.
 *
 * Sizes are a quarter of upstream's (LARGE is 512 KiB, not 2 MiB) so that a
 * vCPU takes about 4,000 nested page faults, which QEMU's TCG emulation of
 * nested SVM runs in reasonable time.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/compiler.h>
#include <linux/falloc.h>
#include <linux/kernel.h>
#include <linux/kvm.h>
#include <linux/kvm_para.h>
#include <linux/sizes.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"

#include "rgmem_kvm.h"

#define BASE_DATA_SLOT		10
#define BASE_DATA_GPA		((uint64_t)(1ull << 32))
/* Upstream: SZ_2M.  The ranges keep their pattern at a quarter the size. */
#define LARGE			((uint64_t)SZ_512K)
#define PER_CPU_DATA_SIZE	(LARGE + PAGE_SIZE)
/*
 * Each vCPU's region is aligned to LARGE, as upstream's to 2M, so memslot
 * boundaries fall where upstream's do: with -m 2 and one vCPU, a LARGE
 * range starting at PAGE_SIZE spans two memslots.
 */
#define PER_CPU_ALIGN		LARGE
/* Pages at the start of a range converted back to shared one by one. */
#define HOLE_PAGES		8
/* Tries of a conversion the file refuses with EAGAIN (a transient ref). */
#define EAGAIN_TRIES		1000

/*
 * The hypercall's attributes: KVM passes them through untouched.  Private
 * or shared is the encryption status; the rest are this test's own bits.
 */
#define MAP_GPA_SET_ATTRIBUTES	BIT(8)
#define MAP_GPA_DO_FALLOCATE	BIT(9)

enum ucall_syncs {
	SYNC_SHARED,
	SYNC_PRIVATE,
};

/* The guest expects @size bytes at @gpa (a multiple of 8) to be @pattern. */
#define guest_expect(gpa, pattern, size)					\
do {										\
	const uint64_t __want = (uint64_t)(uint8_t)(pattern) *			\
				0x0101010101010101ull;				\
	const uint64_t *__w = (const uint64_t *)(gpa);				\
	uint64_t __i;								\
										\
	for (__i = 0; __i < (size) / 8; __i++)					\
		__GUEST_ASSERT(__w[__i] == __want,				\
			       "Guest expected 0x%x at gpa 0x%lx, got 0x%lx",	\
			       (uint8_t)(pattern), (uint64_t)(gpa) + __i * 8,	\
			       __w[__i]);					\
} while (0)

/* The host checks and reads @cur, then writes @new, through its mapping. */
static void guest_sync_shared(uint64_t gpa, uint64_t size, uint8_t cur,
			      uint8_t new)
{
	GUEST_SYNC5(SYNC_SHARED, gpa, size, cur, new);
}

/* The host checks that it cannot read (nor write) the private range. */
static void guest_sync_private(uint64_t gpa, uint64_t size)
{
	GUEST_SYNC3(SYNC_PRIVATE, gpa, size);
}

static void guest_map(uint64_t gpa, uint64_t size, bool private,
		      bool set_attributes, bool do_fallocate)
{
	uint64_t flags = private ? KVM_MAP_GPA_RANGE_ENCRYPTED :
				   KVM_MAP_GPA_RANGE_DECRYPTED;

	if (set_attributes)
		flags |= MAP_GPA_SET_ATTRIBUTES;
	if (do_fallocate)
		flags |= MAP_GPA_DO_FALLOCATE;
	kvm_hypercall_map_gpa_range(gpa, size, flags);
}

static void guest_map_shared(uint64_t gpa, uint64_t size, bool do_fallocate)
{
	guest_map(gpa, size, false, true, do_fallocate);
}

static void guest_map_private(uint64_t gpa, uint64_t size, bool do_fallocate)
{
	guest_map(gpa, size, true, true, do_fallocate);
}

/* "Shared" with fallocate and no attributes: PUNCH_HOLE alone. */
static void guest_punch_hole(uint64_t gpa, uint64_t size)
{
	guest_map(gpa, size, false, false, true);
}

struct {
	uint64_t offset;
	uint64_t size;
} static const test_ranges[] = {
	{ 0, PAGE_SIZE },
	{ 0, LARGE },
	{ PAGE_SIZE, PAGE_SIZE },
	{ PAGE_SIZE, LARGE },
	{ LARGE, PAGE_SIZE },
};

/* Whether page @off of a range of @size is one of the holes made shared. */
static bool guest_is_hole(uint64_t off, uint64_t size)
{
	uint64_t holes = size < HOLE_PAGES * PAGE_SIZE ? size :
			 HOLE_PAGES * PAGE_SIZE;

	return off < holes && ((off >> PAGE_SHIFT) & 1);
}

/* The region outside [gpa, gpa + size) still holds @pattern. */
static void guest_expect_rest(uint64_t base_gpa, uint64_t gpa, uint64_t size,
			      uint8_t pattern)
{
	if (gpa > base_gpa)
		guest_expect(base_gpa, pattern, gpa - base_gpa);
	if (gpa + size < base_gpa + PER_CPU_DATA_SIZE)
		guest_expect(gpa + size, pattern,
			     base_gpa + PER_CPU_DATA_SIZE - (gpa + size));
}

/*
 * Upstream's explicit conversions, in place: what the guest writes as
 * private is what the host then reads as shared, and the other way round,
 * unless the conversion punched the range (do_fallocate), which empties it.
 * The whole region is shared on entry and on return.
 */
static void guest_test_explicit_conversion(uint64_t base_gpa, bool do_fallocate)
{
	const uint8_t def_p = 0xaa;
	const uint8_t init_p = 0xcc;
	uint64_t j;
	int i;

	memset((void *)base_gpa, def_p, PER_CPU_DATA_SIZE);
	guest_expect(base_gpa, def_p, PER_CPU_DATA_SIZE);
	guest_sync_shared(base_gpa, PER_CPU_DATA_SIZE, def_p, init_p);
	guest_expect(base_gpa, init_p, PER_CPU_DATA_SIZE);

	for (i = 0; i < ARRAY_SIZE(test_ranges); i++) {
		uint64_t gpa = base_gpa + test_ranges[i].offset;
		uint64_t size = test_ranges[i].size;
		const uint8_t p1 = 0x11;
		const uint8_t p2 = 0x22;
		const uint8_t p3 = 0x33;
		const uint8_t p4 = 0x44;

		memset((void *)gpa, p1, size);

		/*
		 * To private: fallocate() only allocates, so the shared data
		 * is now the private data whatever do_fallocate says.  The
		 * host loses access to it; the rest of the region is shared
		 * and untouched.
		 */
		guest_map_private(gpa, size, do_fallocate);
		guest_expect(gpa, p1, size);
		memset((void *)gpa, p2, size);
		guest_sync_private(gpa, size);
		guest_expect(gpa, p2, size);
		guest_expect_rest(base_gpa, gpa, size, init_p);

		/*
		 * Convert the odd pages of the range's start back to shared,
		 * leaving holes in the private range.  The host sees the
		 * private data there, or zeroes if the conversion punched.
		 */
		for (j = 0; j < size && j < HOLE_PAGES * PAGE_SIZE; j += PAGE_SIZE) {
			if (guest_is_hole(j, size)) {
				guest_map_shared(gpa + j, PAGE_SIZE, do_fallocate);
				guest_sync_shared(gpa + j, PAGE_SIZE,
						  do_fallocate ? 0 : p2, p3);
				guest_expect(gpa + j, p3, PAGE_SIZE);
			} else {
				guest_sync_private(gpa + j, PAGE_SIZE);
			}
		}

		/*
		 * The whole range back to shared, over the holes: each page
		 * keeps what it held, or reads 0 once punched.  Then the
		 * guest and the host trade patterns three and four.
		 */
		guest_map_shared(gpa, size, do_fallocate);
		for (j = 0; j < size; j += PAGE_SIZE) {
			uint8_t want = do_fallocate ? 0 :
				       guest_is_hole(j, size) ? p3 : p2;

			guest_expect(gpa + j, want, PAGE_SIZE);
		}
		memset((void *)gpa, p3, size);
		guest_sync_shared(gpa, size, p3, p4);
		guest_expect(gpa, p4, size);
		guest_expect_rest(base_gpa, gpa, size, init_p);

		/*
		 * Free (PUNCH_HOLE) the whole region for a clean slate.  In
		 * place, that empties the shared data too: guest and host
		 * read 0, and the host puts the initial pattern back.
		 */
		guest_map_shared(base_gpa, PER_CPU_DATA_SIZE, true);
		guest_expect(base_gpa, 0, PER_CPU_DATA_SIZE);
		guest_sync_shared(base_gpa, PER_CPU_DATA_SIZE, 0, init_p);
		guest_expect(base_gpa, init_p, PER_CPU_DATA_SIZE);
	}
}

/*
 * Upstream's PUNCH_HOLE test: freeing zaps the guest's mappings and the
 * next fault gets a zeroed page.  The hole stays private: the host still
 * cannot read it.  Leaves the region private.
 */
static void guest_test_punch_hole(uint64_t base_gpa, bool precise)
{
	const uint8_t init_p = 0xcc;
	int i;

	guest_map_private(base_gpa, PER_CPU_DATA_SIZE, false);

	for (i = 0; i < ARRAY_SIZE(test_ranges); i++) {
		uint64_t gpa = base_gpa + test_ranges[i].offset;
		uint64_t size = test_ranges[i].size;

		guest_punch_hole(base_gpa, PER_CPU_DATA_SIZE);

		if (precise) {
			memset((void *)gpa, init_p, size);
			guest_expect(gpa, init_p, size);
		} else {
			memset((void *)base_gpa, init_p, PER_CPU_DATA_SIZE);
			guest_expect(base_gpa, init_p, PER_CPU_DATA_SIZE);
		}

		guest_punch_hole(gpa, size);
		guest_sync_private(gpa, size);
		guest_expect(gpa, 0, size);
		if (!precise)
			guest_expect_rest(base_gpa, gpa, size, init_p);
	}
}

static void guest_code(uint64_t base_gpa)
{
	/*
	 * The file starts private.  Convert the region to shared, where
	 * upstream's VM-level attributes start.
	 */
	guest_map_shared(base_gpa, PER_CPU_DATA_SIZE, false);

	guest_test_explicit_conversion(base_gpa, false);
	guest_test_explicit_conversion(base_gpa, true);

	guest_test_punch_hole(base_gpa, false);
	guest_test_punch_hole(base_gpa, true);
	GUEST_DONE();
}

/* The guest_memfd behind all the data memslots, and the host's view of it. */
static int gmem_fd;
static uint8_t *gmem_mem;
static uint64_t gmem_size;
/* Memslot i maps [i * slot_size, (i + 1) * slot_size) of the file. */
static uint64_t slot_size;
/*
 * What the host made each page of the file: 1 private, 0 shared.  The
 * vCPUs' regions are disjoint, so each thread writes its own bytes.
 */
static uint8_t *page_private;

/* Totals over all vCPU threads, updated atomically. */
static struct {
	/* Successful KVM_SET_MEMORY_ATTRIBUTES2 calls... */
	uint64_t ioctls;
	/* ...of which these changed some page between private and shared. */
	uint64_t changes;
	uint64_t eagains;
	uint64_t fallocates;
	uint64_t punches;
	/* Host accesses to private pages, each of which raised SIGBUS. */
	uint64_t sigbuses;
} stats;

#define stat_add(field, n)	__atomic_fetch_add(&stats.field, (n), __ATOMIC_RELAXED)

static uint8_t *gpa_hva(uint64_t gpa)
{
	return gmem_mem + (gpa - BASE_DATA_GPA);
}

static uint64_t gpa_page(uint64_t gpa)
{
	return (gpa - BASE_DATA_GPA) >> PAGE_SHIFT;
}

/*
 * SIGBUS from the host's mapping of private pages.  The handler is the
 * process's; where it jumps is the faulting thread's own.
 */
static __thread sigjmp_buf sigbus_env;
static __thread bool sigbus_armed;
static __thread void *sigbus_addr;

static void on_sigbus(int sig, siginfo_t *info, void *ctx)
{
	if (!READ_ONCE(sigbus_armed)) {
		/* Unexpected: fault again and die of it. */
		signal(SIGBUS, SIG_DFL);
		return;
	}
	WRITE_ONCE(sigbus_armed, false);
	sigbus_addr = info->si_addr;
	siglongjmp(sigbus_env, 1);
}

static void install_sigbus_handler(void)
{
	struct sigaction sa = {
		.sa_sigaction = on_sigbus,
		.sa_flags = SA_SIGINFO,
	};

	TEST_ASSERT(!sigaction(SIGBUS, &sa, NULL), "sigaction: %s",
		    strerror(errno));
}

/* Whether reading the byte at @p, or writing @val there, raised SIGBUS. */
static bool host_access_sigbuses(uint8_t *p, bool write, uint8_t val)
{
	if (sigsetjmp(sigbus_env, 1)) {
		TEST_ASSERT(((uintptr_t)sigbus_addr & ~(PAGE_SIZE - 1)) ==
			    ((uintptr_t)p & ~(PAGE_SIZE - 1)),
			    "SIGBUS at %p while accessing %p", sigbus_addr, p);
		return true;
	}
	/* Volatile accesses, kept in this order around the access. */
	WRITE_ONCE(sigbus_armed, true);
	if (write)
		WRITE_ONCE(*p, val);
	else
		(void)READ_ONCE(*p);
	WRITE_ONCE(sigbus_armed, false);
	return false;
}

/* The host can neither read nor write private @gpa. */
static void host_expect_private(uint64_t gpa, bool write_too)
{
	uint8_t *hva = gpa_hva(gpa);

	TEST_ASSERT(host_access_sigbuses(hva, false, 0),
		    "Host read private gpa 0x%lx without SIGBUS", gpa);
	stat_add(sigbuses, 1);
	if (write_too) {
		TEST_ASSERT(host_access_sigbuses(hva, true, 0x5a),
			    "Host wrote private gpa 0x%lx without SIGBUS", gpa);
		stat_add(sigbuses, 1);
	}
}

static void memcmp_h(uint8_t *mem, uint64_t gpa, uint8_t pattern, size_t size)
{
	size_t i;

	for (i = 0; i < size; i++)
		TEST_ASSERT(mem[i] == pattern,
			    "Host expected 0x%x at gpa 0x%lx, got 0x%x",
			    pattern, gpa + i, mem[i]);
}

static void host_sync_shared(uint64_t gpa, uint64_t size, uint8_t cur,
			     uint8_t new)
{
	uint64_t i;

	for (i = 0; i < size; i += PAGE_SIZE) {
		uint8_t *hva = gpa_hva(gpa + i);

		TEST_ASSERT(!page_private[gpa_page(gpa + i)],
			    "Guest synced gpa 0x%lx as shared, but it is private",
			    gpa + i);
		TEST_ASSERT(!host_access_sigbuses(hva, false, 0),
			    "Host read of shared gpa 0x%lx raised SIGBUS",
			    gpa + i);
		memcmp_h(hva, gpa + i, cur, PAGE_SIZE);
		memset(hva, new, PAGE_SIZE);
	}
}

static void host_sync_private(uint64_t gpa, uint64_t size)
{
	uint64_t i;

	for (i = 0; i < size; i += PAGE_SIZE) {
		TEST_ASSERT(page_private[gpa_page(gpa + i)],
			    "Guest synced gpa 0x%lx as private, but it is shared",
			    gpa + i);
		host_expect_private(gpa + i, !i);
	}
}

static void gmem_fallocate(uint64_t offset, uint64_t len, bool punch)
{
	int mode = FALLOC_FL_KEEP_SIZE | (punch ? FALLOC_FL_PUNCH_HOLE : 0);
	int r;

	r = fallocate(gmem_fd, mode, offset, len);
	TEST_ASSERT(!r, __KVM_SYSCALL_ERROR("fallocate()", r));
	if (punch)
		stat_add(punches, 1);
	else
		stat_add(fallocates, 1);
}

/*
 * KVM_SET_MEMORY_ATTRIBUTES2 on the file.  The ioctl does not say whether
 * it changed anything, so the host's own record of the pages does.
 */
static void gmem_set_attributes(uint64_t offset, uint64_t len, bool private)
{
	uint64_t first = offset >> PAGE_SHIFT, n = len >> PAGE_SHIFT, i;
	bool changes = false;
	int tries, r;

	for (i = first; i < first + n; i++)
		changes |= page_private[i] != private;

	for (tries = 1;; tries++) {
		struct kvm_memory_attributes2 attr = {
			.offset = offset,
			.size = len,
			.attributes = private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
		};

		r = ioctl(gmem_fd, KVM_SET_MEMORY_ATTRIBUTES2, &attr);
		if (!r)
			break;
		/* Someone briefly held a page: what userspace should retry. */
		TEST_ASSERT(errno == EAGAIN,
			    "KVM_SET_MEMORY_ATTRIBUTES2(0x%lx, 0x%lx, %s): %s",
			    offset, len, private ? "private" : "shared",
			    strerror(errno));
		TEST_ASSERT(attr.error_offset >= offset &&
			    attr.error_offset < offset + len,
			    "EAGAIN with error_offset 0x%llx outside [0x%lx, 0x%lx)",
			    attr.error_offset, offset, offset + len);
		TEST_ASSERT(tries < EAGAIN_TRIES,
			    "KVM_SET_MEMORY_ATTRIBUTES2(0x%lx, 0x%lx): EAGAIN %d times, last at 0x%llx",
			    offset, len, tries, attr.error_offset);
		stat_add(eagains, 1);
		usleep(1000);
	}

	memset(page_private + first, private, n);
	stat_add(ioctls, 1);
	if (changes)
		stat_add(changes, 1);
}

static void handle_exit_hypercall(struct kvm_vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint64_t gpa = run->hypercall.args[0];
	uint64_t size = run->hypercall.args[1] * PAGE_SIZE;
	uint64_t flags = run->hypercall.args[2];
	bool private = flags & KVM_MAP_GPA_RANGE_ENCRYPTED;
	uint64_t cur, next;

	TEST_ASSERT(run->hypercall.nr == KVM_HC_MAP_GPA_RANGE,
		    "Wanted MAP_GPA_RANGE (%u), got '%llu'",
		    KVM_HC_MAP_GPA_RANGE, run->hypercall.nr);
	TEST_ASSERT(gpa >= BASE_DATA_GPA && size <= gmem_size &&
		    gpa - BASE_DATA_GPA <= gmem_size - size,
		    "MAP_GPA_RANGE [0x%lx, 0x%lx) is not in the guest_memfd",
		    gpa, gpa + size);

	/* Each memslot's piece of the range is a range of the file. */
	for (cur = gpa; cur < gpa + size; cur = next) {
		uint64_t slot = (cur - BASE_DATA_GPA) / slot_size;
		uint64_t slot_gpa = BASE_DATA_GPA + slot * slot_size;
		uint64_t slot_offset = slot * slot_size;
		uint64_t offset = slot_offset + (cur - slot_gpa);

		next = min(gpa + size, slot_gpa + slot_size);
		if (flags & MAP_GPA_DO_FALLOCATE)
			gmem_fallocate(offset, next - cur, !private);
		if (flags & MAP_GPA_SET_ATTRIBUTES)
			gmem_set_attributes(offset, next - cur, private);
	}
	run->hypercall.ret = 0;
}

static pthread_barrier_t start_barrier;

static void *vcpu_thread(void *__vcpu)
{
	struct kvm_vcpu *vcpu = __vcpu;
	struct kvm_run *run = vcpu->run;
	struct ucall uc;
	int r;

	pthread_barrier_wait(&start_barrier);

	for (;;) {
		r = _vcpu_run(vcpu);
		TEST_ASSERT(!r,
			    "KVM_RUN: %s, exit reason %u (%s), memory fault flags 0x%llx gpa 0x%llx size 0x%llx",
			    strerror(errno), run->exit_reason,
			    exit_reason_str(run->exit_reason),
			    run->memory_fault.flags, run->memory_fault.gpa,
			    run->memory_fault.size);

		if (run->exit_reason == KVM_EXIT_HYPERCALL) {
			handle_exit_hypercall(vcpu);
			continue;
		}

		TEST_ASSERT(run->exit_reason == KVM_EXIT_IO,
			    "Wanted KVM_EXIT_IO, got exit reason: %u (%s)",
			    run->exit_reason, exit_reason_str(run->exit_reason));

		switch (get_ucall(vcpu, &uc)) {
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
		case UCALL_SYNC:
			if (uc.args[0] == SYNC_SHARED)
				host_sync_shared(uc.args[1], uc.args[2],
						 uc.args[3], uc.args[4]);
			else if (uc.args[0] == SYNC_PRIVATE)
				host_sync_private(uc.args[1], uc.args[2]);
			else
				TEST_FAIL("Unknown sync command '%ld'", uc.args[0]);
			break;
		case UCALL_DONE:
			return NULL;
		default:
			TEST_FAIL("Unknown ucall 0x%lx.", uc.cmd);
		}
	}
}

static void test_mem_conversions(uint32_t nr_vcpus, uint32_t nr_memslots)
{
	const uint64_t per_cpu_size = align_up(PER_CPU_DATA_SIZE, PER_CPU_ALIGN);
	struct kvm_vcpu *vcpus[KVM_MAX_VCPUS];
	pthread_t threads[KVM_MAX_VCPUS];
	long long files_created, get_pfn, conversions, user_faults;
	long long d_get_pfn, d_conversions, d_user_faults;
	struct kvm_vm *vm;
	uint64_t i;
	int r;

	const struct vm_shape shape = {
		.mode = VM_MODE_DEFAULT,
		.type = KVM_X86_SW_PROTECTED_VM,
	};

	TEST_ASSERT(nr_vcpus <= KVM_MAX_VCPUS, "At most %d vCPUs",
		    KVM_MAX_VCPUS);
	gmem_size = per_cpu_size * nr_vcpus;
	slot_size = gmem_size / nr_memslots;
	TEST_ASSERT(slot_size * nr_memslots == gmem_size &&
		    !(slot_size % PAGE_SIZE),
		    "The guest_memfd size (0x%lx) needs to be cleanly divisible into %u page-aligned memslots",
		    gmem_size, nr_memslots);

	vm = __vm_create_with_vcpus(shape, nr_vcpus, 0, guest_code, vcpus);

	/* The attributes are the guest_memfd's, not the VM's. */
	TEST_ASSERT(!vm_check_cap(vm, KVM_CAP_MEMORY_ATTRIBUTES),
		    "KVM_CAP_MEMORY_ATTRIBUTES is 0x%x with vm_memory_attributes=N",
		    vm_check_cap(vm, KVM_CAP_MEMORY_ATTRIBUTES));
	TEST_ASSERT(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES) &
		    KVM_MEMORY_ATTRIBUTE_PRIVATE,
		    "KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES lacks PRIVATE: 0x%x",
		    vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES));
	TEST_ASSERT(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS) &
		    GUEST_MEMFD_FLAG_MMAP,
		    "KVM_CAP_GUEST_MEMFD_FLAGS lacks MMAP: 0x%x",
		    vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS));

	vm_enable_cap(vm, KVM_CAP_EXIT_HYPERCALL, (1 << KVM_HC_MAP_GPA_RANGE));

	files_created = rgmem_read_counter("files_created");
	gmem_fd = rgmem_create_mapped_gmem(vm, gmem_size, GUEST_MEMFD_FLAG_MMAP,
					   &gmem_mem);
	page_private = malloc(gmem_size >> PAGE_SHIFT);
	TEST_ASSERT(page_private, "malloc");
	/* Without GUEST_MEMFD_FLAG_INIT_SHARED, all of it starts private. */
	memset(page_private, 1, gmem_size >> PAGE_SHIFT);

	for (i = 0; i < nr_memslots; i++)
		vm_set_user_memory_region2(vm, BASE_DATA_SLOT + i,
					   KVM_MEM_GUEST_MEMFD,
					   BASE_DATA_GPA + slot_size * i,
					   slot_size, gmem_mem + slot_size * i,
					   gmem_fd, slot_size * i);

	install_sigbus_handler();
	TEST_ASSERT(!pthread_barrier_init(&start_barrier, NULL, nr_vcpus + 1),
		    "pthread_barrier_init");

	for (i = 0; i < nr_vcpus; i++) {
		uint64_t gpa = BASE_DATA_GPA + i * per_cpu_size;

		/* The host cannot touch the region before the guest shares it. */
		host_expect_private(gpa, true);

		vcpu_args_set(vcpus[i], 1, gpa);

		/*
		 * Map only what is needed so that an out-of-bounds access
		 * results #PF => SHUTDOWN instead of data corruption.
		 */
		virt_map(vm, gpa, gpa, PER_CPU_DATA_SIZE / vm->page_size);

		r = pthread_create(&threads[i], NULL, vcpu_thread, vcpus[i]);
		TEST_ASSERT(!r, "pthread_create: %s", strerror(r));
	}

	get_pfn = rgmem_read_counter("get_pfn");
	conversions = rgmem_read_counter("conversions");
	user_faults = rgmem_read_counter("user_faults");

	pthread_barrier_wait(&start_barrier);
	for (i = 0; i < nr_vcpus; i++)
		pthread_join(threads[i], NULL);

	d_get_pfn = rgmem_read_counter("get_pfn") - get_pfn;
	d_conversions = rgmem_read_counter("conversions") - conversions;
	d_user_faults = rgmem_read_counter("user_faults") - user_faults;
	pr_info("%u vCPUs, %u memslots: %lu conversions (%lu changing pages, %lu EAGAIN), %lu fallocates, %lu punches, %lu host SIGBUS\n",
		nr_vcpus, nr_memslots, stats.ioctls, stats.changes,
		stats.eagains, stats.fallocates, stats.punches, stats.sigbuses);
	pr_info("rgmem: conversions +%lld, get_pfn +%lld, user_faults +%lld\n",
		d_conversions, d_get_pfn, d_user_faults);

	/* Every region ends private, and so is what no vCPU used. */
	for (i = 0; i < nr_vcpus; i++) {
		uint64_t gpa = BASE_DATA_GPA + i * per_cpu_size;

		host_expect_private(gpa, false);
		host_expect_private(gpa + PER_CPU_DATA_SIZE - PAGE_SIZE, false);
		if (per_cpu_size > PER_CPU_DATA_SIZE)
			host_expect_private(gpa + PER_CPU_DATA_SIZE, true);
	}

	TEST_ASSERT(rgmem_read_counter("files_created") == files_created + 1,
		    "rgmem created %lld files, wanted 1",
		    rgmem_read_counter("files_created") - files_created);
	TEST_ASSERT(stats.changes >= 3 * nr_vcpus,
		    "Only %lu conversions changed pages", stats.changes);
	/*
	 * rgmem counts a call that changed pages once, and a call that
	 * changed none not at all; no one else converts meanwhile.
	 */
	TEST_ASSERT(d_conversions >= (long long)stats.changes,
		    "rgmem counted %lld conversions, but %lu changed pages",
		    d_conversions, stats.changes);
	TEST_ASSERT(d_conversions <= (long long)stats.ioctls,
		    "rgmem counted %lld conversions of %lu calls",
		    d_conversions, stats.ioctls);
	TEST_ASSERT(d_get_pfn > 0, "rgmem served no private fault");
	TEST_ASSERT(d_user_faults > 0, "rgmem served no fault of its mapping");
	TEST_ASSERT(stats.sigbuses > 0, "The host never met private memory");

	kvm_vm_free(vm);

	/*
	 * Allocate and free memory from the guest_memfd after closing the VM
	 * fd: the file holds a reference to its VM.
	 */
	munmap(gmem_mem, gmem_size);
	r = fallocate(gmem_fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0,
		      gmem_size);
	TEST_ASSERT(!r, __KVM_SYSCALL_ERROR("fallocate()", r));
	r = fallocate(gmem_fd, FALLOC_FL_KEEP_SIZE, 0, gmem_size);
	TEST_ASSERT(!r, __KVM_SYSCALL_ERROR("fallocate()", r));
	close(gmem_fd);
	free(page_private);
	pthread_barrier_destroy(&start_barrier);
}

static void print_usage(const char *cmd)
{
	puts("");
	printf("usage: %s [-h] [-m nr_memslots] [-n nr_vcpus]\n", cmd);
	puts("");
	puts(" -n: specify the number of vcpus (default: 1)");
	puts("");
	puts(" -m: specify the number of memslots (default: 1)");
	puts("");
}

int main(int argc, char *argv[])
{
	uint32_t nr_memslots = 1;
	uint32_t nr_vcpus = 1;
	int opt;

	while ((opt = getopt(argc, argv, "hm:n:")) != -1) {
		switch (opt) {
		case 'n':
			nr_vcpus = atoi_positive("nr_vcpus", optarg);
			break;
		case 'm':
			nr_memslots = atoi_positive("nr_memslots", optarg);
			break;
		case 'h':
		default:
			print_usage(argv[0]);
			exit(0);
		}
	}

	rgmem_require_gmem_attributes();

	test_mem_conversions(nr_vcpus, nr_memslots);

	return 0;
}
