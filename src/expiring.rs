//! A map whose entries expire a fixed time after they were last written:
//! expired entries are ignored at once, and swept when the map has doubled
//! since the last sweep or a TTL has passed since it, so memory follows the
//! keys written lately, not every key ever seen. Time is passed in, so the
//! owners' tests run on simulated time.

use std::time::Duration;

use rustc_hash::FxHashMap;

use tokio::time::Instant;

/// The smallest size at which the map sweeps.
pub const SWEEP_MIN: usize = 1024;

pub struct Expiring<V> {
    /// Keyed by ids the server made (users, rooms): Fx hashing.
    map: FxHashMap<String, (V, Instant)>,
    ttl: Duration,
    sweep_at: usize,
    swept: Option<Instant>,
}

impl<V> Expiring<V> {
    pub fn new(ttl: Duration) -> Self {
        Expiring {
            map: FxHashMap::default(),
            ttl,
            sweep_at: SWEEP_MIN,
            swept: None,
        }
    }

    fn fresh(&self, at: Instant, now: Instant) -> bool {
        now.duration_since(at) < self.ttl
    }

    pub fn get(&self, key: &str, now: Instant) -> Option<&V> {
        self.map
            .get(key)
            .filter(|(_, at)| self.fresh(*at, now))
            .map(|(v, _)| v)
    }

    fn sweep_if_due(&mut self, key: &str, now: Instant) {
        let swept = *self.swept.get_or_insert(now);
        let grown = self.map.len() >= self.sweep_at && !self.map.contains_key(key);
        if grown || !self.fresh(swept, now) {
            let ttl = self.ttl;
            self.map.retain(|_, (_, at)| now.duration_since(*at) < ttl);
            crate::memory::shrink_sparse(&mut self.map);
            self.sweep_at = (self.map.len() * 2).max(SWEEP_MIN);
            self.swept = Some(now);
        }
    }

    pub fn insert(&mut self, key: &str, value: V, now: Instant) {
        self.sweep_if_due(key, now);
        self.map.insert(key.to_string(), (value, now));
    }

    /// The entry for `key`, stamped `now`: an expired one starts over from
    /// the default.
    pub fn touch(&mut self, key: &str, now: Instant) -> &mut V
    where
        V: Default,
    {
        self.sweep_if_due(key, now);
        let ttl = self.ttl;
        // The key is copied only for a new entry (most touches find theirs).
        if !self.map.contains_key(key) {
            self.map.insert(key.to_string(), (V::default(), now));
        }
        let Some(e) = self.map.get_mut(key) else {
            unreachable!("inserted above")
        };
        if now.duration_since(e.1) >= ttl {
            e.0 = V::default();
        }
        e.1 = now;
        &mut e.0
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        let v = self.map.remove(key).map(|(v, _)| v);
        crate::memory::shrink_sparse(&mut self.map);
        v
    }

    /// Entries held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
