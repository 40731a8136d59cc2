// SPDX-License-Identifier: GPL-2.0

//! The glue to KVM: rgmem as KVM's guest_memfd provider.

use crate::{
    binding_math, counters,
    fallocate::range_errno,
    fault,
    file::{self, Gmem, GmemFile},
    range::{self, PageRange, PAGE_SHIFT},
};
use kernel::{
    fs::{anon_inode::FileType, File},
    kvm::{
        gmem::{NewSlot, Pfn, Populate, Provider},
        Kvm, MemorySlot,
    },
    prelude::*,
    types::ARef,
};

/// Flags `KVM_CREATE_GUEST_MEMFD` accepts; none yet.
const VALID_FLAGS: u64 = 0;

/// rgmem, as KVM sees it.
pub(crate) struct Rgmem;

#[vtable]
impl Provider for Rgmem {
    type File = GmemFile;

    fn create(files: &FileType<GmemFile>, kvm: &Kvm, size: u64, flags: u64) -> Result<ARef<File>> {
        if flags & !VALID_FLAGS != 0 {
            return Err(EINVAL);
        }
        let pages = range::check_file_size(size).map_err(range_errno)?;
        file::create(files, kvm, pages)
    }

    fn bind(gmem: &Gmem, kvm: &Kvm, slot: NewSlot<'_>, offset: u64) -> Result {
        if *gmem.kvm != *kvm {
            return Err(EINVAL);
        }
        let range =
            binding_math::bind_range(offset, slot.slot().npages(), gmem.pages << PAGE_SHIFT)
                .map_err(range_errno)?;
        let mut bindings = gmem.bindings.lock();
        let bound = bindings
            .iter()
            .filter_map(|b| PageRange::new(b.start(), b.end()));
        if binding_math::overlaps_any(bound, &range) {
            return Err(EEXIST);
        }
        bindings.insert(slot, range.start(), range.end())?;
        counters::BINDINGS.inc();
        counters::BINDS.inc();
        Ok(())
    }

    fn unbind(_gmem: &Gmem, _slot: &MemorySlot) {
        counters::BINDINGS.dec();
    }

    fn get_pfn(gmem: &Gmem, kvm: &Kvm, slot: &MemorySlot, file: &File, gfn: u64) -> Result<Pfn> {
        fault::get_pfn(gmem, kvm, slot, file, gfn)
    }

    fn populate(
        gmem: &Gmem,
        kvm: &Kvm,
        slot: &MemorySlot,
        file: &File,
        req: &Populate,
    ) -> Result<u64> {
        fault::populate(gmem, kvm, slot, file, req)
    }
}
