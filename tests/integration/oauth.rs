//! OAuth 2.0 through HTTP: apps and keys, `POST /oauth2/token` with every
//! way an assertion can be wrong, `sgo_` access tokens on the Public API
//! (scopes, expiry, revocation by app, key, value and GitHub alert).

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::api_helpers::*;
use crate::oauth_helpers::*;
use crate::support::{json, TestApp};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The error of a token endpoint answer, after checking the RFC 6749
/// shape: status, `error`, `Cache-Control: no-store`.
async fn oauth_error(res: reqwest::Response, status: u16) -> (String, String) {
    assert_eq!(
        res.headers()["cache-control"],
        "no-store",
        "token answers are never cached"
    );
    let got = res.status().as_u16();
    let body = json(res).await;
    assert_eq!(got, status, "{body}");
    assert!(body.get("access_token").is_none(), "{body}");
    (
        body["error"].as_str().unwrap().to_string(),
        body["error_description"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn a_good_assertion_gets_a_working_access_token() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let client = register(
        &app,
        &ws,
        "Deploy bot",
        &["public_api:read_write"],
        Signer::rsa(),
    )
    .await;

    let assertion = client.assertion();
    let res = token_request(&app, &form(&assertion, Some("public_api:read_write"))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["pragma"], "no-cache");
    let body = json(res).await;
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 86400);
    assert_eq!(body["scope"], "public_api:read_write");
    assert!(token.starts_with("sgo_") && token.len() == 68, "{token}");
    assert!(leakguard::token::PublicToken::parse(token).is_ok());

    // Only the hash is stored, with the app, scope and expiry.
    let stored = app
        .count(&format!(
            "SELECT COUNT(*) FROM tokens WHERE oauth_app_id = '{}' AND scopes = 'public_api:read_write'
             AND expires_at > created_at AND token_hash = '{}'",
            client.app_id,
            leakguard::token::sha256_hex(token.as_bytes())
        ))
        .await;
    assert_eq!(stored, 1);
    let plaintext = app
        .count(&format!(
            "SELECT COUNT(*) FROM tokens WHERE token_hash = '{token}' OR hint = '{token}'"
        ))
        .await;
    assert_eq!(plaintext, 0);

    // It works as a member: reads, and writes sources.
    let data = get_data(&app, "/", token).await;
    assert_eq!(data["workspace"]["id"], ws.id);
    let source = create_source(&app, token, "from-oauth").await;
    assert_eq!(source["slug"], "from-oauth");
    // Not as an owner.
    let res = app.get("/tokens", token).await;
    assert_eq!(res.status(), 403);
    let message = error_message(&json(res).await);
    assert!(message.contains("this token has member"), "{message}");

    // The audit trail names the app and the token's hint.
    let hint = &token[64..];
    let actor = format!("oauth-app/{}/token/{hint}", client.app_id);
    let events = audit_events(&app, &ws.owner_token, &format!("actor={actor}")).await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["Source Created", "Access Token Issued"],
        "{events:?}"
    );
    // The app's filter gives everything its tokens did.
    let by_app = audit_events(
        &app,
        &ws.owner_token,
        &format!("actor=oauth-app/{}", client.app_id),
    )
    .await;
    assert_eq!(by_app.len(), 2, "{by_app:?}");
}

#[tokio::test]
async fn es256_keys_work_and_decide_the_algorithm() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let client = register(&app, &ws, "EC bot", &["public_api:read"], Signer::p256()).await;
    let token = access_token(&app, &client, None).await;
    assert_eq!(get_data(&app, "/", &token).await["workspace"]["id"], ws.id);
    // read_only: no writes.
    let res = app
        .post(
            "/sources",
            &token,
            &json!({ "slug": "nope", "enabled": true, "metadataId": source_kind() }),
        )
        .await;
    assert_eq!(res.status(), 403);

    // The same key's kid with an RSA-signed assertion is refused.
    let mut rsa = client.clone();
    rsa.signer = Signer::rsa();
    let assertion = rsa.assertion();
    let (error, _) = oauth_error(token_request(&app, &form(&assertion, None)).await, 401).await;
    assert_eq!(error, "invalid_client");
}

