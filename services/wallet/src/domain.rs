//! The wallet's rules, without IO.

use chrono::{DateTime, Utc};
use contracts::{PaymentFailureReason, Won};

/// The largest single top-up.
pub const MAX_CHARGE: Won = Won(10_000_000);

/// A top-up amount: 1 to 10,000,000 won.
pub fn charge_amount(raw: i64) -> Result<Won, String> {
    if (1..=MAX_CHARGE.0).contains(&raw) {
        Ok(Won(raw))
    } else {
        Err(format!("amount must be between 1 and {} won", MAX_CHARGE.0))
    }
}

/// Where a reservation's payment stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PaymentStatus {
    Completed,
    Refunded,
    /// A refund was asked for before any payment: no payment may follow.
    Voided,
}

impl PaymentStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Completed => "COMPLETED",
            PaymentStatus::Refunded => "REFUNDED",
            PaymentStatus::Voided => "VOIDED",
        }
    }

    /// Reads the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "COMPLETED" => Some(PaymentStatus::Completed),
            "REFUNDED" => Some(PaymentStatus::Refunded),
            "VOIDED" => Some(PaymentStatus::Voided),
            _ => None,
        }
    }
}

/// What to do with a `PaymentRequested`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayDecision {
    /// Debit the wallet (it may still turn out too small).
    Debit,
    /// Refuse without touching the wallet.
    Refuse(PaymentFailureReason),
    /// This reservation's payment was already decided; nothing happens.
    AlreadyDecided,
}

/// One payment per reservation, and none after the deadline the reservation set.
pub fn decide_payment(
    now: DateTime<Utc>,
    pay_by: DateTime<Utc>,
    existing: Option<PaymentStatus>,
) -> PayDecision {
    match existing {
        Some(_) => PayDecision::AlreadyDecided,
        None if now > pay_by => PayDecision::Refuse(PaymentFailureReason::DeadlinePassed),
        None => PayDecision::Debit,
    }
}

/// What to do with a `RefundRequested`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefundDecision {
    /// Give the completed payment back.
    Refund,
    /// No payment yet: record that none may happen, so a late request cannot debit.
    Void,
    /// Already refunded or voided.
    Nothing,
}

/// Exactly one refund per payment.
pub fn decide_refund(existing: Option<PaymentStatus>) -> RefundDecision {
    match existing {
        None => RefundDecision::Void,
        Some(PaymentStatus::Completed) => RefundDecision::Refund,
        Some(PaymentStatus::Refunded | PaymentStatus::Voided) => RefundDecision::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn charges_are_positive_and_bounded() {
        assert!(charge_amount(0).is_err());
        assert!(charge_amount(-5).is_err());
        assert!(charge_amount(10_000_001).is_err());
        assert_eq!(charge_amount(10_000_000), Ok(Won(10_000_000)));
    }

    #[test]
    fn a_payment_happens_once_and_only_before_the_deadline() {
        let now = Utc::now();
        assert_eq!(decide_payment(now, now + Duration::seconds(1), None), PayDecision::Debit);
        assert_eq!(
            decide_payment(now, now - Duration::seconds(1), None),
            PayDecision::Refuse(PaymentFailureReason::DeadlinePassed)
        );
        for s in [PaymentStatus::Completed, PaymentStatus::Refunded, PaymentStatus::Voided] {
            assert_eq!(decide_payment(now, now + Duration::seconds(1), Some(s)), PayDecision::AlreadyDecided);
        }
    }

    #[test]
    fn a_payment_is_refunded_once_and_a_refund_first_voids_it() {
        assert_eq!(decide_refund(Some(PaymentStatus::Completed)), RefundDecision::Refund);
        assert_eq!(decide_refund(Some(PaymentStatus::Refunded)), RefundDecision::Nothing);
        assert_eq!(decide_refund(None), RefundDecision::Void);
        assert_eq!(decide_refund(Some(PaymentStatus::Voided)), RefundDecision::Nothing);
    }
}
