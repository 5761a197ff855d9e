//! OAuth 2.0 for the Public API, in Segment's machine-to-machine design:
//! an owner registers an app with one or two public keys (`apps`); the app
//! signs a short JWT, a client assertion (RFC 7523), with its private key
//! (`assertion`) and exchanges it at `POST /oauth2/token` (`token`) for an
//! `sgo_` access token. Access tokens are tokens like `sgp_` ones
//! (`db::tokens`), with a scope and an expiry: they authenticate the same
//! way, and GitHub's secret scanning revokes them the same way.

pub mod apps;
pub mod assertion;
pub mod token;

/// The token endpoint's path; `LEAKGUARD_PUBLIC_URL` followed by it is an
/// audience that assertions may name.
pub const TOKEN_PATH: &str = "/oauth2/token";

/// `client_credentials` is the one grant type (RFC 6749 section 4.4).
pub const GRANT_TYPE: &str = "client_credentials";

/// The client assertion type of a JWT (RFC 7523 section 2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The audiences an assertion may name: the server itself and its token
/// endpoint, as `LEAKGUARD_PUBLIC_URL` spells them (with or without a
/// trailing slash).
pub fn audiences(public_url: &str) -> Vec<String> {
    let base = public_url.trim_end_matches('/');
    vec![
        base.to_string(),
        format!("{base}/"),
        format!("{base}{TOKEN_PATH}"),
    ]
}
