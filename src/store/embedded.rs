//! The default store: an embedded redb database file, ACID and crash safe,
//! so `cargo run` works with nothing else installed. One process owns the
//! file (redb locks it); a cluster uses MongoDB instead.

use std::{
    collections::HashSet,
    path::Path,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{
    Database, ReadTransaction, ReadableTable, ReadableTableMetadata, TableDefinition, TableError,
    WriteTransaction,
};

use super::{
    AuditEntry, BanRecord, Device, MatchingRecord, NewUser, RefreshRecord, Report, RoomMessage,
    RoomState, Standing, StoreError, StoreResult, User, UserCounts, UserStore,
};

/// id → JSON of [`User`].
const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users");
/// lower-case username → id.
const USERNAMES: TableDefinition<&str, &str> = TableDefinition::new("usernames");
/// lower-case email → id.
const EMAILS: TableDefinition<&str, &str> = TableDefinition::new("emails");
/// ids of guest accounts.
const GUESTS: TableDefinition<&str, ()> = TableDefinition::new("guests");
/// SHA-256 of a refresh token → JSON of [`RefreshRecord`].
const REFRESH: TableDefinition<&str, &[u8]> = TableDefinition::new("refresh_tokens");
/// "user id \0 device id" → JSON of [`Device`].
const DEVICES: TableDefinition<&str, &[u8]> = TableDefinition::new("devices");
/// "last active (unix seconds, 16 hex digits) \0 id" of every guest: the
/// guests idle longest come first, for expiry.
const GUEST_ACTIVE: TableDefinition<&str, ()> = TableDefinition::new("guest_active");
/// "user id \0 blocked user id" of every block.
const BLOCKS: TableDefinition<&str, ()> = TableDefinition::new("blocks");
/// "user id \0 token hash" of every refresh token, to remove a user's tokens.
const REFRESH_BY_USER: TableDefinition<&str, ()> = TableDefinition::new("refresh_by_user");
/// Ban subject → JSON of [`BanRecord`].
const BANS: TableDefinition<&str, &[u8]> = TableDefinition::new("bans");
/// User id → JSON of [`Standing`].
const STANDING: TableDefinition<&str, &[u8]> = TableDefinition::new("standing");
/// Report id (sortable) → JSON of [`Report`].
const REPORTS: TableDefinition<&str, &[u8]> = TableDefinition::new("reports");
/// "target \0 report id" of every report.
const REPORTS_BY_TARGET: TableDefinition<&str, ()> = TableDefinition::new("reports_by_target");
/// Audit entry id (sortable) → JSON of [`AuditEntry`].
const AUDIT: TableDefinition<&str, &[u8]> = TableDefinition::new("audit");
/// `<room>\0<offset, 20 digits>` → a room message: a room's history in offset order.
const ROOM_MESSAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("room_messages");
/// room → its [`RoomMeta`].
const ROOM_META: TableDefinition<&str, &[u8]> = TableDefinition::new("room_meta");

#[derive(serde::Serialize, serde::Deserialize)]
struct RoomMeta {
    epoch: String,
    last_offset: u64,
}

/// Up to `limit` room messages with keys in `start..end`, newest or oldest first.
fn read_room_range(
    db: &Database,
    start: &str,
    end: &str,
    limit: usize,
    newest_first: bool,
) -> StoreResult<Vec<RoomMessage>> {
    let tx = db.begin_read().map_err(other)?;
    let t = tx.open_table(ROOM_MESSAGES).map_err(other)?;
    let rows = t.range(start..end).map_err(other)?;
    let rows: Box<dyn Iterator<Item = _>> = if newest_first {
        Box::new(rows.rev())
    } else {
        Box::new(rows)
    };
    let mut out = Vec::new();
    for row in rows.take(limit) {
        let (_, v) = row.map_err(other)?;
        out.push(decode(v.value())?);
    }
    Ok(out)
}

fn room_key(room: &str, offset: u64) -> String {
    format!("{room}\0{offset:020}")
}

/// The key range of a room's messages.
fn room_range(room: &str) -> (String, String) {
    (format!("{room}\0"), format!("{room}\u{1}"))
}

/// The store's work, run on its own threads.
type Job = Box<dyn FnOnce(&Database) + Send>;

/// Store calls run on two long-lived threads of the store's own rather than
/// on tokio's blocking pool: one for writes (redb takes one write
/// transaction at a time anyway) and one for reads, so a read never waits
/// behind a commit's fsync. redb's pages and records are then allocated and
/// freed by the same two threads, which keeps the allocator from spreading
/// them over many arenas (a churn of guests otherwise grew RSS while the
/// live heap stayed flat).
pub struct EmbeddedStore {
    reads: Option<std::sync::mpsc::Sender<Job>>,
    writes: Option<std::sync::mpsc::Sender<Job>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// The users who may have a block, a standing or a report about them.
    /// Anyone else's [`MatchingRecord`] is empty, known without a trip to
    /// the read thread: most users, guests above all, have none, and a
    /// `user:match` that waits for no trip is handled in one turn of its
    /// task (under a match storm, a turn waits behind every other ready
    /// task of its shard). Every write to those tables goes through this
    /// store (redb lets one process open the file), so the set is complete;
    /// a user whose records went stays in it until the account is deleted
    /// (a read then finds nothing).
    with_records: Mutex<HashSet<String>>,
}

/// Dropping the store closes the database before it returns (so the file
/// can be opened again at once): the threads finish the calls queued and stop.
impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.reads.take();
        self.writes.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn other(e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(e.to_string())
}

/// [`other`], where a parameter is named `other`.
fn other_err(e: impl std::fmt::Display) -> StoreError {
    other(e)
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(other)
}

fn encode<T: serde::Serialize>(v: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(v).map_err(other)
}

/// redb's page cache when none is configured: 256 KiB. The file's pages
/// stay in the kernel's page cache, so a miss costs a `pread`, not a disk
/// read; a 4 MiB cache kept ~5 MB more after a guest-churn soak (each 4 KiB
/// page takes a 5 KiB block of the heap) and saved ~10 µs of CPU a user
/// when 19,500 left at once, nothing else measured (BENCHMARKS.md,
/// fourteenth session). Busier stores set `STORE_CACHE_SIZE`.
pub const DEFAULT_CACHE_SIZE: usize = 256 * 1024;

/// The index key of a guest last active at `at`.
fn active_key(at: DateTime<Utc>, id: &str) -> String {
    format!("{:016x}\0{id}", at.timestamp().max(0))
}

/// When an account was last active: last seen, else created.
fn last_active(u: &User) -> DateTime<Utc> {
    u.last_seen.unwrap_or(u.created_at)
}

impl EmbeddedStore {
    /// Notes that `user_id` may now have records ([`Self::with_records`]);
    /// called before the write, so a read that misses the mark misses the
    /// record too.
    fn mark(&self, user_id: &str) {
        let mut marked = self.with_records.lock().unwrap_or_else(|p| p.into_inner());
        if !marked.contains(user_id) {
            marked.insert(user_id.to_string());
        }
    }

    /// Opens (or creates) the database file, creating its directory.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        Self::open_with_cache(path, DEFAULT_CACHE_SIZE).await
    }

    /// Opens with a page cache of `cache_size` bytes (`STORE_CACHE_SIZE`).
    pub async fn open_with_cache(path: &Path, cache_size: usize) -> StoreResult<Self> {
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            let db = redb::Builder::new()
                .set_cache_size(cache_size)
                .create(&path)
                .map_err(|e| {
                    StoreError::Unavailable(format!("cannot open {}: {e}", path.display()))
                })?;
            let tx = db.begin_write().map_err(other)?;
            create_tables(&tx).map_err(other)?;
            index_existing_guests(&tx)?;
            tx.commit().map_err(other)?;
            let with_records = users_with_records(&db.begin_read().map_err(other)?)?;
            let db = Arc::new(db);
            let (reads, reader) = start_thread(db.clone(), "tandem-store-read")?;
            let (writes, writer) = start_thread(db, "tandem-store-write")?;
            Ok(EmbeddedStore {
                reads: Some(reads),
                writes: Some(writes),
                threads: vec![reader, writer],
                with_records: Mutex::new(with_records),
            })
        })
        .await
        .map_err(other)?
    }

    /// Runs `f` on the read thread.
    async fn reading<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> StoreResult<T> + Send + 'static,
    {
        Self::on(self.reads.as_ref(), f).await
    }

    /// Runs `f` on the write thread.
    async fn writing<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> StoreResult<T> + Send + 'static,
    {
        Self::on(self.writes.as_ref(), f).await
    }

    async fn on<T, F>(lane: Option<&std::sync::mpsc::Sender<Job>>, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> StoreResult<T> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        lane.ok_or_else(|| StoreError::Unavailable("the store is closed".into()))?
            .send(Box::new(move |db| {
                let _ = tx.send(f(db));
            }))
            .map_err(|_| StoreError::Unavailable("the store's threads are gone".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("a store call panicked".into()))?
    }
}

