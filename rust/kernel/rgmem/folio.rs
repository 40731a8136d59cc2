// SPDX-License-Identifier: GPL-2.0

//! Folios: refcounted groups of pages, as the page cache holds them.
//!
//! C header: [`include/linux/mm.h`](srctree/include/linux/mm.h)

use crate::{
    bindings,
    error::{code::EINVAL, Result},
    types::{ARef, AlwaysRefCounted, Opaque},
};
use core::{
    ops::Deref,
    ptr::NonNull,
    sync::atomic::{fence, AtomicUsize, Ordering},
};

/// A reference-counted folio.
///
/// # Invariants
///
/// The folio's refcount is non-zero for as long as a `&Folio` exists; an [`ARef<Folio>`] owns one
/// reference.
#[repr(transparent)]
pub struct Folio(Opaque<bindings::folio>);

// SAFETY: Folio refcounting and the flags used here are atomic, so a folio may be used and
// released from any thread.
unsafe impl Send for Folio {}
// SAFETY: All `&Folio` methods are safe to call concurrently.
unsafe impl Sync for Folio {}

// SAFETY: `folio_get`/`folio_put` keep the folio alive while a reference exists.
unsafe impl AlwaysRefCounted for Folio {
    #[inline]
    fn inc_ref(&self) {
        // SAFETY: The refcount is non-zero by the type invariant.
        unsafe { bindings::folio_get(self.as_ptr()) }
    }

    #[inline]
    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller owns a reference.
        unsafe { bindings::folio_put(obj.cast().as_ptr()) }
    }
}

