// SPDX-License-Identifier: GPL-2.0
/*
 * guest_memfd files backed by the hugetlb pool (GUEST_MEMFD_FLAG_HUGETLB):
 *
 * - refusals: every malformed request gets EINVAL, a pool too small for
 *   the file gets ENOMEM, and none of them moves the pool's counters;
 * - pool_accounting: creation reserves the whole file, fallocate and
 *   punch-hole take and give back whole pages, and closing returns the
 *   pool to where it was;
 * - guest_2m, guest_1g: a guest touching the file is mapped by KVM with
 *   pages of the file's size (KVM's pages_2m/pages_1g), its writes stay
 *   where they were written, and a punched page comes back zeroed, though
 *   the pool hands out the page it just took back;
 * - convert_2m, convert_1g: one base page becomes shared and private again
 *   in place; the huge folio splits only as far as the page needs (a 1 GiB
 *   one into 511 pieces of 2 MiB and 512 base pages), KVM maps the rest
 *   huge, a pinned shared page gets EAGAIN with its offset, and the folio
 *   merges whole and is mapped whole again;
 * - one_of_two_shared: a block with a shared page left stays split;
 * - punch_split: a punched block holding a shared page stays cached and
 *   reads zero, a private one goes back to the pool;
 * - convert_faults: any allocation of a split failing fails the conversion
 *   with ENOMEM and changes nothing;
 * - park_2m, park_1g: a block whose shared page is pinned when its file
 *   closes is parked, and goes back to the pool once the pin is gone.
 *
 * Every test proves from rgmem's counters and folio dump that rgmem served
 * it, and ends with the pool's counters as they were before it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/falloc.h>
#include <linux/kvm.h>
#include <linux/sizes.h>

#include "kselftest_harness.h"
#include "kvm_util.h"
#include "processor.h"
#include "ucall_common.h"

#define DATA_GPA	(1ULL << 32)
#define DATA_SLOT	10

#include "rgmem_kvm.h"
#include "rgmem_fail.h"
#include "rgmem_huge.h"
#define PATTERN		0x6b6b6b6b00000000ULL

TEST(refusals)
{
	const char *why;
	const uint64_t m2 = SZ_2M;
	struct kvm_vm *vm;
	struct pool before;
	uint64_t flags;
	long long created;
	int fd;

	why = pool_missing(m2, 1);
	if (why)
		SKIP(return, "%s", why);
	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	ASSERT_TRUE(vm_check_cap(vm, KVM_CAP_GUEST_MEMFD_FLAGS) &
		    GUEST_MEMFD_FLAG_HUGETLB)
		TH_LOG("KVM_CAP_GUEST_MEMFD_FLAGS lacks HUGETLB with a pool");
	before = pool_get(m2);
	created = rgmem_read_counter("files_created");

	struct { uint64_t size, flags; const char *what; } bad[] = {
		{ m2, GUEST_MEMFD_FLAG_HUGETLB, "HUGETLB without a size" },
		{ m2, GUEST_MEMFD_HUGETLB_2MB, "a size without HUGETLB" },
		{ m2, GUEST_MEMFD_FLAG_HUGETLB | (22ULL << GUEST_MEMFD_HUGETLB_SIZE_SHIFT),
		  "4 MiB, which has no pool" },
		{ m2, GUEST_MEMFD_FLAG_HUGETLB | (12ULL << GUEST_MEMFD_HUGETLB_SIZE_SHIFT),
		  "a base page" },
		{ m2, GUEST_MEMFD_FLAG_HUGETLB | (31ULL << GUEST_MEMFD_HUGETLB_SIZE_SHIFT),
		  "past 1 GiB" },
		{ m2 + PAGE_SIZE, size_flag(m2), "a size not a multiple of 2 MiB" },
		{ m2 / 2, size_flag(m2), "less than one page" },
		{ m2, size_flag(m2) | GUEST_MEMFD_FLAG_INIT_SHARED,
		  "INIT_SHARED: shared pages cannot live in hugetlb folios" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		fd = create_gmem(vm->fd, bad[i].size, bad[i].flags);
		EXPECT_EQ(-1, fd) TH_LOG("%s was accepted", bad[i].what);
		EXPECT_EQ(EINVAL, errno) TH_LOG("%s: %s", bad[i].what, strerror(errno));
		if (fd >= 0)
			close(fd);
		ASSERT_POOL(before, m2);
	}

	/* One page more than the pool has free and unreserved. */
	flags = size_flag(m2);
	fd = create_gmem(vm->fd, (before.free - before.resv + 1) * m2, flags);
	EXPECT_EQ(-1, fd);
	EXPECT_EQ(ENOMEM, errno) TH_LOG("%s", strerror(errno));
	ASSERT_POOL(before, m2);
	ASSERT_EQ(created, rgmem_read_counter("files_created"));

	kvm_vm_free(vm);
}

