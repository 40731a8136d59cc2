// SPDX-License-Identifier: GPL-2.0
/*
 * A guest whose whole RAM is one rgmem file: the "secret-free VM" that
 * GUEST_MEMFD_FLAG_MMAP exists for, with kvm.vm_memory_attributes=0.
 *
 * One guest_memfd, created with GUEST_MEMFD_FLAG_MMAP and
 * GUEST_MEMFD_FLAG_INIT_SHARED and mapped MAP_SHARED by the host, backs
 * every memslot: memslot 0 (the guest's code, stack, page tables and
 * descriptor tables) at file offset 0, and a data memslot after it.  The
 * host's mapping is each memslot's userspace_addr, so KVM reaches shared
 * pages by GUP of the file's own mapping and private ones through rgmem's
 * get_pfn.
 *
 * The selftest library builds memslot 0 in anonymous memory.  Once the VM
 * and its vCPU are set up, the test saves that memory, maps the file over
 * it (MAP_FIXED, so every address the library and the guest hold stays
 * valid), puts the contents back, and binds memslot 0 to the file.  The
 * host checks the guest's work through a second mapping of the whole file.
 *
 * The guest then writes a marker into one of its globals and a pattern
 * into the data memslot, both read back by the host through the file.  The
 * host converts half of the data memslot to private in place; the guest
 * finds its data there and overwrites it, the host cannot read it (SIGBUS),
 * and after converting it back the host reads what the guest wrote.
 * rgmem's counters prove that it served the file and both kinds of fault.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/compiler.h>
#include <linux/kvm.h>
#include <linux/sizes.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"

#include "rgmem_kvm.h"

#define DATA_SLOT		10
#define DATA_GPA		((uint64_t)(1ull << 32))
#define DATA_PAGES		64
#define DATA_SIZE		((uint64_t)DATA_PAGES * PAGE_SIZE)
/* The data pages the host makes private, from this one to the end. */
#define FIRST_PRIVATE		(DATA_PAGES / 2)
#define MARKER			0x5ec7e7f7ee0ddull

enum { STAGE_SHARED = 1, STAGE_PRIVATE, STAGE_DONE };

/* Set by the guest, read by the host through the file. */
static uint64_t guest_marker;

static uint8_t shared_pattern(uint64_t page)
{
	return 0x10 + page;
}

static uint8_t private_pattern(uint64_t page)
{
	return 0x80 + page;
}

static void guest_fill(uint64_t page, uint8_t pattern)
{
	memset((void *)(DATA_GPA + page * PAGE_SIZE), pattern, PAGE_SIZE);
}

static void guest_expect(uint64_t page, uint8_t pattern)
{
	const uint8_t *p = (const uint8_t *)(DATA_GPA + page * PAGE_SIZE);
	uint64_t i;

	for (i = 0; i < PAGE_SIZE; i++)
		__GUEST_ASSERT(p[i] == pattern,
			       "Guest expected 0x%x at page %lu byte %lu, got 0x%x",
			       pattern, page, i, p[i]);
}

static void guest_code(void)
{
	uint64_t i;

	WRITE_ONCE(guest_marker, MARKER);
	for (i = 0; i < DATA_PAGES; i++)
		guest_fill(i, shared_pattern(i));
	GUEST_SYNC(STAGE_SHARED);

	/* In place: the private pages hold what the guest wrote as shared. */
	for (i = FIRST_PRIVATE; i < DATA_PAGES; i++) {
		guest_expect(i, shared_pattern(i));
		guest_fill(i, private_pattern(i));
	}
	GUEST_SYNC(STAGE_PRIVATE);
	GUEST_DONE();
}

static int gmem_fd;
/* The whole file: the data memslot's memory, and the host's view. */
static uint8_t *gmem_mem;
static uint64_t slot0_size;

static sigjmp_buf sigbus_env;

static void on_sigbus(int sig)
{
	siglongjmp(sigbus_env, 1);
}

/* Whether the host's read of @p raised SIGBUS. */
static bool host_read_sigbuses(const uint8_t *p)
{
	if (sigsetjmp(sigbus_env, 1))
		return true;
	(void)READ_ONCE(*p);
	return false;
}

static uint8_t *data_hva(uint64_t page)
{
	return gmem_mem + slot0_size + page * PAGE_SIZE;
}

