// SPDX-License-Identifier: GPL-2.0

//! Splitting a hugetlb folio of a page cache into pieces, and merging them back, in place: the
//! memory and its contents stay where they are, only the folios that describe it change.
//!
//! A split block's pieces are plain compound pages of 2 MiB or base pages, each cached at its own
//! index. Each piece holds one reference besides the page cache's, its *pin*, so that its
//! refcount never reaches zero: that would free it to the page allocator instead of the pool.
//! The pin also keeps eviction away, which only takes folios that the cache alone holds. Pieces
//! carry `PG_owner_priv_1`, the page-cache owner's flag, by which this module tells them from
//! any other folio, and the first page keeps the subpool in its private field while the folio
//! is split (see `hugetlb_split_frozen_folio()`).
//!
//! Soundness does not rest on the caller's locks: a folio is reshaped only at refcount zero, when
//! no one else holds it, and only after its page-cache entries were checked under the XArray
//! lock. A split's XArray nodes are allocated before that ([`Reservation::prepare_split`]), so
//! [`PreparedSplit::commit`] allocates nothing and cannot fail.

use super::{Poisoned, Reservation};
use crate::{
    alloc::{flags::GFP_KERNEL, KVec},
    bindings,
    error::{code::*, Error, Result},
    rgmem::folio::Folio,
    rgmem::fs::filemap::{InvalidateGuard, InvalidateHeld, Mapping},
    rgmem::{mm, sched},
    types::ARef,
};
use core::{
    ffi::c_void,
    ptr::NonNull,
    sync::atomic::{AtomicUsize, Ordering},
};

/// The order of a 2 MiB piece.
pub(super) const MID_ORDER: u32 = 9;
/// The order of a 1 GiB folio.
const GIGA_ORDER: u32 = 18;
/// The XArray's levels: 64 slots a node.
const CHUNK_SHIFT: u32 = 6;
/// The flag that marks pieces.
pub(super) const PIECE: usize = 1 << bindings::pageflags_PG_owner_priv_1;
/// "Zeroed and prepared", to guest_memfd.
const UPTODATE: usize = 1 << bindings::pageflags_PG_uptodate;
/// Memory failure's mark on the very page it hit, outside hugetlb folios.
const HWPOISON: usize = 1 << bindings::pageflags_PG_hwpoison;

/// The flags word of the folio headed by `folio`, whatever its refcount.
///
/// # Safety
///
/// `folio` must point to a page's `struct page`, which the memory map never frees.
pub(super) unsafe fn flags<'a>(folio: *mut bindings::folio) -> &'a AtomicUsize {
    // SAFETY: Per the function's contract the word exists; C only changes it atomically.
    unsafe {
        AtomicUsize::from_ptr((&raw mut (*folio).__bindgen_anon_1.__bindgen_anon_1.flags).cast())
    }
}

/// Whether the folio headed by `folio` is a piece.
///
/// # Safety
///
/// As [`flags`].
pub(super) unsafe fn is_piece(folio: *mut bindings::folio) -> bool {
    // SAFETY: Per the function's contract.
    unsafe { flags(folio) }.load(Ordering::Relaxed) & PIECE != 0
}

/// The order of the folio headed by `folio`.
///
/// # Safety
///
/// `folio` must head a folio that cannot change shape meanwhile.
pub(super) unsafe fn order_of(folio: *mut bindings::folio) -> u32 {
    // SAFETY: Per the function's contract.
    if unsafe { flags(folio) }.load(Ordering::Relaxed) & (1 << bindings::pageflags_PG_head) == 0 {
        return 0;
    }
    // SAFETY: Per the function's contract.
    unsafe { bindings::folio_order(folio) }
}

/// The references a cached folio of `order` holds when no one uses it: the cache's, one a page,
/// and a piece's pin.
///
/// # Safety
///
/// As [`flags`].
unsafe fn idle_refs(folio: *mut bindings::folio, order: u32) -> i32 {
    // SAFETY: Per the function's contract.
    (1 << order) + i32::from(unsafe { is_piece(folio) })
}

