//! The HTTP listener: hyper driven by hand rather than `axum::serve`, which
//! sets no timer (so hyper's header-read timeout never fires) and no
//! `TCP_NODELAY` (so every small Socket.IO frame waited for Nagle).
//!
//! Per accepted connection: `TCP_NODELAY`, the peer address as axum's
//! `ConnectInfo`, HTTP/1.1 with upgrades (WebSocket), and a header-read
//! timeout that runs from the moment the connection is idle: it bounds a
//! slow request head, a connection that never sends a byte, and a
//! keep-alive connection left idle. Accept errors (out of file descriptors)
//! back off instead of spinning.
//!
//! HTTP/1.1 only: browsers reach us over HTTP/1.1 (or through nginx, which
//! speaks HTTP/1.1 upstream); cleartext HTTP/2 needs prior knowledge, and
//! sniffing for it would read the first bytes with no timeout.

use std::{future::Future, net::SocketAddr, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::shards::Shards;

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting and waits for open connections to finish (the caller bounds
/// that wait).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shards: &Shards,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    // Connections watch `stop`; each holds a clone of `open`, so `closed`
    // ends once every connection has finished.
    let (stop, _) = tokio::sync::watch::channel(false);
    let (open, mut closed) = tokio::sync::mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    let mut backoff = crate::net::AcceptBackoff::default();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(ok) => {
                backoff.succeeded();
                ok
            }
            Err(e) => {
                let Some(pause) = backoff.failed(&e) else {
                    continue;
                };
                tracing::warn!(error = %e, ?pause, "accept failed; backing off");
                tokio::select! {
                    () = tokio::time::sleep(pause) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY");
        }
        let svc = app
            .clone()
            .map_request(move |mut req: axum::http::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                req
            });
        // Taken off this runtime's reactor and put on the shard's.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, %peer, "connection lost before it was served");
                continue;
            }
        };
        let (mut stopping, open, builder) = (stop.subscribe(), open.clone(), builder.clone());
        shards.spawn(async move {
            let stream = match tokio::net::TcpStream::from_std(stream) {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(error = %e, %peer, "connection lost before it was served");
                    return;
                }
            };
            let conn = builder
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                .with_upgrades();
            tokio::pin!(conn);
            let res = tokio::select! {
                res = conn.as_mut() => res,
                _ = async { let _ = stopping.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = res {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            drop(open);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    drop(open);
    let _ = closed.recv().await;
}
