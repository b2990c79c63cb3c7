//! One configuration struct, loaded once from flags, environment variables and
//! an optional `.env` file, then validated.

use std::{fmt, net::IpAddr, path::PathBuf, str::FromStr, time::Duration};

use clap::{CommandFactory, Parser};

use crate::safety::{RestrictedMatching, filter::FilterMode};

/// Tandem: accounts, presence, random matching, chat and WebRTC signaling
/// for browser stranger-chat apps.
///
/// Every setting can be given as a flag or as the environment variable shown
/// in brackets; a `.env` file in the working directory is read first.
#[derive(Clone, Parser)]
#[command(name = "tandem", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Port to listen on (0 picks a free port; the chosen one is logged).
    #[arg(long, env = "PORT", default_value_t = 3001)]
    pub port: u16,

    /// `production` makes JWT_SECRET mandatory; anything else is development.
    #[arg(long = "env", env = "TANDEM_ENV", default_value = "development")]
    pub env: String,

    /// MongoDB connection string. Unset: the embedded store in DATA_DIR.
    #[arg(long, env = "MONGODB_URI", hide_env_values = true)]
    pub mongodb_uri: Option<String>,

    /// Database name used when MONGODB_URI names none.
    #[arg(long, env = "MONGODB_DB", default_value = "tandem")]
    pub mongodb_db: String,

    /// Directory of the embedded store and the generated development secrets.
    #[arg(long, env = "DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Redis URL. Unset: a single node with in-memory presence and queue.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Secret that signs access tokens (HS256). Required in production;
    /// otherwise generated once and kept in DATA_DIR/jwt_secret.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Access token lifetime: seconds, or a number with s, m, h or d.
    #[arg(long, env = "JWT_EXPIRES_IN", default_value = "7d")]
    pub jwt_expires_in: DurationArg,

    /// Refresh token lifetime: seconds, or a number with s, m, h or d.
    #[arg(long, env = "REFRESH_EXPIRES_IN", default_value = "30d")]
    pub refresh_expires_in: DurationArg,

    /// Origins allowed by CORS, comma separated; `*` allows any origin
    /// (without credentials). Unset: same-origin only.
    #[arg(long, env = "CORS_ORIGIN", value_delimiter = ',')]
    pub cors_origin: Vec<String>,

    /// bcrypt cost factor (4 to 31).
    #[arg(long, env = "BCRYPT_COST", default_value_t = 12,
          value_parser = clap::value_parser!(u32).range(4..=31))]
    pub bcrypt_cost: u32,

    /// Directory for the daily-rotated log files.
    #[arg(long, env = "LOG_DIR", default_value = "./logs")]
    pub log_dir: PathBuf,

    /// Log filter, e.g. `info` or `tandem=debug,tower_http=info`.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Directory where uploaded files and voice notes are stored.
    #[arg(long, env = "UPLOAD_DIR", default_value = "./uploads")]
    pub upload_dir: PathBuf,

    /// Largest accepted upload, in bytes.
    #[arg(long, env = "MAX_FILE_SIZE", default_value_t = 10_485_760)]
    pub max_file_size: u64,

    /// Longest accepted voice note, in seconds.
    #[arg(long, env = "MAX_VOICE_DURATION", default_value_t = 300)]
    pub max_voice_duration: u32,

    /// Requests per window and IP on the credential routes
    /// (register, login, guest, refresh).
    #[arg(long, env = "RATE_LIMIT_AUTH_MAX", default_value_t = 5)]
    pub rate_limit_auth_max: u32,

    /// Requests per window and IP on the other /api routes.
    #[arg(long, env = "RATE_LIMIT_API_MAX", default_value_t = 100)]
    pub rate_limit_api_max: u32,

    /// Length of the HTTP rate-limit window: seconds, or a number with s, m, h or d.
    #[arg(long, env = "RATE_LIMIT_WINDOW", default_value = "15m")]
    pub rate_limit_window: DurationArg,

    /// Uploads per window and IP on POST /api/files.
    #[arg(long, env = "RATE_LIMIT_UPLOAD_MAX", default_value_t = 10)]
    pub rate_limit_upload_max: u32,

    /// Length of the upload rate-limit window.
    #[arg(long, env = "RATE_LIMIT_UPLOAD_WINDOW", default_value = "1h")]
    pub rate_limit_upload_window: DurationArg,

    /// Socket.IO events a user may send per minute (a token bucket).
    #[arg(long, env = "SOCKET_EVENT_LIMIT", default_value_t = 100)]
    pub socket_event_limit: u32,

    /// Burst size of the Socket.IO event bucket (default: SOCKET_EVENT_LIMIT).
    #[arg(long, env = "SOCKET_EVENT_BURST")]
    pub socket_event_burst: Option<u32>,

    /// How long a queued user waits for someone sharing their preferences
    /// before anyone will do.
    #[arg(long, env = "MATCH_FALLBACK", default_value = "5s")]
    pub match_fallback: DurationArg,

    /// How long a chat waits for a member whose connection dropped.
    #[arg(long, env = "RECONNECT_GRACE", default_value = "30s")]
    pub reconnect_grace: DurationArg,

    /// Files left behind (not deleted with their chat) are removed after this.
    #[arg(long, env = "FILE_TTL", default_value = "24h")]
    pub file_ttl: DurationArg,

    /// TURN relay: `internal` (built in), `external` (hand out credentials
    /// for a coturn with `use-auth-secret`), or `off`.
    #[arg(long, env = "TURN_MODE", value_enum, default_value_t = TurnMode::Internal)]
    pub turn_mode: TurnMode,

    /// TURN port, UDP and TCP (0 picks a free one; it is logged).
    #[arg(long, env = "TURN_PORT", default_value_t = 3478)]
    pub turn_port: u16,

    /// Address the TURN port listens on (default: HOST).
    #[arg(long, env = "TURN_LISTEN")]
    pub turn_listen: Option<IpAddr>,

    /// Address relay sockets bind to (default: TURN_LISTEN).
    #[arg(long, env = "TURN_RELAY_IP")]
    pub turn_relay_ip: Option<IpAddr>,

    /// Public address announced for relays, behind NAT (default: TURN_RELAY_IP).
    #[arg(long, env = "TURN_PUBLIC_IP")]
    pub turn_public_ip: Option<IpAddr>,

    /// Host name used in the turn: URIs handed to clients (default: the public IP).
    #[arg(long, env = "TURN_PUBLIC_HOST")]
    pub turn_public_host: Option<String>,

    /// Lowest relay port.
    #[arg(long, env = "TURN_MIN_PORT", default_value_t = 49152)]
    pub turn_min_port: u16,

    /// Highest relay port.
    #[arg(long, env = "TURN_MAX_PORT", default_value_t = 65535)]
    pub turn_max_port: u16,

    /// TURN realm.
    #[arg(long, env = "TURN_REALM", default_value = "tandem")]
    pub turn_realm: String,

    /// Shared secret of the TURN REST API credentials (coturn's
    /// static-auth-secret). Required with TURN_MODE=external; otherwise
    /// generated once into DATA_DIR/turn_secret.
    #[arg(long, env = "TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,

    /// TURN/STUN URIs handed to clients, comma separated. Required with
    /// TURN_MODE=external; internal default: built from the public host and port.
    #[arg(long, env = "TURN_URLS", value_delimiter = ',')]
    pub turn_urls: Vec<String>,

    /// Lifetime of the TURN credentials handed out.
    #[arg(long, env = "TURN_CREDENTIAL_TTL", default_value = "1h")]
    pub turn_credential_ttl: DurationArg,

    /// Allocations one user may hold at once.
    #[arg(long, env = "TURN_USER_QUOTA", default_value_t = 10)]
    pub turn_user_quota: usize,

    /// Group calls' media port (UDP; one for every call on this node; 0
    /// picks a free one, logged as `sfu listening udp=`).
    #[arg(long, env = "SFU_UDP_PORT", default_value_t = 3479)]
    pub sfu_udp_port: u16,

    /// Address the media port binds to (default: HOST).
    #[arg(long, env = "SFU_LISTEN")]
    pub sfu_listen: Option<IpAddr>,

    /// Address announced to browsers for group-call media, behind NAT
    /// (default: SFU_LISTEN, or, when that is 0.0.0.0, the address this
    /// machine's default route leaves from).
    #[arg(long, env = "SFU_PUBLIC_IP")]
    pub sfu_public_ip: Option<IpAddr>,

    /// Most people in one group call.
    #[arg(long, env = "CALL_MAX_PARTICIPANTS", default_value_t = 8)]
    pub call_max_participants: usize,

    /// A participant that sends no media this long leaves the call.
    #[arg(long, env = "CALL_IDLE_TIMEOUT", default_value = "30s")]
    pub call_idle_timeout: DurationArg,

    /// Most bits per second a participant may publish (audio and video
    /// together); frames past it are not forwarded.
    #[arg(long, env = "CALL_MAX_BITRATE", default_value_t = 3_000_000)]
    pub call_max_bitrate: u64,

    /// Bytes per second one allocation may relay (0: no cap).
    #[arg(long, env = "TURN_BANDWIDTH", default_value_t = 2_000_000)]
    pub turn_bandwidth: u64,

    /// Peers relays may reach although they are loopback, private,
    /// link-local or multicast: comma-separated addresses or CIDR blocks.
    #[arg(long, env = "TURN_ALLOWED_PEERS", value_delimiter = ',')]
    pub turn_allowed_peers: Vec<String>,

    /// Take the client address from the X-Real-IP header set by a trusted
    /// reverse proxy (nginx.conf sets it). Leave off when clients connect directly.
    #[arg(long, env = "TRUST_PROXY", default_value_t = false, action = clap::ArgAction::Set)]
    pub trust_proxy: bool,

    /// How long shutdown waits for open requests and sockets to finish.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "10s")]
    pub shutdown_grace: DurationArg,

    /// Page cache of the embedded store, in bytes: memory stays flat while
    /// the file grows. Reads it misses come from the kernel's page cache.
    #[arg(long, env = "STORE_CACHE_SIZE", default_value_t = crate::store::embedded::DEFAULT_CACHE_SIZE)]
    pub store_cache_size: usize,

    /// Guest accounts not seen for this long are removed, with their refresh
    /// tokens and devices (registered accounts never are).
    #[arg(long, env = "GUEST_TTL", default_value = "7d")]
    pub guest_ttl: DurationArg,

    /// A first ban lasts this long; each further ban of the account 4× the
    /// last one.
    #[arg(long, env = "BAN_DURATION", default_value = "24h")]
    pub ban_duration: DurationArg,

    /// The longest ban.
    #[arg(long, env = "BAN_MAX", default_value = "30d")]
    pub ban_max: DurationArg,

    /// Distinct users whose reports within REPORT_WINDOW ban the reported
    /// user (0: reports never ban by themselves).
    #[arg(long, env = "REPORT_THRESHOLD", default_value_t = 3)]
    pub report_threshold: u32,

    #[arg(long, env = "REPORT_WINDOW", default_value = "24h")]
    pub report_window: DurationArg,

    /// Reports (and the messages kept with them) are deleted after this.
    #[arg(long, env = "REPORT_RETENTION", default_value = "30d")]
    pub report_retention: DurationArg,

    /// Emails and phone numbers in chat messages: `off`, `mask` (`***`)
    /// or `block` (refused with `pii_blocked`).
    #[arg(long, env = "FILTER_PII", value_enum, default_value_t = FilterMode::Off)]
    pub filter_pii: FilterMode,

    /// With FILTER_PII on, links and social handles count too.
    #[arg(long, env = "FILTER_PII_LINKS", default_value_t = false, action = clap::ArgAction::Set)]
    pub filter_pii_links: bool,

    /// Profanity in chat messages and report details (`mask` or `block`,
    /// refused with `profanity_blocked`); on, profane usernames are refused.
    #[arg(long, env = "FILTER_PROFANITY", value_enum, default_value_t = FilterMode::Off)]
    pub filter_profanity: FilterMode,

    /// Public rooms: `name:languages` per lounge, `;`-separated, with an
    /// optional `@duration` of slow mode (`general:en,es,de;music:en@10s`);
    /// each language is a room `<name>-<language>`. Empty: no lounges.
    #[arg(long, env = "LOUNGES", default_value = "general:en")]
    pub lounges: String,

    /// A file with the lounges (the same syntax, one lounge a line);
    /// replaces LOUNGES.
    #[arg(long, env = "LOUNGES_FILE")]
    pub lounges_file: Option<PathBuf>,

    /// Rooms a user may be in at once (besides a 1-to-1 chat).
    #[arg(long, env = "ROOM_MAX_JOINED", default_value_t = 5)]
    pub room_max_joined: usize,

    /// Room messages a user may send per second, on average.
    #[arg(long, env = "ROOM_MESSAGE_RATE", default_value_t = 1.0)]
    pub room_message_rate: f64,

    /// Room messages a user may send in a burst.
    #[arg(long, env = "ROOM_MESSAGE_BURST", default_value_t = 5)]
    pub room_message_burst: u32,

    /// Messages kept per room.
    #[arg(long, env = "ROOM_HISTORY_SIZE", default_value_t = 1000)]
    pub room_history_size: usize,

    /// How long room messages are kept.
    #[arg(long, env = "ROOM_HISTORY_TTL", default_value = "7d")]
    pub room_history_ttl: DurationArg,

    /// Links a user may send per minute before messages are refused as spam.
    #[arg(long, env = "SPAM_LINKS_PER_MINUTE", default_value_t = 5)]
    pub spam_links_per_minute: usize,

    /// Matches an account (and a device, from the handshake's
    /// `auth.deviceId`) may ask for per 24 hours; 0: no limit.
    #[arg(long, env = "DAILY_MATCH_LIMIT", default_value_t = 0)]
    pub daily_match_limit: u32,

    /// Restricted users (reputation below 30, or more than 3 open reports)
    /// are matched only with each other (`restricted`) or not at all
    /// (`none`).
    #[arg(long, env = "RESTRICTED_MATCHING", value_enum, default_value_t = RestrictedMatching::Restricted)]
    pub restricted_matching: RestrictedMatching,

    /// Key of the moderator API (`X-Admin-Key`); unset, `/admin/*` is 404.
    #[arg(long, env = "ADMIN_KEY")]
    pub admin_key: Option<String>,

    /// A second address serving only `GET /metrics`, without a key (for a
    /// Prometheus on a private network), e.g. `127.0.0.1:9464`. On the
    /// main port `/metrics` wants `X-Admin-Key`.
    #[arg(long, env = "METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,

    /// Engine.IO ping interval: how often the server pings each client.
    #[arg(long, env = "PING_INTERVAL", default_value = "25s")]
    pub ping_interval: DurationArg,

    /// Engine.IO ping timeout: how long past a ping a silent client is kept.
    #[arg(long, env = "PING_TIMEOUT", default_value = "20s")]
    pub ping_timeout: DurationArg,

    /// How long a client may take to send a request head, and how long a
    /// keep-alive connection may sit idle before its next request: the
    /// connection is closed after it (slowloris).
    #[arg(long, env = "HTTP_HEADER_TIMEOUT", default_value = "10s")]
    pub http_header_timeout: DurationArg,

    /// Threads that serve HTTP and Socket.IO connections, each an event
    /// loop of its own taking connections in turn; 0: one per core.
    #[arg(long, env = "SOCKET_THREADS", default_value_t = 0)]
    pub socket_threads: usize,

    /// How long one REST request may take, body included (uploads excepted);
    /// past it: 408 `request_timeout`.
    #[arg(long, env = "HTTP_REQUEST_TIMEOUT", default_value = "30s")]
    pub http_request_timeout: DurationArg,

    /// How long one upload may take in all; past it: 408 `request_timeout`
    /// and the partial file is deleted (a 10 MB file needs ≥ 90 KB/s).
    #[arg(long, env = "UPLOAD_TIMEOUT", default_value = "2m")]
    pub upload_timeout: DurationArg,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("env", &self.env)
            .field("mongodb_uri", &self.mongodb_uri.as_ref().map(|_| "<set>"))
            .field("data_dir", &self.data_dir)
            .field("redis_url", &self.redis_url.as_ref().map(|_| "<set>"))
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "<hidden>"))
            .field("admin_key", &self.admin_key.as_ref().map(|_| "<hidden>"))
            .field("jwt_expires_in", &self.jwt_expires_in)
            .field("cors_origin", &self.cors_origin)
            .field("bcrypt_cost", &self.bcrypt_cost)
            .field("log_dir", &self.log_dir)
            .field("upload_dir", &self.upload_dir)
            .field("max_file_size", &self.max_file_size)
            .finish_non_exhaustive()
    }
}

