//! Reputation as plain rules (the numbers are settings of the model the
//! seeds use): an account starts at 100; an incident costs points (a skip
//! within 10 s of being matched 3, a report received 15, a message refused
//! as spam 5); every hour without an incident gives one back, up to 100.
//! Below 30, or with more than 3 open reports, the user is *restricted*:
//! matched only with other restricted users (or not at all, with
//! `RESTRICTED_MATCHING=none`). Stored is only the score right after the
//! last incident and its time; the current score is computed from them.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::Standing;

pub const START: i32 = 100;
pub const RESTRICTED_BELOW: i32 = 30;
pub const MAX_OPEN_REPORTS: usize = 3;
/// A skip this soon after being matched is an incident.
pub const QUICK_SKIP: Duration = Duration::from_secs(10);
const RECOVERY: chrono::Duration = chrono::Duration::hours(1);

/// What costs reputation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incident {
    QuickSkip,
    Reported,
    Spam,
}

impl Incident {
    pub fn cost(self) -> i32 {
        match self {
            Incident::QuickSkip => 3,
            Incident::Reported => 15,
            Incident::Spam => 5,
        }
    }
}

/// The score now: the stored one plus an hour's point for each hour since.
pub fn current(stored: Option<&Standing>, now: DateTime<Utc>) -> i32 {
    match stored {
        None => START,
        Some(s) => {
            let hours = (now - s.at).num_seconds().max(0) / RECOVERY.num_seconds();
            (s.score as i64 + hours).min(START as i64) as i32
        }
    }
}

/// The standing to store after `incident` at `now`.
pub fn after(stored: Option<&Standing>, incident: Incident, now: DateTime<Utc>) -> Standing {
    Standing {
        score: (current(stored, now) - incident.cost()).max(0),
        at: now,
    }
}

pub fn restricted(score: i32, open_reports: usize) -> bool {
    score < RESTRICTED_BELOW || open_reports > MAX_OPEN_REPORTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incidents_cost_points_and_hours_give_them_back() {
        let t0 = Utc::now();
        assert_eq!(current(None, t0), 100);
        let s = after(None, Incident::Reported, t0);
        assert_eq!(s.score, 85);
        let s = after(Some(&s), Incident::Spam, t0);
        assert_eq!(current(Some(&s), t0), 80);
        let h = chrono::Duration::hours(1);
        assert_eq!(current(Some(&s), t0 + h - chrono::Duration::seconds(1)), 80);
        assert_eq!(current(Some(&s), t0 + h * 7), 87);
        assert_eq!(current(Some(&s), t0 + h * 500), 100, "capped");
        // A later incident counts from the recovered score.
        let s = after(Some(&s), Incident::QuickSkip, t0 + h * 10);
        assert_eq!(s.score, 87);
    }

    #[test]
    fn low_scores_and_many_open_reports_restrict() {
        let t0 = Utc::now();
        let mut s = None;
        for _ in 0..5 {
            s = Some(after(s.as_ref(), Incident::Reported, t0));
        }
        assert_eq!(current(s.as_ref(), t0), 25);
        assert!(restricted(25, 0));
        assert!(!restricted(30, 3));
        assert!(restricted(100, 4));
        let floor = (0..20).fold(None, |s: Option<Standing>, _| {
            Some(after(s.as_ref(), Incident::Reported, t0))
        });
        assert_eq!(floor.unwrap().score, 0, "never below 0");
    }
}
