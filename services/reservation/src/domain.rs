//! The reservation state machine (DESIGN §5) as one pure function: `decide(reservation, input)`
//! gives the next state and the events to emit, or says why an action is refused. Handlers,
//! HTTP routes and the deadline sweeper all go through it.

use chrono::{DateTime, Duration, Utc};
use contracts::{
    ConcertId, PaymentFailureReason, PaymentMethod, ReservationFailureReason, ReservationId, ScheduleId,
    SeatNo, SeatRejectReason, UserId, Won,
};

/// Where a reservation is in the saga.
#[derive(Clone, Copy, Debug, PartialEq, Eq, utoipa::ToSchema, serde::Serialize, serde::Deserialize)]
#[schema(as = ReservationStatus, rename_all = "SCREAMING_SNAKE_CASE")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Pending,
    Held,
    Paying,
    Confirmed,
    Failed,
    Expired,
    Cancelled,
}

impl Status {
    /// The stored and API form.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Held => "HELD",
            Status::Paying => "PAYING",
            Status::Confirmed => "CONFIRMED",
            Status::Failed => "FAILED",
            Status::Expired => "EXPIRED",
            Status::Cancelled => "CANCELLED",
        }
    }

    /// Reads the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Status::Pending,
            Status::Held,
            Status::Paying,
            Status::Confirmed,
            Status::Failed,
            Status::Expired,
            Status::Cancelled,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    /// No transition leaves a terminal state, but one: a schedule's cancellation refunds a
    /// CONFIRMED reservation (CANCELLED).
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Confirmed | Status::Failed | Status::Expired | Status::Cancelled)
    }

    /// A terminal state in which the seats are not the user's.
    pub fn is_unsuccessful(self) -> bool {
        matches!(self, Status::Failed | Status::Expired | Status::Cancelled)
    }
}

/// A reservation as the decision needs it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reservation {
    pub id: ReservationId,
    pub user_id: UserId,
    pub schedule_id: ScheduleId,
    pub concert_id: ConcertId,
    pub seat_nos: Vec<SeatNo>,
    pub status: Status,
    pub amount: Option<Won>,
    pub held_until: Option<DateTime<Utc>>,
    pub failure_reason: Option<ReservationFailureReason>,
    pub queue_token: String,
    pub paid: bool,
    /// How it is being (or was last) paid: its payment and refund requests go that way.
    pub method: Option<PaymentMethod>,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
impl Reservation {
    /// A new PENDING reservation of seat `seat`, of a new user, schedule and concert: for tests
    /// to change what they look at (`Reservation { status, ..Reservation::pending_of_seat(1) }`).
    pub(crate) fn pending_of_seat(seat: i32) -> Self {
        Reservation {
            id: ReservationId::new(),
            user_id: UserId::new(),
            schedule_id: ScheduleId::new(),
            concert_id: ConcertId::new(),
            seat_nos: vec![SeatNo(seat)],
            status: Status::Pending,
            amount: None,
            held_until: None,
            failure_reason: None,
            queue_token: String::new(),
            paid: false,
            method: None,
            created_at: Utc::now(),
        }
    }
}

/// Something that happened to a reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    SeatReserved {
        amount: Won,
        held_until: DateTime<Utc>,
    },
    SeatRejected {
        reason: SeatRejectReason,
    },
    PaymentCompleted,
    PaymentFailed {
        reason: PaymentFailureReason,
    },
    PaymentRefunded,
    /// The user asks to pay, by wallet or card.
    Pay {
        now: DateTime<Utc>,
        method: PaymentMethod,
    },
    /// The user cancels.
    Cancel,
    /// An admin blocked the user (`UserStatusChanged`).
    UserBlocked,
    /// An organizer cancelled the schedule (`ScheduleCancelled`).
    ScheduleCancelled,
    /// The sweeper looks at the clocks.
    Tick {
        now: DateTime<Utc>,
        pay_grace: Duration,
        request_timeout: Duration,
    },
}

/// An event the decision asks to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Emit {
    PaymentRequested {
        pay_by: DateTime<Utc>,
    },
    Completed,
    Failed(ReservationFailureReason),
    /// A CONFIRMED reservation was undone.
    Cancelled(ReservationFailureReason),
    RefundRequested {
        amount: Won,
    },
}

