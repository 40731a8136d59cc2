// SPDX-License-Identifier: GPL-2.0

//! Serving guest_memfd from a module, through KVM's provider seam.
//!
//! A [`Registration`] makes KVM hand `KVM_CREATE_GUEST_MEMFD`, memslot binding and unbinding,
//! private faults and population to a [`Provider`]. Files pin the provider's module, so no call
//! runs module code after it is unloaded.
//!
//! Binding a memslot takes KVM's two steps: [`Provider::prepare`] checks it and may fail, then
//! [`Provider::commit`] publishes it under the file's invalidate lock, after which KVM creates the
//! memslot without failing. Unbinding also runs under the invalidate lock, so a hole punch or a
//! conversion, which hold it across their invalidation, never misses a binding.
//!
//! Lock order (KVM's, extended by [`Bindings`]):
//! `kvm->lock` → `kvm->slots_lock` → `kvm->slots_arch_lock` → `invalidate_lock` → folio lock →
//! [`Bindings`] → `mmu_lock`.
//!
//! C header: [`include/linux/kvm_gmem_provider.h`](srctree/include/linux/kvm_gmem_provider.h)

use crate::{
    alloc::{flags::GFP_KERNEL, KVec},
    bindings, container_of,
    error::{to_result, Error, Result},
    ioctl, new_mutex,
    page::PAGE_SIZE,
    prelude::*,
    rgmem::folio::{Folio, Frames, LockedFolio},
    rgmem::fs::{
        anon_inode::FileType,
        file,
        filemap::{self, InvalidateGuard},
        inode, File,
    },
    rgmem::kvm::{Invalidation, Kvm, MemorySlot, SlotsGuard},
    sync::{
        lock::{mutex::MutexBackend, Guard},
        Arc, Mutex,
    },
    types::{ARef, AsBytes, FromBytes, Opaque},
    uaccess::{UserPtr, UserSlice},
    ThisModule,
};
use core::{
    marker::PhantomData, mem::size_of, ptr::NonNull, sync::atomic::AtomicBool,
    sync::atomic::Ordering,
};

/// A memslot bound to a range of a guest_memfd file.
///
/// # Invariants
///
/// `slot` is bound to the file whose [`Bindings`] hold this value: its `gmem.file` points to the
/// file, and KVM calls unbind, or the file's release detaches it, before freeing the memslot.
pub struct Binding {
    slot: NonNull<bindings::kvm_memory_slot>,
    start: u64,
    end: u64,
}

// SAFETY: A binding only refers to a memslot, which may be used from any thread.
unsafe impl Send for Binding {}

impl Binding {
    /// Returns the memslot.
    pub fn slot(&self) -> &MemorySlot {
        // SAFETY: The memslot is bound, and so alive, by the type invariant.
        unsafe { MemorySlot::from_raw(self.slot.as_ptr()) }
    }

    /// Returns the first file page of the binding.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Returns the file page after the binding.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Returns the guest frame that maps file page `index`, from `start()` to `end()`.
    pub fn gfn(&self, index: u64) -> u64 {
        self.slot().base_gfn() + (index - self.start)
    }
}

/// A prepared memslot that KVM asks to bind, given to [`Provider::commit`].
///
/// # Invariants
///
/// `slot` is a new memslot, not yet visible to KVM's readers, whose `gmem.file` is the file and
/// `gmem.pgoff` is `start`; KVM holds `slots_lock`, and the file's invalidate lock is held while
/// this value exists.
pub struct NewSlot<'a> {
    slot: &'a MemorySlot,
    start: u64,
    end: u64,
    _invalidate: &'a InvalidateGuard<'a>,
}

impl NewSlot<'_> {
    /// Returns the memslot.
    pub fn slot(&self) -> &MemorySlot {
        self.slot
    }

    /// Returns the first file page the memslot binds.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Returns the file page after the last one the memslot binds.
    pub fn end(&self) -> u64 {
        self.end
    }
}

/// The memslots bound to one guest_memfd file, all of them memslots of the file's VM.
///
/// # Invariants
///
/// Every entry satisfies the invariants of [`Binding`], and its memslot is one of `kvm`'s.
#[pin_data]
pub struct Bindings {
    kvm: ARef<Kvm>,
    #[pin]
    inner: Mutex<KVec<Binding>>,
}

impl Bindings {
    /// Creates an empty set for memslots of `kvm`.
    pub fn new(kvm: &Kvm) -> impl PinInit<Self> {
        let kvm: ARef<Kvm> = kvm.into();
        pin_init!(Self {
            kvm,
            inner <- new_mutex!(KVec::new(), "gmem_bindings"),
        })
    }

    /// Locks the set.
    pub fn lock(&self) -> BindingsGuard<'_> {
        BindingsGuard {
            kvm: &self.kvm,
            inner: self.inner.lock(),
        }
    }
}

