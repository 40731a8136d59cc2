// SPDX-License-Identifier: GPL-2.0

//! `share_math.rs`: conversions between private and shared, checked against a per-page model.
//!
//! `RunStore` models the kernel's maple tree: a range store that overwrites, trimming and
//! splitting the runs it partly covers, and never merges on its own. `RunStore::convert` does
//! what the kernel does: plan with `changed` over the overlapped runs, then, if anything
//! changes, one store of the new state over `widened`. Any merging of runs must come from
//! `widened`.
//!
//! The long run (`RGMEM_LONG=1`, `make check-long`) does ten times the operations.

use crate::share_math::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::cell::Cell;
use std::collections::BTreeMap;

/// The model of the kernel's range store: run start -> (run end, state).
#[derive(Debug, Clone, PartialEq, Eq)]
struct RunStore {
    pages: u64,
    runs: BTreeMap<u64, (u64, Share)>,
}

impl RunStore {
    /// A file of `pages` pages, all in state `init`.
    fn new(pages: u64, init: Share) -> Self {
        assert!(pages > 0);
        RunStore {
            pages,
            runs: BTreeMap::from([(0, (pages, init))]),
        }
    }

    fn run(start: u64, &(end, share): &(u64, Share)) -> Run {
        Run { start, end, share }
    }

    /// The run holding `page`, if any.
    fn run_at(&self, page: u64) -> Option<Run> {
        self.runs
            .range(..=page)
            .next_back()
            .filter(|(_, &(end, _))| page < end)
            .map(|(&s, v)| Self::run(s, v))
    }

    /// The runs overlapping `start..end`, in order.
    fn overlapping(&self, start: u64, end: u64) -> Vec<Run> {
        let from = self.run_at(start).map_or(start, |r| r.start);
        self.runs
            .range(from..end)
            .filter(|(_, &(e, _))| e > start)
            .map(|(&s, v)| Self::run(s, v))
            .collect()
    }

    /// Stores `share` over `start..end`, overwriting what was there: runs partly covered are
    /// trimmed or split, keeping their state outside the range. No merging.
    fn store(&mut self, start: u64, end: u64, share: Share) {
        assert!(start < end && end <= self.pages, "store {start}..{end}");
        for r in self.overlapping(start, end) {
            self.runs.remove(&r.start);
            if r.start < start {
                self.runs.insert(r.start, (start, r.share));
            }
            if end < r.end {
                self.runs.insert(end, (r.end, r.share));
            }
        }
        self.runs.insert(start, (end, share));
    }

    /// Converts `start..end` to `to` as the kernel does; returns the plan.
    fn convert(&mut self, start: u64, end: u64, to: Share) -> Vec<(u64, u64)> {
        let plan: Vec<(u64, u64)> = self
            .overlapping(start, end)
            .iter()
            .filter_map(|r| changed(r, start, end, to))
            .collect();
        if !plan.is_empty() {
            let before = start.checked_sub(1).and_then(|p| self.run_at(p));
            let after = self.run_at(end);
            let (s, e) = widened(start, end, to, before.as_ref(), after.as_ref());
            self.store(s, e, to);
        }
        plan
    }
}

/// The maximal sub-ranges of `start..end` whose pages in `model` are not in state `to`, in
/// order. Two of them are never adjacent (they would be one).
fn differing(model: &[Share], start: u64, end: u64, to: Share) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for p in start..end {
        if model[p as usize] == to {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.1 == p => last.1 = p + 1,
            _ => out.push((p, p + 1)),
        }
    }
    out
}

