//! A cheap, conservative screen in front of rustrict.
//!
//! rustrict reads about 3 MB/s: ~12 µs for a chat line, as much as relaying
//! the message costs. Most chat lines hold nothing that could come near a
//! profanity, and this screen proves that for them with the same data
//! rustrict uses (its trie of words and its table of confusable
//! characters, read once through its public `serde` form), so rustrict runs
//! only on the lines that could be profane.
//!
//! The screen follows rustrict's matcher (`Censor::next`): a match is seeded
//! at every character, advances through the trie on any of the character's
//! replacements, and stays put over separators, repeats and the letter it
//! just read; a complete word is committed when its confidence (depth, span,
//! separation, severity, less the spaces, skips and replacements inside it)
//! is above zero. Where rustrict keeps one value the screen keeps a bound
//! that can only make it say "maybe" more often: the set of possible last
//! characters instead of one, the smallest counts of every merged path,
//! counts it cannot be sure of left out, false-positive words ("class",
//! "Scunthorpe") not applied. So `maybe_profane(text) == false` implies
//! rustrict finds nothing inappropriate in `text`; a differential test
//! (`tests::never_misses_what_rustrict_finds`) holds it to that.
//!
//! Only ASCII text is screened; anything else (accents that rustrict strips,
//! confusable letters, emoji) goes straight to rustrict.
//!
//! The matcher is a function from its state between two characters (the
//! matches in flight, positions relative to the last character) and a
//! byte to the next state and the words completed, so it is remembered as
//! a lazy DFA (`Dfa`, the technique of the `regex` crate's hybrid
//! engine): a transition is computed the first time it is taken and read
//! from a table afterwards. Words that recur cost a lookup per character;
//! the table is bounded, starts again when full, and steps aside for a
//! while when text is too varied for it to pay.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aho_corasick::{AhoCorasick, AhoCorasickKind};
use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::{FxBuildHasher, FxHashMap};
use rustrict::{Replacements, Trie, Type};
use serde::Deserialize;

/// rustrict's trie node, as its `serde` feature writes it.
#[derive(Deserialize)]
struct RawNode {
    children: HashMap<char, RawNode>,
    word: bool,
    contains_space: bool,
    typ: Type,
    depth: u8,
    last: Option<char>,
}

#[derive(Deserialize)]
struct RawTrie {
    root: RawNode,
}

#[derive(Deserialize)]
struct RawReplacements(HashMap<char, String>);

const ROOT: u32 = 0;

#[derive(Debug, Clone)]
struct Node {
    /// Children as `(char, node)`, sorted by char, in `Screen::edges`.
    edges: (u32, u32),
    /// Which ASCII characters have a child: they come first in `edges`, so
    /// a child's index is the number of set bits below its own.
    ascii: u128,
    /// The character that led here.
    last: Option<char>,
    depth: u8,
    contains_space: bool,
    /// A complete word rustrict counts as inappropriate.
    bad: bool,
    /// The part of rustrict's confidence that depends on the word alone.
    bonus: i8,
}

/// The screen: rustrict's words that are inappropriate (and the paths to
/// them), its false positives, and its replacements for ASCII characters.
pub struct Screen {
    nodes: Vec<Node>,
    edges: Vec<(char, u32)>,
    /// For every ASCII byte: the characters rustrict reads it as.
    candidates: Vec<Vec<char>>,
    /// The same, only those on some edge of the (pruned) trie.
    advancing: Vec<Vec<char>>,
    /// For every ASCII byte: `(reading, root child)` for the readings that
    /// start a word.
    seeds: Vec<Vec<(char, u32)>>,
    /// For every ASCII byte: the character it matches with no replacement
    /// (its lower case, or itself), if rustrict reads it as that; 0 if none.
    literal: [u8; 128],
    /// rustrict's false positives and safe phrases ("hello", "class",
    /// "push it"), ASCII ones, matched literally.
    false_positives: AhoCorasick,
    /// The same words, for [`Covers`].
    false_positive_words: Vec<Box<[u8]>>,
    /// Automata of the false positives that contain a found word.
    covers: Mutex<Covers>,
    /// Transitions met so far; a line that finds it busy (another thread
    /// screening) steps without it.
    dfa: Mutex<Dfa>,
}

/// One of rustrict's tables through its `serde` form, as our own type
/// (bytes in between, not a `serde_json::Value` tree of the whole trie).
fn read_back<T: serde::Serialize, R: serde::de::DeserializeOwned>(table: &T) -> R {
    serde_json::to_vec(table)
        .and_then(|bytes| serde_json::from_slice(&bytes))
        .expect("rustrict's tables read back through serde")
}

/// Words rustrict treats as false positives or safe (a complete match of
/// one with no spaces, skips or replacements cancels the profane matches
/// inside it), ASCII ones only.
fn collect_false_positives(node: &RawNode, path: &mut String, out: &mut Vec<String>) {
    if node.word && node.typ.isnt(Type::ANY) && !path.is_empty() && path.is_ascii() {
        out.push(path.clone());
    }
    for (&c, child) in &node.children {
        path.push(c);
        collect_false_positives(child, path, out);
        path.pop();
    }
}

fn ilog2(n: usize) -> i32 {
    n.max(1).ilog2() as i32
}

/// Characters that count as a space inside a match (`Censor::next`).
fn is_space_like(c: char) -> bool {
    matches!(c, ' ' | '.' | ',' | ':' | ';' | '…' | '(' | ')' | '_' | '-')
}

