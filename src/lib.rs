//! Tandem: a backend for browser stranger-chat and calls.
//!
//! The binary parses [`Config`], sets up tracing, binds a listener and calls
//! [`run`]; tests do the same on `127.0.0.1:0`.

use std::{
    future::Future,
    ops::Deref,
    sync::{Arc, atomic::AtomicUsize},
    time::Instant,
};

use tokio::{net::TcpListener, sync::Notify};

pub mod auth;
pub mod calls;
pub mod chat;
pub mod cluster;
pub mod config;
pub mod error;
pub mod expiring;
pub mod files;
pub mod http;
pub mod json;
pub mod lounges;
pub mod matching;
pub mod memory;
pub mod metrics;
pub mod net;
pub mod presence;
pub mod protocol;
pub mod ratelimit;
pub mod realtime;
pub mod relay;
pub mod safety;
pub mod sfu;
pub mod shards;
pub mod sio;
pub mod store;
pub mod telemetry;

pub use config::Config;

use crate::{
    auth::JwtKeys,
    chat::ChatRooms,
    files::FileService,
    matching::Matcher,
    presence::Presence,
    ratelimit::{RateLimiter, TokenBuckets},
    store::DynUserStore,
};

/// Everything handlers share; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// What the server shares, one part per domain.
pub struct Shared {
    pub config: Config,
    pub accounts: Accounts,
    pub call: CallLoop,
    pub files: FileService,
    pub turn: relay::TurnService,
    /// Bans and who is let in.
    pub safety: safety::Safety,
    /// HTTP rate limits (per IP and route group).
    pub limiter: Arc<dyn RateLimiter>,
    pub node: Node,
    /// Prometheus metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// Public rooms.
    pub lounges: realtime::lounges::Lounges,
    /// The API descriptions, set when the router is built.
    pub docs: std::sync::OnceLock<http::openapi::Docs>,
    /// Group calls and their media server.
    pub group_calls: realtime::group_calls::GroupCalls,
    /// The operator console's figures for this node.
    pub console: std::sync::Mutex<metrics::console::NodeStats>,
}

/// Accounts and sessions: the store, token keys, last-seen batching.
pub struct Accounts {
    pub store: DynUserStore,
    pub jwt: JwtKeys,
    /// Last-seen times waiting for the store.
    pub last_seen: store::last_seen::LastSeen,
}

/// The call loop: who is online, the queue, the chats and their timers.
/// Each part is a trait object so a cluster can hold it in Redis.
pub struct CallLoop {
    pub presence: Arc<dyn Presence>,
    pub matcher: Arc<dyn Matcher>,
    pub rooms: Arc<dyn ChatRooms>,
    /// Orders each chat's deliveries against its close.
    pub room_order: chat::RoomOrder,
    /// Per-user Socket.IO event budget.
    pub events: TokenBuckets,
    pub typing: realtime::events::Typing,
}

/// This process: its identity, its sockets, and its link to the cluster.
pub struct Node {
    /// Identifies this process in stats and in a cluster.
    pub id: String,
    pub started_at: Instant,
    /// Sockets connected to this process.
    pub local_sockets: AtomicUsize,
    /// Set when REDIS_URL is: the client for the Socket.IO adapter.
    pub redis: Option<redis::Client>,
    pub cluster: Option<cluster::ClusterServices>,
    /// Last heartbeat's view of Redis.
    pub redis_up: std::sync::atomic::AtomicBool,
    /// Counts this node's sockets by transport (WebSocket, polling); set
    /// once Socket.IO is up.
    pub census: std::sync::OnceLock<Box<dyn Fn() -> Census + Send + Sync>>,
}