TEST(pool_accounting)
{
	const char *why;
	const uint64_t m2 = SZ_2M;
	const int pages = 4;
	struct pool before, p;
	char runs[256];
	long long created, allocated;
	struct kvm_vm *vm;
	int fd;

	why = pool_missing(m2, pages);
	if (why)
		SKIP(return, "%s", why);
	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	before = pool_get(m2);
	created = rgmem_read_counter("files_created");
	allocated = rgmem_read_counter("folios_allocated");

	fd = create_gmem(vm->fd, pages * m2, size_flag(m2));
	ASSERT_LE(0, fd) TH_LOG("%s", strerror(errno));
	ASSERT_EQ(created + 1, rgmem_read_counter("files_created"));
	/* Reserved, none taken. */
	p = before;
	p.resv += pages;
	ASSERT_POOL(p, m2);

	/* Whole pages only, to allocate and to free. */
	EXPECT_EQ(-1, fallocate(fd, FALLOC_FL_KEEP_SIZE, PAGE_SIZE, m2));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, m2 + PAGE_SIZE));
	EXPECT_EQ(EINVAL, errno);
	EXPECT_EQ(-1, fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
				m2, PAGE_SIZE));
	EXPECT_EQ(EINVAL, errno);
	ASSERT_POOL(p, m2);

	/* Two pages taken from the reservation. */
	ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE, m2, 2 * m2));
	p.free -= 2;
	p.resv -= 2;
	ASSERT_POOL(p, m2);
	ASSERT_EQ(allocated + 2, rgmem_read_counter("folios_allocated"));
	folio_runs(ino_of(fd), runs, sizeof(runs));
	ASSERT_STREQ("512 1535 9\n", runs);

	/* One given back, to the reservation. */
	ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
			       m2, m2));
	p.free += 1;
	p.resv += 1;
	ASSERT_POOL(p, m2);
	folio_runs(ino_of(fd), runs, sizeof(runs));
	ASSERT_STREQ("1024 1535 9\n", runs);

	/* A punch past the end of the file is a hole already, if aligned. */
	ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE,
			       pages * m2, m2));

	close(fd);
	ASSERT_POOL(before, m2);
	kvm_vm_free(vm);
}

/*
 * Writes a word into every @stride bytes of [gpa, gpa + size), then, after
 * the host punched the first @punched bytes, reads them all back.
 */
static void guest_touch(uint64_t gpa, uint64_t size, uint64_t stride,
			uint64_t punched)
{
	uint64_t off, v;

	GUEST_SYNC(0);
	for (off = 0; off < size; off += stride)
		WRITE_ONCE(*(uint64_t *)(gpa + off), PATTERN | off);
	GUEST_SYNC(1);
	for (off = 0; off < size; off += stride) {
		v = READ_ONCE(*(uint64_t *)(gpa + off));
		__GUEST_ASSERT(v == (off < punched ? 0 : (PATTERN | off)),
			       "offset 0x%lx reads 0x%lx", off, v);
	}
	GUEST_DONE();
}

/*
 * A guest over @pages huge pages of @page_size from one file: KVM maps each
 * with one page of that size, and a punched page comes back zeroed.
 */
