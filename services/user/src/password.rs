//! Passwords as Argon2id hashes (the `argon2` crate's defaults: 19 MiB, two passes, one lane, as
//! OWASP recommends), in PHC strings that carry their own salt and parameters, so a stronger
//! setting later still verifies the old hashes. Hashing takes tens of milliseconds of CPU on
//! purpose; it runs on the blocking pool, never on the threads that answer requests.

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng},
};
use std::sync::LazyLock;

/// A hash to verify against when no account has the email: signing in to an unknown email
/// takes as long as a wrong password, so the time does not say which emails have accounts.
static DECOY: LazyLock<String> = LazyLock::new(|| hash_now("not anyone's password").unwrap_or_default());

fn hash_now(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing a password: {e}"))
}

fn verify_now(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// The PHC string of `password` with a fresh salt.
pub async fn hash(password: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || hash_now(&password))
        .await
        .map_err(|e| format!("hashing a password: {e}"))?
}

/// Whether `password` is the one `hash` was made from; with no hash (no account), checks it
/// against a decoy and answers false.
pub async fn verify(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || match hash {
        Some(hash) => verify_now(&password, &hash),
        None => {
            let _ = verify_now(&password, &DECOY);
            false
        }
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_no_other() {
        let h = hash("correct horse battery".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(!h.contains("correct horse"));
        assert!(verify("correct horse battery".into(), Some(h.clone())).await);
        assert!(!verify("correct horse batterY".into(), Some(h.clone())).await);
        // Two hashes of one password differ (each has its own salt).
        assert_ne!(hash("correct horse battery".into()).await.unwrap(), h);
        assert!(!verify("anything".into(), None).await);
        assert!(!verify("anything".into(), Some("not a hash".into())).await);
    }
}
