//! What an audit found: one row per invariant, with the context an operator reads it in.

use crate::Invariant;
use chrono::{DateTime, SecondsFormat, Utc};
use std::{fmt, time::Duration};

/// The outcome of [`crate::audit`].
#[derive(Clone, Debug)]
pub struct Report {
    /// When the checks ran (after any settle).
    pub ran_at: DateTime<Utc>,
    /// The grace the checks allowed things in flight: zero after the system settled.
    pub grace: Duration,
    /// How the wait for quiet went, when one was asked for.
    pub settle: Option<Settle>,
    /// The rows waiting in each outbox, by schema.
    pub outbox_backlog: Vec<(String, u64)>,
    /// Messages the declared consumers have yet to be given or to ack.
    pub consumers: ConsumerBacklog,
    /// How many reservations are in each status.
    pub reservations: Vec<(String, u64)>,
    /// Dead letters waiting in the DLQ stream.
    pub dead_letters: u64,
    /// One row per invariant, in [`Invariant::ALL`]'s order (`settled` only with a settle time).
    pub checks: Vec<Check>,
}

/// How the wait for quiet went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settle {
    /// Quiet at two looks in a row, this long after the wait began.
    Quiet { after: Duration },
    /// Still busy when the time ran out.
    Busy { waited: Duration },
}

/// The declared consumers' backlog, summed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumerBacklog {
    /// Declared consumers JetStream knows.
    pub consumers: usize,
    /// Messages their filters pass that they have not been given yet.
    pub pending: u64,
    /// Messages given but not acked yet.
    pub ack_pending: u64,
    /// Declared consumers (or their streams) JetStream does not know: never applied, or deleted.
    pub missing: Vec<String>,
}

/// One invariant's row: how many violations, and some of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// The invariant this row checks.
    pub invariant: Invariant,
    /// Every violation found, not only the examples (for `settled`: the things still busy).
    pub violations: u64,
    /// Up to ten of them.
    pub examples: Vec<Example>,
}

/// One violation: what it is about and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    /// A reservation, wallet (user) or outbox row id; a seat as `<schedule>#<seat>`; a dead
    /// letter as `dlq#<seq>`.
    pub id: String,
    /// What is wrong with it, in words.
    pub detail: String,
}

impl Check {
    /// Whether the invariant holds.
    pub fn ok(&self) -> bool {
        self.violations == 0
    }
}

impl Report {
    /// Whether every invariant holds.
    pub fn is_clean(&self) -> bool {
        self.checks.iter().all(Check::ok)
    }

    /// The checks that found violations.
    pub fn violated(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok())
    }

    /// The row of `invariant` (`None` only for `settled` when no settle time was given).
    pub fn check(&self, invariant: Invariant) -> Option<&Check> {
        self.checks.iter().find(|c| c.invariant == invariant)
    }

    /// Every violation of every check.
    pub fn violations(&self) -> u64 {
        self.checks.iter().map(|c| c.violations).sum()
    }

    /// One line for the end of the output: clean, or how many violations of which invariants.
    pub fn verdict(&self) -> String {
        if self.is_clean() {
            let n = self.checks.len() as u64;
            return format!("audit: clean ({n} check{})", plural(n));
        }
        let names: Vec<&str> = self.violated().map(|c| c.invariant.name()).collect();
        format!(
            "audit: {} violation{} of {} invariant{}: {}",
            self.violations(),
            plural(self.violations()),
            names.len(),
            plural(names.len() as u64),
            names.join(", ")
        )
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 { format!("{} s", d.as_secs()) } else { format!("{:.1} s", d.as_secs_f64()) }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "audit at {}", self.ran_at.to_rfc3339_opts(SecondsFormat::Secs, true))?;
        writeln!(f, "  grace           {}", secs(self.grace))?;
        match &self.settle {
            None => {}
            Some(Settle::Quiet { after }) => writeln!(f, "  settle          quiet after {}", secs(*after))?,
            Some(Settle::Busy { waited }) => {
                writeln!(f, "  settle          still busy after {}", secs(*waited))?
            }
        }
        let backlog: u64 = self.outbox_backlog.iter().map(|(_, n)| n).sum();
        let busy: Vec<String> =
            self.outbox_backlog.iter().filter(|(_, n)| *n > 0).map(|(s, n)| format!("{s} {n}")).collect();
        if busy.is_empty() {
            writeln!(f, "  outbox backlog  {backlog}")?;
        } else {
            writeln!(f, "  outbox backlog  {backlog} ({})", busy.join(", "))?;
        }
        let c = &self.consumers;
        write!(
            f,
            "  consumers       {} pending, {} awaiting ack ({} consumers",
            c.pending, c.ack_pending, c.consumers
        )?;
        if c.missing.is_empty() {
            writeln!(f, ")")?;
        } else {
            writeln!(f, "; missing: {})", c.missing.join(", "))?;
        }
        let by_status: Vec<String> = self.reservations.iter().map(|(s, n)| format!("{s} {n}")).collect();
        let by_status = if by_status.is_empty() { "none".to_owned() } else { by_status.join(", ") };
        writeln!(f, "  reservations    {by_status}")?;
        writeln!(f, "  dead letters    {}", self.dead_letters)?;
        writeln!(f)?;
        let width = Invariant::ALL.iter().map(|i| i.name().len()).max().unwrap_or(0);
        for check in &self.checks {
            let name = check.invariant.name();
            if check.ok() {
                writeln!(f, "  {name:<width$}  OK")?;
                continue;
            }
            writeln!(f, "  {name:<width$}  {}  {}", check.violations, check.invariant.violation())?;
            for e in &check.examples {
                writeln!(f, "      {}  {}", e.id, e.detail)?;
            }
            let more = check.violations.saturating_sub(check.examples.len() as u64);
            if more > 0 {
                writeln!(f, "      ... and {more} more")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(checks: Vec<Check>) -> Report {
        Report {
            ran_at: DateTime::<Utc>::UNIX_EPOCH,
            grace: Duration::from_secs(30),
            settle: None,
            outbox_backlog: vec![("seat".into(), 2), ("wallet".into(), 0)],
            consumers: ConsumerBacklog { consumers: 3, ..Default::default() },
            reservations: vec![("CONFIRMED".into(), 4)],
            dead_letters: 0,
            checks,
        }
    }

    #[test]
    fn a_failing_check_shows_its_count_and_examples_below_it() {
        let failing = Check {
            invariant: Invariant::SoldSeatOwned,
            violations: 12,
            examples: vec![Example { id: "s#1".into(), detail: "SOLD to r, which is EXPIRED".into() }],
        };
        let ok = Check { invariant: Invariant::SeatSoldOnce, violations: 0, examples: Vec::new() };
        let r = report(vec![ok, failing]);
        let text = r.to_string();
        assert!(!r.is_clean());
        assert!(text.contains("outbox backlog  2 (seat 2)"), "{text}");
        assert!(text.contains("  seat-sold-once           OK\n"), "{text}");
        assert!(text.contains("  sold-seat-owned          12  a SOLD seat"), "{text}");
        assert!(text.contains("      s#1  SOLD to r, which is EXPIRED\n      ... and 11 more\n"), "{text}");
        assert_eq!(r.verdict(), "audit: 12 violations of 1 invariant: sold-seat-owned");
    }

    #[test]
    fn a_clean_report_says_so() {
        let r =
            report(vec![Check { invariant: Invariant::SeatSoldOnce, violations: 0, examples: Vec::new() }]);
        assert!(r.is_clean());
        assert_eq!(r.verdict(), "audit: clean (1 check)");
    }
}
