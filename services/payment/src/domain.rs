//! A card payment's life as one pure function: `decide(payment, input)` gives the payment after
//! what happened (an event, the gateway's answer, its webhook) and what to announce. The
//! consumer, the gateway worker and the webhook route all go through it, on the row as locked.

use chrono::{DateTime, Duration, Utc};
use contracts::{PaymentFailureReason, PaymentId, ReservationId, UserId, Won};

/// Where a card payment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(as = CardPaymentStatus)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Recorded; the gateway has not created it yet.
    New,
    /// Created on the gateway: the buyer confirms it on its checkout page.
    Ready,
    /// The gateway took the money, in time.
    Captured,
    /// The gateway declined the card.
    Declined,
    /// The gateway could not be reached to create it.
    Failed,
    /// Ended before any money was taken (cancelled on the gateway, or never created).
    Voided,
    /// Money was taken that must go back: a late capture, or an ended reservation's.
    Refunding,
    /// The money went back through the gateway.
    Refunded,
}

impl Status {
    /// The stored and API form.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "NEW",
            Status::Ready => "READY",
            Status::Captured => "CAPTURED",
            Status::Declined => "DECLINED",
            Status::Failed => "FAILED",
            Status::Voided => "VOIDED",
            Status::Refunding => "REFUNDING",
            Status::Refunded => "REFUNDED",
        }
    }

    /// Reads the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        use Status::*;
        [New, Ready, Captured, Declined, Failed, Voided, Refunding, Refunded]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// A payment as the decision needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub reservation_id: ReservationId,
    pub user_id: UserId,
    pub amount: Won,
    /// The reservation's deadline: a capture after it is refunded.
    pub pay_by: DateTime<Utc>,
    pub status: Status,
    /// The gateway's id of the payment, once created.
    pub gateway_id: Option<String>,
    /// Where the buyer confirms it, once created.
    pub checkout_url: Option<String>,
    /// The reservation asked for its money back (or never to take it).
    pub refund_wanted: bool,
    /// Gateway calls made for its current step (creating, or checking on it).
    pub attempts: u32,
    pub failure_reason: Option<PaymentFailureReason>,
}

/// A payment's state as the gateway reports it (its webhook, or its answer to a check).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GatewayStatus {
    Ready,
    Captured,
    Declined,
    Cancelled,
    Refunded,
}

/// Something that happened to a payment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The reservation wants its money back, or never taken (`CardRefundRequested`).
    RefundRequested,
    /// The gateway created it.
    Created { gateway_id: String, checkout_url: String },
    /// Creating it failed at `now` (no answer, or a 5xx).
    CreateFailed { now: DateTime<Utc> },
    /// The gateway reports the payment so (webhook, check, or its answer to a cancel).
    Gateway { status: GatewayStatus, captured_at: Option<DateTime<Utc>> },
}

/// An event the decision asks to publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    Completed,
    Failed(PaymentFailureReason),
    Refunded,
}

/// The outcome: the payment after the input, and what to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub next: Payment,
    pub emit: Option<Emit>,
}

/// Attempts at creating a payment before the buyer is told the gateway is unavailable (they may
/// pay again, by card or wallet, while the seats are held).
pub const CREATE_ATTEMPTS: u32 = 4;

/// What the gateway worker does next for a payment, if anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// Create it on the gateway (idempotently, keyed by the payment's id).
    Create,
    /// Cancel it on the gateway: the reservation ended before the buyer paid.
    Cancel,
    /// Ask the gateway how it stands, in case its webhook was lost.
    Check,
    /// Give the money back through the gateway.
    Refund,
}

/// The gateway call a payment waits for.
pub fn work(p: &Payment) -> Option<Work> {
    match (p.status, p.refund_wanted) {
        (Status::New, _) => Some(Work::Create),
        (Status::Ready, true) => Some(Work::Cancel),
        (Status::Ready, false) => Some(Work::Check),
        (Status::Refunding, _) => Some(Work::Refund),
        _ => None,
    }
}

/// When a payment's next gateway call is due after `attempts` calls for its step: creating is
/// retried quickly (the buyer is waiting), a check backs off (webhooks are the usual path).
pub fn next_attempt_in(work: Work, attempts: u32) -> Duration {
    let step = attempts.min(6);
    match work {
        Work::Create | Work::Cancel | Work::Refund => Duration::milliseconds(250 * (1i64 << step)),
        Work::Check => Duration::seconds((5 * (1i64 << step)).min(60)),
    }
}

