// SPDX-License-Identifier: GPL-2.0
/*
 * What KVM's MMU maps from a guest_memfd, where rgmem and KVM meet:
 *
 * - mixed_block (kvm.vm_memory_attributes=0): a 2 MiB block that mixes
 *   shared and private pages is never mapped huge.  With the attributes
 *   in the file, KVM's own "mixed" tracking never hears of conversions;
 *   rgmem must answer for it, or a shared fault maps a transparent huge
 *   page of userspace_addr over the private pages next to it.
 * - bind_during_punch: a memslot created while PUNCH_HOLE truncates its
 *   range must not keep the guest mapped to the pages the punch frees.
 *   Runs on rgmem, and with RGMEM_SERVER=kvm on KVM's own guest_memfd.
 */
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/falloc.h>
#include <linux/kvm.h>
#include <linux/sizes.h>

#include "kselftest_harness.h"
#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"

#include "rgmem_kvm.h"

#define DATA_GPA	(1ULL << 32)
#define DATA_SLOT	10
#define MIX_PATTERN	0x5a5a5a5a5a5a5a5aULL
#define HOST_PATTERN	0xbbbbbbbbbbbbbbbbULL
#define HOST_BYTES	(16 * SZ_1M)
/* Pages punched while the memslot over them is created. */
#define PUNCH_PAGES	512
#define PUNCH_ROUNDS	300
#define PUNCH_SECONDS	40

/* Whether @p is mapped by a transparent huge page (pagemap, kpageflags). */
static bool is_thp(void *p)
{
	uint64_t ent = 0, flags = 0;
	int pm, kf;

	pm = open("/proc/self/pagemap", O_RDONLY);
	kf = open("/proc/kpageflags", O_RDONLY);
	if (pm < 0 || kf < 0 ||
	    pread(pm, &ent, 8, (uintptr_t)p / getpagesize() * 8) != 8 ||
	    !(ent & (1ULL << 63)) ||
	    pread(kf, &flags, 8, (ent & ((1ULL << 55) - 1)) * 8) != 8)
		flags = 0;
	if (pm >= 0)
		close(pm);
	if (kf >= 0)
		close(kf);
	return flags & (1ULL << 22);	/* KPF_THP */
}

static void guest_mixed(uint64_t gpa)
{
	/* Shared: KVM maps it from the huge page behind userspace_addr. */
	(void)READ_ONCE(*(uint64_t *)gpa);
	/* Private: this write must reach the guest_memfd. */
	WRITE_ONCE(*(uint64_t *)(gpa + PAGE_SIZE), MIX_PATTERN);
	GUEST_DONE();
}

TEST(mixed_block)
{
	const struct vm_shape shape = {
		.mode = VM_MODE_DEFAULT,
		.type = KVM_X86_SW_PROTECTED_VM,
	};
	long long get_pfn;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	uint8_t *gmem, *raw, *thp;
	int fd;

	if (rgmem_vm_memory_attributes() != 0)
		SKIP(return, "kvm.vm_memory_attributes=Y: KVM tracks mixed ranges itself");
	ASSERT_TRUE(rgmem_loaded());

	/* A 2 MiB-aligned, THP-backed userspace_addr. */
	raw = mmap(NULL, 2 * SZ_2M, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, raw);
	thp = (uint8_t *)(((uintptr_t)raw + SZ_2M - 1) & ~((uintptr_t)SZ_2M - 1));
	ASSERT_EQ(0, madvise(thp, SZ_2M, MADV_HUGEPAGE));
	memset(thp, 0x11, SZ_2M);
	if (!is_thp(thp))
		SKIP(return, "no transparent huge page behind userspace_addr");

	vm = vm_create_shape_with_one_vcpu(shape, &vcpu, guest_mixed);
	fd = rgmem_create_mapped_gmem(vm, SZ_2M, GUEST_MEMFD_FLAG_MMAP |
				      GUEST_MEMFD_FLAG_INIT_SHARED, &gmem);
	vm_set_user_memory_region2(vm, DATA_SLOT, KVM_MEM_GUEST_MEMFD, DATA_GPA,
				   SZ_2M, thp, fd, 0);
	ASSERT_EQ(0, rgmem_set_range_attributes(fd, PAGE_SIZE, PAGE_SIZE,
			       KVM_MEMORY_ATTRIBUTE_PRIVATE));
	virt_map(vm, DATA_GPA, DATA_GPA, 2);
	vcpu_args_set(vcpu, 1, DATA_GPA);

	get_pfn = rgmem_read_counter("get_pfn");
	rgmem_run_to(vcpu, UCALL_DONE);

	ASSERT_EQ(0x1111111111111111ULL, *(uint64_t *)(thp + PAGE_SIZE))
		TH_LOG("the private write went to userspace_addr's huge page");
	ASSERT_LT(get_pfn, rgmem_read_counter("get_pfn"))
		TH_LOG("rgmem served no private fault");
	ASSERT_EQ(0, rgmem_set_range_attributes(fd, PAGE_SIZE, PAGE_SIZE, 0));
	ASSERT_EQ(MIX_PATTERN, *(uint64_t *)(gmem + PAGE_SIZE));

	munmap(gmem, SZ_2M);
	close(fd);
	kvm_vm_free(vm);
	munmap(raw, 2 * SZ_2M);
}

