// SPDX-License-Identifier: GPL-2.0
/*
 * make bench: time the same guest_memfd workloads on whichever
 * implementation serves KVM_CREATE_GUEST_MEMFD, so that scripts/bench can
 * set rgmem against the in-kernel C guest_memfd, booted once.
 *
 * usage: gmem_bench [-r RUNS] [-t] LABEL
 *
 * -t runs the first_touch_256m row alone, for profiling it.
 *
 * Rows, each the median of RUNS (at least 5, default 7) runs:
 *   fallocate_1g      fallocate(KEEP_SIZE) of a fresh 1 GiB guest_memfd
 *   punch_hole_1g     PUNCH_HOLE of that fully allocated 1 GiB
 *   first_touch_256m  a vCPU writes a byte to each 4 KiB page of 256 MiB
 *                     of private memory in a fresh guest_memfd, from the
 *                     first KVM_RUN to GUEST_DONE
 * Every unit is higher-is-better, so a ratio >= 1 means "at least as fast".
 * Output, one line per row (lines starting with '#' are comments):
 *   bench<TAB>LABEL<TAB>ROW<TAB>MEDIAN<TAB>UNIT<TAB>runs=V1,V2,...
 *
 * LABEL "rgmem" must be served by rgmem and "C" by KVM's own guest_memfd
 * with rgmem unloaded; either is proved or the program fails, so that a
 * silent fallback cannot pass for a result. Other labels are not checked.
 */
#include <fcntl.h>
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

#define FALLOC_SIZE	((uint64_t)SZ_1G)
#define TOUCH_SIZE	((uint64_t)SZ_256M)
/* Above slot 0 and its page tables, as private_mem_conversions_test. */
#define TOUCH_GPA	((uint64_t)1 << 32)
#define TOUCH_SLOT	10
#define MIN_RUNS	5
#define MAX_RUNS	100

enum { ROW_FALLOCATE, ROW_PUNCH_HOLE, ROW_FIRST_TOUCH, NR_ROWS };

static const char * const row_name[NR_ROWS] = {
	"fallocate_1g", "punch_hole_1g", "first_touch_256m",
};
static const char * const row_unit[NR_ROWS] = {
	"GiB/s", "GiB/s", "pages/s",
};
static double results[NR_ROWS][MAX_RUNS];

/* The anon inode name each implementation gives its files, if checked. */
static const char *expect_name;
static const char *label;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Proves, file by file, which implementation made @fd. */
static void check_server(int fd)
{
	if (expect_name)
		rgmem_check_name(fd, expect_name, label);
}

/* One run of rows a and b on a fresh guest_memfd of @vm. */
static void bench_fallocate(struct kvm_vm *vm, int run)
{
	const double gib = (double)FALLOC_SIZE / SZ_1G;
	double t0, t1, t2;
	int fd, r;

	fd = vm_create_guest_memfd(vm, FALLOC_SIZE, 0);
	check_server(fd);

	t0 = now();
	r = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, FALLOC_SIZE);
	t1 = now();
	TEST_ASSERT(!r, "fallocate(KEEP_SIZE) of 1 GiB failed");
	r = fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0,
		      FALLOC_SIZE);
	t2 = now();
	TEST_ASSERT(!r, "fallocate(PUNCH_HOLE) of 1 GiB failed");
	close(fd);

	results[ROW_FALLOCATE][run] = gib / (t1 - t0);
	results[ROW_PUNCH_HOLE][run] = gib / (t2 - t1);
}

/* KVM's statistics of the first-touch VMs, summed over the timed runs. */
static const char * const kvm_stat_name[] = {
	"exits", "pf_taken", "pf_fixed", "pf_spurious", "pf_emulate",
};
#define NR_KVM_STATS ARRAY_SIZE(kvm_stat_name)
static uint64_t kvm_stats[NR_KVM_STATS];

/* Adds @vm's statistic @i, as debugfs shows it (0 without debugfs). */
static void add_kvm_stat(struct kvm_vm *vm, int i)
{
	char path[128];
	uint64_t v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/sys/kernel/debug/kvm/%d-%d/%s",
		 getpid(), vm->fd, kvm_stat_name[i]);
	f = fopen(path, "r");
	if (!f)
		return;
	if (fscanf(f, "%lu", &v) == 1)
		kvm_stats[i] += v;
	fclose(f);
}

static void guest_touch(uint64_t gpa, uint64_t size)
{
	uint64_t off;

	for (off = 0; off < size; off += PAGE_SIZE)
		WRITE_ONCE(*(uint8_t *)(gpa + off), 1);
	GUEST_DONE();
}

/*
 * One run of row c: a new VM each time, so that every page the guest
 * touches is a first touch of a fresh, unallocated guest_memfd. Run -1
 * warms up and is not recorded.
 */
static void bench_first_touch(int run)
{
	const struct vm_shape shape = {
		.mode = VM_MODE_DEFAULT,
		.type = KVM_X86_SW_PROTECTED_VM,
	};
	const uint64_t npages = TOUCH_SIZE / PAGE_SIZE;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct ucall uc;
	double t0, t1;
	int fd, i;

	/* @npages sizes slot 0 for the guest page tables that map them. */
	vm = __vm_create_shape_with_one_vcpu(shape, &vcpu, npages,
					     guest_touch);
	fd = vm_create_guest_memfd(vm, TOUCH_SIZE, 0);
	check_server(fd);
	vm_mem_add(vm, VM_MEM_SRC_ANONYMOUS, TOUCH_GPA, TOUCH_SLOT, npages,
		   KVM_MEM_GUEST_MEMFD, fd, 0);
	virt_map(vm, TOUCH_GPA, TOUCH_GPA, npages);
	vm_mem_set_private(vm, TOUCH_GPA, TOUCH_SIZE);
	vcpu_args_set(vcpu, 2, TOUCH_GPA, TOUCH_SIZE);

	t0 = now();
	vcpu_run(vcpu);
	t1 = now();
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	switch (get_ucall(vcpu, &uc)) {
	case UCALL_DONE:
		break;
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
		break;
	default:
		TEST_FAIL("unexpected ucall %lu", uc.cmd);
	}
	for (i = 0; run >= 0 && i < NR_KVM_STATS; i++)
		add_kvm_stat(vm, i);
	kvm_vm_free(vm);
	close(fd);

	if (run >= 0)
		results[ROW_FIRST_TOUCH][run] = npages / (t1 - t0);
}

