// SPDX-License-Identifier: GPL-2.0
/*
 * The latency of shared<->private conversion of guest memory, on whichever
 * side keeps the memory attributes, so that rgmem's in-place conversion can
 * be set against KVM's per-VM attributes of the C guest_memfd.
 *
 * usage: gmem_conv_bench [-r RUNS] LABEL
 *
 * One SW_PROTECTED VM, no vCPU, a 1 GiB guest_memfd bound at GPA 4 GiB
 * (slot 10) with an anonymous MAP_SHARED | MAP_NORESERVE mapping as the
 * memslot's userspace_addr. A conversion is one ioctl:
 *   kvm.vm_memory_attributes=0  KVM_SET_MEMORY_ATTRIBUTES2 on the file, at
 *                               file offsets (label rgmem)
 *   kvm.vm_memory_attributes=1  KVM_SET_MEMORY_ATTRIBUTES on the VM, at
 *                               GPAs: KVM's xarray (label C)
 * Every row starts and ends with the whole GiB private.
 *
 * Rows, VARIANT being "unpop" (the whole file punched out before the row)
 * or "pop" (the whole file fallocated before the row):
 *   to_shared_contig_SIZE_VARIANT   one conversion of SIZE (4k, 2m, 64m,
 *   to_private_contig_SIZE_VARIANT  1g) at offset 0, private to shared and
 *                                   back: median of RUNS (default 5)
 *                                   after one untimed pass
 *   to_shared_frag_1g_VARIANT       one conversion of the whole GiB, of
 *   to_private_frag_1g_VARIANT      which every other page (even ones
 *                                   private, odd ones shared) is in the
 *                                   target state already; that state is
 *                                   set up by 131072 untimed one-page
 *                                   conversions: min(RUNS, 3) runs
 * in conv/s (1 / seconds of the call): higher is better. And, the median of
 * 3 measurements, the slab memory of the store of attributes (rgmem's maple
 * tree, maple_node; KVM's xarray, radix_tree_node), active objects times
 * object size, less what it was before the store was filled:
 *   store_bytes_contig_1g  rgmem: a new 1 GiB file, one run of private;
 *                          C: after setting 1 GiB private with one call
 *   store_bytes_frag_1g    then, every other page made shared
 * in bytes: lower is better. Output as gmem_bench's:
 *   bench<TAB>LABEL<TAB>ROW<TAB>MEDIAN<TAB>UNIT<TAB>runs=V1,V2,...
 * Progress goes to stderr.
 *
 * LABEL "rgmem" needs rgmem loaded and vm_memory_attributes=0, and proves
 * from rgmem's counters that rgmem made every file and made every
 * conversion; "C" needs vm_memory_attributes=1 and rgmem not loaded. Either
 * fails otherwise. Other labels are not checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/falloc.h>
#include <linux/membarrier.h>
#include <linux/sizes.h>

#include "kvm_util.h"
#include "test_util.h"

#include "rgmem_kvm.h"

#define GMEM_SIZE	((uint64_t)SZ_1G)
#define GMEM_PAGE	((uint64_t)SZ_4K)
#define GMEM_PAGES	(GMEM_SIZE / GMEM_PAGE)
/* Above slot 0 and its page tables, as gmem_bench. */
#define GMEM_GPA	((uint64_t)1 << 32)
#define GMEM_SLOT	10
#define MAX_RUNS	100
/* Each run of a frag row sets up 2 * 131072 one-page conversions. */
#define FRAG_RUNS	3
#define STORE_RUNS	3
#define MAX_ROWS	24
#define SLAB_SYSFS	"/sys/kernel/slab"

static const struct {
	const char *name;
	uint64_t size;
} contig[] = {
	{ "4k", SZ_4K }, { "2m", SZ_2M }, { "64m", SZ_64M }, { "1g", SZ_1G },
};

struct row {
	char name[48];
	const char *unit;
	int prec;
	int runs;
	double v[MAX_RUNS];
};

static struct row rows[MAX_ROWS];
static int nr_rows;

/* The guest_memfd under test and what it is bound with. */
struct gmem {
	struct kvm_vm *vm;
	void *hva;
	int fd;
};

static const char *label;
/* Conversions by KVM_SET_MEMORY_ATTRIBUTES2 on the file, not on the VM. */
static bool file_attrs;
/* The anon inode name each implementation gives its files, if checked. */
static const char *expect_name;
/* The slab cache of the store of attributes, and where it was read. */
static const char *store_cache;
static char store_source[512];
/* Files made, and conversions made by KVM_SET_MEMORY_ATTRIBUTES2. */
static long long nr_files, nr_conversions;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct row *new_row(const char *unit, int prec)
{
	TEST_ASSERT(nr_rows < MAX_ROWS, "too many rows");
	rows[nr_rows].unit = unit;
	rows[nr_rows].prec = prec;
	return &rows[nr_rows++];
}

