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
    #[serde(deserialize_with = "platform::whole::number")]
    pub seat_no: i32,
    /// In won, 1-10,000,000.
    #[schema(minimum = 1, maximum = 10_000_000)]
    #[serde(deserialize_with = "platform::whole::number")]
    pub price: i64,
}

/// `{startsAt, seatCount?=50, price}` or `{startsAt, seats: [{seatNo, price}]}`: one struct, so
/// a request in neither shape is told which rule it breaks. It is documented as the one of two
/// shapes it is ([`ScheduleShape`]).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScheduleRequest {
    pub starts_at: DateTime<Utc>,
    #[serde(default, deserialize_with = "platform::whole::optional")]
    pub seat_count: Option<i32>,
    #[serde(default, deserialize_with = "platform::whole::optional")]
    pub price: Option<i64>,
    pub seats: Option<Vec<SeatSpec>>,
    #[serde(default)]
    pub sales_open_at: Option<DateTime<Utc>>,
}

/// A new schedule: every seat at one price, or each seat with its own.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[allow(dead_code, reason = "documents ScheduleRequest, which is what the route reads")]
#[serde(untagged)]
#[schema(example = json!({"startsAt": "2030-05-01T19:00:00Z", "seatCount": 50, "price": 90000}))]
pub enum ScheduleShape {
    Uniform(UniformSchedule),
    Seated(SeatedSchedule),
}

/// Seats 1..=seatCount, all at `price`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only")]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UniformSchedule {
    /// When the performance starts; must be in the future (else 422).
    pub starts_at: DateTime<Utc>,
    /// 1-50, default 50.
    #[schema(minimum = 1, maximum = 50)]
    pub seat_count: Option<i32>,
    /// The price of every seat, in won.
    #[schema(minimum = 1, maximum = 10_000_000)]
    pub price: i64,
    /// When its sale opens, before `startsAt` (else 422). Until then no seat is held, and its
    /// waiting room (`POST /queue/tokens {"scheduleId"}`) takes joins in an order drawn at
    /// random; from then on, first come first served. Absent: on sale at once.
    pub sales_open_at: Option<DateTime<Utc>>,
}

/// Each seat with its own price.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only")]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeatedSchedule {
    /// When the performance starts; must be in the future (else 422).
    pub starts_at: DateTime<Utc>,
    /// If given, the number of seats listed (else 422).
    #[schema(minimum = 1, maximum = 50)]
    pub seat_count: Option<i32>,
    /// 1-50 seats, each seat number once (else 422).
    #[schema(min_items = 1, max_items = 50)]
    pub seats: Vec<SeatSpec>,
    /// When its sale opens, before `startsAt` (else 422). Until then no seat is held, and its
    /// waiting room (`POST /queue/tokens {"scheduleId"}`) takes joins in an order drawn at
    /// random; from then on, first come first served. Absent: on sale at once.
    pub sales_open_at: Option<DateTime<Utc>>,
}

/// Why a schedule request is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// Not in a documented shape, or out of a documented bound (400).
    Malformed(String),
    /// In its shape, but breaking a rule a shape cannot say: a start in the past, a seat number
    /// listed twice, a `seatCount` that is not the number of seats (422).
    Refused(String),
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
pub fn plan_schedule(req: &ScheduleRequest, now: DateTime<Utc>) -> Result<Vec<SeatPrice>, PlanError> {
    let seats = match (&req.seats, req.price) {
        (Some(_), Some(_)) => {
            return Err(PlanError::Malformed("give either price (with seatCount) or seats, not both".into()));
        }
        (None, None) => {
            return Err(PlanError::Malformed("give price (with an optional seatCount) or seats".into()));
        }
        (None, Some(p)) => {
            let count = req.seat_count.unwrap_or(MAX_SEATS);
            if !(1..=MAX_SEATS).contains(&count) {
                return Err(PlanError::Malformed(format!("seatCount must be 1-{MAX_SEATS}")));
            }
            let p = price(p).map_err(PlanError::Malformed)?;
            (1..=count).map(|n| SeatPrice { seat_no: SeatNo(n), price: p }).collect::<Vec<_>>()
        }
        (Some(list), None) => {
            if list.is_empty() || list.len() > MAX_SEATS as usize {
                return Err(PlanError::Malformed(format!("seats must list 1-{MAX_SEATS} seats")));
            }
            if let Some(count) = req.seat_count
                && usize::try_from(count).ok() != Some(list.len())
            {
                return Err(PlanError::Refused("seatCount does not match the number of seats".into()));
            }
            let mut out = Vec::with_capacity(list.len());
            for s in list {
                if !(1..=MAX_SEATS).contains(&s.seat_no) {
                    return Err(PlanError::Malformed(format!(
                        "seatNo {} is outside 1-{MAX_SEATS}",
                        s.seat_no
                    )));
                }
                if out.iter().any(|o: &SeatPrice| o.seat_no.0 == s.seat_no) {
                    return Err(PlanError::Refused(format!("seatNo {} is listed twice", s.seat_no)));
                }
                out.push(SeatPrice {
                    seat_no: SeatNo(s.seat_no),
                    price: price(s.price).map_err(PlanError::Malformed)?,
                });
            }
            out.sort_by_key(|s| s.seat_no);
            out
        }
    };
    plan_times(req.starts_at, req.sales_open_at, now)?;
    Ok(seats)
}

