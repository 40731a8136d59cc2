// SPDX-License-Identifier: GPL-2.0
/*
 * make bench: time the same guest_memfd workloads on rgmem and on the
 * in-kernel C guest_memfd, in one process, run by run.
 *
 * usage: gmem_bench [-r RUNS] [-t|-f] paired|aa|rgmem|C|LABEL
 *
 * -t runs the first_touch_256m row alone, and -f the other two, for
 * profiling them.
 *
 * Rows, each the median of RUNS (at least 5, default 7) runs:
 *   fallocate_1g      fallocate(KEEP_SIZE) of a fresh 1 GiB guest_memfd
 *   punch_hole_1g     PUNCH_HOLE of that fully allocated 1 GiB
 *   first_touch_256m  a vCPU writes a byte to each 4 KiB page of 256 MiB
 *                     of private memory in a fresh guest_memfd, from the
 *                     first KVM_RUN to GUEST_DONE
 * Every unit is higher-is-better, so a ratio >= 1 means "at least as fast".
 *
 * "paired" measures both sides in turn. A guest_memfd stays with whoever
 * created it, so it unloads rgmem, creates every file (and first-touch
 * VM) C will use, loads the module at $RGMEM_KO and creates rgmem's. Then
 * each run times C and rgmem back to back, in the order C, rgmem, rgmem,
 * C, ..., so that a machine whose speed drifts charges both alike.
 *
 * "rgmem" and "C" measure one side, which must be the one serving
 * KVM_CREATE_GUEST_MEMFD; other labels measure whoever does, unchecked.
 *
 * "aa" is the control of "paired": C against C, the first side's files
 * all made before the second's, as C's are before rgmem's. Its pairs
 * (pairs-aa lines, second/first) show what the method alone gives.
 *
 * Output, one line per row and side (lines starting with '#' are
 * comments):
 *   bench<TAB>LABEL<TAB>ROW<TAB>MEDIAN<TAB>UNIT<TAB>runs=V1,V2,...
 * where LABEL is "rgmem" or "C" for those sides; "paired" adds the
 * ratios of the runs timed back to back (see print_pairs()). Each file is proved to
 * be the side's by its inode's name, and rgmem's files by its counters, so
 * that a silent fallback cannot pass for a result.
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

#define FALLOC_SIZE	((uint64_t)SZ_1G)
#define TOUCH_SIZE	((uint64_t)SZ_256M)
#define TOUCH_PAGES	(TOUCH_SIZE / PAGE_SIZE)
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

/* KVM's statistics of the first-touch VMs, summed over the timed runs. */
static const char * const kvm_stat_name[] = {
	"exits", "pf_taken", "pf_fixed", "pf_spurious", "pf_emulate",
};
#define NR_KVM_STATS ARRAY_SIZE(kvm_stat_name)

/* A first-touch VM, ready to run: its vCPU, and its guest_memfd bound. */
struct touch_vm {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	int fd;
};

/*
 * One side's workloads, made before any is timed: entry RUNS of each
 * array is the untimed warm-up.
 */
struct side {
	const char *label;
	/* The anon inode name of its files, or NULL if not checked. */
	const char *name;
	/* Makes the fallocate files. */
	struct kvm_vm *falloc_vm;
	int falloc_fd[MAX_RUNS + 1];
	struct touch_vm touch[MAX_RUNS + 1];
	double results[NR_ROWS][MAX_RUNS];
	uint64_t kvm_stats[NR_KVM_STATS];
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Proves that @side made @fd. */
static void check_server(const struct side *side, int fd)
{
	if (side->name)
		rgmem_check_name(fd, side->name, side->label);
}

static void guest_touch(uint64_t gpa, uint64_t size)
{
	uint64_t off;

	for (off = 0; off < size; off += PAGE_SIZE)
		WRITE_ONCE(*(uint8_t *)(gpa + off), 1);
	GUEST_DONE();
}

/* A new VM whose every page at TOUCH_GPA is unallocated private memory. */
static void touch_vm_create(const struct side *side, struct touch_vm *t)
{
	const struct vm_shape shape = {
		.mode = VM_MODE_DEFAULT,
		.type = KVM_X86_SW_PROTECTED_VM,
	};

	/* TOUCH_PAGES sizes slot 0 for the guest page tables that map them. */
	t->vm = __vm_create_shape_with_one_vcpu(shape, &t->vcpu, TOUCH_PAGES,
						guest_touch);
	t->fd = vm_create_guest_memfd(t->vm, TOUCH_SIZE, 0);
	check_server(side, t->fd);
	vm_mem_add(t->vm, VM_MEM_SRC_ANONYMOUS, TOUCH_GPA, TOUCH_SLOT,
		   TOUCH_PAGES, KVM_MEM_GUEST_MEMFD, t->fd, 0);
	virt_map(t->vm, TOUCH_GPA, TOUCH_GPA, TOUCH_PAGES);
	vm_mem_set_private(t->vm, TOUCH_GPA, TOUCH_SIZE);
	vcpu_args_set(t->vcpu, 2, TOUCH_GPA, TOUCH_SIZE);
}

/*
 * Makes every file and VM @side's @runs runs (and its warm-up) of rows
 * [@first_row, @end_row) use.
 */
static void side_prepare(struct side *side, int runs, int first_row,
			 int end_row)
{
	bool falloc = first_row <= ROW_FALLOCATE;
	bool touch = end_row > ROW_FIRST_TOUCH;
	int i;

	if (falloc)
		side->falloc_vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	for (i = 0; i <= runs; i++) {
		if (falloc) {
			side->falloc_fd[i] = vm_create_guest_memfd(side->falloc_vm,
								   FALLOC_SIZE, 0);
			check_server(side, side->falloc_fd[i]);
		}
		if (touch)
			touch_vm_create(side, &side->touch[i]);
	}
}

/* Rows a and b, run @run (RUNS: the warm-up, not recorded). */
static void bench_fallocate(struct side *side, int run, int runs)
{
	const double gib = (double)FALLOC_SIZE / SZ_1G;
	int fd = side->falloc_fd[run];
	double t0, t1, t2;
	int r;

	t0 = now();
	r = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, FALLOC_SIZE);
	t1 = now();
	TEST_ASSERT(!r, "%s: fallocate(KEEP_SIZE) of 1 GiB failed", side->label);
	r = fallocate(fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, 0,
		      FALLOC_SIZE);
	t2 = now();
	TEST_ASSERT(!r, "%s: fallocate(PUNCH_HOLE) of 1 GiB failed", side->label);
	close(fd);

