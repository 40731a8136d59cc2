// SPDX-License-Identifier: GPL-2.0
/*
 * make bench, huge pages: rgmem's hugetlb-backed files against the
 * in-kernel C guest_memfd's 4 KiB pages, in one process, run by run.
 *
 * usage: gmem_huge_bench [-r RUNS] paired
 *        gmem_huge_bench [-r RUNS] convert
 *
 * Rows, each the median of RUNS (at least 5, default 7) runs:
 *   first_touch_1g_2m  a vCPU writes a byte to each 4 KiB page of 1 GiB of
 *                      private memory in a fresh guest_memfd, from the first
 *                      KVM_RUN to GUEST_DONE; rgmem's file is 2 MiB-backed
 *   first_touch_1g_1g  the same, rgmem's file 1 GiB-backed
 *   falloc_punch_1g_2m fallocate(KEEP_SIZE) then PUNCH_HOLE of a fresh 1 GiB
 *                      guest_memfd, timed together; rgmem's 2 MiB-backed
 * Units are higher-is-better; each C run uses 4 KiB pages, as C has no
 * other.
 *
 * A guest_memfd stays with whoever created it: with rgmem unloaded, every
 * C file and VM is made first; then rgmem (RGMEM_KO) is loaded, and each
 * rgmem file is made just before its run, untimed, as the pool holds one
 * file's pages at a time. Runs alternate C, rgmem, rgmem, C, ...
 *
 * "convert" times rgmem alone (C has no conversion), with guest_memfd
 * holding the attributes: a guest has touched a 1 GiB-backed file, which
 * KVM maps with one 1 GiB page; each run makes one 4 KiB page shared (the
 * folio splits into 511 x 2 MiB and 512 x 4 KiB), private again (it merges
 * whole) and has the guest touch it (KVM maps the 1 GiB page again),
 * timing the three apart in microseconds, and counts the XArray nodes the
 * split took (rgmem's split_nodes).
 *
 * Output as gmem_bench's: "bench" lines per row and side, "pairs" lines of
 * the rgmem/C ratios of runs timed back to back, and '#' comments with
 * what KVM mapped (pages_4k, pages_2m, pages_1g) per side.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/compiler.h>
#include <linux/falloc.h>
#include <linux/sizes.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#include "rgmem_kvm.h"

#define SIZE		((uint64_t)SZ_1G)
#define PAGES		(SIZE / PAGE_SIZE)
#define GPA		((uint64_t)1 << 32)
#define SLOT		10
#define MIN_RUNS	5
#define MAX_RUNS	50
/* The page "convert" shares: in the eighth 2 MiB of the file. */
#define CONVERT_OFF	(7 * (uint64_t)SZ_2M + 3 * PAGE_SIZE)

enum { ROW_TOUCH_2M, ROW_TOUCH_1G, ROW_FALLOC_PUNCH, NR_ROWS };

static const char * const row_name[NR_ROWS] = {
	"first_touch_1g_2m", "first_touch_1g_1g", "falloc_punch_1g_2m",
};
static const char * const row_unit[NR_ROWS] = {
	"pages/s", "pages/s", "GiB/s",
};
/* rgmem's page size in each row, as log2. */
static const int row_shift[NR_ROWS] = { 21, 30, 21 };

static const char * const page_stat[] = { "pages_4k", "pages_2m", "pages_1g" };

struct touch_vm {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	int fd;
	void *raw;
};

