// SPDX-License-Identifier: GPL-2.0
/*
 * Memslots bound to a guest_memfd, as 6.12.118's guest_memfd fixes left
 * them: such a memslot can only be created and deleted, and deleting it
 * may race the release of its file.
 *
 * Runs on rgmem (the default: rgmem's counters prove it served every file)
 * and, with RGMEM_SERVER=kvm after rgmem is unloaded, on KVM's own
 * guest_memfd, which must behave the same.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "kselftest_harness.h"
#include "kvm_util.h"

#include "rgmem_kvm.h"

#define FILE_PAGES	16
#define FILE_SIZE	(FILE_PAGES * PAGE_SIZE)
#define GPA_A		(1ULL << 30)
#define GPA_B		(2ULL << 30)
#define SLOT		1
/* Rounds of the close/delete race, and a bound on their time under TCG. */
#define RACE_ROUNDS	400
#define RACE_SECONDS	30

/* KVM_SET_USER_MEMORY_REGION2 on @slot: 0 or the errno. */
static int set_slot(struct kvm_vm *vm, uint32_t flags, uint64_t gpa,
		    uint64_t size, int fd)
{
	return __vm_set_user_memory_region2(vm, SLOT, flags, gpa, size,
					    size ? rgmem_host_mem(FILE_SIZE) : NULL,
					    fd, 0) ?
		errno : 0;
}

static long long counter(struct __test_metadata *_metadata, const char *name)
{
	long long v;

	if (rgmem_kvm_serves())
		return 0;
	v = rgmem_counter(name);
	ASSERT_LE(0, v) TH_LOG("cannot read %s/%s", RGMEM_DEBUGFS, name);
	return v;
}

#define CTR(name)	counter(_metadata, name)

/* What rgmem's files_created counter grows by for @n files: 0 on C. */
static long long by_rgmem(long long n)
{
	return rgmem_kvm_serves() ? 0 : n;
}

FIXTURE(memslot) {
	long long files_created;
	long long files_live;
	long long bindings;
};

FIXTURE_SETUP(memslot)
{
	/* Whoever is meant to serve the files must be the one that can. */
	ASSERT_EQ(!rgmem_kvm_serves(), rgmem_loaded())
		TH_LOG("rgmem %s loaded", rgmem_loaded() ? "is" : "is not");
	self->files_created = CTR("files_created");
	self->files_live = CTR("files_live");
	self->bindings = CTR("bindings");
}

FIXTURE_TEARDOWN(memslot)
{
}

/* A guest_memfd of @vm, made by whoever the test is meant for. */
static int new_gmem(struct __test_metadata *_metadata, struct kvm_vm *vm)
{
	char link[64], target[256];
	ssize_t n;
	int fd;

	fd = __vm_create_guest_memfd(vm, FILE_SIZE, 0);
	ASSERT_LE(0, fd) TH_LOG("KVM_CREATE_GUEST_MEMFD: %s", strerror(errno));
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	ASSERT_LT(0, n);
	target[n] = '\0';
	ASSERT_NE(NULL, strstr(target, rgmem_kvm_serves() ? "[kvm-gmem]" : "[rgmem]"))
		TH_LOG("the guest_memfd is %s", target);
	return fd;
}

