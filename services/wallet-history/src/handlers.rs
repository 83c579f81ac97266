//! Wallet events become history entries.

use crate::store::{self, Entry, Kind};
use contracts::{ChargeCompleted, Event, PaymentCompleted, PaymentRefunded};
use messaging::{HandleError, Handler, Incoming};
use sea_orm::DatabaseTransaction;

/// Consumes the WALLET stream's balance changes.
pub struct History;

impl Handler for History {
    fn handles(&self, kind: &str) -> bool {
        [ChargeCompleted::TYPE, PaymentCompleted::TYPE, PaymentRefunded::TYPE].contains(&kind)
    }

    async fn handle(&self, txn: &DatabaseTransaction, msg: &Incoming) -> Result<(), HandleError> {
        let (id, at) = (msg.envelope.id, msg.envelope.occurred_at);
        let entry = match msg.kind() {
            ChargeCompleted::TYPE => {
                let e = msg.decode::<ChargeCompleted>()?.payload;
                Entry {
                    id,
                    user_id: e.user_id,
                    kind: Kind::Charge,
                    amount: e.amount,
                    balance_after: e.balance,
                    reservation_id: None,
                    at,
                }
            }
            PaymentCompleted::TYPE => {
                let e = msg.decode::<PaymentCompleted>()?.payload;
                Entry {
                    id,
                    user_id: e.user_id,
                    kind: Kind::Payment,
                    amount: e.amount,
                    balance_after: e.balance,
                    reservation_id: Some(e.reservation_id),
                    at,
                }
            }
            _ => {
                let e = msg.decode::<PaymentRefunded>()?.payload;
                Entry {
                    id,
                    user_id: e.user_id,
                    kind: Kind::Refund,
                    amount: e.amount,
                    balance_after: e.balance,
                    reservation_id: Some(e.reservation_id),
                    at,
                }
            }
        };
        store::append(txn, &entry).await?;
        Ok(())
    }
}
