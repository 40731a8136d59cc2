// SPDX-License-Identifier: GPL-2.0

//! `binding_math.rs` against per-page models.

use crate::binding_math::*;
use crate::range::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

fn pages(r: &PageRange) -> BTreeSet<u64> {
    (r.start()..r.end()).collect()
}

fn small_range() -> impl Strategy<Value = PageRange> {
    (0u64..64, 1u64..16).prop_map(|(s, n)| PageRange::new(s, s + n).unwrap())
}

#[test]
fn bind_range_edges() {
    let size = 16 * PAGE_SIZE;
    assert_eq!(bind_range(0, 16, size), Ok(PageRange::new(0, 16).unwrap()));
    assert_eq!(
        bind_range(PAGE_SIZE, 16, size),
        Err(RangeError::OutOfBounds)
    );
    assert_eq!(bind_range(1, 1, size), Err(RangeError::Unaligned));
    assert_eq!(bind_range(0, 0, size), Err(RangeError::Empty));
    assert_eq!(bind_range(0, u64::MAX, size), Err(RangeError::Overflow));
    assert_eq!(
        bind_range(u64::MAX & !(PAGE_SIZE - 1), 1, u64::MAX),
        Err(RangeError::Overflow)
    );
}

proptest! {
    /// A set of bindings built by refusing overlaps never shares a page.
    #[test]
    fn accepted_bindings_are_disjoint(ranges in prop::collection::vec(small_range(), 0..24)) {
        let mut bound: Vec<PageRange> = Vec::new();
        for r in ranges {
            let model = bound.iter().any(|b| !pages(b).is_disjoint(&pages(&r)));
            prop_assert_eq!(overlaps_any(bound.iter().copied(), &r), model);
            if !model {
                bound.push(r);
            }
        }
        let mut seen = BTreeSet::new();
        for b in &bound {
            for p in pages(b) {
                prop_assert!(seen.insert(p));
            }
        }
    }

    /// The guest frames of a range through a binding are exactly its pages' frames.
    #[test]
    fn gfns_match_pagewise(b in small_range(), r in small_range(), base in 0u64..1 << 40) {
        let model: BTreeSet<u64> = pages(&b)
            .intersection(&pages(&r))
            .map(|p| base + (p - b.start()))
            .collect();
        match gfns(&b, base, &r) {
            None => prop_assert!(model.is_empty()),
            Some((s, e)) => prop_assert_eq!((s..e).collect::<BTreeSet<_>>(), model),
        }
    }

    /// A memslot binding is accepted exactly when it is aligned, non-empty and inside the file.
    #[test]
    fn bind_range_matches_model(off in 0u64..80, misalign in prop_oneof![3 => Just(0u64), 1 => 1u64..PAGE_SIZE],
                                npages in 0u64..80, file_pages in 1u64..64) {
        let offset = off * PAGE_SIZE + misalign;
        let r = bind_range(offset, npages, file_pages * PAGE_SIZE);
        let ok = misalign == 0 && npages > 0 && off + npages <= file_pages;
        prop_assert_eq!(r.is_ok(), ok);
        if let Ok(r) = r {
            prop_assert_eq!((r.start(), r.end()), (off, off + npages));
        }
    }
}