/// The locked bindings of a file; `!Send`, as the mutex guard it holds.
#[must_use = "the lock is released when the guard is dropped"]
pub struct BindingsGuard<'a> {
    kvm: &'a Kvm,
    inner: Guard<'a, KVec<Binding>, MutexBackend>,
}

impl<'a> BindingsGuard<'a> {
    /// Iterates over the bindings, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &Binding> {
        self.inner.iter()
    }

    /// Returns whether there are no bindings.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// Invalidates guest frames `[start, end)` of `binding`, one of these bindings, in their VM:
    /// see [`Kvm::invalidate`]. A binding of another set, or frames outside its memslot, are
    /// refused with a warning.
    pub fn invalidate(
        &self,
        inv: &mut Option<Invalidation<'a>>,
        binding: &Binding,
        start: u64,
        end: u64,
    ) {
        let ours = self
            .inner
            .as_ptr_range()
            .contains(&core::ptr::from_ref(binding));
        if crate::warn_on!(!ours) {
            return;
        }
        self.kvm.invalidate(inv, binding, start, end);
    }

    /// Publishes the binding of `new`, which the caller has checked against the others.
    ///
    /// On failure nothing changes, and KVM does not create the memslot.
    pub fn insert(&mut self, new: NewSlot<'_>) -> Result {
        // INVARIANT: The slot points to the file since prepare, and KVM creates it once commit
        // succeeds, so it unbinds it before freeing it.
        self.inner
            .push(
                Binding {
                    // SAFETY: `as_ptr` of a reference is never null.
                    slot: unsafe { NonNull::new_unchecked(new.slot.as_ptr()) },
                    start: new.start,
                    end: new.end,
                },
                GFP_KERNEL,
            )
            .map_err(|_| ENOMEM)
    }

    /// Removes the binding of `slot`, if there is one; KVM is unbinding it.
    fn remove(&mut self, slot: *mut bindings::kvm_memory_slot) {
        let Some(i) = self.inner.iter().position(|b| b.slot.as_ptr() == slot) else {
            return;
        };
        let last = self.inner.len() - 1;
        self.inner.swap(i, last);
        // SAFETY: `Binding` needs no drop, and the entry past the new length is forgotten.
        unsafe { self.inner.set_len(last) };
    }

    /// Detaches every binding as the file goes away: KVM then skips unbinding them.
    ///
    /// Holding the VM's `slots_lock` keeps KVM from unbinding or freeing the memslots meanwhile;
    /// with another VM's, nothing is detached and a warning is reported.
    pub fn detach_all(&mut self, slots: &SlotsGuard<'_>) {
        if crate::warn_on!(!slots.holds(self.kvm)) {
            return;
        }
        for b in self.inner.iter() {
            // SAFETY: The memslot is alive while `slots_lock` is held, and KVM reads `gmem.file`
            // with `get_file_active`, which fails for this dying file anyway.
            unsafe {
                core::ptr::write_volatile(
                    &raw mut (*b.slot.as_ptr()).gmem.file,
                    core::ptr::null_mut(),
                )
            };
        }
        // SAFETY: `Binding` needs no drop; the entries are forgotten.
        unsafe { self.inner.set_len(0) };
    }
}

/// Per-file data that carries its bindings.
pub trait HasBindings {
    /// Returns the file's bindings.
    fn bindings(&self) -> &Bindings;
}

/// A referenced page frame handed to KVM's fault path.
///
/// KVM maps `1 << max_order` frames around `pfn` and releases one reference to `pfn`'s page.
///
/// # Invariants
///
/// `pfn` is a page of `folio`, and the naturally aligned block of `1 << max_order` frames that
/// contains it lies inside `folio`. `folio` holds the reference KVM releases.
pub struct Pfn {
    folio: ARef<Folio>,
    pfn: u64,
    max_order: u32,
}

impl Pfn {
    /// The frame of file page `index` of `folio`, which KVM may map in blocks of up to
    /// `1 << max_order` frames; unlocks the folio. `EINVAL` if `index` is not in the folio or
    /// such a block would leave it.
    pub fn new(folio: LockedFolio, index: u64, max_order: u32) -> Result<Self> {
        let pfn = folio.pfn_of(index)?;
        // A folio is naturally aligned in frames, so every aligned block no larger than it
        // that contains one of its frames lies inside it.
        if max_order > folio.order() {
            return Err(EINVAL);
        }
        // INVARIANT: Checked above; the reference moves into the result.
        Ok(Self {
            folio: folio.unlock(),
            pfn,
            max_order,
        })
    }
}

/// The per-file data of a provider's files.
pub type Data<P> = <<P as Provider>::File as file::Operations>::Data;

