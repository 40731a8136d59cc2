// SPDX-License-Identifier: GPL-2.0

//! User memory accessed while a lock that the page-fault path may take is held.
//!
//! C header: [`include/linux/uaccess.h`](srctree/include/linux/uaccess.h)

use crate::{bindings, uaccess::UserPtr};
use core::marker::PhantomData;

/// Page faults disabled for the current task: a user access that would fault fails with `EFAULT`
/// instead of taking the fault.
///
/// Hold it around user accesses made under a lock that the fault path of the memory accessed
/// may also take; on `EFAULT`, drop the lock, [`fault_in_readable`], and retry.
///
/// # Invariants
///
/// The current task's page faults are disabled (`pagefault_disable()`) until this is dropped, on
/// the same task.
#[must_use = "page faults are enabled again when this is dropped"]
pub struct PagefaultsDisabled(PhantomData<*mut ()>);

impl PagefaultsDisabled {
    /// Disables page faults for the current task.
    pub fn new() -> Self {
        // SAFETY: No preconditions; `Drop` balances it on this task (the type is `!Send`).
        unsafe { bindings::rgmem_pagefault_disable() };
        // INVARIANT: Just disabled.
        Self(PhantomData)
    }
}

impl Default for PagefaultsDisabled {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for PagefaultsDisabled {
    fn drop(&mut self) {
        // SAFETY: Disabled by `new` on this task, by the type invariant.
        unsafe { bindings::rgmem_pagefault_enable() };
    }
}

/// Faults in `len` bytes of user memory at `addr` for reading; returns whether all of it is
/// readable now. Takes `mmap_lock` and may sleep: call it without the locks it would invert.
pub fn fault_in_readable(addr: UserPtr, len: usize) -> bool {
    // SAFETY: `fault_in_readable` checks the range itself and only reads user memory.
    unsafe { bindings::fault_in_readable(addr as *const _, len) == 0 }
}
