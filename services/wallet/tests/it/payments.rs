use crate::Wallet;
use chrono::{Duration as Span, Utc};
use contracts::{
    Envelope, PaymentCompleted, PaymentFailed, PaymentFailureReason, PaymentRefunded, PaymentRequested,
    RefundRequested, ReservationId, UserId, Won,
};
use serde_json::json;
use std::time::Duration;
use testkit::eventually;

fn pay(
    reservation: ReservationId,
    user: UserId,
    amount: i64,
    pay_by_secs: i64,
) -> Envelope<PaymentRequested> {
    Envelope::new(
        "reservation",
        reservation,
        PaymentRequested {
            reservation_id: reservation,
            user_id: user,
            amount: Won(amount),
            pay_by: Utc::now() + Span::seconds(pay_by_secs),
        },
    )
}

fn refund(reservation: ReservationId, user: UserId, amount: i64) -> Envelope<RefundRequested> {
    Envelope::new(
        "reservation",
        reservation,
        RefundRequested { reservation_id: reservation, user_id: user, amount: Won(amount) },
    )
}

#[tokio::test]
async fn a_payment_debits_once_even_when_requested_twice() {
    let w = Wallet::start().await;
    let (user, reservation) = (UserId::new(), ReservationId::new());
    w.charge(user, json!({"amount": 10_000})).await;

    w.env.publish(&pay(reservation, user, 3000, 60)).await.unwrap();
    let done = eventually("PaymentCompleted", Duration::from_secs(10), || async {
        w.env.events_of::<PaymentCompleted>().await.unwrap().pop()
    })
    .await;
    assert_eq!((done.reservation_id, done.amount, done.balance), (reservation, Won(3000), Won(7000)));

    // A second request for the same reservation (a new event, not a redelivery).
    let twice = pay(reservation, user, 3000, 60);
    w.env.publish(&twice).await.unwrap();
    w.env.wait_handled("wallet", twice.id).await;
    assert_eq!(w.balance(user).await, 7000);
    assert_eq!(w.env.events_of::<PaymentCompleted>().await.unwrap().len(), 1);
    assert!(w.env.events_of::<PaymentFailed>().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_insufficient_balance_or_a_passed_deadline_fails_without_debiting() {
    let w = Wallet::start().await;
    let user = UserId::new();
    w.charge(user, json!({"amount": 1000})).await;

    let (poor, late) = (ReservationId::new(), ReservationId::new());
    w.env.publish(&pay(poor, user, 3000, 60)).await.unwrap();
    w.env.publish(&pay(late, user, 500, -1)).await.unwrap();
    let failed = eventually("two PaymentFailed", Duration::from_secs(10), || async {
        let f = w.env.events_of::<PaymentFailed>().await.unwrap();
        (f.len() == 2).then_some(f)
    })
    .await;
    let reason = |r| failed.iter().find(|f| f.reservation_id == r).map(|f| f.reason);
    assert_eq!(reason(poor), Some(PaymentFailureReason::InsufficientBalance));
    assert_eq!(reason(late), Some(PaymentFailureReason::DeadlinePassed));
    assert_eq!(w.balance(user).await, 1000);
}

#[tokio::test]
async fn concurrent_payments_never_overdraw() {
    let w = Wallet::start().await;
    let user = UserId::new();
    w.charge(user, json!({"amount": 10_000})).await;
    for _ in 0..5 {
        w.env.publish(&pay(ReservationId::new(), user, 3000, 60)).await.unwrap();
    }
    eventually("five outcomes", Duration::from_secs(10), || async {
        let done = w.env.events_of::<PaymentCompleted>().await.unwrap().len();
        let failed = w.env.events_of::<PaymentFailed>().await.unwrap().len();
        (done + failed == 5).then_some(())
    })
    .await;
    assert_eq!(w.env.events_of::<PaymentCompleted>().await.unwrap().len(), 3);
    assert_eq!(w.balance(user).await, 1000);
}

#[tokio::test]
async fn a_payment_is_refunded_exactly_once() {
    let w = Wallet::start().await;
    let (user, reservation) = (UserId::new(), ReservationId::new());
    w.charge(user, json!({"amount": 5000})).await;
    w.env.publish(&pay(reservation, user, 2000, 60)).await.unwrap();
    eventually("PaymentCompleted", Duration::from_secs(10), || async {
        w.env.events_of::<PaymentCompleted>().await.unwrap().pop()
    })
    .await;

    let first = refund(reservation, user, 2000);
    w.env.publish(&first).await.unwrap();
    let again = refund(reservation, user, 2000);
    w.env.publish(&again).await.unwrap();
    w.env.wait_handled("wallet", first.id).await;
    w.env.wait_handled("wallet", again.id).await;
    let refunds = w.env.events_of::<PaymentRefunded>().await.unwrap();
    assert_eq!(refunds.len(), 1);
    assert_eq!((refunds[0].amount, refunds[0].balance), (Won(2000), Won(5000)));
    assert_eq!(w.balance(user).await, 5000);
}

#[tokio::test]
async fn a_refund_that_arrives_first_stops_a_later_payment() {
    let w = Wallet::start().await;
    let (user, reservation) = (UserId::new(), ReservationId::new());
    w.charge(user, json!({"amount": 5000})).await;

    let first = refund(reservation, user, 2000);
    w.env.publish(&first).await.unwrap();
    w.env.wait_handled("wallet", first.id).await;
    let late = pay(reservation, user, 2000, 60);
    w.env.publish(&late).await.unwrap();
    w.env.wait_handled("wallet", late.id).await;

    assert_eq!(w.balance(user).await, 5000);
    assert!(w.env.events_of::<PaymentCompleted>().await.unwrap().is_empty());
    assert!(w.env.events_of::<PaymentRefunded>().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_payment_of_nothing_or_less_is_dead_lettered_and_changes_nothing() {
    let w = Wallet::start().await;
    let user = UserId::new();
    w.charge(user, json!({"amount": 1_000})).await;
    for amount in [0, -500] {
        w.env.publish(&pay(ReservationId::new(), user, amount, 60)).await.unwrap();
    }
    eventually("both in the dead-letter stream", Duration::from_secs(10), || async {
        (w.env.stream_messages(contracts::Stream::Dlq).await.unwrap() == 2).then_some(())
    })
    .await;
    assert_eq!(w.balance(user).await, 1_000);
    assert!(w.env.events_of::<PaymentCompleted>().await.unwrap().is_empty());
    assert!(w.env.events_of::<PaymentFailed>().await.unwrap().is_empty());
}