/// A page cache's XArray lock, held with interrupts off, as the page cache takes it.
///
/// # Invariants
///
/// `.0` is the `i_pages` of a live mapping, whose lock is held until drop.
#[must_use = "the lock is released when the guard is dropped"]
pub(super) struct XaLock(*mut bindings::xarray);

impl XaLock {
    pub(super) fn new(mapping: &Mapping) -> Self {
        // SAFETY: The mapping is live, and so its XArray.
        let xa = unsafe { &raw mut (*mapping.as_ptr()).i_pages };
        // SAFETY: As above.
        unsafe { bindings::rgmem_xa_lock_irq(xa) };
        // INVARIANT: Just taken.
        Self(xa)
    }

    /// The entry at `index`, and its order.
    pub(super) fn load(&self, index: u64) -> (*mut c_void, u32) {
        let mut xas = bindings::xa_state::default();
        // SAFETY: The XArray is live (type invariant) and `xas` a fresh state of it.
        unsafe {
            bindings::rgmem_xas_init(&mut xas, self.0, index as _, 0);
            let entry = bindings::xas_load(&mut xas);
            (entry, bindings::xas_get_order(&mut xas) as u32)
        }
    }

    /// Stores `folio` over the `1 << order` entries from `index`, which exist: the store
    /// allocates no node, and frees those it replaces.
    fn store(&self, index: u64, order: u32, folio: *mut bindings::folio) {
        let mut xas = bindings::xa_state::default();
        // SAFETY: The lock is held (type invariant); `xas` is a fresh state of this XArray.
        let err = unsafe {
            bindings::rgmem_xas_init(&mut xas, self.0, index as _, order);
            bindings::xas_store(&mut xas, folio.cast());
            bindings::rgmem_xas_error(&xas)
        };
        crate::warn_on!(err != 0);
    }
}

impl Drop for XaLock {
    fn drop(&mut self) {
        // SAFETY: Held by the type invariant.
        unsafe { bindings::rgmem_xa_unlock_irq(self.0) };
    }
}

/// The folio caching page `index` of `mapping`, referenced.
fn get_folio(mapping: &Mapping, index: u64) -> Option<ARef<Folio>> {
    // SAFETY: The mapping is live.
    let ptr = unsafe { bindings::__filemap_get_folio(mapping.as_ptr(), index as _, 0, 0) };
    if ptr.is_null() || (ptr as isize) < 0 && (ptr as isize) >= -(bindings::MAX_ERRNO as isize) {
        return None;
    }
    // SAFETY: On success the folio is returned with a reference, which moves into the `ARef`.
    Some(unsafe { Folio::from_owned_raw(NonNull::new_unchecked(ptr)) })
}

/// One XArray split, its nodes allocated: the entry at the state's index, of order `from`,
/// becomes entries of the state's order.
struct Round {
    xas: bindings::xa_state,
    from: u32,
}

/// The split of one folio of a hugetlb file, with every XArray node it needs allocated.
///
/// # Invariants
///
/// `folio` is the folio at `index` of `mapping`'s cache when prepared, of order `from`: the
/// whole hugetlb folio, or a 2 MiB piece. `rounds` hold the nodes to split its entry, level by
/// level, down to 2 MiB (a 1 GiB folio) and to base pages for each sub-block in `fine`. With
/// `poisoned`, the split isolates the poisoned pages of `folio`, which it names.
#[must_use = "a split does nothing until committed"]
pub struct PreparedSplit {
    folio: ARef<Folio>,
    index: u64,
    from: u32,
    hugetlb: bool,
    fine: [u64; 8],
    rounds: KVec<Round>,
    poisoned: Option<Poisoned>,
}

// SAFETY: The XArray states only point to the array and to their own nodes; nothing is per-task.
unsafe impl Send for PreparedSplit {}

