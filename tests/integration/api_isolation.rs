//! Workspace isolation: a token of workspace A (a Public API token or an
//! OAuth access token) gets 404 for every id of workspace B, exactly as for
//! an id that does not exist, and no list or filter shows B's rows.

use serde_json::{json, Value};

use crate::api_helpers::*;
use crate::oauth_helpers::{self, Signer};
use crate::support::{json, TestApp};

/// B's resources, one of each kind.
struct Other {
    source: Value,
    destination: Value,
    token: String,
    token_id: String,
    user: Value,
    oauth_app: String,
    oauth_key: String,
}

#[tokio::test]
async fn a_token_of_one_workspace_sees_nothing_of_another() {
    let app = TestApp::spawn().await;
    let a = app.workspace("Alpha", "owner@alpha.test").await;
    let b = app.workspace("Beta", "owner@beta.test").await;
    create_source(&app, &a.owner_token, "alpha-web").await;

    let source = create_source(&app, &b.owner_token, "beta-secret-source").await;
    let destination =
        create_destination(&app, &b.owner_token, source["id"].as_str().unwrap()).await;
    let (token, token_id) = app.mint(&b, "beta-ci", "member").await;
    let res = app
        .post(
            "/users",
            &b.owner_token,
            &json!({ "email": "dev@beta.test", "name": "Beta Dev", "role": "member" }),
        )
        .await;
    let user = json(res).await["data"]["user"].clone();
    let (oauth, b_access_token) =
        oauth_helpers::oauth_token(&app, &b, "public_api:read_write").await;
    // A's own access token, which must see no more of B than A's owner token.
    let (_, a_access_token) = oauth_helpers::oauth_token(&app, &a, "public_api:read_write").await;
    let other = Other {
        source,
        destination,
        token,
        token_id,
        user,
        oauth_app: oauth.app_id.clone(),
        oauth_key: oauth.key_id.clone(),
    };
    let other_write_key = other.source["writeKeys"][0].as_str().unwrap();
    let b_before = snapshot(&app, &b.owner_token).await;

    let id_of = |path: &str| -> Option<String> {
        let id = match path {
            "/sources/{id}" | "/sources/{id}/writekey" | "/sources/{id}/writekey/{writeKey}" => {
                other.source["id"].as_str().unwrap().to_string()
            }
            "/destinations/{id}" => other.destination["id"].as_str().unwrap().to_string(),
            "/tokens/{id}" => other.token_id.clone(),
            "/users/{id}" => other.user["id"].as_str().unwrap().to_string(),
            "/oauth-apps/{id}" | "/oauth-apps/{id}/keys" | "/oauth-apps/{id}/keys/{keyId}" => {
                other.oauth_app.clone()
            }
            // The catalog is global: the same for every workspace.
            p if p.starts_with("/catalog/") => return None,
            p => panic!("the isolation matrix does not cover {p}: add it"),
        };
        Some(id)
    };

    let mut checked = 0;
    // A's owner token, then A's access token (a member: 403 where the
    // owner role is needed, for B's ids and made-up ones alike).
    for a_token in [&a.owner_token, &a_access_token] {
        for endpoint in leakguard::api::endpoints() {
            let method = endpoint.method.to_string();
            let path = endpoint.path;
            if !path.contains("{id}") {
                continue;
            }
            let Some(id) = id_of(path) else { continue };
            let body = match (method.as_str(), path) {
                ("PATCH", p) if p.starts_with("/users") => json!({ "role": "owner" }),
                ("PATCH", p) if p.starts_with("/oauth-apps") => json!({ "name": "hijacked" }),
                ("PATCH", _) => json!({ "name": "hijacked", "enabled": false }),
                ("POST", "/oauth-apps/{id}/keys") => {
                    json!({ "publicKey": Signer::p256().public_pem, "keyName": "mine" })
                }
                _ => Value::Null,
            };
            let mut answers = Vec::new();
            for target in [id.as_str(), "AAAAAAAAAAAAAAAAAAAAAAAA"] {
                let request = app
                    .client
                    .request(
                        method.parse().unwrap(),
                        app.url(
                            &path
                                .replace("{id}", target)
                                .replace("{keyId}", &other.oauth_key)
                                .replace("{writeKey}", other_write_key),
                        ),
                    )
                    .bearer_auth(a_token);
                let request = if body.is_null() {
                    request
                } else {
                    request.json(&body)
                };
                let res = request.send().await.unwrap();
                answers.push((res.status().as_u16(), json(res).await));
            }
            let expected = match endpoint.least_role() {
                Some(leakguard::domain::Role::Owner) if a_token == &a_access_token => 403,
                _ => 404,
            };
            assert_eq!(
                answers[0].0, expected,
                "{method} {path} with B's id: {:?}",
                answers[0].1
            );
            assert_eq!(
                answers[0], answers[1],
                "{method} {path}: B's id must look exactly like no id"
            );
            checked += 1;
        }
    }
    assert_eq!(
        checked,
        2 * 18,
        "sources 3, write keys 2, destinations 3, tokens 2, users 3, OAuth apps 5"
    );
    // B's tokens, given whole, read as tokens that do not exist.
    let mut answers = Vec::new();
    let unknown = leakguard::token::PublicToken::generate()
        .expose()
        .to_string();
    for token in [&other.token, &b_access_token, &unknown] {
        let res = app
            .post(
                "/token-revocations",
                &a.owner_token,
                &json!({ "token": token }),
            )
            .await;
        answers.push((res.status().as_u16(), json(res).await));
    }
    assert_eq!(answers[0].0, 404);
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    // B's app signs nothing for A: its assertions get B's workspace only.
    assert_eq!(
        get_data(&app, "/", &b_access_token).await["workspace"]["id"],
        b.id
    );

    // Lists and filters.
    let needles = [
        other.source["id"].as_str().unwrap(),
        "beta-secret-source",
        other.destination["id"].as_str().unwrap(),
        other.token_id.as_str(),
        other.user["id"].as_str().unwrap(),
        "dev@beta.test",
        b.id.as_str(),
        b.owner_token_id.as_str(),
        other.oauth_app.as_str(),
        other.oauth_key.as_str(),
    ];
    let source_id = other.source["id"].as_str().unwrap();
    for path in [
        "/".to_string(),
        "/sources".to_string(),
        "/destinations".to_string(),
        "/tokens".to_string(),
        "/users".to_string(),
        "/oauth-apps".to_string(),
        "/audit-events".to_string(),
        format!("/audit-events?resourceId={source_id}"),
        format!("/audit-events?actor=public-api-token/{}", other.token_id),
        format!("/audit-events?actor=oauth-app/{}", other.oauth_app),
    ] {
        let text = get_data(&app, &path, &a.owner_token).await.to_string();
        for needle in needles {
            assert!(!text.contains(needle), "{path} shows B's {needle}: {text}");
        }
    }
    for path in ["/", "/sources", "/destinations"] {
        let text = get_data(&app, path, &a_access_token).await.to_string();
        for needle in needles {
            assert!(!text.contains(needle), "{path} shows B's {needle}: {text}");
        }
    }
    let filtered = audit_events(&app, &a.owner_token, &format!("resourceId={source_id}")).await;
    assert!(filtered.is_empty());

    // A destination cannot attach to B's source, and the refusal reads
    // exactly as for a source that does not exist.
    let mut refusals = Vec::new();
    for source_id in [source_id, "AAAAAAAAAAAAAAAAAAAAAAAA"] {
        let res = app
            .post(
                "/destinations",
                &a.owner_token,
                &json!({ "sourceId": source_id, "metadataId": destination_kind() }),
            )
            .await;
        assert_eq!(res.status(), 422);
        refusals.push(json(res).await);
    }
    assert_eq!(refusals[0], refusals[1]);
    assert_eq!(errors_by_field(&refusals[0]).len(), 1);
    assert!(errors_by_field(&refusals[0]).contains_key("sourceId"));

    // B's write key on A's own source reads as a key that does not exist.
    let a_source = create_source(&app, &a.owner_token, "alpha-app").await;
    let a_source_id = a_source["id"].as_str().unwrap();
    let mut answers = Vec::new();
    for key in [other_write_key, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        let res = app
            .delete(
                &format!("/sources/{a_source_id}/writekey/{key}"),
                &a.owner_token,
            )
            .await;
        answers.push((res.status().as_u16(), json(res).await));
    }
    assert_eq!(answers[0].0, 404, "{:?}", answers[0].1);
    assert_eq!(answers[0], answers[1]);

    // B's token still works and B's rows are as they were.
    assert_eq!(app.get("/sources", &other.token).await.status(), 200);
    assert_eq!(snapshot(&app, &b.owner_token).await, b_before);
}

/// Everything B's owner can list.
async fn snapshot(app: &TestApp, token: &str) -> Vec<Value> {
    let mut all = Vec::new();
    for path in [
        "/sources",
        "/destinations",
        "/tokens",
        "/users",
        "/oauth-apps",
        "/audit-events",
    ] {
        let mut data = get_data(app, path, token).await;
        // Reading changes lastUsedAt; the rest must not change.
        if let Some(tokens) = data["tokens"].as_array_mut() {
            for t in tokens {
                t["lastUsedAt"] = Value::Null;
            }
        }
        all.push(data);
    }
    all
}
