// SPDX-License-Identifier: GPL-2.0

//! Whole hugetlb folios that memory failure poisoned while a page cache held them.
//!
//! Memory failure keeps a reference on such a folio for good, so it would keep the huge page,
//! and with it its file's subpool and reservation, once the file lets go. Its owner takes that
//! reference over, and gives it back through [`Poisoned::retire`], or by dropping it, which frees
//! the folio and finishes as memory failure does for a free one. Or the owner splits the folio
//! to isolate its bad pages ([`Reservation::prepare_isolation`](super::Reservation)), and the
//! reference goes with the freeze; re-formed from its pieces to let it go, the folio is poisoned
//! again and held the same way.

use crate::{bindings, rgmem::folio::Folio};
use core::ptr::NonNull;

/// A whole hugetlb folio that memory failure poisoned while cached, with the reference memory
/// failure keeps on it.
///
/// Dropping one retires the folio if no page cache holds it, else leaves it held for good.
///
/// # Invariants
///
/// `folio` is a hugetlb folio on which memory failure holds a reference it never drops itself,
/// or one that its owner re-formed poisoned and holds a reference on; this value owns that
/// reference, and no other value claims it. Only debugfs's `unpoison-pfn` drops it, after
/// clearing the folio's poison flag.
pub struct Poisoned {
    folio: NonNull<bindings::folio>,
}

// SAFETY: The folio is named by its address and owned through a reference, which any task may
// drop.
unsafe impl Send for Poisoned {}

impl Poisoned {
    /// # Safety
    ///
    /// `folio` is a hugetlb folio that memory failure is handling, holding a reference it keeps
    /// for good, and nothing else claims that reference.
    pub(crate) unsafe fn from_memory_failure(folio: &Folio) -> Self {
        // INVARIANT: By the caller's guarantee.
        Self {
            folio: NonNull::from(folio).cast(),
        }
    }

    /// # Safety
    ///
    /// `folio` is a hugetlb folio, re-formed from pieces and poisoned again by its owner, who
    /// gives the reference it holds on it to the result.
    pub(super) unsafe fn from_reformed(folio: NonNull<bindings::folio>) -> Self {
        // INVARIANT: By the caller's guarantee.
        Self { folio }
    }

    /// The folio, valid while `self` is.
    pub(super) fn as_ptr(&self) -> *mut bindings::folio {
        self.folio.as_ptr()
    }

    /// Ends `self` without giving its reference back: the caller froze the folio with that
    /// reference counted, and the freeze took it.
    pub(super) fn consume_frozen(self) {
        core::mem::forget(self);
    }

    /// The first file page of the folio; it does not change while the file caches it.
    pub fn index(&self) -> u64 {
        // SAFETY: The folio is valid: the reference this value owns keeps it.
        unsafe { Folio::from_raw(self.folio.as_ptr()) }.index() as u64
    }

    /// The number of base pages of the folio.
    pub fn nr_pages(&self) -> u64 {
        // SAFETY: As in `index`.
        unsafe { Folio::from_raw(self.folio.as_ptr()) }.nr_pages() as u64
    }
}

impl Poisoned {
    /// Gives memory failure's reference back, once no page cache holds the folio: the folio is
    /// freed and dissolved, its healthy pages go back to the page allocator, and its poisoned
    /// ones stay out of use. Returns whether it was dissolved: that needs a free page of its size
    /// that no one has reserved, or it stays in its pool, a free page never handed out. `Err`
    /// with `self` while a page cache still holds it.
    pub fn retire(self) -> Result<bool, Self> {
        if !self.is_out_of_cache() {
            return Err(self);
        }
        let folio = self.folio.as_ptr();
        core::mem::forget(self);
        // SAFETY: The folio is valid, held by the reference `self` owned.
        if !unsafe { Folio::from_raw(folio) }.test_hwpoison() {
            // Unpoisoned: the reference is gone already.
            return Ok(false);
        }
        // SAFETY: The folio is a hugetlb folio out of every page cache, and `self` owned memory
        // failure's reference on it, which this gives up.
        Ok(unsafe { bindings::rgmem_hugetlb_retire_poisoned_folio(folio) } == 0)
    }

    fn is_out_of_cache(&self) -> bool {
        let folio = self.folio.as_ptr();
        // SAFETY: The folio is valid, held by `self`; truncation clears `mapping`, read as C's
        // lockless readers do, and nothing caches a poisoned hugetlb folio again.
        let mapping = unsafe {
            core::ptr::read_volatile(&raw const (*folio).__bindgen_anon_1.__bindgen_anon_1.mapping)
        };
        mapping.is_null()
    }
}

impl Drop for Poisoned {
    /// Retires the folio if it is out of the page cache, as when its file's cache was emptied;
    /// else keeps it held for good. Dropped after its file's [`Reservation`](super::Reservation), it can then be
    /// dissolved whatever the pool had reserved.
    fn drop(&mut self) {
        if !self.is_out_of_cache() {
            return;
        }
        let folio = self.folio.as_ptr();
        // SAFETY: As in `retire`.
        if unsafe { Folio::from_raw(folio) }.test_hwpoison() {
            // SAFETY: As in `retire`; `self` is going away.
            unsafe { bindings::rgmem_hugetlb_retire_poisoned_folio(folio) };
        }
    }
}
