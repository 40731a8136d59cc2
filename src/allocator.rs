// SPDX-License-Identifier: GPL-2.0

//! Where folios come from.
//!
//! Every folio of a file comes from the file's [`Allocator`]; nothing else allocates, and no
//! other code asks which allocator it is.

use crate::{
    alloc_math,
    park::Parking,
    range::PageRange,
    split::{Reshape, SharedIn},
};
use core::fmt::{self, Write};
use core::ops::ControlFlow;
use kernel::{
    prelude::*,
    rgmem::debugfs::SeqWriter,
    rgmem::folio::LockedFolio,
    rgmem::fs::{
        filemap::{InvalidateGuard, InvalidateHeld, MfFolio, NewFolio},
        Mapping,
    },
    sync::lock::{mutex::MutexBackend, Guard},
};

/// Held by an allocator that serializes its allocations.
pub(crate) type Serial<'a> = Guard<'a, (), MutexBackend>;

/// A source of folios for a file's page cache.
pub(crate) trait Allocator: Send + Sync {
    /// Allocates a folio to cache file page `index` of a file of `file_pages` pages. Returns it
    /// with the index of its first page.
    fn alloc(&self, mapping: &Mapping, index: u64, file_pages: u64) -> Result<(NewFolio, u64)>;

    /// A lock held from before allocating a folio until it is cached, for an allocator whose
    /// supply is exact: two faults on one absent block must not both take a page for it, as the
    /// second would find none left. `None`: allocations may race, and the loser's folio is freed.
    fn serialize(&self) -> Option<Serial<'_>> {
        None
    }

    /// The order of the smallest folio it makes: ranges allocated or freed must be whole blocks
    /// of that many pages.
    fn order(&self) -> u32 {
        0
    }

    /// Whether the host may map a folio of `order` it made: pages only the guest maps need not
    /// be.
    fn host_mappable(&self, _order: u32) -> bool {
        true
    }

    /// Reserves what making pages `range` shared needs, so that the host may map each once the
    /// conversion commits; `shared` tells which pages are shared then. Changes nothing that
    /// the returned [`Reshape`] does not undo when abandoned.
    fn prepare_shared(
        &self,
        _guard: &InvalidateGuard<'_>,
        _range: &PageRange,
        _shared: SharedIn<'_>,
    ) -> Result<Reshape> {
        Ok(Reshape::none())
    }

    /// After pages of `range` became private: makes folios as large again as `shared`, the
    /// pages still shared, allows. The pages are unmapped from user space.
    fn merge(&self, _mapping: &Mapping, _range: &PageRange, _shared: SharedIn<'_>) {}

    /// Frees the folios of `range`, whole blocks, whose pages in `shared` are shared.
    fn punch_locked(
        &self,
        guard: &InvalidateGuard<'_>,
        range: &PageRange,
        _shared: SharedIn<'_>,
    ) -> Result {
        let start = range.byte_offset();
        guard
            .mapping()
            .truncate_range_locked(guard, start, start + range.byte_len());
        Ok(())
    }

    /// Before the page cache of a file of `pages` pages is emptied at release; what cannot go
    /// back to where it came from yet goes to `parking`.
    fn release_locked(&self, _guard: &InvalidateGuard<'_>, _pages: u64, _parking: &Parking) {}

    /// Memory failure poisoned `folio`, one of its own: takes over what memory failure keeps on
    /// it, to give back once the folio leaves the file.
    fn keep_poisoned(&self, _folio: MfFolio<'_>) -> PoisonOutcome {
        PoisonOutcome::Page
    }

    /// The next fault on page `index`, of a folio memory failure poisoned, found it whole:
    /// splits its bad pages off, if that is pending. Returns whether it did; if not, the folio
    /// is lost whole. `EAGAIN` if transient users kept it from splitting.
    fn isolate_poisoned(&self, _held: &dyn InvalidateHeld, _index: u64) -> Result<bool> {
        Ok(false)
    }
}

/// What memory failure in one of an allocator's folios costs the guest.
pub(crate) enum PoisonOutcome {
    /// The bad page alone: it is a folio of its own.
    Page,
    /// The whole folio, until the next fault on it isolates the bad pages.
    Pending,
    /// The whole folio.
    WholeFolio,
}

/// Base pages from the page allocator, with the mapping's GFP mask.
pub(crate) struct PageAllocator;

impl Allocator for PageAllocator {
    fn alloc(&self, mapping: &Mapping, index: u64, file_pages: u64) -> Result<(NewFolio, u64)> {
        let (order, start) = alloc_math::fit(index, 0, file_pages);
        Ok((mapping.alloc_folio(order)?, start))
    }
}

/// Returns the locked folio caching file page `index`, allocating it if there is none, and
/// whether it is new. The caller counts new folios in [`crate::counters::FOLIOS_ALLOCATED`].
///
/// With `likely_absent`, as when the page before was just allocated, the folio is inserted
/// without looking first; a folio already there is found on `EEXIST`.
#[inline]
pub(crate) fn get_or_alloc(
    allocator: &dyn Allocator,
    mapping: &Mapping,
    index: u64,
    file_pages: u64,
    mut likely_absent: bool,
) -> Result<(LockedFolio, bool)> {
    loop {
        if !likely_absent {
            if let Some(folio) = mapping.lock_folio(index as usize)? {
                return Ok((folio, false));
            }
        }
        let serial = allocator.serialize();
        // Cached while we waited: look again, without locking it under `serial`, which a caller
        // holding a folio lock may be waiting for.
        let cached = || mapping.for_each_folio(index, index + 1, |_| ControlFlow::Break(()));
        if serial.is_some() && cached().is_some() {
            likely_absent = false;
            continue;
        }
        let (folio, start) = allocator.alloc(mapping, index, file_pages)?;
        match mapping.add_folio(folio, start as usize) {
            Ok(folio) => return Ok((folio, true)),
            // Someone else cached it first; use theirs.
            Err(e) if e == EEXIST => likely_absent = false,
            Err(e) => return Err(e),
        }
    }
}

/// Writes the folios cached by every file in `files`, given by inode number, page cache, size in
/// pages: one line per run of adjacent folios of one order, as inode number, first page, last
/// page (inclusive) and order. A 1 GiB folio with one page split off to 4 KiB shows as a few
/// lines, not thousands.
pub(crate) fn dump_folios(
    files: impl FnOnce(&mut dyn FnMut(u64, &Mapping, u64)),
    w: &mut SeqWriter,
) -> fmt::Result {
    let mut r = Ok(());
    files(&mut |ino, mapping, pages| {
        // The run so far: first page, one past its last, order.
        let mut run: Option<(u64, u64, u32)> = None;
        let mut flush = |run: (u64, u64, u32), r: &mut fmt::Result| {
            *r = r.and(writeln!(w, "{} {} {} {}", ino, run.0, run.1 - 1, run.2));
        };
        mapping.for_each_folio(0, pages, |folio| {
            let (start, end, order) = (
                folio.index() as u64,
                folio.next_index() as u64,
                folio.order(),
            );
            run = match run {
                Some((s, e, o)) if e == start && o == order => Some((s, end, o)),
                Some(done) => {
                    flush(done, &mut r);
                    Some((start, end, order))
                }
                None => Some((start, end, order)),
            };
            ControlFlow::<()>::Continue(())
        });
        if let Some(done) = run {
            flush(done, &mut r);
        }
    });
    r
}
