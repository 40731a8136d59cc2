// SPDX-License-Identifier: GPL-2.0

//! A small VMM on rust-vmm's kvm-ioctls whose guest's memory is one guest_memfd file.
//!
//! It runs a real-mode guest in a `KVM_X86_SW_PROTECTED_VM`. Where the guest_memfd holds its
//! pages' attributes (rgmem, with `kvm.vm_memory_attributes=0`), the file is all the guest's
//! memory: the VMM writes the code into it while it is shared, makes all of it private but the
//! code and I/O pages, and the guest asks for conversions with `KVM_HC_MAP_GPA_RANGE`, which
//! the VMM answers with `KVM_SET_MEMORY_ATTRIBUTES2`. The code stays shared: without next-RIP
//! saving (QEMU's SVM has none), KVM skips `vmmcall` and `hlt` by decoding them, and it cannot
//! read private memory. Elsewhere (KVM's own attributes, and 6.12's C
//! guest_memfd, which cannot convert in place) the code and I/O pages are ordinary memory and
//! the guest only uses private memory that the VMM punches.
//!
//! Every step is checked: the process exits non-zero on the first mismatch, so the story is also
//! a test. `--expect rgmem` or `--expect kvm` says which guest_memfd must have served the file,
//! which rgmem's `files_created` counter tells.

mod attrs2;
mod guest;
mod rgmem;

use guest::{Step, CODE, IO_PAGE, MESSAGE, PORT, STAMP, STAMPED, TEXT};
use kvm_bindings::{
    kvm_create_guest_memfd, kvm_enable_cap, kvm_memory_attributes, kvm_userspace_memory_region2,
    KVM_CAP_EXIT_HYPERCALL, KVM_MEMORY_ATTRIBUTE_PRIVATE, KVM_MEM_GUEST_MEMFD,
    KVM_X86_SW_PROTECTED_VM,
};
use kvm_ioctls::{Kvm, VcpuExit, VmFd};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::process::ExitCode;
use std::ptr::NonNull;

const PAGE: u64 = 4096;

type Res<T> = Result<T, String>;

macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// A shared mapping of `len` bytes, unmapped on drop.
struct Mapping {
    addr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// Maps `fd` (a file, or `None` for anonymous memory) read-write and shared, at an address
    /// aligned to `align`: KVM maps a huge page only where the guest's and the host's addresses
    /// agree modulo its size.
    fn new(fd: Option<&OwnedFd>, len: u64, align: u64) -> Res<Self> {
        let (len, align) = (len as usize, align as usize);
        let (flags, raw) = match fd {
            Some(f) => (libc::MAP_SHARED | libc::MAP_FIXED, f.as_raw_fd()),
            None => (libc::MAP_SHARED | libc::MAP_FIXED | libc::MAP_ANONYMOUS, -1),
        };
        let failed = |what| format!("{what}: {}", std::io::Error::last_os_error());
        // SAFETY: A new reservation, placed by the kernel; nothing else is touched.
        let area = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len + align,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if area == libc::MAP_FAILED {
            return Err(failed("mmap"));
        }
        let start = (area as usize).next_multiple_of(align);
        // SAFETY: `[start, start + len)` lies in the reservation, which only we use.
        let p = unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                raw,
                0,
            )
        };
        // SAFETY: What is left of the reservation on either side, ours.
        unsafe {
            libc::munmap(area, start - area as usize);
            libc::munmap(
                (start + len) as *mut libc::c_void,
                area as usize + align - start,
            );
        }
        if p == libc::MAP_FAILED {
            return Err(failed("mmap"));
        }
        Ok(Self {
            addr: NonNull::new(p.cast()).ok_or("mmap returned NULL")?,
            len,
        })
    }

    fn write(&self, offset: u64, bytes: &[u8]) {
        assert!(offset as usize + bytes.len() <= self.len);
        // SAFETY: In bounds of a live read-write mapping; the guest may write it too, which
        // only changes the bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.addr.as_ptr().add(offset as usize),
                bytes.len(),
            )
        };
    }

    fn read(&self, offset: u64, len: usize) -> Vec<u8> {
        assert!(offset as usize + len <= self.len);
        let mut v = vec![0; len];
        // SAFETY: As in `write`; volatile, as the guest writes it behind the compiler's back.
        for (i, b) in v.iter_mut().enumerate() {
            *b = unsafe { self.addr.as_ptr().add(offset as usize + i).read_volatile() };
        }
        v
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: Our mapping, unmapped once.
        unsafe { libc::munmap(self.addr.as_ptr().cast(), self.len) };
    }
}

