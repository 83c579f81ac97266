//! One write pipeline: the statement that applies a batch of events at once, outside a
//! transaction (one round trip where a transaction takes at least four).
//!
//! A service supplies its change as SQL over the batch's input: a table `input` with a column
//! `i` (each row's position in the batch, from 1, as [`InboxClaims`] counts) and the columns it
//! declares. It names the step of its change that answers the positions it applied (each once);
//! the pipeline numbers every parameter, writes the inbox rows of those positions and their
//! outbox events in the same statement, and answers the positions. A service writes neither a
//! `$n` nor the pipeline's own parts of the statement.
//!
//! An event applied before makes the whole statement fail on the inbox's key, and nothing of it
//! stays; the positions not answered (all of them on an error) go the way of
//! [`crate::Handler::handle`], in a transaction.

use crate::{InboxClaims, Outbox, OutboxRow};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, QueryResult, Statement, Value};
use tracing::Instrument;

/// The rows a batch statement reads as its table `input`, each naming its position (one row per
/// position, or several: one per seat of a hold), each column an array of one value per row. The arrays travel as parameters, so the statement's text (and
/// its prepared plan) is the same whatever the number of rows.
#[derive(Debug)]
pub struct Input {
    rows: usize,
    columns: Vec<(&'static str, &'static str, Value)>,
    /// As one JSON array of records, with their definition (`i bigint, id uuid, ..`).
    records: Option<(Value, String)>,
}

impl Input {
    /// Rows at `positions` (column `i`), one row per element.
    pub fn at(positions: Vec<i64>) -> Self {
        let rows = positions.len();
        Self { rows, columns: vec![("i", "bigint", positions.into())], records: None }
    }

    /// Rows as JSON records, each with its position `i`, read as `definition` says (`i bigint,
    /// id uuid, seat_nos integer[], ..`): for columns that may be NULL, or hold arrays, which
    /// arrays of arrays cannot carry.
    pub fn records(records: Vec<serde_json::Value>, definition: impl Into<String>) -> Self {
        let rows = records.len();
        Self {
            rows,
            columns: Vec::new(),
            records: Some((serde_json::Value::Array(records).into(), definition.into())),
        }
    }

    /// Adds column `name` of SQL type `sql_type` (`uuid`, `bigint`, `text`, `jsonb`, ..), a
    /// value for each row.
    pub fn column<T>(mut self, name: &'static str, sql_type: &'static str, values: Vec<T>) -> Self
    where
        Vec<T>: Into<Value>,
    {
        debug_assert_eq!(values.len(), self.rows, "column {name}: one value per row");
        self.columns.push((name, sql_type, values.into()));
        self
    }
}

/// The outbox events a batch statement writes, each keyed by the position it answers.
struct Events<'a> {
    outbox: &'a Outbox,
    rows: Vec<(i64, &'a OutboxRow)>,
    /// `(payload field, column of the announcing step)`: see [`BatchWrite::filling`].
    fill: Option<(&'a str, &'a str)>,
    /// The step whose positions are announced, when not every applied one is: see
    /// [`BatchWrite::announcing_from`].
    from: Option<&'static str>,
}

/// One statement applying a batch: the service's change over [`Input`], the inbox rows of the
/// positions it applied, their outbox events.
pub struct BatchWrite<'a> {
    input: Input,
    /// `(name, materialized, sql)`, in order.
    steps: Vec<(&'static str, bool, String)>,
    applied: &'static str,
    answer: Option<String>,
    claims: Option<&'a InboxClaims<'a>>,
    events: Option<Events<'a>>,
}

impl<'a> BatchWrite<'a> {
    /// A statement over `input`; until [`BatchWrite::applied_by`] says otherwise, every input
    /// row counts as applied.
    pub fn over(input: Input) -> Self {
        Self { input, steps: Vec::new(), applied: "input", answer: None, claims: None, events: None }
    }

    /// A step of the change, run in the order given: SQL that reads `input` and the earlier
    /// steps by their names (a `SELECT`, or an `INSERT`/`UPDATE` with `RETURNING`).
    pub fn step(mut self, name: &'static str, sql: impl Into<String>) -> Self {
        self.steps.push((name, false, sql.into()));
        self
    }

    /// A step computed once, before the steps that read it, whatever the planner would prefer:
    /// for rows that must be locked before the change looks at them.
    pub fn materialized(mut self, name: &'static str, sql: impl Into<String>) -> Self {
        self.steps.push((name, true, sql.into()));
        self
    }

    /// What the statement answers, for [`BatchWrite::rows`]: a `SELECT` over the steps. By
    /// default the positions applied.
    pub fn answering(mut self, select: impl Into<String>) -> Self {
        self.answer = Some(select.into());
        self
    }

    /// The step whose rows are the positions applied: a column `i`, each position once.
    /// `input` (the default) may name a position on several rows only if it answers all.
    pub fn applied_by(mut self, step: &'static str) -> Self {
        self.applied = step;
        self
    }

    /// Writes the inbox rows of the positions applied (none in a transaction that wrote its
    /// inbox row already).
    pub fn claims(mut self, claims: impl Into<Option<&'a InboxClaims<'a>>>) -> Self {
        self.claims = claims.into();
        self
    }

