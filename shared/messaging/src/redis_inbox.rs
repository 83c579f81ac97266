//! The Redis flavour of the idempotent consumer, for services whose state lives in Redis:
//! the event id is recorded by the same Lua script that applies the effect, so the two happen
//! together or not at all (a script runs atomically).

use crate::{Applied, HandleError, Incoming, consumer::Apply};
use contracts::{Namespace, Stream};
use std::{future::Future, time::Duration};

/// Where an event's id is recorded, and for how long: as long as its stream keeps the message,
/// plus a day (as the Postgres inbox is pruned, `crate::prune`), so no delivery JetStream can
/// still make, a replay included, finds its id forgotten.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxKey {
    pub key: String,
    pub ttl_secs: u64,
}

impl InboxKey {
    /// The inbox key of `msg` for `consumer`, under `ns`.
    pub fn of(ns: &Namespace, consumer: &str, msg: &Incoming) -> Self {
        let stream =
            msg.subject.split('.').next().and_then(|d| Stream::ALL.into_iter().find(|s| s.domain() == d));
        let kept = stream
            .and_then(|s| crate::definitions::stream_config(s, ns, 1).ok())
            .map_or(Duration::ZERO, |c| c.max_age)
            .max(MIN_TTL);
        Self {
            key: ns.redis_key(&format!("inbox:{consumer}:{}", msg.envelope.id)),
            ttl_secs: (kept + Duration::from_secs(24 * 3600)).as_secs(),
        }
    }
}

/// The shortest an id is remembered, whatever a stream says (one that keeps messages forever
/// says 0): far beyond any redelivery or dedup window.
const MIN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// A Lua effect wrapped with the inbox check: `KEYS[1]` is the inbox key and `ARGV[1]` its TTL,
/// so the effect's own keys start at `KEYS[2]` and its arguments at `ARGV[2]`. The script
/// answers 1 when it applied the effect and 0 when the event had been applied before.
pub struct IdempotentScript(redis::Script);

impl IdempotentScript {
    /// Wraps `effect` (a Lua chunk; it must validate before it writes, since Redis does not roll
    /// back a script that fails halfway).
    pub fn new(effect: &str) -> Self {
        Self(redis::Script::new(&format!(
            "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n\
             local function effect()\n{effect}\nend\n\
             effect()\n\
             redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])\n\
             return 1"
        )))
    }

    /// An invocation with the inbox key and TTL in place; add the effect's keys and args.
    pub fn prepare(&self, inbox: &InboxKey) -> redis::ScriptInvocation<'_> {
        let mut inv = self.0.prepare_invoke();
        inv.key(&inbox.key).arg(inbox.ttl_secs);
        inv
    }
}

/// A service's reaction to events whose effect is one [`IdempotentScript`] call.
pub trait RedisHandler: Send + Sync + 'static {
    /// Whether this handler reacts to events of type `kind` (see [`crate::Handler::handles`]).
    fn handles(&self, kind: &str) -> bool {
        let _ = kind;
        true
    }

    /// Applies the effect; must run an [`IdempotentScript`] prepared with `inbox` and report
    /// its answer (1 → `Done`, 0 → `Duplicate`).
    fn handle<'a>(
        &'a self,
        conn: &'a mut platform::pools::Redis,
        inbox: &'a InboxKey,
        msg: &'a Incoming,
    ) -> impl Future<Output = Result<Applied, HandleError>> + Send + 'a;
}

/// Runs a [`RedisHandler`] with inbox keys `P:inbox:<consumer>:<event id>`.
pub struct RedisInbox<H> {
    redis: platform::pools::Redis,
    ns: Namespace,
    handler: H,
}

impl<H: RedisHandler> RedisInbox<H> {
    /// Runs `handler` against `redis`, with inbox keys under `ns`.
    pub fn new(redis: platform::pools::Redis, ns: Namespace, handler: H) -> Self {
        Self { redis, ns, handler }
    }
}

impl<H: RedisHandler> Apply for RedisInbox<H> {
    fn handles(&self, kind: &str) -> bool {
        self.handler.handles(kind)
    }

    async fn apply(&self, consumer: &str, msg: &Incoming) -> Result<Applied, HandleError> {
        if !self.handler.handles(msg.kind()) {
            return Ok(Applied::Ignored);
        }
        let mut conn = self.redis.clone();
        let inbox = InboxKey::of(&self.ns, consumer, msg);
        self.handler.handle(&mut conn, &inbox, msg).await
    }
}

/// Reads a script's answer as [`Applied`].
pub fn applied(answer: i64) -> Applied {
    if answer == 1 { Applied::Done } else { Applied::Duplicate }
}
