// SPDX-License-Identifier: GPL-2.0

//! Memory management: virtual memory areas, and the LRU batches of folios.
//!
//! C header: [`include/linux/mm.h`](srctree/include/linux/mm.h)

use crate::bindings;

pub mod virt;

/// Drains every CPU's batches of folios waiting to enter an LRU list, and so drops the references
/// those batches hold. Sleeps, and is slow: it waits for work on every CPU.
pub fn lru_add_drain_all() {
    // SAFETY: No preconditions; the caller may sleep.
    unsafe { bindings::lru_add_drain_all() };
}
