//! MongoDB backend (official `mongodb` crate). Unique indexes on the
//! lower-cased username and email make uniqueness atomic; a duplicate-key
//! error (11000) becomes `Conflict`.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mongodb::{
    Client, Collection, Database, IndexModel,
    bson::{self, doc},
    error::{Error as MongoError, ErrorKind, WriteFailure},
    options::{ClientOptions, IndexOptions},
};
use serde::{Deserialize, Serialize};

use super::{
    AuditEntry, Author, BanRecord, Device, Evidence, NewUser, RefreshRecord, Report, RoomMessage,
    RoomState, Standing, StoreError, StoreResult, User, UserCounts, UserStore,
};

pub struct MongoStore {
    db: Database,
    blocks: Collection<BlockDoc>,
    bans: Collection<BanDoc>,
    audit: Collection<AuditDoc>,
    reports: Collection<ReportDoc>,
    standing: Collection<StandingDoc>,
    room_messages: Collection<RoomMessageDoc>,
    room_meta: Collection<RoomMetaDoc>,
    users: Collection<UserDoc>,
    refresh: Collection<RefreshDoc>,
    devices: Collection<DeviceDoc>,
    indexes_ready: AtomicBool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserDoc {
    #[serde(rename = "_id")]
    id: String,
    username: String,
    username_lower: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email_lower: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    password_hash: Option<String>,
    is_guest: bool,
    created_at: bson::DateTime,
    #[serde(default)]
    last_seen: Option<bson::DateTime>,
    /// Last activity (created, then last seen): what guest expiry sorts by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    active_at: Option<bson::DateTime>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefreshDoc {
    #[serde(rename = "_id")]
    hash: String,
    user_id: String,
    expires_at: bson::DateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BanDoc {
    #[serde(rename = "_id")]
    subject: String,
    until: bson::DateTime,
    reason: String,
    duration_s: i64,
    count: i64,
    #[serde(default)]
    covers: Vec<String>,
    created_at: bson::DateTime,
}

impl BanDoc {
    fn from_record(b: BanRecord) -> Self {
        BanDoc {
            subject: b.subject,
            until: to_bson(b.until),
            reason: b.reason,
            duration_s: b.duration_s.min(i64::MAX as u64) as i64,
            count: b.count as i64,
            covers: b.covers,
            created_at: to_bson(b.created_at),
        }
    }

    fn into_record(self) -> BanRecord {
        BanRecord {
            subject: self.subject,
            until: from_bson(self.until),
            reason: self.reason,
            duration_s: self.duration_s.max(0) as u64,
            count: self.count.clamp(0, u32::MAX as i64) as u32,
            covers: self.covers,
            created_at: from_bson(self.created_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoomMessageDoc {
    #[serde(rename = "_id")]
    id: String,
    room_id: String,
    offset: i64,
    from_id: String,
    from_username: String,
    content: String,
    timestamp: bson::DateTime,
}

impl RoomMessageDoc {
    fn from_message(m: RoomMessage) -> Self {
        RoomMessageDoc {
            id: m.id,
            room_id: m.room_id,
            offset: m.offset.min(i64::MAX as u64) as i64,
            from_id: m.from.id,
            from_username: m.from.username,
            content: m.content,
            timestamp: to_bson(m.timestamp),
        }
    }

    fn into_message(self) -> RoomMessage {
        RoomMessage {
            id: self.id,
            room_id: self.room_id,
            offset: self.offset.max(0) as u64,
            from: Author {
                id: self.from_id,
                username: self.from_username,
            },
            content: self.content,
            timestamp: from_bson(self.timestamp),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoomMetaDoc {
    #[serde(rename = "_id")]
    room_id: String,
    epoch: String,
    last_offset: i64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StandingDoc {
    #[serde(rename = "_id")]
    user_id: String,
    score: i32,
    at: bson::DateTime,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EvidenceDoc {
    from: String,
    text: String,
    at: bson::DateTime,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReportDoc {
    #[serde(rename = "_id")]
    id: String,
    reporter: String,
    target: String,
    reason: String,
    details: Option<String>,
    room_id: Option<String>,
    evidence: Vec<EvidenceDoc>,
    created_at: bson::DateTime,
    status: String,
    resolution: Option<String>,
}

impl ReportDoc {
    fn from_report(r: Report) -> Self {
        ReportDoc {
            id: r.id,
            reporter: r.reporter,
            target: r.target,
            reason: r.reason,
            details: r.details,
            room_id: r.room_id,
            evidence: r
                .evidence
                .into_iter()
                .map(|e| EvidenceDoc {
                    from: e.from,
                    text: e.text,
                    at: to_bson(e.at),
                })
                .collect(),
            created_at: to_bson(r.created_at),
            status: r.status,
            resolution: r.resolution,
        }
    }

    fn into_report(self) -> Report {
        Report {
            id: self.id,
            reporter: self.reporter,
            target: self.target,
            reason: self.reason,
            details: self.details,
            room_id: self.room_id,
            evidence: self
                .evidence
                .into_iter()
                .map(|e| Evidence {
                    from: e.from,
                    text: e.text,
                    at: from_bson(e.at),
                })
                .collect(),
            created_at: from_bson(self.created_at),
            status: self.status,
            resolution: self.resolution,
        }
    }
}

async fn collect_room_messages(
    mut cursor: mongodb::Cursor<RoomMessageDoc>,
) -> StoreResult<Vec<RoomMessage>> {
    let mut out = Vec::new();
    while cursor.advance().await.map_err(classify)? {
        out.push(
            cursor
                .deserialize_current()
                .map_err(classify)?
                .into_message(),
        );
    }
    Ok(out)
}

async fn collect_reports(mut cursor: mongodb::Cursor<ReportDoc>) -> StoreResult<Vec<Report>> {
    let mut out = Vec::new();
    while cursor.advance().await.map_err(classify)? {
        out.push(
            cursor
                .deserialize_current()
                .map_err(classify)?
                .into_report(),
        );
    }
    Ok(out)
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuditDoc {
    #[serde(rename = "_id")]
    id: String,
    at: bson::DateTime,
    actor: String,
    action: String,
    target: Option<String>,
    /// JSON text: the detail's shape varies by action.
    detail: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDoc {
    #[serde(rename = "_id")]
    key: String,
    user_id: String,
    blocked_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceDoc {
    #[serde(rename = "_id")]
    key: String,
    user_id: String,
    device_id: String,
    #[serde(default)]
    user_agent: Option<String>,
    #[serde(default)]
    ip: Option<String>,
    last_seen: bson::DateTime,
}

fn to_bson(t: DateTime<Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(t.timestamp_millis())
}

fn from_bson(t: bson::DateTime) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or_default()
}

impl From<UserDoc> for User {
    fn from(d: UserDoc) -> Self {
        User {
            id: d.id,
            username: d.username,
            email: d.email,
            password_hash: d.password_hash,
            is_guest: d.is_guest,
            created_at: from_bson(d.created_at),
            last_seen: d.last_seen.map(from_bson),
        }
    }
}

impl From<DeviceDoc> for Device {
    fn from(d: DeviceDoc) -> Self {
        Device {
            user_id: d.user_id,
            device_id: d.device_id,
            user_agent: d.user_agent,
            ip: d.ip,
            last_seen: from_bson(d.last_seen),
        }
    }
}

/// Sorts a driver error into the store's small error enum.
fn classify(e: MongoError) -> StoreError {
    match *e.kind {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. } => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Other(e.to_string()),
    }
}

fn is_duplicate_key(e: &MongoError) -> bool {
    matches!(&*e.kind, ErrorKind::Write(WriteFailure::WriteError(w)) if w.code == 11000)
}

impl MongoStore {
    /// Parses the URI and creates the client. The driver connects lazily, so
    /// a server that is down now makes requests fail with 503, not startup.
    pub async fn connect(uri: &str, default_db: &str) -> StoreResult<Self> {
        let mut opts = ClientOptions::parse(uri)
            .await
            .map_err(|e| StoreError::Other(format!("MONGODB_URI: {e}")))?;
        opts.app_name.get_or_insert_with(|| "tandem".to_string());
        opts.server_selection_timeout
            .get_or_insert(Duration::from_secs(3));
        opts.connect_timeout.get_or_insert(Duration::from_secs(3));
        let client = Client::with_options(opts).map_err(classify)?;
        let db = client
            .default_database()
            .unwrap_or_else(|| client.database(default_db));
        let store = MongoStore {
            users: db.collection("users"),
            refresh: db.collection("refresh_tokens"),
            devices: db.collection("devices"),
            blocks: db.collection("blocks"),
            bans: db.collection("bans"),
            audit: db.collection("audit"),
            reports: db.collection("reports"),
            standing: db.collection("standing"),
            room_messages: db.collection("room_messages"),
            room_meta: db.collection("room_meta"),
            db,
            indexes_ready: AtomicBool::new(false),
        };
        if let Err(e) = store.ensure_indexes().await {
            tracing::warn!(error = %e, "MongoDB not ready at startup; indexes will be created on first use");
        }
        Ok(store)
    }

    /// Creates the unique indexes once; accounts are never written before.
    async fn ensure_indexes(&self) -> StoreResult<()> {
        if self.indexes_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let unique = |name: &str, sparse: bool| {
            IndexOptions::builder()
                .unique(true)
                .sparse(sparse.then_some(true))
                .name(name.to_string())
                .build()
        };
        self.users
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "usernameLower": 1 })
                    .options(unique("username_unique", false))
                    .build(),
            )
            .await
            .map_err(classify)?;
        self.users
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "emailLower": 1 })
                    .options(unique("email_unique", true))
                    .build(),
            )
            .await
            .map_err(classify)?;
        self.devices
            .create_index(IndexModel::builder().keys(doc! { "userId": 1 }).build())
            .await
            .map_err(classify)?;
        self.blocks
            .create_index(IndexModel::builder().keys(doc! { "userId": 1 }).build())
            .await
            .map_err(classify)?;
        self.reports
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "target": 1, "createdAt": 1 })
                    .build(),
            )
            .await
            .map_err(classify)?;
        self.reports
            .create_index(IndexModel::builder().keys(doc! { "createdAt": 1 }).build())
            .await
            .map_err(classify)?;
        // A room's history in offset order; an offset is unique in its room.
        self.room_messages
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "roomId": 1, "offset": 1 })
                    .options(unique("room_offset_unique", false))
                    .build(),
            )
            .await
            .map_err(classify)?;
        // Guest expiry walks guests by last activity.
        self.users
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "isGuest": 1, "activeAt": 1 })
                    .build(),
            )
            .await
            .map_err(classify)?;
        self.refresh
            .create_index(IndexModel::builder().keys(doc! { "userId": 1 }).build())
            .await
            .map_err(classify)?;
        // Expired refresh tokens (of any account) are removed by MongoDB.
        self.refresh
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "expiresAt": 1 })
                    .options(
                        IndexOptions::builder()
                            .expire_after(Duration::ZERO)
                            .name("refresh_ttl".to_string())
                            .build(),
                    )
                    .build(),
            )
            .await
            .map_err(classify)?;
        self.indexes_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// After a duplicate-key error, finds which unique field clashed.
    async fn conflicting_field(&self, doc: &UserDoc) -> StoreError {
        if let Some(email) = &doc.email_lower {
            match self.users.find_one(doc! { "emailLower": email }).await {
                Ok(Some(_)) => return StoreError::Conflict("email"),
                Ok(None) => {}
                Err(e) => return classify(e),
            }
        }
        StoreError::Conflict("username")
    }
}