/// The word-only part of `Match::confidence`.
fn word_bonus(typ: Type, depth: u8) -> i8 {
    let mut bonus = 0i8;
    if typ.is(Type::SEVERE) {
        bonus += 3;
    } else if typ.is(Type::MODERATE_OR_HIGHER)
        && (depth == 1 || typ.isnt(Type::EVASIVE & Type::SEVERE))
    {
        bonus += 2;
    } else if typ.is(Type::MILD_OR_HIGHER)
        && (depth == 1 || typ.isnt(Type::EVASIVE & Type::MODERATE_OR_HIGHER))
    {
        bonus += 1;
    }
    if typ.is(Type::EVASIVE & Type::SEVERE) {
        bonus -= 3;
    } else if typ.is(Type::EVASIVE & Type::MODERATE_OR_HIGHER) {
        bonus -= 2;
    } else if typ.is(Type::EVASIVE & Type::MILD) {
        bonus -= 1;
    }
    bonus
}

/// The possible "last characters" of a match: ASCII ones as a bit set,
/// any other character as "could be anything else".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Lasts {
    ascii: u128,
    other: bool,
}

impl Lasts {
    fn one(c: char) -> Self {
        let mut lasts = Self::default();
        lasts.add(c);
        lasts
    }

    #[inline]
    fn may_be(&self, c: char) -> bool {
        if (c as u32) < 128 {
            self.ascii & (1u128 << (c as u32)) != 0
        } else {
            self.other
        }
    }

    #[inline]
    fn add(&mut self, c: char) {
        if (c as u32) < 128 {
            self.ascii |= 1u128 << (c as u32);
        } else {
            self.other = true;
        }
    }

    fn union(&mut self, other: &Lasts) {
        self.ascii |= other.ascii;
        self.other |= other.other;
    }
}

/// One in-flight match; counts are lower bounds of rustrict's. Positions
/// are relative, so that the same text leaves the same state wherever it
/// lies in a line (what lets `Dfa` remember transitions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Entry {
    node: u32,
    begin_separate: bool,
    /// How many characters before the current one the match started.
    back: u32,
    lasts: Lasts,
    spaces: u8,
    skipped: u8,
    replacements: u8,
    low_confidence: u8,
}

/// Merges entries of the same node and separation as rustrict's
/// `Match::combine` does (the smallest start and counts; here also every
/// possible last character).
fn merge(entries: &mut Vec<Entry>) {
    if entries.len() < 2 {
        return;
    }
    entries.sort_unstable_by_key(|e| (e.node, e.begin_separate));
    let mut kept = 0;
    for i in 1..entries.len() {
        let e = entries[i];
        let k = &mut entries[kept];
        if k.node == e.node && k.begin_separate == e.begin_separate {
            k.back = k.back.max(e.back);
            k.spaces = k.spaces.min(e.spaces);
            k.skipped = k.skipped.min(e.skipped);
            k.replacements = k.replacements.min(e.replacements);
            k.low_confidence = k.low_confidence.min(e.low_confidence);
            k.lasts.union(&e.lasts);
        } else {
            kept += 1;
            entries[kept] = e;
        }
    }
    entries.truncate(kept + 1);
}

/// The matcher between two characters: everything the next step reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct State {
    /// Matches in flight, merged (sorted by node and separation).
    current: Vec<Entry>,
    /// Complete words ending at the last character, waiting to learn
    /// whether a separator follows (sorted, no duplicates).
    pending: Vec<Entry>,
    /// The last character was a separator (or there was none).
    separate: bool,
    /// Whether the last character was a capital; None before the first.
    last_upper: Option<bool>,
}

impl State {
    fn start() -> Self {
        State {
            separate: true,
            ..State::default()
        }
    }

    fn clear(&mut self) {
        self.current.clear();
        self.pending.clear();
    }
}

/// The pseudo-byte of rustrict's appended space (the step after the last
/// character, which does not move the position), and the words it ends.
const END: usize = 128;
/// Steps per state: the 128 ASCII bytes and [`END`].
const STEPS: usize = 129;
const UNKNOWN: u16 = u16::MAX;
/// A transition's flag: it completes confident words (in `Dfa::found`).
const FINDS: u16 = 1 << 15;
/// The steps chat text takes most (lower-case letters, space, the end and
/// common punctuation): their slots of a state lie in one cache line, the
/// other steps' in a second table. A step costs what fetching its slot
/// costs (between two messages the server's other work evicts the table
/// from the CPU's caches), so the slots text uses most are kept together.
const HOT: &[u8; HOT_ROW - 1] = b"abcdefghijklmnopqrstuvwxyz .,'?";
/// Where each step's slot is: `< 32` in the hot row, else `32 +` its
/// index in the cold row.
const SLOTS: [u8; STEPS] = {
    let mut slots = [u8::MAX; STEPS];
    let mut i = 0;
    while i < HOT.len() {
        slots[HOT[i] as usize] = i as u8;
        i += 1;
    }
    slots[END] = HOT.len() as u8;
    let mut cold = HOT_ROW as u8;
    let mut b = 0;
    while b < STEPS {
        if slots[b] == u8::MAX {
            slots[b] = cold;
            cold += 1;
        }
        b += 1;
    }
    slots
};
/// Slots in a hot row (one cache line of `u16`s) and in a cold one.
const HOT_ROW: usize = 32;
const COLD_ROW: usize = STEPS - HOT_ROW;

/// A state's hot slots, aligned to a cache line.
#[derive(Clone, Copy)]
#[repr(align(64))]
struct HotRow([u16; HOT_ROW]);

/// The most states a cache holds before it starts again (transition
/// tables of ~1 MB: 64 bytes of hot slots and 194 of cold ones a state).
const MAX_STATES: usize = 4096;
const _: () = assert!(MAX_STATES < FINDS as usize);
/// Every this many steps the cache checks how often it missed: past one
/// in [`MAX_MISS_SHARE`] (text too varied for it to pay: a miss costs
/// about two steps without the cache, a hit a twentieth of one), lines
/// step without it for [`BYPASS_STEPS`] steps, and then use it again with
/// the states it had. The first window after it starts (empty) is not
/// judged: it misses by nature.
const WINDOW_STEPS: u32 = 16_384;
const MAX_MISS_SHARE: u32 = 3;
const BYPASS_STEPS: u32 = 1 << 20;

