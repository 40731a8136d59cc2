// SPDX-License-Identifier: GPL-2.0

//! Folios from the hugetlb pool: 2 MiB or 1 GiB pages, reserved for the whole file when it is
//! created, as hugetlbfs does, so that a fault never finds the pool empty.
//!
//! The host never maps a hugetlb folio through a file's mapping, which is not a hugetlb VMA: a
//! block with shared pages is split so that each of those is a base page of its own
//! (`split.rs`).
//!
//! Lock order: [`HugetlbAllocator`]'s `serial` is taken under the file's invalidate lock and
//! before the lock of the folio it allocates; nothing is locked under it but that folio. Its
//! `poisoned` is taken last: under a folio lock by memory failure, and under the invalidate
//! lock by punching.

use crate::{
    alloc_math,
    allocator::{self, Allocator, Serial},
    counters,
    park::Parking,
    range::PageRange,
    split::{self, Reshape, SharedIn},
};
use kernel::{
    new_mutex,
    prelude::*,
    rgmem::fs::{
        filemap::{InvalidateGuard, InvalidateHeld, MfFolio, NewFolio},
        Mapping,
    },
    rgmem::hugetlb::{Hstate, Poisoned, Reservation},
    sync::Mutex,
};

/// Huge pages of one size, reserved for one file.
pub(crate) struct HugetlbAllocator {
    pool: Reservation,
    /// Held from taking a page until it is cached: the reservation has exactly one a block.
    serial: Pin<KBox<Mutex<()>>>,
    /// Whole folios memory failure poisoned, to retire once they leave the page cache: by a
    /// punch, or when dropped after `pool`, once the release has emptied the cache and the
    /// file's reservation is gone, which dissolving them needs.
    poisoned: Pin<KBox<Mutex<KVec<Poisoned>>>>,
}

impl HugetlbAllocator {
    /// Reserves the pages of a file of `pages` base pages, in folios of `order`, which split if
    /// the file `converts`: `EINVAL` if the kernel has no pool of that size or the file is not
    /// made of whole pages of it, `ENOMEM` if the pool cannot reserve them all.
    pub(crate) fn new(order: u32, pages: u64, converts: bool) -> Result<Self> {
        let hstate = Hstate::of_order(order).ok_or(EINVAL)?;
        if pages % (1 << order) != 0 {
            return Err(EINVAL);
        }
        Ok(Self {
            pool: Reservation::new(hstate, pages >> order, converts)?,
            serial: KBox::pin_init(new_mutex!((), "rgmem_hugetlb_alloc"), GFP_KERNEL)?,
            poisoned: KBox::pin_init(
                new_mutex!(KVec::new(), "rgmem_hugetlb_poisoned"),
                GFP_KERNEL,
            )?,
        })
    }

    /// Retires the poisoned folios that cached pages of `range`, which a punch has just freed.
    fn retire_punched(&self, range: &PageRange) {
        // Not held while retiring, which frees folios: memory failure holds a folio lock when it
        // takes this lock.
        let taken = core::mem::take(&mut *self.poisoned.lock());
        let mut kept = KVec::with_capacity(taken.len(), GFP_KERNEL).ok();
        for p in taken {
            let (start, end) = (p.index(), p.index() + p.nr_pages());
            let p = if end <= range.start() || start >= range.end() {
                Err(p)
            } else {
                p.retire()
            };
            match p {
                Ok(true) => counters::POISONED_RETIRED.inc(),
                Ok(false) => counters::BLOCKS_STRANDED.inc(),
                Err(p) => match kept.as_mut() {
                    // Within the capacity taken above: cannot fail.
                    Some(kept) => {
                        let _ = kept.push(p, GFP_KERNEL);
                    }
                    // Dropped, it retires when the page cache lets it go, or stays held.
                    None => drop(p),
                },
            }
        }
        let mut poisoned = self.poisoned.lock();
        for p in kept.into_iter().flatten() {
            if poisoned.push(p, GFP_KERNEL).is_err() {
                counters::BLOCKS_STRANDED.inc();
            }
        }
    }
}

impl Allocator for HugetlbAllocator {
    fn alloc(&self, _mapping: &Mapping, index: u64, _file_pages: u64) -> Result<(NewFolio, u64)> {
        // The file is whole pages of this size: the block holding `index` lies inside it.
        let (_, start) = alloc_math::fit(index, self.order(), u64::MAX);
        Ok((self.pool.alloc_folio()?, start))
    }

    fn serialize(&self) -> Option<Serial<'_>> {
        Some(self.serial.lock())
    }

    fn order(&self) -> u32 {
        self.pool.hstate().order()
    }

    fn host_mappable(&self, order: u32) -> bool {
        // Only a piece split down to a base page is not hugetlb, and never a 2 MiB one.
        order == 0
    }

    fn prepare_shared(
        &self,
        guard: &InvalidateGuard<'_>,
        range: &PageRange,
        shared: SharedIn<'_>,
    ) -> Result<Reshape> {
        let populate = |index| {
            let mapping = guard.mapping();
            let (_folio, new) = allocator::get_or_alloc(self, mapping, index, u64::MAX, true)?;
            if new {
                counters::FOLIOS_ALLOCATED.inc();
            }
            Ok(())
        };
        split::prepare_shared(&self.pool, &populate, guard, range, shared)
    }

    fn merge(&self, mapping: &Mapping, range: &PageRange, shared: SharedIn<'_>) {
        split::merge(&self.pool, mapping, range, shared);
    }

    fn punch_locked(
        &self,
        guard: &InvalidateGuard<'_>,
        range: &PageRange,
        shared: SharedIn<'_>,
    ) -> Result {
        split::punch_locked(&self.pool, guard, range, shared)?;
        self.retire_punched(range);
        Ok(())
    }

    fn release_locked(&self, guard: &InvalidateGuard<'_>, pages: u64, parking: &Parking) {
        split::release_locked(&self.pool, guard, pages, parking);
    }

    fn keep_poisoned(&self, folio: MfFolio<'_>) -> bool {
        let Ok(poisoned) = folio.into_hugetlb() else {
            return false;
        };
        // Without room, memory failure's reference keeps the huge page out of its pool for good.
        if self.poisoned.lock().push(poisoned, GFP_KERNEL).is_err() {
            counters::BLOCKS_STRANDED.inc();
        }
        true
    }
}

/// Whether the pool has huge pages of a size a file may ask for.
pub(crate) fn available() -> bool {
    alloc_math::MAPPING_ORDERS
        .into_iter()
        .filter(|&order| order > 0)
        .filter_map(Hstate::of_order)
        .any(|h| h.nr_pages() > 0)
}
