//! OAuth clients for the tests: an app registered through the API, client
//! assertions signed as an app would sign them, and access tokens from
//! `POST /oauth2/token`.

#![allow(dead_code)]

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

use crate::support::{json, TestApp, Workspace};

/// The private halves of the RSA fixtures (test-only keys).
pub const RSA_PRIVATE: &str = include_str!("../../fixtures/oauth/rsa-2048.key.pem");
pub const RSA_PUBLIC: &str = include_str!("../../fixtures/oauth/rsa-2048.pub.pem");
pub const OTHER_RSA_PRIVATE: &str = include_str!("../../fixtures/oauth/rsa-2048-other.key.pem");
pub const OTHER_RSA_PUBLIC: &str = include_str!("../../fixtures/oauth/rsa-2048-other.pub.pem");

pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A private key and the PEM of its public half.
#[derive(Clone)]
pub struct Signer {
    pub algorithm: Algorithm,
    pub encoding: EncodingKey,
    pub public_pem: String,
}

impl Signer {
    pub fn rsa() -> Signer {
        Signer {
            algorithm: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
            public_pem: RSA_PUBLIC.to_string(),
        }
    }

    pub fn other_rsa() -> Signer {
        Signer {
            algorithm: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(OTHER_RSA_PRIVATE.as_bytes()).unwrap(),
            public_pem: OTHER_RSA_PUBLIC.to_string(),
        }
    }

    /// A fresh P-256 key (ES256).
    pub fn p256() -> Signer {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &SystemRandom::new(),
        )
        .unwrap();
        let point = pair.public_key().as_ref();
        let public_pem = leakguard::scanning::signature::VerifyingKey::from_point(point)
            .unwrap()
            .to_spki_pem();
        Signer {
            algorithm: Algorithm::ES256,
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            public_pem,
        }
    }
}

/// An app registered through the API, and the key it signs with.
#[derive(Clone)]
pub struct OAuthClient {
    pub app_id: String,
    pub key_id: String,
    pub signer: Signer,
    /// The audience assertions name: the server's LEAKGUARD_PUBLIC_URL.
    pub audience: String,
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl OAuthClient {
    /// Claims as Segment's clients send them: a minute of validity.
    pub fn claims(&self) -> Value {
        let now = now();
        json!({
            "sub": self.app_id,
            "aud": self.audience,
            "iat": now,
            "exp": now + 60,
            "jti": leakguard::id::new_id(),
        })
    }

    pub fn header(&self) -> Header {
        let mut header = Header::new(self.signer.algorithm);
        header.kid = Some(self.key_id.clone());
        header
    }

    pub fn sign(&self, claims: &Value) -> String {
        jsonwebtoken::encode(&self.header(), claims, &self.signer.encoding).unwrap()
    }

    /// A fresh, valid assertion.
    pub fn assertion(&self) -> String {
        self.sign(&self.claims())
    }
}

/// Registers an app with `scopes` and one key (`signer`'s public half).
pub async fn register(
    app: &TestApp,
    ws: &Workspace,
    name: &str,
    scopes: &[&str],
    signer: Signer,
) -> OAuthClient {
    let res = app
        .post(
            "/oauth-apps",
            &ws.owner_token,
            &json!({
                "name": name,
                "publicKey": signer.public_pem,
                "keyName": "primary",
                "scopes": scopes,
                "tokenExpiresIn": 86400,
            }),
        )
        .await;
    let status = res.status();
    let body = json(res).await;
    assert_eq!(status, 201, "registering an OAuth app: {body}");
    let created = &body["data"]["oauthApp"];
    OAuthClient {
        app_id: created["id"].as_str().unwrap().to_string(),
        key_id: created["keys"][0]["id"].as_str().unwrap().to_string(),
        signer,
        audience: app.state.settings.public_url.clone(),
    }
}

/// `POST /oauth2/token` with these form parameters.
pub async fn token_request(app: &TestApp, form: &[(&str, &str)]) -> reqwest::Response {
    app.client
        .post(app.url("/oauth2/token"))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// The form of a client-credentials request with this assertion.
pub fn form<'a>(assertion: &'a str, scope: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    form
}

/// An access token for `client` (asserting 200).
pub async fn access_token(app: &TestApp, client: &OAuthClient, scope: Option<&str>) -> String {
    let assertion = client.assertion();
    let res = token_request(app, &form(&assertion, scope)).await;
    let status = res.status();
    let body = json(res).await;
    assert_eq!(status, 200, "token request: {body}");
    body["access_token"].as_str().unwrap().to_string()
}

/// An app of `scope` in `ws` and one access token of it.
pub async fn oauth_token(app: &TestApp, ws: &Workspace, scope: &str) -> (OAuthClient, String) {
    let client = register(app, ws, &format!("app {scope}"), &[scope], Signer::rsa()).await;
    let token = access_token(app, &client, None).await;
    (client, token)
}
