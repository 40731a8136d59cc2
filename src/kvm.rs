// SPDX-License-Identifier: GPL-2.0

//! The glue to KVM: rgmem as KVM's guest_memfd provider.

use crate::{
    alloc_math,
    backing::FileAllocator,
    binding_math, counters, fault,
    file::{self, GmemFile},
    hugetlb,
    park::Parking,
    range::{self, PageRange, PAGE_SHIFT},
    share_math::Share,
    state::Gmem,
};
use kernel::{
    prelude::*,
    rgmem::fs::{anon_inode::FileType, File},
    rgmem::kvm::{
        self,
        gmem::{self, BindingsGuard, Capability, NewSlot, Pfn, Populate, Provider},
        Kvm, MemorySlot,
    },
    sync::Arc,
    types::ARef,
};

// The uAPI as the kernel-free parser knows it.
const _: () = assert!(alloc_math::FLAG_HUGETLB == gmem::FLAG_HUGETLB);
const _: () = assert!(alloc_math::HUGETLB_SIZE_SHIFT == gmem::HUGETLB_SIZE_SHIFT);
const _: () = assert!(alloc_math::HUGETLB_SIZE_MASK == gmem::HUGETLB_SIZE_MASK);

/// The `KVM_CREATE_GUEST_MEMFD` flags rgmem supports, as `KVM_CAP_GUEST_MEMFD_FLAGS` reports
/// them. Files start shared only where they hold the attributes KVM reads, that is when KVM keeps
/// none per VM; they may be backed by huge pages where the pool has some.
fn supported_flags() -> u64 {
    let mut flags = gmem::FLAG_MMAP;
    if !kvm::vm_memory_attributes() {
        flags |= gmem::FLAG_INIT_SHARED;
    }
    if hugetlb::available() {
        flags |= gmem::FLAG_HUGETLB;
    }
    flags
}

/// rgmem, as KVM sees it.
pub(crate) struct Rgmem;

#[vtable]
impl Provider for Rgmem {
    type File = GmemFile;
    type Context = Arc<Parking>;

    fn create(
        parking: &Arc<Parking>,
        files: &FileType<GmemFile>,
        kvm: &Kvm,
        size: u64,
        flags: u64,
    ) -> Result<ARef<File>> {
        let sizes = gmem::HUGETLB_SIZE_MASK << gmem::HUGETLB_SIZE_SHIFT;
        if flags & !(supported_flags() | sizes) != 0 {
            return Err(EINVAL);
        }
        let order = alloc_math::folio_order(flags).ok_or(EINVAL)?;
        let pages = range::check_file_size(size)?;
        let init = if flags & gmem::FLAG_INIT_SHARED != 0 {
            Share::Shared
        } else {
            Share::Private
        };
        // Checked before reserving anything: a refused file must leave the pool as it was.
        if init == Share::Shared && order > 0 {
            return Err(EINVAL);
        }
        // KVM reads the file's states, which conversions change, only when it keeps none per VM.
        let converts = !kvm::vm_memory_attributes();
        let allocator = FileAllocator::new(order, pages, converts)?;
        let spec = file::Spec {
            pages,
            mmap: flags & gmem::FLAG_MMAP != 0,
            init,
            converts,
        };
        file::create(files, parking, kvm, spec, allocator)
    }

    fn prepare(gmem: &Gmem, kvm: &Kvm, slot: &MemorySlot, offset: u64) -> Result<u64> {
        if *gmem.kvm != *kvm {
            return Err(EINVAL);
        }
        let range = binding_math::bind_range(offset, slot.npages(), gmem.pages << PAGE_SHIFT)?;
        Ok(range.start())
    }

    fn commit(_gmem: &Gmem, bindings: &mut BindingsGuard<'_>, new: NewSlot<'_>) -> Result {
        let range = PageRange::new(new.start(), new.end()).ok_or(EINVAL)?;
        let bound = bindings
            .iter()
            .filter_map(|b| PageRange::new(b.start(), b.end()));
        if binding_math::overlaps_any(bound, &range) {
            return Err(EEXIST);
        }
        bindings.insert(new)?;
        counters::BINDINGS.inc();
        counters::BINDS.inc();
        Ok(())
    }

    fn unbind(_gmem: &Gmem, _slot: &MemorySlot) {
        counters::BINDINGS.dec();
    }

    // Inlined with what it calls: each call and return costs on every fault.
    #[inline]
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

    fn is_private(gmem: &Gmem, slot: &MemorySlot, gfn: u64) -> bool {
        let index = gfn - slot.base_gfn() + slot.gmem_pgoff();
        gmem.shares.get(index) == Share::Private
    }

    fn is_uniform(gmem: &Gmem, slot: &MemorySlot, start: u64, end: u64) -> bool {
        // KVM asks only within the slot; anything else must not map huge.
        if start < slot.base_gfn() || end > slot.base_gfn() + slot.npages() {
            return false;
        }
        let index = start - slot.base_gfn() + slot.gmem_pgoff();
        gmem.shares.is_uniform(index, index + (end - start))
    }

    fn capability(_kvm: Option<&Kvm>, cap: Capability) -> u64 {
        match cap {
            Capability::Flags => supported_flags(),
            Capability::MemoryAttributes if !kvm::vm_memory_attributes() => {
                gmem::MEMORY_ATTRIBUTE_PRIVATE
            }
            Capability::MemoryAttributes => 0,
        }
    }
}