#[tokio::test]
async fn every_bad_assertion_is_refused_alike() {
    let app = TestApp::spawn_with(&[("TOKEN_RATE_LIMIT_BURST", "100")]).await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let client = register(&app, &ws, "Bot", &["public_api:read"], Signer::rsa()).await;
    let other = register(
        &app,
        &ws,
        "Other",
        &["public_api:read"],
        Signer::other_rsa(),
    )
    .await;
    let tokens_before = app.count("SELECT COUNT(*) FROM tokens").await;

    let now = now();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = client.claims();
        change(&mut claims);
        client.sign(&claims)
    };
    let header_with = |header: Header, key: &EncodingKey| {
        jsonwebtoken::encode(&header, &client.claims(), key).unwrap()
    };
    let unsigned = |alg: &str| {
        let header = json!({ "alg": alg, "typ": "JWT", "kid": client.key_id });
        format!(
            "{}.{}.",
            b64(header.to_string().as_bytes()),
            b64(client.claims().to_string().as_bytes())
        )
    };
    let mut rs384 = client.header();
    rs384.alg = Algorithm::RS384;
    let mut hs256 = client.header();
    hs256.alg = Algorithm::HS256;
    let mut unknown_kid = client.header();
    unknown_kid.kid = Some("AAAAAAAAAAAAAAAAAAAAAAAA".into());
    let mut others_kid = client.header();
    others_kid.kid = Some(other.key_id.clone());
    let mut no_kid = client.header();
    no_kid.kid = None;
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    let other_rsa = EncodingKey::from_rsa_pem(OTHER_RSA_PRIVATE.as_bytes()).unwrap();
    let replayed = client.assertion();
    assert_eq!(
        token_request(&app, &form(&replayed, None)).await.status(),
        200
    );

    let cases: Vec<(&str, String)> = vec![
        ("another algorithm (RS384)", header_with(rs384, &rsa)),
        (
            "HS256 with the public key as its secret",
            header_with(hs256, &EncodingKey::from_secret(RSA_PUBLIC.as_bytes())),
        ),
        ("alg none", unsigned("none")),
        ("alg None", unsigned("None")),
        ("no kid", header_with(no_kid, &rsa)),
        ("an unknown kid", header_with(unknown_kid, &rsa)),
        (
            "another app's kid, this app's key",
            header_with(others_kid.clone(), &rsa),
        ),
        (
            "another app's kid and key, this app's sub",
            header_with(others_kid, &other_rsa),
        ),
        (
            "signed by another key",
            header_with(client.header(), &other_rsa),
        ),
        ("a flipped signature", {
            let good = client.assertion();
            let (rest, sig) = good.rsplit_once('.').unwrap();
            let mut sig = sig.to_string();
            let last = sig.pop().unwrap();
            sig.push(if last == 'A' { 'B' } else { 'A' });
            format!("{rest}.{sig}")
        }),
        ("another sub", with(&|c| c["sub"] = json!(other.app_id))),
        (
            "no sub",
            with(&|c| {
                c.as_object_mut().unwrap().remove("sub");
            }),
        ),
        (
            "another aud",
            with(&|c| c["aud"] = json!("https://oauth2.segment.io")),
        ),
        (
            "no aud",
            with(&|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
        ),
        (
            "an expired exp",
            with(&|c| {
                c["iat"] = json!(now - 600);
                c["exp"] = json!(now - 300);
            }),
        ),
        ("a far-future exp", with(&|c| c["exp"] = json!(now + 3600))),
        (
            "exp ten minutes after iat",
            with(&|c| {
                c["iat"] = json!(now - 300);
                c["exp"] = json!(now + 300);
            }),
        ),
        (
            "iat in the future",
            with(&|c| {
                c["iat"] = json!(now + 200);
                c["exp"] = json!(now + 260);
            }),
        ),
        ("nbf in the future", with(&|c| c["nbf"] = json!(now + 200))),
        (
            "exp as text",
            with(&|c| c["exp"] = json!((now + 60).to_string())),
        ),
        (
            "nbf as text",
            with(&|c| c["nbf"] = json!((now + 3600).to_string())),
        ),
        (
            "no exp",
            with(&|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        (
            "no jti",
            with(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
        ),
        ("an empty jti", with(&|c| c["jti"] = json!(""))),
        ("a replayed jti", replayed),
        ("not a JWT", "not-a-jwt".to_string()),
        ("two parts", "a.b".to_string()),
    ];
    let mut descriptions = std::collections::BTreeSet::new();
    for (what, assertion) in &cases {
        let res = token_request(&app, &form(assertion, None)).await;
        let (error, description) = oauth_error(res, 401).await;
        assert_eq!(error, "invalid_client", "{what}");
        descriptions.insert(description);
    }
    // Nothing says which check failed.
    assert_eq!(descriptions.len(), 1, "{descriptions:?}");
    assert_eq!(
        app.count("SELECT COUNT(*) FROM tokens").await,
        tokens_before + 1,
        "only the first use of the replayed assertion got a token"
    );
}

#[tokio::test]
async fn the_form_and_the_scope_are_checked() {
    let app = TestApp::spawn_with(&[("TOKEN_RATE_LIMIT_BURST", "100")]).await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let client = register(&app, &ws, "Bot", &["public_api:read"], Signer::rsa()).await;
    let assertion = client.assertion();
    let good = form(&assertion, None);
    let without = |name: &str| -> Vec<(&str, &str)> {
        good.iter().copied().filter(|(n, _)| *n != name).collect()
    };
    let replace = |name: &str, value: &'static str| -> Vec<(&str, &str)> {
        good.iter()
            .map(|(n, v)| if *n == name { (*n, value) } else { (*n, *v) })
            .collect()
    };

    for (params, status, error) in [
        (without("grant_type"), 400, "invalid_request"),
        (without("client_assertion"), 400, "invalid_request"),
        (without("client_assertion_type"), 400, "invalid_request"),
        (
            replace("grant_type", "password"),
            400,
            "unsupported_grant_type",
        ),
        (
            replace("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            400,
            "unsupported_grant_type",
        ),
        (
            replace(
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            ),
            401,
            "invalid_client",
        ),
        (replace("client_assertion", ""), 400, "invalid_request"),
    ] {
        let (got, _) = oauth_error(token_request(&app, &params).await, status).await;
        assert_eq!(got, error, "{params:?}");
    }

    // A parameter twice; JSON instead of a form.
    let twice = format!(
        "grant_type=client_credentials&grant_type=client_credentials&client_assertion_type={}&client_assertion={assertion}",
        ASSERTION_TYPE.replace(':', "%3A")
    );
    let res = app
        .client
        .post(app.url("/oauth2/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(twice)
        .send()
        .await
        .unwrap();
    let (error, description) = oauth_error(res, 400).await;
    assert_eq!(error, "invalid_request");
    assert!(description.contains("grant_type"), "{description}");
    let res = app
        .client
        .post(app.url("/oauth2/token"))
        .json(&json!({ "grant_type": "client_credentials" }))
        .send()
        .await
        .unwrap();
    assert_eq!(oauth_error(res, 400).await.0, "invalid_request");

    // Scopes: one the app was not granted, one that does not exist.
    for scope in [
        "public_api:read_write",
        "public_api:read public_api:read_write",
        "admin",
    ] {
        let assertion = client.assertion();
        let res = token_request(&app, &form(&assertion, Some(scope))).await;
        assert_eq!(oauth_error(res, 400).await.0, "invalid_scope", "{scope}");
    }
    // The granted scope, asked for, is given.
    let token = access_token(&app, &client, Some("public_api:read")).await;
    assert_eq!(app.get("/sources", &token).await.status(), 200);
}

#[tokio::test]
async fn the_token_endpoint_is_rate_limited_per_client_and_per_app() {
    let app = TestApp::spawn_with(&[
        ("TOKEN_RATE_LIMIT_BURST", "3"),
        ("TOKEN_RATE_LIMIT_PER_MINUTE", "0.01"),
    ])
    .await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let client = register(&app, &ws, "Bot", &["public_api:read"], Signer::rsa()).await;
    for _ in 0..3 {
        access_token(&app, &client, None).await;
    }
    let assertion = client.assertion();
    let res = token_request(&app, &form(&assertion, None)).await;
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    assert_eq!(oauth_error(res, 429).await.0, "slow_down");
}

#[tokio::test]
async fn an_access_token_stops_working_at_its_expiry() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let (client, token) = oauth_token(&app, &ws, "public_api:read_write").await;
    assert_eq!(app.get("/", &token).await.status(), 200);
    // A second later its expiry is behind it.
    let soon = leakguard::time::now_micros() + 1_000_000;
    app.test_db
        .execute(&format!(
            "UPDATE tokens SET expires_at = {soon} WHERE oauth_app_id = '{}'",
            client.app_id
        ))
        .await
        .unwrap();
    assert_eq!(app.get("/", &token).await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let res = app.get("/", &token).await;
    assert_eq!(res.status(), 401);
    let message = error_message(&json(res).await);
    assert!(message.contains("expired"), "{message}");
    // A new assertion gets a new token.
    let fresh = access_token(&app, &client, None).await;
    assert_eq!(app.get("/", &fresh).await.status(), 200);
}

#[tokio::test]
async fn a_signed_github_alert_revokes_an_access_token_and_tells_the_owners() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let (client, token) = oauth_token(&app, &ws, "public_api:read_write").await;
    create_source(&app, &token, "before-the-leak").await;

    let feedback = app.report(&[&token]).await;
    assert_eq!(feedback[0]["label"], "true_positive");
    assert_eq!(feedback[0]["token_raw"], token);
    let res = app.get("/", &token).await;
    assert_eq!(res.status(), 401);
    assert!(error_message(&json(res).await).contains("revoked"));

    let events = audit_events(&app, &ws.owner_token, "resourceType=token").await;
    let revoked = events
        .iter()
        .find(|e| e["type"] == "Token Revoked")
        .expect("a Token Revoked event");
    assert_eq!(revoked["actor"], "github-secret-scanning");
    assert_eq!(revoked["resourceName"], "app public_api:read_write");
    assert_eq!(revoked["details"]["oauthAppId"], client.app_id);
    assert_eq!(revoked["details"]["reason"], "github_secret_scanning");

    // The owner's email names the app and what the token did.
    let mail = app.mail_dir();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let files: Vec<_> = std::fs::read_dir(&mail)
            .map(|d| d.filter_map(|e| e.ok()).collect())
            .unwrap_or_default();
        if let Some(file) = files.first() {
            break std::fs::read_to_string(file.path()).unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "no mail");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let text = text.replace("=\r\n", "").replace("=\n", "");
    assert!(text.contains(&client.app_id), "the mail names the app");
    assert!(
        text.contains("before-the-leak"),
        "the mail lists its activity"
    );
    assert!(!text.contains(&token[4..]), "never the token");
}

#[tokio::test]
async fn deleting_an_app_or_removing_a_key_revokes_its_tokens() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let client = register(&app, &ws, "Bot", &["public_api:read_write"], Signer::rsa()).await;
    let first = access_token(&app, &client, None).await;

    // A second key; a token from each.
    let other = Signer::other_rsa();
    let res = app
        .post(
            &format!("/oauth-apps/{}/keys", client.app_id),
            &ws.owner_token,
            &json!({ "publicKey": other.public_pem, "keyName": "next" }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let body = json(res).await;
    let keys = body["data"]["oauthApp"]["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[1]["algorithm"], "RS256");
    let second_client = OAuthClient {
        key_id: keys[1]["id"].as_str().unwrap().to_string(),
        signer: other,
        ..client.clone()
    };
    let second = access_token(&app, &second_client, None).await;
    // A third key is one too many.
    let res = app
        .post(
            &format!("/oauth-apps/{}/keys", client.app_id),
            &ws.owner_token,
            &json!({ "publicKey": Signer::p256().public_pem, "keyName": "third" }),
        )
        .await;
    assert_eq!(res.status(), 409);

    // Removing the first key revokes the first token only.
    let res = app
        .delete(
            &format!("/oauth-apps/{}/keys/{}", client.app_id, client.key_id),
            &ws.owner_token,
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.get("/", &first).await.status(), 401);
    assert_eq!(app.get("/", &second).await.status(), 200);
    let assertion = client.assertion();
    let (error, _) = oauth_error(token_request(&app, &form(&assertion, None)).await, 401).await;
    assert_eq!(error, "invalid_client", "the removed key signs nothing");
    // The last key cannot go.
    let res = app
        .delete(
            &format!(
                "/oauth-apps/{}/keys/{}",
                client.app_id, second_client.key_id
            ),
            &ws.owner_token,
        )
        .await;
    assert_eq!(res.status(), 409);

    // Deleting the app revokes the rest.
    let res = app
        .delete(&format!("/oauth-apps/{}", client.app_id), &ws.owner_token)
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.get("/", &second).await.status(), 401);
    let res = app
        .get(&format!("/oauth-apps/{}", client.app_id), &ws.owner_token)
        .await;
    assert_eq!(res.status(), 404);
    let assertion = second_client.assertion();
    let (error, _) = oauth_error(token_request(&app, &form(&assertion, None)).await, 401).await;
    assert_eq!(error, "invalid_client");

    let types: Vec<String> = audit_events(&app, &ws.owner_token, "resourceType=oauth_app")
        .await
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        types,
        [
            "OAuth App Deleted",
            "OAuth App Key Removed",
            "OAuth App Key Added",
            "OAuth App Created"
        ]
    );
}

#[tokio::test]
async fn narrowing_an_apps_scopes_revokes_the_tokens_that_had_more() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let client = register(
        &app,
        &ws,
        "Bot",
        &["public_api:read_write", "public_api:read"],
        Signer::rsa(),
    )
    .await;
    let writer = access_token(&app, &client, Some("public_api:read_write")).await;
    let reader = access_token(&app, &client, Some("public_api:read")).await;
    let res = app
        .patch(
            &format!("/oauth-apps/{}", client.app_id),
            &ws.owner_token,
            &json!({ "scopes": ["public_api:read"], "name": "Reader" }),
        )
        .await;
    assert_eq!(res.status(), 200);
    let body = json(res).await;
    assert_eq!(
        body["data"]["oauthApp"]["scopes"],
        json!(["public_api:read"])
    );
    assert_eq!(body["data"]["oauthApp"]["name"], "Reader");
    assert_eq!(app.get("/", &writer).await.status(), 401);
    assert_eq!(app.get("/", &reader).await.status(), 200);
}

#[tokio::test]
async fn apps_are_checked_like_every_body() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let before = app.db_state().await;
    for (key, field) in [
        (
            include_str!("../../fixtures/oauth/rsa-1024.pub.pem"),
            "1024 bits",
        ),
        (include_str!("../../fixtures/oauth/p384.pub.pem"), "P-256"),
        (
            include_str!("../../fixtures/oauth/ed25519.pub.pem"),
            "another kind",
        ),
        (RSA_PRIVATE, "private key"),
        ("not a key", "PEM public key"),
    ] {
        let res = app
            .post(
                "/oauth-apps",
                &ws.owner_token,
                &json!({
                    "name": "Bot", "publicKey": key, "keyName": "k",
                    "scopes": ["public_api:read"], "tokenExpiresIn": 86400,
                }),
            )
            .await;
        assert_eq!(res.status(), 422);
        let body = json(res).await;
        let errors = errors_by_field(&body);
        assert!(errors["publicKey"].contains(field), "{errors:?}");
        // A private key is never repeated back.
        assert!(!body.to_string().contains("MII"), "{body}");
    }
    // Every problem at once.
    let res = app
        .post(
            "/oauth-apps",
            &ws.owner_token,
            &json!({
                "name": " ", "publicKey": RSA_PUBLIC,
                "scopes": ["public_api:admin", "public_api:read"], "tokenExpiresIn": 3600,
                "extra": 1,
            }),
        )
        .await;
    assert_eq!(res.status(), 422);
    let errors = errors_by_field(&json(res).await);
    let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        ["extra", "keyName", "name", "scopes[0]", "tokenExpiresIn"],
        "{errors:?}"
    );
    let res = app
        .post(
            "/oauth-apps",
            &ws.owner_token,
            &json!({
                "name": "Bot", "publicKey": RSA_PUBLIC, "keyName": "k",
                "scopes": ["public_api:read", "public_api:read"], "tokenExpiresIn": 86400,
            }),
        )
        .await;
    assert!(errors_by_field(&json(res).await).contains_key("scopes"));
    assert_eq!(app.db_state().await, before, "refusals change nothing");

    // Listed and read back as created.
    let client = register(&app, &ws, "Bot", &["public_api:read_write"], Signer::rsa()).await;
    let listed = get_data(&app, "/oauth-apps", &ws.owner_token).await;
    let apps = listed["oauthApps"].as_array().unwrap();
    assert_eq!(apps.len(), 1);
    let one = &apps[0];
    assert_eq!(one["id"], client.app_id);
    assert_eq!(one["scopes"], json!(["public_api:read_write"]));
    assert_eq!(one["tokenExpiresIn"], 86400);
    let key = &one["keys"][0];
    let mut fields: Vec<&str> = key
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort();
    assert_eq!(fields, ["algorithm", "createdAt", "id", "name"]);
    let read = get_data(
        &app,
        &format!("/oauth-apps/{}", client.app_id),
        &ws.owner_token,
    )
    .await;
    assert_eq!(&read["oauthApp"], one);
    assert_eq!(listed["pagination"]["totalEntries"], 1);
}

#[tokio::test]
async fn revocation_by_value_takes_either_kind_from_its_own_workspace_only() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let other = app.workspace("Other", "owner@other.test").await;
    let (client, access) = oauth_token(&app, &ws, "public_api:read_write").await;
    let (api_token, api_token_id) = app.mint(&ws, "ci", "member").await;
    let (theirs, _) = app.mint(&other, "theirs", "member").await;

    let revoke = |token: String| {
        let app = &app;
        let owner = ws.owner_token.clone();
        async move {
            app.post("/token-revocations", &owner, &json!({ "token": token }))
                .await
        }
    };
    // Another workspace's token reads exactly as an unknown one.
    let unknown = leakguard::token::PublicToken::generate()
        .expose()
        .to_string();
    let mut bad_checksum = api_token.clone().into_bytes();
    bad_checksum[10] = if bad_checksum[10] == b'a' { b'b' } else { b'a' };
    let mut answers = Vec::new();
    for token in [
        theirs.clone(),
        unknown,
        String::from_utf8(bad_checksum).unwrap(),
    ] {
        let res = revoke(token).await;
        answers.push((res.status().as_u16(), json(res).await));
    }
    assert_eq!(answers[0].0, 404);
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    assert_eq!(app.get("/", &theirs).await.status(), 200);
    // Not a token at all: 422.
    let res = revoke("sgp_short".into()).await;
    assert_eq!(res.status(), 422);
    // A member cannot.
    let res = app
        .post(
            "/token-revocations",
            &api_token,
            &json!({ "token": access }),
        )
        .await;
    assert_eq!(res.status(), 403);

    let res = revoke(access.clone()).await;
    assert_eq!(res.status(), 200);
    let body = json(res).await;
    let revoked = &body["data"]["token"];
    assert_eq!(revoked["kind"], "oauth_access_token");
    assert_eq!(revoked["oauthAppId"], client.app_id);
    assert_eq!(revoked["hint"], &access[64..]);
    assert_eq!(revoked["revokedReason"], "revoked_by_owner");
    assert_eq!(app.get("/", &access).await.status(), 401);

    let res = revoke(api_token.clone()).await;
    let body = json(res).await;
    assert_eq!(body["data"]["token"]["kind"], "api_token");
    assert_eq!(body["data"]["token"]["id"], api_token_id);
    assert_eq!(app.get("/", &api_token).await.status(), 401);
    // Again: nothing more happens.
    let events = audit_count(&app).await;
    assert_eq!(revoke(api_token).await.status(), 200);
    assert_eq!(audit_count(&app).await, events);
}

#[tokio::test]
async fn an_assertion_is_good_once_across_replicas() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("Acme", "owner@acme.test").await;
    let client = register(&app, &ws, "Bot", &["public_api:read"], Signer::rsa()).await;
    // A second server on the same database.
    let replica = TestApp::spawn_with(&[("DATABASE_URL", &app.db_url)]).await;
    let assertion = client.assertion();
    let first = token_request(&app, &form(&assertion, None)).await;
    assert_eq!(first.status(), 200);
    let again = token_request(&replica, &form(&assertion, None)).await;
    assert_eq!(oauth_error(again, 401).await.0, "invalid_client");
    // Expired assertion ids are forgotten as new ones come.
    app.test_db
        .execute("UPDATE oauth_assertion_ids SET expires_at = 0")
        .await
        .unwrap();
    access_token(&replica, &client, None).await;
    assert_eq!(
        app.count("SELECT COUNT(*) FROM oauth_assertion_ids").await,
        1
    );
}
