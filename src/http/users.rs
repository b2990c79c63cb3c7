//! `/api/users/*`: presence lists, devices, stats.

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, header},
    routing::{get, post},
};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AuthUser, extract::ClientIp};
use crate::{
    AppState,
    error::{ApiQuery, AppError, JsonObject, ok},
    store::{Device, User},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users/online", get(online))
        .route("/api/users/available", get(available))
        .route("/api/users/device", post(device))
        .route("/api/users/stats", get(stats))
        .route("/api/users/blocks", get(blocks))
        .route("/api/users/me/standing", get(standing))
}

/// The public JSON of an account; `email` only on the caller's own.
pub fn user_json(u: &User, own: bool, online: bool) -> Value {
    let mut v = json!({
        "id": u.id,
        "username": u.username,
        "isGuest": u.is_guest,
        "isOnline": online,
        "lastSeen": u.last_seen,
        "createdAt": u.created_at,
    });
    if own {
        v["email"] = json!(u.email);
    }
    v
}

/// The caller's own standing: `{score, restricted, bannedUntil,
/// openReports}` (never shown to anyone else).
async fn standing(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<Json<Value>, AppError> {
    let s = state
        .safety
        .standing(state.accounts.store.as_ref(), &me.sub)
        .await?;
    Ok(ok("Your standing", json!(s)))
}

/// Most blocks listed (the newest are not distinguished: a block has no
/// date).
const BLOCKS_MAX: usize = 1000;

/// The caller's blocks: `{count, blocks: [{id, username}]}`; `username` is
/// null for an account that no longer exists.
async fn blocks(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
) -> Result<Json<Value>, AppError> {
    let store = &state.accounts.store;
    let mut ids = store.blocks_of(&me.sub).await?;
    ids.sort();
    ids.truncate(BLOCKS_MAX);
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let username = store.user_by_id(&id).await?.map(|u| u.username);
        out.push(json!({ "id": id, "username": username }));
    }
    Ok(ok(
        "Blocked users",
        json!({ "count": out.len(), "blocks": out }),
    ))
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<usize>,
}

const LIST_DEFAULT: usize = 100;
const LIST_MAX: usize = 1000;

async fn list(
    state: &AppState,
    available_only: bool,
    q: &ListQuery,
    me: &str,
) -> Result<Value, AppError> {
    let limit = q.limit.unwrap_or(LIST_DEFAULT).clamp(1, LIST_MAX);
    let mut users = state
        .call
        .presence
        .list(available_only, limit + 1)
        .await
        .map_err(|e| AppError::Unavailable(e.to_string()))?;
    if available_only {
        users.retain(|u| u.id != me);
    }
    users.truncate(limit);
    Ok(json!({ "count": users.len(), "users": users }))
}

async fn online(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, AppError> {
    Ok(ok("Online users", list(&state, false, &q, &me.sub).await?))
}

/// Online users who are not in a chat, the caller excluded.
async fn available(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, AppError> {
    Ok(ok(
        "Available users",
        list(&state, true, &q, &me.sub).await?,
    ))
}

async fn device(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: JsonObject,
) -> Result<Json<Value>, AppError> {
    let device_id = body.str("deviceId")?.trim();
    if device_id.is_empty() || device_id.chars().count() > 128 {
        return Err(AppError::validation(
            "deviceId",
            "deviceId must be 1 to 128 characters",
        ));
    }
    if device_id.chars().any(char::is_control) {
        return Err(AppError::validation(
            "deviceId",
            "deviceId must not contain control characters",
        ));
    }
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect::<String>());
    let device = Device {
        user_id: me.sub,
        device_id: device_id.to_string(),
        user_agent,
        ip: ip.map(|i| i.to_string()),
        last_seen: Utc::now(),
    };
    state.accounts.store.upsert_device(device.clone()).await?;
    Ok(ok(
        "Device recorded",
        json!({
            "deviceId": device.device_id,
            "userAgent": device.user_agent,
            "ip": device.ip,
            "lastSeen": device.last_seen,
        }),
    ))
}

async fn stats(
    State(state): State<AppState>,
    AuthUser(_): AuthUser,
) -> Result<Json<Value>, AppError> {
    let counts = state.accounts.store.count_users().await?;
    let p = state
        .call
        .presence
        .counts()
        .await
        .map_err(|e| AppError::Unavailable(e.to_string()))?;
    Ok(ok(
        "User statistics",
        json!({
            "totalUsers": counts.total,
            "registeredUsers": counts.total - counts.guests.min(counts.total),
            "guestUsers": counts.guests,
            "onlineUsers": p.online_users,
            "availableUsers": p.available_users,
            "queuedUsers": p.queued_users,
            "inChatUsers": p.in_chat_users,
        }),
    ))
}
