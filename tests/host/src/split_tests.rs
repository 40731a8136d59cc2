// SPDX-License-Identifier: GPL-2.0

//! `split_math.rs`: huge blocks split on conversion to shared only as far as needed and merge
//! back, checked against a per-page model of a file with a 1 GiB block and two 2 MiB blocks.
//!
//! The model does what the kernel does around the pure logic: a conversion to shared splits
//! every block it touches towards the shape its shared pages need; a conversion to private
//! (refused where a page is pinned) and a retry merge what no pin holds; a punch takes a block
//! out of the file, parking it while pinned; a touch allocates an absent block in the shape it
//! needs. After every operation, every shared page is a base page and nothing is split without
//! a reason.
//!
//! The long run (`RGMEM_LONG=1`, `make check-long`) does ten times the operations.

use crate::split_math::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::cell::Cell;

const MID: u64 = 1 << MID_ORDER;
const GIGA: u64 = 1 << GIGA_ORDER;
/// The file: a 1 GiB block, then two of 2 MiB.
const BLOCKS: [(u64, u32); 3] = [(0, GIGA_ORDER), (GIGA, MID_ORDER), (GIGA + MID, MID_ORDER)];
const PAGES: u64 = GIGA + 2 * MID;

#[derive(Clone, Debug)]
enum Op {
    /// Pages `start..start + len` to shared (`true`) or private.
    Convert {
        start: u64,
        len: u64,
        shared: bool,
    },
    /// A reference on a page, which holds off its merges and its conversion to private.
    Pin(u64),
    /// Drops a pin: the n-th of those held, in the file or parked.
    Unpin(usize),
    /// Merges whatever no pin holds, as a deferred retry does.
    Retry,
    Punch(usize),
    Touch(u64),
}

