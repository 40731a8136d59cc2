// SPDX-License-Identifier: GPL-2.0

//! The hugetlb pool: huge pages set aside at boot, reserved for one owner, and folios taken from
//! that reservation.
//!
//! A [`Reservation`] is a hugetlb subpool whose minimum is its maximum, as a hugetlbfs mount with
//! `min_size`: creating it reserves every page in the global pool or fails, so allocating from it
//! later cannot find the pool empty. Each folio taken holds one page of the subpool, and
//! `free_huge_folio()` gives it back when the folio's last reference goes, even after the
//! reservation is dropped: the subpool lives until both are gone.
//!
//! C header: [`include/linux/hugetlb.h`](srctree/include/linux/hugetlb.h)

use crate::{
    bindings,
    error::{code::*, Result},
    rgmem::fs::filemap::NewFolio,
};
use core::ptr::NonNull;

mod park;
mod poison;
mod split;
pub use park::Parked;
pub use poison::Poisoned;
pub use split::PreparedSplit;

/// The base page shift.
const PAGE_SHIFT: u32 = bindings::PAGE_SHIFT;

/// A huge page size the kernel keeps a pool for.
///
/// # Invariants
///
/// `.0` points to an entry of `hstates[]`, which is never freed.
#[derive(Clone, Copy)]
pub struct Hstate(NonNull<bindings::hstate>);

// SAFETY: An hstate lives forever, and this type only reads what `hugetlb_lock` or `READ_ONCE`
// makes safe to read from any thread.
unsafe impl Send for Hstate {}
// SAFETY: As above.
unsafe impl Sync for Hstate {}

impl Hstate {
    /// The pool of pages of `1 << order` base pages, if the kernel has one.
    pub fn of_order(order: u32) -> Option<Self> {
        if order == 0 || order >= usize::BITS - PAGE_SHIFT {
            return None;
        }
        // SAFETY: No preconditions; the result is null or an entry of `hstates[]`.
        let h = unsafe { bindings::rgmem_size_to_hstate(1 << (order + PAGE_SHIFT)) };
        // INVARIANT: `size_to_hstate` returns an entry of `hstates[]`.
        NonNull::new(h).map(Self)
    }

    /// The order of its pages, in base pages.
    pub fn order(&self) -> u32 {
        // SAFETY: The hstate is valid; `order` is set before any hstate is visible.
        unsafe { (*self.0.as_ptr()).order }
    }

    /// How many huge pages the pool holds, free or not; it changes as the administrator resizes
    /// the pool.
    pub fn nr_pages(&self) -> u64 {
        // SAFETY: The hstate is valid; the helper reads the count with `READ_ONCE`.
        unsafe { bindings::rgmem_hstate_nr_huge_pages(self.0.as_ptr()) as u64 }
    }
}

/// `pages` huge pages of one size, reserved in the pool for one owner, and the folios taken from
/// them.
///
/// # Invariants
///
/// `spool` is a subpool made by `hugepage_new_subpool(hstate, pages, pages)` on which this value
/// owns the one handle. If `splits`, every folio taken from it has its full vmemmap.
pub struct Reservation {
    spool: NonNull<bindings::hugepage_subpool>,
    hstate: Hstate,
    splits: bool,
}

// SAFETY: The subpool has its own lock; every call on it takes it.
unsafe impl Send for Reservation {}
// SAFETY: As above.
unsafe impl Sync for Reservation {}

impl Reservation {
    /// Reserves `pages` pages of `hstate`'s pool; `ENOMEM` if the pool has not that many that
    /// nothing else has reserved. If the owner `splits` folios, each is given the struct pages
    /// that an optimized vmemmap (HVO) shares as it is taken, since a split rewrites them.
    pub fn new(hstate: Hstate, pages: u64, splits: bool) -> Result<Self> {
        let n = crate::ffi::c_long::try_from(pages).map_err(|_| ENOMEM)?;
        if n == 0 {
            return Err(EINVAL);
        }
        // SAFETY: The hstate is valid.
        let spool = unsafe { bindings::rgmem_hugepage_new_subpool(hstate.0.as_ptr(), n, n) };
        // INVARIANT: Made with `max == min == pages`; we own its one handle.
        Ok(Self {
            spool: NonNull::new(spool).ok_or(ENOMEM)?,
            hstate,
            splits,
        })
    }

