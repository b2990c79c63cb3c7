//! bcrypt, always off the reactor.

use crate::error::AppError;

/// A hash to verify against when the account does not exist, so that an
/// unknown email costs the same time as a wrong password.
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

pub async fn hash(password: String, cost: u32) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
        .await
        .map_err(|e| AppError::Internal(format!("hash task: {e}")))?
        .map_err(|e| AppError::Internal(format!("bcrypt: {e}")))
}

/// Verifies `password` against `hash`, or against a dummy hash of the same
/// cost when there is no account.
pub async fn verify(password: String, hash: Option<String>, cost: u32) -> Result<bool, AppError> {
    tokio::task::spawn_blocking(move || {
        let (hash, real) = match hash {
            Some(h) => (h, true),
            None => (
                DUMMY_HASH
                    .get_or_init(|| bcrypt::hash("not-a-real-password-1", cost).unwrap_or_default())
                    .clone(),
                false,
            ),
        };
        Ok(bcrypt::verify(password, &hash).unwrap_or(false) && real)
    })
    .await
    .map_err(|e| AppError::Internal(format!("verify task: {e}")))?
}
