//! Which partitions a replica keeps (docs/scaling.md §2.7, step 3): its partitioned services
//! run the durable consumers of those partitions alone, and answer a request about a schedule
//! of another partition 421 Misdirected Request, naming the partition that keeps it, for the
//! router to send it there. A replica never answers for a schedule it does not hold.

use crate::Problem;
use axum::http::StatusCode;
use contracts::{Bucket, Partitions};

/// The partitions a process keeps, of those its deployment has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    partitions: Partitions,
    /// `None`: every one.
    served: Option<Vec<u16>>,
}

impl Kept {
    pub fn new(partitions: Partitions, served: Option<Vec<u16>>) -> Self {
        Self { partitions, served }
    }

    /// Whether this process keeps partition `p`.
    pub fn serves(&self, p: u16) -> bool {
        self.served.as_ref().is_none_or(|served| served.contains(&p))
    }

    /// Nothing when this process keeps the partition of `bucket`, the bucket of `what` (`schedule
    /// …`, `reservation …`); else the 421 that names the partition keeping it.
    pub fn check(&self, bucket: Bucket, what: &dyn std::fmt::Display) -> Result<(), Problem> {
        let p = self.partitions.of(bucket);
        if self.serves(p) {
            return Ok(());
        }
        let served = self.served.iter().flatten().map(u16::to_string).collect::<Vec<_>>().join(", ");
        Err(Problem::new(
            StatusCode::MISDIRECTED_REQUEST,
            "MISDIRECTED_REQUEST",
            format!(
                "{what} is kept by partition {p}; this replica keeps partitions {served}: send it to a replica of partition {p}"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::ScheduleId;

    #[test]
    fn a_schedule_of_another_partition_is_misdirected_and_names_its_partition() {
        let two = Partitions::new(2).unwrap();
        let schedule = ScheduleId::new();
        let p = two.of(Bucket::of(schedule));
        let mine = Kept::new(two, Some(vec![p]));
        assert_eq!(mine.check(Bucket::of(schedule), &format!("schedule {schedule}")), Ok(()));
        let other = Kept::new(two, Some(vec![1 - p]));
        let problem = other.check(Bucket::of(schedule), &format!("schedule {schedule}")).unwrap_err();
        assert_eq!((problem.status, problem.code.as_str()), (421, "MISDIRECTED_REQUEST"));
        assert!(problem.detail.contains(&format!("is kept by partition {p};")), "{}", problem.detail);
        assert_eq!(
            Kept::new(two, None).check(Bucket::of(schedule), &"it"),
            Ok(()),
            "every partition by default"
        );
    }
}
