/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by rgmem's selftests: where the module shows itself.
 */
#ifndef RGMEM_TEST_H
#define RGMEM_TEST_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
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

/*
 * The value of counter @name in RGMEM_DEBUGFS, or -1 if it cannot be read.
 * Counters: files_created, files_live, folios_allocated, folios_freed,
 * bindings, binds, get_pfn, prepares, invalidations, punch_holes,
 * memory_failures.
 */
static inline long long rgmem_counter(const char *name)
{
	char path[256];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", RGMEM_DEBUGFS, name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%lld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

#endif /* RGMEM_TEST_H */
