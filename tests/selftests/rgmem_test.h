/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by rgmem's selftests: where the module shows itself.
 */
#ifndef RGMEM_TEST_H
#define RGMEM_TEST_H

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RGMEM_DEBUGFS "/sys/kernel/debug/rgmem"
#define RGMEM_SYSFS "/sys/module/rgmem"

static inline bool rgmem_is_dir(const char *path)
{
	struct stat st;

	return !stat(path, &st) && S_ISDIR(st.st_mode);
}

/* True once the module is loaded and its init has finished. */
static inline bool rgmem_loaded(void)
{
	return rgmem_is_dir(RGMEM_SYSFS) && rgmem_is_dir(RGMEM_DEBUGFS);
}

/* Loads the module at path @ko: 0, or -1 with errno set. */
static inline int rgmem_load(const char *ko)
{
	int fd = open(ko, O_RDONLY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -1;
	ret = syscall(SYS_finit_module, fd, "", 0);
	close(fd);
	return ret;
}

/* Unloads module @name without waiting: 0, or -1 with errno set. */
static inline int rgmem_unload(const char *name)
{
	return syscall(SYS_delete_module, name, O_NONBLOCK);
}

/* The number that file @path starts with, or -1 if it cannot be read. */
static inline long long rgmem_read_number(const char *path)
{
	long long v = -1;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	if (fscanf(f, "%lld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

/*
 * The value of counter @name in RGMEM_DEBUGFS, or -1 if it cannot be read.
 * Counters: files_created, files_live, folios_allocated, folios_freed,
 * folios_cached, bindings, binds, get_pfn, prepares, invalidations,
 * punch_holes, memory_failures, conversions, user_faults.
 */
static inline long long rgmem_counter(const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", RGMEM_DEBUGFS, name);
	return rgmem_read_number(path);
}

/*
 * In-place conversion; its uAPI comes with patches/0004. Counters it adds:
 * conversions (KVM_SET_MEMORY_ATTRIBUTES2 calls that changed at least one
 * page) and user_faults (faults of mmaps of the file that rgmem served, GUP
 * by KVM included).
 */
#include <errno.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#define RGMEM_VM_ATTRS_PARAM "/sys/module/kvm/parameters/vm_memory_attributes"

/*
 * kvm.vm_memory_attributes: 1 if KVM keeps the attributes per VM ("Y"),
 * 0 if the guest_memfd holds them ("N"), -1 if the kernel has no such
 * parameter.
 */
static inline int rgmem_vm_memory_attributes(void)
{
	FILE *f = fopen(RGMEM_VM_ATTRS_PARAM, "r");
	int c;

	if (!f)
		return -1;
	c = fgetc(f);
	fclose(f);
	if (c == 'Y' || c == 'y' || c == '1')
		return 1;
	if (c == 'N' || c == 'n' || c == '0')
		return 0;
	return -1;
}

/* KVM_SET_MEMORY_ATTRIBUTES2 on guest_memfd @fd: 0 or the errno. */
static inline int rgmem_set_attributes2(int fd,
					struct kvm_memory_attributes2 *attrs)
{
	return ioctl(fd, KVM_SET_MEMORY_ATTRIBUTES2, attrs) ? errno : 0;
}

/* Sets bytes [@offset, @offset + @size) of guest_memfd @fd to @attributes. */
static inline int rgmem_set_range_attributes(int fd, uint64_t offset,
					     uint64_t size, uint64_t attributes)
{
	struct kvm_memory_attributes2 a = {
		.offset = offset,
		.size = size,
		.attributes = attributes,
	};

	return rgmem_set_attributes2(fd, &a);
}

/*
 * Whether KVM's own guest_memfd is to serve the test's files
 * (RGMEM_SERVER=kvm, after rgmem is unloaded), not rgmem.
 */
static inline bool rgmem_kvm_serves(void)
{
	const char *s = getenv("RGMEM_SERVER");

	return s && !strcmp(s, "kvm");
}

#endif /* RGMEM_TEST_H */
