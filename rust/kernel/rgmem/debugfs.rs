// SPDX-License-Identifier: GPL-2.0

//! debugfs directories, read-only counters, read-only files whose text is generated on each
//! read, and write-only files that hand what is written to a function.
//!
//! C header: [`include/linux/debugfs.h`](srctree/include/linux/debugfs.h)

use crate::{
    alloc::{flags::GFP_KERNEL, KBox},
    bindings,
    error::{code::EINVAL, from_err_ptr, Result},
    str::CStr,
    sync::Arc,
    uaccess::UserSlice,
    ThisModule,
};
use core::{fmt, marker::PhantomData, ptr::NonNull, sync::atomic::AtomicU64};

/// A directory at the root of debugfs, removed with its contents on drop.
///
/// # Invariants
///
/// `self.0` was returned by a successful `debugfs_create_dir` and has not
/// been removed; this value is the only owner of that directory.
///
/// # Examples
///
/// ```
/// use kernel::{c_str, rgmem::debugfs::Dir};
///
/// let dir = Dir::new(c_str!("rgmem-doctest"))?;
/// drop(dir);
/// // The name is free again once the directory is gone.
/// let _again = Dir::new(c_str!("rgmem-doctest"))?;
/// # Ok::<(), Error>(())
/// ```
pub struct Dir(NonNull<bindings::dentry>);

// SAFETY: A debugfs dentry may be removed from any thread; `Dir` exposes no
// other operation on it.
unsafe impl Send for Dir {}

// SAFETY: `Dir`'s `&self` methods only create children, which debugfs serialises.
unsafe impl Sync for Dir {}

impl Dir {
    /// Creates the directory `name` at the root of debugfs.
    ///
    /// Fails with `EEXIST` when the name is taken, and with `ENODEV` when
    /// debugfs is disabled.
    pub fn new(name: &CStr) -> Result<Self> {
        // SAFETY: `name` is a valid NUL-terminated string for the duration
        // of the call; a null parent means the debugfs root.
        let dentry = from_err_ptr(unsafe {
            bindings::debugfs_create_dir(name.as_char_ptr(), core::ptr::null_mut())
        })?;
        // debugfs reports failure with an error pointer, never with null.
        let dentry = NonNull::new(dentry).ok_or(crate::error::code::ENOMEM)?;
        // INVARIANT: `dentry` was just created and is owned by nobody else.
        Ok(Self(dentry))
    }
}

impl Dir {
    /// Creates a read-only file `name` in this directory that shows `counter` in decimal.
    ///
    /// The file goes away with the directory; `counter` is `'static`, so it outlives the file.
    ///
    /// # Examples
    ///
    /// ```
    /// use core::sync::atomic::{AtomicU64, Ordering};
    /// use kernel::{c_str, rgmem::debugfs::Dir};
    ///
    /// static HITS: AtomicU64 = AtomicU64::new(0);
    /// let dir = Dir::new(c_str!("rgmem-doctest-counter"))?;
    /// dir.counter(c_str!("hits"), &HITS);
    /// HITS.fetch_add(1, Ordering::Relaxed);
    /// # Ok::<(), Error>(())
    /// ```
    pub fn counter(&self, name: &CStr, counter: &'static AtomicU64) {
        // SAFETY: `name` is valid for the call and the directory live (type invariant); debugfs
        // reads the `AtomicU64` as a `u64` (same layout), a benign race on 64-bit architectures.
        unsafe {
            bindings::debugfs_create_u64(
                name.as_char_ptr(),
                0o444,
                self.0.as_ptr(),
                counter.as_ptr(),
            )
        };
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        // SAFETY: By the type invariant, `self.0` is a live directory that
        // only we own; it is not used again after this call.
        unsafe { bindings::debugfs_remove(self.0.as_ptr()) };
    }
}

/// Text being written to a [`ShowFile`] reader, through [`core::fmt::Write`].
///
/// # Invariants
///
/// `.0` is the `seq_file` of a read in progress.
pub struct SeqWriter(*mut bindings::seq_file);

impl fmt::Write for SeqWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // SAFETY: The `seq_file` is live by the type invariant. On overflow `seq_file` retries the
        // whole show with a larger buffer, so the result needs no handling.
        unsafe { bindings::seq_write(self.0, s.as_ptr().cast(), s.len()) };
        Ok(())
    }
}

struct Show<D> {
    data: Arc<D>,
    show: fn(&D, &mut SeqWriter) -> fmt::Result,
}

/// The file operations of a module's [`ShowFile`]s of data `D`.
///
/// A module keeps them in a `static`: an open file can outlive its [`ShowFile`], and debugfs
/// reads them at its release. They name the module as their owner, so an open file pins it.
///
/// # Examples
///
/// ```ignore
/// static FOPS: ShowFops<u32> = ShowFops::new(&THIS_MODULE);
/// ```
///
/// # Invariants
///
/// `.0` has `owner` set to the module whose `static` holds it, and the hooks of
/// `ShowVTable<D>`.
pub struct ShowFops<D>(bindings::file_operations, PhantomData<D>);