#[async_trait]
impl UserStore for MongoStore {
    fn kind(&self) -> &'static str {
        "mongodb"
    }

    async fn create_user(&self, new: NewUser) -> StoreResult<User> {
        self.ensure_indexes().await?;
        let now = Utc::now();
        let doc = UserDoc {
            id: super::new_id(),
            username_lower: new.username.to_lowercase(),
            username: new.username,
            email_lower: new.email.as_deref().map(str::to_lowercase),
            email: new.email,
            password_hash: new.password_hash,
            is_guest: new.is_guest,
            created_at: to_bson(now),
            last_seen: None,
            active_at: Some(to_bson(now)),
        };
        match self.users.insert_one(&doc).await {
            Ok(_) => Ok(User::from(doc)),
            Err(e) if is_duplicate_key(&e) => Err(self.conflicting_field(&doc).await),
            Err(e) => Err(classify(e)),
        }
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        let found = self
            .users
            .find_one(doc! { "_id": id })
            .await
            .map_err(classify)?;
        Ok(found.map(User::from))
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let found = self
            .users
            .find_one(doc! { "emailLower": email.to_lowercase() })
            .await
            .map_err(classify)?;
        Ok(found.map(User::from))
    }

    async fn set_last_seen(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let res = self
            .users
            .update_one(
                doc! { "_id": id },
                doc! { "$set": { "lastSeen": to_bson(at), "activeAt": to_bson(at) } },
            )
            .await
            .map_err(classify)?;
        if res.matched_count == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn count_users(&self) -> StoreResult<UserCounts> {
        let total = self
            .users
            .count_documents(doc! {})
            .await
            .map_err(classify)?;
        let guests = self
            .users
            .count_documents(doc! { "isGuest": true })
            .await
            .map_err(classify)?;
        Ok(UserCounts { total, guests })
    }

    async fn upsert_device(&self, device: Device) -> StoreResult<()> {
        let key = format!("{}\0{}", device.user_id, device.device_id);
        self.devices
            .update_one(
                doc! { "_id": &key },
                doc! { "$set": {
                    "userId": &device.user_id,
                    "deviceId": &device.device_id,
                    "userAgent": &device.user_agent,
                    "ip": &device.ip,
                    "lastSeen": to_bson(device.last_seen),
                } },
            )
            .upsert(true)
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn devices_of(&self, user_id: &str) -> StoreResult<Vec<Device>> {
        let mut cursor = self
            .devices
            .find(doc! { "userId": user_id })
            .await
            .map_err(classify)?;
        let mut out = Vec::new();
        while cursor.advance().await.map_err(classify)? {
            let d = cursor.deserialize_current().map_err(classify)?;
            out.push(Device::from(d));
        }
        Ok(out)
    }

    async fn insert_refresh(&self, token_hash: &str, record: RefreshRecord) -> StoreResult<()> {
        let doc = RefreshDoc {
            hash: token_hash.to_string(),
            user_id: record.user_id,
            expires_at: to_bson(record.expires_at),
            ip: record.ip,
        };
        self.refresh.insert_one(doc).await.map_err(classify)?;
        Ok(())
    }

    async fn take_refresh(&self, token_hash: &str) -> StoreResult<Option<RefreshRecord>> {
        let taken = self
            .refresh
            .find_one_and_delete(doc! { "_id": token_hash })
            .await
            .map_err(classify)?;
        Ok(taken.map(|d| RefreshRecord {
            user_id: d.user_id,
            expires_at: from_bson(d.expires_at),
            ip: d.ip,
        }))
    }

    async fn add_block(&self, user_id: &str, other: &str) -> StoreResult<()> {
        let key = format!("{user_id}\0{other}");
        self.blocks
            .update_one(
                doc! { "_id": &key },
                doc! { "$set": { "userId": user_id, "blockedId": other } },
            )
            .upsert(true)
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn refresh_ips_of(&self, user_id: &str) -> StoreResult<Vec<String>> {
        let mut cursor = self
            .refresh
            .find(doc! { "userId": user_id, "ip": { "$exists": true } })
            .await
            .map_err(classify)?;
        let mut out = Vec::new();
        while cursor.advance().await.map_err(classify)? {
            if let Some(ip) = cursor.deserialize_current().map_err(classify)?.ip
                && !out.contains(&ip)
            {
                out.push(ip);
            }
        }
        Ok(out)
    }

    async fn put_bans(&self, bans: Vec<BanRecord>) -> StoreResult<()> {
        for b in bans {
            let subject = b.subject.clone();
            self.bans
                .replace_one(doc! { "_id": subject }, BanDoc::from_record(b))
                .upsert(true)
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    async fn bans_of(&self, subjects: Vec<String>) -> StoreResult<Vec<BanRecord>> {
        let mut cursor = self
            .bans
            .find(doc! { "_id": { "$in": subjects } })
            .await
            .map_err(classify)?;
        let mut out = Vec::new();
        while cursor.advance().await.map_err(classify)? {
            out.push(
                cursor
                    .deserialize_current()
                    .map_err(classify)?
                    .into_record(),
            );
        }
        Ok(out)
    }

    async fn standing_of(&self, user_id: &str) -> StoreResult<Option<Standing>> {
        let found = self
            .standing
            .find_one(doc! { "_id": user_id })
            .await
            .map_err(classify)?;
        Ok(found.map(|d| Standing {
            score: d.score,
            at: from_bson(d.at),
        }))
    }

    async fn put_standing(&self, user_id: &str, standing: Standing) -> StoreResult<()> {
        let doc = StandingDoc {
            user_id: user_id.to_string(),
            score: standing.score,
            at: to_bson(standing.at),
        };
        self.standing
            .replace_one(doc! { "_id": user_id }, doc)
            .upsert(true)
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn insert_report(&self, report: Report) -> StoreResult<()> {
        self.reports
            .insert_one(ReportDoc::from_report(report))
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn reports_about(&self, target: &str, since: DateTime<Utc>) -> StoreResult<Vec<Report>> {
        let cursor = self
            .reports
            .find(doc! { "target": target, "createdAt": { "$gte": to_bson(since) } })
            .sort(doc! { "_id": 1 })
            .await
            .map_err(classify)?;
        collect_reports(cursor).await
    }

    async fn list_reports(
        &self,
        status: Option<String>,
        before: Option<String>,
        limit: usize,
    ) -> StoreResult<Vec<Report>> {
        let mut filter = doc! {};
        if let Some(s) = status {
            filter.insert("status", s);
        }
        if let Some(b) = before {
            filter.insert("_id", doc! { "$lt": b });
        }
        let cursor = self
            .reports
            .find(filter)
            .sort(doc! { "_id": -1 })
            .limit(limit.min(i64::MAX as usize) as i64)
            .await
            .map_err(classify)?;
        collect_reports(cursor).await
    }

    async fn resolve_report(&self, id: &str, resolution: &str) -> StoreResult<Option<Report>> {
        let updated = self
            .reports
            .find_one_and_update(
                doc! { "_id": id, "status": "open" },
                doc! { "$set": { "status": "resolved", "resolution": resolution } },
            )
            .return_document(mongodb::options::ReturnDocument::After)
            .await
            .map_err(classify)?;
        Ok(updated.map(ReportDoc::into_report))
    }

    async fn delete_reports_before(
        &self,
        cutoff: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<usize> {
        let mut cursor = self
            .reports
            .find(doc! { "createdAt": { "$lt": to_bson(cutoff) } })
            .limit(limit.min(i64::MAX as usize) as i64)
            .await
            .map_err(classify)?;
        let mut ids = Vec::new();
        while cursor.advance().await.map_err(classify)? {
            ids.push(cursor.deserialize_current().map_err(classify)?.id);
        }
        if ids.is_empty() {
            return Ok(0);
        }
        let res = self
            .reports
            .delete_many(doc! { "_id": { "$in": ids } })
            .await
            .map_err(classify)?;
        Ok(res.deleted_count as usize)
    }

    async fn append_audit(&self, entry: AuditEntry) -> StoreResult<()> {
        let doc = AuditDoc {
            id: entry.id,
            at: to_bson(entry.at),
            actor: entry.actor,
            action: entry.action,
            target: entry.target,
            detail: entry.detail.to_string(),
        };
        self.audit.insert_one(doc).await.map_err(classify)?;
        Ok(())
    }

    async fn audit_log(
        &self,
        before: Option<String>,
        limit: usize,
    ) -> StoreResult<Vec<AuditEntry>> {
        let filter = match before {
            Some(b) => doc! { "_id": { "$lt": b } },
            None => doc! {},
        };
        let mut cursor = self
            .audit
            .find(filter)
            .sort(doc! { "_id": -1 })
            .limit(limit.min(i64::MAX as usize) as i64)
            .await
            .map_err(classify)?;
        let mut out = Vec::new();
        while cursor.advance().await.map_err(classify)? {
            let d = cursor.deserialize_current().map_err(classify)?;
            out.push(AuditEntry {
                id: d.id,
                at: from_bson(d.at),
                actor: d.actor,
                action: d.action,
                target: d.target,
                detail: serde_json::from_str(&d.detail).unwrap_or(serde_json::Value::Null),
            });
        }
        Ok(out)
    }

    async fn remove_block(&self, user_id: &str, other: &str) -> StoreResult<bool> {
        let key = format!("{user_id}\0{other}");
        let res = self
            .blocks
            .delete_one(doc! { "_id": &key })
            .await
            .map_err(classify)?;
        Ok(res.deleted_count > 0)
    }

    async fn blocks_of(&self, user_id: &str) -> StoreResult<Vec<String>> {
        let mut cursor = self
            .blocks
            .find(doc! { "userId": user_id })
            .await
            .map_err(classify)?;
        let mut out = Vec::new();
        while cursor.advance().await.map_err(classify)? {
            out.push(cursor.deserialize_current().map_err(classify)?.blocked_id);
        }
        Ok(out)
    }

    async fn expired_guests(
        &self,
        cutoff: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        self.ensure_indexes().await?;
        let mut cursor = self
            .db
            .collection::<bson::Document>("users")
            .find(doc! { "isGuest": true, "activeAt": { "$lt": to_bson(cutoff) } })
            .sort(doc! { "activeAt": 1 })
            .limit(limit as i64)
            .projection(doc! { "_id": 1 })
            .await
            .map_err(classify)?;
        let mut out = Vec::new();
        while cursor.advance().await.map_err(classify)? {
            let d = cursor.deserialize_current().map_err(classify)?;
            if let Ok(id) = d.get_str("_id") {
                out.push(id.to_string());
            }
        }
        Ok(out)
    }

    async fn room_state(&self, room: &str) -> StoreResult<RoomState> {
        let epoch = super::new_room_epoch();
        // Created once, atomically: every node sees the same epoch.
        let meta = self
            .room_meta
            .find_one_and_update(
                doc! { "_id": room },
                doc! { "$setOnInsert": { "epoch": epoch, "lastOffset": 0i64 } },
            )
            .upsert(true)
            .return_document(mongodb::options::ReturnDocument::After)
            .await
            .map_err(classify)?
            .ok_or_else(|| StoreError::Other("room meta upsert returned nothing".into()))?;
        let oldest = self
            .room_messages
            .find_one(doc! { "roomId": room })
            .sort(doc! { "offset": 1 })
            .await
            .map_err(classify)?
            .map(|d| d.offset.max(0) as u64);
        Ok(RoomState {
            epoch: meta.epoch,
            last_offset: meta.last_offset.max(0) as u64,
            oldest,
        })
    }

    async fn append_room_message(&self, message: RoomMessage) -> StoreResult<()> {
        let (room, offset) = (
            message.room_id.clone(),
            message.offset.min(i64::MAX as u64) as i64,
        );
        self.room_messages
            .insert_one(RoomMessageDoc::from_message(message))
            .await
            .map_err(|e| {
                if is_duplicate_key(&e) {
                    StoreError::Conflict("offset")
                } else {
                    classify(e)
                }
            })?;
        let epoch = super::new_room_epoch();
        self.room_meta
            .update_one(
                doc! { "_id": &room },
                doc! { "$max": { "lastOffset": offset }, "$setOnInsert": { "epoch": epoch } },
            )
            .upsert(true)
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn room_messages_before(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<RoomMessage>> {
        let filter = match before {
            Some(b) => doc! { "roomId": room, "offset": { "$lt": b.min(i64::MAX as u64) as i64 } },
            None => doc! { "roomId": room },
        };
        let cursor = self
            .room_messages
            .find(filter)
            .sort(doc! { "offset": -1 })
            .limit(limit.min(i64::MAX as usize) as i64)
            .await
            .map_err(classify)?;
        collect_room_messages(cursor).await
    }

    async fn room_messages_after(
        &self,
        room: &str,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<RoomMessage>> {
        let cursor = self
            .room_messages
            .find(doc! { "roomId": room, "offset": { "$gt": after.min(i64::MAX as u64) as i64 } })
            .sort(doc! { "offset": 1 })
            .limit(limit.min(i64::MAX as usize) as i64)
            .await
            .map_err(classify)?;
        collect_room_messages(cursor).await
    }

    async fn delete_room_message(
        &self,
        room: &str,
        offset: u64,
    ) -> StoreResult<Option<RoomMessage>> {
        Ok(self
            .room_messages
            .find_one_and_delete(
                doc! { "roomId": room, "offset": offset.min(i64::MAX as u64) as i64 },
            )
            .await
            .map_err(classify)?
            .map(RoomMessageDoc::into_message))
    }

    async fn trim_room(
        &self,
        room: &str,
        keep: usize,
        cutoff: DateTime<Utc>,
    ) -> StoreResult<usize> {
        let aged = self
            .room_messages
            .delete_many(doc! { "roomId": room, "timestamp": { "$lt": to_bson(cutoff) } })
            .await
            .map_err(classify)?
            .deleted_count as usize;
        // The newest `keep`: everything below the keep-th newest offset goes.
        let nth = self
            .room_messages
            .find(doc! { "roomId": room })
            .sort(doc! { "offset": -1 })
            .skip(keep as u64)
            .limit(1)
            .await
            .map_err(classify)?;
        let nth = collect_room_messages(nth).await?;
        let over = match nth.first() {
            Some(d) => {
                let offset = d.offset.min(i64::MAX as u64) as i64;
                self.room_messages
                    .delete_many(doc! { "roomId": room, "offset": { "$lte": offset } })
                    .await
                    .map_err(classify)?
                    .deleted_count as usize
            }
            None => 0,
        };
        Ok(aged + over)
    }

    async fn delete_users(&self, ids: Vec<String>) -> StoreResult<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        // Tokens and devices first: a crash in between leaves an account
        // that the next sweep removes, never orphans.
        self.refresh
            .delete_many(doc! { "userId": { "$in": &ids } })
            .await
            .map_err(classify)?;
        self.devices
            .delete_many(doc! { "userId": { "$in": &ids } })
            .await
            .map_err(classify)?;
        self.blocks
            .delete_many(doc! { "userId": { "$in": &ids } })
            .await
            .map_err(classify)?;
        self.standing
            .delete_many(doc! { "_id": { "$in": &ids } })
            .await
            .map_err(classify)?;
        let res = self
            .users
            .delete_many(doc! { "_id": { "$in": &ids } })
            .await
            .map_err(classify)?;
        Ok(res.deleted_count as usize)
    }

    async fn ping(&self) -> StoreResult<()> {
        self.db
            .run_command(doc! { "ping": 1 })
            .await
            .map(|_| ())
            .map_err(classify)
    }
}
