//! What every service stands on: configuration, telemetry, problem+json errors, JWT identity,
//! health/readiness/metrics routes, pools, the HTTP server and graceful shutdown.

pub mod auth;
pub mod combine;
pub mod config;
pub mod http;
pub mod idempotency;
pub mod memo;
pub mod openapi;
pub mod paging;
pub mod partition;
pub mod periodic;
pub mod pools;
pub mod problem;
pub mod queue_guard;
pub mod rate_limit;
pub mod readiness;
pub mod redis_acl;
pub mod routes;
pub mod rows;
pub mod shutdown;
pub mod signal;
pub mod telemetry;
pub mod whole;

pub use config::{Config, ConfigError, Secret};
pub use problem::Problem;
