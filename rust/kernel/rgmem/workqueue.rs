// SPDX-License-Identifier: GPL-2.0

//! Work that runs later, and again later while it has work left: a delayed work item on the
//! system workqueue, owned by the value it works on.
//!
//! C header: [`include/linux/workqueue.h`](srctree/include/linux/workqueue.h)

use crate::{bindings, c_str, prelude::*, static_lock_class, types::Opaque};
use core::ffi::c_uint;

/// What a [`Retrying`] value does when its work runs.
pub trait Retry: Send + Sync {
    /// Does the work; returns in how many milliseconds to run again, or `None` to stop until
    /// [`Retrying::schedule`] is called again.
    fn retry(&self) -> Option<u32>;
}

/// A `T` with a delayed work item that calls [`Retry::retry`] on it.
///
/// # Invariants
///
/// `work` is an initialized `delayed_work` whose function is [`Self::run`]; it is never queued
/// after the value is dropped, which waits for a run under way.
#[pin_data(PinnedDrop)]
pub struct Retrying<T: Retry> {
    #[pin]
    work: Opaque<bindings::delayed_work>,
    #[pin]
    data: T,
}

// SAFETY: The work item may be queued and run from any thread, and `T` is `Send + Sync`.
unsafe impl<T: Retry> Send for Retrying<T> {}
// SAFETY: As above.
unsafe impl<T: Retry> Sync for Retrying<T> {}

impl<T: Retry> Retrying<T> {
    /// `data`, with its work not yet scheduled.
    pub fn new(data: impl PinInit<T>) -> impl PinInit<Self> {
        pin_init!(Self {
            work <- Opaque::ffi_init(|slot: *mut bindings::delayed_work| {
                // SAFETY: `slot` is valid for writes; this is `INIT_DELAYED_WORK()`, and `run`
                // has the signature of a work function.
                unsafe {
                    bindings::init_work_with_key(
                        &raw mut (*slot).work,
                        Some(Self::run),
                        false,
                        c_str!("rgmem::Retrying").as_char_ptr(),
                        static_lock_class!().as_ptr(),
                    );
                    bindings::init_timer_key(
                        &raw mut (*slot).timer,
                        Some(bindings::delayed_work_timer_fn),
                        bindings::TIMER_IRQSAFE,
                        c_str!("rgmem::Retrying::timer").as_char_ptr(),
                        static_lock_class!().as_ptr(),
                    );
                }
            }),
            data <- data,
        })
    }

    /// The value the work runs on.
    pub fn data(&self) -> &T {
        &self.data
    }

    /// Runs the work in `ms` milliseconds, unless it is pending already.
    pub fn schedule(&self, ms: u32) {
        // SAFETY: The work is initialized (type invariant) and lives until `drop`, which cancels
        // it; the system workqueue lives forever.
        unsafe {
            bindings::queue_delayed_work_on(
                bindings::wq_misc_consts_WORK_CPU_UNBOUND as _,
                bindings::system_wq,
                self.work.get(),
                bindings::__msecs_to_jiffies(ms as c_uint),
            );
        }
    }

    /// The work function.
    ///
    /// # Safety
    ///
    /// `work` must be the `work` of the `delayed_work` of a live `Retrying<T>`.
    unsafe extern "C" fn run(work: *mut bindings::work_struct) {
        // SAFETY: Per the function's contract, `work` is the `work` of a `delayed_work`.
        let dwork = unsafe { crate::container_of!(work, bindings::delayed_work, work) };
        // SAFETY: That `delayed_work` is `Self::work`, which `Opaque` lays out transparently, of
        // a live value: `drop` waits for this run to end before the value goes.
        let this = unsafe {
            &*crate::container_of!(dwork.cast::<Opaque<bindings::delayed_work>>(), Self, work)
        };
        if let Some(ms) = this.data.retry() {
            this.schedule(ms);
        }
    }
}

#[pinned_drop]
impl<T: Retry> PinnedDrop for Retrying<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: The work is initialized; this waits for a run under way and keeps it from
        // queueing itself again, so none runs after this.
        unsafe { bindings::cancel_delayed_work_sync(self.work.get()) };
    }
}
