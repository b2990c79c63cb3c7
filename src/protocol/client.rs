//! Client events: names declared once in [`ClientEvent`], each payload
//! parsed once into a typed [`Command`]. The payload is the event's first
//! argument; none, `null` and `{}` are the same empty object.

use serde::Deserialize;
use serde_json::Value;

use super::ids::{FileId, UserId};
use crate::matching::Mode;

/// Largest SDP (offer or answer) relayed.
pub const MAX_SDP_BYTES: usize = 64 * 1024;
/// Largest ICE candidate relayed.
pub const MAX_CANDIDATE_BYTES: usize = 4 * 1024;
const MAX_INTERESTS: usize = 10;
const MAX_INTEREST_CHARS: usize = 30;

macro_rules! events {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// Every event a client may send.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ClientEvent {
            $($variant),*
        }

        impl ClientEvent {
            pub const ALL: &'static [ClientEvent] = &[$(ClientEvent::$variant),*];

            /// The event's name on the wire.
            pub const fn name(self) -> &'static str {
                match self {
                    $(ClientEvent::$variant => $name),*
                }
            }

            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(ClientEvent::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

events! {
    UserMatch => "user:match",
    UserCancel => "user:cancel",
    UserSkip => "user:skip",
    UserEnd => "user:end",
    UserBlock => "user:block",
    UserUnblock => "user:unblock",
    UserReport => "user:report",
    ChatMessage => "chat:message",
    ChatTyping => "chat:typing",
    ChatClear => "chat:clear",
    WebrtcOffer => "webrtc:offer",
    WebrtcAnswer => "webrtc:answer",
    WebrtcIceCandidate => "webrtc:ice-candidate",
    WebrtcHangup => "webrtc:hangup",
    RoomJoin => "room:join",
    RoomLeave => "room:leave",
    RoomMessage => "room:message",
    RoomTyping => "room:typing",
    CallStart => "call:start",
    CallJoin => "call:join",
    CallSignal => "call:signal",
    CallLeave => "call:leave",
    CallInvite => "call:invite",
}

/// Why a payload was refused: the `invalid_payload` (or
/// `payload_too_large`) error's message, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadError {
    Invalid(String),
    TooLarge(String),
}

fn invalid(message: impl Into<String>) -> PayloadError {
    PayloadError::Invalid(message.into())
}

/// Matching preferences, validated and normalised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchPrefs {
    pub interests: Vec<String>,
    pub language: Option<String>,
    pub mode: Option<Mode>,
}

/// What a chat message carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageBody {
    /// Raw text; cleaned by the chat rules.
    Text(String),
    File(FileId),
    Voice(FileId),
}

/// The kind of call an offer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    Audio,
    Video,
}

impl CallKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::Audio => "audio",
            CallKind::Video => "video",
        }
    }
}

/// A client event, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Match(MatchPrefs),
    Cancel,
    /// New preferences, or None to keep the last ones.
    Skip(Option<MatchPrefs>),
    End,
    Block(UserId),
    Unblock(UserId),
    Report {
        user: UserId,
        reason: &'static str,
        details: Option<String>,
        /// A lounge message (`<roomId>.<offset>`) the report is about.
        message: Option<String>,
    },
    Message(MessageBody),
    Typing(bool),
    Clear,
    Offer {
        offer: Value,
        kind: CallKind,
    },
    Answer(Value),
    Candidate(Value),
    Hangup,
    RoomJoin {
        room: String,
        /// What the client last saw: (offset, epoch).
        since: Option<(u64, String)>,
    },
    RoomLeave(String),
    RoomMessage {
        room: String,
        content: String,
    },
    RoomTyping {
        room: String,
        is_typing: bool,
    },
    CallStart(String),
    CallJoin {
        call: String,
        /// The client's offer; without, the server offers.
        offer: Option<String>,
    },
    CallSignal {
        call: String,
        signal: CallSignal,
    },
    CallLeave(String),
    CallInvite {
        call: String,
        user: UserId,
    },
}

