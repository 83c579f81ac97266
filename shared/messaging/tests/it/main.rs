//! Integration tests of the event backbone against real Postgres, NATS and Redis.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failed unwrap is a failed test")]

mod consumer;
mod dlq;
mod gauges;
mod outbox;
mod partition;
mod peers;
mod permissions;
mod prune;
mod reaction;
mod redis;
mod runtime;
mod support;
mod trace;
