//! `POST /api/files` (multipart upload, streamed to disk) and
//! `GET /api/files/{id}` (only for the two people of the chat it was shared in).

use std::path::PathBuf;

use axum::{
    body::Body,
    extract::{
        DefaultBodyLimit, Multipart, State,
        multipart::{MultipartError, MultipartRejection},
    },
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::from_fn_with_state,
    response::{IntoResponse, Response},
};
use chrono::Utc;

use super::{
    AuthUser,
    middleware::{Limit, drain_unread_body, rate_limit, time_limit},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    AppState,
    error::{ApiPath, AppError, ok},
    files::{self, FileMeta, Kind, media},
};

/// Room for multipart framing and the `kind` field around the file itself.
const MULTIPART_OVERHEAD: u64 = 1024 * 1024;

pub fn router(state: &AppState) -> (OpenApiRouter<AppState>, OpenApiRouter<AppState>) {
    let max_body = (state.config.max_file_size + MULTIPART_OVERHEAD) as usize;
    let upload = OpenApiRouter::new()
        .routes(routes!(upload))
        .route_layer(DefaultBodyLimit::max(max_body))
        .route_layer(from_fn_with_state(
            Limit::new(
                state,
                "upload",
                state.config.rate_limit_upload_max,
                state.config.rate_limit_upload_window.0,
            ),
            rate_limit,
        ))
        .route_layer(from_fn_with_state(max_body as u64, drain_unread_body))
        .route_layer(from_fn_with_state(
            state.config.upload_timeout.0,
            time_limit,
        ));
    let download = OpenApiRouter::new().routes(routes!(download));
    (upload, download)
}

/// Deletes a partial upload unless it was committed.
struct PartGuard(Option<PathBuf>);

impl Drop for PartGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn multipart_error(e: MultipartError) -> AppError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge("the upload is larger than MAX_FILE_SIZE".into())
    } else {
        AppError::BadRequest(format!("malformed multipart body: {}", e.body_text()))
    }
}

#[utoipa::path(
    post,
    path = "/api/files",
    tag = "files", summary = "Upload a file or a voice note",
    security(("bearer" = [])),
    request_body(content = crate::http::openapi::UploadForm, content_type = "multipart/form-data"),
    responses((status = 201, description = "The file's metadata {id, name, mime, size, url, kind, duration?}", body = crate::http::openapi::Envelope), (status = 400, description = "Missing or empty file, bad field", body = crate::http::openapi::ErrorEnvelope), (status = 401, description = "Missing or invalid token", body = crate::http::openapi::ErrorEnvelope), (status = 413, description = "Larger than MAX_FILE_SIZE", body = crate::http::openapi::ErrorEnvelope), (status = 415, description = "A type that is not allowed", body = crate::http::openapi::ErrorEnvelope), (status = 422, description = "A voice note too long or unmeasurable", body = crate::http::openapi::ErrorEnvelope), (status = 429, description = "Rate limited", body = crate::http::openapi::ErrorEnvelope)),
)]
async fn upload(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<impl IntoResponse, AppError> {
    let metrics = state.metrics.clone();
    let r = accept(state, user, headers, multipart).await;
    match &r {
        Ok((_, size)) => {
            metrics.upload_bytes.inc_by(*size);
        }
        Err(e) => metrics.upload_refused(e.code()),
    }
    r.map(|(response, _)| response)
}

/// The upload and its size.
async fn accept(
    state: AppState,
    AuthUser(me): AuthUser,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(impl IntoResponse, u64), AppError> {
    let max = state.config.max_file_size;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max + MULTIPART_OVERHEAD) {
        return Err(too_large(max));
    }
    let mut multipart = multipart.map_err(|_| {
        AppError::UnsupportedMediaType(
            "expected a multipart/form-data body with a 'file' field".into(),
        )
    })?;

    let mut kind = Kind::File;
    let mut guard = PartGuard(None);
    let mut upload: Option<(u64, String)> = None;
    let mut too_big = false;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("file") if upload.is_none() => {
                let name = files::display_name(field.file_name());
                let path = state.files.part_path();
                let mut out = DiskWriter::create(&path)
                    .await
                    .map_err(|e| AppError::Internal(format!("create {}: {e}", path.display())))?;
                guard.0 = Some(path);
                let mut size = 0u64;
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    size += chunk.len() as u64;
                    if size > max {
                        // Keep reading (and dropping) so the client gets the 413.
                        too_big = true;
                        continue;
                    }
                    out.write(chunk)
                        .await
                        .map_err(|e| AppError::Internal(format!("write upload: {e}")))?;
                }
                upload = Some((size, name));
            }
            Some("file") => return Err(AppError::validation("file", "send one file per upload")),
            Some("kind") => {
                kind = match field.text().await.map_err(multipart_error)?.trim() {
                    "file" => Kind::File,
                    "voice" => Kind::Voice,
                    _ => {
                        return Err(AppError::validation(
                            "kind",
                            "kind must be 'file' or 'voice'",
                        ));
                    }
                }
            }
            _ => {
                // Unknown fields are read and ignored.
                while field.chunk().await.map_err(multipart_error)?.is_some() {}
            }
        }
    }
    if too_big {
        return Err(too_large(max));
    }
    let Some((size, name)) = upload else {
        return Err(AppError::validation("file", "the 'file' field is required"));
    };
    if size == 0 {
        return Err(AppError::validation("file", "the file is empty"));
    }
    let path = guard.0.clone().expect("set with the upload");
    let probe = crate::shards::spawn_blocking(move || {
        let mut f = std::fs::File::open(&path)?;
        media::probe(&mut f, size)
    })
    .await
    .map_err(|e| AppError::Internal(format!("probe task: {e}")))?;
    let probe = match probe {
        Ok(p) => p,
        Err(media::ProbeError::Unsupported) => {
            return Err(AppError::UnsupportedMediaType(
                "this file type is not allowed: send an image, PDF, plain text, audio or video"
                    .into(),
            ));
        }
        Err(media::ProbeError::Io(e)) => return Err(AppError::Internal(format!("probe: {e}"))),
    };
    if kind == Kind::Voice {
        if probe.class != media::Class::Audio {
            return Err(AppError::UnsupportedMediaType(format!(
                "a voice note must be audio, this is {}",
                probe.mime
            )));
        }
        let max_voice = state.config.max_voice_duration as f64;
        match probe.duration {
            None => {
                return Err(AppError::Unprocessable(
                    "could not measure the voice note's duration".into(),
                ));
            }
            Some(d) if d > max_voice => {
                return Err(AppError::Unprocessable(format!(
                    "the voice note lasts {d:.1} s; the limit is {max_voice} s"
                )));
            }
            Some(_) => {}
        }
    }
    let meta = FileMeta {
        id: files::new_id(),
        owner: me.sub,
        name,
        mime: probe.mime.to_string(),
        size,
        duration: probe.duration,
        kind,
        created_at: Utc::now(),
        shared_with: Vec::new(),
        room: None,
    };
    let part = guard.0.take().expect("set with the upload");
    if let Err(e) = state.files.commit(&part, &meta).await {
        guard.0 = Some(part);
        state.files.delete(&meta.id).await;
        return Err(AppError::Internal(format!("store upload: {e}")));
    }
    tracing::info!(file = %meta.id, mime = %meta.mime, size, "uploaded");
    Ok((
        (StatusCode::CREATED, ok("File uploaded", meta.public_json())),
        size,
    ))
}

