//! `/admin/*`: the moderator API. Requests carry `X-Admin-Key` equal to
//! `ADMIN_KEY`; without `ADMIN_KEY` the whole API answers 404. A wrong key
//! is 401 `invalid_admin_key` and counts against the client's auth rate
//! limit (429 once over it). Every action goes to the audit log.

use std::time::Duration;

use axum::{
    Json, Router,
    extract::{Path, Request, State},
    middleware::{Next, from_fn_with_state},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    AppState,
    config::DurationArg,
    error::{ApiQuery, AppError, JsonObject, ok},
    safety::Actor,
};

const BAN_REASON_MAX: usize = 500;
const AUDIT_DEFAULT: usize = 50;
const AUDIT_MAX: usize = 500;

pub fn router(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/admin/users/{id}/ban", post(ban).delete(unban))
        .route("/admin/users/{id}/kick", post(kick))
        .route("/admin/audit", get(audit))
        .route("/admin/reports", get(reports))
        .route("/admin/reports/{id}/resolve", post(resolve))
        .route("/admin/metrics", get(super::metrics::admin_metrics))
        .route("/metrics", get(super::metrics::prometheus))
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
