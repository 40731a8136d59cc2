// SPDX-License-Identifier: GPL-2.0

//! Files on their own secure anonymous inode, each with a private page cache.
//!
//! C header: [`include/linux/anon_inodes.h`](srctree/include/linux/anon_inodes.h)

use crate::{
    bindings, container_of,
    error::{from_err_ptr, Error, Result},
    new_mutex,
    prelude::*,
    rgmem::fs::{file, file::ReleasedFile, filemap, filemap::Mapping, inode, File},
    rgmem::mm::virt::VmaNew,
    str::CStr,
    sync::{Arc, Mutex},
    types::{ARef, ForeignOwnable, Opaque},
    ThisModule,
};
use core::{marker::PhantomData, ptr::NonNull};

/// The C vtables of a file type `T`, which must outlive every file of the type.
///
/// Each file gets a fresh inode (`anon_inode_create_getfile`), so that its page cache, size and
/// LSM label are its own. The file's private data is an `Arc<T::Data>`, which the inode's
/// `i_private` also points to for the address space callbacks.
///
/// Lifetime: `release` runs [`file::Operations::release`], then empties the page cache, and only
/// then drops the data. Folios are only added through a live file, so once the page cache is
/// empty no callback of `T` can run for this inode again, and its eviction never calls into `T`.
///
/// # Invariants
///
/// - The vtables are those of `T`, and `fops.owner` is the module that implements `T`.
/// - Every file whose `f_op` is `fops` was created by [`FileType::create`] and its private data
///   came from `Arc::<T::Data>::into_foreign`.
#[pin_data]
pub struct FileType<T: file::Operations + inode::Operations + filemap::Operations> {
    #[pin]
    fops: Opaque<bindings::file_operations>,
    #[pin]
    iops: Opaque<bindings::inode_operations>,
    #[pin]
    aops: Opaque<bindings::address_space_operations>,
    /// Every file not yet released.
    #[pin]
    live: Mutex<KVec<Live<T::Data>>>,
    _t: PhantomData<T>,
}

/// A file of a [`FileType`] not yet released: its data and its page cache.
///
/// # Invariants
///
/// `mapping` is the page cache of the file whose private data is `data`, and stays valid while the
/// entry is in [`FileType::live`]: `release` removes it before it empties the page cache.
struct Live<D> {
    data: Arc<D>,
    mapping: NonNull<bindings::address_space>,
}

// SAFETY: The mapping is only read through `&Mapping`, which is `Sync`, and `Arc<D>` is `Send` for
// the `Send + Sync` data that file types require.
unsafe impl<D: Send + Sync> Send for Live<D> {}

// SAFETY: The vtables are never written after initialisation.
unsafe impl<T: file::Operations + inode::Operations + filemap::Operations> Sync for FileType<T> {}
// SAFETY: The vtables are plain data.
unsafe impl<T: file::Operations + inode::Operations + filemap::Operations> Send for FileType<T> {}

impl<T: file::Operations + inode::Operations + filemap::Operations> FileType<T> {
    /// Builds the vtables; files will pin `module`.
    pub fn new(module: &'static ThisModule) -> impl PinInit<Self> {
        let mut fops = FopsVTable::<T>::VTABLE;
        fops.owner = module.as_ptr();
        pin_init!(Self {
            fops: Opaque::new(fops),
            iops: Opaque::new(inode::OperationsVTable::<T>::VTABLE),
            aops: Opaque::new(filemap::OperationsVTable::<T>::VTABLE),
            live <- new_mutex!(KVec::new()),
            _t: PhantomData,
        })
    }

    /// Returns the `file_operations` that identify files of this type.
    pub fn fops(&self) -> *const bindings::file_operations {
        self.fops.get()
    }

    /// Creates a read-write file of `size` bytes named `name`, whose data `init` builds from the
    /// new file, before anyone else can see it.
    ///
    /// The page cache allocates `GFP_HIGHUSER` folios, is unevictable, is inaccessible to read
    /// and write, and may hold large folios.
    pub fn create<I, E>(
        &self,
        name: &'static CStr,
        size: i64,
        init: impl FnOnce(&File) -> I,
    ) -> Result<ARef<File>>
    where
        I: PinInit<T::Data, E>,
        Error: From<E>,
    {
        // SAFETY: `name` is a static C string and the vtables outlive every file by the type
        // invariant. The data is attached below, before anyone else can reach the file.
        let raw = from_err_ptr(unsafe {
            bindings::anon_inode_create_getfile(
                name.as_char_ptr(),
                self.fops.get(),
                core::ptr::null_mut(),
                bindings::O_RDWR as _,
                core::ptr::null(),
            )
        })?;
        // SAFETY: The file and its fresh inode are ours alone until the file is installed.
        unsafe {
            (*raw).f_flags |= bindings::O_LARGEFILE;
            let inode = (*raw).f_inode;
            let mapping = (*inode).i_mapping;
            (*inode).i_op = self.iops.get();
            (*mapping).a_ops = self.aops.get();
            (*inode).i_mode |= bindings::S_IFREG as u16;
            bindings::i_size_write(inode, size);
            bindings::mapping_set_gfp_mask(mapping, bindings::GFP_HIGHUSER);
            bindings::mapping_set_inaccessible(mapping);
            bindings::mapping_set_large_folios(mapping);
        }
        // Dropping `file` before the data is attached releases a file without data, which
        // `release` allows.
        // SAFETY: `anon_inode_create_getfile` returned the only reference, which we now own.
        let file: ARef<File> = unsafe { ARef::from_raw(NonNull::new_unchecked(raw.cast())) };
        let data = Arc::pin_init(init(&file), GFP_KERNEL)?;
        // SAFETY: The file's inode always has a mapping.
        let mapping = unsafe { NonNull::new_unchecked((*(*raw).f_inode).i_mapping) };
        // INVARIANT: `release` forgets the entry before it empties the page cache.
        self.live.lock().push(
            Live {
                data: data.clone(),
                mapping,
            },
            GFP_KERNEL,
        )?;
        let ptr = data.into_foreign();
        // INVARIANT: The private data of the file is now an `Arc<T::Data>`.
        // SAFETY: The file is still ours alone.
        unsafe {
            (*raw).private_data = ptr as *mut _;
            (*(*raw).f_inode).i_private = ptr as *mut _;
        }
        Ok(file)
    }

