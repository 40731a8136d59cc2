// SPDX-License-Identifier: GPL-2.0

//! The page cache of a file (`struct address_space`), its invalidate lock, and the
//! `address_space_operations` a file type implements.
//!
//! C header: [`include/linux/pagemap.h`](srctree/include/linux/pagemap.h)

use crate::{
    bindings,
    error::{code::*, Error, Result},
    page::PAGE_SHIFT,
    rgmem::folio::{Folio, FreedFolio, LockedFolio},
    rgmem::fs::file,
    types::{ARef, Opaque},
};
use core::{marker::PhantomData, ops::ControlFlow, ptr::NonNull, sync::atomic::Ordering};

/// A file's page cache.
///
/// # Invariants
///
/// The mapping, and so its inode, is alive while a `&Mapping` exists.
#[repr(transparent)]
pub struct Mapping(Opaque<bindings::address_space>);

// SAFETY: The page cache is designed for concurrent use; every method takes the locks it needs.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Creates a reference from a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a mapping that stays alive for `'a`.
    #[inline]
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::address_space) -> &'a Self {
        // SAFETY: `Mapping` is a transparent wrapper, and the caller keeps the mapping alive.
        unsafe { &*ptr.cast() }
    }

    /// Returns the raw pointer.
    #[inline]
    pub fn as_ptr(&self) -> *mut bindings::address_space {
        self.0.get()
    }

    /// Takes the invalidate lock exclusively: no folio may be added while it is held.
    #[inline]
    pub fn invalidate_lock(&self) -> InvalidateGuard<'_> {
        // SAFETY: The mapping is valid by the type invariant.
        unsafe { bindings::filemap_invalidate_lock(self.as_ptr()) };
        // INVARIANT: We just took it.
        InvalidateGuard(self, PhantomData)
    }

    /// Takes the invalidate lock shared, excluding truncation and hole punching.
    #[inline]
    pub fn invalidate_lock_shared(&self) -> InvalidateSharedGuard<'_> {
        // SAFETY: The mapping is valid by the type invariant.
        unsafe { bindings::filemap_invalidate_lock_shared(self.as_ptr()) };
        // INVARIANT: We just took it.
        InvalidateSharedGuard(self, PhantomData)
    }

    /// Returns the number of pages in the cache.
    #[inline]
    pub fn nr_pages(&self) -> usize {
        // SAFETY: The mapping is valid; a racy read is fine for a statistic.
        unsafe { core::ptr::read_volatile(&(*self.as_ptr()).nrpages) as usize }
    }

    /// Looks up the folio caching page `index` and locks it; `None` if there is none.
    #[inline]
    pub fn lock_folio(&self, index: usize) -> Result<Option<LockedFolio>> {
        // SAFETY: The mapping is valid by the type invariant.
        let ptr = unsafe {
            bindings::__filemap_get_folio(self.as_ptr(), index as _, bindings::FGP_LOCK, 0)
        };
        // `IS_ERR()` inline: this runs on every fault.
        let value = ptr as isize;
        if (-(bindings::MAX_ERRNO as isize)..0).contains(&value) {
            // Not found is the common case of a first fault: no call to make an `Error` of it.
            if value == -(bindings::ENOENT as isize) {
                return Ok(None);
            }
            return Err(Error::from_errno(value as i32));
        }
        // SAFETY: On success the folio is returned locked and referenced.
        Ok(Some(unsafe { locked(ptr) }))
    }

    /// Returns the mask that `mapping_gfp_mask()` returns.
    #[inline]
    fn gfp_mask(&self) -> bindings::gfp_t {
        // SAFETY: The mapping is valid; its mask is set before the file is installed.
        unsafe { (*self.as_ptr()).gfp_mask }
    }

    /// Allocates a folio of `order` with the mapping's GFP mask.
    #[inline]
    pub fn alloc_folio(&self, order: u32) -> Result<NewFolio> {
        let gfp = self.gfp_mask();
        // SAFETY: No preconditions.
        let ptr = unsafe { bindings::filemap_alloc_folio(gfp, order) };
        let ptr = NonNull::new(ptr).ok_or(ENOMEM)?;
        // SAFETY: Just allocated: unlocked, in no mapping, not hugetlb, and ours alone.
        Ok(unsafe { NewFolio::from_raw(ptr, false) })
    }

    /// Inserts a new folio at page `index`, which must be a multiple of its size, and returns it
    /// locked.
    ///
    /// Fails with `EEXIST` if another folio already caches part of the range, and `EINVAL` if
    /// `index` is misaligned; the folio is then freed.
    #[inline]
    pub fn add_folio(&self, folio: NewFolio, index: usize) -> Result<LockedFolio> {
        let (gfp, new) = (self.gfp_mask(), folio.folio.as_ptr());
        if index & (folio.folio.nr_pages() - 1) != 0 {
            return Err(EINVAL);
        }
        let r = if folio.hugetlb {
            // As hugetlbfs: a hugetlb folio is neither charged to a memory cgroup nor put on an
            // LRU list, whose list head it uses; it stays the pool's.
            // SAFETY: By `NewFolio`'s invariant no one else sees the folio, so its lock bit may be
            // set non-atomically; `__filemap_add_folio` needs it locked and aligned, as it is.
            unsafe {
                bindings::rgmem___folio_set_locked(new);
                let r = bindings::rgmem___filemap_add_folio(self.as_ptr(), new, index as _, gfp);
                if r != 0 {
                    bindings::rgmem___folio_clear_locked(new);
                }
                r
            }
        } else {
            // SAFETY: By `NewFolio`'s invariant the folio is unlocked, in no mapping, and ours
            // alone; on success it is returned locked, and the page cache takes its references.
            unsafe { bindings::filemap_add_folio(self.as_ptr(), new, index as _, gfp) }
        };
        // Tested here, as `to_result()` is a call on every fault.
        if r != 0 {
            return Err(Error::from_errno(r));
        }
        // SAFETY: The folio is locked on success.
        Ok(unsafe { LockedFolio::from_locked(folio.folio) })
    }

    /// Unmaps pages `start..end` from every process that maps them; the next access faults.
    pub fn unmap_pages(&self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // SAFETY: The mapping is valid by the type invariant.
        unsafe {
            bindings::unmap_mapping_pages(self.as_ptr(), start as _, (end - start) as _, false)
        };
    }

    /// Calls `f` on each folio cached in pages `start..end`, in order, until it breaks.
    pub fn for_each_folio<B>(
        &self,
        start: u64,
        end: u64,
        mut f: impl FnMut(&CachedFolio) -> ControlFlow<B>,
    ) -> Option<B> {
        let mut next = start as crate::ffi::c_ulong;
        let mut batch = bindings::folio_batch::default();
        while (next as u64) < end {
            // SAFETY: The mapping is valid and `batch` is empty; each folio found comes with a
            // reference, which `folio_batch_release` drops.
            let n = unsafe {
                bindings::filemap_get_folios(self.as_ptr(), &mut next, (end - 1) as _, &mut batch)
            };
            if n == 0 {
                break;
            }
            let r = batch.folios[..n as usize].iter().try_for_each(|&p| {
                // SAFETY: The batch holds a reference to each of its folios.
                f(unsafe { CachedFolio::from_raw(p) })
            });
            // SAFETY: The folios are the batch's, and nothing borrows them any more.
            unsafe { bindings::folio_batch_release(&mut batch) };
            if let ControlFlow::Break(b) = r {
                return Some(b);
            }
        }
        None
    }

    /// Removes every folio overlapping bytes `[start, end)` from the cache, after unmapping the
    /// range from every process, memory failure's poison entries included: the next access there
    /// finds a new page, as after a hole punch it must.
    ///
    /// The exclusive invalidate lock keeps new folios out while this runs.
    pub fn truncate_range_locked(&self, _guard: &InvalidateGuard<'_>, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (first, last) = (start >> PAGE_SHIFT, (end - 1) >> PAGE_SHIFT);
        // As truncation does, `even_cows` drops private copies too; and poison entries.
        // SAFETY: The mapping is valid.
        unsafe {
            bindings::unmap_mapping_pages(self.as_ptr(), first as _, (last - first + 1) as _, true)
        };
        // SAFETY: The mapping is valid; the range is non-empty.
        unsafe { bindings::truncate_inode_pages_range(self.as_ptr(), start as _, (end - 1) as _) };
    }
}

