// SPDX-License-Identifier: GPL-2.0
/*
 * rgmem's guest_memfd as user space and KVM see it: creation, the file's
 * syscalls, fallocate, memslot binding, and the file's lifetime against its
 * VM, its vCPUs and the module.
 *
 * Each test proves that rgmem, not KVM's own guest_memfd, served it through
 * rgmem's debugfs counters, and fails (never skips) when rgmem is not
 * loaded. Tests run one at a time, so the global counters are theirs.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <linux/compiler.h>
#include <linux/falloc.h>
#include <linux/kvm.h>

#include "kselftest_harness.h"
#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"

#include "rgmem_kvm.h"

#define FILE_PAGES	16
#define FILE_SIZE	(FILE_PAGES * PAGE_SIZE)
#define HALF		(FILE_SIZE / 2)
#define KS		FALLOC_FL_KEEP_SIZE
#define PUNCH		(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)
/* Far from anything else in a VM without memslots. */
#define GPA_A		(1ULL << 30)
#define GPA_B		(2ULL << 30)
/* Above slot 0 and its page tables, as private_mem_conversions_test. */
#define VCPU_GPA	(1ULL << 32)
#define VCPU_SLOT	10

/* A VM of the type whose guest_memfd rgmem serves. */
static struct kvm_vm *sw_vm(void)
{
	return vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
}

/* The errno of a KVM_CREATE_GUEST_MEMFD that should fail, or 0. */
static int create_err(struct kvm_vm *vm, uint64_t size, uint64_t flags)
{
	int fd = __vm_create_guest_memfd(vm, size, flags);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static int gmem(struct __test_metadata *_metadata, struct kvm_vm *vm,
		uint64_t size)
{
	int fd = __vm_create_guest_memfd(vm, size, 0);

	ASSERT_LE(0, fd) TH_LOG("KVM_CREATE_GUEST_MEMFD(%#lx): %s", size,
				strerror(errno));
	return fd;
}

/* fallocate(), returning 0 or the errno. */
static int falloc(int fd, int mode, uint64_t offset, uint64_t len)
{
	return fallocate(fd, mode, offset, len) ? errno : 0;
}

/* Binds memslot @slot to @size bytes of @fd at @offset: 0 or the errno. */
static int bind_slot(struct kvm_vm *vm, uint32_t slot, uint64_t gpa,
		     uint64_t size, int fd, uint64_t offset)
{
	return __vm_set_user_memory_region2(vm, slot, KVM_MEM_GUEST_MEMFD, gpa,
					    size, rgmem_host_mem(FILE_SIZE), fd, offset) ?
		errno : 0;
}

static int delete_slot(struct kvm_vm *vm, uint32_t slot)
{
	return __vm_set_user_memory_region2(vm, slot, KVM_MEM_GUEST_MEMFD, 0,
					    0, NULL, 0, 0) ? errno : 0;
}

static long long counter(struct __test_metadata *_metadata, const char *name)
{
	long long v = rgmem_counter(name);

	ASSERT_LE(0, v) TH_LOG("cannot read %s/%s", RGMEM_DEBUGFS, name);
	return v;
}

#define CTR(name)	counter(_metadata, name)

/* Folios in some rgmem page cache now. */
static long long folios(struct __test_metadata *_metadata)
{
	return CTR("folios_cached");
}

static long long blocks(struct __test_metadata *_metadata, int fd)
{
	struct stat st = {};

	ASSERT_EQ(0, fstat(fd, &st)) TH_LOG("fstat: %s", strerror(errno));
	return st.st_blocks;
}

/* The counters a test must leave as it found them, and files_created. */
struct baseline {
	long long files_created;
	long long files_live;
	long long bindings;
	long long folios;
};

FIXTURE(rgmem) {
	struct baseline base;
};

FIXTURE_SETUP(rgmem)
{
	ASSERT_TRUE(rgmem_loaded()) TH_LOG("rgmem is not loaded");
	self->base.files_created = CTR("files_created");
	self->base.files_live = CTR("files_live");
	self->base.bindings = CTR("bindings");
	self->base.folios = folios(_metadata);
}

FIXTURE_TEARDOWN(rgmem)
{
}

/* rgmem created exactly @n files since setup. */
static void assert_created(struct __test_metadata *_metadata,
			   const struct baseline *base, long long n)
{
	ASSERT_EQ(base->files_created + n, CTR("files_created"))
		TH_LOG("the files were not rgmem's");
}

/* Every file, binding and folio made since setup is gone. */
static void assert_released(struct __test_metadata *_metadata,
			    const struct baseline *base)
{
	ASSERT_EQ(base->files_live, CTR("files_live"));
	ASSERT_EQ(base->bindings, CTR("bindings"));
	ASSERT_EQ(base->folios, folios(_metadata));
}

/* Whether the hugetlb pool of one size, e.g. "2048kB", has pages. */
static bool pool_has_pages(const char *size)
{
	char path[96];

	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%s/nr_hugepages",
		 size);
	return rgmem_read_number(path) > 0;
}

