//! The delivery rules, without IO: states, the retry schedule, the signature, and what one
//! attempt's answer means for the delivery.

use base64::Engine;
use serde::{Deserialize, Serialize};
use std::{fmt, time::Duration};
use uuid::Uuid;

/// Identifies one delivery; sent as `webhook-id` on every attempt, so the receiver can
/// drop the copies that at-least-once delivery sends.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
    sea_orm::DeriveValueType,
)]
#[serde(transparent)]
#[schema(value_type = String, format = Uuid)]
pub struct DeliveryId(pub Uuid);

impl DeliveryId {
    /// A fresh, time-ordered (UUIDv7) identifier.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for DeliveryId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryStatus {
    /// Not delivered yet; attempted again at `nextAttemptAt`.
    Pending,
    /// The platform answered 2xx.
    Delivered,
    /// Every attempt failed; only an admin retry sends it again.
    Failed,
}

impl DeliveryStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "PENDING",
            DeliveryStatus::Delivered => "DELIVERED",
            DeliveryStatus::Failed => "FAILED",
        }
    }

    /// Reads the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PENDING" => Some(DeliveryStatus::Pending),
            "DELIVERED" => Some(DeliveryStatus::Delivered),
            "FAILED" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// How the delivery worker sends and retries. The defaults suit production; tests shrink them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliverySettings {
    /// Attempts before a delivery is FAILED (at least 1).
    pub max_attempts: u32,
    /// The wait after the first failed attempt; it doubles after each further one.
    pub base_delay: Duration,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
    /// How long one attempt may take, from connecting to the end of the answer.
    pub timeout: Duration,
    /// Deliveries in flight at once, so one slow answer does not hold up the others.
    pub concurrency: usize,
    /// How often the worker looks for due deliveries when it has nothing to do.
    pub poll: Duration,
}

impl Default for DeliverySettings {
    /// 8 attempts over about 21 minutes (10 s, 20 s, … 640 s apart, before jitter), 5 s each.
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(30 * 60),
            timeout: Duration::from_secs(5),
            concurrency: 16,
            poll: Duration::from_millis(500),
        }
    }
}

impl DeliverySettings {
    /// How far a claim pushes `next_attempt_at`: long enough that no other worker takes the row
    /// while its attempt can still be running, short enough that a crashed worker's row comes
    /// back soon.
    pub fn lease(&self) -> Duration {
        self.timeout.saturating_mul(2).saturating_add(Duration::from_secs(5))
    }
}

/// The wait after the `attempt`-th failed attempt (1-based): `min(cap, base * 2^(attempt-1))`,
/// then "equal jitter" picks a point in its upper half with `jitter` in `[0, 1)`, so retries of
/// many deliveries that failed together spread out, yet none comes back sooner than half the
/// schedule.
pub fn backoff(settings: &DeliverySettings, attempt: u32, jitter: f64) -> Duration {
    let doublings = attempt.saturating_sub(1).min(31);
    let full = settings.base_delay.saturating_mul(1u32 << doublings).min(settings.max_delay);
    let half = full / 2;
    half + half.mul_f64(jitter.clamp(0.0, 1.0))
}

/// What one attempt got back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    /// The platform answered; `detail` is the start of a non-2xx answer's body.
    Answered { status: u16, detail: Option<String> },
    /// No answer: timeout, refused or reset connection.
    NoAnswer { error: String },
}

impl AttemptResult {
    /// Whether the platform took the delivery.
    pub fn is_success(&self) -> bool {
        matches!(self, AttemptResult::Answered { status, .. } if (200..300).contains(status))
    }

    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            AttemptResult::Answered { status, .. } => Some(*status),
            AttemptResult::NoAnswer { .. } => None,
        }
    }

    /// What went wrong, for the delivery log; `None` for a success.
    pub fn error(&self) -> Option<String> {
        match self {
            _ if self.is_success() => None,
            AttemptResult::Answered { status, detail: None } => Some(format!("HTTP {status}")),
            AttemptResult::Answered { status, detail: Some(d) } => Some(format!("HTTP {status}: {d}")),
            AttemptResult::NoAnswer { error } => Some(error.clone()),
        }
    }
}

/// What follows an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Delivered,
    /// Try again after this long.
    RetryIn(Duration),
    /// That was the last attempt.
    Failed,
}

/// Decides a delivery's next state after attempt number `attempts_before + 1` got `result`.
pub fn decide(
    settings: &DeliverySettings,
    attempts_before: u32,
    result: &AttemptResult,
    jitter: f64,
) -> Next {
    let attempts = attempts_before.saturating_add(1);
    if result.is_success() {
        Next::Delivered
    } else if attempts >= settings.max_attempts.max(1) {
        Next::Failed
    } else {
        Next::RetryIn(backoff(settings, attempts, jitter))
    }
}

/// Signs deliveries as Standard Webhooks does (<https://www.standardwebhooks.com>, its own
/// crate): `webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`, with
/// the delivery's id and the unix timestamp of the attempt in `webhook-id` and
/// `webhook-timestamp`. The id and the timestamp are signed, so a receiver that rejects old
/// timestamps and ids it has seen rejects replays, and any Standard Webhooks library verifies it.
#[derive(Clone)]
pub struct Signer(std::sync::Arc<standardwebhooks::Webhook>);

/// The shortest accepted key, in bytes.
pub const MIN_KEY: usize = 16;