/// A folio fresh from an allocator ([`Mapping::alloc_folio`], a hugetlb
/// [`Reservation`](crate::rgmem::hugetlb::Reservation)), which only [`Mapping::add_folio`] takes.
///
/// # Invariants
///
/// The folio is unlocked, in no mapping, and `folio` is its only reference; `hugetlb` tells
/// whether it is a hugetlb folio.
pub struct NewFolio {
    folio: ARef<Folio>,
    hugetlb: bool,
}

impl NewFolio {
    /// Takes ownership of a new folio.
    ///
    /// # Safety
    ///
    /// `ptr` must be an unlocked folio in no mapping, hugetlb exactly when `hugetlb`, whose only
    /// reference the caller owns and hands over.
    #[inline]
    pub(crate) unsafe fn from_raw(ptr: NonNull<bindings::folio>, hugetlb: bool) -> Self {
        // INVARIANT: Per the function's contract.
        Self {
            // SAFETY: The caller's reference moves into the `ARef`.
            folio: unsafe { Folio::from_owned_raw(ptr) },
            hugetlb,
        }
    }

    /// Clears the up-to-date flag, which guest_memfd reads as "zeroed and prepared", of a folio
    /// that may come back from a pool with it set.
    #[inline]
    pub(crate) fn clear_uptodate(&mut self) {
        self.folio
            .flags()
            .fetch_and(!(1 << bindings::pageflags_PG_uptodate), Ordering::Relaxed);
    }
}

