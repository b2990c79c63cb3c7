//! Content filters as plain functions over text: personal information
//! (emails, phone numbers, optionally links and social handles) and
//! profanity (rustrict: resistant to spacing, leetspeak and confusable
//! characters). Each filter is `off`, `mask` (matches become `***`) or
//! `block` (the text is refused), per deployment.

use std::sync::LazyLock;

use regex::{Regex, RegexBuilder};
use rustrict::{Censor, Type};

use super::screen::Screen;

/// What a filter does with a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FilterMode {
    #[default]
    Off,
    Mask,
    Block,
}

/// Why a text was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Pii,
    Profanity,
}

/// The deployment's filters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filters {
    pub pii: FilterMode,
    /// Links and social handles count as personal information too.
    pub pii_links: bool,
    pub profanity: FilterMode,
}

const MASK: &str = "***";
/// Common top-level domains: a spelled-out "at" needs one of them (or a
/// spelled-out "dot"), so "look at this. it" is not an address.
const TLDS: &str =
    "com|net|org|edu|gov|io|co|uk|de|fr|es|ru|info|me|us|ca|au|in|br|jp|nl|pl|se|ch|tv|app|dev|xyz";

fn ci(pattern: &str) -> Regex {
    RegexBuilder::new(pattern)
        .case_insensitive(true)
        .size_limit(1 << 22)
        .build()
        .expect("filter patterns are valid")
}

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    ci(&format!(
        r"[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{{2,24}}\b|\b[a-z0-9._%+-]{{2,}}\s*(?:@|\(at\)|\[at\]|\s+at\s+)\s*[a-z0-9-]{{2,}}\s*(?:\(dot\)|\[dot\]|\s+dot\s+)\s*[a-z]{{2,24}}\b|\b[a-z0-9._%+-]{{2,}}\s*(?:\(at\)|\[at\]|\s+at\s+)\s*[a-z0-9-]{{2,}}\.(?:{TLDS})\b"
    ))
});

/// Digit groups with phone separators; checked further by [`is_phone`].
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    ci(r"(?:\+\s?\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]?\d{2,5}){1,4}")
});

static DATE: LazyLock<Regex> =
    LazyLock::new(|| ci(r"^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4})$"));

static LINK: LazyLock<Regex> = LazyLock::new(|| {
    ci(&format!(
        r"\b(?:https?://|www\.)\S+|\b[a-z0-9-]{{2,}}\.(?:{TLDS})(?:/\S*)?\b"
    ))
});

static HANDLE: LazyLock<Regex> = LazyLock::new(|| {
    ci(
        r"(?:^|\s)@[a-z0-9_.]{2,30}\b|\b(?:insta|instagram|ig|snap|snapchat|sc|tiktok|telegram|tg|discord|whatsapp|kik)\s*[:=-]\s*@?[a-z0-9_.#]{2,32}",
    )
});

/// Whether a digit run the phone pattern found looks like a phone number:
/// 7 to 15 digits, and not a date or an amount of money.
fn is_phone(text: &str, start: usize, found: &str) -> bool {
    let digits = found.chars().filter(char::is_ascii_digit).count();
    if !(7..=15).contains(&digits) {
        return false;
    }
    if DATE.is_match(found.trim()) {
        return false;
    }
    let before = text[..start].trim_end().chars().last();
    !matches!(before, Some('$' | '€' | '£' | '¥'))
}

/// Which of the patterns could match a text: one pass over its bytes,
/// so a line of ordinary chat runs few or none of the regexes. Each clue is
/// a necessary condition of its pattern (a test compares with running
/// every pattern on every text).
#[derive(Debug, Clone, Copy)]
struct Clues {
    /// '@', or "at" (either case) between whitespace, '(' … ')' or
    /// '[' … ']': every form of [`EMAIL`] holds one.
    email: bool,
    /// Seven ASCII digits: [`is_phone`] keeps no match with fewer.
    phone: bool,
    /// "://", or a '.' followed by something other than whitespace:
    /// every [`LINK`] holds one.
    link: bool,
    /// '@', ':', '=' or '-': every [`HANDLE`] holds one.
    handle: bool,
}

