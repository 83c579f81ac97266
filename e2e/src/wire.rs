//! A lean HTTP/1.1 client for load runs: keep-alive connections, each sending its requests one
//! after another (as `wrk` does), with no URL to parse and no redirect or retry layer. On two
//! shared cores the load client competes with the server it measures: through `reqwest` each
//! position read of the waiting-room scenario cost the client about twice the server's CPU, and the client,
//! not the server, set the rate. [`get_all`] sends a list of GETs over a fixed number of
//! connections (the waiting-room scenario's position reads); a [`Pool`] sends any request over an
//! idle connection (joins, reservations and payments); [`open_stream`] holds one event stream.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, client::conn::http1::SendRequest, header};
use hyper_util::rt::TokioIo;
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

/// One GET: its path and its `Authorization` header's value.
#[derive(Clone, Debug)]
pub struct Get {
    pub path: String,
    pub authorization: String,
}

/// How one GET went.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Answered with `status` (body read to its end) after `took`.
    Answered { status: u16, took: Duration },
    /// The connection failed; the request is not retried.
    Failed(String),
}

/// Sends every one of `gets` over `connections` keep-alive connections to `addr` (`host:port`),
/// each connection taking the next request as soon as its last one is answered, and hands each
/// outcome to `done`. A connection that fails is opened again for the next request.
pub async fn get_all(
    addr: &str,
    gets: Vec<Get>,
    connections: usize,
    done: impl Fn(Outcome) + Send + Sync + 'static,
) -> anyhow::Result<()> {
    let gets = Arc::new(gets);
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(done);
    let workers: Vec<_> = (0..connections.max(1))
        .map(|_| {
            let (gets, next, done, addr) = (gets.clone(), next.clone(), done.clone(), addr.to_owned());
            tokio::spawn(async move {
                let mut conn = None;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(get) = gets.get(i) else { return };
                    let started = Instant::now();
                    let outcome = match send(
                        &mut conn,
                        &addr,
                        Method::GET,
                        &get.path,
                        &[("authorization", &get.authorization)],
                        None,
                    )
                    .await
                    {
                        Ok((status, _)) => Outcome::Answered { status, took: started.elapsed() },
                        Err(e) => Outcome::Failed(e.to_string()),
                    };
                    done(outcome);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await?;
    }
    Ok(())
}

/// Keep-alive connections to one address, each sending one request after another: a request
/// takes an idle connection (or opens one) and gives it back once answered.
pub struct Pool {
    addr: String,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
}

impl Pool {
    /// Connections to `addr` (`host:port`), opened as requests need them.
    pub fn new(addr: &str) -> Self {
        Self { addr: addr.to_owned(), idle: Mutex::default() }
    }

    /// Sends one request and reads its answer to the end: `(status, body)`. A failed
    /// connection is dropped, and the request is not retried.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> anyhow::Result<(u16, Bytes)> {
        let mut conn = self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let answer = send(&mut conn, &self.addr, method, path, headers, body).await;
        if let Some(conn) = conn {
            self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(conn);
        }
        answer
    }
}

/// Sends one request over `conn` (opening it first if it is `None` or closed) and reads the
/// answer to its end; on failure `conn` is left `None`.
async fn send(
    conn: &mut Option<SendRequest<Full<Bytes>>>,
    addr: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Bytes>,
) -> anyhow::Result<(u16, Bytes)> {
    let answer = async {
        let sender = match conn.take() {
            Some(s) if !s.is_closed() => conn.insert(s),
            _ => conn.insert(connect(addr).await?),
        };
        let mut request = Request::builder().method(method).uri(path).header(header::HOST, addr);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(body.unwrap_or_default()))?;
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, body))
    }
    .await;
    if answer.is_err() {
        *conn = None;
    }
    answer
}

/// Opens a connection of its own to `addr` for one long-lived GET (a Server-Sent Events stream)
/// and answers its status and body once the headers are in; the body is read as it comes.
pub async fn open_stream(addr: &str, get: &Get) -> anyhow::Result<(u16, hyper::body::Incoming)> {
    let mut sender = connect(addr).await?;
    let request = Request::builder()
        .method(Method::GET)
        .uri(&get.path)
        .header(header::HOST, addr)
        .header(header::AUTHORIZATION, &get.authorization)
        .header(header::ACCEPT, "text/event-stream")
        .body(Full::new(Bytes::new()))?;
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    Ok((response.status().as_u16(), response.into_body()))
}

/// A new HTTP/1.1 connection to `addr`, driven by a task of its own.
async fn connect(addr: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // A connection's failure surfaces on its sender, as the next request's error.
    tokio::spawn(async move { conn.await.ok() });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn a_pool_sends_bodies_and_headers_and_reuses_its_connections() {
        let app = axum::Router::new().route(
            "/echo",
            axum::routing::post(|headers: axum::http::HeaderMap, body: Bytes| async move {
                let typed = headers.get(header::CONTENT_TYPE).is_some_and(|v| v == "application/json");
                let authorized = headers.get(header::AUTHORIZATION).is_some_and(|v| v == "Bearer t");
                match (typed, authorized) {
                    (true, true) => (axum::http::StatusCode::CREATED, body),
                    _ => (axum::http::StatusCode::BAD_REQUEST, Bytes::new()),
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let pool = Pool::new(&addr);
        for n in 0..20 {
            let body = Bytes::from(format!("{{\"n\":{n}}}"));
            let answer = pool
                .send(Method::POST, "/echo", &[("authorization", "Bearer t")], Some(body.clone()))
                .await
                .unwrap();
            assert_eq!(answer, (201, body));
        }
        assert_eq!(pool.idle.lock().unwrap().len(), 1, "one request at a time needs one connection");
        let at_once = (0..4).map(|_| pool.send(Method::POST, "/echo", &[], Some(Bytes::from_static(b"{}"))));
        for answer in futures::future::join_all(at_once).await {
            assert_eq!(answer.unwrap().0, 400, "no authorization");
        }
        assert!(pool.idle.lock().unwrap().len() <= 4);
    }

    #[tokio::test]
    async fn every_request_is_sent_once_and_answered_with_its_status() {
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        let app = axum::Router::new().route(
            "/polls/{n}",
            axum::routing::get(
                move |axum::extract::Path(n): axum::extract::Path<u32>, headers: axum::http::HeaderMap| {
                    counter.fetch_add(1, Ordering::Relaxed);
                    let authorized = headers.get(header::AUTHORIZATION).is_some_and(|v| v == "Bearer t");
                    async move {
                        match (authorized, n % 10) {
                            (false, _) => axum::http::StatusCode::UNAUTHORIZED,
                            (true, 0) => axum::http::StatusCode::NOT_FOUND,
                            _ => axum::http::StatusCode::OK,
                        }
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let gets =
            (0..100).map(|n| Get { path: format!("/polls/{n}"), authorization: "Bearer t".into() }).collect();
        let statuses = Arc::new(Mutex::new(Vec::new()));
        let recorded = statuses.clone();
        get_all(&addr, gets, 4, move |outcome| match outcome {
            Outcome::Answered { status, .. } => recorded.lock().unwrap().push(status),
            Outcome::Failed(e) => panic!("{e}"),
        })
        .await
        .unwrap();
        let statuses = statuses.lock().unwrap();
        assert_eq!(seen.load(Ordering::Relaxed), 100);
        assert_eq!(statuses.len(), 100);
        assert_eq!(statuses.iter().filter(|s| **s == 404).count(), 10);
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 90);
    }
}
