//! The REST API's OpenAPI 3.1 description. Each handler carries its own
//! `#[utoipa::path]`, and the routers register handlers through
//! utoipa-axum's `routes!`, so a route cannot be served without being
//! described. Here: the document's root, the shared schemas (the JSON
//! envelope, request bodies), and `GET /api/openapi.json` and `/docs`.

use axum::{
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tandem",
        description = "Accounts, presence, matching, files, TURN credentials and moderation for a stranger-chat backend. The realtime part (Socket.IO v5) is described in AsyncAPI at /api/asyncapi.json; the contract in prose is docs/API.md.",
        license(name = "MIT", identifier = "MIT"),
    ),
    servers((url = "/", description = "this server")),
    modifiers(&Security),
    tags(
        (name = "accounts", description = "Registration, login, guests and tokens"),
        (name = "users", description = "Presence, devices, blocks and standing"),
        (name = "files", description = "Uploads and downloads"),
        (name = "rooms", description = "Lounges: public rooms and their history"),
        (name = "service", description = "Health, statistics, TURN credentials and these descriptions"),
        (name = "admin", description = "The moderator API and metrics (X-Admin-Key)"),
    ),
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "The access token from register, login, guest or refresh",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "adminKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Admin-Key",
                "ADMIN_KEY; without it set the admin API answers 404",
            ))),
        );
    }
}

/// Every successful answer: `data` depends on the route (docs/API.md).
#[derive(Serialize, ToSchema)]
pub struct Envelope {
    pub success: bool,
    pub message: String,
    pub data: Option<serde_json::Value>,
}

/// What an error carries.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable (docs/API.md lists them).
    pub code: String,
    pub message: String,
    /// The offending field, for `validation_error`.
    pub field: Option<String>,
}

/// Every error answer.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub success: bool,
    pub message: String,
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct RegisterRequest {
    /// 3–20 letters, digits, `_` or `-`.
    pub username: String,
    pub email: String,
    /// 8 to 72 bytes.
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct GuestRequest {
    /// Optional; one is made up when absent.
    pub username: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRequest {
    /// 8–128 characters of `[A-Za-z0-9_-]`.
    pub device_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct BanRequest {
    /// e.g. `30m`, `24h`, `7d`; absent: the escalation policy's next step.
    pub duration: Option<String>,
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ResolveRequest {
    /// `dismiss`, `ban` or `warn`.
    pub action: String,
    /// For `ban`.
    pub duration: Option<String>,
}

/// `multipart/form-data`.
#[derive(Serialize, ToSchema)]
pub struct UploadForm {
    /// `file` (default) or `voice`.
    pub kind: Option<String>,
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    pub file: String,
}

/// The OpenAPI document, as served.
#[utoipa::path(
    get, path = "/api/openapi.json", tag = "service", summary = "This OpenAPI document", security(()),
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json")),
)]
pub async fn openapi_json(State(state): State<AppState>) -> Response {
    json_asset(
        state
            .docs
            .get()
            .map(|d| d.openapi.clone())
            .unwrap_or_default(),
    )
}

/// The AsyncAPI 3 document of the Socket.IO events.
#[utoipa::path(
    get, path = "/api/asyncapi.json", tag = "service", summary = "The AsyncAPI document of the Socket.IO events", security(()),
    responses((status = 200, description = "The Socket.IO events (AsyncAPI 3.0)", content_type = "application/json")),
)]
pub async fn asyncapi_json() -> Response {
    json_asset(crate::protocol::asyncapi::document())
}

fn json_asset(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// The documents a server serves, built once with its router.
#[derive(Debug, Clone)]
pub struct Docs {
    pub openapi: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The router's sources: an API route written with axum's plain
    /// `.route(..)` would be served but not described.
    const SOURCES: &[(&str, &str)] = &[
        ("mod.rs", include_str!("mod.rs")),
        ("admin.rs", include_str!("admin.rs")),
        ("auth.rs", include_str!("auth.rs")),
        ("files.rs", include_str!("files.rs")),
        ("users.rs", include_str!("users.rs")),
        ("health.rs", include_str!("health.rs")),
        ("metrics.rs", include_str!("metrics.rs")),
        ("web.rs", include_str!("web.rs")),
    ];

    #[test]
    fn api_routes_are_registered_only_through_their_descriptions() {
        let doc = ApiDoc::openapi();
        assert!(doc.paths.paths.is_empty(), "paths come from the routers");
        for (file, src) in SOURCES {
            for (i, _) in src.match_indices(".route(") {
                let rest = src[i + 7..].trim_start();
                let path = rest.trim_start_matches('"').split('"').next().unwrap_or("");
                let page = [
                    "/",
                    "/app.js",
                    "/sio.js",
                    "/lounges.js",
                    "/groupcall.js",
                    "/style.css",
                    "/admin",
                    "/admin.js",
                    "/admin.css",
                    "/docs",
                    "/docs.js",
                    "/docs.css",
                ]
                .contains(&path);
                // METRICS_LISTEN's router serves the documented /metrics again.
                let metrics_listener = *file == "mod.rs" && path == "/metrics";
                assert!(
                    page || metrics_listener,
                    "{file}: {path} is routed without a description"
                );
            }
        }
    }
}
