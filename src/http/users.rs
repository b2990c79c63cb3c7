//! `/api/users/*`: presence lists, devices, stats.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, header},
};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AuthUser, extract::ClientIp};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    error::{ApiQuery, AppError, JsonObject, ok},
    store::{Device, User},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(online))
        .routes(routes!(available))
        .routes(routes!(device))
        .routes(routes!(stats))
        .routes(routes!(blocks))
        .routes(routes!(standing))
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
#[utoipa::path(
    get,
    path = "/api/users/me/standing",
    tag = "users", summary = "Your own standing (reputation, restriction, ban)",
    security(("bearer" = [])),
    responses((status = 200, description = "{score, restricted, bannedUntil, openReports}", body = crate::http::openapi::Envelope), (status = 401, description = "Missing or invalid token", body = crate::http::openapi::ErrorEnvelope), (status = 429, description = "Rate limited", body = crate::http::openapi::ErrorEnvelope)),
)]
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
#[utoipa::path(
    get,
    path = "/api/users/blocks",
    tag = "users", summary = "The users you blocked",
    security(("bearer" = [])),
    responses((status = 200, description = "{blocks: [{id, username}]}", body = crate::http::openapi::Envelope), (status = 401, description = "Missing or invalid token", body = crate::http::openapi::ErrorEnvelope), (status = 429, description = "Rate limited", body = crate::http::openapi::ErrorEnvelope)),
)]
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

#[utoipa::path(
    get,
    path = "/api/users/online",
    tag = "users", summary = "Users online",
    security(("bearer" = [])),
    params(("limit" = Option<usize>, Query, description = "1-1000, default 100")),
    responses((status = 200, description = "{users, count}", body = crate::http::openapi::Envelope), (status = 400, description = "Invalid limit", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "Missing or invalid token", body = crate::http::openapi::ErrorEnvelope), (status = 429, description = "Rate limited", body = crate::http::openapi::ErrorEnvelope)),
)]
async fn online(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Value>, AppError> {
    Ok(ok("Online users", list(&state, false, &q, &me.sub).await?))
}

/// Online users who are not in a chat, the caller excluded.
#[utoipa::path(
    get,
    path = "/api/users/available",
    tag = "users", summary = "Users online and free to match",
    security(("bearer" = [])),
    params(("limit" = Option<usize>, Query, description = "1-1000, default 100")),
    responses((status = 200, description = "{users, count}: online and not busy", body = crate::http::openapi::Envelope), (status = 400, description = "Invalid limit", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "Missing or invalid token", body = crate::http::openapi::ErrorEnvelope), (status = 429, description = "Rate limited", body = crate::http::openapi::ErrorEnvelope)),
)]
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

#[utoipa::path(
    post,
    path = "/api/users/device",
    tag = "users", summary = "Register this device",
    security(("bearer" = [])),
    request_body = crate::http::openapi::DeviceRequest,
    responses((status = 200, description = "The device is recorded", body = crate::http::openapi::Envelope), (status = 400, description = "Invalid device id", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "Missing or invalid token", body = crate::http::openapi::ErrorEnvelope), (status = 429, description = "Rate limited", body = crate::http::openapi::ErrorEnvelope)),
)]
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

#[utoipa::path(
    get,
    path = "/api/users/stats",
    tag = "users", summary = "Account and presence counts",
    security(("bearer" = [])),
    responses((status = 200, description = "Account and presence counts", body = crate::http::openapi::Envelope), (status = 401, description = "Missing or invalid token", body = crate::http::openapi::ErrorEnvelope), (status = 429, description = "Rate limited", body = crate::http::openapi::ErrorEnvelope)),
)]
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
