//! The transactional outbox: an event is a row written in the same transaction as the state
//! change it announces. Nothing is published unless that transaction commits; the relay
//! publishes committed rows afterwards (DESIGN §1, §8).
//!
//! A row carries the trace context of what caused it: the message it answers when a consumer
//! applies a batch ([`with_causes`]), otherwise the current span (the HTTP request, or the one
//! message being consumed). So a saga is one trace however its consumers batch.

use contracts::{Envelope, EnvelopeMeta, Event, HEADER_TYPE, Namespace};
use platform::signal::Signal;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, Statement, Value};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
};

tokio::task_local! {
    /// The trace context of each message of the batch being applied, by event id.
    static CAUSES: HashMap<uuid::Uuid, Vec<(String, String)>>;
}

/// Runs `apply` (the handling of a batch of messages) so that an event caused by one of them
/// carries the trace context of its cause (`causes`, by event id) rather than the batch's.
pub(crate) async fn with_causes<F: std::future::Future>(
    causes: HashMap<uuid::Uuid, Vec<(String, String)>>,
    apply: F,
) -> F::Output {
    CAUSES.scope(causes, apply).await
}

/// The trace context an event caused by `cause` carries: its cause's, when that is a message
/// of the batch being applied; otherwise the current span's.
fn trace_of(cause: Option<contracts::EventId>) -> Vec<(String, String)> {
    cause
        .and_then(|cause| CAUSES.try_with(|causes| causes.get(&cause.0).cloned()).ok().flatten())
        .unwrap_or_else(platform::telemetry::current_trace_headers)
}

/// Writes events into one service's `<schema>.outbox`.
///
/// Writers wake the relay of the same outbox in this process once their transaction has
/// committed ([`Outbox::commit`], [`Outbox::committed`]): an in-process signal rather than a
/// `NOTIFY` in the writing transaction, because Postgres serializes the commits of every
/// notifying transaction in a database (a global lock held through the WAL flush), which cut
/// the seat-hold transaction to 40% of its rate. Rows no signal announces (written by another
/// process, or left by a relay that died) are found by the relay's poll.
#[derive(Clone, Debug)]
pub struct Outbox {
    // Shared, not copied: an outbox is cloned into every request's state.
    schema: Arc<str>,
    ns: Arc<Namespace>,
    wake: Arc<Signal>,
}

/// One wake-up signal per `(namespace, schema)` in this process, shared by its writers and its relay.
/// The relay reads its count before each claim: while it has not moved, every signalled row was
/// visible to that claim.
pub(crate) fn wake_of(ns: &Namespace, schema: &str) -> Arc<Signal> {
    static WAKES: OnceLock<Mutex<HashMap<String, Arc<Signal>>>> = OnceLock::new();
    let key = format!("{}/{schema}", ns.as_str());
    let mut wakes =
        WAKES.get_or_init(Mutex::default).lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    wakes.entry(key).or_default().clone()
}

impl Outbox {
    /// The outbox of `schema`, publishing under namespace `ns`.
    pub fn new(schema: &str, ns: Namespace) -> Self {
        let wake = wake_of(&ns, schema);
        Self { schema: schema.into(), ns: Arc::new(ns), wake }
    }

    /// The schema whose `outbox` table this writes.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Tells this process's relay that rows were committed. Call it after every commit of a
    /// transaction that may have pushed events (an extra call costs one empty relay check).
    pub fn committed(&self) {
        self.wake.raise();
    }

    /// Commits `txn` and wakes the relay.
    pub async fn commit(&self, txn: DatabaseTransaction) -> Result<(), DbErr> {
        txn.commit().await?;
        self.committed();
        Ok(())
    }

    /// Adds `event` to the outbox through `conn`, which should be the transaction that makes the
    /// change the event announces. The current span's trace context travels with the row.
    pub async fn push<E: Event>(
        &self,
        conn: &impl ConnectionTrait,
        event: &Envelope<E>,
    ) -> Result<(), DbErr> {
        self.push_all(conn, std::slice::from_ref(event)).await
    }

    /// Adds several events of one type in one statement.
    pub async fn push_all<E: Event>(
        &self,
        conn: &impl ConnectionTrait,
        events: &[Envelope<E>],
    ) -> Result<(), DbErr> {
        let rows = events.iter().map(|e| self.row(e)).collect::<Result<Vec<_>, _>>()?;
        self.push_rows(conn, &rows).await
    }

