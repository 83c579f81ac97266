//! Reactions to the reservation saga: start a card payment, give one back.

use crate::{decide_and_save, domain, store};
use contracts::{CardPaymentRequested, CardRefundRequested, Event, PaymentId};
use messaging::{HandleError, Handler, Incoming, Outbox};
use sea_orm::DatabaseTransaction;

/// Consumes `CardPaymentRequested` and `CardRefundRequested` from the RESERVATION stream.
pub struct Requests {
    pub outbox: Outbox,
    /// Tells the gateway worker a payment is due now.
    pub wake: std::sync::Arc<tokio::sync::Notify>,
}

impl Handler for Requests {
    fn handles(&self, kind: &str) -> bool {
        kind == CardPaymentRequested::TYPE || kind == CardRefundRequested::TYPE
    }

    fn after_commit(&self, _: &Incoming) {
        self.wake.notify_one();
    }

    async fn handle(&self, txn: &DatabaseTransaction, msg: &Incoming) -> Result<(), HandleError> {
        match msg.kind() {
            CardPaymentRequested::TYPE => {
                let req = msg.decode::<CardPaymentRequested>()?.payload;
                if req.amount.0 <= 0 {
                    return Err(HandleError::Permanent(format!("a card payment of {} won", req.amount.0)));
                }
                // A new attempt for every request (a buyer whose card was declined pays again):
                // the inbox applies each request once.
                let payment = domain::Payment {
                    id: PaymentId::new(),
                    reservation_id: req.reservation_id,
                    user_id: req.user_id,
                    amount: req.amount,
                    pay_by: req.pay_by,
                    status: domain::Status::New,
                    gateway_id: None,
                    checkout_url: None,
                    refund_wanted: false,
                    attempts: 0,
                    failure_reason: None,
                };
                store::insert(txn, &payment).await?;
                Ok(())
            }
            CardRefundRequested::TYPE => {
                let envelope = msg.decode::<CardRefundRequested>()?;
                let meta = envelope.meta();
                for p in store::live_of_reservation(txn, envelope.payload.reservation_id).await? {
                    let input = domain::Input::RefundRequested;
                    decide_and_save(txn, &self.outbox, &p, input, Some(&meta)).await?;
                }
                Ok(())
            }
            other => Err(HandleError::Permanent(format!("not an event for card payments: {other}"))),
        }
    }
}