static void guest_backed(struct __test_metadata *_metadata, uint64_t page_size,
			 int pages, const char *stat)
{
	const uint64_t size = pages * page_size;
	const struct pool before = pool_get(page_size);
	struct huge_vm h = huge_vm_create(page_size, pages, guest_touch, 0);
	struct kvm_vcpu *vcpu = h.vcpu;
	struct kvm_vm *vm = h.vm;
	uint64_t mapped, get_pfn;
	char runs[256], want[256];
	int fd = h.fd;

	vcpu_args_set(vcpu, 4, DATA_GPA, size, (uint64_t)SZ_2M, page_size);

	ASSERT_EQ(0, rgmem_run_to(vcpu, UCALL_SYNC).args[1]);
	mapped = vm_get_stat(vm, stat);
	get_pfn = rgmem_read_counter("get_pfn");
	ASSERT_EQ(1, rgmem_run_to(vcpu, UCALL_SYNC).args[1]);

	ASSERT_EQ(mapped + pages, vm_get_stat(vm, stat))
		TH_LOG("KVM did not map each %s page with one", stat);
	ASSERT_LT(get_pfn, rgmem_read_counter("get_pfn"))
		TH_LOG("rgmem served no private fault");
	folio_runs(ino_of(fd), runs, sizeof(runs));
	snprintf(want, sizeof(want), "0 %lu %d\n",
		 (unsigned long)(size / PAGE_SIZE - 1), __builtin_ctzll(page_size) - 12);
	ASSERT_STREQ(want, runs);

	/*
	 * The first page goes back to the pool, and the guest's next touch
	 * takes it again (the pool hands out the page it took back last):
	 * it must read zero, not what the guest wrote before.
	 */
	ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0,
			       page_size));
	rgmem_run_to(vcpu, UCALL_DONE);

	huge_vm_free(&h, page_size);
	ASSERT_POOL(before, page_size);
}

TEST(guest_2m)
{
	const char *why = pool_missing(SZ_2M, 4);

	if (why)
		SKIP(return, "%s", why);
	guest_backed(_metadata, SZ_2M, 4, "pages_2m");
}

TEST(guest_1g)
{
	const char *why = pool_missing(SZ_1G, 1);

	if (why)
		SKIP(return, "%s", why);
	guest_backed(_metadata, SZ_1G, 1, "pages_1g");
}

#define HOST_PATTERN	0x4848484800000000ULL

/*
 * Writes every page of [gpa, gpa + size); then, once page @shared_off is
 * the host's, reads every other page back; then, once it is private again,
 * reads them all, the host's page with what the host wrote there.
 */
static void guest_convert(uint64_t gpa, uint64_t size, uint64_t shared_off)
{
	uint64_t off, v, want;

	for (off = 0; off < size; off += PAGE_SIZE)
		WRITE_ONCE(*(uint64_t *)(gpa + off), PATTERN | off);
	GUEST_SYNC(1);
	for (off = 0; off < size; off += PAGE_SIZE) {
		if (off == shared_off)
			continue;
		v = READ_ONCE(*(uint64_t *)(gpa + off));
		__GUEST_ASSERT(v == (PATTERN | off), "offset 0x%lx reads 0x%lx", off, v);
	}
	GUEST_SYNC(2);
	for (off = 0; off < size; off += PAGE_SIZE) {
		want = (off == shared_off ? HOST_PATTERN : PATTERN) | off;
		v = READ_ONCE(*(uint64_t *)(gpa + off));
		__GUEST_ASSERT(v == want, "offset 0x%lx reads 0x%lx, not 0x%lx",
			       off, v, want);
	}
	GUEST_DONE();
}

