// SPDX-License-Identifier: GPL-2.0

//! A guest_memfd file: its state, creation and release.
//!
//! Lock order, outermost first:
//! `kvm->slots_lock` → the mapping's `invalidate_lock` → folio lock → [`Gmem::bindings`] →
//! KVM's `mmu_lock`. The invalidate lock is taken shared by allocation and exclusive by
//! hole punching and release; faults take none of these and rely on KVM's invalidation
//! sequence instead.

use crate::{
    allocator::{Allocator, PageAllocator},
    counters, fallocate,
    range::PAGE_SHIFT,
};
use kernel::{
    c_str,
    fs::{anon_inode::FileType, file, File},
    kvm::{
        gmem::{Bindings, HasBindings},
        Kvm,
    },
    prelude::*,
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
    pub(crate) allocator: &'static dyn Allocator,
    /// The file size in pages; fixed at creation.
    pub(crate) pages: u64,
}

impl HasBindings for Gmem {
    fn bindings(&self) -> &Bindings {
        &self.bindings
    }
}

/// The guest_memfd file type.
pub(crate) struct GmemFile;

/// Creates a file of `pages` pages for `kvm`.
pub(crate) fn create(files: &FileType<GmemFile>, kvm: &Kvm, pages: u64) -> Result<ARef<File>> {
    static PAGES: PageAllocator = PageAllocator;
    let gmem = Arc::pin_init(
        pin_init!(Gmem {
            kvm: kvm.into(),
            bindings <- Bindings::new(),
            allocator: &PAGES,
            pages,
        }),
        GFP_KERNEL,
    )?;
    // `pages` passed `range::check_file_size`, so the byte size fits in `loff_t`.
    let file = files.create(c_str!("[rgmem]"), gmem, (pages << PAGE_SHIFT) as i64)?;
    counters::FILES_CREATED.inc();
    counters::FILES_LIVE.inc();
    Ok(file)
}

#[vtable]
impl file::Operations for GmemFile {
    type Data = Gmem;

    fn release(gmem: &Gmem, file: &File) {
        // No new binding can appear (the file is dead), and holding slots_lock keeps KVM from
        // unbinding or freeing the bound memslots while they are detached.
        let slots = gmem.kvm.lock_slots();
        let _invalidate = file.mapping().invalidate_lock();
        let mut bindings = gmem.bindings.lock();
        let mut inv = None;
        for b in bindings.iter() {
            gmem.kvm
                .invalidate(&mut inv, b, b.gfn(b.start()), b.gfn(b.end()));
        }
        if inv.is_some() {
            counters::INVALIDATIONS.inc();
        }
        drop(inv);
        counters::BINDINGS.sub(bindings.iter().count() as u64);
        bindings.detach_all(&slots);
        counters::FILES_LIVE.dec();
        // The page cache is emptied after this returns, and the VM reference dropped with
        // `gmem` once slots_lock is released.
    }

    fn fallocate(gmem: &Gmem, file: &File, mode: i32, offset: i64, len: i64) -> Result {
        fallocate::fallocate(gmem, file, mode, offset, len)
    }
}
