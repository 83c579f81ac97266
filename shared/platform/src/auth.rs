//! Identity from `Authorization: Bearer <JWT>`.
//!
//! An identity provider signs tokens with its private key (EdDSA or RS256); a service holds only
//! the public keys ([`PublicKeys`]: a PEM or JWKS file, read again when it changes, so a key is
//! rotated by publishing the new one beside the old before signing with it). Every token names
//! the configured issuer (`iss`) and this system as its audience (`aud`), says when it was issued
//! (`iat`), and lives no longer than the configured maximum ([`TokenRules`]). A shared HS256
//! secret is accepted where one is configured: development and tests.

use crate::{Problem, Secret};
use axum::{
    extract::{FromRef, FromRequestParts},
    http::{StatusCode, header, request::Parts},
};
use contracts::UserId;
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation,
    errors::ErrorKind,
    jwk::{AlgorithmParameters, Jwk, JwkSet},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::{
    collections::HashMap,
    fmt,
    path::{Path, PathBuf},
    str::FromStr,
    sync::{Arc, RwLock},
    time::{Duration, Instant, SystemTime},
};

/// What a caller may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

/// The claims of an identity token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: UserId,
    pub role: Role,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

/// What every token must say, and how long it may live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRules {
    /// The identity provider's name (`iss`).
    pub issuer: String,
    /// This system's name among the provider's audiences (`aud`).
    pub audience: String,
    /// The longest `exp - iat` accepted: a leaked token is good for no longer.
    pub max_lifetime: Duration,
}

/// The longest a token may live unless `TICKETING_JWT_MAX_LIFETIME_SECS` says otherwise: a day.
pub const DEFAULT_MAX_LIFETIME_SECS: u64 = 86_400;

impl Default for TokenRules {
    fn default() -> Self {
        Self {
            issuer: "ticketing".into(),
            audience: "ticketing".into(),
            max_lifetime: Duration::from_secs(DEFAULT_MAX_LIFETIME_SECS),
        }
    }
}

/// The development key pair, public in this repository: `scripts/dev-up` and the local
/// Kubernetes clusters use it, and a process refuses it unless `TICKETING_ENV=dev`.
pub const DEVELOPMENT_PRIVATE_KEY: &str = include_str!("../dev-keys/jwt-ed25519.pem");
/// The public half of [`DEVELOPMENT_PRIVATE_KEY`].
pub const DEVELOPMENT_PUBLIC_KEY: &str = include_str!("../dev-keys/jwt-ed25519.pub.pem");

/// A key file that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

/// One public key and the algorithm it verifies.
#[derive(Clone)]
struct PublicKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

impl PublicKey {
    /// The key's bytes (raw for Ed25519, DER for RSA), to recognise a known key in any form.
    fn bytes(&self) -> Vec<u8> {
        match self.key.try_get_as_bytes() {
            Ok(b) => b.to_vec(),
            Err(_) => Jwk::from_decoding_key(&self.key, Some(self.alg))
                .ok()
                .and_then(|j| serde_json::to_vec(&j.algorithm).ok())
                .unwrap_or_default(),
        }
    }
}

/// The identity provider's public keys, from a file: PEM (one or more `PUBLIC KEY` blocks,
/// Ed25519 or RSA) or a JWKS document (`{"keys": [...]}`, OKP, RSA or EC keys). The file is
/// looked at again every few seconds and read again when it has changed (a Kubernetes Secret or
/// ConfigMap mount changes in place); a file that has become unreadable keeps the keys it had.
pub struct PublicKeys {
    /// The file, or none for keys that never change (a private key's public half).
    path: Option<PathBuf>,
    state: RwLock<Loaded>,
}

struct Loaded {
    keys: Arc<[PublicKey]>,
    modified: Option<SystemTime>,
    checked: Instant,
    /// Counts the times the keys were read again: what a token verified with older keys is not
    /// answered from memory past ([`Recent`]).
    generation: u64,
}

