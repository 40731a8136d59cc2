// SPDX-License-Identifier: GPL-2.0

//! In-place conversion: `KVM_SET_MEMORY_ATTRIBUTES2` flips pages between shared and private
//! without moving them, so contents survive in both directions.
//!
//! A conversion goes through three types. A [`Plan`] knows whether anything changes and which
//! single store records it. A [`Prepared`] conversion has reserved every node the store needs;
//! towards shared, the allocator has reserved the folio splits that let the host map each
//! shared page; towards private, the host is unmapped and no one else holds the pages. Up to
//! there, failing leaves everything as it was. [`Prepared::commit`] is the point of no return:
//! it invalidates KVM's mappings, splits, stores, merges what became private whole, and ends the
//! invalidation, and returns `()`.
//!
//! The mapping's invalidate lock is held exclusively from planning to commit; user memory is
//! only touched outside it, since faults take `mmap_lock` before it.

use crate::{
    counters, invalidate,
    range::{PageRange, PAGE_SHIFT},
    share_math::{self, Share},
    split::Reshape,
    state::Gmem,
};
use core::ops::ControlFlow;
use kernel::prelude::*;
use kernel::{
    rgmem::folio::Folio,
    rgmem::fs::{
        filemap::{InvalidateGuard, InvalidateHeld},
        File, Mapping,
    },
    rgmem::kvm::gmem::{self, MemoryAttributes2},
    rgmem::maple_tree::PreparedStore,
    rgmem::mm,
};

/// Why preparing a conversion failed, and the first page at fault, which user space gets back
/// in `error_offset`; with the allocator's preparation, to undo.
struct Failure {
    err: Error,
    index: u64,
    reshape: Option<Reshape>,
}

/// `KVM_SET_MEMORY_ATTRIBUTES2` on `file`, with its argument at user address `arg`.
pub(crate) fn set_memory_attributes(gmem: &Gmem, file: &File, arg: usize) -> Result<isize> {
    // While KVM keeps attributes per VM, those are the ones its fault path reads.
    if !gmem.shares.converts() {
        return Err(ENOTTY);
    }
    let args = MemoryAttributes2::read(arg)?;
    let to = share_math::requested(args.attributes(), args.flags(), args.reserved())?;
    let range = PageRange::from_bytes(args.offset(), args.size(), gmem.pages << PAGE_SHIFT)?;

    let mapping = file.mapping();
    let mut guard = mapping.invalidate_lock();
    let plan = Plan::new(gmem, &guard, range, to)?;
    if !plan.changes {
        return Ok(0);
    }
    isolate_poisoned(gmem, &guard, &range);
    if let Some(index) = first_poisoned(mapping, &range) {
        drop(guard);
        args.report_error_offset(index << PAGE_SHIFT)?;
        return Err(EHWPOISON);
    }
    let reshape = match plan.prepare_reshape(gmem, &guard) {
        Ok(reshape) => reshape,
        Err(err) => {
            drop(guard);
            args.report_error_offset(range.byte_offset())?;
            return Err(err);
        }
    };
    let mut failed = match plan.prepare(gmem, file, &mut guard, reshape) {
        Ok(prepared) => {
            prepared.commit(gmem, file);
            None
        }
        Err(failure) => Some(failure),
    };
    if let Some(reshape) = failed.as_mut().and_then(|f| f.reshape.take()) {
        reshape.abandon(&guard);
    }
    drop(guard);
    if let Some(Failure { err, index, .. }) = failed {
        args.report_error_offset(index << PAGE_SHIFT)?;
        return Err(err);
    }
    counters::CONVERSIONS.inc();
    Ok(0)
}

/// Splits the bad pages off the whole huge folios of `range` that memory failure poisoned, where
/// that is pending, so that only those pages stay out of conversions.
fn isolate_poisoned(gmem: &Gmem, guard: &InvalidateGuard<'_>, range: &PageRange) {
    let order = gmem.allocator.order();
    if order == 0 || !mm::any_hwpoison() {
        return;
    }
    let mut from = range.start();
    while let Some(index) = guard.mapping().for_each_folio(from, range.end(), |folio| {
        if folio.order() == order && folio.test_hwpoison() {
            ControlFlow::Break(folio.index() as u64)
        } else {
            ControlFlow::Continue(())
        }
    }) {
        // Not isolated, the folio is reported whole below.
        let _ = gmem.allocator.isolate_poisoned(guard, index);
        from = index + (1 << order);
    }
}

/// The first page of `range` that memory failure poisoned. Such a page converts neither way: the
/// caller learns of the loss where it asked, not from a later `SIGBUS`, nor from an `EAGAIN` that
/// memory failure's reference on the page would never let clear. Punching the page lets the range
/// convert. A failure after this check is handled as on any page of the new state.
fn first_poisoned(mapping: &Mapping, range: &PageRange) -> Option<u64> {
    // Without a failure anywhere, the walk would cost a populated conversion a look at every
    // folio.
    if !mm::any_hwpoison() {
        return None;
    }
    let (start, end) = (range.start(), range.end());
    mapping.for_each_folio(start, end, |folio| {
        match folio.first_hwpoisoned(start, end) {
            Some(index) => ControlFlow::Break(index),
            None => ControlFlow::Continue(()),
        }
    })
}