/* Row DIR_WHAT_VARIANT. */
static struct row *conv_row(const char *dir, const char *what, bool pop)
{
	/* Under TCG a 1 GiB conversion may take seconds. */
	struct row *r = new_row("conv/s", 6);

	snprintf(r->name, sizeof(r->name), "%s_%s_%s", dir, what,
		 pop ? "pop" : "unpop");
	return r;
}

/* Proves, file by file, which implementation made @fd. */
static void check_server(int fd)
{
	if (expect_name)
		rgmem_check_name(fd, expect_name, label);
}

/* A SW_PROTECTED VM and the 1 GiB of host memory for its memslot. */
static void gmem_open(struct gmem *g)
{
	g->vm = vm_create_barebones_type(KVM_X86_SW_PROTECTED_VM);
	g->hva = mmap(NULL, GMEM_SIZE, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	TEST_ASSERT(g->hva != MAP_FAILED, "mmap of 1 GiB failed");
	g->fd = -1;
}

/* The 1 GiB guest_memfd, all private, bound at GMEM_GPA if @bind. */
static void gmem_add_file(struct gmem *g, bool bind)
{
	g->fd = vm_create_guest_memfd(g->vm, GMEM_SIZE, 0);
	nr_files++;
	check_server(g->fd);
	if (bind)
		vm_set_user_memory_region2(g->vm, GMEM_SLOT,
					   KVM_MEM_GUEST_MEMFD, GMEM_GPA,
					   GMEM_SIZE, g->hva, g->fd, 0);
}

static void gmem_close(struct gmem *g)
{
	kvm_vm_free(g->vm);
	if (g->fd >= 0)
		close(g->fd);
	munmap(g->hva, GMEM_SIZE);
}

/*
 * Makes @size bytes at file offset @off private or shared: the seconds the
 * ioctl took. Every conversion of the file changes some page, as rgmem's
 * conversions counter then shows.
 */
static double convert(struct gmem *g, uint64_t off, uint64_t size,
		      bool private)
{
	const uint64_t attributes = private ? KVM_MEMORY_ATTRIBUTE_PRIVATE : 0;
	struct kvm_memory_attributes2 a2 = {
		.offset = off, .size = size, .attributes = attributes,
	};
	struct kvm_memory_attributes a = {
		.address = GMEM_GPA + off, .size = size,
		.attributes = attributes,
	};
	double t0, t1;
	int r;

	if (file_attrs) {
		t0 = now();
		r = rgmem_set_attributes2(g->fd, &a2);
		t1 = now();
		TEST_ASSERT(!r, "KVM_SET_MEMORY_ATTRIBUTES2 of %#lx+%#lx to %s: %s",
			    off, size, private ? "private" : "shared",
			    strerror(r));
		nr_conversions++;
	} else {
		t0 = now();
		r = __vm_ioctl(g->vm, KVM_SET_MEMORY_ATTRIBUTES, &a);
		t1 = now();
		TEST_ASSERT(!r, "KVM_SET_MEMORY_ATTRIBUTES of %#llx+%#lx to %s",
			    a.address, size, private ? "private" : "shared");
	}
	return t1 - t0;
}

/*
 * From the whole GiB in one state to every even page private and every
 * odd one shared: one conversion for each page that changes.
 */
static void fragment(struct gmem *g, bool from_private)
{
	double t0 = now();
	uint64_t page;

	for (page = from_private ? 1 : 0; page < GMEM_PAGES; page += 2)
		convert(g, page * GMEM_PAGE, GMEM_PAGE, !from_private);
	fprintf(stderr, "# gmem_conv_bench: fragmented from %s: %lu conversions in %.1f s\n",
		from_private ? "private" : "shared", GMEM_PAGES / 2,
		now() - t0);
}

/* Before a row: no folios, or every page of the file allocated. */
static void populate(struct gmem *g, bool pop)
{
	int mode = FALLOC_FL_KEEP_SIZE | (pop ? 0 : FALLOC_FL_PUNCH_HOLE);

	TEST_ASSERT(!fallocate(g->fd, mode, 0, GMEM_SIZE),
		    "fallocate(%s) of 1 GiB failed",
		    pop ? "KEEP_SIZE" : "PUNCH_HOLE");
}

static void bench_contig(struct gmem *g, int c, bool pop, int runs)
{
	const uint64_t size = contig[c].size;
	struct row *sh, *pr;
	char what[32];
	double ts, tp;
	int i;

	snprintf(what, sizeof(what), "contig_%s", contig[c].name);
	sh = conv_row("to_shared", what, pop);
	pr = conv_row("to_private", what, pop);
	fprintf(stderr, "# gmem_conv_bench: %s, %s\n", sh->name, pr->name);
	populate(g, pop);
	/*
	 * The first pass is untimed (its result is overwritten); that of
	 * the first row, contig_4k, warms up conversion as a whole.
	 */
	for (i = -1; i < runs; i++) {
		ts = convert(g, 0, size, false);
		tp = convert(g, 0, size, true);
		sh->v[i < 0 ? 0 : i] = 1 / ts;
		pr->v[i < 0 ? 0 : i] = 1 / tp;
	}
	sh->runs = runs;
	pr->runs = runs;
}

static void bench_frag(struct gmem *g, bool pop, int runs)
{
	struct row *sh = conv_row("to_shared", "frag_1g", pop);
	struct row *pr = conv_row("to_private", "frag_1g", pop);
	int i;

	runs = min(runs, FRAG_RUNS);
	populate(g, pop);
	for (i = 0; i < runs; i++) {
		fprintf(stderr, "# gmem_conv_bench: %s, %s: run %d of %d\n",
			sh->name, pr->name, i + 1, runs);
		fragment(g, true);
		sh->v[i] = 1 / convert(g, 0, GMEM_SIZE, false);
		fragment(g, false);
		pr->v[i] = 1 / convert(g, 0, GMEM_SIZE, true);
	}
	sh->runs = runs;
	pr->runs = runs;
}

/* Lets the RCU callbacks that free nodes run, so that slabinfo shows it. */
static void settle(void)
{
	int i;

	/* MEMBARRIER_CMD_GLOBAL waits for an RCU grace period. */
	for (i = 0; i < 2; i++)
		if (syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0))
			sleep(1);
	usleep(200 * 1000);
}

