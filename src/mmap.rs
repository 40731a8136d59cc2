// SPDX-License-Identifier: GPL-2.0

//! The host's view: `mmap` of a guest_memfd file and its page faults.
//!
//! Only shared pages may be mapped, and only with `MAP_SHARED`: the host and the guest then see
//! the same memory. KVM reaches shared pages the same way, by GUP of the VMM's mapping.

use crate::{counters, share_math::Share, state::Gmem};
use kernel::{
    prelude::*,
    rgmem::folio::LockedFolio,
    rgmem::fs::File,
    rgmem::mm::virt::{flags, VmaNew},
};

/// `mmap(2)`: files created with `GUEST_MEMFD_FLAG_MMAP`, `MAP_SHARED` only.
pub(crate) fn mmap(gmem: &Gmem, vma: &VmaNew) -> Result {
    if !gmem.mmap {
        return Err(ENODEV);
    }
    if vma.flags() & flags::SHARED == 0 {
        return Err(EINVAL);
    }
    Ok(())
}

/// A fault at file page `index`: the page, zeroed on first use, if it is shared.
pub(crate) fn fault(gmem: &Gmem, file: &File, index: u64) -> Result<LockedFolio> {
    if index >= gmem.pages {
        return Err(EFAULT);
    }
    let mapping = file.mapping();
    let steady = gmem.shares.steady(mapping);
    let folio = gmem
        .folio_locked(&steady, mapping, index, Share::Shared)?
        .ok_or(EACCES)?;
    // Never a hugetlb folio: a block with shared pages is split (see `split.rs`).
    if !gmem.allocator.host_mappable(folio.order()) {
        return Err(EFAULT);
    }
    if !folio.test_uptodate() {
        folio.zero();
        folio.mark_uptodate();
    }
    counters::USER_FAULTS.inc();
    Ok(folio)
}