/* The folio runs of a file of @pages base pages whose page @shared is shared. */
static void split_runs(char *buf, size_t len, uint64_t page_size, uint64_t pages,
		       uint64_t shared)
{
	uint64_t sub = shared & ~511ULL, block = shared & ~(page_size / PAGE_SIZE - 1);
	uint64_t block_end = block + page_size / PAGE_SIZE;
	size_t used = 0;
	int order = __builtin_ctzll(page_size) - 12;

	if (block)
		used += snprintf(buf + used, len - used, "0 %lu %d\n",
				 (unsigned long)block - 1, order);
	if (sub > block)
		used += snprintf(buf + used, len - used, "%lu %lu 9\n",
				 (unsigned long)block, (unsigned long)sub - 1);
	used += snprintf(buf + used, len - used, "%lu %lu 0\n",
			 (unsigned long)sub, (unsigned long)sub + 511);
	if (sub + 512 < block_end)
		used += snprintf(buf + used, len - used, "%lu %lu 9\n",
				 (unsigned long)sub + 512, (unsigned long)block_end - 1);
	if (block_end < pages)
		snprintf(buf + used, len - used, "%lu %lu %d\n",
			 (unsigned long)block_end, (unsigned long)pages - 1, order);
}

/*
 * One base page of a file of @pages huge pages of @page_size becomes
 * shared and private again, in place: the huge folio holding it splits only
 * as far as that page needs, KVM maps the rest with pages as large as the
 * pieces, the contents survive both ways, a pinned shared page holds the
 * conversion back with EAGAIN, and the folio merges whole again and is
 * mapped whole again.
 */
static void convert_one_page(struct __test_metadata *_metadata, uint64_t page_size,
			     int pages, const char *stat)
{
	const uint64_t size = pages * page_size;
	/* Inside the second 2 MiB of the second huge page, if there is one. */
	const uint64_t shared_off = (pages > 1 ? page_size : 0) + SZ_2M + 5 * PAGE_SIZE;
	const uint64_t shared = shared_off / PAGE_SIZE;
	struct kvm_memory_attributes2 attrs = {
		.offset = shared_off,
		.size = PAGE_SIZE,
		.attributes = KVM_MEMORY_ATTRIBUTE_PRIVATE,
	};
	const struct pool before = pool_get(page_size);
	struct huge_vm h = huge_vm_create(page_size, pages, guest_convert,
					  GUEST_MEMFD_FLAG_MMAP);
	struct kvm_vcpu *vcpu = h.vcpu;
	struct kvm_vm *vm = h.vm;
	uint64_t huge, mid, splits, merges, conversions, *host;
	struct iovec iov;
	char runs[512], want[512];
	uint8_t *file_map;
	int fd = h.fd, pipefd[2];

	vcpu_args_set(vcpu, 3, DATA_GPA, size, shared_off);

	huge = vm_get_stat(vm, stat);
	ASSERT_EQ(1, rgmem_run_to(vcpu, UCALL_SYNC).args[1]);
	ASSERT_EQ(huge + pages, vm_get_stat(vm, stat));
	huge = vm_get_stat(vm, stat);
	mid = vm_get_stat(vm, "pages_2m");
	splits = rgmem_read_counter("splits");
	conversions = rgmem_read_counter("conversions");

	/* Shared: only the 2 MiB holding the page goes down to base pages. */
	ASSERT_EQ(0, rgmem_set_range_attributes(fd, shared_off, PAGE_SIZE, 0));
	ASSERT_EQ(conversions + 1, rgmem_read_counter("conversions"));
	ASSERT_EQ(splits + (page_size == SZ_1G ? 2 : 1), rgmem_read_counter("splits"));
	folio_runs(ino_of(fd), runs, sizeof(runs));
	split_runs(want, sizeof(want), page_size, size / PAGE_SIZE, shared);
	ASSERT_STREQ(want, runs);
	ASSERT_POOL(((struct pool){ before.nr, before.free - pages, before.resv,
				    before.surplus }), page_size);

	/* The host sees what the guest wrote, in place, and writes its own. */
	file_map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, file_map);
	host = (uint64_t *)(file_map + shared_off);
	ASSERT_EQ(PATTERN | shared_off, READ_ONCE(*host));
	WRITE_ONCE(*host, HOST_PATTERN | shared_off);

	/* The guest reads the rest, mapped by KVM as huge as the pieces allow. */
	ASSERT_EQ(2, rgmem_run_to(vcpu, UCALL_SYNC).args[1]);
	if (page_size == SZ_1G) {
		ASSERT_EQ(huge - 1, vm_get_stat(vm, stat));
		ASSERT_LE(mid + 511, vm_get_stat(vm, "pages_2m"))
			TH_LOG("the 1 GiB page's 511 whole 2 MiB pieces are not mapped 2 MiB");
	} else {
		ASSERT_EQ(huge - 1, vm_get_stat(vm, stat));
	}

	/* A pinned shared page holds its conversion back, and changes nothing. */
	ASSERT_EQ(0, pipe(pipefd));
	iov = (struct iovec){ .iov_base = host, .iov_len = PAGE_SIZE };
	ASSERT_EQ(PAGE_SIZE, vmsplice(pipefd[1], &iov, 1, 0));
	ASSERT_EQ(EAGAIN, rgmem_set_attributes2(fd, &attrs));
	ASSERT_EQ(shared_off, attrs.error_offset);
	folio_runs(ino_of(fd), runs, sizeof(runs));
	ASSERT_STREQ(want, runs);
	close(pipefd[0]);
	close(pipefd[1]);

	/* Private again: merged whole, and mapped whole on the next touch. */
	merges = rgmem_read_counter("merges");
	ASSERT_EQ(0, rgmem_set_range_attributes(fd, shared_off, PAGE_SIZE,
						KVM_MEMORY_ATTRIBUTE_PRIVATE));
	ASSERT_LT(merges, rgmem_read_counter("merges"));
	folio_runs(ino_of(fd), runs, sizeof(runs));
	snprintf(want, sizeof(want), "0 %lu %d\n",
		 (unsigned long)(size / PAGE_SIZE - 1), __builtin_ctzll(page_size) - 12);
	ASSERT_STREQ(want, runs);
	rgmem_run_to(vcpu, UCALL_DONE);
	ASSERT_EQ(huge, vm_get_stat(vm, stat)) TH_LOG("not mapped whole again");

	munmap(file_map, size);
	huge_vm_free(&h, page_size);
	ASSERT_POOL(before, page_size);
}

