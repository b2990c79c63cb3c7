//! `/api/auth/*`: register, login, guest, refresh, logout, me.

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Utc;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{
    AuthAccount,
    extract::{ClientIp, DeviceHeader},
    users::user_json,
};
use crate::{
    AppState,
    auth::{password, rules},
    error::{AppError, JsonObject, ok},
    safety::Origin,
    store::{NewUser, RefreshRecord, StoreError, User},
};

/// 403 `banned` if a ban covers the account (when known), the device or
/// the address.
async fn admit(
    state: &AppState,
    user: Option<&str>,
    ip: &ClientIp,
    device: &DeviceHeader,
) -> Result<(), AppError> {
    let origin = Origin {
        user,
        ip: ip.0,
        device: device.0.as_deref(),
    };
    state
        .safety
        .admit(state.accounts.store.as_ref(), &origin)
        .await
}

/// 400 `username_not_allowed` when the profanity filter refuses it.
fn allowed_username(state: &AppState, name: String) -> Result<String, AppError> {
    if state.safety.filters.username_allowed(&name) {
        Ok(name)
    } else {
        Err(AppError::NotAllowed {
            code: "username_not_allowed",
            field: "username",
            message: "this username is not allowed".into(),
        })
    }
}

/// Creates an access token and a stored single-use refresh token (which
/// keeps the HMAC of the client's address: a ban of the account covers it).
async fn session(state: &AppState, user: &User, ip: &ClientIp) -> Result<Value, AppError> {
    let token = state
        .accounts
        .jwt
        .issue(&user.id, &user.username, user.is_guest);
    let refresh_bytes: [u8; 32] = rand::random();
    let refresh = URL_SAFE_NO_PAD.encode(refresh_bytes);
    let expires_at = Utc::now()
        + chrono::Duration::from_std(state.config.refresh_expires_in.0)
            .unwrap_or(chrono::Duration::days(30));
    state
        .accounts
        .store
        .insert_refresh(
            &refresh_hash(&refresh),
            RefreshRecord {
                user_id: user.id.clone(),
                expires_at,
                ip: state.safety.ip_hash(ip.0),
            },
        )
        .await?;
    let online = is_online(state, &user.id).await;
    Ok(json!({
        "token": token,
        "refreshToken": refresh,
        "expiresIn": state.accounts.jwt.ttl().as_secs(),
        "user": user_json(user, true, online),
    }))
}

/// Whether the user has a socket anywhere (best effort: false if presence
/// cannot say).
async fn is_online(state: &AppState, user_id: &str) -> bool {
    matches!(state.call.presence.get(user_id).await, Ok(Some(_)))
}

fn refresh_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[utoipa::path(
    post,
    path = "/api/auth/register",
    tag = "accounts", summary = "Register an account", security(()),
    request_body = crate::http::openapi::RegisterRequest,
    responses((status = 201, description = "Registered: {user, token, refreshToken}", body = crate::http::openapi::Envelope), (status = 400, description = "Invalid input", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Banned (with until)", body = crate::http::openapi::ErrorEnvelope), (status = 409, description = "Username or email taken", body = crate::http::openapi::ErrorEnvelope), (status = 429, description = "Rate limited", body = crate::http::openapi::ErrorEnvelope), (status = 503, description = "Too many password hashes waiting", body = crate::http::openapi::ErrorEnvelope)),
)]
pub async fn register(
    State(state): State<AppState>,
    ip: ClientIp,
    device: DeviceHeader,
    body: JsonObject,
) -> Result<impl IntoResponse, AppError> {
    let username = allowed_username(&state, rules::username(body.str("username")?)?)?;
    let email = rules::email(body.str("email")?)?;
    let pass = body.str("password")?;
    rules::password(pass)?;
    admit(&state, None, &ip, &device).await?;
    let hash = password::hash(pass.to_string(), state.config.bcrypt_cost).await?;
    let user = state
        .accounts
        .store
        .create_user(NewUser {
            username,
            email: Some(email),
            password_hash: Some(hash),
            is_guest: false,
        })
        .await?;
    tracing::info!(user = %user.id, "registered");
    let data = session(&state, &user, &ip).await?;
    Ok((
        StatusCode::CREATED,
        ok("User registered successfully", data),
    ))
}

#[utoipa::path(
    post,
    path = "/api/auth/login",
    tag = "accounts", summary = "Log in with email and password", security(()),
    request_body = crate::http::openapi::LoginRequest,
    responses((status = 200, description = "Logged in: {user, token, refreshToken}", body = crate::http::openapi::Envelope), (status = 400, description = "Invalid input", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "Wrong email or password", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Banned", body = crate::http::openapi::ErrorEnvelope), (status = 429, description = "Rate limited", body = crate::http::openapi::ErrorEnvelope), (status = 503, description = "Too many password hashes waiting", body = crate::http::openapi::ErrorEnvelope)),
)]
pub async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    device: DeviceHeader,
    body: JsonObject,
) -> Result<Json<Value>, AppError> {
    let email = body.str("email")?.trim().to_lowercase();
    let pass = body.str("password")?.to_string();
    let user = state.accounts.store.user_by_email(&email).await?;
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    let valid = password::verify(pass, hash, state.config.bcrypt_cost).await?;
    let Some(user) = user.filter(|_| valid) else {
        return Err(AppError::unauthorized(
            "invalid_credentials",
            "invalid email or password",
        ));
    };
    admit(&state, Some(&user.id), &ip, &device).await?;
    tracing::info!(user = %user.id, "logged in");
    Ok(ok("Login successful", session(&state, &user, &ip).await?))
}

/// A guest account: no email, no password; optional chosen username.
#[utoipa::path(
    post,
    path = "/api/auth/guest",
    tag = "accounts", summary = "Create a guest account", security(()),
    request_body = crate::http::openapi::GuestRequest,
    responses((status = 201, description = "A guest account: {user, token, refreshToken}", body = crate::http::openapi::Envelope), (status = 400, description = "Invalid or refused username", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Banned device or address", body = crate::http::openapi::ErrorEnvelope), (status = 409, description = "Username taken", body = crate::http::openapi::ErrorEnvelope), (status = 429, description = "Rate limited", body = crate::http::openapi::ErrorEnvelope)),
)]
pub async fn guest(
    State(state): State<AppState>,
    ip: ClientIp,
    device: DeviceHeader,
    body: JsonObject,
) -> Result<impl IntoResponse, AppError> {
    let chosen = body
        .opt_str("username")?
        .map(rules::username)
        .transpose()?
        .map(|u| allowed_username(&state, u))
        .transpose()?;
    admit(&state, None, &ip, &device).await?;
    let mut attempts = 0;
    let user = loop {
        let username = match &chosen {
            Some(u) => u.clone(),
            None => generated_guest_name(),
        };
        let new = NewUser {
            username,
            email: None,
            password_hash: None,
            is_guest: true,
        };
        match state.accounts.store.create_user(new).await {
            Ok(u) => break u,
            Err(StoreError::Conflict(_)) if chosen.is_none() && attempts < 5 => attempts += 1,
            Err(e) => return Err(e.into()),
        }
    };
    tracing::info!(user = %user.id, "guest created");
    let data = session(&state, &user, &ip).await?;
    Ok((StatusCode::CREATED, ok("Guest session created", data)))
}

fn generated_guest_name() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let bytes: [u8; 8] = rand::random();
    let suffix: String = bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    format!("guest_{suffix}")
}

