//! Spam rules as plain data: the same message a third time within a
//! minute, a long run of one character, or more than a set number of links
//! a minute is refused. State is per user and forgets a user a minute
//! after their last message, so it is bounded by users chatting now.
//! Each check costs the same whatever the user sent before: copies are
//! counted in a map kept beside the window's queue, not by reading it.

use std::{collections::VecDeque, hash::Hasher, time::Duration};

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

#[derive(Default)]
struct Recent {
    /// The window's texts (digests), oldest first.
    texts: VecDeque<(u64, Instant)>,
    /// How many times each digest is in `texts`.
    copies: FxHashMap<u64, usize>,
    links: VecDeque<Instant>,
}

pub struct SpamGuard {
    /// A user is forgotten a window after their last message.
    users: Expiring<Recent>,
    links_per_minute: usize,
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
        let r = self.users.touch(user, now);
        while let Some(&(d, _)) = r
            .texts
            .front()
            .filter(|(_, t)| now.duration_since(*t) >= WINDOW)
        {
            r.texts.pop_front();
            if let Some(n) = r.copies.get_mut(&d) {
                *n -= 1;
                if *n == 0 {
                    r.copies.remove(&d);
                }
            }
        }
        shrink_sparse(&mut r.copies);
        while r
            .links
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            r.links.pop_front();
        }
        let d = digest(text);
        if r.copies.get(&d).copied().unwrap_or(0) + 1 >= REPEATS {
            return Err(Spam::Repeated);
        }
        if r.links.len() + links > self.links_per_minute {
            return Err(Spam::TooManyLinks);
        }
        r.texts.push_back((d, now));
        *r.copies.entry(d).or_default() += 1;
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
