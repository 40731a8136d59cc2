// SPDX-License-Identifier: GPL-2.0

#include <linux/fs.h>
#include <linux/sched.h>

struct file *rust_helper_get_file(struct file *file)
{
	return get_file(file);
}

void rust_helper_cond_resched(void)
{
	cond_resched();
}

bool rust_helper_current_signal_pending(void)
{
	return signal_pending(current);
}