// SAFETY: The operations are immutable after `new`.
unsafe impl<D> Sync for ShowFops<D> {}

impl<D: Send + Sync + 'static> ShowFops<D> {
    /// The operations of `module`'s show files.
    pub const fn new(module: &'static ThisModule) -> Self {
        let mut fops = ShowVTable::<D>::VTABLE;
        fops.owner = module.0;
        // INVARIANT: The owner is set, and the hooks are `ShowVTable<D>`'s.
        Self(fops, PhantomData)
    }
}

/// A file in a debugfs directory, removed on drop.
///
/// # Invariants
///
/// `.0` is a live debugfs file, created by [`Entry::create`] with private data that its owner
/// keeps alive until this is dropped; debugfs waits for readers and writers when it is removed,
/// and fails the calls of files opened before.
struct Entry(NonNull<bindings::dentry>);

impl Entry {
    /// Creates the file `name` in `dir` with `mode`, `private` as its `i_private`, and `fops`.
    ///
    /// # Safety
    ///
    /// `private` must stay valid, as `fops` expect it, until the returned value is dropped.
    unsafe fn create(
        dir: &Dir,
        name: &CStr,
        mode: u16,
        private: *mut crate::ffi::c_void,
        fops: &'static bindings::file_operations,
    ) -> Result<Self> {
        // SAFETY: `name` is valid for the call and the directory live; the caller keeps
        // `private` valid while the file exists.
        let dentry = from_err_ptr(unsafe {
            bindings::debugfs_create_file(name.as_char_ptr(), mode, dir.0.as_ptr(), private, fops)
        })?;
        let dentry = NonNull::new(dentry).ok_or(crate::error::code::ENOMEM)?;
        // INVARIANT: The file was just created, with `private`.
        Ok(Self(dentry))
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        // SAFETY: The file is live by the type invariant; debugfs waits for its callers, so the
        // private data is unused once this returns.
        unsafe { bindings::debugfs_remove(self.0.as_ptr()) };
    }
}

/// A read-only debugfs file whose text `show` writes from `data` on each read; removed on drop.
///
/// # Invariants
///
/// `entry`'s private data is `show`; `entry` drops first.
pub struct ShowFile<D: Send + Sync + 'static> {
    _entry: Entry,
    _show: KBox<Show<D>>,
}

// SAFETY: The file may be removed from any thread, and `D` is `Send + Sync`.
unsafe impl<D: Send + Sync> Send for ShowFile<D> {}
// SAFETY: `ShowFile` has no `&self` methods.
unsafe impl<D: Send + Sync> Sync for ShowFile<D> {}

impl<D: Send + Sync + 'static> ShowFile<D> {
    /// Creates the file `name` in `dir`, with the operations `fops` of the calling module.
    ///
    /// # Examples
    ///
    /// In a module, whose `THIS_MODULE` the operations name as their owner:
    ///
    /// ```ignore
    /// use core::fmt::Write;
    /// use kernel::{c_str, rgmem::debugfs::{Dir, ShowFile, ShowFops}, sync::Arc};
    ///
    /// static FOPS: ShowFops<u32> = ShowFops::new(&THIS_MODULE);
    ///
    /// let dir = Dir::new(c_str!("rgmem-doctest-show"))?;
    /// let data = Arc::new(42u32, GFP_KERNEL)?;
    /// let _f = ShowFile::new(&dir, c_str!("answer"), &FOPS, data, |d, w| writeln!(w, "{d}"))?;
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new(
        dir: &Dir,
        name: &CStr,
        fops: &'static ShowFops<D>,
        data: Arc<D>,
        show: fn(&D, &mut SeqWriter) -> fmt::Result,
    ) -> Result<Self> {
        let show = KBox::new(Show { data, show }, GFP_KERNEL)?;
        let private = (&*show as *const Show<D>).cast_mut().cast();
        // SAFETY: The box lives as long as the entry, which drops first.
        let entry = unsafe { Entry::create(dir, name, 0o444, private, &fops.0) }?;
        // INVARIANT: `entry` was created with `show` as its private data.
        Ok(Self {
            _entry: entry,
            _show: show,
        })
    }
}

struct ShowVTable<D>(core::marker::PhantomData<D>);