TEST_F(rgmem, create_rejects_bad_args)
{
	static const uint64_t bad_sizes[] = {
		0, 1, PAGE_SIZE - 1, PAGE_SIZE + 1, FILE_SIZE + 512,
	};
	struct kvm_vm *vm = sw_vm();
	uint64_t valid, expected = GUEST_MEMFD_FLAG_MMAP;
	unsigned int i;
	int fd;

	/* Files start shared only where they hold the attributes KVM reads. */
	ASSERT_LE(0, rgmem_vm_memory_attributes());
	if (!rgmem_vm_memory_attributes())
		expected |= GUEST_MEMFD_FLAG_INIT_SHARED;
	/* And may be backed by huge pages where the pool has some. */
	if (pool_has_pages("2048kB") || pool_has_pages("1048576kB"))
		expected |= GUEST_MEMFD_FLAG_HUGETLB;
	valid = vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS);
	ASSERT_EQ(expected, valid);

	for (i = 0; i < ARRAY_SIZE(bad_sizes); i++)
		ASSERT_EQ(EINVAL, create_err(vm, bad_sizes[i], 0))
			TH_LOG("size %#lx", bad_sizes[i]);
	for (i = 0; i < 64; i++) {
		if (valid & (1ULL << i))
			continue;
		ASSERT_EQ(EINVAL, create_err(vm, FILE_SIZE, 1ULL << i))
			TH_LOG("flags bit %u", i);
	}
	assert_created(_metadata, &self->base, 0);

	/* rgmem is the provider that refused them. */
	fd = gmem(_metadata, vm, FILE_SIZE);
	assert_created(_metadata, &self->base, 1);
	close(fd);
	kvm_vm_free(vm);
	assert_released(_metadata, &self->base);
}

/* KVM takes the size as a loff_t, so sizes with bit 63 set are negative. */
TEST_F(rgmem, create_rejects_size_past_loff_max)
{
	struct kvm_vm *vm = sw_vm();

	ASSERT_EQ(EINVAL, create_err(vm, 1ULL << 63, 0));
	ASSERT_EQ(EINVAL, create_err(vm, ~(PAGE_SIZE - 1), 0));
	assert_created(_metadata, &self->base, 0);
	kvm_vm_free(vm);
	assert_released(_metadata, &self->base);
}

TEST_F(rgmem, file_identity_and_stat)
{
	struct kvm_vm *vm = sw_vm();
	struct stat sa, sb;
	char path[64], name[64];
	long long punches;
	ssize_t n;
	int a, b;

	a = gmem(_metadata, vm, FILE_SIZE);
	b = gmem(_metadata, vm, 2 * FILE_SIZE);
	assert_created(_metadata, &self->base, 2);
	ASSERT_EQ(self->base.files_live + 2, CTR("files_live"));

	ASSERT_EQ(0, fstat(a, &sa));
	ASSERT_EQ(0, fstat(b, &sb));
	ASSERT_NE(sa.st_ino, sb.st_ino) TH_LOG("two files share an inode");
	ASSERT_TRUE(S_ISREG(sa.st_mode));
	ASSERT_EQ(FILE_SIZE, sa.st_size);
	ASSERT_EQ(2 * FILE_SIZE, sb.st_size);
	ASSERT_EQ(0, sa.st_blocks);
	ASSERT_EQ(0, sb.st_blocks);

	snprintf(path, sizeof(path), "/proc/self/fd/%d", a);
	n = readlink(path, name, sizeof(name) - 1);
	ASSERT_LT(0, n) TH_LOG("readlink %s: %s", path, strerror(errno));
	name[n] = '\0';
	ASSERT_STREQ("anon_inode:[rgmem]", name);

	ASSERT_EQ(0, falloc(a, KS, 0, FILE_SIZE));
	ASSERT_EQ(FILE_SIZE / 512, blocks(_metadata, a));
	ASSERT_EQ(0, fstat(a, &sa));
	ASSERT_EQ(FILE_SIZE, sa.st_size);
	/* Each file has its own page cache. */
	ASSERT_EQ(0, blocks(_metadata, b));

	punches = CTR("punch_holes");
	ASSERT_EQ(0, falloc(a, PUNCH, 0, FILE_SIZE));
	ASSERT_EQ(0, blocks(_metadata, a));
	ASSERT_LT(punches, CTR("punch_holes"));

	close(a);
	close(b);
	ASSERT_EQ(self->base.files_live, CTR("files_live"));
	kvm_vm_free(vm);
	assert_released(_metadata, &self->base);
}

