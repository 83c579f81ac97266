//! Applying a decision: the one path by which a reservation changes. It locks the row, asks
//! `decide`, saves with compare-and-set, appends the timeline and writes the resulting events
//! to the outbox, all in the caller's transaction.

use crate::{
    NAME,
    domain::{self, Decision, Emit, Input, Reservation},
    error::Error,
    store,
    waiters::{self, Waiters},
};
use contracts::{
    CardPaymentRequested, CardRefundRequested, EnvelopeMeta, PaymentMethod, PaymentRequested,
    RefundRequested, ReservationCancelled, ReservationCompleted, ReservationFailed, ReservationId, UserId,
};
use messaging::{InboxClaims, Outbox, OutboxRow, Peers, Runtime};
use platform::{
    combine::{Batch, Combiner},
    idempotency::Kept,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr};
use std::collections::HashMap;

/// What brought an input.
#[derive(Clone, Copy, Debug)]
pub enum Origin<'a> {
    /// An event: its type goes into the timeline, and events emitted now name it as their cause.
    Event { kind: &'static str, meta: &'a EnvelopeMeta },
    /// A request of the reservation's owner (anyone else's reservation is not found).
    Request { user: UserId },
    /// A deadline passing, or an ending the reservation missed (the sweeper).
    Sweep,
}

/// Applies `input` to reservation `id` in `txn`, on the row locked. Returns the reservation
/// afterwards.
pub async fn apply(
    txn: &DatabaseTransaction,
    outbox: &Outbox,
    id: ReservationId,
    input: Input,
    origin: Origin<'_>,
) -> Result<Reservation, Error> {
    let current = store::lock(txn, id).await?.ok_or(Error::NotFound)?;
    let planned = decide(outbox, input, origin, current, None)?;
    save_locked(txn, outbox, &planned).await?;
    Ok(planned.next)
}

/// What this process knows beyond the database: the reservations as it (or, told by them, the
/// service's other replicas) last wrote them, and the requests waiting for them to settle.
#[derive(Clone, Default)]
pub struct Local {
    pub recent: store::Recent,
    pub waiters: Waiters,
    /// The service's other replicas, told of every save and change ([`Notice`]).
    peers: Option<Peers>,
}

/// What one replica tells the others. Behind an ingress, a reservation's request, its answers
/// and the request waiting for it reach any replica: told of each save, a replica decides on
/// the copy it was sent instead of reading the row (or, holding an older copy, failing the
/// compare-and-set and taking the row's lock); told of each change, its waiters look at once
/// instead of at their next recheck. A notice lost costs only that (see `messaging::Peers`).
#[derive(serde::Serialize, serde::Deserialize)]
enum Notice {
    /// With its timeline, so that a waiter there answers without reading the reservation.
    Saved {
        row: Reservation,
        version: String,
        timeline: Option<Vec<store::TimelineEntry>>,
    },
    Changed {
        id: ReservationId,
    },
}

impl Local {
    /// A process's memory, shared with the service's other replicas.
    pub fn across_replicas(rt: &Runtime) -> Self {
        let here = Self::default();
        let heard = here.clone();
        let peers = Peers::start(rt, "reservation.changed", move |notice| heard.hear(notice));
        Self { peers: Some(peers), ..here }
    }

    /// Whether saves should answer their timelines: for a waiter here ([`Waiters::watched`]),
    /// or in another replica, which this one cannot know of.
    fn wants_view(&self, id: ReservationId) -> bool {
        self.peers.is_some() || self.waiters.watched(id)
    }

    /// Remembers `row` as stored with `version`, here and in the other replicas, and offers
    /// its `timeline` (when the save answered it) to whoever waits on it.
    pub fn saved(&self, row: Reservation, version: String, timeline: Option<Vec<store::TimelineEntry>>) {
        if self.peers.is_some() {
            let notice =
                Notice::Saved { row: row.clone(), version: version.clone(), timeline: timeline.clone() };
            self.tell(&notice);
        }
        if let Some(timeline) = timeline {
            self.waiters.offer(waiters::View { reservation: row.clone(), timeline });
        }
        self.recent.remember(row, version);
    }

    /// Wakes those waiting on `id` here and in the other replicas (after its change commits).
    pub fn changed(&self, id: ReservationId) {
        self.waiters.notify(id);
        self.tell(&Notice::Changed { id });
    }

    fn tell(&self, notice: &Notice) {
        if let Some(peers) = &self.peers
            && let Ok(bytes) = serde_json::to_vec(notice)
        {
            peers.announce(bytes);
        }
    }

