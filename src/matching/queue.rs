//! The matching queue as plain data: no I/O, no clock. Callers pass `now`
//! and get pairings back, so the rules are unit-tested on simulated time.
//!
//! Rules:
//! - a user is in the queue at most once; joining again replaces the ticket;
//! - never paired with themselves, with anyone in their `avoid` set (people
//!   they blocked, the partner they just left), or with anyone who avoids them;
//! - while both have waited less than the fallback, a pair must agree on
//!   mode and language (when both give one) and share an interest (when both
//!   give some); the best-scoring such candidate wins, oldest first on ties;
//! - once an entry has waited `fallback`, it takes anyone compatible;
//! - restricted users (safety: a low reputation or many open reports) are
//!   paired only with each other, even after the fallback;
//! - among equally good candidates, the one of the closest standing wins.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::Duration,
};

use tokio::time::Instant;

/// What a client may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Text,
    Video,
}

impl Mode {
    /// The label of a ticket's mode in statistics.
    pub fn label(mode: Option<Mode>) -> &'static str {
        match mode {
            Some(Mode::Text) => "text",
            Some(Mode::Video) => "video",
            None => "any",
        }
    }
}

/// One user's request to be matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub user_id: String,
    pub username: String,
    /// Normalised: lower-case, trimmed, sorted, unique.
    pub interests: Vec<String>,
    pub language: Option<String>,
    pub mode: Option<Mode>,
    /// Users this one must not meet.
    pub avoid: HashSet<String>,
    /// Safety's verdict on the user: who they may meet, and how they rank.
    pub standing: TicketStanding,
}

/// What matching needs of a user's reputation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketStanding {
    /// 0–100.
    pub score: u8,
    /// Restricted users are matched only with each other.
    pub restricted: bool,
}

impl Default for TicketStanding {
    fn default() -> Self {
        TicketStanding {
            score: 100,
            restricted: false,
        }
    }
}

/// Two users the queue paired. The one who waited longer is the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pairing {
    pub caller: Ticket,
    pub callee: Ticket,
    pub common_interests: Vec<String>,
    /// How long the caller waited in the queue.
    pub waited: Duration,
}

/// A join's answer: returned once per `user:match`, never stored, so the
/// size of the matched variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    Waiting,
    Matched(Pairing),
}

struct Waiting {
    ticket: Ticket,
    since: Instant,
    /// Has waited the fallback: takes anyone compatible.
    relaxed: bool,
}

pub struct MatchQueue {
    /// Arrival order → entry.
    entries: BTreeMap<u64, Waiting>,
    by_user: HashMap<String, u64>,
    next_seq: u64,
    fallback: Duration,
    /// How many waiting entries one arrival looks at (oldest first).
    scan_limit: usize,
    /// When the driver looks next, as far as the queue knows: what
    /// [`MatchQueue::arm`] gave it, or what a newcomer's wake-up promised
    /// ([`MatchQueue::wake_for_newcomer`]).
    armed: Option<Instant>,
}

fn compatible(a: &Ticket, b: &Ticket) -> bool {
    a.user_id != b.user_id
        && a.standing.restricted == b.standing.restricted
        && !a.avoid.contains(&b.user_id)
        && !b.avoid.contains(&a.user_id)
}

/// How far apart two users' standings are (smaller is better).
fn distance(a: &Ticket, b: &Ticket) -> u8 {
    a.standing.score.abs_diff(b.standing.score)
}

fn common(a: &[String], b: &[String]) -> Vec<String> {
    // Both sorted: a linear merge.
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i].clone());
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// The preference score of a pair, or None when their preferences disagree.
fn preference_score(a: &Ticket, b: &Ticket) -> Option<usize> {
    let mut score = 0;
    match (a.mode, b.mode) {
        (Some(x), Some(y)) if x != y => return None,
        (Some(_), Some(_)) => score += 1,
        _ => {}
    }
    match (&a.language, &b.language) {
        (Some(x), Some(y)) if x != y => return None,
        (Some(_), Some(_)) => score += 2,
        _ => {}
    }
    if !a.interests.is_empty() && !b.interests.is_empty() {
        let shared = common(&a.interests, &b.interests).len();
        if shared == 0 {
            return None;
        }
        score += 4 * shared;
    }
    Some(score)
}