TEST_F(rgmem, io_syscalls_refused)
{
	struct kvm_vm *vm = sw_vm();
	char buf[16] = {};
	struct stat st;
	void *p;
	int fd;

	fd = gmem(_metadata, vm, FILE_SIZE);
	assert_created(_metadata, &self->base, 1);

	ASSERT_EQ(-1, read(fd, buf, sizeof(buf)));
	ASSERT_EQ(-1, write(fd, buf, sizeof(buf)));
	ASSERT_EQ(-1, pread(fd, buf, sizeof(buf), 0));
	ASSERT_EQ(-1, pwrite(fd, buf, sizeof(buf), 0));

	ASSERT_EQ(-1, lseek(fd, 0, SEEK_SET));
	ASSERT_EQ(ESPIPE, errno);
	ASSERT_EQ(-1, lseek(fd, 0, SEEK_END));
	ASSERT_EQ(ESPIPE, errno);

	/* The size is fixed at creation, even to its own value. */
	ASSERT_EQ(-1, ftruncate(fd, 0));
	ASSERT_EQ(EINVAL, errno);
	ASSERT_EQ(-1, ftruncate(fd, FILE_SIZE));
	ASSERT_EQ(EINVAL, errno);
	ASSERT_EQ(-1, ftruncate(fd, 2 * FILE_SIZE));
	ASSERT_EQ(EINVAL, errno);
	ASSERT_EQ(0, fstat(fd, &st));
	ASSERT_EQ(FILE_SIZE, st.st_size);

	p = mmap(NULL, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_EQ(MAP_FAILED, p);
	ASSERT_EQ(ENODEV, errno);

	ASSERT_EQ(0, blocks(_metadata, fd));
	close(fd);
	kvm_vm_free(vm);
	assert_released(_metadata, &self->base);
}

TEST_F(rgmem, fallocate_modes_and_ranges)
{
	/*
	 * KEEP_SIZE with COLLAPSE_RANGE or INSERT_RANGE, and PUNCH_HOLE with
	 * ZERO_RANGE, are refused by the VFS; the rest reach rgmem.
	 */
	static const int bad_modes[] = {
		0,
		KS | FALLOC_FL_COLLAPSE_RANGE,
		KS | FALLOC_FL_ZERO_RANGE,
		KS | FALLOC_FL_INSERT_RANGE,
		KS | FALLOC_FL_UNSHARE_RANGE,
		FALLOC_FL_COLLAPSE_RANGE,
		FALLOC_FL_ZERO_RANGE,
		FALLOC_FL_INSERT_RANGE,
		FALLOC_FL_UNSHARE_RANGE,
		PUNCH | FALLOC_FL_ZERO_RANGE,
	};
	struct kvm_vm *vm = sw_vm();
	long long held, punches, freed;
	unsigned int i;
	int fd;

	fd = gmem(_metadata, vm, FILE_SIZE);
	assert_created(_metadata, &self->base, 1);
	ASSERT_EQ(0, falloc(fd, KS, 0, PAGE_SIZE));
	ASSERT_EQ(PAGE_SIZE / 512, blocks(_metadata, fd));
	held = folios(_metadata);
	punches = CTR("punch_holes");

	for (i = 0; i < ARRAY_SIZE(bad_modes); i++)
		ASSERT_EQ(EOPNOTSUPP, falloc(fd, bad_modes[i], 0, FILE_SIZE))
			TH_LOG("mode %#x", bad_modes[i]);

	ASSERT_EQ(EINVAL, falloc(fd, KS, 1, PAGE_SIZE));
	ASSERT_EQ(EINVAL, falloc(fd, KS, PAGE_SIZE, PAGE_SIZE - 1));
	ASSERT_EQ(EINVAL, falloc(fd, KS, PAGE_SIZE, PAGE_SIZE + 1));
	ASSERT_EQ(EINVAL, falloc(fd, PUNCH, 1, PAGE_SIZE));
	ASSERT_EQ(EINVAL, falloc(fd, PUNCH, 0, PAGE_SIZE + 1));
	ASSERT_EQ(EINVAL, falloc(fd, KS, FILE_SIZE, PAGE_SIZE));
	ASSERT_EQ(EINVAL, falloc(fd, KS, 0, FILE_SIZE + PAGE_SIZE));
	/* All or nothing: the page inside the file is not allocated. */
	ASSERT_EQ(EINVAL, falloc(fd, KS, FILE_SIZE - PAGE_SIZE, 2 * PAGE_SIZE));

	/* Failures change nothing. */
	ASSERT_EQ(PAGE_SIZE / 512, blocks(_metadata, fd));
	ASSERT_EQ(held, folios(_metadata));
	ASSERT_EQ(punches, CTR("punch_holes"));

	/* As in KVM, the hole past the end of the file is already there. */
	ASSERT_EQ(0, falloc(fd, PUNCH, FILE_SIZE, PAGE_SIZE));
	ASSERT_EQ(0, falloc(fd, PUNCH, FILE_SIZE, 1ULL << 40));
	ASSERT_EQ(PAGE_SIZE / 512, blocks(_metadata, fd));
	/* Straddling the end: the part inside the file is punched. */
	freed = CTR("folios_freed");
	ASSERT_EQ(0, falloc(fd, PUNCH, 0, 2 * FILE_SIZE));
	ASSERT_EQ(0, blocks(_metadata, fd));
	ASSERT_LT(punches, CTR("punch_holes"));
	/* The one folio left the cache, and was counted as it. */
	ASSERT_EQ(held - 1, folios(_metadata));
	ASSERT_EQ(freed + 1, CTR("folios_freed"));

	close(fd);
	kvm_vm_free(vm);
	assert_released(_metadata, &self->base);
}

static int alarms;

static void on_alarm(int sig)
{
	__atomic_fetch_add(&alarms, 1, __ATOMIC_RELAXED);
}

/* Long enough under TCG that a 1 ms timer always lands inside. */
#define BIG_SIZE	(512ULL << 20)

TEST_F_TIMEOUT(rgmem, fallocate_stops_on_signal, 120)
{
	struct sigaction sa = { .sa_handler = on_alarm };
	struct itimerval tick = {
		.it_interval = { .tv_usec = 1000 },
		.it_value = { .tv_usec = 1000 },
	};
	struct itimerval off = {};
	struct kvm_vm *vm = sw_vm();
	long long kept = 0;
	int i, fd, err = 0, completed = 0, eintr = 0;

	fd = gmem(_metadata, vm, BIG_SIZE);
	assert_created(_metadata, &self->base, 1);

	/* No SA_RESTART: fallocate must come back with EINTR. */
	ASSERT_EQ(0, sigaction(SIGALRM, &sa, NULL));
	ASSERT_EQ(0, setitimer(ITIMER_REAL, &tick, NULL));
	for (i = 0; i < 20; i++) {
		err = falloc(fd, KS, 0, BIG_SIZE);
		if (!err) {
			completed++;
			ASSERT_EQ(0, falloc(fd, PUNCH, 0, BIG_SIZE));
			continue;
		}
		if (err != EINTR)
			break;
		eintr++;
		/* A signal pending at entry stops it before any page. */
		kept = blocks(_metadata, fd);
		if (kept)
			break;
	}
	/* Keep the handler: a last SIGALRM may still be on its way. */
	ASSERT_EQ(0, setitimer(ITIMER_REAL, &off, NULL));
	TH_LOG("%d alarms, %d calls completed, %d EINTR, %lld blocks kept",
	       alarms, completed, eintr, kept);

	ASSERT_EQ(EINTR, err);
	ASSERT_LT(0, kept) TH_LOG("EINTR dropped what was allocated");
	ASSERT_GT(BIG_SIZE / 512, kept);
	ASSERT_EQ(kept, blocks(_metadata, fd));

	ASSERT_EQ(0, falloc(fd, PUNCH, 0, BIG_SIZE));
	ASSERT_EQ(0, blocks(_metadata, fd));
	close(fd);
	kvm_vm_free(vm);
	assert_released(_metadata, &self->base);
}

TEST_F(rgmem, bind_rules)
{
	struct kvm_vm *vm = sw_vm(), *other = sw_vm();
	long long binds;
	int fd, ofd;

	fd = gmem(_metadata, vm, FILE_SIZE);
	ofd = gmem(_metadata, other, FILE_SIZE);
	assert_created(_metadata, &self->base, 2);
	binds = CTR("binds");

	ASSERT_EQ(EINVAL, bind_slot(vm, 1, GPA_A, HALF, ofd, 0))
		TH_LOG("bound another VM's file");
	ASSERT_EQ(binds, CTR("binds"));

	ASSERT_EQ(0, bind_slot(vm, 1, GPA_A, HALF, fd, 0));
	ASSERT_EQ(self->base.bindings + 1, CTR("bindings"));
	ASSERT_EQ(binds + 1, CTR("binds"));

	ASSERT_EQ(EEXIST, bind_slot(vm, 2, GPA_B, HALF, fd, HALF - PAGE_SIZE));
	ASSERT_EQ(EEXIST, bind_slot(vm, 2, GPA_B, PAGE_SIZE, fd, PAGE_SIZE));
	/* KVM itself refuses an unaligned offset before asking rgmem. */
	ASSERT_EQ(EINVAL, bind_slot(vm, 2, GPA_B, HALF, fd, HALF + 1));
	ASSERT_EQ(EINVAL, bind_slot(vm, 2, GPA_B, HALF, fd, HALF + PAGE_SIZE));
	ASSERT_EQ(EINVAL, bind_slot(vm, 2, GPA_B, PAGE_SIZE, fd, FILE_SIZE));
	ASSERT_EQ(self->base.bindings + 1, CTR("bindings"));
	ASSERT_EQ(binds + 1, CTR("binds"));

	ASSERT_EQ(0, bind_slot(vm, 2, GPA_B, HALF, fd, HALF));
	ASSERT_EQ(self->base.bindings + 2, CTR("bindings"));
	ASSERT_EQ(binds + 2, CTR("binds"));

	/* Deleting the memslot unbinds it and frees its range. */
	ASSERT_EQ(0, delete_slot(vm, 2));
	ASSERT_EQ(self->base.bindings + 1, CTR("bindings"));
	ASSERT_EQ(0, bind_slot(vm, 2, GPA_B, HALF, fd, HALF));
	ASSERT_EQ(self->base.bindings + 2, CTR("bindings"));
	ASSERT_EQ(binds + 3, CTR("binds"));

	/* The file keeps its VM, and so the memslots, until it goes. */
	kvm_vm_free(vm);
	ASSERT_EQ(self->base.bindings + 2, CTR("bindings"));
	close(fd);
	ASSERT_EQ(self->base.bindings, CTR("bindings"));

	close(ofd);
	kvm_vm_free(other);
	assert_released(_metadata, &self->base);
}

TEST_F(rgmem, file_outlives_vm)
{
	struct kvm_vm *vm = sw_vm();
	long long punches;
	struct stat st;
	int fd;

	fd = gmem(_metadata, vm, FILE_SIZE);
	assert_created(_metadata, &self->base, 1);
	ASSERT_EQ(0, bind_slot(vm, 1, GPA_A, FILE_SIZE, fd, 0));
	kvm_vm_free(vm);

	ASSERT_EQ(0, falloc(fd, KS, 0, FILE_SIZE));
	ASSERT_EQ(FILE_SIZE / 512, blocks(_metadata, fd));
	punches = CTR("punch_holes");
	ASSERT_EQ(0, falloc(fd, PUNCH, 0, FILE_SIZE));
	ASSERT_LT(punches, CTR("punch_holes"));
	ASSERT_EQ(0, fstat(fd, &st));
	ASSERT_EQ(FILE_SIZE, st.st_size);
	ASSERT_EQ(0, st.st_blocks);

	close(fd);
	assert_released(_metadata, &self->base);
}

struct racer {
	int fd;
	int mode;
	const int *stop;
	long calls;
	int err;
};

static void *race(void *arg)
{
	struct racer *r = arg;

	while (!__atomic_load_n(r->stop, __ATOMIC_RELAXED)) {
		if (fallocate(r->fd, r->mode, 0, FILE_SIZE) && !r->err)
			r->err = errno;
		r->calls++;
	}
	return NULL;
}

TEST_F(rgmem, fallocate_races_punch_hole)
{
	struct kvm_vm *vm = sw_vm();
	struct racer alloc, punch;
	pthread_t ta, tp;
	long long invalidations;
	int fd, stop = 0;

	fd = gmem(_metadata, vm, FILE_SIZE);
	assert_created(_metadata, &self->base, 1);
	/* Bound, so that each punch also invalidates the memslot. */
	ASSERT_EQ(0, bind_slot(vm, 1, GPA_A, FILE_SIZE, fd, 0));
	invalidations = CTR("invalidations");

	alloc = (struct racer){ .fd = fd, .mode = KS, .stop = &stop };
	punch = (struct racer){ .fd = fd, .mode = PUNCH, .stop = &stop };
	ASSERT_EQ(0, pthread_create(&ta, NULL, race, &alloc));
	ASSERT_EQ(0, pthread_create(&tp, NULL, race, &punch));
	sleep(2);
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	ASSERT_EQ(0, pthread_join(ta, NULL));
	ASSERT_EQ(0, pthread_join(tp, NULL));
	TH_LOG("%ld fallocates, %ld punches", alloc.calls, punch.calls);

	ASSERT_EQ(0, alloc.err) TH_LOG("fallocate: %s", strerror(alloc.err));
	ASSERT_EQ(0, punch.err) TH_LOG("punch: %s", strerror(punch.err));
	ASSERT_LT(0, alloc.calls);
	ASSERT_LT(0, punch.calls);
	ASSERT_LT(invalidations, CTR("invalidations"));

	ASSERT_EQ(0, falloc(fd, PUNCH, 0, FILE_SIZE));
	ASSERT_EQ(0, blocks(_metadata, fd));
	close(fd);
	kvm_vm_free(vm);
	assert_released(_metadata, &self->base);
}

/* Writes every page of its private memory, forever, syncing each pass. */
static void guest_write_private(uint64_t gpa)
{
	uint64_t pass, off;

	for (pass = 1;; pass++) {
		for (off = 0; off < FILE_SIZE; off += PAGE_SIZE)
			WRITE_ONCE(*(uint64_t *)(gpa + off), pass);
		GUEST_SYNC(pass);
	}
}

struct vcpu_thread {
	struct kvm_vcpu *vcpu;
	int syncs;
	int stop;
	int done;
	/* What ended the loop. */
	int err;
	uint64_t ucall;
	uint32_t exit_reason;
	struct {
		uint64_t flags, gpa, size;
	} fault;
};

static void *vcpu_loop(void *arg)
{
	struct vcpu_thread *t = arg;
	struct kvm_run *run = t->vcpu->run;
	struct ucall uc;

	while (!__atomic_load_n(&t->stop, __ATOMIC_ACQUIRE)) {
		if (__vcpu_run(t->vcpu)) {
			/* Kicked: look at stop again. */
			if (errno == EINTR)
				continue;
			t->err = errno;
			t->exit_reason = run->exit_reason;
			t->fault.flags = run->memory_fault.flags;
			t->fault.gpa = run->memory_fault.gpa;
			t->fault.size = run->memory_fault.size;
			break;
		}
		t->ucall = get_ucall(t->vcpu, &uc);
		if (t->ucall != UCALL_SYNC) {
			t->exit_reason = run->exit_reason;
			break;
		}
		__atomic_add_fetch(&t->syncs, 1, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&t->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Waits up to @secs seconds for *@v to reach @want. */
static bool wait_for(int *v, int want, int secs)
{
	const struct timespec tick = { .tv_nsec = 10 * 1000 * 1000 };
	int i;

	for (i = 0; i < secs * 100; i++) {
		if (__atomic_load_n(v, __ATOMIC_ACQUIRE) >= want)
			return true;
		nanosleep(&tick, NULL);
	}
	return __atomic_load_n(v, __ATOMIC_ACQUIRE) >= want;
}

static void on_kick(int sig)
{
}

/*
 * The memslot holds no reference to the file, so closing it releases the
 * file under the running vCPU: rgmem must zap the guest's mappings, and
 * KVM then finds no file for the next private fault (kvm_gmem_get_pfn()
 * fails with EFAULT, reported as KVM_EXIT_MEMORY_FAULT).
 */
TEST_F_TIMEOUT(rgmem, close_while_vcpu_runs, 120)
{
	const struct vm_shape shape = {
		.mode = VM_MODE_DEFAULT,
		.type = KVM_X86_SW_PROTECTED_VM,
	};
	struct sigaction sa = { .sa_handler = on_kick };
	struct vcpu_thread t = {};
	long long get_pfn, prepares;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	pthread_t thread;
	bool ended;
	int fd;

	ASSERT_EQ(0, sigaction(SIGUSR1, &sa, NULL));
	vm = vm_create_shape_with_one_vcpu(shape, &vcpu, guest_write_private);
	fd = gmem(_metadata, vm, FILE_SIZE);
	assert_created(_metadata, &self->base, 1);
	ASSERT_EQ(0, bind_slot(vm, VCPU_SLOT, VCPU_GPA, FILE_SIZE, fd, 0));
	ASSERT_EQ(self->base.bindings + 1, CTR("bindings"));
	virt_map(vm, VCPU_GPA, VCPU_GPA, FILE_PAGES);
	/* Where guest_memfd holds the attributes, the new file is private. */
	if (rgmem_vm_memory_attributes())
		vm_mem_set_private(vm, VCPU_GPA, FILE_SIZE);
	vcpu_args_set(vcpu, 1, VCPU_GPA);
	get_pfn = CTR("get_pfn");
	prepares = CTR("prepares");

	t.vcpu = vcpu;
	ASSERT_EQ(0, pthread_create(&thread, NULL, vcpu_loop, &t));
	/* Two syncs: a whole pass over the memory, faulted in by rgmem. */
	ASSERT_TRUE(wait_for(&t.syncs, 2, 60))
		TH_LOG("guest made %d passes; err %d, exit %u, ucall %lu",
		       t.syncs, t.err, t.exit_reason, t.ucall);
	ASSERT_LT(get_pfn, CTR("get_pfn"));
	ASSERT_LT(prepares, CTR("prepares"));
	ASSERT_LT(self->base.folios, folios(_metadata));

	close(fd);
	ended = wait_for(&t.done, 1, 30);
	__atomic_store_n(&t.stop, 1, __ATOMIC_RELEASE);
	while (!wait_for(&t.done, 1, 1))
		pthread_kill(thread, SIGUSR1);
	ASSERT_EQ(0, pthread_join(thread, NULL));
	TH_LOG("after close: %s, errno %d (%s), exit %u, ucall %lu",
	       ended ? "KVM_RUN stopped" : "vCPU kept running", t.err,
	       strerror(t.err), t.exit_reason, t.ucall);
	TH_LOG("memory fault flags %#lx gpa %#lx size %#lx; %d syncs",
	       t.fault.flags, t.fault.gpa, t.fault.size, t.syncs);

	ASSERT_TRUE(ended) TH_LOG("the guest still reaches freed memory");
	ASSERT_EQ(EFAULT, t.err);
	ASSERT_EQ(KVM_EXIT_MEMORY_FAULT, t.exit_reason);
	ASSERT_TRUE(t.fault.flags & KVM_MEMORY_EXIT_FLAG_PRIVATE);
	ASSERT_LE(VCPU_GPA, t.fault.gpa);
	ASSERT_GT(VCPU_GPA + FILE_SIZE, t.fault.gpa);

	kvm_vm_free(vm);
	assert_released(_metadata, &self->base);
}

/* Puts rgmem back after an unload that should have been refused. */
static void reload_rgmem(void)
{
	const char *ko = getenv("RGMEM_KO");

	if (ko)
		rgmem_load(ko);
}

TEST_F(rgmem, rmmod_refused_while_file_open)
{
	struct kvm_vm *vm = sw_vm();
	int fd, ret, err;

	fd = gmem(_metadata, vm, FILE_SIZE);
	assert_created(_metadata, &self->base, 1);

	ret = rgmem_unload("rgmem");
	err = errno;
	if (!ret)
		reload_rgmem();
	ASSERT_EQ(-1, ret) TH_LOG("rgmem unloaded under an open file");
	ASSERT_EQ(EWOULDBLOCK, err);
	ASSERT_TRUE(rgmem_loaded());

	close(fd);
	kvm_vm_free(vm);
	assert_released(_metadata, &self->base);
	ASSERT_TRUE(rgmem_loaded());
}

TEST_HARNESS_MAIN