/// Why the user's action is refused (the reservation is unchanged).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Payment needs HELD.
    #[error("the reservation is {}; only a HELD reservation can be paid", .0.as_str())]
    NotPayable(Status),
    /// The hold ran out before the user paid.
    #[error("the seats were held until a time that has passed")]
    HoldExpired,
    /// Cancelling needs HELD.
    #[error("the reservation is {}; only a HELD reservation can be cancelled", .0.as_str())]
    NotCancellable(Status),
}

/// A user's share of a schedule, and their standing: what a new reservation of theirs is
/// checked against.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Share {
    /// Whether they have a live (PENDING, HELD or PAYING) reservation of the schedule.
    pub live: bool,
    /// The schedule's seats in their PENDING, HELD, PAYING and CONFIRMED reservations.
    pub seats: u32,
    /// Whether an admin has blocked them (the newest `UserStatusChanged` said BLOCKED).
    pub blocked: bool,
    /// The reservations they started in the last minute, of any schedule (counted up to the
    /// limit).
    pub started: u32,
}

/// The per-user limits (a flash sale's fairness): one live reservation per user and schedule
/// always, at most `max_seats_per_user` seats of a schedule (`TICKETING_MAX_SEATS_PER_USER`,
/// default 4) held, being paid for and sold together, and at most `reservations_per_minute`
/// reservations started a minute (`TICKETING_MAX_RESERVATIONS_PER_MINUTE`, default 20; 0: no
/// limit): a person picks seats, a script tries them all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_seats_per_user: u32,
    pub reservations_per_minute: u32,
}

/// A per-user limit of a schedule that a new reservation would break: a flash sale's fairness,
/// since one admitted user could otherwise hold most of its seats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Limit {
    /// One live reservation per user and schedule.
    #[error(
        "you already have a live reservation of this schedule: pay for it, cancel it or let it end first"
    )]
    OneLive,
    /// At most `max` seats of a schedule per user, held, being paid for and sold together.
    #[error("at most {max} seats of a schedule per user: you have {owned} and asked for {asked}")]
    Seats { max: u32, owned: u32, asked: u32 },
    /// An admin has blocked the user.
    #[error("your account is blocked: it cannot start reservations")]
    Blocked,
    /// At most `max` reservations started a minute.
    #[error("at most {max} reservations a minute per user: wait a minute before starting another")]
    TooFast { max: u32 },
}

/// The limit a new reservation of `asked` seats breaks, given the user's `share` of the
/// schedule and `limits`. `store::insert_each_unless_taken` inserts under the same rule, in the
/// statement that reads the share, so racing requests cannot both pass.
pub fn over_limit(share: Share, asked: usize, limits: Limits) -> Option<Limit> {
    let asked = u32::try_from(asked).unwrap_or(u32::MAX);
    let max = limits.max_seats_per_user;
    let per_minute = limits.reservations_per_minute;
    if share.blocked {
        Some(Limit::Blocked)
    } else if per_minute > 0 && share.started >= per_minute {
        Some(Limit::TooFast { max: per_minute })
    } else if share.live {
        Some(Limit::OneLive)
    } else if share.seats.saturating_add(asked) > max {
        Some(Limit::Seats { max, owned: share.seats, asked })
    } else {
        None
    }
}

/// The outcome: the reservation after the input, and what to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub next: Reservation,
    pub emit: Vec<Emit>,
}

impl Decision {
    /// Whether anything changes or is published.
    pub fn is_noop(&self, before: &Reservation) -> bool {
        self.emit.is_empty() && self.next == *before
    }
}

fn fail(r: &Reservation, status: Status, reason: ReservationFailureReason, mut emit: Vec<Emit>) -> Decision {
    let next = Reservation { status, failure_reason: Some(reason), ..r.clone() };
    emit.insert(0, Emit::Failed(reason));
    Decision { next, emit }
}

