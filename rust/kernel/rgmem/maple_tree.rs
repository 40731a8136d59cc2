// SPDX-License-Identifier: GPL-2.0

//! Maple trees of index ranges, written under a mapping's invalidate lock.
//!
//! C header: [`include/linux/maple_tree.h`](srctree/include/linux/maple_tree.h)

use crate::{
    bindings,
    error::{to_result, Result},
    new_spinlock,
    prelude::*,
    rgmem::fs::filemap::{InvalidateGuard, InvalidateHeld, Mapping},
    sync::SpinLock,
    types::Opaque,
};
use core::{marker::PhantomData, mem::ManuallyDrop, ptr};

/// A maple tree that maps ranges of page indices to small integers.
///
/// Writers are serialised by the invalidate lock of one [`Mapping`], held exclusively; the tree
/// uses it as its external lock, so lockdep checks every write. Readers hold that lock in either
/// mode, or, from any context, take the tree's spinlock `readers`, which every write also takes
/// around the moment it changes the tree ([`RangeTree::load`], [`RangeTree::for_each`]).
///
/// The tree is not in RCU mode: in 6.12, freeing the dead nodes of a large spanning store from
/// the RCU callback (`mt_free_walk()`) dereferences NULL when a store collapses a deep tree, as
/// converting a fully fragmented 1 GiB range does. Without RCU mode, writes free nodes at once,
/// and readers outside the invalidate lock are excluded by `readers` instead.
///
/// Writes may allocate only in [`RangeTree::prepare_store`]; the [`PreparedStore`] it returns
/// then stores without allocating, so it cannot fail.
///
/// # Invariants
///
/// - `tree` is initialised with an external lock, which is the invalidate lock of the mapping at
///   `lock`; every write holds it exclusively, and holds `readers` while it changes the tree.
/// - Every entry is a value entry (`xa_mk_value()`) of a `u32`.
#[pin_data(PinnedDrop)]
pub struct RangeTree {
    #[pin]
    tree: Opaque<bindings::maple_tree>,
    #[pin]
    readers: SpinLock<()>,
    lock: *const bindings::address_space,
}

// SAFETY: Writes are serialised by the external lock and exclude `readers`, from any thread.
unsafe impl Send for RangeTree {}
// SAFETY: As above; every `&self` method either takes a guard of the lock or `readers`.
unsafe impl Sync for RangeTree {}

/// A range of indices `first..=last` and the value stored over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// First index.
    pub first: u64,
    /// Last index, inclusive.
    pub last: u64,
    /// The value.
    pub value: u32,
}

fn to_entry(value: u32) -> *mut core::ffi::c_void {
    // As `xa_mk_value()`: a value entry is an odd pointer, never a node.
    (((value as usize) << 1) | 1) as *mut _
}

fn from_entry(entry: *mut core::ffi::c_void) -> Option<u32> {
    (!entry.is_null()).then_some((entry as usize >> 1) as u32)
}

/// A maple tree operation state, as `MA_STATE()` builds it.
fn ma_state(tree: *mut bindings::maple_tree, first: u64, last: u64) -> bindings::ma_state {
    bindings::ma_state {
        tree,
        index: first as _,
        last: last as _,
        node: ptr::null_mut(),
        status: bindings::maple_status_ma_start,
        min: 0,
        max: usize::MAX as _,
        alloc: ptr::null_mut(),
        store_type: bindings::store_type_wr_invalid,
        ..Default::default()
    }
}

impl RangeTree {
    /// An empty tree whose writers hold the invalidate lock of `mapping`.
    pub fn new(mapping: &Mapping) -> impl PinInit<Self> {
        let lock = mapping.as_ptr().cast_const();
        pin_init!(Self {
            // SAFETY: `mt_init_flags` initialises every field the tree uses, and the external
            // lock it records lives in `mapping`, which outlives every write (writes hold it).
            tree <- unsafe {
                Opaque::ffi_init(move |t: *mut bindings::maple_tree| {
                    bindings::mt_init_flags(t, bindings::MT_FLAGS_LOCK_EXTERN);
                    bindings::mt_set_external_lock(t, lock.cast_mut());
                })
            },
            readers <- new_spinlock!(()),
            lock,
        })
    }

    fn as_ptr(&self) -> *mut bindings::maple_tree {
        self.tree.get()
    }

    /// Whether `held` holds this tree's lock.
    fn check(&self, held: &impl InvalidateHeld) -> Result {
        if ptr::eq(held.mapping().as_ptr(), self.lock) {
            Ok(())
        } else {
            Err(EINVAL)
        }
    }

    /// Returns the value at `index`; callable from any context that may take a spinlock.
    pub fn load(&self, index: u64) -> Option<u32> {
        let _readers = self.readers.lock();
        // SAFETY: The tree is initialised and no write changes it while `readers` is held;
        // `mtree_load` takes the RCU read lock for lockdep, and value entries need no lifetime.
        from_entry(unsafe { bindings::mtree_load(self.as_ptr(), index as _) })
    }

    /// Returns the first and last index of the range, stored or empty, that holds `index`;
    /// callable from any context that may take a spinlock.
    pub fn extent(&self, index: u64) -> (u64, u64) {
        let _readers = self.readers.lock();
        let mut mas = ma_state(self.as_ptr(), index, index);
        // SAFETY: Paired with the unlock below; lockdep wants RCU or the tree's lock for a walk.
        unsafe { bindings::rcu_read_lock() };
        // SAFETY: The tree is initialised and no write changes it while `readers` is held.
        unsafe { bindings::mas_walk(&mut mas) };
        // SAFETY: Taken above.
        unsafe { bindings::rcu_read_unlock() };
        // The walk widens `index..=index` to the range holding `index`.
        (mas.index as u64, mas.last as u64)
    }

