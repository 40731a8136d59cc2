// SPDX-License-Identifier: GPL-2.0
/*
 * In-place shared<->private conversion of rgmem's guest_memfd: the
 * KVM_SET_MEMORY_ATTRIBUTES2 ioctl on the file, the file's mmap, and what
 * the host and a SW_PROTECTED guest see of each page as it changes hands.
 *
 * With kvm.vm_memory_attributes=0 KVM asks the guest_memfd whether a gfn
 * is private. A guest access to a private page is a private fault, served
 * by rgmem's get_pfn; one to a shared page is a shared fault, served by
 * GUP of the memslot's userspace_addr, which here is the host's own mmap
 * of the guest_memfd, so host and guest see the same shared pages.
 * SW_PROTECTED VMs do nothing to a page on conversion: contents survive
 * both ways.
 *
 * A page holds a pattern named by a seed (seed 0: all zeroes), and every
 * access checks the whole page.
 *
 * As in rgmem_core_test, rgmem's debugfs counters prove that rgmem served
 * each test, which fails (never skips) when rgmem is not loaded. Tests run
 * one at a time, so the counters are theirs. With vm_memory_attributes=1
 * only ioctl_refused_with_vm_attributes runs; with 0, all but it.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/compiler.h>
#include <linux/falloc.h>
#include <linux/kvm.h>

#include "kselftest_harness.h"
#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"

#include "rgmem_test.h"

/* Above slot 0 and its page tables, as private_mem_conversions_test. */
#define GPA		(1ULL << 32)
#define SLOT		10
#define MAX_PAGES	8
#define PS		PAGE_SIZE
#define PRIVATE		KVM_MEMORY_ATTRIBUTE_PRIVATE
#define SHARED		GUEST_MEMFD_FLAG_INIT_SHARED
/* In error_offset before each call: whatever rgmem copies back shows. */
#define UNTOUCHED	0x5eed5eed5eed5eedULL

_Static_assert(sizeof(struct kvm_memory_attributes2) == 128,
	       "struct kvm_memory_attributes2 is 16 u64s");

/* Byte @j of a page that holds pattern @seed. */
static inline uint8_t pat(uint8_t seed, uint64_t j)
{
	return seed ? (uint8_t)(seed + j * 13) : 0;
}

/* What the guest does next: see guest_code(). */
static struct {
	uint64_t gpa;
	uint8_t old;
	uint8_t new;
} op;

/* For each op: checks that the page at op.gpa holds op.old, writes op.new. */
static void guest_code(void)
{
	for (;;) {
		uint8_t *p = (uint8_t *)READ_ONCE(op.gpa);
		uint8_t old = READ_ONCE(op.old), new = READ_ONCE(op.new);
		uint64_t j;
		uint8_t b;

		/* Every byte, one access each, as rmw_page() does. */
		for (j = 0; j < PAGE_SIZE; j++) {
			b = READ_ONCE(p[j]);
			__GUEST_ASSERT(b == pat(old, j),
				       "gpa %#lx byte %lu is %#x, not %#x",
				       (unsigned long)p, j, b, pat(old, j));
		}
		for (j = 0; j < PAGE_SIZE; j++)
			WRITE_ONCE(p[j], pat(new, j));
		GUEST_SYNC(0);
	}
}

static sigjmp_buf sigbus_env;

static void on_sigbus(int sig)
{
	siglongjmp(sigbus_env, 1);
}

/*
 * Whether one read or write of @p raises SIGBUS. READ_ONCE()/WRITE_ONCE()
 * keep the compiler from eliding the access; no local is read after the
 * siglongjmp().
 */
static bool sigbus(uint8_t *p, bool write)
{
	if (sigsetjmp(sigbus_env, 1))
		return true;
	if (write)
		WRITE_ONCE(*p, 0xa5);
	else
		(void)READ_ONCE(*p);
	return false;
}

/*
 * Checks that the page at @p holds @old and fills it with @new: PAGE_SIZE
 * if it did, else the offset of the first wrong byte, or -1 on SIGBUS.
 * READ_ONCE()/WRITE_ONCE(): every byte, one access each. j is not read
 * after a siglongjmp().
 */