static void host_expect(uint64_t page, uint8_t pattern)
{
	const uint8_t *p = data_hva(page);
	uint64_t i;

	for (i = 0; i < PAGE_SIZE; i++)
		TEST_ASSERT(p[i] == pattern,
			    "Host expected 0x%x at data page %lu byte %lu, got 0x%x",
			    pattern, page, i, p[i]);
}

static void set_private(uint64_t first, uint64_t n, bool private)
{
	struct kvm_memory_attributes2 attr = {
		.offset = slot0_size + first * PAGE_SIZE,
		.size = n * PAGE_SIZE,
		.attributes = private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0,
	};
	int r = ioctl(gmem_fd, KVM_SET_MEMORY_ATTRIBUTES2, &attr);

	TEST_ASSERT(!r, "KVM_SET_MEMORY_ATTRIBUTES2(%s): %s",
		    private ? "private" : "shared", strerror(errno));
}

/* Runs the guest to its next stage, which must be @stage. */
static void run_stage(struct kvm_vcpu *vcpu, unsigned int stage)
{
	struct ucall uc;

	vcpu_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	switch (get_ucall(vcpu, &uc)) {
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
	case UCALL_SYNC:
		TEST_ASSERT(uc.args[1] == stage, "Stage %lu, wanted %u",
			    uc.args[1], stage);
		break;
	case UCALL_DONE:
		TEST_ASSERT(stage == STAGE_DONE, "Done, wanted stage %u", stage);
		break;
	default:
		TEST_FAIL("Unexpected ucall %lu", uc.cmd);
	}
}

/*
 * Moves memslot 0 into the file at offset 0, mapped where its anonymous
 * memory was: the library's region and the guest's pointers to host
 * addresses (its ucall structures) stay as they are.
 */
static void move_slot0(struct kvm_vm *vm)
{
	struct userspace_mem_region *slot0 = memslot2region(vm, 0);
	struct kvm_userspace_memory_region2 region = slot0->region;
	void *hva = slot0->host_mem, *copy, *p;

	TEST_ASSERT(!region.guest_phys_addr && !region.flags,
		    "Memslot 0 is at 0x%llx with flags 0x%x", region.guest_phys_addr,
		    region.flags);
	TEST_ASSERT(region.userspace_addr == (uintptr_t)hva,
		    "Memslot 0 maps 0x%llx, its host memory is at %p",
		    region.userspace_addr, hva);
	copy = malloc(slot0_size);
	TEST_ASSERT(copy, "malloc");
	memcpy(copy, hva, slot0_size);

	region.memory_size = 0;
	vm_ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &region);
	p = mmap(hva, slot0_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 gmem_fd, 0);
	TEST_ASSERT(p == hva, "mmap of the guest_memfd over memslot 0: %s",
		    strerror(errno));
	memcpy(hva, copy, slot0_size);
	free(copy);

	region.memory_size = slot0_size;
	region.flags = KVM_MEM_GUEST_MEMFD;
	region.guest_memfd = gmem_fd;
	region.guest_memfd_offset = 0;
	vm_ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &region);

	/* The library closes the region's guest_memfd with the VM: a dup. */
	region.guest_memfd = dup(gmem_fd);
	TEST_ASSERT(region.guest_memfd >= 0, "dup: %s", strerror(errno));
	slot0->region = region;
}