/// A folio found in a page cache by [`Mapping::for_each_folio`], which holds one reference to it
/// for the duration of the call.
#[repr(transparent)]
pub struct CachedFolio(Folio);

impl CachedFolio {
    /// # Safety
    ///
    /// `ptr` must be a folio of a page cache on which the caller holds one reference, for `'a`.
    #[inline]
    unsafe fn from_raw<'a>(ptr: *mut bindings::folio) -> &'a Self {
        // SAFETY: `CachedFolio` is a transparent wrapper of a live folio.
        unsafe { &*ptr.cast() }
    }

    /// Whether no one but the page cache (one reference per page, and a piece's own) and this
    /// walk holds the folio: no process maps it, and no one pins it or is about to.
    #[inline]
    pub fn is_unused(&self) -> bool {
        self.0.ref_count() as usize == self.0.nr_pages() + usize::from(self.0.is_piece()) + 1
    }
}

impl core::ops::Deref for CachedFolio {
    type Target = Folio;

    #[inline]
    fn deref(&self) -> &Folio {
        &self.0
    }
}

/// # Safety
///
/// `ptr` must be a locked folio on which the caller owns a reference; both move into the result.
#[inline]
unsafe fn locked(ptr: *mut bindings::folio) -> LockedFolio {
    // SAFETY: Per the function's contract, `ptr` is non-null and referenced.
    let folio = unsafe { Folio::from_owned_raw(NonNull::new_unchecked(ptr)) };
    // SAFETY: Per the function's contract, the folio is locked.
    unsafe { LockedFolio::from_locked(folio) }
}

mod sealed {
    /// Only the guards of this module may claim to hold an invalidate lock.
    pub trait Sealed {}
}

impl sealed::Sealed for InvalidateGuard<'_> {}
impl sealed::Sealed for InvalidateSharedGuard<'_> {}

/// A guard of a mapping's invalidate lock, held in either mode.
///
/// Sealed: a value of a type implementing it is proof that the lock of [`Self::mapping`] is
/// held, which code that reads under the lock relies on for soundness.
pub trait InvalidateHeld: sealed::Sealed {
    /// The mapping whose lock is held.
    fn mapping(&self) -> &Mapping;
}

impl InvalidateHeld for InvalidateGuard<'_> {
    fn mapping(&self) -> &Mapping {
        self.0
    }
}

impl InvalidateHeld for InvalidateSharedGuard<'_> {
    fn mapping(&self) -> &Mapping {
        self.0
    }
}

/// The invalidate lock, held exclusively.
///
/// # Invariants
///
/// The lock of `.0` is held for writing until this guard is dropped, by the task that took it.
#[must_use = "the lock is released when the guard is dropped"]
pub struct InvalidateGuard<'a>(&'a Mapping, PhantomData<*mut ()>);

impl InvalidateGuard<'_> {
    /// Returns whether this guard holds the lock of `mapping`.
    #[inline]
    pub fn holds(&self, mapping: &Mapping) -> bool {
        core::ptr::eq(self.0, mapping)
    }
}

impl Drop for InvalidateGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: We hold the lock by the type invariant.
        unsafe { bindings::filemap_invalidate_unlock(self.0.as_ptr()) };
    }
}

/// The invalidate lock, held shared.
///
/// # Invariants
///
/// The lock of `.0` is held for reading until this guard is dropped, by the task that took it.
#[must_use = "the lock is released when the guard is dropped"]
pub struct InvalidateSharedGuard<'a>(&'a Mapping, PhantomData<*mut ()>);

impl Drop for InvalidateSharedGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: We hold the lock by the type invariant.
        unsafe { bindings::filemap_invalidate_unlock_shared(self.0.as_ptr()) };
    }
}

/// What a memory failure handler did with a poisoned folio (`enum mf_result`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MfResult {
    /// The error is handled later, when the memory is next used.
    Delayed,
    /// The error could not be handled.
    Failed,
}

/// A folio memory failure is handling: locked, in its page cache, and holding a reference that
/// memory failure keeps once it has poisoned the folio.
///
/// # Invariants
///
/// Memory failure is inside `->error_remove_folio()` for the folio, which it locked and holds,
/// and it keeps its reference if the callback returns `MF_DELAYED`.
pub struct MfFolio<'a>(&'a Folio);