static long rmw_page(uint8_t *p, uint8_t old, uint8_t new)
{
	long j;

	if (sigsetjmp(sigbus_env, 1))
		return -1;
	for (j = 0; j < PAGE_SIZE; j++)
		if (READ_ONCE(p[j]) != pat(old, j))
			return j;
	for (j = 0; j < PAGE_SIZE; j++)
		WRITE_ONCE(p[j], pat(new, j));
	return PAGE_SIZE;
}

static long long counter(struct __test_metadata *_metadata, const char *name)
{
	long long v = rgmem_counter(name);

	ASSERT_LE(0, v) TH_LOG("cannot read %s/%s", RGMEM_DEBUGFS, name);
	return v;
}

#define CTR(name)	counter(_metadata, name)

FIXTURE(conv) {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	/* kvm.vm_memory_attributes=Y: the guest_memfd holds no attributes. */
	bool vm_attrs;
	long long files_created;
	/* What the conversions counter must read. */
	long long conversions;
	/* The guest_memfd bound at GPA and its host mapping. */
	int fd;
	uint8_t *mem;
	int npages;
	/* Each page's attribute; whether the guest mapped it since it changed. */
	bool private[MAX_PAGES];
	bool guest_mapped[MAX_PAGES];
};

FIXTURE_SETUP(conv)
{
	const struct vm_shape shape = {
		.mode = VM_MODE_DEFAULT,
		.type = KVM_X86_SW_PROTECTED_VM,
	};
	struct sigaction sa = { .sa_handler = on_sigbus };
	int param;

	ASSERT_TRUE(rgmem_loaded()) TH_LOG("rgmem is not loaded");
	param = rgmem_vm_memory_attributes();
	ASSERT_LE(0, param) TH_LOG("cannot read %s", RGMEM_VM_ATTRS_PARAM);
	self->vm_attrs = param;
	self->fd = -1;
	if (!(kvm_check_cap(KVM_CAP_VM_TYPES) & BIT(KVM_X86_SW_PROTECTED_VM)))
		SKIP(return, "no KVM_X86_SW_PROTECTED_VM");
	self->files_created = CTR("files_created");
	self->conversions = CTR("conversions");
	ASSERT_EQ(0, sigaction(SIGBUS, &sa, NULL));
	self->vm = vm_create_shape_with_one_vcpu(shape, &self->vcpu,
						 guest_code);
}

FIXTURE_TEARDOWN(conv)
{
	if (self->vm)
		kvm_vm_free(self->vm);
	if (self->mem)
		munmap(self->mem, self->npages * PS);
	if (self->fd >= 0)
		close(self->fd);
}

/*
 * The helpers take the fixture as struct _test_data_conv *, which is what
 * FIXTURE_DATA(conv) expands to: checkpatch misparses the macro form as a
 * multiplication.
 */
static void assert_created(struct __test_metadata *_metadata,
			   struct _test_data_conv *self, long long n)
{
	ASSERT_EQ(self->files_created + n, CTR("files_created"))
		TH_LOG("the guest_memfds are not rgmem's");
}

/* No conversion happened but the ones convert() counted. */
static void assert_conversions(struct __test_metadata *_metadata,
			       struct _test_data_conv *self)
{
	ASSERT_EQ(self->conversions, CTR("conversions"));
}

/*
 * An @npages guest_memfd with GUEST_MEMFD_FLAG_MMAP | @flags, mapped
 * MAP_SHARED by the host, bound at GPA with that mapping as the memslot's
 * userspace_addr, and mapped GVA = GPA in the guest. False, having done
 * nothing, with per-VM attributes: each conversion case then skips.
 */
