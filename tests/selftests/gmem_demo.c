// SPDX-License-Identifier: GPL-2.0
/*
 * make run's demo: create a software-protected VM and a guest_memfd, and
 * say what served it. The C guest_memfd names its inode "[kvm-gmem]";
 * rgmem shows its counters under /sys/kernel/debug/rgmem.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "rgmem_test.h"

#define GMEM_SIZE (2UL << 20)

static void die(const char *what)
{
	fprintf(stderr, "gmem_demo: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void show_counters(void)
{
	struct dirent *d;
	DIR *dir = opendir(RGMEM_DEBUGFS);

	if (!dir) {
		printf("  rgmem: not loaded\n");
		return;
	}
	printf("  rgmem: loaded, %s:\n", RGMEM_DEBUGFS);
	while ((d = readdir(dir))) {
		char path[512], val[64] = "";
		FILE *f;

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", RGMEM_DEBUGFS, d->d_name);
		f = fopen(path, "r");
		if (f && fgets(val, sizeof(val), f))
			val[strcspn(val, "\n")] = '\0';
		if (f)
			fclose(f);
		printf("    %-24s %s\n", d->d_name, val);
	}
	closedir(dir);
}

int main(void)
{
	struct kvm_create_guest_memfd gmem = { .size = GMEM_SIZE };
	char link[64], name[256];
	struct stat st;
	int kvm, vm, fd, types;
	ssize_t n;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("open /dev/kvm");
	types = ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_VM_TYPES);
	if (!(types & (1 << KVM_X86_SW_PROTECTED_VM))) {
		errno = EOPNOTSUPP;
		die("KVM_X86_SW_PROTECTED_VM");
	}
	vm = ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
	if (vm < 0)
		die("KVM_CREATE_VM(KVM_X86_SW_PROTECTED_VM)");
	if (ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD) != 1)
		die("KVM_CAP_GUEST_MEMFD");
	fd = ioctl(vm, KVM_CREATE_GUEST_MEMFD, &gmem);
	if (fd < 0)
		die("KVM_CREATE_GUEST_MEMFD");
	if (fstat(fd, &st))
		die("fstat");
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, name, sizeof(name) - 1);
	if (n < 0)
		die("readlink");
	name[n] = '\0';

	printf("gmem_demo: SW_PROTECTED VM fd %d, guest_memfd fd %d\n", vm, fd);
	printf("  file: %s, size %lld bytes\n", name, (long long)st.st_size);
	if (strstr(name, "rgmem"))
		printf("  served by: rgmem\n");
	else if (strstr(name, "kvm-gmem"))
		printf("  served by: the in-kernel C guest_memfd\n");
	else
		printf("  served by: unknown\n");
	show_counters();
	if (st.st_size != (off_t)GMEM_SIZE) {
		fprintf(stderr, "gmem_demo: size %lld, expected %lu\n",
			(long long)st.st_size, GMEM_SIZE);
		return 1;
	}
	return 0;
}
