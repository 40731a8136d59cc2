// SPDX-License-Identifier: GPL-2.0

//! rgmem's abstractions: what a guest_memfd module needs that this kernel's Rust lacks.
//!
//! They live in a namespace of their own, so that laid over a kernel crate that has an
//! abstraction of the same name (Linux 7.3 has `debugfs`, `fs::file`, `maple_tree` and `mm`),
//! they add to it and never replace its file.

#[cfg(CONFIG_DEBUG_FS)]
pub mod debugfs;
pub mod folio;
pub mod fs;
#[cfg(CONFIG_HUGETLB_PAGE)]
pub mod hugetlb;
#[cfg(CONFIG_KVM_GENERIC_PRIVATE_MEM)]
pub mod kvm;
mod layout_check;
pub mod maple_tree;
pub mod mm;
pub mod sched;
pub mod uaccess;
pub mod warn;
pub mod workqueue;