/// How the file's pages change state.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// In place, on the file (`KVM_SET_MEMORY_ATTRIBUTES2`): the guest converts.
    InPlace,
    /// KVM's per-VM attributes: shared pages are the memslot's ordinary memory.
    PerVm,
}

struct Vmm {
    vm: VmFd,
    gmem: OwnedFd,
    /// The memslot's user memory: the file itself (in place), or anonymous memory.
    mem: Mapping,
    mode: Mode,
    backing: Backing,
    ino: u64,
}

/// What backs the file, which is all the guest's memory.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Backing {
    /// 4 MiB of base pages.
    Pages,
    /// Two 2 MiB pages of the hugetlb pool.
    Huge2m,
    /// One 1 GiB page of the hugetlb pool.
    Huge1g,
}

impl Backing {
    /// The largest the pool allows, where the file holds the attributes: a hugetlb file starts
    /// private, and converts in place only.
    fn choose(in_place: bool, flags: u64) -> Self {
        let free = |kb: u64| -> u64 {
            std::fs::read_to_string(format!(
                "/sys/kernel/mm/hugepages/hugepages-{kb}kB/free_hugepages"
            ))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
        };
        if !in_place || flags & attrs2::FLAG_HUGETLB == 0 {
            Self::Pages
        } else if free(1 << 20) >= 1 {
            Self::Huge1g
        } else if free(2 << 10) >= 2 {
            Self::Huge2m
        } else {
            Self::Pages
        }
    }

    /// The size of the guest's memory.
    fn size(self) -> u64 {
        match self {
            Self::Pages | Self::Huge2m => 4 << 20,
            Self::Huge1g => 1 << 30,
        }
    }

    /// The size of its pages, which a punch frees whole.
    fn page(self) -> u64 {
        match self {
            Self::Pages => PAGE,
            Self::Huge2m => 2 << 20,
            Self::Huge1g => 1 << 30,
        }
    }

    fn huge(self) -> bool {
        self != Self::Pages
    }

    /// Its creation flags beside `GUEST_MEMFD_FLAG_MMAP`.
    fn flags(self) -> u64 {
        match self {
            Self::Pages => attrs2::FLAG_INIT_SHARED,
            _ => {
                attrs2::FLAG_HUGETLB
                    | u64::from(self.page().trailing_zeros()) << attrs2::HUGETLB_SIZE_SHIFT
            }
        }
    }
}

fn say(what: &str) {
    println!("  {what}");
}

