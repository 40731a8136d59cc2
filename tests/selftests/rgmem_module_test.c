// SPDX-License-Identifier: GPL-2.0
/*
 * The module's lifetime: it is loaded, shows its debugfs directory,
 * unloads without a trace and loads again. The runner loads rgmem.ko
 * before this test and passes its path in RGMEM_KO, and that of the test
 * module rgmem_second.ko (tests/modules/, a provider that serves nothing)
 * in RGMEM_SECOND_KO.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "kselftest_harness.h"
#include "rgmem_test.h"

#define SYSLOG_ACTION_READ_ALL 3

/*
 * Offset in the kernel log of the last "rgmem: version <v> <what>" line,
 * or -1.
 */
static long klog_last(const char *what)
{
	static char buf[1 << 20];
	int len = klogctl(SYSLOG_ACTION_READ_ALL, buf, sizeof(buf) - 1);
	size_t wlen = strlen(what);
	char *line, *end, *last = NULL;

	if (len < 0)
		return -1;
	buf[len] = '\0';
	for (line = buf; *line; line = end + 1) {
		size_t llen;

		end = strchrnul(line, '\n');
		llen = end - line;
		if (memmem(line, llen, "rgmem: version ", 15) && llen > wlen &&
		    !memcmp(end - wlen, what, wlen) && end[-wlen - 1] == ' ')
			last = line;
		if (!*end)
			break;
	}
	return last ? last - buf : -1;
}

TEST(loaded)
{
	ASSERT_TRUE(rgmem_is_dir(RGMEM_SYSFS));
	ASSERT_TRUE(rgmem_is_dir(RGMEM_DEBUGFS));
	ASSERT_LE(0, klog_last("loaded")) TH_LOG("no version line at load");
}

TEST(unload_and_reload)
{
	const char *ko = getenv("RGMEM_KO");
	long unloaded, loaded;

	if (!ko)
		SKIP(return, "RGMEM_KO is not set");
	ASSERT_EQ(0, rgmem_unload("rgmem"))
		TH_LOG("rmmod: %s", strerror(errno));
	ASSERT_FALSE(rgmem_is_dir(RGMEM_SYSFS));
	ASSERT_FALSE(rgmem_is_dir(RGMEM_DEBUGFS));
	unloaded = klog_last("unloaded");
	ASSERT_LE(0, unloaded) TH_LOG("no version line at unload");

	ASSERT_EQ(0, rgmem_load(ko)) TH_LOG("insmod %s: %s", ko, strerror(errno));
	ASSERT_TRUE(rgmem_loaded());
	loaded = klog_last("loaded");
	ASSERT_LT(unloaded, loaded) TH_LOG("no version line at the new load");
}

/*
 * An open debugfs file pins the module: rmmod is refused until it is
 * closed. Unloading under it would leave its release to read the freed
 * module's file operations.
 */
TEST(open_debugfs_file_pins_module)
{
	static const char *const names[] = {
		"shareability", "folios_cached", "folios_freed",
	};
	char path[256];
	unsigned int i;
	int fd;

	for (i = 0; i < ARRAY_SIZE(names); i++) {
		snprintf(path, sizeof(path), "%s/%s", RGMEM_DEBUGFS, names[i]);
		fd = open(path, O_RDONLY);
		ASSERT_LE(0, fd) TH_LOG("open %s: %s", path, strerror(errno));
		ASSERT_EQ(-1, rgmem_unload("rgmem"))
			TH_LOG("rmmod succeeded with %s open", path);
		ASSERT_TRUE(rgmem_loaded());
		ASSERT_EQ(0, close(fd));
	}
	ASSERT_TRUE(rgmem_loaded());
}

TEST(second_load_is_refused)
{
	const char *ko = getenv("RGMEM_KO");

	if (!ko)
		SKIP(return, "RGMEM_KO is not set");
	ASSERT_EQ(-1, rgmem_load(ko));
	ASSERT_EQ(EEXIST, errno);
	ASSERT_TRUE(rgmem_loaded());
}

/* errno of KVM_CREATE_GUEST_MEMFD on a new VM, or 0 if it succeeded. */
static int create_gmem_errno(void)
{
	struct kvm_create_guest_memfd args = { .size = 1 << 21 };
	int kvm, vm, fd, err = 0;

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return errno;
	vm = ioctl(kvm, KVM_CREATE_VM, KVM_X86_SW_PROTECTED_VM);
	if (vm < 0) {
		err = errno;
		close(kvm);
		return err;
	}
	fd = ioctl(vm, KVM_CREATE_GUEST_MEMFD, &args);
	if (fd < 0)
		err = errno;
	else
		close(fd);
	close(vm);
	close(kvm);
	return err;
}

/*
 * KVM takes one provider at a time: a second gets EBUSY, whichever loads
 * first. While rgmem_second is the provider, guest_memfd creation reaches
 * it (ENODEV, its only answer), not rgmem nor KVM's own.
 */
TEST(second_provider_is_refused)
{
	const char *ko = getenv("RGMEM_KO");
	const char *second = getenv("RGMEM_SECOND_KO");

	if (!ko || !second)
		SKIP(return, "RGMEM_KO or RGMEM_SECOND_KO is not set");
	ASSERT_EQ(0, create_gmem_errno());

	ASSERT_EQ(-1, rgmem_load(second)) TH_LOG("rgmem_second loaded beside rgmem");
	ASSERT_EQ(EBUSY, errno);
	ASSERT_TRUE(rgmem_loaded());

	ASSERT_EQ(0, rgmem_unload("rgmem"))
		TH_LOG("rmmod rgmem: %s", strerror(errno));
	ASSERT_EQ(0, rgmem_load(second))
		TH_LOG("insmod %s: %s", second, strerror(errno));
	ASSERT_EQ(ENODEV, create_gmem_errno());
	ASSERT_EQ(-1, rgmem_load(ko)) TH_LOG("rgmem loaded beside rgmem_second");
	ASSERT_EQ(EBUSY, errno);
	ASSERT_FALSE(rgmem_is_dir(RGMEM_SYSFS));

	ASSERT_EQ(0, rgmem_unload("rgmem_second"))
		TH_LOG("rmmod rgmem_second: %s", strerror(errno));
	ASSERT_EQ(0, rgmem_load(ko)) TH_LOG("insmod %s: %s", ko, strerror(errno));
	ASSERT_TRUE(rgmem_loaded());
	ASSERT_EQ(0, create_gmem_errno());
}

TEST_HARNESS_MAIN
