//! Safety: bans, and who is let in. The rules are plain data in
//! [`rules`]; [`Safety`] runs them against the account store (shared by a
//! cluster's nodes) and the live sessions (through [`Sessions`], which the
//! Socket.IO layer provides), so one node and a cluster behave the same.

use std::{
    net::IpAddr,
    sync::{Arc, OnceLock},
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::{
    error::AppError,
    store::{AuditEntry, BanRecord, StoreError, StoreResult, UserStore, new_id},
};

pub mod rules;

pub use rules::{BanPolicy, IpKey};

/// What the Socket.IO layer does for safety: reach a user's sockets on
/// whichever node they are.
#[async_trait]
pub trait Sessions: Send + Sync + 'static {
    /// Sends `moderation:banned {until, reason}` to the user's sockets,
    /// then disconnects them.
    async fn banned(&self, user_id: &str, until: DateTime<Utc>, reason: &str);
    /// Disconnects the user's sockets.
    async fn kick(&self, user_id: &str);
}

/// Who did a moderation action, for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Admin,
    /// The server itself (an automatic ban).
    System,
}

impl Actor {
    fn as_str(self) -> &'static str {
        match self {
            Actor::Admin => "admin",
            Actor::System => "system",
        }
    }
}

/// Where a request comes from: what a ban may cover.
#[derive(Debug, Clone, Default)]
pub struct Origin<'a> {
    pub user: Option<&'a str>,
    pub ip: Option<IpAddr>,
    pub device: Option<&'a str>,
}

pub struct Safety {
    pub ip_key: IpKey,
    pub policy: BanPolicy,
    sessions: OnceLock<Arc<dyn Sessions>>,
}

impl Safety {
    pub fn new(secret: &[u8], policy: BanPolicy) -> Self {
        Safety {
            ip_key: IpKey::derive(secret),
            policy,
            sessions: OnceLock::new(),
        }
    }

    /// Called once by the Socket.IO layer when it starts.
    pub fn attach(&self, sessions: Arc<dyn Sessions>) {
        let _ = self.sessions.set(sessions);
    }

    /// The HMAC of an address, as tokens and bans keep it.
    pub fn ip_hash(&self, ip: Option<IpAddr>) -> Option<String> {
        ip.map(|ip| self.ip_key.hash(&ip.to_string()))
    }

    fn subjects(&self, origin: &Origin<'_>) -> Vec<String> {
        let mut out = Vec::with_capacity(3);
        if let Some(u) = origin.user {
            out.push(rules::user_subject(u));
        }
        if let Some(d) = origin.device {
            out.push(rules::device_subject(d));
        }
        if let Some(ip) = origin.ip {
            out.push(self.ip_key.subject(&ip.to_string()));
        }
        out
    }

    /// The ban in force on the account, device or address, if any.
    pub async fn ban_in_force(
        &self,
        store: &dyn UserStore,
        origin: &Origin<'_>,
    ) -> StoreResult<Option<BanRecord>> {
        let subjects = self.subjects(origin);
        if subjects.is_empty() {
            return Ok(None);
        }
        let bans = store.bans_of(subjects).await?;
        Ok(rules::in_force(&bans, Utc::now()).cloned())
    }

    /// 403 `banned` (with `until`) if a ban covers the origin.
    pub async fn admit(&self, store: &dyn UserStore, origin: &Origin<'_>) -> Result<(), AppError> {
        match self.ban_in_force(store, origin).await? {
            Some(ban) => Err(AppError::Banned { until: ban.until }),
            None => Ok(()),
        }
    }

    /// Bans `user` (their account, the devices they registered, and the
    /// addresses of their devices and live sessions) for `duration`, or for
    /// the policy's next step when None; their sockets are told and
    /// disconnected.
    pub async fn ban(
        &self,
        store: &dyn UserStore,
        user: &str,
        duration: Option<Duration>,
        reason: &str,
        actor: Actor,
    ) -> StoreResult<BanRecord> {
        let now = Utc::now();
        let previous = store.bans_of(vec![rules::user_subject(user)]).await?;
        let previous = previous.first();
        let duration = duration.unwrap_or_else(|| {
            self.policy
                .next(previous.map(|b| Duration::from_secs(b.duration_s)))
        });
        let count = previous.map_or(0, |b| b.count).saturating_add(1);
        let mut covers = Vec::new();
        for d in store.devices_of(user).await? {
            covers.push(rules::device_subject(&d.device_id));
            if let Some(ip) = d.ip {
                covers.push(self.ip_key.subject(&ip));
            }
        }
        for hash in store.refresh_ips_of(user).await? {
            covers.push(IpKey::subject_of_hash(&hash));
        }
        covers.sort();
        covers.dedup();
        let records = rules::ban_records(user, covers, duration, reason, count, now);
        let ban = records.last().cloned().ok_or(StoreError::NotFound)?;
        store.put_bans(records).await?;
        audit(
            store,
            actor,
            "ban",
            Some(user),
            json!({ "until": ban.until, "reason": reason, "durationS": ban.duration_s, "count": count }),
        )
        .await;
        tracing::warn!(user, until = %ban.until, reason, "banned");
        if let Some(s) = self.sessions.get() {
            s.banned(user, ban.until, reason).await;
        }
        Ok(ban)
    }

    /// Ends the user's ban (and what it covers); false if none was in force.
    pub async fn lift(&self, store: &dyn UserStore, user: &str, actor: Actor) -> StoreResult<bool> {
        let now = Utc::now();
        let bans = store.bans_of(vec![rules::user_subject(user)]).await?;
        let Some(ban) = rules::in_force(&bans, now).cloned() else {
            return Ok(false);
        };
        store.put_bans(rules::lift_records(&ban, now)).await?;
        audit(store, actor, "unban", Some(user), Value::Null).await;
        Ok(true)
    }

    /// Disconnects the user's sockets.
    pub async fn kick(&self, store: &dyn UserStore, user: &str, actor: Actor) {
        audit(store, actor, "kick", Some(user), Value::Null).await;
        if let Some(s) = self.sessions.get() {
            s.kick(user).await;
        }
    }
}

/// Appends to the audit log; a failure is logged, not fatal.
pub async fn audit(
    store: &dyn UserStore,
    actor: Actor,
    action: &str,
    target: Option<&str>,
    detail: Value,
) {
    let entry = AuditEntry {
        id: new_id(),
        at: Utc::now(),
        actor: actor.as_str().into(),
        action: action.into(),
        target: target.map(str::to_string),
        detail,
    };
    if let Err(e) = store.append_audit(entry).await {
        tracing::error!(error = %e, action, "audit log write failed");
    }
}
