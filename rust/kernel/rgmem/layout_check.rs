// SPDX-License-Identifier: GPL-2.0

//! Build-time checks: that bindgen laid out C structs as the C compiler does, and that types
//! tied to the current task are not `Send`.
//!
//! bindgen 0.73 with libclang 14 drops the alignment of an empty aligned
//! struct: without `CONFIG_SCHEDSTATS`, `struct sched_statistics` is empty
//! and `____cacheline_aligned`, and every later field of `task_struct`
//! lands 16 bytes early on the Rust side. Rust code then reads the wrong
//! fields, silently. The offsets below come from the C compiler through
//! `bindings_helper.h`; a mismatch fails the build instead.

use crate::bindings;
use core::mem::offset_of;

const _: () = assert!(
    offset_of!(bindings::task_struct, pid) == bindings::RGMEM_OFFSETOF_TASK_PID,
    "bindgen's task_struct disagrees with C (enable CONFIG_SCHEDSTATS?)"
);
const _: () = assert!(
    offset_of!(bindings::task_struct, group_leader) == bindings::RGMEM_OFFSETOF_TASK_GROUP_LEADER,
    "bindgen's task_struct disagrees with C (enable CONFIG_SCHEDSTATS?)"
);

/// Fails the build if any of the types is `Send`.
///
/// Each type names a resource that belongs to the task that took it: a lock whose release
/// lockdep checks against the acquiring task, or a descriptor of `current->files`. If a type
/// were `Send`, both impls below would apply and the `_` could not be inferred.
macro_rules! assert_not_send {
    ($($t:ty),* $(,)?) => {
        const _: fn() = || {
            trait AmbiguousIfSend<A> {
                fn check() {}
            }
            impl<T: ?Sized> AmbiguousIfSend<()> for T {}
            struct IsSend;
            impl<T: ?Sized + Send> AmbiguousIfSend<IsSend> for T {}
            $(let _ = <$t as AmbiguousIfSend<_>>::check;)*
        };
    };
}

assert_not_send!(
    crate::rgmem::fs::file::FileDescriptorReservation,
    crate::rgmem::fs::filemap::InvalidateGuard<'static>,
    crate::rgmem::fs::filemap::InvalidateSharedGuard<'static>,
);
#[cfg(CONFIG_KVM_GENERIC_PRIVATE_MEM)]
assert_not_send!(
    crate::rgmem::kvm::SlotsGuard<'static>,
    crate::rgmem::kvm::gmem::BindingsGuard<'static>,
);