TEST(convert_2m)
{
	const char *why = conversions_missing(SZ_2M, 4);

	if (why)
		SKIP(return, "%s", why);
	convert_one_page(_metadata, SZ_2M, 4, "pages_2m");
}

TEST(convert_1g)
{
	const char *why = conversions_missing(SZ_1G, 1);

	if (why)
		SKIP(return, "%s", why);
	convert_one_page(_metadata, SZ_1G, 1, "pages_1g");
}

/*
 * Two shared pages in one 2 MiB block, and one of them private again: the
 * block stays split, and the host still maps the other.
 */
TEST(one_of_two_shared)
{
	const char *why = conversions_missing(SZ_2M, 1);
	const uint64_t a = 3 * PAGE_SIZE, b = 300 * PAGE_SIZE;
	struct kvm_vm *vm;
	struct pool before;
	char runs[256];
	uint8_t *mem;
	int fd;

	if (why)
		SKIP(return, "%s", why);
	before = pool_get(SZ_2M);
	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	fd = create_gmem(vm->fd, SZ_2M, size_flag(SZ_2M) | GUEST_MEMFD_FLAG_MMAP);
	ASSERT_LE(0, fd);
	mem = mmap(NULL, SZ_2M, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, mem);

	ASSERT_EQ(0, rgmem_set_range_attributes(fd, a, PAGE_SIZE, 0));
	ASSERT_EQ(0, rgmem_set_range_attributes(fd, b, PAGE_SIZE, 0));
	WRITE_ONCE(*(uint64_t *)(mem + b), HOST_PATTERN | b);
	/* Unmapped, the page no longer holds its piece back from a merge. */
	ASSERT_EQ(0, madvise(mem, SZ_2M, MADV_DONTNEED));
	ASSERT_EQ(0, rgmem_set_range_attributes(fd, a, PAGE_SIZE,
						KVM_MEMORY_ATTRIBUTE_PRIVATE));
	folio_runs(ino_of(fd), runs, sizeof(runs));
	ASSERT_STREQ("0 511 0\n", runs);
	ASSERT_EQ(HOST_PATTERN | b, READ_ONCE(*(uint64_t *)(mem + b)));

	munmap(mem, SZ_2M);
	close(fd);
	kvm_vm_free(vm);
	ASSERT_POOL(before, SZ_2M);
}