/// The matcher's transitions as it meets them (a lazy DFA, as the `regex`
/// crate's hybrid engine): states by index, each with one slot per step,
/// filled the first time the step is taken from it.
struct Dfa {
    states: Vec<State>,
    /// The states' indexes, by the states' hashes.
    index: HashTable<u32>,
    /// Each state's transitions (a state's index, `FINDS` or-ed in, or
    /// `UNKNOWN`), by [`SLOTS`].
    hot: Vec<HotRow>,
    cold: Vec<u16>,
    /// Confident complete words a transition finds: `(back to start, back
    /// to end)`, relative to the character that was read.
    found: FxHashMap<(u32, u16), Vec<(u32, u32)>>,
    /// Steps and misses in the current window.
    steps: u32,
    misses: u32,
    /// Steps left to take without the cache.
    bypass: u32,
    /// The cache is new or has just started again: its first window
    /// misses by nature and is not judged.
    warming: bool,
}

impl Dfa {
    fn new() -> Self {
        let mut dfa = Dfa {
            states: Vec::new(),
            index: HashTable::new(),
            hot: Vec::new(),
            cold: Vec::new(),
            found: FxHashMap::default(),
            steps: 0,
            misses: 0,
            bypass: 0,
            warming: true,
        };
        dfa.intern(&State::start());
        dfa
    }

    /// Forgets every state but the start (keeping its memory).
    fn reset(&mut self) {
        self.states.clear();
        self.index.clear();
        self.hot.clear();
        self.cold.clear();
        self.found.clear();
        self.warming = true;
        self.intern(&State::start());
    }

    fn intern(&mut self, state: &State) -> u32 {
        let hash = FxBuildHasher.hash_one(state);
        let states = &self.states;
        if let Some(&i) = self.index.find(hash, |&i| states[i as usize] == *state) {
            return i;
        }
        let i = self.states.len() as u32;
        // Indexes fit a slot beside the `FINDS` flag (the cache starts
        // again at MAX_STATES).
        debug_assert!(i < u32::from(FINDS));
        self.states.push(state.clone());
        let states = &self.states;
        self.index
            .insert_unique(hash, i, |&j| FxBuildHasher.hash_one(&states[j as usize]));
        self.hot.push(HotRow([UNKNOWN; HOT_ROW]));
        self.cold.extend(std::iter::repeat_n(UNKNOWN, COLD_ROW));
        i
    }

    /// The transition from `state` by `step`.
    #[inline]
    fn get(&self, state: u32, step: usize) -> u16 {
        let slot = SLOTS[step] as usize;
        if slot < HOT_ROW {
            self.hot[state as usize].0[slot]
        } else {
            self.cold[state as usize * COLD_ROW + slot - HOT_ROW]
        }
    }

    fn set(&mut self, state: u32, step: usize, to: u16) {
        let slot = SLOTS[step] as usize;
        if slot < HOT_ROW {
            self.hot[state as usize].0[slot] = to;
        } else {
            self.cold[state as usize * COLD_ROW + slot - HOT_ROW] = to;
        }
    }

    /// Whether the next line of `len` bytes should step without the
    /// cache; counts it against the bypass.
    fn bypassed(&mut self, len: usize) -> bool {
        if self.bypass == 0 {
            return false;
        }
        // The states stay: when the bypass ends they are still of use.
        self.bypass = self.bypass.saturating_sub(len as u32 + 1);
        true
    }

    /// Counts a line's steps and misses; past the window, decides whether
    /// the cache pays.
    fn account(&mut self, steps: u32, misses: u32) {
        self.steps += steps;
        self.misses += misses;
        if self.steps >= WINDOW_STEPS {
            if !std::mem::take(&mut self.warming) && self.misses * MAX_MISS_SHARE > self.steps {
                self.bypass = BYPASS_STEPS;
            }
            self.steps = 0;
            self.misses = 0;
        }
    }
}

impl Screen {
    /// Reads rustrict's built-in trie and replacements.
    pub fn from_rustrict() -> Self {
        let trie: RawTrie = read_back(&Trie::default());
        let replacements: RawReplacements = read_back(&Replacements::default());
        let candidates: Vec<Vec<char>> = (0u8..128)
            .map(|b| {
                let raw = b as char;
                match replacements.0.get(&raw) {
                    Some(s) => s.chars().collect(),
                    None => vec![raw],
                }
            })
            .collect();
        let mut literal = [0u8; 128];
        for b in 1u8..128 {
            // Lower case first: rustrict reads an upper-case letter as its
            // lower case without counting a replacement, and its words
            // (false positives included) are lower case, so `Japanese`
            // completes the false positive `japan` as `japanese` does.
            let lower = b.to_ascii_lowercase();
            if candidates[b as usize].contains(&(lower as char)) {
                literal[b as usize] = lower;
            } else if candidates[b as usize].contains(&(b as char)) {
                literal[b as usize] = b;
            }
        }
        let mut words = Vec::new();
        collect_false_positives(&trie.root, &mut String::new(), &mut words);
        // The compact automaton: a DFA of 20,000 words would cost megabytes.
        let false_positives = AhoCorasick::builder()
            .kind(Some(AhoCorasickKind::ContiguousNFA))
            .build(&words)
            .expect("rustrict's false positives build an automaton");
        let false_positive_words = words.iter().map(|w| w.as_bytes().into()).collect();
        let mut screen = Screen {
            nodes: Vec::new(),
            edges: Vec::new(),
            candidates,
            advancing: Vec::new(),
            seeds: Vec::new(),
            literal,
            false_positives,
            false_positive_words,
            covers: Mutex::new(Covers::default()),
            dfa: Mutex::new(Dfa::new()),
        };
        screen.add(&trie.root);
        let alphabet: std::collections::HashSet<char> =
            screen.edges.iter().map(|(c, _)| *c).collect();
        screen.advancing = screen
            .candidates
            .iter()
            .map(|cs| {
                cs.iter()
                    .copied()
                    .filter(|c| alphabet.contains(c))
                    .collect()
            })
            .collect();
        screen.seeds = screen
            .advancing
            .iter()
            .map(|cs| {
                cs.iter()
                    .filter_map(|&c| screen.child(ROOT, c).map(|n| (c, n)))
                    .collect()
            })
            .collect();
        screen
    }

