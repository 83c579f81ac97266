//! Records a delivery for every ReservationCompleted. The handler never calls the platform: the
//! HTTP call happens in the delivery worker, so a slow or dead platform cannot hold up (or make
//! redeliver) the events of this consumer.

use crate::{domain::DeliveryId, store};
use contracts::{Event, ReservationCompleted};
use messaging::{HandleError, InboxClaims, Incoming, Reaction};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction};

/// What the external platform receives for one completed reservation (camelCase JSON).
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletedReservation {
    pub reservation_id: contracts::ReservationId,
    pub user_id: contracts::UserId,
    pub concert_id: contracts::ConcertId,
    pub schedule_id: contracts::ScheduleId,
    pub seat_nos: Vec<contracts::SeatNo>,
    pub amount: contracts::Won,
    pub completed_at: chrono::DateTime<chrono::Utc>,
}

/// Consumes `ReservationCompleted` from the RESERVATION stream: each is a delivery, whatever the
/// tables hold (a second one of the same event changes nothing).
pub struct Completed;

impl Reaction for Completed {
    type Asked = store::Pending;
    type Found = ();
    type Plan = store::Pending;

    fn handles(&self, kind: &str) -> bool {
        kind == ReservationCompleted::TYPE
    }

    fn asked(&self, msg: &Incoming) -> Result<store::Pending, HandleError> {
        pending(msg)
    }

    async fn assume(
        &self,
        _: &DatabaseConnection,
        pending: &store::Pending,
        _: &[(i64, store::Pending)],
    ) -> Result<Option<store::Pending>, HandleError> {
        Ok(Some(pending.clone()))
    }

    async fn load(
        &self,
        _: &DatabaseTransaction,
        _: &store::Pending,
        _: &Incoming,
    ) -> Result<(), HandleError> {
        Ok(())
    }

    fn decide(&self, pending: &store::Pending, (): ()) -> Result<Option<store::Pending>, HandleError> {
        Ok(Some(pending.clone()))
    }

    async fn save<C: ConnectionTrait>(
        &self,
        db: &C,
        deliveries: Vec<(i64, store::Pending)>,
        claims: Option<&InboxClaims<'_>>,
    ) -> Result<Vec<i64>, HandleError> {
        Ok(store::insert_pending_each(db, &deliveries, claims).await?)
    }
}

/// The delivery a ReservationCompleted makes. The platform gets a stated projection, not the
/// internal event: no queue token, and fields a newer producer adds do not leak out unannounced.
fn pending(msg: &Incoming) -> Result<store::Pending, HandleError> {
    let event = msg.decode::<ReservationCompleted>()?;
    let p = &event.payload;
    let body = CompletedReservation {
        reservation_id: p.reservation_id,
        user_id: p.user_id,
        concert_id: p.concert_id,
        schedule_id: p.schedule_id,
        seat_nos: p.seat_nos.clone(),
        amount: p.amount,
        completed_at: event.occurred_at,
    };
    let payload = serde_json::to_value(&body)
        .map_err(|e| HandleError::Permanent(format!("cannot encode the payload: {e}")))?;
    Ok(store::Pending { id: DeliveryId::new(), event: event.id, reservation: p.reservation_id, payload })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use super::*;
    use contracts::{ConcertId, Envelope, ReservationId, ScheduleId, SeatNo, UserId, Won};
    use messaging::{Applied, Apply as _, Handler as _, PgInbox, react};

    const INBOX: &str = "external-data__RESERVATION";

    fn completed() -> Incoming {
        let r = ReservationId::new();
        let e = ReservationCompleted {
            reservation_id: r,
            user_id: UserId::new(),
            concert_id: ConcertId::new(),
            schedule_id: ScheduleId::new(),
            seat_nos: vec![SeatNo(7)],
            amount: Won(90_000),
            queue_token: "qt".to_owned(),
        };
        Incoming::first_delivery(&Envelope::new("reservation", r, e)).unwrap()
    }

    #[tokio::test]
    async fn a_batch_is_recorded_in_one_statement_once_and_a_malformed_event_is_left_to_fail_alone() {
        let env = testkit::TestEnv::new().await.unwrap();
        let mut malformed = completed();
        malformed.envelope.payload["seatNos"] = "seven".into();
        let batch = [completed(), malformed, completed()];
        let claims = InboxClaims::new(crate::SCHEMA, INBOX, batch.iter().map(|m| m.envelope.id.0).collect());
        assert_eq!(react(Completed).at_once_each(&env.db, &claims, &batch).await.unwrap(), [1, 3]);
        let recorded = |env: &testkit::TestEnv| {
            let db = env.db.clone();
            async move {
                let mut events: Vec<uuid::Uuid> =
                    store::list(&db, None, None, 10).await.unwrap().iter().map(|d| d.event_id.0).collect();
                events.sort();
                events
            }
        };
        let mut expected = vec![batch[0].envelope.id.0, batch[2].envelope.id.0];
        expected.sort();
        assert_eq!(recorded(&env).await, expected);

        // Delivered again: nothing is recorded twice, and the malformed event fails on its own,
        // permanently (the consumer dead-letters it).
        let outcomes =
            PgInbox::new(env.db.clone(), crate::SCHEMA, react(Completed)).apply_batch(INBOX, &batch).await;
        assert!(matches!(outcomes[0], Ok(Applied::Duplicate)), "{outcomes:?}");
        assert!(matches!(outcomes[1], Err(HandleError::Permanent(_))), "{outcomes:?}");
        assert!(matches!(outcomes[2], Ok(Applied::Duplicate)), "{outcomes:?}");
        assert_eq!(recorded(&env).await, expected);
    }
}
