//! The partition key of the saga (docs/scaling.md §2.1): a schedule's **bucket**, one of 1,024,
//! fixed for good. Buckets, not schedules, are what a partition map assigns and moves, so a
//! schedule's hash is never recomputed when partitions are added.
//!
//! The hash is FNV-1a 32 of the schedule id as lowercase hyphenated text, modulo 1,024: the
//! function nats-server applies in its `{{partition(1024,1)}}` subject transform, so the
//! server's own mapping agrees with these numbers (a test in `messaging` checks it against a
//! real server).
//!
//! A reservation carries its schedule's bucket in the low ten bits of its id (§2.3), so the
//! wallet, the routes `/reservations/{id}…` and any tool find its partition from the id alone.
//!
//! An event about one schedule carries its partition in its subject (§2.2): its subject
//! pattern has `*` as the second token (`seat.*.reserved`), which the publisher replaces with
//! the partition of the event's bucket (`seat.3.reserved`) and a consumer of every partition
//! keeps as its filter.

use crate::{Event, ReservationId, ScheduleId};
use std::fmt;
use uuid::Uuid;

/// The partition key of a schedule and of everything that belongs to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bucket(u16);

impl Bucket {
    /// How many buckets there are. Fixed for good: changing it would move every schedule.
    pub const COUNT: u16 = 1024;
    /// The bits of a reservation id that carry its bucket (`COUNT` is 2^10).
    const ID_BITS: u128 = Self::COUNT as u128 - 1;

    /// The bucket of a schedule.
    pub fn of(schedule: ScheduleId) -> Bucket {
        let mut text = Uuid::encode_buffer();
        let text = schedule.0.hyphenated().encode_lower(&mut text);
        Bucket((fnv1a32(text.as_bytes()) % u32::from(Self::COUNT)) as u16)
    }

    /// The bucket's number, `0..COUNT`.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What an event's partition is read from: the schedule it is about, or a reservation, whose
/// id carries its schedule's bucket.
pub trait PartitionKey {
    fn bucket(&self) -> Bucket;
}

impl PartitionKey for ScheduleId {
    fn bucket(&self) -> Bucket {
        Bucket::of(*self)
    }
}

impl PartitionKey for ReservationId {
    fn bucket(&self) -> Bucket {
        ReservationId::bucket(*self)
    }
}

/// How many partitions the buckets are spread over (`TICKETING_PARTITION_COUNT`, the same in
/// every process), and which partition holds a bucket: `bucket mod count`, the map of §2.1
/// before buckets can move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Partitions(u16);

/// A partition count outside `1..=1024`.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid partition count {0}: use 1 to 1024 (there are 1,024 buckets to spread)")]
pub struct InvalidPartitions(pub u32);

impl Partitions {
    /// One partition: every event's subject carries partition 0.
    pub const ONE: Partitions = Partitions(1);

    pub fn new(count: u32) -> Result<Self, InvalidPartitions> {
        match u16::try_from(count) {
            Ok(n) if (1..=Bucket::COUNT).contains(&n) => Ok(Self(n)),
            _ => Err(InvalidPartitions(count)),
        }
    }

    pub fn count(self) -> u16 {
        self.0
    }

    /// The partition that holds `bucket`, `0..count`.
    pub fn of(self, bucket: Bucket) -> u16 {
        bucket.get() % self.0
    }