/* A number from the first field of sysfs file @attr of slab cache @cache. */
static long long slab_sysfs(const char *cache, const char *attr)
{
	char path[256];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s/%s", SLAB_SYSFS, cache, attr);
	f = fopen(path, "r");
	TEST_ASSERT(f, "cannot open %s", path);
	if (fscanf(f, "%lld", &v) != 1)
		v = -1;
	fclose(f);
	TEST_ASSERT(v >= 0, "cannot read %s", path);
	return v;
}

/*
 * Active objects times object size of slab cache @cache, from
 * /proc/slabinfo. A cache merged into another one has no line there:
 * then from its sysfs directory, which is the merged cache's (the same
 * count, shared with the other caches merged into it).
 */
static long long slab_bytes(const char *cache)
{
	unsigned long long active, total, size;
	char line[512], name[64], path[128], target[128];
	long long bytes = -1;
	ssize_t n;
	FILE *f;

	f = fopen("/proc/slabinfo", "r");
	TEST_ASSERT(f, "cannot open /proc/slabinfo (root and CONFIG_SLUB_DEBUG needed)");
	while (bytes < 0 && fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %llu %llu %llu", name, &active, &total,
			   &size) == 4 && !strcmp(name, cache))
			bytes = active * size;
	fclose(f);
	if (bytes >= 0) {
		snprintf(store_source, sizeof(store_source),
			 "/proc/slabinfo %s", cache);
		return bytes;
	}

	snprintf(path, sizeof(path), "%s/%s", SLAB_SYSFS, cache);
	n = readlink(path, target, sizeof(target) - 1);
	target[n > 0 ? n : 0] = '\0';
	snprintf(store_source, sizeof(store_source),
		 "%s (not in /proc/slabinfo: merged into %s, whose other users count too)",
		 path, n > 0 ? target : "?");
	return slab_sysfs(cache, "objects") *
	       slab_sysfs(cache, "object_size");
}

/*
 * One measurement of the store's memory: @contig_bytes with the whole GiB
 * private in one run, @frag_bytes fragmented; both less the cache before
 * the store was filled (rgmem: before the file; C: before the attributes
 * were set). Everything else is set up before that first reading.
 */
static void measure_store(double *contig_bytes, double *frag_bytes)
{
	struct gmem g;
	long long before;

	gmem_open(&g);
	if (!file_attrs)
		gmem_add_file(&g, true);
	settle();
	before = slab_bytes(store_cache);
	if (file_attrs)
		gmem_add_file(&g, false);
	else
		convert(&g, 0, GMEM_SIZE, true);
	settle();
	*contig_bytes = slab_bytes(store_cache) - before;
	fragment(&g, true);
	settle();
	*frag_bytes = slab_bytes(store_cache) - before;
	gmem_close(&g);
}

static void print_row(const struct row *r)
{
	int i;

	printf("bench\t%s\t%s\t%.*f\t%s\truns=", label, r->name, r->prec,
	       rgmem_median(r->v, r->runs), r->unit);
	for (i = 0; i < r->runs; i++)
		printf("%s%.*f", i ? "," : "", r->prec, r->v[i]);
	printf("\n");
}