    fn hear(&self, notice: &[u8]) {
        match serde_json::from_slice(notice) {
            Ok(Notice::Saved { row, version, timeline }) => {
                let id = row.id;
                if let Some(timeline) = timeline {
                    self.waiters.offer(waiters::View { reservation: row.clone(), timeline });
                }
                self.recent.remember_unless_older(row, version);
                self.waiters.notify(id);
            }
            Ok(Notice::Changed { id }) => self.waiters.notify(id),
            Err(e) => tracing::debug!(error = %e, "an unreadable notice from another replica"),
        }
    }
}

/// Applies `input` to reservation `id` for a request of `user`'s, outside a transaction: decides
/// on the row as this process last wrote it (`recent`) or else as read, and writes the change,
/// its timeline and its events only if the row is still that version, in one statement with the
/// other requests' changes that are waiting meanwhile (`saves`). `Ok(None)` when that did not
/// happen (the row moved on twice, or the decision changes nothing but the timeline): nothing
/// was written, and the caller applies the input in a transaction instead ([`apply`]). When
/// someone in this process waits on the reservation, the change also answers its whole
/// timeline, offered to the waiters as the settled view, and its length comes back with the
/// reservation. `keep` says what answer to keep (under the request's `Idempotency-Key`) with a
/// change that leaves the reservation as given; the statement keeps it.
pub async fn apply_requested(
    saves: &Combiner<Saves>,
    id: ReservationId,
    input: Input,
    user: UserId,
    keep: impl Fn(&Reservation) -> Result<Option<Kept>, Error>,
) -> Result<Option<(Reservation, Option<usize>)>, Error> {
    let Saves { db, outbox, local } = saves.batch();
    // A remembered copy another replica had overtaken (its notice not arrived yet) fails the
    // compare-and-set: read the row and try once more before the caller's transaction.
    // The same for a copy that refuses the input: only the row as it stands may refuse.
    for memory in [true, false] {
        let remembered = memory.then(|| local.recent.take(id)).flatten();
        let from_memory = remembered.is_some();
        let (current, version) = match remembered {
            Some(known) => known,
            None => store::read(db, id).await?.ok_or(Error::NotFound)?,
        };
        let planned = match decide(outbox, input.clone(), Origin::Request { user }, current, Some(version)) {
            Ok(planned) => local.to_save(planned, from_memory),
            // Only the row as it stands may refuse.
            Err(Error::NotFound | Error::Refused(_)) if from_memory => None,
            Err(e) => return Err(e),
        };
        if let Some(mut planned) = planned {
            planned.kept = keep(&planned.next)?;
            if let Some(saved) = saves.run(planned).await? {
                return Ok(Some(saved));
            }
        }
        if !from_memory {
            break;
        }
    }
    Ok(None)
}

/// Requests' changes, written together when they arrive together ([`platform::combine`]);
/// two changes of one reservation never share a statement (the second is decided on the first's
/// copy, and its compare-and-set needs the first one's version).
pub struct Saves {
    pub db: DatabaseConnection,
    pub outbox: Outbox,
    pub local: Local,
}

impl Batch for Saves {
    type Item = Planned;
    type Output = Option<(Reservation, Option<usize>)>;
    type Error = Error;

    fn fits(&self, batch: &[Planned], item: &Planned) -> bool {
        !batch.iter().any(|p| p.next.id == item.next.id)
    }

    async fn run(&self, batch: &[Planned]) -> Result<Vec<Self::Output>, Error> {
        let keyed: Vec<(i64, &Planned)> = (1..).zip(batch).collect();
        let saved = save(&self.db, &self.outbox, &keyed, None).await?;
        let mut saved: HashMap<i64, (Reservation, Option<usize>)> =
            self.local.saved_each(saved).into_iter().map(|(i, r, entries)| (i, (r, entries))).collect();
        Ok(keyed.iter().map(|(i, _)| saved.remove(i)).collect())
    }
}

/// A decision taken on a known copy of a reservation, ready to save.
pub struct Planned {
    current: Reservation,
    /// The row version it was decided on; `None` when on the row locked in a transaction.
    version: Option<String>,
    pub next: Reservation,
    events: Vec<OutboxRow>,
    kinds: Vec<&'static str>,
    view: bool,
    /// Whether it was decided on a copy this process remembers rather than on the row as read.
    pub remembered: bool,
    /// The request's answer to keep with the change ([`apply_requested`]).
    kept: Option<Kept>,
}

impl Planned {
    /// Whether it was decided on the row locked in a transaction.
    pub fn locked(&self) -> bool {
        self.version.is_none()
    }

    /// Whether it changes nothing, and announces nothing.
    pub fn is_noop(&self) -> bool {
        self.events.is_empty() && self.next == self.current
    }

