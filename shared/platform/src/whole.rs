//! Whole numbers in request bodies, as JSON Schema's `integer` has them: `5` and `5.0` alike
//! (a client that writes every number as a float sends the same request). For fields that are
//! integers in the documents: `#[serde(deserialize_with = "platform::whole::number")]`, and
//! [`optional`] (with `#[serde(default)]`) or [`list`] beside it.

use serde::{Deserialize, Deserializer};

/// A JSON number that is whole and fits `T`.
fn whole<T: TryFrom<i64>, E: serde::de::Error>(n: &serde_json::Number) -> Result<T, E> {
    let exact = n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= i64::MIN as f64 && *f < i64::MAX as f64)
            .map(|f| f as i64)
    });
    exact
        .and_then(|i| T::try_from(i).ok())
        .ok_or_else(|| E::custom(format_args!("expected a whole number in range, got {n}")))
}

/// A whole number.
pub fn number<'de, D: Deserializer<'de>, T: TryFrom<i64>>(d: D) -> Result<T, D::Error> {
    whole(&serde_json::Number::deserialize(d)?)
}

/// A whole number, or `null`.
pub fn optional<'de, D: Deserializer<'de>, T: TryFrom<i64>>(d: D) -> Result<Option<T>, D::Error> {
    Option::<serde_json::Number>::deserialize(d)?.map(|n| whole(&n)).transpose()
}

/// A list of whole numbers.
pub fn list<'de, D: Deserializer<'de>, T: TryFrom<i64>>(d: D) -> Result<Vec<T>, D::Error> {
    Vec::<serde_json::Number>::deserialize(d)?.iter().map(whole).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Body {
        #[serde(deserialize_with = "number")]
        amount: i32,
        #[serde(default, deserialize_with = "optional")]
        count: Option<i64>,
        #[serde(default, deserialize_with = "list")]
        seats: Vec<i32>,
    }

    #[test]
    fn whole_floats_are_integers_and_nothing_else_is() {
        let body: Body = serde_json::from_str(r#"{"amount": 5.0, "count": 7, "seats": [1, 2.0]}"#).unwrap();
        assert_eq!(body, Body { amount: 5, count: Some(7), seats: vec![1, 2] });
        let body: Body = serde_json::from_str(r#"{"amount": -3, "count": null}"#).unwrap();
        assert_eq!(body, Body { amount: -3, count: None, seats: vec![] });
        for bad in [
            r#"{"amount": 5.5}"#,
            r#"{"amount": "5"}"#,
            r#"{"amount": 3000000000}"#,
            r#"{"amount": 1e300}"#,
            r#"{"amount": 1, "seats": [1.5]}"#,
            r#"{"amount": 1, "count": 0.1}"#,
        ] {
            assert!(serde_json::from_str::<Body>(bad).is_err(), "{bad}");
        }
    }
}
