//! A reaction (load → decide → save) as a consumer runs it: planned and saved at once where the
//! statement's guard allows, decided again on the locked rows where it does not.

use crate::support::{applied, env, incoming};
use contracts::{Envelope, ReservationId, ScheduleId, SeatNo, SeatsReleased};
use messaging::{Applied, Apply, HandleError, InboxClaims, Incoming, Input, PgInbox, Reaction, react};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement};

const INBOX: &str = "probe__SEAT";

/// One record per reservation: the first event on a reservation is recorded with it, a later
/// one is recorded as refused. An event naming no seat asks nothing. `blind` loads as if
/// nothing were recorded: a broken `load`.
struct OnePerReservation {
    blind: bool,
}

/// What an event asks: to record itself against its reservation; nothing without seats.
struct Asked {
    event: uuid::Uuid,
    reservation: Option<ReservationId>,
}

enum Plan {
    Record { event: uuid::Uuid, reservation: ReservationId },
    Refuse { event: uuid::Uuid },
}

impl Reaction for OnePerReservation {
    type Asked = Asked;
    /// Whether the reservation has its record.
    type Found = bool;
    type Plan = Plan;

    fn handles(&self, kind: &str) -> bool {
        kind == "SeatsReleased"
    }

    fn asked(&self, msg: &Incoming) -> Result<Asked, HandleError> {
        let e = msg.decode::<SeatsReleased>()?;
        let reservation = (!e.payload.seat_nos.is_empty()).then_some(e.payload.reservation_id);
        Ok(Asked { event: e.id.0, reservation })
    }

    async fn assume(
        &self,
        _: &DatabaseConnection,
        asked: &Asked,
        earlier: &[(i64, Plan)],
    ) -> Result<Option<Plan>, HandleError> {
        let Some(reservation) = asked.reservation else { return Ok(None) };
        let named = earlier
            .iter()
            .any(|(_, p)| matches!(p, Plan::Record { reservation: r, .. } if *r == reservation));
        Ok((!named).then_some(Plan::Record { event: asked.event, reservation }))
    }

    async fn load(
        &self,
        txn: &DatabaseTransaction,
        asked: &Asked,
        _: &Incoming,
    ) -> Result<bool, HandleError> {
        let Some(reservation) = asked.reservation else { return Ok(false) };
        let row = txn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_advisory_xact_lock(hashtext($1)), EXISTS (SELECT FROM probe.applied WHERE trace_id = $1) AS recorded",
                [reservation.to_string().into()],
            ))
            .await?
            .ok_or_else(|| HandleError::Transient("no row".into()))?;
        let recorded: bool =
            row.try_get("", "recorded").map_err(|e| HandleError::Transient(e.to_string()))?;
        Ok(recorded && !self.blind)
    }

    fn decide(&self, asked: &Asked, recorded: bool) -> Result<Option<Plan>, HandleError> {
        Ok(match asked.reservation {
            None => None,
            Some(_) if recorded => Some(Plan::Refuse { event: asked.event }),
            Some(reservation) => Some(Plan::Record { event: asked.event, reservation }),
        })
    }

    async fn save<C: ConnectionTrait>(
        &self,
        db: &C,
        plans: Vec<(i64, Plan)>,
        claims: Option<&InboxClaims<'_>>,
    ) -> Result<Vec<i64>, HandleError> {
        let (mut records, mut refusals) = (Vec::new(), Vec::new());
        for (i, plan) in plans {
            match plan {
                Plan::Record { event, reservation } => records.push((i, event, reservation.to_string())),
                Plan::Refuse { event } => refusals.push((i, event)),
            }
        }
        let input = Input::at(records.iter().map(|r| r.0).collect())
            .column("event_id", "uuid", records.iter().map(|r| r.1).collect())
            .column("reservation", "text", records.iter().map(|r| r.2.clone()).collect());
        let mut done = messaging::BatchWrite::over(input)
            .step(
                "recorded",
                "INSERT INTO probe.applied (event_id, trace_id) SELECT event_id, reservation FROM input
                 WHERE NOT EXISTS (SELECT FROM probe.applied a WHERE a.trace_id = input.reservation) RETURNING 0",
            )
            .step("done", "SELECT i FROM input WHERE NOT EXISTS (SELECT FROM probe.applied a WHERE a.trace_id = input.reservation)")
            .applied_by("done")
            .claims(claims)
            .run(db)
            .await?;
        let input = Input::at(refusals.iter().map(|r| r.0).collect()).column(
            "event_id",
            "uuid",
            refusals.iter().map(|r| r.1).collect(),
        );
        done.extend(
            messaging::BatchWrite::over(input)
                .step(
                    "refused",
                    "INSERT INTO probe.applied (event_id, trace_id) SELECT event_id, 'refused' FROM input",
                )
                .claims(claims)
                .run(db)
                .await?,
        );
        done.sort_unstable();
        Ok(done)
    }
}

