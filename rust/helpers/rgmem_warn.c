// SPDX-License-Identifier: GPL-2.0

#include <linux/bug.h>

/* WARN() is a macro; Rust passes its own location for the report. */
void rust_helper_warn_at(const char *file, int line)
{
	WARN(1, "Rust warning at %s:%d\n", file, line);
}