	if (run < runs) {
		side->results[ROW_FALLOCATE][run] = gib / (t1 - t0);
		side->results[ROW_PUNCH_HOLE][run] = gib / (t2 - t1);
	}
}

/* Adds statistic @i of @vm, as debugfs shows it (0 without debugfs). */
static void add_kvm_stat(struct side *side, struct kvm_vm *vm, int i)
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
		side->kvm_stats[i] += v;
	fclose(f);
}

/*
 * Row c, run @run: every page the guest touches is a first touch of an
 * unallocated guest_memfd. The VM goes away after it.
 */
static void bench_first_touch(struct side *side, int run, int runs)
{
	struct touch_vm *t = &side->touch[run];
	struct ucall uc;
	double t0, t1;
	int i;

	t0 = now();
	vcpu_run(t->vcpu);
	t1 = now();
	TEST_ASSERT_KVM_EXIT_REASON(t->vcpu, KVM_EXIT_IO);
	switch (get_ucall(t->vcpu, &uc)) {
	case UCALL_DONE:
		break;
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
		break;
	default:
		TEST_FAIL("unexpected ucall %lu", uc.cmd);
	}
	for (i = 0; run < runs && i < NR_KVM_STATS; i++)
		add_kvm_stat(side, t->vm, i);
	kvm_vm_free(t->vm);
	close(t->fd);

	if (run < runs)
		side->results[ROW_FIRST_TOUCH][run] = TOUCH_PAGES / (t1 - t0);
}

static void print_rows(const struct side *side, int first_row,
		       int end_row, int runs)
{
	int row, i;

	for (row = first_row; row < end_row; row++)
		rgmem_print_bench(side->label, row_name[row], row_unit[row],
				  side->results[row], runs);
	if (end_row <= ROW_FIRST_TOUCH)
		return;
	/* What KVM did per touched page: the same work on either side. */
	printf("# %s first_touch_256m per page:", side->label);
	for (i = 0; i < NR_KVM_STATS; i++)
		printf(" %s %.3f", kvm_stat_name[i],
		       (double)side->kvm_stats[i] / runs / TOUCH_PAGES);
	printf("\n");
}

/* Each row's rgmem/C over runs timed back to back (rgmem_print_pairs()). */
static void print_pairs(const char *tag, const struct side *rg,
			const struct side *c, int first_row, int end_row,
			int runs)
{
	int row;

	for (row = first_row; row < end_row; row++)
		rgmem_print_pairs(tag, row_name[row], rg->results[row],
				  c->results[row], runs);
}

