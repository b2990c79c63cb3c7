//! Socket.IO v5 packets, sans I/O: what a client sends, read without
//! copying, and what the server sends, written in one pass (the Engine.IO
//! `4` included, so a frame is ready for either transport).
//!
//! Reference: <https://github.com/socketio/socket.io-protocol> (v5).
//! `<type>[<attachments>-][<namespace>,][<ack id>][<JSON>]`

use serde::Serialize;

/// Ack ids above this are refused (socket.io's own parser stops at the
/// largest safe integer of JavaScript).
const MAX_ACK_ID: u64 = (1 << 53) - 1;

/// A packet from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// `0[/ns,][{auth}]`
    Connect { ns: &'a str, auth: Option<&'a str> },
    /// `1[/ns,]`
    Disconnect { ns: &'a str },
    /// `2` (or `5<n>-` with binary attachments): an event, with an ack id
    /// when the client waits for an answer.
    Event {
        ns: &'a str,
        id: Option<u64>,
        data: &'a str,
        attachments: usize,
    },
    /// `3` (or `6<n>-`): the client answering an event of ours.
    Ack {
        ns: &'a str,
        id: u64,
        attachments: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Empty,
    UnknownType(u8),
    BadAttachments,
    BadNamespace,
    BadAckId,
    /// An event's data is not an array starting with the event's name.
    BadEvent,
    /// A packet type the server never receives (CONNECT_ERROR).
    Unexpected,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ParseError::Empty => "empty packet",
            ParseError::UnknownType(_) => "unknown packet type",
            ParseError::BadAttachments => "bad attachment count",
            ParseError::BadNamespace => "bad namespace",
            ParseError::BadAckId => "bad ack id",
            ParseError::BadEvent => "an event is an array starting with its name",
            ParseError::Unexpected => "unexpected packet type",
        })
    }
}

/// Reads a Socket.IO packet (the text after Engine.IO's `4`).
pub fn parse(text: &str) -> Result<Packet<'_>, ParseError> {
    let bytes = text.as_bytes();
    let kind = *bytes.first().ok_or(ParseError::Empty)?;
    if !(b'0'..=b'6').contains(&kind) {
        // Also keeps every slice below on a character boundary.
        return Err(ParseError::UnknownType(kind));
    }
    let mut at = 1;
    let binary = matches!(kind, b'5' | b'6');
    let mut attachments = 0usize;
    if binary {
        let digits = bytes[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 || digits > 3 || bytes.get(at + digits) != Some(&b'-') {
            return Err(ParseError::BadAttachments);
        }
        attachments = text[at..at + digits]
            .parse()
            .map_err(|_| ParseError::BadAttachments)?;
        at += digits + 1;
    }
    let mut ns = "/";
    if bytes.get(at) == Some(&b'/') {
        let end = text[at..].find(',').map(|i| at + i);
        match end {
            Some(end) => {
                ns = &text[at..end];
                at = end + 1;
            }
            // `1/admin` (no comma) ends with the namespace.
            None => {
                ns = &text[at..];
                at = text.len();
            }
        }
        if ns.len() > 256 {
            return Err(ParseError::BadNamespace);
        }
    }
    let digits = bytes[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let id = if digits > 0 {
        let id: u64 = text[at..at + digits]
            .parse()
            .map_err(|_| ParseError::BadAckId)?;
        if id > MAX_ACK_ID {
            return Err(ParseError::BadAckId);
        }
        at += digits;
        Some(id)
    } else {
        None
    };
    let rest = &text[at..];
    let json = (!rest.is_empty()).then_some(rest);
    match kind {
        b'0' => Ok(Packet::Connect { ns, auth: json }),
        b'1' => Ok(Packet::Disconnect { ns }),
        b'2' | b'5' => {
            let data = json.ok_or(ParseError::BadEvent)?;
            if !data.starts_with('[') {
                return Err(ParseError::BadEvent);
            }
            Ok(Packet::Event {
                ns,
                id,
                data,
                attachments,
            })
        }
        b'3' | b'6' => Ok(Packet::Ack {
            ns,
            id: id.ok_or(ParseError::BadAckId)?,
            attachments,
        }),
        b'4' => Err(ParseError::Unexpected),
        other => Err(ParseError::UnknownType(other)),
    }
}

/// An event's name and first argument: `["chat:message", {…}, …]`. An
/// event sent with no argument has `first: None` (`["webrtc:hangup"]`).
/// The argument is checked to be JSON and kept as its text, for the
/// application to read into whatever type it expects.
#[derive(Debug, Clone, PartialEq)]
pub struct EventArgs<'a> {
    pub name: String,
    pub first: Option<&'a str>,
}

