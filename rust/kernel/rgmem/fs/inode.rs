// SPDX-License-Identifier: GPL-2.0

//! Inodes and the `inode_operations` a file type implements.
//!
//! C header: [`include/linux/fs.h`](srctree/include/linux/fs.h)

use crate::{
    bindings,
    error::{code::*, Result},
    rgmem::fs::Mapping,
    types::Opaque,
};

/// An inode.
///
/// # Invariants
///
/// The inode is alive while a `&Inode` exists.
#[repr(transparent)]
pub struct Inode(Opaque<bindings::inode>);

// SAFETY: The `&Inode` methods are safe to call from any thread.
unsafe impl Sync for Inode {}

impl Inode {
    /// Creates a reference from a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must point to an inode that stays alive for `'a`.
    #[inline]
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::inode) -> &'a Self {
        // SAFETY: `Inode` is a transparent wrapper, and the caller keeps the inode alive.
        unsafe { &*ptr.cast() }
    }

    /// Returns the raw pointer.
    #[inline]
    pub fn as_ptr(&self) -> *mut bindings::inode {
        self.0.get()
    }

    /// Returns the inode number.
    #[inline]
    pub fn ino(&self) -> u64 {
        // SAFETY: The inode is valid, and its number fixed once it is created.
        unsafe { (*self.as_ptr()).i_ino as u64 }
    }

    /// Returns the file size in bytes.
    pub fn size(&self) -> i64 {
        // SAFETY: The inode is valid by the type invariant.
        unsafe { bindings::i_size_read(self.as_ptr()) }
    }

    /// Returns the inode's page cache.
    #[inline]
    pub fn mapping(&self) -> &Mapping {
        // SAFETY: `i_mapping` is set at allocation and lives as long as the inode.
        unsafe { Mapping::from_raw((*self.as_ptr()).i_mapping) }
    }
}

/// Attributes being returned by `stat(2)`.
///
/// # Invariants
///
/// Wraps a `struct kstat` that `getattr` is filling in.
#[repr(transparent)]
pub struct Kstat(Opaque<bindings::kstat>);

impl Kstat {
    /// Sets the number of 512-byte blocks in use.
    pub fn set_blocks(&mut self, blocks: u64) {
        // SAFETY: The kstat is valid and exclusively ours during `getattr`.
        unsafe { (*self.0.get()).blocks = blocks };
    }
}

/// The inode operations of a file type.
#[macros::vtable]
pub trait Operations: Sized + 'static {
    /// `chmod(2)`, `truncate(2)` and the like; refused unless implemented.
    fn setattr(_inode: &Inode) -> Result {
        Err(EINVAL)
    }

    /// Adjusts what `stat(2)` reports after the generic attributes are filled in.
    fn getattr(_inode: &Inode, _stat: &mut Kstat) {}
}

/// Builds the C vtable for `T`.
pub(crate) struct OperationsVTable<T: Operations>(core::marker::PhantomData<T>);

impl<T: Operations> OperationsVTable<T> {
    /// # Safety
    ///
    /// Called by the VFS on an inode using this table.
    unsafe extern "C" fn setattr(
        _idmap: *mut bindings::mnt_idmap,
        dentry: *mut bindings::dentry,
        _attr: *mut bindings::iattr,
    ) -> crate::ffi::c_int {
        // SAFETY: The VFS passes a live dentry with a live inode.
        let inode = unsafe { Inode::from_raw((*dentry).d_inode) };
        match T::setattr(inode) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by the VFS on an inode using this table.
    unsafe extern "C" fn getattr(
        idmap: *mut bindings::mnt_idmap,
        path: *const bindings::path,
        stat: *mut bindings::kstat,
        request_mask: u32,
        _query_flags: u32,
    ) -> crate::ffi::c_int {
        // SAFETY: The VFS passes a live path with a live inode.
        let raw = unsafe { (*(*path).dentry).d_inode };
        // SAFETY: All arguments come from the VFS and are valid.
        unsafe { bindings::generic_fillattr(idmap, request_mask, raw, stat) };
        // SAFETY: `raw` is live; `stat` is ours to fill for the duration of the call.
        T::getattr(unsafe { Inode::from_raw(raw) }, unsafe {
            &mut *stat.cast()
        });
        0
    }

    pub(crate) const VTABLE: bindings::inode_operations = bindings::inode_operations {
        setattr: Some(Self::setattr),
        getattr: Some(Self::getattr),
        // SAFETY: All-zeroes is a valid `inode_operations`: every hook is absent.
        ..unsafe { core::mem::MaybeUninit::zeroed().assume_init() }
    };
}
