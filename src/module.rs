// SPDX-License-Identifier: GPL-2.0

//! The module's lifetime: what exists from load to unload.

use crate::{counters, kvm};
use kernel::{c_str, debugfs, kvm::gmem::Registration, prelude::*};

/// rgmem's release, printed at load and unload.
pub(crate) const VERSION: &str = "0.1.0";

/// The loaded module.
///
/// Fields drop in order: KVM stops calling rgmem before the counters go away. Open files pin
/// the module, so unloading only happens once no file, and so no binding, is left.
pub(crate) struct Rgmem {
    _provider: Pin<KBox<Registration<kvm::Rgmem>>>,
    _debugfs: debugfs::Dir,
}

impl kernel::Module for Rgmem {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let debugfs = debugfs::Dir::new(c_str!("rgmem"))?;
        counters::publish(&debugfs);
        let provider = Registration::new(module)?;
        pr_info!("version {} loaded\n", VERSION);
        Ok(Self {
            _provider: provider,
            _debugfs: debugfs,
        })
    }
}

impl Drop for Rgmem {
    fn drop(&mut self) {
        pr_info!("version {} unloaded\n", VERSION);
    }
}
