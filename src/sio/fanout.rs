//! What one node tells the others, sans I/O: an event for a room (or for
//! everyone), or a room's disconnect. The cluster carries these over Redis
//! pub/sub; every node delivers them to its own sockets and skips its own.
//!
//! Layout: kind (`E` | `D`), the sender's node id (u8 length + bytes), the
//! room (u16 length + bytes; `0xFFFF` = everyone), for `E` the socket left
//! out (u8 length + bytes; `0xFF` = none) and then the frame, to the end;
//! for `L` the room to leave, to the end.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    Emit {
        room: Option<&'a str>,
        except: Option<&'a str>,
        frame: &'a str,
    },
    Disconnect {
        room: Option<&'a str>,
    },
    /// The sockets in `room` leave the room `leave`.
    Leave {
        room: Option<&'a str>,
        leave: &'a str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable;

const NO_ROOM: u16 = u16::MAX;
const NO_EXCEPT: u8 = u8::MAX;

pub fn encode(node: &str, m: &Message) -> Vec<u8> {
    let node = &node.as_bytes()[..node.len().min(255)];
    let mut out = Vec::with_capacity(64);
    let (kind, room) = match m {
        Message::Emit { room, .. } => (b'E', room),
        Message::Disconnect { room } => (b'D', room),
        Message::Leave { room, .. } => (b'L', room),
    };
    out.push(kind);
    out.push(node.len() as u8);
    out.extend_from_slice(node);
    match room.filter(|r| r.len() < NO_ROOM as usize) {
        Some(r) => {
            out.extend_from_slice(&(r.len() as u16).to_be_bytes());
            out.extend_from_slice(r.as_bytes());
        }
        None => out.extend_from_slice(&NO_ROOM.to_be_bytes()),
    }
    if let Message::Emit { except, frame, .. } = m {
        match except.filter(|e| e.len() < NO_EXCEPT as usize) {
            Some(e) => {
                out.push(e.len() as u8);
                out.extend_from_slice(e.as_bytes());
            }
            None => out.push(NO_EXCEPT),
        }
        out.extend_from_slice(frame.as_bytes());
    }
    if let Message::Leave { leave, .. } = m {
        out.extend_from_slice(leave.as_bytes());
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Unreadable> {
        if self.0.len() < n {
            return Err(Unreadable);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn str(&mut self, n: usize) -> Result<&'a str, Unreadable> {
        std::str::from_utf8(self.take(n)?).map_err(|_| Unreadable)
    }
}

/// Reads a message: the sender's node id and what it asks.
pub fn decode(bytes: &[u8]) -> Result<(&str, Message<'_>), Unreadable> {
    let mut r = Reader(bytes);
    let kind = r.take(1)?[0];
    let n = r.take(1)?[0] as usize;
    let node = r.str(n)?;
    let len = u16::from_be_bytes([r.take(1)?[0], r.take(1)?[0]]);
    let room = if len == NO_ROOM {
        None
    } else {
        Some(r.str(len as usize)?)
    };
    match kind {
        b'D' if r.0.is_empty() => Ok((node, Message::Disconnect { room })),
        b'L' => {
            let leave = std::str::from_utf8(r.0).map_err(|_| Unreadable)?;
            Ok((node, Message::Leave { room, leave }))
        }
        b'E' => {
            let n = r.take(1)?[0];
            let except = if n == NO_EXCEPT {
                None
            } else {
                Some(r.str(n as usize)?)
            };
            let frame = std::str::from_utf8(r.0).map_err(|_| Unreadable)?;
            Ok((
                node,
                Message::Emit {
                    room,
                    except,
                    frame,
                },
            ))
        }
        _ => Err(Unreadable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for m in [
            Message::Emit {
                room: Some("user:1"),
                except: Some("abc"),
                frame: "42[\"a\",{}]",
            },
            Message::Emit {
                room: None,
                except: None,
                frame: "",
            },
            Message::Disconnect { room: Some("r") },
            Message::Disconnect { room: None },
            Message::Leave {
                room: Some("user:1"),
                leave: "call:2",
            },
        ] {
            let bytes = encode("node-1", &m);
            assert_eq!(decode(&bytes), Ok(("node-1", m)));
        }
    }

    #[test]
    fn truncated_or_foreign_bytes_are_unreadable() {
        let bytes = encode(
            "n",
            &Message::Emit {
                room: Some("room"),
                except: Some("x"),
                frame: "42[]",
            },
        );
        // Every cut before the frame loses a field.
        for cut in 0..bytes.len() - 4 {
            assert_eq!(decode(&bytes[..cut]), Err(Unreadable), "cut at {cut}");
        }
        assert_eq!(decode(b"X\x00\xff\xff"), Err(Unreadable));
        assert_eq!(decode(b"D\x00\xff\xffextra"), Err(Unreadable));
        assert_eq!(decode(b"E\x01\xff\xff\xff\xff"), Err(Unreadable));
    }
}