    /// Adds `node` and its descendants that lead to inappropriate words,
    /// in one pass; returns its index, or `None` (nothing added) when no
    /// inappropriate word lies at or below it.
    fn add(&mut self, node: &RawNode) -> Option<u32> {
        let index = self.nodes.len() as u32;
        let bad = node.word && node.typ.is(Type::INAPPROPRIATE);
        self.nodes.push(Node {
            edges: (0, 0),
            ascii: 0,
            last: node.last,
            depth: node.depth,
            contains_space: node.contains_space,
            bad,
            bonus: word_bonus(node.typ, node.depth),
        });
        let mut sorted: Vec<(char, &RawNode)> =
            node.children.iter().map(|(c, child)| (*c, child)).collect();
        sorted.sort_unstable_by_key(|(c, _)| *c);
        let children: Vec<(char, u32)> = sorted
            .into_iter()
            .filter_map(|(c, child)| self.add(child).map(|n| (c, n)))
            .collect();
        if !bad && children.is_empty() && index != ROOT {
            // A pruned subtree added nothing, so this node is the last one.
            self.nodes.pop();
            return None;
        }
        let from = self.edges.len() as u32;
        let ascii = children
            .iter()
            .filter(|(c, _)| (*c as u32) < 128)
            .fold(0u128, |mask, (c, _)| mask | 1u128 << (*c as u32));
        self.edges.extend(children);
        let node = &mut self.nodes[index as usize];
        node.edges = (from, self.edges.len() as u32);
        node.ascii = ascii;
        Some(index)
    }

    fn child(&self, node: u32, c: char) -> Option<u32> {
        let n = &self.nodes[node as usize];
        let (from, to) = n.edges;
        if (c as u32) < 128 {
            let bit = 1u128 << (c as u32);
            if n.ascii & bit == 0 {
                return None;
            }
            let rank = (n.ascii & (bit - 1)).count_ones();
            return Some(self.edges[(from + rank) as usize].1);
        }
        let edges = &self.edges[from as usize..to as usize];
        if edges.len() <= 8 {
            edges.iter().find(|(e, _)| *e == c).map(|(_, n)| *n)
        } else {
            edges
                .binary_search_by_key(&c, |(e, _)| *e)
                .ok()
                .map(|i| edges[i].1)
        }
    }

    /// How many inappropriate words (and prefixes of them) the screen holds.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the screen holds no words.
    pub fn is_empty(&self) -> bool {
        self.nodes.len() <= 1
    }

    /// An upper bound of rustrict's confidence in a complete match of
    /// `span` characters after its first.
    fn confident(&self, e: &Entry, span: u32, end_separate: bool) -> bool {
        let node = &self.nodes[e.node as usize];
        let mut confidence = ilog2(node.depth as usize) + ilog2(span as usize);
        if node.depth == 1 {
            confidence += 1;
        } else {
            if !e.begin_separate {
                confidence -= 2;
                if node.contains_space {
                    confidence -= 3;
                }
            }
            if !end_separate {
                confidence -= 1;
            }
            if !e.begin_separate && !end_separate {
                confidence -= 1;
            }
        }
        confidence += node.bonus as i32;
        confidence -= ilog2(e.skipped as usize + e.spaces as usize + e.replacements as usize + 1);
        confidence -= ilog2(e.low_confidence as usize + 1);
        if node.depth == 2 && e.low_confidence > 0 {
            confidence -= 2;
        }
        confidence > 0
    }

    /// Match `m` reads `c` (one of `raw`'s readings) into `child`.
    #[inline]
    fn advance(&self, m: &Entry, c: char, child: u32, raw: u8, out: &mut State) {
        let raw_c = raw as char;
        let benign = c == raw_c || c == raw.to_ascii_lowercase() as char;
        let new_replacement = !benign && c != ' ';
        let new_low = new_replacement && raw.is_ascii_digit();
        let skippable = !raw.is_ascii_alphabetic();
        let new_space = !new_replacement && raw_c != c && skippable && c != '\'';
        let advanced = Entry {
            node: child,
            lasts: Lasts::one(c),
            spaces: m.spaces.saturating_add(new_space as u8),
            replacements: m.replacements.saturating_add(new_replacement as u8),
            low_confidence: m.low_confidence.saturating_add(new_low as u8),
            ..*m
        };
        let child_node = &self.nodes[child as usize];
        if child_node.bad {
            out.pending.push(advanced);
        }
        if child_node.edges.0 != child_node.edges.1 {
            out.current.push(advanced);
        }
    }