    /// Calls `f` on the data and the page cache of every file of this type not yet released,
    /// with new files and releases held off.
    pub fn for_each_data(&self, mut f: impl FnMut(&T::Data, &Mapping)) {
        for live in self.live.lock().iter() {
            // SAFETY: The mapping is valid while its entry is listed (type invariant of `Live`).
            let mapping = unsafe { Mapping::from_raw(live.mapping.as_ptr()) };
            f(&live.data, mapping);
        }
    }

    /// Forgets the data of a file being released.
    fn forget(&self, data: &T::Data) {
        let mut live = self.live.lock();
        if let Some(i) = live.iter().position(|l| core::ptr::eq(&*l.data, data)) {
            let last = live.len() - 1;
            live.swap(i, last);
            // SAFETY: The last entry is moved out once, and forgotten by the shorter length.
            let gone = unsafe { core::ptr::read(live.as_ptr().add(last)) };
            // SAFETY: As above.
            unsafe { live.set_len(last) };
            // Not the last reference: the file being released holds one.
            drop(gone);
        }
    }

    /// Returns the data of `file` if it is a file of this type whose data is attached (not yet
    /// inside [`Self::create`]'s `init`).
    pub fn data<'a>(&self, file: &'a File) -> Option<&'a T::Data> {
        // SAFETY: The file is live; `private_data` is only written before the file is shared.
        if !file.has_ops(self.fops.get()) || unsafe { (*file.as_ptr()).private_data }.is_null() {
            return None;
        }
        // SAFETY: By the type invariant, the private data of a file of this type is an
        // `Arc<T::Data>`, which stays alive while the file is.
        Some(unsafe { data_of_file::<T>(file.as_ptr()) })
    }
}

/// # Safety
///
/// `file` must be a file of a `FileType<T>` whose `release` has not finished, and the returned
/// reference must not outlive that.
pub(crate) unsafe fn data_of_file<'a, T: file::Operations>(
    file: *mut bindings::file,
) -> &'a T::Data {
    // SAFETY: Per the function's contract the private data is a live `Arc<T::Data>`.
    let borrowed = unsafe { Arc::<T::Data>::borrow((*file).private_data) };
    // SAFETY: The `Arc` lives as long as the caller promised.
    unsafe { &*(&*borrowed as *const T::Data) }
}

/// # Safety
///
/// `mapping` must belong to an inode of a `FileType<T>` whose page cache is not yet emptied by
/// `release`, and the returned reference must not outlive that.
pub(crate) unsafe fn data_of_mapping<'a, T: file::Operations>(
    mapping: *mut bindings::address_space,
) -> &'a T::Data {
    // SAFETY: Per the function's contract `i_private` holds a live `Arc<T::Data>`.
    let borrowed = unsafe { Arc::<T::Data>::borrow((*(*mapping).host).i_private) };
    // SAFETY: The `Arc` lives as long as the caller promised.
    unsafe { &*(&*borrowed as *const T::Data) }
}

struct FopsVTable<T: file::Operations + inode::Operations + filemap::Operations>(PhantomData<T>);

impl<T: file::Operations + inode::Operations + filemap::Operations> FopsVTable<T> {
    /// # Safety
    ///
    /// Called by the VFS once, when the last reference to a file of a `FileType<T>` is gone.
    unsafe extern "C" fn release(
        inode: *mut bindings::inode,
        file: *mut bindings::file,
    ) -> crate::ffi::c_int {
        // SAFETY: The file is in its release until we return.
        let f = unsafe { ReleasedFile::from_raw(file) };
        // SAFETY: As above.
        if unsafe { (*file).private_data }.is_null() {
            // `create` failed before attaching the data: nothing was ever cached.
            return 0;
        }
        // SAFETY: The data lives until the `from_foreign` below.
        let data = unsafe { data_of_file::<T>(file) };
        T::release(data, f);
        // SAFETY: Files of a `FileType<T>` use its `fops`, which outlive them (type invariant).
        let files = unsafe { &*container_of!((*file).f_op, FileType<T>, fops) };
        files.forget(data);
        // Folios are only added through a live file, and this is the last one: once the page
        // cache is empty, no callback can reach `T` through this inode again.
        // SAFETY: The inode is live until we return.
        unsafe { bindings::truncate_inode_pages((*inode).i_mapping, 0) };
        // SAFETY: As above; nothing reads `i_private` from now on.
        unsafe { (*inode).i_private = core::ptr::null_mut() };
        // SAFETY: This is the single release of the file's reference, and every borrow is gone.
        drop(unsafe { Arc::<T::Data>::from_foreign((*file).private_data) });
        0
    }

