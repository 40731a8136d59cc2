// SPDX-License-Identifier: GPL-2.0

//! The module's lifetime: what exists from load to unload.

use crate::{allocator, counters, kvm, park, shareability};
use core::fmt::Write;
use kernel::{
    c_str,
    prelude::*,
    rgmem::debugfs::{self, SeqWriter, ShowFile, ShowFops},
    rgmem::kvm::gmem::Registration,
    sync::Arc,
};

/// The operations of rgmem's debugfs files: an open one pins the module.
static SHOW_FOPS: ShowFops<Registration<kvm::Rgmem>> = ShowFops::new(&crate::THIS_MODULE);

/// rgmem's release, printed at load and unload.
pub(crate) const VERSION: &str = "0.1.0";

/// The loaded module.
///
/// Fields drop in order: the debugfs files that read the files first (they hold the
/// registration), then KVM stops calling rgmem and the parked blocks get their last try, then the
/// counters go away. Open files, guest_memfd or debugfs, pin the module, so unloading only happens
/// once no file, and so no binding, is left.
pub(crate) struct Rgmem {
    _shareability: ShowFile<Registration<kvm::Rgmem>>,
    _folios_cached: ShowFile<Registration<kvm::Rgmem>>,
    _folios_freed: ShowFile<Registration<kvm::Rgmem>>,
    _folios: ShowFile<Registration<kvm::Rgmem>>,
    _provider: Arc<Registration<kvm::Rgmem>>,
    _debugfs: debugfs::Dir,
}

/// `shareability` in debugfs: the runs of every live file.
fn show_shareability(provider: &Registration<kvm::Rgmem>, w: &mut SeqWriter) -> core::fmt::Result {
    shareability::dump(
        |f| provider.for_each_file(|gmem, _| f(gmem.ino, &gmem.shares)),
        w,
    )
}

fn folios_cached(provider: &Registration<kvm::Rgmem>) -> u64 {
    counters::folios_cached(|f| {
        provider.for_each_file(|gmem, mapping| f(mapping, gmem.allocator.order()))
    })
}

/// `folios` in debugfs: the folios of every live file, in runs of one order.
fn show_folios(provider: &Registration<kvm::Rgmem>, w: &mut SeqWriter) -> core::fmt::Result {
    allocator::dump_folios(
        |f| provider.for_each_file(|gmem, mapping| f(gmem.ino, mapping, gmem.pages)),
        w,
    )
}

/// `folios_cached` in debugfs: the folios of every live file.
fn show_folios_cached(provider: &Registration<kvm::Rgmem>, w: &mut SeqWriter) -> core::fmt::Result {
    writeln!(w, "{}", folios_cached(provider))
}

/// `folios_freed` in debugfs: the folios that left a page cache.
fn show_folios_freed(provider: &Registration<kvm::Rgmem>, w: &mut SeqWriter) -> core::fmt::Result {
    writeln!(w, "{}", counters::folios_freed(folios_cached(provider)))
}

impl kernel::Module for Rgmem {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let debugfs = debugfs::Dir::new(c_str!("rgmem"))?;
        counters::publish(&debugfs);
        let parking = Arc::pin_init(park::new(), GFP_KERNEL)?;
        let provider = Registration::new(module, parking)?;
        let shareability = ShowFile::new(
            &debugfs,
            c_str!("shareability"),
            &SHOW_FOPS,
            provider.clone(),
            show_shareability,
        )?;
        let folios_cached = ShowFile::new(
            &debugfs,
            c_str!("folios_cached"),
            &SHOW_FOPS,
            provider.clone(),
            show_folios_cached,
        )?;
        let folios_freed = ShowFile::new(
            &debugfs,
            c_str!("folios_freed"),
            &SHOW_FOPS,
            provider.clone(),
            show_folios_freed,
        )?;
        let folios = ShowFile::new(
            &debugfs,
            c_str!("folios"),
            &SHOW_FOPS,
            provider.clone(),
            show_folios,
        )?;
        // Last: once KVM knows rgmem, a file can exist, and a failed init must not leave one.
        provider.register()?;
        pr_info!("version {} loaded\n", VERSION);
        Ok(Self {
            _shareability: shareability,
            _folios_cached: folios_cached,
            _folios_freed: folios_freed,
            _folios: folios,
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
