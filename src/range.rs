// SPDX-License-Identifier: GPL-2.0

//! Page-offset and range arithmetic for guest_memfd files.
//!
//! Pure logic with no kernel types: `tests/host` includes this file and
//! property-tests it on the host.

/// Shift of the base page size (x86_64).
pub(crate) const PAGE_SHIFT: u32 = 12;
/// The base page size in bytes.
pub(crate) const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;
/// The largest folio order rgmem uses: 1 GiB.
pub(crate) const MAX_ORDER: u32 = 18;
/// One past the highest page index a range may reach: the end of the last
/// whole `MAX_ORDER` block whose byte offsets fit in 64 bits. Byte
/// conversions and widening to folios then cannot overflow.
pub(crate) const MAX_INDEX: u64 = (1 << (64 - PAGE_SHIFT)) - (1 << MAX_ORDER);

/// Why a byte range from user space was refused. Each maps to `EINVAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeError {
    /// The length is zero.
    Empty,
    /// The offset or the length is not a multiple of [`PAGE_SIZE`].
    Unaligned,
    /// `offset + len` does not fit in 64 bits, or passes [`MAX_INDEX`].
    Overflow,
    /// The range ends past the end of the file.
    OutOfBounds,
}

/// Whether `bytes` is a multiple of [`PAGE_SIZE`].
pub(crate) const fn is_page_aligned(bytes: u64) -> bool {
    bytes & (PAGE_SIZE - 1) == 0
}

/// The largest file size: `loff_t` is signed, and its pages must stay below [`MAX_INDEX`].
pub(crate) const MAX_FILE_SIZE: u64 = MAX_INDEX << PAGE_SHIFT >> 1;

/// Checks a file size given at create time: non-zero, page-aligned and at most
/// [`MAX_FILE_SIZE`]. Returns the size in pages.
pub(crate) fn check_file_size(size: u64) -> Result<u64, RangeError> {
    if size == 0 {
        Err(RangeError::Empty)
    } else if !is_page_aligned(size) {
        Err(RangeError::Unaligned)
    } else if size > MAX_FILE_SIZE {
        Err(RangeError::Overflow)
    } else {
        Ok(size >> PAGE_SHIFT)
    }
}

/// A non-empty range of page indices, `start..end`.
///
/// # Invariants
///
/// `start < end <= MAX_INDEX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageRange {
    start: u64,
    end: u64,
}

impl PageRange {
    /// The pages `start..end`, or `None` when that is empty or past
    /// [`MAX_INDEX`].
    pub(crate) const fn new(start: u64, end: u64) -> Option<Self> {
        if start < end && end <= MAX_INDEX {
            // INVARIANT: checked just above.
            Some(Self { start, end })
        } else {
            None
        }
    }

    /// Validates the byte range `offset..offset + len` of a file of
    /// `file_size` bytes, as fallocate, binding and conversion must.
    pub(crate) fn from_bytes(offset: u64, len: u64, file_size: u64) -> Result<Self, RangeError> {
        if len == 0 {
            return Err(RangeError::Empty);
        }
        if !is_page_aligned(offset) || !is_page_aligned(len) {
            return Err(RangeError::Unaligned);
        }
        let end = offset.checked_add(len).ok_or(RangeError::Overflow)?;
        if end >> PAGE_SHIFT > MAX_INDEX {
            return Err(RangeError::Overflow);
        }
        if end > file_size {
            return Err(RangeError::OutOfBounds);
        }
        // INVARIANT: `len > 0` and both are page-aligned, so the shifted
        // `start < end`; `end <= MAX_INDEX` was checked above.
        Ok(Self {
            start: offset >> PAGE_SHIFT,
            end: end >> PAGE_SHIFT,
        })
    }

    /// The first page.
    pub(crate) const fn start(&self) -> u64 {
        self.start
    }

    /// One past the last page.
    pub(crate) const fn end(&self) -> u64 {
        self.end
    }

    /// The number of pages; never zero.
    pub(crate) const fn pages(&self) -> u64 {
        self.end - self.start
    }

    /// The byte offset of the first page.
    pub(crate) const fn byte_offset(&self) -> u64 {
        self.start << PAGE_SHIFT
    }

    /// The length in bytes.
    pub(crate) const fn byte_len(&self) -> u64 {
        self.pages() << PAGE_SHIFT
    }

    /// Whether the range is whole naturally aligned blocks of `1 << order` pages.
    pub(crate) const fn is_aligned(&self, order: u32) -> bool {
        if order > MAX_ORDER {
            return false;
        }
        let mask = (1u64 << order) - 1;
        self.start & mask == 0 && self.end & mask == 0
    }

    /// Whether page `index` lies in the range.
    // Its first user is the hugetlb allocator.
    #[allow(dead_code)]
    pub(crate) const fn contains(&self, index: u64) -> bool {
        self.start <= index && index < self.end
    }

    /// Whether the two ranges share at least one page.
    pub(crate) const fn overlaps(&self, other: &Self) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// The pages both ranges share, if any.
    pub(crate) fn intersect(&self, other: &Self) -> Option<Self> {
        Self::new(self.start.max(other.start), self.end.min(other.end))
    }

    /// The range widened to whole naturally aligned blocks of
    /// `1 << order` pages: the folios of that order that hold these pages.
    /// `None` when `order > MAX_ORDER`.
    pub(crate) fn align_out(&self, order: u32) -> Option<Self> {
        if order > MAX_ORDER {
            return None;
        }
        let mask = (1u64 << order) - 1;
        // INVARIANT: `start <= self.start < self.end <= end`, and
        // `end <= MAX_INDEX` because `MAX_INDEX` is a multiple of the
        // block size; `self.end + mask` cannot overflow for the same reason.
        Some(Self {
            start: self.start & !mask,
            end: (self.end + mask) & !mask,
        })
    }
}
