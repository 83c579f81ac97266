//! Integration tests of the event backbone against real Postgres, NATS and Redis.

mod consumer;
mod dlq;
mod outbox;
mod redis;
mod support;
mod trace;
