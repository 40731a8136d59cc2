// SPDX-License-Identifier: GPL-2.0

//! Splitting a hugetlb file's blocks when pages of them become shared, and merging them back
//! when they are private again: the kernel side of [`split_math`], which decides the shapes.
//!
//! The invariant this keeps: a block holding a shared page is cached, in pieces, with every
//! shared page in a base page the host may map. So a conversion to shared caches the blocks it
//! touches before splitting them, and hole punching leaves such a block cached and zeroes it
//! instead of freeing it. Pieces are always up to date: a folio is zeroed before it splits.
//!
//! The invalidate lock, held exclusively, keeps the page cache still while a conversion plans,
//! prepares and commits; see `convert.rs`.

use crate::{
    counters,
    park::{self, Parking},
    range::{PageRange, PAGE_SHIFT},
    split_math::{Shape, Step, MID_ORDER},
};
use core::ops::ControlFlow;
use kernel::{
    prelude::*,
    rgmem::folio::Folio,
    rgmem::fs::filemap::{InvalidateGuard, InvalidateHeld, Mapping},
    rgmem::hugetlb::{Poisoned, PreparedSplit, Reservation},
    rgmem::kvm::gmem,
    rgmem::sched,
};

/// How often a split or a merge is tried before giving up on it: a freeze fails while anyone
/// holds a transient reference (a lookup, a walker of physical memory).
const TRIES: u32 = 3;

/// Whether any page of a range is shared, given as its first page and one past its last.
pub(crate) type SharedIn<'a> = &'a dyn Fn(u64, u64) -> bool;

/// What a conversion to shared needs of its file's allocator, reserved: the splits, and the
/// blocks it cached to split them, which an abandoned conversion frees again.
#[must_use = "a reshape does nothing until committed, and an abandoned one must be undone"]
pub(crate) struct Reshape {
    splits: KVec<PreparedSplit>,
    cached: KVec<PageRange>,
}

impl Reshape {
    /// Nothing to do: an allocator whose every folio the host may map.
    pub(crate) fn none() -> Self {
        Self {
            splits: KVec::new(),
            cached: KVec::new(),
        }
    }

    /// Performs the splits; allocates nothing, cannot fail.
    pub(crate) fn commit(self, mapping: &Mapping) {
        let Self { splits, cached: _ } = self;
        for split in splits {
            counters::SPLITS.add(split.levels());
            counters::SPLIT_NODES.add(split.nodes());
            split.commit(mapping);
        }
    }

    /// Undoes the preparation: the blocks it cached leave the cache again, as if never touched.
    pub(crate) fn abandon(self, guard: &InvalidateGuard<'_>) {
        let Self { splits, cached } = self;
        // The splits hold references to the folios they were to split.
        drop(splits);
        for r in cached.iter() {
            let start = r.byte_offset();
            guard
                .mapping()
                .truncate_range_locked(guard, start, start + r.byte_len());
        }
    }
}

/// The aligned blocks of `1 << order` pages that overlap `range`, as their first pages.
fn blocks(range: &PageRange, order: u32) -> impl Iterator<Item = u64> {
    let r = range.align_out(order).unwrap_or(*range);
    (r.start()..r.end()).step_by(1 << order)
}

/// The order of the folio caching page `index`, if any.
fn order_at(mapping: &Mapping, index: u64) -> Option<u32> {
    mapping.for_each_folio(index, index + 1, |f| ControlFlow::Break(f.order()))
}

/// How the block of `order` from `start` is cached: `None` if it is not.
fn cached_shape(mapping: &Mapping, start: u64, order: u32) -> Option<Shape> {
    let whole = order_at(mapping, start)?;
    let mut shape = Shape::whole(order)?;
    if whole == order {
        return Some(shape);
    }
    if order > MID_ORDER {
        shape.apply(Step::SplitToMid);
    }
    for i in 0..shape.subs() {
        if order_at(mapping, start + ((i as u64) << MID_ORDER)) == Some(0) {
            shape.apply(Step::SplitToBase(i));
        }
    }
    Some(shape)
}