impl Folio {
    /// Creates a reference from a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a folio whose refcount stays non-zero for `'a`.
    #[inline]
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::folio) -> &'a Self {
        // SAFETY: `Folio` is a transparent wrapper, and the caller keeps the folio alive.
        unsafe { &*ptr.cast() }
    }

    /// Takes ownership of a reference the caller holds.
    ///
    /// # Safety
    ///
    /// `ptr` must be a valid folio on which the caller owns a reference, which moves into the
    /// returned [`ARef`].
    #[inline]
    pub unsafe fn from_owned_raw(ptr: NonNull<bindings::folio>) -> ARef<Self> {
        // SAFETY: The caller's reference moves into the `ARef`.
        unsafe { ARef::from_raw(ptr.cast()) }
    }

    /// Returns the raw pointer.
    #[inline]
    pub fn as_ptr(&self) -> *mut bindings::folio {
        self.0.get()
    }

    /// Returns the page frame number of the first page.
    #[inline]
    pub fn pfn(&self) -> u64 {
        // SAFETY: The folio is valid by the type invariant.
        unsafe { bindings::folio_pfn(self.as_ptr()) as u64 }
    }

    /// Returns the folio's flags word, which C changes with atomic bit operations.
    ///
    /// The flag tests below read it as C's static inlines do, which saves a call each on the
    /// fault path.
    #[inline]
    pub(crate) fn flags(&self) -> &AtomicUsize {
        // SAFETY: The folio is valid by the type invariant, `flags` is an aligned
        // `unsigned long`, and C only changes it atomically.
        unsafe {
            AtomicUsize::from_ptr(
                (&raw mut (*self.as_ptr()).__bindgen_anon_1.__bindgen_anon_1.flags).cast(),
            )
        }
    }

    #[inline]
    fn test_flag(&self, flag: bindings::pageflags) -> bool {
        self.flags().load(Ordering::Relaxed) & (1 << flag) != 0
    }

    /// Returns the allocation order; 0 for a single page.
    #[inline]
    pub fn order(&self) -> u32 {
        // As `folio_order()`: only a large folio has a head page that stores its order.
        if !self.test_flag(bindings::pageflags_PG_head) {
            return 0;
        }
        // SAFETY: The folio is valid by the type invariant.
        unsafe { bindings::folio_order(self.as_ptr()) }
    }

    /// Returns the page index of the folio's first page in its file's mapping.
    ///
    /// Only stable while the folio is locked, or otherwise known to stay in its mapping. Not
    /// for swap cache folios, whose index means something else.
    #[inline]
    pub fn index(&self) -> usize {
        // SAFETY: The folio is valid by the type invariant; a racy read is the caller's concern.
        unsafe { (*self.as_ptr()).__bindgen_anon_1.__bindgen_anon_1.index }
    }

    /// Returns the page index after the folio's last page.
    ///
    /// Only stable while the folio is locked, or otherwise known to stay in its mapping.
    #[inline]
    pub fn next_index(&self) -> usize {
        self.index() + self.nr_pages()
    }

    /// Returns the number of pages.
    #[inline]
    pub fn nr_pages(&self) -> usize {
        1 << self.order()
    }

    /// Returns the reference count; only meaningful while nobody can take new references.
    #[inline]
    pub fn ref_count(&self) -> i32 {
        // SAFETY: The folio is valid by the type invariant.
        unsafe { bindings::folio_ref_count(self.as_ptr()) }
    }

    /// Returns whether the folio is up to date.
    #[inline]
    pub fn test_uptodate(&self) -> bool {
        let r = self.test_flag(bindings::pageflags_PG_uptodate);
        // As `folio_test_uptodate()`: the contents are read after the flag.
        if r {
            fence(Ordering::Acquire);
        }
        r
    }

    /// Returns whether the folio is a piece of a split hugetlb folio (see `hugetlb::split`),
    /// which holds one reference of its own besides the page cache's.
    #[inline]
    pub(crate) fn is_piece(&self) -> bool {
        self.test_flag(bindings::pageflags_PG_owner_priv_1)
    }

    /// Returns whether memory failure poisoned any page of the folio.
    #[inline]
    pub fn test_hwpoison(&self) -> bool {
        #[cfg(CONFIG_MEMORY_FAILURE)]
        return self.test_flag(bindings::pageflags_PG_hwpoison);
        #[cfg(not(CONFIG_MEMORY_FAILURE))]
        return false;
    }

    /// Returns whether memory failure poisoned file page `index`, which the folio caches.
    #[inline]
    pub fn page_hwpoisoned(&self, index: u64) -> bool {
        if self.order() == 0 {
            return self.test_hwpoison();
        }
        self.first_hwpoisoned(index, index + 1).is_some()
    }

    /// Returns the first of file pages `start..end` that the folio caches and memory failure
    /// poisoned.
    ///
    /// Memory failure flags the very page it hit, except in a hugetlb folio: that flags its head
    /// and lists the pages apart, so there one poisoned page stands for all of them.
    pub fn first_hwpoisoned(&self, start: u64, end: u64) -> Option<u64> {
        let first = self.index() as u64;
        let (start, end) = (start.max(first), end.min(first + self.nr_pages() as u64));
        if start >= end {
            return None;
        }
        // SAFETY: The folio is valid by the type invariant.
        if self.order() == 0 || unsafe { bindings::rgmem_folio_test_hugetlb(self.as_ptr()) } {
            return self.test_hwpoison().then_some(start);
        }
        // SAFETY: The folio is valid, and each `i - first` is the number of one of its pages.
        (start..end).find(|&i| unsafe {
            bindings::rgmem_page_hwpoison(self.as_ptr(), (i - first) as usize)
        })
    }

    /// Returns the frame of file page `index`, or `EINVAL` if the folio does not cache it.
    #[inline]
    pub fn pfn_of(&self, index: u64) -> Result<u64> {
        let start = self.index() as u64;
        match index.checked_sub(start) {
            Some(i) if i < self.nr_pages() as u64 => Ok(self.pfn() + i),
            _ => Err(EINVAL),
        }
    }

    /// Locks the folio, sleeping until it is available.
    pub fn lock(this: ARef<Self>) -> LockedFolio {
        // SAFETY: The folio is valid, and we may sleep here.
        unsafe { bindings::folio_lock(this.as_ptr()) };
        // INVARIANT: We just locked it.
        LockedFolio(this)
    }
}

/// A folio the page cache is freeing: its refcount may be zero, so it cannot be referenced, but it
/// stays allocated while the reference lives.
///
/// # Invariants
///
/// The folio is allocated, and no one else changes its size, for the lifetime of the reference.
#[repr(transparent)]
pub struct FreedFolio(Opaque<bindings::folio>);