/*
 * Punching blocks: one holding a shared page stays cached, split, and reads
 * zero; a private one goes back to the pool, and so does the first once
 * its page is private again and the block merged.
 */
TEST(punch_split)
{
	const char *why = conversions_missing(SZ_2M, 2);
	const uint64_t off = 100 * PAGE_SIZE;
	struct kvm_vm *vm;
	struct pool before, p;
	char runs[256];
	uint8_t *mem;
	int fd;

	if (why)
		SKIP(return, "%s", why);
	before = pool_get(SZ_2M);
	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	fd = create_gmem(vm->fd, 2 * SZ_2M, size_flag(SZ_2M) | GUEST_MEMFD_FLAG_MMAP);
	ASSERT_LE(0, fd);
	mem = mmap(NULL, 2 * SZ_2M, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, mem);
	ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE, SZ_2M, SZ_2M));
	ASSERT_EQ(0, rgmem_set_range_attributes(fd, off, PAGE_SIZE, 0));
	WRITE_ONCE(*(uint64_t *)(mem + off), HOST_PATTERN);
	/* Both pages of the file's reservation taken. */
	p = before;
	p.free -= 2;
	ASSERT_POOL(p, SZ_2M);

	ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0,
			       2 * SZ_2M));
	folio_runs(ino_of(fd), runs, sizeof(runs));
	ASSERT_STREQ("0 511 0\n", runs);
	p.free++;
	p.resv++;
	ASSERT_POOL(p, SZ_2M);
	ASSERT_EQ(0, READ_ONCE(*(uint64_t *)(mem + off)));

	ASSERT_EQ(0, rgmem_set_range_attributes(fd, off, PAGE_SIZE,
						KVM_MEMORY_ATTRIBUTE_PRIVATE));
	folio_runs(ino_of(fd), runs, sizeof(runs));
	ASSERT_STREQ("0 511 9\n", runs);
	ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0,
			       2 * SZ_2M));
	folio_runs(ino_of(fd), runs, sizeof(runs));
	ASSERT_STREQ("", runs);
	p.free++;
	p.resv++;
	ASSERT_POOL(p, SZ_2M);

	munmap(mem, 2 * SZ_2M);
	close(fd);
	kvm_vm_free(vm);
	ASSERT_POOL(before, SZ_2M);
}

/* Field @name of /proc/vmstat. */
static long long vmstat_field(const char *name)
{
	char key[64];
	long long v;
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		return -1;
	while (fscanf(f, "%63s %lld", key, &v) == 2) {
		if (!strcmp(key, name)) {
			fclose(f);
			return v;
		}
	}
	fclose(f);
	return -1;
}

/*
 * A file closing while a pipe pins its shared page: the block cannot merge, so
 * it is parked, its page out of the pool, and the data still where the pipe
 * reads it. Once the pipe lets go, the block merges and returns to the pool.
 * The page cache's count of large file folios, which the 2 MiB pieces of a
 * 1 GiB block pass through, ends where it began.
 */
