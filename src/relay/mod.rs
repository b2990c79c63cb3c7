//! The built-in TURN relay: the protocol core ([`core::TurnServer`],
//! sans-I/O) and the tokio loops that own its sockets ([`server`]); and
//! [`TurnService`], which hands out TURN REST API credentials for it or for
//! an external coturn.

use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde_json::{Value, json};

use crate::config::{Config, TurnMode};

pub mod core;
pub mod policy;
pub mod server;
pub mod stun;

pub struct TurnService {
    pub mode: TurnMode,
    secret: Vec<u8>,
    pub uris: Vec<String>,
    pub ttl: Duration,
    handle: Option<server::TurnHandle>,
}

fn host_for_uri(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        v4 => v4.to_string(),
    }
}

impl TurnService {
    /// Starts the internal relay (or prepares external credentials) as the
    /// config says. `secret` is TURN_SECRET or the persisted one.
    pub async fn start(config: &Config, secret: Vec<u8>) -> std::io::Result<Self> {
        let ttl = config.turn_credential_ttl.0;
        let mut uris: Vec<String> = config
            .turn_urls
            .iter()
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect();
        match config.turn_mode {
            TurnMode::Off => Ok(TurnService {
                mode: TurnMode::Off,
                secret,
                uris: vec![],
                ttl,
                handle: None,
            }),
            TurnMode::External => Ok(TurnService {
                mode: TurnMode::External,
                secret,
                uris,
                ttl,
                handle: None,
            }),
            TurnMode::Internal => {
                let listen_ip = config.turn_listen.unwrap_or(config.host);
                let relay_ip = config.turn_relay_ip.unwrap_or(listen_ip);
                let nonce_key: [u8; 32] = rand::random();
                let core = core::TurnConfig {
                    realm: config.turn_realm.clone(),
                    secret: secret.clone(),
                    nonce_key,
                    user_quota: config.turn_user_quota,
                    bandwidth: config.turn_bandwidth,
                    policy: policy::PeerPolicy {
                        allow: config
                            .turn_allowed_peers
                            .iter()
                            .filter_map(|c| c.parse().ok())
                            .collect(),
                    },
                    public_ip: config.turn_public_ip,
                };
                let listen = server::Listen {
                    addr: SocketAddr::new(listen_ip, config.turn_port),
                    relay_ip,
                    ports: (config.turn_min_port, config.turn_max_port),
                };
                let handle = server::start(listen, core).await.map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("TURN_PORT {}:{}: {e}", listen_ip, config.turn_port),
                    )
                })?;
                let port = handle.udp_addr.port();
                if uris.is_empty() {
                    let host = config
                        .turn_public_host
                        .clone()
                        .unwrap_or_else(|| host_for_uri(config.turn_public_ip.unwrap_or(relay_ip)));
                    uris = vec![
                        format!("stun:{host}:{port}"),
                        format!("turn:{host}:{port}?transport=udp"),
                        format!("turn:{host}:{port}?transport=tcp"),
                    ];
                }
                tracing::info!(udp = %handle.udp_addr, tcp = %handle.tcp_addr, relay_ip = %relay_ip, "turn listening");
                Ok(TurnService {
                    mode: TurnMode::Internal,
                    secret,
                    uris,
                    ttl,
                    handle: Some(handle),
                })
            }
        }
    }

    /// TURN REST API credentials for `user_id`, or None when TURN is off.
    pub fn credentials(&self, user_id: &str) -> Option<Value> {
        if self.mode == TurnMode::Off {
            return None;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let username = format!("{}:{user_id}", now + self.ttl.as_secs());
        let password = core::rest_password(&self.secret, &username);
        Some(json!({
            "username": username,
            "password": password,
            "ttl": self.ttl.as_secs(),
            "uris": self.uris,
            "iceServers": [{ "urls": self.uris, "username": username, "credential": password }],
        }))
    }

    pub fn stats(&self) -> Value {
        let mode = match self.mode {
            TurnMode::Internal => "internal",
            TurnMode::External => "external",
            TurnMode::Off => "off",
        };
        match &self.handle {
            Some(h) => json!({ "mode": mode, "port": h.udp_addr.port(), "metrics": h.metrics() }),
            None => json!({ "mode": mode }),
        }
    }

    /// The relay's counters (None when TURN is not served here).
    pub fn metrics(&self) -> Option<core::Metrics> {
        self.handle.as_ref().map(|h| h.metrics())
    }

    pub fn shutdown(&self) {
        if let Some(h) = &self.handle {
            h.shutdown();
        }
    }
}
