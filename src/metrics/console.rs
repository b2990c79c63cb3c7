//! The operator console's figures as plain rules: each node folds a sample
//! of its counters into [`NodeStats`] every second (rates over the last
//! few seconds, a 24-hour ring of hourly buckets, the recent waits for a
//! match), publishes the result as a [`NodeSnapshot`], and
//! `GET /admin/metrics` merges the snapshots of every live node
//! ([`merge`]): one node's view and the cluster's are the same code.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// The window rates are computed over.
const RATE_WINDOW_MS: i64 = 5_000;
/// The window the time-to-match quantiles cover.
const WAIT_WINDOW_MS: i64 = 300_000;
const WAITS_KEPT: usize = 10_000;
const HOUR_MS: i64 = 3_600_000;
const HOURS_KEPT: usize = 24;

/// What a node samples each second.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tick {
    pub now_ms: i64,
    pub connections: u64,
    pub messages: u64,
    pub matches: u64,
    pub reports: u64,
    pub refused: u64,
    pub turn_bytes: u64,
    pub sockets: u64,
    /// Users online and chats open, as this node sees them (the cluster's
    /// when clustered).
    pub users_online: u64,
    pub chats_active: u64,
}

/// One hour of a node's activity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HourBucket {
    /// The hour's start, Unix seconds.
    pub timestamp: i64,
    pub total_messages: u64,
    pub matches: u64,
    pub connections: u64,
    pub peak_users: u64,
    pub active_rooms: u64,
}

/// What a node publishes about itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSnapshot {
    pub node: String,
    pub at_ms: i64,
    pub uptime_seconds: u64,
    pub sockets: u64,
    pub total_connections: u64,
    pub total_messages: u64,
    pub total_matches: u64,
    pub total_reports: u64,
    pub total_refused: u64,
    pub peak_users: u64,
    pub messages_per_second: f64,
    pub matches_per_minute: f64,
    pub turn_bytes_per_second: f64,
    /// Time to match over the last 5 minutes (None: no match).
    pub match_wait_p50_ms: Option<f64>,
    pub match_wait_p99_ms: Option<f64>,
    pub matches_in_window: u64,
    pub rss_bytes: u64,
    pub redis_up: Option<bool>,
    pub hourly: Vec<HourBucket>,
}

#[derive(Debug, Default)]
pub struct NodeStats {
    samples: VecDeque<Tick>,
    waits: VecDeque<(i64, f64)>,
    hours: VecDeque<HourBucket>,
    last: Option<Tick>,
    peak_users: u64,
}

impl NodeStats {
    /// Folds in this second's sample.
    pub fn tick(&mut self, t: Tick) {
        self.peak_users = self.peak_users.max(t.users_online);
        let hour = t.now_ms.div_euclid(HOUR_MS) * HOUR_MS / 1000;
        if self.hours.back().is_none_or(|h| h.timestamp != hour) {
            self.hours.push_back(HourBucket {
                timestamp: hour,
                ..Default::default()
            });
            while self.hours.len() > HOURS_KEPT {
                self.hours.pop_front();
            }
        }
        let prev = self.last.unwrap_or(t);
        if let Some(h) = self.hours.back_mut() {
            h.total_messages += t.messages.saturating_sub(prev.messages);
            h.matches += t.matches.saturating_sub(prev.matches);
            h.connections += t.connections.saturating_sub(prev.connections);
            h.peak_users = h.peak_users.max(t.users_online);
            h.active_rooms = h.active_rooms.max(t.chats_active);
        }
        self.last = Some(t);
        self.samples.push_back(t);
        while self
            .samples
            .front()
            .is_some_and(|s| t.now_ms - s.now_ms > RATE_WINDOW_MS)
        {
            self.samples.pop_front();
        }
        self.forget_waits(t.now_ms);
    }

    /// A match was made after someone waited `wait_ms`.
    pub fn record_wait(&mut self, now_ms: i64, wait_ms: f64) {
        self.waits.push_back((now_ms, wait_ms));
        if self.waits.len() > WAITS_KEPT {
            self.waits.pop_front();
        }
    }

