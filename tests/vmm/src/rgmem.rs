// SPDX-License-Identifier: GPL-2.0

//! What rgmem shows in debugfs: its counters, and the runs of each file's pages.

use std::collections::BTreeMap;
use std::fs;

const DEBUGFS: &str = "/sys/kernel/debug/rgmem";

/// The counters this story reads.
pub const COUNTERS: [&str; 7] = [
    "files_created",
    "conversions",
    "get_pfn",
    "punch_holes",
    "splits",
    "merges",
    "folios_allocated",
];

/// rgmem's counters in [`COUNTERS`], each a file of its debugfs directory; `None` if rgmem is
/// not loaded.
pub fn counters() -> Option<BTreeMap<&'static str, i64>> {
    COUNTERS
        .iter()
        .map(|&name| {
            let v = fs::read_to_string(format!("{DEBUGFS}/{name}")).ok()?;
            Some((name, v.trim().parse().ok()?))
        })
        .collect()
}

/// The shareability runs of file `ino`, as "first-last state" strings.
pub fn runs(ino: u64) -> Vec<String> {
    let Ok(text) = fs::read_to_string(format!("{DEBUGFS}/shareability")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 4 && w[0].parse() == Ok(ino)).then(|| format!("{}-{} {}", w[1], w[2], w[3]))
        })
        .collect()
}
