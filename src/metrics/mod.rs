//! What the server counts, for Prometheus (`GET /metrics`) and for the
//! operator console (`GET /admin/metrics`, [`console`]).
//!
//! Built on `prometheus-client` (the Prometheus project's own Rust client):
//! a registry per server instance rather than a process-wide recorder, so
//! tests running several nodes in one process keep their figures apart;
//! counters are plain atomics, and the hot paths hold their counter
//! handles (no label lookup per message). Values that already live
//! elsewhere (who is online, the queue, the TURN relay's counters, the
//! process's RSS) are read at scrape time into [`Sampled`] instead of
//! being mirrored on every change.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::ConstGauge,
        histogram::Histogram,
    },
    registry::{Registry, Unit},
};

pub mod console;
pub mod driver;
pub mod process;
pub mod store;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: &'static str,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: &'static str,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    pub r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets from 100 µs to 10 s.
fn latency() -> Histogram {
    Histogram::new([
        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        5.0, 10.0,
    ])
}

/// Time-to-match buckets from 10 ms to 5 minutes.
fn waits() -> Histogram {
    Histogram::new([
        0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
    ])
}

/// Message kinds with a counter each (the relay's hot path).
#[derive(Clone, Debug)]
pub struct MessageCounters {
    pub text: Counter,
    pub file: Counter,
    pub voice: Counter,
    /// Lounge messages.
    pub room: Counter,
}

impl MessageCounters {
    pub fn of(&self, kind: &str) -> &Counter {
        match kind {
            "file" => &self.file,
            "voice" => &self.voice,
            _ => &self.text,
        }
    }

    pub fn total(&self) -> u64 {
        self.text.get() + self.file.get() + self.voice.get() + self.room.get()
    }
}

