//! Last-seen times, written in batches.
//!
//! A user's last socket closing records when they were last seen. One store
//! write per disconnect turns a disconnect storm (a deploy, a network blip:
//! thousands of sockets at once) into thousands of transactions, each
//! holding a blocking thread while it waits for the store's write lock.
//! Here disconnects only note the time; one writer task stores whatever
//! has gathered, as one batch, as soon as the previous batch is done — no
//! added delay when it is quiet, one write per batch when it is not.

use std::{collections::HashMap, sync::Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::DynUserStore;

#[derive(Default)]
pub struct LastSeen {
    pending: Mutex<HashMap<String, DateTime<Utc>>>,
    wake: Notify,
    stop: Notify,
}

impl LastSeen {
    /// Notes that `user_id` was last seen `at`; the writer stores it soon.
    pub fn record(&self, user_id: &str, at: DateTime<Utc>) {
        if let Ok(mut p) = self.pending.lock() {
            p.insert(user_id.to_string(), at);
        }
        self.wake.notify_one();
    }

    fn take(&self) -> Vec<(String, DateTime<Utc>)> {
        self.pending
            .lock()
            .map(|mut p| p.drain().collect())
            .unwrap_or_default()
    }

    /// Stores everything noted so far.
    pub async fn flush(&self, store: &DynUserStore) {
        let batch = self.take();
        if batch.is_empty() {
            return;
        }
        let n = batch.len();
        if let Err(e) = store.set_last_seen_many(batch).await {
            tracing::warn!(error = %e, users = n, "could not record last seen");
        }
    }

    /// The writer: runs until [`LastSeen::close`], then stores what is left.
    pub async fn run(&self, store: DynUserStore) {
        loop {
            tokio::select! {
                _ = self.wake.notified() => self.flush(&store).await,
                _ = self.stop.notified() => {
                    self.flush(&store).await;
                    return;
                }
            }
        }
    }

    /// Tells the writer to store what is left and stop.
    pub fn close(&self) {
        self.stop.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::{NewUser, embedded::EmbeddedStore};

    #[tokio::test]
    async fn batches_are_stored_and_the_rest_on_close() {
        let dir = std::env::temp_dir().join(format!("tandem-lastseen-{}", crate::files::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store: DynUserStore =
            Arc::new(EmbeddedStore::open(&dir.join("db.redb")).await.unwrap());
        let user = store
            .create_user(NewUser {
                username: "seen_user".into(),
                email: None,
                password_hash: None,
                is_guest: true,
            })
            .await
            .unwrap();
        let writer = Arc::new(LastSeen::default());
        let at = Utc::now();
        writer.record(&user.id, at);
        writer.record("no-such-user", at); // skipped, not an error
        writer.close();
        let w = writer.clone();
        let s = store.clone();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            async move { w.run(s).await },
        )
        .await
        .expect("the writer stops when closed");
        let stored = store.user_by_id(&user.id).await.unwrap().unwrap();
        assert_eq!(
            stored.last_seen.map(|t| t.timestamp_millis()),
            Some(at.timestamp_millis())
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