impl Reservation {
    /// Reserves the split of the folio that starts at page `index` of the file: a whole 1 GiB
    /// folio into 2 MiB pieces, and the 2 MiB sub-blocks listed in `fine` further into base
    /// pages; a 2 MiB folio (whole, or a piece) into base pages, with `fine` listing only 0.
    ///
    /// `EINVAL` if the folio is not one of those, or not this reservation's; `EAGAIN` if someone
    /// besides the page cache holds it; `EHWPOISON` if a page of it is poisoned; `EOPNOTSUPP` if
    /// it has state a split cannot keep (an optimized vmemmap, in a reservation made without
    /// `splits`; a cgroup charge); `ENOMEM`. Nothing changes.
    pub fn prepare_split(
        &self,
        guard: &InvalidateGuard<'_>,
        index: u64,
        fine: impl IntoIterator<Item = usize>,
    ) -> Result<PreparedSplit> {
        let mapping = guard.mapping();
        let folio = get_folio(mapping, index).ok_or(EINVAL)?;
        let f = folio.as_ptr();
        let from = folio.order();
        if folio.index() as u64 != index || (from != MID_ORDER && from != GIGA_ORDER) {
            return Err(EINVAL);
        }
        // SAFETY: The folio is referenced.
        let hugetlb = unsafe { bindings::rgmem_folio_test_hugetlb(f) };
        if hugetlb {
            // SAFETY: A referenced hugetlb folio.
            let spool = unsafe { bindings::rgmem_hugetlb_folio_subpool(f) };
            if from != self.hstate.order() || spool != self.spool.as_ptr() {
                return Err(EINVAL);
            }
            if folio.test_hwpoison() {
                return Err(EHWPOISON);
            }
            // SAFETY: As above.
            if !unsafe { bindings::rgmem_hugetlb_folio_plain(f) } {
                return Err(EOPNOTSUPP);
            }
        // SAFETY: The folio is referenced.
        } else if !(unsafe { is_piece(f) } && from == MID_ORDER) {
            return Err(EINVAL);
        }
        let subs = 1usize << (from - MID_ORDER);
        let mut bits = [0u64; 8];
        for i in fine {
            if i >= subs {
                return Err(EINVAL);
            }
            bits[i / 64] |= 1 << (i % 64);
        }
        // SAFETY: The folio is referenced.
        if folio.ref_count() != unsafe { idle_refs(f, from) } + 1 {
            return Err(EAGAIN);
        }
        Self::reserve_split(mapping, folio, index, hugetlb, bits)
    }

    /// Reserves the split of `poisoned`, a whole folio of this reservation in the cache of
    /// `held`'s mapping, that isolates its poisoned pages: a 1 GiB folio into 2 MiB pieces, and
    /// the 2 MiB blocks holding a poisoned page, whichever the size, further into base pages.
    /// The split takes over the reference `poisoned` holds.
    ///
    /// `EAGAIN` if someone besides the page cache and `poisoned` holds the folio; `EIO` if memory
    /// failure lost track of the poisoned pages; `EOPNOTSUPP` if the folio has state a split
    /// cannot keep, or was never zeroed (pieces are); `EINVAL` if it is not cached there whole;
    /// `ENOMEM`. Nothing changes, and `poisoned` comes back.
    pub fn prepare_isolation(
        &self,
        held: &dyn InvalidateHeld,
        poisoned: Poisoned,
    ) -> core::result::Result<PreparedSplit, (Error, Poisoned)> {
        let r = self
            .isolation_plan(held.mapping(), &poisoned)
            .and_then(|(folio, bits)| {
                Self::reserve_split(held.mapping(), folio, poisoned.index(), true, bits)
            });
        match r {
            Ok(mut split) => {
                split.poisoned = Some(poisoned);
                Ok(split)
            }
            Err(e) => Err((e, poisoned)),
        }
    }

