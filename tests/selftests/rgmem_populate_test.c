// SPDX-License-Identifier: GPL-2.0
/*
 * kvm_gmem_populate(), the launch-time path of SEV-SNP, driven through the
 * test module rgmem_populate (tests/modules/) on a software-protected VM:
 *
 * - fills_and_refuses (kvm.vm_memory_attributes=1, on rgmem and, with
 *   RGMEM_SERVER=kvm, on KVM's own guest_memfd): pages are filled from the
 *   source and the guest reads them; a populated page gets EEXIST, a
 *   shared one EINVAL, and nothing else changes;
 * - source_in_own_mmap (=0, rgmem): the source is a shared page of the
 *   same guest_memfd, not mapped when the copy starts, so the copy faults
 *   into the file while its populate runs.
 *
 * The module is loaded from RGMEM_POPULATE_KO if it is not already.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "kselftest_harness.h"
#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"

#include "rgmem_kvm.h"

#define POP_DIR		"/sys/kernel/debug/rgmem_populate"
#define DATA_GPA	(1ULL << 32)
#define DATA_GFN	(DATA_GPA >> 12)
#define DATA_SLOT	10
#define PAGES		16
#define FILLED		4
/* source_in_own_mmap: pages 0.. are populated from pages OWN_SRC.. */
#define OWN_SRC		8
#define OWN_PAGES	8

static bool module_ready(void)
{
	const char *ko = getenv("RGMEM_POPULATE_KO");

	if (rgmem_is_dir(POP_DIR))
		return true;
	return ko && !rgmem_load(ko) && rgmem_is_dir(POP_DIR);
}

/* Populates @npages from @gfn of @vm out of @src: 0 or the errno. */
static int do_populate(struct kvm_vm *vm, uint64_t gfn, void *src,
		    uint64_t npages)
{
	char cmd[128];
	int fd, n, r = 0;

	fd = open(POP_DIR "/populate", O_WRONLY);
	if (fd < 0)
		return errno;
	n = snprintf(cmd, sizeof(cmd), "%d 0x%lx 0x%lx %lu", vm->fd, gfn,
		     (unsigned long)src, npages);
	if (write(fd, cmd, n) != n)
		r = errno;
	close(fd);
	return r;
}

/* What the last populate returned, and how many blocks it handed over. */
static long read_last(int *blocks)
{
	char line[128];
	long ret = -1;
	FILE *f;

	*blocks = 0;
	f = fopen(POP_DIR "/last", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "ret ", 4))
			ret = strtol(line + 4, NULL, 10);
		else if (!strncmp(line, "block ", 6))
			(*blocks)++;
	}
	fclose(f);
	return ret;
}

static uint8_t pattern(int page)
{
	return 0x30 + page;
}

static void guest_read(uint64_t gpa)
{
	uint64_t i, want;

	for (i = 0; i < FILLED; i++) {
		want = 0x0101010101010101ULL * pattern(i);
		__GUEST_ASSERT(READ_ONCE(*(uint64_t *)(gpa + i * PAGE_SIZE)) == want,
			       "page %lu: 0x%lx, populated with 0x%lx", i,
			       READ_ONCE(*(uint64_t *)(gpa + i * PAGE_SIZE)), want);
	}
	GUEST_DONE();
}

static const struct vm_shape shape = {
	.mode = VM_MODE_DEFAULT,
	.type = KVM_X86_SW_PROTECTED_VM,
};

