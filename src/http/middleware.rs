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
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        let name = HeaderName::from_static(name);
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    }
    h.remove(header::SERVER);
    res
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
