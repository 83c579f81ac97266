//! Every event of DESIGN §4, with its stream and subject. Payloads are camelCase JSON.

use crate::{
    Bucket, ChargeId, ConcertId, Event, PartitionKey, PaymentId, ReservationId, ScheduleId, SeatNo, Stream,
    UserId, Won, is_partitioned,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{
    ToSchema,
    openapi::{RefOr, schema::Schema},
};

/// `event!(Type, stream, "subject")` for an event about no schedule;
/// `event!(Type, stream, "domain.*.rest", key = field)` for one whose partition is read from
/// `field` (a schedule or reservation id). The subject must carry the partition exactly when
/// there is a key: the build fails otherwise.
macro_rules! event {
    ($name:ident, $stream:expr, $subject:literal) => {
        event!(@impl $name, $stream, $subject, false, |_e| None);
    };
    ($name:ident, $stream:expr, $subject:literal, key = $field:ident) => {
        event!(@impl $name, $stream, $subject, true, |e: &$name| Some(PartitionKey::bucket(&e.$field)));
    };
    (@impl $name:ident, $stream:expr, $subject:literal, $keyed:literal, $bucket:expr) => {
        const _: () = assert!(
            is_partitioned($subject) == $keyed,
            concat!(stringify!($name), ": a subject carries the partition (`domain.*.…`) exactly when the event has a key")
        );
        impl Event for $name {
            const TYPE: &'static str = stringify!($name);
            const STREAM: Stream = $stream;
            const SUBJECT: &'static str = $subject;

            fn bucket(&self) -> Option<Bucket> {
                ($bucket)(self)
            }
        }
    };
}

/// Every event type with its stream and subject: `(TYPE, STREAM, SUBJECT)`.
pub const ALL_EVENTS: [(&str, Stream, &str); 26] = [
    kind::<ConcertCreated>(),
    kind::<ConcertUpdated>(),
    kind::<ScheduleCreated>(),
    kind::<ScheduleChanged>(),
    kind::<ScheduleCancelled>(),
    kind::<ReservationRequested>(),
    kind::<PaymentRequested>(),
    kind::<ReservationCompleted>(),
    kind::<ReservationFailed>(),
    kind::<ReservationCancelled>(),
    kind::<RefundRequested>(),
    kind::<CardPaymentRequested>(),
    kind::<CardRefundRequested>(),
    kind::<SeatReserved>(),
    kind::<SeatReservationRejected>(),
    kind::<SeatsReleased>(),
    kind::<SoldOut>(),
    kind::<ChargeCompleted>(),
    kind::<ChargeFailed>(),
    kind::<PaymentCompleted>(),
    kind::<PaymentFailed>(),
    kind::<PaymentRefunded>(),
    kind::<UserStatusChanged>(),
    kind::<CardPaymentCompleted>(),
    kind::<CardPaymentFailed>(),
    kind::<CardPaymentRefunded>(),
];

const fn kind<E: Event>() -> (&'static str, Stream, &'static str) {
    (E::TYPE, E::STREAM, E::SUBJECT)
}

/// A seat and its price, as announced with a new schedule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeatPrice {
    pub seat_no: SeatNo,
    pub price: Won,
}

/// A concert was added to the catalog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConcertCreated {
    pub concert_id: ConcertId,
    pub name: String,
    pub host: String,
}
event!(ConcertCreated, Stream::Catalog, "catalog.concert.created");

/// A concert's name or host changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConcertUpdated {
    pub concert_id: ConcertId,
    pub name: String,
    pub host: String,
}
event!(ConcertUpdated, Stream::Catalog, "catalog.concert.updated");

/// A schedule with its seats was added; the seat service builds its inventory from this.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleCreated {
    pub schedule_id: ScheduleId,
    pub concert_id: ConcertId,
    pub starts_at: DateTime<Utc>,
    pub seats: Vec<SeatPrice>,
    /// When its sale opens: no seat is held before, and its waiting room draws the order of
    /// those who joined before at random. Absent: on sale from the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sales_open_at: Option<DateTime<Utc>>,
}
event!(ScheduleCreated, Stream::Catalog, "catalog.*.schedule.created", key = schedule_id);

