/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers of the selftests of hugetlb-backed files: the pool's counters,
 * rgmem's folio dump, and a VM over one such file.  The includer defines
 * DATA_GPA and DATA_SLOT, where the file's memslot goes.
 */
#ifndef RGMEM_HUGE_H
#define RGMEM_HUGE_H

#include <sys/stat.h>

#include <linux/sizes.h>

#include "rgmem_kvm.h"

/* What /sys/kernel/mm/hugepages says of one pool. */
struct pool {
	long nr, free, resv, surplus;
};

static inline long pool_read(uint64_t page_size, const char *what)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/kernel/mm/hugepages/hugepages-%lukB/%s",
		 (unsigned long)(page_size >> 10), what);
	return rgmem_read_number(path);
}

static inline struct pool pool_get(uint64_t page_size)
{
	return (struct pool){
		.nr = pool_read(page_size, "nr_hugepages"),
		.free = pool_read(page_size, "free_hugepages"),
		.resv = pool_read(page_size, "resv_hugepages"),
		.surplus = pool_read(page_size, "surplus_hugepages"),
	};
}

#define ASSERT_POOL(want, page_size) do {				\
	struct pool __p = pool_get(page_size);				\
	ASSERT_EQ((want).nr, __p.nr);					\
	ASSERT_EQ((want).free, __p.free);				\
	ASSERT_EQ((want).resv, __p.resv);				\
	ASSERT_EQ((want).surplus, __p.surplus);				\
} while (0)

static inline uint64_t size_flag(uint64_t page_size)
{
	return GUEST_MEMFD_FLAG_HUGETLB |
	       ((uint64_t)__builtin_ctzll(page_size) << GUEST_MEMFD_HUGETLB_SIZE_SHIFT);
}

/*
 * Why the test cannot run: rgmem does not serve guest_memfd, or the pool has
 * fewer than @pages free pages of @page_size; NULL if it can.
 */
static inline const char *pool_missing(uint64_t page_size, long pages)
{
	static char why[128];
	long free = pool_read(page_size, "free_hugepages");

	if (!rgmem_loaded())
		return "rgmem is not loaded";
	if (free >= pages)
		return NULL;
	snprintf(why, sizeof(why),
		 "%ld free %lu kB huge pages, %ld needed (boot with hugepagesz=/hugepages=)",
		 free, (unsigned long)(page_size >> 10), pages);
	return why;
}

/*
 * Why a conversion test cannot run: as pool_missing(), or the VM holds the
 * attributes (kvm.vm_memory_attributes=Y); NULL if it can.
 */
static inline const char *conversions_missing(uint64_t page_size, long pages)
{
	if (rgmem_vm_memory_attributes() != 0)
		return "kvm.vm_memory_attributes=Y: the VM holds the attributes";
	return pool_missing(page_size, pages);
}

static inline int create_gmem(int vm_fd, uint64_t size, uint64_t flags)
{
	struct kvm_create_guest_memfd args = { .size = size, .flags = flags };

	return ioctl(vm_fd, KVM_CREATE_GUEST_MEMFD, &args);
}

/*
 * The runs rgmem's debugfs "folios" shows for inode @ino, as "first last
 * order" lines, into @buf.
 */
static inline void folio_runs(ino_t ino, char *buf, size_t len)
{
	unsigned long long i, first, last;
	unsigned int order;
	size_t used = 0;
	FILE *f;

	buf[0] = '\0';
	f = fopen(RGMEM_DEBUGFS "/folios", "r");
	if (!f)
		return;
	while (fscanf(f, "%llu %llu %llu %u", &i, &first, &last, &order) == 4) {
		if (i != ino)
			continue;
		used += snprintf(buf + used, len - used, "%llu %llu %u\n",
				 first, last, order);
		if (used >= len)
			break;
	}
	fclose(f);
}

static inline ino_t ino_of(int fd)
{
	struct stat st;

	TEST_ASSERT(!fstat(fd, &st), "fstat: %s", strerror(errno));
	return st.st_ino;
}

/* A VM over @pages huge pages of @page_size of one file, at DATA_GPA. */
struct huge_vm {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	int fd;
	uint8_t *raw;
	uint64_t size;
};

/*
 * A SW_PROTECTED VM whose vCPU runs @guest_code, its memory at DATA_GPA a
 * new file of @pages pages of @page_size created with @flags too, private,
 * and mapped by the guest with pages of that size.
 */
static inline struct huge_vm huge_vm_create(uint64_t page_size, int pages,
					    void *guest_code, uint64_t flags)
{
	const struct vm_shape shape = {
		.mode = VM_MODE_DEFAULT,
		.type = KVM_X86_SW_PROTECTED_VM,
	};
	const int level = page_size == SZ_1G ? PG_LEVEL_1G : PG_LEVEL_2M;
	struct huge_vm h = { .size = pages * page_size };
	uint8_t *uaddr;

	h.vm = vm_create_shape_with_one_vcpu(shape, &h.vcpu, guest_code);
	h.fd = vm_create_guest_memfd(h.vm, h.size, size_flag(page_size) | flags);
	/*
	 * KVM maps huge only where userspace_addr and the gpa agree modulo
	 * the page size, even for private memory; nothing touches it.
	 */
	h.raw = mmap(NULL, h.size + page_size, PROT_NONE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	TEST_ASSERT(h.raw != MAP_FAILED, "mmap: %s", strerror(errno));
	uaddr = (uint8_t *)(((uintptr_t)h.raw + page_size - 1) & ~(page_size - 1));
	vm_set_user_memory_region2(h.vm, DATA_SLOT, KVM_MEM_GUEST_MEMFD, DATA_GPA,
				   h.size, uaddr, h.fd, 0);
	if (rgmem_vm_memory_attributes() == 1)
		vm_mem_set_private(h.vm, DATA_GPA, h.size);
	for (int i = 0; i < pages; i++)
		__virt_pg_map(h.vm, DATA_GPA + i * page_size, DATA_GPA + i * page_size,
			      level);
	return h;
}

static inline void huge_vm_free(struct huge_vm *h, uint64_t page_size)
{
	close(h->fd);
	kvm_vm_free(h->vm);
	munmap(h->raw, h->size + page_size);
}

#endif /* RGMEM_HUGE_H */
