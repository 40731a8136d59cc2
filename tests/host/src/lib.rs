// SPDX-License-Identifier: GPL-2.0

//! rgmem's kernel-free logic, built for the host.
//!
//! Each module is a file of the kernel module, included as is.

#[path = "../../../src/range.rs"]
#[allow(dead_code)]
pub mod range;

#[cfg(test)]
mod range_tests;