impl FreedFolio {
    /// # Safety
    ///
    /// `ptr` must be a folio that stays allocated, at its size, for `'a`.
    #[inline]
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::folio) -> &'a Self {
        // SAFETY: `FreedFolio` is a transparent wrapper, and the caller keeps it allocated.
        unsafe { &*ptr.cast() }
    }

    /// Returns the page frame number of the first page.
    #[inline]
    pub fn pfn(&self) -> u64 {
        // SAFETY: The folio is allocated by the type invariant.
        unsafe { bindings::folio_pfn(self.0.get()) as u64 }
    }

    /// Returns the number of pages.
    #[inline]
    pub fn nr_pages(&self) -> usize {
        // SAFETY: As above, and its size does not change meanwhile.
        1 << unsafe { bindings::folio_order(self.0.get()) }
    }
}

/// The frames of a folio that the caller holds or that is being freed.
pub trait Frames: sealed::Sealed {
    /// The first page frame number, and the number of pages.
    fn frames(&self) -> (u64, usize);
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Folio {}
    impl Sealed for super::FreedFolio {}
}

impl Frames for Folio {
    #[inline]
    fn frames(&self) -> (u64, usize) {
        (self.pfn(), self.nr_pages())
    }
}

impl Frames for FreedFolio {
    #[inline]
    fn frames(&self) -> (u64, usize) {
        (self.pfn(), self.nr_pages())
    }
}

/// A referenced folio that this owner has locked.
///
/// # Invariants
///
/// The folio lock is held by this value, and released when it is dropped.
#[must_use = "the folio is unlocked when this is dropped"]
pub struct LockedFolio(ARef<Folio>);

impl LockedFolio {
    /// Wraps a folio that the caller has locked.
    ///
    /// # Safety
    ///
    /// The caller must hold the folio lock and hand it over.
    #[inline]
    pub(crate) unsafe fn from_locked(folio: ARef<Folio>) -> Self {
        // INVARIANT: The caller hands us the lock.
        Self(folio)
    }

    /// Marks the folio up to date; guest_memfd uses this for "zeroed and prepared".
    #[inline]
    pub fn mark_uptodate(&self) {
        // As `folio_mark_uptodate()`: the contents are written before the flag.
        fence(Ordering::Release);
        self.0
            .flags()
            .fetch_or(1 << bindings::pageflags_PG_uptodate, Ordering::Relaxed);
    }

    /// Fills every page of the folio with zeroes; may sleep between pages of a huge folio.
    #[inline]
    pub fn zero(&self) {
        for i in 0..self.0.nr_pages() {
            // SAFETY: `i` is within the folio, and we own a reference.
            unsafe { bindings::folio_clear_page(self.0.as_ptr(), i as _) };
            // A 1 GiB folio takes long to clear: let others run every 2 MiB.
            if i % 512 == 511 {
                crate::rgmem::sched::cond_resched();
            }
        }
    }

    /// Gives up the lock and the reference, for C code that releases both.
    #[inline]
    pub fn into_raw(self) -> NonNull<bindings::folio> {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this.0` is read exactly once and `this` is not dropped, so the lock and the
        // reference move to the caller.
        ARef::into_raw(unsafe { core::ptr::read(&this.0) }).cast()
    }

    /// Unlocks the folio and returns the reference.
    #[inline]
    pub fn unlock(self) -> ARef<Folio> {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: We hold the lock by the type invariant, and `this` is never used again.
        unsafe { bindings::folio_unlock(this.0.as_ptr()) };
        // SAFETY: `this.0` is read exactly once and `this` is not dropped.
        unsafe { core::ptr::read(&this.0) }
    }
}

impl Deref for LockedFolio {
    type Target = Folio;

    #[inline]
    fn deref(&self) -> &Folio {
        &self.0
    }
}

impl Drop for LockedFolio {
    fn drop(&mut self) {
        // SAFETY: We hold the lock by the type invariant.
        unsafe { bindings::folio_unlock(self.0.as_ptr()) };
    }
}
