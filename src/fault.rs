// SPDX-License-Identifier: GPL-2.0

//! KVM's private faults, and launch-time population: the page frames behind guest frames.

use crate::{alloc_math, allocator, counters, range::PAGE_SHIFT, share_math::Share, state::Gmem};
use kernel::{
    prelude::*,
    rgmem::fs::File,
    rgmem::kvm::{
        self,
        gmem::{self, Pfn, Populate},
        Kvm, MemorySlot,
    },
    rgmem::sched,
};

/// Returns the referenced frame backing `gfn` of `slot`, zeroed on first use and prepared for
/// the guest.
#[inline]
pub(crate) fn get_pfn(
    gmem: &Gmem,
    kvm: &Kvm,
    slot: &MemorySlot,
    file: &File,
    gfn: u64,
) -> Result<Pfn> {
    counters::GET_PFN.inc();
    let index = gfn - slot.base_gfn() + slot.gmem_pgoff();
    let mapping = file.mapping();
    // Held to the end: a conversion must not run between the check and the prepare.
    let steady = gmem.shares.steady(mapping);
    // A private fault on a shared page: KVM exits to user space with KVM_EXIT_MEMORY_FAULT.
    let folio = gmem
        .folio_locked(&steady, mapping, index, Share::Private)?
        .ok_or(EFAULT)?;
    let (start, order) = (folio.index() as u64, folio.order());
    let fresh = !folio.test_uptodate();
    if fresh {
        // The guest must never see what the memory held before.
        folio.zero();
    }
    // On every fault, not once per folio: a folio zeroed by the host's first touch, or handed
    // back to the host by a conversion to shared, must be prepared again once private, and the
    // architecture knows whether it already is (SEV-SNP reads its RMP). Upstream does the same
    // since it stopped tracking preparation.
    gmem::arch_prepare(kvm, gfn - (index - start), &folio)?;
    // Only once prepared, as C: a failed prepare must not turn a later populate into EEXIST.
    if fresh {
        folio.mark_uptodate();
        counters::PREPARES.inc();
    }
    Pfn::new(
        folio,
        index,
        alloc_math::max_mapping_order(order, index, gfn),
    )
}

/// Launch-time population (SEV-SNP), as KVM's `kvm_gmem_populate()`: each frame must be new
/// (`EEXIST` otherwise) and private, and becomes the guest's through the architecture's
/// callback. Returns the pages done, or the error if none was.
pub(crate) fn populate(
    gmem: &Gmem,
    kvm: &Kvm,
    slot: &MemorySlot,
    file: &File,
    req: &Populate,
) -> Result<u64> {
    let mapping = file.mapping();
    let _invalidate = mapping.invalidate_lock();
    let (start_gfn, src) = (req.gfn, req.src);
    let npages = req.npages.min(slot.base_gfn() + slot.npages() - start_gfn);
    let mut done = 0;
    let mut err = Ok(());
    while done < npages {
        if sched::signal_pending() {
            err = Err(EINTR);
            break;
        }
        let gfn = start_gfn + done;
        let index = gfn - slot.base_gfn() + slot.gmem_pgoff();
        let r = allocator::get_or_alloc(gmem.allocator, mapping, index, gmem.pages, false)
            .and_then(|(folio, new)| {
                if new {
                    counters::FOLIOS_ALLOCATED.inc();
                }
                if folio.test_hwpoison() {
                    return Err(EHWPOISON);
                }
                if folio.test_uptodate() {
                    return Err(EEXIST);
                }
                // Populate the largest private, equally aligned block inside the folio and the
                // request.
                let mut order = alloc_math::max_mapping_order(folio.order(), index, gfn);
                while (1u64 << order) > npages - done
                    || !range_is_private(gmem, kvm, gfn, index, 1 << order)
                {
                    if order == 0 {
                        return Err(EINVAL);
                    }
                    order -= 1;
                }
                let p = if src == 0 {
                    0
                } else {
                    src + (done << PAGE_SHIFT) as usize
                };
                req.post(kvm, gfn, &folio, index, p, order)?;
                folio.mark_uptodate();
                counters::PREPARES.inc();
                Ok(1u64 << order)
            });
        match r {
            Ok(n) => done += n,
            Err(e) => {
                err = Err(e);
                break;
            }
        }
    }
    match err {
        Err(e) if done == 0 => Err(e),
        _ => Ok(done),
    }
}

/// Whether the `n` guest frames from `gfn`, backed by file pages from `index`, are private,
/// by the attributes KVM's fault path reads.
fn range_is_private(gmem: &Gmem, kvm: &Kvm, gfn: u64, index: u64, n: u64) -> bool {
    if kvm::vm_memory_attributes() {
        kvm.range_is_private(gfn, gfn + n)
    } else {
        (index..index + n).all(|i| gmem.shares.get(i) == Share::Private)
    }
}
