// SPDX-License-Identifier: GPL-2.0

//! A file's backing: which of the allocators serves it, chosen once, at creation, from its flags.
//! Nothing else names an allocator.

use crate::{
    allocator::{Allocator, PageAllocator},
    hugetlb::HugetlbAllocator,
};
use kernel::prelude::*;

/// A file's allocator, chosen when it is created; it derefs to the [`Allocator`] everything else
/// uses.
pub(crate) enum FileAllocator {
    Pages(PageAllocator),
    Hugetlb(HugetlbAllocator),
}

impl FileAllocator {
    /// The allocator of a file of `pages` pages whose folios are of `order`, as its creation
    /// flags ask: base pages for order 0, the hugetlb pool otherwise; whether the file `converts`
    /// tells whether its folios may split.
    pub(crate) fn new(order: u32, pages: u64, converts: bool) -> Result<Self> {
        Ok(match order {
            0 => Self::Pages(PageAllocator),
            _ => Self::Hugetlb(HugetlbAllocator::new(order, pages, converts)?),
        })
    }
}

impl core::ops::Deref for FileAllocator {
    type Target = dyn Allocator;

    #[inline]
    fn deref(&self) -> &Self::Target {
        match self {
            Self::Pages(a) => a,
            Self::Hugetlb(a) => a,
        }
    }
}
