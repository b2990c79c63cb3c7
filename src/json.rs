//! Writing the hot frames' JSON by hand: the chat message, its ack, their
//! time stamps, event names. Written into a `String` as `str` pieces, so
//! the frame needs no UTF-8 check after. serde_json escapes every key and
//! every string a byte at a time (a tenth of a relayed message's
//! instructions went there); here the
//! keys are written as the constants they are, and a string is checked for
//! anything to escape in blocks the compiler turns into vector compares.
//! Whatever needs escaping is still escaped by serde_json, so there is one
//! rule for escaping; the types' derived `Serialize` stays what the wire
//! means, and tests hold each writer to it byte for byte.

use chrono::{DateTime, Datelike, Timelike, Utc};

/// `s` as a JSON string, exactly as serde_json writes it.
pub fn string(out: &mut String, s: &str) {
    if plain(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else if let Ok(escaped) = serde_json::to_string(s) {
        // (Writing a `str` cannot fail.)
        out.push_str(&escaped);
    }
}

/// `value` as serde_json writes it (for what is not written by hand).
pub fn value<T: serde::Serialize + ?Sized>(
    out: &mut String,
    value: &T,
) -> Result<(), serde_json::Error> {
    out.push_str(&serde_json::to_string(value)?);
    Ok(())
}

/// Nothing in `bytes` that JSON escapes: no control character, `"` or `\`.
/// Checked 16 bytes at a time (the last block overlapping the one before),
/// each block folded without an early exit so that it is one vector
/// compare; a shorter text as two overlapping words, or byte by byte.
fn plain(bytes: &[u8]) -> bool {
    // `&`, not `&&`: no branch per byte.
    let kept = |b: u8| (b >= 0x20) & (b != b'"') & (b != b'\\');
    let clean = |block: &[u8; 16]| block.iter().fold(true, |ok, &b| ok & kept(b));
    if let Some(last) = bytes.last_chunk::<16>() {
        let (blocks, _) = bytes.as_chunks::<16>();
        blocks.iter().all(clean) && clean(last)
    } else if let (Some(first), Some(last)) = (bytes.first_chunk::<8>(), bytes.last_chunk::<8>()) {
        word_plain(u64::from_le_bytes(*first)) && word_plain(u64::from_le_bytes(*last))
    } else {
        bytes.iter().all(|&b| kept(b))
    }
}

/// [`plain`] for 8 bytes at once: none below 0x20, none `"` or `\`.
fn word_plain(w: u64) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // A byte below `n` (n <= 0x80) sets its high bit here; a borrow only
    // carries past a byte that already did.
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH;
    let zero = |w: u64| below(w, 1);
    below(w, 0x20) | zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\'))) == 0
}

/// A time as every event writes it (see [`crate::protocol::server::stamp`]): RFC 3339
/// in UTC with `Z` and as many fraction digits as it needs (0, 3, 6 or 9),
/// what chrono's `to_rfc3339_opts(AutoSi, true)` writes. Written digit by
/// digit for years 0–9999; chrono writes the rest (and leap seconds).
pub fn stamp(out: &mut String, t: &DateTime<Utc>) {
    let n = t.naive_utc();
    let (year, nano) = (n.year(), n.nanosecond());
    if !(0..=9999).contains(&year) || nano >= 1_000_000_000 {
        out.push_str(&t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
        return;
    }
    let year = year as u32;
    let mut b = [0u8; 30];
    digits(&mut b[0..4], year);
    b[4] = b'-';
    digits(&mut b[5..7], n.month());
    b[7] = b'-';
    digits(&mut b[8..10], n.day());
    b[10] = b'T';
    digits(&mut b[11..13], n.hour());
    b[13] = b':';
    digits(&mut b[14..16], n.minute());
    b[16] = b':';
    digits(&mut b[17..19], n.second());
    let mut len = 19;
    let fraction = match nano {
        0 => None,
        _ if nano % 1_000_000 == 0 => Some((nano / 1_000_000, 3)),
        _ if nano % 1_000 == 0 => Some((nano / 1_000, 6)),
        _ => Some((nano, 9)),
    };
    if let Some((value, width)) = fraction {
        b[19] = b'.';
        digits(&mut b[20..20 + width], value);
        len = 20 + width;
    }
    b[len] = b'Z';
    // ASCII digits and signs only.
    out.push_str(std::str::from_utf8(&b[..=len]).unwrap_or_default());
}

/// `value` in decimal, zero-padded to fill `into`.
fn digits(into: &mut [u8], mut value: u32) {
    for d in into.iter_mut().rev() {
        *d = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn written(f: impl FnOnce(&mut String)) -> String {
        let mut out = String::new();
        f(&mut out);
        out
    }

    #[test]
    fn strings_escape_as_serde_json_does() {
        for s in [
            "",
            "hello",
            "a\"b",
            "back\\slash",
            "tab\there",
            "\u{0}\u{1f}\u{7f}",
            "héllo 👋 </script>",
            "exactly sixteen!",
            "seventeen bytes!!\n",
        ] {
            assert_eq!(written(|o| string(o, s)), serde_json::to_string(s).unwrap());
        }
    }

    #[test]
    fn one_byte_to_escape_is_found_wherever_it_is() {
        for len in 0..40 {
            let clean: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            assert!(plain(clean.as_bytes()), "{clean:?}");
            for at in 0..len {
                for bad in ['"', '\\', '\n', '\u{0}', '\u{1f}'] {
                    let mut s: Vec<char> = clean.chars().collect();
                    s[at] = bad;
                    let s: String = s.into_iter().collect();
                    assert!(!plain(s.as_bytes()), "{s:?}");
                }
            }
        }
        // Bytes above 0x7f (UTF-8) and 0x7f itself need no escape.
        assert!(plain("é€👋\u{7f} ~".as_bytes()));
    }

    #[test]
    fn stamps_are_chronos() {
        let at = |y, mo, d, h, mi, s, ns| {
            Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap() + chrono::Duration::nanoseconds(ns)
        };
        for t in [
            at(2026, 11, 24, 9, 5, 7, 0),
            at(2026, 1, 2, 3, 4, 5, 120_000_000),
            at(1999, 12, 31, 23, 59, 59, 123_456_000),
            at(2000, 2, 29, 0, 0, 0, 1),
            at(0, 1, 1, 0, 0, 0, 999_999_999),
            at(9999, 12, 31, 23, 59, 59, 5),
            at(10000, 1, 1, 0, 0, 0, 0),
            at(-1, 6, 1, 0, 0, 0, 0),
        ] {
            assert_eq!(
                written(|o| stamp(o, &t)),
                t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            );
        }
    }

    proptest! {
        #[test]
        fn any_string_is_written_as_serde_json_writes_it(s in any::<String>(), ascii in "[ -~\t\n\"\\\\]{0,40}") {
            prop_assert_eq!(written(|o| string(o, &s)), serde_json::to_string(&s).unwrap());
            prop_assert_eq!(written(|o| string(o, &ascii)), serde_json::to_string(&ascii).unwrap());
        }

        #[test]
        fn any_time_is_written_as_chrono_writes_it(
            secs in -62_167_219_200i64..253_402_300_800i64 + 86_400 * 400,
            nanos in prop_oneof![Just(0u32), (0u32..1000).prop_map(|m| m * 1_000_000), (0u32..1_000_000).prop_map(|u| u * 1000), 0u32..1_000_000_000],
        ) {
            let t = DateTime::from_timestamp(secs, nanos).unwrap();
            prop_assert_eq!(
                written(|o| stamp(o, &t)),
                t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            );
        }
    }
}