    /// The cached folio `poisoned` names, referenced, and its 2 MiB blocks to split to base
    /// pages.
    fn isolation_plan(
        &self,
        mapping: &Mapping,
        poisoned: &Poisoned,
    ) -> Result<(ARef<Folio>, [u64; 8])> {
        let index = poisoned.index();
        let folio = get_folio(mapping, index).ok_or(EINVAL)?;
        let f = folio.as_ptr();
        let from = folio.order();
        if f != poisoned.as_ptr() || folio.index() as u64 != index {
            return Err(EINVAL);
        }
        // SAFETY: The folio is referenced, a hugetlb folio (`poisoned`'s invariant).
        let spool = unsafe { bindings::rgmem_hugetlb_folio_subpool(f) };
        if from != self.hstate.order() || spool != self.spool.as_ptr() {
            return Err(EINVAL);
        }
        // SAFETY: As above.
        if !unsafe { bindings::rgmem_hugetlb_folio_plain(f) } || !folio.test_uptodate() {
            return Err(EOPNOTSUPP);
        }
        let mut bits = [0u64; 8];
        // SAFETY: The folio is referenced and hugetlb; `bits` has a bit for each of its 2 MiB
        // blocks, at most 512.
        let n = unsafe {
            bindings::rgmem_hugetlb_folio_hwpoison_blocks(f, MID_ORDER, bits.as_mut_ptr().cast())
        };
        if n <= 0 {
            return Err(EIO);
        }
        // The page cache's references, ours, and the one `poisoned` holds.
        // SAFETY: The folio is referenced.
        if folio.ref_count() != unsafe { idle_refs(f, from) } + 2 {
            return Err(EAGAIN);
        }
        Ok((folio, bits))
    }

    /// Allocates the XArray nodes to split `folio`, referenced and cached at `index` of
    /// `mapping`, into 2 MiB pieces if it is 1 GiB, and the 2 MiB blocks in `bits` into base
    /// pages.
    fn reserve_split(
        mapping: &Mapping,
        folio: ARef<Folio>,
        index: u64,
        hugetlb: bool,
        bits: [u64; 8],
    ) -> Result<PreparedSplit> {
        let from = folio.order();
        let subs = 1usize << (from - MID_ORDER);
        let to_mid = from == GIGA_ORDER;
        let fine_count = bits.iter().map(|w| w.count_ones() as usize).sum::<usize>();
        let count = if to_mid { 1 + (1 << CHUNK_SHIFT) } else { 0 } + fine_count;
        let mut split = PreparedSplit {
            folio,
            index,
            from,
            hugetlb,
            fine: bits,
            rounds: KVec::with_capacity(count, GFP_KERNEL)?,
            poisoned: None,
        };
        if to_mid {
            // 1 GiB to 64 entries of 4096 pages, then each of those to 8 entries of 512.
            split.reserve(mapping, index, GIGA_ORDER - CHUNK_SHIFT, GIGA_ORDER)?;
            for k in 0..1u64 << CHUNK_SHIFT {
                let at = index + (k << (GIGA_ORDER - CHUNK_SHIFT));
                split.reserve(mapping, at, MID_ORDER, GIGA_ORDER - CHUNK_SHIFT)?;
            }
        }
        for i in (0..subs).filter(|&i| bits[i / 64] & (1 << (i % 64)) != 0) {
            split.reserve(mapping, index + ((i as u64) << MID_ORDER), 0, MID_ORDER)?;
        }
        Ok(split)
    }
}

impl PreparedSplit {
    /// Allocates the nodes to split the entry of order `from` at `index` into entries of `order`.
    fn reserve(&mut self, mapping: &Mapping, index: u64, order: u32, from: u32) -> Result {
        let mut xas = bindings::xa_state::default();
        // SAFETY: The mapping is live; `xas` is a fresh state of its XArray. The nodes are filled
        // with the folio, which is what the entries hold until the commit stores the pieces.
        let err = unsafe {
            bindings::rgmem_xas_init(
                &mut xas,
                &raw mut (*mapping.as_ptr()).i_pages,
                index as _,
                order,
            );
            bindings::xas_split_alloc(
                &mut xas,
                self.folio.as_ptr().cast(),
                from,
                GFP_KERNEL.as_raw(),
            );
            bindings::rgmem_xas_error(&xas)
        };
        if err != 0 {
            return Err(ENOMEM);
        }
        // Capacity was reserved for every round.
        self.rounds
            .push(Round { xas, from }, GFP_KERNEL)
            .map_err(|_| ENOMEM)
    }

