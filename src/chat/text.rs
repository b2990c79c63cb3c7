//! Rules for chat text: HTML tags and control characters are removed, the
//! result is trimmed, and must be 1..=1000 characters.

pub const MAX_CHARS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextError {
    Empty,
    TooLong,
}

/// Cleans a chat message; newlines and tabs are kept.
pub fn sanitize(raw: &str) -> Result<String, TextError> {
    // Most messages have nothing to remove (no tag, no carriage return,
    // nothing invisible): one pass over them, no copies before the last.
    let plain = if raw.is_ascii() {
        // The same test on bytes: printable ASCII but `<`, newline, tab.
        raw.bytes()
            .all(|b| matches!(b, b' '..=b'~') && b != b'<' || b == b'\n' || b == b'\t')
    } else {
        raw.chars().all(|c| c != '<' && c != '\r' && kept(c))
    };
    if plain {
        measured(raw)
    } else {
        measured(&cleaned(raw))
    }
}

/// Tags, `\r` of `\r\n` and what [`kept`] refuses removed.
fn cleaned(raw: &str) -> String {
    strip_tags(raw)
        .replace("\r\n", "\n")
        .chars()
        .filter(|&c| kept(c))
        .collect()
}

/// Trimmed, and 1 to [`MAX_CHARS`] characters.
fn measured(text: &str) -> Result<String, TextError> {
    let trimmed = text.trim();
    let len = trimmed.chars().count();
    if len == 0 {
        return Err(TextError::Empty);
    }
    if len > MAX_CHARS {
        return Err(TextError::TooLong);
    }
    Ok(trimmed.to_string())
}

/// Newlines and tabs stay; other control characters and invisible
/// formatting go.
fn kept(c: char) -> bool {
    c == '\n' || c == '\t' || !(c.is_control() || is_invisible_format(c))
}

/// Bidirectional controls, zero-width and other invisible formatting
/// characters used to spoof text (`gnp.\u{202E}txt.exe` shows as an image
/// name). Chat text and file names both drop them.
pub fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{061C}'
            | '\u{200B}'..='\u{200F}'
            | '\u{2028}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

/// Removes anything that looks like an HTML tag, comment or declaration:
/// `<` followed by a letter, `/`, `!` or `?`, up to the next `>`. A `<` that
/// starts no tag ("a < b") stays.
fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('<') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let starts_tag = after
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '/' | '!' | '?'));
        match (starts_tag, after.find('>')) {
            (true, Some(end)) => rest = &after[end + 1..],
            (true, None) => {
                rest = "";
            }
            (false, _) => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_controls_go() {
        assert_eq!(sanitize("  hi <b>there</b>  ").unwrap(), "hi there");
        assert_eq!(
            sanitize("<script>alert(1)</script>ok").unwrap(),
            "alert(1)ok"
        );
        assert_eq!(sanitize("a < b and c > d").unwrap(), "a < b and c > d");
        assert_eq!(sanitize("x<!-- c -->y").unwrap(), "xy");
        assert_eq!(
            sanitize("<img src=x onerror=alert(1)").unwrap_err(),
            TextError::Empty
        );
        assert_eq!(
            sanitize("bell\u{7}\u{0}null\u{202E}rtl").unwrap(),
            "bellnullrtl"
        );
        assert_eq!(
            sanitize("line1\r\nline2\tend").unwrap(),
            "line1\nline2\tend"
        );
    }

    /// The rules as first written: every message cleaned the long way.
    fn model(raw: &str) -> Result<String, TextError> {
        measured(&cleaned(raw))
    }

    proptest::proptest! {
        #[test]
        fn clean_text_takes_the_short_way_to_the_same_result(
            raw in "[ a-zA-Z<>/!?\r\n\t\u{0}\u{7f}\u{85}\u{200B}\u{202E}\u{FEFF}é😀]{0,40}"
        ) {
            proptest::prop_assert_eq!(sanitize(&raw), model(&raw));
        }
    }

    #[test]
    fn length_counts_characters_after_trimming() {
        assert_eq!(sanitize("   \n\t ").unwrap_err(), TextError::Empty);
        assert_eq!(sanitize("<p></p>").unwrap_err(), TextError::Empty);
        let max = "é".repeat(MAX_CHARS);
        assert_eq!(sanitize(&format!("  {max}  ")).unwrap(), max);
        assert_eq!(
            sanitize(&format!("{max}x")).unwrap_err(),
            TextError::TooLong
        );
    }
}
