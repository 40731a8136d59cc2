// SPDX-License-Identifier: GPL-2.0

//! `range.rs` against a model that works page by page.

use crate::range::*;
use proptest::prelude::*;

/// A page count, in a small window so that collisions and edges are common.
fn pages() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..64, Just(MAX_INDEX - 1), Just(MAX_INDEX)]
}

/// Byte values: page multiples, off-by-one neighbours and the extremes.
fn bytes() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => (0u64..64).prop_map(|p| p * PAGE_SIZE),
        1 => (0u64..64).prop_map(|p| p * PAGE_SIZE + 1),
        1 => (1u64..64).prop_map(|p| p * PAGE_SIZE - 1),
        1 => Just(u64::MAX),
        1 => Just(u64::MAX & !(PAGE_SIZE - 1)),
    ]
}

fn set(r: &PageRange) -> std::collections::BTreeSet<u64> {
    (r.start()..r.end()).collect()
}

#[test]
fn fixed_cases() {
    let size = 16 * PAGE_SIZE;
    let r = PageRange::from_bytes(PAGE_SIZE, 2 * PAGE_SIZE, size).unwrap();
    assert_eq!((r.start(), r.end(), r.pages()), (1, 3, 2));
    assert_eq!((r.byte_offset(), r.byte_len()), (PAGE_SIZE, 2 * PAGE_SIZE));
    assert_eq!(PageRange::from_bytes(0, 0, size), Err(RangeError::Empty));
    assert_eq!(
        PageRange::from_bytes(1, PAGE_SIZE, size),
        Err(RangeError::Unaligned)
    );
    assert_eq!(
        PageRange::from_bytes(0, 17 * PAGE_SIZE, size),
        Err(RangeError::OutOfBounds)
    );
    assert_eq!(
        PageRange::from_bytes(u64::MAX & !(PAGE_SIZE - 1), PAGE_SIZE, u64::MAX),
        Err(RangeError::Overflow)
    );
    let last = MAX_INDEX * PAGE_SIZE;
    assert!(PageRange::from_bytes(last - PAGE_SIZE, PAGE_SIZE, u64::MAX).is_ok());
    assert_eq!(
        PageRange::from_bytes(last, PAGE_SIZE, u64::MAX),
        Err(RangeError::Overflow)
    );
    assert_eq!(check_file_size(0), Err(RangeError::Empty));
    assert_eq!(check_file_size(PAGE_SIZE + 1), Err(RangeError::Unaligned));
    assert_eq!(check_file_size(2 * PAGE_SIZE), Ok(2));
    // `loff_t` is signed: sizes from 2^63 up are refused, the largest allowed fits.
    assert_eq!(check_file_size(1 << 63), Err(RangeError::Overflow));
    assert_eq!(
        check_file_size(u64::MAX & !(PAGE_SIZE - 1)),
        Err(RangeError::Overflow)
    );
    assert!(MAX_FILE_SIZE <= i64::MAX as u64 && is_page_aligned(MAX_FILE_SIZE));
    assert_eq!(
        check_file_size(MAX_FILE_SIZE),
        Ok(MAX_FILE_SIZE >> PAGE_SHIFT)
    );
    let two_m = PageRange::new(511, 513).unwrap().align_out(9).unwrap();
    assert_eq!((two_m.start(), two_m.end()), (0, 1024));
    assert_eq!(PageRange::new(0, 1).unwrap().align_out(MAX_ORDER + 1), None);
    let top = PageRange::new(MAX_INDEX - 1, MAX_INDEX).unwrap();
    assert_eq!(top.align_out(MAX_ORDER).unwrap().end(), MAX_INDEX);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn from_bytes_matches_model(offset in bytes(), len in bytes(), size in bytes()) {
        let model = if len == 0 {
            Err(RangeError::Empty)
        } else if offset % PAGE_SIZE != 0 || len % PAGE_SIZE != 0 {
            Err(RangeError::Unaligned)
        } else if (offset as u128) + (len as u128) > (MAX_INDEX as u128) * (PAGE_SIZE as u128) {
            Err(RangeError::Overflow)
        } else if offset + len > size {
            Err(RangeError::OutOfBounds)
        } else {
            Ok((offset / PAGE_SIZE, (offset + len) / PAGE_SIZE))
        };
        let got = PageRange::from_bytes(offset, len, size).map(|r| (r.start(), r.end()));
        prop_assert_eq!(got, model);
    }

    #[test]
    fn new_is_nonempty_and_bounded(start in pages(), end in pages()) {
        let r = PageRange::new(start, end);
        prop_assert_eq!(r.is_some(), start < end && end <= MAX_INDEX);
        if let Some(r) = r {
            prop_assert!(r.pages() > 0);
            prop_assert_eq!(r.byte_len() as u128, r.pages() as u128 * PAGE_SIZE as u128);
            prop_assert_eq!(r.byte_offset() as u128, r.start() as u128 * PAGE_SIZE as u128);
        }
    }

    #[test]
    fn overlap_and_intersection_match_sets(
        a in (0u64..64, 1u64..16), b in (0u64..64, 1u64..16), probe in 0u64..96
    ) {
        let a = PageRange::new(a.0, a.0 + a.1).unwrap();
        let b = PageRange::new(b.0, b.0 + b.1).unwrap();
        let common: Vec<u64> = set(&a).intersection(&set(&b)).copied().collect();
        prop_assert_eq!(a.overlaps(&b), !common.is_empty());
        prop_assert_eq!(a.overlaps(&b), b.overlaps(&a));
        let got: Vec<u64> = a.intersect(&b).map(|r| set(&r).into_iter().collect()).unwrap_or_default();
        prop_assert_eq!(got, common);
        prop_assert_eq!(a.contains(probe), set(&a).contains(&probe));
    }

    #[test]
    fn align_out_covers_whole_blocks(start in 0u64..4096, len in 1u64..2048, order in 0u32..=MAX_ORDER) {
        let r = PageRange::new(start, start + len).unwrap();
        let w = r.align_out(order).unwrap();
        let block = 1u64 << order;
        prop_assert!(w.start() <= r.start() && r.end() <= w.end());
        prop_assert_eq!(w.start() % block, 0);
        prop_assert_eq!(w.end() % block, 0);
        // Minimal: one block less on either side would miss a page.
        prop_assert!(w.start() + block > r.start());
        prop_assert!(w.end() - block < r.end());
    }
}

#[test]
fn alignment_to_blocks() {
    let r = |s, e| PageRange::new(s, e).unwrap();
    assert!(r(0, 512).is_aligned(9));
    assert!(r(512, 1024).is_aligned(9));
    assert!(!r(0, 511).is_aligned(9));
    assert!(!r(1, 512).is_aligned(9));
    assert!(r(1, 2).is_aligned(0));
    assert!(!r(0, 1 << 19).is_aligned(MAX_ORDER + 1));
}