    /// What [`store::save`] writes of it.
    fn change(&self) -> store::Change<'_> {
        store::Change {
            expected: self.current.status,
            version: self.version.as_deref(),
            next: &self.next,
            kinds: &self.kinds,
            events: &self.events,
            view: self.view,
            kept: self.kept.as_ref(),
        }
    }
}

/// Decides `input` (which `origin` brought) on `current`, the row at `version` (`None`: locked
/// in the caller's transaction), with [`domain::decide`]: the plan that saves the decision, its
/// timeline and its events, or why the input is refused.
pub fn decide(
    outbox: &Outbox,
    input: Input,
    origin: Origin<'_>,
    current: Reservation,
    version: Option<String>,
) -> Result<Planned, Error> {
    let (seen, cause) = origin.of(&current)?;
    let decision = domain::decide(&current, input).map_err(Error::Refused)?;
    let (events, kinds) = outcome(outbox, &decision, seen, cause)?;
    Ok(Planned {
        current,
        version,
        next: decision.next,
        events,
        kinds,
        view: false,
        remembered: false,
        kept: None,
    })
}

impl Local {
    /// `planned` (decided on a copy remembered when `remembered`) as saved outside a
    /// transaction, answering its timeline when someone here waits on it: `None` when it
    /// changes nothing but the timeline (left to the transaction).
    pub fn to_save(&self, planned: Planned, remembered: bool) -> Option<Planned> {
        if planned.next == planned.current {
            return None;
        }
        let view = self.wants_view(planned.next.id);
        Some(Planned { view, remembered, ..planned })
    }

    /// Remembers each reservation `saved` (outside a transaction) and offers its timeline to its
    /// waiters. Answers, by position, the reservations and the length of their timelines when
    /// answered.
    pub fn saved_each(&self, saved: Vec<(i64, store::Saved)>) -> Vec<(i64, Reservation, Option<usize>)> {
        saved
            .into_iter()
            .map(|(i, saved)| {
                let entries = saved.timeline.as_ref().map(Vec::len);
                self.saved(saved.row.clone(), saved.version, saved.timeline);
                (i, saved.row, entries)
            })
            .collect()
    }
}

