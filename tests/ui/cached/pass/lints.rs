//! The expansion is clean under `deny(warnings)` and `missing_docs`, for public items too.
#![deny(warnings, missing_docs, unused_qualifications, unreachable_pub)]

use joblet::cached;

/// Public, documented: its companion must be documented too.
#[cached(dir = "target/ui-lints", ignore = [verbose])]
pub fn public(x: u64, mut scratch: Vec<u8>, verbose: bool) -> u64 {
    scratch.push(1);
    if verbose {
        println!("{x}");
    }
    x + scratch.len() as u64
}

fn recent(entry: &joblet::EntryInfo) -> bool {
    entry.hits < 1000
}

#[cached(dir = "target/ui-lints", expires = "30min", validate = recent)]
fn private((a, b): (u8, u8)) -> Result<u16, String> {
    Ok(u16::from(a) + u16::from(b))
}

#[cached(dir = "target/ui-lints")]
unsafe fn unsafe_fn(p: usize) -> usize {
    p
}

fn main() {
    let _ = public(1, vec![], false);
    let _ = private((1, 2));
    // SAFETY: nothing unsafe happens.
    let _ = unsafe { unsafe_fn(1) };
}