/// This node's sockets by transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct Census {
    pub websocket: u64,
    pub polling: u64,
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The backends `AppState::build` picks: single node, or Redis.
type Backends = (
    Option<redis::Client>,
    Option<cluster::ClusterServices>,
    Arc<dyn Presence>,
    Arc<dyn RateLimiter>,
    Arc<dyn Matcher>,
    Arc<dyn ChatRooms>,
);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Store(#[from] store::StoreError),
    #[error("JWT secret: {0}")]
    Secret(String),
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Redis(String),
    #[error("{0}")]
    Config(String),
}

impl AppState {
    /// Opens the store and builds the single-node services the config asks for.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let secret = persisted_secret(&config, &config.jwt_secret, "jwt_secret", "JWT_SECRET")?;
        let turn_secret = match config.turn_mode {
            config::TurnMode::Internal => {
                persisted_secret(&config, &config.turn_secret, "turn_secret", "TURN_SECRET")?
            }
            _ => config.turn_secret.clone().unwrap_or_default().into_bytes(),
        };
        let turn = relay::TurnService::start(&config, turn_secret).await?;
        let metrics = Arc::new(metrics::Metrics::new());
        let store =
            metrics::store::MeteredStore::wrap(store::open(&config).await?, metrics.clone());
        let jwt = JwtKeys::new(&secret, config.jwt_expires_in.0);
        let files = FileService::new(&config.upload_dir).map_err(|e| {
            StartupError::Io(std::io::Error::new(
                e.kind(),
                format!("UPLOAD_DIR {}: {e}", config.upload_dir.display()),
            ))
        })?;
        let events = TokenBuckets::new(
            config.socket_event_limit,
            config
                .socket_event_burst
                .unwrap_or(config.socket_event_limit),
        );
        let node_id = format!("{}-{}-{}", hostname(), config.port, std::process::id());
        let (redis, cluster, presence, limiter, matcher, rooms): Backends = match &config.redis_url
        {
            None => (
                None,
                None,
                Arc::new(presence::MemoryPresence::default()),
                Arc::new(ratelimit::MemoryRateLimiter::default()),
                Arc::new(matching::LocalMatcher::new(config.match_fallback.0)),
                Arc::new(chat::MemoryRooms::default()),
            ),
            Some(url) => {
                let (client, conn) = cluster::connect(url).await.map_err(StartupError::Redis)?;
                let presence = Arc::new(cluster::presence::RedisPresence::new(
                    conn.clone(),
                    node_id.clone(),
                ));
                let rooms = Arc::new(cluster::rooms::RedisRooms::new(
                    client.clone(),
                    conn.clone(),
                ));
                (
                    Some(client.clone()),
                    Some(cluster::ClusterServices {
                        conn: conn.clone(),
                        presence: presence.clone(),
                        rooms: rooms.clone(),
                    }),
                    presence,
                    Arc::new(cluster::ratelimit::RedisRateLimiter::new(conn.clone())),
                    Arc::new(
                        cluster::matcher::RedisMatcher::start(
                            client.clone(),
                            conn.clone(),
                            node_id.clone(),
                            config.match_fallback.0,
                        )
                        .await
                        .map_err(|e| StartupError::Redis(format!("REDIS_URL: {e}")))?,
                    ),
                    rooms,
                )
            }
        };
        let recent: Arc<dyn safety::recent::RecentChats> = match &cluster {
            Some(c) => Arc::new(cluster::recent::RedisRecent::new(c.conn.clone())),
            None => Arc::new(safety::recent::MemoryRecent::default()),
        };
        let safety = safety::Safety::new(
            &secret,
            safety::BanPolicy {
                base: config.ban_duration.0,
                max: config.ban_max.0,
            },
            safety::ReportPolicy {
                threshold: config.report_threshold,
                window: config.report_window.0,
                retention: config.report_retention.0,
            },
            recent,
            safety::filter::Filters {
                pii: config.filter_pii,
                pii_links: config.filter_pii_links,
                profanity: config.filter_profanity,
            },
            config.spam_links_per_minute,
            metrics.clone(),
        );
        let sequencer: Option<Arc<dyn lounges::bus::Sequencer>> = cluster
            .as_ref()
            .map(|c| Arc::new(cluster::lounges::RedisSequencer(c.conn.clone())) as _);
        let lounges =
            realtime::lounges::Lounges::new(&config, sequencer).map_err(StartupError::Config)?;
        if config.filter_profanity != safety::filter::FilterMode::Off {
            safety::filter::warm_up();
            for room in &lounges.rooms {
                if !safety.filters.username_allowed(&room.lounge) {
                    return Err(StartupError::Config(format!(
                        "LOUNGES: the name '{}' is refused by FILTER_PROFANITY",
                        room.lounge
                    )));
                }
            }
        }
        let router = cluster.as_ref().map(|c| {
            Arc::new(cluster::calls::CallRouter::new(
                c.conn.clone(),
                node_id.clone(),
            ))
        });
        let group_calls = start_sfu(&config, router).await?;
        Ok(AppState(Arc::new(Shared {
            group_calls,
            lounges,
            accounts: Accounts {
                store,
                jwt,
                last_seen: Default::default(),
            },
            call: CallLoop {
                presence,
                matcher,
                rooms,
                room_order: chat::RoomOrder::default(),
                events,
                typing: Default::default(),
            },
            files,
            turn,
            safety,
            limiter,
            node: Node {
                id: node_id,
                started_at: Instant::now(),
                local_sockets: AtomicUsize::new(0),
                redis,
                cluster,
                redis_up: std::sync::atomic::AtomicBool::new(true),
                census: std::sync::OnceLock::new(),
            },
            metrics,
            console: Default::default(),
            docs: Default::default(),
            config,
        })))
    }
}

