//! `/admin/*`: the moderator API. Requests carry `X-Admin-Key` equal to
//! `ADMIN_KEY`; without `ADMIN_KEY` the whole API answers 404. A wrong key
//! is 401 `invalid_admin_key` and counts against the client's auth rate
//! limit (429 once over it). Every action goes to the audit log.

use std::time::Duration;

use axum::{
    Json,
    extract::{Path, Request, State},
    middleware::{Next, from_fn_with_state},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    config::DurationArg,
    error::{ApiQuery, AppError, JsonObject, ok},
    safety::Actor,
};

const BAN_REASON_MAX: usize = 500;
const AUDIT_DEFAULT: usize = 50;
const AUDIT_MAX: usize = 500;

pub fn router(state: &AppState) -> OpenApiRouter<AppState> {
    use super::metrics::{__path_admin_metrics, __path_prometheus, admin_metrics, prometheus};
    OpenApiRouter::new()
        .routes(routes!(ban, unban))
        .routes(routes!(kick))
        .routes(routes!(audit))
        .routes(routes!(reports))
        .routes(routes!(resolve))
        .routes(routes!(admin_metrics))
        .routes(routes!(prometheus))
        .merge(super::rooms::admin_router())
        .route_layer(from_fn_with_state(state.clone(), gate))
}

/// Lets through requests with the right key.
async fn gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(key) = state.config.admin_key.as_deref() else {
        return AppError::NotFound(format!("no route for {}", req.uri().path())).into_response();
    };
    let given = req
        .headers()
        .get("x-admin-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Digests compared, so the time taken says nothing about the key.
    if Sha256::digest(given.as_bytes()) == Sha256::digest(key.as_bytes()) {
        return next.run(req).await;
    }
    let ip = super::client_ip(req.headers(), req.extensions(), state.config.trust_proxy)
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "unknown".into());
    let d = state
        .limiter
        .hit(
            &format!("auth:{ip}"),
            state.config.rate_limit_auth_max,
            state.config.rate_limit_window.0,
        )
        .await;
    tracing::warn!(%ip, "admin request with a wrong key");
    if !d.allowed {
        return AppError::RateLimited {
            retry_after: d.reset_in.as_secs().max(1),
        }
        .into_response();
    }
    AppError::unauthorized("invalid_admin_key", "X-Admin-Key is missing or wrong").into_response()
}

async fn existing_user(state: &AppState, id: &str) -> Result<(), AppError> {
    match state.accounts.store.user_by_id(id).await? {
        Some(_) => Ok(()),
        None => Err(AppError::NotFound(format!("no user {id}"))),
    }
}

/// `duration`: seconds, or a string like `30m`, `24h`, `7d`; absent, the
/// policy's next step (BAN_DURATION, then 4× the last ban, up to BAN_MAX).
fn duration(body: &JsonObject) -> Result<Option<Duration>, AppError> {
    let bad = || {
        AppError::validation(
            "duration",
            "duration must be seconds or a duration like 30m, 24h or 7d",
        )
    };
    let d = match body.0.get("duration") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => Duration::from_secs(n.as_u64().ok_or_else(bad)?),
        Some(Value::String(s)) => s.parse::<DurationArg>().map_err(|_| bad())?.0,
        Some(_) => return Err(bad()),
    };
    if d.is_zero() {
        return Err(bad());
    }
    Ok(Some(d))
}

#[utoipa::path(
    post,
    path = "/admin/users/{id}/ban",
    tag = "admin", summary = "Ban a user",
    security(("adminKey" = [])),
    params(("id" = String, Path, description = "User id")),
    request_body = crate::http::openapi::BanRequest,
    responses((status = 200, description = "{ban}", body = crate::http::openapi::Envelope), (status = 400, description = "Bad duration or reason", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "Wrong or missing key", body = crate::http::openapi::ErrorEnvelope), (status = 404, description = "No such user, or ADMIN_KEY is not set", body = crate::http::openapi::ErrorEnvelope)),
)]
async fn ban(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: JsonObject,
) -> Result<Json<Value>, AppError> {
    let duration = duration(&body)?;
    let reason = body.opt_str("reason")?.unwrap_or("moderator").trim();
    if reason.is_empty() || reason.chars().count() > BAN_REASON_MAX {
        return Err(AppError::validation(
            "reason",
            format!("reason must be 1 to {BAN_REASON_MAX} characters"),
        ));
    }
    existing_user(&state, &id).await?;
    let b = state
        .safety
        .ban(
            state.accounts.store.as_ref(),
            &id,
            duration,
            reason,
            Actor::Admin,
        )
        .await?;
    Ok(ok(
        "User banned",
        json!({ "userId": id, "until": b.until, "reason": b.reason, "durationSeconds": b.duration_s, "count": b.count }),
    ))
}

#[utoipa::path(
    delete,
    path = "/admin/users/{id}/ban",
    tag = "admin", summary = "Lift a ban",
    security(("adminKey" = [])),
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "{lifted}", body = crate::http::openapi::Envelope), (status = 401, description = "Wrong or missing key", body = crate::http::openapi::ErrorEnvelope), (status = 404, description = "No such user, or ADMIN_KEY is not set", body = crate::http::openapi::ErrorEnvelope)),
)]
async fn unban(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    existing_user(&state, &id).await?;
    let lifted = state
        .safety
        .lift(state.accounts.store.as_ref(), &id, Actor::Admin)
        .await?;
    Ok(ok("Ban lifted", json!({ "userId": id, "lifted": lifted })))
}