/// How often [`PublicKeys`] looks whether its file changed.
const RECHECK: Duration = Duration::from_secs(10);

impl PublicKeys {
    /// Reads the keys at `path`.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let (keys, modified) = read_public_keys(path)?;
        Ok(Self {
            path: Some(path.to_owned()),
            state: RwLock::new(Loaded {
                keys: keys.into(),
                modified,
                checked: Instant::now(),
                generation: 0,
            }),
        })
    }

    /// Whether one of the keys is the development key (public in this repository).
    pub fn holds_development_key(&self) -> bool {
        let dev = parse_public_keys(DEVELOPMENT_PUBLIC_KEY).unwrap_or_default();
        let dev: Vec<Vec<u8>> = dev.iter().map(PublicKey::bytes).collect();
        self.current().0.iter().any(|k| dev.contains(&k.bytes()))
    }

    /// The keys now, after reading the file again if it changed.
    fn current(&self) -> (Arc<[PublicKey]>, u64) {
        {
            let state = self.state.read().unwrap_or_else(|p| p.into_inner());
            if self.path.is_none() || state.checked.elapsed() < RECHECK {
                return (state.keys.clone(), state.generation);
            }
        }
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        if let Some(path) = &self.path
            && state.checked.elapsed() >= RECHECK
        {
            state.checked = Instant::now();
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            if modified != state.modified {
                match read_public_keys(path) {
                    Ok((keys, modified)) => {
                        tracing::info!(path = %path.display(), keys = keys.len(), "public keys read again");
                        let generation = state.generation + 1;
                        *state = Loaded { keys: keys.into(), modified, checked: Instant::now(), generation };
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "public keys kept: the file cannot be read")
                    }
                }
            }
        }
        (state.keys.clone(), state.generation)
    }
}

fn read_public_keys(path: &Path) -> Result<(Vec<PublicKey>, Option<SystemTime>), KeyError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| KeyError(format!("cannot read {}: {e}", path.display())))?;
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let keys =
        parse_public_keys(&text).map_err(|KeyError(e)| KeyError(format!("{}: {e}", path.display())))?;
    Ok((keys, modified))
}

/// The keys of a PEM or JWKS text.
fn parse_public_keys(text: &str) -> Result<Vec<PublicKey>, KeyError> {
    let keys = if text.trim_start().starts_with('{') { parse_jwks(text)? } else { parse_pem(text)? };
    if keys.is_empty() {
        return Err(KeyError("holds no public key".into()));
    }
    Ok(keys)
}

fn parse_pem(text: &str) -> Result<Vec<PublicKey>, KeyError> {
    if text.contains("PRIVATE KEY") {
        return Err(KeyError("holds a private key: give services only the public key".into()));
    }
    let mut keys = Vec::new();
    for block in text.split("-----BEGIN ").skip(1) {
        let pem = format!("-----BEGIN {block}");
        let pem = pem.as_bytes();
        let key = if let Ok(key) = DecodingKey::from_ed_pem(pem) {
            PublicKey { kid: None, alg: Algorithm::EdDSA, key }
        } else if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            PublicKey { kid: None, alg: Algorithm::RS256, key }
        } else {
            return Err(KeyError("holds a PEM block that is not an Ed25519 or RSA public key".into()));
        };
        keys.push(key);
    }
    Ok(keys)
}