/// Every metric the server updates as things happen.
pub struct Metrics {
    registry: Registry,
    sampled: Arc<SampledCollector>,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<RouteLabels>,
    /// Sockets that completed the handshake, since start.
    pub connections: Counter,
    pub matches: Counter,
    /// How long the user who waited longer waited, per match.
    pub match_wait: Histogram,
    pub messages: MessageCounters,
    refused: Family<CodeLabel, Counter>,
    /// The same, all codes together (for the console).
    refused_all: Counter,
    pub upload_bytes: Counter,
    upload_refused: Family<CodeLabel, Counter>,
    redis_duration: Histogram,
    store_duration: HistogramFamily<OpLabel>,
    store_errors: Family<OpLabel, Counter>,
    pub reports: Counter,
    bans: Family<SourceLabel, Counter>,
    /// People in group calls on this node.
    pub call_participants: prometheus_client::metrics::gauge::Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tandem");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by method, matched route and status",
            http_requests.clone(),
        );
        let http_duration = HistogramFamily::<RouteLabels>::new_with_constructor(latency as _);
        registry.register_with_unit(
            "http_request_duration",
            "HTTP request latency by method and matched route",
            Unit::Seconds,
            http_duration.clone(),
        );
        let connections = Counter::default();
        registry.register(
            "socketio_connections",
            "Socket.IO connections accepted (handshake passed)",
            connections.clone(),
        );
        let matches = Counter::default();
        registry.register("matches", "Pairs matched", matches.clone());
        let match_wait = waits();
        registry.register_with_unit(
            "match_wait",
            "Time to match: how long the user who waited longer waited",
            Unit::Seconds,
            match_wait.clone(),
        );
        let messages_family = Family::<TypeLabel, Counter>::default();
        registry.register(
            "messages_relayed",
            "Chat messages relayed, by type (room: lounge messages)",
            messages_family.clone(),
        );
        let kind = |t| {
            messages_family
                .get_or_create(&TypeLabel { r#type: t })
                .clone()
        };
        let messages = MessageCounters {
            text: kind("text"),
            file: kind("file"),
            voice: kind("voice"),
            room: kind("room"),
        };
        let refused = Family::<CodeLabel, Counter>::default();
        registry.register(
            "events_refused",
            "Socket.IO events answered with an error, by error code",
            refused.clone(),
        );
        let upload_bytes = Counter::default();
        registry.register_with_unit(
            "upload",
            "Bytes of files accepted by POST /api/files",
            Unit::Bytes,
            upload_bytes.clone(),
        );
        let upload_refused = Family::<CodeLabel, Counter>::default();
        registry.register(
            "uploads_refused",
            "Uploads refused, by error code",
            upload_refused.clone(),
        );
        let redis_duration = latency();
        registry.register_with_unit(
            "redis_command_duration",
            "Round trip of the node's heartbeat to Redis (a pipeline of a few commands)",
            Unit::Seconds,
            redis_duration.clone(),
        );
        let store_duration = HistogramFamily::<OpLabel>::new_with_constructor(latency as _);
        registry.register_with_unit(
            "store_operation_duration",
            "Account store latency by operation",
            Unit::Seconds,
            store_duration.clone(),
        );
        let store_errors = Family::<OpLabel, Counter>::default();
        registry.register(
            "store_errors",
            "Account store operations that failed, by operation",
            store_errors.clone(),
        );
        let reports = Counter::default();
        registry.register("reports", "User reports filed", reports.clone());
        let bans = Family::<SourceLabel, Counter>::default();
        registry.register(
            "bans",
            "Bans imposed, by source (auto: the report threshold; admin: a moderator)",
            bans.clone(),
        );
        let call_participants = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "call_participants",
            "People in group calls whose media runs through this node",
            call_participants.clone(),
        );
        let sampled = Arc::new(SampledCollector::default());
        registry.register_collector(Box::new(sampled.clone()));
        Metrics {
            registry,
            sampled,
            http_requests,
            http_duration,
            connections,
            matches,
            match_wait,
            messages,
            refused,
            refused_all: Counter::default(),
            upload_bytes,
            upload_refused,
            redis_duration,
            store_duration,
            store_errors,
            reports,
            bans,
            call_participants,
        }
    }

    pub fn http(&self, method: &'static str, route: &str, status: u16, took: Duration) {
        self.http_requests
            .get_or_create(&HttpLabels {
                method,
                route: route.to_string(),
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                method,
                route: route.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    pub fn refused(&self, code: &'static str) {
        self.refused.get_or_create(&CodeLabel { code }).inc();
        self.refused_all.inc();
    }

    /// Events refused so far, all codes together.
    pub fn refused_total(&self) -> u64 {
        self.refused_all.get()
    }

    pub fn upload_refused(&self, code: &'static str) {
        self.upload_refused.get_or_create(&CodeLabel { code }).inc();
    }

    pub fn redis(&self, took: Duration) {
        self.redis_duration.observe(took.as_secs_f64());
    }

    pub fn store(&self, op: &'static str, took: Duration, ok: bool) {
        self.store_duration
            .get_or_create(&OpLabel { op })
            .observe(took.as_secs_f64());
        if !ok {
            self.store_errors.get_or_create(&OpLabel { op }).inc();
        }
    }

    pub fn ban(&self, source: &'static str) {
        self.bans.get_or_create(&SourceLabel { source }).inc();
    }

    /// The text exposition (OpenMetrics, which Prometheus reads), after
    /// taking `sample` as the scrape-time values.
    pub fn encode(&self, sample: Sampled) -> String {
        *self.sampled.0.lock().unwrap_or_else(|p| p.into_inner()) = sample;
        let mut out = String::with_capacity(16 * 1024);
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        out
    }
}

/// Values read when scraped.
#[derive(Debug, Clone, Default)]
pub struct Sampled {
    pub websocket: u64,
    pub polling: u64,
    /// Users online (the cluster's, when clustered).
    pub users_online: Option<u64>,
    pub waiting: Option<crate::matching::Waiting>,
    pub chats_active: Option<u64>,
    pub hash_queue: u64,
    pub turn: Option<crate::relay::core::Metrics>,
    /// None on a single node.
    pub redis_up: Option<bool>,
    pub process: process::ProcessStats,
}

#[derive(Debug, Default)]
struct SampledCollector(Mutex<Sampled>);

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    g.encode(encoder.encode_descriptor(name, help, unit, g.metric_type())?)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    c.encode(encoder.encode_descriptor(name, help, unit, c.metric_type())?)
}

fn labelled_counters<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    values: &[(L, u64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        name,
        help,
        unit,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for (labels, v) in values {
        ConstCounter::new(*v).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

fn labelled_gauges<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: &[(L, i64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    for (labels, v) in values {
        ConstGauge::new(*v).encode(family.encode_family(labels)?)?;
    }
    Ok(())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransportLabel {
    transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabel {
    mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

impl Collector for SampledCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        labelled_gauges(
            &mut e,
            "sockets_connected",
            "Socket.IO sockets connected to this node, by transport",
            &[
                (
                    TransportLabel {
                        transport: "websocket",
                    },
                    s.websocket as i64,
                ),
                (
                    TransportLabel {
                        transport: "polling",
                    },
                    s.polling as i64,
                ),
            ],
        )?;
        if let Some(n) = s.users_online {
            gauge(
                &mut e,
                "users_online",
                "Users online (the cluster's when clustered: the same on every node)",
                None,
                n as i64,
            )?;
        }
        if let Some(w) = &s.waiting {
            let mut by_mode: Vec<(ModeLabel, i64)> = ["any", "text", "video"]
                .iter()
                .map(|m| {
                    (
                        ModeLabel {
                            mode: m.to_string(),
                        },
                        0,
                    )
                })
                .collect();
            for (mode, n) in &w.by_mode {
                match by_mode.iter_mut().find(|(l, _)| &l.mode == mode) {
                    Some((_, v)) => *v = *n as i64,
                    None => by_mode.push((ModeLabel { mode: mode.clone() }, *n as i64)),
                }
            }
            labelled_gauges(
                &mut e,
                "queue_waiting",
                "Users waiting to be matched, by mode (the cluster's when clustered)",
                &by_mode,
            )?;
        }
        if let Some(n) = s.chats_active {
            gauge(
                &mut e,
                "chats_active",
                "1-to-1 chats open (the cluster's when clustered)",
                None,
                n as i64,
            )?;
        }
        gauge(
            &mut e,
            "password_hash_queue",
            "Password hashes waiting for a hashing thread",
            None,
            s.hash_queue as i64,
        )?;
        if let Some(t) = &s.turn {
            gauge(
                &mut e,
                "turn_allocations",
                "TURN allocations alive",
                None,
                t.allocations as i64,
            )?;
            counter(
                &mut e,
                "turn_allocations_created",
                "TURN allocations created",
                None,
                t.allocations_total,
            )?;
            let by_direction = |to_peer: u64, to_client: u64| {
                [
                    (
                        DirectionLabel {
                            direction: "to_peer",
                        },
                        to_peer,
                    ),
                    (
                        DirectionLabel {
                            direction: "to_client",
                        },
                        to_client,
                    ),
                ]
            };
            labelled_counters(
                &mut e,
                "turn_relayed",
                "Bytes relayed by TURN, by direction (counted per packet, while allocations live)",
                Some(&Unit::Bytes),
                &by_direction(t.bytes_to_peers, t.bytes_to_clients),
            )?;
            labelled_counters(
                &mut e,
                "turn_relayed_packets",
                "Packets relayed by TURN, by direction",
                None,
                &by_direction(t.packets_to_peers, t.packets_to_clients),
            )?;
            let refused = [
                ("unauthenticated", t.refused_unauthenticated),
                ("stale_nonce", t.refused_stale_nonce),
                ("quota", t.refused_quota),
                ("peer_not_allowed", t.refused_peer),
                ("bandwidth", t.dropped_bandwidth),
                ("no_permission", t.dropped_no_permission),
                ("malformed", t.dropped_malformed),
            ]
            .map(|(reason, v)| (ReasonLabel { reason }, v));
            labelled_counters(
                &mut e,
                "turn_refused",
                "TURN requests refused and packets dropped, by reason",
                None,
                &refused,
            )?;
        }
        if let Some(up) = s.redis_up {
            gauge(
                &mut e,
                "redis_up",
                "1 when the node's last heartbeat reached Redis",
                None,
                up as i64,
            )?;
        }
        let p = &s.process;
        gauge(
            &mut e,
            "process_resident_memory",
            "Resident set size",
            Some(&Unit::Bytes),
            p.rss_bytes as i64,
        )?;
        let cpu = prometheus_client::metrics::counter::ConstCounter::new(p.cpu_seconds);
        cpu.encode(e.encode_descriptor(
            "process_cpu",
            "User and system CPU time",
            Some(&Unit::Seconds),
            cpu.metric_type(),
        )?)?;
        gauge(
            &mut e,
            "process_open_fds",
            "Open file descriptors",
            None,
            p.open_fds as i64,
        )?;
        gauge(
            &mut e,
            "process_max_fds",
            "The open-file limit",
            None,
            p.max_fds as i64,
        )?;
        gauge(&mut e, "process_threads", "Threads", None, p.threads as i64)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_samples_appear_in_the_exposition() {
        let m = Metrics::new();
        m.messages.text.inc();
        m.messages.of("voice").inc();
        m.refused("spam");
        m.http("GET", "/api/users/{id}", 200, Duration::from_millis(3));
        m.matches.inc();
        m.match_wait.observe(0.4);
        let out = m.encode(Sampled {
            websocket: 3,
            users_online: Some(7),
            waiting: Some(crate::matching::Waiting::count([Some(
                crate::matching::Mode::Video,
            )])),
            redis_up: Some(true),
            ..Default::default()
        });
        for line in [
            "tandem_messages_relayed_total{type=\"text\"} 1",
            "tandem_messages_relayed_total{type=\"voice\"} 1",
            "tandem_events_refused_total{code=\"spam\"} 1",
            "tandem_http_requests_total{method=\"GET\",route=\"/api/users/{id}\",status=\"200\"} 1",
            "tandem_sockets_connected{transport=\"websocket\"} 3",
            "tandem_users_online 7",
            "tandem_queue_waiting{mode=\"video\"} 1",
            "tandem_queue_waiting{mode=\"text\"} 0",
            "tandem_redis_up 1",
            "tandem_match_wait_seconds_count 1",
            "# EOF",
        ] {
            assert!(out.contains(line), "{line} missing from\n{out}");
        }
        assert_eq!(m.messages.total(), 2);
        assert_eq!(m.refused_total(), 1);
    }
}