static bool setup_gmem(struct __test_metadata *_metadata,
		       struct _test_data_conv *self, int npages,
		       uint64_t flags)
{
	uint64_t size = npages * PS;
	int i;

	if (self->vm_attrs)
		return false;
	self->fd = __vm_create_guest_memfd(self->vm, size,
					   GUEST_MEMFD_FLAG_MMAP | flags);
	ASSERT_LE(0, self->fd) TH_LOG("KVM_CREATE_GUEST_MEMFD(%#lx, %#lx): %s",
				      size, flags, strerror(errno));
	assert_created(_metadata, self, 1);
	self->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED,
			 self->fd, 0);
	ASSERT_NE(MAP_FAILED, self->mem) TH_LOG("mmap: %s", strerror(errno));
	self->npages = npages;
	ASSERT_EQ(0, __vm_set_user_memory_region2(self->vm, SLOT,
						  KVM_MEM_GUEST_MEMFD, GPA,
						  size, self->mem, self->fd,
						  0))
		TH_LOG("KVM_SET_USER_MEMORY_REGION2: %s", strerror(errno));
	virt_map(self->vm, GPA, GPA, npages);
	for (i = 0; i < npages; i++)
		self->private[i] = !(flags & GUEST_MEMFD_FLAG_INIT_SHARED);
	return true;
}

/* The guest checks that @page holds @old and writes @new. */
static void guest_rmw(struct __test_metadata *_metadata,
		      struct _test_data_conv *self, int page, uint8_t old,
		      uint8_t new)
{
	struct kvm_run *run = self->vcpu->run;
	long long get_pfn = CTR("get_pfn");
	struct ucall uc = {};
	uint64_t cmd;

	op.gpa = GPA + page * PS;
	op.old = old;
	op.new = new;
	sync_global_to_guest(self->vm, op);
	ASSERT_EQ(0, __vcpu_run(self->vcpu))
		TH_LOG("page %d: KVM_RUN: %s, exit %u, fault flags %#llx gpa %#llx",
		       page, strerror(errno), run->exit_reason,
		       run->memory_fault.flags, run->memory_fault.gpa);
	cmd = get_ucall(self->vcpu, &uc);
	ASSERT_NE(UCALL_ABORT, cmd) TH_LOG("guest, page %d: %s", page,
					   uc.buffer);
	ASSERT_EQ(UCALL_SYNC, cmd) TH_LOG("page %d: exit %u", page,
					  run->exit_reason);
	/* Nothing mapped the page since it became private: rgmem did. */
	if (self->private[page] && !self->guest_mapped[page])
		ASSERT_LT(get_pfn, CTR("get_pfn"))
			TH_LOG("page %d: the private fault was not rgmem's",
			       page);
	self->guest_mapped[page] = true;
}

/* The host checks that shared @page holds @old and writes @new. */
static void host_rmw(struct __test_metadata *_metadata,
		     struct _test_data_conv *self, int page, uint8_t old,
		     uint8_t new)
{
	long r = rmw_page(self->mem + page * PS, old, new);

	ASSERT_NE(-1, r) TH_LOG("page %d: SIGBUS", page);
	ASSERT_EQ(PAGE_SIZE, r) TH_LOG("page %d byte %ld is %#x, not %#x", page,
				       r, self->mem[page * PS + r],
				       pat(old, r));
}

/* Host reads and writes of private @page, at both ends, raise SIGBUS. */
static void host_sigbus(struct __test_metadata *_metadata,
			struct _test_data_conv *self, int page)
{
	uint8_t *p = self->mem + page * PS;

	ASSERT_TRUE(sigbus(p, false)) TH_LOG("page %d: read", page);
	ASSERT_TRUE(sigbus(p, true)) TH_LOG("page %d: write", page);
	ASSERT_TRUE(sigbus(p + PS - 1, false)) TH_LOG("page %d: read", page);
	ASSERT_TRUE(sigbus(p + PS - 1, true)) TH_LOG("page %d: write", page);
}

/* The host sees shared page i hold seed[i] and private pages SIGBUS. */
static void host_check(struct __test_metadata *_metadata,
		       struct _test_data_conv *self, const uint8_t *seed)
{
	int i;

	for (i = 0; i < self->npages; i++) {
		if (self->private[i])
			host_sigbus(_metadata, self, i);
		else
			host_rmw(_metadata, self, i, seed[i], seed[i]);
	}
}

static struct kvm_memory_attributes2 attrs2(int page, int n, bool private)
{
	return (struct kvm_memory_attributes2){
		.offset = page * PS,
		.size = n * PS,
		.attributes = private ? PRIVATE : 0,
		.error_offset = UNTOUCHED,
	};
}