    /// One step of the matcher from `s` into `out`: the ASCII byte `step`,
    /// or [`END`] (rustrict's appended space, at the last character's
    /// position, and the words it completes). Confident complete words go
    /// to `found` as `(back to start, back to end)` from the character read.
    fn step(&self, s: &State, step: usize, out: &mut State, found: &mut Vec<(u32, u32)>) {
        let end = step == END;
        let (raw, moved) = if end { (b' ', 0) } else { (step as u8, 1) };
        out.clear();
        let skippable = !raw.is_ascii_alphabetic();
        for e in &s.pending {
            // It ended at the last character: `back` is its span.
            if self.confident(e, e.back, skippable) {
                found.push((e.back + moved, moved));
            }
        }
        let seed_separate = s.separate || (raw.is_ascii_uppercase() && s.last_upper == Some(false));
        out.separate = skippable;
        out.last_upper = Some(raw.is_ascii_uppercase());
        let all = &self.candidates[raw as usize];
        // Seeds: a match starts at every character (and never stays).
        for &(c, child) in &self.seeds[raw as usize] {
            let seed = Entry {
                node: ROOT,
                begin_separate: seed_separate,
                back: 0,
                lasts: Lasts::default(),
                spaces: 0,
                skipped: 0,
                replacements: 0,
                low_confidence: 0,
            };
            self.advance(&seed, c, child, raw, out);
        }
        for m in &s.current {
            let m = &Entry {
                back: m.back.saturating_add(moved),
                ..*m
            };
            let node = &self.nodes[m.node as usize];
            // Stays, one per candidate in rustrict, merged here (its
            // `combine` keeps the smallest counts and any last).
            let mut stayed = false;
            let mut lasts = Lasts::default();
            let (mut spaces, mut skipped) = (1u8, 1u8);
            for &c in all {
                if skippable || m.lasts.may_be(c) || node.last == Some(c) {
                    let new_space = is_space_like(c) && node.last != Some(' ');
                    let ignore_sep = matches!(c, '-' | '\'' | '\n' | '\r');
                    // A skip only when it cannot be a repetition.
                    let new_skip = !new_space && skippable && !ignore_sep && !m.lasts.may_be(c);
                    stayed = true;
                    lasts.add(c);
                    spaces = spaces.min(new_space as u8);
                    skipped = skipped.min(new_skip as u8);
                }
            }
            if stayed {
                out.current.push(Entry {
                    lasts,
                    spaces: m.spaces.saturating_add(spaces),
                    skipped: m.skipped.saturating_add(skipped),
                    ..*m
                });
            }
            for &c in &self.advancing[raw as usize] {
                if let Some(child) = self.child(m.node, c) {
                    self.advance(m, c, child, raw, out);
                }
            }
        }
        merge(&mut out.current);
        if end {
            // Words completed by the appended space: nothing follows them.
            for e in &out.pending {
                if self.confident(e, e.back, true) {
                    found.push((e.back, 0));
                }
            }
            out.pending.clear();
        } else {
            out.pending.sort_unstable();
            out.pending.dedup();
        }
    }

    /// `false` only if rustrict cannot find `text` inappropriate (its
    /// default options, as `Censor::from_str(text).analyze()`); `true` when
    /// it might, or when the text is not ASCII.
    pub fn maybe_profane(&self, text: &str) -> bool {
        if !text.is_ascii() || text.contains('*') {
            // Not screened; '*' is rustrict's self-censoring signal.
            return true;
        }
        let mut found = Vec::new();
        let bytes = text.as_bytes();
        // Another thread may hold the cache, or it may not pay now.
        let cached = match self.dfa.try_lock() {
            Ok(mut dfa) => {
                let use_it = !dfa.bypassed(bytes.len());
                if use_it {
                    self.run_cached(&mut dfa, bytes, &mut found);
                }
                use_it
            }
            Err(_) => false,
        };
        if !cached {
            self.run(bytes, &mut found);
        }
        if found.is_empty() {
            return false;
        }
        !self.all_false_positives(text.as_bytes(), &found)
    }

    /// The matcher over `bytes` step by step; confident complete words go
    /// to `found` as `(start, end)`.
    fn run(&self, bytes: &[u8], found: &mut Vec<(usize, usize)>) {
        debug_assert!(bytes.is_ascii());
        let (mut state, mut next) = (State::start(), State::default());
        let mut words = Vec::new();
        for (step, pos) in steps(bytes) {
            words.clear();
            self.step(&state, step, &mut next, &mut words);
            absolute(pos, &words, found);
            std::mem::swap(&mut state, &mut next);
        }
    }

    /// [`Screen::run`] through the cache of transitions.
    fn run_cached(&self, dfa: &mut Dfa, bytes: &[u8], found: &mut Vec<(usize, usize)>) {
        debug_assert!(bytes.is_ascii());
        let mut state = 0u32;
        let mut next = State::default();
        let mut words = Vec::new();
        let mut misses = 0;
        for (step, pos) in steps(bytes) {
            let mut to = dfa.get(state, step);
            if to == UNKNOWN {
                misses += 1;
                if dfa.states.len() >= MAX_STATES {
                    // Full: start again from the state we are in.
                    let current = dfa.states[state as usize].clone();
                    dfa.reset();
                    state = dfa.intern(&current);
                }
                words.clear();
                self.step(&dfa.states[state as usize], step, &mut next, &mut words);
                to = dfa.intern(&next) as u16;
                if !words.is_empty() {
                    to |= FINDS;
                    dfa.found.insert((state, step as u16), words.clone());
                }
                dfa.set(state, step, to);
            }
            if to & FINDS != 0
                && let Some(words) = dfa.found.get(&(state, step as u16))
            {
                absolute(pos, words, found);
            }
            state = (to & !FINDS) as u32;
        }
        dfa.account(bytes.len() as u32 + 1, misses);
    }

    /// How many states the cache of transitions holds now.
    pub fn cached_states(&self) -> usize {
        self.dfa.lock().map(|d| d.states.len()).unwrap_or(0)
    }

