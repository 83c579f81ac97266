//! Waiting without polling: `Prefer: wait` on a token's reads and its Server-Sent Events
//! (`GET /queue/tokens/{token}/events`). One task per process reads, per pulse, the state of
//! every room some request waits on (how far admission went, whether the sale is sold out: two
//! keys, whatever the room's size) and wakes that room's waiters; a waiter reads its own token
//! again only when the room moved past its place or closed. A hundred thousand waiting users
//! cost one room read per pulse, and one token read each when their turn or the end comes.

use crate::store::{self, RoomState, Token};
use contracts::ScheduleId;
use platform::queue_guard::QueueKeys;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{sync::watch, time::Instant};
use tokio_util::sync::CancellationToken;

/// The rooms some request of this process waits on, each with its latest state.
#[derive(Clone, Default)]
pub struct Rooms {
    rooms: Arc<Mutex<HashMap<Option<ScheduleId>, RoomSender>>>,
}

/// Where a room's states are told (`None` until the first pulse reads it).
type RoomSender = watch::Sender<Option<RoomState>>;

impl Rooms {
    /// A receiver of the states of `room` (`None` until the first pulse reads it).
    pub fn watch(&self, room: Option<ScheduleId>) -> watch::Receiver<Option<RoomState>> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        rooms.entry(room).or_insert_with(|| watch::channel(None).0).subscribe()
    }

    /// Reads every watched room once (forgetting those no one waits on any more) and wakes
    /// the waiters of those that changed; how many waiters there are.
    pub async fn refresh(
        &self,
        conn: &mut platform::pools::Redis,
        keys: &QueueKeys,
    ) -> Result<usize, redis::RedisError> {
        let watched: Vec<(Option<ScheduleId>, RoomSender)> = {
            let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
            rooms.retain(|_, tx| tx.receiver_count() > 0);
            rooms.iter().map(|(r, tx)| (*r, tx.clone())).collect()
        };
        let mut waiters = 0;
        for (room, tx) in watched {
            let state = store::room_state(conn, &keys.room(room)).await?;
            waiters += tx.receiver_count();
            tx.send_if_modified(|current| {
                let changed = *current != Some(state);
                *current = Some(state);
                changed
            });
        }
        Ok(waiters)
    }

    /// Refreshes every `pulse` until `shutdown` (backing off while Redis fails).
    pub async fn run(
        self,
        redis: platform::pools::Redis,
        keys: QueueKeys,
        pulse: Duration,
        shutdown: CancellationToken,
    ) {
        platform::periodic::run("live[queue]", pulse, shutdown, || {
            // The connection is multiplexed: a clone per pass shares it.
            let mut conn = redis.clone();
            let (rooms, keys) = (&self, &keys);
            async move {
                let waiters = rooms.refresh(&mut conn, keys).await?;
                metrics::gauge!("queue_waiters").set(waiters as f64);
                Ok::<_, redis::RedisError>(platform::periodic::Pass::Done)
            }
        })
        .await;
    }
}

/// A token being waited on: its latest reading and its room's states.
pub struct Waiter {
    pub token: String,
    pub reading: Token,
    room: watch::Receiver<Option<RoomState>>,
    /// The room's state when the token was last read: a state it was read under tells
    /// nothing new.
    read_under: Option<RoomState>,
}

impl Waiter {
    pub fn new(rooms: &Rooms, token: String, reading: Token) -> Self {
        let room = rooms.watch(reading.schedule);
        Self { token, reading, room, read_under: None }
    }

    /// Waits until the token may read otherwise (its room admitted past its place or closed)
    /// or `until`; then reads it again. `Ok(None)`: the token is gone.
    pub async fn next(
        &mut self,
        conn: &mut platform::pools::Redis,
        keys: &QueueKeys,
        until: Instant,
    ) -> Result<Option<Token>, redis::RedisError> {
        loop {
            let state = *self.room.borrow_and_update();
            if state != self.read_under && state.is_some_and(|s| s.moved(&self.reading)) {
                break;
            }
            match tokio::time::timeout_at(until, self.room.changed()).await {
                Ok(Ok(())) => continue,
                // The pulse task stopped (shutdown) or the time is up: read as it is.
                Ok(Err(_)) | Err(_) => break,
            }
        }
        self.read_under = *self.room.borrow();
        let now = chrono::Utc::now().timestamp_millis();
        let reading = store::poll(conn, keys, &self.token, now).await?;
        if let Some(t) = &reading {
            self.reading = t.clone();
        }
        Ok(reading)
    }
}
