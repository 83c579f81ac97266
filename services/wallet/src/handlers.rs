//! Reactions to the reservation saga: pay, refund.

use crate::{
    NAME,
    domain::{self, PayDecision, PaymentStatus, RefundDecision},
    store,
};
use chrono::Utc;
use contracts::{
    Envelope, Event, PaymentCompleted, PaymentFailed, PaymentFailureReason, PaymentId, PaymentRefunded,
    PaymentRequested, RefundRequested, Won,
};
use messaging::{HandleError, Handler, InboxClaim, Incoming, Outbox};
use sea_orm::{DatabaseConnection, DatabaseTransaction};

/// Consumes `PaymentRequested` and `RefundRequested` from the RESERVATION stream.
pub struct Payments {
    pub outbox: Outbox,
}

impl Handler for Payments {
    fn handles(&self, kind: &str) -> bool {
        kind == PaymentRequested::TYPE || kind == RefundRequested::TYPE
    }

    /// A payment the balance covers, asked for in time, is one statement.
    async fn at_once(
        &self,
        db: &DatabaseConnection,
        claim: &InboxClaim<'_>,
        msg: &Incoming,
    ) -> Result<bool, HandleError> {
        if msg.kind() != PaymentRequested::TYPE {
            return Ok(false);
        }
        let req = msg.decode::<PaymentRequested>()?;
        if domain::decide_payment(Utc::now(), req.payload.pay_by, None) != PayDecision::Debit {
            return Ok(false);
        }
        // The balance in the event is the one the statement leaves.
        let (payment, completed) = self.completed(&req, Won(0))?;
        Ok(store::pay_at_once(db, &payment, &self.outbox, &completed, claim).await?.is_some())
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
    /// The completed payment of `req` and its announcement, with the balance after it.
    fn completed(
        &self,
        req: &Envelope<PaymentRequested>,
        balance: Won,
    ) -> Result<(store::Payment, messaging::OutboxRow), HandleError> {
        let p = &req.payload;
        let payment = store::Payment {
            id: PaymentId::new(),
            reservation: p.reservation_id,
            user: p.user_id,
            amount: p.amount,
            status: PaymentStatus::Completed,
        };
        let done = PaymentCompleted {
            payment_id: payment.id,
            reservation_id: p.reservation_id,
            user_id: p.user_id,
            amount: p.amount,
            balance,
        };
        let done = self.outbox.row(&Envelope::new(NAME, p.reservation_id, done).caused_by(&req.meta()))?;
        Ok((payment, done))
    }

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
                    let (payment, done) = self.completed(&req, balance)?;
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
