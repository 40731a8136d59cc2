// SPDX-License-Identifier: GPL-2.0

//! Virtual memory areas, shaped as upstream's `kernel::mm::virt` so that a port to a kernel that
//! has it stays local.
//!
//! C header: [`include/linux/mm.h`](srctree/include/linux/mm.h)

use crate::{bindings, types::Opaque};

/// The flags of a VMA.
#[allow(non_camel_case_types)]
pub type vm_flags_t = bindings::vm_flags_t;

/// The VMA flags rgmem reads.
pub mod flags {
    use super::vm_flags_t;
    use crate::bindings;

    /// Writes reach the file and every process that maps it (`MAP_SHARED`).
    pub const SHARED: vm_flags_t = bindings::VM_SHARED as vm_flags_t;
    /// The mapping may be shared (`MAP_SHARED`, even of a read-only file).
    pub const MAYSHARE: vm_flags_t = bindings::VM_MAYSHARE as vm_flags_t;
}

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

    /// Returns the VMA's flags, which [`flags`] names.
    pub fn flags(&self) -> vm_flags_t {
        // SAFETY: The VMA is valid, and its flags stable while `mmap` sets it up.
        unsafe { (*self.as_ptr()).__bindgen_anon_2.vm_flags }
    }

    /// Keeps the mapping out of core dumps.
    pub fn set_dontdump(&self) {
        // SAFETY: `mmap` holds `mmap_lock` for writing, as `vm_flags_set()` requires.
        unsafe { bindings::vm_flags_set(self.as_ptr(), bindings::VM_DONTDUMP as _) };
    }
}
