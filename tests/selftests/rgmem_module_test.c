// SPDX-License-Identifier: GPL-2.0
/*
 * The module's lifetime: it is loaded, shows its debugfs directory,
 * unloads without a trace and loads again. The runner loads rgmem.ko
 * before this test and passes its path in RGMEM_KO.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/klog.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kselftest_harness.h"
#include "rgmem_test.h"

#define SYSLOG_ACTION_READ_ALL 3

static int load(const char *ko)
{
	int fd = open(ko, O_RDONLY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return -1;
	ret = syscall(SYS_finit_module, fd, "", 0);
	close(fd);
	return ret;
}

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
	ASSERT_EQ(0, syscall(SYS_delete_module, "rgmem", O_NONBLOCK))
		TH_LOG("rmmod: %s", strerror(errno));
	ASSERT_FALSE(rgmem_is_dir(RGMEM_SYSFS));
	ASSERT_FALSE(rgmem_is_dir(RGMEM_DEBUGFS));
	unloaded = klog_last("unloaded");
	ASSERT_LE(0, unloaded) TH_LOG("no version line at unload");

	ASSERT_EQ(0, load(ko)) TH_LOG("insmod %s: %s", ko, strerror(errno));
	ASSERT_TRUE(rgmem_loaded());
	loaded = klog_last("loaded");
	ASSERT_LT(unloaded, loaded) TH_LOG("no version line at the new load");
}

TEST(second_load_is_refused)
{
	const char *ko = getenv("RGMEM_KO");

	if (!ko)
		SKIP(return, "RGMEM_KO is not set");
	ASSERT_EQ(-1, load(ko));
	ASSERT_EQ(EEXIST, errno);
	ASSERT_TRUE(rgmem_loaded());
}

TEST_HARNESS_MAIN
