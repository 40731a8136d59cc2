// SPDX-License-Identifier: GPL-2.0

//! rgmem's kernel-free logic, built for the host.
//!
//! Each module is a file of the kernel module, included as is.

#[path = "../../../src/range.rs"]
#[allow(dead_code)]
pub mod range;

#[path = "../../../src/binding_math.rs"]
#[allow(dead_code)]
pub mod binding_math;

#[path = "../../../src/alloc_math.rs"]
#[allow(dead_code)]
pub mod alloc_math;

#[path = "../../../src/split_math.rs"]
#[allow(dead_code)]
pub mod split_math;

#[path = "../../../src/share_math.rs"]
#[allow(dead_code)]
pub mod share_math;

#[cfg(test)]
mod range_tests;

#[cfg(test)]
mod binding_tests;

#[cfg(test)]
mod alloc_tests;

#[cfg(test)]
mod share_tests;

#[cfg(test)]
mod split_tests;