int main(int argc, char *argv[])
{
	const struct vm_shape shape = {
		.mode = VM_MODE_DEFAULT,
		.type = KVM_X86_SW_PROTECTED_VM,
	};
	long long files_live, binds, get_pfn, user_faults;
	long long conversions, d_get_pfn, d_user_faults;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	uint64_t gmem_size, gpa, i, *marker;

	rgmem_require_gmem_attributes();
	TEST_ASSERT(kvm_check_cap(KVM_CAP_GUEST_MEMFD_FLAGS) &
		    GUEST_MEMFD_FLAG_INIT_SHARED,
		    "KVM_CAP_GUEST_MEMFD_FLAGS lacks INIT_SHARED: 0x%x",
		    kvm_check_cap(KVM_CAP_GUEST_MEMFD_FLAGS));

	vm = vm_create_shape_with_one_vcpu(shape, &vcpu, guest_code);
	slot0_size = memslot2region(vm, 0)->region.memory_size;
	gmem_size = slot0_size + DATA_SIZE;

	files_live = rgmem_read_counter("files_live");
	binds = rgmem_read_counter("binds");
	gmem_fd = rgmem_create_mapped_gmem(vm, gmem_size, GUEST_MEMFD_FLAG_MMAP |
					   GUEST_MEMFD_FLAG_INIT_SHARED,
					   &gmem_mem);

	vm_set_user_memory_region2(vm, DATA_SLOT, KVM_MEM_GUEST_MEMFD, DATA_GPA,
				   DATA_SIZE, data_hva(0), gmem_fd, slot0_size);
	virt_map(vm, DATA_GPA, DATA_GPA, DATA_PAGES);
	move_slot0(vm);
	TEST_ASSERT(rgmem_read_counter("binds") == binds + 2,
		    "rgmem bound %lld memslots, wanted 2",
		    rgmem_read_counter("binds") - binds);

	TEST_ASSERT(signal(SIGBUS, on_sigbus) != SIG_ERR, "signal: %s",
		    strerror(errno));
	get_pfn = rgmem_read_counter("get_pfn");
	user_faults = rgmem_read_counter("user_faults");
	conversions = rgmem_read_counter("conversions");

	/* The guest's first stage, all shared: KVM faults by GUP. */
	run_stage(vcpu, STAGE_SHARED);
	gpa = addr_gva2gpa(vm, (uintptr_t)&guest_marker);
	TEST_ASSERT(gpa < slot0_size, "The guest's globals at gpa 0x%lx", gpa);
	marker = (uint64_t *)(gmem_mem + gpa);
	TEST_ASSERT(*marker == MARKER,
		    "The guest's global reads 0x%lx through the file", *marker);
	for (i = 0; i < DATA_PAGES; i++)
		host_expect(i, shared_pattern(i));
	d_user_faults = rgmem_read_counter("user_faults") - user_faults;
	TEST_ASSERT(d_user_faults >= DATA_PAGES,
		    "rgmem served %lld faults of its mapping, wanted at least %u",
		    d_user_faults, DATA_PAGES);
	TEST_ASSERT(rgmem_read_counter("get_pfn") == get_pfn,
		    "rgmem served private faults of an all-shared guest");

	/* The second stage writes private memory: KVM asks rgmem's get_pfn. */
	set_private(FIRST_PRIVATE, DATA_PAGES - FIRST_PRIVATE, true);
	run_stage(vcpu, STAGE_PRIVATE);
	for (i = 0; i < DATA_PAGES; i++) {
		bool sigbus = host_read_sigbuses(data_hva(i));

		TEST_ASSERT(sigbus == (i >= FIRST_PRIVATE),
			    "Host read of %s data page %lu %s", i >= FIRST_PRIVATE ?
			    "private" : "shared", i, sigbus ? "raised SIGBUS" :
			    "succeeded");
	}
	d_get_pfn = rgmem_read_counter("get_pfn") - get_pfn;
	TEST_ASSERT(d_get_pfn >= DATA_PAGES - FIRST_PRIVATE,
		    "rgmem served %lld private faults, wanted at least %u",
		    d_get_pfn, DATA_PAGES - FIRST_PRIVATE);

	/* Back to shared, in place: the host reads what the guest wrote. */
	set_private(FIRST_PRIVATE, DATA_PAGES - FIRST_PRIVATE, false);
	for (i = 0; i < DATA_PAGES; i++)
		host_expect(i, i < FIRST_PRIVATE ? shared_pattern(i) :
			    private_pattern(i));
	TEST_ASSERT(rgmem_read_counter("conversions") == conversions + 2,
		    "rgmem counted %lld conversions, wanted 2",
		    rgmem_read_counter("conversions") - conversions);

	run_stage(vcpu, STAGE_DONE);
	pr_info("memslot 0: %lu pages; rgmem: user_faults +%lld, get_pfn +%lld\n",
		(uint64_t)(slot0_size / PAGE_SIZE), d_user_faults, d_get_pfn);

	kvm_vm_free(vm);
	munmap(gmem_mem, gmem_size);
	close(gmem_fd);
	TEST_ASSERT(rgmem_read_counter("files_live") == files_live,
		    "rgmem has %lld live files, wanted %lld",
		    rgmem_read_counter("files_live"), files_live);
	return 0;
}