/// Starts a thread running the jobs sent to it; it stops when the sender
/// is dropped.
fn start_thread(
    db: Arc<Database>,
    name: &str,
) -> StoreResult<(std::sync::mpsc::Sender<Job>, std::thread::JoinHandle<()>)> {
    let (jobs, queue) = std::sync::mpsc::channel::<Job>();
    let thread = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            while let Ok(job) = queue.recv() {
                // A panicking call drops its answer (the caller sees
                // `Unavailable`); the thread goes on.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&db)));
            }
        })
        .map_err(|e| StoreError::Unavailable(format!("cannot start a store thread: {e}")))?;
    Ok((jobs, thread))
}

/// The users with a block, a standing or a report about them on file.
fn users_with_records(tx: &ReadTransaction) -> StoreResult<HashSet<String>> {
    let mut out = HashSet::new();
    owners_into(tx, BLOCKS, &mut out)?;
    owners_into(tx, STANDING, &mut out)?;
    owners_into(tx, REPORTS_BY_TARGET, &mut out)?;
    Ok(out)
}

/// Adds to `out` the user each key of `table` belongs to: the key up to
/// its first `\0`, or all of it.
fn owners_into<V: redb::Value + 'static>(
    tx: &ReadTransaction,
    table: TableDefinition<&str, V>,
    out: &mut HashSet<String>,
) -> StoreResult<()> {
    for row in tx.open_table(table).map_err(other)?.iter().map_err(other)? {
        let (key, _) = row.map_err(other)?;
        let key = key.value();
        out.insert(
            key.split_once('\0')
                .map_or(key, |(user, _)| user)
                .to_string(),
        );
    }
    Ok(())
}

