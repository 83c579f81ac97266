//! Reactions to the saga: a completed reservation spends its token, a failed one restores it.

use crate::Settings;
use crate::{
    scripts::{COMPLETE, RESTORE},
    store::{RETENTION, WAITING_TTL},
};
use contracts::{Event, ReservationCompleted, ReservationFailed};
use messaging::{Applied, HandleError, Incoming, RedisHandler, applied};
use platform::queue_guard::QueueKeys;

/// Consumes ReservationCompleted and ReservationFailed from the RESERVATION stream.
pub struct Tokens {
    pub keys: QueueKeys,
    pub settings: Settings,
}

impl RedisHandler for Tokens {
    fn handles(&self, kind: &str) -> bool {
        kind == ReservationCompleted::TYPE || kind == ReservationFailed::TYPE
    }

    async fn handle(
        &self,
        conn: &mut platform::pools::Redis,
        inbox_key: &str,
        msg: &Incoming,
    ) -> Result<Applied, HandleError> {
        let (token, user, completed) = match msg.kind() {
            ReservationCompleted::TYPE => {
                let e = msg.decode::<ReservationCompleted>()?.payload;
                (e.queue_token, e.user_id, true)
            }
            _ => {
                let e = msg.decode::<ReservationFailed>()?.payload;
                (e.queue_token, e.user_id, false)
            }
        };
        // Reservations made with the development bypass carry no token.
        if uuid::Uuid::parse_str(&token).is_err() {
            return Ok(Applied::Ignored);
        }
        let token_key = self.keys.token(&token);
        let answer: i64 = if completed {
            COMPLETE
                .prepare(inbox_key)
                .key(&self.keys.active)
                .key(&self.keys.waiting)
                .key(&token_key)
                .arg(&token)
                .arg(user.to_string())
                .arg(RETENTION.as_secs())
                .invoke_async(conn)
                .await?
        } else {
            RESTORE
                .prepare(inbox_key)
                .key(&self.keys.active)
                .key(&self.keys.waiting)
                .key(&token_key)
                .key(self.keys.user(&user))
                .arg(&token)
                .arg(user.to_string())
                .arg(chrono::Utc::now().timestamp_millis())
                .arg(self.settings.restore_min.as_millis() as u64)
                .arg(WAITING_TTL.as_secs())
                .invoke_async(conn)
                .await?
        };
        Ok(applied(answer))
    }
}
