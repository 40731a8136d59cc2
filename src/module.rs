// SPDX-License-Identifier: GPL-2.0

//! The module's lifetime: what exists from load to unload.

use kernel::{c_str, debugfs, prelude::*};

/// rgmem's release, printed at load and unload.
pub(crate) const VERSION: &str = "0.1.0";

/// The loaded module.
pub(crate) struct Rgmem {
    /// `/sys/kernel/debug/rgmem/`, home of the counters; removed last.
    _debugfs: debugfs::Dir,
}

impl kernel::Module for Rgmem {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let debugfs = debugfs::Dir::new(c_str!("rgmem"))?;
        pr_info!("version {} loaded\n", VERSION);
        Ok(Self { _debugfs: debugfs })
    }
}

impl Drop for Rgmem {
    fn drop(&mut self) {
        pr_info!("version {} unloaded\n", VERSION);
    }
}
