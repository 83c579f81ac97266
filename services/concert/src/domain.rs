//! The catalog's rules, without IO.

use chrono::{DateTime, Utc};
use contracts::{SeatNo, SeatPrice, Won};
use serde::{Deserialize, Serialize};

/// Seats a schedule may have.
pub const MAX_SEATS: i32 = 50;
/// The most one seat may cost.
pub const MAX_PRICE: i64 = 10_000_000;

/// A concert's name or host, as the API documents it (`ConcertRequest`'s pattern): at most 200
/// characters, no control characters, not blank; kept without the blanks around it.
pub fn label(field: &str, raw: &str) -> Result<String, String> {
    if raw.chars().any(|c| c.is_control()) {
        return Err(format!("{field} must not hold control characters"));
    }
    let v = raw.trim_matches(is_blank);
    if v.is_empty() || raw.chars().count() > 200 {
        return Err(format!("{field} must be 1-200 characters, not all blank"));
    }
    Ok(v.to_owned())
}

/// The blank characters a label is trimmed of: Unicode's white space that is not a control
/// character, listed as the documented pattern lists them (so no regex engine's own `\s` decides).
fn is_blank(c: char) -> bool {
    matches!(
        c,
        ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}'
    )
}

/// One seat of a schedule request.
#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeatSpec {
    /// 1-50, each seat once.
    #[schema(minimum = 1, maximum = 50)]
    pub seat_no: i32,
    /// In won, 1-10,000,000.
    #[schema(minimum = 1, maximum = 10_000_000)]
    pub price: i64,
}

/// `{startsAt, seatCount?=50, price}` or `{startsAt, seats: [{seatNo, price}]}`.
#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"startsAt": "2030-05-01T19:00:00Z", "seatCount": 50, "price": 90000}))]
pub struct ScheduleRequest {
    /// When the performance starts; must be in the future.
    pub starts_at: DateTime<Utc>,
    /// With `price`: seats 1..=seatCount (1-50, default 50), all at that price.
    #[schema(minimum = 1, maximum = 50)]
    pub seat_count: Option<i32>,
    /// With `seatCount`: the price of every seat, in won (1-10,000,000).
    #[schema(minimum = 1, maximum = 10_000_000)]
    pub price: Option<i64>,
    /// Instead of `seatCount` and `price`: each seat with its own price.
    pub seats: Option<Vec<SeatSpec>>,
}

fn price(raw: i64) -> Result<Won, String> {
    if (1..=MAX_PRICE).contains(&raw) {
        Ok(Won(raw))
    } else {
        Err(format!("price must be 1-{MAX_PRICE} won"))
    }
}

