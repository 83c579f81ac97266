//! A consumer's reaction to events as load → decide → save, of which the pipeline makes both
//! ways of applying them.
//!
//! A service says what an event asks ([`Reaction::asked`]), what it reads of its tables to
//! decide ([`Reaction::load`]), its rule as a pure function ([`Reaction::decide`]) and how a
//! batch of plans is written in one statement ([`Reaction::save`], a [`crate::BatchWrite`]
//! whose SQL guards what the plan assumed). [`Reacting`] makes a [`Handler`] of it:
//!
//! - **at once**: each event is planned without reading the tables ([`Reaction::assume`]), and
//!   every plan of the batch is saved by one statement outside a transaction, with the inbox
//!   rows of the positions it applied. A plan whose guard fails (the wallet does not cover it,
//!   a seat was taken) changes nothing, and its event goes the other way. A plan made on a
//!   copy the process remembers ([`Reaction::may_be_stale`]) is first planned once more;
//! - **in a transaction** (the events not applied at once, a duplicate, an error): load, with the
//!   rows the plan will change locked, decide again on what was found, and save the one plan by
//!   the same statement. Under the locks its guard holds; a plan it still refuses is a
//!   transient error, tried again on the next delivery.
//!
//! Several reactions of one consumer are one handler: `react(a).or(b)`.

use crate::{HandleError, Handler, InboxClaims, Incoming, Outbox, OutboxRow};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction};
use std::future::Future;

/// A reaction to the events of some kinds: load → decide → save.
pub trait Reaction: Send + Sync + 'static {
    /// What an event asks, decoded from it.
    type Asked: Send + Sync;
    /// What [`Reaction::load`] reads of the tables for [`Reaction::decide`].
    type Found: Send;
    /// What [`Reaction::decide`] settles on, written by [`Reaction::save`].
    type Plan: Send + Sync;

    /// Whether it reacts to events of type `kind`.
    fn handles(&self, kind: &str) -> bool;

    /// What `msg` asks; an error is permanent (the message goes to the dead-letter stream).
    fn asked(&self, msg: &Incoming) -> Result<Self::Asked, HandleError>;

    /// The plan for `asked` made without reading the tables, for the statement whose guard
    /// checks what it assumes; `earlier` holds the plans of the batch made so far (a plan that
    /// would touch the same rows as one of them is left to the transaction). `None` leaves the
    /// event to the transaction. By default every event goes there.
    fn assume<'a>(
        &'a self,
        db: &'a DatabaseConnection,
        asked: &'a Self::Asked,
        earlier: &'a [(i64, Self::Plan)],
    ) -> impl Future<Output = Result<Option<Self::Plan>, HandleError>> + Send + 'a {
        let _ = (db, asked, earlier);
        async { Ok(None) }
    }

    /// The plans for a batch's events made without reading the tables one by one, keyed by
    /// position: a reaction that reads what it remembers, or all the batch's rows in one
    /// statement, says so here. By default each event is [`Reaction::assume`]d in turn.
    fn assume_each<'a>(
        &'a self,
        db: &'a DatabaseConnection,
        asked: &'a [(i64, &'a Self::Asked)],
    ) -> impl Future<Output = Result<Vec<(i64, Self::Plan)>, HandleError>> + Send + 'a {
        async move {
            let mut plans = Vec::new();
            for (position, asked) in asked {
                if let Some(plan) = self.assume(db, asked, &plans).await? {
                    plans.push((*position, plan));
                }
            }
            Ok(plans)
        }
    }

    /// Whether `plan` was made on a copy this process remembers rather than on what it read:
    /// when its guard fails, the copy was only stale, and the event is assumed once more (the
    /// reaction having forgotten the copy) before it goes to the transaction.
    fn may_be_stale(&self, plan: &Self::Plan) -> bool {
        let _ = plan;
        false
    }

    /// Reads in `txn` what deciding `asked` needs, locking the rows its plan would change.
    fn load<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        asked: &'a Self::Asked,
        msg: &'a Incoming,
    ) -> impl Future<Output = Result<Self::Found, HandleError>> + Send + 'a;

    /// The rule: what to do about `asked` given what was `found`; `None` when nothing is to be
    /// done (the event was decided before). Pure.
    fn decide(&self, asked: &Self::Asked, found: Self::Found) -> Result<Option<Self::Plan>, HandleError>;

    /// Writes `plans` (each keyed by the position of the event it answers, from 1 as
    /// [`InboxClaims`] counts) in one statement on `db`, with the inbox rows of `claims` for the
    /// positions it applied (none in a transaction, whose inbox row is written already);
    /// answers those positions. A plan whose guard fails changes nothing.
    fn save<'a, C: ConnectionTrait>(
        &'a self,
        db: &'a C,
        plans: Vec<(i64, Self::Plan)>,
        claims: Option<&'a InboxClaims<'a>>,
    ) -> impl Future<Output = Result<Vec<i64>, HandleError>> + Send + 'a;

    /// Runs once the effect of `msg` is committed ([`Handler::after_commit`]).
    fn after_commit(&self, msg: &Incoming) {
        let _ = msg;
    }
}

