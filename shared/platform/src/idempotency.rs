//! `Idempotency-Key` (DESIGN §6): the first response is stored in `<schema>.idempotency` (created by
//! `migrations::create_service_schema`) in the
//! same transaction as the effect, and replayed for the same user, key and request
//! (`Idempotent-Replayed: true`). The same key with another request is refused (422); a request
//! whose twin is still running waits for it up to the lock timeout, then gets 409.
//!
//! A write that runs as one statement outside a transaction keeps its answer in that statement
//! instead ([`Keyed`], [`keep_step`]): the answer is known before it runs, and is kept only for
//! the rows it wrote. A twin's kept answer makes the statement fail ([`is_twin`]); a keyed write
//! that did not go through then answers with what its twin kept ([`stored`]).

use crate::{Problem, auth::Identity};
use axum::{
    extract::FromRequestParts,
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use futures::future::BoxFuture;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Set on replayed answers.
pub const REPLAYED: &str = "idempotent-replayed";

/// What [`IdempotencyKey::parse`] takes, as the documents say it: visible ASCII (`!` to `~`).
const KEY_PATTERN: &str = "^[!-~]+$";

/// A validated `Idempotency-Key` (1-255 visible ASCII characters).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Validates a key.
    pub fn parse(raw: &str) -> Result<Self, Problem> {
        let ok = !raw.is_empty() && raw.len() <= 255 && raw.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Problem::validation("Idempotency-Key must be 1-255 visible ASCII characters"))
        }
    }
}

/// `Option<IdempotencyKey>` from the request headers; a malformed key is a 400.
#[derive(Clone, Debug, Default)]
pub struct MaybeKey(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.headers.get(HEADER) {
            None => Ok(MaybeKey(None)),
            Some(v) => {
                let raw = v.to_str().map_err(|_| Problem::validation("Idempotency-Key must be ASCII"))?;
                Ok(MaybeKey(Some(IdempotencyKey::parse(raw)?)))
            }
        }
    }
}

impl utoipa::IntoParams for MaybeKey {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        vec![crate::openapi::header_parameter(
            "Idempotency-Key",
            false,
            "Makes a retry safe: the first answer for this user and key is replayed \
             (`Idempotent-Replayed: true`); the same key with another request is refused (422)",
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::Type::String)
                .min_length(Some(1))
                .max_length(Some(255))
                .pattern(Some(KEY_PATTERN))
                .build(),
        )]
    }
}

/// An answer that can be stored and replayed byte for byte.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredResponse {
    pub status: u16,
    pub body: serde_json::Value,
    pub location: Option<String>,
}

impl StoredResponse {
    /// A JSON answer.
    pub fn json(status: StatusCode, body: &impl Serialize) -> Result<Self, Problem> {
        let body = serde_json::to_value(body)?;
        Ok(Self { status: status.as_u16(), body, location: None })
    }

    /// Adds a `Location` header.
    /// A refusal that is the request's answer, kept like any other (a retry with the same key
    /// is refused alike): for a refusal the effect records, such as a failed top-up in the
    /// history. Served as problem+json.
    pub fn problem(problem: &Problem) -> Result<Self, Problem> {
        Ok(Self { status: problem.status, body: serde_json::to_value(problem)?, location: None })
    }

    pub fn with_location(mut self, location: String) -> Self {
        self.location = Some(location);
        self
    }

    fn into_response_with(self, replayed: bool) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK);
        let mut res = (status, axum::Json(self.body)).into_response();
        let headers: &mut HeaderMap = res.headers_mut();
        if status.is_client_error() || status.is_server_error() {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(crate::problem::PROBLEM_JSON));
        }
        if let Some(loc) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(header::LOCATION, loc);
        }
        if replayed {
            headers.insert(REPLAYED, HeaderValue::from_static("true"));
        }
        res
    }
}

impl IntoResponse for StoredResponse {
    fn into_response(self) -> Response {
        self.into_response_with(false)
    }
}

/// The answer of an idempotent request: new, or replayed from the first one.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub stored: StoredResponse,
    pub replayed: bool,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        self.stored.into_response_with(self.replayed)
    }
}

/// The effect of a request: runs in the transaction that also stores its answer.
pub type Effect<'t> = BoxFuture<'t, Result<StoredResponse, Problem>>;