/// The users `user_id` blocked.
fn blocks_in(tx: &ReadTransaction, user_id: &str) -> StoreResult<Vec<String>> {
    let (start, end) = (format!("{user_id}\0"), format!("{user_id}\u{1}"));
    let blocks = tx.open_table(BLOCKS).map_err(other)?;
    let mut out = Vec::new();
    for row in blocks.range(start.as_str()..end.as_str()).map_err(other)? {
        let (k, _) = row.map_err(other)?;
        if let Some((_, id)) = k.value().split_once('\0') {
            out.push(id.to_string());
        }
    }
    Ok(out)
}

/// The user's stored standing.
fn standing_in(tx: &ReadTransaction, user_id: &str) -> StoreResult<Option<Standing>> {
    let t = tx.open_table(STANDING).map_err(other)?;
    match t.get(user_id).map_err(other)? {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
}

/// Reports about `target` made at or after `since`, oldest first.
fn reports_about_in(
    tx: &ReadTransaction,
    target: &str,
    since: DateTime<Utc>,
) -> StoreResult<Vec<Report>> {
    let (start, end) = (format!("{target}\0"), format!("{target}\u{1}"));
    let index = tx.open_table(REPORTS_BY_TARGET).map_err(other)?;
    let reports = tx.open_table(REPORTS).map_err(other)?;
    let mut out = Vec::new();
    for row in index.range(start.as_str()..end.as_str()).map_err(other)? {
        let (k, _) = row.map_err(other)?;
        let Some((_, id)) = k.value().split_once('\0') else {
            continue;
        };
        if let Some(v) = reports.get(id).map_err(other)? {
            let r: Report = decode(v.value())?;
            if r.created_at >= since {
                out.push(r);
            }
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Sets a user's last-seen time (and a guest's place in the expiry index);
/// false if there is no such user.
fn stamp_last_seen(tx: &WriteTransaction, id: &str, at: DateTime<Utc>) -> StoreResult<bool> {
    let mut users = tx.open_table(USERS).map_err(other)?;
    let mut user: User = match users.get(id).map_err(other)? {
        Some(v) => decode(v.value())?,
        None => return Ok(false),
    };
    if user.is_guest {
        let mut active = tx.open_table(GUEST_ACTIVE).map_err(other)?;
        active
            .remove(active_key(last_active(&user), id).as_str())
            .map_err(other)?;
        active
            .insert(active_key(at, id).as_str(), ())
            .map_err(other)?;
    }
    user.last_seen = Some(at);
    users.insert(id, encode(&user)?.as_slice()).map_err(other)?;
    Ok(true)
}

/// Files written before the expiry index existed: index their guests once.
fn index_existing_guests(tx: &WriteTransaction) -> StoreResult<()> {
    let mut active = tx.open_table(GUEST_ACTIVE).map_err(other)?;
    let guests = tx.open_table(GUESTS).map_err(other)?;
    if !active.is_empty().map_err(other)? || guests.is_empty().map_err(other)? {
        return Ok(());
    }
    let users = tx.open_table(USERS).map_err(other)?;
    for row in guests.iter().map_err(other)? {
        let (id, _) = row.map_err(other)?;
        if let Some(v) = users.get(id.value()).map_err(other)? {
            let user: User = decode(v.value())?;
            active
                .insert(active_key(last_active(&user), &user.id).as_str(), ())
                .map_err(other)?;
        }
    }
    Ok(())
}

/// Removes one account and everything keyed by it; false if unknown.
fn delete_user(tx: &WriteTransaction, id: &str) -> StoreResult<bool> {
    let mut users = tx.open_table(USERS).map_err(other)?;
    let user: User = match users.remove(id).map_err(other)? {
        Some(v) => decode(v.value())?,
        None => return Ok(false),
    };
    tx.open_table(USERNAMES)
        .map_err(other)?
        .remove(user.username.to_lowercase().as_str())
        .map_err(other)?;
    if let Some(email) = &user.email {
        tx.open_table(EMAILS)
            .map_err(other)?
            .remove(email.to_lowercase().as_str())
            .map_err(other)?;
    }
    if user.is_guest {
        tx.open_table(GUESTS)
            .map_err(other)?
            .remove(id)
            .map_err(other)?;
        tx.open_table(GUEST_ACTIVE)
            .map_err(other)?
            .remove(active_key(last_active(&user), id).as_str())
            .map_err(other)?;
    }
    let prefix = format!("{id}\0");
    for k in remove_prefixed(tx, REFRESH_BY_USER, &prefix)? {
        if let Some((_, hash)) = k.split_once('\0') {
            tx.open_table(REFRESH)
                .map_err(other)?
                .remove(hash)
                .map_err(other)?;
        }
    }
    remove_prefixed(tx, DEVICES, &prefix)?;
    remove_prefixed(tx, BLOCKS, &prefix)?;
    tx.open_table(STANDING)
        .map_err(other)?
        .remove(id)
        .map_err(other)?;
    Ok(true)
}

/// Removes every row of `table` whose key starts with `prefix` (which ends
/// in `\0`); returns their keys.
fn remove_prefixed<V: redb::Value + 'static>(
    tx: &WriteTransaction,
    table: TableDefinition<&str, V>,
    prefix: &str,
) -> StoreResult<Vec<String>> {
    let end = format!("{}\u{1}", prefix.trim_end_matches('\0'));
    let mut t = tx.open_table(table).map_err(other)?;
    let keys: Vec<String> = t
        .range(prefix..end.as_str())
        .map_err(other)?
        .map(|row| row.map(|(k, _)| k.value().to_string()).map_err(other))
        .collect::<StoreResult<_>>()?;
    for k in &keys {
        t.remove(k.as_str()).map_err(other)?;
    }
    Ok(keys)
}

fn create_tables(tx: &WriteTransaction) -> Result<(), TableError> {
    tx.open_table(USERS)?;
    tx.open_table(USERNAMES)?;
    tx.open_table(EMAILS)?;
    tx.open_table(GUESTS)?;
    tx.open_table(REFRESH)?;
    tx.open_table(DEVICES)?;
    tx.open_table(GUEST_ACTIVE)?;
    tx.open_table(REFRESH_BY_USER)?;
    tx.open_table(BLOCKS)?;
    tx.open_table(BANS)?;
    tx.open_table(AUDIT)?;
    tx.open_table(REPORTS)?;
    tx.open_table(REPORTS_BY_TARGET)?;
    tx.open_table(STANDING)?;
    tx.open_table(ROOM_MESSAGES)?;
    tx.open_table(ROOM_META)?;
    Ok(())
}

fn read_user(db: &Database, id: &str) -> StoreResult<Option<User>> {
    let tx = db.begin_read().map_err(other)?;
    let users = tx.open_table(USERS).map_err(other)?;
    match users.get(id).map_err(other)? {
        Some(v) => decode(v.value()).map(Some),
        None => Ok(None),
    }
}

fn device_key(user_id: &str, device_id: &str) -> String {
    format!("{user_id}\0{device_id}")
}

#[async_trait]
impl UserStore for EmbeddedStore {
    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn create_user(&self, new: NewUser) -> StoreResult<User> {
        self.writing(move |db| {
            let user = User {
                id: super::new_id(),
                username: new.username,
                email: new.email,
                password_hash: new.password_hash,
                is_guest: new.is_guest,
                created_at: Utc::now(),
                last_seen: None,
            };
            let username_key = user.username.to_lowercase();
            let email_key = user.email.as_deref().map(str::to_lowercase);
            // redb serialises write transactions: check-then-insert is atomic.
            let tx = db.begin_write().map_err(other)?;
            {
                let mut names = tx.open_table(USERNAMES).map_err(other)?;
                if names.get(username_key.as_str()).map_err(other)?.is_some() {
                    return Err(StoreError::Conflict("username"));
                }
                let mut emails = tx.open_table(EMAILS).map_err(other)?;
                if let Some(e) = &email_key {
                    if emails.get(e.as_str()).map_err(other)?.is_some() {
                        return Err(StoreError::Conflict("email"));
                    }
                    emails.insert(e.as_str(), user.id.as_str()).map_err(other)?;
                }
                names
                    .insert(username_key.as_str(), user.id.as_str())
                    .map_err(other)?;
                let mut users = tx.open_table(USERS).map_err(other)?;
                users
                    .insert(user.id.as_str(), encode(&user)?.as_slice())
                    .map_err(other)?;
                if user.is_guest {
                    let mut guests = tx.open_table(GUESTS).map_err(other)?;
                    guests.insert(user.id.as_str(), ()).map_err(other)?;
                    let mut active = tx.open_table(GUEST_ACTIVE).map_err(other)?;
                    active
                        .insert(active_key(user.created_at, &user.id).as_str(), ())
                        .map_err(other)?;
                }
            }
            tx.commit().map_err(other)?;
            Ok(user)
        })
        .await
    }

    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        let id = id.to_string();
        self.reading(move |db| read_user(db, &id)).await
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let key = email.to_lowercase();
        self.reading(move |db| {
            let id = {
                let tx = db.begin_read().map_err(other)?;
                let emails = tx.open_table(EMAILS).map_err(other)?;
                match emails.get(key.as_str()).map_err(other)? {
                    Some(id) => id.value().to_string(),
                    None => return Ok(None),
                }
            };
            read_user(db, &id)
        })
        .await
    }

    async fn set_last_seen(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()> {
        let id = id.to_string();
        self.writing(move |db| {
            let tx = db.begin_write().map_err(other)?;
            if !stamp_last_seen(&tx, &id, at)? {
                return Err(StoreError::NotFound);
            }
            tx.commit().map_err(other)
        })
        .await
    }

    /// One transaction for the whole batch.
    async fn set_last_seen_many(&self, entries: Vec<(String, DateTime<Utc>)>) -> StoreResult<()> {
        self.writing(move |db| {
            let tx = db.begin_write().map_err(other)?;
            for (id, at) in entries {
                stamp_last_seen(&tx, &id, at)?;
            }
            tx.commit().map_err(other)
        })
        .await
    }

    async fn count_users(&self) -> StoreResult<UserCounts> {
        self.reading(|db| {
            let tx = db.begin_read().map_err(other)?;
            let total = tx.open_table(USERS).map_err(other)?.len().map_err(other)?;
            let guests = tx.open_table(GUESTS).map_err(other)?.len().map_err(other)?;
            Ok(UserCounts { total, guests })
        })
        .await
    }

    async fn upsert_device(&self, device: Device) -> StoreResult<()> {
        self.writing(move |db| {
            let key = device_key(&device.user_id, &device.device_id);
            let tx = db.begin_write().map_err(other)?;
            {
                let mut devices = tx.open_table(DEVICES).map_err(other)?;
                devices
                    .insert(key.as_str(), encode(&device)?.as_slice())
                    .map_err(other)?;
            }
            tx.commit().map_err(other)
        })
        .await
    }

    async fn devices_of(&self, user_id: &str) -> StoreResult<Vec<Device>> {
        let start = format!("{user_id}\0");
        let end = format!("{user_id}\u{1}");
        self.reading(move |db| {
            let tx = db.begin_read().map_err(other)?;
            let devices = tx.open_table(DEVICES).map_err(other)?;
            let mut out = Vec::new();
            for row in devices.range(start.as_str()..end.as_str()).map_err(other)? {
                let (_, v) = row.map_err(other)?;
                out.push(decode(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn insert_refresh(&self, token_hash: &str, record: RefreshRecord) -> StoreResult<()> {
        let key = token_hash.to_string();
        self.writing(move |db| {
            let tx = db.begin_write().map_err(other)?;
            {
                let mut t = tx.open_table(REFRESH).map_err(other)?;
                t.insert(key.as_str(), encode(&record)?.as_slice())
                    .map_err(other)?;
                let mut by_user = tx.open_table(REFRESH_BY_USER).map_err(other)?;
                by_user
                    .insert(format!("{}\0{key}", record.user_id).as_str(), ())
                    .map_err(other)?;
            }
            tx.commit().map_err(other)
        })
        .await
    }

    async fn take_refresh(&self, token_hash: &str) -> StoreResult<Option<RefreshRecord>> {
        let key = token_hash.to_string();
        self.writing(move |db| {
            let tx = db.begin_write().map_err(other)?;
            let taken = {
                let mut t = tx.open_table(REFRESH).map_err(other)?;
                let removed = t.remove(key.as_str()).map_err(other)?;
                match removed {
                    Some(v) => Some(decode::<RefreshRecord>(v.value())?),
                    None => None,
                }
            };
            if let Some(r) = &taken {
                tx.open_table(REFRESH_BY_USER)
                    .map_err(other)?
                    .remove(format!("{}\0{key}", r.user_id).as_str())
                    .map_err(other)?;
            }
            tx.commit().map_err(other)?;
            Ok(taken)
        })
        .await
    }

    async fn ping(&self) -> StoreResult<()> {
        self.reading(|db| db.begin_read().map(|_| ()).map_err(other))
            .await
    }

    async fn add_block(&self, user_id: &str, other: &str) -> StoreResult<()> {
        self.mark(user_id);
        let key = format!("{user_id}\0{other}");
        self.writing(move |db| {
            let tx = db.begin_write().map_err(other_err)?;
            tx.open_table(BLOCKS)
                .map_err(other_err)?
                .insert(key.as_str(), ())
                .map_err(other_err)?;
            tx.commit().map_err(other_err)
        })
        .await
    }

    async fn refresh_ips_of(&self, user_id: &str) -> StoreResult<Vec<String>> {
        let (start, end) = (format!("{user_id}\0"), format!("{user_id}\u{1}"));
        self.reading(move |db| {
            let tx = db.begin_read().map_err(other)?;
            let by_user = tx.open_table(REFRESH_BY_USER).map_err(other)?;
            let tokens = tx.open_table(REFRESH).map_err(other)?;
            let mut out = Vec::new();
            for row in by_user.range(start.as_str()..end.as_str()).map_err(other)? {
                let (k, _) = row.map_err(other)?;
                let Some((_, hash)) = k.value().split_once('\0') else {
                    continue;
                };
                if let Some(v) = tokens.get(hash).map_err(other)?
                    && let Some(ip) = decode::<RefreshRecord>(v.value())?.ip
                    && !out.contains(&ip)
                {
                    out.push(ip);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn put_bans(&self, bans: Vec<BanRecord>) -> StoreResult<()> {
        self.writing(move |db| {
            let tx = db.begin_write().map_err(other)?;
            {
                let mut t = tx.open_table(BANS).map_err(other)?;
                for b in &bans {
                    t.insert(b.subject.as_str(), encode(b)?.as_slice())
                        .map_err(other)?;
                }
            }
            tx.commit().map_err(other)
        })
        .await
    }

    async fn bans_of(&self, subjects: Vec<String>) -> StoreResult<Vec<BanRecord>> {
        self.reading(move |db| {
            let tx = db.begin_read().map_err(other)?;
            let t = tx.open_table(BANS).map_err(other)?;
            let mut out = Vec::new();
            for s in &subjects {
                if let Some(v) = t.get(s.as_str()).map_err(other)? {
                    out.push(decode(v.value())?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn standing_of(&self, user_id: &str) -> StoreResult<Option<Standing>> {
        let id = user_id.to_string();
        self.reading(move |db| standing_in(&db.begin_read().map_err(other)?, &id))
            .await
    }

    async fn put_standing(&self, user_id: &str, standing: Standing) -> StoreResult<()> {
        self.mark(user_id);
        let id = user_id.to_string();
        self.writing(move |db| {
            let tx = db.begin_write().map_err(other)?;
            tx.open_table(STANDING)
                .map_err(other)?
                .insert(id.as_str(), encode(&standing)?.as_slice())
                .map_err(other)?;
            tx.commit().map_err(other)
        })
        .await
    }

    async fn insert_report(&self, report: Report) -> StoreResult<()> {
        self.mark(&report.target);
        self.writing(move |db| {
            let tx = db.begin_write().map_err(other)?;
            {
                tx.open_table(REPORTS)
                    .map_err(other)?
                    .insert(report.id.as_str(), encode(&report)?.as_slice())
                    .map_err(other)?;
                tx.open_table(REPORTS_BY_TARGET)
                    .map_err(other)?
                    .insert(format!("{}\0{}", report.target, report.id).as_str(), ())
                    .map_err(other)?;
            }
            tx.commit().map_err(other)
        })
        .await
    }

    async fn reports_about(&self, target: &str, since: DateTime<Utc>) -> StoreResult<Vec<Report>> {
        let target = target.to_string();
        self.reading(move |db| reports_about_in(&db.begin_read().map_err(other)?, &target, since))
            .await
    }

    async fn matching_record(&self, user_id: &str) -> StoreResult<MatchingRecord> {
        if !self
            .with_records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(user_id)
        {
            return Ok(MatchingRecord::default());
        }
        let id = user_id.to_string();
        self.reading(move |db| {
            let tx = db.begin_read().map_err(other)?;
            Ok(MatchingRecord {
                blocks: blocks_in(&tx, &id)?,
                standing: standing_in(&tx, &id)?,
                open_reports: super::open_reports(&reports_about_in(
                    &tx,
                    &id,
                    DateTime::<Utc>::UNIX_EPOCH,
                )?),
            })
        })
        .await
    }

    async fn list_reports(
        &self,
        status: Option<String>,
        before: Option<String>,
        limit: usize,
    ) -> StoreResult<Vec<Report>> {
        self.reading(move |db| {
            let tx = db.begin_read().map_err(other)?;
            let t = tx.open_table(REPORTS).map_err(other)?;
            let rows = match &before {
                Some(b) => t.range::<&str>(..b.as_str()).map_err(other)?,
                None => t.range::<&str>(..).map_err(other)?,
            };
            let mut out = Vec::new();
            for row in rows.rev() {
                if out.len() >= limit {
                    break;
                }
                let (_, v) = row.map_err(other)?;
                let r: Report = decode(v.value())?;
                if status.as_ref().is_none_or(|s| *s == r.status) {
                    out.push(r);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn resolve_report(&self, id: &str, resolution: &str) -> StoreResult<Option<Report>> {
        let (id, resolution) = (id.to_string(), resolution.to_string());
        self.writing(move |db| {
            let tx = db.begin_write().map_err(other)?;
            let done = {
                let mut t = tx.open_table(REPORTS).map_err(other)?;
                let current: Option<Report> = match t.get(id.as_str()).map_err(other)? {
                    Some(v) => Some(decode(v.value())?),
                    None => None,
                };
                match current {
                    Some(mut r) if r.status == "open" => {
                        r.status = "resolved".into();
                        r.resolution = Some(resolution);
                        t.insert(id.as_str(), encode(&r)?.as_slice())
                            .map_err(other)?;
                        Some(r)
                    }
                    _ => None,
                }
            };
            tx.commit().map_err(other)?;
            Ok(done)
        })
        .await
    }

    async fn delete_reports_before(
        &self,
        cutoff: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<usize> {
        self.writing(move |db| {
            let tx = db.begin_write().map_err(other)?;
            let mut removed = 0;
            {
                let mut t = tx.open_table(REPORTS).map_err(other)?;
                let mut index = tx.open_table(REPORTS_BY_TARGET).map_err(other)?;
                let mut old = Vec::new();
                for row in t.iter().map_err(other)? {
                    if old.len() >= limit {
                        break;
                    }
                    let (k, v) = row.map_err(other)?;
                    let r: Report = decode(v.value())?;
                    if r.created_at < cutoff {
                        old.push((k.value().to_string(), r.target));
                    }
                }
                for (id, target) in old {
                    t.remove(id.as_str()).map_err(other)?;
                    index
                        .remove(format!("{target}\0{id}").as_str())
                        .map_err(other)?;
                    removed += 1;
                }
            }
            tx.commit().map_err(other)?;
            Ok(removed)
        })
        .await
    }

    async fn append_audit(&self, entry: AuditEntry) -> StoreResult<()> {
        self.writing(move |db| {
            let tx = db.begin_write().map_err(other)?;
            tx.open_table(AUDIT)
                .map_err(other)?
                .insert(entry.id.as_str(), encode(&entry)?.as_slice())
                .map_err(other)?;
            tx.commit().map_err(other)
        })
        .await
    }

    async fn audit_log(
        &self,
        before: Option<String>,
        limit: usize,
    ) -> StoreResult<Vec<AuditEntry>> {
        self.reading(move |db| {
            let tx = db.begin_read().map_err(other)?;
            let t = tx.open_table(AUDIT).map_err(other)?;
            let rows = match &before {
                Some(b) => t.range::<&str>(..b.as_str()).map_err(other)?,
                None => t.range::<&str>(..).map_err(other)?,
            };
            let mut out = Vec::new();
            for row in rows.rev().take(limit) {
                let (_, v) = row.map_err(other)?;
                out.push(decode(v.value())?);
            }
            Ok(out)
        })
        .await
    }

    async fn remove_block(&self, user_id: &str, other: &str) -> StoreResult<bool> {
        let key = format!("{user_id}\0{other}");
        self.writing(move |db| {
            let tx = db.begin_write().map_err(other_err)?;
            let removed = tx
                .open_table(BLOCKS)
                .map_err(other_err)?
                .remove(key.as_str())
                .map_err(other_err)?
                .is_some();
            tx.commit().map_err(other_err)?;
            Ok(removed)
        })
        .await
    }

    async fn blocks_of(&self, user_id: &str) -> StoreResult<Vec<String>> {
        let id = user_id.to_string();
        self.reading(move |db| blocks_in(&db.begin_read().map_err(other)?, &id))
            .await
    }

    async fn expired_guests(
        &self,
        cutoff: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<String>> {
        self.reading(move |db| {
            let tx = db.begin_read().map_err(other)?;
            let active = tx.open_table(GUEST_ACTIVE).map_err(other)?;
            let end = format!("{:016x}", cutoff.timestamp().max(0));
            let mut out = Vec::new();
            for row in active.range(..end.as_str()).map_err(other)?.take(limit) {
                let (k, _) = row.map_err(other)?;
                if let Some((_, id)) = k.value().split_once('\0') {
                    out.push(id.to_string());
                }
            }
            Ok(out)
        })
        .await
    }

    async fn room_state(&self, room: &str) -> StoreResult<RoomState> {
        let room = room.to_string();
        self.writing(move |db| {
            let tx = db.begin_write().map_err(other)?;
            let state = {
                let mut meta = tx.open_table(ROOM_META).map_err(other)?;
                let stored: Option<RoomMeta> = match meta.get(room.as_str()).map_err(other)? {
                    Some(v) => Some(decode(v.value())?),
                    None => None,
                };
                let m = match stored {
                    Some(m) => m,
                    None => {
                        let m = RoomMeta {
                            epoch: super::new_room_epoch(),
                            last_offset: 0,
                        };
                        meta.insert(room.as_str(), encode(&m)?.as_slice())
                            .map_err(other)?;
                        m
                    }
                };
                let (start, end) = room_range(&room);
                let messages = tx.open_table(ROOM_MESSAGES).map_err(other)?;
                let oldest = match messages
                    .range(start.as_str()..end.as_str())
                    .map_err(other)?
                    .next()
                {
                    Some(row) => {
                        let (_, v) = row.map_err(other)?;
                        Some(decode::<RoomMessage>(v.value())?.offset)
                    }
                    None => None,
                };
                RoomState {
                    epoch: m.epoch,
                    last_offset: m.last_offset,
                    oldest,
                }
            };
            tx.commit().map_err(other)?;
            Ok(state)
        })
        .await
    }

    async fn append_room_message(&self, message: RoomMessage) -> StoreResult<()> {
        self.writing(move |db| {
            let tx = db.begin_write().map_err(other)?;
            {
                let mut meta = tx.open_table(ROOM_META).map_err(other)?;
                let mut m: RoomMeta = match meta.get(message.room_id.as_str()).map_err(other)? {
                    Some(v) => decode(v.value())?,
                    None => RoomMeta {
                        epoch: super::new_room_epoch(),
                        last_offset: 0,
                    },
                };
                m.last_offset = m.last_offset.max(message.offset);
                meta.insert(message.room_id.as_str(), encode(&m)?.as_slice())
                    .map_err(other)?;
                let key = room_key(&message.room_id, message.offset);
                let mut t = tx.open_table(ROOM_MESSAGES).map_err(other)?;
                if t.get(key.as_str()).map_err(other)?.is_some() {
                    return Err(StoreError::Conflict("offset"));
                }
                t.insert(key.as_str(), encode(&message)?.as_slice())
                    .map_err(other)?;
            }
            tx.commit().map_err(other)
        })
        .await
    }

    async fn room_messages_before(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<RoomMessage>> {
        let (start, end) = room_range(room);
        let end = match before {
            Some(b) => room_key(room, b),
            None => end,
        };
        self.reading(move |db| read_room_range(db, &start, &end, limit, true))
            .await
    }

    async fn room_messages_after(
        &self,
        room: &str,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<RoomMessage>> {
        let start = room_key(room, after.saturating_add(1));
        let (_, end) = room_range(room);
        self.reading(move |db| read_room_range(db, &start, &end, limit, false))
            .await
    }

    async fn delete_room_message(
        &self,
        room: &str,
        offset: u64,
    ) -> StoreResult<Option<RoomMessage>> {
        let key = room_key(room, offset);
        self.writing(move |db| {
            let tx = db.begin_write().map_err(other)?;
            let removed = {
                let mut t = tx.open_table(ROOM_MESSAGES).map_err(other)?;
                let removed = t.remove(key.as_str()).map_err(other)?;
                match removed {
                    Some(v) => Some(decode::<RoomMessage>(v.value())?),
                    None => None,
                }
            };
            tx.commit().map_err(other)?;
            Ok(removed)
        })
        .await
    }

    async fn trim_room(
        &self,
        room: &str,
        keep: usize,
        cutoff: DateTime<Utc>,
    ) -> StoreResult<usize> {
        let (start, end) = room_range(room);
        self.writing(move |db| {
            let tx = db.begin_write().map_err(other)?;
            let mut removed = 0;
            {
                let mut t = tx.open_table(ROOM_MESSAGES).map_err(other)?;
                let total = t
                    .range(start.as_str()..end.as_str())
                    .map_err(other)?
                    .count();
                let over = total.saturating_sub(keep);
                let mut doomed = Vec::new();
                for (i, row) in t
                    .range(start.as_str()..end.as_str())
                    .map_err(other)?
                    .enumerate()
                {
                    let (k, v) = row.map_err(other)?;
                    let m: RoomMessage = decode(v.value())?;
                    // Oldest first: past the count to drop, stop at the first young one.
                    if i < over || m.timestamp < cutoff {
                        doomed.push(k.value().to_string());
                    } else {
                        break;
                    }
                }
                for k in doomed {
                    t.remove(k.as_str()).map_err(other)?;
                    removed += 1;
                }
            }
            tx.commit().map_err(other)?;
            Ok(removed)
        })
        .await
    }

    /// One transaction for the batch.
    async fn delete_users(&self, ids: Vec<String>) -> StoreResult<usize> {
        let (n, ids) = self
            .writing(move |db| {
                let tx = db.begin_write().map_err(other)?;
                let mut n = 0;
                for id in &ids {
                    n += usize::from(delete_user(&tx, id)?);
                }
                tx.commit().map_err(other)?;
                Ok((n, ids))
            })
            .await?;
        let mut marked = self.with_records.lock().unwrap_or_else(|p| p.into_inner());
        for id in &ids {
            marked.remove(id);
        }
        Ok(n)
    }
}
