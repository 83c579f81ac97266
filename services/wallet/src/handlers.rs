//! Reactions to the reservation saga: pay, refund.

use crate::{
    NAME,
    domain::{self, PayDecision, PaymentStatus, RefundDecision},
    store,
};
use chrono::Utc;
use contracts::{
    Envelope, EnvelopeMeta, Event, PaymentCompleted, PaymentFailed, PaymentId, PaymentRefunded,
    PaymentRequested, RefundRequested, ReservationId, Won,
};
use messaging::{Answered, HandleError, InboxClaims, Incoming, Or, Outbox, Reacting, Reaction, Split, react};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction};

/// Consumes `PaymentRequested` and `RefundRequested` from the RESERVATION stream, writing to
/// `outbox`.
pub fn payments(outbox: Outbox) -> Or<Reacting<Pay>, Reacting<Refund>> {
    react(Pay { outbox: outbox.clone() }).or(react(Refund { outbox }))
}

/// Pays a reservation from its user's wallet, once, in time, never below zero.
pub struct Pay {
    pub outbox: Outbox,
}

/// What a payment asked for comes to: a debit and the payment recorded, announced by
/// `PaymentCompleted` (whose balance the statement fills in), or `PaymentFailed`.
pub type Payment = Answered<store::Payment>;

impl Reaction for Pay {
    type Asked = Envelope<PaymentRequested>;
    /// The reservation's payment and the wallet's balance, both locked.
    type Found = (Option<PaymentStatus>, Won);
    type Plan = Payment;

    fn handles(&self, kind: &str) -> bool {
        kind == PaymentRequested::TYPE
    }

    /// A payment of nothing, or of less, is no payment the saga asks for: a malformed event.
    fn asked(&self, msg: &Incoming) -> Result<Self::Asked, HandleError> {
        let req = msg.decode::<PaymentRequested>()?;
        domain::payable(req.payload.amount).map_err(HandleError::Permanent)?;
        Ok(req)
    }

    /// A payment asked for in time, of another wallet and reservation than the batch's earlier
    /// ones: the statement's guard pays it if the wallet covers it and the reservation has no
    /// payment yet. What it leaves is decided on the rows as locked.
    async fn assume(
        &self,
        _: &DatabaseConnection,
        req: &Self::Asked,
        earlier: &[(i64, Payment)],
    ) -> Result<Option<Payment>, HandleError> {
        let p = &req.payload;
        let named = earlier
            .iter()
            .filter_map(|(_, plan)| plan.change())
            .any(|payment| payment.user == p.user_id || payment.reservation == p.reservation_id);
        if named || !domain::in_time(Utc::now(), p.pay_by) {
            return Ok(None);
        }
        Ok(Some(self.pay(req)?))
    }

    async fn load(
        &self,
        txn: &DatabaseTransaction,
        req: &Self::Asked,
        _: &Incoming,
    ) -> Result<Self::Found, HandleError> {
        let p = &req.payload;
        let existing = store::payment_status(txn, p.reservation_id).await?;
        Ok((existing, store::balance_for_update(txn, p.user_id).await?))
    }

    fn decide(
        &self,
        req: &Self::Asked,
        (existing, balance): Self::Found,
    ) -> Result<Option<Payment>, HandleError> {
        let p = &req.payload;
        match domain::decide_payment(Utc::now(), p.pay_by, existing, balance, p.amount) {
            PayDecision::AlreadyDecided => Ok(None),
            PayDecision::Debit { .. } => Ok(Some(self.pay(req)?)),
            PayDecision::Refuse(reason) => {
                let failed = PaymentFailed {
                    reservation_id: p.reservation_id,
                    user_id: p.user_id,
                    amount: p.amount,
                    reason,
                };
                let failed =
                    self.outbox.row(&Envelope::new(NAME, p.reservation_id, failed).caused_by(&req.meta()))?;
                Ok(Some(Payment::Refused { announced: failed }))
            }
        }
    }

    async fn save<C: ConnectionTrait>(
        &self,
        db: &C,
        plans: Vec<(i64, Payment)>,
        claims: Option<&InboxClaims<'_>>,
    ) -> Result<Vec<i64>, HandleError> {
        let Split { changes, announced, refused } = Answered::split(&plans);
        let paid = store::pay_each(db, &changes, &self.outbox, announced, claims).await?;
        messaging::refusals(db, &self.outbox, refused, claims, paid).await
    }
}

impl Pay {
    /// The completed payment `req` asks for, and its announcement (whose balance the statement
    /// fills in).
    fn pay(&self, req: &Envelope<PaymentRequested>) -> Result<Payment, HandleError> {
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
            balance: Won(0),
        };
        let completed =
            self.outbox.row(&Envelope::new(NAME, p.reservation_id, done).caused_by(&req.meta()))?;
        Ok(Payment::Change { change: payment, announced: completed })
    }
}

