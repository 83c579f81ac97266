//! What checking an identity token costs, by algorithm: one core, tokens verified one after
//! another (what every authenticated request pays once). Prints microseconds per verification.
//!
//!     cargo run --release -p platform --example token_verify [rounds=20000]

#![allow(clippy::expect_used, reason = "a benchmark: a key or token that fails is the end of it")]

use contracts::UserId;
use platform::{
    Secret,
    auth::{DEVELOPMENT_PRIVATE_KEY, JwtKeys, Role, TokenRules},
};
use std::time::{Duration, Instant};

fn main() {
    let rounds: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rsa = include_str!("../testdata/rs256.pem");
    let keys = [
        ("HS256 (shared secret)", JwtKeys::shared_secret(&Secret::new("x".repeat(32)))),
        (
            "EdDSA (Ed25519)",
            JwtKeys::signing(DEVELOPMENT_PRIVATE_KEY, TokenRules::default()).expect("dev key"),
        ),
        ("RS256 (2048-bit)", JwtKeys::signing(rsa, TokenRules::default()).expect("test key")),
    ];
    println!("{:<24} {:>12} {:>14}", "algorithm", "µs/verify", "verifies/s");
    for (name, keys) in keys {
        let token = keys.mint(UserId::new(), Role::User, Duration::from_secs(3600)).expect("mint");
        for _ in 0..rounds / 10 {
            keys.verify(&token).expect("verify");
        }
        let started = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(keys.verify(std::hint::black_box(&token)).expect("verify"));
        }
        let per = started.elapsed().as_secs_f64() / f64::from(rounds);
        println!("{name:<24} {:>12.1} {:>14.0}", per * 1e6, 1.0 / per);
    }
}
