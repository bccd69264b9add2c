//! A global allocator that counts the bytes in use and their peak, and refuses what would take
//! them past a limit (it returns null, as `malloc` does when memory runs out): the memory
//! checks of tests that run in a child process of their own, where nothing else allocates.
//! Only Rust's allocations are counted; those C libraries make with `malloc` are not.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// Install with `#[global_allocator] static ALLOC: Counting = Counting;`.
pub struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Refuses from now on any allocation that would take the bytes in use past `bytes`.
pub fn limit(bytes: usize) {
    LIMIT.store(bytes, Relaxed);
}

/// The most bytes in use at once since the last [`reset_peak`].
pub fn peak() -> usize {
    PEAK.load(Relaxed)
}

/// Starts the peak afresh, from the bytes in use now.
pub fn reset_peak() {
    PEAK.store(LIVE.load(Relaxed), Relaxed);
}

/// Counts `n` more bytes in use, unless that passes the limit.
fn take(n: usize) -> bool {
    let live = LIVE.fetch_add(n, Relaxed).saturating_add(n);
    if live > LIMIT.load(Relaxed) {
        LIVE.fetch_sub(n, Relaxed);
        return false;
    }
    PEAK.fetch_max(live, Relaxed);
    true
}

fn give(n: usize) {
    LIVE.fetch_sub(n, Relaxed);
}

/// An allocation of `layout` by `alloc`, counted, or refused past the limit.
fn counted(layout: Layout, alloc: impl FnOnce() -> *mut u8) -> *mut u8 {
    if !take(layout.size()) {
        return std::ptr::null_mut();
    }
    let p = alloc();
    if p.is_null() {
        give(layout.size());
    }
    p
}

// SAFETY: every call is passed on to `System` unchanged, or refused with null before it is;
// the counts are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `GlobalAlloc::alloc`, whose contract the caller keeps.
        counted(layout, || unsafe { System.alloc(layout) })
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `GlobalAlloc::alloc_zeroed`, whose contract the caller keeps.
        counted(layout, || unsafe { System.alloc_zeroed(layout) })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) };
        give(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = layout.size();
        if new_size > old && !take(new_size - old) {
            return std::ptr::null_mut();
        }
        // SAFETY: as `GlobalAlloc::realloc`, whose contract the caller keeps.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() {
            if new_size > old {
                give(new_size - old);
            }
        } else if new_size < old {
            give(old - new_size);
        }
        p
    }
}