/*
 * Each round, pass 1 writes the round's number to the first word of every
 * page.  Pass 2, after the punch and after the host has reused what it
 * freed, reads each page, which must hold that number or, where the punch
 * took the page, 0; then it writes its complement.
 */
static void guest_punch(uint64_t gpa)
{
	uint64_t round, i, v;

	for (round = 1;; round++) {
		for (i = 0; i < PUNCH_PAGES; i++)
			WRITE_ONCE(*(uint64_t *)(gpa + i * PAGE_SIZE), round);
		GUEST_SYNC(1);
		for (i = 0; i < PUNCH_PAGES; i++) {
			v = READ_ONCE(*(uint64_t *)(gpa + i * PAGE_SIZE));
			__GUEST_ASSERT(v == round || v == 0,
				       "round %lu: page %lu reads 0x%lx: freed memory",
				       round, i, v);
			WRITE_ONCE(*(uint64_t *)(gpa + i * PAGE_SIZE), ~round);
		}
		GUEST_SYNC(2);
	}
}

struct puncher {
	pthread_barrier_t go;
	int fd;
	int err;
	uint64_t *host;
};

static void pin_to_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/*
 * Punches the range, then takes memory from the allocator on the same CPU,
 * where the punch freed its pages, and fills it.
 */
static void *punch(void *arg)
{
	struct puncher *p = arg;
	size_t i;

	pin_to_cpu(1);
	pthread_barrier_wait(&p->go);
	p->err = fallocate(p->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
			   PUNCH_PAGES * PAGE_SIZE) ? errno : 0;
	p->host = mmap(NULL, HOST_BYTES, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p->host != MAP_FAILED)
		for (i = 0; i < HOST_BYTES / 8; i++)
			p->host[i] = HOST_PATTERN;
	return NULL;
}

FIXTURE(punch) {};
FIXTURE_SETUP(punch) {}
FIXTURE_TEARDOWN(punch) {}

TEST_F_TIMEOUT(punch, bind_during_punch, PUNCH_SECONDS * 3)
{
	const struct vm_shape shape = {
		.mode = VM_MODE_DEFAULT,
		.type = KVM_X86_SW_PROTECTED_VM,
	};
	const uint64_t size = PUNCH_PAGES * PAGE_SIZE;
	time_t end = time(NULL) + PUNCH_SECONDS;
	long long created = 0, get_pfn = 0;
	struct puncher p = {};
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	uint64_t round;
	pthread_t t;
	size_t i;

	if (rgmem_vm_memory_attributes() == 0)
		SKIP(return, "kvm.vm_memory_attributes=N: get_pfn holds the invalidate lock");
	if (!rgmem_kvm_serves()) {
		ASSERT_TRUE(rgmem_loaded());
		created = rgmem_read_counter("files_created");
		get_pfn = rgmem_read_counter("get_pfn");
	}
	pin_to_cpu(0);

	vm = vm_create_shape_with_one_vcpu(shape, &vcpu, guest_punch);
	p.fd = vm_create_guest_memfd(vm, size, 0);
	if (!rgmem_kvm_serves())
		ASSERT_EQ(created + 1, rgmem_read_counter("files_created"));
	vm_set_memory_attributes(vm, DATA_GPA, size, KVM_MEMORY_ATTRIBUTE_PRIVATE);
	virt_map(vm, DATA_GPA, DATA_GPA, PUNCH_PAGES);
	vcpu_args_set(vcpu, 1, DATA_GPA);

	for (round = 1; round <= PUNCH_ROUNDS && time(NULL) < end; round++) {
		ASSERT_EQ(0, fallocate(p.fd, FALLOC_FL_KEEP_SIZE, 0, size));
		ASSERT_EQ(0, pthread_barrier_init(&p.go, NULL, 2));
		ASSERT_EQ(0, pthread_create(&t, NULL, punch, &p));
		pthread_barrier_wait(&p.go);
		/* The memslot appears while the punch runs. */
		vm_set_user_memory_region2(vm, DATA_SLOT, KVM_MEM_GUEST_MEMFD,
					   DATA_GPA, size,
					   rgmem_host_mem(size), p.fd, 0);
		rgmem_run_to(vcpu, UCALL_SYNC);
		ASSERT_EQ(0, pthread_join(t, NULL));
		pthread_barrier_destroy(&p.go);
		ASSERT_EQ(0, p.err) TH_LOG("punch: %s", strerror(p.err));
		ASSERT_NE(MAP_FAILED, p.host);

		rgmem_run_to(vcpu, UCALL_SYNC);
		for (i = 0; i < HOST_BYTES / 8; i++)
			ASSERT_EQ(HOST_PATTERN, p.host[i])
				TH_LOG("round %lu: the guest wrote host memory", round);
		munmap(p.host, HOST_BYTES);
		vm_set_user_memory_region2(vm, DATA_SLOT, KVM_MEM_GUEST_MEMFD,
					   DATA_GPA, 0, NULL, p.fd, 0);
	}
	TH_LOG("%lu rounds", round - 1);
	ASSERT_LE(20, round - 1) TH_LOG("too few rounds to race");
	if (!rgmem_kvm_serves())
		ASSERT_LT(get_pfn, rgmem_read_counter("get_pfn"));
	close(p.fd);
	kvm_vm_free(vm);
}

TEST_HARNESS_MAIN