/// Binds the group calls' media port and starts the media server.
async fn start_sfu(
    config: &Config,
    router: Option<Arc<cluster::calls::CallRouter>>,
) -> Result<realtime::group_calls::GroupCalls, StartupError> {
    let listen = config.sfu_listen.unwrap_or(config.host);
    let bind = std::net::SocketAddr::new(listen, config.sfu_udp_port);
    let public_ip = match config.sfu_public_ip {
        Some(ip) => ip,
        None if !listen.is_unspecified() => listen,
        None => {
            let ip = net::default_route_ip().unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
            tracing::warn!(%ip, "SFU_PUBLIC_IP is not set: announcing the default route's address for group-call media");
            ip
        }
    };
    let sfu_config = sfu::SfuConfig {
        public: std::net::SocketAddr::new(public_ip, config.sfu_udp_port),
        max_bitrate: config.call_max_bitrate,
        idle_timeout: config.call_idle_timeout.0,
    };
    let (handle, notices) = sfu::driver::start(bind, sfu_config)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("SFU_UDP_PORT {bind}: {e}")))?;
    tracing::info!(udp = %handle.local, public = %handle.public, "sfu listening");
    Ok(realtime::group_calls::GroupCalls::new(
        config.call_max_participants,
        handle,
        notices,
        router,
    ))
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "tandem".into())
}

/// `given`, or a secret generated once and kept in `DATA_DIR/<file>`
/// (with a warning naming `env`).
fn persisted_secret(
    config: &Config,
    given: &Option<String>,
    file: &str,
    env: &str,
) -> Result<Vec<u8>, StartupError> {
    if let Some(s) = given {
        return Ok(s.as_bytes().to_vec());
    }
    let path = config.data_dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() >= 32 => return Ok(s.trim().as_bytes().to_vec()),
        Ok(_) => {
            return Err(StartupError::Secret(format!(
                "{} is too short",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StartupError::Secret(format!("{}: {e}", path.display()))),
    }
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| StartupError::Secret(format!("{}: {e}", config.data_dir.display())))?;
    let bytes: [u8; 32] = rand::random();
    let secret = hex::encode(bytes);
    write_private(&path, &secret)
        .map_err(|e| StartupError::Secret(format!("{}: {e}", path.display())))?;
    tracing::warn!(
        path = %path.display(),
        "{env} is not set: generated one for development; set {env} in production"
    );
    Ok(secret.into_bytes())
}

fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    opts.mode(0o600);
    opts.open(path)?.write_all(contents.as_bytes())
}