fn on(reservation: ReservationId, seats: usize) -> Incoming {
    let event = SeatsReleased {
        reservation_id: reservation,
        schedule_id: ScheduleId::new(),
        seat_nos: vec![SeatNo(1); seats],
    };
    incoming(&Envelope::new("probe", reservation, event), 1)
}

/// What `event` was recorded as, once each.
async fn recorded_as(db: &DatabaseConnection, event: &Incoming) -> Vec<String> {
    db.query_all_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT trace_id FROM probe.applied WHERE event_id = $1",
        [event.envelope.id.0.into()],
    ))
    .await
    .unwrap()
    .iter()
    .map(|r| r.try_get::<String>("", "trace_id").unwrap())
    .collect()
}

#[tokio::test]
async fn what_the_guard_refuses_at_once_is_decided_again_on_the_locked_rows_and_saved_by_the_same_statement()
{
    let env = env().await;
    let (r1, r2) = (ReservationId::new(), ReservationId::new());
    let (a, b, c, nothing) = (on(r1, 1), on(r1, 1), on(r2, 1), on(ReservationId::new(), 0));
    let handler = react(OnePerReservation { blind: false });
    let claims = InboxClaims::new("probe", INBOX, [&a, &b, &c].iter().map(|m| m.envelope.id.0).collect());
    // At once: `b` names the reservation of `a`, which plans first; `b` is left.
    assert_eq!(
        messaging::Handler::at_once_each(&handler, &env.db, &claims, &[a.clone(), b.clone(), c.clone()])
            .await
            .unwrap(),
        [1, 3]
    );
    assert_eq!(recorded_as(&env.db, &a).await, [r1.to_string()]);
    assert_eq!(recorded_as(&env.db, &b).await, Vec::<String>::new());

    // The consumer's way: `b` and `d` are planned as records and saved at once, but the
    // statement's guard finds their reservations recorded; in the transaction each is decided
    // again on what it finds, refused, and saved as such. `a` and `c` are duplicates, and
    // `nothing` asks nothing.
    let inbox = PgInbox::new(env.db.clone(), "probe", handler);
    let d = on(r2, 1);
    let batch = [b.clone(), d.clone(), a.clone(), c.clone(), nothing.clone()];
    let outcomes: Vec<Applied> =
        inbox.apply_batch(INBOX, &batch).await.into_iter().map(Result::unwrap).collect();
    use Applied::{Done, Duplicate};
    assert_eq!(outcomes, [Done, Done, Duplicate, Duplicate, Done]);
    assert_eq!(recorded_as(&env.db, &b).await, ["refused"]);
    assert_eq!(recorded_as(&env.db, &d).await, ["refused"]);
    assert_eq!(applied(&env, nothing.envelope.id.0).await, 0, "nothing to do, and nothing done");
    assert_eq!(recorded_as(&env.db, &a).await, [r1.to_string()]);
    assert_eq!(recorded_as(&env.db, &c).await, [r2.to_string()]);
}