    /// Adds rows made by [`Outbox::row`] in one statement.
    pub async fn push_rows(&self, conn: &impl ConnectionTrait, rows: &[OutboxRow]) -> Result<(), DbErr> {
        let Some((sql, values)) = self.insert(rows, 1, None) else { return Ok(()) };
        conn.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values)).await?;
        Ok(())
    }

    /// `payload` as an outbox row of a new envelope from `source` about `correlation`, caused by
    /// `cause` when there is one (then it carries the cause's correlation and trace).
    pub fn row_of<E: Event>(
        &self,
        source: &str,
        correlation: impl Into<uuid::Uuid>,
        payload: E,
        cause: Option<&EnvelopeMeta>,
    ) -> Result<OutboxRow, DbErr> {
        let envelope = Envelope::new(source, correlation, payload);
        self.row(&match cause {
            Some(cause) => envelope.caused_by(cause),
            None => envelope,
        })
    }

    /// `event` as an outbox row, with the trace context of its cause (see the module).
    pub fn row<E: Event>(&self, event: &Envelope<E>) -> Result<OutboxRow, DbErr> {
        let mut headers = trace_of(event.causation_id);
        headers.push((HEADER_TYPE.to_owned(), E::TYPE.to_owned()));
        Ok(OutboxRow {
            kind: E::TYPE,
            id: event.id.0,
            subject: self.ns.event_subject(&event.payload),
            headers: serde_json::to_value(&headers).map_err(|e| DbErr::Custom(e.to_string()))?,
            body: serde_json::to_vec(event).map_err(|e| DbErr::Custom(e.to_string()))?,
        })
    }

    /// The `INSERT INTO <schema>.outbox ..` of `rows` and its values, numbering its parameters
    /// from `$first`; `None` without rows. With `when`, the rows are written only if a part of
    /// the statement has a row ([`When`]). To run as a CTE (`WITH pushed AS (..)`) of the
    /// statement that makes the change the events announce: both in one round trip.
    pub fn insert(
        &self,
        rows: &[OutboxRow],
        first: usize,
        when: Option<When<'_>>,
    ) -> Option<(String, Vec<Value>)> {
        if rows.is_empty() {
            return None;
        }
        let mut sql = format!("INSERT INTO {}.outbox (id, subject, headers, body) ", self.schema);
        if when.is_some() {
            sql.push_str("SELECT v.id, v.subject, v.headers, v.body FROM (VALUES ");
        } else {
            sql.push_str("VALUES ");
        }
        let mut values: Vec<Value> = Vec::with_capacity(rows.len() * 4);
        for (i, row) in rows.iter().enumerate() {
            let n = first + i * 4;
            if i > 0 {
                sql.push(',');
            }
            sql.push_str(&format!("(${}::uuid, ${}::text, ${}::jsonb, ${}::bytea)", n, n + 1, n + 2, n + 3));
            values.push(row.id.into());
            values.push(row.subject.clone().into());
            values.push(row.headers.clone().into());
            values.push(row.body.clone().into());
        }
        if let Some(when) = when {
            sql.push_str(&format!(
                ") AS v(id, subject, headers, body), (SELECT * FROM {} LIMIT 1) AS w",
                when.from
            ));
        }
        Some((sql, values))
    }

    /// `pushed AS (<insert of rows>)`, a CTE to put into the statement that makes the change the
    /// events announce, with the rows' values appended to that statement's `values`; `None`
    /// without rows. A data-modifying CTE runs whatever the rest of the statement does: without
    /// `when`, a caller that finds the change refused must fail its transaction, and the events
    /// go with it.
    pub fn cte(&self, rows: &[OutboxRow], values: &mut Vec<Value>, when: Option<When<'_>>) -> Option<String> {
        let (sql, mut more) = self.insert(rows, values.len() + 1, when)?;
        values.append(&mut more);
        Some(format!("pushed AS ({sql})"))
    }

    /// [`Outbox::cte`] as `, pushed AS (..)`, to follow the statement's other CTEs; empty
    /// without rows.
    pub fn then_cte(&self, rows: &[OutboxRow], values: &mut Vec<Value>, when: Option<When<'_>>) -> String {
        self.cte(rows, values, when).map(|cte| format!(", {cte}")).unwrap_or_default()
    }

    /// `, pushed AS (..)` for a statement that applies several events at once
    /// ([`crate::BatchWrite`]): of `rows`, each keyed by the position of the event it
    /// answers (from 1, as [`crate::InboxClaims`] counts), writes those whose key is an `i` of
    /// `from` (an expression of the statement with each `i` once), in the order given; empty
    /// without rows. With `fill` (`(field, column)`), each row's payload `field` (a top-level
    /// key) is set to its `from` row's `column` (as JSON): for an event that says what the
    /// statement computes (a balance after a debit). The rows travel as arrays, so the
    /// statement's text (and its prepared plan) is the same whatever their number.
    pub(crate) fn then_cte_each(
        &self,
        rows: &[(i64, &OutboxRow)],
        values: &mut Vec<Value>,
        from: &str,
        fill: Option<(&str, &str)>,
    ) -> String {
        if rows.is_empty() {
            return String::new();
        }
        let n = values.len() + 1;
        values.push(rows.iter().map(|(i, _)| *i).collect::<Vec<_>>().into());
        values.push(rows.iter().map(|(_, r)| r.id).collect::<Vec<_>>().into());
        values.push(rows.iter().map(|(_, r)| r.subject.clone()).collect::<Vec<_>>().into());
        values.push(rows.iter().map(|(_, r)| r.headers.clone()).collect::<Vec<_>>().into());
        values.push(rows.iter().map(|(_, r)| r.body.clone()).collect::<Vec<_>>().into());
        format!(
            ", pushed AS (INSERT INTO {}.outbox (id, subject, headers, body) \
             SELECT v.id, v.subject, v.headers, {} \
             FROM unnest(${n}::bigint[], ${}::uuid[], ${}::text[], ${}::jsonb[], ${}::bytea[]) \
             WITH ORDINALITY AS v(i, id, subject, headers, body, o) \
             JOIN {from} AS w ON w.i = v.i ORDER BY v.o)",
            self.schema,
            filled_body(fill),
            n + 1,
            n + 2,
            n + 3,
            n + 4
        )
    }
}