static void park_pinned(struct __test_metadata *_metadata, uint64_t page_size)
{
	const char *why = conversions_missing(page_size, 1);
	/* In the second 2 MiB: a 1 GiB block keeps 2 MiB pieces around it. */
	const uint64_t off = (page_size == SZ_1G ? SZ_2M : 0) + 5 * PAGE_SIZE;
	uint64_t parked, unparked, splits, buf[PAGE_SIZE / 8];
	long long file_huge;
	struct pool before, p;
	struct kvm_vm *vm;
	struct iovec iov;
	int fd, pipefd[2], i;
	uint8_t *mem;

	if (why)
		SKIP(return, "%s", why);
	before = pool_get(page_size);
	parked = rgmem_read_counter("blocks_parked");
	unparked = rgmem_read_counter("blocks_unparked");
	splits = rgmem_read_counter("splits");
	file_huge = vmstat_field("nr_file_hugepages");
	ASSERT_LE(0, file_huge);

	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	fd = create_gmem(vm->fd, page_size, size_flag(page_size) | GUEST_MEMFD_FLAG_MMAP);
	ASSERT_LE(0, fd);
	mem = mmap(NULL, off + PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	ASSERT_NE(MAP_FAILED, mem);
	ASSERT_EQ(0, rgmem_set_range_attributes(fd, off, PAGE_SIZE, 0));
	ASSERT_LT(splits, rgmem_read_counter("splits"));
	WRITE_ONCE(*(uint64_t *)(mem + off), HOST_PATTERN | off);
	ASSERT_EQ(0, pipe(pipefd));
	iov = (struct iovec){ .iov_base = mem + off, .iov_len = PAGE_SIZE };
	ASSERT_EQ(PAGE_SIZE, vmsplice(pipefd[1], &iov, 1, 0));
	munmap(mem, off + PAGE_SIZE);
	close(fd);
	kvm_vm_free(vm);

	/* Parked: its page stays out of the pool; the reservation is gone. */
	ASSERT_EQ(parked + 1, rgmem_read_counter("blocks_parked"));
	ASSERT_EQ(unparked, rgmem_read_counter("blocks_unparked"));
	p = before;
	p.free--;
	ASSERT_POOL(p, page_size);

	/* The pipe still reads the page in place. */
	ASSERT_EQ(PAGE_SIZE, read(pipefd[0], buf, PAGE_SIZE));
	ASSERT_EQ(HOST_PATTERN | off, buf[0]);
	close(pipefd[0]);
	close(pipefd[1]);

	for (i = 0; i < 500; i++) {
		if (rgmem_read_counter("blocks_unparked") != unparked)
			break;
		usleep(10000);
	}
	ASSERT_EQ(unparked + 1, rgmem_read_counter("blocks_unparked"))
		TH_LOG("the block was not freed within 5 s of its pin going");
	ASSERT_POOL(before, page_size);
	ASSERT_EQ(file_huge, vmstat_field("nr_file_hugepages"));
}

TEST(park_2m)
{
	park_pinned(_metadata, SZ_2M);
}

TEST(park_1g)
{
	park_pinned(_metadata, SZ_1G);
}

/* The lines of the debugfs dump @name that are inode @ino's; the caller frees them. */
static char *dump_of(const char *name, ino_t ino)
{
	char path[128], *all, *out, *line, *nl;
	size_t len = 0;

	snprintf(path, sizeof(path), RGMEM_DEBUGFS "/%s", name);
	all = read_all(path);
	out = malloc(strlen(all) + 1);
	TEST_ASSERT(out, "malloc");
	for (line = all; (nl = strchr(line, '\n')); line = nl + 1) {
		if (strtoull(line, NULL, 10) != ino)
			continue;
		memcpy(out + len, line, nl + 1 - line);
		len += nl + 1 - line;
	}
	out[len] = '\0';
	free(all);
	return out;
}

/* What a conversion that fails must leave as it was. */
struct state {
	char *shares, *folios;
	struct pool pool;
	long long conversions, splits;
};

static struct state state_get(int fd, uint64_t page_size)
{
	return (struct state){
		.shares = dump_of("shareability", ino_of(fd)),
		.folios = dump_of("folios", ino_of(fd)),
		.pool = pool_get(page_size),
		.conversions = rgmem_read_counter("conversions"),
		.splits = rgmem_read_counter("splits"),
	};
}

/*
 * Makes the base page at @off of @fd shared with the n-th allocation its
 * call reaches failing, n = 1, 2, ...: each call that fails must fail with
 * ENOMEM, report @off, and leave the shareability and folio dumps
 * byte-for-byte, the pool's counters and rgmem's as they were. A call the
 * kernel absorbed a failure in is undone, and the loop goes on until a
 * call reaches no armed point. Returns how many calls failed.
 */
static int share_injected(struct __test_metadata *_metadata, int fd,
			  uint64_t page_size, uint64_t off)
{
	struct kvm_memory_attributes2 a;
	struct state was, now;
	unsigned int nth, left;
	int e, failed = 0;

	for (nth = 1;; nth++) {
		ASSERT_GT(1000, nth) TH_LOG("the conversion never succeeds");
		was = state_get(fd, page_size);
		a = (struct kvm_memory_attributes2){ .offset = off, .size = PAGE_SIZE };
		fail_nth_set(nth);
		e = rgmem_set_attributes2(fd, &a);
		left = fail_nth_get();
		fail_nth_set(0);
		now = state_get(fd, page_size);
		if (e) {
			ASSERT_EQ(0, left) TH_LOG("failed (%s) with no fault injected",
						  strerror(e));
			ASSERT_EQ(ENOMEM, e) TH_LOG("fail-nth %u: %s", nth, strerror(e));
			ASSERT_EQ(off, a.error_offset);
			ASSERT_STREQ(was.shares, now.shares);
			ASSERT_STREQ(was.folios, now.folios);
			ASSERT_POOL(was.pool, page_size);
			ASSERT_EQ(was.conversions, now.conversions);
			ASSERT_EQ(was.splits, now.splits);
			failed++;
		} else {
			ASSERT_LT(was.splits, now.splits) TH_LOG("fail-nth %u: nothing split", nth);
		}
		free(was.shares);
		free(was.folios);
		free(now.shares);
		free(now.folios);
		if (!e && left)
			return failed;
		if (!e)
			ASSERT_EQ(0, rgmem_set_range_attributes(fd, off, PAGE_SIZE,
								KVM_MEMORY_ATTRIBUTE_PRIVATE));
	}
}

/*
 * Yan Zhao's point, tested: every allocation a split needs is made before
 * the point of no return, so failing any of them changes nothing. For a
 * cached 1 GiB folio split to 2 MiB and 4 KiB, for one of its 2 MiB pieces
 * split further, and for a 2 MiB block the conversion must first cache.
 */
TEST(convert_faults)
{
	const char *why = conversions_missing(SZ_1G, 1) ?: pool_missing(SZ_2M, 2);
	struct kvm_vm *vm;
	struct pool before1g, before2m;
	int fd, n;

	if (why)
		SKIP(return, "%s", why);
	setup_fault_injection();
	before1g = pool_get(SZ_1G);
	before2m = pool_get(SZ_2M);
	vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);

	fd = create_gmem(vm->fd, SZ_1G, size_flag(SZ_1G));
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, SZ_1G));
	n = share_injected(_metadata, fd, SZ_1G, 7 * SZ_2M + 3 * PAGE_SIZE);
	ksft_print_msg("1 GiB to 2 MiB and 4 KiB: %d failures\n", n);
	ASSERT_LT(64, n) TH_LOG("fewer failures than the split's XArray nodes");
	n = share_injected(_metadata, fd, SZ_1G, 9 * SZ_2M);
	ksft_print_msg("2 MiB piece to 4 KiB: %d failures\n", n);
	ASSERT_LT(7, n);
	close(fd);
	ASSERT_POOL(before1g, SZ_1G);

	fd = create_gmem(vm->fd, 2 * SZ_2M, size_flag(SZ_2M));
	ASSERT_LE(0, fd);
	n = share_injected(_metadata, fd, SZ_2M, SZ_2M + PAGE_SIZE);
	ksft_print_msg("uncached 2 MiB to 4 KiB: %d failures\n", n);
	close(fd);
	ASSERT_POOL(before2m, SZ_2M);
	kvm_vm_free(vm);
}

TEST_HARNESS_MAIN
