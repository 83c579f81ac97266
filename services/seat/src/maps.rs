//! Recently read seat maps. In a rush thousands of buyers ask for the same schedule's seats
//! within a second while few seats change: the map is read from the database at most once per
//! `fresh` per schedule, and forgotten as soon as this process changes one of its seats (so a
//! reader always sees this process's own changes; another replica's show within `fresh`).

use crate::domain::Seat;
use contracts::ScheduleId;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

/// Seat maps read recently, per schedule.
#[derive(Clone)]
pub struct SeatMaps {
    schedules: Arc<Mutex<HashMap<ScheduleId, Known>>>,
    fresh: Duration,
}

#[derive(Default)]
struct Known {
    /// Changes this process has made to the schedule's seats.
    changes: u64,
    map: Option<(Instant, Arc<[Seat]>)>,
}

/// Schedules remembered at once; beyond, the map starts again empty.
const SCHEDULES: usize = 10_000;

impl SeatMaps {
    /// Maps answered again for up to `fresh` after they were read.
    pub fn new(fresh: Duration) -> Self {
        Self { schedules: Arc::default(), fresh }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<ScheduleId, Known>) -> T) -> T {
        f(&mut self.schedules.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The schedule's seats as read less than `fresh` ago with no change since, or else from
    /// `read` (`None` for an unknown schedule, not remembered).
    pub async fn get<E>(
        &self,
        schedule: ScheduleId,
        read: impl Future<Output = Result<Option<Vec<Seat>>, E>>,
    ) -> Result<Option<Arc<[Seat]>>, E> {
        let now = Instant::now();
        let changes = self.with(|m| {
            let known = m.get(&schedule)?;
            match &known.map {
                Some((at, seats)) if now.duration_since(*at) < self.fresh => Some(Err(seats.clone())),
                _ => Some(Ok(known.changes)),
            }
        });
        let changes = match changes {
            Some(Err(seats)) => return Ok(Some(seats)),
            Some(Ok(changes)) => changes,
            None => 0,
        };
        let Some(seats) = read.await? else { return Ok(None) };
        let seats: Arc<[Seat]> = seats.into();
        self.with(|m| {
            if m.len() >= SCHEDULES && !m.contains_key(&schedule) {
                m.clear();
            }
            let known = m.entry(schedule).or_default();
            // A change committed while reading may be missing from what was read.
            if known.changes == changes {
                known.map = Some((now, seats.clone()));
            }
        });
        Ok(Some(seats))
    }

    /// This process has committed a change to the schedule's seats.
    pub fn changed(&self, schedule: ScheduleId) {
        self.with(|m| {
            let known = m.entry(schedule).or_default();
            known.changes += 1;
            known.map = None;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SeatStatus;
    use contracts::{SeatNo, Won};

    fn map(status: SeatStatus) -> Vec<Seat> {
        vec![Seat { seat_no: SeatNo(1), price: Won(1000), status, reservation_id: None }]
    }

    async fn read(maps: &SeatMaps, schedule: ScheduleId, db: SeatStatus) -> SeatStatus {
        let seats = maps.get(schedule, async { Ok::<_, ()>(Some(map(db))) }).await.unwrap().unwrap();
        seats[0].status
    }

    #[tokio::test]
    async fn a_map_is_answered_again_until_a_seat_of_it_changes_here() {
        let maps = SeatMaps::new(Duration::from_secs(60));
        let schedule = ScheduleId::new();
        assert_eq!(read(&maps, schedule, SeatStatus::Available).await, SeatStatus::Available);
        // The database moved on (another replica): within `fresh`, the map read before stands.
        assert_eq!(read(&maps, schedule, SeatStatus::Held).await, SeatStatus::Available);
        maps.changed(schedule);
        assert_eq!(read(&maps, schedule, SeatStatus::Held).await, SeatStatus::Held);
        let unknown = maps.get(ScheduleId::new(), async { Ok::<_, ()>(None) }).await.unwrap();
        assert!(unknown.is_none());
    }

    #[tokio::test]
    async fn a_read_overtaken_by_a_change_is_not_kept_and_old_maps_expire() {
        let maps = SeatMaps::new(Duration::from_secs(60));
        let schedule = ScheduleId::new();
        let racing = maps.get(schedule, async {
            maps.changed(schedule);
            Ok::<_, ()>(Some(map(SeatStatus::Available)))
        });
        assert!(racing.await.unwrap().is_some());
        assert_eq!(read(&maps, schedule, SeatStatus::Held).await, SeatStatus::Held, "read again");

        let expiring = SeatMaps::new(Duration::ZERO);
        assert_eq!(read(&expiring, schedule, SeatStatus::Available).await, SeatStatus::Available);
        assert_eq!(read(&expiring, schedule, SeatStatus::Held).await, SeatStatus::Held);
    }
}