struct side {
	const char *label, *name;
	bool rgmem;
	struct kvm_vm *falloc_vm;
	/* The C side's, made before rgmem is loaded; per row and run. */
	struct touch_vm touch[2][MAX_RUNS + 1];
	int falloc_fd[MAX_RUNS + 1];
	double results[NR_ROWS][MAX_RUNS];
	uint64_t mapped[2][ARRAY_SIZE(page_stat)];
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t flags_for(const struct side *side, int row)
{
	if (!side->rgmem)
		return 0;
	return GUEST_MEMFD_FLAG_HUGETLB |
	       ((uint64_t)row_shift[row] << GUEST_MEMFD_HUGETLB_SIZE_SHIFT);
}

static void guest_touch(uint64_t gpa, uint64_t size, uint64_t unused)
{
	uint64_t off;

	for (off = 0; off < size; off += PAGE_SIZE)
		WRITE_ONCE(*(uint8_t *)(gpa + off), 1);
	GUEST_DONE();
}

/*
 * A VM whose 1 GiB at GPA is unallocated private memory of a new file,
 * mapped by the guest with one 1 GiB page, at a userspace_addr that agrees
 * with GPA modulo 1 GiB so that KVM may map it huge.
 */
static void touch_vm_create(const struct side *side, int row,
			    struct touch_vm *t, void *guest_code)
{
	const struct vm_shape shape = {
		.mode = VM_MODE_DEFAULT,
		.type = KVM_X86_SW_PROTECTED_VM,
	};
	uint8_t *uaddr;

	t->vm = vm_create_shape_with_one_vcpu(shape, &t->vcpu, guest_code);
	t->fd = vm_create_guest_memfd(t->vm, SIZE, flags_for(side, row));
	rgmem_check_name(t->fd, side->name, side->label);
	t->raw = mmap(NULL, 2 * SIZE, PROT_NONE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	TEST_ASSERT(t->raw != MAP_FAILED, "mmap: %s", strerror(errno));
	uaddr = (uint8_t *)(((uintptr_t)t->raw + SIZE - 1) & ~(SIZE - 1));
	vm_set_user_memory_region2(t->vm, SLOT, KVM_MEM_GUEST_MEMFD, GPA, SIZE,
				   uaddr, t->fd, 0);
	if (rgmem_vm_memory_attributes() != 0)
		vm_mem_set_private(t->vm, GPA, SIZE);
	__virt_pg_map(t->vm, GPA, GPA, PG_LEVEL_1G);
	vcpu_args_set(t->vcpu, 3, GPA, SIZE, CONVERT_OFF);
}

static void bench_touch(struct side *side, int row, int run, int runs)
{
	struct touch_vm made, *t = &side->touch[row][run];
	struct ucall uc;
	double t0, t1;
	size_t i;

	if (side->rgmem) {
		touch_vm_create(side, row, &made, guest_touch);
		t = &made;
	}
	t0 = now();
	vcpu_run(t->vcpu);
	t1 = now();
	TEST_ASSERT_KVM_EXIT_REASON(t->vcpu, KVM_EXIT_IO);
	if (get_ucall(t->vcpu, &uc) == UCALL_ABORT)
		REPORT_GUEST_ASSERT(uc);
	TEST_ASSERT(uc.cmd == UCALL_DONE, "unexpected ucall %lu", uc.cmd);
	for (i = 0; run < runs && i < ARRAY_SIZE(page_stat); i++)
		side->mapped[row][i] += vm_get_stat(t->vm, page_stat[i]);
	kvm_vm_free(t->vm);
	close(t->fd);
	munmap(t->raw, 2 * SIZE);
	if (run < runs)
		side->results[row][run] = PAGES / (t1 - t0);
}

static void bench_falloc_punch(struct side *side, int run, int runs)
{
	int fd = side->falloc_fd[run], r;
	double t0, t1;

	if (side->rgmem) {
		fd = vm_create_guest_memfd(side->falloc_vm, SIZE,
					   flags_for(side, ROW_FALLOC_PUNCH));
		rgmem_check_name(fd, side->name, side->label);
	}
	t0 = now();
	r = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, SIZE);
	TEST_ASSERT(!r, "%s: fallocate: %s", side->label, strerror(errno));
	r = fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0, SIZE);
	t1 = now();
	TEST_ASSERT(!r, "%s: punch: %s", side->label, strerror(errno));
	close(fd);
	if (run < runs)
		side->results[ROW_FALLOC_PUNCH][run] = 1 / (t1 - t0);
}

static void side_prepare_c(struct side *side, int runs)
{
	int i, row;

	for (i = 0; i <= runs; i++) {
		for (row = ROW_TOUCH_2M; row <= ROW_TOUCH_1G; row++)
			touch_vm_create(side, row, &side->touch[row][i],
					guest_touch);
		side->falloc_fd[i] = vm_create_guest_memfd(side->falloc_vm, SIZE, 0);
		rgmem_check_name(side->falloc_fd[i], side->name, side->label);
	}
}