/// The plan of a reaction whose answer is a change announced, or a refusal that changes
/// nothing and only says so.
pub enum Answered<C> {
    /// Make `change`, announced by `announced` (whose fields the statement may fill in).
    Change { change: C, announced: OutboxRow },
    /// Refuse: write only `announced`.
    Refused { announced: OutboxRow },
}

impl<C> Answered<C> {
    /// The change, if it is one.
    pub fn change(&self) -> Option<&C> {
        match self {
            Answered::Change { change, .. } => Some(change),
            Answered::Refused { .. } => None,
        }
    }
}

/// [`Answered`] plans keyed by position, sorted for their statements.
pub struct Split<'p, C> {
    /// The changes, for the statement that makes them (its guard may refuse some).
    pub changes: Vec<(i64, &'p C)>,
    /// Their announcements, for the same statement.
    pub announced: Vec<(i64, &'p OutboxRow)>,
    /// The refusals' announcements, for [`refusals`].
    pub refused: Vec<(i64, &'p OutboxRow)>,
}

impl<C> Answered<C> {
    /// `plans` sorted for their statements.
    pub fn split(plans: &[(i64, Self)]) -> Split<'_, C> {
        let mut split = Split { changes: Vec::new(), announced: Vec::new(), refused: Vec::new() };
        for (position, plan) in plans {
            match plan {
                Answered::Change { change, announced } => {
                    split.changes.push((*position, change));
                    split.announced.push((*position, announced));
                }
                Answered::Refused { announced } => split.refused.push((*position, announced)),
            }
        }
        split
    }
}

/// Writes the `refused` plans' announcements, with `claims`' inbox rows, in one statement (none
/// without refusals), after a statement that applied the changes at `applied`; answers the
/// positions of both, in order.
pub async fn refusals(
    db: &impl ConnectionTrait,
    outbox: &Outbox,
    refused: Vec<(i64, &OutboxRow)>,
    claims: Option<&InboxClaims<'_>>,
    mut applied: Vec<i64>,
) -> Result<Vec<i64>, HandleError> {
    applied.extend(crate::write::announce_each(db, outbox, refused, claims).await?);
    applied.sort_unstable();
    Ok(applied)
}

/// The [`Handler`] of a [`Reaction`].
pub struct Reacting<R>(pub R);

/// The handler of `reaction`; `.or(..)` adds the reactions to other kinds.
pub fn react<R: Reaction>(reaction: R) -> Reacting<R> {
    Reacting(reaction)
}

impl<R: Reaction> Reacting<R> {
    /// One handler of this reaction and `other`'s (to other kinds).
    pub fn or<H: Handler>(self, other: H) -> Or<Self, H> {
        Or(self, other)
    }

    /// What those of `msgs` it handles ask, by position.
    fn asked_of(&self, msgs: &[Incoming]) -> Vec<(i64, R::Asked)> {
        (1i64..)
            .zip(msgs)
            .filter(|(_, msg)| self.0.handles(msg.kind()))
            // An event that does not decode is refused again in the transaction, and
            // dead-lettered.
            .filter_map(|(position, msg)| Some((position, self.0.asked(msg).ok()?)))
            .collect()
    }

    /// Saves the plans assumed for `asked`, with `claims`' inbox rows; answers the positions
    /// applied and those of plans [`Reaction::may_be_stale`] that were not.
    async fn assume_and_save(
        &self,
        db: &DatabaseConnection,
        claims: &InboxClaims<'_>,
        asked: &[(i64, &R::Asked)],
    ) -> Result<(Vec<i64>, Vec<i64>), HandleError> {
        let plans = self.0.assume_each(db, asked).await?;
        if plans.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let stale: Vec<i64> =
            plans.iter().filter(|(_, plan)| self.0.may_be_stale(plan)).map(|(i, _)| *i).collect();
        let applied = self.0.save(db, plans, Some(claims)).await?;
        let stale = stale.into_iter().filter(|i| !applied.contains(i)).collect();
        Ok((applied, stale))
    }
}

impl<R: Reaction> Handler for Reacting<R> {
    fn handles(&self, kind: &str) -> bool {
        self.0.handles(kind)
    }

    async fn at_once_each(
        &self,
        db: &DatabaseConnection,
        claims: &InboxClaims<'_>,
        msgs: &[Incoming],
    ) -> Result<Vec<i64>, HandleError> {
        let asked = self.asked_of(msgs);
        let asked: Vec<(i64, &R::Asked)> = asked.iter().map(|(i, a)| (*i, a)).collect();
        let (mut applied, stale) = self.assume_and_save(db, claims, &asked).await?;
        if !stale.is_empty() {
            let again: Vec<(i64, &R::Asked)> = asked.into_iter().filter(|(i, _)| stale.contains(i)).collect();
            applied.extend(self.assume_and_save(db, claims, &again).await?.0);
            applied.sort_unstable();
        }
        Ok(applied)
    }

    async fn handle(&self, txn: &DatabaseTransaction, msg: &Incoming) -> Result<(), HandleError> {
        let asked = self.0.asked(msg)?;
        let found = self.0.load(txn, &asked, msg).await?;
        let Some(plan) = self.0.decide(&asked, found)? else { return Ok(()) };
        if self.0.save(txn, vec![(1, plan)], None).await?.is_empty() {
            // The rows it was decided on are locked: a guard failing now is a bug or a race
            // the locks missed; nothing was written, and the next delivery decides again.
            return Err(HandleError::Transient(format!(
                "the {} decided on locked rows was not applied",
                msg.kind()
            )));
        }
        Ok(())
    }

    fn after_commit(&self, msg: &Incoming) {
        self.0.after_commit(msg);
    }
}

/// Two handlers of different kinds as one: what `.or` makes.
pub struct Or<A, B>(A, B);

impl<A: Handler, B: Handler> Or<A, B> {
    /// One handler of these and `other`'s kinds.
    pub fn or<H: Handler>(self, other: H) -> Or<Self, H> {
        Or(self, other)
    }
}

impl<A: Handler, B: Handler> Handler for Or<A, B> {
    fn handles(&self, kind: &str) -> bool {
        self.0.handles(kind) || self.1.handles(kind)
    }

    /// Each handler's statement in turn, over the same batch: each plans only its own kinds.
    async fn at_once_each(
        &self,
        db: &DatabaseConnection,
        claims: &InboxClaims<'_>,
        msgs: &[Incoming],
    ) -> Result<Vec<i64>, HandleError> {
        // What one statement applied stays applied when the other fails: its events are
        // answered as applied, the other's go the transaction's way.
        let (first, second) =
            (self.0.at_once_each(db, claims, msgs).await, self.1.at_once_each(db, claims, msgs).await);
        let mut applied = match (first, second) {
            (Err(e), Err(_)) => return Err(e),
            (Ok(mut applied), Ok(more)) => {
                applied.extend(more);
                applied
            }
            (Ok(applied), Err(e)) | (Err(e), Ok(applied)) => {
                tracing::debug!(error = %e, "a statement of the batch failed; its events go to the transaction");
                applied
            }
        };
        applied.sort_unstable();
        Ok(applied)
    }

    async fn handle(&self, txn: &DatabaseTransaction, msg: &Incoming) -> Result<(), HandleError> {
        if self.0.handles(msg.kind()) { self.0.handle(txn, msg).await } else { self.1.handle(txn, msg).await }
    }

    fn after_commit(&self, msg: &Incoming) {
        if self.0.handles(msg.kind()) {
            self.0.after_commit(msg);
        } else {
            self.1.after_commit(msg);
        }
    }
}