    /// The folios it splits, one level each: the 1 GiB folio, and the 2 MiB ones split further.
    pub fn levels(&self) -> u64 {
        u64::from(self.from == GIGA_ORDER)
            + self
                .fine
                .iter()
                .map(|w| u64::from(w.count_ones()))
                .sum::<u64>()
    }

    /// The XArray nodes it holds for the split, which the commit uses.
    pub fn nodes(&self) -> u64 {
        let mut n = 0;
        for round in self.rounds.iter() {
            let mut node = round.xas.xa_alloc;
            while !node.is_null() {
                n += 1;
                // SAFETY: The state's nodes are its own until the split uses them, and chained
                // through `parent` until then (`xas_split_alloc()`).
                node = unsafe { (*node).parent };
            }
        }
        n
    }

    /// Whether 2 MiB sub-block `i` becomes base pages.
    fn is_fine(&self, i: usize) -> bool {
        self.fine[i / 64] & (1 << (i % 64)) != 0
    }

    /// Calls `f` on each piece the split makes, as (page offset in the folio, order).
    fn for_each_piece(&self, mut f: impl FnMut(u64, u32)) {
        for i in 0..1usize << (self.from - MID_ORDER) {
            let base = (i as u64) << MID_ORDER;
            if self.is_fine(i) {
                (0..1u64 << MID_ORDER).for_each(|j| f(base + j, 0));
            } else {
                f(base, MID_ORDER);
            }
        }
    }

    /// Splits the folio in `mapping`'s cache. Waits out references taken since it was
    /// prepared, which only a transient user (a lookup, a walker of physical pages) can hold.
    pub fn commit(mut self, mapping: &Mapping) {
        let (f, index, from) = (self.folio.as_ptr(), self.index, self.from);
        // SAFETY: The folio is referenced (`self.folio`, and `self.poisoned` if any).
        let expected = unsafe { idle_refs(f, from) } + 1 + i32::from(self.poisoned.is_some());
        loop {
            let xa = XaLock::new(mapping);
            if xa.load(index) != (f.cast(), from) {
                // Something outside rgmem's locks changed the cache: the reservation does not
                // fit it any more. Nothing is split.
                crate::warn_on!(true);
                return;
            }
            // SAFETY: The folio is referenced.
            if unsafe { bindings::rgmem_folio_ref_freeze(f, expected) } {
                break;
            }
            drop(xa);
            sched::cond_resched();
        }
        // Frozen, the folio is ours alone: only we may reshape it, and its cache entries stay.
        if let Some(poisoned) = self.poisoned.take() {
            // SAFETY: A frozen hugetlb folio that no one else walks: memory failure's list of
            // its bad pages becomes the pages' own flags, which the split keeps.
            unsafe { bindings::rgmem_folio_clear_hugetlb_hwpoison(f) };
            poisoned.consume_frozen();
        }
        // SAFETY: The folio's pages exist.
        unsafe { flags(f) }.fetch_or(PIECE, Ordering::Relaxed);
        let first = if from == GIGA_ORDER { MID_ORDER } else { 0 };
        // SAFETY: Frozen, unmapped (no reference besides the cache's and ours), in this cache;
        // a hugetlb folio passed `prepare_split`'s checks, and a piece is a 2 MiB piece.
        unsafe {
            if self.hugetlb {
                bindings::rgmem_hugetlb_split_frozen_folio(f, first);
            } else {
                bindings::rgmem_hugetlb_reshape_frozen_pieces(f, from, first);
            }
        }
        if first == MID_ORDER {
            for i in (0..1usize << (from - MID_ORDER)).filter(|&i| self.is_fine(i)) {
                // SAFETY: Page `i << MID_ORDER` heads a frozen 2 MiB piece just made.
                unsafe {
                    let piece = bindings::rgmem_folio_nth(f, i << MID_ORDER);
                    bindings::rgmem_hugetlb_reshape_frozen_pieces(piece, MID_ORDER, 0);
                }
            }
        }
        {
            let xa = XaLock::new(mapping);
            for round in self.rounds.iter_mut() {
                // SAFETY: The lock is held; each round's entry exists at its order, as checked
                // above and made by the rounds before, and its nodes are allocated.
                unsafe { bindings::xas_split(&mut round.xas, f.cast(), round.from) };
            }
            self.for_each_piece(|offset, order| {
                // SAFETY: Page `offset` heads a piece.
                let piece = unsafe { bindings::rgmem_folio_nth(f, offset as _) };
                xa.store(index + offset, order, piece);
            });
        }
        // Each piece now has its own entry and may be found: it gets its references last.
        self.for_each_piece(|offset, order| {
            // SAFETY: Page `offset` heads a frozen piece; the first also holds `self.folio`'s
            // reference, which dropping `self` puts.
            unsafe {
                let piece = bindings::rgmem_folio_nth(f, offset as _);
                let ours = i32::from(offset == 0);
                bindings::rgmem_folio_ref_unfreeze(piece, (1 << order) + 1 + ours);
            }
        });
    }
}