fn parse_jwks(text: &str) -> Result<Vec<PublicKey>, KeyError> {
    let set: JwkSet =
        serde_json::from_str(text).map_err(|e| KeyError(format!("is not a JWKS document: {e}")))?;
    set.keys
        .iter()
        .map(|jwk| {
            let kid = jwk.common.key_id.clone();
            let named = |what: &str| match &kid {
                Some(kid) => format!("key {kid:?} {what}"),
                None => format!("a key {what}"),
            };
            let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
                (AlgorithmParameters::OctetKey(_), _) => {
                    return Err(KeyError(named("is a shared (oct) key: a JWKS file holds public keys only")));
                }
                (_, Some(alg)) => Algorithm::from_str(&alg.to_string())
                    .map_err(|_| KeyError(named(&format!("has an unsupported alg {alg}"))))?,
                (AlgorithmParameters::OctetKeyPair(_), None) => Algorithm::EdDSA,
                (AlgorithmParameters::RSA(_), None) => Algorithm::RS256,
                (AlgorithmParameters::EllipticCurve(_), None) => Algorithm::ES256,
                (_, None) => {
                    return Err(KeyError(named("has an unsupported type")));
                }
            };
            if alg.family() == jsonwebtoken::AlgorithmFamily::Hmac {
                return Err(KeyError(named("names a shared-secret algorithm")));
            }
            let key =
                DecodingKey::from_jwk(jwk).map_err(|e| KeyError(named(&format!("cannot be used: {e}"))))?;
            Ok(PublicKey { kid, alg, key })
        })
        .collect()
}

/// What tokens are signed with: a private key (an identity provider's part: `ticketing token`,
/// tests), or the shared secret.
struct Signer {
    alg: Algorithm,
    key: EncodingKey,
}

/// Verifies identity tokens (and, where a private key or secret is given, signs them).
#[derive(Clone)]
pub struct JwtKeys(Arc<Keys>);

struct Keys {
    rules: TokenRules,
    secret: Option<DecodingKey>,
    public: Option<PublicKeys>,
    signer: Option<Signer>,
    validations: Vec<(Algorithm, Validation)>,
    recent: Recent,
}

impl fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKeys")
            .field("rules", &self.0.rules)
            .field("secret", &self.0.secret.is_some())
            .field("public_keys", &self.0.public.as_ref().map(|p| p.path.clone()))
            .field("signs", &self.0.signer.as_ref().map(|s| s.alg))
            .finish()
    }
}

impl JwtKeys {
    /// Keys that verify and sign with one shared HS256 secret and the default rules
    /// (development and tests).
    pub fn shared_secret(secret: &Secret) -> Self {
        Self::build(TokenRules::default(), Some(secret), None, None)
    }

    /// Keys that sign with the private key `pem` (Ed25519 or RSA, PKCS#8 PEM) and verify with
    /// its public half: what an identity provider holds (`ticketing token`, tests).
    pub fn signing(pem: &str, rules: TokenRules) -> Result<Self, KeyError> {
        let signer = parse_private_key(pem)?;
        Ok(Self::build(rules, None, None, Some(signer)))
    }

    /// Verifies with the public keys in the file `public_keys` and/or the shared `secret`;
    /// signs with the private key `private_key` (or the secret) if given.
    pub fn new(
        rules: TokenRules,
        secret: Option<&Secret>,
        public_keys: Option<PublicKeys>,
        private_key: Option<&str>,
    ) -> Result<Self, KeyError> {
        let signer = private_key.map(parse_private_key).transpose()?;
        Ok(Self::build(rules, secret, public_keys, signer))
    }

    fn build(
        rules: TokenRules,
        secret: Option<&Secret>,
        public: Option<PublicKeys>,
        signer: Option<Signer>,
    ) -> Self {
        // jsonwebtoken takes one algorithm family per validation: one for each algorithm.
        let validations = ACCEPTED
            .iter()
            .map(|&alg| {
                let mut v = Validation::new(alg);
                v.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
                v.set_issuer(&[&rules.issuer]);
                v.set_audience(&[&rules.audience]);
                v.leeway = LEEWAY_SECS;
                (alg, v)
            })
            .collect();
        let signer = signer.or_else(|| {
            secret.map(|s| Signer {
                alg: Algorithm::HS256,
                key: EncodingKey::from_secret(s.expose().as_bytes()),
            })
        });
        let public = public.or_else(|| {
            // A private key verifies its own tokens with its public half.
            let signer = signer.as_ref().filter(|s| s.alg != Algorithm::HS256)?;
            let jwk = Jwk::from_encoding_key(&signer.key, signer.alg).ok()?;
            let key = DecodingKey::from_jwk(&jwk).ok()?;
            let keys = vec![PublicKey { kid: None, alg: signer.alg, key }];
            Some(PublicKeys {
                path: None,
                state: RwLock::new(Loaded {
                    keys: keys.into(),
                    modified: None,
                    checked: Instant::now(),
                    generation: 0,
                }),
            })
        });
        Self(Arc::new(Keys {
            rules,
            secret: secret.map(|s| DecodingKey::from_secret(s.expose().as_bytes())),
            public,
            signer,
            validations,
            recent: Recent::default(),
        }))
    }

