// SPDX-License-Identifier: GPL-2.0

//! Memory mappings of files: `mmap` set-up and page faults.
//!
//! C header: [`include/linux/mm.h`](srctree/include/linux/mm.h)

use crate::{bindings, types::Opaque};

/// A VMA that `mmap` is setting up for a file.
///
/// # Invariants
///
/// The VMA is being set up by `mmap` while a `&VmaNew` exists: the caller of `mmap` holds
/// `mmap_lock` for writing and no fault can reach the VMA yet.
#[repr(transparent)]
pub struct VmaNew(Opaque<bindings::vm_area_struct>);

impl VmaNew {
    /// Creates a reference from a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must be a VMA that `mmap` is setting up, for `'a`.
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::vm_area_struct) -> &'a Self {
        // SAFETY: `VmaNew` is a transparent wrapper, and the caller guarantees the state.
        unsafe { &*ptr.cast() }
    }

    /// Returns the raw pointer.
    pub fn as_ptr(&self) -> *mut bindings::vm_area_struct {
        self.0.get()
    }

    fn flags(&self) -> usize {
        // SAFETY: The VMA is valid, and its flags stable while `mmap` sets it up.
        unsafe { (*self.as_ptr()).__bindgen_anon_2.vm_flags }
    }

    /// Whether writes reach the file and every process mapping it (`MAP_SHARED`).
    pub fn is_shared(&self) -> bool {
        let shared = (bindings::VM_SHARED | bindings::VM_MAYSHARE) as usize;
        self.flags() & shared == shared
    }

    /// Keeps the mapping out of core dumps.
    pub fn set_dontdump(&self) {
        // SAFETY: `mmap` holds `mmap_lock` for writing, as `vm_flags_set()` requires.
        unsafe { bindings::vm_flags_set(self.as_ptr(), bindings::VM_DONTDUMP as _) };
    }
}

/// Drains every CPU's batches of folios waiting to enter an LRU list, and so drops the references
/// those batches hold. Sleeps, and is slow: it waits for work on every CPU.
pub fn lru_add_drain_all() {
    // SAFETY: No preconditions; the caller may sleep.
    unsafe { bindings::lru_add_drain_all() };
}