/// How TURN is provided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TurnMode {
    Internal,
    External,
    Off,
}

/// A configuration problem, reported as one line naming the setting.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Reads `.env` (if any), flags and environment, and validates the result.
    pub fn load() -> Result<Self, ConfigError> {
        let _ = dotenvy::dotenv();
        let config = match Self::try_parse() {
            Ok(c) => c,
            Err(e) => {
                use clap::error::ErrorKind;
                if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                    e.exit();
                }
                return Err(ConfigError(describe_clap_error(&e)));
            }
        };
        config.validate()?;
        Ok(config)
    }

    /// The lounges' rooms, from LOUNGES_FILE or LOUNGES.
    pub fn rooms(&self) -> Result<Vec<crate::lounges::Room>, ConfigError> {
        let (name, spec) = match &self.lounges_file {
            Some(path) => (
                "LOUNGES_FILE",
                std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("LOUNGES_FILE {}: {e}", path.display())))?,
            ),
            None => ("LOUNGES", self.lounges.clone()),
        };
        crate::lounges::parse_spec(&spec).map_err(|e| ConfigError(format!("{name}: {e}")))
    }

    /// Checks that cannot be expressed as a single flag's parser.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.is_production() {
            match &self.jwt_secret {
                None => {
                    return Err(ConfigError(
                        "JWT_SECRET is required when TANDEM_ENV=production".into(),
                    ));
                }
                Some(s) if s.len() < 32 => {
                    return Err(ConfigError(
                        "JWT_SECRET must be at least 32 characters in production".into(),
                    ));
                }
                _ => {}
            }
        }
        if matches!(&self.jwt_secret, Some(s) if s.is_empty()) {
            return Err(ConfigError("JWT_SECRET must not be empty".into()));
        }
        if self.jwt_expires_in.0 < Duration::from_secs(1) {
            return Err(ConfigError("JWT_EXPIRES_IN must be at least 1s".into()));
        }
        if self.socket_event_limit == 0 {
            return Err(ConfigError("SOCKET_EVENT_LIMIT must be at least 1".into()));
        }
        if self.max_file_size == 0 {
            return Err(ConfigError("MAX_FILE_SIZE must be at least 1".into()));
        }
        if self.rate_limit_upload_window.0 < Duration::from_secs(1) {
            return Err(ConfigError(
                "RATE_LIMIT_UPLOAD_WINDOW must be at least 1s".into(),
            ));
        }
        if self.file_ttl.0 < Duration::from_secs(1) {
            return Err(ConfigError("FILE_TTL must be at least 1s".into()));
        }
        for (name, d) in [
            ("HTTP_HEADER_TIMEOUT", self.http_header_timeout.0),
            ("HTTP_REQUEST_TIMEOUT", self.http_request_timeout.0),
            ("UPLOAD_TIMEOUT", self.upload_timeout.0),
            ("PING_INTERVAL", self.ping_interval.0),
            ("PING_TIMEOUT", self.ping_timeout.0),
            ("GUEST_TTL", self.guest_ttl.0),
            ("BAN_DURATION", self.ban_duration.0),
            ("BAN_MAX", self.ban_max.0),
            ("REPORT_WINDOW", self.report_window.0),
            ("REPORT_RETENTION", self.report_retention.0),
            ("ROOM_HISTORY_TTL", self.room_history_ttl.0),
        ] {
            if d < Duration::from_millis(100) {
                return Err(ConfigError(format!("{name} must be at least 100ms")));
            }
        }
        if !(self.room_message_rate > 0.0 && self.room_message_rate.is_finite()) {
            return Err(ConfigError("ROOM_MESSAGE_RATE must be above 0".into()));
        }
        if self.room_history_size == 0 {
            return Err(ConfigError("ROOM_HISTORY_SIZE must be at least 1".into()));
        }
        self.rooms()?;
        if self.rate_limit_window.0 < Duration::from_secs(1) {
            return Err(ConfigError("RATE_LIMIT_WINDOW must be at least 1s".into()));
        }
        for origin in &self.cors_origin {
            let o = origin.trim();
            if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                return Err(ConfigError(format!(
                    "CORS_ORIGIN entry '{o}' must be '*' or start with http:// or https://"
                )));
            }
        }
        if self.turn_min_port > self.turn_max_port || self.turn_min_port == 0 {
            return Err(ConfigError(
                "TURN_MIN_PORT must be 1..=TURN_MAX_PORT".into(),
            ));
        }
        for c in &self.turn_allowed_peers {
            if let Err(e) = c.parse::<crate::relay::policy::Cidr>() {
                return Err(ConfigError(format!("TURN_ALLOWED_PEERS: {e}")));
            }
        }
        if self.turn_mode == TurnMode::External {
            if self.turn_urls.is_empty() {
                return Err(ConfigError(
                    "TURN_URLS is required when TURN_MODE=external".into(),
                ));
            }
            if self.turn_secret.is_none() {
                return Err(ConfigError(
                    "TURN_SECRET is required when TURN_MODE=external".into(),
                ));
            }
        }
        if self.turn_mode == TurnMode::Internal {
            let relay = self
                .turn_public_ip
                .or(self.turn_relay_ip)
                .or(self.turn_listen)
                .unwrap_or(self.host);
            if relay.is_unspecified() {
                return Err(ConfigError(
                    "TURN_PUBLIC_IP (or TURN_RELAY_IP) must name an address when TURN listens on all interfaces".into(),
                ));
            }
        }
        for u in &self.turn_urls {
            let u = u.trim();
            if !(u.starts_with("turn:") || u.starts_with("turns:") || u.starts_with("stun:")) {
                return Err(ConfigError(format!(
                    "TURN_URLS entry '{u}' must start with turn:, turns: or stun:"
                )));
            }
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            return Err(ConfigError(format!("LOG_LEVEL: {e}")));
        }
        Ok(())
    }

    pub fn is_production(&self) -> bool {
        self.env.eq_ignore_ascii_case("production")
    }
}

