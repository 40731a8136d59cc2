// SPDX-License-Identifier: GPL-2.0

//! debugfs directories and read-only counters.
//!
//! C header: [`include/linux/debugfs.h`](srctree/include/linux/debugfs.h)

use crate::{
    bindings,
    error::{from_err_ptr, Result},
    str::CStr,
};
use core::{ptr::NonNull, sync::atomic::AtomicU64};

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
/// use kernel::{c_str, debugfs::Dir};
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
    /// use kernel::{c_str, debugfs::Dir};
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