/// Runs `effect` in a transaction; with a key, stores its answer in the same transaction, or
/// replays the stored answer. `request` identifies what was asked (method, path, body).
/// A failed effect stores nothing, so the caller may retry with the same key.
pub async fn run<F>(
    db: &DatabaseConnection,
    schema: &str,
    who: &Identity,
    key: &MaybeKey,
    request: &[&[u8]],
    effect: F,
) -> Result<Answer, Problem>
where
    F: for<'t> FnOnce(&'t DatabaseTransaction) -> Effect<'t>,
{
    let txn = db.begin().await?;
    let Some(key) = &key.0 else {
        let stored = effect(&txn).await?;
        txn.commit().await?;
        return Ok(Answer { stored, replayed: false });
    };
    let hash = fingerprint(request);
    // A twin request holds the key's row lock until it commits; wait for it, but not forever.
    txn.execute_unprepared("SET LOCAL lock_timeout = '5s'").await?;
    let claimed = txn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "INSERT INTO {schema}.idempotency (user_id, key, request_hash, status, body) VALUES ($1, $2, $3, 0, 'null')
                 ON CONFLICT DO NOTHING"
            ),
            [who.user_id.0.into(), key.0.clone().into(), hash.clone().into()],
        ))
        .await
        .map_err(in_progress_or_internal)?;
    if claimed.rows_affected() == 0 {
        txn.rollback().await?;
        return lookup(db, schema, who, key, &hash).await?.ok_or_else(in_progress);
    }
    let answer = effect(&txn).await?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!("UPDATE {schema}.idempotency SET status = $3, body = $4, location = $5 WHERE user_id = $1 AND key = $2"),
        [
            who.user_id.0.into(),
            key.0.clone().into(),
            i16::try_from(answer.status).unwrap_or(200).into(),
            answer.body.clone().into(),
            answer.location.clone().into(),
        ],
    ))
    .await?;
    txn.commit().await?;
    Ok(Answer { stored: answer, replayed: false })
}

/// A request's `Idempotency-Key`, to keep its answer with a write outside [`run`]'s
/// transaction: one batch statement that writes the effect and, in its [`keep_step`], the answer.
#[derive(Clone, Debug)]
pub struct Keyed {
    user: uuid::Uuid,
    key: String,
    hash: Vec<u8>,
}

/// The columns of a batch statement's JSON input rows that [`Kept::fields`] fills (NULL for a
/// row without a key).
const KEPT_COLUMNS: &str =
    "key_user uuid, key text, key_hash bytea, key_status smallint, key_body jsonb, key_location text";

/// `columns`, the definition of a batch statement's JSON input rows, with the columns that
/// [`Kept::fields`] fills when some row is `keyed`.
pub fn with_kept(columns: &str, keyed: bool) -> String {
    if keyed { format!("{columns}, {KEPT_COLUMNS}") } else { columns.to_owned() }
}

impl Keyed {
    /// The key of `who` asking `request`; `None` without one.
    pub fn of(who: &Identity, key: &MaybeKey, request: &[&[u8]]) -> Option<Self> {
        let key = key.0.as_ref()?;
        Some(Self { user: who.user_id.0, key: key.0.clone(), hash: fingerprint(request) })
    }

    /// `answer`, to keep under this key if the write goes through.
    pub fn keeping(&self, answer: StoredResponse) -> Kept {
        Kept { keyed: self.clone(), answer }
    }
}

/// An answer to keep under a request's key, with its write ([`keep_step`]).
#[derive(Clone, Debug)]
pub struct Kept {
    keyed: Keyed,
    answer: StoredResponse,
}

impl Kept {
    /// Adds to `row` (a JSON object, an input row of the statement) the fields that keep this
    /// answer ([`with_kept`]).
    pub fn fields(&self, row: &mut serde_json::Value) {
        let Some(row) = row.as_object_mut() else { return };
        let Kept { keyed, answer } = self;
        let hash: String = keyed.hash.iter().map(|b| format!("{b:02x}")).collect();
        row.insert("key_user".into(), keyed.user.to_string().into());
        row.insert("key".into(), keyed.key.clone().into());
        // bytea's text form, as the statement reads its JSON rows.
        row.insert("key_hash".into(), format!("\\x{hash}").into());
        row.insert("key_status".into(), answer.status.into());
        row.insert("key_body".into(), answer.body.clone());
        row.insert("key_location".into(), answer.location.clone().into());
    }
}

/// A batch statement's step keeping the answers of the keyed input rows (those [`Kept::fields`]
/// filled) in `<schema>.idempotency`, of the rows of `written`: a `FROM` list that names the
/// input rows the statement wrote `c` (`input c JOIN done ON done.i = c.i`). A write refused
/// keeps nothing, as in [`run`]. There is no `ON CONFLICT`: a twin's answer, kept before (or
/// being kept) under the same key, makes the whole statement fail, and nothing of it stays.
pub fn keep_step(schema: &str, written: &str) -> String {
    format!(
        "INSERT INTO {schema}.idempotency (user_id, key, request_hash, status, body, location)
         SELECT c.key_user, c.key, c.key_hash, c.key_status, c.key_body, c.key_location
         FROM {written} WHERE c.key IS NOT NULL"
    )
}