/// Exchanges a refresh token for a new pair; the old one is spent.
#[utoipa::path(
    post,
    path = "/api/auth/refresh",
    tag = "accounts", summary = "Exchange a refresh token for new tokens", security(()),
    request_body = crate::http::openapi::RefreshRequest,
    responses((status = 200, description = "New tokens (the refresh token rotates)", body = crate::http::openapi::Envelope), (status = 400, description = "Invalid input", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "Unknown, used or expired refresh token", body = crate::http::openapi::ErrorEnvelope), (status = 403, description = "Banned", body = crate::http::openapi::ErrorEnvelope), (status = 429, description = "Rate limited", body = crate::http::openapi::ErrorEnvelope)),
)]
pub async fn refresh(
    State(state): State<AppState>,
    ip: ClientIp,
    device: DeviceHeader,
    body: JsonObject,
) -> Result<Json<Value>, AppError> {
    let token = body.str("refreshToken")?;
    let invalid = || {
        AppError::unauthorized(
            "invalid_refresh_token",
            "the refresh token is invalid, used or revoked",
        )
    };
    let hash = refresh_hash(token);
    let record = state
        .accounts
        .store
        .take_refresh(&hash)
        .await?
        .ok_or_else(invalid)?;
    if record.expires_at <= Utc::now() {
        return Err(AppError::unauthorized(
            "invalid_refresh_token",
            "the refresh token has expired",
        ));
    }
    let user = state
        .accounts
        .store
        .user_by_id(&record.user_id)
        .await?
        .ok_or_else(invalid)?;
    if let Err(e) = admit(&state, Some(&user.id), &ip, &device).await {
        // Banned: the token stays usable once the ban ends.
        state.accounts.store.insert_refresh(&hash, record).await?;
        return Err(e);
    }
    Ok(ok("Token refreshed", session(&state, &user, &ip).await?))
}

/// Revokes a refresh token. Idempotent: an unknown token is not an error.
#[utoipa::path(
    post,
    path = "/api/auth/logout",
    tag = "accounts", summary = "Revoke a refresh token", security(()),
    request_body = crate::http::openapi::RefreshRequest,
    responses((status = 200, description = "The refresh token is revoked", body = crate::http::openapi::Envelope), (status = 400, description = "Invalid input", body = crate::http::openapi::ErrorEnvelope), (status = 429, description = "Rate limited", body = crate::http::openapi::ErrorEnvelope)),
)]
pub async fn logout(
    State(state): State<AppState>,
    body: JsonObject,
) -> Result<Json<Value>, AppError> {
    let token = body.str("refreshToken")?;
    state
        .accounts
        .store
        .take_refresh(&refresh_hash(token))
        .await?;
    Ok(ok("Logged out", Value::Null))
}

#[utoipa::path(
    get,
    path = "/api/auth/me",
    tag = "accounts", summary = "The current account",
    security(("bearer" = [])),
    responses((status = 200, description = "The current account", body = crate::http::openapi::Envelope), (status = 401, description = "Missing or invalid token", body = crate::http::openapi::ErrorEnvelope), (status = 429, description = "Rate limited", body = crate::http::openapi::ErrorEnvelope)),
)]
pub async fn me(
    State(state): State<AppState>,
    AuthAccount(user): AuthAccount,
) -> Result<Json<Value>, AppError> {
    let online = is_online(&state, &user.id).await;
    Ok(ok(
        "Current user",
        json!({ "user": user_json(&user, true, online) }),
    ))
}