TEST_F(memslot, only_create_and_delete)
{
	struct kvm_vm *vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	const uint32_t g = KVM_MEM_GUEST_MEMFD;
	int fd = new_gmem(_metadata, vm);

	ASSERT_EQ(self->files_created + by_rgmem(1), CTR("files_created"));
	ASSERT_EQ(0, set_slot(vm, g, GPA_A, FILE_SIZE, fd));
	ASSERT_EQ(self->bindings + by_rgmem(1), CTR("bindings"));

	/* Every change but deletion is refused, before guest_memfd is asked. */
	ASSERT_EQ(EINVAL, set_slot(vm, g, GPA_B, FILE_SIZE, fd)) TH_LOG("move");
	ASSERT_EQ(EINVAL, set_slot(vm, 0, GPA_B, FILE_SIZE, fd))
		TH_LOG("move, dropping the guest_memfd");
	ASSERT_EQ(EINVAL, set_slot(vm, 0, GPA_A, FILE_SIZE, fd))
		TH_LOG("flags only, dropping the guest_memfd");
	ASSERT_EQ(EINVAL, set_slot(vm, g | KVM_MEM_LOG_DIRTY_PAGES, GPA_A,
				   FILE_SIZE, fd)) TH_LOG("flags only, dirty log");
	ASSERT_EQ(EINVAL, set_slot(vm, KVM_MEM_LOG_DIRTY_PAGES, GPA_A,
				   FILE_SIZE, fd)) TH_LOG("flags only, dirty log");
	ASSERT_EQ(EINVAL, set_slot(vm, g, GPA_A, FILE_SIZE, fd))
		TH_LOG("the same memslot again");
	ASSERT_EQ(EINVAL, set_slot(vm, g, GPA_A, FILE_SIZE - PAGE_SIZE, fd))
		TH_LOG("shrunk");
	ASSERT_EQ(self->bindings + by_rgmem(1), CTR("bindings"));

	/* The binding is whole: deleting removes it, and its range is free. */
	ASSERT_EQ(0, set_slot(vm, g, GPA_A, 0, fd));
	ASSERT_EQ(self->bindings, CTR("bindings"));
	ASSERT_EQ(0, set_slot(vm, g, GPA_B, FILE_SIZE, fd));
	ASSERT_EQ(self->bindings + by_rgmem(1), CTR("bindings"));

	close(fd);
	ASSERT_EQ(self->bindings, CTR("bindings"));
	kvm_vm_free(vm);
	ASSERT_EQ(self->files_live, CTR("files_live"));
}

struct race {
	pthread_barrier_t go;
	struct kvm_vm *vm;
	int fd;
	int delete_err;
};

static void *delete_slot(void *arg)
{
	struct race *r = arg;

	pthread_barrier_wait(&r->go);
	r->delete_err = set_slot(r->vm, KVM_MEM_GUEST_MEMFD, GPA_A, 0, -1);
	return NULL;
}

/*
 * The last close of a file and the deletion of its memslot, at once: the
 * unbind and the release must each see the other done or not begun.
 */
TEST_F_TIMEOUT(memslot, close_races_delete, RACE_SECONDS * 4)
{
	struct kvm_vm *vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	time_t end = time(NULL) + RACE_SECONDS;
	struct race r = { .vm = vm };
	pthread_t t;
	int i;

	for (i = 0; i < RACE_ROUNDS && time(NULL) < end; i++) {
		r.fd = new_gmem(_metadata, vm);
		ASSERT_EQ(0, set_slot(vm, KVM_MEM_GUEST_MEMFD, GPA_A, FILE_SIZE,
				      r.fd));
		ASSERT_EQ(0, pthread_barrier_init(&r.go, NULL, 2));
		ASSERT_EQ(0, pthread_create(&t, NULL, delete_slot, &r));
		pthread_barrier_wait(&r.go);
		ASSERT_EQ(0, close(r.fd));
		ASSERT_EQ(0, pthread_join(t, NULL));
		pthread_barrier_destroy(&r.go);
		ASSERT_EQ(0, r.delete_err) TH_LOG("round %d: delete: %s", i,
						  strerror(r.delete_err));
		ASSERT_EQ(self->bindings, CTR("bindings")) TH_LOG("round %d", i);
		ASSERT_EQ(self->files_live, CTR("files_live")) TH_LOG("round %d", i);
	}
	TH_LOG("%d rounds", i);
	ASSERT_LE(50, i) TH_LOG("too few rounds to race");
	ASSERT_EQ(self->files_created + by_rgmem(i), CTR("files_created"));

	/* The slot and the VM are as new. */
	r.fd = new_gmem(_metadata, vm);
	ASSERT_EQ(0, set_slot(vm, KVM_MEM_GUEST_MEMFD, GPA_A, FILE_SIZE, r.fd));
	close(r.fd);
	kvm_vm_free(vm);
	ASSERT_EQ(self->bindings, CTR("bindings"));
	ASSERT_EQ(self->files_live, CTR("files_live"));
}

TEST_HARNESS_MAIN
