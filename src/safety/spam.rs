//! Spam rules as plain data: the same message a third time within a
//! minute, a long run of one character, or more than a set number of links
//! a minute is refused. State is per user and forgets a user a minute
//! after their last message, so it is bounded by users chatting now.
//! Each check costs the same whatever the user sent before: one look-up in
//! a map from a text's digest to the times of its last `REPEATS - 1`
//! copies (the repeat rule needs no more), swept of texts older than the
//! window each time the map has doubled since its last sweep.

use std::{collections::VecDeque, hash::Hasher, num::NonZeroU64, time::Duration};

use tokio::time::Instant;

use rustc_hash::FxHashMap;

use crate::{expiring::Expiring, memory::shrink_sparse};

/// The window every rule counts in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// The same text this many times within the window: the last is refused.
pub const REPEATS: usize = 3;
/// A run of this many identical characters (spaces aside) is refused.
pub const RUN: usize = 20;

/// Why a message is spam.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spam {
    Repeated,
    LongRun,
    TooManyLinks,
}

/// Texts are never swept below this many (a sweep of a small map costs
/// more than the memory it frees).
const SWEEP_FLOOR: usize = 64;

#[derive(Default)]
struct Recent {
    /// A text's digest → when its last accepted copies were sent (see
    /// [`Copies`]). Texts whose newest copy left the window stay until the
    /// next sweep: they decide nothing, as their copies are too old.
    texts: FxHashMap<u64, Copies>,
    /// Sweep the texts once they are this many.
    sweep_at: usize,
    links: VecDeque<Instant>,
}

/// The send times of a text's last `REPEATS - 1` accepted copies, newest
/// first, as [`Stamp`]s: 8 bytes each.
type Copies = [Option<Stamp>; REPEATS - 1];

/// A send time: nanoseconds since the guard's epoch, plus one (so that
/// "no copy" costs no space).
type Stamp = NonZeroU64;

/// The window holds `REPEATS - 1` copies already: the newest ones are those.
fn repeated(copies: &Copies, now: Stamp) -> bool {
    copies[REPEATS - 2].is_some_and(|t| in_window(t, now))
}

impl Recent {
    /// Drops the texts whose newest copy left the window, once they have
    /// doubled since the last sweep (so each text costs one visit).
    fn sweep(&mut self, now: Stamp) {
        if self.texts.len() < self.sweep_at.max(SWEEP_FLOOR) {
            return;
        }
        self.texts
            .retain(|_, copies| copies[0].is_some_and(|t| in_window(t, now)));
        self.sweep_at = self.texts.len() * 2;
        shrink_sparse(&mut self.texts);
    }
}

fn in_window(t: Stamp, now: Stamp) -> bool {
    now.get().saturating_sub(t.get()) < WINDOW.as_nanos() as u64
}

pub struct SpamGuard {
    /// A user is forgotten a window after their last message.
    users: Expiring<Recent>,
    links_per_minute: usize,
    /// Times in `Recent` count from here.
    epoch: Instant,
}

/// The text as the repeat rule compares it: trimmed, case folded. Hashed
/// character by character, so no lower-case copy is made.
fn digest(text: &str) -> u64 {
    let text = text.trim();
    if text.is_ascii() {
        // The same characters as below, without Unicode's case tables.
        digest_of(text.bytes().map(|b| u32::from(b.to_ascii_lowercase())))
    } else {
        digest_of(text.chars().flat_map(char::to_lowercase).map(u32::from))
    }
}

fn digest_of(chars: impl Iterator<Item = u32>) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    for c in chars {
        h.write_u32(c);
    }
    h.finish()
}

/// The longest run of one character, white space aside.
fn longest_run(text: &str) -> usize {
    if text.is_ascii() {
        // The same rule on bytes: ASCII's white space is 9 to 13 and 32.
        longest_run_of(text.bytes().filter(|b| !matches!(b, 9..=13 | 32)))
    } else {
        longest_run_of(text.chars().filter(|c| !c.is_whitespace()))
    }
}

