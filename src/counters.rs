// SPDX-License-Identifier: GPL-2.0

//! What rgmem has done, in `/sys/kernel/debug/rgmem/`.
//!
//! Tests read these to prove that rgmem, not KVM's own guest_memfd, served them.

use core::sync::atomic::{AtomicU64, Ordering};
use kernel::{c_str, rgmem::debugfs::Dir, rgmem::fs::Mapping, str::CStr};

/// An event count, or a gauge of live objects.
pub(crate) struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    pub(crate) fn inc(&self) {
        self.add(1);
    }

    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn dec(&self) {
        self.sub(1);
    }

    pub(crate) fn sub(&self, n: u64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// guest_memfd files created.
pub(crate) static FILES_CREATED: Counter = Counter::new();
/// guest_memfd files not yet released.
pub(crate) static FILES_LIVE: Counter = Counter::new();
/// Folios added to a file's page cache.
pub(crate) static FOLIOS_ALLOCATED: Counter = Counter::new();
/// Memslots bound now.
pub(crate) static BINDINGS: Counter = Counter::new();
/// Memslot bindings made.
pub(crate) static BINDS: Counter = Counter::new();
/// Private faults served.
pub(crate) static GET_PFN: Counter = Counter::new();
/// Folios zeroed for the guest's first use (the arch prepare hook runs on every private fault).
pub(crate) static PREPARES: Counter = Counter::new();
/// Invalidations of guest mappings.
pub(crate) static INVALIDATIONS: Counter = Counter::new();
/// Hole punches.
pub(crate) static PUNCH_HOLES: Counter = Counter::new();
/// Poisoned folios reported by memory failure.
pub(crate) static MEMORY_FAILURES: Counter = Counter::new();
/// Of those, folios with a shared page: the kernel unmapped them from the host and signalled
/// whom its kill policy names.
pub(crate) static MF_SHARED: Counter = Counter::new();
/// Of those, private folios lost to the guest alone; the rest of the file is untouched.
pub(crate) static MF_ISOLATED: Counter = Counter::new();
/// Of those, huge folios lost to the guest whole, for the sake of one bad page.
pub(crate) static MF_WHOLE_FOLIO: Counter = Counter::new();
/// Conversions that changed at least one page.
pub(crate) static CONVERSIONS: Counter = Counter::new();
/// Faults on the host's mappings served.
pub(crate) static USER_FAULTS: Counter = Counter::new();
/// Huge folios split, each one level (1 GiB to 2 MiB, or 2 MiB to base pages) counted once.
pub(crate) static SPLITS: Counter = Counter::new();
/// XArray nodes that splits took, all allocated before their commits.
pub(crate) static SPLIT_NODES: Counter = Counter::new();
/// Pieces merged back into a 2 MiB piece or a whole huge folio.
pub(crate) static MERGES: Counter = Counter::new();
/// Huge pages parked at release, because someone outside held a piece of them.
pub(crate) static BLOCKS_PARKED: Counter = Counter::new();
/// Parked huge pages given back to their pool once no one held them.
pub(crate) static BLOCKS_UNPARKED: Counter = Counter::new();
/// Huge pages left out of their pool for good: parking them failed, or rgmem was unloaded first,
/// or memory failure poisoned them and they could not be dissolved.
pub(crate) static BLOCKS_STRANDED: Counter = Counter::new();
/// Huge pages memory failure poisoned, dissolved once their file let them go: the healthy base
/// pages went back to the page allocator, the poisoned ones out of use.
pub(crate) static POISONED_RETIRED: Counter = Counter::new();

const ALL: [(&CStr, &Counter); 22] = [
    (c_str!("files_created"), &FILES_CREATED),
    (c_str!("files_live"), &FILES_LIVE),
    (c_str!("folios_allocated"), &FOLIOS_ALLOCATED),
    (c_str!("bindings"), &BINDINGS),
    (c_str!("binds"), &BINDS),
    (c_str!("get_pfn"), &GET_PFN),
    (c_str!("prepares"), &PREPARES),
    (c_str!("invalidations"), &INVALIDATIONS),
    (c_str!("punch_holes"), &PUNCH_HOLES),
    (c_str!("memory_failures"), &MEMORY_FAILURES),
    (c_str!("memory_failures_shared"), &MF_SHARED),
    (c_str!("memory_failures_isolated"), &MF_ISOLATED),
    (c_str!("memory_failures_whole_folio"), &MF_WHOLE_FOLIO),
    (c_str!("conversions"), &CONVERSIONS),
    (c_str!("user_faults"), &USER_FAULTS),
    (c_str!("splits"), &SPLITS),
    (c_str!("split_nodes"), &SPLIT_NODES),
    (c_str!("merges"), &MERGES),
    (c_str!("blocks_parked"), &BLOCKS_PARKED),
    (c_str!("blocks_unparked"), &BLOCKS_UNPARKED),
    (c_str!("blocks_stranded"), &BLOCKS_STRANDED),
    (c_str!("poisoned_retired"), &POISONED_RETIRED),
];

/// Shows every counter in `dir`.
pub(crate) fn publish(dir: &Dir) {
    for (name, counter) in ALL {
        dir.counter(name, &counter.0);
    }
}

// Nothing counts folios as they leave a page cache: the page cache's `free_folio` callback, called
// for each, is left out where the architecture has no use for it, as in KVM. What left is what
// was allocated and is no longer cached.

/// Folios in the page caches `for_each` visits, given by the page cache and the order of every
/// folio in it.
pub(crate) fn folios_cached(for_each: impl FnOnce(&mut dyn FnMut(&Mapping, u32))) -> u64 {
    let mut n = 0;
    for_each(&mut |mapping, order| n += mapping.nr_pages() as u64 >> order);
    n
}

/// Folios that left a page cache, given the folios of live files `cached` just before: exact when
/// no file allocates or frees meanwhile.
pub(crate) fn folios_freed(cached: u64) -> u64 {
    FOLIOS_ALLOCATED.get().saturating_sub(cached)
}
