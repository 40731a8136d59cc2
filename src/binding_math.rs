// SPDX-License-Identifier: GPL-2.0

//! Memslot binding arithmetic, free of kernel types so that the host can test it.

use crate::range::{PageRange, RangeError, PAGE_SHIFT};

/// The file pages a memslot of `npages` pages binds at byte `offset` of a file of `file_size`
/// bytes.
pub(crate) fn bind_range(
    offset: u64,
    npages: u64,
    file_size: u64,
) -> Result<PageRange, RangeError> {
    if npages > u64::MAX >> PAGE_SHIFT {
        return Err(RangeError::Overflow);
    }
    PageRange::from_bytes(offset, npages << PAGE_SHIFT, file_size)
}

/// Whether `new` shares a page with any of the `bound` ranges.
pub(crate) fn overlaps_any(bound: impl IntoIterator<Item = PageRange>, new: &PageRange) -> bool {
    bound.into_iter().any(|b| b.overlaps(new))
}

/// The guest frames `[start, end)` that map the file pages of `range` through a binding of the
/// file pages `binding` at guest frame `base_gfn`; `None` if they share no page.
pub(crate) fn gfns(binding: &PageRange, base_gfn: u64, range: &PageRange) -> Option<(u64, u64)> {
    let common = binding.intersect(range)?;
    let start = base_gfn + (common.start() - binding.start());
    Some((start, start + common.pages()))
}