static void bad_args(void)
{
	fprintf(stderr, "usage: gmem_conv_bench [-r RUNS] LABEL (RUNS 1..%d)\n",
		MAX_RUNS);
	exit(KSFT_FAIL);
}

static bool rgmem_absent(void)
{
	return !rgmem_is_dir(RGMEM_DEBUGFS) && !rgmem_is_dir(RGMEM_SYSFS);
}

int main(int argc, char *argv[])
{
	long long files0 = 0, conv0 = 0, files1, conv1;
	struct row *store_contig, *store_frag;
	int runs = 5, opt, attrs, c, i;
	struct gmem g;
	bool pop;

	while ((opt = getopt(argc, argv, "r:h")) != -1) {
		switch (opt) {
		case 'r':
			runs = atoi(optarg);
			break;
		default:
			bad_args();
		}
	}
	if (optind != argc - 1 || runs < 1 || runs > MAX_RUNS)
		bad_args();
	label = argv[optind];

	/*
	 * Not TEST_REQUIRE: a skip would leave the table silently empty.
	 * Who serves conversions is checked before any timing.
	 */
	TEST_ASSERT(kvm_check_cap(KVM_CAP_VM_TYPES) &
		    BIT(KVM_X86_SW_PROTECTED_VM),
		    "KVM_X86_SW_PROTECTED_VM is not supported");
	attrs = rgmem_vm_memory_attributes();
	file_attrs = !attrs;
	if (!strcmp(label, "rgmem")) {
		expect_name = "[rgmem]";
		TEST_ASSERT(rgmem_loaded(), "label rgmem: rgmem is not loaded");
		TEST_ASSERT(!attrs,
			    "label rgmem: needs kvm.vm_memory_attributes=0, not %d",
			    attrs);
		files0 = rgmem_read_counter("files_created");
		conv0 = rgmem_read_counter("conversions");
	} else if (!strcmp(label, "C")) {
		expect_name = "[kvm-gmem]";
		TEST_ASSERT(rgmem_absent(), "label C: rgmem is still loaded");
		TEST_ASSERT(attrs == 1,
			    "label C: needs kvm.vm_memory_attributes=1, not %d",
			    attrs);
	}
	store_cache = file_attrs ? "maple_node" : "radix_tree_node";

	gmem_open(&g);
	gmem_add_file(&g, true);
	/* KVM's per-VM attributes start shared: every row starts private. */
	if (!file_attrs)
		convert(&g, 0, GMEM_SIZE, true);
	for (i = 0; i < 2; i++) {
		pop = i;
		for (c = 0; c < ARRAY_SIZE(contig); c++)
			bench_contig(&g, c, pop, runs);
		bench_frag(&g, pop, runs);
	}
	gmem_close(&g);

	store_contig = new_row("bytes", 0);
	store_frag = new_row("bytes", 0);
	snprintf(store_contig->name, sizeof(store_contig->name),
		 "store_bytes_contig_1g");
	snprintf(store_frag->name, sizeof(store_frag->name),
		 "store_bytes_frag_1g");
	for (i = 0; i < STORE_RUNS; i++) {
		fprintf(stderr, "# gmem_conv_bench: store bytes: run %d of %d\n",
			i + 1, STORE_RUNS);
		measure_store(&store_contig->v[i], &store_frag->v[i]);
	}
	store_contig->runs = STORE_RUNS;
	store_frag->runs = STORE_RUNS;

	if (!strcmp(label, "rgmem")) {
		files1 = rgmem_read_counter("files_created");
		conv1 = rgmem_read_counter("conversions");
		TEST_ASSERT(files1 - files0 == nr_files,
			    "label rgmem: files_created went %lld -> %lld, expected +%lld",
			    files0, files1, nr_files);
		TEST_ASSERT(conv1 - conv0 == nr_conversions,
			    "label rgmem: conversions went %lld -> %lld, expected +%lld",
			    conv0, conv1, nr_conversions);
		printf("# gmem_conv_bench: served by rgmem: files_created %lld -> %lld, conversions %lld -> %lld\n",
		       files0, files1, conv0, conv1);
	} else if (!strcmp(label, "C")) {
		TEST_ASSERT(rgmem_absent(),
			    "label C: rgmem was loaded during the run");
		printf("# gmem_conv_bench: served by KVM's per-VM attributes and C guest_memfd, rgmem not loaded\n");
	} else {
		printf("# gmem_conv_bench: label %s: which guest_memfd served it is not checked\n",
		       label);
	}
	printf("# gmem_conv_bench: conversions by %s; store bytes from %s\n",
	       file_attrs ? "KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd" :
	       "KVM_SET_MEMORY_ATTRIBUTES on the VM", store_source);
	for (i = 0; i < nr_rows; i++)
		print_row(&rows[i]);
	return 0;
}
