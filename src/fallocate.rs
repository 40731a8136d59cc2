// SPDX-License-Identifier: GPL-2.0

//! `fallocate(2)` on a guest_memfd file: allocate a range, or punch a hole in it.

use crate::{
    allocator, counters, invalidate,
    range::{PageRange, PAGE_SHIFT},
    state::Gmem,
};
use kernel::{
    prelude::*,
    rgmem::fs::{file::falloc, File},
    rgmem::sched,
};

/// `fallocate(2)`: `KEEP_SIZE` is required, and `PUNCH_HOLE` the only other mode. Ranges are
/// whole folios of the file's allocator: a partial huge page could be neither allocated alone
/// nor freed.
pub(crate) fn fallocate(gmem: &Gmem, file: &File, mode: i32, offset: i64, len: i64) -> Result {
    if mode & falloc::KEEP_SIZE == 0 || mode & !(falloc::KEEP_SIZE | falloc::PUNCH_HOLE) != 0 {
        return Err(EOPNOTSUPP);
    }
    // The VFS has refused negative values and sums past the maximum file size.
    let (offset, len) = (offset as u64, len as u64);
    let order = gmem.allocator.order();
    if mode & falloc::PUNCH_HOLE != 0 {
        // As in KVM, a hole past the end of the file is already there.
        let range = PageRange::from_bytes(offset, len, u64::MAX)?;
        if !range.is_aligned(order) {
            return Err(EINVAL);
        }
        if let Some(range) = PageRange::new(0, gmem.pages).and_then(|f| f.intersect(&range)) {
            punch_hole(gmem, file, &range)?;
        }
    } else {
        let range = PageRange::from_bytes(offset, len, gmem.pages << PAGE_SHIFT)?;
        if !range.is_aligned(order) {
            return Err(EINVAL);
        }
        allocate(gmem, file, &range)?;
    }
    file.modified()
}

/// Allocates every page of `range`; stops with `EINTR` on a signal, keeping what it did.
fn allocate(gmem: &Gmem, file: &File, range: &PageRange) -> Result {
    let mapping = file.mapping();
    let _invalidate = mapping.invalidate_lock_shared();
    let mut index = range.start();
    let mut added = 0;
    let mut last_new = false;
    let r = loop {
        if index >= range.end() {
            break Ok(());
        }
        // Every `CHECK_EVERY` pages: signals and rescheduling cost calls on the hot path.
        if index % CHECK_EVERY == 0 {
            if sched::signal_pending() {
                break Err(EINTR);
            }
            sched::cond_resched();
        }
        // Where the last page was missing, the next one most likely is too.
        match allocator::get_or_alloc(&*gmem.allocator, mapping, index, gmem.pages, last_new) {
            Ok((folio, new)) => {
                index = folio.next_index() as u64;
                added += u64::from(new);
                last_new = new;
            }
            Err(e) => break Err(e),
        }
    };
    counters::FOLIOS_ALLOCATED.add(added);
    r
}

/// How often, in pages, allocation checks for signals and yields the CPU.
const CHECK_EVERY: u64 = 16;

/// Frees the folios of `range`, after unmapping them from the guest in every binding.
fn punch_hole(gmem: &Gmem, file: &File, range: &PageRange) -> Result {
    let mapping = file.mapping();
    let invalidate = mapping.invalidate_lock();
    // The bindings lock is not held across truncation, which takes folio locks.
    let inv = invalidate::pages(&gmem.bindings.lock(), range);
    let shares = &gmem.shares;
    let r = gmem
        .allocator
        .punch_locked(&invalidate, range, &|s, e| shares.any_shared(s, e));
    // Faults may map the range again once the invalidation ends, and find it empty.
    drop(inv);
    counters::PUNCH_HOLES.inc();
    r
}
