//! `GET /rankings/concerts`, `GET /rankings/sold-out`.

use crate::{
    AppState, NAME,
    domain::{self, Window},
    error::Error,
};
use axum::{Json, Router, extract::State, routing::get};
use contracts::{ConcertId, ScheduleId};
use platform::{
    Problem,
    openapi::{BadRequest, Shared},
    problem::{ApiQuery, PROBLEM_JSON},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    paths(concert_ranking, sold_out_ranking),
    tags((name = NAME, description = "Leaderboards: concerts by confirmed seats, schedules by how fast they sold out.")),
    modifiers(&Shared)
)]
pub struct Api;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/rankings/concerts", get(concert_ranking))
        .route("/rankings/sold-out", get(sold_out_ranking))
}

/// `?window=all|<n>m|<n>h&limit=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RankingQuery {
    /// `all` (default), or a sliding window of `<n>m` / `<n>h` up to 24h.
    #[param(
        pattern = r"^(all|0*([1-9][0-9]{0,2}|1[0-3][0-9]{2}|14[0-3][0-9]|1440)m|0*([1-9]|1[0-9]|2[0-4])h)$"
    )]
    window: Option<String>,
    /// 1-100, default 10.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

/// One concert's place.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ConcertRank {
    concert_id: ConcertId,
    /// From the catalog's events; empty until the concert's announcement arrives.
    name: String,
    confirmed_seats: i64,
}

/// Concerts by confirmed seats.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ConcertRanking {
    window: String,
    data: Vec<ConcertRank>,
}

/// One sold-out schedule's place.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SoldOutRank {
    schedule_id: ScheduleId,
    concert_id: Option<ConcertId>,
    name: String,
    seconds_to_sell_out: i64,
}

/// Schedules by how fast they sold out.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SoldOutRanking {
    data: Vec<SoldOutRank>,
}

async fn names(conn: &mut platform::pools::Redis, key: &str, ids: &[String]) -> Result<Vec<String>, Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<Option<String>> =
        redis::cmd("HMGET").arg(key).arg(ids).query_async(conn).await.map_err(Error::Unavailable)?;
    Ok(names.into_iter().map(Option::unwrap_or_default).collect())
}

/// Concerts ranked by confirmed seats, over all time or a sliding window.
#[utoipa::path(
    get,
    path = "/rankings/concerts",
    tag = NAME,
    params(RankingQuery),
    responses(
        (status = 200, description = "The ranking, best first.", body = ConcertRanking),
        (status = 400, response = BadRequest),
        (status = 503, description = "Redis is unavailable.", body = Problem, content_type = PROBLEM_JSON),
    )
)]
async fn concert_ranking(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<RankingQuery>,
) -> Result<Json<ConcertRanking>, Problem> {
    let window = Window::parse(q.window.as_deref().unwrap_or("all")).map_err(Error::Invalid)?;
    let limit = domain::limit(q.limit).map_err(Error::Invalid)?;
    let mut conn = s.redis.clone();
    let top: Vec<(String, f64)> = match window {
        Window::All => redis::cmd("ZREVRANGE")
            .arg(&s.keys.confirmed)
            .arg(0)
            .arg(limit - 1)
            .arg("WITHSCORES")
            .query_async(&mut conn)
            .await
            .map_err(Error::Unavailable)?,
        Window::Minutes(_) => {
            let now_minute = chrono::Utc::now().timestamp().div_euclid(60);
            let buckets: Vec<String> =
                window.minutes(now_minute).into_iter().map(|m| s.keys.minute(m)).collect();
            let mut all: Vec<(String, f64)> = redis::cmd("ZUNION")
                .arg(buckets.len())
                .arg(&buckets)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await
                .map_err(Error::Unavailable)?;
            all.reverse();
            all.truncate(limit);
            all
        }
    };
    let ids: Vec<String> = top.iter().map(|(id, _)| id.clone()).collect();
    let names = names(&mut conn, &s.keys.names, &ids).await?;
    let data = top
        .into_iter()
        .zip(names)
        .filter_map(|((id, seats), name)| {
            Some(ConcertRank { concert_id: id.parse().ok()?, name, confirmed_seats: seats as i64 })
        })
        .collect();
    Ok(Json(ConcertRanking { window: window.to_string(), data }))
}

/// `?limit=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct LimitQuery {
    /// 1-100, default 10.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

/// Sold-out schedules, fastest first.
#[utoipa::path(
    get,
    path = "/rankings/sold-out",
    tag = NAME,
    params(LimitQuery),
    responses(
        (status = 200, description = "The ranking, fastest first.", body = SoldOutRanking),
        (status = 400, response = BadRequest),
        (status = 503, description = "Redis is unavailable.", body = Problem, content_type = PROBLEM_JSON),
    )
)]
async fn sold_out_ranking(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> Result<Json<SoldOutRanking>, Problem> {
    let limit = domain::limit(q.limit).map_err(Error::Invalid)?;
    let mut conn = s.redis.clone();
    let top: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(&s.keys.sold_out)
        .arg(0)
        .arg(limit - 1)
        .arg("WITHSCORES")
        .query_async(&mut conn)
        .await
        .map_err(Error::Unavailable)?;
    let schedules: Vec<String> = top.iter().map(|(id, _)| id.clone()).collect();
    let concerts = names(&mut conn, &s.keys.schedule_concert, &schedules).await?;
    let titles = names(&mut conn, &s.keys.names, &concerts).await?;
    let data = top
        .into_iter()
        .zip(concerts.into_iter().zip(titles))
        .filter_map(|((schedule, seconds), (concert, name))| {
            Some(SoldOutRank {
                schedule_id: schedule.parse().ok()?,
                concert_id: concert.parse().ok(),
                name,
                seconds_to_sell_out: seconds as i64,
            })
        })
        .collect();
    Ok(Json(SoldOutRanking { data }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_pattern_takes_exactly_the_windows_that_parse() {
        let params = serde_json::to_value(RankingQuery::into_params(|| None)).unwrap();
        let window = params.as_array().unwrap().iter().find(|p| p["name"] == "window").unwrap();
        let pattern = regex::Regex::new(window["schema"]["pattern"].as_str().unwrap()).unwrap();
        let mut cases: Vec<String> =
            ["all", "", "m", "h", "Ì", "5Ì", "\u{1f600}m", "+5m", "-5m", " 5m", "5m ", "5M", "1.5h"]
                .map(String::from)
                .to_vec();
        for n in 0..=1500 {
            cases.extend([format!("{n}m"), format!("{n}h"), format!("0{n}m"), format!("00{n}h")]);
        }
        for raw in cases {
            assert_eq!(pattern.is_match(&raw), domain::Window::parse(&raw).is_ok(), "{raw:?}");
        }
    }
}