    /// The rules tokens are checked against.
    pub fn rules(&self) -> &TokenRules {
        &self.0.rules
    }

    /// Mints a token valid for `ttl`, signed with the private key or the secret.
    pub fn mint(&self, user: UserId, role: Role, ttl: Duration) -> Result<String, KeyError> {
        let signer = self.0.signer.as_ref().ok_or_else(|| {
            KeyError("no key to sign with: set TICKETING_JWT_PRIVATE_KEY (or TICKETING_JWT_SECRET)".into())
        })?;
        if ttl > self.0.rules.max_lifetime {
            return Err(KeyError(format!(
                "a token may live at most {} s (TICKETING_JWT_MAX_LIFETIME_SECS)",
                self.0.rules.max_lifetime.as_secs()
            )));
        }
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user,
            role,
            iss: self.0.rules.issuer.clone(),
            aud: self.0.rules.audience.clone(),
            iat: now,
            exp: now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2)),
        };
        jsonwebtoken::encode(&Header::new(signer.alg), &claims, &signer.key)
            .map_err(|e| KeyError(e.to_string()))
    }

    /// Verifies signature, algorithm, issuer, audience, expiry and lifetime. A token this
    /// process verified lately is answered from memory (`Recent`) while it has not expired
    /// and the keys it was verified with are still the keys.
    pub fn verify(&self, token: &str) -> Result<Claims, Problem> {
        let (keys, generation) = self.0.public.as_ref().map(PublicKeys::current).unwrap_or_default();
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(claims) = self.0.recent.get(&digest, generation) {
            return Ok(claims);
        }
        let claims = self.verify_with(token, &keys)?;
        self.0.recent.put(digest, &claims, generation);
        Ok(claims)
    }

    fn verify_with(&self, token: &str, keys: &[PublicKey]) -> Result<Claims, Problem> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| invalid("the bearer token is not valid"))?;
        let (_, validation) =
            self.0.validations.iter().find(|(alg, _)| *alg == header.alg).ok_or_else(|| {
                invalid("the bearer token is signed with an algorithm this system does not take")
            })?;
        let claims = if header.alg == Algorithm::HS256 {
            let key = self.0.secret.as_ref().ok_or_else(|| invalid("the bearer token is not valid"))?;
            decode(token, key, validation)?
        } else {
            let mut candidates = keys
                .iter()
                .filter(|k| k.alg == header.alg && (header.kid.is_none() || k.kid == header.kid))
                .peekable();
            if candidates.peek().is_none() {
                return Err(invalid("the bearer token is not signed by a key this system knows"));
            }
            let mut outcome = Err(invalid("the bearer token is not valid"));
            for k in candidates {
                outcome = decode(token, &k.key, validation);
                if outcome.is_ok() {
                    break;
                }
            }
            outcome?
        };
        let now = chrono::Utc::now().timestamp();
        let max = i64::try_from(self.0.rules.max_lifetime.as_secs()).unwrap_or(i64::MAX);
        if claims.iat > now + LEEWAY_SECS as i64 {
            return Err(invalid("the bearer token says it was issued in the future"));
        }
        if claims.exp.saturating_sub(claims.iat) > max {
            return Err(invalid(&format!(
                "the bearer token lives longer than the {max} s this system accepts"
            )));
        }
        Ok(claims)
    }
}

