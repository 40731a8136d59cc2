// SPDX-License-Identifier: GPL-2.0

//! Folio placement decisions, free of kernel types so that the host can test them.

use crate::range::{MAX_ORDER, PAGE_SHIFT};

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

/// The orders at which KVM maps guest memory: 1 GiB, 2 MiB and 4 KiB pages, largest first.
pub(crate) const MAPPING_ORDERS: [u32; 3] = [18, 9, 0];

/// The largest order at which KVM may map guest frame `gfn`, backed by file page `index` of a
/// folio of `folio_order` pages: one of [`MAPPING_ORDERS`] whose block lies in the folio (it
/// always does, folios being aligned) and starts at an equally aligned guest frame.
pub(crate) fn max_mapping_order(folio_order: u32, index: u64, gfn: u64) -> u32 {
    MAPPING_ORDERS
        .into_iter()
        .find(|&k| k <= folio_order && (index ^ gfn) & ((1u64 << k) - 1) == 0)
        .unwrap_or(0)
}

/// The largest of [`MAPPING_ORDERS`] up to `order` whose block `fits`, as the caller judges it;
/// a base page always does.
pub(crate) fn cap_mapping_order(order: u32, fits: impl Fn(u32) -> bool) -> u32 {
    MAPPING_ORDERS
        .into_iter()
        .find(|&k| k == 0 || (k <= order && fits(k)))
        .unwrap_or(0)
}

/// `KVM_CREATE_GUEST_MEMFD`'s flag for a file backed by hugetlb pages (uAPI).
pub(crate) const FLAG_HUGETLB: u64 = 1 << 2;
/// Where the flags hold log2 of the huge page size, in bytes (uAPI).
pub(crate) const HUGETLB_SIZE_SHIFT: u32 = 58;
/// The mask of that field, once shifted down (uAPI).
pub(crate) const HUGETLB_SIZE_MASK: u64 = 0x3f;

/// The order of the folios that a file created with `flags` asks for, in base pages: 0 without
/// [`FLAG_HUGETLB`], the page size's with it. `None` when the two disagree: a size without the
/// flag, the flag without a size, or a size no larger than a base page or than 1 GiB.
///
/// The one place that knows how the size is encoded.
pub(crate) fn folio_order(flags: u64) -> Option<u32> {
    let log2 = ((flags >> HUGETLB_SIZE_SHIFT) & HUGETLB_SIZE_MASK) as u32;
    match (flags & FLAG_HUGETLB != 0, log2) {
        (false, 0) => Some(0),
        (true, l) if l > PAGE_SHIFT && l - PAGE_SHIFT <= MAX_ORDER => Some(l - PAGE_SHIFT),
        _ => None,
    }
}