impl MatchQueue {
    pub fn new(fallback: Duration) -> Self {
        MatchQueue {
            entries: BTreeMap::new(),
            by_user: HashMap::new(),
            next_seq: 0,
            fallback,
            scan_limit: 2048,
            armed: None,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The mode of each waiting ticket.
    pub fn modes(&self) -> impl Iterator<Item = Option<Mode>> + '_ {
        self.entries.values().map(|w| w.ticket.mode)
    }

    pub fn contains(&self, user_id: &str) -> bool {
        self.by_user.contains_key(user_id)
    }

    /// Queues `ticket`, or pairs it at once with the best waiting candidate.
    pub fn join(&mut self, ticket: Ticket, now: Instant) -> Joined {
        self.leave(&ticket.user_id);
        // (preference score, closeness of standing), then the oldest.
        let mut best: Option<((usize, u8), u64)> = None;
        let mut fallback: Option<u64> = None;
        for (&seq, w) in self.entries.iter().take(self.scan_limit) {
            if !compatible(&ticket, &w.ticket) {
                continue;
            }
            match preference_score(&ticket, &w.ticket) {
                Some(score) => {
                    let rank = (score, u8::MAX - distance(&ticket, &w.ticket));
                    if best.is_none_or(|(r, _)| rank > r) {
                        best = Some((rank, seq));
                    }
                }
                None if w.relaxed && fallback.is_none() => fallback = Some(seq),
                None => {}
            }
        }
        match best.map(|(_, seq)| seq).or(fallback) {
            Some(seq) => {
                let other = self.remove_seq(seq);
                Joined::Matched(pair(other, ticket, now))
            }
            None => {
                self.insert(ticket, now);
                Joined::Waiting
            }
        }
    }

    /// Puts back a ticket that has waited since `since`, without pairing it
    /// (a cluster's new queue holder rebuilding the queue from Redis).
    pub fn restore(&mut self, ticket: Ticket, since: Instant) {
        self.leave(&ticket.user_id);
        self.insert(ticket, since);
    }

    /// Removes the user's ticket; true if it was queued.
    pub fn leave(&mut self, user_id: &str) -> bool {
        let left = match self.by_user.remove(user_id) {
            Some(seq) => {
                self.entries.remove(&seq);
                true
            }
            None => false,
        };
        crate::memory::shrink_sparse(&mut self.by_user);
        left
    }

    /// Relaxes the entries that have waited the fallback and pairs them with
    /// anyone compatible, oldest first.
    pub fn poll(&mut self, now: Instant) -> Vec<Pairing> {
        let due: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, w)| !w.relaxed && now.duration_since(w.since) >= self.fallback)
            .map(|(&seq, _)| seq)
            .collect();
        let mut out = Vec::new();
        for seq in due {
            let Some(w) = self.entries.get_mut(&seq) else {
                continue;
            };
            w.relaxed = true;
            let ticket = w.ticket.clone();
            let partner = self
                .entries
                .iter()
                .take(self.scan_limit)
                .find(|(s, other)| **s != seq && compatible(&ticket, &other.ticket))
                .map(|(s, _)| *s);
            if let Some(other) = partner {
                let (a, b) = if other < seq {
                    (other, seq)
                } else {
                    (seq, other)
                };
                let first = self.remove_seq(a);
                let second = self.remove_seq(b);
                out.push(pair(first, second.ticket, now));
            }
        }
        out
    }

    /// When `poll` next has something to do.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter(|w| !w.relaxed)
            .map(|w| w.since + self.fallback)
            .min()
    }

    /// The deadline the driver sleeps until: [`Self::next_wakeup`], noted.
    /// With nobody left to wait for, a deadline promised to a newcomer and
    /// not yet past stays (one spare wake-up then, rather than one for each
    /// newcomer of a storm whose waiters are paired before the driver runs).
    pub fn arm(&mut self, now: Instant) -> Option<Instant> {
        let next = self
            .next_wakeup()
            .or(self.armed.filter(|&promised| promised > now));
        self.armed = next;
        next
    }

    /// After a join that left the newcomer waiting: whether the driver must
    /// be woken to learn of its fallback. Not when it already looks no
    /// later than the fallback (fallbacks come in the order people arrive,
    /// so in a queue that has waiters the driver looks in time); if so, the
    /// newcomer's fallback is what the driver looks at next.
    pub fn wake_for_newcomer(&mut self, now: Instant) -> bool {
        let deadline = now + self.fallback;
        if self.armed.is_some_and(|armed| armed <= deadline) {
            return false;
        }
        self.armed = Some(deadline);
        true
    }

    fn insert(&mut self, ticket: Ticket, now: Instant) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_user.insert(ticket.user_id.clone(), seq);
        self.entries.insert(
            seq,
            Waiting {
                ticket,
                since: now,
                relaxed: false,
            },
        );
    }

    fn remove_seq(&mut self, seq: u64) -> Waiting {
        let w = self.entries.remove(&seq).expect("seq comes from the map");
        self.by_user.remove(&w.ticket.user_id);
        crate::memory::shrink_sparse(&mut self.by_user);
        w
    }
}