/// Tokens this process verified lately, by their SHA-256, with the generation of the keys that
/// verified them: a client that sends one token again and again (a waiting-room poll) pays a
/// lookup instead of a signature check (55 µs for EdDSA, docs/benchmarks.md). An entry is
/// answered while its token has not expired and the keys have not been read again since (a key
/// removed from the file stops its tokens at once); when full, it starts again empty.
#[derive(Default)]
struct Recent(RwLock<HashMap<[u8; 32], (Claims, u64)>>);

/// Tokens [`Recent`] holds at most.
const RECENT: usize = 100_000;

impl Recent {
    fn get(&self, digest: &[u8; 32], generation: u64) -> Option<Claims> {
        let map = self.0.read().unwrap_or_else(|p| p.into_inner());
        let (claims, verified_with) = map.get(digest)?;
        let live = claims.exp >= chrono::Utc::now().timestamp() - LEEWAY_SECS as i64;
        (live && *verified_with == generation).then(|| claims.clone())
    }

    fn put(&self, digest: [u8; 32], claims: &Claims, generation: u64) {
        let mut map = self.0.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= RECENT {
            map.clear();
        }
        map.insert(digest, (claims.clone(), generation));
    }
}

/// The algorithms a token may be signed with (the key is picked by it: HS256 the secret, any
/// other a public key made for it).
const ACCEPTED: &[Algorithm] = &[
    Algorithm::HS256,
    Algorithm::EdDSA,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// Clock difference tolerated between the identity provider and a service.
const LEEWAY_SECS: u64 = 5;

fn invalid(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "INVALID_TOKEN", detail)
}

fn decode(token: &str, key: &DecodingKey, validation: &Validation) -> Result<Claims, Problem> {
    jsonwebtoken::decode::<Claims>(token, key, validation).map(|data| data.claims).map_err(|e| {
        invalid(match e.kind() {
            ErrorKind::ExpiredSignature => "the bearer token has expired",
            ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => {
                "the bearer token was not issued for this system"
            }
            _ => "the bearer token is not valid",
        })
    })
}

fn parse_private_key(pem: &str) -> Result<Signer, KeyError> {
    if let Ok(key) = EncodingKey::from_ed_pem(pem.as_bytes()) {
        return Ok(Signer { alg: Algorithm::EdDSA, key });
    }
    if let Ok(key) = EncodingKey::from_rsa_pem(pem.as_bytes()) {
        return Ok(Signer { alg: Algorithm::RS256, key });
    }
    Err(KeyError("is not an Ed25519 or RSA private key (PKCS#8 PEM)".into()))
}

/// Whether `pem` is the development private key (public in this repository).
pub fn is_development_private_key(pem: &str) -> bool {
    pem.trim() == DEVELOPMENT_PRIVATE_KEY.trim()
}

/// The authenticated caller. Extracting it answers 401 when the token is missing or invalid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user_id: UserId,
    pub role: Role,
}

impl<S> FromRequestParts<S> for Identity
where
    JwtKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            Problem::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", "send Authorization: Bearer <token>")
        })?;
        if let Some(Verified(claims)) = parts.extensions.get::<Verified>() {
            return Ok(Identity { user_id: claims.sub, role: claims.role });
        }
        let token = header.to_str().ok().and_then(bearer_token).ok_or_else(|| {
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "the Authorization header must be Bearer <token>",
            )
        })?;
        let claims = JwtKeys::from_ref(state).verify(token)?;
        Ok(Identity { user_id: claims.sub, role: claims.role })
    }
}

/// The token of an `Authorization` header's value `Bearer <token>`.
pub fn bearer_token(value: &str) -> Option<&str> {
    value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).map(str::trim)
}

