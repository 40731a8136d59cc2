/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by rgmem's selftests: where the module shows itself.
 */
#ifndef RGMEM_TEST_H
#define RGMEM_TEST_H

#include <stdbool.h>
#include <sys/stat.h>

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

#endif /* RGMEM_TEST_H */