impl<'a> MfFolio<'a> {
    /// Takes memory failure's reference on a whole hugetlb folio, to give it back once the folio
    /// has left the page cache; the callback must then return [`MfResult::Delayed`]. `Err` with
    /// `self` for any other folio.
    pub fn into_hugetlb(self) -> Result<crate::rgmem::hugetlb::Poisoned, Self> {
        // SAFETY: The folio is valid by the type invariant.
        if !unsafe { bindings::rgmem_folio_test_hugetlb(self.0.as_ptr()) } {
            return Err(self);
        }
        // SAFETY: Memory failure took the hugetlb folio in use, with a reference it keeps
        // (`me_huge_page()`), and calls this callback once per folio: `self` is consumed.
        Ok(unsafe { crate::rgmem::hugetlb::Poisoned::from_memory_failure(self.0) })
    }
}

impl core::ops::Deref for MfFolio<'_> {
    type Target = Folio;

    fn deref(&self) -> &Folio {
        self.0
    }
}

/// The address space operations of a file type created through an
/// [`anon_inode::FileType`](super::anon_inode::FileType).
#[macros::vtable]
pub trait Operations: file::Operations {
    /// The folio has left the page cache and is about to be freed.
    ///
    /// Called for every folio the page cache frees, so it is installed only when implemented; an
    /// implementation may also set `HAS_FREE_FOLIO` itself, to install it only where it has work.
    fn free_folio(_folio: &FreedFolio) {}

    /// Memory failure poisoned `folio`, which is locked and still in the cache.
    fn error_remove_folio(_data: &Self::Data, _folio: MfFolio<'_>) -> MfResult {
        MfResult::Failed
    }

    /// Page migration; refused unless implemented.
    fn migrate_folio() -> Result {
        Err(EINVAL)
    }
}

/// Builds the C vtable for `T`.
pub(crate) struct OperationsVTable<T: Operations>(core::marker::PhantomData<T>);

impl<T: Operations> OperationsVTable<T> {
    /// # Safety
    ///
    /// Called by the page cache with a folio it no longer holds.
    unsafe extern "C" fn free_folio(folio: *mut bindings::folio) {
        // SAFETY: The folio stays allocated for the duration of the callback; its refcount may be
        // zero, which `FreedFolio` allows.
        T::free_folio(unsafe { FreedFolio::from_raw(folio) });
    }

    /// # Safety
    ///
    /// Called by memory failure with `folio` locked and in `mapping`, whose inode was created by
    /// an `anon_inode::FileType<T>`.
    unsafe extern "C" fn error_remove_folio(
        mapping: *mut bindings::address_space,
        folio: *mut bindings::folio,
    ) -> crate::ffi::c_int {
        // SAFETY: `FileType<T>` keeps the file's data in `i_private` until it has emptied the
        // page cache, and the locked folio is still in the cache.
        let data = unsafe { super::anon_inode::data_of_mapping::<T>(mapping) };
        // SAFETY: Memory failure holds a reference to the folio across the callback.
        let folio = unsafe { Folio::from_raw(folio) };
        // INVARIANT: Memory failure calls with the folio locked and held, and keeps its
        // reference on `MF_DELAYED`.
        let r = T::error_remove_folio(data, MfFolio(folio));
        match r {
            MfResult::Delayed => bindings::mf_result_MF_DELAYED as _,
            MfResult::Failed => bindings::mf_result_MF_FAILED as _,
        }
    }

    /// # Safety
    ///
    /// Called by migration on a folio of a mapping using this table.
    unsafe extern "C" fn migrate_folio(
        _mapping: *mut bindings::address_space,
        _dst: *mut bindings::folio,
        _src: *mut bindings::folio,
        _mode: bindings::migrate_mode,
    ) -> crate::ffi::c_int {
        match T::migrate_folio() {
            Ok(()) => 0,
            Err(e) => Error::to_errno(e),
        }
    }

    pub(crate) const VTABLE: bindings::address_space_operations =
        bindings::address_space_operations {
            dirty_folio: Some(bindings::noop_dirty_folio),
            // The page cache calls it for every folio it frees: absent unless asked for.
            free_folio: if T::HAS_FREE_FOLIO {
                Some(Self::free_folio)
            } else {
                None
            },
            error_remove_folio: Some(Self::error_remove_folio),
            migrate_folio: Some(Self::migrate_folio),
            // SAFETY: All-zeroes is a valid `address_space_operations`: every hook is absent.
            ..unsafe { core::mem::MaybeUninit::zeroed().assume_init() }
        };
}
