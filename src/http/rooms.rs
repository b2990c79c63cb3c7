//! Lounges over REST: the rooms (no auth), a room's history by cursor
//! (Bearer), and the moderator's deletes and removals (`X-Admin-Key`).

use axum::{
    Json,
    extract::{Path, State},
};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AuthUser;
use crate::{
    AppState,
    error::{ApiQuery, AppError, ok},
    lounges::{self, PAGE_MAX, bus::BusEvent},
    safety::{Actor, audit},
    store::Author,
};

/// Page size of history when none is asked.
const PAGE_DEFAULT: usize = 50;

/// Public: the rooms and their members.
pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one))
}

/// Bearer: history.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(messages))
}

/// Behind the admin gate.
pub fn admin_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(delete_message))
        .routes(routes!(remove_member))
}

fn room_or_404<'a>(state: &'a AppState, id: &str) -> Result<&'a lounges::Room, AppError> {
    state
        .lounges
        .room(id)
        .ok_or_else(|| AppError::NotFound(format!("no room {id}")))
}

#[utoipa::path(
    get, path = "/api/rooms", tag = "rooms", summary = "The lounges' rooms with the members online",
    security(()),
    responses((status = 200, description = "{rooms: [{id, lounge, language, members}]}", body = crate::http::openapi::Envelope)),
)]
async fn list(State(state): State<AppState>) -> Json<Value> {
    let rooms: Vec<Value> = state
        .lounges
        .rooms
        .iter()
        .map(|r| state.lounges.room_json(r))
        .collect();
    ok("Rooms", json!({ "rooms": rooms }))
}

#[utoipa::path(
    get, path = "/api/rooms/{id}", tag = "rooms", summary = "One room",
    security(()),
    params(("id" = String, Path, description = "Room id, `<lounge>-<language>`")),
    responses(
        (status = 200, description = "{id, lounge, language, members, slowModeSeconds, epoch, offset}", body = crate::http::openapi::Envelope),
        (status = 404, description = "No such room", body = crate::http::openapi::ErrorEnvelope),
    ),
)]
async fn one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    let r = room_or_404(&state, &id)?;
    let st = state.accounts.store.room_state(&r.id).await?;
    let mut v = state.lounges.room_detail(r);
    v["epoch"] = json!(st.epoch);
    v["offset"] = json!(st.last_offset);
    Ok(ok("Room", v))
}

#[derive(Deserialize)]
struct PageQuery {
    before: Option<String>,
    limit: Option<usize>,
}

#[utoipa::path(
    get, path = "/api/rooms/{id}/messages", tag = "rooms", summary = "A room's history, newest first",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Room id"),
        ("before" = Option<String>, Query, description = "nextCursor of the previous page; absent: the newest"),
        ("limit" = Option<usize>, Query, description = "1-100, default 50"),
    ),
    responses(
        (status = 200, description = "{messages (newest first), nextCursor (null at the oldest)}", body = crate::http::openapi::Envelope),
        (status = 400, description = "Bad cursor or limit", body = crate::http::openapi::ErrorEnvelope),
        (status = 401, description = "Missing or invalid token", body = crate::http::openapi::ErrorEnvelope),
        (status = 404, description = "No such room", body = crate::http::openapi::ErrorEnvelope),
        (status = 429, description = "Rate limited", body = crate::http::openapi::ErrorEnvelope),
    ),
)]
async fn messages(
    State(state): State<AppState>,
    AuthUser(_): AuthUser,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Value>, AppError> {
    let r = room_or_404(&state, &id)?;
    let limit = q.limit.unwrap_or(PAGE_DEFAULT);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(AppError::validation(
            "limit",
            format!("limit must be 1 to {PAGE_MAX}"),
        ));
    }
    let before = match &q.before {
        None => None,
        Some(c) => Some(
            lounges::decode_cursor(c)
                .ok_or_else(|| AppError::validation("before", "not a cursor this API gave"))?,
        ),
    };
    let mut page = state
        .accounts
        .store
        .room_messages_before(&r.id, before, limit + 1)
        .await?;
    let more = page.len() > limit;
    page.truncate(limit);
    let next = if more {
        page.last().map(|m| lounges::encode_cursor(m.offset))
    } else {
        None
    };
    Ok(ok(
        "Room messages",
        json!({ "messages": page, "nextCursor": next }),
    ))
}

#[utoipa::path(
    delete, path = "/admin/rooms/{roomId}/messages/{messageId}", tag = "admin", summary = "Delete a room message",
    security(("adminKey" = [])),
    params(("roomId" = String, Path, description = "Room id"), ("messageId" = String, Path, description = "The message's id")),
    responses(
        (status = 200, description = "{deleted: messageId}; members get room:message-deleted", body = crate::http::openapi::Envelope),
        (status = 401, description = "Wrong or missing key", body = crate::http::openapi::ErrorEnvelope),
        (status = 404, description = "No such room or message, or ADMIN_KEY is not set", body = crate::http::openapi::ErrorEnvelope),
    ),
)]
async fn delete_message(
    State(state): State<AppState>,
    Path((room_id, message_id)): Path<(String, String)>,
) -> Result<Json<Value>, AppError> {
    let r = room_or_404(&state, &room_id)?;
    let offset = match lounges::parse_message_id(&message_id) {
        Some((room, offset)) if room == r.id => offset,
        _ => {
            return Err(AppError::NotFound(format!(
                "no message {message_id} in {room_id}"
            )));
        }
    };
    let store = state.accounts.store.as_ref();
    let removed = store
        .delete_room_message(&r.id, offset)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no message {message_id} in {room_id}")))?;
    if let Err(e) = state
        .lounges
        .send(BusEvent::Deleted {
            room: r.id.clone(),
            id: message_id.clone(),
        })
        .await
    {
        tracing::warn!(error = %e, "members not told of a deleted message");
    }
    audit(
        store,
        Actor::Admin,
        "delete_room_message",
        Some(&removed.from.id),
        json!({ "roomId": r.id, "messageId": message_id, "content": removed.content }),
    )
    .await;
    Ok(ok("Message deleted", json!({ "deleted": message_id })))
}

#[utoipa::path(
    delete, path = "/admin/rooms/{roomId}/members/{userId}", tag = "admin", summary = "Remove a user from a room",
    security(("adminKey" = [])),
    params(("roomId" = String, Path, description = "Room id"), ("userId" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "{removed: userId}; the room and the user get room:left with removed: true", body = crate::http::openapi::Envelope),
        (status = 401, description = "Wrong or missing key", body = crate::http::openapi::ErrorEnvelope),
        (status = 404, description = "No such room or user, or ADMIN_KEY is not set", body = crate::http::openapi::ErrorEnvelope),
    ),
)]
async fn remove_member(
    State(state): State<AppState>,
    Path((room_id, user_id)): Path<(String, String)>,
) -> Result<Json<Value>, AppError> {
    let r = room_or_404(&state, &room_id)?;
    let store = state.accounts.store.as_ref();
    let user = store
        .user_by_id(&user_id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no user {user_id}")))?;
    state
        .lounges
        .send(BusEvent::Removed {
            room: r.id.clone(),
            user: Author {
                id: user.id.clone(),
                username: user.username.clone(),
            },
        })
        .await
        .map_err(|e| AppError::Unavailable(e.to_string()))?;
    audit(
        store,
        Actor::Admin,
        "remove_from_room",
        Some(&user.id),
        json!({ "roomId": r.id }),
    )
    .await;
    Ok(ok("Removed from the room", json!({ "removed": user.id })))
}
