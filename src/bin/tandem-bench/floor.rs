//! `floor-server`: a server that only pairs, for the match-storm's floor.
//!
//! It speaks just enough Engine.IO v4 / Socket.IO v5 over WebSocket for
//! `match-storm`: the open packet, the namespace connect with
//! `connection:established`, and `user:match` answered in arrival order
//! (every second one pairs with the one waiting: `user:matched` to both,
//! then the ack). No accounts, no checks, no pings, one waiting slot.
//! What it measures is what this machine and this generator allow with
//! (almost) nothing done per user; `scripts/bench match-storm` runs it
//! beside Tandem and Node with `FLOOR=1`.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Serves on the port of `url` until killed.
pub async fn run(url: &str) -> Result<(), String> {
    let addr = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs")?
        .trim_end_matches('/');
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("bind {addr}: {e}"))?;
    eprintln!("floor-server listening on {addr}");
    let waiting: Arc<Mutex<Option<mpsc::UnboundedSender<String>>>> = Arc::default();
    let rooms = Arc::new(AtomicU64::new(0));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        stream.set_nodelay(true).ok();
        let (waiting, rooms) = (waiting.clone(), rooms.clone());
        tokio::spawn(async move {
            let _ = serve(stream, &waiting, &rooms).await;
        });
    }
}

async fn serve(
    stream: tokio::net::TcpStream,
    waiting: &Mutex<Option<mpsc::UnboundedSender<String>>>,
    rooms: &AtomicU64,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let mut ws = tokio_tungstenite::accept_async(stream).await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    ws.send(Message::text(
        r#"0{"sid":"floor-session-0000000","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#,
    ))
    .await?;
    loop {
        tokio::select! {
            m = ws.next() => {
                let Some(Ok(Message::Text(t))) = m else { return Ok(()) };
                let t = t.as_str();
                if t.starts_with("40") {
                    ws.feed(Message::text(r#"40{"sid":"floor-socket-000000000"}"#)).await?;
                    ws.feed(Message::text(r#"42["connection:established",{}]"#)).await?;
                    ws.flush().await?;
                } else if let Some(rest) = t.strip_prefix("42") {
                    let id_len = rest.bytes().take_while(u8::is_ascii_digit).count();
                    let (id, event) = rest.split_at(id_len);
                    if !event.starts_with(r#"["user:match""#) {
                        continue;
                    }
                    let partner = {
                        let mut w = waiting.lock().unwrap_or_else(|p| p.into_inner());
                        match w.take() {
                            Some(p) => Some(p),
                            None => {
                                *w = Some(tx.clone());
                                None
                            }
                        }
                    };
                    let ack = match partner {
                        Some(p) => {
                            let room = rooms.fetch_add(1, Ordering::Relaxed);
                            let matched = format!(r#"42["user:matched",{{"roomId":"floor-{room}"}}]"#);
                            let _ = p.send(matched.clone());
                            ws.feed(Message::text(matched)).await?;
                            format!(r#"43{id}[{{"success":true,"data":{{"status":"matched","roomId":"floor-{room}"}}}}]"#)
                        }
                        None => format!(r#"43{id}[{{"success":true,"data":{{"status":"waiting"}}}}]"#),
                    };
                    ws.feed(Message::text(ack)).await?;
                    ws.flush().await?;
                }
            }
            Some(m) = rx.recv() => ws.send(Message::text(m)).await?,
        }
    }
}
