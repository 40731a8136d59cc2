// SPDX-License-Identifier: GPL-2.0

//! Folios from the hugetlb pool: 2 MiB or 1 GiB pages, reserved for the whole file when it is
//! created, as hugetlbfs does, so that a fault never finds the pool empty.
//!
//! The host never maps a hugetlb folio through a file's mapping, which is not a hugetlb VMA: a
//! block with shared pages is split so that each of those is a base page of its own
//! (`split.rs`).
//!
//! Lock order: [`HugetlbAllocator`]'s `serial` is taken under the file's invalidate lock and
//! before the lock of the folio it allocates; nothing is locked under it but that folio.

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
        filemap::{InvalidateGuard, InvalidateHeld, NewFolio},
        Mapping,
    },
    rgmem::hugetlb::{Hstate, Reservation},
    sync::Mutex,
};

/// Huge pages of one size, reserved for one file.
pub(crate) struct HugetlbAllocator {
    pool: Reservation,
    /// Held from taking a page until it is cached: the reservation has exactly one a block.
    serial: Pin<KBox<Mutex<()>>>,
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
        })
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
        split::punch_locked(&self.pool, guard, range, shared)
    }

    fn release_locked(&self, guard: &InvalidateGuard<'_>, pages: u64, parking: &Parking) {
        split::release_locked(&self.pool, guard, pages, parking);
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