/// Reads an event's data; further arguments are skipped.
pub fn event_args(data: &str) -> Result<EventArgs<'_>, ParseError> {
    struct Args;
    impl<'de> serde::de::Visitor<'de> for Args {
        type Value = EventArgs<'de>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an array starting with the event's name")
        }
        fn visit_seq<S: serde::de::SeqAccess<'de>>(
            self,
            mut seq: S,
        ) -> Result<EventArgs<'de>, S::Error> {
            let name: String = seq
                .next_element()?
                .ok_or_else(|| serde::de::Error::custom("no event name"))?;
            let first = seq
                .next_element::<&'de serde_json::value::RawValue>()?
                .map(serde_json::value::RawValue::get);
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok(EventArgs { name, first })
        }
    }
    let mut de = serde_json::Deserializer::from_str(data);
    let args =
        serde::Deserializer::deserialize_seq(&mut de, Args).map_err(|_| ParseError::BadEvent)?;
    de.end().map_err(|_| ParseError::BadEvent)?;
    Ok(args)
}

fn namespace(out: &mut String, ns: &str) {
    if ns != "/" {
        out.push_str(ns);
        out.push(',');
    }
}

/// `42["name",data]` (`42/ns,["name",data]` in another namespace): an
/// event, as an Engine.IO message.
pub fn event_frame<T: Serialize + ?Sized>(
    ns: &str,
    name: &str,
    data: &T,
) -> Result<String, serde_json::Error> {
    event_frame_with(ns, name, |out| crate::json::value(out, data))
}

/// [`event_frame`] with `data` written by `write` (which writes JSON).
pub fn event_frame_with(
    ns: &str,
    name: &str,
    write: impl FnOnce(&mut String) -> Result<(), serde_json::Error>,
) -> Result<String, serde_json::Error> {
    // Room for a chat message's event without growing (64 grew three times).
    let mut out = String::with_capacity(256);
    out.push_str("42");
    namespace(&mut out, ns);
    out.push('[');
    crate::json::string(&mut out, name);
    out.push(',');
    write(&mut out)?;
    out.push(']');
    Ok(out)
}

/// `43<id>[data]`: the answer to a client's event.
pub fn ack_frame<T: Serialize + ?Sized>(
    ns: &str,
    id: u64,
    data: &T,
) -> Result<String, serde_json::Error> {
    ack_frame_with(ns, id, |out| crate::json::value(out, data))
}

/// [`ack_frame`] with `data` written by `write` (which writes JSON).
pub fn ack_frame_with(
    ns: &str,
    id: u64,
    write: impl FnOnce(&mut String) -> Result<(), serde_json::Error>,
) -> Result<String, serde_json::Error> {
    // A chat message's ack echoes its content: room for it too.
    let mut out = String::with_capacity(256);
    out.push_str("43");
    namespace(&mut out, ns);
    out.push_str(itoa::Buffer::new().format(id));
    out.push('[');
    write(&mut out)?;
    out.push(']');
    Ok(out)
}

/// An event (`kind` `2`) or ack (`3`) whose JSON array is given as is;
/// with attachments it is the binary kind (`5<n>-` / `6<n>-`).
pub fn raw_frame(kind: u8, ns: &str, id: Option<u64>, array: &str, attachments: usize) -> String {
    let mut out = String::with_capacity(array.len() + 16);
    out.push('4');
    if attachments > 0 {
        out.push(if kind == b'3' { '6' } else { '5' });
        out.push_str(&attachments.to_string());
        out.push('-');
    } else {
        out.push(kind as char);
    }
    if ns != "/" {
        out.push_str(ns);
        out.push(',');
    }
    if let Some(id) = id {
        out.push_str(&id.to_string());
    }
    out.push_str(array);
    out
}