/// The state machine.
pub fn decide(p: &Payment, input: Input) -> Decision {
    use Status::*;
    let to = |status: Status, emit: Option<Emit>| Decision {
        next: Payment { status, attempts: 0, ..p.clone() },
        emit,
    };
    let same = || Decision { next: p.clone(), emit: None };
    match (p.status, input) {
        // Nothing was created yet: the worker creates nothing now.
        (New, Input::RefundRequested) => to(Voided, None),
        (Ready, Input::RefundRequested) => {
            Decision { next: Payment { refund_wanted: true, attempts: 0, ..p.clone() }, emit: None }
        }
        (Captured, Input::RefundRequested) => Decision {
            next: Payment { status: Refunding, refund_wanted: true, attempts: 0, ..p.clone() },
            emit: None,
        },
        (_, Input::RefundRequested) => {
            Decision { next: Payment { refund_wanted: true, ..p.clone() }, emit: None }
        }

        (New, Input::Created { gateway_id, checkout_url }) => Decision {
            next: Payment {
                status: Ready,
                gateway_id: Some(gateway_id),
                checkout_url: Some(checkout_url),
                attempts: 0,
                ..p.clone()
            },
            emit: None,
        },
        // Voided while the gateway created it: it is cancelled there too.
        (Voided, Input::Created { gateway_id, checkout_url }) => Decision {
            next: Payment {
                status: Ready,
                refund_wanted: true,
                gateway_id: Some(gateway_id),
                checkout_url: Some(checkout_url),
                attempts: 0,
                ..p.clone()
            },
            emit: None,
        },
        (New, Input::CreateFailed { now }) => {
            let attempts = p.attempts.saturating_add(1);
            if attempts >= CREATE_ATTEMPTS || now >= p.pay_by {
                let reason = PaymentFailureReason::GatewayUnavailable;
                Decision {
                    next: Payment { status: Failed, failure_reason: Some(reason), attempts, ..p.clone() },
                    emit: Some(Emit::Failed(reason)),
                }
            } else {
                Decision { next: Payment { attempts, ..p.clone() }, emit: None }
            }
        }

        // Taken for an attempt that had ended (cancelled, or given up on as unreachable, after
        // which the buyer may have paid otherwise): it goes back.
        (Voided | Failed, Input::Gateway { status: GatewayStatus::Captured, .. }) => to(Refunding, None),
        (Ready, Input::Gateway { status: GatewayStatus::Captured, captured_at }) => {
            if p.refund_wanted {
                // The reservation ended first; it asked for the money back already.
                to(Refunding, None)
            } else if captured_at.is_some_and(|at| at <= p.pay_by) {
                to(Captured, Some(Emit::Completed))
            } else {
                let reason = PaymentFailureReason::DeadlinePassed;
                let mut d = to(Refunding, Some(Emit::Failed(reason)));
                d.next.failure_reason = Some(reason);
                d
            }
        }
        (Ready, Input::Gateway { status: GatewayStatus::Declined, .. }) => {
            let reason = PaymentFailureReason::CardDeclined;
            let mut d = to(Declined, Some(Emit::Failed(reason)));
            d.next.failure_reason = Some(reason);
            d
        }
        (Ready, Input::Gateway { status: GatewayStatus::Cancelled, .. }) => to(Voided, None),
        (Ready | Captured | Refunding, Input::Gateway { status: GatewayStatus::Refunded, .. }) => {
            to(Refunded, Some(Emit::Refunded))
        }
        // Still waiting for the buyer: checked again later.
        (Ready, Input::Gateway { status: GatewayStatus::Ready, .. }) => {
            Decision { next: Payment { attempts: p.attempts.saturating_add(1), ..p.clone() }, emit: None }
        }
        // Duplicates, and reports of what is already known.
        _ => same(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(status: Status) -> Payment {
        Payment {
            id: PaymentId::new(),
            reservation_id: ReservationId::new(),
            user_id: UserId::new(),
            amount: Won(5000),
            pay_by: Utc::now() + Duration::minutes(5),
            status,
            gateway_id: (status != Status::New).then(|| "pay_1".to_owned()),
            checkout_url: None,
            refund_wanted: false,
            attempts: 0,
            failure_reason: None,
        }
    }

    fn captured(at: DateTime<Utc>) -> Input {
        Input::Gateway { status: GatewayStatus::Captured, captured_at: Some(at) }
    }

    #[test]
    fn created_then_captured_in_time_completes_once() {
        let p = payment(Status::New);
        assert_eq!(work(&p), Some(Work::Create));
        let created =
            Input::Created { gateway_id: "pay_1".into(), checkout_url: "http://gw/checkout/pay_1".into() };
        let ready = decide(&p, created).next;
        assert_eq!((ready.status, work(&ready)), (Status::Ready, Some(Work::Check)));
        let d = decide(&ready, captured(Utc::now()));
        assert_eq!((d.next.status, d.emit), (Status::Captured, Some(Emit::Completed)));
        // The webhook again, or a check that finds it captured: nothing more.
        assert_eq!(decide(&d.next, captured(Utc::now())), Decision { next: d.next.clone(), emit: None });
        assert_eq!(work(&d.next), None);
    }

    #[test]
    fn a_capture_after_the_deadline_fails_the_payment_and_goes_back() {
        let ready = payment(Status::Ready);
        let d = decide(&ready, captured(ready.pay_by + Duration::seconds(1)));
        assert_eq!(d.next.status, Status::Refunding);
        assert_eq!(d.emit, Some(Emit::Failed(PaymentFailureReason::DeadlinePassed)));
        assert_eq!(work(&d.next), Some(Work::Refund));
        let d = decide(&d.next, Input::Gateway { status: GatewayStatus::Refunded, captured_at: None });
        assert_eq!((d.next.status, d.emit), (Status::Refunded, Some(Emit::Refunded)));
    }

    #[test]
    fn a_declined_card_fails_this_attempt_only() {
        let d = decide(
            &payment(Status::Ready),
            Input::Gateway { status: GatewayStatus::Declined, captured_at: None },
        );
        assert_eq!(d.next.status, Status::Declined);
        let Some(Emit::Failed(reason)) = d.emit else { panic!("{:?}", d.emit) };
        assert!(reason.retryable());
    }

    #[test]
    fn an_ended_reservation_cancels_what_is_not_taken_and_refunds_what_is() {
        // Not created yet: never created.
        assert_eq!(decide(&payment(Status::New), Input::RefundRequested).next.status, Status::Voided);
        // Waiting for the buyer: cancelled on the gateway.
        let ready = decide(&payment(Status::Ready), Input::RefundRequested).next;
        assert_eq!(work(&ready), Some(Work::Cancel));
        let voided = decide(&ready, Input::Gateway { status: GatewayStatus::Cancelled, captured_at: None });
        assert_eq!((voided.next.status, voided.emit), (Status::Voided, None));
        // The buyer confirmed before the cancel arrived: refunded, with no second outcome.
        let raced = decide(&ready, captured(Utc::now()));
        assert_eq!((raced.next.status, raced.emit), (Status::Refunding, None));
        // Taken: refunded.
        let refunding = decide(&payment(Status::Captured), Input::RefundRequested).next;
        assert_eq!(work(&refunding), Some(Work::Refund));
        // Created while being voided: cancelled there too.
        let created = Input::Created { gateway_id: "pay_2".into(), checkout_url: "u".into() };
        let late = decide(&payment(Status::Voided), created).next;
        assert_eq!((late.status, work(&late)), (Status::Ready, Some(Work::Cancel)));
    }

    #[test]
    fn an_unreachable_gateway_fails_the_attempt_after_a_few_tries_or_the_deadline() {
        let mut p = payment(Status::New);
        for _ in 1..CREATE_ATTEMPTS {
            let d = decide(&p, Input::CreateFailed { now: Utc::now() });
            assert_eq!((d.next.status, d.emit), (Status::New, None));
            p = d.next;
        }
        let d = decide(&p, Input::CreateFailed { now: Utc::now() });
        assert_eq!(d.emit, Some(Emit::Failed(PaymentFailureReason::GatewayUnavailable)));
        let late = payment(Status::New);
        let d = decide(&late, Input::CreateFailed { now: late.pay_by });
        assert_eq!(d.next.status, Status::Failed);
    }

    #[test]
    fn ended_payments_ignore_what_arrives_late() {
        for status in [Status::Declined, Status::Refunded] {
            let p = payment(status);
            for input in [captured(Utc::now()), Input::CreateFailed { now: Utc::now() }] {
                let d = decide(&p, input);
                assert_eq!((d.next.status, d.emit), (status, None), "{status:?}");
            }
        }
    }
}
