// SPDX-License-Identifier: GPL-2.0

//! Views of KVM's VMs and memslots, for a module that serves guest_memfd.
//!
//! C header: [`include/linux/kvm_host.h`](srctree/include/linux/kvm_host.h)

use crate::{
    bindings,
    error::{code::EINVAL, Result},
    rgmem::fs::File,
    types::{ARef, AlwaysRefCounted, Opaque},
};
use core::{marker::PhantomData, ptr::NonNull};

pub mod gmem;

/// A VM.
///
/// # Invariants
///
/// The VM's users count is non-zero while a `&Kvm` exists; an [`ARef<Kvm>`] owns one count.
///
/// [`ARef<Kvm>`]: crate::types::ARef
#[repr(transparent)]
pub struct Kvm(Opaque<bindings::kvm>);

// SAFETY: `kvm_get_kvm`/`kvm_put_kvm` are atomic, and the last put may run on any thread.
unsafe impl Send for Kvm {}
// SAFETY: The `&Kvm` methods take the locks they need.
unsafe impl Sync for Kvm {}

// SAFETY: `kvm_get_kvm`/`kvm_put_kvm` keep the VM alive while a count is held.
unsafe impl AlwaysRefCounted for Kvm {
    fn inc_ref(&self) {
        // SAFETY: The count is non-zero by the type invariant.
        unsafe { bindings::kvm_get_kvm(self.as_ptr()) }
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller owns a count.
        unsafe { bindings::kvm_put_kvm(obj.cast().as_ptr()) }
    }
}

impl Kvm {
    /// Creates a reference from a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a VM whose users count stays non-zero for `'a`.
    #[inline]
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::kvm) -> &'a Self {
        // SAFETY: `Kvm` is a transparent wrapper, and the caller keeps the VM alive.
        unsafe { &*ptr.cast() }
    }

    /// Takes a users count of the VM that `file`, a VM file (`KVM_CREATE_VM`), stands for;
    /// `EINVAL` for any other file.
    pub fn from_file(file: &File) -> Result<ARef<Self>> {
        // SAFETY: The file is referenced.
        if !unsafe { bindings::file_is_kvm(file.as_ptr()) } {
            return Err(EINVAL);
        }
        // SAFETY: A VM file's private data is its VM, whose users count the file holds until its
        // release, so it is non-zero while `file` is referenced.
        let kvm = unsafe { Self::from_raw((*file.as_ptr()).private_data.cast()) };
        Ok(kvm.into())
    }

    /// Returns the raw pointer.
    #[inline]
    pub fn as_ptr(&self) -> *mut bindings::kvm {
        self.0.get()
    }

    /// Takes `kvm->slots_lock`, which serialises memslot changes.
    pub fn lock_slots(&self) -> SlotsGuard<'_> {
        // SAFETY: The VM, and so its mutex, is alive by the type invariant.
        unsafe { bindings::mutex_lock(&raw mut (*self.as_ptr()).slots_lock) };
        // INVARIANT: We just took it.
        SlotsGuard(self, PhantomData)
    }

    /// Invalidates guest frames `[start, end)` of `binding`'s memslot: zaps their private
    /// mappings and flushes TLBs. Faults on them retry until `inv`, which this starts if it is
    /// `None` and extends otherwise, is dropped.
    ///
    /// The caller, [`gmem::BindingsGuard::invalidate`], guarantees that the memslot is this VM's
    /// and bound; frames outside it are refused with a warning.
    pub(crate) fn invalidate<'a>(
        &'a self,
        inv: &mut Option<Invalidation<'a>>,
        binding: &gmem::Binding,
        start: u64,
        end: u64,
    ) {
        let s = binding.slot();
        let slot = s.as_ptr();
        if start >= end {
            return;
        }
        // KVM indexes its rmaps by the frame's offset in the memslot.
        if crate::warn_on!(start < s.base_gfn() || end > s.base_gfn() + s.npages()) {
            return;
        }
        match inv {
            Some(inv) if core::ptr::eq(inv.0, self) => {
                // SAFETY: The VM is alive, an invalidation of it is in progress, and `slot` is a
                // bound memslot of it (the binding shows it).
                unsafe { bindings::kvm_gmem_provider_unmap(self.as_ptr(), slot, start, end) };
            }
            Some(_) => {
                crate::warn_on!(true);
            }
            None => {
                // SAFETY: As above; this starts the invalidation that `Invalidation` ends.
                unsafe {
                    bindings::kvm_gmem_provider_invalidate_begin(self.as_ptr(), slot, start, end)
                };
                // INVARIANT: We just began one.
                *inv = Some(Invalidation(self));
            }
        }
    }
}

