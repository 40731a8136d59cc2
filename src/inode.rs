// SPDX-License-Identifier: GPL-2.0

//! The inode of a guest_memfd file and the callbacks of its page cache.

use crate::{file::GmemFile, memory_failure, range::PAGE_SHIFT, state::Gmem};
use kernel::{
    prelude::*,
    rgmem::folio::FreedFolio,
    rgmem::fs::{
        filemap::{self, MfFolio, MfResult},
        inode::{self, Kstat},
        Inode,
    },
    rgmem::kvm::gmem,
};

#[vtable]
impl inode::Operations for GmemFile {
    // The size is fixed at creation: the default `setattr` refuses truncation with EINVAL.

    fn getattr(inode: &Inode, stat: &mut Kstat) {
        // Blocks are 512 bytes; every cached page is allocated memory.
        stat.set_blocks((inode.mapping().nr_pages() as u64) << (PAGE_SHIFT - 9));
    }
}

#[vtable]
impl filemap::Operations for GmemFile {
    // The page cache calls `free_folio` for every folio it frees; as in KVM, install it only where
    // the architecture has memory to take back.
    const HAS_FREE_FOLIO: bool = gmem::HAS_ARCH_INVALIDATE;

    fn free_folio(folio: &FreedFolio) {
        gmem::arch_invalidate(folio);
    }

    fn error_remove_folio(gmem: &Gmem, folio: MfFolio<'_>) -> MfResult {
        memory_failure::error_remove_folio(gmem, folio)
    }

    // Migration is refused by default: the guest may own the memory.
}