static void print_row(int row, int runs)
{
	/* GiB/s can be well under 1 under TCG: enough digits for a ratio. */
	int prec = strcmp(row_unit[row], "pages/s") ? 4 : 0;
	int i;

	printf("bench\t%s\t%s\t%.*f\t%s\truns=", label, row_name[row], prec,
	       rgmem_median(results[row], runs), row_unit[row]);
	for (i = 0; i < runs; i++)
		printf("%s%.*f", i ? "," : "", prec, results[row][i]);
	printf("\n");
}

static void bad_args(void)
{
	fprintf(stderr, "usage: gmem_bench [-r RUNS] [-t] LABEL (RUNS %d..%d)\n",
		MIN_RUNS, MAX_RUNS);
	exit(KSFT_FAIL);
}

/*
 * Under TCG the host backs guest RAM on first touch, which would charge
 * whichever side runs first. Touch most free memory once, for both.
 */
static void warm_up(void)
{
	long avail = sysconf(_SC_AVPHYS_PAGES) * getpagesize();
	size_t size = avail / 4 * 3;
	void *p;

	p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	TEST_ASSERT(p != MAP_FAILED, "warm-up mmap of %zu bytes failed", size);
	munmap(p, size);
}

int main(int argc, char *argv[])
{
	long long created_before = -1, created_after = -1;
	struct kvm_vm *vm;
	int runs = 7, opt, i, row, first_row = 0, files;

	while ((opt = getopt(argc, argv, "r:th")) != -1) {
		switch (opt) {
		case 'r':
			runs = atoi(optarg);
			break;
		case 't':
			first_row = ROW_FIRST_TOUCH;
			break;
		default:
			bad_args();
		}
	}
	if (optind != argc - 1 || runs < MIN_RUNS || runs > MAX_RUNS)
		bad_args();
	label = argv[optind];

	/*
	 * Not TEST_REQUIRE: a skip would leave the table silently empty.
	 * Who serves guest_memfd is checked before any timing, so that a
	 * wrong setup fails at once.
	 */
	TEST_ASSERT(kvm_check_cap(KVM_CAP_VM_TYPES) &
		    BIT(KVM_X86_SW_PROTECTED_VM),
		    "KVM_X86_SW_PROTECTED_VM is not supported");
	if (!strcmp(label, "rgmem")) {
		expect_name = "[rgmem]";
		TEST_ASSERT(rgmem_loaded(), "label rgmem: rgmem is not loaded");
		created_before = rgmem_counter("files_created");
		TEST_ASSERT(created_before >= 0,
			    "label rgmem: cannot read %s/files_created",
			    RGMEM_DEBUGFS);
	} else if (!strcmp(label, "C")) {
		expect_name = "[kvm-gmem]";
		TEST_ASSERT(!rgmem_is_dir(RGMEM_DEBUGFS) &&
			    !rgmem_is_dir(RGMEM_SYSFS),
			    "label C: rgmem is still loaded");
	}

	warm_up();

	/*
	 * Rows a and b need no vCPU: one bare VM makes every file. Each
	 * workload first runs once untimed (its result is overwritten).
	 */
	if (first_row <= ROW_FALLOCATE) {
		vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
		for (i = -1; i < runs; i++)
			bench_fallocate(vm, i < 0 ? 0 : i);
		kvm_vm_free(vm);
	}
	for (i = -1; i < runs; i++)
		bench_first_touch(i);

	if (!strcmp(label, "rgmem")) {
		created_after = rgmem_counter("files_created");
		/* One file per run of each workload. */
		files = (first_row ? 1 : 2) * runs;
		TEST_ASSERT(created_after - created_before >= files,
			    "label rgmem: files_created went %lld -> %lld, expected +%d",
			    created_before, created_after, files);
		printf("# gmem_bench: served by rgmem: files_created %lld -> %lld\n",
		       created_before, created_after);
	} else if (!strcmp(label, "C")) {
		TEST_ASSERT(!rgmem_is_dir(RGMEM_DEBUGFS) &&
			    !rgmem_is_dir(RGMEM_SYSFS),
			    "label C: rgmem was loaded during the run");
		printf("# gmem_bench: served by KVM's C guest_memfd, rgmem not loaded\n");
	} else {
		printf("# gmem_bench: label %s: which guest_memfd served it is not checked\n",
		       label);
	}
	for (row = first_row; row < NR_ROWS; row++)
		print_row(row, runs);
	/* What KVM did per touched page: the same work on either side. */
	printf("# %s first_touch_256m per page:", label);
	for (i = 0; i < NR_KVM_STATS; i++)
		printf(" %s %.3f", kvm_stat_name[i],
		       (double)kvm_stats[i] / runs / (TOUCH_SIZE / PAGE_SIZE));
	printf("\n");
	return 0;
}
