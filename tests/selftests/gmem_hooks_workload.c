// SPDX-License-Identifier: GPL-2.0
/*
 * The workload rgmem_hook_trace records: one software-protected VM whose
 * guest touches every private page of a guest_memfd, the host punches the
 * first half, the guest touches that half again, and the memslot, the file
 * and the VM go.  The architecture's prepare and invalidate hooks must see
 * the same calls whichever guest_memfd serves it.
 *
 * usage: gmem_hooks_workload rgmem|kvm   (who must serve the file)
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <linux/falloc.h>
#include <linux/kvm.h>

#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"

#include "rgmem_kvm.h"

#define DATA_GPA	(1ULL << 32)
#define DATA_SLOT	10
#define PAGES		64

static void guest_code(uint64_t gpa)
{
	uint64_t i;

	for (i = 0; i < PAGES; i++)
		WRITE_ONCE(*(uint64_t *)(gpa + i * PAGE_SIZE), i + 1);
	GUEST_SYNC(1);
	for (i = 0; i < PAGES / 2; i++) {
		__GUEST_ASSERT(!READ_ONCE(*(uint64_t *)(gpa + i * PAGE_SIZE)),
			       "page %lu was punched but is not zero", i);
		WRITE_ONCE(*(uint64_t *)(gpa + i * PAGE_SIZE), i + 1);
	}
	GUEST_DONE();
}

int main(int argc, char **argv)
{
	const struct vm_shape shape = {
		.mode = VM_MODE_DEFAULT,
		.type = KVM_X86_SW_PROTECTED_VM,
	};
	const uint64_t size = PAGES * PAGE_SIZE;
	long long created = 0, get_pfn = 0;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	bool rgmem;
	int fd;

	TEST_ASSERT(argc == 2 && (!strcmp(argv[1], "rgmem") ||
				  !strcmp(argv[1], "kvm")),
		    "usage: %s rgmem|kvm", argv[0]);
	rgmem = !strcmp(argv[1], "rgmem");
	TEST_ASSERT(rgmem == rgmem_loaded(), "rgmem is %sloaded",
		    rgmem_loaded() ? "" : "not ");
	if (rgmem) {
		created = rgmem_read_counter("files_created");
		get_pfn = rgmem_read_counter("get_pfn");
	}

	vm = vm_create_shape_with_one_vcpu(shape, &vcpu, guest_code);
	fd = vm_create_guest_memfd(vm, size, 0);
	rgmem_check_name(fd, rgmem ? "[rgmem]" : "[kvm-gmem]", argv[1]);
	vm_set_user_memory_region2(vm, DATA_SLOT, KVM_MEM_GUEST_MEMFD, DATA_GPA,
				   size, rgmem_host_mem(size), fd, 0);
	vm_set_memory_attributes(vm, DATA_GPA, size, KVM_MEMORY_ATTRIBUTE_PRIVATE);
	virt_map(vm, DATA_GPA, DATA_GPA, PAGES);
	vcpu_args_set(vcpu, 1, DATA_GPA);

	rgmem_run_to(vcpu, UCALL_SYNC);
	TEST_ASSERT(!fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
			       size / 2), "punch");
	rgmem_run_to(vcpu, UCALL_DONE);

	vm_set_user_memory_region2(vm, DATA_SLOT, KVM_MEM_GUEST_MEMFD, DATA_GPA,
				   0, NULL, fd, 0);
	close(fd);
	kvm_vm_free(vm);

	if (rgmem) {
		TEST_ASSERT(rgmem_read_counter("files_created") == created + 1,
			    "rgmem did not create the file");
		TEST_ASSERT(rgmem_read_counter("get_pfn") >= get_pfn + PAGES * 3 / 2,
			    "rgmem served %lld private faults, wanted %d",
			    rgmem_read_counter("get_pfn") - get_pfn, PAGES * 3 / 2);
	}
	printf("gmem_hooks_workload: %s: %d pages touched, %d punched and touched again\n",
	       argv[1], PAGES, PAGES / 2);
	return 0;
}
