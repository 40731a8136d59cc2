/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers for rgmem's programs built on the KVM selftest library.
 */
#ifndef RGMEM_KVM_H
#define RGMEM_KVM_H

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#include "rgmem_test.h"

/*
 * For programs that only make sense where guest_memfd holds the memory
 * attributes: fails unless rgmem is loaded and KVM offers the software-
 * protected VM type, and skips when kvm.vm_memory_attributes is 1.
 */
static inline void rgmem_require_gmem_attributes(void)
{
	int mode;

	TEST_ASSERT(rgmem_loaded(), "rgmem is not loaded (no %s)",
		    RGMEM_DEBUGFS);
	mode = rgmem_vm_memory_attributes();
	if (mode == 1)
		ksft_exit_skip("kvm.vm_memory_attributes=Y: the VM holds the memory attributes, not guest_memfd\n");
	TEST_ASSERT(mode == 0, "Cannot read %s", RGMEM_VM_ATTRS_PARAM);
	TEST_ASSERT(kvm_check_cap(KVM_CAP_VM_TYPES) &
		    BIT(KVM_X86_SW_PROTECTED_VM),
		    "KVM does not offer KVM_X86_SW_PROTECTED_VM");
}

/*
 * The host side of memslots whose guest side is a guest_memfd: @size bytes
 * of anonymous memory that no test touches, mapped once per program.
 */
static inline void *rgmem_host_mem(size_t size)
{
	static size_t len;
	static void *mem;

	if (!mem) {
		mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		TEST_ASSERT(mem != MAP_FAILED, "mmap: %s", strerror(errno));
		len = size;
	}
	TEST_ASSERT(size <= len, "%zu bytes of host memory asked after %zu", size,
		    len);
	return mem;
}

/*
 * Runs @vcpu to its next ucall, which must be @cmd, and returns it; a guest
 * assertion fails the program (or the test's child) with the guest's report.
 */
static inline struct ucall rgmem_run_to(struct kvm_vcpu *vcpu, uint64_t cmd)
{
	struct ucall uc;

	vcpu_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	if (get_ucall(vcpu, &uc) == UCALL_ABORT)
		REPORT_GUEST_ASSERT(uc);
	TEST_ASSERT(uc.cmd == cmd, "ucall %lu, expected %lu", uc.cmd, cmd);
	return uc;
}

/* rgmem's counter @name; the test fails if it cannot be read. */
static inline long long rgmem_read_counter(const char *name)
{
	long long v = rgmem_counter(name);

	TEST_ASSERT(v >= 0, "Cannot read %s/%s", RGMEM_DEBUGFS, name);
	return v;
}

/*
 * A guest_memfd of @size bytes with @flags (GUEST_MEMFD_FLAG_MMAP among
 * them) for @vm, which rgmem's files_created counter proves rgmem created,
 * mapped MAP_SHARED at *@mem.
 */
static inline int rgmem_create_mapped_gmem(struct kvm_vm *vm, uint64_t size,
					   uint64_t flags, uint8_t **mem)
{
	long long created = rgmem_read_counter("files_created");
	int fd = vm_create_guest_memfd(vm, size, flags);

	TEST_ASSERT(rgmem_read_counter("files_created") == created + 1,
		    "The guest_memfd is not rgmem's");
	*mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	TEST_ASSERT(*mem != MAP_FAILED, "mmap of the guest_memfd: %s",
		    strerror(errno));
	return fd;
}

/* Asserts that guest_memfd @fd is named @name: who served it. */
static inline void rgmem_check_name(int fd, const char *name,
				    const char *label)
{
	char link[64], target[256];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	TEST_ASSERT(n > 0, "readlink(%s)", link);
	target[n] = '\0';
	TEST_ASSERT(strstr(target, name),
		    "label %s: the guest_memfd is '%s', not %s", label, target,
		    name);
}

static inline int rgmem_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* The median of the @n values at @v, which it leaves as they are. */
static inline double rgmem_median(const double *v, int n)
{
	double *s = malloc(n * sizeof(*s));
	double m;

	TEST_ASSERT(s, "malloc");
	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), rgmem_cmp_double);
	m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	free(s);
	return m;
}

/*
 * A benchmark's line for one row and side:
 *   bench<TAB>LABEL<TAB>ROW<TAB>MEDIAN<TAB>UNIT<TAB>runs=V1,V2,...
 * GiB/s can be well under 1 under TCG: four decimals but for pages/s.
 */
static inline void rgmem_print_bench(const char *label, const char *row,
				     const char *unit, const double *v, int runs)
{
	int prec = strcmp(unit, "pages/s") ? 4 : 0, i;

	printf("bench\t%s\t%s\t%.*f\t%s\truns=", label, row, prec,
	       rgmem_median(v, runs), unit);
	for (i = 0; i < runs; i++)
		printf("%s%.*f", i ? "," : "", prec, v[i]);
	printf("\n");
}

/*
 * A row's ratios @a/@b over runs timed back to back, which drift of the
 * machine's speed leaves alone:
 *   TAG<TAB>ROW<TAB>GEOMEAN<TAB>LOW<TAB>HIGH<TAB>runs=R1,R2,...
 * The second run of a pair tends to be the faster, so pairs alternate
 * which side goes first and the estimate is the geometric mean of as
 * many pairs of each order, which cancels that; LOW and HIGH bound it at
 * about 95 % (two standard errors of the mean of the logarithms).
 */
static inline void rgmem_print_pairs(const char *tag, const char *row,
				     const double *a, const double *b, int runs)
{
	double sum = 0, sq = 0, mean, se, r;
	int n = runs & ~1, i;

	for (i = 0; i < n; i++) {
		r = log(a[i] / b[i]);
		sum += r;
		sq += r * r;
	}
	mean = sum / n;
	se = sqrt((sq / n - mean * mean) / (n - 1));
	printf("%s\t%s\t%.3f\t%.3f\t%.3f\truns=", tag, row, exp(mean),
	       exp(mean - 2 * se), exp(mean + 2 * se));
	for (i = 0; i < runs; i++)
		printf("%s%.3f", i ? "," : "", a[i] / b[i]);
	printf("\n");
}

#endif /* RGMEM_KVM_H */
