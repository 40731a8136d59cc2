// SPDX-License-Identifier: GPL-2.0

//! Invalidating KVM's mappings of file pages: the one walk over a file's bindings that punching,
//! conversion, memory failure and release share, as C's `kvm_gmem_invalidate_begin()`.

use crate::{binding_math, counters, range::PageRange};
use kernel::rgmem::kvm::{gmem::BindingsGuard, Invalidation};

/// Invalidates the guest frames that map file pages `range` in every binding, and returns the
/// invalidation, which ends when dropped; `None` if no binding maps any of the pages.
pub(crate) fn pages<'a>(
    bindings: &BindingsGuard<'a>,
    range: &PageRange,
) -> Option<Invalidation<'a>> {
    let mut inv = None;
    for b in bindings.iter() {
        let Some(bound) = PageRange::new(b.start(), b.end()) else {
            continue;
        };
        if let Some((s, e)) = binding_math::gfns(&bound, b.slot().base_gfn(), range) {
            bindings.invalidate(&mut inv, b, s, e);
        }
    }
    if inv.is_some() {
        counters::INVALIDATIONS.inc();
    }
    inv
}
