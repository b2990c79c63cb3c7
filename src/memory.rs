//! Keeping the allocator's footprint near what is actually in use.
//!
//! glibc gives threads their own malloc arenas (up to 8 per core) and keeps
//! freed memory inside them. The store runs on tokio's blocking pool, whose
//! threads come and go, so under a stream of guests each new thread could
//! start another arena and RSS crept up long after the data was freed. The
//! server limits glibc to two arenas and returns free heap pages to the
//! kernel every half minute (`malloc_trim`), so memory comes back when load
//! drops. No-ops where the allocator is not glibc's.

use std::time::Duration;

/// Threads of tokio's blocking pool (its default is 512).
pub const BLOCKING_THREADS: usize = 8;
/// Arenas glibc may create (its default is 8 × cores).
pub const ARENAS: i32 = 2;
/// How often free heap pages go back to the kernel.
pub const TRIM_EVERY: Duration = Duration::from_secs(30);

/// Call first thing in `main`.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; M_ARENA_MAX is valid.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Returns free heap pages to the kernel.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Trims every [`TRIM_EVERY`], until the task is aborted.
pub async fn trim_periodically() {
    let mut tick = tokio::time::interval(TRIM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let _ = tokio::task::spawn_blocking(trim).await;
    }
}