fn too_large(max: u64) -> AppError {
    AppError::PayloadTooLarge(format!("the file is larger than the {max}-byte limit"))
}

#[utoipa::path(
    get,
    path = "/api/files/{id}",
    tag = "files", summary = "Download a file shared with you",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The file id")),
    responses((status = 200, description = "The file's bytes, with its type; Range requests are answered"), (status = 206, description = "Part of the file"), (status = 401, description = "Missing or invalid token", body = crate::http::openapi::ErrorEnvelope), (status = 404, description = "No such file, or not shared with you", body = crate::http::openapi::ErrorEnvelope), (status = 429, description = "Rate limited", body = crate::http::openapi::ErrorEnvelope)),
)]
async fn download(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, AppError> {
    let not_found = || AppError::NotFound("no such file".into());
    let meta = state
        .files
        .meta(&id)
        .await
        .map_err(|e| AppError::Internal(format!("read file metadata: {e}")))?
        .filter(|m| m.may_read(&me.sub))
        .ok_or_else(not_found)?;
    let file = match tokio::fs::File::open(state.files.data_path(&meta.id)).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found()),
        Err(e) => return Err(AppError::Internal(format!("open file: {e}"))),
    };
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    let mut res = Response::new(body);
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&meta.mime)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.size));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&meta.name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

/// `attachment` with an ASCII fallback and the RFC 5987 UTF-8 name.
fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Writes an upload to disk on the blocking pool, moving each chunk there as
/// it is: tokio's `File` would first copy it into a buffer of its own (up to
/// 2 MiB per upload), which concurrent uploads pay for in memory.
struct DiskWriter(Option<std::fs::File>);

impl DiskWriter {
    async fn create(path: &std::path::Path) -> std::io::Result<Self> {
        let file = tokio::fs::File::create(path).await?.into_std().await;
        Ok(DiskWriter(Some(file)))
    }

    async fn write(&mut self, chunk: axum::body::Bytes) -> std::io::Result<()> {
        use std::io::Write;
        let mut file = self
            .0
            .take()
            .ok_or_else(|| std::io::Error::other("an earlier write failed"))?;
        let (file, res) = crate::shards::spawn_blocking(move || {
            let res = file.write_all(&chunk);
            (file, res)
        })
        .await
        .map_err(std::io::Error::other)?;
        self.0 = Some(file);
        res
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn disposition_escapes() {
        assert_eq!(
            super::content_disposition("a \"b\" é.txt"),
            "attachment; filename=\"a _b_ _.txt\"; filename*=UTF-8''a%20%22b%22%20%C3%A9.txt"
        );
    }
}
