// SPDX-License-Identifier: GPL-2.0

//! The state of one guest_memfd file, which every operation on it reads.
//!
//! Imports point one way: the VFS entry points (`file.rs`) and KVM's (`kvm.rs`) call the
//! operations (`convert.rs`, `fallocate.rs`, `fault.rs`, `mmap.rs`, `memory_failure.rs`), which
//! use this state, which uses the kernel-free math.

use crate::{
    allocator,
    backing::FileAllocator,
    counters,
    park::Parking,
    share_math::Share,
    shareability::{Shareability, Steady},
};
use kernel::{
    prelude::*,
    rgmem::folio::LockedFolio,
    rgmem::fs::filemap::Mapping,
    rgmem::kvm::{
        gmem::{Bindings, HasBindings},
        Kvm,
    },
    sync::Arc,
    types::ARef,
};

/// The state of one guest_memfd file.
#[pin_data]
pub(crate) struct Gmem {
    /// The VM the file belongs to; the file keeps it alive.
    pub(crate) kvm: ARef<Kvm>,
    /// The memslots bound to the file.
    #[pin]
    pub(crate) bindings: Bindings,
    /// Where the file's folios come from.
    pub(crate) allocator: FileAllocator,
    /// The inode number, which names the file in debugfs.
    pub(crate) ino: u64,
    /// The file size in pages; fixed at creation.
    pub(crate) pages: u64,
    /// Whether the host may map the file's shared pages.
    pub(crate) mmap: bool,
    /// Where release leaves the blocks it cannot give back yet.
    pub(crate) parking: Arc<Parking>,
    /// Which pages are shared and which private.
    #[pin]
    pub(crate) shares: Shareability,
}

impl Gmem {
    /// The locked folio caching file page `index`, allocated if need be, when the page is in
    /// state `want`; `None` when it is not. A poisoned page gives `EHWPOISON`, as does any page
    /// of a huge folio whose bad pages cannot be split off. `steady` keeps conversions out.
    #[inline]
    pub(crate) fn folio_locked(
        &self,
        steady: &Steady<'_>,
        mapping: &Mapping,
        index: u64,
        want: Share,
    ) -> Result<Option<LockedFolio>> {
        if self.shares.get_steady(steady, index)? != want {
            return Ok(None);
        }
        loop {
            let (folio, new) =
                allocator::get_or_alloc(&*self.allocator, mapping, index, self.pages, false)?;
            if new {
                counters::FOLIOS_ALLOCATED.inc();
            }
            if !folio.page_hwpoisoned(index) {
                return Ok(Some(folio));
            }
            // A whole huge folio, lost for now: its bad pages may be split off, and the page
            // found again in a piece. The split needs the folio unlocked and unreferenced, and
            // the invalidate lock, which a file whose states never change did not take.
            let whole = folio.order() > 0 && folio.order() == self.allocator.order();
            drop(folio);
            let isolated = whole
                && match steady.held() {
                    Some(held) => self.allocator.isolate_poisoned(held, index)?,
                    None => self
                        .allocator
                        .isolate_poisoned(&mapping.invalidate_lock_shared(), index)?,
                };
            if !isolated {
                return Err(EHWPOISON);
            }
        }
    }
}

impl HasBindings for Gmem {
    fn bindings(&self) -> &Bindings {
        &self.bindings
    }
}
