//! REST API: one router per resource, merged in [`api_router`].

use axum::{
    Router,
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::{HeaderName, HeaderValue, Method, header},
    middleware::from_fn_with_state,
    routing::get,
};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    trace::TraceLayer,
};

use utoipa::OpenApi as _;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{AppState, Config, error::AppError};

mod admin;
mod auth;
mod extract;
mod files;
mod health;
pub mod metrics;
pub(crate) mod middleware;
pub mod openapi;
mod rooms;
pub mod server;
mod users;
mod web;

pub use extract::{AuthAccount, AuthUser, bearer, client_ip};
use middleware::{Limit, rate_limit, time_limit};

/// Largest JSON body the API reads.
const JSON_BODY_LIMIT: usize = 64 * 1024;

pub fn api_router(state: AppState) -> Router {
    let window = state.config.rate_limit_window.0;
    let request_timeout = state.config.http_request_timeout.0;
    let credentials = OpenApiRouter::new()
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::guest))
        .routes(routes!(auth::refresh))
        .route_layer(from_fn_with_state(
            Limit::new(&state, "auth", state.config.rate_limit_auth_max, window),
            rate_limit,
        ))
        .route_layer(from_fn_with_state(request_timeout, time_limit));
    let (uploads, downloads) = files::router(&state);
    let api = OpenApiRouter::new()
        .routes(routes!(auth::me))
        .merge(downloads)
        .routes(routes!(auth::logout))
        .merge(users::router())
        .merge(rooms::router())
        .routes(routes!(health::socket_stats))
        .routes(routes!(health::turn_credentials))
        .route_layer(from_fn_with_state(
            Limit::new(&state, "api", state.config.rate_limit_api_max, window),
            rate_limit,
        ))
        .route_layer(from_fn_with_state(request_timeout, time_limit));
    let (described, openapi) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(credentials)
        .merge(uploads)
        .merge(api)
        .merge(admin::router(&state))
        .routes(routes!(health::health))
        .merge(rooms::public_router())
        .routes(routes!(openapi::openapi_json))
        .routes(routes!(openapi::asyncapi_json))
        .split_for_parts();
    let _ = state.docs.set(openapi::Docs {
        openapi: openapi.to_json().unwrap_or_default(),
    });
    described
        .merge(web::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .layer(from_fn_with_state(state.clone(), metrics::record))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let path = req
                .extensions()
                .get::<MatchedPath>()
                .map(MatchedPath::as_str)
                .unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), path)
        }))
        .with_state(state)
}

/// What METRICS_LISTEN serves: `/metrics` alone, without a key.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::prometheus))
        .with_state(state)
}

/// Layers that wrap everything, Socket.IO included: security headers and CORS.
pub fn outer_layers(app: Router, config: &Config) -> Router {
    let app = middleware::security_headers(app)
        .layer(axum::middleware::from_fn(middleware::detach_socket_head));
    match cors(config) {
        Some(cors) => app.layer(cors),
        None => app,
    }
}

fn cors(config: &Config) -> Option<CorsLayer> {
    let origins: Vec<&str> = config
        .cors_origin
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .collect();
    if origins.is_empty() {
        return None;
    }
    let layer = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([
            header::RETRY_AFTER,
            HeaderName::from_static("ratelimit-limit"),
            HeaderName::from_static("ratelimit-remaining"),
            HeaderName::from_static("ratelimit-reset"),
        ]);
    if origins.contains(&"*") {
        return Some(layer.allow_origin(AllowOrigin::any()));
    }
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    Some(layer.allow_origin(list).allow_credentials(true))
}

async fn not_found() -> AppError {
    AppError::NotFound("no such route".into())
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed("method not allowed on this route".into())
}