static void print_rows(const struct side *side, int runs)
{
	int row, i;

	for (row = 0; row < NR_ROWS; row++)
		rgmem_print_bench(side->label, row_name[row], row_unit[row],
				  side->results[row], runs);
	for (row = ROW_TOUCH_2M; row <= ROW_TOUCH_1G; row++) {
		printf("# %s %s: KVM mapped per run:", side->label, row_name[row]);
		for (i = 0; i < (int)ARRAY_SIZE(page_stat); i++)
			printf(" %s %.1f", page_stat[i],
			       (double)side->mapped[row][i] / runs);
		printf("\n");
	}
}

/* Writes every page once, then the page at @off after each sync. */
static void guest_retouch(uint64_t gpa, uint64_t size, uint64_t off)
{
	uint64_t o;

	for (o = 0; o < size; o += PAGE_SIZE)
		WRITE_ONCE(*(uint8_t *)(gpa + o), 1);
	for (;;) {
		GUEST_SYNC(0);
		WRITE_ONCE(*(uint8_t *)(gpa + off), 2);
	}
}

/* The size of an object of slab cache @name, from /proc/slabinfo. */
static long slab_object_size(const char *name)
{
	char line[512], cache[64];
	long active, total, size;
	FILE *f = fopen("/proc/slabinfo", "r");

	TEST_ASSERT(f, "/proc/slabinfo: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%63s %ld %ld %ld", cache, &active, &total,
			   &size) == 4 && !strcmp(cache, name)) {
			fclose(f);
			return size;
		}
	}
	TEST_FAIL("no slab cache %s in /proc/slabinfo", name);
	return -1;
}

static void bench_convert(int runs)
{
	static const struct side rg = { .label = "rgmem", .name = "[rgmem]",
					.rgmem = true };
	double split[MAX_RUNS], merge[MAX_RUNS], refault[MAX_RUNS], nodes[MAX_RUNS];
	long long splits, merges;
	long long n0;
	long objsize;
	struct touch_vm t;
	double t0, t1, t2;
	int i, e;

	TEST_ASSERT(rgmem_loaded(), "rgmem is not loaded");
	TEST_ASSERT(rgmem_vm_memory_attributes() == 0,
		    "guest_memfd must hold the attributes (kvm.vm_memory_attributes=0)");
	touch_vm_create(&rg, ROW_TOUCH_1G, &t, guest_retouch);
	rgmem_run_to(t.vcpu, UCALL_SYNC);
	TEST_ASSERT(vm_get_stat(t.vm, "pages_1g") == 1, "not mapped with a 1 GiB page");
	splits = rgmem_read_counter("splits");
	merges = rgmem_read_counter("merges");

	for (i = -1; i < runs; i++) {
		int run = i < 0 ? 0 : i;

		n0 = rgmem_read_counter("split_nodes");
		t0 = now();
		e = rgmem_set_range_attributes(t.fd, CONVERT_OFF, PAGE_SIZE, 0);
		t1 = now();
		TEST_ASSERT(!e, "to shared: %s", strerror(e));
		nodes[run] = rgmem_read_counter("split_nodes") - n0;
		split[run] = (t1 - t0) * 1e6;
		e = rgmem_set_range_attributes(t.fd, CONVERT_OFF, PAGE_SIZE,
					       KVM_MEMORY_ATTRIBUTE_PRIVATE);
		t2 = now();
		TEST_ASSERT(!e, "to private: %s", strerror(e));
		merge[run] = (t2 - t1) * 1e6;
		rgmem_run_to(t.vcpu, UCALL_SYNC);
		refault[run] = (now() - t2) * 1e6;
		TEST_ASSERT(vm_get_stat(t.vm, "pages_1g") == 1,
			    "not mapped with a 1 GiB page again");
	}
	TEST_ASSERT(rgmem_read_counter("splits") - splits == 2 * (runs + 1) &&
		    rgmem_read_counter("merges") - merges == 2 * (runs + 1),
		    "rgmem did not split and merge each run");
	rgmem_print_bench("rgmem", "convert_4k_in_1g_split", "us", split, runs);
	rgmem_print_bench("rgmem", "convert_4k_in_1g_merge", "us", merge, runs);
	rgmem_print_bench("rgmem", "convert_4k_in_1g_refault", "us", refault, runs);
	rgmem_print_bench("rgmem", "convert_4k_in_1g_xa_nodes", "nodes", nodes, runs);
	objsize = slab_object_size("radix_tree_node");
	printf("# XArray node: %ld bytes; 1G->2M->4K: %.0f nodes (%.0f KiB); 1G->4K would take 1 + 64 + 4096 = 4161 (%ld KiB)\n",
	       objsize, rgmem_median(nodes, runs),
	       rgmem_median(nodes, runs) * objsize / 1024, 4161 * objsize / 1024);
	kvm_vm_free(t.vm);
	close(t.fd);
	munmap(t.raw, 2 * SIZE);
}