/// The shape a block of `order` from `start` needs: its 2 MiB sub-blocks holding a shared page
/// in base pages.
fn needed(start: u64, order: u32, shared: SharedIn<'_>) -> Option<Shape> {
    Shape::needed(order, |i| {
        let s = start + ((i as u64) << MID_ORDER);
        shared(s, s + (1 << MID_ORDER))
    })
}

/// Reserves, in `pool`'s file, the splits that making pages `range` shared needs: each block
/// it touches is cached by `populate` (and zeroed) if it is not, and split only as far as
/// `shared`, the pages shared once the conversion is done, requires. On failure nothing
/// changed.
pub(crate) fn prepare_shared(
    pool: &Reservation,
    populate: &dyn Fn(u64) -> Result,
    guard: &InvalidateGuard<'_>,
    range: &PageRange,
    shared: SharedIn<'_>,
) -> Result<Reshape> {
    let mut reshape = Reshape::none();
    match prepare_shared_into(&mut reshape, pool, populate, guard, range, shared) {
        Ok(()) => Ok(reshape),
        Err(e) => {
            reshape.abandon(guard);
            Err(e)
        }
    }
}

fn prepare_shared_into(
    reshape: &mut Reshape,
    pool: &Reservation,
    populate: &dyn Fn(u64) -> Result,
    guard: &InvalidateGuard<'_>,
    range: &PageRange,
    shared: SharedIn<'_>,
) -> Result {
    let mapping = guard.mapping();
    let order = pool.hstate().order();
    for start in blocks(range, order) {
        let Some(need) = needed(start, order, shared) else {
            return Err(EINVAL);
        };
        let shape = match cached_shape(mapping, start, order) {
            Some(shape) => shape,
            None => {
                let block = PageRange::new(start, start + (1 << order)).ok_or(EINVAL)?;
                // Reserve the entry first: pushing after caching could fail with the block cached.
                reshape.cached.push(block, GFP_KERNEL)?;
                populate(start)?;
                Shape::whole(order).ok_or(EINVAL)?
            }
        };
        // Pieces are always up to date; a whole folio becomes so before it splits.
        if shape.is_whole() && !need.is_whole() {
            if let Some(folio) = mapping.lock_folio(start as usize)? {
                if !folio.test_uptodate() {
                    folio.zero();
                    folio.mark_uptodate();
                }
            }
        }
        let fine = || {
            shape.splits_to(&need).filter_map(|s| match s {
                Step::SplitToBase(i) => Some(i),
                _ => None,
            })
        };
        if shape.is_whole() {
            let split = retrying(|| pool.prepare_split(guard, start, fine()))?;
            reshape.splits.push(split, GFP_KERNEL)?;
        } else {
            for i in fine() {
                let at = start + ((i as u64) << MID_ORDER);
                let split = retrying(|| pool.prepare_split(guard, at, [0]))?;
                reshape.splits.push(split, GFP_KERNEL)?;
            }
        }
    }
    Ok(())
}

/// Merges what may merge in the blocks overlapping `range`: every 2 MiB sub-block with no page
/// in `shared`, and whole blocks with none. Returns whether every block it looked at is whole or
/// uncached. Pieces must be unmapped from user space.
pub(crate) fn merge(
    pool: &Reservation,
    mapping: &Mapping,
    range: &PageRange,
    shared: SharedIn<'_>,
) -> bool {
    let order = pool.hstate().order();
    let mut all = true;
    for start in blocks(range, order) {
        let (Some(shape), Some(need)) = (
            cached_shape(mapping, start, order),
            needed(start, order, shared),
        ) else {
            continue;
        };
        let plan = shape.merges_to(&need, |_| true);
        for step in plan.steps() {
            let (first, len) = step.pages(order);
            let merge_order = if len == 1 << order { order } else { MID_ORDER };
            try_merge(pool, mapping, start + first, merge_order);
        }
        all &= cached_shape(mapping, start, order).map_or(true, |s| s.is_whole());
    }
    all
}

/// Prepares a split, trying again while a transient reference (a KVM fault that got its page
/// before the conversion began, a lookup) holds the folio: a private folio has no other users.
fn retrying(prepare: impl Fn() -> Result<PreparedSplit>) -> Result<PreparedSplit> {
    let mut r = prepare();
    for _ in 1..TRIES {
        if !matches!(&r, Err(e) if *e == EAGAIN) {
            break;
        }
        sched::cond_resched();
        r = prepare();
    }
    r
}

