// SPDX-License-Identifier: GPL-2.0

//! Open files, file descriptors and the `file_operations` a file type implements.
//!
//! C header: [`include/linux/fs.h`](srctree/include/linux/fs.h)

use crate::{
    bindings,
    error::{code::*, to_result, Result},
    rgmem::folio::LockedFolio,
    rgmem::fs::{Inode, Mapping},
    rgmem::mm::virt::VmaNew,
    types::{ARef, AlwaysRefCounted, Opaque},
};
use core::{marker::PhantomData, ptr::NonNull};

/// An open file.
///
/// # Invariants
///
/// The file's refcount is non-zero while a `&File` exists; an [`ARef<File>`] owns one reference.
#[repr(transparent)]
pub struct File(Opaque<bindings::file>);

// SAFETY: File refcounting is atomic, and a file may be released from any thread.
unsafe impl Send for File {}
// SAFETY: The `&File` methods only read fields that are fixed once the file is installed.
unsafe impl Sync for File {}

// SAFETY: `get_file`/`fput` keep the file alive while a reference exists.
unsafe impl AlwaysRefCounted for File {
    fn inc_ref(&self) {
        // SAFETY: The refcount is non-zero by the type invariant.
        unsafe { bindings::get_file(self.as_ptr()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller owns a reference.
        unsafe { bindings::fput(obj.cast().as_ptr()) }
    }
}

impl File {
    /// Creates a reference from a raw pointer.
    ///
    /// # Safety
    ///
    /// `ptr` must point to a file that stays alive for `'a`.
    #[inline]
    pub unsafe fn from_raw<'a>(ptr: *mut bindings::file) -> &'a Self {
        // SAFETY: `File` is a transparent wrapper, and the caller keeps the file alive.
        unsafe { &*ptr.cast() }
    }

    /// Takes a reference to the file at descriptor `fd` of the current task; `EBADF` if none.
    pub fn fget(fd: u32) -> Result<ARef<Self>> {
        // SAFETY: No preconditions; `fget` returns a new reference or null.
        let ptr = NonNull::new(unsafe { bindings::fget(fd) }).ok_or(EBADF)?;
        // SAFETY: `fget` gave us a reference, which the `ARef` now owns.
        Ok(unsafe { ARef::from_raw(ptr.cast()) })
    }

    /// Returns the raw pointer.
    #[inline]
    pub fn as_ptr(&self) -> *mut bindings::file {
        self.0.get()
    }

    /// Returns the file's inode.
    #[inline]
    pub fn inode(&self) -> &Inode {
        // SAFETY: `f_inode` is set at open and lives as long as the file.
        unsafe { Inode::from_raw((*self.as_ptr()).f_inode) }
    }

    /// Returns the page cache the file reads and writes through.
    #[inline]
    pub fn mapping(&self) -> &Mapping {
        // SAFETY: `f_mapping` is set at open and lives as long as the file.
        unsafe { Mapping::from_raw((*self.as_ptr()).f_mapping) }
    }

    /// Returns whether the file was created with `ops`.
    #[inline]
    pub(crate) fn has_ops(&self, ops: *const bindings::file_operations) -> bool {
        // SAFETY: `f_op` is set at open and never changes afterwards.
        core::ptr::eq(unsafe { (*self.as_ptr()).f_op }, ops)
    }

    /// Updates the modification time after a change to the file, as `file_modified()` does.
    pub fn modified(&self) -> Result {
        // SAFETY: The file is valid by the type invariant.
        to_result(unsafe { bindings::file_modified(self.as_ptr()) })
    }
}

/// A file being released: its last reference is gone, so it cannot be referenced again, but its
/// inode and page cache are alive until `release` returns.
///
/// # Invariants
///
/// The file is in its `release`, and stays allocated for the lifetime of the reference.
#[repr(transparent)]
pub struct ReleasedFile(Opaque<bindings::file>);

impl ReleasedFile {
    /// # Safety
    ///
    /// `ptr` must be a file in its `release`, which outlives `'a`.
    #[inline]
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::file) -> &'a Self {
        // SAFETY: `ReleasedFile` is a transparent wrapper, and the caller keeps the file alive.
        unsafe { &*ptr.cast() }
    }