    /// The pool the pages come from.
    pub fn hstate(&self) -> Hstate {
        self.hstate
    }

    /// Takes a page of the reservation as a new folio whose contents are undefined: the pool
    /// does not clear pages. `ENOMEM` once every page is taken, or if the pool, which counts its
    /// reserved pages globally, has none left on a node this task may use.
    pub fn alloc_folio(&self) -> Result<NewFolio> {
        let (spool, h) = (self.spool.as_ptr(), self.hstate.0.as_ptr());
        // SAFETY: The subpool is live and ours (type invariant).
        let global = unsafe { bindings::rgmem_hugepage_subpool_get_pages(spool, 1) };
        if global != 0 {
            // Past the reservation (negative), or outside it (positive, only if the minimum
            // were below the maximum): nothing global was taken for this page.
            if global > 0 {
                // SAFETY: The page was just counted in the subpool.
                unsafe { bindings::rgmem_hugepage_subpool_put_pages(spool, 1) };
            }
            return Err(ENOMEM);
        }
        // As memfd's hugetlb folios: pinned for long, so never from a movable zone.
        // SAFETY: The hstate is valid.
        let gfp =
            unsafe { bindings::rgmem_htlb_alloc_mask(h) } & !(1 << bindings::___GFP_MOVABLE_BIT);
        // SAFETY: The subpool took one of its pages, which are reserved globally, so
        // `resv_huge_pages` is non-zero as the function requires.
        let folio = unsafe {
            bindings::rgmem_alloc_hugetlb_folio_reserve(h, bindings::rgmem_numa_node_id(), gfp)
        };
        let Some(folio) = NonNull::new(folio) else {
            // SAFETY: The page was counted just above; the global reservation stays with the
            // subpool, as `alloc_hugetlb_folio_reserve` did not consume it.
            unsafe { bindings::rgmem_hugepage_subpool_put_pages(spool, 1) };
            return Err(ENOMEM);
        };
        // SAFETY: The folio was just dequeued: ours alone, with one reference. Its subpool makes
        // `free_huge_folio()` return the page to the reservation.
        unsafe { bindings::rgmem_hugetlb_set_folio_subpool(folio.as_ptr(), spool) };
        if self.splits && !restore_vmemmap(folio) {
            // SAFETY: Our one reference; the page goes back to the reservation.
            unsafe { bindings::folio_put(folio.as_ptr()) };
            return Err(ENOMEM);
        }
        // SAFETY: Unlocked, in no mapping, hugetlb, and its one reference is ours.
        let mut new = unsafe { NewFolio::from_raw(folio, true) };
        // The pool keeps flags across free and reuse.
        new.clear_uptodate();
        Ok(new)
    }
}

/// Gives `folio` its full vmemmap back if HVO optimized it; false if that failed (no memory),
/// and the folio is as it was.
fn restore_vmemmap(folio: NonNull<bindings::folio>) -> bool {
    let f = folio.as_ptr();
    // Frozen, as the restore requires; only a walker of physical pages, for an instant, may hold
    // a reference besides ours.
    // SAFETY: A hugetlb folio of which we hold a reference, in no page cache.
    while !unsafe { bindings::rgmem_folio_ref_freeze(f, 1) } {
        crate::rgmem::sched::cond_resched();
    }
    // SAFETY: Frozen by us, hugetlb, in use and in no page cache.
    let r = unsafe { bindings::rgmem_hugetlb_restore_frozen_vmemmap(f) };
    // SAFETY: Frozen above.
    unsafe { bindings::rgmem_folio_ref_unfreeze(f, 1) };
    r == 0
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // The pages no folio holds go back to the pool now; the others as their folios are freed.
        // SAFETY: We own the handle (type invariant), which is not used again.
        unsafe { bindings::rgmem_hugepage_put_subpool(self.spool.as_ptr()) };
    }
}