/// Serves HTTP and Socket.IO on `listener` until `shutdown` resolves, then
/// tells connected clients, closes their sockets and drains open requests
/// for at most SHUTDOWN_GRACE.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let state = AppState::build(config).await?;
    let app = http::api_router(state.clone());
    match state.node.redis.clone() {
        None => {
            let io = realtime::build_io(&state);
            state
                .lounges
                .attach(Arc::new(realtime::lounges::LocalFanout {
                    io: io.clone(),
                    state: Arc::downgrade(&state.0),
                }));
            let app = with_socket_io(app, io.clone());
            serve(state, app, io, listener, shutdown).await
        }
        Some(client) => {
            let io = realtime::build_io(&state);
            if let Some(cluster) = &state.node.cluster {
                state.lounges.attach(Arc::new(cluster::lounges::RedisFanout(
                    cluster.conn.clone(),
                )));
            }
            let fanout =
                cluster::driver::join_io(client.clone(), io.clone(), state.node.id.clone())
                    .await
                    .map_err(|e| StartupError::Redis(format!("REDIS_URL: {e}")))?;
            let app = with_socket_io(app, io.clone());
            let mut tasks = vec![fanout];
            tasks.extend(realtime::node::spawn_node_tasks(state.clone(), io.clone()));
            let lounge_events = {
                let (io, state) = (io.clone(), state.clone());
                cluster::lounges::listen(client.clone(), move |ev| {
                    let (io, state) = (io.clone(), state.clone());
                    async move { realtime::lounges::deliver(&io, &state, ev).await }
                })
                .await
                .map_err(|e| StartupError::Redis(format!("REDIS_URL: {e}")))?
            };
            tasks.push(lounge_events);
            let remote_calls =
                realtime::group_calls::serve_remote(io.clone(), state.clone(), client.clone())
                    .await
                    .map_err(|e| StartupError::Redis(format!("REDIS_URL: {e}")))?;
            tasks.extend(remote_calls);
            let res = serve(state, app, io, listener, shutdown).await;
            for t in tasks {
                t.abort();
            }
            res
        }
    }
}

/// `/socket.io/`: Tandem's own Engine.IO / Socket.IO server.
fn with_socket_io(app: axum::Router, io: sio::Io) -> axum::Router {
    let serve = move |req: axum::extract::Request| {
        let io = io.clone();
        async move { sio::driver::serve(io, req).await }
    };
    app.route("/socket.io/", axum::routing::any(serve.clone()))
        .route("/socket.io", axum::routing::any(serve))
}