/// The seats a schedule request describes, validated: 1-50 seats numbered 1-50, each once,
/// each with a price, starting in the future.
pub fn plan_schedule(req: &ScheduleRequest, now: DateTime<Utc>) -> Result<Vec<SeatPrice>, String> {
    if req.starts_at <= now {
        return Err("startsAt must be in the future".into());
    }
    let seats = match (&req.seats, req.price) {
        (Some(_), Some(_)) => return Err("give either price (with seatCount) or seats, not both".into()),
        (None, None) => return Err("give price (with an optional seatCount) or seats".into()),
        (None, Some(p)) => {
            let count = req.seat_count.unwrap_or(MAX_SEATS);
            if !(1..=MAX_SEATS).contains(&count) {
                return Err(format!("seatCount must be 1-{MAX_SEATS}"));
            }
            let p = price(p)?;
            (1..=count).map(|n| SeatPrice { seat_no: SeatNo(n), price: p }).collect::<Vec<_>>()
        }
        (Some(list), None) => {
            if list.is_empty() || list.len() > MAX_SEATS as usize {
                return Err(format!("seats must list 1-{MAX_SEATS} seats"));
            }
            if let Some(count) = req.seat_count
                && usize::try_from(count).ok() != Some(list.len())
            {
                return Err("seatCount does not match the number of seats".into());
            }
            let mut out = Vec::with_capacity(list.len());
            for s in list {
                if !(1..=MAX_SEATS).contains(&s.seat_no) {
                    return Err(format!("seatNo {} is outside 1-{MAX_SEATS}", s.seat_no));
                }
                if out.iter().any(|o: &SeatPrice| o.seat_no.0 == s.seat_no) {
                    return Err(format!("seatNo {} is listed twice", s.seat_no));
                }
                out.push(SeatPrice { seat_no: SeatNo(s.seat_no), price: price(s.price)? });
            }
            out.sort_by_key(|s| s.seat_no);
            out
        }
    };
    Ok(seats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn req(seat_count: Option<i32>, price: Option<i64>, seats: Option<Vec<(i32, i64)>>) -> ScheduleRequest {
        ScheduleRequest {
            starts_at: Utc::now() + Duration::days(1),
            seat_count,
            price,
            seats: seats.map(|s| s.into_iter().map(|(seat_no, price)| SeatSpec { seat_no, price }).collect()),
        }
    }

    #[test]
    fn a_uniform_price_makes_fifty_seats_by_default() {
        let seats = plan_schedule(&req(None, Some(50_000), None), Utc::now()).unwrap();
        assert_eq!(seats.len(), 50);
        assert_eq!(seats[49], SeatPrice { seat_no: SeatNo(50), price: Won(50_000) });
    }

    #[test]
    fn listed_seats_are_checked() {
        assert!(plan_schedule(&req(None, None, Some(vec![(1, 10), (2, 20)])), Utc::now()).is_ok());
        for bad in [
            req(None, None, Some(vec![(1, 10), (1, 20)])),
            req(None, None, Some(vec![(51, 10)])),
            req(None, None, Some(vec![(0, 10)])),
            req(None, None, Some(vec![(1, 0)])),
            req(None, None, Some(vec![])),
            req(Some(3), None, Some(vec![(1, 10)])),
            req(None, Some(10), Some(vec![(1, 10)])),
            req(None, None, None),
            req(Some(51), Some(10), None),
            req(Some(0), Some(10), None),
            req(None, Some(MAX_PRICE + 1), None),
        ] {
            assert!(plan_schedule(&bad, Utc::now()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn schedules_start_in_the_future() {
        let mut r = req(None, Some(10), None);
        r.starts_at = Utc::now() - Duration::minutes(1);
        assert!(plan_schedule(&r, Utc::now()).is_err());
    }

    #[test]
    fn the_documented_bounds_are_the_rules() {
        use utoipa::PartialSchema;
        let request = serde_json::to_value(ScheduleRequest::schema()).unwrap();
        let seat = serde_json::to_value(SeatSpec::schema()).unwrap();
        let max_seats = i64::from(MAX_SEATS);
        for (schema, field, max) in [
            (&request, "seatCount", max_seats),
            (&request, "price", MAX_PRICE),
            (&seat, "seatNo", max_seats),
            (&seat, "price", MAX_PRICE),
        ] {
            assert_eq!(schema["properties"][field]["minimum"], 1, "{field}");
            assert_eq!(schema["properties"][field]["maximum"], max, "{field}");
        }
    }

    #[test]
    fn labels_are_trimmed_and_bounded() {
        assert_eq!(label("name", "  Rock  ").unwrap(), "Rock");
        assert_eq!(label("name", "\u{3000}Rock\u{a0}").unwrap(), "Rock");
        assert!(label("name", "   ").is_err());
        assert!(label("name", &"x".repeat(201)).is_err());
        assert!(label("name", &format!("{} ", "x".repeat(200))).is_err(), "the limit counts what was sent");
        for control in ["a\u{0}b", "a\nb", "\u{7f}", "a\u{85}"] {
            assert!(label("name", control).unwrap_err().contains("control"), "{control:?}");
        }
    }
}