/* Makes @n pages from @page private or shared, a change to some page. */
static void convert(struct __test_metadata *_metadata,
		    struct _test_data_conv *self, int page, int n, bool private)
{
	struct kvm_memory_attributes2 a = attrs2(page, n, private), sent = a;
	int i;

	ASSERT_EQ(0, rgmem_set_attributes2(self->fd, &a))
		TH_LOG("pages %d..%d to %s: %s", page, page + n - 1,
		       private ? "private" : "shared", strerror(errno));
	ASSERT_EQ(0, memcmp(&a, &sent, sizeof(a)))
		TH_LOG("a success copied the struct back");
	self->conversions++;
	assert_conversions(_metadata, self);
	for (i = page; i < page + n; i++) {
		self->private[i] = private;
		self->guest_mapped[i] = false;
	}
}

/* As convert(), for pages already in that state: nothing to do. */
static void convert_noop(struct __test_metadata *_metadata,
			 struct _test_data_conv *self, int page, int n,
			 bool private)
{
	struct kvm_memory_attributes2 a = attrs2(page, n, private), sent = a;

	ASSERT_EQ(0, rgmem_set_attributes2(self->fd, &a));
	ASSERT_EQ(0, memcmp(&a, &sent, sizeof(a)));
	assert_conversions(_metadata, self);
}

TEST_F(conv, ioctl_refused_with_vm_attributes)
{
	struct kvm_memory_attributes2 a = attrs2(0, 1, true);
	struct kvm_memory_attributes2 b = attrs2(0, 1, false);

	if (!self->vm_attrs)
		SKIP(return, "kvm.vm_memory_attributes=N");
	self->fd = __vm_create_guest_memfd(self->vm, 2 * PS, 0);
	ASSERT_LE(0, self->fd) TH_LOG("%s", strerror(errno));
	assert_created(_metadata, self, 1);

	ASSERT_EQ(ENOTTY, rgmem_set_attributes2(self->fd, &a));
	ASSERT_EQ(ENOTTY, rgmem_set_attributes2(self->fd, &b));
	ASSERT_EQ(0, vm_check_cap(self->vm,
				  KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES));
	/* KVM keeps the attributes itself. */
	ASSERT_EQ(PRIVATE, vm_check_cap(self->vm, KVM_CAP_MEMORY_ATTRIBUTES) &
			   PRIVATE);
	assert_conversions(_metadata, self);
}

TEST_F(conv, init_private)
{
	long long faults;

	if (!setup_gmem(_metadata, self, 1, 0))
		SKIP(return, "kvm.vm_memory_attributes=Y");
	host_sigbus(_metadata, self, 0);
	guest_rmw(_metadata, self, 0, 0, 1);
	convert_noop(_metadata, self, 0, 1, true);

	convert(_metadata, self, 0, 1, false);
	faults = CTR("user_faults");
	host_rmw(_metadata, self, 0, 1, 2);
	ASSERT_LT(faults, CTR("user_faults"));

	convert(_metadata, self, 0, 1, true);
	host_sigbus(_metadata, self, 0);
	guest_rmw(_metadata, self, 0, 2, 3);
}

TEST_F(conv, init_shared)
{
	long long faults;

	if (!setup_gmem(_metadata, self, 1, SHARED))
		SKIP(return, "kvm.vm_memory_attributes=Y");
	faults = CTR("user_faults");
	host_rmw(_metadata, self, 0, 0, 1);
	ASSERT_LT(faults, CTR("user_faults"));
	guest_rmw(_metadata, self, 0, 1, 2);
	host_rmw(_metadata, self, 0, 2, 3);
	convert_noop(_metadata, self, 0, 1, false);

	convert(_metadata, self, 0, 1, true);
	host_sigbus(_metadata, self, 0);
	guest_rmw(_metadata, self, 0, 3, 4);

	convert(_metadata, self, 0, 1, false);
	host_rmw(_metadata, self, 0, 4, 5);
	guest_rmw(_metadata, self, 0, 5, 6);
	host_rmw(_metadata, self, 0, 6, 6);
}