/// (b) The runs cover `0..pages` exactly, contiguously, each non-empty, and are maximal: no
/// two adjacent runs share a state. (a) Each page's state in the store is the model's.
fn check_store(store: &RunStore, model: &[Share]) -> Result<(), TestCaseError> {
    prop_assert_eq!(store.pages as usize, model.len());
    let mut next = 0;
    let mut prev: Option<Share> = None;
    for (&start, &(end, share)) in &store.runs {
        prop_assert_eq!(start, next, "gap or overlap at {}", start);
        prop_assert!(start < end, "empty run {}..{}", start, end);
        prop_assert_ne!(Some(share), prev, "runs not maximal at {}", start);
        let bad = model[start as usize..end as usize]
            .iter()
            .position(|&m| m != share);
        prop_assert!(
            bad.is_none(),
            "page {} is {:?} in the store, {:?} in the model",
            start + bad.unwrap_or(0) as u64,
            share,
            model[start as usize + bad.unwrap_or(0)]
        );
        next = end;
        prev = Some(share);
    }
    prop_assert_eq!(next, store.pages, "runs end short of the file");
    Ok(())
}

/// A file and the conversions made on it.
#[derive(Debug, Clone)]
struct Scenario {
    pages: u64,
    init: Share,
    ops: Vec<(u64, u64, Share)>,
}

fn share() -> impl Strategy<Value = Share> {
    prop_oneof![Just(Share::Private), Just(Share::Shared)]
}

/// A page boundary in `0..=pages`, biased to small, aligned and edge values.
fn point(pages: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0..=pages,
        2 => 0..=pages.min(16),
        2 => pages.saturating_sub(16)..=pages,
        2 => (0u32..=18, 0..=pages).prop_map(move |(k, x)| x >> k << k),
        2 => (0u32..=18, 0..=pages, -1i64..=1)
            .prop_map(move |(k, x, d)| ((x >> k << k) as i64 + d).clamp(0, pages as i64) as u64),
    ]
}

/// A non-empty range in `0..pages`, either between two points or short from one.
fn range(pages: u64) -> impl Strategy<Value = (u64, u64)> {
    prop_oneof![
        (point(pages), point(pages)),
        (point(pages), 1u64..=64).prop_map(move |(s, len)| (s, (s + len).min(pages))),
    ]
    .prop_map(move |(a, b)| match a.cmp(&b) {
        std::cmp::Ordering::Less => (a, b),
        std::cmp::Ordering::Greater => (b, a),
        std::cmp::Ordering::Equal if a < pages => (a, a + 1),
        std::cmp::Ordering::Equal => (a - 1, a),
    })
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let small = (
        prop_oneof![2 => 1u64..=16, 3 => 1u64..=256, 4 => 1u64..=4096],
        Just(1usize..=1024),
    );
    // Large sparse files: the per-page check is linear in the file, so fewer operations.
    let large = (
        prop_oneof![
            Just(1u64 << 18),
            Just((1u64 << 18) - 1),
            Just((1u64 << 18) + 1),
            (1u64 << 17)..=(1u64 << 20),
        ],
        Just(1usize..=64),
    );
    prop_oneof![9 => small, 1 => large].prop_flat_map(|(pages, ops)| {
        (
            Just(pages),
            share(),
            prop::collection::vec((range(pages), share()), ops),
        )
            .prop_map(|(pages, init, ops)| Scenario {
                pages,
                init,
                ops: ops.into_iter().map(|((s, e), to)| (s, e, to)).collect(),
            })
    })
}

/// Checks one conversion of `start..end` to `to` against the model, and applies it to both.
fn check_convert(
    store: &mut RunStore,
    model: &mut [Share],
    (start, end, to): (u64, u64, Share),
) -> Result<(), TestCaseError> {
    prop_assert!(start < end && end <= store.pages);
    // (c) The plan is exactly the maximal sub-ranges of start..end whose pages were not already
    // `to`, in ascending order: so sorted, disjoint and never adjacent. The runs being maximal
    // before the conversion, each such sub-range is the part of one run.
    let expected = differing(model, start, end, to);
    let before = store.clone();
    let plan = store.convert(start, end, to);
    prop_assert_eq!(&plan, &expected, "plan");
    // (d) Nothing to change, nothing stored.
    if plan.is_empty() {
        prop_assert_eq!(&*store, &before, "an empty plan changed the store");
    }
    model[start as usize..end as usize].fill(to);
    // (a), (b)
    check_store(store, model)
}