impl<D: Send + Sync + 'static> ShowVTable<D> {
    /// # Safety
    ///
    /// Called by `seq_file` for a file opened by `open` below.
    unsafe extern "C" fn show(m: *mut bindings::seq_file, _v: *mut crate::ffi::c_void) -> i32 {
        // SAFETY: `open` passed the `Show<D>` of the file, which outlives every read.
        let s = unsafe { &*(*m).private.cast::<Show<D>>() };
        // INVARIANT: A read is in progress.
        let mut w = SeqWriter(m);
        let _ = (s.show)(&s.data, &mut w);
        0
    }

    /// # Safety
    ///
    /// Called by the VFS to open a file created by [`ShowFile::new`].
    unsafe extern "C" fn open(inode: *mut bindings::inode, file: *mut bindings::file) -> i32 {
        // SAFETY: The inode's private data is the file's `Show<D>`.
        unsafe { bindings::single_open(file, Some(Self::show), (*inode).i_private) }
    }

    const VTABLE: bindings::file_operations = bindings::file_operations {
        open: Some(Self::open),
        read: Some(bindings::seq_read),
        llseek: Some(bindings::seq_lseek),
        release: Some(bindings::single_release),
        // SAFETY: All-zeroes is a valid `file_operations`: every other hook is absent.
        ..unsafe { core::mem::MaybeUninit::zeroed().assume_init() }
    };
}

/// The longest write a [`WriteFile`] takes in one call.
pub const WRITE_MAX: usize = 256;

struct Write<D> {
    data: Arc<D>,
    write: fn(&D, &[u8]) -> Result,
}

/// The file operations of a module's [`WriteFile`]s of data `D`, kept in a `static` for the
/// reasons given at [`ShowFops`].
///
/// # Invariants
///
/// `.0` has `owner` set to the module whose `static` holds it, and the hooks of
/// `WriteVTable<D>`.
pub struct WriteFops<D>(bindings::file_operations, PhantomData<D>);

// SAFETY: The operations are immutable after `new`.
unsafe impl<D> Sync for WriteFops<D> {}

impl<D: Send + Sync + 'static> WriteFops<D> {
    /// The operations of `module`'s write files.
    pub const fn new(module: &'static ThisModule) -> Self {
        let mut fops = WriteVTable::<D>::VTABLE;
        fops.owner = module.0;
        // INVARIANT: The owner is set, and the hooks are `WriteVTable<D>`'s.
        Self(fops, PhantomData)
    }
}

/// A write-only debugfs file: each `write(2)` of at most [`WRITE_MAX`] bytes is passed whole to
/// `write` with `data`, whose error the caller gets. Removed on drop.
///
/// # Invariants
///
/// `entry`'s private data is `write`; `entry` drops first.
pub struct WriteFile<D: Send + Sync + 'static> {
    _entry: Entry,
    _write: KBox<Write<D>>,
}

// SAFETY: The file may be removed from any thread, and `D` is `Send + Sync`.
unsafe impl<D: Send + Sync> Send for WriteFile<D> {}
// SAFETY: `WriteFile` has no `&self` methods.
unsafe impl<D: Send + Sync> Sync for WriteFile<D> {}

impl<D: Send + Sync + 'static> WriteFile<D> {
    /// Creates the file `name` in `dir`, with the operations `fops` of the calling module.
    pub fn new(
        dir: &Dir,
        name: &CStr,
        fops: &'static WriteFops<D>,
        data: Arc<D>,
        write: fn(&D, &[u8]) -> Result,
    ) -> Result<Self> {
        let w = KBox::new(Write { data, write }, GFP_KERNEL)?;
        let private = (&*w as *const Write<D>).cast_mut().cast();
        // SAFETY: The box lives as long as the entry, which drops first.
        let entry = unsafe { Entry::create(dir, name, 0o200, private, &fops.0) }?;
        // INVARIANT: `entry` was created with `w` as its private data.
        Ok(Self {
            _entry: entry,
            _write: w,
        })
    }
}

struct WriteVTable<D>(core::marker::PhantomData<D>);

impl<D: Send + Sync + 'static> WriteVTable<D> {
    /// # Safety
    ///
    /// Called by the VFS for a file opened with `simple_open`, whose private data is therefore
    /// the `Write<D>` of a [`WriteFile`], which debugfs keeps alive during the call.
    unsafe extern "C" fn write(
        file: *mut bindings::file,
        buf: *const crate::ffi::c_char,
        count: usize,
        _ppos: *mut bindings::loff_t,
    ) -> isize {
        // SAFETY: As above.
        let w = unsafe { &*(*file).private_data.cast::<Write<D>>() };
        if count > WRITE_MAX {
            return EINVAL.to_errno() as isize;
        }
        let mut bytes = [0u8; WRITE_MAX];
        if let Err(e) = UserSlice::new(buf as usize, count)
            .reader()
            .read_slice(&mut bytes[..count])
        {
            return e.to_errno() as isize;
        }
        match (w.write)(&w.data, &bytes[..count]) {
            Ok(()) => count as isize,
            Err(e) => e.to_errno() as isize,
        }
    }

    const VTABLE: bindings::file_operations = bindings::file_operations {
        open: Some(bindings::simple_open),
        write: Some(Self::write),
        // SAFETY: All-zeroes is a valid `file_operations`: every other hook is absent.
        ..unsafe { core::mem::MaybeUninit::zeroed().assume_init() }
    };
}