/* Each page converts alone; its neighbours keep their state and data. */
TEST_F(conv, indexing)
{
	uint8_t seed[4];
	int i;

	if (!setup_gmem(_metadata, self, 4, SHARED))
		SKIP(return, "kvm.vm_memory_attributes=Y");
	for (i = 0; i < 4; i++) {
		seed[i] = 0x10 + i;
		host_rmw(_metadata, self, i, 0, seed[i]);
	}
	for (i = 0; i < 4; i++) {
		convert(_metadata, self, i, 1, true);
		host_check(_metadata, self, seed);
		guest_rmw(_metadata, self, i, seed[i], 0x20 + i);
		seed[i] = 0x20 + i;
		convert(_metadata, self, i, 1, false);
		host_check(_metadata, self, seed);
	}
	for (i = 0; i < 4; i++)
		guest_rmw(_metadata, self, i, seed[i], seed[i]);
}

TEST_F(conv, before_allocation_shared)
{
	long long faults;

	if (!setup_gmem(_metadata, self, 1, 0))
		SKIP(return, "kvm.vm_memory_attributes=Y");
	convert(_metadata, self, 0, 1, false);
	faults = CTR("user_faults");
	host_rmw(_metadata, self, 0, 0, 1);
	ASSERT_LT(faults, CTR("user_faults"));
	guest_rmw(_metadata, self, 0, 1, 2);
	host_rmw(_metadata, self, 0, 2, 2);
}

TEST_F(conv, before_allocation_private)
{
	if (!setup_gmem(_metadata, self, 1, SHARED))
		SKIP(return, "kvm.vm_memory_attributes=Y");
	convert(_metadata, self, 0, 1, true);
	host_sigbus(_metadata, self, 0);
	guest_rmw(_metadata, self, 0, 0, 1);
	convert(_metadata, self, 0, 1, false);
	host_rmw(_metadata, self, 0, 1, 1);
}

/* One conversion over pages with and without folios. */
TEST_F(conv, unallocated_folios)
{
	uint8_t seed[MAX_PAGES] = {};
	int i;

	if (!setup_gmem(_metadata, self, MAX_PAGES, SHARED))
		SKIP(return, "kvm.vm_memory_attributes=Y");
	seed[2] = 0x31;
	seed[5] = 0x32;
	host_rmw(_metadata, self, 2, 0, seed[2]);
	host_rmw(_metadata, self, 5, 0, seed[5]);

	convert(_metadata, self, 0, MAX_PAGES, true);
	host_check(_metadata, self, seed);
	for (i = 0; i < MAX_PAGES; i++) {
		guest_rmw(_metadata, self, i, seed[i], 0x40 + i);
		seed[i] = 0x40 + i;
	}
	for (i = 0; i < MAX_PAGES; i++) {
		convert(_metadata, self, i, 1, false);
		host_check(_metadata, self, seed);
	}
}

/* PUNCH_HOLE frees the pages but keeps their attributes. */
TEST_F(conv, truncate)
{
	long long punches;

	if (!setup_gmem(_metadata, self, 2, SHARED))
		SKIP(return, "kvm.vm_memory_attributes=Y");
	convert(_metadata, self, 1, 1, true);
	host_rmw(_metadata, self, 0, 0, 1);
	guest_rmw(_metadata, self, 1, 0, 2);

	punches = CTR("punch_holes");
	ASSERT_EQ(0, fallocate(self->fd, FALLOC_FL_KEEP_SIZE |
			       FALLOC_FL_PUNCH_HOLE, 0, 2 * PS))
		TH_LOG("%s", strerror(errno));
	ASSERT_LT(punches, CTR("punch_holes"));
	self->guest_mapped[0] = self->guest_mapped[1] = false;
	assert_conversions(_metadata, self);

	host_rmw(_metadata, self, 0, 0, 3);
	guest_rmw(_metadata, self, 0, 3, 4);
	host_rmw(_metadata, self, 0, 4, 4);
	host_sigbus(_metadata, self, 1);
	guest_rmw(_metadata, self, 1, 0, 5);
	/* Still private: making it shared is a change. */
	convert(_metadata, self, 1, 1, false);
	host_rmw(_metadata, self, 1, 5, 5);
}

