// SPDX-License-Identifier: GPL-2.0

//! A QEMU TCG plugin for `scripts/profile`: for each translation block address, the guest
//! instructions and blocks executed and the times it was translated, written at exit as
//! `ADDRESS INSTRUCTIONS BLOCKS TRANSLATIONS` lines (hexadecimal address) to the file named by
//! the plugin argument `out=`.
//!
//! Counting is done by inline additions that QEMU emits into the translated code, so it costs
//! little; with several vCPUs the additions race, and the counts are approximate.

use qemu_plugin_sys::{
    qemu_info_t, qemu_plugin_id_t, qemu_plugin_op, qemu_plugin_register_atexit_cb,
    qemu_plugin_register_vcpu_tb_exec_inline, qemu_plugin_register_vcpu_tb_trans_cb,
    qemu_plugin_tb, qemu_plugin_tb_n_insns, qemu_plugin_tb_vaddr,
};
use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::io::Write;
use std::sync::Mutex;

/// The plugin API version this plugin is written against.
#[no_mangle]
pub static qemu_plugin_version: c_int = 0;

/// The counters of one translation of a block, which QEMU's generated code adds to.
struct Counts {
    insns: u64,
    blocks: u64,
}

/// Every translation so far: the block's address and its counters, which live until exit.
static TRANSLATIONS: Mutex<Vec<(u64, usize)>> = Mutex::new(Vec::new());
/// Where the profile goes.
static OUT: Mutex<String> = Mutex::new(String::new());

unsafe extern "C" fn on_translate(_id: qemu_plugin_id_t, tb: *mut qemu_plugin_tb) {
    // SAFETY: QEMU passes a valid block for the duration of the callback.
    let (vaddr, n) = unsafe { (qemu_plugin_tb_vaddr(tb), qemu_plugin_tb_n_insns(tb) as u64) };
    // Leaked: the translated code may run, and add to it, until QEMU exits.
    let counts = Box::into_raw(Box::new(Counts {
        insns: 0,
        blocks: 0,
    }));
    // SAFETY: `counts` points to live, leaked memory; the ops add to its two fields.
    unsafe {
        let add = qemu_plugin_op::QEMU_PLUGIN_INLINE_ADD_U64;
        qemu_plugin_register_vcpu_tb_exec_inline(tb, add, (&raw mut (*counts).insns).cast(), n);
        qemu_plugin_register_vcpu_tb_exec_inline(tb, add, (&raw mut (*counts).blocks).cast(), 1);
    }
    if let Ok(mut t) = TRANSLATIONS.lock() {
        t.push((vaddr, counts as usize));
    }
}

unsafe extern "C" fn on_exit(_id: qemu_plugin_id_t, _data: *mut c_void) {
    let mut by_addr: HashMap<u64, (u64, u64, u64)> = HashMap::new();
    let Ok(translations) = TRANSLATIONS.lock() else {
        return;
    };
    for &(vaddr, counts) in translations.iter() {
        // SAFETY: Leaked in `on_translate`; no vCPU runs any more.
        let c = unsafe { &*(counts as *const Counts) };
        let e = by_addr.entry(vaddr).or_default();
        e.0 += c.insns;
        e.1 += c.blocks;
        e.2 += 1;
    }
    let path = OUT.lock().map(|p| p.clone()).unwrap_or_default();
    let Ok(mut f) = std::fs::File::create(&path) else {
        eprintln!("tcg_profile: cannot create {path}");
        return;
    };
    let mut rows: Vec<_> = by_addr.into_iter().collect();
    rows.sort_unstable();
    for (vaddr, (insns, blocks, translated)) in rows {
        if writeln!(f, "{vaddr:x} {insns} {blocks} {translated}").is_err() {
            eprintln!("tcg_profile: cannot write {path}");
            return;
        }
    }
}

/// Called by QEMU when it loads the plugin.
///
/// # Safety
///
/// QEMU passes `argc` valid C strings in `argv`.
#[no_mangle]
pub unsafe extern "C" fn qemu_plugin_install(
    id: qemu_plugin_id_t,
    _info: *const qemu_info_t,
    argc: c_int,
    argv: *mut *mut c_char,
) -> c_int {
    let mut out = None;
    for i in 0..usize::try_from(argc).unwrap_or(0) {
        // SAFETY: Per the function's contract.
        let arg = unsafe { CStr::from_ptr(*argv.add(i)) }.to_string_lossy();
        if let Some(path) = arg.strip_prefix("out=") {
            out = Some(path.to_owned());
        }
    }
    let Some(out) = out else {
        eprintln!("tcg_profile: needs out=FILE");
        return -1;
    };
    if let Ok(mut o) = OUT.lock() {
        *o = out;
    }
    // SAFETY: `id` is ours, and the callbacks have the signatures QEMU expects.
    unsafe {
        qemu_plugin_register_vcpu_tb_trans_cb(id, Some(on_translate));
        qemu_plugin_register_atexit_cb(id, Some(on_exit), std::ptr::null_mut());
    }
    0
}
