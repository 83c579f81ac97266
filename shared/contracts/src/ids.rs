//! Typed identifiers and values, so a seat number is never passed where a price is expected.
//! Each is also a database value: a row's column reads straight into it, and it binds as a
//! statement's parameter.

use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;
use uuid::Uuid;

macro_rules! uuid_id {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
        #[derive(sea_orm::DeriveValueType)]
        #[serde(transparent)]
        #[schema(value_type = String, format = Uuid)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered (UUIDv7) identifier.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    )*};
}

uuid_id!(
    /// Identifies one event (the envelope `id`, also `Nats-Msg-Id`).
    EventId,
    /// A user, as named by the JWT `sub` claim.
    UserId,
    /// A concert in the catalog.
    ConcertId,
    /// One performance (date and venue) of a concert; owns the seats.
    ScheduleId,
    /// A reservation: one saga instance.
    ReservationId,
    /// A debit of a wallet for one reservation.
    PaymentId,
    /// A top-up of a wallet.
    ChargeId,
);

/// A seat number within a schedule (1-based).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    ToSchema,
    sea_orm::DeriveValueType,
)]
#[serde(transparent)]
#[schema(example = 7)]
pub struct SeatNo(pub i32);

impl fmt::Display for SeatNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An amount of money in whole won. Never a float.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    ToSchema,
    sea_orm::DeriveValueType,
)]
#[serde(transparent)]
#[schema(example = 90000)]
pub struct Won(pub i64);

impl Won {
    /// Adds two amounts, `None` on overflow.
    pub fn checked_add(self, other: Won) -> Option<Won> {
        self.0.checked_add(other.0).map(Won)
    }
}

impl fmt::Display for Won {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} won", self.0)
    }
}

impl std::iter::Sum for Won {
    fn sum<I: Iterator<Item = Won>>(iter: I) -> Won {
        Won(iter.map(|w| w.0).sum())
    }
}
