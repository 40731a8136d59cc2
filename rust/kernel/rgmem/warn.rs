// SPDX-License-Identifier: GPL-2.0

//! Kernel warnings from Rust: [`warn_on!`](crate::warn_on).
//!
//! C header: [`include/asm-generic/bug.h`](srctree/include/asm-generic/bug.h)

use crate::{bindings, str::CStr};

/// Prints a kernel `WARNING:` report naming `file:line`, with a backtrace,
/// and taints the kernel. Use [`warn_on!`](crate::warn_on) instead.
#[doc(hidden)]
#[cold]
pub fn warn_at(file: &'static CStr, line: u32) {
    // SAFETY: `file` is a valid NUL-terminated string with static lifetime.
    unsafe { bindings::warn_at(file.as_char_ptr(), line as core::ffi::c_int) };
}

/// Reports a kernel `WARNING:` at the caller's location when `$cond` holds,
/// and evaluates to `$cond`, like C's `WARN_ON()`.
///
/// For conditions that must never be true but from which the kernel can
/// recover: the report is a bug to fix, not a reason to crash.
///
/// # Examples
///
/// ```
/// let len: usize = 4;
/// if kernel::warn_on!(len > 8) {
///     return Err(EINVAL);
/// }
/// # Ok::<(), Error>(())
/// ```
#[macro_export]
macro_rules! warn_on {
    ($cond:expr) => {{
        let cond: bool = $cond;
        if cond {
            $crate::rgmem::warn::warn_at($crate::c_str!(::core::file!()), ::core::line!());
        }
        cond
    }};
}