static const char *const child_step[] = {
	"ok", "mmap", "read own mapping", "read inherited mapping",
	"write to parent", "read from parent", "own mapping read",
	"own mapping write", "inherited mapping read",
	"inherited mapping write",
};

/*
 * In a child: maps the page itself and reads it through that mapping and
 * the one it inherited, says so on @tell, waits on @wait for the parent
 * to make it private, then expects SIGBUS from each. 0 or the failed step.
 */
static int forked_child(int fd, uint8_t *inherited, int tell, int wait)
{
	uint8_t *own = mmap(NULL, PS, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	char c;

	if (own == MAP_FAILED)
		return 1;
	if (rmw_page(own, 1, 1) != PAGE_SIZE)
		return 2;
	if (rmw_page(inherited, 1, 1) != PAGE_SIZE)
		return 3;
	if (write(tell, "r", 1) != 1)
		return 4;
	if (read(wait, &c, 1) != 1)
		return 5;
	if (!sigbus(own, false))
		return 6;
	if (!sigbus(own, true))
		return 7;
	if (!sigbus(inherited, false))
		return 8;
	if (!sigbus(inherited, true))
		return 9;
	return 0;
}

/* A conversion to private unmaps the page from every process. */
TEST_F(conv, forked_accesses)
{
	int to_parent[2], to_child[2], status, step;
	pid_t pid;
	char c;

	if (!setup_gmem(_metadata, self, 1, SHARED))
		SKIP(return, "kvm.vm_memory_attributes=Y");
	host_rmw(_metadata, self, 0, 0, 1);
	ASSERT_EQ(0, pipe(to_parent));
	ASSERT_EQ(0, pipe(to_child));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		/* Only the parent's ends may stay open, for EOF to come. */
		close(to_parent[0]);
		close(to_child[1]);
		_exit(forked_child(self->fd, self->mem, to_parent[1],
				   to_child[0]));
	}
	close(to_parent[1]);
	close(to_child[0]);

	/* Nothing comes if the child failed before converting could start. */
	if (read(to_parent[0], &c, 1) == 1) {
		convert(_metadata, self, 0, 1, true);
		ASSERT_EQ(1, write(to_child[1], "c", 1));
	}
	close(to_child[1]);
	close(to_parent[0]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status)) TH_LOG("child status %#x", status);
	step = WEXITSTATUS(status);
	ASSERT_EQ(0, step) TH_LOG("child failed at: %s",
				  step < ARRAY_SIZE(child_step) ?
				  child_step[step] : "?");
	ASSERT_TRUE(self->private[0]);

	host_sigbus(_metadata, self, 0);
	guest_rmw(_metadata, self, 0, 1, 2);
}

/* Expects to-private of @n pages from @page to fail on pinned @bad. */
static void expect_eagain(struct __test_metadata *_metadata,
			  struct _test_data_conv *self, int page, int n,
			  int bad)
{
	struct kvm_memory_attributes2 a = attrs2(page, n, true), sent = a;

	ASSERT_EQ(EAGAIN, rgmem_set_attributes2(self->fd, &a))
		TH_LOG("pages %d..%d", page, page + n - 1);
	sent.error_offset = bad * PS;
	ASSERT_EQ(bad * PS, a.error_offset);
	ASSERT_EQ(0, memcmp(&a, &sent, sizeof(a)))
		TH_LOG("copied back more than error_offset");
	assert_conversions(_metadata, self);
}

