//! A payment and the moves between its states, without IO.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Identifies a payment: `pay_` and 32 hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PaymentId(String);

impl PaymentId {
    /// A fresh, random identifier.
    pub fn new() -> Self {
        Self(format!("pay_{}", uuid::Uuid::new_v4().simple()))
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for PaymentId {
    fn default() -> Self {
        Self::new()
    }
}

// Lets the books be searched with a path's `&str`.
impl std::borrow::Borrow<str> for PaymentId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PaymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a payment stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Created; the buyer has not answered the checkout page yet.
    Ready,
    /// The buyer paid.
    Captured,
    /// The card was declined at checkout.
    Declined,
    /// The merchant cancelled it before the buyer paid.
    Cancelled,
    /// The merchant gave a captured payment back.
    Refunded,
}

impl Status {
    /// The wire form (`CAPTURED`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ready => "READY",
            Status::Captured => "CAPTURED",
            Status::Declined => "DECLINED",
            Status::Cancelled => "CANCELLED",
            Status::Refunded => "REFUNDED",
        }
    }
}

/// What a merchant or a buyer asks of a payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Capture,
    Decline,
    Cancel,
    Refund,
}

impl Action {
    /// The webhook `type` sent when the action changes a payment.
    pub fn event_type(self) -> &'static str {
        match self {
            Action::Capture => "payment.captured",
            Action::Decline => "payment.declined",
            Action::Cancel => "payment.cancelled",
            Action::Refund => "payment.refunded",
        }
    }
}

/// A payment as the API shows it and webhooks carry it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    pub id: PaymentId,
    pub order_id: String,
    /// In the currency's smallest unit (won have no subunit).
    pub amount: u64,
    pub currency: String,
    pub status: Status,
    /// Where the buyer pays.
    pub checkout_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_url: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub captured_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refunded_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declined_at: Option<DateTime<Utc>>,
}

impl Payment {
    /// Applies `action` at `now`: `Ok(true)` when the status changed, `Ok(false)` when the
    /// payment already is where the action leads (a retried cancel or refund is not an error),
    /// `Err(status)` when the action cannot apply to a payment in `status`.
    pub fn apply(&mut self, action: Action, now: DateTime<Utc>) -> Result<bool, Status> {
        use Status::*;
        let (to, at) = match (action, self.status) {
            (Action::Capture, Ready) => (Captured, &mut self.captured_at),
            (Action::Decline, Ready) => (Declined, &mut self.declined_at),
            (Action::Cancel, Ready) => (Cancelled, &mut self.cancelled_at),
            (Action::Cancel, Cancelled | Declined) | (Action::Refund, Refunded) => return Ok(false),
            (Action::Refund, Captured) => (Refunded, &mut self.refunded_at),
            (_, status) => return Err(status),
        };
        *at = Some(now);
        self.status = to;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(status: Status) -> Payment {
        Payment {
            id: PaymentId::new(),
            order_id: "o".into(),
            amount: 1,
            currency: "KRW".into(),
            status,
            checkout_url: String::new(),
            return_url: None,
            created_at: Utc::now(),
            captured_at: None,
            cancelled_at: None,
            refunded_at: None,
            declined_at: None,
        }
    }

    #[test]
    fn the_moves_between_states() {
        use Action::*;
        use Status::*;
        let cases = [
            (Capture, Ready, Ok(true), Captured),
            (Decline, Ready, Ok(true), Declined),
            (Cancel, Ready, Ok(true), Cancelled),
            (Cancel, Cancelled, Ok(false), Cancelled),
            (Cancel, Declined, Ok(false), Declined),
            (Cancel, Captured, Err(Captured), Captured),
            (Cancel, Refunded, Err(Refunded), Refunded),
            (Refund, Captured, Ok(true), Refunded),
            (Refund, Refunded, Ok(false), Refunded),
            (Refund, Ready, Err(Ready), Ready),
            (Capture, Captured, Err(Captured), Captured),
            (Decline, Cancelled, Err(Cancelled), Cancelled),
        ];
        for (action, from, answer, to) in cases {
            let mut p = payment(from);
            assert_eq!(p.apply(action, Utc::now()), answer, "{action:?} on {from:?}");
            assert_eq!(p.status, to, "{action:?} on {from:?}");
        }
        let mut p = payment(Ready);
        p.apply(Capture, Utc::now()).unwrap();
        assert!(p.captured_at.is_some() && p.declined_at.is_none());
    }

    #[test]
    fn ids_look_like_pay_and_32_hex_digits() {
        let id = PaymentId::new();
        let hex = id.as_str().strip_prefix("pay_").unwrap();
        assert_eq!(hex.len(), 32);
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
