//! Rate limits per user and per client address on the routes that hand out what the waiting
//! room protects (joining it, holding and paying for seats): a user or a script that asks
//! faster than a person would is answered 429 `RATE_LIMITED` with `Retry-After`, and changes
//! nothing. Each process keeps its own counts (GCRA, `governor`), so behind an ingress that
//! spreads requests over `n` replicas a caller gets at most `n` times the rate.
//!
//! The client address is the connection's peer, or, when the peer is a trusted proxy
//! (`TICKETING_TRUSTED_PROXIES`, the ingress), the address that proxy appended last to
//! `X-Forwarded-For`: what a client writes there itself comes earlier and is not believed.

use crate::{
    Problem,
    auth::{Claims, JwtKeys, Verified, bearer_token},
};
use axum::{
    Router,
    extract::{ConnectInfo, Request, State},
    http::{Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use contracts::UserId;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use ipnet::IpNet;
use std::{
    hash::Hash,
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

/// The rates, from the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateSettings {
    /// Requests a second one user may make of a limited route, with bursts of twice that
    /// (`TICKETING_RATE_PER_USER`, default 5; 0 turns the limit off).
    pub per_user: u32,
    /// Requests a second from one client address (`TICKETING_RATE_PER_ADDRESS`, default 100:
    /// people behind one NAT share an address; 0 turns the limit off).
    pub per_address: u32,
    /// Peers whose `X-Forwarded-For` is believed (`TICKETING_TRUSTED_PROXIES`, addresses or
    /// CIDR blocks separated by commas; none by default).
    pub trusted_proxies: Vec<IpNet>,
}

impl crate::config::Settings for RateSettings {
    fn read(vars: &mut crate::config::Vars<'_>) -> Self {
        let per_user = vars.parsed("TICKETING_RATE_PER_USER", 5, "a whole number of requests a second");
        let per_address =
            vars.parsed("TICKETING_RATE_PER_ADDRESS", 100, "a whole number of requests a second");
        let proxies = vars.string("TICKETING_TRUSTED_PROXIES", "");
        let mut trusted_proxies = Vec::new();
        for p in proxies.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match p.parse::<IpNet>().or_else(|_| p.parse::<IpAddr>().map(IpNet::from)) {
                Ok(net) => trusted_proxies.push(net),
                Err(_) => {
                    vars.fail("TICKETING_TRUSTED_PROXIES", format!("{p:?} is not an address or a CIDR block"))
                }
            }
        }
        Self { per_user, per_address, trusted_proxies }
    }
}

/// The limits of one kind of request (its metrics name it `name`); clones share the counts.
#[derive(Clone)]
pub struct RateLimit(Arc<Limits>);

struct Limits {
    name: &'static str,
    users: Option<DefaultKeyedRateLimiter<UserId>>,
    addresses: Option<DefaultKeyedRateLimiter<IpAddr>>,
    trusted: Vec<IpNet>,
    jwt: JwtKeys,
    checks: AtomicU64,
}

/// Checks between two prunings of the callers not seen lately.
const PRUNE_EVERY: u64 = 4096;

fn keyed<K: Hash + Eq + Clone>(rate: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(rate)?;
    let burst = rate.saturating_mul(NonZeroU32::MIN.saturating_add(1));
    Some(RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)))
}

impl RateLimit {
    /// Limits at `settings`' rates; `jwt` tells the caller of a request.
    pub fn new(name: &'static str, settings: &RateSettings, jwt: JwtKeys) -> Self {
        Self(Arc::new(Limits {
            name,
            users: keyed(settings.per_user),
            addresses: keyed(settings.per_address),
            trusted: settings.trusted_proxies.clone(),
            jwt,
            checks: AtomicU64::new(0),
        }))
    }

