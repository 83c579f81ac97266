//! What checking an identity token costs, by algorithm, on one core: a token seen for the first
//! time (its signature checked), and one verified before (answered from the process's memory of
//! recent tokens). Prints microseconds per verification.
//!
//!     cargo run --release -p platform --example token_verify [tokens=2000]

#![allow(clippy::expect_used, reason = "a benchmark: a key or token that fails is the end of it")]

use contracts::UserId;
use platform::{
    Secret,
    auth::{DEVELOPMENT_PRIVATE_KEY, JwtKeys, Role, TokenRules},
};
use std::time::{Duration, Instant};

fn main() {
    let n: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let rsa = include_str!("../testdata/rs256.pem");
    let keys = [
        ("HS256 (shared secret)", JwtKeys::shared_secret(&Secret::new("x".repeat(32)))),
        (
            "EdDSA (Ed25519)",
            JwtKeys::signing(DEVELOPMENT_PRIVATE_KEY, TokenRules::default()).expect("dev key"),
        ),
        ("RS256 (2048-bit)", JwtKeys::signing(rsa, TokenRules::default()).expect("test key")),
    ];
    println!("{:<24} {:>18} {:>18}", "algorithm", "µs, first time", "µs, seen before");
    for (name, keys) in keys {
        let tokens: Vec<String> = (0..n)
            .map(|_| keys.mint(UserId::new(), Role::User, Duration::from_secs(3600)).expect("mint"))
            .collect();
        let started = Instant::now();
        for token in &tokens {
            std::hint::black_box(keys.verify(std::hint::black_box(token)).expect("verify"));
        }
        let first = started.elapsed().as_secs_f64() / f64::from(n);
        let rounds = n * 50;
        let started = Instant::now();
        for i in 0..rounds {
            let token = &tokens[(i % n) as usize];
            std::hint::black_box(keys.verify(std::hint::black_box(token)).expect("verify"));
        }
        let again = started.elapsed().as_secs_f64() / f64::from(rounds);
        println!("{name:<24} {:>18.2} {:>18.2}", first * 1e6, again * 1e6);
    }
}
