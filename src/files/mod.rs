//! Uploaded files and voice notes: stored under UPLOAD_DIR with
//! server-generated names, described by a JSON sidecar (`<id>.json`) that
//! says who may download the file. Keeping the metadata beside the bytes
//! lets every node of a cluster serve a file from a shared directory.

use std::{
    io,
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub mod media;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Voice,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileMeta {
    pub id: String,
    pub owner: String,
    /// The client's name, for display only.
    pub name: String,
    pub mime: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    pub kind: Kind,
    pub created_at: DateTime<Utc>,
    /// Who may download it besides the owner: the two people of the chat it
    /// was shared in.
    #[serde(default)]
    pub shared_with: Vec<String>,
    #[serde(default)]
    pub room: Option<String>,
}

impl FileMeta {
    pub fn url(&self) -> String {
        format!("/api/files/{}", self.id)
    }

    pub fn may_read(&self, user_id: &str) -> bool {
        self.owner == user_id || self.shared_with.iter().any(|u| u == user_id)
    }

    /// The JSON clients see: `{id, name, mime, size, url, duration?}`.
    pub fn public_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "id": self.id,
            "name": self.name,
            "mime": self.mime,
            "size": self.size,
            "url": self.url(),
            "kind": self.kind,
        });
        if let Some(d) = self.duration {
            v["duration"] = serde_json::json!((d * 1000.0).round() / 1000.0);
        }
        v
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error("no such file")]
    NotFound,
    #[error("only the uploader can share a file")]
    NotOwner,
    #[error("a voice message needs a voice note")]
    WrongKind,
    #[error("io: {0}")]
    Io(#[from] io::Error),
}

#[derive(Clone)]
pub struct FileService {
    dir: PathBuf,
}

/// A new id for a file, room or message: 128 random bits as 32 lower-case
/// hex digits (unguessable, and safe as a path).
pub fn new_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

pub fn valid_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The client's file name, made safe to display: no path, no control,
/// bidi or other invisible formatting characters.
pub fn display_name(raw: Option<&str>) -> String {
    let base = raw.unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base
        .chars()
        .filter(|&c| {
            !c.is_control()
                && !crate::chat::text::is_invisible_format(c)
                && !matches!(c, '"' | '<' | '>')
        })
        .take(200)
        .collect();
    let clean = clean.trim().trim_start_matches('.').to_string();
    if clean.is_empty() {
        "file".to_string()
    } else {
        clean
    }
}

impl FileService {
    pub fn new(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(FileService {
            dir: dir.to_path_buf(),
        })
    }

    pub fn data_path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    fn meta_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// A fresh path for an upload in progress.
    pub fn part_path(&self) -> PathBuf {
        self.dir.join(format!(".upload-{}.part", new_id()))
    }

    /// Moves a finished upload in place and writes its metadata.
    pub async fn commit(&self, part: &Path, meta: &FileMeta) -> io::Result<()> {
        tokio::fs::rename(part, self.data_path(&meta.id)).await?;
        self.write_meta(meta).await
    }

    async fn write_meta(&self, meta: &FileMeta) -> io::Result<()> {
        let tmp = self.dir.join(format!(".{}.json.tmp", meta.id));
        tokio::fs::write(&tmp, serde_json::to_vec(meta)?).await?;
        tokio::fs::rename(&tmp, self.meta_path(&meta.id)).await
    }

