// SPDX-License-Identifier: GPL-2.0

//! Which pages of a file the host may map (shared) and which only the guest may (private).
//!
//! One maple tree per file holds maximal runs of equal state, covering every page.
//!
//! Locking: the tree is written only under the mapping's invalidate lock held exclusively
//! (creation, conversion). User faults and KVM's `get_pfn` read it under the lock held shared;
//! KVM's `is_private` and `is_uniform`, which may run under `mmu_lock`, read one run under the
//! tree's own spinlock and rely on KVM's invalidation sequence, which conversion bumps around its
//! store, to retry a stale answer.
//! Punch-hole and truncation keep the states.
//!
//! While KVM keeps attributes per VM (`vm_memory_attributes=1`), nothing converts: every page
//! keeps its initial state, and readers need no lock.

use crate::share_math::{Run, Share};
use core::fmt::{self, Write};
use kernel::{
    prelude::*,
    rgmem::debugfs::SeqWriter,
    rgmem::fs::filemap::{InvalidateGuard, InvalidateHeld, InvalidateSharedGuard, Mapping},
    rgmem::maple_tree::{PreparedStore, Range, RangeTree},
};

/// The shareability of a file's pages.
#[pin_data]
pub(crate) struct Shareability {
    #[pin]
    tree: RangeTree,
    /// The state of every page, for good, when the file does not convert.
    fixed: Option<Share>,
}

/// Keeps every page's state as it is while it lives: the invalidate lock held shared, or
/// nothing for a file that does not convert.
pub(crate) struct Steady<'a>(Option<InvalidateSharedGuard<'a>>);

impl Steady<'_> {
    /// The invalidate lock it holds, if states may change in this file.
    pub(crate) fn held(&self) -> Option<&dyn InvalidateHeld> {
        self.0.as_ref().map(|g| g as &dyn InvalidateHeld)
    }
}

fn run(r: Range) -> Run {
    Run {
        start: r.first,
        end: r.last + 1,
        share: Share::from_value(r.value as usize),
    }
}

impl Shareability {
    /// An empty store for the file of `mapping`; [`Shareability::fill`] sets its initial state,
    /// which is `fixed` for good if given.
    pub(crate) fn new(mapping: &Mapping, fixed: Option<Share>) -> impl PinInit<Self> {
        let tree = RangeTree::new(mapping);
        pin_init!(Self { tree <- tree, fixed })
    }

    /// Whether pages may change state.
    pub(crate) fn converts(&self) -> bool {
        self.fixed.is_none()
    }

    /// Keeps states from changing for a reader of `mapping`, the file's.
    pub(crate) fn steady<'a>(&self, mapping: &'a Mapping) -> Steady<'a> {
        Steady(self.converts().then(|| mapping.invalidate_lock_shared()))
    }

    /// Sets all `pages` pages to `share`.
    pub(crate) fn fill(&self, guard: &mut InvalidateGuard<'_>, pages: u64, share: Share) -> Result {
        self.prepare_store_locked(guard, 0, pages, share)?.commit();
        Ok(())
    }

    /// The state of page `index`, from any context. Pages past the end read as private: no one
    /// may map them.
    pub(crate) fn get(&self, index: u64) -> Share {
        if let Some(share) = self.fixed {
            return share;
        }
        self.tree
            .load(index)
            .map_or(Share::Private, |v| Share::from_value(v as usize))
    }

    /// Whether pages `start..end` all have one state, from any context. Runs are maximal, so
    /// that is whether the run holding `start` reaches `end`.
    pub(crate) fn is_uniform(&self, start: u64, end: u64) -> bool {
        self.fixed.is_some() || end <= start || self.tree.extent(start).1 >= end - 1
    }

    /// Whether any of pages `start..end` is shared; as [`Shareability::get`], a hint unless
    /// conversions are kept out.
    pub(crate) fn any_shared(&self, start: u64, end: u64) -> bool {
        start < end && !(self.is_uniform(start, end) && self.get(start) == Share::Private)
    }

    /// As [`Shareability::get`], for a reader that keeps states steady: cheaper, as writers are
    /// already out.
    pub(crate) fn get_steady(&self, steady: &Steady<'_>, index: u64) -> Result<Share> {
        match (self.fixed, &steady.0) {
            (Some(share), _) => Ok(share),
            (None, Some(held)) => Ok(self
                .tree
                .load_locked(held, index)?
                .map_or(Share::Private, |v| Share::from_value(v as usize))),
            // `steady` comes from another store.
            (None, None) => Err(EINVAL),
        }
    }

    /// The runs that overlap pages `start..end`, whole, in order.
    pub(crate) fn runs_locked<'a, H: InvalidateHeld>(
        &'a self,
        held: &'a H,
        start: u64,
        end: u64,
    ) -> Result<impl Iterator<Item = Run> + 'a> {
        Ok(self.tree.ranges(held, start, end - 1)?.map(run))
    }

    /// Reserves what storing `share` over pages `start..end` needs; the store cannot fail then.
    pub(crate) fn prepare_store_locked<'a>(
        &'a self,
        guard: &'a mut InvalidateGuard<'_>,
        start: u64,
        end: u64,
        share: Share,
    ) -> Result<PreparedStore<'a>> {
        self.tree
            .prepare_store(guard, start, end - 1, share.to_value() as u32)
    }
}

/// Writes the runs of every file in `files`, given by inode number and shareability, one per
/// line: inode number, first page, last page (inclusive), `shared` or `private`.
pub(crate) fn dump(
    files: impl FnOnce(&mut dyn FnMut(u64, &Shareability)),
    w: &mut SeqWriter,
) -> fmt::Result {
    let mut r = Ok(());
    files(&mut |ino, shares| {
        shares.tree.for_each(|range| {
            let state = match Share::from_value(range.value as usize) {
                Share::Shared => "shared",
                Share::Private => "private",
            };
            r = r.and(writeln!(
                w,
                "{} {} {} {}",
                ino, range.first, range.last, state
            ));
        });
    });
    r
}