impl Drop for PreparedSplit {
    fn drop(&mut self) {
        for round in self.rounds.iter_mut() {
            // SAFETY: The state's unused nodes are its own.
            unsafe { bindings::rgmem_xas_destroy(&mut round.xas) };
        }
    }
}

impl Reservation {
    /// The first piece, and its frame, of a block of `1 << order` pages cached from `first` in
    /// pieces: one of this reservation's hugetlb folios split, or a 2 MiB piece of one split
    /// further. `None` if the cache holds anything else there.
    pub(super) fn block_locked(
        &self,
        xa: &XaLock,
        first: u64,
        order: u32,
    ) -> Option<(*mut bindings::folio, u64)> {
        let (head, _) = xa.load(first);
        let head = head.cast::<bindings::folio>();
        // A folio pointer is word-aligned; other entries (values, internal ones) are not.
        if head.is_null() || head as usize & 3 != 0 {
            return None;
        }
        // SAFETY: Cached under the lock, so live; a piece does not change shape but through us.
        let (piece, head_order) = unsafe { (is_piece(head), order_of(head)) };
        // SAFETY: A live folio.
        let pfn = unsafe { bindings::folio_pfn(head) } as u64;
        if !piece || head_order >= order || pfn % (1 << order) != 0 {
            return None;
        }
        // SAFETY: A live folio; the private field of a piece's first page is this module's.
        let spool = unsafe { bindings::rgmem_page_private(head) };
        if order == self.hstate.order() && spool != self.spool.as_ptr() as _ {
            return None;
        }
        Some((head, pfn))
    }

    /// Merges the pieces caching pages `first..first + (1 << order)` of `mapping` into one folio
    /// of `order`: the whole hugetlb folio, or a 2 MiB piece of a 1 GiB one. Returns whether it
    /// did; it does not if the range is not wholly pieces of one folio of this reservation, if
    /// someone besides the page cache holds one of them, or if memory failure poisoned a page of
    /// them: a merge would hand it out again.
    ///
    /// Allocates nothing. The caller must have unmapped the pieces from user space.
    pub fn try_merge(&self, mapping: &Mapping, first: u64, order: u32) -> bool {
        matches!(
            self.merge_pieces(mapping, first, order, false),
            Merged::Healthy
        )
    }

    /// Merges a block of pieces back into its hugetlb folio, as [`Self::try_merge`] does, even
    /// with poisoned pages, to let it go: `Some` with the folio if a page of it is poisoned,
    /// which the caller removes from the cache and retires; `None` if it did not merge, or
    /// merged healthy.
    ///
    /// Under the invalidate lock held exclusively: until it is poisoned again, the re-formed
    /// folio must not be found by a fault.
    pub fn merge_poisoned(&self, guard: &InvalidateGuard<'_>, first: u64) -> Option<Poisoned> {
        match self.merge_pieces(guard.mapping(), first, self.hstate.order(), true) {
            Merged::Poisoned(p) => Some(p),
            _ => None,
        }
    }

