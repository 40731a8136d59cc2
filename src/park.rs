// SPDX-License-Identifier: GPL-2.0

//! Huge pages that a file's release could not give back to their pool, because someone outside
//! held a piece of them: parked here, and tried again later, at growing intervals, until the last
//! outside reference is gone and they merge and go back.
//!
//! Lock order: [`Lot`]'s lock is taken last: at release under the file's invalidate lock, and
//! alone by the retry work.

use crate::counters;
use core::sync::atomic::{AtomicU32, Ordering};
use kernel::{
    new_mutex,
    prelude::*,
    rgmem::hugetlb::Parked,
    rgmem::workqueue::{Retry, Retrying},
    sync::Mutex,
};

/// The first wait before trying a parked block again, and the longest, in milliseconds.
const FIRST_MS: u32 = 10;
const LAST_MS: u32 = 1000;

/// The parked blocks of every file.
#[pin_data(PinnedDrop)]
pub(crate) struct Lot {
    #[pin]
    blocks: Mutex<KVec<Parked>>,
    /// The wait before the next retry.
    delay: AtomicU32,
}

/// The parked blocks, and the work that tries them again.
pub(crate) type Parking = Retrying<Lot>;

/// An empty parking, its work idle.
pub(crate) fn new() -> impl PinInit<Parking> {
    Retrying::new(pin_init!(Lot {
        blocks <- new_mutex!(KVec::new(), "rgmem_parking"),
        delay: AtomicU32::new(FIRST_MS),
    }))
}

/// Parks `block` until no one outside holds it.
pub(crate) fn park(parking: &Parking, block: Parked) {
    let lot = parking.data();
    // Dropped on failure, the block keeps its pieces pinned: out of the pool for good.
    if lot.blocks.lock().push(block, GFP_KERNEL).is_err() {
        counters::BLOCKS_STRANDED.inc();
        pr_warn!("a huge page pinned at release stays out of its pool\n");
        return;
    }
    counters::BLOCKS_PARKED.inc();
    lot.delay.store(FIRST_MS, Ordering::Relaxed);
    parking.schedule(FIRST_MS);
}

impl Lot {
    /// Frees every block no one holds any more; returns how many are left.
    fn free_unheld(&self) -> usize {
        let mut blocks = self.blocks.lock();
        let Ok(mut left) = KVec::with_capacity(blocks.len(), GFP_KERNEL) else {
            return blocks.len();
        };
        for block in core::mem::take(&mut *blocks) {
            match block.try_free() {
                Ok(()) => counters::BLOCKS_UNPARKED.inc(),
                // Within the capacity reserved above: cannot fail.
                Err(block) => drop(left.push(block, GFP_KERNEL)),
            }
        }
        *blocks = left;
        blocks.len()
    }
}

impl Retry for Lot {
    fn retry(&self) -> Option<u32> {
        if self.free_unheld() == 0 {
            return None;
        }
        let delay = self.delay.load(Ordering::Relaxed);
        self.delay
            .store((delay * 2).min(LAST_MS), Ordering::Relaxed);
        Some(delay)
    }
}

#[pinned_drop]
impl PinnedDrop for Lot {
    fn drop(self: Pin<&mut Self>) {
        // Unloading: a block still held now is never tried again.
        let left = self.free_unheld();
        if left > 0 {
            counters::BLOCKS_STRANDED.add(left as u64);
            pr_warn!(
                "{} huge pages pinned at unload stay out of their pool\n",
                left
            );
        }
    }
}
