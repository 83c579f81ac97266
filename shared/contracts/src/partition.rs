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

use crate::{ReservationId, ScheduleId};
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
}