    /// Writes, of `rows` (each keyed by the position it answers), those of the positions
    /// applied, in the order given.
    pub fn events(mut self, outbox: &'a Outbox, rows: Vec<(i64, &'a OutboxRow)>) -> Self {
        self.events = Some(Events { outbox, rows, fill: None, from: None });
        self
    }

    /// Writes the events only of the positions in `step` (a column `i`, each position once; a
    /// part of those applied): for a change that applies every position but announces only
    /// those that changed something (a release of seats a reservation no longer holds changes
    /// nothing and says nothing).
    pub fn announcing_from(mut self, step: &'static str) -> Self {
        if let Some(events) = &mut self.events {
            events.from = Some(step);
        }
        self
    }

    /// Sets each event's payload `field` (a top-level key) to its announcing row's `column` (the
    /// applied step's, or [`BatchWrite::announcing_from`]'s): for an event that says what the
    /// statement computes (the balance after a debit, the seats released).
    pub fn filling(mut self, field: &'a str, column: &'a str) -> Self {
        if let Some(events) = &mut self.events {
            events.fill = Some((field, column));
        }
        self
    }

    /// The statement and its parameters; `None` without input rows.
    pub fn statement(&self) -> Option<(String, Vec<Value>)> {
        if self.input.rows == 0 {
            return None;
        }
        let mut values = Vec::with_capacity(self.input.columns.len() + 7);
        let mut sql = match &self.input.records {
            Some((records, definition)) => {
                values.push(records.clone());
                format!(
                    "WITH input AS MATERIALIZED (SELECT * FROM jsonb_to_recordset($1::jsonb) AS input({definition}))"
                )
            }
            None => {
                let (mut arrays, mut names) = (Vec::new(), Vec::new());
                for (name, sql_type, value) in &self.input.columns {
                    values.push(value.clone());
                    arrays.push(format!("${}::{sql_type}[]", values.len()));
                    names.push(*name);
                }
                format!(
                    "WITH input AS MATERIALIZED (SELECT * FROM unnest({}) AS input({}))",
                    arrays.join(", "),
                    names.join(", ")
                )
            }
        };
        for (name, materialized, step) in &self.steps {
            let how = if *materialized { "MATERIALIZED " } else { "" };
            sql.push_str(&format!(", {name} AS {how}({step})"));
        }
        if let Some(claims) = self.claims {
            sql.push_str(&format!(", {}", claims.cte(self.applied, &mut values)));
        }
        if let Some(e) = &self.events {
            let from = e.from.unwrap_or(self.applied);
            sql.push_str(&e.outbox.then_cte_each(&e.rows, &mut values, from, e.fill));
        }
        match &self.answer {
            Some(select) => sql.push_str(&format!(" {select}")),
            None => sql.push_str(&format!(" SELECT i FROM {} ORDER BY i", self.applied)),
        }
        Some((sql, values))
    }

    /// Runs the statement on `db`; answers the positions applied, in order.
    pub async fn run(self, db: &impl ConnectionTrait) -> Result<Vec<i64>, DbErr> {
        InboxClaims::positions(&self.rows(db).await?)
    }

    /// Runs the statement on `db`; answers its rows ([`BatchWrite::answering`]).
    pub async fn rows(self, db: &impl ConnectionTrait) -> Result<Vec<QueryResult>, DbErr> {
        let Some((sql, values)) = self.statement() else { return Ok(Vec::new()) };
        let span = tracing::info_span!(
            "batch write",
            db.system = "postgresql",
            applied_by = self.applied,
            rows = self.input.rows,
            otel.kind = "client",
        );
        db.query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values))
            .instrument(span)
            .await
    }
}

/// Writes `events` (each keyed by the position it answers) and the inbox rows of `claims` for
/// their positions, in one statement: answers that change nothing else (a refusal). Answers
/// every position.
pub(crate) async fn announce_each(
    db: &impl ConnectionTrait,
    outbox: &Outbox,
    events: Vec<(i64, &OutboxRow)>,
    claims: Option<&InboxClaims<'_>>,
) -> Result<Vec<i64>, DbErr> {
    BatchWrite::over(Input::at(events.iter().map(|(i, _)| *i).collect()))
        .claims(claims)
        .events(outbox, events)
        .run(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use contracts::Namespace;

    #[test]
    fn the_pipeline_numbers_the_parameters_and_claims_and_announces_what_the_change_applied() {
        let claims = InboxClaims::new("wallet", "wallet__RESERVATION", vec![uuid::Uuid::nil(); 2]);
        let outbox = Outbox::new("wallet", Namespace::new("t").unwrap_or_default());
        let write =
            BatchWrite::over(Input::at(vec![1, 2]).column("user_id", "uuid", vec![uuid::Uuid::nil(); 2]))
                .step("debited", "UPDATE wallet.wallets w SET balance = 0 FROM input RETURNING input.i")
                .applied_by("debited")
                .claims(&claims)
                .events(&outbox, Vec::new());
        let (sql, values) = write.statement().unwrap_or_default();
        assert!(sql.starts_with(
            "WITH input AS MATERIALIZED (SELECT * FROM unnest($1::bigint[], $2::uuid[]) AS input(i, user_id)), \
             debited AS (UPDATE wallet.wallets w SET balance = 0 FROM input RETURNING input.i), claimed AS"
        ));
        assert!(sql.contains("WHERE c.i IN (SELECT i FROM debited)"), "{sql}");
        assert!(sql.ends_with(" SELECT i FROM debited ORDER BY i"), "{sql}");
        assert_eq!(values.len(), 4, "two columns, the claims' consumer and events; no events, no rows");
        assert!(BatchWrite::over(Input::at(Vec::new())).statement().is_none());
    }
}
