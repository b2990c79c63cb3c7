//! Accounts: credential rules, password hashing, access and refresh tokens.

pub mod jwt;
pub mod password;
pub mod rules;

pub use jwt::{Claims, JwtKeys, TokenError};

/// The token of an `Authorization: Bearer <token>` header value, if it is
/// well formed (shared by REST and the Socket.IO handshake).
pub fn bearer_value(value: &str) -> Option<&str> {
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Some(token.trim())
        }
        _ => None,
    }
}