TEST_F(conv, elevated_refcount)
{
	uint8_t buf[PAGE_SIZE], seed[4];
	struct iovec iov;
	int i, pipefd[2];

	if (!setup_gmem(_metadata, self, 4, SHARED))
		SKIP(return, "kvm.vm_memory_attributes=Y");
	for (i = 0; i < 4; i++) {
		seed[i] = 0x50 + i;
		host_rmw(_metadata, self, i, 0, seed[i]);
	}
	/* The pipe holds a reference to page 2 until it is read. */
	ASSERT_EQ(0, pipe(pipefd));
	iov.iov_base = self->mem + 2 * PS;
	iov.iov_len = PS;
	ASSERT_EQ(PS, vmsplice(pipefd[1], &iov, 1, 0))
		TH_LOG("vmsplice: %s", strerror(errno));

	expect_eagain(_metadata, self, 0, 4, 2);
	expect_eagain(_metadata, self, 2, 1, 2);
	expect_eagain(_metadata, self, 1, 2, 2);
	expect_eagain(_metadata, self, 2, 2, 2);
	host_check(_metadata, self, seed);
	/* Pages without the pin still convert. */
	convert(_metadata, self, 3, 1, true);
	host_check(_metadata, self, seed);
	convert(_metadata, self, 3, 1, false);
	host_check(_metadata, self, seed);
	for (i = 0; i < 4; i++)
		guest_rmw(_metadata, self, i, seed[i], seed[i]);

	ASSERT_EQ(PS, read(pipefd[0], buf, PS));
	for (i = 0; i < PS; i++)
		ASSERT_EQ(pat(seed[2], i), buf[i]) TH_LOG("pipe byte %d", i);
	close(pipefd[0]);
	close(pipefd[1]);

	convert(_metadata, self, 0, 4, true);
	host_check(_metadata, self, seed);
	for (i = 0; i < 4; i++)
		guest_rmw(_metadata, self, i, seed[i], seed[i]);
}

TEST_F(conv, contents_preserved)
{
	int i;

	if (!setup_gmem(_metadata, self, 4, SHARED))
		SKIP(return, "kvm.vm_memory_attributes=Y");
	for (i = 0; i < 4; i++)
		host_rmw(_metadata, self, i, 0, 0x60 + i);
	convert(_metadata, self, 0, 4, true);
	host_sigbus(_metadata, self, 1);
	for (i = 0; i < 4; i++)
		guest_rmw(_metadata, self, i, 0x60 + i, 0x70 + i);
	convert(_metadata, self, 0, 4, false);
	for (i = 0; i < 4; i++)
		host_rmw(_metadata, self, i, 0x70 + i, 0x70 + i);
}

TEST_F(conv, bad_args)
{
	/* Each would change a page were it valid. */
	const struct kvm_memory_attributes2 bad[] = {
		{ .offset = 1, .size = PS, .attributes = PRIVATE },
		{ .offset = PS + 1, .size = PS },
		{ .offset = PS / 2, .size = PS, .attributes = PRIVATE },
		{ .offset = 0, .size = PS + 1, .attributes = PRIVATE },
		{ .offset = 0, .size = 1, .attributes = PRIVATE },
		{ .offset = 0, .size = 0, .attributes = PRIVATE },
		{ .offset = PS, .size = 0 },
		{ .offset = PS, .size = 2 * PS },
		{ .offset = 2 * PS, .size = PS, .attributes = PRIVATE },
		{ .offset = 0, .size = 3 * PS, .attributes = PRIVATE },
		{ .offset = 1ULL << 40, .size = PS, .attributes = PRIVATE },
		/* offset + size wraps to 0 and to PS, inside the file. */
		{ .offset = PS, .size = -PS },
		{ .offset = -PS, .size = 2 * PS, .attributes = PRIVATE },
		{ .offset = 0, .size = PS, .attributes = 1ULL << 0 },
		{ .offset = 0, .size = PS, .attributes = 1ULL << 4 },
		{ .offset = 0, .size = PS, .attributes = PRIVATE | 1 },
		{ .offset = PS, .size = PS, .attributes = 1ULL << 63 },
		{ .offset = 0, .size = PS, .attributes = PRIVATE, .flags = 1 },
		{ .offset = PS, .size = PS, .flags = 1ULL << 63 },
	};
	struct kvm_memory_attributes2 a, sent;
	unsigned int i;

	if (!setup_gmem(_metadata, self, 2, SHARED))
		SKIP(return, "kvm.vm_memory_attributes=Y");
	host_rmw(_metadata, self, 0, 0, 0x11);
	convert(_metadata, self, 1, 1, true);
	guest_rmw(_metadata, self, 1, 0, 0x12);

	for (i = 0; i < ARRAY_SIZE(bad) + 11; i++) {
		if (i < ARRAY_SIZE(bad)) {
			a = bad[i];
		} else {
			a = attrs2(0, 1, true);
			a.reserved[i - ARRAY_SIZE(bad)] = 1;
		}
		a.error_offset = UNTOUCHED;
		sent = a;
		ASSERT_EQ(EINVAL, rgmem_set_attributes2(self->fd, &a))
			TH_LOG("case %u: offset %#llx size %#llx attributes %#llx flags %#llx",
			       i, a.offset, a.size, a.attributes, a.flags);
		ASSERT_EQ(0, memcmp(&a, &sent, sizeof(a)))
			TH_LOG("case %u: the struct was copied back", i);
		assert_conversions(_metadata, self);
	}
	ASSERT_EQ(-1, ioctl(self->fd, KVM_SET_MEMORY_ATTRIBUTES2, (void *)8));
	ASSERT_EQ(EFAULT, errno);
	assert_conversions(_metadata, self);

	/* Nothing changed. */
	host_rmw(_metadata, self, 0, 0x11, 0x11);
	host_sigbus(_metadata, self, 1);
	guest_rmw(_metadata, self, 0, 0x11, 0x11);
	guest_rmw(_metadata, self, 1, 0x12, 0x12);
	convert_noop(_metadata, self, 0, 1, false);
	convert_noop(_metadata, self, 1, 1, true);

	/* A range in part already in the new state still converts. */
	convert(_metadata, self, 0, 2, true);
	host_sigbus(_metadata, self, 0);
	guest_rmw(_metadata, self, 0, 0x11, 0x13);
}

