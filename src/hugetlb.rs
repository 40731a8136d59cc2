// SPDX-License-Identifier: GPL-2.0

//! Folios from the hugetlb pool: 2 MiB or 1 GiB pages, reserved for the whole file when it is
//! created, as hugetlbfs does, so that a fault never finds the pool empty.
//!
//! The host never maps a hugetlb folio through a file's mapping, which is not a hugetlb VMA: a
//! block with shared pages is split so that each of those is a base page of its own
//! (`split.rs`).
//!
//! A whole folio that memory failure poisoned is lost to the guest only until the next fault on
//! it, which splits the bad pages off ([`HugetlbAllocator::isolate_poisoned`]): memory failure
//! calls the file with the folio locked, and a split needs the invalidate lock, which comes
//! before folio locks.
//!
//! Lock order: [`HugetlbAllocator`]'s `serial` is taken under the file's invalidate lock and
//! before the lock of the folio it allocates; nothing is locked under it but that folio, and
//! `poisoned`. An isolation holds it while it splits, with no folio lock. `poisoned` is taken
//! last: under a folio lock by memory failure, and under the invalidate lock by punching.

use crate::{
    alloc_math,
    allocator::{self, Allocator, PoisonOutcome, Serial},
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
    rgmem::sched,
    sync::Mutex,
};

/// How often an isolation is tried before the fault gives up with `EAGAIN`: the split needs the
/// folio idle, even of transient users.
const ISOLATE_TRIES: u32 = 3;

/// A whole folio memory failure poisoned.
struct Kept {
    folio: Poisoned,
    /// Its isolation failed: it stays lost whole until punched.
    whole: bool,
}

impl Kept {
    fn covers(&self, index: u64) -> bool {
        (self.folio.index()..self.folio.index() + self.folio.nr_pages()).contains(&index)
    }
}

/// Huge pages of one size, reserved for one file.
pub(crate) struct HugetlbAllocator {
    pool: Reservation,
    /// Held from taking a page until it is cached: the reservation has exactly one a block.
    serial: Pin<KBox<Mutex<()>>>,
    /// Whole folios memory failure poisoned, to isolate the bad pages of, or to retire once
    /// they leave the page cache: by a punch, or when dropped after `pool`, once the release has
    /// emptied the cache and the file's reservation is gone, which dissolving them needs.
    poisoned: Pin<KBox<Mutex<KVec<Option<Kept>>>>>,
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

    /// Takes the first poisoned folio `pick` selects out of the list.
    fn take_poisoned(&self, mut pick: impl FnMut(&Kept) -> bool) -> Option<Kept> {
        let mut list = self.poisoned.lock();
        let slot = list
            .as_mut_slice()
            .iter_mut()
            .find(|k| k.as_ref().is_some_and(&mut pick))?;
        slot.take()
    }

    /// Keeps `kept` in the list, in a free slot if any: taking out frees none. Returns whether
    /// there was room.
    fn keep(&self, kept: Kept) -> bool {
        let mut list = self.poisoned.lock();
        if let Some(slot) = list.as_mut_slice().iter_mut().find(|k| k.is_none()) {
            *slot = Some(kept);
        } else if list.push(Some(kept), GFP_KERNEL).is_err() {
            // Memory failure's reference keeps the huge page out of its pool for good.
            counters::BLOCKS_STRANDED.inc();
            return false;
        }
        true
    }

    /// Retires the poisoned folios that cached pages of `range`, which a punch has just freed.
    fn retire_punched(&self, range: &PageRange) {
        let slots = self.poisoned.lock().len();
        for i in 0..slots {
            // Not held while retiring, which frees folios: memory failure holds a folio lock
            // when it takes this lock.
            let taken = {
                let mut list = self.poisoned.lock();
                list.as_mut_slice().get_mut(i).and_then(|slot| {
                    let k = slot.as_ref()?;
                    let (start, end) = (k.folio.index(), k.folio.index() + k.folio.nr_pages());
                    (start < range.end() && end > range.start())
                        .then(|| slot.take())
                        .flatten()
                })
            };
            let Some(Kept { folio, whole }) = taken else {
                continue;
            };
            match folio.retire() {
                Ok(true) => counters::POISONED_RETIRED.inc(),
                Ok(false) => counters::BLOCKS_STRANDED.inc(),
                // Still cached: the punch refused this block.
                Err(folio) => {
                    self.keep(Kept { folio, whole });
                }
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
        let keep = |folio| {
            self.keep(Kept { folio, whole: true });
        };
        let r = split::punch_locked(&self.pool, guard, range, shared, &keep);
        // Also after `EBUSY`: blocks before the refused one may have gone.
        self.retire_punched(range);
        r
    }

    fn release_locked(&self, guard: &InvalidateGuard<'_>, pages: u64, parking: &Parking) {
        let keep = |folio| {
            self.keep(Kept { folio, whole: true });
        };
        split::release_locked(&self.pool, guard, pages, parking, &keep);
    }

    fn keep_poisoned(&self, folio: MfFolio<'_>) -> PoisonOutcome {
        let Ok(folio) = folio.into_hugetlb() else {
            return PoisonOutcome::Page;
        };
        let kept = Kept {
            folio,
            whole: false,
        };
        if self.keep(kept) {
            PoisonOutcome::Pending
        } else {
            PoisonOutcome::WholeFolio
        }
    }

    /// Splits the poisoned folio caching page `index`, if its isolation is pending, so that its
    /// bad pages are base pages of their own and the rest stays as large as it may: 2 MiB pieces
    /// of a 1 GiB folio, and base pages beside the bad ones. Where that cannot be had (no memory
    /// for the split, memory failure lost track of the bad pages), the folio stays lost whole.
    fn isolate_poisoned(&self, held: &dyn InvalidateHeld, index: u64) -> Result<bool> {
        // One isolation at a time, and no allocation meanwhile: a plan must stay true.
        let _serial = self.serial.lock();
        let Some(Kept { mut folio, .. }) = self.take_poisoned(|k| !k.whole && k.covers(index))
        else {
            return Ok(false);
        };
        for n in 0..ISOLATE_TRIES {
            if n > 0 {
                sched::cond_resched();
            }
            match self.pool.prepare_isolation(held, folio) {
                Ok(split) => {
                    counters::SPLITS.add(split.levels());
                    counters::SPLIT_NODES.add(split.nodes());
                    split.commit(held.mapping());
                    counters::MF_ISOLATED.inc();
                    return Ok(true);
                }
                Err((e, back)) if e == EAGAIN => folio = back,
                Err((_, back)) => {
                    counters::MF_WHOLE_FOLIO.inc();
                    self.keep(Kept {
                        folio: back,
                        whole: true,
                    });
                    return Ok(false);
                }
            }
        }
        self.keep(Kept {
            folio,
            whole: false,
        });
        Err(EAGAIN)
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