/// Whether KVM keeps memory attributes per VM: the kvm module's `vm_memory_attributes`, 1 by
/// default. When it is 0, guest_memfd files hold them.
pub fn vm_memory_attributes() -> bool {
    // SAFETY: KVM sets the read-only parameter before any module can link against it.
    unsafe { core::ptr::read(&raw const bindings::vm_memory_attributes) }
}

impl Kvm {
    /// Returns whether every guest frame in `[start, end)` is private.
    pub fn range_is_private(&self, start: u64, end: u64) -> bool {
        let private = bindings::KVM_MEMORY_ATTRIBUTE_PRIVATE as usize;
        // SAFETY: The VM is alive by the type invariant.
        unsafe {
            bindings::kvm_range_has_memory_attributes(self.as_ptr(), start, end, private, private)
        }
    }
}

impl PartialEq for Kvm {
    fn eq(&self, other: &Self) -> bool {
        core::ptr::eq(self, other)
    }
}

impl Eq for Kvm {}

/// `kvm->slots_lock`, held.
///
/// # Invariants
///
/// The mutex of `.0` is held until this guard is dropped, by the task that took it.
#[must_use = "the lock is released when the guard is dropped"]
pub struct SlotsGuard<'a>(&'a Kvm, PhantomData<*mut ()>);

impl SlotsGuard<'_> {
    /// Returns whether this guard holds the lock of `kvm`.
    pub fn holds(&self, kvm: &Kvm) -> bool {
        core::ptr::eq(self.0, kvm)
    }
}

impl Drop for SlotsGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: We hold the mutex by the type invariant.
        unsafe { bindings::mutex_unlock(&raw mut (*self.0.as_ptr()).slots_lock) };
    }
}

/// An invalidation of guest mappings in progress (`kvm_mmu_invalidate_begin` to `_end`), made
/// by [`Kvm::invalidate`].
///
/// # Invariants
///
/// One invalidation of `.0` is in progress, and it ends when this value is dropped.
#[must_use = "the invalidation ends when this is dropped"]
pub struct Invalidation<'a>(&'a Kvm);

impl Drop for Invalidation<'_> {
    fn drop(&mut self) {
        // SAFETY: We began an invalidation by the type invariant.
        unsafe { bindings::kvm_gmem_provider_invalidate_end(self.0.as_ptr()) };
    }
}

/// A memslot.
///
/// # Invariants
///
/// The memslot is alive while a `&MemorySlot` exists.
#[repr(transparent)]
pub struct MemorySlot(Opaque<bindings::kvm_memory_slot>);

// SAFETY: The fields read here do not change while the memslot is visible.
unsafe impl Sync for MemorySlot {}

impl MemorySlot {
    /// Creates a reference from a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a memslot that stays alive for `'a`.
    #[inline]
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::kvm_memory_slot) -> &'a Self {
        // SAFETY: `MemorySlot` is a transparent wrapper, and the caller keeps it alive.
        unsafe { &*ptr.cast() }
    }

    /// Returns the raw pointer.
    #[inline]
    pub fn as_ptr(&self) -> *mut bindings::kvm_memory_slot {
        self.0.get()
    }

    /// Returns the first guest frame number.
    #[inline]
    pub fn base_gfn(&self) -> u64 {
        // SAFETY: Fixed once the slot is created.
        unsafe { (*self.as_ptr()).base_gfn }
    }

    /// Returns the number of pages.
    #[inline]
    pub fn npages(&self) -> u64 {
        // SAFETY: Fixed once the slot is created.
        unsafe { (*self.as_ptr()).npages as u64 }
    }

    /// Returns the slot's id, including its address space.
    #[inline]
    pub fn id(&self) -> u16 {
        // SAFETY: Fixed once the slot is created.
        unsafe { (*self.as_ptr()).id as u16 }
    }

    /// Returns the guest_memfd file the memslot is bound to, or null.
    ///
    /// Only `slots_lock` keeps it from changing; the caller must not assume the file is alive.
    #[inline]
    pub(crate) fn gmem_file(&self) -> *mut bindings::file {
        // SAFETY: The memslot is alive; the field is written under `slots_lock`, which the caller
        // holds or else only compares the value.
        unsafe { core::ptr::read_volatile(&raw const (*self.as_ptr()).gmem.file) }
    }

    /// Returns the file page at which a guest_memfd binding starts.
    #[inline]
    pub fn gmem_pgoff(&self) -> u64 {
        // SAFETY: Set at bind, before the slot is visible, and fixed afterwards.
        unsafe { (*self.as_ptr()).gmem.pgoff as u64 }
    }
}
