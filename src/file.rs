// SPDX-License-Identifier: GPL-2.0

//! A guest_memfd file as the VFS sees it: its creation, release and entry points.
//!
//! Locks, in the order of Documentation/rgmem.rst ("Lock order"): a release takes
//! `kvm->slots_lock`, then the mapping's `invalidate_lock`, then [`Gmem::bindings`], under which
//! KVM's `mmu_lock` is taken to invalidate. The invalidate lock is taken shared by allocation, user
//! faults and, for a file that converts, KVM's faults; and exclusively by conversion, hole
//! punching, binding and release; it also protects [`Gmem::shares`] (see `shareability.rs`).
//! KVM's `is_private` and `is_uniform` take none of these and rely on KVM's invalidation sequence
//! instead.

use crate::{
    backing::FileAllocator,
    convert, counters, fallocate, invalidate, mmap,
    park::Parking,
    range::{PageRange, PAGE_SHIFT},
    share_math::Share,
    shareability::Shareability,
    state::Gmem,
};
use kernel::{
    c_str,
    prelude::*,
    rgmem::folio::LockedFolio,
    rgmem::fs::{anon_inode::FileType, file, file::ReleasedFile, File},
    rgmem::kvm::{
        gmem::{Bindings, MemoryAttributes2},
        Kvm,
    },
    rgmem::mm::virt::VmaNew,
    sync::Arc,
    types::ARef,
};

/// The guest_memfd file type.
pub(crate) struct GmemFile;

/// What a new file is, besides its backing.
pub(crate) struct Spec {
    /// Its size, in pages.
    pub(crate) pages: u64,
    /// Whether the host may map its shared pages.
    pub(crate) mmap: bool,
    /// The state of all its pages at first.
    pub(crate) init: Share,
    /// Whether its pages change state; they stay `init` if not.
    pub(crate) converts: bool,
}

/// Creates a file as `spec` says for `kvm`, backed by `allocator`, which parks in `parking` what
/// it cannot free at release.
pub(crate) fn create(
    files: &FileType<GmemFile>,
    parking: &Arc<Parking>,
    kvm: &Kvm,
    spec: Spec,
    allocator: FileAllocator,
) -> Result<ARef<File>> {
    let Spec {
        pages,
        mmap,
        init,
        converts,
    } = spec;
    // `pages` passed `range::check_file_size`, so the byte size fits in `loff_t`.
    let file = files.create(c_str!("[rgmem]"), (pages << PAGE_SHIFT) as i64, |file| {
        let shares = Shareability::new(file.mapping(), (!converts).then_some(init));
        let ino = file.inode().ino();
        pin_init!(Gmem {
            ino,
            kvm: kvm.into(),
            bindings <- Bindings::new(kvm),
            allocator,
            pages,
            mmap,
            parking: parking.clone(),
            shares <- shares,
        })
    })?;
    counters::FILES_CREATED.inc();
    counters::FILES_LIVE.inc();
    // On failure, dropping the file releases it.
    let gmem = files.data(&file).ok_or(EINVAL)?;
    gmem.shares
        .fill(&mut file.mapping().invalidate_lock(), pages, init)?;
    Ok(file)
}

#[vtable]
impl file::Operations for GmemFile {
    type Data = Gmem;

    fn release(gmem: &Gmem, file: &ReleasedFile) {
        // No new binding can appear (the file is dead), and holding slots_lock keeps KVM from
        // unbinding or freeing the bound memslots while they are detached.
        let slots = gmem.kvm.lock_slots();
        let invalidate = file.mapping().invalidate_lock();
        let mut bindings = gmem.bindings.lock();
        if let Some(all) = PageRange::new(0, gmem.pages) {
            drop(invalidate::pages(&bindings, &all));
        }
        counters::BINDINGS.sub(bindings.iter().count() as u64);
        bindings.detach_all(&slots);
        drop(bindings);
        // Huge folios leave the cache whole, or parked while someone outside holds a piece.
        gmem.allocator
            .release_locked(&invalidate, gmem.pages, &gmem.parking);
        counters::FILES_LIVE.dec();
        // The page cache is emptied after this returns, and the VM reference dropped with
        // `gmem` once slots_lock is released.
    }

    fn fallocate(gmem: &Gmem, file: &File, mode: i32, offset: i64, len: i64) -> Result {
        fallocate::fallocate(gmem, file, mode, offset, len)
    }

    fn ioctl(gmem: &Gmem, file: &File, cmd: u32, arg: usize) -> Result<isize> {
        match cmd {
            MemoryAttributes2::IOCTL => convert::set_memory_attributes(gmem, file, arg),
            _ => Err(ENOTTY),
        }
    }

    fn mmap(gmem: &Gmem, _file: &File, vma: &VmaNew) -> Result {
        mmap::mmap(gmem, vma)
    }

    fn fault(gmem: &Gmem, file: &File, index: u64) -> Result<LockedFolio> {
        mmap::fault(gmem, file, index)
    }
}
