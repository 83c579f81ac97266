//! Records a delivery for every ReservationCompleted. The handler never calls the platform: the
//! HTTP call happens in the delivery worker, so a slow or dead platform cannot hold up (or make
//! redeliver) the events of this consumer.

use crate::{domain::DeliveryId, store};
use contracts::{Event, ReservationCompleted};
use messaging::{HandleError, Handler, Incoming};
use sea_orm::DatabaseTransaction;

/// Consumes `ReservationCompleted` from the RESERVATION stream.
pub struct Completed;

impl Handler for Completed {
    fn handles(&self, kind: &str) -> bool {
        kind == ReservationCompleted::TYPE
    }

    async fn handle(&self, txn: &DatabaseTransaction, msg: &Incoming) -> Result<(), HandleError> {
        let event = msg.decode::<ReservationCompleted>()?;
        // The body is the payload re-encoded from the contract type, so the platform receives
        // exactly the documented fields whatever else a newer producer added.
        let payload = serde_json::to_value(&event.payload)
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
