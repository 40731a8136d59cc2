// SPDX-License-Identifier: GPL-2.0

//! Shareability arithmetic: what a conversion changes, and the one store that records it.
//!
//! A file's pages form maximal runs, each shared or private; no two adjacent runs are in the
//! same state. A conversion of `start..end` to a state changes the parts of the runs it
//! overlaps that are in the other state, and is recorded by storing the state over the request
//! widened across equal neighbours, so that the runs stay maximal with a single store.
//!
//! Pure logic with no kernel types: `tests/host` includes this file and property-tests it
//! against a per-page model.

/// Who may map a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Share {
    /// Only the guest, through KVM's private faults.
    Private,
    /// The host too: through the file's mmap, and KVM's shared faults.
    Shared,
}

impl Share {
    /// The small integer the store keeps for this state.
    pub(crate) const fn to_value(self) -> usize {
        match self {
            Share::Private => 0,
            Share::Shared => 1,
        }
    }

    /// The state stored as `value`.
    pub(crate) const fn from_value(value: usize) -> Self {
        if value == 0 {
            Share::Private
        } else {
            Share::Shared
        }
    }
}

/// A run of pages `start..end` in one state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Run {
    /// First page.
    pub(crate) start: u64,
    /// One past the last page.
    pub(crate) end: u64,
    /// The run's state.
    pub(crate) share: Share,
}

/// The part of `run` that converting `start..end` to `to` changes, if any.
pub(crate) fn changed(run: &Run, start: u64, end: u64, to: Share) -> Option<(u64, u64)> {
    let (s, e) = (run.start.max(start), run.end.min(end));
    (s < e && run.share != to).then_some((s, e))
}

/// The range over which to store `to` when converting `start..end`: the request, widened over
/// `before`, the run holding page `start - 1`, and `after`, the run holding page `end`, when
/// they are in state `to`. The runs then stay maximal.
pub(crate) fn widened(
    start: u64,
    end: u64,
    to: Share,
    before: Option<&Run>,
    after: Option<&Run>,
) -> (u64, u64) {
    let s = match before {
        Some(r) if r.share == to => r.start.min(start),
        _ => start,
    };
    let e = match after {
        Some(r) if r.share == to => r.end.max(end),
        _ => end,
    };
    (s, e)
}

/// The attribute bit that marks memory private, as in KVM's uAPI.
pub(crate) const ATTRIBUTE_PRIVATE: u64 = 1 << 3;

/// Why a conversion request was refused. Each maps to `EINVAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestError {
    /// An attribute outside [`ATTRIBUTE_PRIVATE`].
    Attributes,
    /// A flag is set; none is defined.
    Flags,
    /// A reserved field is not zero.
    Reserved,
}

/// The state a request's `attributes` asks for, once its `flags` and `reserved` fields are
/// checked. The range is checked apart, as every range of a file is.
pub(crate) fn requested(
    attributes: u64,
    flags: u64,
    reserved: &[u64],
) -> Result<Share, RequestError> {
    if attributes & !ATTRIBUTE_PRIVATE != 0 {
        Err(RequestError::Attributes)
    } else if flags != 0 {
        Err(RequestError::Flags)
    } else if reserved.iter().any(|&r| r != 0) {
        Err(RequestError::Reserved)
    } else if attributes == ATTRIBUTE_PRIVATE {
        Ok(Share::Private)
    } else {
        Ok(Share::Shared)
    }
}
