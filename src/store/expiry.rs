//! Guest expiry: guests not seen for `GUEST_TTL` are removed with their
//! refresh tokens and devices, in batches, by one pass the driver runs
//! periodically. The rule takes `now`, so tests run it on simulated time.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{StoreError, StoreResult, UserStore};
use crate::presence::Presence;

/// Accounts removed per store transaction / round trip.
pub const BATCH: usize = 500;

/// One pass at `now`: removes every guest last active before `now - ttl`.
/// A guest who is online right now (a connection older than the TTL) is
/// not removed: their last-seen time is set to `now` instead. Yields
/// between batches so a large backlog does not hold the runtime.
pub async fn sweep_guests(
    store: &dyn UserStore,
    presence: &dyn Presence,
    ttl: Duration,
    now: DateTime<Utc>,
) -> StoreResult<usize> {
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
    let cutoff = now
        .checked_sub_signed(ttl)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let mut removed = 0;
    loop {
        let ids = store.expired_guests(cutoff, BATCH).await?;
        let full = ids.len() == BATCH;
        if ids.is_empty() {
            break;
        }
        let (mut gone, mut online) = (Vec::new(), Vec::new());
        for id in ids {
            match presence.get(&id).await {
                Ok(Some(_)) => online.push((id, now)),
                Ok(None) => gone.push(id),
                Err(e) => return Err(StoreError::Unavailable(format!("presence: {e}"))),
            }
        }
        if !online.is_empty() {
            store.set_last_seen_many(online).await?;
        }
        removed += store.delete_users(gone).await?;
        if !full {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(removed)
}
