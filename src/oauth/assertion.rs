//! Client assertions (RFC 7523 section 3): a JWT that an app signs with
//! the private key of one of its registered public keys. The header names
//! the key (`kid`) and the algorithm, which must be the key's own; the
//! signature is checked (by `jsonwebtoken`, over ring) before any claim is
//! read; then `sub` must be the key's app, `aud` this server, `exp` in the
//! near future, and `jti` present. Whether the `jti` was seen before is
//! the database's question (`db::oauth_apps::remember_assertion`).
//!
//! Every refusal reaches the client as the same `invalid_client`; the
//! reason is for the log only.

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::db::oauth_apps::OAuthKey;
use crate::domain::{KeyAlgorithm, OAuthAppId, OAuthKeyId, Parse};

/// The longest an assertion may be valid: `exp` at most this long after
/// `iat` (and after now). Segment's clients set a minute.
pub const MAX_LIFETIME_SECS: i64 = 300;
/// The clocks of client and server may differ by this much.
pub const CLOCK_SKEW_SECS: i64 = 60;
/// The longest `jti` remembered.
pub const MAX_JTI: usize = 200;
/// The longest assertion read.
pub const MAX_ASSERTION_BYTES: usize = 16 * 1024;

/// Why an assertion was refused: for the log, never for the client.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("not a compact JWS of three parts with a JSON header")]
    Malformed,
    #[error("the header has a crit parameter, which nothing here understands")]
    Critical,
    #[error("the header has no kid that names a key")]
    NoKeyId,
    #[error("no key has this kid")]
    UnknownKey,
    #[error("alg is {found}, but the key verifies {expected} only")]
    WrongAlgorithm {
        found: String,
        expected: KeyAlgorithm,
    },
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the claims: {0}")]
    Claims(String),
    #[error("the jti was used before")]
    Replayed,
}

/// The claims read, once the signature has verified.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: i64,
    #[serde(default)]
    pub iat: Option<i64>,
    #[serde(default)]
    pub nbf: Option<i64>,
    pub jti: String,
}

/// The `kid` of an assertion's header, before anything else is trusted:
/// it says which key to verify with.
pub fn key_id(jwt: &str) -> Result<OAuthKeyId, Refusal> {
    let header = header_json(jwt)?;
    if header.get("crit").is_some() {
        return Err(Refusal::Critical);
    }
    header
        .get("kid")
        .and_then(|k| k.as_str())
        .and_then(|k| OAuthKeyId::parse(k).ok())
        .ok_or(Refusal::NoKeyId)
}

fn header_json(jwt: &str) -> Result<serde_json::Map<String, serde_json::Value>, Refusal> {
    let mut parts = jwt.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed);
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| Refusal::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| Refusal::Malformed)
}

/// Verifies `jwt` with `key` (of app `app_id`), for a server known by
/// `audiences`, at `now` (seconds since the epoch).
pub fn verify(
    jwt: &str,
    key: &OAuthKey,
    app_id: &OAuthAppId,
    audiences: &[String],
    now: i64,
) -> Result<Claims, Refusal> {
    let header = jsonwebtoken::decode_header(jwt).map_err(|_| Refusal::Malformed)?;
    let (expected, decoding) = match key.algorithm {
        KeyAlgorithm::RS256 => (
            Algorithm::RS256,
            DecodingKey::from_rsa_pem(key.public_key.as_bytes()),
        ),
        KeyAlgorithm::ES256 => (
            Algorithm::ES256,
            DecodingKey::from_ec_pem(key.public_key.as_bytes()),
        ),
    };
    // The key decides the algorithm: HS256 "signed" with the public key as
    // its secret, or any other, is refused before any verification.
    if header.alg != expected {
        return Err(Refusal::WrongAlgorithm {
            found: format!("{:?}", header.alg),
            expected: key.algorithm,
        });
    }
    let decoding = decoding.map_err(|_| Refusal::UnknownKey)?;
    let mut validation = Validation::new(expected);
    validation.leeway = CLOCK_SKEW_SECS as u64;
    validation.set_audience(audiences);
    // Required, so that a claim of the wrong type is refused rather than
    // skipped (GHSA-h395-gr6q-cpjc); `Claims` then reads them strictly.
    validation.set_required_spec_claims(&["exp", "sub", "aud"]);
    validation.sub = Some(app_id.to_string());
    validation.validate_nbf = true;
    let claims = jsonwebtoken::decode::<Claims>(jwt, &decoding, &validation)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => Refusal::BadSignature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => Refusal::WrongAlgorithm {
                found: format!("{:?}", header.alg),
                expected: key.algorithm,
            },
            _ => Refusal::Claims(e.to_string()),
        })?
        .claims;
    check_times(&claims, now)?;
    if claims.jti.is_empty()
        || claims.jti.chars().count() > MAX_JTI
        || claims.jti.chars().any(char::is_control)
    {
        return Err(Refusal::Claims(format!(
            "jti must be 1 to {MAX_JTI} characters without control characters"
        )));
    }
    Ok(claims)
}