/// An organizer moved a schedule: when it starts, and when its sale opens (absent: on sale
/// now). Its seats and prices never change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleChanged {
    pub schedule_id: ScheduleId,
    pub concert_id: ConcertId,
    pub starts_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sales_open_at: Option<DateTime<Utc>>,
}
event!(ScheduleChanged, Stream::Catalog, "catalog.*.schedule.changed", key = schedule_id);

/// An organizer cancelled a schedule: nothing of it is sold any more, every live reservation
/// of it fails and every confirmed one is refunded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleCancelled {
    pub schedule_id: ScheduleId,
    pub concert_id: ConcertId,
    pub cancelled_at: DateTime<Utc>,
}
event!(ScheduleCancelled, Stream::Catalog, "catalog.*.schedule.cancelled", key = schedule_id);

/// A user asked to hold seats; the saga starts here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationRequested {
    pub reservation_id: ReservationId,
    pub user_id: UserId,
    pub schedule_id: ScheduleId,
    pub seat_nos: Vec<SeatNo>,
    pub queue_token: String,
}
event!(ReservationRequested, Stream::Reservation, "reservation.*.requested", key = schedule_id);

/// The reservation asks the wallet to pay for held seats before `pay_by`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRequested {
    pub reservation_id: ReservationId,
    pub user_id: UserId,
    pub amount: Won,
    pub pay_by: DateTime<Utc>,
}
event!(PaymentRequested, Stream::Reservation, "reservation.*.payment_requested", key = reservation_id);

/// How a reservation is paid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentMethod {
    /// From the buyer's prepaid wallet (the wallet service), at once.
    #[default]
    Wallet,
    /// By card through the external gateway (the payment service): the buyer confirms on the
    /// gateway's page, and its signed webhook settles it.
    Card,
}

impl PaymentMethod {
    /// The stored and API form.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentMethod::Wallet => "WALLET",
            PaymentMethod::Card => "CARD",
        }
    }

    /// Reads the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        [PaymentMethod::Wallet, PaymentMethod::Card].into_iter().find(|m| m.as_str() == s)
    }
}

/// The reservation asks the payment service to take a card payment through the gateway before
/// `pay_by`; the buyer confirms it on the gateway's page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardPaymentRequested {
    pub reservation_id: ReservationId,
    pub user_id: UserId,
    pub amount: Won,
    pub pay_by: DateTime<Utc>,
}
event!(
    CardPaymentRequested,
    Stream::Reservation,
    "reservation.*.card.payment_requested",
    key = reservation_id
);

/// A card payment taken for a reservation that did not complete must go back through the
/// gateway (or, not taken yet, must never be).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardRefundRequested {
    pub reservation_id: ReservationId,
    pub user_id: UserId,
    pub amount: Won,
}
event!(CardRefundRequested, Stream::Reservation, "reservation.*.card.refund_requested", key = reservation_id);

/// The reservation is paid and final.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationCompleted {
    pub reservation_id: ReservationId,
    pub user_id: UserId,
    pub concert_id: ConcertId,
    pub schedule_id: ScheduleId,
    pub seat_nos: Vec<SeatNo>,
    pub amount: Won,
    pub queue_token: String,
}
event!(ReservationCompleted, Stream::Reservation, "reservation.*.completed", key = schedule_id);

/// Why a reservation ended without seats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReservationFailureReason {
    SeatUnavailable,
    PaymentFailed,
    Expired,
    Cancelled,
    Timeout,
    /// An admin blocked the user while the reservation was PENDING or HELD.
    UserBlocked,
    /// The schedule's sale had not opened (or was cancelled) when its seats were asked for.
    NotOnSale,
    /// The organizer cancelled the schedule; a paid reservation is refunded.
    ScheduleCancelled,
}

