// SPDX-License-Identifier: GPL-2.0

//! rgmem: KVM's guest_memfd as a loadable Rust module.

mod alloc_math;
mod allocator;
mod backing;
mod binding_math;
mod convert;
mod counters;
mod errno;
mod fallocate;
mod fault;
mod file;
mod hugetlb;
mod inode;
mod invalidate;
mod kvm;
mod memory_failure;
mod mmap;
mod module;
mod park;
mod range;
mod share_math;
mod shareability;
mod split;
mod split_math;
mod state;

use kernel::prelude::*;
use module::Rgmem;

module! {
    type: Rgmem,
    name: "rgmem",
    author: "rgmem developers",
    description: "guest_memfd for KVM, in Rust",
    license: "GPL",
}