    /// Whether every word in `found` lies inside a false positive that
    /// rustrict certainly completes (read literally: every character as
    /// itself or its lower case), which cancels it: a false positive from
    /// `start` to `end` stays in flight until `end`, so no match inside it
    /// is committed before it completes, and its completion cancels every
    /// pending match that starts at or after `start`.
    fn all_false_positives(&self, bytes: &[u8], found: &[(usize, usize)]) -> bool {
        let mut text: Vec<u8> = bytes.iter().map(|&b| self.literal[b as usize]).collect();
        // rustrict's appended space, at the last character's position.
        text.push(self.literal[b' ' as usize]);
        let last = bytes.len().saturating_sub(1);
        found.iter().all(|&(start, end)| {
            // A false positive that covers the word holds its literal
            // reading: only those need looking for (a small automaton the
            // server's other work does not push out of the CPU's caches,
            // where the whole list's costs a memory fetch a character).
            let covers = |a: &AhoCorasick| {
                a.find_overlapping_iter(&text[..]).any(|m| {
                    !m.is_empty() && m.start().min(last) <= start && end <= (m.end() - 1).min(last)
                })
            };
            let word = &text[start..=end];
            // Another thread may be looking: then the whole list.
            match self.covers.try_lock() {
                Ok(mut by_word) => {
                    let automaton = by_word.of(word, &self.false_positive_words);
                    drop(by_word);
                    automaton.is_some_and(|a| covers(&a))
                }
                Err(_) => covers(&self.false_positives),
            }
        })
    }
}

/// Automata of rustrict's false positives by the word they must contain,
/// built the first time the screen finds that word (its literal reading);
/// `None` when no false positive contains it. At most [`MAX_COVERS`]
/// words, then it starts again.
#[derive(Default)]
struct Covers {
    by_word: FxHashMap<Box<[u8]>, Option<Arc<AhoCorasick>>>,
}

const MAX_COVERS: usize = 1024;
/// Longer words are never inside a false positive (rustrict's longest is
/// far shorter; a test holds this bound above them).
const MAX_COVERED: usize = 64;

impl Covers {
    fn of(&mut self, word: &[u8], all: &[Box<[u8]>]) -> Option<Arc<AhoCorasick>> {
        if word.len() > MAX_COVERED {
            // Longer than any false positive (and not worth keeping).
            return None;
        }
        if let Some(a) = self.by_word.get(word) {
            return a.clone();
        }
        if self.by_word.len() >= MAX_COVERS {
            self.by_word.clear();
        }
        let holding: Vec<&[u8]> = all
            .iter()
            .map(|w| &w[..])
            .filter(|w| w.windows(word.len()).any(|part| part == word))
            .collect();
        let automaton = (!holding.is_empty()).then(|| {
            Arc::new(
                AhoCorasick::builder()
                    .kind(Some(AhoCorasickKind::ContiguousNFA))
                    .build(&holding)
                    .expect("false positives build an automaton"),
            )
        });
        self.by_word.insert(word.into(), automaton.clone());
        automaton
    }
}

/// The matcher's steps over `bytes` with the position each reads at: every
/// byte, then [`END`] at the last byte's position.
fn steps(bytes: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let last = bytes.len().saturating_sub(1);
    (bytes.iter().enumerate().map(|(i, &b)| (b as usize, i))).chain(std::iter::once((END, last)))
}

