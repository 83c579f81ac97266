//! Identity from `Authorization: Bearer <JWT>` (HS256; claims `sub`, `role`, `exp`).

use crate::{Problem, Secret};
use axum::{
    extract::{FromRef, FromRequestParts},
    http::{StatusCode, header, request::Parts},
};
use contracts::UserId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::{sync::Arc, time::Duration};

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
    pub exp: i64,
}

/// Signs and verifies identity tokens with one HS256 key.
#[derive(Clone)]
pub struct JwtKeys(Arc<Keys>);

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    /// Keys from the configured secret.
    pub fn new(secret: &Secret) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        Self(Arc::new(Keys {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            validation,
        }))
    }

    /// Mints a token valid for `ttl` (for `ticketing token` and tests).
    pub fn mint(
        &self,
        user: UserId,
        role: Role,
        ttl: Duration,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims { sub: user, role, exp: chrono::Utc::now().timestamp().saturating_add(ttl) };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.0.encoding)
    }

    /// Verifies signature, algorithm and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, Problem> {
        jsonwebtoken::decode::<Claims>(token, &self.0.decoding, &self.0.validation)
            .map(|data| data.claims)
            .map_err(|e| {
                let detail = match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the bearer token has expired",
                    _ => "the bearer token is not valid",
                };
                Problem::new(StatusCode::UNAUTHORIZED, "INVALID_TOKEN", detail)
            })
    }
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

    fn keys(s: &str) -> JwtKeys {
        JwtKeys::new(&Secret::new(s))
    }

    #[test]
    fn minted_token_verifies() {
        let k = keys("0123456789abcdef0123456789abcdef");
        let user = UserId::new();
        let t = k.mint(user, Role::Admin, Duration::from_secs(60)).unwrap();
        let c = k.verify(&t).unwrap();
        assert_eq!((c.sub, c.role), (user, Role::Admin));
    }

    #[test]
    fn other_key_and_expired_tokens_are_refused() {
        let k = keys("0123456789abcdef0123456789abcdef");
        let other = keys("fedcba9876543210fedcba9876543210");
        let t = other.mint(UserId::new(), Role::User, Duration::from_secs(60)).unwrap();
        assert_eq!(k.verify(&t).unwrap_err().code, "INVALID_TOKEN");

        let claims =
            Claims { sub: UserId::new(), role: Role::User, exp: chrono::Utc::now().timestamp() - 3600 };
        let expired = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &k.0.encoding).unwrap();
        let p = k.verify(&expired).unwrap_err();
        assert!(p.detail.contains("expired"), "{p}");
    }

    #[test]
    fn algorithm_none_is_refused() {
        let k = keys("0123456789abcdef0123456789abcdef");
        // header {"alg":"none"} with valid-looking claims and no signature
        let forged = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIwMTkwMDAwMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDAiLCJyb2xlIjoiYWRtaW4iLCJleHAiOjQxMDI0NDQ4MDB9.";
        assert!(k.verify(forged).is_err());
    }
}