TEST_F(conv, mmap_rules)
{
	const uint64_t want = GUEST_MEMFD_FLAG_MMAP | GUEST_MEMFD_FLAG_INIT_SHARED;
	struct kvm_memory_attributes a = {
		.size = PS, .attributes = PRIVATE,
	};
	long long faults;
	int fd;
	void *p;

	if (self->vm_attrs)
		SKIP(return, "kvm.vm_memory_attributes=Y");
	ASSERT_EQ(want, vm_check_cap(self->vm, KVM_CAP_GUEST_MEMFD_FLAGS) & want);
	ASSERT_EQ(PRIVATE, vm_check_cap(self->vm,
					KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES));
	/* KVM's per-VM attributes are gone. */
	ASSERT_EQ(0, vm_check_cap(self->vm, KVM_CAP_MEMORY_ATTRIBUTES));
	ASSERT_EQ(-1, __vm_ioctl(self->vm, KVM_SET_MEMORY_ATTRIBUTES, &a));
	ASSERT_EQ(ENOTTY, errno);

	fd = __vm_create_guest_memfd(self->vm, PS, 0);
	ASSERT_LE(0, fd);
	p = mmap(NULL, PS, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_EQ(MAP_FAILED, p);
	ASSERT_EQ(ENODEV, errno);
	close(fd);

	/* One page, mapped two pages long. */
	self->fd = __vm_create_guest_memfd(self->vm, PS,
					   GUEST_MEMFD_FLAG_MMAP | SHARED);
	ASSERT_LE(0, self->fd);
	assert_created(_metadata, self, 2);
	p = mmap(NULL, PS, PROT_READ | PROT_WRITE, MAP_PRIVATE, self->fd, 0);
	ASSERT_EQ(MAP_FAILED, p);
	ASSERT_EQ(EINVAL, errno);
	self->mem = mmap(NULL, 2 * PS, PROT_READ | PROT_WRITE, MAP_SHARED,
			 self->fd, 0);
	ASSERT_NE(MAP_FAILED, self->mem) TH_LOG("%s", strerror(errno));
	self->npages = 2;

	faults = CTR("user_faults");
	ASSERT_EQ(PAGE_SIZE, rmw_page(self->mem, 0, 1));
	ASSERT_LT(faults, CTR("user_faults"));
	ASSERT_EQ(PAGE_SIZE, rmw_page(self->mem, 1, 1));
	host_sigbus(_metadata, self, 1);
	assert_conversions(_metadata, self);
}

TEST_HARNESS_MAIN