/// `exp` ahead of now but not by more than an assertion's lifetime, and
/// `iat` and `nbf`, when present, not in the future; all with the skew.
fn check_times(claims: &Claims, now: i64) -> Result<(), Refusal> {
    let refuse = |why: &str| Err(Refusal::Claims(why.to_string()));
    if claims.exp < now - CLOCK_SKEW_SECS {
        return refuse("exp has passed");
    }
    if claims.exp > now + MAX_LIFETIME_SECS + CLOCK_SKEW_SECS {
        return refuse("exp is further ahead than an assertion may live");
    }
    if let Some(iat) = claims.iat {
        if iat > now + CLOCK_SKEW_SECS {
            return refuse("iat is in the future");
        }
        if claims.exp - iat > MAX_LIFETIME_SECS {
            return refuse("exp is further after iat than an assertion may live");
        }
    }
    if claims.nbf.is_some_and(|nbf| nbf > now + CLOCK_SKEW_SECS) {
        return refuse("nbf is in the future");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64, iat: Option<i64>, nbf: Option<i64>) -> Claims {
        Claims {
            sub: "app".into(),
            exp,
            iat,
            nbf,
            jti: "j".into(),
        }
    }

    #[test]
    fn times() {
        let now = 1_700_000_000;
        assert!(check_times(&claims(now + 60, Some(now), None), now).is_ok());
        // A client clock a little behind or ahead.
        assert!(check_times(&claims(now - 30, Some(now - 90), None), now).is_ok());
        assert!(check_times(&claims(now + 90, Some(now + 30), Some(now + 30)), now).is_ok());
        for (exp, iat, nbf) in [
            (now - 61, None, None),
            (now + MAX_LIFETIME_SECS + CLOCK_SKEW_SECS + 1, None, None),
            (now + 3600, Some(now), None),
            (now + 100, Some(now + 61), None),
            (now + 60, Some(now - 400), None),
            (now + 60, None, Some(now + 61)),
        ] {
            assert!(
                check_times(&claims(exp, iat, nbf), now).is_err(),
                "{exp} {iat:?} {nbf:?}"
            );
        }
    }

    #[test]
    fn key_ids_come_from_the_header() {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = |header: &str| format!("{}.{}.sig", b64(header), b64("{}"));
        assert_eq!(
            key_id(&jwt(r#"{"alg":"RS256","kid":"abc"}"#)).unwrap(),
            OAuthKeyId::parse("abc").unwrap()
        );
        assert_eq!(key_id(&jwt(r#"{"alg":"RS256"}"#)), Err(Refusal::NoKeyId));
        assert_eq!(
            key_id(&jwt(r#"{"alg":"RS256","kid":"a b"}"#)),
            Err(Refusal::NoKeyId)
        );
        assert_eq!(
            key_id(&jwt(r#"{"alg":"RS256","kid":"abc","crit":["exp"]}"#)),
            Err(Refusal::Critical)
        );
        assert_eq!(key_id("a.b"), Err(Refusal::Malformed));
        assert_eq!(key_id("a.b.c.d"), Err(Refusal::Malformed));
        assert_eq!(key_id("!!.b.c"), Err(Refusal::Malformed));
    }
}