#[tokio::test]
async fn a_plan_decided_on_locked_rows_that_its_statement_refuses_is_a_transient_failure_that_leaves_nothing()
{
    let env = env().await;
    let r = ReservationId::new();
    let first = on(r, 1);
    let inbox = PgInbox::new(env.db.clone(), "probe", react(OnePerReservation { blind: true }));
    assert_eq!(inbox.apply(INBOX, &first).await.unwrap(), Applied::Done);

    // The broken load sees no record, so the plan is to record; the statement's guard refuses.
    let second = on(r, 1);
    let outcome = inbox.apply(INBOX, &second).await;
    assert!(
        matches!(outcome, Err(HandleError::Transient(ref reason)) if reason.contains("not applied")),
        "{outcome:?}"
    );
    assert_eq!(recorded_as(&env.db, &second).await, Vec::<String>::new());

    // Nothing of it stayed, its inbox row neither: a sound reaction applies it on the next
    // delivery.
    let sound = PgInbox::new(env.db.clone(), "probe", react(OnePerReservation { blind: false }));
    assert_eq!(
        sound.apply(INBOX, &Incoming { deliveries: 2, ..second.clone() }).await.unwrap(),
        Applied::Done
    );
    assert_eq!(recorded_as(&env.db, &second).await, ["refused"]);
}

/// Reacts to `ChargeCompleted` and never manages to save it.
struct NeverSaved;

impl Reaction for NeverSaved {
    type Asked = ();
    type Found = ();
    type Plan = ();

    fn handles(&self, kind: &str) -> bool {
        kind == "ChargeCompleted"
    }

    fn asked(&self, _: &Incoming) -> Result<(), HandleError> {
        Ok(())
    }

    async fn assume(
        &self,
        _: &DatabaseConnection,
        (): &(),
        _: &[(i64, ())],
    ) -> Result<Option<()>, HandleError> {
        Ok(Some(()))
    }

    async fn load(&self, _: &DatabaseTransaction, (): &(), _: &Incoming) -> Result<(), HandleError> {
        Ok(())
    }

    fn decide(&self, (): &(), (): ()) -> Result<Option<()>, HandleError> {
        Ok(Some(()))
    }

    async fn save<C: ConnectionTrait>(
        &self,
        _: &C,
        _: Vec<(i64, ())>,
        _: Option<&InboxClaims<'_>>,
    ) -> Result<Vec<i64>, HandleError> {
        Err(HandleError::Transient("the charge's table is away".into()))
    }
}

#[tokio::test]
async fn what_one_reaction_applied_at_once_stays_applied_when_another_of_the_batch_fails() {
    let env = env().await;
    let released = on(ReservationId::new(), 1);
    let charge = contracts::ChargeCompleted {
        charge_id: contracts::ChargeId::new(),
        user_id: contracts::UserId::new(),
        amount: contracts::Won(1),
        balance: contracts::Won(1),
    };
    let charge = incoming(&Envelope::new("probe", charge.user_id, charge), 1);
    let both = || react(NeverSaved).or(react(OnePerReservation { blind: false }));
    let claims = InboxClaims::new("probe", INBOX, vec![charge.envelope.id.0, released.envelope.id.0]);
    let batch = [charge.clone(), released.clone()];
    assert_eq!(messaging::Handler::at_once_each(&both(), &env.db, &claims, &batch).await.unwrap(), [2]);
    assert_eq!(applied(&env, released.envelope.id.0).await, 1);

    // The consumer's way: the release is a duplicate, the charge fails alone.
    let outcomes = PgInbox::new(env.db.clone(), "probe", both()).apply_batch(INBOX, &batch).await;
    assert!(matches!(outcomes[0], Err(HandleError::Transient(_))), "{outcomes:?}");
    assert!(matches!(outcomes[1], Ok(Applied::Duplicate)), "{outcomes:?}");
}

/// [`OnePerReservation`] planning at once on what it remembers of a reservation (that it has
/// no record yet), or else on what it reads; a copy planned on is forgotten.
struct Remembering {
    inner: OnePerReservation,
    unrecorded: std::sync::Mutex<std::collections::HashSet<ReservationId>>,
}

