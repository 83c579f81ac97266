//! Scenarios and load runs against a running system: processes the harness starts on port 0
//! with a test environment of their own (one per service, behind an in-test ingress), or any
//! deployment named by `E2E_BASE_URL`.

pub mod api;
pub mod browser;
pub mod cluster;
pub mod cpu;
pub mod deployment;
pub mod harness;
pub mod wire;