/// A page: mostly in the first four 2 MiB of a block, where operations meet.
fn page() -> impl Strategy<Value = u64> + Clone {
    prop_oneof![
        3 => (0..BLOCKS.len(), 0..4 * MID).prop_map(|(b, off)| (BLOCKS[b].0 + off).min(PAGES - 1)),
        1 => 0..PAGES,
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let page = page();
    // Mostly small ranges, some of a few 2 MiB, a few of the whole file.
    let len = prop_oneof![6 => 1u64..8, 3 => 1u64..3 * MID, 1 => 1u64..PAGES];
    prop_oneof![
        8 => (page.clone(), len, any::<bool>())
            .prop_map(|(start, len, shared)| Op::Convert { start, len: len.min(PAGES - start), shared }),
        2 => page.clone().prop_map(Op::Pin),
        2 => any::<usize>().prop_map(Op::Unpin),
        1 => Just(Op::Retry),
        1 => (0..BLOCKS.len()).prop_map(Op::Punch),
        2 => page.prop_map(Op::Touch),
    ]
}

/// A pin on page `page` of the file, or on a block punched while pinned (`parked`).
#[derive(Clone, Debug)]
struct Pin {
    page: u64,
    parked: bool,
}

struct Model {
    /// One bit per page: shared.
    shared: Vec<u64>,
    /// Each block's shape; `None` when no folio caches it.
    shapes: Vec<Option<Shape>>,
    pins: Vec<Pin>,
}

impl Model {
    fn new() -> Self {
        Model {
            shared: vec![0; PAGES.div_ceil(64) as usize],
            shapes: BLOCKS.iter().map(|&(_, o)| Shape::whole(o)).collect(),
            pins: Vec::new(),
        }
    }

    fn is_shared(&self, p: u64) -> bool {
        self.shared[(p / 64) as usize] & (1 << (p % 64)) != 0
    }

    fn set(&mut self, start: u64, end: u64, shared: bool) {
        let mut p = start;
        while p < end {
            let (w, b) = ((p / 64) as usize, p % 64);
            let n = (64 - b).min(end - p);
            let mask = if n == 64 {
                u64::MAX
            } else {
                ((1u64 << n) - 1) << b
            };
            if shared {
                self.shared[w] |= mask;
            } else {
                self.shared[w] &= !mask;
            }
            p += n;
        }
    }

    /// Whether a page of 2 MiB sub-block `start` (aligned) is shared: eight words.
    fn sub_shared(&self, start: u64) -> bool {
        let w = (start / 64) as usize;
        self.shared[w..w + (MID / 64) as usize]
            .iter()
            .any(|&x| x != 0)
    }

    fn pinned(&self, start: u64, end: u64) -> bool {
        self.pins
            .iter()
            .any(|p| !p.parked && (start..end).contains(&p.page))
    }

    fn needed(&self, b: usize) -> Shape {
        let (start, order) = BLOCKS[b];
        Shape::needed(order, |i| self.sub_shared(start + i as u64 * MID)).unwrap()
    }

    fn blocks_in(start: u64, end: u64) -> impl Iterator<Item = usize> {
        (0..BLOCKS.len()).filter(move |&b| {
            let (s, o) = BLOCKS[b];
            s < end && start < s + (1 << o)
        })
    }

    /// Merges what no pin holds in block `b`.
    fn merge(&mut self, b: usize) {
        let Some(shape) = &self.shapes[b] else {
            return;
        };
        let (start, order) = BLOCKS[b];
        let needed = self.needed(b);
        let plan = shape.merges_to(&needed, |step| {
            let (s, n) = step.pages(order);
            !self.pinned(start + s, start + s + n)
        });
        for step in plan.steps() {
            let (s, n) = step.pages(order);
            assert!(
                !self.pinned(start + s, start + s + n),
                "{step:?} merges a pinned page"
            );
            let shape = self.shapes[b].as_mut().unwrap();
            assert!(shape.apply(step), "{step:?} did not apply");
        }
    }

    fn run(&mut self, op: &Op) {
        match *op {
            Op::Convert { start, len, shared } => {
                let end = start + len;
                // The refcount check: a pinned page may not become private.
                if !shared && self.pinned(start, end) {
                    return;
                }
                self.set(start, end, shared);
                for b in Self::blocks_in(start, end) {
                    if shared {
                        let needed = self.needed(b);
                        if let Some(shape) = &mut self.shapes[b] {
                            let steps: Vec<_> = shape.splits_to(&needed).collect();
                            for step in steps {
                                assert!(shape.apply(step), "{step:?} did not apply");
                            }
                        }
                    } else {
                        self.merge(b);
                    }
                }
            }
            Op::Pin(p) => {
                // The host pins what it maps, shared pages; anyone may hold a page for a
                // while (KVM's faults, page-cache walks). Either way, only a page present.
                let b = Self::blocks_in(p, p + 1).next().unwrap();
                if self.shapes[b].is_some() {
                    self.pins.push(Pin {
                        page: p,
                        parked: false,
                    });
                }
            }
            Op::Unpin(n) => {
                if !self.pins.is_empty() {
                    self.pins.remove(n % self.pins.len());
                }
            }
            Op::Retry => (0..BLOCKS.len()).for_each(|b| self.merge(b)),
            Op::Punch(b) => {
                let (start, order) = BLOCKS[b];
                for pin in &mut self.pins {
                    if (start..start + (1 << order)).contains(&pin.page) {
                        pin.parked = true;
                    }
                }
                self.shapes[b] = None;
            }
            Op::Touch(p) => {
                let b = Self::blocks_in(p, p + 1).next().unwrap();
                if self.shapes[b].is_none() {
                    self.shapes[b] = Some(self.needed(b));
                }
            }
        }
    }

    fn check_tiling(&self, b: usize, shape: &Shape) -> Result<(), TestCaseError> {
        let (start, order) = BLOCKS[b];
        let mut next = 0;
        for (s, o) in shape.folios() {
            prop_assert_eq!(s, next);
            prop_assert_eq!(s % (1 << o), 0);
            prop_assert!(o == 0 || o == MID_ORDER || o == order);
            prop_assert_eq!(shape.order_at(s), o);
            if o > 0 {
                let mut sub = start + s;
                while sub < start + s + (1 << o) {
                    prop_assert!(!self.sub_shared(sub));
                    sub += MID;
                }
            }
            next = s + (1 << o);
        }
        prop_assert_eq!(next, 1 << order);
        prop_assert_eq!(shape.folio_count(), shape.folios().count() as u64);
        Ok(())
    }

    /// What must hold after every operation; `retried` after a retry. `full` also walks every
    /// folio, which for a 1 GiB block in base pages is slow.
    fn check(&self, retried: bool, full: bool) -> Result<(), TestCaseError> {
        for (b, shape) in self.shapes.iter().enumerate() {
            let Some(shape) = shape else { continue };
            let (start, order) = BLOCKS[b];
            let needed = self.needed(b);
            prop_assert!(shape.at_least_as_split(&needed), "block {b}: {shape:?}");
            // Shared pages are base pages.
            for i in 0..shape.subs() {
                if self.sub_shared(start + i as u64 * MID) {
                    prop_assert_eq!(shape.order_at(i as u64 * MID), 0);
                }
            }
            // The folios tile the block, each aligned, and only shared pages need base pages.
            if full {
                self.check_tiling(b, shape)?;
            }
            // Split past the need only where a pin held it.
            for i in 0..shape.subs() {
                let s = start + i as u64 * MID;
                if shape.is_fine(i) && !needed.is_fine(i) {
                    prop_assert!(
                        !retried || self.pinned(s, s + MID),
                        "block {b} sub-block {i} stays split unpinned"
                    );
                }
            }
            if retried && !shape.is_whole() && needed.is_whole() {
                prop_assert!(self.pinned(start, start + (1 << order)));
            }
            if retried && !self.pinned(start, start + (1 << order)) {
                prop_assert_eq!(shape, &needed);
            }
        }
        Ok(())
    }
}

fn scenario() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..200)
}