impl Vmm {
    fn new(kvm: &Kvm) -> Res<Self> {
        let vm = kvm
            .create_vm_with_type(u64::from(KVM_X86_SW_PROTECTED_VM))
            .map_err(|e| format!("KVM_CREATE_VM(SW_PROTECTED): {e}"))?;
        let attrs = vm.check_extension_raw(attrs2::CAP_GUEST_MEMFD_MEMORY_ATTRIBUTES as _);
        let in_place = attrs2::FLAG_MMAP | attrs2::FLAG_INIT_SHARED;
        let flags = vm.check_extension_raw(attrs2::CAP_GUEST_MEMFD_FLAGS as _) as u64;
        let mode =
            if attrs as u32 & KVM_MEMORY_ATTRIBUTE_PRIVATE != 0 && flags & in_place == in_place {
                Mode::InPlace
            } else {
                Mode::PerVm
            };
        let backing = Backing::choose(mode == Mode::InPlace, flags);
        let flags = match mode {
            Mode::InPlace => attrs2::FLAG_MMAP | backing.flags(),
            Mode::PerVm => 0,
        };
        let fd = vm
            .create_guest_memfd(kvm_create_guest_memfd {
                size: backing.size(),
                flags,
                ..Default::default()
            })
            .map_err(|e| format!("KVM_CREATE_GUEST_MEMFD: {e}"))?;
        // SAFETY: A new file descriptor, ours alone.
        let gmem = unsafe { OwnedFd::from_raw_fd(fd) };
        let mem = Mapping::new(
            (mode == Mode::InPlace).then_some(&gmem),
            backing.size(),
            backing.page(),
        )?;
        let ino = File::from(gmem.try_clone().map_err(|e| e.to_string())?)
            .metadata()
            .map_err(|e| e.to_string())?
            .ino();
        let region = kvm_userspace_memory_region2 {
            slot: 0,
            flags: KVM_MEM_GUEST_MEMFD,
            guest_phys_addr: 0,
            memory_size: backing.size(),
            userspace_addr: mem.addr.as_ptr() as u64,
            guest_memfd_offset: 0,
            guest_memfd: gmem.as_raw_fd() as u32,
            ..Default::default()
        };
        // SAFETY: The user memory is `mem`, which lives as long as the VM (both are ours).
        unsafe { vm.set_user_memory_region2(region) }
            .map_err(|e| format!("KVM_SET_USER_MEMORY_REGION2: {e}"))?;
        let cap = kvm_enable_cap {
            cap: KVM_CAP_EXIT_HYPERCALL,
            args: [1 << guest::HC_MAP_GPA_RANGE, 0, 0, 0],
            ..Default::default()
        };
        vm.enable_cap(&cap)
            .map_err(|e| format!("KVM_CAP_EXIT_HYPERCALL: {e}"))?;
        Ok(Self {
            vm,
            gmem,
            mem,
            mode,
            backing,
            ino,
        })
    }

    /// Makes `size` bytes from `gpa` private or shared.
    fn convert(&self, gpa: u64, size: u64, private: bool) -> Res<()> {
        let attributes = if private {
            u64::from(KVM_MEMORY_ATTRIBUTE_PRIVATE)
        } else {
            0
        };
        match self.mode {
            Mode::InPlace => {
                attrs2::set(self.gmem.as_fd(), gpa, size, attributes).map_err(|(e, at)| {
                    format!("KVM_SET_MEMORY_ATTRIBUTES2 [{gpa:#x}, +{size:#x}): {e}, at {at:#x}")
                })
            }
            Mode::PerVm => self
                .vm
                .set_memory_attributes(kvm_memory_attributes {
                    address: gpa,
                    size,
                    attributes,
                    flags: 0,
                })
                .map_err(|e| format!("KVM_SET_MEMORY_ATTRIBUTES: {e}")),
        }
    }

    fn punch(&self, gpa: u64, len: u64) -> Res<()> {
        // SAFETY: fallocate on our own file descriptor.
        let r = unsafe {
            libc::fallocate(
                self.gmem.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                gpa as i64,
                len as i64,
            )
        };
        check!(
            r == 0,
            "PUNCH_HOLE [{gpa:#x}, +{len:#x}): {}",
            std::io::Error::last_os_error()
        );
        Ok(())
    }