    /// The subject `event` is published on, without the namespace prefix: its subject pattern
    /// with the partition of its bucket in place of the `*` (the pattern as it is for an event
    /// of no schedule).
    pub fn subject<E: Event>(self, event: &E) -> String {
        match event.bucket() {
            Some(bucket) => crate::in_partition(E::SUBJECT, &self.of(bucket).to_string()),
            None => E::SUBJECT.to_owned(),
        }
    }
}

impl Default for Partitions {
    fn default() -> Self {
        Self::ONE
    }
}

/// FNV-1a, 32 bits (Fowler, Noll, Vo), as Go's `hash/fnv.New32a` computes it.
fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, &b| (hash ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

impl ReservationId {
    /// A fresh id for a reservation of `schedule`: a UUIDv7 whose ten lowest bits are the
    /// schedule's bucket. Those bits are random in a UUIDv7 (below the counter that orders ids
    /// made in the same millisecond), so the id stays valid and time-ordered, with 64 random
    /// bits left per millisecond.
    pub fn for_schedule(schedule: ScheduleId) -> Self {
        let id = Uuid::now_v7().as_u128();
        Self(Uuid::from_u128((id & !Bucket::ID_BITS) | u128::from(Bucket::of(schedule).get())))
    }

    /// The bucket of the reservation's schedule, read from its id (one made by
    /// [`ReservationId::for_schedule`]).
    pub fn bucket(self) -> Bucket {
        Bucket((self.0.as_u128() & Bucket::ID_BITS) as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a32_gives_the_published_test_vectors() {
        // From the FNV reference test suite (Landon Curt Noll's test vectors).
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn a_schedules_bucket_is_its_hyphenated_lowercase_text_hashed() {
        let schedule: ScheduleId = "0193A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B".parse().unwrap();
        let expected = fnv1a32(b"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b") % 1024;
        assert_eq!(u32::from(Bucket::of(schedule).get()), expected);
    }

    #[test]
    fn buckets_spread_schedules_over_all_of_their_range() {
        let mut seen = vec![0u32; usize::from(Bucket::COUNT)];
        for _ in 0..100_000 {
            seen[usize::from(Bucket::of(ScheduleId::new()).get())] += 1;
        }
        // About 98 each; a bucket with none, or with three times its share, is a broken hash.
        assert!(
            seen.iter().all(|&n| (20..300).contains(&n)),
            "min {:?} max {:?}",
            seen.iter().min(),
            seen.iter().max()
        );
    }

    #[test]
    fn a_reservation_id_carries_its_schedules_bucket_and_stays_a_time_ordered_uuid_v7() {
        let schedule = ScheduleId::new();
        let ids: Vec<ReservationId> = (0..10_000).map(|_| ReservationId::for_schedule(schedule)).collect();
        for id in &ids {
            assert_eq!(id.bucket(), Bucket::of(schedule));
            assert_eq!(id.0.get_version_num(), 7);
            assert_eq!(id.0.get_variant(), uuid::Variant::RFC4122);
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids made one after another sort in that order");
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
    }

    #[test]
    fn a_partition_count_is_one_to_the_number_of_buckets() {
        assert_eq!(Partitions::new(1), Ok(Partitions::ONE));
        assert_eq!(Partitions::new(1024).map(Partitions::count), Ok(1024));
        for bad in [0, 1025, 70_000] {
            assert_eq!(Partitions::new(bad), Err(InvalidPartitions(bad)));
        }
    }

    #[test]
    fn an_event_is_published_on_the_partition_of_its_schedules_bucket() {
        let schedule = ScheduleId::new();
        let bucket = Bucket::of(schedule);
        let released = crate::SeatsReleased {
            reservation_id: ReservationId::for_schedule(schedule),
            schedule_id: schedule,
            seat_nos: vec![],
        };
        let paid = crate::PaymentFailed {
            reservation_id: ReservationId::for_schedule(schedule),
            user_id: crate::UserId::new(),
            amount: crate::Won(1),
            reason: crate::PaymentFailureReason::DeadlinePassed,
        };
        let three = Partitions::new(3).unwrap();
        let p = bucket.get() % 3;
        assert_eq!(three.subject(&released), format!("seat.{p}.released"));
        assert_eq!(
            three.subject(&paid),
            format!("wallet.{p}.payment.failed"),
            "the same partition, from the id"
        );
        assert_eq!(Partitions::ONE.subject(&released), "seat.0.released");
        let charge = crate::ChargeFailed {
            charge_id: crate::ChargeId::new(),
            user_id: crate::UserId::new(),
            amount: crate::Won(1),
            reason: crate::ChargeFailureReason::BalanceLimit,
        };
        assert_eq!(
            three.subject(&charge),
            "wallet.charge.failed",
            "an event of no schedule has no partition"
        );
    }

    #[test]
    fn every_partitioned_subject_has_its_partition_second() {
        for (kind, _, subject) in crate::ALL_EVENTS {
            let tokens: Vec<&str> = subject.split('.').collect();
            assert_eq!(crate::is_partitioned(subject), tokens.get(1) == Some(&"*"), "{kind}");
            assert!(tokens.iter().skip(2).all(|t| *t != "*" && *t != ">"), "{kind}: one wildcard, second");
        }
        assert!(!crate::is_partitioned("seat"));
        assert!(!crate::is_partitioned("seat.*"));
        assert!(crate::is_partitioned("seat.*.reserved"));
        assert_eq!(crate::in_partition("seat.*.reserved", "3"), "seat.3.reserved");
        assert_eq!(
            crate::in_partition("catalog.concert.*", "3"),
            "catalog.concert.*",
            "no partition to fill"
        );
    }
}
