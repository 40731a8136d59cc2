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

/// Whether memory failure has poisoned any page since boot, less those unpoisoned. While none
/// has, no folio is poisoned, and a search for one can be skipped; the count moves once a
/// failure is handled, so one still being handled may be missed.
#[inline]
pub fn any_hwpoison() -> bool {
    #[cfg(CONFIG_MEMORY_FAILURE)]
    // SAFETY: The helper only reads an atomic counter.
    return unsafe { bindings::rgmem_num_poisoned_pages() } != 0;
    #[cfg(not(CONFIG_MEMORY_FAILURE))]
    return false;
}
