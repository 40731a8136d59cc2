// SPDX-License-Identifier: GPL-2.0

//! A second guest_memfd provider that serves nothing: `rgmem_module_test` loads it to check that
//! KVM refuses a provider while another one is registered, in either order.

use kernel::{
    prelude::*,
    rgmem::fs::{anon_inode::FileType, file, filemap, inode, File},
    rgmem::kvm::{
        gmem::{Bindings, BindingsGuard, Data, HasBindings, NewSlot, Pfn, Provider, Registration},
        Kvm, MemorySlot,
    },
    sync::Arc,
    types::ARef,
};

module! {
    type: Second,
    name: "rgmem_second",
    author: "rgmem developers",
    description: "A guest_memfd provider that serves nothing, for rgmem's tests",
    license: "GPL",
}

/// The state of a file, of which there is never one.
#[pin_data]
struct Nothing {
    #[pin]
    bindings: Bindings,
}

impl HasBindings for Nothing {
    fn bindings(&self) -> &Bindings {
        &self.bindings
    }
}

struct NoFile;

#[vtable]
impl file::Operations for NoFile {
    type Data = Nothing;
}

#[vtable]
impl inode::Operations for NoFile {}

#[vtable]
impl filemap::Operations for NoFile {}

struct NoProvider;

#[vtable]
impl Provider for NoProvider {
    type File = NoFile;
    type Context = ();

    fn create(
        _context: &(),
        _files: &FileType<NoFile>,
        _kvm: &Kvm,
        _size: u64,
        _flags: u64,
    ) -> Result<ARef<File>> {
        Err(ENODEV)
    }

    fn prepare(_data: &Data<Self>, _kvm: &Kvm, _slot: &MemorySlot, _offset: u64) -> Result<u64> {
        Err(ENODEV)
    }

    fn commit(_data: &Data<Self>, _bindings: &mut BindingsGuard<'_>, _new: NewSlot<'_>) -> Result {
        Err(ENODEV)
    }

    fn get_pfn(
        _data: &Data<Self>,
        _kvm: &Kvm,
        _slot: &MemorySlot,
        _file: &File,
        _gfn: u64,
    ) -> Result<Pfn> {
        Err(ENODEV)
    }
}

struct Second {
    _provider: Arc<Registration<NoProvider>>,
}

impl kernel::Module for Second {
    fn init(module: &'static ThisModule) -> Result<Self> {
        let provider = Registration::new(module, ())?;
        // Fails, and so does the load, with KVM's errno when a provider is registered.
        provider.register()?;
        Ok(Self {
            _provider: provider,
        })
    }
}
