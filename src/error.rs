//! The application's one error type, rendered in the API's JSON envelope:
//! `{success:false, message, error:{code, field?}}`.

use axum::{
    Json,
    extract::{FromRequest, Request, rejection::JsonRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400: a request field is missing or invalid.
    #[error("{message}")]
    Validation {
        field: &'static str,
        message: String,
    },
    /// 400: the body is not the JSON the route expects.
    #[error("{0}")]
    BadRequest(String),
    /// 401 with a code saying why.
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    /// 403: the account, device or address is banned until `until`.
    #[error("banned until {until}")]
    Banned {
        until: chrono::DateTime<chrono::Utc>,
    },
    /// 400 with a code of its own (a value the deployment does not allow).
    #[error("{message}")]
    NotAllowed {
        code: &'static str,
        field: &'static str,
        message: String,
    },
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 405.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409: a unique field is taken.
    #[error("{field} is already taken")]
    Conflict { field: &'static str },
    /// 408: the request (or upload) took longer than allowed.
    #[error("{0}")]
    Timeout(String),
    /// 413.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422.
    #[error("{0}")]
    Unprocessable(String),
    /// 429 with the seconds after which the client may retry.
    #[error("too many requests, retry in {retry_after} s")]
    RateLimited { retry_after: u64 },
    /// 503: a backing service is down.
    #[error("{0}")]
    Unavailable(String),
    /// 500: logged once, shown as a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn validation(field: &'static str, message: impl Into<String>) -> Self {
        AppError::Validation {
            field,
            message: message.into(),
        }
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        AppError::Unauthorized {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::Validation { .. } | AppError::BadRequest(_) | AppError::NotAllowed { .. } => {
                StatusCode::BAD_REQUEST
            }
            AppError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            AppError::Banned { .. } => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Conflict { .. } => StatusCode::CONFLICT,
            AppError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            AppError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Validation { .. } => "validation_error",
            AppError::BadRequest(_) => "bad_request",
            AppError::Unauthorized { code, .. } => code,
            AppError::Banned { .. } => "banned",
            AppError::NotAllowed { code, .. } => code,
            AppError::NotFound(_) => "not_found",
            AppError::MethodNotAllowed(_) => "method_not_allowed",
            AppError::Conflict { .. } => "conflict",
            AppError::Timeout(_) => "request_timeout",
            AppError::PayloadTooLarge(_) => "payload_too_large",
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::Unprocessable(_) => "unprocessable",
            AppError::RateLimited { .. } => "rate_limited",
            AppError::Unavailable(_) => "service_unavailable",
            AppError::Internal(_) => "internal_error",
        }
    }

    /// The message shown to clients; internal details stay in the log.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Internal(_) => "internal server error".to_string(),
            other => other.to_string(),
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AppError::NotFound("not found".into()),
            StoreError::Conflict(field) => AppError::Conflict { field },
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "store unavailable");
                AppError::Unavailable("the account store is unavailable, try again later".into())
            }
            StoreError::Other(detail) => AppError::Internal(format!("store: {detail}")),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let AppError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let mut error = json!({ "code": self.code() });
        match &self {
            AppError::Validation { field, .. }
            | AppError::Conflict { field }
            | AppError::NotAllowed { field, .. } => {
                error["field"] = json!(field);
            }
            AppError::RateLimited { retry_after } => {
                error["retryAfter"] = json!(retry_after);
            }
            _ => {}
        }
        let mut body = json!({
            "success": false,
            "message": self.public_message(),
            "error": error,
        });
        if let AppError::Banned { until } = &self {
            body["until"] = json!(until);
        }
        let mut res = (status, Json(body)).into_response();
        if let AppError::RateLimited { retry_after } = self {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        }
        res
    }
}

/// The success envelope `{success:true, message, data}`.
pub fn ok<T: serde::Serialize>(message: &str, data: T) -> Json<Value> {
    Json(json!({ "success": true, "message": message, "data": data }))
}

/// A JSON body extractor whose rejection is an [`AppError`].
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// `Query<T>` whose rejection is the API's envelope (400 `bad_request`),
/// not axum's text/plain answer.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, AppError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|r| AppError::BadRequest(format!("invalid query string: {}", r.body_text())))
    }
}

/// `Path<T>` whose rejection is the API's envelope (400 `bad_request`).
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> axum::extract::FromRequestParts<S> for ApiPath<T> {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, AppError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| ApiPath(v))
            .map_err(|r| AppError::BadRequest(format!("invalid path: {}", r.body_text())))
    }
}

fn json_rejection(r: JsonRejection) -> AppError {
    match r {
        JsonRejection::MissingJsonContentType(_) => AppError::UnsupportedMediaType(
            "expected a JSON body with Content-Type: application/json".into(),
        ),
        JsonRejection::JsonSyntaxError(_) => {
            AppError::BadRequest("the body is not valid JSON".into())
        }
        JsonRejection::JsonDataError(e) => {
            AppError::BadRequest(format!("invalid body: {}", e.body_text()))
        }
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            AppError::PayloadTooLarge("the request body is too large".into())
        }
        other => AppError::BadRequest(other.body_text()),
    }
}

/// A JSON object body whose fields are read one by one, so that an error
/// names the field. An empty body counts as `{}`.
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let has_body = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .is_none_or(|v| v != "0");
        let has_type = req.headers().contains_key(header::CONTENT_TYPE);
        if !has_body && !has_type {
            return Ok(JsonObject(Map::new()));
        }
        match ApiJson::<Value>::from_request(req, state).await? {
            ApiJson(Value::Object(map)) => Ok(JsonObject(map)),
            ApiJson(_) => Err(AppError::BadRequest(
                "the body must be a JSON object".into(),
            )),
        }
    }
}

impl JsonObject {
    /// An optional string field; a present non-string is an error naming it.
    pub fn opt_str(&self, field: &'static str) -> Result<Option<&str>, AppError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(AppError::validation(
                field,
                format!("{field} must be a string"),
            )),
        }
    }

    /// A required string field.
    pub fn str(&self, field: &'static str) -> Result<&str, AppError> {
        self.opt_str(field)?
            .ok_or_else(|| AppError::validation(field, format!("{field} is required")))
    }
}
