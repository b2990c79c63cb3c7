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
    // Every chat message gets one: encoded in place, not char by char.
    let mut hex = [0u8; 32];
    hex::encode_to_slice(rand::random::<[u8; 16]>(), &mut hex).expect("32 digits for 16 bytes");
    String::from_utf8(hex.to_vec()).expect("hex digits are ASCII")
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

    /// Removes what [`expiry`] says is due at `now` (files older than
    /// `ttl`, abandoned partial uploads); returns how many entries went and
    /// when the next one is due.
    pub async fn sweep(&self, ttl: Duration, now: SystemTime) -> io::Result<Swept> {
        let mut swept = Swept::default();
        let mut dir = tokio::fs::read_dir(&self.dir).await?;
        while let Some(entry) = dir.next_entry().await? {
            let name = entry.file_name();
            let Some(modified) = entry.metadata().await.ok().and_then(|m| m.modified().ok()) else {
                continue;
            };
            match expiry::verdict(&name.to_string_lossy(), modified, ttl, now) {
                Verdict::NotOurs => {}
                Verdict::Due => {
                    if tokio::fs::remove_file(entry.path()).await.is_ok() {
                        swept.removed += 1;
                    }
                }
                Verdict::At(at) => {
                    swept.next_due = Some(swept.next_due.map_or(at, |n: SystemTime| n.min(at)))
                }
            }
        }
        Ok(swept)
    }
}

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    pub removed: usize,
    /// The earliest expiry among what is left (None: nothing of ours left).
    pub next_due: Option<SystemTime>,
}

pub use expiry::Verdict;

/// The expiry rule, without I/O: what an entry of UPLOAD_DIR is and when
/// it expires.
pub mod expiry {
    use std::time::{Duration, SystemTime};

    /// Partial uploads and temporary sidecars are kept at least this long:
    /// a slow upload must not lose its file halfway.
    pub const PARTIAL_MIN: Duration = Duration::from_secs(3600);

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Verdict {
        /// Not a name the server writes: never touched.
        NotOurs,
        /// Expired: remove it.
        Due,
        /// Expires at this time.
        At(SystemTime),
    }

    pub fn verdict(name: &str, modified: SystemTime, ttl: Duration, now: SystemTime) -> Verdict {
        let partial = (name.starts_with(".upload-") && name.ends_with(".part"))
            || (name.starts_with('.') && name.ends_with(".json.tmp"));
        let limit = if partial {
            ttl.max(PARTIAL_MIN)
        } else if super::valid_id(name.trim_end_matches(".json")) {
            ttl
        } else {
            return Verdict::NotOurs;
        };
        let at = modified.checked_add(limit).unwrap_or(modified);
        if at <= now {
            Verdict::Due
        } else {
            Verdict::At(at)
        }
    }

    /// How long the sweeper sleeps after a sweep: until the next expiry,
    /// but at least `min` (so a burst of files is swept in batches) and at
    /// most `ttl` (a file uploaded now is due then).
    pub fn next_sweep_in(next_due: Option<SystemTime>, ttl: Duration, now: SystemTime) -> Duration {
        let min = Duration::from_millis(500);
        let until = next_due
            .map(|at| at.duration_since(now).unwrap_or_default())
            .unwrap_or(ttl);
        until.min(ttl).max(min)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn files_expire_after_the_ttl_and_partials_after_an_hour_at_least() {
            let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
            let ttl = Duration::from_secs(120);
            let id = crate::files::new_id();
            let json = format!("{id}.json");
            assert_eq!(verdict(&id, t0, ttl, t0), Verdict::At(t0 + ttl));
            assert_eq!(verdict(&json, t0, ttl, t0 + ttl), Verdict::Due);
            let part = ".upload-abc.part";
            assert_eq!(
                verdict(part, t0, ttl, t0 + ttl),
                Verdict::At(t0 + PARTIAL_MIN)
            );
            assert_eq!(verdict(part, t0, ttl, t0 + PARTIAL_MIN), Verdict::Due);
            assert_eq!(
                verdict(".x.json.tmp", t0, ttl, t0 + PARTIAL_MIN),
                Verdict::Due
            );
            for other in ["notes.txt", "../etc", ".hidden", "ABC.json"] {
                assert_eq!(
                    verdict(other, t0, ttl, t0 + ttl * 100),
                    Verdict::NotOurs,
                    "{other}"
                );
            }
            // A clock far in the future does not overflow.
            let far = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
            assert!(matches!(
                verdict(&id, far, Duration::MAX, far),
                Verdict::Due | Verdict::At(_)
            ));
        }

        #[test]
        fn the_sweeper_wakes_at_the_next_expiry_within_bounds() {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
            let ttl = Duration::from_secs(120);
            assert_eq!(next_sweep_in(None, ttl, now), ttl);
            assert_eq!(
                next_sweep_in(Some(now + Duration::from_secs(7)), ttl, now),
                Duration::from_secs(7)
            );
            assert_eq!(
                next_sweep_in(Some(now), ttl, now),
                Duration::from_millis(500)
            );
            assert_eq!(
                next_sweep_in(Some(now - Duration::from_secs(5)), ttl, now),
                Duration::from_millis(500)
            );
            assert_eq!(next_sweep_in(Some(now + ttl * 10), ttl, now), ttl);
        }
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
        let now = SystemTime::now();
        let kept = files.sweep(Duration::from_secs(3600), now).await.unwrap();
        assert_eq!(kept.removed, 0);
        assert!(kept.next_due.is_some_and(|at| at > now));
        let swept = files
            .sweep(Duration::from_secs(3600), now + Duration::from_secs(3601))
            .await
            .unwrap();
        assert_eq!(
            swept,
            Swept {
                removed: 2,
                next_due: None
            }
        );
        assert!(files.meta(&meta.id).await.unwrap().is_none());
    }
}
