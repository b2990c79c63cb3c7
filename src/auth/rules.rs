//! The rules for usernames, emails and passwords, as plain functions.

use crate::error::AppError;

pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 30;
pub const PASSWORD_MIN: usize = 8;
/// bcrypt reads at most 72 bytes; longer passwords are refused, not cut.
pub const PASSWORD_MAX_BYTES: usize = 72;

pub fn username(raw: &str) -> Result<String, AppError> {
    let u = raw.trim();
    let len = u.chars().count();
    if !(USERNAME_MIN..=USERNAME_MAX).contains(&len) {
        return Err(AppError::validation(
            "username",
            format!("username must be {USERNAME_MIN} to {USERNAME_MAX} characters"),
        ));
    }
    if !u.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(AppError::validation(
            "username",
            "username may contain only letters, digits and underscores",
        ));
    }
    Ok(u.to_string())
}

/// A pragmatic address check: one `@`, a non-empty local part, a dotted
/// domain, no spaces, at most 254 characters. Returned lower-cased.
pub fn email(raw: &str) -> Result<String, AppError> {
    let e = raw.trim();
    let bad = || AppError::validation("email", "email must be a valid email address");
    if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = e.split_once('@').ok_or_else(bad)?;
    if local.is_empty() || local.len() > 64 || domain.contains('@') {
        return Err(bad());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels.iter().any(|l| {
            l.is_empty()
                || l.starts_with('-')
                || l.ends_with('-')
                || !l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
    {
        return Err(bad());
    }
    Ok(e.to_lowercase())
}

pub fn password(p: &str) -> Result<(), AppError> {
    if p.chars().count() < PASSWORD_MIN {
        return Err(AppError::validation(
            "password",
            format!("password must be at least {PASSWORD_MIN} characters"),
        ));
    }
    if p.len() > PASSWORD_MAX_BYTES {
        return Err(AppError::validation(
            "password",
            format!("password must be at most {PASSWORD_MAX_BYTES} bytes"),
        ));
    }
    if !p.chars().any(char::is_alphabetic) || !p.chars().any(|c| c.is_ascii_digit()) {
        return Err(AppError::validation(
            "password",
            "password must contain a letter and a digit",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(username(" Alice_1 ").unwrap(), "Alice_1");
        for bad in [
            "ab",
            "a b c",
            "way_too_long_username_over_30_chars",
            "héllo",
            "x-y-z",
        ] {
            assert!(username(bad).is_err(), "{bad}");
        }
        assert!(username(&"a".repeat(30)).is_ok());
    }

    #[test]
    fn emails() {
        assert_eq!(email("Bob@Example.COM").unwrap(), "bob@example.com");
        for bad in [
            "",
            "bob",
            "bob@",
            "@x.io",
            "bob@localhost",
            "a b@x.io",
            "bob@x..io",
            "a@b@c.io",
            "bob@-x.io",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords() {
        assert!(password("Password1").is_ok());
        assert!(password("short1").is_err());
        assert!(password("longenoughbutnodigit").is_err());
        assert!(password("1234567890").is_err());
        assert!(password(&format!("a1{}", "x".repeat(80))).is_err());
    }
}