fn pair(waiting: Waiting, newcomer: Ticket, now: Instant) -> Pairing {
    Pairing {
        waited: now.saturating_duration_since(waiting.since),
        ..Pairing::new(waiting.ticket, newcomer)
    }
}

impl Pairing {
    /// `caller` (who waited longer) and `callee`, with the interests they share.
    pub fn new(caller: Ticket, callee: Ticket) -> Self {
        let common_interests = common(&caller.interests, &callee.interests);
        Pairing {
            caller,
            callee,
            common_interests,
            waited: Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A storm of arrivals wakes the driver once: the first newcomer's
    /// fallback is armed, and those after it fall due no sooner, even when
    /// everyone was paired before the driver looked. Once the promise has
    /// passed with nobody waiting, the next newcomer wakes it again.
    #[test]
    fn the_driver_is_woken_once_for_a_storm_of_newcomers() {
        const FB: Duration = Duration::from_secs(5);
        let mut q = MatchQueue::new(FB);
        let t0 = Instant::now();
        assert_eq!(q.arm(t0), None, "nobody waits: the driver sleeps");
        let mut wakes = 0;
        for i in 0..1000u32 {
            let now = t0 + Duration::from_millis(u64::from(i));
            if matches!(q.join(t(&format!("u{i}")), now), Joined::Waiting)
                && q.wake_for_newcomer(now)
            {
                wakes += 1;
            }
            if i == 11 {
                // The driver runs once, with nobody waiting (u11 was just
                // paired with u10): it keeps the promise.
                assert!(q.is_empty());
                assert_eq!(q.arm(now), Some(t0 + FB));
            }
        }
        assert_eq!(wakes, 1, "one wake-up for 500 waiters");
        // At the promise the driver finds nobody and sleeps.
        assert_eq!(q.arm(t0 + FB), None);
        let later = t0 + FB + Duration::from_secs(1);
        assert!(matches!(q.join(t("late"), later), Joined::Waiting));
        assert!(q.wake_for_newcomer(later), "the driver sleeps: woken");
        assert_eq!(q.arm(later), Some(later + FB), "late's fallback");
    }

    /// A waiter still there when the driver looks is what it sleeps until,
    /// and a newcomer whose fallback comes later does not wake it.
    #[test]
    fn a_newcomer_after_the_armed_deadline_needs_no_wake_up() {
        const FB: Duration = Duration::from_secs(5);
        let mut q = MatchQueue::new(FB);
        let t0 = Instant::now();
        let video = |id: &str| Ticket {
            mode: Some(Mode::Video),
            ..t(id)
        };
        let text = |id: &str| Ticket {
            mode: Some(Mode::Text),
            ..t(id)
        };
        assert!(matches!(q.join(video("a"), t0), Joined::Waiting));
        assert!(q.wake_for_newcomer(t0));
        assert_eq!(q.arm(t0), Some(t0 + FB));
        let t1 = t0 + Duration::from_secs(1);
        assert!(matches!(q.join(text("b"), t1), Joined::Waiting));
        assert!(!q.wake_for_newcomer(t1), "b falls due after a");
        // At a's fallback a is relaxed and paired with b.
        assert_eq!(q.poll(t0 + FB).len(), 1);
        assert_eq!(q.arm(t0 + FB), None);
    }

    fn t(id: &str) -> Ticket {
        Ticket {
            user_id: id.into(),
            username: format!("n_{id}"),
            interests: vec![],
            language: None,
            mode: None,
            avoid: HashSet::new(),
            standing: Default::default(),
        }
    }

    fn standing(id: &str, score: u8, restricted: bool) -> Ticket {
        Ticket {
            standing: TicketStanding { score, restricted },
            ..t(id)
        }
    }

    #[test]
    fn restricted_users_meet_only_each_other_even_after_the_fallback() {
        let fb = Duration::from_secs(5);
        let mut q = MatchQueue::new(fb);
        let now = Instant::now();
        assert_eq!(q.join(standing("bad", 10, true), now), Joined::Waiting);
        assert_eq!(q.join(t("good"), now), Joined::Waiting);
        assert!(q.poll(now + fb * 2).is_empty(), "never across");
        match q.join(standing("worse", 5, true), now + fb * 2) {
            Joined::Matched(p) => assert_eq!(p.caller.user_id, "bad"),
            Joined::Waiting => panic!("restricted users meet each other"),
        }
    }

    #[test]
    fn the_closest_standing_wins_among_equals() {
        let mut q = MatchQueue::new(Duration::from_secs(5));
        let now = Instant::now();
        q.join(standing("high", 100, false), now);
        // mid avoids high, so both wait.
        let mut mid = standing("mid", 60, false);
        mid.avoid.insert("high".into());
        q.join(mid, now);
        match q.join(standing("new", 55, false), now) {
            Joined::Matched(p) => assert_eq!(p.caller.user_id, "mid"),
            Joined::Waiting => panic!("someone was compatible"),
        }
        // A shared interest still outranks standing (high, 100, waits on).
        let mut chess = with_interests("chess", &["chess"]);
        chess.avoid.insert("high".into());
        q.join(chess, now);
        let mut low = Ticket {
            interests: vec!["chess".into()],
            ..standing("low", 40, false)
        };
        low.avoid.extend(["high".to_string(), "chess".to_string()]);
        q.join(low, now);
        match q.join(
            Ticket {
                interests: vec!["chess".into()],
                ..standing("x", 40, false)
            },
            now,
        ) {
            Joined::Matched(p) => assert_eq!(p.caller.user_id, "low"),
            Joined::Waiting => panic!("chess players wait"),
        }
    }

    fn with_interests(id: &str, interests: &[&str]) -> Ticket {
        let mut v: Vec<String> = interests.iter().map(|s| s.to_string()).collect();
        v.sort();
        Ticket {
            interests: v,
            ..t(id)
        }
    }

    fn matched(j: Joined) -> Pairing {
        match j {
            Joined::Matched(p) => p,
            Joined::Waiting => panic!("expected a match"),
        }
    }

    const FB: Duration = Duration::from_secs(5);

    #[test]
    fn two_users_pair_and_the_waiting_one_calls() {
        let now = Instant::now();
        let mut q = MatchQueue::new(FB);
        assert_eq!(q.join(t("a"), now), Joined::Waiting);
        let p = matched(q.join(t("b"), now));
        assert_eq!(
            (p.caller.user_id.as_str(), p.callee.user_id.as_str()),
            ("a", "b")
        );
        assert!(q.is_empty());
    }

    #[test]
    fn never_self_never_twice() {
        let now = Instant::now();
        let mut q = MatchQueue::new(FB);
        assert_eq!(q.join(t("a"), now), Joined::Waiting);
        assert_eq!(q.join(t("a"), now), Joined::Waiting);
        assert_eq!(q.len(), 1);
        assert!(
            q.poll(now + FB * 2).is_empty(),
            "alone in the queue, even relaxed"
        );
        assert!(q.leave("a"));
        assert!(!q.leave("a"));
    }

    #[test]
    fn avoid_works_both_ways() {
        let now = Instant::now();
        let mut q = MatchQueue::new(FB);
        let mut a = t("a");
        a.avoid.insert("b".into());
        q.join(a, now);
        assert_eq!(q.join(t("b"), now), Joined::Waiting, "a blocked b");
        let mut c = t("c");
        c.avoid.insert("a".into());
        c.avoid.insert("b".into());
        assert_eq!(q.join(c, now), Joined::Waiting, "c blocked both");
        assert!(
            q.poll(now + FB).is_empty(),
            "fallback never overrides a block"
        );
        let p = matched(q.join(t("d"), now + FB));
        assert_eq!(p.caller.user_id, "a");
    }

    #[test]
    fn shared_interests_preferred_then_fallback_to_anyone() {
        let now = Instant::now();
        let mut q = MatchQueue::new(FB);
        q.join(with_interests("a", &["chess"]), now);
        q.join(with_interests("b", &["music", "rust"]), now);
        // c shares rust with b, nothing with a: b wins though a is older.
        let p = matched(q.join(with_interests("c", &["go", "rust"]), now));
        assert_eq!(p.caller.user_id, "b");
        assert_eq!(p.common_interests, vec!["rust".to_string()]);
        // d shares nothing with a: waits, until the fallback.
        assert_eq!(
            q.join(
                with_interests("d", &["knitting"]),
                now + Duration::from_secs(1)
            ),
            Joined::Waiting
        );
        assert_eq!(q.next_wakeup(), Some(now + FB));
        assert!(q.poll(now + Duration::from_secs(4)).is_empty());
        let pairs = q.poll(now + FB);
        assert_eq!(pairs.len(), 1);
        assert_eq!(
            (
                pairs[0].caller.user_id.as_str(),
                pairs[0].callee.user_id.as_str()
            ),
            ("a", "d")
        );
        assert!(pairs[0].common_interests.is_empty());
    }

    #[test]
    fn most_shared_interests_win() {
        let now = Instant::now();
        let mut q = MatchQueue::new(FB);
        q.join(with_interests("a", &["p", "x"]), now);
        q.join(with_interests("b", &["y", "z"]), now);
        assert_eq!(q.len(), 2);
        let p = matched(q.join(with_interests("c", &["x", "y", "z"]), now));
        assert_eq!(p.caller.user_id, "b");
        assert_eq!(p.common_interests, vec!["y".to_string(), "z".to_string()]);
    }

    #[test]
    fn mode_and_language_must_agree_before_the_fallback() {
        let now = Instant::now();
        let mut q = MatchQueue::new(FB);
        q.join(
            Ticket {
                mode: Some(Mode::Video),
                ..t("a")
            },
            now,
        );
        assert_eq!(
            q.join(
                Ticket {
                    mode: Some(Mode::Text),
                    ..t("b")
                },
                now
            ),
            Joined::Waiting
        );
        q.join(
            Ticket {
                language: Some("fr".into()),
                mode: Some(Mode::Text),
                ..t("c")
            },
            now,
        );
        assert_eq!(
            q.len(),
            1,
            "c agrees with b (text) and pairs with it at once"
        );
        assert_eq!(
            q.join(
                Ticket {
                    language: Some("de".into()),
                    mode: Some(Mode::Video),
                    ..t("d")
                },
                now
            ),
            Joined::Matched(Pairing {
                caller: Ticket {
                    mode: Some(Mode::Video),
                    ..t("a")
                },
                callee: Ticket {
                    language: Some("de".into()),
                    mode: Some(Mode::Video),
                    ..t("d")
                },
                common_interests: vec![],
                waited: Duration::ZERO,
            })
        );
        q.join(
            Ticket {
                language: Some("fr".into()),
                ..t("e")
            },
            now,
        );
        // f has no preferences: it agrees with anyone; the oldest wins on a tie.
        let p = matched(q.join(t("f"), now));
        assert_eq!(p.caller.user_id, "e");
    }

    #[test]
    fn a_relaxed_waiter_takes_a_newcomer_with_other_preferences() {
        let now = Instant::now();
        let mut q = MatchQueue::new(FB);
        q.join(with_interests("a", &["x"]), now);
        assert!(q.poll(now + FB).is_empty());
        let p = matched(q.join(with_interests("b", &["y"]), now + FB));
        assert_eq!(p.caller.user_id, "a");
    }

    #[test]
    fn many_users_pair_exactly_once() {
        let now = Instant::now();
        let mut q = MatchQueue::new(FB);
        let mut seen = HashSet::new();
        for i in 0..1000 {
            let interests: Vec<String> = vec![format!("i{}", i % 7)];
            let ticket = Ticket {
                interests,
                ..t(&format!("u{i}"))
            };
            if let Joined::Matched(p) = q.join(ticket, now) {
                assert!(seen.insert(p.caller.user_id.clone()));
                assert!(seen.insert(p.callee.user_id.clone()));
            }
        }
        for p in q.poll(now + FB) {
            assert!(seen.insert(p.caller.user_id));
            assert!(seen.insert(p.callee.user_id));
        }
        assert_eq!(seen.len() + q.len(), 1000);
        assert!(q.len() <= 1);
    }
}
