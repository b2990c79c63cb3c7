//! The safety rules as plain data: ban escalation, what a ban covers, and
//! whether one is in force. No I/O, no clock: callers pass `now`. The
//! drivers (`realtime::moderation`, the auth routes, the admin API) store
//! and enforce what these decide, the same on one node and in a cluster
//! (bans live in the account store, which a cluster shares).

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{
    safety::recent::Partner,
    store::{BanRecord, Report},
};

/// Why a user may report another.
pub const REASONS: &[&str] = &["spam", "harassment", "sexual", "underage", "hate", "other"];
/// Longest `details` of a report, in characters.
pub const DETAILS_MAX: usize = 1000;
/// One report per reporter and target within this.
pub const REPORT_ONCE_PER: Duration = Duration::from_secs(24 * 3600);

/// The chat in which `target` may be reported: the current one (with
/// `current` = (partner, room)) or one with one of the last partners.
pub fn reportable_room(
    current: Option<(&str, &str)>,
    recent: &[Partner],
    target: &str,
) -> Option<String> {
    if let Some((partner, room)) = current
        && partner == target
    {
        return Some(room.to_string());
    }
    recent
        .iter()
        .find(|p| p.user == target)
        .map(|p| p.room.clone())
}

/// Whether `reporter` is among the reports (about one target, in the last
/// [`REPORT_ONCE_PER`]).
pub fn already_reported(recent_reports: &[Report], reporter: &str) -> bool {
    recent_reports.iter().any(|r| r.reporter == reporter)
}