    /// `router` with its POST requests limited (the other methods read, and pass).
    pub fn on<S: Clone + Send + Sync + 'static>(&self, router: Router<S>) -> Router<S> {
        router.route_layer(middleware::from_fn_with_state(self.clone(), limit))
    }

    /// How long the caller must wait, if either of its limits is reached.
    fn refused(&self, user: Option<UserId>, address: Option<IpAddr>) -> Option<(&'static str, Duration)> {
        let l = &self.0;
        if l.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            l.users.iter().for_each(|u| u.retain_recent());
            l.addresses.iter().for_each(|a| a.retain_recent());
        }
        // The time is read from the limiter's own clock, and only for a refusal: making a
        // clock (`DefaultClock::default()`) calibrates it with CPUID, which cost every request
        // about 2% of the server's CPU in the soak's profile.
        if let (Some(users), Some(user)) = (&l.users, user)
            && let Err(until) = users.check_key(&user)
        {
            return Some(("user", until.wait_time_from(users.clock().now())));
        }
        if let (Some(addresses), Some(address)) = (&l.addresses, address)
            && let Err(until) = addresses.check_key(&address)
        {
            return Some(("address", until.wait_time_from(addresses.clock().now())));
        }
        None
    }

    /// The client's address: the peer, or the last `X-Forwarded-For` hop a trusted proxy added.
    fn client(&self, req: &Request) -> Option<IpAddr> {
        let peer = req.extensions().get::<ConnectInfo<SocketAddr>>()?.0.ip();
        if !self.0.trusted.iter().any(|net| net.contains(&peer)) {
            return Some(peer);
        }
        let forwarded = req.headers().get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok());
        let last = forwarded.flat_map(|v| v.split(',')).map(str::trim).rfind(|v| !v.is_empty());
        Some(last.and_then(|v| v.parse().ok()).unwrap_or(peer))
    }

    /// The claims of a valid bearer token (an invalid one is the handler's to refuse).
    fn claims(&self, req: &Request) -> Option<Claims> {
        let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
        self.0.jwt.verify(bearer_token(value)?).ok()
    }
}

async fn limit(State(limit): State<RateLimit>, mut req: Request, next: Next) -> Response {
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let claims = limit.claims(&req);
    let Some((by, wait)) = limit.refused(claims.as_ref().map(|c| c.sub), limit.client(&req)) else {
        // The handler's `Identity` takes the claims verified here.
        if let Some(claims) = claims {
            req.extensions_mut().insert(Verified(claims));
        }
        return next.run(req).await;
    };
    metrics::counter!("http_rate_limited_total", "limit" => limit.0.name, "by" => by).increment(1);
    let seconds = u32::try_from(wait.as_secs_f64().ceil() as u64).unwrap_or(u32::MAX).max(1);
    let whose = if by == "user" { "you have" } else { "your address has" };
    Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "RATE_LIMITED",
        format!("{whose} made more of these requests than a person would; retry in {seconds} s"),
    )
    .retry_after(seconds)
    .into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use super::*;
    use crate::config::read_settings;

    fn settings(vars: &'static [(&'static str, &'static str)]) -> Result<RateSettings, crate::ConfigError> {
        read_settings::<RateSettings>(&|k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned()))
    }

    fn request(peer: &str, forwarded: Option<&str>) -> Request {
        let mut req = Request::post("/x");
        if let Some(f) = forwarded {
            req = req.header("x-forwarded-for", f);
        }
        let mut req = req.body(axum::body::Body::empty()).unwrap();
        req.extensions_mut().insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        req
    }

    #[test]
    fn a_forwarded_address_is_believed_only_from_a_trusted_proxy_and_only_its_own_hop() {
        let jwt = JwtKeys::shared_secret(&crate::config::Secret::new("0123456789abcdef0123456789abcdef"));
        let s = settings(&[("TICKETING_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")]).unwrap();
        let limit = RateLimit::new("test", &s, jwt);
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(limit.client(&request("203.0.113.9:5000", Some("198.51.100.1"))), ip("203.0.113.9"));
        assert_eq!(
            limit.client(&request("10.1.2.3:5000", Some("198.51.100.1, 203.0.113.7"))),
            ip("203.0.113.7")
        );
        assert_eq!(limit.client(&request("127.0.0.1:5000", None)), ip("127.0.0.1"));
        assert_eq!(limit.client(&request("127.0.0.1:5000", Some("not an address"))), ip("127.0.0.1"));
    }

    #[test]
    fn the_rates_are_settings() {
        let s = settings(&[]).unwrap();
        assert_eq!((s.per_user, s.per_address, s.trusted_proxies.len()), (5, 100, 0));
        let err =
            settings(&[("TICKETING_RATE_PER_USER", "-1"), ("TICKETING_TRUSTED_PROXIES", "10.0.0.0/33")])
                .unwrap_err();
        assert!(err.names("TICKETING_RATE_PER_USER") && err.names("TICKETING_TRUSTED_PROXIES"), "{err}");
    }
}
