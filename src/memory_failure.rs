// SPDX-License-Identifier: GPL-2.0

//! Memory failure in a guest_memfd folio.
//!
//! The folio stays in the file, so that whoever touches the page next learns of the loss: a
//! host access gets `SIGBUS`, a private fault `EHWPOISON`, a conversion `EHWPOISON` with the
//! page's offset. Punching the page is how user space lets it go.
//!
//! By then the kernel has unmapped the page from the host and signalled the processes its kill
//! policy names; what is left here is the guest's mappings.

use crate::{counters, invalidate, range::PageRange, state::Gmem};
use kernel::{rgmem::folio::Folio, rgmem::fs::filemap::MfResult};

/// Memory failure poisoned `folio`, which is locked and in `gmem`'s page cache.
pub(crate) fn error_remove_folio(gmem: &Gmem, folio: &Folio) -> MfResult {
    counters::MEMORY_FAILURES.inc();
    let start = folio.index() as u64;
    let Some(range) = PageRange::new(start, start + folio.nr_pages() as u64) else {
        return MfResult::Failed;
    };
    // Only the bindings lock is taken here: the folio lock is held, and hole punching holds the
    // invalidate lock while it takes folio locks.
    drop(invalidate::pages(&gmem.bindings.lock(), &range));
    if gmem.shares.any_shared(range.start(), range.end()) {
        counters::MF_SHARED.inc();
    } else {
        counters::MF_ISOLATED.inc();
    }
    // The page cache keeps the folio, and its pins with it.
    MfResult::Delayed
}
