// SPDX-License-Identifier: GPL-2.0

//! Folio placement decisions, free of kernel types so that the host can test them.

/// Picks the folio that caches file page `index` of a file of `file_pages` pages: the largest
/// order up to `max_order` whose naturally aligned block lies inside the file. Returns the order
/// and the block's first page.
pub(crate) fn fit(index: u64, max_order: u32, file_pages: u64) -> (u32, u64) {
    let mut order = max_order;
    loop {
        let start = index & !((1u64 << order) - 1);
        let inside = start
            .checked_add(1 << order)
            .is_some_and(|end| end <= file_pages);
        if order == 0 || inside {
            return (order, start);
        }
        order -= 1;
    }
}

/// The largest order at which KVM may map guest frame `gfn`, backed by file page `index` of a
/// folio of `folio_order` pages: the page's block must lie in the folio (it always does, folios
/// being aligned) and start at an equally aligned guest frame.
pub(crate) fn max_mapping_order(folio_order: u32, index: u64, gfn: u64) -> u32 {
    (0..=folio_order)
        .rev()
        .find(|&k| (index ^ gfn) & ((1u64 << k) - 1) == 0)
        .unwrap_or(0)
}