/// Saves `planned`, each keyed by a position (with `claims`, its message's), in one statement.
/// Answers, by position, what was saved: nothing of a plan whose row moved on from its version.
pub async fn save(
    db: &impl ConnectionTrait,
    outbox: &Outbox,
    planned: &[(i64, &Planned)],
    claims: Option<&InboxClaims<'_>>,
) -> Result<Vec<(i64, store::Saved)>, DbErr> {
    let changes: Vec<(i64, store::Change<'_>)> = planned.iter().map(|(i, p)| (*i, p.change())).collect();
    store::save(db, &changes, outbox, claims).await
}

/// Saves `planned`, decided on a row locked in `txn`, in `txn`.
pub async fn save_locked(txn: &DatabaseTransaction, outbox: &Outbox, planned: &Planned) -> Result<(), DbErr> {
    if save(txn, outbox, &[(1, planned)], None).await?.is_empty() {
        // The row is locked, so its status cannot have moved; fail loudly (the transaction and
        // the events written in it roll back).
        return Err(DbErr::Custom(format!("reservation {} changed under its lock", planned.next.id)));
    }
    Ok(())
}

impl<'a> Origin<'a> {
    /// The event type to put into the timeline and the event to name as cause, or `NotFound`
    /// for a request of someone other than the owner of `current`.
    fn of(self, current: &Reservation) -> Result<(Option<&'static str>, Option<&'a EnvelopeMeta>), Error> {
        match self {
            Origin::Event { kind, meta } => Ok((Some(kind), Some(meta))),
            Origin::Request { user } if user == current.user_id => Ok((None, None)),
            Origin::Request { .. } => Err(Error::NotFound),
            Origin::Sweep => Ok((None, None)),
        }
    }
}

/// The outbox rows of a decision, and the timeline entries: the event seen, then those emitted.
fn outcome(
    outbox: &Outbox,
    decision: &Decision,
    seen: Option<&'static str>,
    cause: Option<&EnvelopeMeta>,
) -> Result<(Vec<OutboxRow>, Vec<&'static str>), DbErr> {
    let events = decision
        .emit
        .iter()
        .map(|emit| event_row(outbox, &decision.next, emit, cause))
        .collect::<Result<Vec<_>, _>>()?;
    let kinds = seen.into_iter().chain(events.iter().map(|e| e.kind)).collect();
    Ok((events, kinds))
}

/// The outbox row of what `emit` announces about `r`.
fn event_row(
    outbox: &Outbox,
    r: &Reservation,
    emit: &Emit,
    cause: Option<&EnvelopeMeta>,
) -> Result<OutboxRow, DbErr> {
    match emit {
        Emit::PaymentRequested { pay_by } => {
            let (reservation_id, user_id, amount, pay_by) =
                (r.id, r.user_id, r.amount.unwrap_or_default(), *pay_by);
            match r.method.unwrap_or_default() {
                PaymentMethod::Wallet => outbox.row_of(
                    NAME,
                    r.id,
                    PaymentRequested { reservation_id, user_id, amount, pay_by },
                    cause,
                ),
                PaymentMethod::Card => outbox.row_of(
                    NAME,
                    r.id,
                    CardPaymentRequested { reservation_id, user_id, amount, pay_by },
                    cause,
                ),
            }
        }
        Emit::Completed => {
            let payload = ReservationCompleted {
                reservation_id: r.id,
                user_id: r.user_id,
                concert_id: r.concert_id,
                schedule_id: r.schedule_id,
                seat_nos: r.seat_nos.clone(),
                amount: r.amount.unwrap_or_default(),
                queue_token: r.queue_token.clone(),
            };
            outbox.row_of(NAME, r.id, payload, cause)
        }
        Emit::Cancelled(reason) => {
            let payload = ReservationCancelled {
                reservation_id: r.id,
                user_id: r.user_id,
                concert_id: r.concert_id,
                schedule_id: r.schedule_id,
                seat_nos: r.seat_nos.clone(),
                amount: r.amount.unwrap_or_default(),
                reason: *reason,
            };
            outbox.row_of(NAME, r.id, payload, cause)
        }
        Emit::Failed(reason) => {
            let payload = ReservationFailed {
                reservation_id: r.id,
                user_id: r.user_id,
                schedule_id: r.schedule_id,
                seat_nos: r.seat_nos.clone(),
                reason: *reason,
                queue_token: r.queue_token.clone(),
            };
            outbox.row_of(NAME, r.id, payload, cause)
        }
        // The money goes back the way it came.
        Emit::RefundRequested { amount } => {
            let (reservation_id, user_id, amount) = (r.id, r.user_id, *amount);
            match r.method.unwrap_or_default() {
                PaymentMethod::Wallet => {
                    outbox.row_of(NAME, r.id, RefundRequested { reservation_id, user_id, amount }, cause)
                }
                PaymentMethod::Card => {
                    outbox.row_of(NAME, r.id, CardRefundRequested { reservation_id, user_id, amount }, cause)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use super::*;
    use crate::domain::Status;
    use chrono::Utc;
    use std::time::Duration;
    use tokio_util::sync::CancellationToken;

    /// One replica's memory, with connections of its own as a process of its own would have.
    async fn replica(env: &testkit::TestEnv) -> (Local, CancellationToken) {
        let bus = messaging::Bus::connect(&env.config.nats_url, env.ns.clone()).await.unwrap();
        let stop = CancellationToken::new();
        let rt =
            Runtime::from_parts(env.config.clone(), env.db.clone(), bus, env.redis.clone(), stop.clone());
        (Local::across_replicas(&rt), stop)
    }

    fn held(version: u32) -> (Reservation, String) {
        let r = Reservation { status: Status::Held, ..Reservation::pending_of_seat(1) };
        (r, version.to_string())
    }

    #[tokio::test]
    async fn a_save_in_one_replica_is_remembered_and_answers_the_waiters_of_another_but_never_overwrites_a_later_copy()
     {
        let env = testkit::TestEnv::new().await.unwrap();
        let (a, stop_a) = replica(&env).await;
        let (b, stop_b) = replica(&env).await;
        let (row, version) = held(100);
        let watch = b.waiters.watch(row.id);
        let seen = watch.count();
        let timeline = vec![store::TimelineEntry { kind: "SeatReserved".into(), at: Utc::now() }];
        // The subscriptions start with the replicas: tell until b has heard.
        let heard = async {
            loop {
                a.saved(row.clone(), version.clone(), Some(timeline.clone()));
                if tokio::time::timeout(Duration::from_millis(200), watch.after(seen)).await.is_ok() {
                    break;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), heard).await.expect("b's waiter woken by a's save");
        let view = watch.offered_after(0).expect("offered the view a saved");
        assert_eq!(view.reservation, row);
        assert_eq!(b.recent.take(row.id), Some((row.clone(), version)), "b decides on a's copy");

        // b writes the reservation again (version 102); a's notice of an earlier write arriving
        // late does not replace it.
        b.saved(row.clone(), "102".into(), None);
        b.hear(
            &serde_json::to_vec(&Notice::Saved { row: row.clone(), version: "101".into(), timeline: None })
                .unwrap(),
        );
        assert_eq!(b.recent.take(row.id).map(|(_, v)| v).as_deref(), Some("102"));
        stop_a.cancel();
        stop_b.cancel();
    }
}
