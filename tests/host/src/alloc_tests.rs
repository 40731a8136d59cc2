// SPDX-License-Identifier: GPL-2.0

//! `alloc_math.rs`: folio placement and mapping orders.

use crate::alloc_math::*;
use proptest::prelude::*;

#[test]
fn base_pages_are_placed_where_asked() {
    assert_eq!(fit(5, 0, 8), (0, 5));
    assert_eq!(fit(0, 9, 512), (9, 0));
    // A 2M folio would pass the end of a 511-page file.
    assert_eq!(fit(0, 9, 511).0, 8);
}

proptest! {
    /// The chosen block holds `index`, is naturally aligned, lies in the file when it is bigger
    /// than a page, and no larger order up to the maximum would also fit.
    #[test]
    fn fit_is_the_largest_block_inside(index in 0u64..4096, max_order in 0u32..=18, extra in 1u64..4096) {
        let file_pages = index + extra;
        let (order, start) = fit(index, max_order, file_pages);
        prop_assert!(order <= max_order);
        prop_assert_eq!(start % (1 << order), 0);
        prop_assert!(start <= index && index < start + (1 << order));
        prop_assert!(start + (1 << order) <= file_pages);
        for bigger in order + 1..=max_order {
            let s = index & !((1u64 << bigger) - 1);
            prop_assert!(s + (1 << bigger) > file_pages);
        }
    }

    /// KVM maps at 4 KiB, 2 MiB or 1 GiB, never larger than the folio, and only where file page
    /// and guest frame agree modulo 2^k; the largest such order is chosen.
    #[test]
    fn mapping_order_is_largest_legal_congruent(order in 0u32..=18, index in 0u64..1 << 30, gfn in 0u64..1 << 30) {
        let k = max_mapping_order(order, index, gfn);
        prop_assert!(MAPPING_ORDERS.contains(&k));
        prop_assert!(k <= order);
        prop_assert_eq!((index ^ gfn) & ((1 << k) - 1), 0);
        for bigger in MAPPING_ORDERS.into_iter().filter(|&b| b > k && b <= order) {
            prop_assert_ne!((index ^ gfn) & ((1 << bigger) - 1), 0);
        }
    }

    /// Every flag word parses to an order, or is refused, exactly as the uAPI says.
    #[test]
    fn folio_order_follows_the_uapi(flags in any::<u64>()) {
        let log2 = (flags >> 58) as u32;
        let hugetlb = flags & (1 << 2) != 0;
        let want = match (hugetlb, log2) {
            (false, 0) => Some(0),
            (true, 13..=30) => Some(log2 - 12),
            _ => None,
        };
        prop_assert_eq!(folio_order(flags), want);
    }
}

#[test]
fn mapping_orders_round_down_to_kvm_levels() {
    // A 2 MiB folio whose guest frame agrees on 12 bits: 2 MiB.
    assert_eq!(max_mapping_order(9, 0x200, 0x1200), 9);
    // Agreeing on 8 bits only: 4 KiB, not an order KVM cannot map.
    assert_eq!(max_mapping_order(9, 0x100, 0x200), 0);
    // A 1 GiB folio mapped 2 MiB-aligned only.
    assert_eq!(max_mapping_order(18, 0x200, 0x40400), 9);
    assert_eq!(max_mapping_order(18, 0, 0x40000), 18);
    // A 4-page folio (an order KVM does not map) gives 4 KiB.
    assert_eq!(max_mapping_order(2, 0, 0), 0);
}

#[test]
fn hugetlb_flags_parse() {
    let (h, shift) = (FLAG_HUGETLB, HUGETLB_SIZE_SHIFT);
    assert_eq!(folio_order(0), Some(0));
    assert_eq!(folio_order(0b11), Some(0));
    assert_eq!(folio_order(h | 21 << shift), Some(9));
    assert_eq!(folio_order(h | 30 << shift), Some(18));
    // The flag without a size, a size without the flag, a base page, past 1 GiB.
    assert_eq!(folio_order(h), None);
    assert_eq!(folio_order(21 << shift), None);
    assert_eq!(folio_order(h | 12 << shift), None);
    assert_eq!(folio_order(h | 31 << shift), None);
}

proptest! {
    /// The cap keeps the largest legal order whose block fits, never more than asked.
    #[test]
    fn cap_keeps_the_largest_fitting(order in prop::sample::select(vec![0u32, 9, 18]), fits9: bool, fits18: bool) {
        let k = cap_mapping_order(order, |k| if k == 9 { fits9 } else { fits18 });
        let want = if order >= 18 && fits18 {
            18
        } else if order >= 9 && fits9 {
            9
        } else {
            0
        };
        prop_assert_eq!(k, want);
    }
}