    fn forget_waits(&mut self, now_ms: i64) {
        while self
            .waits
            .front()
            .is_some_and(|(at, _)| now_ms - at > WAIT_WINDOW_MS)
        {
            self.waits.pop_front();
        }
    }

    /// Per second over the window, for one counter.
    fn rate(&self, f: impl Fn(&Tick) -> u64) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some(a), Some(b)) if b.now_ms > a.now_ms => {
                f(b).saturating_sub(f(a)) as f64 * 1000.0 / (b.now_ms - a.now_ms) as f64
            }
            _ => 0.0,
        }
    }

    pub fn snapshot(
        &self,
        node: &str,
        uptime_seconds: u64,
        rss_bytes: u64,
        redis_up: Option<bool>,
    ) -> NodeSnapshot {
        let t = self.last.unwrap_or_default();
        let mut waits: Vec<f64> = self.waits.iter().map(|(_, w)| *w).collect();
        waits.sort_by(f64::total_cmp);
        NodeSnapshot {
            node: node.to_string(),
            at_ms: t.now_ms,
            uptime_seconds,
            sockets: t.sockets,
            total_connections: t.connections,
            total_messages: t.messages,
            total_matches: t.matches,
            total_reports: t.reports,
            total_refused: t.refused,
            peak_users: self.peak_users,
            messages_per_second: self.rate(|s| s.messages),
            matches_per_minute: self.rate(|s| s.matches) * 60.0,
            turn_bytes_per_second: self.rate(|s| s.turn_bytes),
            match_wait_p50_ms: quantile(&waits, 0.5),
            match_wait_p99_ms: quantile(&waits, 0.99),
            matches_in_window: waits.len() as u64,
            rss_bytes,
            redis_up,
            hourly: self.hours.iter().copied().collect(),
        }
    }
}

