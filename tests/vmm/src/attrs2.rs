// SPDX-License-Identifier: GPL-2.0

//! `KVM_SET_MEMORY_ATTRIBUTES2`, which kvm-ioctls does not have: on a guest_memfd that holds
//! its pages' attributes, it converts a range of the file in place.

use std::os::fd::{AsRawFd, BorrowedFd};
use vmm_sys_util::errno;
use vmm_sys_util::ioctl::ioctl_with_mut_ref;
use vmm_sys_util::ioctl_iowr_nr;

/// `KVMIO`, the type of every KVM ioctl.
const KVMIO: u32 = 0xAE;

/// `KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES`: which attributes a guest_memfd holds.
pub const CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES: u64 = 249;
/// `KVM_CAP_GUEST_MEMFD_FLAGS`: the flags `KVM_CREATE_GUEST_MEMFD` takes.
pub const CAP_GUEST_MEMFD_FLAGS: u64 = 244;
/// `GUEST_MEMFD_FLAG_MMAP`: the host may map the file's shared pages.
pub const FLAG_MMAP: u64 = 1 << 0;
/// `GUEST_MEMFD_FLAG_INIT_SHARED`: every page starts shared.
pub const FLAG_INIT_SHARED: u64 = 1 << 1;
/// `GUEST_MEMFD_FLAG_HUGETLB`: pages of the hugetlb pool, which rgmem splits where pages are
/// shared and merges back once all are private; with the log2 of their size at
/// `GUEST_MEMFD_HUGETLB_SIZE_SHIFT`.
pub const FLAG_HUGETLB: u64 = 1 << 2;
pub const HUGETLB_SIZE_SHIFT: u32 = 58;

/// `struct kvm_memory_attributes2`, as in rgmem's uAPI header (`include/uapi/linux/kvm.h`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct KvmMemoryAttributes2 {
    pub offset: u64,
    pub size: u64,
    pub attributes: u64,
    pub flags: u64,
    /// On failure, the first page at fault.
    pub error_offset: u64,
    pub reserved: [u64; 11],
}

ioctl_iowr_nr!(
    KVM_SET_MEMORY_ATTRIBUTES2,
    KVMIO,
    0xd2,
    KvmMemoryAttributes2
);

/// Sets the attributes of `size` bytes of `gmem` from `offset`. On failure, the errno and the
/// offset of the first page at fault.
pub fn set(
    gmem: BorrowedFd<'_>,
    offset: u64,
    size: u64,
    attributes: u64,
) -> Result<(), (errno::Error, u64)> {
    let mut args = KvmMemoryAttributes2 {
        offset,
        size,
        attributes,
        ..Default::default()
    };
    // SAFETY: The ioctl reads and writes `args`, whose layout is the kernel's, and nothing else.
    let r =
        unsafe { ioctl_with_mut_ref(&gmem.as_raw_fd(), KVM_SET_MEMORY_ATTRIBUTES2(), &mut args) };
    if r < 0 {
        return Err((errno::Error::last(), args.error_offset));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_number_match_the_uapi() {
        assert_eq!(std::mem::size_of::<KvmMemoryAttributes2>(), 128);
        assert_eq!(std::mem::offset_of!(KvmMemoryAttributes2, error_offset), 32);
        // _IOWR(KVMIO, 0xd2, struct kvm_memory_attributes2): read and write (3 << 30), the
        // size (128 << 16), the type (0xAE << 8), the number.
        assert_eq!(KVM_SET_MEMORY_ATTRIBUTES2() as u32, 0xc080_aed2);
    }
}