int main(int argc, char *argv[])
{
	static struct side c = { .label = "C", .name = "[kvm-gmem]" };
	static struct side rg = { .label = "rgmem", .name = "[rgmem]",
				  .rgmem = true };
	long long created_before, created;
	int runs = 7, opt, i, k, row;
	struct side *sides[2] = { &c, &rg };
	const char *ko;

	while ((opt = getopt(argc, argv, "r:")) != -1) {
		if (opt != 'r')
			goto usage;
		runs = atoi(optarg);
	}
	if (optind != argc - 1 || runs < MIN_RUNS || runs > MAX_RUNS)
		goto usage;
	if (!strcmp(argv[optind], "convert")) {
		bench_convert(runs);
		return 0;
	}
	if (strcmp(argv[optind], "paired"))
		goto usage;
	ko = getenv("RGMEM_KO");
	TEST_ASSERT(ko, "RGMEM_KO must name rgmem.ko");
	TEST_ASSERT(kvm_check_cap(KVM_CAP_VM_TYPES) &
		    BIT(KVM_X86_SW_PROTECTED_VM),
		    "KVM_X86_SW_PROTECTED_VM is not supported");

	if (rgmem_loaded())
		TEST_ASSERT(!rgmem_unload("rgmem"), "rmmod rgmem: %s",
			    strerror(errno));
	c.falloc_vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	side_prepare_c(&c, runs);
	TEST_ASSERT(!rgmem_load(ko), "insmod %s: %s", ko, strerror(errno));
	rg.falloc_vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	created_before = rgmem_read_counter("files_created");

	/* The warm-up (index runs) first, then C rgmem, rgmem C, ... */
	for (i = -1; i < runs; i++) {
		int run = i < 0 ? runs : i;

		for (k = 0; k < 2; k++) {
			struct side *s = sides[(i & 1) ? 1 - k : k];

			for (row = ROW_TOUCH_2M; row <= ROW_TOUCH_1G; row++)
				bench_touch(s, row, run, runs);
			bench_falloc_punch(s, run, runs);
		}
	}
	kvm_vm_free(c.falloc_vm);
	kvm_vm_free(rg.falloc_vm);

	created = rgmem_read_counter("files_created");
	TEST_ASSERT(created - created_before == NR_ROWS * (runs + 1),
		    "rgmem: files_created went %lld -> %lld, expected +%d",
		    created_before, created, NR_ROWS * (runs + 1));
	printf("# gmem_huge_bench: rgmem's counters: files_created %lld -> %lld\n",
	       created_before, created);
	print_rows(&c, runs);
	print_rows(&rg, runs);
	for (row = 0; row < NR_ROWS; row++)
		rgmem_print_pairs("pairs", row_name[row], rg.results[row],
				  c.results[row], runs);
	return 0;
usage:
	fprintf(stderr, "usage: gmem_huge_bench [-r RUNS] paired|convert (RUNS %d..%d)\n",
		MIN_RUNS, MAX_RUNS);
	return KSFT_FAIL;
}