/// Runs a scenario; a failure names the operation and the operations up to it.
fn run_scenario(sc: &Scenario) -> Result<(), TestCaseError> {
    let mut store = RunStore::new(sc.pages, sc.init);
    let mut model = vec![sc.init; sc.pages as usize];
    for (i, &op) in sc.ops.iter().enumerate() {
        check_convert(&mut store, &mut model, op).map_err(|e| {
            TestCaseError::fail(format!(
                "op {i} {op:?} of a {}-page file, initially {:?}: {e}\n  ops: {:?}\n  runs after: {:?}",
                sc.pages,
                sc.init,
                &sc.ops[..=i],
                store.runs,
            ))
        })?;
    }
    Ok(())
}

/// Random conversions keep the runs maximal, cover the file, agree with a per-page model, and
/// plan exactly the pages that change.
#[test]
fn conversions_match_page_model() {
    let long = std::env::var("RGMEM_LONG").is_ok_and(|v| v == "1");
    let (cases, target): (u32, u64) = if long {
        (2560, 1_000_000)
    } else {
        (256, 100_000)
    };
    let mut runner = TestRunner::new(Config {
        source_file: Some(file!()),
        // Enough to drop the operations after the failing one.
        max_shrink_iters: 20_000,
        ..Config::with_cases(cases)
    });
    // Count the operations, and run more cases until there were enough.
    let ops = Cell::new(0u64);
    while ops.get() < target {
        runner
            .run(&scenario(), |sc| {
                ops.set(ops.get() + sc.ops.len() as u64);
                run_scenario(&sc)
            })
            .unwrap();
    }
    println!("{} conversions checked", ops.get());
}

#[test]
fn store_overwrites_without_merging() {
    let mut s = RunStore::new(10, Share::Private);
    s.store(3, 5, Share::Shared);
    s.store(5, 7, Share::Shared);
    let runs: Vec<_> = s.runs.iter().map(|(&a, &(b, sh))| (a, b, sh)).collect();
    assert_eq!(
        runs,
        [
            (0, 3, Share::Private),
            (3, 5, Share::Shared),
            (5, 7, Share::Shared),
            (7, 10, Share::Private)
        ]
    );
    assert_eq!(s.overlapping(4, 6).len(), 2);
    assert_eq!(s.run_at(9).map(|r| r.start), Some(7));
    assert_eq!(s.run_at(10), None);
}

#[test]
fn convert_merges_through_widened() {
    let mut s = RunStore::new(10, Share::Private);
    assert_eq!(s.convert(2, 4, Share::Shared), [(2, 4)]);
    assert_eq!(s.convert(6, 8, Share::Shared), [(6, 8)]);
    // Fills the gap: one store over 2..8.
    assert_eq!(s.convert(3, 7, Share::Shared), [(4, 6)]);
    assert_eq!(s, {
        let mut t = RunStore::new(10, Share::Private);
        t.store(2, 8, Share::Shared);
        t
    });
    assert_eq!(s.convert(2, 8, Share::Shared), []);
    assert_eq!(s.convert(0, 10, Share::Private), [(2, 8)]);
    assert_eq!(s, RunStore::new(10, Share::Private));
}

