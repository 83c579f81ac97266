//! The ranking's rules, without IO.

use std::fmt;

/// The longest sliding window: minute buckets live a little longer than this.
pub const MAX_WINDOW_MINUTES: i64 = 24 * 60;

/// Which sales a ranking counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    All,
    /// The last n minutes, the current one included.
    Minutes(i64),
}

impl Window {
    /// `all`, `<n>m` or `<n>h`, up to 24 hours.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let err = || format!("window must be all, <n>m or <n>h, at most {MAX_WINDOW_MINUTES}m; got {raw:?}");
        if raw == "all" {
            return Ok(Window::All);
        }
        // Digits and a unit, nothing else (no sign): what `RankingQuery` documents.
        let count = |digits: &str| {
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            digits.parse::<i64>().map_err(|_| err())
        };
        let minutes = match (raw.strip_suffix('m'), raw.strip_suffix('h')) {
            (Some(n), _) => count(n)?,
            (_, Some(n)) => count(n)?.checked_mul(60).ok_or_else(err)?,
            _ => return Err(err()),
        };
        if !(1..=MAX_WINDOW_MINUTES).contains(&minutes) {
            return Err(err());
        }
        Ok(Window::Minutes(minutes))
    }

    /// The epoch minutes a window covers, ending at `now_minute`.
    pub fn minutes(self, now_minute: i64) -> Vec<i64> {
        match self {
            Window::All => Vec::new(),
            Window::Minutes(n) => (0..n).map(|i| now_minute - i).collect(),
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::All => f.write_str("all"),
            Window::Minutes(n) if n % 60 == 0 => write!(f, "{}h", n / 60),
            Window::Minutes(n) => write!(f, "{n}m"),
        }
    }
}

/// The list size: 1-100, 10 by default.
pub fn limit(raw: Option<u32>) -> Result<usize, String> {
    match raw {
        None => Ok(10),
        Some(n @ 1..=100) => Ok(n as usize),
        Some(_) => Err("limit must be between 1 and 100".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_and_cover_their_minutes() {
        assert_eq!(Window::parse("all"), Ok(Window::All));
        assert_eq!(Window::parse("60m"), Ok(Window::Minutes(60)));
        assert_eq!(Window::parse("24h"), Ok(Window::Minutes(1440)));
        for bad in ["", "m", "0m", "25h", "1d", "-5m", "+5m", "1.5h", "99999999999999999999h", "Ì", "5Ì"] {
            assert!(Window::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Window::Minutes(3).minutes(100), vec![100, 99, 98]);
        assert_eq!(Window::Minutes(120).to_string(), "2h");
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(limit(None), Ok(10));
        assert!(limit(Some(0)).is_err() && limit(Some(101)).is_err());
    }
}