/// Relative words found at `pos` as `(start, end)` positions.
fn absolute(pos: usize, words: &[(u32, u32)], found: &mut Vec<(usize, usize)>) {
    found.extend(words.iter().map(|&(start, end)| {
        (
            pos.saturating_sub(start as usize),
            pos.saturating_sub(end as usize),
        )
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustrict::Censor;
    use std::sync::LazyLock;

    /// The filters' screen (one build per test binary).
    static SCREEN: LazyLock<&Screen> = LazyLock::new(crate::safety::filter::screen);

    fn rustrict_finds(text: &str) -> bool {
        Censor::from_str(text).analyze().is(Type::INAPPROPRIATE)
    }

    /// Whether rustrict finds `text` inappropriate; fails if the screen
    /// let it through.
    #[track_caller]
    fn check(text: &str) -> bool {
        let found = rustrict_finds(text);
        if found {
            assert!(SCREEN.maybe_profane(text), "screen missed {text:?}");
        }
        found
    }

    /// Every inappropriate word rustrict knows, read back from the screen.
    fn words() -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![(ROOT, String::new())];
        while let Some((node, word)) = stack.pop() {
            let n = &SCREEN.nodes[node as usize];
            if n.bad {
                out.push(word.clone());
            }
            for &(c, child) in &SCREEN.edges[n.edges.0 as usize..n.edges.1 as usize] {
                let mut w = word.clone();
                w.push(c);
                stack.push((child, w));
            }
        }
        out.sort();
        out
    }

    /// A small deterministic generator (xorshift), so the test is the same
    /// on every run.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    const ORDINARY: &[&str] = &[
        "hey how are you doing today",
        "lol that is so funny",
        "where are you from?",
        "I'm from Scunthorpe, it's in England",
        "what class are you taking this semester",
        "see you at 10:30 tomorrow",
        "it costs $19.99 at the shop",
        "was she at the party last night?",
        "hello there, nice to meet you",
        "do you like music? I listen to a lot of rock",
        "my cat just knocked over a glass of water",
        "I have to go, talk later!",
        "what do you do for work",
        "I'm a teacher, I teach history and geography",
        "the weather here is terrible, it has been raining all week",
        "have you seen the new movie? it was great",
    ];

    #[test]
    fn reads_rustricts_words() {
        let words = words();
        assert!(words.len() > 500, "only {} words", words.len());
    }

    #[test]
    fn known_evasions_are_screened_in() {
        for text in [
            "fuck",
            "f u c k",
            "F.U.C.K",
            "fuuuuck you",
            "sh1t",
            "what the fck",
            "you are an a55hole",
            "c r_a-p",
            "go f*ck yourself",
            "n1gger",
            "ShIt",
            "bitch",
            "b!tch",
        ] {
            assert!(check(text), "rustrict finds {text:?}");
        }
    }

    #[test]
    fn ordinary_text_is_mostly_screened_out() {
        let passed = ORDINARY.iter().filter(|t| !SCREEN.maybe_profane(t)).count();
        eprintln!("{passed} of {} ordinary lines screened out", ORDINARY.len());
        for t in ORDINARY {
            check(t);
        }
        assert!(
            passed * 4 >= ORDINARY.len() * 3,
            "only {passed} of {} ordinary lines screened out",
            ORDINARY.len()
        );
    }

    /// The screen must say "maybe" for everything rustrict finds: every
    /// word it knows, alone and inside ordinary text, in capitals, spaced
    /// out, with repeated letters, confusable ASCII stand-ins and
    /// punctuation inside.
    #[test]
    fn never_misses_what_rustrict_finds() {
        let words = words();
        let mut rng = Rng(0x5eed_1234_abcd_ef01);
        // ASCII characters rustrict reads as each letter.
        let mut stand_ins: HashMap<char, Vec<u8>> = HashMap::new();
        for b in 0u8..128 {
            for &c in &SCREEN.candidates[b as usize] {
                stand_ins.entry(c).or_default().push(b);
            }
        }
        let cases = if cfg!(debug_assertions) { 3000 } else { 30000 };
        let mut found = 0;
        for i in 0..cases {
            let word = &words[rng.below(words.len())];
            let mut out = String::new();
            for c in word.chars() {
                match rng.below(8) {
                    0 => out.push(c.to_ascii_uppercase()),
                    1 => {
                        let options = stand_ins.get(&c).map(Vec::as_slice).unwrap_or(&[]);
                        if options.is_empty() {
                            out.push(c);
                        } else {
                            out.push(options[rng.below(options.len())] as char);
                        }
                    }
                    2 => {
                        out.push(c);
                        out.push(c);
                    }
                    3 => {
                        out.push(c);
                        out.push([' ', '.', '-', '_', '\'', '1', '!'][rng.below(7)]);
                    }
                    _ => out.push(c),
                }
            }
            let text = match i % 3 {
                0 => out,
                1 => format!("{} {out}", ORDINARY[rng.below(ORDINARY.len())]),
                _ => format!(
                    "{}{out} {}",
                    &ORDINARY[rng.below(ORDINARY.len())][..rng.below(8)],
                    ORDINARY[rng.below(ORDINARY.len())]
                ),
            };
            if !text.is_ascii() {
                continue;
            }
            found += check(&text) as usize;
        }
        // Most variants stay profane for rustrict: the test has teeth.
        assert!(found * 2 > cases, "rustrict found only {found} of {cases}");
    }

    /// rustrict's false positives and profane words side by side, joined by
    /// separators or nothing, in mixed case and with stand-ins: where the
    /// screen's false-positive reasoning could go wrong.
    #[test]
    fn never_misses_around_false_positives() {
        let trie: RawTrie = read_back(&Trie::default());
        let mut fps = Vec::new();
        collect_false_positives(&trie.root, &mut String::new(), &mut fps);
        let bad = words();
        let mut rng = Rng(0x000f_a15e_9051_7173);
        let cases = if cfg!(debug_assertions) { 4000 } else { 40000 };
        let mut found = 0;
        for _ in 0..cases {
            let mut text = String::new();
            for _ in 0..1 + rng.below(4) {
                let word = if rng.below(3) == 0 {
                    &bad[rng.below(bad.len())]
                } else {
                    &fps[rng.below(fps.len())]
                };
                for c in word.chars() {
                    match rng.below(12) {
                        0 => text.push(c.to_ascii_uppercase()),
                        1 => text.push(match c {
                            'a' => '@',
                            'i' => '1',
                            'o' => '0',
                            's' => '$',
                            'e' => '3',
                            other => other,
                        }),
                        2 => {
                            text.push(c);
                            text.push(c);
                        }
                        _ => text.push(c),
                    }
                }
                text.push_str(["", " ", " ", ".", "-", "'", ", "][rng.below(7)]);
            }
            if text.is_ascii() {
                found += check(&text) as usize;
            }
        }
        assert!(found * 10 > cases, "rustrict found only {found} of {cases}");
    }

    /// Capitalised words inside false positives are cleared as their lower
    /// case is (rustrict reads `J` as `j` with no replacement): these went
    /// to rustrict while the screen read `J` only as itself.
    #[test]
    fn capitals_complete_false_positives() {
        for line in [
            "I'm learning Japanese, it is hard",
            "Japanese",
            "I'm from Scunthorpe, it's a town in England",
            "Hello there",
        ] {
            assert!(
                !rustrict::Censor::from_str(line)
                    .analyze()
                    .is(Type::INAPPROPRIATE)
            );
            assert!(!SCREEN.maybe_profane(line), "{line:?}");
        }
    }

    /// No false positive is longer than the words the screen looks them
    /// up for.
    #[test]
    fn false_positives_fit_the_cover_bound() {
        let longest = SCREEN.false_positive_words.iter().map(|w| w.len()).max();
        assert!(longest.is_some_and(|n| n <= MAX_COVERED), "{longest:?}");
    }

    /// Looking for the false positives that contain a found word decides
    /// as looking for all of them does.
    #[test]
    fn false_positives_by_word_decide_as_the_whole_list() {
        let whole = |bytes: &[u8], found: &[(usize, usize)]| {
            let mut text: Vec<u8> = bytes.iter().map(|&b| SCREEN.literal[b as usize]).collect();
            text.push(SCREEN.literal[b' ' as usize]);
            let last = bytes.len().saturating_sub(1);
            let spans: Vec<(usize, usize)> = SCREEN
                .false_positives
                .find_overlapping_iter(&text)
                .filter(|m| !m.is_empty())
                .map(|m| (m.start().min(last), (m.end() - 1).min(last)))
                .collect();
            found
                .iter()
                .all(|&(s, e)| spans.iter().any(|&(fs, fe)| fs <= s && e <= fe))
        };
        let mut lines: Vec<String> = include_str!("../../bench/chat-lines.txt")
            .lines()
            .map(String::from)
            .collect();
        lines.extend(
            [
                "hello hell hellO shell",
                "a class of asses",
                "Scunthorpe",
                "ho ho ho",
                "h0 hooo",
                "push it",
                "but the title",
                "cocktails and cock",
                "x",
                "ass",
            ]
            .map(String::from),
        );
        let mut checked = 0;
        for line in &lines {
            let mut found = Vec::new();
            SCREEN.run(line.as_bytes(), &mut found);
            if found.is_empty() {
                continue;
            }
            checked += 1;
            for _ in 0..2 {
                // The second time from the automata built the first.
                assert_eq!(
                    SCREEN.all_false_positives(line.as_bytes(), &found),
                    whole(line.as_bytes(), &found),
                    "{line:?}"
                );
            }
        }
        assert!(checked > 20, "only {checked} lines had words");
    }

    /// The words a line holds, found by the cache of transitions and by
    /// stepping without it, sorted.
    type Words = Vec<(usize, usize)>;

    fn both_ways(dfa: &mut Dfa, text: &str) -> (Words, Words) {
        let (mut cached, mut direct) = (Vec::new(), Vec::new());
        SCREEN.run_cached(dfa, text.as_bytes(), &mut cached);
        SCREEN.run(text.as_bytes(), &mut direct);
        for v in [&mut cached, &mut direct] {
            v.sort_unstable();
            v.dedup();
        }
        (cached, direct)
    }

    /// The cache of transitions finds exactly what stepping finds: on
    /// ordinary lines (seen again, so through remembered transitions), on
    /// mutated profanity, and on random text past the cache's size (so
    /// across its resets, mid-line included).
    #[test]
    fn the_cache_finds_what_stepping_finds() {
        let mut dfa = Dfa::new();
        let words = words();
        let mut rng = Rng(0x00ca_c4ed_5eed_0001);
        const ALPHABET: &[u8] =
            b"abcdefghijklmnopqrstuvwxyzaeiostnrhlABCDEFGHIJKLMNOPQRSTUVWXYZ  .,-_'!@$01345789()";
        let mut lines: Vec<String> = ORDINARY.iter().map(|s| s.to_string()).collect();
        for _ in 0..200 {
            let w = &words[rng.below(words.len())];
            lines.push(format!("{} {w}!", ORDINARY[rng.below(ORDINARY.len())]));
            lines.push(w.chars().flat_map(|c| [c, ' ']).collect());
        }
        lines.retain(|l| l.is_ascii());
        let mut found = 0;
        for round in 0..2 {
            for line in &lines {
                let (cached, direct) = both_ways(&mut dfa, line);
                assert_eq!(cached, direct, "round {round}: {line:?}");
                found += !direct.is_empty() as usize;
            }
        }
        assert!(found > 100, "only {found} lines found anything");
        let known = dfa.states.len();
        let mut resets = 0;
        let cases = if cfg!(debug_assertions) { 3000 } else { 30000 };
        for _ in 0..cases {
            let len = 1 + rng.below(40);
            let text: String = (0..len)
                .map(|_| ALPHABET[rng.below(ALPHABET.len())] as char)
                .collect();
            let before = dfa.states.len();
            let (cached, direct) = both_ways(&mut dfa, &text);
            assert_eq!(cached, direct, "{text:?}");
            resets += (dfa.states.len() < before) as usize;
        }
        assert!(dfa.states.len() > known || resets > 0);
        assert!(resets > 0, "random text never filled the cache");
    }

    /// Text too varied for the cache turns it off for a while (not while
    /// it warms up), and then it is used again.
    #[test]
    fn the_cache_steps_aside_when_it_does_not_pay() {
        let mut dfa = Dfa::new();
        // Remembered lines: almost every step a hit.
        for _ in 0..(2 * WINDOW_STEPS as usize / 30) {
            SCREEN.run_cached(&mut dfa, b"hello there, how are you?", &mut Vec::new());
            assert!(!dfa.bypassed(25));
        }
        // New text every time: a miss at almost every step.
        let mut rng = Rng(0x0bad_cafe_0000_0002);
        let mut lines = 0;
        while dfa.bypass == 0 {
            let text: Vec<u8> = (0..30).map(|_| b'a' + rng.below(26) as u8).collect();
            SCREEN.run_cached(&mut dfa, &text, &mut Vec::new());
            lines += 1;
            assert!(lines < 10_000, "the cache never stepped aside");
        }
        let mut bypassed = 0u64;
        while dfa.bypassed(99) {
            bypassed += 100;
        }
        assert!(bypassed >= BYPASS_STEPS as u64 - 100);
        assert!(!dfa.bypassed(10), "the cache is used again");
    }

    /// Random ASCII, biased towards letters and separators.
    #[test]
    fn never_misses_on_random_ascii() {
        let mut rng = Rng(0x0dd_ba11_cafe_f00d);
        const ALPHABET: &[u8] =
            b"abcdefghijklmnopqrstuvwxyzaeiostnrhlABCDEFGHIJKLMNOPQRSTUVWXYZ  .,-_'!@$01345789()";
        let cases = if cfg!(debug_assertions) { 2000 } else { 20000 };
        let mut found = 0;
        for _ in 0..cases {
            let len = 1 + rng.below(24);
            let text: String = (0..len)
                .map(|_| ALPHABET[rng.below(ALPHABET.len())] as char)
                .collect();
            found += check(&text) as usize;
        }
        assert!(found > 0, "rustrict found nothing in random text");
    }
}