async fn serve(
    state: AppState,
    app: axum::Router,
    io: sio::Io,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartupError> {
    let grace = state.config.shutdown_grace.0;
    let app = http::outer_layers(app, &state.config);

    let ticker = tokio::spawn(realtime::match_ticker(io.clone(), state.clone()));
    let graces = tokio::spawn(realtime::calls::drive_graces(io.clone(), state.clone()));
    let typing = tokio::spawn(realtime::events::drive_typing(io.clone(), state.clone()));
    let sweeper = tokio::spawn(sweep_files(state.clone()));
    let guest_sweeper = tokio::spawn(sweep_guests(state.clone()));
    let report_sweeper = tokio::spawn(sweep_reports(state.clone()));
    let console = tokio::spawn(metrics::driver::run_console(state.clone()));
    let room_counts = tokio::spawn(realtime::lounges::run_counts(io.clone(), state.clone()));
    let room_sweeper = tokio::spawn(realtime::lounges::sweep_history(state.clone()));
    let call_notices = tokio::spawn(realtime::group_calls::run_notices(
        io.clone(),
        state.clone(),
    ));
    let metrics_server = match state.config.metrics_listen {
        None => None,
        Some(addr) => {
            let l = TcpListener::bind(addr).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("METRICS_LISTEN {addr}: {e}"))
            })?;
            tracing::info!(addr = %l.local_addr()?, "metrics listening");
            let app = http::metrics_router(state.clone());
            Some(tokio::spawn(async move {
                if let Err(e) = axum::serve(l, app).await {
                    tracing::error!(error = %e, "metrics listener failed");
                }
            }))
        }
    };
    let last_seen = {
        let state = state.clone();
        tokio::spawn(async move {
            state
                .accounts
                .last_seen
                .run(state.accounts.store.clone())
                .await
        })
    };
    let n = shards::count(state.config.socket_threads);
    // Blocking work goes to this runtime's pool (`shards::spawn_blocking`);
    // a shard's own serves only `tokio::fs`. Started before "listening" is
    // logged: each takes file descriptors, which a client may exhaust as
    // soon as it is announced.
    let shards = shards::Shards::start(n, shards::OWN_BLOCKING_THREADS)?;
    io.set_shards(shards.handles());
    let addr = listener.local_addr()?;
    tracing::info!(%addr, store = state.accounts.store.kind(), node = %state.node.id, "listening");

    let draining = Arc::new(Notify::new());
    let started = draining.clone();
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutting down: telling clients and draining");
        started.notify_one();
        realtime::shutdown(&io).await;
    };
    let server = http::server::serve(
        listener,
        app,
        &shards,
        state.config.http_header_timeout.0,
        graceful,
    );
    tokio::select! {
        () = server => {},
        _ = async { draining.notified().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(?grace, "drain timed out; closing remaining connections");
        }
    }
    ticker.abort();
    graces.abort();
    typing.abort();
    sweeper.abort();
    guest_sweeper.abort();
    report_sweeper.abort();
    console.abort();
    room_counts.abort();
    room_sweeper.abort();
    call_notices.abort();
    if let Some(m) = metrics_server {
        m.abort();
    }
    state.accounts.last_seen.close();
    let _ = last_seen.await;
    state.turn.shutdown();
    tracing::info!("stopped");
    Ok(())
}

/// Removes guests idle past GUEST_TTL, every tenth of the TTL (between
/// 1 s and 10 min), and once at start.
/// Deletes reports past REPORT_RETENTION, hourly.
async fn sweep_reports(state: AppState) {
    loop {
        match state
            .safety
            .expire_reports(state.accounts.store.as_ref(), chrono::Utc::now())
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed expired reports"),
            Err(e) => tracing::warn!(error = %e, "report expiry failed"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
    }
}

async fn sweep_guests(state: AppState) {
    let ttl = state.config.guest_ttl.0;
    let every = (ttl / 10).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(600),
    );
    loop {
        match store::expiry::sweep_guests(
            state.accounts.store.as_ref(),
            state.call.presence.as_ref(),
            ttl,
            chrono::Utc::now(),
        )
        .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed expired guest accounts"),
            Err(e) => tracing::warn!(error = %e, "guest expiry failed"),
        }
        tokio::time::sleep(every).await;
    }
}

/// Removes uploads as they pass FILE_TTL: sweeps, then sleeps until the
/// next expiry the sweep saw (rules in `files::expiry`).
async fn sweep_files(state: AppState) {
    let ttl = state.config.file_ttl.0;
    loop {
        let now = std::time::SystemTime::now();
        let next_due = match state.files.sweep(ttl, now).await {
            Ok(swept) => {
                if swept.removed > 0 {
                    tracing::info!(removed = swept.removed, "swept expired uploads");
                }
                swept.next_due
            }
            Err(e) => {
                tracing::warn!(error = %e, "upload sweep failed");
                None
            }
        };
        tokio::time::sleep(files::expiry::next_sweep_in(next_due, ttl, now)).await;
    }
}