/// Whether `reservation` has its record, read without a lock.
async fn has_record(db: &DatabaseConnection, reservation: ReservationId) -> Result<bool, HandleError> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT EXISTS (SELECT FROM probe.applied WHERE trace_id = $1) AS recorded",
            [reservation.to_string().into()],
        ))
        .await?
        .ok_or_else(|| HandleError::Transient("no row".into()))?;
    row.try_get("", "recorded").map_err(|e| HandleError::Transient(e.to_string()))
}

impl Reaction for Remembering {
    type Asked = Asked;
    type Found = bool;
    /// A plan, and whether it was made on a remembered copy.
    type Plan = (Plan, bool);

    fn handles(&self, kind: &str) -> bool {
        self.inner.handles(kind)
    }

    fn asked(&self, msg: &Incoming) -> Result<Asked, HandleError> {
        self.inner.asked(msg)
    }

    async fn assume_each(
        &self,
        db: &DatabaseConnection,
        asked: &[(i64, &Asked)],
    ) -> Result<Vec<(i64, (Plan, bool))>, HandleError> {
        let mut plans = Vec::new();
        for &(position, asked) in asked {
            let Some(reservation) = asked.reservation else { continue };
            let remembered = self.unrecorded.lock().unwrap().remove(&reservation);
            let plan = if remembered || !has_record(db, reservation).await? {
                Plan::Record { event: asked.event, reservation }
            } else {
                Plan::Refuse { event: asked.event }
            };
            plans.push((position, (plan, remembered)));
        }
        Ok(plans)
    }

    fn may_be_stale(&self, (_, remembered): &(Plan, bool)) -> bool {
        *remembered
    }

    async fn load(
        &self,
        txn: &DatabaseTransaction,
        asked: &Asked,
        msg: &Incoming,
    ) -> Result<bool, HandleError> {
        self.inner.load(txn, asked, msg).await
    }

    fn decide(&self, asked: &Asked, recorded: bool) -> Result<Option<(Plan, bool)>, HandleError> {
        Ok(self.inner.decide(asked, recorded)?.map(|plan| (plan, false)))
    }

    async fn save<C: ConnectionTrait>(
        &self,
        db: &C,
        plans: Vec<(i64, (Plan, bool))>,
        claims: Option<&InboxClaims<'_>>,
    ) -> Result<Vec<i64>, HandleError> {
        self.inner.save(db, plans.into_iter().map(|(i, (plan, _))| (i, plan)).collect(), claims).await
    }
}

#[tokio::test]
async fn a_plan_on_a_stale_remembered_copy_is_planned_again_on_what_is_read_and_saved_at_once() {
    let env = env().await;
    let (r1, r2) = (ReservationId::new(), ReservationId::new());
    let first = on(r1, 1);
    let inbox = PgInbox::new(env.db.clone(), "probe", react(OnePerReservation { blind: false }));
    assert_eq!(inbox.apply(INBOX, &first).await.unwrap(), Applied::Done);

    // It remembers both reservations without a record; `r1` has had one since (the copy is
    // stale), `r2` has none (the copy is right).
    let unrecorded: std::collections::HashSet<_> = [r1, r2].into_iter().collect();
    let handler =
        react(Remembering { inner: OnePerReservation { blind: false }, unrecorded: unrecorded.into() });
    let (late, other) = (on(r1, 1), on(r2, 1));
    let claims = InboxClaims::new("probe", INBOX, vec![late.envelope.id.0, other.envelope.id.0]);
    let batch = [late.clone(), other.clone()];
    // Both planned on memory; the guard refuses `late`'s record, which is planned again on
    // what is read (a refusal) and saved at once with its inbox row.
    assert_eq!(messaging::Handler::at_once_each(&handler, &env.db, &claims, &batch).await.unwrap(), [1, 2]);
    assert_eq!(recorded_as(&env.db, &late).await, ["refused"]);
    assert_eq!(recorded_as(&env.db, &other).await, [r2.to_string()]);
    assert_eq!(applied(&env, late.envelope.id.0).await, 1);
}
