//! Reactions to the reservation saga: pay, refund.

use crate::{
    NAME,
    domain::{self, PayDecision, PaymentStatus, RefundDecision},
    store,
};
use chrono::Utc;
use contracts::{
    Envelope, Event, PaymentCompleted, PaymentFailed, PaymentId, PaymentRefunded, PaymentRequested,
    RefundRequested, Won,
};
use messaging::{HandleError, Handler, InboxClaims, Incoming, Outbox};
use sea_orm::{DatabaseConnection, DatabaseTransaction};
use std::collections::HashSet;

/// Consumes `PaymentRequested` and `RefundRequested` from the RESERVATION stream.
pub struct Payments {
    pub outbox: Outbox,
}

impl Handler for Payments {
    fn handles(&self, kind: &str) -> bool {
        kind == PaymentRequested::TYPE || kind == RefundRequested::TYPE
    }

    /// The payments of a batch (or a single one) that the balance covers, asked for in time,
    /// each of another wallet and reservation, are one statement; the rest goes the way of
    /// [`Handler::handle`].
    async fn at_once_each(
        &self,
        db: &DatabaseConnection,
        claims: &InboxClaims<'_>,
        msgs: &[Incoming],
    ) -> Result<Vec<i64>, HandleError> {
        let now = Utc::now();
        let (mut named, mut payments, mut events) = (HashSet::new(), Vec::new(), Vec::new());
        for (position, msg) in (1i64..).zip(msgs) {
            if msg.kind() != PaymentRequested::TYPE {
                continue;
            }
            let Ok(req) = msg.decode::<PaymentRequested>() else { continue };
            let p = &req.payload;
            // In time, and each of another wallet and reservation: the statement's guard then
            // pays it if the wallet covers it and the reservation has no payment yet; what it
            // leaves is decided in the transaction, on the rows as locked.
            if !domain::in_time(now, p.pay_by)
                || domain::payable(p.amount).is_err()
                || named.contains(&p.user_id.0)
                || named.contains(&p.reservation_id.0)
            {
                continue;
            }
            named.extend([p.user_id.0, p.reservation_id.0]);
            // The balance in the event is the one the statement leaves.
            let (payment, completed) = self.completed(&req, Won(0))?;
            payments.push((position, payment));
            events.push((position, completed));
        }
        let events: Vec<_> = events.iter().map(|(i, e)| (*i, e)).collect();
        Ok(store::pay_each_at_once(db, &payments, &self.outbox, &events, claims).await?)
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
        // A payment of nothing, or of less, is no payment the saga asks for: a malformed event.
        domain::payable(p.amount).map_err(HandleError::Permanent)?;
        let existing = store::payment_status(txn, p.reservation_id).await?;
        let balance = store::balance_for_update(txn, p.user_id).await?;
        let failure = match domain::decide_payment(Utc::now(), p.pay_by, existing, balance, p.amount) {
            PayDecision::AlreadyDecided => return Ok(()),
            PayDecision::Refuse(reason) => Some(reason),
            PayDecision::Debit { balance_after } => {
                // The wallet is locked: the guard holds, and the balance is the one decided.
                let balance = store::debit(txn, p.user_id, p.amount).await?.ok_or_else(|| {
                    HandleError::from(sea_orm::DbErr::Custom(
                        "a locked wallet changed under its debit".into(),
                    ))
                })?;
                debug_assert_eq!(balance, balance_after);
                let (payment, done) = self.completed(&req, balance)?;
                store::insert_payment(txn, &payment, &self.outbox, &[done]).await?;
                None
            }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use super::*;
    use contracts::{ReservationId, UserId};
    use messaging::{Applied, Apply as _, PgInbox};

    const INBOX: &str = "wallet__RESERVATION";

    fn pay(user: UserId, amount: i64) -> Incoming {
        let r = ReservationId::new();
        let e = PaymentRequested {
            reservation_id: r,
            user_id: user,
            amount: Won(amount),
            pay_by: Utc::now() + chrono::Duration::minutes(1),
        };
        Incoming::first_delivery(&Envelope::new("reservation", r, e)).unwrap()
    }

    /// `(type, balance)` of each outbox row, in order (`balance` of a PaymentCompleted).
    async fn announced(env: &testkit::TestEnv) -> Vec<(String, Option<i64>)> {
        let envelopes = env.outbox_envelopes(crate::SCHEMA).await.unwrap();
        envelopes
            .iter()
            .map(|e| (e["type"].as_str().unwrap().to_owned(), e["payload"]["balance"].as_i64()))
            .collect()
    }

    #[tokio::test]
    async fn a_batch_pays_at_once_what_each_wallet_covers_once_and_the_rest_in_a_transaction() {
        let env = testkit::TestEnv::new().await.unwrap();
        let db = env.db.clone();
        let (rich, poor) = (UserId::new(), UserId::new());
        store::credit(&db, rich, Won(1_000)).await.unwrap();
        store::credit(&db, poor, Won(50)).await.unwrap();
        let handler = Payments { outbox: Outbox::new(crate::SCHEMA, env.ns.clone()) };
        let batch = [pay(rich, 300), pay(poor, 100), pay(rich, 200)];
        let claims = InboxClaims::new(crate::SCHEMA, INBOX, batch.iter().map(|m| m.envelope.id.0).collect());
        // The poor wallet does not cover its payment; the second payment from the rich wallet
        // is left to the transaction.
        assert_eq!(handler.at_once_each(&db, &claims, &batch).await.unwrap(), [1]);
        assert_eq!(store::balance(&db, rich).await.unwrap(), Won(700));
        let completed = PaymentCompleted::TYPE.to_owned();
        assert_eq!(announced(&env).await, [(completed.clone(), Some(700))]);

        // Delivered again: the first is a duplicate, the others are decided in one transaction.
        let inbox = PgInbox::publishing(db.clone(), &handler.outbox.clone(), handler);
        let outcomes: Vec<Applied> =
            inbox.apply_batch(INBOX, &batch).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(outcomes, [Applied::Duplicate, Applied::Done, Applied::Done]);
        assert_eq!(store::balance(&db, rich).await.unwrap(), Won(500));
        assert_eq!(store::balance(&db, poor).await.unwrap(), Won(50));
        let kinds: Vec<String> = announced(&env).await.into_iter().map(|(kind, _)| kind).collect();
        assert_eq!(kinds, [completed.clone(), PaymentFailed::TYPE.to_owned(), completed]);
    }
}