/// The claims of this request's bearer token, verified already by a layer in front of the
/// handler (the rate limits, `crate::rate_limit`): [`Identity`] takes them instead of verifying
/// the token a second time.
#[derive(Clone, Debug)]
pub struct Verified(pub Claims);

/// An authenticated caller with role `admin`; anyone else gets 403.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Admin(pub Identity);

impl<S> FromRequestParts<S> for Admin
where
    JwtKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let identity = Identity::from_request_parts(parts, state).await?;
        if identity.role != Role::Admin {
            return Err(Problem::new(StatusCode::FORBIDDEN, "FORBIDDEN", "this route needs role admin"));
        }
        Ok(Admin(identity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    const RSA: &str = include_str!("../testdata/rs256.pem");
    const RSA_PUBLIC: &str = include_str!("../testdata/rs256.pub.pem");
    const OTHER_ED: &str = include_str!("../testdata/other-ed25519.pem");

    fn secret(s: &str) -> JwtKeys {
        JwtKeys::shared_secret(&Secret::new(s))
    }

    /// Keys verifying with the public keys in `text`, written to a file of its own.
    fn verifier(text: &str, secret: Option<&str>) -> JwtKeys {
        let path = std::env::temp_dir().join(format!("ticketing-keys-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, text).unwrap();
        let public = PublicKeys::load(&path).unwrap();
        JwtKeys::new(TokenRules::default(), secret.map(Secret::new).as_ref(), Some(public), None).unwrap()
    }

    fn signer(pem: &str) -> JwtKeys {
        JwtKeys::signing(pem, TokenRules::default()).unwrap()
    }

    fn token_of(keys: &JwtKeys) -> String {
        keys.mint(UserId::new(), Role::User, Duration::from_secs(60)).unwrap()
    }

    /// `claims` signed by `keys`' signer, whatever they say.
    fn signed(keys: &JwtKeys, claims: &serde_json::Value) -> String {
        let s = keys.0.signer.as_ref().unwrap();
        jsonwebtoken::encode(&Header::new(s.alg), claims, &s.key).unwrap()
    }

    fn claims(iat: i64, exp: i64, iss: &str, aud: &str) -> serde_json::Value {
        serde_json::json!({"sub": UserId::new(), "role": "user", "iss": iss, "aud": aud, "iat": iat, "exp": exp})
    }

    #[test]
    fn minted_token_verifies() {
        let k = secret(SECRET);
        let user = UserId::new();
        let t = k.mint(user, Role::Admin, Duration::from_secs(60)).unwrap();
        let c = k.verify(&t).unwrap();
        assert_eq!(
            (c.sub, c.role, c.iss.as_str(), c.aud.as_str()),
            (user, Role::Admin, "ticketing", "ticketing")
        );
    }

    #[test]
    fn other_key_and_expired_tokens_are_refused() {
        let k = secret(SECRET);
        let other = secret("fedcba9876543210fedcba9876543210");
        assert_eq!(k.verify(&token_of(&other)).unwrap_err().code, "INVALID_TOKEN");

        let now = chrono::Utc::now().timestamp();
        let expired = signed(&k, &claims(now - 7200, now - 3600, "ticketing", "ticketing"));
        let p = k.verify(&expired).unwrap_err();
        assert!(p.detail.contains("expired"), "{p}");
    }

    #[test]
    fn algorithm_none_is_refused() {
        let k = secret(SECRET);
        // header {"alg":"none"} with valid-looking claims and no signature
        let forged = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIwMTkwMDAwMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDAiLCJyb2xlIjoiYWRtaW4iLCJleHAiOjQxMDI0NDQ4MDB9.";
        assert!(k.verify(forged).is_err());
    }

    #[test]
    fn an_ed25519_or_rsa_signed_token_verifies_with_the_public_key_alone() {
        for (private, public) in [(DEVELOPMENT_PRIVATE_KEY, DEVELOPMENT_PUBLIC_KEY), (RSA, RSA_PUBLIC)] {
            let services = verifier(public, None);
            let user = UserId::new();
            let t = signer(private).mint(user, Role::User, Duration::from_secs(60)).unwrap();
            assert_eq!(services.verify(&t).unwrap().sub, user);
            // A service holds no key to sign with.
            assert!(services.mint(user, Role::Admin, Duration::from_secs(60)).is_err());
        }
        // Signed by a key the services do not hold.
        let p = verifier(DEVELOPMENT_PUBLIC_KEY, None).verify(&token_of(&signer(OTHER_ED))).unwrap_err();
        assert_eq!(p.code, "INVALID_TOKEN");
    }

    #[test]
    fn with_public_keys_alone_an_hs256_token_is_refused_even_one_signed_with_the_public_key() {
        let services = verifier(DEVELOPMENT_PUBLIC_KEY, None);
        assert!(services.verify(&token_of(&secret(SECRET))).is_err());
        // The classic confusion: HS256 keyed with the public key's own text.
        let forged = secret(DEVELOPMENT_PUBLIC_KEY);
        assert!(services.verify(&token_of(&forged)).is_err());
        // Where a secret is configured too, both kinds verify.
        let both = verifier(DEVELOPMENT_PUBLIC_KEY, Some(SECRET));
        both.verify(&token_of(&secret(SECRET))).unwrap();
        both.verify(&token_of(&signer(DEVELOPMENT_PRIVATE_KEY))).unwrap();
    }

    #[test]
    fn issuer_audience_and_lifetime_are_checked() {
        let k = signer(DEVELOPMENT_PRIVATE_KEY);
        let now = chrono::Utc::now().timestamp();
        let day = 86_400;
        for (c, says) in [
            (claims(now, now + 60, "someone-else", "ticketing"), "not issued for this system"),
            (claims(now, now + 60, "ticketing", "another-system"), "not issued for this system"),
            (claims(now, now + day + 60, "ticketing", "ticketing"), "lives longer"),
            (claims(now + 3600, now + 3660, "ticketing", "ticketing"), "in the future"),
        ] {
            let p = k.verify(&signed(&k, &c)).unwrap_err();
            assert!(p.detail.contains(says), "{c}: {p}");
        }
        let mut no_iat = claims(now, now + 60, "ticketing", "ticketing");
        no_iat.as_object_mut().unwrap().remove("iat");
        assert!(k.verify(&signed(&k, &no_iat)).is_err());
        assert!(k.mint(UserId::new(), Role::User, Duration::from_secs(day as u64 + 1)).is_err());
        k.verify(&signed(&k, &claims(now, now + day, "ticketing", "ticketing"))).unwrap();
    }

    /// The JWKS of `private` keys, each with a kid.
    fn jwks(private: &[(&str, &str)]) -> String {
        let keys: Vec<Jwk> = private
            .iter()
            .map(|(kid, pem)| {
                let s = parse_private_key(pem).unwrap();
                let mut jwk = Jwk::from_encoding_key(&s.key, s.alg).unwrap();
                jwk.common.key_id = Some((*kid).to_owned());
                jwk
            })
            .collect();
        serde_json::to_string(&JwkSet { keys }).unwrap()
    }

    #[test]
    fn a_jwks_file_names_keys_by_kid_and_a_rotated_file_is_read_again() {
        let path = std::env::temp_dir().join(format!("ticketing-jwks-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, jwks(&[("k1", DEVELOPMENT_PRIVATE_KEY), ("r1", RSA)])).unwrap();
        let public = PublicKeys::load(&path).unwrap();
        assert!(public.holds_development_key());
        let services = JwtKeys::new(TokenRules::default(), None, Some(public), None).unwrap();
        for pem in [DEVELOPMENT_PRIVATE_KEY, RSA] {
            services.verify(&token_of(&signer(pem))).unwrap();
        }
        let with_kid = |pem: &str, kid: &str| {
            let s = parse_private_key(pem).unwrap();
            let mut h = Header::new(s.alg);
            h.kid = Some(kid.into());
            let now = chrono::Utc::now().timestamp();
            jsonwebtoken::encode(&h, &claims(now, now + 60, "ticketing", "ticketing"), &s.key).unwrap()
        };
        services.verify(&with_kid(DEVELOPMENT_PRIVATE_KEY, "k1")).unwrap();
        assert!(services.verify(&with_kid(DEVELOPMENT_PRIVATE_KEY, "k2")).is_err());
        assert!(services.verify(&with_kid(OTHER_ED, "k2")).is_err());

        // Rotation: k2 is published beside k1; once the file is looked at again, it verifies.
        std::fs::write(&path, jwks(&[("k1", DEVELOPMENT_PRIVATE_KEY), ("k2", OTHER_ED)])).unwrap();
        services.0.public.as_ref().unwrap().state.write().unwrap().checked -= RECHECK;
        services.verify(&with_kid(OTHER_ED, "k2")).unwrap();
        // A file that breaks keeps the keys it had.
        std::fs::write(&path, "not a key").unwrap();
        services.0.public.as_ref().unwrap().state.write().unwrap().checked -= RECHECK;
        services.verify(&with_kid(OTHER_ED, "k2")).unwrap();
    }

    #[test]
    fn a_verified_token_is_remembered_until_it_expires_or_its_key_is_removed() {
        let path = std::env::temp_dir().join(format!("ticketing-recent-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, DEVELOPMENT_PUBLIC_KEY).unwrap();
        let services =
            JwtKeys::new(TokenRules::default(), None, Some(PublicKeys::load(&path).unwrap()), None).unwrap();
        let token = token_of(&signer(DEVELOPMENT_PRIVATE_KEY));
        let user = services.verify(&token).unwrap().sub;
        // Marked in memory: the mark comes back while the entry holds, not once it has expired.
        let marker = UserId::new();
        let mark = |exp: i64| {
            for (claims, _) in services.0.recent.0.write().unwrap().values_mut() {
                (claims.sub, claims.exp) = (marker, exp);
            }
        };
        let now = chrono::Utc::now().timestamp();
        mark(now + 60);
        assert_eq!(services.verify(&token).unwrap().sub, marker, "answered from memory");
        mark(now - 3600);
        assert_eq!(services.verify(&token).unwrap().sub, user, "an expired entry is verified again");
        // The key is removed from the file: its tokens stop once the file is read again.
        std::fs::write(&path, include_str!("../testdata/rs256.pub.pem")).unwrap();
        services.0.public.as_ref().unwrap().state.write().unwrap().checked -= RECHECK;
        assert!(services.verify(&token).is_err());
    }

    #[test]
    fn the_local_kubernetes_clusters_trust_the_development_public_key() {
        assert_eq!(
            include_str!("../../../k8s/components/dev-secrets/jwt-public-key.pem"),
            DEVELOPMENT_PUBLIC_KEY
        );
    }

    #[test]
    fn a_key_file_that_cannot_be_used_says_why() {
        for (text, says) in [
            (DEVELOPMENT_PRIVATE_KEY, "private key"),
            ("", "no public key"),
            (r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#, "shared (oct) key"),
            ("{ not json", "not a JWKS document"),
            (
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                "not an Ed25519 or RSA public key",
            ),
        ] {
            let e = parse_public_keys(text).err().unwrap();
            assert!(e.to_string().contains(says), "{text:?}: {e}");
        }
        assert!(PublicKeys::load(Path::new("/nonexistent/key.pem")).is_err());
        let rsa = std::env::temp_dir().join(format!("ticketing-rsa-{}", uuid::Uuid::new_v4()));
        std::fs::write(&rsa, RSA_PUBLIC).unwrap();
        assert!(!PublicKeys::load(&rsa).unwrap().holds_development_key());
    }
}