/// Turns clap's multi-line error into one line that names the env variable too.
fn describe_clap_error(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let rendered = e.render().to_string();
    let first = rendered
        .lines()
        .next()
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ")
        .to_string();
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return first;
    };
    // `arg` looks like "--port <PORT>"; find that argument's env variable.
    let long = arg
        .split_whitespace()
        .next()
        .unwrap_or("")
        .trim_start_matches('-');
    let cmd = Config::command();
    let env = cmd
        .get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned());
    match env {
        Some(env) => format!("{env}: {first}"),
        None => first,
    }
}

/// A duration written as `30`, `30s`, `15m`, `12h` or `7d`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationArg(pub Duration);

impl FromStr for DurationArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
            Some(i) => s.split_at(i),
            None => (s, "s"),
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("'{s}' is not a duration like 30s, 15m, 12h or 7d"))?;
        let mult = match unit.trim() {
            "ms" => return Ok(DurationArg(Duration::from_millis(n))),
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(format!("'{s}' is not a duration like 30s, 15m, 12h or 7d")),
        };
        n.checked_mul(mult)
            .map(|secs| DurationArg(Duration::from_secs(secs)))
            .ok_or_else(|| format!("'{s}' is too long"))
    }
}

impl fmt::Display for DurationArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!("7d".parse::<DurationArg>().unwrap().0.as_secs(), 604_800);
        assert_eq!("15m".parse::<DurationArg>().unwrap().0.as_secs(), 900);
        assert_eq!("3600".parse::<DurationArg>().unwrap().0.as_secs(), 3600);
        assert_eq!("250ms".parse::<DurationArg>().unwrap().0.as_millis(), 250);
        assert!("7w".parse::<DurationArg>().is_err());
        assert!("".parse::<DurationArg>().is_err());
        assert!("d".parse::<DurationArg>().is_err());
    }

    #[test]
    fn production_requires_secret() {
        let c = Config::try_parse_from(["tandem", "--env", "production"]).unwrap();
        let err = c.validate().unwrap_err();
        assert!(err.to_string().contains("JWT_SECRET"));
        let c = Config::try_parse_from([
            "tandem",
            "--env",
            "production",
            "--jwt-secret",
            "0123456789abcdef0123456789abcdef",
        ])
        .unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn clap_errors_name_the_env_variable() {
        let e = Config::try_parse_from(["tandem", "--port", "nope"])
            .err()
            .unwrap();
        let line = describe_clap_error(&e);
        assert!(line.starts_with("PORT: "), "{line}");
        assert!(!line.contains('\n'));
    }
}
