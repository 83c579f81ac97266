//! The inventory's rules, without IO.

use chrono::{DateTime, Utc};
use contracts::{ReservationId, SeatNo, SeatRejectReason, Won};

/// A seat's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SeatStatus {
    Available,
    Held,
    Sold,
}

impl SeatStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            SeatStatus::Available => "AVAILABLE",
            SeatStatus::Held => "HELD",
            SeatStatus::Sold => "SOLD",
        }
    }

    /// Reads the stored (and query-string) form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "AVAILABLE" => Some(SeatStatus::Available),
            "HELD" => Some(SeatStatus::Held),
            "SOLD" => Some(SeatStatus::Sold),
            _ => None,
        }
    }
}

/// One seat as the hold decision sees it (and as its row reads).
#[derive(Clone, Debug, PartialEq, Eq, sea_orm::FromQueryResult)]
pub struct Seat {
    pub seat_no: SeatNo,
    pub price: Won,
    pub status: SeatStatus,
    pub reservation_id: Option<ReservationId>,
}

/// What to do with a hold request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HoldDecision {
    /// Hold every requested seat; they cost `amount` together.
    Hold { amount: Won },
    /// Hold none of them.
    Reject(SeatRejectReason),
    /// This reservation holds them already (a replayed request): answer as before.
    AlreadyHeld { amount: Won },
}

/// Whether a schedule whose sale opens at `opens` is on sale at `now`: nothing is held before
/// its opening, nor once it is `cancelled`.
pub fn on_sale(opens: Option<DateTime<Utc>>, cancelled: bool, now: DateTime<Utc>) -> bool {
    !cancelled && opens.is_none_or(|opens| opens <= now)
}

/// All or nothing: every requested seat must exist and be available (`found` are the rows
/// that exist among the requested ones), and the schedule must be [`on_sale`]: off sale,
/// nothing is held, not even again.
pub fn decide_hold(
    reservation: ReservationId,
    requested: &[SeatNo],
    found: &[Seat],
    on_sale: bool,
) -> HoldDecision {
    if !on_sale {
        return HoldDecision::Reject(SeatRejectReason::NotOnSale);
    }
    if requested.is_empty() || found.len() != requested.len() {
        return HoldDecision::Reject(SeatRejectReason::NotFound);
    }
    let amount = found.iter().map(|s| s.price).sum();
    if found.iter().all(|s| s.status == SeatStatus::Held && s.reservation_id == Some(reservation)) {
        return HoldDecision::AlreadyHeld { amount };
    }
    if found.iter().all(|s| s.status == SeatStatus::Available) {
        HoldDecision::Hold { amount }
    } else {
        HoldDecision::Reject(SeatRejectReason::Taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_states_are_the_stored_ones() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(SeatStatus::schema()).unwrap();
        let documented: Vec<&str> =
            schema["enum"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
        let stored = [SeatStatus::Available, SeatStatus::Held, SeatStatus::Sold].map(SeatStatus::as_str);
        assert_eq!(documented, stored);
    }

    fn seat(n: i32, status: SeatStatus, by: Option<ReservationId>) -> Seat {
        Seat { seat_no: SeatNo(n), price: Won(100 * i64::from(n)), status, reservation_id: by }
    }

    #[test]
    fn a_sale_is_on_from_its_opening_instant_until_cancelled() {
        let now = Utc::now();
        assert!(on_sale(None, false, now));
        assert!(on_sale(Some(now), false, now));
        assert!(on_sale(Some(now - chrono::Duration::seconds(1)), false, now));
        assert!(!on_sale(Some(now + chrono::Duration::milliseconds(1)), false, now));
        assert!(!on_sale(None, true, now), "a cancelled schedule is off sale for good");
    }

    #[test]
    fn off_sale_nothing_is_held_not_even_again() {
        let r = ReservationId::new();
        let free = [seat(1, SeatStatus::Available, None)];
        let mine = [seat(1, SeatStatus::Held, Some(r))];
        for found in [&free[..], &mine[..]] {
            assert_eq!(
                decide_hold(r, &[SeatNo(1)], found, false),
                HoldDecision::Reject(SeatRejectReason::NotOnSale)
            );
        }
    }

    #[test]
    fn all_available_seats_are_held_together() {
        let r = ReservationId::new();
        let found = [seat(1, SeatStatus::Available, None), seat(2, SeatStatus::Available, None)];
        assert_eq!(
            decide_hold(r, &[SeatNo(1), SeatNo(2)], &found, true),
            HoldDecision::Hold { amount: Won(300) }
        );
    }

    #[test]
    fn one_taken_seat_rejects_the_whole_request() {
        let r = ReservationId::new();
        let other = Some(ReservationId::new());
        let found = [seat(1, SeatStatus::Available, None), seat(2, SeatStatus::Held, other)];
        assert_eq!(
            decide_hold(r, &[SeatNo(1), SeatNo(2)], &found, true),
            HoldDecision::Reject(SeatRejectReason::Taken)
        );
        let sold = [seat(1, SeatStatus::Sold, other)];
        assert_eq!(decide_hold(r, &[SeatNo(1)], &sold, true), HoldDecision::Reject(SeatRejectReason::Taken));
    }

    #[test]
    fn unknown_seats_reject_with_not_found() {
        let r = ReservationId::new();
        let found = [seat(1, SeatStatus::Available, None)];
        assert_eq!(
            decide_hold(r, &[SeatNo(1), SeatNo(99)], &found, true),
            HoldDecision::Reject(SeatRejectReason::NotFound)
        );
    }

    #[test]
    fn seats_already_held_by_the_same_reservation_are_not_held_twice() {
        let r = ReservationId::new();
        let found = [seat(3, SeatStatus::Held, Some(r))];
        assert_eq!(
            decide_hold(r, &[SeatNo(3)], &found, true),
            HoldDecision::AlreadyHeld { amount: Won(300) }
        );
    }
}
