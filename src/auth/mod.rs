//! Accounts: credential rules, password hashing, access and refresh tokens.

pub mod jwt;
pub mod password;
pub mod rules;

pub use jwt::{Claims, JwtKeys, TokenError};