/// What `call:signal` carries.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub enum CallSignal {
    Sdp(crate::sfu::Sdp),
    /// An ICE candidate line; empty at the end of candidates.
    Candidate(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CallWire {
    #[serde(default)]
    room_id: Option<Value>,
    #[serde(default)]
    call_id: Option<Value>,
    #[serde(default)]
    sdp: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    candidate: Option<Value>,
}

fn call_id(v: &Option<Value>) -> Result<String, PayloadError> {
    match v {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => Ok(s.clone()),
        _ => Err(invalid("callId: must be a call id")),
    }
}

/// `{type: 'offer' | 'answer', sdp}` (an RTCSessionDescriptionInit).
fn call_sdp(v: Value) -> Result<crate::sfu::Sdp, PayloadError> {
    let v = signal("sdp", Some(v), MAX_SDP_BYTES, false)?;
    serde_json::from_value(v)
        .map_err(|_| invalid("sdp: must be {type: 'offer' or 'answer', sdp: a string}"))
}

/// An RTCIceCandidateInit (or its `candidate` string); null or an empty
/// string: the end of candidates.
fn call_candidate(v: Value) -> Result<String, PayloadError> {
    let v = signal("candidate", Some(v), MAX_CANDIDATE_BYTES, true)?;
    match v {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s),
        Value::Object(o) => match o.get("candidate") {
            Some(Value::String(s)) => Ok(s.clone()),
            None | Some(Value::Null) => Ok(String::new()),
            Some(_) => Err(invalid("candidate.candidate: must be a string")),
        },
        _ => Err(invalid("candidate: must be an object")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoomWire {
    #[serde(default)]
    room_id: Option<Value>,
    #[serde(default)]
    since: Option<Value>,
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    is_typing: Option<Value>,
}

#[derive(Deserialize)]
struct SinceWire {
    offset: u64,
    epoch: String,
}

fn room_id(v: &Option<Value>) -> Result<String, PayloadError> {
    match v {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => Ok(s.clone()),
        _ => Err(invalid("roomId: must be a room id")),
    }
}

#[derive(Deserialize, Default)]
struct PrefsWire {
    #[serde(default)]
    interests: Option<Vec<String>>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    mode: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockWire {
    user_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReportWire {
    #[serde(default)]
    reason: Option<Value>,
    #[serde(default)]
    details: Option<Value>,
    #[serde(default)]
    message_id: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageWire {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    file_id: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypingWire {
    is_typing: bool,
}

/// A field that must be present (`null` counts as present).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[derive(Deserialize)]
struct OfferWire {
    #[serde(default, deserialize_with = "present")]
    offer: Option<Value>,
    #[serde(default, rename = "type")]
    kind: Option<Value>,
}

#[derive(Deserialize)]
struct AnswerWire {
    #[serde(default, deserialize_with = "present")]
    answer: Option<Value>,
}

#[derive(Deserialize)]
struct CandidateWire {
    #[serde(default, deserialize_with = "present")]
    candidate: Option<Value>,
}

/// `{userId}`: another user's id.
fn user_id(payload: Value) -> Result<UserId, PayloadError> {
    let w: BlockWire = wire(payload).map_err(|_| invalid("userId: must be a user id"))?;
    let id = w.user_id.trim();
    if id.is_empty() || id.len() > 64 {
        return Err(invalid("userId: must be a user id"));
    }
    Ok(UserId(id.to_string()))
}

/// Deserializes the payload, naming the field that does not fit.
fn wire<T: serde::de::DeserializeOwned>(payload: Value) -> Result<T, PayloadError> {
    serde_path_to_error::deserialize(payload).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            invalid(inner.to_string())
        } else {
            invalid(format!("{path}: {inner}"))
        }
    })
}

fn prefs(w: PrefsWire) -> Result<MatchPrefs, PayloadError> {
    let mut prefs = MatchPrefs::default();
    if let Some(items) = w.interests {
        if items.len() > MAX_INTERESTS {
            return Err(invalid(format!("interests: at most {MAX_INTERESTS}")));
        }
        for item in items {
            let s = item.trim().to_lowercase();
            if s.is_empty()
                || s.chars().count() > MAX_INTEREST_CHARS
                || s.chars().any(char::is_control)
            {
                return Err(invalid(format!(
                    "interests: each must be 1 to {MAX_INTEREST_CHARS} characters"
                )));
            }
            prefs.interests.push(s);
        }
        prefs.interests.sort();
        prefs.interests.dedup();
    }
    if let Some(s) = w.language {
        let s = s.trim().to_lowercase();
        if s.is_empty() || s.len() > 16 || !s.chars().all(|c| c.is_ascii_alphabetic() || c == '-') {
            return Err(invalid(
                "language: must be a language tag such as 'en' or 'pt-br'",
            ));
        }
        prefs.language = Some(s);
    }
    prefs.mode = match w.mode.as_deref() {
        None => None,
        Some("text") => Some(Mode::Text),
        Some("video") => Some(Mode::Video),
        Some(_) => return Err(invalid("mode: must be 'text' or 'video'")),
    };
    Ok(prefs)
}

/// An SDP or candidate: an object or a string, of at most `max` bytes.
fn signal(name: &str, v: Option<Value>, max: usize, null_ok: bool) -> Result<Value, PayloadError> {
    let v = v.ok_or_else(|| invalid(format!("{name}: is required")))?;
    if !(v.is_object() || v.is_string() || (v.is_null() && null_ok)) {
        return Err(invalid(format!("{name}: must be an object")));
    }
    if serde_json::to_string(&v)
        .map(|s| s.len())
        .unwrap_or(usize::MAX)
        > max
    {
        return Err(PayloadError::TooLarge(format!(
            "{name} is larger than {max} bytes"
        )));
    }
    Ok(v)
}

fn file_id(v: Option<Value>) -> Result<FileId, PayloadError> {
    match v {
        Some(Value::String(s)) => Ok(FileId(s)),
        _ => Err(invalid("fileId: must be the id of an uploaded file")),
    }
}

impl Command {
    /// A text `chat:message` read straight from its JSON
    /// (`{"content": "…"}`, `"type": "text"` or none); `None` for anything
    /// else — another type, a mistake, a repeated key — which
    /// [`Command::parse`] then reads and, if wrong, explains. Where this
    /// gives a command, `parse` gives the same.
    pub fn text_message(json: &str) -> Option<Command> {
        #[derive(Deserialize)]
        struct Text<'a> {
            #[serde(default, rename = "type", borrow)]
            kind: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            content: std::borrow::Cow<'a, str>,
        }
        // serde would also read a struct from an array: only an object.
        if !json.starts_with('{') {
            return None;
        }
        let t: Text = serde_json::from_str(json).ok()?;
        matches!(t.kind.as_deref(), None | Some("text"))
            .then(|| Command::Message(MessageBody::Text(t.content.into_owned())))
    }

    /// Parses `event`'s first argument (None when sent with none).
    pub fn parse(event: ClientEvent, arg: Option<Value>) -> Result<Command, PayloadError> {
        let payload = match arg {
            None | Some(Value::Null) => Value::Object(Default::default()),
            Some(v @ Value::Object(_)) => v,
            Some(_) => return Err(invalid("the payload must be an object")),
        };
        let empty = payload.as_object().is_some_and(|m| m.is_empty());
        Ok(match event {
            ClientEvent::UserMatch => Command::Match(prefs(wire(payload)?)?),
            ClientEvent::UserCancel => Command::Cancel,
            ClientEvent::UserSkip if empty => Command::Skip(None),
            ClientEvent::UserSkip => Command::Skip(Some(prefs(wire(payload)?)?)),
            ClientEvent::UserEnd => Command::End,
            ClientEvent::UserBlock => Command::Block(user_id(payload)?),
            ClientEvent::UserUnblock => Command::Unblock(user_id(payload)?),
            ClientEvent::UserReport => {
                use crate::safety::rules::{DETAILS_MAX, REASONS};
                let user = user_id(payload.clone())?;
                let w: ReportWire = wire(payload)?;
                let reason = match &w.reason {
                    Some(Value::String(r)) => REASONS.iter().find(|x| **x == r.as_str()).copied(),
                    _ => None,
                }
                .ok_or_else(|| invalid(format!("reason: must be one of {}", REASONS.join(", "))))?;
                let details = match w.details {
                    None | Some(Value::Null) => None,
                    Some(Value::String(d)) => {
                        let d = d.trim();
                        if d.chars().count() > DETAILS_MAX
                            || d.chars().any(|c| c.is_control() && c != '\n')
                        {
                            return Err(invalid(format!(
                                "details: at most {DETAILS_MAX} characters, no control characters"
                            )));
                        }
                        (!d.is_empty()).then(|| d.to_string())
                    }
                    Some(_) => return Err(invalid("details: must be a string")),
                };
                let message = match w.message_id {
                    None | Some(Value::Null) => None,
                    Some(Value::String(m)) if !m.is_empty() && m.len() <= 96 => Some(m),
                    Some(_) => return Err(invalid("messageId: must be a room message id")),
                };
                Command::Report {
                    user,
                    reason,
                    details,
                    message,
                }
            }
            ClientEvent::ChatMessage => {
                let w: MessageWire = wire(payload)?;
                match w.kind.as_deref().unwrap_or("text") {
                    "text" => match w.content {
                        Some(Value::String(s)) => Command::Message(MessageBody::Text(s)),
                        _ => return Err(invalid("content: must be a string")),
                    },
                    "file" => Command::Message(MessageBody::File(file_id(w.file_id)?)),
                    "voice" => Command::Message(MessageBody::Voice(file_id(w.file_id)?)),
                    _ => return Err(invalid("type: must be 'text', 'file' or 'voice'")),
                }
            }
            ClientEvent::ChatTyping => {
                let w: TypingWire =
                    wire(payload).map_err(|_| invalid("isTyping: must be true or false"))?;
                Command::Typing(w.is_typing)
            }
            ClientEvent::ChatClear => Command::Clear,
            ClientEvent::WebrtcOffer => {
                let w: OfferWire = wire(payload)?;
                let kind = match w.kind {
                    None | Some(Value::Null) => CallKind::Video,
                    Some(Value::String(t)) if t == "video" => CallKind::Video,
                    Some(Value::String(t)) if t == "audio" => CallKind::Audio,
                    Some(_) => return Err(invalid("type: must be 'audio' or 'video'")),
                };
                Command::Offer {
                    offer: signal("offer", w.offer, MAX_SDP_BYTES, false)?,
                    kind,
                }
            }
            ClientEvent::WebrtcAnswer => {
                let w: AnswerWire = wire(payload)?;
                Command::Answer(signal("answer", w.answer, MAX_SDP_BYTES, false)?)
            }
            ClientEvent::WebrtcIceCandidate => {
                let w: CandidateWire = wire(payload)?;
                Command::Candidate(signal("candidate", w.candidate, MAX_CANDIDATE_BYTES, true)?)
            }
            ClientEvent::WebrtcHangup => Command::Hangup,
            ClientEvent::RoomJoin => {
                let w: RoomWire = wire(payload)?;
                let since = match w.since {
                    None | Some(Value::Null) => None,
                    Some(v) => {
                        let s: SinceWire = serde_json::from_value(v).map_err(|_| {
                            invalid("since: must be {offset: a whole number, epoch: a string}")
                        })?;
                        Some((s.offset, s.epoch))
                    }
                };
                Command::RoomJoin {
                    room: room_id(&w.room_id)?,
                    since,
                }
            }
            ClientEvent::RoomLeave => {
                let w: RoomWire = wire(payload)?;
                Command::RoomLeave(room_id(&w.room_id)?)
            }
            ClientEvent::RoomMessage => {
                let w: RoomWire = wire(payload)?;
                let room = room_id(&w.room_id)?;
                match w.content {
                    Some(Value::String(content)) => Command::RoomMessage { room, content },
                    _ => return Err(invalid("content: must be a string")),
                }
            }
            ClientEvent::RoomTyping => {
                let w: RoomWire = wire(payload)?;
                let room = room_id(&w.room_id)?;
                match w.is_typing {
                    Some(Value::Bool(is_typing)) => Command::RoomTyping { room, is_typing },
                    _ => return Err(invalid("isTyping: must be true or false")),
                }
            }
            ClientEvent::CallStart => {
                let w: CallWire = wire(payload)?;
                Command::CallStart(room_id(&w.room_id)?)
            }
            ClientEvent::CallJoin => {
                let w: CallWire = wire(payload)?;
                let call = call_id(&w.call_id)?;
                let offer = match w.sdp {
                    None | Some(Value::Null) => None,
                    Some(v) => {
                        let sdp = call_sdp(v)?;
                        if sdp.kind != crate::sfu::SdpKind::Offer {
                            return Err(invalid("sdp: call:join takes an offer"));
                        }
                        Some(sdp.sdp)
                    }
                };
                Command::CallJoin { call, offer }
            }
            ClientEvent::CallSignal => {
                let w: CallWire = wire(payload)?;
                let call = call_id(&w.call_id)?;
                let signal = match (w.sdp, w.candidate) {
                    (Some(sdp), None) if !sdp.is_null() => CallSignal::Sdp(call_sdp(sdp)?),
                    (None | Some(Value::Null), Some(c)) => {
                        CallSignal::Candidate(call_candidate(c)?)
                    }
                    _ => return Err(invalid("call:signal carries one of sdp or candidate")),
                };
                Command::CallSignal { call, signal }
            }
            ClientEvent::CallLeave => {
                let w: CallWire = wire(payload)?;
                Command::CallLeave(call_id(&w.call_id)?)
            }
            ClientEvent::CallInvite => {
                let w: CallWire = wire(payload.clone())?;
                let call = call_id(&w.call_id)?;
                Command::CallInvite {
                    call,
                    user: user_id(payload)?,
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(e: ClientEvent, v: Value) -> Result<Command, PayloadError> {
        Command::parse(e, Some(v))
    }

    fn json_values() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let leaf = prop::sample::select(vec![
            r#""hi""#,
            r#""text""#,
            r#""file""#,
            r#""voice""#,
            r#"" a\"b\u00e9 ""#,
            r#""""#,
            "null",
            "1",
            "1e400",
            "true",
            "[]",
            r#"["text","hi"]"#,
            "{}",
        ]);
        let key = prop::sample::select(vec!["content", "type", "fileId", "x", "Content"]);
        let object = prop::collection::vec((key, leaf.clone()), 0..4).prop_map(|kv| {
            let fields: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
            format!("{{{}}}", fields.join(","))
        });
        prop_oneof![4 => object, 1 => leaf.prop_map(str::to_string)]
    }

    proptest::proptest! {
        /// The short way agrees with the general one wherever it answers,
        /// and answers the plain text message.
        #[test]
        fn a_text_message_read_straight_is_what_parse_reads(json in json_values()) {
            // (JSON no `Value` holds, a number out of range in a field the
            // message does not read, is unreadable only the general way.)
            if let Some(cmd) = Command::text_message(&json)
                && let Ok(v) = serde_json::from_str::<Value>(&json)
            {
                let general = Command::parse(ClientEvent::ChatMessage, Some(v));
                proptest::prop_assert_eq!(general, Ok(cmd), "{}", json);
            }
        }
    }

    #[test]
    fn a_text_message_takes_the_short_way() {
        for json in [
            r#"{"content":"hi"}"#,
            r#"{"type":"text","content":"a\"b","x":[1]}"#,
            r#"{"content":"x","type":null}"#,
        ] {
            assert!(Command::text_message(json).is_some(), "{json}");
        }
        for json in [
            r#"["text","hi"]"#,
            r#"{"content":"a","content":"b"}"#,
            r#"{"content":1}"#,
            r#"{"type":"file","content":"x"}"#,
            "null",
        ] {
            assert!(Command::text_message(json).is_none(), "{json}");
        }
    }

    #[test]
    fn no_argument_null_and_empty_object_are_the_same() {
        for e in ClientEvent::ALL {
            let none = Command::parse(*e, None);
            assert_eq!(none, Command::parse(*e, Some(Value::Null)), "{}", e.name());
            assert_eq!(none, parse(*e, json!({})), "{}", e.name());
        }
        assert_eq!(
            Command::parse(ClientEvent::UserMatch, None),
            Ok(Command::Match(MatchPrefs::default()))
        );
        assert_eq!(
            Command::parse(ClientEvent::UserSkip, None),
            Ok(Command::Skip(None))
        );
        assert_eq!(
            Command::parse(ClientEvent::WebrtcHangup, None),
            Ok(Command::Hangup)
        );
    }

    #[test]
    fn errors_name_the_field() {
        let msg = |r: Result<Command, PayloadError>| match r {
            Err(PayloadError::Invalid(m)) | Err(PayloadError::TooLarge(m)) => m,
            Ok(c) => panic!("accepted {c:?}"),
        };
        assert!(
            msg(parse(ClientEvent::ChatMessage, json!({"content": 42}))).starts_with("content")
        );
        assert!(
            msg(parse(ClientEvent::ChatTyping, json!({"isTyping": "yes"}))).starts_with("isTyping")
        );
        assert!(
            msg(parse(ClientEvent::UserMatch, json!({"interests": [1]}))).starts_with("interests")
        );
        assert!(
            msg(parse(ClientEvent::UserMatch, json!({"mode": "hologram"}))).starts_with("mode")
        );
        assert!(
            msg(parse(ClientEvent::WebrtcOffer, json!({"type": "video"}))).starts_with("offer")
        );
        assert!(
            msg(parse(
                ClientEvent::WebrtcOffer,
                json!({"offer": {}, "type": "x"})
            ))
            .starts_with("type")
        );
        assert!(msg(parse(ClientEvent::UserBlock, json!({}))).starts_with("userId"));
        assert!(msg(parse(ClientEvent::UserUnblock, json!(null))).starts_with("userId"));
        assert_eq!(
            parse(
                ClientEvent::WebrtcIceCandidate,
                json!({"candidate": "x".repeat(5000)})
            ),
            Err(PayloadError::TooLarge(format!(
                "candidate is larger than {MAX_CANDIDATE_BYTES} bytes"
            )))
        );
        assert!(matches!(
            Command::parse(ClientEvent::ChatMessage, Some(json!("text"))),
            Err(PayloadError::Invalid(_))
        ));
    }

    #[test]
    fn typed_commands() {
        assert_eq!(
            parse(
                ClientEvent::UserMatch,
                json!({"interests": [" Music ", "music", "art"], "language": "EN", "mode": "video"})
            ),
            Ok(Command::Match(MatchPrefs {
                interests: vec!["art".into(), "music".into()],
                language: Some("en".into()),
                mode: Some(Mode::Video)
            }))
        );
        assert_eq!(
            parse(
                ClientEvent::ChatMessage,
                json!({"type": "voice", "fileId": "f"})
            ),
            Ok(Command::Message(MessageBody::Voice(FileId("f".into()))))
        );
        assert_eq!(
            parse(ClientEvent::WebrtcIceCandidate, json!({"candidate": null})),
            Ok(Command::Candidate(Value::Null))
        );
        assert_eq!(
            parse(ClientEvent::WebrtcOffer, json!({"offer": {"sdp": "v=0"}})),
            Ok(Command::Offer {
                offer: json!({"sdp": "v=0"}),
                kind: CallKind::Video
            })
        );
    }
}