/// `40{"sid":…}` (`40/ns,{"sid":…}`): a namespace accepted the client.
pub fn connect_frame(ns: &str, sid: &str) -> String {
    if ns == "/" {
        format!(r#"40{{"sid":"{sid}"}}"#)
    } else {
        format!(r#"40{ns},{{"sid":"{sid}"}}"#)
    }
}

/// `44[/ns,]{"message":…}`: a namespace refused the client.
pub fn connect_error_frame(ns: &str, message: &str) -> String {
    let message = serde_json::to_string(message).unwrap_or_else(|_| "\"error\"".into());
    if ns == "/" {
        format!(r#"44{{"message":{message}}}"#)
    } else {
        format!(r#"44{ns},{{"message":{message}}}"#)
    }
}

/// `41`: the server disconnects the client from the main namespace.
pub const DISCONNECT_FRAME: &str = "41";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn packets_of_every_type_parse() {
        assert_eq!(
            parse("0"),
            Ok(Packet::Connect {
                ns: "/",
                auth: None
            })
        );
        assert_eq!(
            parse(r#"0{"token":"t"}"#),
            Ok(Packet::Connect {
                ns: "/",
                auth: Some(r#"{"token":"t"}"#)
            })
        );
        assert_eq!(
            parse("0/admin,"),
            Ok(Packet::Connect {
                ns: "/admin",
                auth: None
            })
        );
        assert_eq!(parse("1"), Ok(Packet::Disconnect { ns: "/" }));
        assert_eq!(parse("1/admin,"), Ok(Packet::Disconnect { ns: "/admin" }));
        assert_eq!(
            parse(r#"2["a",1]"#),
            Ok(Packet::Event {
                ns: "/",
                id: None,
                data: r#"["a",1]"#,
                attachments: 0
            })
        );
        assert_eq!(
            parse(r#"2/admin,12["a"]"#),
            Ok(Packet::Event {
                ns: "/admin",
                id: Some(12),
                data: r#"["a"]"#,
                attachments: 0
            })
        );
        assert_eq!(
            parse(r#"51-3["a",{"_placeholder":true,"num":0}]"#),
            Ok(Packet::Event {
                ns: "/",
                id: Some(3),
                data: r#"["a",{"_placeholder":true,"num":0}]"#,
                attachments: 1
            })
        );
        assert_eq!(
            parse("37[]"),
            Ok(Packet::Ack {
                ns: "/",
                id: 7,
                attachments: 0
            })
        );
    }

    #[test]
    fn malformed_packets_are_refused() {
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse("7"), Err(ParseError::UnknownType(b'7')));
        // Found by the fuzz target: a multi-byte first character.
        assert_eq!(parse("\u{2e4b}x"), Err(ParseError::UnknownType(0xe2)));
        assert_eq!(parse("4{}"), Err(ParseError::Unexpected));
        assert_eq!(parse("2"), Err(ParseError::BadEvent));
        assert_eq!(parse("2{}"), Err(ParseError::BadEvent));
        assert_eq!(parse("5[\"a\"]"), Err(ParseError::BadAttachments));
        assert_eq!(parse("51[\"a\"]"), Err(ParseError::BadAttachments));
        assert_eq!(parse("59999-[\"a\"]"), Err(ParseError::BadAttachments));
        assert_eq!(parse("3[]"), Err(ParseError::BadAckId));
        assert_eq!(
            parse("299999999999999999999[\"a\"]"),
            Err(ParseError::BadAckId)
        );
        assert_eq!(parse("29007199254740992[\"a\"]"), Err(ParseError::BadAckId));
        assert!(parse("29007199254740991[\"a\"]").is_ok());
        let long = format!("0/{},", "n".repeat(300));
        assert_eq!(parse(&long), Err(ParseError::BadNamespace));
    }

    #[test]
    fn event_args_take_the_name_and_the_first_argument() {
        assert_eq!(
            event_args(r#"["webrtc:hangup"]"#),
            Ok(EventArgs {
                name: "webrtc:hangup".into(),
                first: None
            })
        );
        assert_eq!(
            event_args(r#"["a",null]"#),
            Ok(EventArgs {
                name: "a".into(),
                first: Some("null")
            })
        );
        assert_eq!(
            event_args(r#"["a", {"x": [1]} ,2,[3]]"#),
            Ok(EventArgs {
                name: "a".into(),
                first: Some(r#"{"x": [1]}"#)
            })
        );
        for bad in [
            "[]",
            "[1]",
            "[\"a\"",
            "[\"a\"] x",
            "{}",
            "[\"a\",]",
            "[\"a\",{x:1}]",
            "[\"a\",1,{]",
        ] {
            assert_eq!(event_args(bad), Err(ParseError::BadEvent), "{bad}");
        }
    }

    #[test]
    fn frames_are_written_as_clients_read_them() {
        assert_eq!(
            event_frame("/", "chat:message", &json!({"a":"\"q\""})).unwrap(),
            r#"42["chat:message",{"a":"\"q\""}]"#
        );
        assert_eq!(
            event_frame("/custom", "auth", &json!({})).unwrap(),
            r#"42/custom,["auth",{}]"#
        );
        assert_eq!(
            ack_frame("/", 12, &json!({"success":true})).unwrap(),
            r#"4312[{"success":true}]"#
        );
        assert_eq!(connect_frame("/", "abc"), r#"40{"sid":"abc"}"#);
        assert_eq!(connect_frame("/c", "abc"), r#"40/c,{"sid":"abc"}"#);
        assert_eq!(raw_frame(b'2', "/", None, "[\"a\",1]", 0), "42[\"a\",1]");
        assert_eq!(
            raw_frame(
                b'3',
                "/",
                Some(789),
                "[{\"_placeholder\":true,\"num\":0}]",
                1
            ),
            "461-789[{\"_placeholder\":true,\"num\":0}]"
        );
        assert_eq!(raw_frame(b'2', "/x", Some(1), "[]", 2), "452-/x,1[]");
        assert_eq!(
            connect_error_frame("/", "unauthorized"),
            r#"44{"message":"unauthorized"}"#
        );
        assert_eq!(
            connect_error_frame("/x", "Invalid namespace"),
            r#"44/x,{"message":"Invalid namespace"}"#
        );
    }
}
