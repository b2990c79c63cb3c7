//! The account store, timed: every operation's latency and failures go to
//! [`Metrics`], whichever backend is behind it. `NotFound` and `Conflict`
//! are answers, not failures.

use std::{sync::Arc, time::Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::Metrics;
use crate::store::{
    AuditEntry, BanRecord, Device, DynUserStore, MatchingRecord, NewUser, RefreshRecord, Report,
    RoomMessage, RoomState, Standing, StoreError, StoreResult, User, UserCounts, UserStore,
};

pub struct MeteredStore {
    inner: DynUserStore,
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    pub fn wrap(inner: DynUserStore, metrics: Arc<Metrics>) -> DynUserStore {
        Arc::new(MeteredStore { inner, metrics })
    }

    async fn timed<T>(
        &self,
        op: &'static str,
        f: impl std::future::Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        let start = Instant::now();
        let r = f.await;
        let ok =
            !matches!(&r, Err(e) if !matches!(e, StoreError::NotFound | StoreError::Conflict(_)));
        self.metrics.store(op, start.elapsed(), ok);
        r
    }
}

/// The store trait with one delegating method per operation, timed under
/// the operation's name. (The macro writes the whole impl so async_trait
/// sees the methods.)
macro_rules! timed {
    ($( fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty; )*) => {
        #[async_trait]
        impl UserStore for MeteredStore {
            fn kind(&self) -> &'static str {
                self.inner.kind()
            }

            $(
                async fn $name(&self $(, $arg: $ty)*) -> StoreResult<$ret> {
                    self.timed(stringify!($name), self.inner.$name($($arg),*)).await
                }
            )*
        }
    };
}

timed! {
        fn create_user(&self, new: NewUser) -> User;
        fn user_by_id(&self, id: &str) -> Option<User>;
        fn user_by_email(&self, email: &str) -> Option<User>;
        fn set_last_seen(&self, id: &str, at: DateTime<Utc>) -> ();
        fn set_last_seen_many(&self, entries: Vec<(String, DateTime<Utc>)>) -> ();
        fn count_users(&self) -> UserCounts;
        fn upsert_device(&self, device: Device) -> ();
        fn devices_of(&self, user_id: &str) -> Vec<Device>;
        fn insert_refresh(&self, token_hash: &str, record: RefreshRecord) -> ();
        fn take_refresh(&self, token_hash: &str) -> Option<RefreshRecord>;
        fn ping(&self) -> ();
        fn add_block(&self, user_id: &str, other: &str) -> ();
        fn remove_block(&self, user_id: &str, other: &str) -> bool;
        fn blocks_of(&self, user_id: &str) -> Vec<String>;
        fn refresh_ips_of(&self, user_id: &str) -> Vec<String>;
        fn put_bans(&self, bans: Vec<BanRecord>) -> ();
        fn bans_of(&self, subjects: Vec<String>) -> Vec<BanRecord>;
        fn standing_of(&self, user_id: &str) -> Option<Standing>;
        fn put_standing(&self, user_id: &str, standing: Standing) -> ();
        fn insert_report(&self, report: Report) -> ();
        fn reports_about(&self, target: &str, since: DateTime<Utc>) -> Vec<Report>;
        fn matching_record(&self, user_id: &str) -> MatchingRecord;
        fn list_reports(&self, status: Option<String>, before: Option<String>, limit: usize) -> Vec<Report>;
        fn resolve_report(&self, id: &str, resolution: &str) -> Option<Report>;
        fn delete_reports_before(&self, cutoff: DateTime<Utc>, limit: usize) -> usize;
        fn append_audit(&self, entry: AuditEntry) -> ();
        fn audit_log(&self, before: Option<String>, limit: usize) -> Vec<AuditEntry>;
        fn expired_guests(&self, cutoff: DateTime<Utc>, limit: usize) -> Vec<String>;
        fn delete_users(&self, ids: Vec<String>) -> usize;
        fn room_state(&self, room: &str) -> RoomState;
        fn append_room_message(&self, message: RoomMessage) -> ();
        fn room_messages_before(&self, room: &str, before: Option<u64>, limit: usize) -> Vec<RoomMessage>;
        fn room_messages_after(&self, room: &str, after: u64, limit: usize) -> Vec<RoomMessage>;
        fn delete_room_message(&self, room: &str, offset: u64) -> Option<RoomMessage>;
        fn trim_room(&self, room: &str, keep: usize, cutoff: DateTime<Utc>) -> usize;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn operations_are_timed_and_failures_counted() {
        let dir = tempfile::tempdir().unwrap();
        let inner: DynUserStore = Arc::new(
            crate::store::embedded::EmbeddedStore::open_with_cache(
                &dir.path().join("t.redb"),
                1 << 20,
            )
            .await
            .unwrap(),
        );
        let metrics = Arc::new(Metrics::new());
        let store = MeteredStore::wrap(inner, metrics.clone());
        assert!(store.user_by_id("nobody").await.unwrap().is_none());
        assert!(matches!(
            store.set_last_seen("nobody", Utc::now()).await,
            Err(StoreError::NotFound)
        ));
        let out = metrics.encode(Default::default());
        assert!(
            out.contains("tandem_store_operation_duration_seconds_count{op=\"user_by_id\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("tandem_store_operation_duration_seconds_count{op=\"set_last_seen\"} 1")
        );
        assert!(
            !out.contains("tandem_store_errors_total{"),
            "not-found is an answer"
        );
    }
}