    /// Returns the page cache the file read and wrote through.
    #[inline]
    pub fn mapping(&self) -> &Mapping {
        // SAFETY: `f_mapping` lives until the release is over, by the type invariant.
        unsafe { Mapping::from_raw((*self.0.get()).f_mapping) }
    }
}

/// A reserved, not yet installed, file descriptor.
///
/// # Invariants
///
/// `fd` was returned by `get_unused_fd_flags` for the current task's file table, and is neither
/// installed nor put. It stays with that task: `fd_install` and `put_unused_fd` act on
/// `current->files`.
#[must_use = "the descriptor is given back when the reservation is dropped"]
pub struct FileDescriptorReservation {
    fd: u32,
    _not_send: PhantomData<*mut ()>,
}

impl FileDescriptorReservation {
    /// Reserves a descriptor with the given `O_*` flags, such as `O_CLOEXEC`.
    pub fn get_unused_fd_flags(flags: u32) -> Result<Self> {
        // SAFETY: No preconditions.
        let fd = unsafe { bindings::get_unused_fd_flags(flags) };
        to_result(fd)?;
        // INVARIANT: `fd` is a fresh reservation.
        Ok(Self {
            fd: fd as u32,
            _not_send: PhantomData,
        })
    }

    /// Returns the reserved descriptor.
    pub fn reserved_fd(&self) -> u32 {
        self.fd
    }

    /// Installs `file` at the reserved descriptor, which the file table then owns.
    pub fn fd_install(self, file: ARef<File>) {
        let fd = self.fd;
        core::mem::forget(self);
        // SAFETY: `fd` is reserved by the type invariant, and `fd_install` takes over the
        // reference that `file` owns.
        unsafe { bindings::fd_install(fd, ARef::into_raw(file).as_ptr().cast()) };
    }
}

impl Drop for FileDescriptorReservation {
    fn drop(&mut self) {
        // SAFETY: The descriptor is reserved and not installed, by the type invariant.
        unsafe { bindings::put_unused_fd(self.fd) };
    }
}

/// The file operations of a file type whose private data is an `Arc<Self::Data>`.
///
/// Such files are created through an [`anon_inode::FileType`](super::anon_inode::FileType), which
/// documents the lifetime of the data.
#[macros::vtable]
pub trait Operations: Sized + 'static {
    /// The per-file state.
    type Data: Send + Sync;

    /// Called once when the last reference to the file goes away.
    fn release(_data: &Self::Data, _file: &ReleasedFile) {}

    /// `fallocate(2)`.
    fn fallocate(_data: &Self::Data, _file: &File, _mode: i32, _offset: i64, _len: i64) -> Result {
        Err(EOPNOTSUPP)
    }

    /// `ioctl(2)`.
    fn ioctl(_data: &Self::Data, _file: &File, _cmd: u32, _arg: usize) -> Result<isize> {
        Err(ENOTTY)
    }

    /// `mmap(2)`: accepts or refuses `vma`. Faults in it then reach [`Operations::fault`].
    fn mmap(_data: &Self::Data, _file: &File, _vma: &VmaNew) -> Result {
        Err(ENODEV)
    }

    /// A fault on a mapping of the file at file page `index`: returns the locked folio caching
    /// it. `ENOMEM` fails the fault as out of memory, `EHWPOISON` as poisoned, and any other
    /// error raises `SIGBUS`.
    fn fault(_data: &Self::Data, _file: &File, _index: u64) -> Result<LockedFolio> {
        Err(EFAULT)
    }
}

/// `fallocate(2)` mode bits.
pub mod falloc {
    use crate::bindings;

    /// Do not change the file size.
    pub const KEEP_SIZE: i32 = bindings::FALLOC_FL_KEEP_SIZE as i32;
    /// Deallocate the range.
    pub const PUNCH_HOLE: i32 = bindings::FALLOC_FL_PUNCH_HOLE as i32;
}