/// A module that serves guest_memfd.
#[macros::vtable]
pub trait Provider: Sized + 'static {
    /// The provider's file type.
    type File: file::Operations<Data: HasBindings> + inode::Operations + filemap::Operations;

    /// What the provider shares between its files, given to its registration.
    type Context: Send + Sync;

    /// `KVM_CREATE_GUEST_MEMFD`: create a file with `files`, or fail with an errno.
    fn create(
        context: &Self::Context,
        files: &FileType<Self::File>,
        kvm: &Kvm,
        size: u64,
        flags: u64,
    ) -> Result<ARef<File>>;

    /// Checks that the new memslot `slot` may bind its file at byte `offset`, with
    /// `kvm->slots_lock` held, and returns the first file page it binds.
    ///
    /// Nothing may be published yet: creating the memslot can still fail.
    fn prepare(data: &Data<Self>, kvm: &Kvm, slot: &MemorySlot, offset: u64) -> Result<u64>;

    /// Publishes the binding of `new`, prepared before, by inserting it into `bindings`, or fails
    /// with `EEXIST` if it overlaps one already there. The file's invalidate lock is held.
    fn commit(data: &Data<Self>, bindings: &mut BindingsGuard<'_>, new: NewSlot<'_>) -> Result;

    /// KVM is unbinding `slot`, with `kvm->slots_lock` and the file's invalidate lock held; the
    /// binding is removed afterwards.
    fn unbind(_data: &Data<Self>, _slot: &MemorySlot) {}

    /// The private fault path wants the page frame backing `gfn` of `slot`.
    fn get_pfn(
        data: &Data<Self>,
        kvm: &Kvm,
        slot: &MemorySlot,
        file: &File,
        gfn: u64,
    ) -> Result<Pfn>;

    /// Launch-time population (SEV-SNP) of `req`, in `slot`. Returns how many pages were
    /// populated, or an error if none was. `kvm->slots_lock` is held.
    fn populate(
        _data: &Data<Self>,
        _kvm: &Kvm,
        _slot: &MemorySlot,
        _file: &File,
        _req: &Populate,
    ) -> Result<u64> {
        Err(EOPNOTSUPP)
    }

    /// Whether `gfn` of `slot` is private, when KVM's `vm_memory_attributes` is 0 and the file
    /// holds the attributes. KVM may hold `mmu_lock`: this must not sleep.
    fn is_private(_data: &Data<Self>, _slot: &MemorySlot, _gfn: u64) -> bool {
        true
    }

    /// Whether gfns `start..end` of `slot` are all private or all shared, when KVM's
    /// `vm_memory_attributes` is 0; KVM maps no huge page across a change of attribute. KVM may
    /// hold `mmu_lock`: this must not sleep.
    fn is_uniform(_data: &Data<Self>, _slot: &MemorySlot, _start: u64, _end: u64) -> bool {
        true
    }

    /// The value of the guest_memfd capability `cap`, for `kvm` or, if `None`, for `/dev/kvm`.
    /// Runs under `rcu_read_lock()`.
    fn capability(_kvm: Option<&Kvm>, _cap: Capability) -> u64 {
        0
    }
}

/// The argument of `KVM_SET_MEMORY_ATTRIBUTES2`, an ioctl of guest_memfd files, as read from
/// user space.
///
/// # Invariants
///
/// `ptr` is the user address `raw` was read from.
pub struct MemoryAttributes2 {
    raw: bindings::kvm_memory_attributes2,
    ptr: UserPtr,
}

// SAFETY: The struct is plain integers, with no padding.
unsafe impl FromBytes for bindings::kvm_memory_attributes2 {}
// SAFETY: As above.
unsafe impl AsBytes for bindings::kvm_memory_attributes2 {}

impl MemoryAttributes2 {
    /// The ioctl command.
    pub const IOCTL: u32 = ioctl::_IOWR::<bindings::kvm_memory_attributes2>(bindings::KVMIO, 0xd2);

    /// Reads the argument at user address `arg`; `EFAULT` if it cannot be read.
    pub fn read(arg: usize) -> Result<Self> {
        let mut reader =
            UserSlice::new(arg, size_of::<bindings::kvm_memory_attributes2>()).reader();
        Ok(Self {
            raw: reader.read()?,
            ptr: arg,
        })
    }

    /// The byte offset of the range in the file.
    pub fn offset(&self) -> u64 {
        self.raw.offset
    }

    /// The byte length of the range.
    pub fn size(&self) -> u64 {
        self.raw.size
    }

    /// The attributes asked for.
    pub fn attributes(&self) -> u64 {
        self.raw.attributes
    }

    /// The flags; none is defined.
    pub fn flags(&self) -> u64 {
        self.raw.flags
    }