/// Gives a reservation's payment back, once; a reservation not paid for is voided, so that a
/// late payment cannot debit.
pub struct Refund {
    pub outbox: Outbox,
}

/// What a refund asked for comes to.
pub enum Refunding {
    /// Give the completed payment back to its wallet, announced as caused by the request.
    Refund { reservation: ReservationId, cause: EnvelopeMeta },
    /// Record that the reservation has no payment and never will.
    Void(store::Payment),
}

impl Reaction for Refund {
    type Asked = Envelope<RefundRequested>;
    /// The reservation's payment, locked.
    type Found = Option<PaymentStatus>;
    type Plan = Refunding;

    fn handles(&self, kind: &str) -> bool {
        kind == RefundRequested::TYPE
    }

    fn asked(&self, msg: &Incoming) -> Result<Self::Asked, HandleError> {
        msg.decode::<RefundRequested>()
    }

    async fn load(
        &self,
        txn: &DatabaseTransaction,
        req: &Self::Asked,
        _: &Incoming,
    ) -> Result<Self::Found, HandleError> {
        Ok(store::payment_status(txn, req.payload.reservation_id).await?)
    }

    fn decide(&self, req: &Self::Asked, existing: Self::Found) -> Result<Option<Refunding>, HandleError> {
        let p = &req.payload;
        Ok(match domain::decide_refund(existing) {
            RefundDecision::Nothing => None,
            RefundDecision::Refund => {
                Some(Refunding::Refund { reservation: p.reservation_id, cause: req.meta() })
            }
            RefundDecision::Void => Some(Refunding::Void(store::Payment {
                id: PaymentId::new(),
                reservation: p.reservation_id,
                user: p.user_id,
                amount: Won(0),
                status: PaymentStatus::Voided,
            })),
        })
    }

    /// Statement by statement: only ever saved in the transaction that locked the payment (no
    /// refund is assumed).
    async fn save<C: ConnectionTrait>(
        &self,
        db: &C,
        plans: Vec<(i64, Refunding)>,
        _: Option<&InboxClaims<'_>>,
    ) -> Result<Vec<i64>, HandleError> {
        let mut applied = Vec::new();
        for (position, plan) in plans {
            match plan {
                Refunding::Void(void) => store::insert_payment(db, &void, &self.outbox, &[]).await?,
                Refunding::Refund { reservation, cause } => {
                    let Some((payment_id, user_id, amount)) = store::mark_refunded(db, reservation).await?
                    else {
                        continue;
                    };
                    let balance = store::credit(db, user_id, amount).await?;
                    let refunded =
                        PaymentRefunded { payment_id, reservation_id: reservation, user_id, amount, balance };
                    self.outbox
                        .push(db, &Envelope::new(NAME, reservation, refunded).caused_by(&cause))
                        .await?;
                }
            }
            applied.push(position);
        }
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use super::*;
    use contracts::{ReservationId, UserId};
    use messaging::{Applied, Apply as _, Handler as _, PgInbox};

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
        let outbox = Outbox::new(crate::SCHEMA, env.ns.clone());
        let handler = payments(outbox.clone());
        let batch = [pay(rich, 300), pay(poor, 100), pay(rich, 200)];
        let claims = InboxClaims::new(crate::SCHEMA, INBOX, batch.iter().map(|m| m.envelope.id.0).collect());
        // The poor wallet does not cover its payment; the second payment from the rich wallet
        // is left to the transaction.
        assert_eq!(handler.at_once_each(&db, &claims, &batch).await.unwrap(), [1]);
        assert_eq!(store::balance(&db, rich).await.unwrap(), Won(700));
        let completed = PaymentCompleted::TYPE.to_owned();
        assert_eq!(announced(&env).await, [(completed.clone(), Some(700))]);

        // Delivered again: the first is a duplicate, the others are decided in one transaction.
        let inbox = PgInbox::publishing(db.clone(), &outbox, handler);
        let outcomes: Vec<Applied> =
            inbox.apply_batch(INBOX, &batch).await.into_iter().map(Result::unwrap).collect();
        assert_eq!(outcomes, [Applied::Duplicate, Applied::Done, Applied::Done]);
        assert_eq!(store::balance(&db, rich).await.unwrap(), Won(500));
        assert_eq!(store::balance(&db, poor).await.unwrap(), Won(50));
        let kinds: Vec<String> = announced(&env).await.into_iter().map(|(kind, _)| kind).collect();
        assert_eq!(kinds, [completed.clone(), PaymentFailed::TYPE.to_owned(), completed]);
    }
}