/// The distinct reporters among `reports`.
pub fn reporters(reports: &[Report]) -> Vec<&str> {
    let mut out: Vec<&str> = reports.iter().map(|r| r.reporter.as_str()).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Whether reports within the window (about one target) call for a ban:
/// distinct reporters worth `threshold`, a reporter in bad standing
/// (`in_bad_standing`) counting as half.
pub fn autoban_due(
    reports_in_window: &[Report],
    threshold: u32,
    in_bad_standing: impl Fn(&str) -> bool,
) -> bool {
    let weight: f64 = reporters(reports_in_window)
        .into_iter()
        .map(|r| if in_bad_standing(r) { 0.5 } else { 1.0 })
        .sum();
    threshold > 0 && weight >= threshold as f64
}

/// A ban's subject: the account, a device it registered, or an IP kept
/// only as an HMAC.
pub fn user_subject(id: &str) -> String {
    format!("user:{id}")
}

pub fn device_subject(device_id: &str) -> String {
    format!("device:{device_id}")
}

/// Keys IP addresses: a ban or a token stores `HMAC-SHA256(key, ip)`,
/// never the address.
#[derive(Clone)]
pub struct IpKey([u8; 32]);

impl IpKey {
    /// Derived from the server's secret (the JWT secret), so every node of
    /// a cluster computes the same HMAC.
    pub fn derive(secret: &[u8]) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key");
        mac.update(b"tandem ip hmac v1");
        IpKey(mac.finalize().into_bytes().into())
    }

    /// The stored form of an address: hex of its HMAC.
    pub fn hash(&self, ip: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key");
        mac.update(ip.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn subject(&self, ip: &str) -> String {
        format!("ip:{}", self.hash(ip))
    }

    /// The subject of an address already hashed.
    pub fn subject_of_hash(hash: &str) -> String {
        format!("ip:{hash}")
    }
}

/// How long bans last: the first `base`, each further one 4× the last, at
/// most `max`.
#[derive(Debug, Clone, Copy)]
pub struct BanPolicy {
    pub base: Duration,
    pub max: Duration,
}

impl BanPolicy {
    /// The length of the next ban of an account whose last ban (if any)
    /// lasted `previous`.
    pub fn next(&self, previous: Option<Duration>) -> Duration {
        match previous {
            None => self.base.min(self.max),
            Some(d) => d.saturating_mul(4).max(self.base).min(self.max),
        }
    }
}

/// The ban in force among `bans` at `now`: the one that ends last.
pub fn in_force(bans: &[BanRecord], now: DateTime<Utc>) -> Option<&BanRecord> {
    bans.iter()
        .filter(|b| b.until > now)
        .max_by_key(|b| b.until)
}

/// The records that carry out a new ban of `user` for `duration`: one for
/// the account (remembering what else it covers, for lifting) and one per
/// device and IP subject.
pub fn ban_records(
    user: &str,
    covers: Vec<String>,
    duration: Duration,
    reason: &str,
    count: u32,
    now: DateTime<Utc>,
) -> Vec<BanRecord> {
    // Milliseconds, as every store keeps times: the `until` a client is
    // told is the one it will read back.
    use chrono::SubsecRound;
    let now = now.trunc_subsecs(3);
    let until = now + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
    let record = |subject: String, covers: Vec<String>| BanRecord {
        subject,
        until,
        reason: reason.to_string(),
        duration_s: duration.as_secs(),
        count,
        covers,
        created_at: now,
    };
    let mut out: Vec<BanRecord> = covers
        .iter()
        .map(|s| record(s.clone(), Vec::new()))
        .collect();
    out.push(record(user_subject(user), covers));
    out
}

/// The records that lift `ban` (an account's) and what it covers: ended
/// at `now`, their history (count, duration) kept for escalation.
pub fn lift_records(ban: &BanRecord, now: DateTime<Utc>) -> Vec<BanRecord> {
    let mut out: Vec<BanRecord> = ban
        .covers
        .iter()
        .map(|s| BanRecord {
            subject: s.clone(),
            until: now,
            covers: Vec::new(),
            ..ban.clone()
        })
        .collect();
    out.push(BanRecord {
        until: now,
        ..ban.clone()
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(3600);

    #[test]
    fn bans_escalate_fourfold_up_to_the_maximum() {
        let p = BanPolicy {
            base: 24 * H,
            max: 30 * 24 * H,
        };
        let mut last = None;
        let mut seen = Vec::new();
        for _ in 0..5 {
            let d = p.next(last);
            seen.push(d.as_secs() / 3600);
            last = Some(d);
        }
        assert_eq!(seen, [24, 96, 384, 720, 720]);
    }

    #[test]
    fn a_ban_is_in_force_until_it_ends_and_a_lifted_one_is_not() {
        let now = Utc::now();
        let bans = ban_records(
            "u1",
            vec!["device:d1".into(), "ip:ab".into()],
            H,
            "spam",
            1,
            now,
        );
        assert_eq!(bans.len(), 3);
        let user = bans.last().unwrap();
        assert_eq!(user.subject, "user:u1");
        assert_eq!(user.covers, ["device:d1", "ip:ab"]);
        assert!(in_force(&bans, now).is_some());
        assert!(in_force(&bans, now + chrono::Duration::minutes(59)).is_some());
        assert!(in_force(&bans, now + chrono::Duration::minutes(60)).is_none());
        let lifted = lift_records(user, now + chrono::Duration::minutes(1));
        assert_eq!(lifted.len(), 3);
        assert!(in_force(&lifted, now + chrono::Duration::minutes(1)).is_none());
        assert!(lifted.iter().all(|b| b.count == 1 && b.duration_s == 3600));
    }

    fn report(reporter: &str) -> Report {
        Report {
            id: reporter.into(),
            reporter: reporter.into(),
            target: "t".into(),
            reason: "spam".into(),
            details: None,
            room_id: None,
            evidence: vec![],
            created_at: Utc::now(),
            status: "open".into(),
            resolution: None,
        }
    }

    #[test]
    fn only_the_current_and_last_partners_are_reportable() {
        let recent = vec![
            Partner {
                user: "p1".into(),
                room: "r1".into(),
            },
            Partner {
                user: "p2".into(),
                room: "r2".into(),
            },
        ];
        assert_eq!(
            reportable_room(Some(("now", "r9")), &recent, "now").as_deref(),
            Some("r9")
        );
        assert_eq!(
            reportable_room(Some(("now", "r9")), &recent, "p2").as_deref(),
            Some("r2")
        );
        assert_eq!(reportable_room(None, &recent, "stranger"), None);
    }

    #[test]
    fn distinct_reporters_reach_the_threshold() {
        let good = |_: &str| false;
        let rs = [report("a"), report("a"), report("b")];
        assert!(!autoban_due(&rs, 3, good), "a twice is one reporter");
        let three = [report("a"), report("b"), report("c")];
        assert!(autoban_due(&three, 3, good));
        assert!(!autoban_due(&rs, 0, good), "0 turns it off");
        assert!(
            !autoban_due(&three, 3, |r| r == "c"),
            "a reporter in bad standing counts as half"
        );
        let four = [report("a"), report("b"), report("c"), report("d")];
        assert!(autoban_due(&four, 3, |r| r == "c" || r == "d"));
        assert!(already_reported(&rs, "b") && !already_reported(&rs, "c"));
    }

    #[test]
    fn ip_subjects_are_keyed_hashes() {
        let a = IpKey::derive(b"secret-a");
        let b = IpKey::derive(b"secret-b");
        assert_eq!(a.hash("1.2.3.4"), a.hash("1.2.3.4"));
        assert_ne!(a.hash("1.2.3.4"), b.hash("1.2.3.4"));
        assert!(!a.subject("1.2.3.4").contains("1.2.3.4"));
        assert_eq!(a.hash("1.2.3.4").len(), 64);
    }
}
