//! Reactions to the saga: a completed reservation spends its token; one that failed through no
//! doing of its user restores it. And to the catalog and the seats: a new schedule may have a
//! room (opening when its sale does), and a sold-out or cancelled one closes it.

use crate::Settings;
use crate::{
    scripts::{CLOSE, COMPLETE, RESTORE, SCHEDULE, USER_STATUS},
    store::{RETENTION, WAITING_TTL},
};
use contracts::{
    Event, ReservationCompleted, ReservationFailed, ReservationFailureReason, ScheduleCancelled,
    ScheduleChanged, ScheduleCreated, SoldOut, UserStatus, UserStatusChanged,
};
use messaging::{Applied, HandleError, InboxKey, Incoming, RedisHandler, applied};
use platform::queue_guard::QueueKeys;

/// Consumes ReservationCompleted and ReservationFailed from the RESERVATION stream,
/// ScheduleCreated, ScheduleChanged and ScheduleCancelled from CATALOG, SoldOut from SEAT and
/// UserStatusChanged from USER.
#[derive(Clone)]
pub struct Tokens {
    pub keys: QueueKeys,
    pub settings: Settings,
}

impl RedisHandler for Tokens {
    fn handles(&self, kind: &str) -> bool {
        [
            ReservationCompleted::TYPE,
            ReservationFailed::TYPE,
            ScheduleCreated::TYPE,
            ScheduleChanged::TYPE,
            ScheduleCancelled::TYPE,
            SoldOut::TYPE,
            UserStatusChanged::TYPE,
        ]
        .contains(&kind)
    }

    async fn handle(
        &self,
        conn: &mut platform::pools::Redis,
        inbox: &InboxKey,
        msg: &Incoming,
    ) -> Result<Applied, HandleError> {
        let (token, user, ended) = match msg.kind() {
            ScheduleCreated::TYPE | ScheduleChanged::TYPE => {
                let (schedule, opens) = if msg.kind() == ScheduleCreated::TYPE {
                    let e = msg.decode::<ScheduleCreated>()?.payload;
                    (e.schedule_id, e.sales_open_at)
                } else {
                    let e = msg.decode::<ScheduleChanged>()?.payload;
                    (e.schedule_id, e.sales_open_at)
                };
                let opens = opens.map(|t| t.timestamp_millis().to_string()).unwrap_or_default();
                let answer: i64 = SCHEDULE
                    .prepare(inbox)
                    .key(&self.keys.schedules)
                    .key(&self.keys.room(Some(schedule)).sale)
                    .arg(schedule.to_string())
                    .arg(opens)
                    .arg(uuid::Uuid::new_v4().simple().to_string())
                    .invoke_async(conn)
                    .await?;
                return Ok(applied(answer));
            }
            ScheduleCancelled::TYPE => {
                let e = msg.decode::<ScheduleCancelled>()?.payload;
                return self.close(conn, inbox, e.schedule_id, e.cancelled_at, true).await;
            }
            SoldOut::TYPE => {
                let e = msg.decode::<SoldOut>()?.payload;
                return self.close(conn, inbox, e.schedule_id, e.sold_out_at, false).await;
            }
            UserStatusChanged::TYPE => {
                let e = msg.decode::<UserStatusChanged>()?.payload;
                let status = if e.status == UserStatus::Blocked { "BLOCKED" } else { "ACTIVE" };
                let answer: i64 = USER_STATUS
                    .prepare(inbox)
                    .key(&self.keys.blocked)
                    .key(&self.keys.rooms)
                    .arg(e.user_id.to_string())
                    .arg(status)
                    .arg(self.keys.prefix())
                    .arg(RETENTION.as_secs())
                    .invoke_async(conn)
                    .await?;
                return Ok(applied(answer));
            }
            ReservationCompleted::TYPE => {
                let e = msg.decode::<ReservationCompleted>()?.payload;
                (e.queue_token, e.user_id, Ended::Completed)
            }
            _ => {
                let e = msg.decode::<ReservationFailed>()?.payload;
                (e.queue_token, e.user_id, Ended::Failed { restore: restores(e.reason) })
            }
        };
        // Reservations made with the development bypass carry no token.
        if uuid::Uuid::parse_str(&token).is_err() {
            return Ok(Applied::Ignored);
        }
        let token_key = self.keys.token(&token);
        let answer: i64 = match ended {
            Ended::Completed => {
                COMPLETE
                    .prepare(inbox)
                    .key(&token_key)
                    .arg(&token)
                    .arg(user.to_string())
                    .arg(RETENTION.as_secs())
                    .arg(self.keys.prefix())
                    .invoke_async(conn)
                    .await?
            }
            Ended::Failed { restore } => {
                RESTORE
                    .prepare(inbox)
                    .key(&token_key)
                    .arg(&token)
                    .arg(user.to_string())
                    .arg(chrono::Utc::now().timestamp_millis())
                    .arg(self.settings.restore_min.as_millis() as u64)
                    .arg(WAITING_TTL.as_secs())
                    .arg(u8::from(restore))
                    .arg(self.keys.prefix())
                    .invoke_async(conn)
                    .await?
            }
        };
        Ok(applied(answer))
    }
}

impl Tokens {
    /// Closes the room of `schedule`'s sale (sold out, or cancelled and then forgotten).
    async fn close(
        &self,
        conn: &mut platform::pools::Redis,
        inbox: &InboxKey,
        schedule: contracts::ScheduleId,
        at: chrono::DateTime<chrono::Utc>,
        forget: bool,
    ) -> Result<Applied, HandleError> {
        let room = self.keys.room(Some(schedule));
        let answer: i64 = CLOSE
            .prepare(inbox)
            .key(&room.sold_out)
            .key(&room.waiting)
            .key(&room.active)
            .key(&room.rooms)
            .key(&room.schedules)
            .arg(schedule.to_string())
            .arg(at.timestamp_millis())
            .arg(2 * WAITING_TTL.as_secs())
            .arg(if forget { "1" } else { "" })
            .invoke_async(conn)
            .await?;
        Ok(applied(answer))
    }
}

/// How the reservation that held a token ended.
enum Ended {
    /// It was paid for: the token is spent.
    Completed,
    /// It failed; `restore` when not through its user's doing ([`restores`]).
    Failed { restore: bool },
}

/// Whether a reservation that failed for `reason` restores its queue token. A user who cancels
/// or lets the hold run out keeps the token as it is (its active time running on, or spent):
/// giving it time back, or a place at the head of the queue, would make cancelling a way to
/// stay admitted longer than everyone else. A seat lost to another user, a payment the wallet
/// refused, a sale not open yet or a saga that timed out are not the user's doing: the token
/// gets its time back. A blocked user's token gets nothing back either (it could book nothing
/// with it), nor does a token of a cancelled schedule, whose room is closed.
fn restores(reason: ReservationFailureReason) -> bool {
    match reason {
        ReservationFailureReason::Cancelled
        | ReservationFailureReason::Expired
        | ReservationFailureReason::UserBlocked
        | ReservationFailureReason::ScheduleCancelled => false,
        ReservationFailureReason::SeatUnavailable
        | ReservationFailureReason::NotOnSale
        | ReservationFailureReason::PaymentFailed
        | ReservationFailureReason::Timeout => true,
    }
}