#[utoipa::path(
    post,
    path = "/admin/users/{id}/kick",
    tag = "admin", summary = "Disconnect a user's sockets",
    security(("adminKey" = [])),
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, description = "{kicked: sockets disconnected}", body = crate::http::openapi::Envelope), (status = 401, description = "Wrong or missing key", body = crate::http::openapi::ErrorEnvelope), (status = 404, description = "No such user, or ADMIN_KEY is not set", body = crate::http::openapi::ErrorEnvelope)),
)]
async fn kick(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, AppError> {
    existing_user(&state, &id).await?;
    state
        .safety
        .kick(state.accounts.store.as_ref(), &id, Actor::Admin)
        .await;
    Ok(ok("User kicked", json!({ "userId": id })))
}

/// A page of at most `limit` from `limit + 1` fetched, and the cursor of
/// the next page (the last item's id) when there is one.
fn page<T>(
    mut items: Vec<T>,
    limit: usize,
    id: impl Fn(&T) -> &String,
) -> (Vec<T>, Option<String>) {
    if items.len() <= limit {
        return (items, None);
    }
    items.truncate(limit);
    let next = items.last().map(|x| id(x).clone());
    (items, next)
}

#[derive(Deserialize)]
struct ReportsQuery {
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<usize>,
}

/// Newest first, with their evidence; `status` is `open` or `resolved`.
#[utoipa::path(
    get,
    path = "/admin/reports",
    tag = "admin", summary = "Reports, newest first",
    security(("adminKey" = [])),
    params(("status" = Option<String>, Query, description = "open or resolved"), ("cursor" = Option<String>, Query, description = "nextCursor of the previous page"), ("limit" = Option<usize>, Query, description = "1-500, default 50")),
    responses((status = 200, description = "{reports, nextCursor}", body = crate::http::openapi::Envelope), (status = 400, description = "Bad status", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "Wrong or missing key", body = crate::http::openapi::ErrorEnvelope), (status = 404, description = "ADMIN_KEY is not set", body = crate::http::openapi::ErrorEnvelope)),
)]
async fn reports(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ReportsQuery>,
) -> Result<Json<Value>, AppError> {
    if let Some(s) = &q.status
        && s != "open"
        && s != "resolved"
    {
        return Err(AppError::BadRequest(
            "status must be open or resolved".into(),
        ));
    }
    let limit = q.limit.unwrap_or(AUDIT_DEFAULT).clamp(1, AUDIT_MAX);
    let reports = state
        .accounts
        .store
        .list_reports(q.status, q.cursor, limit + 1)
        .await?;
    let (reports, next) = page(reports, limit, |r| &r.id);
    Ok(ok(
        "Reports",
        json!({ "reports": reports, "nextCursor": next }),
    ))
}

/// `{action: "dismiss"|"ban"|"warn", duration?}`.
#[utoipa::path(
    post,
    path = "/admin/reports/{id}/resolve",
    tag = "admin", summary = "Resolve a report",
    security(("adminKey" = [])),
    params(("id" = String, Path, description = "Report id")),
    request_body = crate::http::openapi::ResolveRequest,
    responses((status = 200, description = "{report, bannedUntil}", body = crate::http::openapi::Envelope), (status = 400, description = "Bad action or duration", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "Wrong or missing key", body = crate::http::openapi::ErrorEnvelope), (status = 404, description = "No such open report, or ADMIN_KEY is not set", body = crate::http::openapi::ErrorEnvelope)),
)]
async fn resolve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: JsonObject,
) -> Result<Json<Value>, AppError> {
    let action = body.str("action")?;
    if !["dismiss", "ban", "warn"].contains(&action) {
        return Err(AppError::validation(
            "action",
            "action must be dismiss, ban or warn",
        ));
    }
    let duration = duration(&body)?;
    let Some((report, ban)) = state
        .safety
        .resolve(state.accounts.store.as_ref(), &id, action, duration)
        .await?
    else {
        return Err(AppError::NotFound(format!("no open report {id}")));
    };
    Ok(ok(
        "Report resolved",
        json!({ "report": report, "bannedUntil": ban.map(|b| b.until) }),
    ))
}

#[derive(Deserialize)]
struct AuditQuery {
    cursor: Option<String>,
    limit: Option<usize>,
}

/// Newest first; `nextCursor` (when more remain) is passed back as `cursor`.
#[utoipa::path(
    get,
    path = "/admin/audit",
    tag = "admin", summary = "The moderation audit log",
    security(("adminKey" = [])),
    params(("cursor" = Option<String>, Query, description = "nextCursor of the previous page"), ("limit" = Option<usize>, Query, description = "1-500, default 50")),
    responses((status = 200, description = "{entries, nextCursor}", body = crate::http::openapi::Envelope), (status = 401, description = "Wrong or missing key", body = crate::http::openapi::ErrorEnvelope), (status = 404, description = "ADMIN_KEY is not set", body = crate::http::openapi::ErrorEnvelope)),
)]
async fn audit(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<Value>, AppError> {
    let limit = q.limit.unwrap_or(AUDIT_DEFAULT).clamp(1, AUDIT_MAX);
    let entries = state.accounts.store.audit_log(q.cursor, limit + 1).await?;
    let (entries, next) = page(entries, limit, |e| &e.id);
    Ok(ok(
        "Audit log",
        json!({ "entries": entries, "nextCursor": next }),
    ))
}
