// SPDX-License-Identifier: GPL-2.0

//! The folios that cache one huge block, and how they split and merge: on conversion to
//! shared only as far as the shared pages need (1 GiB → 2 MiB → 4 KiB), and back to the whole
//! block once none of it is shared.
//!
//! Pure logic with no kernel types: `tests/host` includes this file and checks it against a
//! per-page model under random conversions, pins and punches.

/// The order of a 2 MiB folio: the one level between a 1 GiB block and its base pages.
pub(crate) const MID_ORDER: u32 = 9;
/// The order of a 1 GiB block.
pub(crate) const GIGA_ORDER: u32 = 18;
/// The most 2 MiB sub-blocks a block has.
const MAX_SUBS: usize = 1 << (GIGA_ORDER - MID_ORDER);
const WORDS: usize = MAX_SUBS / 64;

/// What a huge block is cached as: whole, or in pieces of 2 MiB of which some are in base pages.
///
/// # Invariants
///
/// `order` is [`MID_ORDER`] or [`GIGA_ORDER`]; a block that is not `split` has no `fine`
/// sub-block; a 2 MiB block is split exactly when its one sub-block (bit 0) is fine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    order: u32,
    split: bool,
    /// The 2 MiB sub-blocks split into base pages, one bit each.
    fine: [u64; WORDS],
}

/// One split or merge, the unit the kernel reserves for and performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// A whole 1 GiB folio into 512 folios of 2 MiB.
    SplitToMid,
    /// The 2 MiB folio of sub-block `i` into 512 base pages (for a 2 MiB block, `i` is 0 and
    /// the folio is the whole block).
    SplitToBase(usize),
    /// Sub-block `i`'s base pages back into one 2 MiB folio.
    MergeToMid(usize),
    /// The 512 folios of 2 MiB back into the whole 1 GiB folio.
    MergeToWhole,
}

impl Step {
    /// The block's pages the step's folios cover, as (first page, pages), relative to the block
    /// of `order`: what must be unused for it to go ahead.
    pub(crate) fn pages(self, order: u32) -> (u64, u64) {
        let mid = 1u64 << MID_ORDER;
        match self {
            Step::SplitToBase(i) | Step::MergeToMid(i) => (i as u64 * mid, mid),
            Step::SplitToMid | Step::MergeToWhole => (0, 1 << order),
        }
    }

    /// The XArray nodes the page cache needs to hold the step's new, smaller entries: 64 slots
    /// a node, a multi-index entry of order 9 spans 8 slots of a node one level above the
    /// leaves. A merge frees nodes and needs none.
    // The kernel has no use for it yet; tests/host checks shapes with it.
    #[allow(dead_code)]
    pub(crate) fn xarray_nodes(self) -> u64 {
        match self {
            // A node for the 1 GiB slot's 64 entries of 4096 pages, and one for each of those,
            // holding 8 entries of order 9.
            Step::SplitToMid => 1 + 64,
            // Eight leaves of 64 pages.
            Step::SplitToBase(_) => 8,
            Step::MergeToMid(_) | Step::MergeToWhole => 0,
        }
    }
}

impl Shape {
    /// The whole block of `order`: one folio. `None` unless `order` is 2 MiB or 1 GiB.
    pub(crate) fn whole(order: u32) -> Option<Self> {
        (order == MID_ORDER || order == GIGA_ORDER).then_some(Self {
            order,
            split: false,
            fine: [0; WORDS],
        })
    }

    /// The coarsest shape of a block of `order` whose shared pages are all base pages, given
    /// whether each 2 MiB sub-block holds a shared page. `None` as [`Shape::whole`].
    pub(crate) fn needed(order: u32, shared: impl Fn(usize) -> bool) -> Option<Self> {
        let mut s = Self::whole(order)?;
        for i in (0..s.subs()).filter(|&i| shared(i)) {
            s.fine[i / 64] |= 1 << (i % 64);
            s.split = true;
        }
        Some(s)
    }

    /// The block's order.
    // The kernel has no use for it yet; tests/host checks shapes with it.
    #[allow(dead_code)]
    pub(crate) fn order(&self) -> u32 {
        self.order
    }

    /// How many 2 MiB sub-blocks the block has.
    pub(crate) fn subs(&self) -> usize {
        1 << (self.order - MID_ORDER)
    }

    /// Whether sub-block `i` is in base pages.
    pub(crate) fn is_fine(&self, i: usize) -> bool {
        self.fine[i / 64] & (1 << (i % 64)) != 0
    }

    /// Whether the block is one folio.
    pub(crate) fn is_whole(&self) -> bool {
        !self.split
    }

    /// Whether every folio of `self` lies inside a folio of `other`: `self` is as split, or more.
    // The kernel has no use for it yet; tests/host checks shapes with it.
    #[allow(dead_code)]
    pub(crate) fn at_least_as_split(&self, other: &Self) -> bool {
        self.order == other.order
            && (self.split || !other.split)
            && self.fine.iter().zip(&other.fine).all(|(a, b)| a & b == *b)
    }

