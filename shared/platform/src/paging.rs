//! Cursor pagination (`limit` 1-100, `startingAfter`, `{data, hasMore}`) and `Prefer: wait=N`.

use crate::Problem;
use axum::{
    extract::FromRequestParts,
    http::{header::HeaderName, request::Parts},
};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Query parameters of a list route.
#[derive(Clone, Copy, Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1-100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The id of the last item of the previous page.
    pub starting_after: Option<uuid::Uuid>,
}

/// The keyset bound for a newest-first page (`WHERE .. id < $n ORDER BY id DESC`): the cursor,
/// or above every id on the first page. Never NULL, so `id < $n` stays an index condition in a
/// generic plan (the pools plan statements once, generically), where `($n IS NULL OR id < $n)`
/// was only a filter: every page scanned past all the ones before it.
pub fn before(cursor: Option<uuid::Uuid>) -> uuid::Uuid {
    cursor.unwrap_or(uuid::Uuid::max())
}

/// The keyset bound for an oldest-first page (`WHERE .. id > $n ORDER BY id`), as [`before`]:
/// the cursor, or below every id.
pub fn after(cursor: Option<uuid::Uuid>) -> uuid::Uuid {
    cursor.unwrap_or(uuid::Uuid::nil())
}

impl PageQuery {
    /// The page size, validated (default 20).
    pub fn limit(&self) -> Result<u64, Problem> {
        match self.limit {
            None => Ok(20),
            Some(n @ 1..=100) => Ok(u64::from(n)),
            Some(_) => Err(Problem::validation("limit must be between 1 and 100")),
        }
    }
}

/// `{data, hasMore}`.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Paged<T> {
    /// One page of items, in order.
    pub data: Vec<T>,
    /// Whether a page follows (ask with `startingAfter` = the last item's id).
    pub has_more: bool,
}

impl<T> Paged<T> {
    /// From `limit + 1` fetched rows: the extra row only tells that there is more.
    pub fn from_overfetch(mut rows: Vec<T>, limit: u64) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        Self { data: rows, has_more }
    }
}

/// The longest `Prefer: wait` honoured.
pub const MAX_WAIT: Duration = Duration::from_secs(10);

/// `Prefer: wait=N` (RFC 7240), capped at 10 s; `None` when absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PreferWait(pub Option<Duration>);

impl<S: Send + Sync> FromRequestParts<S> for PreferWait {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let prefer = HeaderName::from_static("prefer");
        for value in parts.headers.get_all(prefer) {
            let Ok(text) = value.to_str() else { continue };
            for pref in text.split(',') {
                if let Some(n) = pref.trim().strip_prefix("wait=") {
                    let secs: u64 = n
                        .trim()
                        .parse()
                        .map_err(|_| Problem::validation("Prefer: wait must be whole seconds"))?;
                    return Ok(PreferWait(Some(Duration::from_secs(secs).min(MAX_WAIT))));
                }
            }
        }
        Ok(PreferWait(None))
    }
}

impl utoipa::IntoParams for PreferWait {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        vec![crate::openapi::header_parameter(
            "Prefer",
            false,
            "`wait=N`: answer once the outcome is known (200) or after N seconds (at most 10), \
             whichever comes first, instead of at once (202)",
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::Type::String)
                .examples([serde_json::json!("wait=5")])
                .build(),
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_page_is_bounded_beyond_every_id() {
        let id = uuid::Uuid::now_v7();
        assert_eq!(before(Some(id)), id);
        assert_eq!(after(Some(id)), id);
        assert!(before(None) > id && after(None) < id);
    }

    #[test]
    fn overfetch_sets_has_more() {
        let p = Paged::from_overfetch(vec![1, 2, 3], 2);
        assert_eq!((p.data, p.has_more), (vec![1, 2], true));
        let p = Paged::from_overfetch(vec![1, 2], 2);
        assert!(!p.has_more);
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(PageQuery::default().limit().unwrap(), 20);
        assert!(PageQuery { limit: Some(0), starting_after: None }.limit().is_err());
        assert!(PageQuery { limit: Some(101), starting_after: None }.limit().is_err());
    }
}