impl Signer {
    /// A signer with `secret` as its key: `whsec_<base64>` as Standard Webhooks writes secrets,
    /// or else the text's own bytes. Refused when the key is shorter than [`MIN_KEY`].
    pub fn new(secret: &str) -> Result<Self, String> {
        let key = match secret.strip_prefix("whsec_") {
            Some(encoded) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| format!("a whsec_ secret must be base64 after the prefix: {e}"))?,
            None => secret.as_bytes().to_vec(),
        };
        if key.len() < MIN_KEY {
            return Err(format!(
                "must be at least {MIN_KEY} bytes (after base64 decoding, for a whsec_ secret)"
            ));
        }
        let webhook = standardwebhooks::Webhook::from_bytes(key).map_err(|e| e.to_string())?;
        Ok(Self(std::sync::Arc::new(webhook)))
    }

    /// The `webhook-signature` of `body` (JSON, so UTF-8) for delivery `id` sent at `timestamp`
    /// (unix seconds).
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
        self.0.sign(id, timestamp, body).map_err(|e| e.to_string())
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> DeliverySettings {
        DeliverySettings {
            max_attempts: 4,
            base_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(60),
            ..DeliverySettings::default()
        }
    }

    #[test]
    fn the_schedule_doubles_up_to_the_cap() {
        let s = settings();
        let top = |attempt| backoff(&s, attempt, 1.0);
        assert_eq!(
            [1, 2, 3, 4, 5].map(top),
            [10, 20, 40, 60, 60].map(Duration::from_secs),
            "base * 2^(attempt-1), capped"
        );
        assert_eq!(backoff(&s, 200, 1.0), Duration::from_secs(60), "no overflow far out");
        assert_eq!(backoff(&s, 0, 1.0), Duration::from_secs(10));
    }

    #[test]
    fn jitter_stays_in_the_upper_half() {
        let s = settings();
        assert_eq!(backoff(&s, 2, 0.0), Duration::from_secs(10));
        assert_eq!(backoff(&s, 2, 0.5), Duration::from_secs(15));
        for j in [0.0, 0.1, 0.37, 0.99, 1.0, -3.0, 7.0] {
            let d = backoff(&s, 3, j);
            assert!((Duration::from_secs(20)..=Duration::from_secs(40)).contains(&d), "{j}: {d:?}");
        }
    }

    #[test]
    fn a_2xx_delivers_anything_else_retries_until_the_last_attempt() {
        let s = settings();
        let ok = AttemptResult::Answered { status: 204, detail: None };
        let err = AttemptResult::Answered { status: 500, detail: Some("boom".into()) };
        let down = AttemptResult::NoAnswer { error: "timed out after 5s".into() };
        let redirect = AttemptResult::Answered { status: 301, detail: None };
        assert_eq!(decide(&s, 0, &ok, 0.5), Next::Delivered);
        assert_eq!(decide(&s, 3, &ok, 0.5), Next::Delivered, "even the last attempt may succeed");
        assert_eq!(decide(&s, 0, &err, 1.0), Next::RetryIn(Duration::from_secs(10)));
        assert_eq!(decide(&s, 1, &down, 1.0), Next::RetryIn(Duration::from_secs(20)));
        assert_eq!(decide(&s, 2, &redirect, 1.0), Next::RetryIn(Duration::from_secs(40)));
        assert_eq!(decide(&s, 3, &err, 1.0), Next::Failed, "the 4th of 4 attempts was the last");
        assert_eq!(decide(&s, 9, &down, 1.0), Next::Failed);
        let once = DeliverySettings { max_attempts: 0, ..s };
        assert_eq!(decide(&once, 0, &err, 1.0), Next::Failed, "0 attempts means 1");
    }

    #[test]
    fn the_log_keeps_status_and_error_of_failures_only() {
        let ok = AttemptResult::Answered { status: 200, detail: None };
        assert_eq!((ok.status(), ok.error()), (Some(200), None));
        let err = AttemptResult::Answered { status: 503, detail: Some("down".into()) };
        assert_eq!((err.status(), err.error().as_deref()), (Some(503), Some("HTTP 503: down")));
        let bare = AttemptResult::Answered { status: 404, detail: None };
        assert_eq!(bare.error().as_deref(), Some("HTTP 404"));
        let down = AttemptResult::NoAnswer { error: "connection refused".into() };
        assert_eq!((down.status(), down.error().as_deref()), (None, Some("connection refused")));
    }

    #[test]
    fn deliveries_are_signed_as_standard_webhooks_signs_them() {
        // The example of the Standard Webhooks specification.
        let signer = Signer::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let signature = signer.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert_ne!(signature, signer.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331, body).unwrap());
        assert_ne!(signature, signer.sign("msg_other", 1614265330, body).unwrap());
        // A secret without the prefix is its own bytes; too short a key is refused.
        let raw = Signer::new("0123456789abcdef").unwrap();
        assert_ne!(raw.sign("d", 1, body).unwrap(), signer.sign("d", 1, body).unwrap());
        assert!(Signer::new("short").is_err());
        assert!(Signer::new("whsec_c2hvcnQ=").is_err(), "5 bytes once decoded");
        assert!(Signer::new("whsec_not base64!").is_err());
        assert_eq!(format!("{signer:?}"), "Signer(***)");
    }

    #[test]
    fn statuses_round_trip() {
        for s in [DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Failed] {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(DeliveryStatus::parse("pending"), None);
    }

    #[test]
    fn the_lease_outlasts_an_attempt() {
        let s = DeliverySettings { timeout: Duration::from_millis(300), ..DeliverySettings::default() };
        assert!(s.lease() > s.timeout * 2);
    }
}
