//! Typing indicators' auto-off, without I/O.
//!
//! `chat:typing {isTyping:true}` shows the indicator to the partner until
//! the user says `false`, or [`TYPING_TIMEOUT`] passes without a newer
//! update: then the partner gets `isTyping:false`. The driver feeds updates
//! and the time in; the rules answer with what is due and when to wake.
//! Memory is bounded by users currently typing.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// How long an indicator stays on without a newer update.
pub const TYPING_TIMEOUT: Duration = Duration::from_secs(3);

/// An indicator to switch off: tell `partner` that `user` stopped typing
/// in `room` (if the two are still in that room).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoOff {
    pub user: String,
    pub partner: String,
    pub room: String,
}

#[derive(Default)]
pub struct TypingTimers {
    on: HashMap<String, (Instant, AutoOff)>,
    due: BTreeSet<(Instant, String)>,
}

impl TypingTimers {
    /// `user` said they are (or are not) typing to `partner` in `room` at `now`.
    pub fn update(&mut self, off: AutoOff, is_typing: bool, now: Instant) {
        self.forget(&off.user);
        if is_typing {
            let at = now + TYPING_TIMEOUT;
            self.due.insert((at, off.user.clone()));
            self.on.insert(off.user.clone(), (at, off));
        }
    }

    /// The user left (went offline): no auto-off for them.
    pub fn forget(&mut self, user: &str) {
        if let Some((at, _)) = self.on.remove(user) {
            self.due.remove(&(at, user.to_string()));
        }
        crate::memory::shrink_sparse(&mut self.on);
    }

    /// When the driver must call [`TypingTimers::poll`] next.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.due.first().map(|(at, _)| *at)
    }

    /// The indicators whose time ran out at `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<AutoOff> {
        let mut out = Vec::new();
        while let Some((at, user)) = self.due.first().cloned() {
            if at > now {
                break;
            }
            self.due.pop_first();
            if let Some((_, off)) = self.on.remove(&user) {
                out.push(off);
            }
        }
        crate::memory::shrink_sparse(&mut self.on);
        out
    }

    pub fn len(&self) -> usize {
        self.on.len()
    }

    pub fn is_empty(&self) -> bool {
        self.on.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn off(user: &str) -> AutoOff {
        AutoOff {
            user: user.into(),
            partner: format!("{user}-partner"),
            room: "r".into(),
        }
    }

    #[test]
    fn an_indicator_goes_off_after_the_timeout() {
        let t0 = Instant::now();
        let mut t = TypingTimers::default();
        t.update(off("a"), true, t0);
        assert_eq!(t.next_deadline(), Some(t0 + TYPING_TIMEOUT));
        assert!(
            t.poll(t0 + TYPING_TIMEOUT - Duration::from_millis(1))
                .is_empty()
        );
        assert_eq!(t.poll(t0 + TYPING_TIMEOUT), vec![off("a")]);
        assert!(t.is_empty());
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn a_newer_update_moves_or_cancels_the_auto_off() {
        let t0 = Instant::now();
        let mut t = TypingTimers::default();
        t.update(off("a"), true, t0);
        t.update(off("a"), true, t0 + Duration::from_secs(2));
        assert!(
            t.poll(t0 + TYPING_TIMEOUT).is_empty(),
            "the newer update counts"
        );
        assert_eq!(
            t.poll(t0 + Duration::from_secs(2) + TYPING_TIMEOUT),
            vec![off("a")]
        );
        t.update(off("b"), true, t0);
        t.update(off("b"), false, t0 + Duration::from_secs(1));
        assert!(t.is_empty(), "an explicit false needs no auto-off");
        assert!(t.poll(t0 + Duration::from_secs(60)).is_empty());
    }

    #[test]
    fn users_who_leave_are_forgotten_and_order_is_by_deadline() {
        let t0 = Instant::now();
        let mut t = TypingTimers::default();
        t.update(off("a"), true, t0 + Duration::from_secs(2));
        t.update(off("b"), true, t0);
        t.update(off("c"), true, t0 + Duration::from_secs(1));
        t.forget("c");
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.poll(t0 + Duration::from_secs(60)),
            vec![off("b"), off("a")]
        );
    }
}
