//! Keeping the allocator's footprint near what is actually in use.
//!
//! The server binary allocates with jemalloc (`src/main.rs`), configured
//! by [`JEMALLOC_CONF`]: two arenas (the default is 4 × cores, each holding
//! freed memory of its own), and freed pages handed back to the kernel
//! after a second by jemalloc's background thread. glibc's malloc, with
//! two arenas and a `malloc_trim` every 30 s, still grew about 0.4 MB a
//! minute under guest churn with a flat live heap (fragmentation), and
//! kept it after the load stopped (BENCHMARKS.md, soak).

/// Threads of tokio's blocking pool (its default is 512).
pub const BLOCKING_THREADS: usize = 8;

/// jemalloc's options, NUL-terminated (`_rjem_malloc_conf`).
pub const JEMALLOC_CONF: &[u8] =
    b"background_thread:true,narenas:2,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

/// jemalloc's view of the heap: bytes the program has allocated, and bytes
/// of physical memory jemalloc holds for them (its metadata and pages not
/// yet returned included). None when another allocator serves the process
/// (the test binaries).
pub fn heap() -> Option<(usize, usize)> {
    use tikv_jemalloc_ctl::{epoch, stats};
    epoch::advance().ok()?;
    let allocated = stats::allocated::read().ok()?;
    let resident = stats::resident::read().ok()?;
    (resident > 0).then_some((allocated, resident))
}
