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

/// Gives a map's spare room back once it holds less than a quarter of
/// what it has room for: a map keeps the capacity of its busiest moment
/// (a burst of users leaves tables sized for them after they left). It
/// shrinks to twice its length, so shrinking is amortized over the removals
/// that led there, and small maps are left alone.
pub fn shrink_sparse<K, V, S>(map: &mut std::collections::HashMap<K, V, S>)
where
    K: Eq + std::hash::Hash,
    S: std::hash::BuildHasher,
{
    const SMALL: usize = 64;
    let cap = map.capacity();
    if cap > SMALL && map.len() * 4 < cap {
        map.shrink_to((map.len() * 2).max(SMALL / 2));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::shrink_sparse;

    #[test]
    fn a_map_gives_back_the_room_of_its_busiest_moment() {
        let mut map: HashMap<u32, u64> = (0..100_000).map(|i| (i, 0)).collect();
        let busiest = map.capacity();
        for i in 0..100_000 {
            map.remove(&i);
            shrink_sparse(&mut map);
            assert!(map.capacity() <= busiest);
            if map.len() > 64 {
                assert!(
                    map.capacity() <= 8 * map.len(),
                    "{} for {}",
                    map.capacity(),
                    map.len()
                );
            }
        }
        assert!(map.capacity() <= 64, "{}", map.capacity());
        // What stays is all there.
        let mut big: HashMap<u32, u64> = (0..10_000).map(|i| (i, u64::from(i))).collect();
        big.retain(|k, _| k % 100 == 0);
        shrink_sparse(&mut big);
        assert!(big.capacity() < 1_000);
        assert!((0..10_000).step_by(100).all(|k| big[&k] == u64::from(k)));
    }
}
