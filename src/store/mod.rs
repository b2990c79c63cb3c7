//! Account storage behind one trait, with an embedded backend (redb, the
//! default) and a MongoDB backend.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub mod embedded;
pub mod expiry;
pub mod last_seen;
pub mod mongo;

/// What a store operation can fail with, converted at the trait boundary.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A unique field (`"username"` or `"email"`) is already taken.
    #[error("{0} is already taken")]
    Conflict(&'static str),
    /// The backing service cannot be reached.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store error: {0}")]
    Other(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A stored account. `password_hash` never leaves the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub is_guest: bool,
    pub created_at: DateTime<Utc>,
    pub last_seen: Option<DateTime<Utc>>,
}

/// An account to create; uniqueness of username and email is case-insensitive.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub email: Option<String>,
    pub password_hash: Option<String>,
    pub is_guest: bool,
}

/// A refresh token as stored: only its SHA-256 is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub user_id: String,
    pub expires_at: DateTime<Utc>,
    /// HMAC of the address the token was issued to (see
    /// `safety::IpKey`): a ban of the account covers it.
    #[serde(default)]
    pub ip: Option<String>,
}

/// A ban of one subject (`user:<id>`, `device:<id>` or `ip:<hmac>`), kept
/// after it ends: the next ban of the account escalates from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanRecord {
    pub subject: String,
    pub until: DateTime<Utc>,
    pub reason: String,
    /// How long the ban was set for, in seconds.
    pub duration_s: u64,
    /// Bans of this subject so far, this one included.
    pub count: u32,
    /// For an account's ban: the device and IP subjects it also covers.
    #[serde(default)]
    pub covers: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// How many of `reports` are still open.
pub fn open_reports(reports: &[Report]) -> usize {
    reports.iter().filter(|r| r.status == "open").count()
}

/// A message kept as a report's evidence (text only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    pub from: String,
    pub text: String,
    pub at: DateTime<Utc>,
}

/// A user's report about another; deleted after `REPORT_RETENTION`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Sortable by time (an ObjectId's hex).
    pub id: String,
    pub reporter: String,
    pub target: String,
    pub reason: String,
    pub details: Option<String>,
    pub room_id: Option<String>,
    /// The chat's last messages (both directions), oldest first.
    pub evidence: Vec<Evidence>,
    pub created_at: DateTime<Utc>,
    /// `open` or `resolved`.
    pub status: String,
    /// How a moderator resolved it: `dismiss`, `ban` or `warn`.
    pub resolution: Option<String>,
}

/// An account's reputation as stored: the score right after its last
/// incident, and when that was (the score recovers from there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    pub score: i32,
    pub at: DateTime<Utc>,
}

/// What matching needs of a user's records, read in one call
/// ([`UserStore::matching_record`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchingRecord {
    /// The users they blocked.
    pub blocks: Vec<String>,
    /// Their stored standing; None: never had an incident.
    pub standing: Option<Standing>,
    /// How many reports about them are still open.
    pub open_reports: usize,
}

/// One entry of the moderation audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Sortable by time (an ObjectId's hex).
    pub id: String,
    pub at: DateTime<Utc>,
    /// `admin` or `system` (automatic bans).
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: serde_json::Value,
}

/// Who wrote a room message, as it was then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    pub id: String,
    pub username: String,
}

/// A message of a public room (lounge), kept in its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomMessage {
    pub room_id: String,
    /// `<roomId>.<offset>`.
    pub id: String,
    /// Grows with every message of the room, never reused.
    pub offset: u64,
    pub from: Author,
    pub content: String,
    pub timestamp: DateTime<Utc>,
}

/// A room's history as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomState {
    /// Changes when the room's history was lost (Centrifugo's model).
    pub epoch: String,
    /// The highest offset ever given (0: none yet), kept when trimmed.
    pub last_offset: u64,
    /// The oldest offset still kept; None: no message kept.
    pub oldest: Option<u64>,
}

/// A device a user reported through `POST /api/users/device`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub user_id: String,
    pub device_id: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub last_seen: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserCounts {
    pub total: u64,
    pub guests: u64,
}

