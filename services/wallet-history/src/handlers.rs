//! Wallet events become history entries.

use crate::store::{self, Entry, Kind};
use contracts::{ChargeCompleted, ChargeFailed, Event, PaymentCompleted, PaymentFailed, PaymentRefunded};
use messaging::{HandleError, InboxClaims, Incoming, Reaction};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction};

/// Consumes the WALLET stream's balance changes and refusals: each is an entry, whatever the
/// tables hold (a copy of an entry changes nothing).
pub struct History;

impl Reaction for History {
    type Asked = Entry;
    type Found = ();
    type Plan = Entry;

    fn handles(&self, kind: &str) -> bool {
        [
            ChargeCompleted::TYPE,
            PaymentCompleted::TYPE,
            PaymentRefunded::TYPE,
            ChargeFailed::TYPE,
            PaymentFailed::TYPE,
        ]
        .contains(&kind)
    }

    fn asked(&self, msg: &Incoming) -> Result<Entry, HandleError> {
        entry(msg)
    }

    async fn assume(
        &self,
        _: &DatabaseConnection,
        entry: &Entry,
        _: &[(i64, Entry)],
    ) -> Result<Option<Entry>, HandleError> {
        Ok(Some(entry.clone()))
    }

    async fn load(&self, _: &DatabaseTransaction, _: &Entry, _: &Incoming) -> Result<(), HandleError> {
        Ok(())
    }

    fn decide(&self, entry: &Entry, (): ()) -> Result<Option<Entry>, HandleError> {
        Ok(Some(entry.clone()))
    }

    async fn save<C: ConnectionTrait>(
        &self,
        db: &C,
        entries: Vec<(i64, Entry)>,
        claims: Option<&InboxClaims<'_>>,
    ) -> Result<Vec<i64>, HandleError> {
        Ok(store::append_each(db, &entries, claims).await?)
    }
}

/// A refusal's reason as the event spells it (`INSUFFICIENT_BALANCE`).
fn reason_code(reason: &impl serde::Serialize) -> Result<String, HandleError> {
    match serde_json::to_value(reason) {
        Ok(serde_json::Value::String(code)) => Ok(code),
        _ => Err(HandleError::Permanent("a refusal's reason is not a code".into())),
    }
}

