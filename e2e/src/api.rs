//! A small client for the public HTTP API, as a user or an admin would call it.

use anyhow::Context as _;
use contracts::{ConcertId, ReservationId, ScheduleId, UserId};
use platform::auth::{JwtKeys, Role};
use reqwest::Method;
use serde_json::{Value, json};
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

/// An answer: status, JSON body (or null) and headers.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

/// The API of one deployment. Booking calls go through the waiting room like a client's:
/// join, wait until ACTIVE, send `X-Queue-Token`.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    http: reqwest::Client,
    jwt: JwtKeys,
    tokens: Arc<Mutex<HashMap<UserId, String>>>,
}

impl Api {
    /// A client for `base`, minting tokens with `jwt`.
    pub fn new(base: &str, jwt: JwtKeys) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            // Longer than any `Prefer: wait` (at most 10 s): a request never hangs a scenario.
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default(),
            jwt,
            tokens: Arc::default(),
        }
    }

    /// A bearer token for a user.
    pub fn token(&self, user: UserId) -> String {
        self.jwt.mint(user, Role::User, Duration::from_secs(3600)).unwrap_or_default()
    }

    /// A bearer token with role admin.
    pub fn admin(&self) -> String {
        self.jwt.mint(UserId::new(), Role::Admin, Duration::from_secs(3600)).unwrap_or_default()
    }

    /// Sends a request; `body` as JSON when given.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await?;
        Ok(Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::Null), headers })
    }

    /// Sends a request as a client that rides out a deployment's faults does: an answer that
    /// says no replica or dependency answered (502, 503, 504, or 500 while a dependency
    /// restarts), that the same request is still running elsewhere (409
    /// `IDEMPOTENCY_IN_PROGRESS`), or no answer at all, is sent again as `retry` says.
    /// Only for requests that are safe to repeat: reads, and writes with an `Idempotency-Key`.
    /// Answers the last answer and how many times the request was sent again.
    pub async fn send_retrying(
        &self,
        retry: Retry,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(Answer, u32)> {
        let Retry { tries, backoff } = retry;
        let mut retries = 0;
        loop {
            match self.send(method.clone(), path, token, body.clone(), headers).await {
                Ok(a) if !retryable(&a) || retries + 1 >= tries => {
                    return Ok((a, retries));
                }
                Err(e) if retries + 1 >= tries => {
                    return Err(e.context(format!("{method} {path}, sent {tries} times")));
                }
                _ => {
                    retries += 1;
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }

    /// Sends a raw body (for malformed input).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        content_type: &str,
        body: String,
    ) -> anyhow::Result<Answer> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await?;
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        Ok(Answer { status, body: res.json().await.unwrap_or(Value::Null), headers })
    }

    /// Creates a concert with one schedule of `seats` seats at `price`, and waits until the
    /// seat service and the reservation service both know it.
    pub async fn schedule(&self, seats: i32, price: i64) -> anyhow::Result<(ConcertId, ScheduleId)> {
        self.schedule_opening(seats, price, None).await
    }

    /// As [`Self::schedule`], its sale opening at `opens` (at once with `None`).
    pub async fn schedule_opening(
        &self,
        seats: i32,
        price: i64,
        opens: Option<chrono::DateTime<chrono::Utc>>,
    ) -> anyhow::Result<(ConcertId, ScheduleId)> {
        let admin = self.admin();
        let c = self
            .send(
                Method::POST,
                "/concerts",
                Some(&admin),
                Some(json!({"name": "E2E", "host": "harness"})),
                &[],
            )
            .await?;
        anyhow::ensure!(c.status == 201, "create concert: {:?}", c);
        let concert: ConcertId = c.body["id"].as_str().context("concert id")?.parse()?;
        let starts = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
        let s = self
            .send(
                Method::POST,
                &format!("/concerts/{concert}/schedules"),
                Some(&admin),
                Some(json!({"startsAt": starts, "seatCount": seats, "price": price, "salesOpenAt": opens})),
                &[],
            )
            .await?;
        anyhow::ensure!(s.status == 201, "create schedule: {:?}", s);
        let schedule: ScheduleId = s.body["id"].as_str().context("schedule id")?.parse()?;
        self.eventually("the seats to appear", || async {
            Ok(self.seats(schedule).await?.len() == seats as usize)
        })
        .await?;
        Ok((concert, schedule))
    }

    /// Seat number → status.
    pub async fn seats(&self, schedule: ScheduleId) -> anyhow::Result<BTreeMap<i64, String>> {
        let a = self.send(Method::GET, &format!("/schedules/{schedule}/seats"), None, None, &[]).await?;
        if a.status == 404 {
            return Ok(BTreeMap::new());
        }
        let seats = a.body["seats"].as_array().context("seats")?;
        Ok(seats
            .iter()
            .filter_map(|s| Some((s["seatNo"].as_i64()?, s["status"].as_str()?.to_owned())))
            .collect())
    }

    /// Tops up a wallet; returns the balance.
    pub async fn charge(&self, user: UserId, amount: i64) -> anyhow::Result<i64> {
        let a = self
            .send(
                Method::POST,
                "/wallets/me/charges",
                Some(&self.token(user)),
                Some(json!({"amount": amount})),
                &[],
            )
            .await?;
        anyhow::ensure!(a.status == 200, "charge: {:?}", a);
        a.body["balance"].as_i64().context("balance")
    }

    pub async fn balance(&self, user: UserId) -> anyhow::Result<i64> {
        let a = self.send(Method::GET, "/wallets/me", Some(&self.token(user)), None, &[]).await?;
        a.body["balance"].as_i64().context("balance")
    }

    /// The user's queue token, once ACTIVE: joins (again, if the last one was spent) and polls.
    pub async fn admitted(&self, user: UserId) -> anyhow::Result<String> {
        let known = self.tokens.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.get(&user).cloned();
        let bearer = self.token(user);
        let mut token = match known {
            Some(t) => t,
            None => self.join(user).await?,
        };
        for _ in 0..1500 {
            let a =
                self.send(Method::GET, &format!("/queue/tokens/{token}"), Some(&bearer), None, &[]).await?;
            match a.body["status"].as_str() {
                Some("ACTIVE") => return Ok(token),
                Some("WAITING") => tokio::time::sleep(Duration::from_millis(20)).await,
                _ => token = self.join(user).await?,
            }
        }
        anyhow::bail!("{user} was never admitted")
    }

    /// `POST /queue/tokens`: the user's live token (remembered for later calls).
    pub async fn join(&self, user: UserId) -> anyhow::Result<String> {
        let a = self.send(Method::POST, "/queue/tokens", Some(&self.token(user)), None, &[]).await?;
        anyhow::ensure!(a.status == 201 || a.status == 200, "join: {:?}", a);
        let token = a.body["token"].as_str().context("token")?.to_owned();
        self.tokens.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.insert(user, token.clone());
        Ok(token)
    }

    /// Remembers a user's queue token joined without [`Self::join`], so that
    /// [`Self::leave_all`] gives it back too.
    pub fn remember_token(&self, user: UserId, token: &str) {
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(user, token.to_owned());
        }
    }

    /// Every user this client joined leaves the waiting room (`DELETE /queue/tokens/{t}`), as a
    /// client does when it is done: its token no longer holds a place or an active slot.
    pub async fn leave_all(&self) -> anyhow::Result<()> {
        let tokens: Vec<(UserId, String)> =
            self.tokens.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.drain().collect();
        for (user, token) in tokens {
            let a = self
                .send(Method::DELETE, &format!("/queue/tokens/{token}"), Some(&self.token(user)), None, &[])
                .await?;
            anyhow::ensure!(a.status == 204 || a.status == 404, "leave the waiting room: {:?}", a);
        }
        Ok(())
    }

    /// `POST /reservations` with `Prefer: wait=<wait>`, admitted first; the answer as it comes.
    pub async fn reserve_raw(
        &self,
        user: UserId,
        schedule: ScheduleId,
        seats: &[i32],
        wait: u64,
    ) -> anyhow::Result<Answer> {
        let body = json!({"scheduleId": schedule, "seatNos": seats});
        self.booking(user, "/reservations", Some(body), wait).await
    }

    /// A booking request (`POST path` with `Prefer: wait=<wait>`) with the user's ACTIVE queue
    /// token. The waiting room spends a token when it consumes the completion of a saga made
    /// with it, after that saga is CONFIRMED; a token seen ACTIVE just before may be spent by the
    /// time the request arrives (403 `QUEUE_TOKEN_EXPIRED`). Then the user joins again and sends
    /// the request once more, as a client would; the second answer is the answer.
    async fn booking(
        &self,
        user: UserId,
        path: &str,
        body: Option<Value>,
        wait: u64,
    ) -> anyhow::Result<Answer> {
        let prefer = format!("wait={wait}");
        let mut tries = 0;
        loop {
            let queue = self.admitted(user).await?;
            let headers = [("Prefer", prefer.as_str()), ("X-Queue-Token", queue.as_str())];
            let answer =
                self.send(Method::POST, path, Some(&self.token(user)), body.clone(), &headers).await?;
            tries += 1;
            if tries == 2 || answer.status != 403 || answer.body["code"] != "QUEUE_TOKEN_EXPIRED" {
                return Ok(answer);
            }
        }
    }

    /// Reserves and answers the settled reservation (HELD or FAILED): `Prefer: wait` first, then
    /// polling if the wait ended before the saga did (a slow machine is not a failure).
    pub async fn reserve(
        &self,
        user: UserId,
        schedule: ScheduleId,
        seats: &[i32],
        wait: u64,
    ) -> anyhow::Result<Answer> {
        let answer = self.reserve_raw(user, schedule, seats, wait).await?;
        self.settled(user, answer, "PENDING").await
    }

    /// `POST /reservations/{id}/payment` with `Prefer: wait=<wait>`, admitted first; the answer as it comes.
    pub async fn pay_raw(&self, user: UserId, id: ReservationId, wait: u64) -> anyhow::Result<Answer> {
        self.booking(user, &format!("/reservations/{id}/payment"), None, wait).await
    }

    /// `POST /reservations/{id}/payment` by card (`{"method": "CARD"}`), admitted first: the
    /// reservation is PAYING until the buyer confirms on the gateway.
    pub async fn pay_by_card(&self, user: UserId, id: ReservationId) -> anyhow::Result<Answer> {
        self.booking(user, &format!("/reservations/{id}/payment"), Some(json!({"method": "CARD"})), 0).await
    }

    /// The reservation's card payments, newest first (`GET /payments?reservationId=`).
    pub async fn card_payments(&self, user: UserId, id: ReservationId) -> anyhow::Result<Vec<Value>> {
        let path = format!("/payments?reservationId={id}");
        let a = self.send(Method::GET, &path, Some(&self.token(user)), None, &[]).await?;
        anyhow::ensure!(a.status == 200, "list card payments: {:?}", a);
        Ok(a.body.as_array().cloned().unwrap_or_default())
    }

    /// Waits (up to 30 s) for the reservation's newest card payment to offer its gateway page,
    /// and answers that page's URL.
    pub async fn checkout_url(&self, user: UserId, id: ReservationId) -> anyhow::Result<String> {
        for _ in 0..1500 {
            let newest = self.card_payments(user, id).await?.into_iter().next();
            if let Some(url) = newest.as_ref().and_then(|p| p["checkoutUrl"].as_str()) {
                return Ok(url.to_owned());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::bail!("reservation {id} was never given a gateway page")
    }

    /// Does what the buyer's browser does on the gateway's page: `confirm` or `decline` (a
    /// form POST; the redirect back is not followed). Answers the gateway's status code.
    pub async fn on_gateway_page(&self, checkout_url: &str, action: &str) -> anyhow::Result<u16> {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        Ok(http.post(format!("{checkout_url}/{action}")).send().await?.status().as_u16())
    }

    /// Pays and answers the settled reservation (CONFIRMED, FAILED or EXPIRED), polling after
    /// the `Prefer: wait` if needed.
    pub async fn pay(&self, user: UserId, id: ReservationId, wait: u64) -> anyhow::Result<Answer> {
        let answer = self.pay_raw(user, id, wait).await?;
        self.settled(user, answer, "PAYING").await
    }

    /// A 202 whose reservation is still `unsettled` is followed until it is not (up to 60 s).
    async fn settled(&self, user: UserId, answer: Answer, unsettled: &str) -> anyhow::Result<Answer> {
        if answer.status != 202 {
            return Ok(answer);
        }
        let id = id_of(&answer)?;
        for _ in 0..3000 {
            let r = self.reservation(user, id).await?;
            if r["status"] != unsettled {
                return Ok(Answer { status: 200, body: r, headers: answer.headers });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::bail!("reservation {id} stayed {unsettled} for a minute")
    }

    pub async fn reservation(&self, user: UserId, id: ReservationId) -> anyhow::Result<Value> {
        let a = self
            .send(Method::GET, &format!("/reservations/{id}"), Some(&self.token(user)), None, &[])
            .await?;
        anyhow::ensure!(a.status == 200, "get reservation: {:?}", a);
        Ok(a.body)
    }

    /// Waits (up to 30 s) for the reservation to reach `status`.
    pub async fn wait_status(&self, user: UserId, id: ReservationId, status: &str) -> anyhow::Result<Value> {
        let mut last = Value::Null;
        for _ in 0..1500 {
            last = self.reservation(user, id).await?;
            if last["status"] == status {
                return Ok(last);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::bail!("reservation {id} never became {status}; last: {last}")
    }

    /// Polls `check` (up to 30 s).
    pub async fn eventually<F, Fut>(&self, what: &str, mut check: F) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<bool>>,
    {
        for _ in 0..1500 {
            if check().await? {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::bail!("timed out waiting for {what}")
    }
}

/// How a request is sent again: at most `tries` times in all, `backoff` apart.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    pub tries: u32,
    pub backoff: Duration,
}

fn retryable(a: &Answer) -> bool {
    matches!(a.status, 500 | 502 | 503 | 504)
        || (a.status == 409 && a.body["code"] == "IDEMPOTENCY_IN_PROGRESS")
}

/// The reservation id of an answer.
pub fn id_of(a: &Answer) -> anyhow::Result<ReservationId> {
    Ok(a.body["id"].as_str().with_context(|| format!("no id in {:?}", a))?.parse()?)
}
