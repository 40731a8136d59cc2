// SPDX-License-Identifier: GPL-2.0

//! KVM's private faults, and launch-time population: the page frames behind guest frames.

use crate::{alloc_math, allocator, counters, range::PAGE_SHIFT, share_math::Share, state::Gmem};
use kernel::{
    prelude::*,
    rgmem::fs::{
        filemap::{InvalidateGuard, InvalidateHeld},
        File,
    },
    rgmem::kvm::{
        self,
        gmem::{self, Pfn, Populate},
        Kvm, MemorySlot,
    },
    rgmem::mm,
    rgmem::sched,
    rgmem::uaccess::{self, PagefaultsDisabled},
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
    // KVM's own tracking of mixed ranges does not see the file's states where it keeps none per
    // VM: a huge mapping must not cover pages of both.
    let order =
        alloc_math::cap_mapping_order(alloc_math::max_mapping_order(order, index, gfn), |k| {
            let first = index & !((1 << k) - 1);
            gmem.shares.is_uniform(first, first + (1 << k))
        });
    // A page of a piece may have failed after the split made it: the guest must not map that one
    // with the rest.
    let poisoned_inside = order > 0
        && mm::any_hwpoison()
        && folio
            .first_hwpoisoned(start, folio.next_index() as u64)
            .is_some();
    Pfn::new(folio, index, if poisoned_inside { 0 } else { order })
}

/// Tries of one block whose copy from user memory faulted, each after faulting the source in.
const POPULATE_TRIES: u32 = 3;

/// Launch-time population (SEV-SNP), as KVM's `kvm_gmem_populate()`: each frame must be new
/// (`EEXIST` otherwise) and private, and becomes the guest's through the architecture's
/// callback. Returns the pages done, or the error if none was.
///
/// The callback copies from user memory with the invalidate lock held, and the source may be a
/// shared page of this very file, whose fault takes that lock: it runs with page faults
/// disabled, and a copy that faults is retried with the lock dropped and the source faulted in.
pub(crate) fn populate(
    gmem: &Gmem,
    kvm: &Kvm,
    slot: &MemorySlot,
    file: &File,
    req: &Populate,
) -> Result<u64> {
    let mapping = file.mapping();
    let (start_gfn, src) = (req.gfn, req.src);
    let npages = req.npages.min(slot.base_gfn() + slot.npages() - start_gfn);
    let mut done = 0;
    // The retries of the block at `done`, whose copy faulted.
    let (mut tries, mut tried_at) = (0, 0);
    let err = loop {
        let r = {
            let invalidate = mapping.invalidate_lock();
            populate_locked(&invalidate, gmem, kvm, slot, req, npages, &mut done)
        };
        if done != tried_at {
            (tries, tried_at) = (0, done);
        }
        match r {
            Ok(()) => break Ok(()),
            // Only a copy from a source faults: the block's at `done`.
            Err(Faulted(len)) if tries < POPULATE_TRIES => {
                tries += 1;
                if !uaccess::fault_in_readable(src.wrapping_add((done << PAGE_SHIFT) as usize), len)
                {
                    break Err(EFAULT);
                }
            }
            Err(Faulted(_)) => break Err(EFAULT),
            Err(Failed(e)) => break Err(e),
        }
    };
    match err {
        Err(e) if done == 0 => Err(e),
        _ => Ok(done),
    }
}

/// Why [`populate_locked`] stopped early.
enum Stop {
    /// The copy of a block of this many bytes faulted.
    Faulted(usize),
    Failed(Error),
}
use Stop::{Failed, Faulted};

/// Populates from page `*done` on, counting in `done`, with the file's invalidate lock held.
fn populate_locked(
    invalidate: &InvalidateGuard<'_>,
    gmem: &Gmem,
    kvm: &Kvm,
    slot: &MemorySlot,
    req: &Populate,
    npages: u64,
    done: &mut u64,
) -> core::result::Result<(), Stop> {
    let mapping = invalidate.mapping();
    let (start_gfn, src) = (req.gfn, req.src);
    while *done < npages {
        if sched::signal_pending() {
            return Err(Failed(EINTR));
        }
        let gfn = start_gfn + *done;
        let index = gfn - slot.base_gfn() + slot.gmem_pgoff();
        let (folio, new) =
            allocator::get_or_alloc(&*gmem.allocator, mapping, index, gmem.pages, false)
                .map_err(Failed)?;
        if new {
            counters::FOLIOS_ALLOCATED.inc();
        }
        if folio.page_hwpoisoned(index) {
            return Err(Failed(EHWPOISON));
        }
        if folio.test_uptodate() {
            return Err(Failed(EEXIST));
        }
        // Populate the largest private, equally aligned block inside the folio and the request.
        let mut order = alloc_math::max_mapping_order(folio.order(), index, gfn);
        while (1u64 << order) > npages - *done
            || !range_is_private(gmem, kvm, gfn, index, 1 << order)
        {
            if order == 0 {
                return Err(Failed(EINVAL));
            }
            order -= 1;
        }
        let p = if src == 0 {
            0
        } else {
            src.wrapping_add((*done << PAGE_SHIFT) as usize)
        };
        let r = {
            let _nofault = PagefaultsDisabled::new();
            req.post(kvm, gfn, &folio, index, p, order)
        };
        match r {
            Err(e) if e == EFAULT && p != 0 => {
                return Err(Faulted((1usize << order) << PAGE_SHIFT))
            }
            r => r.map_err(Failed)?,
        }
        folio.mark_uptodate();
        counters::PREPARES.inc();
        *done += 1u64 << order;
    }
    Ok(())
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
