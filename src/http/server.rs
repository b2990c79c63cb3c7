//! The HTTP listener: hyper driven by hand rather than `axum::serve`, which
//! sets no timer (so hyper's header-read timeout never fires) and no
//! `TCP_NODELAY` (so every small Socket.IO frame waited for Nagle).
//!
//! Per accepted connection: `TCP_NODELAY`, the peer address as axum's
//! `ConnectInfo`, HTTP/1 with upgrades (WebSocket) or HTTP/2, and a
//! header-read timeout that also bounds how long a keep-alive connection may
//! sit idle. Accept errors (out of file descriptors) back off instead of
//! spinning.

use std::{future::Future, net::SocketAddr, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto::Builder, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tower::ServiceExt;

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting and waits for open connections to finish (the caller bounds
/// that wait).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
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
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(svc))
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