static void bad_args(void)
{
	fprintf(stderr,
		"usage: gmem_bench [-r RUNS] [-t|-f] paired|aa|rgmem|C|LABEL (RUNS %d..%d)\n",
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

/* Fails unless rgmem serves KVM_CREATE_GUEST_MEMFD (@want) or not. */
static void require_rgmem(bool want, const char *label)
{
	if (want)
		TEST_ASSERT(rgmem_loaded(), "%s: rgmem is not loaded", label);
	else
		TEST_ASSERT(!rgmem_is_dir(RGMEM_DEBUGFS) &&
			    !rgmem_is_dir(RGMEM_SYSFS),
			    "%s: rgmem is still loaded", label);
}

/*
 * Runs @n sides' workloads, run by run; with two sides, in the order
 * 0 1, 1 0, 0 1, ... The warm-up (index RUNS) goes first.
 */
static void run_all(struct side **sides, int n, int first_row, int end_row,
		    int runs)
{
	int i, k, run;

	for (i = -1; first_row <= ROW_FALLOCATE && i < runs; i++) {
		run = i < 0 ? runs : i;
		for (k = 0; k < n; k++)
			bench_fallocate(sides[(i & 1) ? n - 1 - k : k], run, runs);
	}
	for (k = 0; first_row <= ROW_FALLOCATE && k < n; k++)
		kvm_vm_free(sides[k]->falloc_vm);
	for (i = -1; end_row > ROW_FIRST_TOUCH && i < runs; i++) {
		run = i < 0 ? runs : i;
		for (k = 0; k < n; k++)
			bench_first_touch(sides[(i & 1) ? n - 1 - k : k], run,
					  runs);
	}
}

int main(int argc, char *argv[])
{
	static struct side c = { .label = "C", .name = "[kvm-gmem]" };
	static struct side rg = { .label = "rgmem", .name = "[rgmem]" };
	static struct side c2 = { .label = "C-second", .name = "[kvm-gmem]" };
	static struct side other;
	long long created_before = 0, created;
	int runs = 7, opt, first_row = 0, end_row = NR_ROWS, files;
	struct side *sides[2];
	const char *label, *ko;
	bool paired, aa;
	int n = 0;

	while ((opt = getopt(argc, argv, "r:tfh")) != -1) {
		switch (opt) {
		case 'r':
			runs = atoi(optarg);
			break;
		case 't':
			first_row = ROW_FIRST_TOUCH;
			break;
		case 'f':
			end_row = ROW_FIRST_TOUCH;
			break;
		default:
			bad_args();
		}
	}
	if (optind != argc - 1 || runs < MIN_RUNS || runs > MAX_RUNS)
		bad_args();
	label = argv[optind];
	paired = !strcmp(label, "paired");
	aa = !strcmp(label, "aa");

	/*
	 * Not TEST_REQUIRE: a skip would leave the table silently empty.
	 * Who serves guest_memfd is checked before any timing, so that a
	 * wrong setup fails at once.
	 */
	TEST_ASSERT(kvm_check_cap(KVM_CAP_VM_TYPES) &
		    BIT(KVM_X86_SW_PROTECTED_VM),
		    "KVM_X86_SW_PROTECTED_VM is not supported");
	warm_up();

	if (paired) {
		ko = getenv("RGMEM_KO");
		TEST_ASSERT(ko, "paired: RGMEM_KO must name rgmem.ko");
		if (rgmem_loaded())
			TEST_ASSERT(!rgmem_unload("rgmem"), "rmmod rgmem: %s",
				    strerror(errno));
		require_rgmem(false, c.label);
		side_prepare(&c, runs, first_row, end_row);
		TEST_ASSERT(!rgmem_load(ko), "insmod %s: %s", ko,
			    strerror(errno));
		sides[n++] = &c;
	}
	if (paired || !strcmp(label, "rgmem")) {
		require_rgmem(true, rg.label);
		created_before = rgmem_read_counter("files_created");
		side_prepare(&rg, runs, first_row, end_row);
		sides[n++] = &rg;
	} else if (!strcmp(label, "C") || aa) {
		require_rgmem(false, c.label);
		side_prepare(&c, runs, first_row, end_row);
		sides[n++] = &c;
		if (aa) {
			/* Not "C": make bench's table pools that label's runs. */
			c.label = "C-first";
			side_prepare(&c2, runs, first_row, end_row);
			sides[n++] = &c2;
		}
	} else if (!paired) {
		other.label = label;
		side_prepare(&other, runs, first_row, end_row);
		sides[n++] = &other;
	}

	TEST_ASSERT(first_row < end_row, "-t and -f exclude each other");
	run_all(sides, n, first_row, end_row, runs);

	if (sides[n - 1] == &rg) {
		/* One file per run of each workload, and the warm-ups. */
		files = ((first_row <= ROW_FALLOCATE) +
			 (end_row > ROW_FIRST_TOUCH)) * (runs + 1);
		created = rgmem_read_counter("files_created");
		TEST_ASSERT(created - created_before == files,
			    "rgmem: files_created went %lld -> %lld, expected +%d",
			    created_before, created, files);
		printf("# gmem_bench: rgmem's counters: files_created %lld -> %lld\n",
		       created_before, created);
	}
	if (!paired && sides[0] == &other)
		printf("# gmem_bench: label %s: which guest_memfd served it is not checked\n",
		       label);
	for (int k = 0; k < n; k++)
		print_rows(sides[k], first_row, end_row, runs);
	if (paired)
		print_pairs("pairs", &rg, &c, first_row, end_row, runs);
	if (aa)
		print_pairs("pairs-aa", &c2, &c, first_row, end_row, runs);
	return 0;
}
