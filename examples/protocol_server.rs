//! The server the official Socket.IO protocol test suite expects
//! (<https://github.com/socketio/socket.io-protocol>, `test-suite/`), built
//! on Tandem's transport (`tandem::sio`): ping every 300 ms, 200 ms to
//! answer, 1 MB payloads, 1 s to connect; the main namespace and `/custom`
//! send back the handshake's `auth`; `message` is echoed as `message-back`
//! and `message-with-ack` answered with its own arguments, binary
//! attachments included. `scripts/protocol-suite` runs the suite against it.
//!
//!     cargo run --example protocol_server -- [port]   # default 3000

use std::{sync::Arc, time::Duration};

use serde_json::Value;
use tandem::sio::{Ack, BoxFuture, DisconnectReason, Event, Handler, Io, Settings, SocketRef};

struct Echo;

#[derive(Clone)]
struct Auth(Value);

impl Handler for Echo {
    fn accepts(&self, ns: &str) -> bool {
        ns == "/" || ns == "/custom"
    }

    fn authenticate<'a>(
        &'a self,
        socket: &'a SocketRef,
        auth: Option<Value>,
        _head: &'a axum::http::request::Parts,
    ) -> BoxFuture<'a, Result<(), String>> {
        socket
            .extensions
            .insert(Auth(auth.unwrap_or_else(|| serde_json::json!({}))));
        Box::pin(async { Ok(()) })
    }

    fn on_connect(&self, socket: SocketRef) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let auth = socket.extensions.get::<Auth>().map(|a| a.0);
            let _ = socket.emit("auth", &auth.unwrap_or(Value::Null));
        })
    }

    fn on_event(&self, socket: SocketRef, event: Event, ack: Ack) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let Ok(mut args) = serde_json::from_str::<Vec<Value>>(event.data()) else {
                return;
            };
            match event.name.as_str() {
                "message" => {
                    args[0] = Value::from("message-back");
                    let _ = socket.emit_raw(&Value::from(args).to_string(), event.attachments);
                }
                "message-with-ack" => {
                    args.remove(0);
                    let _ = ack.send_raw(&Value::from(args).to_string(), event.attachments);
                }
                _ => {}
            }
        })
    }

    fn on_disconnect(&self, _: SocketRef, _: DisconnectReason) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let io = Io::new(Settings {
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        max_payload: 1_000_000,
        max_queue: 1024,
        ws_read_buffer: 4096,
        max_attachments: 10,
        connect_timeout: Duration::from_secs(1),
    });
    io.set_handler(Arc::new(Echo));
    let serve = move |req: axum::extract::Request| {
        let io = io.clone();
        async move { tandem::sio::driver::serve(io, req).await }
    };
    let app = axum::Router::new().route("/socket.io/", axum::routing::any(serve));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
