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
    store::{AuditEntry, BanRecord, Report, StoreError, StoreResult, UserStore, new_id},
};

pub mod filter;
pub mod recent;
pub mod reputation;
pub mod rules;
pub mod screen;
pub mod spam;

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
    /// Sends `moderation:warning {reason}` to the user's sockets.
    async fn warned(&self, user_id: &str, reason: &str);
}

/// What `GET /api/users/me/standing` shows a user about themselves.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserStanding {
    pub score: i32,
    pub restricted: bool,
    pub banned_until: Option<DateTime<Utc>>,
    pub open_reports: usize,
}

/// What happens to restricted users when they ask to be matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RestrictedMatching {
    /// Matched only with other restricted users.
    #[default]
    Restricted,
    /// Not matched at all (`user:match` fails with `restricted`).
    None,
}

/// Why a text a user sent was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Spam,
    Pii,
    Profanity,
}

impl Refusal {
    /// The error code clients see.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Spam => "spam",
            Refusal::Pii => "pii_blocked",
            Refusal::Profanity => "profanity_blocked",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Refusal::Spam => {
                "the message looks like spam (repeated, a long run of one character, or too many links)"
            }
            Refusal::Pii => "emails and phone numbers may not be sent",
            Refusal::Profanity => "the text contains words that are not allowed",
        }
    }
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

/// When reports turn into a ban, and how long they are kept.
#[derive(Debug, Clone, Copy)]
pub struct ReportPolicy {
    /// Distinct reporters within `window` that ban the target (0: never).
    pub threshold: u32,
    pub window: Duration,
    pub retention: Duration,
}

/// Why a report was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("you can only report your current or one of your last 3 partners")]
    NotReportable,
    #[error("you already reported this user in the last 24 hours")]
    AlreadyReported,
    #[error("{0}")]
    Unavailable(String),
}

impl From<StoreError> for ReportError {
    fn from(e: StoreError) -> Self {
        ReportError::Unavailable(e.to_string())
    }
}

/// A report as a user makes it.
pub struct NewReport<'a> {
    pub reporter: &'a str,
    pub target: &'a str,
    pub reason: &'a str,
    pub details: Option<String>,
    /// The reporter's chat now: (partner, room).
    pub current: Option<(&'a str, &'a str)>,
    /// A lounge message the report is about, checked by the caller: the
    /// room and the evidence (the message and its neighbours).
    pub lounge: Option<(String, Vec<crate::store::Evidence>)>,
}