/// The entry a wallet event makes.
fn entry(msg: &Incoming) -> Result<Entry, HandleError> {
    let (id, at) = (msg.envelope.id, msg.envelope.occurred_at);
    let entry = match msg.kind() {
        ChargeCompleted::TYPE => {
            let e = msg.decode::<ChargeCompleted>()?.payload;
            Entry {
                id,
                user_id: e.user_id,
                kind: Kind::Charge,
                amount: e.amount,
                balance_after: Some(e.balance),
                reservation_id: None,
                reason: None,
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
                balance_after: Some(e.balance),
                reservation_id: Some(e.reservation_id),
                reason: None,
                at,
            }
        }
        PaymentRefunded::TYPE => {
            let e = msg.decode::<PaymentRefunded>()?.payload;
            Entry {
                id,
                user_id: e.user_id,
                kind: Kind::Refund,
                amount: e.amount,
                balance_after: Some(e.balance),
                reservation_id: Some(e.reservation_id),
                reason: None,
                at,
            }
        }
        ChargeFailed::TYPE => {
            let e = msg.decode::<ChargeFailed>()?.payload;
            Entry {
                id,
                user_id: e.user_id,
                kind: Kind::ChargeFailed,
                amount: e.amount,
                balance_after: None,
                reservation_id: None,
                reason: Some(reason_code(&e.reason)?),
                at,
            }
        }
        PaymentFailed::TYPE => {
            let e = msg.decode::<PaymentFailed>()?.payload;
            Entry {
                id,
                user_id: e.user_id,
                kind: Kind::PaymentFailed,
                amount: e.amount,
                balance_after: None,
                reservation_id: Some(e.reservation_id),
                reason: Some(reason_code(&e.reason)?),
                at,
            }
        }
        other => return Err(HandleError::Permanent(format!("not a wallet balance change: {other}"))),
    };
    Ok(entry)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use super::*;
    use contracts::{ChargeId, Envelope, PaymentId, ReservationId, UserId, Won};
    use messaging::{Applied, Apply as _, HandleError, Handler as _, PgInbox, react};

    const INBOX: &str = "wallet-history__WALLET";

    #[tokio::test]
    async fn a_batch_is_appended_in_one_statement_once_and_a_malformed_event_is_left_to_fail_alone() {
        let env = testkit::TestEnv::new().await.unwrap();
        let (user, reservation) = (UserId::new(), ReservationId::new());
        let charge = ChargeCompleted {
            charge_id: ChargeId::new(),
            user_id: user,
            amount: Won(500),
            balance: Won(500),
        };
        let payment = PaymentCompleted {
            payment_id: PaymentId::new(),
            reservation_id: reservation,
            user_id: user,
            amount: Won(200),
            balance: Won(300),
        };
        let mut malformed =
            Incoming::first_delivery(&Envelope::new("wallet", reservation, payment.clone())).unwrap();
        malformed.envelope.payload["amount"] = "two hundred".into();
        let batch = [
            Incoming::first_delivery(&Envelope::new("wallet", user, charge)).unwrap(),
            malformed,
            Incoming::first_delivery(&Envelope::new("wallet", reservation, payment)).unwrap(),
        ];
        let claims = InboxClaims::new(crate::SCHEMA, INBOX, batch.iter().map(|m| m.envelope.id.0).collect());
        assert_eq!(react(History).at_once_each(&env.db, &claims, &batch).await.unwrap(), [1, 3]);
        let entries = store::page(&env.db, user, None, 10).await.unwrap();
        let seen: Vec<(Kind, Option<Won>, Option<ReservationId>)> =
            entries.iter().map(|e| (e.kind, e.balance_after, e.reservation_id)).collect();
        assert_eq!(
            seen,
            [(Kind::Payment, Some(Won(300)), Some(reservation)), (Kind::Charge, Some(Won(500)), None)]
        );

        // Delivered again: the batch statement fails on the inbox, nothing is added twice, and
        // the malformed event fails on its own, permanently (the consumer dead-letters it).
        let outcomes =
            PgInbox::new(env.db.clone(), crate::SCHEMA, react(History)).apply_batch(INBOX, &batch).await;
        assert!(matches!(outcomes[0], Ok(Applied::Duplicate)), "{outcomes:?}");
        assert!(matches!(outcomes[1], Err(HandleError::Permanent(_))), "{outcomes:?}");
        assert!(matches!(outcomes[2], Ok(Applied::Duplicate)), "{outcomes:?}");
        assert_eq!(store::page(&env.db, user, None, 10).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn refusals_are_entries_that_moved_no_balance_and_say_why() {
        let env = testkit::TestEnv::new().await.unwrap();
        let (user, reservation) = (UserId::new(), ReservationId::new());
        let charge = ChargeFailed {
            charge_id: ChargeId::new(),
            user_id: user,
            amount: Won(700),
            reason: contracts::ChargeFailureReason::BalanceLimit,
        };
        let payment = PaymentFailed {
            reservation_id: reservation,
            user_id: user,
            amount: Won(200),
            reason: contracts::PaymentFailureReason::InsufficientBalance,
        };
        let batch = [
            Incoming::first_delivery(&Envelope::new("wallet", user, charge)).unwrap(),
            Incoming::first_delivery(&Envelope::new("wallet", reservation, payment)).unwrap(),
        ];
        let claims = InboxClaims::new(crate::SCHEMA, INBOX, batch.iter().map(|m| m.envelope.id.0).collect());
        assert_eq!(react(History).at_once_each(&env.db, &claims, &batch).await.unwrap(), [1, 2]);
        let entries = store::page(&env.db, user, None, 10).await.unwrap();
        type Seen<'a> = (Kind, Option<Won>, Option<ReservationId>, Option<&'a str>);
        let seen: Vec<Seen<'_>> = entries
            .iter()
            .map(|e| (e.kind, e.balance_after, e.reservation_id, e.reason.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                (Kind::PaymentFailed, None, Some(reservation), Some("INSUFFICIENT_BALANCE")),
                (Kind::ChargeFailed, None, None, Some("BALANCE_LIMIT")),
            ]
        );
        // One at a time (the transaction path) reads alike.
        let one = Incoming::first_delivery(&Envelope::new(
            "wallet",
            user,
            ChargeFailed {
                charge_id: ChargeId::new(),
                user_id: user,
                amount: Won(1),
                reason: contracts::ChargeFailureReason::BalanceLimit,
            },
        ))
        .unwrap();
        let outcome =
            PgInbox::new(env.db.clone(), crate::SCHEMA, react(History)).apply_batch(INBOX, &[one]).await;
        assert!(matches!(outcome[0], Ok(Applied::Done)), "{outcome:?}");
        let newest = &store::page(&env.db, user, None, 1).await.unwrap()[0];
        assert_eq!(
            (newest.kind, newest.balance_after, newest.reason.as_deref()),
            (Kind::ChargeFailed, None, Some("BALANCE_LIMIT"))
        );
    }
}