#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Short name for health output: `embedded` or `mongodb`.
    fn kind(&self) -> &'static str;

    /// Creates the account, or fails with `Conflict("username" | "email")`.
    async fn create_user(&self, new: NewUser) -> StoreResult<User>;
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>>;
    /// Case-insensitive.
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    async fn set_last_seen(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()>;
    /// Sets many users' last-seen times; unknown ids are skipped. The
    /// default sets them one by one.
    async fn set_last_seen_many(&self, entries: Vec<(String, DateTime<Utc>)>) -> StoreResult<()> {
        for (id, at) in entries {
            match self.set_last_seen(&id, at).await {
                Ok(()) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
    async fn count_users(&self) -> StoreResult<UserCounts>;

    /// Records (or refreshes) a device of a user.
    async fn upsert_device(&self, device: Device) -> StoreResult<()>;
    async fn devices_of(&self, user_id: &str) -> StoreResult<Vec<Device>>;

    async fn insert_refresh(&self, token_hash: &str, record: RefreshRecord) -> StoreResult<()>;
    /// Atomically removes and returns the record: a token can be used once.
    async fn take_refresh(&self, token_hash: &str) -> StoreResult<Option<RefreshRecord>>;

    /// Cheap round trip proving the store answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Records that `user_id` blocked `other` (idempotent). Blocks last as
    /// long as the blocking account.
    async fn add_block(&self, user_id: &str, other: &str) -> StoreResult<()>;
    /// Removes a block; true if there was one.
    async fn remove_block(&self, user_id: &str, other: &str) -> StoreResult<bool>;
    /// The users `user_id` blocked.
    async fn blocks_of(&self, user_id: &str) -> StoreResult<Vec<String>>;

    /// The address HMACs recorded on the user's live refresh tokens.
    async fn refresh_ips_of(&self, user_id: &str) -> StoreResult<Vec<String>>;

    /// Writes ban records, replacing any of the same subject.
    async fn put_bans(&self, bans: Vec<BanRecord>) -> StoreResult<()>;
    /// The records of these subjects (in force or not).
    async fn bans_of(&self, subjects: Vec<String>) -> StoreResult<Vec<BanRecord>>;

    /// The account's stored standing; None: never had an incident.
    async fn standing_of(&self, user_id: &str) -> StoreResult<Option<Standing>>;
    async fn put_standing(&self, user_id: &str, standing: Standing) -> StoreResult<()>;

    /// What matching needs to know of `user_id`: their blocks, standing
    /// and open reports. The default makes the three reads at once; the
    /// embedded store makes them in one transaction on its read thread, so
    /// a `user:match` waits for one trip there rather than three (a match
    /// storm's cost, BENCHMARKS.md).
    async fn matching_record(&self, user_id: &str) -> StoreResult<MatchingRecord> {
        let (blocks, standing, reports) = tokio::try_join!(
            self.blocks_of(user_id),
            self.standing_of(user_id),
            self.reports_about(user_id, DateTime::<Utc>::UNIX_EPOCH),
        )?;
        Ok(MatchingRecord {
            blocks,
            standing,
            open_reports: open_reports(&reports),
        })
    }

    async fn insert_report(&self, report: Report) -> StoreResult<()>;
    /// Reports about `target` made at or after `since`, oldest first.
    async fn reports_about(&self, target: &str, since: DateTime<Utc>) -> StoreResult<Vec<Report>>;
    /// Up to `limit` reports, newest first, with `status` when given, older
    /// than `before` (a report id) when given.
    async fn list_reports(
        &self,
        status: Option<String>,
        before: Option<String>,
        limit: usize,
    ) -> StoreResult<Vec<Report>>;
    /// Marks an open report resolved; None if unknown or already resolved.
    async fn resolve_report(&self, id: &str, resolution: &str) -> StoreResult<Option<Report>>;
    /// Deletes up to `limit` reports made before `cutoff`, evidence and
    /// all; returns how many.
    async fn delete_reports_before(
        &self,
        cutoff: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<usize>;

    async fn append_audit(&self, entry: AuditEntry) -> StoreResult<()>;
    /// Up to `limit` entries, newest first, older than `before` (an entry
    /// id) when given.
    async fn audit_log(&self, before: Option<String>, limit: usize)
    -> StoreResult<Vec<AuditEntry>>;

    /// Up to `limit` guest accounts last active (last seen, or created if
    /// never seen) before `cutoff`, oldest first. Registered accounts never.
    async fn expired_guests(&self, cutoff: DateTime<Utc>, limit: usize)
    -> StoreResult<Vec<String>>;

    /// The room's history state; the first call for a room (or after its
    /// history was lost) gives it a new random epoch.
    async fn room_state(&self, room: &str) -> StoreResult<RoomState>;
    /// Keeps a message (its offset given by the caller, unique in the room)
    /// and raises the room's last offset to it.
    async fn append_room_message(&self, message: RoomMessage) -> StoreResult<()>;
    /// Up to `limit` messages older than offset `before` (the newest when
    /// None), newest first.
    async fn room_messages_before(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<RoomMessage>>;
    /// Up to `limit` messages after offset `after`, oldest first.
    async fn room_messages_after(
        &self,
        room: &str,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<RoomMessage>>;
    /// Removes one message; the removed one, if it was there.
    async fn delete_room_message(
        &self,
        room: &str,
        offset: u64,
    ) -> StoreResult<Option<RoomMessage>>;
    /// Removes the room's messages beyond the newest `keep` and those older
    /// than `cutoff`; returns how many went.
    async fn trim_room(&self, room: &str, keep: usize, cutoff: DateTime<Utc>)
    -> StoreResult<usize>;

    /// Removes the accounts with their refresh tokens, devices and blocks; their
    /// usernames (and emails) become free. Unknown ids are skipped. Returns
    /// how many accounts were removed.
    async fn delete_users(&self, ids: Vec<String>) -> StoreResult<usize>;
}

pub type DynUserStore = Arc<dyn UserStore>;

/// The store the configuration asks for.
pub async fn open(config: &crate::Config) -> Result<DynUserStore, StoreError> {
    match &config.mongodb_uri {
        Some(uri) => {
            let store = mongo::MongoStore::connect(uri, &config.mongodb_db).await?;
            Ok(Arc::new(store))
        }
        None => {
            let path = config.data_dir.join("tandem.redb");
            let store =
                embedded::EmbeddedStore::open_with_cache(&path, config.store_cache_size).await?;
            Ok(Arc::new(store))
        }
    }
}

/// A new room history epoch: 16 random hex digits.
pub fn new_room_epoch() -> String {
    let bytes: [u8; 8] = rand::random();
    hex::encode(bytes)
}

/// A new account id: a MongoDB ObjectId as 24 hex digits (ids sort by
/// creation), on both backends.
pub fn new_id() -> String {
    mongodb::bson::oid::ObjectId::new().to_hex()
}