    /// The reserved fields, which must be zero.
    pub fn reserved(&self) -> &[u64] {
        &self.raw.reserved
    }

    /// Reports a failure at byte `offset` of the file back to user space, in `error_offset`.
    pub fn report_error_offset(mut self, offset: u64) -> Result {
        self.raw.error_offset = offset;
        let len = size_of::<bindings::kvm_memory_attributes2>();
        UserSlice::new(self.ptr, len).writer().write(&self.raw)
    }
}

/// `KVM_CREATE_GUEST_MEMFD` flag: the host may `mmap` the file's shared pages.
pub const FLAG_MMAP: u64 = bindings::GUEST_MEMFD_FLAG_MMAP as u64;
/// `KVM_CREATE_GUEST_MEMFD` flag: pages start shared rather than private.
pub const FLAG_INIT_SHARED: u64 = bindings::GUEST_MEMFD_FLAG_INIT_SHARED as u64;
/// `KVM_CREATE_GUEST_MEMFD` flag: folios come from the hugetlb pool.
pub const FLAG_HUGETLB: u64 = bindings::GUEST_MEMFD_FLAG_HUGETLB as u64;
/// Where the flags of a hugetlb file give log2 of its page size, in bytes.
pub const HUGETLB_SIZE_SHIFT: u32 = bindings::GUEST_MEMFD_HUGETLB_SIZE_SHIFT;
/// The mask of that field, once shifted down.
pub const HUGETLB_SIZE_MASK: u64 = bindings::GUEST_MEMFD_HUGETLB_SIZE_MASK as u64;

/// The attribute that marks memory private.
pub const MEMORY_ATTRIBUTE_PRIVATE: u64 = bindings::KVM_MEMORY_ATTRIBUTE_PRIVATE as u64;

/// The guest_memfd capabilities a provider answers.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Capability {
    /// `KVM_CAP_GUEST_MEMFD_FLAGS`: the supported `KVM_CREATE_GUEST_MEMFD` flags.
    Flags,
    /// `KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES`: the attributes `KVM_SET_MEMORY_ATTRIBUTES2`
    /// takes.
    MemoryAttributes,
}

/// A population request from `kvm_gmem_populate()`: up to `npages` frames from `gfn`, each
/// handed to the architecture's callback, which copies from user address `src` if it is not
/// zero.
///
/// # Invariants
///
/// `f` and `opaque` come from `kvm_gmem_populate()`'s caller and are valid for the call.
pub struct Populate {
    /// The first guest frame.
    pub gfn: u64,
    /// The user address of the source, or zero.
    pub src: usize,
    /// The number of pages asked for.
    pub npages: u64,
    f: bindings::kvm_gmem_populate_cb,
    opaque: *mut crate::ffi::c_void,
}

impl Populate {
    /// Makes the `1 << order` frames of `folio` from file page `index` the guest's memory at
    /// `gfn`, copying from user address `src` if it is not zero. `EINVAL` unless those frames are
    /// an aligned block inside the folio.
    pub fn post(
        &self,
        kvm: &Kvm,
        gfn: u64,
        folio: &LockedFolio,
        index: u64,
        src: usize,
        order: u32,
    ) -> Result {
        let Some(f) = self.f else {
            return Err(EINVAL);
        };
        let pfn = folio.pfn_of(index)?;
        if order > folio.order() || pfn % (1u64 << order) != 0 {
            return Err(EINVAL);
        }
        // SAFETY: By the type invariant `f` and `opaque` are valid; `src` is a user address,
        // which the callback accesses with the uaccess helpers.
        to_result(unsafe {
            f(
                kvm.as_ptr(),
                gfn,
                pfn,
                src as *mut _,
                order as _,
                self.opaque,
            )
        })
    }
}

/// A block of new private pages that [`populate`] hands to its callback: `1 << order` frames
/// that become the guest's memory at `gfn`, and the user address of their source, if any.
///
/// # Invariants
///
/// For `'a`, the frames `pfn..pfn + (1 << order)` are guest_memfd pages that KVM holds for the
/// callback, which may write them.
pub struct PopulateBlock<'a> {
    gfn: u64,
    pfn: u64,
    order: u32,
    src: UserPtr,
    _call: PhantomData<&'a mut ()>,
}

