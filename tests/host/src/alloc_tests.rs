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

    /// KVM may map at order k only where file page and guest frame agree modulo 2^k.
    #[test]
    fn mapping_order_is_largest_congruent(order in 0u32..=18, index in 0u64..1 << 30, gfn in 0u64..1 << 30) {
        let k = max_mapping_order(order, index, gfn);
        prop_assert!(k <= order);
        prop_assert_eq!((index ^ gfn) & ((1 << k) - 1), 0);
        if k < order {
            prop_assert_ne!((index ^ gfn) & ((1 << (k + 1)) - 1), 0);
        }
    }
}
