// SPDX-License-Identifier: GPL-2.0

//! Files, inodes and the page cache, as far as guest_memfd-like files need them.
//!
//! C headers: [`include/linux/fs.h`](srctree/include/linux/fs.h) and
//! [`include/linux/pagemap.h`](srctree/include/linux/pagemap.h)

pub mod anon_inode;
pub mod file;
pub mod filemap;
pub mod inode;

pub use file::File;
pub use filemap::Mapping;
pub use inode::Inode;
