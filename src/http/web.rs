//! The web page at `/`, the operator console at `/admin` and the API
//! reference at `/docs`: static files compiled into the binary, so
//! `cargo run --release` alone serves a working app.

use axum::{
    Router,
    http::{HeaderValue, header},
    response::IntoResponse,
    routing::get,
};

use crate::AppState;

const INDEX: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const SIO_JS: &str = include_str!("../../web/sio.js");
const LOUNGES_JS: &str = include_str!("../../web/lounges.js");
const GROUPCALL_JS: &str = include_str!("../../web/groupcall.js");
const STYLE: &str = include_str!("../../web/style.css");
const ADMIN: &str = include_str!("../../web/admin.html");
const ADMIN_JS: &str = include_str!("../../web/admin.js");
const ADMIN_CSS: &str = include_str!("../../web/admin.css");
const DOCS: &str = include_str!("../../web/docs.html");
const DOCS_JS: &str = include_str!("../../web/docs.js");
const DOCS_CSS: &str = include_str!("../../web/docs.css");

fn asset(body: &'static str, mime: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(mime)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/sio.js",
            get(|| async { asset(SIO_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/lounges.js",
            get(|| async { asset(LOUNGES_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/groupcall.js",
            get(|| async { asset(GROUPCALL_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/style.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
        .route(
            "/admin",
            get(|| async { asset(ADMIN, "text/html; charset=utf-8") }),
        )
        .route(
            "/admin.js",
            get(|| async { asset(ADMIN_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/admin.css",
            get(|| async { asset(ADMIN_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/docs",
            get(|| async { asset(DOCS, "text/html; charset=utf-8") }),
        )
        .route(
            "/docs.js",
            get(|| async { asset(DOCS_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/docs.css",
            get(|| async { asset(DOCS_CSS, "text/css; charset=utf-8") }),
        )
}