/// Merges the pieces of `1 << order` pages from `first`, trying again while transient
/// references stop it.
fn try_merge(pool: &Reservation, mapping: &Mapping, first: u64, order: u32) -> bool {
    (0..TRIES)
        .any(|n| {
            if n > 0 {
                sched::cond_resched();
            }
            pool.try_merge(mapping, first, order)
        })
        .then(|| counters::MERGES.inc())
        .is_some()
}

/// Merges the block of `pool`'s order from `start` whole, to let it go: `true` if it is whole
/// or uncached. A block with a poisoned page merges too, and goes to `keep` to be retired once
/// out of the cache.
fn merge_to_free(
    pool: &Reservation,
    guard: &InvalidateGuard<'_>,
    start: u64,
    keep: &dyn Fn(Poisoned),
) -> bool {
    let Some(block) = PageRange::new(start, start + (1 << pool.hstate().order())) else {
        return false;
    };
    if merge(pool, guard.mapping(), &block, &|_, _| false) {
        return true;
    }
    match pool.merge_poisoned(guard, start) {
        Some(poisoned) => {
            keep(poisoned);
            true
        }
        None => false,
    }
}

/// Punches `range`, whole blocks: a block with no shared page is merged and freed (retired, if
/// a page of it is poisoned: see `keep`); one with a shared page stays cached, as the invariant
/// wants, and its healthy pages are zeroed in place. `EBUSY` if a private block cannot merge,
/// with no block freed from it on.
pub(crate) fn punch_locked(
    pool: &Reservation,
    guard: &InvalidateGuard<'_>,
    range: &PageRange,
    shared: SharedIn<'_>,
    keep: &dyn Fn(Poisoned),
) -> Result {
    let mapping = guard.mapping();
    let order = pool.hstate().order();
    let n = 1u64 << order;
    // Merging first changes nothing anyone sees, so a refusal leaves the file as it was; but
    // for poisoned blocks merged before it, which the guest had lost whole or in part already.
    for start in blocks(range, order).filter(|&s| !shared(s, s + n)) {
        if !merge_to_free(pool, guard, start, keep) {
            return Err(EBUSY);
        }
    }
    for start in blocks(range, order) {
        if !shared(start, start + n) {
            let bytes = start << PAGE_SHIFT;
            mapping.truncate_range_locked(guard, bytes, bytes + (n << PAGE_SHIFT));
            continue;
        }
        mapping.unmap_pages(start, start + n);
        let mut index = start;
        while index < start + n {
            let Some(folio) = mapping.lock_folio(index as usize)? else {
                index += 1;
                continue;
            };
            let next = folio.next_index() as u64;
            // Memory must not be read or written where it failed; the page stays lost.
            if folio.first_hwpoisoned(index, next).is_some() {
                index = next;
                continue;
            }
            if gmem::HAS_ARCH_INVALIDATE && !shared(index, index + 1) {
                // The host writes the page: the architecture must give it back first.
                let frames: &Folio = &folio;
                gmem::arch_invalidate(frames);
            }
            folio.zero();
            index = next;
        }
    }
    Ok(())
}

/// At release: merges every block, whatever its pages' states, so that each leaves the page
/// cache as the one hugetlb folio it came as (to `keep`, if a page of it is poisoned). A block
/// that cannot merge, because someone outside holds a piece, leaves the cache in pieces and is
/// parked until they let go.
pub(crate) fn release_locked(
    pool: &Reservation,
    guard: &InvalidateGuard<'_>,
    pages: u64,
    parking: &Parking,
    keep: &dyn Fn(Poisoned),
) {
    let Some(all) = PageRange::new(0, pages) else {
        return;
    };
    let order = pool.hstate().order();
    for start in blocks(&all, order) {
        if merge_to_free(pool, guard, start, keep) {
            continue;
        }
        if let Some(parked) = pool.park(guard, start) {
            park::park(parking, parked);
        }
    }
}
