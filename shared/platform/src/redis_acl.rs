//! Least privilege on Redis: an ACL user per service that may touch the keys its service
//! declares ([`RedisKeys`], under the namespace) and nothing else, with no dangerous command
//! (`ticketing redis acl` prints the users' rules).

use contracts::Namespace;

/// The Redis keys a service uses, as patterns under the namespace (`queue:*`): those it reads
/// and writes, and those it only reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedisKeys {
    pub read_write: &'static [&'static str],
    pub read_only: &'static [&'static str],
}

impl RedisKeys {
    /// No key at all: the service connects (its readiness pings) and reads nothing.
    pub const NONE: RedisKeys = RedisKeys { read_write: &[], read_only: &[] };
}

/// The ACL rules of a user with `keys` under `ns`: no key, channel or command but those; the
/// commands are the connection's, reads, writes, scripts and transactions, never a dangerous
/// one (FLUSHALL, KEYS, CONFIG, DEBUG, …).
pub fn rules(ns: &Namespace, keys: &RedisKeys) -> String {
    let mut out = String::from(
        "resetkeys resetchannels -@all +@connection +@read +@write +@scripting +@transaction -@dangerous",
    );
    for pattern in keys.read_write {
        out.push_str(&format!(" ~{}", ns.redis_key(pattern)));
    }
    for pattern in keys.read_only {
        out.push_str(&format!(" %R~{}", ns.redis_key(pattern)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_its_own_keys_under_the_namespace_alone() {
        let ns = Namespace::new("p").unwrap();
        let keys = RedisKeys { read_write: &["queue:*"], read_only: &["queue:token:*"] };
        let rules = rules(&ns, &keys);
        assert!(rules.starts_with("resetkeys resetchannels -@all"), "{rules}");
        assert!(rules.ends_with(" ~p:queue:* %R~p:queue:token:*"), "{rules}");
        assert!(!rules.contains('*') || !rules.contains("~*"), "{rules}");
    }
}
