// SPDX-License-Identifier: GPL-2.0

//! Drives `kvm_gmem_populate()` from user space, as SEV-SNP's launch update does, so that the
//! populate path of whichever guest_memfd serves a VM runs where there is no SNP.
//!
//! `rgmem_populate_test` writes `VMFD GFN SRC NPAGES` to
//! `/sys/kernel/debug/rgmem_populate/populate`: with the VM's `slots_lock` held, each block
//! handed to the callback is recorded and, when `SRC` is not 0, filled from it. The write fails
//! with the errno when no page was populated; `last` shows what the call returned and the blocks
//! it saw.

use core::fmt::Write;
use kernel::{
    alloc::KVec,
    c_str, new_mutex,
    prelude::*,
    rgmem::debugfs::{Dir, SeqWriter, ShowFile, ShowFops, WriteFile, WriteFops},
    rgmem::fs::File,
    rgmem::kvm::{gmem, Kvm},
    sync::{Arc, Mutex},
};

module! {
    type: PopulateTest,
    name: "rgmem_populate",
    author: "rgmem developers",
    description: "Calls kvm_gmem_populate() for rgmem's tests",
    license: "GPL",
}

/// What the last populate returned (pages, or a negative errno) and the blocks it handed over.
struct Last {
    ret: i64,
    blocks: KVec<(u64, u32)>,
}

#[pin_data]
struct State {
    #[pin]
    last: Mutex<Last>,
}

static WRITE_FOPS: WriteFops<State> = WriteFops::new(&THIS_MODULE);
static SHOW_FOPS: ShowFops<State> = ShowFops::new(&THIS_MODULE);

fn parse_u64(s: &str) -> Result<u64> {
    let r = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|_| EINVAL)
}

/// `VMFD GFN SRC NPAGES`, in decimal or `0x` hexadecimal.
fn parse(buf: &[u8]) -> Result<[u64; 4]> {
    let s = core::str::from_utf8(buf).map_err(|_| EINVAL)?;
    let mut words = s.split_ascii_whitespace();
    let mut out = [0u64; 4];
    for v in out.iter_mut() {
        *v = parse_u64(words.next().ok_or(EINVAL)?)?;
    }
    if words.next().is_some() {
        return Err(EINVAL);
    }
    Ok(out)
}

fn write(state: &State, buf: &[u8]) -> Result {
    let [fd, gfn, src, npages] = parse(buf)?;
    let file = File::fget(u32::try_from(fd).map_err(|_| EBADF)?)?;
    let kvm = Kvm::from_file(&file)?;
    let src = usize::try_from(src).map_err(|_| EINVAL)?;
    let mut blocks = KVec::new();
    let r = {
        let slots = kvm.lock_slots();
        gmem::populate(&slots, gfn, src, npages, &mut |block| {
            blocks.push((block.gfn(), block.order()), GFP_KERNEL)?;
            if block.src() != 0 {
                block.copy_from_user()?;
            }
            Ok(())
        })
    };
    let ret = match r {
        Ok(n) => i64::try_from(n).unwrap_or(i64::MAX),
        Err(e) => e.to_errno().into(),
    };
    *state.last.lock() = Last { ret, blocks };
    r.map(|_| ())
}

fn show(state: &State, w: &mut SeqWriter) -> core::fmt::Result {
    let last = state.last.lock();
    writeln!(w, "ret {}", last.ret)?;
    for (gfn, order) in last.blocks.iter() {
        writeln!(w, "block {gfn} {order}")?;
    }
    Ok(())
}

struct PopulateTest {
    _populate: WriteFile<State>,
    _last: ShowFile<State>,
    _dir: Dir,
}

impl kernel::Module for PopulateTest {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let state = Arc::pin_init(
            pin_init!(State {
                last <- new_mutex!(Last { ret: 0, blocks: KVec::new() }),
            }),
            GFP_KERNEL,
        )?;
        let dir = Dir::new(c_str!("rgmem_populate"))?;
        let populate = WriteFile::new(&dir, c_str!("populate"), &WRITE_FOPS, state.clone(), write)?;
        let last = ShowFile::new(&dir, c_str!("last"), &SHOW_FOPS, state, show)?;
        Ok(Self {
            _populate: populate,
            _last: last,
            _dir: dir,
        })
    }
}
