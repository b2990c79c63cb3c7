//! `GET /metrics` (Prometheus), `GET /admin/metrics` (the console's JSON)
//! and the layer that counts every HTTP request by its matched route.

use std::time::Instant;

use axum::{
    Json,
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use crate::{
    AppState,
    error::{AppError, ok},
    metrics::{console, driver},
};

/// The OpenMetrics text format, which Prometheus reads.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "admin", summary = "Prometheus metrics of this node",
    security(("adminKey" = [])),
    responses((status = 200, description = "Prometheus metrics (OpenMetrics text)", content_type = "text/plain"), (status = 401, description = "Wrong or missing key", body = crate::http::openapi::ErrorEnvelope), (status = 404, description = "ADMIN_KEY is not set", body = crate::http::openapi::ErrorEnvelope)),
)]
pub async fn prometheus(State(state): State<AppState>) -> Response {
    let sample = driver::gather(&state).await;
    let body = state.metrics.encode(sample);
    let mut res = body.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
    res
}

/// Counts the request under its route pattern (never the raw path: ids
/// would make a label per user).
pub async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = method_label(req.method());
    let start = Instant::now();
    let res = next.run(req).await;
    state
        .metrics
        .http(method, &route, res.status().as_u16(), start.elapsed());
    res
}

fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// How many open reports `flaggedUsers` is drawn from.
const FLAGGED_SCAN: usize = 200;

/// The console's figures, for the whole cluster when clustered: seed 000's
/// fields, and this server's own (per-node health, time to match, TURN).
#[utoipa::path(
    get,
    path = "/admin/metrics",
    tag = "admin", summary = "The operator console figures (the cluster when clustered)",
    security(("adminKey" = [])),
    responses((status = 200, description = "The console's figures (docs/API.md)", body = crate::http::openapi::Envelope), (status = 401, description = "Wrong or missing key", body = crate::http::openapi::ErrorEnvelope), (status = 404, description = "ADMIN_KEY is not set", body = crate::http::openapi::ErrorEnvelope)),
)]
pub async fn admin_metrics(State(state): State<AppState>) -> Result<Json<Value>, AppError> {
    let snapshots = driver::snapshots(&state).await;
    let merged = console::merge(&snapshots);
    let counts = state.call.presence.counts().await.ok();
    let waiting = state.call.matcher.waiting().await.ok().unwrap_or_default();
    let chats = state.call.rooms.room_count().await.ok();
    let open = state
        .accounts
        .store
        .list_reports(Some("open".into()), None, FLAGGED_SCAN)
        .await?;
    let mut flagged: Vec<String> = Vec::new();
    for r in open {
        if !flagged.contains(&r.target) {
            flagged.push(r.target);
        }
    }
    // Lounge rooms with someone in them (seed 000's `activeRooms`).
    let mut active_rooms = Vec::new();
    for r in &state.lounges.rooms {
        let users = state.lounges.members(&r.id).len();
        if users == 0 {
            continue;
        }
        let last = state
            .accounts
            .store
            .room_messages_before(&r.id, None, 1)
            .await
            .ok()
            .and_then(|m| m.first().map(|m| m.timestamp.timestamp_millis()));
        active_rooms.push(json!({
            "id": r.id,
            "name": format!("{} ({})", r.lounge, r.language),
            "users": users,
            "lastUpdated": last,
        }));
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    let nodes: Vec<Value> = snapshots
        .iter()
        .map(|n| {
            let age = (now_ms - n.at_ms).max(0);
            json!({
                "id": n.node,
                "health": if age <= 3_000 && n.redis_up != Some(false) { "up" } else { "stale" },
                "ageMs": age,
                "uptimeSeconds": n.uptime_seconds,
                "sockets": n.sockets,
                "rssBytes": n.rss_bytes,
                "redisUp": n.redis_up,
                "messagesPerSecond": n.messages_per_second,
                "matchesPerMinute": n.matches_per_minute,
                "turnBytesPerSecond": n.turn_bytes_per_second,
                "matchWait": { "p50Ms": n.match_wait_p50_ms, "p99Ms": n.match_wait_p99_ms },
            })
        })
        .collect();
    Ok(ok(
        "Admin metrics",
        json!({
            "totalConnections": merged.total_connections,
            "totalMessages": merged.total_messages,
            "totalReports": merged.total_reports,
            "totalMatches": merged.total_matches,
            "totalRefused": merged.total_refused,
            "peakConcurrentUsers": merged.peak_concurrent_users,
            "messagesPerSecond": merged.messages_per_second,
            "matchesPerMinute": merged.matches_per_minute,
            "turnBytesPerSecond": merged.turn_bytes_per_second,
            "matchWait": merged.match_wait,
            "activeRooms": active_rooms,
            "activeChats": chats,
            "flaggedUsers": flagged,
            "hourlyStats": merged.hourly_stats,
            "matchmaking": { "totalWaiting": waiting.total, "byMode": waiting.by_mode },
            "sessions": {
                "active": counts.map(|c| c.online_users),
                "sockets": counts.map(|c| c.sockets),
            },
            "nodes": nodes,
            "generatedAt": chrono::Utc::now(),
        }),
    ))
}
