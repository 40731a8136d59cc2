// SPDX-License-Identifier: GPL-2.0

//! rgmem: KVM's guest_memfd as a loadable Rust module.

mod module;
// The first users are create and fallocate.
#[allow(dead_code)]
mod range;

use kernel::prelude::*;
use module::Rgmem;

module! {
    type: Rgmem,
    name: "rgmem",
    author: "rgmem developers",
    description: "guest_memfd for KVM, in Rust",
    license: "GPL",
}