    pub async fn meta(&self, id: &str) -> io::Result<Option<FileMeta>> {
        if !valid_id(id) {
            return Ok(None);
        }
        match tokio::fs::read(self.meta_path(id)).await {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lets the two members of `room` download the file `id` of `owner`.
    pub async fn share(
        &self,
        id: &str,
        owner: &str,
        members: [&str; 2],
        room: &str,
        voice: bool,
    ) -> Result<FileMeta, ShareError> {
        let mut meta = self.meta(id).await?.ok_or(ShareError::NotFound)?;
        if meta.owner != owner {
            return Err(ShareError::NotOwner);
        }
        if voice && meta.kind != Kind::Voice {
            return Err(ShareError::WrongKind);
        }
        meta.shared_with = members.iter().map(|m| m.to_string()).collect();
        meta.room = Some(room.to_string());
        self.write_meta(&meta).await?;
        Ok(meta)
    }

    pub async fn delete(&self, id: &str) {
        if !valid_id(id) {
            return;
        }
        let _ = tokio::fs::remove_file(self.meta_path(id)).await;
        let _ = tokio::fs::remove_file(self.data_path(id)).await;
    }

    /// Removes files older than `ttl` and abandoned partial uploads; returns
    /// how many entries went.
    pub async fn sweep(&self, ttl: Duration) -> io::Result<usize> {
        let now = SystemTime::now();
        let mut removed = 0;
        let mut dir = tokio::fs::read_dir(&self.dir).await?;
        while let Some(entry) = dir.next_entry().await? {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let is_ours = valid_id(name.trim_end_matches(".json"))
                || (name.starts_with(".upload-") && name.ends_with(".part"))
                || (name.starts_with('.') && name.ends_with(".json.tmp"));
            if !is_ours {
                continue;
            }
            let Ok(modified) = entry.metadata().await.and_then(|m| m.modified()) else {
                continue;
            };
            let age = now.duration_since(modified).unwrap_or_default();
            let limit = if name.starts_with('.') {
                ttl.max(Duration::from_secs(3600))
            } else {
                ttl
            };
            if age >= limit && tokio::fs::remove_file(entry.path()).await.is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names() {
        assert!(valid_id(&new_id()));
        assert!(!valid_id("../../etc/passwd"));
        assert!(!valid_id(&"A".repeat(32)));
        assert_eq!(display_name(Some("C:\\Users\\me\\photo.png")), "photo.png");
        assert_eq!(display_name(Some("../../etc/passwd")), "passwd");
        assert_eq!(display_name(Some("\u{0}bad\"<name>.txt\n")), "badname.txt");
        assert_eq!(display_name(Some("...")), "file");
        // Bidi overrides would show "gnp.\u{202E}txt.exe" as "gnp.exe.txt".
        assert_eq!(display_name(Some("gnp.\u{202E}txt.exe")), "gnp.txt.exe");
        assert_eq!(
            display_name(Some("a\u{2066}b\u{200F}c\u{061C}d\u{FEFF}.png")),
            "abcd.png"
        );
        assert_eq!(display_name(None), "file");
    }

    #[tokio::test]
    async fn share_and_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let files = FileService::new(dir.path()).unwrap();
        let part = files.part_path();
        tokio::fs::write(&part, b"hello").await.unwrap();
        let meta = FileMeta {
            id: new_id(),
            owner: "a".into(),
            name: "x.txt".into(),
            mime: "text/plain".into(),
            size: 5,
            duration: None,
            kind: Kind::File,
            created_at: Utc::now(),
            shared_with: vec![],
            room: None,
        };
        files.commit(&part, &meta).await.unwrap();
        assert!(!files.meta(&meta.id).await.unwrap().unwrap().may_read("b"));
        assert!(matches!(
            files.share(&meta.id, "b", ["a", "b"], "r", false).await,
            Err(ShareError::NotOwner)
        ));
        assert!(matches!(
            files.share(&meta.id, "a", ["a", "b"], "r", true).await,
            Err(ShareError::WrongKind)
        ));
        let shared = files
            .share(&meta.id, "a", ["a", "b"], "r", false)
            .await
            .unwrap();
        assert!(shared.may_read("b") && !shared.may_read("c"));
        assert_eq!(files.sweep(Duration::from_secs(3600)).await.unwrap(), 0);
        assert_eq!(files.sweep(Duration::ZERO).await.unwrap(), 2);
        assert!(files.meta(&meta.id).await.unwrap().is_none());
    }
}
