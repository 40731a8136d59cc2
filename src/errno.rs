// SPDX-License-Identifier: GPL-2.0

//! The errnos of the kernel-free errors: where the math's refusals become kernel errors, so that
//! `?` converts them.

use crate::{range::RangeError, share_math::RequestError};
use kernel::error::{code::EINVAL, Error};

impl From<RangeError> for Error {
    fn from(_: RangeError) -> Self {
        EINVAL
    }
}

impl From<RequestError> for Error {
    fn from(_: RequestError) -> Self {
        EINVAL
    }
}