/// The reservation ended without seats; seats it held are released, the queue token restored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationFailed {
    pub reservation_id: ReservationId,
    pub user_id: UserId,
    pub schedule_id: ScheduleId,
    pub seat_nos: Vec<SeatNo>,
    pub reason: ReservationFailureReason,
    pub queue_token: String,
}
event!(ReservationFailed, Stream::Reservation, "reservation.*.failed", key = schedule_id);

/// A CONFIRMED reservation was undone (its schedule was cancelled): its seats are no longer
/// sold, and its money goes back (RefundRequested or CardRefundRequested follows).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReservationCancelled {
    pub reservation_id: ReservationId,
    pub user_id: UserId,
    pub concert_id: ConcertId,
    pub schedule_id: ScheduleId,
    pub seat_nos: Vec<SeatNo>,
    pub amount: Won,
    pub reason: ReservationFailureReason,
}
event!(ReservationCancelled, Stream::Reservation, "reservation.*.cancelled", key = schedule_id);

/// Money taken for a reservation that did not complete must go back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefundRequested {
    pub reservation_id: ReservationId,
    pub user_id: UserId,
    pub amount: Won,
}
event!(RefundRequested, Stream::Reservation, "reservation.*.refund_requested", key = reservation_id);

/// Every requested seat is held for the reservation until `held_until`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeatReserved {
    pub reservation_id: ReservationId,
    pub concert_id: ConcertId,
    pub schedule_id: ScheduleId,
    pub seat_nos: Vec<SeatNo>,
    pub amount: Won,
    pub held_until: DateTime<Utc>,
}
event!(SeatReserved, Stream::Seat, "seat.*.reserved", key = schedule_id);

/// Why seats could not be held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SeatRejectReason {
    Taken,
    NotFound,
    /// The schedule's sale has not opened yet, or the schedule was cancelled.
    NotOnSale,
}

/// None of the requested seats were held.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeatReservationRejected {
    pub reservation_id: ReservationId,
    pub schedule_id: ScheduleId,
    pub seat_nos: Vec<SeatNo>,
    pub reason: SeatRejectReason,
}
event!(SeatReservationRejected, Stream::Seat, "seat.*.rejected", key = schedule_id);

/// Seats held for the reservation are available again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SeatsReleased {
    pub reservation_id: ReservationId,
    pub schedule_id: ScheduleId,
    pub seat_nos: Vec<SeatNo>,
}
event!(SeatsReleased, Stream::Seat, "seat.*.released", key = schedule_id);

/// The last seat of a schedule was sold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SoldOut {
    pub schedule_id: ScheduleId,
    pub concert_id: ConcertId,
    pub sold_out_at: DateTime<Utc>,
    pub seconds_to_sell_out: i64,
}
event!(SoldOut, Stream::Seat, "seat.*.sold_out", key = schedule_id);

/// A wallet was topped up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChargeCompleted {
    pub charge_id: ChargeId,
    pub user_id: UserId,
    pub amount: Won,
    pub balance: Won,
}
event!(ChargeCompleted, Stream::Wallet, "wallet.charge.completed");

/// A reservation was paid from the wallet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentCompleted {
    pub payment_id: PaymentId,
    pub reservation_id: ReservationId,
    pub user_id: UserId,
    pub amount: Won,
    pub balance: Won,
}
event!(PaymentCompleted, Stream::Wallet, "wallet.*.payment.completed", key = reservation_id);

/// Why a top-up was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChargeFailureReason {
    /// The balance would pass its cap.
    BalanceLimit,
}

/// The wallet refused a top-up; the balance is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChargeFailed {
    pub charge_id: ChargeId,
    pub user_id: UserId,
    pub amount: Won,
    pub reason: ChargeFailureReason,
}
event!(ChargeFailed, Stream::Wallet, "wallet.charge.failed");

/// Why a payment was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentFailureReason {
    InsufficientBalance,
    DeadlinePassed,
    /// The card was declined on the gateway: the buyer may pay again while the seats are held.
    CardDeclined,
    /// The gateway could not be reached to start the payment: the buyer may pay again.
    GatewayUnavailable,
}

