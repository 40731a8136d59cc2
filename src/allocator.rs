// SPDX-License-Identifier: GPL-2.0

//! Where folios come from.
//!
//! Every folio of a file comes from the file's [`Allocator`]; nothing else allocates, and no
//! other code asks which allocator it is.

use crate::alloc_math;
use kernel::{
    prelude::*,
    rgmem::folio::LockedFolio,
    rgmem::fs::{filemap::NewFolio, Mapping},
};

/// A source of folios for a file's page cache.
pub(crate) trait Allocator: Send + Sync {
    /// Allocates a folio to cache file page `index` of a file of `file_pages` pages. Returns it
    /// with the index of its first page.
    fn alloc(&self, mapping: &Mapping, index: u64, file_pages: u64) -> Result<(NewFolio, u64)>;
}

/// Base pages from the page allocator, with the mapping's GFP mask.
pub(crate) struct PageAllocator;

impl Allocator for PageAllocator {
    fn alloc(&self, mapping: &Mapping, index: u64, file_pages: u64) -> Result<(NewFolio, u64)> {
        let (order, start) = alloc_math::fit(index, 0, file_pages);
        Ok((mapping.alloc_folio(order)?, start))
    }
}

/// Returns the locked folio caching file page `index`, allocating it if there is none, and
/// whether it is new. The caller counts new folios in [`crate::counters::FOLIOS_ALLOCATED`].
///
/// With `likely_absent`, as when the page before was just allocated, the folio is inserted
/// without looking first; a folio already there is found on `EEXIST`.
#[inline]
pub(crate) fn get_or_alloc(
    allocator: &dyn Allocator,
    mapping: &Mapping,
    index: u64,
    file_pages: u64,
    mut likely_absent: bool,
) -> Result<(LockedFolio, bool)> {
    loop {
        if !likely_absent {
            if let Some(folio) = mapping.lock_folio(index as usize)? {
                return Ok((folio, false));
            }
        }
        let (folio, start) = allocator.alloc(mapping, index, file_pages)?;
        match mapping.add_folio(folio, start as usize) {
            Ok(folio) => return Ok((folio, true)),
            // Someone else cached it first; use theirs.
            Err(e) if e == EEXIST => likely_absent = false,
            Err(e) => return Err(e),
        }
    }
}