#[test]
fn changed_and_widened_cases() {
    let run = |start, end, share| Run { start, end, share };
    let p = run(4, 8, Share::Private);
    assert_eq!(changed(&p, 0, 4, Share::Shared), None);
    assert_eq!(changed(&p, 8, 9, Share::Shared), None);
    assert_eq!(changed(&p, 5, 6, Share::Private), None);
    assert_eq!(changed(&p, 0, 5, Share::Shared), Some((4, 5)));
    assert_eq!(changed(&p, 7, 20, Share::Shared), Some((7, 8)));
    assert_eq!(changed(&p, 0, 20, Share::Shared), Some((4, 8)));
    let b = run(0, 4, Share::Shared);
    let a = run(8, 12, Share::Shared);
    assert_eq!(widened(4, 8, Share::Shared, Some(&b), Some(&a)), (0, 12));
    assert_eq!(widened(4, 8, Share::Private, Some(&b), Some(&a)), (4, 8));
    assert_eq!(widened(4, 8, Share::Shared, None, Some(&a)), (4, 12));
    assert_eq!(widened(4, 8, Share::Shared, Some(&b), None), (0, 8));
    assert_eq!(widened(4, 8, Share::Shared, None, None), (4, 8));
}

#[test]
fn share_values_round_trip() {
    for s in [Share::Private, Share::Shared] {
        assert_eq!(Share::from_value(s.to_value()), s);
    }
    assert_ne!(Share::Private.to_value(), Share::Shared.to_value());
}

#[test]
fn requested_states_and_errors() {
    assert_eq!(requested(ATTRIBUTE_PRIVATE, 0, &[]), Ok(Share::Private));
    assert_eq!(requested(0, 0, &[]), Ok(Share::Shared));
    assert_eq!(requested(ATTRIBUTE_PRIVATE, 0, &[0; 4]), Ok(Share::Private));
    assert_eq!(requested(0, 0, &[0; 4]), Ok(Share::Shared));
    for bad in [1, 1 << 2, 1 << 4, ATTRIBUTE_PRIVATE | 1, 1 << 63, u64::MAX] {
        assert_eq!(
            requested(bad, 0, &[]),
            Err(RequestError::Attributes),
            "{bad:#x}"
        );
    }
    for flags in [1, ATTRIBUTE_PRIVATE, 1 << 63, u64::MAX] {
        assert_eq!(requested(0, flags, &[]), Err(RequestError::Flags));
        assert_eq!(
            requested(ATTRIBUTE_PRIVATE, flags, &[]),
            Err(RequestError::Flags)
        );
    }
    for reserved in [&[1][..], &[0, 0, 1], &[u64::MAX, 0]] {
        assert_eq!(requested(0, 0, reserved), Err(RequestError::Reserved));
        assert_eq!(
            requested(ATTRIBUTE_PRIVATE, 0, reserved),
            Err(RequestError::Reserved)
        );
    }
}

proptest! {
    /// A request is accepted exactly when every field is valid, and a refusal names a field
    /// that is invalid.
    #[test]
    fn requested_matches_fields(
        attributes in prop_oneof![Just(0u64), Just(ATTRIBUTE_PRIVATE), any::<u64>()],
        flags in prop_oneof![3 => Just(0u64), 1 => any::<u64>()],
        reserved in prop::collection::vec(prop_oneof![3 => Just(0u64), 1 => any::<u64>()], 0..4),
    ) {
        let bad_attributes = attributes & !ATTRIBUTE_PRIVATE != 0;
        let bad_flags = flags != 0;
        let bad_reserved = reserved.iter().any(|&r| r != 0);
        match requested(attributes, flags, &reserved) {
            Ok(share) => {
                prop_assert!(!bad_attributes && !bad_flags && !bad_reserved);
                let private = attributes == ATTRIBUTE_PRIVATE;
                prop_assert_eq!(share, if private { Share::Private } else { Share::Shared });
            }
            Err(RequestError::Attributes) => prop_assert!(bad_attributes),
            Err(RequestError::Flags) => prop_assert!(bad_flags),
            Err(RequestError::Reserved) => prop_assert!(bad_reserved),
        }
        prop_assert_eq!(
            requested(attributes, flags, &reserved).is_ok(),
            !bad_attributes && !bad_flags && !bad_reserved
        );
    }
}
