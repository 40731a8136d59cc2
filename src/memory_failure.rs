// SPDX-License-Identifier: GPL-2.0

//! Memory failure in a guest_memfd folio.
//!
//! The folio stays in the file: what to do about the error is user space's decision. Guest
//! mappings of it go away now, and the next private fault on it gets `EHWPOISON`.

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
    MfResult::Delayed
}