impl Clues {
    /// Every pattern runs.
    #[cfg(test)]
    const ALL: Clues = Clues {
        email: true,
        phone: true,
        link: true,
        handle: true,
    };

    fn of(text: &str) -> Clues {
        let b = text.as_bytes();
        let mut digits = 0;
        let (mut at_sign, mut handle) = (false, false);
        for &c in b {
            match c {
                b'0'..=b'9' => digits += 1,
                b'@' => at_sign = true,
                b':' | b'=' | b'-' => handle = true,
                _ => {}
            }
        }
        Clues {
            email: at_sign || at_word(text),
            phone: digits >= 7,
            link: link_clue(text),
            handle: handle || at_sign,
        }
    }
}

/// [`Clues::link`] alone: what the spam rule's link count needs for
/// every message.
fn link_clue(text: &str) -> bool {
    let b = text.as_bytes();
    memchr::memchr2_iter(b':', b'.', b).any(|i| match b[i] {
        b':' => b[i..].starts_with(b"://"),
        _ => text[i + 1..]
            .chars()
            .next()
            .is_some_and(|n| !n.is_whitespace()),
    })
}

/// Whether `text` holds "at" in either case as a word between whitespace,
/// or as `(at)` or `[at]`.
fn at_word(text: &str) -> bool {
    let b = text.as_bytes();
    let mut from = 0;
    while let Some(i) = b[from..]
        .windows(2)
        .position(|w| w.eq_ignore_ascii_case(b"at"))
    {
        let at = from + i;
        let before = text[..at].chars().next_back();
        let after = text[at + 2..].chars().next();
        let open = before.is_some_and(|c| c.is_whitespace() || c == '(' || c == '[');
        let close = after.is_some_and(|c| c.is_whitespace() || c == ')' || c == ']');
        if open && close {
            return true;
        }
        from = at + 1;
    }
    false
}

/// How many links `text` holds (for the spam rules).
pub fn count_links(text: &str) -> usize {
    if !link_clue(text) {
        return 0;
    }
    LINK.find_iter(text).count()
}

/// The byte ranges of personal information in `text`.
fn pii_spans(text: &str, links: bool) -> Vec<(usize, usize)> {
    pii_spans_where(text, links, Clues::of(text))
}