/// The body of outbox row `v`, with its payload's `field` set to `w.<column>` when there is
/// a fill.
fn filled_body(fill: Option<(&str, &str)>) -> String {
    match fill {
        None => "v.body".to_owned(),
        Some((field, column)) => format!(
            "convert_to(jsonb_set(convert_from(v.body, 'UTF8')::jsonb, '{{payload,{field}}}', \
             to_jsonb(w.{column}))::text, 'UTF8')"
        ),
    }
}

/// Outbox rows written only if `from` (a part of the statement, e.g. a CTE's `RETURNING`) has a
/// row.
#[derive(Clone, Copy, Debug)]
pub struct When<'a> {
    from: &'a str,
}

impl<'a> When<'a> {
    /// If `from` has a row.
    pub fn row_in(from: &'a str) -> Self {
        Self { from }
    }
}

/// One event ready for the outbox ([`Outbox::row`]).
#[derive(Clone, Debug)]
pub struct OutboxRow {
    /// The event type, e.g. `SeatReserved`.
    pub kind: &'static str,
    id: uuid::Uuid,
    subject: String,
    headers: serde_json::Value,
    body: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::{ReservationId, ReservationRequested, ScheduleId, UserId};

    fn requested() -> Envelope<ReservationRequested> {
        let id = ReservationId::new();
        let event = ReservationRequested {
            reservation_id: id,
            user_id: UserId::new(),
            schedule_id: ScheduleId::new(),
            seat_nos: Vec::new(),
            queue_token: String::new(),
        };
        Envelope::new("test", id, event)
    }

    fn traceparent(row: &OutboxRow) -> Option<String> {
        let headers: Vec<(String, String)> = serde_json::from_value(row.headers.clone()).ok()?;
        headers.into_iter().find(|(k, _)| k == "traceparent").map(|(_, v)| v)
    }

    #[tokio::test]
    async fn an_event_of_a_batch_carries_its_causes_trace_and_any_other_the_current_one() {
        let _t = platform::telemetry::init("test", None, platform::telemetry::LogFormat::Text);
        let outbox = Outbox::new("seat", Namespace::new("t").unwrap_or_default());
        let (cause, other) = (requested(), requested());
        let theirs = vec![(
            "traceparent".to_owned(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
        )];
        let batch = tracing::info_span!("consume batch");
        let _entered = batch.enter();
        let (answer, unrelated) = with_causes(HashMap::from([(cause.id.0, theirs.clone())]), async {
            let answer = outbox.row(&requested().caused_by(&cause.meta()))?;
            let unrelated = outbox.row(&requested().caused_by(&other.meta()))?;
            Ok::<_, DbErr>((answer, unrelated))
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(traceparent(&answer).as_deref(), Some(theirs[0].1.as_str()));
        let current = platform::telemetry::current_trace_headers();
        assert_eq!(
            traceparent(&unrelated),
            current.into_iter().find(|(k, _)| k == "traceparent").map(|(_, v)| v)
        );
        assert_ne!(traceparent(&unrelated).as_deref(), Some(theirs[0].1.as_str()));
    }
}
