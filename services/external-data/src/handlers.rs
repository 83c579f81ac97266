//! Records a delivery for every ReservationCompleted. The handler never calls the platform: the
//! HTTP call happens in the delivery worker, so a slow or dead platform cannot hold up (or make
//! redeliver) the events of this consumer.

use crate::{domain::DeliveryId, store};
use contracts::{Event, ReservationCompleted};
use messaging::{HandleError, Handler, Incoming};
use sea_orm::DatabaseTransaction;

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

/// Consumes `ReservationCompleted` from the RESERVATION stream.
pub struct Completed;

impl Handler for Completed {
    fn handles(&self, kind: &str) -> bool {
        kind == ReservationCompleted::TYPE
    }

    async fn handle(&self, txn: &DatabaseTransaction, msg: &Incoming) -> Result<(), HandleError> {
        let event = msg.decode::<ReservationCompleted>()?;
        // The platform gets a stated projection, not the internal event: no queue token, and
        // fields a newer producer adds do not leak out unannounced.
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
        let created =
            store::insert_pending(txn, DeliveryId::new(), event.id, event.payload.reservation_id, payload)
                .await?;
        if created {
            tracing::debug!(event_id = %event.id, reservation_id = %event.payload.reservation_id, "delivery recorded");
        }
        Ok(())
    }
}