    /// KVM's mappings of the guest's memory by size, from its debugfs: 4 KiB, 2 MiB, 1 GiB.
    fn kvm_pages(&self) -> Option<[u64; 3]> {
        let dir = format!(
            "/sys/kernel/debug/kvm/{}-{}",
            std::process::id(),
            self.vm.as_raw_fd()
        );
        let read = |n: &str| -> Option<u64> {
            std::fs::read_to_string(format!("{dir}/{n}"))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        Some([read("pages_4k")?, read("pages_2m")?, read("pages_1g")?])
    }

    fn show_runs(&self, when: &str) {
        let runs = rgmem::runs(self.ino);
        if runs.is_empty() {
            return;
        }
        say(&format!(
            "rgmem's shareability of the file ({when}), in pages:"
        ));
        for r in runs {
            say(&format!("    {r}"));
        }
    }
}

/// Whether the host CPU is AMD's, whose hypercall instruction is `vmmcall`.
fn amd() -> bool {
    let id = std::arch::x86_64::__cpuid(0);
    [id.ebx, id.edx, id.ecx] == [0x6874_7541, 0x6974_6e65, 0x444d_4163]
}

fn run(expect: &Expect) -> Res<()> {
    let kvm = Kvm::new().map_err(|e| format!("/dev/kvm: {e}"))?;
    let before = rgmem::counters();
    let vmm = Vmm::new(&kvm)?;
    let after_create = rgmem::counters();
    let served = match (&before, &after_create) {
        (Some(b), Some(a)) if a["files_created"] > b["files_created"] => "rgmem",
        _ => "kvm",
    };
    println!(
        "== a SW_PROTECTED VM, its {} MiB of memory one guest_memfd file, served by {served}",
        vmm.backing.size() >> 20
    );
    if let Some(want) = &expect.server {
        check!(
            want == served,
            "the file was served by {served}, expected {want}"
        );
    }
    let backing = match vmm.backing {
        Backing::Pages => "4k",
        Backing::Huge2m => "2m",
        Backing::Huge1g => "1g",
    };
    if let Some(want) = &expect.backing {
        check!(
            want == backing,
            "the file is backed by {backing} pages, expected {want}"
        );
    }
    let convert = vmm.mode == Mode::InPlace;
    let (code, steps) = guest::code(convert, amd());

    if convert && vmm.backing.huge() {
        say(&format!(
            "the file is {} of the hugetlb pool, created private: the VMM shares",
            if vmm.backing == Backing::Huge1g {
                "one 1 GiB page"
            } else {
                "two 2 MiB pages"
            }
        ));
        say("the code and I/O pages, which splits the first, and writes the code through its mmap");
        vmm.convert(CODE, 2 * PAGE, false)?;
        vmm.mem.write(CODE, &code);
        vmm.show_runs("before the guest runs");
    } else if convert {
        say(
            "the file is created shared: the VMM writes the guest's code into it through its mmap,",
        );
        say("then makes all of it private but the code and I/O pages");
        vmm.mem.write(CODE, &code);
        vmm.convert(0, CODE, true)?;
        vmm.convert(IO_PAGE + PAGE, vmm.backing.size() - IO_PAGE - PAGE, true)?;
        vmm.show_runs("before the guest runs");
    } else {
        say("KVM holds the attributes: the code and I/O pages are the memslot's ordinary memory,");
        say("the rest private, from the file; no conversion in place");
        vmm.mem.write(CODE, &code);
        vmm.convert(IO_PAGE + PAGE, vmm.backing.size() - IO_PAGE - PAGE, true)?;
    }

    let mut vcpu = vmm
        .vm
        .create_vcpu(0)
        .map_err(|e| format!("KVM_CREATE_VCPU: {e}"))?;
    let mut sregs = vcpu.get_sregs().map_err(|e| e.to_string())?;
    for s in [&mut sregs.cs, &mut sregs.ds, &mut sregs.es, &mut sregs.ss] {
        s.base = 0;
        s.selector = 0;
    }
    // Unreal mode: 32-bit addresses through `ds` reach the second 2 MiB.
    sregs.ds.limit = u32::MAX;
    sregs.ds.g = 1;
    vcpu.set_sregs(&sregs).map_err(|e| e.to_string())?;
    let mut regs = vcpu.get_regs().map_err(|e| e.to_string())?;
    regs.rip = CODE;
    regs.rflags = 2;
    vcpu.set_regs(&regs).map_err(|e| e.to_string())?;

    println!("== the guest runs");
    let mut next = steps.iter();
    // KVM's mappings by size, from its debugfs, while the guest runs.
    let mut pages = None;
    loop {
        match vcpu.run().map_err(|e| format!("KVM_RUN: {e}"))? {
            VcpuExit::Hypercall(exit) => {
                check!(exit.nr == guest::HC_MAP_GPA_RANGE, "hypercall {}", exit.nr);
                let (gpa, pages, attrs) = (exit.args[0], exit.args[1], exit.args[2]);
                let private = attrs & guest::MAP_GPA_RANGE_ENCRYPTED != 0;
                say(&format!(
                    "guest: KVM_HC_MAP_GPA_RANGE {gpa:#x}, {pages} page, to {}",
                    if private { "private" } else { "shared" }
                ));
                vmm.convert(gpa, pages * PAGE, private)?;
                say(&format!(
                    "VMM:   KVM_SET_MEMORY_ATTRIBUTES2 on the file: page {gpa:#x} is {}",
                    if private { "private" } else { "shared" }
                ));
                vmm.show_runs("now");
                *exit.ret = 0;
                if !private {
                    let text = vmm.mem.read(MESSAGE, TEXT.len());
                    say(&format!(
                        "VMM:   reads it through the file's mmap: \"{}\"",
                        String::from_utf8_lossy(&text)
                    ));
                    check!(text == TEXT, "the shared page holds {text:?}");
                }
            }
            VcpuExit::IoOut(port, data) => {
                check!(
                    port == PORT && data.len() == 4,
                    "out to port {port:#x}, {} bytes",
                    data.len()
                );
                let eax = u32::from_le_bytes(data.try_into().map_err(|_| "short out")?);
                let step = *next.next().ok_or("a step too many")?;
                let io = vmm.mem.read(IO_PAGE, 1)[0];
                match step {
                    Step::Stamped | Step::Shared => {
                        check!(eax == 0, "{step:?}: the guest got {eax:#x}");
                        check!(io == 1, "{step:?}: the I/O page reads step {io}");
                        say(&format!(
                            "guest: stamped private page {STAMPED:#x} with {STAMP:#x}"
                        ));
                        // A hugetlb-backed file is punched whole pages; the one 1 GiB page
                        // holds the code, which a punch would zero.
                        if vmm.backing == Backing::Huge1g {
                            say("VMM:   punches nothing: a punch frees whole 1 GiB pages");
                        } else {
                            vmm.punch(STAMPED, vmm.backing.page())?;
                            say(&format!("VMM:   punches a hole at {STAMPED:#x}"));
                        }
                    }
                    Step::ReadAfterPunch => {
                        check!(io == 2, "{step:?}: the I/O page reads step {io}");
                        // Before the next conversion, which unmaps the whole huge page.
                        pages = vmm.kvm_pages();
                        if vmm.backing == Backing::Huge1g {
                            check!(eax == STAMP, "page {STAMPED:#x} reads {eax:#x}");
                            say(&format!("guest: page {STAMPED:#x} still reads {eax:#x}"));
                        } else {
                            check!(eax == 0, "page {STAMPED:#x} reads {eax:#x} after the punch");
                            say(&format!("guest: page {STAMPED:#x} reads {eax:#x}: the punch gave it a zeroed page"));
                        }
                    }
                    Step::PrivateAgain => {
                        check!(eax == 0, "{step:?}: the guest got {eax:#x}");
                        check!(io == 3, "{step:?}: the I/O page reads step {io}");
                    }
                    Step::MessageKept => {
                        let want = u32::from_le_bytes(TEXT[..4].try_into().unwrap());
                        check!(
                            eax == want,
                            "the message starts {eax:#x} once private again, not {want:#x}"
                        );
                        say("guest: reads its message back, private again: unchanged, no copy was made");
                    }
                }
            }
            VcpuExit::Hlt => break,
            e => return Err(format!("unexpected exit: {e:?}")),
        }
    }
    check!(next.next().is_none(), "the guest stopped early");
    println!("== the guest halted");
    if let Some([p4k, p2m, p1g]) = pages {
        say(&format!(
            "KVM mapped the guest's memory, once it read {STAMPED:#x} again, with {p4k} pages of 4 KiB, {p2m} of 2 MiB, {p1g} of 1 GiB"
        ));
        // The second 2 MiB is a whole huge page, or a 2 MiB piece of one: mapped 2 MiB.
        check!(
            !vmm.backing.huge() || p2m >= 1,
            "no 2 MiB mapping of the hugetlb-backed file"
        );
    }
    if convert {
        vmm.convert(0, vmm.backing.size(), true)?;
        say("VMM:   makes the whole file private again");
        if vmm.backing.huge() {
            say("       every page private, rgmem merges the pieces back into the huge page");
        }
        vmm.show_runs("after");
    }
    if let (Some(b), Some(a)) = (&before, rgmem::counters()) {
        report(b, &a, convert, vmm.backing)?;
    }
    Ok(())
}

/// Prints rgmem's counters and checks what the story did to them.
fn report(
    before: &BTreeMap<&str, i64>,
    after: &BTreeMap<&str, i64>,
    convert: bool,
    backing: Backing,
) -> Res<()> {
    say("rgmem's counters (before -> after):");
    for (name, b) in before {
        say(&format!("    {name:<18} {b} -> {}", after[name]));
    }
    let d = |n: &str| after[n] - before[n];
    check!(
        d("files_created") == 1,
        "files_created +{}",
        d("files_created")
    );
    let punches = i64::from(backing != Backing::Huge1g);
    check!(
        d("punch_holes") == punches,
        "punch_holes +{}, expected +{punches}",
        d("punch_holes")
    );
    check!(d("get_pfn") > 0, "get_pfn +{}", d("get_pfn"));
    // The VMM's before the guest runs (one to share a hugetlb file's code and I/O pages, two to
    // make a shared file's other pages private), the guest's two, and the VMM's last.
    let want = match (convert, backing.huge()) {
        (false, _) => 0,
        (true, true) => 4,
        (true, false) => 5,
    };
    check!(
        d("conversions") == want,
        "conversions +{}, expected +{want}",
        d("conversions")
    );
    if backing.huge() {
        check!(
            d("splits") > 0 && d("merges") > 0,
            "splits +{}, merges +{}",
            d("splits"),
            d("merges")
        );
    }
    Ok(())
}

/// What the command line asks to check.
#[derive(Default)]
struct Expect {
    /// Which guest_memfd serves the file: `rgmem` or `kvm`.
    server: Option<String>,
    /// What backs it: `4k`, `2m` or `1g`.
    backing: Option<String>,
}

fn parse(args: &[String]) -> Option<Expect> {
    let mut e = Expect::default();
    for pair in args.chunks(2) {
        match pair {
            [f, v] if f == "--expect" && (v == "rgmem" || v == "kvm") => e.server = Some(v.clone()),
            [f, v] if f == "--backing" && ["4k", "2m", "1g"].contains(&v.as_str()) => {
                e.backing = Some(v.clone())
            }
            _ => return None,
        }
    }
    Some(e)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let Some(expect) = parse(args.get(1..).unwrap_or_default()) else {
        eprintln!(
            "usage: {} [--expect rgmem|kvm] [--backing 4k|2m|1g]",
            args[0]
        );
        return ExitCode::from(2);
    };
    match run(&expect) {
        Ok(()) => {
            println!("PASS");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("FAIL: {e}");
            ExitCode::FAILURE
        }
    }
}
