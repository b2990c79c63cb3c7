//! Per-IP rate limits and security headers.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::{HeaderName, HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};

use futures_util::StreamExt;

use crate::{AppState, error::AppError};

#[derive(Clone)]
pub struct Limit {
    state: AppState,
    bucket: &'static str,
    max: u32,
    window: Duration,
}

impl Limit {
    pub fn new(state: &AppState, bucket: &'static str, max: u32, window: Duration) -> Self {
        Limit {
            state: state.clone(),
            bucket,
            max,
            window,
        }
    }
}

/// Counts the request against the client's IP in this bucket; 429 with
/// `Retry-After` once over the limit. Every answer carries `RateLimit-*`.
pub async fn rate_limit(State(limit): State<Limit>, req: Request, next: Next) -> Response {
    let ip = super::client_ip(
        req.headers(),
        req.extensions(),
        limit.state.config.trust_proxy,
    )
    .map(|ip| ip.to_string())
    .unwrap_or_else(|| "unknown".into());
    let key = format!("{}:{ip}", limit.bucket);
    let d = limit.state.limiter.hit(&key, limit.max, limit.window).await;
    let reset = d.reset_in.as_secs_f64().ceil() as u64;
    let mut res = if d.allowed {
        next.run(req).await
    } else {
        tracing::info!(bucket = limit.bucket, %ip, "rate limited");
        AppError::RateLimited {
            retry_after: reset.max(1),
        }
        .into_response()
    };
    let h = res.headers_mut();
    h.insert(
        HeaderName::from_static("ratelimit-limit"),
        HeaderValue::from(d.limit),
    );
    h.insert(
        HeaderName::from_static("ratelimit-remaining"),
        HeaderValue::from(d.remaining),
    );
    h.insert(
        HeaderName::from_static("ratelimit-reset"),
        HeaderValue::from(reset),
    );
    res
}

const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("x-dns-prefetch-control", "off"),
    ("x-permitted-cross-domain-policies", "none"),
    (
        "strict-transport-security",
        "max-age=15552000; includeSubDomains",
    ),
    (
        "permissions-policy",
        "camera=(self), microphone=(self), geolocation=()",
    ),
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self' ws: wss:; \
         object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'",
    ),
];

/// Helmet-like headers on every response, unless a handler set its own.
pub fn security_headers(app: axum::Router) -> axum::Router {
    SECURITY_HEADERS.iter().fold(app, |app, (name, value)| {
        app.layer(
            tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            ),
        )
    })
}

/// Bounds a request's whole time, body included: past `limit` the handler
/// is dropped (an upload's partial file with it) and the client gets 408
/// `request_timeout`. A client trickling a body a byte a second no longer
/// holds a connection and a task forever.
pub async fn time_limit(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            tracing::info!(?limit, "request timed out");
            let mut res = crate::error::AppError::Timeout(format!(
                "the request took longer than {} ms",
                limit.as_millis()
            ))
            .into_response();
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            res
        }
    }
}

/// On routes that take large bodies (uploads): when the answer is an error
/// sent before the body was read (401, 429, 413, a bad field), read and
/// drop the rest of the body first, within `limit` bytes and 30 s. Closing a
/// socket with unread data makes the kernel reset it, and the client would
/// see a connection error instead of our JSON answer.
pub async fn drain_unread_body(State(limit): State<u64>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let shared = std::sync::Arc::new(std::sync::Mutex::new(Some(body)));
    let res = next
        .run(Request::from_parts(
            parts,
            Body::new(SharedBody(shared.clone())),
        ))
        .await;
    if res.status().is_client_error() || res.status().is_server_error() {
        let rest = shared.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(rest) = rest {
            let mut stream = rest.into_data_stream();
            let mut read = 0u64;
            let drain = async {
                while let Some(Ok(chunk)) = stream.next().await {
                    read += chunk.len() as u64;
                    if read > limit {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(30), drain).await;
        }
    }
    res
}

/// A request body the handler reads while the middleware keeps a handle on it.
struct SharedBody(std::sync::Arc<std::sync::Mutex<Option<Body>>>);

impl http_body::Body for SharedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match guard.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }
}

/// Socket.IO keeps the head of the request that opened a session (URI and
/// headers) for the session's whole life. hyper parses both as slices of
/// its connection read buffer (8–16 KiB), so keeping them keeps that buffer
/// alive for every idle socket. Copy them out — the values into one shared
/// allocation — before the Socket.IO layer sees the request.
pub async fn detach_socket_head(mut req: Request, next: Next) -> Response {
    if req.uri().path().starts_with("/socket.io") {
        detach_head(&mut req);
    }
    next.run(req).await
}

fn detach_head(req: &mut Request) {
    if let Ok(uri) = axum::http::Uri::from_maybe_shared(Bytes::from(req.uri().to_string())) {
        // The router keeps a copy of the URI in the extensions too.
        if let Some(original) = req.extensions_mut().get_mut::<axum::extract::OriginalUri>() {
            original.0 = uri.clone();
        }
        *req.uri_mut() = uri;
    }
    let old = std::mem::take(req.headers_mut());
    let mut pairs = Vec::with_capacity(old.len());
    let mut name: Option<HeaderName> = None;
    for (n, v) in old {
        if let Some(n) = n {
            name = Some(n);
        }
        if let Some(n) = &name {
            pairs.push((n.clone(), v));
        }
    }
    let mut buf = Vec::with_capacity(pairs.iter().map(|(_, v)| v.len()).sum());
    for (_, v) in &pairs {
        buf.extend_from_slice(v.as_bytes());
    }
    let buf = Bytes::from(buf);
    let headers = req.headers_mut();
    headers.reserve(pairs.len());
    let mut at = 0;
    for (n, v) in pairs {
        let (len, sensitive) = (v.len(), v.is_sensitive());
        // The bytes were a valid value a moment ago; keep the original if not.
        let mut copy = HeaderValue::from_maybe_shared(buf.slice(at..at + len)).unwrap_or(v);
        copy.set_sensitive(sensitive);
        headers.append(n, copy);
        at += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detached_head_keeps_uri_headers_and_their_order() {
        let mut req = Request::builder()
            .uri("/socket.io/?EIO=4&transport=websocket")
            .header("authorization", "Bearer abc")
            .header("x-forwarded-for", "10.0.0.1")
            .header("x-forwarded-for", "10.0.0.2")
            .header("cookie", "a=b")
            .body(Body::empty())
            .unwrap();
        req.headers_mut()
            .get_mut("authorization")
            .unwrap()
            .set_sensitive(true);
        let uri = req.uri().clone();
        req.extensions_mut().insert(axum::extract::OriginalUri(uri));
        let before = req.headers().clone();
        detach_head(&mut req);
        assert_eq!(req.uri(), "/socket.io/?EIO=4&transport=websocket");
        assert_eq!(
            req.extensions()
                .get::<axum::extract::OriginalUri>()
                .unwrap()
                .0,
            *req.uri()
        );
        assert_eq!(*req.headers(), before);
        let forwarded: Vec<_> = req.headers().get_all("x-forwarded-for").iter().collect();
        assert_eq!(forwarded, ["10.0.0.1", "10.0.0.2"]);
        assert!(req.headers()["authorization"].is_sensitive());
    }
}