fn longest_run_of<T: PartialEq>(items: impl Iterator<Item = T>) -> usize {
    let (mut best, mut run, mut prev) = (0, 0, None);
    for c in items {
        run = if prev.as_ref() == Some(&c) {
            run + 1
        } else {
            1
        };
        prev = Some(c);
        best = best.max(run);
    }
    best
}

impl SpamGuard {
    pub fn new(links_per_minute: usize) -> Self {
        SpamGuard {
            users: Expiring::new(WINDOW),
            links_per_minute,
            epoch: Instant::now(),
        }
    }

    /// Ok if `text` (with `links` links in it) may go; Err if it is spam.
    /// A refused message is not remembered.
    pub fn check(
        &mut self,
        user: &str,
        text: &str,
        links: usize,
        now: Instant,
    ) -> Result<(), Spam> {
        if longest_run(text) >= RUN {
            return Err(Spam::LongRun);
        }
        let since = now.saturating_duration_since(self.epoch).as_nanos() as u64;
        let at = NonZeroU64::MIN.saturating_add(since);
        let r = self.users.touch(user, now);
        r.sweep(at);
        while r
            .links
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            r.links.pop_front();
        }
        let d = digest(text);
        if r.links.len() + links > self.links_per_minute {
            // Refused either way: a look-up that adds no entry.
            let copies = r.texts.get(&d);
            return Err(if copies.is_some_and(|c| repeated(c, at)) {
                Spam::Repeated
            } else {
                Spam::TooManyLinks
            });
        }
        let copies = r.texts.entry(d).or_default();
        if repeated(copies, at) {
            return Err(Spam::Repeated);
        }
        copies.rotate_right(1);
        copies[0] = Some(at);
        r.links.extend(std::iter::repeat_n(now, links));
        Ok(())
    }

    pub fn forget(&mut self, user: &str) {
        self.users.remove(user);
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_third_copy_within_a_minute_is_spam() {
        let mut g = SpamGuard::new(5);
        let t0 = Instant::now();
        assert!(g.check("a", "buy now", 0, t0).is_ok());
        assert!(g.check("a", "BUY NOW ", 0, t0).is_ok());
        assert!(g.check("a", "buy now", 0, t0).is_err());
        assert!(g.check("b", "buy now", 0, t0).is_ok(), "per user");
        assert!(g.check("a", "something else", 0, t0).is_ok());
        assert!(
            g.check("a", "buy now", 0, t0 + WINDOW).is_ok(),
            "a minute later"
        );
    }

    proptest::proptest! {
        #[test]
        fn ascii_runs_are_counted_as_characters_are(text in "[ -~\t\n\r\u{b}\u{c}\u{1c}-\u{1f}]{0,40}") {
            let by_chars = longest_run_of(text.chars().filter(|c| !c.is_whitespace()));
            proptest::prop_assert_eq!(longest_run(&text), by_chars);
        }
    }

    #[test]
    fn ascii_text_digests_as_its_characters_do() {
        let by_chars =
            |t: &str| digest_of(t.trim().chars().flat_map(char::to_lowercase).map(u32::from));
        for t in [
            "Buy NOW ",
            " hello\tWorld\n",
            "",
            "~!@#$%^&*()_+ 0123 ABC xyz",
        ] {
            assert_eq!(digest(t), by_chars(t), "{t:?}");
        }
        assert_eq!(digest("ÉCOLE"), digest("école"));
    }

    #[test]
    fn long_runs_of_one_character_are_spam() {
        let mut g = SpamGuard::new(5);
        let now = Instant::now();
        assert!(g.check("a", &"!".repeat(19), 0, now).is_ok());
        assert!(g.check("a", &"a".repeat(20), 0, now).is_err());
        assert!(g.check("a", &"ha".repeat(30), 0, now).is_ok());
        assert!(
            g.check("a", "a a a a a a a a a a a a a a a a a a a a", 0, now)
                .is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn links_are_counted_per_minute_and_users_forgotten() {
        let mut g = SpamGuard::new(3);
        let t0 = Instant::now();
        assert!(g.check("a", "l1 l2", 2, t0).is_ok());
        assert!(g.check("a", "l3", 1, t0).is_ok());
        assert!(g.check("a", "l4", 1, t0).is_err());
        assert!(g.check("a", "l4", 1, t0 + WINDOW).is_ok());
        for i in 0..2000 {
            g.check(&format!("u{i}"), "hi", 0, t0).unwrap();
        }
        g.check("late", "hi", 0, t0 + WINDOW * 2).unwrap();
        assert!(g.len() < 100, "old users swept: {}", g.len());
    }

    /// The rules as first written: every check reads the whole window.
    fn model(
        window: &mut Vec<(usize, u64, Instant, usize)>,
        user: usize,
        text: &str,
        links: usize,
        limit: usize,
        now: Instant,
    ) -> Result<(), Spam> {
        if longest_run(text) >= RUN {
            return Err(Spam::LongRun);
        }
        window.retain(|(_, _, t, _)| now.duration_since(*t) < WINDOW);
        let d = digest(text);
        let mine = || window.iter().filter(|(u, ..)| *u == user);
        if mine().filter(|(_, x, ..)| *x == d).count() + 1 >= REPEATS {
            return Err(Spam::Repeated);
        }
        if mine().map(|(.., l)| l).sum::<usize>() + links > limit {
            return Err(Spam::TooManyLinks);
        }
        window.push((user, d, now, links));
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        /// With enough distinct texts for the map to be swept again and
        /// again, it still decides exactly as reading the window.
        #[test]
        fn swept_texts_decide_as_reading_the_window(
            steps in proptest::collection::vec(
                (0usize..2, 0usize..150, 0u64..3_000), 1..600)
        ) {
            let mut g = SpamGuard::new(4);
            let mut window = Vec::new();
            let mut now = Instant::now();
            for (user, text, wait_ms) in steps {
                now += Duration::from_millis(wait_ms);
                let text = format!("text {text}");
                proptest::prop_assert_eq!(
                    g.check(&format!("u{user}"), &text, 0, now),
                    model(&mut window, user, &text, 0, 4, now)
                );
            }
        }
    }

    #[test]
    fn a_users_texts_are_swept_once_they_leave_the_window() {
        let mut g = SpamGuard::new(5);
        let t0 = Instant::now();
        for i in 0..1000 {
            g.check("a", &format!("m{i}"), 0, t0).unwrap();
        }
        g.check("a", "again", 0, t0).unwrap();
        g.check("a", "again", 0, t0).unwrap();
        let t1 = t0 + WINDOW / 2;
        for i in 0..1000 {
            g.check("a", &format!("n{i}"), 0, t1).unwrap();
        }
        let t2 = t0 + WINDOW;
        assert!(g.check("a", "again", 0, t2).is_ok(), "t0's copies left");
        for i in 0..2000 {
            g.check("a", &format!("p{i}"), 0, t2).unwrap();
        }
        let held = g.users.get("a", t2).unwrap().texts.len();
        // The window's 3,001 texts stay; t0's 1,000 went in a sweep.
        assert!((3001..4001).contains(&held), "{held} texts held");
        assert!(g.check("a", "m5", 0, t2).is_ok());
        assert!(g.check("a", "n5", 0, t2).is_ok());
        assert_eq!(g.check("a", "n5", 0, t2), Err(Spam::Repeated));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Counting copies in a map decides exactly as reading the window.
        #[test]
        fn counted_copies_decide_as_reading_the_window(
            steps in proptest::collection::vec(
                (0usize..3, 0usize..4, 0usize..3, 0u64..40_000), 1..120)
        ) {
            let texts = ["hi", " HI", "buy now", "see https://x.y"];
            let mut g = SpamGuard::new(4);
            let mut window = Vec::new();
            let mut now = Instant::now();
            for (user, text, links, wait_ms) in steps {
                now += Duration::from_millis(wait_ms);
                let user_name = format!("u{user}");
                proptest::prop_assert_eq!(
                    g.check(&user_name, texts[text], links, now),
                    model(&mut window, user, texts[text], links, 4, now)
                );
            }
        }
    }
}