TEST(fills_and_refuses)
{
	long long created = 0, prepares = 0;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct ucall uc;
	uint8_t *src;
	int fd, i, blocks;

	if (rgmem_vm_memory_attributes() != 1)
		SKIP(return, "kvm.vm_memory_attributes=N: the VM has no attributes");
	ASSERT_TRUE(module_ready()) TH_LOG("rgmem_populate is not loaded");
	if (!rgmem_kvm_serves()) {
		ASSERT_TRUE(rgmem_loaded());
		created = rgmem_read_counter("files_created");
		prepares = rgmem_read_counter("prepares");
	}

	vm = vm_create_shape_with_one_vcpu(shape, &vcpu, guest_read);
	fd = vm_create_guest_memfd(vm, PAGES * PAGE_SIZE, 0);
	rgmem_check_name(fd, rgmem_kvm_serves() ? "[kvm-gmem]" : "[rgmem]", "file");
	vm_set_user_memory_region2(vm, DATA_SLOT, KVM_MEM_GUEST_MEMFD, DATA_GPA,
				   PAGES * PAGE_SIZE,
				   rgmem_host_mem(PAGES * PAGE_SIZE), fd, 0);
	vm_set_memory_attributes(vm, DATA_GPA, PAGES * PAGE_SIZE,
				 KVM_MEMORY_ATTRIBUTE_PRIVATE);
	src = mmap(NULL, FILLED * PAGE_SIZE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, src);
	for (i = 0; i < FILLED; i++)
		memset(src + i * PAGE_SIZE, pattern(i), PAGE_SIZE);

	ASSERT_EQ(0, do_populate(vm, DATA_GFN, src, FILLED));
	ASSERT_EQ(FILLED, read_last(&blocks));
	ASSERT_EQ(FILLED, blocks);

	/* A populated page, a shared one, no page. */
	ASSERT_EQ(EEXIST, do_populate(vm, DATA_GFN + 2, src, 1));
	ASSERT_EQ(-EEXIST, read_last(&blocks));
	ASSERT_EQ(0, blocks);
	vm_set_memory_attributes(vm, DATA_GPA + 8 * PAGE_SIZE, PAGE_SIZE, 0);
	ASSERT_EQ(EINVAL, do_populate(vm, DATA_GFN + 8, src, 1));
	ASSERT_EQ(-EINVAL, read_last(&blocks));
	ASSERT_EQ(0, blocks);
	ASSERT_EQ(EINVAL, do_populate(vm, DATA_GFN, src, 0));
	/* Past the end of the memslot: no memslot there. */
	ASSERT_NE(0, do_populate(vm, DATA_GFN + PAGES, src, 1));

	if (!rgmem_kvm_serves()) {
		ASSERT_EQ(created + 1, rgmem_read_counter("files_created"));
		ASSERT_EQ(prepares + FILLED, rgmem_read_counter("prepares"));
	}

	/* The guest reads what was populated. */
	virt_map(vm, DATA_GPA, DATA_GPA, FILLED);
	vcpu_args_set(vcpu, 1, DATA_GPA);
	vcpu_run(vcpu);
	ASSERT_EQ(KVM_EXIT_IO, vcpu->run->exit_reason);
	if (get_ucall(vcpu, &uc) == UCALL_ABORT)
		REPORT_GUEST_ASSERT(uc);
	ASSERT_EQ(UCALL_DONE, uc.cmd);

	munmap(src, FILLED * PAGE_SIZE);
	close(fd);
	kvm_vm_free(vm);
}

TEST(source_in_own_mmap)
{
	long long prepares;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	uint8_t *mem;
	int fd, i, blocks;

	if (rgmem_vm_memory_attributes() != 0)
		SKIP(return, "kvm.vm_memory_attributes=Y: the file has no shared pages to map");
	ASSERT_TRUE(module_ready()) TH_LOG("rgmem_populate is not loaded");
	ASSERT_TRUE(rgmem_loaded());

	vm = vm_create_shape_with_one_vcpu(shape, &vcpu, guest_read);
	fd = rgmem_create_mapped_gmem(vm, PAGES * PAGE_SIZE,
				      GUEST_MEMFD_FLAG_MMAP, &mem);
	vm_set_user_memory_region2(vm, DATA_SLOT, KVM_MEM_GUEST_MEMFD, DATA_GPA,
				   PAGES * PAGE_SIZE, mem, fd, 0);
	/*
	 * The second half is the source: shared, filled, then unmapped, so
	 * that the copy of every page faults, more often than one block's
	 * retries.
	 */
	ASSERT_EQ(0, rgmem_set_range_attributes(fd, OWN_SRC * PAGE_SIZE,
						OWN_PAGES * PAGE_SIZE, 0));
	for (i = 0; i < OWN_PAGES; i++)
		memset(mem + (OWN_SRC + i) * PAGE_SIZE, pattern(i), PAGE_SIZE);
	ASSERT_EQ(0, madvise(mem + OWN_SRC * PAGE_SIZE, OWN_PAGES * PAGE_SIZE,
			     MADV_DONTNEED));

	prepares = rgmem_read_counter("prepares");
	ASSERT_EQ(0, do_populate(vm, DATA_GFN, mem + OWN_SRC * PAGE_SIZE,
				 OWN_PAGES));
	ASSERT_EQ(OWN_PAGES, read_last(&blocks));
	ASSERT_EQ(prepares + OWN_PAGES, rgmem_read_counter("prepares"));

	/* In place: shared again, the pages show what was copied into them. */
	ASSERT_EQ(0, rgmem_set_range_attributes(fd, 0, OWN_PAGES * PAGE_SIZE, 0));
	ASSERT_EQ(0x0101010101010101ULL * pattern(0), *(uint64_t *)mem);
	ASSERT_EQ(0, memcmp(mem, mem + OWN_SRC * PAGE_SIZE,
			    OWN_PAGES * PAGE_SIZE));

	munmap(mem, PAGES * PAGE_SIZE);
	close(fd);
	kvm_vm_free(vm);
}

TEST_HARNESS_MAIN