/// Nearest-rank quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// The cluster's totals from its nodes' snapshots.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Merged {
    pub total_connections: u64,
    pub total_messages: u64,
    pub total_matches: u64,
    pub total_reports: u64,
    pub total_refused: u64,
    pub peak_concurrent_users: u64,
    pub messages_per_second: f64,
    pub matches_per_minute: f64,
    pub turn_bytes_per_second: f64,
    /// p50: the nodes' p50s weighted by their matches; p99: the highest.
    pub match_wait: MatchWait,
    pub hourly_stats: Vec<HourBucket>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchWait {
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

pub fn merge(nodes: &[NodeSnapshot]) -> Merged {
    let mut m = Merged::default();
    let mut hours: BTreeMap<i64, HourBucket> = BTreeMap::new();
    let (mut weighted, mut weight) = (0.0, 0u64);
    for n in nodes {
        m.total_connections += n.total_connections;
        m.total_messages += n.total_messages;
        m.total_matches += n.total_matches;
        m.total_reports += n.total_reports;
        m.total_refused += n.total_refused;
        // Every node samples the cluster's users online: the highest is the peak.
        m.peak_concurrent_users = m.peak_concurrent_users.max(n.peak_users);
        m.messages_per_second += n.messages_per_second;
        m.matches_per_minute += n.matches_per_minute;
        m.turn_bytes_per_second += n.turn_bytes_per_second;
        if let Some(p50) = n.match_wait_p50_ms {
            weighted += p50 * n.matches_in_window as f64;
            weight += n.matches_in_window;
        }
        if let Some(p99) = n.match_wait_p99_ms {
            m.match_wait.p99_ms = Some(m.match_wait.p99_ms.map_or(p99, |x: f64| x.max(p99)));
        }
        for h in &n.hourly {
            let e = hours.entry(h.timestamp).or_insert(HourBucket {
                timestamp: h.timestamp,
                ..Default::default()
            });
            e.total_messages += h.total_messages;
            e.matches += h.matches;
            e.connections += h.connections;
            e.peak_users = e.peak_users.max(h.peak_users);
            e.active_rooms = e.active_rooms.max(h.active_rooms);
        }
    }
    if weight > 0 {
        m.match_wait.p50_ms = Some(weighted / weight as f64);
    }
    let n = hours.len();
    m.hourly_stats = hours
        .into_values()
        .skip(n.saturating_sub(HOURS_KEPT))
        .collect();
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(s: i64, messages: u64, users: u64) -> Tick {
        Tick {
            now_ms: s * 1000,
            messages,
            users_online: users,
            ..Default::default()
        }
    }

    #[test]
    fn rates_come_from_the_last_seconds_and_peaks_stay() {
        let mut st = NodeStats::default();
        for s in 0..10 {
            st.tick(tick(1_000_000 + s, s as u64 * 100, 5 + s as u64 % 3));
        }
        let snap = st.snapshot("n", 10, 0, None);
        assert!((snap.messages_per_second - 100.0).abs() < 1e-9, "{snap:?}");
        assert_eq!(snap.peak_users, 7);
        // Idle afterwards: the rate falls to zero, the peak and totals stay.
        for s in 10..20 {
            st.tick(tick(1_000_000 + s, 900, 1));
        }
        let snap = st.snapshot("n", 20, 0, None);
        assert_eq!(snap.messages_per_second, 0.0);
        assert_eq!((snap.peak_users, snap.total_messages), (7, 900));
    }

    #[test]
    fn hourly_buckets_roll_and_keep_a_day() {
        let mut st = NodeStats::default();
        let h = 3600;
        let mut messages = 0;
        for hour in 0..30 {
            messages += 10;
            st.tick(tick(hour * h + 5, messages, hour as u64));
            st.tick(tick(hour * h + 6, messages + 1, 0));
            messages += 1;
        }
        let snap = st.snapshot("n", 0, 0, None);
        assert_eq!(snap.hourly.len(), 24);
        assert_eq!(snap.hourly[0].timestamp, 6 * h);
        assert_eq!(snap.hourly[23].peak_users, 29);
        // Each hour: the 10 before its first sample count in it, and 1 more.
        assert!(
            snap.hourly.iter().all(|b| b.total_messages == 11),
            "{:?}",
            snap.hourly
        );
    }

    #[test]
    fn match_waits_give_quantiles_over_five_minutes() {
        let mut st = NodeStats::default();
        for i in 1..=100 {
            st.record_wait(0, i as f64);
        }
        st.tick(tick(1, 0, 0));
        let snap = st.snapshot("n", 0, 0, None);
        assert_eq!(
            (snap.match_wait_p50_ms, snap.match_wait_p99_ms),
            (Some(50.0), Some(99.0))
        );
        st.tick(tick(301, 0, 0));
        assert_eq!(st.snapshot("n", 0, 0, None).match_wait_p50_ms, None);
    }

    #[test]
    fn the_cluster_sums_counts_and_takes_the_highest_peak() {
        let a = NodeSnapshot {
            node: "a".into(),
            total_messages: 10,
            peak_users: 8,
            messages_per_second: 2.0,
            match_wait_p50_ms: Some(100.0),
            match_wait_p99_ms: Some(900.0),
            matches_in_window: 3,
            hourly: vec![HourBucket {
                timestamp: 0,
                total_messages: 10,
                peak_users: 8,
                ..Default::default()
            }],
            ..Default::default()
        };
        let b = NodeSnapshot {
            node: "b".into(),
            total_messages: 5,
            peak_users: 9,
            messages_per_second: 1.5,
            match_wait_p50_ms: Some(200.0),
            match_wait_p99_ms: Some(300.0),
            matches_in_window: 1,
            hourly: vec![
                HourBucket {
                    timestamp: 0,
                    total_messages: 1,
                    peak_users: 9,
                    ..Default::default()
                },
                HourBucket {
                    timestamp: 3600,
                    total_messages: 4,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let m = merge(&[a, b]);
        assert_eq!((m.total_messages, m.peak_concurrent_users), (15, 9));
        assert_eq!(m.messages_per_second, 3.5);
        assert_eq!(m.match_wait.p50_ms, Some(125.0));
        assert_eq!(m.match_wait.p99_ms, Some(900.0));
        assert_eq!(m.hourly_stats.len(), 2);
        assert_eq!(
            (
                m.hourly_stats[0].total_messages,
                m.hourly_stats[0].peak_users
            ),
            (11, 9)
        );
    }
}