/// A schedule moved: when it starts, and when its sale opens (absent: on sale now). Its seats
/// and prices stay as they are.
#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"startsAt": "2030-05-02T19:00:00Z", "salesOpenAt": "2030-04-01T10:00:00Z"}))]
pub struct ScheduleChange {
    /// When the performance starts; must be in the future (else 422).
    pub starts_at: DateTime<Utc>,
    /// When its sale opens, before `startsAt` (else 422); absent: on sale from now.
    #[serde(default)]
    pub sales_open_at: Option<DateTime<Utc>>,
}

/// A schedule's times as `plan_schedule` and a change check them: it starts in the future,
/// and its sale opens before it starts.
pub fn plan_times(
    starts_at: DateTime<Utc>,
    sales_open_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), PlanError> {
    if starts_at <= now {
        return Err(PlanError::Refused("startsAt must be in the future".into()));
    }
    if sales_open_at.is_some_and(|opens| opens >= starts_at) {
        return Err(PlanError::Refused("salesOpenAt must be before startsAt".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use serde_json::json;

    fn req(seat_count: Option<i32>, price: Option<i64>, seats: Option<Vec<(i32, i64)>>) -> ScheduleRequest {
        ScheduleRequest {
            starts_at: Utc::now() + Duration::days(1),
            seat_count,
            price,
            seats: seats.map(|s| s.into_iter().map(|(seat_no, price)| SeatSpec { seat_no, price }).collect()),
            sales_open_at: None,
        }
    }

    #[test]
    fn a_sale_opens_before_the_performance_starts() {
        let mut r = req(None, Some(50_000), None);
        r.sales_open_at = Some(r.starts_at - Duration::hours(1));
        assert!(plan_schedule(&r, Utc::now()).is_ok());
        r.sales_open_at = Some(Utc::now() - Duration::hours(1));
        assert!(plan_schedule(&r, Utc::now()).is_ok(), "a sale may have opened already");
        r.sales_open_at = Some(r.starts_at);
        assert!(matches!(plan_schedule(&r, Utc::now()), Err(PlanError::Refused(_))));
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
        assert!(matches!(plan_schedule(&r, Utc::now()), Err(PlanError::Refused(_))));
    }

    /// 400 for what the documented shapes refuse, 422 for what they cannot say.
    #[test]
    fn what_the_shapes_cannot_say_is_refused_apart() {
        for refused in
            [req(None, None, Some(vec![(1, 10), (1, 20)])), req(Some(3), None, Some(vec![(1, 10)]))]
        {
            assert!(matches!(plan_schedule(&refused, Utc::now()), Err(PlanError::Refused(_))), "{refused:?}");
        }
        for malformed in
            [req(None, Some(10), Some(vec![(1, 10)])), req(None, None, None), req(None, None, Some(vec![]))]
        {
            assert!(
                matches!(plan_schedule(&malformed, Utc::now()), Err(PlanError::Malformed(_))),
                "{malformed:?}"
            );
        }
    }

    /// A request in one of the documented shapes is read by the route; one in neither is not.
    #[test]
    fn the_documented_shapes_are_what_the_route_reads() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(ScheduleShape::schema()).unwrap();
        assert_eq!(schema["oneOf"].as_array().map(Vec::len), Some(2), "{schema}");
        for body in [
            json!({"startsAt": "2030-05-01T19:00:00Z", "price": 5}),
            json!({"startsAt": "2030-05-01T19:00:00Z", "seatCount": 3, "price": 5}),
            json!({"startsAt": "2030-05-01T19:00:00Z", "seats": [{"seatNo": 1, "price": 5}]}),
        ] {
            serde_json::from_value::<ScheduleShape>(body.clone()).unwrap();
            let read: ScheduleRequest = serde_json::from_value(body.clone()).unwrap();
            plan_schedule(&read, Utc::now()).unwrap();
        }
        // JSON Schema's integers: 5.0 is one.
        let floats = json!({"startsAt": "2030-05-01T19:00:00Z", "seatCount": 3.0, "price": 5.0});
        assert_eq!(plan_schedule(&serde_json::from_value(floats).unwrap(), Utc::now()).unwrap().len(), 3);
        for body in [
            json!({"startsAt": "2030-05-01T19:00:00Z", "price": 5, "seats": [{"seatNo": 1, "price": 5}]}),
            json!({"startsAt": "2030-05-01T19:00:00Z"}),
            json!({"startsAt": "2030-05-01T19:00:00Z", "price": 5, "extra": 1}),
        ] {
            assert!(serde_json::from_value::<ScheduleShape>(body.clone()).is_err(), "{body}");
            let read = serde_json::from_value::<ScheduleRequest>(body.clone());
            assert!(
                read.map_or(true, |r| matches!(plan_schedule(&r, Utc::now()), Err(PlanError::Malformed(_)))),
                "{body}"
            );
        }
    }

    #[test]
    fn the_documented_bounds_are_the_rules() {
        use utoipa::PartialSchema;
        let uniform = serde_json::to_value(UniformSchedule::schema()).unwrap();
        let seated = serde_json::to_value(SeatedSchedule::schema()).unwrap();
        let seat = serde_json::to_value(SeatSpec::schema()).unwrap();
        let max_seats = i64::from(MAX_SEATS);
        for shape in [&uniform, &seated] {
            assert_eq!(shape["additionalProperties"], false, "{shape}");
        }
        assert_eq!(uniform["required"], json!(["startsAt", "price"]));
        assert_eq!(seated["required"], json!(["startsAt", "seats"]));
        assert_eq!(
            (&seated["properties"]["seats"]["minItems"], &seated["properties"]["seats"]["maxItems"]),
            (&1.into(), &max_seats.into())
        );
        for (schema, field, max) in [
            (&uniform, "seatCount", max_seats),
            (&seated, "seatCount", max_seats),
            (&uniform, "price", MAX_PRICE),
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
