//! Reactions to the reservation saga: pay, refund.

use crate::{
    NAME,
    domain::{self, PayDecision, PaymentStatus, RefundDecision},
    store,
};
use chrono::Utc;
use contracts::{
    Envelope, Event, PaymentCompleted, PaymentFailed, PaymentFailureReason, PaymentId, PaymentRefunded,
    PaymentRequested, RefundRequested,
};
use messaging::{HandleError, Handler, Incoming, Outbox};
use sea_orm::DatabaseTransaction;

/// Consumes `PaymentRequested` and `RefundRequested` from the RESERVATION stream.
pub struct Payments {
    pub outbox: Outbox,
}

impl Handler for Payments {
    fn handles(&self, kind: &str) -> bool {
        kind == PaymentRequested::TYPE || kind == RefundRequested::TYPE
    }

    async fn handle(&self, txn: &DatabaseTransaction, msg: &Incoming) -> Result<(), HandleError> {
        match msg.kind() {
            PaymentRequested::TYPE => self.pay(txn, msg.decode::<PaymentRequested>()?).await,
            RefundRequested::TYPE => self.refund(txn, msg.decode::<RefundRequested>()?).await,
            _ => Ok(()),
        }
    }
}

impl Payments {
    async fn pay(
        &self,
        txn: &DatabaseTransaction,
        req: Envelope<PaymentRequested>,
    ) -> Result<(), HandleError> {
        let p = &req.payload;
        let existing = store::payment_status(txn, p.reservation_id).await?;
        let failure = match domain::decide_payment(Utc::now(), p.pay_by, existing) {
            PayDecision::AlreadyDecided => return Ok(()),
            PayDecision::Refuse(reason) => Some(reason),
            PayDecision::Debit => match store::debit(txn, p.user_id, p.amount).await? {
                None => Some(PaymentFailureReason::InsufficientBalance),
                Some(balance) => {
                    let payment_id = PaymentId::new();
                    let done = PaymentCompleted {
                        payment_id,
                        reservation_id: p.reservation_id,
                        user_id: p.user_id,
                        amount: p.amount,
                        balance,
                    };
                    let done = self
                        .outbox
                        .row(&Envelope::new(NAME, p.reservation_id, done).caused_by(&req.meta()))?;
                    let payment = store::Payment {
                        id: payment_id,
                        reservation: p.reservation_id,
                        user: p.user_id,
                        amount: p.amount,
                        status: PaymentStatus::Completed,
                    };
                    store::insert_payment(txn, &payment, &self.outbox, &[done]).await?;
                    None
                }
            },
        };
        if let Some(reason) = failure {
            let failed = PaymentFailed {
                reservation_id: p.reservation_id,
                user_id: p.user_id,
                amount: p.amount,
                reason,
            };
            self.outbox
                .push(txn, &Envelope::new(NAME, p.reservation_id, failed).caused_by(&req.meta()))
                .await?;
        }
        Ok(())
    }

    async fn refund(
        &self,
        txn: &DatabaseTransaction,
        req: Envelope<RefundRequested>,
    ) -> Result<(), HandleError> {
        let p = &req.payload;
        let existing = store::payment_status(txn, p.reservation_id).await?;
        match domain::decide_refund(existing) {
            RefundDecision::Nothing => Ok(()),
            RefundDecision::Void => {
                let void = store::Payment {
                    id: PaymentId::new(),
                    reservation: p.reservation_id,
                    user: p.user_id,
                    amount: contracts::Won(0),
                    status: PaymentStatus::Voided,
                };
                store::insert_payment(txn, &void, &self.outbox, &[]).await?;
                Ok(())
            }
            RefundDecision::Refund => {
                let Some((payment_id, user_id, amount)) = store::mark_refunded(txn, p.reservation_id).await?
                else {
                    return Ok(());
                };
                let balance = store::credit(txn, user_id, amount).await?;
                let refunded = PaymentRefunded {
                    payment_id,
                    reservation_id: p.reservation_id,
                    user_id,
                    amount,
                    balance,
                };
                self.outbox
                    .push(txn, &Envelope::new(NAME, p.reservation_id, refunded).caused_by(&req.meta()))
                    .await?;
                Ok(())
            }
        }
    }
}
