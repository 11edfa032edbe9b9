//! Which shard of per-thread data the current thread uses.
//!
//! Data that every request touches (counters, the headers and bytes of a
//! hot file) costs a cache-line transfer per write when threads share it,
//! and reference counts are writes. Holding one copy per shard, and having
//! each thread use its own, keeps those lines on one core. Threads take
//! shards in turn; past [`SHARDS`] threads, shards are shared.

use std::sync::atomic::{AtomicUsize, Ordering};

/// How many shards per-thread data has at most.
pub(crate) const SHARDS: usize = 16;

/// This thread's shard, below [`SHARDS`].
pub(crate) fn index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    SHARD.with(|s| *s)
}

/// How many shards data that is copied per thread should have: one per CPU,
/// at most [`SHARDS`]. (A thread uses shard `index() % copies()`.)
#[cfg_attr(not(feature = "http"), allow(dead_code))]
pub(crate) fn copies() -> usize {
    static COPIES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *COPIES.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(SHARDS)
    })
}