    /// Iterates over the stored ranges that overlap `first..=last`, in order. The first and last
    /// ranges are whole, so they may extend beyond `first..=last`.
    pub fn ranges<'a, H: InvalidateHeld>(
        &'a self,
        held: &'a H,
        first: u64,
        last: u64,
    ) -> Result<Ranges<'a, H>> {
        self.check(held)?;
        // INVARIANT: `held` holds the lock for `'a`.
        Ok(Ranges {
            tree: self.as_ptr(),
            next: Some(first),
            max: last,
            _held: PhantomData,
        })
    }

    /// Returns the value at `index`, for a holder of the tree's lock in either mode, which keeps
    /// writers out without `readers`.
    pub fn load_locked(&self, held: &impl InvalidateHeld, index: u64) -> Result<Option<u32>> {
        self.check(held)?;
        // SAFETY: The tree is initialised and its lock held; `mtree_load` takes the RCU read
        // lock for lockdep, and value entries need no lifetime.
        Ok(from_entry(unsafe {
            bindings::mtree_load(self.as_ptr(), index as _)
        }))
    }

    /// Calls `f` on every stored range, in order, from any context that may take a spinlock. `f`
    /// must not sleep.
    pub fn for_each(&self, f: impl FnMut(Range)) {
        let _readers = self.readers.lock();
        // SAFETY: Paired with the unlock below; lockdep wants RCU or the tree's lock for a walk.
        unsafe { bindings::rcu_read_lock() };
        // INVARIANT: No write changes the tree while `readers` is held.
        Ranges::<()> {
            tree: self.as_ptr(),
            next: Some(0),
            max: u64::MAX,
            _held: PhantomData,
        }
        .for_each(f);
        // SAFETY: Taken above.
        unsafe { bindings::rcu_read_unlock() };
    }

    /// Reserves the nodes to store `value` over `first..=last`.
    ///
    /// The exclusive guard stays borrowed until the store is committed or dropped, so that
    /// nothing else can change the tree in between and invalidate the reservation.
    pub fn prepare_store<'a>(
        &'a self,
        guard: &'a mut InvalidateGuard<'_>,
        first: u64,
        last: u64,
        value: u32,
    ) -> Result<PreparedStore<'a>> {
        self.check(guard)?;
        if first > last {
            return Err(EINVAL);
        }
        let mut mas = ma_state(self.as_ptr(), first, last);
        // SAFETY: `mas` is a fresh state of this tree, whose lock `guard` holds exclusively.
        to_result(unsafe {
            bindings::mas_preallocate(&mut mas, to_entry(value), bindings::GFP_KERNEL)
        })?;
        // INVARIANT: `mas` holds the reservation for exactly this store, and the guard is
        // borrowed until the store is consumed.
        Ok(PreparedStore {
            mas,
            value,
            readers: &self.readers,
            _guard: PhantomData,
        })
    }
}

#[pinned_drop]
impl PinnedDrop for RangeTree {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: No other reference to the tree exists, so no lock is needed: clearing the
        // lockdep map tells the tree so.
        unsafe {
            bindings::mt_clear_external_lock(self.as_ptr());
            bindings::__mt_destroy(self.as_ptr());
        }
    }
}

/// Iterator over the ranges of a [`RangeTree`] that overlap an index range.
///
/// # Invariants
///
/// `tree` is a tree whose lock, or whose `readers` lock, is held for `'a`.
pub struct Ranges<'a, H> {
    tree: *mut bindings::maple_tree,
    next: Option<u64>,
    max: u64,
    _held: PhantomData<&'a H>,
}

impl<H> Iterator for Ranges<'_, H> {
    type Item = Range;

    fn next(&mut self) -> Option<Range> {
        while let Some(index) = self.next.filter(|&i| i <= self.max) {
            let mut mas = ma_state(self.tree, index, index);
            // SAFETY: The tree's lock is held by the type invariant, which makes the walk safe.
            let entry = unsafe { bindings::mas_walk(&mut mas) };
            // The walk widens `index..=last` to the range holding `index`, empty or not.
            let (first, last) = (mas.index as u64, mas.last as u64);
            self.next = last.checked_add(1);
            if let Some(value) = from_entry(entry) {
                return Some(Range { first, last, value });
            }
        }
        None
    }
}

/// A store into a [`RangeTree`] whose nodes are reserved; [`PreparedStore::commit`] cannot fail.
///
/// Dropping it instead releases the reservation and leaves the tree unchanged.
///
/// # Invariants
///
/// `mas` holds the preallocation for storing `value` over its range, the tree has not changed
/// since it was made, and the tree's lock stays held exclusively for `'a`.
pub struct PreparedStore<'a> {
    mas: bindings::ma_state,
    value: u32,
    readers: &'a SpinLock<()>,
    _guard: PhantomData<&'a mut ()>,
}

impl PreparedStore<'_> {
    /// Performs the store.
    pub fn commit(self) {
        let mut this = ManuallyDrop::new(self);
        let _readers = this.readers.lock();
        // `mas_store_prealloc` frees what was left over, and the nodes the store replaced, which
        // no reader can hold while `readers` is held.
        // SAFETY: By the type invariant the nodes are reserved for exactly this store.
        unsafe { bindings::mas_store_prealloc(&mut this.mas, to_entry(this.value)) };
    }
}

impl Drop for PreparedStore<'_> {
    fn drop(&mut self) {
        // SAFETY: The state is ours; this frees the unused reservation.
        unsafe { bindings::mas_destroy(&mut self.mas) };
    }
}