    fn merge_pieces(&self, mapping: &Mapping, first: u64, order: u32, poisoned_ok: bool) -> Merged {
        let whole = self.hstate.order();
        let hugetlb = order == whole;
        if !(hugetlb || (order == MID_ORDER && whole == GIGA_ORDER)) || first % (1 << order) != 0 {
            return Merged::No;
        }
        // Only a whole folio may merge poisoned, to be retired.
        let poisoned_ok = poisoned_ok && hugetlb;
        // Only with a failure anywhere are pages looked at one by one.
        let check_poison = mm::any_hwpoison();
        let mut poisoned = false;
        let xa = XaLock::new(mapping);
        let Some((head, pfn)) = self.block_locked(&xa, first, order) else {
            return Merged::No;
        };
        // Freeze every piece, checking each is the one cached at its place.
        let mut frozen = 0u64;
        let (mut ok, mut uptodate) = (true, true);
        while frozen < 1 << order {
            let (entry, _) = xa.load(first + frozen);
            // SAFETY: Every frame of an aligned huge page exists.
            let p = unsafe { bindings::rgmem_pfn_folio((pfn + frozen) as usize) };
            // SAFETY: `p` is cached under the lock (checked first), so live.
            if entry != p.cast() || !unsafe { is_piece(p) } {
                ok = false;
                break;
            }
            // SAFETY: As above.
            let o = unsafe { order_of(p) };
            // SAFETY: As above.
            if !unsafe { bindings::rgmem_folio_ref_freeze(p, idle_refs(p, o)) } {
                ok = false;
                break;
            }
            // SAFETY: As above.
            uptodate &= unsafe { flags(p) }.load(Ordering::Relaxed) & UPTODATE != 0;
            if check_poison {
                // SAFETY: `p` is frozen; each of its pages exists.
                poisoned |= (0..1usize << o).any(|i| unsafe {
                    flags(bindings::rgmem_folio_nth(p, i)).load(Ordering::Relaxed) & HWPOISON != 0
                });
            }
            frozen += 1 << o;
            if poisoned && !poisoned_ok {
                ok = false;
                break;
            }
        }
        if !ok {
            let mut at = 0u64;
            while at < frozen {
                // SAFETY: Frozen above by us, so still the piece at `at`.
                unsafe {
                    let p = bindings::rgmem_pfn_folio((pfn + at) as usize);
                    let o = order_of(p);
                    bindings::rgmem_folio_ref_unfreeze(p, idle_refs(p, o));
                    at += 1 << o;
                }
            }
            return Merged::No;
        }
        xa.store(first, order, head);
        drop(xa);
        // SAFETY: Every page of the range is in a frozen piece of this folio, now cached as one
        // entry; for a hugetlb merge the first page keeps this reservation's subpool.
        unsafe {
            if hugetlb {
                bindings::rgmem_hugetlb_merge_frozen_folio(head, order);
                flags(head).fetch_and(!PIECE, Ordering::Relaxed);
            } else {
                bindings::rgmem_hugetlb_reshape_frozen_pieces(head, order, order);
            }
            // The folio reads as its first page says; a page never zeroed must be, on next use.
            if !uptodate {
                flags(head).fetch_and(!UPTODATE, Ordering::Relaxed);
            }
            // A poisoned folio gets one reference more, for the caller to retire it with.
            let extra = i32::from(poisoned);
            bindings::rgmem_folio_ref_unfreeze(head, idle_refs(head, order) + extra);
        }
        if !poisoned {
            return Merged::Healthy;
        }
        // SAFETY: A hugetlb folio re-formed above, referenced by the extra reference, and out of
        // reach: faults are kept out by the caller's lock, and nothing else maps it.
        unsafe { bindings::rgmem_hugetlb_folio_relist_hwpoison(head) };
        // SAFETY: As above; the extra reference moves into the result.
        Merged::Poisoned(unsafe { Poisoned::from_reformed(NonNull::new_unchecked(head)) })
    }
}

/// What [`Reservation::merge_pieces`] did.
enum Merged {
    No,
    Healthy,
    Poisoned(Poisoned),
}
