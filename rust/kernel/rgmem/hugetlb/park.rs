// SPDX-License-Identifier: GPL-2.0

//! Parked blocks: a split block whose file is released while someone outside holds one of its
//! pieces (a pipe, a pinned DMA buffer). It cannot merge then, so its pieces leave the page cache
//! as they are, each keeping its pin, which stops the last outside reference from freeing it to
//! the page allocator instead of the pool. Once no one else holds any piece, they merge back into
//! the hugetlb folio, and its last reference returns it to its pool.

use super::{
    split::{flags, is_piece, order_of, XaLock, MID_ORDER, PIECE},
    Reservation,
};
use crate::{
    bindings,
    rgmem::fs::filemap::{InvalidateGuard, InvalidateHeld},
    rgmem::mm,
};
use core::sync::atomic::Ordering;

/// A split block out of its page cache, waiting for the outside references to its pieces to go.
///
/// Dropping one leaves its pieces pinned for good.
///
/// # Invariants
///
/// `pfn` is the first frame of a block of `1 << order` pages, one hugetlb folio split into
/// pieces, each holding one pin that this value owns; the first page keeps the folio's subpool.
/// No page cache holds the pieces, and nothing but this value reshapes them.
pub struct Parked {
    pfn: u64,
    order: u32,
}

// SAFETY: The block is named by its frames, and its pins are no task's.
unsafe impl Send for Parked {}

/// Calls `f` on each piece of the block of `1 << order` pages from frame `pfn`, which must be
/// whole pieces that do not change shape meanwhile, until it returns false; returns whether it
/// never did.
fn each_piece(pfn: u64, order: u32, mut f: impl FnMut(*mut bindings::folio, u32) -> bool) -> bool {
    let mut at = 0u64;
    while at < 1 << order {
        // SAFETY: Every frame of a huge page exists.
        let p = unsafe { bindings::rgmem_pfn_folio((pfn + at) as usize) };
        // SAFETY: Per the function's contract, `p` heads a piece of stable shape.
        let o = unsafe { order_of(p) };
        if !f(p, o) {
            return false;
        }
        at += 1 << o;
    }
    true
}

impl Reservation {
    /// Parks the block of this reservation's folio size cached in pieces from page `first` of
    /// the page cache `guard` locks: takes over its pieces' pins, and truncates them from the
    /// cache. `None`, and nothing changes, unless the cache holds one of this reservation's
    /// folios split there.
    pub fn park(&self, guard: &InvalidateGuard<'_>, first: u64) -> Option<Parked> {
        let mapping = guard.mapping();
        let order = self.hstate.order();
        let pfn = {
            let xa = XaLock::new(mapping);
            let (_, pfn) = self.block_locked(&xa, first, order)?;
            let mut at = first;
            let whole = each_piece(pfn, order, |p, o| {
                let cached = xa.load(at).0 == p.cast();
                at += 1 << o;
                // SAFETY: `p` is cached (checked first) under the lock, so live.
                cached && unsafe { is_piece(p) }
            });
            if !whole {
                return None;
            }
            // The truncation takes off the page cache's statistics what it would have added for
            // folios that are not hugetlb, as pieces are not; their folio never was counted.
            each_piece(pfn, order, |p, o| {
                // SAFETY: A cached piece, under the lock.
                unsafe {
                    bindings::rgmem_lruvec_stat_mod_folio(
                        p,
                        bindings::node_stat_item_NR_FILE_PAGES,
                        1 << o,
                    );
                    if o >= MID_ORDER {
                        bindings::rgmem_lruvec_stat_mod_folio(
                            p,
                            bindings::node_stat_item_NR_FILE_THPS,
                            1 << o,
                        );
                    }
                }
                true
            });
            pfn
        };
        let bytes = first << bindings::PAGE_SHIFT;
        mapping.truncate_range_locked(guard, bytes, bytes + (1 << (order + bindings::PAGE_SHIFT)));
        // INVARIANT: The cache let go of the pieces, whose pins are now ours; only their owner
        // reshapes pieces.
        Some(Parked { pfn, order })
    }
}

impl Parked {
    /// Merges the block and frees it to its pool, if no one else holds any piece of it; gives it
    /// back otherwise.
    pub fn try_free(self) -> Result<(), Self> {
        let (pfn, order) = (self.pfn, self.order);
        // Frozen at the pin alone: no one else holds the piece, nor can take it.
        let mut frozen = 0u64;
        let all = each_piece(pfn, order, |p, o| {
            // SAFETY: A piece of ours (type invariant).
            let ok = unsafe { bindings::rgmem_folio_ref_freeze(p, 1) };
            frozen += u64::from(ok) << o;
            ok
        });
        if !all {
            let mut at = 0;
            each_piece(pfn, order, |p, o| {
                if at >= frozen {
                    return false;
                }
                // SAFETY: Frozen just above, by us.
                unsafe { bindings::rgmem_folio_ref_unfreeze(p, 1) };
                at += 1 << o;
                true
            });
            return Err(self);
        }
        // SAFETY: Frame `pfn` heads the block's first piece.
        let head = unsafe { bindings::rgmem_pfn_folio(pfn as usize) };
        // SAFETY: Every page of the block is in a frozen piece of this folio, in no cache, and
        // the first page keeps its subpool (type invariant).
        unsafe { bindings::rgmem_hugetlb_merge_frozen_folio(head, order) };
        // SAFETY: `head` heads the merged folio, which is frozen.
        unsafe { flags(head) }.fetch_and(!PIECE, Ordering::Relaxed);
        // SAFETY: Frozen by us above, with our one reference to come back.
        unsafe { bindings::rgmem_folio_ref_unfreeze(head, 1) };
        if mm::any_hwpoison() && has_hwpoison(head, order) {
            // SAFETY: A hugetlb folio just re-formed from pieces, with our one reference.
            unsafe { bindings::rgmem_hugetlb_folio_relist_hwpoison(head) };
            // SAFETY: Out of every page cache, poisoned; the reference is ours to give.
            unsafe { bindings::rgmem_hugetlb_retire_poisoned_folio(head) };
            return Ok(());
        }
        // SAFETY: That reference, ours; putting it frees the page to the pool.
        unsafe { bindings::folio_put(head) };
        Ok(())
    }
}

/// Whether memory failure flagged any page of `folio`, of `order`, which is ours.
fn has_hwpoison(folio: *mut bindings::folio, order: u32) -> bool {
    // SAFETY: Each `i` is the number of a page of the folio, which we hold.
    (0..1usize << order).any(|i| unsafe { bindings::rgmem_page_hwpoison(folio, i) })
}
