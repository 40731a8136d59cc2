// SPDX-License-Identifier: GPL-2.0

//! Cooperative scheduling for long loops in process context.
//!
//! C header: [`include/linux/sched.h`](srctree/include/linux/sched.h)

use crate::bindings;

/// Yields the CPU if a reschedule is due; may sleep.
pub fn cond_resched() {
    // SAFETY: Callers are in process context, where sleeping is allowed.
    unsafe { bindings::cond_resched() }
}

/// Returns whether the current task has a signal pending, so a long operation should stop.
pub fn signal_pending() -> bool {
    // SAFETY: No preconditions.
    unsafe { bindings::current_signal_pending() }
}