pub struct Safety {
    pub filters: filter::Filters,
    spam: std::sync::Mutex<spam::SpamGuard>,
    pub ip_key: IpKey,
    pub policy: BanPolicy,
    pub reports: ReportPolicy,
    /// Last partners and chat evidence, for reports.
    pub recent: Arc<dyn recent::RecentChats>,
    sessions: OnceLock<Arc<dyn Sessions>>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Safety {
    pub fn new(
        secret: &[u8],
        policy: BanPolicy,
        reports: ReportPolicy,
        recent: Arc<dyn recent::RecentChats>,
        filters: filter::Filters,
        links_per_minute: usize,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        Safety {
            metrics,
            filters,
            spam: std::sync::Mutex::new(spam::SpamGuard::new(links_per_minute)),
            ip_key: IpKey::derive(secret),
            policy,
            reports,
            recent,
            sessions: OnceLock::new(),
        }
    }

    /// A chat message's text as it may be delivered, masked where a filter
    /// masks; refused if it is spam (which costs the sender reputation) or
    /// a filter in `block` mode refuses it.
    pub async fn screen_message(
        &self,
        store: &dyn UserStore,
        user: &str,
        text: &str,
    ) -> Result<String, Refusal> {
        let links = filter::count_links(text);
        let spam = self.spam.lock().unwrap_or_else(|p| p.into_inner()).check(
            user,
            text,
            links,
            tokio::time::Instant::now(),
        );
        if spam.is_err() {
            self.incident(store, user, reputation::Incident::Spam).await;
            return Err(Refusal::Spam);
        }
        self.screen_text(text)
    }

    /// Other text users send to the server (report details): the filters.
    pub fn screen_text(&self, text: &str) -> Result<String, Refusal> {
        self.filters.apply(text).map_err(|r| match r {
            filter::Refused::Pii => Refusal::Pii,
            filter::Refused::Profanity => Refusal::Profanity,
        })
    }

    /// Records an incident against the user's reputation; a failure is
    /// logged (reputation is advisory, never worth failing a request).
    pub async fn incident(
        &self,
        store: &dyn UserStore,
        user: &str,
        incident: reputation::Incident,
    ) {
        let res = async {
            let stored = store.standing_of(user).await?;
            let next = reputation::after(stored.as_ref(), incident, Utc::now());
            store.put_standing(user, next).await
        }
        .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, user, ?incident, "reputation not updated");
        }
    }

    /// The user's standing now: score, whether restricted, ban, open reports.
    pub async fn standing(&self, store: &dyn UserStore, user: &str) -> StoreResult<UserStanding> {
        let (score, open_reports) = self.reputation(store, user).await?;
        let ban = self
            .ban_in_force(
                store,
                &Origin {
                    user: Some(user),
                    ..Origin::default()
                },
            )
            .await?;
        Ok(UserStanding {
            score,
            restricted: reputation::restricted(score, open_reports),
            banned_until: ban.map(|b| b.until),
            open_reports,
        })
    }

    /// The user's score now and their open reports (what matching and
    /// report weighting need; no ban lookup).
    pub async fn reputation(&self, store: &dyn UserStore, user: &str) -> StoreResult<(i32, usize)> {
        let score = reputation::current(store.standing_of(user).await?.as_ref(), Utc::now());
        let open_reports = crate::store::open_reports(
            &store
                .reports_about(user, DateTime::<Utc>::UNIX_EPOCH)
                .await?,
        );
        Ok((score, open_reports))
    }

    /// Whether the user is restricted (matched only with their like).
    pub async fn restricted(&self, store: &dyn UserStore, user: &str) -> StoreResult<bool> {
        let (score, open) = self.reputation(store, user).await?;
        Ok(reputation::restricted(score, open))
    }

    /// The user went offline: their spam counters go.
    pub fn forget(&self, user: &str) {
        self.spam
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .forget(user);
    }

    /// Files a report: allowed about the current or one of the last
    /// partners, once per reporter and target a day; keeps that chat's last
    /// messages as evidence; bans the target once enough distinct users
    /// reported them within the window.
    pub async fn report(
        &self,
        store: &dyn UserStore,
        new: NewReport<'_>,
    ) -> Result<Report, ReportError> {
        let unavailable = |e: recent::RecentError| ReportError::Unavailable(e.to_string());
        let (room, lounge_evidence) = match new.lounge {
            Some((room, evidence)) => (room, Some(evidence)),
            None => {
                let partners = self
                    .recent
                    .partners(new.reporter)
                    .await
                    .map_err(unavailable)?;
                let room = rules::reportable_room(new.current, &partners, new.target)
                    .ok_or(ReportError::NotReportable)?;
                (room, None)
            }
        };
        let now = Utc::now();
        let day = chrono::Duration::from_std(rules::REPORT_ONCE_PER).unwrap_or_default();
        let window = chrono::Duration::from_std(self.reports.window).unwrap_or_default();
        let earliest = now - day.max(window);
        let about = store.reports_about(new.target, earliest).await?;
        let last_day: Vec<Report> = about
            .iter()
            .filter(|r| r.created_at >= now - day)
            .cloned()
            .collect();
        if rules::already_reported(&last_day, new.reporter) {
            return Err(ReportError::AlreadyReported);
        }
        let evidence = match lounge_evidence {
            Some(e) => e,
            None => self.recent.evidence(&room).await.map_err(unavailable)?,
        };
        let report = Report {
            id: new_id(),
            reporter: new.reporter.into(),
            target: new.target.into(),
            reason: new.reason.into(),
            details: new.details,
            room_id: Some(room),
            evidence,
            created_at: now,
            status: "open".into(),
            resolution: None,
        };
        store.insert_report(report.clone()).await?;
        self.incident(store, new.target, reputation::Incident::Reported)
            .await;
        tracing::info!(report = %report.id, target = new.target, reason = new.reason, "report filed");
        let mut in_window: Vec<Report> = about
            .into_iter()
            .filter(|r| r.created_at >= now - window)
            .collect();
        in_window.push(report.clone());
        self.metrics.reports.inc();
        let mut bad = Vec::new();
        for r in rules::reporters(&in_window) {
            if self.restricted(store, r).await? {
                bad.push(r.to_string());
            }
        }
        if rules::autoban_due(&in_window, self.reports.threshold, |r| {
            bad.iter().any(|b| b == r)
        }) {
            let origin = Origin {
                user: Some(new.target),
                ..Origin::default()
            };
            if self.ban_in_force(store, &origin).await?.is_none() {
                self.ban(
                    store,
                    new.target,
                    None,
                    "reported by several users",
                    Actor::System,
                )
                .await?;
            }
        }
        Ok(report)
    }

    /// Deletes reports older than the retention, in batches.
    pub async fn expire_reports(
        &self,
        store: &dyn UserStore,
        now: DateTime<Utc>,
    ) -> StoreResult<usize> {
        let cutoff = now - chrono::Duration::from_std(self.reports.retention).unwrap_or_default();
        let mut total = 0;
        loop {
            let n = store.delete_reports_before(cutoff, 500).await?;
            total += n;
            if n < 500 {
                return Ok(total);
            }
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
        self.metrics.ban(match actor {
            Actor::System => "auto",
            Actor::Admin => "admin",
        });
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

    /// Resolves an open report as `dismiss`, `warn` (the target gets
    /// `moderation:warning`) or `ban`; None if there is no such open report.
    pub async fn resolve(
        &self,
        store: &dyn UserStore,
        report_id: &str,
        action: &str,
        duration: Option<Duration>,
    ) -> StoreResult<Option<(Report, Option<BanRecord>)>> {
        let Some(report) = store.resolve_report(report_id, action).await? else {
            return Ok(None);
        };
        audit(
            store,
            Actor::Admin,
            "resolve_report",
            Some(&report.target),
            json!({ "reportId": report.id, "action": action }),
        )
        .await;
        let ban = match action {
            "ban" => Some(
                self.ban(
                    store,
                    &report.target,
                    duration,
                    &report.reason,
                    Actor::Admin,
                )
                .await?,
            ),
            "warn" => {
                if let Some(s) = self.sessions.get() {
                    s.warned(&report.target, &report.reason).await;
                }
                None
            }
            _ => None,
        };
        Ok(Some((report, ban)))
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
