//! A minimal Socket.IO v5 client over WebSocket (Engine.IO v4), enough to
//! load a server: handshake with a token, emit with acks, receive events.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

pub type Event = (String, Value);

/// A connection's WebSocket, once taken back from a [`Client`].
pub type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A connected client: `emit`/`request` send; `events` receives server events.
pub struct Client {
    out: mpsc::UnboundedSender<String>,
    acks: Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>,
    next_ack: u64,
    pub events: mpsc::UnboundedReceiver<Event>,
    /// The reader and writer tasks: dropping the client closes the
    /// connection; [`Client::into_ws`] takes the WebSocket back from them.
    tasks: Option<Tasks>,
}

struct Tasks {
    /// Tells the reader to stop and hand its half back.
    stop: oneshot::Sender<()>,
    reader: tokio::task::JoinHandle<Option<futures_util::stream::SplitStream<Ws>>>,
    writer: tokio::task::JoinHandle<futures_util::stream::SplitSink<Ws, Message>>,
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(t) = &self.tasks {
            t.reader.abort();
            t.writer.abort();
        }
    }
}

/// Connects to `base` (`http://host:port`), from `local` if given (a
/// loopback source address, so many clients do not run out of ports).
pub async fn connect(
    base: &str,
    token: &str,
    local: Option<std::net::IpAddr>,
) -> Result<Client, String> {
    let url = format!(
        "{}/socket.io/?EIO=4&transport=websocket",
        base.replacen("http", "ws", 1)
    );
    let authority = base
        .strip_prefix("http://")
        .ok_or("only http:// URLs")?
        .trim_end_matches('/');
    let server = tokio::net::lookup_host(authority)
        .await
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let socket = if server.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(|e| e.to_string())?;
    if let Some(ip) = local {
        socket
            .bind(std::net::SocketAddr::new(ip, 0))
            .map_err(|e| format!("bind {ip}: {e}"))?;
    }
    let stream = socket.connect(server).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).ok();
    let (ws, _) = tokio_tungstenite::client_async(url.as_str(), stream)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sink, mut stream) = ws.split();
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel::<Event>();
    let acks: Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>> = Arc::default();
    let (ready_tx, ready_rx) = oneshot::channel::<Result<(), String>>();
    let auth = serde_json::json!({ "token": token }).to_string();
    let writer = tokio::spawn(async move {
        // Ends once every sender is gone: the client's and the reader's.
        while let Some(m) = out_rx.recv().await {
            if sink.send(Message::text(m)).await.is_err() {
                break;
            }
        }
        sink
    });
    let out = out_tx.clone();
    let acks_rx = acks.clone();
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let reader = tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        loop {
            let msg = tokio::select! {
                biased;
                _ = &mut stop_rx => return Some(stream),
                m = stream.next() => m,
            };
            let Some(Ok(msg)) = msg else { break };
            let Message::Text(text) = msg else { continue };
            match parse(text.as_str()) {
                Incoming::Open => {
                    let _ = out.send(format!("40{auth}"));
                }
                Incoming::Ping => {
                    let _ = out.send("3".into());
                }
                Incoming::Connected => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(Ok(()));
                    }
                }
                Incoming::ConnectError(e) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(Err(format!("connect_error {e}")));
                    }
                }
                Incoming::Ack(id, data) => {
                    let tx = id.and_then(|id| acks_rx.lock().unwrap().remove(&id));
                    if let Some(tx) = tx {
                        let _ = tx.send(data);
                    }
                }
                Incoming::Event(name, data) => {
                    let _ = ev_tx.send((name, data));
                }
                Incoming::Other => {}
            }
        }
        if let Some(r) = ready.take() {
            let _ = r.send(Err("closed during handshake".into()));
        }
        None
    });
    ready_rx.await.map_err(|_| "handshake lost".to_string())??;
    Ok(Client {
        out: out_tx,
        acks,
        next_ack: 1,
        events: ev_rx,
        tasks: Some(Tasks {
            stop: stop_tx,
            reader,
            writer,
        }),
    })
}

impl Client {
    /// Stops the client's tasks and returns its WebSocket, for a load that
    /// drives the connection itself (no task or channel between the socket
    /// and the figures). Events not yet read stay in the socket.
    pub async fn into_ws(mut self) -> Option<Ws> {
        let t = self.tasks.take()?;
        let _ = t.stop.send(());
        let stream = t.reader.await.ok()??;
        // The writer ends once the reader's sender and ours are gone.
        let (tx, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.out, tx));
        let sink = t.writer.await.ok()?;
        stream.reunite(sink).ok()
    }

    /// Emits with an ack; the receiver yields the ack payload.
    pub fn request(&mut self, event: &str, data: &Value) -> oneshot::Receiver<Value> {
        let id = self.next_ack;
        self.next_ack += 1;
        let (tx, rx) = oneshot::channel();
        self.acks.lock().unwrap().insert(id, tx);
        let _ = self.out.send(event_frame(id, event, data));
        rx
    }

    /// Waits for the next event named `name`, dropping others.
    pub async fn wait_for(&mut self, name: &str) -> Option<Value> {
        while let Some((ev, data)) = self.events.recv().await {
            if ev == name {
                return Some(data);
            }
        }
        None
    }
}

/// A server's frame, as a load needs it.
pub enum Incoming {
    /// Engine.IO's open packet.
    Open,
    /// Engine.IO's ping (answered with `3`).
    Ping,
    /// The main namespace's CONNECT answer.
    Connected,
    ConnectError(String),
    /// An event: its name and first argument (`null` if none).
    Event(String, Value),
    /// An ack: its id and first argument.
    Ack(Option<u64>, Value),
    Other,
}

/// Reads one text frame from the server.
pub fn parse(t: &str) -> Incoming {
    match t.as_bytes().first() {
        Some(b'0') => Incoming::Open,
        Some(b'2') => Incoming::Ping,
        Some(b'4') => {
            let p = &t[1..];
            match p.as_bytes().first() {
                Some(b'0') => Incoming::Connected,
                Some(b'4') => Incoming::ConnectError(p[1..].to_string()),
                Some(&kind @ (b'2' | b'3')) => {
                    let body = &p[1..];
                    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
                    let id: Option<u64> = body[..digits].parse().ok();
                    let Ok(Value::Array(args)) = serde_json::from_str::<Value>(&body[digits..])
                    else {
                        return Incoming::Other;
                    };
                    let mut args = args.into_iter();
                    if kind == b'3' {
                        return Incoming::Ack(id, args.next().unwrap_or(Value::Null));
                    }
                    match args.next() {
                        Some(name) => Incoming::Event(
                            name.as_str().unwrap_or("").to_string(),
                            args.next().unwrap_or(Value::Null),
                        ),
                        None => Incoming::Other,
                    }
                }
                _ => Incoming::Other,
            }
        }
        _ => Incoming::Other,
    }
}

/// An event with ack id `id`, as the client sends it.
pub fn event_frame(id: u64, event: &str, data: &Value) -> String {
    format!("42{id}{}", serde_json::json!([event, data]))
}
