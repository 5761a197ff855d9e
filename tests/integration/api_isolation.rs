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
    warehouse: Value,
    plan: Value,
    token: String,
    token_id: String,
    user: Value,
    oauth_app: String,
    oauth_key: String,
}

#[tokio::test]
async fn a_token_of_one_workspace_sees_nothing_of_another() {
    // Each owner token sets up and then walks every endpoint: past the
    // default burst, which is not under test here.
    let app = TestApp::spawn_with(&[("RATE_LIMIT_BURST", "5000")]).await;
    let a = app.workspace("Alpha", "owner@alpha.test").await;
    let b = app.workspace("Beta", "owner@beta.test").await;
    create_source(&app, &a.owner_token, "alpha-web").await;

    let source = create_source(&app, &b.owner_token, "beta-secret-source").await;
    let destination =
        create_destination(&app, &b.owner_token, source["id"].as_str().unwrap()).await;
    let warehouse = create_warehouse(&app, &b.owner_token).await;
    let plan = create_tracking_plan(&app, &b.owner_token, "Beta plan").await;
    let b_source = source["id"].as_str().unwrap().to_string();
    let connect = format!(
        "/warehouses/{}/connected-sources/{b_source}",
        warehouse["id"].as_str().unwrap()
    );
    assert_eq!(
        app.post(&connect, &b.owner_token, &json!(null))
            .await
            .status(),
        201
    );
    let follow = format!("/tracking-plans/{}/sources", plan["id"].as_str().unwrap());
    let res = app
        .post(&follow, &b.owner_token, &json!({ "sourceId": b_source }))
        .await;
    assert_eq!(res.status(), 200);
    create_label(&app, &b.owner_token, "beta-secret-label", "x").await;
    create_label(&app, &a.owner_token, "alpha", "x").await;
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
        warehouse,
        plan,
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
            p if p.starts_with("/sources/{id}") => other.source["id"].as_str().unwrap().to_string(),
            "/destinations/{id}" => other.destination["id"].as_str().unwrap().to_string(),
            p if p.starts_with("/warehouses/{id}") => {
                other.warehouse["id"].as_str().unwrap().to_string()
            }
            p if p.starts_with("/tracking-plans/{id}") => {
                other.plan["id"].as_str().unwrap().to_string()
            }
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
                ("PUT" | "PATCH", "/tracking-plans/{id}/rules") => json!({ "rules": [] }),
                ("PATCH", "/tracking-plans/{id}") => json!({ "name": "hijacked" }),
                ("PATCH", _) => json!({ "name": "hijacked", "enabled": false }),
                ("POST" | "PUT", "/sources/{id}/labels") => json!({ "labels": [] }),
                ("POST", "/tracking-plans/{id}/sources") => json!({ "sourceId": b_source }),
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
                                .replace("{writeKey}", other_write_key)
                                .replace("{sourceId}", &b_source),
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
        2 * 39,
        "sources 3, write keys 2, a source's labels 2 and connections 2, destinations 3, \
         warehouses 3, their state 1 and sources 3, tracking plans 3, their rules 4 and \
         sources 3, tokens 2, users 3, OAuth apps 5"
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
        other.warehouse["id"].as_str().unwrap(),
        other.plan["id"].as_str().unwrap(),
        "Beta plan",
        "beta-secret-label",
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
        "/warehouses".to_string(),
        "/tracking-plans".to_string(),
        "/labels".to_string(),
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
                &json!({ "sourceId": source_id, "metadataId": destination_kind(),
                        "settings": { "url": "https://hooks.example/in" } }),
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

    // B's source cannot be connected to A's warehouse or plan, nor
    // labelled with B's label, and each refusal reads exactly as for a
    // source or label that does not exist.
    let a_warehouse = create_warehouse(&app, &a.owner_token).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let a_plan = create_tracking_plan(&app, &a.owner_token, "Alpha plan").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let nobody = "AAAAAAAAAAAAAAAAAAAAAAAA";
    for (method, path, body) in [
        ("POST", "/warehouses/{w}/connected-sources/{s}", Value::Null),
        (
            "DELETE",
            "/warehouses/{w}/connected-sources/{s}",
            Value::Null,
        ),
        (
            "POST",
            "/tracking-plans/{p}/sources",
            json!({ "sourceId": "{s}" }),
        ),
        (
            "DELETE",
            "/tracking-plans/{p}/sources?sourceId={s}",
            Value::Null,
        ),
        (
            "POST",
            "/sources/{a}/labels",
            json!({ "labels": [{ "key": "{l}", "value": "x" }] }),
        ),
    ] {
        let mut answers = Vec::new();
        for (source, label) in [
            (b_source.as_str(), "beta-secret-label"),
            (nobody, "no-such-label"),
        ] {
            let fill = |text: &str| {
                text.replace("{w}", &a_warehouse)
                    .replace("{p}", &a_plan)
                    .replace("{a}", a_source_id)
                    .replace("{s}", source)
                    .replace("{l}", label)
            };
            let request = app
                .client
                .request(method.parse().unwrap(), app.url(&fill(path)))
                .bearer_auth(&a.owner_token);
            let request = if body.is_null() {
                request
            } else {
                request.json(&serde_json::from_str::<Value>(&fill(&body.to_string())).unwrap())
            };
            let res = request.send().await.unwrap();
            let status = res.status().as_u16();
            let mut answer = json(res).await;
            // The label is named in its own refusal; nothing else differs.
            let text = answer.to_string().replace(label, "LABEL");
            answer = serde_json::from_str(&text).unwrap();
            answers.push((status, answer));
        }
        assert!(
            matches!(answers[0].0, 404 | 422),
            "{method} {path}: {answers:?}"
        );
        assert_eq!(answers[0], answers[1], "{method} {path}");
    }

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
        "/warehouses",
        "/tracking-plans",
        "/labels",
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
