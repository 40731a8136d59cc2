// SPDX-License-Identifier: GPL-2.0

//! Memory failure in a guest_memfd folio.
//!
//! The folio stays in the file, so that whoever touches the page next learns of the loss: a
//! host access gets `SIGBUS`, a private fault `EHWPOISON`, a conversion `EHWPOISON` with the
//! page's offset. Punching the page is how user space lets it go.
//!
//! By then the kernel has unmapped the page from the host and signalled the processes its kill
//! policy names; what is left here is the guest's mappings.
//!
//! A whole hugetlb folio is lost with its bad page, as it would be in C, until the next fault on
//! it splits the bad page off (`hugetlb.rs`). The pieces of a split one are neither on an LRU nor
//! hugetlb, and memory failure only flags their bad page: the next fault on it gets `EHWPOISON`.

use crate::{allocator::PoisonOutcome, counters, invalidate, range::PageRange, state::Gmem};
use kernel::rgmem::fs::filemap::{MfFolio, MfResult};

/// Memory failure poisoned `folio`, which is locked and in `gmem`'s page cache.
pub(crate) fn error_remove_folio(gmem: &Gmem, folio: MfFolio<'_>) -> MfResult {
    counters::MEMORY_FAILURES.inc();
    let start = folio.index() as u64;
    let Some(range) = PageRange::new(start, start + folio.nr_pages() as u64) else {
        return MfResult::Failed;
    };
    // Only the bindings lock is taken here: the folio lock is held, and hole punching holds the
    // invalidate lock while it takes folio locks.
    drop(invalidate::pages(&gmem.bindings.lock(), &range));
    let shared = gmem.shares.any_shared(range.start(), range.end());
    // A whole hugetlb folio is private: a block holding a shared page is split. Its pages go
    // with the bad one, which hugetlb lists apart, until the next fault isolates it; counted
    // then.
    match gmem.allocator.keep_poisoned(folio) {
        PoisonOutcome::Pending => {}
        PoisonOutcome::WholeFolio => counters::MF_WHOLE_FOLIO.inc(),
        PoisonOutcome::Page if shared => counters::MF_SHARED.inc(),
        PoisonOutcome::Page => counters::MF_ISOLATED.inc(),
    }
    // The page cache keeps the folio, and its pins with it.
    MfResult::Delayed
}