impl PaymentFailureReason {
    /// Whether the buyer may pay again while the hold lasts (the seats stay held): a refusal
    /// of this attempt, not of the reservation.
    pub fn retryable(self) -> bool {
        !matches!(self, PaymentFailureReason::DeadlinePassed)
    }
}

/// The wallet refused to pay; nothing was debited.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentFailed {
    pub reservation_id: ReservationId,
    pub user_id: UserId,
    pub amount: Won,
    pub reason: PaymentFailureReason,
}
event!(PaymentFailed, Stream::Wallet, "wallet.*.payment.failed", key = reservation_id);

/// A payment was returned to the wallet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentRefunded {
    pub payment_id: PaymentId,
    pub reservation_id: ReservationId,
    pub user_id: UserId,
    pub amount: Won,
    pub balance: Won,
}
event!(PaymentRefunded, Stream::Wallet, "wallet.*.payment.refunded", key = reservation_id);

/// A card payment was captured by the gateway for a reservation, in time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardPaymentCompleted {
    pub payment_id: PaymentId,
    pub reservation_id: ReservationId,
    pub user_id: UserId,
    pub amount: Won,
}
event!(CardPaymentCompleted, Stream::Payment, "payment.*.completed", key = reservation_id);

/// A card payment was declined, could not start, or was captured too late (and is refunded
/// through the gateway); nothing stays charged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardPaymentFailed {
    pub payment_id: PaymentId,
    pub reservation_id: ReservationId,
    pub user_id: UserId,
    pub amount: Won,
    pub reason: PaymentFailureReason,
}
event!(CardPaymentFailed, Stream::Payment, "payment.*.failed", key = reservation_id);

/// A captured card payment was given back through the gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardPaymentRefunded {
    pub payment_id: PaymentId,
    pub reservation_id: ReservationId,
    pub user_id: UserId,
    pub amount: Won,
}
event!(CardPaymentRefunded, Stream::Payment, "payment.*.refunded", key = reservation_id);

/// A message a consumer could not handle, kept on `dlq.<service>` so nothing is lost.
/// It is published as-is (not in an envelope): it must be writable even when the original
/// could not be read at all.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub original_subject: String,
    pub stream_sequence: u64,
    /// The envelope id, when the body could be read that far.
    pub event_id: Option<String>,
    /// The envelope type, when known.
    pub event_type: Option<String>,
    pub consumer: String,
    pub deliveries: u64,
    pub reason: String,
    pub failed_at: DateTime<Utc>,
    /// The original headers as `[name, value]` pairs, so a replay carries the same trace context.
    #[schema(value_type = Vec<Vec<String>>)]
    pub original_headers: Vec<(String, String)>,
    /// The original body, base64 (standard alphabet), so bytes that are not UTF-8 survive.
    pub original_body: String,
}

/// Whether an account may sign in and book.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UserStatus {
    Active,
    Blocked,
}

/// An admin blocked or unblocked an account. `changedAt` orders the changes of one account:
/// a consumer keeps the newest it has seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserStatusChanged {
    pub user_id: UserId,
    pub status: UserStatus,
    pub changed_at: DateTime<Utc>,
}
event!(UserStatusChanged, Stream::User, "user.status_changed");

