//! What safety needs from Socket.IO: telling a banned user's sockets and
//! disconnecting them, on whichever node they are (the Redis adapter
//! carries both across a cluster).

use crate::sio::Io;
use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{calls::emit_to_user, user_room};
use crate::{protocol::ServerEvent, safety::Sessions};

pub struct IoSessions(pub Io);

#[async_trait]
impl Sessions for IoSessions {
    async fn banned(&self, user_id: &str, until: DateTime<Utc>, reason: &str) {
        let notice = ServerEvent::ModerationBanned {
            until,
            reason: reason.to_string(),
        };
        emit_to_user(&self.0, user_id, &notice).await;
        self.kick(user_id).await;
    }

    async fn warned(&self, user_id: &str, reason: &str) {
        let notice = ServerEvent::ModerationWarning {
            reason: reason.to_string(),
        };
        emit_to_user(&self.0, user_id, &notice).await;
    }

    async fn kick(&self, user_id: &str) {
        if let Err(e) = self.0.to(user_room(user_id)).disconnect().await {
            tracing::debug!(error = %e, "disconnecting a user's sockets failed");
        }
    }
}
