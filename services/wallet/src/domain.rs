//! The wallet's rules, without IO.

use chrono::{DateTime, Utc};
use contracts::{ChargeFailureReason, PaymentFailureReason, Won};

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

/// The most a wallet may hold (the `wallets_balance_check` of its table says so too).
pub const MAX_BALANCE: Won = Won(1_000_000_000_000);

/// A top-up of `amount` onto `balance`: the balance after it, or why it is refused.
pub fn decide_charge(balance: Won, amount: Won) -> Result<Won, ChargeFailureReason> {
    match balance.0.checked_add(amount.0) {
        Some(after) if after <= MAX_BALANCE.0 => Ok(Won(after)),
        _ => Err(ChargeFailureReason::BalanceLimit),
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
    /// Debit the wallet, leaving this balance.
    Debit { balance_after: Won },
    /// Refuse without touching the wallet.
    Refuse(PaymentFailureReason),
    /// This reservation's payment was already decided; nothing happens.
    AlreadyDecided,
}

/// A payment's amount: at least 1 won (the saga asks for the price of seats, each at least 1).
pub fn payable(amount: Won) -> Result<(), String> {
    if amount.0 >= 1 { Ok(()) } else { Err(format!("a payment must be of at least 1 won, not {}", amount.0)) }
}

/// Whether a payment asked for now is in time for the deadline the reservation set.
pub fn in_time(now: DateTime<Utc>, pay_by: DateTime<Utc>) -> bool {
    now <= pay_by
}

/// One payment per reservation, none after the deadline the reservation set, and never below
/// zero: `existing` is the reservation's payment and `balance` the wallet's, both as locked.
pub fn decide_payment(
    now: DateTime<Utc>,
    pay_by: DateTime<Utc>,
    existing: Option<PaymentStatus>,
    balance: Won,
    amount: Won,
) -> PayDecision {
    match existing {
        Some(_) => PayDecision::AlreadyDecided,
        None if !in_time(now, pay_by) => PayDecision::Refuse(PaymentFailureReason::DeadlinePassed),
        None if balance.0 < amount.0 => PayDecision::Refuse(PaymentFailureReason::InsufficientBalance),
        None => PayDecision::Debit { balance_after: Won(balance.0 - amount.0) },
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
    fn a_payment_happens_once_only_before_the_deadline_and_never_below_zero() {
        let now = Utc::now();
        let (soon, gone) = (now + Duration::seconds(1), now - Duration::seconds(1));
        let pay = |pay_by, existing, balance| decide_payment(now, pay_by, existing, Won(balance), Won(300));
        assert_eq!(pay(soon, None, 1_000), PayDecision::Debit { balance_after: Won(700) });
        assert_eq!(pay(soon, None, 300), PayDecision::Debit { balance_after: Won(0) });
        assert_eq!(pay(soon, None, 299), PayDecision::Refuse(PaymentFailureReason::InsufficientBalance));
        assert_eq!(pay(gone, None, 1_000), PayDecision::Refuse(PaymentFailureReason::DeadlinePassed));
        assert!(in_time(now, now) && !in_time(now, gone));
        assert!(payable(Won(1)).is_ok() && payable(Won(0)).is_err() && payable(Won(-300)).is_err());
        for s in [PaymentStatus::Completed, PaymentStatus::Refunded, PaymentStatus::Voided] {
            assert_eq!(pay(soon, Some(s), 1_000), PayDecision::AlreadyDecided);
        }
    }

    #[test]
    fn a_payment_is_refunded_once_and_a_refund_first_voids_it() {
        assert_eq!(decide_refund(Some(PaymentStatus::Completed)), RefundDecision::Refund);
        assert_eq!(decide_refund(Some(PaymentStatus::Refunded)), RefundDecision::Nothing);
        assert_eq!(decide_refund(None), RefundDecision::Void);
        assert_eq!(decide_refund(Some(PaymentStatus::Voided)), RefundDecision::Nothing);
    }

    #[test]
    fn a_top_up_may_fill_the_wallet_to_its_cap_and_no_further() {
        assert_eq!(decide_charge(Won(0), Won(10)), Ok(Won(10)));
        assert_eq!(decide_charge(Won(MAX_BALANCE.0 - 10), Won(10)), Ok(MAX_BALANCE));
        assert_eq!(decide_charge(Won(MAX_BALANCE.0 - 10), Won(11)), Err(ChargeFailureReason::BalanceLimit));
        assert_eq!(decide_charge(Won(i64::MAX), Won(1)), Err(ChargeFailureReason::BalanceLimit));
    }
}
