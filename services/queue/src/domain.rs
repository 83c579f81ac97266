//! The waiting room's arithmetic, without IO.

use std::time::Duration;

/// A token's place in the waiting room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenStatus {
    Waiting,
    Active,
    Expired,
    /// The sale the token waited for is sold out: there is nothing left to be admitted to.
    SoldOut,
}

impl TokenStatus {
    /// The stored and API form.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::Waiting => "WAITING",
            TokenStatus::Active => "ACTIVE",
            TokenStatus::Expired => "EXPIRED",
            TokenStatus::SoldOut => "SOLD_OUT",
        }
    }

    /// Reads the stored form (anything unknown counts as expired).
    pub fn parse(s: &str) -> Self {
        match s {
            "WAITING" => TokenStatus::Waiting,
            "ACTIVE" => TokenStatus::Active,
            "SOLD_OUT" => TokenStatus::SoldOut,
            _ => TokenStatus::Expired,
        }
    }
}

/// Users admitted per second at the configured pace.
pub fn admission_rate(admit_per_tick: u32, tick: Duration) -> f64 {
    f64::from(admit_per_tick) / tick.as_secs_f64().max(0.001)
}

/// Seconds until the token at `position` (1 = next) is admitted: position ÷ admission rate,
/// rounded up to whole ticks. 0 once admitted.
pub fn eta_seconds(position: u64, admit_per_tick: u32, tick: Duration) -> u64 {
    if position == 0 {
        return 0;
    }
    let ticks = position.div_ceil(u64::from(admit_per_tick.max(1)));
    (ticks as f64 * tick.as_secs_f64()).ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_is_position_over_rate_in_whole_ticks() {
        let tick = Duration::from_secs(1);
        assert_eq!(eta_seconds(0, 10, tick), 0);
        assert_eq!(eta_seconds(1, 10, tick), 1);
        assert_eq!(eta_seconds(10, 10, tick), 1);
        assert_eq!(eta_seconds(11, 10, tick), 2);
        assert_eq!(eta_seconds(1000, 100, Duration::from_millis(500)), 5);
        assert_eq!(admission_rate(100, Duration::from_millis(500)), 200.0);
    }

    #[test]
    fn unknown_statuses_count_as_expired() {
        assert_eq!(TokenStatus::parse("ACTIVE"), TokenStatus::Active);
        assert_eq!(TokenStatus::parse("SOLD_OUT"), TokenStatus::SoldOut);
        assert_eq!(TokenStatus::parse("??"), TokenStatus::Expired);
    }
}