/// The JSON Schema of every event's payload (named by its `TYPE`), of the envelope's fields
/// (`EnvelopeMeta`) and of a dead letter, with every schema they refer to; each name once. The
/// event contract's document (`nats/asyncapi.json`) is made of these.
pub fn schemas() -> Vec<(String, RefOr<Schema>)> {
    fn add<T: ToSchema>(out: &mut Vec<(String, RefOr<Schema>)>) {
        out.push((T::name().into_owned(), T::schema()));
        T::schemas(out);
    }
    let mut out = Vec::new();
    add::<ConcertCreated>(&mut out);
    add::<ConcertUpdated>(&mut out);
    add::<ScheduleCreated>(&mut out);
    add::<ScheduleChanged>(&mut out);
    add::<ScheduleCancelled>(&mut out);
    add::<ReservationRequested>(&mut out);
    add::<PaymentRequested>(&mut out);
    add::<ReservationCompleted>(&mut out);
    add::<ReservationFailed>(&mut out);
    add::<ReservationCancelled>(&mut out);
    add::<RefundRequested>(&mut out);
    add::<CardPaymentRequested>(&mut out);
    add::<CardRefundRequested>(&mut out);
    add::<SeatReserved>(&mut out);
    add::<SeatReservationRejected>(&mut out);
    add::<SeatsReleased>(&mut out);
    add::<SoldOut>(&mut out);
    add::<ChargeCompleted>(&mut out);
    add::<ChargeFailed>(&mut out);
    add::<PaymentCompleted>(&mut out);
    add::<PaymentFailed>(&mut out);
    add::<PaymentRefunded>(&mut out);
    add::<UserStatusChanged>(&mut out);
    add::<CardPaymentCompleted>(&mut out);
    add::<CardPaymentFailed>(&mut out);
    add::<CardPaymentRefunded>(&mut out);
    add::<PaymentMethod>(&mut out);
    add::<crate::EnvelopeMeta>(&mut out);
    add::<DeadLetter>(&mut out);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Envelope, EventId, ReservationId};
    use serde_json::json;

    #[test]
    fn every_event_has_a_schema_by_its_type() {
        let named: Vec<String> = schemas().into_iter().map(|(name, _)| name).collect();
        for (kind, ..) in ALL_EVENTS {
            assert!(named.iter().any(|n| n == kind), "{kind} has no schema");
        }
        for shared in ["EnvelopeMeta", "DeadLetter", "SeatNo", "Won", "ReservationId"] {
            assert!(named.iter().any(|n| n == shared), "{shared} has no schema: {named:?}");
        }
    }

    #[test]
    fn payloads_are_camel_case_with_screaming_reasons() {
        let e = ReservationFailed {
            reservation_id: ReservationId::new(),
            user_id: UserId::new(),
            schedule_id: ScheduleId::new(),
            seat_nos: vec![SeatNo(3)],
            reason: ReservationFailureReason::SeatUnavailable,
            queue_token: "q".into(),
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["seatNos"], json!([3]));
        assert_eq!(v["reason"], json!("SEAT_UNAVAILABLE"));
        assert!(v.get("queueToken").is_some());
    }

    #[test]
    fn envelope_round_trips_through_raw_json() {
        let env = Envelope::new(
            "seat",
            ReservationId::new(),
            SeatsReleased {
                reservation_id: ReservationId::new(),
                schedule_id: ScheduleId::new(),
                seat_nos: vec![SeatNo(1)],
            },
        );
        let text = serde_json::to_string(&env).unwrap();
        assert!(text.contains("\"type\":\"SeatsReleased\""));
        assert!(text.contains("\"occurredAt\""));
        let raw: Envelope<serde_json::Value> = serde_json::from_str(&text).unwrap();
        assert_eq!(raw.clone().decode::<SeatsReleased>().unwrap(), env);
        assert!(raw.decode::<SoldOut>().is_err());
    }

    #[test]
    fn caused_by_carries_the_correlation() {
        let first = Envelope::new(
            "a",
            ReservationId::new(),
            RefundRequested { reservation_id: ReservationId::new(), user_id: UserId::new(), amount: Won(1) },
        );
        let next = Envelope::new(
            "b",
            EventId::new().0,
            PaymentFailed {
                reservation_id: ReservationId::new(),
                user_id: UserId::new(),
                amount: Won(1),
                reason: PaymentFailureReason::DeadlinePassed,
            },
        )
        .caused_by(&first.meta());
        assert_eq!(next.causation_id, Some(first.id));
        assert_eq!(next.correlation_id, first.correlation_id);
    }
}