/// Whether `e` is a statement's failure on an answer already kept under one of its keys
/// ([`keep_step`]): a twin request went through first.
pub fn is_twin(e: &DbErr) -> bool {
    crate::pools::database_error(e).is_some_and(|db| db.constraint() == Some("idempotency_pkey"))
}

/// The answer stored for this user, key and request, if the first request has finished: a
/// handler may replay it before checks that only a new request must pass (a spent queue token).
/// The same key with another request is 422, as in [`run`].
pub async fn stored(
    db: &DatabaseConnection,
    schema: &str,
    who: &Identity,
    key: &MaybeKey,
    request: &[&[u8]],
) -> Result<Option<Answer>, Problem> {
    match &key.0 {
        None => Ok(None),
        Some(key) => lookup(db, schema, who, key, &fingerprint(request)).await,
    }
}

fn fingerprint(request: &[&[u8]]) -> Vec<u8> {
    request.iter().fold(Sha256::new(), |h, part| h.chain_update(part).chain_update([0u8])).finalize().to_vec()
}

async fn lookup(
    db: &DatabaseConnection,
    schema: &str,
    who: &Identity,
    key: &IdempotencyKey,
    hash: &[u8],
) -> Result<Option<Answer>, Problem> {
    let Some(row) = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!("SELECT request_hash, status, body, location FROM {schema}.idempotency WHERE user_id = $1 AND key = $2"),
            [who.user_id.0.into(), key.0.clone().into()],
        ))
        .await?
    else {
        return Ok(None);
    };
    #[derive(sea_orm::FromQueryResult)]
    struct Kept {
        request_hash: Vec<u8>,
        status: i16,
        body: serde_json::Value,
        location: Option<String>,
    }
    let kept = <Kept as sea_orm::FromQueryResult>::from_query_result(&row, "")?;
    if kept.request_hash != hash {
        return Err(Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "IDEMPOTENCY_KEY_REUSED",
            "this Idempotency-Key was used for a different request; use a new key",
        ));
    }
    let answer = StoredResponse {
        status: u16::try_from(kept.status).unwrap_or(200),
        body: kept.body,
        location: kept.location,
    };
    Ok(Some(Answer { stored: answer, replayed: true }))
}

fn in_progress() -> Problem {
    Problem::new(
        StatusCode::CONFLICT,
        "IDEMPOTENCY_IN_PROGRESS",
        "a request with this Idempotency-Key is still running; retry shortly",
    )
}

/// 409 when the wait for a twin's row lock ran out (SQLSTATE 55P03, `lock_not_available`);
/// otherwise what a database error is answered ([`Problem::from`]).
fn in_progress_or_internal(e: DbErr) -> Problem {
    let lock_not_available =
        crate::pools::database_error(&e).and_then(|d| d.code()).is_some_and(|c| c == "55P03");
    if lock_not_available { in_progress() } else { Problem::from(e) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_answer_fills_every_column_its_step_reads_and_no_key_keeps_nothing() {
        let who = Identity { user_id: contracts::UserId::new(), role: crate::auth::Role::User };
        let key = MaybeKey(Some(IdempotencyKey::parse("k-1").unwrap()));
        let answer =
            StoredResponse { status: 202, body: serde_json::json!({"id": 1}), location: Some("/r/1".into()) };
        let kept = Keyed::of(&who, &key, &[b"POST", b"/r"]).unwrap().keeping(answer);
        let mut row = serde_json::json!({"i": 1});
        kept.fields(&mut row);
        let columns = with_kept("i bigint", true);
        let mut names: Vec<&str> = columns.split(", ").filter_map(|c| c.split(' ').next()).collect();
        let mut filled: Vec<&str> = row.as_object().unwrap().keys().map(String::as_str).collect();
        names.sort_unstable();
        filled.sort_unstable();
        assert_eq!(filled, names);
        assert!(row["key_hash"].as_str().unwrap().starts_with("\\x"), "bytea's text form: {row}");
        assert_eq!(with_kept("i bigint", false), "i bigint");
        assert!(Keyed::of(&who, &MaybeKey(None), &[b"POST"]).is_none());
    }

    #[test]
    fn the_documented_key_pattern_takes_exactly_the_keys_that_parse() {
        let pattern = regex::Regex::new(KEY_PATTERN).unwrap();
        let mut keys: Vec<String> =
            (0u32..0x200).filter_map(char::from_u32).map(|c| format!("k{c}")).collect();
        keys.extend(["".into(), "a b".into(), "x".repeat(255)]);
        for key in keys {
            let documented = pattern.is_match(&key) && (1..=255).contains(&key.chars().count());
            assert_eq!(documented, IdempotencyKey::parse(&key).is_ok(), "{key:?}");
        }
    }
}
