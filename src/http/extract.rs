//! Request extractors: the bearer token's claims, and the client address.

use std::net::IpAddr;

use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, header, request::Parts},
};

use crate::{
    AppState,
    auth::Claims,
    error::AppError,
    store::{StoreResult, User},
};

/// The claims of a valid `Authorization: Bearer <token>` and the account
/// they name: a well-signed token of a deleted (or expired guest) account
/// is refused with 401 `invalid_token`. The account is an error while the
/// store is unreachable.
async fn verify(parts: &Parts, state: &AppState) -> Result<(Claims, StoreResult<User>), AppError> {
    let token = bearer(&parts.headers)?;
    let claims = state
        .accounts
        .jwt
        .verify(token)
        .map_err(|e| AppError::unauthorized(e.code(), e.to_string()))?;
    match state.accounts.store.user_by_id(&claims.sub).await {
        Ok(Some(user)) => Ok((claims, Ok(user))),
        Ok(None) => Err(AppError::unauthorized(
            "invalid_token",
            "the account no longer exists",
        )),
        Err(e) => Ok((claims, Err(e))),
    }
}

/// The verified claims of `Authorization: Bearer <token>`, for an account
/// that still exists. While the store is unreachable the token alone is
/// trusted, so token-only routes keep working through a store outage.
pub struct AuthUser(pub Claims);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let (claims, account) = verify(parts, state).await?;
        if let Err(e) = account {
            tracing::debug!(error = %e, "account check skipped: store unavailable");
        }
        Ok(AuthUser(claims))
    }
}

/// The account of a valid Bearer token, read once (503 while the store is
/// unreachable).
pub struct AuthAccount(pub User);

impl FromRequestParts<AppState> for AuthAccount {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let (_, account) = verify(parts, state).await?;
        Ok(AuthAccount(account?))
    }
}

/// The token of an `Authorization: Bearer` header.
pub fn bearer(headers: &HeaderMap) -> Result<&str, AppError> {
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        AppError::unauthorized("unauthorized", "missing Authorization: Bearer token")
    })?;
    let value = value
        .to_str()
        .map_err(|_| AppError::unauthorized("invalid_token", "the token is invalid"))?;
    crate::auth::bearer_value(value).ok_or_else(|| {
        AppError::unauthorized(
            "invalid_token",
            "the Authorization header must be 'Bearer <token>'",
        )
    })
}

pub use crate::net::client_ip;

/// The client address as [`client_ip`] finds it.
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(
            &parts.headers,
            &parts.extensions,
            state.config.trust_proxy,
        )))
    }
}

/// The `X-Device-Id` header a client may send with auth requests (the id
/// it registers with `POST /api/users/device`): a ban covers it.
pub struct DeviceHeader(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for DeviceHeader {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(DeviceHeader(
            parts
                .headers
                .get("x-device-id")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.len() <= 128)
                .map(str::to_string),
        ))
    }
}