    /// The order of the folio that caches page `offset` of the block.
    // The kernel has no use for it yet; tests/host checks shapes with it.
    #[allow(dead_code)]
    pub(crate) fn order_at(&self, offset: u64) -> u32 {
        let i = (offset >> MID_ORDER) as usize;
        if !self.split {
            self.order
        } else if self.is_fine(i) {
            0
        } else {
            MID_ORDER
        }
    }

    /// The block's folios, in order, as (first page relative to the block, order).
    // The kernel has no use for it yet; tests/host checks shapes with it.
    #[allow(dead_code)]
    pub(crate) fn folios(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        let whole = (!self.split).then_some((0, self.order));
        let pieces = (0..if self.split { self.subs() } else { 0 }).flat_map(move |i| {
            let start = (i as u64) << MID_ORDER;
            let (n, order) = if self.is_fine(i) {
                (1u64 << MID_ORDER, 0)
            } else {
                (1, MID_ORDER)
            };
            (0..n).map(move |j| (start + j, order))
        });
        whole.into_iter().chain(pieces)
    }

    /// How many folios cache the block.
    // The kernel has no use for it yet; tests/host checks shapes with it.
    #[allow(dead_code)]
    pub(crate) fn folio_count(&self) -> u64 {
        if !self.split {
            return 1;
        }
        let fine = u64::from(self.fine.iter().map(|w| w.count_ones()).sum::<u32>());
        let mid = self.subs() as u64 - fine;
        mid + (fine << MID_ORDER)
    }

    /// The splits that make `self` at least as split as `needed`, in the order to do them;
    /// none past what `needed` asks.
    pub(crate) fn splits_to<'a>(&'a self, needed: &'a Self) -> impl Iterator<Item = Step> + 'a {
        let to_mid =
            (self.order == GIGA_ORDER && needed.split && !self.split).then_some(Step::SplitToMid);
        let to_base = (0..self.subs())
            .filter(move |&i| needed.is_fine(i) && !self.is_fine(i))
            .map(Step::SplitToBase);
        to_mid.into_iter().chain(to_base)
    }

    /// The merges that bring `self` back towards `needed`, in the order to do them, each only
    /// if `may` allows it (no one else holds its pages); a 1 GiB block merges whole only once
    /// all its sub-blocks are 2 MiB again.
    pub(crate) fn merges_to(&self, needed: &Self, may: impl Fn(Step) -> bool) -> MergePlan {
        let mut plan = MergePlan {
            mid: [0; WORDS],
            whole: false,
        };
        let mut all_mid = true;
        for i in 0..self.subs() {
            if !self.is_fine(i) {
                continue;
            }
            if !needed.is_fine(i) && may(Step::MergeToMid(i)) {
                plan.mid[i / 64] |= 1 << (i % 64);
            } else {
                all_mid = false;
            }
        }
        plan.whole = self.order == GIGA_ORDER
            && self.split
            && !needed.split
            && all_mid
            && may(Step::MergeToWhole);
        plan
    }

    /// Performs `step`, which must apply to the current shape; returns whether it did.
    pub(crate) fn apply(&mut self, step: Step) -> bool {
        let ok = match step {
            Step::SplitToMid => self.order == GIGA_ORDER && !self.split,
            Step::SplitToBase(i) => {
                i < self.subs() && !self.is_fine(i) && (self.split || self.order == MID_ORDER)
            }
            Step::MergeToMid(i) => i < self.subs() && self.is_fine(i),
            Step::MergeToWhole => {
                self.order == GIGA_ORDER && self.split && self.fine.iter().all(|&w| w == 0)
            }
        };
        if !ok {
            return false;
        }
        // INVARIANT: each arm keeps `split` true exactly when a 2 MiB block has a fine
        // sub-block, and `fine` empty when not split.
        match step {
            Step::SplitToMid => self.split = true,
            Step::SplitToBase(i) => {
                self.fine[i / 64] |= 1 << (i % 64);
                self.split = true;
            }
            Step::MergeToMid(i) => {
                self.fine[i / 64] &= !(1 << (i % 64));
                if self.order == MID_ORDER {
                    self.split = false;
                }
            }
            Step::MergeToWhole => self.split = false,
        }
        true
    }
}

/// The merges [`Shape::merges_to`] chose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MergePlan {
    mid: [u64; WORDS],
    whole: bool,
}

impl MergePlan {
    /// Its steps, in order: sub-blocks to 2 MiB, then the whole block.
    pub(crate) fn steps(&self) -> impl Iterator<Item = Step> + '_ {
        (0..MAX_SUBS)
            .filter(move |&i| self.mid[i / 64] & (1 << (i % 64)) != 0)
            .map(Step::MergeToMid)
            .chain(self.whole.then_some(Step::MergeToWhole))
    }

    /// Whether there is nothing to merge.
    // The kernel has no use for it yet; tests/host checks shapes with it.
    #[allow(dead_code)]
    pub(crate) fn is_empty(&self) -> bool {
        !self.whole && self.mid.iter().all(|&w| w == 0)
    }
}
