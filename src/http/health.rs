//! `/health` and `/api/socket/stats`.

use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde_json::{Value, json};

use super::AuthUser;
use crate::{AppState, error::AppError};

/// No auth. 200 while the store answers, 503 when it does not.
#[utoipa::path(
    get,
    path = "/health",
    tag = "service", summary = "Health of the node, its store and Redis", security(()),
    responses((status = 200, description = "Healthy: {status, store, redis, uptimeSeconds, version, node}", body = crate::http::openapi::Envelope), (status = 503, description = "The store or Redis is down", body = crate::http::openapi::ErrorEnvelope)),
)]
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let ping = tokio::time::timeout(Duration::from_secs(2), state.accounts.store.ping()).await;
    let store_error = match ping {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some("no answer within 2 s".to_string()),
    };
    let store = match &store_error {
        None => json!({ "backend": state.accounts.store.kind(), "status": "up" }),
        Some(e) => json!({ "backend": state.accounts.store.kind(), "status": "down", "error": e }),
    };
    let redis_error = match &state.node.cluster {
        None => None,
        Some(c) => {
            let mut conn = c.conn.clone();
            let cmd = redis::cmd("PING");
            let ping = cmd.query_async::<String>(&mut conn);
            match tokio::time::timeout(Duration::from_secs(2), ping).await {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some("no answer within 2 s".to_string()),
            }
        }
    };
    let redis = match (&state.node.cluster, &redis_error) {
        (None, _) => json!({ "status": "disabled" }),
        (Some(_), None) => json!({ "status": "up" }),
        (Some(_), Some(e)) => json!({ "status": "down", "error": e }),
    };
    let healthy = store_error.is_none() && redis_error.is_none();
    let data = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "store": store,
        "redis": redis,
        "uptimeSeconds": state.node.started_at.elapsed().as_secs(),
        "version": env!("CARGO_PKG_VERSION"),
        "node": state.node.id,
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = if healthy {
        json!({ "success": true, "message": "healthy", "data": data })
    } else {
        json!({
            "success": false,
            "message": if store_error.is_some() { "the account store is unavailable" } else { "Redis is unavailable: matching and cluster features are down" },
            "error": { "code": "service_unavailable" },
            "data": data,
        })
    };
    (status, Json(body))
}

#[utoipa::path(
    get,
    path = "/api/socket/stats",
    tag = "service", summary = "Socket and memory statistics of this node",
    security(("bearer" = [])),
    responses((status = 200, description = "Sockets, users, memory and TURN figures of this node", body = crate::http::openapi::Envelope), (status = 401, description = "Missing or invalid token", body = crate::http::openapi::ErrorEnvelope), (status = 429, description = "Rate limited", body = crate::http::openapi::ErrorEnvelope)),
)]
pub async fn socket_stats(
    State(state): State<AppState>,
    AuthUser(_): AuthUser,
) -> Result<Json<Value>, AppError> {
    let p = state
        .call
        .presence
        .counts()
        .await
        .map_err(|e| AppError::Unavailable(e.to_string()))?;
    Ok(crate::error::ok(
        "Socket statistics",
        json!({
            "node": state.node.id,
            "localSockets": state.node.local_sockets.load(std::sync::atomic::Ordering::Relaxed),
            "connectedSockets": p.sockets,
            "onlineUsers": p.online_users,
            "availableUsers": p.available_users,
            "queuedUsers": p.queued_users,
            "inChatUsers": p.in_chat_users,
            "uptimeSeconds": state.node.started_at.elapsed().as_secs(),
            "rssBytes": crate::metrics::process::rss_bytes(),
            "heap": crate::memory::heap().map(|(allocated, resident)| {
                json!({ "allocatedBytes": allocated, "residentBytes": resident })
            }),
            "turn": state.turn.stats(),
            "groupCalls": crate::realtime::group_calls::counts(&state, state.group_calls.sfu.stats().await),
        }),
    ))
}

/// `GET /api/turn/credentials`: TURN REST API credentials for the caller.
#[utoipa::path(
    get,
    path = "/api/turn/credentials",
    tag = "service", summary = "Short-lived TURN credentials",
    security(("bearer" = [])),
    responses((status = 200, description = "{username, password, ttl, uris, iceServers}", body = crate::http::openapi::Envelope), (status = 401, description = "Missing or invalid token", body = crate::http::openapi::ErrorEnvelope), (status = 404, description = "TURN is off", body = crate::http::openapi::ErrorEnvelope), (status = 429, description = "Rate limited", body = crate::http::openapi::ErrorEnvelope)),
)]
pub async fn turn_credentials(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<Json<Value>, AppError> {
    let creds = state
        .turn
        .credentials(&me.sub)
        .ok_or_else(|| AppError::NotFound("TURN is disabled on this server".into()))?;
    Ok(crate::error::ok("TURN credentials", creds))
}
