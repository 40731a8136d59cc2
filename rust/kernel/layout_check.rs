// SPDX-License-Identifier: GPL-2.0

//! Build-time checks that bindgen laid out C structs as the C compiler does.
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