fn run_scenario(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut m = Model::new();
    for (i, op) in ops.iter().enumerate() {
        let full = i % 16 == 15 || i == ops.len() - 1;
        m.run(op);
        m.check(false, full)?;
        m.run(&Op::Retry);
        m.check(true, full)?;
    }
    Ok(())
}

/// Random conversions, pins, punches and touches keep every block split just as far as its
/// shared pages and pins need.
#[test]
fn splits_and_merges_match_page_model() {
    let long = std::env::var("RGMEM_LONG").is_ok_and(|v| v == "1");
    let target: u64 = if long { 1_000_000 } else { 100_000 };
    // Scenarios average 100 operations. One run: the runner slows down when run again.
    let mut runner = TestRunner::new(Config {
        source_file: Some(file!()),
        max_shrink_iters: 20_000,
        ..Config::with_cases((target / 100) as u32)
    });
    let ops = Cell::new(0u64);
    runner
        .run(&scenario(), |sc| {
            ops.set(ops.get() + sc.len() as u64);
            run_scenario(&sc)
        })
        .unwrap();
    println!("{} split/merge operations checked", ops.get());
    assert!(ops.get() >= target * 9 / 10);
}

#[test]
fn one_shared_page_of_a_gigabyte() {
    let whole = Shape::whole(GIGA_ORDER).unwrap();
    // Page 700: in sub-block 1.
    let needed = Shape::needed(GIGA_ORDER, |i| i == 1).unwrap();
    let steps: Vec<_> = whole.splits_to(&needed).collect();
    assert_eq!(steps, [Step::SplitToMid, Step::SplitToBase(1)]);
    let mut s = whole.clone();
    steps.iter().for_each(|&st| assert!(s.apply(st)));
    // 511 folios of 2 MiB and 512 base pages, not 262,144.
    assert_eq!(s.folio_count(), 511 + 512);
    assert_eq!(s.order_at(700), 0);
    assert_eq!(s.order_at(0), MID_ORDER);
    assert_eq!(s.order_at(GIGA - 1), MID_ORDER);
    // 1G→2M→4K needs 73 XArray nodes; straight to 4 KiB would need 1 + 64 + 4096.
    let nodes: u64 = steps.iter().map(|st| st.xarray_nodes()).sum();
    assert_eq!(nodes, 73);

    // All private again: back to one folio, in two merges.
    let plan = s.merges_to(&whole, |_| true);
    let merges: Vec<_> = plan.steps().collect();
    assert_eq!(merges, [Step::MergeToMid(1), Step::MergeToWhole]);
    merges.iter().for_each(|&st| assert!(s.apply(st)));
    assert_eq!(s, whole);

    // A pin in sub-block 1 keeps it, and the whole block, split.
    let mut s = whole.clone();
    steps.iter().for_each(|&st| assert!(s.apply(st)));
    let plan = s.merges_to(&whole, |st| st != Step::MergeToMid(1));
    assert!(plan.is_empty());
}

#[test]
fn two_megabyte_blocks_split_to_base_pages() {
    let whole = Shape::whole(MID_ORDER).unwrap();
    let needed = Shape::needed(MID_ORDER, |_| true).unwrap();
    let steps: Vec<_> = whole.splits_to(&needed).collect();
    assert_eq!(steps, [Step::SplitToBase(0)]);
    let mut s = whole.clone();
    assert!(s.apply(steps[0]));
    assert_eq!(s.folio_count(), 512);
    assert!(!s.apply(Step::SplitToMid));
    assert!(!s.apply(Step::MergeToWhole));
    assert!(s.apply(Step::MergeToMid(0)));
    assert_eq!(s, whole);
    assert!(Shape::whole(10).is_none());
}
