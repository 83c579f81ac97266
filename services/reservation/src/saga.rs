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
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr};
use std::collections::{HashMap, HashSet};

/// What brought an input.
#[derive(Clone, Copy, Debug)]
pub enum Origin<'a> {
    /// An event: its type goes into the timeline, and events emitted now name it as their cause.
    Event { kind: &'a str, meta: &'a EnvelopeMeta },
    /// A request of the reservation's owner (anyone else's reservation is not found).
    Request { user: UserId },
}

/// Applies `input` to reservation `id`. Returns the reservation afterwards.
pub async fn apply(
    txn: &DatabaseTransaction,
    outbox: &Outbox,
    id: ReservationId,
    input: Input,
    origin: Origin<'_>,
) -> Result<Reservation, Error> {
    let current = store::lock(txn, id).await?.ok_or(Error::NotFound)?;
    let (seen, cause) = origin.of(&current)?;
    let decision = domain::decide(&current, input).map_err(Error::Refused)?;
    persist(txn, outbox, &current, &decision, seen, cause).await?;
    Ok(decision.next)
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
    let step = Step { position: 1, id, input, origin: Origin::Request { user } };
    // A remembered copy another replica had overtaken (its notice not arrived yet) fails the
    // compare-and-set: read the row and try once more before the caller's transaction.
    // The same for a copy that refuses the input: only the row as it stands may refuse.
    for memory in [true, false] {
        let (planned, from_memory) = plan_known(db, outbox, local, step.clone(), memory).await?;
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

/// Decides `step` on the copy of its reservation this process remembers (with `memory`), or
/// else on the row as read ([`plan`]); answers with it whether the copy came from memory.
async fn plan_known<'a>(
    db: &DatabaseConnection,
    outbox: &Outbox,
    local: &Local,
    step: Step<'a>,
    memory: bool,
) -> Result<(Option<Planned<'a>>, bool), Error> {
    let remembered = memory.then(|| local.recent.take(step.id)).flatten();
    let from_memory = remembered.is_some();
    let known = match remembered {
        Some(known) => known,
        None => store::read(db, step.id).await?.ok_or(Error::NotFound)?,
    };
    Ok((plan(outbox, local, step, known, from_memory)?, from_memory))
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
    type Item = Planned<'static>;
    type Output = Option<(Reservation, Option<usize>)>;
    type Error = Error;

    fn fits(&self, batch: &[Planned<'static>], item: &Planned<'static>) -> bool {
        !batch.iter().any(|p| p.next.id == item.next.id)
    }

    async fn run(&self, batch: &[Planned<'static>]) -> Result<Vec<Self::Output>, Error> {
        let keyed: Vec<(i64, &Planned<'_>)> = (1..).zip(batch).collect();
        let mut saved: HashMap<i64, (Reservation, Option<usize>)> =
            save_planned(&self.db, &self.outbox, &self.local, &keyed, None)
                .await?
                .into_iter()
                .map(|(i, r, entries)| (i, (r, entries)))
                .collect();
        Ok(keyed.iter().map(|(i, _)| saved.remove(i)).collect())
    }
}

/// An input to apply to a reservation, keyed by a position (from 1, as [`InboxClaims`] counts).
#[derive(Clone)]
pub struct Step<'a> {
    pub position: i64,
    pub id: ReservationId,
    pub input: Input,
    /// What asked for it: an event, or a user's request.
    pub origin: Origin<'a>,
}

/// Applies events' inputs outside a transaction, in one statement (a single event is a batch of
/// one), each with the inbox row of `claims` at its position: for those named by no earlier step, decided on the copy this process
/// remembers (what it, or another replica, wrote last) or else on the rows read together in one
/// statement. A copy another writer had overtaken (its notice had not arrived yet) fails its
/// compare-and-set; those steps are read again and tried once more. Answers the positions
/// applied; the others (an input only the locked row may refuse, a row moving under a busy
/// writer) are left to the caller, to apply in a transaction, as are all of them on an error.
pub async fn apply_each_at_once(
    db: &DatabaseConnection,
    outbox: &Outbox,
    local: &Local,
    steps: Vec<Step<'_>>,
    claims: &InboxClaims<'_>,
) -> Result<Vec<i64>, Error> {
    let mut named = HashSet::new();
    let mut pending: Vec<Step<'_>> = steps.into_iter().filter(|step| named.insert(step.id)).collect();
    let mut applied = Vec::new();
    for from_memory in [true, false] {
        if pending.is_empty() {
            break;
        }
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        for step in pending.iter().cloned() {
            match from_memory.then(|| local.recent.take(step.id)).flatten() {
                Some(copy) => known.push((step, copy)),
                None => unknown.push(step),
            }
        }
        let ids: Vec<ReservationId> = unknown.iter().map(|s| s.id).collect();
        let mut read = store::read_each(db, &ids).await?;
        known.extend(unknown.into_iter().filter_map(|step| read.remove(&step.id).map(|row| (step, row))));
        let mut planned = Vec::new();
        for (step, copy) in known {
            // As if remembered: a refusal is left to the transaction, which decides on the
            // locked row.
            planned.extend(plan(outbox, local, step, copy, true)?);
        }
        let keyed: Vec<(i64, &Planned<'_>)> = planned.iter().map(|p| (p.position, p)).collect();
        let saved: HashSet<i64> = save_planned(db, outbox, local, &keyed, Some(claims))
            .await?
            .into_iter()
            .map(|(i, ..)| i)
            .collect();
        pending.retain(|step| !saved.contains(&step.position));
        applied.extend(saved);
    }
    applied.sort_unstable();
    Ok(applied)
}

/// A decision taken on a known copy of a reservation, ready to save.
pub struct Planned<'a> {
    position: i64,
    current: Reservation,
    version: String,
    next: Reservation,
    events: Vec<OutboxRow>,
    kinds: Vec<&'a str>,
    view: bool,
    /// The request's answer to keep with the change ([`apply_requested`]).
    kept: Option<Kept>,
}

/// Decides `step` on `known` (a row and its version); `None` when there is nothing to save, or
/// the copy `from_memory` refuses the step (only the row as it stands may refuse).
fn plan<'a>(
    outbox: &Outbox,
    local: &Local,
    Step { position, id, input, origin }: Step<'a>,
    (current, version): (Reservation, String),
    from_memory: bool,
) -> Result<Option<Planned<'a>>, Error> {
    let decided = origin.of(&current).and_then(|(seen, cause)| {
        let decision = domain::decide(&current, input).map_err(Error::Refused)?;
        Ok((seen, cause, decision))
    });
    let (seen, cause, decision) = match decided {
        Ok(decided) => decided,
        Err(Error::NotFound | Error::Refused(_)) if from_memory => return Ok(None),
        Err(e) => return Err(e),
    };
    if decision.next == current {
        return Ok(None);
    }
    let (events, kinds) = outcome(outbox, &decision, seen, cause)?;
    let view = local.wants_view(id);
    Ok(Some(Planned { position, current, version, next: decision.next, events, kinds, view, kept: None }))
}

/// Saves `planned`, each keyed by a position (with `claims`, its message's), in one statement;
/// remembers each reservation saved and offers its timeline to its waiters. Answers, by
/// position, the reservations saved and the length of their timelines when answered.
async fn save_planned(
    db: &DatabaseConnection,
    outbox: &Outbox,
    local: &Local,
    planned: &[(i64, &Planned<'_>)],
    claims: Option<&InboxClaims<'_>>,
) -> Result<Vec<(i64, Reservation, Option<usize>)>, DbErr> {
    let changes: Vec<(i64, store::Change<'_>)> = planned
        .iter()
        .map(|&(position, p)| {
            let change = store::Change {
                expected: p.current.status,
                version: Some(&p.version),
                next: &p.next,
                kinds: &p.kinds,
                events: &p.events,
                view: p.view,
                kept: p.kept.as_ref(),
            };
            (position, change)
        })
        .collect();
    let saved = store::save(db, &changes, outbox, claims).await?;
    Ok(saved
        .into_iter()
        .map(|(i, saved)| {
            let entries = saved.timeline.as_ref().map(Vec::len);
            local.saved(saved.row.clone(), saved.version, saved.timeline);
            (i, saved.row, entries)
        })
        .collect())
}

impl<'a> Origin<'a> {
    /// The event type to put into the timeline and the event to name as cause, or `NotFound`
    /// for a request of someone other than the owner of `current`.
    fn of(self, current: &Reservation) -> Result<(Option<&'a str>, Option<&'a EnvelopeMeta>), Error> {
        match self {
            Origin::Event { kind, meta } => Ok((Some(kind), Some(meta))),
            Origin::Request { user } if user == current.user_id => Ok((None, None)),
            Origin::Request { .. } => Err(Error::NotFound),
        }
    }
}

/// The outbox rows of a decision, and the timeline entries: the event seen, then those emitted.
fn outcome<'a>(
    outbox: &Outbox,
    decision: &Decision,
    seen: Option<&'a str>,
    cause: Option<&EnvelopeMeta>,
) -> Result<(Vec<OutboxRow>, Vec<&'a str>), DbErr> {
    let events = decision
        .emit
        .iter()
        .map(|emit| event_row(outbox, &decision.next, emit, cause))
        .collect::<Result<Vec<_>, _>>()?;
    let kinds = seen.into_iter().chain(events.iter().map(|e| e.kind)).collect();
    Ok((events, kinds))
}

/// Saves a decision taken on the locked `current`.
pub async fn persist(
    txn: &DatabaseTransaction,
    outbox: &Outbox,
    current: &Reservation,
    decision: &Decision,
    seen: Option<&str>,
    cause: Option<&EnvelopeMeta>,
) -> Result<(), DbErr> {
    let (events, kinds) = outcome(outbox, decision, seen, cause)?;
    if decision.next == *current {
        outbox.push_rows(txn, &events).await?;
        return store::record(txn, current.id, &kinds).await;
    }
    let change = store::Change {
        expected: current.status,
        version: None,
        next: &decision.next,
        kinds: &kinds,
        events: &events,
        view: false,
        kept: None,
    };
    if store::save(txn, &[(1, change)], outbox, None).await?.is_empty() {
        // The row is locked, so its status cannot have moved; fail loudly (the transaction and
        // the events written in it roll back).
        return Err(DbErr::Custom(format!("reservation {} changed under its lock", current.id)));
    }
    Ok(())
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