/// [`pii_spans`], running only the patterns `clues` allows.
fn pii_spans_where(text: &str, links: bool, clues: Clues) -> Vec<(usize, usize)> {
    let mut spans: Vec<(usize, usize)> = Vec::new();
    if clues.email {
        spans.extend(EMAIL.find_iter(text).map(|m| (m.start(), m.end())));
    }
    if clues.phone {
        spans.extend(
            PHONE
                .find_iter(text)
                .filter(|m| is_phone(text, m.start(), m.as_str()))
                .map(|m| (m.start(), m.end())),
        );
    }
    if links {
        for (re, clue) in [(&*LINK, clues.link), (&*HANDLE, clues.handle)] {
            if clue {
                spans.extend(re.find_iter(text).map(|m| (m.start(), m.end())));
            }
        }
    }
    spans.sort_unstable();
    // Merge overlaps.
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    for (s, e) in spans {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

fn mask_spans(text: &str, spans: &[(usize, usize)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for &(s, e) in spans {
        out.push_str(&text[at..s]);
        // Keep the whitespace a handle match starts with.
        let lead = text[s..e].len() - text[s..e].trim_start().len();
        out.push_str(&text[s..s + lead]);
        out.push_str(MASK);
        at = e;
    }
    out.push_str(&text[at..]);
    out
}

/// rustrict's words, as a cheap screen: rustrict runs only on text that
/// could be profane (see `screen.rs`).
static SCREEN: LazyLock<Screen> = LazyLock::new(Screen::from_rustrict);

/// The profanity screen the filters use, built on first use.
pub fn screen() -> &'static Screen {
    &SCREEN
}

/// Builds the profanity screen now rather than on the first message.
pub fn warm_up() {
    screen();
}

fn profane(text: &str) -> bool {
    SCREEN.maybe_profane(text) && Censor::from_str(text).analyze().is(Type::INAPPROPRIATE)
}

/// rustrict as the mask uses it: what it finds inappropriate becomes '*'.
fn profanity_censor(text: &str) -> Censor<std::str::Chars<'_>> {
    let mut censor = Censor::from_str(text);
    censor
        .with_censor_threshold(Type::INAPPROPRIATE)
        .with_censor_first_character_threshold(Type::INAPPROPRIATE)
        .with_censor_replacement('*');
    censor
}

impl Filters {
    /// The text as it may be sent: unchanged, masked, or refused.
    pub fn apply(&self, text: &str) -> Result<String, Refused> {
        let mut out = text.to_string();
        if self.pii != FilterMode::Off {
            let spans = pii_spans(&out, self.pii_links);
            if !spans.is_empty() {
                if self.pii == FilterMode::Block {
                    return Err(Refused::Pii);
                }
                out = mask_spans(&out, &spans);
            }
        }
        match self.profanity {
            FilterMode::Off => {}
            FilterMode::Block if profane(&out) => return Err(Refused::Profanity),
            FilterMode::Block => {}
            // rustrict once: it censors and judges in the same pass.
            FilterMode::Mask if SCREEN.maybe_profane(&out) => {
                let (censored, found) = profanity_censor(&out).censor_and_analyze();
                if found.is(Type::INAPPROPRIATE) {
                    out = censored;
                }
            }
            FilterMode::Mask => {}
        }
        Ok(out)
    }

    /// Whether a username is refused (profanity on, in either mode).
    pub fn username_allowed(&self, name: &str) -> bool {
        self.profanity == FilterMode::Off || !profane(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pii(links: bool) -> Filters {
        Filters {
            pii: FilterMode::Mask,
            pii_links: links,
            profanity: FilterMode::Off,
        }
    }

    fn swear(mode: FilterMode) -> Filters {
        Filters {
            pii: FilterMode::Off,
            pii_links: false,
            profanity: mode,
        }
    }

    #[test]
    fn personal_information_is_found_in_its_usual_disguises() {
        let f = pii(false);
        for text in [
            "mail me at john.doe@example.com ok",
            "john at gmail dot com",
            "john (at) gmail (dot) com",
            "john [at] gmail [dot] com",
            "JOHN AT GMAIL.COM",
            "call +44 20 7946 0958",
            "call (555) 555-5555",
            "call 555.555.5555",
            "call 555-555-5555 now",
            "my number 5555555",
            "+1 415 555 2671",
            "ring 020 7946 0958",
        ] {
            let out = f.apply(text).unwrap();
            assert!(out.contains("***"), "{text:?} → {out:?}");
            assert!(
                out.chars().filter(char::is_ascii_digit).count() < 7,
                "{text:?} → {out:?}"
            );
        }
        assert_eq!(
            f.apply("write to a@b.io please").unwrap(),
            "write to *** please"
        );
    }

    #[test]
    fn times_prices_dates_and_sentences_pass() {
        let f = pii(false);
        for text in [
            "see you at 10:30",
            "it costs $19.99 or 1,000,000 yen",
            "the price is $1234567",
            "meet on 2026-11-23 or 23.11.2026",
            "look at this. it is nice",
            "I'm at home dot",
            "room 101, floor 3",
            "I was born in 1990",
            "class starts at 9",
        ] {
            assert_eq!(f.apply(text).unwrap(), text, "{text:?}");
        }
    }

    #[test]
    fn links_and_handles_only_when_asked() {
        for text in [
            "go to https://evil.example/x",
            "visit www.example.com",
            "see example.com/page",
            "follow @john_doe",
            "insta: john.doe",
            "snap - johnny99",
        ] {
            assert_eq!(pii(false).apply(text).unwrap(), text);
            assert!(pii(true).apply(text).unwrap().contains("***"), "{text:?}");
        }
        let block = Filters {
            pii: FilterMode::Block,
            pii_links: false,
            profanity: FilterMode::Off,
        };
        assert_eq!(block.apply("a@b.com"), Err(Refused::Pii));
        assert_eq!(block.apply("hello").unwrap(), "hello");
    }

    #[test]
    fn profanity_resists_evasion_and_spares_innocent_words() {
        let f = swear(FilterMode::Block);
        for text in [
            "fuck you",
            "f u c k",
            "fμ¢κ off",
            "sh1t",
            "f_u_c_k",
            "a$$hole",
            "fuuuuuck",
        ] {
            assert_eq!(f.apply(text), Err(Refused::Profanity), "{text:?}");
        }
        for text in [
            "Scunthorpe is a town",
            "class is at 10:30",
            "an assassin's creed",
            "push it",
            "grape juice",
            "it costs $5",
        ] {
            assert_eq!(f.apply(text).unwrap(), text, "{text:?}");
        }
        let masked = swear(FilterMode::Mask).apply("what the fuck").unwrap();
        assert!(
            masked.starts_with("what the ") && !masked.contains("fuck"),
            "{masked}"
        );
        assert!(!swear(FilterMode::Mask).username_allowed("fuckface"));
        assert!(swear(FilterMode::Mask).username_allowed("scunthorpe_fan"));
        assert!(swear(FilterMode::Off).username_allowed("fuckface"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
        /// The clues only skip patterns that could not match: the spans
        /// are those of every pattern run on the text.
        #[test]
        fn clues_skip_only_what_cannot_match(
            text in r"([aAtT@:=./\-\[\]()0-9 \t\u{a0}\u{3000}\u{17f}\u{212a}]|at|AT|dot|com|uk|se|www|https?://|\(at\)|\[at\]){0,24}"
        ) {
            for links in [false, true] {
                proptest::prop_assert_eq!(
                    pii_spans(&text, links),
                    pii_spans_where(&text, links, Clues::ALL),
                    "{:?}", text
                );
            }
            let every = LINK.find_iter(&text).count();
            proptest::prop_assert_eq!(count_links(&text), every);
        }
    }

    #[test]
    fn clues_on_the_usual_disguises() {
        for text in [
            "mail me at john.doe@example.com ok",
            "john at gmail dot com",
            "JOHN AT GMAIL.COM",
            "john (at) gmail (dot) com",
            "john\u{3000}at\u{a0}gmail.com",
            "go to https://evil.example/x",
            "x.ſe",
            "insta: john.doe",
            "snap - johnny99",
            "call 555-555-5555",
            "follow @john_doe",
        ] {
            for links in [false, true] {
                assert_eq!(
                    pii_spans(text, links),
                    pii_spans_where(text, links, Clues::ALL),
                    "{text:?}"
                );
            }
        }
        let plain = Clues::of("what do you do for fun? that is nice.");
        assert!(!plain.email && !plain.phone && !plain.link && !plain.handle);
    }

    /// Masking runs rustrict once (censor and judge in one pass): the same
    /// text as judging first and censoring a second time.
    #[test]
    fn one_pass_masks_as_two_did() {
        let lines = include_str!("../../bench/chat-lines.txt");
        let f = swear(FilterMode::Mask);
        for text in lines.lines().chain([
            "what the fuck",
            "f u c k you",
            "sh1t happens",
            "you are an a$$hole",
            "this is such a crap day",
            "Scunthorpe",
        ]) {
            let two = if profane(text) {
                profanity_censor(text).censor()
            } else {
                text.to_string()
            };
            assert_eq!(f.apply(text).unwrap(), two, "{text:?}");
        }
    }

    #[test]
    fn off_changes_nothing() {
        let f = Filters::default();
        assert_eq!(
            f.apply("fuck a@b.com 555-555-5555").unwrap(),
            "fuck a@b.com 555-555-5555"
        );
    }
}