/// What converting `range` to `to` changes.
struct Plan {
    range: PageRange,
    to: Share,
    /// Whether any page of `range` is not `to` yet.
    changes: bool,
    /// The pages to store `to` over: `range` widened over equal neighbours.
    store: (u64, u64),
    /// The pages KVM may map together with those of `range`: the allocator's aligned blocks,
    /// which the conversion invalidates whole.
    blocks: PageRange,
}

impl Plan {
    fn new(gmem: &Gmem, guard: &InvalidateGuard<'_>, range: PageRange, to: Share) -> Result<Self> {
        let (start, end) = (range.start(), range.end());
        let shares = &gmem.shares;
        // Whether anything changes: the first run in the other state answers it.
        let changes = shares
            .runs_locked(guard, start, end)?
            .any(|r| share_math::changed(&r, start, end, to).is_some());
        // The runs holding page `start - 1` and page `end` decide the widening.
        let before = match start {
            0 => None,
            s => shares.runs_locked(guard, s - 1, s)?.next(),
        };
        let after = match end {
            e if e < gmem.pages => shares.runs_locked(guard, e, e + 1)?.next(),
            _ => None,
        };
        let store = share_math::widened(start, end, to, before.as_ref(), after.as_ref());
        let blocks = range.align_out(gmem.allocator.order()).ok_or(EINVAL)?;
        Ok(Self {
            range,
            to,
            changes,
            store,
            blocks,
        })
    }

    /// Whether any of pages `start..end` is shared once the conversion is done: a page of the
    /// range if it becomes shared, any other page if it is shared now.
    fn shared_after(&self, gmem: &Gmem, start: u64, end: u64) -> bool {
        let shared_now = |s: u64, e: u64| gmem.shares.any_shared(s, e);
        let (rs, re) = (self.range.start(), self.range.end());
        let touched = PageRange::new(start, end).is_some_and(|r| r.overlaps(&self.range));
        (touched && self.to == Share::Shared)
            || shared_now(start, rs.clamp(start, end))
            || shared_now(re.clamp(start, end), end)
    }

    /// Towards shared, has the allocator reserve what lets the host map each shared page.
    fn prepare_reshape(&self, gmem: &Gmem, guard: &InvalidateGuard<'_>) -> Result<Reshape> {
        if self.to != Share::Shared {
            return Ok(Reshape::none());
        }
        gmem.allocator
            .prepare_shared(guard, &self.range, &|s, e| self.shared_after(gmem, s, e))
    }

    /// Reserves what the commit needs and, towards private, makes sure the host has let go of
    /// the pages. On failure nothing has changed; the error comes with the first page at fault.
    fn prepare<'a>(
        self,
        gmem: &'a Gmem,
        file: &File,
        guard: &'a mut InvalidateGuard<'_>,
        reshape: Reshape,
    ) -> core::result::Result<Prepared<'a>, Failure> {
        let (start, end) = (self.range.start(), self.range.end());
        let store =
            match gmem
                .shares
                .prepare_store_locked(guard, self.store.0, self.store.1, self.to)
            {
                Ok(store) => store,
                Err(err) => {
                    return Err(Failure {
                        err,
                        index: start,
                        reshape: Some(reshape),
                    })
                }
            };
        if self.to == Share::Private {
            let mapping = file.mapping();
            mapping.unmap_pages(start, end);
            // A page in a per-CPU LRU batch is referenced by the batch: drain once, then any
            // reference left is a real user (a pin, a GUP in flight), and the caller must retry.
            let mut drained = false;
            let busy = mapping.for_each_folio(start, end, |folio| {
                if !folio.is_unused() && !drained {
                    mm::lru_add_drain_all();
                    drained = true;
                }
                if folio.is_unused() {
                    ControlFlow::Continue(())
                } else {
                    ControlFlow::Break((folio.index() as u64).max(start))
                }
            });
            if let Some(index) = busy {
                // Dropping `store` releases the reservation.
                return Err(Failure {
                    err: EAGAIN,
                    index,
                    reshape: Some(reshape),
                });
            }
        }
        Ok(Prepared {
            plan: self,
            store,
            reshape,
        })
    }
}

/// A conversion with everything reserved: committing it cannot fail.
struct Prepared<'a> {
    plan: Plan,
    store: PreparedStore<'a>,
    reshape: Reshape,
}

impl Prepared<'_> {
    /// Performs the conversion.
    fn commit(self, gmem: &Gmem, file: &File) {
        let (start, end) = (self.plan.range.start(), self.plan.range.end());
        // A huge mapping of a block may cover the range: it goes too, so that no fault that
        // sized its mapping before the change maps it over pages of the other state.
        let inv = invalidate::pages(&gmem.bindings.lock(), &self.plan.blocks);
        let mapping = file.mapping();
        self.reshape.commit(mapping);
        if self.plan.to == Share::Shared && gmem::HAS_ARCH_INVALIDATE {
            // The architecture takes back what it gave the guest, before the host may touch it.
            mapping.for_each_folio(start, end, |folio| {
                if gmem.shares.get(folio.index() as u64) == Share::Private {
                    let folio: &Folio = folio;
                    gmem::arch_invalidate(folio);
                }
                ControlFlow::<()>::Continue(())
            });
        }
        self.store.commit();
        if self.plan.to == Share::Private {
            let plan = &self.plan;
            gmem.allocator
                .merge(mapping, &plan.blocks, &|s, e| plan.shared_after(gmem, s, e));
        }
        // Faults retry until here, then see the new state.
        drop(inv);
    }
}
