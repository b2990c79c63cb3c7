//! The Socket.IO contract as types, in one place.
//!
//! - [`ids`]: the id newtypes (`UserId`, `RoomId`, `FileId`, `SocketId`).
//! - [`client`]: every client event name, declared once in
//!   [`client::ClientEvent`], and each event's payload parsed once, at the
//!   edge, into a typed [`client::Command`]; a payload that does not fit is
//!   `invalid_payload` with a message naming the field.
//! - [`server`]: every server event, declared once in
//!   [`server::ServerEventKind`], and each one a typed value
//!   ([`server::ServerEvent`]) serialized in one place.
//!
//! - [`asyncapi`]: both tables as an AsyncAPI 3.0 document.
//!
//! A test checks both tables against `docs/API.md`.

pub mod asyncapi;
pub mod client;
pub mod ids;
pub mod server;

pub use client::{ClientEvent, Command};
pub use ids::{FileId, RoomId, SocketId, UserId};
pub use server::{ServerEvent, ServerEventKind};

#[cfg(test)]
mod tests {
    use super::*;

    const API: &str = include_str!("../../docs/API.md");

    /// Every `name:like-this` in backticks in docs/API.md's Socket.IO part.
    fn documented_events() -> std::collections::BTreeSet<String> {
        let socket_part = &API[API.find("## Socket.IO").expect("a Socket.IO section")..];
        let mut out = std::collections::BTreeSet::new();
        for chunk in socket_part.split('`').skip(1).step_by(2) {
            // `chat:message {id, from}` → chat:message
            let name = chunk.split([' ', '{', '\n']).next().unwrap_or("");
            let well_formed = name.split_once(':').is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == ':' || c == '-')
            });
            if well_formed {
                out.insert(name.to_string());
            }
        }
        out
    }

    #[test]
    fn every_event_is_in_the_api_document_and_every_documented_event_exists() {
        let documented = documented_events();
        let mut declared = std::collections::BTreeSet::new();
        for e in ClientEvent::ALL {
            declared.insert(e.name().to_string());
        }
        for e in ServerEventKind::ALL {
            declared.insert(e.name().to_string());
        }
        for name in &declared {
            if name.contains(':') {
                assert!(documented.contains(name), "{name} is not in docs/API.md");
            } else {
                assert!(
                    API.contains(&format!("`{name}`")),
                    "{name} is not in docs/API.md"
                );
            }
        }
        for name in &documented {
            assert!(
                declared.contains(name),
                "docs/API.md names {name}, which no table declares"
            );
        }
    }

    #[test]
    fn names_are_unique_and_round_trip() {
        for e in ClientEvent::ALL {
            assert_eq!(ClientEvent::from_name(e.name()), Some(*e));
        }
        let mut names: Vec<_> = ServerEventKind::ALL.iter().map(|k| k.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ServerEventKind::ALL.len());
    }
}