/// The state machine.
pub fn decide(r: &Reservation, input: Input) -> Result<Decision, Refusal> {
    use Status::*;
    let same = || Decision { next: r.clone(), emit: Vec::new() };
    Ok(match (r.status, input) {
        (Pending, Input::SeatReserved { amount, held_until }) => Decision {
            next: Reservation {
                status: Held,
                amount: Some(amount),
                held_until: Some(held_until),
                ..r.clone()
            },
            emit: Vec::new(),
        },
        // The seats were held for a reservation that already ended: release them again.
        (Failed | Expired | Cancelled, Input::SeatReserved { .. }) => Decision {
            next: r.clone(),
            emit: vec![Emit::Failed(r.failure_reason.unwrap_or(ReservationFailureReason::Timeout))],
        },
        (Pending, Input::SeatRejected { reason }) => {
            let why = match reason {
                SeatRejectReason::NotOnSale => ReservationFailureReason::NotOnSale,
                SeatRejectReason::Taken | SeatRejectReason::NotFound => {
                    ReservationFailureReason::SeatUnavailable
                }
            };
            fail(r, Failed, why, Vec::new())
        }

        (Held, Input::Pay { now, method }) => match r.held_until {
            Some(until) if now < until => Decision {
                next: Reservation { status: Paying, method: Some(method), ..r.clone() },
                emit: vec![Emit::PaymentRequested { pay_by: until }],
            },
            _ => return Err(Refusal::HoldExpired),
        },
        (status, Input::Pay { .. }) => return Err(Refusal::NotPayable(status)),

        (Paying, Input::PaymentCompleted) => Decision {
            next: Reservation { status: Confirmed, paid: true, ..r.clone() },
            emit: vec![Emit::Completed],
        },
        // Money arrived for a reservation that already ended: give it back.
        (Failed | Expired | Cancelled, Input::PaymentCompleted) => Decision {
            next: Reservation { paid: true, ..r.clone() },
            emit: vec![Emit::RefundRequested { amount: r.amount.unwrap_or_default() }],
        },
        // The balance did not cover it, the card was declined, or the gateway was down: the
        // seats stay held until the hold ends, so the buyer can top up, or use another card or
        // the wallet, and pay again (the refusal is on the timeline). Only the deadline, or a
        // refusal for lateness, releases them.
        (Paying, Input::PaymentFailed { reason }) if reason.retryable() => {
            Decision { next: Reservation { status: Held, ..r.clone() }, emit: Vec::new() }
        }
        (Paying, Input::PaymentFailed { .. }) => {
            fail(r, Failed, ReservationFailureReason::PaymentFailed, Vec::new())
        }

        (Held, Input::Cancel) => fail(r, Cancelled, ReservationFailureReason::Cancelled, Vec::new()),

        // A blocked user keeps no seats; a payment already in flight is the wallet's to settle.
        (Pending | Held, Input::UserBlocked) => {
            fail(r, Failed, ReservationFailureReason::UserBlocked, Vec::new())
        }
        (status, Input::Cancel) => return Err(Refusal::NotCancellable(status)),

        // A cancelled schedule sells nothing: a live reservation fails (a payment in flight is
        // given back, or voided before the wallet takes it), a confirmed one is refunded.
        (Pending | Held, Input::ScheduleCancelled) => {
            fail(r, Failed, ReservationFailureReason::ScheduleCancelled, Vec::new())
        }
        (Paying, Input::ScheduleCancelled) => fail(
            r,
            Failed,
            ReservationFailureReason::ScheduleCancelled,
            vec![Emit::RefundRequested { amount: r.amount.unwrap_or_default() }],
        ),
        // A sale undone: told (the ranking counts it no more), and the money given back.
        (Confirmed, Input::ScheduleCancelled) => Decision {
            next: Reservation {
                status: Cancelled,
                failure_reason: Some(ReservationFailureReason::ScheduleCancelled),
                ..r.clone()
            },
            emit: vec![
                Emit::Cancelled(ReservationFailureReason::ScheduleCancelled),
                Emit::RefundRequested { amount: r.amount.unwrap_or_default() },
            ],
        },

        (Held, Input::Tick { now, .. }) if r.held_until.is_some_and(|u| now >= u) => {
            fail(r, Expired, ReservationFailureReason::Expired, Vec::new())
        }
        // A payment in flight keeps the seats until payBy + grace; then the wallet is asked to
        // refund in case it debited after all.
        (Paying, Input::Tick { now, pay_grace, .. })
            if r.held_until.is_some_and(|u| now >= u + pay_grace) =>
        {
            fail(
                r,
                Expired,
                ReservationFailureReason::Expired,
                vec![Emit::RefundRequested { amount: r.amount.unwrap_or_default() }],
            )
        }
        (Pending, Input::Tick { now, request_timeout, .. }) if now >= r.created_at + request_timeout => {
            fail(r, Failed, ReservationFailureReason::Timeout, Vec::new())
        }
        _ => same(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_seats_per_user: 4, reservations_per_minute: 0 };

    #[test]
    fn a_user_has_one_live_reservation_and_a_share_of_seats_per_schedule() {
        let none = Share::default();
        assert_eq!(over_limit(none, 4, LIMITS), None);
        assert_eq!(over_limit(none, 5, LIMITS), Some(Limit::Seats { max: 4, owned: 0, asked: 5 }));
        let live = Share { live: true, seats: 1, ..Share::default() };
        assert_eq!(over_limit(live, 1, LIMITS), Some(Limit::OneLive));
        let sold = Share { seats: 3, ..Share::default() };
        assert_eq!(over_limit(sold, 1, LIMITS), None);
        assert_eq!(over_limit(sold, 2, LIMITS), Some(Limit::Seats { max: 4, owned: 3, asked: 2 }));
        let full = Share { seats: 4, ..Share::default() };
        assert!(matches!(over_limit(full, 1, LIMITS), Some(Limit::Seats { .. })));
    }

    #[test]
    fn a_blocked_or_too_fast_user_starts_nothing_whatever_the_share() {
        let blocked = Share { blocked: true, started: 99, ..Share::default() };
        assert_eq!(over_limit(blocked, 1, LIMITS), Some(Limit::Blocked));
        let paced = Limits { reservations_per_minute: 3, ..LIMITS };
        let two = Share { started: 2, ..Share::default() };
        assert_eq!(over_limit(two, 1, paced), None);
        let three = Share { started: 3, live: true, ..Share::default() };
        assert_eq!(over_limit(three, 1, paced), Some(Limit::TooFast { max: 3 }));
        // 0: no limit.
        assert_eq!(over_limit(Share { started: 1000, ..Share::default() }, 1, LIMITS), None);
    }

    #[test]
    fn blocking_fails_a_pending_or_held_reservation_and_leaves_a_payment_to_finish() {
        for status in [Status::Pending, Status::Held] {
            let d = decide(&reservation(status), Input::UserBlocked).unwrap();
            assert_eq!(
                (d.next.status, d.next.failure_reason),
                (Status::Failed, Some(ReservationFailureReason::UserBlocked))
            );
            assert_eq!(d.emit, vec![Emit::Failed(ReservationFailureReason::UserBlocked)]);
        }
        for status in [Status::Paying, Status::Confirmed, Status::Failed, Status::Expired, Status::Cancelled]
        {
            let r = reservation(status);
            assert!(decide(&r, Input::UserBlocked).unwrap().is_noop(&r), "{status:?}");
        }
    }

    #[test]
    fn the_documented_states_are_the_stored_ones() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(Status::schema()).unwrap();
        let documented = schema["enum"].as_array().unwrap();
        assert!(!documented.is_empty());
        for v in documented.iter().filter_map(|v| v.as_str()) {
            assert_eq!(Status::parse(v).map(Status::as_str), Some(v));
        }
    }

    fn reservation(status: Status) -> Reservation {
        let now = Utc::now();
        Reservation {
            id: ReservationId::new(),
            user_id: UserId::new(),
            schedule_id: ScheduleId::new(),
            concert_id: ConcertId::new(),
            seat_nos: vec![SeatNo(1), SeatNo(2)],
            status,
            amount: (status != Status::Pending).then_some(Won(5000)),
            held_until: (status != Status::Pending).then_some(now + Duration::seconds(300)),
            failure_reason: match status {
                Status::Failed => Some(ReservationFailureReason::SeatUnavailable),
                Status::Expired => Some(ReservationFailureReason::Expired),
                Status::Cancelled => Some(ReservationFailureReason::Cancelled),
                _ => None,
            },
            queue_token: "q".into(),
            paid: false,
            method: (status != Status::Pending).then_some(PaymentMethod::Wallet),
            created_at: now,
        }
    }

    fn tick(now: DateTime<Utc>) -> Input {
        Input::Tick { now, pay_grace: Duration::seconds(30), request_timeout: Duration::seconds(30) }
    }

    #[test]
    fn the_happy_path() {
        let r = reservation(Status::Pending);
        let until = Utc::now() + Duration::seconds(300);
        let held = decide(&r, Input::SeatReserved { amount: Won(7000), held_until: until }).unwrap().next;
        assert_eq!((held.status, held.amount, held.held_until), (Status::Held, Some(Won(7000)), Some(until)));
        let paying = decide(&held, Input::Pay { now: Utc::now(), method: PaymentMethod::Wallet }).unwrap();
        assert_eq!(paying.next.status, Status::Paying);
        assert_eq!(paying.emit, vec![Emit::PaymentRequested { pay_by: until }]);
        let done = decide(&paying.next, Input::PaymentCompleted).unwrap();
        assert_eq!((done.next.status, done.next.paid), (Status::Confirmed, true));
        assert_eq!(done.emit, vec![Emit::Completed]);
    }

    #[test]
    fn a_cancelled_schedule_fails_live_reservations_and_refunds_paid_ones() {
        use ReservationFailureReason::ScheduleCancelled;
        for status in [Status::Pending, Status::Held] {
            let d = decide(&reservation(status), Input::ScheduleCancelled).unwrap();
            assert_eq!((d.next.status, d.next.failure_reason), (Status::Failed, Some(ScheduleCancelled)));
            assert_eq!(d.emit, vec![Emit::Failed(ScheduleCancelled)]);
        }
        let d = decide(&reservation(Status::Paying), Input::ScheduleCancelled).unwrap();
        assert_eq!(d.next.status, Status::Failed);
        assert_eq!(
            d.emit,
            vec![Emit::Failed(ScheduleCancelled), Emit::RefundRequested { amount: Won(5000) }]
        );
        let confirmed = Reservation { paid: true, ..reservation(Status::Confirmed) };
        let d = decide(&confirmed, Input::ScheduleCancelled).unwrap();
        assert_eq!((d.next.status, d.next.failure_reason), (Status::Cancelled, Some(ScheduleCancelled)));
        assert_eq!(
            d.emit,
            vec![Emit::Cancelled(ScheduleCancelled), Emit::RefundRequested { amount: Won(5000) }]
        );
        // Once ended, a cancellation changes nothing: delivered again, it refunds nothing twice.
        for ended in [d.next, reservation(Status::Expired), reservation(Status::Failed)] {
            assert!(decide(&ended, Input::ScheduleCancelled).unwrap().is_noop(&ended));
        }
    }

    #[test]
    fn rejections_and_payment_failures_fail_with_their_reason() {
        let d =
            decide(&reservation(Status::Pending), Input::SeatRejected { reason: SeatRejectReason::Taken })
                .unwrap();
        assert_eq!(d.next.status, Status::Failed);
        assert_eq!(d.emit, vec![Emit::Failed(ReservationFailureReason::SeatUnavailable)]);
        let early = Input::SeatRejected { reason: SeatRejectReason::NotOnSale };
        let d = decide(&reservation(Status::Pending), early).unwrap();
        assert_eq!(d.emit, vec![Emit::Failed(ReservationFailureReason::NotOnSale)]);
        let late = Input::PaymentFailed { reason: PaymentFailureReason::DeadlinePassed };
        let d = decide(&reservation(Status::Paying), late).unwrap();
        assert_eq!(d.next.status, Status::Failed);
        assert_eq!(d.emit, vec![Emit::Failed(ReservationFailureReason::PaymentFailed)]);
    }

    #[test]
    fn a_payment_the_balance_did_not_cover_leaves_the_seats_held_to_pay_again() {
        let paying = reservation(Status::Paying);
        let short = Input::PaymentFailed { reason: PaymentFailureReason::InsufficientBalance };
        let d = decide(&paying, short.clone()).unwrap();
        assert_eq!(
            (d.next.status, d.next.held_until, d.next.failure_reason),
            (Status::Held, paying.held_until, None)
        );
        assert!(d.emit.is_empty());
        // Topped up, the buyer pays again before the hold ends...
        let again = decide(&d.next, Input::Pay { now: Utc::now(), method: PaymentMethod::Wallet }).unwrap();
        assert_eq!(again.next.status, Status::Paying);
        // ...and the hold's end still releases the seats of one who does not.
        let until = paying.held_until.unwrap();
        let expired = decide(&d.next, tick(until)).unwrap();
        assert_eq!(expired.next.status, Status::Expired);
        // A refusal for a reservation no longer paying changes nothing.
        for status in [Status::Pending, Status::Held, Status::Confirmed, Status::Failed] {
            let r = reservation(status);
            assert!(decide(&r, short.clone()).unwrap().is_noop(&r), "{status:?}");
        }
    }

    #[test]
    fn paying_needs_a_live_hold() {
        let held = reservation(Status::Held);
        let late = held.held_until.unwrap() + Duration::seconds(1);
        assert_eq!(
            decide(&held, Input::Pay { now: late, method: PaymentMethod::Wallet }),
            Err(Refusal::HoldExpired)
        );
        for s in [Status::Pending, Status::Paying, Status::Confirmed, Status::Failed, Status::Expired] {
            assert_eq!(
                decide(&reservation(s), Input::Pay { now: Utc::now(), method: PaymentMethod::Wallet }),
                Err(Refusal::NotPayable(s))
            );
        }
    }

    #[test]
    fn only_held_reservations_can_be_cancelled() {
        let d = decide(&reservation(Status::Held), Input::Cancel).unwrap();
        assert_eq!(d.next.status, Status::Cancelled);
        assert_eq!(d.emit, vec![Emit::Failed(ReservationFailureReason::Cancelled)]);
        assert_eq!(
            decide(&reservation(Status::Paying), Input::Cancel),
            Err(Refusal::NotCancellable(Status::Paying))
        );
    }

    #[test]
    fn holds_expire_but_payments_in_flight_wait_for_the_grace() {
        let held = reservation(Status::Held);
        let until = held.held_until.unwrap();
        assert!(decide(&held, tick(until - Duration::seconds(1))).unwrap().is_noop(&held));
        let d = decide(&held, tick(until)).unwrap();
        assert_eq!(
            (d.next.status, d.emit.clone()),
            (Status::Expired, vec![Emit::Failed(ReservationFailureReason::Expired)])
        );

        let paying = reservation(Status::Paying);
        let until = paying.held_until.unwrap();
        assert!(decide(&paying, tick(until + Duration::seconds(29))).unwrap().is_noop(&paying));
        let d = decide(&paying, tick(until + Duration::seconds(30))).unwrap();
        assert_eq!(d.next.status, Status::Expired);
        assert_eq!(
            d.emit,
            vec![
                Emit::Failed(ReservationFailureReason::Expired),
                Emit::RefundRequested { amount: Won(5000) }
            ]
        );
        // The payment's outcome wins while it is within the grace.
        let d = decide(&paying, Input::PaymentCompleted).unwrap();
        assert_eq!(d.next.status, Status::Confirmed);
    }

    #[test]
    fn pending_times_out() {
        let p = reservation(Status::Pending);
        assert!(decide(&p, tick(p.created_at + Duration::seconds(29))).unwrap().is_noop(&p));
        let d = decide(&p, tick(p.created_at + Duration::seconds(30))).unwrap();
        assert_eq!(d.emit, vec![Emit::Failed(ReservationFailureReason::Timeout)]);
    }

    #[test]
    fn late_events_compensate() {
        for s in [Status::Failed, Status::Expired, Status::Cancelled] {
            let r = reservation(s);
            let d = decide(&r, Input::PaymentCompleted).unwrap();
            assert_eq!(d.next.status, s);
            assert_eq!(d.emit, vec![Emit::RefundRequested { amount: Won(5000) }]);
            let d = decide(&r, Input::SeatReserved { amount: Won(1), held_until: Utc::now() }).unwrap();
            assert_eq!(d.emit, vec![Emit::Failed(r.failure_reason.unwrap())]);
        }
    }

    #[test]
    fn duplicates_and_out_of_order_events_change_nothing() {
        let confirmed = reservation(Status::Confirmed);
        for input in [
            Input::PaymentCompleted,
            Input::PaymentFailed { reason: PaymentFailureReason::InsufficientBalance },
            Input::PaymentFailed { reason: PaymentFailureReason::DeadlinePassed },
            Input::SeatRejected { reason: SeatRejectReason::Taken },
            Input::PaymentRefunded,
            tick(Utc::now() + Duration::days(1)),
        ] {
            assert!(decide(&confirmed, input).unwrap().is_noop(&confirmed));
        }
        let held = reservation(Status::Held);
        assert!(
            decide(&held, Input::SeatRejected { reason: SeatRejectReason::Taken }).unwrap().is_noop(&held)
        );
        let late = Input::PaymentFailed { reason: PaymentFailureReason::DeadlinePassed };
        assert!(decide(&held, late).unwrap().is_noop(&held));
    }
}
