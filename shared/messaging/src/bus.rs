//! One NATS connection and JetStream context, with the namespace every subject goes through.

use crate::MessagingError;
use async_nats::{connection::State, jetstream};
use contracts::Namespace;
use futures::future::BoxFuture;
use platform::{config::NatsLogin, readiness::ReadinessCheck};
use std::time::Duration;

/// Acks a JetStream context lets be outstanding. Publishers must keep fewer un-awaited publish
/// futures than this, or they wait on themselves (DESIGN §8).
pub const MAX_ACK_INFLIGHT: usize = 2048;

/// The NATS side of a process.
#[derive(Clone, Debug)]
pub struct Bus {
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub ns: Namespace,
}

impl Bus {
    /// Connects (retrying in the background after the first success) and builds the context.
    /// `url` names one server, or every member of a cluster separated by commas; the client
    /// moves to another member when the one it uses goes away.
    pub async fn connect(url: &str, ns: Namespace) -> Result<Self, MessagingError> {
        Self::connect_as(url, ns, None).await
    }

    /// [`Bus::connect`], logging in as `login` if given. Its replies (JetStream's acks and
    /// deliveries) then come on `_INBOX_<user>.…`, which its permissions let it alone read.
    pub async fn connect_as(
        url: &str,
        ns: Namespace,
        login: Option<&NatsLogin>,
    ) -> Result<Self, MessagingError> {
        let servers: Vec<&str> = url.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        let mut options = async_nats::ConnectOptions::new();
        if let Some(login) = login {
            options = options
                .user_and_password(login.user.clone(), login.password.expose().to_owned())
                .custom_inbox_prefix(inbox_prefix(&login.user));
        }
        let client = options
            .name("ticketing")
            .connection_timeout(Duration::from_secs(5))
            .retry_on_initial_connect()
            .max_reconnects(None)
            // A process never needs its own core-NATS messages back (JetStream's deliveries
            // are not echoes): a replica's notices to the others (`Peers`) then reach only them.
            .no_echo()
            .connect(servers)
            .await
            .map_err(|e| MessagingError::Connect { url: url.to_owned(), message: e.to_string() })?;
        // retry_on_initial_connect returns at once; wait (bounded) so a bad URL fails loudly.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while client.connection_state() != State::Connected {
            if tokio::time::Instant::now() > deadline {
                return Err(MessagingError::Connect {
                    url: url.to_owned(),
                    message: "no connection within 10 s".into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let js = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(10))
            .max_ack_inflight(MAX_ACK_INFLIGHT)
            .backpressure_on_inflight(true)
            .build(client.clone());
        Ok(Self { client, js, ns })
    }
}

/// Where the replies to `user` go: `_INBOX_<user>`.
pub fn inbox_prefix(user: &str) -> String {
    format!("_INBOX_{user}")
}

impl ReadinessCheck for Bus {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            match self.client.connection_state() {
                State::Connected => Ok(()),
                other => Err(format!("connection {other:?}")),
            }
        })
    }
}