impl PopulateBlock<'_> {
    /// The first guest frame.
    pub fn gfn(&self) -> u64 {
        self.gfn
    }

    /// The block's order: it is `1 << order` pages.
    pub fn order(&self) -> u32 {
        self.order
    }

    /// The user address of the source, or zero.
    pub fn src(&self) -> UserPtr {
        self.src
    }

    /// Copies the source into the block, as a launch update does; `EINVAL` without a source.
    pub fn copy_from_user(&mut self) -> Result {
        if self.src == 0 {
            return Err(EINVAL);
        }
        for i in 0..1usize << self.order {
            // SAFETY: The frame is one of the block's, a page KVM holds (type invariant).
            let page = unsafe { bindings::rgmem_pfn_to_page((self.pfn + i as u64) as _) };
            // SAFETY: `page` is a valid page; the mapping is undone below.
            let addr = unsafe { bindings::kmap_local_page(page) };
            // SAFETY: The page is mapped at `addr` and ours to write during the call.
            let out = unsafe { core::slice::from_raw_parts_mut(addr.cast::<u8>(), PAGE_SIZE) };
            let r = UserSlice::new(self.src + i * PAGE_SIZE, PAGE_SIZE)
                .reader()
                .read_slice(out);
            // SAFETY: Mapped above, in this task, and the slice is gone.
            unsafe { bindings::kunmap_local(addr) };
            r?;
        }
        Ok(())
    }
}