    /// # Safety
    ///
    /// Called by the VFS on a live file of a `FileType<T>`.
    unsafe extern "C" fn fallocate(
        file: *mut bindings::file,
        mode: crate::ffi::c_int,
        offset: bindings::loff_t,
        len: bindings::loff_t,
    ) -> crate::ffi::c_long {
        // SAFETY: The file is live for the call.
        let (data, f) = unsafe { (data_of_file::<T>(file), File::from_raw(file)) };
        match T::fallocate(data, f, mode, offset, len) {
            Ok(()) => 0,
            Err(e) => e.to_errno() as _,
        }
    }

    /// # Safety
    ///
    /// Called by the VFS on a live file of a `FileType<T>`.
    unsafe extern "C" fn ioctl(
        file: *mut bindings::file,
        cmd: crate::ffi::c_uint,
        arg: crate::ffi::c_ulong,
    ) -> crate::ffi::c_long {
        // SAFETY: The file is live for the call.
        let (data, f) = unsafe { (data_of_file::<T>(file), File::from_raw(file)) };
        match T::ioctl(data, f, cmd, arg) {
            Ok(r) => r as _,
            Err(e) => e.to_errno() as _,
        }
    }

    /// # Safety
    ///
    /// Called by `mmap` on a live file of a `FileType<T>` and a VMA it is setting up.
    unsafe extern "C" fn mmap(
        file: *mut bindings::file,
        vma: *mut bindings::vm_area_struct,
    ) -> crate::ffi::c_int {
        // SAFETY: The file is live for the call, and `mmap` is setting up `vma`.
        let (data, f, v) = unsafe {
            (
                data_of_file::<T>(file),
                File::from_raw(file),
                VmaNew::from_raw(vma),
            )
        };
        match T::mmap(data, f, v) {
            Ok(()) => {
                // SAFETY: The VMA is being set up, so nothing else reads `vm_ops` yet.
                unsafe { (*vma).vm_ops = &VmOpsVTable::<T>::VTABLE };
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    const VTABLE: bindings::file_operations = bindings::file_operations {
        mmap: if T::HAS_MMAP { Some(Self::mmap) } else { None },
        open: Some(bindings::generic_file_open),
        release: Some(Self::release),
        fallocate: if T::HAS_FALLOCATE {
            Some(Self::fallocate)
        } else {
            None
        },
        unlocked_ioctl: if T::HAS_IOCTL {
            Some(Self::ioctl)
        } else {
            None
        },
        // SAFETY: All-zeroes is a valid `file_operations`: every hook is absent.
        ..unsafe { core::mem::MaybeUninit::zeroed().assume_init() }
    };
}

struct VmOpsVTable<T: file::Operations>(PhantomData<T>);

impl<T: file::Operations> VmOpsVTable<T> {
    /// # Safety
    ///
    /// Called by the fault path for a VMA that `mmap` set up for a file of a `FileType<T>`.
    unsafe extern "C" fn fault(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
        // SAFETY: The fault path passes a valid `vmf` whose VMA holds a reference to its file, so
        // the file and its data are alive for the call.
        let (file, index) = unsafe {
            let v = &(*vmf).__bindgen_anon_1;
            ((*v.vma).vm_file, v.pgoff as u64)
        };
        // SAFETY: As above.
        let (data, f) = unsafe { (data_of_file::<T>(file), File::from_raw(file)) };
        match T::fault(data, f, index) {
            Ok(folio) => {
                let folio = folio.into_raw().as_ptr();
                // SAFETY: The fault path takes over the folio's lock and reference with the page,
                // as `VM_FAULT_LOCKED` tells it.
                unsafe { (*vmf).page = bindings::folio_file_page(folio, index as _) };
                bindings::vm_fault_reason_VM_FAULT_LOCKED
            }
            Err(e) if e == ENOMEM => bindings::vm_fault_reason_VM_FAULT_OOM,
            Err(e) if e == EHWPOISON => bindings::vm_fault_reason_VM_FAULT_HWPOISON,
            Err(_) => bindings::vm_fault_reason_VM_FAULT_SIGBUS,
        }
    }

    const VTABLE: bindings::vm_operations_struct = bindings::vm_operations_struct {
        fault: Some(Self::fault),
        // SAFETY: All-zeroes is a valid `vm_operations_struct`: every hook is absent.
        ..unsafe { core::mem::MaybeUninit::zeroed().assume_init() }
    };
}
