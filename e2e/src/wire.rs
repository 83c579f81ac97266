//! A lean HTTP/1.1 client for load runs: a fixed set of keep-alive connections, each a task
//! sending its requests one after another (as `wrk` does), with no URL to parse, no redirect or
//! retry layer and no connection pool to look up. On two shared cores the load client competes
//! with the server it measures: through `reqwest` each poll of the polling scenario cost the
//! client about twice the server's CPU, and the client, not the server, set the rate.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, client::conn::http1::SendRequest, header};
use hyper_util::rt::TokioIo;
use std::{
    sync::{
        Arc,
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
                let mut sender: Option<SendRequest<Empty<Bytes>>> = None;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(get) = gets.get(i) else { return };
                    let outcome = match &mut sender {
                        Some(s) if !s.is_closed() => send(s, &addr, get).await,
                        _ => match connect(&addr).await {
                            Ok(s) => send(sender.insert(s), &addr, get).await,
                            Err(e) => Err(e),
                        },
                    };
                    if outcome.is_err() {
                        sender = None;
                    }
                    done(outcome.unwrap_or_else(|e| Outcome::Failed(e.to_string())));
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await?;
    }
    Ok(())
}

/// A new HTTP/1.1 connection to `addr`, driven by a task of its own.
async fn connect(addr: &str) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // A connection's failure surfaces on its sender, as the next request's error.
    tokio::spawn(async move { conn.await.ok() });
    Ok(sender)
}

/// Sends `get` and reads its answer to the end.
async fn send(sender: &mut SendRequest<Empty<Bytes>>, host: &str, get: &Get) -> anyhow::Result<Outcome> {
    let request = Request::get(get.path.as_str())
        .header(header::HOST, host)
        .header(header::AUTHORIZATION, get.authorization.as_str())
        .body(Empty::new())?;
    let started = Instant::now();
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    response.into_body().collect().await?;
    Ok(Outcome::Answered { status, took: started.elapsed() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

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