type PopulateFn<'f> = &'f mut dyn FnMut(&mut PopulateBlock<'_>) -> Result;

/// Populates `npages` guest frames of the VM from `gfn`, as an architecture's launch code does,
/// through `kvm_gmem_populate()`: the memslot's guest_memfd, KVM's own or a provider's, allocates
/// each block of new private pages and hands it to `f`, whose error stops the walk. Returns the
/// pages populated, or the error if none was. `EINVAL` unless `npages` is positive.
pub fn populate(
    slots: &SlotsGuard<'_>,
    gfn: u64,
    src: UserPtr,
    npages: u64,
    mut f: PopulateFn<'_>,
) -> Result<u64> {
    let n = crate::ffi::c_long::try_from(npages).map_err(|_| EINVAL)?;
    if n == 0 {
        return Err(EINVAL);
    }
    let opaque = (&raw mut f).cast();
    // SAFETY: `slots` holds the VM's `slots_lock`, and `opaque` points to `f`, which outlives
    // the call; `populate_block` is the matching callback.
    let r = unsafe {
        bindings::kvm_gmem_populate(
            slots.0.as_ptr(),
            gfn,
            src as *mut _,
            n,
            Some(populate_block),
            opaque,
        )
    };
    if r < 0 {
        Err(Error::from_errno(r as i32))
    } else {
        Ok(r as u64)
    }
}

/// # Safety
///
/// Called by `kvm_gmem_populate()` as [`populate`] set it up: `opaque` is its `f`, and the
/// frames from `pfn` are held for the call.
unsafe extern "C" fn populate_block(
    _kvm: *mut bindings::kvm,
    gfn: bindings::gfn_t,
    pfn: bindings::kvm_pfn_t,
    src: *mut crate::ffi::c_void,
    order: crate::ffi::c_int,
    opaque: *mut crate::ffi::c_void,
) -> crate::ffi::c_int {
    // SAFETY: `opaque` is `populate`'s `f`, borrowed for its call.
    let f = unsafe { &mut *opaque.cast::<PopulateFn<'_>>() };
    // INVARIANT: KVM holds the frames for the call.
    let mut block = PopulateBlock {
        gfn,
        pfn,
        order: order as u32,
        src: src as UserPtr,
        _call: PhantomData,
    };
    match f(&mut block) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// A provider registered with KVM.
///
/// # Invariants
///
/// While `registered` is true, KVM may call the trampolines in `raw`, and `raw.fops` is the
/// `file_operations` of `files`.
#[pin_data(PinnedDrop)]
pub struct Registration<P: Provider> {
    #[pin]
    files: FileType<P::File>,
    #[pin]
    raw: Opaque<bindings::kvm_gmem_provider>,
    registered: AtomicBool,
    context: P::Context,
}

// SAFETY: KVM calls the provider from any thread; the registration itself is immutable.
unsafe impl<P: Provider> Sync for Registration<P> {}
// SAFETY: As above.
unsafe impl<P: Provider> Send for Registration<P> {}

impl<P: Provider> Registration<P> {
    /// Prepares `P`'s registration on behalf of `module`, with the `context` its files share;
    /// KVM does not see it until [`Self::register`].
    pub fn new(module: &'static ThisModule, context: P::Context) -> Result<Arc<Self>> {
        let this = Arc::pin_init(
            pin_init!(Self {
                files <- FileType::new(module),
                // SAFETY: All-zeroes is a valid, empty `kvm_gmem_provider`.
                raw: Opaque::new(unsafe { core::mem::zeroed() }),
                registered: AtomicBool::new(false),
                context,
            }),
            GFP_KERNEL,
        )?;
        let raw = this.raw.get();
        // SAFETY: `raw` is ours alone until it is registered; the `Arc` is pinned, so the
        // pointers stay valid until `drop` unregisters.
        unsafe {
            (*raw).owner = module.as_ptr();
            (*raw).fops = this.files.fops();
            (*raw).create = Some(Self::create);
            (*raw).prepare = Some(Self::prepare);
            (*raw).commit = Some(Self::commit);
            (*raw).unbind = Some(Self::unbind);
            (*raw).get_pfn = Some(Self::get_pfn);
            if P::HAS_POPULATE {
                (*raw).populate = Some(Self::populate);
            }
            if P::HAS_IS_PRIVATE {
                (*raw).is_private = Some(Self::is_private);
            }
            if P::HAS_IS_UNIFORM {
                (*raw).is_uniform = Some(Self::is_uniform);
            }
            (*raw).capability = Some(Self::capability);
        }
        Ok(this)
    }

    /// Registers `P` with KVM: from now on KVM creates `P`'s files. The last step of a module's
    /// init, since a file may exist as soon as this returns and then pins the module.
    ///
    /// Fails with `EBUSY` if another provider, or this one, is registered.
    pub fn register(&self) -> Result {
        if self.registered.swap(true, Ordering::AcqRel) {
            return Err(EBUSY);
        }
        // SAFETY: `raw` was fully initialised by `new` and outlives the registration: `drop`
        // unregisters it.
        let r = to_result(unsafe { bindings::kvm_gmem_register_provider(self.raw.get()) });
        if r.is_err() {
            self.registered.store(false, Ordering::Release);
        }
        // INVARIANT: On success KVM may call us from now on, and `registered` says so.
        r
    }

    /// # Safety
    ///
    /// Called by KVM with a live VM and arguments, holding a reference on our module.
    unsafe extern "C" fn create(
        provider: *const bindings::kvm_gmem_provider,
        kvm: *mut bindings::kvm,
        args: *mut bindings::kvm_create_guest_memfd,
    ) -> crate::ffi::c_int {
        // SAFETY: KVM passes back the `raw` field of a registration of ours.
        let this = unsafe { &*container_of!(provider, Self, raw) };
        // SAFETY: KVM holds the VM alive across the ioctl.
        let kvm = unsafe { Kvm::from_raw(kvm) };
        // SAFETY: KVM copied the arguments from user space.
        let (size, flags) = unsafe { ((*args).size, (*args).flags) };
        // Refused arguments cost no descriptor; if none is left, the new file is released.
        let r = P::create(&this.context, &this.files, kvm, size, flags).and_then(|file| {
            let fd = file::FileDescriptorReservation::get_unused_fd_flags(0)?;
            let n = fd.reserved_fd();
            fd.fd_install(file);
            Ok::<_, Error>(n)
        });
        match r {
            Ok(fd) => fd as _,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by KVM with `kvm->slots_lock` held, for a new, invisible memslot and a referenced
    /// file of ours.
    unsafe extern "C" fn prepare(
        kvm: *mut bindings::kvm,
        slot: *mut bindings::kvm_memory_slot,
        file: *mut bindings::file,
        offset: u64,
    ) -> crate::ffi::c_int {
        // SAFETY: KVM keeps the VM and the memslot alive across the call.
        let (kvm, s) = unsafe { (Kvm::from_raw(kvm), MemorySlot::from_raw(slot)) };
        // SAFETY: KVM checked that the file is one of ours, and holds a reference to it.
        let data = unsafe { crate::rgmem::fs::anon_inode::data_of_file::<P::File>(file) };
        match P::prepare(data, kvm, s, offset) {
            Ok(start) => {
                // The binding, or the file's release, keeps `gmem.file` right from now on.
                // SAFETY: The memslot is invisible to KVM's readers, so plain writes suffice,
                // and KVM holds the file until the memslot exists or has failed to.
                unsafe {
                    (*slot).gmem.file = file;
                    (*slot).gmem.pgoff = start as _;
                }
                0
            }
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by KVM with `kvm->slots_lock` and `kvm->slots_arch_lock` held, for a new, invisible
    /// memslot that [`Self::prepare`] accepted; KVM still holds its reference to the file.
    unsafe extern "C" fn commit(
        kvm: *mut bindings::kvm,
        slot: *mut bindings::kvm_memory_slot,
    ) -> crate::ffi::c_int {
        // SAFETY: KVM keeps the VM and the memslot alive across the call.
        let (kvm, s) = unsafe { (Kvm::from_raw(kvm), MemorySlot::from_raw(slot)) };
        // SAFETY: `prepare` set `gmem.file` to a file of ours, which KVM holds a reference to.
        let file = unsafe { File::from_raw((*slot).gmem.file) };
        // SAFETY: As above.
        let data = unsafe { crate::rgmem::fs::anon_inode::data_of_file::<P::File>(file.as_ptr()) };
        let invalidate = file.mapping().invalidate_lock();
        let start = s.gmem_pgoff();
        // INVARIANT: `prepare` set `gmem.file` and `gmem.pgoff`, and the lock is held for `new`'s
        // lifetime.
        let new = NewSlot {
            slot: s,
            start,
            end: start + s.npages(),
            _invalidate: &invalidate,
        };
        let mut bindings = data.bindings().lock();
        // The set's invariant: only its VM's memslots.
        if *bindings.kvm != *kvm {
            return EINVAL.to_errno();
        }
        match P::commit(data, &mut bindings, new) {
            Ok(()) => 0,
            Err(e) => {
                // KVM frees the memslot without unbinding it.
                bindings.remove(slot);
                e.to_errno()
            }
        }
    }

    /// # Safety
    ///
    /// Called by KVM with `kvm->slots_lock` held, for a bound memslot whose `gmem.file` is set.
    unsafe extern "C" fn unbind(slot: *mut bindings::kvm_memory_slot) {
        // SAFETY: The memslot is alive across the call.
        let s = unsafe { MemorySlot::from_raw(slot) };
        let file = s.gmem_file();
        // Release detaches the bindings under `slots_lock`, which the caller holds.
        // SAFETY: `gmem.file` is set, so release has not detached them and cannot meanwhile: the
        // file, its inode and its data stay alive, even if the file is being released.
        let (data, mapping) = unsafe {
            (
                crate::rgmem::fs::anon_inode::data_of_file::<P::File>(file),
                filemap::Mapping::from_raw((*file).f_mapping),
            )
        };
        let _invalidate = mapping.invalidate_lock();
        P::unbind(data, s);
        data.bindings().lock().remove(slot);
        // SAFETY: KVM's readers of `gmem.file` are gone (`synchronize_srcu` after the slot was
        // made invisible), and the slot is alive until unbind returns.
        unsafe { core::ptr::write_volatile(&raw mut (*slot).gmem.file, core::ptr::null_mut()) };
    }

    /// # Safety
    ///
    /// Called by KVM's fault path with `kvm->srcu` held and `file`, one of ours, referenced.
    unsafe extern "C" fn get_pfn(
        kvm: *mut bindings::kvm,
        slot: *mut bindings::kvm_memory_slot,
        file: *mut bindings::file,
        gfn: bindings::gfn_t,
        pfn: *mut bindings::kvm_pfn_t,
        max_order: *mut crate::ffi::c_int,
    ) -> crate::ffi::c_int {
        // SAFETY: KVM keeps the VM, the memslot and the file alive across the call.
        let (kvm, s, f) = unsafe {
            (
                Kvm::from_raw(kvm),
                MemorySlot::from_raw(slot),
                File::from_raw(file),
            )
        };
        // SAFETY: As above.
        if unsafe { core::ptr::read_volatile(&raw const (*slot).gmem.file) } != file {
            return EFAULT.to_errno();
        }
        // SAFETY: The file is one of ours and referenced.
        let data = unsafe { crate::rgmem::fs::anon_inode::data_of_file::<P::File>(file) };
        match P::get_pfn(data, kvm, s, f, gfn) {
            Ok(p) => {
                // SAFETY: KVM passes a valid `pfn`; `max_order` may be null.
                unsafe {
                    *pfn = p.pfn;
                    if !max_order.is_null() {
                        *max_order = p.max_order as _;
                    }
                }
                // KVM releases this reference once it has mapped the frame.
                let _ = ARef::into_raw(p.folio);
                0
            }
            Err(e) => e.to_errno(),
        }
    }
}

impl<P: Provider> Registration<P> {
    /// Calls `f` on the data and the page cache of every file of the provider not yet released.
    pub fn for_each_file(&self, f: impl FnMut(&Data<P>, &filemap::Mapping)) {
        self.files.for_each_data(f);
    }
}

impl<P: Provider> Registration<P> {
    /// # Safety
    ///
    /// Called by KVM with `kvm->srcu` held and `file`, one of ours, referenced.
    unsafe extern "C" fn is_private(
        slot: *mut bindings::kvm_memory_slot,
        file: *mut bindings::file,
        gfn: bindings::gfn_t,
    ) -> bool {
        // SAFETY: KVM keeps the memslot alive across the call.
        let s = unsafe { MemorySlot::from_raw(slot) };
        // SAFETY: The file is one of ours and referenced.
        let data = unsafe { crate::rgmem::fs::anon_inode::data_of_file::<P::File>(file) };
        P::is_private(data, s, gfn)
    }

    /// # Safety
    ///
    /// Called by KVM with `kvm->srcu` held and `file`, one of ours, referenced.
    unsafe extern "C" fn is_uniform(
        slot: *const bindings::kvm_memory_slot,
        file: *mut bindings::file,
        start: bindings::gfn_t,
        end: bindings::gfn_t,
    ) -> bool {
        // SAFETY: KVM keeps the memslot alive across the call; `MemorySlot` only reads it.
        let s = unsafe { MemorySlot::from_raw(slot.cast_mut()) };
        // SAFETY: The file is one of ours and referenced.
        let data = unsafe { crate::rgmem::fs::anon_inode::data_of_file::<P::File>(file) };
        P::is_uniform(data, s, start, end)
    }

    /// # Safety
    ///
    /// Called by KVM under `rcu_read_lock()`, with `kvm` live or null.
    unsafe extern "C" fn capability(kvm: *mut bindings::kvm, cap: crate::ffi::c_long) -> u64 {
        let cap = match u32::try_from(cap) {
            Ok(bindings::KVM_CAP_GUEST_MEMFD_FLAGS) => Capability::Flags,
            Ok(bindings::KVM_CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES) => Capability::MemoryAttributes,
            _ => return 0,
        };
        // SAFETY: KVM keeps a non-null VM alive across the call.
        let kvm = (!kvm.is_null()).then(|| unsafe { Kvm::from_raw(kvm) });
        P::capability(kvm, cap)
    }
}

impl<P: Provider> Registration<P> {
    /// # Safety
    ///
    /// Called by `kvm_gmem_populate()` with `kvm->slots_lock` held and `file`, one of ours,
    /// referenced.
    // The arguments are `kvm_gmem_provider.populate`'s.
    #[allow(clippy::too_many_arguments)]
    unsafe extern "C" fn populate(
        kvm: *mut bindings::kvm,
        slot: *mut bindings::kvm_memory_slot,
        file: *mut bindings::file,
        gfn: bindings::gfn_t,
        src: *mut crate::ffi::c_void,
        npages: crate::ffi::c_long,
        post_populate: bindings::kvm_gmem_populate_cb,
        opaque: *mut crate::ffi::c_void,
    ) -> crate::ffi::c_long {
        if npages < 0 {
            return EINVAL.to_errno() as _;
        }
        // SAFETY: KVM keeps the VM, the memslot and the file alive across the call.
        let (kvm, s, f) = unsafe {
            (
                Kvm::from_raw(kvm),
                MemorySlot::from_raw(slot),
                File::from_raw(file),
            )
        };
        // SAFETY: The file is one of ours and referenced.
        let data = unsafe { crate::rgmem::fs::anon_inode::data_of_file::<P::File>(file) };
        // INVARIANT: Both come from KVM's caller, valid for this call.
        let req = Populate {
            gfn,
            src: src as usize,
            npages: npages as u64,
            f: post_populate,
            opaque,
        };
        match P::populate(data, kvm, s, f, &req) {
            Ok(n) => n as _,
            Err(e) => e.to_errno() as _,
        }
    }
}

#[pinned_drop]
impl<P: Provider> PinnedDrop for Registration<P> {
    fn drop(self: Pin<&mut Self>) {
        if self.registered.load(Ordering::Acquire) {
            // SAFETY: We registered `raw`; this waits for KVM's lookups to finish.
            unsafe { bindings::kvm_gmem_unregister_provider(self.raw.get()) };
        }
    }
}

/// Asks the architecture to prepare `folio`, whose first page the guest sees at `gfn`, for
/// private use (`kvm_arch_gmem_prepare`).
///
/// Costs nothing where the architecture has no such hook.
#[inline]
pub fn arch_prepare(kvm: &Kvm, gfn: u64, folio: &LockedFolio) -> Result {
    if !cfg!(CONFIG_HAVE_KVM_ARCH_GMEM_PREPARE) {
        return Ok(());
    }
    let (pfn, order) = (folio.pfn(), folio.order());
    // SAFETY: The VM is alive, and the frames are the locked folio's.
    to_result(unsafe { bindings::kvm_gmem_provider_prepare(kvm.as_ptr(), gfn, pfn, order as _) })
}

/// Whether the architecture has an invalidate hook: without one, [`arch_invalidate`] does nothing
/// and callers may skip looking for the folios to pass it.
pub const HAS_ARCH_INVALIDATE: bool = cfg!(CONFIG_HAVE_KVM_ARCH_GMEM_INVALIDATE);

/// Tells the architecture that `folio`'s frames leave private use (`kvm_arch_gmem_invalidate`).
///
/// Costs nothing where the architecture has no such hook.
#[inline]
pub fn arch_invalidate(folio: &impl Frames) {
    if !cfg!(CONFIG_HAVE_KVM_ARCH_GMEM_INVALIDATE) {
        return;
    }
    let (start, n) = folio.frames();
    // SAFETY: No preconditions; the frames are the caller's folio's.
    unsafe { bindings::kvm_gmem_provider_free(start, start + n as u64) }
}
