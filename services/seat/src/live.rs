//! Live seat maps (`GET /schedules/{id}/seats/events`). One task per process reads, per pulse,
//! the map of every schedule some stream watches, all in one statement, and wakes a schedule's
//! streams only when its map changed. A thousand buyers watching one sale cost one read per
//! pulse; a stream costs nothing while its seats stand still.

use crate::{domain::Seat, store};
use contracts::ScheduleId;
use sea_orm::DatabaseConnection;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How often the watched maps are read: how soon a stream shows another buyer's hold.
pub const PULSE: Duration = Duration::from_millis(250);

/// A schedule's seats, as a stream is told them.
pub type Map = Arc<[Seat]>;

/// The schedules some stream of this process watches, each with its latest map.
#[derive(Clone, Default)]
pub struct Watched {
    schedules: Arc<Mutex<HashMap<ScheduleId, watch::Sender<Map>>>>,
}

impl Watched {
    /// A receiver of `schedule`'s maps, starting from `first` unless another stream already
    /// watches it (then from the latest map read).
    pub fn watch(&self, schedule: ScheduleId, first: Map) -> watch::Receiver<Map> {
        let mut schedules = self.schedules.lock().unwrap_or_else(PoisonError::into_inner);
        schedules.entry(schedule).or_insert_with(|| watch::channel(first).0).subscribe()
    }

    /// Reads every watched schedule's map once (forgetting those no stream watches any more) and
    /// wakes the streams of those that changed; how many streams there are.
    pub async fn refresh(&self, db: &DatabaseConnection) -> Result<usize, sea_orm::DbErr> {
        let watched: Vec<(ScheduleId, watch::Sender<Map>)> = {
            let mut schedules = self.schedules.lock().unwrap_or_else(PoisonError::into_inner);
            schedules.retain(|_, tx| tx.receiver_count() > 0);
            schedules.iter().map(|(s, tx)| (*s, tx.clone())).collect()
        };
        if watched.is_empty() {
            return Ok(0);
        }
        let ids: Vec<ScheduleId> = watched.iter().map(|(s, _)| *s).collect();
        let mut maps = store::maps_of(db, &ids).await?;
        let mut streams = 0;
        for (schedule, tx) in watched {
            streams += tx.receiver_count();
            let Some(map) = maps.remove(&schedule) else { continue };
            tx.send_if_modified(|current| {
                let changed = **current != *map;
                if changed {
                    *current = map.into();
                }
                changed
            });
        }
        Ok(streams)
    }

    /// Refreshes every [`PULSE`] until `shutdown` (backing off while the database fails), then
    /// ends every stream with its sender, so none holds the shutdown up.
    pub async fn run(self, db: DatabaseConnection, shutdown: CancellationToken) {
        platform::periodic::run("live[seat]", PULSE, shutdown, || async {
            let streams = self.refresh(&db).await?;
            metrics::gauge!("seat_map_streams").set(streams as f64);
            Ok::<_, sea_orm::DbErr>(platform::periodic::Pass::Done)
        })
        .await;
        self.schedules.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}
